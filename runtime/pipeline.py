"""The live loop: source → predictor → sink, timed per stage (jetson-inference style).

    stats = run("sample:lowlight", predictor, backend_name=backend.name, headless=True,
                output="out/demo.mp4", stats_path="out/stats.json")

Capture runs on its own thread (:class:`~runtime.sources.ThreadedCapture`): the newest
frame for live sources (older ones count as ``dropped``), every frame for files. Stages,
in milliseconds: ``capture`` (the source's read, on the capture thread), ``wait`` (the loop
blocked waiting for a frame), ``preprocess``/``infer``/``postprocess`` (the predictor),
``output`` (overlay, window and file writes, key polling). The FPS overlay goes to the
window; files get it only with ``overlay=True``.

End of stream, ``frames`` reached, Esc/q in the window, Ctrl-C or SIGTERM end the run
cleanly: the output file is finalised and the stats written. A source that fails, ends
(a live stream out of reconnects) or stalls, and a write that fails (a full disk), raise
:class:`~runtime.sources.SourceError` / :class:`~runtime.sinks.SinkError` (one line) after
the output file was finalised with the frames so far — the message says how many were
kept — or removed when none could be kept. No hidden temporary file is left.
"""

from __future__ import annotations

import json
import os
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from runtime.sinks import QUIT_KEYS, Sink, SinkError, WindowSink, open_sink
from runtime.sources import (CaptureSource, ImageFolderSource, SourceError, SourceSpec, ThreadedCapture, VideoSource,
                             open_source)
from runtime.timing import StageTimer, draw_overlay
from taskvec.errors import atomic_path

STAGES = ("capture", "preprocess", "infer", "postprocess", "output")


