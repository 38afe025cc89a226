"""tvbench: report schema, ratios, percentile maths, outputs, and one-line errors for bad input.

One real run on ``random:micro_pixel`` (few iterations, a tiny sample clip) is shared by the
schema tests; the rest use synthetic numbers.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner

from benchmarks.bench import latency_stats
from benchmarks.bench_report import check_output_paths, compute_ratios
from benchmarks.cli import main, split_list
from benchmarks.graph_runners import time_loop
from benchmarks.native_runtime import native_binary
from taskvec.errors import UserError

NATIVE = ("onnxruntime-native", "onnxruntime-native-spin")  # tvbench rows of tvrun-native (when built)

SOURCE = "sample:lowlight?frames=4&width=96&height=72"
FAST = ["--model", "random:micro_pixel", "--iters", "4", "--warmup", "1", "--frames", "3", "--source", SOURCE]
ROW_KEYS = {"name", "backend", "graph", "precision", "batch", "latency_ms", "fps", "gmac_per_frame"}


def invoke(args: list[str]):
    return CliRunner().invoke(main, args)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("tvbench")
    paths = {k: out / f"bench.{k}" for k in ("json", "md", "png")}
    res = invoke(["--task", "lowlight", *FAST, "--batch", "1,2", "--backend", "onnxruntime,torch",
                  "--json", str(paths["json"]), "--markdown", str(paths["md"]), "--plot", str(paths["png"])])
    assert res.exit_code == 0, res.output + str(res.exception)
    return json.loads(paths["json"].read_text()), paths


# ---------------------------------------------------------------------------------
# Maths


def test_percentiles_on_known_samples():
    s = latency_stats(np.arange(1, 101, dtype=float))  # 1..100 ms
    assert s == {"min": 1.0, "max": 100.0, "mean": 50.5, "median": 50.5, "p50": 50.5, "p90": 90.1, "p95": 95.05,
                 "p99": 99.01}
    assert set(latency_stats([3.0]).values()) == {3.0}
    s = latency_stats([1.0, 2.0, 3.0, 4.0, 100.0])
    assert s["p50"] == s["median"] == 3.0 and s["p90"] == pytest.approx(61.6) and s["mean"] == 22.0
    assert s["p95"] == pytest.approx(80.8) and (s["min"], s["max"]) == (1.0, 100.0)
    with pytest.raises(ValueError):
        latency_stats([])


def test_time_loop_counts_iterations_and_duration():
    calls, seen = [], []
    ms = time_loop(lambda: calls.append(1), iters=7, warmup=3, on_call=lambda n, wall: seen.append((n, wall)))
    assert ms.shape == (7,) and len(calls) == 10 and (ms >= 0).all()
    assert [n for n, _ in seen] == list(range(1, 8))
    walls = [w for _, w in seen]
    assert walls == sorted(walls) and walls[-1] >= ms.sum() / 1e3
    ms = time_loop(lambda: None, duration_s=0.01, min_iters=25, warmup=0)
    assert ms.size >= 25


def test_ratios_from_known_rows():
    def row(backend, graph, p50, precision="fp32", batch=1, scope="graph"):
        return {"backend": backend, "graph": graph, "precision": precision, "batch": batch, "scope": scope,
                "latency_ms": {"p50": p50}}

    rows = [row("onnxruntime", "task-vector", 2.0), row("onnxruntime", "in-context", 8.0),
            row("onnxruntime", "task-vector-full-decode", 5.0), row("torch", "task-vector", 6.0),
            row("torch", "task-vector", 3.0, precision="fp16"), row("onnxruntime", "task-vector", 4.0, scope="end-to-end")]
    r = compute_ratios(rows)
    assert r["onnxruntime fp32 b1: task-vector / in-context (p50)"] == 0.25
    assert r["onnxruntime fp32 b1: answer-cell / full-canvas decode (p50)"] == 0.4
    assert r["fp32 b1 task-vector: torch / onnxruntime (p50)"] == 3.0
    assert r["torch b1 task-vector: fp16 / fp32 (p50)"] == 0.5
    assert r["onnxruntime fp32: end-to-end / graph-only task-vector b1 (p50)"] == 2.0
    assert all(v > 0 for v in r.values())


def test_split_list():
    assert split_list("1, 4", int, "batch") == (1, 4)
    assert split_list(None) == ()
    with pytest.raises(UserError):
        split_list("1,x", int, "batch")


# ---------------------------------------------------------------------------------
# A real (tiny) run


def test_json_schema(bench_run):
    report, _ = bench_run
    assert {"environment", "results", "ratios"} <= set(report)
    assert report["environment"]["cpu"]["arch"] and "versions" in report["environment"]
    graphs = set()
    for r in report["results"]:
        assert ROW_KEYS <= set(r), r
        lat = r["latency_ms"]
        assert set(lat) == {"min", "max", "mean", "median", "p50", "p90", "p95", "p99"}
        assert 0 < lat["min"] <= lat["p50"] == lat["median"] <= lat["p90"] <= lat["p95"] <= lat["p99"] <= lat["max"]
        assert lat["min"] <= lat["mean"] <= lat["max"]
        assert r["fps"] > 0 and r["gmac_per_frame"] > 0 and r["iterations"] >= 3
        # graph rows: throughput from the loop's wall time, never above what the per-call times allow
        if r["scope"] == "graph":
            assert 0 < r["throughput_fps"] <= 1e3 * r["batch"] / lat["mean"] * 1.001 + 0.01
        else:  # end to end: frames / wall time (capture overlaps on its own thread)
            assert r["throughput_fps"] == r["fps"] > 0
        assert r["backend"] in ("onnxruntime", "torch", *NATIVE) and r["precision"] == "fp32" and r["batch"] in (1, 2)
        graphs.add((r["graph"], r["scope"]))
    assert {("task-vector", "graph"), ("in-context", "graph"), ("task-vector", "end-to-end")} <= graphs
    e2e = [r for r in report["results"] if r["scope"] == "end-to-end" and r["backend"] not in NATIVE]
    assert len(e2e) == 2 and all("infer" in r["stages_ms"] and r["iterations"] == 3 for r in e2e)
    native = [r for r in report["results"] if r["backend"] in NATIVE]
    if native_binary() is None:  # tvrun-native not built: said under skipped, no rows
        assert not native and any("tvrun-native" in s["what"] for s in report["skipped"])
    else:  # with and without ONNX Runtime spinning, each against the Python onnxruntime row
        assert {r["backend"] for r in native} == set(NATIVE) and all(r["iterations"] == 3 for r in native)
        assert all(r["overhead_ms_per_frame"] is not None for r in native)
        assert any(k.startswith("end-to-end overhead per frame") for k in report["ratios"])
    graph_rows = [r for r in report["results"] if r["scope"] == "graph"]
    assert all(r["iterations"] == 4 and 0 < r["pct_of_peak"] and r["peak_gmac_s"] > 0 for r in graph_rows)


def test_ratios_present_and_positive(bench_run):
    report, _ = bench_run
    ratios = report["ratios"]
    for key in ("onnxruntime fp32 b1: task-vector / in-context (p50)", "torch fp32 b2: task-vector / in-context (p50)",
                "fp32 b1 task-vector: torch / onnxruntime (p50)",
                "onnxruntime fp32: end-to-end / graph-only task-vector b1 (p50)"):
        assert key in ratios
    assert all(isinstance(v, float) and v > 0 for v in ratios.values())
    skipped = " ".join(s["what"] for s in report["skipped"])
    assert "fp16" in skipped and "full-canvas decode" in skipped  # CPU, pixel head: said, not hidden


def test_markdown_and_plot(bench_run):
    _, paths = bench_run
    md = paths["md"].read_text()
    assert "| task-vector | onnxruntime:CPU | fp32 | 1 |" in md and "## Ratios" in md and "End to end" in md
    assert "**p90**" in md and "frames/s (wall)" in md and "p95" in md
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---------------------------------------------------------------------------------
# Bad input: one line, exit 2, no file


@pytest.mark.parametrize("args, message", [
    (["--task", "no-such-task"], "no-such-task"),
    (["--task", "lowlight", "--backend", "cuda-magic"], "unknown backend"),
    (["--task", "lowlight", "--batch", "0"], "batch"),
    (["--task", "lowlight", "--source", "/nonexistent/clip.mp4"], "no such file"),
])
def test_bad_input_is_one_line(tmp_path, args, message):
    out = tmp_path / "out.json"
    res = invoke([*args, "--model", "random:micro_pixel", "--json", str(out)])
    assert res.exit_code == 2
    err = res.stderr.strip()
    assert err.startswith("error:") and "\n" not in err and message in err, err
    assert "Traceback" not in res.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unavailable_backend(tmp_path):
    res = invoke(["--task", "lowlight", "--backend", "tensorrt", "--json", str(tmp_path / "o.json")])
    assert res.exit_code == 2 and "not available" in res.stderr and "\n" not in res.stderr.strip()


@pytest.mark.parametrize("where", ["under_a_file", "a_folder"])
def test_unwritable_json_path(tmp_path, where):
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    target = blocker / "out.json" if where == "under_a_file" else tmp_path
    res = invoke(["--task", "lowlight", *FAST, "--json", str(target)])
    assert res.exit_code == 2 and res.stderr.startswith("error: cannot write")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_check_output_paths(tmp_path):
    check_output_paths([str(tmp_path / "new" / "a.json"), None])
    with pytest.raises(UserError):
        check_output_paths([str(tmp_path / "a.json"), str(tmp_path / "a.json")])


# ---------------------------------------------------------------------------------
# Warnings a reader needs: a loaded host, an impossible ratio


def _row(backend, p50, scope="graph", graph="task-vector", batch=1):
    return {"backend": backend, "precision": "fp32", "batch": batch, "graph": graph, "scope": scope,
            "latency_ms": {"p50": p50}}


def test_loaded_host_and_impossible_ratio_warn():
    from benchmarks.stats import host_load_warnings, ratio_warnings

    assert host_load_warnings((1.5, 1.0, 1.0), (1.9, 1.2, 1.0), cores=2) == []
    (w,) = host_load_warnings((1.5, 1.0, 1.0), (5.2, 3.0, 2.0), cores=2)
    assert "5.20 exceeds its 2 logical cores" in w
    assert host_load_warnings(None, None, cores=2) == []
    rows = [_row("onnxruntime", 8.0), _row("onnxruntime", 6.5, scope="end-to-end"),
            _row("torch", 10.0), _row("torch", 14.0, scope="end-to-end"), _row("torch", 3.0, batch=2)]
    (w,) = ratio_warnings(rows)
    assert w.startswith("onnxruntime fp32: end to end (p50 6.50 ms) is faster than the graph alone (p50 8.00 ms)")


def test_tvbench_on_a_loaded_host_says_so(tmp_path, monkeypatch):
    """The run sees a 1-minute load of 9 on this host's cores: the JSON, the markdown and
    stderr carry the warning."""
    import os

    import benchmarks.bench as bench

    cores = os.cpu_count() or 1
    monkeypatch.setattr(bench, "load_average", lambda: (cores + 7.0, 2.0, 1.0))
    out = tmp_path / "b.json"
    md = tmp_path / "b.md"
    res = invoke(["--task", "lowlight", "--model", "random:micro_pixel", "--iters", "3", "--warmup", "0",
                  "--frames", "0", "--backend", "onnxruntime", "--precision", "fp32", "--json", str(out),
                  "--markdown", str(md)])
    assert res.exit_code == 0, res.output
    report = json.loads(out.read_text())
    assert any(f"exceeds its {cores} logical cores" in w for w in report["warnings"])
    assert report["headline"] == "p90"
    assert "**Warning:** host load average" in md.read_text()
    assert "warning: host load average" in res.stderr
    assert "[1/2] onnxruntime fp32 b1 task-vector" in res.stderr  # one progress bar per row, numbered


def test_plot_ticks_are_few_and_distinct():
    from benchmarks.bench_report import log_ticks

    for lo, hi in ((2.1, 2.6), (7.0, 28.0), (0.05, 400.0)):
        t = log_ticks(lo, hi)
        assert 3 <= len(t) <= 5 and t == sorted(set(t)) and lo / 1.05 <= t[0] and t[-1] <= hi * 1.05
