"""Bad input and faults for ``tvrun`` (and the loop it runs): hostile graphs and engines,
bombs and truncated frames, full disks, live sources that end or stall, SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

import runtime.sinks as sinks
import runtime.sources as sources
from badinput import assert_nothing_left, assert_one_line, bomb_png, invoke, snapshot, truncated
from runtime.cli import main
from runtime.pipeline import run
from runtime.sources import SourceError, SourceSpec, VideoSource

ROOT = Path(__file__).resolve().parents[2]


def frames_in(path: Path) -> int:
    cap = cv2.VideoCapture(str(path))
    n = 0
    while cap.read()[0]:
        n += 1
    cap.release()
    return n


def hidden(folder: Path) -> list[str]:
    return [p.name for p in Path(folder).rglob(".*")]


def _tvrun(graph, source, *extra, task="lowlight"):
    return invoke(main, ["--source", source, "--task", task, "--onnx", graph, "--headless", *extra])


# ------------------------------------------------------------------ graphs and engines

def _identity_graph(path: Path, meta: dict | None = None) -> Path:
    inp = helper.make_tensor_value_info("image", TensorProto.UINT8, ["N", 111, 111, 3])
    out = helper.make_tensor_value_info("output", TensorProto.UINT8, ["N", 111, 111, 3])
    g = helper.make_graph([helper.make_node("Identity", ["image"], ["output"])], "identity", [inp], [out])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    for k, v in (meta or {}).items():
        e = m.metadata_props.add()
        e.key, e.value = k, v
    onnx.save(m, str(path))
    return path


def test_identity_graph_refused(tmp_path, clip_dir):
    g = _identity_graph(tmp_path / "id.onnx")
    assert_one_line(_tvrun(g, clip_dir, "--output", tmp_path / "o.mp4"), 2, "not a graph exported by tvexport")
    assert not (tmp_path / "o.mp4").exists() and not hidden(tmp_path)


def test_identity_graph_with_stolen_metadata_and_sidecar(tmp_path, clip_dir, graph_copy):
    """Metadata and sidecar copied from a real export onto an identity graph: the digest and
    the patch nodes give it away."""
    real = onnx.load(str(graph_copy), load_external_data=False)
    fake = _identity_graph(graph_copy, {e.key: e.value for e in real.metadata_props})
    assert_one_line(_tvrun(fake, clip_dir), 2, "changed after export")
    side = json.loads(graph_copy.with_suffix(".json").read_text())
    side["files"].pop("onnx_sha256")
    graph_copy.with_suffix(".json").write_text(json.dumps(side))
    assert_one_line(_tvrun(fake, clip_dir), 2, "patch nodes")


def test_other_tasks_graph(tmp_path, clip_dir, graph_copy):
    r = _tvrun(graph_copy, clip_dir, "--mask-rect", "1,1,10,10", task="inpainting")
    assert_one_line(r, 2, "'lowlight' graph")


def test_graph_without_sidecar(clip_dir, graph_copy):
    graph_copy.with_suffix(".json").unlink()
    assert_one_line(_tvrun(graph_copy, clip_dir), 2, "sidecar", "missing")


@pytest.mark.parametrize("key", ["task", "taskvector_fingerprint", "model_fingerprint", "site_count"])
def test_lying_sidecar(clip_dir, graph_copy, key):
    side = graph_copy.with_suffix(".json")
    info = json.loads(side.read_text())
    info[key] = "inpainting" if key == "task" else ("0" * 64 if key != "site_count" else 999)
    side.write_text(json.dumps(info))
    assert_one_line(_tvrun(graph_copy, clip_dir), 2, key)


def test_unreadable_sidecar(clip_dir, graph_copy):
    graph_copy.with_suffix(".json").write_text("{not json")
    assert_one_line(_tvrun(graph_copy, clip_dir), 2, "sidecar")


def test_graph_with_nan_constant(clip_dir, graph_copy):
    from export.check import file_sha256

    m = onnx.load(str(graph_copy))
    init = next(i for i in m.graph.initializer if i.name.startswith("tv/"))
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] = np.nan
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(m, str(graph_copy))
    side = graph_copy.with_suffix(".json")
    info = json.loads(side.read_text())
    info["files"]["onnx_sha256"] = file_sha256(graph_copy)
    side.write_text(json.dumps(info))
    assert_one_line(_tvrun(graph_copy, clip_dir), 2, "NaN/Inf")


def test_graph_not_onnx(tmp_path, clip_dir):
    (tmp_path / "g.onnx").write_bytes(os.urandom(256))
    assert_one_line(_tvrun(tmp_path / "g.onnx", clip_dir), 2, "g.onnx")


def test_graph_missing(tmp_path, clip_dir):
    assert_one_line(_tvrun(tmp_path / "none.onnx", clip_dir), 2, "does not exist")


@pytest.mark.parametrize("content", [None, b"", b"not an engine" * 10])
def test_engine_missing_or_fake(tmp_path, clip_dir, content):
    from runtime.backends import available_backends

    if "tensorrt" in available_backends():
        pytest.skip("TensorRT is here: the engine loader refuses it itself")
    eng = tmp_path / "x.engine"
    if content is not None:
        eng.write_bytes(content)
    r = invoke(main, ["--source", clip_dir, "--task", "lowlight", "--engine", eng, "--headless"])
    assert_one_line(r, 2, "engine")


# ------------------------------------------------------------------ sources: bounded, truncated

def test_source_folder_with_bomb(tmp_path, graph_copy):
    d = tmp_path / "frames"
    d.mkdir()
    bomb_png(d / "f0.png", 12000)
    assert_one_line(_tvrun(graph_copy, d, "--output", tmp_path / "o.mp4"), 2, "144.0 MP")
    assert not (tmp_path / "o.mp4").exists() and not hidden(tmp_path)


def test_source_truncated_frame_mid_run_keeps_frames(tmp_path, graph_copy, clip_dir):
    truncated(clip_dir / "f2.png", h=48, w=64)
    out = tmp_path / "o.mp4"
    r = _tvrun(graph_copy, clip_dir, "--output", out)
    msg = assert_one_line(r, 1, "truncated", "kept the 2 frames")
    assert str(out) in msg and frames_in(out) == 2 and not hidden(tmp_path)


@pytest.mark.parametrize("uri,needle", [("sample:lowlight?width=20000&height=20000", "MP"),
                                        ("sample:lowlight?frames=0", "frames=0"),
                                        ("sample:lowlight?width=-3", "frame size")])
def test_sample_options_bounded(tmp_path, graph_copy, uri, needle):
    assert_one_line(_tvrun(graph_copy, uri), 2, needle)


@pytest.mark.parametrize("kind", ["bomb", "truncated", "text"])
def test_bad_mask(tmp_path, graph_copy, clip_dir, kind):
    m = tmp_path / "mask.png"
    if kind == "bomb":
        bomb_png(m, 9000)
    elif kind == "truncated":
        truncated(m)
    else:
        m.write_text("x")
    r = invoke(main, ["--source", clip_dir, "--task", "inpainting", "--headless", "--mask", m, "--onnx", graph_copy])
    assert_one_line(r, 2, "mask")


def test_frames_zero(graph_copy, clip_dir):
    assert_one_line(_tvrun(graph_copy, clip_dir, "--frames", "0"), 2, "--frames")


def test_unsupported_output(tmp_path, graph_copy, clip_dir):
    assert_one_line(_tvrun(graph_copy, clip_dir, "--output", tmp_path / "o.gif"), 2, "unsupported output")
    assert_nothing_left(tmp_path, snapshot(tmp_path) - {"o.gif"})


# ------------------------------------------------------------------ writes that fail

def test_disk_full_mid_recording_keeps_a_playable_file(tmp_path, graph_copy, clip_dir, monkeypatch):
    calls = {"n": 0}

    def free(folder):
        calls["n"] += 1
        return 1 << 40 if calls["n"] <= 3 else 1 << 20

    monkeypatch.setattr(sinks, "free_bytes", free)
    out = tmp_path / "rec" / "o.mp4"
    msg = assert_one_line(_tvrun(graph_copy, clip_dir, "--output", out), 1, "disk full", "kept the 3 frames")
    assert frames_in(out) == 3 and not hidden(tmp_path)


def test_disk_full_image_folder_output(tmp_path, graph_copy, clip_dir, monkeypatch):
    calls = {"n": 0}

    def free(folder):
        calls["n"] += 1
        return 1 << 40 if calls["n"] <= 2 else 0

    monkeypatch.setattr(sinks, "free_bytes", free)
    out = tmp_path / "pngs"
    assert_one_line(_tvrun(graph_copy, clip_dir, "--output", f"{out}/"), 1, "disk full", "kept the 2 frames")
    assert sorted(p.name for p in out.iterdir()) == ["frame_000001.png", "frame_000002.png"]


def test_unplayable_result_is_removed(tmp_path, graph_copy, clip_dir, monkeypatch):
    """OpenCV's writer ignores write errors: a file that does not play back is not published."""
    monkeypatch.setattr(sinks, "count_video_frames", lambda path: 0)
    out = tmp_path / "o.mp4"
    assert_one_line(_tvrun(graph_copy, clip_dir, "--output", out), 1, "not playable")
    assert not out.exists() and not hidden(tmp_path)


