"""The peer wire protocol's bytes: messages, their encoding and a push decoder.

Theory of operation
-------------------
This module (with ``core.messages``, whose classes it re-exports) knows the
shape of every message (BEP 3 peer wire, BEP 5's PORT, BEP 6 fast extension,
BEP 10 extension protocol) and nothing about what they mean: whether a
REQUEST is allowed, or a BITFIELD has the right length for the torrent, is
decided by ``core.peer.PeerSession``, which owns one decoder.

A connection starts with a 68-byte handshake::

    <pstrlen=19><"BitTorrent protocol"><reserved:8><info_hash:20><peer_id:20>

then carries length-prefixed messages, ``<length:4><id:1><payload>``; a
length of zero is a keep-alive.  All integers are big-endian, unsigned.

``WireDecoder.feed(data)`` returns what ``data`` completes, in order:

* ``HandshakeInfoHash`` as soon as the first 48 bytes of the handshake are in
  (the info hash is known before the peer id arrives, so a listener can choose
  the torrent, or reject a wrong info hash, early), then ``Handshake`` when
  all 68 bytes are in.  Both are always reported; ``expect_handshake=False``
  starts directly with messages.  A listener that must pick the torrent before
  it can build a ``PeerSession`` keeps the first bytes it received, runs them
  through a throwaway decoder (or ``parse_handshake_prefix``) to learn the info
  hash, and then feeds the same bytes to the new session.
* one message object per complete message.

Every malformation raises ``RemoteProtocolError``: a handshake that is not
``\\x13BitTorrent protocol`` (checked byte by byte as the bytes arrive), a
length prefix over ``max_message_length`` (checked as soon as the four length
bytes are in, before any of the body is buffered), and a fixed-size message
with the wrong size (HAVE with three bytes, say).  After that the decoder is
spent: any further ``feed`` raises ``LocalProtocolError``.  Unknown message ids
are not an error (BEP 3 says to ignore them); they come out as
``UnknownMessage``.

Copies, the hot path
--------------------
Complete messages are parsed straight out of the caller's ``data`` with
``Struct.unpack_from``; only the bytes of a message that is cut across two
``feed`` calls go through the decoder's own ``bytearray``.  That buffer never
holds more than one partial message: when more data arrives, exactly the bytes
that complete it are appended, it is parsed, the buffer is emptied (no byte
is moved) and parsing continues in the new ``data``.
So each byte is copied into the buffer at most once and nothing is ever
compacted.  A PIECE block is handed out as ``bytes`` made with one copy from
whichever buffer held it; blocks never alias the decoder's buffer or the
caller's data, so their lifetime is unconstrained.

Encoding: ``encode(message)`` covers every message; the hot ones also have
direct functions over precompiled ``Struct`` objects (``encode_request``,
``encode_have``, ``encode_piece_header`` ...).  ``encode_piece_header``
returns just the 13-byte header of a PIECE so an adapter can write the header
and the block it read from disk without concatenating them.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Union

from txbittorrent.core.wire.messages import (
    AllowedFast,
    BitfieldMsg,
    Cancel,
    Choke,
    Extended,
    Handshake,
    HandshakeInfoHash,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    Message,
    MessageId,
    NotInterested,
    Piece,
    Port,
    Reject,
    Request,
    Suggest,
    Unchoke,
    UnknownMessage,
    WireEvent,
    make_reserved,
)
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "PROTOCOL_HEADER",
    "HANDSHAKE_LENGTH",
    "DEFAULT_MAX_MESSAGE_LENGTH",
    "MessageId",
    "make_reserved",
    "HandshakeInfoHash",
    "Handshake",
    "KeepAlive",
    "Choke",
    "Unchoke",
    "Interested",
    "NotInterested",
    "Have",
    "BitfieldMsg",
    "Request",
    "Piece",
    "Cancel",
    "Port",
    "Suggest",
    "HaveAll",
    "HaveNone",
    "Reject",
    "AllowedFast",
    "Extended",
    "UnknownMessage",
    "Message",
    "WireEvent",
    "encode",
    "encode_handshake",
    "encode_have",
    "encode_request",
    "encode_cancel",
    "encode_reject",
    "encode_piece_header",
    "encode_bitfield",
    "encode_extended",
    "parse_handshake_prefix",
    "WireDecoder",
]

PROTOCOL_HEADER = b"\x13BitTorrent protocol"
"""pstrlen (19) and pstr: the first 20 bytes of every handshake."""

HANDSHAKE_LENGTH = 68
"""pstrlen, pstr, reserved, info hash, peer id."""

_INFO_HASH_END = 48
"""Handshake bytes up to and including the info hash."""

DEFAULT_MAX_MESSAGE_LENGTH = 1024 * 1024
"""The default cap on a message's length prefix: room for a 16 KiB block many
times over and for the bitfield of a torrent of 8 million pieces.  (libtorrent
refuses messages over 1 MiB too.)  ``PeerSession`` raises it when the
torrent's bitfield needs more."""

