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

The DHT's counterparts (a query flood, bogus datagrams, an honest pinger)
are in ``testing.hostile_dht`` and re-exported here.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Union

from twisted.internet.defer import Deferred, succeed
from twisted.internet.protocol import Factory, Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from txbittorrent.core.bencoding import encode as bencode
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


from txbittorrent.testing.hostile_dht import (  # noqa: E402 (the DHT half, re-exported)
    KRPCFlood,
    KRPCPinger,
    KRPCSource,
    flood_info_hash,
    krpc_bogus,
)
