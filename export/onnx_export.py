"""Export one task's graph to ONNX: build the wrapper, trace, name the patch nodes,
write metadata, check against PyTorch, write ``DIR/T.onnx`` + ``DIR/T.json`` atomically.

Exporter: the TorchScript exporter (``dynamo=False``) at opset 17, then onnxslim
(:func:`export.graph_edit.simplify`). It writes each LayerNorm as one
``LayerNormalization`` node, keeps the task-vector buffers as named initializers feeding
one Mul and one Add, takes ``dynamic_axes`` for the batch, and traces ``tiny`` in about
4 s on two CPU cores. ``torch.onnx.export(dynamo=True)`` was measured on the same graph
(``benchmarks/exporter_compare.py``, README "Export"): the same semantics (parity,
LayerNorm nodes, patch initializers, dynamic batch; 381 vs 385 nodes after onnxslim) but
about 8× slower to export (31 s vs 3.8 s on two busy cores), which tvrun's export on first
use and the test suite's few dozen exports would pay — so the TorchScript exporter stays,
its deprecation warning passed on to the user (``log``, the sidecar's
``exporter.deprecations``), not silenced.

Large models (``vit_large``: ≈1.5 GB of weights in the graph) are written with external
data — ``T.onnx`` + ``T.onnx.data`` — once the weights pass :data:`EXTERNAL_DATA_BYTES`.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import warnings
import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import torch

from export import check as C
from export import graph_edit as E
from export.metadata import write_props
from export.spec import (FLOAT_OUTPUT, GRAPH_KINDS, OPSET, PRODUCER, SPEC, GraphKind, GraphMetadata, onnx_filename,
                         patch_name)
from export.wrapper import BakedExampleGraph, InContextGraph, SwitchableGraph, ZeroShotGraph, identity_patch
from taskvec import geometry as G
from taskvec.model.checkpoint import DEFAULT_MODEL, model_fingerprint
from taskvec.errors import UserError, publish
from taskvec.model.mae_vqgan import MaeVQGAN
from taskvec.data.pairs import PairsTask, task_identity
from taskvec.data.tasks import get_task
from taskvec.vectors.resolved import ResolvedTask, resolve_task

EXTERNAL_DATA_BYTES = 1 << 30  # weights above 1 GiB go to T.onnx.data
SLIM_MAX_BYTES = EXTERNAL_DATA_BYTES  # graphs with more weights are left as traced (see export_task)
PRODUCER_VERSION = "0.1.0"
EXAMPLE_BATCH = 2


@dataclass
class ExportResult:
    task: str
    graph: str
    onnx_path: Path
    json_path: Path
    data_path: Path | None
    metadata: GraphMetadata
    check: C.CheckReport | None
    patch_nodes: list[str]
    op_counts: dict[str, int]
    seconds: float
    decode_comparison: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)
    simplified: dict[str, Any] | None = None

    def summary(self) -> str:
        extra = f" + {self.data_path.name}" if self.data_path else ""
        return (
            f"wrote {self.onnx_path}{extra} ({self.graph} graph, {self.metadata.site_count} sites in "
            f"{len(self.metadata.patched_blocks)} blocks, {self.op_counts.get('LayerNormalization', 0)} "
            f"LayerNormalization nodes) in {self.seconds:.1f} s"
        )


# ---------------------------------------------------------------------------------
# Task vectors


def taskvector_fingerprint(tv) -> str:
    """sha256 over the patched blocks' names, shapes and float32 bytes (mul, add)."""
    h = hashlib.sha256()
    for bid in sorted(tv.mul):
        for kind, t in (("mul", tv.mul[bid]), ("add", tv.add[bid])):
            arr = t.detach().cpu().float().contiguous().numpy()
            h.update(f"{bid}|{kind}|{arr.shape}|".encode())
            h.update(arr.tobytes())
    return h.hexdigest()


