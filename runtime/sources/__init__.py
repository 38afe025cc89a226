"""Video sources, in the manner of jetson-inference's ``videoSource``.

One URI names where frames come from::

    0, /dev/video0, v4l2:///dev/video1      V4L2 camera (USB webcam); ?width=&height=&fps=&fourcc=MJPG
    csi://0                                 MIPI CSI camera through GStreamer ``nvarguscamerasrc``;
                                            ?width=&height=&fps=&flip=
    clip.mp4, file://clip.mp4               video file (every frame, in order)
    frames/, frames/*.png, one.jpg          image folder, glob or single image (natural sort); ?fps=
    rtsp://user:pass@host:8554/stream       network camera (GStreamer on Jetson, else FFmpeg);
                                            tvrun --input-codec h264|h265 --latency MS
    rtp://@:5000, rtp://239.1.1.1:5000      RTP/UDP stream received on a port (or a multicast group):
                                            GStreamer udpsrc where OpenCV has it, else FFmpeg with an
                                            SDP; ?codec=h264|h265&latency=MS
    sample:lowlight, sample:inpainting      a generated clip (``runtime.sample``); ?frames=&width=&height=

``parse_source`` turns the URI into a :class:`SourceSpec`; ``open_source`` opens it and
returns a :class:`VideoSource` whose ``read()`` gives :class:`Frame` objects (HxWx3 uint8
BGR) and ``None`` at the end. :class:`ThreadedCapture` reads on its own thread and keeps
only the newest frame for live sources. Every failure is a :class:`SourceError` with a
one-line message meant for the user.

One module per responsibility: :mod:`.uri` (parsing), :mod:`.gstreamer` (launch strings),
:mod:`.capture` (the capture classes), :mod:`.factory` (``open_source`` and the generated
sample clip) and :mod:`.threaded` (the capture thread). Every public name is importable
from ``runtime.sources``.
"""

from __future__ import annotations

from runtime.sources.capture import (
    OPEN_TIMEOUT_MS,
    READ_TIMEOUT_MS,
    CaptureSource,
    Frame,
    ImageFolderSource,
    VideoSource,
)
from runtime.sources.factory import open_source
from runtime.sources.gstreamer import (build_info_has_gstreamer, gstreamer_pipeline, is_jetson, opencv_has_gstreamer,
                                      rtp_sdp)
from runtime.sources.threaded import ThreadedCapture
from runtime.sources.uri import (
    IMAGE_EXTENSIONS,
    LIVE_KINDS,
    STREAM_CODECS,
    STREAM_KINDS,
    VIDEO_EXTENSIONS,
    SourceError,
    SourceKind,
    SourceSpec,
    parse_host_port,
    parse_source,
    redact_url,
    with_stream_options,
)

__all__ = [
    "CaptureSource", "Frame", "IMAGE_EXTENSIONS", "ImageFolderSource", "LIVE_KINDS", "OPEN_TIMEOUT_MS",
    "READ_TIMEOUT_MS", "SourceError", "SourceKind", "SourceSpec", "ThreadedCapture", "VIDEO_EXTENSIONS",
    "VideoSource", "build_info_has_gstreamer", "gstreamer_pipeline", "is_jetson", "open_source",
    "opencv_has_gstreamer", "parse_source", "redact_url", "STREAM_CODECS", "STREAM_KINDS", "parse_host_port",
    "rtp_sdp", "with_stream_options",
]
