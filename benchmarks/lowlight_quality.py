"""Low-light quality at full resolution: tvrun's transfers against the classical filters.

    python -m benchmarks.lowlight_quality [--onnx FILE] [--photos val|train|bank-val] [--bank runs/bank]
        [--frames 120] [--every 4]
        [--json benchmarks/results/lowlight_quality.json] [--markdown benchmarks/results/lowlight_quality.md]
        [--picture docs/images/demo_before_after.jpg]

One run, the same frames for every row: the demo clip's camera path (``runtime.sample``,
640×480, ``--frames`` frames) over the ``--photos`` split, darkened at each camera setting
of :data:`SETTINGS` (the realistic construction at three levels, the first being the
sample clip's, and the paper's plain 0.5×), frames kept in memory (no video codec). Every
``--every``-th frame is scored against its clean frame with PSNR and SSIM
(scikit-image); tvrun's modes see every frame in order (the temporal one needs them).
Rows: the dark input, ``tvrun`` in each transfer mode (:mod:`runtime.lowlight`), and the
filters a user would reach for — auto-gamma, CLAHE on L, percentile stretch + gamma, the
same + ``cv2.fastNlMeansDenoisingColored`` — each with its median time per frame.

Which photos chose what: the transfer's denoise parameters were chosen with ``--photos
train`` (the training photos); the shadow-lift rule (``lift``, in stops of exposure) with
``--photos bank-val`` — the wallpapers of the *val* split of the image bank
(``taskvec data fetch --out runs/bank``; its test split is never read here), checked on
the training photos. ``--photos val`` (held out, the sample clip's photos) only reports:
it has been run 4 times in all (twice in the first round of tuning, once in the second,
once for the lift rule).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import cv2
import numpy as np

from runtime.lowlight import TRANSFER_MODES, LowLightParams, estimate_noise
from runtime.sample import LOWLIGHT_PARAMS, darken, frame_seed, sample_frames
from taskvec.errors import UserError, atomic_path, one_line

SETTINGS: dict[str, dict[str, float]] = {
    "sample (γ2, ×0.35, noise .02/.03)": dict(LOWLIGHT_PARAMS),
    "darker (γ2.5, ×0.25, noise .03/.04)": {"gamma": 2.5, "gain": 0.25, "read_sigma": 0.03, "shot_sigma": 0.04},
    "darkest (γ3, ×0.18, noise .035/.045)": {"gamma": 3.0, "gain": 0.18, "read_sigma": 0.035, "shot_sigma": 0.045},
    "paper 0.5× (no noise)": {"gamma": 1.0, "gain": 0.5, "read_sigma": 0.0, "shot_sigma": 0.0},
}


# ----------------------------------------------------------------------------- classical filters

def _grey01(bgr: np.ndarray) -> np.ndarray:
    return cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32) / 255.0


def _gamma_lut(gamma: float) -> np.ndarray:
    return np.clip((np.arange(256) / 255.0) ** gamma * 255.0 + 0.5, 0, 255).astype(np.uint8)


def auto_gamma(bgr: np.ndarray) -> np.ndarray:
    """``out = in^γ`` with γ = log 0.5 / log(mean luma): the mean goes to mid-grey."""
    m = float(np.clip(_grey01(bgr).mean(), 1e-3, 0.999))
    return cv2.LUT(bgr, _gamma_lut(np.log(0.5) / np.log(m)))


def clahe_l(bgr: np.ndarray) -> np.ndarray:
    """CLAHE (clip 2, 8×8 tiles) on the L channel of Lab."""
    lab = cv2.cvtColor(bgr, cv2.COLOR_BGR2LAB)
    lab[..., 0] = cv2.createCLAHE(clipLimit=2.0, tileGridSize=(8, 8)).apply(np.ascontiguousarray(lab[..., 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2BGR)


def stretch_gamma(bgr: np.ndarray) -> np.ndarray:
    """Luma percentiles 0.5–99.5 stretched to 0–255 (all channels alike), then auto-gamma."""
    g = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    lo, hi = np.percentile(g, (0.5, 99.5))
    hi = max(hi, lo + 1.0)
    lut = np.clip((np.arange(256) - lo) / (hi - lo) * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return auto_gamma(cv2.LUT(bgr, lut))


def stretch_gamma_nlm(bgr: np.ndarray) -> np.ndarray:
    """stretch + gamma, then non-local means with h = hColor = 2× the noise σ measured after it."""
    s = stretch_gamma(bgr)
    h = float(max(3.0, 2.0 * estimate_noise(_grey01(s)) * 255.0))
    return cv2.fastNlMeansDenoisingColored(s, None, h, h, 7, 21)


CLASSICAL: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "auto-gamma": auto_gamma,
    "CLAHE on L": clahe_l,
    "stretch + gamma": stretch_gamma,
    "stretch + gamma + NLM": stretch_gamma_nlm,
}


# ----------------------------------------------------------------------------- scoring

def score(out: np.ndarray, ref: np.ndarray) -> tuple[float, float]:
    """(PSNR dB, SSIM) of uint8 BGR ``out`` against ``ref`` (scikit-image, data range 255)."""
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    return (float(peak_signal_noise_ratio(ref, out, data_range=255)),
            float(structural_similarity(ref, out, channel_axis=2, data_range=255)))


def _summary(rows: list[tuple[float, float]], ms: list[float]) -> dict:
    a = np.asarray(rows)
    return {"psnr_db": round(float(a[:, 0].mean()), 3), "ssim": round(float(a[:, 1].mean()), 4),
            "ms_per_frame": round(float(statistics.median(ms)), 2) if ms else 0.0, "frames_scored": len(rows)}


PHOTO_SETS = ("val", "train", "bank-val")
PHOTOS_NOTE = {"val": "held-out photos (the sample clip's)", "train": "training photos",
               "bank-val": "validation split of the image bank (`taskvec data fetch`), where the lift rule was chosen"}


def clean_frames(photos: str, frames: int, size: tuple[int, int], seed: int = 0,
                 bank: str | Path = "runs/bank") -> list[np.ndarray]:
    """The clean frames (uint8 HxWx3 BGR) of the demo camera path over ``photos``: the packaged
    ``val``/``train`` photos, or ``bank-val`` — the wallpapers of the val split of the bank
    folder ``bank`` (never its test split), shrunk like the packaged photos."""
    if photos not in PHOTO_SETS:
        raise UserError(f"unknown --photos {photos!r}; choose from {', '.join(PHOTO_SETS)}")
    if photos == "bank-val":
        from taskvec.data.bank import bank_photos

        return list(sample_frames(frames, size, seed, photos=list(bank_photos(bank, "val").values())))
    return list(sample_frames(frames, size, seed, photos))


def evaluate(onnx: str, photos: str = "val", frames: int = 120, every: int = 4, seed: int = 0,
             modes: tuple[str, ...] = TRANSFER_MODES, keep: int | None = None, log=print,
             backend=None, size: tuple[int, int] = (640, 480), bank: str | Path = "runs/bank") -> dict:
    """All rows for every setting; ``keep``: index of a scored frame whose images are
    returned under ``_images`` (for the picture); ``backend``: use this one instead of
    opening ``onnx`` with ONNX Runtime; ``bank``: the bank folder of ``photos="bank-val"``."""
    from contextlib import nullcontext

    from runtime.backends.onnxruntime import OrtBackend
    from runtime.predictor import LowLightEnhancer
    from runtime.timing import StageTimer

    clean = clean_frames(photos, frames, size, seed, bank)
    scored = list(range(0, frames, every))
    results: dict[str, dict] = {}
    images: dict[str, dict[str, np.ndarray]] = {}
    with (nullcontext(backend) if backend is not None else OrtBackend(onnx)) as be:
        for setting, cam in SETTINGS.items():
            dark = [darken(f, frame_seed(seed, i), cam) for i, f in enumerate(clean)]
            rows: dict[str, dict] = {"dark input": _summary([score(dark[i], clean[i]) for i in scored], [])}
            pics = {"clean": clean[scored[keep]], "dark input": dark[scored[keep]]} if keep is not None else {}
            for mode in modes:
                enh = LowLightEnhancer(be, params=LowLightParams.from_options(mode))
                timer, sc, ms = StageTimer(), [], []
                for i, d in enumerate(dark):
                    t0 = time.perf_counter()
                    out = enh(d, timer)
                    ms.append((time.perf_counter() - t0) * 1e3)
                    if i in scored:
                        sc.append(score(out, clean[i]))
                        if keep is not None and i == scored[keep]:
                            pics[f"tvrun {mode}"] = out
                row = _summary(sc, ms)
                row["stages_p50_ms"] = {k: round(v["p50"], 2) for k, v in timer.summary().items()}
                rows[f"tvrun --transfer {mode}"] = row
            for name, fn in CLASSICAL.items():
                sc, ms = [], []
                for j, i in enumerate(scored):
                    t0 = time.perf_counter()
                    out = fn(dark[i])
                    ms.append((time.perf_counter() - t0) * 1e3)
                    sc.append(score(out, clean[i]))
                    if keep is not None and j == keep:
                        pics[name] = out
                rows[name] = _summary(sc, ms)
            results[setting] = rows
            images[setting] = pics
            best = max(rows, key=lambda r: rows[r]["ssim"])
            log(f"{setting}: " + "; ".join(f"{k} {v['psnr_db']:.2f} dB / {v['ssim']:.3f}" for k, v in rows.items())
                + f"  (best SSIM: {best})")
    return {"results": results, "_images": images, "scored_frames": scored}


# ----------------------------------------------------------------------------- report

def to_markdown(report: dict) -> str:
    lines = [f"# Low-light quality at 640×480 — {report['photos_note']}", "",
             f"Command: `{report['command']}`. Graph: {report['graph']}. {report['frames_note']}",
             "PSNR (dB) and SSIM (scikit-image) against the clean frames; time = median ms per frame on this "
             "machine (tvrun: preprocess + ONNX Runtime graph + postprocess; classical: the filter alone).", ""]
    for setting, rows in report["results"].items():
        dark = rows["dark input"]["psnr_db"]
        lines += [f"## {setting}", "", "| method | PSNR dB | gain over input dB | SSIM | ms/frame |",
                  "|---|---:|---:|---:|---:|"]
        for name, r in rows.items():
            ms = f"{r['ms_per_frame']:.1f}" if r["ms_per_frame"] else "—"
            lines.append(f"| {name} | {r['psnr_db']:.2f} | {r['psnr_db'] - dark:+.2f} | {r['ssim']:.3f} | {ms} |")
        lines.append("")
    return "\n".join(lines) + "\n"


def write_picture(images: dict[str, np.ndarray], path: str | Path,
                  crop: tuple[int, int, int] = (300, 170, 120)) -> Path:
    """Row 1: dark input | gain map | new default | clean (half size); row 2: the same
    ``crop`` (x, y, side) of each, enlarged 2× (nearest) so the noise shows."""
    names = ["dark input", "tvrun gain", "tvrun denoise", "clean"]
    labels = ["dark input", "before: --transfer gain", "now: default (denoise)", "clean reference"]
    h0, w0 = images["clean"].shape[:2]
    s = min(crop[2], w0, h0)
    x, y = min(crop[0], w0 - s), min(crop[1], h0 - s)
    tops, crops = [], []
    for n, lab in zip(names, labels):
        im = images[n]
        top = cv2.resize(im, (im.shape[1] // 2, im.shape[0] // 2), interpolation=cv2.INTER_AREA)
        cv2.rectangle(top, (x // 2, y // 2), ((x + s) // 2, (y + s) // 2), (0, 255, 255), 1)
        for colour, width in (((0, 0, 0), 3), ((255, 255, 255), 1)):
            cv2.putText(top, lab, (6, 18), cv2.FONT_HERSHEY_SIMPLEX, 0.5, colour, width, cv2.LINE_AA)
        tops.append(top)
        crops.append(cv2.resize(im[y:y + s, x:x + s], (top.shape[1], top.shape[1]), interpolation=cv2.INTER_NEAREST))
    gap_v = np.full((tops[0].shape[0], 4, 3), 255, np.uint8)
    row1 = np.concatenate(sum(([t, gap_v] for t in tops), [])[:-1], axis=1)
    gap_c = np.full((crops[0].shape[0], 4, 3), 255, np.uint8)
    row2 = np.concatenate(sum(([c, gap_c] for c in crops), [])[:-1], axis=1)
    panel = np.concatenate([row1, np.full((4, row1.shape[1], 3), 255, np.uint8), row2], axis=0)
    path = Path(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), panel, [cv2.IMWRITE_JPEG_QUALITY, 92]):
            raise UserError(f"cannot write {path}: unsupported image type")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.lowlight_quality", description=__doc__.split("\n\n")[0])
    ap.add_argument("--onnx", default=None, help="low-light graph (default: tiny + the shipped realistic vector)")
    ap.add_argument("--photos", choices=PHOTO_SETS, default="val",
                    help="val: held-out photos (the sample clip's), report only; train: the training photos; "
                         "bank-val: the image bank's val split (--bank), to choose the transfer on")
    ap.add_argument("--bank", default="runs/bank", help="image bank folder or .tar for --photos bank-val "
                                                         "(make one with `taskvec data fetch --out runs/bank`)")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--every", type=int, default=4, help="score every N-th frame")
    ap.add_argument("--json", default=None, help="default benchmarks/results/lowlight_quality_<photos>.json")
    ap.add_argument("--markdown", default=None, help="default benchmarks/results/lowlight_quality_<photos>.md")
    ap.add_argument("--picture", default=None, help="before/after JPG/PNG of one frame at the sample setting")
    args = ap.parse_args(argv)
    try:
        if args.frames < 1 or args.every < 1:
            raise UserError("--frames and --every must be positive")
        with tempfile.TemporaryDirectory(prefix="tvll-") as tmp:
            from benchmarks.runtime_overhead import graph_for

            onnx, note = graph_for("lowlight", args.onnx, Path(tmp))
            n_scored = len(range(0, args.frames, args.every))
            rep = evaluate(onnx, args.photos, args.frames, args.every, keep=n_scored // 2 if args.picture else None,
                           log=lambda s: print(s, file=sys.stderr, flush=True), bank=args.bank)
    except (UserError, ValueError, OSError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    from benchmarks.env import capture_environment

    images = rep.pop("_images")
    report = {
        "benchmark": "lowlight_quality", "graph": note, "photos": args.photos,
        "photos_note": PHOTOS_NOTE[args.photos],
        "command": "python -m benchmarks.lowlight_quality " + " ".join(argv if argv is not None else sys.argv[1:]),
        "frames_note": f"{args.frames} frames of the demo camera path, every {args.every}th scored "
                       f"({len(rep['scored_frames'])} per setting).",
        "settings": SETTINGS, "transfer_defaults": LowLightParams().to_dict(), **rep,
        "environment": capture_environment(),
    }
    stem = f"benchmarks/results/lowlight_quality_{args.photos}"
    js, md = Path(args.json or f"{stem}.json"), Path(args.markdown or f"{stem}.md")
    with atomic_path(js) as t:
        t.write_text(json.dumps(report, indent=2, ensure_ascii=False) + "\n")
    with atomic_path(md) as t:
        t.write_text(to_markdown(report))
    if args.picture:
        write_picture(images[next(iter(SETTINGS))], args.picture)
    print(to_markdown(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
