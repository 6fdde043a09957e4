"""Test doubles for code built on txbittorrent, shipped with the package as
``treq.testing`` ships ``StubTreq``.

txbittorrent's own tests use them; so can yours.  None of them starts a
thread, opens a socket or touches the global reactor (``wait_until`` aside),
so a ``twisted.trial.unittest.SynchronousTestCase`` can drive everything.
Only Twisted (and trial, which comes with it) is imported.

Reactor and thread pools (``txbittorrent.testing.reactor``)
    ``FakeReactor``
        A ``twisted.internet.task.Clock`` that also has ``callFromThread``
        (run at once, or held until ``run_thread_calls()``),
        ``getThreadPool``/``callInThread``, system event triggers
        (``fire_system_event``), ``callWhenRunning`` and a counted ``stop``.
    ``SyncPool``
        A ``ThreadPool`` stand-in that runs each job at once.
    ``ManualPool``
        A ``ThreadPool`` stand-in that holds each job in ``queue`` until the
        test calls ``run_one()`` or ``run_all()``.
    ``wait_until``
        Polls a predicate on a real reactor, for tests on loopback.

Peers (``txbittorrent.testing.peers``)
    ``FakePeerHost``
        A ``PeerHost`` (what a connection sees of its torrent) that records
        every call.
    ``FakePeerLink``
        A ``PeerLink`` (what a torrent sees of a connection) whose far end is
        a real ``PeerSession`` the test drives.

Torrents and files (``txbittorrent.testing.data``)
    ``make_torrent``, ``make_metainfo``
        A single- or multi-file torrent of given bytes, any piece length.
    ``nonzero_bytes``
        Patterned bytes in which an unwritten (zero) range stands out.
    ``make_files``, ``same_files``
        Write a tree of seeded random files; compare two trees.

An example: a ``Store`` whose disk work waits for the test::

    import os

    from twisted.trial.unittest import SynchronousTestCase

    from txbittorrent.storage.files import FileStorage
    from txbittorrent.storage.store import Store
    from txbittorrent.testing import FakeReactor, ManualPool, make_metainfo

    class StoreTests(SynchronousTestCase):
        def test_write_waits_for_the_pool(self) -> None:
            base = self.mktemp()
            os.makedirs(base)
            storage = FileStorage(make_metainfo(b"x" * 40, 16), base)
            self.addCleanup(storage.close)
            pool = ManualPool()
            store = Store(storage, FakeReactor(), pool)
            store.start()
            d = store.write(0, 0, b"x" * 16)
            self.assertNoResult(d)
            pool.run_one()
            self.successResultOf(d)
"""

from txbittorrent.testing.data import (
    make_files,
    make_metainfo,
    make_torrent,
    nonzero_bytes,
    same_files,
)
from txbittorrent.testing.peers import (
    DEFAULT_LAYOUT,
    FakePeerHost,
    FakePeerLink,
    connection_lost,
)
from txbittorrent.testing.reactor import FakeReactor, ManualPool, PoolJob, SyncPool, wait_until

__all__ = [
    "connection_lost",
    "DEFAULT_LAYOUT",
    "FakePeerHost",
    "FakePeerLink",
    "FakeReactor",
    "ManualPool",
    "PoolJob",
    "SyncPool",
    "make_files",
    "make_metainfo",
    "make_torrent",
    "nonzero_bytes",
    "same_files",
    "wait_until",
]
