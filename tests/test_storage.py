"""Tests for txbittorrent.storage.files and storage.paths: files on disk, the part file, path safety."""

from __future__ import annotations

import dataclasses
import errno
import os
import threading
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import encode
from txbittorrent.core.metainfo import Metainfo, parse
from txbittorrent.errors import MissingDataError, StorageError, UnsafePathError
from txbittorrent.storage import files as storage_module
from txbittorrent.storage.files import FileStorage
from txbittorrent.storage import writeback as writeback_module
from txbittorrent.storage.paths import SafeDirectory

PieceFiles = Sequence[tuple[str, int] | tuple[str, int, bytes]]


def make_metainfo(files: PieceFiles, piece_length: int, name: str = "t") -> Metainfo:
    """A multi-file torrent of ``files`` (name, length[, attr]); name '-' is a pad."""
    entries = []
    for spec in files:
        path, length = spec[0], spec[1]
        entry: dict[bytes, object] = {
            b"length": length,
            b"path": [p.encode() for p in path.split("/")],
        }
        if len(spec) > 2:
            entry[b"attr"] = spec[2]
        entries.append(entry)
    total = sum(spec[1] for spec in files)
    count = (total + piece_length - 1) // piece_length
    info = {b"name": name.encode(), b"piece length": piece_length, b"pieces": b"\0" * 20 * count,
            b"files": entries}
    return parse(encode({b"info": info}))


def single_metainfo(length: int, piece_length: int, name: str = "one.bin") -> Metainfo:
    """A single-file torrent of ``length`` bytes."""
    count = (length + piece_length - 1) // piece_length
    info = {b"name": name.encode(), b"piece length": piece_length, b"pieces": b"\0" * 20 * count,
            b"length": length}
    return parse(encode({b"info": info}))


def payload(length: int, seed: int = 1) -> bytes:
    """Deterministic bytes with no zero byte, so holes are visible."""
    return bytes((i * 7 + seed) % 251 + 1 for i in range(length))


def write_all(storage: FileStorage, data: bytes) -> None:
    """Write ``data`` (the whole torrent) piece by piece."""
    layout = storage.layout
    for index in range(layout.piece_count):
        start = index * layout.piece_length
        storage.write(index, 0, data[start : start + layout.piece_size(index)])


class StorageTestMixin:
    """Makes download directories and closes storages after each test."""

    def basedir(self) -> str:
        path = self.mktemp()  # type: ignore[attr-defined]
        os.makedirs(path)
        return os.path.abspath(path)

    def storage(self, metainfo: Metainfo, basedir: str, **kwargs: object) -> FileStorage:
        storage = FileStorage(metainfo, basedir, **kwargs)  # type: ignore[arg-type]
        self.addCleanup(storage.close)  # type: ignore[attr-defined]
        return storage


class RoundTripTests(StorageTestMixin, SynchronousTestCase):
    def test_single_file(self) -> None:
        """Every piece of a single-file torrent reads back as written, and lands in the file."""
        meta = single_metainfo(100, 16)
        base = self.basedir()
        storage = self.storage(meta, base)
        data = payload(100)
        write_all(storage, data)
        for index in range(storage.layout.piece_count):
            self.assertEqual(storage.read_piece(index), data[index * 16 : index * 16 + 16])
        self.assertEqual(storage.file_path(0), os.path.join(base, "one.bin"))
        with open(storage.file_path(0), "rb") as f:
            self.assertEqual(f.read(), data)

    def test_piece_spanning_three_files(self) -> None:
        """A piece over the end of one file, a whole file and the start of a third splits right."""
        meta = make_metainfo([("a", 10), ("b", 4), ("sub/c", 10)], 20)
        storage = self.storage(meta, self.basedir())
        data = payload(24)
        storage.write(0, 0, data[:20])
        storage.write(1, 0, data[20:])
        self.assertEqual(storage.read(0, 8, 8), data[8:16])
        self.assertEqual(storage.read_piece(0), data[:20])
        for f, (start, end) in enumerate([(0, 10), (10, 14), (14, 24)]):
            with open(storage.file_path(f), "rb") as fh:
                self.assertEqual(fh.read(), data[start:end])

    def test_blocks_out_of_order(self) -> None:
        """Blocks written in any order, at offsets inside a piece, land in place."""
        meta = make_metainfo([("a", 30), ("b", 34)], 32)
        storage = self.storage(meta, self.basedir())
        data = payload(64)
        for index, offset, length in [(1, 16, 16), (0, 16, 16), (1, 0, 16), (0, 0, 16)]:
            start = index * 32 + offset
            storage.write(index, offset, memoryview(data)[start : start + length])
        self.assertEqual(storage.read(0, 0, 32) + storage.read(1, 0, 32), data)

    def test_out_of_range(self) -> None:
        """A range outside the piece, or a piece that does not exist, raises IndexError."""
        storage = self.storage(single_metainfo(40, 16), self.basedir())
        self.assertRaises(IndexError, storage.read, 2, 0, 9)
        self.assertRaises(IndexError, storage.write, 0, 10, b"x" * 7)
        self.assertRaises(IndexError, storage.read, 3, 0, 1)
        self.assertRaises(IndexError, storage.write, -1, 0, b"x")

    def test_constructor_touches_nothing(self) -> None:
        """Constructing a FileStorage creates no file or directory, even the base directory."""
        base = os.path.join(self.basedir(), "later")
        self.storage(make_metainfo([("a", 10), ("e", 0)], 16), base)
        self.assertFalse(os.path.exists(base))

    def test_creates_base_directory_on_write(self) -> None:
        """The first write creates a missing download directory."""
        base = os.path.join(self.basedir(), "x", "y")
        storage = self.storage(single_metainfo(8, 8), base)
        storage.write(0, 0, b"12345678")
        self.assertEqual(storage.read_piece(0), b"12345678")

    def test_sparse_lazy_creation(self) -> None:
        """A file never written is not created; a late block leaves a hole, not zeros written."""
        size = 8 * 1024 * 1024
        meta = make_metainfo([("a", 10), ("big", size)], 1024 * 1024)
        storage = self.storage(meta, self.basedir())
        last = storage.layout.piece_count - 1
        storage.write(last, 0, b"z" * storage.layout.piece_size(last))
        self.assertFalse(os.path.exists(storage.file_path(0)))
        st = os.stat(storage.file_path(1))
        self.assertEqual(st.st_size, size)
        self.assertLess(st.st_blocks * 512, 2 * 1024 * 1024)

    def test_file_stats(self) -> None:
        """file_stats gives (size, mtime_ns) for files on disk, None for missing and pad files."""
        meta = make_metainfo([("a", 10), ("pad", 6, b"p"), ("b", 16)], 16)
        storage = self.storage(meta, self.basedir())
        storage.write(0, 0, payload(16))
        stats = storage.file_stats()
        st = os.stat(storage.file_path(0))
        self.assertEqual(stats, [(10, st.st_mtime_ns), None, None])

    def test_close_then_reuse(self) -> None:
        """After close() the storage reopens files lazily and keeps working."""
        storage = self.storage(single_metainfo(32, 16), self.basedir())
        storage.write(0, 0, payload(16))
        storage.close()
        storage.write(1, 0, payload(16, 2))
        storage.close()
        got = storage.read_piece(0) + storage.read_piece(1)
        self.assertEqual(got, payload(16) + payload(16, 2))

    @settings(max_examples=40, deadline=None)
    @given(
        lengths=st.lists(st.integers(0, 40), min_size=1, max_size=6).filter(lambda ls: sum(ls) > 0),
        piece_length=st.integers(1, 24),
        skipped=st.lists(st.booleans(), min_size=6, max_size=6),
    )
    def test_round_trip_any_layout(
        self, lengths: list[int], piece_length: int, skipped: list[bool]
    ) -> None:
        """Any layout and any skipped set reads back every piece exactly as written."""
        meta = make_metainfo([(f"f{i}", n) for i, n in enumerate(lengths)], piece_length)
        priorities = [0 if skipped[i] else 1 for i in range(len(lengths))]
        storage = FileStorage(meta, self.basedir(), priorities)
        try:
            data = payload(sum(lengths))
            write_all(storage, data)
            got = b"".join(storage.read_piece(i) for i in range(storage.layout.piece_count))
            self.assertEqual(got, data)
            for i, n in enumerate(lengths):
                self.assertEqual(os.path.exists(storage.file_path(i)), not skipped[i])
        finally:
            storage.close()


