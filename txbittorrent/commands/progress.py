"""A one-line progress bar for the command line (stderr, redrawn in place).

Kept tiny on purpose: the commands need a bar, a percentage, a rate and an
ETA, and later the download line; no dependency is worth that.  Time comes
from an injected ``clock`` callable so tests can drive it."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressBar", "format_size"]


def format_size(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class ProgressBar:
    """Draws ``label [#####.....]  42.0%  12.3 MiB/s  ETA 0:07`` on one line."""

    def __init__(
        self,
        total: int,
        label: str = "",
        stream: TextIO | None = None,
        clock: Callable[[], float] = time.monotonic,
        width: int = 30,
        enabled: bool | None = None,
        min_interval: float = 0.1,
    ) -> None:
        self.total = max(total, 0)
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.width = width
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.min_interval = min_interval
        self.done = 0
        self._started = clock()
        self._last_draw = -1e9

    def line(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * self.width)
        elapsed = max(self.clock() - self._started, 1e-9)
        rate = self.done / elapsed
        if rate > 0 and self.done < self.total:
            eta_s = int((self.total - self.done) / rate)
            eta = f"ETA {eta_s // 60}:{eta_s % 60:02d}"
        else:
            eta = f"{elapsed:.1f}s"
        bar = "#" * filled + "." * (self.width - filled)
        return f"{self.label} [{bar}] {fraction * 100:5.1f}%  {format_size(rate)}/s  {eta}"

    def update(self, done: int) -> None:
        self.done = done
        now = self.clock()
        if self.enabled and (now - self._last_draw >= self.min_interval or done >= self.total):
            self._last_draw = now
            self.stream.write("\r" + self.line())
            self.stream.flush()

    def advance(self, amount: int) -> None:
        self.update(self.done + amount)

    def finish(self) -> None:
        self.update(self.total if self.done < self.total else self.done)
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()
