"""Resume files on disk: atomic replacement and bounded reading.

Blocking file I/O, no Twisted: call it from a thread (or at start-up and
shutdown, where blocking is acceptable).

``write_atomic`` never leaves a half-written resume file where the old one
was: the new bytes go to a temporary file in the same directory, are flushed
and fsynced, and only then renamed over the old name (``os.replace`` is atomic
on POSIX and Windows within one file system); finally the directory is fsynced
so the rename itself survives a power cut.  On any failure the temporary file
is removed and the old file is untouched.  Given a ``DirSyncs``, the fsync of
the directory is left to it: it runs once per directory for many replaced
files (``storage.batch``), and the caller counts a file as durable only
after that.

``read_resume`` refuses files larger than ``MAX_RESUME_SIZE``: a resume record
is a bitfield and a few numbers per file, so anything that big is not ours.
"""

from __future__ import annotations

import contextlib
import os
import secrets

from txbittorrent.core.resume import ResumeRecord, decode_record, encode_record
from txbittorrent.errors import ResumeDataError, StorageError

__all__ = [
    "MAX_RESUME_SIZE", "DirSyncs", "write_atomic", "read_resume", "save_record", "load_record",
]

MAX_RESUME_SIZE = 64 * 1024 * 1024


def _fsync_directory(directory: str) -> None:
    flags = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0)
    try:
        fd = os.open(directory, flags)
    except OSError:
        # Windows cannot open a directory; its rename is already durable enough.
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class DirSyncs:
    """Directory fsyncs left for later by ``write_atomic``, each directory
    once; ``current`` names the job that asks (``storage.batch`` sets it)."""

    __slots__ = ("current", "_waiting")

    def __init__(self) -> None:
        self.current = 0
        self._waiting: dict[str, list[int]] = {}

    def add(self, directory: str) -> None:
        self._waiting.setdefault(directory, []).append(self.current)

    def run(self) -> dict[int, StorageError]:
        """Fsync every directory once; the jobs whose directory failed, with why."""
        failed: dict[int, StorageError] = {}
        for directory, jobs in self._waiting.items():
            try:
                _fsync_directory(directory)
            except OSError as e:
                error = StorageError(f"cannot sync directory {directory}: {e}", directory)
                for job in jobs:
                    failed[job] = error
        self._waiting = {}
        return failed


def write_atomic(
    path: str, data: bytes, mode: int = 0o600, dir_syncs: DirSyncs | None = None
) -> None:
    """Replace the file at ``path`` with ``data``, all or nothing; a new
    file gets ``mode`` less the umask (owner only by default).  With
    ``dir_syncs``, the directory's fsync is left to it.

    Raises ``StorageError`` if anything fails; the old file (if any) is then
    left as it was and no temporary file is left behind."""
    directory = os.path.dirname(os.path.abspath(path))
    base = os.path.basename(path)
    temp = os.path.join(directory, f".{base}.{secrets.token_hex(6)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    except OSError as e:
        raise StorageError(f"cannot create a temporary file: {e}", path) from e
    try:
        try:
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise StorageError(f"cannot write {base}: {e}", path) from e
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        raise
    if dir_syncs is not None:
        dir_syncs.add(directory)
        return
    try:
        _fsync_directory(directory)
    except OSError as e:
        raise StorageError(f"cannot sync directory {directory}: {e}", path) from e


def read_resume(path: str, max_size: int = MAX_RESUME_SIZE) -> bytes | None:
    """The bytes of the resume file at ``path``, or ``None`` if there is none.

    Raises ``ResumeDataError`` for a file over ``max_size`` bytes and
    ``StorageError`` when the file exists but cannot be read."""
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size > max_size:
                raise ResumeDataError(f"resume file of {size} bytes exceeds {max_size}")
            # Read one byte more than allowed in case the file grew since fstat.
            data = f.read(max_size + 1)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StorageError(f"cannot read resume data: {e}", path) from e
    if len(data) > max_size:
        raise ResumeDataError(f"resume file exceeds {max_size} bytes")
    return data


def save_record(path: str, record: ResumeRecord, dir_syncs: DirSyncs | None = None) -> None:
    """Encode ``record`` and write it atomically to ``path``."""
    write_atomic(path, encode_record(record), dir_syncs=dir_syncs)


def load_record(
    path: str, info_hash: bytes, piece_count: int, file_count: int
) -> ResumeRecord | None:
    """The record at ``path``, or ``None`` if there is no file.

    Raises ``ResumeDataError`` for a file that is not a valid record of this
    torrent; callers treat that like ``None`` (and check everything)."""
    raw = read_resume(path)
    if raw is None:
        return None
    return decode_record(raw, info_hash, piece_count, file_count)
