"""Streaming: where a read lies in pieces, FileReader over a fake torrent,
and the merged deadlines of several readers."""

from __future__ import annotations

import gc
from collections.abc import Callable

from twisted.internet.defer import CancelledError, Deferred, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.layout import Layout
from txbittorrent.core.transfer.readahead import (
    piece_reads,
    pieces_of_range,
    prompt_read_length,
    readahead_deadlines,
    slide_deadlines,
)
from txbittorrent.errors import LocalProtocolError
from txbittorrent.reader import DeadlineBook, FileReader, ReaderConfig

PIECE = 100
# Two files: a (250 bytes: pieces 0-2) and b (430 bytes: pieces 2-6).
LAYOUT = Layout([250, 430], PIECE)
DATA = bytes(i % 251 for i in range(680))


class ReadaheadTests(SynchronousTestCase):
    """The pure arithmetic of reads and deadlines."""

    def test_pieces_of_range(self) -> None:
        """The pieces under a file range, with the file's offset in the torrent."""
        self.assertEqual(pieces_of_range(LAYOUT, 0, 0, 250), range(0, 3))
        self.assertEqual(pieces_of_range(LAYOUT, 1, 0, 1), range(2, 3))
        self.assertEqual(pieces_of_range(LAYOUT, 1, 50, 100), range(3, 4))
        self.assertEqual(pieces_of_range(LAYOUT, 1, 50, 101), range(3, 5))
        self.assertEqual(pieces_of_range(LAYOUT, 1, 0, 0), range(0))

    def test_range_cut_at_end_of_file(self) -> None:
        """A range past the end of its file stops there."""
        self.assertEqual(pieces_of_range(LAYOUT, 0, 200, 1000), range(2, 3))
        self.assertEqual(list(piece_reads(LAYOUT, 0, 200, 1000)), [(2, 0, 50)])

    def test_piece_reads_cross_pieces(self) -> None:
        """A read is cut at piece boundaries."""
        self.assertEqual(
            list(piece_reads(LAYOUT, 1, 40, 200)), [(2, 90, 10), (3, 0, 100), (4, 0, 90)]
        )

    def test_bad_ranges(self) -> None:
        """Negative values and offsets past the end are refused."""
        self.assertRaises(ValueError, pieces_of_range, LAYOUT, 0, -1, 5)
        self.assertRaises(ValueError, pieces_of_range, LAYOUT, 0, 0, -5)
        self.assertRaises(ValueError, pieces_of_range, LAYOUT, 0, 251, 5)

    def test_deadlines_in_reading_order(self) -> None:
        """The piece under the position is due now, each next one a step later."""
        self.assertEqual(
            readahead_deadlines(LAYOUT, 1, 100, 250, 10.0, 0.5),
            [(3, 10.0), (4, 10.5), (5, 11.0)],
        )
        self.assertEqual(readahead_deadlines(LAYOUT, 1, 430, 250, 10.0, 0.5), [])
        self.assertEqual(readahead_deadlines(LAYOUT, 1, 0, 0, 10.0, 0.5), [])

    def test_slide_keeps_deadlines(self) -> None:
        """Moving forward within the window keeps the deadlines of the pieces
        still in it and puts the pieces reached a step after the last."""
        kept = {3: 10.0, 4: 10.5, 5: 11.0}
        self.assertEqual(
            slide_deadlines(LAYOUT, 1, 160, 250, 12.0, 0.5, kept, 2.0),
            {4: 10.5, 5: 11.0, 6: 11.5},
        )
        self.assertEqual(slide_deadlines(LAYOUT, 1, 430, 250, 12.0, 0.5, kept, 2.0), {})

    def test_slide_afresh(self) -> None:
        """A position whose piece had no deadline (a seek), or one more than
        slack behind the clock, places the window afresh from now."""
        kept = {3: 10.0, 4: 10.5, 5: 11.0}
        self.assertEqual(
            slide_deadlines(LAYOUT, 1, 0, 150, 12.0, 0.5, kept, 2.0), {2: 12.0, 3: 12.5}
        )
        self.assertEqual(
            slide_deadlines(LAYOUT, 1, 160, 150, 12.6, 0.5, kept, 2.0), {4: 12.6, 5: 13.1}
        )

    def test_prompt_read_length(self) -> None:
        """A read is cut before the first piece not verified, or at the end of
        the piece under the offset when that one is not verified."""
        had = {2, 3, 5}.__contains__
        # file 1 starts at torrent byte 250: piece 2 ends at file offset 50.
        self.assertEqual(prompt_read_length(LAYOUT, 1, 0, 400, had), 150)  # stops before 4
        self.assertEqual(prompt_read_length(LAYOUT, 1, 0, 120, had), 120)
        self.assertEqual(prompt_read_length(LAYOUT, 1, 160, 400, had), 90)  # to 4's end
        self.assertEqual(prompt_read_length(LAYOUT, 1, 260, 400, had), 90)  # stops before 6
        self.assertEqual(prompt_read_length(LAYOUT, 1, 40, 5, lambda i: False), 5)
        self.assertEqual(prompt_read_length(LAYOUT, 1, 40, 400, lambda i: False), 10)
        self.assertEqual(prompt_read_length(LAYOUT, 1, 400, 400, lambda i: True), 30)


