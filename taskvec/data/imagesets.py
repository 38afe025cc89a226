"""Resolve an ``--images`` value into a pool of cell-sized images (and masks).

``--images`` is a folder or one of the packaged sources:

- ``packaged:train`` / ``packaged:val`` — random crops of the scikit-image photos of
  that split (:data:`taskvec.data.images.VAL_PHOTOS` are held out). For tasks that need
  masks (segmentation) they become procedural scenes (:mod:`taskvec.data.scenes`) whose
  backgrounds and textures are crops of that split's photos.
- for a pairs task (``--task pairs:DIR``, :mod:`taskvec.data.pairs`): ``train``, ``val`` or
  ``all`` — its own pairs, split by name.
- a folder of images (recursive); in the LOL layout (``*/low``, ``*/high``) its clean
  ``high`` images. Tasks that need masks accept two folder layouts:
  ``DIR/images`` + ``DIR/masks`` (paired by file stem; mask pixels > 0.5 grey are
  foreground), and the PASCAL VOC layout (``JPEGImages`` + ``SegmentationClass[Aug]``,
  every object class is foreground) read by :func:`taskvec.data.images.load_voc_segmentation`.

Everything is deterministic in ``seed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from taskvec.data.images import DataError, list_images, load_folder, load_image, load_voc_segmentation
from taskvec.geometry import CELL
from taskvec.data.tasks import Task, get_task

PACKAGED_PREFIX = "packaged:"
PACKAGED_SPLITS = ("train", "val")


@dataclass
class ImageSet:
    """A pool of images [N,3,111,111] in [0,1], masks [N,1,111,111] {0,1} or None."""

    images: Tensor
    masks: Tensor | None
    source: str  # what --images said, plus how the pool was made
    val_start: int | None = None  # a pairs task's pool: images[val_start:] are its validation split

    def __len__(self) -> int:
        return self.images.shape[0]

    def split(self, n_first: int) -> tuple["ImageSet", "ImageSet"]:
        """The first ``n_first`` images and the rest (e.g. train / validation)."""
        if not 0 < n_first < len(self):
            raise DataError(f"cannot split {len(self)} images at {n_first}")
        m = self.masks
        a = ImageSet(self.images[:n_first], None if m is None else m[:n_first], f"{self.source}[:{n_first}]")
        b = ImageSet(self.images[n_first:], None if m is None else m[n_first:], f"{self.source}[{n_first}:]")
        return a, b


def load_image_set(spec: str, task: str | Task, n: int = 512, seed: int = 0) -> ImageSet:
    """``--images`` value → :class:`ImageSet`.

    ``n`` is the pool size for the packaged sources (folders give all their images).
    Raises :class:`~taskvec.data.images.DataError` (one line) for an unusable source."""
    t = get_task(task)
    from taskvec.data.pairs import PairsTask

    if isinstance(t, PairsTask):
        return pairs_image_set(t, spec)
    if spec.startswith(PACKAGED_PREFIX):
        return _packaged(spec[len(PACKAGED_PREFIX):], t, n, seed)
    folder = Path(spec)
    if not folder.is_dir():
        raise DataError(f"image folder {folder} does not exist (or use packaged:train / packaged:val)")
    if t.needs_mask:
        return _masked_folder(folder, t)
    if any(d.is_dir() for d in folder.glob("*/high")):
        from taskvec.data.images import load_lol

        _, high = load_lol(folder)  # the task builds its own dark inputs from the clean images
        return ImageSet(high, None, f"{folder} (LOL layout: the high images)")
    sub = folder / "images"
    folder = sub if sub.is_dir() else folder
    return ImageSet(load_folder(folder), None, str(folder))


def images_or_default(task: str | Task, images: str | None, pairs_default: str) -> str:
    """``--images`` as given, or ``pairs_default`` (train / val / all) for a pairs task;
    a built-in task needs it."""
    from taskvec.data.pairs import PairsTask

    if images is not None:
        return images
    if isinstance(get_task(task), PairsTask):
        return pairs_default
    raise DataError("--images is required for a built-in task (an image folder, packaged:train or packaged:val)")


def pairs_image_set(task, split: str) -> ImageSet:
    """A pairs task's ``train``, ``val`` or ``all`` pairs (``all``: train first, ``val_start``
    marks where the validation pairs begin) — inputs as images, targets as masks."""
    from taskvec.data.pairs import SPLITS

    if split not in SPLITS:
        raise DataError(f"{task.label}: a pairs task takes its images from its folder; --images may be "
                        f"{', '.join(SPLITS)} (its pairs split by name), not {split!r}")
    idx = task.split_index(split)
    if not idx:
        raise DataError(f"pairs folder {task.folder} has {len(task.names)} pair(s), none in its {split} split "
                        "(a search needs at least 2 pairs; tvexport --graph in-context deploys one)")
    n_val = len(task.val_names)
    val_start = len(idx) - n_val if split == "all" and 0 < n_val < len(idx) else None
    sel = torch.tensor(idx)
    return ImageSet(task.inputs[sel], task.targets[sel],
                    f"pairs {task.label} {task.digest[:12]} {split} ({len(idx)} of {len(task.names)})", val_start)


def _packaged(split: str, task: Task, n: int, seed: int) -> ImageSet:
    from taskvec.data.images import packaged_photos, prepare_photos, random_crops
    from taskvec.data.scenes import procedural_scenes

    if split not in PACKAGED_SPLITS:
        raise DataError(f"unknown packaged split {split!r}; use packaged:train or packaged:val")
    if n < 2:
        raise DataError("need at least 2 images")
    photos = prepare_photos(list(packaged_photos(split).values()))
    gen = torch.Generator().manual_seed(seed)
    crops = random_crops(photos, n, gen)
    if task.needs_mask:
        images, masks = procedural_scenes(n, gen, crops)
        return ImageSet(images, masks, f"packaged:{split} scenes (n={n}, seed={seed})")
    return ImageSet(crops, None, f"packaged:{split} crops (n={n}, seed={seed})")


def _masked_folder(folder: Path, task: Task) -> ImageSet:
    img_dir, mask_dir = folder / "images", folder / "masks"
    if img_dir.is_dir() and mask_dir.is_dir():
        masks_by_stem = {p.stem: p for p in list_images(mask_dir)}
        pairs = [(p, masks_by_stem[p.stem]) for p in list_images(img_dir) if p.stem in masks_by_stem]
        if not pairs:
            raise DataError(f"no image in {img_dir} has a mask of the same name in {mask_dir}")
        images = torch.stack([load_image(a) for a, _ in pairs])
        grey = torch.stack([load_image(b).mean(0, keepdim=True) for _, b in pairs])
        return ImageSet(images, (grey > 0.5).float(), f"{folder} (images + masks, {len(pairs)} pairs)")
    if any((folder / d).is_dir() for d in ("SegmentationClassAug", "SegmentationClass")):
        images, masks = load_voc_segmentation(folder)
        return ImageSet(images, masks, f"{folder} (VOC layout)")
    raise DataError(
        f"{task.name} needs foreground masks: give a folder with images/ and masks/, a VOC folder "
        f"(JPEGImages + SegmentationClass), or packaged:train"
    )


def make_queries(
    task: str | Task, images: Tensor, masks: Tensor | None, generator: torch.Generator, variant: str = "paper"
) -> tuple[Tensor, Tensor]:
    """Task inputs and targets for ``images`` [B,3,111,111] → (query_in, target), both [B,3,111,111]."""
    t = get_task(task)
    params = t.sample_params(images.shape[0], generator, images.device, variant)  # type: ignore[arg-type]
    return t.apply(images, params, masks, generator=generator)


def check_cells(images: Tensor) -> None:
    if images.ndim != 4 or images.shape[1:] != (3, CELL, CELL):
        raise DataError(f"expected images [N,3,{CELL},{CELL}], got {list(images.shape)}")