# Messages without fields are all alike: one instance each serves every decode.
KEEP_ALIVE = KeepAlive()
_CHOKE = Choke()
_UNCHOKE = Unchoke()
_INTERESTED = Interested()
_NOT_INTERESTED = NotInterested()
_HAVE_ALL = HaveAll()
_HAVE_NONE = HaveNone()


# -- encoding ---------------------------------------------------------------------

_U32 = struct.Struct(">I")  # a length prefix, or one payload integer
_U32X2 = struct.Struct(">II")  # piece index, begin
_U32X3 = struct.Struct(">III")  # piece index, begin, length
_U16 = struct.Struct(">H")  # a port
_HEADER = struct.Struct(">IB")  # length prefix, message id
_INDEX_MESSAGE = struct.Struct(">IBI")  # 5, id, piece index (HAVE, SUGGEST, ALLOWED_FAST)
_BLOCK_MESSAGE = struct.Struct(">IBIII")  # 13, id, index, begin, length (REQUEST ...)
_PIECE_HEADER = struct.Struct(">IBII")  # 9 + len(block), 7, index, begin
_PORT_MESSAGE = struct.Struct(">IBH")  # 3, 9, port
_EXTENDED_HEADER = struct.Struct(">IBB")  # 2 + len(payload), 20, extended id

_KEEP_ALIVE_BYTES = b"\x00\x00\x00\x00"
_CHOKE_BYTES = _HEADER.pack(1, MessageId.CHOKE)
_UNCHOKE_BYTES = _HEADER.pack(1, MessageId.UNCHOKE)
_INTERESTED_BYTES = _HEADER.pack(1, MessageId.INTERESTED)
_NOT_INTERESTED_BYTES = _HEADER.pack(1, MessageId.NOT_INTERESTED)
_HAVE_ALL_BYTES = _HEADER.pack(1, MessageId.HAVE_ALL)
_HAVE_NONE_BYTES = _HEADER.pack(1, MessageId.HAVE_NONE)

_PACK_INDEX = _INDEX_MESSAGE.pack
_PACK_BLOCK = _BLOCK_MESSAGE.pack
_PACK_PIECE_HEADER = _PIECE_HEADER.pack


def encode_handshake(info_hash: bytes, peer_id: bytes, reserved: bytes) -> bytes:
    """The 68-byte handshake."""
    if len(info_hash) != 20 or len(peer_id) != 20 or len(reserved) != 8:
        raise ValueError("info_hash and peer_id must be 20 bytes, reserved 8 bytes")
    return b"".join((PROTOCOL_HEADER, reserved, info_hash, peer_id))


def encode_have(piece_index: int) -> bytes:
    """HAVE.  (Values that do not fit their fields raise ``struct.error``.)"""
    return _PACK_INDEX(5, 4, piece_index)


def encode_request(piece_index: int, begin: int, length: int) -> bytes:
    """REQUEST."""
    return _PACK_BLOCK(13, 6, piece_index, begin, length)


def encode_cancel(piece_index: int, begin: int, length: int) -> bytes:
    """CANCEL."""
    return _PACK_BLOCK(13, 8, piece_index, begin, length)


def encode_reject(piece_index: int, begin: int, length: int) -> bytes:
    """REJECT (BEP 6)."""
    return _PACK_BLOCK(13, 0x10, piece_index, begin, length)


def encode_piece_header(piece_index: int, begin: int, length: int) -> bytes:
    """The first 13 bytes of a PIECE whose block is ``length`` bytes long;
    the block itself follows on the wire."""
    return _PACK_PIECE_HEADER(9 + length, 7, piece_index, begin)


