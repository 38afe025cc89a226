"""runtime.sources (uri, gstreamer, capture, factory, threaded): parsing, GStreamer strings,
folder/file sources, ThreadedCapture."""

from __future__ import annotations

import os
import sys
import threading
import time
import types
from pathlib import Path

import cv2
import numpy as np
import pytest

from runtime import sources
from runtime.sources import (
    Frame,
    SourceError,
    SourceSpec,
    ThreadedCapture,
    VideoSource,
    gstreamer_pipeline,
    open_source,
    parse_source,
)


def write_video(path: Path, n: int, size=(64, 48), fps: float = 10.0) -> Path:
    w, h = size
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    assert writer.isOpened()
    for i in range(n):
        writer.write(np.full((h, w, 3), 10 + 15 * i, np.uint8))
    writer.release()
    return path


def assert_one_line(err: BaseException) -> str:
    text = str(err)
    assert text and "\n" not in text
    return text


# --------------------------------------------------------------------------- parsing

@pytest.mark.parametrize(
    "uri, kind, location",
    [
        ("0", "v4l2", "/dev/video0"),
        ("3", "v4l2", "/dev/video3"),
        ("/dev/video0", "v4l2", "/dev/video0"),
        ("v4l2:///dev/video1", "v4l2", "/dev/video1"),
        ("v4l2://2", "v4l2", "/dev/video2"),
        ("csi://0", "csi", "0"),
        ("csi://1", "csi", "1"),
        ("clip.mp4", "file", "clip.mp4"),
        ("file://clip.mkv", "file", "clip.mkv"),
        ("frames/*.png", "images", "frames/*.png"),
        ("one.jpg", "images", "one.jpg"),
        ("rtsp://user:pw@cam.local:8554/live?x=1", "rtsp", "rtsp://user:pw@cam.local:8554/live?x=1"),
        ("sample:lowlight", "sample", "lowlight"),
        ("sample:inpainting", "sample", "inpainting"),
    ],
)
def test_parse_source_forms(uri, kind, location):
    spec = parse_source(uri)
    assert (spec.kind, spec.location) == (kind, location)
    assert spec.uri == uri
    assert spec.is_live == (kind in {"v4l2", "csi", "rtsp"})


def test_parse_source_folder_and_options(tmp_path):
    assert parse_source(str(tmp_path)) == SourceSpec("images", str(tmp_path), (), str(tmp_path))
    spec = parse_source("csi://1?width=1920&height=1080&flip=2")
    assert spec.device_index == 1
    assert spec.option("width") == "1920" and spec.int_option("height", 0) == 1080
    assert spec.int_option("fps", 30) == 30
    assert parse_source("sample:inpainting?frames=10").int_option("frames", 120) == 10
    assert parse_source("/dev/video7").device_index == 7
    assert parse_source(0).location == "/dev/video0"
    with pytest.raises(SourceError):
        parse_source("csi://0?width=wide").int_option("width", 1)


@pytest.mark.parametrize("uri", ["", "   ", "csi://left", "http://example.com/a.mp4", "sample:", "v4l2://cam"])
def test_parse_source_rejects(uri):
    with pytest.raises(SourceError) as e:
        parse_source(uri)
    assert_one_line(e.value)


def test_describe_redacts_credentials():
    spec = parse_source("rtsp://admin:secret@10.0.0.5:554/h264")
    assert "secret" not in spec.describe() and "10.0.0.5" in spec.describe()


# --------------------------------------------------------------------------- GStreamer

def test_csi_pipeline_elements():
    p = gstreamer_pipeline(parse_source("csi://1"))
    assert p.startswith("nvarguscamerasrc sensor-id=1 ! ")
    assert "video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1" in p
    assert "nvvidconv flip-method=0" in p
    assert "video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR" in p
    assert p.endswith("appsink drop=1 max-buffers=1")
    p = gstreamer_pipeline(parse_source("csi://0?width=1920&height=1080&fps=60&flip=2"))
    assert "width=1920,height=1080,framerate=60/1" in p and "flip-method=2" in p
    p = gstreamer_pipeline(parse_source("csi://0?width=1920"), width=640, height=480, fps=15, flip=4)
    assert "width=640,height=480,framerate=15/1" in p and "flip-method=4" in p
    with pytest.raises(SourceError):
        gstreamer_pipeline(parse_source("csi://0"), flip=9)


