"""TensorRT engines from the exported ONNX graphs (DESIGN §5).

``tensorrt`` is imported lazily (STYLE §6): this module imports without it, and
:mod:`export.trtexec` says what to run instead (a ``trtexec`` line for TensorRT 10.x or
11.x with this builder's file names, pasteable as is).

Build (:func:`build_engine`), TensorRT 10.x API: ``Builder`` → ``create_network`` (explicit
batch; ``STRONGLY_TYPED`` where the precision comes from the graph) → ``OnnxParser`` →
one optimisation profile for the dynamic batch 1..``batch_max`` →
``build_serialized_network``. Precision:

- fp32: strongly typed network on the FP32 graph.
- fp16 on TensorRT 10.x: ``BuilderFlag.FP16`` + ``OBEY_PRECISION_CONSTRAINTS`` with
  LayerNorm (normalization) and softmax layers pinned to FP32.
- fp16 on TensorRT ≥ 11 (no FP16 builder flag): the ONNX graph is converted to FP16
  with LayerNorm/softmax/instance-norm kept FP32 (:mod:`export.fp16`) and built
  strongly typed.

The timing cache lives in the output folder (``timing.<trt>.<gpu>.cache``). The engine
is ``T.trt<version>.<gpu-slug>.<prec>.engine`` with a sidecar ``….engine.json`` (TensorRT
version, GPU, precision, batch range, ONNX metadata, sha256 of the engine).
:func:`load_engine` refuses an engine whose TensorRT version or GPU differs from the
running ones, or whose bytes do not match the sidecar — never runs it silently. Running an
engine is :class:`export.trt_session.TrtSession`'s job.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, get_args

from export.metadata import read_props
from taskvec.errors import UserError, atomic_path

Precision = Literal["fp16", "fp32"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
INSTALL_HINT = "on Jetson it comes with JetPack; on x86: pip install tensorrt"
ENGINE_RE = re.compile(r"^(?P<stem>.+)\.trt(?P<version>[0-9][0-9.]*)\.(?P<gpu>[a-z0-9-]+)\.(?P<precision>fp16|fp32)\.engine$")
FP32_LAYER_TYPES = ("NORMALIZATION", "SOFTMAX")


def tensorrt_available() -> bool:
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        return False
    return True


def tensorrt_module():
    try:
        import tensorrt as trt
    except ImportError:
        raise UserError(f"TensorRT is not installed ({INSTALL_HINT})") from None
    return trt


def slug(text: str) -> str:
    """``NVIDIA H100 80GB HBM3`` → ``nvidia-h100-80gb-hbm3``."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def gpu_name() -> str:
    """The running GPU's name: the CUDA runtime's device name (the one torch.cuda reports),
    else nvidia-smi, else the Jetson device tree. No torch."""
    from export.cudart import CudaRuntime, find_cudart

    if find_cudart() is not None:
        try:
            cuda = CudaRuntime()
            if cuda.device_count() > 0:
                return cuda.device_name(0)
        except (UserError, OSError, AttributeError):  # a broken CUDA install just falls through
            pass
    smi = shutil.which("nvidia-smi")
    if smi:
        try:
            out = subprocess.run([smi, "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=10, check=False).stdout.strip().splitlines()
            if out:
                return out[0].strip()
        except (OSError, subprocess.SubprocessError):
            pass
    model = Path("/proc/device-tree/model")
    if model.is_file():
        return model.read_bytes().rstrip(b"\0").decode(errors="replace")
    return "unknown-gpu"


def engine_filename(onnx_path: str | Path, trt_version: str, gpu: str, precision: Precision) -> str:
    stem = Path(onnx_path).name[: -len(".onnx")]
    return f"{stem}.trt{trt_version}.{slug(gpu)}.{precision}.engine"


def parse_engine_name(path: str | Path) -> dict[str, str]:
    m = ENGINE_RE.match(Path(path).name)
    if not m:
        raise UserError(f"{Path(path).name}: not an engine name of the form T.trt<version>.<gpu>.<fp16|fp32>.engine")
    return m.groupdict()


def timing_cache_path(folder: str | Path, trt_version: str, gpu: str) -> Path:
    """The builder's timing cache: ``<folder>/timing.trt<version>.<gpu-slug>.cache`` (one
    per TensorRT version and GPU, shared by every engine built in ``folder``)."""
    return Path(folder) / f"timing.trt{trt_version}.{slug(gpu)}.cache"


def fp16_graph_path(onnx_path: str | Path) -> Path:
    """``T.onnx`` → ``T.fp16.onnx``: the FP16 graph TensorRT 11 builds from."""
    p = Path(onnx_path)
    return p.with_name(p.name[: -len(".onnx")] + ".fp16.onnx")


_KEEP_ALIVE: list[Any] = []  # runtimes must outlive the engines they deserialized


def _Logger(trt):
    """A TensorRT logger that keeps error messages (for one-line errors) instead of printing."""

    class KeepingLogger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.messages: list[str] = []

        def log(self, severity, msg) -> None:
            if int(severity) <= int(trt.ILogger.Severity.ERROR):
                self.messages.append(" ".join(str(msg).split()))

    return KeepingLogger()


def _major(version: str) -> int:
    return int(version.split(".")[0])


def build_engine(
    onnx_path: str | Path,
    precision: Precision = "fp16",
    batch_max: int = 8,
    out_dir: str | Path | None = None,
    workspace_gib: float = 4.0,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Build ``T.trt<ver>.<gpu>.<prec>.engine`` (+ ``.json``) next to ``onnx_path`` (or in
    ``out_dir``). Returns the engine path. UserError on any failure (one line)."""
    trt = tensorrt_module()
    log = log or (lambda s: None)
    onnx_path = Path(onnx_path)
    out = Path(out_dir) if out_dir else onnx_path.parent
    if not onnx_path.is_file():
        raise UserError(f"{onnx_path} does not exist")
    version, gpu = trt.__version__, gpu_name()
    meta = read_props(onnx_path)
    logger = _Logger(trt)
    builder = trt.Builder(logger)
    strong_flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    has_fp16_flag = hasattr(trt.BuilderFlag, "FP16") and _major(version) < 11
    source = onnx_path
    tmp_fp16: Path | None = None
    if precision == "fp16" and not has_fp16_flag:
        if strong_flag is None:
            raise UserError(f"TensorRT {version} has neither the FP16 flag nor strongly typed networks")
        from export.fp16 import convert_file

        tmp_fp16 = out / fp16_graph_path(onnx_path).name
        convert_file(onnx_path, tmp_fp16)
        source = tmp_fp16
    strongly = strong_flag is not None and not (precision == "fp16" and has_fp16_flag)
    flags = 0
    explicit = getattr(trt.NetworkDefinitionCreationFlag, "EXPLICIT_BATCH", None)
    if explicit is not None and _major(version) < 10:
        flags |= 1 << int(explicit)
    if strongly:
        flags |= 1 << int(strong_flag)
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(source)):
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)] or logger.messages
        raise UserError(f"TensorRT could not parse {source.name}: {errs[0] if errs else 'unknown error'}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if precision == "fp16" and has_fp16_flag:
        config.set_flag(trt.BuilderFlag.FP16)
        config.set_flag(trt.BuilderFlag.OBEY_PRECISION_CONSTRAINTS)
        pinned = _pin_fp32_layers(trt, network)
        log(f"fp16 with {pinned} LayerNorm/softmax layers pinned to FP32")
    profile = builder.create_optimization_profile()
    opt = max(1, min(4, batch_max))
    for i in range(network.num_inputs):
        t = network.get_input(i)
        shape = list(t.shape)
        if shape and shape[0] == -1:
            rest = shape[1:]
            profile.set_shape(t.name, (1, *rest), (opt, *rest), (batch_max, *rest))
    config.add_optimization_profile(profile)
    cache_path = timing_cache_path(out, version, gpu)
    cache = config.create_timing_cache(cache_path.read_bytes() if cache_path.is_file() else b"")
    config.set_timing_cache(cache, ignore_mismatch=False)
    log(f"building a {precision} engine with TensorRT {version} on {gpu} (batch 1..{batch_max})…")
    t0 = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise UserError(f"TensorRT failed to build {onnx_path.name}: {logger.messages[-1] if logger.messages else 'no message'}")
    data = bytes(serialized)
    with atomic_path(cache_path) as tmp:
        tmp.write_bytes(bytes(config.get_timing_cache().serialize()))
    engine = out / engine_filename(onnx_path, version, gpu, precision)
    with atomic_path(engine) as tmp:
        tmp.write_bytes(data)
    info = {
        "tensorrt": version, "gpu": gpu, "gpu_slug": slug(gpu), "precision": precision, "strongly_typed": strongly,
        "batch_min": 1, "batch_opt": opt, "batch_max": batch_max, "onnx": onnx_path.name,
        "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "build_seconds": round(time.perf_counter() - t0, 1),
        "timing_cache": cache_path.name, "metadata": meta.to_dict() if meta is not None else {},
    }
    with atomic_path(sidecar_path(engine)) as tmp:
        tmp.write_text(json.dumps(info, indent=2) + "\n")
    if tmp_fp16 is not None:
        tmp_fp16.unlink(missing_ok=True)
    return engine


def _pin_fp32_layers(trt, network) -> int:
    wanted = {getattr(trt.LayerType, n) for n in FP32_LAYER_TYPES if hasattr(trt.LayerType, n)}
    n = 0
    for i in range(network.num_layers):
        layer = network.get_layer(i)
        if layer.type in wanted:
            layer.precision = trt.float32
            for j in range(layer.num_outputs):
                layer.set_output_type(j, trt.float32)
            n += 1
    return n


def sidecar_path(engine: str | Path) -> Path:
    return Path(str(engine) + ".json")


def check_engine_file(path: str | Path, trt_version: str | None = None, gpu: str | None = None) -> dict[str, Any]:
    """Everything :func:`load_engine` checks before TensorRT sees the bytes: the name, the
    sidecar, the checksum, and the TensorRT version and GPU (the running ones unless
    given). Returns the sidecar. One-line UserError on any mismatch."""
    return _checked_engine(path, trt_version, gpu)[0]


def _checked_engine(path: str | Path, trt_version: str | None, gpu: str | None) -> tuple[dict[str, Any], bytes]:
    """:func:`check_engine_file` → (sidecar, the engine's bytes it checksummed)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"engine {path} does not exist")
    named = parse_engine_name(path)
    side = sidecar_path(path)
    try:
        info = json.loads(side.read_text())
    except FileNotFoundError:
        raise UserError(f"{path.name}: no sidecar {side.name}; rebuild the engine with tvexport --engine") from None
    except (OSError, json.JSONDecodeError):
        raise UserError(f"{side.name}: unreadable engine sidecar") from None
    if info.get("tensorrt") != named["version"] or info.get("gpu_slug") != named["gpu"] or info.get("precision") != named["precision"]:
        raise UserError(f"{path.name}: the file name and its sidecar disagree (renamed engine?)")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != info.get("sha256"):
        raise UserError(f"{path.name}: corrupt engine file (checksum does not match its sidecar)")
    if trt_version is not None and trt_version != named["version"]:
        raise UserError(f"{path.name} was built with TensorRT {named['version']}, this is TensorRT {trt_version}; rebuild it")
    if gpu is not None and slug(gpu) != named["gpu"]:
        raise UserError(f"{path.name} was built for {info.get('gpu', named['gpu'])}, this GPU is {gpu}; rebuild it")
    return info, data


def load_engine(path: str | Path):
    """Deserialize an engine after :func:`check_engine_file` against the running TensorRT
    and GPU → ``trt.ICudaEngine``. One-line UserError if it cannot be used."""
    trt = tensorrt_module()
    _, data = _checked_engine(path, trt.__version__, gpu_name())
    return deserialize_engine(data, Path(path).name)


def deserialize_engine(data: bytes, name: str):
    """``trt.ICudaEngine`` from engine bytes already checked (:func:`check_engine_file`);
    one-line UserError naming ``name`` if TensorRT cannot load them."""
    trt = tensorrt_module()
    logger = _Logger(trt)
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        msg = logger.messages[-1] if logger.messages else "deserialization failed"
        raise UserError(f"{name}: TensorRT cannot load this engine ({' '.join(msg.split())[:200]})")
    _KEEP_ALIVE.append(runtime)
    return engine
