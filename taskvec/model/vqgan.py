"""VQGAN image tokenizer/detokenizer (taming-transformers ``vqgan_imagenet_f16_1024``).

Written from the published architecture description so that the parameter names
match the taming state dict exactly (the MAE-VQGAN checkpoint stores it under the
prefix ``vae.``; the caller strips/adds that prefix). Pixels live in [-1, 1].

Geometry of the published model (``vqgan_f16_1024()``): ``ch=128``,
``ch_mult=(1, 1, 2, 2, 4)`` (five levels, four 2x resamplings → factor 16),
2 ResnetBlocks per encoder level and 3 per decoder level, single-head spatial
attention at the lowest level and in the middle, ``z_channels=256``,
codebook 1024 x 256.

Layout of the state dict (``L = len(ch_mult)``, ``R = num_res_blocks``)::

    encoder.conv_in                        3 -> ch
    encoder.down.{i}.block.{0..R-1}        ResnetBlock (nin_shortcut iff channels change)
    encoder.down.{L-1}.attn.{0..R-1}       AttnBlock
    encoder.down.{i}.downsample.conv       i < L-1
    encoder.mid.{block_1,attn_1,block_2}
    encoder.norm_out, encoder.conv_out     -> z_channels (double_z = False)
    quant_conv, post_quant_conv            1x1, z_channels <-> embed_dim
    quantize.embedding.weight              [n_embed, embed_dim]
    decoder.conv_in, decoder.mid.*
    decoder.up.{i}.block.{0..R}            indexed by level: up.{L-1} runs first
    decoder.up.{L-1}.attn.{0..R}
    decoder.up.{i}.upsample.conv           i > 0
    decoder.norm_out, decoder.conv_out     -> out_ch

The decoder path (``decode_codes``) uses only Conv/GroupNorm/MatMul/Softmax/Resize
style ops with shape-agnostic reshapes, so it exports to ONNX (opset 17) with a
dynamic batch and any latent size (7x7 answer cell, 14x14 full canvas).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from taskvec.model.config import VQGANConfig, vqgan_f16_1024, vqgan_tiny

__all__ = ["VQGANConfig", "VQGAN", "vqgan_f16_1024", "vqgan_tiny"]


def _norm(channels: int) -> nn.GroupNorm:
    """GroupNorm(32, eps=1e-6) as in taming; ``min(32, C)`` groups when ``C < 32``."""
    return nn.GroupNorm(num_groups=min(32, channels), num_channels=channels, eps=1e-6, affine=True)


def _conv3(c_in: int, c_out: int, stride: int = 1, padding: int = 1) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=3, stride=stride, padding=padding)


def _conv1(c_in: int, c_out: int) -> nn.Conv2d:
    return nn.Conv2d(c_in, c_out, kernel_size=1)


class ResnetBlock(nn.Module):
    """norm1 → swish → conv1 → norm2 → swish → (dropout 0) → conv2, plus a skip
    through a 1x1 ``nin_shortcut`` when the channel count changes. [B,Ci,H,W] → [B,Co,H,W]."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.norm1 = _norm(c_in)
        self.conv1 = _conv3(c_in, c_out)
        self.norm2 = _norm(c_out)
        self.conv2 = _conv3(c_out, c_out)
        if c_in != c_out:
            self.nin_shortcut = _conv1(c_in, c_out)
        else:
            self.nin_shortcut = None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        skip = x if self.nin_shortcut is None else self.nin_shortcut(x)
        return skip + h


