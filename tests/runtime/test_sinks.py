"""runtime.sinks: atomic video files, image folders, null and window sinks."""

from __future__ import annotations

import sys

import cv2
import numpy as np
import pytest

from runtime.sinks import (
    ImageFolderSink,
    NullSink,
    SinkError,
    TeeSink,
    VideoFileSink,
    WindowSink,
    open_sink,
)


def frame(i: int, size=(64, 48)) -> np.ndarray:
    w, h = size
    return np.full((h, w, 3), 20 * i, np.uint8)


def test_video_file_appears_only_on_close(tmp_path, count_frames):
    out = tmp_path / "sub" / "out.mp4"
    sink = open_sink(str(out), headless=True, fps=10, size=(64, 48))
    assert isinstance(sink, VideoFileSink)
    for i in range(5):
        sink.write(frame(i))
    assert not out.exists()
    assert sink.temp_path.parent == out.parent and sink.temp_path.exists()
    sink.close()
    assert out.exists() and not sink.temp_path.exists()
    assert count_frames(out) == (5, (64, 48))
    assert sorted(p.name for p in out.parent.iterdir()) == ["out.mp4"]


def test_video_file_abort_and_exception_leave_nothing(tmp_path):
    out = tmp_path / "out.mp4"
    sink = open_sink(out, headless=True, fps=10, size=None)
    sink.write(frame(1))
    sink.abort()
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(RuntimeError):
        with open_sink(out, headless=True, fps=10) as sink:
            sink.write(frame(1))
            raise RuntimeError("inference failed")
    assert list(tmp_path.iterdir()) == []
    with open_sink(out, headless=True, fps=10):
        pass  # no frame → no file
    assert list(tmp_path.iterdir()) == []


def test_video_file_rejects_other_sizes_and_types(tmp_path, count_frames):
    with open_sink(tmp_path / "a.avi", headless=True, fps=5, size=(64, 48)) as sink:
        sink.write(frame(0))
        with pytest.raises(SinkError, match="32x24"):
            sink.write(frame(0, (32, 24)))
        with pytest.raises(SinkError, match="uint8"):
            sink.write(np.zeros((48, 64, 3), np.float32))
        sink.write(np.zeros((48, 64), np.uint8))  # grey is converted
    assert count_frames(tmp_path / "a.avi") == (2, (64, 48))
    with pytest.raises(SinkError):
        VideoFileSink(tmp_path / "b.mp4", fps=0)


def test_image_folder_sink(tmp_path):
    folder = tmp_path / "frames"
    with open_sink(str(folder), headless=True, fps=10, size=None) as sink:
        assert isinstance(sink, ImageFolderSink)
        for i in range(3):
            sink.write(frame(i + 1, (16, 8)))
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["frame_000001.png", "frame_000002.png", "frame_000003.png"]
    assert int(cv2.imread(str(folder / "frame_000002.png"))[0, 0, 0]) == 40
    sink = open_sink(tmp_path / "more/", headless=True, fps=10)
    sink.write(frame(1))
    sink.abort()
    assert not (tmp_path / "more").exists()


def test_null_sink_and_bad_paths(tmp_path):
    sink = open_sink(None, headless=True, fps=30)
    assert isinstance(sink, NullSink)
    sink.write(frame(0))
    assert sink.frames_written == 1 and sink.poll_key() is None
    sink.close()
    with pytest.raises(SinkError):
        sink.write(frame(0))
    with pytest.raises(SinkError, match="unsupported output"):
        open_sink(tmp_path / "out.gif", headless=True, fps=30)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(SinkError, match="not a folder"):
        open_sink(tmp_path / "afile", headless=True, fps=30)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="DISPLAY check is Linux-only")
def test_window_without_display_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    sink = open_sink(None, headless=False, fps=30)
    assert isinstance(sink, WindowSink) and sink.poll_key() is None  # lazy: nothing opened yet
    with pytest.raises(SinkError) as e:
        sink.write(frame(0))
    assert "--headless" in str(e.value) and "\n" not in str(e.value)
    out = tmp_path / "o.mp4"
    with pytest.raises(SinkError):
        with open_sink(out, headless=False, fps=30) as tee:
            assert isinstance(tee, TeeSink) and tee.path == out
            tee.write(frame(0))
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ codecs


def test_tvrun_output_mp4_is_h264_read_back(tmp_path, exported_lowlight, clip):
    """``tvrun --output x.mp4`` writes H.264 (the codec read back by OpenCV's own FFmpeg),
    and --stats names it; --output-codec mp4v keeps the old MPEG-4 Part 2 writer."""
    import json

    from click.testing import CliRunner

    from runtime.cli import main
    from runtime.encoders import video_codec

    onnx, _, _ = exported_lowlight
    for codec, want in (("auto", "h264"), ("mp4v", "mpeg4")):
        out, stats = tmp_path / f"{codec}.mp4", tmp_path / f"{codec}.json"
        r = CliRunner().invoke(main, ["--source", str(clip), "--task", "lowlight", "--onnx", str(onnx), "--headless",
                                      "--output", str(out), "--output-codec", codec, "--stats", str(stats)])
        assert r.exit_code == 0, r.output
        assert video_codec(out) == want
        cap = cv2.VideoCapture(str(out))
        n = 0
        while cap.read()[0]:
            n += 1
        cap.release()
        assert n == 9  # every frame of the clip, decodable
        assert json.loads(stats.read_text())["output_codec"] == ("h264" if codec == "auto" else "mp4v")


def test_h264_sink_odd_sizes_and_fallback(tmp_path, monkeypatch):
    from runtime import sinks
    from runtime.encoders import video_codec

    img = np.full((47, 63, 3), 100, np.uint8)  # odd: 4:2:0 cannot hold it, written as 4:4:4
    with sinks.VideoFileSink(tmp_path / "odd.mp4", 10.0) as s:
        for _ in range(3):
            s.write(img)
    assert s.codec == "h264" and video_codec(tmp_path / "odd.mp4") == "h264"
    assert sinks.count_video_frames(tmp_path / "odd.mp4") == 3
    assert sinks.resolve_codec("a.avi") == ("mjpg", "the .avi default")
    monkeypatch.setattr(sinks, "h264_available", lambda: False)
    codec, why = sinks.resolve_codec("a.mp4")
    assert codec == "mp4v" and "PyAV is not installed" in why
    with pytest.raises(sinks.SinkError, match="needs PyAV"):
        sinks.resolve_codec("a.mp4", "h264")
    with pytest.raises(sinks.SinkError, match="for video files"):
        sinks.check_output_path(str(tmp_path / "frames") + "/", "h264")
