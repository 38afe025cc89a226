"""The reference canvas geometry and token layouts (DESIGN §1–§2).

A canvas is a 224×224 RGB image holding a 2×2 grid of 111×111 cells separated by
a 2-px white gap::

    ┌──────────────┬──────────────┐
    │ example_in   │ example_out  │     rows    0:111
    ├──────────────┼──────────────┤
    │ query        │ answer       │     rows  113:224
    └──────────────┴──────────────┘
      cols 0:111     cols 113:224

It is cut into 14×14 patches of 16 px (196 tokens, raster order ``row*14+col``).
Sequences in the network hold a CLS token plus a subset of canvas tokens. We name a
position in such a sequence by its *slot*: slot 0 is CLS, slot ``1+t`` is canvas
token ``t``. A :class:`Layout` lists the slots each half of the network sees, so code
maps canvas token ↔ sequence index through it and never through offsets.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:  # torch is imported where tensors are made: the names and layouts load without it
    import torch
    from torch import Tensor

CANVAS = 224
CELL = 111
GAP = 2
PATCH = 16
GRID = CANVAS // PATCH  # 14
NUM_TOKENS = GRID * GRID  # 196
NUM_SLOTS = NUM_TOKENS + 1  # CLS + tokens
CLS_SLOT = 0

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

CellName = Literal["example_in", "example_out", "query", "answer"]
CELLS: tuple[CellName, ...] = ("example_in", "example_out", "query", "answer")
# (top, left) pixel of each cell on the canvas.
CELL_ORIGIN: dict[str, tuple[int, int]] = {
    "example_in": (0, 0),
    "example_out": (0, CELL + GAP),
    "query": (CELL + GAP, 0),
    "answer": (CELL + GAP, CELL + GAP),
}
# Token rows/cols that cover each cell (half the grid each way).
_HALF = GRID // 2


def cell_slice(cell: CellName) -> tuple[slice, slice]:
    """Pixel rows and cols of ``cell`` on the canvas."""
    top, left = CELL_ORIGIN[cell]
    return slice(top, top + CELL), slice(left, left + CELL)


def cell_tokens(cell: CellName) -> list[int]:
    """Canvas token indices (raster order) of the 7×7 block covering ``cell``."""
    r0 = _HALF if cell in ("query", "answer") else 0
    c0 = _HALF if cell in ("example_out", "answer") else 0
    return [r * GRID + c for r in range(r0, r0 + _HALF) for c in range(c0, c0 + _HALF)]


def cell_slots(cell: CellName) -> list[int]:
    return [1 + t for t in cell_tokens(cell)]


# ---------------------------------------------------------------------------------
# Canvas building


_MEAN_STD: dict[tuple[str, "torch.dtype"], tuple[Tensor, Tensor]] = {}


def _mean_std(device=None, dtype=None) -> tuple[Tensor, Tensor]:
    """ImageNet mean/std as [1,3,1,1] (float32 by default), cached per device (no host copy
    on the hot path)."""
    import torch

    dtype = dtype or torch.float32
    key = (str(device), dtype)
    if key not in _MEAN_STD:
        with torch.inference_mode(False):  # cached: usable by training after an inference call made them
            mean = torch.tensor(IMAGENET_MEAN, device=device, dtype=dtype).view(1, 3, 1, 1)
            std = torch.tensor(IMAGENET_STD, device=device, dtype=dtype).view(1, 3, 1, 1)
        _MEAN_STD[key] = (mean, std)
    return _MEAN_STD[key]


def normalize(x: Tensor) -> Tensor:
    """[B,3,H,W] in [0,1] → ImageNet-normalised."""
    mean, std = _mean_std(x.device, x.dtype)
    return (x - mean) / std


def denormalize(x: Tensor) -> Tensor:
    """ImageNet-normalised [B,3,H,W] → [0,1] space (not clamped)."""
    mean, std = _mean_std(x.device, x.dtype)
    return x * std + mean


def resize_cell(img: Tensor) -> Tensor:
    """Resize [B,3,H,W] images in [0,1] to a 111×111 cell (bicubic, aspect not kept)."""
    if img.shape[-2:] == (CELL, CELL):
        return img
    import torch.nn.functional as F

    return F.interpolate(img, size=(CELL, CELL), mode="bicubic", align_corners=False).clamp(0, 1)


def make_canvas(
    example_in: Tensor | None,
    example_out: Tensor | None,
    query: Tensor,
    answer: Tensor | None = None,
) -> Tensor:
    """Place cells on a white canvas.

    Each argument is [B,3,111,111] in [0,1] (other sizes are resized) or None (the cell
    stays white). Returns the canvas [B,3,224,224] in [0,1] space — normalise it with
    :func:`normalize` before the model.
    """
    import torch

    b = query.shape[0]
    canvas = torch.ones(b, 3, CANVAS, CANVAS, dtype=query.dtype, device=query.device)
    for name, img in zip(CELLS, (example_in, example_out, query, answer)):
        if img is not None:
            rows, cols = cell_slice(name)
            canvas[:, :, rows, cols] = resize_cell(img)
    return canvas


def get_cell(canvas: Tensor, cell: CellName) -> Tensor:
    """Cut ``cell`` out of a [B,3,224,224] canvas → [B,3,111,111]."""
    rows, cols = cell_slice(cell)
    return canvas[:, :, rows, cols]


def patchify(x: Tensor) -> Tensor:
    """[B,C,16h,16w] → [B, h*w, 16*16*C] (raster order; pixel order row, col, channel)."""
    b, c, hh, ww = x.shape
    h, w = hh // PATCH, ww // PATCH
    x = x.reshape(b, c, h, PATCH, w, PATCH)
    return x.permute(0, 2, 4, 3, 5, 1).reshape(b, h * w, PATCH * PATCH * c)


def unpatchify(x: Tensor, h: int, w: int, c: int = 3) -> Tensor:
    """Inverse of :func:`patchify`: [B, h*w, 16*16*C] → [B,C,16h,16w]."""
    b = x.shape[0]
    x = x.reshape(b, h, w, PATCH, PATCH, c)
    return x.permute(0, 5, 1, 3, 2, 4).reshape(b, c, h * PATCH, w * PATCH)


# Pixel offset of the answer cell inside the 112×112 block of its 7×7 tokens.
ANSWER_BLOCK_OFFSET = CELL_ORIGIN["answer"][0] - _HALF * PATCH  # 1


def answer_from_block(block: Tensor) -> Tensor:
    """[B,3,112,112] image of the answer's 7×7 tokens → the 111×111 answer cell."""
    o = ANSWER_BLOCK_OFFSET
    return block[:, :, o : o + CELL, o : o + CELL]


