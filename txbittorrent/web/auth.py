# twisted.web's Request and the reactor interfaces are untyped: their calls are all over here.
# mypy: disable-error-code="no-untyped-call"
"""The daemon's security layer: ``Guard``, a resource wrapping the API.

Theory of operation
-------------------
``Guard(resource, store=..., clock=...)`` is the root resource of the
daemon's ``Site``.  Twisted calls ``getChildWithDefault`` on the root for
every request (even ``/``), so the checks run there, in this order, before
the wrapped resource sees anything:

1. ``Host`` must name an allowed host, with or without a port (DNS
   rebinding: a page on evil.example resolving to 127.0.0.1 still sends
   ``Host: evil.example``).  Otherwise 403.
2. The body must be at most ``max_body`` bytes: the ``Content-Length``
   header, and the body actually received.  Otherwise 413.  With the request
   class from ``Guard.site()`` (``BoundedRequest``) the 413 goes out as soon
   as the headers (or the body received so far) show the excess, before the
   rest is read, and nothing beyond the cap is ever stored, so a large
   upload costs no memory or disk.
3. A change (any method but GET/HEAD) that carries ``Origin`` (or, lacking
   it, ``Referer``) must name an allowed host; a request with neither is
   accepted (non-browser clients, as qBittorrent does).  Otherwise 403.
4. ``POST /login`` and ``POST /logout`` are answered here (see below).
5. Anything else needs ``Authorization: Bearer <token>`` accepted by
   ``store.check_token`` or a live session cookie.  Otherwise 401 (JSON).
   Media players (VLC, ffmpeg, a TV) send neither: a GET or HEAD under one
   of ``media_paths`` (``/data``, ``/stream``, ``/playlist``) is also let
   in by ``?token=<media_token>``, a read-only secret of its own (the
   daemon keeps it in its settings and puts it in its playlists' URLs), so
   the API token, which can change everything, never goes into a URL.
   Paths in ``public`` (the page's ``/`` and ``/ui/``) need nothing.

Then the request goes to ``resource.getChildWithDefault`` (or to the
resource itself when it is a leaf).  Errors are JSON ``{"error": ...}``.

Login takes a form or JSON body with ``username`` and ``password``,
checked by ``store.verify_password`` (scrypt, ~50 ms).  With a
``threadpool`` (and ``reactor``) it runs there through ``deferToThreadPool``
(the daemon passes the reactor's pool); without one it runs on the reactor
thread and blocks it for that long (tests).
Success makes a random session id (``secrets.token_urlsafe``) kept in
memory until ``clock.seconds() + session_lifetime`` (checked lazily: the
guard owns no timers), sent as an ``HttpOnly; SameSite=Strict; Path=/``
cookie.  At most ``max_sessions`` live at once (the oldest go first).

Failures are counted per client address: ``ban_threshold`` failures within
``ban_window`` seconds ban the address for ``ban_duration`` seconds (403 on
``/login``, even with the right password).  At most ``max_tracked``
addresses are remembered (the least recently seen are forgotten first).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import secrets
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, fail, maybeDeferred, succeed
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from txbittorrent.web.bodycap import BoundedRequest

if TYPE_CHECKING:
    from twisted.python.failure import Failure
    from twisted.python.threadpool import ThreadPool

    from txbittorrent.daemon.store import StateStore

__all__ = ["BoundedRequest", "Guard", "LoginBanned", "SESSION_COOKIE", "client_address", "host_of"]

SESSION_COOKIE = b"TXBT_SESSION"
_SAFE_METHODS = frozenset({b"GET", b"HEAD"})
_log = Logger()


def host_of(value: str) -> str | None:
    """The host of a ``Host`` header value or URL authority, lowercased and
    without its port (``[::1]:8080`` -> ``[::1]``); None if malformed."""
    value = value.strip().lower()
    if not value:
        return None
    if value.startswith("["):
        end = value.find("]")
        if end < 0:
            return None
        rest = value[end + 1:]
        if rest and not (rest.startswith(":") and rest[1:].isdigit()):
            return None
        return value[: end + 1]
    host, sep, port = value.partition(":")
    if sep and not port.isdigit():
        return None
    return host or None


class _Error(Resource):
    """A leaf answering every request with one JSON error."""

    isLeaf = True

    def __init__(self, code: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
        super().__init__()
        self.code = code
        self.message = message
        self.headers = headers

    def render(self, request: Request) -> bytes:
        return _json(request, self.code, {"error": self.message}, self.headers)


def _json(
    request: Request, code: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"Content-Type", b"application/json")
    request.setHeader(b"Cache-Control", b"no-store")
    for name, value in headers:
        request.setHeader(name, value)
    return json.dumps(body).encode("utf-8")


class _Login(Resource):
    isLeaf = True

    def __init__(self, guard: Guard) -> None:
        super().__init__()
        self.guard = guard

    def render_POST(self, request: Request) -> bytes | int:
        return self.guard._login(request)


class _Logout(Resource):
    isLeaf = True

    def __init__(self, guard: Guard) -> None:
        super().__init__()
        self.guard = guard

    def render_POST(self, request: Request) -> bytes:
        return self.guard._logout(request)


class Guard(Resource):
    """Host allowlist, body cap, Origin/Referer check and authentication in
    front of ``resource`` (see the module docstring)."""

    def __init__(
        self,
        resource: Resource,
        *,
        store: StateStore,
        clock: Any,
        allowed_hosts: Sequence[str] = ("127.0.0.1", "localhost", "[::1]"),
        max_body: int = 1 << 20,
        threadpool: ThreadPool | None = None,
        reactor: Any = None,
        session_lifetime: float = 7 * 24 * 3600.0,
        max_sessions: int = 1000,
        ban_threshold: int = 5,
        ban_window: float = 600.0,
        ban_duration: float = 3600.0,
        max_tracked: int = 10_000,
        media_token: str | None = None,
        media_paths: frozenset[bytes] = frozenset({b"data", b"stream", b"playlist"}),
        delegated: Sequence[bytes] = (),
        public: Sequence[bytes] = (),
        credential_cache: float = 600.0,
    ) -> None:
        super().__init__()
        if threadpool is not None and reactor is None:
            raise ValueError("a threadpool needs its reactor")
        self.resource = resource
        self.store = store
        self.clock = clock
        self.allowed_hosts = frozenset(h.lower() for h in allowed_hosts)
        self.max_body = max_body
        self.threadpool = threadpool
        self.reactor = reactor
        self.session_lifetime = session_lifetime
        self.max_sessions = max_sessions
        self.ban_threshold = ban_threshold
        self.ban_window = ban_window
        self.ban_duration = ban_duration
        self.max_tracked = max_tracked
        self.media_token = media_token
        """The secret that lets a GET/HEAD under ``media_paths`` in (None: none does)."""
        self.media_paths = media_paths
        self.delegated = tuple(p.rstrip(b"/") for p in delegated)
        """Path prefixes (``b"/api/v2"``) whose resources authenticate requests
        themselves (another API's own login); the host, body and origin rules
        still apply."""
        self.public = _public_paths(public)
        """Paths served without authentication, as segment lists: ``b"/"``
        is exactly the root, ``b"/ui/"`` (ending in a slash) everything
        under ``/ui/``, anything else exactly that path.  A path with a
        ``.`` or ``..`` segment is never public.  The host, body and origin
        rules still apply."""
        self.credential_cache = credential_cache
        self._verified: OrderedDict[bytes, float] = OrderedDict()  # digest -> expiry
        self._sessions: OrderedDict[str, float] = OrderedDict()  # id -> expiry
        self._failures: OrderedDict[str, list[float]] = OrderedDict()  # address -> times
        self._banned: OrderedDict[str, float] = OrderedDict()  # address -> until
        self._login_resource = _Login(self)
        self._logout_resource = _Logout(self)

    def site(self, **kwargs: Any) -> Site:
        """A Site serving this guard whose requests never store more than
        ``max_body`` bytes of body."""
        factory = type("BoundedRequest", (BoundedRequest,), {"max_body": self.max_body})
        return Site(self, requestFactory=factory, **kwargs)

    # -- routing ----------------------------------------------------------

    def getChildWithDefault(self, path: bytes, request: Request) -> Resource:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        if not request.postpath and path in (b"login", b"logout"):
            return self._login_resource if path == b"login" else self._logout_resource
        if not (self._public(path, request) or self._delegated(request)
                or self._authenticated(request) or self._media_allowed(path, request)):
            return _Error(401, "authentication required", [(b"WWW-Authenticate", b"Bearer")])
        if self.resource.isLeaf:
            assert request.postpath is not None and request.prepath is not None
            request.postpath.insert(0, request.prepath.pop())
            return self.resource
        child: Resource = self.resource.getChildWithDefault(path, request)
        return child

    def render(self, request: Request) -> bytes:  # only if someone renders the guard directly
        return _json(request, 404, {"error": "not found"})

    def _allowed(self, value: str) -> bool:
        host = host_of(value)
        return host is not None and host in self.allowed_hosts

    def _refusal(self, request: Request) -> Resource | None:
        """The error for a request failing the host, body or origin rules."""
        host = request.getHeader(b"host")
        if host is None or not self._allowed(host.decode("latin-1")):
            return _Error(403, "host not allowed")
        if self._too_large(request):
            return _Error(413, f"request body over {self.max_body} bytes")
        if request.method not in _SAFE_METHODS:
            origin = request.getHeader(b"origin")
            source = origin if origin is not None else request.getHeader(b"referer")
            if source is not None:
                netloc = urlsplit(source.decode("latin-1")).netloc
                if not self._allowed(netloc.rpartition("@")[2]):
                    return _Error(403, "cross-origin change refused")
        return None

    def _too_large(self, request: Request) -> bool:
        if getattr(request, "body_too_large", False):
            return True
        length = request.getHeader(b"content-length")
        if length is not None:
            try:
                if int(length) > self.max_body:
                    return True
            except ValueError:
                return True
        content = request.content
        if content is None:
            return False
        position = content.tell()
        size = content.seek(0, io.SEEK_END)
        content.seek(position)
        return bool(size > self.max_body)

    # -- authentication ---------------------------------------------------

    def _authenticated(self, request: Request) -> bool:
        authorization = request.getHeader(b"authorization")
        if authorization is not None:
            scheme, _, token = authorization.decode("latin-1").strip().partition(" ")
            if scheme.lower() == "bearer" and token.strip():
                if self.store.check_token(token.strip()):
                    return True
        cookie = request.getCookie(SESSION_COOKIE)
        return cookie is not None and self._session_live(cookie.decode("latin-1"))

    def _delegated(self, request: Request) -> bool:
        target = request.path or b""
        return any(target == prefix or target.startswith(prefix + b"/")
                   for prefix in self.delegated)

    def _public(self, path: bytes, request: Request) -> bool:
        """Whether the request's path (decoded segments, as the resource tree
        sees them) is one of ``public``."""
        if not self.public:
            return False
        segments = [path, *(request.postpath or ())]
        if any(s in (b".", b"..") for s in segments):
            return False
        for public, is_prefix in self.public:
            if is_prefix:
                if len(segments) > len(public) and segments[:len(public)] == public:
                    return True
            elif segments == public:
                return True
        return False

    def _media_allowed(self, path: bytes, request: Request) -> bool:
        """A player's read of ``/data``, ``/stream`` or ``/playlist`` with
        ``?token=`` the media token."""
        if self.media_token is None or request.method not in _SAFE_METHODS:
            return False
        if path not in self.media_paths:
            return False
        given = (request.args or {}).get(b"token")
        if not given or len(given) != 1:
            return False
        return hmac.compare_digest(given[0], self.media_token.encode("ascii"))

    def _session_live(self, session_id: str) -> bool:
        expiry = self._sessions.get(session_id)
        if expiry is None:
            return False
        if expiry <= self.clock.seconds():
            del self._sessions[session_id]
            return False
        return True

    def session_count(self) -> int:
        """How many sessions are live now."""
        now = self.clock.seconds()
        for session_id, expiry in list(self._sessions.items()):
            if expiry <= now:
                del self._sessions[session_id]
        return len(self._sessions)

    def _new_session(self) -> str:
        self.session_count()  # drop the expired
        while len(self._sessions) >= self.max_sessions:
            self._sessions.popitem(last=False)
        session_id = secrets.token_urlsafe(32)
        self._sessions[session_id] = self.clock.seconds() + self.session_lifetime
        return session_id

    # -- login, logout, bans ----------------------------------------------

    def is_banned(self, address: str) -> bool:
        """Whether ``address`` may not log in now."""
        until = self._banned.get(address)
        if until is None:
            return False
        if until <= self.clock.seconds():
            del self._banned[address]
            return False
        return True

    def _failed(self, address: str) -> None:
        now = self.clock.seconds()
        times = [t for t in self._failures.pop(address, []) if t > now - self.ban_window]
        times.append(now)
        if len(times) >= self.ban_threshold:
            self._banned.pop(address, None)
            self._banned[address] = now + self.ban_duration
            while len(self._banned) > self.max_tracked:
                self._banned.popitem(last=False)
            _log.warn("login: {address} banned after {n} failures", address=address, n=len(times))
        else:
            self._failures[address] = times
            while len(self._failures) > self.max_tracked:
                self._failures.popitem(last=False)

    def check_credentials(self, address: str, username: str, password: str) -> Deferred[bool]:
        """Whether ``username``/``password`` are the daemon's, as ``/login``
        checks them: in the thread pool (scrypt), each failure counted
        against ``address``, a banned address refused (``LoginBanned``).
        A success is remembered (by a digest, never the password) for
        ``credential_cache`` seconds, so clients that send them with every
        request (HTTP Basic) cost one scrypt, not one each."""
        if self.is_banned(address):
            return fail(LoginBanned(address))
        key = hashlib.sha256(f"{username}\0{password}".encode("utf-8")).digest()
        now = self.clock.seconds()
        expiry = self._verified.get(key)
        if expiry is not None and expiry > now:
            return succeed(True)
        self._verified.pop(key, None)
        if self.threadpool is not None:
            checked: Deferred[bool] = deferToThreadPool(
                self.reactor, self.threadpool, self.store.verify_password, username, password
            )
        else:
            checked = maybeDeferred(self.store.verify_password, username, password)

        def counted(ok: bool) -> bool:
            if ok:
                self._failures.pop(address, None)
                while len(self._verified) >= 16:
                    self._verified.popitem(last=False)
                self._verified[key] = self.clock.seconds() + self.credential_cache
            else:
                self._failed(address)
            return bool(ok)

        return checked.addCallback(counted)

    def attempt_login(self, address: str, username: str, password: str) -> Deferred[str | None]:
        """``check_credentials``, then a new session: fires with its id
        (for a cookie of the caller's choosing) or None."""
        d = self.check_credentials(address, username, password)
        return d.addCallback(lambda ok: self._new_session() if ok else None)

    def session_live(self, session_id: str) -> bool:
        """Whether ``session_id`` (from ``attempt_login``) is live."""
        return self._session_live(session_id)

    def end_session(self, session_id: str) -> None:
        """Forget a session (logout)."""
        self._sessions.pop(session_id, None)

    def _login(self, request: Request) -> bytes | int:
        address = _client(request)
        if self.is_banned(address):
            return _json(request, 403, {"error": "too many failed logins; try later"})
        credentials = _credentials(request)
        if credentials is None:
            return _json(request, 400, {"error": "username and password required"})
        username, password = credentials
        checked = self.attempt_login(address, username, password)
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))

        def answer(session_id: str | None) -> None:
            if session_id is not None:
                request.addCookie(
                    SESSION_COOKIE, session_id.encode("ascii"), path=b"/",
                    httpOnly=True, sameSite="strict",
                    max_age=str(int(self.session_lifetime)).encode("ascii"),
                )
                body = _json(request, 200, {"ok": True})
            else:
                body = _json(request, 401, {"error": "wrong username or password"})
            if not finished[0]:
                request.write(body)
                request.finish()

        def failed(failure: Failure) -> None:
            if failure.check(LoginBanned):
                body = _json(request, 403, {"error": "too many failed logins; try later"})
                if not finished[0]:
                    request.write(body)
                    request.finish()
                return
            _log.failure("login: verifying the password failed", failure)
            if not finished[0]:
                request.write(_json(request, 500, {"error": "internal error"}))
                request.finish()

        checked.addCallback(answer).addErrback(failed)
        return NOT_DONE_YET

    def _logout(self, request: Request) -> bytes:
        cookie = request.getCookie(SESSION_COOKIE)
        if cookie is not None:
            self._sessions.pop(cookie.decode("latin-1"), None)
        request.addCookie(
            SESSION_COOKIE, b"", path=b"/", httpOnly=True, sameSite="strict", max_age=b"0"
        )
        return _json(request, 200, {"ok": True})