class EmptyAndPadFileTests(StorageTestMixin, SynchronousTestCase):
    def test_create_empty_files(self) -> None:
        """create_empty_files makes wanted zero-length files (and their directories) only."""
        meta = make_metainfo([("a", 10), ("d/e", 0), ("skip", 0), ("f", 6)], 16)
        storage = self.storage(meta, self.basedir(), priorities=[1, 1, 0, 1])
        self.assertFalse(os.path.exists(storage.file_path(1)))
        storage.create_empty_files()
        self.assertEqual(os.path.getsize(storage.file_path(1)), 0)
        self.assertFalse(os.path.exists(storage.file_path(2)))
        self.assertFalse(os.path.exists(storage.file_path(0)))

    def test_first_write_creates_empty_files(self) -> None:
        """The first write of the torrent creates the wanted zero-length files."""
        meta = make_metainfo([("a", 10), ("e", 0), ("f", 6)], 16)
        storage = self.storage(meta, self.basedir())
        storage.write(0, 0, payload(16))
        self.assertTrue(os.path.isfile(storage.file_path(1)))

    def test_raised_empty_file_created(self) -> None:
        """Raising a zero-length file's priority after the first write creates it."""
        meta = make_metainfo([("a", 10), ("e", 0)], 16)
        storage = self.storage(meta, self.basedir(), priorities=[1, 0])
        storage.write(0, 0, payload(10))
        self.assertFalse(os.path.exists(storage.file_path(1)))
        storage.set_priorities([1, 1])
        self.assertTrue(os.path.isfile(storage.file_path(1)))

    def test_pad_files(self) -> None:
        """Pad files are never created; their bytes read as zeros; writes into them are dropped."""
        meta = make_metainfo([("a", 10), (".pad/6", 6, b"p"), ("b", 16)], 16)
        storage = self.storage(meta, self.basedir())
        data = payload(32)
        storage.write(0, 0, data[:16])
        storage.write(1, 0, data[16:])
        self.assertEqual(meta.files[1].pad, True)
        self.assertFalse(os.path.exists(storage.file_path(1)))
        self.assertEqual(storage.read_piece(0), data[:10] + b"\0" * 6)
        self.assertEqual(storage.read(0, 10, 6), b"\0" * 6)
        self.assertEqual(sorted(os.listdir(os.path.dirname(storage.file_path(0)))), ["a", "b"])


class MissingDataTests(StorageTestMixin, SynchronousTestCase):
    def test_missing_base_directory(self) -> None:
        """Reading when the download directory does not exist raises MissingDataError."""
        storage = self.storage(single_metainfo(16, 16), os.path.join(self.basedir(), "nope"))
        self.assertRaises(MissingDataError, storage.read_piece, 0)

    def test_missing_file(self) -> None:
        """Reading a file never written raises MissingDataError, and creates nothing."""
        meta = make_metainfo([("a", 10), ("d/b", 10)], 10)
        storage = self.storage(meta, self.basedir())
        storage.write(0, 0, payload(10))
        self.assertRaises(MissingDataError, storage.read_piece, 1)
        self.assertFalse(os.path.exists(os.path.dirname(storage.file_path(1))))

    def test_short_file(self) -> None:
        """Reading past the end of a file cut short by someone else raises
        MissingDataError; below it, bytes never written read as zeros."""
        storage = self.storage(single_metainfo(64, 16), self.basedir())
        storage.write(1, 0, payload(16))
        os.truncate(storage.file_path(0), 32)
        self.assertRaises(MissingDataError, storage.read_piece, 2)
        self.assertEqual(storage.read_piece(0), b"\0" * 16)

    def test_first_write_extends_to_full_length(self) -> None:
        """The first write makes the file its full length (sparse); a longer
        file is never shortened."""
        meta = make_metainfo([("a", 40), ("b", 24)], 16)
        storage = self.storage(meta, self.basedir())
        storage.write(0, 0, payload(16))
        self.assertEqual(os.path.getsize(storage.file_path(0)), 40)
        self.assertFalse(os.path.exists(storage.file_path(1)))
        self.assertEqual(storage.read(1, 0, 16), b"\0" * 16)
        with open(storage.file_path(1), "wb") as f:
            f.write(b"y" * 30)
        storage.write(3, 0, payload(16))  # bytes 48..63: file b's 8..23
        self.assertEqual(os.path.getsize(storage.file_path(1)), 30)

    def test_missing_slot(self) -> None:
        """Reading skipped-file bytes of a piece with no part-file slot raises MissingDataError."""
        meta = make_metainfo([("a", 10), ("b", 10)], 20)
        storage = self.storage(meta, self.basedir(), priorities=[1, 0])
        self.assertRaises(MissingDataError, storage.read, 0, 10, 5)

    def test_missing_is_storage_error(self) -> None:
        """MissingDataError is a StorageError carrying the path concerned."""
        storage = self.storage(single_metainfo(16, 16), self.basedir())
        error = self.assertRaises(MissingDataError, storage.read_piece, 0)
        self.assertIsInstance(error, StorageError)
        self.assertEqual(error.path, storage.file_path(0))


