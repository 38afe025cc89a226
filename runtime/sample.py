"""Demo clips made from the packaged held-out photos (``sample:TASK`` sources).

``make_sample_clip(task, path)`` pans and zooms slowly across the validation photos of
``taskvec.data.images.packaged_photos("val")`` (never seen in training, so the demo shows
generalisation) and writes an mp4:

- lowlight: the frames darkened the realistic way (``taskvec.data.tasks`` low-light: gamma,
  gain, shot + read noise; fixed parameters, deterministic noise per frame), plus the clean
  reference clip ``NAME.clean.mp4`` beside it so the PSNR gain can be measured;
- inpainting (and any other task): the clean clip; the hole comes from ``--mask-rect``.

    python -m runtime.sample --task lowlight --out clips/

``cached_sample_clip`` (what ``sample:TASK`` sources use) keeps the clips in the runtime
cache (``runtime.cache``), keyed by a hash of everything that makes the frames (task,
frames, size, seed, fps, the low-light parameters, the bytes of this generator and of the
photo loader, scikit-image's version); ``sample.json`` beside them records each clip's
sha256, checked on reuse, so a spoilt or half-copied clip is made again, never played.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import sys
from contextlib import ExitStack
from pathlib import Path

import cv2
import numpy as np

from runtime.cache import cache_root, file_digest
from taskvec.errors import UserError, atomic_path, one_line

# A dim indoor scene at high ISO: within the range the realistic low-light task trains on.
LOWLIGHT_PARAMS = {"gamma": 2.0, "gain": 0.35, "read_sigma": 0.02, "shot_sigma": 0.03}


def clean_path(path: str | Path) -> Path:
    """``clip.mp4`` → ``clip.clean.mp4``: the reference clip beside a degraded one."""
    p = Path(path)
    return p.with_name(f"{p.stem}.clean{p.suffix}")


def _photos_bgr(split: str = "val") -> list[np.ndarray]:
    from taskvec.data.images import packaged_photos

    photos = packaged_photos(split) or packaged_photos("all")
    if not photos:
        raise UserError("no packaged photos found (scikit-image's sample data is missing)")
    out = []
    for name in sorted(photos):
        rgb = photos[name].clamp(0, 1).permute(1, 2, 0).numpy()
        out.append(np.ascontiguousarray((rgb[..., ::-1] * 255 + 0.5).astype(np.uint8)))
    return out


def _camera_path(photo: np.ndarray, t: float, size: tuple[int, int], rng_phase: float) -> np.ndarray:
    """One frame: a window over ``photo`` that zooms 1.0→1.35 and pans across it (t in [0,1])."""
    w, h = size
    ph, pw = photo.shape[:2]
    base = max(w / pw, h / ph)  # cover the frame
    zoom = base * (1.0 + 0.35 * (0.5 - 0.5 * np.cos(np.pi * t)))
    span_x = max(0.0, pw * zoom - w)
    span_y = max(0.0, ph * zoom - h)
    fx = 0.5 + 0.45 * np.sin(2 * np.pi * (0.5 * t + rng_phase))
    fy = 0.5 + 0.45 * np.cos(2 * np.pi * (0.35 * t + rng_phase))
    tx, ty = -fx * span_x, -fy * span_y
    m = np.float32([[zoom, 0, tx], [0, zoom, ty]])
    return cv2.warpAffine(photo, m, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)


def darken(frame: np.ndarray, seed: int, params: dict | None = None) -> np.ndarray:
    """uint8 BGR → its realistic low-light version, deterministic in ``seed``.

    The formula of ``taskvec.data.tasks`` realistic low-light (``gain·x^gamma`` plus shot and
    read noise, ``std = sqrt(shot²·dark + read²)``), in numpy so a clip takes seconds."""
    p = {**LOWLIGHT_PARAMS, **(params or {})}
    lut = (p["gain"] * (np.arange(256, dtype=np.float32) / 255.0) ** p["gamma"]).astype(np.float32)
    dark = lut[frame]
    std = np.sqrt(np.float32(p["shot_sigma"]) ** 2 * dark + np.float32(p["read_sigma"]) ** 2)
    noise = np.random.default_rng(seed).standard_normal(frame.shape, dtype=np.float32)
    out = np.clip(dark + std * noise, 0.0, 1.0) * 255.0 + 0.5
    return out.astype(np.uint8)


def frame_seed(seed: int, i: int) -> int:
    """The noise seed of frame ``i`` of a clip made with ``seed`` (see :func:`darken`)."""
    return seed * 1_000_003 + i


def sample_frames(frames: int = 120, size: tuple[int, int] = (640, 480), seed: int = 0, split: str = "val",
                  photos: list[np.ndarray] | None = None):
    """The clean frames of the demo clip (uint8 HxWx3 BGR), one by one: a slow pan and zoom
    across each photo of ``split`` in turn (``val``: the held-out photos), or of ``photos``
    (uint8 BGR, e.g. :func:`taskvec.bank.bank_photos`) when given."""
    w, h = int(size[0]), int(size[1])
    photos = _photos_bgr(split) if photos is None else list(photos)
    if not photos:
        raise UserError("no photos to make frames from")
    per = int(np.ceil(frames / len(photos)))
    phases = np.random.default_rng(seed).uniform(0, 1, len(photos))
    for i in range(frames):
        k = min(i // per, len(photos) - 1)
        t = (i - k * per) / max(1, per - 1)
        yield _camera_path(photos[k], t, (w, h), float(phases[k]))


def _writer(path: Path, fps: float, size: tuple[int, int]) -> cv2.VideoWriter:
    fourcc = "MJPG" if path.suffix.lower() == ".avi" else "mp4v"
    w = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), fps, size)
    if not w.isOpened():
        raise UserError(f"cannot write {path}: OpenCV has no {fourcc} encoder")
    return w


def make_sample_clip(
    task: str,
    path: str | Path,
    frames: int = 120,
    size: tuple[int, int] = (640, 480),
    seed: int = 0,
    fps: float = 30.0,
) -> str:
    """Write the demo clip for ``task`` to ``path`` (mp4/avi) and return it as a string.

    For lowlight the clean reference goes to :func:`clean_path` (``NAME.clean.mp4``). Same
    arguments → same frames. Files appear atomically."""
    from taskvec.data.tasks import list_tasks

    if task not in list_tasks():
        raise UserError(f"unknown task {task!r}; choose from {', '.join(list_tasks())}")
    if frames <= 0:
        raise UserError(f"frames must be positive, got {frames}")
    w, h = int(size[0]), int(size[1])
    if w < 16 or h < 16 or w > 4096 or h > 4096:
        raise UserError(f"bad sample size {w}x{h}: 16..4096 pixels per side")
    path = Path(path)
    dark = task == "lowlight"
    with ExitStack() as stack:
        tmp = stack.enter_context(atomic_path(path))
        main = _writer(tmp, fps, (w, h))
        clean = _writer(stack.enter_context(atomic_path(clean_path(path))), fps, (w, h)) if dark else None
        try:
            for i, frame in enumerate(sample_frames(frames, (w, h), seed)):
                if clean is not None:
                    clean.write(frame)
                    main.write(darken(frame, frame_seed(seed, i)))
                else:
                    main.write(frame)
        finally:
            main.release()
            if clean is not None:
                clean.release()
    return str(path)


SAMPLE_MANIFEST = "sample.json"


def _source_digest(module: str) -> str:
    """sha256 of a module's source file, found without importing it ('' when not found)."""
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return ""
    origin = getattr(spec, "origin", None) if spec else None
    return file_digest(origin) if origin and Path(origin).is_file() else ""


