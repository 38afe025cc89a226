"""The same task defined two ways: a folder of pairs (``--task pairs:DIR``) vs the built-in task.

    python -m benchmarks.pairs_vs_builtin                        # tiny, lowlight + segmentation
    python -m benchmarks.pairs_vs_builtin --steps 60 --n-means 256

For each kind the pairs are made from crops of the packaged *validation* photos
(:data:`taskvec.data.images.VAL_PHOTOS`, never seen by the tiny model in training), written
as PNG pairs (``taskvec data example-pairs``): ``lowlight`` = (0.5·photo, photo), the built-in
paper construction; ``masks`` = (scene, foreground mask), the built-in segmentation one. The
built-in task gets the *same* clean images (for segmentation: ``images/`` + ``masks/``) in the
order train pairs → validation pairs, so its own 75/25 split is the pairs' split by name.

Both vectors: means from ``taskvec collect`` on the train pairs only (same n, seed), then
REINFORCE with the same steps and seed. Every row is measured on the pairs' validation split
(the same images for both definitions): zero-shot, one-shot, the two searched vectors, and the
shipped built-in vector (what a user would otherwise pick). The validation split is what is
reported; nothing is chosen on it. Writes JSON and markdown.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from pathlib import Path

import click

DEFAULT_JSON = "benchmarks/results/pairs_vs_builtin_tiny.json"
BUILTIN = {"lowlight": "lowlight", "masks": "segmentation"}
METRIC = {"lowlight": "psnr", "masks": "iou"}
TOLERANCE = {"psnr": 0.5, "iou": 0.02}


def builtin_folder(task, split: str, out: Path, kind: str) -> Path:
    """The clean images (and masks) of the pairs' ``split`` as a folder the built-in task reads."""
    idx = task.split_index(split)
    if kind == "masks":
        for sub in ("images", "masks"):
            (out / sub).mkdir(parents=True)
    else:
        out.mkdir(parents=True)
    for rank, i in enumerate(idx):
        name = f"{rank:03d}_{task.names[i]}.png"  # the order train → val survives the folder's sort
        src_in = Path(task.folder) / "input" / f"{task.names[i]}.png"
        src_tgt = Path(task.folder) / "target" / f"{task.names[i]}.png"
        if kind == "masks":
            shutil.copy(src_in, out / "images" / name)
            shutil.copy(src_tgt, out / "masks" / name)
        else:
            shutil.copy(src_tgt, out / name)  # the built-in task darkens the clean image itself
    return out


def measure(kind: str, n_pairs: int, steps: int, n_means: int, seed: int, work: Path, model: str) -> dict:
    from taskvec.data.pairs_demo import write_example_pairs
    from taskvec.data.tasks import get_task
    from taskvec.evaluation.evaluate import run_evaluate
    from taskvec.vectors.pipeline import run_collect, run_search_cli

    pairs = write_example_pairs(work / kind, kind, n_pairs, photos="val", seed=seed)
    task = get_task(f"pairs:{pairs}")
    builtin = BUILTIN[kind]
    folders = {s: builtin_folder(task, s, work / f"{kind}-builtin-{s}", kind) for s in ("train", "val", "all")}
    t0 = time.perf_counter()
    vectors, timings = {}, {}
    for name, spec, train, all_ in (("pairs", f"pairs:{pairs}", "train", "all"),
                                    ("builtin", builtin, str(folders["train"]), str(folders["all"]))):  # fmt: skip
        means = work / f"{kind}-{name}-means.safetensors"
        tv = work / f"{kind}-{name}.safetensors"
        t1 = time.perf_counter()
        run_collect(spec, train, str(means), model, n_means, min(64, n_means), 0, 512, False)
        run_search_cli(spec, all_, str(tv), "reinforce", "region", steps, 0, str(means), n_means, "auto", model, 512)
        vectors[name], timings[name] = str(tv), round(time.perf_counter() - t1, 1)
    rows = {}
    res_pairs = run_evaluate(f"pairs:{pairs}", "val", model, vectors["pairs"], None, None, skip_baselines=True)
    res_builtin = run_evaluate(builtin, str(folders["val"]), model, vectors["builtin"], None, None, skip_baselines=True)
    res_shipped = run_evaluate(builtin, str(folders["val"]), model, None, None, None, skip_baselines=True)
    m = METRIC[kind]
    for label, res in (("pairs", res_pairs), ("builtin", res_builtin), ("shipped", res_shipped)):
        for row in res["rows"]:
            key = {"task-vector": f"{label} vector"}.get(row["method"], f"{row['method']} ({label} definition)")
            rows[key] = {k: round(v, 4) for k, v in row["metrics"].items()} | {"sites": row.get("sites")}
    gap = rows["pairs vector"][m] - rows["builtin vector"][m]
    return {
        "kind": kind, "builtin_task": builtin, "metric": m, "pairs": n_pairs, "val_pairs": len(task.val_names),
        "val_names": list(task.val_names), "photos": "packaged val (coffee, chelsea, rocket)",
        "task_identity": task.identity(), "rows": rows, "gap_pairs_minus_builtin": round(gap, 4),
        "tolerance": TOLERANCE[m], "within_tolerance": abs(gap) <= TOLERANCE[m], "search_seconds": timings,
        "seconds": round(time.perf_counter() - t0, 1),
    }  # fmt: skip


