"""The daemon's page (txbittorrent.web.page): its files, headers and refusals,
over real sockets on 127.0.0.1, alone and behind the Guard."""

from __future__ import annotations

import configparser
import fnmatch
import os
import re
from collections.abc import Generator
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.internet.protocol import Protocol
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.resource import Resource
from twisted.web.server import Site

import txbittorrent.web.page as page_module
from txbittorrent.daemon.store import StateStore
from txbittorrent.web.auth import Guard
from txbittorrent.web.page import ASSETS, PUBLIC_PATHS, page_resources

PAGE_DIR = os.path.join(os.path.dirname(page_module.__file__), "page")


class _Response:
    """A raw HTTP/1.1 response: status, headers (lowercased names), body."""

    def __init__(self, raw: bytes) -> None:
        head, _, self.body = raw.partition(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        self.status = int(lines[0].split(b" ")[1])
        self.headers: dict[bytes, bytes] = {}
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            self.headers[name.strip().lower()] = value.strip()


class _Client(Protocol):
    """Sends one request as it is (no client normalises the path) and reads
    until the server closes."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.received = b""
        self.closed: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data

    def connectionLost(self, reason: Any = None) -> None:
        self.closed.callback(None)


class _Server(TestCase):
    """Serves a site on 127.0.0.1; ``fetch`` sends one raw request."""

    def listen(self, site: Site) -> None:
        port = reactor.listenTCP(0, site, interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        self.port = port.getHost().port

    @inlineCallbacks
    def fetch(self, path: bytes, method: bytes = b"GET",
              headers: bytes = b"") -> Generator[Any, Any, _Response]:
        client = _Client(method + b" " + path + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         + headers + b"Connection: close\r\n\r\n")
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
        yield client.closed
        return _Response(client.received)


def _root() -> Resource:
    root = Resource()
    for name, child in page_resources().items():
        root.putChild(name, child)
    return root


class PageResourceTests(_Server):
    """The page and its assets, mounted as the daemon mounts them."""

    def setUp(self) -> None:
        self.listen(Site(_root()))

    def assert_secured(self, response: _Response) -> None:
        policy = response.headers[b"content-security-policy"]
        self.assertIn(b"default-src 'none'", policy)
        self.assertIn(b"script-src 'self';", policy)
        self.assertIn(b"frame-ancestors 'none'", policy)
        self.assertNotIn(b"unsafe", policy)
        self.assertEqual(response.headers[b"x-content-type-options"], b"nosniff")
        self.assertEqual(response.headers[b"x-frame-options"], b"DENY")

    @inlineCallbacks
    def test_page_at_root(self) -> Generator[Any, Any, None]:
        """/ is index.html as UTF-8 HTML, revalidated on every use, with the
        security headers."""
        response = yield self.fetch(b"/")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers[b"content-type"], b"text/html; charset=utf-8")
        self.assertEqual(response.headers[b"cache-control"], b"no-cache")
        self.assertIn(b"etag", response.headers)
        self.assert_secured(response)
        with open(os.path.join(PAGE_DIR, "index.html"), "rb") as f:
            self.assertEqual(response.body, f.read())

    @inlineCallbacks
    def test_assets_content_types(self) -> Generator[Any, Any, None]:
        """Every asset under /ui/ has its own Content-Type and the same headers."""
        for name, kind in ASSETS.items():
            response = yield self.fetch(b"/ui/" + name)
            self.assertEqual(response.status, 200, name)
            self.assertEqual(response.headers[b"content-type"], kind, name)
            self.assertEqual(response.headers[b"cache-control"], b"no-cache", name)
            self.assert_secured(response)
            with open(os.path.join(PAGE_DIR, name.decode()), "rb") as f:
                self.assertEqual(response.body, f.read(), name)

    @inlineCallbacks
    def test_head(self) -> Generator[Any, Any, None]:
        """HEAD gives the headers and no body."""
        response = yield self.fetch(b"/ui/app.js", b"HEAD")
        self.assertEqual(response.status, 200)
        self.assertEqual(response.headers[b"content-type"], b"text/javascript; charset=utf-8")
        self.assertEqual(response.body, b"")

    @inlineCallbacks
    def test_etag_revalidation(self) -> Generator[Any, Any, None]:
        """A matching If-None-Match is a 304 without a body; another is a 200."""
        first = yield self.fetch(b"/ui/app.css")
        etag = first.headers[b"etag"]
        again = yield self.fetch(b"/ui/app.css", headers=b"If-None-Match: " + etag + b"\r\n")
        self.assertEqual((again.status, again.body), (304, b""))
        other = yield self.fetch(b"/ui/app.css", headers=b'If-None-Match: "x"\r\n')
        self.assertEqual(other.status, 200)

    @inlineCallbacks
    def test_unknown_and_traversal_are_404(self) -> Generator[Any, Any, None]:
        """Names outside the table, dot segments (plain or percent-encoded),
        encoded slashes, NUL bytes and extra segments are 404 JSON."""
        for path in [b"/ui/nothing.js", b"/ui/", b"/ui/../auth.py", b"/ui/../page.py",
                     b"/ui/%2e%2e/auth.py", b"/ui/%2E%2E/%2E%2E/setup.cfg",
                     b"/ui/..%2fauth.py", b"/ui/..%2f..%2fsetup.cfg", b"/ui/app.js%00",
                     b"/ui/app.js%00.css", b"/ui/%00", b"/ui/app.js/", b"/ui/app.js/x",
                     b"/ui/index.html/..", b"/ui/./app.js", b"/ui/APP.JS", b"/ui/app.js%20",
                     b"//", b"//ui/app.js"]:
            response = yield self.fetch(path)
            self.assertEqual(response.status, 404, path)
            self.assertEqual(response.headers[b"content-type"], b"application/json", path)
            self.assertEqual(response.headers[b"x-content-type-options"], b"nosniff", path)

    @inlineCallbacks
    def test_changes_refused(self) -> Generator[Any, Any, None]:
        """Only GET and HEAD: anything else is 405 with Allow."""
        for path, method in [(b"/", b"POST"), (b"/ui/app.js", b"DELETE"), (b"/ui/x", b"PUT")]:
            response = yield self.fetch(path, method, b"Content-Length: 0\r\n")
            self.assertEqual(response.status, 405, method)
            self.assertEqual(response.headers[b"allow"], b"GET, HEAD")


class BehindGuardTests(_Server):
    """The page behind the Guard with public=PUBLIC_PATHS, as the daemon serves it."""

    def setUp(self) -> None:
        self.store = StateStore(self.mktemp())
        self.addCleanup(self.store.close)
        self.store.set_password("admin", "s3cret")
        root = _root()
        root.putChild(b"api", Resource())
        guard = Guard(root, store=self.store, clock=Clock(), public=PUBLIC_PATHS)
        self.listen(guard.site())

    @inlineCallbacks
    def test_page_without_credentials(self) -> Generator[Any, Any, None]:
        """The page and its assets load without credentials; the API and
        dot segments out of /ui/ still need them."""
        for path, status in [(b"/", 200), (b"/ui/app.js", 200), (b"/ui/app.css", 200),
                             (b"/ui/icon.svg", 200), (b"/ui/nothing", 404), (b"/api", 401),
                             (b"/ui/../api", 401), (b"/ui/%2e%2e/api", 401)]:
            response = yield self.fetch(path)
            self.assertEqual(response.status, status, path)

    @inlineCallbacks
    def test_host_rule_holds(self) -> Generator[Any, Any, None]:
        """A foreign Host is refused on the page too (DNS rebinding)."""
        client = _Client(b"GET / HTTP/1.1\r\nHost: evil.example\r\nConnection: close\r\n\r\n")
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", self.port), client)
        yield client.closed
        self.assertEqual(_Response(client.received).status, 403)


class PageFilesTests(SynchronousTestCase):
    """What the shipped files may and may not contain."""

    def read(self, name: str) -> str:
        with open(os.path.join(PAGE_DIR, name), encoding="utf-8") as f:
            return f.read()

    def test_no_inline_script_or_style(self) -> None:
        """index.html's scripts are files, with no inline code, styles or
        event handler attributes (the CSP would block them)."""
        html = self.read("index.html")
        for match in re.finditer(r"<script\b([^>]*)>(.*?)</script>", html, re.S):
            self.assertIn('src="/ui/', match.group(1))
            self.assertEqual(match.group(2).strip(), "")
        self.assertNotRegex(html, r"<style\b")
        self.assertNotRegex(html, r"\sstyle=")
        self.assertNotRegex(html, r"\son[a-z]+=")

    def test_nothing_from_elsewhere(self) -> None:
        """No file names another origin (no CDN, no fonts, no analytics)."""
        for name in ASSETS:
            text = self.read(name.decode())
            urls = re.findall(r"(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}", text)
            self.assertEqual([u for u in urls if u != "http://www.w3.org"], [], name)

    def test_no_html_from_strings(self) -> None:
        """app.js never builds markup from strings (innerHTML and the like)
        and never evaluates code."""
        script = self.read("app.js")
        for forbidden in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write",
                          "eval(", "new Function"):
            self.assertNotIn(forbidden, script)

    def test_every_asset_is_package_data(self) -> None:
        """setup.cfg's package data for txbittorrent.web covers every asset,
        so an installed package serves the page too."""
        config = configparser.ConfigParser()
        setup = os.path.join(os.path.dirname(PAGE_DIR), "..", "..", "setup.cfg")
        config.read(setup)
        patterns = [p.strip() for p in
                    config["options.package_data"]["txbittorrent.web"].split(",")]
        for name in ASSETS:
            path = "page/" + name.decode()
            self.assertTrue(any(fnmatch.fnmatch(path, p) for p in patterns), path)
            self.assertTrue(os.path.isfile(os.path.join(PAGE_DIR, name.decode())), path)
