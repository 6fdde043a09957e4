"""Starting a file's write-back without waiting: ``start_writeback``.

``sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)`` asks Linux to
start writing a file's dirty pages to the disk and returns once the I/O is
queued: it waits for nothing and makes nothing durable (no metadata, no
device cache flush; ``fsync`` does that).  ``storage.files.FileStorage``
calls it for every ``WRITEBACK_BATCH`` bytes written to a file, so that a
download's dirty pages do not pile up until the ``fsync`` at its end (see
its module docstring for the figures).  Python has no binding for it: the
call goes through libc with ``ctypes``, found once per process.  Not
Linux, or the call failing: False, and writes go as before (it is only a
hint; ``fsync`` reports errors).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable

__all__ = ["WRITEBACK_BATCH", "start_writeback"]

WRITEBACK_BATCH = 1 << 20
"""Bytes written to a file between two starts of its write-back (one
system call per megabyte, whatever the piece size)."""

_SYNC_FILE_RANGE_WRITE = getattr(os, "SYNC_FILE_RANGE_WRITE", 2)
_writeback: Callable[[int, int, int], None] | None = None
_writeback_known = False


def _find_writeback() -> Callable[[int, int, int], None] | None:
    """``sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE)`` as a
    function raising ``OSError``; None where there is none (not Linux)."""
    native = getattr(os, "sync_file_range", None)  # no Python has it yet
    if native is not None:
        return lambda fd, offset, length: native(fd, offset, length, _SYNC_FILE_RANGE_WRITE)
    if not sys.platform.startswith("linux"):
        return None
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        call = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    call.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    call.restype = ctypes.c_int

    def writeback(fd: int, offset: int, length: int) -> None:
        if call(fd, offset, length, _SYNC_FILE_RANGE_WRITE) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, os.strerror(errno))

    return writeback


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing ``length`` bytes of ``fd`` at
    ``offset`` back to the disk, without waiting; False where it cannot
    (not Linux, or the call failed: only a hint, ``fsync`` tells errors)."""
    global _writeback, _writeback_known
    if not _writeback_known:
        _writeback = _find_writeback()  # the same answer in every thread
        _writeback_known = True
    if _writeback is None:
        return False
    try:
        _writeback(fd, offset, length)
    except OSError:
        return False
    return True
