"""Images from anywhere: folders, the LOL and PASCAL VOC layouts, packaged photos,
and batched random crops (DESIGN §4, §7).

Every image comes back as float32 RGB in [0,1], channels first. Cell-sized images are
111×111 (bicubic with antialiasing, aspect not kept — like the reference's PIL
resize). Masks are {0,1} float, [N,1,H,W], resized nearest-neighbour.
"""

from __future__ import annotations

import math
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from taskvec.errors import UserError
from taskvec.geometry import CELL

IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class DataError(UserError):
    """A data folder or file that cannot be used (one-line message naming it)."""


# ---------------------------------------------------------------------------------
# Files and folders


def list_images(folder: str | Path) -> list[Path]:
    """Image files under ``folder`` (recursive, sorted)."""
    folder = Path(folder)
    if not folder.exists():
        raise DataError(f"image folder {folder} does not exist")
    if not folder.is_dir():
        raise DataError(f"{folder} is not a folder")
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTS)
    if not files:
        raise DataError(f"no images ({'/'.join(e[1:] for e in IMAGE_EXTS)}) in {folder}")
    return files


def resize(x: Tensor, size: int | tuple[int, int]) -> Tensor:
    """[N,3,H,W] → [N,3,h,w] (``size`` = h = w, or (h, w)), bicubic with antialias, clamped to [0,1]."""
    hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
    if tuple(x.shape[-2:]) == hw:
        return x
    return F.interpolate(x, size=hw, mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


def _rgb_array_to_tensor(arr: np.ndarray) -> Tensor:
    """HxW, HxWx3 or HxWx4 (uint8/uint16/bool/float in [0,1]) RGB(A) → [3,H,W] in [0,1].
    Alpha is composited onto white."""
    a = np.asarray(arr)
    if a.dtype == np.bool_:
        a = a.astype(np.float32)
    elif a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    else:
        a = a.astype(np.float32)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    if a.shape[2] == 4:
        alpha = a[..., 3:]
        a = a[..., :3] * alpha + (1 - alpha)
    return torch.from_numpy(np.ascontiguousarray(a[..., :3].transpose(2, 0, 1))).clamp(0, 1)


def load_image(path: str | Path, size: int | None = CELL) -> Tensor:
    """Read an image file → [3,size,size] RGB in [0,1] (``size=None`` keeps its size)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image {path} does not exist")
    from taskvec.data.imageio import decode_image  # bounded: pixel and size limits, truncation refused

    try:
        bgr = decode_image(path)
    except UserError as e:
        raise DataError(str(e)) from None
    x = _rgb_array_to_tensor(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    return x if size is None else resize(x[None], size)[0]


def load_folder(folder: str | Path, size: int = CELL, limit: int | None = None) -> Tensor:
    """Every image under ``folder`` (sorted; first ``limit``) → [N,3,size,size]."""
    files = list_images(folder)[:limit]
    return torch.stack([load_image(p, size) for p in files])


# ---------------------------------------------------------------------------------
# LOL (low-light pairs): <split>/low/NAME ↔ <split>/high/NAME


def load_lol(root: str | Path, split: str | None = None, size: int = CELL) -> tuple[Tensor, Tensor]:
    """Paired low/normal-light images from a LOL-style tree.

    Every folder named ``low`` under ``root`` (or ``root`` itself) is matched with its
    sibling ``high``, files paired by name (stem where extensions differ). ``split``
    keeps only pairs whose parent folder has that name (e.g. ``our485``, ``eval15``).
    Returns ``(low, high)``, each [N,3,size,size].
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"LOL folder {root} does not exist or is not a folder")
    lows = sorted(p for p in [root, *root.rglob("*")] if p.is_dir() and p.name.lower() == "low")
    if split is not None:
        lows = [p for p in lows if p.parent.name == split]
    pairs: list[tuple[Path, Path]] = []
    for low_dir in lows:
        high_dir = next((d for d in low_dir.parent.iterdir() if d.is_dir() and d.name.lower() == "high"), None)
        if high_dir is None:
            continue
        highs = {p.stem: p for p in high_dir.iterdir() if p.suffix.lower() in IMAGE_EXTS}
        for lp in sorted(low_dir.iterdir()):
            if lp.suffix.lower() in IMAGE_EXTS and lp.stem in highs:
                pairs.append((lp, highs[lp.stem]))
    if not pairs:
        where = f" (split {split!r})" if split else ""
        raise DataError(f"no low/high image pairs under {root}{where}")
    low = torch.stack([load_image(a, size) for a, _ in pairs])
    high = torch.stack([load_image(b, size) for _, b in pairs])
    return low, high


