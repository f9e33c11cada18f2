"""A progress bar on stderr for inputs that take more than a moment.

It stays silent when stderr is not a terminal (CI logs, pipes) and for the first
``delay`` seconds, so a quick run prints nothing. It is fed by the analysis's
``on_progress(bytes_done, bytes_total)`` callback and redraws at most ten times a second.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

__all__ = ["ProgressBar"]


def _size(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


class ProgressBar:
    """Callable as ``on_progress``; use as a context manager so the bar is cleared at the end."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        enabled: bool | None = None,
        delay: float = 0.5,
        width: int = 30,
        clock=time.monotonic,
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        if enabled is None:
            isatty = getattr(self.stream, "isatty", None)
            enabled = bool(isatty and isatty())
        self.enabled = enabled
        self.delay = delay
        self.width = width
        self._clock = clock
        self._started = clock()
        self._last_draw = 0.0
        self._shown = False
        self._line = ""

    def __call__(self, done: int, total: int) -> None:
        if not self.enabled:
            return
        now = self._clock()
        if now - self._started < self.delay or (now - self._last_draw < 0.1 and done < total):
            return
        self._last_draw = now
        self._draw(self.render(done, total))

    def render(self, done: int, total: int) -> str:
        if total > 0:
            frac = min(1.0, max(0.0, done / total))
            filled = int(frac * self.width)
            bar = "#" * filled + "-" * (self.width - filled)
            return f"reading traces [{bar}] {frac * 100:3.0f}% {_size(done)} / {_size(total)}"
        return f"reading traces {_size(done)}"

    def _draw(self, line: str) -> None:
        pad = " " * max(0, len(self._line) - len(line))
        self.stream.write("\r" + line + pad)
        self.stream.flush()
        self._line = line
        self._shown = True

    def clear(self) -> None:
        """Erase the bar (at the end, before the summary is printed)."""
        if self._shown:
            self.stream.write("\r" + " " * len(self._line) + "\r")
            self.stream.flush()
            self._shown = False

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc: object) -> None:
        self.clear()
