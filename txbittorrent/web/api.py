"""The daemon's native JSON API over a Session: ``ApiResource``.

Theory of operation
-------------------
``ApiResource(session, store=None, download_dir=...)`` is a leaf
``twisted.web`` resource, meant to be mounted at ``/api``.  It parses the
request (path segments, method, a size-capped body: ``apibody``; the add
forms: ``apiadd``), has its ``TorrentManager`` (``web.manager``, shared
with the other APIs) make the change and record it in the ``StateStore``
when there is one, and renders the result as JSON (``apiviews`` gives the
shapes).  ``ROUTES`` in ``apiviews`` lists every route.

Errors are ``{"error": message}`` with 400 (bad input), 404 (no such route,
an info hash the session does not know, a tracker the torrent does not
have), 405 (a known route, another method; ``Allow`` says which) or 409 (a
conflict: adding a torrent twice, a route that needs the metadata before
it is known, a change during a recheck).  Only POST and DELETE change
anything.

The life-cycle routes (start, pause, stop, recheck, DELETE, file
priorities) answer once the torrent's Deferred fires (a failure there is a
500 with its message, and logged).  An add answers 201 at once (after
fetching a URL source), with the torrent as it is then; its ``start()``
goes on (a hash check may take long) and a failure is logged.

With a ``StateStore``, every add (source, save path, priorities, labels,
wanted state, ``added_at``), removal, start/pause/stop, priority, label and
limit change is recorded there; a torrent the store does not know (added
some other way) is left out of it, and its labels and add time live in
the manager's memory only.  Global limits are stored as the settings
``download_limit`` and ``upload_limit`` (ints; absent: unlimited).  A
magnet's file selection given on add is applied (and stored) once its
metadata is there (``apiadd.select_on_metadata``).
"""
# twisted.web's Request and Failure are untyped: their calls are all over here.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txbittorrent.errors import LocalProtocolError
from txbittorrent.web import apisession, apitorrent
from txbittorrent.web.apiadd import FETCH_TIMEOUT, read_add_request
from txbittorrent.web.apibody import (
    MAX_BODY,
    finish_late,
    MAX_TORRENT,
    ApiError,
    first,
    flag,
    form_fields,
    json_body,
    labels,
)
from txbittorrent.web.apitorrent import Download, content_disposition
from txbittorrent.web.apiviews import ROUTES, peer_view
from txbittorrent.web.manager import TorrentManager

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore
    from txbittorrent.session import Session
    from txbittorrent.torrent import Torrent

__all__ = ["ApiResource", "ApiError", "MAX_BODY", "MAX_TORRENT"]

_HEX_HASH = re.compile(r"\A[0-9a-fA-F]{40}\Z")
_ACTIONS: dict[str, tuple[str, ...]] = {
    "start": ("POST",), "pause": ("POST",), "stop": ("POST",), "recheck": ("POST",),
    "files": ("GET", "POST"), "peers": ("GET",), "trackers": ("GET", "POST", "DELETE"),
    "limits": ("GET", "POST"), "labels": ("POST",), "torrent": ("GET",),
}
_log = Logger()


def _method(request: Request, *allowed: str) -> str:
    method = request.method.decode("ascii", "replace")
    if method not in allowed:
        raise ApiError(405, f"method {method} not allowed here", allowed)
    return method


