"""The engine's session-level features on real sockets: one port for many
torrents, IPv6, the UDP tracker, tracker events, rate and connection limits,
and never dialling ourselves.

Everything listens on 127.0.0.1 (or ::1) only, is bounded in time, and stops
every torrent, session, tracker and listening port it starts.  Rates are
measured on the reactor's clock over a fixed window after a warm-up.
"""

from __future__ import annotations

import os
import random
import socket
from typing import Any
from urllib.parse import parse_qs

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import LoopingCall, deferLater
from twisted.logger import Logger
from twisted.protocols.portforward import ProxyFactory
from twisted.trial.unittest import SkipTest
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.integration import ltutil
from tests.integration.temproot import TempRootCase
from txbittorrent.core.metainfo import parse
from txbittorrent.core.tracker.registry import TrackerState
from txbittorrent.storage.create import create_torrent
from txbittorrent.observers import TorrentObserver
from txbittorrent.session import Session, SessionConfig
from txbittorrent.swarm.config import SwarmConfig
from txbittorrent.testing import make_files, same_files, wait_until
from txbittorrent.torrent import Torrent
from txbittorrent.tracker.server import HTTPTrackerResource, start_tracker

_log = Logger()

LOOPBACK = "127.0.0.1"
LOOPBACK6 = "::1"
KiB = 1024
MiB = 1024 * KiB

RATE = 2 * MiB
"""The rate limit the limit tests set, bytes per second."""
WARM_UP = 2.0
"""Seconds of transfer before the measuring window opens."""
WINDOW = 10.0
"""Seconds the measuring window lasts."""
TOLERANCE = 0.10
"""How far from the limit the measured rate may be (the issue's 10%)."""
RATE_DATA = 40 * MiB
"""Big enough that (WARM_UP + WINDOW) * RATE (24 MiB) cannot finish it."""


def has_ipv6_loopback() -> bool:
    """Whether a socket can be bound to ::1 here."""
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind((LOOPBACK6, 0))
    except OSError:
        return False
    return True


class Peers(TorrentObserver):
    """Records the connections a torrent accepted."""

    def __init__(self) -> None:
        self.infos: list[Any] = []
        """The ``PeerInfo`` of each accepted connection, in order."""

    @property
    def connected(self) -> list[Any]:
        return [info.address for info in self.infos]

    def peer_connected(self, torrent: Any, peer: Any) -> None:
        self.infos.append(peer)


class Replies(TorrentObserver):
    """Records the torrent's tracker status as each tracker reply arrives."""

    def __init__(self) -> None:
        self.statuses: list[Any] = []
        self.errors: list[tuple[str, str]] = []

    def tracker_reply(self, torrent: Any, url: str, response: Any) -> None:
        (status,) = [s for tier in torrent.trackers() for s in tier if s.url == url]
        self.statuses.append(status)

    def tracker_error(self, torrent: Any, url: str, error: str) -> None:
        self.errors.append((url, error))


class EventLog(Resource):
    """Wraps the tracker's resource and records each announce's event."""

    isLeaf = True

    def __init__(self, inner: HTTPTrackerResource) -> None:
        super().__init__()
        self.inner = inner
        self.announces: list[tuple[bytes, str, int]] = []
        """(peer_id, event or "", left) of each announce, in arrival order."""

    def events(self, peer_id: bytes) -> list[tuple[str, int]]:
        """(event, left) of each announce from ``peer_id``."""
        return [(event, left) for p, event, left in self.announces if p == peer_id]

    def render_GET(self, request: Any) -> bytes:
        query = parse_qs(request.uri.partition(b"?")[2].decode("latin-1"), encoding="latin-1")
        if request.postpath == [b"announce"]:
            peer_id = query.get("peer_id", [""])[0].encode("latin-1")
            event = query.get("event", [""])[0]
            self.announces.append((peer_id, event, int(query.get("left", ["-1"])[0])))
        return self.inner.render_GET(request)


