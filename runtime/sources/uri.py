"""Source URIs: :func:`parse_source` turns one into a :class:`SourceSpec` (the grammar is in
:mod:`runtime.sources`); every failure is a one-line :class:`SourceError`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

SourceKind = Literal["v4l2", "csi", "file", "images", "rtsp", "rtp", "sample"]
StreamCodec = Literal["h264", "h265"]
STREAM_CODECS: tuple[str, ...] = ("h264", "h265")
DEFAULT_LATENCY_MS = 200  # GStreamer's rtspsrc / rtpjitterbuffer default

VIDEO_EXTENSIONS = frozenset(
    {".mp4", ".m4v", ".avi", ".mkv", ".mov", ".webm", ".mpg", ".mpeg", ".ts", ".h264", ".h265", ".mjpg"}
)
IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm"})
LIVE_KINDS = frozenset({"v4l2", "csi", "rtsp", "rtp"})
STREAM_KINDS = frozenset({"rtsp", "rtp"})  # take ?codec= (--input-codec) and ?latency= (--latency)

_ACCEPTED = ("a camera index (0), /dev/videoN, csi://N, a video file, an image folder, rtsp://…, rtp://@:PORT "
             "or sample:TASK")


class SourceError(Exception):
    """A source could not be parsed, opened or read; ``str(e)`` is one line for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join(str(message).splitlines()))


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source URI.

    ``location`` is ``/dev/videoN`` (v4l2), the sensor id (csi), a path (file, images), the
    whole URL (rtsp), ``HOST:PORT`` to listen on (rtp; HOST empty = every interface, or a
    multicast group) or the task name (sample). ``options`` are the URI's ``?key=value``
    pairs, in order (rtsp URLs keep their query; their ``codec``/``latency`` come from
    :func:`with_stream_options`).
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

    @property
    def rtp_address(self) -> tuple[str, int]:
        """(host, port) of an rtp source: host "" = every interface."""
        host, _, port = self.location.rpartition(":")
        return host, int(port)

    @property
    def stream_codec(self) -> str:
        """rtsp/rtp: the stream's codec (``?codec=`` / ``--input-codec``), h264 by default."""
        return self.option("codec", "h264") or "h264"

    @property
    def latency_ms(self) -> int:
        """rtsp/rtp: the jitter-buffer latency (``?latency=`` / ``--latency``), 200 ms by default."""
        return self.int_option("latency", DEFAULT_LATENCY_MS)

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
        if self.kind == "rtp":
            return f"RTP stream on {self.rtp_address[0] or '*'}:{self.rtp_address[1]}"
        if self.kind == "images":
            return f"images {self.location}"
        if self.kind == "sample":
            return f"sample clip {self.location!r}"
        return f"video file {self.location}"


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
    if low.startswith("rtp://"):
        rest, opts = _split_query(text[len("rtp://"):])
        host, port = parse_host_port(rest, text, listen=True)
        spec = SourceSpec("rtp", f"{host}:{port}", opts, text)
        check_stream_options(spec)
        return spec
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



def parse_host_port(rest: str, uri: str, listen: bool) -> tuple[str, int]:
    """``@:5000`` / ``:5000`` (listen: every interface), ``224.1.1.1:5000``, ``10.0.0.9:5000``
    → (host, port); one-line SourceError otherwise."""
    rest = rest.rstrip("/")
    host, sep, port = rest.rpartition(":")
    host = host.lstrip("@")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536 or "/" in host:
        form = "rtp://@:PORT (listen) or rtp://GROUP:PORT" if listen else "rtp://HOST:PORT"
        raise SourceError(f"bad RTP URI {uri!r}: expected {form}")
    if not listen and not host:
        raise SourceError(f"bad RTP URI {uri!r}: an output needs the receiver's address, rtp://HOST:PORT")
    return host, int(port)


def check_stream_options(spec: SourceSpec) -> None:
    """SourceError for a codec other than h264/h265 or a latency outside 0..10000 ms."""
    if spec.stream_codec not in STREAM_CODECS:
        raise SourceError(f"bad codec {spec.stream_codec!r} for {spec.describe()}: use h264 or h265")
    if not 0 <= spec.latency_ms <= 10000:
        raise SourceError(f"bad latency {spec.latency_ms} ms for {spec.describe()}: use 0..10000")


def with_stream_options(spec: SourceSpec, codec: str | None = None, latency_ms: int | None = None) -> SourceSpec:
    """``spec`` with tvrun's ``--input-codec`` / ``--latency`` (rtsp and rtp only; SourceError
    for other sources or bad values)."""
    if codec is None and latency_ms is None:
        return spec
    if spec.kind not in STREAM_KINDS:
        raise SourceError(f"--input-codec and --latency are for rtsp:// and rtp:// sources, not {spec.describe()}")
    opts = tuple((k, v) for k, v in spec.options if not (k == "codec" and codec) and not (k == "latency" and latency_ms is not None))
    if codec:
        opts += (("codec", codec),)
    if latency_ms is not None:
        opts += (("latency", str(int(latency_ms))),)
    out = SourceSpec(spec.kind, spec.location, opts, spec.uri)
    check_stream_options(out)
    return out
