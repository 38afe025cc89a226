"""The full-size model exports too, with its weights in external data (slow: minutes)."""

from __future__ import annotations

import onnx
import pytest

from export import graph_edit as E
from export.onnx_export import export_task, random_taskvector
from taskvec.model.checkpoint import load_model


@pytest.mark.slow
def test_vit_large_external_data(tmp_path):
    model = load_model("random:vit_large")
    tv = random_taskvector(model, "inpainting", every=7)
    res = export_task("inpainting", model, tv, tmp_path, check_batch=1)
    assert res.data_path == tmp_path / "inpainting.onnx.data" and res.data_path.stat().st_size > 1 << 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["inpainting.json", "inpainting.onnx", "inpainting.onnx.data"]
    graph = onnx.load(str(res.onnx_path), load_external_data=False)
    assert E.op_counts(graph)["LayerNormalization"] == 2 * (24 + 8) + 2
    assert {k: dict(v) for k, v in E.patch_node_counts(graph).items()} == {str(b): {"Mul": 1, "Add": 1} for b in tv.mul}
    assert res.check.max_abs_float <= 1e-4