class FakeTorrent:
    """A ReaderHost: pieces in memory, passed by the test."""

    def __init__(self, have: set[int] | None = None) -> None:
        self.layout = LAYOUT
        self.have = set(have or ())
        self.clock = Clock()
        self.deadlines: dict[object, dict[int, float]] = {}
        self.watchers: list[Callable[[int], object]] = []
        self.reads: list[tuple[int, int, int]] = []

    def has_piece(self, index: int) -> bool:
        return index in self.have

    def read_piece_range(self, index: int, begin: int, length: int) -> Deferred[bytes]:
        assert index in self.have, f"read of piece {index}, not verified"
        self.reads.append((index, begin, length))
        start = index * PIECE + begin
        return succeed(DATA[start : start + length])

    def watch_pieces(self, callback: Callable[[int], object]) -> Callable[[], None]:
        self.watchers.append(callback)
        return lambda: self.watchers.remove(callback)

    def set_deadlines(self, owner: object, deadlines: dict[int, float]) -> None:
        if deadlines:
            self.deadlines[owner] = dict(deadlines)
        else:
            self.deadlines.pop(owner, None)

    def seconds(self) -> float:
        return self.clock.seconds()

    def passed(self, index: int) -> None:
        self.have.add(index)
        for watcher in list(self.watchers):
            watcher(index)


def file_bytes(file_index: int, offset: int, length: int) -> bytes:
    start = LAYOUT.file_offset(file_index) + offset
    end = min(start + length, LAYOUT.file_offset(file_index) + LAYOUT.file_length(file_index))
    return DATA[start:end]