def encode_bitfield(data: bytes) -> bytes:
    """BITFIELD with the given bitfield bytes."""
    return _HEADER.pack(1 + len(data), MessageId.BITFIELD) + data


def encode_extended(extended_id: int, payload: bytes) -> bytes:
    """EXTENDED (BEP 10) carrying ``payload`` as is."""
    return _EXTENDED_HEADER.pack(2 + len(payload), MessageId.EXTENDED, extended_id) + payload


def encode(message: Message | Handshake) -> bytes:
    """The bytes of any message (or of a handshake).

    Field values that do not fit the wire format raise ``ValueError``."""
    try:
        return _encode(message)
    except struct.error as e:
        raise ValueError(f"cannot encode {message!r}: {e}") from None


def _encode(message: Message | Handshake) -> bytes:
    match message:
        case Piece(piece_index, begin, block):
            return encode_piece_header(piece_index, begin, len(block)) + block
        case Request(piece_index, begin, length):
            return encode_request(piece_index, begin, length)
        case Have(piece_index):
            return encode_have(piece_index)
        case Cancel(piece_index, begin, length):
            return encode_cancel(piece_index, begin, length)
        case Reject(piece_index, begin, length):
            return encode_reject(piece_index, begin, length)
        case KeepAlive():
            return _KEEP_ALIVE_BYTES
        case Choke():
            return _CHOKE_BYTES
        case Unchoke():
            return _UNCHOKE_BYTES
        case Interested():
            return _INTERESTED_BYTES
        case NotInterested():
            return _NOT_INTERESTED_BYTES
        case HaveAll():
            return _HAVE_ALL_BYTES
        case HaveNone():
            return _HAVE_NONE_BYTES
        case BitfieldMsg(data):
            return encode_bitfield(data)
        case Port(port):
            return _PORT_MESSAGE.pack(3, MessageId.PORT, port)
        case Suggest(piece_index):
            return _PACK_INDEX(5, MessageId.SUGGEST, piece_index)
        case AllowedFast(piece_index):
            return _PACK_INDEX(5, MessageId.ALLOWED_FAST, piece_index)
        case Extended(extended_id, payload):
            return encode_extended(extended_id, payload)
        case UnknownMessage(message_id, payload):
            return _HEADER.pack(1 + len(payload), message_id) + payload
        case Handshake(info_hash, peer_id, reserved):
            return encode_handshake(info_hash, peer_id, reserved)
    raise TypeError(f"not a peer wire message: {message!r}")


# -- decoding ---------------------------------------------------------------------

Readable = Union[bytes, bytearray, memoryview]


def _check_protocol(data: Readable, pos: int, end: int) -> None:
    """Raise unless the (possibly partial) handshake at ``pos`` starts right."""
    have = min(end - pos, 20)
    if have <= 0 or data[pos : pos + have] == PROTOCOL_HEADER[:have]:
        return
    if data[pos] != 19:
        raise RemoteProtocolError(
            f"handshake starts with protocol name length {data[pos]}, not 19 "
            "(not a BitTorrent connection, or an encrypted one)"
        )
    got = bytes(data[pos + 1 : pos + have])
    raise RemoteProtocolError(
        f"handshake protocol name starts {got!r}, not {PROTOCOL_HEADER[1:have]!r}"
    )


def parse_handshake_prefix(data: Readable) -> HandshakeInfoHash | None:
    """The reserved bytes and info hash at the start of a connection, or
    ``None`` if fewer than 48 bytes are in; ``RemoteProtocolError`` if the
    bytes are not a BitTorrent handshake.  For a listener that must choose the
    torrent before it builds the ``PeerSession``."""
    _check_protocol(data, 0, len(data))
    if len(data) < _INFO_HASH_END:
        return None
    return HandshakeInfoHash(bytes(data[28:48]), bytes(data[20:28]))


def _wrong_size(message_id: int, size: int, expected: str) -> RemoteProtocolError:
    return RemoteProtocolError(
        f"{MessageId(message_id).name} message with a {size}-byte payload (expected {expected})"
    )