def switch_feeds(model: MaeVQGAN, tv=None) -> dict[str, np.ndarray]:
    """Inputs of the switchable graph for task vector ``tv`` (identity where it does not
    patch), in input order: ``tv/<stage>/bNN/mul`` then ``…/add`` per block."""
    feeds: dict[str, np.ndarray] = {}
    for bid in model.block_ids():
        mul, add = identity_patch(model, bid)
        if tv is not None and bid in tv.mul:
            mul, add = tv.mul[bid].detach().float(), tv.add[bid].detach().float()
        feeds[patch_name(bid, "mul")] = mul.numpy().astype(np.float32)
        feeds[patch_name(bid, "add")] = add.numpy().astype(np.float32)
    return feeds


def random_taskvector(model: MaeVQGAN, task: str, every: int = 3, seed: int = 0):
    """For benchmarks and tests: a TaskVector patching every ``every``-th region site of
    ``model`` with random means (the graph's structure and cost do not depend on them)."""
    from taskvec.vectors.sites import SiteSpace, enumerate_sites
    from taskvec.vectors.taskvector import TaskVector

    gen = torch.Generator().manual_seed(seed)
    sites = enumerate_sites(model.cfg)[::every]
    means = {}
    for bid in model.block_ids():
        enc = bid.stage == "enc"
        heads = model.cfg.num_heads if enc else model.cfg.decoder_num_heads
        dh = model.cfg.head_dim if enc else model.cfg.decoder_head_dim
        means[bid] = torch.randn(G.NUM_SLOTS, heads, dh, generator=gen) * 0.5
    patches = SiteSpace(model.cfg, sites).patches(torch.ones(len(sites)), means)
    return TaskVector(
        task=task, model_name=model.cfg.name, model_fingerprint=model_fingerprint(model), method="random",
        granularity="region", sites=sites, mul={b: p.mul[0] for b, p in patches.items()},
        add={b: p.add[0] for b, p in patches.items()}, meta={"note": "random means, for benchmarks and tests"},
    )


# ---------------------------------------------------------------------------------
# Export


def _module_and_args(graph: str, model: MaeVQGAN, tv, decode: G.DecodeKind, halo: int, example=None):
    img = torch.zeros(EXAMPLE_BATCH, SPEC.height, SPEC.width, SPEC.channels, dtype=torch.uint8)
    if graph == "task":
        return ZeroShotGraph(model, tv.mul, tv.add, decode=decode, halo=halo), (img,), []
    if graph == "in-context" and example is not None:
        return BakedExampleGraph(model, example[0], example[1], decode=decode, halo=halo), (img,), []
    if graph == "in-context":
        return InContextGraph(model, decode=decode, halo=halo), (img, img, img), []
    feeds = switch_feeds(model, tv)
    return (SwitchableGraph(model, decode=decode, halo=halo), (img, *[torch.from_numpy(v) for v in feeds.values()]),
            list(feeds))


def _repeat_interleave(g, x, repeats, dim, output_size=None):
    """``aten::repeat_interleave`` with constant int ``repeats`` and ``dim``:
    Unsqueeze → Expand → Reshape. Replaces torch's opset-13 symbolic, which normalises a
    negative ``dim`` *in place* on the traced constant it shares with every other ``-1``
    of the graph (the model's ``mask_token.expand(b, 1, -1)`` then becomes
    ``expand(b, 1, 2)`` and ONNX Runtime rejects the graph)."""
    from torch.onnx import symbolic_helper as sh

    r = sh._maybe_get_const(repeats, "i")
    d = sh._maybe_get_const(dim, "i")
    rank = sh._get_tensor_rank(x)
    if not isinstance(r, int) or not isinstance(d, int) or rank is None:
        raise UserError("export: repeat_interleave needs constant repeats and dim")
    d = d % rank
    const = lambda v: g.op("Constant", value_t=torch.tensor(v, dtype=torch.int64))  # noqa: E731
    y = g.op("Unsqueeze", x, const([d + 1]))
    y = g.op("Expand", y, const([1] * (d + 1) + [r] + [1] * (rank - d - 1)))
    shape = g.op("Shape", x)
    mid = g.op("Mul", g.op("Slice", shape, const([d]), const([d + 1])), const([r]))
    parts = [g.op("Slice", shape, const([0]), const([d])), mid, g.op("Slice", shape, const([d + 1]), const([rank]))]
    return g.op("Reshape", y, g.op("Concat", *parts, axis_i=0))


