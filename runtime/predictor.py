"""Predictors: one full-resolution frame in, one frame out (STYLE §8).

The camera loop (``runtime.pipeline``) knows nothing about tasks; a predictor knows
nothing about cameras. Each predictor splits its work into ``preprocess`` (resize to the
graph's 111×111 cells), ``backend.infer`` and ``postprocess`` (carry the answer back to
full resolution), timed as separate stages when a :class:`~runtime.timing.StageTimer` is
passed to ``__call__``.

- :class:`LowLightEnhancer`: the graph sees the frame at 111×111; its correction comes back
  as a gain map ``(out+eps)/(in+eps)``, limited to the input's darkness, upsampled with a
  fast guided filter and multiplied into the full-resolution frame after a noise-aware
  denoise (modes and parameters: :mod:`runtime.lowlight`). ``tiles=(R, C)`` runs R·C
  overlapping tiles in one batch and blends their gain maps.
- :class:`Inpainter`: crops a square around the hole (with context), blacks the hole out
  (the model was trained on black holes), runs the graph and pastes back only the hole,
  feathered inwards. Outside the hole the output equals the input exactly.

Frames are HxWx3 uint8 BGR.
"""

from __future__ import annotations

import math
from contextlib import nullcontext
from dataclasses import dataclass

import cv2
import numpy as np

from export.spec import SPEC
from runtime.backends import Backend
from runtime.guided import fast_guided_upsample, reuse_buffer
from runtime.lowlight import (GAIN_MODES, GainMode, LowLightParams, TemporalFilter, denoise_and_gain, estimate_noise,
                              exposure_split, limit_lift)
from taskvec.errors import UserError

CELL = SPEC.height  # the graph's square cell (taskvec.geometry.CELL)


def _stage(timer, name: str):
    return timer.stage(name) if timer is not None else nullcontext()


