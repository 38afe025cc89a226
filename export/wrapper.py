"""Export-only modules around the pure model (STYLE §1).

Every graph takes uint8 BGR NHWC cells (``image`` and, in-context, the example pair),
does the pre-processing the runtime would otherwise do (BGR→RGB, /255, canvas
placement, ImageNet normalisation), runs :class:`~taskvec.model.mae_vqgan.MaeVQGAN` and returns

- ``output``: uint8 [N,111,111,3] BGR (rounded, clamped), the deployed output, and
- ``answer``: float32 [N,3,111,111] RGB in [0,1], the same answer before quantisation.
  The exporter checks ``answer`` against PyTorch and then drops it from the graph's
  outputs (the nodes stay: ``output`` is computed from it).

Graphs (DESIGN §5):

- :class:`ZeroShotGraph` — zero-shot layout (query cell only; the example cells are
  never computed), the task vector registered as constant buffers ``tv_mul_<stage>_bNN``
  / ``tv_add_<stage>_bNN`` so the exporter writes them as initializers feeding one Mul
  and one Add before each patched block's output projection.
- :class:`InContextGraph` — the one-shot prompt, with ``example_in``/``example_out``.
- :class:`SwitchableGraph` — zero-shot with ``mul``/``add`` as graph inputs for every
  block, so one engine serves every task.

VQ head: only the answer's 7×7 latent (+ an optional halo of ``halo`` tokens where
those tokens exist in the layout, cropped after decoding) goes through the VQGAN
decoder. :func:`full_canvas_answer` decodes the whole 14×14 canvas for comparison.
"""

from __future__ import annotations

from typing import Literal, Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskvec import geometry as G
from taskvec.model.mae_vqgan import BlockId, MaeVQGAN, ModelOutput, Patch

DecodeKind = Literal["answer", "full"]


def buffer_name(kind: Literal["mul", "add"], bid: BlockId) -> str:
    """Name of the constant buffer for one block's patch (read back by graph_edit)."""
    return f"tv_{kind}_{bid.stage}_b{bid.block:02d}"


def parse_buffer_name(name: str) -> tuple[str, BlockId] | None:
    """Inverse of :func:`buffer_name` (ignores any module prefix); None if not one."""
    base = name.rsplit(".", 1)[-1]
    parts = base.split("_")
    if len(parts) != 4 or parts[0] != "tv" or parts[1] not in ("mul", "add"):
        return None
    if parts[2] not in ("enc", "dec") or not parts[3].startswith("b") or not parts[3][1:].isdigit():
        return None
    return parts[1], BlockId(parts[2], int(parts[3][1:]))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------
# Pre- and post-processing (inside the graph)


def bgr_uint8_to_rgb(x: Tensor) -> Tensor:
    """uint8 [N,H,W,3] BGR → float [N,3,H,W] RGB in [0,1]."""
    x = x.to(torch.float32) / 255.0
    return x.permute(0, 3, 1, 2).flip(1)


def rgb_to_bgr_uint8(x: Tensor) -> Tensor:
    """float [N,3,H,W] RGB in [0,1] → uint8 [N,H,W,3] BGR (rounded, clamped)."""
    y = torch.round(x * 255.0).clamp(0.0, 255.0)
    return y.flip(1).permute(0, 2, 3, 1).to(torch.uint8)


def place_cells(
    query: Tensor, example_in: Tensor | None = None, example_out: Tensor | None = None
) -> Tensor:
    """Cells [N,3,111,111] in [0,1] → white canvas [N,3,224,224] in [0,1], by padding and
    concatenation (no in-place writes, so no ScatterND in the graph)."""
    gap = G.CANVAS - 2 * G.CELL  # 2
    rest = G.CANVAS - G.CELL  # 113
    if example_in is None:
        return F.pad(query, (0, rest, rest, 0), value=1.0)
    top = torch.cat([example_in, F.pad(example_out, (gap, 0), value=1.0)], dim=3)  # [N,3,111,224]
    bottom = F.pad(query, (0, rest, gap, 0), value=1.0)  # [N,3,113,224]: the gap rows on top
    return torch.cat([top, bottom], dim=2)


# ---------------------------------------------------------------------------------
# Decoding


