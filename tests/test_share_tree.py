"""The blocking side of ``share`` (txbittorrent.share.tree): request paths,
resolving without symlinks, builds that notice a change, the clean resume
record that a seeding torrent trusts, and the on-disk cache."""

from __future__ import annotations

import os
from typing import Any

from twisted.trial.unittest import TestCase

from txbittorrent.core.layout import Layout
from txbittorrent.core.metainfo import MetainfoLimits, parse
from txbittorrent.core.resume import plan_resume
from txbittorrent.share import tree
from txbittorrent.share.tree import NotShared
from txbittorrent.storage.create import TorrentCreationError
from txbittorrent.storage.resumefile import load_record
from txbittorrent.testing import make_files

LIMITS = MetainfoLimits()
URL = "http://127.0.0.1:1/announce"


class RequestPathTests(TestCase):
    def test_plain_paths(self) -> None:
        """Segments become a tuple of names; one trailing slash is ignored."""
        self.assertEqual(tree.request_path([b"a", b"b.txt"]), ("a", "b.txt"))
        self.assertEqual(tree.request_path([b"dir", b""]), ("dir",))
        self.assertEqual(tree.request_path(["é".encode()]), ("é",))

    def test_unsafe_paths(self) -> None:
        """Empty, dot, dot-dot, separators, NUL, non-UTF-8 and over-long paths are refused."""
        for segments in ([], [b""], [b"."], [b".."], [b"a", b"..", b"b"], [b"a/b"],
                         [b"a\\b"], [b"a\0"], [b"\xff"], [b"a", b"", b"b"],
                         [b"x"] * (tree.MAX_COMPONENTS + 1), [b"x" * tree.MAX_PATH_BYTES]):
            self.assertRaises(NotShared, tree.request_path, segments)


class ResolveTests(TestCase):
    def setUp(self) -> None:
        self.root = os.path.realpath(self.mktemp())
        make_files(self.root, {"d/f.bin": 10, "g.bin": 5})

    def test_inside(self) -> None:
        """Files and directories below the root resolve."""
        self.assertEqual(tree.resolve(self.root, ("d", "f.bin")),
                         os.path.join(self.root, "d", "f.bin"))
        self.assertEqual(tree.resolve(self.root, ("d",)), os.path.join(self.root, "d"))

    def test_refused(self) -> None:
        """Missing paths, hidden names, symlinks (even inside), a file used as a directory."""
        os.symlink(os.path.join(self.root, "d"), os.path.join(self.root, "link"))
        os.symlink("/", os.path.join(self.root, "d", "up"))
        for rel in [("nope",), ("hidden",), ("link", "f.bin"), ("link",), ("d", "up"),
                    ("d", "up", "etc"), ("g.bin", "x")]:
            self.assertRaises(NotShared, tree.resolve, self.root, rel, ("hidden",))


class BuildTests(TestCase):
    def setUp(self) -> None:
        self.root = os.path.realpath(self.mktemp())
        make_files(self.root, {"d/a.bin": 40_000, "d/b.bin": 10})

    def test_build_and_clean_resume_record(self) -> None:
        """The record written from a build vouches for every piece while the files stand still."""
        built = tree.build(self.root, ("d",), URL, 16384, LIMITS, 10)
        meta = parse(built.raw)
        self.assertEqual(built.info_hash, meta.info_hash)
        self.assertEqual([f[0] for f in built.files], [("d", "a.bin"), ("d", "b.bin")])
        resume = os.path.join(self.mktemp(), "r.resume")
        tree.write_clean_resume(resume, built, LIMITS)
        record = load_record(resume, meta.info_hash, meta.piece_count, len(meta.files))
        disk = [(os.stat(p).st_size, os.stat(p).st_mtime_ns)
                for p in (os.path.join(self.root, "d", "a.bin"),
                          os.path.join(self.root, "d", "b.bin"))]
        plan = plan_resume(record, Layout.from_metainfo(meta), disk, None)
        self.assertEqual(plan.have.count, meta.piece_count)
        self.assertEqual(plan.recheck, frozenset())

    def test_change_during_hashing_is_retried(self) -> None:
        """A file changed while it was hashed is hashed again; the result matches the disk."""
        calls: list[int] = []
        real = tree.create_torrent

        def changing(*args: Any, **kwargs: Any) -> bytes:
            raw = real(*args, **kwargs)
            if not calls:
                with open(os.path.join(self.root, "d", "b.bin"), "ab") as f:
                    f.write(b"more")
            calls.append(1)
            return raw

        self.patch(tree, "create_torrent", changing)
        built = tree.build(self.root, ("d",), URL, 16384, LIMITS, 10)
        self.assertEqual(len(calls), 2)
        self.assertEqual(parse(built.raw).files[1].length, 14)

    def test_too_many_files(self) -> None:
        """More files than max_files: refused before hashing."""
        self.assertRaises(TorrentCreationError, tree.build, self.root, ("d",), URL, None,
                          LIMITS, 1)


class CacheTests(TestCase):
    def test_round_trip_and_mismatches(self) -> None:
        """The cache returns a torrent only for the same files, tracker URL and piece length."""
        root = os.path.realpath(self.mktemp())
        make_files(root, {"f.bin": 1000})
        cache = self.mktemp()
        built = tree.build(root, ("f.bin",), URL, None, LIMITS, 10)
        tree.cache_store(cache, built, URL, None)
        self.assertEqual(tree.cache_load(cache, ("f.bin",), built.files, URL, None, LIMITS),
                         built)
        other_files = ((("f.bin",), 1001, 0),)
        self.assertIsNone(tree.cache_load(cache, ("f.bin",), other_files, URL, None, LIMITS))
        self.assertIsNone(tree.cache_load(cache, ("f.bin",), built.files, URL + "x", None,
                                          LIMITS))
        self.assertIsNone(tree.cache_load(cache, ("f.bin",), built.files, URL, 16384, LIMITS))
        tree.cache_forget(cache, ("f.bin",))
        self.assertIsNone(tree.cache_load(cache, ("f.bin",), built.files, URL, None, LIMITS))


class ListTreeTests(TestCase):
    def test_listing(self) -> None:
        """Sorted entries with directory totals; links, hidden and excluded paths left out."""
        root = os.path.realpath(self.mktemp())
        make_files(root, {"b/x.bin": 3, "b/y.bin": 4, "a.bin": 1, ".cache/z": 9,
                          "skip/w": 2})
        os.symlink("/", os.path.join(root, "link"))
        entries, truncated = tree.list_tree(root, (".cache",), {os.path.join(root, "skip")})
        self.assertFalse(truncated)
        self.assertEqual([(e.path, e.directory, e.size) for e in entries], [
            (("a.bin",), False, 1), (("b",), True, 7), (("b", "x.bin"), False, 3),
            (("b", "y.bin"), False, 4),
        ])
        entries, truncated = tree.list_tree(root, (".cache",), max_entries=2)
        self.assertTrue(truncated)
        self.assertEqual(len(entries), 2)
