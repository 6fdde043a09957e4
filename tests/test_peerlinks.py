"""Tests for txbittorrent.peer.links: LinkGroup, LinkConfig's socket options, normalize_host.

The links are real ``PeerProtocol``s over ``StringTransport``s on a ``Clock``,
with the recording ``FakeHost`` of ``test_peerprotocol``.
"""

from __future__ import annotations

import socket

from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.peer.links import LinkConfig, LinkGroup, normalize_host
from txbittorrent.peer.protocol import PeerProtocol
from txbittorrent.testing import FakePeerHost
from txbittorrent.testing import connection_lost as lost

ADDRESS = ("127.0.0.1", 6881)
INFO_HASH = bytes(range(20))
OUR_ID = b"-TX0100-ourselves000"


def FakeHost(clock: Clock) -> FakePeerHost:
    """A recording PeerHost for the links under test."""
    return FakePeerHost(clock, INFO_HASH, OUR_ID)



class NormalizeHostTests(SynchronousTestCase):
    """normalize_host unmaps IPv4-mapped IPv6 addresses only."""

    def test_mapped(self) -> None:
        """::ffff:a.b.c.d becomes a.b.c.d."""
        self.assertEqual(normalize_host("::ffff:192.0.2.1"), "192.0.2.1")
        self.assertEqual(normalize_host("::FFFF:192.0.2.1"), "192.0.2.1")

    def test_others_unchanged(self) -> None:
        """Other addresses and names are returned as they are."""
        for host in ("192.0.2.1", "2001:db8::1", "::1", "::ffff:nonsense", "example.org"):
            self.assertEqual(normalize_host(host), host)


class TCPTransport(StringTransport):
    """A StringTransport with the TCP transport's socket-option methods."""

    def __init__(self) -> None:
        super().__init__()
        self.no_delay: list[bool] = []
        self.handle = socket.socket(socket.AF_INET, socket.SOCK_STREAM)  # never connected

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.no_delay.append(enabled)

    def getHandle(self) -> socket.socket:
        return self.handle


class SocketOptionTests(SynchronousTestCase):
    """LinkConfig's socket options are applied on connect."""

    def connect(self, config: LinkConfig) -> TCPTransport:
        clock = Clock()
        transport = TCPTransport()
        self.addCleanup(transport.handle.close)
        protocol = PeerProtocol(
            LinkGroup(clock), host=FakeHost(clock), address=ADDRESS, config=config
        )
        protocol.makeConnection(transport)
        self.addCleanup(lost, protocol)
        return transport

    def test_defaults(self) -> None:
        """By default TCP_NODELAY is set and the kernel's buffer sizes are left alone."""
        reference = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(reference.close)
        transport = self.connect(LinkConfig())
        self.assertEqual(transport.no_delay, [True])
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            self.assertEqual(
                transport.handle.getsockopt(socket.SOL_SOCKET, option),
                reference.getsockopt(socket.SOL_SOCKET, option),
            )

    def test_buffer_sizes(self) -> None:
        """Configured SO_RCVBUF and SO_SNDBUF are set on the connection's socket."""
        transport = self.connect(
            LinkConfig(tcp_nodelay=False, receive_buffer_size=65536, send_buffer_size=65536)
        )
        self.assertEqual(transport.no_delay, [])
        for option in (socket.SO_RCVBUF, socket.SO_SNDBUF):
            # Linux reports double the size asked for (its bookkeeping overhead).
            self.assertIn(transport.handle.getsockopt(socket.SOL_SOCKET, option), (65536, 131072))


class LinkGroupTests(SynchronousTestCase):
    """LinkGroup: membership, the lazy timer and when_empty."""

    def test_when_empty(self) -> None:
        """when_empty fires at once when empty, else when the last link leaves."""
        clock = Clock()
        group = LinkGroup(clock)
        self.assertIsNone(self.successResultOf(group.when_empty()))
        host = FakeHost(clock)
        protocol = PeerProtocol(group, host=host, address=ADDRESS)
        protocol.makeConnection(StringTransport())
        d = group.when_empty()
        self.assertNoResult(d)
        self.assertEqual(list(group), [protocol])
        lost(protocol)
        self.successResultOf(d)

    def test_tick_survives_errors(self) -> None:
        """A link whose timer check raises is aborted; the others are still checked."""
        clock = Clock()
        group = LinkGroup(clock)
        broken = PeerProtocol(group, host=FakeHost(clock), address=ADDRESS)
        broken.makeConnection(StringTransport())
        fine = PeerProtocol(group, host=FakeHost(clock), address=ADDRESS)
        fine_transport = StringTransport()
        fine.makeConnection(fine_transport)

        def boom(now: float) -> None:
            raise RuntimeError("boom")

        broken.check_timers = boom  # type: ignore[method-assign]
        clock.advance(20)
        self.assertTrue(broken.transport.disconnected)  # type: ignore[union-attr]
        self.assertTrue(fine_transport.disconnecting)  # handshake timeout
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