def markdown(report: dict) -> str:
    cfg = report["config"]
    lines = [f"# The same task defined two ways: pairs folder vs built-in task ({cfg['model']})", "",
             f"REINFORCE {cfg['steps']} steps, seed 0; means over {cfg['n_means']} canvases of the train pairs; "
             f"{cfg['n_pairs']} pairs per kind from crops of the packaged validation photos; every number on the "
             "pairs' validation split (split by name), the same images for both definitions.", "",
             "| kind | metric | zero-shot | one-shot | built-in vector (searched here) | pairs vector | gap | "
             "shipped built-in vector | within tolerance |", "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in report["results"]:
        m, rows = r["metric"], r["rows"]
        f = (lambda v: f"{v:.2f} dB") if m == "psnr" else (lambda v: f"{v:.3f}")
        lines.append(f"| {r['kind']} ({r['builtin_task']}) | {m} | {f(rows['zero-shot (pairs definition)'][m])} | "
                     f"{f(rows['one-shot (pairs definition)'][m])} | {f(rows['builtin vector'][m])} "
                     f"({rows['builtin vector']['sites']} sites) | {f(rows['pairs vector'][m])} "
                     f"({rows['pairs vector']['sites']} sites) | {r['gap_pairs_minus_builtin']:+.3f} | "
                     f"{f(rows['shipped vector'][m])} | {'yes' if r['within_tolerance'] else 'NO'} "
                     f"(±{r['tolerance']}) |")  # fmt: skip
    lines += ["", f"Zero-shot of the built-in definition on the same images: " + ", ".join(
        f"{r['kind']} {r['rows']['zero-shot (builtin definition)'][r['metric']]:.3f}" for r in report["results"]), ""]
    return "\n".join(lines)


@click.command()
@click.option("--model", default="tiny", show_default=True)
@click.option("--kinds", default="lowlight,masks", show_default=True)
@click.option("--pairs", "n_pairs", default=48, show_default=True, type=click.IntRange(min=4))
@click.option("--steps", default=60, show_default=True, type=click.IntRange(min=1))
@click.option("--n-means", default=256, show_default=True, type=click.IntRange(min=2))
@click.option("--seed", default=7, show_default=True, help="seed of the crops/scenes the pairs are made from")
@click.option("--json", "json_out", default=DEFAULT_JSON, show_default=True)
def main(model, kinds, n_pairs, steps, n_means, seed, json_out) -> None:
    """Pairs-defined vs built-in task vector on the same validation images."""
    from taskvec.errors import atomic_path

    results = []
    with tempfile.TemporaryDirectory(prefix="pairs-vs-builtin-") as tmp:
        for kind in kinds.split(","):
            results.append(measure(kind, n_pairs, steps, n_means, seed, Path(tmp), model))
            print(json.dumps({k: results[-1][k] for k in ("kind", "gap_pairs_minus_builtin", "within_tolerance")}))
    report = {"config": {"model": model, "steps": steps, "n_means": n_means, "n_pairs": n_pairs, "seed": seed,
                         "command": "python -m benchmarks.pairs_vs_builtin"}, "results": results}  # fmt: skip
    out = Path(json_out)
    with atomic_path(out) as t:
        t.write_text(json.dumps(report, indent=2) + "\n")
    with atomic_path(out.with_suffix(".md")) as t:
        t.write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
