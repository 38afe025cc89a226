"""runtime.timing: stage percentiles, FPS and the overlay."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.timing import StageTimer, draw_overlay


def test_percentiles_on_known_values():
    timer = StageTimer()
    for v in range(1, 101):
        timer.record("infer", float(v))
    s = timer.summary()["infer"]
    assert set(s) == {"p50", "p90", "p99", "mean"}
    assert s["p50"] == pytest.approx(50.5)
    assert s["p90"] == pytest.approx(90.1)
    assert s["p99"] == pytest.approx(99.01)
    assert s["mean"] == pytest.approx(50.5)


def test_stage_uses_clock_keeps_order_and_records_on_error(fake_clock):
    clock = fake_clock
    timer = StageTimer(clock=clock)
    for ms in (10, 30, 20):
        with timer.stage("pre"):
            clock.t += ms / 1e3
        with timer.stage("infer"):
            clock.t += 0.1
        timer.tick()
    with pytest.raises(ValueError):
        with timer.stage("post"):
            clock.t += 0.005
            raise ValueError
    assert list(timer.summary()) == ["pre", "infer", "post"]
    assert timer.samples("pre") == pytest.approx([10, 30, 20])
    assert timer.summary()["pre"]["p50"] == pytest.approx(20)
    assert timer.last_ms() == pytest.approx({"pre": 20, "infer": 100, "post": 5})
    # 3 frames over 0.36 s of wall time
    assert timer.frames == 3 and timer.wall_s == pytest.approx(0.36)
    assert timer.fps() == pytest.approx(3 / 0.36)
    report = timer.report()
    assert report["frames"] == 3 and report["stages_ms"]["infer"]["mean"] == pytest.approx(100)


def test_fps_window_and_bounded_samples(fake_clock):
    clock = fake_clock
    timer = StageTimer(max_samples=10, clock=clock)
    for i in range(50):
        clock.t += 0.1 if i < 40 else 0.05  # 10 FPS, then 20 FPS
        timer.record("capture", float(i))
        timer.tick()
    assert timer.fps(window=5) == pytest.approx(20.0)
    assert timer.samples("capture") == [float(i) for i in range(40, 50)]
    assert StageTimer().fps() == 0.0 and StageTimer().summary() == {}


@pytest.mark.parametrize("shape", [(480, 640, 3), (111, 111, 3), (32, 32, 3)])
def test_draw_overlay(shape):
    image = np.full(shape, 200, np.uint8)
    before = image.copy()
    out = draw_overlay(image, 29.97, {"capture": 1.2, "infer": 15.0, "post": 2.5}, "onnxruntime:CPU", copy=True)
    assert out is not image and np.array_equal(image, before)
    assert out.shape == shape and out.dtype == np.uint8
    assert out[:8, :8].mean() < 150  # darkened box in the top-left corner
    assert out.max() == 255  # white text
    if shape[0] > 100:
        assert np.array_equal(out[-5:, -5:], before[-5:, -5:])  # rest untouched
    same = draw_overlay(image, 30.0, {}, "torch")
    assert same is image and not np.array_equal(image, before)
