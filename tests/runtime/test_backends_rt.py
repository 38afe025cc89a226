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
    with OrtBackend(path) as ort_b, TorchBackend.zero_shot(model, tv) as torch_b:
        assert isinstance(ort_b, Backend) and isinstance(torch_b, Backend)
        assert ort_b.spec_source == "metadata"
        a = ort_b.infer(batch)
        b = torch_b.infer(batch)
        unpatched = TorchBackend.zero_shot(model).infer(batch)
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


# ------------------------------------------------------------------ provider options


TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


def test_tensorrt_provider_options_cache_engines_and_timing(tmp_path):
    from runtime.backends.onnxruntime import describe_options, provider_options

    trt, cuda, cpu = provider_options([TRT, CUDA, CPU], cache_dir=tmp_path, fp16=True, batch_max=4,
                                      prefix="lowlight")
    folder = str(tmp_path / "ort-trt")
    assert trt["trt_engine_cache_enable"] == "True" and trt["trt_engine_cache_path"] == folder
    assert trt["trt_timing_cache_enable"] == "True" and trt["trt_timing_cache_path"] == folder
    assert trt["trt_engine_cache_prefix"] == "lowlight"
    assert trt["trt_fp16_enable"] == "True" and trt["trt_layer_norm_fp32_fallback"] == "True"
    assert trt["trt_profile_min_shapes"] == "image:1x111x111x3" and trt["trt_profile_max_shapes"] == "image:4x111x111x3"
    assert int(trt["trt_max_workspace_size"]) == 4 << 30
    assert cuda == {"device_id": "0", "arena_extend_strategy": "kSameAsRequested", "cudnn_conv_algo_search": "EXHAUSTIVE",
                    "do_copy_in_default_stream": "True"}
    assert cpu == {}
    assert all(isinstance(v, str) for o in (trt, cuda) for v in o.values())  # as ORT reports them back
    (fp32,) = provider_options([TRT], cache_dir=tmp_path)
    assert fp32["trt_fp16_enable"] == "False" and fp32["trt_layer_norm_fp32_fallback"] == "False"
    (three,) = provider_options([TRT], inputs=["image", "example_in", "example_out"], cache_dir=tmp_path)
    assert three["trt_profile_opt_shapes"].split(",") == [f"{n}:1x111x111x3" for n in ("image", "example_in", "example_out")]
    line = describe_options([TRT, CUDA], [trt, cuda])
    assert line.startswith(f"TensorRT: fp16, engine + timing cache in {folder}") and "CUDA: device 0" in line


def test_tensorrt_provider_cache_defaults_to_the_runtime_cache(monkeypatch, tmp_path):
    from runtime.backends.onnxruntime import provider_options

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    (trt,) = provider_options([TRT])
    assert trt["trt_engine_cache_path"] == str(tmp_path / "taskvec" / "ort-trt")


def test_ort_backend_passes_its_options_to_the_session(exported_lowlight, monkeypatch, tmp_path):
    """With the TensorRT and CUDA providers offered, the session is asked for both with the
    options above (the real session then runs on the CPU provider this machine has)."""
    import onnxruntime as ort

    seen = {}
    real = ort.InferenceSession

    def recording(path, sess_options=None, providers=None, provider_options=None):
        seen.update(providers=providers, provider_options=provider_options)
        return real(path, sess_options=sess_options, providers=[CPU])

    monkeypatch.setattr(ort, "get_available_providers", lambda: [TRT, CUDA, CPU])
    monkeypatch.setattr(ort, "InferenceSession", recording)
    onnx, _, _ = exported_lowlight
    with OrtBackend(onnx, cache_dir=tmp_path, fp16=True) as be:
        assert seen["providers"] == [TRT, CUDA, CPU]
        trt, cuda, cpu = seen["provider_options"]
        assert trt["trt_fp16_enable"] == "True" and trt["trt_engine_cache_path"] == str(tmp_path / "ort-trt")
        assert trt["trt_profile_min_shapes"] == "image:1x111x111x3"  # the graph's image input, read from the file
        assert cuda["device_id"] == "0" and cpu == {}
        assert (tmp_path / "ort-trt").is_dir()
        assert be.provider == "CPU" and be.options == {} and "fp16 not applied" in be.options_line


def test_tvrun_records_provider_options_in_stats(exported_lowlight, clip, tmp_path):
    import json

    from click.testing import CliRunner

    from runtime.cli import main

    onnx, _, _ = exported_lowlight
    stats = tmp_path / "s.json"
    r = CliRunner().invoke(main, ["--source", str(clip), "--task", "lowlight", "--onnx", str(onnx), "--headless",
                                  "--frames", "1", "--precision", "fp16", "--stats", str(stats)])
    assert r.exit_code == 0, r.output
    backend_line = next(ln for ln in r.stdout.splitlines() if ln.startswith("backend: "))
    assert "fp16 not applied (CPU runs the graph as exported" in backend_line
    extra = json.loads(stats.read_text())["extra"]
    assert extra["precision"] == "fp16" and extra["provider_options"] == {}
