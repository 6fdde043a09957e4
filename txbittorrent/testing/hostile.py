"""A scripted hostile peer, for tests that check a client survives one.

Theory of operation
-------------------
``HostileFactory`` builds a ``HostilePeer`` for each connection to it; a test
listens with it (``reactor.listenTCP(0, factory, interface="127.0.0.1")``)
and names that address in a magnet's ``x.pe``.  Nothing here opens a socket
or reads the global reactor: the factory is given its ``clock``.

A ``HostilePeer`` speaks just enough BitTorrent to be taken for a peer, by
hand over the core's codecs.  As soon as the connection is up it sends a
handshake for the factory's info hash (extension protocol bit set, nothing
else) and the BEP 10 handshake its ``Script`` gives (raw bytes, so that it
may be malformed).  It decodes what the other side sends with
``core.wire.codec.WireDecoder``: the other side's extension handshakes give
the ids to send under (``remote_ids``: BEP 10 ids belong to the receiver),
and its ``ut_metadata`` requests go to the script.  It never sends a
bitfield (it has no piece), never answers a block request and never closes
the connection unless its script or the test says so: a connection that
ends otherwise was ended by the other side (``closed_by_remote``).

A ``Script`` is the hostile part, with three hooks: the extension handshake
(``extension_handshake``), what to send once the other side's extension
handshake is in (``ready``: frames, at once or one every ``interval``
seconds), and what to answer a metadata request (``metadata_request``).
The scripts shipped:

* ``Script`` itself: frames (bytes, or functions of the peer, such as
  ``extended(name, payload)``) after a handshake that may be anything;
* ``ServeMetadata``: offers some bytes as the metadata and serves them
  exactly (``altered_info`` makes a different info dictionary of the same
  size; ``garbage`` makes noise);
* ``LieAboutSize``: announces a size and answers with ``total_size``
  values in turn (and DATA nobody asked for);
* ``RejectAll``: offers the metadata and REJECTs every request;
* ``pex_flood`` builds ``ut_pex`` payloads full of loopback decoys
  (``decoys``: addresses on 127/8 other than 127.0.0.1, at a port that
  only the test's own listener holds, so that dialling one is refused at
  once and nothing else on the machine is reached).

What each connection saw stays on its peer (``requests``, ``received``,
``answered``, ``lost``, ``closed_by_remote``) and the factory keeps every
peer (``peers``), so a test asserts on them; ``HostileFactory.close()``
drops the live connections and fires once each has ended.

The DHT (BEP 5) has its own: ``KRPCFlood`` sends a mix of queries (each
with a new node id; announce_peer with forged tokens and with tokens the
node handed out) and ``krpc_bogus`` datagrams at one node, from as many
``KRPCSource``s as the test binds (on loopback addresses of its choice, so
that a per-source rate limit sees many hosts), on a ``LoopingCall``; a
``KRPCPinger`` is the honest node whose pings must still be answered.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Union

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import DatagramProtocol, Factory, Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from txbittorrent.core.bencoding import encode as bencode
from txbittorrent.core.dht.krpc import (
    AnnouncePeerQuery,
    ErrorReply,
    FindNodeQuery,
    GetPeersQuery,
    KRPCError,
    PingQuery,
    Query,
    Response,
    decode_message,
    encode_message,
)
from txbittorrent.core.wire.codec import (
    Extended,
    Handshake,
    WireDecoder,
    encode_extended,
    encode_handshake,
    make_reserved,
)
from txbittorrent.core.wire.extensions import merge_peer_extensions, parse_extension_handshake
from txbittorrent.core.wire.metadata import (
    METADATA_PIECE_SIZE,
    MetadataRequest,
    encode_data,
    encode_reject,
    parse_message,
    serve_piece,
)
from txbittorrent.core.wire.pex import PEX_NAME, PexMessage, PexPeer, encode_pex
from txbittorrent.errors import RemoteProtocolError

__all__ = [
    "METADATA",
    "OUR_IDS",
    "Frame",
    "HostileFactory",
    "HostilePeer",
    "KRPCFlood",
    "KRPCPinger",
    "KRPCSource",
    "LieAboutSize",
    "RejectAll",
    "Script",
    "ServeMetadata",
    "altered_info",
    "decoys",
    "extended",
    "extension_handshake",
    "flood_info_hash",
    "garbage",
    "krpc_bogus",
    "pex_flood",
]

METADATA = b"ut_metadata"

OUR_IDS: Mapping[bytes, int] = {METADATA: 3, PEX_NAME: 1}
"""The ids a hostile peer's usual handshake gives (what the other side
sends to it under)."""

Frame = Union[bytes, Callable[["HostilePeer"], bytes]]
"""Bytes to send as they are, or a function of the peer giving them (b"" for nothing)."""


# -- building blocks ------------------------------------------------------------------


def extension_handshake(metadata_size: int | None = None, **fields: Any) -> bytes:
    """A well-formed BEP 10 handshake payload offering ``ut_metadata`` and
    ``ut_pex`` under ``OUR_IDS`` (and ``metadata_size`` if given)."""
    payload: dict[bytes, Any] = {b"m": dict(OUR_IDS), b"v": b"Hostile 0.1"}
    if metadata_size is not None:
        payload[b"metadata_size"] = metadata_size
    payload.update((key.encode(), value) for key, value in fields.items())
    return bencode(payload)


def extended(name: bytes, payload: bytes) -> Frame:
    """A frame: ``payload`` as an extended message under the id the other
    side gave ``name`` (nothing if it gave none)."""

    def frame(peer: HostilePeer) -> bytes:
        extended_id = peer.remote_ids.get(name)
        return encode_extended(extended_id, payload) if extended_id else b""

    return frame


def garbage(length: int, seed: int = 0) -> bytes:
    """``length`` random bytes, the same for the same seed."""
    return random.Random(seed).randbytes(length)


def altered_info(info_bytes: bytes) -> bytes:
    """An info dictionary of exactly ``info_bytes``'s length, still bencoded,
    whose SHA-1 differs: the first and last bytes of its ``pieces`` are
    flipped."""
    key = info_bytes.find(b"6:pieces")
    if key < 0:
        raise ValueError("no 'pieces' in this info dictionary")
    colon = info_bytes.index(b":", key + 8)
    start = colon + 1
    length = int(info_bytes[key + 8 : colon])
    changed = bytearray(info_bytes)
    changed[start] ^= 0xFF
    changed[start + length - 1] ^= 0xFF
    return bytes(changed)


def decoys(port: int, count: int, start: int = 0) -> list[tuple[str, int]]:
    """``count`` loopback addresses other than 127.0.0.1 (127.1.0.1 on), all
    at ``port``.  While the test's listener holds ``127.0.0.1:port`` nothing
    can listen on the wildcard address at that port, so dialling one is
    refused at once (unless something bound that very address)."""
    out = []
    for i in range(start, start + count):
        out.append((f"127.{1 + i // 65024}.{i // 254 % 256}.{1 + i % 254}", port))
    return out


def pex_flood(
    port: int, messages: int, entries: int, *, padding: int = 0, start: int = 0
) -> list[bytes]:
    """``messages`` ``ut_pex`` payloads of ``entries`` added decoys each (all
    different, ``added.f`` included), each padded with ``padding`` bytes
    under a key BEP 11 does not define."""
    payloads = []
    for n in range(messages):
        first = start + n * entries
        added = tuple(PexPeer(a, 0x10) for a in decoys(port, entries, first))
        payload = encode_pex(PexMessage(added))
        if padding:
            # bencoded dictionaries keep their keys sorted: "zz" goes last.
            payload = payload[:-1] + b"2:zz" + bencode(b"\x00" * padding) + b"e"
        payloads.append(payload)
    return payloads


# -- scripts ----------------------------------------------------------------------------


class Script:
    """What a hostile peer does: send ``handshake`` as its extension
    handshake (None: the usual ``extension_handshake()``; with
    ``send_handshake`` False, none at all), then ``frames`` once the other
    side's extension handshake is in (``at_once`` frames right after the
    handshake), all together or one every ``interval`` seconds.  Metadata
    requests are not answered.  Subclasses override the hooks."""

    def __init__(
        self,
        handshake: bytes | None = None,
        frames: Sequence[Frame] = (),
        *,
        at_once: Sequence[Frame] = (),
        interval: float = 0.0,
        send_handshake: bool = True,
    ) -> None:
        self.handshake: bytes | None = None
        if send_handshake:
            self.handshake = handshake if handshake is not None else extension_handshake()
        self.frames = list(frames)
        self.at_once = list(at_once)
        self.interval = interval

    def extension_handshake(self, peer: HostilePeer) -> bytes | None:
        """The payload of the peer's BEP 10 handshake (None: send none)."""
        return self.handshake

    def connected(self, peer: HostilePeer) -> None:
        """The handshakes are sent: send the ``at_once`` frames."""
        for frame in self.at_once:
            peer.send_frame(frame)

    def ready(self, peer: HostilePeer) -> None:
        """The other side's first extension handshake is in: send the frames."""
        if self.interval > 0:
            peer.pace(self.frames, self.interval)
        else:
            for frame in self.frames:
                peer.send_frame(frame)

    def metadata_request(self, peer: HostilePeer, piece: int) -> None:
        """The other side asked for a piece of metadata."""


