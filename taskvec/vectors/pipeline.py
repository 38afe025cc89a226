"""The collect/search commands as functions (what the CLI shells and the scripts call)."""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from taskvec.vectors.activations import RunningMeans, collect_means
from taskvec.model.checkpoint import model_fingerprint
from taskvec.distributed import Dist
from taskvec.errors import UserError
from taskvec.data.imagesets import ImageSet, images_or_default, load_image_set
from taskvec.data.tasks import get_task
from taskvec.model.mae_vqgan import MaeVQGAN
from taskvec.vectors.taskvector import TaskVector

POOL_SEED = 0  # the packaged training pool is the same for every method and search seed
SAVE_EVERY_S = 30.0


def collect_to_file(
    model: MaeVQGAN, task: str, pool: ImageSet, out: str | Path, n: int, batch: int = 64, seed: int = 0,
    resume: bool = False, progress: bool = True, variant: str = "paper", dist: Dist | None = None,
    save_every_s: float = SAVE_EVERY_S,
) -> RunningMeans:  # fmt: skip
    """Collect (or, with ``resume``, continue collecting) means into ``out``.

    Saved every ``save_every_s`` seconds and on Ctrl-C (one process), so an interrupted
    run can be resumed exactly, also with another number of processes. Across
    processes (``dist``) every rank must see the same state; rank 0 writes."""
    dist = dist or Dist()
    out = Path(out)
    previous = None
    with dist.together():
        if n < 1:
            raise UserError("--n must be at least 1")
        if resume and out.exists():
            previous = RunningMeans.load(out)
            if previous.info.get("images") != pool.source:
                raise UserError(f"{out} was collected from {previous.info.get('images')!r}, not {pool.source!r}")
    if resume and previous is None and dist.is_main:
        print(f"note: {out} does not exist yet; starting a new collection", file=sys.stderr)
    state = previous.info if previous is not None else {"n_seen": 0, "seed": seed, "batch": batch, "variant": variant}
    dist.agree("collection", {"task": task, "n": n, "images": pool.source, "pool": pool_digest(pool),
                              "model": model_fingerprint(model),
                              **{k: state.get(k) for k in ("n_seen", "seed", "batch", "variant")}})  # fmt: skip
    saved = [previous.n_seen if previous else 0]

    def save(rm: RunningMeans) -> None:
        rm.save(out)
        saved[0] = rm.n_seen

    gen = torch.Generator().manual_seed(seed)
    try:
        rm = collect_means(model, task, pool.images, n, batch, gen, variant, masks=pool.masks, resume=previous,
                           source=pool.source, save=save, save_every_s=save_every_s, progress=progress,
                           dist=dist)  # fmt: skip
    except KeyboardInterrupt:
        if saved[0] > (previous.n_seen if previous else 0):
            print(f"saved {saved[0]} canvases to {out}; continue with --resume", file=sys.stderr)
        raise
    if dist.is_main:
        rm.save(out)
    return rm


def pool_digest(pool: ImageSet) -> str:
    """A cheap fingerprint of an image pool (ranks on other nodes must load the same images)."""
    parts = [pool.images] + ([pool.masks] if pool.masks is not None else [])
    return f"{len(pool)}:" + ":".join(f"{float(t.sum(dtype=torch.float64)):.6f}" for t in parts)


def run_collect(task: str, images: str, out: str, model_spec: str, n: int, batch: int, seed: int, pool_size: int,
                resume: bool, variant: str = "paper", dist: Dist | None = None,
                save_every_s: float = SAVE_EVERY_S) -> RunningMeans:  # fmt: skip
    from taskvec.model.checkpoint import load_model

    dist = dist or Dist()
    with dist.together():
        task = get_task(task).name  # pairs:DIR → its registry name (folder read and hashed)
        images = images_or_default(task, images, "train")
        model = load_model(model_spec, device=dist.device)
        pool = load_image_set(images, task, n=pool_size, seed=POOL_SEED)
    return collect_to_file(model, task, pool, out, n, batch, seed, resume, variant=variant, dist=dist,
                           save_every_s=save_every_s)  # fmt: skip


def means_for(model: MaeVQGAN, task: str, pool: ImageSet, means_file: str | None, n_means: int,
              progress: bool = True, variant: str = "paper", dist: Dist | None = None) -> RunningMeans:  # fmt: skip
    """Means from ``means_file`` (checked against task and model), or collected now (across ``dist``)."""
    if means_file:
        rm = RunningMeans.load(means_file)
        if rm.task != task:
            raise UserError(f"{means_file} holds means for {rm.task!r}, not {task!r}")
        rm.check_model(model)
        if rm.info.get("variant", "paper") != variant:
            raise UserError(f"{means_file} holds {rm.info.get('variant')!r} means, not {variant!r}")
        return rm
    return collect_means(model, task, pool.images, n_means, min(64, n_means), torch.Generator().manual_seed(0), variant,
                         masks=pool.masks, source=pool.source, progress=progress, dist=dist)  # fmt: skip


def run_search_cli(task: str, images: str, out: str, method: str, granularity: str, steps: int | None, seed: int,
                   means_file: str | None, n_means: int, reward: str, model_spec: str, pool_size: int,
                   variant: str = "paper", dist: Dist | None = None, **overrides) -> TaskVector:  # fmt: skip
    """``taskvec search``: on every rank the same search (objective calls sharded); rank 0 writes."""
    from taskvec.model.checkpoint import load_model_ref
    from taskvec.search.driver import run_search, save_search

    dist = dist or Dist()
    with dist.together():
        task = get_task(task).name
        images = images_or_default(task, images, "all")
        model, _, model_fp = load_model_ref(model_spec, device=dist.device)
        pool = load_image_set(images, task, n=pool_size, seed=POOL_SEED)
        means = means_for(model, task, pool, means_file, n_means, variant=variant) if means_file else None
    # a pairs task's means come from its train pairs only (its validation pairs stay unseen)
    means_pool = pool.split(pool.val_start)[0] if pool.val_start is not None else pool
    if means is None:
        means = means_for(model, task, means_pool, None, n_means, variant=variant, dist=dist, progress=dist.is_main)
    dist.agree("search", {"task": task, "method": method, "granularity": granularity, "steps": steps, "seed": seed,
                          "reward": reward, "variant": variant, "images": pool.source, "pool": pool_digest(pool),
                          "model": model_fp, "means": {k: means.info.get(k) for k in
                          ("n_seen", "seed", "batch", "model_fingerprint")}, **overrides})  # fmt: skip
    result, tv = run_search(model, means, pool, method, granularity, reward, seed, steps, variant=variant,
                            progress=dist.is_main, dist=dist, **overrides)  # fmt: skip
    tv.meta["command"] = "taskvec " + " ".join(sys.argv[1:])
    if dist.is_main:
        save_search(result, tv, out)
    return tv
