"""OnDemand: torrents started by requests, stopped after the grace period,
on a Clock, over a fake session and fake torrents (and a real StateStore)."""

from __future__ import annotations

import os

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.magnet import Magnet
from txbittorrent.daemon.ondemand import OnDemand
from txbittorrent.daemon.store import StateStore
from txbittorrent.state import TorrentState

IH = bytes.fromhex("0123456789abcdef0123456789abcdef01234567")
IH2 = bytes.fromhex("89abcdef0123456789abcdef0123456789abcdef")
MAGNET = f"magnet:?xt=urn:btih:{IH2.hex()}&dn=film&tr=http%3A%2F%2Ft.example%2Fannounce"


class FakeTorrent:
    """A torrent's life cycle: start/stop move the state (at once, or when
    the test fires ``pending_stop``)."""

    def __init__(self, info_hash: bytes, state: TorrentState = TorrentState.STOPPED) -> None:
        self.info_hash = info_hash
        self.state = state
        self.name = "film"
        self.basedir = "/downloads"
        self.starts = 0
        self.stops = 0
        self.trackers: list[str] = []
        self.slow_stop = False
        self.pending_stop: Deferred[None] | None = None

    @property
    def magnet(self) -> Magnet:
        return Magnet(self.info_hash)

    def start(self) -> Deferred[None]:
        self.starts += 1
        if self.pending_stop is not None:  # start runs after the stop under way
            d: Deferred[None] = Deferred()

            def go(_: object) -> None:
                self.state = TorrentState.DOWNLOADING
                d.callback(None)

            self.pending_stop.addCallback(go)
            return d
        self.state = TorrentState.DOWNLOADING
        return succeed(None)

    def stop(self) -> Deferred[None]:
        self.stops += 1
        if self.slow_stop:
            self.pending_stop = Deferred()

            def done(_: object) -> None:
                self.pending_stop = None
                self.state = TorrentState.STOPPED

            d = Deferred()
            self.pending_stop.addCallback(done)
            self.pending_stop.chainDeferred(d)
            return d
        self.state = TorrentState.STOPPED
        return succeed(None)

    def add_tracker(self, url: str) -> None:
        self.trackers.append(url)


class FakeSession:
    def __init__(self) -> None:
        self.torrents: dict[bytes, FakeTorrent] = {}
        self.added: list[tuple[object, str]] = []

    def get(self, info_hash: bytes) -> FakeTorrent | None:
        return self.torrents.get(info_hash)

    def add(self, source: object, basedir: str, state: str = "active") -> FakeTorrent:
        self.added.append((source, basedir))
        ih = IH2 if isinstance(source, str) else bytes(source)  # type: ignore[arg-type]
        torrent = self.torrents[ih] = FakeTorrent(ih)
        return torrent


