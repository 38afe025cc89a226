"""ONNX Runtime backend: an exported task graph on the TensorRT, CUDA or CPU provider.

Input and output names come from the graph's IO spec (ONNX ``metadata_props`` or the JSON
sidecar written by the exporter, see ``export.spec``), never from string literals here.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from export.spec import SPEC, IOSpec
from runtime.backends import BackendBase, BackendError

# Fastest first; ORT tries them in the order given and falls back per node.
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")


def pick_providers(available: list[str], device: str | None = None) -> list[str]:
    """The providers to ask for, fastest first, from what ``get_available_providers()`` offers.

    ``device`` ("tensorrt", "cuda", "cpu") starts the list at that provider."""
    order = list(PROVIDER_ORDER)
    if device:
        want = {"tensorrt": 0, "trt": 0, "cuda": 1, "gpu": 1, "cpu": 2}.get(device.lower())
        if want is None:
            raise BackendError(f"unknown onnxruntime device {device!r}; use tensorrt, cuda or cpu")
        order = order[want:]
    chosen = [p for p in order if p in available]
    if not chosen:
        raise BackendError(f"ONNX Runtime offers none of {', '.join(order)} (has {', '.join(available) or 'none'})")
    return chosen


def _find_spec_dict(obj: object) -> dict | None:
    """The first dict (depth-first) that looks like an IOSpec (has ``input_name``)."""
    if isinstance(obj, Mapping):
        if "input_name" in obj and "output_name" in obj:
            return dict(obj)
        for v in obj.values():
            found = _find_spec_dict(v)
            if found is not None:
                return found
    return None


def io_spec_from_metadata(meta: Mapping[str, str], sidecar: Path | None = None) -> IOSpec | None:
    """IOSpec from ONNX ``metadata_props`` (any value holding its JSON), else from the sidecar."""
    for value in meta.values():
        if "input_name" not in value:
            continue
        try:
            found = _find_spec_dict(json.loads(value))
        except (ValueError, TypeError):
            continue
        if found:
            return IOSpec.from_dict(found)
    if sidecar is not None and sidecar.is_file():
        try:
            found = _find_spec_dict(json.loads(sidecar.read_text()))
        except (OSError, ValueError):
            found = None
        if found:
            return IOSpec.from_dict(found)
    return None


def sidecar_path(onnx_path: Path) -> Path:
    return onnx_path.with_suffix(".json")


def physical_cores() -> int:
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
    except Exception:
        n = None
    return max(1, n or os.cpu_count() or 1)


class OrtBackend(BackendBase):
    """``OrtBackend(path, device=None, threads=None)``: one InferenceSession, batch N dynamic.

    ``provider`` is the short name of the first provider the session really uses
    ("TensorRT", "CUDA", "CPU"). Intra-op threads default to the number of physical cores.
    """

    def __init__(self, path: str | os.PathLike[str], device: str | None = None, threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise BackendError("onnxruntime is not installed: pip install onnxruntime (or onnxruntime-gpu)") from None
        self.path = Path(path)
        if not self.path.is_file():
            raise BackendError(f"ONNX graph {self.path} does not exist")
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or physical_cores()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        providers = pick_providers(ort.get_available_providers(), device)
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers)
        except Exception as e:  # InvalidGraph, InvalidProtobuf, Fail, …
            first = " ".join(str(e).split())[:200]
            raise BackendError(f"ONNX Runtime cannot load {self.path}: {first}") from None
        meta = self.session.get_modelmeta().custom_metadata_map or {}
        spec = io_spec_from_metadata(meta, sidecar_path(self.path))
        self.spec_source = "metadata" if spec is not None else "default"
        if spec is None:
            spec = SPEC
        super().__init__(spec)
        self.metadata = dict(meta)
        inputs = {i.name for i in self.session.get_inputs()}
        outputs = {o.name for o in self.session.get_outputs()}
        if spec.input_name not in inputs or spec.output_name not in outputs:
            raise BackendError(
                f"{self.path}: graph I/O ({', '.join(sorted(inputs))} → {', '.join(sorted(outputs))}) does not match "
                f"its IO spec ({spec.input_name} → {spec.output_name}); re-export it with tvexport"
            )
        used = self.session.get_providers()
        self.provider = used[0].replace("ExecutionProvider", "") if used else "CPU"
        self.name = f"onnxruntime:{self.provider}"
        self._out = [spec.output_name]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [N,111,111,3] BGR → uint8 [N,111,111,3] BGR."""
        batch = self.check_batch(batch)
        return self.session.run(self._out, {self.spec.input_name: batch})[0]

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
        super().close()
