"""Tests for txbittorrent.peer.protocol and peer.output: the adapter over PeerSession.

Each link runs over a ``StringTransport`` (or an ``iosim`` pair) on a
``Clock``; its host is a ``FakeHost`` that records every callback and builds
real ``PeerSession``s, and the peer at the other end is a real ``PeerSession``
too, so the bytes on both sides are the real protocol.
"""

from __future__ import annotations

import struct
from typing import Any, Callable

from twisted.internet.address import IPv6Address
from twisted.internet.error import ConnectionLost
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.test import iosim
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.wire.events import (
    BlockReceived,
    BlockRequested,
    HandshakeReceived,
    PeerBitfield,
    PeerInterested,
    PeerUnchoked,
)
from txbittorrent.core.layout import Layout
from txbittorrent.core.wire.session import PeerSession
from txbittorrent.core.wire.codec import (
    HaveAll,
    encode,
    encode_handshake,
    encode_reject,
    encode_request,
    make_reserved,
)
from txbittorrent.errors import LocalProtocolError
from txbittorrent.interfaces import PeerLink
from txbittorrent.peer.links import LinkConfig, LinkGroup
from txbittorrent.peer.protocol import PeerProtocol
from txbittorrent.peer.throttle import Throttle
from txbittorrent.testing import FakePeerHost
from txbittorrent.testing import connection_lost as lost

INFO_HASH = b"\x22" * 20
OTHER_INFO_HASH = b"\x33" * 20
OUR_ID = b"-TX0001-ourselves000"
THEIR_ID = b"-TX0001-theirs000000"
ADDRESS = ("127.0.0.1", 6881)
K16 = 16 * 1024

# Four pieces of 32 KiB.
LAYOUT = Layout([4 * 32 * 1024], 32 * 1024)
PIECES = LAYOUT.piece_count


def make_session(peer_id: bytes, outgoing: bool, info_hash: bytes = INFO_HASH) -> PeerSession:
    """A PeerSession for the test torrent (fast and extension protocol on)."""
    return PeerSession(info_hash, peer_id, PIECES, outgoing, piece_length_of=LAYOUT.piece_size)


def unknown_message(size: int) -> bytes:
    """A message with an id nobody uses, ``size`` bytes on the wire (ignored by the peer)."""
    return struct.pack(">IB", size - 4, 99) + b"\0" * (size - 5)


class FakeHost(FakePeerHost):
    """``testing.FakePeerHost`` on this module's torrent, ids as defaults."""

    def __init__(
        self, clock: Any, info_hash: bytes = INFO_HASH, peer_id: bytes = OUR_ID, **options: Any
    ) -> None:
        super().__init__(clock, info_hash, peer_id, layout=LAYOUT, **options)


class RecordingTransport(StringTransport):
    """A StringTransport that also records each write call."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[tuple[str, Any]] = []

    def write(self, data: bytes) -> None:
        self.calls.append(("write", data))
        super().write(data)

    def writeSequence(self, data: Any) -> None:
        data = list(data)
        for part in data:
            if not isinstance(part, bytes):
                raise TypeError("transports take bytes only")
        self.calls.append(("writeSequence", data))
        super().writeSequence(data)


class LinkTestCase(SynchronousTestCase):
    """Shared set-up: a Clock, a LinkGroup and helpers to build links."""

    config = LinkConfig()

    def setUp(self) -> None:
        self.clock = Clock()
        self.group = LinkGroup(self.clock, self.config.tick_interval)

    def elapse(self, seconds: float, step: float = 1.0) -> None:
        """Let time pass as it does for a reactor: in small steps (``Clock.advance``
        alone would run a late tick once, at the final time)."""
        self.clock.pump([step] * round(seconds / step))

    def outgoing(
        self, host: FakeHost | None = None, **options: Any
    ) -> tuple[PeerProtocol, RecordingTransport, FakeHost]:
        """A connected outgoing link (our handshake written)."""
        host = host if host is not None else FakeHost(self.clock)
        protocol = PeerProtocol(
            self.group, host=host, address=ADDRESS, config=self.config, **options
        )
        transport = RecordingTransport()
        protocol.makeConnection(transport)
        return protocol, transport, host

    def incoming(
        self, hosts: dict[bytes, FakeHost], transport: StringTransport | None = None, **options: Any
    ) -> tuple[PeerProtocol, StringTransport]:
        """A connected incoming link routed among ``hosts``."""
        protocol = PeerProtocol(self.group, router=hosts.get, config=self.config, **options)
        transport = transport if transport is not None else RecordingTransport()
        protocol.makeConnection(transport)
        return protocol, transport

    def handshake(self, protocol: PeerProtocol, transport: StringTransport) -> PeerSession:
        """Complete both handshakes of an outgoing link; return the remote's session."""
        remote = make_session(THEIR_ID, outgoing=False)
        events = remote.receive_data(transport.value())
        self.assertEqual([type(e) for e in events], [HandshakeReceived])
        transport.clear()
        protocol.dataReceived(remote.send_handshake())
        return remote

    def accepted(
        self, **options: Any
    ) -> tuple[PeerProtocol, RecordingTransport, FakeHost, PeerSession]:
        """An outgoing link whose handshake the host accepted."""
        protocol, transport, host = self.outgoing(**options)
        remote = self.handshake(protocol, transport)
        self.assertTrue(protocol.accepted)
        return protocol, transport, host, remote


