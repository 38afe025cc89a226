"""TensorRT: engine names, the refusal of mismatched or corrupt engines, the trtexec hint.

Building and running need TensorRT and a GPU (marked ``tensorrt``); the file checks do not."""

from __future__ import annotations

import hashlib
import json

import pytest

from export import trt
from taskvec.errors import UserError


def _fake_engine(folder, data=b"not really an engine", version="10.3.0", gpu="NVIDIA H100 80GB HBM3", prec="fp16"):
    path = folder / f"inpainting.trt{version}.{trt.slug(gpu)}.{prec}.engine"
    path.write_bytes(data)
    info = {"tensorrt": version, "gpu": gpu, "gpu_slug": trt.slug(gpu), "precision": prec,
            "sha256": hashlib.sha256(data).hexdigest()}
    trt.sidecar_path(path).write_text(json.dumps(info))
    return path


def test_engine_name_round_trip(tmp_path):
    name = trt.engine_filename(tmp_path / "lowlight.onnx", "10.3.0", "Orin (nvgpu)", "fp16")
    assert name == "lowlight.trt10.3.0.orin-nvgpu.fp16.engine"
    assert trt.parse_engine_name(name) == {"stem": "lowlight", "version": "10.3.0", "gpu": "orin-nvgpu", "precision": "fp16"}
    with pytest.raises(UserError):
        trt.parse_engine_name("lowlight.engine")


def test_mismatched_engine_is_refused(tmp_path):
    path = _fake_engine(tmp_path)
    assert trt.check_engine_file(path, "10.3.0", "NVIDIA H100 80GB HBM3")["precision"] == "fp16"
    with pytest.raises(UserError, match="TensorRT 10.3.0"):
        trt.check_engine_file(path, "10.8.0", "NVIDIA H100 80GB HBM3")
    with pytest.raises(UserError, match="rebuild"):
        trt.check_engine_file(path, "10.3.0", "Orin")


def test_corrupt_engine_one_line(tmp_path):
    path = _fake_engine(tmp_path)
    path.write_bytes(b"truncated")
    with pytest.raises(UserError) as e:
        trt.check_engine_file(path, "10.3.0", "NVIDIA H100 80GB HBM3")
    assert "corrupt" in str(e.value) and "\n" not in str(e.value)
    trt.sidecar_path(path).unlink()
    with pytest.raises(UserError, match="sidecar"):
        trt.check_engine_file(path)


def test_load_engine_without_tensorrt_is_one_line(tmp_path):
    if trt.tensorrt_available():
        pytest.skip("TensorRT is installed")
    with pytest.raises(UserError, match="TensorRT is not installed"):
        trt.load_engine(_fake_engine(tmp_path))


def test_trtexec_hint(tmp_path):
    from export import trtexec

    hint = trtexec.trtexec_hint(tmp_path / "lowlight.onnx", "fp16", 4, trt_version="10.3.0", gpu="Orin")
    assert "<" not in hint and ">" not in hint  # no placeholders a shell would take as redirections
    for part in ("--onnx=", "--saveEngine=", "--fp16", "--precisionConstraints=obey", "--minShapes=image:1x111x111x3",
                 "--optShapes=image:4x111x111x3", "--maxShapes=image:4x111x111x3",
                 f"--timingCacheFile={tmp_path / 'timing.trt10.3.0.orin.cache'}",
                 f"--saveEngine={tmp_path / 'lowlight.trt10.3.0.orin.fp16.engine'}"):
        assert part in hint
    eleven = trtexec.trtexec_hint(tmp_path / "lowlight.onnx", "fp16", 4, trt_version="11", gpu="Orin")
    for gone in ("--fp16", "--precisionConstraints", "--layerPrecisions", "--stronglyTyped"):
        assert gone not in eleven  # removed in TensorRT 11 (every network strongly typed)
    assert f"--onnx={tmp_path / 'lowlight.fp16.onnx'}" in eleven
    assert "--stronglyTyped" in trtexec.trtexec_hint(tmp_path / "lowlight.onnx", "fp32", 4, trt_version="10", gpu="Orin")
    with pytest.raises(UserError, match="10.x"):
        trtexec.trtexec_plan(tmp_path / "lowlight.onnx", trt_version="8.6")


@pytest.mark.tensorrt
@pytest.mark.gpu
@pytest.mark.parametrize("precision", ["fp32", "fp16"])
def test_build_and_run_engine(tmp_path, micro_pixel, precision):
    import numpy as np

    from export.check import ort_session, random_images
    from export.onnx_export import export_task, random_taskvector

    res = export_task("inpainting", micro_pixel, random_taskvector(micro_pixel, "inpainting"), tmp_path)
    engine = trt.build_engine(res.onnx_path, precision=precision, batch_max=4)
    assert (tmp_path / f"timing.trt{trt.tensorrt_module().__version__}.{trt.slug(trt.gpu_name())}.cache").is_file()
    img = random_images(4, 0)
    from export.trt_session import TrtSession

    with TrtSession.open(engine) as session:
        out = session.infer({"image": img})["output"]
    ref = ort_session(res.onnx_path).run(None, {"image": img})[0]
    assert np.abs(out.astype(int) - ref.astype(int)).max() <= (1 if precision == "fp32" else 3)
