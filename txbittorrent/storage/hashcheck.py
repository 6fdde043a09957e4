"""Hash checking: verify pieces against the torrent's SHA-1 hashes, off the reactor.

Theory of operation
-------------------
``HashChecker.check`` verifies a list of piece indexes with at most
``workers`` pieces in flight.  It starts that many *lanes*: jobs in the
thread pool that each take the next index from a shared, locked queue, read
the piece (``read_piece(index)``, blocking) and hash it with ``hashlib.sha1``,
which releases the GIL for large buffers, so several threads use several
cores.  Only ``(index, passed)`` goes back to the reactor thread, through
``callFromThread``, where the caller's ``on_pass`` / ``on_fail`` /
``on_progress`` run.  The reactor never touches piece bytes, so a check of any
size costs it one short call per piece.

A lane takes its next piece itself rather than waiting for the reactor to
issue it: the round trip through the reactor per piece left a worker idle
for long enough to cost about 10% with one worker (see bench/README).  The
price is that a check occupies ``workers`` pool threads until it ends.

Outcomes per piece:

* the digest matches ``metainfo.piece_hash(index)``: it passes;
* it does not, or ``read_piece`` raises ``MissingDataError`` (the bytes are not
  on disk): it fails.  Neither is an error;
* ``read_piece`` raises anything else (``StorageError``, a bug): no lane
  takes another piece, the pieces in flight are waited for (their results are
  still reported) and the Deferred errbacks with the first such error.  So
  does an exception raised by one of the caller's callbacks.

Cancelling the Deferred stops the lanes taking pieces and fires it with
``CancelledError`` at once; the pieces still in flight finish in their threads
but nothing more is reported.  ``when_idle()`` says when every lane has ended
(for instance before closing the storage they read from).

The Deferred fires with a ``Bitfield`` holding exactly the pieces that passed,
whatever order the jobs finished in.

``check_blocking`` does the same for the command line, with a
``concurrent.futures`` pool and no reactor.
"""

from __future__ import annotations

import functools
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure

from txbittorrent._reactor import resolve_reactor
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.metainfo import Metainfo
from txbittorrent.errors import MissingDataError

__all__ = ["HashChecker", "check_blocking", "default_workers", "verify_piece"]

ReadPiece = Callable[[int], bytes]
OnPiece = Callable[[int], object]
OnProgress = Callable[[int, int, int, int], object]


def verify_piece(metainfo: Metainfo, read_piece: ReadPiece, index: int) -> bool:
    """Read and hash piece ``index``; True if it matches.  Blocking.

    ``MissingDataError`` counts as a mismatch; other exceptions propagate."""
    try:
        data = read_piece(index)
    except MissingDataError:
        return False
    return hashlib.sha1(data).digest() == metainfo.piece_hash(index)


@functools.cache
def default_workers() -> int:
    """Hashing threads when not configured: one per CPU (asked once per
    process: a session starting thousands of torrents asks for each)."""
    return os.cpu_count() or 2


def _indexes(metainfo: Metainfo, indexes: Iterable[int] | None) -> list[int]:
    """The pieces to check, in the order given, each once; IndexError if out of range."""
    count = metainfo.piece_count
    if indexes is None:
        return list(range(count))
    out = list(dict.fromkeys(indexes))
    for index in out:
        if not 0 <= index < count:
            raise IndexError(f"piece index {index} out of range 0..{count - 1}")
    return out


class HashChecker:
    """Verifies pieces of one torrent in a thread pool, reporting on the reactor.

    ``reactor`` defaults to the global reactor and ``threadpool`` to the
    reactor's own, both looked up on the first ``check``.  The pool needs
    ``workers`` free threads for a check to run that wide; each ``check``
    call gets its own ``workers`` lanes."""

    def __init__(
        self,
        metainfo: Metainfo,
        read_piece: ReadPiece,
        reactor: Any = None,
        threadpool: Any = None,
        workers: int | None = None,
    ) -> None:
        if workers is not None and workers < 1:
            raise ValueError("workers must be at least 1")
        self._metainfo = metainfo
        self._read_piece = read_piece
        self._reactor = reactor
        self._threadpool = threadpool
        self.workers = workers if workers is not None else default_workers()
        self._lanes = 0
        self._idle_waiters: list[Deferred[None]] = []

    def _resolve(self) -> tuple[Any, Any]:
        self._reactor = resolve_reactor(self._reactor)
        if self._threadpool is None:
            self._threadpool = self._reactor.getThreadPool()
        return self._reactor, self._threadpool

    @property
    def lanes(self) -> int:
        """Lanes handed to the pool that have not ended yet (over all checks)."""
        return self._lanes

    def when_idle(self) -> Deferred[None]:
        """A Deferred that fires once no lane of this checker is in a thread."""
        if self._lanes == 0:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle_waiters.append(d)
        return d

    def check(
        self,
        indexes: Iterable[int] | None = None,
        on_pass: OnPiece | None = None,
        on_fail: OnPiece | None = None,
        on_progress: OnProgress | None = None,
    ) -> Deferred[Bitfield]:
        """Verify ``indexes`` (default: every piece); fire with the pieces that passed.

        Raises ``IndexError`` at once for an index out of range."""
        order = _indexes(self._metainfo, indexes)
        reactor, pool = self._resolve()
        return _Run(self, reactor, pool, order, on_pass, on_fail, on_progress).start()

    # Called by _Run on the reactor thread: the count behind when_idle.
    def _lane_started(self) -> None:
        self._lanes += 1

    def _lane_ended_on_reactor(self) -> None:
        self._lanes -= 1
        if self._lanes == 0:
            waiters, self._idle_waiters = self._idle_waiters, []
            for d in waiters:
                d.callback(None)


