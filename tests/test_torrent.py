"""Tests for the Torrent facade: accessors, hashcheck, priorities and resume."""

from __future__ import annotations

import os

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.errors import LocalProtocolError, MetainfoError
from txbittorrent.testing import make_files
from txbittorrent.torrent import Torrent

PIECE = 16 * 1024


def make_data(root: str) -> dict[str, bytes]:
    """Three files under root/data whose pieces straddle file boundaries."""
    sizes = {"a.bin": PIECE * 3 + 100, "sub/b.bin": PIECE + 5, "sub/c.bin": PIECE * 2}
    return make_files(os.path.join(root, "data"), sizes, seed=7)


class TorrentTests(TestCase):
    """A Torrent over real files, driven on the real reactor (disk work is threaded)."""

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.files = make_data(self.root)
        self.raw = create_torrent(os.path.join(self.root, "data"), piece_length=PIECE)
        self.metainfo = parse(self.raw)
        self.passed: list[int] = []
        self.failed: list[int] = []

    def torrent(self, basedir: str | None = None, **kwargs: object) -> Torrent:
        t = Torrent(
            self.raw,
            basedir=basedir or self.root,
            on_hash_pass=self.passed.append,
            on_hash_fail=self.failed.append,
            reactor=reactor,
            **kwargs,  # type: ignore[arg-type]
        )
        self.addCleanup(t.close)
        return t

    def flip_byte(self, name: str, offset: int) -> None:
        with open(os.path.join(self.root, "data", *name.split("/")), "r+b") as f:
            f.seek(offset)
            byte = f.read(1)
            f.seek(offset)
            f.write(bytes([byte[0] ^ 1]))

    def test_accessors(self) -> None:
        """The accessors describe the torrent before anything touches the disk."""
        t = self.torrent()
        self.assertEqual(t.infohash, self.metainfo.info_hash)
        self.assertEqual(t.name, "data")
        self.assertEqual(t.size, sum(len(d) for d in self.files.values()))
        self.assertEqual(t.piece_length, PIECE)
        self.assertEqual(t.piece_count, self.metainfo.piece_count)
        self.assertEqual(t.bitfield.count, 0)
        self.assertEqual(t.left, t.size)
        self.assertFalse(t.complete)
        self.assertFalse(t.seed)
        self.assertEqual(
            [(f.path, f.length, f.priority) for f in t.files()],
            [
                (os.path.join("data", "a.bin"), PIECE * 3 + 100, 1),
                (os.path.join("data", "sub", "b.bin"), PIECE + 5, 1),
                (os.path.join("data", "sub", "c.bin"), PIECE * 2, 1),
            ],
        )

    def test_path_or_bytes(self) -> None:
        """The torrent may be given as a file path; a missing one is a MetainfoError."""
        path = os.path.join(self.root, "x.torrent")
        with open(path, "wb") as f:
            f.write(self.raw)
        t = Torrent(path, basedir=self.root)
        self.assertEqual(t.infohash, self.metainfo.info_hash)
        self.assertRaises(MetainfoError, Torrent, path + ".nope", basedir=self.root)

    def test_constructor_is_quiet(self) -> None:
        """Constructing a Torrent writes nothing and starts no threads."""
        before = sorted(os.listdir(self.root))
        t = Torrent(self.raw, basedir=self.root, reactor=reactor)
        self.assertEqual(sorted(os.listdir(self.root)), before)
        self.assertIsNone(t._store)
        self.assertEqual(t.state, "stopped")

    @inlineCallbacks
    def test_hashcheck_complete(self) -> None:
        """A full check of intact data passes every piece, in the callbacks too."""
        t = self.torrent()
        bitfield = yield t.hashcheck()
        self.assertTrue(bitfield.complete)
        self.assertEqual(sorted(self.passed), list(range(t.piece_count)))
        self.assertEqual(self.failed, [])
        self.assertTrue(t.complete)
        self.assertTrue(t.seed)
        self.assertEqual(t.left, 0)

    @inlineCallbacks
    def test_hashcheck_damaged_and_missing(self) -> None:
        """A flipped byte fails its piece; a missing file fails its pieces."""
        self.flip_byte("a.bin", PIECE + 7)
        os.remove(os.path.join(self.root, "data", "sub", "c.bin"))
        t = self.torrent()
        progress: list[int] = []
        bitfield = yield t.hashcheck(on_progress=lambda n, total, b, tb: progress.append(n))
        c_pieces = set(t.layout.pieces_of_file(2))
        self.assertEqual(set(self.failed), {1} | c_pieces)
        self.assertEqual(bitfield.count, t.piece_count - 1 - len(c_pieces))
        self.assertEqual(progress[-1], t.piece_count)
        self.assertFalse(t.complete)
        self.assertEqual(
            t.left, sum(t.layout.piece_size(i) for i in {1} | c_pieces)
        )

    @inlineCallbacks
    def test_hashcheck_some(self) -> None:
        """Checking a few indexes touches only those; a failure removes a piece."""
        t = self.torrent()
        yield t.hashcheck()
        self.passed.clear()
        self.flip_byte("sub/c.bin", 3)
        yield t.hashcheck(t.layout.pieces_of_file(2))
        self.assertEqual(sorted(self.passed + self.failed), list(t.layout.pieces_of_file(2)))
        self.assertNotIn(min(t.layout.pieces_of_file(2)), t.bitfield)

    @inlineCallbacks
    def test_priorities(self) -> None:
        """Skipped files' pieces are not wanted; complete counts wanted pieces only."""
        os.remove(os.path.join(self.root, "data", "sub", "c.bin"))
        t = self.torrent()
        yield t.set_priorities([1, 1, 0])
        yield t.hashcheck()
        only_c = [
            p for p in t.layout.pieces_of_file(2) if t.layout.files_of_piece(p) == [2]
        ]
        self.assertTrue(only_c)
        self.assertFalse(any(p in t.wanted for p in only_c))
        self.assertEqual(t.files()[2].priority, 0)
        # The piece shared by b and c is still wanted (b needs it), so not complete.
        self.assertFalse(t.complete)
        yield t.set_file_priority(1, 0)
        self.assertTrue(t.complete)
        self.assertFalse(t.seed)

    @inlineCallbacks
    def test_resume_trusts_clean_record(self) -> None:
        """After a clean close, the next run trusts the record and hashes nothing."""
        resume = os.path.join(self.root, "r.resume")
        t = self.torrent(resume_path=resume)
        yield t.hashcheck()
        yield t.close()
        self.passed.clear()
        t2 = self.torrent(resume_path=resume)
        bitfield = yield t2.load_resume()
        self.assertTrue(bitfield.complete)
        self.assertEqual(self.passed, [])

    @inlineCallbacks
    def test_peek_resume(self) -> None:
        """peek_resume shows what a record vouches for without hashing or
        rewriting it, stays stopped with no store open; a changed file's
        pieces are not claimed; the next load still runs in full."""
        resume = os.path.join(self.root, "r.resume")
        t = self.torrent(resume_path=resume)
        yield t.hashcheck()
        yield t.close()
        with open(resume, "rb") as f:
            record = f.read()
        self.flip_byte("a.bin", 10)
        self.passed.clear()
        t2 = self.torrent(resume_path=resume)
        bitfield = yield t2.peek_resume()
        self.assertEqual(self.passed + self.failed, [])
        self.assertEqual(set(t2.layout.pieces_of_file(0)) & set(bitfield), set())
        self.assertEqual(bitfield.count, t2.piece_count - len(list(t2.layout.pieces_of_file(0))))
        self.assertEqual(t2.bitfield, bitfield)
        self.assertEqual(t2.state, "stopped")
        self.assertIsNone(t2._store)
        with open(resume, "rb") as f:
            self.assertEqual(f.read(), record)
        bitfield = yield t2.load_resume()
        self.assertEqual(self.failed, [0])
        self.assertEqual(bitfield.count, t2.piece_count - 1)

    @inlineCallbacks
    def test_peek_resume_without_record(self) -> None:
        """No record: peek_resume claims nothing and writes nothing."""
        resume = os.path.join(self.root, "r.resume")
        t = self.torrent(resume_path=resume)
        bitfield = yield t.peek_resume()
        self.assertEqual(bitfield.count, 0)
        self.assertFalse(os.path.exists(resume))

    @inlineCallbacks
    def test_resume_rechecks_changed_file(self) -> None:
        """A file changed since the record was written has its pieces re-verified."""
        resume = os.path.join(self.root, "r.resume")
        t = self.torrent(resume_path=resume)
        yield t.hashcheck()
        yield t.close()
        self.flip_byte("a.bin", 10)
        self.passed.clear()
        t2 = self.torrent(resume_path=resume)
        bitfield = yield t2.load_resume()
        self.assertEqual(self.failed, [0])
        self.assertEqual(sorted(self.passed), list(t2.layout.pieces_of_file(0))[1:])
        self.assertNotIn(0, bitfield)
        self.assertEqual(bitfield.count, t2.piece_count - 1)

    @inlineCallbacks
    def test_resume_unclean_rechecks(self) -> None:
        """A run that never closed leaves an unclean record: everything is re-verified."""
        resume = os.path.join(self.root, "r.resume")
        t = self.torrent(resume_path=resume)
        yield t.load_resume()  # nothing trusted: a full check, then an unclean record
        self.assertTrue(t.seed)
        self.passed.clear()
        t2 = self.torrent(resume_path=resume)
        bitfield = yield t2.load_resume()
        self.assertTrue(bitfield.complete)
        self.assertEqual(sorted(self.passed), list(range(t2.piece_count)))

    @inlineCallbacks
    def test_resume_corrupt_record(self) -> None:
        """A corrupt record counts as none: a full check, and no error."""
        resume = os.path.join(self.root, "r.resume")
        with open(resume, "wb") as f:
            f.write(b"d7:versioni1e4:have")
        t = self.torrent(resume_path=resume)
        bitfield = yield t.load_resume()
        self.assertTrue(bitfield.complete)
        self.assertEqual(len(self.passed), t.piece_count)

    @inlineCallbacks
    def test_no_resume_path(self) -> None:
        """Without a resume_path nothing but data is written, and resume calls refuse."""
        t = self.torrent()
        self.assertRaises(LocalProtocolError, t.save_resume)
        yield t.hashcheck()
        yield t.close()
        self.assertEqual(sorted(os.listdir(self.root)), ["data"])

    @inlineCallbacks
    def test_close_twice_then_use(self) -> None:
        """close() is idempotent, and a closed torrent refuses disk work."""
        t = self.torrent()
        yield t.hashcheck()
        yield t.close()
        yield t.close()
        self.assertRaises(LocalProtocolError, t.hashcheck)

    @inlineCallbacks
    def test_piece_cache_round_trip(self) -> None:
        """piece_cache() passed back to a new Torrent finds part-file data again."""
        empty = os.path.join(self.root, "fresh")
        os.makedirs(empty)
        t = self.torrent(basedir=empty, priorities=[1, 0, 1])
        # Piece 3 holds the end of a.bin (wanted) and the start of b.bin (skipped).
        data = b"".join(self.files[n] for n in ("a.bin", "sub/b.bin", "sub/c.bin"))
        index = 3
        t._ensure_store()
        yield t._store.write(index, 0, data[index * PIECE : (index + 1) * PIECE])
        cache = t.piece_cache()
        self.assertEqual(list(cache), [index])
        yield t.close()
        self.assertFalse(os.path.exists(os.path.join(empty, "data", "sub", "b.bin")))
        t2 = self.torrent(basedir=empty, priorities=[1, 0, 1], piece_cache=cache)
        bitfield = yield t2.hashcheck([index])
        self.assertIn(index, bitfield)
