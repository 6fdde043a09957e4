"""Tests for txbittorrent.core.transfer.picker.

Fixtures are strings with one character per piece, in the spirit of
libtorrent's ``test_piece_picker.cpp``: an availability string gives how many
peers have each piece ("2213": pieces 0 and 1 on two peers, piece 2 on one,
piece 3 on three), a have string which pieces we hold ("1100"), a priority
string each piece's priority.  Unless a test says otherwise every piece is
four blocks of 16 KiB and random-first is off, so the order is rarest first.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import BLOCK_SIZE, Layout
from txbittorrent.core.transfer.picker import RANDOM_FIRST_PIECES, PiecePicker
from txbittorrent.errors import LocalProtocolError

BS = BLOCK_SIZE
PIECE = 4 * BS


def bits(pattern: str) -> Bitfield:
    """A bitfield from a string of 0 and 1, piece 0 first."""
    return Bitfield.from_indexes([i for i, c in enumerate(pattern) if c == "1"], len(pattern))


def setup_picker(
    availability: str,
    have: str = "",
    priority: str = "",
    seed: int = 0,
    random_first: int = 0,
) -> PiecePicker[str]:
    """A picker whose pieces are on as many peers (named p0, p1, ...) as the digits say."""
    n = len(availability)
    picker: PiecePicker[str] = PiecePicker(
        PIECE,
        n * PIECE,
        random.Random(seed),
        have=bits(have) if have else None,
        random_first=random_first,
    )
    if priority:
        picker.set_piece_priorities([int(c) for c in priority])
    for k in range(max((int(c) for c in availability), default=0)):
        has = "".join("1" if int(c) > k else "0" for c in availability)
        picker.peer_bitfield(f"p{k}", bits(has))
    return picker


def pieces(requests: list[tuple[int, int, int]]) -> list[int]:
    """The piece of each block requested, in order, without repeats."""
    out: list[int] = []
    for index, _, _ in requests:
        if index not in out:
            out.append(index)
    return out


def states(picker: PiecePicker[str]) -> str:
    """The block states of every piece, separated by spaces."""
    return " ".join(picker.block_states(i) for i in range(picker.piece_count))


class AvailabilityTests(SynchronousTestCase):
    """Counting which peers have which pieces."""

    def test_fixture(self) -> None:
        """The availability string turns into per-piece counts."""
        picker = setup_picker("2203")
        self.assertEqual([picker.availability(i) for i in range(4)], [2, 2, 0, 3])

    def test_have_and_have_all(self) -> None:
        """HAVE adds one to a piece, once per peer; HAVE ALL adds one to every piece."""
        picker = setup_picker("0000")
        picker.peer_have("a", 1)
        picker.peer_have("a", 1)
        picker.peer_have_all("s")
        self.assertEqual([picker.availability(i) for i in range(4)], [1, 2, 1, 1])

    def test_full_bitfield_is_a_seed(self) -> None:
        """A full bitfield counts like HAVE ALL, and HAVE from a seed changes nothing."""
        picker = setup_picker("0000")
        picker.peer_bitfield("s", bits("1111"))
        picker.peer_have("s", 2)
        self.assertEqual([picker.availability(i) for i in range(4)], [1, 1, 1, 1])

    def test_peer_gone(self) -> None:
        """A peer leaving takes its pieces out of the counts."""
        picker = setup_picker("1230")
        picker.peer_have_all("s")
        picker.peer_gone("p1")
        picker.peer_gone("s")
        self.assertEqual([picker.availability(i) for i in range(4)], [1, 1, 2, 0])

    def test_bitfield_replaces(self) -> None:
        """A second bitfield from the same peer replaces the first."""
        picker = setup_picker("0000")
        picker.peer_bitfield("a", bits("1100"))
        picker.peer_bitfield("a", bits("0011"))
        self.assertEqual([picker.availability(i) for i in range(4)], [0, 0, 1, 1])

    def test_bad_input(self) -> None:
        """Bitfields of the wrong size and bad priority lists are refused."""
        picker = setup_picker("0000")
        self.assertRaises(ValueError, picker.peer_bitfield, "a", bits("111"))
        self.assertRaises(ValueError, picker.set_piece_priorities, [1, 1, 1])
        self.assertRaises(ValueError, picker.set_piece_priorities, [1, 1, 1, -1])
        self.assertRaises(IndexError, picker.peer_have, "a", 4)


class RarestFirstTests(SynchronousTestCase):
    """New pieces: priority, then rarity, then chance."""

    def test_rarest_first(self) -> None:
        """Pieces come rarest first, whole pieces at a time, skipping pieces we have."""
        picker = setup_picker("2223331", have="1100000")
        got = pieces(picker.pick("x", bits("1111111"), 20, 0.0))
        self.assertEqual(got[:2], [6, 2])
        self.assertEqual(sorted(got[2:]), [3, 4, 5])

    def test_partial_peer_scan(self) -> None:
        """A partial peer's pieces are found past the pieces only seeds have
        (bucket 0, looked at last for it), and a piece of a HAVE the picker
        has not been told of yet is still found."""
        picker = setup_picker("0" * 36 + "111112", random_first=0)
        picker.peer_have_all("seed")
        got = pieces(picker.pick("x", bits("0" * 36 + "1" * 6), 24, 0.0))
        self.assertEqual(sorted(got[:5]), [36, 37, 38, 39, 40])
        self.assertEqual(got[5], 41)
        late = setup_picker("0" * 40, random_first=0)
        self.assertIn(pieces(late.pick("y", bits("1" * 10 + "0" * 30), 1, 0.0))[0], range(10))

    def test_blocks(self) -> None:
        """Each block is (piece, begin, length), in order within the piece."""
        picker = setup_picker("21")
        self.assertEqual(
            picker.pick("x", bits("11"), 5, 0.0),
            [(1, 0, BS), (1, BS, BS), (1, 2 * BS, BS), (1, 3 * BS, BS), (0, 0, BS)],
        )

    def test_priority_beats_rarity(self) -> None:
        """A higher priority is picked first however common it is."""
        picker = setup_picker("1239", priority="1112")
        self.assertEqual(pieces(picker.pick("x", bits("1111"), 5, 0.0)), [3, 0])

    def test_priority_zero_never(self) -> None:
        """Pieces of priority 0 are never picked; wanted_left leaves them out."""
        picker = setup_picker("1111", priority="0100")
        self.assertEqual(picker.wanted_left(), 1)
        self.assertEqual(pieces(picker.pick("x", bits("1111"), 100, 0.0)), [1])
        self.assertEqual(picker.pick("x", bits("1111"), 100, 0.0), [])

    def test_priority_change(self) -> None:
        """set_piece_priority moves one piece between levels."""
        picker = setup_picker("1111", priority="0000")
        picker.set_piece_priority(2, 3)
        picker.set_piece_priority(1, 1)
        self.assertEqual(picker.wanted_left(), 2)
        self.assertEqual(pieces(picker.pick("x", bits("1111"), 8, 0.0)), [2, 1])

    def test_only_what_the_peer_has(self) -> None:
        """A peer is only asked for pieces it has, however rare the others."""
        picker = setup_picker("1112222222")
        self.assertEqual(pieces(picker.pick("p1", bits("0001111110"), 4, 0.0)), [3])
        self.assertEqual(pieces(picker.pick("x", bits("0000000001"), 4, 0.0)), [9])

    def test_nothing_to_give(self) -> None:
        """A peer with nothing we want gets no requests."""
        picker = setup_picker("22", have="10")
        self.assertEqual(picker.pick("x", bits("10"), 4, 0.0), [])

    def test_ties_reproducible(self) -> None:
        """Equal pieces come in a random order, the same for the same seed."""
        orders = set()
        for seed in range(10):
            first = pieces(setup_picker("1111111", seed=seed).pick("x", bits("1111111"), 28, 0.0))
            again = pieces(setup_picker("1111111", seed=seed).pick("x", bits("1111111"), 28, 0.0))
            self.assertEqual(first, again)
            self.assertEqual(sorted(first), list(range(7)))
            orders.add(tuple(first))
        self.assertGreater(len(orders), 1)

    def test_ties_partial_peer(self) -> None:
        """A peer with few pieces gets the rarest of them, ties at random, reproducibly."""
        firsts = set()
        for seed in range(20):
            picker = setup_picker("2222111111", seed=seed)
            firsts.add(pieces(picker.pick("x", bits("1110000000"), 1, 0.0))[0])
        self.assertEqual(firsts, {0, 1, 2})

    def test_random_first(self) -> None:
        """With fewer than RANDOM_FIRST_PIECES pieces, new pieces are not rarest first."""
        firsts = set()
        for seed in range(20):
            picker = setup_picker("1222222222", seed=seed, random_first=RANDOM_FIRST_PIECES)
            firsts.add(pieces(picker.pick("x", bits("1111111111"), 1, 0.0))[0])
        self.assertGreater(len(firsts), 3)
        rarest = setup_picker("1222222222", have="0111100000", random_first=RANDOM_FIRST_PIECES)
        self.assertEqual(pieces(rarest.pick("x", bits("1111111111"), 1, 0.0)), [0])

    def test_random_first_keeps_priority(self) -> None:
        """Random-first still picks only among the highest priority the peer has."""
        for seed in range(10):
            picker = setup_picker("1111", priority="1212", seed=seed, random_first=4)
            self.assertIn(pieces(picker.pick("x", bits("1111"), 1, 0.0))[0], (1, 3))
            picker = setup_picker("1111", priority="1212", seed=seed, random_first=4)
            self.assertIn(pieces(picker.pick("x", bits("1010"), 1, 0.0))[0], (0, 2))

    def test_suggested(self) -> None:
        """A suggested piece (BEP 6) goes before rarer ones of the same priority."""
        picker = setup_picker("1222")
        self.assertEqual(pieces(picker.pick("x", bits("1111"), 4, 0.0, suggested=[3])), [3])
        picker = setup_picker("1222", priority="2111")
        self.assertEqual(pieces(picker.pick("x", bits("1111"), 4, 0.0, suggested=[3])), [0])

    def test_new_pieces_scan_once_per_piece(self) -> None:
        """Picking block by block looks for a new piece once per piece, not per block."""
        picker = setup_picker("1" * 50)
        calls = []
        choose = picker._choose_new

        def counting(
            peer_has: Bitfield, allowed: Collection[int] | None, suggested: Collection[int]
        ) -> int:
            calls.append(1)
            return choose(peer_has, allowed, suggested)

        picker._choose_new = counting  # type: ignore[method-assign]
        got = [picker.pick("x", Bitfield.full(50), 1, 0.0) for _ in range(200)]
        self.assertEqual(len({r[0] for r in got}), 200)
        self.assertEqual(len(calls), 50)


class InProgressTests(SynchronousTestCase):
    """Finishing what was started."""

    def test_finish_before_starting(self) -> None:
        """A started piece is finished before a new one is begun, however rare."""
        picker = setup_picker("1113")
        self.assertEqual(pieces(picker.pick("p2", bits("0001"), 2, 0.0)), [3])
        got = picker.pick("x", bits("1111"), 3, 0.0)
        self.assertEqual(got[:2], [(3, 2 * BS, BS), (3, 3 * BS, BS)])
        self.assertIn(got[2][:2], [(0, 0), (1, 0), (2, 0)])

    def test_most_complete(self) -> None:
        """Of two started pieces, the one with fewer free blocks is continued first."""
        picker = setup_picker("111")
        picker.pick("a", bits("111"), 12, 0.0)
        for begin in (0, BS, 2 * BS):
            picker.request_failed("a", 0, begin)
        picker.request_failed("a", 2, 0)
        self.assertEqual(states(picker), "...r rrrr .rrr")
        self.assertEqual(pieces(picker.pick("b", bits("111"), 4, 0.0)), [2, 0])

    def test_own_piece_first(self) -> None:
        """A peer keeps to its own piece while it has free blocks, even if another is closer."""
        picker = setup_picker("12")
        self.assertEqual(picker.pick("a", bits("11"), 1, 0.0), [(0, 0, BS)])
        self.assertEqual(pieces(picker.pick("c", bits("11"), 4, 0.0)), [0, 1])
        picker.request_failed("a", 0, 0)
        self.assertEqual(states(picker), ".rrr r...")
        self.assertEqual(picker.pick("c", bits("11"), 1, 0.0), [(1, BS, BS)])
        self.assertEqual(picker.pick("b", bits("11"), 1, 0.0), [(0, 0, BS)])

    def test_has_started_blocks(self) -> None:
        """True while a piece in progress has a free block, or nothing is left to start."""
        picker = setup_picker("11")
        self.assertFalse(picker.has_started_blocks)  # candidates only
        picker.pick("a", bits("11"), 1, 0.0)
        self.assertTrue(picker.has_started_blocks)  # piece 0 has free blocks
        picker.pick("a", bits("11"), 3, 0.0)
        self.assertFalse(picker.has_started_blocks)  # piece 0 all requested, piece 1 a candidate
        picker.pick("a", bits("11"), 4, 0.0)
        self.assertTrue(picker.has_started_blocks)  # nothing left to start: endgame may apply

    def test_new_pieces_cap(self) -> None:
        """new_pieces caps the pieces a pick starts, not the blocks of started ones."""
        picker = setup_picker("1111")
        self.assertEqual(picker.pick("a", bits("1111"), 8, 0.0, new_pieces=0), [])
        first = picker.pick("a", bits("1111"), 12, 0.0, new_pieces=1)
        self.assertEqual((len(first), len(set(pieces(first)))), (4, 1))
        picker.request_failed("a", first[-1][0], first[-1][1])
        self.assertEqual(picker.pick("b", bits("1111"), 8, 0.0, new_pieces=0), [first[-1]])
        got = picker.pick("a", bits("1111"), 12, 0.0, new_pieces=2)
        self.assertEqual((len(got), len(set(pieces(got)) - set(pieces(first)))), (8, 2))

    def test_last_piece_short(self) -> None:
        """The last piece is shorter, its last block too."""
        picker: PiecePicker[str] = PiecePicker.from_layout(
            Layout([PIECE + BS + 100], PIECE), random.Random(0)
        )
        picker.set_piece_priorities([1, 2])
        self.assertEqual(picker.piece_count, 2)
        got = picker.pick("x", bits("11"), 3, 0.0)
        self.assertEqual(got, [(1, 0, BS), (1, BS, 100), (0, 0, BS)])
        self.assertEqual(picker.block_states(1), "rr")

    def test_complete_and_passed(self) -> None:
        """A piece is complete when every block arrived; passing adds it to have."""
        picker = setup_picker("12")
        for index, begin, _ in picker.pick("a", bits("11"), 4, 0.0):
            self.assertFalse(picker.piece_complete(index))
            self.assertTrue(picker.wants_block(index, begin))
            self.assertEqual(picker.block_received("a", index, begin), [])
        self.assertTrue(picker.piece_complete(0))
        picker.piece_passed(0)
        self.assertEqual(picker.have.to_string(), "10")
        self.assertEqual((picker.in_progress(), picker.wanted_left()), ([], 1))
        self.assertEqual(pieces(picker.pick("a", bits("11"), 8, 0.0)), [1])

    def test_failed_piece(self) -> None:
        """A failed piece is free again and reports the peers that sent it."""
        picker = setup_picker("1")
        blocks = picker.pick("a", bits("1"), 2, 0.0) + picker.pick("b", bits("1"), 2, 0.0)
        for (index, begin, _), peer in zip(blocks, "aabb"):
            picker.block_received(peer, index, begin)
        self.assertTrue(picker.piece_complete(0))
        self.assertEqual(picker.piece_failed(0), {"a", "b"})
        self.assertEqual((states(picker), picker.in_progress()), ("....", []))
        self.assertEqual(len(picker.pick("c", bits("1"), 9, 0.0)), 4)
        picker.piece_passed(0)
        self.assertRaises(LocalProtocolError, picker.piece_failed, 0)

    def test_request_failed(self) -> None:
        """A rejected request frees its block, which is handed out again."""
        picker = setup_picker("1")
        picker.pick("a", bits("1"), 4, 0.0)
        picker.request_failed("a", 0, 2 * BS)
        picker.request_failed("b", 0, 0)  # b never asked: nothing changes
        self.assertEqual(states(picker), "rr.r")
        self.assertEqual(picker.pick("b", bits("1"), 1, 0.0), [(0, 2 * BS, BS)])

    def test_peer_gone_frees(self) -> None:
        """A peer leaving frees its requested blocks and keeps received ones."""
        picker = setup_picker("1")
        blocks = picker.pick("a", bits("1"), 3, 0.0)
        picker.block_received("a", *blocks[0][:2])
        picker.peer_gone("a")
        self.assertEqual((states(picker), picker.requests_of("a")), ("#...", []))
        self.assertEqual(pieces(picker.pick("b", bits("1"), 4, 0.0)), [0])

    def test_timed_out(self) -> None:
        """Requests older than the timeout are reported and freed."""
        picker = setup_picker("12")
        picker.pick("a", bits("11"), 2, 0.0)
        picker.pick("b", bits("11"), 1, 10.0)
        self.assertEqual(picker.timed_out(20.0, 20.0), [("a", 0, 0, BS), ("a", 0, BS, BS)])
        self.assertEqual(states(picker), "..r. ....")
        self.assertEqual(picker.timed_out(20.0, 20.0), [])
        self.assertEqual(picker.requests_of("b"), [(0, 2 * BS, BS)])

    def test_late_block(self) -> None:
        """A block arriving after its request timed out still counts."""
        picker = setup_picker("1")
        picker.pick("a", bits("1"), 1, 0.0)
        picker.timed_out(30.0, 20.0)
        self.assertEqual(picker.block_received("a", 0, 0), [])
        self.assertEqual(states(picker), "#...")
        self.assertFalse(picker.wants_block(0, 0))


class DeadlineTests(SynchronousTestCase):
    """Streaming deadlines."""

    def test_earliest_deadline_first(self) -> None:
        """Deadline pieces come first, earliest first, whatever their rarity."""
        picker = setup_picker("19995")
        picker.set_deadline(3, 5.0)
        picker.set_deadline(1, 2.0)
        self.assertEqual(pieces(picker.pick("x", bits("11111"), 12, 0.0)), [1, 3, 0])

    def test_deadline_before_in_progress(self) -> None:
        """A deadline piece goes before finishing a started piece."""
        picker = setup_picker("1999")
        picker.pick("a", bits("1111"), 1, 0.0)
        picker.set_deadline(2, 1.0)
        self.assertEqual(pieces(picker.pick("a", bits("1111"), 5, 0.0)), [2, 0])

    def test_deadline_ignores_new_pieces_cap(self) -> None:
        """A deadline piece starts even when new_pieces allows no new piece
        (a reader waits for it; the buffer budget must not hold it back)."""
        picker = setup_picker("1999")
        picker.set_deadline(2, 1.0)
        self.assertEqual(pieces(picker.pick("a", bits("1111"), 8, 0.0, new_pieces=0)), [2])
        self.assertEqual(picker.pick("b", bits("1111"), 8, 0.0, new_pieces=0), [])

    def test_piece_lost(self) -> None:
        """A piece we had and lost (a failed recheck) is picked again."""
        picker = setup_picker("11")
        picker.piece_passed(0)
        picker.piece_passed(1)
        self.assertEqual(picker.wanted_left(), 0)
        picker.piece_lost(1)
        picker.piece_lost(1)  # twice: once
        self.assertEqual(picker.wanted_left(), 1)
        self.assertEqual(pieces(picker.pick("a", bits("11"), 8, 0.0)), [1])

    def test_late_deadline_asks_a_second_peer(self) -> None:
        """Once its deadline has passed, a deadline piece's requested blocks
        are asked of a second peer too, never of a third."""
        picker = setup_picker("19")
        picker.set_deadline(0, 5.0)
        self.assertEqual(len(picker.pick("a", bits("11"), 4, 0.0)), 4)
        self.assertEqual(pieces(picker.pick("b", bits("11"), 4, 1.0)), [1], "not late yet")
        picker.pick("b", bits("11"), 0, 1.0)
        late = picker.pick("c", bits("11"), 4, 6.0)
        self.assertEqual(late, [(0, i * BS, BS) for i in range(4)])
        self.assertNotIn(0, pieces(picker.pick("d", bits("11"), 4, 7.0)), "two peers a block")
        self.assertEqual(sorted(picker.block_received("c", 0, 0)), ["a"], "a gets a CANCEL")

    def test_deadline_needs_the_piece(self) -> None:
        """A peer without the deadline piece is given other pieces."""
        picker = setup_picker("19")
        picker.set_deadline(1, 1.0)
        self.assertEqual(pieces(picker.pick("x", bits("10"), 4, 0.0)), [0])

    def test_cleared_and_passed(self) -> None:
        """Clearing a deadline, or passing its piece, ends its precedence."""
        picker = setup_picker("199")
        picker.set_deadline(1, 1.0)
        picker.set_deadline(2, 2.0)
        picker.clear_deadline(1)
        picker.piece_passed(2)
        picker.set_deadline(2, 0.5)  # had already: ignored
        self.assertEqual(pieces(picker.pick("x", bits("111"), 8, 0.0)), [0, 1])

    def test_due_free_blocks(self) -> None:
        """A piece due by now with a block nobody was asked for, that the peer
        has (and allows), counts; one not due yet, all asked, had, or of
        priority 0 does not."""
        picker = setup_picker("1111", priority="1110")
        self.assertFalse(picker.has_due_free_blocks(bits("1111"), 9.0), "no deadline")
        picker.set_deadline(1, 5.0)
        self.assertFalse(picker.has_due_free_blocks(bits("1111"), 4.0), "not due yet")
        self.assertTrue(picker.has_due_free_blocks(bits("1111"), 5.0))
        self.assertFalse(picker.has_due_free_blocks(bits("1011"), 5.0), "the peer lacks it")
        self.assertFalse(picker.has_due_free_blocks(bits("1111"), 5.0, allowed_fast={2}))
        self.assertTrue(picker.has_due_free_blocks(bits("1111"), 5.0, allowed_fast={1}))
        picker.pick("a", bits("1111"), 3, 5.0)  # three of its four blocks
        self.assertTrue(picker.has_due_free_blocks(bits("1111"), 5.0))
        picker.pick("a", bits("1111"), 1, 5.0)
        self.assertFalse(picker.has_due_free_blocks(bits("1111"), 9.0), "every block asked")
        picker.set_deadline(3, 1.0)
        self.assertFalse(picker.has_due_free_blocks(bits("1111"), 9.0), "priority 0")
        picker.set_deadline(2, 1.0)
        picker.piece_passed(2)
        self.assertFalse(picker.has_due_free_blocks(bits("1111"), 9.0), "had")

    def test_deadline_priority_zero(self) -> None:
        """A deadline does not override priority 0."""
        picker = setup_picker("11", priority="01")
        picker.set_deadline(0, 1.0)
        self.assertEqual(pieces(picker.pick("x", bits("11"), 8, 0.0)), [1])


class AllowedFastTests(SynchronousTestCase):
    """A peer choking us serves only its allowed-fast pieces (BEP 6)."""

    def test_choked(self) -> None:
        """Only allowed-fast pieces the peer has are picked while it chokes us."""
        picker = setup_picker("1222")
        got = picker.pick("x", bits("1110"), 12, 0.0, allowed_fast={2, 3}, peer_choking=True)
        self.assertEqual(pieces(got), [2])

    def test_choked_without_allowed_fast(self) -> None:
        """With no allowed-fast set a choking peer gets nothing."""
        picker = setup_picker("11")
        self.assertEqual(picker.pick("x", bits("11"), 4, 0.0, peer_choking=True), [])
        self.assertEqual(picker.pick("x", bits("11"), 4, 0.0, set(), peer_choking=True), [])

    def test_choked_in_progress(self) -> None:
        """Started pieces outside the allowed-fast set are left for others."""
        picker = setup_picker("1111")
        first = pieces(picker.pick("a", bits("1111"), 1, 0.0))[0]
        other = (first + 1) % 4
        got = picker.pick("a", bits("1111"), 2, 0.0, allowed_fast={other}, peer_choking=True)
        self.assertEqual(pieces(got), [other])

    def test_unchoked_ignores_allowed_fast(self) -> None:
        """Once unchoked, the allowed-fast set does not restrict anything."""
        picker = setup_picker("12")
        got = picker.pick("x", bits("11"), 8, 0.0, allowed_fast={1})
        self.assertEqual(pieces(got), [0, 1])


class EndgameTests(SynchronousTestCase):
    """Asking a second peer for the last blocks."""

    def test_endgame(self) -> None:
        """Once every block is requested, a second peer duplicates them, a third is refused."""
        picker = setup_picker("11", have="10")
        self.assertFalse(picker.is_endgame)
        self.assertEqual(len(picker.pick("a", bits("11"), 4, 0.0)), 4)
        self.assertTrue(picker.is_endgame)
        dup = picker.pick("b", bits("11"), 2, 1.0)
        self.assertEqual(dup, [(1, 0, BS), (1, BS, BS)])
        self.assertEqual(picker.pick("a", bits("11"), 4, 1.0), [])
        self.assertEqual(picker.pick("c", bits("11"), 8, 1.0), [(1, 2 * BS, BS), (1, 3 * BS, BS)])
        self.assertEqual(picker.pick("d", bits("11"), 8, 1.0), [])

    def test_cancels(self) -> None:
        """The first copy of a block names the other peers to cancel; later copies are unwanted."""
        picker = setup_picker("1")
        picker.pick("a", bits("1"), 4, 0.0)
        picker.pick("b", bits("1"), 4, 0.0)
        self.assertEqual(picker.block_received("b", 0, BS), ["a"])
        self.assertFalse(picker.wants_block(0, BS))
        self.assertEqual(picker.block_received("a", 0, BS), [])
        self.assertEqual(picker.requests_of("a"), [(0, 0, BS), (0, 2 * BS, BS), (0, 3 * BS, BS)])
        self.assertEqual(picker.requests_of("b"), [(0, 0, BS), (0, 2 * BS, BS), (0, 3 * BS, BS)])

    def test_block_arrived(self) -> None:
        """block_arrived is wants_block and block_received in one: None for an
        unwanted block (nothing changes), else the peers to cancel."""
        picker = setup_picker("1")
        picker.pick("a", bits("1"), 4, 0.0)
        picker.pick("b", bits("1"), 4, 0.0)
        self.assertIsNone(picker.block_arrived("a", 0, 7))  # not a block boundary
        self.assertIsNone(picker.block_arrived("a", 0, 99 * BS))  # past the piece
        self.assertIsNone(picker.block_arrived("a", 5, 0))  # no such piece in progress
        self.assertEqual(picker.block_arrived("b", 0, BS), ["a"])
        self.assertIsNone(picker.block_arrived("a", 0, BS))  # the late duplicate
        self.assertEqual(states(picker), "r#rr")
        self.assertEqual(picker.requests_of("a"), [(0, 0, BS), (0, 2 * BS, BS), (0, 3 * BS, BS)])
        for begin in (0, 2 * BS, 3 * BS):
            self.assertEqual(picker.block_arrived("a", 0, begin), ["b"])
        self.assertTrue(picker.piece_complete(0))
        check_invariants(self, picker)

    def test_not_endgame_while_free(self) -> None:
        """A free wanted block anywhere, or nothing in flight, is not endgame."""
        picker = setup_picker("10")
        picker.pick("a", bits("10"), 4, 0.0)
        self.assertFalse(picker.is_endgame)  # piece 1 is wanted, though nobody has it
        self.assertEqual(picker.pick("b", bits("10"), 4, 0.0), [])
        done = setup_picker("1", have="1")
        self.assertFalse(done.is_endgame)

    def test_endgame_request_failed(self) -> None:
        """A duplicate request that fails leaves the block with its other requester."""
        picker = setup_picker("1")
        picker.pick("a", bits("1"), 4, 0.0)
        picker.pick("b", bits("1"), 1, 0.0)
        picker.request_failed("b", 0, 0)
        self.assertEqual(states(picker), "rrrr")
        picker.peer_gone("a")
        self.assertEqual(states(picker), "....")

    def test_endgame_remembers_a_dry_peer(self) -> None:
        """A peer endgame found nothing for is not walked again until there
        may be room: a request dropped, or a piece more on the peer."""
        picker = setup_picker("11", have="00")
        picker.pick("a", bits("11"), 8, 0.0)
        picker.pick("b", bits("11"), 8, 0.0)  # every block has two requesters
        walks = []
        duplicate = picker._duplicate

        def counting(*args: Any) -> int:
            walks.append(1)
            return duplicate(*args)

        picker._duplicate = counting  # type: ignore[method-assign]
        self.assertEqual(picker.pick("c", bits("11"), 4, 0.0), [])
        self.assertEqual(len(walks), 2)
        picker.block_arrived("a", 0, 0)  # a block arriving makes no room
        self.assertEqual(picker.pick("c", bits("11"), 4, 0.0), [])
        self.assertEqual(len(walks), 2)
        picker.request_failed("b", 1, BS)  # a REJECT does
        self.assertEqual(picker.pick("c", bits("11"), 4, 0.0), [(1, BS, BS)])
        check_invariants(self, picker)
        self.assertEqual(picker.pick("d", bits("01"), 4, 0.0), [])
        walks.clear()
        self.assertEqual(picker.pick("d", bits("01"), 4, 0.0), [])
        self.assertEqual(walks, [])
        picker.request_failed("a", 1, 0)
        self.assertEqual(picker.pick("d", bits("01"), 4, 0.0), [(1, 0, BS)])
        picker.peer_gone("d")
        self.assertNotIn("d", picker._endgame_dry)


def check_invariants(test: SynchronousTestCase, picker: PiecePicker[str]) -> None:
    """Every internal index agrees with the per-block state it summarises."""
    p = picker
    in_flight = set()
    for index, piece in p._progress.items():
        state = bytes(piece.state)
        test.assertEqual(piece.free, state.count(0))
        test.assertEqual(piece.received, state.count(2))
        test.assertNotIn(0, state[: piece.cursor])
        test.assertEqual({b for b, s in enumerate(state) if s == 1}, set(piece.requests))
        for block, requesters in piece.requests.items():
            test.assertTrue(requesters)
            for peer in requesters:
                in_flight.add((peer, index * p._blocks_per_piece + block))
    mine = {(peer, n) for peer, numbers in p._peer_requests.items() for n in numbers}
    test.assertEqual(mine, in_flight)
    test.assertEqual(list(p._open), [i for i in p._open if p._progress[i].free])
    test.assertEqual(set(p._open), {i for i, piece in p._progress.items() if piece.free})
    wanted = [i for i in range(p.piece_count) if i not in p._have and p._priority[i] > 0]
    test.assertEqual(p.wanted_left(), len(wanted))
    candidates = {i for i in wanted if i not in p._progress}
    buckets = p._buckets
    test.assertEqual({i for i in range(p.piece_count) if buckets.slot[i] >= 0}, candidates)
    test.assertEqual(buckets.count, len(candidates))
    for priority, level in buckets.levels.items():
        for avail, bucket in enumerate(level):
            for slot, index in enumerate(bucket):
                test.assertEqual((p._priority[index], buckets.avail[index]), (priority, avail))
                test.assertEqual(buckets.slot[index], slot)
    for index in range(p.piece_count):
        partial = sum(index in has for has in p._peers.values())
        test.assertEqual(p.availability(index), partial + len(p._seeds))


class InvariantTests(SynchronousTestCase):
    """Random sequences of events keep the picker's indexes consistent."""

    def test_random_events(self) -> None:
        """Thousands of seeded random events, the invariants checked after each."""
        for seed in range(8):
            self.run_events(random.Random(seed), 500)

    def run_events(self, rng: random.Random, steps: int) -> None:
        """Feed ``steps`` random events to a fresh 12-piece picker with a short last piece."""
        picker: PiecePicker[str] = PiecePicker(3 * BS, 12 * 3 * BS - 5000, rng)
        n, names = picker.piece_count, "abcd"
        has: dict[str, Bitfield] = {}
        for step in range(steps):
            peer, index = rng.choice(names), rng.randrange(n)
            action = rng.randrange(12)
            if action == 0:
                has[peer] = Bitfield.from_indexes(rng.sample(range(n), rng.randrange(n + 1)), n)
                picker.peer_bitfield(peer, has[peer])
            elif action == 1 and peer in has:
                has[peer].add(index)
                picker.peer_have(peer, index)
            elif action == 2:
                picker.peer_gone(peer)
                has.pop(peer, None)
            elif action in (3, 4, 5) and peer in has:
                choking = rng.random() < 0.2
                fast = {index} if choking else None
                got = picker.pick(peer, has[peer], rng.randrange(1, 6), step, fast, choking)
                for i, _, _ in got:
                    self.assertIn(i, has[peer])
                    self.assertNotIn(i, picker.have)
                    self.assertTrue(picker._priority[i])
                    self.assertTrue(not choking or i == index)
                self.assertEqual(len(set(got)), len(got))
            elif action in (6, 7):
                flights = [(k, r) for k in names for r in picker.requests_of(k)]
                if flights:
                    who, (i, begin, _) = rng.choice(flights)
                    if rng.random() < 0.8:
                        picker.block_received(who, i, begin)
                    else:
                        picker.request_failed(who, i, begin)
                    if picker.piece_complete(i):
                        if rng.random() < 0.8:
                            picker.piece_passed(i)
                        else:
                            picker.piece_failed(i)
            elif action == 8:
                picker.timed_out(step, 40)
            elif action == 9:
                picker.set_piece_priority(index, rng.randrange(3))
            elif action == 10:
                picker.set_deadline(index, rng.random())
            elif action == 11 and rng.random() < 0.1:
                picker.set_piece_priorities([rng.randrange(3) for _ in range(n)])
            check_invariants(self, picker)