class AttnBlock(nn.Module):
    """Single-head self-attention over the H*W positions with 1x1-conv projections,
    scale ``C^-0.5``, residual. [B,C,H,W] → [B,C,H,W]."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.norm = _norm(channels)
        self.q = _conv1(channels, channels)
        self.k = _conv1(channels, channels)
        self.v = _conv1(channels, channels)
        self.proj_out = _conv1(channels, channels)
        self.scale = float(channels) ** -0.5

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm(x)
        q = self.q(h).flatten(2).transpose(1, 2)  # [B, N, C]
        k = self.k(h).flatten(2)                  # [B, C, N]
        v = self.v(h).flatten(2).transpose(1, 2)  # [B, N, C]
        attn = torch.softmax(torch.matmul(q, k) * self.scale, dim=-1)  # [B, N(query), N(key)]
        out = torch.matmul(attn, v).transpose(1, 2)                    # [B, C, N]
        return x + self.proj_out(out.reshape(x.shape))


class Downsample(nn.Module):
    """Pad right/bottom by one, then 3x3 stride-2 conv (taming's asymmetric padding)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv3(channels, channels, stride=2, padding=0)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, (0, 1, 0, 1), mode="constant", value=0.0))


class Upsample(nn.Module):
    """Nearest-neighbour x2 followed by a 3x3 conv."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = _conv3(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class _Mid(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block_1 = ResnetBlock(channels, channels)
        self.attn_1 = AttnBlock(channels)
        self.block_2 = ResnetBlock(channels, channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.block_2(self.attn_1(self.block_1(x)))


class _Level(nn.Module):
    """One resolution level: ``block`` (+ ``attn`` at the lowest level) and an
    optional ``downsample`` (encoder) or ``upsample`` (decoder) set by the owner."""

    def __init__(self, c_in: int, c_out: int, n_blocks: int, attn: bool) -> None:
        super().__init__()
        self.block = nn.ModuleList(ResnetBlock(c_in if j == 0 else c_out, c_out) for j in range(n_blocks))
        self.attn = nn.ModuleList(AttnBlock(c_out) for _ in range(n_blocks)) if attn else nn.ModuleList()
        self.downsample: nn.Module | None = None
        self.upsample: nn.Module | None = None

    def run_blocks(self, x: Tensor) -> Tensor:
        for j, block in enumerate(self.block):
            x = block(x)
            if len(self.attn) > 0:
                x = self.attn[j](x)
        return x


class Encoder(nn.Module):
    """[B, in_channels, H, W] in [-1,1] → [B, z_channels, H/f, W/f] (f = 2^(L-1))."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        n_levels = len(cfg.ch_mult)
        self.conv_in = _conv3(cfg.in_channels, cfg.ch)
        self.down = nn.ModuleList()
        c_in = cfg.ch
        for i, mult in enumerate(cfg.ch_mult):
            c_out = cfg.ch * mult
            level = _Level(c_in, c_out, cfg.num_res_blocks, attn=i == n_levels - 1)
            if i != n_levels - 1:
                level.downsample = Downsample(c_out)
            self.down.append(level)
            c_in = c_out
        self.mid = _Mid(c_in)
        self.norm_out = _norm(c_in)
        self.conv_out = _conv3(c_in, cfg.z_channels)

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv_in(x)
        for level in self.down:
            h = level.run_blocks(h)
            if level.downsample is not None:
                h = level.downsample(h)
        h = self.mid(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class Decoder(nn.Module):
    """[B, z_channels, h, w] → [B, out_ch, h*f, w*f] (unclamped). Any h, w."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        n_levels = len(cfg.ch_mult)
        c_in = cfg.ch * cfg.ch_mult[-1]
        self.conv_in = _conv3(cfg.z_channels, c_in)
        self.mid = _Mid(c_in)
        levels: list[_Level] = []
        for i in reversed(range(n_levels)):
            c_out = cfg.ch * cfg.ch_mult[i]
            level = _Level(c_in, c_out, cfg.num_res_blocks + 1, attn=i == n_levels - 1)
            if i != 0:
                level.upsample = Upsample(c_out)
            levels.insert(0, level)  # index by level: up[L-1] is the lowest resolution
            c_in = c_out
        self.up = nn.ModuleList(levels)
        self.norm_out = _norm(c_in)
        self.conv_out = _conv3(c_in, cfg.out_ch)

    def forward(self, z: Tensor) -> Tensor:
        h = self.mid(self.conv_in(z))
        for i in reversed(range(len(self.up))):
            level = self.up[i]
            h = level.run_blocks(h)
            if level.upsample is not None:
                h = level.upsample(h)
        return self.conv_out(F.silu(self.norm_out(h)))


class VectorQuantizer(nn.Module):
    """Codebook ``embedding.weight`` [n_embed, embed_dim]; nearest row by L2."""

    def __init__(self, n_embed: int, embed_dim: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(n_embed, embed_dim)

    def nearest(self, z: Tensor) -> Tensor:
        """z [B, D, h, w] → indices [B, h, w] int64 of the closest codebook rows."""
        b, d, h, w = z.shape
        flat = z.permute(0, 2, 3, 1).reshape(-1, d)          # [B*h*w, D]
        codes = self.embedding.weight                         # [K, D]
        dist = (flat.pow(2).sum(1, keepdim=True) - 2.0 * flat @ codes.t()
                + codes.pow(2).sum(1)[None, :])               # [B*h*w, K]
        return dist.argmin(dim=1).reshape(b, h, w)

    def lookup(self, idx: Tensor) -> Tensor:
        """idx [B, h, w] int64 in [0, n_embed) → codebook vectors [B, D, h, w]."""
        return self.embedding(idx).permute(0, 3, 1, 2)


class VQGAN(nn.Module):
    """taming VQModel without the training loss. Images in [-1, 1], factor 16."""

    def __init__(self, cfg: VQGANConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)
        self.quantize = VectorQuantizer(cfg.n_embed, cfg.embed_dim)
        self.quant_conv = _conv1(cfg.z_channels, cfg.embed_dim)
        self.post_quant_conv = _conv1(cfg.embed_dim, cfg.z_channels)

    def encode_indices(self, x: Tensor) -> Tensor:
        """x [B, 3, H, W] in [-1, 1] (H, W multiples of 16) → code indices [B, H/16, W/16] int64."""
        return self.quantize.nearest(self.quant_conv(self.encoder(x)))

    def decode_codes(self, z: Tensor) -> Tensor:
        """z [B, embed_dim, h, w] codebook vectors → image [B, 3, 16h, 16w] clamped to [-1, 1]."""
        return self.decoder(self.post_quant_conv(z)).clamp(-1.0, 1.0)

    def decode_indices(self, idx: Tensor) -> Tensor:
        """idx [B, h, w] int64 in [0, n_embed) → image [B, 3, 16h, 16w] in [-1, 1]."""
        return self.decode_codes(self.quantize.lookup(idx))
