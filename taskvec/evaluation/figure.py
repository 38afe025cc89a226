"""Comparison grid: one row per held-out image, one column per method."""

from __future__ import annotations

from pathlib import Path

import torch

from taskvec.search.common import save_figure
from taskvec.evaluation.evaluate import method_answers, resolve_methods
from taskvec.data.imagesets import ImageSet, load_image_set
from taskvec.model.mae_vqgan import MaeVQGAN
from taskvec.vectors.taskvector import TaskVector

COLUMNS: tuple[tuple[str, str], ...] = (
    ("query", "query"), ("zero-shot", "zero-shot"), ("one-shot", "one-shot"), ("cma", "CMA"), ("grs", "GRS"),
    ("task-vector", "task vector"), ("target", "target"),
)  # fmt: skip


def comparison_grid(task: str, images: ImageSet, model: MaeVQGAN, methods: dict[str, TaskVector | None],
                    out: str | Path, seed: int = 1) -> Path:  # fmt: skip
    """Write a PNG grid (query | zero-shot | one-shot | CMA | GRS | task vector | target)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    answers, target, q_in, _ = method_answers(task, images, model, methods, seed)
    cells = {"query": q_in, "target": target, **answers}
    cols = [(k, title) for k, title in COLUMNS if k in cells]
    n = len(images)
    fig, axes = plt.subplots(n, len(cols), figsize=(1.6 * len(cols), 1.6 * n + 0.3), dpi=100, squeeze=False)
    for c, (key, title) in enumerate(cols):
        axes[0, c].set_title(title, fontsize=9)
        for r in range(n):
            ax = axes[r, c]
            ax.imshow(cells[key][r].clamp(0, 1).permute(1, 2, 0).numpy())
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(task, fontsize=10)
    fig.tight_layout()
    return save_figure(fig, out)


def run_figure(task: str, images: str, out: str, model_spec: str, rows: int = 6, taskvec_file: str | None = None,
               cma_file: str | None = None, grs_file: str | None = None, seed: int = 1,
               train_images: str | None = "packaged:train", skip_baselines: bool = False) -> Path:  # fmt: skip
    """The ``taskvec figure`` command as a function (a pairs task: its val pairs by default)."""
    from taskvec.data.imagesets import images_or_default
    from taskvec.data.tasks import get_task
    from taskvec.model.checkpoint import load_model

    task = get_task(task).name
    images = images_or_default(task, images, "val")
    model = load_model(model_spec)
    held_out = load_image_set(images, task, n=max(rows, 2), seed=seed)
    if len(held_out) > rows:
        held_out = held_out.split(rows)[0]
    methods = resolve_methods(task, model, taskvec_file, cma_file, grs_file, train_images, skip_baselines)
    with torch.inference_mode():
        return comparison_grid(task, held_out, model, methods, out, seed)