class SymlinkTests(StorageTestMixin, SynchronousTestCase):
    """A symlink below the download directory never leads I/O outside it."""

    def setUp(self) -> None:
        root = self.basedir()
        self.base = os.path.join(root, "download")
        self.outside = os.path.join(root, "outside")
        os.makedirs(self.base)
        os.makedirs(self.outside)
        self.sentinel = os.path.join(self.outside, "x")
        with open(self.sentinel, "wb") as f:
            f.write(b"precious")
        os.utime(self.sentinel, ns=(1_000_000_000, 1_000_000_000))
        self.meta = make_metainfo([("x", 8), ("sub/x", 8)], 8, name="t")

    def assertOutsideUntouched(self) -> None:
        """The sentinel keeps its content and mtime, and nothing new appears outside."""
        with open(self.sentinel, "rb") as f:
            self.assertEqual(f.read(), b"precious")
        self.assertEqual(os.stat(self.sentinel).st_mtime_ns, 1_000_000_000)
        self.assertEqual(os.listdir(self.outside), ["x"])

    def test_symlinked_directory(self) -> None:
        """A directory component symlinked to outside is refused for writes and reads."""
        os.makedirs(os.path.join(self.base, "t"))
        os.symlink(self.outside, os.path.join(self.base, "t", "sub"))
        storage = self.storage(self.meta, self.base)
        self.assertRaises(UnsafePathError, storage.write, 1, 0, b"EVILEVIL")
        self.assertRaises(UnsafePathError, storage.read_piece, 1)
        self.assertRaises(UnsafePathError, storage.file_stats)
        self.assertOutsideUntouched()

    def test_symlinked_top_directory(self) -> None:
        """The torrent's own directory being a symlink outside is refused too."""
        os.symlink(self.outside, os.path.join(self.base, "t"))
        storage = self.storage(self.meta, self.base)
        self.assertRaises(UnsafePathError, storage.write, 0, 0, b"EVILEVIL")
        self.assertRaises(UnsafePathError, storage.read_piece, 0)
        self.assertOutsideUntouched()

    def test_symlinked_file(self) -> None:
        """A final path that is a symlink to a file outside is refused for writes and reads."""
        os.makedirs(os.path.join(self.base, "t"))
        os.symlink(self.sentinel, os.path.join(self.base, "t", "x"))
        storage = self.storage(self.meta, self.base)
        self.assertRaises(UnsafePathError, storage.write, 0, 0, b"EVILEVIL")
        self.assertRaises(UnsafePathError, storage.read_piece, 0)
        self.assertOutsideUntouched()

    def test_dangling_symlink(self) -> None:
        """A dangling symlink pointing outside is refused and its target is not created."""
        os.makedirs(os.path.join(self.base, "t"))
        target = os.path.join(self.outside, "new")
        os.symlink(target, os.path.join(self.base, "t", "x"))
        storage = self.storage(self.meta, self.base)
        self.assertRaises(UnsafePathError, storage.write, 0, 0, b"EVILEVIL")
        self.assertFalse(os.path.lexists(target))
        self.assertOutsideUntouched()

    def test_symlinked_part_file(self) -> None:
        """A part file path that is a symlink to a file outside is refused."""
        os.symlink(self.sentinel, os.path.join(self.base, "." + self.meta.info_hash_hex + ".parts"))
        storage = self.storage(self.meta, self.base, priorities=[1, 0])
        self.assertRaises(UnsafePathError, storage.write, 1, 0, b"EVILEVIL")
        self.assertOutsideUntouched()

    def test_symlinked_skipped_file(self) -> None:
        """A skipped file that is a symlink is refused rather than read through."""
        os.makedirs(os.path.join(self.base, "t"))
        os.symlink(self.sentinel, os.path.join(self.base, "t", "x"))
        storage = self.storage(self.meta, self.base, priorities=[0, 1])
        self.assertRaises(UnsafePathError, storage.read_piece, 0)
        self.assertRaises(UnsafePathError, storage.write, 0, 0, b"EVILEVIL")
        self.assertOutsideUntouched()

    def test_unsanitised_paths_refused(self) -> None:
        """A hand-built Metainfo with '..' or a separator in a path is refused at construction."""
        for bad in [("t", "..", "x"), ("t", "a/b"), (".",), ()]:
            entry = dataclasses.replace(self.meta.files[0], path=bad)
            meta = dataclasses.replace(self.meta, files=(entry,) + self.meta.files[1:])
            self.assertRaises(UnsafePathError, FileStorage, meta, self.base)

    def test_base_directory_may_be_symlink(self) -> None:
        """The download directory itself may be a symlink: the user chose it."""
        real = os.path.join(self.basedir(), "real")
        os.makedirs(real)
        link = os.path.join(self.base, "link")
        os.symlink(real, link)
        storage = self.storage(self.meta, link)
        storage.write(1, 0, b"12345678")
        self.assertEqual(storage.read_piece(1), b"12345678")
        with open(os.path.join(real, "t", "sub", "x"), "rb") as f:
            self.assertEqual(f.read(), b"12345678")

    def test_not_a_regular_file(self) -> None:
        """A directory or a FIFO where a file should be raises StorageError without being opened."""
        os.makedirs(os.path.join(self.base, "t", "x"))
        os.makedirs(os.path.join(self.base, "t", "sub"))
        os.mkfifo(os.path.join(self.base, "t", "sub", "x"))
        storage = self.storage(self.meta, self.base)
        for index in (0, 1):
            self.assertRaises(StorageError, storage.write, index, 0, b"12345678")
            self.assertRaises(StorageError, storage.read_piece, index)

    def test_file_where_directory_expected(self) -> None:
        """A regular file where a directory should be raises StorageError."""
        os.makedirs(os.path.join(self.base, "t"))
        with open(os.path.join(self.base, "t", "sub"), "wb"):
            pass
        storage = self.storage(self.meta, self.base)
        error = self.assertRaises(StorageError, storage.write, 1, 0, b"12345678")
        self.assertIn("not a directory", str(error))
        self.assertNotIsInstance(error, UnsafePathError)


