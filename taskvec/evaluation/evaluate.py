"""Held-out comparison of the ways to make the model do a task (DESIGN §3, §8).

Rows: ``zero-shot`` (query alone, no patches), ``one-shot`` (in-context prompt whose
example pair is made from *another* held-out image with the same task parameters),
and one row per task vector — ``cma``, ``grs`` and ``task-vector`` (REINFORCE). Every
row answers the same queries with the same task parameters.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import Tensor

from taskvec import geometry as G
from taskvec.data.imagesets import ImageSet, images_or_default, load_image_set
from taskvec.evaluation.metrics import compute_metrics
from taskvec.model.mae_vqgan import MaeVQGAN
from taskvec.data.tasks import build_canvases, get_task
from taskvec.data.pairs import task_identity
from taskvec.vectors.taskvector import TaskVector, load_taskvector

ROW_ORDER: tuple[str, ...] = ("zero-shot", "one-shot", "cma", "grs", "task-vector")
BATCH = 64


@torch.inference_mode()
def method_answers(
    task: str, images: ImageSet, model: MaeVQGAN, methods: Mapping[str, TaskVector | None], seed: int = 1
) -> tuple[dict[str, Tensor], Tensor, Tensor, Tensor | None]:
    """Answers of every method on ``images`` → ({name: [N,3,111,111]}, target, query input,
    in-painting holes [N,1,111,111] or None)."""
    gen = torch.Generator().manual_seed(seed)
    ex_idx = torch.roll(torch.arange(len(images)), 1)  # example pair from another image
    m = images.masks
    params = get_task(task).sample_params(len(images), gen, images.images.device, "paper")
    canvas, target, q_in = build_canvases(task, images.images[ex_idx], images.images, gen, "paper",
                                          None if m is None else m[ex_idx], m, with_answer=False,
                                          params=params)  # fmt: skip
    dev = next(model.parameters()).device
    out: dict[str, Tensor] = {}
    for name, tv in methods.items():
        if name == "one-shot":
            layout, src = G.get_layout("in-context"), canvas
            patches = None
        else:
            layout, src = G.get_layout("zero-shot"), G.make_canvas(None, None, q_in)
            patches = tv.patches(dev) if tv is not None else None
        parts = [model(G.normalize(src[i : i + BATCH]).to(dev), layout, patches=patches).answer.cpu()
                 for i in range(0, src.shape[0], BATCH)]  # fmt: skip
        out[name] = torch.cat(parts)
    return out, target, q_in, params.get("hole")


def evaluate(
    task: str, images: ImageSet, model: MaeVQGAN, methods: Mapping[str, TaskVector | None] | None = None, seed: int = 1
) -> dict[str, Any]:
    """Metrics per method on held-out ``images`` → ``{"task", "rows": [{"method", "metrics", "n_images", …}]}``.

    ``methods`` maps row names to task vectors (None for zero-shot and one-shot);
    the default is zero-shot, one-shot and the shipped task vector."""
    if methods is None:
        methods = {"zero-shot": None, "one-shot": None, "task-vector": load_taskvector(task, model)}
    answers, target, q_in, hole = method_answers(task, images, model, methods, seed)
    rows = []
    for name in sorted(answers, key=lambda n: (ROW_ORDER.index(n) if n in ROW_ORDER else len(ROW_ORDER), n)):
        row: dict[str, Any] = {"method": name, "metrics": compute_metrics(task, answers[name], target, hole),
                               "n_images": len(images)}  # fmt: skip
        tv = methods[name]
        if tv is not None:
            row["sites"] = tv.num_sites
            row["search"] = tv.method
        rows.append(row)
    res = {"task": task, "images": images.source, "seed": seed, "rows": rows,
           "input": compute_metrics(task, q_in, target, hole)}  # fmt: skip
    identity = task_identity(task)
    if identity is not None:
        res["task_identity"] = identity
    return res


def format_table(results: list[dict[str, Any]]) -> str:
    """Markdown table of one or more :func:`evaluate` results."""
    lines = ["| task | method | IoU / PSNR (dB) | SSIM | MSE (norm.) | hole PSNR (dB) | pasted SSIM | sites |",
             "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for res in results:
        for row in res["rows"]:
            m = row["metrics"]
            main = f"{m['iou']:.3f}" if "iou" in m else f"{m['psnr']:.2f}"
            ssim = f"{m['ssim']:.3f}" if "ssim" in m else "—"
            hole = f"{m['hole_psnr']:.2f}" if "hole_psnr" in m else "—"
            pasted = f"{m['pasted_ssim']:.3f}" if "pasted_ssim" in m else "—"
            lines.append(f"| {res['task']} | {row['method']} | {main} | {ssim} | {m['mse']:.3f} | {hole} | {pasted} "
                         f"| {row.get('sites', '—')} |")  # fmt: skip
    return "\n".join(lines)


def resolve_methods(
    task: str, model: MaeVQGAN, taskvec_file: str | None, cma_file: str | None, grs_file: str | None,
    train_images: str | None = "packaged:train", skip_baselines: bool = False, fingerprint: str | None = None,
) -> dict[str, TaskVector | None]:  # fmt: skip
    """Every row's vector: files where given, the shipped task vector, CMA/GRS searched now
    otherwise (left out with ``skip_baselines``). ``train_images`` None: packaged:train, or
    a pairs task's train pairs."""
    methods: dict[str, TaskVector | None] = {"zero-shot": None, "one-shot": None}
    missing = [] if skip_baselines else [m for m, f in (("cma", cma_file), ("grs", grs_file)) if f is None]
    searched: dict[str, TaskVector] = {}
    if missing:
        from taskvec.vectors.pipeline import POOL_SEED, means_for
        from taskvec.search.driver import run_search

        from taskvec.data.pairs import PairsTask

        train_images = train_images or ("train" if isinstance(get_task(task), PairsTask) else "packaged:train")
        pool = load_image_set(train_images, task, seed=POOL_SEED)
        means = means_for(model, task, pool, None, 512)
        for method in missing:
            searched[method] = run_search(model, means, pool, method)[1]
    for method, f in (("cma", cma_file), ("grs", grs_file)):
        if f or method in searched:
            methods[method] = load_taskvector(task, model, f, fingerprint=fingerprint) if f else searched[method]
    methods["task-vector"] = load_taskvector(task, model, taskvec_file, fingerprint=fingerprint)
    return methods