class OutgoingTests(LinkTestCase):
    """A link we opened to a known host."""

    def test_handshake_on_connect(self) -> None:
        """Our handshake is written on connect; the link produces for its transport."""
        protocol, transport, host = self.outgoing()
        self.assertEqual(
            transport.value(), encode_handshake(INFO_HASH, OUR_ID, make_reserved())
        )
        self.assertIs(transport.producer, protocol)
        self.assertTrue(transport.streaming)
        self.assertIn(protocol, self.group)
        self.assertTrue(protocol.outgoing)
        self.assertEqual(protocol.address, ADDRESS)
        self.assertIs(protocol.session, host.sessions[0])
        self.assertTrue(protocol.session.outgoing)

    def test_peer_connected(self) -> None:
        """The peer's handshake calls peer_connected with the link."""
        protocol, transport, host = self.outgoing()
        self.handshake(protocol, transport)
        self.assertEqual(host.calls, [("peer_connected", protocol)])
        self.assertEqual(protocol.session.peer_id, THEIR_ID)
        self.assertTrue(protocol.accepted)

    def events_after_handshake(self, feed: Callable[[PeerProtocol, bytes], None]) -> None:
        protocol, transport, host = self.outgoing()
        remote = make_session(THEIR_ID, outgoing=False)
        remote.receive_data(transport.value())
        data = (
            remote.send_handshake()
            + remote.send_bitfield(Bitfield.from_indexes([1, 3], PIECES))
            + remote.unchoke()
            + remote.interested()
        )
        feed(protocol, data)
        self.assertEqual(host.names()[0], "peer_connected")
        self.assertEqual(
            host.events(),
            [
                PeerBitfield(Bitfield.from_indexes([1, 3], PIECES)),
                PeerUnchoked(),
                PeerInterested(),
            ],
        )
        self.assertEqual(protocol.bytes_received, len(data))

    def test_events_in_one_chunk(self) -> None:
        """Handshake and messages in one chunk: peer_connected, then each event in order."""
        self.events_after_handshake(lambda protocol, data: protocol.dataReceived(data))

    def test_events_byte_at_a_time(self) -> None:
        """The same bytes one at a time give the same calls."""

        def feed(protocol: PeerProtocol, data: bytes) -> None:
            for i in range(len(data)):
                protocol.dataReceived(data[i : i + 1])

        self.events_after_handshake(feed)

    def test_violation(self) -> None:
        """An oversized length prefix closes the link; peer_lost says why, once."""
        protocol, transport, host, remote = self.accepted()
        protocol.dataReceived(b"\xff\xff\xff\xff")
        self.assertTrue(transport.disconnecting)
        self.assertIsNone(transport.producer)
        lost(protocol)
        lost(protocol)
        self.assertEqual(host.names(), ["peer_connected", "peer_lost"])
        self.assertIn("protocol violation", host.calls[-1][1])
        self.assertNotIn(protocol, self.group)

    def test_wrong_info_hash(self) -> None:
        """A handshake for another torrent fails the attempt (connect_failed)."""
        protocol, transport, host = self.outgoing()
        other = make_session(THEIR_ID, outgoing=False, info_hash=OTHER_INFO_HASH)
        protocol.dataReceived(other.send_handshake())
        self.assertTrue(transport.disconnecting)
        lost(protocol)
        self.assertEqual(host.names(), ["connect_failed"])
        self.assertEqual(host.calls[0][1], ADDRESS)
        self.assertIn("info hash", host.calls[0][2])

    def test_connection_lost_before_handshake(self) -> None:
        """A connection that drops before the handshake fails the attempt."""
        protocol, transport, host = self.outgoing()
        lost(protocol, ConnectionLost("reset"))
        self.assertEqual(host.names(), ["connect_failed"])
        self.assertIn("reset", host.calls[0][2])

    def test_refused(self) -> None:
        """peer_connected returning False closes the link with no further callback."""
        host = FakeHost(self.clock)
        host.welcome = False
        protocol, transport, _ = self.outgoing(host)
        remote = make_session(THEIR_ID, outgoing=False)
        remote.receive_data(transport.value())
        protocol.dataReceived(remote.send_handshake() + remote.send_bitfield(Bitfield(PIECES)))
        self.assertTrue(transport.disconnecting)
        self.assertFalse(protocol.accepted)
        lost(protocol)
        self.assertEqual(host.names(), ["peer_connected"])

    def test_host_not_accepting(self) -> None:
        """A host that stopped before the connect completed: closed, no handshake sent."""
        host = FakeHost(self.clock)
        host.is_accepting = False
        protocol, transport, _ = self.outgoing(host)
        self.assertEqual(transport.value(), b"")
        self.assertTrue(transport.disconnecting)
        lost(protocol)
        self.assertEqual(host.names(), ["connect_failed"])

    def test_close_from_event(self) -> None:
        """A host closing the link inside peer_connected stops the dispatch."""
        host = FakeHost(self.clock)
        host.on_connected = lambda link: link.close("not today")
        protocol, transport, _ = self.outgoing(host)
        remote = make_session(THEIR_ID, outgoing=False)
        remote.receive_data(transport.value())
        protocol.dataReceived(remote.send_handshake() + remote.send_bitfield(Bitfield(PIECES)))
        self.assertTrue(transport.disconnecting)
        lost(protocol)
        self.assertEqual(host.calls[1:], [("peer_lost", "not today")])

    def test_reply_written(self) -> None:
        """A Reply event (a REJECT while we choke a fast peer) is written at once."""
        protocol, transport, host, remote = self.accepted()
        protocol.dataReceived(remote.send_bitfield(Bitfield(PIECES)) + encode_request(0, 0, K16))
        self.assertEqual(transport.value(), encode_reject(0, 0, K16))
        self.assertNotIn(BlockRequested(0, 0, K16), host.events())

    def test_events_done_once_per_batch(self) -> None:
        """After the events of one dataReceived the host hears peer_events_done
        once; not for a batch it was given nothing of (a Reply only)."""
        protocol, transport, host, remote = self.accepted()
        host.calls.clear()
        protocol.dataReceived(remote.send_bitfield(Bitfield(PIECES)) + remote.interested())
        self.assertEqual(host.names(), ["peer_event", "peer_event", "peer_events_done"])
        host.calls.clear()
        protocol.dataReceived(encode_request(0, 0, K16))  # we choke: a REJECT, nothing else
        self.assertEqual(host.names(), [])
        self.assertEqual(transport.value()[-17:], encode_reject(0, 0, K16))

    def test_block_round_trip(self) -> None:
        """A requested block goes out as header and block in one writeSequence."""
        protocol, transport, host, remote = self.accepted()
        session = protocol.session
        protocol.send(session.send_bitfield(Bitfield.full(PIECES)))
        protocol.send(session.unchoke())
        remote.receive_data(transport.value())
        protocol.dataReceived(remote.send_bitfield(Bitfield(PIECES)) + remote.request(2, K16, K16))
        self.assertEqual(host.events()[-1], BlockRequested(2, K16, K16))
        transport.clear()
        transport.calls.clear()
        before = protocol.bytes_sent
        block = bytes(range(256)) * 64
        protocol.send_block(session.send_piece_header(2, K16, K16), block)
        self.assertEqual(len(transport.calls), 1)
        kind, parts = transport.calls[0]
        self.assertEqual(kind, "writeSequence")
        self.assertEqual(len(parts), 2)
        self.assertIs(parts[1], block)
        self.assertEqual(remote.receive_data(transport.value()), [BlockReceived(2, K16, block)])
        self.assertEqual(protocol.bytes_sent - before, 13 + K16)

    def test_memoryview_block(self) -> None:
        """A memoryview block is written as bytes."""
        protocol, transport, host, remote = self.accepted()
        transport.clear()
        protocol.send_block(b"H" * 13, memoryview(b"0123456789"))
        self.assertEqual(transport.value(), b"H" * 13 + b"0123456789")

    def test_send_blocks_one_write(self) -> None:
        """send_blocks with no limit and nothing queued: one write of one
        bytes (Twisted keeps a lone buffer as it is), blocks taken from
        memoryviews without a copy of their own first."""
        protocol, transport, host, remote = self.accepted()
        transport.clear()
        transport.calls.clear()
        before = protocol.bytes_sent
        data = b"0123456789" * 3
        protocol.send_blocks([b"H" * 13, memoryview(data)[:10], b"I" * 13, memoryview(data)[10:]])
        self.assertEqual(len(transport.calls), 1)
        kind, written = transport.calls[0]
        self.assertEqual(kind, "write")
        self.assertEqual(written, b"H" * 13 + data[:10] + b"I" * 13 + data[10:])
        self.assertEqual(protocol.bytes_sent - before, 56)
        protocol.send_blocks([])
        self.assertEqual(len(transport.calls), 1)

    def test_send_blocks_while_paused_queue_in_order(self) -> None:
        """While the transport is paused, send_blocks queues each block behind
        what is queued, as send_block does."""
        protocol, transport, host, remote = self.accepted()
        transport.clear()
        protocol.pauseProducing()
        protocol.send_block(b"A" * 13, b"a")
        protocol.send_blocks([b"B" * 13, b"b", b"C" * 13, memoryview(b"c")])
        protocol.send(b"ctl")
        self.assertEqual(transport.value(), b"")
        protocol.resumeProducing()
        self.assertEqual(
            transport.value(), b"A" * 13 + b"a" + b"B" * 13 + b"b" + b"C" * 13 + b"c" + b"ctl"
        )

    def test_send_ignores_empty_and_closed(self) -> None:
        """Empty writes are skipped; writes after close are dropped."""
        protocol, transport, host, remote = self.accepted()
        transport.calls.clear()
        protocol.send(b"")
        self.assertEqual(transport.calls, [])
        protocol.close()
        protocol.send(b"late")
        protocol.send_block(b"h", b"late")
        protocol.send_blocks([b"h", b"late"])
        self.assertEqual(transport.value(), b"")
        self.assertEqual(protocol.pending_write_bytes, 0)

    def test_session_before_routing(self) -> None:
        """An incoming link has no session until the handshake names its torrent."""
        protocol, transport = self.incoming({})
        self.assertRaises(LocalProtocolError, lambda: protocol.session)

    def test_exactly_one_peer_lost(self) -> None:
        """close() twice and connectionLost twice: one peer_lost, with the first reason."""
        protocol, transport, host, remote = self.accepted()
        protocol.close("first")
        protocol.close("second")
        lost(protocol)
        lost(protocol)
        self.assertEqual(host.calls[1:], [("peer_lost", "first")])

    def test_peer_closes(self) -> None:
        """The peer closing the connection: peer_lost with Twisted's reason."""
        protocol, transport, host, remote = self.accepted()
        lost(protocol)
        self.assertEqual(host.names(), ["peer_connected", "peer_lost"])
        self.assertIn("connection lost", host.calls[1][1])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_repr(self) -> None:
        """The repr names the direction and the address."""
        protocol, transport, host = self.outgoing()
        self.assertEqual(repr(protocol), "<PeerProtocol to 127.0.0.1:6881>")

    def test_constructor_checks(self) -> None:
        """A link needs either a host and address or a router."""
        host = FakeHost(self.clock)
        self.assertRaises(ValueError, PeerProtocol, self.group)
        self.assertRaises(ValueError, PeerProtocol, self.group, host=host, router=dict().get)
        self.assertRaises(ValueError, PeerProtocol, self.group, host=host)


