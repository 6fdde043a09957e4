"""qBittorrent's Web API v2 over the daemon's Session: ``QbtResource``.

Theory of operation
-------------------
``QbtResource(session, store=..., download_dir=..., manager=..., guard=...)``
is a leaf ``twisted.web`` resource mounted at ``/api/v2``; the path below
it is ``<namespace>/<method>`` and ``base.ENDPOINTS`` (filled by the
endpoint modules: ``auth``, ``app``, ``torrents``, ``actions``, ``add``,
``labels``, ``transfer``, ``sync``) says which handler answers.

Every request, in order:

1. an unknown ``<namespace>/<method>``: 404 ``Not Found``;
2. ``auth/login`` and ``auth/logout`` need no session; anything else needs
   one, else 403 ``Forbidden`` (qBittorrent's clients log in again on
   403).  A session is the ``SID`` cookie from ``auth/login`` (a Guard
   session: ``guard.attempt_login``), or, as the rest of the daemon
   accepts them, ``Authorization: Bearer <API token>`` or the native
   ``TXBT_SESSION`` cookie.  The Guard in front delegates ``/api/v2`` to
   this resource (``Guard(..., delegated=[b"/api/v2"])``), so its Host,
   body-size and Origin rules still apply;
3. an action (``changes=True``) must be a POST (405 ``Allow: POST``
   otherwise, as qBittorrent 4.4+ answers); a read takes GET or POST;
4. the parameters are the query's and the form's (url-encoded or
   multipart; an empty body is fine), as text; the raw bytes of every
   field stay available for .torrent parts.

Answers: a ``str`` is ``text/plain; charset=UTF-8``, a dict or list is
``application/json``, a ``Download`` (``torrents/export``) is sent as it is.  Errors are plain text with qBittorrent's status:
``QbtError``, or the manager's ``ApiError`` (its status and message),
409 for a ``LocalProtocolError``, 500 (logged) for anything else.  A
Deferred answer is written when it fires, unless the client has gone.
"""
# twisted.web's Request and Resource are untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txbittorrent.errors import LocalProtocolError
from txbittorrent.web.apibody import ApiError, finish_late
from txbittorrent.web.apitorrent import Download, content_disposition
from txbittorrent.web.auth import SESSION_COOKIE
from txbittorrent.web.manager import TorrentManager

# The endpoint modules register themselves in ENDPOINTS when imported.
from txbittorrent.web.qbt import actions, add, app, auth, labels, sync, torrents, transfer  # noqa: F401
from txbittorrent.web.qbt.base import ENDPOINTS, Call, Context, QbtError
from txbittorrent.web.qbt.extras import QbtExtras
from txbittorrent.web.qbt.sync import SyncBook

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore
    from txbittorrent.session import Session
    from txbittorrent.web.auth import Guard

__all__ = ["QbtResource", "SID_COOKIE"]

SID_COOKIE = b"SID"
_PUBLIC = frozenset({("auth", "login"), ("auth", "logout")})
_log = Logger()


