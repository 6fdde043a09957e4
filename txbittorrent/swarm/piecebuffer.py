"""Pieces being downloaded, held in memory until they are verified and written.

Theory of operation
-------------------
Blocks arrive 16 KiB at a time; writing each to disk would cost a thread hop
and a system call per block, and would put unverified data on disk.  Instead
``PieceBuffers`` gives each piece in progress one ``bytearray`` of the piece's
size, allocated when the swarm first requests one of its blocks; blocks are
copied into place as they arrive.  When the last block is in, the swarm
``take``s the buffer and hands it to ``verify_and_write`` in the store's
thread pool: one job hashes the piece and, only if the SHA-1 matches, writes
it whole.  So only verified data ever reaches the disk and nothing is read
back.  The buffer stays counted against the budget until ``release``, when
the job is done (the swarm may then keep it in the upload cache, which has
its own budget).

``used`` is the bytes of every buffer allocated and not released;
``over_budget`` tells the swarm to stop starting new pieces (it keeps
finishing the ones it has), which bounds memory at about ``limit`` plus one
pick's worth of new pieces.
"""

from __future__ import annotations

import hashlib
from collections.abc import KeysView
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from txbittorrent.storage.files import FileStorage

__all__ = ["PieceBuffers", "verify_and_write"]


class PieceBuffers:
    """In-memory buffers of the pieces in progress (see the module docstring)."""

    __slots__ = ("limit", "used", "_buffers")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._buffers: dict[int, bytearray] = {}

    def __contains__(self, index: object) -> bool:
        return index in self._buffers

    def __len__(self) -> int:
        return len(self._buffers)

    def indexes(self) -> KeysView[int]:
        """The pieces that have a buffer (a live view)."""
        return self._buffers.keys()

    def get(self, index: int) -> bytearray | None:
        return self._buffers.get(index)

    def create(self, index: int, size: int) -> bytearray:
        """The buffer of piece ``index``, allocated (zeroed) if it has none."""
        buffer = self._buffers.get(index)
        if buffer is None:
            buffer = self._buffers[index] = bytearray(size)
            self.used += size
        return buffer

    def take(self, index: int) -> bytearray | None:
        """Remove the piece's buffer for hashing; it stays counted until ``release``."""
        return self._buffers.pop(index, None)

    def drop(self, index: int) -> None:
        """Forget the piece's buffer and its bytes at once."""
        buffer = self._buffers.pop(index, None)
        if buffer is not None:
            self.used -= len(buffer)

    def release(self, size: int) -> None:
        """A buffer ``take``n earlier is no longer ours to count."""
        self.used -= size

    @property
    def over_budget(self) -> bool:
        return self.used >= self.limit


def verify_and_write(storage: FileStorage, index: int, expected: bytes, buffer: bytearray) -> bool:
    """Blocking (run it in the pool): hash the piece; if it matches ``expected``
    write it whole.  True if it passed."""
    if hashlib.sha1(buffer).digest() != expected:
        return False
    storage.write(index, 0, buffer)
    return True
