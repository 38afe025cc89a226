"""ONNX Runtime backend: an exported task graph on the TensorRT, CUDA or CPU provider.

Input and output names come from the graph's IO spec (ONNX ``metadata_props`` or the JSON
sidecar written by the exporter, see ``export.spec``), never from string literals here.

Provider options (:func:`provider_options`) are set the way deployment engineers set them:
the TensorRT provider keeps its engines and its timing cache in the runtime cache
(``~/.cache/taskvec/ort-trt/``, ``runtime.cache``) so only the first launch builds, gets an
optimisation profile for the dynamic batch, and runs FP16 when asked (LayerNorm kept FP32);
the CUDA provider grows its arena by what is requested and searches convolution
algorithms once. The options used are the backend's ``options`` (tvrun's backend line,
``--stats``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

import numpy as np

from export.metadata import sidecar_path
from export.spec import SPEC, GraphMetadata, IOSpec
from runtime.backends import BackendBase, BackendError

# Fastest first; ORT tries them in the order given and falls back per node.
PROVIDER_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
TRT_CACHE_FOLDER = "ort-trt"
WORKSPACE_BYTES = 4 << 30


def provider_options(
    providers: list[str],
    *,
    inputs: list[str] | None = None,
    spec: IOSpec = SPEC,
    cache_dir: str | os.PathLike[str] | None = None,
    fp16: bool = False,
    batch_max: int = 8,
    device_id: int = 0,
    prefix: str = "taskvec",
) -> list[dict[str, str]]:
    """One options dict per provider in ``providers`` (ORT's ``provider_options`` argument;
    values are strings, as ORT reports them back).

    TensorRT: engine cache and timing cache in ``<cache>/ort-trt`` (engines named
    ``<prefix>_…``), a profile for batch 1..``batch_max`` on every image input in ``inputs``
    (default: the spec's input), 4 GiB workspace, ``trt_fp16_enable`` when ``fp16`` (with
    the LayerNorm FP32 fallback). CUDA: ``device_id``, arena grown by what is requested,
    exhaustive convolution search (once per shape), copies on the default stream. CPU: none."""
    from runtime.cache import cache_root

    folder = str(cache_root(cache_dir) / TRT_CACHE_FOLDER)
    names = inputs or [spec.input_name]

    def shapes(n: int) -> str:
        return ",".join(f"{name}:{n}x{spec.height}x{spec.width}x{spec.channels}" for name in names)

    out: list[dict[str, str]] = []
    for p in providers:
        if p == "TensorrtExecutionProvider":
            out.append({
                "device_id": str(device_id),
                "trt_engine_cache_enable": "True", "trt_engine_cache_path": folder, "trt_engine_cache_prefix": prefix,
                "trt_timing_cache_enable": "True", "trt_timing_cache_path": folder,
                "trt_fp16_enable": str(bool(fp16)), "trt_layer_norm_fp32_fallback": str(bool(fp16)),
                "trt_max_workspace_size": str(WORKSPACE_BYTES),
                "trt_profile_min_shapes": shapes(1), "trt_profile_opt_shapes": shapes(1),
                "trt_profile_max_shapes": shapes(max(1, batch_max)),
            })
        elif p == "CUDAExecutionProvider":
            out.append({"device_id": str(device_id), "arena_extend_strategy": "kSameAsRequested",
                        "cudnn_conv_algo_search": "EXHAUSTIVE", "do_copy_in_default_stream": "True"})
        else:
            out.append({})
    return out


def describe_options(providers: list[str], options: list[dict[str, str]]) -> str:
    """A short human line: ``TensorRT: fp16, engine+timing cache in DIR; CUDA: device 0``."""
    parts = []
    for p, o in zip(providers, options):
        short = p.replace("ExecutionProvider", "")
        if p == "TensorrtExecutionProvider":
            prec = "fp16" if o.get("trt_fp16_enable") == "True" else "fp32"
            parts.append(f"TensorRT: {prec}, engine + timing cache in {o.get('trt_engine_cache_path')}")
        elif p == "CUDAExecutionProvider":
            parts.append(f"{short}: device {o.get('device_id')}, conv search {o.get('cudnn_conv_algo_search')}")
    return "; ".join(parts)


def _graph_inputs(path: Path, spec: IOSpec) -> list[str]:
    """The graph's uint8 image inputs (for TensorRT profiles), read without the weights' data."""
    try:
        import onnx

        g = onnx.load(str(path), load_external_data=False).graph
        init = {i.name for i in g.initializer}
        found = [i.name for i in g.input if i.name not in init and i.type.tensor_type.elem_type == onnx.TensorProto.UINT8]
        return found or [spec.input_name]
    except Exception:  # noqa: BLE001 — ORT reports a broken file itself, in one line
        return [spec.input_name]


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


def graph_metadata(props: Mapping[str, str], sidecar: Path | None = None) -> GraphMetadata | None:
    """The graph's :class:`~export.spec.GraphMetadata` from its ``metadata_props`` (as ORT
    reports them), else from the JSON sidecar; None for a graph without either."""
    try:
        meta = GraphMetadata.from_props(dict(props))
    except (ValueError, TypeError):
        meta = None
    if meta is None and sidecar is not None and sidecar.is_file():
        try:
            meta = GraphMetadata.from_dict(json.loads(sidecar.read_text()))
        except (OSError, ValueError, TypeError):
            meta = None
    return meta


def io_spec_from_metadata(props: Mapping[str, str], sidecar: Path | None = None) -> IOSpec | None:
    """The graph's IOSpec (see :func:`graph_metadata`), None without metadata."""
    meta = graph_metadata(props, sidecar)
    return meta.io_spec if meta is not None else None


