"""Tests for txbittorrent.commands._source: what a TORRENT_ID names, fetching
a .torrent over HTTP (through treq.testing's in-memory agent, on a Clock),
and writing a .torrent atomically."""

from __future__ import annotations

import base64
import os
from typing import Any

from treq.testing import RequestTraversalAgent
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txbittorrent.commands import _source
from txbittorrent.commands._source import FetchError, TorrentURL
from txbittorrent.core.magnet import Magnet
from txbittorrent.core.metainfo import Metainfo, MetainfoLimits, parse
from txbittorrent.errors import MagnetError, MetainfoError
from txbittorrent.testing import make_torrent

RAW = make_torrent({"a.bin": 1000, "b.bin": 20}, 16384)
INFO_HASH = parse(RAW).info_hash
URL = "http://example.test/t.torrent"


class ResolveLocalTests(SynchronousTestCase):
    """``resolve_local``: each form of TORRENT_ID, without the network."""

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.root, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_torrent_file(self) -> None:
        """A path is parsed as a .torrent."""
        got = _source.resolve_local(self.write("t.torrent", RAW))
        self.assertIsInstance(got, Metainfo)
        self.assertEqual(got.info_hash, INFO_HASH)

    def test_magnet(self) -> None:
        """A magnet URI (any case, surrounding spaces) is parsed as one."""
        uri = f" MAGNET:?xt=urn:btih:{INFO_HASH.hex()}&dn=x&x.pe=127.0.0.1:7000 "
        got = _source.resolve_local(uri)
        self.assertEqual(got, Magnet(INFO_HASH, display_name="x", peers=(("127.0.0.1", 7000),)))

    def test_bare_hashes(self) -> None:
        """40 hex digits (either case) or 32 base32 characters make a bare magnet."""
        b32 = base64.b32encode(INFO_HASH).decode()
        for text in (INFO_HASH.hex(), INFO_HASH.hex().upper(), b32, b32.lower()):
            self.assertEqual(_source.resolve_local(text), Magnet(INFO_HASH), text)

    def test_file_named_like_a_hash(self) -> None:
        """A file whose name looks like an info hash wins over the hash."""
        cwd = os.getcwd()
        self.addCleanup(os.chdir, cwd)
        os.chdir(self.root)
        self.write("ab" * 20, RAW)
        self.assertIsInstance(_source.resolve_local("ab" * 20), Metainfo)

    def test_urls(self) -> None:
        """http and https URLs are left for fetch_torrent; other schemes are paths."""
        for url in (URL, "HTTPS://example.test:8443/x?y=1"):
            self.assertEqual(_source.resolve_local(url), TorrentURL(url))
        e = self.assertRaises(MetainfoError, _source.resolve_local, "ftp://example.test/t")
        self.assertIn("no such file", str(e))

    def test_errors(self) -> None:
        """A missing file, a bad magnet and a file that is not a torrent."""
        missing = os.path.join(self.root, "nope.torrent")
        e = self.assertRaises(MetainfoError, _source.resolve_local, missing)
        self.assertEqual(str(e), f"{missing}: no such file")
        self.assertRaises(MagnetError, _source.resolve_local, "magnet:?xt=urn:btih:123")
        self.assertRaises(MetainfoError, _source.resolve_local, "ab" * 19)
        garbage = self.write("g.torrent", b"<html>")
        e = self.assertRaises(MetainfoError, _source.resolve_local, garbage)
        self.assertIn("g.torrent", str(e))


class Served(Resource):
    """Answers every GET with ``body`` (or by calling ``respond(request)``)."""

    isLeaf = True

    def __init__(self, body: bytes = RAW, code: int = 200, respond: Any = None) -> None:
        super().__init__()
        self.body = body
        self.code = code
        self.respond = respond
        self.requests: list[Request] = []

    def render_GET(self, request: Request) -> Any:
        self.requests.append(request)
        if self.respond is not None:
            return self.respond(request)
        request.setResponseCode(self.code)
        return self.body