def sample_key(task: str, frames: int = 120, size: tuple[int, int] = (640, 480), seed: int = 0,
               fps: float = 30.0) -> str:
    """sha256 hex of every input of :func:`make_sample_clip`'s frames (see the module doc)."""
    try:
        from importlib.metadata import version

        skimage_version = version("scikit-image")
    except Exception:  # noqa: BLE001 — not installed: the generator fails later with its own message
        skimage_version = ""
    recipe = {
        "task": task, "frames": int(frames), "size": [int(size[0]), int(size[1])], "seed": int(seed),
        "fps": float(fps), "lowlight": LOWLIGHT_PARAMS, "skimage": skimage_version,
        "generator": _source_digest("runtime.sample"), "photos": _source_digest("taskvec.data.images"),
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()


def _cached_clips(folder: Path, key: str) -> dict[str, str] | None:
    """{file name: sha256} of a complete, intact cache entry, else None."""
    try:
        manifest = json.loads((folder / SAMPLE_MANIFEST).read_text())
        clips = dict(manifest["clips"])
        if manifest.get("key") != key or not clips:
            return None
        if all(file_digest(folder / name) == digest for name, digest in clips.items()):
            return clips
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def cached_sample_clip(
    task: str,
    frames: int = 120,
    size: tuple[int, int] = (640, 480),
    seed: int = 0,
    fps: float = 30.0,
    cache_dir: str | Path | None = None,
) -> tuple[Path, bool]:
    """(path of the demo clip for ``task``, True when it came from the cache).

    Made once by :func:`make_sample_clip` into ``<cache>/samples/<task>-<key[:16]>/``
    and reused while :func:`sample_key` and the clips' recorded sha256 match."""
    key = sample_key(task, frames, size, seed, fps)
    folder = cache_root(cache_dir) / "samples" / f"{task}-{key[:16]}"
    path = folder / f"{task}.mp4"
    if _cached_clips(folder, key) is not None:
        return path, True
    folder.mkdir(parents=True, exist_ok=True)
    make_sample_clip(task, path, frames=frames, size=size, seed=seed, fps=fps)
    names = [path] + ([clean_path(path)] if task == "lowlight" else [])
    manifest = {"key": key, "task": task, "frames": frames, "size": list(size), "seed": seed, "fps": fps,
                "clips": {p.name: file_digest(p) for p in names}}
    with atomic_path(folder / SAMPLE_MANIFEST) as tmp:
        tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    return path, False


def mark_hole(image: np.ndarray, hole: np.ndarray, dashed: bool = False) -> np.ndarray:
    """A copy of BGR ``image`` with the outline of ``hole`` (HxW, non-zero = hole, resized to
    the image) drawn in magenta with a dark rim, so it shows on any content; ``dashed``
    draws every other stretch of the outline (the output panel: the filled area stays visible)."""
    h, w = image.shape[:2]
    m = (hole > 0).astype(np.uint8)
    if m.shape != (h, w):
        m = cv2.resize(m, (w, h), interpolation=cv2.INTER_NEAREST)
    out = image.copy()
    contours, _ = cv2.findContours(m, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    thick = max(1, round(min(h, w) / 240))
    for c in contours:
        pts = c[:, 0, :]
        if dashed:
            seg = max(4, 6 * thick)
            pieces = [pts[i:i + seg] for i in range(0, len(pts), 2 * seg)]
        else:
            pieces = [np.vstack([pts, pts[:1]])]
        for p in pieces:
            if len(p) > 1:
                cv2.polylines(out, [p.reshape(-1, 1, 2)], False, (40, 40, 40), thick + 2, cv2.LINE_AA)
                cv2.polylines(out, [p.reshape(-1, 1, 2)], False, (255, 0, 255), thick, cv2.LINE_AA)
    return out


def write_before_after(before: np.ndarray, after: np.ndarray, path: str | Path, labels=("input", "output"),
                       hole: np.ndarray | None = None) -> Path:
    """Side-by-side PNG of two BGR frames (``after`` resized to ``before``'s height).
    ``hole`` (in-painting: HxW, non-zero = hole) is outlined on both panels (dashed on the
    output) and named in the input's label."""
    h = before.shape[0]
    if after.shape[0] != h:
        after = cv2.resize(after, (round(after.shape[1] * h / after.shape[0]), h), interpolation=cv2.INTER_AREA)
    if hole is not None and np.any(hole):
        before, after = mark_hole(before, hole), mark_hole(after, hole, dashed=True)
        labels = (f"{labels[0]} (hole outlined)", labels[1])
    gap = np.full((h, 4, 3), 255, np.uint8)
    panel = np.concatenate([before, gap, after], axis=1)
    scale = max(0.4, h / 800)
    for text, x in ((labels[0], 8), (labels[1], before.shape[1] + 12)):
        cv2.putText(panel, text, (x, int(28 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 3, cv2.LINE_AA)
        cv2.putText(panel, text, (x, int(28 * scale) + 4), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), 1,
                    cv2.LINE_AA)
    path = Path(path)
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), panel):
            raise UserError(f"cannot write {path}: unsupported image type (use .png or .jpg)")
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m runtime.sample", description="Write a demo clip for tvrun.")
    ap.add_argument("--task", required=True, help="lowlight (also writes NAME.clean.mp4) or inpainting")
    ap.add_argument("--out", required=True, help="output folder (the clip is TASK.mp4) or a .mp4/.avi path")
    ap.add_argument("--frames", type=int, default=120)
    ap.add_argument("--size", default="640x480", help="WxH, default 640x480")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    try:
        w, h = (int(v) for v in args.size.lower().split("x"))
        out = Path(args.out)
        target = out if out.suffix.lower() in (".mp4", ".avi") else out / f"{args.task}.mp4"
        made = make_sample_clip(args.task, target, args.frames, (w, h), args.seed)
    except (UserError, ValueError, OSError) as e:
        print(f"error: {one_line(e)}", file=sys.stderr)
        return 2
    print(made)
    if args.task == "lowlight":
        print(clean_path(made))
    return 0


if __name__ == "__main__":
    sys.exit(main())