# ---------------------------------------------------------------------------------
# PASCAL VOC / Pascal-5i

VOC_IGNORE = 255
VOC_NUM_CLASSES = 20


def pascal5i_classes(fold: int) -> list[int]:
    """Pascal-5i fold k (0–3) → VOC class indices 5k+1 … 5k+5."""
    if fold not in (0, 1, 2, 3):
        raise DataError(f"Pascal-5i fold must be 0, 1, 2 or 3, not {fold}")
    return list(range(5 * fold + 1, 5 * fold + 6))


def voc_colormap() -> np.ndarray:
    """The standard 256-entry VOC palette [256,3] uint8 (bit-interleaved label bits)."""
    cmap = np.zeros((256, 3), dtype=np.uint8)
    for i in range(256):
        c, r, g, b = i, 0, 0, 0
        for j in range(8):
            r |= ((c >> 0) & 1) << (7 - j)
            g |= ((c >> 1) & 1) << (7 - j)
            b |= ((c >> 2) & 1) << (7 - j)
            c >>= 3
        cmap[i] = (r, g, b)
    return cmap


def read_label_png(path: str | Path) -> np.ndarray:
    """Class index per pixel [H,W] uint8 from a palette PNG, a grey label PNG, or a
    colour-coded RGB PNG in the VOC palette (unknown colours → 0)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            mode = im.mode
            arr = np.array(im)
    except Exception as e:  # noqa: BLE001 — any decode failure is a data error
        raise DataError(f"cannot read label image {path} ({type(e).__name__})") from None
    if mode in ("P", "L"):
        return arr.astype(np.uint8)
    if arr.ndim == 3:
        rgb = arr[..., :3].astype(np.int64)
        key = (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]
        cmap = voc_colormap().astype(np.int64)
        lut = {int((c[0] << 16) | (c[1] << 8) | c[2]): i for i, c in enumerate(cmap[: VOC_NUM_CLASSES + 1])}
        lut[int((cmap[VOC_IGNORE, 0] << 16) | (cmap[VOC_IGNORE, 1] << 8) | cmap[VOC_IGNORE, 2])] = VOC_IGNORE
        uniq, inv = np.unique(key, return_inverse=True)
        return np.array([lut.get(int(u), 0) for u in uniq], dtype=np.uint8)[inv].reshape(key.shape)
    return arr.astype(np.uint8)


def _voc_ids(root: Path, mask_dir: Path, split_file: str | Path | None) -> list[str]:
    if split_file is None:
        return sorted(p.stem for p in mask_dir.glob("*.png"))
    path = Path(split_file)
    if not path.is_file():
        path = root / "ImageSets" / "Segmentation" / f"{split_file}.txt"
    if not path.is_file():
        raise DataError(f"split list {split_file} not found (nor {path})")
    return [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip()]


def load_voc_segmentation(
    root: str | Path,
    split_file: str | Path | None = None,
    classes: list[int] | None = None,
    limit: int | None = None,
    size: int = CELL,
) -> tuple[Tensor, Tensor]:
    """Images and foreground masks from a VOC tree.

    Reads ``JPEGImages/ID.jpg`` and ``SegmentationClassAug/ID.png`` (falls back to
    ``SegmentationClass``). ``split_file``: a split name (``train``, ``val`` → 
    ``ImageSets/Segmentation/<name>.txt``), a path to an id list, or None for every
    id with a mask. Label 255 (ignore) counts as background. Without ``classes`` the
    foreground is every object class; with ``classes`` (e.g. :func:`pascal5i_classes`)
    it is the first listed class present in the image, and images with none are
    skipped. Returns ``(images [N,3,size,size], masks [N,1,size,size] {0,1})``.
    """
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"VOC folder {root} does not exist or is not a folder")
    mask_dir = next((root / d for d in ("SegmentationClassAug", "SegmentationClass") if (root / d).is_dir()), None)
    if mask_dir is None:
        raise DataError(f"no SegmentationClassAug or SegmentationClass folder in {root}")
    images, masks = [], []
    for sid in _voc_ids(root, mask_dir, split_file):
        if limit is not None and len(images) >= limit:
            break
        label_path = mask_dir / f"{sid}.png"
        if not label_path.is_file():
            raise DataError(f"mask {label_path} is missing")
        label = read_label_png(label_path)
        if classes is None:
            fg = (label > 0) & (label != VOC_IGNORE)
        else:
            present = set(np.unique(label).tolist())
            cls = next((c for c in classes if c in present), None)
            if cls is None:
                continue
            fg = label == cls
        img = load_image(root / "JPEGImages" / f"{sid}.jpg", size)
        fg = cv2.resize(fg.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)
        images.append(img)
        masks.append(torch.from_numpy(fg).float()[None])
    if not images:
        raise DataError(f"no usable images in {root}" + (f" for classes {classes}" if classes else ""))
    return torch.stack(images), torch.stack(masks)


# ---------------------------------------------------------------------------------
# Packaged photos (scikit-image sample data bundled with the wheel; no download)

# Held out for validation; never returned for "train". (skimage's ``cat`` is the same
# photo as ``chelsea`` and is therefore left out entirely.)
VAL_PHOTOS: tuple[str, ...] = ("coffee", "chelsea", "rocket")
TRAIN_PHOTOS: tuple[str, ...] = (
    # colour
    "astronaut", "hubble_deep_field", "immunohistochemistry", "retina", "stereo_motorcycle", "colorwheel", "logo",
    # grey (returned as 3 equal channels)
    "camera", "coins", "page", "moon", "text", "clock", "brick", "grass", "gravel", "cell", "microaneurysms",
)  # fmt: skip
PHOTO_MAX_SIDE = 512  # larger photos are downscaled (antialiased) on load


@lru_cache(maxsize=None)
def _packaged_photo(name: str) -> Tensor | None:
    import skimage.data

    try:
        arr = getattr(skimage.data, name)()
    except Exception as e:  # noqa: BLE001 — e.g. a photo that needs a download
        warnings.warn(f"packaged photo {name!r} unavailable ({type(e).__name__}); skipped", stacklevel=3)
        return None
    if isinstance(arr, tuple):  # stereo_motorcycle → (left, right, disparity)
        arr = arr[0]
    x = _rgb_array_to_tensor(arr)
    h, w = x.shape[-2:]
    if max(h, w) > PHOTO_MAX_SIDE:
        s = PHOTO_MAX_SIDE / max(h, w)
        hw = (max(1, round(h * s)), max(1, round(w * s)))
        x = F.interpolate(x[None], size=hw, mode="bicubic", align_corners=False, antialias=True)[0].clamp(0, 1)
    return x


def packaged_photos(split: Literal["train", "val", "all"] = "train") -> dict[str, Tensor]:
    """Photos bundled with scikit-image → {name: [3,H,W] in [0,1]} (longer side ≤ 512).
    Treat the tensors as read-only (they are cached)."""
    names = {"train": TRAIN_PHOTOS, "val": VAL_PHOTOS, "all": TRAIN_PHOTOS + VAL_PHOTOS}.get(split)
    if names is None:
        raise DataError(f"unknown photo split {split!r}; choose from train, val, all")
    out = {n: _packaged_photo(n) for n in names}
    return {n: x for n, x in out.items() if x is not None}


# ---------------------------------------------------------------------------------
# Random crops


def _u(shape: tuple[int, ...], generator: torch.Generator, device, low: float = 0.0, high: float = 1.0) -> Tensor:
    """Uniform [low, high) drawn on the generator's device, returned on ``device``."""
    return (low + (high - low) * torch.rand(shape, generator=generator, device=generator.device)).to(device)


