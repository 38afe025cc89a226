"""The collect/search commands as functions (what the CLI shells and the scripts call)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from taskvec.activations import RunningMeans, collect_means
from taskvec.errors import UserError
from taskvec.imagesets import ImageSet, load_image_set
from taskvec.model import MaeVQGAN
from taskvec.taskvector import TaskVector

POOL_SEED = 0  # the packaged training pool is the same for every method and search seed
SAVE_EVERY_S = 30.0


def collect_to_file(
    model: MaeVQGAN, task: str, pool: ImageSet, out: str | Path, n: int, batch: int = 64, seed: int = 0,
    resume: bool = False, progress: bool = True, variant: str = "paper",
) -> RunningMeans:  # fmt: skip
    """Collect (or, with ``resume``, continue collecting) means into ``out``.

    Saved every 30 s and on Ctrl-C, so an interrupted run can be resumed exactly."""
    out = Path(out)
    previous = None
    if resume and out.exists():
        previous = RunningMeans.load(out)
        if previous.info.get("images") != pool.source:
            raise UserError(f"{out} was collected from {previous.info.get('images')!r}, not {pool.source!r}")
    elif resume:
        print(f"note: {out} does not exist yet; starting a new collection", file=sys.stderr)
    if n < 1:
        raise UserError("--n must be at least 1")
    last = [time.monotonic()]

    state: list[RunningMeans] = []

    def on_window(rm: RunningMeans) -> None:
        if not state:
            state.append(rm)
        if time.monotonic() - last[0] > SAVE_EVERY_S and rm.n_seen < n:
            rm.save(out)
            last[0] = time.monotonic()

    gen = torch.Generator().manual_seed(seed)
    try:
        rm = collect_means(model, task, pool.images, n, batch, gen, variant, masks=pool.masks, resume=previous,
                           source=pool.source, on_window=on_window,
                           progress=progress)  # fmt: skip
    except KeyboardInterrupt:
        if state and state[0].n_seen > (previous.n_seen if previous else 0):
            state[0].save(out)
            print(f"saved {state[0].n_seen} canvases to {out}; continue with --resume", file=sys.stderr)
        raise
    rm.save(out)
    return rm


def run_collect(task: str, images: str, out: str, model_spec: str, n: int, batch: int, seed: int, pool_size: int,
                resume: bool, variant: str = "paper") -> RunningMeans:  # fmt: skip
    from taskvec.checkpoint import load_model

    model = load_model(model_spec)
    pool = load_image_set(images, task, n=pool_size, seed=POOL_SEED)
    return collect_to_file(model, task, pool, out, n, batch, seed, resume, variant=variant)


def means_for(model: MaeVQGAN, task: str, pool: ImageSet, means_file: str | None, n_means: int,
              progress: bool = True, variant: str = "paper") -> RunningMeans:  # fmt: skip
    """Means from ``means_file`` (checked against task and model), or collected now."""
    if means_file:
        rm = RunningMeans.load(means_file)
        if rm.task != task:
            raise UserError(f"{means_file} holds means for {rm.task!r}, not {task!r}")
        rm.check_model(model)
        if rm.info.get("variant", "paper") != variant:
            raise UserError(f"{means_file} holds {rm.info.get('variant')!r} means, not {variant!r}")
        return rm
    return collect_means(model, task, pool.images, n_means, min(64, n_means), torch.Generator().manual_seed(0), variant,
                         masks=pool.masks,
                         source=pool.source, progress=progress)  # fmt: skip


def run_search_cli(task: str, images: str, out: str, method: str, granularity: str, steps: int | None, seed: int,
                   means_file: str | None, n_means: int, reward: str, model_spec: str, pool_size: int,
                   variant: str = "paper", **overrides) -> TaskVector:  # fmt: skip
    from taskvec.checkpoint import load_model
    from taskvec.search import run_search, save_search

    model = load_model(model_spec)
    pool = load_image_set(images, task, n=pool_size, seed=POOL_SEED)
    means = means_for(model, task, pool, means_file, n_means, variant=variant)
    result, tv = run_search(model, means, pool, method, granularity, reward, seed, steps, variant=variant, **overrides)
    tv.meta["command"] = "taskvec " + " ".join(sys.argv[1:])
    save_search(result, tv, out)
    return tv
