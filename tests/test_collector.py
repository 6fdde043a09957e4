"""Tests for txbittorrent.collector.BulkLoad, on a fake ``gc`` module (and
once on the real one, restored afterwards)."""

from __future__ import annotations

import gc

from typing import Any

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.collector import BulkLoad, follow_restore
from txbittorrent.events import EventBus
from txbittorrent.eventtypes import TorrentAdded, TorrentRemoved


class FakeGC:
    """The part of the ``gc`` module a BulkLoad uses, recording calls."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.calls: list[str] = []

    def isenabled(self) -> bool:
        return self.enabled

    def disable(self) -> None:
        self.calls.append("disable")
        self.enabled = False

    def enable(self) -> None:
        self.calls.append("enable")
        self.enabled = True

    def freeze(self) -> None:
        self.calls.append("freeze")

    def unfreeze(self) -> None:
        self.calls.append("unfreeze")


class BulkLoadTests(SynchronousTestCase):
    """Pause, freeze, resume, thaw."""

    def test_constructor_does_nothing(self) -> None:
        """Making a BulkLoad touches no collector."""
        fake = FakeGC()
        load = BulkLoad(fake)
        self.assertEqual(fake.calls, [])
        self.assertFalse(load.loading)
        self.assertFalse(load.frozen)

    def test_start_and_finish(self) -> None:
        """start pauses collection; finish freezes, then enables it again."""
        fake = FakeGC()
        load = BulkLoad(fake)
        load.start()
        self.assertTrue(load.loading)
        self.assertFalse(fake.enabled)
        load.finish()
        self.assertEqual(fake.calls, ["disable", "freeze", "enable"])
        self.assertTrue(fake.enabled)
        self.assertTrue(load.frozen)
        self.assertFalse(load.loading)

    def test_collector_off_stays_off(self) -> None:
        """A process that had collection off keeps it off after finish."""
        fake = FakeGC(enabled=False)
        load = BulkLoad(fake)
        load.start()
        load.finish()
        self.assertFalse(fake.enabled)
        self.assertEqual(fake.calls, ["disable", "freeze"])

    def test_finish_twice_and_without_start(self) -> None:
        """finish without a start, or a second time, does nothing."""
        fake = FakeGC()
        load = BulkLoad(fake)
        load.finish()
        self.assertEqual(fake.calls, [])
        load.start()
        load.finish()
        load.finish()
        self.assertEqual(fake.calls, ["disable", "freeze", "enable"])

    def test_start_twice(self) -> None:
        """A second start before finish is refused (the first state would be lost)."""
        load = BulkLoad(FakeGC())
        load.start()
        self.assertRaises(RuntimeError, load.start)

    def test_thaw_once(self) -> None:
        """thaw unfreezes once, whatever it is given; before any freeze it does nothing."""
        fake = FakeGC()
        load = BulkLoad(fake)
        load.thaw()
        self.assertEqual(fake.calls, [])
        load.start()
        load.finish()
        load.thaw("an event")
        load.thaw()
        self.assertEqual(fake.calls, ["disable", "freeze", "enable", "unfreeze"])
        self.assertFalse(load.frozen)

    def test_for_exit(self) -> None:
        """for_exit pauses collection for good: a pending finish freezes
        nothing and turns nothing back on."""
        fake = FakeGC()
        load = BulkLoad(fake)
        load.start()
        load.for_exit()
        load.finish()
        self.assertFalse(fake.enabled)
        self.assertEqual(fake.calls, ["disable", "disable"])
        self.assertFalse(load.frozen)
        later = FakeGC()
        after = BulkLoad(later)
        after.start()
        after.finish()
        after.for_exit()
        self.assertFalse(later.enabled)

    def test_real_gc(self) -> None:
        """On the real collector: objects made during the load are frozen at
        finish and given back by thaw; collection is on again after finish."""
        self.addCleanup(gc.enable)
        self.addCleanup(gc.unfreeze)
        before = gc.get_freeze_count()
        load = BulkLoad()
        load.start()
        self.assertFalse(gc.isenabled())
        kept = [[i] for i in range(1000)]
        load.finish()
        self.assertTrue(gc.isenabled())
        self.assertGreaterEqual(gc.get_freeze_count() - before, len(kept))
        load.thaw()
        self.assertEqual(gc.get_freeze_count(), 0)


class _Session:
    def __init__(self) -> None:
        self.events = EventBus()


class _Service:
    def __init__(self) -> None:
        self.started: Deferred[Any] = Deferred()
        self.session: _Session | None = _Session()


class FollowRestoreTests(SynchronousTestCase):
    """``txbittorrent serve``'s use of a BulkLoad around the daemon's start."""

    def test_finish_then_thaw_at_first_removal(self) -> None:
        """The load finishes when the daemon has started (restore done); the
        first torrent removed thaws it; other events do not."""
        fake = FakeGC()
        load = BulkLoad(fake)
        load.start()
        service = _Service()
        follow_restore(service, load)
        self.assertTrue(load.loading, "not before the start fired")
        service.started.callback(None)
        self.assertEqual(fake.calls, ["disable", "freeze", "enable"])
        assert service.session is not None
        events = service.session.events
        events.publish(TorrentAdded(b"\x01" * 20, "a"))
        self.assertTrue(load.frozen)
        events.publish(TorrentRemoved(b"\x01" * 20))
        events.publish(TorrentRemoved(b"\x02" * 20))
        self.assertEqual(fake.calls, ["disable", "freeze", "enable", "unfreeze"])

    def test_failed_start(self) -> None:
        """A daemon that failed to start still gets its collector back, and
        the failure goes on to whoever waits for it."""
        fake = FakeGC()
        load = BulkLoad(fake)
        load.start()
        service = _Service()
        service.session = None
        follow_restore(service, load)
        service.started.errback(RuntimeError("port taken"))
        self.assertTrue(fake.enabled)
        self.failureResultOf(service.started, RuntimeError)
