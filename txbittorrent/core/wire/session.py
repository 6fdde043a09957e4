"""The per-connection rules of the peer wire protocol, without I/O.

Theory of operation
-------------------
A ``PeerSession`` is one connection to one peer about one torrent, in the
style of h11: the caller hands it the bytes that arrived (``receive_data``)
and gets back events (``core.wire.events``); it calls a method for everything
it wants to say and gets back the bytes to write.  (The rules live in two
mixins: ``core.wire.receiving`` has a handler per incoming message,
``core.wire.sending`` a method per outgoing one.)  The one exception: where BEP 6 obliges an
immediate answer to what arrived (REJECT for a request from a fast peer we are
choking, or for a request a fast peer cancelled), the bytes come back as a
``Reply`` event, in order with the other events.

What it owns:

* the decoder for the incoming direction (``core.wire.codec.WireDecoder``);
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
  ``receive_data`` (or ``set_piece_count``) and kills the session: every
  later call raises ``LocalProtocolError``.  The caller's own mistakes raise
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

BEP 10: a later extension handshake updates ``peer_extensions`` (id 0
disables).  An EXTENDED message arrives under the id WE gave its extension in
the ``m`` of the handshake we sent (``extension_handshake``), so it comes out
as ``ExtensionMessage`` named from our ``m``; we send under the PEER's ids
(``send_extended(name, payload)``).  A message under an id we never gave out
comes out with ``name=None`` (libtorrent disconnects; we leave it to the
caller, which ignores it).  ``core.wire.extensions`` has the details.

Before the metadata (a magnet link: ``piece_count=None``)
----------------------------------------------------------
The handshakes, BEP 10, PORT, keep-alives, choke and interest work as ever.
The peer's BITFIELD, HAVE_ALL, HAVE_NONE, HAVEs and ALLOWED_FASTs are kept
(``core.wire.early``: indexes below ``max_unknown_pieces``) without events,
and every piece index it names is checked once the count is known, as it would
have been on arrival.  A REQUEST cannot be served, we have nothing: a fast
peer gets a REJECT (``Reply``; BEP 6 wants each request answered), preceded by
HAVE_NONE if our bitfield had not gone, so that it never precedes it; another
peer's is dropped (BEP 3 has no refusal).  A CANCEL or SUGGEST is dropped; a
PIECE or REJECT is a violation as ever (we cannot have requested anything).
What we send meanwhile is the caller's choice (``core.wire.sending``: nothing
of BEP 3, as libtorrent does, or ``send_bitfield(None)``).
``set_piece_count(piece_count, piece_length_of)`` checks what the peer said,
returns the events it would have given, and from then on the session is
exactly one built with the count.
"""

from __future__ import annotations

from collections.abc import Callable, KeysView, Mapping
from typing import Any

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import BLOCK_SIZE
from txbittorrent.core.wire import codec as wire
from txbittorrent.core.wire.early import MAX_UNKNOWN_PIECES, EarlyPieces
from txbittorrent.core.wire.events import PeerEvent
from txbittorrent.core.wire.extensions import as_name
from txbittorrent.core.wire.receiving import Handler, ReceiveSide
from txbittorrent.core.wire.sending import CANCELLED_MEMORY, MAX_PEER_REQUEST_LENGTH, BlockKey
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "PeerSession",
    "MAX_PEER_REQUEST_LENGTH",
    "CANCELLED_MEMORY",
    "MAX_UNKNOWN_PIECES",
    "BlockKey",
    "MAX_PEER_REQUESTS",
]

_DEFAULT_RESERVED = wire.make_reserved()

MAX_PEER_REQUESTS = 2000
"""The default ``reqq``: requests a peer may have pending with us (see
``swarm.config.SwarmConfig.max_peer_requests``)."""


def _unknown_length(piece_index: int) -> int:
    raise LocalProtocolError("the piece count is not known yet (no metadata)")


