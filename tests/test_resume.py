"""Tests for txbittorrent.core.resume: the record codec and the resume plan."""

from __future__ import annotations

import ast
import pathlib

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core import resume
from txbittorrent.core.bencoding import decode, encode
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import Layout
from txbittorrent.core.resume import (
    ResumePlan,
    ResumeRecord,
    decode_record,
    encode_record,
    make_record,
    plan_resume,
)
from txbittorrent.errors import ResumeDataError

HASH = bytes(range(20))
OTHER = bytes(range(1, 21))

# Three files of 10, 0 and 14 bytes in pieces of 8: 24 bytes, pieces 0..2.
# piece 0 = file 0 [0:8]; piece 1 = file 0 [8:10] + file 2 [0:6]; piece 2 = file 2 [6:14].
LAYOUT = Layout([10, 0, 14], 8)
STATS: tuple[tuple[int, int] | None, ...] = ((10, 1000), None, (14, 2000))


def record(**changes: object) -> ResumeRecord:
    """A clean record claiming every piece of LAYOUT, with ``changes`` applied."""
    fields: dict[str, object] = dict(
        version=1,
        info_hash=HASH,
        have=Bitfield.full(3).to_bytes(),
        piece_cache={},
        files=STATS,
        part=None,
        clean=True,
        priorities=(),
    )
    fields.update(changes)
    return ResumeRecord(**fields)  # type: ignore[arg-type]


def tamper(raw: bytes, **changes: object) -> bytes:
    """Re-encode the bencoded record ``raw`` with top-level keys replaced."""
    top = decode(raw)
    for key, value in changes.items():
        bkey = key.replace("_", "-").encode()
        if value is None:
            top.pop(bkey, None)
        else:
            top[bkey] = value
    return encode(top)


