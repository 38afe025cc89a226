"""Patch sites: where a task vector may replace head outputs (DESIGN §3).

A :class:`Site` is (stage, block, head, region). Regions are ``cls``, ``query`` and
``answer`` (decoder only) at the default "region" granularity; ``all`` (every token the
layout gives the block) at "head" granularity; ``slot:N`` (one canvas token) at
"token" granularity. For the reference ViT-L that is 24·16·2 + 8·16·3 = 1152 region
sites in the zero-shot layout.

:class:`SiteSpace` turns a 0/1 selection over sites — one row per candidate, K rows at
once — into per-block :class:`~taskvec.model.mae_vqgan.Patch` constants ``mul``/``add`` so K
different site-sets run in one batched forward.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Mapping, Sequence, get_args

import torch
from torch import Tensor

from taskvec import geometry as G
from taskvec.model.config import ModelConfig
from taskvec.model.mae_vqgan import BlockId, Patch, Stage

Granularity = Literal["head", "region", "token"]
GRANULARITIES: tuple[str, ...] = get_args(Granularity)
STAGE_REGIONS: dict[str, tuple[str, ...]] = {"enc": ("cls", "query"), "dec": ("cls", "query", "answer")}


@dataclass(frozen=True, order=True)
class Site:
    stage: Stage
    block: int
    head: int
    region: str  # "all" | "cls" | "query" | "answer" | "slot:N"

    @property
    def block_id(self) -> BlockId:
        return BlockId(self.stage, self.block)

    def slots(self, layout: G.Layout) -> list[int]:
        """The slots this site covers in ``layout``."""
        present = layout.slots(self.stage)
        if self.region == "all":
            return list(present)
        if self.region.startswith("slot:"):
            wanted = [int(self.region[5:])]
        else:
            wanted = G.region_slots(self.region)  # type: ignore[arg-type]
        keep = set(present)
        return [s for s in wanted if s in keep]

    def __str__(self) -> str:
        return f"{self.block_id}/h{self.head:02d}/{self.region}"

    @classmethod
    def parse(cls, text: str) -> "Site":
        stage, b, h, region = text.split("/", 3)
        bid = BlockId.parse(f"{stage}/{b}")
        if not h.startswith("h") or not h[1:].isdigit():
            raise ValueError(f"not a site name: {text!r}")
        return cls(bid.stage, bid.block, int(h[1:]), region)


def enumerate_sites(
    cfg: ModelConfig, granularity: Granularity = "region", layout: G.Layout | None = None
) -> list[Site]:
    """Every site of ``cfg`` in ``layout`` (zero-shot by default), in a fixed order."""
    layout = layout or G.get_layout("zero-shot")
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}; choose from {', '.join(GRANULARITIES)}")
    sites: list[Site] = []
    for stage, depth, heads in (("enc", cfg.depth, cfg.num_heads), ("dec", cfg.decoder_depth, cfg.decoder_num_heads)):
        if granularity == "head":
            regions = ["all"]
        elif granularity == "region":
            regions = list(STAGE_REGIONS[stage])
        else:
            regions = [f"slot:{s}" for s in layout.slots(stage)]  # type: ignore[arg-type]
        for b in range(depth):
            for h in range(heads):
                for r in regions:
                    site = Site(stage, b, h, r)  # type: ignore[arg-type]
                    if site.slots(layout):
                        sites.append(site)
    return sites


class SiteSpace:
    """Sites of one model in one layout, with the matrices that turn selections into patches."""

    def __init__(self, cfg: ModelConfig, sites: Sequence[Site], layout: G.Layout | None = None) -> None:
        self.cfg = cfg
        self.layout = layout or G.get_layout("zero-shot")
        self.sites = list(sites)
        self._blocks: dict[BlockId, tuple[Tensor, Tensor]] = {}
        groups: dict[BlockId, list[int]] = {}
        for i, s in enumerate(self.sites):
            groups.setdefault(s.block_id, []).append(i)
        for bid, idx in sorted(groups.items()):
            slots = self.layout.slots(bid.stage)
            heads = cfg.num_heads if bid.stage == "enc" else cfg.decoder_num_heads
            pos = {s: n for n, s in enumerate(slots)}
            ind = torch.zeros(len(idx), len(slots), heads)
            for row, i in enumerate(idx):
                site = self.sites[i]
                for s in site.slots(self.layout):
                    ind[row, pos[s], site.head] = 1.0
            self._blocks[bid] = (torch.tensor(idx), ind)

    def __len__(self) -> int:
        return len(self.sites)

    def coverage(self, selection: Tensor) -> dict[BlockId, Tensor]:
        """selection [K,S] (or [S]) in {0,1} → per block the patched entries [K,N,H] in {0,1}."""
        sel = selection.reshape(-1, len(self.sites)).float()
        out = {}
        for bid, (idx, ind) in self._blocks.items():
            ind = ind.to(sel.device)
            cover = (sel[:, idx.to(sel.device)] @ ind.reshape(ind.shape[0], -1)).clamp(max=1.0)
            out[bid] = cover.reshape(sel.shape[0], *ind.shape[1:])
        return out

    def patches(self, selection: Tensor, means: Mapping[BlockId, Tensor]) -> dict[BlockId, Patch]:
        """Patch constants for K site-sets at once.

        ``means[bid]`` is the task's mean head output per slot, [197,H,Dh]. Returns
        ``mul``/``add`` of shape [K,N,C] for every block with at least one selected site."""
        out: dict[BlockId, Patch] = {}
        for bid, cover in self.coverage(selection).items():
            if not bool(cover.any()):
                continue
            mean = means[bid].to(cover.device)
            seq = mean[torch.tensor(self.layout.slots(bid.stage), device=cover.device)]  # [N,H,Dh]
            k, n, h = cover.shape
            p = cover[..., None]
            out[bid] = Patch(
                mul=(1.0 - p).expand(k, n, h, seq.shape[-1]).reshape(k, n, -1),
                add=(p * seq[None]).reshape(k, n, -1),
            )
        return out

    def names(self) -> list[str]:
        return [str(s) for s in self.sites]