class IncomingTests(LinkTestCase):
    """A link the listener accepted: routed by the info hash in the handshake."""

    def setUp(self) -> None:
        super().setUp()
        self.host = FakeHost(self.clock)
        self.hosts = {INFO_HASH: self.host}

    def remote_bytes(self, info_hash: bytes = INFO_HASH) -> tuple[PeerSession, bytes]:
        remote = make_session(THEIR_ID, outgoing=True, info_hash=info_hash)
        # The remote cannot send_bitfield before our handshake: HAVE_ALL as raw bytes.
        return remote, remote.send_handshake() + encode(HaveAll())

    def test_routed_in_one_chunk(self) -> None:
        """The handshake in one chunk: routed, our handshake written, events dispatched."""
        protocol, transport = self.incoming(self.hosts)
        remote, data = self.remote_bytes()
        protocol.dataReceived(data)
        self.assertIs(protocol.host, self.host)
        self.assertFalse(protocol.outgoing)
        self.assertFalse(protocol.session.outgoing)
        self.assertEqual(self.host.names(), ["peer_connected", "peer_event", "peer_events_done"])
        self.assertEqual(self.host.events(), [PeerBitfield(Bitfield.full(PIECES))])
        events = remote.receive_data(transport.value())
        self.assertEqual(events, [HandshakeReceived(INFO_HASH, OUR_ID, True, True, False)])

    def test_routed_byte_at_a_time(self) -> None:
        """Bytes one at a time: nothing is written until 48 bytes name the torrent."""
        protocol, transport = self.incoming(self.hosts)
        remote, data = self.remote_bytes()
        for i in range(len(data)):
            protocol.dataReceived(data[i : i + 1])
            if i < 47:
                self.assertEqual(transport.value(), b"")
            elif i == 47:
                self.assertEqual(
                    transport.value(), encode_handshake(INFO_HASH, OUR_ID, make_reserved())
                )
        self.assertEqual(self.host.names(), ["peer_connected", "peer_event", "peer_events_done"])

    def test_unknown_info_hash(self) -> None:
        """A handshake for a torrent we do not have: disconnected, nobody told."""
        protocol, transport = self.incoming(self.hosts)
        remote, data = self.remote_bytes(OTHER_INFO_HASH)
        protocol.dataReceived(data)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(transport.value(), b"")
        lost(protocol)
        self.assertEqual(self.host.calls, [])

    def test_host_not_accepting(self) -> None:
        """A torrent that does not accept connections: disconnected."""
        self.host.is_accepting = False
        protocol, transport = self.incoming(self.hosts)
        protocol.dataReceived(self.remote_bytes()[1])
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.host.sessions, [])
        lost(protocol)
        self.assertEqual(self.host.calls, [])

    def test_not_bittorrent(self) -> None:
        """Bytes that are not a BitTorrent handshake: disconnected at once."""
        protocol, transport = self.incoming(self.hosts)
        protocol.dataReceived(b"GET / HTTP/1.1\r\n")
        self.assertTrue(transport.disconnecting)

    def test_lost_before_peer_connected(self) -> None:
        """An incoming link that ends before its handshake is accepted: no callback."""
        protocol, transport = self.incoming(self.hosts)
        protocol.dataReceived(self.remote_bytes()[1][:60])
        lost(protocol)
        self.assertEqual(self.host.calls, [])

    def test_address_from_transport(self) -> None:
        """The address is the transport's peer, IPv4-mapped addresses unmapped."""
        transport = StringTransport(peerAddress=IPv6Address("TCP", "::ffff:10.1.2.3", 5555))
        protocol, _ = self.incoming(self.hosts, transport)
        self.assertEqual(protocol.address, ("10.1.2.3", 5555))
        self.assertEqual(repr(protocol), "<PeerProtocol from 10.1.2.3:5555>")
        transport = StringTransport(peerAddress=IPv6Address("TCP", "2001:db8::1", 5555))
        protocol, _ = self.incoming(self.hosts, transport)
        self.assertEqual(protocol.address, ("2001:db8::1", 5555))
        self.assertEqual(repr(protocol), "<PeerProtocol from [2001:db8::1]:5555>")

    def test_host_throttles_added(self) -> None:
        """Once routed, the host's download limit applies too."""
        host = FakeHost(self.clock, download_rate=1000.0, burst=0)
        protocol, transport = self.incoming({INFO_HASH: host})
        remote = make_session(THEIR_ID, outgoing=True)
        protocol.dataReceived(remote.send_handshake())
        self.assertEqual(transport.producerState, "producing")
        protocol.dataReceived(unknown_message(1000))
        self.assertEqual(transport.producerState, "paused")


