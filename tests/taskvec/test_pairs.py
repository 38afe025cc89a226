"""The pairs task (taskvec.data.pairs): layouts, metric from the targets, split by name,
identity, and the pools it gives collect/search/evaluate."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from taskvec.data.images import DataError
from taskvec.data.imagesets import load_image_set
from taskvec.data.pairs import PairsTask, is_binary_mask, parse_spec, validation_names
from taskvec.data.tasks import get_task, list_tasks


def _img(path: Path, seed: int, size=(50, 60), mask=False) -> None:
    rng = np.random.default_rng(seed)
    if mask:
        a = np.zeros((*size, 3), np.uint8)
        a[10:30, 15:40] = 255
    else:
        a = rng.integers(0, 255, (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), a)


def _folder(root: Path, n=8, mask=False, inp="input", tgt="target") -> Path:
    for i in range(n):
        _img(root / inp / f"n{i:02d}.png", i)
        _img(root / tgt / f"n{i:02d}.png", 100 + i, mask=mask)
    return root


def test_input_target_layout_psnr(tmp_path):
    t = get_task(f"pairs:{_folder(tmp_path / 'mine')}")
    assert isinstance(t, PairsTask) and t.metric == "psnr" and t.layout == "input/target"
    assert t.name == f"pairs-mine-{t.digest[:10]}" and t.label == "mine"
    assert t.inputs.shape == (8, 3, 111, 111) and t.targets.shape == (8, 3, 111, 111)
    assert len(t.val_names) == 2 and set(t.val_names) < set(t.names)
    assert get_task(t.name) is t  # the registry name resolves afterwards
    assert list_tasks() == ["colorization", "inpainting", "lowlight", "segmentation"]  # built-ins untouched


def test_masks_give_iou_and_binary_targets(tmp_path):
    t = get_task(f"pairs:{_folder(tmp_path / 'seg', mask=True)}")
    assert t.metric == "iou" and t.targets.shape == (8, 1, 111, 111)
    assert set(t.targets.unique().tolist()) == {0.0, 1.0}
    x, y = t.apply(t.inputs[:2], {}, t.targets[:2])
    assert y.shape == (2, 3, 111, 111) and torch.equal(x, t.inputs[:2])
    # named on the command line: PSNR on the same masks
    assert get_task(f"pairs:{tmp_path / 'seg'}:psnr").metric == "psnr"


def test_lol_layout_nested(tmp_path):
    root = tmp_path / "LOL"
    _folder(root / "our485", 3, inp="low", tgt="high")
    _folder(root / "eval15", 2, inp="low", tgt="high")
    t = get_task(f"pairs:{root}")
    assert t.layout == "LOL low/high" and len(t.names) == 5 and "eval15/n00" in t.names


def test_voc_layout(tmp_path):
    from PIL import Image

    root = tmp_path / "voc"
    (root / "SegmentationClass").mkdir(parents=True)
    for i in range(3):
        _img(root / "JPEGImages" / f"20{i}.jpg", i)
        label = np.zeros((50, 60), np.uint8)
        label[5:25, 5:30] = 15
        label[0, :] = 255  # ignore → background
        im = Image.fromarray(label, mode="P")
        im.save(root / "SegmentationClass" / f"20{i}.png")
    t = get_task(f"pairs:{root}")
    assert t.layout == "VOC image/mask" and t.metric == "iou" and t.targets.shape == (3, 1, 111, 111)
    assert 0 < float(t.targets.mean()) < 0.5


def test_split_is_by_name_and_stable(tmp_path):
    names = [f"img{i}" for i in range(20)]
    val = validation_names(names)
    assert len(val) == 5 and validation_names(list(reversed(names))) == val
    more = validation_names(names + ["extra"])
    assert len(set(val) & set(more)) >= 4  # adding a pair moves at most one name
    assert validation_names(["one"]) == []


def test_identity_changes_with_any_pixel(tmp_path):
    d = _folder(tmp_path / "p", 4)
    a = get_task(f"pairs:{d}")
    img = cv2.imread(str(d / "target" / "n01.png"))
    img[0, 0, 0] ^= 1
    cv2.imwrite(str(d / "target" / "n01.png"), img)
    b = get_task(f"pairs:{d}")
    assert a.digest != b.digest and a.name != b.name
    ident = b.identity()
    assert ident["pairs_sha256"] == b.digest and ident["pairs"] == 4 and ident["metric"] == "psnr"


def test_pools_for_each_split(tmp_path):
    t = get_task(f"pairs:{_folder(tmp_path / 'p', 8)}")
    train, val, all_ = (load_image_set(s, t.name) for s in ("train", "val", "all"))
    assert (len(train), len(val), len(all_)) == (6, 2, 8) and all_.val_start == 6
    assert torch.equal(all_.images[6:], val.images) and torch.equal(all_.masks[:6], train.masks)
    with pytest.raises(DataError, match="train, val, all"):
        load_image_set("packaged:val", t.name)


def test_spec_parsing(tmp_path):
    assert parse_spec("pairs:a/b") == (Path("a/b"), None)
    assert parse_spec("pairs:a/b:iou") == (Path("a/b"), "iou")
    assert parse_spec("pairs:C:/x") == (Path("C:/x"), None)
    with pytest.raises(DataError):
        parse_spec("pairs:")


def test_binary_mask_detection():
    m = np.zeros((20, 20, 3), np.uint8)
    m[5:10] = 255
    assert is_binary_mask(m)
    m[0, 0] = (255, 0, 0)
    assert not is_binary_mask(m)
    assert not is_binary_mask(np.full((20, 20, 3), 128, np.uint8))


def test_search_writes_identity_and_uses_the_split(tmp_path):
    """A micro search on pairs: the sidecar carries the identity; train/val are the named split."""
    from taskvec.vectors.pipeline import run_search_cli
    from taskvec.vectors.taskvector import TaskVector

    d = _folder(tmp_path / "p", 8)
    out = tmp_path / "tv.safetensors"
    run_search_cli(f"pairs:{d}", None, str(out), "reinforce", "region", 1, 0, None, 4, "auto", "random:micro_pixel",
                   512, k=2)  # fmt: skip
    tv = TaskVector.load(out)
    t = get_task(f"pairs:{d}")
    assert tv.task == t.name and tv.meta["task_identity"]["pairs_sha256"] == t.digest
    assert tv.meta["data"]["train"] == 6 and tv.meta["data"]["val"] == 2
    assert tv.meta["means"]["images"].endswith("all (8 of 8)[:6]")  # means from the train pairs only


@pytest.mark.parametrize("kind,builtin", [("masks", "segmentation"), ("lowlight", "lowlight")])
def test_pairs_of_builtin_kind_give_the_builtin_queries(tmp_path, kind, builtin):
    """The same task defined two ways (benchmarks/pairs_vs_builtin): pairs of a built-in kind
    and the built-in task on the same clean images give the same zero-shot queries and
    targets — exactly for masks, within 8-bit rounding of the stored dark input for low-light."""
    from benchmarks.pairs_vs_builtin import builtin_folder
    from taskvec.data.pairs_demo import write_example_pairs
    from taskvec.search.common import Queries

    t = get_task(f"pairs:{write_example_pairs(tmp_path / kind, kind, 8, seed=1)}")
    pool_p = load_image_set("all", t.name)
    pool_b = load_image_set(str(builtin_folder(t, "all", tmp_path / "b", kind)), builtin)
    cp, tp = Queries(t.name, pool_p).fixed(8, seed=3)
    cb, tb = Queries(builtin, pool_b).fixed(8, seed=3)
    tol = 0 if kind == "masks" else 1.01 / 255 / 0.224  # one grey level in ImageNet-normalised units
    assert torch.equal(tp, tb) and (cp - cb).abs().max() <= tol
