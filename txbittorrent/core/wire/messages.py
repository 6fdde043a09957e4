"""The peer wire protocol's vocabulary: message ids, the handshake and one
frozen dataclass per message (BEP 3, BEP 5's PORT, BEP 6, BEP 10).

Plain data with no behaviour beyond reading the handshake's reserved bits;
``core.wire`` encodes and decodes them (and re-exports every name here).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum
from typing import Union

__all__ = [
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
]


class MessageId(IntEnum):
    """The id byte of each message, grouped by the BEP that defines it."""

    # BEP 3, the peer wire protocol
    CHOKE = 0
    UNCHOKE = 1
    INTERESTED = 2
    NOT_INTERESTED = 3
    HAVE = 4
    BITFIELD = 5
    REQUEST = 6
    PIECE = 7
    CANCEL = 8
    # BEP 5 (DHT): the listening port of the peer's DHT node
    PORT = 9
    # BEP 6, the fast extension
    SUGGEST = 0x0D
    HAVE_ALL = 0x0E
    HAVE_NONE = 0x0F
    REJECT = 0x10
    ALLOWED_FAST = 0x11
    # BEP 10, the extension protocol
    EXTENDED = 20


# -- the handshake --------------------------------------------------------------

_EXTENDED_BYTE, _EXTENDED_BIT = 5, 0x10  # BEP 10: reserved[5] & 0x10
_FAST_BYTE, _FAST_BIT = 7, 0x04  # BEP 6: reserved[7] & 0x04
_DHT_BYTE, _DHT_BIT = 7, 0x01  # BEP 5: reserved[7] & 0x01


def make_reserved(fast: bool = True, extended: bool = True, dht: bool = False) -> bytes:
    """The eight reserved handshake bytes announcing the extensions we support."""
    reserved = bytearray(8)
    if extended:
        reserved[_EXTENDED_BYTE] |= _EXTENDED_BIT
    if fast:
        reserved[_FAST_BYTE] |= _FAST_BIT
    if dht:
        reserved[_DHT_BYTE] |= _DHT_BIT
    return bytes(reserved)


class _ReservedBits:
    """Reading the extension bits of a handshake's ``reserved`` bytes."""

    __slots__ = ()
    reserved: bytes

    @property
    def fast(self) -> bool:
        """The sender supports the fast extension (BEP 6)."""
        return bool(self.reserved[_FAST_BYTE] & _FAST_BIT)

    @property
    def extended(self) -> bool:
        """The sender supports the extension protocol (BEP 10)."""
        return bool(self.reserved[_EXTENDED_BYTE] & _EXTENDED_BIT)

    @property
    def dht(self) -> bool:
        """The sender runs a DHT node (BEP 5) and may send PORT."""
        return bool(self.reserved[_DHT_BYTE] & _DHT_BIT)


@dataclass(frozen=True, slots=True)
class HandshakeInfoHash(_ReservedBits):
    """The first 48 handshake bytes are in: the reserved bits and the info hash."""

    info_hash: bytes
    reserved: bytes


@dataclass(frozen=True, slots=True)
class Handshake(_ReservedBits):
    """A complete handshake."""

    info_hash: bytes
    peer_id: bytes
    reserved: bytes


# -- messages ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class KeepAlive:
    """A zero-length message: the connection is alive."""


@dataclass(frozen=True, slots=True)
class Choke:
    """The sender will not serve our requests."""


@dataclass(frozen=True, slots=True)
class Unchoke:
    """The sender will serve our requests."""


@dataclass(frozen=True, slots=True)
class Interested:
    """The sender wants pieces we have."""


@dataclass(frozen=True, slots=True)
class NotInterested:
    """The sender wants nothing we have."""


@dataclass(frozen=True, slots=True)
class Have:
    """The sender has verified piece ``piece_index``."""

    piece_index: int


@dataclass(frozen=True, slots=True)
class BitfieldMsg:
    """The sender's pieces, as BEP 3 bitfield bytes (checked by ``PeerSession``)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Request:
    """Please send ``length`` bytes at ``begin`` of piece ``piece_index``."""

    piece_index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Piece:
    """A block of data: ``block`` is the bytes at ``begin`` of piece ``piece_index``."""

    piece_index: int
    begin: int
    block: bytes


@dataclass(frozen=True, slots=True)
class Cancel:
    """The sender no longer wants the block it requested."""

    piece_index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class Port:
    """The UDP port of the sender's DHT node (BEP 5)."""

    port: int


@dataclass(frozen=True, slots=True)
class Suggest:
    """The sender suggests we download piece ``piece_index`` (BEP 6)."""

    piece_index: int


@dataclass(frozen=True, slots=True)
class HaveAll:
    """The sender has every piece (BEP 6; replaces BITFIELD)."""


@dataclass(frozen=True, slots=True)
class HaveNone:
    """The sender has no piece (BEP 6; replaces BITFIELD)."""


@dataclass(frozen=True, slots=True)
class Reject:
    """The sender will not serve our request for this block (BEP 6)."""

    piece_index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class AllowedFast:
    """We may request blocks of piece ``piece_index`` even while choked (BEP 6)."""

    piece_index: int


@dataclass(frozen=True, slots=True)
class Extended:
    """A BEP 10 message: ``extended_id`` 0 is the extension handshake, other ids
    are those the receiver assigned in its handshake's ``m`` dictionary."""

    extended_id: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class UnknownMessage:
    """A message whose id we do not know (BEP 3: ignore it)."""

    message_id: int
    payload: bytes


Message = Union[
    KeepAlive,
    Choke,
    Unchoke,
    Interested,
    NotInterested,
    Have,
    BitfieldMsg,
    Request,
    Piece,
    Cancel,
    Port,
    Suggest,
    HaveAll,
    HaveNone,
    Reject,
    AllowedFast,
    Extended,
    UnknownMessage,
]

WireEvent = Union[Message, HandshakeInfoHash, Handshake]
"""What ``WireDecoder.feed`` returns."""