class ServeMetadata(Script):
    """Offers ``info_bytes`` as the metadata and serves its pieces exactly
    (pieces out of range are REJECTed), whatever the info hash says."""

    def __init__(self, info_bytes: bytes, **options: Any) -> None:
        super().__init__(extension_handshake(len(info_bytes)), **options)
        self.info_bytes = info_bytes

    def metadata_request(self, peer: HostilePeer, piece: int) -> None:
        peer.answer(serve_piece(self.info_bytes, piece))


class LieAboutSize(Script):
    """Announces ``announced`` as ``metadata_size`` and answers the n-th
    request (n from 0) with a DATA whose ``total_size`` is
    ``total_sizes[n % len]`` and whose data (noise) has the right length for
    the piece at the announced size.  With ``unsolicited``, that many DATA
    messages nobody asked for (16 KiB each, ``total_sizes`` in turn) follow
    the other side's extension handshake."""

    def __init__(
        self, announced: int, total_sizes: Sequence[int], *, unsolicited: int = 0
    ) -> None:
        super().__init__(extension_handshake(announced))
        self.announced = announced
        self.total_sizes = list(total_sizes)
        self.unsolicited = unsolicited

    def ready(self, peer: HostilePeer) -> None:
        for piece in range(self.unsolicited):
            size = self.total_sizes[piece % len(self.total_sizes)]
            data = garbage(METADATA_PIECE_SIZE, piece)
            peer.send_frame(extended(METADATA, encode_data(piece, size, data)))

    def metadata_request(self, peer: HostilePeer, piece: int) -> None:
        n = len(peer.answered)
        length = max(0, min(METADATA_PIECE_SIZE, self.announced - piece * METADATA_PIECE_SIZE))
        total_size = self.total_sizes[n % len(self.total_sizes)]
        peer.answer(encode_data(piece, total_size, garbage(length, piece)))


