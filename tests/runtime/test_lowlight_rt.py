"""runtime.lowlight: noise estimate, noise-gated detail, no overshoot, temporal without ghosts."""

from __future__ import annotations

import numpy as np
import pytest

from runtime.backends import BackendBase
from runtime.lowlight import (LowLightParams, TemporalFilter, denoise, detail_luma, estimate_noise, exposure_split,
                              lowlight_params)
from runtime.predictor import LowLightEnhancer
from taskvec.errors import UserError


def smooth_scene(w: int = 320, h: int = 240, seed: int = 0) -> np.ndarray:
    """float32 HxWx3 in [0.1, 0.9]: gradients, a few blobs and hard-edged rectangles."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    img = np.stack([0.3 + 0.4 * xx / w, 0.3 + 0.4 * yy / h, 0.5 + 0.2 * np.sin(xx / 23.0 + yy / 31.0)], -1)
    for _ in range(6):
        x0, y0 = rng.integers(0, w - 60), rng.integers(0, h - 60)
        img[y0:y0 + rng.integers(20, 60), x0:x0 + rng.integers(20, 60)] = rng.uniform(0.1, 0.9, 3)
    return np.clip(img, 0.1, 0.9).astype(np.float32)


def to_u8(x: np.ndarray) -> np.ndarray:
    return np.clip(x * 255 + 0.5, 0, 255).astype(np.uint8)


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)))


class CurveBackend(BackendBase):
    """A stand-in graph that brightens like the realistic vector does: ``1.3 · x^0.4``."""

    def __init__(self, scale: float = 1.3, power: float = 0.4) -> None:
        super().__init__()
        self.name = "fake:curve"
        self.lut = np.clip(scale * (np.arange(256) / 255.0) ** power * 255 + 0.5, 0, 255).astype(np.uint8)

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return self.lut[self.check_batch(batch)]


def test_noise_estimate_follows_the_noise():
    clean = smooth_scene()[..., 1]
    for sigma in (0.01, 0.03):
        noisy = clean + np.random.default_rng(1).normal(0, sigma, clean.shape).astype(np.float32)
        assert estimate_noise(noisy) == pytest.approx(sigma, rel=0.2)
    assert estimate_noise(clean) < 0.004  # edges and ramps are not mistaken for noise


def grey_of(x: np.ndarray) -> np.ndarray:
    return (x[..., 0] * 0.114 + x[..., 1] * 0.587 + x[..., 2] * 0.299).astype(np.float32)


def test_denoise_removes_noise_and_keeps_edges():
    clean = smooth_scene()
    rng = np.random.default_rng(2)
    sigma = 0.04
    noisy = (clean + rng.normal(0, sigma, clean.shape)).astype(np.float32)
    out = denoise(noisy, grey_of(noisy), (0.55 * sigma) ** 2, LowLightParams())  # luma σ of RGB noise
    assert rmse(out, clean) < 0.55 * rmse(noisy, clean)
    step = np.zeros((64, 64, 3), np.float32)
    step[:, 32:] = 0.6
    sharp = denoise(step + 0.2, grey_of(step + 0.2), 1e-4, LowLightParams())
    assert sharp[:, 34].mean() - sharp[:, 29].mean() > 0.5  # a 0.6 step well above the noise stays sharp


def test_merely_dim_frame_is_not_overshot():
    clean = to_u8(smooth_scene(640, 480))
    dim = (clean // 2).astype(np.uint8)  # the paper's 0.5×, no noise
    be = CurveBackend()
    new = LowLightEnhancer(be)(dim)
    old = LowLightEnhancer(be, params=LowLightParams.legacy_gain())(dim)
    assert new.mean() / clean.mean() == pytest.approx(1.0, abs=0.12)
    assert old.mean() / clean.mean() > 1.3  # the graph's curve over-brightens a merely dim frame
    assert rmse(new, clean) < 0.5 * rmse(old, clean)
    colour = new.reshape(-1, 3).mean(0) / clean.reshape(-1, 3).mean(0)
    assert colour.max() - colour.min() < 0.05  # no colour shift


def test_dim_frame_without_white_highlights_is_exposed_by_its_brightest_pixel():
    # a scene whose brightest value is 0.8, at 0.5x: the graph's concave curve brightens the
    # lower percentiles more than 2x; the brightest pixel gives an exposure closer to 2
    # (the lift is switched off in both, lift=(7.5, 8) stops: this checks the exposure W alone)
    clean = to_u8(smooth_scene(640, 480) * (0.8 / 0.9))
    dim = (clean // 2).astype(np.uint8)
    be = CurveBackend()
    new = LowLightEnhancer(be, params=LowLightParams(lift=(7.5, 8.0)))(dim)
    pct = LowLightEnhancer(be, params=LowLightParams(white_pct=99.0, lift=(7.5, 8.0)))(dim)
    assert new.mean() / clean.mean() == pytest.approx(1.0, abs=0.2)
    assert abs(new.mean() / clean.mean() - 1) < 0.65 * abs(pct.mean() / clean.mean() - 1)


def test_detail_luma_is_softened_only_on_noisy_frames():
    grey = grey_of(smooth_scene())
    assert detail_luma(grey, 0.0, LowLightParams()) is grey  # a clean frame keeps every pixel
    assert detail_luma(grey, (3 / 255) ** 2, LowLightParams(guide_blur=0)) is grey
    noise = np.random.default_rng(5).normal(0, 0.04, grey.shape).astype(np.float32)
    soft = detail_luma(grey + noise, 0.04**2, LowLightParams())
    assert rmse(soft, grey) < 0.7 * rmse(grey + noise, grey)


def test_softer_detail_luma_lowers_the_error_on_a_noisy_textured_frame():
    yy, xx = np.mgrid[0:240, 0:320].astype(np.float32)
    texture = 0.5 + 0.25 * np.sin(xx / 3.0) * np.sin(yy / 4.0)  # detail well above the noise: kept
    clean = np.clip(smooth_scene() * 0.5 + texture[..., None] * 0.5, 0, 1).astype(np.float32)
    noisy = (clean + np.random.default_rng(6).normal(0, 0.04, clean.shape)).astype(np.float32)
    var = (0.55 * 0.04) ** 2
    soft = denoise(noisy, grey_of(noisy), var, LowLightParams())
    raw = denoise(noisy, grey_of(noisy), var, LowLightParams(guide_blur=0))
    assert rmse(soft, clean) < rmse(raw, clean)


def test_lift_follows_the_stops_of_exposure_a_frame_needs_not_its_content():
    # a dark-content scene (mean luma ≈ 0.2, highlights white) merely dimmed to 0.5x needs one
    # stop: no lift, even though it still looks dark once exposed (the former mean-luma rule lifted
    # it to ×2 its brightness); a bright-content scene at the darker realistic setting (γ2.5 ×0.25)
    # needs over 1.5 stops: most of the lift.
    be = CurveBackend()
    scene = smooth_scene(640, 480) ** 2.0
    scene[200:220, 300:340] = 1.0  # a white highlight
    night = to_u8(scene)
    dim = (night // 2).astype(np.uint8)
    enh = LowLightEnhancer(be)
    out = enh(dim)
    assert enh.last["W"] == pytest.approx(2.0, rel=0.05) and enh.last["t"] == 0.0
    assert out.mean() / night.mean() == pytest.approx(1.0, abs=0.06)
    bright = np.clip(smooth_scene(640, 480) * 1.15, 0, 1)
    low = to_u8(0.25 * bright**2.5)
    enh(low)
    assert np.log2(enh.last["W"]) > 1.5 and enh.last["t"] > 0.6


def test_crushed_dark_frame_keeps_the_lift():
    clean = smooth_scene(640, 480)
    dark = to_u8(0.3 * clean**2.2)
    cells = dark[None, :111, :111]
    _, t = exposure_split(cells, CurveBackend().infer(cells), LowLightParams())
    assert t == 1.0
    out = LowLightEnhancer(CurveBackend())(dark)
    assert out.mean() > 2.5 * dark.mean()


def moving_square_clip(n: int = 10, size=(160, 120), step: int = 6, sigma: float = 0.05):
    """(noisy frames uint8, clean frames uint8, masks of the square's current ∪ previous place)."""
    w, h = size
    bg = smooth_scene(w, h, seed=3) * 0.8
    rng = np.random.default_rng(4)
    noisy, clean, masks = [], [], []
    for i in range(n):
        img = bg.copy()
        x = 10 + i * step
        img[40:80, x:x + 40] = 0.95
        m = np.zeros((h, w), bool)
        m[36:84, max(0, x - step - 4):x + 44] = True
        clean.append(to_u8(img))
        noisy.append(to_u8(img + rng.normal(0, sigma, img.shape)))
        masks.append(m)
    return noisy, clean, masks


def test_temporal_mode_does_not_ghost():
    noisy, clean, masks = moving_square_clip()
    identity = CurveBackend(1.0, 1.0)  # the graph changes nothing: the output is the cleaned frame
    spatial = LowLightEnhancer(identity, params=LowLightParams(mode="denoise"))
    temporal = LowLightEnhancer(identity, params=LowLightParams(mode="temporal"))
    err = {"spatial": [], "temporal": [], "spatial_static": [], "temporal_static": []}
    for i, (f, c, m) in enumerate(zip(noisy, clean, masks)):
        a, b = spatial(f), temporal(f)
        if i >= 3:  # once the average has had time to build up
            err["spatial"].append(rmse(a[m], c[m]))
            err["temporal"].append(rmse(b[m], c[m]))
            err["spatial_static"].append(rmse(a[~m], c[~m]))
            err["temporal_static"].append(rmse(b[~m], c[~m]))
    e = {k: float(np.mean(v)) for k, v in err.items()}
    assert e["temporal"] <= e["spatial"], e  # the moving square leaves no ghost
    assert e["temporal_static"] < 0.85 * e["spatial_static"], e  # and the static background is cleaner


def test_temporal_filter_restarts_on_a_new_size():
    tf = TemporalFilter(0.25, 3.0)
    a, v = tf.update(np.zeros((8, 8, 3), np.float32), 0.01)
    assert v.shape == (8, 8) and float(v.max()) == 1.0
    b, _ = tf.update(np.ones((4, 6, 3), np.float32), 0.01)
    assert b.shape == (4, 6, 3) and float(b.min()) == 1.0


def test_params_from_the_command_line():
    p = lowlight_params("temporal", noise_k=3.0, lift="0.2,0.5", temporal_alpha=0.5, guide_blur=1.5)
    assert (p.mode, p.noise_k, p.lift, p.temporal_alpha, p.guide_blur) == ("temporal", 3.0, (0.2, 0.5), 0.5, 1.5)
    assert lowlight_params("gain") == LowLightParams.legacy_gain()
    for bad in ("0.5", "a,b", "0.5,0.2"):
        with pytest.raises(UserError):
            lowlight_params("denoise", lift=bad)
    with pytest.raises(UserError):
        LowLightParams(mode="sharpen")  # type: ignore[arg-type]