class SessionTestBase(TempRootCase):
    """Temp dirs, torrents made from seeded random files, cleanup of everything."""

    timeout = 60
    make_dirs = True

    def setUp(self) -> None:
        self.make_root(remove=True)

    def make_torrent(self, name: str, sizes: dict[str, int], piece_length: int = 64 * KiB,
                     trackers: list[str] | None = None, seed: int = 1) -> bytes:
        """A .torrent of a tree ``name`` of random files under ``seed/``."""
        source = os.path.join(self.path("seed"), name)
        make_files(source, sizes, seed=seed)
        return create_torrent(source, piece_length=piece_length, trackers=trackers or [])

    def torrent(self, raw: bytes, basedir: str, **kwargs: Any) -> Torrent:
        """A Torrent on the real reactor, closed in cleanup; loopback unless told."""
        if "session" not in kwargs:
            kwargs.setdefault("listen_interfaces", [LOOPBACK])
        t = Torrent(raw, basedir=basedir, reactor=reactor, **kwargs)
        self.addCleanup(t.close)
        return t

    def session(self, **kwargs: Any) -> Any:
        """A started shared Session on loopback, stopped in cleanup."""
        kwargs.setdefault("listen_interfaces", (LOOPBACK,))
        s = Session(reactor=reactor, **kwargs)
        self.addCleanup(s.stop)
        return s

    def assert_same(self, name: str, basedir: str, sizes: dict[str, int]) -> None:
        bad = same_files(os.path.join(self.root, "seed", name),
                         os.path.join(basedir, name), list(sizes))
        self.assertEqual(bad, [])


class SharedSessionTests(SessionTestBase):
    """Many torrents behind one listening port."""

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        super().setUp()

    @inlineCallbacks
    def test_two_torrents_one_port(self) -> Any:
        """A libtorrent leecher downloads two torrents from one port of ours, byte for byte."""
        session = self.session()
        yield session.start()
        port = session.port
        sizes_a = {"a.bin": 2 * MiB + 777, "b.txt": 3000}
        sizes_b = {"c.bin": 3 * MiB + 5}
        raw_a = self.make_torrent("alpha", sizes_a, seed=11)
        raw_b = self.make_torrent("beta", sizes_b, seed=12)
        seed_a = self.torrent(raw_a, self.path("seed"), session=session)
        seed_b = self.torrent(raw_b, self.path("seed"), session=session)
        seen_a, seen_b = Peers(), Peers()
        seed_a.add_observer(seen_a)
        seed_b.add_observer(seen_b)
        yield seed_a.start()
        yield seed_b.start()
        self.assertTrue(seed_a.seed and seed_b.seed)
        # Both did their disk work in the session's one pool.
        self.assertIs(seed_a._store.threadpool, session.threadpool)
        self.assertIs(seed_b._store.threadpool, session.threadpool)
        self.assertEqual((seed_a.port, seed_b.port), (port, port))
        self.assertEqual(session.listening_addresses, [(LOOPBACK, port)])

        lt = ltutil.make_session(self)
        handles = [ltutil.add_torrent(lt, raw, self.path("lt")) for raw in (raw_a, raw_b)]
        for handle in handles:
            handle.connect_peer((LOOPBACK, port))
        yield wait_until(lambda: all(h.status().is_seeding for h in handles), 60,
                         "libtorrent to finish both",
                         lambda: "; ".join(ltutil.describe(h) for h in handles))
        # Each torrent accepted libtorrent's incoming connection on the one port.
        for seen in (seen_a, seen_b):
            self.assertTrue(seen.infos)
            self.assertEqual({(p.address[0], p.outgoing, p.peer_id[:3]) for p in seen.infos},
                             {(LOOPBACK, False, b"-LT")})
        self.assertGreaterEqual(seed_a.uploaded, sum(sizes_a.values()))
        self.assertGreaterEqual(seed_b.uploaded, sum(sizes_b.values()))
        self.assert_same("alpha", self.path("lt"), sizes_a)
        self.assert_same("beta", self.path("lt"), sizes_b)
        yield seed_a.stop()
        yield seed_b.stop()
        self.assertTrue(session.running, "stopping a torrent leaves a shared session running")
        yield session.stop()
        self.assertEqual(session.listening_addresses, [])
        self.assertEqual(list(session.links()), [])


