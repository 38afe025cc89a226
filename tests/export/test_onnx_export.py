"""The exported graphs: structure, metadata, batch, parity with PyTorch and `taskvec prompt`."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest

from export import graph_edit as E
from export.check import FP32_BOUND, ort_session, random_images
from export.onnx_export import export_task, switch_feeds
from export.spec import SPEC, parse_patch_name
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
    from export.metadata import GraphRequest, load_graph_metadata, read_props
    from export.spec import GraphMetadata

    meta = read_props(tiny_export.onnx_path)
    assert meta == tiny_export.metadata
    assert meta.task == "inpainting" and meta.graph == "task"
    assert meta.model_fingerprint == model_fingerprint(tiny)
    assert meta.site_count > 0 and len(meta.taskvector_fingerprint) == 64
    assert meta.io_spec == SPEC
    sess = ort_session(tiny_export.onnx_path)
    assert [i.name for i in sess.get_inputs()] == [meta.io_spec.input_name]
    assert [o.name for o in sess.get_outputs()] == [meta.io_spec.output_name]
    side = json.loads(tiny_export.json_path.read_text())
    assert GraphMetadata.from_dict(side) == meta
    assert {k: side[k] for k in meta.to_dict()} == meta.to_dict()  # the sidecar's keys stay top-level
    assert side["check"]["max_abs_float"] <= FP32_BOUND
    model = onnx.load(str(tiny_export.onnx_path), load_external_data=False)
    assert model.producer_name == meta.producer
    want = GraphRequest("inpainting", "task", model_fingerprint(tiny), "tiny", SPEC)
    assert load_graph_metadata(tiny_export.onnx_path, want) == meta


def test_graphs_written_before_still_load():
    """metadata_props and a sidecar as the exporter wrote them before GraphMetadata (no
    ``decode`` key, JSON-encoded lists) read back with the old meaning."""
    from export.spec import GraphMetadata

    props = {"taskvec.task": "lowlight", "taskvec.graph": "task", "taskvec.model": "tiny", "taskvec.model_name": "tiny",
             "taskvec.model_fingerprint": "ab" * 32, "taskvec.head": "vq", "taskvec.taskvector_fingerprint": "cd" * 32,
             "taskvec.taskvector_method": "reinforce", "taskvec.site_count": "28",
             "taskvec.patched_blocks": '["enc/b01", "dec/b02"]', "taskvec.switch_inputs": "[]", "taskvec.halo": "2",
             "taskvec.io_spec": json.dumps(SPEC.to_dict()), "taskvec.opset": "17", "taskvec.producer": "taskvec-export",
             "taskvec.producer_version": "0.1.0", "other": "ignored"}
    meta = GraphMetadata.from_props(props)
    assert meta.site_count == 28 and meta.patched_blocks == ("enc/b01", "dec/b02") and meta.decode_kind == "halo"
    side = {k[len("taskvec."):]: json.loads(v) if k.endswith(("count", "blocks", "inputs", "halo", "spec", "opset")) else v
            for k, v in props.items() if k.startswith("taskvec.")}
    assert GraphMetadata.from_dict({**side, "files": {}, "check": None}) == meta
    assert GraphMetadata.from_props({"other": "x"}) is None


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
    meta = micro_export.metadata
    assert meta.halo == 2 and meta.decode == "halo" and meta.head == "vq"  # --halo alone: halo decode


def test_decode_choice_measured_and_full_equals_prompt(tmp_path, nano_vq):
    """tvexport --decode full computes the reference answer (what `taskvec prompt` returns);
    the sidecar holds every decode's distance from it and its MACs, which agree with the
    MACs counted from the exported graphs."""
    import torch

    from benchmarks.macs import count_macs
    from export.onnx_export import random_taskvector
    from taskvec import geometry as G

    tv = random_taskvector(nano_vq, "inpainting")
    runs = {d: export_task("inpainting", nano_vq, tv, tmp_path / d, decode=d, check_batch=1) for d in ("answer", "full")}
    dc = json.loads(runs["full"].json_path.read_text())["decode_comparison"]
    assert dc["layout"] == "zero-shot" and set(dc["decodes"]) == {"answer", "halo", "full"}
    assert dc["decodes"]["full"]["max_abs"] == 0 and dc["decodes"]["answer"]["max_abs"] > 0
    assert dc["decodes"]["answer"]["decode_gmac"] < dc["decodes"]["halo"]["decode_gmac"] < dc["decodes"]["full"]["decode_gmac"]
    for d, res in runs.items():
        assert res.metadata.decode == d
        counted = count_macs(res.onnx_path)["total"] / 1e9
        assert counted == pytest.approx(dc["decodes"][d]["total_gmac"], rel=0.02)
    img = random_images(2, 5)
    out = ort_session(runs["full"].onnx_path).run(None, {SPEC.input_name: img})[0]
    q = torch.from_numpy(img[..., ::-1].copy()).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        ref = nano_vq(G.normalize(G.make_canvas(None, None, q)), G.get_layout("zero-shot"), tv.patches()).answer
    ref_u8 = (ref.clamp(0, 1) * 255).round().permute(0, 2, 3, 1).numpy()[..., ::-1]
    assert np.abs(out.astype(int) - ref_u8.astype(int)).max() <= 1


def test_switchable_serves_the_task(tmp_path, micro_pixel):
    from export.onnx_export import random_taskvector

    tv = random_taskvector(micro_pixel, "inpainting")
    res = export_task("inpainting", micro_pixel, tv, tmp_path, graph="switchable")
    task = export_task("inpainting", micro_pixel, tv, tmp_path, check=False)
    assert res.onnx_path.name == "inpainting.switchable.onnx" and res.check.max_abs_float <= FP32_BOUND
    feeds = switch_feeds(micro_pixel, tv)
    assert res.metadata.switch_inputs == tuple(feeds)
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
    assert dc["layout"] == "in-context" and dc["decodes"]["halo"]["max_abs"] >= 0


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
