"""runtime.pipeline and tvrun: frame counts, stats schema, --frames, bad sources."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime.pipeline import STAGES, LoopSource, MaskPainter, run
from runtime.predictor import Inpainter, LowLightEnhancer
from runtime.sources import SourceError, open_source

ROOT = Path(__file__).resolve().parents[2]


def test_pipeline_writes_every_frame_and_stats(tmp_path, clip, lut_backend, count_frames):
    out, stats_path, ba = tmp_path / "out.mp4", tmp_path / "stats.json", tmp_path / "ba.png"
    stats = run(str(clip), LowLightEnhancer(lut_backend(2.0)), backend_name="fake", headless=True,
                output=out, stats_path=stats_path, before_after=ba)
    assert count_frames(out) == (9, (96, 64))
    assert stats.frames == 9 and stats.dropped == 0 and stats.stopped_by == "end of stream"
    data = json.loads(stats_path.read_text())
    for key in ("frames", "dropped", "fps", "backend", "source", "resolution", "stages_ms", "rss_mb"):
        assert key in data
    assert data["resolution"] == [96, 64] and data["backend"] == "fake" and data["fps"] > 0
    assert set(STAGES) <= set(data["stages_ms"])
    for s in STAGES:
        assert set(data["stages_ms"][s]) == {"p50", "p90", "p99", "mean"}
    assert set(data["rss_mb"]) == {"start", "end"}
    panel = cv2.imread(str(ba))
    assert panel.shape[0] == 64 and panel.shape[1] > 2 * 96
    assert not list(tmp_path.glob(".*"))  # no temporary files left
    assert out.stat().st_mode & 0o044 == 0o044  # readable like any file, not mkstemp's 0600


def test_headless_progress_bar_counts_frames(clip, lut_backend, capsys):
    run(str(clip), LowLightEnhancer(lut_backend(1.0)), headless=True, progress=True)
    err = capsys.readouterr().err.replace("\r", "\n")
    assert "tvrun: 100%" in err and "9/9" in err  # the clip's length is known: a bar with an estimate
    run(str(clip), LowLightEnhancer(lut_backend(1.0)), headless=True, frames=4, progress=True)
    assert "4/4" in capsys.readouterr().err
    run(str(clip), LowLightEnhancer(lut_backend(1.0)), headless=True)  # off unless asked
    assert "tvrun:" not in capsys.readouterr().err


def test_frames_limit_and_loop(tmp_path, clip, lut_backend, count_frames):
    stats = run(str(clip), LowLightEnhancer(lut_backend(1.0)), headless=True, frames=4, output=tmp_path / "a.mp4")
    assert stats.frames == 4 and stats.stopped_by == "frame limit"
    assert count_frames(tmp_path / "a.mp4")[0] == 4
    # a 9-frame clip replayed: frame 25 is the 7th of the third pass (two rewinds) ...
    src = LoopSource(open_source(str(clip)))
    indices = [src.read().index for _ in range(25)]
    assert src.loops == 2 and indices == list(range(25))
    src.close()
    # ... and the pipeline runs past the end of the clip (its capture thread reads a few
    # frames ahead, so the rewinds it has done by then are 2 or 3)
    src = LoopSource(open_source(str(clip)))
    stats = run(src, lambda img, timer=None: img, headless=True, frames=25)
    assert stats.frames == 25 and stats.stopped_by == "frame limit" and src.loops in (2, 3)


def test_inpainting_pipeline_keeps_outside(tmp_path, clip, lut_backend):
    seen = []
    run(str(clip), Inpainter(lut_backend(0.0), rect=(30, 20, 20, 16)), headless=True,
        on_frame=lambda i, a, b: seen.append((a, b)))
    hole = np.zeros((64, 96), bool)
    hole[20:36, 30:50] = True
    assert len(seen) == 9
    for a, b in seen:
        assert np.array_equal(a[~hole], b[~hole]) and not np.array_equal(a[hole], b[hole])


def test_bad_source_raises_one_line(tmp_path):
    with pytest.raises(SourceError) as e:
        run(str(tmp_path / "missing.mp4"), lambda img, timer=None: img, headless=True)
    assert "\n" not in str(e.value)


def test_failing_predictor_leaves_no_output(tmp_path, clip):
    def boom(img, timer=None):
        raise RuntimeError("graph exploded")

    with pytest.raises(RuntimeError):
        run(str(clip), boom, headless=True, output=tmp_path / "x.mp4")
    assert list(tmp_path.iterdir()) == [clip]


def test_mask_painter_draws_and_clears():
    p = MaskPainter((64, 48), brush=4)
    p.on_mouse(cv2.EVENT_LBUTTONDOWN, 10, 10, 0)
    p.on_mouse(cv2.EVENT_MOUSEMOVE, 20, 10, 0)
    p.on_mouse(cv2.EVENT_LBUTTONUP, 20, 10, 0)
    p.on_mouse(cv2.EVENT_MOUSEMOVE, 40, 40, 0)  # button up: no paint
    assert p.mask[10, 15] == 255 and p.mask[40, 40] == 0 and p.version >= 2
    p.on_mouse(cv2.EVENT_RBUTTONDOWN, 0, 0, 0)
    assert not p.mask.any()


# --------------------------------------------------------------------------- the CLI

def test_cli_bad_source_is_one_line_nonzero(tmp_path):
    r = subprocess.run([sys.executable, "-m", "runtime.cli", "--source", str(tmp_path / "nope.mp4"),
                        "--task", "lowlight", "--headless"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert r.returncode != 0
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and "no such file" in lines[0]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("args, msg", [
    (["--task", "lowlight", "--headless"], "exactly one of --camera"),
    (["--source", "x.mp4", "--camera", "0", "--task", "lowlight"], "exactly one of --camera"),
    (["--source", "x.mp4", "--task", "inpainting", "--headless"], "--mask"),
    (["--source", "x.mp4", "--task", "lowlight", "--tiles", "3"], "--tiles"),
    (["--source", "ftp://host/x", "--task", "lowlight", "--headless"], "unsupported source"),
])
def test_cli_bad_input_messages(args, msg, capsys):
    from runtime.cli import main

    with pytest.raises(SystemExit) as e:
        main(args)
    assert e.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and msg in err and "\n" not in err


def test_cli_runs_frames_n_with_onnx(tmp_path, clip, exported_lowlight, capsys, count_frames):
    from runtime.cli import main

    onnx_path, _, _ = exported_lowlight
    out, stats = tmp_path / "o.mp4", tmp_path / "s.json"
    with pytest.raises(SystemExit) as e:
        main(["--source", str(clip), "--task", "lowlight", "--onnx", str(onnx_path), "--headless",
              "--output", str(out), "--frames", "5", "--stats", str(stats)])
    assert e.value.code == 0
    captured = capsys.readouterr()
    assert "5 frames" in captured.out and "onnxruntime:CPU" in captured.out
    assert count_frames(out) == (5, (96, 64))
    assert json.loads(stats.read_text())["frames"] == 5


def test_cli_exports_into_the_cache_once(tmp_path, clip, monkeypatch):
    """No --onnx: the graph is exported on first use into --cache-dir and reused."""
    import runtime.cli as cli

    calls = []

    def fake_export(deployed, out_dir, request, log):
        from pathlib import Path as P
        task = deployed.task
        d = P(out_dir)
        d.mkdir(parents=True, exist_ok=True)
        (d / f"{task}.onnx").write_bytes(b"x")
        calls.append(task)
        (d / f"{task}.json").write_text(json.dumps({"model_fingerprint": deployed.fingerprint}))

        class R:
            onnx_path = d / f"{task}.onnx"
        return R()

    import export.onnx_export as ox
    monkeypatch.setattr(ox, "export_resolved", fake_export)
    p1 = cli.cached_onnx("lowlight", "tiny", tmp_path / "cache", log=lambda s: None)
    p2 = cli.cached_onnx("lowlight", "tiny", tmp_path / "cache", log=lambda s: None)
    assert p1 == p2 and calls == ["lowlight"]
    assert p1.parent.name == "lowlight" and p1.parent.parent.name.startswith("tiny-")
