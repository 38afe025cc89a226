"""runtime.backends: one interface, auto selection, torch vs ONNX Runtime agreement."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.backends import Backend, BackendError, available_backends, open_backend
from runtime.backends.onnxruntime import OrtBackend, io_spec_from_metadata, pick_providers


def test_available_backends_lists_cpu_ones():
    have = available_backends()
    assert "onnxruntime" in have and "CPU" in have["onnxruntime"]
    assert "torch" in have


def test_pick_providers_orders_fastest_first():
    avail = ["CPUExecutionProvider", "CUDAExecutionProvider", "TensorrtExecutionProvider"]
    assert pick_providers(avail) == ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert pick_providers(avail, "cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert pick_providers(["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    with pytest.raises(BackendError):
        pick_providers(["CPUExecutionProvider"], "warp-drive")


def test_io_spec_read_from_metadata():
    meta = {"taskvec.io_spec": '{"input_name": "frames", "output_name": "filtered"}', "taskvec.task": "lowlight"}
    spec = io_spec_from_metadata(meta)
    assert (spec.input_name, spec.output_name) == ("frames", "filtered")
    assert io_spec_from_metadata({"other": "x"}) is None


def test_bad_requests_are_one_line_errors(tmp_path):
    with pytest.raises(BackendError, match="--engine"):
        open_backend("tensorrt")
    bad = tmp_path / "broken.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(BackendError) as e:
        OrtBackend(bad)
    assert "\n" not in str(e.value)
    with pytest.raises(BackendError, match="does not exist"):
        OrtBackend(tmp_path / "missing.onnx")
    with pytest.raises(BackendError, match="unknown backend"):
        open_backend("warp")  # type: ignore[arg-type]


def test_tensorrt_backend_skips_cleanly_without_tensorrt(tmp_path):
    pytest.importorskip("runtime.backends.tensorrt")
    try:
        import tensorrt  # noqa: F401
    except ImportError:
        from runtime.backends.tensorrt import TensorRTBackend

        with pytest.raises(BackendError, match="TensorRT is not installed"):
            TensorRTBackend(tmp_path / "x.engine")
        return
    pytest.skip("TensorRT is installed: covered by the tensorrt-marked tests")


def test_torch_and_onnxruntime_agree(exported_lowlight):
    from runtime.backends.torch import TorchBackend

    path, model, tv = exported_lowlight
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (3, 111, 111, 3), dtype=np.uint8)
    with OrtBackend(path) as ort_b, TorchBackend(model, tv.patches()) as torch_b:
        assert isinstance(ort_b, Backend) and isinstance(torch_b, Backend)
        assert ort_b.spec_source == "metadata"
        a = ort_b.infer(batch)
        b = torch_b.infer(batch)
        unpatched = TorchBackend(model, {}).infer(batch)
    assert a.shape == b.shape == batch.shape and a.dtype == b.dtype == np.uint8
    diff = np.abs(a.astype(int) - b.astype(int))
    print(f"torch vs onnxruntime: max {diff.max()} grey levels, mean {diff.mean():.4f}")
    assert diff.max() <= 2
    assert np.abs(unpatched.astype(int) - b.astype(int)).max() > 2  # the patch really is in the graph


def test_auto_picks_onnxruntime_and_says_why(exported_lowlight):
    path, _, _ = exported_lowlight
    with open_backend("auto", onnx=str(path), task="lowlight") as b:
        assert b.name == "onnxruntime:CPU"
        assert "auto" in b.reason and "CPU" in b.reason
        out = b.infer(np.zeros((111, 111, 3), np.uint8))  # a single image is a batch of one
        assert out.shape == (1, 111, 111, 3)