class IPv6Tests(SessionTestBase):
    """Peers over ::1."""

    def setUp(self) -> None:
        if not has_ipv6_loopback():
            raise SkipTest("this host has no ::1")
        super().setUp()

    @inlineCallbacks
    def test_download_over_ipv6_loopback(self) -> Any:
        """Our leecher downloads from our seeder over ::1 and each sees the other at ::1."""
        sizes = {"v6.bin": 3 * MiB + 99}
        raw = self.make_torrent("six", sizes, seed=6)
        seeder = self.torrent(raw, self.path("seed"), listen_interfaces=[LOOPBACK6])
        yield seeder.start()
        leecher = self.torrent(raw, self.path("leech"), listen_interfaces=[LOOPBACK6])
        yield leecher.start()
        seen_by_seeder = Peers()
        seeder.add_observer(seen_by_seeder)
        leecher.add_peers([(LOOPBACK6, seeder.port)])
        yield wait_until(lambda: leecher.peers(), 20, "a connection over ::1")
        self.assertEqual([p.address for p in leecher.peers()], [(LOOPBACK6, seeder.port)])
        yield wait_until(lambda: leecher.complete, 60, "the download over ::1",
                         lambda: f"left={leecher.left}")
        self.assertEqual({a[0] for a in seen_by_seeder.connected}, {LOOPBACK6})
        self.assertGreaterEqual(leecher.downloaded, sum(sizes.values()))
        yield leecher.stop()
        self.assert_same("six", self.path("leech"), sizes)


class UDPTrackerTests(SessionTestBase):
    """Peers that meet only through a BEP 15 tracker."""

    def tracker_status(self, t: Torrent, url: str) -> Any:
        (tier,) = t.trackers()
        (status,) = tier
        self.assertEqual(status.url, url)
        return status

    def answered(self, t: Torrent, url: str) -> bool:
        """The tracker answered; a failure ends the wait at once."""
        status = self.tracker_status(t, url)
        if status.failures:
            self.fail(f"the announce failed: {status!r}")
        return status.next_announce is not None and not status.updating

    @inlineCallbacks
    def meet(self) -> Any:
        """A seeder announces, then a leecher; the leecher completes from the
        seeder the tracker named; both stop and the tracker forgets them."""
        tracker = yield start_tracker(reactor, LOOPBACK, interval=30)
        self.addCleanup(tracker.stop)
        url = tracker.udp_url
        sizes = {"u.bin": 2 * MiB + 3}
        raw = self.make_torrent("udp", sizes, trackers=[url], seed=15)
        seeder = self.torrent(raw, self.path("seed"))
        yield seeder.start()
        yield wait_until(lambda: self.answered(seeder, url), 20, "the seeder's announce")
        leecher = self.torrent(raw, self.path("leech"))
        replies, seen = Replies(), Peers()
        leecher.add_observer(replies)
        leecher.add_observer(seen)
        yield leecher.start()
        yield wait_until(lambda: leecher.complete, 60, "the download",
                         lambda: f"left={leecher.left} {self.tracker_status(leecher, url)!r}")
        self.assertEqual(replies.errors, [])
        first = replies.statuses[0]
        self.assertEqual((first.failures, first.last_error), (0, None))
        self.assertEqual((first.peers, first.complete), (1, 1), "the seeder, from the tracker")
        status = self.tracker_status(leecher, url)
        self.assertEqual((status.failures, status.last_error), (0, None))
        self.assertEqual(seen.connected, [(LOOPBACK, seeder.port)], "dialled as the tracker said")
        yield leecher.stop()
        yield seeder.stop()
        self.assertEqual(tracker.state.peers(parse(raw).info_hash), ())
        self.assert_same("udp", self.path("leech"), sizes)

    def test_peers_meet_through_udp_tracker(self) -> Any:
        """A seeder and a leecher find each other through a udp:// tracker alone,
        each announcing over its session's one UDP socket."""
        return self.meet()

    @inlineCallbacks
    def test_udp_socket_on_the_listening_port(self) -> Any:
        """The session's UDP socket takes the TCP listening port's number."""
        tracker = yield start_tracker(reactor, LOOPBACK, interval=30)
        self.addCleanup(tracker.stop)
        raw = self.make_torrent("udp1", {"u.bin": 100_000}, trackers=[tracker.udp_url], seed=3)
        seeder = self.torrent(raw, self.path("seed1"))
        yield seeder.start()
        yield wait_until(lambda: self.answered(seeder, tracker.udp_url), 20, "the announce")
        mux = seeder._run.session.udp
        self.assertEqual(mux.port, seeder.port)


