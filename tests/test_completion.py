"""Tests for txbittorrent.core.transfer.completion.

Have sets and priorities are strings with one character per piece or file,
piece 0 first, in the spirit of tests/test_picker.py.  Most tests use
``LAYOUT``, built from a torrent with an empty file and a pad file:

    byte    0         10          22                         48                68
    file    |-- a 0 --|--- b 2 ---|--------- pad 3 ---------|------- c 4 ------|
    piece   |------- 0 ------|------- 1 ------|------- 2 ------|------- 3 ------|-4-|

File 1 (e) is empty and sits at byte 10.  Piece 0 spans files a and b, piece 1
file b and the pad file, piece 2 only the pad file (so its priority is always
0), pieces 3 and 4 file c; piece 4 is 4 bytes, the others 16.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import encode
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import Layout
from txbittorrent.core.metainfo import parse
from txbittorrent.core.transfer.completion import (
    BitfieldView,
    Completion,
    CompletionEvent,
    HaveReplaced,
    PieceFailed,
    PiecePassed,
    PrioritiesChanged,
)
from txbittorrent.errors import LocalProtocolError


def _torrent_layout() -> Layout:
    """``LAYOUT``, through a parsed torrent as the client builds it."""
    files = [
        {b"length": 10, b"path": [b"a"]},
        {b"length": 0, b"path": [b"e"]},
        {b"length": 12, b"path": [b"b"]},
        {b"length": 26, b"path": [b".pad", b"26"], b"attr": b"p"},
        {b"length": 20, b"path": [b"c"]},
    ]
    info = {
        b"name": b"t",
        b"piece length": 16,
        b"files": files,
        b"pieces": hashlib.sha1(b"").digest() * 5,
    }
    return Layout.from_metainfo(parse(encode({b"info": info})))


LAYOUT = _torrent_layout()


def bits(pattern: str) -> Bitfield:
    """A bitfield from a string of 0 and 1, piece 0 first."""
    return Bitfield.from_indexes([i for i, c in enumerate(pattern) if c == "1"], len(pattern))


def digits(pattern: str) -> list[int]:
    """Priorities from a string of digits, one per file."""
    return [int(c) for c in pattern]


def make(files: str = "11111", have: str = "") -> Completion:
    """A completion over ``LAYOUT`` with these file priorities and have set."""
    return Completion(LAYOUT, digits(files), bits(have) if have else None)


def recorded(completion: Completion) -> list[CompletionEvent]:
    """A list that fills with every event ``completion`` tells."""
    events: list[CompletionEvent] = []
    completion.add_listener(events.append)
    return events


class ConstructionTests(SynchronousTestCase):
    """A new model starts from the layout, priorities and have set given."""

    def test_defaults(self) -> None:
        """Every file at priority 1, no piece verified: all but the pad-only piece wanted."""
        completion = Completion(LAYOUT)
        self.assertEqual(completion.piece_count, 5)
        self.assertEqual(completion.file_priorities, (1, 1, 1, 1, 1))
        self.assertEqual(completion.piece_priorities, (1, 1, 0, 1, 1))
        self.assertEqual(completion.have.to_string(), "00000")
        self.assertEqual(completion.wanted().to_string(), "11011")
        self.assertEqual(completion.missing_wanted, 4)
        self.assertEqual((completion.left, completion.left_wanted), (68, 52))
        self.assertEqual((completion.wanted_size, completion.have_bytes), (52, 0))
        self.assertFalse(completion.complete)
        self.assertFalse(completion.seed)

    def test_initial_state(self) -> None:
        """Initial priorities and have set are taken into account."""
        completion = make("21001", "10001")
        self.assertEqual(completion.piece_priorities, (2, 0, 0, 1, 1))
        self.assertEqual(completion.wanted().to_string(), "00010")
        self.assertEqual(completion.missing_wanted, 1)
        self.assertEqual((completion.have_bytes, completion.left), (20, 48))
        self.assertEqual((completion.wanted_size, completion.left_wanted), (36, 16))

    def test_piece_priorities_match_layout(self) -> None:
        """A piece's priority is the highest of its non-pad files, as the layout says."""
        for files in ("00000", "10000", "00100", "30201", "01090", "12345"):
            completion = make(files)
            expected = tuple(LAYOUT.piece_priorities(digits(files)))
            self.assertEqual(completion.piece_priorities, expected, files)

    def test_have_copied(self) -> None:
        """Changing the bitfield given afterwards does not change the model."""
        have = bits("10000")
        completion = Completion(LAYOUT, have=have)
        have.add(3)
        self.assertEqual(completion.have.to_string(), "10000")

    def test_bad_arguments(self) -> None:
        """A have set of the wrong size, or priorities of the wrong count or sign, are refused."""
        self.assertRaises(ValueError, Completion, LAYOUT, have=bits("1000"))
        self.assertRaises(ValueError, Completion, LAYOUT, [1, 1, 1, 1])
        self.assertRaises(ValueError, Completion, LAYOUT, [1, 1, -1, 1, 1])

    def test_empty_torrent(self) -> None:
        """With no pieces there is nothing to want: complete and seed at once."""
        completion = Completion(Layout([0], 16))
        self.assertEqual(completion.piece_count, 0)
        self.assertTrue(completion.complete)
        self.assertTrue(completion.seed)
        self.assertEqual((completion.left, completion.wanted_size), (0, 0))

    def test_nothing_wanted(self) -> None:
        """Every file skipped: complete (nothing wanted) but not a seed."""
        completion = make("00000")
        self.assertTrue(completion.complete)
        self.assertFalse(completion.seed)
        self.assertEqual((completion.wanted_size, completion.left), (0, 68))


