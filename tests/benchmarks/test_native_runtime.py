"""tvbench's tvrun-native glue: the overhead definition, the ratios, and one real native run
(skipped, with the reason, while build/tvrun-native is not built)."""

from __future__ import annotations

import pytest

from benchmarks.native_runtime import materialise_source, native_binary, native_ratios, overhead_ms


def test_overhead_is_wall_per_frame_minus_mean_infer():
    assert overhead_ms(20.0, {"infer": {"mean": 30.0}}) == 20.0
    assert overhead_ms(0.0, {"infer": {"mean": 30.0}}) is None
    assert overhead_ms(10.0, {}) is None


def test_ratios_compare_each_native_row_with_the_python_row():
    rows = [{"backend": "onnxruntime", "scope": "end-to-end", "precision": "fp32", "fps": 10.0,
             "overhead_ms_per_frame": 40.0},
            {"backend": "onnxruntime-native", "scope": "end-to-end", "precision": "fp32", "fps": 20.0,
             "overhead_ms_per_frame": 10.0},
            {"backend": "onnxruntime-native-spin", "scope": "end-to-end", "precision": "fp32", "fps": 12.5,
             "overhead_ms_per_frame": 30.0}]
    r = native_ratios(rows)
    assert r["end-to-end overhead per frame (all but the graph call): tvrun-native / tvrun, onnxruntime fp32"] == 0.25
    assert r["end-to-end FPS: tvrun-native --ort-spin / tvrun, onnxruntime fp32"] == 1.25
    assert native_ratios(rows[:1]) == {}


def test_sample_uri_becomes_the_same_clip_file(tmp_path):
    assert materialise_source("clip.mp4", "lowlight", tmp_path) == "clip.mp4"
    path = materialise_source("sample:lowlight", "lowlight", tmp_path)
    assert path.endswith("lowlight-sample.mp4") and (tmp_path / "lowlight-sample.mp4").stat().st_size > 0


@pytest.mark.skipif(native_binary() is None, reason="tvrun-native is not built (cmake -S . -B build && cmake --build build)")
def test_native_end_to_end_row(tmp_path):
    import cv2
    import numpy as np

    from benchmarks.native_runtime import native_end_to_end
    from export.onnx_export import export_task

    onnx = export_task("lowlight", model="tiny", out_dir=tmp_path / "g", check=False).onnx_path
    clip = tmp_path / "c.mp4"
    w = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 10.0, (160, 120))
    for i in range(3):
        w.write(np.full((120, 160, 3), 20 + 10 * i, np.uint8))
    w.release()
    stats, per_frame = native_end_to_end(native_binary(), onnx, "lowlight", str(clip), 5, 1, None, "denoise",
                                         log=lambda s: None)
    assert stats["frames"] == 5 and per_frame.shape == (5,) and (per_frame > 0).all()
    assert stats["stages_ms"]["infer"]["mean"] > 0 and stats["stopped_by"] == "frame limit"
