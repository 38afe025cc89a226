"""Graph-only runners and the matrix-product peak, one per backend (used by ``tvbench``).

A :class:`Runner` wraps one graph, batch and precision on one backend as a zero-argument
``fn`` that runs one batch on inputs prepared once; :func:`time_loop` times it:

- ``onnxruntime``: the exported graph in an :class:`~runtime.backends.onnxruntime.OrtBackend`
  session (same providers and threads as ``tvrun``); host ``perf_counter``, so on the
  CUDA provider the host↔device copies are included;
- ``torch``: the export wrapper module (``export.wrapper``: the same uint8-in/uint8-out
  computation the ONNX graph holds), inputs already on the device; CUDA events on GPU,
  optionally replayed as a captured CUDA graph; FP16 through autocast;
- ``tensorrt``: the engine in the :class:`~export.trt_session.TrtSession` tvrun uses, device
  buffers bound once, ``execute_async_v3`` on the current stream, CUDA events (GPU compute
  only, like trtexec's "GPU Compute Time").

:func:`matmul_peak` measures what a 1024×1024 matrix product achieves on the same backend
(GMAC/s), the yardstick for "% of measured peak". Heavy modules are imported lazily.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, get_args

import numpy as np

from export.spec import SPEC
from taskvec.errors import UserError

Timer = Literal["perf_counter", "cuda_events"]
Precision = Literal["fp32", "fp16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)  # measuring order: the fp32 baseline first
PEAK_N = 1024


@dataclass
class Runner:
    """``fn()`` runs one batch; ``timer`` says how it is timed; ``close()`` frees it."""

    fn: Callable[[], object]
    timer: Timer
    label: str  # e.g. "onnxruntime:CPU", "torch:cuda", "tensorrt"
    notes: list[str] = field(default_factory=list)
    close: Callable[[], None] = lambda: None


def time_loop(fn: Callable[[], object], *, iters: int = 200, duration_s: float | None = None, min_iters: int = 10,
              warmup: int = 10, timer: Timer = "perf_counter",
              on_call: Callable[[int, float], None] | None = None) -> np.ndarray:
    """Per-call latency in ms: ``warmup`` untimed calls, then ``iters`` timed calls — or,
    with ``duration_s``, calls until that many seconds have passed and at least
    ``min_iters`` were made. ``cuda_events`` times each call on the current CUDA stream.
    ``on_call(n, wall_s)`` runs after each timed call: calls so far and wall seconds since
    the first timed call started (progress bars; the last one is the loop's wall time)."""
    for _ in range(max(0, warmup)):
        fn()
    times: list[float] = []
    if timer == "cuda_events":
        import torch

        torch.cuda.synchronize()
    start = time.perf_counter()
    end = start + duration_s if duration_s else None
    while True:
        if timer == "cuda_events":
            import torch

            a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            a.record()
            fn()
            b.record()
            b.synchronize()
            times.append(float(a.elapsed_time(b)))
        else:
            t = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t) * 1e3)
        now = time.perf_counter()
        if on_call is not None:
            on_call(len(times), now - start)
        if end is None:
            if len(times) >= iters:
                break
        elif len(times) >= min_iters and now >= end:
            break
    return np.asarray(times, dtype=np.float64)


def random_images(batch: int, seed: int = 0) -> np.ndarray:
    """uint8 [N,111,111,3] BGR noise (latency does not depend on pixel values)."""
    return np.random.default_rng(seed).integers(0, 256, (batch, SPEC.height, SPEC.width, SPEC.channels), np.uint8)


# ---------------------------------------------------------------------------------
# Runners


def ort_runner(onnx_path: str | Path, batch: int, device: str | None = None) -> Runner:
    """An ORT session on ``onnx_path``; every uint8 image input gets a random batch."""
    from runtime.backends.onnxruntime import OrtBackend

    be = OrtBackend(onnx_path, device=device)
    sess = be.session
    feeds = {i.name: random_images(batch, k) for k, i in enumerate(sess.get_inputs())}
    out = [be.spec.output_name]

    def fn():
        return sess.run(out, feeds)

    return Runner(fn, "perf_counter", be.name, close=be.close)


def torch_runner(module, batch: int, n_inputs: int, device: str, fp16: bool = False,
                 cuda_graphs: bool = False) -> Runner:
    """``module`` (an export wrapper: ``n_inputs`` uint8 [N,111,111,3] in) on ``device``."""
    import torch

    dev = torch.device(device)
    module = module.to(dev).eval()
    xs = [torch.from_numpy(random_images(batch, k)).to(dev) for k in range(n_inputs)]
    use_amp = fp16 and dev.type == "cuda"

    def run():
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.float16, enabled=use_amp, cache_enabled=False):
            return module(*xs)[0]

    label = f"torch:{dev.type}" + ("-fp16" if use_amp else "")
    if dev.type != "cuda":
        return Runner(run, "perf_counter", label)
    if not cuda_graphs:
        return Runner(run, "cuda_events", label)
    replay, graph = cuda_graph_replay(run)
    return Runner(replay, "cuda_events", label + "+cudagraph", close=lambda: graph.reset())


