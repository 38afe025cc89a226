"""Per-sample metrics on the answer cell (DESIGN §4).

Every metric takes ``pred`` and ``target`` [B,3,H,W] in [0,1] and returns a [B]
tensor (float32, on the inputs' device, except :func:`ssim` which runs in
scikit-image on the CPU and returns its result on the inputs' device).
"""

from __future__ import annotations

import numpy as np
import torch
from skimage.metrics import structural_similarity
from torch import Tensor

from taskvec.geometry import normalize
from taskvec.data.tasks import get_task

# PSNR of identical images would be infinite; MSE is floored so it caps at 100 dB.
MSE_FLOOR = 1e-10


def _foreground(x: Tensor) -> Tensor:
    """Round each pixel's grey (channel mean) to black/white → bool [B,H,W], True = white."""
    return x.float().mean(dim=1) > 0.5


def iou(pred: Tensor, target: Tensor) -> Tensor:
    """Foreground IoU after rounding each pixel to black/white; 1 when both are empty."""
    p, t = _foreground(pred).flatten(1), _foreground(target).flatten(1)
    inter = (p & t).sum(1).float()
    union = (p | t).sum(1).float()
    return torch.where(union > 0, inter / union.clamp_min(1), torch.ones_like(union))


def _psnr_from_mse(mse: Tensor, data_range: float) -> Tensor:
    return 10 * torch.log10(data_range**2 / mse.clamp_min(MSE_FLOOR))


def psnr(pred: Tensor, target: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR in dB per sample (capped at 100 dB for identical images)."""
    mse = ((pred.float() - target.float()) ** 2).flatten(1).mean(1)
    return _psnr_from_mse(mse, data_range)


def mse_normalized(pred: Tensor, target: Tensor) -> Tensor:
    """MSE in ImageNet-normalised space (the paper's MSE)."""
    d = normalize(pred.float()) - normalize(target.float())
    return (d**2).flatten(1).mean(1)


def ssim(pred: Tensor, target: Tensor) -> Tensor:
    """SSIM per sample via ``skimage.metrics.structural_similarity`` (data_range 1)."""
    p = pred.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)
    t = target.detach().float().clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy().astype(np.float64)
    vals = [structural_similarity(a, b, channel_axis=-1, data_range=1.0) for a, b in zip(p, t)]
    return torch.tensor(vals, dtype=torch.float32, device=pred.device)


def hole_psnr(pred: Tensor, target: Tensor, hole: Tensor, data_range: float = 1.0) -> Tensor:
    """PSNR over the hole pixels only (hole [B,1,H,W] in {0,1}); NaN for an empty hole."""
    h = hole.float().expand_as(pred)
    se = ((pred.float() - target.float()) ** 2 * h).flatten(1).sum(1)
    n = h.flatten(1).sum(1)
    out = _psnr_from_mse(se / n.clamp_min(1), data_range)
    return torch.where(n > 0, out, torch.full_like(out, float("nan")))


def changed_pixels(query: Tensor, target: Tensor) -> Tensor:
    """Pixels the task changes, [B,1,H,W] in {0,1}: where the target differs from the query input."""
    return ((query.float() - target.float()).abs().amax(dim=1, keepdim=True) > 1e-3).float()


def compute_metrics(task_name: str, pred: Tensor, target: Tensor, hole: Tensor | None = None) -> dict[str, float]:
    """Batch means: {"iou","mse"} for IoU tasks (segmentation), else {"psnr","ssim","mse"}.

    With ``hole`` [B,1,H,W] (in-painting) also ``hole_psnr`` — PSNR over the hole pixels,
    the in-painting itself — and ``pasted_ssim``, the SSIM of the cell once the answer's
    hole is pasted into the query's known pixels (what ``tvrun`` shows)."""
    mse = mse_normalized(pred, target).mean().item()
    if get_task(task_name).metric == "iou":
        return {"iou": iou(pred, target).mean().item(), "mse": mse}
    out = {"psnr": psnr(pred, target).mean().item(), "ssim": ssim(pred, target).mean().item(), "mse": mse}
    if hole is not None:
        out["hole_psnr"] = hole_psnr(pred, target, hole).nanmean().item()
        out["pasted_ssim"] = ssim(paste_hole(pred, target, hole), target).mean().item()
    return out


def paste_hole(pred: Tensor, target: Tensor, hole: Tensor) -> Tensor:
    """``pred`` inside the hole, ``target`` (the known pixels) outside it."""
    return torch.where(hole.to(pred.device).bool().expand_as(pred), pred, target.to(pred.dtype))
