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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import onnx
import torch

from export import check as C
from export import graph_edit as E
from export.spec import (FLOAT_OUTPUT, GRAPH_KINDS, OPSET, PRODUCER, SPEC, GraphKind, input_names, onnx_filename,
                         patch_name)
from export.wrapper import (
    BakedExampleGraph,
    DecodeKind,
    InContextGraph,
    SwitchableGraph,
    ZeroShotGraph,
    decode_answer,
    full_canvas_answer,
    identity_patch,
    seq_len,
    width,
)
from taskvec import geometry as G
from taskvec.model.checkpoint import DEFAULT_MODEL, load_model, model_fingerprint
from taskvec.errors import UserError, publish
from taskvec.model.mae_vqgan import MaeVQGAN
from taskvec.data.pairs import PairsTask, task_identity
from taskvec.data.tasks import get_task

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
    metadata: dict[str, Any]
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
            f"wrote {self.onnx_path}{extra} ({self.graph} graph, {self.metadata['site_count']} sites in "
            f"{len(self.metadata['patched_blocks'])} blocks, {self.op_counts.get('LayerNormalization', 0)} "
            f"LayerNormalization nodes) in {self.seconds:.1f} s"
        )


# ---------------------------------------------------------------------------------
# Task vectors


def resolve_taskvector(task: str, model: MaeVQGAN, taskvec: Any = None, variant: str = "paper"):
    """A TaskVector object, a path, or None (the shipped default for ``task``) → a
    TaskVector checked against ``task`` and ``model``."""
    if taskvec is None or isinstance(taskvec, (str, os.PathLike)):
        try:
            from taskvec.vectors.taskvector import load_taskvector
        except ModuleNotFoundError as e:
            if e.name != "taskvec.vectors.taskvector":
                raise
            raise UserError("task vectors cannot be loaded: taskvec.vectors.taskvector is not installed") from None
        tv = load_taskvector(task, model, None if taskvec is None else str(taskvec), variant)
    else:
        tv = taskvec
    check_taskvector(tv, task, model)
    return tv


def check_taskvector(tv, task: str, model: MaeVQGAN) -> None:
    """UserError unless ``tv`` is for ``task`` and ``model`` with zero-shot-layout shapes."""
    if tv.task != task:
        raise UserError(f"the task vector is for {tv.task!r}, not {task!r}")
    if hasattr(tv, "check_model"):
        tv.check_model(model)
    fp = model_fingerprint(model)
    if tv.model_fingerprint != fp:
        raise UserError(
            f"the task vector was made for model {tv.model_name} ({tv.model_fingerprint[:12]}…), "
            f"not this {model.cfg.name} ({fp[:12]}…)"
        )
    layout = G.get_layout("zero-shot")
    known = set(model.block_ids())
    for bid in sorted(set(tv.mul) | set(tv.add)):
        if bid not in known or bid not in tv.mul or bid not in tv.add:
            raise UserError(f"the task vector's block {bid} does not fit {model.cfg.name}")
        want = (seq_len(model, bid, layout), width(model, bid))
        for kind, t in (("mul", tv.mul[bid]), ("add", tv.add[bid])):
            if tuple(t.shape) != want:
                raise UserError(f"task vector {kind} for {bid} is {tuple(t.shape)}, expected {want} (zero-shot layout)")


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
        feeds[patch_name(bid.stage, bid.block, "mul")] = mul.numpy().astype(np.float32)
        feeds[patch_name(bid.stage, bid.block, "add")] = add.numpy().astype(np.float32)
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


def _module_and_args(graph: str, model: MaeVQGAN, tv, halo: int, decode: DecodeKind, example=None):
    img = torch.zeros(EXAMPLE_BATCH, SPEC.height, SPEC.width, SPEC.channels, dtype=torch.uint8)
    if graph == "task":
        return ZeroShotGraph(model, tv.mul, tv.add, halo=halo, decode=decode), (img,), []
    if graph == "in-context" and example is not None:
        return BakedExampleGraph(model, example[0], example[1], halo=halo, decode=decode), (img,), []
    if graph == "in-context":
        return InContextGraph(model, halo=halo, decode=decode), (img, img, img), []
    feeds = switch_feeds(model, tv)
    return SwitchableGraph(model, halo=halo), (img, *[torch.from_numpy(v) for v in feeds.values()]), list(feeds)


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


