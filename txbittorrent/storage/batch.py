"""Many small blocking jobs in few thread-pool jobs: ``JobBatcher``.

Theory of operation
-------------------
Starting a session of thousands of torrents from their resume records, and
stopping it, makes two small disk jobs per torrent (read the record and stat
the files; flush, stat and write the record).  Handing each to the thread
pool and its result back costs more than the job itself: a queue hand-off,
a thread wake-up, a ``callFromThread`` and a reactor wake-up each, with the
GIL passed to and fro.

A ``JobBatcher`` queues jobs (``submit``) and runs them in pool jobs of up to
``max_batch`` at a time, one after another in the thread, then hands all
their results back with one ``callFromThread`` (or through ``call``, say
``Store.call``, which then runs each batch).  At most ``max_running``
pool jobs of the batcher run at once; a job submitted while none is free
waits in the queue and leaves with the next batch.  So a lone job goes out
at once (no added latency), and a burst of ten thousand leaves in batches
that grow with the backlog: group commit.

Jobs submitted with ``dir_syncs=True`` get the batch's ``DirSyncs`` as the
keyword ``dir_syncs``: an atomic file replacement then leaves the fsync of
its directory to the end of the batch, once per directory for the whole
batch (``resumefile.write_atomic``).  Such a job's Deferred fires only after
that fsync, and fails if it fails.

Results come back in submission order within a batch; each job's Deferred
fires with its value or fails with its exception.  An exception in one job
does not affect the others of its batch.  The constructor does nothing
observable; the pool is asked for (``pool()``) at each dispatch, so a pool
replaced by its owner is picked up.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from txbittorrent.storage.resumefile import DirSyncs

__all__ = ["JobBatcher"]

_T = TypeVar("_T")

_Job = tuple[Callable[..., Any], tuple[Any, ...], bool, "Deferred[Any]"]


class JobBatcher:
    """Runs queued blocking jobs in batches in a thread pool (see the module docstring)."""

    def __init__(
        self,
        reactor: Any = None,
        pool: Callable[[], Any] | None = None,
        max_batch: int = 64,
        max_running: int = 2,
        call: Callable[..., Deferred[Any]] | None = None,
    ) -> None:
        if max_batch < 1 or max_running < 1:
            raise ValueError("max_batch and max_running must be at least 1")
        if call is None and (reactor is None or pool is None):
            raise ValueError("give a reactor and a pool, or call")
        self._reactor = reactor
        self._pool = pool
        self._call = call
        """Runs a batch instead of the pool (``Store.call``: counted by the
        store's ``stop``, refused, with an exception, once it stopped)."""
        self.max_batch = max_batch
        self.max_running = max_running
        self._queue: deque[_Job] = deque()
        self._running = 0
        self._running_jobs = 0
        self.batches = 0
        """Pool jobs dispatched so far."""

    @property
    def pending(self) -> int:
        """Jobs queued or running."""
        return len(self._queue) + self._running_jobs

    def submit(
        self, f: Callable[..., _T], *args: Any, dir_syncs: bool = False
    ) -> Deferred[_T]:
        """Run ``f(*args)`` in the pool with the next batch; fires with its result."""
        d: Deferred[_T] = Deferred()
        self._queue.append((f, args, dir_syncs, d))
        self._dispatch()
        return d

    def _dispatch(self) -> None:
        while self._queue and self._running < self.max_running:
            count = min(self.max_batch, len(self._queue))
            batch = [self._queue.popleft() for _ in range(count)]
            self._running += 1
            self._running_jobs += count
            self.batches += 1
            work = [(f, args, syncs) for f, args, syncs, _ in batch]
            waiting = [d for _, _, _, d in batch]
            if self._call is not None:
                self._call_batch(work, waiting)
                continue
            assert self._pool is not None
            pool = self._pool()
            pool.callInThreadWithCallback(
                lambda ok, result, waiting=waiting: self._reactor.callFromThread(
                    self._done, waiting, ok, result
                ),
                _run_batch, work,
            )

    def _call_batch(self, work: list[Any], waiting: list[Deferred[Any]]) -> None:
        assert self._call is not None
        try:
            d = self._call(_run_batch, work)
        except Exception:  # e.g. the store stopped: the batch fails
            self._done(waiting, False, Failure())  # type: ignore[no-untyped-call]
            return
        d.addCallbacks(
            lambda result: self._done(waiting, True, result),
            lambda failure: self._done(waiting, False, failure),
        )

    def _done(self, waiting: list[Deferred[Any]], ok: bool, result: Any) -> None:
        self._running -= 1
        self._running_jobs -= len(waiting)
        try:
            if ok:
                for d, (good, value) in zip(waiting, result):
                    if good:
                        d.callback(value)
                    else:
                        d.errback(value)
            else:  # (_run_batch catches everything: only a pool failure gets here)
                for d in waiting:
                    d.errback(result)
        finally:
            self._dispatch()


def _run_batch(work: list[tuple[Callable[..., Any], tuple[Any, ...], bool]]) -> list[Any]:
    """In a pool thread: run each job, then the directory fsyncs they left."""
    syncs = DirSyncs()
    results: list[tuple[bool, Any]] = []
    for index, (f, args, wants_syncs) in enumerate(work):
        try:
            if wants_syncs:
                syncs.current = index
                value = f(*args, dir_syncs=syncs)
            else:
                value = f(*args)
            results.append((True, value))
        except BaseException:
            results.append((False, Failure()))  # type: ignore[no-untyped-call]
    for index, failure in syncs.run().items():
        if results[index][0]:
            results[index] = (False, failure)
    return results