class PassedFailedTests(SynchronousTestCase):
    """passed and failed change one piece and keep every total right."""

    def test_passed(self) -> None:
        """A piece passes once; a second pass changes nothing."""
        completion = make()
        self.assertTrue(completion.passed(0))
        self.assertFalse(completion.passed(0))
        self.assertIn(0, completion.have)
        self.assertFalse(completion.is_wanted(0))
        self.assertEqual(completion.missing_wanted, 3)
        self.assertEqual((completion.have_bytes, completion.left), (16, 52))
        self.assertEqual(completion.left_wanted, 36)

    def test_short_last_piece(self) -> None:
        """The last piece counts its own size, not the piece length."""
        completion = make()
        completion.passed(4)
        self.assertEqual((completion.left, completion.left_wanted), (64, 48))

    def test_unwanted_piece_passes(self) -> None:
        """A piece of priority 0 (checked on disk, or shared) counts in left, not in wanted."""
        completion = make()
        completion.passed(2)
        self.assertEqual(completion.missing_wanted, 4)
        self.assertEqual((completion.left, completion.left_wanted), (52, 52))

    def test_complete_then_seed(self) -> None:
        """Complete once every wanted piece passed; a seed once every piece did."""
        completion = make()
        for index in (0, 1, 3, 4):
            self.assertFalse(completion.complete)
            completion.passed(index)
        self.assertTrue(completion.complete)
        self.assertFalse(completion.seed)
        self.assertEqual(completion.left_wanted, 0)
        completion.passed(2)
        self.assertTrue(completion.seed)
        self.assertEqual(completion.left, 0)

    def test_failed(self) -> None:
        """A verified piece that fails is wanted again; failing an absent one changes nothing."""
        completion = make(have="11111")
        self.assertTrue(completion.failed(3))
        self.assertFalse(completion.failed(3))
        self.assertTrue(completion.is_wanted(3))
        self.assertFalse(completion.complete)
        self.assertFalse(completion.seed)
        self.assertEqual((completion.left, completion.left_wanted), (16, 16))

    def test_index_out_of_range(self) -> None:
        """An index outside 0..piece_count-1 is refused and changes nothing."""
        completion = make()
        events = recorded(completion)
        for index in (-1, 5, 100):
            self.assertRaises(ValueError, completion.passed, index)
            self.assertRaises(ValueError, completion.failed, index)
            self.assertRaises(ValueError, completion.is_wanted, index)
        self.assertEqual((completion.have.count, events), (0, []))