class RejectAll(Script):
    """Offers ``metadata_size`` bytes of metadata and REJECTs every request."""

    def __init__(self, metadata_size: int) -> None:
        super().__init__(extension_handshake(metadata_size))

    def metadata_request(self, peer: HostilePeer, piece: int) -> None:
        peer.answer(encode_reject(piece))


# -- the protocol -------------------------------------------------------------------------


class HostilePeer(Protocol):
    """One connection of a hostile peer (see the module docstring)."""

    def __init__(self, factory: HostileFactory) -> None:
        self.factory = factory
        self.script = factory.script
        self._decoder = WireDecoder()
        self.remote_ids: dict[bytes, int] = {}
        """The other side's extension ids (from its handshakes' ``m``)."""
        self.remote_handshakes = 0
        self.handshake: Handshake | None = None
        """The other side's BitTorrent handshake, once in."""
        self.requests: list[int] = []
        """The metadata pieces the other side asked for, in order."""
        self.answered: list[int] = []
        """The requests the script answered (DATA or REJECT), in order."""
        self.received: Counter[str] = Counter()
        """The other side's messages, by type name (extended ones by name)."""
        self.bytes_sent = 0
        self.bytes_received = 0
        self.connected_at: float | None = None
        self.lost_at: float | None = None
        self.lost: str | None = None
        """Why the connection ended (None while it is up)."""
        self.closed_by_remote = False
        """The other side ended the connection (not the script or the test)."""
        self.violation: str | None = None
        """What was wrong with the other side's bytes, if we closed for it."""
        self._closing = False
        self._loops: list[LoopingCall] = []

    @property
    def live(self) -> bool:
        return self.connected_at is not None and self.lost is None

    # -- Protocol ---------------------------------------------------------------------

    def connectionMade(self) -> None:
        factory = self.factory
        factory.peers.append(self)
        self.connected_at = factory.clock.seconds()
        self.send(encode_handshake(factory.info_hash, factory.peer_id,
                                   make_reserved(fast=False, extended=True)))
        payload = self.script.extension_handshake(self)
        if payload is not None:
            self.send(encode_extended(0, payload))
        self.script.connected(self)

    def dataReceived(self, data: bytes) -> None:
        self.bytes_received += len(data)
        if self._closing or self.lost is not None:
            return
        try:
            events = self._decoder.feed(data)
        except RemoteProtocolError as e:
            self._refuse(str(e))
            return
        for event in events:
            if self._closing:
                return
            self._event(event)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self.lost = reason.getErrorMessage()
        self.lost_at = self.factory.clock.seconds()
        self.closed_by_remote = not self._closing
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops.clear()
        self.factory.peer_lost(self)

    # -- reading --------------------------------------------------------------------------

    def _event(self, event: object) -> None:
        if isinstance(event, Handshake):
            self.handshake = event
            if event.info_hash != self.factory.info_hash:
                self._refuse("handshake for another info hash")
            return
        if not isinstance(event, Extended):
            self.received[type(event).__name__] += 1
            return
        if event.extended_id == 0:
            self.received["extension handshake"] += 1
            try:
                _, m = parse_extension_handshake(event.payload)
            except RemoteProtocolError as e:
                self._refuse(str(e))
                return
            merge_peer_extensions(self.remote_ids, m)
            self.remote_handshakes += 1
            if self.remote_handshakes == 1:
                self.script.ready(self)
            return
        name = next((n for n, i in OUR_IDS.items() if i == event.extended_id), None)
        self.received[name.decode() if name else f"extended {event.extended_id}"] += 1
        if name != METADATA:
            return
        try:
            message = parse_message(event.payload)
        except RemoteProtocolError as e:
            self._refuse(str(e))
            return
        if isinstance(message, MetadataRequest):
            self.requests.append(message.piece)
            self.script.metadata_request(self, message.piece)

    def _refuse(self, why: str) -> None:
        self.violation = why
        self.close()

    # -- writing, for scripts ----------------------------------------------------------------

    def send(self, data: bytes) -> None:
        transport: Any = self.transport
        if data and transport is not None and not self._closing and self.lost is None:
            self.bytes_sent += len(data)
            transport.write(data)

    def send_frame(self, frame: Frame) -> None:
        self.send(frame if isinstance(frame, bytes) else frame(self))

    def answer(self, payload: bytes) -> None:
        """Answer the latest metadata request with ``payload`` (a ut_metadata message)."""
        self.answered.append(self.requests[-1])
        self.send_frame(extended(METADATA, payload))

    def pace(self, frames: Iterable[Frame], interval: float) -> None:
        """Send ``frames`` one every ``interval`` seconds (the first at once)."""
        queue = iter(list(frames))

        def next_frame() -> None:
            frame = next(queue, None)
            if frame is None:
                loop.stop()
            else:
                self.send_frame(frame)

        loop = LoopingCall(next_frame)
        loop.clock = self.factory.clock
        self._loops.append(loop)
        loop.start(interval, now=True)

    def close(self, abort: bool = False) -> None:
        """End the connection (our side's doing)."""
        transport: Any = self.transport
        if self._closing or transport is None:
            return
        self._closing = True
        if abort:
            transport.abortConnection()
        else:
            transport.loseConnection()


