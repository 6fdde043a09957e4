"""The share service (txbittorrent.share.service and .resource) through real
sockets on 127.0.0.1 with treq: the listing, the torrents, the 404s, one
hash job for concurrent requests, changed and removed files, the cache."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Generator
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import DeferredList, inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from txbittorrent.core.metainfo import parse
from txbittorrent.errors import UnsafePathError
from txbittorrent.eventtypes import PiecePassed
from txbittorrent.share import tree
from txbittorrent.share.service import CACHE_NAME, ShareConfig, ShareService
from txbittorrent.state import TorrentState
from txbittorrent.testing import make_files, wait_until

KiB = 1024

FILES = {
    "movie.bin": 300 * KiB + 7,
    "docs/a.txt": 5000,
    "docs/deep/b.bin": 70 * KiB,
    "<b>&amp.txt": 10,
}


class ShareServiceTests(TestCase):
    timeout = 60

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        self.root = os.path.abspath(self.mktemp())
        self.data = make_files(self.root, FILES)
        self.builds: list[tuple[str, ...]] = []
        real_build = tree.build

        self.gate: threading.Event | None = None

        def counting_build(root: str, rel: tuple[str, ...], *args: Any) -> Any:
            self.builds.append(rel)
            if self.gate is not None:
                self.gate.wait(20)
            return real_build(root, rel, *args)

        self.patch(tree, "build", counting_build)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self.service = yield self.start_service()

    @inlineCallbacks
    def start_service(self, clock: Any = None, **options: Any) -> Generator[Any, Any, ShareService]:
        config = ShareConfig(
            self.root, listen="tcp:0:interface=127.0.0.1", piece_length=16 * KiB,
            check_interval=3600, **options,
        )
        service = ShareService(config, reactor=reactor, clock=clock)
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        yield service.started
        return service

    def get(self, path: str) -> Any:
        return treq.get(self.service.url + path, pool=self.pool)

    @inlineCallbacks
    def fetch(self, path: str) -> Generator[Any, Any, tuple[int, Any, bytes]]:
        response = yield self.get(path)
        body = yield response.content()
        return response.code, response.headers, body

    @inlineCallbacks
    def test_listing_json(self) -> Generator[Any, Any, None]:
        """?format=json lists every file and directory with sizes and torrent links."""
        code, headers, body = yield self.fetch("/?format=json")
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders("content-type"), ["application/json"])
        listing = {e["path"]: e for e in json.loads(body)["files"]}
        self.assertEqual(set(listing), {
            "movie.bin", "docs", "docs/a.txt", "docs/deep", "docs/deep/b.bin", "<b>&amp.txt",
        })
        self.assertEqual(listing["docs"]["type"], "directory")
        self.assertEqual(listing["docs"]["size"], 5000 + 70 * KiB)
        self.assertEqual(listing["movie.bin"]["torrent"], "/torrent/movie.bin")
        self.assertEqual(listing["<b>&amp.txt"]["torrent"], "/torrent/%3Cb%3E%26amp.txt")
        self.assertFalse(listing["movie.bin"]["seeding"])

    @inlineCallbacks
    def test_listing_html_escapes(self) -> Generator[Any, Any, None]:
        """The HTML listing escapes names and links and hides the cache directory."""
        yield self.fetch("/torrent/movie.bin")  # makes the cache directory
        code, headers, body = yield self.fetch("/")
        self.assertEqual(code, 200)
        self.assertIn(b"text/html", headers.getRawHeaders("content-type")[0].encode())
        self.assertIn(b"&lt;b&gt;&amp;amp.txt", body)
        self.assertNotIn(b"<b>", body)
        self.assertNotIn(CACHE_NAME.encode(), body)
        self.assertIn(b'href="/torrent/docs/deep/b.bin"', body)

    @inlineCallbacks
    def test_torrent_of_a_file_seeds_without_a_hash_pass(self) -> Generator[Any, Any, None]:
        """GET /torrent/<file> answers the .torrent; it seeds at once, no piece rehashed."""
        passed: list[Any] = []
        self.service.session.events.subscribe(passed.append, kinds=[PiecePassed])
        code, headers, body = yield self.fetch("/torrent/movie.bin")
        self.assertEqual(code, 200)
        self.assertEqual(headers.getRawHeaders("content-type"), ["application/x-bittorrent"])
        self.assertIn('attachment; filename="movie.bin.torrent"',
                      headers.getRawHeaders("content-disposition")[0])
        meta = parse(body)
        self.assertEqual(meta.name, "movie.bin")
        self.assertEqual(meta.total_length, FILES["movie.bin"])
        self.assertEqual(meta.trackers, ((self.service.tracker_url,),))
        torrent = self.service.session.get(meta.info_hash)
        self.assertIsNotNone(torrent)
        self.assertTrue(torrent.complete)
        self.assertEqual(torrent.state, TorrentState.SEEDING)
        self.assertEqual(passed, [])
        self.assertIn(meta.info_hash, self.service.allowed)
        tracker = self.service.tracker
        yield wait_until(lambda: tracker.state.peers(meta.info_hash), 10,
                         "the embedded tracker to accept the seeder's announce")
        code, _, body = yield self.fetch("/?format=json")
        listing = {e["path"]: e for e in json.loads(body)["files"]}
        self.assertTrue(listing["movie.bin"]["seeding"])
        self.assertEqual(listing["movie.bin"]["info_hash"], meta.info_hash.hex())

    @inlineCallbacks
    def test_torrent_of_a_directory(self) -> Generator[Any, Any, None]:
        """A directory's torrent holds its files in order and seeds from one session."""
        code, _, body = yield self.fetch("/torrent/docs")
        self.assertEqual(code, 200)
        meta = parse(body)
        self.assertEqual([f.path for f in meta.files],
                         [("docs", "a.txt"), ("docs", "deep", "b.bin")])
        code, _, body2 = yield self.fetch("/torrent/movie.bin")
        self.assertEqual(code, 200)
        hashes = {t.info_hash for t in self.service.session.torrents()}
        self.assertEqual(hashes, {meta.info_hash, parse(body2).info_hash})
        self.assertTrue(all(t.complete for t in self.service.session.torrents()))

    @inlineCallbacks
    def test_not_shared_is_404(self) -> Generator[Any, Any, None]:
        """Traversal, symlinks (leading out or not), the cache, missing paths: 404."""
        outside = os.path.abspath(self.mktemp())
        make_files(outside, {"secret.txt": 100})
        os.symlink(outside, os.path.join(self.root, "out"))
        os.symlink(os.path.join(outside, "secret.txt"), os.path.join(self.root, "s.txt"))
        os.symlink(os.path.join(self.root, "movie.bin"), os.path.join(self.root, "in.bin"))
        os.makedirs(os.path.join(self.root, CACHE_NAME), exist_ok=True)
        make_files(os.path.join(self.root, CACHE_NAME), {"x.bin": 10})
        for path in [
            "/torrent/out/secret.txt", "/torrent/out", "/torrent/s.txt", "/torrent/in.bin",
            "/torrent/%2E%2E/x", "/torrent/docs/%2e%2e/movie.bin", "/torrent/a%2Fb",
            f"/torrent/{CACHE_NAME}", f"/torrent/{CACHE_NAME}/x.bin", "/torrent/nope.bin",
            "/torrent/", "/torrent", "/torrent/" + "a/" * 70 + "b", "/elsewhere",
            "/torrent/%FF.bin", "/torrent/a%00b",
        ]:
            code, _, _ = yield self.fetch(path)
            self.assertEqual(code, 404, path)
        self.assertEqual(self.builds, [])
        code, _, body = yield self.fetch("/?format=json")
        names = {e["path"] for e in json.loads(body)["files"]}
        self.assertFalse(names & {"out", "s.txt", "in.bin", CACHE_NAME})

    @inlineCallbacks
    def test_concurrent_requests_hash_once(self) -> Generator[Any, Any, None]:
        """Five requests at once for one file: one hash job, the same torrent for all."""
        results = yield DeferredList([self.fetch("/torrent/movie.bin") for _ in range(5)],
                                     consumeErrors=True)
        bodies = {r[1][2] for r in results}
        self.assertEqual([r[1][0] for r in results], [200] * 5)
        self.assertEqual(len(bodies), 1)
        self.assertEqual(self.builds, [("movie.bin",)])

    @inlineCallbacks
    def test_changed_file_makes_a_new_torrent(self) -> Generator[Any, Any, None]:
        """A file that changed gets a new torrent; the old one stops seeding."""
        _, _, first = yield self.fetch("/torrent/docs/a.txt")
        old = parse(first).info_hash
        with open(os.path.join(self.root, "docs", "a.txt"), "ab") as f:
            f.write(b"more")
        _, _, second = yield self.fetch("/torrent/docs/a.txt")
        new = parse(second).info_hash
        self.assertNotEqual(old, new)
        self.assertIsNone(self.service.session.get(old))
        self.assertTrue(self.service.session.get(new).complete)
        self.assertNotIn(old, self.service.allowed)
        self.assertEqual(len(self.builds), 2)

    @inlineCallbacks
    def test_removed_file_stops_seeding(self) -> Generator[Any, Any, None]:
        """The periodic check stops seeding a file that disappeared; a request then 404s."""
        _, _, body = yield self.fetch("/torrent/docs/deep/b.bin")
        info_hash = parse(body).info_hash
        os.unlink(os.path.join(self.root, "docs", "deep", "b.bin"))
        forgotten = yield self.service.catalog.check()
        self.assertEqual(forgotten, [("docs", "deep", "b.bin")])
        self.assertIsNone(self.service.session.get(info_hash))
        self.assertNotIn(info_hash, self.service.allowed)
        code, _, _ = yield self.fetch("/torrent/docs/deep/b.bin")
        self.assertEqual(code, 404)

    @inlineCallbacks
    def test_too_many_files_is_422(self) -> Generator[Any, Any, None]:
        """A directory over max_files is refused before hashing."""
        yield self.service.stopService()
        self.service = yield self.start_service(max_files=1)
        code, _, body = yield self.fetch("/torrent/docs")
        self.assertEqual(code, 422)
        self.assertIn(b"more than 1 files", body)

    @inlineCallbacks
    def test_outside_tracker_url(self) -> Generator[Any, Any, None]:
        """With a tracker URL this host cannot reach, the torrent names only that
        URL, and the seeder still registers with the embedded tracker."""
        yield self.service.stopService()
        outside = "http://127.0.0.9:9/announce"
        self.service = yield self.start_service(tracker_url=outside)
        code, _, body = yield self.fetch("/torrent/movie.bin")
        self.assertEqual(code, 200)
        meta = parse(body)
        self.assertEqual(meta.trackers, ((outside,),))
        tracker = self.service.tracker
        yield wait_until(lambda: tracker.state.peers(meta.info_hash), 10,
                         "the embedded tracker to hear from the seeder")

    @inlineCallbacks
    def test_cache_survives_a_restart(self) -> Generator[Any, Any, None]:
        """After a restart the cached torrent is served and seeded, nothing rehashed
        (the same tracker URL: the embedded tracker's port changes)."""
        url = self.service.tracker_url
        yield self.service.stopService()
        self.service = yield self.start_service(tracker_url=url)
        _, _, first = yield self.fetch("/torrent/movie.bin")
        yield self.service.stopService()
        self.service = yield self.start_service(tracker_url=url)
        passed: list[Any] = []
        self.service.session.events.subscribe(passed.append, kinds=[PiecePassed])
        code, _, second = yield self.fetch("/torrent/movie.bin")
        self.assertEqual((code, second), (200, first))
        self.assertEqual(self.builds, [("movie.bin",)])
        self.assertTrue(self.service.session.get(parse(second).info_hash).complete)
        self.assertEqual(passed, [])

    @inlineCallbacks
    def test_stop_leaves_nothing_running(self) -> Generator[Any, Any, None]:
        """stopService stops seeding, the session, the tracker and the HTTP port."""
        yield self.fetch("/torrent/movie.bin")
        session = self.service.session
        yield self.service.stopService()
        self.assertFalse(session.running)
        self.assertEqual(session.torrents(), [])
        self.assertIsNone(self.service.tracker)
        self.assertIsNone(self.service.port)

    @inlineCallbacks
    def test_full_queue_is_503(self) -> Generator[Any, Any, None]:
        """With the hashing slots and queue full, a request is told 503 with Retry-After."""
        yield self.service.stopService()
        self.service = yield self.start_service(max_jobs=1, max_queued=0)
        gate = self.gate = threading.Event()
        self.addCleanup(gate.set)
        first = self.fetch("/torrent/movie.bin")
        yield wait_until(lambda: self.builds, 10, "the first build")
        code, headers, _ = yield self.fetch("/torrent/docs/a.txt")
        self.assertEqual(code, 503)
        self.assertEqual(headers.getRawHeaders("retry-after"), ["5"])
        gate.set()
        code, _, _ = yield first
        self.assertEqual(code, 200)

    @inlineCallbacks
    def test_directory_swapped_for_a_link_is_never_read(self) -> Generator[Any, Any, None]:
        """A parent directory replaced by a symlink after seeding began: reads fail, the check stops it."""
        _, _, body = yield self.fetch("/torrent/docs/deep/b.bin")
        info_hash = parse(body).info_hash
        torrent = self.service.session.get(info_hash)
        elsewhere = os.path.abspath(self.mktemp())
        os.rename(os.path.join(self.root, "docs"), elsewhere)
        os.symlink(elsewhere, os.path.join(self.root, "docs"))
        yield self.assertFailure(torrent.hashcheck(), UnsafePathError)
        forgotten = yield self.service.catalog.check()
        self.assertEqual(forgotten, [("docs", "deep", "b.bin")])
        self.assertIsNone(self.service.session.get(info_hash))

    @inlineCallbacks
    def test_periodic_check_stops_seeding(self) -> Generator[Any, Any, None]:
        """Every check_interval on the injected clock, vanished files stop seeding."""
        yield self.service.stopService()
        clock = Clock()
        self.service = yield self.start_service(clock=clock)
        _, _, body = yield self.fetch("/torrent/docs/a.txt")
        info_hash = parse(body).info_hash
        os.unlink(os.path.join(self.root, "docs", "a.txt"))
        clock.advance(3599)
        self.assertIsNotNone(self.service.session.get(info_hash))
        clock.advance(1)
        yield wait_until(lambda: self.service.session.get(info_hash) is None, 10,
                         "seeding to stop")
        yield self.service.stopService()
        self.assertEqual(clock.getDelayedCalls(), [])