def test_rtsp_pipeline_elements():
    """On Jetson (the only place rtsp goes through GStreamer): the hardware decoder."""
    url = "rtsp://cam.local:8554/live"
    p = gstreamer_pipeline(parse_source(url), latency=50, jetson=True)
    for part in (f'rtspsrc location="{url}" latency=50', "rtph264depay", "h264parse", "nvv4l2decoder",
                 "nvvidconv", "videoconvert", "appsink drop=1 max-buffers=1"):
        assert part in p
    assert "latency=200" in gstreamer_pipeline(parse_source(url))
    p265 = gstreamer_pipeline(parse_source(url), codec="h265", jetson=True)
    assert "rtph265depay ! h265parse ! nvv4l2decoder" in p265
    with pytest.raises(SourceError):
        gstreamer_pipeline(parse_source("clip.mp4"))


def test_gstreamer_build_info_parsing():
    yes = "  Video I/O:\n    FFMPEG:   YES\n    GStreamer:                   YES (1.20.3)\n"
    no = "  Video I/O:\n    FFMPEG:   YES\n    GStreamer:                   NO\n"
    assert sources.build_info_has_gstreamer(yes) is True
    assert sources.build_info_has_gstreamer(no) is False
    assert sources.build_info_has_gstreamer("") is False
    assert sources.opencv_has_gstreamer() == sources.build_info_has_gstreamer(cv2.getBuildInformation())


# --------------------------------------------------------------------------- opening

