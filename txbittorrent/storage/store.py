"""The Twisted face of ``FileStorage``: every disk call in a thread pool.

Theory of operation
-------------------
``Store`` wraps one ``storage.FileStorage`` and runs each of its blocking
calls in a thread pool with ``deferToThreadPool``, so no disk I/O (not even an
``open`` or ``fsync``) happens on the reactor thread.  Results and errors
(``StorageError``, ``MissingDataError``, ...) arrive as Deferred results.

Life cycle: ``new`` -> ``start()`` -> ``running`` -> ``stop()`` -> ``stopped``.
The constructor does nothing observable.  ``start()`` resolves the reactor
(the global one only if none was given) and, unless a pool was injected,
starts a pool of its own and arranges for it to stop at reactor shutdown.
``stop()`` refuses new calls at once, waits for the calls already made, closes
the files in the pool (through ``close_via``, a session's batcher, if given:
10,000 torrents stopping together then make a few pool jobs, not 10,000),
then stops its own pool; an injected pool belongs to
the caller, who starts and stops it.  Any call outside ``running`` raises
``LocalProtocolError`` synchronously: it is a bug in the caller.

One exception, with ``cached_reads``: ``read_piece`` first tries
``FileStorage.read_piece_cached``, which reads on the calling thread only
what the page cache holds (``preadv2`` with ``RWF_NOWAIT``) and never waits:
a seeder's pieces are nearly always there, and a pool job costs two thread
wake-ups (about 80 us of CPU here, more than the read), so a piece read
inline saves most of its cost.  Anything else goes to the pool as before.

``write`` copies a ``bytearray`` or ``memoryview`` into ``bytes`` before
handing it to a thread, so the caller may reuse its buffer at once.  ``call``
runs any other blocking function in the same pool (counted by ``stop()``);
``reactor``, ``threadpool`` and ``threads`` let a caller such as the hash
checker share the pool, but its work is then not counted by ``stop()``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from twisted.internet.defer import Deferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from txbittorrent._reactor import resolve_reactor
from txbittorrent.errors import LocalProtocolError
from txbittorrent.storage.files import FileStorage

__all__ = ["Store"]

_T = TypeVar("_T")

_NEW, _RUNNING, _STOPPING, _STOPPED = "new", "running", "stopping", "stopped"


class Store:
    """Deferred-returning disk access for one torrent."""

    def __init__(
        self,
        storage: FileStorage,
        reactor: Any = None,
        threadpool: ThreadPool | None = None,
        threads: int = 4,
        cached_reads: bool = False,
        close_via: Callable[[Callable[[], None]], Deferred[None]] | None = None,
    ) -> None:
        if threads < 1:
            raise ValueError("threads must be at least 1")
        self.storage = storage
        self._given_reactor = reactor
        self._reactor: Any = None
        self._pool = threadpool
        self._own_pool = threadpool is None
        self._threads = threads
        self.cached_reads = cached_reads
        """Let ``read_piece`` answer from the page cache on the calling
        thread when it can (see the module docstring)."""
        self._close_via = close_via
        """Runs ``stop()``'s close of the files instead of a pool job of its
        own (a session's ``JobBatcher``: thousands of torrents stopping
        together then close their files in a few pool jobs)."""
        self._state = _NEW
        self._outstanding = 0
        self._idle: list[Deferred[None]] = []
        self._trigger: Any = None

    # -- life cycle --------------------------------------------------------------

    def start(self) -> None:
        """Resolve the reactor and start the thread pool (unless injected)."""
        if self._state != _NEW:
            raise LocalProtocolError(f"Store.start() called when {self._state}")
        self._reactor = reactor = resolve_reactor(self._given_reactor)
        if self._own_pool:
            self._pool = ThreadPool(0, self._threads, name="txbittorrent-store")
            self._pool.start()
            self._trigger = reactor.addSystemEventTrigger("during", "shutdown", self._shutdown)
        self._state = _RUNNING

    def stop(self) -> Deferred[None]:
        """Finish outstanding calls, close every file, stop our pool."""
        if self._state != _RUNNING:
            raise LocalProtocolError(f"Store.stop() called when {self._state}")
        self._state = _STOPPING
        d = self._wait_idle()
        d.addCallback(self._close_files)
        d.addBoth(self._stopped)
        return d

    def _close_files(self, _: None) -> Deferred[None]:
        assert self._pool is not None
        if self._close_via is not None:
            return self._close_via(self.storage.close)
        return deferToThreadPool(self._reactor, self._pool, self.storage.close)

    def _stopped(self, result: object) -> Failure | None:
        self._state = _STOPPED
        if self._own_pool and self._pool is not None and self._trigger is not None:
            self._reactor.removeSystemEventTrigger(self._trigger)
            self._trigger = None
            self._pool.stop()
        return result if isinstance(result, Failure) else None

    def _shutdown(self) -> None:
        """The reactor is stopping before we were: stop the pool (which lets
        queued calls finish) and close the files, blocking, so that no
        non-daemon thread keeps the process alive."""
        self._state = _STOPPED
        self._trigger = None
        assert self._pool is not None
        self._pool.stop()
        self.storage.close()

    @property
    def running(self) -> bool:
        return self._state == _RUNNING

    def _wait_idle(self) -> Deferred[None]:
        if not self._outstanding:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    def _finished(self, result: _T) -> _T:
        self._outstanding -= 1
        if not self._outstanding:
            waiting, self._idle = self._idle, []
            for d in waiting:
                d.callback(None)
        return result

    def _call(self, name: str, f: Callable[..., _T], *args: Any, **kwargs: Any) -> Deferred[_T]:
        if self._state != _RUNNING:
            raise LocalProtocolError(f"Store.{name}() called when {self._state}")
        assert self._pool is not None
        if getattr(self._pool, "joined", False):  # its owner stopped it: would never run
            raise LocalProtocolError(f"Store.{name}() called after its thread pool was stopped")
        self._outstanding += 1
        d = deferToThreadPool(self._reactor, self._pool, f, *args, **kwargs)
        d.addBoth(self._finished)
        return d

    def call(self, f: Callable[..., _T], *args: Any, **kwargs: Any) -> Deferred[_T]:
        """Run any blocking ``f(*args, **kwargs)`` in the pool (a resume file
        write, say); ``stop()`` waits for it like for the storage calls."""
        return self._call("call", f, *args, **kwargs)

    # -- what callers that share the pool need -------------------------------------

    @property
    def reactor(self) -> Any:
        """The reactor, resolved by ``start()``."""
        if self._reactor is None:
            raise LocalProtocolError("Store.reactor is known only after start()")
        return self._reactor

    @property
    def threadpool(self) -> ThreadPool:
        """The pool the calls run in: the injected one, or ours once started."""
        if self._pool is None:
            raise LocalProtocolError("Store.threadpool is known only after start()")
        return self._pool

    @property
    def threads(self) -> int:
        """How many threads the pool may run at once."""
        return self._pool.max if self._pool is not None and not self._own_pool else self._threads

    # -- the storage API -----------------------------------------------------------

    def read(self, index: int, offset: int, length: int) -> Deferred[bytes]:
        return self._call("read", self.storage.read, index, offset, length)

    def read_piece(self, index: int) -> Deferred[bytes | bytearray]:
        if self.cached_reads and self._state == _RUNNING:
            data = self.storage.read_piece_cached(index)
            if data is not None:
                return succeed(data)
        return self._call("read_piece", self.storage.read_piece, index)

    def write(
        self, index: int, offset: int, data: bytes | bytearray | memoryview
    ) -> Deferred[None]:
        return self._call("write", self.storage.write, index, offset, bytes(data))

    def set_priorities(self, priorities: Sequence[int]) -> Deferred[None]:
        return self._call("set_priorities", self.storage.set_priorities, tuple(priorities))

    def create_empty_files(self) -> Deferred[None]:
        return self._call("create_empty_files", self.storage.create_empty_files)

    def sync(self) -> Deferred[None]:
        return self._call("sync", self.storage.sync)

    def close(self) -> Deferred[None]:
        """Close the files now (they reopen on the next call); the Store keeps running."""
        return self._call("close", self.storage.close)

    def file_stats(self) -> Deferred[list[tuple[int, int] | None]]:
        return self._call("file_stats", self.storage.file_stats)

    def part_stat(self) -> Deferred[tuple[int, int] | None]:
        return self._call("part_stat", self.storage.part_stat)

    def piece_cache(self) -> dict[int, int]:
        """The part-file index (a copy, read under the storage's lock; no I/O)."""
        return self.storage.piece_cache()
