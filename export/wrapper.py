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
  never computed), the task vector registered as constant buffers named after their site
  (``tv/enc/b07/mul``, ``tv/enc/b07/add``: :func:`export.spec.patch_name`) so the exporter
  writes them as initializers of that name feeding one Mul and one Add before each patched
  block's output projection.
- :class:`InContextGraph` — the one-shot prompt, with ``example_in``/``example_out``.
- :class:`SwitchableGraph` — zero-shot with ``mul``/``add`` as graph inputs for every
  block, so one engine serves every task.

VQ head: ``decode`` chooses the tokens the VQGAN decodes (:func:`taskvec.geometry.decode_region`):
the answer's 7×7 latent, the same with a halo of ``halo`` context tokens, or the full 14×14
grid as the reference does (zero-shot: the bottom half's codes in both halves); the answer
cell is cropped after decoding. The model does the decoding, so the graph computes what
``taskvec prompt`` computes with the same ``decode``.
"""

from __future__ import annotations

from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from export.spec import patch_name
from taskvec import geometry as G
from taskvec.model.mae_vqgan import BlockId, MaeVQGAN, Patch

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
# Graphs


class _Graph(nn.Module):
    def __init__(self, model: MaeVQGAN, layout: G.Layout, decode: G.DecodeKind, halo: int) -> None:
        super().__init__()
        self.model = model
        self.layout = layout
        self.decode = decode
        self.halo = halo
        G.decode_region(layout, decode, halo)  # refuses an unknown decode now, not at trace time

    def _answer(self, canvas: Tensor, patches: Mapping[BlockId, Patch]) -> Tensor:
        out = self.model(G.normalize(canvas), self.layout, patches, decode=self.decode, halo=self.halo)
        return out.answer

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
        decode: G.DecodeKind = "answer",
        halo: int = 1,
    ) -> None:
        super().__init__(model, G.get_layout("zero-shot"), decode, halo)
        self.block_ids = sorted(mul)
        for bid in self.block_ids:
            self.register_buffer(patch_name(bid, "mul"), mul[bid].detach().float().clone()[None])
            self.register_buffer(patch_name(bid, "add"), add[bid].detach().float().clone()[None])

    def patches(self) -> dict[BlockId, Patch]:
        bufs = dict(self.named_buffers(recurse=False))
        return {bid: Patch(bufs[patch_name(bid, "mul")], bufs[patch_name(bid, "add")])
                for bid in self.block_ids}

    def forward(self, image: Tensor) -> tuple[Tensor, Tensor]:
        canvas = place_cells(bgr_uint8_to_rgb(image))
        return self._outputs(self._answer(canvas, self.patches()))


class InContextGraph(_Graph):
    """(``image``, ``example_in``, ``example_out``) uint8 [N,111,111,3] BGR → outputs as
    :class:`ZeroShotGraph`; the one-shot prompt, no task vector."""

    def __init__(self, model: MaeVQGAN, decode: G.DecodeKind = "answer", halo: int = 1) -> None:
        super().__init__(model, G.get_layout("in-context"), decode, halo)

    def forward(self, image: Tensor, example_in: Tensor, example_out: Tensor) -> tuple[Tensor, Tensor]:
        canvas = place_cells(bgr_uint8_to_rgb(image), bgr_uint8_to_rgb(example_in), bgr_uint8_to_rgb(example_out))
        return self._outputs(self._answer(canvas, {}))


class BakedExampleGraph(InContextGraph):
    """``image`` uint8 [N,111,111,3] BGR → outputs as :class:`ZeroShotGraph`: the one-shot
    prompt with one example pair baked in as constants (a pairs task's chosen pair)."""

    def __init__(self, model: MaeVQGAN, example_in: Tensor, example_out: Tensor, decode: G.DecodeKind = "answer",
                 halo: int = 1) -> None:  # fmt: skip
        super().__init__(model, decode, halo)
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

    def __init__(self, model: MaeVQGAN, decode: G.DecodeKind = "answer", halo: int = 1) -> None:
        super().__init__(model, G.get_layout("zero-shot"), decode, halo)

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
