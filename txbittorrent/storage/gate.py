"""A shared/exclusive gate for threads, where the exclusive side cannot starve.

``FileStorage`` runs its reads and writes as shared holders (any number at
once, from the disk thread pool) and ``set_priorities`` and ``close`` as the
exclusive holder: they wait for the I/O in flight and keep new I/O out while
they run.  A waiting exclusive holder already keeps new shared ones out, so a
steady stream of reads cannot postpone it forever.

Its ``threading.Condition`` (with its lock and waiter queue, most of a
kilobyte) is made on first use, under a lock shared by every gate: a session
holds a gate per torrent and most idle torrents never touch their files.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Gate"]


_MAKING = threading.Lock()
"""Guards the first use of every gate (making its condition)."""


class Gate:
    """Any number of shared holders at once, or one exclusive holder.  A
    waiting exclusive holder keeps new shared ones out, so it cannot starve."""

    __slots__ = ("_made", "_shared", "_exclusive", "_waiting")

    def __init__(self) -> None:
        self._made: threading.Condition | None = None
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @property
    def _cond(self) -> threading.Condition:
        cond = self._made
        if cond is None:
            with _MAKING:
                cond = self._made
                if cond is None:
                    cond = self._made = threading.Condition()
        return cond

    @contextmanager
    def shared(self) -> Iterator[None]:
        cond = self._cond
        with cond:
            cond.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with cond:
                self._shared -= 1
                cond.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        cond = self._cond
        with cond:
            self._waiting += 1
            cond.wait_for(lambda: not self._exclusive and not self._shared)
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with cond:
                self._exclusive = False
                cond.notify_all()
