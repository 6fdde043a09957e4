"""Tests for txbittorrent.core.layout."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import encode
from txbittorrent.core.layout import BLOCK_SIZE, Layout, Span
from txbittorrent.core.metainfo import parse

# Pieces of 16 bytes over five files (52 bytes, four pieces):
#
#   byte    0         10    16              32                  48  52
#   file    |--- 0 ---|- 2 -|---- 3 pad ----|-------- 4 --------|
#   piece   |------ 0 ------|------ 1 ------|------ 2 ------|-3-|
#
# File 1 is empty and sits at byte 10, between files 0 and 2.
MIXED = Layout([10, 0, 6, 16, 20], 16, pad=[False, False, False, True, False])


def _priorities(layout: Layout, files: str) -> str:
    """Piece priorities as a string, from file priorities as a string (one digit each)."""
    return "".join(str(p) for p in layout.piece_priorities([int(c) for c in files]))


class ShapeTests(SynchronousTestCase):
    """Sizes and offsets."""

    def test_counts(self) -> None:
        """Total length, piece count, file count."""
        self.assertEqual((MIXED.total_length, MIXED.piece_count, MIXED.file_count), (52, 4, 5))

    def test_piece_sizes(self) -> None:
        """Every piece is piece_length long except a short last one."""
        self.assertEqual([MIXED.piece_size(i) for i in range(4)], [16, 16, 16, 4])
        self.assertEqual(Layout([32], 16).piece_size(1), 16)

    def test_file_offsets(self) -> None:
        """Each file starts where the previous one ends."""
        self.assertEqual([MIXED.file_offset(i) for i in range(5)], [0, 10, 10, 16, 32])
        self.assertEqual([MIXED.file_length(i) for i in range(5)], [10, 0, 6, 16, 20])

    def test_empty(self) -> None:
        """A layout with no bytes has no pieces."""
        self.assertEqual(Layout([], 16).piece_count, 0)
        self.assertEqual(Layout([0, 0], 16).piece_count, 0)

    def test_bad_piece_length(self) -> None:
        """A piece length that is not positive is refused."""
        self.assertRaises(ValueError, Layout, [10], 0)
        self.assertRaises(ValueError, Layout, [10], -16)

    def test_from_metainfo(self) -> None:
        """from_metainfo takes lengths, piece length and pad flags from a torrent."""
        files = [
            {b"length": 10, b"path": [b"a"]},
            {b"length": 6, b"path": [b".pad", b"6"], b"attr": b"p"},
            {b"length": 20, b"path": [b"b"]},
        ]
        info = {
            b"name": b"t",
            b"piece length": 16,
            b"files": files,
            b"pieces": hashlib.sha1(b"").digest() * 3,
        }
        layout = Layout.from_metainfo(parse(encode({b"info": info})))
        self.assertEqual((layout.total_length, layout.piece_count), (36, 3))
        self.assertEqual(layout.pad, (False, True, False))
        self.assertEqual([layout.file_offset(i) for i in range(3)], [0, 10, 16])


class SpanTests(SynchronousTestCase):
    """spans: the file ranges behind a range of a piece."""

    def test_whole_pieces(self) -> None:
        """Each whole piece of MIXED, zero-length file left out, pad file included."""
        self.assertEqual(MIXED.spans(0), [Span(0, 0, 0, 10), Span(2, 0, 10, 6)])
        self.assertEqual(MIXED.spans(1), [Span(3, 0, 0, 16)])
        self.assertEqual(MIXED.spans(2), [Span(4, 0, 0, 16)])
        self.assertEqual(MIXED.spans(3), [Span(4, 16, 0, 4)])

    def test_sub_range(self) -> None:
        """A block across a file boundary is split at the boundary."""
        self.assertEqual(MIXED.spans(0, 8, 4), [Span(0, 8, 8, 2), Span(2, 0, 10, 2)])

    def test_sub_range_after_empty_file(self) -> None:
        """A range starting exactly where the empty file sits begins in the next file."""
        self.assertEqual(MIXED.spans(0, 10, 6), [Span(2, 0, 10, 6)])

    def test_offset_only(self) -> None:
        """Without a length the range runs to the end of the piece."""
        self.assertEqual(MIXED.spans(3, 1), [Span(4, 17, 1, 3)])

    def test_zero_length_range(self) -> None:
        """An empty range has no spans."""
        self.assertEqual(MIXED.spans(0, 5, 0), [])
        self.assertEqual(MIXED.spans(3, 4, 0), [])

    def test_many_files_in_one_piece(self) -> None:
        """One piece over several small files, with empty files between them."""
        layout = Layout([0, 3, 0, 0, 4, 1, 0], 16)
        self.assertEqual(
            layout.spans(0), [Span(1, 0, 0, 3), Span(4, 0, 3, 4), Span(5, 0, 7, 1)]
        )

    def test_file_across_pieces(self) -> None:
        """A file longer than a piece appears in each piece it crosses."""
        layout = Layout([5, 40, 3], 8)
        self.assertEqual(layout.spans(0), [Span(0, 0, 0, 5), Span(1, 0, 5, 3)])
        self.assertEqual(layout.spans(3), [Span(1, 19, 0, 8)])
        self.assertEqual(layout.spans(5), [Span(1, 35, 0, 5), Span(2, 0, 5, 3)])

    def test_files_of_piece(self) -> None:
        """files_of_piece lists the files a piece touches, in order."""
        self.assertEqual([MIXED.files_of_piece(i) for i in range(4)], [[0, 2], [3], [4], [4]])

    def test_out_of_range(self) -> None:
        """A piece outside the torrent or a range outside the piece is refused."""
        for args in [(-1,), (4,), (0, -1, 1), (0, 0, 17), (0, 16, 1), (0, 17), (3, 0, 5),
                     (3, 5), (0, 2, -1)]:
            self.assertRaises(IndexError, MIXED.spans, *args)


class PiecesOfFileTests(SynchronousTestCase):
    """pieces_of_file: the pieces holding a file's bytes."""

    def test_mixed(self) -> None:
        """Each file of MIXED; the empty file touches no piece."""
        self.assertEqual(
            [MIXED.pieces_of_file(i) for i in range(5)],
            [range(0, 1), range(0), range(0, 1), range(1, 2), range(2, 4)],
        )

    def test_boundaries(self) -> None:
        """A file ending exactly on a piece boundary does not touch the next piece."""
        layout = Layout([16, 1, 15, 17], 16)
        self.assertEqual(
            [layout.pieces_of_file(i) for i in range(4)],
            [range(0, 1), range(1, 2), range(1, 2), range(2, 4)],
        )

    def test_out_of_range(self) -> None:
        """A file index outside the torrent is refused, negative ones included."""
        self.assertRaises(IndexError, MIXED.pieces_of_file, 5)
        self.assertRaises(IndexError, MIXED.pieces_of_file, -1)
        self.assertRaises(IndexError, MIXED.file_length, -1)
        self.assertRaises(IndexError, MIXED.file_offset, -1)