class PeerSession(ReceiveSide):
    """One connection's protocol state; see the module docstring."""

    __slots__ = (  # and those of ReceiveSide and SendSide: the state they assign
        "info_hash", "our_peer_id", "piece_count", "outgoing", "reserved", "max_peer_requests",
        "max_block_length", "extension_handshake", "peer_extensions", "peer_allowed_fast",
        "our_allowed_fast", "_piece_length_of", "_ours", "_decoder", "_pending", "_outstanding",
        "_cancelled", "_dead", "_index_limit", "_early", "_handlers",
    )

    def __init__(
        self,
        info_hash: bytes,
        our_peer_id: bytes,
        piece_count: int | None,
        outgoing: bool,
        *,
        piece_length_of: Callable[[int], int] | None = None,
        reserved: bytes = _DEFAULT_RESERVED,
        max_peer_requests: int = MAX_PEER_REQUESTS,
        max_block_length: int = BLOCK_SIZE,
        extension_handshake: Mapping[str | bytes, Any] | None = None,
        max_message_length: int | None = None,
        max_unknown_pieces: int = MAX_UNKNOWN_PIECES,
    ) -> None:
        """``outgoing`` says we opened the connection (kept for the caller; the
        rules are the same both ways).  ``piece_count`` is None while the
        metadata is unknown (see the module docstring); otherwise
        ``piece_length_of(i)`` is the size of piece ``i`` (``Layout.piece_size``
        will do).  ``max_block_length`` bounds our own requests.
        ``extension_handshake`` is our BEP 10 handshake (``m``, ``v``, ``p``
        ...; ``reqq`` defaults to ``max_peer_requests``): the swarm's
        ``Extensions.handshake()`` plus its own fields.  The message length cap
        defaults to ``DEFAULT_MAX_MESSAGE_LENGTH``, raised if the bitfield
        needs more (of ``max_unknown_pieces`` pieces, while the count is unknown)."""
        if len(info_hash) != 20 or len(our_peer_id) != 20:
            raise ValueError("info_hash and our_peer_id must be 20 bytes")
        if len(reserved) != 8:
            raise ValueError("reserved must be 8 bytes")
        if piece_count is not None and (piece_count < 0 or piece_length_of is None):
            raise ValueError("piece_count must not be negative, and needs piece_length_of")
        if max_peer_requests < 1:
            raise ValueError("max_peer_requests must be positive")
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
            as_name(k): v for k, v in (extension_handshake or {}).items()
        }
        payload.setdefault(b"m", {})
        payload.setdefault(b"reqq", max_peer_requests)
        self.extension_handshake = payload
        self._our_extension_names = {
            i: as_name(n) for n, i in payload[b"m"].items() if i
        }
        self.am_choking = True
        self.am_interested = False
        self.peer_choking = True
        self.peer_interested = False
        self.peer_id: bytes | None = None
        self.peer_reserved: bytes | None = None
        self.fast = False
        self.extended = False
        self.dht = False
        self.peer_extensions: dict[bytes, int] = {}
        self.peer_reqq: int | None = None
        self.peer_allowed_fast: set[int] = set()
        self.our_allowed_fast: set[int] = set()
        self._ours = wire.Handshake(info_hash, our_peer_id, reserved)
        self._early: EarlyPieces | None
        self._handlers: dict[type, Handler]
        if piece_count is None:
            self._early = EarlyPieces(max_unknown_pieces)
            self._handlers = self._EARLY_HANDLERS
            self._index_limit = 0
            self._piece_length_of: Callable[[int], int] = _unknown_length
            bitfield_pieces = max_unknown_pieces
        else:
            assert piece_length_of is not None
            self._early = None
            self._handlers = self._HANDLERS
            self._index_limit = piece_count
            self._piece_length_of = piece_length_of
            bitfield_pieces = piece_count
        self.peer_have = Bitfield(self._index_limit)
        if max_message_length is None:
            max_message_length = max(
                wire.DEFAULT_MAX_MESSAGE_LENGTH,
                1 + (bitfield_pieces + 7) // 8,
                9 + max_block_length,
            )
        self._decoder = wire.WireDecoder(max_message_length)
        self._pending: dict[BlockKey, None] = {}
        self._outstanding: dict[BlockKey, None] = {}
        self._cancelled: dict[BlockKey, None] = {}
        self._dead = False
        self._handshake_sent = False
        self._bitfield_sent = False
        self._none_announced = False
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

    @property
    def metadata_known(self) -> bool:
        """The piece count is known (given at construction or by ``set_piece_count``)."""
        return self._early is None

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
        handlers = self._handlers
        try:
            for message in self._decoder.feed(data):
                handlers[type(message)](self, message, events)
        except Exception:
            self._dead = True
            raise
        return events

    def set_piece_count(
        self, piece_count: int, piece_length_of: Callable[[int], int]
    ) -> list[PeerEvent]:
        """The metadata is in: check what the peer said about pieces so far
        against ``piece_count`` and return the events a session built with it
        would have given (``EarlyPieces.resolve``).  From now on the session is
        one built with the count.  A bitfield of the wrong length or with spare
        bits set, or a piece index past the last, raises
        ``RemoteProtocolError`` and kills the session."""
        self._check_alive()
        early = self._early
        if early is None:
            raise LocalProtocolError("the piece count is already known")
        if piece_count < 0:
            raise ValueError("piece_count must not be negative")
        try:
            have, allowed_fast, events = early.resolve(piece_count)
        except RemoteProtocolError:
            self._dead = True
            raise
        self.piece_count = self._index_limit = piece_count
        self._piece_length_of = piece_length_of
        self.peer_have = have
        self.peer_allowed_fast = allowed_fast
        self._early = None
        self._handlers = self._HANDLERS
        decoder = self._decoder
        decoder.max_message_length = max(decoder.max_message_length, 1 + (piece_count + 7) // 8)
        return events