class ReplaceHaveTests(SynchronousTestCase):
    """replace_have sets the whole have set at once."""

    def test_replace(self) -> None:
        """The result says what was added and removed; the totals follow."""
        completion = make(have="11000")
        change = completion.replace_have(bits("01101"))
        self.assertEqual(change, HaveReplaced(frozenset({2, 4}), frozenset({0})))
        self.assertEqual(completion.have.to_string(), "01101")
        self.assertEqual(completion.wanted().to_string(), "10010")
        self.assertEqual(completion.missing_wanted, 2)
        self.assertEqual((completion.left, completion.left_wanted), (32, 32))

    def test_copied(self) -> None:
        """The bitfield given is copied, and another model's view is accepted."""
        have = bits("10000")
        completion = make()
        completion.replace_have(have)
        have.add(1)
        self.assertEqual(completion.have.to_string(), "10000")
        completion.replace_have(make(have="00011").have)
        self.assertEqual(completion.have.to_string(), "00011")

    def test_wrong_size(self) -> None:
        """A bitfield of another piece count is refused."""
        self.assertRaises(ValueError, make().replace_have, bits("111"))


class PriorityTests(SynchronousTestCase):
    """set_file_priorities moves pieces in and out of the wanted set."""

    def test_shared_piece(self) -> None:
        """A piece spanning two files stays wanted while either file is."""
        completion = make()
        self.assertEqual(completion.set_file_priorities(digits("01111")), frozenset())
        self.assertEqual(completion.piece_priorities, (1, 1, 0, 1, 1))
        self.assertEqual(completion.set_file_priorities(digits("00011")), frozenset({0, 1}))
        self.assertEqual(completion.wanted().to_string(), "00011")
        self.assertEqual(completion.set_file_priorities(digits("20011")), frozenset({0}))
        self.assertEqual(completion.piece_priorities, (2, 0, 0, 1, 1))
        self.assertEqual((completion.wanted_size, completion.left_wanted), (36, 36))

    def test_verified_piece(self) -> None:
        """A verified piece never becomes wanted, but counts in wanted_size."""
        completion = make("00000", "10000")
        self.assertEqual(completion.set_file_priorities(digits("10000")), frozenset())
        self.assertEqual((completion.wanted_size, completion.missing_wanted), (16, 0))
        self.assertTrue(completion.complete)

    def test_one_file(self) -> None:
        """set_file_priority changes one file's priority."""
        completion = make()
        self.assertEqual(completion.set_file_priority(4, 0), frozenset({3, 4}))
        self.assertEqual(completion.file_priorities, (1, 1, 1, 1, 0))
        self.assertRaises(ValueError, completion.set_file_priority, 5, 1)
        self.assertRaises(ValueError, completion.set_file_priority, 0, -1)

    def test_pad_file(self) -> None:
        """A pad file's priority makes no piece wanted."""
        completion = make("00000")
        self.assertEqual(completion.set_file_priorities(digits("00010")), frozenset())
        self.assertEqual(completion.piece_priorities, (0, 0, 0, 0, 0))

    def test_bad_priorities(self) -> None:
        """The wrong count, a negative or a non-integer priority is refused; nothing changes."""
        completion = make()
        events = recorded(completion)
        self.assertRaises(ValueError, completion.set_file_priorities, [1, 1])
        self.assertRaises(ValueError, completion.set_file_priorities, [1, 1, 1, 1, -1])
        self.assertRaises(ValueError, completion.set_file_priorities, [1, 1, 1, 1, 1.5])
        self.assertEqual((completion.file_priorities, events), ((1, 1, 1, 1, 1), []))


class ViewTests(SynchronousTestCase):
    """have is a live, read-only view; wanted() and have.copy() are snapshots."""

    def test_live(self) -> None:
        """The view follows later changes; a copy taken before does not."""
        completion = make()
        view, snapshot, wanted = completion.have, completion.have.copy(), completion.wanted()
        completion.passed(1)
        self.assertEqual((1 in view, view.count, len(view), list(view)), (True, 1, 1, [1]))
        self.assertEqual((snapshot.to_string(), wanted.to_string()), ("00000", "11011"))
        self.assertEqual(view.to_bytes(), bits("01000").to_bytes())
        self.assertEqual((view.piece_count, view.complete), (5, False))

    def test_read_only(self) -> None:
        """The view has no way to change the set."""
        view = make().have
        self.assertIsInstance(view, BitfieldView)
        self.assertFalse(hasattr(view, "add") or hasattr(view, "discard"))

    def test_equality(self) -> None:
        """A view equals a bitfield, or a view, of the same pieces."""
        view = make(have="10100").have
        self.assertEqual(view, bits("10100"))
        self.assertEqual(bits("10100"), view)
        self.assertEqual(view, make(have="10100").have)
        self.assertNotEqual(view, bits("10000"))
        self.assertNotEqual(view, "10100")

    def test_out_of_range_membership(self) -> None:
        """Membership of an index outside the torrent is simply false."""
        self.assertNotIn(-1, make(have="11111").have)
        self.assertNotIn(5, make(have="11111").have)


