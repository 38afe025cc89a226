"""Time to first frame of ``tvrun`` on the sample clip, with where the time goes.

    python -m benchmarks.first_frame [--runs 5] [--json benchmarks/results/first_frame_cpu.json]

Runs, each in a fresh process, exactly what a user types::

    tvrun --source sample:lowlight --task lowlight --headless --frames 1 --stats S.json

once to warm the caches (sample clip, exported graph), then ``--runs`` more. Reported per
run: the process's wall time (start → exit, ``time`` would say the same) and tvrun's own
breakdown from ``--stats`` (``extra.startup_ms``: imports, checks, source, model, graph,
backend, first frame; see ``runtime.startup``). Beside it, measured in the same rounds, the
floor a hand-written script would pay: a fresh interpreter that imports ``onnxruntime`` and
``cv2`` and opens the same cached graph on the CPU provider. Medians over the warm runs;
the target is ≤ 3 s on the warm cache.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from taskvec.errors import atomic_path

TARGET_S = 3.0
COMMAND = ["--source", "sample:lowlight", "--task", "lowlight", "--headless", "--frames", "1"]
FLOOR = ("import sys, onnxruntime as ort, cv2; "
         "ort.InferenceSession(sys.argv[1], providers=['CPUExecutionProvider'])")


def tvrun_argv() -> list[str]:
    """``tvrun`` as this interpreter runs it (the installed script may point elsewhere)."""
    return [sys.executable, "-c", "import sys; from runtime.cli import main; sys.exit(main())"]


def run_once(argv: list[str], env: dict[str, str]) -> tuple[float, dict, str]:
    """(wall seconds, --stats dict, stderr) of one fresh tvrun process."""
    with tempfile.TemporaryDirectory(prefix="tvff-") as tmp:
        stats = Path(tmp) / "stats.json"
        t0 = time.perf_counter()
        done = subprocess.run([*argv, *COMMAND, "--stats", str(stats)], env=env, capture_output=True, text=True,
                              timeout=600)
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            raise SystemExit(f"error: tvrun failed ({done.returncode}): {done.stderr.strip()[-300:]}")
        return wall, json.loads(stats.read_text()), done.stderr


def floor_once(onnx: str, env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", FLOOR, onnx], env=env, check=True, capture_output=True, timeout=300)
    return time.perf_counter() - t0


def cached_graph(cache: str | None) -> str | None:
    """The lowlight graph the warm-up run left in the cache (newest), or None."""
    from runtime.cache import cache_root

    found = sorted(cache_root(cache).glob("*/lowlight/lowlight.onnx"), key=lambda p: p.stat().st_mtime)
    return str(found[-1]) if found else None


def measure(runs: int = 5, cache_dir: str | None = None) -> dict:
    from benchmarks.stats import host_load_warnings, load_average

    load_start = load_average()
    env = dict(os.environ)
    if cache_dir:
        env["XDG_CACHE_HOME"] = cache_dir
    argv = tvrun_argv()
    cold_wall, cold_stats, cold_err = run_once(argv, env)
    onnx = cached_graph(os.path.join(cache_dir, "taskvec") if cache_dir else None)
    rows, floors = [], []
    for _ in range(runs):
        wall, stats, _ = run_once(argv, env)
        rows.append({"wall_s": round(wall, 3), "startup_ms": stats["extra"].get("startup_ms", {})})
        if onnx:
            floors.append(floor_once(onnx, env))
    keys = list(rows[0]["startup_ms"])
    med = {k: round(statistics.median(r["startup_ms"].get(k, 0.0) for r in rows), 1) for k in keys}
    wall_med = statistics.median(r["wall_s"] for r in rows)
    from benchmarks.env import capture_environment

    load_end = load_average()
    environment = capture_environment()
    environment["host_load_average"] = {"start": load_start, "end": load_end}
    return {
        "benchmark": "first_frame",
        "command": "tvrun " + " ".join(COMMAND),
        "target_s": TARGET_S,
        "runs": runs,
        "first_run": {"wall_s": round(cold_wall, 3), "startup_ms": cold_stats["extra"].get("startup_ms", {}),
                      "made": [ln for ln in cold_err.splitlines() if "exporting" in ln]},
        "warm": {"wall_s_median": round(wall_med, 3), "wall_s": [r["wall_s"] for r in rows],
                 "startup_ms_median": med, "meets_target": wall_med <= TARGET_S},
        "floor": {"what": "fresh python: import onnxruntime, cv2 + open the cached graph (CPU provider)",
                  "wall_s_median": round(statistics.median(floors), 3) if floors else None},
        "torch_imported": None,  # filled by main from a probe (runtime paths that still import torch)
        "warnings": host_load_warnings(load_start, load_end),
        "environment": environment,
    }


def to_markdown(report: dict) -> str:
    w = report["warm"]
    lines = [
        f"# Time to first frame — `{report['command']}`",
        "",
        f"Warm cache, median of {report['runs']} fresh processes: **{w['wall_s_median']:.2f} s** "
        f"(target ≤ {report['target_s']:.0f} s: {'met' if w['meets_target'] else 'NOT met'}); first run "
        f"(cache cold here or not): {report['first_run']['wall_s']:.2f} s; floor (bare ONNX Runtime script): "
        f"{report['floor']['wall_s_median'] or float('nan'):.2f} s.",
        "",
        "| phase | median ms |",
        "|---|---:|",
    ]
    load = report["environment"].get("host_load_average") or {}
    lines[2:2] = [f"Host load average (1/5/15 min) at start {load.get('start')}, at end {load.get('end')}.", ""]
    lines[2:2] = [f"> **Warning:** {x}." for x in report.get("warnings", [])] + ([""] if report.get("warnings") else [])
    lines += [f"| {k} | {v:.0f} |" for k, v in w["startup_ms_median"].items()]
    lines += ["", f"torch imported on this path: {report['torch_imported']}", ""]
    return "\n".join(lines)


def torch_on_path() -> bool:
    """Whether importing what tvrun imports for the ONNX Runtime path pulls in torch."""
    probe = "import sys, runtime.cli, runtime.predictor, runtime.pipeline; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120)
    return out.stdout.strip() == "True"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.first_frame", description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--cache-dir", default=None, help="XDG_CACHE_HOME for the runs (default: the user's)")
    ap.add_argument("--json", default="benchmarks/results/first_frame_cpu.json")
    args = ap.parse_args(argv)
    if args.runs < 1:
        print("error: --runs must be at least 1", file=sys.stderr)
        return 2
    report = measure(args.runs, args.cache_dir)
    report["torch_imported"] = torch_on_path()
    with atomic_path(Path(args.json)) as tmp:
        tmp.write_text(json.dumps(report, indent=2) + "\n")
    md = Path(args.json).with_suffix(".md")
    with atomic_path(md) as tmp:
        tmp.write_text(to_markdown(report))
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
