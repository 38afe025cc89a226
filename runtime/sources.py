"""Video sources, in the manner of jetson-inference's ``videoSource``.

One URI names where frames come from::

    0, /dev/video0, v4l2:///dev/video1      V4L2 camera (USB webcam); ?width=&height=&fps=&fourcc=MJPG
    csi://0                                 MIPI CSI camera through GStreamer ``nvarguscamerasrc``;
                                            ?width=&height=&fps=&flip=
    clip.mp4, file://clip.mp4               video file (every frame, in order)
    frames/, frames/*.png, one.jpg          image folder, glob or single image (natural sort); ?fps=
    rtsp://user:pass@host:8554/stream       network camera (GStreamer on Jetson, else FFmpeg)
    sample:lowlight, sample:inpainting      a generated clip (``runtime.sample``); ?frames=&width=&height=

``parse_source`` turns the URI into a :class:`SourceSpec`; ``open_source`` opens it and
returns a :class:`VideoSource` whose ``read()`` gives :class:`Frame` objects (HxWx3 uint8
BGR) and ``None`` at the end. :class:`ThreadedCapture` reads on its own thread and keeps
only the newest frame for live sources. Every failure is a :class:`SourceError` with a
one-line message meant for the user.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import cv2
import numpy as np

SourceKind = Literal["v4l2", "csi", "file", "images", "rtsp", "sample"]

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".ts", ".h264", ".h265", ".mjpg"}
)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
LIVE_KINDS = frozenset({"v4l2", "csi", "rtsp"})
# A stalled stream must end its read (and be reconnected) before the capture watchdog
# (ThreadedCapture.stall_timeout, 5 s by default) declares the source dead.
READ_TIMEOUT_MS = 2000
OPEN_TIMEOUT_MS = 5000

_ACCEPTED = "a camera index (0), /dev/videoN, csi://N, a video file, an image folder, rtsp://… or sample:TASK"
_NO_GSTREAMER = (
    "OpenCV was built without GStreamer: {what} needs it — on Jetson use the system OpenCV "
    "from JetPack (python3-opencv) instead of the opencv-python wheel"
)


class SourceError(Exception):
    """A source could not be parsed, opened or read; ``str(e)`` is one line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source URI.

    ``location`` is ``/dev/videoN`` (v4l2), the sensor id (csi), a path (file, images), the
    whole URL (rtsp) or the task name (sample). ``options`` are the URI's ``?key=value``
    pairs, in order.
    """

    kind: SourceKind
    location: str
    options: tuple[tuple[str, str], ...] = ()
    uri: str = ""

    @property
    def is_live(self) -> bool:
        return self.kind in LIVE_KINDS

    @property
    def device_index(self) -> int | None:
        """Camera number for v4l2 (``/dev/video3`` → 3) and csi; None otherwise."""
        if self.kind == "csi":
            return int(self.location)
        if self.kind == "v4l2":
            m = re.search(r"(\d+)$", self.location)
            return int(m.group(1)) if m else None
        return None

    def option(self, name: str, default: str | None = None) -> str | None:
        for key, value in self.options:
            if key == name:
                return value
        return default

    def int_option(self, name: str, default: int) -> int:
        value = self.option(name)
        if value is None:
            return default
        try:
            return int(value)
        except ValueError:
            raise SourceError(f"bad option {name}={value!r} in {self.uri or self.location}: expected an integer") from None

    def describe(self) -> str:
        """Short human name used in messages (credentials removed)."""
        if self.kind == "v4l2":
            return f"camera {self.device_index} ({self.location})"
        if self.kind == "csi":
            return f"CSI camera {self.location}"
        if self.kind == "rtsp":
            return f"stream {redact_url(self.location)}"
        if self.kind == "images":
            return f"images {self.location}"
        if self.kind == "sample":
            return f"sample clip {self.location!r}"
        return f"video file {self.location}"


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


def redact_url(url: str) -> str:
    """``rtsp://user:pw@host/x`` → ``rtsp://***@host/x``, for messages and logs."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _split_query(text: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    if "?" not in text:
        return text, ()
    head, query = text.split("?", 1)
    return head, tuple(parse_qsl(query, keep_blank_values=True))


def parse_source(uri: str | int) -> SourceSpec:
    """Parse a source URI (see the module docstring); raises :class:`SourceError`.

    Pure except for telling an image folder from a video file (``Path.is_dir``).
    """
    text = str(uri).strip()
    if not text:
        raise SourceError(f"empty source: give {_ACCEPTED}")
    low = text.lower()
    if text.isdigit():
        return SourceSpec("v4l2", f"/dev/video{int(text)}", (), text)
    if low.startswith("v4l2://"):
        rest, opts = _split_query(text[len("v4l2://"):])
        if rest.isdigit():
            rest = f"/dev/video{int(rest)}"
        if not rest.startswith("/dev/"):
            raise SourceError(f"bad camera URI {text!r}: expected v4l2:///dev/videoN or v4l2://N")
        return SourceSpec("v4l2", rest, opts, text)
    if low.startswith("csi://"):
        rest, opts = _split_query(text[len("csi://"):])
        if not rest.isdigit():
            raise SourceError(f"bad CSI URI {text!r}: expected csi://N with N the sensor id (0, 1, …)")
        return SourceSpec("csi", str(int(rest)), opts, text)
    if low.startswith(("rtsp://", "rtsps://")):
        return SourceSpec("rtsp", text, (), text)
    if low.startswith("sample:"):
        rest, opts = _split_query(text[len("sample:"):].lstrip("/"))
        if not re.fullmatch(r"[A-Za-z0-9_-]+", rest):
            raise SourceError(f"bad sample URI {text!r}: expected sample:TASK, e.g. sample:lowlight")
        return SourceSpec("sample", rest, opts, text)
    opts: tuple[tuple[str, str], ...] = ()
    path = text
    if low.startswith("file://"):
        path, opts = _split_query(text[len("file://"):])
    elif re.match(r"^[a-z][a-z0-9+.-]*://", low):
        raise SourceError(f"unsupported source {redact_url(text)!r}: give {_ACCEPTED}")
    if path.startswith("/dev/video"):
        return SourceSpec("v4l2", path, opts, text)
    p = Path(path).expanduser()
    if p.is_dir() or p.suffix.lower() in IMAGE_EXTENSIONS or any(c in p.name for c in "*?["):
        return SourceSpec("images", str(p), opts, text)
    return SourceSpec("file", str(p), opts, text)


def gstreamer_pipeline(
    spec: SourceSpec,
    width: int | None = None,
    height: int | None = None,
    fps: int | None = None,
    flip: int | None = None,
    latency: int | None = None,
    codec: Literal["h264", "h265"] = "h264",
) -> str:
    """GStreamer launch string ending in ``appsink drop=1 max-buffers=1`` for csi or rtsp.

    csi: ``nvarguscamerasrc`` → NVMM → ``nvvidconv flip-method`` → BGR. Defaults
    1280x720 at 30 fps, flip 0, unless the URI gives ``?width=&height=&fps=&flip=``; explicit
    arguments win. rtsp: ``rtspsrc`` → depay/parse → ``nvv4l2decoder`` (Jetson hardware
    decoder) → BGR, latency 200 ms by default.
    """
    tail = "video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! appsink drop=1 max-buffers=1"
    if spec.kind == "csi":
        w = width if width is not None else spec.int_option("width", 1280)
        h = height if height is not None else spec.int_option("height", 720)
        f = fps if fps is not None else spec.int_option("fps", 30)
        fl = flip if flip is not None else spec.int_option("flip", 0)
        if not 0 <= fl <= 7:
            raise SourceError(f"bad flip {fl}: nvvidconv flip-method is 0..7")
        if w <= 0 or h <= 0 or f <= 0:
            raise SourceError(f"bad CSI mode {w}x{h}@{f}: width, height and fps must be positive")
        return (
            f"nvarguscamerasrc sensor-id={int(spec.location)} ! "
            f"video/x-raw(memory:NVMM),width={w},height={h},framerate={f}/1 ! "
            f"nvvidconv flip-method={fl} ! {tail}"
        )
    if spec.kind == "rtsp":
        lat = 200 if latency is None else latency
        return (
            f'rtspsrc location="{spec.location}" latency={lat} ! rtp{codec}depay ! {codec}parse ! '
            f"nvv4l2decoder ! nvvidconv ! {tail}"
        )
    raise SourceError(f"no GStreamer pipeline for a {spec.kind} source")


def build_info_has_gstreamer(build_info: str) -> bool:
    """True when ``cv2.getBuildInformation()`` text lists ``GStreamer: YES``."""
    m = re.search(r"^\s*GStreamer:\s*(\S+)", build_info, re.MULTILINE)
    return bool(m and m.group(1).upper().startswith("YES"))


@functools.lru_cache(maxsize=1)
def opencv_has_gstreamer() -> bool:
    """Whether this OpenCV can open GStreamer pipelines (cv2.CAP_GSTREAMER)."""
    return build_info_has_gstreamer(cv2.getBuildInformation())


def is_jetson() -> bool:
    return os.path.exists("/etc/nv_tegra_release")


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
        if not opencv_has_gstreamer():
            raise SourceError(_NO_GSTREAMER.format(what="csi://"))
        cap = cv2.VideoCapture(gstreamer_pipeline(spec), cv2.CAP_GSTREAMER)
        if not cap.isOpened():
            raise SourceError(
                f"cannot open {name}: nvarguscamerasrc failed — is the ribbon cable seated and the sensor id right? "
                "try `sudo systemctl restart nvargus-daemon`"
            )
        return cap
    if spec.kind == "rtsp":
        if opencv_has_gstreamer() and is_jetson():
            cap = cv2.VideoCapture(gstreamer_pipeline(spec), cv2.CAP_GSTREAMER)
        else:
            params: list[int] = []
            for prop, ms in (("CAP_PROP_OPEN_TIMEOUT_MSEC", OPEN_TIMEOUT_MS), ("CAP_PROP_READ_TIMEOUT_MSEC", READ_TIMEOUT_MS)):
                if hasattr(cv2, prop):
                    params += [getattr(cv2, prop), ms]
            cap = cv2.VideoCapture(spec.location, cv2.CAP_FFMPEG, params)
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


def _check_capture_size(cap: cv2.VideoCapture, spec: SourceSpec) -> None:
    """Refuse a stream whose frames are above the pixel limit before decoding one."""
    from taskvec.errors import UserError
    from taskvec.imageio import check_frame_size

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
        from taskvec.imageio import decode_image

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


def _check_sample(spec: SourceSpec, size: tuple[int, int]) -> None:
    from taskvec.errors import UserError
    from taskvec.imageio import check_frame_size

    if spec.int_option("frames", 120) <= 0:
        raise SourceError(f"bad option frames={spec.option('frames')} in {spec.uri}: expected a positive count")
    try:
        check_frame_size(size[0], size[1], spec.describe())
    except UserError as e:
        raise SourceError(str(e)) from None


def open_source(spec: SourceSpec | str | int, cache_dir: str | os.PathLike[str] | None = None) -> VideoSource:
    """Open a source (a :class:`SourceSpec` or a URI); raises :class:`SourceError`.

    ``sample:TASK`` clips come from the runtime cache (``cache_dir``, default
    ``~/.cache/taskvec``): made on first use, reused while their content hash matches."""
    if not isinstance(spec, SourceSpec):
        spec = parse_source(spec)
    if spec.kind == "images":
        return ImageFolderSource(spec)
    if spec.kind != "sample":
        return CaptureSource(spec)
    try:
        from runtime.sample import cached_sample_clip  # lazy: only sample: URIs need the generator
    except ImportError as e:
        raise SourceError(f"cannot make {spec.describe()}: the sample generator is unavailable ({e})") from None
    try:
        size = (spec.int_option("width", 640), spec.int_option("height", 480))
        _check_sample(spec, size)
        path, _ = cached_sample_clip(spec.location, frames=spec.int_option("frames", 120), size=size,
                                     cache_dir=cache_dir)
        return CaptureSource(SourceSpec("file", str(path), spec.options, spec.uri))
    except SourceError:
        raise
    except Exception as e:  # unknown task, codec missing, unwritable cache, …
        raise SourceError(f"cannot make {spec.describe()}: {e}") from None


