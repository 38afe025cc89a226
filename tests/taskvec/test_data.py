import cv2
import numpy as np
import pytest
import torch

from taskvec.data.images import (
    VAL_PHOTOS,
    DataError,
    list_images,
    load_folder,
    load_image,
    load_lol,
    load_voc_segmentation,
    packaged_photos,
    pascal5i_classes,
    random_crops,
    voc_colormap,
)


def _write(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), arr)


def _rgb(color, h=20, w=30):
    """An RGB image of one colour, returned as BGR for cv2.imwrite."""
    return np.full((h, w, 3), color[::-1], dtype=np.uint8)


def test_list_and_load(tmp_path):
    _write(tmp_path / "b.png", _rgb((255, 0, 0)))
    _write(tmp_path / "sub" / "a.jpg", _rgb((0, 0, 255)))
    (tmp_path / "notes.txt").write_text("x")
    files = list_images(tmp_path)
    assert [p.name for p in files] == ["b.png", "a.jpg"]  # sorted by full path
    x = load_image(tmp_path / "b.png")
    assert x.shape == (3, 111, 111) and x.dtype == torch.float32
    assert torch.allclose(x[:, 50, 50], torch.tensor([1.0, 0.0, 0.0]), atol=1e-3)  # RGB order
    assert load_image(tmp_path / "b.png", size=None).shape == (3, 20, 30)
    assert load_folder(tmp_path, size=32, limit=1).shape == (1, 3, 32, 32)


def test_data_errors(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "missing")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(DataError, match="not a folder"):
        list_images(tmp_path / "f.txt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        list_images(tmp_path / "empty")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg at all")
    with pytest.raises(DataError, match="bad.jpg"):
        load_image(bad)
    with pytest.raises(DataError) as e:
        load_folder(tmp_path)
    assert "\n" not in str(e.value)


def test_load_lol(tmp_path):
    for split, n in (("our485", 2), ("eval15", 1)):
        for i in range(n):
            _write(tmp_path / split / "low" / f"{i}.png", _rgb((10, 10, 10)))
            _write(tmp_path / split / "high" / f"{i}.png", _rgb((200, 200, 200)))
    _write(tmp_path / "our485" / "low" / "orphan.png", _rgb((0, 0, 0)))  # no partner: skipped
    low, high = load_lol(tmp_path)
    assert low.shape == high.shape == (3, 3, 111, 111)
    assert (low < 0.1).all() and (high > 0.7).all()
    low, high = load_lol(tmp_path, split="eval15")
    assert low.shape[0] == 1
    low, _ = load_lol(tmp_path / "our485")
    assert low.shape[0] == 2
    with pytest.raises(DataError):
        load_lol(tmp_path, split="nope")


def _voc(tmp_path):
    """Three images: id0 class 3 (+ ignore border), id1 classes 7 and 12, id2 background only."""
    root = tmp_path / "VOC"
    labels = {}
    lab = np.zeros((40, 60), np.uint8)
    lab[10:30, 20:40] = 3
    lab[0, :] = 255
    labels["id0"] = lab
    lab = np.zeros((40, 60), np.uint8)
    lab[:20, :30] = 12
    lab[20:, 30:] = 7
    labels["id1"] = lab
    labels["id2"] = np.zeros((40, 60), np.uint8)
    for sid, lab in labels.items():
        _write(root / "JPEGImages" / f"{sid}.jpg", _rgb((90, 120, 30), 40, 60))
        _write(root / "SegmentationClassAug" / f"{sid}.png", lab)  # 8-bit single-channel label image
    sets = root / "ImageSets" / "Segmentation"
    sets.mkdir(parents=True)
    (sets / "train.txt").write_text("id0\nid1\n")
    (sets / "val.txt").write_text("id2\n")
    return root