def _trace(module: torch.nn.Module, args: tuple, path: Path, inputs: list[str], dynamic: list[str]) -> list[str]:
    """TorchScript export at :data:`OPSET` with a dynamic batch on ``dynamic`` inputs.
    Returns the exporter's deprecation warnings (one line each) for the caller to show:
    only the tracer's known-harmless warnings (Python booleans and ``torch.tensor`` constants
    in the trace, the Slice constant-folding note) are filtered."""
    outputs = [SPEC.output_name, FLOAT_OUTPUT]
    axes = {n: {0: SPEC.batch_dim} for n in [*dynamic, *outputs]}
    torch.onnx.register_custom_op_symbolic("aten::repeat_interleave", _repeat_interleave, OPSET)
    try:
        with warnings.catch_warnings(record=True) as caught, torch.no_grad():
            warnings.simplefilter("always")
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            warnings.filterwarnings("ignore", message="Constant folding - Only steps=1", category=UserWarning)
            torch.onnx.export(
                module, args, str(path), dynamo=False, opset_version=OPSET, input_names=inputs,
                output_names=outputs, dynamic_axes=axes, do_constant_folding=True,
            )
    finally:
        torch.onnx.unregister_custom_op_symbolic("aten::repeat_interleave", OPSET)
    seen: list[str] = []
    for w in caught:
        if issubclass(w.category, (DeprecationWarning, FutureWarning)):
            line = " ".join(str(w.message).split())[:240]
            if line not in seen:
                seen.append(line)
        else:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)  # not ours to hide
    return seen


def _save(model: onnx.ModelProto, path: Path, external: bool) -> Path | None:
    """Save ``model`` to ``path``; with ``external`` its weights go to ``<name>.data``
    beside it (the in-memory proto then refers to that file)."""
    if not external:
        onnx.save_model(model, str(path))
        return None
    data = path.with_name(path.name + ".data")
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data.name, size_threshold=1024)
    return data


def _weight_bytes(model: onnx.ModelProto) -> int:
    return sum(len(t.raw_data) for t in model.graph.initializer)


def graph_layout(graph: str) -> G.Layout:
    """The token layout a graph kind runs: the one-shot prompt's or the zero-shot one."""
    return G.get_layout("in-context" if graph == "in-context" else "zero-shot")


