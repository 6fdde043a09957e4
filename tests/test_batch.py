"""JobBatcher: many small blocking jobs in few pool jobs, and the directory
fsyncs left to the end of a batch."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.errors import StorageError
from txbittorrent.storage import resumefile
from txbittorrent.storage.batch import JobBatcher
from txbittorrent.storage.resumefile import DirSyncs, write_atomic
from txbittorrent.testing import FakeReactor, ManualPool


class JobBatcherTests(SynchronousTestCase):
    """Batching, order, errors and the running limit, on a manual pool."""

    def setUp(self) -> None:
        self.pool = ManualPool()
        self.reactor = FakeReactor()
        self.batcher = JobBatcher(self.reactor, lambda: self.pool, max_batch=3, max_running=1)

    def test_lone_job_goes_at_once(self) -> None:
        """A job submitted while nothing runs is one pool job of its own."""
        d = self.batcher.submit(lambda x: x * 2, 21)
        self.assertEqual(len(self.pool.queue), 1)
        self.pool.run_all()
        self.assertEqual(self.successResultOf(d), 42)
        self.assertEqual(self.batcher.pending, 0)

    def test_backlog_leaves_in_batches(self) -> None:
        """Jobs queued while the pool job runs leave together, up to max_batch,
        each Deferred with its own result, in order."""
        order: list[int] = []

        def job(n: int) -> int:
            order.append(n)
            return n

        ds = [self.batcher.submit(job, n) for n in range(6)]
        self.assertEqual(len(self.pool.queue), 1)
        self.assertEqual(self.batcher.pending, 6)
        self.pool.run_all()
        self.assertEqual([self.successResultOf(d) for d in ds], list(range(6)))
        self.assertEqual(order, list(range(6)))
        self.assertEqual(self.batcher.batches, 3)  # 1, then 3, then 2

    def test_error_stays_with_its_job(self) -> None:
        """A job that raises fails its own Deferred only."""
        def boom() -> None:
            raise ValueError("no")

        first = self.batcher.submit(lambda: 1)
        bad = self.batcher.submit(boom)
        good = self.batcher.submit(lambda: 3)
        self.pool.run_all()
        self.assertEqual(self.successResultOf(first), 1)
        self.failureResultOf(bad, ValueError)
        self.assertEqual(self.successResultOf(good), 3)

    def test_dir_syncs_after_the_batch(self) -> None:
        """Jobs asking for dir_syncs share one fsync per directory, run after
        every job of the batch; the file is in place before the Deferred fires."""
        root = self.mktemp()
        os.makedirs(root)
        synced: list[str] = []
        real = resumefile._fsync_directory

        def spy(directory: str) -> None:
            synced.append(directory)
            real(directory)

        self.patch(resumefile, "_fsync_directory", spy)
        self.batcher.submit(lambda: None)  # keeps the pool busy: the rest batch up
        ds = [self.batcher.submit(write_atomic, os.path.join(root, f"{n}.r"), b"x",
                                  dir_syncs=True) for n in range(3)]
        self.pool.run_all()
        for d in ds:
            self.successResultOf(d)
        self.assertEqual(synced, [os.path.abspath(root)])
        self.assertEqual(sorted(os.listdir(root)), ["0.r", "1.r", "2.r"])

    def test_dir_sync_failure_fails_its_jobs(self) -> None:
        """A directory that cannot be synced fails every job that wrote in it."""
        root = self.mktemp()
        os.makedirs(root)

        def failing(directory: str) -> None:
            raise OSError(5, "I/O error (injected)")

        self.patch(resumefile, "_fsync_directory", failing)
        d = self.batcher.submit(write_atomic, os.path.join(root, "a.r"), b"x", dir_syncs=True)
        self.pool.run_all()
        self.failureResultOf(d, StorageError)

    def test_limits_checked(self) -> None:
        """max_batch and max_running must be positive."""
        self.assertRaises(ValueError, JobBatcher, self.reactor, lambda: self.pool, max_batch=0)
        self.assertRaises(ValueError, JobBatcher, self.reactor, lambda: self.pool,
                          max_running=0)
        self.assertRaises(ValueError, JobBatcher, max_batch=2)  # no pool and no call

    def test_through_a_call(self) -> None:
        """With ``call`` (Store.call) each batch goes through it: the same
        batching and results, and a batch it refuses fails its jobs, after
        which the next batch is tried."""
        calls: list[Deferred[Any]] = []
        refuse = []

        def call(f: Any, *args: Any) -> Deferred[Any]:
            if refuse:
                raise RuntimeError("stopped")
            d: Deferred[Any] = Deferred()
            calls.append(d)
            d.callback(f(*args))
            return d

        running: list[Deferred[Any]] = []

        def held(f: Any, *args: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            running.append(d)
            d.addCallback(lambda _: f(*args))
            return d

        batcher = JobBatcher(call=held, max_batch=8, max_running=1)
        ds = [batcher.submit(lambda n=n: n) for n in range(5)]
        self.assertEqual(len(running), 1)  # the first alone, the rest wait
        running[0].callback(None)
        self.assertEqual(len(running), 2)
        running[1].callback(None)
        self.assertEqual([self.successResultOf(d) for d in ds], list(range(5)))
        self.assertEqual(batcher.batches, 2)
        plain = JobBatcher(call=call, max_running=1)
        self.assertEqual(self.successResultOf(plain.submit(lambda: 7)), 7)
        refuse.append(True)
        self.failureResultOf(plain.submit(lambda: 8), RuntimeError)
        self.assertEqual(plain.pending, 0)


class DirSyncsTests(SynchronousTestCase):
    """write_atomic with a DirSyncs leaves the directory's fsync to it."""

    def test_deferred_directory_fsync(self) -> None:
        """The file is replaced at once; the directory is synced by run(), once."""
        root = self.mktemp()
        os.makedirs(root)
        calls: list[Any] = []
        self.patch(resumefile, "_fsync_directory", calls.append)
        syncs = DirSyncs()
        for n in range(2):
            syncs.current = n
            write_atomic(os.path.join(root, "r"), b"%d" % n, dir_syncs=syncs)
        self.assertEqual(calls, [])
        with open(os.path.join(root, "r"), "rb") as f:
            self.assertEqual(f.read(), b"1")
        self.assertEqual(syncs.run(), {})
        self.assertEqual(calls, [os.path.abspath(root)])