def physical_cores() -> int:
    try:
        import psutil

        n = psutil.cpu_count(logical=False)
    except Exception:
        n = None
    return max(1, n or os.cpu_count() or 1)


class OrtBackend(BackendBase):
    """``OrtBackend(path, device=None, threads=None, cache_dir=None, fp16=False)``: one
    InferenceSession, batch N dynamic, providers set up by :func:`provider_options`.

    ``provider`` is the short name of the first provider the session really uses
    ("TensorRT", "CUDA", "CPU"); ``options`` {provider: options asked for}. Intra-op threads
    default to the number of physical cores.
    """

    def __init__(self, path: str | os.PathLike[str], device: str | None = None, threads: int | None = None,
                 cache_dir: str | os.PathLike[str] | None = None, fp16: bool = False, batch_max: int = 8) -> None:
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
        side = io_spec_from_metadata({}, sidecar_path(self.path)) or SPEC
        inputs = _graph_inputs(self.path, side) if "TensorrtExecutionProvider" in providers else None
        options = provider_options(providers, inputs=inputs, spec=side, cache_dir=cache_dir, fp16=fp16,
                                   batch_max=batch_max, prefix=self.path.stem.replace(".", "_"))
        if "TensorrtExecutionProvider" in providers:
            Path(options[0]["trt_engine_cache_path"]).mkdir(parents=True, exist_ok=True)
        try:
            self.session = ort.InferenceSession(str(self.path), sess_options=opts, providers=providers,
                                                provider_options=options)
        except Exception as e:  # InvalidGraph, InvalidProtobuf, Fail, …
            first = " ".join(str(e).split())[:200]
            raise BackendError(f"ONNX Runtime cannot load {self.path}: {first}") from None
        props = self.session.get_modelmeta().custom_metadata_map or {}
        self.metadata = graph_metadata(props, sidecar_path(self.path))
        self.spec_source = "metadata" if self.metadata is not None else "default"
        spec = self.metadata.io_spec if self.metadata is not None else SPEC
        super().__init__(spec)
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
        asked = dict(zip(providers, options))
        self.options = {p.replace("ExecutionProvider", ""): asked[p] for p in used if asked.get(p)}
        self.options_line = describe_options([p for p in used if p in asked], [asked[p] for p in used if p in asked])
        if fp16 and "TensorrtExecutionProvider" not in used:
            self.options_line = "; ".join(x for x in (self.options_line, f"fp16 not applied ({self.provider} runs "
                                                      "the graph as exported; FP16 is a TensorRT-provider option)") if x)
        self._out = [spec.output_name]

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """uint8 [N,111,111,3] BGR → uint8 [N,111,111,3] BGR."""
        batch = self.check_batch(batch)
        return self.session.run(self._out, {self.spec.input_name: batch})[0]

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
        super().close()
