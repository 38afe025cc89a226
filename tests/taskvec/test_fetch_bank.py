"""The image bank: packages unpacked into a manifest, split by picture, crops and stamps.

Real .deb files are built on the fly with dpkg-deb from generated pictures; apt-get is
never called (no network in tests)."""

import hashlib
import json
import shutil
import subprocess

import cv2
import numpy as np
import pytest
import torch

from taskvec.data import fetch as F
from taskvec.data.bank import ImageBank, bank_crops, composite_stamps
from taskvec.errors import UserError

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs dpkg-deb")


def _names(split, n):
    """Wallpaper folder names whose family falls in ``split``."""
    out, k = [], 0
    while len(out) < n:
        name = f"Pic{k}"
        if F.split_of(f"plasma-workspace-wallpapers/usr/share/wallpapers/{name}") == split:
            out.append(name)
        k += 1
    return out


def _picture(color, w, h, seed):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.array(color, np.float64)[None, None] * (0.6 + 0.4 * (xx / w))[..., None]
    wave = 30 * np.sin(xx / (w / (3 + seed)) + yy / (h / (2 + seed)))[..., None]
    return np.clip(base + wave + rng.normal(0, 2, (h, w, 3)), 0, 255).astype(np.uint8)


def _deb(tmp_path, pkg, files: dict[str, np.ndarray]):
    root = tmp_path / "src" / pkg
    for rel, img in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        assert cv2.imwrite(str(p), img)
    doc = root / "usr/share/doc" / pkg
    doc.mkdir(parents=True, exist_ok=True)
    (doc / "copyright").write_text("Format: x\n\nFiles: *\nLicense: CC-BY-SA-4.0\n")
    (root / "DEBIAN").mkdir()
    (root / "DEBIAN/control").write_text(
        f"Package: {pkg}\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@t>\nDescription: test\n")
    deb = tmp_path / f"{pkg}_1.0_all.deb"
    subprocess.run(["dpkg-deb", "--build", "--root-owner-group", str(root), str(deb)], check=True,
                   capture_output=True)
    return deb


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bank")
    train_names, val_names = _names("train", 3), _names("val", 1) + _names("test", 1)
    walls = {}
    for i, name in enumerate(train_names):
        img = _picture((200, 90 + 40 * i, 40), 1600, 1000, i)  # BGR: blue-green
        walls[f"usr/share/wallpapers/{name}/contents/images/1600x1000.jpg"] = img
        walls[f"usr/share/wallpapers/{name}/contents/images/1280x800.jpg"] = cv2.resize(img, (1280, 800))
    red = np.zeros((1000, 1600, 3), np.uint8)
    red[..., 2] = 255  # BGR: pure red, the only red anywhere in the bank
    for name in val_names:  # the held-out pictures (validation, test)
        walls[f"usr/share/wallpapers/{name}/contents/images/1600x1000.jpg"] = red
    walls["usr/share/wallpapers/logo.png"] = _picture((0, 0, 0), 200, 100, 9)  # too small: skipped
    stamps = {}
    for i in range(6):
        s = np.zeros((120, 100, 4), np.uint8)
        s[..., :3] = (20 * i, 200, 20)
        cv2.circle(s, (50, 60), 40, (20 * i, 200, 20, 255), -1)
        stamps[f"usr/share/tuxpaint/stamps/animals/s{i}.png"] = s
    stamps["usr/share/tuxpaint/stamps/opaque.png"] = np.full((80, 80, 4), 255, np.uint8)  # no cut-out: skipped
    debs = {"plasma-workspace-wallpapers": _deb(tmp, "plasma-workspace-wallpapers", walls),
            "tuxpaint-stamps-default": _deb(tmp, "tuxpaint-stamps-default", stamps)}
    out = tmp / "bank"
    work = tmp / "work"
    work.mkdir()
    entries = F.build_bank(debs, out, work)
    (out / F.MANIFEST).write_text(json.dumps({"images": [e.__dict__ for e in entries]}))
    return out, entries, val_names


def test_manifest(bank):
    out, entries, val_names = bank
    walls = [e for e in entries if e.kind == "wallpaper"]
    stamps = [e for e in entries if e.kind == "stamp"]
    assert len(walls) == 5  # one file per picture: the 1280x800 copies are the same picture; the logo is too small
    assert {(e.width, e.height) for e in walls} == {(1600, 1000)}
    assert len(stamps) == 6  # the opaque one is not a cut-out
    for e in entries:
        data = (out / e.path).read_bytes()
        assert hashlib.sha256(data).hexdigest() == e.sha256
        assert e.licence == "CC-BY-SA-4.0"
        assert e.split == F.split_of(e.group)
    assert [e.split for e in walls if e.group.endswith("/" + val_names[0])] == ["val"]
    assert [e.split for e in walls if e.group.endswith("/" + val_names[1])] == ["test"]
    assert max(cv2.imread(str(out / walls[0].path)).shape[:2]) <= F.WALLPAPER_MAX_SIDE


