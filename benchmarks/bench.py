"""``tvbench`` as a function: graph-only and end-to-end latency, work per frame, ratios.

    report = run_benchmark(BenchConfig(task="lowlight", model="tiny"))   # JSON-ready dict

One run measures, per backend × precision × batch, the deployed task-vector graph, the
in-context (one-shot) graph and, for VQ-head models, the task-vector graph with the full
14×14 canvas decode — each warmed up, then timed for ``iters`` calls (or ``duration_s``
seconds, at least ``min_iters`` calls). Then the task's ``tvrun`` predictor through
:func:`runtime.pipeline.run` on ``source`` (end-to-end, per stage). Work per frame is
counted from the exported graphs (:func:`benchmarks.macs.count_macs`); the achieved rate
is compared with a matrix product measured on the same backend. Every comparison is a
ratio of p50 latencies measured in this run: ``A / B`` < 1 means A is faster.
On Jetson, ``tegrastats`` runs alongside and each row gets its energy per frame.
"""

from __future__ import annotations

import contextlib
import json
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from benchmarks.bench_report import BACKEND_ORDER, compute_ratios
from benchmarks.graph_runners import (PRECISIONS, Runner, engine_for, matmul_peak, ort_runner, time_loop, torch_runner,
                                      trt_runner)
from benchmarks.native_runtime import native_binary, native_ratios, native_row
from benchmarks.stats import HEADLINE, host_load_warnings, latency_stats, load_average, ratio_warnings, throughput
from runtime.predictor import PREDICTORS
from taskvec.errors import UserError

BACKENDS: tuple[str, ...] = BACKEND_ORDER
GRAPHS: tuple[str, ...] = ("task-vector", "in-context", "task-vector-full-decode")
# graph name → (export graph, decode, number of image inputs)
EXPORTS = {"task-vector": ("task", "answer", 1), "in-context": ("in-context", "answer", 3),
           "task-vector-full-decode": ("task", "full", 1)}
E2E_STAGES = ("capture", "preprocess", "infer", "postprocess", "output")
E2E_TASKS = tuple(PREDICTORS)  # the tasks tvrun runs end to end


@dataclass(frozen=True)
class BenchConfig:
    task: str
    model: str = "tiny"
    backends: tuple[str, ...] = ()  # () = every backend available here
    precisions: tuple[str, ...] = PRECISIONS
    batches: tuple[int, ...] = (1,)
    iters: int = 200
    duration_s: float | None = None
    min_iters: int = 10
    warmup: int = 10
    cuda_graphs: bool = False
    source: str | None = None  # default sample:<task>
    frames: int = 100  # end-to-end frames; 0 skips end-to-end
    workdir: str | None = None  # exported graphs / engines (reused when they match); default a temp dir
    transfer: str = "denoise"  # low-light end to end: runtime.lowlight mode (denoise | temporal | gain)


def available() -> dict[str, str]:
    from runtime.backends import available_backends

    return available_backends()


def check_config(cfg: BenchConfig) -> list[str]:
    """Validate before any heavy work; returns the backends to run. UserError on bad input."""
    from taskvec.data.tasks import get_task

    get_task(cfg.task)
    from runtime.lowlight import LowLightParams

    LowLightParams.from_options(cfg.transfer)  # UserError for an unknown mode
    have = available()
    unknown = [b for b in cfg.backends if b not in BACKENDS]
    if unknown:
        raise UserError(f"unknown backend {unknown[0]!r}; choose from {', '.join(BACKENDS)}")
    missing = [b for b in cfg.backends if b not in have]
    if missing:
        raise UserError(f"backend {missing[0]} is not available here (available: {', '.join(have) or 'none'})")
    bad = [p for p in cfg.precisions if p not in PRECISIONS]
    if bad:
        raise UserError(f"unknown precision {bad[0]!r}; choose {' or '.join(PRECISIONS)}")
    if not cfg.batches or min(cfg.batches) < 1:
        raise UserError("--batch sizes must be positive integers")
    if cfg.iters < 1 or cfg.min_iters < 1 or cfg.warmup < 0 or (cfg.duration_s is not None and cfg.duration_s <= 0):
        raise UserError("--iters and --duration must be positive, --warmup non-negative")
    if cfg.frames > 0 and cfg.task in E2E_TASKS:
        check_source(cfg.source or f"sample:{cfg.task}")
    backends = list(cfg.backends) or [b for b in BACKENDS if b in have]
    if not any(fp16_support(b, have)[0] for b in backends) and "fp32" not in cfg.precisions:
        raise UserError("nothing to measure: FP16 needs CUDA (torch, ONNX Runtime CUDA) or TensorRT")
    return backends