class UploadThrottleTests(LinkTestCase):
    """send_block under upload limits: delayed, never reordered."""

    def test_delayed_and_ordered(self) -> None:
        """A block over the limit waits; a later message waits behind it."""
        host = FakeHost(self.clock, upload_rate=1000.0, burst=0)
        protocol, transport, _, remote = self.accepted(host=host)
        transport.clear()
        transport.calls.clear()
        protocol.send_block(b"A" * 13, b"a" * 987)  # 1000 bytes: 1 s
        protocol.send(b"ctl")
        protocol.send_block(b"B" * 13, b"b" * 487)  # 500 more: due at 1.5 s
        self.assertEqual(transport.value(), b"")
        self.assertEqual(protocol.pending_write_bytes, 1503)
        self.clock.advance(0.999)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0.001)
        self.assertEqual(transport.value(), b"A" * 13 + b"a" * 987 + b"ctl")
        self.assertEqual(protocol.pending_write_bytes, 500)
        self.clock.advance(0.5)
        self.assertEqual(
            transport.value(), b"A" * 13 + b"a" * 987 + b"ctl" + b"B" * 13 + b"b" * 487
        )
        self.assertEqual(protocol.pending_write_bytes, 0)
        self.assertEqual(
            [kind for kind, _ in transport.calls], ["writeSequence", "write", "writeSequence"]
        )

    def test_send_blocks_paced_per_block(self) -> None:
        """Under an upload limit send_blocks paces each block as send_block would."""
        host = FakeHost(self.clock, upload_rate=1000.0, burst=0)
        protocol, transport, _, remote = self.accepted(host=host)
        transport.clear()
        protocol.send_blocks([b"A" * 13, b"a" * 987, b"B" * 13, memoryview(b"b" * 487)])
        self.assertEqual(transport.value(), b"")
        self.clock.advance(1.0)
        self.assertEqual(transport.value(), b"A" * 13 + b"a" * 987)
        self.clock.advance(0.5)
        self.assertEqual(transport.value(), b"A" * 13 + b"a" * 987 + b"B" * 13 + b"b" * 487)

    def test_global_and_host_limits(self) -> None:
        """The session's throttle and the host's both apply; the slower one rules."""
        host = FakeHost(self.clock, upload_rate=1000.0, burst=0)
        session_throttle = Throttle(500.0, self.clock, burst=0)
        protocol, transport, _, remote = self.accepted(
            host=host, upload_throttles=[session_throttle]
        )
        transport.clear()
        protocol.send_block(b"A" * 13, b"a" * 487)
        self.clock.advance(0.5)
        self.assertEqual(transport.value(), b"")
        self.clock.advance(0.5)
        self.assertEqual(len(transport.value()), 500)

    def test_unlimited_writes_at_once(self) -> None:
        """Without a limit a block is written at once and nothing is scheduled."""
        protocol, transport, host, remote = self.accepted()
        transport.clear()
        protocol.send_block(b"A" * 13, b"a" * K16)
        self.assertEqual(len(transport.value()), 13 + K16)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # the group's tick only

    def test_rate_holds_over_ten_seconds(self) -> None:
        """At 1 MB/s, a link kept busy for 10 s writes 10 MB within 10%."""
        host = FakeHost(self.clock, upload_rate=1_000_000.0)
        protocol, transport, _, remote = self.accepted(host=host)
        transport.clear()
        header, block = b"H" * 13, b"x" * K16
        while self.clock.seconds() < 10.0:
            while protocol.pending_write_bytes < 256 * 1024:
                protocol.send_block(header, block)
            self.clock.advance(0.01)
        self.assertApproximates(len(transport.value()), 10_000_000, 1_000_000)

    def test_close_cancels_flush(self) -> None:
        """Closing drops queued blocks and cancels the flush timer."""
        host = FakeHost(self.clock, upload_rate=1000.0, burst=0)
        protocol, transport, _, remote = self.accepted(host=host)
        transport.clear()
        protocol.send_block(b"A" * 13, b"a" * 987)
        protocol.close()
        lost(protocol)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(transport.value(), b"")


