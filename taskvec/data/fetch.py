"""Training photos from Debian's package registry (DESIGN §7).

``taskvec data fetch --out DIR`` downloads the wallpaper packages and
``tuxpaint-stamps-default`` with ``apt-get download`` (no installation, nothing on the
system changes), unpacks them with ``dpkg -x`` into a temporary folder and writes::

    DIR/wallpapers/<package>--<name>.jpg   one file per distinct picture (largest variant),
                                           longer side ≤ ``WALLPAPER_MAX_SIDE``
    DIR/stamps/<name>.png                  cut-out photos with alpha, longer side ≤ ``STAMP_MAX_SIDE``
    DIR/manifest.json                      per file: path, sha256, source package, original
                                           pixel size, licence, group (see below), split
                                           (train / val / test)

Variants of one picture (several resolutions, a ``_dark`` twin) are detected by a
16×16 thumbnail correlation and share a *group*; the validation split is chosen per
group by a hash (:func:`split_of`), so no crop of a validation picture can reach
training. The folder is built next to ``DIR`` and renamed into place: a failed fetch
leaves nothing behind.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import cv2
import numpy as np
from tqdm import tqdm

from taskvec.errors import UserError

WALLPAPER_PACKAGES = (
    "plasma-workspace-wallpapers", "gnome-backgrounds", "desktop-base", "ukui-wallpapers",
    "lomiri-wallpapers", "lomiri-wallpapers-20.04", "sway-backgrounds",
)  # fmt: skip
STAMP_PACKAGES = ("tuxpaint-stamps-default",)
RASTER_EXTS = (".jpg", ".jpeg", ".png", ".webp")
WALLPAPER_MIN_SIDE = 1000  # smaller pictures are logos, boot splashes and previews
WALLPAPER_MAX_SIDE = 2048
STAMP_MAX_SIDE = 320
STAMP_MIN_SIDE = 48
# Shares of picture groups held out (≥ 15 % in all): "val" to choose designs and settings on,
# "test" to report once.
VAL_PERCENT = 10
TEST_PERCENT = 10
SAME_PICTURE_CORR = 0.92  # thumbnail correlation above which two files are one picture
MANIFEST = "manifest.json"

Split = Literal["train", "val", "test"]


@dataclass(frozen=True)
class Entry:
    """One image of the bank, as written to the manifest."""

    path: str  # relative to the bank folder
    sha256: str  # of the written file
    package: str
    source_path: str  # inside the package
    width: int  # original pixel size
    height: int
    licence: str
    kind: Literal["wallpaper", "stamp"]
    group: str  # pictures that are variants of one another share a group
    split: Split


def split_of(group: str) -> Split:
    """Deterministic split of a group by its hash: ``test`` for ``TEST_PERCENT`` % of the hash
    space, ``val`` for the next ``VAL_PERCENT`` %, ``train`` for the rest."""
    h = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) % 100
    return "test" if h < TEST_PERCENT else "val" if h < TEST_PERCENT + VAL_PERCENT else "train"


def _manifest_bytes(bank: str | Path) -> bytes:
    """The manifest of a bank folder or of a packed bank (``.tar``)."""
    bank = Path(bank)
    try:
        if bank.is_file():
            import tarfile

            with tarfile.open(bank) as tf:
                return tf.extractfile(MANIFEST).read()
        return (bank / MANIFEST).read_bytes()
    except (OSError, KeyError, AttributeError) as e:
        raise UserError(f"{bank}: not an image bank ({type(e).__name__}; make one with `taskvec data fetch --out DIR`)") from None


def read_manifest(bank: str | Path) -> list[Entry]:
    path = Path(bank)
    try:
        rows = json.loads(_manifest_bytes(bank))["images"]
        return [Entry(**r) for r in rows]
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"{path}: unreadable manifest ({type(e).__name__}: {e})") from None


def manifest_hash(bank: str | Path) -> str:
    """sha256 of the manifest file: what a model card records as its training data."""
    return hashlib.sha256(_manifest_bytes(bank)).hexdigest()


# ---------------------------------------------------------------------------------
# Downloading and unpacking


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    try:
        return subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError:
        raise UserError(f"{cmd[0]} not found: `taskvec data fetch` needs Debian's apt-get and dpkg") from None


def download_packages(packages: tuple[str, ...], dest: Path) -> dict[str, Path]:
    """``apt-get download`` each package into ``dest`` → {package: .deb}. No network → one line."""
    out = {}
    for pkg in tqdm(packages, desc="download", unit="pkg"):
        r = _run(["apt-get", "download", pkg], dest)
        debs = sorted(dest.glob(f"{pkg}_*.deb"))
        if r.returncode != 0 or not debs:
            msg = (r.stderr or r.stdout).strip().splitlines()
            last = msg[-1] if msg else f"exit {r.returncode}"
            if re.search(r"Temporary failure|Could not resolve|Failed to fetch|Unable to connect", r.stderr or ""):
                raise UserError(f"cannot download {pkg}: no network access to Debian's archive ({last})")
            raise UserError(f"cannot download {pkg}: {last}")
        out[pkg] = debs[-1]
    return out


def _licence(root: Path, pkg: str) -> str:
    """Licence names from the package's copyright file (DEP-5 ``License:`` lines)."""
    f = root / "usr/share/doc" / pkg / "copyright"
    if not f.is_file():
        return "unknown"
    names = []
    for line in f.read_text(errors="replace").splitlines():
        if line.startswith("License:"):
            name = line.split(":", 1)[1].strip()
            if name and name not in names:
                names.append(name)
    return ", ".join(names) if names else "see copyright file"