def halo_tokens(layout: G.Layout, halo: int) -> tuple[list[int], int, int]:
    """Canvas tokens of the answer block grown up/left by up to ``halo`` tokens where
    the layout's decoder has them (the answer block touches the canvas' bottom and right
    edges) → (tokens in raster order, first token row r0, first token col c0)."""
    present = {s - 1 for s in layout.dec_slots[1:]}
    half = G.GRID // 2
    r0, c0 = half, half
    while r0 > half - halo and all((r0 - 1) * G.GRID + c in present for c in range(c0, G.GRID)):
        r0 -= 1
    while c0 > half - halo and all(r * G.GRID + c0 - 1 in present for r in range(r0, G.GRID)):
        c0 -= 1
    toks = [r * G.GRID + c for r in range(r0, G.GRID) for c in range(c0, G.GRID)]
    return toks, r0, c0


def decode_answer(model: MaeVQGAN, out: ModelOutput, layout: G.Layout, halo: int = 0) -> Tensor:
    """VQ head: the answer cell [N,3,111,111] in [0,1] from the decoder output, decoding
    the 7×7 answer latent plus ``halo`` tokens of context where the layout has them."""
    if halo <= 0:
        return out.answer
    toks, r0, c0 = halo_tokens(layout, halo)
    if r0 == c0 == G.GRID // 2:
        return out.answer
    idx = layout.dec_index([1 + t for t in toks])
    logits = model.decoder_pred(out.decoder_out[:, idx])
    codes = logits.argmax(dim=-1).reshape(logits.shape[0], G.GRID - r0, G.GRID - c0)
    img = (model.vae.decode_indices(codes) + 1) / 2  # [N,3,16·rows,16·cols]
    top, left = G.CELL_ORIGIN["answer"]
    y0, x0 = top - r0 * G.PATCH, left - c0 * G.PATCH
    return img[:, :, y0 : y0 + G.CELL, x0 : x0 + G.CELL]


def full_canvas_answer(model: MaeVQGAN, out: ModelOutput, layout: G.Layout) -> Tensor:
    """Answer cell cut from a full 14×14 VQGAN decode (the reference pipeline's way).

    Needs every canvas token in the decoder (the in-context layout). Used only to
    measure how far answer-only decoding is from it, and to count its cost."""
    if len(layout.dec_slots) != G.NUM_SLOTS:
        raise ValueError(f"layout {layout.name} lacks tokens for a full-canvas decode")
    logits = model.decoder_pred(out.decoder_out[:, layout.dec_index(list(range(1, G.NUM_SLOTS)))])
    canvas = model.decode_logits(logits, G.GRID)
    return G.get_cell(canvas, "answer")