def test_stats_write_fails(tmp_path, graph_copy, clip_dir):
    (tmp_path / "file").write_text("x")
    r = _tvrun(graph_copy, clip_dir, "--stats", tmp_path / "file" / "s.json")
    assert_one_line(r, 2, "file")
    assert not hidden(tmp_path)


def test_before_after_write_fails_disk_full(tmp_path, graph_copy, clip_dir, monkeypatch):
    import runtime.sample as S

    def full(*a, **k):
        raise OSError(28, "No space left on device", str(a[-1]))

    monkeypatch.setattr(S, "write_before_after", full)
    assert_one_line(_tvrun(graph_copy, clip_dir, "--before-after", tmp_path / "ba.png"), 1, "disk full")


# ------------------------------------------------------------------ live sources: end, stall, reconnect

class FakeLive(VideoSource):
    """A live source driven by a script: ``f`` a frame, ``x`` a failed read, ``s`` a read
    that blocks for ``block`` s and then fails (a read timeout), ``h`` a read that hangs for
    ``hang`` s. When the script runs out, reads fail (the stream is gone)."""

    def __init__(self, script: str, block: float = 0.2, hang: float = 2.0, reopen_ok: bool = True) -> None:
        super().__init__(SourceSpec("rtsp", "rtsp://cam.local/live", (), "rtsp://cam.local/live"))
        self.script, self.block, self.hang, self.reopen_ok = list(script), block, hang, reopen_ok
        self._size, self._fps, self.reopens, self.i = (64, 48), 30.0, 0, 0

    def _read_image(self):
        step = self.script.pop(0) if self.script else "x"
        if step == "s":
            time.sleep(self.block)
            return None
        if step == "h":
            time.sleep(self.hang)
            return None
        if step == "x":
            time.sleep(0.01)
            return None
        time.sleep(0.08)  # a slow camera: the loop keeps up, so no frame is dropped
        self.i += 1
        img = np.full((48, 64, 3), (self.i * 20) % 256, np.uint8)
        img[:, : self.i % 64] = 255
        return img

    def reopen(self):
        self.reopens += 1
        if not self.reopen_ok:
            raise SourceError("cannot open stream: no answer")