class HTTPTrackerEventTests(SessionTestBase):
    """started, completed and stopped reach an HTTP tracker."""

    @inlineCallbacks
    def swarm(self) -> Any:
        """A seeder and a leecher meet through a recording HTTP tracker; the
        leecher completes and stops, then the seeder stops.  Fires with the
        tracker's ``EventLog``, the seeder and the leecher."""
        state = TrackerState(random.Random(4), interval=30)
        log = EventLog(HTTPTrackerResource(state, reactor))
        site = Site(log)
        site.noisy = False
        listening = reactor.listenTCP(0, site, interface=LOOPBACK)
        self.addCleanup(listening.stopListening)
        url = f"http://{LOOPBACK}:{listening.getHost().port}/announce"
        sizes = {"h.bin": 2 * MiB + 1}
        raw = self.make_torrent("http", sizes, trackers=[url], seed=21)
        info_hash = parse(raw).info_hash
        seeder = self.torrent(raw, self.path("seed"))
        yield seeder.start()
        leecher = self.torrent(raw, self.path("leech"))
        yield leecher.start()
        lid = leecher.peer_id

        def record() -> Any:
            return {r.peer_id: r for r in state.peers(info_hash)}.get(lid)

        yield wait_until(lambda: leecher.complete, 60, "the download",
                         lambda: f"left={leecher.left} announces={log.announces}")
        yield wait_until(lambda: ("completed", 0) in log.events(lid), 10, "completed",
                         lambda: repr(log.announces))
        self.assertEqual(record().left, 0, "the tracker sees the leecher as a seed")
        self.assertEqual(state.scrape([info_hash], reactor.seconds())[info_hash].downloaded, 1)
        yield leecher.stop()
        self.assertIsNone(record(), "the tracker forgot the stopped leecher")
        yield seeder.stop()
        self.assertEqual(state.peers(info_hash), ())
        self.assert_same("http", self.path("leech"), sizes)
        return log, seeder, leecher

    @inlineCallbacks
    def test_leecher_events(self) -> Any:
        """A leecher announces started, then completed (it becomes a seed), then stopped."""
        log, _, leecher = yield self.swarm()
        self.assertEqual(log.events(leecher.peer_id),
                         [("started", 2 * MiB + 1), ("completed", 0), ("stopped", 0)])

    @inlineCallbacks
    def test_seeder_sends_no_completed(self) -> Any:
        """A torrent complete when started announces started and stopped, never completed."""
        log, seeder, _ = yield self.swarm()
        self.assertEqual(log.events(seeder.peer_id), [("started", 0), ("stopped", 0)])



