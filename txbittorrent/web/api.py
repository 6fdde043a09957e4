"""The daemon's native JSON API over a Session: ``ApiResource``.

Theory of operation
-------------------
``ApiResource(session, store=None, download_dir=...)`` is a leaf
``twisted.web`` resource, meant to be mounted at ``/api``.  It parses the
request (path segments, method, a size-capped JSON body), calls one Session
or Torrent method, and renders the result as JSON (``apiviews`` gives the
shapes).  It holds no state of its own beyond what it was given.

Errors are ``{"error": message}`` with 400 (bad input: malformed JSON, a
source that is not a magnet URI or info hash, a malformed info hash in the
path), 404 (no such route, or an info hash the session does not know), 405
(a known route, another method; ``Allow`` says which) or 409 (adding a
torrent the session already has).  Only POST and DELETE change anything.

The life-cycle routes (start, pause, stop, DELETE) answer once the
torrent's Deferred fires (a failure there is a 500 with its message, and
logged).  An add answers 201 at once, with the torrent as it is then; its
``start()`` goes on (a hash check may take long) and a failure is logged.

When a ``StateStore`` is given, every add, removal and start/pause/stop is
also recorded there (``add_torrent``, ``remove_torrent``, ``update(wanted=)``);
a torrent the store does not know (added some other way) is left out of it.
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

from txbittorrent.daemon.store import DuplicateTorrentError
from txbittorrent.errors import LocalProtocolError
from txbittorrent.source import bare_info_hash
from txbittorrent.web.apiviews import (
    ROUTES,
    file_view,
    peer_view,
    torrent_view,
    tracker_view,
)

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore
    from txbittorrent.session import Session
    from txbittorrent.torrent import Torrent

__all__ = ["ApiResource", "ApiError", "MAX_BODY"]

MAX_BODY = 64 * 1024
"""The largest JSON body accepted (bytes)."""

_HEX_HASH = re.compile(r"\A[0-9a-fA-F]{40}\Z")
_WANTED = {"start": "active", "pause": "paused", "stop": "stopped"}
_log = Logger()


class ApiError(Exception):
    """An answer other than success: its HTTP status and message."""

    def __init__(self, code: int, message: str, allow: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.allow = allow


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
    ) -> None:
        """``clock`` gives the Unix time recorded as ``added_at`` in the
        store (default: the session's reactor's ``seconds``)."""
        super().__init__()
        self.session = session
        self.store = store
        self.download_dir = download_dir
        self._clock = clock

    # -- dispatch ------------------------------------------------------------

    def render(self, request: Request) -> Any:
        segments = [s.decode("utf-8", "replace") for s in request.postpath or ()]
        while segments and segments[-1] == "":
            segments.pop()
        try:
            result = self._route(request, segments)
        except ApiError as e:
            return self._error(request, e)
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
        if segments[0] != "torrents" or len(segments) > 3:
            raise ApiError(404, "no such route")
        if len(segments) == 1:
            if _method(request, "GET", "POST") == "GET":
                return 200, {"torrents": [torrent_view(t) for t in self.session.torrents()]}
            return self._add(request)
        if len(segments) == 3 and segments[2] not in (*_WANTED, "files", "peers", "trackers"):
            raise ApiError(404, "no such route")
        torrent = self._torrent(segments[1])
        if len(segments) == 2:
            if _method(request, "GET", "DELETE") == "GET":
                return 200, torrent_view(torrent)
            return self._remove(torrent)
        action = segments[2]
        if action in _WANTED:
            _method(request, "POST")
            return self._life_cycle(torrent, action)
        _method(request, "GET")
        if action == "files":
            return 200, {"files": [file_view(f) for f in torrent.files()]}
        if action == "peers":
            return 200, {"peers": [peer_view(p) for p in torrent.peers()]}
        trackers = [tracker_view(s) for tier in torrent.trackers() for s in tier]
        return 200, {"trackers": trackers}

    def _torrent(self, text: str) -> Torrent:
        if not _HEX_HASH.match(text):
            raise ApiError(400, f"not an info hash (40 hex digits): {text!r}")
        torrent = self.session.get(bytes.fromhex(text))
        if torrent is None:
            raise ApiError(404, f"no torrent {text.lower()}")
        return torrent

    # -- changes -------------------------------------------------------------

    def _add(self, request: Request) -> tuple[int, dict[str, Any]]:
        body = _json_body(request)
        source, paused = body.get("source"), body.get("paused", False)
        if not isinstance(source, str) or not source.strip():
            raise ApiError(400, "'source' must be a magnet URI or an info hash"
                           " (.torrent uploads are not accepted yet)")
        if not isinstance(paused, bool):
            raise ApiError(400, "'paused' must be true or false")
        source = source.strip()
        parsed: str | bytes | None
        if source[:7].lower() == "magnet:":
            parsed = source  # never a bare string: Session.add would open it as a path
        else:
            parsed = bare_info_hash(source)
            if parsed is None:
                raise ApiError(400, "'source' is neither a magnet URI nor an info hash")
        try:
            torrent = self.session.add(
                parsed, self.download_dir, state="paused" if paused else "active"
            )
        except LocalProtocolError as e:  # the session has it already
            raise ApiError(409, str(e)) from None
        except ValueError as e:  # MagnetError, MetainfoError
            raise ApiError(400, f"bad source: {e}") from None
        ih = torrent.info_hash.hex()
        if self.store is not None:
            stored = source if isinstance(parsed, str) else torrent.magnet.to_uri()
            try:
                self.store.add_torrent(
                    ih, stored, name=torrent.name, save_path=torrent.basedir,
                    added_at=self._now(), wanted="paused" if paused else "active",
                )
            except DuplicateTorrentError as e:
                self.session.remove(torrent.info_hash)  # never started: closes at once
                raise ApiError(409, str(e)) from None
        torrent.start().addErrback(
            lambda f: _log.failure("starting torrent {info_hash} failed", f, info_hash=ih)
        )
        return 201, torrent_view(torrent)

    def _life_cycle(self, torrent: Torrent, action: str) -> Deferred[Any]:
        wanted = _WANTED[action]
        d: Deferred[None] = getattr(torrent, action)()
        ih = torrent.info_hash.hex()
        if self.store is not None and self.store.get(ih) is not None:
            self.store.update(ih, wanted=wanted)
        return d.addCallback(lambda _: (200, torrent_view(torrent)))

    def _remove(self, torrent: Torrent) -> Deferred[Any]:
        ih = torrent.info_hash.hex()
        if self.store is not None and self.store.get(ih) is not None:
            self.store.remove_torrent(ih)
        d = self.session.remove(torrent.info_hash)
        return d.addCallback(lambda _: (200, {"info_hash": ih, "removed": True}))

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return float(self.session.resolve_reactor().seconds())

    # -- answers -------------------------------------------------------------

    def _write(self, request: Request, code: int, body: Any) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Content-Type", b"application/json; charset=utf-8")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps(body).encode("utf-8")

    def _error(self, request: Request, error: ApiError) -> bytes:
        if error.allow:
            request.setHeader(b"Allow", ", ".join(error.allow).encode("ascii"))
        return self._write(request, error.code, {"error": error.message})

    def _finish(self, request: Request, code: int, body: Any) -> None:
        data = self._write(request, code, body)
        if not request.finished and not getattr(request, "_disconnected", False):
            request.write(data)
            request.finish()

    def _failed(self, request: Request, failure: Failure) -> None:
        if isinstance(failure.value, ApiError):
            error = failure.value
        elif failure.check(LocalProtocolError):
            error = ApiError(409, failure.getErrorMessage())
        else:
            _log.failure("API request failed", failure)
            error = ApiError(500, failure.getErrorMessage())
        data = self._error(request, error)
        if not request.finished and not getattr(request, "_disconnected", False):
            request.write(data)
            request.finish()


def _json_body(request: Request) -> dict[str, Any]:
    """The request's body as a JSON object, at most ``MAX_BODY`` bytes."""
    content = request.content
    raw = content.read(MAX_BODY + 1) if content is not None else b""
    if len(raw) > MAX_BODY:
        raise ApiError(400, f"the body is over {MAX_BODY} bytes")
    try:
        body = json.loads(raw.decode("utf-8")) if raw.strip() else None
    except (UnicodeDecodeError, ValueError):
        raise ApiError(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the body must be a JSON object")
    return body