def _identity(image, timer):
    return image


def test_live_source_ends_keeps_frames(tmp_path):
    out = tmp_path / "o.mp4"
    with pytest.raises(SourceError, match=r"stopped delivering frames.*kept the 5 frames"):
        run(FakeLive("fffff"), _identity, headless=True, output=out, reconnect=0)
    assert frames_in(out) == 5 and not hidden(tmp_path)


def test_live_source_ends_through_tvrun(tmp_path, graph_copy, monkeypatch):
    monkeypatch.setattr(sources, "open_source", lambda uri, **kw: FakeLive("ffff"))
    out = tmp_path / "o.mp4"
    r = invoke(main, ["--source", "rtsp://cam.local/live", "--task", "lowlight", "--onnx", graph_copy, "--headless",
                      "--output", out, "--reconnect", "0"])
    assert_one_line(r, 1, "stream rtsp://cam.local/live stopped delivering frames", "kept the 4 frames")
    assert frames_in(out) == 4 and not hidden(tmp_path)


def test_stalled_stream_reconnects_with_backoff(tmp_path):
    """Reads that time out (shorter than the watchdog) are reconnected, with backoff, and counted."""
    src = FakeLive("fff" + "ss" + "fff" + "s" + "ffff", block=0.3)
    stats_path = tmp_path / "stats.json"
    t0 = time.monotonic()
    stats = run(src, _identity, headless=True, output=tmp_path / "o.mp4", frames=10, reconnect=3,
                reconnect_delay=0.05, stall_timeout=1.0, stats_path=stats_path)
    assert stats.frames == 10 and stats.reconnects == 3 and src.reopens == 3
    assert json.loads(stats_path.read_text())["reconnects"] == 3
    assert time.monotonic() - t0 >= 0.05 + 0.1 + 0.05  # 1×, 2× then (reset after frames) 1× the delay
    assert frames_in(tmp_path / "o.mp4") == 10


