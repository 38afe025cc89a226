"""MAE-VQGAN: the visual-prompting model (DESIGN §1), with a named capture/patch API.

The model is pure: it takes a normalised canvas and a :class:`~taskvec.geometry.Layout`
and returns the answer cell. Task vectors enter through ``patches`` — a mapping from
:class:`BlockId` to :class:`Patch` applied as ``z' = z ⊙ mul + add`` to the attention
heads' output ``z = softmax(qkᵀ)v`` *before* the output projection — and head outputs
are read back with ``record=True``. Export-only rewrites live in ``export/``.
"""

from __future__ import annotations

import math
from functools import lru_cache
from dataclasses import dataclass, field
from typing import Mapping

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskvec import geometry as G
from taskvec.model.blocks import BlockId, Stage  # noqa: F401  (re-exported)
from taskvec.model.config import ModelConfig
from taskvec.model.vqgan import VQGAN

@dataclass
class Patch:
    """``z' = z * mul + add`` on a block's head outputs.

    ``mul`` and ``add`` are [K or 1, N, C] with C = heads·head_dim in head-major order
    (head h owns channels h·Dh:(h+1)·Dh) and N the block's sequence length.
    A batch of K·R canvases may carry K different patches: sample i uses row i // R.
    """

    mul: Tensor
    add: Tensor


@dataclass
class ModelOutput:
    answer: Tensor  # [B,3,111,111] in [0,1]
    answer_norm: Tensor | None = None  # pixel head: [B,3,111,111] ImageNet-normalised, unclamped
    logits: Tensor | None = None  # VQ head: [B,49,V] answer-token logits
    decoder_out: Tensor | None = None  # [B,Nd,Dd] after decoder_norm
    heads: dict[BlockId, Tensor] = field(default_factory=dict)  # [B,N,H,Dh] per block, if recorded


