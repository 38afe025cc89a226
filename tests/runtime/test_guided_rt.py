"""runtime.guided: the box-filter guided filter."""

from __future__ import annotations

import numpy as np

from runtime.guided import box, fast_guided_upsample, guided_filter


def test_box_is_a_normalised_mean():
    x = np.full((20, 30), 3.0, np.float32)
    assert np.allclose(box(x, 2), 3.0)


def test_constant_input_stays_constant():
    rng = np.random.default_rng(0)
    guide = rng.random((40, 50)).astype(np.float32)
    p = np.full((40, 50), 1.7, np.float32)
    assert np.allclose(guided_filter(guide, p, 3, 1e-3), 1.7, atol=1e-4)
    p3 = np.full((40, 50, 3), 0.5, np.float32)
    assert np.allclose(guided_filter(guide, p3, 3, 1e-3), 0.5, atol=1e-4)


def test_guide_itself_passes_with_small_eps():
    rng = np.random.default_rng(1)
    guide = rng.random((32, 32)).astype(np.float32)
    out = guided_filter(guide, guide, 2, 1e-6)
    assert np.abs(out - guide).max() < 1e-2


def test_keeps_edges_and_removes_noise():
    h, w = 40, 60
    guide = np.zeros((h, w), np.float32)
    guide[:, w // 2:] = 1.0  # a step edge
    rng = np.random.default_rng(2)
    p = guide * 2.0 + 1.0 + 0.2 * rng.standard_normal((h, w)).astype(np.float32)
    out = guided_filter(guide, p, 4, 1e-3)
    left, right = out[:, : w // 2 - 1], out[:, w // 2 + 1:]
    assert abs(left.mean() - 1.0) < 0.05 and abs(right.mean() - 3.0) < 0.05
    assert left.std() < 0.5 * p[:, : w // 2 - 1].std()  # smoothed
    assert right.min() - left.max() > 1.0  # the step survives (a box blur would smear it)


def test_fast_upsample_shapes_and_constant_gain():
    rng = np.random.default_rng(3)
    full = rng.random((120, 160)).astype(np.float32)
    low = full[::4, ::4].copy()
    g = fast_guided_upsample(low, np.full((30, 40), 2.0, np.float32), full, 2, 1e-4)
    assert g.shape == (120, 160) and np.allclose(g, 2.0, atol=1e-3)
    bufs: dict = {}
    g3 = fast_guided_upsample(low, np.full((30, 40, 3), 0.5, np.float32), full, 2, 1e-4, bufs)
    assert g3.shape == (120, 160, 3) and np.allclose(g3, 0.5, atol=1e-3)
    again = fast_guided_upsample(low, np.full((30, 40, 3), 0.25, np.float32), full, 2, 1e-4, bufs)
    assert again is g3 and np.allclose(again, 0.25, atol=1e-3)  # buffers are reused
