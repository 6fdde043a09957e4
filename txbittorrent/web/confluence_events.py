# twisted.web's Request and the reactor interfaces are untyped: their calls are all over here.
# mypy: disable-error-code="no-untyped-call"
"""confluence's ``/events?ih=``: a WebSocket of its JSON frames.

confluence sends one ``{"PieceChanged": <piece index>}`` text frame each
time a piece of the torrent changes state.  ``PieceEventsResource`` sends
the same from the session's ``EventBus``: a piece that passed its hash
check (``piece_passed``) or failed it (``piece_failed``) is a
``PieceChanged`` frame (``confluence_frame`` maps an event to its frame, or
None for events confluence has no frame for).

Everything else is ``web.events.EventWebSocketResource``'s (this class
gives only its ``filter_for`` and ``protocol``): the filter is fixed to the
request's torrent and those two kinds, a ping every
``heartbeat`` seconds, the bound on what a client that does not read may
cost, and ``stop()`` closing every socket with 1001.  The torrent is found
as every confluence route finds it (``ih`` or ``magnet``; 400/404 before
the upgrade); the request does not hold it running.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from txbittorrent.web.confluence import Confluence, RouteError
from txbittorrent.web.events import (
    EventFilter,
    EventWebSocketResource,
    StreamRefused,
    _EventWebSocket,
)

if TYPE_CHECKING:
    from txbittorrent.eventtypes import TorrentEvent

__all__ = ["PieceEventsResource", "confluence_frame", "PIECE_KINDS"]

PIECE_KINDS = frozenset({"piece_passed", "piece_failed"})


def confluence_frame(event: TorrentEvent) -> str | None:
    """The JSON frame confluence would send for ``event`` (None: none)."""
    if event.kind in PIECE_KINDS:
        return json.dumps({"PieceChanged": getattr(event, "piece_index")})
    return None


class _PieceWebSocket(_EventWebSocket):
    """One client: confluence's frames instead of the native JSON."""

    def _deliver(self, event: TorrentEvent) -> None:
        frame = confluence_frame(event)
        if frame is not None:
            self._send(frame)


class PieceEventsResource(EventWebSocketResource):
    """``/events?ih=``: the torrent's piece changes as confluence's frames."""

    protocol = _PieceWebSocket

    def __init__(self, confluence: Confluence, *, heartbeat: float = 15.0,
                 max_buffer: int | None = None) -> None:
        kwargs: dict[str, Any] = {} if max_buffer is None else {"max_buffer": max_buffer}
        super().__init__(confluence.session.events, clock=confluence.clock,
                         heartbeat=heartbeat, **kwargs)
        self.confluence = confluence

    def filter_for(self, request: Request) -> EventFilter:
        """The request's torrent (``ih`` or ``magnet``), its piece changes."""
        try:
            torrent = self.confluence.torrent_for(request)
        except RouteError as e:
            raise StreamRefused(e.code, e.message) from None
        return EventFilter(torrent.info_hash, PIECE_KINDS)