@torch.no_grad()
def compare_decodes(model: MaeVQGAN, layout: G.Layout | str = "zero-shot", halo: int = 1, batch: int = 1,
                    seed: int = 7) -> dict[str, Any] | None:
    """VQ head: the answer of every decode (answer, halo, full) on prompts of fresh random
    images, against the full decode (the reference MAE-VQGAN's answer), in grey levels
    (0–255), with the multiply-accumulates per image of each decode and of the whole
    forward (``torch.utils.flop_counter``: matmuls and convolutions). None for the pixel
    head, which has no VQGAN decode (every decode gives the same answer)."""
    if model.cfg.head != "vq":
        return None
    from torch.utils.flop_counter import FlopCounterMode

    layout = G.get_layout(layout) if isinstance(layout, str) else layout
    cells = [torch.from_numpy(C.random_images(batch, seed + i)).float().div(255).permute(0, 3, 1, 2) for i in range(3)]
    if layout.num_dec == G.NUM_SLOTS:
        canvas = G.make_canvas(cells[1], cells[2], cells[0])
    else:
        canvas = G.make_canvas(None, None, cells[0])
    dev = next(model.parameters()).device
    with FlopCounterMode(display=False) as fc:
        out = model(G.normalize(canvas).to(dev), layout, decode="answer")
    forward_macs = fc.get_total_flops() // 2 // batch
    answers, macs = {}, {}
    for kind in G.DECODE_KINDS:
        with FlopCounterMode(display=False) as fc:
            answers[kind], _ = model.decode_vq(out.decoder_out, layout, kind, halo)
        macs[kind] = fc.get_total_flops() // 2 // batch
    transformer = forward_macs - macs["answer"]
    result: dict[str, Any] = {"batch": batch, "layout": layout.name, "halo": halo, "reference": "full",
                              "transformer_gmac": round(transformer / 1e9, 3), "decodes": {}}
    for kind in G.DECODE_KINDS:
        diff = (answers[kind] - answers["full"]).abs().float() * 255
        mse = float((diff / 255).pow(2).mean())
        result["decodes"][kind] = {
            "max_abs": round(float(diff.max()), 3),
            "mean_abs": round(float(diff.mean()), 3),
            "psnr_db": round(10 * np.log10(1 / max(mse, 1e-12)), 2),
            "decode_gmac": round(macs[kind] / 1e9, 3),
            "total_gmac": round((transformer + macs[kind]) / 1e9, 3),
        }
    return result


@dataclass(frozen=True)
class ExportRequest:
    """How to export a resolved task (:func:`export_resolved`).

    ``decode``: the VQ head's decode (``answer``: the 7×7 answer latent; ``halo``: with
    ``halo`` context tokens; ``full``: the whole canvas, the reference's answer) — its pixel
    difference from ``full`` and the MACs of each are measured and written to the sidecar.
    Defaults: ``halo`` 1; ``decode`` ``halo`` when a ``halo`` > 0 is given, else ``answer``.
    ``external_data``: None = automatic by size. ``example``, ``slim``: see
    :func:`export_resolved`."""

    graph: GraphKind = "task"
    decode: G.DecodeKind | None = None
    halo: int | None = None
    check: bool = True
    check_batch: int = 4
    filename: str | None = None
    external_data: bool | None = None
    example: str | None = None  # pairs task, in-context graph: the pair baked in
    slim: bool = True  # onnxslim the traced graph

    def resolved(self) -> "ExportRequest":
        """The same request with ``decode``/``halo`` filled in and checked (one-line UserError)."""
        if self.graph not in GRAPH_KINDS:
            raise UserError(f"unknown graph {self.graph!r}; choose from {', '.join(GRAPH_KINDS)}")
        decode = self.decode or ("halo" if self.halo else "answer")
        halo = 1 if self.halo is None else self.halo
        if halo < 0 or halo > G.GRID // 2:
            raise UserError(f"--halo must be 0..{G.GRID // 2}, got {halo}")
        if decode not in G.DECODE_KINDS:
            raise UserError(f"unknown decode {decode!r}; choose from {', '.join(G.DECODE_KINDS)}")
        return dataclasses.replace(self, decode=decode, halo=halo)


def export_task(
    task: str,
    model: str | MaeVQGAN = DEFAULT_MODEL,
    taskvec: Any = None,
    out_dir: str | os.PathLike = "exported",
    graph: GraphKind = "task",
    check: bool = True,
    halo: int | None = None,
    check_batch: int = 4,
    decode: G.DecodeKind | None = None,
    filename: str | None = None,
    external_data: bool | None = None,
    log: Callable[[str], None] | None = None,
    variant: str = "paper",
    example: str | None = None,
    slim: bool = True,
) -> ExportResult:
    """Resolve ``task`` on ``model`` (a ``--model`` spec or a loaded model) with ``taskvec``
    (a TaskVector, a file, or None for the shipped ``variant`` vector) and export it
    (:func:`export_resolved`; the other arguments are :class:`ExportRequest`'s)."""
    request = ExportRequest(graph, decode, halo, check, check_batch, filename, external_data, example, slim).resolved()
    try:
        task = get_task(task).name  # pairs:DIR read (and refused) before the out folder is made
    except ValueError as e:
        raise UserError(str(e)) from None
    _writable_dir(Path(out_dir))
    deployed = resolve_task(task, model, taskvec, variant=variant, with_taskvector=graph != "in-context")
    return export_resolved(deployed, out_dir, request, log)


