"""What every site search shares: training queries, the batched objective, results, plots.

The objective scores K site-sets on R zero-shot queries in ONE forward of K·R canvases
(sample i uses patch row i // R, see :class:`taskvec.model.mae_vqgan.Patch`), so a search step
costs one batched forward rather than K·R small ones.

Rewards (``reward``):

- ``metric`` — the task's metric per query: PSNR (dB) or IoU for segmentation;
- ``mse`` — minus the MSE in ImageNet-normalised space (the paper's loss);
- ``changed`` — PSNR over the pixels the task changes (target ≠ query input): for
  in-painting the hole, the part a user keeps (``tvrun`` pastes only the hole back);
- ``auto`` — per task, what measured best for the shipped ``tiny`` vectors:
  ``changed`` for in-painting, ``mse`` for colorization (with PSNR the vector lost to
  zero-shot on MSE, the paper's colorization metric), ``metric`` otherwise (for
  segmentation ``mse`` improved the MSE but lost IoU to zero-shot).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from taskvec import geometry as G
from taskvec.distributed import Dist
from taskvec.data.imagesets import ImageSet, make_queries
from taskvec.evaluation.metrics import changed_pixels, hole_psnr, iou, mse_normalized, psnr
from taskvec.model.mae_vqgan import BlockId, MaeVQGAN
from taskvec.search import REWARDS
from taskvec.vectors.sites import SiteSpace
from taskvec.data.tasks import get_task

AUTO_REWARD = {"inpainting": "changed", "colorization": "mse"}
MAX_BATCH = 256  # canvases per forward; K·R above this is split over K


def resolve_reward(task: str, reward: str) -> str:
    if reward not in REWARDS:
        raise ValueError(f"unknown reward {reward!r}; choose from {', '.join(REWARDS)}")
    if reward == "auto":
        return AUTO_REWARD.get(task, "metric")
    return reward


def per_sample_reward(task: str, reward: str, pred: Tensor, target: Tensor, query: Tensor | None = None) -> Tensor:
    """[B,3,111,111] in [0,1] → reward per sample [B] (higher is better).

    ``changed`` needs the query inputs; a query the task leaves unchanged scores 100 dB."""
    r = resolve_reward(task, reward)
    if r == "mse":
        return -mse_normalized(pred, target)
    if r == "changed":
        if query is None:
            raise ValueError("the 'changed' reward needs the query inputs")
        return hole_psnr(pred, target, changed_pixels(query, target)).nan_to_num(100.0)
    return iou(pred, target) if get_task(task).metric == "iou" else psnr(pred, target)


class Queries:
    """Zero-shot queries from an image pool: task input canvases and targets."""

    def __init__(self, task: str, pool: ImageSet, variant: str = "paper") -> None:
        self.task, self.pool, self.variant = task, pool, variant

    def sample(self, r: int, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        """``r`` random queries → (normalised zero-shot canvases [r,3,224,224], targets [r,3,111,111])."""
        idx = torch.randint(0, len(self.pool), (r,), generator=gen)
        return self._build(idx, gen)

    def fixed(self, n: int, seed: int) -> tuple[Tensor, Tensor]:
        """The first ``n`` pool images (cycled) with task parameters from ``seed``."""
        idx = torch.arange(n) % len(self.pool)
        return self._build(idx, torch.Generator().manual_seed(seed))

    def _build(self, idx: Tensor, gen: torch.Generator) -> tuple[Tensor, Tensor]:
        m = self.pool.masks
        q_in, target = make_queries(self.task, self.pool.images[idx], None if m is None else m[idx], gen, self.variant)
        return G.normalize(G.make_canvas(None, None, q_in)), target


class Objective:
    """Scores site-sets: selection [K,S] {0,1} → reward [K,R] on R queries, batched."""

    def __init__(self, model: MaeVQGAN, task: str, space: SiteSpace, means: Mapping[BlockId, Tensor],
                 reward: str = "auto", max_batch: int = MAX_BATCH, dist: Dist | None = None) -> None:  # fmt: skip
        self.model, self.task, self.space, self.means = model, task, space, means
        self.reward = resolve_reward(task, reward)
        self.max_batch = max_batch
        self.dist = dist or Dist()
        self.layout = G.get_layout("zero-shot")
        self.forwards = 0  # canvases run so far (by all ranks together)

    @property
    def num_sites(self) -> int:
        return len(self.space)

    @torch.inference_mode()
    def answers(self, selection: Tensor, canvases: Tensor) -> Tensor:
        """selection [K,S], canvases [R,3,224,224] → answers [K,R,3,111,111]."""
        sel = selection.reshape(-1, self.num_sites)
        k_all, r = sel.shape[0], canvases.shape[0]
        step = max(1, self.max_batch // r)
        dev = next(self.model.parameters()).device
        outs = []
        for k0 in range(0, k_all, step):
            s = sel[k0 : k0 + step].to(dev)
            patches = self.space.patches(s, self.means)
            batch = canvases.to(dev).repeat(s.shape[0], 1, 1, 1)
            outs.append(self.model(batch, self.layout, patches=patches).answer.cpu())
            self.forwards += batch.shape[0]
        return torch.cat(outs).reshape(k_all, r, *outs[0].shape[1:])

    def score(self, selection: Tensor, canvases: Tensor, targets: Tensor) -> Tensor:
        """Reward per site-set and query [K,R].

        Across processes each rank scores its contiguous slice of the K·R (site-set,
        query) pairs (:func:`pair_blocks`) and the rewards are all-gathered, so every rank
        gets the same [K,R]; in one process that is one call on the whole grid."""
        sel = selection.reshape(-1, self.num_sites)
        k, r = sel.shape[0], canvases.shape[0]
        before = self.forwards
        lo, hi = self.dist.shard(k * r)
        parts = [self._score(sel[k0:k1], canvases[q0:q1], targets[q0:q1]).reshape(-1)
                 for k0, k1, q0, q1 in pair_blocks(lo, hi, r)]  # fmt: skip
        mine = torch.cat(parts) if parts else torch.empty(0)
        sizes = [b - a for a, b in (self.dist.shard(k * r, i) for i in range(self.dist.world_size))]
        self.forwards = before + k * r
        return self.dist.all_gather_cat(mine, sizes).reshape(k, r)

    def _score(self, sel: Tensor, canvases: Tensor, targets: Tensor) -> Tensor:
        """The rewards [K',R'] of site-sets ``sel`` [K',S] on these R' queries, in this process."""
        ans = self.answers(sel, canvases)
        k, r = ans.shape[:2]
        tgt = targets.repeat(k, 1, 1, 1)
        # only the "changed" reward looks at the query inputs; skip the copy on every other step
        query = G.denormalize(G.get_cell(canvases, "query")).repeat(k, 1, 1, 1) if self.reward == "changed" else None
        return per_sample_reward(self.task, self.reward, ans.reshape(k * r, *ans.shape[2:]), tgt, query).reshape(k, r)


def pair_blocks(lo: int, hi: int, r: int) -> list[tuple[int, int, int, int]]:
    """Pairs ``[lo, hi)`` of a K×R grid (pair i = site-set i // r, query i % r) as rectangles
    ``(k0, k1, q0, q1)`` in pair order: a partial first row, whole rows, a partial last row."""
    out: list[tuple[int, int, int, int]] = []
    if hi <= lo:
        return out
    k0, q0 = divmod(lo, r)
    k1, q1 = divmod(hi, r)
    if k0 == k1:
        return [(k0, k0 + 1, q0, q1)]
    if q0:
        out.append((k0, k0 + 1, q0, r))
        k0 += 1
    if k1 > k0:
        out.append((k0, k1, 0, r))
    if q1:
        out.append((k1, k1 + 1, 0, q1))
    return out


@dataclass
class SearchResult:
    """Outcome of one search: the chosen selection [S] and the curve."""

    method: str
    selection: Tensor  # [S] in {0,1}
    history: list[dict[str, float]] = field(default_factory=list)
    probs: Tensor | None = None  # REINFORCE: final p per site
    scores: Tensor | None = None  # CMA: gain per site
    config: dict[str, Any] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)  # train/val reward of the final set, zero-shot

    @property
    def num_selected(self) -> int:
        return int(self.selection.sum().item())


def config_dict(cfg: Any) -> dict[str, Any]:
    return asdict(cfg)


def plot_curve(result: SearchResult, path: str | Path, title: str) -> Path:
    """PNG of the search curve: reward (left axis) and patched-site count (right) per step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = result.history
    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    xs = [e["step"] for e in h]
    for key, style in (("reward", "-"), ("best", "--"), ("val", "o-")):
        pts = [(e["step"], e[key]) for e in h if key in e]
        if pts:
            ax.plot(*zip(*pts), style, label=key, markersize=3)
    zs = result.summary.get("zero_shot_val")
    if zs is not None and xs:
        ax.axhline(zs, color="grey", lw=0.8, ls=":", label="zero-shot (val)")
    ax.set_xlabel("step")
    ax.set_ylabel(f"reward ({result.config.get('reward', '')})")
    ax.legend(loc="lower right", fontsize=8)
    ax2 = ax.twinx()
    pts = [(e["step"], e["sites"]) for e in h if "sites" in e]
    if pts:
        ax2.plot(*zip(*pts), color="tab:red", alpha=0.4, lw=1)
    ax2.set_ylabel("patched sites", color="tab:red")
    ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path)


def save_figure(fig, path: str | Path) -> Path:
    """Write a matplotlib figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    from taskvec.errors import atomic_path

    path = Path(path)
    try:
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return path