class DownloadThrottleTests(LinkTestCase):
    """dataReceived under download limits: the transport is paused for the delay."""

    def test_pause_and_resume(self) -> None:
        """Bytes over the limit pause reading until the debt is paid."""
        host = FakeHost(self.clock, download_rate=1000.0, burst=0)
        protocol, transport, _, remote = self.accepted(host=host)
        self.clock.advance(10)  # pay for the handshake
        self.assertEqual(transport.producerState, "producing")
        protocol.dataReceived(unknown_message(500))
        self.assertEqual(transport.producerState, "paused")
        self.clock.advance(0.49)
        self.assertEqual(transport.producerState, "paused")
        self.clock.advance(0.01)
        self.assertEqual(transport.producerState, "producing")

    def test_bytes_while_paused_extend(self) -> None:
        """Bytes that arrive while paused are charged; reading resumes when all is paid."""
        host = FakeHost(self.clock, download_rate=1000.0, burst=0)
        protocol, transport, _, remote = self.accepted(host=host)
        self.clock.advance(10)
        protocol.dataReceived(unknown_message(500))
        protocol.dataReceived(unknown_message(500))
        self.clock.advance(0.5)
        self.assertEqual(transport.producerState, "paused")
        self.clock.advance(0.5)
        self.assertEqual(transport.producerState, "producing")

    def test_rate_holds_over_ten_seconds(self) -> None:
        """At 1 MB/s, a peer sending as fast as we read delivers 10 MB in 10 s, within 10%."""
        host = FakeHost(self.clock, download_rate=1_000_000.0)
        protocol, transport, _, remote = self.accepted(host=host)
        chunk = unknown_message(65536)
        start = protocol.bytes_received
        while self.clock.seconds() < 10.0:
            if transport.producerState == "producing":
                protocol.dataReceived(chunk)
            self.clock.advance(0.001)
        self.assertApproximates(protocol.bytes_received - start, 10_000_000, 1_000_000)

    def test_close_cancels_resume(self) -> None:
        """Closing a paused link cancels its resume timer."""
        host = FakeHost(self.clock, download_rate=1000.0, burst=0)
        protocol, transport, _, remote = self.accepted(host=host)
        protocol.dataReceived(unknown_message(500))
        protocol.close()
        lost(protocol)
        self.assertEqual(self.clock.getDelayedCalls(), [])


