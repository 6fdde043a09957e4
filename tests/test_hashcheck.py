"""Tests for txbittorrent.storage.hashcheck and the hashcheck benchmark's --tiny mode."""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, utils
from twisted.python import threadable
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.metainfo import Metainfo
from txbittorrent.errors import MissingDataError, StorageError
from txbittorrent.storage.hashcheck import HashChecker, check_blocking, verify_piece
from txbittorrent.testing import FakeReactor, ManualPool, SyncPool, make_metainfo

PIECE = 16
GUARD = 10.0
"""Seconds a thread test waits for an event that should come at once (a guard only)."""


def make_torrent(count: int = 6, last: int = 5) -> tuple[Metainfo, dict[int, bytes]]:
    """A torrent of ``count`` pieces of PIECE bytes (the last ``last`` bytes) and its data."""
    pieces = {i: bytes([i + 1]) * (PIECE if i < count - 1 else last) for i in range(count)}
    return make_metainfo(b"".join(pieces[i] for i in range(count)), PIECE), pieces


def reader(
    pieces: dict[int, bytes], bad: dict[int, BaseException] | None = None
) -> Callable[[int], bytes]:
    """read_piece over a dict: a missing key raises MissingDataError, ``bad`` raises its error."""
    bad = bad or {}

    def read_piece(index: int) -> bytes:
        if index in bad:
            raise bad[index]
        if index not in pieces:
            raise MissingDataError(f"piece {index} not on disk")
        return pieces[index]

    return read_piece


class Recorder:
    """Records the callbacks a check makes."""

    def __init__(self) -> None:
        self.passed: list[int] = []
        self.failed: list[int] = []
        self.progress: list[tuple[int, int, int, int]] = []

    def kwargs(self) -> dict[str, Any]:
        return dict(
            on_pass=self.passed.append,
            on_fail=self.failed.append,
            on_progress=lambda *a: self.progress.append(a),
        )


