"""POST /api/torrents in its three forms (JSON, multipart upload, raw
application/x-bittorrent), URL sources fetched from a local twisted.web
server on 127.0.0.1, the add options, and TorrentFetcher on its own (cap,
redirects, timeout on a Clock)."""

from __future__ import annotations

import io
import os
from collections.abc import Generator
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from tests.apicase import HASH1, HASH2, MAGNET, ApiCase
from tests.webcase import make_pool, serve
from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files
from txbittorrent.web.apiadd import TorrentFetcher
from txbittorrent.web.apibody import MAX_TORRENT, ApiError


class _Serve(Resource):
    """Serves a few fixed answers: /t.torrent, /moved (302 to it), /magnet
    (302 to a magnet), /loop (302 to itself), /missing (404), /ftp (302 to
    ftp://), /big (a body over a small cap, chunked)."""

    isLeaf = True

    def __init__(self, torrent: bytes) -> None:
        super().__init__()
        self.torrent = torrent
        self.hits: list[bytes] = []

    def render_GET(self, request: Request) -> bytes:
        path = request.path
        self.hits.append(path)
        redirects = {b"/moved": b"/t.torrent", b"/magnet": MAGNET.encode(),
                     b"/loop": b"/loop", b"/ftp": b"ftp://127.0.0.1/x.torrent"}
        if path == b"/t.torrent":
            return self.torrent
        if path in redirects:
            request.setResponseCode(302)
            request.setHeader(b"Location", redirects[path])
            return b"moved"
        if path == b"/big":
            request.write(b"d" * 3000)  # no Content-Length: chunked
            request.write(b"e" * 3000)
            request.finish()
            return NOT_DONE_YET  # type: ignore[no-any-return]
        request.setResponseCode(404)
        return b"no"


class _Fixture:
    """A two-file .torrent and a local server for it."""

    def make(self, case: TestCase) -> None:
        root = os.path.abspath(case.mktemp())
        make_files(os.path.join(root, "t"), {"a.bin": 40_000, "b.txt": 900}, seed=9)
        self.raw = create_torrent(os.path.join(root, "t"), piece_length=16 * 1024)
        self.info_hash = parse(self.raw).info_hash.hex()
        self.server = _Serve(self.raw)
        self.url = serve(case, self.server)


