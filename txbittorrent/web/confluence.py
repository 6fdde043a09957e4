# twisted.web's Request and Failure are untyped: their calls are all over here.
# mypy: disable-error-code="no-untyped-call"
"""confluence's HTTP routes over a Session: the shared part.

Theory of operation
-------------------
anacrolix/confluence is "a torrent client as a HTTP service".  Its routes
(``/data``, ``/info``, ``/metainfo``, ``/fileState``, ``/status``,
``/events``) are rebuilt here as ``twisted.web`` resources over a
``Session``; ``confluence_resources(...)`` returns them (and ``/playlist``)
by name, for the daemon to mount at its root behind its ``Guard``.

``Confluence`` holds what every route shares, and nothing else: the
session, the ``OnDemand`` policy (optional), the clock, and settings.  It
answers the three questions each request asks:

* which torrent (``torrent_for``): ``?ih=<40 hex>`` names one the session
  has (400 if malformed, 404 if unknown, unless the on-demand policy adds
  info hashes); ``?magnet=<URI>`` instead of ``ih`` adds the torrent if
  needed (``OnDemand.acquire``; without OnDemand only a known torrent is
  found);
* keep it running while the response lasts (``hold``: ``OnDemand.hold``,
  released when the request finishes or the client goes away);
* wait for its metadata (``when_metadata``): a Deferred firing once the
  info dictionary is known (``MetadataReceived`` on the session's bus), or
  failing with 504 after ``info_timeout`` seconds on the clock, or 404 if
  the torrent is removed meanwhile; the client going away cancels the wait
  (subscription and timer both go).  ``?nowait=1`` answers 202 at once when
  the metadata is not there, as confluence does.

``Route`` is the base of the routes: a leaf whose ``answer`` returns
bytes, ``NOT_DONE_YET`` (the route writes the response itself) or a
Deferred of either; a ``RouteError`` anywhere becomes ``{"error": message}``
with its status, never a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txbittorrent.core.magnet import parse_magnet
from txbittorrent.source import bare_info_hash
from txbittorrent.web.apibody import client_gone

if TYPE_CHECKING:
    from txbittorrent.accessors import FileInfo
    from txbittorrent.daemon.ondemand import OnDemand
    from txbittorrent.daemon.store import StateStore
    from txbittorrent.eventtypes import TorrentEvent
    from txbittorrent.session import Session
    from txbittorrent.torrent import Torrent

__all__ = ["Confluence", "Route", "RouteError", "confluence_resources", "find_file", "display_path",
           "DEFAULT_INFO_TIMEOUT"]

_log = Logger()

DEFAULT_INFO_TIMEOUT = 300.0
"""Seconds a request waits for a torrent's metadata before a 504."""


class RouteError(Exception):
    """An answer other than success: its HTTP status and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def query(request: Request, name: str) -> str | None:
    """The first value of query parameter ``name`` as text (400 if not UTF-8)."""
    values = (request.args or {}).get(name.encode("ascii"))
    if not values:
        return None
    try:
        text: str = values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise RouteError(400, f"{name} is not UTF-8") from None
    return text


def display_path(info: FileInfo) -> str:
    """A file's path as ``Torrent.files()`` gives it, ``/``-separated."""
    return info.path.replace(os.sep, "/")


def find_file(torrent: Torrent, path: str) -> FileInfo | None:
    """The file of ``torrent`` at ``path``: its path as ``Torrent.files()``
    gives it (``/``-joined, with a multi-file torrent's own directory), or
    else confluence's display path (without that directory); for a
    single-file torrent an empty path names its one file."""
    files = torrent.files()
    for info in files:
        if display_path(info) == path:
            return info
    metainfo = torrent.metainfo
    if metainfo is not None and metainfo.multi_file:
        for info in files:
            if display_path(info).partition("/")[2] == path:
                return info
    elif path == "" and len(files) == 1:
        return files[0]
    return None