class SafeDirectoryTests(StorageTestMixin, SynchronousTestCase):
    """SafeDirectory on its own: creating, reading, refusing, removing."""

    def setUp(self) -> None:
        self.root = self.basedir()
        self.tree = SafeDirectory(os.path.join(self.root, "dl"))

    def test_write_creates_read_does_not(self) -> None:
        """open_file(write=True) makes the directories and file; reading a missing one raises."""
        self.assertRaises(MissingDataError, self.tree.open_file, ("a", "b"), False)
        self.assertFalse(os.path.exists(self.tree.root))
        fd, writable, size = self.tree.open_file(("a", "b"), True)
        os.close(fd)
        self.assertEqual((writable, size), (True, 0))
        self.assertTrue(os.path.isfile(self.tree.where(("a", "b"))))
        self.assertEqual(self.tree.lstat(("a", "b")).st_size, 0)  # type: ignore[union-attr]
        self.assertIsNone(self.tree.lstat(("a", "c")))
        self.assertIsNone(self.tree.lstat(("z", "c")))

    def test_symlinked_directory_refused(self) -> None:
        """A symlink in the middle of a path raises UnsafePathError, even for lstat."""
        os.makedirs(self.tree.root)
        os.symlink(self.root, os.path.join(self.tree.root, "a"))
        for call in (
            lambda: self.tree.open_file(("a", "b"), True),
            lambda: self.tree.open_file(("a", "b"), False),
            lambda: self.tree.lstat(("a", "b")),
        ):
            self.assertRaises(UnsafePathError, call)
        self.assertFalse(os.path.exists(os.path.join(self.root, "b")))

    def test_read_only_file(self) -> None:
        """A file that refuses writing opens read-only when reading, and fails when writing."""
        fd, _, _ = self.tree.open_file(("f",), True)
        os.close(fd)
        real_open = os.open

        def refusing_open(name: str, flags: int, *args: object, **kwargs: object) -> int:
            if name == "f" and flags & os.O_RDWR:
                raise PermissionError(errno.EACCES, "Permission denied")
            return real_open(name, flags, *args, **kwargs)  # type: ignore[arg-type]

        self.patch(os, "open", refusing_open)
        fd, writable, _ = self.tree.open_file(("f",), False)
        os.close(fd)
        self.assertFalse(writable)
        error = self.assertRaises(StorageError, self.tree.open_file, ("f",), True)
        self.assertIn("permission denied", str(error))

    def test_unlink(self) -> None:
        """unlink removes a file and is silent when it or its directory is missing."""
        fd, _, _ = self.tree.open_file(("a", "b"), True)
        os.close(fd)
        self.tree.unlink(("a", "b"))
        self.assertFalse(os.path.exists(self.tree.where(("a", "b"))))
        self.tree.unlink(("a", "b"))
        self.tree.unlink(("x", "y"))