def area_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """cv2.INTER_AREA resize to ``size`` (w, h), by an integer factor first when shrinking a
    lot: OpenCV's integer-factor area path is several times faster than the general one."""
    h, w = image.shape[:2]
    tw, th = size
    k = min(w // tw, h // th)
    if k >= 2:
        image = cv2.resize(image, (w // k, h // k), interpolation=cv2.INTER_AREA)
        h, w = image.shape[:2]
    if (w, h) == (tw, th):
        return image
    interp = cv2.INTER_AREA if (tw <= w and th <= h) else cv2.INTER_LINEAR
    return cv2.resize(image, (tw, th), interpolation=interp)


def luma(bgr: np.ndarray) -> np.ndarray:
    """uint8 or float BGR → float32 luma (ITU-R 601) in [0,1]."""
    grey = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
    if grey.dtype == np.uint8:
        return grey.astype(np.float32) * np.float32(1 / 255)
    return grey.astype(np.float32)


def parse_tiles(text: str | None) -> tuple[int, int]:
    """``"2x3"`` → (2, 3) rows × cols; None/"" → (1, 1)."""
    if not text:
        return (1, 1)
    parts = text.lower().replace("×", "x").split("x")
    try:
        r, c = (int(p) for p in parts)
    except ValueError:
        raise UserError(f"bad --tiles {text!r}: expected RxC, e.g. 2x2") from None
    if not (1 <= r <= 8 and 1 <= c <= 8):
        raise UserError(f"bad --tiles {text!r}: rows and columns must be 1..8")
    return r, c


def tile_boxes(w: int, h: int, rows: int, cols: int, overlap: float = 0.25) -> list[tuple[int, int, int, int]]:
    """Overlapping tiles (x0, y0, x1, y1) covering a w×h image, row-major."""

    def spans(n: int, size: int) -> list[tuple[int, int]]:
        if n == 1:
            return [(0, size)]
        t = size / (n - (n - 1) * overlap)  # tile length so n tiles with this overlap cover size
        step = t * (1 - overlap)
        out = []
        for i in range(n):
            a = int(round(i * step))
            b = size if i == n - 1 else min(size, int(round(i * step + t)))
            out.append((a, b))
        return out

    return [(x0, y0, x1, y1) for (y0, y1) in spans(rows, h) for (x0, x1) in spans(cols, w)]


def _tent(w: int, h: int) -> np.ndarray:
    """Blending weight for one tile: highest in the middle, small but positive at its edges."""
    wx = 1.0 - np.abs(np.linspace(-1, 1, w, dtype=np.float32)) * 0.95
    wy = 1.0 - np.abs(np.linspace(-1, 1, h, dtype=np.float32)) * 0.95
    return np.outer(wy, wx)


class Predictor:
    """Base: ``__call__(frame, timer=None) -> frame``, with ``preprocess``/``postprocess``."""

    stages = ("preprocess", "infer", "postprocess")

    def __init__(self, backend: Backend) -> None:
        self.backend = backend

    def preprocess(self, frame: np.ndarray):
        """→ (batch uint8 [N,111,111,3] or None to skip inference, context for postprocess)."""
        raise NotImplementedError

    def postprocess(self, frame: np.ndarray, out: np.ndarray | None, ctx) -> np.ndarray:
        raise NotImplementedError

    def __call__(self, frame: np.ndarray, timer=None) -> np.ndarray:
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3:
            raise ValueError(f"predictors take HxWx3 uint8 BGR frames, got {frame.dtype} {frame.shape}")
        with _stage(timer, "preprocess"):
            batch, ctx = self.preprocess(frame)
        out = None
        if batch is not None:
            with _stage(timer, "infer"):
                out = self.backend.infer(batch)
        with _stage(timer, "postprocess"):
            return self.postprocess(frame, out, ctx)


@dataclass
class _LowLightCtx:
    work: np.ndarray  # the frame at working resolution (uint8 BGR)
    cells: np.ndarray  # [N,111,111,3] what the graph saw
    boxes: list[tuple[int, int, int, int]]  # tiles at working resolution


class LowLightEnhancer(Predictor):
    """Full-resolution low-light enhancement: the graph's answer as a gain map (see
    :mod:`runtime.lowlight` for the modes and every parameter).

    ``gain = (out + eps) / (in + eps)`` at 111×111 (``gain_mode`` "luma": one gain for the
    three channels; "rgb": one per channel, so the graph's colour correction carries over),
    limited to the input's darkness (``denoise``/``temporal``), clipped to
    [1/max_gain, max_gain], Gaussian-smoothed (``sigma`` cell pixels), brought to a working
    resolution (≈ frame / k with k integer, ≥ 111 per tile side), snapped to the frame's
    edges with a fast guided filter (radius ``radius`` working pixels, ``gf_eps`` in luma²
    units) and multiplied into the full-resolution frame — denoised first, except in the
    ``gain`` mode.
    """

    def __init__(
        self,
        backend: Backend,
        tiles: tuple[int, int] = (1, 1),
        gain_mode: GainMode = "rgb",
        params: LowLightParams | None = None,
        sigma: float = 1.0,
        radius: int = 4,
        gf_eps: float = 1e-4,
    ) -> None:
        super().__init__(backend)
        if gain_mode not in GAIN_MODES:
            raise ValueError(f"gain_mode must be luma or rgb, got {gain_mode!r}")
        self.tiles = tiles
        self.gain_mode = gain_mode
        self.params = params if params is not None else LowLightParams()
        self.sigma = float(sigma)
        self.radius = int(radius)
        self.gf_eps = float(gf_eps)
        self.temporal = TemporalFilter(self.params.temporal_alpha, self.params.motion_k)
        self.last: dict[str, float] = {}  # per-frame diagnostics: noise σ (grey levels), W, t
        self._geom: tuple | None = None
        self._bufs: dict[str, np.ndarray] = {}  # full-resolution float buffers, reused per frame

    def _geometry(self, w: int, h: int):
        key = (w, h)
        if self._geom is None or self._geom[0] != key:
            rows, cols = self.tiles
            k = max(1, min(w // (CELL * cols), h // (CELL * rows)))
            ww, wh = w // k, h // k
            boxes = tile_boxes(ww, wh, rows, cols)
            weights = [_tent(x1 - x0, y1 - y0) for x0, y0, x1, y1 in boxes]
            total = np.zeros((wh, ww), np.float32)
            for (x0, y0, x1, y1), wt in zip(boxes, weights):
                total[y0:y1, x0:x1] += wt
            norm = [wt / total[y0:y1, x0:x1] for (x0, y0, x1, y1), wt in zip(boxes, weights)]
            self._geom = (key, (ww, wh), boxes, norm)
        return self._geom

    def preprocess(self, frame: np.ndarray):
        h, w = frame.shape[:2]
        _, (ww, wh), boxes, _ = self._geometry(w, h)
        work = area_resize(frame, (ww, wh))
        cells = np.stack([area_resize(work[y0:y1, x0:x1], (CELL, CELL)) for x0, y0, x1, y1 in boxes])
        return cells, _LowLightCtx(work, cells, boxes)

    def _cell_gain(self, cell_in: np.ndarray, cell_out: np.ndarray, expo: tuple[float, float] | None) -> np.ndarray:
        p = self.params
        a = cell_in.astype(np.float32)
        b = cell_out.astype(np.float32)
        if self.gain_mode == "luma":
            a = cv2.cvtColor(a, cv2.COLOR_BGR2GRAY)
            b = cv2.cvtColor(b, cv2.COLOR_BGR2GRAY)
        gain = (b + p.eps) / (a + p.eps)
        if expo is not None:
            gain = limit_lift(gain, *expo)
        np.clip(gain, 1.0 / p.max_gain, p.max_gain, out=gain)
        if self.sigma > 0:
            gain = cv2.GaussianBlur(gain, (0, 0), self.sigma)
        return gain

    def gain_map(self, ctx: _LowLightCtx, out: np.ndarray) -> np.ndarray:
        """The blended gain at working resolution: HxW (luma) or HxWx3 (rgb), float32."""
        wh, ww = ctx.work.shape[:2]
        _, _, boxes, norm = self._geom
        expo = None
        if self.params.mode != "gain":
            expo = exposure_split(ctx.cells, out, self.params)
            self.last.update(W=expo[0], t=expo[1])
        if len(boxes) == 1:
            g = self._cell_gain(ctx.cells[0], out[0], expo)
            return cv2.resize(g, (ww, wh), interpolation=cv2.INTER_LINEAR)
        shape = (wh, ww) if self.gain_mode == "luma" else (wh, ww, 3)
        gain = np.zeros(shape, np.float32)
        for (x0, y0, x1, y1), wt, cin, cout in zip(boxes, norm, ctx.cells, out):
            g = cv2.resize(self._cell_gain(cin, cout, expo), (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
            gain[y0:y1, x0:x1] += g * (wt if g.ndim == 2 else wt[..., None])
        return gain

    def postprocess(self, frame: np.ndarray, out: np.ndarray | None, ctx: _LowLightCtx) -> np.ndarray:
        if out is None:
            return frame
        p = self.params
        gain = self.gain_map(ctx, out)
        grey = luma(frame)
        guide_low = luma(ctx.work)
        if p.mode == "gain":  # the gain map on the raw frame, snapped to its full-resolution edges
            full = fast_guided_upsample(guide_low, gain, grey, self.radius, self.gf_eps, self._bufs)
            if full.ndim == 2:
                full = cv2.merge([full] * 3, dst=reuse_buffer(self._bufs, "g3", (*full.shape, 3)))
            return cv2.multiply(frame, full, dtype=cv2.CV_8U)
        sigma = estimate_noise(grey)
        self.last["noise"] = sigma * 255.0
        f = cv2.multiply(frame, 1.0 / 255.0, dst=reuse_buffer(self._bufs, "f", frame.shape), dtype=cv2.CV_32F)
        var: float | np.ndarray = sigma * sigma
        if p.mode == "temporal":
            f, v = self.temporal.update(f, sigma)
            var, grey = v * np.float32(sigma * sigma), cv2.cvtColor(f, cv2.COLOR_BGR2GRAY)

        def gain_at(half_grey: np.ndarray) -> np.ndarray:
            return fast_guided_upsample(guide_low, gain, half_grey, self.radius, self.gf_eps)

        return denoise_and_gain(f, grey, var, p, gain_at, self._bufs)


# ---------------------------------------------------------------------------------------
# In-painting


def parse_rect(text: str) -> tuple[int, int, int, int]:
    """``"x,y,w,h"`` → ints; w and h positive."""
    try:
        x, y, w, h = (int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        raise UserError(f"bad --mask-rect {text!r}: expected x,y,w,h in pixels, e.g. 200,150,80,60") from None
    if w <= 0 or h <= 0:
        raise UserError(f"bad --mask-rect {text!r}: width and height must be positive")
    return x, y, w, h


def rect_mask(rect: tuple[int, int, int, int], size: tuple[int, int]) -> np.ndarray:
    """uint8 HxW mask (255 = hole) of ``rect`` clipped to the frame ``size`` = (w, h)."""
    w, h = size
    x, y, rw, rh = rect
    x0, y0, x1, y1 = max(0, x), max(0, y), min(w, x + rw), min(h, y + rh)
    if x1 <= x0 or y1 <= y0:
        raise UserError(f"--mask-rect {x},{y},{rw},{rh} lies outside the {w}x{h} frame")
    mask = np.zeros((h, w), np.uint8)
    mask[y0:y1, x0:x1] = 255
    return mask


def read_mask(path: str) -> np.ndarray:
    """A mask image (white = hole) → uint8 HxW in {0, 255}."""
    from taskvec.data.imageio import decode_image

    try:
        mask = decode_image(path, grayscale=True)
    except UserError as e:
        raise UserError(f"cannot read mask {path}: {e}") from None
    return np.where(mask > 127, 255, 0).astype(np.uint8)


@dataclass
class _InpaintPlan:
    key: tuple
    crop: tuple[int, int, int, int]  # x0, y0, x1, y1 in the frame
    hole_cell: np.ndarray  # bool [111,111]: blacked out before inference
    hole: np.ndarray  # bool [ch,cw]: pixels replaced
    alpha: np.ndarray  # float32 [ch,cw,1] in [0,1], 0 outside the hole


class Inpainter(Predictor):
    """Fill the hole of ``mask`` (uint8 HxW, >127 = hole) in every frame.

    The crop is a square of side ``context`` × the hole's longer side (at least
    ``min_crop`` px), centred on the hole, shifted and clamped into the frame. The answer is
    pasted with ``alpha = min(1, distance-to-the-hole's-edge / feather)``, so the seam is soft
    inside the hole and nothing outside changes. ``mask`` may be replaced at any time
    (``set_mask``), e.g. while the user draws; a mask of another size is resized (nearest).
    An empty mask passes frames through without inference.
    """

    def __init__(
        self,
        backend: Backend,
        mask: np.ndarray | None = None,
        rect: tuple[int, int, int, int] | None = None,
        context: float = 3.0,
        min_crop: int = 64,
        feather: float = 4.0,
    ) -> None:
        super().__init__(backend)
        self.mask = mask
        self.rect = rect
        self.context = float(context)
        self.min_crop = int(min_crop)
        self.feather = float(feather)
        self.version = 0
        self._plan: _InpaintPlan | None = None

    def set_mask(self, mask: np.ndarray | None) -> None:
        self.mask = mask
        self.version += 1

    def frame_mask(self, w: int, h: int) -> np.ndarray | None:
        if self.mask is None and self.rect is not None:
            self.mask = rect_mask(self.rect, (w, h))
        if self.mask is None:
            return None
        if self.mask.shape[:2] != (h, w):
            self.mask = cv2.resize(self.mask, (w, h), interpolation=cv2.INTER_NEAREST)
        return self.mask

    def plan(self, w: int, h: int) -> _InpaintPlan | None:
        mask = self.frame_mask(w, h)
        if mask is None:
            return None
        key = (w, h, id(mask), self.version)
        if self._plan is not None and self._plan.key == key:
            return self._plan
        hole_full = mask > 127
        pts = cv2.findNonZero(hole_full.astype(np.uint8))
        if pts is None:
            self._plan = None
            return None
        bx, by, bw, bh = cv2.boundingRect(pts)
        side = max(self.min_crop, int(math.ceil(max(bw, bh) * self.context)))
        cw, ch = min(w, max(side, bw)), min(h, max(side, bh))
        cx, cy = bx + bw / 2, by + bh / 2
        x0 = int(min(max(0, round(cx - cw / 2)), w - cw))
        y0 = int(min(max(0, round(cy - ch / 2)), h - ch))
        x1, y1 = x0 + cw, y0 + ch
        hole = hole_full[y0:y1, x0:x1]
        hole_u8 = hole.astype(np.uint8) * 255
        hole_cell = cv2.resize(hole_u8, (CELL, CELL), interpolation=cv2.INTER_AREA) > 0
        dist = cv2.distanceTransform(hole_u8, cv2.DIST_L2, 3)
        feather = min(self.feather, max(1.0, float(dist.max()) / 2))
        alpha = np.clip(dist / feather, 0.0, 1.0).astype(np.float32)
        alpha[~hole] = 0.0
        self._plan = _InpaintPlan(key, (x0, y0, x1, y1), hole_cell, hole, alpha[..., None])
        return self._plan

    def preprocess(self, frame: np.ndarray):
        h, w = frame.shape[:2]
        plan = self.plan(w, h)
        if plan is None:
            return None, None
        x0, y0, x1, y1 = plan.crop
        cell = area_resize(frame[y0:y1, x0:x1], (CELL, CELL))
        cell[plan.hole_cell] = 0  # the model was trained on black holes
        return cell[None], plan

    def postprocess(self, frame: np.ndarray, out: np.ndarray | None, plan: _InpaintPlan | None) -> np.ndarray:
        if out is None or plan is None:
            return frame
        x0, y0, x1, y1 = plan.crop
        crop = frame[y0:y1, x0:x1]
        fill = cv2.resize(out[0], (x1 - x0, y1 - y0), interpolation=cv2.INTER_CUBIC)
        blend = crop.astype(np.float32) * (1.0 - plan.alpha) + fill.astype(np.float32) * plan.alpha
        blend = np.clip(blend + 0.5, 0, 255).astype(np.uint8)
        result = frame.copy()
        result[y0:y1, x0:x1] = np.where(plan.hole[..., None], blend, crop)
        return result


class WholeFrame(Predictor):
    """A pairs task's filter (``--task pairs:DIR``): the frame resized (area) to the graph's
    cell, the answer resized (bicubic) back to the frame's size. Nothing task-specific is
    assumed of an unknown task, so nothing is carried at full resolution."""

    def preprocess(self, frame: np.ndarray):
        return area_resize(frame, (CELL, CELL))[None], frame.shape[:2]

    def postprocess(self, frame: np.ndarray, out: np.ndarray | None, ctx) -> np.ndarray:
        h, w = ctx
        return cv2.resize(out[0], (w, h), interpolation=cv2.INTER_CUBIC)


def make_predictor(task: str, backend: Backend, *, tiles: tuple[int, int] = (1, 1),
                   mask: np.ndarray | None = None, rect: tuple[int, int, int, int] | None = None,
                   gain_mode: GainMode = "rgb", lowlight: LowLightParams | None = None) -> Predictor:
    """The predictor for ``task`` (lowlight or inpainting); ``lowlight``: the transfer's
    parameters (default :class:`~runtime.lowlight.LowLightParams`, the ``denoise`` mode)."""
    if task == "lowlight":
        return LowLightEnhancer(backend, tiles=tiles, gain_mode=gain_mode, params=lowlight)
    if task == "inpainting":
        return Inpainter(backend, mask=mask, rect=rect)
    from taskvec.data.pairs import registered_pairs_task

    if registered_pairs_task(task) is not None:
        return WholeFrame(backend)
    raise UserError(f"tvrun has no predictor for task {task!r}; choose {', '.join(PREDICTORS)} or pairs:DIR")


PREDICTORS: dict[str, type[Predictor]] = {"lowlight": LowLightEnhancer, "inpainting": Inpainter}
"""The built-in tasks tvrun can run, each with its predictor (feeds ``tvrun --task``'s
choices); a pairs task (``pairs:DIR``, registered when resolved) runs through
:class:`WholeFrame`."""
