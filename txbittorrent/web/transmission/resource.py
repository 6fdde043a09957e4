# twisted.web's Request is untyped: its calls are all over here.
# mypy: disable-error-code="no-untyped-call"
"""Transmission's RPC endpoint: ``TransmissionResource``.

Theory of operation
-------------------
Mounted at ``/transmission`` behind the daemon's ``Guard`` (which keeps its
Host allowlist, body cap and Origin check, and delegates authentication of
``/transmission`` here: ``Guard(..., delegated=[b"/transmission"])``), the
resource answers ``/transmission/rpc`` and ``/transmission/rpc/``; anything
else under it is 404.  A request passes, in order:

1. Authentication: HTTP Basic with the daemon's user and password, checked
   by ``guard.check_credentials(client_address(request), user, password)``
   (scrypt in the thread pool once, then a cached success; failures count
   towards the Guard's bans).  The daemon's API token is accepted too, as
   ``Authorization: Bearer <token>`` (a digest lookup in the store, no
   scrypt), so the daemon's own tools can use the RPC.  Nothing else (no
   cookie) authenticates.  Missing or wrong: 401 with
   ``WWW-Authenticate: Basic realm="Transmission"`` (curl, under
   transmission-remote, sends the password only after that challenge);
   a banned address: 403.
2. The CSRF handshake: ``X-Transmission-Session-Id`` must be this run's
   session id (random, made at construction); otherwise 409 carrying the
   id in that header.  A page on another origin cannot read the id (no
   CORS), so it cannot make a request that passes.
3. POST only (405 otherwise), a JSON object body ``{"method", "arguments",
   "tag"}`` (400 otherwise), answered 200 with ``{"result", "arguments",
   "tag"}`` (the tag echoed) by ``rpc.call``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import json
import secrets
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txbittorrent.web.auth import LoginBanned, client_address
from txbittorrent.web.transmission import sessionmethods, torrentmethods  # noqa: F401 (register)
from txbittorrent.web.transmission.ids import TorrentIds
from txbittorrent.web.transmission.rpc import RpcContext, call

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore
    from txbittorrent.session import Session
    from txbittorrent.web.auth import Guard
    from txbittorrent.web.manager import TorrentManager

__all__ = ["SESSION_ID_HEADER", "TransmissionResource"]

SESSION_ID_HEADER = b"X-Transmission-Session-Id"
_CHALLENGE = b'Basic realm="Transmission"'
_log = Logger()


class TransmissionResource(Resource):
    """Transmission's RPC (see the module docstring)."""

    isLeaf = True

    def __init__(
        self,
        session: Session,
        manager: TorrentManager,
        *,
        store: StateStore | None,
        download_dir: str,
        config_dir: str,
        clock: Any,
        guard: Guard | None = None,
        session_id: str | None = None,
    ) -> None:
        """``manager`` is the daemon's ``TorrentManager`` (share the native
        API's, so a recheck through one API is seen by the other);
        ``clock`` an ``IReactorTime``.  ``guard`` (settable later, as the
        daemon makes it after the tree) checks passwords and keeps bans."""
        super().__init__()
        self.guard = guard
        self.store = store
        self.session_id = session_id if session_id is not None else secrets.token_urlsafe(36)
        self.context = RpcContext(
            session=session, manager=manager, store=store, download_dir=download_dir,
            config_dir=config_dir, session_id=self.session_id, clock=clock,
            started_at=float(clock.seconds()), ids=TorrentIds(manager),
        )

    # -- the checks ------------------------------------------------------------------

    def render(self, request: Request) -> Any:
        path = [p for p in (request.postpath or [])]
        if path not in ([b"rpc"], [b"rpc", b""]):
            return _text(request, 404, b"<h1>404: Not Found</h1>")
        d: Deferred[Any] = maybeDeferred(self._authenticated, request)
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))

        def checked(ok: bool) -> Any:
            if not ok:
                request.setHeader(b"WWW-Authenticate", _CHALLENGE)
                return _text(request, 401, b"<h1>401: Unauthorized</h1>Unauthorized User")
            return self._authorized(request)

        def refused(failure: Failure) -> bytes:
            if failure.check(LoginBanned):
                return _text(request, 403, b"<h1>403: Forbidden</h1>Too many failed logins")
            _log.failure("transmission RPC: checking credentials failed", failure)
            return _text(request, 500, b"<h1>500: Internal Server Error</h1>")

        def write(body: bytes) -> None:
            if not finished[0]:
                request.write(body)
                request.finish()

        d.addCallback(checked).addErrback(refused).addCallback(write)
        d.addErrback(lambda f: _log.failure("transmission RPC: answering failed", f))
        return NOT_DONE_YET

    def _authenticated(self, request: Request) -> bool | Deferred[bool]:
        header = request.getHeader(b"authorization")
        if header is None:
            return False
        scheme, _, value = header.decode("latin-1").strip().partition(" ")
        value = value.strip()
        if scheme.lower() == "bearer" and value:
            return self.store is not None and self.store.check_token(value)
        if scheme.lower() != "basic" or not value:
            return False
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            return False
        user, colon, password = decoded.partition(":")
        if not colon or self.guard is None:
            return False
        # Any user name goes to the Guard (the store knows the daemon's user),
        # so every wrong guess counts towards a ban.
        return self.guard.check_credentials(client_address(request), user, password)

    def _authorized(self, request: Request) -> bytes | Deferred[bytes]:
        given = request.getHeader(SESSION_ID_HEADER) or b""
        if not hmac.compare_digest(given, self.session_id.encode("ascii")):
            request.setHeader(SESSION_ID_HEADER, self.session_id.encode("ascii"))
            return _text(request, 409, b"<h1>409: Conflict</h1><p>Your request had an invalid"
                         b" session-id header.</p>")
        if request.method != b"POST":
            request.setHeader(b"Allow", b"POST")
            return _text(request, 405, b"<h1>405: Method Not Allowed</h1>")
        body = _request_object(request)
        if isinstance(body, str):
            return _json(request, 400, {"result": body})
        d = call(self.context, body.get("method"), body.get("arguments"))

        def answer(outcome: tuple[str, dict[str, Any]]) -> bytes:
            result, arguments = outcome
            reply: dict[str, Any] = {"arguments": arguments, "result": result}
            if "tag" in body:
                reply["tag"] = body["tag"]
            request.setHeader(SESSION_ID_HEADER, self.session_id.encode("ascii"))
            return _json(request, 200, reply)

        return d.addCallback(answer)


def _request_object(request: Request) -> dict[str, Any] | str:
    """The request's JSON object, or why not."""
    content = request.content
    if content is None:
        return "no request body"
    content.seek(0)
    raw = content.read()
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return "the request body is not JSON"
    if not isinstance(body, dict):
        return "the request body is not a JSON object"
    return body


def _text(request: Request, code: int, body: bytes) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"text/html; charset=ISO-8859-1")
    request.setHeader(b"Cache-Control", b"no-store")
    return body


def _json(request: Request, code: int, body: dict[str, Any]) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json; charset=UTF-8")
    request.setHeader(b"Cache-Control", b"no-store")
    return json.dumps(body, ensure_ascii=False).encode("utf-8")