class PiecePriorityTests(SynchronousTestCase):
    """piece_priorities: a piece gets the highest priority of the files in it."""

    def test_mixed(self) -> None:
        """The pad file's priority is ignored; skipped files give 0."""
        self.assertEqual(_priorities(MIXED, "11111"), "1011")
        self.assertEqual(_priorities(MIXED, "17250"), "2000")
        self.assertEqual(_priorities(MIXED, "00090"), "0000")
        self.assertEqual(_priorities(MIXED, "00003"), "0033")

    def test_shared_pieces(self) -> None:
        """Pieces shared by two files take the higher priority."""
        layout = Layout([5, 40, 3], 8)  # pieces: 0 = files 0 and 1; 5 = files 1 and 2
        self.assertEqual(_priorities(layout, "103"), "100003")
        self.assertEqual(_priorities(layout, "010"), "111111")
        self.assertEqual(_priorities(layout, "000"), "000000")
        self.assertEqual(_priorities(layout, "474"), "777777")
        self.assertEqual(_priorities(layout, "717"), "711117")

    def test_negative_is_skip(self) -> None:
        """A negative priority counts as skipped."""
        self.assertEqual(Layout([8, 8], 8).piece_priorities([-1, 2]), [0, 2])

    def test_wrong_count(self) -> None:
        """One priority per file is required."""
        self.assertRaises(ValueError, MIXED.piece_priorities, [1, 1, 1, 1])
        self.assertRaises(ValueError, MIXED.piece_priorities, [1] * 6)