class AddFormsTests(ApiCase):
    """The three body forms and their options."""

    use_store = True

    def setUp(self) -> Any:
        self.fixture = _Fixture()
        self.fixture.make(self)
        return super().setUp()

    def api_options(self) -> dict[str, Any]:
        self.fetch_pool = make_pool(self)
        return {"http_client": HTTPClient(Agent(reactor, pool=self.fetch_pool)),
                "fetch_timeout": 10.0}

    @inlineCallbacks
    def post(
        self, path: str, **kwargs: Any
    ) -> Generator[Any, Any, tuple[Any, Any]]:
        response = yield treq.post(self.base + path, pool=self.pool, **kwargs)
        body = yield treq.json_content(response)
        return response, body

    @inlineCallbacks
    def test_json_url_source(self) -> Generator[Any, Any, None]:
        """An http URL source is fetched (following a redirect) and added
        with its metadata; the store keeps the fetched .torrent's bytes."""
        for path in ("/moved",):
            response, body = yield self.call(
                "POST", "/torrents",
                {"source": self.fixture.url + path, "labels": ["x", "y", "x"]},
            )
            self.assertEqual(response.code, 201, body)
        self.assertEqual(body["info_hash"], self.fixture.info_hash)
        self.assertEqual((body["has_metadata"], body["name"]), (True, "t"))
        self.assertEqual(body["labels"], ["x", "y"])
        self.assertEqual(body["added_at"], 1_700_000_000)
        self.assertEqual(self.fixture.server.hits, [b"/moved", b"/t.torrent"])
        assert self.store is not None
        record = self.store.get(self.fixture.info_hash)
        assert record is not None
        self.assertEqual((record.source, record.metainfo), (self.fixture.raw, self.fixture.raw))
        self.assertEqual(record.labels, ("x", "y"))

    @inlineCallbacks
    def test_url_redirect_to_magnet(self) -> Generator[Any, Any, None]:
        """A URL that redirects to a magnet adds the magnet."""
        response, body = yield self.call("POST", "/torrents",
                                         {"source": self.fixture.url + "/magnet"})
        self.assertEqual((response.code, body["info_hash"]), (201, HASH2))
        self.assertEqual(self.store.get(HASH2).source, MAGNET)  # type: ignore[union-attr]

    @inlineCallbacks
    def test_bad_urls(self) -> Generator[Any, Any, None]:
        """A 404, a redirect loop, a redirect to ftp, a refused connection,
        a body that is no .torrent: 400 with a message; nothing added."""
        closed = reactor.listenTCP(0, Site(Resource()), interface="127.0.0.1")
        dead = f"http://127.0.0.1:{closed.getHost().port}/x.torrent"
        yield closed.stopListening()
        for url in (self.fixture.url + "/missing", self.fixture.url + "/loop",
                    self.fixture.url + "/ftp", dead, self.fixture.url + "/big",
                    "ftp://127.0.0.1/x.torrent"):
            response, body = yield self.call("POST", "/torrents", {"source": url})
            self.assertEqual(response.code, 400, url)
            self.assertIsInstance(body["error"], str)
        self.assertEqual(self.session.torrents(), [])

    @inlineCallbacks
    def test_multipart_upload(self) -> Generator[Any, Any, None]:
        """A multipart form with the .torrent in "torrent" and the options as
        fields (paused, save_path, repeated labels, files)."""
        response, body = yield self.post(
            "/torrents",
            data=[("paused", "true"), ("save_path", "sub/dir"), ("labels", "a,b"),
                  ("labels", "c"), ("files", "1")],
            files={"torrent": ("t.torrent", "application/x-bittorrent",
                               io.BytesIO(self.fixture.raw))},
        )
        self.assertEqual(response.code, 201, body)
        self.assertEqual(body["info_hash"], self.fixture.info_hash)
        self.assertEqual(body["save_path"], os.path.join(self.download_dir, "sub", "dir"))
        self.assertEqual(body["labels"], ["a", "b", "c"])
        torrent = self.session.get(bytes.fromhex(self.fixture.info_hash))
        assert torrent is not None
        self.assertEqual(torrent.priorities, (0, 1))
        record = self.store.get(self.fixture.info_hash)  # type: ignore[union-attr]
        assert record is not None
        self.assertEqual((record.wanted, record.priorities), ("paused", (0, 1)))
        self.assertEqual(record.source, self.fixture.raw)
        response = yield treq.get(f"{self.base}/torrents/{self.fixture.info_hash}/torrent",
                                  pool=self.pool)
        self.assertEqual((yield treq.content(response)), self.fixture.raw)  # as uploaded
        response, body = yield self.post(
            "/torrents", files={"torrent": ("t.torrent", io.BytesIO(self.fixture.raw))})
        self.assertEqual(response.code, 409)

    @inlineCallbacks
    def test_form_source(self) -> Generator[Any, Any, None]:
        """A form without a file takes its "source" field (urlencoded too)."""
        response, body = yield self.post("/torrents", data={"source": MAGNET, "labels": "q"})
        self.assertEqual(response.code, 201, body)
        self.assertEqual((body["info_hash"], body["labels"]), (HASH2, ["q"]))
        response, body = yield self.post("/torrents", data={"source": "/etc/passwd"})
        self.assertEqual(response.code, 400)

    @inlineCallbacks
    def test_raw_upload(self) -> Generator[Any, Any, None]:
        """A raw application/x-bittorrent body with the options in the query
        string; an absolute save path is the owner's choice."""
        where = os.path.abspath(self.mktemp())
        response, body = yield self.post(
            "/torrents", params={"save_path": where, "priorities": "2,0", "labels": "z"},
            data=self.fixture.raw, headers={"Content-Type": "application/x-bittorrent"},
        )
        self.assertEqual(response.code, 201, body)
        self.assertEqual((body["save_path"], body["labels"]), (where, ["z"]))
        torrent = self.session.get(bytes.fromhex(self.fixture.info_hash))
        self.assertEqual(torrent.priorities, (2, 0))  # type: ignore[union-attr]
        response, body = yield self.call("GET", "/torrents?label=z")
        self.assertEqual([t["info_hash"] for t in body["torrents"]], [self.fixture.info_hash])
        response, body = yield self.call("GET", "/torrents?label=nope")
        self.assertEqual(body["torrents"], [])

    @inlineCallbacks
    def test_bad_torrents(self) -> Generator[Any, Any, None]:
        """A malformed, empty or oversized .torrent is 400 with a message,
        raw or in a form; nothing is added."""
        raw_type = {"Content-Type": "application/x-bittorrent"}
        cases: list[dict[str, Any]] = [
            {"data": b"d4:infoi1ee", "headers": raw_type},
            {"data": self.fixture.raw[:-5], "headers": raw_type},
            {"data": b"", "headers": raw_type},
            {"data": b"d" * (MAX_TORRENT + 1), "headers": raw_type},
            {"files": {"torrent": ("t.torrent", io.BytesIO(b"not bencoding"))}},
            {"files": {"torrent": ("t.torrent", io.BytesIO(b"d" * (MAX_TORRENT + 1)))}},
            {"files": {"nothing": ("t.torrent", io.BytesIO(self.fixture.raw))}},
        ]
        for kwargs in cases:
            response, body = yield self.post("/torrents", **kwargs)
            self.assertEqual(response.code, 400, body)
            self.assertIsInstance(body["error"], str)
            self.assertNotIn("Traceback", body["error"])
        self.assertEqual(self.session.torrents(), [])

    @inlineCallbacks
    def test_bad_options(self) -> Generator[Any, Any, None]:
        """Bad save paths, labels and file selections are 400; a file
        selection with a magnet or info hash is 400 (no metadata yet)."""
        url = self.fixture.url + "/t.torrent"
        bad: list[dict[str, Any]] = [
            {"source": HASH1, "save_path": "../up"}, {"source": HASH1, "save_path": "a/../../b"},
            {"source": HASH1, "save_path": "a\0b"}, {"source": HASH1, "save_path": 5},
            {"source": HASH1, "save_path": ""}, {"source": HASH1, "labels": "a"},
            {"source": HASH1, "labels": [1]}, {"source": HASH1, "labels": ["x" * 101]},
            {"source": HASH1, "files": "0"}, {"source": MAGNET, "priorities": [-1]},
            {"source": url, "priorities": [1]}, {"source": url, "files": [5]},
            {"source": url, "files": [0], "priorities": [1, 1]},
            {"source": url, "priorities": [1, -1]}, {"source": url, "files": "0"},
        ]
        for options in bad:
            response, body = yield self.call("POST", "/torrents", options)
            self.assertEqual(response.code, 400, (options, body))
        self.assertEqual(self.session.torrents(), [])
        response, body = yield self.call("POST", "/torrents", {"source": url, "files": [1]})
        self.assertEqual(response.code, 201, body)


