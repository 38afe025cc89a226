"""Task registry and the reference task constructions (DESIGN §4).

A task turns an image into an (input, target) pair. Random choices (hole place,
darkening) are drawn once per canvas by :meth:`Task.sample_params` and applied to
both the example and the query by :meth:`Task.apply`, so the two pairs show the same
transformation. All images are [B,3,111,111] in [0,1].

Randomness: every draw comes from a ``torch.Generator``. Values are drawn on the
generator's device and then moved to the target device, so a CPU generator gives the
same numbers whatever device the images live on. Per-pixel noise (realistic
low-light) is drawn inside :meth:`Task.apply` from its ``generator`` argument, so the
example and the query of one canvas get *different* noise with the same camera
settings; without a generator the noise comes from ``params["seed"]`` (repeatable,
hence identical for every call with the same params).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from taskvec.geometry import CELL, make_canvas

TaskName = Literal["segmentation", "lowlight", "inpainting", "colorization"]
Variant = Literal["paper", "realistic"]

LUMA_601 = (0.299, 0.587, 0.114)
HOLE_SIDE = CELL // 4  # 27: the paper's in-painting square


# ---------------------------------------------------------------------------------
# Random helpers


def _rand(shape: tuple[int, ...], generator: torch.Generator, device, low=0.0, high=1.0) -> Tensor:
    """Uniform [low, high) drawn on the generator's device, returned on ``device``."""
    u = torch.rand(shape, generator=generator, device=generator.device)
    return (low + (high - low) * u).to(device)


def _randint(low: int, high: int, shape: tuple[int, ...], generator: torch.Generator, device) -> Tensor:
    """Integers in [low, high) drawn on the generator's device, returned on ``device``."""
    return torch.randint(low, high, shape, generator=generator, device=generator.device).to(device)


def _randn(shape: tuple[int, ...], generator: torch.Generator, device) -> Tensor:
    return torch.randn(shape, generator=generator, device=generator.device).to(device)


def _grid(size: int, device) -> tuple[Tensor, Tensor]:
    """Pixel-centre coordinates ``(yy, xx)``, each [1,1,size,size] (float)."""
    r = torch.arange(size, device=device, dtype=torch.float32) + 0.5
    return r.view(1, 1, size, 1), r.view(1, 1, 1, size)


def to_grey(images: Tensor) -> Tensor:
    """ITU-R 601 luma of [B,3,H,W] → [B,1,H,W]."""
    w = torch.tensor(LUMA_601, device=images.device, dtype=images.dtype).view(1, 3, 1, 1)
    return (images * w).sum(dim=1, keepdim=True)


# ---------------------------------------------------------------------------------
# Base class and registry


@dataclass(frozen=True)
class Task:
    """A named task. Subclasses implement :meth:`sample_params` and :meth:`apply`."""

    name: str
    metric: Literal["iou", "psnr"]
    needs_mask: bool
    description: str

    def sample_params(
        self, batch: int, generator: torch.Generator, device=None, variant: Variant = "paper"
    ) -> dict[str, Tensor]:
        """Per-canvas random parameters (tensors with leading dim ``batch``)."""
        return {}

    def apply(
        self,
        images: Tensor,
        params: dict[str, Tensor],
        masks: Tensor | None = None,
        generator: torch.Generator | None = None,
    ) -> tuple[Tensor, Tensor]:
        """images [B,3,111,111] in [0,1] (masks [B,1,H,W] {0,1} where ``needs_mask``)
        → (task_input, target), both [B,3,H,W] in [0,1]."""
        raise NotImplementedError


_REGISTRY: dict[str, Task] = {}


def register_task(task: Task) -> Task:
    """Add ``task`` to the registry under ``task.name`` (replaces a same-named one)."""
    _REGISTRY[task.name] = task
    return task