def rss_mb() -> float:
    """Resident set size of this process in MiB (psutil)."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


@dataclass
class Stats:
    """What ``run`` returns and ``--stats`` writes (JSON)."""

    frames: int
    dropped: int
    fps: float
    backend: str
    source: str
    resolution: list[int]  # [width, height] of the source frames
    stages_ms: dict[str, dict[str, float]]
    rss_mb: dict[str, float]
    wall_s: float = 0.0
    output: str | None = None
    stopped_by: str = "end of stream"  # "end of stream" | "frame limit" | "key" | "interrupt"
    reconnects: int = 0  # live sources: times the source was reopened after a failed or stalled read
    output_codec: str | None = None  # the video file's codec ("h264", "mp4v", "mjpg"), None for no video file
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)

    def summary_line(self) -> str:
        p50 = " ".join(f"{k} {self.stages_ms[k]['p50']:.1f}" for k in STAGES if k in self.stages_ms)
        return (
            f"{self.frames} frames, {self.fps:.1f} FPS, {self.dropped} dropped, backend {self.backend}, "
            f"{self.resolution[0]}x{self.resolution[1]}; p50 ms: {p50}"
            + (f"; wrote {self.output}" + (f" ({self.output_codec})" if self.output_codec else "") if self.output else "")
        )


def write_stats(stats: Stats, path: str | os.PathLike[str]) -> Path:
    path = Path(path)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(stats.to_dict(), indent=2) + "\n")
    return path


class LoopSource(VideoSource):
    """Replay a file or image folder forever (soak tests, kiosk demos); frame indices keep counting."""

    def __init__(self, inner: VideoSource) -> None:
        super().__init__(inner.spec)
        self.inner = inner
        self.loops = 0

    @property
    def size(self) -> tuple[int, int]:
        return self.inner.size

    @property
    def fps(self) -> float:
        return self.inner.fps

    def _rewind(self) -> None:
        if isinstance(self.inner, ImageFolderSource):
            self.inner._pos = 0
        elif isinstance(self.inner, CaptureSource):
            self.inner.reopen()
        else:
            self.inner.reopen()
        self.loops += 1

    def _read_image(self) -> np.ndarray | None:
        image = self.inner._read_image()
        if image is None:
            self._rewind()
            image = self.inner._read_image()
        return image

    def close(self) -> None:
        self.inner.close()
        super().close()


class MaskPainter:
    """Draw an in-painting hole with the mouse: left button paints (``brush`` px radius),
    right button clears. ``mask`` is uint8 HxW (255 = hole); ``version`` counts edits."""

    def __init__(self, size: tuple[int, int], brush: int = 12, mask: np.ndarray | None = None) -> None:
        w, h = size
        self.mask = mask.copy() if mask is not None else np.zeros((h, w), np.uint8)
        self.brush = brush
        self.version = 0
        self._last: tuple[int, int] | None = None

    def on_mouse(self, event: int, x: int, y: int, flags: int, param: object = None) -> None:
        """cv2.setMouseCallback handler: strokes follow the pointer while the left button is down."""
        pt = (int(x), int(y))
        if event == cv2.EVENT_RBUTTONDOWN:
            self.mask[:] = 0
            self.version += 1
            return
        if event == cv2.EVENT_LBUTTONDOWN:
            self._last = pt
        elif event == cv2.EVENT_LBUTTONUP:
            self._last = None
            return
        elif event != cv2.EVENT_MOUSEMOVE or self._last is None:
            return
        cv2.line(self.mask, self._last, pt, 255, 2 * self.brush + 1)
        cv2.circle(self.mask, pt, self.brush, 255, -1)
        self._last = pt
        self.version += 1


def _window_of(sink: Sink) -> WindowSink | None:
    if isinstance(sink, WindowSink):
        return sink
    for s in getattr(sink, "sinks", ()):
        if isinstance(s, WindowSink):
            return s
    return None


def _keep_partial(sink: Sink | None, output, frames: int) -> str:
    """After a failure mid-run: finalise ``sink`` with the frames written so far (a playable
    file) → what to tell the user; an output that cannot be finalised is removed."""
    if sink is None or output is None:
        return "no output file"
    written = sink.frames_written
    if written == 0:
        sink.abort()
        return f"nothing was written to {output}"
    try:
        sink.close()
    except (SinkError, OSError) as e:
        sink.abort()
        return f"{output} could not be finalised and was removed ({e})"
    return f"kept the {written} frames written so far in {output}"


def run(
    source: str | int | SourceSpec | VideoSource,
    predictor: Callable,
    *,
    backend_name: str = "",
    output: str | os.PathLike[str] | None = None,
    headless: bool = False,
    overlay: bool = False,
    frames: int | None = None,
    stats_path: str | os.PathLike[str] | None = None,
    before_after: str | os.PathLike[str] | None = None,
    loop: bool = False,
    stall_timeout: float = 5.0,
    reconnect: int = 0,
    reconnect_delay: float = 1.0,
    paint_masks: bool = False,
    on_frame: Callable[[int, np.ndarray, np.ndarray], None] | None = None,
    extra: dict | None = None,
    progress: bool = False,
    output_codec: str = "auto",
) -> Stats:
    """Run ``predictor`` (``predictor(image, timer) -> image``) over ``source`` until it ends.

    ``frames``: stop after this many. ``reconnect``: live sources are reopened this many
    times in a row after a failed or stalled read, ``reconnect_delay`` · 1, 2, 4, 8 s apart. ``before_after``: write a side-by-side PNG of one frame
    (the middle one when the length is known, else the 30th). ``paint_masks``: in the window,
    draw the in-painting hole with the mouse (the predictor's ``set_mask`` receives it).
    ``on_frame(i, input, output)`` is called for every processed frame (tests, metrics).
    ``extra``: a dict copied into ``Stats.extra`` at the end (what the caller adds meanwhile counts).
    ``progress``: a progress bar on stderr (frames done, FPS, time left) when the length is known
    (``frames``, or a file's frame count); headless tvrun turns it on. ``output_codec``: the
    video file's codec (``runtime.sinks.resolve_codec``: auto = H.264 where PyAV is installed).
    Raises SourceError / SinkError with a one-line message.
    """
    if frames is not None and frames <= 0:
        raise ValueError(f"--frames must be positive, got {frames}")
    rss_start = rss_mb()
    timer = StageTimer(max_samples=20000)
    stopped_by = "end of stream"
    n = 0
    pair: tuple[np.ndarray, np.ndarray] | None = None
    with ExitStack() as stack:
        src = source if isinstance(source, VideoSource) else open_source(source)
        stack.callback(src.close)
        if loop:
            src = LoopSource(src)
        w, h = src.size
        known = getattr(src, "frame_count", None) if not loop else None
        length = min(x for x in (frames, known) if x) if (frames or known) else None
        pair_at = length // 2 if length else 30
        file_sink = open_sink(output, True, src.fps, codec=output_codec) if output is not None else None
        window = open_sink(None, False, src.fps) if not headless else None
        for s in (file_sink, window):
            if s is not None:
                stack.enter_context(s)  # closed on success, aborted on an exception
        cap = stack.enter_context(ThreadedCapture(src, stall_timeout=stall_timeout, reconnect=reconnect,
                                                  reconnect_delay=reconnect_delay, close_source=False))
        painter: MaskPainter | None = None
        painter_seen = -1
        bar = None
        if progress and length:
            from tqdm import tqdm

            bar = stack.enter_context(tqdm(total=length, desc="tvrun", unit="frame", mininterval=0.5,
                                           dynamic_ncols=True))
        t_start = time.perf_counter()
        try:
            while frames is None or n < frames:
                with timer.stage("wait"):
                    frame = cap.get()
                if frame is None:
                    break
                timer.record("capture", frame.capture_ms)
                if painter is not None and painter.version != painter_seen and hasattr(predictor, "set_mask"):
                    predictor.set_mask(painter.mask.copy())
                    painter_seen = painter.version
                out = predictor(frame.image, timer)
                with timer.stage("output"):
                    if file_sink is not None:
                        file_sink.write(draw_overlay(out, timer.fps(30), timer.last_ms(), backend_name, copy=True)
                                        if overlay else out)
                    key = None
                    if window is not None:
                        window.write(draw_overlay(out, timer.fps(30), timer.last_ms(), backend_name, copy=True))
                        if paint_masks and painter is None:
                            mask = getattr(predictor, "mask", None)
                            painter = MaskPainter((w, h), mask=mask if mask is not None and mask.shape == (h, w) else None)
                            painter_seen = painter.version
                            cv2.setMouseCallback(_window_of(window).title, painter.on_mouse)
                        key = window.poll_key(1)
                if on_frame is not None:
                    on_frame(n, frame.image, out)
                if before_after is not None and (pair is None or n <= pair_at):
                    pair = (frame.image, out)
                n += 1
                timer.tick()
                if bar is not None:
                    bar.update(1)
                if key is not None and key in QUIT_KEYS:
                    stopped_by = "key"
                    break
            else:
                stopped_by = "frame limit"
        except KeyboardInterrupt:
            stopped_by = "interrupt"
        except (SourceError, SinkError) as e:
            raise type(e)(f"{e}; {_keep_partial(file_sink, output, n)}") from None
        wall = time.perf_counter() - t_start
        dropped = cap.dropped
        reconnects = cap.reconnects
    if pair is not None and before_after is not None:
        from runtime.sample import write_before_after

        hole = getattr(predictor, "mask", None)  # in-painting: the hole, outlined on the panel
        write_before_after(pair[0], pair[1], before_after, hole=hole if isinstance(hole, np.ndarray) else None)
    stages = timer.summary()
    stats = Stats(
        frames=n,
        dropped=dropped,
        fps=n / wall if wall > 0 else 0.0,
        backend=backend_name,
        source=src.spec.describe() if hasattr(src, "spec") else str(source),
        resolution=[int(w), int(h)],
        stages_ms={k: stages[k] for k in (*STAGES, "wait") if k in stages},
        rss_mb={"start": round(rss_start, 1), "end": round(rss_mb(), 1)},
        wall_s=round(wall, 3),
        output=str(output) if output is not None and n > 0 else None,
        stopped_by=stopped_by,
        reconnects=reconnects,
        output_codec=getattr(file_sink, "codec", None) if n > 0 else None,
        extra=dict(extra or {}),
    )
    if stats_path is not None:
        write_stats(stats, stats_path)
    return stats
