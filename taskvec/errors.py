"""One exception type for bad input, and the error boundary that turns any failure into one line.

Every command of the product (``taskvec``, ``tvexport``, ``tvrun``, ``tvbench``) ends with
``error: <one line>`` on stderr and a non-zero exit — never a traceback:

- exit 2: bad input — :class:`UserError`, argument errors, a missing/unreadable/existing
  file, a corrupt artifact (safetensors, ONNX, OpenCV, pickle, ONNX Runtime load errors);
- exit 1: a fault while working — a full disk, an I/O error, out of memory, a bug;
- exit 130: Ctrl-C or SIGTERM (handled the same way: outputs are finalised or removed).

``--debug`` on any command (or ``TASKVEC_DEBUG=1``) prints the traceback before the line.
"""

from __future__ import annotations

import errno
import functools
import os
import signal
import sys
import tempfile
import threading
import traceback
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, Sequence, TypeVar

import click

F = TypeVar("F", bound=Callable)
DEBUG_ENV = "TASKVEC_DEBUG"
_debug_flag = False

# library exceptions that mean "this input file is bad" (exit 2), by module prefix
_INPUT_LIBRARIES = ("safetensors", "onnx", "onnxruntime", "cv2", "google.protobuf", "PIL", "_pickle", "pickle")


class UserError(Exception):
    """Bad input from the user: a missing file, an unknown name, a corrupt artifact."""


def one_line(exc: BaseException | str) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def debug_enabled() -> bool:
    return _debug_flag or os.environ.get(DEBUG_ENV, "").strip().lower() not in ("", "0", "false", "no")


def _os_message(e: OSError) -> str:
    what = e.strerror or one_line(e)
    name = e.filename if e.filename is not None else None
    if name is not None and e.filename2 is not None:
        return f"{name} → {e.filename2}: {what}"
    return f"{name}: {what}" if name is not None else what


def classify(exc: BaseException) -> tuple[str, int]:
    """(one-line message without ``error:``, exit status) for any exception."""
    if isinstance(exc, click.ClickException):
        return one_line(exc.format_message()), exc.exit_code
    if isinstance(exc, (UserError, ValueError, click.exceptions.BadParameter)):
        return one_line(exc), 2
    if isinstance(exc, (FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, FileExistsError)):
        return _os_message(exc), 2
    if isinstance(exc, OSError):
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return f"disk full: {_os_message(exc)}", 1
        return _os_message(exc), 1
    if isinstance(exc, MemoryError):
        return "out of memory", 1
    module = type(exc).__module__ or ""
    if module.split(".")[0] in _INPUT_LIBRARIES or isinstance(exc, EOFError):
        lib = module.split(".")[0].lstrip("_")
        text = str(exc).strip().splitlines()
        detail = next((line for line in reversed(text) if line.strip()), type(exc).__name__)
        return one_line(f"{lib} {type(exc).__name__}: {detail}"), 2
    return one_line(f"internal error ({type(exc).__name__}: {one_line(exc)}); rerun with --debug for the traceback"), 1


def report(exc: BaseException) -> int:
    """Print ``error: …`` (and the traceback under --debug); return the exit status."""
    msg, code = classify(exc)
    if debug_enabled():
        traceback.print_exception(type(exc), exc, exc.__traceback__, file=sys.stderr)
    print(f"error: {msg}", file=sys.stderr)
    return code


def cli_errors(fn: F) -> F:
    """Decorate a click command: every error ends as ``error: …`` and a non-zero exit."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except click.exceptions.Exit:
            raise
        except Exception as e:  # noqa: BLE001 — the boundary: one line for anything
            sys.exit(report(e))

    return wrapper  # type: ignore[return-value]


def _set_debug(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    global _debug_flag
    if value:
        _debug_flag = True
    return value


def _set_max_pixels(ctx: click.Context, param: click.Parameter, value: float | None) -> float | None:
    if value is not None:
        from taskvec.data.imageio import set_max_megapixels

        set_max_megapixels(value)
    return value


def common_options() -> list[click.Option]:
    """``--debug`` and ``--max-pixels``, added to every command (not passed to the callback)."""
    return [
        click.Option(["--debug"], is_flag=True, expose_value=False, is_eager=True, callback=_set_debug,
                     help=f"on an error, print the traceback too (or set {DEBUG_ENV}=1)"),
        click.Option(["--max-pixels"], type=click.FloatRange(0, min_open=True), default=None, expose_value=False,
                     is_eager=True, callback=_set_max_pixels, metavar="MP",
                     help="largest image or video frame to decode, in megapixels (default 40; "
                          "also TASKVEC_MAX_PIXELS); files above 8 bytes per pixel are refused too"),
    ]


class CommonOptionsCommand(click.Command):
    """A click command with the product's common options (``--debug``, ``--max-pixels``)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(common_options())