def test_family_groups_variants():
    assert F.family("gnome-backgrounds", "usr/share/backgrounds/gnome/adwaita-d.jpg") == \
        F.family("gnome-backgrounds", "usr/share/backgrounds/gnome/adwaita-l.jpg")
    assert F.family("p", "usr/share/wallpapers/Kay/contents/images_dark/1920x1080.png") == \
        F.family("p", "usr/share/wallpapers/Kay/contents/images/5120x2880.png")
    assert F.family("s", "b/Sway_Wallpaper_Blue_2048x1536.png") == F.family("s", "b/Sway_Wallpaper_Blue_2048x1536_Portrait.png")
    assert F.family("p", "usr/share/wallpapers/Kay/contents/images/a.png") != \
        F.family("p", "usr/share/wallpapers/Kite/contents/images/a.png")


def test_no_validation_picture_reaches_training(bank):
    out, entries, _ = bank
    train, val, test = (ImageBank.load(out, s) for s in ("train", "val", "test"))
    assert train.groups.isdisjoint(val.groups | test.groups) and val.groups.isdisjoint(test.groups)
    assert len(train.wallpapers) == 3 and len(val.wallpapers) == 1 and len(test.wallpapers) == 1
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        x = bank_crops(train, 64, g)
        x, _ = composite_stamps(x, train.stamps, g)
        # the held-out pictures are pure red; nothing in training is
        red = (x[:, 0] > 0.8) & (x[:, 1] < 0.2) & (x[:, 2] < 0.2)
        assert not red.any()
    v = bank_crops(val, 8, g)
    assert (v[:, 0].mean() > 0.6) and (v[:, 1].mean() < 0.3)  # …and the validation split does hold it


def test_composite_masks_match_pasted_pixels(bank):
    out, _, _ = bank
    b = ImageBank.load(out, "train")
    bg = torch.zeros(16, 3, 111, 111)
    imgs, masks = composite_stamps(bg, b.stamps, torch.Generator().manual_seed(3))
    assert masks.sum(dim=(1, 2, 3)).min() > 0
    green, inside = imgs[:, 1], masks[:, 0] > 0
    assert (green[inside] > 0.35).all()  # the stamp's green (0.78), at least half opaque
    assert (green[~inside] < 0.45).all()  # black background, at most half covered


def test_fetch_without_network_is_one_line(tmp_path, monkeypatch):
    def no_net(cmd, cwd):
        return subprocess.CompletedProcess(cmd, 100, "", "Err:1 http://deb.debian.org\n"
                                           "E: Failed to fetch http://deb.debian.org/x  Temporary failure resolving")
    monkeypatch.setattr(F, "_run", no_net)
    monkeypatch.setattr(F.shutil, "which", lambda name: f"/usr/bin/{name}")
    with pytest.raises(UserError, match="no network access"):
        F.fetch(tmp_path / "bank")
    assert list(tmp_path.iterdir()) == []  # nothing half-written


def test_fetch_refuses_existing_out(tmp_path):
    with pytest.raises(UserError, match="already exists"):
        F.fetch(tmp_path)


def test_packed_bank_loads_like_the_folder(bank, tmp_path):
    from taskvec.data.bank import pack_bank

    out, _, _ = bank
    size = pack_bank(out, tmp_path / "bank.tar")
    assert size == (tmp_path / "bank.tar").stat().st_size and list(tmp_path.iterdir()) == [tmp_path / "bank.tar"]
    for split in ("train", "val", "test"):
        a, b = ImageBank.load(out, split), ImageBank.load(tmp_path / "bank.tar", split)
        assert a.groups == b.groups and len(a.stamps) == len(b.stamps)
        assert [w.shape for w in a.wallpapers] == [w.shape for w in b.wallpapers]
        assert max((x - y).abs().mean().item() for x, y in zip(a.wallpapers, b.wallpapers)) < 0.02
    with pytest.raises(UserError, match="not an image bank"):
        ImageBank.load(tmp_path, "train")


def test_bank_photos_are_the_split_only_and_feed_the_lowlight_benchmark(bank, tmp_path):
    from benchmarks.lowlight_quality import clean_frames
    from taskvec.bank import bank_photos

    out, entries, _ = bank
    val = bank_photos(out, "val")
    assert list(val) == [e.path for e in entries if e.kind == "wallpaper" and e.split == "val"]
    img = next(iter(val.values()))
    assert img.dtype == np.uint8 and max(img.shape[:2]) == 512 and img[..., 2].mean() > 240  # the red picture
    assert len(bank_photos(out, "train")) == 3
    frames = clean_frames("bank-val", 3, (64, 48), bank=out)
    assert len(frames) == 3 and all(f.shape == (48, 64, 3) and f[..., 2].mean() > 240 for f in frames)
    with pytest.raises(UserError, match="not an image bank"):
        clean_frames("bank-val", 3, (64, 48), bank=tmp_path)