class ApiResource(Resource):
    """The native JSON API (see the module docstring)."""

    isLeaf = True

    def __init__(
        self,
        session: Session,
        *,
        store: StateStore | None = None,
        download_dir: str,
        clock: Callable[[], float] | None = None,
        http_client: Any = None,
        fetch_timeout: float = FETCH_TIMEOUT,
        media_token: str | None = None,
    ) -> None:
        """``clock`` gives the Unix time recorded as ``added_at`` (default:
        the session's reactor's ``seconds``).  ``http_client`` fetches URL
        sources (a ``treq.HTTPClient``; default: one over an ``Agent`` on
        the session's reactor, made on first use), each within
        ``fetch_timeout`` seconds."""
        super().__init__()
        self.session = session
        self.store = store
        self.download_dir = download_dir
        self.media_token = media_token
        """Shown by ``/api/stats`` (to the owner) for players' links."""
        self.manager = TorrentManager(
            session, store=store, download_dir=download_dir, clock=clock,
            http_client=http_client, fetch_timeout=fetch_timeout,
        )
        """The changes themselves (shared with the other APIs)."""

    # -- dispatch ------------------------------------------------------------

    def render(self, request: Request) -> Any:
        segments = [s.decode("utf-8", "replace") for s in request.postpath or ()]
        while segments and segments[-1] == "":
            segments.pop()
        try:
            result = self._route(request, segments)
        except ApiError as e:
            return self._error(request, e)
        except Exception as e:  # a bug or a store failure: JSON, logged, no traceback out
            _log.failure("API request failed")
            return self._error(request, ApiError(500, f"internal error: {e}"))
        if isinstance(result, Deferred):
            result.addCallbacks(
                lambda value: self._finish(request, *value),
                lambda failure: self._failed(request, failure),
            )
            return NOT_DONE_YET
        code, body = result
        return self._write(request, code, body)

    def _route(self, request: Request, segments: list[str]) -> Any:
        if not segments:
            _method(request, "GET")
            return 200, {"routes": ROUTES}
        if segments == ["limits"]:
            if _method(request, "GET", "POST") == "GET":
                return 200, apisession.global_limits(self.session)
            return 200, apisession.set_global_limits(self.session, self.store, json_body(request))
        if segments == ["stats"]:
            _method(request, "GET")
            body = apisession.stats(self.session)
            if self.media_token is not None:
                body["media_token"] = self.media_token
            return 200, body
        if segments[0] != "torrents" or len(segments) > 3:
            raise ApiError(404, "no such route")
        if len(segments) == 1:
            if _method(request, "GET", "POST") == "GET":
                label = first(form_fields(request), "label")
                return 200, {"torrents": [
                    self.view(t) for t in self.session.torrents()
                    if label is None or label in self.manager.labels(t.info_hash.hex())
                ]}
            return self._add(request)
        if len(segments) == 3 and segments[2] not in _ACTIONS:
            raise ApiError(404, "no such route")
        torrent = self._torrent(segments[1])
        if len(segments) == 2:
            if _method(request, "GET", "DELETE") == "GET":
                return 200, self.view(torrent)
            return self._remove(request, torrent)
        action = segments[2]
        method = _method(request, *_ACTIONS[action])
        return getattr(self, "_route_" + action)(request, method, torrent)

    def _torrent(self, text: str) -> Torrent:
        if not _HEX_HASH.match(text):
            raise ApiError(400, f"not an info hash (40 hex digits): {text!r}")
        torrent = self.session.get(bytes.fromhex(text))
        if torrent is None:
            raise ApiError(404, f"no torrent {text.lower()}")
        return torrent

    def view(self, torrent: Torrent) -> dict[str, Any]:
        return self.manager.view(torrent)

    # -- adding and removing -------------------------------------------------

    def _add(self, request: Request) -> Any:
        add = read_add_request(request, self.download_dir)
        result = self.manager.add(add)
        if isinstance(result, Deferred):
            return result.addCallback(lambda torrent: (201, self.view(torrent)))
        return 201, self.view(result)

    def _remove(self, request: Request, torrent: Torrent) -> Deferred[Any]:
        delete = flag(first(form_fields(request), "delete_data") or "0", "delete_data")
        return self.manager.remove(torrent, delete).addCallback(lambda b: (200, b))

    # -- one torrent's routes (``_route_<action>``, dispatched by name) -------

    def _life_cycle(self, torrent: Torrent, action: str) -> Deferred[Any]:
        d = self.manager.set_state(torrent, action)
        return d.addCallback(lambda _: (200, self.view(torrent)))

    def _route_start(self, request: Request, method: str, torrent: Torrent) -> Any:
        return self._life_cycle(torrent, "start")

    def _route_pause(self, request: Request, method: str, torrent: Torrent) -> Any:
        return self._life_cycle(torrent, "pause")

    def _route_stop(self, request: Request, method: str, torrent: Torrent) -> Any:
        return self._life_cycle(torrent, "stop")

    def _route_recheck(self, request: Request, method: str, torrent: Torrent) -> Any:
        d = self.manager.recheck(torrent)
        return d.addCallback(lambda _: (200, self.view(torrent)))

    def _route_files(self, request: Request, method: str, torrent: Torrent) -> Any:
        if method == "GET":
            return 200, apitorrent.files_body(torrent)
        self.manager.not_rechecking(torrent)
        priorities = apitorrent.new_priorities(torrent, json_body(request))
        d = self.manager.set_priorities(torrent, priorities)
        return d.addCallback(lambda _: (200, apitorrent.files_body(torrent)))

    def _route_peers(self, request: Request, method: str, torrent: Torrent) -> Any:
        return 200, {"peers": [peer_view(p) for p in torrent.peers()]}

    def _route_trackers(self, request: Request, method: str, torrent: Torrent) -> Any:
        if method == "GET":
            return 200, apitorrent.trackers_body(torrent)
        if method == "POST":
            code, body = 201, apitorrent.add_tracker(torrent, json_body(request))
        else:
            code, body = 200, apitorrent.remove_tracker(torrent, first(form_fields(request), "url"))
        self.manager.trackers_changed(torrent)
        return code, body

    def _route_limits(self, request: Request, method: str, torrent: Torrent) -> Any:
        config = torrent.config
        if method == "POST":
            down, up = apitorrent.read_limits(
                json_body(request), config.download_limit, config.upload_limit
            )
            self.manager.set_limits(torrent, down, up)
            config = torrent.config
        return 200, apitorrent.limits_body(config.download_limit, config.upload_limit)

    def _route_labels(self, request: Request, method: str, torrent: Torrent) -> Any:
        body = json_body(request)
        if "labels" not in body:
            raise ApiError(400, "give 'labels': a list of strings")
        self.manager.set_labels(torrent, labels(body["labels"]))
        return 200, self.view(torrent)

    def _route_torrent(self, request: Request, method: str, torrent: Torrent) -> Any:
        return 200, self.manager.torrent_file(torrent)

    # -- answers -------------------------------------------------------------

    def _write(self, request: Request, code: int, body: Any) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Cache-Control", b"no-store")
        if isinstance(body, Download):
            request.setHeader(b"Content-Type", body.content_type.encode("ascii"))
            request.setHeader(b"Content-Disposition", content_disposition(body.filename))
            return body.content
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        return json.dumps(body).encode("utf-8")

    def _error(self, request: Request, error: ApiError) -> bytes:
        if error.allow:
            request.setHeader(b"Allow", ", ".join(error.allow).encode("ascii"))
        return self._write(request, error.code, {"error": error.message})

    def _finish(self, request: Request, code: int, body: Any) -> None:
        data = self._write(request, code, body)
        finish_late(request, data)

    def _failed(self, request: Request, failure: Failure) -> None:
        if isinstance(failure.value, ApiError):
            error = failure.value
        elif failure.check(LocalProtocolError):
            error = ApiError(409, failure.getErrorMessage())
        else:
            _log.failure("API request failed", failure)
            error = ApiError(500, failure.getErrorMessage())
        data = self._error(request, error)
        finish_late(request, data)
