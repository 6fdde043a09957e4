"""The receiving half of ``PeerSession``: what each message from the peer means.

Theory of operation
-------------------
``ReceiveSide`` is a mixin of ``core.wire.session.PeerSession``: one handler
per message type, chosen from a table by the message's class, applies the
message to the session's state and appends the events it gives (see
``core.wire.session`` for the state, its invariants and where the rules bend
for real peers).  A handler that finds a violation raises
``RemoteProtocolError``; ``PeerSession.receive_data`` then marks the session
dead.

Two tables: ``_HANDLERS`` once the piece count is known, and
``_EARLY_HANDLERS`` before (a magnet link without its metadata), which differ
only for the messages that name pieces: those are kept in
``core.wire.early.EarlyPieces`` until ``PeerSession.set_piece_count``.

It builds on ``core.wire.sending.SendSide`` because the two halves share a
little: the memory of cancelled requests (a non-fast peer's CHOKE fills it),
and what we have said of our pieces (a REJECT we must answer with before the
metadata is preceded by HAVE_NONE if our bitfield has not gone yet).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.wire import codec as wire
from txbittorrent.core.wire.codec import encode, encode_reject
from txbittorrent.core.wire.early import EarlyPieces
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
from txbittorrent.core.wire.extensions import merge_peer_extensions, parse_extension_handshake
from txbittorrent.core.wire.sending import MAX_PEER_REQUEST_LENGTH, SendSide, describe
from txbittorrent.errors import BitfieldError, RemoteProtocolError, SelfConnectionError

__all__ = ["ReceiveSide", "Handler"]

_HAVE_NONE_BYTES = encode(wire.HaveNone())
_PEER_CHOKED = PeerChoked()
_PEER_UNCHOKED = PeerUnchoked()
_PEER_INTERESTED = PeerInterested()
_PEER_NOT_INTERESTED = PeerNotInterested()

Handler = Callable[["ReceiveSide", Any, list[PeerEvent]], None]
"""A message handler: (session, message, events to append to)."""


class ReceiveSide(SendSide):
    """The message handlers; see the module docstring."""

    # The state the handlers assign is declared here; the rest is
    # PeerSession's (annotated below for the type checker).
    __slots__ = (
        "peer_choking", "peer_interested", "peer_have", "peer_id", "peer_reserved", "fast",
        "extended", "dht", "peer_reqq", "_bitfield_allowed",
    )
    peer_choking: bool
    peer_interested: bool
    peer_have: Bitfield
    peer_id: bytes | None
    peer_reserved: bytes | None
    fast: bool
    extended: bool
    dht: bool
    peer_reqq: int | None
    _bitfield_allowed: bool

    info_hash: bytes
    our_peer_id: bytes
    max_peer_requests: int
    _index_limit: int
    _early: EarlyPieces | None


    def _check_index(self, piece_index: int, what: str) -> None:
        if piece_index >= self._index_limit:
            raise RemoteProtocolError(
                f"{what} for piece {piece_index}, but the torrent has {self._index_limit} pieces"
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
            have = Bitfield.from_bytes(message.data, self._index_limit)
        except BitfieldError as e:
            raise RemoteProtocolError(f"bad BITFIELD: {e}") from None
        self.peer_have = have
        events.append(PeerBitfield(have.copy()))

    def _on_have_all(self, message: wire.HaveAll, events: list[PeerEvent]) -> None:
        self._require_fast("HAVE_ALL")
        self._take_bitfield("HAVE_ALL")
        self.peer_have = Bitfield.full(self._index_limit)
        events.append(PeerBitfield(self.peer_have.copy()))

    def _on_have_none(self, message: wire.HaveNone, events: list[PeerEvent]) -> None:
        self._require_fast("HAVE_NONE")
        self._take_bitfield("HAVE_NONE")
        self.peer_have = Bitfield(self._index_limit)
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
            raise RemoteProtocolError(f"{describe(key)} that we did not request")

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
            raise RemoteProtocolError(f"REJECT for {describe(key)}, which we did not request")

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
        extended_id = message.extended_id
        if extended_id:
            name = self._our_extension_names.get(extended_id)
            events.append(ExtensionMessage(extended_id, message.payload, name))
            return
        payload, m = parse_extension_handshake(message.payload)
        merge_peer_extensions(self.peer_extensions, m)
        reqq = payload.get(b"reqq")
        if type(reqq) is int and reqq > 0:
            self.peer_reqq = reqq
        events.append(ExtensionHandshake(payload))

    # -- before the piece count is known (see the module docstring) ------------------

    def _early_pieces(self) -> EarlyPieces:
        early = self._early
        assert early is not None  # these handlers are only installed while it is
        return early

    def _on_early_have(self, message: wire.Have, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        self._early_pieces().have(message.piece_index)

    def _on_early_bitfield(self, message: wire.BitfieldMsg, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        self._early_pieces().bitfield(message.data)

    def _on_early_have_all(self, message: wire.HaveAll, events: list[PeerEvent]) -> None:
        self._require_fast("HAVE_ALL")
        self._take_bitfield("HAVE_ALL")
        self._early_pieces().have_all()

    def _on_early_have_none(self, message: wire.HaveNone, events: list[PeerEvent]) -> None:
        self._require_fast("HAVE_NONE")
        self._take_bitfield("HAVE_NONE")
        self._early_pieces().have_none()

    def _on_early_request(self, message: wire.Request, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        index, begin, length = message.piece_index, message.begin, message.length
        if length == 0 or length > MAX_PEER_REQUEST_LENGTH:
            raise RemoteProtocolError(
                f"REQUEST of {length} bytes (must be 1..{MAX_PEER_REQUEST_LENGTH})"
            )
        self._early_pieces().note_index(index, "REQUEST")
        if not self.fast:
            return  # BEP 3 has no refusal: dropped
        reply = encode_reject(index, begin, length)
        if not self._bitfield_sent:  # our HAVE_NONE must come before any REJECT
            self._bitfield_sent = self._none_announced = True
            reply = _HAVE_NONE_BYTES + reply
        events.append(Reply(reply))

    def _on_early_cancel(self, message: wire.Cancel, events: list[PeerEvent]) -> None:
        self._bitfield_allowed = False
        self._early_pieces().note_index(message.piece_index, "CANCEL")

    def _on_early_suggest(self, message: wire.Suggest, events: list[PeerEvent]) -> None:
        self._require_fast("SUGGEST")
        self._early_pieces().note_index(message.piece_index, "SUGGEST")

    def _on_early_allowed_fast(self, message: wire.AllowedFast, events: list[PeerEvent]) -> None:
        self._require_fast("ALLOWED_FAST")
        self._early_pieces().allowed_fast(message.piece_index)

    _HANDLERS: ClassVar[dict[type, Handler]] = {
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

    _EARLY_HANDLERS: ClassVar[dict[type, Handler]] = {
        **_HANDLERS,
        wire.Have: _on_early_have,
        wire.BitfieldMsg: _on_early_bitfield,
        wire.HaveAll: _on_early_have_all,
        wire.HaveNone: _on_early_have_none,
        wire.Request: _on_early_request,
        wire.Cancel: _on_early_cancel,
        wire.Suggest: _on_early_suggest,
        wire.AllowedFast: _on_early_allowed_fast,
    }
