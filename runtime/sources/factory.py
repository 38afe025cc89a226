"""Opening a source by URI: :func:`open_source` picks the capture class, and for
``sample:TASK`` generates the clip into a temporary folder that the source removes on close."""

from __future__ import annotations

import os
import shutil
import tempfile

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


def open_source(spec: SourceSpec | str | int) -> VideoSource:
    """Open a source (a :class:`SourceSpec` or a URI); raises :class:`SourceError`."""
    if not isinstance(spec, SourceSpec):
        spec = parse_source(spec)
    if spec.kind == "images":
        return ImageFolderSource(spec)
    if spec.kind != "sample":
        return CaptureSource(spec)
    try:
        from runtime.sample import make_sample_clip  # lazy: only sample: URIs need the generator
    except ImportError as e:
        raise SourceError(f"cannot make {spec.describe()}: the sample generator is unavailable ({e})") from None
    tmpdir = tempfile.mkdtemp(prefix="tvsample-")
    try:
        size = (spec.int_option("width", 640), spec.int_option("height", 480))
        _check_sample(spec, size)
        path = make_sample_clip(spec.location, os.path.join(tmpdir, f"{spec.location}.mp4"),
                                frames=spec.int_option("frames", 120), size=size)
        inner = parse_source(str(path))
        if inner.kind == "images":
            raise SourceError(f"cannot make {spec.describe()}: the generator returned a folder, expected a video file")
        return CaptureSource(SourceSpec("file", inner.location, spec.options, spec.uri), cleanup_dir=tmpdir)
    except SourceError:
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise
    except Exception as e:  # unknown task, codec missing, …
        shutil.rmtree(tmpdir, ignore_errors=True)
        raise SourceError(f"cannot make {spec.describe()}: {e}") from None