def export_resolved(deployed: ResolvedTask, out_dir: str | os.PathLike = "exported",
                    request: ExportRequest = ExportRequest(), log: Callable[[str], None] | None = None) -> ExportResult:
    """Export ``deployed``'s graph to ``out_dir`` and check it. Returns an
    :class:`ExportResult` (``.onnx_path`` is the graph to run).

    A pairs task (``pairs:DIR``): its identity goes into the metadata, and its in-context
    graph bakes one example pair (``request.example``: a pair's name; default its first
    train pair), so it takes only ``image``. ``request.slim``: simplify the traced graph
    with onnxslim (:func:`export.graph_edit.simplify`; graphs whose weights exceed
    :data:`SLIM_MAX_BYTES` are left as traced), before the parity check."""
    t0 = time.perf_counter()
    log = log or (lambda s: None)
    req = request.resolved()
    graph, decode, halo = req.graph, req.decode, req.halo
    task_obj = get_task(deployed.task)
    task = task_obj.name  # pairs:DIR → its registry name
    if req.example is not None and not isinstance(task_obj, PairsTask):
        raise UserError("--example names a pair of a pairs task (--task pairs:DIR)")
    if req.example is not None and graph != "in-context":
        raise UserError("--example is for --graph in-context (the one-shot graph bakes that pair)")
    out = Path(out_dir)
    _writable_dir(out)
    net = deployed.model.eval()
    tv = None if graph == "in-context" else deployed.taskvector
    if tv is None and graph != "in-context":
        raise UserError(f"the {graph} graph needs a task vector")
    baked = _baked_example(task_obj, req.example) if graph == "in-context" else None
    module, args, switch = _module_and_args(graph, net, tv, decode, halo, baked and baked[1:])
    module.eval()
    name = req.filename or onnx_filename(task, graph)
    dst = out / name
    sidecar = dst.with_suffix(".json")
    blocks = sorted(tv.mul) if (tv is not None and graph == "task") else []
    meta = GraphMetadata(
        task=task, graph=graph, model=deployed.ref.spec, model_name=net.cfg.name,
        model_fingerprint=deployed.fingerprint, head=net.cfg.head,
        taskvector_fingerprint=taskvector_fingerprint(tv) if tv is not None else "",
        taskvector_method=tv.method if tv is not None else "",
        site_count=len(tv.sites) if (tv is not None and graph == "task") else 0,
        patched_blocks=tuple(str(b) for b in blocks), switch_inputs=tuple(switch),
        halo=halo if decode == "halo" else 0, decode=decode, io_spec=SPEC, opset=OPSET, producer=PRODUCER,
        producer_version=PRODUCER_VERSION, task_identity=task_identity(task_obj) or {},
        example_pair=baked[0] if baked is not None else "",
    )
    names = meta.input_names
    dynamic = [n for n in names if n not in switch]
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out) as tmp_dir:
        tmp = Path(tmp_dir)
        log(f"tracing the {graph} graph of {net.cfg.name} for {task}…")
        deprecations = _trace(module, args, tmp / "raw.onnx", names, dynamic)
        for line in deprecations:
            log(f"note (torch): {line}")
        proto = onnx.load(str(tmp / "raw.onnx"))
        ext = _weight_bytes(proto) > EXTERNAL_DATA_BYTES if req.external_data is None else req.external_data
        patch_nodes = E.name_patch_nodes(proto, blocks) if graph == "task" else []
        simplified = None
        if req.slim and _weight_bytes(proto) <= SLIM_MAX_BYTES:
            proto, simplified = E.simplify(proto)
            log(f"simplified with {simplified['tool']}: {simplified['nodes_before']} → {simplified['nodes_after']} nodes")
        write_props(proto, meta)
        E.check_finite_graph(proto, f"export of {task} ({net.cfg.name})")  # also under --no-check
        answer_vi = next(o for o in proto.graph.output if o.name == FLOAT_OUTPUT)
        E.drop_output(proto, FLOAT_OUTPUT)
        final = tmp / name
        data = _save(proto, final, ext)
        C.check_model_file(final)
        counts = dict(E.op_counts(proto))
        report = None
        if req.check:
            proto.graph.output.append(answer_vi)  # weights now live in the saved data file
            onnx.save_model(proto, str(tmp / "debug.onnx"))
            module_feeds = switch_feeds(net, tv) if graph == "switchable" else None
            examples = (SPEC.example_in_name, SPEC.example_out_name) if graph == "in-context" and baked is None else ()
            report = C.compare_with_torch(tmp / "debug.onnx", module, module_feeds, examples, batch=req.check_batch)
            log(report.line())
        decodes = compare_decodes(net, graph_layout(graph), max(halo, 1))
        if decodes:
            d = decodes["decodes"]
            log("VQGAN decode vs the full-canvas (reference) answer: " + ", ".join(
                f"{k} max {v['max_abs']:.0f} / mean {v['mean_abs']:.1f} grey levels, {v['total_gmac']:.1f} GMAC"
                for k, v in d.items()) + f"; this graph: --decode {decode}")
        data_dst = out / data.name if data else None
        result = ExportResult(task, graph, dst, sidecar, data_dst, meta, report, patch_nodes, counts,
                              time.perf_counter() - t0, decodes, notes=deprecations, simplified=simplified)
        tmp_sidecar = tmp / sidecar.name
        _write_sidecar(result, tmp_sidecar)
        # publish: data first, then the graph that refers to it, then the sidecar
        publish([(src, target) for src, target in ((data, data_dst), (final, dst), (tmp_sidecar, sidecar))
                 if src is not None])
    return result


