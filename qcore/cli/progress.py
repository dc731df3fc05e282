"""A progress bar on stderr for long work (snapshot save and restore, export).

Drawn only when stderr is a terminal (scripts and logs get nothing), at most
ten times a second, and erased when the work ends.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO

_WIDTH = 30


def _human(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


class Progress:
    def __init__(self, label: str, total: int | None = None, unit: str = "bytes", stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.unit = unit
        self._stream = stream if stream is not None else sys.stderr
        self._on = self._stream.isatty()
        self._last = 0.0
        self._start = time.monotonic()
        self.done = 0

    def update(self, done: int, total: int | None = None) -> None:
        self.done = done
        if total is not None:
            self.total = total
        now = time.monotonic()
        if not self._on or now - self._last < 0.1:
            return
        self._last = now
        self._draw(now)

    def _fmt(self, n: float) -> str:
        return _human(n) if self.unit == "bytes" else f"{n:,.0f} {self.unit}"

    def _draw(self, now: float) -> None:
        rate = self.done / max(now - self._start, 1e-6)
        if self.total:
            frac = min(1.0, self.done / self.total)
            bar = "#" * int(frac * _WIDTH)
            text = f"\r{self.label} [{bar:<{_WIDTH}}] {frac:4.0%} {self._fmt(self.done)}/{self._fmt(self.total)} ({self._fmt(rate)}/s)"
        else:
            text = f"\r{self.label} {self._fmt(self.done)} ({self._fmt(rate)}/s)"
        self._stream.write(text + "\x1b[K")
        self._stream.flush()

    def finish(self) -> None:
        if self._on:
            self._stream.write("\r\x1b[K")
            self._stream.flush()
