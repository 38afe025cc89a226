"""What happens before the first frame, said on one line and timed per phase.

    status = StartupStatus()              # "imports": process start → now
    status.phase("source", "opening sample:lowlight")
    status.phase("graph", "loading the lowlight graph")
    ...
    status.first_frame()                  # "first frame": the last phase; prints the ready line
    status.breakdown_ms()                 # {"imports": 310.0, "source": 42.1, ..., "total": 1890.4}

On a terminal the current phase is one status line, rewritten in place; elsewhere (logs,
CI) one line is printed when preparation starts and one when the first frame is out.
Times are wall-clock milliseconds; ``imports`` counts from the process's start (psutil),
so it includes the interpreter's own start and every import before :class:`StartupStatus`.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def process_age_s() -> float:
    """Seconds since this process started (0.0 when psutil cannot tell)."""
    try:
        import psutil

        return max(0.0, time.time() - psutil.Process().create_time())
    except Exception:  # noqa: BLE001 — an unusual platform: no breakdown of the imports
        return 0.0


class StartupStatus:
    """Phases of the start, in order; each lasts until the next one starts.

    ``stream`` defaults to stdout, beside the backend and summary lines (stderr is kept
    for the one ``error:`` line of a failure);
    ``tty`` (default: ``stream.isatty()``) chooses the rewritten line over plain lines."""

    def __init__(self, stream: TextIO | None = None, tty: bool | None = None, clock=time.perf_counter) -> None:
        self.stream = stream if stream is not None else sys.stdout
        self.tty = bool(tty if tty is not None else getattr(self.stream, "isatty", lambda: False)())
        self._clock = clock
        self._t0 = clock() - process_age_s()
        self._phases: list[tuple[str, float]] = [("imports", self._t0)]
        self._said_start = False
        self.done = False

    def phase(self, name: str, what: str | None = None) -> None:
        """Start phase ``name`` (a key of the breakdown); ``what`` is shown to the user
        (None: a quiet phase, timed only)."""
        if self.done:
            return
        self._phases.append((name, self._clock()))
        if what is None:
            return
        if self.tty:
            self.stream.write(f"\r\x1b[Kpreparing the first frame: {what}…")
            self.stream.flush()
        elif not self._said_start:
            self.stream.write(f"preparing the first frame: {what}…\n")
            self.stream.flush()
        self._said_start = True

    def first_frame(self) -> None:
        """The first frame is out: close the last phase and print the ready line (once)."""
        if self.done:
            return
        self._phases.append(("end", self._clock()))
        self.done = True
        b = self.breakdown_ms()
        parts = ", ".join(f"{k} {v / 1000:.2f}" for k, v in b.items() if k != "total")
        line = f"first frame after {b['total'] / 1000:.2f} s ({parts})"
        self.stream.write(("\r\x1b[K" if self.tty else "") + line + "\n")
        self.stream.flush()

    def clear_line(self) -> None:
        """On a terminal, wipe the status line so another line can be printed (the next
        :meth:`phase` shows it again)."""
        if self.tty and self._said_start and not self.done:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def clear(self) -> None:
        """End without a first frame (an error): remove the status line on a terminal."""
        if self.tty and self._said_start and not self.done:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
        self.done = True

    def breakdown_ms(self) -> dict[str, float]:
        """{phase: ms} in order, plus ``total`` (process start → the last mark); a phase
        started twice adds up."""
        marks = self._phases + ([] if self.done else [("now", self._clock())])
        out: dict[str, float] = {}
        for (name, t), (_, t_next) in zip(marks, marks[1:]):
            out[name] = round(out.get(name, 0.0) + 1000 * (t_next - t), 1)
        out["total"] = round(1000 * (marks[-1][1] - self._t0), 1)
        return out