def test_stalled_stream_out_of_reconnects(tmp_path):
    src = FakeLive("ff" + "s" * 10, block=0.05)
    with pytest.raises(SourceError, match=r"after 2 reconnect\(s\).*kept the 2 frames"):
        run(src, _identity, headless=True, output=tmp_path / "o.mp4", reconnect=2, reconnect_delay=0.01,
            stall_timeout=1.0)
    assert frames_in(tmp_path / "o.mp4") == 2 and not hidden(tmp_path)


def test_hung_read_hits_the_watchdog_and_keeps_frames(tmp_path):
    src = FakeLive("fff" + "h", hang=1.5)
    with pytest.raises(SourceError, match=r"no frame for 0.5 s.*kept the 3 frames"):
        run(src, _identity, headless=True, output=tmp_path / "o.mp4", reconnect=0, stall_timeout=0.5)
    assert frames_in(tmp_path / "o.mp4") == 3


def test_rtsp_read_timeout_is_shorter_than_the_watchdog():
    import inspect

    from runtime.sources import ThreadedCapture

    watchdog = inspect.signature(ThreadedCapture).parameters["stall_timeout"].default
    assert sources.READ_TIMEOUT_MS / 1000 < watchdog


def test_sigterm_keeps_a_playable_recording(tmp_path, graph_copy):
    """SIGTERM is handled like Ctrl-C: the recording is finalised, no hidden file is left."""
    out = tmp_path / "rec.mp4"
    proc = subprocess.Popen([sys.executable, "-m", "runtime.cli", "--source", "sample:lowlight?frames=30&width=160&height=120",
                             "--loop", "--task", "lowlight", "--onnx", str(graph_copy), "--headless",
                             "--output", str(out)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline and proc.poll() is None:
        parts = [p for p in tmp_path.iterdir() if p.name.startswith(".rec.") and p.stat().st_size > 20000]
        if parts:
            break
        time.sleep(0.2)
    assert proc.poll() is None, proc.communicate()
    proc.send_signal(signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr and "stopped by interrupt" in stderr
    assert frames_in(out) > 0 and not hidden(tmp_path)