def run_evaluate(task: str, images: str, model_spec: str, taskvec_file: str | None, cma_file: str | None,
                 grs_file: str | None, n: int = 96, seed: int = 1, train_images: str | None = "packaged:train",
                 skip_baselines: bool = False) -> dict:  # fmt: skip
    """The ``taskvec evaluate`` command as a function (a pairs task: on its val pairs by default)."""
    from taskvec.model.checkpoint import load_model_ref

    task = get_task(task).name
    images = images_or_default(task, images, "val")
    model, _, fp = load_model_ref(model_spec)
    held_out = load_image_set(images, task, n=n, seed=seed)
    methods = resolve_methods(task, model, taskvec_file, cma_file, grs_file, train_images, skip_baselines, fp)
    return evaluate(task, held_out, model, methods, seed)


def finite_results(res: Any, where: str, path: str = "") -> Any:
    """``res`` unchanged when every number in it is finite; else a one-line UserError naming
    the entry (a NaN answer means a broken model or vector — never written as a result)."""
    import math

    from taskvec.errors import UserError

    if isinstance(res, dict):
        label = res.get("method", "") if isinstance(res.get("method"), str) else ""
        for k, v in res.items():
            finite_results(v, where, f"{path}/{label or k}" if label and k == "metrics" else f"{path}/{k}")
    elif isinstance(res, (list, tuple)):
        for i, v in enumerate(res):
            finite_results(v, where, f"{path}[{i}]")
    elif isinstance(res, float) and not math.isfinite(res):
        raise UserError(f"{where}: result {path.lstrip('/')} is {res} — the model or a task vector produces "
                        "non-finite answers; nothing written")
    return res