class CountWantedTests(SynchronousTestCase):
    """count_wanted_in: how many wanted pieces a peer has (interest)."""

    def test_count(self) -> None:
        """Only pieces wanted now count, and the count follows changes."""
        completion = make("11100")
        peer = bits("11110")
        self.assertEqual(completion.count_wanted_in(peer), 2)
        completion.passed(0)
        self.assertEqual(completion.count_wanted_in(peer), 1)
        completion.set_file_priorities(digits("11111"))
        self.assertEqual(completion.count_wanted_in(peer), 2)
        completion.failed(0)
        self.assertEqual(completion.count_wanted_in(peer), 3)
        self.assertEqual(completion.count_wanted_in(Bitfield(5)), 0)
        self.assertEqual(make(have="11111").count_wanted_in(peer), 0)

    def test_wrong_size(self) -> None:
        """A peer bitfield of another piece count is refused."""
        self.assertRaises(ValueError, make().count_wanted_in, bits("1"))


class ListenerTests(SynchronousTestCase):
    """Listeners hear of every change, once, after it is made."""

    def test_events(self) -> None:
        """Each kind of change is told as its event."""
        completion = make("10011")
        events = recorded(completion)
        completion.passed(0)
        completion.passed(1)
        completion.failed(0)
        completion.replace_have(bits("00110"))
        completion.set_file_priorities(digits("00111"))
        self.assertEqual(
            events,
            [
                PiecePassed(0, True),
                PiecePassed(1, False),
                PieceFailed(0, True),
                HaveReplaced(frozenset({2, 3}), frozenset({1})),
                PrioritiesChanged((0, 0, 1, 1, 1), frozenset({1}), frozenset({1})),
            ],
        )

    def test_no_change_no_event(self) -> None:
        """A call that changes nothing tells nobody."""
        completion = make(have="10000")
        events = recorded(completion)
        completion.passed(0)
        completion.failed(1)
        completion.replace_have(bits("10000"))
        completion.set_file_priorities(digits("11111"))
        self.assertEqual(events, [])

    def test_priority_change_without_piece_change(self) -> None:
        """New file priorities that move no piece are still told (the files changed)."""
        completion = make("21111")
        events = recorded(completion)
        self.assertEqual(completion.set_file_priorities(digits("22111")), frozenset())
        self.assertEqual(events, [PrioritiesChanged((2, 2, 1, 1, 1), frozenset(), frozenset())])

    def test_sees_new_state(self) -> None:
        """A listener sees the model already updated."""
        completion = make("10000")
        seen: list[tuple[bool, int]] = []
        completion.add_listener(lambda event: seen.append((completion.complete, completion.left)))
        completion.passed(0)
        self.assertEqual(seen, [(True, 52)])

    def test_order_and_removal(self) -> None:
        """Listeners are told in the order added; a removed one is told no more."""
        completion = make()
        calls: list[str] = []

        def first(event: CompletionEvent) -> None:
            calls.append("first")

        def second(event: CompletionEvent) -> None:
            calls.append("second")

        completion.add_listener(first)
        completion.add_listener(second)
        completion.passed(0)
        completion.remove_listener(first)
        completion.passed(1)
        self.assertEqual(calls, ["first", "second", "second"])
        self.assertRaises(ValueError, completion.remove_listener, first)

    def test_no_change_from_listener(self) -> None:
        """A listener that changes the model gets LocalProtocolError; the model stays consistent."""
        completion = make()
        errors: list[Exception] = []

        def meddle(event: CompletionEvent) -> None:
            for change in (
                lambda: completion.passed(3),
                lambda: completion.failed(0),
                lambda: completion.replace_have(Bitfield(5)),
                lambda: completion.set_file_priorities([0] * 5),
            ):
                try:
                    change()
                except LocalProtocolError as e:
                    errors.append(e)

        completion.add_listener(meddle)
        completion.passed(0)
        self.assertEqual(len(errors), 4)
        self.assertEqual((completion.have.to_string(), completion.missing_wanted), ("10000", 3))

    def test_listener_raises(self) -> None:
        """An exception from a listener reaches the caller; the change stands."""
        completion = make()

        def broken(event: CompletionEvent) -> None:
            raise RuntimeError("boom")

        completion.add_listener(broken)
        self.assertRaises(RuntimeError, completion.passed, 0)
        self.assertIn(0, completion.have)
        completion.remove_listener(broken)
        self.assertTrue(completion.passed(1))


