"""Box-filter guided filter (He, Sun & Tang) and its fast "coefficients at low resolution" form.

opencv-python has no ``cv2.ximgproc``, so this is the small O(1)-per-pixel version built on
``cv2.boxFilter``. Images are float32; the guide ``I`` is one channel (HxW), the filtered
input ``p`` is HxW or HxWxC (each channel filtered with the same guide).
"""

from __future__ import annotations

import cv2
import numpy as np


def box(x: np.ndarray, r: int) -> np.ndarray:
    """Mean over a (2r+1)² window, borders reflected (float32 in, float32 out)."""
    return cv2.boxFilter(x, -1, (2 * r + 1, 2 * r + 1), normalize=True, borderType=cv2.BORDER_REFLECT)


def _expand(guide: np.ndarray, p: np.ndarray) -> np.ndarray:
    return guide[..., None] if p.ndim == 3 else guide


def guided_coefficients(guide: np.ndarray, p: np.ndarray, r: int, eps) -> tuple[np.ndarray, np.ndarray]:
    """Window-averaged linear coefficients (A, B) with ``q = A·I + B`` (shapes of ``p``);
    ``eps``: a scalar or an HxW map (per-pixel regularisation)."""
    if guide.ndim != 2:
        raise ValueError(f"the guide must be one channel HxW, got shape {guide.shape}")
    if p.shape[:2] != guide.shape:
        raise ValueError(f"guide {guide.shape} and input {p.shape[:2]} differ in size")
    guide = guide.astype(np.float32, copy=False)
    p = p.astype(np.float32, copy=False)
    mean_i = box(guide, r)
    var_i = cv2.subtract(box(cv2.multiply(guide, guide), r), cv2.multiply(mean_i, mean_i))
    var_i = cv2.add(var_i, eps if np.ndim(eps) == 0 else np.asarray(eps, np.float32))
    if p.ndim == 3:  # cv2 arithmetic on HxWxC: numpy broadcasting is several times slower
        c = p.shape[2]
        gi, mi, vi = (cv2.merge([x] * c) for x in (guide, mean_i, var_i))
    else:
        gi, mi, vi = guide, mean_i, var_i
    mean_p = box(p, r)
    cov_ip = cv2.subtract(box(cv2.multiply(gi, p), r), cv2.multiply(mi, mean_p))
    a = cv2.divide(cov_ip, vi)
    b = cv2.subtract(mean_p, cv2.multiply(a, mi))
    return box(a, r), box(b, r)


def guided_filter(guide: np.ndarray, p: np.ndarray, r: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of ``p`` following the edges of ``guide`` (same size)."""
    a, b = guided_coefficients(guide, p, r, eps)
    return a * _expand(guide.astype(np.float32, copy=False), p) + b


def reuse_buffer(bufs: dict | None, name: str, shape: tuple[int, ...]) -> np.ndarray | None:
    """An HxW(xC) float32 array kept in ``bufs[name]`` (None when ``bufs`` is None)."""
    if bufs is None:
        return None
    buf = bufs.get(name)
    if buf is None or buf.shape != shape:
        buf = bufs[name] = np.empty(shape, np.float32)
    return buf


def fast_guided_upsample(
    guide_low: np.ndarray,
    p_low: np.ndarray,
    guide_full: np.ndarray,
    r: int,
    eps: float,
    bufs: dict | None = None,
) -> np.ndarray:
    """Fast guided filter: coefficients at low resolution, applied at full resolution.

    ``guide_low``/``p_low`` share a low resolution; ``guide_full`` is the HxW guide at the
    output resolution (same value range as ``guide_low``). Returns ``p`` upsampled to HxW
    (and C channels if ``p_low`` has them) with its edges snapped to ``guide_full``'s.

    ``bufs``: a dict kept by the caller between frames; the full-resolution arrays are
    reused from it (fresh multi-megabyte arrays cost page faults on every frame, which
    measured 3–4× the arithmetic). The returned array then lives in ``bufs``."""
    a, b = guided_coefficients(guide_low, p_low, r, eps)
    h, w = guide_full.shape[:2]
    shape = (h, w, a.shape[2]) if a.ndim == 3 else (h, w)
    big_a = cv2.resize(a, (w, h), dst=reuse_buffer(bufs, "a", shape), interpolation=cv2.INTER_LINEAR)
    big_b = cv2.resize(b, (w, h), dst=reuse_buffer(bufs, "b", shape), interpolation=cv2.INTER_LINEAR)
    g = guide_full.astype(np.float32, copy=False)
    if a.ndim == 3:  # cv2 arithmetic: numpy broadcasting over HxWx3 is several times slower
        g = cv2.merge([g] * a.shape[2], dst=reuse_buffer(bufs, "g", shape))
    cv2.multiply(big_a, g, dst=big_a)
    return cv2.add(big_a, big_b, dst=big_a)
