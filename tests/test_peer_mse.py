"""Tests for txbittorrent.peer.mse: MSE/PE under a peer link, and the
Session's encryption setting."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txbittorrent.core.wire.mse import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    Established,
    MSEEvent,
    MSEInitiator,
    MSEResponder,
    Send,
    req2_hash,
)
from txbittorrent.interfaces import PeerLink
from txbittorrent.peer.links import LinkConfig, LinkGroup
from txbittorrent.peer.mse import MSEPeerProtocol
from txbittorrent.peer.msepolicy import Req2Map, policy
from txbittorrent.peer.mse_crypto import new_rc4
from txbittorrent.session import Session, SessionConfig
from txbittorrent.testing import FakePeerHost, wait_until
from txbittorrent.testing import connection_lost as lost

from tests.msefakes import HandA

INFO_HASH = b"\x11" * 20
OTHER_HASH = b"\x22" * 20
OUR_ID = b"-TX0001-" + b"o" * 12
THEIR_ID = b"-LT0001-" + b"t" * 12
PEER = IPv4Address("TCP", "10.0.0.9", 50000)


def seeded(seed: int) -> Any:
    return random.Random(seed).randbytes


def sent(events: list[MSEEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Send))


def established(events: list[MSEEvent]) -> Established | None:
    found = [e for e in events if isinstance(e, Established)]
    return found[0] if found else None


def their_handshake(info_hash: bytes = INFO_HASH) -> bytes:
    """The remote peer's plain BitTorrent handshake."""
    return FakePeerHost(Clock(), info_hash, THEIR_ID).new_peer_session(True).send_handshake()


