"""The capture thread: :class:`ThreadedCapture` reads a source on its own thread, keeps the
newest frame of a live source (or every frame of a file), reconnects and reports stalls."""

from __future__ import annotations

import threading
import time
from collections import deque
from typing import Iterator

from runtime.sources.capture import Frame, VideoSource
from runtime.sources.uri import SourceError


class ThreadedCapture:
    """Read a source on its own thread; ``get()`` the frames.

    Live sources (``drop_frames`` True by default): only the newest frame is kept and each
    overwritten one counts in ``dropped``. Files and folders (``drop_frames`` False by
    default): a small FIFO with back-pressure, so every frame arrives, in order.

    ``get()`` returns None at the end of the stream and raises :class:`SourceError` when the
    source fails or sits inside one read for more than ``stall_timeout`` seconds, so it never
    hangs. ``reconnect`` (live sources) is how many times in a row a failed read is followed
    by ``source.reopen()``, ``reconnect_delay`` seconds apart. A read blocked inside the driver
    cannot be interrupted: that case is reported as a stall, not reconnected.
    """

    def __init__(
        self,
        source: VideoSource,
        *,
        drop_frames: bool | None = None,
        stall_timeout: float = 5.0,
        reconnect: int = 0,
        reconnect_delay: float = 1.0,
        queue_size: int = 4,
        close_source: bool = True,
        join_timeout: float = 1.0,
    ) -> None:
        if stall_timeout <= 0:
            raise ValueError("stall_timeout must be positive")
        self.source = source
        self.drop_frames = source.is_live if drop_frames is None else drop_frames
        self.stall_timeout = stall_timeout
        self.reconnect = max(0, reconnect)
        self.reconnect_delay = reconnect_delay
        self.close_source = close_source
        self.join_timeout = join_timeout
        self.dropped = 0
        self.delivered = 0
        self.reconnects = 0
        self._capacity = 1 if self.drop_frames else max(1, queue_size)
        self._frames: deque[Frame] = deque()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._done = False
        self._closed = False
        self._error: SourceError | None = None
        self._read_started: float | None = None
        self._thread = threading.Thread(target=self._run, name="ThreadedCapture", daemon=True)
        self._thread.start()

    def _read_once(self) -> Frame | None:
        with self._cond:
            self._read_started = time.monotonic()
        try:
            return self.source.read()
        except SourceError:
            raise
        except Exception as e:
            raise SourceError(f"{self.source.spec.describe()}: read failed: {e}") from None
        finally:
            with self._cond:
                self._read_started = None

    def _reopen(self, attempt: int = 0) -> bool:
        """Wait (backoff: ``reconnect_delay`` · 2^attempt, at most 8×) and reopen the source."""
        if self._stop.wait(self.reconnect_delay * min(2 ** attempt, 8)):
            return False
        self.reconnects += 1
        try:
            self.source.reopen()
            return True
        except Exception:
            return False

    def _run(self) -> None:
        tries_left = self.reconnect
        error: SourceError | None = None
        try:
            while not self._stop.is_set():
                try:
                    frame = self._read_once()
                    error = None
                except SourceError as e:
                    frame, error = None, e
                if frame is None:
                    if self._stop.is_set():
                        break
                    if self.source.is_live:
                        if tries_left > 0:
                            self._reopen(self.reconnect - tries_left)
                            tries_left -= 1
                            continue
                        why = f" after {self.reconnects} reconnect(s)" if self.reconnect else ""
                        error = error or SourceError(
                            f"{self.source.spec.describe()} stopped delivering frames{why} — disconnected?"
                        )
                    break
                tries_left = self.reconnect
                with self._cond:
                    if self.drop_frames:
                        self.dropped += len(self._frames)
                        self._frames.clear()
                    else:
                        while len(self._frames) >= self._capacity and not self._stop.is_set():
                            self._cond.wait(0.1)
                    self._frames.append(frame)
                    self._cond.notify_all()
        finally:
            with self._cond:
                if error is not None and self._error is None:
                    self._error = error
                self._done = True
                self._cond.notify_all()

    def get(self, timeout: float | None = None) -> Frame | None:
        """Next frame (the newest for live sources); None at the end of the stream.

        Raises SourceError on a failed or stalled source, TimeoutError when ``timeout``
        seconds pass with no frame while the source is still healthy.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                if self._frames:
                    frame = self._frames.popleft()
                    self.delivered += 1
                    self._cond.notify_all()
                    return frame
                if self._error is not None:
                    raise self._error
                if self._done or self._closed:
                    return None
                now = time.monotonic()
                wait = 0.1
                if self._read_started is not None:
                    stuck = now - self._read_started
                    if stuck > self.stall_timeout:
                        self._error = SourceError(
                            f"{self.source.spec.describe()} stopped delivering frames: "
                            f"no frame for {self.stall_timeout:g} s"
                        )
                        raise self._error
                    wait = min(wait, self.stall_timeout - stuck + 0.01)
                if deadline is not None:
                    if now >= deadline:
                        raise TimeoutError(f"no frame from {self.source.spec.describe()} within {timeout:g} s")
                    wait = min(wait, deadline - now)
                self._cond.wait(max(wait, 0.001))

    def __iter__(self) -> Iterator[Frame]:
        while (frame := self.get()) is not None:
            yield frame

    def close(self) -> None:
        """Stop the thread; close the source unless its read is stuck in the driver."""
        if self._closed:
            return
        self._stop.set()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(self.join_timeout)
        if self.close_source and not self._thread.is_alive():
            self.source.close()

    def __enter__(self) -> "ThreadedCapture":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
