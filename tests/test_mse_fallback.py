"""Tests for the encryption fallback of an "enabled" Session: a peer that
drops our plain dial is dialled encrypted next (soon), and the other way."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock, deferLater
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txbittorrent.core.wire.mse import CRYPTO_RC4
from txbittorrent.interfaces import PeerLink
from txbittorrent.peer.links import LinkConfig, LinkGroup
from txbittorrent.peer.mse import MSEPeerProtocol, PlainPeerProtocol
from txbittorrent.peer.msepolicy import ENCRYPTION_RETRY
from txbittorrent.session import FALLBACK_MEMORY, Session, SessionConfig
from txbittorrent.swarm.addressbook import AddressBook
from txbittorrent.swarm.config import SwarmConfig
from txbittorrent.swarm.connections import Connections
from txbittorrent.testing import FakePeerHost
from txbittorrent.testing import connection_lost as lost

INFO_HASH = b"\x11" * 20
OUR_ID = b"-TX0001-" + b"o" * 12
THEIR_ID = b"-LT0001-" + b"t" * 12
ADDRESS = ("10.0.0.9", 50000)
PEER = IPv4Address("TCP", *ADDRESS)


class LinkHookTests(SynchronousTestCase):
    """When an outgoing link asks its fallback."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.group = LinkGroup(self.clock)
        self.host = FakePeerHost(self.clock, INFO_HASH, OUR_ID)
        self.transport = StringTransport(peerAddress=PEER)
        self.asked: list[tuple[PeerLink, bool]] = []

    def fallback(self, link: Any, encrypted: bool) -> str | None:
        self.asked.append((link, encrypted))
        return f"{ENCRYPTION_RETRY}: test"

    def plain(self) -> PlainPeerProtocol:
        link = PlainPeerProtocol(self.group, host=self.host, address=ADDRESS,
                                 fallback=self.fallback)
        link.makeConnection(self.transport)
        return link

    def encrypted(self) -> MSEPeerProtocol:
        link = MSEPeerProtocol.make_outgoing(
            self.group, self.host, ADDRESS, "enabled", fallback=self.fallback,
            randbytes=random.Random(3).randbytes,
        )
        link.makeConnection(self.transport)
        return link

    def test_plain_dropped_silently(self) -> None:
        """A plain dial the peer drops without a byte asks the fallback,
        whose reason the host hears."""
        link = self.plain()
        lost(link)
        self.assertEqual(self.asked, [(link, False)])
        self.assertEqual(self.host.names(), ["connect_failed"])
        self.assertTrue(self.host.calls[0][2].startswith(ENCRYPTION_RETRY))

    def test_plain_answered(self) -> None:
        """A peer that sent something before dropping us is no such case."""
        link = self.plain()
        link.dataReceived(b"\x13")
        lost(link)
        self.assertEqual(self.asked, [])
        self.assertFalse(self.host.calls[0][2].startswith(ENCRYPTION_RETRY))

    def test_closed_by_us(self) -> None:
        """A link we closed (a timeout, say) does not ask."""
        link = self.plain()
        link.close("test")
        lost(link)
        self.assertEqual(self.asked, [])

    def test_encrypted_dropped_before_step_2(self) -> None:
        """An encrypted dial dropped before the peer's whole DH key asks,
        saying it was encrypted."""
        link = self.encrypted()
        self.assertFalse(self.transport.value().startswith(b"\x13BitTorrent"))
        link.dataReceived(b"\x00" * 50)
        lost(link)
        self.assertEqual(self.asked, [(link, True)])

    def test_plain_reply_to_encrypted(self) -> None:
        """A plain handshake in reply to our encrypted one (a peer without
        MSE that writes first) closes the link and asks the fallback, in
        pieces too."""
        link = self.encrypted()
        reply = b"\x13BitTorrent protocol" + bytes(48)
        link.dataReceived(reply[:7])
        self.assertFalse(self.transport.disconnecting)
        link.dataReceived(reply[7:])
        self.assertTrue(self.transport.disconnecting)
        self.assertEqual(self.asked, [(link, True)])
        lost(link)
        self.assertEqual(self.asked, [(link, True)])
        self.assertTrue(self.host.calls[0][2].startswith(ENCRYPTION_RETRY))

    def test_encrypted_after_step_2(self) -> None:
        """A peer that sent its key took part in MSE: no fallback."""
        link = self.encrypted()
        link.dataReceived(b"\x05" * 96)
        lost(link)
        self.assertEqual(self.asked, [])

    def test_handshake_bytes_counted(self) -> None:
        """bytes_received counts the MSE handshake's bytes too."""
        link = self.encrypted()
        link.dataReceived(b"\x05" * 120)
        self.assertEqual(link.bytes_received, 120)
        link.close()
        lost(link)


