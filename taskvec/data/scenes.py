"""Procedural scenes with foreground masks, for segmentation and for training data.

A scene is a background (a photo crop, a two-colour gradient, or smooth colour noise)
with 1–3 foreground objects on top (ellipses, rotated rectangles, triangles, blobs),
each filled with a texture (flat colour, linear gradient, stripes, checker, or a crop
of another background). The mask is the union of the objects. Everything is built
for the whole batch with coordinate grids; the only Python loop is over the (at most
three) object slots. Randomness comes from the generator alone (drawn on its device,
then moved), so a seed gives the same scenes on any device.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from taskvec.geometry import CELL

MAX_OBJECTS = 3
NUM_SHAPES = 4  # ellipse, rotated rectangle, triangle, blob
NUM_TEXTURES = 5  # flat, gradient, stripes, checker, background crop (noise without backgrounds)
NUM_BACKGROUNDS = 3  # photo crop, gradient, smooth noise


def _u(shape: tuple[int, ...], g: torch.Generator, device, low: float = 0.0, high: float = 1.0) -> Tensor:
    return (low + (high - low) * torch.rand(shape, generator=g, device=g.device)).to(device)


def _ri(high: int, shape: tuple[int, ...], g: torch.Generator, device) -> Tensor:
    return torch.randint(0, high, shape, generator=g, device=g.device).to(device)


def _col(t: Tensor) -> Tensor:
    return t.view(-1, 1, 1, 1)


def _smooth_noise(n: int, g: torch.Generator, device, size: int, cells: int = 6) -> Tensor:
    """Low-frequency colour noise [n,3,size,size] in [0,1]."""
    z = torch.randn((n, 3, cells, cells), generator=g, device=g.device).to(device)
    z = F.interpolate(z, size=(size, size), mode="bicubic", align_corners=False)
    base = _u((n, 3, 1, 1), g, device)
    amp = _u((n, 1, 1, 1), g, device, 0.1, 0.35)
    return (base + amp * z).clamp(0, 1)


def _pick_backgrounds(backgrounds: Tensor, idx: Tensor, flip: Tensor, device) -> Tensor:
    b = backgrounds.to(device=device, dtype=torch.float32)[idx]
    return torch.where(_col(flip), b.flip(-1), b)


def _textures(
    n: int, g: torch.Generator, device, yy: Tensor, xx: Tensor, crops: Tensor, avoid: Tensor
) -> Tensor:
    """One random texture per sample → [n,3,S,S] in [0,1]. ``crops`` [M,3,S,S] are the
    candidate image textures; sample i never gets crop ``avoid[i]`` when M > 1."""
    kind = _ri(NUM_TEXTURES, (n,), g, device)
    c1, c2 = _u((n, 3, 1, 1), g, device), _u((n, 3, 1, 1), g, device)
    ang = _u((n,), g, device, 0, 2 * math.pi)
    freq = _u((n,), g, device, 3, 12)
    phase = _u((n,), g, device, 0, 2 * math.pi)
    m = crops.shape[0]
    shift = _ri(max(1, m - 1), (n,), g, device)
    flip = _u((n,), g, device) < 0.5
    along = _col(ang.cos()) * xx + _col(ang.sin()) * yy  # [n,1,S,S], roughly in [-1.4,1.4]
    across = -_col(ang.sin()) * xx + _col(ang.cos()) * yy
    k = _col(kind)
    # one blend field t per sample (flat 0, gradient, stripes, checker), then c1→c2
    t = torch.where(k == 1, ((along + 1.5) / 3).clamp(0, 1), torch.zeros_like(along))
    t = torch.where(k == 2, (torch.sin(_col(freq) * math.pi * along + _col(phase)) > 0).float(), t)
    f = _col(freq) / 2
    t = torch.where(k == 3, ((torch.floor(f * (along + 2)) + torch.floor(f * (across + 2))) % 2).float(), t)
    out = c1 + (c2 - c1) * t
    idx = (avoid + 1 + shift) % m if m > 1 else torch.zeros_like(avoid)
    return torch.where(k == 4, _pick_backgrounds(crops, idx, flip, device), out)


def _shapes(n: int, g: torch.Generator, device, yy: Tensor, xx: Tensor) -> Tensor:
    """One random shape per sample → bool [n,1,S,S] (coordinates in [-1,1])."""
    kind = _ri(NUM_SHAPES, (n,), g, device)
    cy, cx = _u((n,), g, device, -0.55, 0.55), _u((n,), g, device, -0.55, 0.55)
    r = _u((n,), g, device, 0.22, 0.6)
    aspect = _u((n,), g, device, 0.45, 1.0)
    theta = _u((n,), g, device, 0, 2 * math.pi)
    harm_a = _u((n, 3), g, device, -0.18, 0.18)
    harm_p = _u((n, 3), g, device, 0, 2 * math.pi)
    tri_r = _u((n, 3), g, device, 0.7, 1.1)
    dx, dy = xx - _col(cx), yy - _col(cy)
    c, s = _col(theta.cos()), _col(theta.sin())
    u, v = c * dx + s * dy, -s * dx + c * dy
    a, b = _col(r), _col(r * aspect)
    ellipse = (u / a) ** 2 + (v / b) ** 2 <= 1
    rect = (u.abs() <= a * 0.85) & (v.abs() <= b * 0.85)
    # triangle: vertices at angles 0, 2π/3, 4π/3 (jittered radii) in the rotated frame
    ang = torch.tensor([0.0, 2 * math.pi / 3, 4 * math.pi / 3], device=device)
    px, py = tri_r * r[:, None] * ang.cos(), tri_r * r[:, None] * ang.sin()  # [n,3], counter-clockwise
    tri = torch.ones_like(ellipse)
    for i in range(3):
        j = (i + 1) % 3
        ex, ey = _col(px[:, j] - px[:, i]), _col(py[:, j] - py[:, i])
        tri = tri & (ex * (v - _col(py[:, i])) - ey * (u - _col(px[:, i])) >= 0)
    # blob: radius modulated by angular harmonics 2, 3, 4
    rho, phi = torch.hypot(u, v), torch.atan2(v, u)
    k = torch.arange(2, 5, device=device, dtype=torch.float32).view(1, 3, 1, 1)
    wobble = (harm_a[..., None, None] * torch.cos(k * phi + harm_p[..., None, None])).sum(1, keepdim=True)
    blob = rho <= a * (1 + wobble)
    kk = _col(kind)
    out = torch.where(kk == 0, ellipse, rect)
    out = torch.where(kk == 2, tri, out)
    return torch.where(kk == 3, blob, out)


def procedural_scenes(
    n: int,
    generator: torch.Generator,
    backgrounds: Tensor | None = None,
    device=None,
    size: int = CELL,
) -> tuple[Tensor, Tensor]:
    """``n`` scenes → ``(images [n,3,size,size] in [0,1], masks [n,1,size,size] {0,1})``.

    ``backgrounds`` [M,3,size,size] in [0,1] (e.g. :func:`taskvec.data.images.random_crops`)
    supply photo backgrounds and "crop" textures; without them those fall back to
    gradients and colour noise. Every mask is non-empty and smaller than the image.
    """
    g = generator
    device = torch.device(device) if device is not None else torch.device("cpu")
    has_bg = backgrounds is not None and backgrounds.shape[0] > 0
    r = (torch.arange(size, device=device, dtype=torch.float32) + 0.5) * (2 / size) - 1
    yy, xx = r.view(1, 1, size, 1), r.view(1, 1, 1, size)

    # background
    bg_kind = _ri(NUM_BACKGROUNDS, (n,), g, device)
    bg_idx = _ri(backgrounds.shape[0] if has_bg else 1, (n,), g, device)
    bg_flip = _u((n,), g, device) < 0.5
    c1, c2 = _u((n, 3, 1, 1), g, device), _u((n, 3, 1, 1), g, device)
    ang = _u((n,), g, device, 0, 2 * math.pi)
    t = ((_col(ang.cos()) * xx + _col(ang.sin()) * yy + 1.5) / 3).clamp(0, 1)
    grad = c1 + (c2 - c1) * t
    noise = _smooth_noise(n, g, device, size)
    photo = _pick_backgrounds(backgrounds, bg_idx, bg_flip, device) if has_bg else noise
    k = _col(bg_kind)
    img = torch.where(k == 0, photo, torch.where(k == 1, grad, noise))
    idx_self = torch.arange(n, device=device)  # without backgrounds, textures are other scenes' noise

    # objects
    count = 1 + _ri(MAX_OBJECTS, (n,), g, device)
    mask = torch.zeros(n, 1, size, size, dtype=torch.bool, device=device)
    for j in range(MAX_OBJECTS):
        shape = _shapes(n, g, device, yy, xx) & _col(count > j)
        tex = _textures(n, g, device, yy, xx, backgrounds if has_bg else noise, bg_idx if has_bg else idx_self)
        img = torch.where(shape, tex, img)
        mask |= shape
    # mild sensor-like noise so flat regions are not perfectly flat
    img = img + 0.015 * torch.randn((n, 3, size, size), generator=g, device=g.device).to(device)
    return img.clamp(0, 1), mask.float()