# ---------------------------------------------------------------------------------
# Token layouts

LayoutName = Literal["in-context", "zero-shot"]


@dataclass(frozen=True)
class Layout:
    """Which slots the encoder and decoder see.

    ``enc_slots`` and ``dec_slots`` start with CLS (slot 0). Decoder slots that are
    not in ``enc_slots`` get the mask token. Position embeddings always come from the
    slot's canvas position.
    """

    name: str
    enc_slots: tuple[int, ...]
    dec_slots: tuple[int, ...]

    def __post_init__(self) -> None:
        if self.enc_slots[0] != CLS_SLOT or self.dec_slots[0] != CLS_SLOT:
            raise ValueError("layouts start with the CLS slot")

    @property
    def num_enc(self) -> int:
        return len(self.enc_slots)

    @property
    def num_dec(self) -> int:
        return len(self.dec_slots)

    def enc_index(self, slots: list[int] | tuple[int, ...]) -> list[int]:
        """Sequence indices in the encoder of the given slots (which must be present)."""
        pos = {s: i for i, s in enumerate(self.enc_slots)}
        return [pos[s] for s in slots]

    def dec_index(self, slots: list[int] | tuple[int, ...]) -> list[int]:
        pos = self.dec_index_map()
        return [pos[s] for s in slots]

    def dec_index_map(self) -> dict[int, int]:
        """{slot: decoder sequence index} for every slot the decoder sees."""
        return {s: i for i, s in enumerate(self.dec_slots)}

    def slots(self, stage: Literal["enc", "dec"]) -> tuple[int, ...]:
        return self.enc_slots if stage == "enc" else self.dec_slots

    def decoder_gather(self) -> list[int]:
        """For every decoder position, its encoder index, or ``num_enc`` for the mask token."""
        pos = {s: i for i, s in enumerate(self.enc_slots)}
        return [pos.get(s, self.num_enc) for s in self.dec_slots]

    def answer_dec_index(self) -> list[int]:
        """Decoder positions of the answer cell's 49 tokens (raster order)."""
        return self.dec_index(cell_slots("answer"))


def _bottom_half_slots() -> list[int]:
    return [1 + t for t in range(_HALF * GRID, NUM_TOKENS)]


@lru_cache(maxsize=None)
def get_layout(name: LayoutName) -> Layout:
    """The two reference layouts (DESIGN §2)."""
    answer = set(cell_slots("answer"))
    if name == "in-context":
        enc = [CLS_SLOT] + [s for s in range(1, NUM_SLOTS) if s not in answer]
        dec = list(range(NUM_SLOTS))
    elif name == "zero-shot":
        enc = [CLS_SLOT] + cell_slots("query")
        dec = [CLS_SLOT] + _bottom_half_slots()
    else:
        raise ValueError(f"unknown layout {name!r}; choose in-context or zero-shot")
    return Layout(name, tuple(enc), tuple(dec))


