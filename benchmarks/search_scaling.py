"""Patched forwards per second of the site search at 1, 2, … processes (torch.distributed).

    python -m benchmarks.search_scaling                       # tiny on this CPU: 1 and 2 processes (gloo)
    python -m benchmarks.search_scaling --procs 1,2,4,8       # a multi-GPU node: one GPU per process (NCCL)

Each configuration is one ``torchrun --standalone --nproc-per-node N`` launch of this
module's worker, which times :meth:`taskvec.search.common.Objective.score` — one search
step: K site-sets × R queries, sharded over the ranks, rewards all-gathered — exactly as
``taskvec search`` runs it. On a CPU every configuration gets all cores (each of N
processes ``cores // N`` threads), and one more row runs one process on
``cores // max(N)`` threads, the base of the per-process efficiency. The configurations
are interleaved round by round so that load from other jobs hits them alike; the ratios
come from this one run, with the host load average recorded before and after each launch.
Writes JSON and a markdown table.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import click
import numpy as np

DEFAULT_JSON = "benchmarks/results/search_scaling_cpu.json"


def run_worker(model_spec: str, k: int, r: int, steps: int, out: str, seed: int = 0) -> None:
    """One rank: time ``steps`` objective calls of K×R patched forwards; rank 0 writes ``out``."""
    import torch

    from taskvec import geometry as G
    from taskvec.vectors.activations import RunningMeans
    from taskvec.model.checkpoint import load_model
    from taskvec.distributed import session
    from taskvec.search.common import Objective
    from taskvec.vectors.sites import SiteSpace, enumerate_sites

    with session() as dist:
        device = dist.device if dist.active else ("cuda" if torch.cuda.is_available() else "cpu")
        model = load_model(model_spec, device=device)
        g = torch.Generator().manual_seed(seed)
        sites = enumerate_sites(model.cfg)
        means = RunningMeans.empty(model, "lowlight")
        for bid, s in means.sums.items():  # random means: the speed does not depend on them
            s.normal_(generator=g)
            means.counts[bid].fill_(1)
        obj = Objective(model, "lowlight", SiteSpace(model.cfg, sites), means.means(), max_batch=k * r, dist=dist)
        canvases = G.normalize(torch.rand(r, 3, G.CANVAS, G.CANVAS, generator=g))
        targets = torch.rand(r, 3, G.CELL, G.CELL, generator=g)
        sel = torch.bernoulli(torch.full((k, len(sites)), 0.3), generator=g)
        obj.score(sel, canvases, targets)  # warm-up (and every rank is up)
        times, cpu = [], []
        for _ in range(steps):
            t0, c0 = time.perf_counter(), time.process_time()
            obj.score(sel, canvases, targets)  # ends with the all-gather: every rank is done
            times.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
        cpu_all = dist.gather_objects(cpu)  # CPU seconds per step of every rank
        if dist.is_main:
            Path(out).write_text(json.dumps({"step_s": times, "cpu_s": [sum(c) for c in zip(*cpu_all)],
                                             "world_size": dist.world_size, "device": device,
                                             "threads": torch.get_num_threads()}))  # fmt: skip


def launch(procs: int, threads: int | None, model_spec: str, k: int, r: int, steps: int) -> dict:
    """One torchrun launch of the worker → its timings and the load average around it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "w.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", str(procs),
               "-m", "benchmarks.search_scaling", "--", "--worker", "--model", model_spec, "--k", str(k),
               "--r", str(r), "--steps", str(steps), "--json", str(out)]  # fmt: skip
        env = {**os.environ, **({"OMP_NUM_THREADS": str(threads)} if threads else {})}
        load0 = os.getloadavg()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if proc.returncode != 0:
            raise click.ClickException(f"{procs}-process run failed: {proc.stderr.strip().splitlines()[-1:]}")
        res = json.loads(out.read_text())
    res["load_average"] = {"start": [round(x, 2) for x in load0], "end": [round(x, 2) for x in os.getloadavg()]}
    return res


