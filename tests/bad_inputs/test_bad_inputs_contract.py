"""tvrun refuses, with one ``error:`` line and exit 2, a graph or engine that is not what
the command asked for (another task, another model) or whose sidecar contradicts it — the
checks of :mod:`export.metadata`, run before anything is opened (issue 13)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from badinput import assert_one_line, invoke
from export.metadata import GraphRequest, load_engine_metadata, read_props
from export.spec import SPEC
from runtime.cli import main


def _tvrun(frames, *args, task="lowlight"):
    return invoke(main, ["--source", frames, "--task", task, "--headless", *args])


def _other_model(tmp_path) -> Path:
    """A saved micro_pixel with other random weights (its card holds another fingerprint)."""
    from taskvec.model.checkpoint import load_model, save_model

    return save_model(load_model("random:micro_pixel", seed=5), tmp_path / "other.safetensors")


def test_onnx_for_another_model(tmp_path, clip_dir, graph_copy):
    r = _tvrun(clip_dir, "--onnx", graph_copy, "--model", _other_model(tmp_path))
    assert_one_line(r, 2, "exported from model")
    r = _tvrun(clip_dir, "--onnx", graph_copy, "--model", "tiny")
    assert_one_line(r, 2, "exported from model", "tiny")


@pytest.mark.parametrize("key,value", [("decode", "full"), ("halo", 3), ("head", "vq"),
                                       ("patched_blocks", ["enc/b00"]), ("model_name", "tiny")])
def test_onnx_sidecar_contradicting_any_field(clip_dir, graph_copy, key, value):
    side = graph_copy.with_suffix(".json")
    info = json.loads(side.read_text())
    info[key] = value
    side.write_text(json.dumps(info))
    assert_one_line(_tvrun(clip_dir, "--onnx", graph_copy), 2, "does not describe", key)


def test_onnx_io_not_what_its_metadata_says(clip_dir, graph_copy):
    """Graph and sidecar agree, but the I/O spec they both carry is not the runtime's."""
    import onnx

    from export.check import file_sha256
    from export.metadata import write_props

    m = onnx.load(str(graph_copy))
    meta = read_props(m)
    import dataclasses

    meta = dataclasses.replace(meta, io_spec=dataclasses.replace(SPEC, color="RGB"))
    write_props(m, meta)
    onnx.save(m, str(graph_copy))
    side = graph_copy.with_suffix(".json")
    info = {**json.loads(side.read_text()), **meta.to_dict()}
    info["files"]["onnx_sha256"] = file_sha256(graph_copy)
    side.write_text(json.dumps(info))
    assert_one_line(_tvrun(clip_dir, "--onnx", graph_copy), 2, "color")


def _fake_engine(folder: Path, graph: Path, edit=None, lie: bool = False) -> Path:
    """An engine file and the sidecar tvexport --engine writes, around bytes TensorRT never sees."""
    data = b"serialized engine" * 8
    eng = folder / "lowlight.trt10.0.1.nvidia-h200.fp16.engine"
    eng.write_bytes(data)
    meta = read_props(graph).to_dict()
    if edit:
        edit(meta)
    info = {"tensorrt": "10.0.1", "gpu": "NVIDIA H200", "gpu_slug": "nvidia-h200", "precision": "fp16",
            "sha256": hashlib.sha256(data + (b"x" if lie else b"")).hexdigest(), "onnx": graph.name, "metadata": meta}
    Path(str(eng) + ".json").write_text(json.dumps(info))
    return eng


def test_engine_for_another_task(tmp_path, clip_dir, graph_copy):
    eng = _fake_engine(tmp_path, graph_copy, lambda m: m.update(task="inpainting"))
    assert_one_line(_tvrun(clip_dir, "--engine", eng), 2, "'inpainting' graph")


def test_engine_for_another_model(tmp_path, clip_dir, graph_copy):
    eng = _fake_engine(tmp_path, graph_copy)
    assert_one_line(_tvrun(clip_dir, "--engine", eng, "--model", _other_model(tmp_path)), 2, "exported from model")


def test_engine_whose_sidecar_contradicts_it(tmp_path, clip_dir, graph_copy):
    eng = _fake_engine(tmp_path, graph_copy, lie=True)
    assert_one_line(_tvrun(clip_dir, "--engine", eng), 2, "checksum")
    eng = _fake_engine(tmp_path, graph_copy, lambda m: m.clear())
    assert_one_line(_tvrun(clip_dir, "--engine", eng), 2, "no graph metadata")


def test_engine_metadata_checked_without_tensorrt(tmp_path, graph_copy):
    eng = _fake_engine(tmp_path, graph_copy)
    meta, info = load_engine_metadata(eng, GraphRequest("lowlight", spec=SPEC))
    assert meta == read_props(graph_copy) and info["precision"] == "fp16"
