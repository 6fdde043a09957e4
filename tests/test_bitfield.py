"""Tests for txbittorrent.core.bitfield."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.errors import BitfieldError, TxBitTorrentError

# (bytes on the wire, piece count, the pieces present)
FIXTURES = [
    (b"", 0, []),  # no pieces, no bytes
    (b"\x80", 1, [0]),  # 1000_0000: piece 0 is the high bit of byte 0
    (b"\x01", 8, [7]),  # 0000_0001: piece 7 is the low bit of byte 0
    (b"\xa0", 3, [0, 2]),  # 101_00000: three pieces, five clear spare bits
    (
        b"\x00"  # pieces 0-7 absent
        b"\x40",  # 0100_0000: piece 9 present, pieces 8 and 10-15 absent
        16,
        [9],
    ),
    (
        b"\xff"  # pieces 0-7 present
        b"\xc0",  # 11_000000: pieces 8 and 9 present, six clear spare bits
        10,
        list(range(10)),
    ),
    (
        b"\x81"  # 1000_0001: pieces 0 and 7
        b"\x00"  # nothing in 8-15
        b"\x10",  # 0001_0000: piece 19, then four pieces and spare bits clear
        21,
        [0, 7, 19],
    ),
]


class BitOrderTests(SynchronousTestCase):
    """BEP 3 bit order: piece 0 is the high bit of byte 0."""

    def test_from_bytes(self) -> None:
        """Each fixture parses to its pieces."""
        for data, count, pieces in FIXTURES:
            field = Bitfield.from_bytes(data, count)
            self.assertEqual(list(field), pieces, data)
            self.assertEqual(field.piece_count, count)

    def test_to_bytes(self) -> None:
        """Each fixture's pieces serialise to its bytes."""
        for data, count, pieces in FIXTURES:
            self.assertEqual(Bitfield.from_indexes(pieces, count).to_bytes(), data)

    def test_input_types(self) -> None:
        """bytearray and memoryview parse like bytes."""
        for data, count, pieces in FIXTURES:
            self.assertEqual(list(Bitfield.from_bytes(bytearray(data), count)), pieces)
            self.assertEqual(list(Bitfield.from_bytes(memoryview(data), count)), pieces)

    def test_to_string(self) -> None:
        """to_string writes one character per piece, piece 0 first."""
        self.assertEqual(Bitfield.from_bytes(b"\xa0", 3).to_string(), "101")
        self.assertEqual(Bitfield.from_bytes(b"\x00\x40", 10).to_string(), "0000000001")

    def test_from_bytes_copies(self) -> None:
        """A bitfield does not share the buffer it was parsed from."""
        buffer = bytearray(b"\x80")
        field = Bitfield.from_bytes(buffer, 8)
        buffer[0] = 0xFF
        self.assertEqual(list(field), [0])


class ValidationTests(SynchronousTestCase):
    """Malformed bitfields raise BitfieldError."""

    def test_spare_bits(self) -> None:
        """Any spare bit set is refused."""
        for data, count in [
            (b"\x01", 7),  # the one spare bit
            (b"\x10", 3),  # the first of five spare bits
            (b"\xff\x01", 9),  # the last of seven spare bits
            (b"\x7f", 1),
        ]:
            e = self.assertRaises(BitfieldError, Bitfield.from_bytes, data, count)
            self.assertIsInstance(e, TxBitTorrentError)

    def test_no_spare_bits_at_multiple_of_8(self) -> None:
        """With a multiple of 8 pieces every bit is a piece."""
        self.assertTrue(Bitfield.from_bytes(b"\xff\xff", 16).complete)

    def test_wrong_length(self) -> None:
        """Too few or too many bytes are refused."""
        for data, count in [
            (b"", 1),
            (b"\x00", 0),
            (b"\x00", 9),
            (b"\x00\x00", 8),
            (b"\x00\x00\x00", 16),
        ]:
            self.assertRaises(BitfieldError, Bitfield.from_bytes, data, count)

    def test_negative_count(self) -> None:
        """A negative piece count is API misuse."""
        self.assertRaises(ValueError, Bitfield, -1)