class FetchTorrentTests(SynchronousTestCase):
    """``fetch_torrent`` over an in-memory agent, with the deadline on a Clock."""

    def setUp(self) -> None:
        self.clock = Clock()

    def fetch(self, resource: Resource, url: str = URL, **options: Any) -> Deferred[Metainfo]:
        self.agent = RequestTraversalAgent(resource)
        return Deferred.fromCoroutine(_source.fetch_torrent(
            None, url, agent=self.agent, clock=self.clock, **options))

    def failure_text(self, d: Deferred[Any], *types: type[BaseException]) -> str:
        f = self.failureResultOf(d, *(types or (FetchError,)))
        return str(f.value)

    def test_ok(self) -> None:
        """A 200 with a .torrent body gives the parsed torrent and leaves no timer."""
        got = self.successResultOf(self.fetch(Served()))
        self.assertEqual(got.info_hash, INFO_HASH)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_redirects_followed(self) -> None:
        """A redirect or two to the torrent is followed."""
        hops: list[str] = []

        def respond(request: Request) -> bytes:
            hops.append(request.uri.decode())
            n = int(request.args.get(b"n", [b"0"])[0])
            if n < 2:
                request.redirect(f"http://example.test/t?n={n + 1}".encode())
                return b""
            return RAW

        got = self.successResultOf(self.fetch(Served(respond=respond)))
        self.assertEqual(got.info_hash, INFO_HASH)
        self.assertEqual(hops, ["/t.torrent", "/t?n=1", "/t?n=2"])

    def test_redirects_bounded(self) -> None:
        """A redirect loop ends after max_redirects with one clear line."""
        resource = Served(respond=lambda request: request.redirect(b"/again") or b"")
        d = self.fetch(resource, max_redirects=3)
        self.assertEqual(self.failure_text(d), f"{URL}: too many redirects")
        self.assertEqual(len(resource.requests), 4)

    def test_http_error(self) -> None:
        """A status other than 200 is an error naming it."""
        d = self.fetch(Served(b"gone", code=404))
        self.assertEqual(self.failure_text(d), f"{URL}: HTTP 404 Not Found")

    def test_not_a_torrent(self) -> None:
        """A body that is not a .torrent is a MetainfoError naming the URL."""
        d = self.fetch(Served(b"<html>hello</html>"))
        text = self.failure_text(d, MetainfoError)
        self.assertTrue(text.startswith(f"{URL}: torrent: invalid bencoding"), text)

    def test_content_length_too_large(self) -> None:
        """A Content-Length over the torrent size limit is refused before reading."""
        d = self.fetch(Served(b"x" * 101), limits=MetainfoLimits(max_torrent_size=100))
        self.assertEqual(self.failure_text(d), f"{URL}: 101 bytes is too large for a "
                                               "torrent file (the limit is 100)")

    def test_body_too_large(self) -> None:
        """A body without a length that grows past the limit is cut off."""
        finished: list[Any] = []

        def respond(request: Request) -> Any:
            request.notifyFinish().addBoth(finished.append)
            request.write(b"x" * 60)
            request.write(b"x" * 60)
            return NOT_DONE_YET

        d = self.fetch(Served(respond=respond), limits=MetainfoLimits(max_torrent_size=100))
        self.agent.flush()
        self.assertEqual(self.failure_text(d),
                         f"{URL}: more than 100 bytes is too large for a torrent file")
        self.agent.flush()
        self.assertEqual(len(finished), 1, "the server saw the connection go")

    def test_timeout_before_response(self) -> None:
        """No response within the timeout: the request is abandoned, one line."""
        d = self.fetch(Served(respond=lambda request: NOT_DONE_YET), timeout=7)
        self.assertNoResult(d)
        self.clock.advance(7)
        self.assertEqual(self.failure_text(d), f"{URL}: timed out after 7 s")

    def test_timeout_while_reading(self) -> None:
        """A body that stops coming: the connection is dropped at the deadline."""
        finished: list[Any] = []

        def respond(request: Request) -> Any:
            request.notifyFinish().addBoth(finished.append)
            request.write(b"d8:announce")
            return NOT_DONE_YET

        d = self.fetch(Served(respond=respond), timeout=5)
        self.agent.flush()
        self.assertNoResult(d)
        self.clock.advance(5)
        self.assertEqual(self.failure_text(d), f"{URL}: timed out after 5 s")
        self.agent.flush()
        self.assertEqual(len(finished), 1, "the server saw the connection go")

    def test_describe(self) -> None:
        """Connection errors read as their message, wrapped ones as their reasons."""
        from twisted.internet.error import ConnectionRefusedError
        from twisted.python.failure import Failure
        from twisted.web.client import ResponseNeverReceived

        self.assertEqual(_source._describe(ConnectionRefusedError()),
                         "Connection was refused by other side")
        wrapped = ResponseNeverReceived([Failure(ConnectionRefusedError("111"))])
        self.assertEqual(_source._describe(wrapped),
                         "Connection was refused by other side: 111")


