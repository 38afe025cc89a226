"""Per-frame overhead of ``tvrun-native`` vs the Python ``tvrun``, rounds interleaved, with the
ONNX Runtime session set both ways (threads spinning between runs — ONNX Runtime's default and
the Python runtime's — or not — tvrun-native's default).

    python -m benchmarks.native_vs_python [--onnx FILE] [--rounds 3] [--frames 200]
        [--json benchmarks/results/native_vs_python_cpu.json]

Same clip (the 640×480 low-light sample), graph and backend (ONNX Runtime CPU) for all four;
overhead per frame = 1000 / FPS − mean ``infer`` ms, as in tvbench. Medians over rounds. The
Python "no spinning" variant re-creates the Python backend's session with
``session.intra_op.allow_spinning = 0`` (the Python runtime itself is left as it is).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
from pathlib import Path

import numpy as np

from benchmarks.native_runtime import native_binary, native_end_to_end, overhead_ms
from taskvec.errors import UserError, atomic_path


def python_run(onnx: str, clip: str, frames: int, spin: bool) -> dict:
    import onnxruntime as ort

    from runtime.backends.onnxruntime import OrtBackend, physical_cores
    from runtime.pipeline import run
    from runtime.predictor import LowLightEnhancer

    be = OrtBackend(onnx)
    if not spin:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = physical_cores()
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        be.session = ort.InferenceSession(onnx, sess_options=opts, providers=["CPUExecutionProvider"])
    with be:
        for _ in range(10):
            be.infer(np.zeros((1, 111, 111, 3), np.uint8))
        s = run(clip, LowLightEnhancer(be), backend_name=be.name, headless=True, frames=frames, loop=True)
    return {"fps": s.fps, "overhead_ms": overhead_ms(s.fps, s.stages_ms), "infer_mean_ms": s.stages_ms["infer"]["mean"]}


def native_run(binary: Path, onnx: str, clip: str, frames: int, spin: bool) -> dict:
    stats, _ = native_end_to_end(binary, Path(onnx), "lowlight", clip, frames, 10, None, "denoise", spin,
                                 log=lambda s: None)
    return {"fps": stats["fps"], "overhead_ms": overhead_ms(stats["fps"], stats["stages_ms"]),
            "infer_mean_ms": stats["stages_ms"]["infer"]["mean"]}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", default=None)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--frames", type=int, default=200)
    ap.add_argument("--json", default="benchmarks/results/native_vs_python_cpu.json")
    args = ap.parse_args(argv)
    binary = native_binary()
    if binary is None:
        raise SystemExit("error: tvrun-native is not built (cmake -S . -B build && cmake --build build)")
    from benchmarks.env import capture_environment
    from benchmarks.runtime_overhead import graph_for
    from runtime.sample import make_sample_clip

    variants = {"python, spinning (tvrun as shipped)": lambda: python_run(onnx, clip, args.frames, True),
                "python, no spinning": lambda: python_run(onnx, clip, args.frames, False),
                "native, no spinning (tvrun-native as shipped)": lambda: native_run(binary, onnx, clip, args.frames, False),
                "native, spinning (--ort-spin)": lambda: native_run(binary, onnx, clip, args.frames, True)}
    rounds: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="tvbench-") as tmp:
        onnx, note = graph_for("lowlight", args.onnx, Path(tmp) / "graph")
        clip = make_sample_clip("lowlight", Path(tmp) / "lowlight.mp4", frames=120, size=(640, 480))
        for r in range(args.rounds):
            row = {name: fn() for name, fn in variants.items()}
            row["loadavg_1m"] = os.getloadavg()[0]
            rounds.append(row)
            print(f"round {r}: " + "; ".join(f"{k}: {v['fps']:.1f} FPS, overhead {v['overhead_ms']:.1f} ms"
                                             for k, v in row.items() if isinstance(v, dict)), flush=True)
    med = {k: {q: round(statistics.median(r[k][q] for r in rounds), 3) for q in ("fps", "overhead_ms", "infer_mean_ms")}
           for k in variants}
    base = med["python, spinning (tvrun as shipped)"]["overhead_ms"]
    same = med["python, no spinning"]["overhead_ms"]
    result = {
        "benchmark": "native_vs_python", "task": "lowlight", "graph": note, "clip": "sample:lowlight 640x480",
        "frames_per_run": args.frames, "medians": med,
        "ratios": {"native as shipped / python as shipped (overhead)":
                   round(med["native, no spinning (tvrun-native as shipped)"]["overhead_ms"] / base, 3),
                   "native / python, both spinning (overhead)":
                   round(med["native, spinning (--ort-spin)"]["overhead_ms"] / base, 3),
                   "native / python, neither spinning (overhead)":
                   round(med["native, no spinning (tvrun-native as shipped)"]["overhead_ms"] / same, 3)},
        "rounds": rounds, "environment": capture_environment(),
        "notes": "overhead = 1000/FPS - mean infer ms; medians over interleaved rounds; shared machine (loadavg per round)",
    }
    with atomic_path(Path(args.json)) as t:
        t.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["ratios"], indent=2))
    return result


if __name__ == "__main__":
    try:
        main()
    except UserError as e:
        raise SystemExit(f"error: {e}") from None
