"""CMA baseline: causal mediation analysis, after Todd et al.'s function vectors.

Each site is scored alone by the gain of patching only it into zero-shot prompts
(all S single-site sets in batched forwards), sites are ranked by gain, and the
top-k set is kept with k chosen on validation queries (all candidate k in one
batched call).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from taskvec.search.common import Objective, Queries, SearchResult, config_dict


@dataclass
class CmaConfig:
    n_train: int = 8  # queries that score single sites
    n_val: int = 16  # queries that choose k
    seed: int = 0
    chunk: int = 16  # single-site sets per objective call (progress granularity)


def candidate_ks(num_sites: int) -> list[int]:
    """1, 2, 3, 4, 6, 8, 12, 16, … (≈ ×1.5) up to ``num_sites``, always ending with it."""
    ks, k = [], 1
    while k < num_sites:
        ks.append(k)
        k = max(k + 1, int(round(k * 1.5)))
    return ks + [num_sites]


def search_cma(obj: Objective, train: Queries, val: Queries, cfg: CmaConfig = CmaConfig(), progress: bool = True) -> SearchResult:
    s = obj.num_sites
    tr_c, tr_t = train.fixed(cfg.n_train, seed=cfg.seed)
    val_c, val_t = val.fixed(cfg.n_val, seed=cfg.seed + 1)
    zero_tr = float(obj.score(torch.zeros(1, s), tr_c, tr_t).mean())
    gains = torch.empty(s)
    bar = tqdm(total=s, desc=f"cma {obj.task}", unit="site", disable=not progress)
    for i0 in range(0, s, cfg.chunk):
        i1 = min(s, i0 + cfg.chunk)
        sel = torch.zeros(i1 - i0, s)
        sel[torch.arange(i1 - i0), torch.arange(i0, i1)] = 1.0
        gains[i0:i1] = obj.score(sel, tr_c, tr_t).mean(1) - zero_tr
        bar.update(i1 - i0)
        bar.set_postfix(best_gain=f"{float(gains[:i1].max()):.3f}")
    bar.close()
    order = torch.sort(-gains, stable=True).indices
    ks = [0] + candidate_ks(s)
    sels = torch.zeros(len(ks), s)
    for row, k in enumerate(ks):
        sels[row, order[:k]] = 1.0
    val_rewards = obj.score(sels, val_c, val_t).mean(1)
    best = int(torch.argmax(val_rewards))  # first (smallest k) among ties
    history = [{"step": k, "val": float(v), "sites": k} for k, v in zip(ks, val_rewards.tolist())]
    summary = {"zero_shot_val": float(val_rewards[0]), "val": float(val_rewards[best]), "k": ks[best],
               "zero_shot_train": zero_tr}  # fmt: skip
    return SearchResult("cma", sels[best], history, scores=gains, config=config_dict(cfg), summary=summary)