def cuda_graph_replay(fn: Callable[[], Any]) -> tuple[Callable[[], Any], Any]:
    """Warm ``fn`` up on a side stream, capture it in a CUDA graph → (replay, graph).

    ``replay()`` re-runs the captured kernels and returns the (static) output of ``fn``."""
    import torch

    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream):
        for _ in range(3):
            fn()
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        out = fn()

    def replay():
        graph.replay()
        return out

    return replay, graph


def trt_runner(engine_path: str | Path, batch: int) -> Runner:
    """The engine in a :class:`~export.trt_session.TrtSession` (the session tvrun uses), every
    input bound once (random uint8 images for the image inputs, zeros for the switchable
    graph's task-vector inputs); ``fn`` enqueues on torch's current stream (CUDA events)."""
    import torch

    from export.trt_session import TrtSession

    session = TrtSession.open(engine_path)
    feeds = {}
    for k, name in enumerate(session.inputs):
        if session.dtype(name) == np.uint8:
            feeds[name] = random_images(batch, k)
        else:
            feeds[name] = np.zeros(tuple(session.engine.get_tensor_shape(name)), session.dtype(name))
    session.bind({n: v.shape for n, v in feeds.items()})
    session.upload(feeds)
    session.cuda.synchronize(session.stream)

    def fn():
        session.execute(torch.cuda.current_stream().cuda_stream)

    return Runner(fn, "cuda_events", "tensorrt", close=session.close)


def engine_for(onnx: Path, precision: str, batch_max: int, workdir: Path, log: Callable[[str], None]) -> Path:
    """The engine of ``onnx`` in ``workdir``: reused when its sidecar matches this TensorRT,
    GPU and graph and it covers ``batch_max``, else built (timing cache kept in ``workdir``)."""
    from export.trt import build_engine, check_engine_file, engine_filename, gpu_name, tensorrt_module

    trt = tensorrt_module()
    path = workdir / engine_filename(onnx, trt.__version__, gpu_name(), precision)
    if path.is_file():
        try:
            info = check_engine_file(path, trt.__version__, gpu_name())
            if info.get("batch_max", 0) >= batch_max and info.get("onnx") == onnx.name:
                log(f"reusing {path}")
                return path
        except UserError as e:  # stale or foreign engine
            log(f"rebuilding {path.name}: {e}")
    return build_engine(onnx, precision, batch_max=batch_max, out_dir=workdir, log=log)


# ---------------------------------------------------------------------------------
# Measured peak: an N×N matrix product on the same backend


def _matmul_onnx(n: int, fp16: bool) -> bytes:
    from onnx import TensorProto, helper, numpy_helper

    dt = TensorProto.FLOAT16 if fp16 else TensorProto.FLOAT
    w = np.random.default_rng(0).standard_normal((n, n)).astype(np.float16 if fp16 else np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["a", "w"], ["y"])], "matmul_peak",
        [helper.make_tensor_value_info("a", dt, [n, n])], [helper.make_tensor_value_info("y", dt, [n, n])],
        [numpy_helper.from_array(w, "w")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


def matmul_peak(backend: str, precision: str = "fp32", device: str | None = None, n: int = PEAK_N,
                iters: int = 30, warmup: int = 3) -> dict:
    """GMAC/s of an ``n``×``n``×``n`` matrix product (median call) on ``backend``:
    an ONNX MatMul graph in ORT (same providers and threads as the graphs), ``torch.matmul``
    for torch, and ``torch.matmul`` on the same GPU as a proxy for TensorRT."""
    fp16 = precision == "fp16"
    macs = float(n) ** 3
    if backend == "onnxruntime":
        import onnxruntime as ort

        from runtime.backends.onnxruntime import physical_cores, pick_providers

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = physical_cores()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        providers = pick_providers(ort.get_available_providers(), device)
        sess = ort.InferenceSession(_matmul_onnx(n, fp16), sess_options=opts, providers=providers)
        a = np.random.default_rng(1).standard_normal((n, n)).astype(np.float16 if fp16 else np.float32)
        ms = time_loop(lambda: sess.run(None, {"a": a}), iters=iters, warmup=warmup)
        method = f"ONNX MatMul {n}x{n} {precision}, {sess.get_providers()[0].replace('ExecutionProvider', '')}"
    else:
        import torch

        dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        dtype = torch.float16 if fp16 and dev.type == "cuda" else torch.float32
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        timer: Timer = "cuda_events" if dev.type == "cuda" else "perf_counter"
        with torch.inference_mode():
            ms = time_loop(lambda: torch.matmul(a, b), iters=iters, warmup=warmup, timer=timer)
        method = f"torch.matmul {n}x{n} {str(dtype).replace('torch.', '')} on {dev.type}"
        if backend == "tensorrt":
            method += " (proxy for TensorRT)"
    p50 = float(np.median(ms))
    return {"gmac_s": round(macs / 1e9 / (p50 / 1e3), 2), "method": method, "p50_ms": round(p50, 3),
            "iterations": int(ms.size)}
