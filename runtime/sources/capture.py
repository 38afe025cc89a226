"""Capture classes: :class:`VideoSource` (``read()`` → :class:`Frame`), the
``cv2.VideoCapture`` source for cameras, streams and files, and the image-folder source."""

from __future__ import annotations

import os
import re
import shutil
import sys
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from runtime.sources import gstreamer
from runtime.sources.uri import IMAGE_EXTENSIONS, SourceError, SourceSpec

# A stalled stream must end its read (and be reconnected) before the capture watchdog
# (ThreadedCapture.stall_timeout, 5 s by default) declares the source dead.
READ_TIMEOUT_MS = 2000
OPEN_TIMEOUT_MS = 5000


@dataclass
class Frame:
    """One captured frame.

    image: HxWx3 uint8 BGR. index: 0-based count of frames read from the source (gaps mean
    drops). timestamp: seconds — media time for files and folders, time since opening for
    live sources. capture_ms: time spent inside the source's read.
    """

    image: np.ndarray
    index: int
    timestamp: float
    capture_ms: float


class VideoSource(ABC):
    """Base class: ``read()`` → :class:`Frame` or None at the end; a context manager."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.closed = False
        self._index = 0
        self._t_open = time.monotonic()

    _size: tuple[int, int] = (0, 0)
    _fps: float = 30.0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the frames."""
        return self._size

    @property
    def fps(self) -> float:
        """Nominal frame rate (the container's, the camera's, or the ?fps= option)."""
        return self._fps

    @property
    def is_live(self) -> bool:
        return self.spec.is_live

    @abstractmethod
    def _read_image(self) -> np.ndarray | None:
        """Next image (any 8-bit layout) or None at the end."""

    def read(self) -> Frame | None:
        if self.closed:
            return None
        t0 = time.perf_counter()
        image = self._read_image()
        if image is None:
            return None
        image = _as_bgr(image)
        capture_ms = (time.perf_counter() - t0) * 1e3
        ts = time.monotonic() - self._t_open if self.is_live else self._index / max(self.fps, 1e-6)
        frame = Frame(image, self._index, ts, capture_ms)
        self._index += 1
        return frame

    def reopen(self) -> None:
        """Close and open again (for reconnecting live sources)."""
        raise SourceError(f"{self.spec.describe()} cannot be reopened")

    def close(self) -> None:
        self.closed = True

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.read()) is not None:
            yield frame

    def __enter__(self) -> "VideoSource":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _as_bgr(image: np.ndarray) -> np.ndarray:
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return image


def _open_capture(spec: SourceSpec) -> cv2.VideoCapture:
    name = spec.describe()
    if spec.kind == "v4l2":
        idx = spec.device_index
        linux = sys.platform.startswith("linux")
        if linux and not os.path.exists(spec.location):
            raise SourceError(f"cannot open {name}: no such device — is it plugged in? try `v4l2-ctl --list-devices`")
        if linux:
            cap = cv2.VideoCapture(idx if idx is not None else spec.location, cv2.CAP_V4L2)
        else:
            cap = cv2.VideoCapture(idx if idx is not None else 0)
        if not cap.isOpened():
            raise SourceError(
                f"cannot open {name}: the device exists but will not open — is another program using it? "
                f"are you in the video group? try `v4l2-ctl --list-formats-ext -d {spec.location}`"
            )
        fourcc = spec.option("fourcc")
        if fourcc:
            cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter_fourcc(*fourcc[:4].ljust(4)))
        for prop, key in ((cv2.CAP_PROP_FRAME_WIDTH, "width"), (cv2.CAP_PROP_FRAME_HEIGHT, "height"), (cv2.CAP_PROP_FPS, "fps")):
            if spec.option(key) is not None:
                cap.set(prop, spec.int_option(key, 0))
        return cap
    if spec.kind == "csi":
        if not gstreamer.opencv_has_gstreamer():
            raise SourceError(gstreamer.NO_GSTREAMER.format(what="csi://"))
        cap = cv2.VideoCapture(gstreamer.gstreamer_pipeline(spec), cv2.CAP_GSTREAMER)
        if not cap.isOpened():
            raise SourceError(
                f"cannot open {name}: nvarguscamerasrc failed — is the ribbon cable seated and the sensor id right? "
                "try `sudo systemctl restart nvargus-daemon`"
            )
        return cap
    if spec.kind == "rtp":
        return _open_rtp(spec, name)
    if spec.kind == "rtsp":
        if gstreamer.opencv_has_gstreamer() and gstreamer.is_jetson():
            cap = cv2.VideoCapture(gstreamer.gstreamer_pipeline(spec), cv2.CAP_GSTREAMER)
        else:
            cap = cv2.VideoCapture(spec.location, cv2.CAP_FFMPEG, _ffmpeg_timeouts())
        if not cap.isOpened():
            raise SourceError(f"cannot open {name}: no answer — check the address, the credentials and the network")
        return cap
    if spec.kind == "file":
        path = Path(spec.location)
        if not path.exists():
            raise SourceError(f"cannot open {name}: no such file")
        if not path.is_file():
            raise SourceError(f"cannot open {name}: not a regular file")
        cap = cv2.VideoCapture(str(path))
        if not cap.isOpened():
            raise SourceError(f"cannot open {name}: OpenCV cannot decode it (unsupported container or codec?)")
        return cap
    raise SourceError(f"{name} is not read through cv2.VideoCapture")


