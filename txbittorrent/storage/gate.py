"""A shared/exclusive gate for threads, where the exclusive side cannot starve.

``FileStorage`` runs its reads and writes as shared holders (any number at
once, from the disk thread pool) and ``set_priorities`` and ``close`` as the
exclusive holder: they wait for the I/O in flight and keep new I/O out while
they run.  A waiting exclusive holder already keeps new shared ones out, so a
steady stream of reads cannot postpone it forever.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Gate"]


class Gate:
    """Any number of shared holders at once, or one exclusive holder.  A
    waiting exclusive holder keeps new shared ones out, so it cannot starve."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with self._cond:
            self._cond.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with self._cond:
                self._shared -= 1
                self._cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._cond:
            self._waiting += 1
            self._cond.wait_for(lambda: not self._exclusive and not self._shared)
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with self._cond:
                self._exclusive = False
                self._cond.notify_all()