class HashCheckerTests(SynchronousTestCase):
    """HashChecker with a fake reactor and a fake pool: deterministic, no threads."""

    def setUp(self) -> None:
        self.metainfo, self.pieces = make_torrent()
        self.reactor = FakeReactor(hold_thread_calls=True)
        self.pool = ManualPool()
        self.record = Recorder()

    def checker(
        self, read_piece: Callable[[int], bytes] | None = None, workers: int = 2
    ) -> HashChecker:
        return HashChecker(
            self.metainfo,
            read_piece or reader(self.pieces),
            reactor=self.reactor,
            threadpool=self.pool,
            workers=workers,
        )

    def finish(self) -> None:
        self.pool.run_all()
        self.reactor.run_thread_calls()

    def test_all_pass(self) -> None:
        """Every good piece passes and the result is a full bitfield."""
        d = self.checker().check(**self.record.kwargs())
        self.finish()
        self.assertEqual(self.successResultOf(d), Bitfield.full(6))
        self.assertEqual(sorted(self.record.passed), [0, 1, 2, 3, 4, 5])
        self.assertEqual(self.record.failed, [])

    def test_pool_that_runs_jobs_at_once(self) -> None:
        """With a pool that runs each job when it is submitted (and a reactor
        that runs thread calls at once) the check fires once, with every piece."""
        reactor = FakeReactor()
        checker = HashChecker(self.metainfo, reader(self.pieces), reactor=reactor,
                              threadpool=SyncPool(), workers=3)
        d = checker.check(**self.record.kwargs())
        self.assertEqual(self.successResultOf(d), Bitfield.full(6))
        self.assertEqual(self.successResultOf(checker.when_idle()), None)

    def test_fail_and_missing(self) -> None:
        """A corrupt piece and a missing piece fail without an error."""
        self.pieces[1] = b"x" * PIECE
        del self.pieces[4]
        d = self.checker().check(**self.record.kwargs())
        self.finish()
        self.assertEqual(self.successResultOf(d).to_string(), "101101")
        self.assertEqual(sorted(self.record.failed), [1, 4])

    def test_progress(self) -> None:
        """Progress counts pieces and bytes, with the short last piece, up to the totals."""
        d = self.checker(workers=1).check([4, 5, 0], **self.record.kwargs())
        self.finish()
        self.successResultOf(d)
        total = 2 * PIECE + 5
        self.assertEqual(
            self.record.progress,
            [(1, 3, PIECE, total), (2, 3, PIECE + 5, total), (3, 3, total, total)],
        )

    def test_order_given(self) -> None:
        """Pieces are taken in the order given, duplicates once, and the result ignores order."""
        d = self.checker(workers=1).check([5, 2, 5, 0], **self.record.kwargs())
        self.finish()
        self.assertEqual(self.record.passed, [5, 2, 0])
        self.assertEqual(self.successResultOf(d).to_string(), "101001")

    def test_order_independent(self) -> None:
        """Pieces finishing out of order give the same bitfield and callbacks as in order."""
        self.pieces[3] = b"bad"
        read = reader(self.pieces)

        def read_piece(index: int) -> bytes:
            if index == 0 and self.pool.queue:
                self.pool.run_one()  # the other lane checks 1..5 while piece 0 is being read
            return read(index)

        results = []
        for read_piece_ in (read, read_piece):
            self.record = Recorder()
            d = self.checker(read_piece_).check(**self.record.kwargs())
            self.finish()
            passed = sorted(self.record.passed)
            results.append((self.successResultOf(d), passed, self.record.failed))
        self.assertEqual(results[0], results[1])
        self.assertEqual(results[0][0].to_string(), "111011")
        self.assertEqual(self.record.passed, [1, 2, 4, 5, 0])

    def test_index_out_of_range(self) -> None:
        """An index outside the torrent raises IndexError before anything runs."""
        self.assertRaises(IndexError, self.checker().check, [0, 6])
        self.assertRaises(IndexError, self.checker().check, [-1])
        self.assertEqual(self.pool.queue, [])

    def test_empty(self) -> None:
        """Checking no pieces fires at once with an empty bitfield."""
        d = self.checker().check([])
        self.assertEqual(self.successResultOf(d), Bitfield(6))
        self.assertEqual(self.pool.queue, [])

    def test_lanes_bounded(self) -> None:
        """No more than ``workers`` lanes are handed to the pool, nor more than pieces."""
        self.checker(workers=4).check()
        self.assertEqual(len(self.pool.queue), 4)
        self.pool.queue.clear()
        self.checker(workers=4).check([1, 2])
        self.assertEqual(len(self.pool.queue), 2)

    def test_storage_error(self) -> None:
        """A StorageError stops new pieces, waits for the other lane, then errbacks."""
        read = reader(self.pieces, {1: StorageError("disk on fire")})
        d = self.checker(read).check(**self.record.kwargs())
        self.pool.run_one()  # lane A: piece 0 passes, piece 1 raises, the lane ends
        self.reactor.run_thread_calls()
        self.assertNoResult(d)  # lane B is still in flight
        self.pool.run_one()  # lane B: takes nothing, the check is stopping
        self.reactor.run_thread_calls()
        self.failureResultOf(d, StorageError)
        self.assertEqual(self.record.passed, [0])

    def test_other_exception(self) -> None:
        """Any exception but MissingDataError from read_piece errbacks with it."""
        d = self.checker(reader(self.pieces, {2: ZeroDivisionError()})).check()
        self.finish()
        self.failureResultOf(d, ZeroDivisionError)

    def test_callback_error(self) -> None:
        """An exception in on_pass errbacks the check with it."""
        def on_pass(index: int) -> None:
            raise KeyError(index)

        d = self.checker(workers=1).check(on_pass=on_pass, on_fail=self.record.failed.append)
        # The lane runs on: results reach the reactor only at run_thread_calls.
        self.finish()
        self.failureResultOf(d, KeyError)

    def test_cancel(self) -> None:
        """Cancelling stops the lanes taking pieces; nothing is reported afterwards."""
        seen: list[int] = []
        d: defer.Deferred[Bitfield]

        def read_piece(index: int) -> bytes:
            seen.append(index)
            if index == 1:
                d.cancel()
            return self.pieces[index]

        checker = self.checker(read_piece, workers=1)
        d = checker.check(**self.record.kwargs())
        idle = checker.when_idle()
        self.finish()
        self.failureResultOf(d, defer.CancelledError)
        self.assertEqual(seen, [0, 1])
        self.assertEqual(self.record.passed, [])  # piece 0's result arrived after the cancel
        self.successResultOf(idle)

    def test_cancel_before_lanes_run(self) -> None:
        """A check cancelled before its lanes start reads nothing; when_idle waits for them."""
        checker = self.checker(reader({}, {i: AssertionError() for i in range(6)}))
        d = checker.check()
        d.cancel()
        self.failureResultOf(d, defer.CancelledError)
        idle = checker.when_idle()
        self.assertNoResult(idle)
        self.assertEqual(checker.lanes, 2)
        self.finish()
        self.successResultOf(idle)
        self.assertEqual(checker.lanes, 0)

    def test_no_side_effects(self) -> None:
        """The constructor resolves nothing and submits nothing; workers has a default."""
        checker = HashChecker(self.metainfo, reader(self.pieces))
        self.assertEqual(checker.workers, os.cpu_count() or 2)
        self.assertEqual(checker.lanes, 0)
        self.successResultOf(checker.when_idle())
        self.assertRaises(ValueError, HashChecker, self.metainfo, reader(self.pieces), workers=0)


