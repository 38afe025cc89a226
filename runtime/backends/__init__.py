"""Inference backends behind one interface (STYLE §7).

Every backend runs the deployed graph's contract (``export.spec.SPEC``)::

    infer(batch)   batch  uint8 [N,111,111,3] BGR  →  uint8 [N,111,111,3] BGR

and is a context manager (``close()`` frees sessions, engines and device buffers).
One module per backend, each importing its heavy dependency lazily:

    tensorrt     a serialized TensorRT engine (``--engine``), through ``export.trt.load_engine``
    onnxruntime  an exported ONNX graph (``--onnx``), TensorRT/CUDA/CPU execution providers
    torch        the PyTorch reference: the model + the task's shipped task vector, zero-shot

``open_backend("auto", …)`` picks the fastest one that can run here and says why
(``backend.reason``): TensorRT engine > ORT with TensorRT/CUDA > ORT CPU > torch.
"""

from __future__ import annotations

import importlib.util
from typing import Literal, Protocol, get_args, runtime_checkable

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
    if not _has("torch"):
        return False
    import torch

    return bool(torch.cuda.is_available())


def available_backends() -> dict[str, str]:
    """{kind: what it would run on} for every backend usable here, fastest first."""
    out: dict[str, str] = {}
    if _has("tensorrt") and cuda_available():
        out["tensorrt"] = "TensorRT engine"
    providers = ort_providers()
    if providers:
        from runtime.backends.onnxruntime import pick_providers

        out["onnxruntime"] = ",".join(p.replace("ExecutionProvider", "") for p in pick_providers(providers))
    if _has("torch"):
        out["torch"] = "cuda" if cuda_available() else "cpu"
    return out


def open_backend(
    kind: BackendKind = "auto",
    onnx: str | None = None,
    engine: str | None = None,
    model: str | None = None,
    task: str | None = None,
    device: str | None = None,
    onnx_factory=None,
    taskvec: str | None = None,
    cache_dir: str | None = None,
    fp16: bool = False,
) -> Backend:
    """Open one backend.

    ``engine``: a TensorRT engine file; ``onnx``: an ONNX graph; ``model`` + ``task``: the
    PyTorch reference (``model`` defaults to ``tiny``). ``onnx_factory`` is a callable that
    returns an ONNX path when ``auto``/``onnxruntime`` needs one and none was given (the CLI
    passes the export cache); ``taskvec`` a task-vector file for the torch backend. ``device`` is "cpu"/"cuda" for torch, a provider prefix
    ("cpu", "cuda", "tensorrt") for onnxruntime. ``cache_dir``: where ONNX Runtime's TensorRT
    provider keeps engines and its timing cache; ``fp16``: FP16 on that provider.
    Raises :class:`BackendError`.
    """
    if kind not in BACKEND_KINDS:
        raise BackendError(f"unknown backend {kind!r}; choose from {', '.join(BACKEND_KINDS)}")
    have = available_backends()

    def _onnx_path() -> str:
        if onnx:
            return onnx
        if onnx_factory is None:
            raise BackendError("the onnxruntime backend needs --onnx FILE (or a task to export)")
        return str(onnx_factory())

    if kind == "tensorrt":
        if not engine:
            raise BackendError("the tensorrt backend needs --engine FILE (build one with `tvexport --engine`)")
        from runtime.backends.tensorrt import TensorRTBackend

        b = TensorRTBackend(engine)
        b.reason = "asked for (--backend tensorrt)"
        return b
    if kind == "onnxruntime":
        from runtime.backends.onnxruntime import OrtBackend

        b = OrtBackend(_onnx_path(), device=device, cache_dir=cache_dir, fp16=fp16)
        b.reason = "asked for (--backend onnxruntime)"
        return b
    if kind == "torch":
        from runtime.backends.torch import TorchBackend

        if not task:
            raise BackendError("the torch backend needs --task")
        b = TorchBackend.from_spec(model or "tiny", task, device=device, taskvec=taskvec)
        b.reason = "asked for (--backend torch)"
        return b

    # auto: fastest first, each step says why the faster ones were passed over
    passed: list[str] = []
    if engine:
        if "tensorrt" in have:
            from runtime.backends.tensorrt import TensorRTBackend

            b = TensorRTBackend(engine)
            b.reason = "auto: a TensorRT engine was given and TensorRT + CUDA are available"
            return b
        passed.append("engine given but TensorRT/CUDA unavailable")
    else:
        passed.append("no --engine")
    if "onnxruntime" in have and (onnx or onnx_factory is not None):
        from runtime.backends.onnxruntime import OrtBackend

        b = OrtBackend(_onnx_path(), device=device, cache_dir=cache_dir, fp16=fp16)
        accel = b.provider != "CPU"
        why = f"ONNX Runtime with the {b.provider} provider" + ("" if accel else " (no TensorRT/CUDA provider)")
        b.reason = "auto: " + why + "; " + ", ".join(passed)
        return b
    passed.append("onnxruntime unavailable" if "onnxruntime" not in have else "no ONNX graph")
    if "torch" in have and task:
        from runtime.backends.torch import TorchBackend

        b = TorchBackend.from_spec(model or "tiny", task, device=device, taskvec=taskvec)
        b.reason = "auto: PyTorch reference (slowest); " + ", ".join(passed)
        return b
    raise BackendError("no backend can run here: " + ", ".join(passed))


__all__ = [
    "BACKEND_KINDS",
    "Backend",
    "BackendBase",
    "BackendError",
    "BackendKind",
    "available_backends",
    "open_backend",
]
