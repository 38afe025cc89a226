"""Training cells from an image bank (``taskvec data fetch``): wallpaper crops at random
scales and cut-out stamps composited onto them (DESIGN §7).

- :class:`ImageBank` loads one split of a bank: wallpapers as [3,H,W] float tensors in
  [0,1] (shrunk so a crop of 1/30 of the picture still has ≥ 111 px), stamps as [4,h,w]
  RGBA.
- :func:`bank_crops`: random crops covering 1/30 … all of a wallpaper, flipped and
  colour-jittered (:func:`taskvec.data.images.random_crops`).
- :func:`composite_stamps`: a stamp per image at a random size, place and flip →
  ``(images, masks)``: natural objects with exact masks for segmentation, and real object
  content under in-painting holes.

The split is the manifest's, chosen per picture group (:func:`taskvec.data.fetch.split_of`):
no crop of a validation picture is ever drawn for training.
"""

from __future__ import annotations

import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from taskvec.data.images import _u, prepare_photos, random_crops
from taskvec.errors import UserError
from taskvec.data.fetch import Split, manifest_hash, read_manifest
from taskvec.geometry import CELL

CROP_SCALE = (1 / 30, 1.0)  # fraction of the wallpaper's area a cell covers
STAMP_SIDE = (0.3, 0.85)  # a stamp's longer side as a fraction of the cell


@dataclass
class ImageBank:
    """One split of an image bank, in memory on ``device``."""

    wallpapers: list[Tensor]
    stamps: list[Tensor]
    manifest_sha256: str
    groups: set[str]

    @classmethod
    def load(cls, folder: str | Path, split: Split, device=None, size: int = CELL) -> "ImageBank":
        """Load ``split`` of a bank folder, or of a packed bank (a ``.tar`` from :func:`pack_bank`)."""
        folder = Path(folder)
        entries = [e for e in read_manifest(folder) if e.split == split]
        walls, stamps = [], []
        with _reader(folder) as read:
            encoded = [(e, read(e.path)) for e in entries]
        for e, data in encoded:
            img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
            if img is None:
                raise UserError(f"{folder / e.path}: unreadable image listed in the manifest")
            if e.kind == "wallpaper":
                rgb = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2RGB)
                walls.append(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1).float() / 255)
            elif img.ndim == 3 and img.shape[2] == 4:
                rgba = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
                stamps.append(torch.from_numpy(np.ascontiguousarray(rgba)).permute(2, 0, 1).float().to(device) / 255)
        if not walls:
            raise UserError(f"{folder}: no {split} wallpapers in the manifest")
        walls = prepare_photos(walls, size, CROP_SCALE, device)
        return cls(walls, stamps, manifest_hash(folder), {e.group for e in entries})


def bank_photos(folder: str | Path, split: Split, max_side: int = 512) -> dict[str, np.ndarray]:
    """The wallpapers of ``split`` as uint8 HxWx3 BGR photos, longer side shrunk to ≤ ``max_side``
    (area), keyed by their path in the bank: the frames' source for clips of a bank split
    (``benchmarks.lowlight_quality --photos bank-val``). Same size as the packaged photos."""
    from taskvec.fetch import _fit

    folder = Path(folder)
    entries = sorted((e for e in read_manifest(folder) if e.split == split and e.kind == "wallpaper"),
                     key=lambda e: e.path)
    if not entries:
        raise UserError(f"{folder}: no {split} wallpapers in the manifest")
    out = {}
    with _reader(folder) as read:
        for e in entries:
            img = cv2.imdecode(np.frombuffer(read(e.path), np.uint8), cv2.IMREAD_COLOR)
            if img is None:
                raise UserError(f"{folder / e.path}: unreadable image listed in the manifest")
            out[e.path] = np.ascontiguousarray(_fit(img, max_side))
    return out


@contextmanager
def _reader(bank: Path) -> Iterator[Callable[[str], bytes]]:
    """``read(rel) → bytes`` of a file in a bank folder or a packed bank (closed on exit)."""
    if not bank.is_file():
        yield lambda rel: (bank / rel).read_bytes()
        return
    with tarfile.open(bank) as tf:
        yield lambda rel: tf.extractfile(rel).read()


