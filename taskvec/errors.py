"""One exception type for bad input, and the CLI wrapper that turns it into one line.

Every command of the product (``taskvec``, ``tvexport``, ``tvrun``, ``tvbench``) ends bad
input with ``error: <one line>`` on stderr and exit status 2 — never a traceback.
"""

from __future__ import annotations

import functools
import os
import sys
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator, TypeVar

import click

F = TypeVar("F", bound=Callable)


class UserError(Exception):
    """Bad input from the user: a missing file, an unknown name, a corrupt artifact."""


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= 400 else text[:397] + "..."


def cli_errors(fn: F) -> F:
    """Decorate a click command: known errors end as ``error: …`` and exit 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except (UserError, FileNotFoundError, IsADirectoryError, NotADirectoryError, PermissionError, ValueError) as e:
            print(f"error: {one_line(e)}", file=sys.stderr)
            sys.exit(2)
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            sys.exit(130)

    return wrapper  # type: ignore[return-value]


class _OneLineMain:
    """Mixin for click commands: usage errors are one line too (``error: …``, exit 2)."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        try:
            rv = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)  # type: ignore[misc]
        except click.ClickException as e:
            print(f"error: {one_line(e.format_message())}", file=sys.stderr)
            sys.exit(e.exit_code)
        except click.exceptions.Abort:
            print("aborted", file=sys.stderr)
            sys.exit(130)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)


class OneLineGroup(_OneLineMain, click.Group):
    """A click group with one-line usage errors."""


class OneLineCommand(_OneLineMain, click.Command):
    """A single click command with one-line usage errors."""


@contextmanager
def atomic_path(dst: str | os.PathLike, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``dst``; rename it onto ``dst`` only on success.

    Nothing half-written is left behind: on any exception the temporary file is removed."""
    dst = Path(dst)
    folder = dst.parent if str(dst.parent) else Path(".")
    if not folder.exists():
        folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK):
        raise UserError(f"cannot write to {folder}: permission denied")
    fd, tmp = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=suffix or dst.suffix or ".tmp", dir=folder)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)
        os.replace(tmp_path, dst)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise
