"""Frame sinks, in the manner of jetson-inference's ``videoOutput``.

``open_sink(path, headless, fps, size)`` picks one:

    path None, headless False    WindowSink (cv2.imshow; ``poll_key()`` for keys)
    path None, headless True     NullSink (frames are dropped; for benchmarks and servers)
    *.mp4 / *.m4v / *.mov        VideoFileSink: H.264 (libx264 through PyAV) by default, MPEG-4
                                 Part 2 (OpenCV's mp4v) as the fallback or on request; *.avi: MJPG
    a folder (exists, ends in /, or has no suffix)
                                 ImageFolderSink (frame_000001.png, …)
    rtp://HOST:PORT[?codec=h264|h265]
                                 RtpSink: an RTP/UDP stream (payload 96) through PyAV's FFmpeg,
                                 no GStreamer needed — receive with ``tvrun --source rtp://@:PORT``
    display://0                  (tvrun) the window, as jetson-inference names it

With a path and headless False, frames go to the window and to the file (TeeSink).
Every sink is a context manager: a clean exit ``close()``s it, an exception ``abort()``s it,
so a failed run leaves no half-written file. Images are HxWx3 uint8 BGR (grey is accepted).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Literal

import cv2
import numpy as np

from runtime.encoders import H264Writer, h264_available

VIDEO_FOURCC = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG"}  # OpenCV's writers
QUIT_KEYS = frozenset({27, ord("q"), ord("Q")})
OutputCodec = Literal["auto", "h264", "mp4v", "mjpg"]
OUTPUT_CODECS: tuple[str, ...] = ("auto", "h264", "mp4v", "mjpg")


class SinkError(Exception):
    """A sink could not be opened or written; ``str(e)`` is one line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


# A recording stops while this much room is left (plus two raw frames), so the container
# can still be finalised: OpenCV's writer ignores write errors, and an mp4 whose index
# (moov) could not be written is unplayable.
RESERVE_BYTES = 16 << 20


def free_bytes(folder: Path) -> int:
    return shutil.disk_usage(folder).free


