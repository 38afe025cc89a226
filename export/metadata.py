"""A graph's metadata: written once, read and checked in one place (STYLE §3, §14).

The exporter writes :class:`~export.spec.GraphMetadata` into the ONNX ``metadata_props``
(:func:`write_props`) and the JSON sidecar beside it; every loader — ``tvrun --onnx`` /
``--engine``, the ONNX Runtime and TensorRT backends, the benchmarks, the export check —
reads it back here and checks it against what the command asked for
(:class:`GraphRequest`): task, graph kind, model, and the graph's real I/O names, shapes and
dtypes. A mismatch is refused with one line (:class:`~taskvec.errors.UserError`).

No torch here: ``tvrun`` with a graph or an engine never loads it.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from export.spec import GraphMetadata, IOSpec
from taskvec.errors import UserError

PathLike = str | os.PathLike


def sidecar_path(onnx_path: PathLike) -> Path:
    """``T.onnx`` → ``T.json``."""
    return Path(onnx_path).with_suffix(".json")


def write_props(model, meta: GraphMetadata) -> None:
    """Replace ``model``'s (an ``onnx.ModelProto``) ``metadata_props`` by ``meta``'s and set
    its producer fields."""
    model.producer_name = meta.producer
    model.producer_version = meta.producer_version
    del model.metadata_props[:]
    for key, value in meta.to_props().items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value


def graph_props(src) -> dict[str, str]:
    """All ``metadata_props`` of an ONNX file (weights not loaded) or ``onnx.ModelProto``."""
    import onnx

    if isinstance(src, onnx.ModelProto):
        model = src
    else:
        try:
            model = onnx.load(str(src), load_external_data=False)
        except Exception as e:  # noqa: BLE001 — any parse failure is a bad file
            raise UserError(f"{src}: not a readable ONNX file ({type(e).__name__})") from None
    return {p.key: p.value for p in model.metadata_props}


def read_props(src, name: str | None = None) -> GraphMetadata | None:
    """The graph's :class:`GraphMetadata`, None when it has none (not written by tvexport);
    ``name`` (the file) for the message when ``src`` is an already loaded model."""
    try:
        return GraphMetadata.from_props(graph_props(src))
    except (ValueError, TypeError):
        raise UserError(f"{name or src}: unreadable taskvec metadata in the graph; re-export it with tvexport") from None


def read_sidecar(onnx_path: PathLike) -> dict[str, Any]:
    """The JSON sidecar next to ``onnx_path`` as a dict (one-line error when missing or unreadable)."""
    side = sidecar_path(onnx_path)
    if not side.is_file():
        raise UserError(f"{onnx_path}: its sidecar {side.name} is missing (tvexport writes both; copy them together)")
    try:
        info = json.loads(side.read_text())
        if not isinstance(info, dict):
            raise ValueError("not an object")
    except (OSError, ValueError) as e:
        raise UserError(f"{side}: not a readable sidecar ({type(e).__name__})") from None
    return info


def first_difference(a: GraphMetadata, b: GraphMetadata) -> tuple[str, Any, Any] | None:
    """The first field where ``a`` and ``b`` differ → (name, a's, b's); None if equal."""
    for f in dataclasses.fields(GraphMetadata):
        x, y = getattr(a, f.name), getattr(b, f.name)
        if x != y:
            return f.name, x, y
    return None


@dataclass(frozen=True)
class GraphRequest:
    """What a command asks a graph to be. ``None`` fields are not checked."""

    task: str | None = None
    graph: str | None = "task"
    model_fingerprint: str | None = None
    model_name: str | None = None
    spec: IOSpec | None = None  # the I/O the caller feeds (the runtime's contract)

    def check(self, meta: GraphMetadata, where: str) -> None:
        """One-line UserError when ``meta`` is not what was asked for."""
        if self.task is not None and meta.task != self.task:
            raise UserError(f"{where} is the {meta.task!r} graph, not {self.task!r}; export one with "
                            f"`tvexport --task {self.task}`")
        runnable = self.graph == "task" and meta.baked  # a baked in-context graph runs like a task graph
        if self.graph is not None and meta.graph != self.graph and not runnable:
            raise UserError(f"{where} is a {meta.graph} graph, not a {self.graph} graph (tvexport --graph {self.graph})")
        if self.model_fingerprint is not None and meta.model_fingerprint != self.model_fingerprint:
            raise UserError(f"{where} was exported from model {meta.model_name or meta.model} "
                            f"({meta.model_fingerprint[:12]}…), not the requested {self.model_name or 'model'} "
                            f"({self.model_fingerprint[:12]}…)")
        if self.model_name is not None and self.model_fingerprint is None and meta.model_name != self.model_name:
            raise UserError(f"{where} was exported from model {meta.model_name}, not {self.model_name}")
        if self.spec is not None:
            for f in ("input_name", "output_name", "height", "width", "channels", "layout", "color", "dtype"):
                if getattr(meta.io_spec, f) != getattr(self.spec, f):
                    raise UserError(f"{where}: its I/O {f} is {getattr(meta.io_spec, f)!r}, this runtime feeds "
                                    f"{getattr(self.spec, f)!r}")


_ONNX_DTYPES = {"uint8": 2, "float32": 1, "float16": 10}  # onnx.TensorProto elem types


def check_graph_io(model, meta: GraphMetadata, where: str) -> None:
    """The graph's real inputs and outputs against ``meta``: names, dtypes and shapes
    ([N,H,W,C] with a free batch for the images)."""
    spec = meta.io_spec
    inits = {i.name for i in model.graph.initializer}
    ins = {i.name: i for i in model.graph.input if i.name not in inits}
    outs = {o.name: o for o in model.graph.output}
    want_in = meta.input_names
    if sorted(ins) != sorted(want_in) or spec.output_name not in outs:
        raise UserError(f"{where}: graph I/O ({', '.join(ins)} → {', '.join(outs)}) does not match its metadata "
                        f"({', '.join(want_in)} → {spec.output_name}); re-export it with tvexport")
    images = [n for n in want_in if n not in meta.switch_inputs]
    for name, vi in [*((n, ins[n]) for n in images), (spec.output_name, outs[spec.output_name])]:
        t = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        if t.elem_type != _ONNX_DTYPES.get(spec.dtype) or dims[1:] != [spec.height, spec.width, spec.channels]:
            raise UserError(f"{where}: tensor {name} is type {t.elem_type} {dims}, its metadata says {spec.dtype} "
                            f"[N,{spec.height},{spec.width},{spec.channels}]")


def load_graph_metadata(path: PathLike, request: GraphRequest | None = None, *, weights: bool = True) -> GraphMetadata:
    """Everything a loader checks before it runs ``path``: the graph carries taskvec metadata,
    it is what ``request`` asks for, its sidecar exists and says the same (every field, and
    the file's digest), its I/O match the metadata, its patch nodes match the patched blocks
    and (``weights``) its constants are finite. Returns the metadata; one-line UserError else."""
    import onnx

    from export.graph_edit import patch_node_counts, check_finite_graph

    path = Path(path)
    if not path.is_file():
        raise UserError(f"ONNX graph {path} does not exist")
    try:  # parsed once: the metadata now, external weights (if any) only after the checks below
        model = onnx.load(str(path), load_external_data=False)
    except Exception as e:  # noqa: BLE001 — any parse failure is a bad file
        raise UserError(f"{path}: not a readable ONNX file ({type(e).__name__})") from None
    meta = read_props(model, str(path))
    want = request or GraphRequest()
    if meta is None:
        hint = f"`tvexport --task {want.task}`" if want.task else "tvexport"
        raise UserError(f"{path}: not a graph exported by tvexport (no taskvec metadata); export one with {hint}")
    want.check(meta, str(path))
    info = read_sidecar(path)
    try:
        side = GraphMetadata.from_dict(info)
    except (ValueError, TypeError):
        raise UserError(f"{sidecar_path(path)}: does not describe a graph (no readable metadata)") from None
    diff = first_difference(side, meta)
    if diff is not None:
        key, a, b = diff
        raise UserError(f"{sidecar_path(path).name} does not describe {path.name}: {key} {str(a)[:24]!r} in the "
                        f"sidecar, {str(b)[:24]!r} in the graph")
    digest = (info.get("files") or {}).get("onnx_sha256")
    if digest:
        from export.check import file_sha256

        if digest != file_sha256(path):
            raise UserError(f"{path}: the graph changed after export (its digest does not match {sidecar_path(path).name})")
    if weights:
        from onnx.external_data_helper import load_external_data_for_model

        load_external_data_for_model(model, str(path.parent))  # a no-op when the weights are inline
    check_graph_io(model, meta, str(path))
    if meta.graph == "task" or meta.baked:
        found = {b for b, c in patch_node_counts(model).items() if c.get("Mul") == 1 and c.get("Add") == 1}
        if set(meta.patched_blocks) != found:
            raise UserError(f"{path}: patch nodes ({len(found)} blocks) do not match its metadata "
                            f"({len(meta.patched_blocks)} patched blocks); re-export it with tvexport")
    if weights:
        check_finite_graph(model, str(path))
    return meta


def load_engine_metadata(path: PathLike, request: GraphRequest | None = None, trt_version: str | None = None,
                         gpu: str | None = None) -> tuple[GraphMetadata, dict[str, Any]]:
    """An engine's sidecar checked (name, checksum, and the TensorRT version / GPU when
    given, :func:`export.trt.check_engine_file`), its graph metadata against ``request`` →
    (metadata, sidecar). Needs no TensorRT."""
    from export.trt import check_engine_file

    info = check_engine_file(path, trt_version, gpu)
    try:
        meta = GraphMetadata.from_dict(info.get("metadata") or {})
    except (ValueError, TypeError):
        raise UserError(f"{Path(path).name}: its sidecar holds no graph metadata; rebuild it with tvexport --engine") from None
    (request or GraphRequest()).check(meta, str(path))
    return meta, info
