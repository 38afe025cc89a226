"""PyTorch forward latency: zero-shot vs in-context layout, per model, in one run.

    python -m benchmarks.forward_latency                       # CPU: tiny and vit_large
    python -m benchmarks.forward_latency --device cuda --precision fp16 --cuda-graphs

Random weights (latency does not depend on them). The zero-shot forward carries a
task-vector patch on every block (constant Mul/Add, as deployed), so the ratio is the
deployed graph against the one-shot prompt. Prints a table and writes JSON.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import click
import numpy as np
import torch

from benchmarks.graph_runners import PRECISIONS
from taskvec import geometry as G
from taskvec.model.config import get_config
from taskvec.model.mae_vqgan import MaeVQGAN, Patch


def full_patches(model: MaeVQGAN, layout: G.Layout, dtype, device) -> dict:
    """A patch on every block (half the entries replaced), shaped like a deployed task vector."""
    out = {}
    for bid in model.block_ids():
        n = layout.num_enc if bid.stage == "enc" else layout.num_dec
        c = model.cfg.embed_dim if bid.stage == "enc" else model.cfg.decoder_embed_dim
        mul = (torch.rand(1, n, c, device=device) > 0.5).to(dtype)
        out[bid] = Patch(mul=mul, add=(1 - mul) * torch.randn(1, n, c, device=device, dtype=dtype))
    return out


def time_fn(fn: Callable[[], object], device: str, iters: int, warmup: int) -> np.ndarray:
    """Per-call latency in ms (CUDA events on GPU, perf_counter on CPU)."""
    for _ in range(warmup):
        fn()
    times = []
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        for _ in range(iters):
            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(a.elapsed_time(b))
    else:
        for _ in range(iters):
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
    return np.asarray(times)


def make_runner(model: MaeVQGAN, layout: G.Layout, x: torch.Tensor, patches, cuda_graphs: bool) -> Callable[[], object]:
    def run():
        return model(x, layout, patches=patches).answer

    if not cuda_graphs:
        return run
    from benchmarks.graph_runners import cuda_graph_replay

    return cuda_graph_replay(run)[0]


def summarize(ms: np.ndarray) -> dict[str, float]:
    """min/max/mean/median/p50/p90/p95/p99 in ms (:func:`benchmarks.stats.latency_stats`)."""
    from benchmarks.stats import latency_stats

    return latency_stats(ms)


@torch.no_grad()
def measure(models: list[str], device: str, precision: str, batch: int, iters: int, warmup: int, cuda_graphs: bool) -> dict:
    dtype = torch.float16 if precision == "fp16" else torch.float32
    results, ratios = [], {}
    for name in models:
        torch.manual_seed(0)
        model = MaeVQGAN(get_config(name)).eval().to(device=device, dtype=dtype)
        x = torch.randn(batch, 3, G.CANVAS, G.CANVAS, device=device, dtype=dtype)
        lat = {}
        for layout_name, patched in (("in-context", False), ("zero-shot", True)):
            layout = G.get_layout(layout_name)
            patches = full_patches(model, layout, dtype, device) if patched else None
            run = make_runner(model, layout, x, patches, cuda_graphs)
            ms = time_fn(run, device, iters if name != "vit_large" or device != "cpu" else max(10, iters // 10), warmup)
            lat[layout_name] = summarize(ms)
            results.append({"model": name, "graph": "task-vector" if patched else "in-context", "layout": layout_name,
                            "device": device, "precision": precision, "batch": batch, "cuda_graphs": cuda_graphs,
                            "latency_ms": lat[layout_name], "fps": round(1e3 * batch / lat[layout_name]["p50"], 1)})
        ratios[f"{name}: task-vector / in-context (p50)"] = round(lat["zero-shot"]["p50"] / lat["in-context"]["p50"], 3)
        del model
    return {"results": results, "ratios": ratios}


@click.command()
@click.option("--models", default="tiny,vit_large", show_default=True, help="comma-separated config names")
@click.option("--device", default="cpu", show_default=True)
@click.option("--precision", type=click.Choice(PRECISIONS), default="fp32", show_default=True)
@click.option("--batch", default=1, show_default=True)
@click.option("--iters", default=100, show_default=True)
@click.option("--warmup", default=10, show_default=True)
@click.option("--cuda-graphs", is_flag=True, help="replay captured CUDA graphs (GPU only)")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), default=None)
def main(models, device, precision, batch, iters, warmup, cuda_graphs, json_path) -> None:
    """Latency of the zero-shot (task-vector) vs in-context forward, as ratios from one run."""
    from benchmarks.env import capture_environment

    out = measure(models.split(","), device, precision, batch, iters, warmup, cuda_graphs and device.startswith("cuda"))
    out["environment"] = capture_environment()
    for r in out["results"]:
        print(f"{r['model']:10s} {r['graph']:12s} {r['device']:5s} {r['precision']} b{r['batch']}  p50 {r['latency_ms']['p50']:9.3f} ms  p99 {r['latency_ms']['p99']:9.3f} ms")
    for k, v in out["ratios"].items():
        print(f"{k}: {v}")
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        Path(json_path).write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