def _hue_rotation(theta: Tensor) -> Tensor:
    """Rotation matrices [N,3,3] about the grey axis (1,1,1)/√3 by ``theta`` [N]."""
    a = 1 / math.sqrt(3.0)
    k = torch.full((3,), a, device=theta.device)
    kx = torch.tensor([[0.0, -a, a], [a, 0.0, -a], [-a, a, 0.0]], device=theta.device)  # cross-product matrix
    c, s = theta.cos().view(-1, 1, 1), theta.sin().view(-1, 1, 1)
    eye = torch.eye(3, device=theta.device)
    return c * eye + s * kx + (1 - c) * torch.outer(k, k)


def color_jitter(x: Tensor, generator: torch.Generator, strength: float = 0.2, hue: float = 0.05) -> Tensor:
    """Mild brightness/contrast/saturation (factors in 1±strength) and hue rotation
    (±hue turns) per image of [N,3,H,W] in [0,1]."""
    n, dev = x.shape[0], x.device
    bright = _u((n,), generator, dev, 1 - strength, 1 + strength).view(-1, 1, 1, 1)
    contrast = _u((n,), generator, dev, 1 - strength, 1 + strength).view(-1, 1, 1, 1)
    sat = _u((n,), generator, dev, 1 - strength, 1 + strength).view(-1, 1, 1, 1)
    theta = _u((n,), generator, dev, -hue, hue) * 2 * math.pi
    x = x * bright
    grey = x.mean(dim=1, keepdim=True)
    x = grey.mean(dim=(2, 3), keepdim=True) + contrast * (x - grey.mean(dim=(2, 3), keepdim=True))
    grey = x.mean(dim=1, keepdim=True)
    x = grey + sat * (x - grey)
    x = torch.einsum("nij,njhw->nihw", _hue_rotation(theta), x)
    return x.clamp(0, 1)