class OnDemandTests(SynchronousTestCase):
    """Start on demand, grace stop, and what is never stopped."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.session = FakeSession()
        self.store: StateStore | None = None

    def make(self, store: bool = False, **kwargs: object) -> OnDemand:
        if store:
            self.store = StateStore(os.path.join(self.mktemp() + ".sqlite"))
            self.addCleanup(self.store.close)
        on_demand = OnDemand(self.session, self.clock, 30, self.store,  # type: ignore[arg-type]
                             download_dir="/downloads", **kwargs)  # type: ignore[arg-type]
        on_demand.start()
        self.addCleanup(on_demand.stop)
        return on_demand

    def add(self, state: TorrentState = TorrentState.STOPPED) -> FakeTorrent:
        torrent = self.session.torrents[IH] = FakeTorrent(IH, state)
        return torrent

    def test_touch_starts_then_grace_stops(self) -> None:
        """A touch starts a stopped torrent; grace_seconds later without
        another touch it is stopped, and no timer is left."""
        on_demand = self.make()
        torrent = self.add()
        on_demand.touch(torrent)  # type: ignore[arg-type]
        self.assertEqual((torrent.starts, torrent.state), (1, TorrentState.DOWNLOADING))
        self.assertTrue(on_demand.owns(torrent))  # type: ignore[arg-type]
        self.clock.advance(29)
        self.assertEqual(torrent.stops, 0)
        self.clock.advance(1)
        self.assertEqual((torrent.stops, torrent.state), (1, TorrentState.STOPPED))
        self.assertFalse(on_demand.owns(torrent))  # type: ignore[arg-type]
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_touch_restarts_grace(self) -> None:
        """Each touch pushes the stop back by grace_seconds."""
        on_demand = self.make()
        torrent = self.add()
        on_demand.touch(torrent)  # type: ignore[arg-type]
        for _ in range(5):
            self.clock.advance(20)
            on_demand.touch(torrent)  # type: ignore[arg-type]
        self.assertEqual((torrent.starts, torrent.stops), (1, 0))
        self.clock.advance(30)
        self.assertEqual(torrent.stops, 1)

    def test_hold_keeps_running(self) -> None:
        """While a hold is out (a streaming response) no timer runs; the grace
        starts at the release, which counts once however often it is called."""
        on_demand = self.make()
        torrent = self.add()
        release = on_demand.hold(torrent)  # type: ignore[arg-type]
        second = on_demand.hold(torrent)  # type: ignore[arg-type]
        self.clock.advance(1000)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        release()
        release()
        self.assertEqual(self.clock.getDelayedCalls(), [])  # the second hold is out
        second()
        self.clock.advance(30)
        self.assertEqual(torrent.stops, 1)

    def test_user_started_never_stopped(self) -> None:
        """A torrent already running (the user started it) is never stopped."""
        on_demand = self.make()
        torrent = self.add(TorrentState.SEEDING)
        on_demand.touch(torrent)  # type: ignore[arg-type]
        on_demand.hold(torrent)()  # type: ignore[arg-type]
        self.clock.advance(1000)
        self.assertEqual((torrent.starts, torrent.stops), (0, 0))
        self.assertFalse(on_demand.owns(torrent))  # type: ignore[arg-type]
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_paused_left_alone(self) -> None:
        """A paused torrent is neither started nor stopped; one the user
        paused after we started it is not stopped."""
        on_demand = self.make()
        torrent = self.add(TorrentState.PAUSED)
        on_demand.touch(torrent)  # type: ignore[arg-type]
        self.assertEqual(torrent.starts, 0)
        torrent.state = TorrentState.STOPPED
        on_demand.touch(torrent)  # type: ignore[arg-type]
        torrent.state = TorrentState.PAUSED
        self.clock.advance(30)
        self.assertEqual(torrent.stops, 0)

    def test_removed_torrent_not_stopped(self) -> None:
        """A torrent the session let go is not stopped by the timer."""
        on_demand = self.make()
        torrent = self.add()
        on_demand.touch(torrent)  # type: ignore[arg-type]
        del self.session.torrents[IH]
        self.clock.advance(30)
        self.assertEqual(torrent.stops, 0)

    def test_hold_while_stopping_restarts(self) -> None:
        """A request arriving while the grace stop is under way starts the
        torrent again after it, and owns it again."""
        on_demand = self.make()
        torrent = self.add()
        torrent.slow_stop = True
        on_demand.touch(torrent)  # type: ignore[arg-type]
        self.clock.advance(30)
        self.assertEqual(torrent.stops, 1)
        self.assertEqual(torrent.state, TorrentState.DOWNLOADING)  # still stopping
        release = on_demand.hold(torrent)  # type: ignore[arg-type]
        self.assertEqual(torrent.starts, 2)
        assert torrent.pending_stop is not None
        torrent.pending_stop.callback(None)
        self.assertEqual(torrent.state, TorrentState.DOWNLOADING)
        self.assertTrue(on_demand.owns(torrent))  # type: ignore[arg-type]
        release()
        self.clock.advance(30)
        self.assertEqual(torrent.stops, 2)

    def test_stop_cancels_timers(self) -> None:
        """stop() cancels every grace timer and stops nothing."""
        on_demand = self.make()
        torrent = self.add()
        on_demand.touch(torrent)  # type: ignore[arg-type]
        on_demand.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(torrent.stops, 0)

    def test_acquire_magnet_records_and_starts(self) -> None:
        """A magnet the session lacks is added under download_dir, recorded
        (wanted "stopped") and started; grace stops it and stores "stopped"."""
        on_demand = self.make(store=True)
        torrent = on_demand.acquire(MAGNET)
        self.assertEqual(self.session.added, [(
            f"magnet:?xt=urn:btih:{IH2.hex()}&dn=film&tr=http://t.example/announce",
            "/downloads")])
        self.assertEqual(torrent.state, TorrentState.DOWNLOADING)
        assert self.store is not None
        record = self.store.get(IH2.hex())
        assert record is not None
        self.assertEqual((record.wanted, record.name, record.save_path),
                         ("stopped", "film", "/downloads"))
        self.assertIs(on_demand.acquire(MAGNET), torrent)  # the same one, no second add
        self.assertEqual(len(self.session.added), 1)
        self.assertEqual(torrent.trackers, ["http://t.example/announce"])
        self.clock.advance(30)
        self.assertEqual(torrent.state, TorrentState.STOPPED)
        self.assertEqual(self.store.get(IH2.hex()).wanted, "stopped")  # type: ignore[union-attr]

    def test_user_takes_back(self) -> None:
        """A torrent we started whose record the user set to "active" through
        the API meanwhile is not stopped."""
        on_demand = self.make(store=True)
        torrent = on_demand.acquire(MAGNET)
        assert self.store is not None
        self.store.update(IH2.hex(), wanted="active")
        self.clock.advance(30)
        self.assertEqual((torrent.stops, torrent.state), (0, TorrentState.DOWNLOADING))

    def test_acquire_info_hash_and_bad_sources(self) -> None:
        """20 bytes add a bare info hash; a string that is not a magnet or a
        malformed magnet is a ValueError (nothing opened or added)."""
        on_demand = self.make()
        torrent = on_demand.acquire(IH)
        self.assertEqual(self.session.added, [(IH, "/downloads")])
        self.assertEqual(torrent.starts, 1)
        for bad in ["/etc/passwd", "magnet:?xt=urn:btih:zz", b"short"]:
            self.assertRaises(ValueError, on_demand.acquire, bad)
        self.assertEqual(len(self.session.added), 1)

    def test_not_started_means_no_timers(self) -> None:
        """Before start() a hold starts the torrent but schedules no stop."""
        on_demand = OnDemand(self.session, self.clock, 30,  # type: ignore[arg-type]
                             download_dir="/downloads")
        torrent = self.add()
        on_demand.touch(torrent)  # type: ignore[arg-type]
        self.assertEqual(torrent.starts, 1)
        self.assertEqual(self.clock.getDelayedCalls(), [])