class QbtResource(Resource):
    """qBittorrent's Web API v2 (see the module docstring)."""

    isLeaf = True

    def __init__(
        self,
        session: Session,
        *,
        store: StateStore,
        download_dir: str,
        manager: TorrentManager | None = None,
        guard: Guard | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        """``manager`` is shared with the other APIs (default: a new one);
        ``guard`` logs clients in (set it later when the Guard is made
        after the tree: until then nobody can log in); ``clock`` gives
        Unix time (default: the session's reactor's ``seconds``)."""
        super().__init__()
        if manager is None:
            manager = TorrentManager(session, store=store, download_dir=download_dir,
                                     clock=clock)
        self.manager = manager
        self.guard = guard
        self.session = session
        self.store = store
        self.download_dir = download_dir
        self._clock = clock
        self.extras = QbtExtras(store)
        self.sync = SyncBook()

    def now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return float(self.session.resolve_reactor().seconds())

    def context(self) -> Context:
        assert self.guard is not None
        return Context(session=self.session, store=self.store, manager=self.manager,
                       guard=self.guard, extras=self.extras, sync=self.sync,
                       download_dir=self.download_dir, clock=self.now)

    # -- dispatch --------------------------------------------------------------------

    def render(self, request: Request) -> Any:
        try:
            result = self._dispatch(request)
        except QbtError as e:
            return self._text(request, e.code, e.text)
        except ApiError as e:
            return self._text(request, e.code, e.message)
        except LocalProtocolError as e:
            return self._text(request, 409, str(e))
        except Exception:
            _log.failure("qBittorrent API request failed")
            return self._text(request, 500, "Internal Server Error")
        if isinstance(result, Deferred):
            result.addCallbacks(lambda value: self._finish(request, 200, value),
                                lambda failure: self._failed(request, failure))
            return NOT_DONE_YET
        return self._write(request, 200, result)

    def _dispatch(self, request: Request) -> Any:
        segments = [s.decode("utf-8", "replace") for s in request.postpath or ()]
        while segments and segments[-1] == "":
            segments.pop()
        if len(segments) != 2 or (segments[0], segments[1]) not in ENDPOINTS:
            raise QbtError(404, "Not Found")
        key = (segments[0], segments[1])
        found = ENDPOINTS[key]
        client = self.client_id(request)
        if key not in _PUBLIC and client is None:
            raise QbtError(403, "Forbidden")
        method = request.method
        if found.changes and method != b"POST":
            request.setHeader(b"Allow", b"POST")
            raise QbtError(405, "Method Not Allowed")
        if method not in (b"GET", b"HEAD", b"POST"):
            request.setHeader(b"Allow", b"GET, POST")
            raise QbtError(405, "Method Not Allowed")
        if self.guard is None:
            raise QbtError(403, "Forbidden")
        raw = {k.decode("utf-8", "replace"): list(v) for k, v in (request.args or {}).items()}
        params: dict[str, str] = {}
        for name, values in raw.items():
            if values:
                try:
                    params[name] = values[0].decode("utf-8")
                except UnicodeDecodeError:
                    continue  # a file part: see Call.raw
        call = Call(request=request, params=params, raw=raw, client=client or "",
                    ctx=self.context())
        return found.handler(call)

    def client_id(self, request: Request) -> str | None:
        """Who is asking, if authenticated: a key for the sync snapshots."""
        guard = self.guard
        if guard is None:
            return None
        sid: bytes | None = request.getCookie(SID_COOKIE)
        if sid is not None and guard.session_live(sid.decode("latin-1")):
            return "sid:" + sid.decode("latin-1")
        authorization = request.getHeader(b"authorization")
        if authorization is not None:
            scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip() \
                    and self.store.check_token(token.strip()):
                return "token:" + hashlib.sha256(token.strip().encode()).hexdigest()[:32]
        native: bytes | None = request.getCookie(SESSION_COOKIE)
        if native is not None and guard.session_live(native.decode("latin-1")):
            return "native:" + native.decode("latin-1")
        return None

    # -- answers ---------------------------------------------------------------------

    def _write(self, request: Request, code: int, body: Any) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"Cache-Control", b"no-store")
        if isinstance(body, Download):
            request.setHeader(b"Content-Type", body.content_type.encode("ascii"))
            request.setHeader(b"Content-Disposition", content_disposition(body.filename))
            data = body.content
        elif isinstance(body, str):
            request.setHeader(b"Content-Type", b"text/plain; charset=UTF-8")
            data = body.encode("utf-8")
        else:
            request.setHeader(b"Content-Type", b"application/json")
            data = json.dumps(body).encode("utf-8")
        if request.method == b"HEAD":  # the headers alone, with the body's length
            request.setHeader(b"Content-Length", str(len(data)).encode("ascii"))
            return b""
        return data

    def _text(self, request: Request, code: int, text: str) -> bytes:
        return self._write(request, code, text)

    def _finish(self, request: Request, code: int, body: Any) -> None:
        data = self._write(request, code, body)
        finish_late(request, data)

    def _failed(self, request: Request, failure: Failure) -> None:
        value = failure.value
        if isinstance(value, QbtError):
            code, text = value.code, value.text
        elif isinstance(value, ApiError):
            code, text = value.code, value.message
        elif isinstance(value, LocalProtocolError):
            code, text = 409, str(value)
        else:
            _log.failure("qBittorrent API request failed", failure)
            code, text = 500, "Internal Server Error"
        self._finish(request, code, text)
