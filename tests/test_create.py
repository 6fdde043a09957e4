"""Tests for txbittorrent.storage.create: piece length, file collection, hashing, metainfo."""

from __future__ import annotations

import hashlib
import os
import random
import unicodedata

from hypothesis import given
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import decode
from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import (
    DEFAULT_CREATED_BY,
    SourceFile,
    TorrentCreationError,
    auto_piece_length,
    collect_files,
    create_torrent,
    hash_pieces,
)
from txbittorrent.errors import MetainfoError, TxBitTorrentError
from txbittorrent.testing import make_files

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB


def make_tree(root: str, files: dict[str, bytes]) -> str:
    """Write ``files`` ({'dir/name': data}) under a new directory ``root``."""
    os.makedirs(root)
    make_files(root, files)
    return root


def data(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


def sha1_pieces(stream: bytes, piece_length: int) -> bytes:
    return b"".join(
        hashlib.sha1(stream[i : i + piece_length]).digest()
        for i in range(0, len(stream), piece_length)
    )


class AutoPieceLengthTests(SynchronousTestCase):
    def test_table(self) -> None:
        """Sizes map to the smallest power of two giving at most 2,000 pieces."""
        table = [
            (0, 16 * KiB),
            (1, 16 * KiB),
            (10 * MiB, 16 * KiB),
            (2000 * 16 * KiB, 16 * KiB),
            (2000 * 16 * KiB + 1, 32 * KiB),
            (100 * MiB, 64 * KiB),
            (700 * MiB, 512 * KiB),
            (1 * GiB, 1 * MiB),
            (4 * GiB, 4 * MiB),
            (2000 * 16 * MiB, 16 * MiB),
            (100 * GiB, 16 * MiB),
            (10 * 1024 * GiB, 16 * MiB),
        ]
        for size, expected in table:
            self.assertEqual(auto_piece_length(size), expected, f"size {size}")

    @given(st.integers(min_value=0, max_value=2**50))
    def test_rule(self, size: int) -> None:
        """The result is a power of two in [16 KiB, 16 MiB], minimal for 2,000 pieces."""
        length = auto_piece_length(size)
        self.assertEqual(length & (length - 1), 0)
        self.assertTrue(16 * KiB <= length <= 16 * MiB)
        pieces = -(-size // length)
        if length < 16 * MiB:
            self.assertLessEqual(pieces, 2000)
        if length > 16 * KiB:
            self.assertGreater(-(-size // (length // 2)), 2000)
            self.assertGreater(pieces, 1000)


class CollectFilesTests(SynchronousTestCase):
    def test_single_file(self) -> None:
        """A file gives one entry whose path is its name."""
        root = make_tree(self.mktemp(), {"movie.mkv": b"x" * 10})
        path = os.path.join(root, "movie.mkv")
        self.assertEqual(
            collect_files(path), [SourceFile(("movie.mkv",), os.path.abspath(path), 10)]
        )

    def test_sorted_by_components(self) -> None:
        """A directory's files come sorted by path components, bytewise on UTF-8."""
        names = ["b", "a/z", "a-c", "a/b/c", "A", "\u00e9t\u00e9", "Z/y", "a/\u00e9", "a/f"]
        root = make_tree(self.mktemp(), {n: b"1" for n in names})
        found = collect_files(root)
        name = os.path.basename(root)
        self.assertEqual(
            [f.path for f in found],
            [
                (name, "A"),
                (name, "Z", "y"),
                (name, "a", "b", "c"),
                (name, "a", "f"),
                (name, "a", "z"),
                (name, "a", "\u00e9"),
                (name, "a-c"),
                (name, "b"),
                (name, "\u00e9t\u00e9"),
            ],
        )
        for f in found:
            self.assertEqual(f.abspath, os.path.join(os.path.abspath(root), *f.path[1:]))
            self.assertEqual(f.size, 1)

    def test_hidden_files_included(self) -> None:
        """Dot files and dot directories are part of the torrent."""
        root = make_tree(self.mktemp(), {".hidden": b"h", ".git/config": b"c", "f": b"f"})
        name = os.path.basename(root)
        self.assertEqual(
            [f.path for f in collect_files(root)],
            [(name, ".git", "config"), (name, ".hidden"), (name, "f")],
        )

    def test_empty_files_kept_empty_dirs_dropped(self) -> None:
        """Zero-length files are listed; empty directories vanish."""
        root = make_tree(self.mktemp(), {"empty": b"", "full": b"data"})
        os.makedirs(os.path.join(root, "nothing", "here"))
        name = os.path.basename(root)
        self.assertEqual(
            [(f.path, f.size) for f in collect_files(root)],
            [((name, "empty"), 0), ((name, "full"), 4)],
        )

    def test_trailing_slash_and_relative(self) -> None:
        """'dir/' and a relative path name the torrent after the directory."""
        root = make_tree(self.mktemp(), {"f": b"1"})
        for given_path in (root + os.sep, os.path.relpath(root)):
            self.assertEqual(collect_files(given_path)[0].path, (os.path.basename(root), "f"))

    def test_symlinks_inside_skipped(self) -> None:
        """Symbolic links in a directory are not followed but reported to on_skip."""
        root = make_tree(self.mktemp(), {"real/f": b"data"})
        os.symlink("real/f", os.path.join(root, "link-to-file"))
        os.symlink("real", os.path.join(root, "link-to-dir"))
        os.symlink("nowhere", os.path.join(root, "dangling"))
        skipped: list[tuple[str, str]] = []
        found = collect_files(root, on_skip=lambda p, why: skipped.append((p, why)))
        self.assertEqual([f.path[1:] for f in found], [("real", "f")])
        self.assertEqual(
            sorted(os.path.basename(p) for p, _ in skipped),
            ["dangling", "link-to-dir", "link-to-file"],
        )
        self.assertIn("symbolic link", skipped[0][1])

    def test_symlink_path_refused(self) -> None:
        """A path that is itself a symbolic link is refused, not followed."""
        root = make_tree(self.mktemp(), {"f": b"data"})
        link = self.mktemp()
        os.symlink(os.path.abspath(root), link)
        e = self.assertRaises(TorrentCreationError, collect_files, link)
        self.assertIn("symbolic link", str(e))

    def test_missing_path(self) -> None:
        """A path that does not exist raises FileNotFoundError."""
        self.assertRaises(FileNotFoundError, collect_files, self.mktemp())

    def test_empty_directory(self) -> None:
        """A directory without files is refused with a TxBitTorrentError."""
        root = self.mktemp()
        os.makedirs(os.path.join(root, "sub"))
        e = self.assertRaises(TxBitTorrentError, collect_files, root)
        self.assertIsInstance(e, MetainfoError)
        self.assertIn("no files", str(e))

    def test_no_data(self) -> None:
        """A directory of empty files, or an empty file, is refused."""
        root = make_tree(self.mktemp(), {"a": b"", "b/c": b""})
        self.assertIn("empty", str(self.assertRaises(TorrentCreationError, collect_files, root)))
        path = os.path.join(root, "a")
        self.assertIn("empty", str(self.assertRaises(TorrentCreationError, collect_files, path)))

    def test_special_file_refused(self) -> None:
        """A FIFO inside the directory is refused rather than read."""
        root = make_tree(self.mktemp(), {"f": b"1"})
        os.mkfifo(os.path.join(root, "pipe"))
        e = self.assertRaises(TorrentCreationError, collect_files, root)
        self.assertIn("pipe", str(e))

    def test_name_not_utf8(self) -> None:
        """A file name that is not valid UTF-8 is refused, naming the bytes."""
        root = make_tree(self.mktemp(), {"f": b"1"})
        try:
            fd = os.open(os.path.join(os.fsencode(root), b"bad\xff"), os.O_CREAT | os.O_WRONLY)
        except OSError:
            raise self.skipTest("this file system refuses non-UTF-8 names")
        os.close(fd)
        e = self.assertRaises(TorrentCreationError, collect_files, root)
        self.assertIn("UTF-8", str(e))
        self.assertIn("bad\\xff", str(e))

    def test_names_the_reader_would_rename(self) -> None:
        """Names our metainfo sanitiser would rename or reject are refused."""
        cases = {
            "tab\there": "control",
            "back\\slash": "separator",
            "C:drive": "drive",
            "_____padding_file_1": "pad file",
        }
        for bad, why in cases.items():
            root = make_tree(self.mktemp(), {"ok": b"1", f"sub/{bad}": b"2"})
            e = self.assertRaises(TorrentCreationError, collect_files, root)
            self.assertIn(why, str(e), bad)

    def test_bad_directory_name(self) -> None:
        """A bad name on a directory is refused like a bad file name."""
        root = make_tree(self.mktemp(), {"dir\x01/f": b"1"})
        self.assertIn("control", str(self.assertRaises(TorrentCreationError, collect_files, root)))

    def test_bad_top_name(self) -> None:
        """The file or directory given must have a name a torrent can carry."""
        root = make_tree(self.mktemp(), {"tab\tname": b"1"})
        path = os.path.join(root, "tab\tname")
        self.assertRaises(TorrentCreationError, collect_files, path)

    def test_pad_directory_is_data(self) -> None:
        """A '.pad' directory is ordinary data (pad files are marked by attr 'p')."""
        root = make_tree(self.mktemp(), {".pad/123": b"1", "f": b"2"})
        self.assertEqual(len(collect_files(root)), 2)

    def test_nfd_names_kept(self) -> None:
        """Names in NFD are carried as they are (readers do not normalise)."""
        name = unicodedata.normalize("NFD", "\u00e9t\u00e9")
        root = make_tree(self.mktemp(), {name: b"1"})
        self.assertEqual(collect_files(root)[0].path[-1], name)

    def test_too_deep(self) -> None:
        """Paths deeper than the metainfo limit are refused."""
        root = self.mktemp()
        os.makedirs(os.path.join(root, *["d"] * 63))
        with open(os.path.join(root, *["d"] * 62, "f"), "wb") as f:
            f.write(b"1")
        self.assertEqual(len(collect_files(root)[0].path), 64)
        with open(os.path.join(root, *["d"] * 63, "f"), "wb") as f:
            f.write(b"1")
        self.assertIn("deeper", str(self.assertRaises(TorrentCreationError, collect_files, root)))


class CreateTorrentTests(SynchronousTestCase):
    def test_single_file(self) -> None:
        """A file becomes a single-file torrent that parses back with the right hashes."""
        content = data(100_000)
        root = make_tree(self.mktemp(), {"song.ogg": content})
        raw = create_torrent(os.path.join(root, "song.ogg"), piece_length=16 * KiB)
        m = parse(raw)
        self.assertEqual(m.name, "song.ogg")
        self.assertFalse(m.multi_file)
        self.assertEqual(m.total_length, 100_000)
        self.assertEqual([(f.path, f.length) for f in m.files], [(("song.ogg",), 100_000)])
        self.assertEqual(m.piece_length, 16 * KiB)
        self.assertEqual(m.pieces, sha1_pieces(content, 16 * KiB))
        info = decode(raw)[b"info"]
        self.assertEqual(info[b"length"], 100_000)
        self.assertNotIn(b"files", info)
        self.assertNotIn(b"private", info)

    def test_multi_file_nested(self) -> None:
        """A directory becomes a multi-file torrent with its files, sizes and hashes."""
        tree = {
            "a/b/deep.bin": data(70_000, 1),
            "a/mid.bin": data(33_333, 2),
            "top.bin": data(5, 3),
            "z/empty": b"",
            "z/last.bin": data(40_000, 4),
        }
        root = make_tree(self.mktemp(), tree)
        name = os.path.basename(root)
        m = parse(create_torrent(root, piece_length=32 * KiB))
        self.assertEqual(m.name, name)
        self.assertTrue(m.multi_file)
        order = ["a/b/deep.bin", "a/mid.bin", "top.bin", "z/empty", "z/last.bin"]
        self.assertEqual(
            [(f.path, f.length) for f in m.files],
            [((name, *p.split("/")), len(tree[p])) for p in order],
        )
        self.assertEqual(m.total_length, sum(len(v) for v in tree.values()))
        self.assertFalse(any(f.renamed or f.pad for f in m.files))
        stream = b"".join(tree[p] for p in order)
        self.assertEqual(m.pieces, sha1_pieces(stream, 32 * KiB))

    def test_directory_with_one_file(self) -> None:
        """A directory holding one file still makes a multi-file torrent."""
        root = make_tree(self.mktemp(), {"only": b"abc"})
        m = parse(create_torrent(root))
        self.assertTrue(m.multi_file)
        self.assertEqual(m.files[0].path, (os.path.basename(root), "only"))

    def test_piece_crosses_files(self) -> None:
        """A piece spanning three files hashes their bytes as one stream."""
        tree = {"1": data(10_000, 1), "2": data(5_000, 2), "3": data(20_000, 3)}
        root = make_tree(self.mktemp(), tree)
        m = parse(create_torrent(root, piece_length=16 * KiB))
        stream = tree["1"] + tree["2"] + tree["3"]
        # Piece 0 is bytes 0-16383: all of file 1, all of file 2, 1,384 bytes of file 3.
        self.assertEqual([f.offset for f in m.files], [0, 10_000, 15_000])
        self.assertEqual(m.piece_hash(0), hashlib.sha1(stream[: 16 * KiB]).digest())
        self.assertEqual(m.piece_hash(1), hashlib.sha1(stream[16 * KiB : 32 * KiB]).digest())
        self.assertEqual(m.piece_hash(2), hashlib.sha1(stream[32 * KiB :]).digest())
        self.assertEqual(m.piece_count, 3)

    def test_auto_piece_length(self) -> None:
        """Without piece_length the automatic rule decides."""
        root = make_tree(self.mktemp(), {"f": data(50_000)})
        m = parse(create_torrent(root))
        self.assertEqual(m.piece_length, auto_piece_length(50_000))

    def test_workers_do_not_change_output(self) -> None:
        """The bytes are the same with one hashing thread or several."""
        root = make_tree(self.mktemp(), {f"d{i}/f": data(9_000 + i, i) for i in range(8)})
        one = create_torrent(root, piece_length=16 * KiB, workers=1)
        four = create_torrent(root, piece_length=16 * KiB, workers=4)
        self.assertEqual(one, four)

    def test_invalid_piece_length(self) -> None:
        """A piece length that is not a power of two of at least 16 KiB is refused."""
        root = make_tree(self.mktemp(), {"f": b"1"})
        for bad in (0, -16384, 8 * KiB, 20_000, 3 * 16 * KiB, 512 * MiB):
            e = self.assertRaises(TorrentCreationError, create_torrent, root, piece_length=bad)
            self.assertEqual(e.field, "piece length")

    def test_one_tracker(self) -> None:
        """One tracker URL gives 'announce' and no 'announce-list'."""
        root = make_tree(self.mktemp(), {"f": b"1"})
        meta = decode(create_torrent(root, trackers=["http://t.example/announce"]))
        self.assertEqual(meta[b"announce"], b"http://t.example/announce")
        self.assertNotIn(b"announce-list", meta)

    def test_each_url_its_own_tier(self) -> None:
        """Plain URLs become one tier each, in order, duplicates dropped."""
        root = make_tree(self.mktemp(), {"f": b"1"})
        urls = ["http://a/ann", "udp://b:6969", "http://a/ann", "https://c/x"]
        raw = create_torrent(root, trackers=urls)
        meta = decode(raw)
        self.assertEqual(meta[b"announce"], b"http://a/ann")
        self.assertEqual(
            meta[b"announce-list"], [[b"http://a/ann"], [b"udp://b:6969"], [b"https://c/x"]]
        )
        self.assertEqual(
            parse(raw).trackers, (("http://a/ann",), ("udp://b:6969",), ("https://c/x",))
        )

    def test_tiers(self) -> None:
        """Lists of URLs become tiers as given; empty tiers vanish."""
        root = make_tree(self.mktemp(), {"f": b"1"})
        raw = create_torrent(root, trackers=[["http://a/1", "http://a/2"], [], ["udp://b:1"]])
        self.assertEqual(parse(raw).trackers, (("http://a/1", "http://a/2"), ("udp://b:1",)))
        self.assertEqual(decode(raw)[b"announce"], b"http://a/1")

    def test_no_trackers(self) -> None:
        """Without trackers neither announce key is written (a trackerless torrent)."""
        root = make_tree(self.mktemp(), {"f": b"1"})
        meta = decode(create_torrent(root))
        self.assertNotIn(b"announce", meta)
        self.assertNotIn(b"announce-list", meta)

    def test_bad_url_refused_before_hashing(self) -> None:
        """A tracker or web seed that is not an absolute URL is refused before hashing."""
        root = make_tree(self.mktemp(), {"f": b"1"})
        calls: list[tuple[int, int]] = []
        for kwargs in ({"trackers": ["tracker.example"]}, {"url_list": ["/relative"]}):
            self.assertRaises(
                TorrentCreationError,
                create_torrent,
                root,
                progress=lambda d, t: calls.append((d, t)),
                **kwargs,
            )
        self.assertEqual(calls, [])

    def test_private_comment_web_seeds(self) -> None:
        """private, comment and url-list are written and read back."""
        root = make_tree(self.mktemp(), {"f": b"1"})
        raw = create_torrent(
            root,
            private=True,
            comment="caf\u00e9 notes",
            url_list=["http://seed.example/files/", "https://s2.example/x"],
        )
        m = parse(raw)
        self.assertTrue(m.private)
        self.assertEqual(decode(raw)[b"info"][b"private"], 1)
        self.assertEqual(m.comment, "caf\u00e9 notes")
        self.assertEqual(m.url_list, ("http://seed.example/files/", "https://s2.example/x"))

    def test_created_by_and_date(self) -> None:
        """created by defaults to txbittorrent/<version>; the date is written only when given."""
        root = make_tree(self.mktemp(), {"f": b"1"})
        m = parse(create_torrent(root))
        self.assertEqual(m.created_by, DEFAULT_CREATED_BY)
        self.assertTrue(DEFAULT_CREATED_BY.startswith("txbittorrent/"))
        self.assertIsNone(m.creation_date)
        dated = decode(create_torrent(root, created_by=None, creation_date=1_700_000_000))
        self.assertEqual(dated[b"creation date"], 1_700_000_000)
        self.assertNotIn(b"created by", dated)

    def test_same_input_same_bytes(self) -> None:
        """Creation is deterministic: the same tree and options give the same bytes."""
        root = make_tree(self.mktemp(), {"a": data(3000), "b/c": data(4000, 1)})
        self.assertEqual(create_torrent(root, comment="x"), create_torrent(root, comment="x"))

    def test_progress(self) -> None:
        """progress gets (done, total) from 0, rising monotonically, ending at the total."""
        tree = {"a": data(100_000, 1), "b/c": data(60_001, 2)}
        root = make_tree(self.mktemp(), tree)
        calls: list[tuple[int, int]] = []
        create_torrent(
            root, piece_length=16 * KiB, workers=3, progress=lambda d, t: calls.append((d, t))
        )
        total = 160_001
        self.assertEqual(calls[0], (0, total))
        self.assertEqual(calls[-1], (total, total))
        self.assertEqual({t for _, t in calls}, {total})
        done = [d for d, _ in calls]
        self.assertEqual(done, sorted(done))
        self.assertEqual(len(calls), 1 + -(-total // (16 * KiB)))

    def test_missing_path(self) -> None:
        """A path that does not exist raises an OSError, which the CLI reports."""
        self.assertRaises(OSError, create_torrent, self.mktemp())

    def test_empty_directory(self) -> None:
        """An empty directory raises a TxBitTorrentError."""
        root = self.mktemp()
        os.makedirs(root)
        self.assertRaises(TxBitTorrentError, create_torrent, root)


class HashPiecesTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = make_tree(self.mktemp(), {"a": data(40_000, 1), "b": data(30_000, 2)})

    def test_matches_hashlib(self) -> None:
        """Digests equal SHA-1 over the concatenated files, for any worker count."""
        files = collect_files(self.root)
        expected = sha1_pieces(data(40_000, 1) + data(30_000, 2), 16 * KiB)
        for workers in (1, 2, 7):
            self.assertEqual(hash_pieces(files, 16 * KiB, workers=workers), expected)

    def test_file_shrank(self) -> None:
        """A file shorter than when it was listed is an error, not short data."""
        files = collect_files(self.root)
        os.truncate(os.path.join(self.root, "a"), 39_999)
        e = self.assertRaises(TorrentCreationError, hash_pieces, files, 16 * KiB)
        self.assertIn("changed size", str(e))

    def test_file_grew(self) -> None:
        """A file longer than when it was listed is an error too."""
        files = collect_files(self.root)
        with open(os.path.join(self.root, "b"), "ab") as f:
            f.write(b"more")
        e = self.assertRaises(TorrentCreationError, hash_pieces, files, 16 * KiB)
        self.assertIn("changed size", str(e))

    def test_file_vanished(self) -> None:
        """A file removed after listing raises OSError."""
        files = collect_files(self.root)
        os.unlink(os.path.join(self.root, "b"))
        self.assertRaises(OSError, hash_pieces, files, 16 * KiB)