class WriteRealTorrentTests(SynchronousTestCase):
    """``write_torrent_file`` over the real ``torrent_bytes``."""

    def test_round_trip(self) -> None:
        """The file parses back to the same info (verbatim) and the trackers."""
        path = os.path.join(self.mktemp() + ".torrent")
        m = parse(RAW)
        trackers = [["http://t/a", "http://t/b"], ["udp://t:1"]]
        _source.write_torrent_file(path, m.info_bytes, trackers)
        with open(path, "rb") as f:
            again = parse(f.read())
        self.assertEqual((again.info_hash, again.info_bytes), (m.info_hash, m.info_bytes))
        self.assertEqual(again.trackers, (("http://t/a", "http://t/b"), ("udp://t:1",)))


class WriteTorrentFileTests(SynchronousTestCase):
    """``write_torrent_file``: a .torrent of the info and trackers, atomically."""

    def setUp(self) -> None:
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.calls: list[tuple[bytes, Any]] = []

        def torrent_bytes(info_bytes: bytes, trackers: Any) -> bytes:
            self.calls.append((info_bytes, trackers))
            return b"d4:info" + info_bytes + b"e"

        import txbittorrent.core.metainfo as metainfo_module

        self.patch(metainfo_module, "torrent_bytes", torrent_bytes)

    def test_writes(self) -> None:
        """The file holds torrent_bytes' result; no temporary file is left."""
        path = os.path.join(self.root, "x.torrent")
        with open(path, "wb") as f:
            f.write(b"old")
        _source.write_torrent_file(path, b"de", [["http://t/a"], ["udp://t:1"]])
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"d4:infodee")
        self.assertEqual(self.calls, [(b"de", [["http://t/a"], ["udp://t:1"]])])
        self.assertEqual(os.listdir(self.root), ["x.torrent"])
        umask = os.umask(0)
        os.umask(umask)
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o666 & ~umask)

    def test_failure_cleans_up(self) -> None:
        """A rename that fails (the target is a directory) leaves no temporary file."""
        target = os.path.join(self.root, "dir")
        os.makedirs(target)
        self.assertRaises(OSError, _source.write_torrent_file, target, b"de", [])
        self.assertEqual(os.listdir(self.root), ["dir"])

    def test_trackers_of_a_torrent(self) -> None:
        """torrent_trackers lists a Torrent's tiers of URLs."""
        from txbittorrent.torrent import Torrent

        t = Torrent(f"magnet:?xt=urn:btih:{INFO_HASH.hex()}&tr=http://t/a&tr=udp://t:1",
                    basedir=self.root)
        self.assertEqual(_source.torrent_trackers(t), [["http://t/a"], ["udp://t:1"]])