class LinkCase(SynchronousTestCase):
    """One link on a StringTransport, its group timed by a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.group = LinkGroup(self.clock)
        self.host = FakePeerHost(self.clock, INFO_HASH, OUR_ID)
        self.hosts = {INFO_HASH: self.host}
        self.transport = StringTransport(peerAddress=PEER)

    def route(self, info_hash: bytes) -> Any:
        return self.hosts.get(info_hash)

    def incoming(self, mode: str = "enabled") -> MSEPeerProtocol:
        link = MSEPeerProtocol.make_incoming(
            self.group, self.route, Req2Map(self.hosts), mode, randbytes=seeded(7),
            config=LinkConfig(),
        )
        link.makeConnection(self.transport)
        self.addCleanup(lambda: lost(link))
        return link

    def outgoing(self, mode: str = "forced") -> MSEPeerProtocol:
        link = MSEPeerProtocol.make_outgoing(
            self.group, self.host, ("10.0.0.9", 50000), mode, randbytes=seeded(8)
        )
        link.makeConnection(self.transport)
        self.addCleanup(lambda: lost(link))
        return link

    def take(self) -> bytes:
        data = self.transport.value()
        self.transport.clear()
        return data


class IncomingTests(LinkCase):
    """An accepted connection: sniffed, then plain or encrypted."""

    def test_plain_one_byte_at_a_time(self) -> None:
        """A plain handshake, a byte at a time, is routed and answered in plain."""
        link = self.incoming()
        for byte in their_handshake():
            link.dataReceived(bytes([byte]))
        self.assertIs(link.host, self.host)
        self.assertEqual(self.host.names()[0], "peer_connected")
        self.assertTrue(self.take().startswith(b"\x13BitTorrent protocol"))
        self.assertEqual(link.crypto, CRYPTO_PLAINTEXT)
        self.assertFalse(link.encrypted_handshake)

    def test_plain_refused_when_forced(self) -> None:
        """Forced encryption: a plain handshake closes the link."""
        link = self.incoming("forced")
        link.dataReceived(their_handshake())
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.host.calls, [])
        self.assertIsNone(link.host)

    def handshake(self, provide: int, mode: str = "enabled", info_hash: bytes = INFO_HASH,
                  chunk: int | None = None) -> tuple[MSEPeerProtocol, Established]:
        """Run a remote initiator (IA = its BitTorrent handshake) against an incoming link."""
        link = self.incoming(mode)
        remote = MSEInitiator(
            info_hash, crypto_provide=provide, randbytes=seeded(9), new_rc4=new_rc4,
            initial_payload=their_handshake(info_hash),
        )

        def deliver(data: bytes) -> None:
            step = chunk or len(data) or 1
            for i in range(0, len(data), step):
                link.dataReceived(data[i : i + step])

        deliver(remote.start())
        step3 = sent(remote.feed(self.take()))
        deliver(step3)
        done = established(remote.feed(self.take()))
        assert done is not None
        return link, done

    def test_encrypted_plaintext_selected(self) -> None:
        """Offered both, an enabled link selects plaintext; the IA handshake
        is routed and our handshake comes back in plain."""
        link, done = self.handshake(CRYPTO_PLAINTEXT | CRYPTO_RC4)
        self.assertEqual(done.crypto, CRYPTO_PLAINTEXT)
        self.assertTrue(done.payload.startswith(b"\x13BitTorrent protocol"))
        self.assertEqual(link.crypto, CRYPTO_PLAINTEXT)
        self.assertTrue(link.encrypted_handshake)
        self.assertEqual(link.mse_info_hash, INFO_HASH)
        self.assertEqual(self.host.names()[0], "peer_connected")

    def test_encrypted_rc4(self) -> None:
        """RC4 both ways: our handshake and later messages arrive encrypted."""
        link, done = self.handshake(CRYPTO_RC4, chunk=7)
        self.assertEqual(done.crypto, CRYPTO_RC4)
        assert done.decryptor is not None and done.encryptor is not None
        self.assertTrue(done.payload.startswith(b"\x13BitTorrent protocol"))
        self.assertEqual(link.crypto, CRYPTO_RC4)
        link.send(b"\x00\x00\x00\x01\x02")  # INTERESTED
        self.assertEqual(done.decryptor.update(self.take()), b"\x00\x00\x00\x01\x02")
        link.dataReceived(done.encryptor.update(b"\x00\x00\x00\x01\x01"))  # UNCHOKE
        self.assertIn("peer_event", self.host.names())

    def test_forced_selects_rc4(self) -> None:
        """A forced link selects RC4 from an offer of both."""
        link, done = self.handshake(CRYPTO_PLAINTEXT | CRYPTO_RC4, mode="forced")
        self.assertEqual((done.crypto, link.crypto), (CRYPTO_RC4, CRYPTO_RC4))

    def test_unknown_torrent(self) -> None:
        """A req2 hash we do not know closes the link."""
        link = self.incoming()
        remote = MSEInitiator(OTHER_HASH, crypto_provide=CRYPTO_RC4, randbytes=seeded(1),
                              new_rc4=new_rc4)
        link.dataReceived(remote.start())
        link.dataReceived(sent(remote.feed(self.take())))
        self.assertTrue(self.transport.disconnecting)
        self.assertIsNone(link.host)

    def test_handshake_names_another_torrent(self) -> None:
        """The BitTorrent handshake must name the torrent the req2 hash named."""
        self.hosts[OTHER_HASH] = FakePeerHost(self.clock, OTHER_HASH, OUR_ID)
        link = self.incoming()
        remote = MSEInitiator(INFO_HASH, crypto_provide=CRYPTO_RC4, randbytes=seeded(1),
                              new_rc4=new_rc4, initial_payload=their_handshake(OTHER_HASH))
        link.dataReceived(remote.start())
        link.dataReceived(sent(remote.feed(self.take())))
        self.assertTrue(self.transport.disconnecting)
        self.assertIsNone(link.host)

    def test_garbage(self) -> None:
        """Random bytes close the link once 628 bytes are in."""
        link = self.incoming()
        link.dataReceived(random.Random(3).randbytes(627))
        self.assertFalse(self.transport.disconnecting)
        link.dataReceived(b"x")
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.host.calls, [])

    def test_truncated_key_times_out(self) -> None:
        """Half a DH key and silence: the link's handshake timeout closes it."""
        link = self.incoming()
        config = LinkConfig()
        link.dataReceived(b"\x99" * 40)
        self.clock.advance(config.handshake_timeout + config.tick_interval)
        self.assertTrue(self.transport.disconnecting)

    def test_producer_registered_with_the_socket(self) -> None:
        """The link is the real transport's producer, and its pause reaches the socket."""
        link = self.incoming()
        self.assertIs(self.transport.producer, link)
        link._transport.pauseProducing()
        self.assertEqual(self.transport.producerState, "paused")