class PartFileTests(StorageTestMixin, SynchronousTestCase):
    """Bytes of skipped files live in slots of the part file."""

    def setUp(self) -> None:
        # Pieces of 32: piece 0 = want[0:20] + skip[0:12]; piece 1 = skip[12:44];
        # piece 2 = skip[44:50] + want2[0:26]; skip is file 1.
        self.meta = make_metainfo([("want", 20), ("skip", 50), ("want2", 26)], 32)
        self.base = self.basedir()
        self.data = payload(96)

    def raw_part(self, storage: FileStorage) -> bytes:
        with open(storage.part_path(), "rb") as f:
            return f.read()

    def test_skipped_file_never_created(self) -> None:
        """Writing every piece never creates a priority-0 file; its bytes go to the part file."""
        storage = self.storage(self.meta, self.base, priorities=[1, 0, 1])
        write_all(storage, self.data)
        self.assertFalse(os.path.exists(storage.file_path(1)))
        part = os.path.join(self.base, "." + self.meta.info_hash_hex + ".parts")
        self.assertEqual(storage.part_path(), part)
        self.assertEqual(sorted(storage.piece_cache()), [0, 1, 2])
        got = b"".join(storage.read_piece(i) for i in range(3))
        self.assertEqual(got, self.data)

    def test_blocks_land_at_distinct_offsets(self) -> None:
        """Two blocks of one piece, and blocks of two pieces, land apart at their piece offsets."""
        storage = self.storage(self.meta, self.base, priorities=[1, 0, 1])
        storage.write(1, 0, self.data[32:48])
        storage.write(1, 16, self.data[48:64])
        storage.write(0, 16, self.data[16:32])
        cache = storage.piece_cache()
        self.assertEqual(sorted(cache.values()), [0, 32])
        raw = self.raw_part(storage)
        self.assertEqual(raw[cache[1] : cache[1] + 32], self.data[32:64])
        self.assertEqual(raw[cache[0] + 20 : cache[0] + 32], self.data[20:32])
        self.assertEqual(storage.read(1, 0, 32), self.data[32:64])
        self.assertEqual(storage.read(0, 16, 16), self.data[16:32])
        with open(storage.file_path(0), "rb") as f:
            self.assertEqual(f.read(), b"\0" * 16 + self.data[16:20])

    def test_slot_allocated_once_per_piece(self) -> None:
        """Rewriting a piece reuses its slot; slots are appended in order of first use."""
        storage = self.storage(self.meta, self.base, priorities=[1, 0, 1])
        storage.write(2, 0, self.data[64:70])
        storage.write(1, 0, self.data[32:64])
        storage.write(2, 0, self.data[64:70])
        self.assertEqual(storage.piece_cache(), {2: 0, 1: 32})

    def test_wanted_only_piece_has_no_slot(self) -> None:
        """A piece holding no skipped bytes never gets a slot, so no part file appears."""
        meta = make_metainfo([("want", 32), ("skip", 32)], 32)
        storage = self.storage(meta, self.base, priorities=[1, 0])
        storage.write(0, 0, self.data[:32])
        self.assertEqual(storage.piece_cache(), {})
        self.assertIsNone(storage.part_stat())

    def test_piece_cache_round_trip(self) -> None:
        """A new FileStorage given the old piece_cache reads the part-file bytes back."""
        storage = self.storage(self.meta, self.base, priorities=[1, 0, 1])
        write_all(storage, self.data)
        cache = storage.piece_cache()
        storage.close()
        again = self.storage(self.meta, self.base, priorities=[1, 0, 1], piece_cache=cache)
        self.assertEqual(b"".join(again.read_piece(i) for i in range(3)), self.data)
        again.write(0, 0, self.data[:32])
        self.assertEqual(again.piece_cache(), cache)
        # Slot 2 holds only the skipped file's first 6 bytes of that piece.
        self.assertEqual(os.path.getsize(again.part_path()), 64 + 6)

    def test_new_slots_after_restore_are_appended(self) -> None:
        """Slots allocated after a restore go past the restored ones."""
        storage = self.storage(self.meta, self.base, priorities=[1, 0, 1], piece_cache={1: 64})
        storage.write(0, 0, self.data[:32])
        self.assertEqual(storage.piece_cache(), {1: 64, 0: 96})

    def test_bad_piece_cache(self) -> None:
        """A piece_cache naming absent pieces, misaligned or shared slots raises ValueError."""
        for cache in ({3: 0}, {0: 5}, {0: -32}, {0: 0, 1: 0}):
            self.assertRaises(ValueError, FileStorage, self.meta, self.base, None, cache)

    def test_part_stat(self) -> None:
        """part_stat gives the part file's size and mtime, or None when there is none."""
        storage = self.storage(self.meta, self.base, priorities=[1, 0, 1])
        self.assertIsNone(storage.part_stat())
        storage.write(1, 0, self.data[32:64])
        st = os.stat(storage.part_path())
        self.assertEqual(storage.part_stat(), (32, st.st_mtime_ns))

    def test_raise_priority_moves_data(self) -> None:
        """Raising a skipped file moves its slot bytes to the real file; the part file goes."""
        storage = self.storage(self.meta, self.base, priorities=[1, 0, 1])
        write_all(storage, self.data)
        storage.set_priorities([1, 1, 1])
        self.assertEqual(storage.piece_cache(), {})
        self.assertFalse(os.path.exists(storage.part_path()))
        with open(storage.file_path(1), "rb") as f:
            self.assertEqual(f.read(), self.data[20:70])
        self.assertEqual(b"".join(storage.read_piece(i) for i in range(3)), self.data)

    def test_raise_one_of_two_skipped(self) -> None:
        """Raising one of two skipped files keeps the slots still holding the other's bytes."""
        meta = make_metainfo([("a", 20), ("b", 20), ("c", 24)], 32)
        data = self.data[:64]
        storage = self.storage(meta, self.base, priorities=[0, 1, 0])
        write_all(storage, data)
        self.assertEqual(sorted(storage.piece_cache()), [0, 1])
        storage.set_priorities([1, 1, 0])
        self.assertEqual(sorted(storage.piece_cache()), [1])
        self.assertTrue(os.path.exists(storage.part_path()))
        self.assertEqual(storage.read_piece(0) + storage.read_piece(1), data)
        storage.set_priorities([1, 1, 1])
        self.assertFalse(os.path.exists(storage.part_path()))
        self.assertEqual(storage.read_piece(0) + storage.read_piece(1), data)

    def test_raise_partial_slot(self) -> None:
        """Raising a file whose slots are partly written copies only what is there."""
        storage = self.storage(self.meta, self.base, priorities=[1, 0, 1])
        storage.write(1, 0, self.data[32:48])
        storage.set_priorities([1, 1, 1])
        self.assertFalse(os.path.exists(storage.part_path()))
        self.assertEqual(storage.read(1, 0, 16), self.data[32:48])
        self.assertEqual(storage.read(1, 16, 16), b"\0" * 16)  # never written

    def test_lower_priority_keeps_existing_file(self) -> None:
        """A file lowered to 0 that exists on disk keeps its data and receives later writes."""
        storage = self.storage(self.meta, self.base)
        storage.write(1, 0, self.data[32:64])
        storage.set_priorities([1, 0, 1])
        storage.write(2, 0, self.data[64:])
        self.assertEqual(storage.read(1, 0, 32), self.data[32:64])
        self.assertEqual(storage.read(2, 0, 32), self.data[64:])
        self.assertEqual(storage.piece_cache(), {})
        self.assertIsNone(storage.part_stat())

    def test_lower_priority_of_absent_file(self) -> None:
        """A file lowered to 0 before any byte of it was written goes to the part file."""
        storage = self.storage(self.meta, self.base)
        storage.set_priorities([1, 0, 1])
        write_all(storage, self.data)
        self.assertFalse(os.path.exists(storage.file_path(1)))
        self.assertEqual(sorted(storage.piece_cache()), [0, 1, 2])

    def test_bad_priorities(self) -> None:
        """Priorities of the wrong length or negative raise ValueError."""
        storage = self.storage(self.meta, self.base)
        self.assertRaises(ValueError, storage.set_priorities, [1, 1])
        self.assertRaises(ValueError, storage.set_priorities, [1, -1, 1])
        self.assertRaises(ValueError, FileStorage, self.meta, self.base, [1])
        self.assertEqual(storage.priorities, (1, 1, 1))