def get_task(name: str | Task) -> Task:
    """A built-in task by name, a pairs task by its spec ``pairs:DIR[:metric]`` (loaded and
    registered, :mod:`taskvec.data.pairs`) or by the registry name that spec resolved to."""
    if isinstance(name, Task):
        return name
    if name in _REGISTRY:
        return _REGISTRY[name]
    from taskvec.data.pairs import is_pairs_spec, registered_pairs_task, resolve_pairs

    if is_pairs_spec(name):
        return resolve_pairs(name)
    found = registered_pairs_task(name)
    if found is not None:
        return found
    raise ValueError(f"unknown task {name!r}; choose from {', '.join(list_tasks())} or pairs:DIR")


def list_tasks() -> list[str]:
    return sorted(_REGISTRY)


# ---------------------------------------------------------------------------------
# The four reference tasks


@dataclass(frozen=True)
class Segmentation(Task):
    name: str = "segmentation"
    metric: Literal["iou", "psnr"] = "iou"
    needs_mask: bool = True
    description: str = "foreground mask: white foreground on black background"

    def apply(self, images, params, masks=None, generator=None):
        if masks is None:
            raise ValueError("segmentation needs foreground masks [B,1,H,W]")
        target = (masks > 0.5).to(images.dtype).expand(-1, 3, -1, -1).contiguous()
        return images, target


@dataclass(frozen=True)
class LowLight(Task):
    """paper: input = 0.5·image. realistic: gain·image^gamma + shot and read noise."""

    name: str = "lowlight"
    metric: Literal["iou", "psnr"] = "psnr"
    needs_mask: bool = False
    description: str = "low-light enhancement: brighten a dark (and, realistic, noisy) image"

    def sample_params(self, batch, generator, device=None, variant="paper"):
        if variant == "paper":
            return {"gain": torch.full((batch,), 0.5, device=device), "gamma": torch.ones(batch, device=device)}
        return {
            "gamma": _rand((batch,), generator, device, 1.5, 3.0),
            "gain": _rand((batch,), generator, device, 0.15, 0.5),
            "read_sigma": _rand((batch,), generator, device, 0.01, 0.04),
            "shot_sigma": _rand((batch,), generator, device, 0.01, 0.05),
            "seed": _randint(0, 2**62, (1,), generator, device),
        }

    def apply(self, images, params, masks=None, generator=None):
        def col(k: str) -> Tensor:
            return params[k].to(images.device, images.dtype).view(-1, 1, 1, 1)

        dark = col("gain") * images.clamp(0, 1) ** col("gamma")
        if "read_sigma" in params:
            if generator is None:
                generator = torch.Generator(device="cpu").manual_seed(int(params["seed"].reshape(-1)[0]))
            std = torch.sqrt(col("shot_sigma") ** 2 * dark + col("read_sigma") ** 2)
            dark = (dark + std * _randn(tuple(images.shape), generator, images.device)).clamp(0, 1)
        return dark, images


def _segment_distance(yy: Tensor, xx: Tensor, p0: Tensor, p1: Tensor) -> Tensor:
    """Distance of every pixel to segments p0→p1 ([B,K,2] as (y, x)) → [B,K,H,W]."""
    ay, ax = p0[..., 0, None, None], p0[..., 1, None, None]
    dy, dx = (p1 - p0)[..., 0, None, None], (p1 - p0)[..., 1, None, None]
    t = ((yy - ay) * dy + (xx - ax) * dx) / (dy * dy + dx * dx).clamp_min(1e-6)
    t = t.clamp(0, 1)
    return torch.hypot(yy - (ay + t * dy), xx - (ax + t * dx))


