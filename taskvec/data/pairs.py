"""A task defined by a folder of example pairs: ``--task pairs:DIR`` (issue 20).

Layouts read (names are matched by file stem, extensions may differ):

- ``DIR/input/NAME.*`` ↔ ``DIR/target/NAME.*`` — any before/after pairs;
- the LOL layout ``DIR/low`` ↔ ``DIR/high`` (also one level down, e.g. ``DIR/our485/low``),
  the real dark/clean pairs (``--task lowlight --images`` only keeps the clean ones);
- the PASCAL VOC layout ``JPEGImages`` + ``SegmentationClass[Aug]`` (every object class
  is foreground; targets are white-on-black masks).

The metric comes from the targets: IoU when every target is a binary grey mask (at least
99 % of its pixels within 16 grey levels of black or white, channels equal), PSNR/SSIM
otherwise; ``pairs:DIR:iou`` / ``pairs:DIR:psnr`` names it instead.

Identity: ``sha256`` over the sorted pair names and the bytes of both files of every pair.
The task's registry name is ``pairs-<folder name>-<sha256[:10]>``, so a vector, a means file
or a graph made from one set of pairs is refused for a built-in task or for other pairs.

Split: pairs are ranked by ``sha256(name)``; the first ``max(1, round(0.25·N))`` are the
validation split (N ≥ 2), the rest train. Adding or removing pairs moves few names.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor

from taskvec.data.images import IMAGE_EXTS, DataError
from taskvec.data.tasks import Task
from taskvec.geometry import CELL

PAIRS_PREFIX = "pairs:"
METRICS = ("iou", "psnr")
VAL_FRACTION = 0.25
Split = Literal["train", "val", "all"]
SPLITS: tuple[str, ...] = ("train", "val", "all")
_BINARY_TOL = 16  # grey levels from 0 or 255
_BINARY_SHARE = 0.99


@dataclass(frozen=True)
class PairsTask(Task):
    """Examples and targets read from a folder; ``apply`` returns the stored pair.

    Pools of this task (:func:`pairs_image_set`) carry the inputs as ``images`` and the
    targets as ``masks`` ([N,1,111,111] {0,1} for IoU, [N,3,111,111] in [0,1] otherwise),
    so every code path that threads per-image masks (collect, search, evaluate) threads
    the targets."""

    name: str = "pairs"
    metric: Literal["iou", "psnr"] = "psnr"
    needs_mask: bool = True
    description: str = "a task defined by a folder of example pairs"
    label: str = ""  # the user's name for the task (the folder's name)
    folder: str = ""
    layout: str = "input/target"
    digest: str = ""  # sha256 of the pairs
    names: tuple[str, ...] = ()
    val_names: tuple[str, ...] = ()
    metric_source: str = "targets"  # "targets" (detected) or "command line"
    inputs: Tensor = field(default=None, repr=False, compare=False)  # type: ignore[assignment]
    targets: Tensor = field(default=None, repr=False, compare=False)  # type: ignore[assignment]

    def apply(self, images, params, masks=None, generator=None):
        """images [B,3,111,111] (the pair inputs), masks = their targets [B,C,111,111] → (input, target [B,3,…])."""
        if masks is None:
            raise ValueError(f"{self.name}: the targets of the pairs are missing (pass the pool's masks)")
        target = masks.to(images.device, images.dtype)
        if self.metric == "iou":
            target = (target > 0.5).to(images.dtype)
        return images, target.expand(-1, 3, -1, -1).contiguous()

    def identity(self) -> dict:
        """What names this task in sidecars, graph metadata and tvrun's stats."""
        return {"kind": "pairs", "name": self.label, "registry_name": self.name, "pairs_sha256": self.digest,
                "pairs": len(self.names), "val_pairs": len(self.val_names), "layout": self.layout,
                "metric": self.metric, "metric_source": self.metric_source}  # fmt: skip

    def split_index(self, split: str) -> list[int]:
        """Indices into ``names`` (sorted) of ``split``: train, val or all (train first, then val)."""
        if split not in SPLITS:
            raise DataError(f"a pairs task's images are its train, val or all pairs, not {split!r}")
        val = set(self.val_names)
        train = [i for i, n in enumerate(self.names) if n not in val]
        v = [i for i, n in enumerate(self.names) if n in val]
        return {"train": train, "val": v, "all": train + v}[split]


_PAIRS: dict[str, PairsTask] = {}  # registry name → task (kept apart from the built-in registry)
_BY_SPEC: dict[tuple, PairsTask] = {}


