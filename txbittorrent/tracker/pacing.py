"""At most so many HTTP announces of a session at once: ``AnnouncePacer``.

Theory of operation
-------------------
A session that starts ten thousand torrents would otherwise make ten
thousand HTTP announces in the same reactor turn: each costs about a
millisecond of reactor time in Twisted's web client (endpoint, resolver,
connection pool), so starting them all held every ``start()`` up by many
seconds and the reactor for longer.  The pacer lets ``limit`` announces run
at once and queues the rest in order; when earlier ones finish (answer,
error, timeout or cancellation), queued ones start in a later reactor turn
(``callLater(0)``), not inside the one that finished: a session stopping
its torrents cancels thousands of announces in one turn, and starting the
next queued ones there would only start announces that are about to be
cancelled too.

``PacedTracker`` puts a tracker client (anything with ``announce(url,
request)``) behind a pacer.  ``stopped`` announces skip the queue: they are
sent at ``stop()``, which waits for them only so long, and must not wait
behind ``started`` ones.  Cancelling a queued announce takes it out of the
queue (its Deferred fails with ``CancelledError``); cancelling a running one
cancels it in the client.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, fail

from txbittorrent.core.tracker.announce import AnnounceEvent, AnnounceRequest, AnnounceResponse

__all__ = ["AnnouncePacer", "PacedTracker"]


class _Entry:
    __slots__ = ("start", "outer", "inner", "cancelled")

    def __init__(self, start: Callable[[], Deferred[Any]]) -> None:
        self.start = start
        self.outer: Deferred[Any] = Deferred(self._cancel)
        self.inner: Deferred[Any] | None = None
        self.cancelled = False

    def _cancel(self, _: Deferred[Any]) -> None:
        if self.inner is None:
            self.cancelled = True  # (left in the queue; skipped; outer fails by itself)
        else:
            self.inner.cancel()


class AnnouncePacer:
    """Runs announces with at most ``limit`` in flight (see the module docstring)."""

    def __init__(self, clock: Any, limit: int = 32) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.limit = limit
        self._clock = clock
        self._running = 0
        self._waiting: deque[_Entry] = deque()
        self._pumping = False
        self._pump: Any = None

    @property
    def running(self) -> int:
        return self._running

    @property
    def waiting(self) -> int:
        return sum(not entry.cancelled for entry in self._waiting)

    def run(self, start: Callable[[], Deferred[Any]]) -> Deferred[Any]:
        """``start()`` now if fewer than ``limit`` run, else when one ends;
        fires as the Deferred ``start`` returns does."""
        entry = _Entry(start)
        self._waiting.append(entry)
        self._next()
        return entry.outer

    def _next(self) -> None:
        if self._pumping:  # (an announce that ended at once: the loop below goes on)
            return
        self._pumping = True
        try:
            waiting = self._waiting
            while waiting and self._running < self.limit:
                entry = waiting.popleft()
                if entry.cancelled:
                    continue
                self._running += 1
                try:
                    inner = entry.start()
                except Exception:
                    inner = fail()
                entry.inner = inner
                inner.addBoth(self._ended)
                inner.chainDeferred(entry.outer)
        finally:
            self._pumping = False

    def _ended(self, result: object) -> object:
        self._running -= 1
        if self._waiting and self._pump is None:
            self._pump = self._clock.callLater(0, self._pumped)
        return result

    def _pumped(self) -> None:
        self._pump = None
        self._next()


class _Client(Protocol):
    def announce(self, url: str, request: AnnounceRequest) -> Deferred[AnnounceResponse]: ...


class PacedTracker:
    """A tracker client's announces through a pacer (``stopped`` ones at once)."""

    def __init__(self, client: _Client, pacer: AnnouncePacer) -> None:
        self.client = client
        self.pacer = pacer

    def announce(self, url: str, request: AnnounceRequest) -> Deferred[AnnounceResponse]:
        if request.event is AnnounceEvent.STOPPED:
            return self.client.announce(url, request)
        return self.pacer.run(lambda: self.client.announce(url, request))
