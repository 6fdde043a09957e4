"""The per-connection rules of the peer wire protocol, without I/O.

Theory of operation
-------------------
A ``PeerSession`` is one connection to one peer about one torrent, in the
style of h11: the caller hands it the bytes that arrived (``receive_data``)
and gets back events (``core.events``); it calls a method for everything it
wants to say and gets back the bytes to write.  The one exception: where BEP 6
obliges an immediate answer to what arrived (REJECT for a request from a fast
peer we are choking, or for a request a fast peer cancelled), the bytes come
back as a ``Reply`` event, in order with the other events.

What it owns:

* the decoder for the incoming direction (``core.wire.WireDecoder``);
* the connection state, named as BEP 3 names it: ``am_choking``,
  ``am_interested``, ``peer_choking``, ``peer_interested`` (starting true,
  false, true, false); the peer's pieces (``peer_have``); which extensions
  both sides set (``fast``, ``extended``, ``dht``); the peer's ``peer_id``,
  ``peer_reserved``, extension map (``peer_extensions``, from its BEP 10
  ``m`` dictionary) and request queue size (``peer_reqq``);
* both request books: what the peer asked of us and we have not answered
  (``pending_peer_requests``, in arrival order) and what we asked of the peer
  and have not received (``outstanding_requests``), plus a bounded memory of
  the requests we cancelled;
* the BEP 6 allowed-fast sets in both directions.

What it must not know: the clock (idle and request timeouts belong to the
caller, which sees every byte arrive), the disk, the piece picker, the choker
and other peers.  It never decides whether to choke, what to request or
whether a requested piece is on disk; it enforces the rules such decisions
must follow and refuses (``LocalProtocolError``) calls that would break them.

Invariants:

* Every event has been applied to the state before it is returned.
* ``outstanding_requests`` only holds requests the peer must (fast) or may
  (not fast) still answer: we never request while choked outside the peer's
  allowed-fast set, and when a peer without the fast extension chokes us,
  every outstanding request is dropped and reported as ``RequestRejected``.
  A fast peer's choke drops nothing: it must REJECT each request (BEP 6).
* ``pending_peer_requests`` never holds more than ``max_peer_requests``
  entries: one more is a request flood, a violation.  Choking a peer drops
  its requests (BEP 3); with the fast extension ``choke()`` returns a REJECT
  for each one outside our allowed-fast set (BEP 6).
* A violation by the peer raises ``RemoteProtocolError`` from
  ``receive_data`` and kills the session: every later call raises
  ``LocalProtocolError``.  The caller's own mistakes raise
  ``LocalProtocolError`` (wrong state) or ``ValueError`` (bad argument) and
  change nothing.

Where the rules bend for real peers:

* BITFIELD, HAVE_ALL or HAVE_NONE must come before any other BEP 3 message
  and at most once, but BEP 10 messages, PORT, SUGGEST, ALLOWED_FAST,
  keep-alives and unknown messages may precede it: libtorrent sends its
  extension handshake as soon as it has read our handshake, before its
  bitfield.  A later BITFIELD (never a later HAVE_ALL or HAVE_NONE) is taken
  as a replacement of the peer's set: aria2 1.36 sends HAVE_NONE, then
  ALLOWED_FAST and INTERESTED, then a BITFIELD.
* A block or REJECT for a request we cancelled is accepted silently (without
  an event) if it is among the last ``CANCELLED_MEMORY`` we cancelled: the
  CANCEL and the answer can cross.  Requests dropped by a non-fast peer's
  choke are remembered the same way, in case its blocks were already sent.
* Requests of 16 KiB to 128 KiB are passed up as ``BlockRequested`` and may
  be served; longer ones are a violation.
* A later BEP 10 handshake updates ``peer_extensions`` (id 0 disables).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, KeysView, Mapping
from typing import Any, ClassVar

from txbittorrent.core.bencoding import Limits, decode, encode as bencode
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.wire.events import (
    BlockReceived,
    BlockRequested,
    DHTPort,
    ExtensionHandshake,
    ExtensionMessage,
    HandshakeReceived,
    PeerAllowedFast,
    PeerBitfield,
    PeerChoked,
    PeerEvent,
    PeerHave,
    PeerInterested,
    PeerNotInterested,
    PeerUnchoked,
    Reply,
    RequestCancelled,
    RequestRejected,
    Suggested,
)
from txbittorrent.core.layout import BLOCK_SIZE
from txbittorrent.core.wire import codec as wire
from txbittorrent.core.wire.codec import encode, encode_reject
from txbittorrent.errors import (
    BencodeError,
    BitfieldError,
    LocalProtocolError,
    RemoteProtocolError,
    SelfConnectionError,
)

__all__ = ["PeerSession", "MAX_PEER_REQUEST_LENGTH", "CANCELLED_MEMORY", "BlockKey"]

MAX_PEER_REQUEST_LENGTH = 128 * 1024
"""The longest block a peer may request; more is a violation."""

CANCELLED_MEMORY = 4096
"""How many of our cancelled requests are remembered, so that their late
blocks or REJECTs are accepted rather than taken as unrequested."""

_EXTENSION_HANDSHAKE_LIMITS = Limits(max_depth=16, max_items=10_000)

BlockKey = tuple[int, int, int]
"""(piece_index, begin, length): how requests are identified on the wire."""

_DEFAULT_RESERVED = wire.make_reserved()
_CHOKE_BYTES = encode(wire.Choke())
_UNCHOKE_BYTES = encode(wire.Unchoke())
_INTERESTED_BYTES = encode(wire.Interested())
_NOT_INTERESTED_BYTES = encode(wire.NotInterested())
_HAVE_ALL_BYTES = encode(wire.HaveAll())
_HAVE_NONE_BYTES = encode(wire.HaveNone())
_KEEP_ALIVE_BYTES = encode(wire.KeepAlive())
_PEER_CHOKED = PeerChoked()
_PEER_UNCHOKED = PeerUnchoked()
_PEER_INTERESTED = PeerInterested()
_PEER_NOT_INTERESTED = PeerNotInterested()


def _describe(key: BlockKey) -> str:
    return f"block {key[1]}+{key[2]} of piece {key[0]}"


class PeerSession:
    """One connection's protocol state; see the module docstring."""

    __slots__ = (
        "info_hash", "our_peer_id", "piece_count", "outgoing", "reserved", "max_peer_requests",
        "max_block_length", "extension_handshake", "am_choking", "am_interested", "peer_choking",
        "peer_interested", "peer_have", "peer_id", "peer_reserved", "fast", "extended", "dht",
        "peer_extensions", "peer_reqq", "peer_allowed_fast", "our_allowed_fast", "_piece_length_of",
        "_ours", "_decoder", "_pending", "_outstanding", "_cancelled", "_dead", "_handshake_sent",
        "_bitfield_sent", "_sent_core", "_bitfield_allowed",
    )

    def __init__(
        self,
        info_hash: bytes,
        our_peer_id: bytes,
        piece_count: int,
        outgoing: bool,
        *,
        piece_length_of: Callable[[int], int],
        reserved: bytes = _DEFAULT_RESERVED,
        max_peer_requests: int = 500,
        max_block_length: int = BLOCK_SIZE,
        extension_handshake: Mapping[str | bytes, Any] | None = None,
        max_message_length: int | None = None,
    ) -> None:
        """``outgoing`` says we opened the connection (kept for the caller; the
        rules are the same both ways).  ``piece_length_of(i)`` is the size of
        piece ``i`` (``Layout.piece_size`` will do).  ``max_block_length``
        bounds our own requests.  ``extension_handshake`` is our BEP 10
        handshake (``m``, ``v``, ``p`` ...; ``reqq`` defaults to
        ``max_peer_requests``).  The message length cap defaults to
        ``DEFAULT_MAX_MESSAGE_LENGTH``, raised if the bitfield needs more."""
        if len(info_hash) != 20 or len(our_peer_id) != 20:
            raise ValueError("info_hash and our_peer_id must be 20 bytes")
        if len(reserved) != 8:
            raise ValueError("reserved must be 8 bytes")
        if piece_count < 0 or max_peer_requests < 1:
            raise ValueError("piece_count must not be negative, max_peer_requests positive")
        if not 1 <= max_block_length <= MAX_PEER_REQUEST_LENGTH:
            raise ValueError(f"max_block_length must be 1..{MAX_PEER_REQUEST_LENGTH}")
        self.info_hash = info_hash
        self.our_peer_id = our_peer_id
        self.piece_count = piece_count
        self.outgoing = outgoing
        self.reserved = reserved
        self.max_peer_requests = max_peer_requests
        self.max_block_length = max_block_length
        payload: dict[bytes, Any] = {
            k.encode("utf-8") if isinstance(k, str) else k: v
            for k, v in (extension_handshake or {}).items()
        }
        payload.setdefault(b"m", {})
        payload.setdefault(b"reqq", max_peer_requests)
        self.extension_handshake = payload
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self.peer_have = Bitfield(piece_count)
        self.peer_id: bytes | None = None
        self.peer_reserved: bytes | None = None
        self.fast = False
        self.extended = False
        self.dht = False
        self.peer_extensions: dict[bytes, int] = {}
        self.peer_reqq: int | None = None
        self.peer_allowed_fast: set[int] = set()
        self.our_allowed_fast: set[int] = set()
        self._piece_length_of = piece_length_of
        self._ours = wire.Handshake(info_hash, our_peer_id, reserved)
        if max_message_length is None:
            max_message_length = max(
                wire.DEFAULT_MAX_MESSAGE_LENGTH, 1 + (piece_count + 7) // 8, 9 + max_block_length
            )
        self._decoder = wire.WireDecoder(max_message_length)
        self._pending: dict[BlockKey, None] = {}
        self._outstanding: dict[BlockKey, None] = {}
        self._cancelled: dict[BlockKey, None] = {}
        self._dead = False
        self._handshake_sent = False
        self._bitfield_sent = False
        self._sent_core = False
        self._bitfield_allowed = False

    # -- what the swarm may read -------------------------------------------------

    @property
    def pending_peer_requests(self) -> KeysView[BlockKey]:
        """The peer's requests we have not answered, oldest first (a live view)."""
        return self._pending.keys()

    @property
    def outstanding_requests(self) -> KeysView[BlockKey]:
        """Our requests the peer has not answered, oldest first (a live view)."""
        return self._outstanding.keys()

    @property
    def handshake_received(self) -> bool:
        return self.peer_id is not None

    @property
    def dead(self) -> bool:
        """The peer broke the protocol; the connection must be closed."""
        return self._dead

    def may_request(self, piece_index: int) -> bool:
        """Whether ``request`` would accept a block of this piece now."""
        return piece_index in self.peer_have and (
            not self.peer_choking or piece_index in self.peer_allowed_fast
        )

    # -- receiving -----------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> list[PeerEvent]:
        """Take bytes from the peer; return what they told us.

        Raises ``RemoteProtocolError`` (and the session is dead) if they break
        the protocol; events from earlier in the same ``data`` are lost then."""
        self._check_alive()
        events: list[PeerEvent] = []
        handlers = self._HANDLERS
        try:
            for message in self._decoder.feed(data):
                handlers[type(message)](self, message, events)
        except Exception:
            self._dead = True
            raise
        return events

    def _check_index(self, piece_index: int, what: str) -> None:
        if piece_index >= self.piece_count:
            raise RemoteProtocolError(
                f"{what} for piece {piece_index}, but the torrent has {self.piece_count} pieces"
            )

    def _require_fast(self, what: str) -> None:
        if not self.fast:
            raise RemoteProtocolError(f"{what} without the fast extension (BEP 6) negotiated")

    def _take_bitfield(self, what: str) -> None:
        if not self._bitfield_allowed:
            raise RemoteProtocolError(f"{what} after other messages (it may only come first, once)")
        self._bitfield_allowed = False

    def _on_info_hash(self, message: wire.HandshakeInfoHash, events: list[PeerEvent]) -> None:
        if message.info_hash != self.info_hash:
            raise RemoteProtocolError(
                f"handshake for info hash {message.info_hash.hex()}, "
                f"expected {self.info_hash.hex()}"
            )

    def _on_handshake(self, message: wire.Handshake, events: list[PeerEvent]) -> None:
        if message.peer_id == self.our_peer_id:
            raise SelfConnectionError("the peer's id is our own: we connected to ourselves")
        ours = self._ours
        self.peer_id = message.peer_id
        self.peer_reserved = message.reserved
        self.fast = message.fast and ours.fast
        self.extended = message.extended and ours.extended
        self.dht = message.dht and ours.dht
        self._bitfield_allowed = True
        events.append(
            HandshakeReceived(
                message.info_hash, message.peer_id, self.fast, self.extended, self.dht
            )
        )

    def _on_nothing(self, message: object, events: list[PeerEvent]) -> None:
        """Keep-alives and unknown messages: no event (BEP 3 ignores unknown ids)."""

    def _on_choke(self, message: wire.Choke, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        if self.peer_choking:
            return
        self.peer_choking = True
        events.append(_PEER_CHOKED)
        if not self.fast:
            # BEP 3: a choke discards every request; the swarm must ask again.
            for key in self._outstanding:
                self._remember_cancelled(key)
                events.append(RequestRejected(*key))
            self._outstanding.clear()

    def _on_unchoke(self, message: wire.Unchoke, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        if self.peer_choking:
            self.peer_choking = False
            events.append(_PEER_UNCHOKED)

    def _on_interested(self, message: wire.Interested, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        if not self.peer_interested:
            self.peer_interested = True
            events.append(_PEER_INTERESTED)

    def _on_not_interested(self, message: wire.NotInterested, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        if self.peer_interested:
            self.peer_interested = False
            events.append(_PEER_NOT_INTERESTED)

    def _on_have(self, message: wire.Have, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        index = message.piece_index
        self._check_index(index, "HAVE")
        if index not in self.peer_have:
            self.peer_have.add(index)
            events.append(PeerHave(index))

    def _on_bitfield(self, message: wire.BitfieldMsg, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False  # a late one replaces (see the module docstring)
        try:
            have = Bitfield.from_bytes(message.data, self.piece_count)
        except BitfieldError as e:
            raise RemoteProtocolError(f"bad BITFIELD: {e}") from None
        self.peer_have = have
        events.append(PeerBitfield(have.copy()))

    def _on_have_all(self, message: wire.HaveAll, events: list[PeerEvent]) -> None:
        self._require_fast("HAVE_ALL")
        self._take_bitfield("HAVE_ALL")
        self.peer_have = Bitfield.full(self.piece_count)
        events.append(PeerBitfield(self.peer_have.copy()))

    def _on_have_none(self, message: wire.HaveNone, events: list[PeerEvent]) -> None:
        self._require_fast("HAVE_NONE")
        self._take_bitfield("HAVE_NONE")
        self.peer_have = Bitfield(self.piece_count)
        events.append(PeerBitfield(self.peer_have.copy()))

    def _on_request(self, message: wire.Request, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        index, begin, length = message.piece_index, message.begin, message.length
        self._check_index(index, "REQUEST")
        if length == 0 or length > MAX_PEER_REQUEST_LENGTH:
            raise RemoteProtocolError(
                f"REQUEST of {length} bytes (must be 1..{MAX_PEER_REQUEST_LENGTH})"
            )
        size = self._piece_length_of(index)
        if begin + length > size:
            raise RemoteProtocolError(
                f"REQUEST for {begin}+{length} runs past the end of piece {index} ({size} bytes)"
            )
        key = (index, begin, length)
        if self.am_choking and index not in self.our_allowed_fast:
            if self.fast:  # BEP 6: answer it; without fast, BEP 3 ignores it
                events.append(Reply(encode_reject(index, begin, length)))
            return
        if key in self._pending:
            return
        if len(self._pending) >= self.max_peer_requests:
            raise RemoteProtocolError(
                f"more than {self.max_peer_requests} requests pending (request flood)"
            )
        self._pending[key] = None
        events.append(BlockRequested(index, begin, length))

    def _on_cancel(self, message: wire.Cancel, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        self._check_index(message.piece_index, "CANCEL")
        key = (message.piece_index, message.begin, message.length)
        if key in self._pending:
            del self._pending[key]
            events.append(RequestCancelled(*key))
            if self.fast:  # BEP 6: every request gets exactly one answer
                events.append(Reply(encode_reject(*key)))

    def _on_piece(self, message: wire.Piece, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        key = (message.piece_index, message.begin, len(message.block))
        if key in self._outstanding:
            del self._outstanding[key]
            events.append(BlockReceived(message.piece_index, message.begin, message.block))
        elif key in self._cancelled:
            del self._cancelled[key]
        else:
            raise RemoteProtocolError(f"{_describe(key)} that we did not request")

    def _on_reject(self, message: wire.Reject, events: list[PeerEvent]) -> None:
        self._require_fast("REJECT")
        self._bitfield_allowed = False
        key = (message.piece_index, message.begin, message.length)
        # A REJECT answering an earlier CANCEL comes before the answer to a
        # later request for the same block, so the cancelled one goes first.
        if key in self._cancelled:
            del self._cancelled[key]
        elif key in self._outstanding:
            del self._outstanding[key]
            events.append(RequestRejected(*key))
        else:
            raise RemoteProtocolError(f"REJECT for {_describe(key)}, which we did not request")

    def _on_suggest(self, message: wire.Suggest, events: list[PeerEvent]) -> None:
        self._require_fast("SUGGEST")
        self._check_index(message.piece_index, "SUGGEST")
        events.append(Suggested(message.piece_index))

    def _on_allowed_fast(self, message: wire.AllowedFast, events: list[PeerEvent]) -> None:
        self._require_fast("ALLOWED_FAST")
        index = message.piece_index
        self._check_index(index, "ALLOWED_FAST")
        if index not in self.peer_allowed_fast:
            self.peer_allowed_fast.add(index)
            events.append(PeerAllowedFast(index))

    def _on_port(self, message: wire.Port, events: list[PeerEvent]) -> None:
        events.append(DHTPort(message.port))

    def _on_extended(self, message: wire.Extended, events: list[PeerEvent]) -> None:
        if not self.extended:
            raise RemoteProtocolError("EXTENDED without the extension protocol (BEP 10) negotiated")
        if message.extended_id:
            events.append(ExtensionMessage(message.extended_id, message.payload))
            return
        try:
            payload = decode(message.payload, limits=_EXTENSION_HANDSHAKE_LIMITS)
        except BencodeError as e:
            raise RemoteProtocolError(f"bad extension handshake: {e}") from None
        if not isinstance(payload, dict):
            raise RemoteProtocolError("extension handshake is not a dictionary")
        m = payload.get(b"m", {})
        if not isinstance(m, dict):
            raise RemoteProtocolError("extension handshake 'm' is not a dictionary")
        for name, extended_id in m.items():
            if type(extended_id) is not int or not 0 <= extended_id <= 255:
                raise RemoteProtocolError(f"extension handshake gives {name!r} id {extended_id!r}")
        for name, extended_id in m.items():
            if extended_id:
                self.peer_extensions[name] = extended_id
            else:
                self.peer_extensions.pop(name, None)
        reqq = payload.get(b"reqq")
        if type(reqq) is int and reqq > 0:
            self.peer_reqq = reqq
        events.append(ExtensionHandshake(payload))

    _HANDLERS: ClassVar[dict[type, Callable[[PeerSession, Any, list[PeerEvent]], None]]] = {
        wire.Piece: _on_piece,
        wire.Have: _on_have,
        wire.Request: _on_request,
        wire.Cancel: _on_cancel,
        wire.Reject: _on_reject,
        wire.Choke: _on_choke,
        wire.Unchoke: _on_unchoke,
        wire.Interested: _on_interested,
        wire.NotInterested: _on_not_interested,
        wire.BitfieldMsg: _on_bitfield,
        wire.HaveAll: _on_have_all,
        wire.HaveNone: _on_have_none,
        wire.Suggest: _on_suggest,
        wire.AllowedFast: _on_allowed_fast,
        wire.Port: _on_port,
        wire.Extended: _on_extended,
        wire.KeepAlive: _on_nothing,
        wire.UnknownMessage: _on_nothing,
        wire.HandshakeInfoHash: _on_info_hash,
        wire.Handshake: _on_handshake,
    }

    # -- sending ---------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._dead:
            raise LocalProtocolError("this session is dead: the peer broke the protocol")

    def _check_ready(self) -> None:
        self._check_alive()
        if not self._handshake_sent or self.peer_id is None:
            raise LocalProtocolError("messages need both handshakes exchanged first")

    def _check_after_bitfield(self) -> None:
        self._check_ready()
        if self.fast and not self._bitfield_sent:
            raise LocalProtocolError(
                "with the fast extension, send_bitfield must come before other messages"
            )

    def _core_send(self) -> None:
        """Checks before sending a BEP 3 message other than the bitfield."""
        self._check_after_bitfield()
        self._sent_core = True

    def _check_piece(self, piece_index: int) -> None:
        if not 0 <= piece_index < self.piece_count:
            raise ValueError(f"piece index {piece_index} out of range 0..{self.piece_count - 1}")

    def _require_fast_locally(self, what: str) -> None:
        if not self.fast:
            raise LocalProtocolError(f"{what} needs the fast extension (BEP 6) on both sides")

    def _remember_cancelled(self, key: BlockKey) -> None:
        cancelled = self._cancelled
        cancelled[key] = None
        if len(cancelled) > CANCELLED_MEMORY:
            del cancelled[next(iter(cancelled))]

    def send_handshake(self) -> bytes:
        """Our handshake: first thing on an outgoing connection; on an incoming
        one, once the peer's handshake (or its info hash) has arrived."""
        self._check_alive()
        if self._handshake_sent:
            raise LocalProtocolError("our handshake was already sent")
        self._handshake_sent = True
        return encode(self._ours)

    def send_bitfield(self, have: Bitfield) -> bytes:
        """Our pieces, once, before any other BEP 3 message.  With the fast
        extension this is HAVE_ALL or HAVE_NONE where they apply (and must be
        sent); without it, nothing if we have no piece (BEP 3 allows that)."""
        self._check_ready()
        if have.piece_count != self.piece_count:
            raise ValueError(f"bitfield of {have.piece_count} pieces, not {self.piece_count}")
        if self._bitfield_sent or self._sent_core:
            raise LocalProtocolError("the bitfield may only be sent once, before other messages")
        self._bitfield_sent = True
        if self.fast:
            if have.complete:
                return _HAVE_ALL_BYTES
            if not have.count:
                return _HAVE_NONE_BYTES
        elif not have.count:
            return b""
        return wire.encode_bitfield(have.to_bytes())

    def send_have(self, piece_index: int) -> bytes:
        self._check_piece(piece_index)
        self._core_send()
        return wire.encode_have(piece_index)

    def choke(self) -> bytes:
        """Choke the peer (nothing if already choked).  Its pending requests
        are dropped; with the fast extension each one outside our allowed-fast
        set is answered with a REJECT, after the CHOKE (BEP 6)."""
        self._check_after_bitfield()
        if self.am_choking:
            return b""
        self._sent_core = True
        self.am_choking = True
        if not self.fast:
            self._pending.clear()
            return _CHOKE_BYTES
        rejected = [key for key in self._pending if key[0] not in self.our_allowed_fast]
        for key in rejected:
            del self._pending[key]
        return b"".join([_CHOKE_BYTES, *(encode_reject(*key) for key in rejected)])

    def unchoke(self) -> bytes:
        """Unchoke the peer (nothing if already unchoked)."""
        self._check_after_bitfield()
        if not self.am_choking:
            return b""
        self._sent_core = True
        self.am_choking = False
        return _UNCHOKE_BYTES

    def interested(self) -> bytes:
        """Tell the peer we want pieces it has (nothing if we already said so)."""
        self._check_after_bitfield()
        if self.am_interested:
            return b""
        self._sent_core = True
        self.am_interested = True
        return _INTERESTED_BYTES

    def not_interested(self) -> bytes:
        """Tell the peer we want nothing it has (nothing if we already said so)."""
        self._check_after_bitfield()
        if not self.am_interested:
            return b""
        self._sent_core = True
        self.am_interested = False
        return _NOT_INTERESTED_BYTES

    def request(self, piece_index: int, begin: int, length: int) -> bytes:
        """Ask for a block of a piece the peer has, while it does not choke us
        (or the piece is in its allowed-fast set)."""
        self._check_piece(piece_index)
        if not 1 <= length <= self.max_block_length or begin < 0:
            raise ValueError(f"block {begin}+{length}: length must be 1..{self.max_block_length}")
        size = self._piece_length_of(piece_index)
        if begin + length > size:
            raise ValueError(f"block {begin}+{length} is past the end of piece {piece_index}")
        self._check_after_bitfield()
        if piece_index not in self.peer_have:
            raise LocalProtocolError(f"the peer does not have piece {piece_index}")
        if self.peer_choking and piece_index not in self.peer_allowed_fast:
            raise LocalProtocolError("the peer is choking us and has not allowed this piece fast")
        key = (piece_index, begin, length)
        if key in self._outstanding:
            raise LocalProtocolError(f"{_describe(key)} is already requested")
        self._sent_core = True
        self._outstanding[key] = None
        return wire.encode_request(piece_index, begin, length)

    def request_many(self, blocks: Iterable[BlockKey]) -> bytes:
        """``request`` for each block in turn, as one write: all or nothing
        (if one is refused, none is requested).  The same checks as
        ``request``, with those that depend only on the piece made once per
        run of blocks of the same piece."""
        self._check_after_bitfield()
        outstanding, max_length = self._outstanding, self.max_block_length
        added: list[BlockKey] = []
        last, size = -1, 0
        try:
            for key in blocks:
                piece_index, begin, length = key
                if piece_index != last:
                    self._check_piece(piece_index)
                    size = self._piece_length_of(piece_index)
                    if piece_index not in self.peer_have:
                        raise LocalProtocolError(f"the peer does not have piece {piece_index}")
                    if self.peer_choking and piece_index not in self.peer_allowed_fast:
                        raise LocalProtocolError(
                            "the peer is choking us and has not allowed this piece fast"
                        )
                    last = piece_index
                if not 1 <= length <= max_length or begin < 0:
                    raise ValueError(f"block {begin}+{length}: length must be 1..{max_length}")
                if begin + length > size:
                    raise ValueError(
                        f"block {begin}+{length} is past the end of piece {piece_index}"
                    )
                if key in outstanding:
                    raise LocalProtocolError(f"{_describe(key)} is already requested")
                outstanding[key] = None
                added.append(key)
        except BaseException:
            for key in added:
                del outstanding[key]
            raise
        if not added:
            return b""
        self._sent_core = True
        encode_request = wire.encode_request
        return b"".join([encode_request(*key) for key in added])

    def cancel(self, piece_index: int, begin: int, length: int) -> bytes:
        """Withdraw an outstanding request.  Its block may still arrive; it is
        then dropped silently (as is the REJECT a fast peer answers with)."""
        key = (piece_index, begin, length)
        self._check_after_bitfield()
        if key not in self._outstanding:
            raise LocalProtocolError(f"{_describe(key)} is not outstanding")
        self._sent_core = True
        del self._outstanding[key]
        self._remember_cancelled(key)
        return wire.encode_cancel(piece_index, begin, length)

    def send_piece_header(self, piece_index: int, begin: int, length: int) -> bytes:
        """The PIECE header for a pending peer request, which it removes; the
        caller writes exactly ``length`` bytes of block right after it.  A block
        no longer pending (cancelled, or dropped by a choke) must not be sent:
        check ``pending_peer_requests`` when the disk read completes."""
        key = (piece_index, begin, length)
        self._check_after_bitfield()
        if key not in self._pending:
            raise LocalProtocolError(f"{_describe(key)} is not pending")
        self._sent_core = True
        del self._pending[key]
        return wire.encode_piece_header(piece_index, begin, length)

    def reject(self, piece_index: int, begin: int, length: int) -> bytes:
        """Refuse a pending peer request (BEP 6 REJECT)."""
        key = (piece_index, begin, length)
        self._check_after_bitfield()
        self._require_fast_locally("REJECT")
        if key not in self._pending:
            raise LocalProtocolError(f"{_describe(key)} is not pending")
        self._sent_core = True
        del self._pending[key]
        return encode_reject(piece_index, begin, length)

    def allowed_fast(self, piece_index: int) -> bytes:
        """Let the peer request blocks of this piece even while we choke it."""
        self._check_piece(piece_index)
        self._check_after_bitfield()
        self._require_fast_locally("ALLOWED_FAST")
        self.our_allowed_fast.add(piece_index)
        return encode(wire.AllowedFast(piece_index))

    def suggest(self, piece_index: int) -> bytes:
        """Suggest the peer download this piece (BEP 6)."""
        self._check_piece(piece_index)
        self._check_after_bitfield()
        self._require_fast_locally("SUGGEST")
        return encode(wire.Suggest(piece_index))

    def send_extension_handshake(self) -> bytes:
        """Our BEP 10 handshake (may precede the bitfield, as libtorrent's does)."""
        return self.send_extended(0, self.extension_handshake)

    def send_extended(self, extended_id: int, payload: bytes | Mapping[Any, Any]) -> bytes:
        """A BEP 10 message; ``extended_id`` is the id the peer gave the
        extension in ``peer_extensions``; a mapping payload is bencoded."""
        self._check_ready()
        if not self.extended:
            raise LocalProtocolError("the extension protocol (BEP 10) is not on for this peer")
        if not 0 <= extended_id <= 255:
            raise ValueError("extended_id must fit in a byte")
        raw = payload if isinstance(payload, bytes) else bencode(dict(payload))
        return wire.encode_extended(extended_id, raw)

    def send_port(self, port: int) -> bytes:
        """The UDP port of our DHT node (BEP 5)."""
        self._check_ready()
        if not 0 <= port <= 0xFFFF:
            raise ValueError("port out of range")
        return encode(wire.Port(port))

    def keep_alive(self) -> bytes:
        self._check_ready()
        return _KEEP_ALIVE_BYTES
