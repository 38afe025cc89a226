"""``tvbench`` outputs: the ratios, the JSON report, a markdown table and a latency
histogram (PNG), and the results README generated from the committed JSON files.

:func:`compute_ratios` turns the rows into p50 ratios. Each file is written through
:func:`taskvec.errors.atomic_path` (temp file + rename), so a failed run leaves no half
file. :func:`check_output_paths` runs before the benchmark so a bad path fails in a
second, not after minutes of measuring.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from taskvec.errors import UserError, atomic_path

BACKEND_ORDER = ("onnxruntime", "torch", "tensorrt")


def check_output_paths(paths: list[str | None]) -> None:
    """UserError (one line) if a path cannot be written: a folder, or under a file."""
    seen = set()
    for p in paths:
        if not p:
            continue
        path = Path(p)
        if str(path) in seen:
            raise UserError(f"{path} is given for two outputs")
        seen.add(str(path))
        if path.is_dir():
            raise UserError(f"cannot write {path}: it is a folder")
        parent = path.parent
        while not parent.exists() and parent != parent.parent:
            parent = parent.parent
        if not parent.is_dir():
            raise UserError(f"cannot write {path}: {parent} is not a folder")
        if not (parent.stat().st_mode & 0o222) or not _writable(parent):
            raise UserError(f"cannot write {path}: {parent} is not writable")


def _writable(folder: Path) -> bool:
    import os

    return os.access(folder, os.W_OK | os.X_OK)


def public(report: dict) -> dict:
    """The report without private keys (raw samples)."""
    return {k: v for k, v in report.items() if not k.startswith("_")}


def compute_ratios(results: list[dict]) -> dict[str, float]:
    """Task-vector / in-context, answer-cell / full-canvas decode, fp16 / fp32, backend /
    backend and end-to-end / graph-only, keyed by a readable name."""
    graph = {(r["backend"], r["precision"], r["batch"], r["graph"]): r["latency_ms"]["p50"]
             for r in results if r.get("scope", "graph") == "graph"}
    e2e = {(r["backend"], r["precision"]): r["latency_ms"]["p50"] for r in results if r.get("scope") == "end-to-end"}
    out: dict[str, float] = {}

    def put(key: str, a: float | None, b: float | None) -> None:
        if a and b and a > 0 and b > 0:
            out[key] = round(a / b, 4)

    combos = sorted({k[:3] for k in graph})
    for be, prec, batch in combos:
        tv = graph.get((be, prec, batch, "task-vector"))
        put(f"{be} {prec} b{batch}: task-vector / in-context (p50)", tv, graph.get((be, prec, batch, "in-context")))
        put(f"{be} {prec} b{batch}: answer-cell / full-canvas decode (p50)", tv,
            graph.get((be, prec, batch, "task-vector-full-decode")))
    for (be, prec, batch, g), v in sorted(graph.items()):
        if prec == "fp16":
            put(f"{be} b{batch} {g}: fp16 / fp32 (p50)", v, graph.get((be, "fp32", batch, g)))
    backends = sorted({k[0] for k in graph}, key=BACKEND_ORDER.index)
    for i, a in enumerate(backends):
        for b in backends[i + 1:]:
            for (be, prec, batch, g), v in sorted(graph.items()):
                if be == b:
                    put(f"{prec} b{batch} {g}: {b} / {a} (p50)", v, graph.get((a, prec, batch, g)))
    for (be, prec), v in sorted(e2e.items()):
        put(f"{be} {prec}: end-to-end / graph-only task-vector b1 (p50)", v, graph.get((be, prec, 1, "task-vector")))
    return out


def write_json(report: dict, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(public(report), indent=2) + "\n")


def _f(x, digits: int = 2) -> str:
    if x is None:
        return "–"
    if isinstance(x, float) and (math.isnan(x) or math.isinf(x)):
        return "–"
    return f"{x:.{digits}f}" if isinstance(x, float) else str(x)


def _lat_cells(row: dict) -> str:
    """p90 (bold), min, median, mean, p95, p99, max as table cells (older reports: what they have)."""
    lat = row["latency_ms"]
    keys = ("p90", "min", "median", "mean", "p95", "p99", "max")
    cells = [_f(lat.get(k, lat.get("p50") if k == "median" else None)) for k in keys]
    cells[0] = f"**{cells[0]}**"
    return " | ".join(cells)


def to_markdown(report: dict) -> str:
    env = report["environment"]
    cfg = report["config"]
    cpu = env.get("cpu") or {}
    gpu = (env.get("gpu") or {}).get("name") if env.get("gpu") else None
    jet = env.get("jetson")
    machine = (jet or {}).get("model") or gpu or f"{cpu.get('model')} ({cpu.get('cores_logical')} logical cores)"
    load = env.get("host_load_average") or {}
    v = env.get("versions") or {}
    lines = [
        f"# tvbench: {cfg['model']} — task {cfg['task']}",
        "",
        f"Machine: **{machine}**, {env.get('os')}; torch {v.get('torch')}, onnxruntime {v.get('onnxruntime')}, "
        f"TensorRT {v.get('tensorrt') or 'not installed'}; {env.get('timestamp_utc')}.",
        f"Host load average (1/5/15 min) at start {load.get('start')}, at end {load.get('end')}."
        + (f" Jetson: JetPack {jet.get('jetpack')}, power mode {jet.get('power_mode')}, clocks "
           f"{jet.get('jetson_clocks')}." if jet else ""),
        f"Timing: {cfg['warmup']} warm-up calls, then "
        + (f"≥{cfg['duration_s']} s and ≥{cfg['min_iters']} calls" if cfg.get("duration_s") else f"{cfg['iters']} calls")
        + " per row. Latency in ms, **p90 is the headline** (MLPerf single-stream); throughput = frames ÷ the "
        "timed loop's wall time (trtexec's). GMAC per frame counted from the exported ONNX graph; "
        "% of peak = achieved GMAC/s at p50 ÷ a matrix product measured on the same backend.",
    ]
    if report.get("warnings"):
        lines += ["", *[f"> **Warning:** {w}." for w in report["warnings"]]]
    lines += [
        "",
        "## Graph only",
        "",
        "| graph | runner | prec | batch | iters | **p90** | min | median | mean | p95 | p99 | max | frames/s (wall) "
        "| GMAC/frame | GMAC/s | % peak |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in (r for r in report["results"] if r.get("scope", "graph") == "graph"):
        lines.append(
            f"| {r['graph']} | {r['runner']} | {r['precision']} | {r['batch']} | {r['iterations']} | {_lat_cells(r)} "
            f"| {_f(r.get('throughput_fps'), 1)} | {_f(r['gmac_per_frame'], 3)} "
            f"| {_f(r.get('achieved_gmac_s'), 1)} | {_f(r.get('pct_of_peak'), 1)} |")
    e2e = [r for r in report["results"] if r.get("scope") == "end-to-end"]
    if e2e:
        stages = [s for s in ("capture", "preprocess", "infer", "postprocess", "output", "wait")
                  if any(s in r["stages_ms"] for r in e2e)]
        lines += ["", "## End to end (tvrun pipeline, batch 1)", "",
                  "Per-frame latency = capture + preprocess + infer + postprocess + output; FPS = frames / wall time.",
                  "", "| runner | prec | source | frames | **p90** | min | median | mean | p95 | p99 | max | FPS (wall) | "
                  + " | ".join(f"{s} p50" for s in stages) + " |",
                  "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|" + "---:|" * len(stages)]
        for r in e2e:
            cells = " | ".join(_f(r["stages_ms"].get(s, {}).get("p50")) for s in stages)
            src = r["source"] + (f" (--transfer {r['transfer']})" if r.get("transfer") else "")
            lines.append(f"| {r['runner']} | {r['precision']} | {src} {r['resolution'][0]}x{r['resolution'][1]} "
                         f"| {r['iterations']} | {_lat_cells(r)} | {r['fps']:.1f} | {cells} |")
        over = [r for r in e2e if r.get("overhead_ms_per_frame") is not None]
        if over:
            lines += ["", "Per-frame overhead (all but the graph call: 1000 / FPS − mean infer): " + "; ".join(
                f"{r['runner']}: {r['overhead_ms_per_frame']:.2f} ms" for r in over) + "."]
    lines += ["", "## Ratios (p50 latency, this run; A / B < 1 means A is faster)", "", "| comparison | ratio |",
              "|---|---:|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in report["ratios"].items()]
    if report.get("peak_gmac_s"):
        lines += ["", "Measured peak: " + "; ".join(f"{k}: {p['gmac_s']:.1f} GMAC/s ({p['method']})"
                                                   for k, p in report["peak_gmac_s"].items()) + "."]
    if any(r.get("energy_mj_per_frame") is not None for r in report["results"]):
        lines += ["", "Energy per frame (mJ, tegrastats input rail): " + "; ".join(
            f"{r['name']}: {r['energy_mj_per_frame']}" for r in report["results"] if r.get("energy_mj_per_frame"))]
    if report.get("skipped"):
        lines += ["", "Skipped: " + "; ".join(f"{s['what']} ({s['reason']})" for s in report["skipped"]) + "."]
    if report.get("notes"):
        lines += ["", "Notes: " + "; ".join(report["notes"]) + "."]
    return "\n".join(lines) + "\n"


def write_markdown(report: dict, path: str | Path) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(to_markdown(report))


def log_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` tick positions spread evenly in log space over [lo, hi], each rounded to
    two significant digits (distinct, ascending): readable labels at any range."""
    out: list[float] = []
    for x in np.geomspace(lo, hi, n):
        t = float(f"{x:.2g}")
        if lo / 1.05 <= t <= hi * 1.05 and t not in out:
            out.append(t)
    return out or [float(f"{lo:.2g}")]


