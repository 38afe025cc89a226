"""Inference backends behind one interface (STYLE §7).

Every backend runs the deployed graph's contract (``export.spec.SPEC``)::

    infer(batch)   batch  uint8 [N,111,111,3] BGR  →  uint8 [N,111,111,3] BGR

and is a context manager (``close()`` frees sessions, engines and device buffers).
One module per backend, each importing its heavy dependency lazily:

    tensorrt     a serialized TensorRT engine (``--engine``) in ``export.trt_session.TrtSession``
    onnxruntime  an exported ONNX graph (``--onnx``), TensorRT/CUDA/CPU execution providers
    torch        the PyTorch reference: the exported wrapper (``export.wrapper.ZeroShotGraph``) run eagerly

``open_backend("auto", …)`` picks the fastest one that can run here and says why
(``backend.reason``): TensorRT engine > ORT with TensorRT/CUDA > ORT CPU > torch.
"""

from __future__ import annotations

import functools

import importlib.util
import os
from dataclasses import dataclass
from typing import Any, Callable, Literal, Protocol, get_args, runtime_checkable

import numpy as np

from export.spec import SPEC, IOSpec
from taskvec.errors import UserError

BackendKind = Literal["auto", "tensorrt", "onnxruntime", "torch"]
BACKEND_KINDS: tuple[str, ...] = get_args(BackendKind)


class BackendError(UserError):
    """A backend cannot be opened or run here; ``str(e)`` is one line for the user."""


@runtime_checkable
class Backend(Protocol):
    """``infer`` maps uint8 [N,111,111,3] BGR to uint8 [N,111,111,3] BGR."""

    name: str  # e.g. "onnxruntime:CPU", "tensorrt", "torch:cuda-fp16"
    reason: str  # why this backend was chosen (set by open_backend)
    spec: IOSpec

    def infer(self, batch: np.ndarray) -> np.ndarray: ...

    def close(self) -> None: ...

    def __enter__(self) -> "Backend": ...

    def __exit__(self, *exc: object) -> None: ...


