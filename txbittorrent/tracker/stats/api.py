"""The tracker's stats and admin REST API (``/api/...``), in the spirit of goat's.

Theory of operation
-------------------
``StatsApi`` is one leaf resource mounted at ``/api``; it routes on the
method and the path segments after it (``ROUTES``), and every answer is
JSON (errors are ``{"error": ...}`` with a 4xx status, never a traceback).
It reads the swarms through a ``SwarmView``, the counters from a
``TrackerStats`` and users, keys and the whitelist from a ``TrackerDB``;
its only state is a ``NonceCache`` and a ``LoginLimiter``.

Requests, in order: the body is capped (``max_body``; 413); the route is
found (404, or 405 with ``Allow``); ``POST /api/login`` takes HTTP Basic
credentials (scrypt in the thread pool when one is given; failures counted
per address, 403 while banned) and answers with a new API key; any other
route needs the key, as ``Authorization: Bearer <key>`` or a ``TXBT-HMAC``
signed request (see ``signing``) (401 otherwise); routes marked ``admin``
(every change, and the user list) need an admin user (403).  Changes are
POST or DELETE, never GET.

Routes::

    POST   /api/login                      Basic -> {"key_id", "key", "expires_at", ...}
    POST   /api/logout                     revoke the key used
    GET    /api/status                     uptime, rates by protocol, peers, memory
    GET    /api/torrents?offset=&limit=    the tracked torrents, most recent first, then
                                           whitelisted ones without a swarm
    GET    /api/torrents/<hex info hash>   one torrent
    GET    /api/whitelist                  whitelisted info hashes
    POST   /api/whitelist                  {"info_hash": hex}             (admin)
    DELETE /api/whitelist/<hex>                                            (admin)
    GET    /api/users                      users, their keys and totals   (admin)
    POST   /api/users                      {"name", "password", "admin", "torrent_limit"} (admin)
    POST   /api/users/<name>/passkey       a new passkey                  (admin)
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

import base64
import binascii
import hmac
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txbittorrent.core.tracker.stats import KINDS, PROTOCOLS, WINDOWS, TrackerStats
from txbittorrent.tracker.db import ApiKey, PasswordHash, TrackerDB, TrackerDBError, User
from txbittorrent.tracker.stats.signing import (
    SCHEME,
    LoginLimiter,
    NonceCache,
    parse_signed_header,
    sign,
)
from txbittorrent.tracker.stats.view import SwarmSummary, SwarmView, Totals, resident_memory

__all__ = ["ApiError", "ROUTES", "StatsApi"]

_log = Logger()
Reply = tuple[int, Any]


class ApiError(Exception):
    """A 4xx answer."""

    def __init__(self, code: int, message: str, headers: tuple[tuple[bytes, bytes], ...] = ()):
        super().__init__(message)
        self.code = code
        self.message = message
        self.headers = headers


@dataclass(frozen=True, slots=True)
class Route:
    method: bytes
    pattern: tuple[str, ...]
    """Segments; ``*`` matches any one segment (passed to the handler)."""
    handler: str
    admin: bool = False


ROUTES = (
    Route(b"POST", ("login",), "login"),
    Route(b"POST", ("logout",), "logout"),
    Route(b"GET", ("status",), "status"),
    Route(b"GET", ("torrents",), "torrents"),
    Route(b"GET", ("torrents", "*"), "torrent"),
    Route(b"GET", ("whitelist",), "whitelist"),
    Route(b"POST", ("whitelist",), "whitelist_add", admin=True),
    Route(b"DELETE", ("whitelist", "*"), "whitelist_remove", admin=True),
    Route(b"GET", ("users",), "users", admin=True),
    Route(b"POST", ("users",), "user_create", admin=True),
    Route(b"POST", ("users", "*", "passkey"), "passkey_reset", admin=True),
)

_UNAUTHORIZED = ((b"WWW-Authenticate", b'Basic realm="tracker", Bearer, ' + SCHEME.encode()),)


def _info_hash(text: str) -> bytes:
    if len(text) != 40:
        raise ApiError(400, "an info hash is 40 hex digits")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise ApiError(400, "an info hash is 40 hex digits") from None


def _int_arg(request: Request, name: bytes, default: int, low: int, high: int) -> int:
    values = (request.args or {}).get(name)
    if not values:
        return default
    text = values[0]
    if len(values) > 1 or not text.isdigit() or len(text) > 9 or not low <= int(text) <= high:
        raise ApiError(400, f"{name.decode()} must be an integer from {low} to {high}")
    return int(text)


class StatsApi(Resource):
    """``/api`` (see the module docstring)."""

    isLeaf = True

    def __init__(
        self,
        view: SwarmView,
        db: TrackerDB,
        stats: TrackerStats,
        clock: Any,
        *,
        threadpool: Any = None,
        reactor: Any = None,
        key_lifetime: float = 7 * 24 * 3600.0,
        signature_window: float = 300.0,
        max_nonces: int = 100_000,
        max_body: int = 64 * 1024,
        max_page: int = 500,
    ) -> None:
        super().__init__()
        if threadpool is not None and reactor is None:
            raise ValueError("a threadpool needs its reactor")
        self.view = view
        self.db = db
        self.stats = stats
        self.clock = clock
        self.threadpool = threadpool
        self.reactor = reactor
        self.key_lifetime = key_lifetime
        self.max_body = max_body
        self.max_page = max_page
        self.nonces = NonceCache(signature_window, max_nonces)
        self.logins = LoginLimiter()

    # -- plumbing -----------------------------------------------------------

    def _blocking(self, f: Callable[..., Any], *args: Any, **kwargs: Any) -> Deferred[Any]:
        """``f`` in the thread pool when there is one (scrypt), else here."""
        if self.threadpool is not None:
            return deferToThreadPool(self.reactor, self.threadpool, f, *args, **kwargs)
        return maybeDeferred(f, *args, **kwargs)

    def render(self, request: Request) -> bytes | int:
        try:
            result = self._dispatch(request)
        except ApiError as e:
            return self._error(request, e)
        except Exception:
            _log.failure("tracker API: {path}", path=request.path)
            return self._json(request, 500, {"error": "internal error"})
        if not isinstance(result, Deferred):
            return self._json(request, *result)
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))

        def answer(reply: Reply) -> None:
            if not finished[0]:
                request.write(self._json(request, *reply))
                request.finish()

        def failed(failure: Failure) -> None:
            if isinstance(failure.value, ApiError):
                body = self._error(request, failure.value)
            else:
                _log.failure("tracker API: {path}", failure, path=request.path)
                body = self._json(request, 500, {"error": "internal error"})
            if not finished[0]:
                request.write(body)
                request.finish()

        result.addCallbacks(answer, failed)
        return NOT_DONE_YET

    def _json(self, request: Request, code: int, body: Any) -> bytes:
        request.setResponseCode(code)
        request.setHeader(b"content-type", b"application/json")
        request.setHeader(b"cache-control", b"no-store")
        return json.dumps(body).encode("utf-8")

    def _error(self, request: Request, error: ApiError) -> bytes:
        for name, value in error.headers:
            request.setHeader(name, value)
        return self._json(request, error.code, {"error": error.message})

    def _body(self, request: Request) -> bytes:
        length = request.getHeader(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            raise ApiError(413, f"request body over {self.max_body} bytes")
        if request.content is None:
            return b""
        request.content.seek(0)
        body: bytes = request.content.read(self.max_body + 1)
        if len(body) > self.max_body:
            raise ApiError(413, f"request body over {self.max_body} bytes")
        return body

    def _route(self, request: Request) -> tuple[Route, list[str]]:
        segments = [s.decode("utf-8", "replace") for s in request.postpath or []]
        if segments and segments[-1] == "":
            segments.pop()
        allowed: list[bytes] = []
        for route in ROUTES:
            if len(route.pattern) != len(segments):
                continue
            if all(p == "*" or p == s for p, s in zip(route.pattern, segments)):
                if route.method == request.method:
                    return route, [s for p, s in zip(route.pattern, segments) if p == "*"]
                allowed.append(route.method)
        if allowed:
            raise ApiError(405, "method not allowed", ((b"Allow", b", ".join(allowed)),))
        raise ApiError(404, "no such API call")

    def _dispatch(self, request: Request) -> Reply | Deferred[Reply]:
        body = self._body(request)
        route, args = self._route(request)
        if route.handler == "login":
            return self._login(request)
        key, user = self._authenticate(request, body)
        if route.admin and not user.admin:
            raise ApiError(403, "this needs an admin")
        handler: Callable[..., Reply | Deferred[Reply]] = getattr(self, "_" + route.handler)
        return handler(request, body, key, user, *args)

    # -- authentication -------------------------------------------------------

    def _authenticate(self, request: Request, body: bytes) -> tuple[ApiKey, User]:
        header = request.getHeader(b"authorization")
        if header is None:
            raise ApiError(401, "authentication required", _UNAUTHORIZED)
        text = header.decode("latin-1").strip()
        now = self.clock.seconds()
        scheme = text.partition(" ")[0].lower()
        key: ApiKey | None = None
        if scheme == "bearer":
            key = self.db.bearer(text.partition(" ")[2].strip(), now)
        elif scheme == SCHEME.lower():
            key = self._signed(request, text, body, now)
        if key is None:
            raise ApiError(401, "invalid credentials", _UNAUTHORIZED)
        user = self.db.user(key.user_id)
        if user is None:
            raise ApiError(401, "invalid credentials", _UNAUTHORIZED)
        return key, user

    def _signed(self, request: Request, text: str, body: bytes, now: float) -> ApiKey:
        signed = parse_signed_header(text)
        if signed is None:
            raise ApiError(401, "malformed signature header", _UNAUTHORIZED)
        if not self.nonces.fresh(signed.timestamp, now):
            raise ApiError(401, "timestamp outside the accepted window", _UNAUTHORIZED)
        found = self.db.signing_key(signed.key_id, now)
        if found is None:
            raise ApiError(401, "invalid credentials", _UNAUTHORIZED)
        secret, key = found
        expected = sign(secret, request.method.decode("ascii"), request.uri.decode("latin-1"),
                        signed.timestamp, signed.nonce, body)
        if not hmac.compare_digest(expected, signed.signature):
            raise ApiError(401, "invalid signature", _UNAUTHORIZED)
        if not self.nonces.use(signed.key_id, signed.nonce, signed.timestamp, now):
            raise ApiError(401, "nonce already used", _UNAUTHORIZED)
        return key

    def _login(self, request: Request) -> Deferred[Reply]:
        address = str(getattr(request.getClientAddress(), "host", ""))
        if self.logins.banned(address, self.clock.seconds()):
            raise ApiError(403, "too many failed logins; try later")
        header = (request.getHeader(b"authorization") or b"").strip()
        scheme, _, encoded = header.partition(b" ")
        try:
            if scheme.lower() != b"basic":
                raise ValueError
            name, sep, password = base64.b64decode(encoded.strip(), validate=True).decode(
                "utf-8").partition(":")
            if not sep or not name:
                raise ValueError
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise ApiError(401, "HTTP Basic credentials required", _UNAUTHORIZED) from None

        def checked(user: User | None) -> Reply:
            now = self.clock.seconds()
            if user is None:
                self.logins.failed(address, now)
                raise ApiError(401, "wrong user name or password", _UNAUTHORIZED)
            self.logins.succeeded(address)
            issued = self.db.issue_api_key(user.user_id, now, self.key_lifetime)
            return 200, {
                "key_id": issued.key_id, "key": issued.key, "expires_at": issued.expires_at,
                "user": user.name, "admin": user.admin,
            }

        return self._blocking(self.db.verify_password, name, password).addCallback(checked)

    # -- reads ------------------------------------------------------------------

    def _logout(self, request: Request, body: bytes, key: ApiKey, user: User) -> Reply:
        self.db.revoke_api_key(key.key_id)
        return 200, {"ok": True}

    def _status(self, request: Request, body: bytes, key: ApiKey,
                user: User) -> Deferred[Reply]:
        by_protocol: dict[str, Any] = {}
        for protocol in (*PROTOCOLS, None):
            entry = {}
            for kind in KINDS:
                rates = self.stats.rates(kind, protocol)
                entry[kind + "s"] = {
                    "total": self.stats.total(kind, protocol),
                    "per_second": dict(zip(("1m", "5m", "15m"), (rates.m1, rates.m5, rates.m15))),
                }
            by_protocol[protocol or "all"] = entry
        assert len(WINDOWS) == 3

        def answer(totals: Totals) -> Reply:
            return 200, {
                "uptime": self.stats.uptime(),
                "swarms": totals.swarms,
                "peers": {"seeders": totals.seeders, "leechers": totals.leechers,
                          "total": totals.seeders + totals.leechers,
                          "as_of": totals.at},
                "memory": {"rss_bytes": resident_memory()},
                "requests": by_protocol,
                "whitelist": len(self.db.whitelist()),
                "users": len(self.db.users()),
            }

        return self.view.totals().addCallback(answer)

    def _torrents(self, request: Request, body: bytes, key: ApiKey,
                  user: User) -> Deferred[Reply]:
        offset = _int_arg(request, b"offset", 0, 0, 10**9)
        limit = _int_arg(request, b"limit", 100, 1, self.max_page)

        def answer(found: tuple[int, list[SwarmSummary]]) -> Reply:
            total, page = found
            return 200, {"total": total, "offset": offset, "limit": limit,
                         "torrents": [s.to_json() for s in page]}

        return self.view.page(offset, limit).addCallback(answer)

    def _torrent(self, request: Request, body: bytes, key: ApiKey, user: User,
                 text: str) -> Deferred[Reply]:
        def answer(summary: SwarmSummary | None) -> Reply:
            if summary is None:
                raise ApiError(404, "no such torrent")
            return 200, summary.to_json()

        return self.view.summary(_info_hash(text)).addCallback(answer)

    def _whitelist(self, request: Request, body: bytes, key: ApiKey, user: User) -> Reply:
        return 200, {"whitelist": sorted(h.hex() for h in self.db.whitelist())}

    def _users(self, request: Request, body: bytes, key: ApiKey, user: User) -> Reply:
        users = []
        for each in self.db.users():
            accounts = self.db.accounting(each.user_id)
            users.append({
                "user_id": each.user_id, "name": each.name, "admin": each.admin,
                "torrent_limit": each.torrent_limit, "created_at": each.created_at,
                "uploaded": sum(a.uploaded for a in accounts),
                "downloaded": sum(a.downloaded for a in accounts),
                "keys": [{"key_id": k.key_id, "created_at": k.created_at,
                          "expires_at": k.expires_at} for k in self.db.api_keys(each.user_id)],
            })
        return 200, {"users": users}

    # -- changes (admin) -----------------------------------------------------------

    def _object(self, body: bytes) -> dict[str, Any]:
        try:
            value = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the body must be a JSON object") from None
        if not isinstance(value, dict):
            raise ApiError(400, "the body must be a JSON object")
        return value

    def _whitelist_add(self, request: Request, body: bytes, key: ApiKey, user: User) -> Reply:
        text = self._object(body).get("info_hash")
        if not isinstance(text, str):
            raise ApiError(400, "info_hash (40 hex digits) required")
        info_hash = _info_hash(text.lower())
        self.db.add_whitelist(info_hash)
        return 201, {"info_hash": info_hash.hex(), "whitelisted": True}

    def _whitelist_remove(self, request: Request, body: bytes, key: ApiKey, user: User,
                          text: str) -> Reply:
        if not self.db.remove_whitelist(_info_hash(text.lower())):
            raise ApiError(404, "not on the whitelist")
        return 200, {"info_hash": text.lower(), "whitelisted": False}

    def _user_create(self, request: Request, body: bytes, key: ApiKey,
                     user: User) -> Deferred[Reply]:
        fields = self._object(body)
        name, password = fields.get("name"), fields.get("password")
        admin, limit = fields.get("admin", False), fields.get("torrent_limit")
        if not isinstance(name, str) or not isinstance(password, str):
            raise ApiError(400, "name and password (strings) required")
        if not isinstance(admin, bool):
            raise ApiError(400, "admin must be true or false")
        if limit is not None and (type(limit) is not int or limit < 0):
            raise ApiError(400, "torrent_limit must be a non-negative integer or null")
        d = self._blocking(self.db.hash_password, password)

        def made(hashed: PasswordHash) -> Reply:
            new, passkey = self.db.create_user(name, hashed, self.clock.seconds(),
                                               admin=admin, torrent_limit=limit)
            return 201, {"user_id": new.user_id, "name": new.name, "admin": new.admin,
                         "torrent_limit": new.torrent_limit, "passkey": passkey}

        def refused(failure: Failure) -> Reply:
            failure.trap(TrackerDBError)
            raise ApiError(400, str(failure.value))

        return d.addCallback(made).addErrback(refused)

    def _passkey_reset(self, request: Request, body: bytes, key: ApiKey, user: User,
                       name: str) -> Reply:
        target = self.db.user_named(name)
        if target is None:
            raise ApiError(404, "no such user")
        passkey = self.db.reset_passkey(target.user_id, self.clock.seconds())
        return 200, {"name": target.name, "passkey": passkey}
