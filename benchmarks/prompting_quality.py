"""One-shot prompting quality of a model on held-out photos (issue: the default model).

    python -m benchmarks.prompting_quality [--model tiny] [--n 96] [--json FILE] [--markdown FILE]

Queries are crops of the held-out photos (taskvec.data.images.VAL_PHOTOS, never used in
training); each example pair is made from a *different* held-out photo. Segmentation
uses procedural scenes on held-out backgrounds with a seed training never uses.
Rows: low-light (paper: 0.5·image), in-painting (27-px black square; hole PSNR and cell
SSIM — the model's hole pasted into the query, as tvrun does, and its raw answer — beside
OpenCV's Telea in-painting and a mean-colour fill, which touch only the hole), colorization (MSE in
ImageNet-normalised space beside the grey input), segmentation (IoU), and whether the
example alone decides the task.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import click
import cv2
import numpy as np
import torch
from torch import Tensor

from taskvec import geometry as G
from taskvec.evaluation import metrics as M
from taskvec.model.checkpoint import load_model
from taskvec.data.images import VAL_PHOTOS, packaged_photos, random_crops
from taskvec.model.mae_vqgan import MaeVQGAN
from taskvec.vectors.prompting import one_shot
from taskvec.data.scenes import procedural_scenes
from taskvec.data.tasks import build_canvases, get_task

TASKS = ("lowlight", "inpainting", "colorization", "segmentation")


def heldout_pairs(n: int, seed: int, split: str = "val") -> tuple[Tensor, Tensor]:
    """(examples, queries), each [n,3,111,111]: query and example from different held-out photos
    (``split="train"``: from different training photos instead)."""
    photos = packaged_photos(split)  # type: ignore[arg-type]
    names = [p for p in VAL_PHOTOS if p in photos] if split == "val" else list(photos)
    gen = torch.Generator().manual_seed(seed)
    per = [random_crops([photos[k]], n, gen, scale=(0.3, 1.0), jitter=False) for k in names]
    q = torch.stack([per[i % len(names)][i] for i in range(n)])
    ex = torch.stack([per[(i + 1) % len(names)][i] for i in range(n)])
    return ex, q


def heldout_scenes(n: int, seed: int) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    gen = torch.Generator().manual_seed(seed)
    ex_bg, q_bg = heldout_pairs(n, seed + 1)
    ex, exm = procedural_scenes(n, gen, ex_bg)
    q, qm = procedural_scenes(n, gen, q_bg)
    return ex, exm, q, qm


def to_u8(x: Tensor) -> np.ndarray:
    return (x.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)


def from_u8(a: np.ndarray) -> Tensor:
    return torch.from_numpy(a.astype(np.float32) / 255).permute(2, 0, 1)


def inpaint_baselines(q_in: Tensor, hole: Tensor) -> dict[str, Tensor]:
    """OpenCV Telea and mean-colour fills of the holes → [n,3,111,111]."""
    telea, mean = [], []
    for img, h in zip(q_in, hole):
        m = (h[0].numpy() > 0.5).astype(np.uint8) * 255
        telea.append(from_u8(cv2.inpaint(to_u8(img), m, 3, cv2.INPAINT_TELEA)))
        keep = h[0] < 0.5
        fill = img[:, keep].mean(dim=1)[:, None, None]
        mean.append(torch.where(h.bool(), fill, img))
    return {"opencv_telea": torch.stack(telea), "mean_colour": torch.stack(mean)}


@torch.no_grad()
def evaluate_quality(model_spec: str = "tiny", n: int = 96, seed: int = 7) -> dict:
    model = load_model(model_spec)
    rows: dict[str, dict] = {}
    ex, q = heldout_pairs(n, seed)
    gen = torch.Generator().manual_seed(seed)

    canvas, target, q_in = build_canvases("lowlight", ex, q, gen, "paper", with_answer=False)
    pred, _ = one_shot(model, G.get_cell(canvas, "example_in"), G.get_cell(canvas, "example_out"), q_in)
    rows["lowlight"] = {"psnr": M.psnr(pred, target).mean().item(), "input_psnr": M.psnr(q_in, target).mean().item(),
                        "ssim": M.ssim(pred, target).mean().item()}

    fills, target, hole = inpaint_one_shot(model, ex, q, gen)
    rows["inpainting"] = fill_metrics(fills, target, hole)
    # The model redraws the whole cell; tvrun (like every in-painting tool) keeps the known
    # pixels and pastes only the hole back. The baselines already leave them untouched.
    rows["inpainting"]["model_pasted_ssim"] = M.ssim(M.paste_hole(fills["model"], target, hole), target).mean().item()

    canvas, target, q_in = build_canvases("colorization", ex, q, gen, "paper", with_answer=False)
    pred, _ = one_shot(model, G.get_cell(canvas, "example_in"), G.get_cell(canvas, "example_out"), q_in)
    rows["colorization"] = {"mse": M.mse_normalized(pred, target).mean().item(),
                            "input_mse": M.mse_normalized(q_in, target).mean().item(),
                            "psnr": M.psnr(pred, target).mean().item()}

    sex, sexm, sq, sqm = heldout_scenes(n, seed + 100)
    canvas, target, q_in = build_canvases("segmentation", sex, sq, gen, "paper", sexm, sqm, with_answer=False)
    pred, _ = one_shot(model, G.get_cell(canvas, "example_in"), G.get_cell(canvas, "example_out"), q_in)
    rows["segmentation"] = {"iou": M.iou(pred, target).mean().item()}

    rows["task_identification"] = task_identification(model, sex, sexm, sq, sqm, gen)
    for r in rows.values():
        for k, v in r.items():
            r[k] = round(float(v), 4)
    return {"model": model_spec, "n_images": n, "seed": seed, "heldout_photos": list(VAL_PHOTOS), "rows": rows}


def inpaint_one_shot(model: MaeVQGAN, ex: Tensor, q: Tensor, gen: torch.Generator) -> tuple[dict, Tensor, Tensor]:
    """One-shot in-painting of ``q`` (a 27-px hole; the example pair from ``ex``, same hole)
    → (fills {model: the raw answer, opencv_telea, mean_colour}, target, hole)."""
    task = get_task("inpainting")
    params = task.sample_params(q.shape[0], gen, variant="paper")
    ex_in, ex_out = task.apply(ex, params)
    q_in, target = task.apply(q, params)
    pred, _ = one_shot(model, ex_in, ex_out, q_in)
    return {"model": pred, **inpaint_baselines(q_in, params["hole"])}, target, params["hole"]


def fill_metrics(fills: dict[str, Tensor], target: Tensor, hole: Tensor) -> dict[str, float]:
    """``{name}_hole_psnr`` and ``{name}_ssim`` (whole cell), means over the batch, per fill."""
    return {f"{k}_hole_psnr": M.hole_psnr(v, target, hole).mean().item() for k, v in fills.items()} | {
        f"{k}_ssim": M.ssim(v, target).mean().item() for k, v in fills.items()}


@torch.no_grad()
def inpainting_seen_unseen(model_spec: str | MaeVQGAN = "tiny", n: int = 96, seed: int = 7) -> dict:
    """In-painting on images the model has seen and has not: crops of its training photos,
    of the held-out photos, and procedural scenes without a photo background (fresh shapes on
    gradients and smooth noise, from the training distribution but never the same image).
    One-shot, the example from another image of the same set; the model's hole pasted into
    the query beside Telea and the mean-colour fill. A model that learned to in-paint gains
    over the mean colour on all three; one that recalls its training photos gains on the first."""
    model = load_model(model_spec) if isinstance(model_spec, str) else model_spec
    gen = torch.Generator().manual_seed(seed)
    sets = {"training_photos": heldout_pairs(n, seed, "train"), "heldout_photos": heldout_pairs(n, seed)}
    sets["procedural_scenes"] = (procedural_scenes(n, gen)[0], procedural_scenes(n, gen)[0])
    out = {}
    for name, (ex, q) in sets.items():
        fills, target, hole = inpaint_one_shot(model, ex, q, gen)
        fills["model"] = M.paste_hole(fills["model"], target, hole)
        out[name] = {k: round(v, 4) for k, v in fill_metrics(fills, target, hole).items()}
    return out


@torch.no_grad()
def bank_quality(model_spec: str | MaeVQGAN, bank: str, n: int = 96, seed: int = 7) -> dict:
    """Every task on an image bank's validation and test pictures (never trained on; choose on
    the first, report the second) and, for the seen/unseen gap, its training pictures: wallpaper crops at the training scales, 40 %
    with a cut-out stamp of the same split; segmentation on stamp composites. One-shot, the
    example from another crop of the same split; in-painting beside Telea and the mean colour."""
    from taskvec.data.bank import ImageBank, bank_crops, composite_stamps
    from taskvec.model.train import STAMPED

    model = load_model(model_spec) if isinstance(model_spec, str) else model_spec
    out = {}
    for split in ("train", "val", "test"):
        b = ImageBank.load(bank, split)  # type: ignore[arg-type]
        gen = torch.Generator().manual_seed(seed)
        ex, q = bank_crops(b, n, gen), bank_crops(b, n, gen)
        k = int(n * STAMPED)
        ex[:k], q[:k] = composite_stamps(ex[:k], b.stamps, gen)[0], composite_stamps(q[:k], b.stamps, gen)[0]
        rows = {}
        fills, target, hole = inpaint_one_shot(model, ex, q, gen)
        fills["model"] = M.paste_hole(fills["model"], target, hole)
        rows["inpainting"] = fill_metrics(fills, target, hole)
        for t, variant in (("lowlight", "paper"), ("lowlight", "realistic"), ("colorization", "paper")):
            canvas, target, q_in = build_canvases(t, ex, q, gen, variant, with_answer=False)
            pred, _ = one_shot(model, G.get_cell(canvas, "example_in"), G.get_cell(canvas, "example_out"), q_in)
            rows[f"{t}_{variant}"] = {"psnr": M.psnr(pred, target).mean().item(),
                                      "input_psnr": M.psnr(q_in, target).mean().item(),
                                      "mse": M.mse_normalized(pred, target).mean().item(),
                                      "input_mse": M.mse_normalized(q_in, target).mean().item()}
        (sex, sexm), (sq, sqm) = composite_stamps(bank_crops(b, n, gen), b.stamps, gen), \
            composite_stamps(bank_crops(b, n, gen), b.stamps, gen)
        canvas, target, q_in = build_canvases("segmentation", sex, sq, gen, "paper", sexm, sqm, with_answer=False)
        pred, _ = one_shot(model, G.get_cell(canvas, "example_in"), G.get_cell(canvas, "example_out"), q_in)
        rows["segmentation"] = {"iou": M.iou(pred, target).mean().item()}
        out[f"bank_{split}"] = {t: {m: round(float(v), 4) for m, v in r.items()} for t, r in rows.items()}
    return out


def bank_markdown(rows: dict) -> str:
    lines = ["| image bank pictures | in-painting hole PSNR dB (pasted SSIM): model / Telea / mean colour "
             "| low-light paper PSNR (input) | low-light realistic PSNR (input) | colorization PSNR, MSE (grey input) "
             "| segmentation IoU (stamps) |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        ip = r["inpainting"]
        fill = " / ".join(f"{ip[f'{k}_hole_psnr']:.2f} ({ip[f'{k}_ssim']:.3f})" for k in ("model", "opencv_telea", "mean_colour"))
        ll, lr, co = r["lowlight_paper"], r["lowlight_realistic"], r["colorization_paper"]
        lines.append(f"| {name.removeprefix('bank_')} | {fill} | {ll['psnr']:.2f} ({ll['input_psnr']:.2f}) "
                     f"| {lr['psnr']:.2f} ({lr['input_psnr']:.2f}) | {co['psnr']:.2f}, {co['mse']:.3f} "
                     f"({co['input_psnr']:.2f}, {co['input_mse']:.3f}) | {r['segmentation']['iou']:.3f} |")
    return "\n".join(lines) + "\n"


def with_paint_sigma(model: MaeVQGAN, sigma: float) -> MaeVQGAN:
    """The same weights with another ``paint_sigma`` (the smoothing has no weights of its own)."""
    other = MaeVQGAN(dataclasses.replace(model.cfg, paint_sigma=float(sigma))).eval()
    other.load_state_dict(model.state_dict())
    return other


def paint_sigma_sweep(model_spec: str | MaeVQGAN, sigmas: list[float], n: int = 96, seed: int = 7) -> dict:
    """:func:`inpainting_seen_unseen` (the model's rows) for each ``paint_sigma``: how much the
    gated head's smoothing of painted pixels helps, on the training photos, held-out photos
    and fresh scenes. Choose σ on the first and last; the held-out row is for reporting."""
    model = load_model(model_spec) if isinstance(model_spec, str) else model_spec
    out = {}
    for sigma in sigmas:
        rows = inpainting_seen_unseen(with_paint_sigma(model, sigma), n, seed)
        out[f"{sigma:g}"] = {k: {m: v for m, v in r.items() if m.startswith("model_")} for k, r in rows.items()}
    return out


def sweep_markdown(sweep: dict) -> str:
    sets = list(next(iter(sweep.values())))
    lines = ["| paint σ px | " + " | ".join(f"{s.replace('_', ' ')}: hole PSNR dB (pasted SSIM)" for s in sets) + " |",
             "|---" * (len(sets) + 1) + "|"]
    for sigma, rows in sweep.items():
        cells = [f"{rows[s]['model_hole_psnr']:.2f} ({rows[s]['model_ssim']:.4f})" for s in sets]
        lines.append(f"| {sigma} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def seen_unseen_markdown(rows: dict) -> str:
    lines = ["| in-painting on | model hole PSNR dB (pasted SSIM) | mean colour | Telea | model − mean colour dB |",
             "|---|---|---|---|---|"]
    for name, r in rows.items():
        cells = [f"{r[f'{k}_hole_psnr']:.2f} ({r[f'{k}_ssim']:.3f})" for k in ("model", "mean_colour", "opencv_telea")]
        gain = r["model_hole_psnr"] - r["mean_colour_hole_psnr"]
        lines.append(f"| {name.replace('_', ' ')} | {' | '.join(cells)} | {gain:+.2f} |")
    return "\n".join(lines) + "\n"


def task_identification(model, ex, exm, q, qm, gen) -> dict:
    """For each query and each task's example pair, is the answer closest to that task's target?

    Low-light, in-painting and colorization share one target (the clean query), so a tie
    with another task's identical target counts as closest. "strict" also asks that the
    answer be closer to its target than the task's own input is — the example must make
    the model *do* the task, not only avoid the others."""
    targets, answers, inputs = {}, {}, {}
    for t in TASKS:
        task = get_task(t)
        params = task.sample_params(q.shape[0], gen, variant="paper")
        ex_in, ex_out = task.apply(ex, params, exm)
        inputs[t], targets[t] = task.apply(q, params, qm)
        answers[t], _ = one_shot(model, ex_in, ex_out, inputs[t])
    out, hits, strict_hits = {}, [], []
    for t in TASKS:
        d = torch.stack([(answers[t] - targets[u]).pow(2).mean(dim=(1, 2, 3)) for u in TASKS], dim=1)
        own = d[:, TASKS.index(t)]
        hit = own <= d.min(dim=1).values + 1e-12
        moved = own < (inputs[t] - targets[t]).pow(2).mean(dim=(1, 2, 3))
        out[f"{t}_accuracy"] = hit.float().mean().item()
        out[f"{t}_strict"] = (hit & moved).float().mean().item()
        hits.append(hit)
        strict_hits.append(hit & moved)
    return {"accuracy": torch.cat(hits).float().mean().item(), "strict": torch.cat(strict_hits).float().mean().item(), **out}


@torch.no_grad()
def example_grid(model_spec: str, path: str, seed: int = 3) -> None:
    """A picture: one row per task — example in | example out | query | answer | target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    model = load_model(model_spec)
    ex, q = heldout_pairs(4, seed)
    sex, sexm, sq, sqm = heldout_scenes(4, seed + 100)
    gen = torch.Generator().manual_seed(seed)
    cols = ("example in", "example out", "query", "answer", "target")
    fig, axes = plt.subplots(len(TASKS), len(cols), figsize=(2.0 * len(cols), 2.1 * len(TASKS)))
    for r, t in enumerate(TASKS):
        task = get_task(t)
        params = task.sample_params(1, gen, variant="paper")
        e, qq, em, qm = (sex[r : r + 1], sq[r : r + 1], sexm[r : r + 1], sqm[r : r + 1]) if t == "segmentation" else (
            ex[r : r + 1], q[r : r + 1], None, None)
        ex_in, ex_out = task.apply(e, params, em)
        q_in, target = task.apply(qq, params, qm)
        answer, _ = one_shot(model, ex_in, ex_out, q_in)
        for c, img in enumerate((ex_in, ex_out, q_in, answer, target)):
            ax = axes[r, c]
            ax.imshow(img[0].clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_xticks([]), ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=10)
            if c == 0:
                ax.set_ylabel(t, fontsize=10)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=80)
    plt.close(fig)