class RateLimitTests(SessionTestBase):
    """Rate limits hold within 10% over 10 s on real sockets."""

    @inlineCallbacks
    def measure(self, leechers: list[Torrent]) -> Any:
        """Bytes per second the ``leechers`` received together during WINDOW
        seconds after WARM_UP seconds of transfer (reactor time)."""
        yield wait_until(lambda: sum(t.downloaded for t in leechers) > 0, 20,
                         "the first bytes")
        yield deferLater(reactor, WARM_UP, lambda: None)
        t0, b0 = reactor.seconds(), sum(t.downloaded for t in leechers)
        parts0 = [t.downloaded for t in leechers]
        yield deferLater(reactor, WINDOW, lambda: None)
        t1, b1 = reactor.seconds(), sum(t.downloaded for t in leechers)
        parts = [(t.downloaded - p) / (t1 - t0) for t, p in zip(leechers, parts0)]
        for t in leechers:
            self.assertFalse(t.complete, "the data must outlast the window")
        _log.info("{test}: {rate:.4f} MiB/s over {window:.3f} s (parts {parts})",
                  test=self.id(), rate=(b1 - b0) / (t1 - t0) / MiB, window=t1 - t0,
                  parts=[round(p / MiB, 4) for p in parts])
        return (b1 - b0) / (t1 - t0), parts

    def assert_near(self, rate: float, limit: float) -> None:
        low, high = limit * (1 - TOLERANCE), limit * (1 + TOLERANCE)
        self.assertTrue(low <= rate <= high,
                        f"{rate / MiB:.3f} MiB/s is not within 10% of {limit / MiB:.3f} MiB/s")

    @inlineCallbacks
    def pair(self, name: str, seed: int, *, seeder_kw: Any = None,
             leecher_kw: Any = None) -> Any:
        """A started seeder and a started leecher of a RATE_DATA torrent, connected."""
        raw = self.make_torrent(name, {"big.bin": RATE_DATA}, piece_length=256 * KiB,
                                seed=seed)
        seeder = self.torrent(raw, self.path("seed"), **(seeder_kw or {}))
        yield seeder.start()
        leecher = self.torrent(raw, self.path("leech"), **(leecher_kw or {}))
        yield leecher.start()
        leecher.add_peers([(LOOPBACK, seeder.port)])
        return seeder, leecher

    @inlineCallbacks
    def test_download_limit(self) -> Any:
        """A leecher's download_limit holds within 10% over 10 s."""
        seeder, leecher = yield self.pair("down", 31, leecher_kw={"download_limit": RATE})
        rate, _ = yield self.measure([leecher])
        self.assert_near(rate, RATE)

    @inlineCallbacks
    def test_upload_limit(self) -> Any:
        """A seeder's upload_limit holds within 10% over 10 s."""
        seeder, leecher = yield self.pair("up", 32, seeder_kw={"upload_limit": RATE})
        rate, _ = yield self.measure([leecher])
        self.assert_near(rate, RATE)

    @inlineCallbacks
    def test_session_limit_shared(self) -> Any:
        """A Session's download limit holds within 10% for two torrents together."""
        shared = self.session(config=SessionConfig(download_limit=RATE))
        yield shared.start()
        leechers = []
        for n in range(2):
            raw = self.make_torrent(f"g{n}", {"big.bin": RATE_DATA}, piece_length=256 * KiB,
                                    seed=40 + n)
            seeder = self.torrent(raw, self.path("seed"))
            yield seeder.start()
            leecher = self.torrent(raw, self.path(f"leech{n}"), session=shared)
            yield leecher.start()
            leecher.add_peers([(LOOPBACK, seeder.port)])
            leechers.append(leecher)
        rate, parts = yield self.measure(leechers)
        self.assert_near(rate, RATE)
        self.assertTrue(all(p > 0 for p in parts), f"each torrent moves: {parts}")


class ConnectionLimitTests(SessionTestBase):
    """max_peers is never exceeded."""

    @inlineCallbacks
    def test_max_peers(self) -> Any:
        """A torrent with max_peers=2 facing four seeders never has more than two
        peers, and completes."""
        sizes = {"m.bin": 6 * MiB}
        raw = self.make_torrent("many", sizes, piece_length=64 * KiB, seed=51)
        leecher = self.torrent(raw, self.path("leech"), max_peers=2)
        yield leecher.start()
        seeders = []
        for n in range(4):
            s = self.torrent(raw, self.path("seed"), upload_limit=1 * MiB)
            yield s.start()
            seeders.append(s)
        counts: list[int] = []
        poll = LoopingCall(lambda: counts.append(len(leecher.peers())))
        poll.clock = reactor
        poll.start(0.01)
        self.addCleanup(lambda: poll.stop() if poll.running else None)
        # Four candidates to dial, and four seeders dialling in.
        leecher.add_peers([(LOOPBACK, s.port) for s in seeders])
        for s in seeders:
            s.add_peers([(LOOPBACK, leecher.port)])
        yield wait_until(lambda: leecher.complete, 60, "the download",
                         lambda: f"left={leecher.left} peers={len(leecher.peers())}")
        poll.stop()
        self.assertLessEqual(max(counts), 2, "never more than max_peers")
        self.assertEqual(max(counts), 2, "both slots were used")
        yield leecher.stop()
        self.assert_same("many", self.path("leech"), sizes)


FAST_DIAL = SwarmConfig(connect_interval=0.2, reconnect_backoff=(0.5,) * 5)
"""Top-ups five times a second and short backoffs, so a wrong re-dial shows quickly."""