class ThreadedCapture:
    """Read a source on its own thread; ``get()`` the frames.

    Live sources (``drop_frames`` True by default): only the newest frame is kept and each
    overwritten one counts in ``dropped``. Files and folders (``drop_frames`` False by
    default): a small FIFO with back-pressure, so every frame arrives, in order.

    ``get()`` returns None at the end of the stream and raises :class:`SourceError` when the
    source fails or sits inside one read for more than ``stall_timeout`` seconds, so it never
    hangs. ``reconnect`` (live sources) is how many times in a row a failed read is followed
    by ``source.reopen()``, ``reconnect_delay`` seconds apart. A read blocked inside the driver
    cannot be interrupted: that case is reported as a stall, not reconnected.
    """

    def __init__(
        self,
        source: VideoSource,
        *,
        drop_frames: bool | None = None,
        stall_timeout: float = 5.0,
        reconnect: int = 0,
        reconnect_delay: float = 1.0,
        queue_size: int = 4,
        close_source: bool = True,
        join_timeout: float = 1.0,
    ) -> None:
        if stall_timeout <= 0:
            raise ValueError("stall_timeout must be positive")
        self.source = source
        self.drop_frames = source.is_live if drop_frames is None else drop_frames
        self.stall_timeout = stall_timeout
        self.reconnect = max(0, reconnect)
        self.reconnect_delay = reconnect_delay
        self.close_source = close_source
        self.join_timeout = join_timeout
        self.dropped = 0
        self.delivered = 0
        self.reconnects = 0
        self._capacity = 1 if self.drop_frames else max(1, queue_size)
        self._frames: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._done = False
        self._closed = False
        self._error: SourceError | None = None
        self._read_started: float | None = None
        self._thread = threading.Thread(target=self._run, name="ThreadedCapture", daemon=True)
        self._thread.start()

    def _read_once(self) -> Frame | None:
        with self._cond:
            self._read_started = time.monotonic()
        try:
            return self.source.read()
        except SourceError:
            raise
        except Exception as e:
            raise SourceError(f"{self.source.spec.describe()}: read failed: {e}") from None
        finally:
            with self._cond:
                self._read_started = None

    def _reopen(self, attempt: int = 0) -> bool:
        """Wait (backoff: ``reconnect_delay`` · 2^attempt, at most 8×) and reopen the source."""
        if self._stop.wait(self.reconnect_delay * min(2 ** attempt, 8)):
            return False
        self.reconnects += 1
        try:
            self.source.reopen()
            return True
        except Exception:
            return False

    def _run(self) -> None:
        tries_left = self.reconnect
        error: SourceError | None = None
        try:
            while not self._stop.is_set():
                try:
                    frame = self._read_once()
                    error = None
                except SourceError as e:
                    frame, error = None, e
                if frame is None:
                    if self._stop.is_set():
                        break
                    if self.source.is_live:
                        if tries_left > 0:
                            self._reopen(self.reconnect - tries_left)
                            tries_left -= 1
                            continue
                        why = f" after {self.reconnects} reconnect(s)" if self.reconnect else ""
                        error = error or SourceError(
                            f"{self.source.spec.describe()} stopped delivering frames{why} — disconnected?"
                        )
                    break
                tries_left = self.reconnect
                with self._cond:
                    if self.drop_frames:
                        self.dropped += len(self._frames)
                        self._frames.clear()
                    else:
                        while len(self._frames) >= self._capacity and not self._stop.is_set():
                            self._cond.wait(0.1)
                    self._frames.append(frame)
                    self._cond.notify_all()
        finally:
            with self._cond:
                if error is not None and self._error is None:
                    self._error = error
                self._done = True
                self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """Next frame (the newest for live sources); None at the end of the stream.

        Raises SourceError on a failed or stalled source, TimeoutError when ``timeout``
        seconds pass with no frame while the source is still healthy.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._frames:
                    frame = self._frames.popleft()
                    self.delivered += 1
                    self._cond.notify_all()
                    return frame
                if self._error is not None:
                    raise self._error
                if self._done or self._closed:
                    return None
                now = time.monotonic()
                wait = 0.1
                if self._read_started is not None:
                    stuck = now - self._read_started
                    if stuck > self.stall_timeout:
                        self._error = SourceError(
                            f"{self.source.spec.describe()} stopped delivering frames: "
                            f"no frame for {self.stall_timeout:g} s"
                        )
                        raise self._error
                    wait = min(wait, self.stall_timeout - stuck + 0.01)
                if deadline is not None:
                    if now >= deadline:
                        raise TimeoutError(f"no frame from {self.source.spec.describe()} within {timeout:g} s")
                    wait = min(wait, deadline - now)
                self._cond.wait(max(wait, 0.001))

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.get()) is not None:
            yield frame

    def close(self) -> None:
        """Stop the thread; close the source unless its read is stuck in the driver."""
        if self._closed:
            return
        self._stop.set()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(self.join_timeout)
        if self.close_source and not self._thread.is_alive():
            self.source.close()

    def __enter__(self) -> "ThreadedCapture":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
