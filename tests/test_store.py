"""Tests for txbittorrent.storage.store: the thread-pool adapter over FileStorage."""

from __future__ import annotations

import os
import threading
from typing import Any

from twisted.internet import defer
from twisted.python import threadable
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txbittorrent.storage import store as store_module
from txbittorrent.errors import LocalProtocolError, MissingDataError
from txbittorrent.storage.files import FileStorage
from txbittorrent.storage.store import Store
from tests.test_storage import nowait_reads_work
from txbittorrent.testing import FakeReactor, ManualPool, make_metainfo, nonzero_bytes


class RecordingStorage(FileStorage):
    """A FileStorage that records the thread each call ran on."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, int, bool]] = []

    def _record(self, name: str) -> None:
        self.calls.append((name, threading.get_ident(), threadable.isInIOThread()))

    def read(self, index: int, offset: int, length: int) -> bytes:
        self._record("read")
        return super().read(index, offset, length)

    def write(self, index: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        self._record("write")
        super().write(index, offset, data)

    def close(self) -> None:
        self._record("close")
        super().close()


def storage_in(test: SynchronousTestCase, cls: type[FileStorage] = FileStorage) -> FileStorage:
    """A storage over a fresh directory for a two-file, three-piece torrent."""
    base = test.mktemp()
    os.makedirs(base)
    storage = cls(make_metainfo({"a": 20, "b": 28}, 16), base)
    test.addCleanup(storage.close)
    return storage


class StoreLifeCycleTests(SynchronousTestCase):
    """start/stop and misuse, with a fake reactor and a pool run by hand."""

    def test_constructor_has_no_side_effects(self) -> None:
        """Constructing a Store starts no pool, resolves no reactor and touches no file."""
        storage = storage_in(self)
        store = Store(storage)
        self.assertIsNone(store._pool)
        self.assertIsNone(store._reactor)
        self.assertFalse(store.running)
        self.assertEqual(os.listdir(storage._basedir), [])

    def test_calls_before_start(self) -> None:
        """Every call before start() raises LocalProtocolError, as does stop()."""
        store = Store(storage_in(self))
        for call in (lambda: store.read(0, 0, 1), lambda: store.read_piece(0),
                     lambda: store.write(0, 0, b"x"), lambda: store.set_priorities([1, 1]),
                     store.sync, store.close, store.file_stats, store.part_stat,
                     store.create_empty_files, store.stop):
            self.assertRaises(LocalProtocolError, call)

    def test_calls_after_stop(self) -> None:
        """Once stop() is called, further calls, stop() and start() raise LocalProtocolError."""
        pool = ManualPool()
        store = Store(storage_in(self), FakeReactor(), pool)  # type: ignore[arg-type]
        store.start()
        d = store.stop()
        self.assertRaises(LocalProtocolError, store.read_piece, 0)
        self.assertRaises(LocalProtocolError, store.stop)
        pool.run_one()
        self.successResultOf(d)
        self.assertRaises(LocalProtocolError, store.write, 0, 0, b"x")
        self.assertRaises(LocalProtocolError, store.start)

    def test_stop_waits_for_outstanding_calls(self) -> None:
        """stop() closes the files only after every call already made has finished."""
        pool = ManualPool()
        storage = storage_in(self, RecordingStorage)
        store = Store(storage, reactor=FakeReactor(), threadpool=pool)  # type: ignore[arg-type]
        store.start()
        writes = [store.write(0, 0, nonzero_bytes(16)), store.write(1, 0, nonzero_bytes(16, 2))]
        stopped = store.stop()
        pool.run_one()
        self.assertNoResult(stopped)
        self.assertEqual(len(pool.queue), 1)
        pool.run_one()
        self.assertEqual(len(pool.queue), 1)
        pool.run_one()
        self.assertIsNone(self.successResultOf(stopped))
        for d in writes:
            self.assertIsNone(self.successResultOf(d))
        names = [c[0] for c in storage.calls]  # type: ignore[attr-defined]
        self.assertEqual(names, ["write", "write", "close"])

    def test_close_via(self) -> None:
        """With close_via, stop() closes the files through it (a session's
        batcher), not with a pool job of its own."""
        pool = ManualPool()
        storage = storage_in(self, RecordingStorage)
        closes: list[Any] = []

        def close_via(close: Any) -> defer.Deferred[None]:
            closes.append(close)
            close()
            return defer.succeed(None)

        store = Store(storage, FakeReactor(), pool, close_via=close_via)  # type: ignore[arg-type]
        store.start()
        written = store.write(0, 0, nonzero_bytes(16))
        pool.run_all()
        self.assertIsNone(self.successResultOf(written))
        stopped = store.stop()
        self.assertEqual(pool.queue, [])
        self.assertIsNone(self.successResultOf(stopped))
        self.assertEqual(len(closes), 1)
        self.assertEqual([c[0] for c in storage.calls], ["write", "close"])  # type: ignore[attr-defined]

    def test_cached_reads(self) -> None:
        """With cached_reads, a piece the page cache holds is read at once on
        the caller's thread; one it cannot answer (no open file) goes to the
        pool.  Without it every read is a pool job."""
        storage = storage_in(self)
        if not nowait_reads_work(storage._basedir):
            raise self.skipTest("no preadv2(RWF_NOWAIT) here")
        data = nonzero_bytes(48)
        for index in range(3):
            storage.write(index, 0, data[index * 16 : index * 16 + 16])
        pool = ManualPool()
        store = Store(storage, FakeReactor(), pool, cached_reads=True)  # type: ignore[arg-type]
        store.start()
        self.assertEqual(self.successResultOf(store.read_piece(1)), data[16:32])
        self.assertEqual(pool.queue, [])
        plain = Store(storage, FakeReactor(), pool)  # type: ignore[arg-type]
        plain.start()
        d = plain.read_piece(1)
        self.assertNoResult(d)
        pool.run_all()
        self.assertEqual(self.successResultOf(d), data[16:32])
        storage.close()  # no handle open now: the cached read must not open one
        d = store.read_piece(2)
        self.assertNoResult(d)
        pool.run_all()
        self.assertEqual(self.successResultOf(d), data[32:48])

    def test_injected_pool_left_alone(self) -> None:
        """An injected pool is neither started nor stopped, and no shutdown trigger is added."""
        reactor = FakeReactor()
        pool = ThreadPool()
        store = Store(storage_in(self), reactor=reactor, threadpool=pool)
        store.start()
        self.assertFalse(pool.started)
        self.assertEqual(reactor.triggers, {})

    def test_call_and_pool_accessors(self) -> None:
        """call() runs any function in the pool; reactor, threadpool and threads describe it."""
        reactor = FakeReactor()
        pool = ManualPool()
        store = Store(storage_in(self), reactor, pool, threads=3)  # type: ignore[arg-type]
        self.assertRaises(LocalProtocolError, lambda: store.reactor)
        self.assertIs(store.threadpool, pool)
        self.assertRaises(LocalProtocolError, lambda: Store(storage_in(self)).threadpool)
        self.assertRaises(LocalProtocolError, store.call, len, b"abc")
        store.start()
        self.assertIs(store.reactor, reactor)
        self.assertIs(store.threadpool, pool)
        d = store.call(int, "7", base=8)
        self.assertNoResult(d)
        pool.run_one()
        self.assertEqual(self.successResultOf(d), 7)
        injected = Store(storage_in(self), reactor, ThreadPool(maxthreads=5))
        self.assertEqual(injected.threads, 5)
        self.assertEqual(Store(storage_in(self), threads=2).threads, 2)

    def test_stopped_injected_pool_refused(self) -> None:
        """A call into an injected pool its owner has stopped raises at once
        (queued there, it would never run and its Deferred never fire)."""
        pool = ThreadPool()
        pool.start()
        store = Store(storage_in(self), FakeReactor(), pool)
        store.start()
        pool.stop()
        error = self.assertRaises(LocalProtocolError, store.read_piece, 0)
        self.assertIn("thread pool was stopped", str(error))

    def test_own_pool_shutdown_trigger(self) -> None:
        """start() starts a pool of its own with a shutdown trigger; stop() removes both."""
        self.patch(store_module, "ThreadPool", ManualPool)
        reactor = FakeReactor()
        store = Store(storage_in(self), reactor=reactor, threads=2)
        store.start()
        pool = store._pool
        assert isinstance(pool, ManualPool)
        self.assertTrue(pool.started)
        self.assertEqual(pool.max, 2)
        [(phase, event, _)] = reactor.triggers.values()
        self.assertEqual((phase, event), ("during", "shutdown"))
        d = store.stop()
        pool.run_one()
        self.successResultOf(d)
        self.assertEqual(reactor.triggers, {})
        self.assertTrue(pool.joined)

    def test_reactor_shutdown_first(self) -> None:
        """If the reactor shuts down first, its trigger finishes queued work and closes files."""
        self.patch(store_module, "ThreadPool", ManualPool)
        reactor = FakeReactor()
        storage = storage_in(self)
        store = Store(storage, reactor=reactor)
        store.start()
        d = store.write(0, 0, nonzero_bytes(16))
        [(_, _, shutdown)] = reactor.triggers.values()
        shutdown()
        self.successResultOf(d)
        self.assertFalse(store.running)
        self.assertEqual(storage._handles, {})
        self.assertRaises(LocalProtocolError, store.stop)

    def test_write_copies_buffer(self) -> None:
        """write() snapshots a mutable buffer, so the caller may reuse it at once."""
        pool = ManualPool()
        storage = storage_in(self)
        store = Store(storage, reactor=FakeReactor(), threadpool=pool)  # type: ignore[arg-type]
        store.start()
        buffer = bytearray(nonzero_bytes(16))
        d = store.write(0, 0, buffer)
        buffer[:] = b"\0" * 16
        pool.run_one()
        self.successResultOf(d)
        self.assertEqual(storage.read_piece(0), nonzero_bytes(16))

    def test_errors_arrive_as_failures(self) -> None:
        """A storage error reaches the caller as the Deferred's failure."""
        pool = ManualPool()
        store = Store(storage_in(self), FakeReactor(), pool)  # type: ignore[arg-type]
        store.start()
        d = store.read_piece(2)
        pool.run_one()
        self.failureResultOf(d, MissingDataError)


