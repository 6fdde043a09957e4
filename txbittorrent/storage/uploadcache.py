"""Whole pieces in memory for uploading, least recently used first out.

Theory of operation
-------------------
Peers ask for 16 KiB blocks, usually every block of a piece in a row.  Reading
each block from disk would cost a thread hop per block; reading the whole
piece once (one pool job) and serving every block from memory costs one.
``UploadCache`` holds whole pieces up to ``max_bytes`` in total, evicting the
least recently used; ``fetch(index)`` reads a missing piece with the injected
``read_piece`` (``Store.read_piece``) and coalesces concurrent fetches of the
same piece into one read.  A piece larger than the whole budget is still
returned to its fetchers, then kept alone.

``put`` lets the swarm add a piece it just downloaded and verified, so the
peers that want it next are served without a read.  The cached objects are
never mutated (a ``bytearray`` handed to ``put`` must no longer be written),
so callers may serve ``memoryview`` slices of them after eviction.

``when_idle()`` fires once no read is in flight (``Swarm.stop`` waits on it).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.python.failure import Failure

__all__ = ["UploadCache", "PieceData"]

PieceData = bytes | bytearray


class UploadCache:
    """An LRU cache of whole pieces with coalesced reads (see the module docstring)."""

    def __init__(self, read_piece: Callable[[int], Deferred[PieceData]], max_bytes: int) -> None:
        if max_bytes < 0:
            raise ValueError("max_bytes must not be negative")
        self.max_bytes = max_bytes
        self.size = 0
        self.reads = 0
        self.hits = 0
        self._read_piece = read_piece
        self._pieces: OrderedDict[int, PieceData] = OrderedDict()
        self._reading: dict[int, list[Deferred[PieceData]]] = {}
        self._idle: list[Deferred[None]] = []

    def __contains__(self, index: object) -> bool:
        return index in self._pieces

    def get(self, index: int) -> PieceData | None:
        """The cached piece (now the most recently used), or ``None``."""
        data = self._pieces.get(index)
        if data is not None:
            self._pieces.move_to_end(index)
            self.hits += 1
        return data

    def put(self, index: int, data: PieceData) -> None:
        """Cache ``data`` as piece ``index`` (which must not change afterwards)."""
        old = self._pieces.pop(index, None)
        if old is not None:
            self.size -= len(old)
        self._pieces[index] = data
        self.size += len(data)
        self._evict()

    def discard(self, index: int) -> None:
        old = self._pieces.pop(index, None)
        if old is not None:
            self.size -= len(old)

    def clear(self) -> None:
        self._pieces.clear()
        self.size = 0

    def _evict(self) -> None:
        pieces = self._pieces
        while self.size > self.max_bytes and len(pieces) > 1:
            _, data = pieces.popitem(last=False)
            self.size -= len(data)
        if self.size > self.max_bytes and not self.max_bytes:
            self.clear()

    @property
    def reading(self) -> int:
        """Pieces being read now."""
        return len(self._reading)

    def fetch(self, index: int) -> Deferred[PieceData]:
        """Piece ``index``, from memory or read once however many ask."""
        data = self.get(index)
        if data is not None:
            return succeed(data)
        d: Deferred[PieceData] = Deferred()
        waiting = self._reading.get(index)
        if waiting is not None:
            waiting.append(d)
            return d
        self._reading[index] = [d]
        self.reads += 1
        read = maybeDeferred(self._read_piece, index)
        read.addCallbacks(self._arrived, self._failed, callbackArgs=(index,), errbackArgs=(index,))
        return d

    def _arrived(self, data: PieceData, index: int) -> None:
        self.put(index, data)
        self._fire(index, data)

    def _failed(self, failure: Failure, index: int) -> None:
        self._fire(index, failure)

    def _fire(self, index: int, result: PieceData | Failure) -> None:
        for d in self._reading.pop(index, []):
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)
        if not self._reading:
            idle, self._idle = self._idle, []
            for w in idle:
                w.callback(None)

    def when_idle(self) -> Deferred[None]:
        """Fires once no read is in flight."""
        if not self._reading:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d