def random_drop_layout(keep: float, generator: torch.Generator | None = None) -> Layout:
    """In-context layout whose encoder keeps a random ``keep`` fraction of the visible
    tokens (the query cell is always kept). Used in training to halve encoder cost."""
    import torch

    base = get_layout("in-context")
    query = set(cell_slots("query"))
    others = [s for s in base.enc_slots[1:] if s not in query]
    n_keep = max(1, round(keep * len(others)))
    perm = torch.randperm(len(others), generator=generator)[:n_keep].tolist()
    kept = sorted([others[i] for i in perm] + sorted(query))
    return Layout(f"in-context-drop{keep:g}", (CLS_SLOT, *kept), base.dec_slots)


def region_slots(region: Literal["cls", "query", "answer", "example_in", "example_out"]) -> list[int]:
    if region == "cls":
        return [CLS_SLOT]
    return cell_slots(region)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------
# Which tokens go through the VQGAN decoder for the answer cell (DESIGN §1, §5)

DecodeKind = Literal["full", "halo", "answer"]
DECODE_KINDS: tuple[str, ...] = get_args(DecodeKind)


@dataclass(frozen=True)
class DecodeRegion:
    """A rectangle of canvas tokens (rows ``r0``..13, cols ``c0``..13) decoded by the VQGAN
    to produce the answer cell.

    ``sources``: for every token of the rectangle (raster order), the decoder-sequence
    index whose code fills it. ``answer_positions``: where the answer's 49 tokens sit in the
    rectangle. The answer cell is the decoded image's ``[crop_top:+111, crop_left:+111]``."""

    kind: str
    r0: int
    c0: int
    sources: tuple[int, ...]
    answer_positions: tuple[int, ...]

    @property
    def rows(self) -> int:
        return GRID - self.r0

    @property
    def cols(self) -> int:
        return GRID - self.c0

    @property
    def crop_top(self) -> int:
        return CELL_ORIGIN["answer"][0] - self.r0 * PATCH

    @property
    def crop_left(self) -> int:
        return CELL_ORIGIN["answer"][1] - self.c0 * PATCH

    def crop(self, image: Tensor) -> Tensor:
        """Decoded image [B,3,16·rows,16·cols] → the answer cell [B,3,111,111]."""
        return image[:, :, self.crop_top : self.crop_top + CELL, self.crop_left : self.crop_left + CELL]


@lru_cache(maxsize=64)
def decode_region(layout: Layout, kind: DecodeKind = "full", halo: int = 1) -> DecodeRegion:
    """The tokens decoded for the answer cell under ``layout``.

    - ``full``: the whole 14×14 grid, as the reference MAE-VQGAN decodes it; a token the
      decoder did not see takes the code of the token half a grid below it (zero-shot: the
      bottom half's codes in both halves), then the answer cell is cropped.
    - ``answer``: only the answer's 7×7 tokens.
    - ``halo``: the answer's tokens grown up/left by up to ``halo`` tokens where the
      layout's decoder has them (the answer touches the canvas' bottom and right edges)."""
    present = layout.dec_index_map()
    if kind == "full":
        r0 = c0 = 0
    elif kind == "answer":
        r0 = c0 = _HALF
    elif kind == "halo":
        if not 0 <= halo <= _HALF:
            raise ValueError(f"halo must be 0..{_HALF}, got {halo}")
        r0 = c0 = _HALF
        while r0 > _HALF - halo and all(1 + (r0 - 1) * GRID + c in present for c in range(c0, GRID)):
            r0 -= 1
        while c0 > _HALF - halo and all(1 + r * GRID + c0 - 1 in present for r in range(r0, GRID)):
            c0 -= 1
    else:
        raise ValueError(f"unknown decode {kind!r}; choose from {', '.join(DECODE_KINDS)}")
    sources = []
    for r in range(r0, GRID):
        for c in range(c0, GRID):
            slot = 1 + r * GRID + c
            if slot not in present:
                slot += _HALF * GRID  # the token half a grid below (the reference's zero-shot repeat)
            if slot not in present:
                raise ValueError(f"layout {layout.name} has no code for canvas token {r * GRID + c}")
            sources.append(present[slot])
    cols = GRID - c0
    answer = tuple((r - r0) * cols + (c - c0) for r in range(_HALF, GRID) for c in range(_HALF, GRID))
    return DecodeRegion(kind, r0, c0, tuple(sources), answer)
