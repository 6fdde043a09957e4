"""BEP 9 (``ut_metadata``): the message codec, and serving pieces of metadata.

A peer that knows a torrent's info dictionary says how big it is
(``metadata_size`` in its extension handshake) and hands it out in pieces
of 16 KiB, numbered from 0 (the last one may be shorter).  Each message is a
bencoded dictionary: ``msg_type`` 0 asks for ``piece``, 1 carries it (with
``total_size``, the piece's bytes following the dictionary), 2 refuses it.
``parse_message`` and the ``encode_*`` functions are the codec; a message
type BEP 9 does not define is ignored (``None``), as BEP 9 requires.

Fetching (which peer is asked what, assembling, verifying) is
``core.wire.metadatafetch.MetadataFetch``; serving is ``serve_piece``.
Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any, Union

from txbittorrent.core.bencoding import Limits, decode_prefix, encode as bencode
from txbittorrent.errors import BencodeError, RemoteProtocolError

__all__ = [
    "METADATA_PIECE_SIZE",
    "MetadataMessageType",
    "MetadataRequest",
    "MetadataData",
    "MetadataReject",
    "MetadataMessage",
    "parse_message",
    "encode_request",
    "encode_data",
    "encode_reject",
    "encode_message",
    "piece_count",
    "piece_length",
    "serve_piece",
]

METADATA_PIECE_SIZE = 16 * 1024
"""Every piece but the last is exactly this long (BEP 9)."""

_LIMITS = Limits(max_depth=4, max_items=64, max_int_digits=20)
"""A ut_metadata dictionary holds three integers; refuse anything much bigger."""


class MetadataMessageType(IntEnum):
    """``msg_type`` of BEP 9."""

    REQUEST = 0
    DATA = 1
    REJECT = 2


@dataclass(frozen=True, slots=True)
class MetadataRequest:
    piece: int


@dataclass(frozen=True, slots=True)
class MetadataData:
    piece: int
    total_size: int
    data: bytes = field(repr=False)


@dataclass(frozen=True, slots=True)
class MetadataReject:
    piece: int


MetadataMessage = Union[MetadataRequest, MetadataData, MetadataReject]


def _int_field(message: Mapping[bytes, Any], key: bytes) -> int:
    value = message.get(key)
    if type(value) is not int:
        raise RemoteProtocolError(f"ut_metadata {key.decode()} is {value!r}, not an integer")
    return value


def parse_message(payload: bytes) -> MetadataMessage | None:
    """One ut_metadata message (the extended message's payload).

    ``None`` for a ``msg_type`` BEP 9 does not define (to be ignored).
    ``RemoteProtocolError`` if it is not a dictionary, lacks an integer
    ``msg_type`` or a ``piece`` >= 0, or is a DATA without a positive
    ``total_size`` or with more than 16 KiB after the dictionary.  Bytes
    after a REQUEST's or REJECT's dictionary are ignored, as libtorrent does."""
    try:
        message, end = decode_prefix(payload, limits=_LIMITS)
    except BencodeError as e:
        raise RemoteProtocolError(f"bad ut_metadata message: {e}") from None
    if not isinstance(message, dict):
        raise RemoteProtocolError("ut_metadata message is not a dictionary")
    msg_type = _int_field(message, b"msg_type")
    if msg_type not in (0, 1, 2):
        return None
    piece = _int_field(message, b"piece")
    if piece < 0:
        raise RemoteProtocolError(f"ut_metadata piece {piece} is negative")
    if msg_type == MetadataMessageType.REQUEST:
        return MetadataRequest(piece)
    if msg_type == MetadataMessageType.REJECT:
        return MetadataReject(piece)
    total_size = _int_field(message, b"total_size")
    if total_size <= 0:
        raise RemoteProtocolError(f"ut_metadata total_size {total_size} is not positive")
    data = payload[end:]
    if len(data) > METADATA_PIECE_SIZE:
        raise RemoteProtocolError(f"ut_metadata piece of {len(data)} bytes (more than 16 KiB)")
    return MetadataData(piece, total_size, bytes(data))


def encode_request(piece: int) -> bytes:
    return bencode({b"msg_type": MetadataMessageType.REQUEST.value, b"piece": piece})


def encode_reject(piece: int) -> bytes:
    return bencode({b"msg_type": MetadataMessageType.REJECT.value, b"piece": piece})


def encode_data(piece: int, total_size: int, data: bytes) -> bytes:
    header = {b"msg_type": MetadataMessageType.DATA.value, b"piece": piece,
              b"total_size": total_size}
    return bencode(header) + data


def encode_message(message: MetadataMessage) -> bytes:
    if isinstance(message, MetadataRequest):
        return encode_request(message.piece)
    if isinstance(message, MetadataReject):
        return encode_reject(message.piece)
    return encode_data(message.piece, message.total_size, message.data)


def piece_count(total_size: int) -> int:
    """Pieces of metadata of ``total_size`` bytes."""
    return (total_size + METADATA_PIECE_SIZE - 1) // METADATA_PIECE_SIZE


def piece_length(piece: int, total_size: int) -> int:
    """The exact length of ``piece`` (``IndexError`` if out of range)."""
    start = piece * METADATA_PIECE_SIZE
    if piece < 0 or start >= total_size:
        raise IndexError(f"metadata piece {piece} out of range")
    return min(METADATA_PIECE_SIZE, total_size - start)


def serve_piece(info_bytes: bytes, piece: int) -> bytes:
    """The answer to a REQUEST for ``piece`` of ``info_bytes``: a DATA with
    the exact bytes, or a REJECT if the piece does not exist."""
    start = piece * METADATA_PIECE_SIZE
    if piece < 0 or start >= len(info_bytes):
        return encode_reject(piece)
    return encode_data(piece, len(info_bytes), info_bytes[start:start + METADATA_PIECE_SIZE])