class WriteBufferTests(LinkTestCase):
    """The transport's producer signals: bounded memory for peers that read slowly."""

    def test_paused_queues_blocks(self) -> None:
        """While the transport is full, blocks queue and count as pending."""
        protocol, transport, host, remote = self.accepted()
        transport.clear()
        protocol.pauseProducing()
        protocol.send(b"have")
        self.assertEqual(transport.value(), b"have")
        protocol.send_block(b"H" * 13, b"x" * 100)
        protocol.send(b"ctl")
        self.assertEqual(transport.value(), b"have")
        self.assertEqual(protocol.pending_write_bytes, 113 + 3 + 64 * 1024 + 4)
        protocol.resumeProducing()
        self.assertEqual(transport.value(), b"have" + b"H" * 13 + b"x" * 100 + b"ctl")
        self.assertEqual(protocol.pending_write_bytes, 0)

    def test_pause_during_flush(self) -> None:
        """A transport that fills up while we flush stops the flush; the rest waits."""
        protocol, transport, host, remote = self.accepted()
        protocol.pauseProducing()
        for i in range(3):
            protocol.send_block(b"H" * 13, bytes([i]) * 10)
        transport.clear()
        original = transport.writeSequence

        def write_and_fill(data: Any) -> None:
            original(data)
            protocol.pauseProducing()

        transport.writeSequence = write_and_fill  # type: ignore[method-assign]
        protocol.resumeProducing()
        self.assertEqual(transport.value(), b"H" * 13 + b"\0" * 10)
        protocol.resumeProducing()
        self.assertEqual(len(transport.value()), 46)

    def test_never_reads(self) -> None:
        """Writes blocked for write_stall_timeout: the connection is aborted."""
        protocol, transport, host, remote = self.accepted()
        protocol.pauseProducing()
        protocol.send_block(b"H" * 13, b"x" * K16)
        for _ in range(12):  # keep the receive side busy: only writes are stuck
            self.elapse(10)
            protocol.dataReceived(b"\0\0\0\0")
        self.assertFalse(transport.disconnecting)
        self.elapse(10)
        self.assertTrue(transport.disconnected)
        lost(protocol)
        self.assertEqual(host.names(), ["peer_connected", "peer_lost"])
        self.assertIn("does not read", host.calls[-1][1])

    def test_slow_reader_survives(self) -> None:
        """A transport that drains now and then is not a stalled one."""
        protocol, transport, host, remote = self.accepted()
        for _ in range(30):
            protocol.pauseProducing()
            self.elapse(10)
            protocol.resumeProducing()
            protocol.dataReceived(b"\0\0\0\0")
        self.assertFalse(transport.disconnecting)