class SelfConnectionTests(SessionTestBase):
    """We never connect to ourselves."""

    OWN_FORMS = (LOOPBACK, "::ffff:127.0.0.1", "0.0.0.0", "localhost")
    """Ways of writing our own IPv4 loopback listening address."""

    def watch(self, session: Session) -> list[int]:
        """Sample the session's links and attempts every 10 ms until cleanup."""
        counts: list[int] = []
        poll = LoopingCall(lambda: counts.append(len(list(session.links())) + session.half_open))
        poll.clock = reactor
        poll.start(0.01)
        self.addCleanup(lambda: poll.stop() if poll.running else None)
        return counts

    @inlineCallbacks
    def test_own_address_never_dialled(self) -> Any:
        """Our own listening address, however written, is never dialled and no error follows."""
        session = self.session()
        yield session.start()
        raw = self.make_torrent("self", {"s.bin": 256 * KiB}, seed=61)
        t = self.torrent(raw, self.path("leech"), session=session, swarm_config=FAST_DIAL)
        seen = Peers()
        t.add_observer(seen)
        yield t.start()
        counts = self.watch(session)
        t.add_peers([(host, session.port) for host in self.OWN_FORMS])
        yield deferLater(reactor, 1.0, lambda: None)  # five top-ups
        self.assertEqual(max(counts), 0, "no attempt, no link")
        self.assertEqual((t.peers(), seen.connected), ([], []))
        yield t.stop()

    @inlineCallbacks
    def test_own_address_does_not_block_others(self) -> Any:
        """With our own address first among the candidates, the others are still dialled."""
        session = self.session()
        yield session.start()
        sizes = {"s.bin": 1 * MiB}
        raw = self.make_torrent("self", sizes, seed=61)
        seeder = self.torrent(raw, self.path("seed"))
        yield seeder.start()
        leecher = self.torrent(raw, self.path("leech"), session=session, swarm_config=FAST_DIAL)
        seen = Peers()
        leecher.add_observer(seen)
        yield leecher.start()
        leecher.add_peers([(LOOPBACK, session.port)])
        leecher.add_peers([(LOOPBACK, seeder.port)])
        yield wait_until(lambda: leecher.complete, 5, "the download",
                         lambda: f"left={leecher.left} peers={leecher.peers()}")
        self.assertEqual(seen.connected, [(LOOPBACK, seeder.port)])
        yield leecher.stop()


    @inlineCallbacks
    def dial_self_through_proxy(self) -> Any:
        """Dial ourselves through a port forwarder on loopback; fire with the
        number of connections the forwarder accepted within two seconds (ten
        top-ups and several backoffs) after the first one closed."""
        session = self.session()
        yield session.start()
        raw = self.make_torrent("self", {"s.bin": 256 * KiB}, seed=62)
        t = self.torrent(raw, self.path("seed"), session=session, swarm_config=FAST_DIAL)
        seen = Peers()
        t.add_observer(seen)
        yield t.start()
        proxy = ProxyFactory(LOOPBACK, session.port)
        proxy.noisy = False
        forwarder = reactor.listenTCP(0, proxy, interface=LOOPBACK)
        self.addCleanup(forwarder.stopListening)
        accepted: list[Any] = []
        original = proxy.buildProtocol

        def build(addr: Any) -> Any:
            accepted.append(addr)
            return original(addr)

        proxy.buildProtocol = build  # type: ignore[method-assign]
        t.add_peers([(LOOPBACK, forwarder.getHost().port)])
        yield wait_until(lambda: accepted, 10, "the dial through the forwarder")
        yield wait_until(lambda: not list(session.links()), 10,
                         "both ends of the self-connection to close")
        counts = self.watch(session)
        yield deferLater(reactor, 2.0, lambda: None)
        self.assertEqual((t.peers(), seen.connected), ([], []))
        self.assertLessEqual(max(counts), 2, "one connection at most, seen from both ends")
        yield t.stop()
        return len(accepted)

    @inlineCallbacks
    def test_self_through_a_proxy(self) -> Any:
        """A connection that reaches ourselves by another address (a port forwarder)
        is closed at the handshake and never becomes a peer."""
        yield self.dial_self_through_proxy()

    @inlineCallbacks
    def test_self_through_a_proxy_forgotten(self) -> Any:
        """An address found to be ourselves at the handshake is not dialled again."""
        dials = yield self.dial_self_through_proxy()
        self.assertEqual(dials, 1)