# Payload parsers, by message id: (view, payload start, payload stop) -> message.
# The payload size of fixed-size messages is checked before they are called.
_Parser = Callable[[memoryview, int, int], Message]


def _constant(message: Message) -> _Parser:
    def parse(view: memoryview, start: int, stop: int) -> Message:
        return message

    return parse


def _one_int(make: Callable[[int], Message]) -> _Parser:
    def parse(view: memoryview, start: int, stop: int) -> Message:
        return make(_U32.unpack_from(view, start)[0])

    return parse


def _three_ints(make: Callable[[int, int, int], Message]) -> _Parser:
    def parse(view: memoryview, start: int, stop: int) -> Message:
        return make(*_U32X3.unpack_from(view, start))

    return parse


def _parse_bitfield(view: memoryview, start: int, stop: int) -> Message:
    return BitfieldMsg(view[start:stop].tobytes())


def _parse_piece(view: memoryview, start: int, stop: int) -> Message:
    if stop - start < 8:
        raise _wrong_size(MessageId.PIECE, stop - start, "at least 8")
    piece_index, begin = _U32X2.unpack_from(view, start)
    return Piece(piece_index, begin, view[start + 8 : stop].tobytes())


def _parse_port(view: memoryview, start: int, stop: int) -> Message:
    return Port(_U16.unpack_from(view, start)[0])


def _parse_extended(view: memoryview, start: int, stop: int) -> Message:
    if stop == start:
        raise _wrong_size(MessageId.EXTENDED, 0, "at least 1")
    return Extended(view[start], view[start + 1 : stop].tobytes())


# (payload size, or -1 if it varies; parser) for each known id.
_KNOWN: dict[int, tuple[int, _Parser]] = {
    MessageId.CHOKE: (0, _constant(_CHOKE)),
    MessageId.UNCHOKE: (0, _constant(_UNCHOKE)),
    MessageId.INTERESTED: (0, _constant(_INTERESTED)),
    MessageId.NOT_INTERESTED: (0, _constant(_NOT_INTERESTED)),
    MessageId.HAVE: (4, _one_int(Have)),
    MessageId.BITFIELD: (-1, _parse_bitfield),
    MessageId.REQUEST: (12, _three_ints(Request)),
    MessageId.PIECE: (-1, _parse_piece),
    MessageId.CANCEL: (12, _three_ints(Cancel)),
    MessageId.PORT: (2, _parse_port),
    MessageId.SUGGEST: (4, _one_int(Suggest)),
    MessageId.HAVE_ALL: (0, _constant(_HAVE_ALL)),
    MessageId.HAVE_NONE: (0, _constant(_HAVE_NONE)),
    MessageId.REJECT: (12, _three_ints(Reject)),
    MessageId.ALLOWED_FAST: (4, _one_int(AllowedFast)),
    MessageId.EXTENDED: (-1, _parse_extended),
}
# The same as a table indexed by the id byte, so the hot path does one tuple
# index per message; None for ids we do not know.
_TABLE: tuple[tuple[int, _Parser] | None, ...] = tuple(_KNOWN.get(i) for i in range(256))


def _parse_body(view: memoryview, start: int, stop: int) -> Message:
    """The message whose id byte is at ``start`` and which ends at ``stop``."""
    message_id = view[start]
    entry = _TABLE[message_id]
    if entry is None:
        return UnknownMessage(message_id, view[start + 1 : stop].tobytes())
    size, parser = entry
    if size >= 0 and stop - start - 1 != size:
        raise _wrong_size(message_id, stop - start - 1, str(size))
    return parser(view, start + 1, stop)


_HANDSHAKE, _PEER_ID, _MESSAGES = 0, 1, 2  # decoder states


