"""Opening a source by URI: :func:`open_source` picks the capture class, and for
``sample:TASK`` takes the generated clip from the runtime cache."""

from __future__ import annotations

import os

from runtime.sources.capture import CaptureSource, ImageFolderSource, VideoSource
from runtime.sources.uri import SourceError, SourceSpec, parse_source


def _check_sample(spec: SourceSpec, size: tuple[int, int]) -> None:
    from taskvec.errors import UserError
    from taskvec.data.imageio import check_frame_size

    if spec.int_option("frames", 120) <= 0:
        raise SourceError(f"bad option frames={spec.option('frames')} in {spec.uri}: expected a positive count")
    try:
        check_frame_size(size[0], size[1], spec.describe())
    except UserError as e:
        raise SourceError(str(e)) from None


def open_source(spec: SourceSpec | str | int, cache_dir: str | os.PathLike[str] | None = None) -> VideoSource:
    """Open a source (a :class:`SourceSpec` or a URI); raises :class:`SourceError`.

    ``sample:TASK`` clips come from the runtime cache (``cache_dir``, default
    ``~/.cache/taskvec``): made on first use, reused while their content hash matches."""
    if not isinstance(spec, SourceSpec):
        spec = parse_source(spec)
    if spec.kind == "images":
        return ImageFolderSource(spec)
    if spec.kind != "sample":
        return CaptureSource(spec)
    try:
        from runtime.sample import cached_sample_clip  # lazy: only sample: URIs need the generator
    except ImportError as e:
        raise SourceError(f"cannot make {spec.describe()}: the sample generator is unavailable ({e})") from None
    try:
        size = (spec.int_option("width", 640), spec.int_option("height", 480))
        _check_sample(spec, size)
        path, _ = cached_sample_clip(spec.location, frames=spec.int_option("frames", 120), size=size,
                                     cache_dir=cache_dir)
        return CaptureSource(SourceSpec("file", str(path), spec.options, spec.uri))
    except SourceError:
        raise
    except Exception as e:  # unknown task, codec missing, unwritable cache, …
        raise SourceError(f"cannot make {spec.describe()}: {e}") from None

