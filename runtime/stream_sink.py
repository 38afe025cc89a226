"""Network outputs: ``rtp://HOST:PORT`` (:class:`RtpSink`) and the output URIs tvrun takes
(:func:`parse_output_uri`: ``rtp://…``, ``display://N``), in jetson-inference's names."""

from __future__ import annotations

import re

import numpy as np

from runtime.encoders import h264_available
from runtime.sinks import Sink, SinkError


class RtpSink(Sink):
    """Frames sent as an RTP/UDP stream to ``host:port``: x264 (``superfast``, ``zerolatency``,
    SPS/PPS repeated and a key frame every second, so a receiver can join at any time) or
    x265, payload type 96, through PyAV (FFmpeg's rtp muxer). Opens on the first frame;
    ``abort`` is ``close`` (nothing to remove)."""

    def __init__(self, host: str, port: int, fps: float, codec: str = "h264") -> None:
        super().__init__()
        if not h264_available():
            raise SinkError("rtp:// output needs PyAV (pip install av)")
        if codec not in ("h264", "h265"):
            raise SinkError(f"bad codec {codec!r} for rtp:// output: use h264 or h265")
        self.host, self.port, self.fps, self.codec = host, int(port), float(fps or 30.0), codec
        self.url = f"rtp://{host}:{self.port}"
        self.container = None
        self.stream = None

    def _open(self, w: int, h: int) -> None:
        import av
        from fractions import Fraction

        try:
            self.container = av.open(self.url, "w", format="rtp")
            enc = "libx264" if self.codec == "h264" else "libx265"
            self.stream = self.container.add_stream(enc, rate=Fraction(self.fps).limit_denominator(1001))
            self.stream.width, self.stream.height = w - w % 2, h - h % 2
            self.stream.pix_fmt = "yuv420p"
            self.stream.gop_size = max(1, round(self.fps))
            opts = {"preset": "superfast", "tune": "zerolatency"}
            opts["x264-params" if self.codec == "h264" else "x265-params"] = "repeat-headers=1"
            self.stream.options = opts
        except Exception as e:  # noqa: BLE001 — an unresolvable host, no encoder, …
            self._shut()
            raise SinkError(f"cannot stream to {self.url}: {' '.join(str(e).split())[:200]}") from None

    def _write(self, image: np.ndarray) -> None:
        import av

        h, w = image.shape[:2]
        if self.container is None:
            self._open(w, h)
        image = image[: self.stream.height, : self.stream.width]
        try:
            self.container.mux(self.stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="bgr24")))
        except Exception as e:  # noqa: BLE001 — the network went away
            raise SinkError(f"cannot stream to {self.url}: {' '.join(str(e).split())[:200]}") from None

    def _shut(self) -> None:
        if self.container is not None:
            try:
                if self.stream is not None:
                    self.container.mux(self.stream.encode(None))
            except Exception:  # noqa: BLE001 — closing anyway
                pass
            self.container.close()
            self.container = None

    def close(self) -> None:
        self._shut()
        super().close()

    abort = close


def parse_output_uri(raw: str) -> tuple[str, object] | None:
    """``display://N`` → ("display", N); ``rtp://HOST:PORT[?codec=]`` → ("rtp", (host, port,
    codec)); anything else → None (a file or folder). SinkError for a malformed URI."""
    low = raw.lower()
    if low.startswith("display://"):
        rest = raw[len("display://"):].strip("/")
        if not rest.isdigit():
            raise SinkError(f"bad output {raw!r}: expected display://N (N = 0 for the default display)")
        return "display", int(rest)
    if low.startswith("rtp://"):
        from urllib.parse import parse_qsl

        from runtime.sources import SourceError, parse_host_port

        rest, _, query = raw[len("rtp://"):].partition("?")
        try:
            host, port = parse_host_port(rest, raw, listen=False)
        except SourceError as e:
            raise SinkError(str(e)) from None
        codec = dict(parse_qsl(query)).get("codec", "h264")
        if codec not in ("h264", "h265"):
            raise SinkError(f"bad codec {codec!r} in {raw}: use h264 or h265")
        return "rtp", (host, port, codec)
    if re.match(r"^[a-z][a-z0-9+.-]*://", low):
        raise SinkError(f"unsupported output {raw!r}: give a video file, a folder, rtp://HOST:PORT or display://0")
    return None