def check_source(uri: str) -> None:
    """UserError for a source that cannot work: bad syntax, a missing file, an unknown sample."""
    from runtime.sources import SourceError, parse_source
    from taskvec.data.tasks import get_task

    try:
        spec = parse_source(uri)
    except SourceError as e:
        raise UserError(str(e)) from None
    if spec.kind in ("file", "images") and not Path(spec.location).exists():
        raise UserError(f"--source {uri}: no such file or folder")
    if spec.kind in ("file", "images"):  # decodable, within the pixel limit: fail before any measuring
        from runtime.sources import open_source

        try:
            open_source(spec).close()
        except SourceError as e:
            raise UserError(f"--source {uri}: {e}") from None
    if spec.kind == "sample":
        get_task(spec.location)


def fp16_support(backend: str, have: dict[str, str] | None = None) -> tuple[bool, str]:
    have = available() if have is None else have
    where = have.get(backend, "")
    if backend == "tensorrt":
        return True, ""
    if backend == "torch":
        return where == "cuda", "torch runs FP16 only on CUDA (this machine has no GPU)"
    return ("CUDA" in where or "Tensorrt" in where), f"ONNX Runtime here has only the {where} provider (no FP16 path)"


# ---------------------------------------------------------------------------------
# Artifacts: exported graphs (reused from workdir when model and task vector match)


def _deployed(model_spec: str, task: str):
    """The task resolved once (model loaded once) with its shipped task vector, or random
    means where none is shipped → (ResolvedTask, where the vector comes from)."""
    from export.onnx_export import random_taskvector
    from taskvec.vectors.resolved import resolve_task

    bare = resolve_task(task, model_spec, with_taskvector=False)
    try:
        return bare.with_taskvector(None), "shipped"
    except UserError:
        return (bare.with_taskvector(random_taskvector(bare.model, task)),
                "random (no shipped task vector; latency does not depend on its values)")


def export_graph(name: str, deployed, workdir: Path, log: Callable[[str], None]) -> Path:
    """The ``name`` graph of ``deployed`` in ``workdir``: reused when its sidecar names the
    same weights and task vector, else exported (check skipped: a latency run)."""
    import dataclasses

    from export.onnx_export import ExportRequest, export_resolved, taskvector_fingerprint

    graph, decode, _ = EXPORTS[name]
    task = deployed.task
    path = workdir / f"{task}.{name}.onnx"
    sidecar = path.with_suffix(".json")
    want_tv = taskvector_fingerprint(deployed.taskvector) if graph == "task" else ""
    if path.is_file() and sidecar.is_file():
        meta = json.loads(sidecar.read_text())
        if meta.get("model_fingerprint") == deployed.fingerprint and meta.get("taskvector_fingerprint") == want_tv:
            log(f"reusing {path}")
            return path
    log(f"exporting the {name} graph of {deployed.model_name} for {task} (check skipped: this is a latency run)…")
    target = deployed if graph == "task" else dataclasses.replace(deployed, taskvector=None)
    res = export_resolved(target, workdir, ExportRequest(graph, decode, check=False, filename=path.name))
    return Path(res.onnx_path)


def gmac(path: Path) -> float:
    from benchmarks.macs import count_macs

    return round(count_macs(path)["total"] / 1e9, 4)


# ---------------------------------------------------------------------------------
# The run


def _make_runner(backend: str, name: str, precision: str, batch: int, cfg: BenchConfig, onnx: Path,
                 modules: dict, engines: dict, workdir: Path, log) -> Runner:
    if backend == "onnxruntime":
        if precision == "fp16":
            from export.fp16 import convert_file

            half = workdir / onnx.name.replace(".onnx", ".fp16.onnx")
            if not half.is_file():
                convert_file(onnx, half)
            onnx = half
        return ort_runner(onnx, batch)
    if backend == "torch":
        import torch

        # torch's own answer: a CPU build of torch on a GPU machine still runs on the CPU
        return torch_runner(modules[name], batch, EXPORTS[name][2], "cuda" if torch.cuda.is_available() else "cpu",
                            fp16=precision == "fp16", cuda_graphs=cfg.cuda_graphs)
    key = (name, precision)
    if key not in engines:
        engines[key] = engine_for(onnx, precision, max(cfg.batches), workdir, log)
    return trt_runner(engines[key], batch)