class BackendBase:
    """Shared plumbing: input checking, context manager, ``reason``."""

    name = "base"

    def __init__(self, spec: IOSpec = SPEC) -> None:
        self.spec = spec
        self.reason = ""
        self.closed = False
        self.options: dict[str, dict[str, str]] = {}  # provider options in use (ORT), set after this
        self.options_line = ""  # the same, in words, for the backend line

    def check_batch(self, batch: np.ndarray) -> np.ndarray:
        """Validate a batch against the IO spec; a single HxWx3 image becomes a batch of one."""
        if batch.ndim == 3:
            batch = batch[None]
        want = (self.spec.height, self.spec.width, self.spec.channels)
        if batch.dtype != np.uint8 or batch.ndim != 4 or tuple(batch.shape[1:]) != want:
            raise ValueError(
                f"{self.name} takes uint8 [N,{want[0]},{want[1]},{want[2]}] {self.spec.color}, "
                f"got {batch.dtype} {list(batch.shape)}"
            )
        return np.ascontiguousarray(batch)

    def close(self) -> None:
        self.closed = True

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _has(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


def ort_providers() -> list[str]:
    """ONNX Runtime's available execution providers ([] without onnxruntime)."""
    if not _has("onnxruntime"):
        return []
    import onnxruntime

    return list(onnxruntime.get_available_providers())


def cuda_available() -> bool:
    """A CUDA GPU is visible to the CUDA runtime (asked through ctypes: no torch)."""
    from export.cudart import CudaRuntime, find_cudart
    from taskvec.errors import UserError

    if find_cudart() is None:
        return False
    try:
        return CudaRuntime().device_count() > 0
    except (UserError, OSError, AttributeError):
        return False


def available_backends() -> dict[str, str]:
    """{kind: what it would run on} for every backend usable here, fastest first. Imports
    neither torch nor TensorRT (the torch backend's device is chosen when it opens)."""
    out: dict[str, str] = {}
    cuda = functools.cache(cuda_available)  # one probe per call, asked only if needed
    if _has("tensorrt") and cuda():
        out["tensorrt"] = "TensorRT engine"
    providers = ort_providers()
    if providers:
        from runtime.backends.onnxruntime import pick_providers

        out["onnxruntime"] = ",".join(p.replace("ExecutionProvider", "") for p in pick_providers(providers))
    if _has("torch"):
        out["torch"] = "cuda" if cuda() else "cpu"  # the device it would pick
    return out


@dataclass(frozen=True)
class BackendRequest:
    """What to open (:func:`open_backend`).

    ``kind``: a :data:`BACKEND_KINDS` name; ``engine``: a TensorRT engine file; ``onnx``: an
    ONNX graph, or ``export``: a callable returning one when ``auto``/``onnxruntime`` needs
    it (tvrun passes its export cache); ``deployed``: a callable returning the
    :class:`~taskvec.vectors.resolved.ResolvedTask` the torch backend runs (tvrun's, resolved
    at most once), else ``task`` (+ ``model``) resolved here; ``graph``: what an engine's graph
    must be (:class:`~export.metadata.GraphRequest`). ``device`` is "cpu"/"cuda" for torch, a
    provider prefix ("cpu", "cuda", "tensorrt") for onnxruntime; ``cache_dir``: where ONNX
    Runtime's TensorRT provider keeps engines and its timing cache; ``fp16``: FP16 there."""

    kind: BackendKind = "auto"
    onnx: str | None = None
    engine: str | None = None
    export: Callable[[], str | os.PathLike[str]] | None = None
    deployed: Callable[[], Any] | None = None
    task: str | None = None
    model: str | None = None
    graph: Any = None
    device: str | None = None
    cache_dir: str | None = None
    fp16: bool = False

    def onnx_path(self) -> str:
        if self.onnx:
            return self.onnx
        if self.export is None:
            raise BackendError("the onnxruntime backend needs --onnx FILE (or a task to export)")
        return str(self.export())

    def resolved_task(self):
        if self.deployed is not None:
            return self.deployed()
        if not self.task:
            raise BackendError("the torch backend needs --task")
        from taskvec.vectors.resolved import resolve_task

        return resolve_task(self.task, self.model or "tiny")


def _torch(req: BackendRequest) -> Backend:
    from runtime.backends.torch import TorchBackend

    deployed = req.resolved_task()
    return TorchBackend.zero_shot(deployed.model, deployed.taskvector, device=req.device)


def _tensorrt(req: BackendRequest) -> Backend:
    from runtime.backends.tensorrt import TensorRTBackend

    return TensorRTBackend(req.engine, req.graph)


def _ort(req: BackendRequest) -> Backend:
    from runtime.backends.onnxruntime import OrtBackend

    return OrtBackend(req.onnx_path(), device=req.device, cache_dir=req.cache_dir, fp16=req.fp16)


def open_backend(request: BackendRequest | BackendKind = "auto", **fields: Any) -> Backend:
    """Open one backend for ``request`` (a :class:`BackendRequest`, or its ``kind`` with the
    other fields as keywords). ``auto`` picks the fastest that can run here and says why
    (``backend.reason``). Raises :class:`BackendError`."""
    req = request if isinstance(request, BackendRequest) else BackendRequest(request, **fields)
    if req.kind not in BACKEND_KINDS:
        raise BackendError(f"unknown backend {req.kind!r}; choose from {', '.join(BACKEND_KINDS)}")
    if req.kind == "tensorrt" and not req.engine:
        raise BackendError("the tensorrt backend needs --engine FILE (build one with `tvexport --engine`)")
    opener = {"tensorrt": _tensorrt, "onnxruntime": _ort, "torch": _torch}
    if req.kind != "auto":
        b = opener[req.kind](req)
        b.reason = f"asked for (--backend {req.kind})"
        return b

    # auto: fastest first, each step says why the faster ones were passed over
    have = available_backends()
    passed: list[str] = []
    if req.engine:
        if "tensorrt" in have:
            b = _tensorrt(req)
            b.reason = "auto: a TensorRT engine was given and TensorRT + CUDA are available"
            return b
        passed.append("engine given but TensorRT/CUDA unavailable")
    else:
        passed.append("no --engine")
    if "onnxruntime" in have and (req.onnx or req.export is not None):
        b = _ort(req)
        accel = b.provider != "CPU"
        why = f"ONNX Runtime with the {b.provider} provider" + ("" if accel else " (no TensorRT/CUDA provider)")
        b.reason = "auto: " + why + "; " + ", ".join(passed)
        return b
    passed.append("onnxruntime unavailable" if "onnxruntime" not in have else "no ONNX graph")
    if "torch" in have and (req.task or req.deployed is not None):
        b = _torch(req)
        b.reason = "auto: PyTorch reference (slowest); " + ", ".join(passed)
        return b
    raise BackendError("no backend can run here: " + ", ".join(passed))


__all__ = [
    "BACKEND_KINDS",
    "Backend",
    "BackendBase",
    "BackendError",
    "BackendKind",
    "BackendRequest",
    "available_backends",
    "open_backend",
]