class WritableHost(FakeHost):
    """A FakeHost with the optional ``peer_writable``, recorded like the rest
    (and ``on_writable`` called, when set)."""

    on_writable: Callable[[], None] | None = None

    def peer_writable(self, link: PeerLink) -> None:
        self.calls.append(("peer_writable", link))
        if self.on_writable is not None:
            self.on_writable()


class DrainNotificationTests(LinkTestCase):
    """host.peer_writable once the queue is empty and the transport takes bytes."""

    def writable(self) -> tuple[PeerProtocol, RecordingTransport, WritableHost]:
        protocol, transport, host, remote = self.accepted(host=WritableHost(self.clock))
        transport.clear()
        return protocol, transport, host  # type: ignore[return-value]

    def test_resume_with_nothing_queued(self) -> None:
        """A transport that drains while nothing is queued says so at once."""
        protocol, transport, host = self.writable()
        protocol.pauseProducing()
        protocol.resumeProducing()
        self.assertEqual(host.calls[-1], ("peer_writable", protocol))
        protocol.resumeProducing()  # not paused: no second notification
        self.assertEqual(host.names().count("peer_writable"), 1)

    def test_after_the_queue_is_written(self) -> None:
        """Queued blocks go out first; the host hears once they are all written."""
        protocol, transport, host = self.writable()
        protocol.pauseProducing()
        protocol.send_block(b"H" * 13, b"x" * 100)
        seen: list[int] = []
        host.on_writable = lambda: seen.append(len(transport.value()))
        protocol.resumeProducing()
        self.assertEqual(seen, [113])

    def test_not_while_the_queue_waits(self) -> None:
        """A transport that fills up again during the flush: no notification
        until the rest is written."""
        protocol, transport, host = self.writable()
        protocol.pauseProducing()
        for i in range(3):
            protocol.send_block(b"H" * 13, bytes([i]) * 10)
        original = transport.writeSequence

        def write_and_fill(data: Any) -> None:
            original(data)
            protocol.pauseProducing()

        transport.writeSequence = write_and_fill  # type: ignore[method-assign]
        protocol.resumeProducing()
        protocol.resumeProducing()
        self.assertNotIn("peer_writable", host.names())
        protocol.resumeProducing()
        self.assertEqual(host.names().count("peer_writable"), 1)

    def test_after_a_rate_limit_delay(self) -> None:
        """Blocks held back by the upload limit: the host hears once the last is written."""
        host = WritableHost(self.clock, upload_rate=1000.0, burst=0)
        protocol, transport, _, remote = self.accepted(host=host)
        protocol.send_block(b"A" * 13, b"a" * 987)
        protocol.send_block(b"B" * 13, b"b" * 487)
        self.clock.advance(1)
        self.assertNotIn("peer_writable", host.names())
        self.clock.advance(0.5)
        self.assertEqual(host.calls[-1], ("peer_writable", protocol))

    def test_not_on_the_fast_path(self) -> None:
        """Writes the transport takes at once never call the host."""
        protocol, transport, host = self.writable()
        protocol.send_blocks([b"H" * 13, b"x" * 100] * 4)
        protocol.send_block(b"H" * 13, b"x" * 100)
        protocol.send(b"ctl")
        self.assertNotIn("peer_writable", host.names())

    def test_not_before_accepted_nor_closing(self) -> None:
        """Only an accepted, open link reports that it drained."""
        host = WritableHost(self.clock)
        protocol, transport, _ = self.outgoing(host=host)
        protocol.pauseProducing()
        protocol.resumeProducing()
        self.assertNotIn("peer_writable", host.names())
        self.handshake(protocol, transport)
        protocol.pauseProducing()
        protocol.close("bye")
        protocol.resumeProducing()
        self.assertNotIn("peer_writable", host.names())