class HashCheckerThreadTests(TestCase):
    """HashChecker with real threads on the running reactor."""

    def setUp(self) -> None:
        self.metainfo, self.pieces = make_torrent(count=12)
        self.pool = ThreadPool(minthreads=0, maxthreads=6, name="test-hashcheck")
        self.pool.start()
        self.addCleanup(self.pool.stop)

    def checker(self, read_piece: Callable[[int], bytes], workers: int) -> HashChecker:
        from twisted.internet import reactor

        return HashChecker(
            self.metainfo, read_piece, reactor=reactor, threadpool=self.pool, workers=workers
        )

    @defer.inlineCallbacks
    def test_off_reactor_thread(self) -> Any:
        """Reading happens in pool threads; callbacks run on the reactor thread."""
        where: list[tuple[str, bool]] = []
        read = reader(self.pieces)

        def read_piece(index: int) -> bytes:
            where.append(("read", threadable.isInIOThread()))
            return read(index)

        def on_pass(index: int) -> None:
            where.append(("pass", threadable.isInIOThread()))

        result = yield self.checker(read_piece, workers=3).check(on_pass=on_pass)
        self.assertTrue(result.complete)
        self.assertEqual(sorted(set(where)), [("pass", True), ("read", False)])

    @defer.inlineCallbacks
    def test_concurrency_bound(self) -> Any:
        """With a pool of six threads, never more than ``workers`` pieces are read at once."""
        lock = threading.Lock()
        full = threading.Event()
        active = [0]
        peak = [0]
        read = reader(self.pieces)

        def read_piece(index: int) -> bytes:
            with lock:
                active[0] += 1
                peak[0] = max(peak[0], active[0])
                if active[0] == 3:
                    full.set()
            full.wait(GUARD)  # hold the first pieces until three are in flight
            with lock:
                active[0] -= 1
            return read(index)

        result = yield self.checker(read_piece, workers=3).check()
        self.assertTrue(result.complete)
        self.assertEqual(peak[0], 3)

    @defer.inlineCallbacks
    def test_out_of_order_completion(self) -> Any:
        """Piece 1 reported before piece 0 still yields exactly the passing pieces."""
        released = threading.Event()
        order: list[int] = []
        read = reader(self.pieces)

        def read_piece(index: int) -> bytes:
            if index == 0:
                released.wait(GUARD)
            return read(index)

        def on_pass(index: int) -> None:
            order.append(index)
            if index == 1:
                released.set()

        result = yield self.checker(read_piece, workers=2).check(on_pass=on_pass)
        self.assertTrue(result.complete)
        self.assertLess(order.index(1), order.index(0))

    @defer.inlineCallbacks
    def test_in_flight_reported_after_error(self) -> Any:
        """A piece in flight when another lane fails is still reported before the errback."""
        failing = threading.Event()
        passed: list[int] = []
        read = reader(self.pieces)

        def read_piece(index: int) -> bytes:
            if index == 0:
                failing.wait(GUARD)  # still reading piece 0 when piece 1 fails
            elif index == 1:
                failing.set()
                raise StorageError("bad sector")
            return read(index)

        d = self.checker(read_piece, workers=2).check(on_pass=passed.append)
        yield self.assertFailure(d, StorageError)
        self.assertEqual(passed, [0])

    def test_error_in_thread(self) -> defer.Deferred[Any]:
        """A StorageError raised in a pool thread reaches the Deferred."""
        read = reader(self.pieces, {7: StorageError("gone")})
        return self.assertFailure(self.checker(read, workers=2).check(), StorageError)


