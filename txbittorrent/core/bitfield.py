"""A set of piece indexes in BEP 3 bit order.

Piece 0 is the high bit of byte 0; the spare bits at the end of the last byte
must be zero.  ``Bitfield`` is mutable, knows its piece count, and keeps a
running count of set bits so ``count`` is O(1).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from txbittorrent.errors import BitfieldError

__all__ = ["Bitfield"]

_POPCOUNT = bytes(bin(i).count("1") for i in range(256))


class Bitfield:
    """Which of ``piece_count`` pieces are present."""

    __slots__ = ("_bits", "_count", "piece_count")

    def __init__(self, piece_count: int) -> None:
        if piece_count < 0:
            raise ValueError("piece_count must not be negative")
        self.piece_count = piece_count
        self._bits = bytearray((piece_count + 7) // 8)
        self._count = 0

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview, piece_count: int) -> Bitfield:
        """Parse BEP 3 bytes, checking the length and that spare bits are clear."""
        field = cls(piece_count)
        if len(data) != len(field._bits):
            raise BitfieldError(
                f"bitfield of {len(data)} bytes for {piece_count} pieces "
                f"(expected {len(field._bits)})"
            )
        field._bits[:] = data
        spare = len(field._bits) * 8 - piece_count
        if spare and field._bits[-1] & ((1 << spare) - 1):
            raise BitfieldError("spare bits at the end of the bitfield are set")
        field._count = sum(_POPCOUNT[b] for b in field._bits)
        return field

    @classmethod
    def from_indexes(cls, indexes: Iterable[int], piece_count: int) -> Bitfield:
        field = cls(piece_count)
        for i in indexes:
            field.add(i)
        return field

    @classmethod
    def full(cls, piece_count: int) -> Bitfield:
        return cls.from_indexes(range(piece_count), piece_count)

    def to_bytes(self) -> bytes:
        return bytes(self._bits)

    def _check(self, index: int) -> None:
        if not 0 <= index < self.piece_count:
            raise IndexError(f"piece index {index} out of range 0..{self.piece_count - 1}")

    def __contains__(self, index: object) -> bool:
        if not isinstance(index, int) or not 0 <= index < self.piece_count:
            return False
        return bool(self._bits[index >> 3] & (0x80 >> (index & 7)))

    def first_of(self, candidates: list[int], start: int = 0) -> int:
        """The first of ``candidates`` (valid indexes) that is set, looking from
        position ``start`` round to ``start - 1``; -1 if none is.  The picker's
        inner loop: one call per bucket instead of a ``in`` test per piece."""
        bits = self._bits
        size = len(candidates)
        for k in range(start, start + size):
            index = candidates[k - size if k >= size else k]
            if bits[index >> 3] & (0x80 >> (index & 7)):
                return index
        return -1

    def add(self, index: int) -> None:
        self._check(index)
        mask = 0x80 >> (index & 7)
        if not self._bits[index >> 3] & mask:
            self._bits[index >> 3] |= mask
            self._count += 1

    def discard(self, index: int) -> None:
        self._check(index)
        mask = 0x80 >> (index & 7)
        if self._bits[index >> 3] & mask:
            self._bits[index >> 3] &= ~mask & 0xFF
            self._count -= 1

    @property
    def count(self) -> int:
        return self._count

    @property
    def complete(self) -> bool:
        return self._count == self.piece_count

    def __len__(self) -> int:
        return self._count

    def __iter__(self) -> Iterator[int]:
        bits = self._bits
        for byte_index, byte in enumerate(bits):
            if byte:
                base = byte_index * 8
                for bit in range(8):
                    if byte & (0x80 >> bit):
                        yield base + bit

    def copy(self) -> Bitfield:
        other = Bitfield(self.piece_count)
        other._bits[:] = self._bits
        other._count = self._count
        return other

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Bitfield):
            return NotImplemented
        return self.piece_count == other.piece_count and self._bits == other._bits

    def __repr__(self) -> str:
        return f"<Bitfield {self._count}/{self.piece_count}>"

    def to_string(self) -> str:
        """'1' and '0' per piece, piece 0 first (handy in tests and the CLI)."""
        return "".join("1" if i in self else "0" for i in range(self.piece_count))