def _wrapper_modules(model, tv, graphs: list[str]) -> dict:
    from export.wrapper import InContextGraph, ZeroShotGraph

    out = {}
    for name in graphs:
        graph, decode, _ = EXPORTS[name]
        out[name] = (ZeroShotGraph(model, tv.mul, tv.add, decode=decode) if graph == "task"
                     else InContextGraph(model, decode=decode))
    return out


def run_benchmark(cfg: BenchConfig, log: Callable[[str], None] = print) -> dict:
    """Measure everything :class:`BenchConfig` asks for; returns the JSON-ready report
    (``environment``, ``results``, ``ratios``, plus ``skipped``, ``peak_gmac_s``,
    ``notes``) with the raw samples under the private key ``_samples``."""
    from benchmarks.env import capture_environment
    from benchmarks.tegrastats import TegrastatsSampler

    backends = check_config(cfg)
    have = available()
    load_start = load_average()
    deployed, tv_source = _deployed(cfg.model, cfg.task)
    model, tv = deployed.model, deployed.taskvector
    skipped: list[dict] = []
    notes = [f"task vector: {tv_source}"]
    graphs = ["task-vector", "in-context"]
    if model.cfg.head == "vq":
        graphs.append("task-vector-full-decode")
    else:
        skipped.append({"what": "answer-cell vs full-canvas decode",
                        "reason": f"{model.cfg.name} has a pixel head (no VQGAN decode to compare)"})
    results: list[dict] = []
    samples: dict[str, np.ndarray] = {}
    peaks: dict[str, dict] = {}
    with contextlib.ExitStack() as stack:
        if cfg.workdir:
            workdir = Path(cfg.workdir)
            workdir.mkdir(parents=True, exist_ok=True)
        else:
            workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="tvbench-")))
        onnx = {g: export_graph(g, deployed, workdir, log) for g in graphs}
        macs = {g: gmac(p) for g, p in onnx.items()}
        modules = _wrapper_modules(model, tv, graphs) if "torch" in backends else {}
        engines: dict = {}
        power = stack.enter_context(TegrastatsSampler(interval_ms=50))
        plan = _plan(cfg, backends, graphs, have)
        done = 0
        for backend in backends:
            for precision in sorted(set(cfg.precisions), key=PRECISIONS.index):  # torch fp16 e2e halves the model
                ok, why = fp16_support(backend, have) if precision == "fp16" else (True, "")
                if not ok:
                    skipped.append({"what": f"{backend} fp16", "reason": why})
                    continue
                peak_key = f"{backend} {precision}"
                log(f"measuring the matrix-product peak on {peak_key}…")
                peaks[peak_key] = matmul_peak(backend, precision)
                for batch in cfg.batches:
                    for name in graphs:
                        runner = _make_runner(backend, name, precision, batch, cfg, onnx[name], modules, engines,
                                              workdir, log)
                        done += 1
                        bar = RowProgress(f"[{done}/{plan}] {backend} {precision} b{batch} {name}", cfg)
                        try:
                            t0 = time.monotonic()
                            ms = time_loop(runner.fn, iters=cfg.iters, duration_s=cfg.duration_s,
                                           min_iters=cfg.min_iters, warmup=cfg.warmup, timer=runner.timer,
                                           on_call=bar.update)
                            t1 = time.monotonic()
                        finally:
                            bar.close()
                            runner.close()
                        row = _row(cfg, backend, runner, name, precision, batch, ms, macs[name], peaks[peak_key])
                        row["throughput_fps"] = throughput(int(ms.size) * batch, bar.wall_s)
                        row["wall_s"] = round(bar.wall_s, 3)
                        row["energy_mj_per_frame"] = _energy(power, t0, t1, ms.size * batch)
                        results.append(row)
                        samples[row["name"]] = ms
                        log(_line(row))
                if cfg.frames > 0 and cfg.task in E2E_TASKS:
                    done += 1
                    log(f"[{done}/{plan}] end to end:")
                    native = native_binary() if (backend, precision) == ("onnxruntime", "fp32") else None
                    e2e_cfg = cfg
                    if native is not None:  # both runtimes read the same file
                        from benchmarks.native_runtime import materialise_source

                        e2e_cfg = replace(cfg, source=materialise_source(cfg.source or f"sample:{cfg.task}",
                                                                         cfg.task, workdir))
                    row, per_frame = end_to_end(e2e_cfg, backend, precision, model, tv, onnx["task-vector"], engines,
                                                macs["task-vector"], power, log)
                    results.append(row)
                    samples[row["name"]] = per_frame
                    log(_line(row))
                    for spin in (False, True) if native is not None else ():  # default, then like Python's session
                        nrow, nper = native_row(e2e_cfg, native, onnx["task-vector"], row, macs["task-vector"], log,
                                                spin=spin)
                        results.append(nrow)
                        samples[nrow["name"]] = nper
                        log(_line(nrow))
        if cfg.frames > 0 and cfg.task in E2E_TASKS and native_binary() is None:
            skipped.append({"what": "tvrun-native end-to-end", "reason": "build/tvrun-native is not built "
                            "(cmake -S . -B build && cmake --build build) and $TVRUN_NATIVE is not set"})
        if cfg.frames > 0 and cfg.task not in E2E_TASKS:
            skipped.append({"what": "end-to-end", "reason": f"tvrun has no predictor for {cfg.task!r}"})
        power_summary = power.summary() if power.available else None
    short = [r["name"] for r in results if r["scope"] == "graph" and r["iterations"] < 200]
    if short:
        notes.append(f"{len(short)} graph row(s) timed with fewer than 200 calls (see 'iterations'): their p99 "
                     "is close to the maximum of few samples")
    env = capture_environment()
    load_end = load_average()
    env["host_load_average"] = {"start": list(load_start) if load_start else None,
                                "end": list(load_end) if load_end else None}
    env["torch_threads"] = _torch_threads()
    ratios = compute_ratios(results)
    ratios.update(native_ratios(results))
    warnings = host_load_warnings(load_start, load_end) + ratio_warnings(results)
    for w in warnings:
        log(f"warning: {w}")
    return {
        "environment": env,
        "config": {**asdict(cfg), "backends": backends, "model_config": model.cfg.name, "head": model.cfg.head},
        "results": results,
        "ratios": ratios,
        "peak_gmac_s": peaks,
        "gmac_per_frame": macs,
        "skipped": skipped,
        "power": power_summary,
        "notes": notes,
        "warnings": warnings,
        "headline": HEADLINE,
        "_samples": samples,
    }