def _sigterm_as_interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


class _OneLineMain:
    """Mixin for click commands: the error boundary around the whole command.

    Usage errors and every exception end as one ``error: …`` line (see :func:`classify`);
    SIGTERM is handled like Ctrl-C while the command runs."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        global _debug_flag
        old = None
        if threading.current_thread() is threading.main_thread():
            old = signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)  # type: ignore[misc]
        except click.exceptions.Exit as e:
            sys.exit(e.exit_code)
        except (click.exceptions.Abort, KeyboardInterrupt):
            print("interrupted", file=sys.stderr)
            sys.exit(130)
        except Exception as e:  # noqa: BLE001 — the boundary
            sys.exit(report(e))
        finally:
            _debug_flag = False  # per invocation (tests and embedders call main repeatedly)
            if "taskvec.data.imageio" in sys.modules:
                sys.modules["taskvec.data.imageio"].set_max_megapixels(None)
            if old is not None:
                signal.signal(signal.SIGTERM, old)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


class OneLineGroup(_OneLineMain, click.Group):
    """A click group with the error boundary; its commands get the common options."""

    command_class = CommonOptionsCommand

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.params.extend(common_options())


class OneLineCommand(_OneLineMain, CommonOptionsCommand):
    """A single click command with the error boundary and the common options."""


def publish(moves: Sequence[tuple[Path, Path]]) -> None:
    """Rename each finished temporary file onto its destination, in order (mode 0644); if one
    rename fails, the ones already published are removed again: all of them or none."""
    for src, _ in moves:
        os.chmod(src, 0o644)
    published: list[Path] = []
    try:
        for src, dst in moves:
            os.replace(src, dst)
            published.append(dst)
    except BaseException:
        for dst in published:
            dst.unlink(missing_ok=True)
        raise


@contextmanager
def atomic_path(dst: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``dst``; rename it onto ``dst`` only on success.

    Nothing half-written is left behind: on any exception the temporary file is removed."""
    with atomic_paths([dst], [suffix]) as (tmp,):
        yield tmp


def _temp_next_to(dst: Path, suffix: str | None) -> Path:
    folder = dst.parent if str(dst.parent) else Path(".")
    try:
        if not folder.exists():
            folder.mkdir(parents=True, exist_ok=True)
        if not os.access(folder, os.W_OK):
            raise UserError(f"cannot write to {folder}: permission denied")
        fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=suffix or dst.suffix or ".tmp", dir=folder)
    except OSError as e:  # name the file the user asked for, not the temporary one
        raise type(e)(e.errno, e.strerror, str(dst)) from None
    os.close(fd)
    return Path(tmp)


@contextmanager
def atomic_paths(dsts: Sequence[str | os.PathLike], suffixes: Sequence[str | None] | None = None) -> Iterator[list[Path]]:
    """Temporary paths for several files that form one artifact (weights + card, vector +
    sidecar + curve); all are renamed into place on success, in the given order — put the
    file loaders look for last — or none: on any failure, temporaries are removed and the
    files already renamed are taken back."""
    dsts = [Path(d) for d in dsts]
    suffixes = list(suffixes or [None] * len(dsts))
    tmps: list[Path] = []
    try:
        for d, s in zip(dsts, suffixes):
            tmps.append(_temp_next_to(d, s))
        yield tmps
        publish(list(zip(tmps, map(Path, dsts))))
    finally:
        for t in tmps:
            t.unlink(missing_ok=True)


def check_finite(tensors, where: str) -> None:
    """Refuse NaN/Inf: ``tensors`` is a mapping name → tensor/array; one line naming the first bad one."""
    import numpy as np

    for name, t in tensors.items():
        if hasattr(t, "is_floating_point"):
            import torch

            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                n = int((~torch.isfinite(t)).sum())
                raise UserError(f"{where}: tensor {name} holds {n} NaN/Inf value(s)")
        else:
            a = np.asarray(t)
            if a.dtype.kind in "fc" and not np.isfinite(a).all():
                raise UserError(f"{where}: tensor {name} holds {int((~np.isfinite(a)).sum())} NaN/Inf value(s)")


__all__ = ["UserError", "atomic_path", "atomic_paths", "check_finite", "classify", "cli_errors", "one_line",
           "report", "OneLineCommand", "OneLineGroup", "CommonOptionsCommand"]