class CheckBlockingTests(SynchronousTestCase):
    """check_blocking, the reactor-free variant for the command line."""

    def setUp(self) -> None:
        self.metainfo, self.pieces = make_torrent()

    def test_results(self) -> None:
        """Passing, corrupt and missing pieces are told apart; progress reaches the totals."""
        self.pieces[2] = b"nope"
        del self.pieces[3]
        progress: list[tuple[int, int, int, int]] = []
        result = check_blocking(
            self.metainfo, reader(self.pieces), workers=2, on_progress=lambda *a: progress.append(a)
        )
        self.assertEqual(result.to_string(), "110011")
        self.assertEqual(progress[-1], (6, 6, 5 * PIECE + 5, 5 * PIECE + 5))
        self.assertEqual([p[0] for p in progress], [1, 2, 3, 4, 5, 6])

    def test_error(self) -> None:
        """A StorageError propagates."""
        read = reader(self.pieces, {4: StorageError("eio")})
        self.assertRaises(StorageError, check_blocking, self.metainfo, read, workers=2)

    def test_subset(self) -> None:
        """Only the pieces asked for are checked."""
        result = check_blocking(self.metainfo, reader(self.pieces), [5])
        self.assertEqual(result.to_string(), "000001")

    def test_verify_piece(self) -> None:
        """verify_piece compares the SHA-1 of the bytes read with the torrent's hash."""
        self.assertTrue(verify_piece(self.metainfo, reader(self.pieces), 0))
        self.assertFalse(verify_piece(self.metainfo, lambda i: b"", 0))
        self.assertFalse(verify_piece(self.metainfo, reader({}), 0))


class BenchTinyTests(TestCase):
    """``python -m bench.hashcheck --tiny`` runs, verifies every piece and writes JSON."""

    timeout = 120

    @defer.inlineCallbacks
    def test_tiny(self) -> Any:
        """The tiny benchmark exits 0 and reports verified figures for each measurement."""
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        out = os.path.abspath(self.mktemp())
        env = dict(os.environ, PYTHONPATH=root)
        stdout, stderr, code = yield utils.getProcessOutputAndValue(
            sys.executable, ["-m", "bench.hashcheck", "--tiny", "--json", out], env=env, path=root
        )
        self.assertEqual(code, 0, stderr.decode(errors="replace"))
        self.assertIn(b"page cache", stdout)
        with open(out) as f:
            report = json.load(f)
        self.assertEqual(report["config"]["size_mib"], 4)
        for name, runs in report["results"].items():
            self.assertEqual([r["verified"] for r in runs], [True], name)
        self.assertIsNotNone(report["ratios"]["hashcheck / raw"])