class MemoryTests(SynchronousTestCase):
    """The session's memory of how to dial an address."""

    def test_flips_and_retry_once(self) -> None:
        """A dropped plain dial: encrypted next, the reason asks for a soon
        redial; dropped again encrypted: plain next, a plain failure now."""
        session = Session(Clock(), listen_interfaces=())
        self.assertFalse(session.dials_encrypted(ADDRESS))
        link: Any = type("L", (), {"address": ADDRESS})()
        self.assertTrue(session._fell_back(link, False).startswith(ENCRYPTION_RETRY))
        self.assertTrue(session.dials_encrypted(ADDRESS))
        reason = session._fell_back(link, True)
        self.assertFalse(reason.startswith(ENCRYPTION_RETRY))
        self.assertFalse(session.dials_encrypted(ADDRESS))

    def test_bounded(self) -> None:
        """The memory keeps the FALLBACK_MEMORY most recent addresses."""
        session = Session(Clock(), listen_interfaces=())
        for port in range(FALLBACK_MEMORY + 5):
            session._fell_back(type("L", (), {"address": ("10.0.0.1", port)})(), False)
        self.assertEqual(len(session._dial_methods), FALLBACK_MEMORY)
        self.assertFalse(session.dials_encrypted(("10.0.0.1", 0)))
        self.assertTrue(session.dials_encrypted(("10.0.0.1", FALLBACK_MEMORY + 4)))

    def test_modes(self) -> None:
        """Forced always dials encrypted, disabled never."""
        forced = Session(Clock(), listen_interfaces=(), config=SessionConfig(encryption="forced"))
        self.assertTrue(forced.dials_encrypted(ADDRESS))
        off = Session(Clock(), listen_interfaces=(), config=SessionConfig(encryption="disabled"))
        self.assertFalse(off.dials_encrypted(ADDRESS))


class SettingTests(SynchronousTestCase):
    """Where the encryption setting is read and changed."""

    def test_set_encryption(self) -> None:
        """set_encryption changes the mode for what comes next; an unknown
        mode is refused and changes nothing."""
        session = Session(Clock(), listen_interfaces=())
        self.assertEqual(session.encryption, "enabled")
        session.set_encryption("forced")
        self.assertEqual((session.encryption, session.config.encryption), ("forced", "forced"))
        self.assertTrue(session.dials_encrypted(ADDRESS))
        self.assertRaises(ValueError, session.set_encryption, "sometimes")
        self.assertEqual(session.encryption, "forced")

    def test_torrent_own_session(self) -> None:
        """A torrent without a shared session makes its own with
        TorrentConfig.session_config's encryption."""
        from txbittorrent.torrent import Torrent

        torrent = Torrent("magnet:?xt=urn:btih:" + "11" * 20, reactor=Clock(),
                          session_config=SessionConfig(encryption="disabled"))
        self.assertEqual(torrent.make_session().encryption, "disabled")


class ConnectionsTests(SynchronousTestCase):
    """The swarm's side: a retry reason is not a failure."""

    def test_retry_not_counted(self) -> None:
        """The address is due again at once, with no failure counted, and
        the swarm is asked to top up soon."""
        book = AddressBook(10, (10.0, 30.0), 10.0)
        book.add([ADDRESS], "tracker")
        connections = Connections(book, Any, OUR_ID, SwarmConfig(), {}, {})  # type: ignore[arg-type]
        book.connecting(ADDRESS, 0.0)
        self.assertTrue(connections.failed(ADDRESS, f"{ENCRYPTION_RETRY}: dropped", 1.0))
        self.assertEqual(list(book.due(1.0)), [ADDRESS])
        book.connecting(ADDRESS, 1.0)
        self.assertFalse(connections.failed(ADDRESS, "dropped", 2.0))
        self.assertEqual(list(book.due(2.0)), [])


class SessionFallbackTests(TestCase):
    """Two Sessions on 127.0.0.1: our "enabled" dialler and a listener that
    refuses the method we try first."""

    timeout = 15

    def start_session(self, mode: str) -> Session:
        from twisted.internet import reactor

        config = SessionConfig(encryption=mode,
                               link=LinkConfig(handshake_timeout=2.0, tick_interval=0.5))
        session = Session(reactor, 0, ("127.0.0.1",), config)
        self.successResultOf(session.start())
        self.addCleanup(session.stop)
        return session

    async def dial_twice(self, listener: str, encrypted_first: bool) -> tuple[str, Any]:
        """Dial once (it fails), then again; the first reason and the second link."""
        from twisted.internet import reactor

        a, b = self.start_session("enabled"), self.start_session(listener)
        address = ("127.0.0.1", b.port)
        if encrypted_first:
            a._dial_methods.remember(address, True)
        a_host = FakePeerHost(reactor, INFO_HASH, OUR_ID)
        b_host = FakePeerHost(reactor, INFO_HASH, THEIR_ID)
        a.add_host(a_host)
        b.add_host(b_host)
        failed: Deferred[str] = Deferred()
        a_host.connect_failed = lambda address, reason: failed.callback(reason)  # type: ignore
        self.assertTrue(a.connect(a_host, address))
        reason = await failed
        await deferLater(reactor, 0, lambda: None)  # the dropped link leaves the group
        self.assertEqual(a.dials_encrypted(address), not encrypted_first)
        connected: Deferred[PeerLink] = Deferred()
        a_host.on_connected = connected.callback
        self.assertTrue(a.connect(a_host, address))
        link = await connected
        return reason, link

    async def test_plain_refused(self) -> None:
        """A forced listener drops our plain dial; the redial is RC4."""
        reason, link = await self.dial_twice("forced", False)
        self.assertTrue(reason.startswith(ENCRYPTION_RETRY), reason)
        self.assertEqual(getattr(link, "crypto", None), CRYPTO_RC4)

    async def test_encrypted_refused(self) -> None:
        """A listener without MSE drops our encrypted dial; the redial is plain."""
        reason, link = await self.dial_twice("disabled", True)
        self.assertFalse(reason.startswith(ENCRYPTION_RETRY), reason)
        self.assertIsNone(getattr(link, "crypto", None))