def _torch_threads() -> int | None:
    try:
        import torch

        return torch.get_num_threads()
    except ImportError:
        return None


def _energy(power, t0: float, t1: float, frames: int) -> float | None:
    if not power.available or frames <= 0:
        return None
    e = power.energy_mj(t1 - t0, since=t0, until=t1)
    return None if e is None else round(e / frames, 3)


def _row(cfg, backend, runner: Runner, graph, precision, batch, ms, gmac_frame, peak, scope="graph") -> dict:
    lat = latency_stats(ms)
    row = {
        "name": f"{cfg.model} {graph} {runner.label} {precision} b{batch}" + (" end-to-end" if scope != "graph" else ""),
        "backend": backend, "graph": graph, "precision": precision, "batch": batch, "latency_ms": lat,
        "fps": round(1e3 * batch / lat["p50"], 2), "gmac_per_frame": gmac_frame, "scope": scope,
        "runner": runner.label, "timer": runner.timer, "iterations": int(ms.size),
    }
    if gmac_frame is not None and scope == "graph":
        achieved = gmac_frame * batch / (lat["p50"] / 1e3)
        row["achieved_gmac_s"] = round(achieved, 2)
        row["peak_gmac_s"] = peak["gmac_s"]
        row["pct_of_peak"] = round(100 * achieved / peak["gmac_s"], 1)
    return row


def _line(row: dict) -> str:
    lat = row["latency_ms"]
    extra = f"  {row['pct_of_peak']:5.1f}% of peak" if "pct_of_peak" in row else ""
    tput = row.get("throughput_fps")
    return (f"{row['name']:<58} p90 {lat['p90']:9.2f} ms  (p50 {lat['p50']:.2f}, p99 {lat['p99']:.2f})  "
            f"{tput if tput is not None else float('nan'):8.1f}/s wall  n={row['iterations']}{extra}")


def _plan(cfg: BenchConfig, backends: list[str], graphs: list[str], have: dict[str, str]) -> int:
    """How many rows the run will measure (for the ``[i/n]`` of each progress bar)."""
    n = 0
    for backend in backends:
        for precision in set(cfg.precisions):
            if precision == "fp16" and not fp16_support(backend, have)[0]:
                continue
            n += len(cfg.batches) * len(graphs) + (1 if cfg.frames > 0 and cfg.task in E2E_TASKS else 0)
    return n


