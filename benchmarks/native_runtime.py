"""``tvrun-native`` inside ``tvbench``: the native runtime end to end on the same clip, graph
and backend as the Python ``tvrun`` row, and the per-frame overhead of both.

Overhead per frame = everything but the graph call = wall time per frame (1000 / FPS) minus
the mean of the ``infer`` stage, taken from each runtime's own ``--stats`` record (the same
JSON schema). The ratio native / Python comes from one tvbench run.

The binary is ``$TVRUN_NATIVE`` or ``build/tvrun-native`` (``cmake -S . -B build && cmake
--build build``); without it tvbench says so under ``skipped`` and carries on.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def native_binary() -> Path | None:
    """``$TVRUN_NATIVE`` or ``build/tvrun-native`` when it is an executable file, else None."""
    p = Path(os.environ.get("TVRUN_NATIVE") or ROOT / "build" / "tvrun-native")
    return p if p.is_file() and os.access(p, os.X_OK) else None


def overhead_ms(fps: float, stages_ms: dict) -> float | None:
    """Wall ms per frame minus the mean graph call (``infer``): what the runtime adds."""
    infer = (stages_ms.get("infer") or {}).get("mean")
    if not fps or infer is None:
        return None
    return round(1e3 / fps - infer, 3)


def materialise_source(uri: str, task: str, workdir: Path) -> str:
    """A file the native runtime can open for ``uri``: ``sample:T`` becomes the same clip the
    Python runtime generates for it (640×480, 120 frames, seed 0); anything else is kept."""
    if not uri.startswith("sample:"):
        return uri
    from runtime.sample import make_sample_clip

    return make_sample_clip(uri.split(":", 1)[1].split("?", 1)[0], workdir / f"{task}-sample.mp4")


def native_end_to_end(binary: Path, onnx: Path, task: str, source: str, frames: int, warmup: int,
                      rect: tuple[int, int, int, int] | None, transfer: str | None, spin: bool = False,
                      log: Callable[[str], None] = print, timeout: float = 1800) -> tuple[dict, np.ndarray]:
    """Run ``tvrun-native`` headless on ``source`` (looped to ``frames``) → (row fields, per-frame ms)."""
    with tempfile.TemporaryDirectory(prefix="tvbench-native-") as tmp:
        stats_path = Path(tmp) / "stats.json"
        cmd = [str(binary), "--source", source, "--task", task, "--onnx", str(onnx), "--headless", "--loop",
               "--frames", str(frames), "--warmup", str(max(1, warmup)), "--stats", str(stats_path)]
        if rect is not None:
            cmd += ["--mask-rect", ",".join(map(str, rect))]
        if transfer is not None:
            cmd += ["--transfer", transfer]
        if spin:
            cmd.append("--ort-spin")
        log(f"end-to-end: tvrun-native{' --ort-spin' if spin else ''} on {source}, {frames} frames…")
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if r.returncode != 0:
            err = (r.stderr.strip().splitlines() or ["no message"])[-1]
            raise RuntimeError(f"tvrun-native failed ({r.returncode}): {err}")
        stats = json.loads(stats_path.read_text())
    per_frame = np.asarray(stats["extra"]["frame_ms"], dtype=np.float64)
    return stats, per_frame


def native_row(cfg, binary: Path, onnx: Path, python_row: dict, gmac_frame: float | None,
               log, spin: bool = False) -> tuple[dict, np.ndarray]:
    """tvrun-native on the Python row's clip, graph and backend (ONNX Runtime CPU, fp32): a
    tvbench end-to-end row; both rows get ``overhead_ms_per_frame``. ``spin``: ONNX Runtime's
    threads spin-wait between runs, as in the Python runtime's session (tvrun-native --ort-spin)."""
    from benchmarks.bench import _row
    from benchmarks.graph_runners import Runner
    from taskvec.errors import UserError

    w, h = python_row["resolution"]
    rect = (w * 5 // 12, h * 5 // 12, max(8, w // 6), max(8, h // 6)) if cfg.task == "inpainting" else None
    try:
        stats, per_frame = native_end_to_end(binary, onnx, cfg.task, cfg.source, cfg.frames, cfg.warmup, rect,
                                             cfg.transfer if cfg.task == "lowlight" else None, spin, log)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        raise UserError(f"end-to-end run of {binary}: {e}") from None
    runner = Runner(lambda: None, "steady_clock", f"tvrun-native{' --ort-spin' if spin else ''} {stats['backend']}")
    row = _row(cfg, "onnxruntime-native-spin" if spin else "onnxruntime-native", runner, "task-vector", "fp32", 1, per_frame, gmac_frame, None,
               scope="end-to-end")
    row.update(fps=round(stats["fps"], 2), throughput_fps=round(stats["fps"], 2), stages_ms={k: {q: round(v, 3) for q, v in s.items()}
                                                     for k, s in stats["stages_ms"].items()},
               source=cfg.source, source_detail=stats["source"], resolution=stats["resolution"],
               dropped=stats["dropped"], transfer=python_row.get("transfer"), energy_mj_per_frame=None,
               overhead_ms_per_frame=overhead_ms(stats["fps"], stats["stages_ms"]))
    python_row["overhead_ms_per_frame"] = overhead_ms(python_row["fps"], python_row["stages_ms"])
    return row, per_frame


def native_ratios(results: list[dict]) -> dict[str, float]:
    """Per-frame overhead (all but the graph call) and end-to-end FPS, tvrun-native vs tvrun."""
    py = next((r for r in results if r["backend"] == "onnxruntime" and r.get("scope") == "end-to-end"
               and r["precision"] == "fp32"), None)
    out: dict[str, float] = {}
    for backend, label in (("onnxruntime-native", "tvrun-native"), ("onnxruntime-native-spin", "tvrun-native --ort-spin")):
        nat = next((r for r in results if r["backend"] == backend), None)
        if nat is None or py is None or not nat.get("overhead_ms_per_frame") or not py.get("overhead_ms_per_frame"):
            continue
        out[f"end-to-end overhead per frame (all but the graph call): {label} / tvrun, onnxruntime fp32"] = round(
            nat["overhead_ms_per_frame"] / py["overhead_ms_per_frame"], 4)
        out[f"end-to-end FPS: {label} / tvrun, onnxruntime fp32"] = round(nat["fps"] / py["fps"], 4)
    return out
