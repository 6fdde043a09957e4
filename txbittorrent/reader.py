"""Reading a file of a torrent while it downloads (streaming).

Theory of operation
-------------------
``Torrent.open(file_index)`` gives a ``FileReader``.  ``read(offset,
length)`` returns a Deferred that fires with the bytes once every piece
holding them is verified (at once if they are).  Each read moves the
reader's position to ``offset`` and gives the picker deadlines over a
readahead window from there (``core.transfer.readahead``): the piece under
the position is due now, the next ones a ``step`` later each, so they come
in the order they will be read, before anything else; the rest of the
torrent stays rarest-first.  A deadline piece starts even when the piece
buffer budget is full, and once late its blocks may be asked of a second
peer.

The reader owns its pending reads and its deadlines, nothing else.  It
reaches the torrent through a small ``ReaderHost`` (the ``Torrent``):
which pieces are verified, news of pieces as they pass, reads from the
store, and a per-owner map of deadlines the host merges with other
readers'.  Cancelling a read's Deferred forgets it; once a reader has no
read pending its deadlines are dropped, and ``close`` drops them too.

Bounded: one read is at most ``max_read`` bytes (``ValueError`` past it),
and the deadlines cover at most the readahead window.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, gatherResults, succeed

from txbittorrent.core.layout import Layout
from txbittorrent.core.transfer.readahead import (
    piece_reads,
    pieces_of_range,
    readahead_deadlines,
)
from txbittorrent.errors import LocalProtocolError

__all__ = ["FileReader", "ReaderHost", "ReaderConfig"]


class ReaderHost(Protocol):
    """What a reader needs of its torrent."""

    @property
    def layout(self) -> Layout: ...

    def has_piece(self, index: int) -> bool:
        """Whether piece ``index`` is verified."""

    def read_piece_range(self, index: int, begin: int, length: int) -> Deferred[bytes]:
        """Bytes of a verified piece, from the disk."""

    def watch_pieces(self, callback: Callable[[int], object]) -> Callable[[], None]:
        """Call ``callback(index)`` for each piece that passes; returns the
        function that stops it."""

    def set_deadlines(self, owner: object, deadlines: dict[int, float]) -> None:
        """Replace ``owner``'s deadlines (piece index to clock time)."""

    def seconds(self) -> float:
        """The clock's time now."""


class ReaderConfig:
    """How far and how fast a reader reads ahead."""

    def __init__(
        self, readahead: int = 8 * 1024 * 1024, step: float = 0.5, max_read: int = 16 * 1024 * 1024
    ) -> None:
        if readahead < 0 or step < 0 or max_read <= 0:
            raise ValueError("readahead, step must not be negative; max_read must be positive")
        self.readahead = readahead
        """Bytes from the position given deadlines."""
        self.step = step
        """Seconds between the deadlines of consecutive pieces."""
        self.max_read = max_read
        """The longest single read."""


class _PendingRead:
    __slots__ = ("offset", "length", "missing", "deferred")

    def __init__(self, offset: int, length: int, missing: set[int], deferred: Deferred[bytes]):
        self.offset = offset
        self.length = length
        self.missing = missing
        self.deferred = deferred