class _Run:
    """The state of one ``check`` call.

    ``_lane`` runs in up to ``workers`` pool threads at once, each taking the
    next index under ``_lock`` until the queue is empty or ``_stopping`` is
    set; everything else runs on the reactor thread."""

    def __init__(
        self,
        checker: HashChecker,
        reactor: Any,
        pool: Any,
        order: list[int],
        on_pass: OnPiece | None,
        on_fail: OnPiece | None,
        on_progress: OnProgress | None,
    ) -> None:
        self._checker = checker
        self._reactor = reactor
        self._pool = pool
        self._order = order
        self._on_pass = on_pass
        self._on_fail = on_fail
        self._on_progress = on_progress
        meta = checker._metainfo
        self._total_bytes = sum(meta.piece_size(i) for i in order)
        self._done_pieces = 0
        self._done_bytes = 0
        self._passed = Bitfield(meta.piece_count)
        self._error: Failure | None = None
        self._cancelled = False
        self._deferred: Deferred[Bitfield] = Deferred(self._cancel)
        # Shared with the pool threads, guarded by _lock.
        self._lock = threading.Lock()
        self._queue: Iterator[int] = iter(order)
        self._stopping = False
        # Reactor thread only.
        self._lanes = 0

    def start(self) -> Deferred[Bitfield]:
        lanes = min(self._checker.workers, len(self._order))
        if not lanes:
            self._deferred.callback(self._passed)
        # Count every lane before submitting any: a pool that runs jobs at
        # once (in tests) would otherwise end the first lane before the
        # second is counted, and fire the Deferred twice.
        self._lanes += lanes
        for _ in range(lanes):
            self._checker._lane_started()
        for _ in range(lanes):
            self._pool.callInThreadWithCallback(self._lane_ended, self._lane)
        return self._deferred

    def _stop(self) -> None:
        with self._lock:
            self._stopping = True

    def _cancel(self, _: Deferred[Bitfield]) -> None:
        # Not firing the Deferred here makes it errback with CancelledError.
        self._cancelled = True
        self._stop()

    # -- in a pool thread ------------------------------------------------------

    def _lane(self) -> None:
        call_from_thread = self._reactor.callFromThread
        metainfo = self._checker._metainfo
        read_piece = self._checker._read_piece
        while True:
            with self._lock:
                index = None if self._stopping else next(self._queue, None)
            if index is None:
                return
            try:
                passed = verify_piece(metainfo, read_piece, index)
            except BaseException:
                self._stop()
                raise
            call_from_thread(self._piece_done, index, passed)

    def _lane_ended(self, success: bool, result: Any) -> None:
        self._reactor.callFromThread(self._lane_done, success, result)

    # -- on the reactor thread -------------------------------------------------

    def _piece_done(self, index: int, passed: bool) -> None:
        if self._cancelled:
            return
        try:
            self._report(index, passed)
        except Exception:
            self._fail(Failure())  # type: ignore[no-untyped-call]

    def _fail(self, failure: Failure) -> None:
        if self._error is None:
            self._error = failure
        self._stop()

    def _lane_done(self, success: bool, result: Any) -> None:
        # callFromThread is FIFO, so every _piece_done of this lane came first.
        self._lanes -= 1
        if not success:
            self._fail(result)
        if not self._lanes and not self._cancelled:
            if self._error is not None:
                self._deferred.errback(self._error)
            else:
                self._deferred.callback(self._passed)
        self._checker._lane_ended_on_reactor()

    def _report(self, index: int, passed: bool) -> None:
        if passed:
            self._passed.add(index)
            if self._on_pass is not None:
                self._on_pass(index)
        elif self._on_fail is not None:
            self._on_fail(index)
        self._done_pieces += 1
        self._done_bytes += self._checker._metainfo.piece_size(index)
        if self._on_progress is not None:
            self._on_progress(
                self._done_pieces, len(self._order), self._done_bytes, self._total_bytes
            )


def check_blocking(
    metainfo: Metainfo,
    read_piece: ReadPiece,
    indexes: Iterable[int] | None = None,
    workers: int | None = None,
    on_progress: OnProgress | None = None,
) -> Bitfield:
    """Verify pieces without a reactor (for the command line); return those that passed.

    Keeps ``workers`` pieces in flight in a private thread pool.  The first
    exception other than ``MissingDataError`` propagates after the jobs in
    flight finish."""
    order = _indexes(metainfo, indexes)
    workers = workers if workers is not None else default_workers()
    total_bytes = sum(metainfo.piece_size(i) for i in order)
    passed = Bitfield(metainfo.piece_count)
    done_pieces = done_bytes = 0
    queue = iter(order)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="hashcheck") as pool:
        running: dict[Future[bool], int] = {}
        for index in queue:
            running[pool.submit(verify_piece, metainfo, read_piece, index)] = index
            if len(running) >= workers:
                break
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                index = running.pop(future)
                if future.result():
                    passed.add(index)
                done_pieces += 1
                done_bytes += metainfo.piece_size(index)
                if on_progress is not None:
                    on_progress(done_pieces, len(order), done_bytes, total_bytes)
                for index in queue:
                    running[pool.submit(verify_piece, metainfo, read_piece, index)] = index
                    break
    return passed
