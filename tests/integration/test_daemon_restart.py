"""SIGKILL of a real ``txbittorrent serve`` mid-download, and restarts on the
same state directory.

A libtorrent session on 127.0.0.1 seeds four torrents, rate-limited to
local peers so the download takes several seconds; a tracker in this
process introduces it to the daemon.  Through the daemon's API the test
adds: A (.torrent upload, 16 MiB over two files), B (a magnet with the
tracker, 4 MiB: its metadata comes from libtorrent), C (.torrent, added
paused) and D (.torrent, stopped after the add).  It then kills the daemon
with SIGKILL at three moments and starts it again each time:

1. right after the API acknowledged the adds and the stop (nothing
   downloaded yet);
2. once B has its metadata and a quarter of A is verified;
3. once 60% of A is verified;

and finally lets the download complete.  After every restart: each torrent
is back exactly once, in its wanted state (C paused, D stopped, B with its
metadata at once after run 2, which stored it); and each run downloads no
more than what was not verified before the kill (the final run: the bytes
left at the last kill, with less than a piece of slack for a block received
twice; the others: what they verified plus the requests in flight).  At the end the files match the seed's
bytes, A and B have completion times, C and D downloaded nothing, and a
SIGTERM stops the daemon with exit status 0.

Bounded: every wait has a deadline; every child is SIGKILLed in cleanup;
the tracker and the libtorrent session are closed.
"""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from typing import Any

import treq
from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from tests.integration import ltutil
from tests.integration.children import Child, spawn_child, wait_for_api_file
from txbittorrent.core.metainfo import parse
from txbittorrent.daemon.store import StateStore
from txbittorrent.storage.create import create_torrent
from txbittorrent.tracker.server import start_tracker

MiB = 1024 * 1024
PIECE = 256 * 1024
RATE = 2 * MiB
"""The seeder's upload limit to local peers, all torrents together (bytes/s)."""
WAIT = 60.0
"""Seconds any one wait may take."""
IN_FLIGHT = 2 * MiB
"""What a run may have received of pieces it had not verified when killed
(requests in flight; received blocks are lost with the process)."""
DUPLICATES = PIECE // 2
"""Slack for blocks a run might receive twice (a request timed out, then
answered); less than a piece, so a verified piece fetched again still fails."""


