"""daemon.recorder.Recorder: a magnet's fetched metadata and a torrent's
completion time reach the StateStore through the Session's EventBus."""

from __future__ import annotations

import os

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.metainfo import parse
from txbittorrent.daemon.recorder import Recorder
from txbittorrent.daemon.store import StateStore
from txbittorrent.eventtypes import Complete
from txbittorrent.session import Session
from txbittorrent.testing.data import make_torrent

TRACKER = "http://127.0.0.1:1/announce"


class RecorderTests(SynchronousTestCase):
    """A Session (never started) with one magnet torrent, a store, a Clock."""

    def setUp(self) -> None:
        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        self.basedir = base
        self.store = StateStore(os.path.join(base, "state.sqlite"))
        self.addCleanup(self.store.close)
        self.clock = Clock()
        self.clock.advance(1000)
        self.session = Session(self.clock, listen_interfaces=[])
        self.raw = make_torrent({"a.bin": 40_000, "b/c.txt": 100}, 16384, announce=TRACKER)
        self.metainfo = parse(self.raw)
        self.ih = self.metainfo.info_hash.hex()
        self.magnet = f"magnet:?xt=urn:btih:{self.ih}&tr={TRACKER}"
        self.recorder = Recorder(self.session, self.store, self.clock)

    def add(self, stored: bool = True) -> None:
        self.torrent = self.session.add(self.magnet, self.basedir)
        if stored:
            self.store.add_torrent(self.ih, self.magnet, name="x", save_path=self.basedir,
                                   added_at=1.0)

    def test_metadata_stored(self) -> None:
        """MetadataReceived stores a .torrent of the exact info bytes and the
        magnet's tracker; the magnet source is kept."""
        self.add()
        self.recorder.start()
        self.torrent.set_metainfo(self.metainfo)
        record = self.store.get(self.ih)
        assert record is not None and record.metainfo is not None
        stored = parse(record.metainfo)
        self.assertEqual(stored.info_hash, self.metainfo.info_hash)
        self.assertEqual(stored.info_bytes, self.metainfo.info_bytes)
        self.assertEqual(stored.trackers, ((TRACKER,),))
        self.assertEqual(record.source, self.magnet)

    def test_metadata_already_stored_is_kept(self) -> None:
        """A torrent whose metainfo is stored already is not rewritten."""
        self.add()
        self.store.set_metainfo(self.ih, self.raw)
        self.recorder.start()
        self.torrent.set_metainfo(self.metainfo)
        record = self.store.get(self.ih)
        assert record is not None
        self.assertEqual(record.metainfo, self.raw)

    def test_unknown_torrent_ignored(self) -> None:
        """A torrent the store does not know is not recorded (and no error)."""
        self.add(stored=False)
        self.recorder.start()
        self.torrent.set_metainfo(self.metainfo)
        self.session.events.publish(Complete(self.metainfo.info_hash))
        self.assertIsNone(self.store.get(self.ih))

    def test_completion_time(self) -> None:
        """Complete stores the clock's time once; a later Complete keeps it."""
        self.add()
        self.recorder.start()
        self.session.events.publish(Complete(self.metainfo.info_hash))
        record = self.store.get(self.ih)
        assert record is not None
        self.assertEqual(record.completed_at, 1000.0)
        self.clock.advance(50)
        self.session.events.publish(Complete(self.metainfo.info_hash))
        record = self.store.get(self.ih)
        assert record is not None
        self.assertEqual(record.completed_at, 1000.0)

    def test_stop(self) -> None:
        """After stop (idempotent) nothing is recorded; start is idempotent."""
        self.add()
        self.recorder.start()
        self.recorder.start()
        self.recorder.stop()
        self.recorder.stop()
        self.session.events.publish(Complete(self.metainfo.info_hash))
        record = self.store.get(self.ih)
        assert record is not None
        self.assertIsNone(record.completed_at)

    def test_store_error_logged(self) -> None:
        """A store that fails is logged; the publisher carries on."""
        self.add()
        self.recorder.start()
        self.store.close()
        self.session.events.publish(Complete(self.metainfo.info_hash))
        self.assertEqual(len(self.flushLoggedErrors()), 1)
