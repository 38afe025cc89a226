"""Patched forwards per second of the batched site search vs one canvas at a time.

    python -m benchmarks.search_throughput                   # tiny, K=16 site-sets × R=8 queries

The batched path is what :class:`taskvec.search.common.Objective` does in every search
step: K site-sets on R queries as ONE forward of K·R canvases with per-sample patches
(:meth:`taskvec.vectors.sites.SiteSpace.patches`). The loop runs the same K·R patched forwards
one canvas at a time (the reference research code's habit). Both are timed on the same
model, CPU and inputs, interleaved round by round so that load from other processes
hits both alike; the ratio comes from this one run. Writes JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import click
import numpy as np
import torch

from taskvec import geometry as G
from taskvec.vectors.activations import RunningMeans
from taskvec.model.checkpoint import load_model
from taskvec.search.common import Objective
from taskvec.vectors.sites import SiteSpace, enumerate_sites

DEFAULT_JSON = "benchmarks/results/search_throughput_cpu.json"


def measure(model_spec: str = "tiny", k: int = 16, r: int = 8, rounds: int = 3, seed: int = 0) -> dict:
    """Time ``rounds`` × (one batched K·R forward, K·R single-canvas forwards) → results dict."""
    torch.manual_seed(seed)
    model = load_model(model_spec)
    sites = enumerate_sites(model.cfg)
    space = SiteSpace(model.cfg, sites)
    means = RunningMeans.empty(model, "lowlight")
    for bid, s in means.sums.items():  # random means: speed does not depend on them
        s.normal_()
        means.counts[bid].fill_(1)
    obj = Objective(model, "lowlight", space, means.means(), max_batch=k * r)
    canvases = G.normalize(torch.rand(r, 3, G.CANVAS, G.CANVAS))
    sel = torch.bernoulli(torch.full((k, len(sites)), 0.3))
    layout = G.get_layout("zero-shot")
    obj.answers(sel[:1], canvases[:1])  # warm-up
    batched, looped = [], []
    with torch.inference_mode():
        for _ in range(rounds):
            t0 = time.perf_counter()
            obj.answers(sel, canvases)
            batched.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            for i in range(k):
                patches = space.patches(sel[i : i + 1], obj.means)
                for j in range(r):
                    model(canvases[j : j + 1], layout, patches=patches)
            looped.append(time.perf_counter() - t0)
    n = k * r
    fps_b = n / float(np.median(batched))
    fps_l = n / float(np.median(looped))
    return {
        "benchmark": "search_throughput",
        "model": model_spec,
        "sites": len(sites),
        "k_site_sets": k,
        "r_queries": r,
        "forwards_per_round": n,
        "rounds": rounds,
        "batched_s": [round(x, 4) for x in batched],
        "loop_s": [round(x, 4) for x in looped],
        "batched_forwards_per_s": round(fps_b, 2),
        "loop_forwards_per_s": round(fps_l, 2),
        "ratio": round(fps_b / fps_l, 2),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }


@click.command()
@click.option("--model", default="tiny", show_default=True)
@click.option("--k", default=16, show_default=True, help="site-sets per step")
@click.option("--r", default=8, show_default=True, help="queries per site-set")
@click.option("--rounds", default=3, show_default=True)
@click.option("--json", "json_out", default=DEFAULT_JSON, show_default=True, type=click.Path(dir_okay=False))
def main(model: str, k: int, r: int, rounds: int, json_out: str) -> None:
    """Batched vs one-at-a-time patched forwards per second (ratio from one run)."""
    from benchmarks.env import capture_environment
    from taskvec.errors import atomic_path

    res = measure(model, k, r, rounds)
    res["environment"] = capture_environment()
    with atomic_path(json_out) as tmp:
        Path(tmp).write_text(json.dumps(res, indent=2) + "\n")
    click.echo(f"batched {res['batched_forwards_per_s']:.1f}/s, loop {res['loop_forwards_per_s']:.1f}/s, "
               f"ratio {res['ratio']:.1f}× → {json_out}")  # fmt: skip


if __name__ == "__main__":
    main()
