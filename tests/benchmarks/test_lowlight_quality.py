"""benchmarks.lowlight_quality: classical rows, scoring, one tiny run with a stand-in graph."""

from __future__ import annotations

import numpy as np
import pytest

from benchmarks.lowlight_quality import CLASSICAL, SETTINGS, evaluate, score, to_markdown, write_picture
from runtime.backends import BackendBase


class Double(BackendBase):
    """A stand-in graph: the answer is the cell × 2."""

    name = "fake:x2"

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.clip(self.check_batch(batch).astype(np.int32) * 2, 0, 255).astype(np.uint8)


def test_classical_filters_brighten_and_keep_shape():
    rng = np.random.default_rng(0)
    dark = rng.integers(0, 40, (48, 64, 3), dtype=np.uint8)
    for name, fn in CLASSICAL.items():
        out = fn(dark)
        assert out.shape == dark.shape and out.dtype == np.uint8, name
        assert out.mean() > dark.mean(), name


def test_score_is_perfect_on_identity_and_drops_with_noise():
    img = np.random.default_rng(1).integers(0, 256, (64, 64, 3), dtype=np.uint8)
    p, s = score(img, img)
    assert np.isinf(p) and s == pytest.approx(1.0)
    noisy = np.clip(img.astype(int) + 20, 0, 255).astype(np.uint8)
    p2, s2 = score(noisy, img)
    assert 10 < p2 < 30 and s2 < 1.0


def test_tiny_run_has_every_row_and_a_picture(tmp_path):
    rep = evaluate("unused.onnx", frames=2, every=2, keep=0, backend=Double(), log=lambda s: None,
                   size=(224, 168))
    assert set(rep["results"]) == set(SETTINGS)
    for rows in rep["results"].values():
        assert {"dark input", "tvrun --transfer denoise", "tvrun --transfer temporal", "tvrun --transfer gain",
                *CLASSICAL} <= set(rows)
        assert all(r["frames_scored"] == 1 and 0 < r["ssim"] <= 1 for r in rows.values())
        assert rows["tvrun --transfer denoise"]["ms_per_frame"] > 0
    half = rep["results"]["paper 0.5× (no noise)"]
    assert half["tvrun --transfer denoise"]["psnr_db"] > half["dark input"]["psnr_db"] + 10  # ×2 undoes 0.5×
    report = {"photos_note": "test", "command": "x", "graph": "fake", "frames_note": "", **rep}
    assert "| tvrun --transfer denoise |" in to_markdown(report)
    pic = write_picture(rep["_images"][next(iter(SETTINGS))], tmp_path / "p.jpg")
    assert pic.is_file() and pic.stat().st_size > 1000
