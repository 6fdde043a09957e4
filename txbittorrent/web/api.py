"""The daemon's native JSON API over a Session: ``ApiResource``.

Theory of operation
-------------------
``ApiResource(session, store=None, download_dir=...)`` is a leaf
``twisted.web`` resource, meant to be mounted at ``/api``.  It parses the
request (path segments, method, a size-capped body: ``apibody``), calls one
Session or Torrent method (``apiadd`` for adds, ``apitorrent`` for the rest
of one torrent's routes), records the change in the ``StateStore`` when
there is one, and renders the result as JSON (``apiviews`` gives the
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
this resource's memory only.  Global limits are stored as the settings
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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txbittorrent.core.metainfo import Metainfo
from txbittorrent.daemon.store import DuplicateTorrentError
from txbittorrent.errors import LocalProtocolError
from txbittorrent.web import apisession, apitorrent
from txbittorrent.web.apiadd import (
    FETCH_TIMEOUT,
    AddRequest,
    TorrentFetcher,
    priorities_for,
    read_add_request,
    resolved,
    select_on_metadata,
)
from txbittorrent.web.apibody import (
    MAX_BODY,
    MAX_TORRENT,
    ApiError,
    first,
    flag,
    form_fields,
    json_body,
    labels,
)
from txbittorrent.web.apitorrent import Download, content_disposition
from txbittorrent.web.apiviews import ROUTES, peer_view, torrent_view

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore, TorrentRecord
    from txbittorrent.session import Session
    from txbittorrent.torrent import Torrent

__all__ = ["ApiResource", "ApiError", "MAX_BODY", "MAX_TORRENT"]

_HEX_HASH = re.compile(r"\A[0-9a-fA-F]{40}\Z")
_WANTED = {"start": "active", "pause": "paused", "stop": "stopped"}
_ACTIONS: dict[str, tuple[str, ...]] = {
    "start": ("POST",), "pause": ("POST",), "stop": ("POST",), "recheck": ("POST",),
    "files": ("GET", "POST"), "peers": ("GET",), "trackers": ("GET", "POST", "DELETE"),
    "limits": ("GET", "POST"), "labels": ("POST",), "torrent": ("GET",),
}
_log = Logger()


@dataclass(slots=True)
class _Extra:
    """What the API remembers of a torrent the store does not hold."""

    labels: tuple[str, ...]
    added_at: float


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
        self._clock = clock
        self._http_client = http_client
        self._fetch_timeout = fetch_timeout
        self._extras: dict[str, _Extra] = {}
        self._rechecking: set[str] = set()
        self._pending: dict[str, Deferred[tuple[int, ...] | None]] = {}
        """File selections of magnets waiting for their metadata."""

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
            return 200, apisession.stats(self.session)
        if segments[0] != "torrents" or len(segments) > 3:
            raise ApiError(404, "no such route")
        if len(segments) == 1:
            if _method(request, "GET", "POST") == "GET":
                label = first(form_fields(request), "label")
                return 200, {"torrents": [
                    self.view(t) for t in self.session.torrents()
                    if label is None or label in self._labels(t.info_hash.hex())
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

    # -- what the store (or this resource) knows ------------------------------

    def _record(self, ih: str) -> TorrentRecord | None:
        return self.store.get(ih) if self.store is not None else None

    def _labels(self, ih: str) -> tuple[str, ...]:
        record = self._record(ih)
        if record is not None:
            return record.labels
        extra = self._extras.get(ih)
        return extra.labels if extra is not None else ()

    def _store_update(self, ih: str, **changes: Any) -> None:
        if self._record(ih) is not None:
            assert self.store is not None
            self.store.update(ih, **changes)

    def view(self, torrent: Torrent) -> dict[str, Any]:
        """The torrent's view with its labels, times and (during a recheck)
        state "checking"."""
        ih = torrent.info_hash.hex()
        record, extra = self._record(ih), self._extras.get(ih)
        state = "checking" if ih in self._rechecking else None
        if record is not None:
            return torrent_view(torrent, labels=record.labels, added_at=record.added_at,
                                completed_at=record.completed_at, state=state)
        if extra is not None:
            return torrent_view(torrent, labels=extra.labels, added_at=extra.added_at,
                                state=state)
        return torrent_view(torrent, state=state)

    # -- adding and removing -------------------------------------------------

    def _add(self, request: Request) -> Any:
        add = read_add_request(request, self.download_dir)
        if add.url is None:
            return self._add_now(add)
        d = self._fetcher().fetch(add.url)
        return d.addCallback(lambda fetched: self._add_now(resolved(add, fetched)))

    def _fetcher(self) -> TorrentFetcher:
        reactor = self.session.resolve_reactor()
        if self._http_client is None:
            from treq.client import HTTPClient
            from twisted.web.client import Agent

            self._http_client = HTTPClient(Agent(reactor))  # type: ignore[arg-type]
        return TorrentFetcher(self._http_client, reactor, self._fetch_timeout)

    def _add_now(self, add: AddRequest) -> tuple[int, dict[str, Any]]:
        source = add.source
        assert source is not None
        options: dict[str, Any] = {"state": "paused" if add.paused else "active"}
        priorities = None
        if isinstance(source, Metainfo):
            priorities = priorities_for(source, add.priorities, add.files)
            if priorities is not None:
                options["priorities"] = list(priorities)
        try:
            torrent = self.session.add(source, add.save_path, **options)
        except LocalProtocolError as e:  # the session has it already
            raise ApiError(409, str(e)) from None
        except ValueError as e:  # MagnetError, MetainfoError
            raise ApiError(400, f"bad source: {e}") from None
        ih, now = torrent.info_hash.hex(), self._now()
        if self.store is not None:
            stored: bytes | str
            if add.raw is not None:
                stored = add.raw
            else:
                stored = source if isinstance(source, str) else torrent.magnet.to_uri()
            try:
                self.store.add_torrent(
                    ih, stored, name=torrent.name, save_path=torrent.basedir, added_at=now,
                    priorities=priorities or (), labels=add.labels,
                    wanted="paused" if add.paused else "active",
                )
            except DuplicateTorrentError as e:
                self.session.remove(torrent.info_hash)  # never started: closes at once
                raise ApiError(409, str(e)) from None
        else:
            self._extras[ih] = _Extra(add.labels, now)
        if priorities is None and (add.priorities is not None or add.files is not None):
            self._pending[ih] = select_on_metadata(torrent, add.priorities, add.files)
            self._pending[ih].addCallback(self._selected, ih)
        torrent.start().addErrback(
            lambda f: _log.failure("starting torrent {info_hash} failed", f, info_hash=ih)
        )
        return 201, self.view(torrent)

    def _selected(
        self, priorities: tuple[int, ...] | None, ih: str
    ) -> tuple[int, ...] | None:
        """A magnet's file selection was applied (or dropped)."""
        self._pending.pop(ih, None)
        if priorities is not None:
            self._store_update(ih, priorities=priorities)
        return priorities

    def _remove(self, request: Request, torrent: Torrent) -> Deferred[Any]:
        delete = flag(first(form_fields(request), "delete_data") or "0", "delete_data")
        ih = self._not_rechecking(torrent)
        if self._record(ih) is not None:
            assert self.store is not None
            self.store.remove_torrent(ih)
        self._extras.pop(ih, None)
        return apitorrent.remove(self.session, torrent, delete).addCallback(lambda b: (200, b))

    # -- one torrent's routes (``_route_<action>``, dispatched by name) -------

    def _not_rechecking(self, torrent: Torrent) -> str:
        ih = torrent.info_hash.hex()
        if ih in self._rechecking:
            raise ApiError(409, f"torrent {ih} is being rechecked")
        return ih

    def _life_cycle(self, torrent: Torrent, action: str) -> Deferred[Any]:
        ih = self._not_rechecking(torrent)
        d: Deferred[None] = getattr(torrent, action)()
        self._store_update(ih, wanted=_WANTED[action])
        return d.addCallback(lambda _: (200, self.view(torrent)))

    def _route_start(self, request: Request, method: str, torrent: Torrent) -> Any:
        return self._life_cycle(torrent, "start")

    def _route_pause(self, request: Request, method: str, torrent: Torrent) -> Any:
        return self._life_cycle(torrent, "pause")

    def _route_stop(self, request: Request, method: str, torrent: Torrent) -> Any:
        return self._life_cycle(torrent, "stop")

    def _route_recheck(self, request: Request, method: str, torrent: Torrent) -> Any:
        ih = self._not_rechecking(torrent)
        self._rechecking.add(ih)
        try:
            d = apitorrent.recheck(torrent)
        except BaseException:
            self._rechecking.discard(ih)
            raise

        def done(result: object) -> object:
            self._rechecking.discard(ih)
            return result

        return d.addBoth(done).addCallback(lambda _: (200, self.view(torrent)))

    def _route_files(self, request: Request, method: str, torrent: Torrent) -> Any:
        if method == "GET":
            return 200, apitorrent.files_body(torrent)
        ih = self._not_rechecking(torrent)
        priorities = apitorrent.new_priorities(torrent, json_body(request))

        def applied(_: object) -> tuple[int, dict[str, Any]]:
            self._store_update(ih, priorities=priorities)
            return 200, apitorrent.files_body(torrent)

        return torrent.set_priorities(priorities).addCallback(applied)

    def _route_peers(self, request: Request, method: str, torrent: Torrent) -> Any:
        return 200, {"peers": [peer_view(p) for p in torrent.peers()]}

    def _route_trackers(self, request: Request, method: str, torrent: Torrent) -> Any:
        if method == "GET":
            return 200, apitorrent.trackers_body(torrent)
        if method == "POST":
            code, body = 201, apitorrent.add_tracker(torrent, json_body(request))
        else:
            code, body = 200, apitorrent.remove_tracker(torrent, first(form_fields(request), "url"))
        tiers = [[s.url for s in tier] for tier in torrent.trackers()]
        self._store_update(torrent.info_hash.hex(), trackers=[t for t in tiers if t])
        return code, body

    def _route_limits(self, request: Request, method: str, torrent: Torrent) -> Any:
        config = torrent.config
        if method == "POST":
            down, up = apitorrent.read_limits(
                json_body(request), config.download_limit, config.upload_limit
            )
            torrent.set_rate_limits(down, up)
            self._store_update(torrent.info_hash.hex(), download_limit=down, upload_limit=up)
            config = torrent.config
        return 200, apitorrent.limits_body(config.download_limit, config.upload_limit)

    def _route_labels(self, request: Request, method: str, torrent: Torrent) -> Any:
        body = json_body(request)
        if "labels" not in body:
            raise ApiError(400, "give 'labels': a list of strings")
        new = labels(body["labels"])
        ih = torrent.info_hash.hex()
        if self._record(ih) is not None:
            self._store_update(ih, labels=new)
        else:
            extra = self._extras.setdefault(ih, _Extra((), self._now()))
            extra.labels = new
        return 200, self.view(torrent)

    def _route_torrent(self, request: Request, method: str, torrent: Torrent) -> Any:
        record = self._record(torrent.info_hash.hex())
        source = record.source if record is not None and isinstance(record.source, bytes) \
            else None
        return 200, apitorrent.torrent_file(torrent, source)

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return float(self.session.resolve_reactor().seconds())

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