class HostileFactory(Factory):
    """Makes a ``HostilePeer`` running ``script`` for each connection, for
    the torrent ``info_hash``; ``clock`` times things (an ``IReactorTime``)."""

    noisy = False

    def __init__(
        self, info_hash: bytes, script: Script, *, clock: Any, peer_id: bytes | None = None
    ) -> None:
        if len(info_hash) != 20:
            raise ValueError("an info hash is 20 bytes")
        self.info_hash = info_hash
        self.script = script
        self.clock = clock
        self.peer_id = peer_id if peer_id is not None else b"-HO0001-" + garbage(12, id(self))
        self.peers: list[HostilePeer] = []
        """Every connection, in the order made."""
        self._waiting: list[Deferred[None]] = []

    def buildProtocol(self, addr: Any) -> HostilePeer:
        return HostilePeer(self)

    # -- what the connections saw ---------------------------------------------------------

    @property
    def live(self) -> list[HostilePeer]:
        return [p for p in self.peers if p.live]

    @property
    def requests(self) -> list[int]:
        """Every metadata piece asked of any connection, in order."""
        return [piece for p in self.peers for piece in p.requests]

    @property
    def dropped(self) -> list[HostilePeer]:
        """The connections the other side ended."""
        return [p for p in self.peers if p.closed_by_remote]

    def describe(self) -> str:
        return "; ".join(
            f"#{i} sent {p.bytes_sent} got {p.bytes_received} asked {p.requests} "
            f"received {dict(p.received)} lost={p.lost!r} by_remote={p.closed_by_remote}"
            for i, p in enumerate(self.peers)
        ) or "no connection"

    # -- ending -----------------------------------------------------------------------------

    def peer_lost(self, peer: HostilePeer) -> None:
        if not self.live:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def close(self) -> Deferred[None]:
        """Abort every live connection; fire once all have ended."""
        live = self.live
        if not live:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        for peer in live:
            peer.close(abort=True)
        return d


