"""Piece and block arithmetic over a torrent's files.

A torrent's files, concatenated in order, form one byte stream cut into
pieces of ``piece_length``.  ``Layout`` answers the two questions the store,
the picker and the hash checker ask: which file ranges make up a byte range of
a piece (``spans``), and which pieces touch a file (``pieces_of_file``).  It
also turns file priorities into piece priorities.  Pure arithmetic: no I/O.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence
from dataclasses import dataclass

from txbittorrent.core.metainfo import Metainfo, piece_size

__all__ = ["Span", "Layout", "BLOCK_SIZE"]

BLOCK_SIZE = 16 * 1024
"""The request size every client uses (BEP 3 leaves it open; 16 KiB is universal)."""


@dataclass(frozen=True, slots=True)
class Span:
    """``length`` bytes of file ``file_index`` at ``file_offset``, which are the
    bytes at ``piece_offset`` of the piece asked about."""

    file_index: int
    file_offset: int
    piece_offset: int
    length: int


class Layout:
    """Maps pieces onto files.  Immutable once built."""

    __slots__ = ("piece_length", "total_length", "piece_count", "_lengths", "_starts", "pad")

    def __init__(
        self, file_lengths: Sequence[int], piece_length: int, pad: Sequence[bool] | None = None
    ) -> None:
        if piece_length <= 0:
            raise ValueError("piece_length must be positive")
        self.piece_length = piece_length
        self._lengths = tuple(file_lengths)
        starts = []
        offset = 0
        for length in self._lengths:
            starts.append(offset)
            offset += length
        self._starts = tuple(starts)
        self.total_length = offset
        self.piece_count = (offset + piece_length - 1) // piece_length
        self.pad = tuple(pad) if pad is not None else (False,) * len(self._lengths)
        if len(self.pad) != len(self._lengths):
            raise ValueError("one pad flag per file is needed")

    @classmethod
    def from_metainfo(cls, metainfo: Metainfo) -> Layout:
        return cls(
            [f.length for f in metainfo.files],
            metainfo.piece_length,
            [f.pad for f in metainfo.files],
        )

    @property
    def file_count(self) -> int:
        return len(self._lengths)

    def _check_file(self, file_index: int) -> None:
        if not 0 <= file_index < len(self._lengths):
            raise IndexError(f"file index {file_index} out of range")

    def file_length(self, file_index: int) -> int:
        self._check_file(file_index)
        return self._lengths[file_index]

    def file_offset(self, file_index: int) -> int:
        self._check_file(file_index)
        return self._starts[file_index]

    def piece_size(self, index: int) -> int:
        return piece_size(index, self.piece_length, self.total_length)

    def spans(self, index: int, offset: int = 0, length: int | None = None) -> list[Span]:
        """The file ranges holding ``length`` bytes at ``offset`` of piece ``index``.

        Zero-length files never appear.  Raises ``IndexError`` for a range that
        does not lie inside the piece."""
        size = self.piece_size(index)
        if length is None:
            length = size - offset
        if offset < 0 or length < 0 or offset + length > size:
            raise IndexError(f"range {offset}+{length} outside piece {index} of {size} bytes")
        start = index * self.piece_length + offset
        stop = start + length
        out: list[Span] = []
        f = bisect.bisect_right(self._starts, start) - 1
        pos = start
        while pos < stop:
            file_start = self._starts[f]
            file_end = file_start + self._lengths[f]
            if file_end > pos:
                take = min(stop, file_end) - pos
                out.append(Span(f, pos - file_start, pos - index * self.piece_length, take))
                pos += take
            f += 1
        return out

    def pieces_of_file(self, file_index: int) -> range:
        """The pieces that hold at least one byte of the file (empty for an empty file)."""
        self._check_file(file_index)
        length = self._lengths[file_index]
        if length == 0:
            return range(0)
        start = self._starts[file_index]
        return range(start // self.piece_length, (start + length - 1) // self.piece_length + 1)

    def files_of_piece(self, index: int) -> list[int]:
        return [s.file_index for s in self.spans(index)]

    def checked_priorities(self, priorities: Sequence[int]) -> tuple[int, ...]:
        """``priorities`` as a tuple, if there is one per file and each is a
        non-negative integer; else ``ValueError``."""
        out = tuple(priorities)
        if len(out) != self.file_count:
            raise ValueError(f"{len(out)} priorities for {self.file_count} files")
        if any(not isinstance(p, int) or p < 0 for p in out):
            raise ValueError("priorities must be non-negative integers")
        return out

    def piece_priorities(self, file_priorities: Sequence[int]) -> list[int]:
        """Each piece's priority: the highest of the (non-pad) files it touches.

        A piece only in skipped (priority 0) or pad files gets 0."""
        if len(file_priorities) != len(self._lengths):
            raise ValueError("one priority per file is needed")
        out = [0] * self.piece_count
        for f, priority in enumerate(file_priorities):
            if priority <= 0 or self.pad[f]:
                continue
            for p in self.pieces_of_file(f):
                if out[p] < priority:
                    out[p] = priority
        return out

    def blocks(self, index: int, block_size: int = BLOCK_SIZE) -> list[tuple[int, int]]:
        """(offset, length) of each block of piece ``index``."""
        size = self.piece_size(index)
        return [(o, min(block_size, size - o)) for o in range(0, size, block_size)]