class DaemonRestartTests(TestCase):
    """Four torrents through three SIGKILLs and restarts, then to completion."""

    timeout = 300

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.base = os.path.abspath(self.mktemp())
        self.state = os.path.join(self.base, "state")
        self.downloads = os.path.join(self.base, "downloads")
        self.seed = os.path.join(self.base, "seed")
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self.url: str | None = None
        self.token = ""
        self.last: Any = None
        self.child: Child | None = None

    # -- fixtures ----------------------------------------------------------------------

    def content(self, name: str, files: dict[str, int], announce: str) -> bytes:
        """Random files under seed/<name> and their .torrent."""
        root = os.path.join(self.seed, name)
        for path, size in files.items():
            full = os.path.join(root, path)
            os.makedirs(os.path.dirname(full), exist_ok=True)
            with open(full, "wb") as f:
                f.write(os.urandom(size))
        return create_torrent(root, [announce], piece_length=PIECE)

    @inlineCallbacks
    def wait_until(self, predicate: Any, what: str) -> Generator[Any, Any, Any]:
        """Poll ``predicate`` (a Deferred or a value) until truthy, for at most WAIT s."""
        waited = 0.0
        while True:
            value = yield predicate()
            if value:
                return value
            if waited >= WAIT:
                err = "" if self.child is None else "\n".join(
                    line for line in bytes(self.child.err).decode(errors="replace").splitlines()
                    if '"GET /api' not in line)[-4000:]
                self.fail(f"timed out waiting for {what}; last seen: {self.last!r};"
                          f" the daemon's log ends with:\n{err}")
            yield task.deferLater(reactor, 0.1, lambda: None)
            waited += 0.1

    @inlineCallbacks
    def spawn(self) -> Generator[Any, Any, tuple[Child, Any]]:
        """Start ``txbittorrent serve`` on the state dir; return once its
        api.json names a new URL (the previous run's file stays after SIGKILL)."""
        child = self.child = spawn_child(self, [
            "-m", "txbittorrent", "serve", "--state-dir", self.state,
            "--download-dir", self.downloads, "--listen", "tcp:0:interface=127.0.0.1",
        ])
        info = yield wait_for_api_file(self, self.state, child, WAIT, old_url=self.url)
        self.url, self.token = info["url"], info["token"]
        return child, child.process

    @inlineCallbacks
    def sigkill(self, child: Child, process: Any) -> Generator[Any, Any, None]:
        process.signalProcess("KILL")
        yield child.ended

    @inlineCallbacks
    def call(self, method: str, path: str, *, json_body: Any = None, raw: bytes | None = None,
             ) -> Generator[Any, Any, Any]:
        headers = {b"Authorization": [b"Bearer " + self.token.encode()]}
        data: bytes | None = None
        if raw is not None:
            headers[b"Content-Type"] = [b"application/x-bittorrent"]
            data = raw
        elif json_body is not None:
            headers[b"Content-Type"] = [b"application/json"]
            data = json.dumps(json_body).encode()
        response = yield treq.request(method, f"{self.url}{path}", data=data, headers=headers,
                                      pool=self.pool)
        body = yield treq.content(response)
        self.assertLess(response.code, 300, f"{method} {path}: {response.code} {body!r}")
        return json.loads(body) if body else None

    @inlineCallbacks
    def torrents(self) -> Generator[Any, Any, dict[str, dict[str, Any]]]:
        """The daemon's torrents by info hash, each listed exactly once."""
        listing = yield self.call("GET", "/api/torrents")
        views = listing["torrents"]
        hashes = [view["info_hash"] for view in views]
        self.assertEqual(sorted(hashes), sorted(set(hashes)), "a torrent listed twice")
        self.last = [{k: v[k] for k in ("name", "state", "left", "downloaded", "peers")}
                     for v in views]
        return {view["info_hash"]: view for view in views}

    def verified(self, view: dict[str, Any]) -> int:
        return int(view["size"] - view["left"]) if view["has_metadata"] else 0

    @inlineCallbacks
    def check_restored(self, names: dict[str, str], *, metadata: bool
                       ) -> Generator[Any, Any, dict[str, dict[str, Any]]]:
        """Every torrent back exactly once, in its wanted state."""
        views = yield self.torrents()
        self.assertEqual(set(views), set(names.values()))
        if metadata:
            self.assertTrue(views[names["B"]]["has_metadata"], "B's metainfo was not stored")

        def settled() -> Any:
            d = self.torrents()
            return d.addCallback(lambda v: v if v[names["C"]]["state"] == "paused" else None)

        views = yield self.wait_until(settled, "C to settle paused")
        self.assertEqual(views[names["D"]]["state"], "stopped")
        for name in ("A", "B"):
            self.assertNotIn(views[names[name]]["state"], ("stopped", "paused"))
        return views

    # -- the test ----------------------------------------------------------------------

    @inlineCallbacks
    def test_sigkill_and_restart(self) -> Generator[Any, Any, None]:
        """Three SIGKILLs mid-download: every torrent back once in its wanted
        state, nothing verified downloaded again, the data complete and right."""
        tracker = yield start_tracker(reactor, "127.0.0.1", interval=600)  # outlives the test
        self.addCleanup(tracker.stop)
        url = tracker.announce_url
        raws = {
            "A": self.content("A", {"a/one.bin": 12 * MiB, "a/two.bin": 4 * MiB}, url),
            "B": self.content("B", {"b.bin": 4 * MiB}, url),
            "C": self.content("C", {"c.bin": MiB}, url),
            "D": self.content("D", {"d.bin": MiB}, url),
        }
        infos = {name: parse(raw) for name, raw in raws.items()}
        names = {name: info.info_hash.hex() for name, info in infos.items()}
        lt_session = ltutil.make_session(
            self, enable_outgoing_utp=False, enable_incoming_utp=False)
        ltutil.limit_local_peers(lt_session, upload=RATE)
        for name, raw in raws.items():
            handle = ltutil.add_torrent(lt_session, raw, self.seed)
            ltutil.wait_until_seeding(handle, WAIT)
        yield self.wait_until(
            lambda: all(tracker.state.peers(i.info_hash) for i in infos.values()),
            "the seeder's announces")

        # Run 1: add everything, stop D, and die at once.
        child, process = yield self.spawn()
        yield self.call("POST", "/api/torrents", raw=raws["A"])
        magnet = f"magnet:?xt=urn:btih:{names['B']}&tr={url}"
        yield self.call("POST", "/api/torrents", json_body={"source": magnet})
        yield self.call("POST", "/api/torrents?paused=1", raw=raws["C"])
        yield self.call("POST", "/api/torrents", raw=raws["D"])
        yield self.call("POST", f"/api/torrents/{names['D']}/stop")
        yield self.sigkill(child, process)

        # Run 2: until B has its metadata and A is a quarter verified.
        child, process = yield self.spawn()
        yield self.check_restored(names, metadata=False)
        size_a = infos["A"].total_length

        def progressed(fraction: float) -> Any:
            def check(views: dict[str, Any]) -> Any:
                a, b = views[names["A"]], views[names["B"]]
                if b["has_metadata"] and self.verified(a) >= fraction * size_a:
                    return views
                return None

            return lambda: self.torrents().addCallback(check)

        views = yield self.wait_until(progressed(0.25), "a quarter of A")
        yield self.sigkill(child, process)
        self.assertLess(self.verified(views[names["A"]]), size_a, "A finished: too fast")
        before = {name: self.verified(views[names[name]]) for name in ("A", "B")}
        self.assertLessEqual(views[names["A"]]["downloaded"], before["A"] + IN_FLIGHT)

        # Run 3: B's metadata is back at once; until 60% of A.
        child, process = yield self.spawn()
        yield self.check_restored(names, metadata=True)
        views = yield self.wait_until(progressed(0.6), "60% of A")
        yield self.sigkill(child, process)
        now = {name: self.verified(views[names[name]]) for name in ("A", "B")}
        self.assertLess(now["A"], size_a, "A finished: too fast")
        for name in ("A", "B"):
            self.assertGreaterEqual(now[name], before[name], f"{name} lost verified bytes")
            self.assertLessEqual(views[names[name]]["downloaded"],
                                 now[name] - before[name] + IN_FLIGHT, name)
        before = now

        # Run 4: to completion.  This run downloads exactly what was missing.
        child, process = yield self.spawn()
        yield self.check_restored(names, metadata=True)

        def complete() -> Any:
            def check(views: dict[str, Any]) -> Any:
                done = all(views[names[n]]["has_metadata"] and views[names[n]]["left"] == 0
                           for n in ("A", "B"))
                return views if done else None

            return self.torrents().addCallback(check)

        views = yield self.wait_until(complete, "A and B to complete")
        for name in ("A", "B"):
            view = views[names[name]]
            missing = infos[name].total_length - before[name]
            self.assertLessEqual(view["downloaded"], missing + DUPLICATES,
                                 f"{name} downloaded verified pieces again")
            self.assertIsNotNone(view["completed_at"])
        for name in ("C", "D"):
            self.assertEqual(views[names[name]]["downloaded"], 0)
        for name in ("A", "B"):
            for f in infos[name].files:  # paths begin with the torrent's name
                with open(os.path.join(self.seed, *f.path), "rb") as seeded, \
                        open(os.path.join(self.downloads, *f.path), "rb") as downloaded:
                    self.assertTrue(seeded.read() == downloaded.read(), f.path)

        process.signalProcess("TERM")
        timer = reactor.callLater(WAIT, process.signalProcess, "KILL")
        code = yield child.ended
        if timer.active():
            timer.cancel()
        self.assertEqual(code, 0, child.err.decode(errors="replace"))
        store = StateStore(os.path.join(self.state, "state.sqlite"))
        self.addCleanup(store.close)
        records = {r.info_hash: r for r in store.torrents()}
        self.assertEqual(set(records), set(names.values()))
        self.assertEqual(records[names["C"]].wanted, "paused")
        self.assertEqual(records[names["D"]].wanted, "stopped")
        self.assertIsNotNone(records[names["B"]].metainfo)
