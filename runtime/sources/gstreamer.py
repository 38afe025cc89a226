"""GStreamer launch strings for CSI cameras and RTSP streams, and whether this OpenCV can
open them."""

from __future__ import annotations

import functools
import os
import re
from typing import Literal

import cv2

from runtime.sources.uri import SourceError, SourceSpec

NO_GSTREAMER = (
    "OpenCV was built without GStreamer: {what} needs it — on Jetson use the system OpenCV "
    "from JetPack (python3-opencv) instead of the opencv-python wheel"
)


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