class FileReaderTests(SynchronousTestCase):
    """FileReader waits for verified pieces and sets deadlines while it waits."""

    def reader(self, torrent: FakeTorrent, **config: float) -> FileReader:
        return FileReader(torrent, 1, ReaderConfig(**config))  # type: ignore[arg-type]

    def test_verified_bytes_at_once(self) -> None:
        """A read of verified pieces fires at once with the file's bytes."""
        torrent = FakeTorrent(have=set(range(7)))
        reader = self.reader(torrent)
        self.assertEqual(reader.size, 430)
        got = self.successResultOf(reader.read(40, 200))
        self.assertEqual(got, file_bytes(1, 40, 200))
        self.assertEqual(torrent.deadlines, {})

    def test_waits_then_fires(self) -> None:
        """A read waits until every piece it needs is verified."""
        torrent = FakeTorrent(have={2})
        reader = self.reader(torrent)
        d = reader.read(40, 200)  # pieces 2, 3, 4
        self.assertNoResult(d)
        torrent.passed(4)
        self.assertNoResult(d)
        torrent.passed(3)
        self.assertEqual(self.successResultOf(d), file_bytes(1, 40, 200))
        self.assertEqual(torrent.watchers, [], "no watching once nothing waits")
        self.assertEqual(
            torrent.deadlines[reader], {5: 1.5, 6: 2.0}, "the window from the read's end"
        )

    def test_far_piece_gets_a_deadline_now(self) -> None:
        """Reading far ahead makes the pieces there due now, the window after them."""
        torrent = FakeTorrent()
        torrent.clock.advance(50)
        reader = self.reader(torrent, readahead=250, step=1.0)
        reader.read(350, 10)  # piece 6 (the file's end)
        (deadlines,) = torrent.deadlines.values()
        self.assertEqual(deadlines, {6: 50.0})
        reader.read(100, 10)
        (deadlines,) = torrent.deadlines.values()
        self.assertEqual(deadlines[3], 50.0)
        self.assertEqual((deadlines[4], deadlines[5]), (51.0, 52.0))
        self.assertEqual(deadlines[6], 50.0, "still waited for by the first read")

    def test_cancel_keeps_window(self) -> None:
        """Cancelling the only pending read stops the watch and drops the
        deadlines only it gave; the open reader keeps its window."""
        torrent = FakeTorrent()
        torrent.clock.advance(5)
        reader = self.reader(torrent, readahead=100, step=1.0)
        d = reader.read(0, 400)  # pieces 2-6, all due now; the window: 2, 3
        self.assertEqual(torrent.deadlines[reader], {2: 5.0, 3: 5.0, 4: 5.0, 5: 5.0, 6: 5.0})
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(torrent.watchers, [])
        self.assertEqual(torrent.deadlines[reader], {2: 5.0, 3: 6.0})
        torrent.passed(2)  # nothing listens any more
        reader.close()
        self.assertEqual(torrent.deadlines, {})

    def test_window_kept_without_reads(self) -> None:
        """With no read pending (a client that stopped reading), the window
        from the last read's end keeps its deadlines until close."""
        torrent = FakeTorrent(have={2})
        reader = self.reader(torrent, readahead=250, step=1.0)
        self.assertEqual(torrent.deadlines, {}, "no window before the first read")
        self.assertEqual(self.successResultOf(reader.read(0, 50)), file_bytes(1, 0, 50))
        self.assertEqual(reader.position, 50)
        torrent.clock.advance(100)
        self.assertEqual(torrent.deadlines[reader], {3: 0.0, 4: 1.0, 5: 2.0})
        reader.seek(200)
        self.assertEqual(torrent.deadlines[reader], {4: 100.0, 5: 101.0, 6: 102.0})
        reader.close()
        self.assertEqual(torrent.deadlines, {})
        self.assertRaises(LocalProtocolError, reader.seek, 0)

    def test_moving_on_changes_only_the_difference(self) -> None:
        """Reading on piece by piece changes the deadlines of the piece left
        behind and the piece reached, never the whole window's."""
        torrent = FakeTorrent()
        torrent.layout = Layout([2000], PIECE)
        book, target = DeadlineBook(), Recorder()
        book.attach(target)
        torrent.set_deadlines = book.set  # type: ignore[method-assign]
        reader = FileReader(torrent, 0, ReaderConfig(readahead=300, step=1.0))  # type: ignore[arg-type]
        reader.read(0, 100)
        self.assertEqual(target.calls, [("set", 2, 2.0), ("set", 1, 1.0), ("set", 0, 0.0)])
        for index in range(1, 8):
            target.calls.clear()
            torrent.clock.advance(1)
            torrent.passed(index - 1)  # the read fires, the position moves on
            self.assertEqual(
                sorted(target.calls),
                [("clear", index - 1, None), ("set", index + 2, float(index + 2))],
            )
            target.calls.clear()
            reader.read(index * PIECE, PIECE)  # waits on a piece that has its deadline
            self.assertEqual(target.calls, [])

    def test_cancel_keeps_other_reads(self) -> None:
        """Cancelling one read keeps the deadlines another read waits for."""
        torrent = FakeTorrent()
        reader = self.reader(torrent, readahead=0)
        first = reader.read(0, 10)
        second = reader.read(350, 10)
        first.cancel()
        self.failureResultOf(first, CancelledError)
        (deadlines,) = torrent.deadlines.values()
        self.assertIn(6, deadlines)
        self.assertNotIn(2, deadlines)
        torrent.passed(6)
        self.assertEqual(self.successResultOf(second), file_bytes(1, 350, 10))

    def test_cancel_while_reading_from_disk(self) -> None:
        """A read cancelled once its pieces passed, while the disk read runs,
        fails with CancelledError; the disk's answer is then dropped."""
        torrent = FakeTorrent()
        disk: list[Deferred[bytes]] = []
        torrent.read_piece_range = lambda i, b, n: disk.append(Deferred()) or disk[-1]  # type: ignore[method-assign]
        reader = self.reader(torrent)
        d = reader.read(0, 10)
        torrent.passed(2)
        self.assertEqual(len(disk), 1)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        disk[0].callback(b"x" * 10)
        disk.clear()
        gc.collect()  # an AlreadyCalledError left in a Deferred is logged here
        reader.close()

    def test_close_fails_pending_reads(self) -> None:
        """close() cancels what waits and refuses later reads."""
        torrent = FakeTorrent()
        reader = self.reader(torrent)
        d = reader.read(0, 10)
        reader.close()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(torrent.deadlines, {})
        self.assertRaises(LocalProtocolError, reader.read, 0, 10)

    def test_bounds(self) -> None:
        """A read past max_read or past the file's end is refused; at the end, empty."""
        torrent = FakeTorrent(have=set(range(7)))
        reader = self.reader(torrent, max_read=100)
        self.assertRaises(ValueError, reader.read, 0, 101)
        self.assertRaises(ValueError, reader.read, 431, 1)
        self.assertEqual(self.successResultOf(reader.read(430, 50)), b"")
        self.assertEqual(self.successResultOf(reader.read(400, 100)), file_bytes(1, 400, 30))
        self.assertRaises(ValueError, reader.seek, 431)


