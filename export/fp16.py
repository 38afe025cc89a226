"""FP32 → FP16 ONNX graphs with the numerically sensitive ops kept in FP32, through ONNX
Runtime's own converter (``onnxruntime.transformers.float16.convert_float_to_float16``).

For TensorRT ≥ 11, which has no FP16 builder flag: precision comes from the graph and
the network is built strongly typed (also tvbench's ONNX Runtime fp16 rows). Every float
tensor becomes float16 except:

- the ops in :data:`KEEP_FP32` (LayerNorm, softmax, instance/group norm) and ORT's default
  block list: a ``Cast`` to float32 in front of each, a ``Cast`` back to float16 after;
- graph inputs and outputs keep their types (``keep_io_types``);
- operands the ONNX spec types as float32 (``Resize`` scales), which the converter knows.

ORT's converter appends the casts it inserts at the end of the node list; the result is
put back in topological order (the ONNX checker and TensorRT's parser require it) and
checked. It replaced a hand-written converter of this module: on tiny's task graph and
the micro VQ/refine graphs both gave the same node and ``Cast`` counts and uint8 outputs
within 1 grey level of each other (the converter also clips weights into FP16's range).
"""

from __future__ import annotations

from pathlib import Path

import onnx

KEEP_FP32 = frozenset({"LayerNormalization", "Softmax", "InstanceNormalization", "GroupNormalization"})


def convert_model(model: onnx.ModelProto) -> onnx.ModelProto:
    """Return a float16 copy of ``model`` (see module doc). The graph keeps its I/O types."""
    from onnxruntime.transformers.float16 import DEFAULT_OP_BLOCK_LIST, convert_float_to_float16

    m = onnx.ModelProto()
    m.CopyFrom(model)
    half = convert_float_to_float16(m, keep_io_types=True, disable_shape_infer=False,
                                    op_block_list=sorted(set(DEFAULT_OP_BLOCK_LIST) | KEEP_FP32))
    g = half.graph
    nodes = list(g.node)
    del g.node[:]
    g.node.extend(_toposort(nodes, {i.name for i in g.input} | {i.name for i in g.initializer}))
    onnx.checker.check_model(half)
    return half


def _toposort(nodes: list[onnx.NodeProto], available: set[str]) -> list[onnx.NodeProto]:
    """``nodes`` in an order where every input is produced before it is used (stable)."""
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