def sincos_pos_embed(dim: int, grid: int = G.GRID) -> Tensor:
    """Fixed 2-D sin-cos embedding [1+grid², dim] with a leading zero row for CLS.

    First half of the channels encodes the column, second half the row (MAE layout)."""
    coords = torch.arange(grid, dtype=torch.float64)
    rows, cols = torch.meshgrid(coords, coords, indexing="ij")

    def one_d(d: int, pos: Tensor) -> Tensor:
        omega = 1.0 / 10000 ** (torch.arange(d // 2, dtype=torch.float64) / (d / 2.0))
        out = pos.reshape(-1, 1) * omega.reshape(1, -1)
        return torch.cat([out.sin(), out.cos()], dim=1)

    emb = torch.cat([one_d(dim // 2, cols), one_d(dim // 2, rows)], dim=1)
    return torch.cat([torch.zeros(1, dim, dtype=torch.float64), emb]).float()


class Attention(nn.Module):
    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, patch: Patch | None = None) -> tuple[Tensor, Tensor]:
        """x [B,N,C] → (output [B,N,C], unpatched head outputs z [B,N,C])."""
        b, n, c = x.shape
        qkv = self.qkv(x).reshape(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = (q * self.head_dim**-0.5) @ k.transpose(-2, -1)
        z = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(b, n, c)
        out = z
        if patch is not None:
            out = _apply_patch(z, patch)
        return self.proj(out), z


def _apply_patch(z: Tensor, patch: Patch) -> Tensor:
    b = z.shape[0]
    k = patch.mul.shape[0]
    if k in (1, b):
        return z * patch.mul + patch.add
    if b % k:
        raise ValueError(f"batch {b} is not a multiple of the {k} patches")
    zz = z.reshape(k, b // k, *z.shape[1:])
    return (zz * patch.mul[:, None] + patch.add[:, None]).reshape(z.shape)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-norm transformer block (LayerNorm eps 1e-6, exact GELU)."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: Tensor, patch: Patch | None = None) -> tuple[Tensor, Tensor]:
        a, z = self.attn(self.norm1(x), patch)
        x = x + a
        return x + self.mlp(self.norm2(x)), z


class PatchEmbed(nn.Module):
    def __init__(self, in_chans: int, dim: int, patch: int) -> None:
        super().__init__()
        self.proj = nn.Conv2d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward_tokens(self, patches: Tensor) -> Tensor:
        """Embed already-cut patches [B,n,16·16·C] (row, col, channel order) → [B,n,D].

        Same numbers as the strided convolution, but only for the tokens asked for."""
        w = self.proj.weight.permute(0, 2, 3, 1).reshape(self.proj.out_channels, -1)
        return F.linear(patches, w, self.proj.bias)


class MaeVQGAN(nn.Module):
    """MAE-VQGAN with the reference state-dict names (DESIGN §1)."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, dd = cfg.embed_dim, cfg.decoder_embed_dim
        self.patch_embed = PatchEmbed(cfg.in_chans, d, cfg.patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, d))
        self.pos_embed = nn.Parameter(sincos_pos_embed(d)[None], requires_grad=False)
        self.blocks = nn.ModuleList([Block(d, cfg.num_heads, cfg.mlp_ratio) for _ in range(cfg.depth)])
        self.norm = nn.LayerNorm(d, eps=1e-6)
        self.decoder_embed = nn.Linear(d, dd)
        self.mask_token = nn.Parameter(torch.zeros(1, 1, dd))
        self.decoder_pos_embed = nn.Parameter(sincos_pos_embed(dd)[None], requires_grad=False)
        self.decoder_blocks = nn.ModuleList(
            [Block(dd, cfg.decoder_num_heads, cfg.mlp_ratio) for _ in range(cfg.decoder_depth)]
        )
        self.decoder_norm = nn.LayerNorm(dd, eps=1e-6)
        pp = cfg.patch_size**2
        if cfg.head == "vq":
            if cfg.vqgan is None:
                raise ValueError("a VQ head needs a vqgan config")
            self.decoder_pred = nn.Linear(dd, cfg.vqgan.n_embed)
            self.vae = VQGAN(cfg.vqgan)
        else:
            if cfg.paint_sigma and cfg.pixel_mode != "gated":
                raise ValueError(f"paint_sigma needs the gated pixel head, not {cfg.pixel_mode!r}")
            extra = pp if cfg.pixel_mode == "gated" else 0
            if cfg.paint_sigma:  # constants, not in the state dict: the weights' fingerprint does not change
                k = gaussian_kernel(cfg.paint_sigma, cfg.in_chans)
                ones = torch.ones(1, 1, G.CELL, G.CELL)
                self.register_buffer("paint_kernel", k, persistent=False)
                self.register_buffer("paint_norm", gaussian_blur(ones, k[:1], ones), persistent=False)
            self.decoder_pred = nn.Linear(dd, pp * cfg.in_chans + extra)
            if cfg.refine:
                self.refine = AnswerRefiner(cfg.refine, cfg.in_chans)
        self._init_weights()

    # ------------------------------------------------------------------ init
    def _init_weights(self) -> None:
        w = self.patch_embed.proj.weight
        nn.init.xavier_uniform_(w.view(w.shape[0], -1))
        nn.init.normal_(self.cls_token, std=0.02)
        nn.init.normal_(self.mask_token, std=0.02)
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
        if self.cfg.head == "pixel" and self.cfg.pixel_mode != "plain":
            # Start as "copy the query": zero correction, gate open.
            nn.init.zeros_(self.decoder_pred.weight)
            nn.init.zeros_(self.decoder_pred.bias)
            if self.cfg.pixel_mode == "gated":
                nn.init.constant_(self.decoder_pred.bias[-self.cfg.patch_size**2 :], 2.0)
        if self.cfg.head == "pixel" and self.cfg.refine:
            self.refine.reset_parameters()

    # ------------------------------------------------------------------ API
    def block_ids(self) -> list[BlockId]:
        return [BlockId("enc", i) for i in range(self.cfg.depth)] + [
            BlockId("dec", j) for j in range(self.cfg.decoder_depth)
        ]

    def forward(
        self,
        canvas: Tensor,
        layout: G.Layout,
        patches: Mapping[BlockId, Patch] | None = None,
        record: bool = False,
        decode: G.DecodeKind = "full",
        halo: int = 1,
    ) -> ModelOutput:
        """canvas [B,3,224,224] ImageNet-normalised → answer cell.

        ``patches`` replaces head outputs per block; ``record`` returns every block's
        unpatched head outputs [B,N,H,Dh] in the layout's sequence order. VQ head:
        ``decode`` names the tokens the VQGAN decodes (:func:`~taskvec.geometry.decode_region`;
        ``full``, the default, is the reference MAE-VQGAN's answer); the pixel head ignores it."""
        patches = patches or {}
        heads: dict[BlockId, Tensor] = {}
        b = canvas.shape[0]
        dev = canvas.device

        idx = _layout_index(layout, str(dev))
        tok = idx["enc_tokens"]
        x = self.patch_embed.forward_tokens(G.patchify(canvas)[:, tok])
        x = x + self.pos_embed[:, 1:][:, tok]
        cls = (self.cls_token + self.pos_embed[:, :1]).expand(b, -1, -1)
        x = torch.cat([cls, x], dim=1)
        for i, blk in enumerate(self.blocks):
            key = BlockId("enc", i)
            x, z = blk(x, patches.get(key))
            if record:
                heads[key] = z.reshape(b, z.shape[1], self.cfg.num_heads, -1)
        x = self.norm(x)

        y = self.decoder_embed(x)
        y = torch.cat([y, self.mask_token.expand(b, 1, -1)], dim=1)
        y = y[:, idx["dec_gather"]]
        y = y + self.decoder_pos_embed[:, idx["dec_slots"]]
        for j, blk in enumerate(self.decoder_blocks):
            key = BlockId("dec", j)
            y, z = blk(y, patches.get(key))
            if record:
                heads[key] = z.reshape(b, z.shape[1], self.cfg.decoder_num_heads, -1)
        y = self.decoder_norm(y)

        if self.cfg.head == "vq":
            answer, logits = self.decode_vq(y, layout, decode, halo)
            return ModelOutput(answer, None, logits, y, heads)
        ans = y[:, idx["answer"]]
        pix, gate = self.pixel_tokens(ans, canvas, with_gate=True)
        half = G.GRID // 2
        block = G.unpatchify(pix, half, half)
        if self.cfg.refine:
            painted = None if gate is None else 1 - G.unpatchify(gate, half, half, c=1)
            query = G.unpatchify(answer_source_patches(canvas), half, half)
            block = self.refine(block, query, painted)
        answer_norm = G.answer_from_block(block)
        if self.cfg.paint_sigma:
            gate = G.answer_from_block(G.unpatchify(gate, G.GRID // 2, G.GRID // 2, c=1))
            answer_norm = smooth_painted(answer_norm, gate, self.paint_kernel, self.paint_norm)
        answer = G.denormalize(answer_norm).clamp(0, 1)
        return ModelOutput(answer, answer_norm, None, y, heads)

    def decode_vq(self, decoder_out: Tensor, layout: G.Layout, decode: G.DecodeKind = "full",
                  halo: int = 1) -> tuple[Tensor, Tensor]:
        """VQ head: decoder output [B,Nd,Dd] (after ``decoder_norm``) → (answer cell
        [B,3,111,111] in [0,1], the answer tokens' logits [B,49,V]).

        Argmax codes of the :func:`~taskvec.geometry.decode_region` tokens go through the
        VQGAN decoder and the answer cell is cropped from the decoded image."""
        region = G.decode_region(layout, decode, halo)
        seen, spread, answer = _region_index(region, str(decoder_out.device))
        logits = self.decoder_pred(decoder_out[:, seen])  # each decoder token once
        codes = logits.argmax(dim=-1)
        if spread is not None:
            codes = codes[:, spread]
        codes = codes.reshape(logits.shape[0], region.rows, region.cols)
        image = (self.vae.decode_indices(codes) + 1) / 2
        return region.crop(image), logits[:, answer]

    # ------------------------------------------------------------------ heads
    def pixel_tokens(self, feats: Tensor, canvas: Tensor, tokens: list[int] | None = None, with_gate: bool = False):
        """Pixel head on decoder features [B,n,Dd] of canvas ``tokens`` (default: the answer
        cell's 49) → [B,n,16·16·3] ImageNet-normalised pixels (and, ``with_gate``, the gated
        head's per-pixel gate [B,n,16·16] in (0,1) — 1 copies the source pixel, 0 paints it —
        or None for the other heads).

        "residual"/"gated" add to the *source* patch: the pixels 113 px to the left (the
        query under the answer, the example input under the example output; mean grey
        where there is none)."""
        out = self.decoder_pred(feats)
        mode = self.cfg.pixel_mode
        gate = None
        if mode == "plain":
            pix = out
        else:
            if tokens is None:
                src = answer_source_patches(canvas)
            else:
                src = G.patchify(source_canvas(canvas))[:, torch.tensor(tokens, device=canvas.device)]
            if mode == "residual":
                pix = src + out
            else:
                pp = self.cfg.patch_size**2
                rgb, gate = out[..., :-pp], torch.sigmoid(out[..., -pp:])
                pix = gate.repeat_interleave(self.cfg.in_chans, dim=-1) * src + rgb
        return (pix, gate) if with_gate else pix



@lru_cache(maxsize=32)
def _layout_index(layout: G.Layout, device: str) -> dict[str, Tensor]:
    """Index tensors of a layout on ``device`` (cached per layout and device; made outside
    inference mode, so training may use them after an inference call cached them)."""
    with torch.inference_mode(False):
        return {
            "enc_tokens": torch.tensor([s - 1 for s in layout.enc_slots[1:]], device=device),
            "dec_gather": torch.tensor(layout.decoder_gather(), device=device),
            "dec_slots": torch.tensor(layout.dec_slots, device=device),
            "answer": torch.tensor(layout.answer_dec_index(), device=device),
        }


@lru_cache(maxsize=32)
def _region_index(region: G.DecodeRegion, device: str) -> tuple[Tensor, Tensor | None, Tensor]:
    """(the decoder positions the region reads, each once; for every region token its row in
    those, None when that is the identity; the rows of the answer's 49 tokens) on ``device``."""
    seen = sorted(set(region.sources))
    row = {s: i for i, s in enumerate(seen)}
    spread = [row[s] for s in region.sources]
    answer = [spread[p] for p in region.answer_positions]
    with torch.inference_mode(False):  # as _layout_index
        t = lambda x: torch.tensor(x, device=device)  # noqa: E731
        return t(seen), None if spread == list(range(len(seen))) else t(spread), t(answer)


class AnswerRefiner(nn.Module):
    """A small convolutional refinement of the pixel head's answer (DESIGN §7).

    Input: the assembled answer block, the query block under it (both [B,3,112,112],
    ImageNet-normalised) and, for the gated head, how much of each pixel the head painted
    itself (``1 − gate``, [B,1,112,112]). A stride-2 convolution, three dilated residual
    3×3 convolutions at 56×56 (receptive field ±17 px: a 27-px hole's border reaches its
    centre), a bilinear ×2 and a 3×3 convolution over those features and the inputs give a
    correction added to the answer. The last layer starts at zero, so a model fine-tuned from
    weights without it starts exactly where they were. ≈0.1 GMAC at ``ch`` = 32.
    """

    def __init__(self, ch: int, c: int = 3) -> None:
        super().__init__()
        cin = 2 * c + 1
        self.down = nn.Conv2d(cin, ch, 3, stride=2, padding=1)
        self.mid = nn.ModuleList([nn.Conv2d(ch, ch, 3, padding=d, dilation=d) for d in (1, 2, 4)])
        self.out = nn.Conv2d(ch + cin, c, 3, padding=1)

    def reset_parameters(self) -> None:
        for m in [self.down, *self.mid]:
            nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
            nn.init.zeros_(m.bias)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, answer: Tensor, query: Tensor, painted: Tensor | None) -> Tensor:
        if painted is None:
            painted = torch.ones_like(answer[:, :1])
        x = torch.cat([answer, query, painted], dim=1)
        h = F.gelu(self.down(x))
        for m in self.mid:
            h = h + F.gelu(m(h))
        h = F.interpolate(h, size=x.shape[-2:], mode="bilinear", align_corners=False)
        return answer + self.out(torch.cat([h, x], dim=1))


def gaussian_kernel(sigma: float, channels: int = 3) -> Tensor:
    """1-D Gaussian taps (radius ⌈3σ⌉, sum 1) for ``channels`` depthwise channels → [C,1,2r+1]."""
    r = math.ceil(3 * sigma)
    k = torch.exp(-torch.arange(-r, r + 1, dtype=torch.float32) ** 2 / (2 * sigma**2))
    return (k / k.sum()).repeat(channels, 1)[:, None]


def gaussian_blur(x: Tensor, kernel: Tensor, norm: Tensor | None = None) -> Tensor:
    """Separable blur of [B,C,H,W] by ``kernel`` [C,1,K] (:func:`gaussian_kernel`) as a
    normalised convolution: zero padding, divided by the blur of ones (``norm`` [1,1,H,W],
    computed when not given), so pixels near the border average only the pixels there are.
    Exported, it is two depthwise Conv nodes and a Div by a constant."""
    r, c = kernel.shape[-1] // 2, kernel.shape[0]
    y = F.conv2d(x, kernel[..., None, :], padding=(0, r), groups=c)
    y = F.conv2d(y, kernel[..., :, None], padding=(r, 0), groups=c)
    if norm is None:
        norm = gaussian_blur(torch.ones_like(x[:1, :1]), kernel[:1], torch.ones_like(x[:1, :1]))
    return y / norm


def smooth_painted(answer: Tensor, gate: Tensor, kernel: Tensor, norm: Tensor | None = None) -> Tensor:
    """Blend ``answer`` [B,C,H,W] towards its Gaussian blur where ``gate`` [B,1,H,W] is closed:
    ``answer + (1 − gate)·(blur(answer) − answer)``. Copied pixels (gate ≈ 1) stay as they are;
    painted ones (an in-painting hole) lose the 16-px token seams of the per-token head and
    blend into the known pixels around them. Linear, so the same in [0,1] and normalised space."""
    return answer + (1 - gate) * (gaussian_blur(answer, kernel, norm) - answer)


def source_canvas(canvas: Tensor) -> Tensor:
    """[B,3,224,224] → the same canvas shifted right by one cell pitch (113 px).

    Column x holds canvas column x−113; columns left of 113 are zero (mean grey in
    normalised space), except the column just before the answer cell (x = 112), which
    repeats the query's first column so the answer block's first patch is complete."""
    shift = G.CELL + G.GAP
    shifted = F.pad(canvas[..., : G.CANVAS - shift], (shift, 0))
    return torch.cat([shifted[..., : shift - 1], canvas[..., 0:1], shifted[..., shift:]], dim=-1)


def answer_source_patches(canvas: Tensor) -> Tensor:
    """The source patches of the answer's 7×7 tokens, [B,49,16·16·3] — the same numbers as
    ``patchify(source_canvas(canvas))`` at the answer tokens, without copying the canvas."""
    top = G.GRID // 2 * G.PATCH  # 112: first pixel row/col of the answer block
    query = canvas[..., top:, : G.CELL]  # [B,3,112,111]: the query rows, its 111 columns
    return G.patchify(torch.cat([query[..., :1], query], dim=-1))


def build_model(cfg: ModelConfig) -> MaeVQGAN:
    return MaeVQGAN(cfg)


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
