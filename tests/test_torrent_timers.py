"""A running torrent's timers on a fake clock: the resume save only when
something changed, Progress every interval with peers and rarely without,
one pool job per reading and per saving of the resume record."""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.eventtypes import Progress
from txbittorrent.session import Session
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import FakeReactor, SyncPool, make_files
from txbittorrent.torrent import PROGRESS_IDLE_SLOTS, Torrent

PIECE = 16 * 1024


class _CountingPool(SyncPool):
    """Runs every job at once and counts them."""

    def __init__(self) -> None:
        super().__init__()
        self.jobs = 0

    def callInThreadWithCallback(self, *args: Any, **kwargs: Any) -> None:
        self.jobs += 1
        super().callInThreadWithCallback(*args, **kwargs)


class _SyncSession(Session):
    """A session whose torrents' disk work runs at once, in the test's thread."""

    pool = _CountingPool()

    @property
    def threadpool(self) -> Any:
        return self.pool


class TorrentTimerTests(SynchronousTestCase):
    """Timers of a complete torrent with a resume record, on a FakeReactor."""

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        make_files(os.path.join(self.root, "d"), {"a.bin": 5 * PIECE + 10}, seed=3)
        self.raw = create_torrent(os.path.join(self.root, "d"), piece_length=PIECE)
        self.reactor = FakeReactor()
        self.session = _SyncSession(reactor=self.reactor, listen_interfaces=())
        self.session.pool = _CountingPool()
        self.session.start()
        self.resume = os.path.join(self.root, "t.resume")

    def torrent(self, **options: Any) -> Torrent:
        t = Torrent(self.raw, basedir=self.root, reactor=self.reactor, session=self.session,
                    resume_path=self.resume, **options)
        self.addCleanup(t.close)
        return t

    def started(self, **options: Any) -> Torrent:
        """A torrent started with a clean record, so nothing is hashed."""
        t = self.torrent(**options)
        self.successResultOf(t.start())
        self.successResultOf(t.stop())
        self.successResultOf(t.start())
        return t

    def restarted(self) -> tuple[Torrent, list[int]]:
        """A torrent that ran and stopped cleanly, and its successor (not started)."""
        t = self.torrent()
        self.successResultOf(t.start())
        self.successResultOf(self.session.remove(t.info_hash))
        passed: list[int] = []
        again = Torrent(self.raw, basedir=self.root, reactor=self.reactor,
                        session=self.session, resume_path=self.resume,
                        on_hash_pass=passed.append)
        self.addCleanup(again.close)
        return again, passed

    def record(self) -> Any:
        from txbittorrent.storage.resumefile import load_record

        t = self.torrent()
        return load_record(self.resume, t.info_hash, t.piece_count, 1)

    def test_clean_record_start_and_stop_write_nothing(self) -> None:
        """Starting from a clean record trusted in full reads it (with the
        files' stats) in one job and writes nothing; stopping with nothing
        changed leaves the clean record as it is (one job: closing files)."""
        again, passed = self.restarted()
        mtime = os.stat(self.resume).st_mtime_ns
        before = self.session.pool.jobs
        self.successResultOf(again.start())
        self.assertEqual(self.session.pool.jobs - before, 1)
        self.assertEqual(passed, [])
        self.assertTrue(again.seed)
        before = self.session.pool.jobs
        self.successResultOf(again.stop())
        self.assertEqual(self.session.pool.jobs - before, 1)
        self.assertEqual(os.stat(self.resume).st_mtime_ns, mtime)
        self.assertTrue(self.record().clean)

    def test_record_unclean_before_a_write(self) -> None:
        """Before the data is first written the clean record is rewritten as
        unclean, and the write waits for that; the stop then saves it clean."""
        again, _ = self.restarted()
        self.successResultOf(again.start())
        data = again._data
        assert data is not None
        self.assertTrue(data.clean_on_disk)
        first = data.before_write()
        assert first is not None
        self.successResultOf(first)
        self.assertFalse(self.record().clean)
        self.assertIsNone(data.before_write())
        self.successResultOf(again.set_file_priority(0, 2))
        self.successResultOf(again.stop())
        record = self.record()
        self.assertTrue(record.clean)
        self.assertEqual(record.priorities, (2,))

    def test_idle_torrent_schedules_one_timer(self) -> None:
        """A started torrent without peers has one timer: its Progress heartbeat."""
        t = self.started(progress_interval=1.0)
        self.assertEqual(len(self.reactor.getDelayedCalls()), 1)
        self.successResultOf(t.stop())
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_save_skipped_while_nothing_changes(self) -> None:
        """The periodic save writes nothing while no piece or priority changed;
        a change makes the next one write."""
        t = self.started(resume_save_interval=10.0, progress_interval=0)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        mtime = os.stat(self.resume).st_mtime_ns
        before = self.session.pool.jobs
        self.reactor.advance(100)
        self.assertEqual(self.session.pool.jobs, before)
        self.successResultOf(t.set_file_priority(0, 2))
        jobs = self.session.pool.jobs
        (call,) = self.reactor.getDelayedCalls()
        self.assertEqual(call.getTime(), 110.0)
        self.reactor.advance(10)
        self.assertEqual(self.session.pool.jobs, jobs + 1)
        self.assertGreaterEqual(os.stat(self.resume).st_mtime_ns, mtime)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_idle_progress_heartbeat(self) -> None:
        """Without peers, Progress comes on the first interval and then every
        PROGRESS_IDLE_SLOTS intervals."""
        t = self.started(progress_interval=1.0)
        seen: list[Progress] = []
        t.subscribe(seen.append, kinds="progress")
        self.reactor.pump([1.0] * (2 * PROGRESS_IDLE_SLOTS + 1))
        self.assertEqual(len(seen), 3)
        self.assertEqual({(e.have_pieces, e.left, e.peers) for e in seen},
                         {(t.piece_count, 0, 0)})
