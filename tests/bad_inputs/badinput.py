"""Helpers for the bad-input suite: hostile files made on the fly and the common assertions.

Every case asserts the product's contract for bad input and faults: a non-zero exit, exactly
one ``error: …`` line on stderr, no traceback, and nothing left behind (no output, no
hidden temporary file) unless the case keeps a playable partial recording on purpose.
"""

from __future__ import annotations

import errno
import json
import re
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
from click.testing import CliRunner


PROGRESS = re.compile(r"\d+%\|.*\|")


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_png(path: Path, side: int = 20000) -> Path:
    """A valid 1-bit grey PNG of side×side pixels (≈ side²/8 zero bytes, deflated to ~1/1000):
    20 000² is 400 MP — 1.2 GB as BGR uint8 once decoded."""
    row = b"\x00" + b"\x00" * ((side + 7) // 8)
    comp = zlib.compressobj(9)
    parts = [comp.compress(row * 1000) for _ in range(side // 1000)]
    parts.append(comp.compress(row * (side % 1000)))
    parts.append(comp.flush())
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(parts))
                     + png_chunk(b"IEND", b""))
    return path


def photo(h: int = 64, w: int = 80, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:h, 0:w]
    img = np.stack([xx * 255 // w, yy * 255 // h, (xx + yy) % 256], -1).astype(np.uint8)
    return np.clip(img.astype(int) + rng.integers(-10, 10, img.shape), 0, 255).astype(np.uint8)


def good_image(path: Path, h: int = 64, w: int = 80, seed: int = 0) -> Path:
    assert cv2.imwrite(str(path), photo(h, w, seed))
    return path


def truncated(path: Path, keep: float = 0.5, h: int = 96, w: int = 128) -> Path:
    """A PNG or JPEG (by suffix) cut to ``keep`` of its bytes."""
    good_image(path, h, w)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def snapshot(folder: Path) -> set[str]:
    return {str(p.relative_to(folder)) for p in Path(folder).rglob("*")}


def invoke(cmd, args: list[str], env: dict | None = None):
    return CliRunner().invoke(cmd, [str(a) for a in args], env=env)


def assert_one_line(result, code: int | None = None, *needles: str, any_code: bool = False) -> str:
    """Non-zero exit (``code`` when given), one ``error:`` line on stderr, no traceback."""
    out = result.stdout if hasattr(result, "stdout") else ""
    err = result.stderr
    assert result.exit_code != 0 if hasattr(result, "exit_code") else True
    got = result.exit_code if hasattr(result, "exit_code") else result.returncode
    assert got != 0, (out, err)
    if code is not None:
        assert got == code, (got, err, result.exception if hasattr(result, "exception") else None)
    # progress bars (tqdm, on stderr, redrawn with \r) are not messages; everything else is
    lines = [line for line in err.strip().splitlines() if line.strip() and not PROGRESS.search(line)]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: "), err
    assert "Traceback" not in err and "Traceback" not in out
    for n in needles:
        assert n.lower() in lines[0].lower(), (n, lines[0])
    return lines[0]


def assert_nothing_left(folder: Path, before: set[str] | None = None) -> None:
    now = snapshot(folder)
    extra = now - (before or set())
    assert not extra, f"left behind: {sorted(extra)}"


def enospc(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device", str(args[1]) if len(args) > 1 else None)


def rewrite_safetensors(path: Path, edit) -> None:
    """Rewrite a .safetensors file with ``edit(tensors)`` applied, keeping its metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    tensors = load_file(str(path))
    edit(tensors)
    save_file(tensors, str(path), metadata=meta)


def nan_model(folder: Path, name: str = "nan", config: str = "micro_pixel") -> Path:
    """A micro model whose weights hold one NaN, with a card whose fingerprint matches."""
    from safetensors.torch import save_file

    from taskvec.model.checkpoint import fingerprint, load_model

    model = load_model(f"random:{config}")
    sd = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    key = next(k for k in sd if k.endswith("weight") and sd[k].is_floating_point())
    sd[key].view(-1)[0] = float("nan")
    path = folder / f"{name}.safetensors"
    save_file(sd, str(path), metadata={"config": json.dumps(model.cfg.to_dict())})
    path.with_suffix(".json").write_text(json.dumps({"config": model.cfg.to_dict(), "fingerprint": fingerprint(sd)}))
    return path


def taskvector_file(folder: Path, task: str = "lowlight", name: str = "tv", edit=None) -> Path:
    """A random task vector for random:micro_pixel, optionally edited after saving."""
    from export.onnx_export import random_taskvector
    from taskvec.model.checkpoint import load_model

    tv = random_taskvector(load_model("random:micro_pixel"), task)
    path = folder / f"{name}.safetensors"
    tv.save(path)
    if edit is not None:
        rewrite_safetensors(path, edit)
    return path