def measure(model_spec: str = "tiny", procs: tuple[int, ...] = (1, 2), k: int = 8, r: int = 4, steps: int = 3,
            rounds: int = 2, gpu: bool = False) -> dict:  # fmt: skip
    """Interleaved launches per configuration → forwards/s (median step), speed-up and efficiency."""
    cores = os.cpu_count() or 1
    if 1 not in procs:
        raise click.BadParameter("must include 1 (the base of the ratios)", param_hint="--procs")
    base_threads = None if gpu else max(1, cores // max(procs))
    configs = [(n, None if gpu else max(1, cores // n)) for n in procs]
    if not gpu and (1, base_threads) not in configs:
        configs.append((1, base_threads))
    runs: dict[tuple[int, int | None], list[dict]] = {c: [] for c in configs}
    for _ in range(rounds):
        for c in configs:
            runs[c].append(launch(c[0], c[1], model_spec, k, r, steps))
    rows = []
    for (n, threads), rs in runs.items():
        step = float(np.median([t for x in rs for t in x["step_s"]]))
        cpu = float(np.median([t for x in rs for t in x["cpu_s"]]))
        rows.append({"processes": n, "threads_per_process": rs[0]["threads"], "device": rs[0]["device"],
                     "step_s_median": round(step, 4), "forwards_per_s": round(k * r / step, 2),
                     "cpu_s_per_step_all_ranks": round(cpu, 4),
                     "step_s": [round(t, 4) for x in rs for t in x["step_s"]],
                     "load_average": [x["load_average"] for x in rs]})  # fmt: skip
    one = rows[configs.index((1, None if gpu else cores))]  # one process on every core: what a user runs today
    base = rows[configs.index((1, base_threads))]
    for x in rows:
        x["speedup_vs_1_process"] = round(x["forwards_per_s"] / one["forwards_per_s"], 3)
        x["efficiency_per_process"] = round(x["forwards_per_s"] / (x["processes"] * base["forwards_per_s"]), 3)
        x["work_efficiency"] = round(base["cpu_s_per_step_all_ranks"] / x["cpu_s_per_step_all_ranks"], 3)
    return {"benchmark": "search_scaling", "model": model_spec, "k_site_sets": k, "r_queries": r,
            "forwards_per_step": k * r, "steps_per_launch": steps, "rounds": rounds, "cores": cores, "rows": rows}  # fmt: skip


def markdown(res: dict) -> str:
    lines = [f"# Search scaling: {res['model']}, K={res['k_site_sets']} × R={res['r_queries']} patched forwards per step",
             "", "`python -m benchmarks.search_scaling` — one torchrun launch per row and round, rounds interleaved; "
             "speed-up = forwards/s ÷ the first row's; efficiency = forwards/s ÷ (processes × one process on "
             "the smallest thread count); CPU s = CPU seconds of one step summed over the ranks; work efficiency "
             "= that of the one-process base row ÷ this row's (1: sharding adds no work, whatever else runs on "
             "the machine).", "",
             "| processes | threads each | device | median step s | forwards/s | speed-up | efficiency | CPU s/step "
             "| work efficiency | load avg (1 min) at starts |",
             "|---:|---:|---|---:|---:|---:|---:|---:|---:|---|"]  # fmt: skip
    for x in res["rows"]:
        loads = ", ".join(f"{la['start'][0]:.1f}" for la in x["load_average"])
        lines.append(f"| {x['processes']} | {x['threads_per_process']} | {x['device']} | {x['step_s_median']} | "
                     f"{x['forwards_per_s']} | {x['speedup_vs_1_process']}× | {x['efficiency_per_process']} | "
                     f"{x.get('cpu_s_per_step_all_ranks', '–')} | {x.get('work_efficiency', '–')} | {loads} |")  # fmt: skip
    return "\n".join(lines) + "\n"


@click.command()
@click.option("--model", default="tiny", show_default=True)
@click.option("--procs", default="1,2", show_default=True, help="process counts, comma-separated")
@click.option("--k", default=8, show_default=True, help="site-sets per step")
@click.option("--r", default=4, show_default=True, help="queries per site-set")
@click.option("--steps", default=8, show_default=True, help="timed steps per launch")
@click.option("--rounds", default=3, show_default=True, help="launches per configuration (interleaved)")
@click.option("--json", "json_out", default=DEFAULT_JSON, show_default=True, type=click.Path(dir_okay=False))
@click.option("--worker", is_flag=True, hidden=True)
def main(model: str, procs: str, k: int, r: int, steps: int, rounds: int, json_out: str, worker: bool) -> None:
    """Patched forwards per second of the sharded search step at 1, 2, … processes."""
    if worker:
        return run_worker(model, k, r, steps, json_out)
    import torch

    from benchmarks.env import capture_environment
    from taskvec.errors import atomic_path

    counts = tuple(int(p) for p in procs.split(","))
    res = measure(model, counts, k, r, steps, rounds, gpu=torch.cuda.is_available())
    res["environment"] = capture_environment()
    with atomic_path(json_out) as tmp:
        Path(tmp).write_text(json.dumps(res, indent=2) + "\n")
    md = markdown(res)
    with atomic_path(Path(json_out).with_suffix(".md")) as tmp:
        Path(tmp).write_text(md)
    click.echo(md + f"→ {json_out}")


if __name__ == "__main__":
    main()
