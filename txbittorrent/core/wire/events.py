"""What ``core.peer.PeerSession.receive_data`` reports: one frozen dataclass
per thing a peer told us (re-exported by ``core.peer``).

Events describe changes, after the session has applied them to its state: by
the time the caller sees ``PeerChoked``, ``session.peer_choking`` is already
true.  Repeats that change nothing (a second INTERESTED, a HAVE for a piece
the peer already announced) produce no event.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

from txbittorrent.core.bitfield import Bitfield

__all__ = [
    "HandshakeReceived",
    "PeerBitfield",
    "PeerHave",
    "PeerChoked",
    "PeerUnchoked",
    "PeerInterested",
    "PeerNotInterested",
    "BlockRequested",
    "RequestCancelled",
    "BlockReceived",
    "RequestRejected",
    "PeerAllowedFast",
    "Suggested",
    "ExtensionHandshake",
    "ExtensionMessage",
    "DHTPort",
    "Reply",
    "PeerEvent",
]


@dataclass(frozen=True, slots=True)
class HandshakeReceived:
    """The peer's handshake is in.  ``fast``, ``extended`` and ``dht`` are true
    when both sides set the bit (the extension is in use on this connection)."""

    info_hash: bytes
    peer_id: bytes
    fast: bool
    extended: bool
    dht: bool


@dataclass(frozen=True, slots=True)
class PeerBitfield:
    """The peer's pieces, from BITFIELD, HAVE_ALL or HAVE_NONE (a copy: later
    HAVEs do not change it; ``session.peer_have`` is the live set)."""

    have: Bitfield


@dataclass(frozen=True, slots=True)
class PeerHave:
    """The peer announced a piece it did not have before."""

    piece_index: int


@dataclass(frozen=True, slots=True)
class PeerChoked:
    """The peer choked us."""


@dataclass(frozen=True, slots=True)
class PeerUnchoked:
    """The peer unchoked us: we may request blocks."""


@dataclass(frozen=True, slots=True)
class PeerInterested:
    """The peer wants pieces we have."""


@dataclass(frozen=True, slots=True)
class PeerNotInterested:
    """The peer no longer wants anything we have."""


@dataclass(frozen=True, slots=True)
class BlockRequested:
    """The peer asks for a block; it is now in ``pending_peer_requests``.
    Answer with ``send_piece_header`` and the block, or with ``reject``."""

    piece_index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class RequestCancelled:
    """The peer withdrew a pending request: do not send that block."""

    piece_index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class BlockReceived:
    """A block we requested arrived."""

    piece_index: int
    begin: int
    block: bytes


@dataclass(frozen=True, slots=True)
class RequestRejected:
    """A request of ours will not be served: the peer sent REJECT (BEP 6), or a
    peer without the fast extension choked us, which drops every request."""

    piece_index: int
    begin: int
    length: int


@dataclass(frozen=True, slots=True)
class PeerAllowedFast:
    """We may request blocks of this piece even while choked (BEP 6)."""

    piece_index: int


@dataclass(frozen=True, slots=True)
class Suggested:
    """The peer suggests we download this piece (BEP 6)."""

    piece_index: int


@dataclass(frozen=True, slots=True)
class ExtensionHandshake:
    """The peer's BEP 10 handshake, decoded (keys are bytes: ``b"m"``, ``b"v"``,
    ``b"reqq"`` ...).  The session has already merged ``m`` into
    ``peer_extensions`` and taken ``reqq`` into ``peer_reqq``."""

    payload: dict[bytes, Any]


@dataclass(frozen=True, slots=True)
class ExtensionMessage:
    """A BEP 10 message other than the handshake.  ``extended_id`` is the id
    *we* assigned to the extension in our handshake's ``m`` dictionary, and
    ``name`` the extension's name there (``b"ut_metadata"``); None if we never
    gave out that id."""

    extended_id: int
    payload: bytes
    name: bytes | None = None


@dataclass(frozen=True, slots=True)
class DHTPort:
    """The UDP port of the peer's DHT node (BEP 5 PORT)."""

    port: int


@dataclass(frozen=True, slots=True)
class Reply:
    """Bytes the protocol obliges us to send in answer to what just arrived:
    a BEP 6 REJECT for a request from a fast peer we are choking, or for a
    request a fast peer cancelled.  Write them when this event comes up."""

    data: bytes


PeerEvent = Union[
    HandshakeReceived,
    PeerBitfield,
    PeerHave,
    PeerChoked,
    PeerUnchoked,
    PeerInterested,
    PeerNotInterested,
    BlockRequested,
    RequestCancelled,
    BlockReceived,
    RequestRejected,
    PeerAllowedFast,
    Suggested,
    ExtensionHandshake,
    ExtensionMessage,
    DHTPort,
    Reply,
]
