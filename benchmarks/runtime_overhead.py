"""Runtime overhead and end-to-end FPS of ``tvrun`` low-light on this machine (one run).

    python -m benchmarks.runtime_overhead [--onnx FILE] [--rounds 3] [--json benchmarks/results/runtime_overhead_cpu.json]

Measures, interleaved round by round so a busy machine biases every number alike:

- bare graph: ONNX Runtime ``session.run`` on one uint8 [1,111,111,3] cell, nothing else;
- runtime at the graph's input size: the full loop (capture thread, predictor with its
  gain map and guided filter, timing, null sink) on the sample clip resized to 111×111;
  overhead % = (loop ms/frame − bare ms) / bare ms;
- end to end at 640×480: the loop on the 640×480 sample clip, headless, with and without
  writing the mp4, FPS and per-stage p50;
- the PSNR of the input and of the output against the clean clip (low-light gain).

Reports medians over rounds. The graph is ``--onnx`` or the default model's cached export;
while no task vector ships for lowlight it falls back to the unpatched zero-shot graph (same
cost to within one Mul/Add per patched block) and says so in the JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from export.spec import SPEC
from runtime.backends.onnxruntime import OrtBackend
from runtime.pipeline import run
from runtime.predictor import LowLightEnhancer
from runtime.sample import clean_path, make_sample_clip
from taskvec.errors import UserError, atomic_path


def graph_for(task: str, onnx: str | None, cache: Path) -> tuple[str, str]:
    """(onnx path, note): --onnx, else the tvrun cache, else an unpatched zero-shot export."""
    if onnx:
        return onnx, "given"
    from runtime.cli import cached_onnx, default_runtime_taskvector

    try:
        tv = default_runtime_taskvector(task, "tiny")
        return str(cached_onnx(task, "tiny", taskvec=str(tv), log=lambda s: None)), f"tiny with {tv.name}"
    except UserError as e:
        if "task vector" not in str(e):
            raise
    from export.onnx_export import export_task
    from taskvec.model.checkpoint import load_model, model_fingerprint
    from taskvec.vectors.taskvector import TaskVector

    model = load_model("tiny")
    tv = TaskVector(task, "tiny", model_fingerprint(model), "none", "region", [], {}, {})
    res = export_task(task, model=model, taskvec=tv, out_dir=cache, check=True)
    return str(res.onnx_path), "tiny zero-shot WITHOUT task vector (none shipped yet)"


def resize_clip(src: str, dst: Path, size: tuple[int, int]) -> Path:
    cap = cv2.VideoCapture(src)
    w = cv2.VideoWriter(str(dst), cv2.VideoWriter_fourcc(*"mp4v"), 30.0, size)
    while True:
        ok, img = cap.read()
        if not ok:
            break
        w.write(cv2.resize(img, size, interpolation=cv2.INTER_AREA))
    cap.release()
    w.release()
    return dst


def bare_graph_ms(backend: OrtBackend, iters: int, warmup: int = 20) -> dict[str, float]:
    s = backend.spec
    x = np.random.default_rng(0).integers(0, 256, (1, s.height, s.width, s.channels), dtype=np.uint8)
    sess, feed, out = backend.session, {backend.spec.input_name: x}, [backend.spec.output_name]
    for _ in range(warmup):
        sess.run(out, feed)
    ts = []
    for _ in range(iters):
        t = time.perf_counter()
        sess.run(out, feed)
        ts.append((time.perf_counter() - t) * 1e3)
    a = np.asarray(ts)
    return {"p50": float(np.median(a)), "p90": float(np.percentile(a, 90)), "mean": float(a.mean())}


def psnr_gain(dark_clip: str, backend: OrtBackend, gain_mode: str = "luma") -> dict[str, float]:
    outs: list[np.ndarray] = []
    ins: list[np.ndarray] = []
    run(dark_clip, LowLightEnhancer(backend, gain_mode=gain_mode), headless=True,
        on_frame=lambda i, a, b: (ins.append(a), outs.append(b)))
    cap = cv2.VideoCapture(str(clean_path(dark_clip)))
    p_in, p_out = [], []
    for a, b in zip(ins, outs):
        ok, ref = cap.read()
        if not ok:
            break
        p_in.append(cv2.PSNR(a, ref))
        p_out.append(cv2.PSNR(b, ref))
    return {"input_db": float(np.mean(p_in)), "output_db": float(np.mean(p_out)),
            "gain_db": float(np.mean(p_out) - np.mean(p_in)), "frames": len(p_in)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--iters", type=int, default=300)
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--json", default="benchmarks/results/runtime_overhead_cpu.json")
    args = ap.parse_args(argv)
    from benchmarks.env import capture_environment

    with tempfile.TemporaryDirectory(prefix="tvbench-") as tmp:
        tmp = Path(tmp)
        onnx, note = graph_for("lowlight", args.onnx, tmp / "graph")
        clip = make_sample_clip("lowlight", tmp / "lowlight.mp4", frames=args.frames, size=(640, 480))
        small = resize_clip(clip, tmp / "small.mp4", (SPEC.width, SPEC.height))  # one cell per frame
        rounds = []
        with OrtBackend(onnx) as be:
            for r in range(args.rounds):
                bare = bare_graph_ms(be, args.iters)
                s111 = run(str(small), LowLightEnhancer(be), backend_name=be.name, headless=True)
                e2e = run(clip, LowLightEnhancer(be), backend_name=be.name, headless=True)
                e2e_mp4 = run(clip, LowLightEnhancer(be), backend_name=be.name, headless=True,
                              output=tmp / "out.mp4")
                loop_ms = 1e3 / s111.fps
                rounds.append({
                    "bare_graph_ms": bare,
                    "runtime_111_ms_per_frame": loop_ms,
                    "overhead_pct": 100 * (loop_ms - bare["mean"]) / bare["mean"],
                    "e2e_640x480_fps": e2e.fps,
                    "e2e_640x480_mp4_fps": e2e_mp4.fps,
                    "e2e_stages_p50_ms": {k: round(v["p50"], 3) for k, v in e2e.stages_ms.items()},
                    "runtime_111_stages_p50_ms": {k: round(v["p50"], 3) for k, v in s111.stages_ms.items()},
                    "loadavg_1m": os.getloadavg()[0],
                })
                print(f"round {r}: bare {bare['mean']:.2f} ms, loop@111 {loop_ms:.2f} ms "
                      f"(+{rounds[-1]['overhead_pct']:.1f} %), 640x480 {e2e.fps:.1f} FPS "
                      f"({e2e_mp4.fps:.1f} writing mp4)", flush=True)
            psnr = {"luma": psnr_gain(clip, be, "luma"), "rgb": psnr_gain(clip, be, "rgb")}
            backend_name = be.name

    def med(key: str) -> float:
        return float(statistics.median(r[key] for r in rounds))

    result = {
        "benchmark": "runtime_overhead",
        "task": "lowlight",
        "graph": note,
        "backend": backend_name,
        "clip": f"sample:lowlight 640x480, {args.frames} frames",
        "bare_graph_ms_mean": float(statistics.median(r["bare_graph_ms"]["mean"] for r in rounds)),
        "runtime_111_ms_per_frame": med("runtime_111_ms_per_frame"),
        "overhead_pct": med("overhead_pct"),
        "e2e_640x480_fps": med("e2e_640x480_fps"),
        "e2e_640x480_mp4_fps": med("e2e_640x480_mp4_fps"),
        "psnr_vs_clean": psnr,
        "rounds": rounds,
        "environment": capture_environment(),
        "notes": "overhead = (tvrun loop per frame on a 111x111 clip - bare session.run) / bare; "
                 "medians over rounds; the machine may be shared (see loadavg_1m per round)",
    }
    out = Path(args.json)
    with atomic_path(out) as t:
        t.write_text(json.dumps(result, indent=2) + "\n")
    print(f"bare graph {result['bare_graph_ms_mean']:.2f} ms; runtime overhead {result['overhead_pct']:.1f} %; "
          f"640x480 end to end {result['e2e_640x480_fps']:.1f} FPS ({result['e2e_640x480_mp4_fps']:.1f} writing mp4); "
          f"PSNR {psnr['luma']['input_db']:.2f} → {psnr['luma']['output_db']:.2f} dB (luma gain), "
          f"{psnr['rgb']['output_db']:.2f} dB (rgb gain); wrote {out}")
    return result


if __name__ == "__main__":
    main()