# -- the DHT: a query flood, bogus datagrams, an honest pinger -----------------------------


def krpc_bogus(rng: random.Random) -> list[bytes]:
    """Datagrams a DHT node must survive without a reply it does not owe,
    an exception or a lasting cost: malformed ones, and well-formed ones it
    never asked for or that overreach."""
    node_id, info_hash, tid = rng.randbytes(20), rng.randbytes(20), b"bg"

    def query(method: bytes, args: Mapping[bytes, Any], t: bytes = tid) -> bytes:
        return bencode({b"t": t, b"y": b"q", b"q": method, b"a": dict(args)})

    return [
        b"d",  # cut short
        b"de",  # an empty dictionary
        b"d1:y1:qe",  # a query without t, q or a
        bencode({b"t": tid, b"y": b"q", b"q": b"ping"}),  # no arguments: 203
        query(b"ping", {b"id": node_id[:19]}),  # a 19-byte node id: 203
        query(b"vote", {b"id": node_id}),  # an unknown method: 204
        query(b"announce_peer", {b"id": node_id, b"info_hash": info_hash,  # a port
                                 b"port": 70_000, b"token": b"x"}),  # out of range
        query(b"get_peers", {b"id": node_id, b"info_hash": info_hash,  # 4,000 wants
                             b"want": [b"n4", b"n6"] * 2000}),
        query(b"ping", {b"id": node_id}, b"x" * 1000),  # a 1,000-byte transaction id
        bencode({b"t": tid, b"y": b"r",  # an unsolicited reply naming 300 nodes
                 b"r": {b"id": node_id, b"nodes": rng.randbytes(26 * 300)}}),
        bencode({b"t": tid, b"y": b"e", b"e": [201, b"x" * 1000]}),  # an unsolicited error
        bencode({b"t": tid, b"y": b"z"}),  # an unknown message type
        b"d1:a" + b"l" * 5000 + b"e" * 5000 + b"e",  # nested 5,000 deep
        b"d1:al" + b"i1e" * 9000 + b"ee",  # 9,000 items
        b"d1:ti" + b"9" * 2000 + b"ee",  # a 2,000-digit integer
        b"d1:x60000:" + rng.randbytes(60_000) + b"e",  # 60 KB of nothing
        b"d" + rng.randbytes(1000),  # noise after a d
        b"\x00\x00\x00\x00" + rng.randbytes(12),  # a BEP 15 lookalike nobody claimed
        b"GET / HTTP/1.0\r\n\r\n",  # not KRPC at all
    ]