@dataclass(frozen=True)
class Inpainting(Task):
    """paper: black 27×27 square. realistic: rectangles, circles or thick strokes."""

    name: str = "inpainting"
    metric: Literal["iou", "psnr"] = "psnr"
    needs_mask: bool = False
    description: str = "in-painting: fill a black hole"
    size: int = CELL
    stroke_points: int = 5

    def sample_params(self, batch, generator, device=None, variant="paper"):
        n = self.size
        yy, xx = _grid(n, device)
        if variant == "paper":
            top = _randint(0, n - HOLE_SIDE + 1, (batch,), generator, device).view(-1, 1, 1, 1)
            left = _randint(0, n - HOLE_SIDE + 1, (batch,), generator, device).view(-1, 1, 1, 1)
            hole = (yy >= top) & (yy < top + HOLE_SIDE) & (xx >= left) & (xx < left + HOLE_SIDE)
            return {"hole": hole.float(), "kind": torch.zeros(batch, dtype=torch.long, device=device)}
        # Every kind is drawn for every sample (fixed number of draws), then one kept.
        kind = _randint(0, 3, (batch,), generator, device)
        # rectangle: random aspect, fully inside
        h = _rand((batch,), generator, device, 0.12, 0.5) * n
        w = _rand((batch,), generator, device, 0.12, 0.5) * n
        y0 = _rand((batch,), generator, device) * (n - h)
        x0 = _rand((batch,), generator, device) * (n - w)
        v = lambda t: t.view(-1, 1, 1, 1)  # noqa: E731
        rect = (yy >= v(y0)) & (yy < v(y0 + h)) & (xx >= v(x0)) & (xx < v(x0 + w))
        # circle: fully inside
        r = _rand((batch,), generator, device, 0.08, 0.25) * n
        cy = r + _rand((batch,), generator, device) * (n - 2 * r)
        cx = r + _rand((batch,), generator, device) * (n - 2 * r)
        circle = (yy - v(cy)) ** 2 + (xx - v(cx)) ** 2 <= v(r) ** 2
        # free-form stroke: thick polyline through random points
        pts = _rand((batch, self.stroke_points, 2), generator, device, 0.1, 0.9) * n
        half = _rand((batch,), generator, device, 0.03, 0.07) * n
        dist = _segment_distance(yy, xx, pts[:, :-1], pts[:, 1:]).amin(dim=1, keepdim=True)
        stroke = dist <= v(half)
        k = v(kind)
        hole = torch.where(k == 0, rect, torch.where(k == 1, circle, stroke))
        return {"hole": hole.float(), "kind": kind}

    def apply(self, images, params, masks=None, generator=None):
        hole = params["hole"].to(images.device, images.dtype)
        return images * (1 - hole), images


@dataclass(frozen=True)
class Colorization(Task):
    name: str = "colorization"
    metric: Literal["iou", "psnr"] = "psnr"
    needs_mask: bool = False
    description: str = "colorization: ITU-R 601 grey in, colour out"

    def apply(self, images, params, masks=None, generator=None):
        return to_grey(images).expand(-1, 3, -1, -1).contiguous(), images


for _t in (Segmentation(), LowLight(), Inpainting(), Colorization()):
    register_task(_t)


# ---------------------------------------------------------------------------------
# Canvases


def build_canvases(
    task: str | Task,
    ex_images: Tensor,
    q_images: Tensor,
    generator: torch.Generator,
    variant: Variant = "paper",
    ex_masks: Tensor | None = None,
    q_masks: Tensor | None = None,
    with_answer: bool = True,
    params: dict[str, Tensor] | None = None,
) -> tuple[Tensor, Tensor, Tensor]:
    """In-context canvases for ``task``.

    ex_images / q_images [B,3,111,111] in [0,1] (masks [B,1,111,111] for
    segmentation). One set of params per canvas is shared by example and query.
    Returns ``(canvas [B,3,224,224] in [0,1] (answer = target, or white when not
    with_answer), target [B,3,111,111], query_input [B,3,111,111])``.
    """
    t = get_task(task)
    if params is None:
        params = t.sample_params(q_images.shape[0], generator, q_images.device, variant)
    ex_in, ex_out = t.apply(ex_images, params, ex_masks, generator=generator)
    q_in, q_out = t.apply(q_images, params, q_masks, generator=generator)
    canvas = make_canvas(ex_in, ex_out, q_in, q_out if with_answer else None)
    return canvas, q_out, q_in