def test_image_folder_natural_order_then_none(tmp_path):
    for i in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"frame_{i}.png"), np.full((24, 32, 3), i * 20, np.uint8))
    cv2.imwrite(str(tmp_path / "grey_99.png"), np.full((24, 32), 7, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    with open_source(f"file://{tmp_path}?fps=5") as src:
        assert src.size == (32, 24) and src.fps == 5 and not src.is_live
        frames = [src.read() for _ in range(4)]
        assert src.read() is None
    assert [f.index for f in frames] == [0, 1, 2, 3]
    assert [int(f.image[0, 0, 0]) for f in frames] == [20, 40, 200, 7]  # frame_1, frame_2, frame_10, grey_99
    assert all(f.image.shape == (24, 32, 3) and f.image.dtype == np.uint8 for f in frames)
    assert frames[2].timestamp == pytest.approx(2 / 5)


def test_empty_or_missing_folder(tmp_path):
    with pytest.raises(SourceError, match="no images"):
        open_source(str(tmp_path))
    with pytest.raises(SourceError) as e:
        open_source(str(tmp_path / "nope" / "*.png"))
    assert_one_line(e.value)


def test_video_file_every_frame_through_threaded_capture(tmp_path):
    path = write_video(tmp_path / "clip.mp4", 12)
    src = open_source(str(path))
    assert src.size == (64, 48) and src.fps == pytest.approx(10.0) and not src.is_live
    assert src.frame_count == 12
    with ThreadedCapture(src, queue_size=2) as cap:
        assert cap.drop_frames is False
        frames = []
        while (f := cap.get(timeout=5)) is not None:
            time.sleep(0.002)  # a slow consumer must not lose file frames
            frames.append(f)
        assert cap.get() is None
        assert cap.dropped == 0 and cap.delivered == 12
    assert [f.index for f in frames] == list(range(12))
    means = [float(f.image.mean()) for f in frames]
    assert means == sorted(means) and means[-1] - means[0] > 100
    assert src.closed


@pytest.mark.parametrize("uri, needle", [("missing.mp4", "no such file"), ("/dev/video57", "no such device")])
def test_missing_file_or_camera(tmp_path, uri, needle):
    if uri.startswith("/dev/") and (not sys.platform.startswith("linux") or os.path.exists(uri)):
        pytest.skip("needs Linux without /dev/video57")
    uri = str(tmp_path / uri) if not uri.startswith("/dev/") else uri
    with pytest.raises(SourceError) as e:
        open_source(uri)
    text = assert_one_line(e.value)
    assert needle in text
    if needle == "no such device":
        assert "camera 57 (/dev/video57)" in text and "v4l2-ctl --list-devices" in text


def test_undecodable_file(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(os.urandom(2048))
    with pytest.raises(SourceError) as e:
        open_source(str(bad))
    assert "bad.mp4" in assert_one_line(e.value)


def test_csi_without_gstreamer_says_so(monkeypatch):
    monkeypatch.setattr(sources.gstreamer, "opencv_has_gstreamer", lambda: False)  # the owning module
    with pytest.raises(SourceError) as e:
        open_source("csi://0")
    text = assert_one_line(e.value)
    assert "without GStreamer" in text and "python3-opencv" in text


def test_sample_source_uses_generator_lazily(tmp_path, monkeypatch):
    calls = []

    def cached_sample_clip(task, frames=120, size=(640, 480), cache_dir=None):
        if task not in ("lowlight", "inpainting"):
            raise ValueError(f"unknown task {task!r}")
        calls.append((task, frames, size, cache_dir))
        return write_video(Path(cache_dir) / f"{task}.mp4", frames, size), False

    monkeypatch.setitem(sys.modules, "runtime.sample", types.SimpleNamespace(cached_sample_clip=cached_sample_clip))
    src = open_source("sample:lowlight?frames=5&width=32&height=24", cache_dir=tmp_path)
    assert calls == [("lowlight", 5, (32, 24), tmp_path)] and src.size == (32, 24) and not src.is_live
    assert len(list(src)) == 5
    src.close()
    assert (tmp_path / "lowlight.mp4").is_file()  # the cache keeps the clip for the next run
    with pytest.raises(SourceError, match="unknown task"):
        open_source("sample:nope", cache_dir=tmp_path)


# --------------------------------------------------------------------------- ThreadedCapture with fakes

class FakeLive(VideoSource):
    """A live source: ``delay`` s per read, blocks forever (until ``release``) after ``stall_after``
    frames, returns None after ``end_after`` frames."""

    def __init__(self, delay=0.001, stall_after=None, end_after=None):
        super().__init__(SourceSpec("v4l2", "/dev/video9"))
        self.delay, self.stall_after, self.end_after = delay, stall_after, end_after
        self.release = threading.Event()
        self.n = 0
        self.reopened = 0

    size = property(lambda self: (8, 8))
    fps = property(lambda self: 30.0)

    def _read_image(self):
        if self.stall_after is not None and self.n >= self.stall_after:
            self.release.wait(10)
            return None
        if self.end_after is not None and self.n >= self.end_after:
            return None
        time.sleep(self.delay)
        self.n += 1
        return np.zeros((8, 8, 3), np.uint8)

    def reopen(self):  # the first reconnect brings 3 more frames, later ones bring none
        self.reopened += 1
        if self.reopened == 1:
            self.end_after = (self.end_after or 0) + 3


def test_stalled_live_source_raises_without_hanging():
    src = FakeLive(stall_after=2)
    cap = ThreadedCapture(src, stall_timeout=0.3, join_timeout=0.2)
    try:
        t0 = time.monotonic()
        got = 0
        with pytest.raises(SourceError) as e:
            while True:
                assert cap.get() is not None
                got += 1
        assert time.monotonic() - t0 < 2.0
        assert got >= 1 and "stopped delivering frames" in assert_one_line(e.value)
        with pytest.raises(SourceError):  # stays failed
            cap.get(timeout=0.1)
    finally:
        src.release.set()
        cap.close()


def test_live_source_keeps_newest_and_counts_drops():
    src = FakeLive(delay=0.001, end_after=200)
    with ThreadedCapture(src, stall_timeout=2.0) as cap:
        assert cap.drop_frames is True
        indices = []
        for _ in range(5):
            f = cap.get(timeout=2)
            indices.append(f.index)
            time.sleep(0.03)
        assert indices == sorted(indices) and len(set(indices)) == 5
        assert indices[-1] - indices[0] > 4  # frames were skipped, not queued
        assert cap.dropped > 0


def test_live_source_end_is_an_error_and_reconnect_is_bounded():
    with ThreadedCapture(FakeLive(end_after=2), stall_timeout=2.0, drop_frames=False) as cap:
        assert [cap.get(1).index, cap.get(1).index] == [0, 1]
        with pytest.raises(SourceError, match="stopped delivering"):
            cap.get(1)
    src = FakeLive(end_after=2)
    with ThreadedCapture(src, stall_timeout=2.0, drop_frames=False, reconnect=2, reconnect_delay=0.01) as cap:
        got = []
        with pytest.raises(SourceError, match="after .* reconnect"):
            while True:
                got.append(cap.get(2).index)
        # 2 frames, reconnect, 3 frames (the retry budget resets), then 2 failed reconnects
        assert got == list(range(5)) and cap.reconnects == 3 and src.reopened == 3


def test_get_timeout_on_slow_but_healthy_source():
    src = FakeLive(delay=0.5, end_after=1)
    with ThreadedCapture(src, stall_timeout=5.0, join_timeout=1.0) as cap:
        with pytest.raises(TimeoutError):
            cap.get(timeout=0.05)


def test_read_error_after_frames_is_reported_after_them(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"{i}.png"), np.zeros((4, 4, 3), np.uint8))
    src = open_source(str(tmp_path))
    (tmp_path / "1.png").write_bytes(b"garbage")
    with ThreadedCapture(src) as cap:
        assert cap.get(2).index == 0
        with pytest.raises(SourceError, match="cannot read image"):
            cap.get(2)


def test_frame_is_a_plain_dataclass():
    f = Frame(np.zeros((2, 2, 3), np.uint8), 3, 0.1, 1.5)
    assert (f.index, f.timestamp, f.capture_ms) == (3, 0.1, 1.5)
