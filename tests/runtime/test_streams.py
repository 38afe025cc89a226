"""RTP/RTSP the way jetson-inference names them: rtp://@:PORT in, rtsp codec and latency,
rtp://HOST:PORT and display://0 out (GStreamer strings checked as text; RTP over loopback
for real, through PyAV's FFmpeg, no GStreamer needed)."""

from __future__ import annotations

import socket
import threading
import time

import numpy as np
import pytest

from runtime.sinks import SinkError, check_output_path
from runtime.stream_sink import RtpSink, parse_output_uri
from runtime.sources import (SourceError, gstreamer_pipeline, open_source, parse_source, rtp_sdp,
                             with_stream_options)


def free_udp_port() -> int:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def test_rtp_source_uris():
    s = parse_source("rtp://@:5000")
    assert s.kind == "rtp" and s.is_live and s.rtp_address == ("", 5000) and s.stream_codec == "h264"
    assert s.latency_ms == 200
    m = parse_source("rtp://239.1.1.1:5004?codec=h265&latency=40")
    assert m.rtp_address == ("239.1.1.1", 5004) and m.stream_codec == "h265" and m.latency_ms == 40
    for bad, needle in (("rtp://host", "rtp://@:PORT"), ("rtp://@:99999", "rtp://@:PORT"),
                        ("rtp://@:5000?codec=vp9", "h264 or h265"), ("rtp://@:5000?latency=-5", "0..10000")):
        with pytest.raises(SourceError, match=needle.replace("?", r"\?")):
            parse_source(bad)


def test_rtsp_codec_and_latency_reach_the_pipeline():
    spec = with_stream_options(parse_source("rtsp://u:pw@cam.local:8554/live?channel=1"), "h265", 50)
    assert spec.location == "rtsp://u:pw@cam.local:8554/live?channel=1"  # the URL is left alone
    jetson = gstreamer_pipeline(spec, jetson=True)
    assert "latency=50" in jetson and "rtph265depay ! h265parse ! nvv4l2decoder" in jetson
    desktop = gstreamer_pipeline(spec, jetson=False)
    assert "avdec_h265" in desktop and "nvv4l2decoder" not in desktop
    default = gstreamer_pipeline(parse_source("rtsp://cam/x"), jetson=True)
    assert "latency=200" in default and "rtph264depay" in default
    rtp = gstreamer_pipeline(parse_source("rtp://239.1.1.1:5004?codec=h265&latency=40"), jetson=False)
    assert rtp.startswith("udpsrc port=5004 address=239.1.1.1 ") and "encoding-name=H265" in rtp
    assert "rtpjitterbuffer latency=40" in rtp and rtp.endswith("appsink drop=1 max-buffers=1")
    assert "address=" not in gstreamer_pipeline(parse_source("rtp://@:5000"), jetson=False)
    assert "m=video 5004 RTP/AVP 96" in rtp_sdp(parse_source("rtp://239.1.1.1:5004?codec=h265"))
    assert "a=rtpmap:96 H265/90000" in rtp_sdp(parse_source("rtp://239.1.1.1:5004?codec=h265"))
    with pytest.raises(SourceError, match="rtsp:// and rtp://"):
        with_stream_options(parse_source("clip.mp4"), "h264", None)


def test_output_uris():
    assert parse_output_uri("display://0") == ("display", 0)
    assert parse_output_uri("rtp://10.0.0.20:5000") == ("rtp", ("10.0.0.20", 5000, "h264"))
    assert parse_output_uri("rtp://10.0.0.20:5000?codec=h265")[1][2] == "h265"
    assert parse_output_uri("out/x.mp4") is None
    check_output_path("display://0")
    for bad, needle in (("display://1", "default display"), ("rtp://:5000", "receiver's address"),
                        ("srt://x:1", "unsupported output"), ("display://x", "display://N")):
        with pytest.raises(SinkError, match=needle):
            check_output_path(bad)


def _pattern(i: int) -> np.ndarray:
    yy, xx = np.mgrid[0:96, 0:128]
    return np.stack([(xx + 4 * i) % 256, yy * 2, (xx + yy) % 256], -1).astype(np.uint8)


def test_rtp_sink_sends_rtp_packets():
    port = free_udp_port()
    rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    rx.bind(("127.0.0.1", port))
    rx.settimeout(5)
    try:
        with RtpSink("127.0.0.1", port, 30.0) as sink:
            for i in range(5):
                sink.write(_pattern(i))
        packets = []
        rx.settimeout(0.5)
        while True:
            try:
                packets.append(rx.recv(65536))
            except socket.timeout:
                break
    finally:
        rx.close()
    assert len(packets) >= 5
    assert all(p[0] >> 6 == 2 for p in packets)  # RTP version 2
    assert {p[1] & 0x7F for p in packets} == {96}  # dynamic payload type 96, what rtp:// sources expect
    assert sum(len(p) for p in packets) > 1000


def test_rtp_loopback_from_tvrun_output_to_tvrun_source():
    """An rtp:// output received by an rtp:// source on the same host: frames arrive with
    their size (here through FFmpeg and an SDP description; GStreamer where OpenCV has it)."""
    port = free_udp_port()
    stop = threading.Event()

    def send() -> None:
        with RtpSink("127.0.0.1", port, 30.0) as sink:
            i = 0
            while not stop.is_set():
                sink.write(_pattern(i))
                i += 1
                time.sleep(1 / 30)

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    try:
        with open_source(f"rtp://@:{port}") as src:
            assert src.size == (128, 96) and src.is_live
            frames = [src.read() for _ in range(5)]
        assert all(f is not None and f.image.shape == (96, 128, 3) for f in frames)
    finally:
        stop.set()
        sender.join(5)


def test_tvrun_stream_options_refused_where_they_do_not_apply(tmp_path, exported_lowlight, clip):
    from click.testing import CliRunner

    from runtime.cli import main

    onnx, _, _ = exported_lowlight
    base = ["--task", "lowlight", "--onnx", str(onnx), "--headless"]
    r = CliRunner().invoke(main, ["--source", str(clip), *base, "--latency", "50"])
    assert r.exit_code == 2 and "--input-codec and --latency are for rtsp:// and rtp://" in r.stderr
    r = CliRunner().invoke(main, ["--source", str(clip), *base, "--output", "display://0"])
    assert r.exit_code == 2 and "cannot be --headless" in r.stderr
