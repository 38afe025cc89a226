"""runtime.sample: deterministic demo clips and the before/after panel."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from runtime.sample import clean_path, darken, make_sample_clip, write_before_after
from taskvec.errors import UserError


def read_all(path) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            return frames
        frames.append(img)


def test_lowlight_clip_and_clean_reference(tmp_path):
    path = make_sample_clip("lowlight", tmp_path / "ll.mp4", frames=6, size=(96, 72))
    dark, clean = read_all(path), read_all(clean_path(path))
    assert len(dark) == len(clean) == 6 and dark[0].shape == (72, 96, 3)
    assert np.mean(dark) < 0.6 * np.mean(clean)
    assert not np.array_equal(dark[0], dark[-1])  # the camera moves


def test_inpainting_clip_has_no_reference(tmp_path):
    path = make_sample_clip("inpainting", tmp_path / "ip.mp4", frames=4, size=(64, 48))
    assert len(read_all(path)) == 4 and not clean_path(path).exists()
    with pytest.raises(UserError):
        make_sample_clip("juggling", tmp_path / "x.mp4")


def test_darken_is_deterministic():
    img = np.full((8, 8, 3), 128, np.uint8)
    assert np.array_equal(darken(img, 5), darken(img, 5))
    assert not np.array_equal(darken(img, 5), darken(img, 6))


def test_sample_source_through_open_source():
    from runtime.sources import open_source

    with open_source("sample:lowlight?frames=3&width=64&height=48") as src:
        assert src.size == (64, 48)
        assert sum(1 for _ in src) == 3


def test_before_after_panel(tmp_path):
    a = np.zeros((40, 60, 3), np.uint8)
    b = np.full((80, 120, 3), 255, np.uint8)
    p = write_before_after(a, b, tmp_path / "ba.png")
    img = cv2.imread(str(p))
    assert img.shape == (40, 60 + 4 + 60, 3)


def test_lowlight_output_is_closer_to_the_clean_clip(tmp_path):
    """PSNR gain on the held-out sample clip with the shipped tiny model (zero-shot; the task
    vector, where shipped, only adds to it)."""
    from runtime.backends.torch import TorchBackend
    from runtime.predictor import LowLightEnhancer
    from taskvec.model.checkpoint import load_model

    path = make_sample_clip("lowlight", tmp_path / "ll.mp4", frames=4, size=(160, 120))
    dark, clean = read_all(path), read_all(clean_path(path))
    enhancer = LowLightEnhancer(TorchBackend.zero_shot(load_model("tiny"), device="cpu"))
    p_in = np.mean([cv2.PSNR(d, c) for d, c in zip(dark, clean)])
    p_out = np.mean([cv2.PSNR(enhancer(d), c) for d, c in zip(dark, clean)])
    print(f"low-light PSNR vs clean: input {p_in:.2f} dB → output {p_out:.2f} dB")
    assert p_out > p_in + 3.0


def test_sample_clip_is_cached_by_content_hash(tmp_path):
    from runtime.sample import cached_sample_clip, sample_key

    path, hit = cached_sample_clip("lowlight", frames=3, size=(64, 48), cache_dir=tmp_path)
    assert not hit and path.is_file() and clean_path(path).is_file()
    frames = read_all(path)
    again, hit = cached_sample_clip("lowlight", frames=3, size=(64, 48), cache_dir=tmp_path)
    assert hit and again == path and all(np.array_equal(a, b) for a, b in zip(frames, read_all(again)))
    # another recipe is another entry
    assert sample_key("lowlight", 3, (64, 48)) != sample_key("lowlight", 4, (64, 48))
    other, hit = cached_sample_clip("lowlight", frames=4, size=(64, 48), cache_dir=tmp_path)
    assert not hit and other.parent != path.parent and len(read_all(other)) == 4
    # a spoilt clip (its bytes no longer match sample.json) is made again, never played
    path.write_bytes(path.read_bytes()[:100])
    remade, hit = cached_sample_clip("lowlight", frames=3, size=(64, 48), cache_dir=tmp_path)
    assert not hit and len(read_all(remade)) == 3


def test_sample_source_uses_the_cache(tmp_path):
    from runtime.sources import open_source

    uri = "sample:inpainting?frames=2&width=64&height=48"
    with open_source(uri, cache_dir=tmp_path) as src:
        assert sum(1 for _ in src) == 2
    made = list((tmp_path / "samples").glob("inpainting-*/inpainting.mp4"))
    assert len(made) == 1
    stamp = made[0].stat().st_mtime_ns
    with open_source(uri, cache_dir=tmp_path) as src:
        assert sum(1 for _ in src) == 2
    assert made[0].stat().st_mtime_ns == stamp  # reused, not regenerated


def test_before_after_outlines_the_hole(tmp_path):
    before = np.full((60, 80, 3), 128, np.uint8)
    after = before.copy()
    hole = np.zeros((60, 80), np.uint8)
    hole[20:40, 30:50] = 255
    plain = cv2.imread(str(write_before_after(before, after, tmp_path / "a.png")))
    marked = cv2.imread(str(write_before_after(before, after, tmp_path / "b.png", hole=hole)))
    assert plain.shape == marked.shape
    magenta = (marked[..., 0] > 200) & (marked[..., 2] > 200) & (marked[..., 1] < 80)
    left, right = magenta[:, :80], magenta[:, 84:]
    ys, xs = np.nonzero(left)
    assert left.sum() > 40 and 18 <= ys.min() and ys.max() <= 41 and 28 <= xs.min() and xs.max() <= 51  # on the edge
    assert 0 < right.sum() < left.sum()  # dashed on the output panel
    assert not magenta[30, 40] and not ((plain[..., 1] < 80) & (plain[..., 0] > 200)).any()
