"""GRS baseline: greedy random search over site-sets.

Best of N random site-sets (each with its own random density), then rounds of M
random single-site add/remove moves, all scored in one batched call per round; the
best move is kept when it beats the current set, and the search stops once
``patience`` rounds in a row bring no improvement (or after ``max_rounds``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from taskvec.search.common import Objective, Queries, SearchResult, config_dict


@dataclass
class GrsConfig:
    n_random: int = 16  # random initial site-sets
    moves: int = 8  # add/remove moves scored per round
    patience: int = 4  # rounds without improvement before stopping
    max_rounds: int = 20
    n_train: int = 8
    n_val: int = 16
    seed: int = 0


def search_grs(obj: Objective, train: Queries, val: Queries, cfg: GrsConfig = GrsConfig(), progress: bool = True) -> SearchResult:
    s = obj.num_sites
    gen = torch.Generator().manual_seed(cfg.seed)
    tr_c, tr_t = train.fixed(cfg.n_train, seed=cfg.seed)
    val_c, val_t = val.fixed(cfg.n_val, seed=cfg.seed + 1)
    density = torch.rand(cfg.n_random, 1, generator=gen)
    init = (torch.rand(cfg.n_random, s, generator=gen) < density).float()
    init = torch.cat([torch.zeros(1, s), init])  # the empty set competes too
    rewards = obj.score(init, tr_c, tr_t).mean(1)
    best_i = int(torch.argmax(rewards))
    current, cur_r = init[best_i].clone(), float(rewards[best_i])
    history = [{"step": 0, "reward": cur_r, "best": float(rewards.max()), "sites": int(current.sum())}]
    stale = 0
    bar = tqdm(range(1, cfg.max_rounds + 1), desc=f"grs {obj.task}", unit="round", disable=not progress)
    for rnd in bar:
        flips = torch.randperm(s, generator=gen)[: min(cfg.moves, s)]
        cand = current.repeat(len(flips), 1)
        cand[torch.arange(len(flips)), flips] = 1.0 - cand[torch.arange(len(flips)), flips]
        r = obj.score(cand, tr_c, tr_t).mean(1)
        j = int(torch.argmax(r))
        if float(r[j]) > cur_r:
            current, cur_r, stale = cand[j].clone(), float(r[j]), 0
        else:
            stale += 1
        history.append({"step": rnd, "reward": cur_r, "best": float(r.max()), "sites": int(current.sum())})
        bar.set_postfix(reward=f"{cur_r:.3f}", sites=int(current.sum()))
        if stale >= cfg.patience:
            break
    bar.close()
    both = obj.score(torch.stack([torch.zeros(s), current]), val_c, val_t).mean(1)
    history[-1]["val"] = float(both[1])
    summary = {"zero_shot_val": float(both[0]), "val": float(both[1]), "train": cur_r, "rounds": history[-1]["step"]}
    return SearchResult("grs", current, history, config=config_dict(cfg), summary=summary)