class BlockTests(SynchronousTestCase):
    """blocks: the requests that make up a piece."""

    def test_full_piece(self) -> None:
        """A full piece is whole 16 KiB blocks."""
        layout = Layout([4 * BLOCK_SIZE + 100], 2 * BLOCK_SIZE)
        self.assertEqual(layout.blocks(0), [(0, BLOCK_SIZE), (BLOCK_SIZE, BLOCK_SIZE)])

    def test_short_last_piece(self) -> None:
        """The last piece ends in a short block."""
        layout = Layout([4 * BLOCK_SIZE + 100], 2 * BLOCK_SIZE)
        self.assertEqual(layout.piece_count, 3)
        self.assertEqual(layout.blocks(2), [(0, 100)])
        layout = Layout([3 * BLOCK_SIZE + 1], 2 * BLOCK_SIZE)
        self.assertEqual(layout.blocks(1), [(0, BLOCK_SIZE), (BLOCK_SIZE, 1)])

    def test_small_pieces(self) -> None:
        """A piece smaller than a block is one block."""
        self.assertEqual(MIXED.blocks(0), [(0, 16)])
        self.assertEqual(MIXED.blocks(3), [(0, 4)])

    def test_block_size(self) -> None:
        """A custom block size splits accordingly."""
        self.assertEqual(MIXED.blocks(0, 5), [(0, 5), (5, 5), (10, 5), (15, 1)])

    def test_out_of_range(self) -> None:
        """blocks refuses a piece outside the torrent."""
        self.assertRaises(IndexError, MIXED.blocks, 4)
        self.assertRaises(IndexError, MIXED.blocks, -1)
        self.assertRaises(IndexError, MIXED.piece_size, 4)
        self.assertRaises(IndexError, MIXED.piece_size, -1)


class PropertyTests(SynchronousTestCase):
    """Hypothesis properties of the arithmetic."""

    @settings(max_examples=300, deadline=1000)
    @given(st.lists(st.integers(0, 100), min_size=1, max_size=12), st.integers(1, 64))
    def test_spans_cover_stream(self, lengths: list[int], piece_length: int) -> None:
        """The spans of every piece, in order, cover every file byte exactly once."""
        layout = Layout(lengths, piece_length)
        covered: list[tuple[int, int]] = []
        for index in range(layout.piece_count):
            position = 0
            for span in layout.spans(index):
                self.assertEqual(span.piece_offset, position)
                self.assertGreater(span.length, 0)
                position += span.length
                covered.extend((span.file_index, span.file_offset + k) for k in range(span.length))
            self.assertEqual(position, layout.piece_size(index))
        expected = [(f, k) for f, n in enumerate(lengths) for k in range(n)]
        self.assertEqual(covered, expected)

    @settings(max_examples=300, deadline=1000)
    @given(st.lists(st.integers(0, 100), min_size=1, max_size=12), st.integers(1, 64))
    def test_pieces_of_file_agrees(self, lengths: list[int], piece_length: int) -> None:
        """pieces_of_file lists exactly the pieces whose spans name the file."""
        layout = Layout(lengths, piece_length)
        for f in range(len(lengths)):
            touching = [
                i for i in range(layout.piece_count) if f in layout.files_of_piece(i)
            ]
            self.assertEqual(list(layout.pieces_of_file(f)), touching)

    @settings(max_examples=200, deadline=1000)
    @given(st.integers(1, 10 * BLOCK_SIZE), st.integers(1, 4 * BLOCK_SIZE))
    def test_blocks_tile_piece(self, total: int, piece_length: int) -> None:
        """Blocks tile each piece with no gap or overlap, none over BLOCK_SIZE."""
        layout = Layout([total], piece_length)
        for index in (0, layout.piece_count - 1):
            position = 0
            for offset, length in layout.blocks(index):
                self.assertEqual(offset, position)
                self.assertTrue(0 < length <= BLOCK_SIZE)
                position += length
            self.assertEqual(position, layout.piece_size(index))