def to_markdown(res: dict) -> str:
    r = res["rows"]
    ll, ip, co, sg, ti = r["lowlight"], r["inpainting"], r["colorization"], r["segmentation"], r["task_identification"]
    lines = [
        f"One-shot prompting, model `{res['model']}`, {res['n_images']} held-out queries ({', '.join(res['heldout_photos'])}), seed {res['seed']}",
        "",
        "| task | metric | model | reference |",
        "|---|---|---|---|",
        f"| low-light (0.5·image) | PSNR dB | {ll['psnr']:.2f} | dark input {ll['input_psnr']:.2f} |",
        f"| in-painting (27-px square) | hole PSNR dB | {ip['model_hole_psnr']:.2f} | Telea {ip['opencv_telea_hole_psnr']:.2f}, mean colour {ip['mean_colour_hole_psnr']:.2f} |",
        f"| in-painting | cell SSIM, hole pasted into the query (as tvrun shows it) | {ip['model_pasted_ssim']:.3f} | Telea {ip['opencv_telea_ssim']:.3f}, mean colour {ip['mean_colour_ssim']:.3f} |",
        f"| in-painting | cell SSIM of the raw answer (the model redraws the known pixels too) | {ip['model_ssim']:.3f} | |",
        f"| colorization | MSE (normalised) | {co['mse']:.3f} | grey input {co['input_mse']:.3f} |",
        f"| segmentation (held-out scenes) | IoU | {sg['iou']:.3f} | |",
        f"| the example decides the task | closest to own target | {ti['accuracy']:.1%} | |",
        f"| … and closer than the task's input | strict | {ti['strict']:.1%} | |",
    ]
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--model", default="tiny", show_default=True)
@click.option("--n", default=96, show_default=True, help="held-out queries per task")
@click.option("--seed", default=7, show_default=True)
@click.option("--json", "json_path", type=click.Path(dir_okay=False))
@click.option("--markdown", type=click.Path(dir_okay=False))
@click.option("--grid", type=click.Path(dir_okay=False), help="also draw a PNG grid of examples")
@click.option("--seen-unseen", is_flag=True,
              help="also in-paint crops of the training photos and fresh procedural scenes (does the model "
                   "in-paint, or recall the photos it was trained on?)")
