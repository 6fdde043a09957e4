"""Tests for txbittorrent.storage.resumefile: atomic writes and bounded reads."""

from __future__ import annotations

import errno
import os
import stat
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.storage import resumefile
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.resume import make_record
from txbittorrent.errors import ResumeDataError, StorageError
from txbittorrent.storage.resumefile import load_record, read_resume, save_record, write_atomic

HASH = b"\x11" * 20


class FakeOS:
    """Stands in for the ``os`` module inside resumefile; fails where told.

    ``fail`` names the function that raises ``ENOSPC``; ``os.write`` writes at
    most ``chunk`` bytes per call and fails once ``budget`` bytes are written."""

    def __init__(self, fail: str | None = None, chunk: int = 1 << 30, budget: int = 1 << 30):
        self.fail = fail
        self.chunk = chunk
        self.budget = budget
        self.fsynced: list[bool] = []

    def __getattr__(self, name: str) -> Any:
        if name == self.fail:
            def failing(*args: object) -> None:
                raise OSError(errno.ENOSPC, "No space left on device (injected)")
            return failing
        return getattr(os, name)

    def write(self, fd: int, data: memoryview) -> int:
        if self.fail == "write" and self.budget <= 0:
            raise OSError(errno.ENOSPC, "No space left on device (injected)")
        n = os.write(fd, data[: min(self.chunk, self.budget)])
        self.budget -= n
        return n

    def fsync(self, fd: int) -> None:
        if self.fail == "fsync":
            raise OSError(errno.EIO, "I/O error (injected)")
        self.fsynced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        os.fsync(fd)


class WriteAtomicTests(SynchronousTestCase):
    """write_atomic replaces a file all or nothing."""

    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.mkdir(self.dir)
        self.path = os.path.join(self.dir, "t.resume")

    def contents(self) -> bytes:
        with open(self.path, "rb") as f:
            return f.read()

    def assertOnlyTarget(self) -> None:
        self.assertEqual(os.listdir(self.dir), ["t.resume"])

    def test_creates(self) -> None:
        """A new file is written with exactly the bytes given."""
        write_atomic(self.path, b"hello")
        self.assertEqual(self.contents(), b"hello")
        self.assertOnlyTarget()

    def test_replaces(self) -> None:
        """An existing file is replaced and no temporary file remains."""
        write_atomic(self.path, b"old" * 1000)
        write_atomic(self.path, b"new")
        self.assertEqual(self.contents(), b"new")
        self.assertOnlyTarget()

    def test_short_writes(self) -> None:
        """Partial os.write results are continued until every byte is out."""
        fake = FakeOS(chunk=7)
        self.patch(resumefile, "os", fake)
        data = bytes(range(256)) * 10
        write_atomic(self.path, data)
        self.assertEqual(self.contents(), data)

    def test_fsyncs_file_and_directory(self) -> None:
        """The data file is fsynced before the rename, then the directory."""
        fake = FakeOS()
        self.patch(resumefile, "os", fake)
        write_atomic(self.path, b"x")
        self.assertEqual(fake.fsynced, [False, True])

    def assertFailureKeepsOld(self, fake: FakeOS) -> None:
        write_atomic(self.path, b"old record")
        self.patch(resumefile, "os", fake)
        error = self.assertRaises(StorageError, write_atomic, self.path, b"n" * 100_000)
        self.assertEqual(error.path, self.path)
        self.assertEqual(self.contents(), b"old record")
        self.assertOnlyTarget()

    def test_write_fails_midway(self) -> None:
        """A disk that fills up mid-write leaves the old file and no temporary file."""
        self.assertFailureKeepsOld(FakeOS(fail="write", chunk=4096, budget=10_000))

    def test_fsync_fails(self) -> None:
        """A failing fsync leaves the old file and no temporary file."""
        self.assertFailureKeepsOld(FakeOS(fail="fsync"))

    def test_replace_fails(self) -> None:
        """A failing rename leaves the old file and no temporary file."""
        self.assertFailureKeepsOld(FakeOS(fail="replace"))

    def test_interrupted(self) -> None:
        """A non-OSError exception mid-write propagates and still removes the temporary file."""
        write_atomic(self.path, b"old record")
        fake = FakeOS()

        def interrupted(fd: int, data: memoryview) -> int:
            raise KeyboardInterrupt()

        fake.write = interrupted  # type: ignore[method-assign]
        self.patch(resumefile, "os", fake)
        self.assertRaises(KeyboardInterrupt, write_atomic, self.path, b"new")
        self.assertEqual(self.contents(), b"old record")
        self.assertOnlyTarget()

    def test_missing_directory(self) -> None:
        """A directory that does not exist gives StorageError."""
        path = os.path.join(self.dir, "nope", "t.resume")
        self.assertRaises(StorageError, write_atomic, path, b"x")


class ReadResumeTests(SynchronousTestCase):
    """read_resume returns bytes, None for no file, and refuses huge files."""

    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.mkdir(self.dir)
        self.path = os.path.join(self.dir, "t.resume")

    def test_missing(self) -> None:
        """A missing file reads as None."""
        self.assertIsNone(read_resume(self.path))

    def test_reads(self) -> None:
        """The file's bytes come back unchanged."""
        write_atomic(self.path, b"d1:ai1ee")
        self.assertEqual(read_resume(self.path), b"d1:ai1ee")

    def test_limit(self) -> None:
        """A file at the limit is read; one byte over is refused."""
        write_atomic(self.path, b"x" * 100)
        self.assertEqual(read_resume(self.path, max_size=100), b"x" * 100)
        self.assertRaises(ResumeDataError, read_resume, self.path, max_size=99)

    def test_default_limit(self) -> None:
        """The default limit is 64 MiB."""
        self.assertEqual(resumefile.MAX_RESUME_SIZE, 64 * 1024 * 1024)

    def test_unreadable(self) -> None:
        """A path that exists but is not a readable file gives StorageError."""
        self.assertRaises(StorageError, read_resume, self.dir)


class RecordFileTests(SynchronousTestCase):
    """save_record and load_record round-trip a record through a file."""

    def setUp(self) -> None:
        self.dir = self.mktemp()
        os.mkdir(self.dir)
        self.path = os.path.join(self.dir, "t.resume")
        self.record = make_record(
            HASH, Bitfield.from_indexes([1], 4), {1: 0}, [(5, 6)], (9, 10), clean=True
        )

    def test_round_trip(self) -> None:
        """A saved record loads back equal."""
        save_record(self.path, self.record)
        self.assertEqual(load_record(self.path, HASH, 4, 1), self.record)

    def test_missing(self) -> None:
        """No file loads as None."""
        self.assertIsNone(load_record(self.path, HASH, 4, 1))

    def test_corrupt(self) -> None:
        """A truncated file raises ResumeDataError."""
        save_record(self.path, self.record)
        with open(self.path, "r+b") as f:
            f.truncate(10)
        self.assertRaises(ResumeDataError, load_record, self.path, HASH, 4, 1)
