"""MAC counting from ONNX shapes, on a hand-made graph and on an exported one."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from benchmarks.macs import count_macs


def test_counts_matmul_and_conv(tmp_path):
    w = numpy_helper.from_array(np.zeros((8, 16), np.float32), "w")
    k = numpy_helper.from_array(np.zeros((4, 3, 3, 3), np.float32), "k")
    g = helper.make_graph(
        [helper.make_node("MatMul", ["x", "w"], ["y"]), helper.make_node("MatMul", ["y", "yt"], ["a"]),
         helper.make_node("Transpose", ["y"], ["yt"], perm=[0, 2, 1]),
         helper.make_node("Conv", ["img", "k"], ["c"], pads=[1, 1, 1, 1])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 5, 8]),
         helper.make_tensor_value_info("img", TensorProto.FLOAT, ["N", 3, 10, 10])],
        [helper.make_tensor_value_info("a", TensorProto.FLOAT, None), helper.make_tensor_value_info("c", TensorProto.FLOAT, None)],
        [w, k],
    )
    model = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "g.onnx"
    onnx.save(model, str(path))
    macs = count_macs(path)
    assert macs["MatMul (weights)"] == 5 * 8 * 16
    assert macs["MatMul (attention)"] == 5 * 16 * 5
    assert macs["Conv"] == 4 * 10 * 10 * 27
    assert macs["total"] == sum(v for key, v in macs.items() if key != "total")


def test_task_graph_cheaper_than_in_context(tmp_path, micro_pixel):
    from export.onnx_export import export_task, random_taskvector

    tv = random_taskvector(micro_pixel, "inpainting")
    task = count_macs(export_task("inpainting", micro_pixel, tv, tmp_path, check=False).onnx_path)
    ic = count_macs(export_task("inpainting", micro_pixel, None, tmp_path, graph="in-context", check=False).onnx_path)
    assert 0 < task["total"] < 0.6 * ic["total"]
