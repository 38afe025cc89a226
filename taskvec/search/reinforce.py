"""REINFORCE over per-site Bernoulli logits (Williams 1992; DESIGN §3).

One logit per site (init −1, Adam lr 0.1). Each step samples K site-sets from
p = σ(logits), scores all of them on the same R fresh training queries in one batched
forward, z-normalises the K rewards into advantages and minimises
−mean_k(log p(mask_k) · adv_k). The final set is the deterministic p > 0.5.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from taskvec.search.common import Objective, Queries, SearchResult, config_dict


@dataclass
class ReinforceConfig:
    steps: int = 60
    k: int = 12  # site-sets per step
    r: int = 4  # training queries per step (shared by the K sets)
    lr: float = 0.1
    init_logit: float = -1.0
    seed: int = 0
    eval_every: int = 10  # score the p > 0.5 set on the validation queries every N steps
    n_val: int = 16


def search_reinforce(
    obj: Objective, train: Queries, val: Queries, cfg: ReinforceConfig = ReinforceConfig(), progress: bool = True
) -> SearchResult:
    """Run REINFORCE; returns the p > 0.5 selection [S] with the curve and final p."""
    s = obj.num_sites
    gen = torch.Generator().manual_seed(cfg.seed)
    logits = torch.full((s,), float(cfg.init_logit), requires_grad=True)
    opt = torch.optim.Adam([logits], lr=cfg.lr)
    val_c, val_t = val.fixed(cfg.n_val, seed=cfg.seed + 1)
    zero_val = float(obj.score(torch.zeros(1, s), val_c, val_t).mean())
    history: list[dict[str, float]] = []
    bar = tqdm(range(cfg.steps), desc=f"reinforce {obj.task}", unit="step", disable=not progress)
    for step in bar:
        canv, tgt = train.sample(cfg.r, gen)
        with torch.no_grad():
            p = torch.sigmoid(logits)
            masks = torch.bernoulli(p.expand(cfg.k, s), generator=gen)
        reward = obj.score(masks, canv, tgt).mean(1).clone()  # [K]
        std = reward.std()
        adv = (reward - reward.mean()) / (std + 1e-8) if cfg.k > 1 and std > 0 else torch.zeros_like(reward)
        logp = (masks * F.logsigmoid(logits) + (1 - masks) * F.logsigmoid(-logits)).sum(1)
        loss = -(logp * adv).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            n_sel = int((torch.sigmoid(logits) > 0.5).sum())
        entry = {"step": step + 1, "reward": float(reward.mean()), "best": float(reward.max()), "sites": n_sel}
        if (step + 1) % cfg.eval_every == 0 or step + 1 == cfg.steps:
            sel = (torch.sigmoid(logits.detach()) > 0.5).float()
            entry["val"] = float(obj.score(sel[None], val_c, val_t).mean())
        history.append(entry)
        bar.set_postfix(reward=f"{entry['reward']:.3f}", sites=n_sel, val=f"{entry.get('val', float('nan')):.3f}")
    probs = torch.sigmoid(logits.detach())
    selection = (probs > 0.5).float()
    final_val = history[-1]["val"] if history else zero_val
    summary = {"zero_shot_val": zero_val, "val": final_val, "sites": int(selection.sum())}
    return SearchResult("reinforce", selection, history, probs=probs, config=config_dict(cfg), summary=summary)
