"""A shared/exclusive gate for threads, where the exclusive side cannot starve.

``FileStorage`` runs its reads and writes as shared holders (any number at
once, from the disk thread pool) and ``set_priorities`` and ``close`` as the
exclusive holder: they wait for the I/O in flight and keep new I/O out while
they run.  A waiting exclusive holder already keeps new shared ones out, so a
steady stream of reads cannot postpone it forever.

Every gate shares one ``threading.Condition`` (the module's): a gate is
then three counters, where a condition of its own (a lock, a waiter queue,
five bound methods: most of a kilobyte and nine objects for the cyclic
collector) would be made for each torrent of a session, thousands of them
idle.  The lock is held only to update counters; the threads that ever wait
are the disk pool's few, and each re-checks its own gate when woken.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["Gate"]


_COND = threading.Condition(threading.Lock())
"""The condition every gate waits on (see the module docstring)."""


class Gate:
    """Any number of shared holders at once, or one exclusive holder.  A
    waiting exclusive holder keeps new shared ones out, so it cannot starve."""

    __slots__ = ("_shared", "_exclusive", "_waiting")

    def __init__(self) -> None:
        self._shared = 0
        self._exclusive = False
        self._waiting = 0

    @contextmanager
    def shared(self) -> Iterator[None]:
        with _COND:
            _COND.wait_for(lambda: not self._exclusive and not self._waiting)
            self._shared += 1
        try:
            yield
        finally:
            with _COND:
                self._shared -= 1
                _COND.notify_all()

    @contextmanager
    def exclusive(self) -> Iterator[None]:
        with _COND:
            self._waiting += 1
            _COND.wait_for(lambda: not self._exclusive and not self._shared)
            self._waiting -= 1
            self._exclusive = True
        try:
            yield
        finally:
            with _COND:
                self._exclusive = False
                _COND.notify_all()