class DiskErrorTests(StorageTestMixin, SynchronousTestCase):
    """Disk failures raise StorageError with a reason; nothing loops."""

    def test_read_only_directory(self) -> None:
        """Writing into a directory we may not write raises StorageError."""
        if os.geteuid() == 0:
            raise self.skipTest("root ignores directory permissions")  # type: ignore[misc]
        base = self.basedir()
        os.chmod(base, 0o500)
        self.addCleanup(os.chmod, base, 0o700)
        storage = self.storage(single_metainfo(16, 16), base)
        error = self.assertRaises(StorageError, storage.write, 0, 0, b"x" * 16)
        self.assertIn("permission denied", str(error))

    def test_pwrite_without_progress(self) -> None:
        """A write that makes no progress raises StorageError after one attempt, not a loop."""
        storage = self.storage(single_metainfo(16, 16), self.basedir())
        calls = []

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            calls.append(offset)
            return 0

        self.patch(storage, "_pwrite", pwrite)
        error = self.assertRaises(StorageError, storage.write, 0, 0, b"x" * 16)
        self.assertIn("no progress", error.reason)
        self.assertEqual(error.path, storage.file_path(0))
        self.assertEqual(calls, [0])

    def test_short_writes(self) -> None:
        """Short writes are continued until every byte is written."""
        storage = self.storage(single_metainfo(16, 16), self.basedir())
        offsets = []

        def pwrite(fd: int, data: memoryview, offset: int) -> int:
            offsets.append(offset)
            return os.pwrite(fd, data[:3], offset)

        self.patch(storage, "_pwrite", pwrite)
        storage.write(0, 0, payload(16))
        self.assertEqual(offsets, [0, 3, 6, 9, 12, 15])
        self.assertEqual(storage.read_piece(0), payload(16))

    def test_injected_errnos(self) -> None:
        """ENOSPC, EROFS, EIO and EDQUOT from pwrite become StorageErrors naming the cause."""
        storage = self.storage(single_metainfo(16, 16), self.basedir())
        for code, text in [(errno.ENOSPC, "no space left"), (errno.EROFS, "read-only"),
                           (errno.EIO, "input/output"), (errno.EDQUOT, "quota")]:

            def pwrite(fd: int, data: bytes, offset: int, code: int = code) -> int:
                raise OSError(code, os.strerror(code))

            self.patch(storage, "_pwrite", pwrite)
            error = self.assertRaises(StorageError, storage.write, 0, 0, b"x" * 16)
            self.assertIn(text, error.reason)
            self.assertNotIsInstance(error, MissingDataError)

    def test_read_error(self) -> None:
        """An EIO from pread is a StorageError, not MissingDataError."""
        storage = self.storage(single_metainfo(16, 16), self.basedir())
        storage.write(0, 0, payload(16))

        def pread(fd: int, length: int, offset: int) -> bytes:
            raise OSError(errno.EIO, "boom")

        self.patch(storage, "_pread", pread)
        error = self.assertRaises(StorageError, storage.read_piece, 0)
        self.assertNotIsInstance(error, MissingDataError)

    def test_fsync_error(self) -> None:
        """A failing fsync raises StorageError from sync()."""
        storage = self.storage(single_metainfo(16, 16), self.basedir())
        storage.write(0, 0, payload(16))

        def fsync(fd: int) -> None:
            raise OSError(errno.EIO, "boom")

        self.patch(storage, "_fsync", fsync)
        self.assertRaises(StorageError, storage.sync)

    def test_file_removed_while_open(self) -> None:
        """A file deleted under an open descriptor: reads and writes raise, a retry recreates it."""
        storage = self.storage(single_metainfo(32, 16), self.basedir())
        storage.write(0, 0, payload(16))
        os.unlink(storage.file_path(0))
        self.assertRaises(MissingDataError, storage.read_piece, 0)
        storage.write(0, 0, payload(16))
        os.unlink(storage.file_path(0))
        error = self.assertRaises(StorageError, storage.write, 1, 0, payload(16))
        self.assertIn("removed", error.reason)
        self.assertFalse(os.path.exists(storage.file_path(0)))
        storage.write(1, 0, payload(16))
        self.assertEqual(os.path.getsize(storage.file_path(0)), 32)


def open_fds_under(directory: str) -> int:
    """How many of this process's descriptors refer to something under ``directory``."""
    prefix = os.path.realpath(directory) + os.sep
    count = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(os.path.join("/proc/self/fd", name))
        except OSError:
            continue
        if target.startswith(prefix):
            count += 1
    return count


class HandleCacheTests(StorageTestMixin, SynchronousTestCase):
    """Open descriptors are bounded, reused, synced and closed."""

    def setUp(self) -> None:
        if not os.path.isdir("/proc/self/fd"):
            raise self.skipTest("needs /proc/self/fd")  # type: ignore[misc]
        self.meta = make_metainfo([(f"f{i}", 16) for i in range(5)], 16)
        self.base = self.basedir()
        self.data = payload(80)

    def test_bound(self) -> None:
        """With max_open_files=2 and 5 files, never more than 2 are open, and data stays right."""
        storage = self.storage(self.meta, self.base, max_open_files=2)
        seen = []

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            seen.append(open_fds_under(self.base))
            return os.pwrite(fd, data, offset)

        self.patch(storage, "_pwrite", pwrite)
        order = [0, 3, 1, 4, 2, 0, 2, 4]
        for index in order:
            storage.write(index, 0, self.data[index * 16 : index * 16 + 16])
            seen.append(open_fds_under(self.base))
        for index in reversed(order):
            self.assertEqual(storage.read_piece(index), self.data[index * 16 : index * 16 + 16])
            seen.append(open_fds_under(self.base))
        self.assertEqual(max(seen), 2)
        storage.close()
        self.assertEqual(open_fds_under(self.base), 0)

    def test_reuses_descriptors(self) -> None:
        """Repeated I/O on one file opens it once."""
        storage = self.storage(self.meta, self.base)
        opened = []
        real_open = storage._open

        def counting_open(key: int, write: bool) -> tuple[int, bool]:
            opened.append((key, write))
            return real_open(key, write)

        self.patch(storage, "_open", counting_open)
        for _ in range(3):
            storage.write(0, 0, self.data[:16])
            storage.read_piece(0)
        self.assertEqual(opened, [(0, True)])

    def test_read_then_write_upgrades(self) -> None:
        """A file opened for reading is reopened read-write when written, leaving one descriptor."""
        storage = self.storage(self.meta, self.base)
        storage.write(0, 0, self.data[:16])
        storage.close()
        self.assertEqual(storage.read_piece(0), self.data[:16])
        storage.write(0, 0, self.data[:16])
        self.assertEqual(open_fds_under(self.base), 1)

    def test_sync_covers_evicted_files(self) -> None:
        """sync() fsyncs every file written since the last sync, including ones since evicted."""
        storage = self.storage(self.meta, self.base, max_open_files=2)
        synced = []

        def fsync(fd: int) -> None:
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            os.fsync(fd)

        self.patch(storage, "_fsync", fsync)
        write_all(storage, self.data)
        storage.read_piece(0)
        storage.sync()
        expected = sorted(os.path.realpath(storage.file_path(i)) for i in range(5))
        self.assertEqual(sorted(synced), expected)
        self.assertLessEqual(open_fds_under(self.base), 2)
        del synced[:]
        storage.sync()
        self.assertEqual(synced, [])

    def test_sync_includes_part_file(self) -> None:
        """sync() fsyncs the part file when it was written."""
        storage = self.storage(self.meta, self.base, priorities=[1, 0, 1, 1, 1])
        synced = []
        self.patch(storage, "_fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")))
        storage.write(1, 0, self.data[16:32])
        storage.sync()
        self.assertEqual(synced, [os.path.realpath(storage.part_path())])

    def test_concurrent_writes(self) -> None:
        """Writes and reads from several threads at once all land correctly within the bound."""
        meta = make_metainfo([(f"f{i}", 40) for i in range(6)], 16)
        data = payload(240)
        storage = self.storage(meta, self.base, priorities=[1, 0, 1, 1, 0, 1], max_open_files=2)
        errors: list[BaseException] = []

        def work(pieces: range) -> None:
            try:
                for index in pieces:
                    storage.write(index, 0, data[index * 16 : index * 16 + 16])
                    self.assertEqual(storage.read_piece(index), data[index * 16 : index * 16 + 16])
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(range(i, 15, 4),)) for i in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        self.assertEqual(b"".join(storage.read_piece(i) for i in range(15)), data)
        self.assertLessEqual(open_fds_under(self.base), 2)


