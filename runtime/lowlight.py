"""The low-light transfer: how the graph's 111×111 answer becomes a full-resolution frame.

:class:`runtime.predictor.LowLightEnhancer` runs the graph and calls these steps; they are
plain OpenCV/numpy on float32 images so the native runtime can port them line by line.
Frames are HxWx3 float32 BGR in [0,1] here; cells are [111,111,3].

Modes (``LowLightParams.mode``, ``tvrun --transfer``):

- ``denoise`` (default): (1) *no-overshoot exposure*: the per-pixel gain the graph implies,
  ``G = (answer+eps)/(input+eps)``, is split into a linear exposure ``W`` (the gain at
  the bright end, ``max(answer luma) / max(input luma)`` — the very top, because the graph's
  tone curve is concave: below white it brightens more than linearly, so a lower percentile
  over-exposes a dim frame whose highlights are not white) and the shadow lift the graph
  adds on top; the lift is kept with weight ``t`` (``G' = W·(G/W)^t``), ``t`` following the
  frame's actual darkness — how many stops of exposure it needs, ``log2 W``: 0 up to
  ``lift[0]`` stops, rising to 1 at ``lift[1]`` stops. A frame that is merely dim (a stop
  under, as the paper's 0.5×) gets the exposure and no lift, so it is not over-brightened
  or colour-shifted; a low-light frame (a γ2 ×0.35 frame needs 1.5 stops at its white, more
  below) gets the graph's tone curve. (2) *denoise before brightening*: the frame's
  noise σ is estimated (Immerkær's Laplacian-difference estimator on luma) and the frame
  goes through a self-guided filter whose ``eps = (noise_k·σ)²`` makes it a local Wiener
  gate: windows whose luma varies within the noise are averaged, detail that stands above
  it is kept at full resolution (:func:`denoise_coefficients`); the full-resolution luma
  those coefficients are applied to is itself smoothed by a small Gaussian (``guide_blur``
  px, its finest band added back above σ) when the frame is noisy (σ ≥ 1 grey level), so detail regions, where the filter passes
  the luma through, do not pass its pixel noise through too (:func:`detail_luma`). (3) the gain is brought to
  half resolution with the fast guided filter, guided by the *denoised* luma, and folded
  into the filter's coefficients, so one full-resolution pass denoises and brightens
  (:func:`denoise_and_gain`).
- ``temporal``: as ``denoise``, after a recursive temporal filter on the frame:
  ``acc += α·(frame − acc)`` with ``α = temporal_alpha`` where the frame matches ``acc``
  and ``α → 1`` where the 5×5-averaged luma difference exceeds ``motion_k`` noise
  standard deviations (motion: no ghost); the per-pixel noise variance left in ``acc`` is
  tracked (``v ← (1−α)²·v + α²``) and sets the spatial filter's eps per pixel.
- ``gain``: the original transfer, kept for comparison — the graph's gain map (eps 4
  grey levels, at most ×12) multiplies the raw frame, noise included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Callable, Literal, get_args

import cv2
import numpy as np

from runtime.guided import guided_coefficients, reuse_buffer
from taskvec.errors import UserError

TransferMode = Literal["denoise", "temporal", "gain"]
TRANSFER_MODES: tuple[str, ...] = get_args(TransferMode)
GainMode = Literal["luma", "rgb"]  # one gain for the three channels, or one each
GAIN_MODES: tuple[str, ...] = get_args(GainMode)

# Immerkær (1996): σ = sqrt(π/2) / (6 (W−2)(H−2)) · Σ |I * N|
_IMMERKAER = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], np.float32)


@dataclass
class LowLightParams:
    """Parameters of the transfer (grey levels are on the 0–255 scale; the rest unitless).

    Chosen on clips of the *training* photos (``python -m benchmarks.lowlight_quality
    --photos train``); ``lift`` on the image bank's validation split (``--photos bank-val``),
    checked on the training photos — never on the held-out ones the README reports."""

    mode: TransferMode = "denoise"
    eps: float = 1.0  # gain = (answer + eps) / (input + eps), grey levels
    max_gain: float = 40.0  # the gain is clipped to [1/max_gain, max_gain]
    lift: tuple[float, float] = (1.2, 1.7)  # stops of exposure (log2 W) over which the shadow lift fades in
    white_pct: float = 100.0  # percentile that defines the exposure W (100: the brightest pixel)
    noise_k: float = 6.0  # detail is kept where the local luma std exceeds about noise_k·σ
    guide_blur: float = 0.7  # Gaussian σ (full-res px) on the detail luma of a noisy frame; 0: off
    base_radius: int = 2  # guided-filter window radius in half-resolution pixels (5×5 there)
    temporal_alpha: float = 0.25  # weight of a new frame where nothing moves (temporal mode)
    motion_k: float = 3.0  # luma change (in σ of the 5×5 mean) that counts as motion

    def __post_init__(self) -> None:
        if self.mode not in TRANSFER_MODES:
            raise UserError(f"unknown low-light transfer {self.mode!r}; choose from {', '.join(TRANSFER_MODES)}")
        lo, hi = (float(v) for v in self.lift)
        if not (0.0 <= lo < hi <= 8.0):
            raise UserError(f"bad lift range {self.lift}: need 0 <= low < high <= 8 (stops of exposure)")
        self.lift = (lo, hi)
        if self.noise_k < 0 or self.base_radius < 1 or self.guide_blur < 0:
            raise UserError("noise_k and guide_blur must be >= 0 and base_radius >= 1")
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
                    temporal_alpha: float | None = None, guide_blur: float | None = None) -> LowLightParams:
    """The command line's low-light options → params (``lift`` as ``"LO,HI"``)."""
    pair = None
    if lift:
        try:
            pair = tuple(float(v) for v in lift.replace(" ", "").split(","))
        except ValueError:
            raise UserError(f"bad --lift {lift!r}: expected LO,HI, e.g. 1.2,1.7") from None
        if len(pair) != 2:
            raise UserError(f"bad --lift {lift!r}: expected two numbers LO,HI")
    return LowLightParams.from_options(mode, noise_k=noise_k, lift=pair, temporal_alpha=temporal_alpha,
                                       guide_blur=guide_blur)