class OutgoingTests(LinkCase):
    """A connection we dial with encryption forced."""

    def run_remote(self, allowed: int = CRYPTO_RC4) -> tuple[MSEPeerProtocol, Established]:
        link = self.outgoing()
        remote = MSEResponder(
            {req2_hash(INFO_HASH): INFO_HASH}.get, allowed=allowed, prefer=CRYPTO_RC4,
            randbytes=seeded(4), new_rc4=new_rc4,
        )
        first = self.take()
        self.assertFalse(first.startswith(b"\x13BitTorrent"), "no plain handshake")
        link.dataReceived(sent(remote.feed(first)))
        events = remote.feed(self.take())
        done = established(events)
        assert done is not None
        link.dataReceived(sent(events))
        return link, done

    def test_handshake_in_ia(self) -> None:
        """Our BitTorrent handshake travels as IA, encrypted."""
        link, done = self.run_remote()
        self.assertEqual(done.crypto, CRYPTO_RC4)
        self.assertEqual(done.payload[:20], b"\x13BitTorrent protocol")
        self.assertEqual(done.payload[28:48], INFO_HASH)
        self.assertEqual(link.crypto, CRYPTO_RC4)

    def test_their_handshake_accepted(self) -> None:
        """The peer's encrypted handshake reaches the host."""
        link, done = self.run_remote()
        assert done.encryptor is not None
        link.dataReceived(done.encryptor.update(their_handshake()))
        self.assertEqual(self.host.names()[0], "peer_connected")

    def test_plaintext_only_peer(self) -> None:
        """A peer that allows plaintext only cannot complete our forced handshake."""
        link = self.outgoing()
        remote = MSEResponder(
            {req2_hash(INFO_HASH): INFO_HASH}.get, allowed=CRYPTO_PLAINTEXT,
            prefer=CRYPTO_PLAINTEXT, randbytes=seeded(4), new_rc4=new_rc4,
        )
        link.dataReceived(sent(remote.feed(self.take())))
        self.assertRaises(Exception, remote.feed, self.take())
        self.clock.advance(LinkConfig().handshake_timeout + LinkConfig().tick_interval)
        self.assertTrue(self.transport.disconnecting)
        lost(link)
        self.assertEqual(self.host.names(), ["connect_failed"])

    def test_garbage_reply(self) -> None:
        """A plain BitTorrent handshake in reply (no MSE) closes the link and
        the host hears connect_failed with the reason."""
        link = self.outgoing()
        self.take()
        link.dataReceived(their_handshake() * 10)
        self.assertTrue(self.transport.disconnecting)
        lost(link)
        self.assertEqual(self.host.names(), ["connect_failed"])
        self.assertIn("encryption handshake failed", self.host.calls[0][2])


class Req2MapTests(SynchronousTestCase):
    """The responder's lookup over the session's registry."""

    def test_lookup_follows_the_registry(self) -> None:
        """Torrents added later are found; removed ones are not."""
        registry: dict[bytes, object] = {INFO_HASH: object()}
        lookup = Req2Map(registry)
        self.assertEqual(lookup(req2_hash(INFO_HASH)), INFO_HASH)
        self.assertIsNone(lookup(req2_hash(OTHER_HASH)))
        registry[OTHER_HASH] = object()
        self.assertEqual(lookup(req2_hash(OTHER_HASH)), OTHER_HASH)
        del registry[INFO_HASH]
        self.assertIsNone(lookup(req2_hash(INFO_HASH)))

    def test_policy(self) -> None:
        """The modes' methods; an unknown mode is an error, in the config too."""
        self.assertEqual(policy("enabled"), (CRYPTO_PLAINTEXT | CRYPTO_RC4, CRYPTO_PLAINTEXT, True))
        self.assertEqual(policy("forced"), (CRYPTO_RC4, CRYPTO_RC4, False))
        self.assertRaises(ValueError, policy, "disabled")
        self.assertRaises(ValueError, SessionConfig, encryption="sometimes")