class ConcurrencyTests(StorageTestMixin, SynchronousTestCase):
    def test_priority_changes_during_writes(self) -> None:
        """Priorities changed while other threads write lose no byte, wherever it was stored."""
        meta = make_metainfo([(f"f{i}", 24) for i in range(8)], 16)
        data = payload(192)
        storage = self.storage(meta, self.basedir(), priorities=[1, 0] * 4, max_open_files=3)
        errors: list[BaseException] = []

        def work(pieces: range) -> None:
            try:
                for _ in range(3):
                    for index in pieces:
                        storage.write(index, 0, data[index * 16 : index * 16 + 16])
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=work, args=(range(i, 12, 3),)) for i in range(3)]
        for thread in threads:
            thread.start()
        for flip in range(20):
            storage.set_priorities([1, 0] * 4 if flip % 2 else [0, 1] * 4)
        for thread in threads:
            thread.join()
        self.assertEqual(errors, [])
        self.assertEqual(b"".join(storage.read_piece(i) for i in range(12)), data)
        storage.set_priorities([1] * 8)
        self.assertEqual(storage.piece_cache(), {})
        self.assertFalse(os.path.exists(storage.part_path()))
        self.assertEqual(b"".join(storage.read_piece(i) for i in range(12)), data)

    def test_willneed_before_the_lock(self) -> None:
        """Each write's range is announced with posix_fadvise(WILLNEED) before
        its file's write lock is taken (so pages are filled outside it)."""
        meta = make_metainfo([("a", 16), ("b", 16)], 16)
        storage = self.storage(meta, self.basedir())
        calls: list[tuple[int, int, int, bool]] = []

        def fadvise(fd: int, offset: int, length: int, advice: int) -> None:
            locks = list(storage._write_locks.values())
            calls.append((offset, length, advice, any(lock.locked() for lock in locks)))
            raise OSError(errno.EINVAL, "only a hint")  # and errors are ignored

        self.patch(storage_module, "_fadvise", fadvise)
        storage.write(0, 8, b"a" * 8)
        storage.write(1, 0, b"b" * 16)
        willneed = storage_module._WILLNEED
        self.assertEqual(calls, [(8, 8, willneed, False), (0, 16, willneed, False)])
        self.assertEqual(storage.read(0, 8, 8) + storage.read_piece(1), b"a" * 8 + b"b" * 16)

    def test_writes_to_one_file_hold_its_lock(self) -> None:
        """Each pwrite runs under its file's write lock, and only that file's
        (the kernel serialises writes to an inode anyway; waiting threads
        would spin on its lock)."""
        meta = make_metainfo([("a", 16), ("b", 16)], 16)
        storage = self.storage(meta, self.basedir())
        held: list[tuple[int, list[bool]]] = []
        real = storage._pwrite

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            held.append((fd, [lock.locked() for lock in storage._write_locks.values()]))
            return real(fd, data, offset)

        self.patch(storage, "_pwrite", pwrite)
        storage.write(0, 0, b"a" * 16)
        storage.write(1, 0, b"b" * 16)
        self.assertEqual([locks for _, locks in held], [[True], [False, True]])
        self.assertEqual(sorted(storage._write_locks), [0, 1])
        self.assertFalse(any(lock.locked() for lock in storage._write_locks.values()))


class WriteBehindTests(StorageTestMixin, SynchronousTestCase):
    """Files' write-back starts as they are written; sync() still makes them durable."""

    def setUp(self) -> None:
        if not os.path.isdir("/proc/self/fd"):
            raise self.skipTest("needs /proc/self/fd")  # type: ignore[misc]
        self.meta = make_metainfo([("a", 24), ("b", 40)], 16)
        self.data = payload(64)

    def recorded(self, storage: FileStorage) -> list[tuple[str, int, int]]:
        calls: list[tuple[str, int, int]] = []

        def start(fd: int, offset: int, length: int) -> bool:
            calls.append((os.path.basename(os.readlink(f"/proc/self/fd/{fd}")), offset, length))
            return True

        self.patch(storage, "_start_writeback", start)
        return calls

    def test_every_batch(self) -> None:
        """Once writeback_batch bytes were written to a file, its whole
        write-back is started (offset 0, length 0: to its end), once the
        bytes are written; the count starts again."""
        storage = self.storage(self.meta, self.basedir())
        storage.writeback_batch = 16
        calls = self.recorded(storage)
        storage.write(1, 0, self.data[16:32])  # a[16:24] and b[0:8]: 8 bytes each
        self.assertEqual(calls, [])
        storage.write(0, 0, self.data[:16])  # a: 24 bytes in all
        self.assertEqual(calls, [("a", 0, 0)])
        with open(storage.file_path(0), "rb") as f:
            self.assertEqual(f.read(), self.data[:24])
        storage.write(2, 0, self.data[32:48])  # b: 24 bytes
        storage.write(3, 0, self.data[48:64])  # b: 40 bytes, 16 since the last start
        self.assertEqual(calls, [("a", 0, 0), ("b", 0, 0), ("b", 0, 0)])

    def test_part_file(self) -> None:
        """Bytes of a skipped file go to the part file, whose write-back starts too."""
        storage = self.storage(self.meta, self.basedir(), priorities=[1, 0])
        storage.writeback_batch = 16
        calls = self.recorded(storage)
        storage.write(3, 0, self.data[48:64])
        self.assertEqual(calls, [(os.path.basename(storage.part_path()), 0, 0)])

    def test_on_eviction(self) -> None:
        """A file leaving the descriptor cache with bytes not yet sent has its
        write-back started before it is closed; one with none does not."""
        meta = make_metainfo([(f"f{i}", 16) for i in range(3)], 16)
        storage = self.storage(meta, self.basedir(), max_open_files=1)
        calls = self.recorded(storage)
        storage.write(0, 0, self.data[:16])  # below the 1 MiB batch
        storage.write(1, 0, self.data[16:32])  # f0 evicted
        self.assertEqual(calls, [("f0", 0, 0)])
        storage.read_piece(0)  # f0 reopened to read: f1 evicted with its bytes
        storage.read_piece(1)  # f1 reopened: f0 (read only, nothing behind) evicted
        self.assertEqual(calls, [("f0", 0, 0), ("f1", 0, 0)])

    def test_off(self) -> None:
        """With write_behind=False nothing is started; the data is the same."""
        storage = self.storage(self.meta, self.basedir(), write_behind=False)
        storage.writeback_batch = 1
        calls = self.recorded(storage)
        write_all(storage, self.data)
        storage.close()
        self.assertEqual(calls, [])
        self.assertEqual(b"".join(storage.read_piece(i) for i in range(4)), self.data)

    def test_sync_still_fsyncs(self) -> None:
        """Write-behind makes nothing durable: sync() fsyncs every written file as before."""
        storage = self.storage(self.meta, self.basedir())
        self.recorded(storage)
        synced: list[str] = []
        self.patch(storage, "_fsync", lambda fd: synced.append(
            os.path.basename(os.readlink(f"/proc/self/fd/{fd}"))))
        write_all(storage, self.data)
        storage.sync()
        self.assertEqual(sorted(synced), ["a", "b"])

    def test_start_writeback(self) -> None:
        """The real call: True for a file just written (on Linux), False for a
        descriptor it cannot write back (the error is only a hint's)."""
        import sys

        path = os.path.join(self.basedir(), "x")
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        self.addCleanup(os.close, fd)
        os.pwrite(fd, b"x" * 4096, 0)
        self.assertEqual(writeback_module.start_writeback(fd, 0, 4096),
                         sys.platform.startswith("linux"))
        self.assertFalse(writeback_module.start_writeback(-1, 0, 4096))

    def test_no_writeback_where_missing(self) -> None:
        """Without the call (not Linux) writes go as before."""
        self.patch(writeback_module, "_writeback", None)
        self.patch(writeback_module, "_writeback_known", True)
        self.assertFalse(writeback_module.start_writeback(0, 0, 1))
        storage = self.storage(self.meta, self.basedir())
        write_all(storage, self.data)
        self.assertEqual(b"".join(storage.read_piece(i) for i in range(4)), self.data)


