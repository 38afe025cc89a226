"""Latency statistics the way trtexec and MLPerf report them, and the warnings a reader needs.

    latency_stats(ms)       {"min","max","mean","median","p50","p90","p95","p99"} in ms
    throughput(n, wall_s)   items per second from wall time (trtexec's "Throughput")
    host_load_warnings(...) the host was busier than it has cores: numbers are inflated
    ratio_warnings(rows)    a ratio that cannot be true (end to end faster than the graph alone)

p90 is the headline latency (MLPerf single-stream reports the 90th percentile); ``p50`` and
``median`` are the same number, kept under both names because the ratios use ``p50``.
Percentiles are numpy's linear interpolation, rounded to µs.
"""

from __future__ import annotations

import os
from typing import Iterable

import numpy as np

HEADLINE = "p90"
STAT_KEYS = ("min", "max", "mean", "median", "p50", "p90", "p95", "p99")


def latency_stats(ms: Iterable[float]) -> dict[str, float]:
    """``STAT_KEYS`` → ms for a 1-D set of per-call latencies (ValueError when empty)."""
    a = np.asarray(ms, dtype=np.float64).ravel()
    if a.size == 0:
        raise ValueError("no latency samples")
    q = np.percentile(a, [50, 90, 95, 99])
    med = round(float(q[0]), 3)
    return {"min": round(float(a.min()), 3), "max": round(float(a.max()), 3), "mean": round(float(a.mean()), 3),
            "median": med, "p50": med, "p90": round(float(q[1]), 3), "p95": round(float(q[2]), 3),
            "p99": round(float(q[3]), 3)}


def throughput(items: int, wall_s: float) -> float | None:
    """Items (frames, not calls) per second over ``wall_s`` of wall time; None without time."""
    return round(items / wall_s, 2) if wall_s > 0 and items > 0 else None


def load_average() -> tuple[float, float, float] | None:
    """The host's 1/5/15-minute load average (None where the OS has none)."""
    try:
        return tuple(round(x, 2) for x in os.getloadavg())  # type: ignore[return-value]
    except (OSError, AttributeError):
        return None


def host_load_warnings(start: tuple[float, ...] | None, end: tuple[float, ...] | None,
                       cores: int | None = None) -> list[str]:
    """One warning when the 1-minute load average at the start or the end exceeds the logical
    core count: other work shared the CPUs, so latencies are inflated and vary run to run."""
    cores = cores or os.cpu_count() or 1
    worst = max((x[0] for x in (start, end) if x), default=None)
    if worst is None or worst <= cores:
        return []
    return [f"host load average {worst:.2f} exceeds its {cores} logical cores during the run: other work shared "
            "the CPUs, so latencies are inflated and noisy; rerun on an idle host before quoting them"]


def ratio_warnings(results: list[dict]) -> list[str]:
    """Warnings for impossible comparisons: an end-to-end row (which contains the graph call)
    faster at p50 than the same backend and precision's graph-only task-vector row at batch 1."""
    graph = {(r["backend"], r["precision"]): r["latency_ms"]["p50"] for r in results
             if r.get("scope", "graph") == "graph" and r["graph"] == "task-vector" and r["batch"] == 1}
    out = []
    for r in results:
        if r.get("scope") != "end-to-end":
            continue
        g = graph.get((r["backend"], r["precision"]))
        e = r["latency_ms"]["p50"]
        if g and e < g:
            out.append(f"{r['backend']} {r['precision']}: end to end (p50 {e:.2f} ms) is faster than the graph alone "
                       f"(p50 {g:.2f} ms), which cannot be: the host's load or clock changed between the rows; "
                       "the ratio is not meaningful, rerun on an idle host")
    return out