def estimate_noise(grey: np.ndarray) -> float:
    """Noise standard deviation of a float32 HxW image (same units), Immerkær's estimator:
    robust to edges because the 3×3 kernel is zero on planes and linear ramps."""
    if grey.shape[0] < 3 or grey.shape[1] < 3:
        return 0.0
    c = cv2.filter2D(grey, -1, _IMMERKAER, borderType=cv2.BORDER_REFLECT)
    return float(np.sqrt(np.pi / 2) / 6 * cv2.mean(np.abs(c[1:-1, 1:-1]))[0])


def exposure_split(cells_in: np.ndarray, cells_out: np.ndarray, p: LowLightParams) -> tuple[float, float]:
    """(W, t) of one frame from all its cells (uint8 [N,111,111,3] in and out).

    ``W``: the linear exposure, the answer's bright end (``white_pct``) over the input's (≥ 1, ≤ max_gain).
    ``t`` ∈ [0,1]: how much of the graph's shadow lift to keep, from the frame's darkness in
    stops, ``log2 W``: 0 up to ``lift[0]``, 1 from ``lift[1]``, linear between — the lift is
    for frames far from a normal exposure, not for one a stop or so under."""
    grey_in = cv2.cvtColor(np.ascontiguousarray(cells_in.reshape(-1, cells_in.shape[-2], 3)), cv2.COLOR_BGR2GRAY)
    grey_out = cv2.cvtColor(np.ascontiguousarray(cells_out.reshape(-1, cells_out.shape[-2], 3)), cv2.COLOR_BGR2GRAY)
    hi_in = float(np.percentile(grey_in, p.white_pct)) + p.eps
    hi_out = float(np.percentile(grey_out, p.white_pct)) + p.eps
    w = float(np.clip(hi_out / hi_in, 1.0, p.max_gain))
    lo, hi = p.lift
    return w, float(np.clip((np.log2(w) - lo) / (hi - lo), 0.0, 1.0))


def limit_lift(gain: np.ndarray, w: float, t: float) -> np.ndarray:
    """``W·(gain/W)^t`` (float32, same shape): t = 1 keeps the graph's gain, 0 gives W."""
    if t >= 1.0:
        return gain
    if t <= 0.0:
        return np.full_like(gain, w)
    return (np.float32(w) * np.power(gain * np.float32(1.0 / w), np.float32(t))).astype(np.float32)


