"""storage.remove.delete_torrent_files: only the torrent's own files and the
directories they leave empty go; symlinks are never followed."""

from __future__ import annotations

import os

from twisted.trial.unittest import TestCase

from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.storage.remove import delete_torrent_files, torrent_paths
from txbittorrent.testing import make_files


class DeleteTorrentFilesTests(TestCase):
    """Removing a torrent's data below its save path."""

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        self.save = os.path.join(self.root, "save")
        self.outside = os.path.join(self.root, "outside")
        os.makedirs(self.save)
        os.makedirs(self.outside)
        with open(os.path.join(self.outside, "precious"), "wb") as f:
            f.write(b"keep me")

    def tree(self) -> list[str]:
        out = []
        for dirpath, dirnames, filenames in os.walk(self.save):
            rel = os.path.relpath(dirpath, self.save)
            out += [os.path.normpath(os.path.join(rel, n)) for n in dirnames + filenames]
        return sorted(out)

    def test_files_and_emptied_directories(self) -> None:
        """The named files go, then their directories once empty, deepest
        first; the save path stays."""
        make_files(os.path.join(self.save, "t"), {"a.bin": 10, "b/c/d.txt": 5}, seed=1)
        result = delete_torrent_files(self.save, [("t", "a.bin"), ("t", "b", "c", "d.txt")])
        self.assertEqual(self.tree(), [])
        self.assertTrue(os.path.isdir(self.save))
        self.assertEqual(len(result.files), 2)
        self.assertEqual(result.directories, tuple(
            os.path.join(self.save, *p) for p in [("t", "b", "c"), ("t", "b"), ("t",)]
        ))
        self.assertTrue(result.ok)

    def test_unnamed_file_left_alone(self) -> None:
        """A file the torrent does not name stays, and so does its directory."""
        make_files(os.path.join(self.save, "t"), {"a.bin": 10, "mine.txt": 3}, seed=1)
        result = delete_torrent_files(self.save, [("t", "a.bin")])
        self.assertEqual(self.tree(), ["t", os.path.join("t", "mine.txt")])
        self.assertEqual(result.directories, ())

    def test_missing_files_are_fine(self) -> None:
        """Files never written (skipped, or not downloaded) are no error."""
        make_files(os.path.join(self.save, "t"), {"a.bin": 10}, seed=1)
        result = delete_torrent_files(self.save, [("t", "a.bin"), ("t", "x", "never")])
        self.assertEqual(self.tree(), [])
        self.assertTrue(result.ok)
        result = delete_torrent_files(os.path.join(self.root, "nowhere"), [("a",)])
        self.assertEqual((result.files, result.skipped), ((), ()))

    def test_symlinked_directory_not_followed(self) -> None:
        """A torrent directory replaced by a symlink to elsewhere: nothing
        through it is removed, and the link itself stays."""
        os.symlink(self.outside, os.path.join(self.save, "t"))
        result = delete_torrent_files(self.save, [("t", "precious")])
        self.assertTrue(os.path.exists(os.path.join(self.outside, "precious")))
        self.assertTrue(os.path.islink(os.path.join(self.save, "t")))
        self.assertFalse(result.ok)
        self.assertIn("symbolic link", result.skipped[0][1])

    def test_symlinked_file_not_followed(self) -> None:
        """A torrent file that is a symlink pointing outside stays, and so
        does its target."""
        os.makedirs(os.path.join(self.save, "t"))
        target = os.path.join(self.outside, "precious")
        os.symlink(target, os.path.join(self.save, "t", "a.bin"))
        result = delete_torrent_files(self.save, [("t", "a.bin")])
        self.assertTrue(os.path.islink(os.path.join(self.save, "t", "a.bin")))
        with open(target, "rb") as f:
            self.assertEqual(f.read(), b"keep me")
        self.assertEqual(result.files, ())
        self.assertEqual(result.skipped[0][0], os.path.join(self.save, "t", "a.bin"))

    def test_unsafe_components_refused(self) -> None:
        """``..``, absolute-looking, empty and NUL components are refused."""
        bad = [("..", "outside", "precious"), ("t", "", "x"), ("a/b",), ("x\0",), (".",), ()]
        result = delete_torrent_files(self.save, bad)
        self.assertEqual(len(result.skipped), len(bad))
        self.assertTrue(os.path.exists(os.path.join(self.outside, "precious")))

    def test_not_a_regular_file(self) -> None:
        """A directory where the torrent has a file is left alone."""
        os.makedirs(os.path.join(self.save, "t", "a.bin", "inner"))
        result = delete_torrent_files(self.save, [("t", "a.bin")])
        self.assertTrue(os.path.isdir(os.path.join(self.save, "t", "a.bin", "inner")))
        self.assertIn("not a regular file", result.skipped[0][1])

    def test_torrent_paths(self) -> None:
        """A torrent's paths are its files and its part file."""
        make_files(os.path.join(self.root, "src", "t"), {"a": 100, "b/c": 50}, seed=2)
        metainfo = parse(create_torrent(os.path.join(self.root, "src", "t"), piece_length=16384))
        self.assertEqual(torrent_paths(metainfo), [
            ("t", "a"), ("t", "b", "c"), ("." + metainfo.info_hash.hex() + ".parts",),
        ])
