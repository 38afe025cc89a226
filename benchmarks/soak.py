"""Soak: run the low-light loop for many frames from a looped clip and watch memory.

    python -m benchmarks.soak [--frames 10000] [--onnx FILE] [--json benchmarks/results/soak_cpu.json]

A short 640×480 sample clip is replayed (``LoopSource``) through the same loop as ``tvrun``
(capture thread, predictor, timing, null sink); RSS (psutil) is sampled every
``--every`` frames. Reports RSS at start/end, the maximum, and the growth over the second
half (steady state), plus FPS.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.runtime_overhead import graph_for
from runtime.backends.onnxruntime import OrtBackend
from runtime.pipeline import LoopSource, rss_mb, run
from runtime.predictor import LowLightEnhancer
from runtime.sample import make_sample_clip
from runtime.sources import open_source
from taskvec.errors import atomic_path


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--frames", type=int, default=10000)
    ap.add_argument("--clip-frames", type=int, default=60)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--onnx", default=None)
    ap.add_argument("--json", default="benchmarks/results/soak_cpu.json")
    args = ap.parse_args(argv)
    samples: list[tuple[int, float]] = []
    with tempfile.TemporaryDirectory(prefix="tvsoak-") as tmp:
        tmp = Path(tmp)
        onnx, note = graph_for("lowlight", args.onnx, tmp / "graph")
        clip = make_sample_clip("lowlight", tmp / "soak.mp4", frames=args.clip_frames, size=(640, 480))
        rss_before = rss_mb()
        with OrtBackend(onnx) as be:
            src = LoopSource(open_source(clip))

            def on_frame(i, a, b):
                if i % args.every == 0:
                    samples.append((i, round(rss_mb(), 1)))
                    if i % (args.every * 8) == 0:
                        print(f"frame {i}: rss {samples[-1][1]} MiB", flush=True)

            stats = run(src, LowLightEnhancer(be), backend_name=be.name, headless=True, frames=args.frames,
                        on_frame=on_frame)
            loops = src.loops
    half = [r for i, r in samples if i >= args.frames // 2]
    result = {
        "benchmark": "soak",
        "graph": note,
        "backend": stats.backend,
        "frames": stats.frames,
        "clip": f"sample:lowlight 640x480, {args.clip_frames} frames, looped {loops} times",
        "fps": stats.fps,
        "rss_mb": {"before_run": round(rss_before, 1), **stats.rss_mb,
                   "max": max(r for _, r in samples) if samples else None,
                   "second_half_growth": round(half[-1] - half[0], 1) if len(half) > 1 else None},
        "rss_samples": samples,
        "stages_ms": {k: {m: round(v, 3) for m, v in s.items()} for k, s in stats.stages_ms.items()},
        "dropped": stats.dropped,
    }
    out = Path(args.json)
    with atomic_path(out) as t:
        t.write_text(json.dumps(result, indent=2) + "\n")
    print(f"{stats.frames} frames at {stats.fps:.1f} FPS; RSS {stats.rss_mb['start']} → {stats.rss_mb['end']} MiB "
          f"(max {result['rss_mb']['max']}, second-half growth {result['rss_mb']['second_half_growth']}); wrote {out}")
    return result


if __name__ == "__main__":
    main()
