"""Torrent.start/pause/stop, observers and when_complete, with two of our own
torrents talking over 127.0.0.1 (fast: a few hundred KiB)."""

from __future__ import annotations

import os
import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.trial.unittest import TestCase

from txbittorrent.storage.create import create_torrent
from txbittorrent.errors import LocalProtocolError
from txbittorrent.observers import TorrentObserver
from txbittorrent.testing import make_files, same_files, wait_until
from txbittorrent.torrent import Torrent

LOOPBACK = "127.0.0.1"
SIZES = {"a.bin": 300_000, "b/c.bin": 150_000}


class Recorder(TorrentObserver):
    """Keeps every notification."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def state_changed(self, torrent: Any, old: str, new: str) -> None:
        self.seen.append(("state", old, new))

    def completed(self, torrent: Any) -> None:
        self.seen.append(("completed",))

    def peer_connected(self, torrent: Any, peer: Any) -> None:
        self.seen.append(("peer", peer.address[0]))

    def piece_verified(self, torrent: Any, index: int, passed: bool) -> None:
        self.seen.append(("piece", passed))


class LifecycleTests(TestCase):
    """The life cycle of a Torrent on the real reactor."""

    timeout = 60

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        make_files(os.path.join(self.root, "seed", "t"), SIZES)
        os.makedirs(os.path.join(self.root, "leech"))
        self.raw = create_torrent(os.path.join(self.root, "seed", "t"), piece_length=16384)

    def torrent(self, where: str, **kwargs: Any) -> Torrent:
        t = Torrent(self.raw, basedir=os.path.join(self.root, where), reactor=reactor,
                    listen_interfaces=[LOOPBACK], **kwargs)
        self.addCleanup(t.close)
        return t

    def test_constructor_does_nothing(self) -> None:
        """Before start() the torrent is stopped, listens nowhere and has no peers."""
        t = self.torrent("seed")
        self.assertEqual(t.state, "stopped")
        self.assertEqual(t.peers(), [])
        self.assertEqual(t.port, 0)
        self.assertEqual(len(t.peerid), 20)
        self.assertTrue(t.peerid.startswith(b"-TX"))

    def test_bad_state(self) -> None:
        """Only 'active', 'started' (an alias) and 'paused' are start states."""
        self.assertRaises(ValueError, Torrent, self.raw, basedir=self.root, state="running")
        t = Torrent(self.raw, basedir=self.root, state="started")
        self.assertEqual(t.state, "stopped")

    @inlineCallbacks
    def test_download_with_observers(self) -> Any:
        """A leecher downloads from a seeder; observers hear states, peers, pieces and
        completion, and when_complete fires."""
        seeder = self.torrent("seed")
        leecher = self.torrent("leech")
        rec = Recorder()
        leecher.add_observer(rec)
        done = leecher.when_complete()
        yield seeder.start()
        self.assertEqual(seeder.state, "active")
        self.assertTrue(seeder.seed)
        yield leecher.start()
        self.assertNotEqual(leecher.port, 0)
        leecher.add_peers([(LOOPBACK, seeder.port)])
        result = yield done
        self.assertIs(result, leecher)
        self.assertEqual(same_files(os.path.join(self.root, "seed", "t"),
                                    os.path.join(self.root, "leech", "t"), list(SIZES)), [])
        self.assertIn(("state", "stopped", "active"), rec.seen)
        self.assertIn(("peer", LOOPBACK), rec.seen)
        self.assertIn(("completed",), rec.seen)
        self.assertEqual(rec.seen.count(("completed",)), 1)
        self.assertEqual(leecher.left, 0)
        self.assertGreaterEqual(leecher.downloaded, sum(SIZES.values()))
        self.assertGreaterEqual(seeder.uploaded, sum(SIZES.values()))
        yield leecher.stop()
        self.assertEqual(rec.seen[-1], ("state", "active", "stopped"))

    @inlineCallbacks
    def test_peers_given_before_start(self) -> Any:
        """Peers given while the torrent does not run (stopped, or checking
        its data) are kept, each once, and dialled when it starts."""
        seeder = self.torrent("seed")
        yield seeder.start()
        leecher = self.torrent("leech")
        self.assertEqual(leecher.add_peers([(LOOPBACK, seeder.port)] * 2), 1)
        self.assertEqual(leecher.add_peers([(LOOPBACK, seeder.port)]), 0)
        done = leecher.when_complete()
        yield leecher.start()
        yield done
        self.assertEqual(leecher.left, 0)

    @inlineCallbacks
    def test_progress_events(self) -> Any:
        """A running torrent publishes Progress on its timer; none once stopped."""
        seeder = self.torrent("seed", progress_interval=0.05)
        seen: list[Any] = []
        seeder.subscribe(seen.append, kinds="progress")
        yield seeder.start()
        yield wait_until(lambda: len(seen) >= 2, 10, "two progress events")
        event = seen[-1]
        self.assertEqual((event.have_pieces, event.piece_count), (seeder.piece_count,) * 2)
        self.assertEqual((event.bytes_done, event.left, event.peers), (seeder.size, 0, 0))
        yield seeder.stop()
        count = len(seen)
        yield deferLater(reactor, 0.15, lambda: None)
        self.assertEqual(len(seen), count)

    @inlineCallbacks
    def test_paused_serves_nothing(self) -> Any:
        """A paused seeder keeps accepting connections but sends no data; start()
        resumes it and the download completes."""
        seeder = self.torrent("seed", state="paused")
        yield seeder.start()
        self.assertEqual(seeder.state, "paused")
        leecher = self.torrent("leech")
        yield leecher.start()
        leecher.add_peers([(LOOPBACK, seeder.port)])
        yield wait_until(lambda: len(seeder.peers()) == 1, 10, "the connection")
        yield deferLater(reactor, 1.0, lambda: None)
        self.assertEqual(leecher.downloaded, 0)
        self.assertEqual(seeder.uploaded, 0)
        yield seeder.start()
        self.assertEqual(seeder.state, "active")
        yield wait_until(lambda: leecher.complete, 20, "the download")

    @inlineCallbacks
    def test_pause_then_stop_and_restart(self) -> Any:
        """pause() from active, stop(), then start() again works (the store and
        listener are made anew) and stop() closes the listening port."""
        t = self.torrent("seed")
        yield t.start()
        port = t.port
        yield t.pause()
        self.assertEqual(t.state, "paused")
        yield t.stop()
        self.assertEqual(t.state, "stopped")
        with socket.socket() as s:
            self.assertNotEqual(s.connect_ex((LOOPBACK, port)), 0)
        yield t.start()
        self.assertEqual(t.state, "active")
        self.assertTrue(t.seed)
        yield t.stop()

    @inlineCallbacks
    def test_stop_leaves_no_timers(self) -> Any:
        """After stop() no timer of the torrent is left on the reactor."""
        before = set(reactor.getDelayedCalls())
        t = self.torrent("seed")
        yield t.start()
        yield t.stop()
        yield deferLater(reactor, 0, lambda: None)
        left = [
            c for c in reactor.getDelayedCalls()
            if c not in before and c.active()
            and not getattr(c.func, "__module__", "").startswith("twisted.trial")
        ]
        self.assertEqual(left, [])

    @inlineCallbacks
    def test_close_refuses_use(self) -> Any:
        """After close(), hashcheck and start refuse with LocalProtocolError."""
        t = self.torrent("seed")
        yield t.start()
        yield t.close()
        self.assertRaises(LocalProtocolError, t.hashcheck)
        yield self.assertFailure(t.start(), LocalProtocolError)

    def test_trackers_when_stopped(self) -> None:
        """trackers() gives the BEP 12 tiers with fresh statuses before start()."""
        raw = create_torrent(os.path.join(self.root, "seed", "t"), piece_length=16384,
                             trackers=["http://127.0.0.1:1/a", ["udp://127.0.0.1:2",
                                                                "http://127.0.0.1:3/b"]])
        t = Torrent(raw, basedir=self.root, reactor=reactor)
        tiers = t.trackers()
        self.assertEqual([len(tier) for tier in tiers], [1, 2])
        self.assertEqual(tiers[0][0].url, "http://127.0.0.1:1/a")
        self.assertEqual(tiers[0][0].failures, 0)

    @inlineCallbacks
    def test_reannounce(self) -> Any:
        """reannounce() is False unless the torrent runs; running, it asks
        the announcer to announce now."""
        t = self.torrent("seed")
        self.assertFalse(t.reannounce())
        yield t.start()
        forced: list[bool] = []
        t._run.announcer.force_announce = lambda: forced.append(True)  # type: ignore[union-attr]
        self.assertTrue(t.reannounce())
        self.assertEqual(forced, [True])
        yield t.stop()
        self.assertFalse(t.reannounce())

    @inlineCallbacks
    def test_each_step_its_own_deferred(self) -> Any:
        """start(), pause() and stop() each return their own Deferred, run in order."""
        t = self.torrent("seed")
        order: list[str] = []
        d1 = t.start().addCallback(lambda _: order.append(t.state))
        d2 = t.pause().addCallback(lambda _: order.append(t.state))
        d3 = t.stop().addCallback(lambda _: order.append(t.state))
        self.assertIsNot(d1, d2)
        self.assertIsNot(d2, d3)
        yield d3
        self.assertEqual(order, ["active", "paused", "stopped"])