@torch.no_grad()
def compare_decodes(model: MaeVQGAN, halo: int = 0, batch: int = 2, seed: int = 7) -> dict[str, Any] | None:
    """VQ head: the answer decoded from its 7×7 latent (+ halo) vs cut out of a full 14×14
    canvas decode, on in-context prompts of fresh random images. Grey levels (0–255)."""
    if model.cfg.head != "vq":
        return None
    layout = G.get_layout("in-context")
    cells = [torch.from_numpy(C.random_images(batch, seed + i)).float().div(255).permute(0, 3, 1, 2) for i in range(3)]
    canvas = G.normalize(G.make_canvas(cells[1], cells[2], cells[0]))
    out = model(canvas, layout)
    full = full_canvas_answer(model, out, layout)
    result: dict[str, Any] = {"batch": batch, "layout": layout.name}
    for h in sorted({0, halo}):
        diff = (decode_answer(model, out, layout, h) - full).abs() * 255
        mse = float((diff / 255).pow(2).mean())
        result[f"halo{h}"] = {
            "max_abs": round(float(diff.max()), 3),
            "mean_abs": round(float(diff.mean()), 3),
            "psnr_db": round(10 * np.log10(1 / max(mse, 1e-12)), 2),
        }
    return result


def export_task(
    task: str,
    model: str | MaeVQGAN = DEFAULT_MODEL,
    taskvec: Any = None,
    out_dir: str | os.PathLike = "exported",
    graph: GraphKind = "task",
    check: bool = True,
    halo: int = 0,
    check_batch: int = 4,
    decode: DecodeKind = "answer",
    filename: str | None = None,
    external_data: bool | None = None,
    log: Callable[[str], None] | None = None,
    variant: str = "paper",
    example: str | None = None,
    slim: bool = True,
) -> ExportResult:
    """Export ``task``'s graph to ``out_dir`` and check it. Returns an :class:`ExportResult`
    (``.onnx_path`` is the graph to run).

    ``model``: a ``--model`` spec or a loaded model; ``taskvec``: a TaskVector, a file, or
    None for the shipped default; ``halo``: VQ-head context tokens decoded around the
    answer; ``decode="full"`` decodes the whole canvas (cost comparisons only);
    ``external_data``: None = automatic by size. A pairs task (``pairs:DIR``): its identity
    goes into the metadata, and its in-context graph bakes one example pair (``example``:
    a pair's name; default its first train pair), so it takes only ``image``. ``slim``:
    simplify the traced graph with onnxslim (:func:`export.graph_edit.simplify`; graphs
    whose weights exceed :data:`SLIM_MAX_BYTES` are left as traced), before the parity check."""
    t0 = time.perf_counter()
    log = log or (lambda s: None)
    task_obj = get_task(task)
    task = task_obj.name  # pairs:DIR → its registry name
    if example is not None and not isinstance(task_obj, PairsTask):
        raise UserError("--example names a pair of a pairs task (--task pairs:DIR)")
    if example is not None and graph != "in-context":
        raise UserError("--example is for --graph in-context (the one-shot graph bakes that pair)")
    if graph not in GRAPH_KINDS:
        raise UserError(f"unknown graph {graph!r}; choose from {', '.join(GRAPH_KINDS)}")
    if halo < 0 or halo > G.GRID // 2:
        raise UserError(f"--halo must be 0..{G.GRID // 2}, got {halo}")
    out = Path(out_dir)
    _writable_dir(out)
    spec = model if isinstance(model, str) else model.cfg.name
    net = load_model(model) if isinstance(model, str) else model.eval()
    tv = None if graph == "in-context" else resolve_taskvector(task, net, taskvec, variant)
    baked = _baked_example(task_obj, example) if graph == "in-context" else None
    module, args, switch = _module_and_args(graph, net, tv, halo, decode, baked and baked[1:])
    module.eval()
    name = filename or onnx_filename(task, graph)
    dst = out / name
    sidecar = dst.with_suffix(".json")
    blocks = sorted(tv.mul) if (tv is not None and graph == "task") else []
    meta = {
        "task": task,
        "graph": graph,
        "model": spec,
        "model_name": net.cfg.name,
        "model_fingerprint": model_fingerprint(net),
        "head": net.cfg.head,
        "taskvector_fingerprint": taskvector_fingerprint(tv) if tv is not None else "",
        "taskvector_method": getattr(tv, "method", "") if tv is not None else "",
        "site_count": len(tv.sites) if (tv is not None and graph == "task") else 0,
        "patched_blocks": [str(b) for b in blocks],
        "switch_inputs": switch,
        "halo": halo,
        "io_spec": SPEC.to_dict(),
        "opset": OPSET,
        "producer": PRODUCER,
        "producer_version": PRODUCER_VERSION,
    }
    identity = task_identity(task_obj)
    if identity is not None:
        meta["task_identity"] = identity
    if baked is not None:
        meta["example_pair"] = baked[0]
    names = [SPEC.input_name] if baked is not None else input_names(graph, switch)
    dynamic = [n for n in names if n not in switch]
    with tempfile.TemporaryDirectory(prefix=f".{name}.", dir=out) as tmp_dir:
        tmp = Path(tmp_dir)
        log(f"tracing the {graph} graph of {net.cfg.name} for {task}…")
        deprecations = _trace(module, args, tmp / "raw.onnx", names, dynamic)
        for line in deprecations:
            log(f"note (torch): {line}")
        proto = onnx.load(str(tmp / "raw.onnx"))
        ext = _weight_bytes(proto) > EXTERNAL_DATA_BYTES if external_data is None else external_data
        patch_nodes = E.name_patch_nodes(proto, blocks) if graph == "task" else []
        simplified = None
        if slim and _weight_bytes(proto) <= SLIM_MAX_BYTES:
            proto, simplified = E.simplify(proto)
            log(f"simplified with {simplified['tool']}: {simplified['nodes_before']} → {simplified['nodes_after']} nodes")
        E.set_metadata(proto, meta, PRODUCER, PRODUCER_VERSION)
        C.check_finite_graph(proto, f"export of {task} ({net.cfg.name})")  # also under --no-check
        answer_vi = next(o for o in proto.graph.output if o.name == FLOAT_OUTPUT)
        E.drop_output(proto, FLOAT_OUTPUT)
        final = tmp / name
        data = _save(proto, final, ext)
        C.check_model_file(final)
        counts = dict(E.op_counts(proto))
        report = None
        if check:
            proto.graph.output.append(answer_vi)  # weights now live in the saved data file
            onnx.save_model(proto, str(tmp / "debug.onnx"))
            module_feeds = switch_feeds(net, tv) if graph == "switchable" else None
            examples = (SPEC.example_in_name, SPEC.example_out_name) if graph == "in-context" and baked is None else ()
            report = C.compare_with_torch(tmp / "debug.onnx", module, module_feeds, examples, batch=check_batch)
            log(report.line())
        decodes = compare_decodes(net, halo, batch=1) if graph == "in-context" else None
        if decodes:
            log(f"answer-only vs full-canvas VQGAN decode: {json.dumps(decodes)}")
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
        **result.metadata,
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


def read_sidecar(onnx_path: str | os.PathLike) -> dict[str, Any]:
    path = Path(onnx_path).with_suffix(".json")
    if not path.is_file():
        raise UserError(f"{path}: no sidecar JSON next to {Path(onnx_path).name}")
    return json.loads(path.read_text())

