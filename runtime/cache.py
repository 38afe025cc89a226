"""The runtime's cache folder: exported graphs, demo clips, ONNX Runtime engine and timing caches.

    ~/.cache/taskvec/            (``$XDG_CACHE_HOME/taskvec``, or ``--cache-dir DIR``)
        <model>-<fp16>[-tv<digest>]/<task>/<task>.onnx    graphs exported on first use (runtime.cli)
        samples/<task>-<key16>/<task>.mp4 + sample.json   demo clips (runtime.sample)
        ort-trt/                                          ORT TensorRT provider engines + timing cache

Everything in it can be deleted at any time; it is rebuilt on the next run.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$XDG_CACHE_HOME/taskvec`` or ``~/.cache/taskvec`` (not created here)."""
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "taskvec"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """``cache_dir`` (``~`` expanded) when given, else :func:`default_cache_dir`."""
    return Path(cache_dir).expanduser() if cache_dir else default_cache_dir()


def file_digest(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()
