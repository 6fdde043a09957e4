"""``share DIR`` against real clients on 127.0.0.1: the .torrent it serves is
downloaded completely, byte for byte, by libtorrent (in this process, DHT,
LSD, UPnP and NAT-PMP off) and by aria2 (a child process, no DHT/LPD/PEX)
from the sharing process, found through its embedded tracker.  The service
runs in-process for the first two and as ``python -m txbittorrent share`` in
a child process (stopped by SIGTERM, exit 0) for the last.  Every test is
bounded in time and stops every service, session and process it starts."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Generator
from typing import Any
from urllib.parse import quote_from_bytes

import treq
from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SkipTest
from twisted.web.client import HTTPConnectionPool

from tests.integration import ltutil
from tests.integration.children import spawn_child
from tests.integration.engine import ARIA2C, aria2_command, start_process
from tests.integration.temproot import TempRootCase
from txbittorrent.core.bencoding import decode
from txbittorrent.core.metainfo import parse
from txbittorrent.share.service import ShareConfig, ShareService
from txbittorrent.testing import make_files, wait_until

LOOPBACK = "127.0.0.1"
KiB = 1024
MiB = 1024 * KiB

TREE = {
    "album/one.bin": 1 * MiB + 333,
    "album/two.bin": 700 * KiB,
    "album/notes.txt": 4000,
    "film.bin": 2 * MiB + 17,
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def sha1_of(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha1(f.read()).hexdigest()


class ShareClientsBase(TempRootCase):
    make_dirs = True
    timeout = 180

    def setUp(self) -> None:
        self.make_root()
        self.shared = os.path.join(self.root, "shared")
        self.data = make_files(self.shared, TREE)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    @inlineCallbacks
    def start_service(self) -> Generator[Any, Any, ShareService]:
        service = ShareService(ShareConfig(
            self.shared, listen=f"tcp:0:interface={LOOPBACK}", peer_interface=LOOPBACK,
            tracker_interface=LOOPBACK,
        ), reactor=reactor)
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        yield service.started
        return service

    @inlineCallbacks
    def fetch_torrent(self, base_url: str, rel: str) -> Generator[Any, Any, bytes]:
        response = yield treq.get(f"{base_url}/torrent/{rel}", pool=self.pool)
        body = yield response.content()
        self.assertEqual(response.code, 200, body)
        return body

    def assert_same(self, names: list[str], downloaded: str) -> None:
        """Each file under ``downloaded`` has the SHA-1 of the shared one."""
        for name in names:
            got = os.path.join(downloaded, *name.split("/"))
            self.assertEqual(sha1_of(got), hashlib.sha1(self.data[name]).hexdigest(), name)


    @inlineCallbacks
    def wait_for_seeder(self, raw: bytes) -> Generator[Any, Any, None]:
        """Scrape the torrent's tracker until it counts one seeder."""
        meta = parse(raw)
        scrape = meta.trackers[0][0].replace("/announce", "/scrape")
        query = "info_hash=" + quote_from_bytes(meta.info_hash, safe="")
        for _ in range(100):
            response = yield treq.get(f"{scrape}?{query}", pool=self.pool)
            body = yield response.content()
            files = decode(body).get(b"files", {})
            if files.get(meta.info_hash, {}).get(b"complete", 0) >= 1:
                return None
            yield task.deferLater(reactor, 0.1, lambda: None)
        self.fail("the seeder never announced")


class LibtorrentShareTests(ShareClientsBase):
    """libtorrent downloads what ``share`` serves."""

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        super().setUp()

    @inlineCallbacks
    def test_libtorrent_downloads_a_shared_directory(self) -> Generator[Any, Any, None]:
        """libtorrent downloads a directory's torrent from the sharing session via the tracker."""
        service = yield self.start_service()
        raw = yield self.fetch_torrent(service.url, "album")
        meta = parse(raw)
        tracker = service.tracker
        yield wait_until(lambda: tracker.state.peers(meta.info_hash), 10,
                         "the seeder to announce")
        session = ltutil.make_session(self)
        handle = ltutil.add_torrent(session, raw, self.path("lt"))
        yield wait_until(lambda: handle.status().is_seeding, 90, "libtorrent to finish",
                         lambda: ltutil.describe(handle))
        names = [n for n in TREE if n.startswith("album/")]
        self.assert_same(names, self.path("lt"))
        torrent = service.session.get(meta.info_hash)
        self.assertGreaterEqual(torrent.uploaded, sum(TREE[n] for n in names))


class Aria2ShareTests(ShareClientsBase):
    """aria2 downloads what ``share`` serves, in-process and as a child process."""

    def setUp(self) -> None:
        if ARIA2C is None:
            raise SkipTest("aria2c is not installed (apt-get install aria2)")
        super().setUp()

    @inlineCallbacks
    def aria2_download(self, raw: bytes, name: str) -> Generator[Any, Any, str]:
        torrent_path = os.path.join(self.root, f"{name}.torrent")
        with open(torrent_path, "wb") as f:
            f.write(raw)
        target = self.path(f"aria2-{name}")
        log = os.path.join(self.root, f"aria2-{name}.log")
        proc = start_process(self, aria2_command(torrent_path, target, free_port()), log)
        yield wait_until(lambda: proc.poll() is not None, 120, "aria2c to finish",
                         lambda: open(log).read()[-2000:])
        self.assertEqual(proc.returncode, 0, open(log).read()[-2000:])
        return target

    @inlineCallbacks
    def test_aria2_downloads_a_shared_file(self) -> Generator[Any, Any, None]:
        """aria2c downloads a file's torrent from the in-process sharing session."""
        service = yield self.start_service()
        raw = yield self.fetch_torrent(service.url, "film.bin")
        meta = parse(raw)
        yield wait_until(lambda: service.tracker.state.peers(meta.info_hash), 10,
                         "the seeder to announce")
        target = yield self.aria2_download(raw, "film")
        self.assert_same(["film.bin"], target)

    @inlineCallbacks
    def test_share_command_serves_aria2(self) -> Generator[Any, Any, None]:
        """``python -m txbittorrent share DIR`` in a child process serves a
        directory's torrent that aria2c downloads; SIGTERM stops it with exit 0."""
        http_port = free_port()
        child = spawn_child(self, [
            "-m", "txbittorrent", "share", self.shared,
            "--listen", f"tcp:{http_port}:interface={LOOPBACK}",
            "--peer-interface", LOOPBACK, "--tracker-interface", LOOPBACK,
        ])
        yield wait_until(lambda: "serving" in child.stdout() or not child.running, 30,
                         "the share command to start", child.stderr)
        self.assertTrue(child.running, child.stderr())
        url = re.search(r"on (http://\S+)", child.stdout()).group(1)  # type: ignore[union-attr]
        self.assertEqual(url, f"http://{LOOPBACK}:{http_port}")
        raw = yield self.fetch_torrent(url, "album")
        yield self.wait_for_seeder(raw)
        target = yield self.aria2_download(raw, "album")
        self.assert_same([n for n in TREE if n.startswith("album/")], target)
        child.terminate()
        code = yield child.ended
        self.assertEqual(code, 0, child.stderr())
