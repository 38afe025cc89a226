"""Per-stage timing and the FPS overlay.

    timer = StageTimer()
    with timer.stage("capture"): frame = cap.get()
    with timer.stage("infer"):   out = predictor(frame.image)
    timer.tick()                                  # one frame done
    timer.summary()  # {"capture": {"p50": ms, "p90": ms, "p99": ms, "mean": ms}, "infer": {...}}
    draw_overlay(out, timer.fps(window=30), timer.last_ms(), "onnxruntime:CUDA")
"""

from __future__ import annotations

import time
from collections import deque
from contextlib import contextmanager
from typing import Iterator, Mapping

import cv2
import numpy as np


class StageTimer:
    """Milliseconds per named stage, kept in order of first use, plus frame ticks for FPS.

    ``max_samples`` bounds the memory of each stage (the newest are kept); None keeps all.
    """

    def __init__(self, max_samples: int | None = None, clock=time.perf_counter) -> None:
        self.max_samples = max_samples
        self._clock = clock
        self._samples: dict[str, deque[float]] = {}
        self._ticks: deque[float] = deque(maxlen=max_samples + 1 if max_samples else None)
        self._frames = 0
        self._t0: float | None = None

    def _start(self) -> float:
        now = self._clock()
        if self._t0 is None:
            self._t0 = now
        return now

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the ``with`` body as one sample of ``name`` (recorded even if it raises)."""
        t = self._start()
        try:
            yield
        finally:
            self.record(name, (self._clock() - t) * 1e3)

    def record(self, name: str, ms: float) -> None:
        """Add a duration measured elsewhere (e.g. ``Frame.capture_ms``)."""
        if self._t0 is None:
            self._t0 = self._clock() - ms / 1e3
        if name not in self._samples:
            self._samples[name] = deque(maxlen=self.max_samples)
        self._samples[name].append(float(ms))

    def tick(self) -> None:
        """Mark one frame as finished (for FPS)."""
        now = self._start()
        self._ticks.append(now)
        self._frames += 1

    @property
    def frames(self) -> int:
        return self._frames

    @property
    def wall_s(self) -> float:
        """Seconds from the first stage or tick to the last tick."""
        if self._t0 is None or not self._ticks:
            return 0.0
        return self._ticks[-1] - self._t0

    def fps(self, window: int | None = None) -> float:
        """Frames per second over the whole run, or over the last ``window`` frames."""
        if window is None:
            return self._frames / self.wall_s if self.wall_s > 0 else 0.0
        ticks = list(self._ticks)[-(window + 1):]
        if len(ticks) < 2:
            return self.fps()
        span = ticks[-1] - ticks[0]
        return (len(ticks) - 1) / span if span > 0 else 0.0

    def samples(self, name: str) -> list[float]:
        return list(self._samples.get(name, ()))

    def last_ms(self) -> dict[str, float]:
        """Latest duration of each stage (for the overlay)."""
        return {name: s[-1] for name, s in self._samples.items() if s}

    def summary(self) -> dict[str, dict[str, float]]:
        """{stage: {"p50", "p90", "p99", "mean"}} in milliseconds (numpy linear percentiles)."""
        out: dict[str, dict[str, float]] = {}
        for name, s in self._samples.items():
            if not s:
                continue
            a = np.asarray(s, dtype=np.float64)
            p50, p90, p99 = np.percentile(a, [50, 90, 99])
            out[name] = {"p50": float(p50), "p90": float(p90), "p99": float(p99), "mean": float(a.mean())}
        return out

    def report(self) -> dict[str, object]:
        """JSON-ready: frames, wall_s, fps and the per-stage summary."""
        return {"frames": self._frames, "wall_s": self.wall_s, "fps": self.fps(), "stages_ms": self.summary()}


def draw_overlay(
    image: np.ndarray,
    fps: float,
    stages_ms: Mapping[str, float],
    backend: str,
    copy: bool = False,
) -> np.ndarray:
    """Draw a small translucent box with FPS, backend and per-stage milliseconds at the top
    left of an HxWx3 uint8 BGR image. Draws in place and returns the image (``copy=True``
    draws on a copy). Text scales with the image height, so a 111x111 frame works too."""
    out = image.copy() if copy else image
    h, w = out.shape[:2]
    lines = [f"{fps:5.1f} FPS  {backend}"] + [f"{name:<8} {ms:6.1f} ms" for name, ms in stages_ms.items()]
    scale = max(0.3, min(0.6, h / 1000.0))
    thickness = 1
    font = cv2.FONT_HERSHEY_SIMPLEX
    sizes = [cv2.getTextSize(line, font, scale, thickness)[0] for line in lines]
    line_h = max(sz[1] for sz in sizes) + max(3, int(8 * scale))
    pad = max(2, int(6 * scale))
    box_w = min(w, max(sz[0] for sz in sizes) + 2 * pad)
    box_h = min(h, line_h * len(lines) + pad)
    roi = out[:box_h, :box_w]
    roi[:] = (roi.astype(np.uint16) * 2 // 5).astype(np.uint8)  # darken to 40 %
    for i, line in enumerate(lines):
        y = pad + line_h * (i + 1) - (line_h - sizes[i][1]) // 2
        cv2.putText(out, line, (pad, y), font, scale, (255, 255, 255), thickness, cv2.LINE_AA)
    return out