def task_identity(task: str | Task) -> dict | None:
    """A pairs task's :meth:`PairsTask.identity` (for sidecars, graph metadata, tvrun's stats);
    None for a built-in task, whose name is its identity."""
    from taskvec.data.tasks import get_task

    t = get_task(task)
    return t.identity() if isinstance(t, PairsTask) else None


def is_pairs_spec(spec: str) -> bool:
    return isinstance(spec, str) and spec.startswith(PAIRS_PREFIX)


def registered_pairs_task(name: str) -> PairsTask | None:
    return _PAIRS.get(name)


def parse_spec(spec: str) -> tuple[Path, str | None]:
    """``pairs:DIR`` / ``pairs:DIR:iou`` / ``pairs:DIR:psnr`` → (folder, metric or None)."""
    body = spec[len(PAIRS_PREFIX):]
    metric = None
    head, _, tail = body.rpartition(":")
    if head and tail in METRICS:
        body, metric = head, tail
    if not body:
        raise DataError("pairs task: give a folder, e.g. --task pairs:my_pairs (or pairs:my_pairs:iou)")
    return Path(body), metric


def resolve_pairs(spec: str) -> PairsTask:
    """``pairs:DIR[:metric]`` → a :class:`PairsTask`, loaded, hashed and registered.

    One-line :class:`DataError` for an unusable folder (missing, empty, unmatched names,
    an input and target of different sizes, a file that is not an image)."""
    folder, metric = parse_spec(spec)
    if not folder.is_dir():
        raise DataError(f"pairs folder {folder} does not exist or is not a folder")
    layout, pairs = find_pairs(folder)
    stamp = tuple((str(a), a.stat().st_mtime_ns, str(b), b.stat().st_mtime_ns) for _, a, b in pairs)
    key = (str(folder.resolve()), metric, stamp)
    if key in _BY_SPEC:
        return _BY_SPEC[key]
    names = [n for n, _, _ in pairs]
    h = hashlib.sha256()
    inputs, targets, binary = [], [], True
    for name, a, b in pairs:
        da, db = a.read_bytes(), b.read_bytes()
        h.update(f"{name}\0{len(da)}\0{len(db)}\0".encode())
        h.update(hashlib.sha256(da).digest())
        h.update(hashlib.sha256(db).digest())
        x, y, is_mask = _load_pair(a, b, layout)
        binary &= is_mask
        inputs.append(x)
        targets.append(y)
    detected = "iou" if binary else "psnr"
    chosen = metric or detected
    if chosen == "iou" and not binary:
        raise DataError(f"pairs folder {folder}: --task …:iou needs binary black/white mask targets")
    tgt = torch.stack(targets)
    tgt = (tgt.mean(1, keepdim=True) > 0.5).float() if chosen == "iou" else tgt
    digest = h.hexdigest()
    label = re.sub(r"[^A-Za-z0-9_.]+", "_", folder.resolve().name).strip("_.") or "pairs"
    task = PairsTask(
        name=f"pairs-{label}-{digest[:10]}", metric=chosen, description=f"pairs from {folder} ({layout})",  # type: ignore[arg-type]
        label=label, folder=str(folder), layout=layout, digest=digest, names=tuple(names),
        val_names=tuple(validation_names(names)), metric_source="command line" if metric else "targets",
        inputs=torch.stack(inputs), targets=tgt,
    )  # fmt: skip
    _PAIRS[task.name] = task
    _BY_SPEC[key] = task
    return task


def validation_names(names: list[str] | tuple[str, ...], fraction: float = VAL_FRACTION) -> list[str]:
    """The validation names: ranked by sha256(name), the first max(1, round(fraction·N)); none for N < 2."""
    if len(names) < 2:
        return []
    ranked = sorted(names, key=lambda n: hashlib.sha256(n.encode()).hexdigest())
    return sorted(ranked[: max(1, round(fraction * len(names)))])


# ---------------------------------------------------------------------------------
# Finding and reading the pairs