def flood_info_hash(index: int) -> bytes:
    """The ``index``-th info hash a ``KRPCFlood`` asks for and announces."""
    return hashlib.sha1(b"hostile %d" % index).digest()


class KRPCSource(DatagramProtocol):
    """One source address of a ``KRPCFlood`` (the test binds it where it
    likes: ``reactor.listenUDP(0, flood.source(), interface="127.0.1.7")``).
    It reads the target's replies: a token in reply to its get_peers is
    used for an announce_peer of that info hash."""

    def __init__(self, flood: KRPCFlood) -> None:
        self.flood = flood
        self.tokens: list[tuple[int, bytes]] = []
        """(info hash index, token) waiting to be announced with."""

    def send(self, datagram: bytes) -> None:
        transport: Any = self.transport
        if transport is None:
            return
        try:
            transport.write(datagram, self.flood.target)
        except OSError:
            self.flood.send_errors += 1
            return
        self.flood.sent += 1
        self.flood.bytes_sent += len(datagram)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        flood = self.flood
        flood.received += 1
        try:
            message = decode_message(datagram)
        except KRPCError:
            flood.unreadable += 1
            return
        if isinstance(message, ErrorReply):
            flood.errors[message.code] = flood.errors.get(message.code, 0) + 1
            return
        if not isinstance(message, Response):
            return  # a query of the node's: a flood does not answer
        flood.replies += 1
        tid = message.transaction_id
        if tid[:1] == b"g" and message.token is not None and len(self.tokens) < 64:
            self.tokens.append((int.from_bytes(tid[1:], "big"), message.token))
        elif tid[:1] == b"A":
            flood.announced += 1