def test_voc_segmentation(tmp_path):
    root = _voc(tmp_path)
    imgs, masks = load_voc_segmentation(root)
    assert imgs.shape == (3, 3, 111, 111) and masks.shape == (3, 1, 111, 111)
    assert set(masks.unique().tolist()) <= {0.0, 1.0}
    assert masks[0, 0, 0].sum() == 0  # 255 (ignore) is background
    assert masks[0].mean().item() == pytest.approx(400 / 2400, abs=0.02)
    assert masks[1].mean().item() == pytest.approx(0.5, abs=0.02) and masks[2].sum() == 0
    imgs, masks = load_voc_segmentation(root, split_file="train")
    assert imgs.shape[0] == 2
    # Pascal-5i: fold 0 = classes 1..5 → only id0 (class 3); fold 2 = 11..15 → id1 (class 12 only)
    imgs, masks = load_voc_segmentation(root, classes=pascal5i_classes(0))
    assert imgs.shape[0] == 1
    _, masks = load_voc_segmentation(root, classes=pascal5i_classes(2))
    assert masks.shape[0] == 1 and masks[0, 0, :50, :50].all() and masks[0, 0, 60:, 60:].sum() == 0
    _, masks = load_voc_segmentation(root, classes=[7, 12])  # first listed class present wins
    assert masks[0, 0, 60:, 60:].all() and masks[0, 0, :50, :50].sum() == 0
    with pytest.raises(DataError):
        load_voc_segmentation(root, classes=pascal5i_classes(3))


def test_voc_palette_png_and_fallback(tmp_path):
    from PIL import Image

    root = tmp_path / "VOC"
    _write(root / "JPEGImages" / "a.jpg", _rgb((1, 2, 3), 16, 16))
    lab = np.zeros((16, 16), np.uint8)
    lab[4:12, 4:12] = 15
    im = Image.fromarray(lab, mode="P")
    im.putpalette(voc_colormap().flatten().tolist())
    (root / "SegmentationClass").mkdir()
    im.save(root / "SegmentationClass" / "a.png")
    _, masks = load_voc_segmentation(root, classes=[15])
    assert masks.mean().item() == pytest.approx(0.25, abs=0.03)


def test_pascal5i_classes():
    assert pascal5i_classes(0) == [1, 2, 3, 4, 5] and pascal5i_classes(3) == [16, 17, 18, 19, 20]
    with pytest.raises(DataError):
        pascal5i_classes(4)


def test_packaged_photos():
    train, val = packaged_photos("train"), packaged_photos("val")
    assert set(val) == set(VAL_PHOTOS) and len(val) == 3
    assert not set(train) & set(val) and len(train) >= 8
    for x in val.values():
        assert x.shape[0] == 3 and not torch.equal(x[0], x[1])  # colour
    for x in train.values():
        assert x.ndim == 3 and x.shape[0] == 3 and 0 <= x.min() and x.max() <= 1 and max(x.shape) <= 512
    assert set(packaged_photos("all")) == set(train) | set(val)


def test_random_crops():
    photos = [torch.rand(3, 60, 90, generator=torch.Generator().manual_seed(0)), torch.zeros(3, 40, 40)]
    a = random_crops(photos, 16, torch.Generator().manual_seed(1), size=24)
    b = random_crops(photos, 16, torch.Generator().manual_seed(1), size=24)
    assert a.shape == (16, 3, 24, 24) and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1
    # without jitter, a full crop of a constant photo is that constant
    c = random_crops([torch.full((3, 30, 50), 0.3)], 4, torch.Generator().manual_seed(2), size=8, jitter=False)
    assert torch.allclose(c, torch.full_like(c, 0.3), atol=1e-5)


def test_images_option_reads_the_clean_half_of_a_lol_folder(tmp_path):
    import cv2
    import numpy as np

    from taskvec.data.imagesets import load_image_set

    for split in ("our485", "eval15"):
        for kind, value in (("low", 20), ("high", 200)):
            d = tmp_path / split / kind
            d.mkdir(parents=True)
            for i in range(2):
                cv2.imwrite(str(d / f"{i}.png"), np.full((40, 60, 3), value, np.uint8))
    pool = load_image_set(str(tmp_path), "lowlight")
    assert len(pool) == 4 and "LOL" in pool.source
    assert abs(float(pool.images.mean()) - 200 / 255) < 0.01
