"""Bounded image decoding: every image and video frame the product reads goes through here.

A 1 MB PNG can decode to 20 000 × 20 000 pixels (a decompression bomb: 1.2 GB as uint8 BGR,
16 GB once a float copy is made). So the header is read first (Pillow, no pixel data) and
the image is refused when it has more than :func:`max_pixels` pixels, or when the file is
larger than 8 bytes per allowed pixel. A truncated PNG or JPEG is refused, not half-decoded.
The limit is raised with ``--max-pixels MP`` on any command or ``TASKVEC_MAX_PIXELS``.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np

from taskvec.errors import UserError

DEFAULT_MAX_PIXELS = 40_000_000  # 40 MP: above 8K UHD (33 MP), below what costs > 1 GB to hold as float
ENV = "TASKVEC_MAX_PIXELS"
BYTES_PER_PIXEL = 8  # file-size bound: uncompressed 16-bit RGBA
_override: int | None = None


class ImageLimitError(UserError):
    """An image or frame above the pixel or file-size limit."""


def set_max_megapixels(mp: float | None) -> None:
    """Raise (or lower) the limit for this process; None restores the default/env value."""
    global _override
    _override = None if mp is None else max(1, int(mp * 1e6))


def max_pixels() -> int:
    if _override is not None:
        return _override
    env = os.environ.get(ENV, "").strip()
    if env:
        try:
            return max(1, int(float(env) * 1e6))
        except ValueError:
            raise UserError(f"bad {ENV}={env!r}: expected megapixels, e.g. 100") from None
    return DEFAULT_MAX_PIXELS


def max_file_bytes() -> int:
    return BYTES_PER_PIXEL * max_pixels() + (1 << 20)


def _limit_hint() -> str:
    return f"the limit is {max_pixels() / 1e6:g} MP; raise it with --max-pixels MP (or {ENV})"


def check_frame_size(width: int, height: int, where: str) -> None:
    """Refuse a frame of ``width``×``height`` above the pixel limit (or not positive)."""
    if width <= 0 or height <= 0:
        raise UserError(f"{where}: bad frame size {width}x{height}")
    if width * height > max_pixels():
        raise ImageLimitError(f"{where}: {width}x{height} is {width * height / 1e6:.1f} MP; {_limit_hint()}")


def _header(data: bytes, path: Path) -> tuple[str, int, int]:
    """(format, width, height) from the header, without decoding pixels; checks PNG chunks."""
    from PIL import Image

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            old, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None  # our own limit applies
            try:
                im = Image.open(io.BytesIO(data))
                fmt, (w, h) = im.format or "", im.size
                if fmt == "PNG":
                    im.verify()  # reads every chunk and its CRC: a truncated file fails here
            finally:
                Image.MAX_IMAGE_PIXELS = old
    except Exception as e:  # noqa: BLE001 — unknown format, broken header, truncated PNG
        why = "truncated or corrupt" if isinstance(e, (SyntaxError, OSError, EOFError)) and data[:8] == b"\x89PNG\r\n\x1a\n" else "not a readable image"
        raise UserError(f"cannot read image {path}: {why} ({type(e).__name__})") from None
    return fmt, int(w), int(h)


def _jpeg_complete(data: bytes) -> bool:
    return data.rstrip(b"\x00\r\n\t ").endswith(b"\xff\xd9")


def decode_image(path: str | os.PathLike, grayscale: bool = False) -> np.ndarray:
    """Read an image file → HxWx3 uint8 BGR (or HxW uint8 with ``grayscale``), bounded.

    Raises :class:`UserError` (one line naming the file) when it is missing, too large,
    truncated or not an image."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise UserError(f"image {path} does not exist")
    size = path.stat().st_size
    if size > max_file_bytes():
        raise ImageLimitError(f"image {path} is {size / 2**20:.0f} MiB; {_limit_hint()}")
    data = path.read_bytes()
    fmt, w, h = _header(data, path)
    check_frame_size(w, h, f"image {path}")
    if fmt in ("JPEG", "MPO") and not _jpeg_complete(data):
        raise UserError(f"cannot read image {path}: truncated JPEG (no end marker)")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
    if image is None or image.size == 0:
        raise UserError(f"cannot read image {path}: unreadable or corrupt")
    return image