def denoise_coefficients(frame: np.ndarray, noise_var: float | np.ndarray, p: LowLightParams
                         ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The edge-aware denoise of a float32 HxWx3 frame in [0,1], as half-resolution
    guided-filter coefficients: (A, B, half-resolution luma), ``denoised = A·luma + B``.

    A self-guided filter (He, Sun & Tang): per window of ``(2·base_radius+1)²`` half-resolution
    pixels, ``q = a·luma + b`` with ``a = cov/(var + eps)``, ``eps = (noise_k·σ_half)²`` —
    a local Wiener gate: where the window's luma varies no more than the noise, ``a ≈ 0`` and
    the output is the window mean (noise and colour grain averaged away); where it varies
    well above it (edges, texture), ``a ≈ 1`` and the luma detail is kept. Computed at half
    resolution (4× fewer pixels; σ_half² = σ²/4 there) and applied to the full-resolution
    luma. ``noise_var``: σ² of the luma noise, a scalar or an HxW map (temporal mode)."""
    h, w = frame.shape[:2]
    hw = (max(1, w // 2), max(1, h // 2))
    small = cv2.resize(frame, hw, interpolation=cv2.INTER_AREA)
    small_grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    k2 = np.float32(p.noise_k**2 / 4.0)  # a 2×2 mean has a quarter of the variance
    if np.isscalar(noise_var):
        eps: float | np.ndarray = max(float(noise_var) * float(k2), 1e-6)  # σ = 0 stays defined
    else:
        eps = np.maximum(cv2.resize(noise_var, hw, interpolation=cv2.INTER_AREA) * k2, 1e-6)
    a, b = guided_coefficients(small_grey, small, min(p.base_radius, max(1, min(hw) // 2 - 1)), eps)
    return a, b, small_grey


# below this luma noise σ (grey levels, 0–255) the frame counts as clean: its detail luma is not blurred
NOISY_SIGMA = 1.0
DETAIL_TAU = 1.0  # the finest band is soft-thresholded at DETAIL_TAU·σ: noise goes, real edges stay


def detail_luma(grey: np.ndarray, noise_var: float | np.ndarray, p: LowLightParams) -> np.ndarray:
    """The full-resolution luma (float32 HxW, [0,1]) the filter's coefficients are applied to:
    ``grey`` itself on a clean frame, a Gaussian of σ = ``guide_blur`` px of it when the noise
    σ (``noise_var``: scalar or HxW map, its mean is used) is at least :data:`NOISY_SIGMA` grey
    levels, plus the finest band ``grey − Gaussian`` soft-thresholded at ``DETAIL_TAU·σ`` (so
    edges well above the noise stay sharp) — where the filter keeps detail (``A ≈ 1``) it
    passes this luma through, pixel noise and all, so at low SNR the cleaned one scores better."""
    sigma = float(np.sqrt(noise_var if np.isscalar(noise_var) else cv2.mean(noise_var)[0])) * 255.0
    if p.guide_blur <= 0 or sigma < NOISY_SIGMA:
        return grey
    soft = cv2.GaussianBlur(grey, (0, 0), p.guide_blur, borderType=cv2.BORDER_REFLECT)
    tau = np.float32(DETAIL_TAU * sigma / 255.0)
    fine = cv2.subtract(grey, soft)  # the finest band: noise, and real edges well above it
    return cv2.add(soft, np.sign(fine) * np.maximum(np.abs(fine) - tau, 0))


def denoise(frame: np.ndarray, grey: np.ndarray, noise_var: float | np.ndarray, p: LowLightParams
            ) -> np.ndarray:
    """:func:`denoise_coefficients` applied at full resolution (``grey``: the frame's luma, see
    :func:`detail_luma`):
    the denoised float32 HxWx3 frame, without any gain."""
    a, b, _ = denoise_coefficients(frame, noise_var, p)
    return apply_coefficients(a, b, detail_luma(grey, noise_var, p), 1.0)


def apply_coefficients(a: np.ndarray, b: np.ndarray, grey: np.ndarray, scale: float,
                       bufs: dict | None = None, dtype: int = cv2.CV_32F) -> np.ndarray:
    """``scale·(up(A)·grey + up(B))`` at the resolution of ``grey`` (HxW), bilinear ``up``;
    HxWx3 of ``dtype`` (CV_8U saturates and rounds). ``bufs``: buffers reused between frames."""
    h, w = grey.shape
    shape = (h, w, 3)
    big_a = cv2.resize(a, (w, h), dst=reuse_buffer(bufs, "A", shape), interpolation=cv2.INTER_LINEAR)
    g3 = cv2.merge([grey, grey, grey], dst=reuse_buffer(bufs, "G3", shape))
    cv2.multiply(big_a, g3, dst=big_a, scale=scale)
    if scale != 1.0:
        b = cv2.multiply(b, scale)  # at low resolution: cheaper than scaling big_b
    big_b = cv2.resize(b, (w, h), dst=reuse_buffer(bufs, "B", shape), interpolation=cv2.INTER_LINEAR)
    return cv2.add(big_a, big_b, dtype=dtype)


def denoise_and_gain(frame: np.ndarray, grey: np.ndarray, noise_var: float | np.ndarray, p: LowLightParams,
                     gain_at: Callable[[np.ndarray], np.ndarray], bufs: dict | None = None) -> np.ndarray:
    """The ``denoise``/``temporal`` output: uint8 HxWx3 BGR.

    The gain multiplies the denoised frame, ``gain·(A·luma + B) = (gain·A)·luma + gain·B``;
    the gain is smooth, so it is taken at half resolution — ``gain_at(denoised luma at half
    resolution)`` returns it there (HxW or HxWx3, snapped to that luma's edges) — and folded
    into the coefficients: one full-resolution pass for denoise and gain together."""
    a, b, small_grey = denoise_coefficients(frame, noise_var, p)
    denoised_grey = cv2.cvtColor(cv2.add(cv2.multiply(a, cv2.merge([small_grey] * 3)), b), cv2.COLOR_BGR2GRAY)
    gain = gain_at(denoised_grey)
    if gain.ndim == 2:
        gain = cv2.merge([gain, gain, gain])
    return apply_coefficients(cv2.multiply(a, gain), cv2.multiply(b, gain), detail_luma(grey, noise_var, p),
                              255.0, bufs, cv2.CV_8U)


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