def _baked_example(task_obj, name: str | None):
    """A pairs task's example pair for the in-context graph → (name, input, target), each
    uint8 [1,111,111,3] BGR; None for a built-in task (its graph takes the example as inputs)."""
    if not isinstance(task_obj, PairsTask):
        return None
    from taskvec.vectors.prompting import pairs_example

    pair, x, y = pairs_example(task_obj, name)
    bgr = lambda t: (t[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).permute(1, 2, 0).flip(-1)[None].contiguous()  # noqa: E731
    return pair, bgr(x), bgr(y)


def _writable_dir(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UserError(f"cannot create output folder {out}: {e.strerror or e}") from None
    if not out.is_dir() or not os.access(out, os.W_OK | os.X_OK):
        raise UserError(f"cannot write to output folder {out}: permission denied")


def _write_sidecar(result: ExportResult, path: Path) -> None:
    info = {
        **result.metadata.to_dict(),
        "files": {"onnx": result.onnx_path.name, "data": result.data_path.name if result.data_path else None,
                  "onnx_sha256": C.file_sha256(path.parent / result.onnx_path.name)},
        "check": result.check.to_dict() if result.check else None,
        "patch_nodes": result.patch_nodes,
        "op_counts": result.op_counts,
        "node_count": sum(result.op_counts.values()),
        "simplified": result.simplified,
        "decode_comparison": result.decode_comparison,
        "export_seconds": round(result.seconds, 2),
        "exporter": {"torch": torch.__version__, "onnx": onnx.__version__, "dynamo": False,
                     "deprecations": result.notes},
    }
    path.write_text(json.dumps(info, indent=2, allow_nan=False) + "\n")