PACK_WALLPAPER_SIDE = 1280  # a 1/30 crop of a 16:9 picture still spans ≥ 111 px
PACK_STAMP_SIDE = 224


def pack_bank(folder: str | Path, out: str | Path) -> int:
    """Write a bank as one compact ``.tar`` (wallpapers re-encoded ≤ 1280 px, stamps as
    lossless WebP ≤ 224 px, the same manifest) for carrying to a training machine. Returns
    its size in bytes. Written atomically."""
    import io
    import json

    from taskvec.errors import atomic_path
    from taskvec.data.fetch import MANIFEST, _fit

    folder = Path(folder)
    entries = read_manifest(folder)
    with atomic_path(Path(out)) as tmp, tarfile.open(tmp, "w") as tf:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))

        rows = []
        for e in entries:
            img = cv2.imread(str(folder / e.path), cv2.IMREAD_UNCHANGED)
            if e.kind == "wallpaper":
                ok, buf = cv2.imencode(".jpg", _fit(img, PACK_WALLPAPER_SIDE), [cv2.IMWRITE_JPEG_QUALITY, 90])
                rel = e.path
            else:
                ok, buf = cv2.imencode(".webp", _fit(img, PACK_STAMP_SIDE), [cv2.IMWRITE_WEBP_QUALITY, 101])
                rel = str(Path(e.path).with_suffix(".webp"))
            if not ok:
                raise UserError(f"cannot encode {folder / e.path}")
            add(rel, buf.tobytes())
            rows.append({**e.__dict__, "path": rel})
        add(MANIFEST, json.dumps({"packed_from_manifest": manifest_hash(folder), "images": rows}, indent=1).encode())
    return Path(out).stat().st_size


def bank_crops(bank: ImageBank, n: int, generator: torch.Generator, size: int = CELL, device=None) -> Tensor:
    """``n`` random crops of the bank's wallpapers → [n,3,size,size] in [0,1]."""
    return random_crops(bank.wallpapers, n, generator, size, CROP_SCALE, device)


def composite_stamps(
    backgrounds: Tensor, stamps: list[Tensor], generator: torch.Generator
) -> tuple[Tensor, Tensor]:
    """Paste one random stamp onto each background [n,3,S,S] → (images [n,3,S,S] in [0,1],
    masks [n,1,S,S] {0,1}: the stamp's alpha > 0.5). Each stamp is resized so its longer
    side is a random ``STAMP_SIDE`` fraction of S, flipped with p = 0.5, and placed with
    its centre inside the cell."""
    if not stamps:
        raise UserError("the image bank has no stamps for this split")
    n, _, s, _ = backgrounds.shape
    dev = backgrounds.device
    idx = torch.randint(0, len(stamps), (n,), generator=generator, device=generator.device).tolist()
    side = _u((n,), generator, dev, *STAMP_SIDE).tolist()
    py, px = _u((n,), generator, dev).tolist(), _u((n,), generator, dev).tolist()
    flip = (_u((n,), generator, dev) < 0.5).tolist()
    images, masks = backgrounds.clone(), torch.zeros(n, 1, s, s, device=dev)
    for i in range(n):
        st = stamps[idx[i]].to(dev)
        h, w = st.shape[-2:]
        k = side[i] * s / max(h, w)
        hh, ww = max(4, round(h * k)), max(4, round(w * k))
        st = F.interpolate(st[None], size=(hh, ww), mode="bilinear", align_corners=False, antialias=True)[0]
        if flip[i]:
            st = st.flip(-1)
        y0, x0 = round(py[i] * s - hh / 2), round(px[i] * s - ww / 2)  # the stamp's centre lies in the cell
        ys, xs = slice(max(0, y0), min(s, y0 + hh)), slice(max(0, x0), min(s, x0 + ww))
        sy, sx = slice(ys.start - y0, ys.stop - y0), slice(xs.start - x0, xs.stop - x0)
        a = st[3:4, sy, sx]
        images[i, :, ys, xs] = a * st[:3, sy, sx] + (1 - a) * images[i, :, ys, xs]
        masks[i, :, ys, xs] = (a > 0.5).float()
    return images.clamp(0, 1), masks
