"""Where a byte range of a file lies in pieces, and when each piece is due.

A streaming reader (``reader.FileReader``) reads a file of a torrent at a
position that moves forward.  These pure functions say which pieces a read
needs, how to read it piece by piece, and which deadlines to give the
picker so the pieces come in the order they will be read: the piece under
the position is due now, each following piece of the readahead window
``step`` seconds later than the one before.  Everything else keeps
rarest-first order.

As the position moves forward the window slides (``slide_deadlines``): a
piece that stays in the window keeps its deadline, so a reader moving one
piece on changes two deadlines (the piece it left, the piece it reached),
not the whole window's; a position whose piece had no deadline (a seek), or
whose deadline fell ``slack`` seconds behind the clock (a slow or paused
reader), starts the window afresh from ``now``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping

from txbittorrent.core.layout import Layout

__all__ = [
    "PieceRead",
    "piece_reads",
    "pieces_of_range",
    "prompt_read_length",
    "readahead_deadlines",
    "slide_deadlines",
]

PieceRead = tuple[int, int, int]
"""(piece_index, begin, length): one part of a read, inside one piece."""


def _torrent_range(layout: Layout, file_index: int, offset: int, length: int) -> tuple[int, int]:
    """The range in the torrent's byte space of ``length`` bytes at
    ``offset`` of file ``file_index``, cut at the end of the file."""
    if offset < 0 or length < 0:
        raise ValueError("offset and length must not be negative")
    size = layout.file_length(file_index)
    if offset > size:
        raise ValueError(f"offset {offset} is past the end of the file ({size} bytes)")
    start = layout.file_offset(file_index) + offset
    return start, min(length, size - offset)


def pieces_of_range(layout: Layout, file_index: int, offset: int, length: int) -> range:
    """The pieces holding ``length`` bytes at ``offset`` of the file (empty
    for an empty range)."""
    start, length = _torrent_range(layout, file_index, offset, length)
    if not length:
        return range(0)
    piece_length = layout.piece_length
    return range(start // piece_length, (start + length - 1) // piece_length + 1)


def piece_reads(layout: Layout, file_index: int, offset: int, length: int) -> Iterator[PieceRead]:
    """The read of ``length`` bytes at ``offset`` of the file, as one
    ``(piece_index, begin, length)`` per piece, in order."""
    start, length = _torrent_range(layout, file_index, offset, length)
    piece_length = layout.piece_length
    end = start + length
    while start < end:
        index, begin = divmod(start, piece_length)
        part = min(piece_length - begin, end - start)
        yield index, begin, part
        start += part


def readahead_deadlines(
    layout: Layout,
    file_index: int,
    position: int,
    window: int,
    now: float,
    step: float,
) -> list[tuple[int, float]]:
    """(piece_index, deadline) for the pieces of ``window`` bytes from
    ``position`` in the file: the first due at ``now``, each next one
    ``step`` seconds after the one before."""
    if window <= 0 or position >= layout.file_length(file_index):
        return []
    pieces = pieces_of_range(layout, file_index, position, window)
    return [(index, now + k * step) for k, index in enumerate(pieces)]


def slide_deadlines(
    layout: Layout,
    file_index: int,
    position: int,
    window: int,
    now: float,
    step: float,
    kept: Mapping[int, float],
    slack: float,
) -> dict[int, float]:
    """The readahead deadlines of ``window`` bytes from ``position``, moved
    from ``kept`` (the window's deadlines so far).  If the piece under the
    position has a kept deadline no more than ``slack`` seconds before
    ``now``, every kept piece still in the window keeps its deadline and the
    pieces the window reaches follow on, ``step`` apart; otherwise the window
    starts afresh as ``readahead_deadlines`` gives it."""
    if window <= 0 or position >= layout.file_length(file_index):
        return {}
    pieces = pieces_of_range(layout, file_index, position, window)
    first = pieces[0]
    base = kept.get(first)
    if base is None or base < now - slack:
        return {index: now + k * step for k, index in enumerate(pieces)}
    return {index: kept.get(index, base + k * step) for k, index in enumerate(pieces)}


def prompt_read_length(
    layout: Layout,
    file_index: int,
    offset: int,
    length: int,
    has_piece: Callable[[int], bool],
) -> int:
    """How much of a read of ``length`` bytes at ``offset`` waits for at
    most one piece: up to the first piece not verified (``has_piece``) if
    the piece under ``offset`` is; to that piece's end if it is not; all of
    it (cut at the end of the file) if every piece is verified."""
    start, length = _torrent_range(layout, file_index, offset, length)
    piece_length = layout.piece_length
    pieces = pieces_of_range(layout, file_index, offset, length)
    for k, index in enumerate(pieces):
        if not has_piece(index):
            end = (index + (k == 0)) * piece_length
            return min(length, end - start)
    return length
