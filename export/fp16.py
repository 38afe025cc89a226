"""FP32 → FP16 ONNX conversion with the numerically sensitive ops kept in FP32.

For TensorRT ≥ 11, which has no FP16 builder flag: precision comes from the graph and
the network is built strongly typed. Every float tensor becomes float16 except:

- the inputs and outputs of :data:`KEEP_FP32` ops (LayerNorm, softmax, instance/group
  norm): a ``Cast`` to float32 goes in front of each float input and a ``Cast`` back to
  float16 after each output; their weights stay float32;
- graph inputs and outputs keep their types (a ``Cast`` is inserted after float inputs
  and before float outputs);
- operands that must be float32 by the ONNX spec (``Resize`` scales).

Written for the graphs :mod:`export.onnx_export` produces (opset 17).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

KEEP_FP32 = frozenset({"LayerNormalization", "Softmax", "InstanceNormalization", "GroupNormalization"})
# (op, input index) that the ONNX spec types as float32 whatever the data type.
FLOAT32_OPERANDS = frozenset({("Resize", 2)})
FLOAT, HALF = TensorProto.FLOAT, TensorProto.FLOAT16


def _half(t: TensorProto) -> TensorProto:
    arr = np.clip(numpy_helper.to_array(t), -65504, 65504).astype(np.float16)
    return numpy_helper.from_array(arr, t.name)


def convert_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a float16 copy of ``model`` (see module doc). The graph keeps its I/O types."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    users: dict[str, list[tuple[onnx.NodeProto, int]]] = {}
    for node in g.node:
        for i, name in enumerate(node.input):
            users.setdefault(name, []).append((node, i))

    def keep32(name: str) -> bool:
        """True when every use of ``name`` must see float32."""
        uses = users.get(name, [])
        return bool(uses) and all(n.op_type in KEEP_FP32 or (n.op_type, i) in FLOAT32_OPERANDS for n, i in uses)

    for init in g.initializer:
        if init.data_type == FLOAT and not keep32(init.name):
            init.CopyFrom(_half(init))
    new_nodes: list[onnx.NodeProto] = []
    counter = [0]

    def cast(src: str, to: int, suffix: str) -> str:
        counter[0] += 1
        dst = f"{src}/{suffix}{counter[0]}"
        new_nodes.append(helper.make_node("Cast", [src], [dst], to=to, name=f"fp16/{suffix}{counter[0]}"))
        return dst

    graph_inputs = {i.name: i for i in g.input}
    renamed: dict[str, str] = {}
    for name, vi in graph_inputs.items():
        if vi.type.tensor_type.elem_type == FLOAT and not keep32(name):
            renamed[name] = cast(name, HALF, "in_half")
    float32_inits = {i.name for i in g.initializer if i.data_type == FLOAT}
    for node in g.node:
        for i, name in enumerate(node.input):
            if name in renamed:
                node.input[i] = renamed[name]
        if node.op_type == "Constant":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == FLOAT and not keep32(node.output[0]):
                    a.t.CopyFrom(_half(a.t))
        elif node.op_type == "ConstantOfShape":
            for a in node.attribute:
                if a.name == "value" and a.t.data_type == FLOAT:
                    a.t.CopyFrom(_half(a.t))
        elif node.op_type == "Cast":
            for a in node.attribute:
                if a.name == "to" and a.i == FLOAT and not keep32(node.output[0]):
                    a.i = HALF
        if node.op_type in KEEP_FP32:
            for i, name in enumerate(node.input):
                if name and name not in float32_inits:
                    node.input[i] = cast(name, FLOAT, "to_float")
            first = node.output[0]  # secondary outputs (LayerNorm mean/inv-std) are unused
            node.output[0] = f"{first}/fp32"
            new_nodes.append(node)
            new_nodes.append(helper.make_node("Cast", [node.output[0]], [first], to=HALF, name=f"fp16/from_float/{node.name}"))
            continue
        for i, name in enumerate(node.input):
            if (node.op_type, i) in FLOAT32_OPERANDS and name and name not in float32_inits and not _is_const_output(g, name):
                node.input[i] = cast(name, FLOAT, "to_float")
        new_nodes.append(node)
    outputs_fp32 = [o for o in g.output if o.type.tensor_type.elem_type == FLOAT]
    for o in outputs_fp32:
        producer = next((n for n in new_nodes if o.name in n.output), None)
        if producer is None:
            continue
        half_name = f"{o.name}/half"
        for j, name in enumerate(producer.output):
            if name == o.name:
                producer.output[j] = half_name
        for n in new_nodes:
            for i, name in enumerate(n.input):
                if name == o.name:
                    n.input[i] = half_name
        new_nodes.append(helper.make_node("Cast", [half_name], [o.name], to=FLOAT, name=f"fp16/out/{o.name}"))
    del g.node[:]
    g.node.extend(_toposort(new_nodes, {i.name for i in g.input} | {i.name for i in g.initializer}))
    del g.value_info[:]
    return m


def _is_const_output(g: onnx.GraphProto, name: str) -> bool:
    return any(n.op_type == "Constant" and name in n.output for n in g.node)


def _toposort(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    ready = set(available) | {""}
    out, pending = [], list(nodes)
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                out.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ValueError(f"fp16 conversion left a cycle or a dangling input at {rest[0].name}")
        pending = rest
    return out


def convert_file(src: str | Path, dst: str | Path) -> Path:
    """FP16 copy of the ONNX file ``src`` at ``dst`` (external data kept beside it if large)."""
    model = onnx.load(str(src))
    half = convert_model(model)
    big = sum(len(t.raw_data) for t in half.graph.initializer) > (1 << 30)
    dst = Path(dst)
    if big:
        onnx.save_model(half, str(dst), save_as_external_data=True, all_tensors_to_one_file=True,
                        location=dst.name + ".data")
    else:
        onnx.save_model(half, str(dst))
    return dst
