"""Post-export edits and structural checks on the ONNX graph.

- :func:`name_patch_nodes`: the task vector's constant Mul/Add nodes and their
  initializers get their site's name (``tv/enc/b07/mul``, ``tv/enc/b07/add``); exactly
  two per patched block, the Add feeding the block's output projection (MatMul).
- :func:`graph_problems`: ops that must not be in a deployed graph (random ops,
  scatters, data-dependent indexing, control flow).
- :func:`check_finite_graph`: no NaN/Inf constants.

Metadata is written and read in :mod:`export.metadata`. No torch here.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import Iterable

import numpy as np
import onnx

from export.spec import parse_patch_name, patch_name
from taskvec.errors import UserError
from taskvec.model.blocks import BlockId


FORBIDDEN_OPS = frozenset(
    {
        "RandomUniform", "RandomUniformLike", "RandomNormal", "RandomNormalLike", "Multinomial", "Bernoulli",
        "ScatterND", "ScatterElements", "Scatter", "NonZero", "Loop", "If", "Scan", "Unique", "Compress",
        "SequenceConstruct", "SequenceAt", "ATen", "PythonOp",
    }
)
INDEXING_OPS = frozenset({"Gather", "GatherElements", "GatherND"})


def consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    out: dict[str, list[onnx.NodeProto]] = defaultdict(list)
    for node in graph.node:
        for name in node.input:
            out[name].append(node)
    return out


def constant_names(graph: onnx.GraphProto) -> set[str]:
    """Initializers and outputs of Constant nodes."""
    names = {i.name for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant":
            names.update(node.output)
    return names


def inline_identity_initializers(model: onnx.ModelProto) -> int:
    """Replace ``Identity(initializer)`` nodes by a copy of the initializer under the
    Identity's output name. The exporter de-duplicates equal constants that way (two
    blocks with the same all-ones ``mul``); each patch must own its constant. Returns the
    number of nodes removed."""
    graph = model.graph
    inits = {i.name: i for i in graph.initializer}
    outputs = {o.name for o in graph.output}
    keep, removed = [], 0
    for node in graph.node:
        if node.op_type == "Identity" and node.input[0] in inits and node.output[0] not in outputs:
            copy = onnx.TensorProto()
            copy.CopyFrom(inits[node.input[0]])
            copy.name = node.output[0]
            graph.initializer.append(copy)
            removed += 1
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)
    return removed


def name_patch_nodes(model: onnx.ModelProto, blocks: Iterable[BlockId]) -> list[str]:
    """Name the patch Mul/Add nodes after their site (their initializers already carry the
    name, :func:`export.spec.patch_name`); verify that each block in ``blocks`` has exactly
    one constant Mul feeding one constant Add that feeds the output projection, and that no
    other block has any. Returns the patch names."""
    inline_identity_initializers(model)
    graph = model.graph
    expected = set(blocks)
    users = consumers(graph)
    found: dict[BlockId, dict[str, onnx.NodeProto]] = defaultdict(dict)
    names: list[str] = []
    for init in graph.initializer:
        parsed = parse_patch_name(init.name)
        if parsed is None:
            continue
        bid, kind = parsed
        want = "Mul" if kind == "mul" else "Add"
        nodes = users.get(init.name, [])
        if len(nodes) != 1 or nodes[0].op_type != want:
            ops = [n.op_type for n in nodes]
            raise UserError(f"export: patch constant {init.name} feeds {ops or 'nothing'}, expected one {want}")
        found[bid][kind] = nodes[0]
        names.append(init.name)
    if set(found) != expected:
        missing = sorted(expected - set(found))
        extra = sorted(set(found) - expected)
        raise UserError(f"export: patch nodes do not match the task vector (missing {missing}, unexpected {extra})")
    for bid, pair in found.items():
        if set(pair) != {"mul", "add"}:
            raise UserError(f"export: block {bid} has {sorted(pair)} patch nodes, expected mul and add")
        mul, add = pair["mul"], pair["add"]
        if mul.output[0] not in add.input:
            raise UserError(f"export: {bid}: the patch Mul does not feed the patch Add")
        nxt = [n.op_type for n in users.get(add.output[0], [])]
        if nxt != ["MatMul"]:
            raise UserError(f"export: {bid}: the patch Add feeds {nxt}, expected the output projection")
        mul.name = patch_name(bid, "mul")
        add.name = patch_name(bid, "add")
    return sorted(names)


def patch_node_counts(model: onnx.ModelProto) -> dict[str, Counter]:
    """Per block (``enc/b07``) the number of patch Mul and Add nodes: nodes named
    ``tv/…`` whose operand is an initializer of the same name."""
    inits = {i.name for i in model.graph.initializer}
    counts: dict[str, Counter] = defaultdict(Counter)
    for node in model.graph.node:
        parsed = parse_patch_name(node.name)
        if parsed is None or node.op_type not in ("Mul", "Add"):
            continue
        if node.name in node.input and node.name in inits:
            counts[str(parsed[0])][node.op_type] += 1
    return dict(counts)


def graph_problems(model: onnx.ModelProto) -> list[str]:
    """Ops that must not be in a deployed graph: random ops, scatters, control flow, and
    Gathers whose indices are not constants (Python-side indexing left in the graph)."""
    graph = model.graph
    consts = constant_names(graph)
    problems = [f"{n.op_type} ({n.name})" for n in graph.node if n.op_type in FORBIDDEN_OPS]
    for node in graph.node:
        if node.op_type in INDEXING_OPS and node.input[1] not in consts and not _is_shape_index(graph, node):
            problems.append(f"{node.op_type} with computed indices ({node.name})")
    return problems


def _is_shape_index(graph: onnx.GraphProto, node: onnx.NodeProto) -> bool:
    """Gather(..., indices) whose indices come from an ArgMax (the VQ head's code lookup)
    through reshapes, casts and concatenations with constants."""
    producer = {o: n for n in graph.node for o in n.output}
    passthrough = {"Reshape", "Cast", "Unsqueeze", "Squeeze", "Flatten", "Concat", "Transpose", "ConstantOfShape",
                   "Shape", "Constant", "Mul", "Expand", "Gather", "Slice"}
    stack, seen = [node.input[1]], 0
    found = False
    while stack and seen < 64:
        src = producer.get(stack.pop())
        seen += 1
        if src is None:
            continue
        if src.op_type == "ArgMax":
            found = True
            continue
        if src.op_type not in passthrough:
            return False
        stack.extend(i for i in src.input[:1] if i) if src.op_type != "Concat" else stack.extend(src.input)
    return found


def simplify(model: onnx.ModelProto) -> tuple[onnx.ModelProto, dict]:
    """The traced graph made lean by onnxslim (constant folding, shape-arithmetic removal,
    dead-code elimination), with the ``tv/…`` patch nodes and their constants checked to
    have survived by name and count. Returns (graph, {"tool", "nodes_before", "nodes_after",
    "constant_before", "shape_before", …})."""
    import onnxslim

    before = op_counts(model)
    patches = patch_node_counts(model)
    lean = onnxslim.slim(model)
    if not isinstance(lean, onnx.ModelProto):  # a failed slim returns None or the input
        raise UserError("export: onnxslim could not simplify the graph")
    after = op_counts(lean)
    if patch_node_counts(lean) != patches:
        raise UserError("export: simplifying the graph changed its tv/… patch nodes")
    return lean, {"tool": f"onnxslim {getattr(onnxslim, '__version__', '?')}",
                  "nodes_before": sum(before.values()), "nodes_after": sum(after.values()),
                  "constant_before": before.get("Constant", 0), "constant_after": after.get("Constant", 0),
                  "shape_before": before.get("Shape", 0), "shape_after": after.get("Shape", 0)}


def op_counts(model: onnx.ModelProto) -> Counter:
    return Counter(n.op_type for n in model.graph.node)


def drop_output(model: onnx.ModelProto, name: str) -> None:
    """Remove graph output ``name`` (its nodes stay where other outputs need them)."""
    keep = [o for o in model.graph.output if o.name != name]
    del model.graph.output[:]
    model.graph.output.extend(keep)


def nonfinite_constants(model: onnx.ModelProto) -> list[str]:
    """Names of initializers and Constant nodes holding NaN/Inf (weights must be loaded)."""
    from onnx import numpy_helper

    bad: list[str] = []
    tensors = [(t.name, t) for t in model.graph.initializer]
    tensors += [(n.name or n.output[0], a.t) for n in model.graph.node if n.op_type == "Constant"
                for a in n.attribute if a.name == "value"]
    for name, t in tensors:
        if t.data_type not in (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE,
                               onnx.TensorProto.BFLOAT16):
            continue
        try:
            arr = numpy_helper.to_array(t)
        except Exception:  # noqa: BLE001 — unreadable external data is reported by the loader
            continue
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            bad.append(name)
    return bad


def check_finite_graph(model: onnx.ModelProto, where: str) -> None:
    bad = nonfinite_constants(model)
    if bad:
        raise UserError(f"{where}: {len(bad)} constant(s) hold NaN/Inf (e.g. {bad[0]}) — the model weights or "
                        "the task vector are not finite")