class Confluence:
    """What confluence's routes share (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        *,
        clock: Any,
        on_demand: OnDemand | None = None,
        store: StateStore | None = None,
        info_timeout: float = DEFAULT_INFO_TIMEOUT,
        readahead: int = 32 * 1024 * 1024,
        chunk_size: int = 1024 * 1024,
        media_token: str | None = None,
    ) -> None:
        self.session = session
        self.media_token = media_token
        """Put in the playlists' URLs (see ``web.auth.Guard``)."""
        self.clock = clock
        self.on_demand = on_demand
        self.store = store
        self.info_timeout = info_timeout
        self.readahead = readahead
        self.chunk_size = chunk_size

    def torrent_for(self, request: Request, ih: str | None = None) -> Torrent:
        """The torrent a request names by ``ih`` or ``magnet`` (RouteError
        400/404 otherwise); ``ih`` given here (from the path) wins."""
        magnet = query(request, "magnet") if ih is None else None
        if magnet is not None:
            if magnet.strip()[:7].lower() != "magnet:":
                raise RouteError(400, "magnet is not a magnet URI")
            try:
                if self.on_demand is not None:
                    return self.on_demand.acquire(magnet)
                info_hash = parse_magnet(magnet.strip()).info_hash
            except ValueError as e:
                raise RouteError(400, f"bad magnet: {e}") from None
            torrent = self.session.get(info_hash)
            if torrent is None:
                raise RouteError(404, f"no torrent {info_hash.hex()}")
            return torrent
        text = ih if ih is not None else query(request, "ih")
        if text is None:
            raise RouteError(400, "expected a query parameter ih or magnet")
        named = bare_info_hash(text.strip())
        if named is None:
            raise RouteError(400, f"ih is not an info hash (40 hex digits): {text!r}")
        info_hash = named
        torrent = self.session.get(info_hash)
        if torrent is None:
            on_demand = self.on_demand
            if on_demand is not None and on_demand.add_info_hashes:
                return on_demand.acquire(info_hash)
            raise RouteError(404, f"no torrent {info_hash.hex()}")
        return torrent

    def hold(self, torrent: Torrent, request: Request) -> None:
        """Keep ``torrent`` running (on demand) until the request is over."""
        if self.on_demand is None:
            return
        release = self.on_demand.hold(torrent)
        request.notifyFinish().addBoth(lambda _: release())

    def when_metadata(self, torrent: Torrent, request: Request) -> Deferred[None] | None:
        """None if the metadata is known, else a Deferred that fires once it
        is (see the module docstring for its failures)."""
        if torrent.has_metadata:
            return None
        if (query(request, "nowait") or "").lower() in ("1", "t", "true"):
            raise RouteError(202, "info not ready")
        info_hash = torrent.info_hash
        subscription: Any = None
        timer: Any = None

        def cleanup() -> None:
            nonlocal subscription, timer
            if subscription is not None:
                subscription.cancel()
                subscription = None
            if timer is not None:
                if timer.active():
                    timer.cancel()
                timer = None

        d: Deferred[None] = Deferred(lambda _: cleanup())

        def heard(event: TorrentEvent) -> None:
            if d.called:
                return
            cleanup()
            if event.kind == "torrent_removed":
                d.errback(RouteError(404, f"torrent {info_hash.hex()} was removed"))
            else:
                d.callback(None)

        def timed_out() -> None:
            nonlocal timer
            timer = None
            cleanup()
            if not d.called:
                d.errback(RouteError(
                    504, f"the metadata did not arrive within {self.info_timeout:g} seconds"))

        subscription = self.session.events.subscribe(
            heard, info_hash=info_hash, kinds=("metadata_received", "torrent_removed"))
        timer = self.clock.callLater(self.info_timeout, timed_out)
        request.notifyFinish().addErrback(lambda _: d.cancel())
        return d


class Route(Resource):
    """A leaf route over ``Confluence``: ``answer`` gives bytes, NOT_DONE_YET
    or a Deferred of either; a RouteError becomes a JSON error."""

    isLeaf = True
    methods: tuple[str, ...] = ("GET", "HEAD")

    def __init__(self, confluence: Confluence) -> None:
        super().__init__()
        self.confluence = confluence

    def answer(self, request: Request) -> Any:
        raise NotImplementedError

    def render(self, request: Request) -> bytes | int:
        method = request.method.decode("ascii", "replace")
        if method not in self.methods:
            request.setHeader(b"allow", ", ".join(self.methods).encode("ascii"))
            return error_body(request, 405, f"method {method} not allowed here")
        try:
            result = self.answer(request)
        except RouteError as e:
            return error_body(request, e.code, e.message)
        if isinstance(result, Deferred):
            result.addCallbacks(lambda body: _finish(request, body),
                                lambda failure: _failed(request, failure))
            return NOT_DONE_YET
        body: bytes | int = result
        return body


def after(d: Deferred[None] | None, then: Callable[[], Any]) -> Any:
    """``then()`` now if ``d`` is None, else once ``d`` fires."""
    if d is None:
        return then()
    return d.addCallback(lambda _: then())


def error_body(request: Request, code: int, message: str) -> bytes:
    """A JSON error: ``{"error": message}`` with status ``code``."""
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json; charset=utf-8")
    request.setHeader(b"cache-control", b"no-store")
    return json.dumps({"error": message}).encode("utf-8")


def _finish(request: Request, body: bytes | int) -> None:
    if body is NOT_DONE_YET or client_gone(request):
        return
    assert isinstance(body, bytes)
    if request.method != b"HEAD" or body:
        if body or not request.responseHeaders.hasHeader(b"content-length"):
            request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()


def _failed(request: Request, failure: Failure) -> None:
    if client_gone(request) or failure.check(CancelledError):
        return
    if isinstance(failure.value, RouteError):
        error = failure.value
    else:
        _log.failure("a confluence request failed", failure)
        error = RouteError(500, failure.getErrorMessage())
    _finish(request, error_body(request, error.code, error.message))


def confluence_resources(
    session: Session,
    *,
    on_demand: OnDemand | None,
    store: StateStore | None,
    clock: Any,
    info_timeout: float = DEFAULT_INFO_TIMEOUT,
    readahead: int = 32 * 1024 * 1024,
    heartbeat: float = 15.0,
    media_token: str | None = None,
) -> dict[bytes, Resource]:
    """confluence's routes by name, to mount at the root: ``data``,
    ``info``, ``metainfo``, ``fileState``, ``status``, ``events`` (a
    WebSocket; it has ``stop()``, to call when the daemon stops) and
    ``playlist``.  Torrents a request adds go where ``on_demand`` puts them
    (its ``download_dir``); without ``on_demand`` nothing is added.  The
    playlists' URLs carry ``media_token`` when given."""
    from txbittorrent.web.confluence_events import PieceEventsResource
    from txbittorrent.web.confluence_routes import (
        DataRoute,
        FileStateRoute,
        InfoRoute,
        MetainfoRoute,
        PlaylistRoute,
        StatusRoute,
    )

    confluence = Confluence(session, clock=clock, on_demand=on_demand, store=store,
                            info_timeout=info_timeout, readahead=readahead,
                            media_token=media_token)
    return {
        b"data": DataRoute(confluence),
        b"info": InfoRoute(confluence),
        b"metainfo": MetainfoRoute(confluence),
        b"fileState": FileStateRoute(confluence),
        b"status": StatusRoute(confluence),
        b"events": PieceEventsResource(confluence, heartbeat=heartbeat),
        b"playlist": PlaylistRoute(confluence),
    }