class TimerTests(LinkTestCase):
    """Idle, handshake and close timeouts, keep-alives, all on one coarse tick."""

    def test_idle_timeout(self) -> None:
        """Nothing received for idle_timeout: closed within one tick after."""
        protocol, transport, host, remote = self.accepted()
        self.elapse(180)
        self.assertFalse(transport.disconnecting)
        self.elapse(5)
        self.assertTrue(transport.disconnecting)
        lost(protocol)
        self.assertIn("nothing received for 180 s", host.calls[-1][1])

    def test_data_keeps_alive(self) -> None:
        """Any bytes received restart the idle count."""
        protocol, transport, host, remote = self.accepted()
        self.elapse(150)
        protocol.dataReceived(b"\0\0\0\0")
        self.elapse(150)
        self.assertFalse(transport.disconnecting)
        self.elapse(40)
        self.assertTrue(transport.disconnecting)

    def test_handshake_timeout(self) -> None:
        """No handshake within handshake_timeout: closed, the attempt failed."""
        protocol, transport, host = self.outgoing()
        self.elapse(15)
        self.assertFalse(transport.disconnecting)
        self.elapse(5)
        self.assertTrue(transport.disconnecting)
        lost(protocol)
        self.assertEqual(host.names(), ["connect_failed"])
        self.assertIn("no handshake", host.calls[0][2])

    def test_keep_alive(self) -> None:
        """After keepalive_interval of our silence (within a tick), a keep-alive goes out."""
        protocol, transport, host, remote = self.accepted()
        transport.clear()
        self.elapse(60)
        self.assertEqual(transport.value(), b"")
        self.elapse(5)
        self.assertEqual(transport.value(), b"\0\0\0\0")
        self.elapse(55)
        self.assertEqual(transport.value(), b"\0\0\0\0")
        self.elapse(5)
        self.assertEqual(transport.value(), b"\0\0\0\0" * 2)

    def test_keep_alive_interval_configured(self) -> None:
        """LinkConfig.keepalive_interval (the only keep-alive setting) sets the silence allowed."""
        self.config = LinkConfig(keepalive_interval=20.0)
        protocol, transport, host, remote = self.accepted()
        transport.clear()
        self.elapse(20)
        self.assertEqual(transport.value(), b"")
        self.elapse(5)  # silent since the first tick (it saw the handshake go out)
        self.assertEqual(transport.value(), b"\0\0\0\0")

    def test_no_keep_alive_while_sending(self) -> None:
        """A link that sends anything needs no keep-alive."""
        protocol, transport, host, remote = self.accepted()
        transport.clear()
        for _ in range(20):
            protocol.send(b"x")
            self.elapse(5)
        self.assertEqual(transport.value(), b"x" * 20)

    def test_abort_after_close_grace(self) -> None:
        """A connection that does not go away after close is aborted."""
        protocol, transport, host, remote = self.accepted()
        protocol.close("bye")
        self.assertTrue(transport.disconnecting)
        self.assertFalse(transport.disconnected)
        self.elapse(15)
        self.assertTrue(transport.disconnected)
        lost(protocol)
        self.assertEqual(host.calls[-1], ("peer_lost", "bye"))
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_one_timer_for_all_links(self) -> None:
        """Many links share one tick; it stops with the last link."""
        links = [self.accepted()[0] for _ in range(5)]
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        for protocol in links:
            lost(protocol)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.group), 0)


class InMemoryPairTests(SynchronousTestCase):
    """Two links joined by iosim: an outgoing one and an incoming one."""

    def test_handshake_both_ways(self) -> None:
        """Both hosts see peer_connected, then each other's messages."""
        clock = Clock()
        group = LinkGroup(clock)
        ours = FakeHost(clock, peer_id=OUR_ID)
        theirs = FakeHost(clock, peer_id=THEIR_ID)
        client, server, pump = iosim.connectedServerAndClient(
            lambda: PeerProtocol(group, router={INFO_HASH: theirs}.get),
            lambda: PeerProtocol(group, host=ours, address=ADDRESS),
            clock=clock,
        )
        pump.flush()
        self.assertEqual(ours.calls, [("peer_connected", client)])
        self.assertEqual(theirs.calls, [("peer_connected", server)])
        self.assertEqual(client.session.peer_id, THEIR_ID)
        self.assertEqual(server.session.peer_id, OUR_ID)
        client.send(client.session.send_bitfield(Bitfield(PIECES)))
        client.send(client.session.interested())
        server.send(server.session.send_bitfield(Bitfield.full(PIECES)))
        pump.flush()
        self.assertEqual(ours.events(), [PeerBitfield(Bitfield.full(PIECES))])
        self.assertEqual(theirs.events(), [PeerBitfield(Bitfield(PIECES)), PeerInterested()])
        client.close("done")
        pump.flush()
        self.assertEqual(ours.calls[-1], ("peer_lost", "done"))
        self.assertEqual(theirs.names()[-1], "peer_lost")
        self.assertEqual(len(group), 0)
        self.assertEqual(clock.getDelayedCalls(), [])
