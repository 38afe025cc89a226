"""The low-light transfer: how the graph's 111×111 answer becomes a full-resolution frame.

:class:`runtime.predictor.LowLightEnhancer` runs the graph and calls these steps; they are
plain OpenCV/numpy on float32 images so the native runtime can port them line by line.
Frames are HxWx3 float32 BGR in [0,1] here; cells are [111,111,3].

Modes (``LowLightParams.mode``, ``tvrun --transfer``):

- ``denoise`` (default): (1) *no-overshoot exposure*: the per-pixel gain the graph implies,
  ``G = (answer+eps)/(input+eps)``, is split into a linear exposure ``W`` (the gain at
  the bright end, ``p99.9(answer luma) / p99.9(input luma)``) and the shadow lift the graph
  adds on top; the lift is kept with weight ``t`` (``G' = W·(G/W)^t``), ``t`` falling from 1
  to 0 as the input exposed by ``W`` has mean luma from ``lift[0]`` to ``lift[1]`` — a frame
  that is merely dim (it looks normal once exposed) gets the exposure and no lift, so it is
  not over-brightened or colour-shifted. (2) *denoise before brightening*: the frame's
  noise σ is estimated (Immerkær's Laplacian-difference estimator on luma); the frame is
  split into a base ``L`` — a self-guided filter (He et al.; luma guide, coefficients at
  half resolution, radius ``base_radius``, ``eps = base_eps_k·σ²/4``): flat where the local
  contrast is within the noise, edges kept — and detail ``H = frame − L``; detail is kept
  with the local Wiener weight ``max(0, 1 − (noise_k·σ)² / box(H_luma²))`` (window
  ``2·energy_radius+1``), so only detail that stands above the noise survives. (3)
  the gain is upsampled with the fast guided filter, guided by the *denoised* luma, and
  multiplies the denoised frame.
- ``temporal``: as ``denoise``, after a recursive temporal filter on the frame:
  ``acc += α·(frame − acc)`` with ``α = temporal_alpha`` where the frame matches ``acc``
  and ``α → 1`` where the 5×5-averaged luma difference exceeds ``motion_k`` noise
  standard deviations (motion: no ghost); the per-pixel noise variance left in ``acc`` is
  tracked (``v ← (1−α)²·v + α²``) and sets the spatial threshold.
- ``gain``: the original transfer, kept for comparison — the graph's gain map (eps 4
  grey levels, at most ×12) multiplies the raw frame, noise included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Literal

import cv2
import numpy as np

from runtime.guided import fast_guided_upsample, reuse_buffer
from taskvec.errors import UserError

TransferMode = Literal["denoise", "temporal", "gain"]
TRANSFER_MODES: tuple[str, ...] = ("denoise", "temporal", "gain")

# Immerkær (1996): σ = sqrt(π/2) / (6 (W−2)(H−2)) · Σ |I * N|
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


@dataclass
class LowLightParams:
    """Parameters of the transfer (grey levels are on the 0–255 scale; the rest unitless).

    Chosen on clips of the *training* photos (``python -m benchmarks.lowlight_quality
    --photos train``), never on the held-out ones the README reports."""

    mode: TransferMode = "denoise"
    eps: float = 1.0  # gain = (answer + eps) / (input + eps), grey levels
    max_gain: float = 40.0  # the gain is clipped to [1/max_gain, max_gain]
    lift: tuple[float, float] = (0.3, 0.4)  # exposed mean luma where the shadow lift fades out
    white_pct: float = 99.9  # percentile that defines the exposure W
    noise_k: float = 2.0  # detail is kept where its local RMS exceeds noise_k·σ
    detail_sigma: float = 3.0  # Gaussian base: σ in pixels
    energy_radius: int = 2  # box radius of the local detail energy
    base: Literal["guided", "gauss"] = "guided"  # base layer: edge-aware guided filter, or a Gaussian
    base_radius: int = 2  # guided base: box radius at half resolution (5×5 half-res pixels)
    base_eps_k: float = 25.0  # guided base: eps = base_eps_k·σ²: flat where the local std < 5σ, edges kept
    temporal_alpha: float = 0.25  # weight of a new frame where nothing moves (temporal mode)
    motion_k: float = 3.0  # luma change (in σ of the 5×5 mean) that counts as motion

    def __post_init__(self) -> None:
        if self.mode not in TRANSFER_MODES:
            raise UserError(f"unknown low-light transfer {self.mode!r}; choose from {', '.join(TRANSFER_MODES)}")
        lo, hi = (float(v) for v in self.lift)
        if not (0.0 <= lo < hi <= 1.0):
            raise UserError(f"bad lift range {self.lift}: need 0 <= low < high <= 1 (mean luma)")
        self.lift = (lo, hi)
        if self.noise_k < 0 or self.detail_sigma <= 0 or self.energy_radius < 0:
            raise UserError("noise_k must be >= 0, detail_sigma > 0, energy_radius >= 0")
        if self.base not in ("guided", "gauss") or self.base_radius < 1 or self.base_eps_k <= 0:
            raise UserError("base must be guided or gauss, base_radius >= 1, base_eps_k > 0")
        if not (0.0 < self.temporal_alpha <= 1.0) or self.motion_k <= 0:
            raise UserError("temporal_alpha must be in (0, 1] and motion_k > 0")
        if self.max_gain < 1 or self.eps <= 0 or not (50.0 <= self.white_pct <= 100.0):
            raise UserError("max_gain must be >= 1, eps > 0 and white_pct in [50, 100]")

    @classmethod
    def legacy_gain(cls) -> "LowLightParams":
        """The transfer tvrun had before the noise-aware modes (``--transfer gain``)."""
        return cls(mode="gain", eps=4.0, max_gain=12.0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_options(cls, mode: str, **overrides) -> "LowLightParams":
        """``mode`` plus the non-None ``overrides`` (field names) → params."""
        base = cls.legacy_gain() if mode == "gain" else cls(mode=mode)  # type: ignore[arg-type]
        names = {f.name for f in fields(cls)}
        given = {k: v for k, v in overrides.items() if v is not None}
        bad = set(given) - names
        if bad:
            raise UserError(f"unknown low-light parameter(s) {', '.join(sorted(bad))}")
        return cls(**{**base.to_dict(), **given})


def lowlight_params(mode: str = "denoise", noise_k: float | None = None, lift: str | None = None,
                    temporal_alpha: float | None = None) -> LowLightParams:
    """The command line's low-light options → params (``lift`` as ``"LO,HI"``)."""
    pair = None
    if lift:
        try:
            pair = tuple(float(v) for v in lift.replace(" ", "").split(","))
        except ValueError:
            raise UserError(f"bad --lift {lift!r}: expected LO,HI, e.g. 0.3,0.4") from None
        if len(pair) != 2:
            raise UserError(f"bad --lift {lift!r}: expected two numbers LO,HI")
    return LowLightParams.from_options(mode, noise_k=noise_k, lift=pair, temporal_alpha=temporal_alpha)


