"""FP16 conversion for strongly typed TensorRT ≥ 11 builds, checked in ONNX Runtime (CPU)."""

from __future__ import annotations

import numpy as np
import onnx

from export.check import ort_session, random_images
from export.fp16 import KEEP_FP32, convert_file
from export.onnx_export import export_task, random_taskvector


def test_fp16_graph_keeps_norms_fp32(tmp_path, micro_pixel):
    res = export_task("inpainting", micro_pixel, random_taskvector(micro_pixel, "inpainting"), tmp_path, check=False)
    half = convert_file(res.onnx_path, tmp_path / "half.onnx")
    model = onnx.load(str(half))
    onnx.checker.check_model(model)
    inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    types = {v.name: v.type.tensor_type.elem_type for v in inferred.graph.value_info}
    inits = {i.name: i.data_type for i in model.graph.initializer}
    for node in model.graph.node:
        if node.op_type in KEEP_FP32:
            for name in node.input:
                assert types.get(name, inits.get(name)) == onnx.TensorProto.FLOAT, (node.name, name)
        if node.op_type == "MatMul":
            assert types.get(node.output[0]) == onnx.TensorProto.FLOAT16
    img = random_images(2, 0)
    a = ort_session(res.onnx_path).run(None, {"image": img})[0].astype(int)
    b = ort_session(half).run(None, {"image": img})[0]
    assert b.dtype == np.uint8 and np.abs(a - b.astype(int)).max() <= 3