class KRPCFlood:
    """A flood of KRPC datagrams at one DHT node (``target``) from many
    ``KRPCSource``s: every ``interval`` seconds, ``batch`` datagrams, each
    from the next source in turn, each the next kind in turn: ping,
    find_node, get_peers (a new info hash each time), announce_peer with a
    forged token, announce_peer with a token the node gave (when a source
    has one), and one of ``krpc_bogus``.  Every query carries a new random
    node id.  ``start(duration)`` returns a Deferred that fires when it
    stops (``stop()`` ends it early)."""

    KINDS = ("ping", "find_node", "get_peers", "forged", "announce", "bogus")

    def __init__(
        self, target: tuple[str, int], *, clock: Any, rng: random.Random,
        batch: int = 50, interval: float = 0.005,
    ) -> None:
        self.target = target
        self.clock = clock
        self.rng = rng
        self.batch = batch
        self.interval = interval
        self.sources: list[KRPCSource] = []
        self.bogus = krpc_bogus(rng)
        self.sent = self.bytes_sent = self.send_errors = 0
        self.received = self.replies = self.unreadable = self.announced = 0
        self.errors: dict[int, int] = {}
        """KRPC error replies by code."""
        self.sent_by_kind: Counter[str] = Counter()
        self._turn = 0
        self._next_hash = 0
        self._loop: LoopingCall | None = None
        self._deadline = 0.0
        self._done: Deferred[None] | None = None

    def source(self) -> KRPCSource:
        source = KRPCSource(self)
        self.sources.append(source)
        return source

    def start(self, duration: float) -> Deferred[None]:
        self._deadline = self.clock.seconds() + duration
        self._done = Deferred()
        loop = self._loop = LoopingCall(self._tick)
        loop.clock = self.clock
        loop.start(self.interval, now=True)
        return self._done

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        done, self._done = self._done, None
        if done is not None:
            done.callback(None)

    def _tick(self) -> None:
        if self.clock.seconds() >= self._deadline:
            self.stop()
            return
        for _ in range(self.batch):
            turn = self._turn
            self._turn += 1
            source = self.sources[turn % len(self.sources)]
            kind = self.KINDS[(turn // len(self.sources)) % len(self.KINDS)]
            datagram = self._datagram(kind, source, turn)
            if datagram:
                self.sent_by_kind[kind] += 1
                source.send(datagram)

    def _datagram(self, kind: str, source: KRPCSource, turn: int) -> bytes:
        rng = self.rng
        tid = turn.to_bytes(4, "big")
        node_id = rng.randbytes(20)
        message: Query
        if kind == "ping":
            message = PingQuery(transaction_id=b"p" + tid, node_id=node_id)
        elif kind == "find_node":
            message = FindNodeQuery(transaction_id=b"f" + tid, node_id=node_id,
                                    target=rng.randbytes(20))
        elif kind == "get_peers":
            index = self._next_hash
            self._next_hash += 1
            message = GetPeersQuery(transaction_id=b"g" + index.to_bytes(4, "big"),
                                    node_id=node_id, info_hash=flood_info_hash(index))
        elif kind == "forged":
            message = AnnouncePeerQuery(transaction_id=b"F" + tid, node_id=node_id,
                                        info_hash=rng.randbytes(20), port=6881,
                                        token=rng.randbytes(8))
        elif kind == "announce":
            if not source.tokens:
                return b""
            index, token = source.tokens.pop()
            message = AnnouncePeerQuery(transaction_id=b"A" + tid, node_id=node_id,
                                        info_hash=flood_info_hash(index),
                                        port=1 + turn % 65535, token=token)
        else:
            return self.bogus[turn % len(self.bogus)]
        return encode_message(message)


class KRPCPinger(DatagramProtocol):
    """An honest node that pings ``target`` every ``interval`` seconds
    (``start``/``stop``) and times the replies."""

    def __init__(self, target: tuple[str, int], *, clock: Any, interval: float = 0.25) -> None:
        self.target = target
        self.clock = clock
        self.interval = interval
        self.node_id = hashlib.sha1(b"honest").digest()
        self.sent: dict[bytes, float] = {}
        """Transaction id -> when sent, for each ping not answered yet."""
        self.pings = 0
        self.rtts: list[float] = []
        """Seconds each answered ping took, in order."""
        self._loop: LoopingCall | None = None
        self._waiting: list[Deferred[float]] = []

    def ping(self) -> Deferred[float]:
        """Send one ping; fires with its round trip when answered."""
        d: Deferred[float] = Deferred()
        self._waiting.append(d)
        self._ping()
        return d

    def _ping(self) -> None:
        transport: Any = self.transport
        tid = b"h" + self.pings.to_bytes(4, "big")
        self.pings += 1
        self.sent[tid] = self.clock.seconds()
        transport.write(encode_message(PingQuery(transaction_id=tid, node_id=self.node_id)),
                        self.target)

    def start(self) -> None:
        loop = self._loop = LoopingCall(self._ping)
        loop.clock = self.clock
        loop.start(self.interval, now=True)

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        try:
            message = decode_message(datagram)
        except KRPCError:
            return
        sent = self.sent.pop(message.transaction_id, None)
        if sent is None or not isinstance(message, Response):
            return
        rtt = self.clock.seconds() - sent
        self.rtts.append(rtt)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(rtt)
