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


def _decoder(codec: str, jetson: bool) -> str:
    """Decoder elements to BGRx: Jetson's hardware ``nvv4l2decoder`` (+ ``nvvidconv``), else
    libav's software decoder."""
    if jetson:
        return "nvv4l2decoder ! nvvidconv"
    return f"avdec_{codec} ! videoconvert"


def gstreamer_pipeline(
    spec: SourceSpec,
    width: int | None = None,
    height: int | None = None,
    fps: int | None = None,
    flip: int | None = None,
    latency: int | None = None,
    codec: Literal["h264", "h265"] | None = None,
    jetson: bool | None = None,
) -> str:
    """GStreamer launch string ending in ``appsink drop=1 max-buffers=1`` for csi, rtsp or rtp.

    csi: ``nvarguscamerasrc`` → NVMM → ``nvvidconv flip-method`` → BGR. Defaults
    1280x720 at 30 fps, flip 0, unless the URI gives ``?width=&height=&fps=&flip=``; explicit
    arguments win. rtsp: ``rtspsrc latency=`` → depay/parse → decoder → BGR. rtp:
    ``udpsrc`` (every interface, or ``address=`` a multicast group) with RTP caps →
    ``rtpjitterbuffer latency=`` → depay/parse → decoder → BGR. For both, codec (h264|h265)
    and latency (ms, default 200) come from the arguments, else the spec (``--input-codec``,
    ``--latency``); the decoder is ``nvv4l2decoder`` on Jetson, ``avdec_*`` elsewhere.
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
    if spec.kind not in ("rtsp", "rtp"):
        raise SourceError(f"no GStreamer pipeline for a {spec.kind} source")
    c = codec or spec.stream_codec
    lat = spec.latency_ms if latency is None else latency
    if c not in ("h264", "h265"):
        raise SourceError(f"bad codec {c!r}: use h264 or h265")
    dec = _decoder(c, is_jetson() if jetson is None else jetson)
    depay = f"rtp{c}depay ! {c}parse ! {dec}"
    if spec.kind == "rtsp":
        return f'rtspsrc location="{spec.location}" latency={lat} ! {depay} ! {tail}'
    host, port = spec.rtp_address
    address = f" address={host}" if host and host not in ("0.0.0.0", "*") else ""
    caps = f"application/x-rtp,media=video,clock-rate=90000,encoding-name={c.upper()},payload=96"
    return f'udpsrc port={port}{address} caps="{caps}" ! rtpjitterbuffer latency={lat} ! {depay} ! {tail}'


def rtp_sdp(spec: SourceSpec) -> str:
    """An SDP description of an rtp source (payload 96, the codec of ``spec``): how FFmpeg
    (OpenCV without GStreamer) is told what arrives on the port."""
    host, port = spec.rtp_address
    enc = "H264" if spec.stream_codec == "h264" else "H265"
    return (f"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=tvrun\r\nc=IN IP4 {host or '0.0.0.0'}\r\nt=0 0\r\n"
            f"m=video {port} RTP/AVP 96\r\na=rtpmap:96 {enc}/90000\r\n")


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