def count_video_frames(path: Path) -> int:
    """Frames in ``path`` as its container reports them, 0 when OpenCV cannot open it or
    decode its first frame (cheap: the index and one frame, not the whole file)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened() or not cap.grab():
            return 0
        return max(1, int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0))
    finally:
        cap.release()


def _check_image(image: np.ndarray) -> np.ndarray:
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise SinkError(f"sinks take uint8 images, got {getattr(image, 'dtype', type(image).__name__)}")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] != 3:
        raise SinkError(f"sinks take HxWx3 BGR images, got shape {image.shape}")
    return image


def resolve_codec(path: str | os.PathLike[str], codec: str = "auto") -> tuple[str, str]:
    """(codec to write, why) for a video file: ``auto`` is MJPG for .avi, else H.264 where
    PyAV is installed and mp4v (MPEG-4 Part 2, which browsers do not play) where it is not."""
    suffix = Path(path).suffix.lower()
    if codec not in OUTPUT_CODECS:
        raise SinkError(f"unknown --output-codec {codec!r}; choose from {', '.join(OUTPUT_CODECS)}")
    if codec == "auto":
        if suffix == ".avi":
            return "mjpg", "the .avi default"
        if h264_available():
            return "h264", "default"
        return "mp4v", "fallback: PyAV is not installed (pip install av) — H.264 needs it"
    if codec == "h264" and not h264_available():
        raise SinkError("--output-codec h264 needs PyAV (pip install av); or use --output-codec mp4v")
    if codec == "h264" and suffix == ".avi":
        raise SinkError("--output-codec h264 writes .mp4/.mov/.m4v files, not .avi")
    return codec, "asked for"


class Sink:
    """Base sink: ``write(image)``, ``close()``, ``abort()``, ``poll_key()``."""

    path: Path | None = None

    def __init__(self) -> None:
        self.frames_written = 0
        self.closed = False

    def write(self, image: np.ndarray) -> None:
        if self.closed:
            raise SinkError(f"{type(self).__name__} is closed")
        self._write(_check_image(image))
        self.frames_written += 1

    def _write(self, image: np.ndarray) -> None:
        pass

    def poll_key(self, delay_ms: int = 1) -> int | None:
        """Key pressed since the last call (window sinks); None when there is none."""
        return None

    def close(self) -> None:
        """Finish the output (the file appears now)."""
        self.closed = True

    def abort(self) -> None:
        """Give up: remove whatever this sink wrote."""
        self.closed = True

    def __enter__(self) -> "Sink":
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if self.closed:  # finalised already (e.g. kept the frames so far after a failure)
            return
        if exc_type is None:
            self.close()
        else:
            self.abort()


class NullSink(Sink):
    """Headless and no output: counts frames, keeps nothing."""


class WindowSink(Sink):
    """A cv2.imshow window, created on the first frame. Call ``poll_key()`` once per frame:
    it also lets the window repaint. Closing the window reads as Esc (27)."""

    def __init__(self, title: str = "tvrun") -> None:
        super().__init__()
        self.title = title
        self._created = False

    def _create(self) -> None:
        if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
            raise SinkError("no display: cannot open a window (DISPLAY is not set) — run with --headless or give --output")
        try:
            cv2.namedWindow(self.title, cv2.WINDOW_NORMAL)
        except cv2.error as e:
            msg = str(e).strip().splitlines()[-1] if str(e).strip() else "unknown error"
            raise SinkError(f"cannot open a window ({msg}) — run with --headless or give --output") from None
        self._created = True

    def _write(self, image: np.ndarray) -> None:
        if not self._created:
            self._create()
        cv2.imshow(self.title, image)

    def poll_key(self, delay_ms: int = 1) -> int | None:
        if not self._created:
            return None
        key = cv2.waitKey(max(1, delay_ms))
        try:
            if cv2.getWindowProperty(self.title, cv2.WND_PROP_VISIBLE) < 1:
                return 27
        except cv2.error:
            return 27
        return None if key < 0 else key & 0xFF

    def close(self) -> None:
        if self._created:
            try:
                cv2.destroyWindow(self.title)
            except cv2.error:
                pass
            self._created = False
        super().close()

    abort = close


class VideoFileSink(Sink):
    """A video file written under a hidden temporary name in the same folder and renamed
    when ``close()`` succeeds. ``abort()`` (or a sink that got no frame) leaves no file.
    The writer opens on the first frame; later frames must have the same size.
    ``codec`` (:func:`resolve_codec`): ``auto`` = H.264 through PyAV where installed, else
    OpenCV's mp4v; ``codec_note`` says why."""

    def __init__(self, path: str | os.PathLike[str], fps: float, size: tuple[int, int] | None = None,
                 codec: str = "auto") -> None:
        super().__init__()
        self.path = Path(path)
        suffix = self.path.suffix.lower()
        if suffix not in VIDEO_FOURCC:
            raise SinkError(f"unsupported video file {self.path}: use {', '.join(sorted(VIDEO_FOURCC))}")
        if not fps or fps <= 0:
            raise SinkError(f"bad frame rate {fps} for {self.path}")
        self.fps = float(fps)
        self.size = tuple(size) if size else None
        self.codec, self.codec_note = resolve_codec(self.path, codec)
        self.fourcc = {"mp4v": "mp4v", "mjpg": "MJPG"}.get(self.codec, VIDEO_FOURCC[suffix])
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=f".part{suffix}", dir=self.path.parent)
        except OSError as e:
            raise SinkError(f"cannot write {self.path}: {e.strerror or e}") from None
        os.close(fd)
        self.temp_path = Path(tmp)
        self.frames_playable = 0
        self._writer: cv2.VideoWriter | None = None

    def _write(self, image: np.ndarray) -> None:
        h, w = image.shape[:2]
        if self._writer is None:
            if self.size is None:
                self.size = (w, h)
            self._writer = self._open_writer()
        if (w, h) != self.size:
            raise SinkError(f"frame is {w}x{h} but {self.path} is {self.size[0]}x{self.size[1]}")
        free = free_bytes(self.temp_path.parent)
        if free < RESERVE_BYTES + 2 * image.nbytes:
            raise SinkError(f"disk full: {free / 2**20:.0f} MiB left in {self.path.parent} while writing {self.path}")
        try:
            self._writer.write(np.ascontiguousarray(image))
        except Exception as e:  # noqa: BLE001 — PyAV's FFmpeg errors (ENOSPC, EIO, …), OpenCV's
            raise SinkError(f"cannot write {self.path}: {' '.join(str(e).split())[:200]}") from None

    def _open_writer(self):
        if self.codec == "h264":
            try:
                return H264Writer(self.temp_path, self.fps, self.size,
                                   container_format="mov" if self.path.suffix.lower() == ".mov" else "mp4")
            except Exception as e:  # noqa: BLE001 — an FFmpeg without libx264, an unwritable file
                self.abort()
                raise SinkError(f"cannot write {self.path}: PyAV could not open an H.264 encoder "
                                f"({' '.join(str(e).split())[:160]}); try --output-codec mp4v") from None
        writer = cv2.VideoWriter(str(self.temp_path), cv2.VideoWriter_fourcc(*self.fourcc), self.fps, self.size)
        if not writer.isOpened():
            self.abort()
            raise SinkError(f"cannot write {self.path}: OpenCV has no {self.fourcc} encoder for {self.path.suffix}")
        return writer

    def close(self) -> None:
        if self.closed:
            return
        if self._writer is not None:
            try:
                self._writer.release()
            except Exception as e:  # noqa: BLE001 — FFmpeg could not flush or finalise the file
                self._writer = None
                self.abort()
                raise SinkError(f"cannot write {self.path}: {' '.join(str(e).split())[:200]}") from None
            self._writer = None
        self.closed = True
        if self.frames_written == 0:
            self.temp_path.unlink(missing_ok=True)
            return
        readable = count_video_frames(self.temp_path)
        if readable == 0:
            self.temp_path.unlink(missing_ok=True)
            raise SinkError(f"cannot write {self.path}: the finished file is not playable (disk full or "
                            f"an I/O error); removed it")
        self.frames_playable = readable
        try:
            os.chmod(self.temp_path, 0o644)  # mkstemp made it 0600; the result is a normal file
            os.replace(self.temp_path, self.path)
        except OSError as e:
            self.temp_path.unlink(missing_ok=True)
            raise SinkError(f"cannot write {self.path}: {e.strerror or e}") from None

    def abort(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None
        self.temp_path.unlink(missing_ok=True)
        self.closed = True


class ImageFolderSink(Sink):
    """PNG (or ``ext``) images ``frame_000001.png``, … in a folder; ``abort()`` removes the
    images this sink wrote (and the folder if it created it and it is empty)."""

    def __init__(self, folder: str | os.PathLike[str], ext: str = ".png", prefix: str = "frame_") -> None:
        super().__init__()
        self.path = Path(folder)
        self.ext = ext if ext.startswith(".") else "." + ext
        self.prefix = prefix
        self._created_folder = not self.path.exists()
        if self.path.exists() and not self.path.is_dir():
            raise SinkError(f"cannot write images to {self.path}: it is a file, not a folder")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise SinkError(f"cannot create folder {self.path}: {e.strerror or e}") from None
        self.written: list[Path] = []

    def _write(self, image: np.ndarray) -> None:
        target = self.path / f"{self.prefix}{self.frames_written + 1:06d}{self.ext}"
        free = free_bytes(self.path)
        if free < RESERVE_BYTES + 2 * image.nbytes:
            raise SinkError(f"disk full: {free / 2**20:.0f} MiB left in {self.path} while writing {target.name}")
        ok = False
        try:
            ok = cv2.imwrite(str(target), image)
        except cv2.error:
            pass
        if not ok:
            target.unlink(missing_ok=True)
            raise SinkError(f"cannot write {target} (disk full or an I/O error?)")
        self.written.append(target)

    def abort(self) -> None:
        for f in self.written:
            f.unlink(missing_ok=True)
        self.written.clear()
        if self._created_folder:
            try:
                self.path.rmdir()
            except OSError:
                pass
        self.closed = True


class TeeSink(Sink):
    """Send every frame to several sinks; keys come from the first one that has any."""

    def __init__(self, *sinks: Sink) -> None:
        super().__init__()
        self.sinks = list(sinks)
        self.path = next((s.path for s in self.sinks if s.path is not None), None)

    def _write(self, image: np.ndarray) -> None:
        for s in self.sinks:
            s.write(image)

    def poll_key(self, delay_ms: int = 1) -> int | None:
        for s in self.sinks:
            key = s.poll_key(delay_ms)
            if key is not None:
                return key
        return None

    def close(self) -> None:
        for s in self.sinks:
            s.close()
        self.closed = True

    def abort(self) -> None:
        for s in self.sinks:
            s.abort()
        self.closed = True


def _is_folder_path(path: Path, raw: str) -> bool:
    return path.is_dir() or raw.endswith(("/", os.sep)) or path.suffix == ""


def check_output_path(path: str | os.PathLike[str], codec: str = "auto") -> None:
    """Refuse, before any work, an ``--output`` (and ``--output-codec``) that open_sink would
    refuse (a SinkError)."""
    from runtime.stream_sink import parse_output_uri

    raw = os.fspath(path)
    uri = parse_output_uri(raw)
    if uri is not None:
        if codec != "auto":
            raise SinkError(f"--output-codec is for video files; {raw} takes ?codec=h264|h265")
        if uri[0] == "display" and uri[1] != 0:
            raise SinkError(f"{raw}: OpenCV's window opens on the default display only (display://0); "
                            "set DISPLAY to pick another X display")
        if uri[0] == "rtp" and not h264_available():
            raise SinkError("rtp:// output needs PyAV (pip install av)")
        return
    p = Path(raw).expanduser()
    if p.suffix.lower() in VIDEO_FOURCC:
        if p.is_dir():
            raise SinkError(f"cannot write {raw}: it is a folder")
        resolve_codec(p, codec)
        return
    if codec != "auto":
        raise SinkError(f"--output-codec {codec} is for video files (.mp4, .mov, .m4v, .avi), not {raw}")
    if not _is_folder_path(p, raw):
        raise SinkError(f"unsupported output {raw}: give a video file ({', '.join(sorted(VIDEO_FOURCC))}) or a folder")
    if p.exists() and not p.is_dir():
        raise SinkError(f"cannot write images to {raw}: it is a file, not a folder")


def open_sink(
    path: str | os.PathLike[str] | None,
    headless: bool,
    fps: float,
    size: tuple[int, int] | None = None,
    title: str = "tvrun",
    codec: str = "auto",
) -> Sink:
    """The sink for ``--output PATH`` / ``--headless`` (see the module docstring).

    ``size`` is (width, height) of the video; None takes it from the first frame; ``codec``
    the video file's (:func:`resolve_codec`).
    Raises SinkError for an unsupported path; a missing display is reported on the
    first ``write``.
    """
    file_sink: Sink | None = None
    if path is not None:
        raw = os.fspath(path)
        p = Path(raw).expanduser()
        from runtime.stream_sink import RtpSink, parse_output_uri

        uri = parse_output_uri(raw)
        if uri is not None and uri[0] == "rtp":
            host, port, rtp_codec = uri[1]  # type: ignore[misc]
            file_sink = RtpSink(host, port, fps, rtp_codec)
        elif uri is not None:  # display://N: the window
            return WindowSink(title)
        elif p.suffix.lower() in VIDEO_FOURCC:
            file_sink = VideoFileSink(p, fps, size, codec=codec)
        elif _is_folder_path(p, raw):
            file_sink = ImageFolderSink(p)
        else:
            raise SinkError(
                f"unsupported output {raw}: give a video file ({', '.join(sorted(VIDEO_FOURCC))}) or a folder"
            )
    if headless:
        return file_sink if file_sink is not None else NullSink()
    window = WindowSink(title)
    return window if file_sink is None else TeeSink(window, file_sink)
