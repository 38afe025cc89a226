"""H.264 writers for ``tvrun --output x.mp4``: PyAV vs imageio-ffmpeg vs OpenCV's mp4v.

    python -m benchmarks.video_encoders [--frames 120] [--json benchmarks/results/video_encoders_cpu.json]

Encodes the same frames (the 640×480 low-light sample clip's clean frames) with

- PyAV (``av``: FFmpeg's libraries in-process, libx264 inside the wheel),
- imageio-ffmpeg (an ``ffmpeg`` executable fed raw frames through a pipe, libx264 inside),
- OpenCV's ``VideoWriter`` with ``mp4v`` (MPEG-4 Part 2, what tvrun wrote before),

interleaved round by round, and reports per writer: ms per frame (median over rounds),
file size, PSNR of the decoded file against the input frames, the codec read back, and
the installed size of the package. Both x264 writers get tvrun's options
(``runtime.encoders.H264_OPTIONS``: preset and CRF); the PyAV one is tvrun's own writer.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from taskvec.errors import atomic_path

from runtime.encoders import H264_OPTIONS


def write_pyav(path: Path, frames: list[np.ndarray], fps: float, preset: str | None = None) -> None:
    from runtime.encoders import H264Writer

    h, w = frames[0].shape[:2]
    options = None if preset is None else {**H264_OPTIONS, "preset": preset}
    writer = H264Writer(path, fps, (w, h), container_format="mp4", options=options)
    for img in frames:
        writer.write(img)
    writer.release()


def write_imageio_ffmpeg(path: Path, frames: list[np.ndarray], fps: float) -> None:
    import imageio_ffmpeg

    h, w = frames[0].shape[:2]
    gen = imageio_ffmpeg.write_frames(str(path), (w, h), pix_fmt_in="bgr24", pix_fmt_out="yuv420p", fps=fps,
                                      codec="libx264", macro_block_size=1,
                                      output_params=["-preset", H264_OPTIONS["preset"], "-crf", H264_OPTIONS["crf"]])
    gen.send(None)
    for img in frames:
        gen.send(np.ascontiguousarray(img))
    gen.close()


def write_opencv_mp4v(path: Path, frames: list[np.ndarray], fps: float) -> None:
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
    for img in frames:
        writer.write(img)
    writer.release()


# the other x264 presets either side of tvrun's, same CRF, to show what the choice trades
OTHER_PRESETS = tuple(p for p in ("ultrafast", "superfast") if p != H264_OPTIONS["preset"])
WRITERS = {"pyav libx264": (write_pyav, "av"),
           **{f"pyav libx264 {p}": ((lambda path, frames, fps, p=p: write_pyav(path, frames, fps, p)), "av")
              for p in OTHER_PRESETS},
           "imageio-ffmpeg libx264": (write_imageio_ffmpeg, "imageio-ffmpeg"),
           "opencv mp4v": (write_opencv_mp4v, "opencv-python")}


def read_back(path: Path) -> tuple[str, list[np.ndarray]]:
    from runtime.encoders import video_codec

    cap = cv2.VideoCapture(str(path))
    out = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        out.append(img)
    cap.release()
    return video_codec(path), out


def psnr(a: list[np.ndarray], b: list[np.ndarray]) -> float:
    n = min(len(a), len(b))
    mse = np.mean([np.mean((x.astype(np.float32) - y.astype(np.float32)) ** 2) for x, y in zip(a[:n], b[:n])])
    return round(float(10 * np.log10(255.0 ** 2 / max(mse, 1e-12))), 2)


def installed_mib(dist: str) -> float | None:
    from importlib.metadata import PackageNotFoundError, distribution

    try:
        d = distribution(dist)
    except PackageNotFoundError:
        return None
    total = 0
    for f in d.files or []:
        p = Path(d.locate_file(f))
        if p.is_file():
            total += p.stat().st_size
    return round(total / 2**20, 1)


def measure(frames_n: int = 120, rounds: int = 3) -> dict:
    from runtime.sample import sample_frames

    import importlib.util

    frames = list(sample_frames(frames_n, (640, 480)))
    modules = {"av": "av", "imageio-ffmpeg": "imageio_ffmpeg", "opencv-python": "cv2"}
    writers = {k: v for k, v in WRITERS.items() if importlib.util.find_spec(modules[v[1]]) is not None}
    skipped = sorted({dist for _, dist in WRITERS.values()} - {dist for _, dist in writers.values()})
    if skipped:  # imageio-ffmpeg is a comparison only, not a dependency: pip install imageio-ffmpeg
        print(f"skipped (not installed): {', '.join(skipped)}")
    times: dict[str, list[float]] = {k: [] for k in writers}
    rows = {}
    with tempfile.TemporaryDirectory(prefix="tvenc-") as tmp:
        for r in range(rounds):
            for name, (fn, _) in writers.items():
                path = Path(tmp) / f"{name.replace(' ', '_')}.mp4"
                t0 = time.perf_counter()
                fn(path, frames, 30.0)
                times[name].append(1e3 * (time.perf_counter() - t0) / frames_n)
                if r == rounds - 1:
                    codec, back = read_back(path)
                    rows[name] = {"codec": codec, "bytes": path.stat().st_size, "frames_read": len(back),
                                  "psnr_db": psnr(frames, back)}
    for name, (_, dist) in writers.items():
        rows[name].update(ms_per_frame=round(statistics.median(times[name]), 3),
                          ms_per_frame_rounds=[round(t, 3) for t in times[name]], package=dist,
                          installed_mib=installed_mib(dist))
    from benchmarks.env import capture_environment

    return {"benchmark": "video_encoders", "frames": frames_n, "size": [640, 480], "rounds": rounds,
            "x264": dict(H264_OPTIONS), "results": rows, "environment": capture_environment()}


def to_markdown(rep: dict) -> str:
    lines = [f"# Video writers, {rep['frames']} frames 640×480 (median of {rep['rounds']} interleaved rounds)", "",
             "| writer | codec read back | ms/frame | file KiB | PSNR dB | package | installed MiB |",
             "|---|---|---:|---:|---:|---|---:|"]
    for name, r in rep["results"].items():
        lines.append(f"| {name} | {r['codec']} | {r['ms_per_frame']:.2f} | {r['bytes'] / 1024:.0f} | {r['psnr_db']:.2f} "
                     f"| {r['package']} | {r['installed_mib']} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.video_encoders", description=__doc__.split("\n")[0])
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", default="benchmarks/results/video_encoders_cpu.json")
    args = ap.parse_args(argv)
    rep = measure(args.frames, args.rounds)
    with atomic_path(Path(args.json)) as tmp:
        tmp.write_text(json.dumps(rep, indent=2) + "\n")
    with atomic_path(Path(args.json).with_suffix(".md")) as tmp:
        tmp.write_text(to_markdown(rep))
    print(to_markdown(rep))
    return 0


if __name__ == "__main__":
    sys.exit(main())
