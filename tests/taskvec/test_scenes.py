import torch

from taskvec.data.scenes import procedural_scenes


def _g(seed=0):
    return torch.Generator().manual_seed(seed)


def test_scenes_masks_and_determinism():
    bgs = torch.rand(5, 3, 111, 111, generator=_g(3))
    img, mask = procedural_scenes(24, _g(), bgs)
    assert img.shape == (24, 3, 111, 111) and mask.shape == (24, 1, 111, 111)
    assert 0 <= img.min() and img.max() <= 1
    assert set(mask.unique().tolist()) == {0.0, 1.0}
    area = mask.flatten(1).mean(1)
    assert (area > 0.005).all() and (area < 0.95).all()
    img2, mask2 = procedural_scenes(24, _g(), bgs)
    assert torch.equal(img, img2) and torch.equal(mask, mask2)
    img3, _ = procedural_scenes(24, _g(1), bgs)
    assert not torch.equal(img, img3)


def test_scenes_without_backgrounds_and_foreground_differs():
    img, mask = procedural_scenes(16, _g(5), None, size=64)
    assert img.shape == (16, 3, 64, 64)
    m = mask.bool().expand_as(img)
    fg = (img * m).flatten(1).sum(1) / m.flatten(1).sum(1)
    bg = (img * ~m).flatten(1).sum(1) / (~m).flatten(1).sum(1)
    assert (fg - bg).abs().mean() > 0.02  # objects are not invisible on average