def write_plot(report: dict, path: str | Path) -> None:
    """Latency histograms: one panel per runner × precision × batch (graphs overlaid),
    plus one for the end-to-end per-frame latency, each with its p90 marked. Log-spaced bins
    and plain-number tick labels (a few per panel, so they never collide); an odd last
    panel spans the full width, so no panel is left empty."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullFormatter

    samples: dict[str, np.ndarray] = report.get("_samples") or {}
    panels: dict[str, list[dict]] = {}
    for r in report["results"]:
        if r["name"] not in samples or len(samples[r["name"]]) == 0:
            continue
        key = "end to end" if r.get("scope") == "end-to-end" else f"{r['runner']} {r['precision']} b{r['batch']}"
        panels.setdefault(key, []).append(r)
    if not panels:
        raise UserError("no latency samples to plot")
    panels = dict(sorted(panels.items(), key=lambda kv: kv[0] == "end to end"))  # end to end last
    n = len(panels)
    cols = min(2, n)
    rows = math.ceil(n / cols)
    fig = plt.figure(figsize=(6.4 * cols, 3.6 * rows))
    grid = fig.add_gridspec(rows, 2 * cols)
    for i, (title, rs) in enumerate(panels.items()):
        r_i, c_i = divmod(i, cols)
        last_alone = i == n - 1 and n % cols
        ax = fig.add_subplot(grid[r_i, :] if last_alone else grid[r_i, 2 * c_i:2 * c_i + 2])
        data = [samples[r["name"]] for r in rs]
        lo = max(1e-3, min(float(d.min()) for d in data))
        hi = max(float(d.max()) for d in data) * 1.01
        bins = np.geomspace(lo, max(hi, lo * 1.01), 40)
        for r, d in zip(rs, data):
            p90 = r["latency_ms"].get("p90")
            label = (r["runner"] if r.get("scope") == "end-to-end" else r["graph"]) + f" (p90 {p90:.2f} ms)"
            line = ax.hist(d, bins=bins, histtype="step", linewidth=1.5, label=label)[2][0]
            ax.axvline(p90, color=line.get_edgecolor(), linestyle=":", linewidth=1)
        ax.set_xscale("log")
        ticks = log_ticks(lo, hi)
        ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
        ax.set_xlim(min(ticks[0], lo) / 1.02, max(ticks[-1], hi) * 1.02)
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_title(f"{report['config']['model']} {report['config']['task']}: {title}", fontsize=10)
        ax.set_xlabel("latency (ms, log scale; dotted: p90)")
        ax.set_ylabel("calls" if title != "end to end" else "frames")
        ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)


# ---------------------------------------------------------------------------------
# benchmarks/results/README.md, generated from the committed result files only

RESULTS = Path(__file__).parent / "results"


def _machine(env: dict) -> str:
    gpu = (env.get("gpu") or {}).get("name")
    cpu = env.get("cpu") or {}
    v = env.get("versions") or {}
    host = f"{cpu.get('model')}, {cpu.get('cores_logical')} logical cores"
    if gpu:
        return f"{gpu} (host {host}; torch {v.get('torch')})"
    return f"{host} (torch {v.get('torch')}, onnxruntime {v.get('onnxruntime')})"


def results_readme(folder: Path = RESULTS) -> str:
    """The results README: H100 forward-latency tables and the tvbench CPU tables, every
    number read from a JSON file in ``folder``."""
    lines = ["# Committed benchmark results", "",
             "Generated by `python -m benchmarks.bench_report` from the JSON files in this folder "
             "(every number below is in one of them; machine and versions are in each file's `environment`).", ""]
    h100 = sorted(folder.glob("forward_latency_h100_*.json"))
    if h100:
        lines += ["## PyTorch forward on an H100 (`benchmarks/forward_latency.py`)", "",
                  "Model forward only (float canvas in, answer cell out; no uint8 I/O, no export), batch 1, random "
                  "weights. `task-vector` = zero-shot layout with a task-vector patch on every block; `in-context` = "
                  "the one-shot prompt. Ratio = task-vector p50 / in-context p50 (< 1: the task vector is faster).", "",
                  *[f"- Machine of `{f.name}`: {_machine(json.loads(f.read_text())['environment'])}." for f in h100], "",
                  "| file | model | graph | precision | CUDA graphs | p50 ms | p90 ms | p99 ms | FPS |",
                  "|---|---|---|---|---|---:|---:|---:|---:|"]
        ratio_lines = []
        for f in h100:
            d = json.loads(f.read_text())
            for r in d["results"]:
                lat = r["latency_ms"]
                lines.append(f"| {f.name} | {r['model']} | {r['graph']} | {r['precision']} | "
                             f"{'yes' if r['cuda_graphs'] else 'no'} | {lat['p50']} | {lat['p90']} | {lat['p99']} | "
                             f"{r['fps']} |")
            ratio_lines += [f"- {f.name}: {k} = {v}" for k, v in d["ratios"].items()]
        lines += ["", "Ratios:", "", *ratio_lines, ""]
    for f in sorted(folder.glob("tvbench_*.json")):
        d = json.loads(f.read_text())
        cfg, env = d["config"], d["environment"]
        load = env.get("host_load_average") or {}
        timing = (f"each row ≥{cfg['duration_s']} s and ≥{cfg['min_iters']} calls" if cfg.get("duration_s")
                  else f"{cfg['iters']} calls per row")
        lines += [f"## tvbench: {cfg['model']}, task {cfg['task']} (`{f.name}`)", "",
                  f"Machine: {_machine(env)}; host load average {load.get('start')} → {load.get('end')} "
                  f"(shared with other jobs, so absolute numbers are noisy; ratios come from one run). "
                  f"{cfg['warmup']} warm-up calls, {timing}.", "",
                  "| scope | graph | runner | prec | batch | n | p50 ms | p90 ms | p99 ms | FPS | GMAC/frame | % peak |",
                  "|---|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in d["results"]:
            lat = r["latency_ms"]
            lines.append(f"| {r.get('scope', 'graph')} | {r['graph']} | {r.get('runner', r['backend'])} | {r['precision']} "
                         f"| {r['batch']} | {r.get('iterations')} | {lat['p50']} | {lat['p90']} | {lat['p99']} "
                         f"| {r['fps']} | {r['gmac_per_frame']} | {_f(r.get('pct_of_peak'), 1)} |")
        lines += ["", "| ratio (p50, A / B) | value |", "|---|---:|"]
        lines += [f"| {k} | {v} |" for k, v in d["ratios"].items()]
        if d.get("skipped"):
            lines += ["", "Skipped: " + "; ".join(f"{s['what']} ({s['reason']})" for s in d["skipped"]) + "."]
        lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    with atomic_path(RESULTS / "README.md") as _tmp:
        _tmp.write_text(results_readme())
    print(f"wrote {RESULTS / 'README.md'}")
