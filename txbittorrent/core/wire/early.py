"""What a peer says about pieces before we know how many the torrent has.

Theory of operation
-------------------
A magnet link gives the info hash and nothing else: the piece count comes with
the metadata (BEP 9), after the connections are open.  Meanwhile peers send
their BITFIELD, HAVE_ALL or HAVE_NONE, HAVEs and BEP 6 ALLOWED_FAST as usual.
``EarlyPieces`` keeps them, bounded, until ``resolve(piece_count)`` checks them
against the real count and turns them into the peer's set and the events a
session constructed with that count would have given.

What it keeps:

* the last of BITFIELD (raw bytes: their length and spare bits can only be
  checked against the count), HAVE_ALL or HAVE_NONE, as the base set; a
  BITFIELD replaces the base and every HAVE before it, as a late BITFIELD
  replaces the peer's set once the count is known;
* the HAVEs since the base, and the ALLOWED_FAST pieces, as bit maps grown as
  needed;
* the highest piece index the peer named in any message, and in which,
  because a session that knew the count would have refused an index past the
  last piece: ``resolve`` does.

Bounds: every piece index must be below ``limit`` (``MAX_UNKNOWN_PIECES`` by
default) and a BITFIELD no longer than ``limit`` bits; more is a violation.
That bounds the memory per peer too: each bit map and the raw bitfield are at
most ``limit / 8`` bytes (128 KiB by default), however many distinct HAVEs
arrive, so no separate count of HAVEs is needed.
"""

from __future__ import annotations

from collections.abc import Iterator

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.wire.events import PeerAllowedFast, PeerBitfield, PeerEvent, PeerHave
from txbittorrent.errors import BitfieldError, RemoteProtocolError

__all__ = ["MAX_UNKNOWN_PIECES", "EarlyPieces"]

MAX_UNKNOWN_PIECES = 1 << 20
"""The most pieces a torrent may have as far as a peer can tell us before the
metadata: a BITFIELD of up to 128 KiB, piece indexes below 2**20.  A torrent
of 2**20 pieces has 20 MiB of SHA-1 hashes in its info dictionary, already far
more than BEP 9 clients hand out; ``PeerSession`` takes another bound
(``max_unknown_pieces``) if a swarm accepts bigger metadata."""


class _Bits:
    """A set of piece indexes below a bound, as a bit map grown on demand."""

    __slots__ = ("_bits",)

    def __init__(self) -> None:
        self._bits = bytearray()

    def add(self, index: int) -> None:
        byte = index >> 3
        if byte >= len(self._bits):
            self._bits.extend(bytes(byte + 1 - len(self._bits)))
        self._bits[byte] |= 0x80 >> (index & 7)

    def clear(self) -> None:
        self._bits = bytearray()

    def __bool__(self) -> bool:
        return any(self._bits)

    def __iter__(self) -> Iterator[int]:
        for byte_index, byte in enumerate(self._bits):
            if byte:
                base = byte_index * 8
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        yield base + bit


class EarlyPieces:
    """A peer's piece messages kept until the piece count is known."""

    __slots__ = ("limit", "_base", "_have", "_allowed_fast", "_highest", "_highest_in")

    def __init__(self, limit: int = MAX_UNKNOWN_PIECES) -> None:
        if limit < 1:
            raise ValueError("limit must be positive")
        self.limit = limit
        self._base: bytes | bool | None = None
        """The raw BITFIELD, True for HAVE_ALL, False for HAVE_NONE, None if none came."""
        self._have = _Bits()
        self._allowed_fast = _Bits()
        self._highest = -1
        self._highest_in = ""

    @property
    def has_all(self) -> bool:
        """The peer sent HAVE_ALL (and no BITFIELD since)."""
        return self._base is True

    def note_index(self, piece_index: int, what: str) -> None:
        """A message named this piece: refuse it past ``limit``, remember the
        highest for ``resolve``."""
        if piece_index >= self.limit:
            raise RemoteProtocolError(
                f"{what} for piece {piece_index} before the metadata "
                f"(at most {self.limit} pieces are accepted then)"
            )
        if piece_index > self._highest:
            self._highest = piece_index
            self._highest_in = what

    def bitfield(self, data: bytes) -> None:
        """A BITFIELD: the new base; HAVEs before it are replaced."""
        if len(data) > (self.limit + 7) // 8:
            raise RemoteProtocolError(
                f"BITFIELD of {len(data)} bytes before the metadata "
                f"(at most {self.limit} pieces are accepted then)"
            )
        self._base = bytes(data)
        self._have.clear()

    def have_all(self) -> None:
        self._base = True

    def have_none(self) -> None:
        self._base = False

    def have(self, piece_index: int) -> None:
        self.note_index(piece_index, "HAVE")
        self._have.add(piece_index)

    def allowed_fast(self, piece_index: int) -> None:
        self.note_index(piece_index, "ALLOWED_FAST")
        self._allowed_fast.add(piece_index)

    def resolve(self, piece_count: int) -> tuple[Bitfield, set[int], list[PeerEvent]]:
        """The peer's pieces and allowed-fast set for a torrent of
        ``piece_count`` pieces, and the events a session that knew the count
        would have given: one ``PeerBitfield`` (with the HAVEs since merged in)
        if a BITFIELD, HAVE_ALL or HAVE_NONE came, else a ``PeerHave`` per
        piece in index order; then a ``PeerAllowedFast`` per allowed piece.

        Raises ``RemoteProtocolError`` if a bitfield has the wrong length or
        spare bits set, or a message named a piece past the last."""
        if self._highest >= piece_count:
            raise RemoteProtocolError(
                f"{self._highest_in} for piece {self._highest} before the metadata, "
                f"but the torrent has {piece_count} pieces"
            )
        base = self._base
        events: list[PeerEvent] = []
        if isinstance(base, bytes):
            try:
                have = Bitfield.from_bytes(base, piece_count)
            except BitfieldError as e:
                raise RemoteProtocolError(f"bad BITFIELD (sent before the metadata): {e}") from None
        elif base is True:
            have = Bitfield.full(piece_count)
        else:
            have = Bitfield(piece_count)
        if base is None:
            for index in self._have:
                have.add(index)
                events.append(PeerHave(index))
        else:
            for index in self._have:
                have.add(index)
            events.append(PeerBitfield(have.copy()))
        allowed = set(self._allowed_fast)
        events.extend(PeerAllowedFast(index) for index in sorted(allowed))
        return have, allowed, events