class Recorder:
    def __init__(self) -> None:
        self.calls: list[tuple[str, int, float | None]] = []

    def set_deadline(self, index: int, when: float) -> None:
        self.calls.append(("set", index, when))

    def clear_deadline(self, index: int) -> None:
        self.calls.append(("clear", index, None))


class DeadlineBookTests(SynchronousTestCase):
    """Several readers' deadlines, merged and applied as changes."""

    def test_earliest_wins_and_changes_only(self) -> None:
        """The earliest deadline per piece is applied; unchanged ones are not resent."""
        book, target = DeadlineBook(), Recorder()
        book.attach(target)
        book.set("a", {1: 5.0, 2: 6.0})
        book.set("b", {2: 3.0})
        self.assertEqual(book.merged(), {1: 5.0, 2: 3.0})
        self.assertEqual(target.calls, [("set", 2, 6.0), ("set", 1, 5.0), ("set", 2, 3.0)])
        target.calls.clear()
        book.set("b", {})
        self.assertEqual(target.calls, [("set", 2, 6.0)])
        target.calls.clear()
        book.set("a", {})
        self.assertEqual(sorted(target.calls), [("clear", 1, None), ("clear", 2, None)])

    def test_latest_set_first(self) -> None:
        """New deadlines reach the target latest first, so the one due soonest
        comes last, once the target knows the rest of the window."""
        book, target = DeadlineBook(), Recorder()
        book.attach(target)
        book.set("a", {7: 1.0, 8: 1.5, 9: 2.0})
        self.assertEqual(target.calls, [("set", 9, 2.0), ("set", 8, 1.5), ("set", 7, 1.0)])
        target.calls.clear()
        book.set("a", {8: 1.5, 9: 2.0, 10: 2.5})
        self.assertEqual(target.calls, [("clear", 7, None), ("set", 10, 2.5)])

    def test_applied_on_attach(self) -> None:
        """Deadlines set while detached reach the target when it is attached."""
        book, target = DeadlineBook(), Recorder()
        book.set("a", {4: 1.0})
        self.assertEqual(target.calls, [])
        book.attach(target)
        self.assertEqual(target.calls, [("set", 4, 1.0)])
        book.attach(None)
        book.set("a", {})
        self.assertEqual(target.calls, [("set", 4, 1.0)])
