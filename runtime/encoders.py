"""Video encoding for the sinks: H.264 through PyAV, and reading a file's codec back.

    h264_available()          PyAV is installed (its wheels ship FFmpeg with libx264)
    H264Writer(path, fps, size, container_format)   cv2.VideoWriter-like: write(bgr), release()
    video_codec(path)         "h264", "mpeg4", "mjpeg", … as OpenCV reads the file back

``H264_OPTIONS`` are tvrun's x264 settings (measured in ``benchmarks/video_encoders.py``).
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import cv2
import numpy as np

# x264 for live recording: "superfast" costs about what OpenCV's mp4v does per frame at under half
# its file size; "ultrafast" saves ~1.4 ms a frame for files twice as large (benchmarks/video_encoders.py,
# quiet 2-core machine); CRF 23 is x264's default quality
H264_OPTIONS = {"preset": "superfast", "crf": "23"}
# what cv2.CAP_PROP_FOURCC reads back → the codec's name
_FOURCC_NAMES = {"avc1": "h264", "h264": "h264", "x264": "h264", "mp4v": "mpeg4", "fmp4": "mpeg4", "xvid": "mpeg4",
                 "mjpg": "mjpeg", "hev1": "hevc", "hvc1": "hevc", "hevc": "hevc"}


def h264_available() -> bool:
    """PyAV is installed (its wheels ship FFmpeg with libx264)."""
    try:
        return importlib.util.find_spec("av") is not None
    except (ImportError, ValueError):
        return False


def video_codec(path: str | os.PathLike[str]) -> str:
    """The codec of a video file as OpenCV reads it back ("h264", "mpeg4", "mjpeg", …;
    the raw FOURCC when unknown, "" when it cannot be opened)."""
    cap = cv2.VideoCapture(str(path))
    try:
        if not cap.isOpened():
            return ""
        code = int(cap.get(cv2.CAP_PROP_FOURCC)) & 0xFFFFFFFF
    finally:
        cap.release()
    fourcc = code.to_bytes(4, "little").decode("latin-1").strip("\0 ").lower()
    return _FOURCC_NAMES.get(fourcc, fourcc)


class H264Writer:
    """libx264 through PyAV (FFmpeg in-process): BGR frames in, yuv420p H.264 out (yuv444p
    for odd sizes, which 4:2:0 cannot hold). Same ``write``/``release``/``isOpened`` as
    cv2.VideoWriter."""

    def __init__(self, path: Path, fps: float, size: tuple[int, int], container_format: str | None = None,
                 options: dict[str, str] | None = None) -> None:
        import av
        from fractions import Fraction

        self._av = av
        w, h = size
        self.container = av.open(str(path), "w", format=container_format)
        try:
            rate = Fraction(fps).limit_denominator(1001)
            self.stream = self.container.add_stream("libx264", rate=rate)
            self.stream.width, self.stream.height = w, h
            self.stream.pix_fmt = "yuv420p" if w % 2 == 0 and h % 2 == 0 else "yuv444p"
            self.stream.options = dict(H264_OPTIONS if options is None else options)
        except Exception:
            self.container.close()
            raise

    def isOpened(self) -> bool:  # noqa: N802 — cv2.VideoWriter's name
        return True

    def write(self, image: np.ndarray) -> None:
        frame = self._av.VideoFrame.from_ndarray(image, format="bgr24")
        self.container.mux(self.stream.encode(frame))

    def release(self) -> None:
        if self.container is None:
            return
        try:
            self.container.mux(self.stream.encode(None))
        finally:
            self.container.close()
            self.container = None