def zero_shot_full_decode(model: MaeVQGAN, out: ModelOutput, layout: G.Layout) -> Tensor:
    """The reference zero-shot pipeline's cost: decode the whole 14×14 canvas although
    only the bottom half has logits (the missing top half gets code 0). For MAC counts."""
    bottom = [1 + t for t in range(G.NUM_TOKENS // 2, G.NUM_TOKENS)]
    logits = model.decoder_pred(out.decoder_out[:, layout.dec_index(bottom)])
    codes = logits.argmax(dim=-1)
    codes = torch.cat([torch.zeros_like(codes), codes], dim=1).reshape(-1, G.GRID, G.GRID)
    canvas = (model.vae.decode_indices(codes) + 1) / 2
    return G.get_cell(canvas, "answer")


# ---------------------------------------------------------------------------------
# Graphs


class _Graph(nn.Module):
    def __init__(self, model: MaeVQGAN, layout: G.Layout, halo: int, decode: DecodeKind) -> None:
        super().__init__()
        self.model = model
        self.layout = layout
        self.halo = halo
        self.decode = decode

    def _answer(self, canvas: Tensor, patches: Mapping[BlockId, Patch]) -> Tensor:
        out = self.model(G.normalize(canvas), self.layout, patches)
        if self.model.cfg.head != "vq":
            return out.answer
        if self.decode == "full":
            if len(self.layout.dec_slots) == G.NUM_SLOTS:
                return full_canvas_answer(self.model, out, self.layout)
            return zero_shot_full_decode(self.model, out, self.layout)
        return decode_answer(self.model, out, self.layout, self.halo)

    @staticmethod
    def _outputs(answer: Tensor) -> tuple[Tensor, Tensor]:
        return rgb_to_bgr_uint8(answer), answer


class ZeroShotGraph(_Graph):
    """``image`` uint8 [N,111,111,3] BGR → (``output`` uint8 BGR, ``answer`` float RGB).

    ``mul``/``add``: the task vector, [N_seq,C] per patched block (zero-shot layout)."""

    def __init__(
        self,
        model: MaeVQGAN,
        mul: Mapping[BlockId, Tensor],
        add: Mapping[BlockId, Tensor],
        halo: int = 0,
        decode: DecodeKind = "answer",
    ) -> None:
        super().__init__(model, G.get_layout("zero-shot"), halo, decode)
        self.block_ids = sorted(mul)
        for bid in self.block_ids:
            self.register_buffer(buffer_name("mul", bid), mul[bid].detach().float().clone()[None])
            self.register_buffer(buffer_name("add", bid), add[bid].detach().float().clone()[None])

    def patches(self) -> dict[BlockId, Patch]:
        return {
            bid: Patch(getattr(self, buffer_name("mul", bid)), getattr(self, buffer_name("add", bid)))
            for bid in self.block_ids
        }

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        canvas = place_cells(bgr_uint8_to_rgb(image))
        return self._outputs(self._answer(canvas, self.patches()))


class InContextGraph(_Graph):
    """(``image``, ``example_in``, ``example_out``) uint8 [N,111,111,3] BGR → outputs as
    :class:`ZeroShotGraph`; the one-shot prompt, no task vector."""

    def __init__(self, model: MaeVQGAN, halo: int = 0, decode: DecodeKind = "answer") -> None:
        super().__init__(model, G.get_layout("in-context"), halo, decode)

    def forward(self, image: Tensor, example_in: Tensor, example_out: Tensor) -> tuple[Tensor, Tensor]:
        canvas = place_cells(bgr_uint8_to_rgb(image), bgr_uint8_to_rgb(example_in), bgr_uint8_to_rgb(example_out))
        return self._outputs(self._answer(canvas, {}))


class BakedExampleGraph(InContextGraph):
    """``image`` uint8 [N,111,111,3] BGR → outputs as :class:`ZeroShotGraph`: the one-shot
    prompt with one example pair baked in as constants (a pairs task's chosen pair)."""

    def __init__(self, model: MaeVQGAN, example_in: Tensor, example_out: Tensor, halo: int = 0,
                 decode: DecodeKind = "answer") -> None:  # fmt: skip
        super().__init__(model, halo, decode)
        self.register_buffer("example_in", example_in.to(torch.uint8).reshape(1, *example_in.shape[-3:]))
        self.register_buffer("example_out", example_out.to(torch.uint8).reshape(1, *example_out.shape[-3:]))

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:  # type: ignore[override]
        n = image.shape[0]
        ex_in = self.example_in.expand(n, -1, -1, -1)
        ex_out = self.example_out.expand(n, -1, -1, -1)
        return super().forward(image, ex_in, ex_out)


class SwitchableGraph(_Graph):
    """``image`` plus float32 ``mul``/``add`` [N_seq,C] for every block (inputs in the
    order of :meth:`input_blocks`, mul then add per block) → outputs as ZeroShotGraph."""

    def __init__(self, model: MaeVQGAN, halo: int = 0) -> None:
        super().__init__(model, G.get_layout("zero-shot"), halo, "answer")

    def input_blocks(self) -> list[BlockId]:
        return self.model.block_ids()

    def forward(self, image: Tensor, *tv: Tensor) -> tuple[Tensor, Tensor]:
        blocks = self.input_blocks()
        if len(tv) != 2 * len(blocks):
            raise ValueError(f"expected {2 * len(blocks)} mul/add tensors, got {len(tv)}")
        patches = {bid: Patch(tv[2 * i][None], tv[2 * i + 1][None]) for i, bid in enumerate(blocks)}
        canvas = place_cells(bgr_uint8_to_rgb(image))
        return self._outputs(self._answer(canvas, patches))


def seq_len(model: MaeVQGAN, bid: BlockId, layout: G.Layout) -> int:
    return layout.num_enc if bid.stage == "enc" else layout.num_dec


def width(model: MaeVQGAN, bid: BlockId) -> int:
    return model.cfg.embed_dim if bid.stage == "enc" else model.cfg.decoder_embed_dim


def identity_patch(model: MaeVQGAN, bid: BlockId, layout: G.Layout | None = None) -> tuple[Tensor, Tensor]:
    """(ones, zeros) [N_seq,C] — the "no patch" feed for the switchable graph."""
    layout = layout or G.get_layout("zero-shot")
    shape = (seq_len(model, bid, layout), width(model, bid))
    return torch.ones(shape), torch.zeros(shape)