class SetTests(SynchronousTestCase):
    """Adding, removing, counting, copying and comparing."""

    def test_add_discard(self) -> None:
        """add and discard change membership and count, idempotently."""
        field = Bitfield(10)
        field.add(3)
        field.add(3)
        field.add(9)
        self.assertEqual((list(field), field.count, len(field)), ([3, 9], 2, 2))
        field.discard(3)
        field.discard(3)
        self.assertEqual((list(field), field.count), ([9], 1))
        self.assertEqual(field.to_bytes(), b"\x00\x40")

    def test_out_of_range(self) -> None:
        """add and discard refuse indexes outside the torrent."""
        field = Bitfield(10)
        for index in (-1, 10, 16):
            self.assertRaises(IndexError, field.add, index)
            self.assertRaises(IndexError, field.discard, index)
        self.assertRaises(IndexError, Bitfield.from_indexes, [10], 10)

    def test_contains(self) -> None:
        """'in' is False, not an error, outside the range or for non-integers."""
        field = Bitfield.full(10)
        self.assertIn(0, field)
        self.assertIn(9, field)
        for index in (-1, 10, 15, "0", None, 1.0):
            self.assertNotIn(index, field)

    def test_count_and_complete(self) -> None:
        """count follows the set bits and complete means all pieces present."""
        field = Bitfield.from_bytes(b"\xff\x80", 9)
        self.assertEqual(field.count, 9)
        self.assertTrue(field.complete)
        field.discard(8)
        self.assertEqual(field.count, 8)
        self.assertFalse(field.complete)

    def test_empty_torrent(self) -> None:
        """Zero pieces: empty bytes, complete, nothing to iterate."""
        field = Bitfield(0)
        self.assertEqual((field.to_bytes(), field.count, list(field)), (b"", 0, []))
        self.assertTrue(field.complete)

    def test_full(self) -> None:
        """full sets every piece and leaves the spare bits clear."""
        self.assertEqual(Bitfield.full(10).to_bytes(), b"\xff\xc0")
        self.assertTrue(Bitfield.full(10).complete)

    def test_copy(self) -> None:
        """A copy is equal and independent."""
        field = Bitfield.from_indexes([1, 5], 8)
        other = field.copy()
        self.assertEqual(other, field)
        other.add(2)
        self.assertEqual((list(field), field.count), ([1, 5], 2))
        self.assertEqual((list(other), other.count), ([1, 2, 5], 3))
        self.assertNotEqual(other, field)

    def test_eq(self) -> None:
        """Bitfields are equal when piece counts and pieces match."""
        self.assertEqual(Bitfield.from_indexes([1], 8), Bitfield.from_bytes(b"\x40", 8))
        self.assertNotEqual(Bitfield(8), Bitfield(9))
        self.assertNotEqual(Bitfield(8), b"\x00")

    def test_repr(self) -> None:
        """repr shows how many pieces are present."""
        self.assertEqual(repr(Bitfield.from_indexes([0, 1], 5)), "<Bitfield 2/5>")


_counts_and_indexes = st.integers(0, 300).flatmap(
    lambda n: st.tuples(
        st.just(n), st.sets(st.integers(0, n - 1), max_size=n) if n else st.just(set())
    )
)


class PropertyTests(SynchronousTestCase):
    """Hypothesis round trips."""

    @settings(max_examples=300, deadline=1000)
    @given(_counts_and_indexes)
    def test_round_trip(self, case: tuple[int, set[int]]) -> None:
        """from_indexes -> to_bytes -> from_bytes -> iteration gives the set back."""
        count, indexes = case
        field = Bitfield.from_indexes(indexes, count)
        self.assertEqual(list(field), sorted(indexes))
        self.assertEqual(field.count, len(indexes))
        data = field.to_bytes()
        self.assertEqual(len(data), (count + 7) // 8)
        again = Bitfield.from_bytes(data, count)
        self.assertEqual(again, field)
        self.assertEqual(again.count, len(indexes))
        expected = "".join("1" if i in indexes else "0" for i in range(count))
        self.assertEqual(again.to_string(), expected)

    @settings(max_examples=300, deadline=1000)
    @given(st.binary(max_size=40), st.integers(0, 330))
    def test_arbitrary_bytes(self, data: bytes, count: int) -> None:
        """Arbitrary bytes parse and re-serialise identically, or raise BitfieldError."""
        try:
            field = Bitfield.from_bytes(data, count)
        except BitfieldError:
            return
        self.assertEqual(field.to_bytes(), data)
        self.assertEqual(field.count, sum(bin(b).count("1") for b in data))
