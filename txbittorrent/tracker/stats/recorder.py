"""``TrackerRecorder``: the service that writes the tracker's counters to its TrackerDB.

Theory of operation
-------------------
``TrackerDB`` keeps counters in a pending batch (memory only, so an
announce never waits for the disk).  This service empties it: every
``interval`` seconds (a ``LoopingCall`` on the injected reactor) it takes
the batch on the reactor thread and writes it with ``write_batch`` in the
reactor's thread pool (``threaded=True``; tests pass ``False`` to write in
place), one transaction and one fsync per batch, so the reactor never waits
for an fsync.  Only one write is in flight: while one runs, ticks only
collect.  A failed write gives its batch back (``restore``) to go with the
next one.  ``stopService`` stops the loop, waits for the write in flight,
then flushes what is left on the reactor thread (a clean stop loses
nothing; a crash loses at most the last ``interval`` of counters).

With the swarms in memory it is the ``TrackerState``'s ``observer`` while
it runs: each new swarm is ``db.seen`` at its first announce and each
completed download goes to ``db.add_completed`` as it happens (a counter in
the pending batch: O(1) on the announce's turn, written with the next
flush).

With the swarms in Redis (``journal``, a ``RedisUpkeep``), the local state
is empty: every tick instead drains the journal the announce scripts keep
(new swarms with their first announce time, completions), taken and
emptied atomically, so each completion reaches one recorder of all the
processes sharing the Redis (and one database, when they share the file:
counted once).  One drain is in flight at most; a failed drain leaves the
journal in Redis for the next one (of any process).  The start tells Redis
a recorder exists (announces journal from then on, also those before the
first drain).  The last flush at
stop does not drain (the Redis connection closes with the listeners): what
is left waits in Redis for another process or the next start.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure

from txbittorrent.core.tracker.registry import TrackerState
from txbittorrent.tracker.db import Batch, TrackerDB
from txbittorrent.tracker.redisupkeep import Journal, RedisUpkeep

__all__ = ["TrackerRecorder"]

_log = Logger()


class TrackerRecorder(Service):
    """Writes ``db``'s counters and ``state``'s completions (see the module docstring)."""

    def __init__(
        self,
        state: TrackerState,
        db: TrackerDB,
        reactor: Any,
        *,
        interval: float = 1.0,
        threaded: bool = True,
        journal: RedisUpkeep | None = None,
    ) -> None:
        self.state = state
        self.db = db
        self.journal = journal
        self._draining: Deferred[None] | None = None
        self._reactor = reactor
        self.interval = interval
        self.threaded = threaded
        self._loop: LoopingCall | None = None
        self._writing: Deferred[None] | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        if self.journal is not None:
            self.journal.record(self._journal_ttl)
        else:
            self.state.observer = self
        loop = self._loop = LoopingCall(self.tick)
        loop.clock = self._reactor
        loop.start(self.interval, now=False).addErrback(
            lambda f: _log.failure("tracker recorder stopped", f))

    def stopService(self) -> Deferred[None]:
        super().stopService()  # type: ignore[no-untyped-call]
        if self.state.observer is self:
            self.state.observer = None
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        self._loop = None
        pending = [d for d in (self._writing, self._draining) if d is not None]
        waiting: Deferred[Any] = gatherResults(pending) if pending else succeed(None)

        def last(_: object) -> None:
            self.db.flush()

        return waiting.addCallback(last)

    def tick(self) -> None:
        """Drain the Redis journal (if any), and start writing the batch unless a write runs."""
        if self.journal is not None:
            self.drain()
        if self._writing is not None:
            return
        batch = self.db.take_batch()
        if not batch:
            return
        if self.threaded:
            d: Deferred[None] = deferToThreadPool(
                self._reactor, self._reactor.getThreadPool(), self.db.write_batch, batch)
        else:
            d = maybeDeferred(self.db.write_batch, batch)
        self._writing = d
        d.addErrback(self._failed, batch)
        d.addBoth(self._written)

    def _failed(self, failure: Failure, batch: Batch) -> None:
        _log.failure("tracker database: writing counters failed; kept for the next try",
                     failure)
        self.db.restore(batch)

    def _written(self, _: object) -> None:
        self._writing = None

    def swarm_created(self, info_hash: bytes, now: float) -> None:
        """``SwarmObserver``: a swarm's first announce."""
        self.db.seen(info_hash, now)

    def completed(self, info_hash: bytes) -> None:
        """``SwarmObserver``: a download completed."""
        self.db.add_completed(info_hash)

    @property
    def _journal_ttl(self) -> float:
        """How long announces keep journaling without a drain."""
        return max(10.0, 5 * self.interval)

    def drain(self) -> Deferred[None] | None:
        """Take the Redis journal into the database's batch (unless a drain runs)."""
        if self.journal is None or self._draining is not None:
            return None

        def record(journal: Journal) -> None:
            for info_hash, when in journal.seen.items():
                self.db.seen(info_hash, when)
            for info_hash, n in journal.completed.items():
                self.db.add_completed(info_hash, n)

        def done(_: object) -> None:
            self._draining = None

        d: Deferred[None] = self.journal.drain(self._journal_ttl).addCallback(record)
        self._draining = d
        d.addErrback(lambda f: _log.failure("tracker recorder: draining the Redis journal", f))
        d.addBoth(done)
        return d