def prepare_photos(
    photos: list[Tensor], size: int = CELL, scale: tuple[float, float] = (0.2, 1.0), device=None
) -> list[Tensor]:
    """Move photos to ``device`` as float32 and shrink (antialiased) any whose shorter
    side exceeds what the smallest crop needs (``size/sqrt(scale[0])``), so bilinear
    crops do not alias. Call once and reuse; :func:`random_crops` calls it too (a no-op
    on prepared photos)."""
    need = math.ceil(size / math.sqrt(scale[0]))
    out = []
    for p in photos:
        p = p.to(device=device if device is not None else p.device, dtype=torch.float32)
        h, w = p.shape[-2:]
        if min(h, w) > need:
            s = need / min(h, w)
            p = F.interpolate(p[None], size=(max(1, round(h * s)), max(1, round(w * s))), mode="bilinear",
                              align_corners=False, antialias=True)[0].clamp(0, 1)  # fmt: skip
        out.append(p)
    return out


def random_crops(
    photos: list[Tensor],
    n: int,
    generator: torch.Generator,
    size: int = CELL,
    scale: tuple[float, float] = (0.2, 1.0),
    device=None,
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    jitter: bool = True,
) -> Tensor:
    """``n`` random crops of random photos → [n,3,size,size] in [0,1] on ``device``.

    Each crop covers a random fraction ``scale`` of its photo's area with a random
    aspect (log-uniform in ``ratio``), is flipped horizontally with p=0.5, resampled
    bilinearly with ``grid_sample`` (one call per distinct photo, all its crops in
    one grid) and colour-jittered mildly. Photos [3,H,W] may differ in size; pass
    them already on ``device`` to avoid copies.
    """
    if not photos:
        raise DataError("random_crops needs at least one photo")
    device = torch.device(device) if device is not None else photos[0].device
    photos = prepare_photos(photos, size, scale, device)
    idx = torch.randint(0, len(photos), (n,), generator=generator, device=generator.device).to(device)
    area = _u((n,), generator, device, *scale)
    log_r = _u((n,), generator, device, math.log(ratio[0]), math.log(ratio[1]))
    cy_u, cx_u = _u((n,), generator, device), _u((n,), generator, device)
    flip = torch.where(_u((n,), generator, device) < 0.5, -1.0, 1.0)
    sizes = torch.tensor([list(p.shape[-2:]) for p in photos], device=device, dtype=torch.float32)
    h, w = sizes[idx, 0], sizes[idx, 1]
    # Crop size in pixels (aspect w/h = r), clipped to the photo; half-extents in [-1,1] units.
    crop_w = torch.sqrt(area * h * w * log_r.exp()).minimum(w)
    crop_h = torch.sqrt(area * h * w / log_r.exp()).minimum(h)
    hx, hy = crop_w / w, crop_h / h
    cx = (2 * cx_u - 1) * (1 - hx)
    cy = (2 * cy_u - 1) * (1 - hy)
    base = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) * (2 / size) - 1  # [size]
    gx = cx[:, None, None] + (hx * flip)[:, None, None] * base.view(1, 1, size)
    gy = cy[:, None, None] + hy[:, None, None] * base.view(1, size, 1)
    grid = torch.stack(torch.broadcast_tensors(gx, gy), dim=-1)  # [n,size,size,2] (x, y)
    out = torch.empty(n, 3, size, size, device=device)
    for k in torch.unique(idx).tolist():
        sel = (idx == k).nonzero(as_tuple=True)[0]
        g = grid[sel].reshape(1, len(sel) * size, size, 2)
        src = photos[k][None]
        crops = F.grid_sample(src, g, mode="bilinear", padding_mode="border", align_corners=False)
        out[sel] = crops.reshape(3, len(sel), size, size).transpose(0, 1)
    if jitter:
        out = color_jitter(out, generator)
    return out.clamp(0, 1)
