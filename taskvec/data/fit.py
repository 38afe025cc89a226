"""Images as users have them, into the 111×111 cell and back (``taskvec prompt --fit``).

    cell, place = fit_image(img, "letterbox")     # img [3,H,W] in [0,1] → cell [1,3,111,111]
    answer = model(...)                           # [1,3,111,111]
    full = place.restore(answer)                  # [1,3,H',W'] at the query's resolution

Modes (``Fit``):

- ``letterbox`` (default): the whole image, aspect kept, scaled so its longer side is 111;
  the rest of the cell is filled by mirroring the image's edge (not a flat bar, which the
  in-painting task would read as a hole and low-light as a dark region). Back: the
  padding is cut off and the answer scaled to H×W.
- ``crop``: the centred square of side min(H, W), scaled to 111. Back: the answer scaled to
  that square's size (it covers the square only).
- ``squash``: scaled to 111×111 whatever its aspect (the reference code's resize). Back:
  scaled to H×W.

Resizing is bicubic with antialiasing, clamped to [0,1], like every cell-sized image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch.nn.functional as F
from torch import Tensor

from taskvec.data.images import resize
from taskvec.geometry import CELL

Fit = Literal["letterbox", "crop", "squash"]
FITS: tuple[str, ...] = ("letterbox", "crop", "squash")


@dataclass(frozen=True)
class Placement:
    """Where the image went in the cell: ``box`` = (top, left, height, width) of its content
    inside the 111×111 cell; ``crop`` = (top, left, height, width) of the part of the source
    that was used; ``size`` = the source's (height, width)."""

    fit: str
    size: tuple[int, int]
    crop: tuple[int, int, int, int]
    box: tuple[int, int, int, int]

    def restore(self, answer: Tensor) -> Tensor:
        """[N,3,111,111] answer → [N,3,h,w] covering ``crop`` at the source's resolution."""
        t, l, h, w = self.box
        return resize(answer[..., t:t + h, l:l + w], (self.crop[2], self.crop[3]))


def fit_image(img: Tensor, fit: str = "letterbox", cell: int = CELL) -> tuple[Tensor, Placement]:
    """[3,H,W] (or [1,3,H,W]) in [0,1] → ([1,3,cell,cell], :class:`Placement`)."""
    x = img if img.dim() == 4 else img[None]
    hh, ww = int(x.shape[-2]), int(x.shape[-1])
    if fit == "squash":
        return resize(x, cell), Placement(fit, (hh, ww), (0, 0, hh, ww), (0, 0, cell, cell))
    if fit == "crop":
        side = min(hh, ww)
        top, left = (hh - side) // 2, (ww - side) // 2
        part = x[..., top:top + side, left:left + side]
        return resize(part, cell), Placement(fit, (hh, ww), (top, left, side, side), (0, 0, cell, cell))
    if fit != "letterbox":
        raise ValueError(f"unknown fit {fit!r}; choose from {', '.join(FITS)}")
    scale = cell / max(hh, ww)
    h, w = max(1, min(cell, round(hh * scale))), max(1, min(cell, round(ww * scale)))
    inner = resize(x, (h, w))
    box_h, box_w = h, w
    top, left = (cell - h) // 2, (cell - w) // 2
    pads = (left, cell - w - left, top, cell - h - top)
    # mirror the edge; reflection needs each pad smaller than the side it mirrors, so repeat
    while any(pads):
        step = (min(pads[0], w - 1), min(pads[1], w - 1), min(pads[2], h - 1), min(pads[3], h - 1))
        if not any(step):  # a 1-pixel-wide image: replicate instead
            inner = F.pad(inner, pads, mode="replicate")
            break
        inner = F.pad(inner, step, mode="reflect")
        h, w = h + step[2] + step[3], w + step[0] + step[1]
        pads = tuple(p - s for p, s in zip(pads, step))
    return inner, Placement(fit, (hh, ww), (0, 0, hh, ww), (top, left, box_h, box_w))
