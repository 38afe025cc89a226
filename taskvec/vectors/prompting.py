"""Answering a query image: one-shot visual prompting or the patched zero-shot model."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from torch import Tensor

from taskvec import geometry as G
from taskvec.errors import UserError, atomic_path
from taskvec.model.mae_vqgan import MaeVQGAN
from taskvec.data.tasks import build_canvases, get_task

BUILTIN_EXAMPLE_PHOTO = "astronaut"


def builtin_example(task: str, seed: int = 0) -> tuple[Tensor, Tensor]:
    """A fixed example pair for ``task`` → (example_in, example_out), each [1,3,111,111] in [0,1].
    A pairs task's example is its first train pair by name (:func:`pairs_example`)."""
    from taskvec.data.images import packaged_photos, random_crops
    from taskvec.data.pairs import PairsTask
    from taskvec.data.scenes import procedural_scenes

    t = get_task(task)
    if isinstance(t, PairsTask):
        return pairs_example(t)[1:]

    gen = torch.Generator().manual_seed(seed)
    photos = packaged_photos("train")
    photo = photos[BUILTIN_EXAMPLE_PHOTO] if BUILTIN_EXAMPLE_PHOTO in photos else next(iter(photos.values()))
    img = random_crops([photo], 1, gen, scale=(0.6, 1.0))
    masks = None
    if get_task(task).needs_mask:
        img, masks = procedural_scenes(1, gen, img)
    canvas, _, _ = build_canvases(task, img, img, gen, "paper", masks, masks)
    return G.get_cell(canvas, "example_in"), G.get_cell(canvas, "example_out")


def pairs_example(task, name: str | None = None) -> tuple[str, Tensor, Tensor]:
    """(name, input, target) of a pairs task's example pair: ``name``, or its first train pair
    (its only pair when it has one); images [1,3,111,111] in [0,1]."""
    if name is None:
        train = task.split_index("train")
        i = train[0] if train else 0
    elif name in task.names:
        i = task.names.index(name)
    else:
        raise UserError(f"{task.label} has no pair named {name!r} (e.g. {task.names[0]!r})")
    _, target = task.apply(task.inputs[i : i + 1], {}, task.targets[i : i + 1])
    return task.names[i], task.inputs[i : i + 1].clone(), target


@torch.no_grad()
def one_shot(model: MaeVQGAN, example_in: Tensor, example_out: Tensor, query: Tensor) -> tuple[Tensor, Tensor]:
    """In-context answer for [B,3,H,W] images in [0,1] → (answer [B,3,111,111], canvas [B,3,224,224])."""
    canvas = G.make_canvas(example_in, example_out, query)
    dev = next(model.parameters()).device
    answer = model(G.normalize(canvas.to(dev)), G.get_layout("in-context")).answer.cpu()
    rows, cols = G.cell_slice("answer")
    canvas[:, :, rows, cols] = answer
    return answer, canvas


@torch.no_grad()
def zero_shot(model: MaeVQGAN, query: Tensor, patches=None) -> tuple[Tensor, Tensor]:
    """Zero-shot answer (optionally patched with a task vector) → (answer, canvas)."""
    canvas = G.make_canvas(None, None, query)
    dev = next(model.parameters()).device
    answer = model(G.normalize(canvas.to(dev)), G.get_layout("zero-shot"), patches=patches).answer.cpu()
    rows, cols = G.cell_slice("answer")
    canvas[:, :, rows, cols] = answer
    return answer, canvas


def write_rgb(img: Tensor, path: str | Path) -> None:
    """[1,3,H,W] or [3,H,W] in [0,1] → PNG/JPEG, written atomically."""
    arr = img.reshape(-1, *img.shape[-3:])[0].clamp(0, 1).permute(1, 2, 0).numpy()
    bgr = np.ascontiguousarray((arr * 255 + 0.5).astype(np.uint8)[:, :, ::-1])
    path = Path(path)
    if path.suffix.lower() not in (".png", ".jpg", ".jpeg", ".bmp"):
        raise UserError(f"{path}: output must be .png, .jpg or .bmp")
    with atomic_path(path) as tmp:
        if not cv2.imwrite(str(tmp), bgr):
            raise UserError(f"cannot write {path}")


def run_prompt(task, query, out, example_in=None, example_out=None, canvas_out=None, use_zero_shot=False,
               taskvec_file=None, seed=0, model_spec="tiny", fit: str = "letterbox",
               answer_size: str = "cell") -> Tensor:
    """The ``taskvec prompt`` command as a function. Returns the answer as written:
    [1,3,111,111] (``answer_size="cell"``) or at the query's resolution (``"query"``:
    :meth:`taskvec.data.fit.Placement.restore`). ``fit`` places every image (query and
    examples) in its cell: letterbox (default), crop or squash.

    The task (model, fingerprint, task vector for ``use_zero_shot``) is resolved once; the
    VQ head decodes the answer as the reference MAE-VQGAN does (the full grid, cropped)."""
    from taskvec.data.fit import FITS, fit_image
    from taskvec.data.images import load_image
    from taskvec.vectors.resolved import resolve_task

    task = get_task(task).name  # pairs:DIR → its registry name
    if fit not in FITS:
        raise UserError(f"unknown --fit {fit!r}; choose from {', '.join(FITS)}")
    if answer_size not in ("cell", "query"):
        raise UserError(f"unknown --answer-size {answer_size!r}; choose cell or query")

    def read(path):
        try:
            img = load_image(path, size=None)
        except Exception as e:  # DataError and friends carry a one-line message
            raise UserError(str(e)) from None
        return fit_image(img, fit)

    q, place = read(query)
    if (example_in is None) != (example_out is None):
        raise UserError("give both --example-in and --example-out, or neither")
    deployed = resolve_task(task, model_spec, taskvec_file, with_taskvector=use_zero_shot)
    if use_zero_shot:
        answer, canvas = zero_shot(deployed.model, q, deployed.patches())
    else:
        if example_in is not None:
            ex_in, ex_out = read(example_in)[0], read(example_out)[0]
        else:
            ex_in, ex_out = builtin_example(task, seed)
        answer, canvas = one_shot(deployed.model, ex_in, ex_out, q)
    if answer_size == "query":
        answer = place.restore(answer)
    write_rgb(answer, out)
    if canvas_out:
        write_rgb(canvas, canvas_out)
    return answer