class RowProgress:
    """A tqdm bar for one row: calls out of ``iters``, or seconds out of ``duration_s``, with
    tqdm's estimate of the time left; ``wall_s`` is the timed loop's wall time."""

    def __init__(self, desc: str, cfg: BenchConfig) -> None:
        from tqdm import tqdm

        self.by_time = cfg.duration_s is not None
        total = round(cfg.duration_s, 1) if self.by_time else cfg.iters
        self.bar = tqdm(total=total, desc=desc, unit="s" if self.by_time else "call", leave=False,
                        mininterval=0.5, dynamic_ncols=True)
        self.wall_s = 0.0

    def update(self, n: int, wall_s: float) -> None:
        self.wall_s = wall_s
        done = min(round(wall_s, 1), self.bar.total) if self.by_time else n
        if done > self.bar.n:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


def end_to_end(cfg: BenchConfig, backend: str, precision: str, model, tv, onnx: Path, engines: dict,
               gmac_frame: float | None, power, log) -> tuple[dict, np.ndarray]:
    """The task's tvrun predictor on ``cfg.source`` through :func:`runtime.pipeline.run`
    (headless, batch 1). Per-frame latency = capture + preprocess + infer + postprocess +
    output of that frame (queueing excluded); FPS = frames / wall time."""
    from runtime.pipeline import run
    from runtime.lowlight import LowLightParams
    from runtime.predictor import make_predictor
    from runtime.sinks import SinkError
    from runtime.sources import SourceError, open_source

    uri = cfg.source or f"sample:{cfg.task}"
    be = _e2e_backend(backend, precision, model, tv, onnx, engines, cfg)
    with be:
        try:
            src = open_source(uri)
        except SourceError as e:
            raise UserError(str(e)) from None
        w, h = src.size
        rect = (w * 5 // 12, h * 5 // 12, max(8, w // 6), max(8, h // 6)) if cfg.task == "inpainting" else None
        lowlight = LowLightParams.from_options(cfg.transfer) if cfg.task == "lowlight" else None
        predictor = make_predictor(cfg.task, be, rect=rect, lowlight=lowlight)
        dummy = np.zeros((1, be.spec.height, be.spec.width, be.spec.channels), np.uint8)
        for _ in range(max(1, cfg.warmup)):
            be.infer(dummy)
        seen: dict = {}

        def timed(image, timer):
            seen["timer"] = timer
            return predictor(image, timer)

        loopable = src.spec.kind in ("sample", "file", "images")
        log(f"end-to-end: {be.name} on {uri}, {cfg.frames} frames…")
        t0 = time.monotonic()
        try:
            stats = run(src, timed, backend_name=be.name, headless=True, frames=cfg.frames, loop=loopable,
                        progress=True)
        except (SourceError, SinkError) as e:
            raise UserError(f"end-to-end run on {uri}: {e}") from None
        t1 = time.monotonic()
    timer = seen["timer"]
    per_stage = [np.asarray(timer.samples(s)) for s in E2E_STAGES if timer.samples(s)]
    n = min(len(s) for s in per_stage)
    per_frame = np.sum([s[-n:] for s in per_stage], axis=0)
    runner = Runner(lambda: None, "perf_counter", be.name)
    row = _row(cfg, backend, runner, "task-vector", precision, 1, per_frame, gmac_frame, None, scope="end-to-end")
    row.update(fps=round(stats.fps, 2), throughput_fps=round(stats.fps, 2), wall_s=stats.wall_s, stages_ms={k: {q: round(v, 3) for q, v in s.items()}
                                                 for k, s in stats.stages_ms.items()},
               source=uri, source_detail=stats.source, resolution=stats.resolution, dropped=stats.dropped,
               transfer=cfg.transfer if cfg.task == "lowlight" else None,
               energy_mj_per_frame=_energy(power, t0, t1, stats.frames))
    return row, per_frame


def _e2e_backend(backend, precision, model, tv, onnx: Path, engines: dict, cfg: BenchConfig):
    if backend == "onnxruntime":
        from runtime.backends.onnxruntime import OrtBackend

        if precision == "fp16":
            onnx = onnx.with_name(onnx.name.replace(".onnx", ".fp16.onnx"))
        return OrtBackend(onnx)
    if backend == "torch":
        from runtime.backends.torch import TorchBackend

        return TorchBackend.zero_shot(model, tv, fp16=precision == "fp16")
    from runtime.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(engines[("task-vector", precision)])