def _thumb(img: np.ndarray) -> np.ndarray:
    g = cv2.cvtColor(img[..., :3], cv2.COLOR_BGR2GRAY) if img.ndim == 3 else img
    t = cv2.resize(g, (16, 16), interpolation=cv2.INTER_AREA).astype(np.float64).ravel()
    t -= t.mean()
    return t / (np.linalg.norm(t) + 1e-9)


def _fit(img: np.ndarray, max_side: int) -> np.ndarray:
    h, w = img.shape[:2]
    if max(h, w) <= max_side:
        return img
    s = max_side / max(h, w)
    return cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)


def _safe_name(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", s).strip("_")


@dataclass
class _Candidate:
    package: str
    rel: str
    img: np.ndarray
    thumb: np.ndarray


def _wallpapers(root: Path, pkg: str) -> list[_Candidate]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.suffix.lower() not in RASTER_EXTS or not p.is_file():
            continue
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None or min(img.shape[:2]) < WALLPAPER_MIN_SIDE:
            continue
        out.append(_Candidate(pkg, str(p.relative_to(root)), img, _thumb(img)))
    return out


def family(package: str, rel: str) -> str:
    """Name shared by the variants of one picture: a KDE-style ``NAME/contents/…`` folder, a
    desktop-base ``*-theme`` folder, or the file stem without resolution and dark/light/portrait
    suffixes (``adwaita-d`` and ``adwaita-l`` are one picture)."""
    parts = Path(rel).parts
    if "contents" in parts:
        return f"{package}/{'/'.join(parts[: parts.index('contents')])}"
    theme = [p for p in parts if p.endswith("-theme")]
    if theme:
        return f"{package}/{theme[0]}"
    stem = re.sub(r"\d{3,5}x\d{3,5}", "", Path(rel).stem.lower())
    stem = re.sub(r"([-_](d|l|dark|light|portrait|night|day))+$", "", stem.strip("-_"))
    return f"{package}/{stem.strip('-_')}"


def _group(cands: list[_Candidate]) -> list[list[_Candidate]]:
    """Group the variants of one picture: the same :func:`family`, or near-identical thumbnails."""
    parent = list(range(len(cands)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    fams = [family(c.package, c.rel) for c in cands]
    for i in range(len(cands)):
        for j in range(i):
            if fams[i] == fams[j] or float(cands[i].thumb @ cands[j].thumb) > SAME_PICTURE_CORR:
                parent[root(i)] = root(j)
    groups: dict[int, list[_Candidate]] = {}
    for i, c in enumerate(cands):
        groups.setdefault(root(i), []).append(c)
    return list(groups.values())


def _unique(name: str, used: set[str]) -> str:
    out, k = name, 1
    while out in used:
        k += 1
        out = f"{name}-{k}"
    used.add(out)
    return out


def _file_name(package: str, rel: str) -> str:
    skip = {"usr", "share", "contents", "images", "backgrounds", "wallpapers", "wallpaper", "desktop-base"}
    parts = [p for p in Path(rel).with_suffix("").parts if p.lower() not in skip]
    return _safe_name(f"{package}--{'-'.join(parts)}")


def build_bank(debs: dict[str, Path], out: Path, work: Path) -> list[Entry]:
    """Unpack ``debs`` under ``work`` and write the bank's files into ``out`` → manifest entries."""
    entries: list[Entry] = []
    (out / "wallpapers").mkdir(parents=True)
    (out / "stamps").mkdir()
    cands, licences = [], {}
    for pkg, deb in tqdm(debs.items(), desc="unpack", unit="pkg"):
        root = work / pkg
        r = _run(["dpkg", "-x", str(deb), str(root)], work)
        if r.returncode != 0:
            raise UserError(f"cannot unpack {deb.name}: {r.stderr.strip().splitlines()[-1:]}")
        licences[pkg] = _licence(root, pkg)
        if pkg in WALLPAPER_PACKAGES:
            cands += _wallpapers(root, pkg)
    used: set[str] = set()
    for g in _group(cands):
        # distinct variants (dark/light, portrait) are kept, resolutions of one picture are not;
        # all of them share the group's split
        group = family(g[0].package, g[0].rel)
        kept: list[_Candidate] = []
        for c in sorted(g, key=lambda c: -c.img.shape[0] * c.img.shape[1]):
            if all(float(c.thumb @ k.thumb) <= SAME_PICTURE_CORR for k in kept):
                kept.append(c)
                _write_wallpaper(c, group, licences[c.package], out, used, entries)
    for pkg in STAMP_PACKAGES:
        if pkg in debs:
            entries += _stamps(work / pkg, pkg, licences[pkg], out)
    return entries


def _write_wallpaper(best: _Candidate, group: str, licence: str, out: Path, used: set[str], entries: list) -> None:
    rel = f"wallpapers/{_unique(_file_name(best.package, best.rel), used)}.jpg"
    ok, buf = cv2.imencode(".jpg", _fit(best.img, WALLPAPER_MAX_SIDE), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise UserError(f"cannot encode {group}")
    (out / rel).write_bytes(buf.tobytes())
    h, w = best.img.shape[:2]
    entries.append(Entry(rel, hashlib.sha256(buf.tobytes()).hexdigest(), best.package, best.rel, w, h,
                         licence, "wallpaper", group, split_of(group)))  # fmt: skip


def _stamps(root: Path, pkg: str, licence: str, out: Path) -> list[Entry]:
    entries = []
    seen: set[str] = set()
    for p in tqdm(sorted(root.rglob("*.png")), desc="stamps", unit="img", leave=False):
        img = cv2.imread(str(p), cv2.IMREAD_UNCHANGED)
        if img is None or img.ndim != 3 or img.shape[2] != 4 or min(img.shape[:2]) < STAMP_MIN_SIDE:
            continue
        alpha = img[..., 3] > 127
        if alpha.mean() > 0.97 or alpha.mean() < 0.05:  # no real cut-out
            continue
        small = _fit(img, STAMP_MAX_SIDE)
        ok, buf = cv2.imencode(".png", small)
        digest = hashlib.sha256(buf.tobytes()).hexdigest()
        if not ok or digest in seen:
            continue
        seen.add(digest)
        rel_src = str(p.relative_to(root))
        rel = f"stamps/{_safe_name(rel_src.removeprefix('usr/share/tuxpaint/stamps/').removesuffix('.png'))}.png"
        (out / rel).write_bytes(buf.tobytes())
        h, w = img.shape[:2]
        group = f"{pkg}/{rel_src}"
        entries.append(Entry(rel, digest, pkg, rel_src, w, h, licence, "stamp", group, split_of(group)))
    return entries


def fetch(out: str | Path, packages: tuple[str, ...] = WALLPAPER_PACKAGES + STAMP_PACKAGES) -> list[Entry]:
    """Download, unpack and write the image bank to ``out`` (atomically). Returns its entries."""
    out = Path(out)
    if out.exists():
        raise UserError(f"{out} already exists; remove it or choose another --out")
    if shutil.which("apt-get") is None or shutil.which("dpkg") is None:
        raise UserError("`taskvec data fetch` needs Debian's apt-get and dpkg (use --images DIR elsewhere)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp_out = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        with tempfile.TemporaryDirectory(prefix="taskvec-fetch-") as work:
            work_p = Path(work)
            (work_p / "debs").mkdir()
            debs = download_packages(packages, work_p / "debs")
            shutil.rmtree(tmp_out)
            entries = build_bank(debs, tmp_out, work_p)
        manifest = {
            "packages": {p: d.name for p, d in debs.items()},
            "val_percent": VAL_PERCENT,
            "test_percent": TEST_PERCENT,
            "images": [asdict(e) for e in entries],
        }
        (tmp_out / MANIFEST).write_text(json.dumps(manifest, indent=1))
        tmp_out.rename(out)
    finally:
        if tmp_out.exists():
            shutil.rmtree(tmp_out, ignore_errors=True)
    return entries
