"""Example pairs folders made from the packaged photos (``taskvec data example-pairs``).

For the README walk-through, the tests and ``benchmarks/pairs_vs_builtin.py``; a user's
own pairs need none of this. Kinds (every pair is written as ``DIR/input/NAME.png`` ↔
``DIR/target/NAME.png``, 111×111 unless ``size`` says otherwise):

- ``dusk`` — a low-light degradation unlike the built-in ones: gamma 1.6, gain 0.4 and a
  blue cast (R×0.75, G×0.9, B×1.1), no noise; target = the photo;
- ``lowlight`` — the built-in paper construction (0.5·photo), so a pairs task can be
  compared with ``--task lowlight`` on the same images;
- ``masks`` — procedural scenes on photo backgrounds (:mod:`taskvec.data.scenes`), target =
  the white-on-black foreground mask (the built-in segmentation construction).

Crops come from the ``photos`` split of the packaged photos (``val`` by default: photos the
tiny model never trained on).
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import cv2
import numpy as np
import torch
from torch import Tensor

from taskvec.errors import UserError

Kind = Literal["dusk", "lowlight", "masks"]
KINDS: tuple[str, ...] = ("dusk", "lowlight", "masks")
DUSK_GAMMA, DUSK_GAIN, DUSK_TINT = 1.6, 0.4, (0.75, 0.9, 1.1)


def dusk(images: Tensor) -> Tensor:
    """[B,3,H,W] in [0,1] → the ``dusk`` degradation (gain·x^gamma with a blue cast), [0,1]."""
    tint = torch.tensor(DUSK_TINT, dtype=images.dtype).view(1, 3, 1, 1)
    return (DUSK_GAIN * images.clamp(0, 1) ** DUSK_GAMMA * tint).clamp(0, 1)


def example_pairs(kind: str, n: int, photos: str = "val", seed: int = 0) -> tuple[Tensor, Tensor]:
    """``n`` (input, target) pairs of ``kind`` → two [n,3,111,111] tensors in [0,1]."""
    from taskvec.data.images import packaged_photos, prepare_photos, random_crops
    from taskvec.data.scenes import procedural_scenes

    if kind not in KINDS:
        raise UserError(f"unknown pairs kind {kind!r}; choose from {', '.join(KINDS)}")
    gen = torch.Generator().manual_seed(seed)
    crops = random_crops(prepare_photos(list(packaged_photos(photos).values())), n, gen)  # type: ignore[arg-type]
    if kind == "masks":
        images, masks = procedural_scenes(n, gen, crops)
        return images, masks.expand(-1, 3, -1, -1)
    return (dusk(crops) if kind == "dusk" else 0.5 * crops), crops


def write_example_pairs(out: str | Path, kind: str, n: int = 16, photos: str = "val", seed: int = 0) -> Path:
    """Write ``out/input/pNNN.png`` ↔ ``out/target/pNNN.png``; ``out`` must not exist yet."""
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} already exists; give a new folder")
    if n < 1:
        raise UserError("--n must be at least 1")
    x, y = example_pairs(kind, n, photos, seed)
    tmp = out.with_name(f".{out.name}.tmp")
    for sub in ("input", "target"):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        for sub, t in (("input", x[i]), ("target", y[i])):
            rgb = (t.clamp(0, 1).permute(1, 2, 0).numpy() * 255 + 0.5).astype(np.uint8)
            cv2.imwrite(str(tmp / sub / f"p{i:03d}.png"), np.ascontiguousarray(rgb[:, :, ::-1]))
    tmp.rename(out)
    return out