class MagnetSelectionTests(ApiCase):
    """A magnet's file selection waits for the metadata."""

    use_store = True

    def setUp(self) -> Any:
        self.fixture = _Fixture()
        self.fixture.make(self)
        return super().setUp()

    @inlineCallbacks
    def test_applied_on_metadata(self) -> Generator[Any, Any, None]:
        """"files" with a magnet is applied (and stored) once the info
        dictionary arrives."""
        ih = self.fixture.info_hash
        response, body = yield self.call("POST", "/torrents",
                                         {"source": f"magnet:?xt=urn:btih:{ih}", "files": [1]})
        self.assertEqual((response.code, body["has_metadata"]), (201, False), body)
        torrent = self.session.get(bytes.fromhex(ih))
        assert torrent is not None
        pending = self.api.manager.pending[ih]
        torrent.metadata_received(parse(self.fixture.raw).info_bytes)
        applied = yield pending
        self.assertEqual(applied, (0, 1))
        self.assertEqual(torrent.priorities, (0, 1))
        self.assertEqual(self.store.get(ih).priorities, (0, 1))  # type: ignore[union-attr]
        self.assertEqual(self.api.manager.pending, {})

    @inlineCallbacks
    def test_misfit_dropped_or_removed(self) -> Generator[Any, Any, None]:
        """A selection that does not fit the files is dropped (all files
        stay wanted); one whose torrent is removed first is forgotten."""
        ih = self.fixture.info_hash
        yield self.call("POST", "/torrents", {"source": ih, "priorities": [1, 1, 1]})
        torrent = self.session.get(bytes.fromhex(ih))
        assert torrent is not None
        pending = self.api.manager.pending[ih]
        torrent.metadata_received(parse(self.fixture.raw).info_bytes)
        self.assertIsNone((yield pending))
        self.assertEqual(torrent.priorities, (1, 1))
        yield self.call("POST", "/torrents", {"source": HASH1, "files": [0]})
        pending = self.api.manager.pending[HASH1]
        yield self.call("DELETE", f"/torrents/{HASH1}")
        self.assertIsNone((yield pending))
        self.assertEqual(self.api.manager.pending, {})


class TorrentFetcherTests(TestCase):
    """TorrentFetcher against the local server, and on a Clock."""

    timeout = 30

    def setUp(self) -> None:
        self.fixture = _Fixture()
        self.fixture.make(self)
        self.client = HTTPClient(Agent(reactor, pool=make_pool(self)))

    @inlineCallbacks
    def test_cap(self) -> Generator[Any, Any, None]:
        """A body over the cap fails, with a Content-Length or chunked; under
        it, the bytes come back."""
        small = TorrentFetcher(self.client, reactor, cap=100)
        for path in ("/t.torrent", "/big"):
            error = yield self.assertFailure(small.fetch(self.fixture.url + path), ApiError)
            self.assertEqual(error.code, 400)
            self.assertIn("over 100 bytes", error.message)
        body = yield TorrentFetcher(self.client, reactor, cap=len(self.fixture.raw)).fetch(
            self.fixture.url + "/t.torrent")
        self.assertEqual(body, self.fixture.raw)

    def test_timeout(self) -> None:
        """A server that never answers: 400 once the timeout passes on the
        clock, and the request is cancelled."""
        clock = Clock()
        pending: Deferred[Any] = Deferred()

        class Stuck:
            def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
                return pending

        d = TorrentFetcher(Stuck(), clock, timeout=5).fetch("http://127.0.0.1:1/x")
        failures: list[Any] = []
        d.addErrback(failures.append)
        clock.advance(4.9)
        self.assertEqual(failures, [])
        clock.advance(0.2)
        [failure] = failures
        self.assertIn("timed out", failure.value.message)
        self.assertTrue(pending.called)  # cancelled
        self.assertEqual(clock.getDelayedCalls(), [])