def estimate_noise(grey: np.ndarray) -> float:
    """Noise standard deviation of a float32 HxW image (same units), Immerkær's estimator:
    robust to edges because the 3×3 kernel is zero on planes and linear ramps."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    c = cv2.filter2D(grey, -1, _IMMERKAER, borderType=cv2.BORDER_REFLECT)
    return float(np.sqrt(np.pi / 2) / 6 * cv2.mean(np.abs(c[1:-1, 1:-1]))[0])


def exposure_split(cells_in: np.ndarray, cells_out: np.ndarray, p: LowLightParams) -> tuple[float, float]:
    """(W, t) of one frame from all its cells (uint8 [N,111,111,3] in and out).

    ``W``: the linear exposure, the answer's bright end over the input's (≥ 1, ≤ max_gain).
    ``t`` ∈ [0,1]: how much of the graph's shadow lift to keep — 1 while the input exposed
    by ``W`` is still dark (mean luma ≤ ``lift[0]``), 0 once it looks normal (≥ ``lift[1]``)."""
    grey_in = cv2.cvtColor(np.ascontiguousarray(cells_in.reshape(-1, cells_in.shape[-2], 3)), cv2.COLOR_BGR2GRAY)
    grey_out = cv2.cvtColor(np.ascontiguousarray(cells_out.reshape(-1, cells_out.shape[-2], 3)), cv2.COLOR_BGR2GRAY)
    hi_in = float(np.percentile(grey_in, p.white_pct)) + p.eps
    hi_out = float(np.percentile(grey_out, p.white_pct)) + p.eps
    w = float(np.clip(hi_out / hi_in, 1.0, p.max_gain))
    exposed = float(np.minimum(grey_in.astype(np.float32) * np.float32(w / 255.0), 1.0).mean())
    lo, hi = p.lift
    return w, float(np.clip((hi - exposed) / (hi - lo), 0.0, 1.0))


def limit_lift(gain: np.ndarray, w: float, t: float) -> np.ndarray:
    """``W·(gain/W)^t`` (float32, same shape): t = 1 keeps the graph's gain, 0 gives W."""
    if t >= 1.0:
        return gain
    if t <= 0.0:
        return np.full_like(gain, w)
    return (np.float32(w) * np.power(gain * np.float32(1.0 / w), np.float32(t))).astype(np.float32)


