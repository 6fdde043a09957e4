"""What a ``Torrent`` offers its streaming readers (``reader.FileReader``).

``TorrentStreaming`` is a base class of ``Torrent``: ``open(file_index)``
and the ``reader.ReaderHost`` methods a reader calls (which pieces are
verified, reads from the store, news of passed pieces, deadlines, the
clock), over what the facade composes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from twisted.internet.defer import Deferred

from txbittorrent.errors import LocalProtocolError
from txbittorrent.eventtypes import PiecePassed, TorrentEvent
from txbittorrent.reader import DeadlineBook, FileReader, ReaderConfig

if TYPE_CHECKING:
    from txbittorrent.core.layout import Layout
    from txbittorrent.events import Subscription
    from txbittorrent.storage.data import TorrentData
    from txbittorrent.storage.store import Store

__all__ = ["TorrentStreaming"]


class TorrentStreaming:
    """Streaming reads of a torrent's files (see the module docstring)."""

    _deadlines: DeadlineBook

    def _require_data(self) -> TorrentData:
        raise NotImplementedError

    @property
    def layout(self) -> Layout:
        return self._require_data().layout

    def _ensure_store(self) -> Store:
        raise NotImplementedError

    def _clock(self) -> Any:
        raise NotImplementedError

    def subscribe(self, callback: Callable[[TorrentEvent], object], **filters: Any) -> Subscription:
        raise NotImplementedError

    def open(self, file_index: int, config: ReaderConfig | None = None) -> FileReader:
        """A reader of file ``file_index`` that waits for its pieces and
        fetches them in reading order first (see ``reader``).  A file of
        priority 0 is refused: raise its priority first."""
        data = self._require_data()
        if data.completion.file_priorities[file_index] == 0:
            raise LocalProtocolError(f"file {file_index} is skipped (priority 0)")
        return FileReader(self, file_index, config)

    def has_piece(self, index: int) -> bool:
        return index in self._require_data().completion.have

    def read_piece_range(self, index: int, begin: int, length: int) -> Deferred[bytes]:
        return self._ensure_store().read(index, begin, length)

    def watch_pieces(self, callback: Callable[[int], object]) -> Callable[[], None]:
        subscription = self.subscribe(
            lambda e: callback(cast(PiecePassed, e).piece_index), kinds="piece_passed"
        )
        return subscription.cancel

    def set_deadlines(self, owner: object, deadlines: dict[int, float]) -> None:
        self._deadlines.set(owner, deadlines)

    def seconds(self) -> float:
        return float(self._clock().seconds())
