"""The DHT node in its Session (on ``net.testing.MemoryUDPReactor``), a
torrent's DHT rounds (``dht.torrent.TorrentDHT`` with a fake node on a
Clock), the PORT message of the swarm, and the CLI's DHT settings."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.commands._engine import session_config
from txbittorrent.core.dht.krpc import PingQuery, Response, decode_message, encode_message
from txbittorrent.core.dht.lookup import LookupKind
from txbittorrent.dht.config import DEFAULT_BOOTSTRAP_NODES, DHTConfig
from txbittorrent.dht.search import DHTError, LookupResult
from txbittorrent.dht.torrent import ANNOUNCE_INTERVAL, RETRY, TorrentDHT
from txbittorrent.net.testing import MemoryUDPReactor
from txbittorrent.session import Session, SessionConfig

INFO_HASH = bytes(range(20))
DEAD_ROUTER = ("127.0.0.1", 9)


def session_with(reactor: MemoryUDPReactor, **dht: Any) -> Session:
    config = SessionConfig(dht=DHTConfig(**dht))
    return Session(reactor, listen_interfaces=["127.0.0.1"], config=config)


class SessionDHTTests(SynchronousTestCase):
    """A session runs its DHT node only when asked, on its UDP sockets."""

    def setUp(self) -> None:
        self.reactor = MemoryUDPReactor()

    def test_off_by_default(self) -> None:
        """Without dht.enabled: no node, no UDP socket bound."""
        session = Session(self.reactor, listen_interfaces=["127.0.0.1"])
        session.start()
        self.assertIsNone(session.dht)
        self.assertEqual(self.reactor.udp_ports, [])
        session.stop()

    def test_node_on_session_udp(self) -> None:
        """Enabled, the node starts with the session on its UDP socket (the
        listening port's number), answers a ping there, and stops with it."""
        session = session_with(self.reactor, enabled=True, bootstrap_nodes=(DEAD_ROUTER,))
        session.start()
        node = session.dht
        assert node is not None
        self.assertTrue(node.running)
        [port] = self.reactor.udp_ports
        self.assertEqual(node.port, port.port)  # (the session's port, were it real)
        self.assertIs(node.transport, session.udp)
        [(query, to)] = port.written  # the join, to the router
        self.assertEqual(to, DEAD_ROUTER)
        port.deliver(encode_message(PingQuery(transaction_id=b"pp", node_id=b"\x01" * 20)),
                     ("127.0.0.1", 7000))
        reply = decode_message(port.written[-1][0])
        assert isinstance(reply, Response)
        self.assertEqual(reply.node_id, node.node_id)
        self.reactor.advance(12)  # the join times out; the maintenance runs
        self.assertEqual(node.stats.timeouts, 1)
        session.stop()
        self.assertIsNone(session.dht)
        self.assertFalse(node.running)
        self.assertEqual((self.reactor.udp_ports, self.reactor.getDelayedCalls()), ([], []))

    def test_own_port(self) -> None:
        """dht.port names another port: the node gets sockets of its own there."""
        session = session_with(self.reactor, enabled=True, port=6999, bootstrap_nodes=())
        session.start()
        node = session.dht
        assert node is not None
        self.assertEqual(node.port, 6999)
        self.assertEqual([p.port for p in self.reactor.udp_ports], [6999])
        session.stop()
        self.assertEqual(self.reactor.udp_ports, [])

    def test_events_bus_shared(self) -> None:
        """A bus given to the session is the one it publishes on."""
        from txbittorrent.events import EventBus

        bus = EventBus()
        self.assertIs(Session(self.reactor, events=bus).events, bus)


class FakeNode:
    """What TorrentDHT uses of a DHTNode; each round waits for the test."""

    def __init__(self, ready: bool = True) -> None:
        self.ready = ready
        self.rounds: list[tuple[str, int | None, Any, Deferred[LookupResult]]] = []
        self.ready_waiters: list[Deferred[int]] = []

    def when_ready(self) -> Deferred[int]:
        if self.ready:
            return succeed(1)
        d: Deferred[int] = Deferred()
        self.ready_waiters.append(d)
        return d

    def announce(self, info_hash: bytes, port: int, *, on_peers: Any) -> Deferred[LookupResult]:
        d: Deferred[LookupResult] = Deferred()
        self.rounds.append(("announce", port, on_peers, d))
        return d

    def get_peers(self, info_hash: bytes, on_peers: Any) -> Deferred[LookupResult]:
        d: Deferred[LookupResult] = Deferred()
        self.rounds.append(("get_peers", None, on_peers, d))
        return d


def result(peers: Iterable[tuple[str, int]] = ()) -> LookupResult:
    return LookupResult(INFO_HASH, LookupKind.GET_PEERS, tuple(peers), (), 3, 3, 0, 1, 0.1)


class TorrentDHTTests(SynchronousTestCase):
    """A running torrent's rounds of get_peers and announce_peer."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.node = FakeNode()
        self.added: list[tuple[list[tuple[str, int]], str]] = []
        self.port: int | None = 6881
        self.private = False
        self.dht = TorrentDHT(
            self.node, INFO_HASH, self.clock,  # type: ignore[arg-type]
            add_peers=lambda peers, source: self.added.append((list(peers), source)),
            listen_port=lambda: self.port, private=lambda: self.private,
        )

    def test_rounds(self) -> None:
        """The first round at once (announcing our port); peers go to the swarm
        as "dht" as they come; the next round an interval later."""
        self.dht.start()
        self.clock.advance(0)
        [(kind, port, on_peers, d)] = self.node.rounds
        self.assertEqual((kind, port), ("announce", 6881))
        on_peers([("10.0.0.1", 1)])
        self.assertEqual(self.added, [([("10.0.0.1", 1)], "dht")])
        d.callback(result([("10.0.0.1", 1)]))
        self.clock.advance(ANNOUNCE_INTERVAL - 1)
        self.assertEqual(len(self.node.rounds), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.node.rounds), 2)
        self.assertEqual(self.dht.rounds, 1)

    def test_sooner_without_peers(self) -> None:
        """Rounds that find nobody are followed sooner: 1, 2, 5 minutes, then the interval."""
        self.dht.start()
        self.clock.advance(0)
        for delay in (*RETRY, ANNOUNCE_INTERVAL):
            self.node.rounds[-1][3].callback(result())
            count = len(self.node.rounds)
            self.clock.advance(delay - 1)
            self.assertEqual(len(self.node.rounds), count)
            self.clock.advance(1)
            self.assertEqual(len(self.node.rounds), count + 1)

    def test_waits_for_join(self) -> None:
        """Before the node has joined, the first round waits for it (or START_WAIT)."""
        self.node.ready = False
        self.dht.start()
        self.clock.advance(1)
        self.assertEqual(self.node.rounds, [])
        self.node.ready_waiters[0].callback(5)
        self.clock.advance(0)
        self.assertEqual(len(self.node.rounds), 1)

    def test_not_listening(self) -> None:
        """Without a listening port: get_peers only, no announce."""
        self.port = None
        self.dht.start()
        self.clock.advance(0)
        self.assertEqual(self.node.rounds[0][0], "get_peers")

    def test_private_stops(self) -> None:
        """A torrent found private (its metadata came) does no more rounds."""
        self.dht.start()
        self.clock.advance(0)
        self.private = True
        self.node.rounds[0][3].callback(result())
        self.clock.advance(RETRY[0])
        self.assertEqual(len(self.node.rounds), 1)
        self.assertFalse(self.dht.running)

    def test_stop(self) -> None:
        """stop cancels the timer; a late round hands on no peers."""
        self.dht.start()
        self.clock.advance(0)
        self.dht.stop()
        self.node.rounds[0][2]([("10.0.0.9", 9)])
        self.node.rounds[0][3].callback(result())
        self.assertEqual((self.added, self.clock.getDelayedCalls()), ([], []))

    def test_failed_round_retried(self) -> None:
        """A round that fails (the node is busy) is tried again after RETRY[0]."""
        self.dht.start()
        self.clock.advance(0)
        self.node.rounds[0][3].errback(DHTError("busy"))
        self.clock.advance(RETRY[0])
        self.assertEqual(len(self.node.rounds), 2)


class CommandLineTests(SynchronousTestCase):
    """The CLI's own session runs the DHT unless --no-dht."""

    def args(self, **given: Any) -> argparse.Namespace:
        values = {"dht": None, "dht_port": None, "dht_bootstrap": []}
        values.update(given)
        return argparse.Namespace(**values)

    def test_default_on(self) -> None:
        """No option: on, the public routers, the state where the command says."""
        config = session_config(self.args(), "/d/.txbittorrent/dht.state")
        self.assertEqual(config.dht, DHTConfig(enabled=True,
                                               state_path="/d/.txbittorrent/dht.state"))
        self.assertEqual(config.dht.bootstrap_nodes, DEFAULT_BOOTSTRAP_NODES)

    def test_options(self) -> None:
        """--no-dht, --dht-port and --dht-bootstrap land in the DHT settings."""
        self.assertFalse(session_config(self.args(dht=False)).dht.enabled)
        config = session_config(self.args(dht=True, dht_port=7000,
                                          dht_bootstrap=[("127.0.0.1", 7001)]))
        self.assertEqual((config.dht.port, config.dht.bootstrap_nodes),
                         (7000, (("127.0.0.1", 7001),)))


class PortMessageTests(SynchronousTestCase):
    """BEP 5's PORT: sent to peers that run a DHT node when we do; heard from them."""

    def harness(self, dht_port: int | None = 6999) -> Any:
        from tests.swarmharness import Harness

        h = Harness(self)
        h.swarm.dht_port = dht_port
        self.heard: list[tuple[str, int]] = []
        h.swarm.on_dht_port = self.heard.append
        h.swarm.start()
        return h

    def link(self, h: Any, dht: bool) -> Any:
        from txbittorrent.core.wire.messages import make_reserved
        from txbittorrent.core.wire.session import PeerSession

        link = h.link()
        if dht:
            link.remote = PeerSession(
                h.swarm.info_hash, b"-LT2010-dhtpeer00001", h.layout.piece_count, False,
                piece_length_of=h.layout.piece_size, reserved=make_reserved(dht=True),
            )
        self.assertTrue(link.handshake())
        return link

    def test_sent_to_dht_peers(self) -> None:
        """Our handshake sets the DHT bit; a peer that sets it too hears PORT
        with our node's port, after our bitfield."""
        from txbittorrent.core.wire.events import DHTPort, PeerBitfield

        h = self.harness()
        link = self.link(h, dht=True)
        self.assertTrue(link.session.dht)
        self.assertEqual(link.of(DHTPort), [DHTPort(6999)])
        kinds = [type(e) for e in link.events]
        self.assertLess(kinds.index(PeerBitfield), kinds.index(DHTPort))
        plain = self.link(h, dht=False)
        self.assertEqual(plain.of(DHTPort), [])

    def test_no_node_no_bit(self) -> None:
        """Without a DHT node: no DHT bit in our handshake, no PORT."""
        from txbittorrent.core.wire.events import DHTPort

        h = self.harness(dht_port=None)
        link = self.link(h, dht=True)
        self.assertFalse(link.session.dht)
        self.assertEqual(link.of(DHTPort), [])

    def test_heard(self) -> None:
        """A peer's PORT names its node (its host, that port) to on_dht_port."""
        h = self.harness()
        link = self.link(h, dht=True)
        link.deliver(link.remote.send_port(7777))
        self.assertEqual(self.heard, [(link.address[0], 7777)])
