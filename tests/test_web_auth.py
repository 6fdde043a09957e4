"""The daemon's security layer (txbittorrent.web.auth.Guard) through real
sockets on 127.0.0.1 with treq, in front of a tiny test resource."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.error import ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import UNKNOWN_LENGTH, HTTPConnectionPool
from twisted.web.iweb import IBodyProducer
from twisted.web.resource import Resource
from twisted.web.server import Request, Site
from twisted.web.test.requesthelper import DummyChannel
from zope.interface import implementer

from txbittorrent.daemon.store import StateStore
from txbittorrent.web.auth import SESSION_COOKIE, Guard, LoginBanned, host_of

COOKIE = SESSION_COOKIE.decode("ascii")


class _Echo(Resource):
    """GET says hello; POST answers with the size of the body it got."""

    isLeaf = True

    def render_GET(self, request: Request) -> bytes:
        return b"hello"

    def render_POST(self, request: Request) -> bytes:
        assert request.content is not None
        return b"changed %d" % (len(request.content.read()),)


def _app() -> Resource:
    root = Resource()
    root.putChild(b"echo", _Echo())
    return root


@implementer(IBodyProducer)
class _ChunkedBody:
    """A body producer of unknown length (sent chunked)."""

    length = UNKNOWN_LENGTH

    def __init__(self, data: bytes) -> None:
        self.data = data

    def startProducing(self, consumer: Any) -> Any:
        for i in range(0, len(self.data), 65536):
            consumer.write(self.data[i:i + 65536])
        return succeed(None)

    def pauseProducing(self) -> None:
        pass

    def resumeProducing(self) -> None:
        pass

    def stopProducing(self) -> None:
        pass


class GuardTests(TestCase):
    """Every rule of the Guard, over HTTP."""

    def setUp(self) -> None:
        self.store = StateStore(self.mktemp())
        self.addCleanup(self.store.close)
        self.store.set_password("admin", "s3cret")
        self.token = self.store.create_token("cli", 0.0)
        self.clock = Clock()
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self.serve(Guard(_app(), store=self.store, clock=self.clock, max_body=1000))

    def serve(self, guard: Guard, site: Site | None = None) -> None:
        self.guard = guard
        port = reactor.listenTCP(0, site or guard.site(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}"

    @inlineCallbacks
    def call(
        self, method: str, path: str, headers: dict[str, str] | None = None,
        data: Any = None, auth: bool = False, **kwargs: Any,
    ) -> Generator[Any, Any, tuple[int, bytes, Any]]:
        headers = dict(headers or {})
        if auth:
            headers["Authorization"] = f"Bearer {self.token}"
        response = yield treq.request(
            method, self.base + path, headers=headers, data=data, pool=self.pool, **kwargs
        )
        body = yield treq.content(response)
        return response.code, body, response.headers

    @inlineCallbacks
    def login(self, password: str = "s3cret") -> Generator[Any, Any, tuple[int, Any]]:
        code, body, headers = yield self.call(
            "POST", "/login", data={"username": "admin", "password": password}
        )
        return code, headers

    def cookie_of(self, headers: Any) -> str:
        for value in headers.getRawHeaders(b"set-cookie", []):
            name, _, rest = value.decode("latin-1").partition("=")
            if name == COOKIE:
                return rest.split(";")[0]
        raise AssertionError("no session cookie")

    # -- Host --------------------------------------------------------------

    @inlineCallbacks
    def test_allowed_host_with_port(self) -> Generator[Any, Any, None]:
        """Host 127.0.0.1:<port> (what clients send) is accepted."""
        code, body, _ = yield self.call("GET", "/echo", auth=True)
        self.assertEqual((code, body), (200, b"hello"))

    @inlineCallbacks
    def test_allowed_hosts_without_port(self) -> Generator[Any, Any, None]:
        """localhost and [::1], with or without a port, are accepted."""
        for host in ("localhost", "LOCALHOST:8080", "[::1]", "[::1]:8080", "127.0.0.1"):
            code, _, _ = yield self.call("GET", "/echo", headers={"Host": host}, auth=True)
            self.assertEqual(code, 200, host)

    @inlineCallbacks
    def test_foreign_host_refused(self) -> Generator[Any, Any, None]:
        """A Host not in the allowlist (DNS rebinding) is refused with 403,
        even with a valid token."""
        for host in ("evil.example", "evil.example:8080", "127.0.0.1.evil.example", "[::2]"):
            code, body, _ = yield self.call("GET", "/echo", headers={"Host": host}, auth=True)
            self.assertEqual(code, 403, host)
            self.assertEqual(json.loads(body), {"error": "host not allowed"})

    @inlineCallbacks
    def test_custom_allowed_hosts(self) -> Generator[Any, Any, None]:
        """allowed_hosts replaces the default list."""
        self.serve(Guard(_app(), store=self.store, clock=self.clock, allowed_hosts=["box.lan"]))
        code, _, _ = yield self.call("GET", "/echo", headers={"Host": "box.lan:80"}, auth=True)
        self.assertEqual(code, 200)
        code, _, _ = yield self.call("GET", "/echo", auth=True)
        self.assertEqual(code, 403)

    # -- authentication -----------------------------------------------------

    @inlineCallbacks
    def test_unauthenticated_gets_401_json(self) -> Generator[Any, Any, None]:
        """Without a token or session the answer is a JSON 401."""
        code, body, headers = yield self.call("GET", "/echo")
        self.assertEqual(code, 401)
        self.assertEqual(json.loads(body), {"error": "authentication required"})
        self.assertEqual(headers.getRawHeaders(b"content-type"), [b"application/json"])
        code, _, _ = yield self.call("GET", "/")
        self.assertEqual(code, 401)

    @inlineCallbacks
    def test_bearer_token(self) -> Generator[Any, Any, None]:
        """A stored API token as a Bearer credential is accepted; another is not."""
        code, _, _ = yield self.call("GET", "/echo", auth=True)
        self.assertEqual(code, 200)
        code, _, _ = yield self.call("GET", "/echo", headers={"Authorization": "Bearer nope"})
        self.assertEqual(code, 401)
        code, _, _ = yield self.call("GET", "/echo", headers={"Authorization": self.token})
        self.assertEqual(code, 401)

    @inlineCallbacks
    def test_login_form_sets_session_cookie(self) -> Generator[Any, Any, None]:
        """POST /login with a form body sets an HttpOnly, SameSite=Strict,
        Path=/ session cookie that then authenticates."""
        code, headers = yield self.login()
        self.assertEqual(code, 200)
        (raw,) = [v for v in headers.getRawHeaders(b"set-cookie") if v.startswith(SESSION_COOKIE)]
        attributes = {a.strip().lower() for a in raw.decode("latin-1").split(";")[1:]}
        self.assertIn("httponly", attributes)
        self.assertIn("samesite=strict", attributes)
        self.assertIn("path=/", attributes)
        cookie = self.cookie_of(headers)
        self.assertGreaterEqual(len(cookie), 40)
        code, body, _ = yield self.call("GET", "/echo", headers={"Cookie": f"{COOKIE}={cookie}"})
        self.assertEqual((code, body), (200, b"hello"))

    @inlineCallbacks
    def test_login_json(self) -> Generator[Any, Any, None]:
        """POST /login takes a JSON body too; each login gets a new random id."""
        cookies = []
        for _ in range(2):
            code, body, headers = yield self.call(
                "POST", "/login", headers={"Content-Type": "application/json"},
                data=json.dumps({"username": "admin", "password": "s3cret"}).encode(),
            )
            self.assertEqual((code, json.loads(body)), (200, {"ok": True}))
            cookies.append(self.cookie_of(headers))
        self.assertNotEqual(cookies[0], cookies[1])

    @inlineCallbacks
    def test_login_wrong_credentials(self) -> Generator[Any, Any, None]:
        """A wrong password or user gets 401 and no cookie; a missing field 400."""
        code, headers = yield self.login("wrong")
        self.assertEqual(code, 401)
        self.assertFalse(headers.getRawHeaders(b"set-cookie"))
        code, _, _ = yield self.call(
            "POST", "/login", data={"username": "root", "password": "s3cret"})
        self.assertEqual(code, 401)
        code, _, _ = yield self.call("POST", "/login", data={"username": "admin"})
        self.assertEqual(code, 400)
        code, _, _ = yield self.call(
            "POST", "/login", headers={"Content-Type": "application/json"}, data=b"{nope")
        self.assertEqual(code, 400)

    @inlineCallbacks
    def test_unknown_or_forged_cookie(self) -> Generator[Any, Any, None]:
        """A session id the guard did not issue is refused."""
        code, _, _ = yield self.call("GET", "/echo", headers={"Cookie": f"{COOKIE}=forged"})
        self.assertEqual(code, 401)

    @inlineCallbacks
    def test_session_expires(self) -> Generator[Any, Any, None]:
        """A session stops working once its lifetime has passed on the clock."""
        code, headers = yield self.login()
        cookie = {"Cookie": f"{COOKIE}={self.cookie_of(headers)}"}
        self.clock.advance(self.guard.session_lifetime - 1)
        code, _, _ = yield self.call("GET", "/echo", headers=cookie)
        self.assertEqual(code, 200)
        self.clock.advance(1)
        code, _, _ = yield self.call("GET", "/echo", headers=cookie)
        self.assertEqual(code, 401)
        self.assertEqual(self.guard.session_count(), 0)

    @inlineCallbacks
    def test_logout(self) -> Generator[Any, Any, None]:
        """POST /logout ends the session and clears the cookie."""
        code, headers = yield self.login()
        cookie = {"Cookie": f"{COOKIE}={self.cookie_of(headers)}"}
        code, _, headers = yield self.call("POST", "/logout", headers=cookie)
        self.assertEqual(code, 200)
        self.assertEqual(self.cookie_of(headers), "")
        code, _, _ = yield self.call("GET", "/echo", headers=cookie)
        self.assertEqual(code, 401)

    @inlineCallbacks
    def test_get_login_not_allowed(self) -> Generator[Any, Any, None]:
        """GET /login is not a login (405)."""
        code, _, _ = yield self.call("GET", "/login")
        self.assertEqual(code, 405)

    @inlineCallbacks
    def test_login_in_threadpool(self) -> Generator[Any, Any, None]:
        """With an injected threadpool, the password is checked there."""
        pool = ThreadPool(minthreads=1, maxthreads=1)
        pool.start()
        self.addCleanup(pool.stop)
        self.serve(Guard(_app(), store=self.store, clock=self.clock, threadpool=pool,
                         reactor=reactor))
        code, _ = yield self.login()
        self.assertEqual(code, 200)
        code, _ = yield self.login("wrong")
        self.assertEqual(code, 401)

    # -- bans -----------------------------------------------------------------

    @inlineCallbacks
    def test_ban_after_five_failures(self) -> Generator[Any, Any, None]:
        """Five failed logins ban the address (403 even with the right
        password) until the ban ends on the clock."""
        for _ in range(4):
            code, _ = yield self.login("wrong")
            self.assertEqual(code, 401)
        code, _ = yield self.login("wrong")
        self.assertEqual(code, 401)
        self.assertTrue(self.guard.is_banned("127.0.0.1"))
        code, _ = yield self.login()
        self.assertEqual(code, 403)
        self.clock.advance(self.guard.ban_duration)
        code, _ = yield self.login()
        self.assertEqual(code, 200)

    @inlineCallbacks
    def test_failures_outside_window_do_not_ban(self) -> Generator[Any, Any, None]:
        """Failures spread wider than the window do not add up to a ban,
        and a success forgets earlier failures."""
        self.guard.ban_threshold = 3
        for _ in range(2):
            code, _ = yield self.login("wrong")
        self.clock.advance(self.guard.ban_window + 1)
        for _ in range(2):
            code, _ = yield self.login("wrong")
        self.assertFalse(self.guard.is_banned("127.0.0.1"))
        code, _ = yield self.login()
        self.assertEqual(code, 200)
        for _ in range(2):
            code, _ = yield self.login("wrong")
        self.assertFalse(self.guard.is_banned("127.0.0.1"))

    # -- Origin / Referer -------------------------------------------------------

    @inlineCallbacks
    def test_cross_origin_change_refused(self) -> Generator[Any, Any, None]:
        """A POST whose Origin (or Referer, lacking Origin) names another host
        is refused with 403, even authenticated; so is Origin: null."""
        for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"},
                        {"Referer": "http://evil.example/page"},
                        {"Origin": "http://evil.example", "Referer": "http://127.0.0.1/"},
                        {"Origin": "http://127.0.0.1@evil.example"}):
            code, body, _ = yield self.call("POST", "/echo", headers=headers, auth=True)
            self.assertEqual(code, 403, headers)
            self.assertEqual(json.loads(body), {"error": "cross-origin change refused"})
        code, _, _ = yield self.call(
            "DELETE", "/echo", headers={"Origin": "http://evil.example"}, auth=True)
        self.assertEqual(code, 403)

    @inlineCallbacks
    def test_cross_origin_login_refused(self) -> Generator[Any, Any, None]:
        """A login posted from a foreign page is refused before the password."""
        code, _, _ = yield self.call(
            "POST", "/login", headers={"Origin": "http://evil.example"},
            data={"username": "admin", "password": "s3cret"})
        self.assertEqual(code, 403)

    @inlineCallbacks
    def test_same_origin_or_none_accepted(self) -> Generator[Any, Any, None]:
        """A POST from an allowed origin, or with neither header, is accepted;
        a GET is not checked."""
        for headers in ({"Origin": self.base}, {"Referer": "http://localhost:9/x"}, {}):
            code, body, _ = yield self.call("POST", "/echo", headers=headers, data=b"ab",
                                            auth=True)
            self.assertEqual((code, body), (200, b"changed 2"), headers)
        code, _, _ = yield self.call(
            "GET", "/echo", headers={"Origin": "http://evil.example"}, auth=True)
        self.assertEqual(code, 200)

    # -- body size -------------------------------------------------------------------

    @inlineCallbacks
    def test_body_at_cap_accepted(self) -> Generator[Any, Any, None]:
        """A body of exactly max_body bytes reaches the resource."""
        code, body, _ = yield self.call("POST", "/echo", data=b"x" * 1000, auth=True)
        self.assertEqual((code, body), (200, b"changed 1000"))

    @inlineCallbacks
    def test_content_length_over_cap(self) -> Generator[Any, Any, None]:
        """A Content-Length over max_body gets 413 (the body is not stored)."""
        code, body, _ = yield self.call("POST", "/echo", data=b"x" * 1001, auth=True)
        self.assertEqual(code, 413)
        self.assertIn("error", json.loads(body))
        code, _, _ = yield self.call("POST", "/login", data=b"x" * 5000)
        self.assertEqual(code, 413)

    @inlineCallbacks
    def test_chunked_body_over_cap(self) -> Generator[Any, Any, None]:
        """A chunked body (no Content-Length) larger than max_body gets 413."""
        code, _, _ = yield self.call("POST", "/echo", data=_ChunkedBody(b"y" * 200_000),
                                     auth=True)
        self.assertEqual(code, 413)
        code, body, _ = yield self.call("POST", "/echo", data=_ChunkedBody(b"y" * 10),
                                        auth=True)
        self.assertEqual((code, body), (200, b"changed 10"))

    @inlineCallbacks
    def test_body_cap_with_plain_site(self) -> Generator[Any, Any, None]:
        """Behind a plain Site (no BoundedRequest) the size actually received
        is still checked."""
        guard = Guard(_app(), store=self.store, clock=self.clock, max_body=1000)
        self.serve(guard, Site(guard))
        code, _, _ = yield self.call("POST", "/echo", data=_ChunkedBody(b"y" * 5000), auth=True)
        self.assertEqual(code, 413)

    @inlineCallbacks
    def test_leaf_resource_wrapped(self) -> Generator[Any, Any, None]:
        """A leaf resource behind the guard sees the whole path."""

        class Path(Resource):
            isLeaf = True

            def render_GET(self, request: Request) -> bytes:
                return b"/".join(request.postpath or [])

        self.serve(Guard(Path(), store=self.store, clock=self.clock))
        code, body, _ = yield self.call("GET", "/a/b", auth=True)
        self.assertEqual((code, body), (200, b"a/b"))


class _Raw(Protocol):
    """A raw HTTP client: sends what it is told, keeps what it reads."""

    def __init__(self) -> None:
        self.received = b""
        self.closed: Deferred[None] = Deferred()
        self.more: Deferred[None] | None = None

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.more is not None and b"\r\n\r\n" in self.received:
            more, self.more = self.more, None
            more.callback(None)

    def connectionLost(self, reason: Any = None) -> None:
        if self.more is not None:
            more, self.more = self.more, None
            more.callback(None)
        self.closed.callback(None)

    def response(self) -> Deferred[None]:
        self.more = Deferred()
        if b"\r\n\r\n" in self.received:
            more, self.more = self.more, None
            more.callback(None)
        return self.more


class _Counting(Resource):
    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def render(self, request: Request) -> bytes:
        self.calls += 1
        return b"processed"


class DelegationTests(TestCase):
    """What another API's own login (qBittorrent's, Transmission's) uses of
    the Guard: delegated paths, check_credentials and attempt_login."""

    def setUp(self) -> None:
        self.store = StateStore(self.mktemp())
        self.addCleanup(self.store.close)
        self.store.set_password("admin", "s3cret")
        self.clock = Clock()
        self.calls = 0
        verify = self.store.verify_password

        def counting(username: str, password: str) -> bool:
            self.calls += 1
            return verify(username, password)

        self.store.verify_password = counting  # type: ignore[method-assign]
        root = _app()
        root.putChild(b"other", _Echo())
        self.guard = Guard(root, store=self.store, clock=self.clock,
                           delegated=[b"/other/"], credential_cache=60.0)

    @inlineCallbacks
    def test_delegated_path_needs_no_token(self) -> Generator[Any, Any, None]:
        """A delegated path is reached without credentials; the Host rule
        still holds there, and other paths still need them."""
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        port = reactor.listenTCP(0, self.guard.site(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        base = f"http://127.0.0.1:{port.getHost().port}"
        for path, headers, code in [("/other", {}, 200), ("/echo", {}, 401),
                                    ("/otherwise", {}, 401),
                                    ("/other", {"Host": "evil.example"}, 403)]:
            response = yield treq.get(base + path, headers=headers, pool=pool)
            yield treq.content(response)
            self.assertEqual(response.code, code, (path, headers))

    def test_check_credentials_cached(self) -> None:
        """A success is remembered for credential_cache seconds (one scrypt),
        a failure never; the cache holds digests only."""
        self.assertTrue(self.successResultOf(self.guard.check_credentials("a", "admin", "s3cret")))
        self.assertTrue(self.successResultOf(self.guard.check_credentials("a", "admin", "s3cret")))
        self.assertEqual(self.calls, 1)
        self.assertFalse(self.successResultOf(self.guard.check_credentials("a", "admin", "x")))
        self.assertEqual(self.calls, 2)
        self.assertNotIn(b"s3cret", b"".join(self.guard._verified))
        self.clock.advance(61)
        self.assertTrue(self.successResultOf(self.guard.check_credentials("a", "admin", "s3cret")))
        self.assertEqual(self.calls, 3)

    def test_bans_apply(self) -> None:
        """Failures count per address as /login's do; a banned address is
        refused with LoginBanned even with the right password."""
        for _ in range(5):
            self.assertFalse(self.successResultOf(
                self.guard.check_credentials("10.0.0.9", "admin", "no")))
        self.failureResultOf(self.guard.check_credentials("10.0.0.9", "admin", "s3cret"),
                             LoginBanned)
        self.assertTrue(self.successResultOf(
            self.guard.check_credentials("10.0.0.8", "admin", "s3cret")))

    def test_attempt_login_sessions(self) -> None:
        """attempt_login gives a live session id (None for a wrong password);
        end_session ends it."""
        session_id = self.successResultOf(self.guard.attempt_login("a", "admin", "s3cret"))
        self.assertIsNotNone(session_id)
        self.assertTrue(self.guard.session_live(session_id))
        self.assertIsNone(self.successResultOf(self.guard.attempt_login("a", "admin", "x")))
        self.guard.end_session(session_id)
        self.assertFalse(self.guard.session_live(session_id))


class PublicPathTests(TestCase):
    """Guard(public=...): the page's paths need no credentials; nothing else changes."""

    def setUp(self) -> None:
        self.store = StateStore(self.mktemp())
        self.addCleanup(self.store.close)
        self.store.set_password("admin", "s3cret")
        root = _app()
        root.putChild(b"", _Echo())
        root.putChild(b"ui", _Echo())
        root.putChild(b"exact", _Echo())
        self.guard = Guard(root, store=self.store, clock=Clock(), max_body=1000,
                           public=[b"/", b"/ui/", b"/exact"])
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        port = reactor.listenTCP(0, self.guard.site(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}"

    @inlineCallbacks
    def codes(self, cases: list[tuple[str, str, dict[str, str], Any]]
              ) -> Generator[Any, Any, list[int]]:
        out = []
        for method, path, headers, data in cases:
            response = yield treq.request(method, self.base + path, headers=headers, data=data,
                                          pool=self.pool)
            yield treq.content(response)
            out.append(response.code)
        return out

    @inlineCallbacks
    def test_public_paths_need_no_credentials(self) -> Generator[Any, Any, None]:
        """Exactly /, anything under /ui/ and exactly /exact are served
        without credentials."""
        codes = yield self.codes([("GET", "/", {}, None), ("GET", "/ui/app.js", {}, None),
                                  ("GET", "/ui/a/b", {}, None), ("GET", "/exact", {}, None),
                                  ("HEAD", "/", {}, None)])
        self.assertEqual(codes, [200, 200, 200, 200, 200])

    @inlineCallbacks
    def test_other_paths_still_need_them(self) -> Generator[Any, Any, None]:
        """Paths that only look like the public ones, or climb out of them
        with dot segments (plain or percent-encoded), need credentials."""
        codes = yield self.codes([
            ("GET", "/echo", {}, None), ("GET", "//echo", {}, None),
            ("GET", "/ui", {}, None), ("GET", "/uix/app.js", {}, None),
            ("GET", "/exact/more", {}, None),
        ])
        self.assertEqual(codes, [401] * 5)
        for path in [b"/ui/../echo", b"/ui/%2e%2e/echo", b"/ui/%2E%2E/echo", b"/ui/./x",
                     b"/ui/a/../../echo"]:
            status = yield self.raw_status(path)
            self.assertEqual(status, b"401", path)
        status = yield self.raw_status(b"/ui/x")
        self.assertEqual(status, b"200")

    @inlineCallbacks
    def raw_status(self, path: bytes) -> Generator[Any, Any, bytes]:
        """The status code of a GET of ``path`` sent as it is (no client
        normalises it)."""
        port = int(self.base.rpartition(":")[2])
        client = _Raw()
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", port), client)
        client.transport.write(  # type: ignore[union-attr]
            b"GET " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        yield client.closed
        return client.received.split(b" ", 2)[1]

    @inlineCallbacks
    def test_rules_still_apply(self) -> Generator[Any, Any, None]:
        """The Host, Origin and body rules hold on public paths too."""
        codes = yield self.codes([
            ("GET", "/", {"Host": "evil.example"}, None),
            ("POST", "/ui/x", {"Origin": "http://evil.example"}, b"x"),
            ("POST", "/ui/x", {}, b"x" * 2000),
            ("POST", "/ui/x", {"Origin": "http://127.0.0.1"}, b"x"),
        ])
        self.assertEqual(codes, [403, 403, 413, 200])

    def test_malformed_public_path_refused(self) -> None:
        """A public path not starting with / is a configuration error."""
        with self.assertRaises(ValueError):
            Guard(_app(), store=self.store, clock=Clock(), public=[b"ui/"])


class EarlyRefusalTests(TestCase):
    """A Content-Length over the cap is answered from the headers alone,
    over a real socket, before the client sends the body."""

    timeout = 20

    def setUp(self) -> None:
        self.store = StateStore(self.mktemp())
        self.addCleanup(self.store.close)
        self.token = self.store.create_token("cli", 0.0)
        self.app = _Counting()
        self.guard = Guard(self.app, store=self.store, clock=Clock(), max_body=1000)
        port = reactor.listenTCP(0, self.guard.site(), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port

    @inlineCallbacks
    def send(self, head: bytes) -> Generator[Any, Any, _Raw]:
        endpoint = TCP4ClientEndpoint(reactor, "127.0.0.1", self.port)
        raw = yield connectProtocol(endpoint, _Raw())
        self.addCleanup(lambda: raw.transport.abortConnection() if raw.transport.connected
                        else None)
        raw.transport.write(head)
        yield raw.response()
        return raw

    def head(self, length: int, *extra: bytes) -> bytes:
        lines = [b"POST /echo HTTP/1.1", b"Host: 127.0.0.1",
                 b"Authorization: Bearer " + self.token.encode(),
                 b"Content-Length: %d" % length, *extra]
        return b"\r\n".join(lines) + b"\r\n\r\n"

    @inlineCallbacks
    def test_huge_content_length(self) -> Generator[Any, Any, None]:
        """Headers announcing 1 TB (and a few body bytes) get 413 JSON with
        Connection: close at once; the resource never runs; what follows is
        dropped and the server ends the connection."""
        raw = yield self.send(self.head(10**12) + b"x" * 100)
        status, _, rest = raw.received.partition(b"\r\n")
        self.assertEqual(status, b"HTTP/1.1 413 Content Too Large")
        headers, _, body = rest.partition(b"\r\n\r\n")
        self.assertIn(b"Connection: close", headers)
        self.assertIn(b"Content-Type: application/json", headers)
        self.assertEqual(json.loads(body), {"error": "request body over 1000 bytes"})
        raw.transport.write(b"y" * 100_000)
        raw.transport.loseConnection()
        yield raw.closed
        self.assertEqual(self.app.calls, 0)

    @inlineCallbacks
    def test_expect_continue_not_sent(self) -> Generator[Any, Any, None]:
        """With Expect: 100-continue the answer is the 413 alone, no 100."""
        raw = yield self.send(self.head(5000, b"Expect: 100-continue"))
        self.assertTrue(raw.received.startswith(b"HTTP/1.1 413 "), raw.received)
        self.assertNotIn(b"100 Continue", raw.received)
        raw.transport.loseConnection()
        yield raw.closed

    @inlineCallbacks
    def test_under_cap_processed(self) -> Generator[Any, Any, None]:
        """A body within the cap on the same kind of connection is processed."""
        raw = yield self.send(self.head(10) + b"0123456789")
        self.assertTrue(raw.received.startswith(b"HTTP/1.1 200 "), raw.received)
        self.assertEqual(self.app.calls, 1)


class _HalfClosable(StringTransport):
    """A StringTransport that records half-closes and aborts."""

    write_closed = False
    aborted = False

    def loseWriteConnection(self) -> None:
        self.write_closed = True

    def abortConnection(self) -> None:
        self.aborted = True
        super().abortConnection()


class LingerTests(SynchronousTestCase):
    """After an early 413 the connection lingers, bounded in time and bytes."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.app = _Counting()
        guard = Guard(self.app, store=None, clock=self.clock,  # type: ignore[arg-type]
                      max_body=10)
        self.protocol = guard.site(reactor=self.clock).buildProtocol(None)
        self.protocol.callLater = self.clock.callLater
        self.transport = _HalfClosable()
        self.protocol.makeConnection(self.transport)
        self.protocol.dataReceived(
            b"POST / HTTP/1.1\r\nHost: localhost\r\nContent-Length: 11\r\n\r\n"
        )

    def test_answered_and_half_closed(self) -> None:
        """The 413 is written from the headers; the write side is closed."""
        self.assertTrue(self.transport.value().startswith(b"HTTP/1.1 413 "))
        self.assertTrue(self.transport.write_closed)
        self.assertFalse(self.transport.aborted)

    def test_linger_ends(self) -> None:
        """The rest of the body is dropped (never processed); the connection
        is aborted after the linger time, and no timer is left."""
        self.protocol.dataReceived(b"x" * 11 + b"GET / HTTP/1.1\r\n\r\n")
        self.assertEqual(self.app.calls, 0)
        self.clock.advance(4.9)
        self.assertFalse(self.transport.aborted)
        self.clock.advance(0.2)
        self.assertTrue(self.transport.aborted)
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([c for c in self.clock.getDelayedCalls() if c.active()
                          and c.func.__name__ == "_close"], [])

    def test_drain_budget(self) -> None:
        """More than drain_budget bytes after the 413 aborts at once."""
        self.protocol.dataReceived(b"x" * (16 << 20))
        self.assertFalse(self.transport.aborted)
        self.protocol.dataReceived(b"x" * 1024)
        self.assertTrue(self.transport.aborted)

    def test_client_closes(self) -> None:
        """The client closing first cancels the linger timer."""
        self.protocol.connectionLost(Failure(ConnectionDone()))
        self.assertEqual([c for c in self.clock.getDelayedCalls()
                          if c.func.__name__ == "_close"], [])


class HostOfTests(SynchronousTestCase):
    """The Host/authority parser."""

    def test_host_of(self) -> None:
        """Ports are dropped, case folded, malformed values give None."""
        self.assertEqual(host_of("LocalHost:80"), "localhost")
        self.assertEqual(host_of("[::1]:8080"), "[::1]")
        self.assertEqual(host_of("[::1]"), "[::1]")
        self.assertIsNone(host_of(""))
        self.assertIsNone(host_of("[::1"))
        self.assertIsNone(host_of("a:b"))
        self.assertIsNone(host_of("[::1]x"))

    def test_tracked_addresses_bounded(self) -> None:
        """At most max_tracked addresses are remembered for failures and bans."""
        clock = Clock()
        guard = Guard(Resource(), store=None, clock=clock, max_tracked=3,  # type: ignore[arg-type]
                      ban_threshold=1)
        for i in range(10):
            guard._failed(f"10.0.0.{i}")
        self.assertEqual(len(guard._banned), 3)
        self.assertTrue(guard.is_banned("10.0.0.9"))
        self.assertFalse(guard.is_banned("10.0.0.0"))
        guard.ban_threshold = 5
        for i in range(10):
            guard._failed(f"10.0.1.{i}")
        self.assertEqual(len(guard._failures), 3)


class BoundedRequestTests(SynchronousTestCase):
    """The request class of Guard.site() stores no body beyond the cap."""

    def make(self) -> Any:
        guard = Guard(Resource(), store=None, clock=Clock(), max_body=10)  # type: ignore[arg-type]
        factory = guard.site().requestFactory
        return factory(DummyChannel())

    def test_content_length_over_cap(self) -> None:
        """A Content-Length over the cap marks the request and stores nothing."""
        request = self.make()
        request.gotLength(11)
        request.handleContentChunk(b"x" * 11)
        self.assertTrue(request.body_too_large)
        self.assertEqual(request.content.getvalue(), b"")

    def test_body_over_cap_without_length(self) -> None:
        """A body of unknown length is stored up to the cap, then dropped."""
        request = self.make()
        request.gotLength(None)
        request.handleContentChunk(b"x" * 10)
        self.assertFalse(request.body_too_large)
        request.handleContentChunk(b"x")
        request.handleContentChunk(b"x" * 1000)
        self.assertTrue(request.body_too_large)
        request.content.seek(0, 2)
        self.assertEqual(request.content.tell(), 0)