def _ffmpeg_timeouts() -> list[int]:
    """cv2.VideoCapture params: FFmpeg's open/read timeouts, where this OpenCV has them."""
    params: list[int] = []
    for prop, ms in (("CAP_PROP_OPEN_TIMEOUT_MSEC", OPEN_TIMEOUT_MS), ("CAP_PROP_READ_TIMEOUT_MSEC", READ_TIMEOUT_MS)):
        if hasattr(cv2, prop):
            params += [getattr(cv2, prop), ms]
    return params


def _open_rtp(spec: SourceSpec, name: str) -> cv2.VideoCapture:
    """rtp://@:PORT: GStreamer's udpsrc where OpenCV has GStreamer; else FFmpeg, told what
    arrives by an SDP description (``gstreamer.rtp_sdp``) in a temporary file."""
    if gstreamer.opencv_has_gstreamer():
        cap = cv2.VideoCapture(gstreamer.gstreamer_pipeline(spec), cv2.CAP_GSTREAMER)
    else:
        import tempfile

        with tempfile.NamedTemporaryFile("w", suffix=".sdp", prefix="tvrun-rtp-", delete=False) as f:
            f.write(gstreamer.rtp_sdp(spec))
        key = "OPENCV_FFMPEG_CAPTURE_OPTIONS"
        old = os.environ.get(key)
        os.environ[key] = "protocol_whitelist;file,udp,rtp"  # read when the capture opens
        try:
            cap = cv2.VideoCapture(f.name, cv2.CAP_FFMPEG, _ffmpeg_timeouts())
        finally:
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old
            os.unlink(f.name)
    if not cap.isOpened():
        raise SourceError(f"cannot open {name}: nothing arrived — is the sender streaming "
                          f"{spec.stream_codec.upper()} RTP (payload 96) to this port?")
    return cap


def _check_capture_size(cap: cv2.VideoCapture, spec: SourceSpec) -> None:
    """Refuse a stream whose frames are above the pixel limit before decoding one."""
    from taskvec.errors import UserError
    from taskvec.data.imageio import check_frame_size

    w, h = int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0), int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
    if w > 0 and h > 0:
        try:
            check_frame_size(w, h, spec.describe())
        except UserError as e:
            cap.release()
            raise SourceError(str(e)) from None


class CaptureSource(VideoSource):
    """A cv2.VideoCapture source (v4l2, csi, rtsp, file). Reads one frame when opening so a
    camera that opens but delivers nothing fails here, with a clear message."""

    def __init__(self, spec: SourceSpec, cleanup_dir: str | None = None) -> None:
        super().__init__(spec)
        self._cleanup_dir = cleanup_dir
        self._cap: cv2.VideoCapture | None = None
        self._pending: np.ndarray | None = None
        self._size = (0, 0)
        self._fps = 30.0
        try:
            self._open()
        except BaseException:
            self._remove_cleanup_dir()
            raise

    def _open(self) -> None:
        cap = _open_capture(self.spec)
        _check_capture_size(cap, self.spec)
        ok, image = cap.read()
        if not ok or image is None:
            cap.release()
            what = "opened but delivered no frame" if self.spec.is_live else "has no frames (or cannot be decoded)"
            raise SourceError(f"{self.spec.describe()} {what}")
        self._cap, self._pending = cap, image
        self._size = (int(image.shape[1]), int(image.shape[0]))
        fps = float(cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self._fps = fps if 0.0 < fps < 1000.0 else float(self.spec.int_option("fps", 30))

    @property
    def frame_count(self) -> int | None:
        """Frames in a file as the container reports them (may be approximate); None for live."""
        if self.is_live or self._cap is None:
            return None
        n = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0)
        return n if n > 0 else None

    def _read_image(self) -> np.ndarray | None:
        if self._pending is not None:
            image, self._pending = self._pending, None
            return image
        if self._cap is None:
            return None
        ok, image = self._cap.read()
        return image if ok else None

    def reopen(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._open()

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None
        self._remove_cleanup_dir()
        super().close()

    def _remove_cleanup_dir(self) -> None:
        if self._cleanup_dir:
            shutil.rmtree(self._cleanup_dir, ignore_errors=True)
            self._cleanup_dir = None


def _natural_key(path: Path) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", path.name)]


class ImageFolderSource(VideoSource):
    """Images of a folder (or a glob, or one file) in natural order: frame_2 before frame_10."""

    def __init__(self, spec: SourceSpec) -> None:
        super().__init__(spec)
        p = Path(spec.location)
        if p.is_dir():
            files = [f for f in p.iterdir() if f.is_file() and f.suffix.lower() in IMAGE_EXTENSIONS]
        elif any(c in p.name for c in "*?["):
            files = [f for f in p.parent.glob(p.name) if f.is_file()]
        elif p.is_file():
            files = [p]
        else:
            raise SourceError(f"cannot open {spec.describe()}: no such file or folder")
        if not files:
            exts = ", ".join(sorted(IMAGE_EXTENSIONS))
            raise SourceError(f"cannot open {spec.describe()}: no images found (looked for {exts})")
        self.files = sorted(files, key=_natural_key)
        self._pos = 0
        first = self._load(self.files[0])
        self._size = (int(first.shape[1]), int(first.shape[0]))
        self._fps = float(spec.int_option("fps", 30))

    @staticmethod
    def _load(path: Path) -> np.ndarray:
        from taskvec.errors import UserError
        from taskvec.data.imageio import decode_image

        try:
            return decode_image(path)
        except (UserError, OSError) as e:
            raise SourceError(str(e)) from None

    def _read_image(self) -> np.ndarray | None:
        if self._pos >= len(self.files):
            return None
        image = self._load(self.files[self._pos])
        self._pos += 1
        return image

