"""Tests for txbittorrent.swarm.metadata.MetadataExchange, the ut_metadata
plug-in: fetching through a fake dispatcher and fake peers, serving, private
torrents, and two of ours talking over real PeerSessions and dispatchers."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.config import TorrentConfig
from txbittorrent.core.bencoding import encode as bencode
from txbittorrent.core.wire.metadata import (
    METADATA_PIECE_SIZE,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    encode_data,
    encode_reject,
    encode_request,
    parse_message,
)
from txbittorrent.core.wire.session import PeerSession
from txbittorrent.errors import MetainfoError, RemoteProtocolError
from txbittorrent.swarm.extensions import ExtensionError, Extensions
from txbittorrent.swarm.metadata import MAX_BLOCKED, SERVE_BUFFER_LIMIT, MetadataExchange
from txbittorrent.swarm.plugins import PluginContext

NAME = b"ut_metadata"
INFO = bencode({b"name": b"plug-in", b"pad": bytes(range(256)) * 160})
"""About 40 KiB: three pieces."""
INFO_HASH = hashlib.sha1(INFO).digest()


def piece_of(info: bytes, piece: int) -> bytes:
    return info[piece * METADATA_PIECE_SIZE:(piece + 1) * METADATA_PIECE_SIZE]


@dataclass(eq=False)
class FakeSession:
    peer_extensions: dict[bytes, int] = field(default_factory=lambda: {NAME: 7})


@dataclass(eq=False)
class FakeLink:
    pending_write_bytes: int = 0


@dataclass(eq=False)
class FakePeer:
    """A peer as the plug-in sees it."""

    address: tuple[str, int]
    session: FakeSession = field(default_factory=FakeSession)
    link: FakeLink = field(default_factory=FakeLink)
    connected: bool = True


class FakeExtensions:
    """The dispatcher's ``send``: records what would go out, refuses peers
    without ut_metadata."""

    def __init__(self) -> None:
        self.sent: list[tuple[FakePeer, Any]] = []

    def send(self, peer: FakePeer, name: bytes, payload: bytes) -> bool:
        if not peer.session.peer_extensions.get(name) or not peer.connected:
            return False
        self.sent.append((peer, parse_message(payload)))
        return True

    def take(self) -> list[tuple[FakePeer, Any]]:
        sent, self.sent = self.sent, []
        return sent


class FakeTorrent:
    """What the context reaches: the info (once known), privacy, and
    ``metadata_received`` checking the hash as ``Torrent`` does."""

    def __init__(self, info: bytes | None = None, private: bool = False,
                 max_metadata_size: int = 1 << 20) -> None:
        self.info = info
        self.private = private
        self.received: list[bytes] = []
        self.refuse: Exception | None = None
        self.clock = Clock()
        self.extensions = FakeExtensions()
        self.context = PluginContext(
            info_hash=INFO_HASH,
            config=TorrentConfig(max_metadata_size=max_metadata_size),
            clock=self.clock,
            rng=random.Random(1),
            extensions=self.extensions,  # type: ignore[arg-type]
            live_peers=lambda: [],
            add_peers=self.add_peers,
            info_bytes=lambda: self.info,
            metadata_received=self.metadata_received,
            private=lambda: self.private,
            ban=lambda peer, reason: self.banned.append((peer, reason)),
        )
        self.banned: list[tuple[Any, str]] = []
        self.plugin = MetadataExchange(self.context)

    def add_peers(self, addresses: Iterable[tuple[str, int]], source: str) -> int:
        return 0

    def metadata_received(self, info: bytes) -> None:
        self.received.append(info)
        if self.refuse is not None:
            raise self.refuse
        assert hashlib.sha1(info).digest() == INFO_HASH
        self.info = info

    def join(self, port: int, size: Any = len(INFO), m: int | None = 7) -> FakePeer:
        peer = FakePeer(("127.0.0.2", port))
        peer.session.peer_extensions = {NAME: m} if m is not None else {}
        payload: dict[bytes, Any] = {b"m": dict(peer.session.peer_extensions)}
        if size is not None:
            payload[b"metadata_size"] = size
        self.plugin.on_handshake(peer, payload)  # type: ignore[arg-type]
        return peer

    def deliver(self, peer: FakePeer, payload: bytes) -> None:
        self.plugin.on_message(peer, payload)  # type: ignore[arg-type]

    def answer(self, peer: FakePeer, piece: int, info: bytes = INFO) -> None:
        self.deliver(peer, encode_data(piece, len(info), piece_of(info, piece)))


def requests(sent: list[tuple[FakePeer, Any]]) -> list[tuple[int, int]]:
    """``(peer's port, piece)`` of each request sent."""
    return [(peer.address[1], m.piece) for peer, m in sent if isinstance(m, MetadataRequest)]


class FetchingTests(SynchronousTestCase):
    """A torrent without metadata fetches it from the peers that offer it."""

    def test_fetch(self) -> None:
        """Requests go to the offering peers in parallel; verified bytes go
        to metadata_received once, exactly; the fetch is then dropped."""
        t = FakeTorrent()
        self.assertEqual(t.plugin.handshake_fields(), {})
        a = t.join(1)
        b = t.join(2)
        self.assertEqual(requests(t.extensions.take()), [(1, 0), (1, 1), (1, 2)])
        self.assertEqual(requests(t.extensions.take()), [])
        for piece in range(3):
            t.answer(a, piece)
        self.assertEqual(t.received, [INFO])
        self.assertIsNone(t.plugin.fetch)
        self.assertEqual(t.plugin.handshake_fields(), {b"metadata_size": len(INFO)})
        t.answer(b, 0)
        self.assertEqual(t.received, [INFO], "nothing more is taken")

    def test_who_is_asked(self) -> None:
        """Peers without ut_metadata, without an integer metadata_size, or
        over max_metadata_size are not asked."""
        t = FakeTorrent(max_metadata_size=len(INFO) - 1)
        t.join(1, m=None)
        t.join(2, size=None)
        t.join(3, size=b"40000")
        t.join(4, size=len(INFO))
        t.join(5, size=True)
        self.assertEqual(t.extensions.take(), [])
        self.assertEqual(t.plugin.fetch.peers if t.plugin.fetch else None, [])

    def test_disabled_later(self) -> None:
        """A peer whose later handshake disables ut_metadata is dropped."""
        t = FakeTorrent()
        a = t.join(1)
        b = t.join(2)
        t.extensions.take()
        a.session.peer_extensions = {}
        t.plugin.on_handshake(a, {b"m": {NAME: 0}})  # type: ignore[arg-type]
        self.assertEqual(requests(t.extensions.take()), [(2, 0), (2, 1), (2, 2)])
        self.assertIsNotNone(b)

    def test_timeout_and_retry(self) -> None:
        """A peer that never answers: tick() hands its pieces to another."""
        t = FakeTorrent()
        t.join(1)
        t.join(2)
        t.extensions.take()
        t.clock.advance(10)
        t.plugin.tick(t.clock.seconds())
        self.assertEqual(requests(t.extensions.take()), [(2, 0), (2, 1), (2, 2)])

    def test_peer_lost(self) -> None:
        """A peer that goes: its pieces are asked of another."""
        t = FakeTorrent()
        a = t.join(1)
        t.join(2)
        t.extensions.take()
        t.plugin.on_peer_lost(a)  # type: ignore[arg-type]
        self.assertEqual(requests(t.extensions.take()), [(2, 0), (2, 1), (2, 2)])

    def test_reject(self) -> None:
        """A REJECT: the piece is asked of another peer."""
        t = FakeTorrent()
        a = t.join(1)
        t.join(2)
        t.extensions.take()
        t.deliver(a, encode_reject(1))
        self.assertEqual(requests(t.extensions.take()), [(2, 1)])

    def test_wrong_length_disconnects(self) -> None:
        """A piece of the wrong length raises RemoteProtocolError (the swarm
        closes the peer), and the piece is asked elsewhere."""
        t = FakeTorrent()
        a = t.join(1)
        t.join(2)
        t.extensions.take()
        bad = encode_data(0, len(INFO), piece_of(INFO, 0)[:100])
        self.assertRaises(RemoteProtocolError, t.deliver, a, bad)
        self.assertEqual(requests(t.extensions.take()), [(2, 0), (2, 1), (2, 2)])
        t.plugin.on_handshake(a, {b"m": {NAME: 7}, b"metadata_size": len(INFO)})  # type: ignore
        self.assertEqual(t.extensions.take(), [], "its address is not asked again")

    def test_blocked_addresses_bounded(self) -> None:
        """At most MAX_BLOCKED culprits' addresses are remembered, the oldest
        forgotten first."""
        t = FakeTorrent()
        t.plugin._block(FakePeer(("10.0.0.1", port)) for port in range(MAX_BLOCKED + 1))
        for port in (1, 0):
            peer = FakePeer(("10.0.0.1", port))
            t.plugin.on_handshake(peer, {b"metadata_size": len(INFO)})  # type: ignore[arg-type]
        self.assertEqual(requests(t.extensions.take()), [(0, 0), (0, 1), (0, 2)])

    def test_hash_failure(self) -> None:
        """Metadata failing the hash is never handed over; its sole sender is
        disconnected; the next peer's good metadata is."""
        t = FakeTorrent()
        liar = t.join(1)
        t.join(2)
        t.extensions.take()
        fake = bytes(len(INFO))
        t.answer(liar, 0, fake)
        t.answer(liar, 1, fake)
        self.assertRaises(RemoteProtocolError, t.answer, liar, 2, fake)
        self.assertEqual((t.received, t.plugin.hash_failures), ([], 1))
        sent = t.extensions.take()
        self.assertEqual(requests(sent), [(2, 0), (2, 1), (2, 2)])
        for piece in range(3):
            t.answer(sent[piece][0], piece)
        self.assertEqual(t.received, [INFO])

    def test_liar_among_senders_banned(self) -> None:
        """When several peers sent a failed attempt, the one whose piece
        differs from the verified metadata is banned through the context."""
        t = FakeTorrent()
        honest = t.join(1)
        t.extensions.take()
        t.answer(honest, 0)
        t.answer(honest, 1)
        t.clock.advance(60)
        t.plugin.tick(t.clock.seconds())  # piece 2 timed out: asked of the next peer
        liar = t.join(2)
        t.plugin.tick(t.clock.seconds())
        asked = requests(t.extensions.take())
        self.assertIn((2, 2), asked)
        t.answer(liar, 2, bytes(len(INFO)))
        self.assertEqual((t.received, t.plugin.hash_failures), ([], 1))
        for peer, m in t.extensions.take():
            if isinstance(m, MetadataRequest):
                t.answer(peer, m.piece)
        t.plugin.tick(t.clock.seconds())
        for peer, m in t.extensions.take():
            if isinstance(m, MetadataRequest):
                t.answer(peer, m.piece)
        self.assertEqual(t.received, [INFO])
        self.assertEqual([peer for peer, _ in t.banned], [liar])

    def test_unasked_data_ignored(self) -> None:
        """Data nobody asked for is ignored, without an error."""
        t = FakeTorrent()
        stranger = FakePeer(("127.0.0.9", 9))
        t.answer(stranger, 0)
        a = t.join(1)
        t.extensions.take()
        t.deliver(a, encode_data(5, len(INFO), b"x"))
        self.assertEqual(t.received, [])

    def test_malformed_and_unknown(self) -> None:
        """A malformed message is a violation; an unknown msg_type is ignored."""
        t = FakeTorrent()
        a = t.join(1)
        self.assertRaises(RemoteProtocolError, t.deliver, a, b"not bencoding")
        t.deliver(a, b"d8:msg_typei9e5:piecei0ee")

    def test_refused_by_the_torrent(self) -> None:
        """Verified metadata the torrent cannot use (it raised): logged, and
        nothing more is fetched."""
        t = FakeTorrent()
        t.refuse = MetainfoError("info.pieces", "missing")
        a = t.join(1)
        t.extensions.take()
        for piece in range(3):
            t.answer(a, piece)
        self.assertEqual(len(self.flushLoggedErrors(MetainfoError)), 1)
        self.assertEqual(t.plugin.unusable, "info.pieces: missing")
        t.join(2)
        self.assertEqual(t.extensions.take(), [])

    def test_metadata_from_elsewhere(self) -> None:
        """Once the torrent has its metadata by another route, the fetch stops."""
        t = FakeTorrent()
        t.join(1)
        t.extensions.take()
        t.info = INFO
        t.plugin.tick(100.0)
        self.assertIsNone(t.plugin.fetch)
        t.join(2)
        self.assertEqual(t.extensions.take(), [])


class ServingTests(SynchronousTestCase):
    """A torrent with metadata serves it."""

    def test_serves_exact_bytes(self) -> None:
        """metadata_size in the handshake; each piece's exact bytes."""
        t = FakeTorrent(INFO)
        self.assertEqual(t.plugin.handshake_fields(), {b"metadata_size": len(INFO)})
        peer = FakePeer(("127.0.0.2", 1))
        for piece in range(3):
            t.deliver(peer, encode_request(piece))
        sent = t.extensions.take()
        self.assertEqual([m for _, m in sent],
                         [MetadataData(i, len(INFO), piece_of(INFO, i)) for i in range(3)])
        self.assertEqual(b"".join(m.data for _, m in sent), INFO)
        self.assertEqual(t.plugin.served, 3)

    def test_out_of_range(self) -> None:
        """A piece past the end is rejected."""
        t = FakeTorrent(INFO)
        peer = FakePeer(("127.0.0.2", 1))
        t.deliver(peer, encode_request(3))
        t.deliver(peer, encode_request(10**12))
        self.assertEqual([m for _, m in t.extensions.take()],
                         [MetadataReject(3), MetadataReject(10**12)])

    def test_no_metadata_yet(self) -> None:
        """Without metadata every request is rejected."""
        t = FakeTorrent()
        t.deliver(FakePeer(("127.0.0.2", 1)), encode_request(0))
        self.assertEqual([m for _, m in t.extensions.take()], [MetadataReject(0)])

    def test_private(self) -> None:
        """A private torrent advertises no metadata_size and serves nobody."""
        t = FakeTorrent(INFO, private=True)
        self.assertEqual(t.plugin.handshake_fields(), {})
        t.deliver(FakePeer(("127.0.0.2", 1)), encode_request(0))
        self.assertEqual([m for _, m in t.extensions.take()], [MetadataReject(0)])

    def test_private_magnet(self) -> None:
        """A magnet cannot know it is private: it fetches, then (the metadata
        saying private) serves nobody."""
        t = FakeTorrent()
        a = t.join(1)
        t.extensions.take()
        for piece in range(3):
            t.answer(a, piece)
        t.private = True
        self.assertEqual(t.received, [INFO])
        self.assertEqual(t.plugin.handshake_fields(), {})
        t.deliver(a, encode_request(0))
        self.assertEqual([m for _, m in t.extensions.take()], [MetadataReject(0)])

    def test_flood(self) -> None:
        """While too much waits unsent to a peer, its requests are rejected."""
        t = FakeTorrent(INFO)
        peer = FakePeer(("127.0.0.2", 1))
        peer.link.pending_write_bytes = SERVE_BUFFER_LIMIT + 1
        t.deliver(peer, encode_request(0))
        peer.link.pending_write_bytes = SERVE_BUFFER_LIMIT
        t.deliver(peer, encode_request(0))
        self.assertEqual([type(m) for _, m in t.extensions.take()],
                         [MetadataReject, MetadataData])


# -- two of ours over real sessions ---------------------------------------------------


@dataclass(eq=False)
class PipeLink:
    """Bytes sent go into ``outbox`` until ``Pair.run`` delivers them."""

    outbox: list[bytes] = field(default_factory=list)
    pending_write_bytes: int = 0

    def send(self, data: bytes) -> None:
        self.outbox.append(data)


@dataclass(eq=False)
class WirePeer:
    session: PeerSession
    link: PipeLink
    address: tuple[str, int]
    connected: bool = True


class Side:
    """One of ours: a dispatcher with the plug-in, and its view of the other."""

    def __init__(self, info: bytes | None, peer_id: bytes, outgoing: bool) -> None:
        self.torrent = FakeTorrent(info)
        self.extensions = Extensions()
        self.torrent.context.extensions = self.extensions
        self.plugin = MetadataExchange(self.torrent.context)
        self.extensions.register(self.plugin)
        session = PeerSession(INFO_HASH, peer_id, None, outgoing,
                              extension_handshake=self.extensions.handshake())
        self.peer = WirePeer(session, PipeLink(), ("127.0.0.2", 6881 + outgoing))


class Pair:
    """A fetcher and a seeder joined back to back."""

    def __init__(self) -> None:
        self.fetcher = Side(None, b"-TX0001-fetcher00000", True)
        self.seeder = Side(INFO, b"-TX0001-seeder000000", False)
        f, s = self.fetcher.peer, self.seeder.peer
        s.session.receive_data(f.session.send_handshake())
        f.session.receive_data(s.session.send_handshake())
        f.link.send(f.session.send_extension_handshake())
        s.link.send(s.session.send_extension_handshake())

    def run(self) -> int:
        """Deliver bytes both ways until both are quiet; the messages moved."""
        moved = 0
        sides = ((self.fetcher, self.seeder), (self.seeder, self.fetcher))
        while any(side.peer.link.outbox for side, _ in sides):
            for src, dst in sides:
                outbox, src.peer.link.outbox = src.peer.link.outbox, []
                for data in outbox:
                    moved += 1
                    for event in dst.peer.session.receive_data(data):
                        dst.extensions.peer_event(dst.peer, event)
        return moved


class WireTests(SynchronousTestCase):
    """Our fetcher against our seeder, over PeerSessions and dispatchers."""

    def test_fetch_from_ourselves(self) -> None:
        """The fetcher's handshake-driven requests get the seeder's exact bytes."""
        pair = Pair()
        pair.run()
        self.assertEqual(pair.fetcher.torrent.received, [INFO])
        self.assertEqual(pair.seeder.plugin.served, 3)

    def test_violation_closes(self) -> None:
        """A malformed message through the dispatcher is an ExtensionError
        blaming the peer."""
        pair = Pair()
        pair.run()
        s = pair.seeder.peer
        data = s.session.send_extended(NAME, b"garbage")
        events = pair.fetcher.peer.session.receive_data(data)
        with self.assertRaises(ExtensionError) as caught:
            for event in events:
                pair.fetcher.extensions.peer_event(pair.fetcher.peer, event)
        self.assertTrue(caught.exception.peer_fault)