class FileReader:
    """Reads one file of a torrent as its pieces arrive (see the module docstring)."""

    def __init__(
        self, host: ReaderHost, file_index: int, config: ReaderConfig | None = None
    ) -> None:
        self._host = host
        self.file_index = file_index
        self.config = config if config is not None else ReaderConfig()
        self.size = host.layout.file_length(file_index)
        self.position = 0
        self._pending: list[_PendingRead] = []
        self._unwatch: Callable[[], None] | None = None
        self._closed = False

    def read(self, offset: int, length: int) -> Deferred[bytes]:
        """``length`` bytes at ``offset`` (fewer at the end of the file), once
        they are verified; cancelling the Deferred forgets the read."""
        if self._closed:
            raise LocalProtocolError("the reader is closed")
        if length > self.config.max_read:
            raise ValueError(f"a read is at most {self.config.max_read} bytes")
        layout = self._host.layout
        missing = {
            index
            for index in pieces_of_range(layout, self.file_index, offset, length)
            if not self._host.has_piece(index)
        }
        self.position = offset
        if not missing:
            self._update_deadlines()
            return self._read_now(offset, length)
        d: Deferred[bytes] = Deferred(lambda d: self._cancelled(d))
        self._pending.append(_PendingRead(offset, length, missing, d))
        if self._unwatch is None:
            self._unwatch = self._host.watch_pieces(self._piece_passed)
        self._update_deadlines()
        return d

    def seek(self, position: int) -> None:
        """Move the readahead window (a read does this too)."""
        if not 0 <= position <= self.size:
            raise ValueError(f"position {position} is outside the file (0..{self.size})")
        self.position = position
        if self._pending:
            self._update_deadlines()

    def close(self) -> None:
        """Drop the deadlines and fail the pending reads (``CancelledError``)."""
        self._closed = True
        for pending in list(self._pending):
            pending.deferred.cancel()
        self._stop_watching()
        self._host.set_deadlines(self, {})

    # -- internals -----------------------------------------------------------------

    def _update_deadlines(self) -> None:
        """Deadlines for the window from the position, and for every piece a
        pending read waits for (due now: someone is waiting)."""
        if not self._pending:
            self._host.set_deadlines(self, {})
            return
        now = self._host.seconds()
        cfg = self.config
        deadlines = dict(
            readahead_deadlines(
                self._host.layout, self.file_index, self.position, cfg.readahead, now, cfg.step
            )
        )
        for pending in self._pending:
            for index in pending.missing:
                deadlines[index] = min(deadlines.get(index, now), now)
        self._host.set_deadlines(self, deadlines)

    def _piece_passed(self, index: int) -> None:
        ready = []
        for pending in self._pending:
            pending.missing.discard(index)
            if not pending.missing:
                ready.append(pending)
        for pending in ready:
            self._pending.remove(pending)
            self._read_now(pending.offset, pending.length).chainDeferred(pending.deferred)
        if ready:
            if not self._pending:
                self._stop_watching()
            self._update_deadlines()

    def _cancelled(self, d: Deferred[bytes]) -> None:
        self._pending = [p for p in self._pending if p.deferred is not d]
        if not self._pending:
            self._stop_watching()
        self._update_deadlines()

    def _stop_watching(self) -> None:
        unwatch, self._unwatch = self._unwatch, None
        if unwatch is not None:
            unwatch()

    def _read_now(self, offset: int, length: int) -> Deferred[bytes]:
        parts = [
            self._host.read_piece_range(index, begin, part)
            for index, begin, part in piece_reads(
                self._host.layout, self.file_index, offset, length
            )
        ]
        if not parts:
            return succeed(b"")
        joined: Deferred[Any] = gatherResults(parts, consumeErrors=True)
        return joined.addCallback(b"".join)


class DeadlineBook:
    """The deadlines of every reader of one torrent, merged (the earliest
    per piece) and kept applied to the running swarm, if any.

    ``target`` is anything with ``set_deadline(index, when)`` and
    ``clear_deadline(index)`` (the ``Swarm``)."""

    def __init__(self) -> None:
        self._owners: dict[object, dict[int, float]] = {}
        self._applied: dict[int, float] = {}
        self._target: Any = None

    def set(self, owner: object, deadlines: dict[int, float]) -> None:
        if deadlines:
            self._owners[owner] = dict(deadlines)
        else:
            self._owners.pop(owner, None)
        self._apply()

    def merged(self) -> dict[int, float]:
        out: dict[int, float] = {}
        for deadlines in self._owners.values():
            for index, when in deadlines.items():
                if index not in out or when < out[index]:
                    out[index] = when
        return out

    def attach(self, target: Any) -> None:
        """Apply the deadlines to ``target`` from now on (None: to nothing)."""
        self._target = target
        self._applied = {}
        self._apply()

    def _apply(self) -> None:
        target = self._target
        if target is None:
            return
        wanted = self.merged()
        for index in [i for i in self._applied if i not in wanted]:
            del self._applied[index]
            target.clear_deadline(index)
        for index, when in wanted.items():
            if self._applied.get(index) != when:
                self._applied[index] = when
                target.set_deadline(index, when)