class SessionPairTests(TestCase):
    """Two Sessions on 127.0.0.1, one dialling the other, in each pair of modes."""

    timeout = 15

    def start_session(self, mode: str) -> Session:
        from twisted.internet import reactor

        config = SessionConfig(encryption=mode, link=LinkConfig(handshake_timeout=2.0, tick_interval=0.5))
        session = Session(reactor, 0, ("127.0.0.1",), config)
        self.successResultOf(session.start())
        self.addCleanup(session.stop)
        return session

    async def pair(self, dialler: str, listener: str) -> tuple[list[PeerLink], FakePeerHost]:
        from twisted.internet import reactor

        a, b = self.start_session(dialler), self.start_session(listener)
        a_host = FakePeerHost(reactor, INFO_HASH, OUR_ID)
        b_host = FakePeerHost(reactor, INFO_HASH, THEIR_ID)
        a.add_host(a_host)
        b.add_host(b_host)
        a_connected: Deferred[PeerLink] = Deferred()
        b_connected: Deferred[PeerLink] = Deferred()
        a_host.on_connected = a_connected.callback
        b_host.on_connected = b_connected.callback
        failed: Deferred[None] = Deferred()
        real_failed = a_host.connect_failed

        def connect_failed(address: Any, reason: str) -> None:
            real_failed(address, reason)
            failed.callback(None)

        a_host.connect_failed = connect_failed  # type: ignore[method-assign]
        self.assertTrue(a.connect(a_host, ("127.0.0.1", b.port)))
        both = gatherResults([a_connected, b_connected])
        from twisted.internet.defer import DeferredList

        await DeferredList([both, failed], fireOnOneCallback=True, consumeErrors=True)
        links = list(a.links()) + list(b.links())
        await gatherResults([a.stop(), b.stop()])
        return links, a_host

    async def test_enabled_to_enabled(self) -> None:
        """Enabled both sides: we dial plain, and it is accepted."""
        links, _ = await self.pair("enabled", "enabled")
        self.assertEqual(len(links), 2)
        self.assertEqual([getattr(link, "crypto", None) for link in links], [None, CRYPTO_PLAINTEXT])

    async def test_forced_to_enabled(self) -> None:
        """Forced dialler, enabled listener: RC4 both ways."""
        links, _ = await self.pair("forced", "enabled")
        self.assertEqual([getattr(link, "crypto", None) for link in links], [CRYPTO_RC4, CRYPTO_RC4])

    async def test_forced_to_forced(self) -> None:
        """Forced both sides: RC4."""
        links, _ = await self.pair("forced", "forced")
        self.assertEqual([getattr(link, "crypto", None) for link in links], [CRYPTO_RC4, CRYPTO_RC4])

    async def test_disabled_to_forced(self) -> None:
        """A plain dial to a forced listener is refused: connect_failed."""
        links, host = await self.pair("disabled", "forced")
        self.assertIn("connect_failed", host.names())

    async def test_forced_to_disabled(self) -> None:
        """A forced dial to a listener without MSE fails: connect_failed."""
        links, host = await self.pair("forced", "disabled")
        self.assertIn("connect_failed", host.names())

    async def test_disabled_to_enabled(self) -> None:
        """Plain both ways when the dialler has encryption disabled."""
        links, _ = await self.pair("disabled", "enabled")
        self.assertEqual(len(links), 2)
        self.assertEqual(getattr(links[1], "crypto", None), CRYPTO_PLAINTEXT)


class _Raw(Protocol):
    """A raw client: writes what it is given, records what comes back and the close."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.received = b""
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        if self.payload:
            self.transport.write(self.payload)

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


class HostileHandshakeTests(TestCase):
    """Hostile encrypted handshakes on a real listening socket end in a clean
    disconnect by us, and leave no link behind."""

    timeout = 15

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor
        config = SessionConfig(link=LinkConfig(handshake_timeout=1.0, tick_interval=0.2))
        self.session = Session(reactor, 0, ("127.0.0.1",), config)
        self.successResultOf(self.session.start())
        self.addCleanup(self.session.stop)
        self.session.add_host(FakePeerHost(reactor, INFO_HASH, OUR_ID))

    async def send(self, payload: bytes) -> _Raw:
        """Connect, send ``payload``, and wait for us to close the connection."""
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        raw = _Raw(payload)
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.session.port)
        await connectProtocol(endpoint, raw)
        await raw.closed
        await wait_until(lambda: not list(self.session.links()), 5, "the link to go")
        return raw

    async def test_garbage(self) -> None:
        """1000 random bytes: closed (no req1 hash within 628 bytes)."""
        raw = await self.send(random.Random(1).randbytes(1000))
        self.assertLessEqual(len(raw.received), 96 + 512, "at most our Yb and PadB")

    async def test_truncated_key(self) -> None:
        """Half a DH key, then silence: closed by the handshake timeout."""
        raw = await self.send(b"\x99" * 48)
        self.assertEqual(raw.received, b"")

    async def test_wrong_hashes_and_pad(self) -> None:
        """A known DH key followed by a wrong req1, an unknown torrent's req2
        or a PadC over 512: each closed."""
        cases = [
            {"req1": b"\x01" * 20},
            {"info_hash": OTHER_HASH},
            {"pad_c": 600},
        ]
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        for case in cases:
            hand = HandA()
            raw = _Raw(hand.public)
            endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.session.port)
            await connectProtocol(endpoint, raw)
            await wait_until(lambda: len(raw.received) >= 96, 5, "Yb")
            info_hash = case.pop("info_hash", INFO_HASH)
            step3 = hand.step3(raw.received[:96], info_hash=info_hash, **case)
            raw.transport.write(step3 + bytes(700))
            await raw.closed
        await wait_until(lambda: not list(self.session.links()), 5, "the links to go")

    async def test_stop_during_handshake(self) -> None:
        """Stopping the session aborts a link still in its encrypted handshake."""
        from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol

        raw = _Raw(b"\x99" * 10)
        endpoint = TCP4ClientEndpoint(self.reactor, "127.0.0.1", self.session.port)
        await connectProtocol(endpoint, raw)
        await wait_until(lambda: bool(list(self.session.links())), 5, "the link")
        await self.session.stop()
        await raw.closed
        self.assertEqual(list(self.session.links()), [])