def _images_by_stem(folder: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for p in sorted(folder.iterdir()):
        if p.is_file() and not p.name.startswith("."):
            out.setdefault(p.stem, p)
    return out


def _match(a_dir: Path, b_dir: Path, what: str, prefix: str = "") -> list[tuple[str, Path, Path]]:
    a, b = _images_by_stem(a_dir), _images_by_stem(b_dir)
    if not a and not b:
        raise DataError(f"pairs folder {a_dir.parent}: {a_dir.name}/ and {b_dir.name}/ are empty")
    only_a, only_b = sorted(set(a) - set(b)), sorted(set(b) - set(a))
    if only_a or only_b:
        side, name = (b_dir.name, only_a[0]) if only_a else (a_dir.name, only_b[0])
        n = len(only_a) + len(only_b)
        raise DataError(f"{what}: {n} unmatched name(s), e.g. {name!r} has no file in {side}/ (pairs are matched by name)")
    return [(prefix + s, a[s], b[s]) for s in sorted(a)]


def find_pairs(folder: Path) -> tuple[str, list[tuple[str, Path, Path]]]:
    """(layout, [(name, input file, target file)]) of a pairs folder, sorted by name."""
    if (folder / "input").is_dir() and (folder / "target").is_dir():
        return "input/target", _match(folder / "input", folder / "target", f"pairs folder {folder}")
    lows = [d for d in (folder, *sorted(p for p in folder.iterdir() if p.is_dir())) if (d / "low").is_dir()]
    lows = [d for d in lows if (d / "high").is_dir()]
    if lows:
        pairs = []
        for d in lows:
            prefix = "" if d == folder else f"{d.name}/"
            pairs += _match(d / "low", d / "high", f"LOL folder {d}", prefix)
        return "LOL low/high", pairs
    mask_dir = next((folder / m for m in ("SegmentationClassAug", "SegmentationClass") if (folder / m).is_dir()), None)
    if mask_dir is not None and (folder / "JPEGImages").is_dir():
        masks = _images_by_stem(mask_dir)
        if not masks:
            raise DataError(f"VOC folder {folder}: {mask_dir.name}/ is empty")
        imgs = _images_by_stem(folder / "JPEGImages")
        missing = sorted(set(masks) - set(imgs))
        if missing:
            raise DataError(f"VOC folder {folder}: {len(missing)} mask(s) without an image in JPEGImages/, e.g. {missing[0]!r}")
        return "VOC image/mask", [(s, imgs[s], masks[s]) for s in sorted(masks)]
    raise DataError(f"pairs folder {folder}: expected input/ + target/, low/ + high/ (LOL) or JPEGImages/ + "
                    "SegmentationClass/ (VOC)")  # fmt: skip


def _decode(path: Path) -> np.ndarray:
    """HxWx3 uint8 RGB of an image file (bounded decoding); one line naming a non-image."""
    import cv2

    from taskvec.data.imageio import decode_image
    from taskvec.errors import UserError

    if path.suffix.lower() not in IMAGE_EXTS:
        raise DataError(f"{path} is not an image ({'/'.join(e[1:] for e in IMAGE_EXTS)})")
    try:
        return cv2.cvtColor(decode_image(path), cv2.COLOR_BGR2RGB)
    except UserError as e:
        raise DataError(str(e)) from None


def is_binary_mask(rgb: np.ndarray) -> bool:
    """Grey (channels within 2 levels) and ≥ 99 % of pixels within 16 levels of black or white."""
    a = rgb.astype(np.int16)
    if np.abs(a - a[..., :1]).max() > 2:
        return False
    g = a[..., 0]
    return float(((g <= _BINARY_TOL) | (g >= 255 - _BINARY_TOL)).mean()) >= _BINARY_SHARE


def _load_pair(a: Path, b: Path, layout: str) -> tuple[Tensor, Tensor, bool]:
    """(input [3,111,111], target [3,111,111], target is a binary mask)."""
    from taskvec.data.images import _rgb_array_to_tensor, resize, read_label_png, VOC_IGNORE

    x = _decode(a)
    if layout == "VOC image/mask":
        label = read_label_png(b)
        fg = ((label > 0) & (label != VOC_IGNORE)).astype(np.uint8) * 255
        y = np.repeat(fg[..., None], 3, axis=2)
    else:
        y = _decode(b)
    if x.shape[:2] != y.shape[:2]:
        raise DataError(f"pair {a.stem!r}: {a.name} is {x.shape[1]}x{x.shape[0]} but {b.name} is "
                        f"{y.shape[1]}x{y.shape[0]} (an input and its target must have the same size)")  # fmt: skip
    binary = is_binary_mask(y)
    if binary:  # nearest for masks, so they stay masks
        import cv2

        y = cv2.resize(y, (CELL, CELL), interpolation=cv2.INTER_NEAREST)
    tx = resize(_rgb_array_to_tensor(x)[None], CELL)[0]
    ty = resize(_rgb_array_to_tensor(y)[None], CELL)[0]
    return tx, ty, binary