@click.option("--bank", type=click.Path(exists=True),
              help="also every task on this image bank's training, validation and test pictures (taskvec data fetch)")
@click.option("--paint-sigma-sweep", "sweep", metavar="S1,S2,…",
              help="also the in-painting rows of --seen-unseen for each of these paint_sigma values")
def main(model, n, seed, json_path, markdown, grid, seen_unseen, bank, sweep) -> None:
    """Measure one-shot prompting quality on held-out photos and print a table."""
    sigmas = None
    if sweep:
        try:
            sigmas = [float(s) for s in sweep.split(",")]
        except ValueError:
            raise click.BadParameter(f"expected numbers like 0,2,4, got {sweep!r}", param_hint="--paint-sigma-sweep") from None
        if any(s < 0 for s in sigmas):
            raise click.BadParameter("σ must be ≥ 0", param_hint="--paint-sigma-sweep")
    res = evaluate_quality(model, n, seed)
    md = to_markdown(res)
    loaded = load_model(model) if seen_unseen or bank or sigmas is not None else None
    if seen_unseen:
        res["inpainting_seen_unseen"] = inpainting_seen_unseen(loaded, n, seed)
        md += "\n" + seen_unseen_markdown(res["inpainting_seen_unseen"])
    if bank:
        res["bank"] = bank_quality(loaded, bank, n, seed)
        md += "\n" + bank_markdown(res["bank"])
    if sigmas is not None:
        res["paint_sigma_sweep"] = paint_sigma_sweep(loaded, sigmas, n, seed)
        md += "\n" + sweep_markdown(res["paint_sigma_sweep"])
    click.echo(md)
    if json_path:
        Path(json_path).write_text(json.dumps(res, indent=2) + "\n")
    if markdown:
        Path(markdown).write_text(md)
    if grid:
        example_grid(model, grid)


if __name__ == "__main__":
    main()