def nowait_reads_work(directory: str) -> bool:
    """Whether ``preadv2(RWF_NOWAIT)`` answers on this filesystem."""
    flag = getattr(os, "RWF_NOWAIT", None)
    if flag is None:
        return False
    path = os.path.join(directory, "probe")
    with open(path, "wb") as f:
        f.write(b"x" * 16)
    fd = os.open(path, os.O_RDONLY)
    try:
        return os.preadv(fd, [bytearray(16)], 0, flag) == 16
    except OSError:
        return False
    finally:
        os.close(fd)
        os.unlink(path)


class CachedReadTests(StorageTestMixin, SynchronousTestCase):
    """read_piece_cached: the page cache's bytes on the calling thread, or None."""

    def setUp(self) -> None:
        # Pieces of 32: piece 0 = want[0:20] + skip[0:12]; piece 1 = skip[12:44];
        # piece 2 = skip[44:50] + want2[0:26].
        self.meta = make_metainfo([("want", 20), ("skip", 50), ("want2", 26)], 32)
        self.base = self.basedir()
        if not nowait_reads_work(self.base):
            raise self.skipTest("no preadv2(RWF_NOWAIT) here")  # type: ignore[misc]
        self.data = payload(96)

    def test_same_bytes_as_read_piece(self) -> None:
        """Pieces across files and in the part file read the same both ways."""
        for priorities in ([1, 1, 1], [1, 0, 1]):
            base = self.basedir()
            storage = self.storage(self.meta, base, priorities=priorities)
            write_all(storage, self.data)
            for index in range(3):
                self.assertEqual(storage.read_piece_cached(index), storage.read_piece(index))

    def test_pad_files_are_zeros(self) -> None:
        """A pad file's bytes are zeros, never read."""
        meta = make_metainfo([("a", 20), ("-", 12, b"p"), ("b", 32)], 32)
        storage = self.storage(meta, self.base)
        storage.write(0, 0, self.data[:20] + bytes(12))
        storage.write(1, 0, self.data[:32])
        self.assertEqual(storage.read_piece_cached(0), self.data[:20] + bytes(12))

    def test_nothing_that_would_wait(self) -> None:
        """None (read in the pool instead) when a file is not open, when the
        lock is taken, when reads are injected, or when the file was removed."""
        storage = self.storage(self.meta, self.base)
        write_all(storage, self.data)
        fresh = self.storage(self.meta, self.base)
        self.assertIsNone(fresh.read_piece_cached(0))  # no handle: opening is I/O
        fresh.read_piece(0)
        self.assertEqual(fresh.read_piece_cached(0), self.data[:32])
        held, release = threading.Event(), threading.Event()

        def hold() -> None:
            with storage._lock:
                held.set()
                release.wait(10)

        thread = threading.Thread(target=hold)
        thread.start()
        held.wait(10)
        try:
            self.assertIsNone(storage.read_piece_cached(1))
        finally:
            release.set()
            thread.join(10)
        self.assertEqual(storage.read_piece_cached(1), self.data[32:64])
        self.patch(storage, "_pread", lambda fd, n, offset: os.pread(fd, n, offset))
        self.assertIsNone(storage.read_piece_cached(1))
        os.unlink(fresh.file_path(0))
        self.assertIsNone(fresh.read_piece_cached(0))
        self.assertRaises(MissingDataError, fresh.read_piece, 0)


class SafeDirectoryLstatTests(SynchronousTestCase):
    """SafeDirectory.lstat, right under the root (one lstat) and deeper
    (the descriptor walk): the same answers."""

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(self.root, "d"))
        self.outside = os.path.abspath(self.mktemp())
        with open(self.outside, "wb") as f:
            f.write(b"outside")
        self.safe = SafeDirectory(self.root)

    def check(self, *prefix: str) -> None:
        base = os.path.join(self.root, *prefix)
        with open(os.path.join(base, "file"), "wb") as f:
            f.write(b"12345")
        os.symlink(self.outside, os.path.join(base, "link"))
        os.mkdir(os.path.join(base, "dir"))
        st = self.safe.lstat((*prefix, "file"))
        assert st is not None
        self.assertEqual(st.st_size, 5)
        self.assertIsNone(self.safe.lstat((*prefix, "missing")))
        self.assertRaises(UnsafePathError, self.safe.lstat, (*prefix, "link"))
        self.assertRaises(StorageError, self.safe.lstat, (*prefix, "dir"))

    def test_under_the_root(self) -> None:
        """A file right under the root: its stat, None if missing, a symlink
        or a directory refused."""
        self.check()

    def test_deeper(self) -> None:
        """The same one directory down."""
        self.check("d")

    def test_missing_root(self) -> None:
        """A missing root is a missing file, at any depth."""
        safe = SafeDirectory(os.path.join(self.root, "nowhere"))
        self.assertIsNone(safe.lstat(("file",)))
        self.assertIsNone(safe.lstat(("d", "file")))
