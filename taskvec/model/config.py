"""Model configurations, looked up by name (STYLE §9).

Every size uses the reference geometry (224 canvas, patch 16, 14×14 tokens); only
widths, depths and the head differ. No torch here: configs and names load without it
(the VQGAN's widths, :class:`VQGANConfig`, live here too; its modules in ``vqgan``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

HeadKind = Literal["vq", "pixel"]
# How a pixel head forms the answer: "plain" paints the pixels from nothing, "residual"
# adds a correction to the query patch in the same place, "gated" blends the two with
# a learned per-pixel gate (DESIGN §7).
PixelMode = Literal["plain", "residual", "gated"]


@dataclass(frozen=True)
class VQGANConfig:
    """Widths of the VQGAN. Every channel count ``ch * m`` must be divisible by 32
    (or be below 32, in which case GroupNorm uses one group per channel)."""

    ch: int = 128
    ch_mult: tuple[int, ...] = (1, 1, 2, 2, 4)
    num_res_blocks: int = 2
    z_channels: int = 256
    n_embed: int = 1024
    embed_dim: int = 256
    in_channels: int = 3
    out_ch: int = 3

    @property
    def downsample_factor(self) -> int:
        """Pixels per latent cell along each axis (16 for five levels)."""
        return 2 ** (len(self.ch_mult) - 1)


def vqgan_f16_1024() -> VQGANConfig:
    """Config of taming ``vqgan_imagenet_f16_1024`` as used by MAE-VQGAN."""
    return VQGANConfig()


def vqgan_tiny() -> VQGANConfig:
    """Small config with the same geometry (factor 16, 5 levels) for tests."""
    return VQGANConfig(ch=32, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=1,
                       z_channels=32, n_embed=64, embed_dim=32)


@dataclass(frozen=True)
class ModelConfig:
    name: str
    embed_dim: int
    depth: int
    num_heads: int
    decoder_embed_dim: int
    decoder_depth: int
    decoder_num_heads: int
    head: HeadKind = "vq"
    pixel_mode: PixelMode = "plain"
    # Gated pixel head only: Gaussian σ (px) that smooths the pixels the model paints itself
    # (gate closed), across the 16-px token seams and into the known pixels around them; 0 = off.
    paint_sigma: float = 0.0
    # Pixel heads only: channels of a small convolutional refinement over the assembled 112×112
    # answer block (it can carry a hole's border inwards, which a per-token head cannot); 0 = none.
    refine: int = 0
    vqgan: VQGANConfig | None = field(default_factory=VQGANConfig)
    mlp_ratio: float = 4.0
    img_size: int = 224
    patch_size: int = 16
    in_chans: int = 3

    @property
    def head_dim(self) -> int:
        return self.embed_dim // self.num_heads

    @property
    def decoder_head_dim(self) -> int:
        return self.decoder_embed_dim // self.decoder_num_heads

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        d = dict(d)
        vq = d.pop("vqgan", None)
        if vq is not None:
            vq = dict(vq)
            vq["ch_mult"] = tuple(vq["ch_mult"])
            vq = VQGANConfig(**vq)
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(vqgan=vq, **{k: v for k, v in d.items() if k in known})


_REGISTRY: dict[str, Callable[[], ModelConfig]] = {}


def register_config(fn: Callable[[], ModelConfig]) -> Callable[[], ModelConfig]:
    _REGISTRY[fn.__name__] = fn
    return fn


def list_configs() -> list[str]:
    return sorted(_REGISTRY)


def get_config(name: str) -> ModelConfig:
    if name not in _REGISTRY:
        raise ValueError(f"unknown model config {name!r}; choose from {', '.join(list_configs())}")
    return _REGISTRY[name]()


@register_config
def vit_large() -> ModelConfig:
    """The published MAE-VQGAN (``mae_vit_large_patch16``) geometry."""
    return ModelConfig("vit_large", 1024, 24, 16, 512, 8, 16, head="vq", vqgan=VQGANConfig())


@register_config
def tiny() -> ModelConfig:
    """The embedded default model trained by this project (pixel head)."""
    return ModelConfig("tiny", 192, 6, 6, 128, 4, 4, head="pixel", pixel_mode="gated", paint_sigma=4.0, vqgan=None)


@register_config
def tiny_refine() -> ModelConfig:
    """``tiny`` with a convolutional refinement of the answer (:class:`taskvec.model.mae_vqgan.AnswerRefiner`)."""
    return dataclasses.replace(tiny(), name="tiny_refine", refine=32)


@register_config
def tiny_plain() -> ModelConfig:
    """``tiny`` with a plain pixel head (paints the answer from nothing), for comparison."""
    return dataclasses.replace(tiny(), name="tiny_plain", pixel_mode="plain", paint_sigma=0.0)


@register_config
def tiny_residual() -> ModelConfig:
    """``tiny`` with a residual pixel head (corrects the query), for comparison."""
    return dataclasses.replace(tiny(), name="tiny_residual", pixel_mode="residual", paint_sigma=0.0)


@register_config
def micro() -> ModelConfig:
    """A minimal VQ-head model for tests: same geometry and state-dict names as vit_large."""
    vq = VQGANConfig(ch=32, ch_mult=(1, 1, 2, 2, 4), num_res_blocks=1, z_channels=32, n_embed=64, embed_dim=32)
    return ModelConfig("micro", 64, 2, 2, 32, 2, 2, head="vq", vqgan=vq)


@register_config
def micro_pixel() -> ModelConfig:
    """A minimal pixel-head model for tests."""
    return ModelConfig("micro_pixel", 64, 2, 2, 32, 2, 2, head="pixel", pixel_mode="gated", paint_sigma=2.0, vqgan=None)


@register_config
def micro_refine() -> ModelConfig:
    """:func:`micro_pixel` with the convolutional answer refinement, for tests."""
    return dataclasses.replace(micro_pixel(), name="micro_refine", refine=8)


# The published checkpoint's ``args.model`` names → our configs.
PUBLISHED_ARCHS = {"mae_vit_large_patch16": "vit_large", "mae_vit_large_patch16_dec512d8b": "vit_large"}
