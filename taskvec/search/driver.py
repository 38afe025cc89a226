"""Site search front door: one call from (model, task, means, images) to a task vector.

The methods live in their own modules — :mod:`taskvec.search.reinforce` (the product's
method), :mod:`taskvec.search.cma` and :mod:`taskvec.search.grs` (baselines) — and all
run on the same sites (:func:`taskvec.vectors.sites.enumerate_sites`), the same means and the
same training/validation split of the image pool, with the batched objective of
:mod:`taskvec.search.common`. A fixed seed gives an identical result.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from taskvec.vectors.activations import RunningMeans
from taskvec.distributed import Dist, digest
from taskvec.errors import UserError
from taskvec.data.imagesets import ImageSet
from taskvec.model.mae_vqgan import MaeVQGAN
from taskvec.search import METHODS
from taskvec.search.cma import CmaConfig, search_cma
from taskvec.search.common import Objective, Queries, SearchResult, plot_curve
from taskvec.search.grs import GrsConfig, search_grs
from taskvec.search.reinforce import ReinforceConfig, search_reinforce
from taskvec.vectors.sites import SiteSpace, enumerate_sites
from taskvec.data.pairs import task_identity
from taskvec.vectors.taskvector import TaskVector, make_taskvector

_RUNNERS = {"reinforce": (ReinforceConfig, search_reinforce), "cma": (CmaConfig, search_cma), "grs": (GrsConfig, search_grs)}
# --steps means: REINFORCE steps; GRS at most that many rounds; CMA has no steps.
_STEPS_FIELD = {"reinforce": "steps", "grs": "max_rounds"}


def make_config(method: str, seed: int = 0, steps: int | None = None, **overrides: Any):
    """The method's config dataclass with ``seed``, ``steps`` and any field overrides."""
    if method not in _RUNNERS:
        raise UserError(f"unknown search method {method!r}; choose from {', '.join(METHODS)}")
    cls = _RUNNERS[method][0]
    fields = {f.name for f in dataclasses.fields(cls)}
    kw = {k: v for k, v in overrides.items() if v is not None}
    unknown = set(kw) - fields
    if unknown:
        raise UserError(f"{method} has no option {sorted(unknown)[0]!r}")
    if steps is not None and method in _STEPS_FIELD:
        kw[_STEPS_FIELD[method]] = steps
    return cls(seed=seed, **kw)


def run_search(
    model: MaeVQGAN,
    means: RunningMeans,
    pool: ImageSet,
    method: str = "reinforce",
    granularity: str = "region",
    reward: str = "auto",
    seed: int = 0,
    steps: int | None = None,
    val_fraction: float = 0.25,
    progress: bool = True,
    variant: str = "paper",
    dist: Dist | None = None,
    **overrides: Any,
) -> tuple[SearchResult, TaskVector]:
    """Search sites for ``means.task`` on ``pool`` (split into train / validation queries).

    With ``dist`` across several processes every rank runs this same search on the same
    data; only the objective's forwards are sharded (rewards all-gathered), so every
    rank takes the same decisions — checked at the end."""
    dist = dist or Dist()
    means.check_model(model)
    task = means.task
    cfg = make_config(method, seed, steps, **overrides)
    sites = enumerate_sites(model.cfg, granularity)  # type: ignore[arg-type]
    space = SiteSpace(model.cfg, sites)
    if pool.val_start is not None:  # a pairs task: its own split by name
        train_pool, val_pool = pool.split(pool.val_start)
    else:
        n_val = max(1, int(round(len(pool) * val_fraction)))
        if len(pool) - n_val < 1:
            raise UserError(f"need at least 2 images to search, got {len(pool)}")
        train_pool, val_pool = pool.split(len(pool) - n_val)
    obj = Objective(model, task, space, means.means(), reward, dist=dist)
    runner = _RUNNERS[method][1]
    result = runner(obj, Queries(task, train_pool, variant), Queries(task, val_pool, variant), cfg, progress=progress)  # type: ignore[operator]
    dist.agree("search result", {"selection": digest(result.selection)})
    result.config.update(reward=obj.reward, granularity=granularity, forwards=obj.forwards, world_size=dist.world_size)
    meta: dict[str, Any] = {
        "search": {"method": method, **result.config},
        "data": {"images": pool.source, "variant": variant, "train": len(train_pool), "val": len(val_pool)},
        "metrics": result.summary,
    }
    if result.probs is not None:
        meta["site_probabilities"] = {str(s): round(float(p), 4) for s, p in zip(sites, result.probs)}
    if result.scores is not None:
        meta["site_gains"] = {str(s): round(float(g), 4) for s, g in zip(sites, result.scores)}
    identity = task_identity(task)
    if identity is not None:
        meta["task_identity"] = identity
    tv = make_taskvector(model, means, sites, result.selection, method=method, granularity=granularity, **meta)
    return result, tv


def save_search(result: SearchResult, tv: TaskVector, out: str | Path) -> tuple[Path, Path]:
    """Write the vector (``out`` + JSON) and its curve (``out`` with .png). Returns both paths."""
    out = Path(out)
    png = out.with_suffix(".png")
    title = f"{result.method} · {tv.task} · {tv.num_sites} sites"
    tv.save(out, extra={png: lambda tmp: plot_curve(result, tmp, title)})  # one artifact: curve, sidecar, vector
    return out, png