class LoginBanned(Exception):
    """Too many failed logins from this address lately."""

    def __init__(self, address: str) -> None:
        super().__init__(f"too many failed logins from {address}; try later")
        self.address = address


def client_address(request: Request) -> str:
    """The address logins are counted against (the connecting host)."""
    return _client(request)


def _client(request: Request) -> str:
    address = request.getClientAddress()
    return str(getattr(address, "host", address))


def _public_paths(paths: Sequence[bytes]) -> tuple[tuple[list[bytes], bool], ...]:
    """``Guard(public=...)`` as (segments, is a prefix) pairs: ``b"/"`` is
    ``[b""]`` exactly, ``b"/ui/"`` the prefix ``[b"ui"]``, ``b"/a/b"``
    exactly ``[b"a", b"b"]``."""
    out: list[tuple[list[bytes], bool]] = []
    for path in paths:
        if not path.startswith(b"/"):
            raise ValueError(f"a public path starts with '/': {path!r}")
        if path == b"/":
            out.append(([b""], False))
        elif path.endswith(b"/"):
            out.append((path[1:-1].split(b"/"), True))
        else:
            out.append((path[1:].split(b"/"), False))
    return tuple(out)


def _credentials(request: Request) -> tuple[str, str] | None:
    """(username, password) from a JSON or form body, or None."""
    kind = (request.getHeader(b"content-type") or b"").split(b";")[0].strip().lower()
    if kind == b"application/json":
        if request.content is None:
            return None
        try:
            request.content.seek(0)
            body = json.loads(request.content.read().decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(body, dict):
            return None
        username, password = body.get("username"), body.get("password")
    else:
        args = request.args or {}
        try:
            username = args[b"username"][0].decode("utf-8")
            password = args[b"password"][0].decode("utf-8")
        except (KeyError, IndexError, UnicodeDecodeError):
            return None
    if not isinstance(username, str) or not isinstance(password, str) or not username:
        return None
    return username, password