class CoreImportTests(SynchronousTestCase):
    """The module stays sans-I/O."""

    def test_no_twisted(self) -> None:
        """resume.py imports nothing from twisted, treq, os or io."""
        tree = ast.parse(pathlib.Path(resume.__file__).read_text())
        names = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names.update(a.name.split(".")[0] for a in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module:
                names.add(node.module.split(".")[0])
        self.assertFalse(names & {"twisted", "treq", "os", "io", "time", "socket"})


class EncodeRecordTests(SynchronousTestCase):
    """encode_record writes the documented bencoding."""

    def test_fixture(self) -> None:
        """A record with every field encodes to the annotated bytes."""
        rec = make_record(
            HASH,
            Bitfield.from_indexes([0, 2], 3),
            {2: 16},
            [(10, 1000), None, (14, 2000)],
            (24, 3000),
            clean=True,
            priorities=[1, 0, 7],
        )
        expected = (
            b"d"
            b"5:clean" b"i1e"                          # bool as an integer
            b"5:files" b"l"                            # one entry per file
            b"li10ei1000ee"                            # (size, mtime_ns)
            b"le"                                      # missing or pad: empty list
            b"li14ei2000ee"
            b"e"
            b"4:have" b"1:\xa0"                        # pieces 0 and 2: 1010 0000
            b"9:info-hash" b"20:" + HASH +
            b"4:part" b"li24ei3000ee"                  # part file stat
            b"11:piece-cache" b"l" b"li2ei16ee" b"e"   # piece 2 in slot 16
            b"10:priorities" b"li1ei0ei7ee"
            b"7:version" b"i1e"
            b"e"
        )
        self.assertEqual(encode_record(rec), expected)

    def test_optional_keys_absent(self) -> None:
        """No part file and no priorities leave their keys out."""
        top = decode(encode_record(record()))
        self.assertNotIn(b"part", top)
        self.assertNotIn(b"priorities", top)
        self.assertEqual(top[b"clean"], 1)

    def test_round_trip(self) -> None:
        """decode_record(encode_record(r)) == r for a full record."""
        rec = record(piece_cache={0: 0, 2: 8}, part=(16, -5), clean=False, priorities=(1, 1, 4))
        self.assertEqual(decode_record(encode_record(rec), HASH, 3, 3), rec)

    @given(
        pieces=st.integers(min_value=0, max_value=80).flatmap(
            lambda n: st.tuples(st.just(n), st.sets(st.integers(0, max(n - 1, 0)), max_size=n))
        ),
        files=st.lists(
            st.none() | st.tuples(st.integers(0, 2**63), st.integers(-(2**63), 2**63)),
            max_size=8,
        ),
        part=st.none() | st.tuples(st.integers(0, 2**40), st.integers(0, 2**62)),
        clean=st.booleans(),
        slots=st.lists(st.integers(0, 2**40), unique=True, max_size=10),
    )
    def test_round_trip_property(
        self,
        pieces: tuple[int, set[int]],
        files: list[tuple[int, int] | None],
        part: tuple[int, int] | None,
        clean: bool,
        slots: list[int],
    ) -> None:
        """Any valid record survives encoding and decoding unchanged."""
        count, indexes = pieces
        if count == 0:
            indexes = set()
        cache = dict(zip(sorted(indexes), slots))
        rec = make_record(HASH, Bitfield.from_indexes(indexes, count), cache, files, part, clean)
        self.assertEqual(decode_record(encode_record(rec), HASH, count, len(files)), rec)


class DecodeRecordTests(SynchronousTestCase):
    """decode_record refuses every record it cannot vouch for."""

    def setUp(self) -> None:
        self.raw = encode_record(record(piece_cache={1: 0}, part=(8, 5)))

    def assertRejected(self, raw: bytes, pieces: int = 3, files: int = 3) -> None:
        self.assertRaises(ResumeDataError, decode_record, raw, HASH, pieces, files)

    def test_valid(self) -> None:
        """The unmodified fixture decodes."""
        self.assertEqual(decode_record(self.raw, HASH, 3, 3).piece_cache, {1: 0})

    def test_not_bencoding(self) -> None:
        """Truncated bytes, trailing bytes and garbage are rejected."""
        self.assertRejected(self.raw[:-1])
        self.assertRejected(self.raw + b"x")
        self.assertRejected(b"")
        self.assertRejected(b"not bencoding")

    def test_not_a_dict(self) -> None:
        """A top level that is not a dictionary is rejected."""
        self.assertRejected(b"li1ee")

    def test_unknown_version(self) -> None:
        """Version 2, version 0 and a missing version are rejected."""
        self.assertRejected(tamper(self.raw, version=2))
        self.assertRejected(tamper(self.raw, version=0))
        self.assertRejected(tamper(self.raw, version=None))
        self.assertRejected(tamper(self.raw, version=b"1"))

    def test_other_torrent(self) -> None:
        """A record for another info hash, or a malformed hash, is rejected."""
        self.assertRaises(ResumeDataError, decode_record, self.raw, OTHER, 3, 3)
        self.assertRejected(tamper(self.raw, info_hash=HASH[:19]))
        self.assertRejected(tamper(self.raw, info_hash=5))

    def test_bitfield(self) -> None:
        """A bitfield of the wrong length or with spare bits set is rejected."""
        self.assertRejected(self.raw, pieces=9)
        self.assertRejected(tamper(self.raw, have=b"\xe0\x00"))
        self.assertRejected(tamper(self.raw, have=b"\xf0"))
        self.assertRejected(tamper(self.raw, have=[1]))

    def test_file_count(self) -> None:
        """Too few or too many file entries are rejected."""
        self.assertRejected(self.raw, files=2)
        self.assertRejected(self.raw, files=4)
        self.assertRejected(tamper(self.raw, files=None))

    def test_file_entries(self) -> None:
        """File entries of the wrong shape or a negative size are rejected."""
        for bad in ([1], [1, 2, 3], [b"1", 2], [-1, 2], 7):
            self.assertRejected(tamper(self.raw, files=[[10, 1], [], bad]))

    def test_negative_mtime_accepted(self) -> None:
        """An mtime before 1970 is a real stat result, so it is kept."""
        raw = tamper(self.raw, files=[[10, -1], [], [14, 2]])
        self.assertEqual(decode_record(raw, HASH, 3, 3).files[0], (10, -1))

    def test_piece_cache(self) -> None:
        """Out-of-range or negative indexes, negative or repeated slots are rejected."""
        for bad in (
            [[3, 0]],
            [[-1, 0]],
            [[0, -8]],
            [[0, 0], [0, 8]],
            [[0, 0], [1, 0]],
            [[0]],
            [b"x"],
            b"x",
        ):
            self.assertRejected(tamper(self.raw, piece_cache=bad))

    def test_part(self) -> None:
        """A malformed part stat is rejected; an empty list means no part file."""
        self.assertRejected(tamper(self.raw, part=[-1, 0]))
        self.assertRejected(tamper(self.raw, part=5))
        self.assertIsNone(decode_record(tamper(self.raw, part=[]), HASH, 3, 3).part)

    def test_clean(self) -> None:
        """clean must be 0 or 1."""
        self.assertRejected(tamper(self.raw, clean=2))
        self.assertRejected(tamper(self.raw, clean=-1))
        self.assertRejected(tamper(self.raw, clean=None))
        self.assertFalse(decode_record(tamper(self.raw, clean=0), HASH, 3, 3).clean)

    def test_priorities(self) -> None:
        """Priorities must be one non-negative integer per file."""
        self.assertRejected(tamper(self.raw, priorities=[1, 1]))
        self.assertRejected(tamper(self.raw, priorities=[1, 1, -1]))
        self.assertRejected(tamper(self.raw, priorities=[1, 1, b"1"]))
        raw = tamper(self.raw, priorities=[1, 0, 4])
        self.assertEqual(decode_record(raw, HASH, 3, 3).priorities, (1, 0, 4))

    def test_unknown_keys_ignored(self) -> None:
        """Extra keys from a later minor revision are ignored."""
        raw = tamper(self.raw, future=b"stuff")
        self.assertEqual(decode_record(raw, HASH, 3, 3), decode_record(self.raw, HASH, 3, 3))


class PlanResumeTests(SynchronousTestCase):
    """plan_resume trusts a record only where the disk still agrees with it."""

    def plan(
        self,
        rec: ResumeRecord | None,
        files: tuple[tuple[int, int] | None, ...] = STATS,
        part: tuple[int, int] | None = None,
        layout: Layout = LAYOUT,
    ) -> ResumePlan:
        result = plan_resume(rec, layout, files, part)
        claimed = set() if rec is None else set(Bitfield.from_bytes(rec.have, layout.piece_count))
        # The invariant: never trust more than the record claims, never both.
        self.assertLessEqual(set(result.have), claimed)
        self.assertFalse(set(result.have) & result.recheck)
        if rec is None or not rec.clean:
            self.assertEqual(result.have.count, 0)
        return result

    def assertPlan(self, result: ResumePlan, have: str, recheck: set[int]) -> None:
        self.assertEqual((result.have.to_string(), set(result.recheck)), (have, recheck))

    def test_no_record_full_check(self) -> None:
        """Without a record every piece whose files are on disk is rechecked."""
        self.assertPlan(self.plan(None), "000", {0, 1, 2})

    def test_no_record_missing_file(self) -> None:
        """Without a record, pieces of a missing file are not worth reading."""
        self.assertPlan(self.plan(None, files=((10, 1), None, None)), "000", {0})

    def test_no_record_short_file(self) -> None:
        """A file too short to hold a piece's bytes leaves that piece out."""
        self.assertPlan(self.plan(None, files=((9, 1), None, (14, 1))), "000", {0, 2})

    def test_no_record_pad_files(self) -> None:
        """Pad files need not exist on disk."""
        layout = Layout([6, 2, 8], 8, pad=[False, True, False])
        self.assertPlan(self.plan(None, files=((6, 1), None, (8, 1)), layout=layout), "00", {0, 1})

    def test_clean_trusted(self) -> None:
        """A clean record whose stats all match is trusted as is."""
        rec = record(have=Bitfield.from_indexes([0, 2], 3).to_bytes())
        self.assertPlan(self.plan(rec), "101", set())

    def test_unclean_nothing_trusted(self) -> None:
        """After an unclean shutdown every locatable piece is rechecked."""
        self.assertPlan(self.plan(record(clean=False)), "000", {0, 1, 2})

    def test_unclean_uses_slots(self) -> None:
        """After an unclean shutdown, a piece with a slot is looked for in the part file."""
        rec = record(clean=False, piece_cache={2: 0}, part=(8, 9))
        self.assertPlan(self.plan(rec, files=((10, 1), None, None), part=(8, 9)), "000", {0, 2})

    def test_file_changed(self) -> None:
        """A changed size or mtime distrusts and rechecks every piece touching that file."""
        for stat in ((14, 2001), (15, 2000)):
            self.assertPlan(self.plan(record(), files=(STATS[0], None, stat)), "100", {1, 2})
        # Shrunk: piece 2's bytes are past the end, so only piece 1 is worth reading.
        self.assertPlan(self.plan(record(), files=(STATS[0], None, (13, 2000))), "100", {1})

    def test_file_changed_unclaimed(self) -> None:
        """Pieces of a changed file are rechecked even if the record did not claim them."""
        rec = record(have=b"\x00")
        self.assertPlan(self.plan(rec, files=((10, 7), None, STATS[2])), "000", {0, 1})

    def test_file_missing(self) -> None:
        """A vanished file distrusts its pieces, which are not worth rechecking."""
        self.assertPlan(self.plan(record(), files=(None, None, STATS[2])), "001", set())

    def test_file_appeared(self) -> None:
        """A file the record saw missing that is now there gets its pieces rechecked."""
        rec = record(have=Bitfield.from_indexes([0], 3).to_bytes(), files=(STATS[0], None, None))
        self.assertPlan(self.plan(rec), "100", {1, 2})

    def test_claim_beyond_file(self) -> None:
        """A claim the matching stats cannot support (file too short) is not trusted."""
        short = ((4, 1), None, (14, 2000))
        self.assertPlan(self.plan(record(files=short), files=short), "001", set())

    def test_part_unchanged(self) -> None:
        """Slot pieces are trusted while the part file is unchanged."""
        rec = record(piece_cache={1: 0}, part=(8, 50), files=(STATS[0], None, None))
        self.assertPlan(self.plan(rec, files=rec.files, part=(8, 50)), "110", set())

    def test_part_changed(self) -> None:
        """A changed part file distrusts and rechecks the pieces that have slots."""
        rec = record(piece_cache={1: 0}, part=(8, 50), files=(STATS[0], None, None))
        self.assertPlan(self.plan(rec, files=rec.files, part=(8, 51)), "100", {1})

    def test_part_missing(self) -> None:
        """A vanished part file distrusts its pieces; they cannot be found, so no recheck."""
        rec = record(piece_cache={1: 0}, part=(8, 50), files=(STATS[0], None, None))
        self.assertPlan(self.plan(rec, files=rec.files, part=None), "100", set())

    def test_slots_without_part(self) -> None:
        """A record with slots but no part stat is inconsistent: those pieces are rechecked."""
        rec = record(piece_cache={1: 0}, part=None)
        self.assertPlan(self.plan(rec, part=(8, 1)), "101", {1})

    def test_wrong_shapes(self) -> None:
        """Stats or a record of the wrong shape for the layout are refused."""
        self.assertRaises(ValueError, plan_resume, None, LAYOUT, STATS[:2], None)
        short = record(files=STATS[:2])
        self.assertRaises(ResumeDataError, plan_resume, short, LAYOUT, STATS, None)
        self.assertRaises(ResumeDataError, plan_resume, record(have=b"\x01"), LAYOUT, STATS, None)

    @given(
        claimed=st.sets(st.integers(0, 2)),
        disk=st.tuples(*(st.none() | st.tuples(st.integers(0, 20), st.integers(0, 3)),) * 3),
        saved=st.tuples(*(st.none() | st.tuples(st.integers(0, 20), st.integers(0, 3)),) * 3),
        clean=st.booleans(),
    )
    def test_never_more_than_claimed(
        self,
        claimed: set[int],
        disk: tuple[tuple[int, int] | None, ...],
        saved: tuple[tuple[int, int] | None, ...],
        clean: bool,
    ) -> None:
        """For any record and disk, trusted pieces are claimed and have matching stats."""
        rec = record(have=Bitfield.from_indexes(claimed, 3).to_bytes(), files=saved, clean=clean)
        result = self.plan(rec, files=disk)
        for index in result.have:
            for f in LAYOUT.files_of_piece(index):
                self.assertEqual(disk[f], saved[f])
