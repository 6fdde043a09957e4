"""What the daemon learns while running, written to its store: ``Recorder``.

Theory of operation
-------------------
``Recorder(session, store, clock)`` subscribes (``start``) to the
Session's ``EventBus`` for two kinds of events and writes what they mean
into the ``StateStore``, so a restart (even after SIGKILL) knows it:

- ``MetadataReceived``: a torrent added by magnet or info hash has its info
  dictionary now.  The recorder stores a .torrent made of those exact info
  bytes and the torrent's tracker tiers (``core.metainfo.torrent_bytes``)
  with ``store.set_metainfo``, so the next start loads the metainfo at once
  instead of asking peers again (and its resume record applies at once).
- ``Complete``: every wanted piece is verified.  The recorder stores
  ``clock.seconds()`` with ``store.mark_completed`` unless a completion
  time is already stored (a complete torrent says ``Complete`` again on
  every start; the first time is the one kept).

It writes only for torrents the store knows (the API records adds; a
torrent given to the Session directly is not the daemon's to remember) and
never raises into the bus: a failure is logged.  It owns no timer;
``stop`` cancels the subscription.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from txbittorrent.core.metainfo import torrent_bytes
from txbittorrent.errors import TxBitTorrentError
from txbittorrent.eventtypes import Complete, MetadataReceived, TorrentEvent

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore
    from txbittorrent.events import Subscription
    from txbittorrent.session import Session

__all__ = ["Recorder"]

_log = Logger()


class Recorder:
    """Stores fetched metainfo and completion times (see the module docstring)."""

    def __init__(self, session: Session, store: StateStore, clock: Any) -> None:
        self.session = session
        self.store = store
        self.clock = clock
        self._subscription: Subscription | None = None

    def start(self) -> None:
        """Listen to the session's events (idempotent)."""
        if self._subscription is None:
            self._subscription = self.session.events.subscribe(
                self._heard, kinds=(MetadataReceived, Complete)
            )

    def stop(self) -> None:
        """Stop listening (idempotent)."""
        subscription, self._subscription = self._subscription, None
        if subscription is not None:
            subscription.cancel()

    def _heard(self, event: TorrentEvent) -> None:
        ih = event.info_hash.hex()
        try:
            record = self.store.get(ih)
            if record is None:
                return
            if isinstance(event, MetadataReceived):
                if record.metainfo is None:
                    self._store_metainfo(event.info_hash, ih)
            elif isinstance(event, Complete):
                if record.completed_at is None:
                    self.store.mark_completed(ih, float(self.clock.seconds()))
        except (TxBitTorrentError, OSError):
            _log.failure("recording {kind} of {info_hash} failed", kind=event.kind, info_hash=ih)

    def _store_metainfo(self, info_hash: bytes, ih: str) -> None:
        torrent = self.session.get(info_hash)
        info = torrent.info_bytes() if torrent is not None else None
        if torrent is None or info is None:
            return
        tiers = [[status.url for status in tier] for tier in torrent.trackers()]
        self.store.set_metainfo(ih, torrent_bytes(info, tiers))