# -- a recomputation from scratch, for the state machine -------------------------------


def naive_piece_priorities(
    lengths: Sequence[int], pads: Sequence[bool], piece_length: int, files: Sequence[int]
) -> list[int]:
    """Each piece's priority from byte ranges: the highest of the non-pad files overlapping it."""
    total = sum(lengths)
    count = -(-total // piece_length)
    out = []
    for index in range(count):
        start, stop = index * piece_length, min((index + 1) * piece_length, total)
        best, offset = 0, 0
        for length, pad, priority in zip(lengths, pads, files):
            if length and not pad and offset < stop and offset + length > start:
                best = max(best, priority)
            offset += length
        out.append(best)
    return out


class CompletionMachine(RuleBasedStateMachine):
    """Random changes to a Completion, checked against a model kept as plain sets."""

    def __init__(self) -> None:
        super().__init__()
        self.completion = Completion(Layout([], 1))
        self.lengths: list[int] = []
        self.pads: list[bool] = []
        self.piece_length = 1
        self.have: set[int] = set()
        self.files: list[int] = []
        self.events: list[CompletionEvent] = []
        self.follower_have: set[int] = set()
        self.follower_wanted: set[int] = set()

    @initialize(
        lengths=st.lists(st.integers(0, 40), min_size=1, max_size=5),
        pads=st.lists(st.booleans(), min_size=5, max_size=5),
        piece_length=st.integers(1, 16),
        files=st.lists(st.integers(0, 3), min_size=5, max_size=5),
        have=st.lists(st.booleans(), max_size=200),
    )
    def start(
        self,
        lengths: list[int],
        pads: list[bool],
        piece_length: int,
        files: list[int],
        have: list[bool],
    ) -> None:
        self.lengths, self.pads = lengths, pads[: len(lengths)]
        self.piece_length = piece_length
        layout = Layout(self.lengths, piece_length, self.pads)
        self.files = files[: len(lengths)]
        self.have = {i for i, flag in enumerate(have[: layout.piece_count]) if flag}
        initial = Bitfield.from_indexes(self.have, layout.piece_count)
        self.completion = Completion(layout, self.files, initial)
        self.completion.add_listener(self.heard)
        self.follower_have = set(self.have)
        self.follower_wanted = self.naive_wanted()

    # -- the model ------------------------------------------------------------------

    def naive_priorities(self, files: Sequence[int] | None = None) -> list[int]:
        return naive_piece_priorities(
            self.lengths, self.pads, self.piece_length, self.files if files is None else files
        )

    def naive_wanted(self) -> set[int]:
        return {i for i, p in enumerate(self.naive_priorities()) if p > 0 and i not in self.have}

    def size(self, index: int) -> int:
        return min(self.piece_length, sum(self.lengths) - index * self.piece_length)

    def heard(self, event: CompletionEvent) -> None:
        """A listener that follows the have and wanted sets from the events alone."""
        self.events.append(event)
        if isinstance(event, PiecePassed):
            self.follower_have.add(event.piece_index)
            if event.wanted:
                self.follower_wanted.remove(event.piece_index)
        elif isinstance(event, PieceFailed):
            self.follower_have.remove(event.piece_index)
            if event.wanted:
                self.follower_wanted.add(event.piece_index)
        elif isinstance(event, HaveReplaced):
            self.follower_have |= event.added
            self.follower_have -= event.removed
            self.follower_wanted -= event.added
            priorities = self.completion.piece_priorities
            self.follower_wanted |= {i for i in event.removed if priorities[i] > 0}
        else:
            self.follower_wanted ^= event.wanted_changed

    def expect_events(self, expected: list[CompletionEvent]) -> None:
        assert self.events == expected, (self.events, expected)
        self.events.clear()

    # -- rules ----------------------------------------------------------------------

    @precondition(lambda self: self.completion.piece_count > 0)
    @rule(index=st.integers(0, 10_000))
    def passed(self, index: int) -> None:
        index %= self.completion.piece_count
        new = index not in self.have
        assert self.completion.passed(index) == new
        self.have.add(index)
        wanted = self.naive_priorities()[index] > 0
        self.expect_events([PiecePassed(index, wanted)] if new else [])

    @precondition(lambda self: self.completion.piece_count > 0)
    @rule(index=st.integers(0, 10_000))
    def failed(self, index: int) -> None:
        index %= self.completion.piece_count
        had = index in self.have
        assert self.completion.failed(index) == had
        self.have.discard(index)
        wanted = self.naive_priorities()[index] > 0
        self.expect_events([PieceFailed(index, wanted)] if had else [])

    @rule(index=st.integers(-3, 3))
    def out_of_range(self, index: int) -> None:
        if index >= 0:
            index += self.completion.piece_count
        for method in (self.completion.passed, self.completion.failed, self.completion.is_wanted):
            try:
                method(index)
            except ValueError:
                pass
            else:
                raise AssertionError(f"{method.__name__}({index}) accepted")
        self.expect_events([])

    @rule(flags=st.lists(st.booleans(), max_size=200))
    def replace_have(self, flags: list[bool]) -> None:
        count = self.completion.piece_count
        new = {i for i, flag in enumerate(flags[:count]) if flag}
        change = HaveReplaced(frozenset(new - self.have), frozenset(self.have - new))
        assert self.completion.replace_have(Bitfield.from_indexes(new, count)) == change
        self.have = new
        self.expect_events([change] if change.added or change.removed else [])

    @rule(files=st.lists(st.integers(0, 3), min_size=5, max_size=5))
    def set_file_priorities(self, files: list[int]) -> None:
        files = files[: len(self.lengths)]
        before, after = self.naive_priorities(), self.naive_priorities(files)
        reprioritised = frozenset(i for i, (b, a) in enumerate(zip(before, after)) if b != a)
        changed = frozenset(
            i for i in reprioritised if (before[i] > 0) != (after[i] > 0) and i not in self.have
        )
        assert self.completion.set_file_priorities(files) == changed
        events: list[CompletionEvent] = []
        if files != self.files:
            events.append(PrioritiesChanged(tuple(files), reprioritised, changed))
        self.files = files
        self.expect_events(events)

    # -- the invariant --------------------------------------------------------------

    @invariant()
    def matches_recomputation(self) -> None:
        completion, count = self.completion, self.completion.piece_count
        priorities = self.naive_priorities()
        wanted = self.naive_wanted()
        total = sum(self.lengths)
        assert completion.file_priorities == tuple(self.files)
        assert completion.piece_priorities == tuple(priorities)
        assert set(completion.have) == self.have
        assert set(completion.wanted()) == wanted
        assert all(completion.is_wanted(i) == (i in wanted) for i in range(count))
        assert completion.missing_wanted == len(wanted)
        assert completion.have_bytes == sum(self.size(i) for i in self.have)
        assert completion.left == total - sum(self.size(i) for i in self.have)
        assert completion.left_wanted == sum(self.size(i) for i in wanted)
        assert completion.wanted_size == sum(
            self.size(i) for i, p in enumerate(priorities) if p > 0
        )
        assert completion.complete == (not wanted)
        assert completion.seed == (len(self.have) == count)
        peer = Bitfield.from_indexes(range(0, count, 2), count)
        assert completion.count_wanted_in(peer) == len(wanted & set(peer))
        assert (self.follower_have, self.follower_wanted) == (self.have, wanted)


class CompletionStateTests(SynchronousTestCase):
    """Under any sequence of changes the model equals a recomputation from scratch."""

    def test_state_machine(self) -> None:
        """Random passes, failures, replacements and priorities keep every derived value right,
        and listeners hear exactly the changes."""
        run_state_machine_as_test(
            CompletionMachine,
            settings=settings(max_examples=150, stateful_step_count=40, deadline=None),
        )
