"""Post-export edits and structural checks on the ONNX graph.

- :func:`name_patch_nodes`: the task vector's constant Mul/Add nodes and their
  initializers get their site's name (``tv/enc/b07/mul``, ``tv/enc/b07/add``); exactly
  two per patched block, the Add feeding the block's output projection (MatMul).
- :func:`graph_problems`: ops that must not be in a deployed graph (random ops,
  scatters, data-dependent indexing, control flow).
- :func:`set_metadata` / :func:`read_metadata`: ``metadata_props`` round trip.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Iterable

import onnx

from export.spec import JSON_META_KEYS, META_PREFIX, parse_patch_name, patch_name
from export.wrapper import parse_buffer_name
from taskvec.errors import UserError
from taskvec.model.mae_vqgan import BlockId

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
    """Rename the patch Mul/Add nodes and initializers after their site; verify that each
    block in ``blocks`` has exactly one constant Mul feeding one constant Add that feeds
    the output projection, and that no other block has any. Returns the new names."""
    inline_identity_initializers(model)
    graph = model.graph
    expected = {(b.stage, b.block) for b in blocks}
    users = consumers(graph)
    found: dict[tuple[str, int], dict[str, onnx.NodeProto]] = defaultdict(dict)
    renames: dict[str, str] = {}
    for init in graph.initializer:
        parsed = parse_buffer_name(init.name)
        if parsed is None:
            continue
        kind, bid = parsed
        want = "Mul" if kind == "mul" else "Add"
        nodes = users.get(init.name, [])
        if len(nodes) != 1 or nodes[0].op_type != want:
            ops = [n.op_type for n in nodes]
            raise UserError(f"export: patch constant {init.name} feeds {ops or 'nothing'}, expected one {want}")
        found[(bid.stage, bid.block)][kind] = nodes[0]
        renames[init.name] = patch_name(bid.stage, bid.block, kind)  # type: ignore[arg-type]
    if set(found) != expected:
        missing = sorted(expected - set(found))
        extra = sorted(set(found) - expected)
        raise UserError(f"export: patch nodes do not match the task vector (missing {missing}, unexpected {extra})")
    for (stage, block), pair in found.items():
        if set(pair) != {"mul", "add"}:
            raise UserError(f"export: block {stage}/b{block:02d} has {sorted(pair)} patch nodes, expected mul and add")
        mul, add = pair["mul"], pair["add"]
        if mul.output[0] not in add.input:
            raise UserError(f"export: {stage}/b{block:02d}: the patch Mul does not feed the patch Add")
        nxt = [n.op_type for n in users.get(add.output[0], [])]
        if nxt != ["MatMul"]:
            raise UserError(f"export: {stage}/b{block:02d}: the patch Add feeds {nxt}, expected the output projection")
        mul.name = patch_name(stage, block, "mul")
        add.name = patch_name(stage, block, "add")
    for init in graph.initializer:
        if init.name in renames:
            init.name = renames[init.name]
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name in renames:
                node.input[i] = renames[name]
    return sorted(renames.values())


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
            stage, block, kind = parsed
            counts[f"{stage}/b{block:02d}"][node.op_type] += 1
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


def set_metadata(model: onnx.ModelProto, meta: dict, producer: str, version: str) -> None:
    """Write ``meta`` as ``metadata_props`` (``taskvec.<key>``; strings as they are, the
    keys in :data:`JSON_META_KEYS` as JSON)."""
    model.producer_name = producer
    model.producer_version = version
    del model.metadata_props[:]
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key = META_PREFIX + key
        entry.value = json.dumps(value) if key in JSON_META_KEYS else str(value)


def read_metadata(src: str | Path | onnx.ModelProto) -> dict:
    """``metadata_props`` of a graph (or file, weights not loaded) → dict, JSON decoded."""
    if isinstance(src, onnx.ModelProto):
        model = src
    else:
        try:
            model = onnx.load(str(src), load_external_data=False)
        except Exception as e:
            raise UserError(f"{src}: not a readable ONNX file ({type(e).__name__})") from None
    out: dict = {}
    for entry in model.metadata_props:
        if not entry.key.startswith(META_PREFIX):
            continue
        key = entry.key[len(META_PREFIX) :]
        out[key] = json.loads(entry.value) if key in JSON_META_KEYS else entry.value
    return out
