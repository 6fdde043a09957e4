"""Reading a file of a torrent while it downloads (streaming).

Theory of operation
-------------------
``Torrent.open(file_index)`` gives a ``FileReader``.  ``read(offset,
length)`` returns a Deferred that fires with the bytes once every piece
holding them is verified (at once if they are).  A read moves the reader's
position to ``offset``, and once its pieces are verified to its end (where
the next sequential read starts).  From its first read (or ``seek``) until
``close``, the reader gives the picker deadlines over a readahead window
from the position (``core.transfer.readahead``), whether a read is pending
or not: a client that stops reading for a while (an HTTP response paused
by backpressure) keeps the pieces it will read next coming first.  The
piece under the position is due when the window was placed, the next ones
a ``step`` later each, so they come in the order they will be read, before
anything else; the rest of the torrent stays rarest-first.  As the
position moves forward the window slides, and only the deadlines that
change (pieces left behind, pieces reached) are passed on; a seek, or a
reader fallen ``slack`` seconds behind its deadlines, places the window
afresh.  Every piece a pending read waits for is due from the moment of
the read.  A deadline piece starts even when the piece buffer budget is
full, and once late its blocks may be asked of a second peer.

The reader owns its pending reads and its deadlines, nothing else.  It
reaches the torrent through a small ``ReaderHost`` (the ``Torrent``):
which pieces are verified, news of pieces as they pass, reads from the
store, and a per-owner map of deadlines the host merges with other
readers'.  Cancelling a read's Deferred forgets it (and the deadlines only
it gave); ``close`` drops every deadline of the reader.

Bounded: one read is at most ``max_read`` bytes (``ValueError`` past it),
and the deadlines cover at most the readahead window and the pieces of
the pending reads.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from twisted.internet.defer import Deferred, gatherResults, succeed

from txbittorrent.core.layout import Layout
from txbittorrent.core.transfer.readahead import (
    piece_reads,
    pieces_of_range,
    prompt_read_length,
    slide_deadlines,
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
        self,
        readahead: int = 8 * 1024 * 1024,
        step: float = 0.5,
        max_read: int = 16 * 1024 * 1024,
        slack: float = 2.0,
    ) -> None:
        if readahead < 0 or step < 0 or slack < 0 or max_read <= 0:
            raise ValueError(
                "readahead, step, slack must not be negative; max_read must be positive"
            )
        self.readahead = readahead
        """Bytes from the position given deadlines."""
        self.step = step
        """Seconds between the deadlines of consecutive pieces."""
        self.max_read = max_read
        """The longest single read."""
        self.slack = slack
        """Seconds the deadline of the piece under the position may fall
        behind the clock (a slow or paused reader) before the window is
        placed afresh from now."""


class _PendingRead:
    __slots__ = ("offset", "length", "missing", "deferred", "since")

    def __init__(
        self, offset: int, length: int, missing: set[int], deferred: Deferred[bytes], since: float
    ):
        self.offset = offset
        self.length = length
        self.missing = missing
        self.deferred = deferred
        self.since = since
        """When the read was made: its missing pieces are due then."""


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
        self._placed = False
        """Whether a read or seek has placed the window (none before)."""
        self._window: dict[int, float] = {}
        """The readahead window's deadlines, verified pieces included."""
        self._sent: dict[int, float] = {}
        """The deadlines last given to the host."""
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
        self._placed = True
        if not missing:
            self._ready(offset, length)
            self._update_deadlines()
            return self._read_now(offset, length)
        d: Deferred[bytes] = Deferred(lambda d: self._cancelled(d))
        self._pending.append(_PendingRead(offset, length, missing, d, self._host.seconds()))
        if self._unwatch is None:
            self._unwatch = self._host.watch_pieces(self._piece_passed)
        self._update_deadlines()
        return d

    def prompt_length(self, offset: int, length: int) -> int:
        """How much of a read of ``length`` bytes at ``offset`` needs at most
        one more piece: a reader that reads this much gets bytes as soon as
        the piece under ``offset`` is verified (never waits for two)."""
        return prompt_read_length(
            self._host.layout, self.file_index, offset, length, self._host.has_piece
        )

    def seek(self, position: int) -> None:
        """Move the readahead window (a read does this too)."""
        if self._closed:
            raise LocalProtocolError("the reader is closed")
        if not 0 <= position <= self.size:
            raise ValueError(f"position {position} is outside the file (0..{self.size})")
        self.position = position
        self._placed = True
        self._update_deadlines()

    def close(self) -> None:
        """Drop the deadlines and fail the pending reads (``CancelledError``)."""
        self._closed = True
        for pending in list(self._pending):
            pending.deferred.cancel()
        self._stop_watching()
        self._window = {}
        self._sent = {}
        self._host.set_deadlines(self, {})

    # -- internals -----------------------------------------------------------------

    def _ready(self, offset: int, length: int) -> None:
        """A read's pieces are all verified: the next sequential read starts at
        its end, so the position (if still the read's) moves there."""
        if self.position == offset:
            self.position = min(offset + length, self.size)

    def _update_deadlines(self) -> None:
        """Deadlines for the window from the position, and for every piece a
        pending read waits for (due since the read); only a change reaches
        the host."""
        if self._closed:
            return
        cfg = self.config
        host = self._host
        now = host.seconds()
        if self._placed:
            self._window = slide_deadlines(
                host.layout, self.file_index, self.position, cfg.readahead, now, cfg.step,
                self._window, cfg.slack,
            )
        deadlines = {
            index: when for index, when in self._window.items() if not host.has_piece(index)
        }
        for pending in self._pending:
            for index in pending.missing:
                when = deadlines.get(index)
                if when is None or pending.since < when:
                    deadlines[index] = pending.since
        if deadlines != self._sent:
            self._sent = deadlines
            host.set_deadlines(self, dict(deadlines))

    def _piece_passed(self, index: int) -> None:
        ready = []
        for pending in self._pending:
            pending.missing.discard(index)
            if not pending.missing:
                ready.append(pending)
        for pending in ready:
            self._pending.remove(pending)
            self._ready(pending.offset, pending.length)
            self._forward(self._read_now(pending.offset, pending.length), pending.deferred)
        if ready:
            if not self._pending:
                self._stop_watching()
            self._update_deadlines()

    @staticmethod
    def _forward(source: Deferred[bytes], target: Deferred[bytes]) -> None:
        """``source``'s result to ``target``, unless ``target`` was cancelled
        while the disk read ran (then the result is dropped)."""

        def ok(data: bytes) -> None:
            if not target.called:
                target.callback(data)

        def failed(failure: Any) -> None:
            if not target.called:
                target.errback(failure)

        source.addCallbacks(ok, failed)

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
    per piece) and kept applied to the running swarm, if any: only the
    changes, clears first, then sets latest deadline first.

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
        changed = [(when, index) for index, when in wanted.items()
                   if self._applied.get(index) != when]
        # Latest first: a target that acts on each one (the swarm refills its
        # pipelines, and makes room for a piece due now) knows the whole
        # window by the time the earliest, the one due now, comes.
        for when, index in sorted(changed, reverse=True):
            self._applied[index] = when
            target.set_deadline(index, when)