class StoreThreadTests(TestCase):
    """With the real reactor and a real thread pool."""

    def setUp(self) -> None:
        self.storage = storage_in(self, RecordingStorage)
        self.store = Store(self.storage)
        self.store.start()
        self.addCleanup(self.stop_if_running)

    def stop_if_running(self) -> defer.Deferred[None] | None:
        return self.store.stop() if self.store.running else None

    @defer.inlineCallbacks
    def test_round_trip_in_threads(self) -> Any:
        """Reads and writes run off the reactor thread; results arrive as Deferred results."""
        reactor_thread = threading.get_ident()
        data = nonzero_bytes(48)
        yield defer.gatherResults([
            self.store.write(i, 0, data[i * 16 : i * 16 + 16]) for i in range(3)
        ])
        got = yield defer.gatherResults([self.store.read_piece(i) for i in range(3)])
        self.assertEqual(b"".join(got), data)
        self.assertEqual((yield self.store.read(1, 4, 8)), data[20:28])
        stats = yield self.store.file_stats()
        self.assertEqual([s[0] for s in stats], [20, 28])
        calls = self.storage.calls  # type: ignore[attr-defined]
        self.assertEqual(len(calls), 7)
        for name, ident, in_io_thread in calls:
            self.assertNotEqual(ident, reactor_thread)
            self.assertFalse(in_io_thread)

    @defer.inlineCallbacks
    def test_priorities_sync_and_close(self) -> Any:
        """set_priorities, sync, close and part_stat run through the pool and keep data readable."""
        yield self.store.set_priorities([1, 0])
        yield self.store.write(1, 0, nonzero_bytes(16))
        cache = self.store.piece_cache()
        self.assertEqual(list(cache), [1])
        self.assertIsNotNone((yield self.store.part_stat()))
        yield self.store.sync()
        yield self.store.close()
        self.assertEqual((yield self.store.read_piece(1)), nonzero_bytes(16))
        yield self.store.set_priorities([1, 1])
        self.assertIsNone((yield self.store.part_stat()))

    @defer.inlineCallbacks
    def test_failure_from_thread(self) -> Any:
        """A MissingDataError raised in a thread fails the Deferred."""
        with self.assertRaises(MissingDataError):
            yield self.store.read_piece(0)

    @defer.inlineCallbacks
    def test_stop_leaves_no_threads(self) -> Any:
        """stop() closes the files in the pool and leaves no pool thread running."""
        yield self.store.write(0, 0, nonzero_bytes(16))
        pool = self.store._pool
        assert pool is not None
        threads = list(pool.threads)
        self.assertNotEqual(threads, [])
        yield self.store.stop()
        self.assertEqual([t for t in threads if t.is_alive()], [])
        self.assertEqual([t for t in threading.enumerate() if t in threads], [])
        self.assertEqual(self.storage._handles, {})
        names = [c[0] for c in self.storage.calls]  # type: ignore[attr-defined]
        self.assertEqual(names[-1], "close")