class WireDecoder:
    """A push decoder for one direction of one connection: ``feed`` it bytes
    as they arrive, get back the handshake and messages they complete."""

    __slots__ = ("max_message_length", "_buffer", "_state", "_info_hash", "_reserved", "_failed")

    def __init__(
        self,
        max_message_length: int = DEFAULT_MAX_MESSAGE_LENGTH,
        expect_handshake: bool = True,
    ) -> None:
        if max_message_length < 1:
            raise ValueError("max_message_length must be positive")
        self.max_message_length = max_message_length
        self._buffer = bytearray()  # at most one partial message or handshake part
        self._state = _HANDSHAKE if expect_handshake else _MESSAGES
        self._info_hash = b""
        self._reserved = b""
        self._failed = False

    @property
    def buffered(self) -> int:
        """Bytes received that do not complete a message yet."""
        return len(self._buffer)

    @property
    def in_handshake(self) -> bool:
        """The handshake has not been completely received yet."""
        return self._state != _MESSAGES

    def feed(self, data: Readable) -> list[WireEvent]:
        """Add ``data``; return the handshake parts and messages it completes.

        Raises ``RemoteProtocolError`` for bytes that break the protocol;
        messages completed earlier in the same ``data`` are then lost with the
        connection."""
        if self._failed:
            raise LocalProtocolError("this decoder already failed on bad input")
        out: list[WireEvent] = []
        try:
            with memoryview(data) as view:
                end = view.nbytes
                pos = self._complete_buffered(view, end, out) if self._buffer else 0
                if not self._buffer:
                    pos = self._parse(view, pos, end, out)
                    if pos < end:
                        self._buffer += view[pos:end]
        except RemoteProtocolError:
            self._failed = True
            raise
        return out

    def _wanted(self, data: Readable, pos: int, end: int) -> int:
        """How many bytes from ``pos`` the next step needs: the whole frame if
        its size is known, else enough to learn it.  Checks what is there."""
        if self._state == _MESSAGES:
            if end - pos < 4:
                return 4
            length: int = _U32.unpack_from(data, pos)[0]
            if length > self.max_message_length:
                raise self._too_long(length)
            return 4 + length
        if self._state == _HANDSHAKE:
            _check_protocol(data, pos, end)
            return _INFO_HASH_END
        return 20  # the peer id

    def _complete_buffered(self, view: memoryview, end: int, out: list[WireEvent]) -> int:
        """Move bytes from ``view`` into the buffer until it holds one whole
        frame, then parse it and clear the buffer.  Return how many bytes of
        ``view`` were used; the buffer stays non-empty if they did not suffice."""
        buffer = self._buffer
        pos = 0
        while True:
            missing = self._wanted(buffer, 0, len(buffer)) - len(buffer)
            if missing <= 0:
                break
            if pos == end:
                return pos
            take = min(missing, end - pos)
            buffer += view[pos : pos + take]
            pos += take
        with memoryview(buffer) as frame:
            self._parse(frame, 0, len(buffer), out)
        buffer.clear()
        return pos

    def _parse(self, view: memoryview, pos: int, end: int, out: list[WireEvent]) -> int:
        """Parse every complete frame in ``view[pos:end]``; return where the
        first incomplete one starts."""
        if self._state != _MESSAGES:
            pos = self._parse_handshake(view, pos, end, out)
            if self._state != _MESSAGES:
                return pos
        cap = self.max_message_length
        unpack_length = _U32.unpack_from
        append = out.append
        while end - pos >= 4:
            (length,) = unpack_length(view, pos)
            if length > cap:
                raise self._too_long(length)
            stop = pos + 4 + length
            if stop > end:
                break
            if not length:
                append(KEEP_ALIVE)
            elif view[pos + 4] == 7:  # PIECE, by far the commonest
                append(_parse_piece(view, pos + 5, stop))
            else:
                append(_parse_body(view, pos + 4, stop))
            pos = stop
        return pos

    def _parse_handshake(self, view: memoryview, pos: int, end: int, out: list[WireEvent]) -> int:
        if self._state == _HANDSHAKE:
            _check_protocol(view, pos, end)
            if end - pos < _INFO_HASH_END:
                return pos
            self._reserved = view[pos + 20 : pos + 28].tobytes()
            self._info_hash = view[pos + 28 : pos + 48].tobytes()
            out.append(HandshakeInfoHash(self._info_hash, self._reserved))
            pos += _INFO_HASH_END
            self._state = _PEER_ID
        if end - pos < 20:
            return pos
        out.append(Handshake(self._info_hash, view[pos : pos + 20].tobytes(), self._reserved))
        self._state = _MESSAGES
        return pos + 20

    def _too_long(self, length: int) -> RemoteProtocolError:
        return RemoteProtocolError(
            f"message of {length} bytes exceeds the limit of {self.max_message_length}"
        )
