"""The exported graphs: structure, metadata, batch, parity with PyTorch and `taskvec prompt`."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from export import graph_edit as E
from export.check import FP32_BOUND, ort_session, random_images
from export.onnx_export import export_task, switch_feeds
from export.spec import SPEC, IOSpec, parse_patch_name
from taskvec.model.checkpoint import model_fingerprint


@pytest.fixture(scope="module")
def tiny_export(tmp_path_factory, tiny, tiny_tv):
    return export_task("inpainting", tiny, tiny_tv, tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def micro_export(tmp_path_factory, micro, micro_tv):
    return export_task("inpainting", micro, micro_tv, tmp_path_factory.mktemp("micro"), check_batch=1, halo=2)


def _model(result):
    return onnx.load(str(result.onnx_path))


@pytest.mark.parametrize("which", ["tiny_export", "micro_export"])
def test_patch_nodes_exact(request, which):
    result = request.getfixturevalue(which)
    tv = request.getfixturevalue("tiny_tv" if which == "tiny_export" else "micro_tv")
    model = _model(result)
    counts = E.patch_node_counts(model)
    assert set(counts) == {str(b) for b in tv.mul}
    for block, c in counts.items():
        assert c == {"Mul": 1, "Add": 1}, block
    # names: tv/<stage>/bNN/mul|add on nodes and initializers alike
    inits = {i.name for i in model.graph.initializer}
    names = [n.name for n in model.graph.node if parse_patch_name(n.name)]
    assert len(names) == 2 * len(tv.mul) and set(names) <= inits
    # nothing else consumes a patch constant
    assert not [n for n in model.graph.node if any(parse_patch_name(i) for i in n.input) and not parse_patch_name(n.name)]


@pytest.mark.parametrize("which", ["tiny_export", "micro_export"])
def test_graph_rules(request, which):
    result = request.getfixturevalue(which)
    model = _model(result)
    ops = E.op_counts(model)
    cfg = request.getfixturevalue("tiny" if which == "tiny_export" else "micro").cfg
    # one LayerNormalization node per nn.LayerNorm: 2 per block + the two final norms
    assert ops["LayerNormalization"] == 2 * (cfg.depth + cfg.decoder_depth) + 2
    assert not {"ReduceMean", "Sqrt", "Pow"} & set(ops)  # no decomposed LayerNorm
    assert E.graph_problems(model) == []
    assert not {"RandomUniform", "RandomNormal", "ScatterND", "ScatterElements", "NonZero"} & set(ops)
    assert model.opset_import[0].version >= 17


def test_graph_is_lean(tiny_export):
    """onnxslim ran: ≤ 450 nodes for tiny's task graph (885 as traced), no Constant nodes
    left, the shape arithmetic folded, the patch nodes intact (test_patch_nodes_exact)."""
    model = _model(tiny_export)
    ops = E.op_counts(model)
    assert sum(ops.values()) <= 450 and ops.get("Constant", 0) == 0 and ops.get("Shape", 0) <= 4
    side = json.loads(tiny_export.json_path.read_text())
    simp = side["simplified"]
    assert simp["tool"].startswith("onnxslim") and simp["nodes_after"] == sum(ops.values()) == side["node_count"]
    assert simp["nodes_before"] > 2 * simp["nodes_after"] and simp["constant_before"] > 100


def test_metadata_round_trip(tiny_export, tiny):
    meta = E.read_metadata(tiny_export.onnx_path)
    assert meta["task"] == "inpainting" and meta["graph"] == "task"
    assert meta["model_fingerprint"] == model_fingerprint(tiny)
    assert meta["site_count"] == tiny_export.metadata["site_count"] > 0
    assert len(meta["taskvector_fingerprint"]) == 64
    spec = IOSpec.from_dict(meta["io_spec"])
    assert spec == SPEC
    sess = ort_session(tiny_export.onnx_path)
    assert [i.name for i in sess.get_inputs()] == [spec.input_name]
    assert [o.name for o in sess.get_outputs()] == [spec.output_name]
    side = json.loads(tiny_export.json_path.read_text())
    assert {k: side[k] for k in meta} == meta
    assert side["check"]["max_abs_float"] <= FP32_BOUND
    model = onnx.load(str(tiny_export.onnx_path), load_external_data=False)
    assert model.producer_name == meta["producer"]


def test_batch_four_and_dtype(tiny_export):
    sess = ort_session(tiny_export.onnx_path)
    out = sess.run([SPEC.output_name], {SPEC.input_name: random_images(4, 5)})[0]
    assert out.dtype == np.uint8 and out.shape == (4, 111, 111, 3)
    one = sess.run([SPEC.output_name], {SPEC.input_name: random_images(4, 5)[1:2]})[0]
    assert np.abs(one.astype(int) - out[1:2].astype(int)).max() <= 1


def test_fp32_parity_measured(tiny_export, micro_export):
    for r in (tiny_export, micro_export):
        assert r.check is not None and r.check.batch >= 1
        assert r.check.max_abs_float <= FP32_BOUND and r.check.max_abs_uint8 <= 1


def test_grey_level_parity_with_prompt(tiny_export, tiny_tv, tmp_path):
    """ORT uint8 output vs `taskvec prompt --zero-shot` (run_prompt) with the same task
    vector file on the same image file: within 1 grey level."""
    import cv2

    from taskvec.vectors.prompting import run_prompt

    bgr = random_images(1, 99)[0]
    query, answer, tv_file = tmp_path / "q.png", tmp_path / "a.png", tmp_path / "tv.safetensors"
    cv2.imwrite(str(query), bgr)
    tiny_tv.save(tv_file)
    run_prompt("inpainting", str(query), str(answer), use_zero_shot=True, taskvec_file=str(tv_file), model_spec="tiny")
    ref = cv2.imread(str(answer), cv2.IMREAD_COLOR)
    out = ort_session(tiny_export.onnx_path).run(None, {SPEC.input_name: bgr[None]})[0][0]
    assert ref.shape == out.shape == (111, 111, 3)
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= 1


def test_vq_halo_crop_matches_answer_geometry(micro_export):
    assert micro_export.metadata["halo"] == 2 and micro_export.metadata["head"] == "vq"


def test_switchable_serves_the_task(tmp_path, micro_pixel):
    from export.onnx_export import random_taskvector

    tv = random_taskvector(micro_pixel, "inpainting")
    res = export_task("inpainting", micro_pixel, tv, tmp_path, graph="switchable")
    task = export_task("inpainting", micro_pixel, tv, tmp_path, check=False)
    assert res.onnx_path.name == "inpainting.switchable.onnx" and res.check.max_abs_float <= FP32_BOUND
    feeds = switch_feeds(micro_pixel, tv)
    assert res.metadata["switch_inputs"] == list(feeds)
    img = random_images(3, 3)
    a = ort_session(res.onnx_path).run(None, {SPEC.input_name: img, **feeds})[0]
    b = ort_session(task.onnx_path).run(None, {SPEC.input_name: img})[0]
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_in_context_graph(tmp_path, nano_vq):
    res = export_task("inpainting", nano_vq, None, tmp_path, graph="in-context", check_batch=1, halo=1)
    sess = ort_session(res.onnx_path)
    assert [i.name for i in sess.get_inputs()] == [SPEC.input_name, SPEC.example_in_name, SPEC.example_out_name]
    assert res.check.max_abs_float <= FP32_BOUND
    dc = res.decode_comparison
    assert dc and {"halo0", "halo1"} <= set(dc) and dc["halo0"]["max_abs"] >= 0


def test_refine_head_exports_with_parity(tmp_path):
    """The convolutional answer refinement is part of the exported graph and checked like the rest."""
    from export.onnx_export import random_taskvector

    import torch

    from taskvec.model.checkpoint import load_model

    model = load_model("random:micro_refine")
    torch.nn.init.normal_(model.refine.out.weight, std=0.05)  # not the zero start: the convs must matter
    res = export_task("inpainting", model, random_taskvector(model, "inpainting"), tmp_path)
    assert res.check.max_abs_float <= FP32_BOUND
    ops = [n.op_type for n in onnx.load(str(res.onnx_path)).graph.node]
    assert ops.count("Conv") >= 5 and "Resize" in ops  # the refiner's five convolutions and its ×2