def detail_denoise(frame: np.ndarray, noise_var: float | np.ndarray, p: LowLightParams,
                   grey: np.ndarray | None = None, bufs: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Base + noise-gated detail of a float32 HxWx3 frame in [0,1].

    ``noise_var``: the luma noise variance σ² (frame units), a scalar or an HxW map;
    ``grey``: the frame's luma if already computed. The base is the self-guided filter
    (``base="guided"``) or a Gaussian of σ = ``detail_sigma`` (``"gauss"``), both computed
    at half resolution (4× fewer pixels); the detail
    ``frame − base`` is kept with one local Wiener weight per pixel,
    ``max(0, 1 − τ²/box(detail_luma²))`` with ``τ = noise_k·σ``, for all three channels —
    where only noise is left, colour grain goes too. ``bufs``: a dict kept by the caller;
    the full-resolution arrays are reused from it (the results then live there).
    Returns (denoised HxWx3, its luma HxW), both float32."""
    h, w = frame.shape[:2]
    b1 = lambda name: reuse_buffer(bufs, name, (h, w))  # noqa: E731
    b3 = lambda name: reuse_buffer(bufs, name, (h, w, 3))  # noqa: E731
    if grey is None:
        grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY, dst=b1("grey"))
    if p.base == "guided" and min(h, w) >= 32:
        small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        small_grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
        var0 = float(np.mean(noise_var)) / 4.0  # a 2×2 mean has a quarter of the variance
        eps = max(p.base_eps_k * var0, 1e-6)  # floor: a noise-free frame (σ = 0) stays defined
        base = fast_guided_upsample(small_grey, small, grey, p.base_radius, eps, bufs)
    elif min(h, w) >= 32:
        small = cv2.resize(frame, (w // 2, h // 2), interpolation=cv2.INTER_AREA)
        small = cv2.GaussianBlur(small, (0, 0), p.detail_sigma / 2)
        base = cv2.resize(small, (w, h), dst=b3("base"), interpolation=cv2.INTER_LINEAR)
    else:
        base = cv2.GaussianBlur(frame, (0, 0), p.detail_sigma)
    base_grey = cv2.cvtColor(base, cv2.COLOR_BGR2GRAY, dst=b1("base_grey"))
    detail_grey = cv2.subtract(grey, base_grey, dst=b1("detail_grey"))
    energy = cv2.multiply(detail_grey, detail_grey, dst=b1("energy"))
    if p.energy_radius > 0:
        k = 2 * p.energy_radius + 1
        energy = cv2.blur(energy, (k, k), dst=energy, borderType=cv2.BORDER_REFLECT)
    cv2.max(energy, 1e-12, dst=energy)
    tau2 = noise_var * np.float32(p.noise_k**2)
    if np.isscalar(tau2):
        keep = cv2.divide(float(tau2), energy, dst=b1("keep"))
    else:
        keep = cv2.divide(tau2.astype(np.float32, copy=False), energy, dst=b1("keep"))
    cv2.subtract(1.0, keep, dst=keep)
    cv2.max(keep, 0.0, dst=keep)
    detail = cv2.subtract(frame, base, dst=b3("detail"))
    cv2.multiply(detail, cv2.merge([keep, keep, keep], dst=b3("keep3")), dst=detail)
    out = cv2.add(base, detail, dst=b3("out"))
    cv2.multiply(keep, detail_grey, dst=detail_grey)
    return out, cv2.add(base_grey, detail_grey, dst=base_grey)


class TemporalFilter:
    """Recursive per-pixel average with a motion mask (float32 HxWx3 frames in [0,1]).

    ``update(frame, sigma)`` → (filtered frame, per-pixel noise-variance factor v, HxW):
    the filtered frame's noise variance is ``v·σ²``. A new size restarts the average."""

    def __init__(self, alpha: float, motion_k: float) -> None:
        self.alpha = float(alpha)
        self.motion_k = float(motion_k)
        self.acc: np.ndarray | None = None
        self.var: np.ndarray | None = None

    def reset(self) -> None:
        self.acc = self.var = None

    def update(self, frame: np.ndarray, sigma: float) -> tuple[np.ndarray, np.ndarray]:
        if self.acc is None or self.acc.shape != frame.shape:
            self.acc = frame.copy()
            self.var = np.ones(frame.shape[:2], np.float32)
            return self.acc, self.var
        diff = cv2.subtract(frame, self.acc)
        moved = np.abs(cv2.blur(cv2.cvtColor(diff, cv2.COLOR_BGR2GRAY), (5, 5), borderType=cv2.BORDER_REFLECT))
        # noise of a 5×5 mean of (frame − acc): σ²·(1 + v)/25 per pixel
        scale = np.float32(1.0 / (self.motion_k * max(sigma, 1e-4) / 5.0))
        z = moved * scale / np.sqrt(1.0 + self.var)  # ≈ 1/motion_k of a noise-only change
        alpha = np.clip(z - 1.0, 0.0, 1.0)  # 0 below motion_k σ, 1 at 2·motion_k σ
        alpha = np.float32(self.alpha) + np.float32(1.0 - self.alpha) * alpha
        self.acc = cv2.add(self.acc, cv2.multiply(diff, cv2.merge([alpha, alpha, alpha])))
        self.var = (1.0 - alpha) ** 2 * self.var + alpha * alpha
        return self.acc, self.var
