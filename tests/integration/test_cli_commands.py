"""The local/remote command set end to end: the real CLI (``python -m
txbittorrent ...`` child processes) against a real ``txbittorrent serve``
child on 127.0.0.1 port 0 (found through its api.json), then the same
commands in-process (``--offline``, and by discovery once the daemon has
gone) over the same state directory, comparing the outputs line for line.
Bounded in time; every child is killed in cleanup whatever happens."""

from __future__ import annotations

import json
import os
from collections.abc import Generator, Sequence
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration.children import Child, spawn_child, wait_for_api_file
from txbittorrent.daemon.store import StateStore
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files

CHILD_TIMEOUT = 30.0
"""Seconds any one child may run (the daemon: to write api.json, then to exit)."""
BARE = "0123456789abcdef0123456789abcdef01234567"
OTHER = "fedcba9876543210fedcba9876543210fedcba98"
DEAD_TRACKER = "http://127.0.0.1:9/announce"
CHILD = (
    "import runpy, signal; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('txbittorrent', run_name='__main__')"
)
"""``python -m txbittorrent`` with Ctrl-C as in a terminal, even when this
process was started with SIGINT ignored."""


NEEDED_ROUTES = {
    ("/api/torrents/<info_hash>/files", "POST"),
    ("/api/torrents/<info_hash>/trackers", "POST"),
    ("/api/torrents/<info_hash>/trackers", "DELETE"),
    ("/api/torrents/<info_hash>/limits", "POST"),
    ("/api/limits", "GET"),
    ("/api/limits", "POST"),
}
"""The API routes the commands need beyond the first set (helper A's)."""


def _missing_routes() -> str | None:
    from txbittorrent.web.apiviews import ROUTES

    have = {(r["path"], m) for r in ROUTES for m in r["methods"]}
    missing = sorted(f"{m} {p}" for p, m in NEEDED_ROUTES - have)
    return f"the API has no {', '.join(missing)} yet" if missing else None


class CommandsTests(TestCase):
    """Every command remote and in-process over the same state."""

    timeout = 180

    def setUp(self) -> None:
        self.base = os.path.abspath(self.mktemp())
        self.state = os.path.join(self.base, "state")
        self.data = os.path.join(self.base, "data")
        make_files(os.path.join(self.data, "show"),
                   {"a.bin": 100_000, "sub/b.txt": 3000, "c.bin": 40_000}, seed=3)
        raw = create_torrent(os.path.join(self.data, "show"), [DEAD_TRACKER],
                             piece_length=16 * 1024)
        self.torrent_file = os.path.join(self.base, "show.torrent")
        with open(self.torrent_file, "wb") as f:
            f.write(raw)

    def spawn(self, argv: Sequence[str]) -> Child:
        return spawn_child(self, ["-c", CHILD, *argv], path=self.base,
                           drop_env=["TXBITTORRENT_TOKEN"])

    @inlineCallbacks
    def cli(self, *argv: str, code: int = 0) -> Generator[Any, Any, str]:
        """Run ``txbittorrent ARGV --state-dir STATE``; its stdout."""
        child = self.spawn([*argv, "--state-dir", self.state])
        timer = reactor.callLater(CHILD_TIMEOUT, child.kill)
        status = yield child.ended
        if timer.active():
            timer.cancel()
        err = child.err.decode(errors="replace")
        self.assertEqual(status, code, f"{argv}: {err}")
        self.last_err = err
        return bytes(child.out).decode()

    @inlineCallbacks
    def wait_for(self, child: Child, needle: bytes) -> Generator[Any, Any, None]:
        """Until ``needle`` is in the child's output (at most CHILD_TIMEOUT)."""
        waited = 0.0
        while needle not in child.out:
            self.assertTrue(child.running, child.err.decode(errors="replace"))
            self.assertLess(waited, CHILD_TIMEOUT, f"no {needle!r} from the child")
            yield task.deferLater(reactor, 0.1, lambda: None)
            waited += 0.1

    @inlineCallbacks
    def serve(self) -> Generator[Any, Any, Child]:
        api_file = os.path.join(self.state, "api.json")
        if os.path.exists(api_file):
            os.remove(api_file)
        child = self.spawn(["serve", "--state-dir", self.state,
                            "--listen", "tcp:0:interface=127.0.0.1"])
        yield wait_for_api_file(self, self.state, child, CHILD_TIMEOUT)
        return child

    @inlineCallbacks
    def stop(self, daemon: Child) -> Generator[Any, Any, None]:
        daemon.process.signalProcess("TERM")
        timer = reactor.callLater(CHILD_TIMEOUT, daemon.kill)
        status = yield daemon.ended
        if timer.active():
            timer.cancel()
        self.assertEqual(status, 0, daemon.err.decode(errors="replace"))

    @inlineCallbacks
    def outputs(self, ih: str, *mode: str) -> Generator[Any, Any, dict[str, str]]:
        """The read-only commands' outputs, human and JSON."""
        out = {}
        for argv in (["list"], ["list", "--label", "show"], ["status", ih[:6]],
                     ["status", BARE], ["files", ih], ["peers", ih], ["limits"],
                     ["limits", ih], ["trackers", ih], ["trackers", BARE]):
            for json_flag in ([], ["--json"]):
                key = " ".join(argv + json_flag)
                out[key] = yield self.cli(*argv, *json_flag, *mode)
        return out

    @inlineCallbacks
    def test_same_output_remote_and_local(self) -> Generator[Any, Any, None]:
        """add/pause/limits/files/trackers through the daemon; then every
        read-only command prints the same through the daemon, with --offline,
        and by discovery once the daemon has gone; a change made offline is
        there when the daemon comes back."""
        missing = _missing_routes()
        if missing is not None:
            raise SkipTest(missing)
        daemon = yield self.serve()
        added = yield self.cli("add", self.torrent_file, "--save-path", self.data,
                               "--label", "show", "--json")
        view = json.loads(added)
        ih = view["info_hash"]
        self.assertEqual((view["name"], view["labels"]), ("show", ["show"]))
        line = yield self.cli("add", BARE, "--paused")
        self.assertEqual(line, f"added {BARE}  {BARE}\n")
        yield self.cli("add", BARE, code=1)
        self.assertIn("txbittorrent add: error: ", self.last_err)
        yield self.cli("limits", ih[:8], "--down", "200K")
        yield self.cli("limits", "--up", "1M")
        yield self.cli("files", ih, "--set", "2=0")
        trackers = yield self.cli("trackers", BARE, "--add", DEAD_TRACKER, "--json")
        self.assertEqual([json.loads(t)["url"] for t in trackers.splitlines()], [DEAD_TRACKER])
        trackers = yield self.cli("trackers", BARE, "--remove", DEAD_TRACKER, "--json")
        self.assertEqual(trackers, "")
        yield self.cli("trackers", BARE, "--add", DEAD_TRACKER + "?again", "--tier", "1")
        yield self.cli("pause", ih[:5])
        yield self._wait_seeded(ih)

        remote = yield self.outputs(ih)
        status = json.loads(remote["status " + ih[:6] + " --json"])
        self.assertEqual((status["state"], status["left"], status["download_limit"]),
                         ("paused", 0, 200 * 1024))
        self.assertIn("PRIO", remote[f"files {ih}"])
        self.assertIn("skip", remote[f"files {ih}"])
        yield self.stop(daemon)

        offline = yield self.outputs(ih, "--offline")
        self._same(remote, offline)
        discovered = yield self.cli("list")  # api.json names a dead port: in-process
        self.assertEqual(discovered, remote["list"])

        stopped = yield self.cli("stop", BARE, "--offline")
        self.assertEqual(stopped, f"{BARE}  stopped  {BARE}\n")
        daemon = yield self.serve()
        status = yield self.cli("status", BARE, "--json")
        self.assertEqual(json.loads(status)["state"], "stopped")
        removed = yield self.cli("remove", BARE[:4])
        self.assertEqual(removed, f"removed {BARE}\n")
        yield self.cli("status", BARE, code=1)
        self.assertEqual(self.last_err.strip().splitlines()[-1],
                         f"txbittorrent status: error: no torrent {BARE}")
        yield self.stop(daemon)

    @inlineCallbacks
    def _wait_seeded(self, ih: str) -> Generator[Any, Any, None]:
        """Until the daemon's hash check of the added data is done."""
        for _ in range(100):
            status = yield self.cli("status", ih, "--json")
            if json.loads(status)["state"] not in ("checking",) and \
                    json.loads(status)["left"] == 0:
                return
            yield task.deferLater(reactor, 0.2, lambda: None)
        self.fail("the added torrent never finished its check")

    def _same(self, remote: dict[str, str], local: dict[str, str]) -> None:
        for key, text in remote.items():
            if key.startswith("trackers"):
                text, other = _without_times(key, text), _without_times(key, local[key])
            else:
                other = local[key]
            self.assertEqual(other, text, key)

    @inlineCallbacks
    def test_events_follow(self) -> Generator[Any, Any, None]:
        """events prints the daemon's events as JSON lines until Ctrl-C (exit 130)."""
        daemon = yield self.serve()
        yield self.cli("add", OTHER, "--paused")
        follower = self.spawn(["events", "--json", "--state-dir", self.state])
        yield self.wait_for(follower, b'"kind":"progress"')  # it follows now
        yield self.cli("add", BARE, "--paused")
        yield self.wait_for(follower, b"torrent_added")
        follower.process.signalProcess("INT")
        timer = reactor.callLater(CHILD_TIMEOUT, follower.kill)
        status = yield follower.ended
        if timer.active():
            timer.cancel()
        events = [json.loads(line) for line in follower.out.decode().splitlines()]
        added = [e for e in events if e["kind"] == "torrent_added"]
        self.assertEqual([e["info_hash"] for e in added], [BARE], follower.err.decode())
        self.assertIsInstance(added[0]["event_id"], int)
        self.assertEqual(status, 130)
        yield self.stop(daemon)

    @inlineCallbacks
    def test_events_follow_a_restarted_daemon(self) -> Generator[Any, Any, None]:
        """events keeps following when the daemon stops and comes back on
        another port: it says it is reconnecting and prints the new daemon's
        events."""
        daemon = yield self.serve()
        yield self.cli("add", OTHER, "--paused")
        follower = self.spawn(["events", "--json", "--state-dir", self.state])
        yield self.wait_for(follower, b'"kind":"progress"')  # it follows the daemon
        yield self.stop(daemon)
        daemon = yield self.serve()
        yield self.cli("add", BARE, "--paused")
        yield self.wait_for(follower, b"torrent_added")
        follower.process.signalProcess("INT")
        timer = reactor.callLater(CHILD_TIMEOUT, follower.kill)
        yield follower.ended
        if timer.active():
            timer.cancel()
        err = follower.err.decode(errors="replace")
        self.assertIn("reconnecting", err)
        kinds = [json.loads(line)["kind"] for line in follower.out.decode().splitlines()]
        self.assertIn("torrent_added", kinds, err)
        yield self.stop(daemon)

    @inlineCallbacks
    def test_stopped_torrent_same_both_ways(self) -> Generator[Any, Any, None]:
        """A torrent with all its data, stopped through the daemon, shows the
        same progress through the daemon and in-process."""
        daemon = yield self.serve()
        added = yield self.cli("add", self.torrent_file, "--save-path", self.data, "--json")
        ih = json.loads(added)["info_hash"]
        yield self._wait_seeded(ih)
        yield self.cli("stop", ih)
        remote = yield self.cli("status", ih)
        yield self.stop(daemon)
        local = yield self.cli("status", ih, "--offline")
        self.assertEqual(local, remote)

    @inlineCallbacks
    def test_offline_interrupted(self) -> Generator[Any, Any, None]:
        """Ctrl-C on an in-process events follow exits 130 without a traceback
        after stopping the daemon it ran cleanly (the resume record is written
        again); --api to a port nobody listens on is a one-line error."""
        added = yield self.cli("add", self.torrent_file, "--save-path", self.data, "--offline",
                               "--json")
        resume = os.path.join(self.state, "resume", json.loads(added)["info_hash"] + ".resume")
        self.assertTrue(os.path.exists(resume))  # written when the add's daemon stopped
        os.remove(resume)
        follower = self.spawn(["events", "--offline", "--state-dir", self.state])
        for _ in range(100):
            if b"progress" in follower.out or not follower.running:
                break
            yield task.deferLater(reactor, 0.1, lambda: None)
        follower.process.signalProcess("INT")
        timer = reactor.callLater(CHILD_TIMEOUT, follower.kill)
        status = yield follower.ended
        if timer.active():
            timer.cancel()
        err = follower.err.decode(errors="replace")
        self.assertEqual(status, 130, err)
        self.assertNotIn("Traceback", err)
        self.assertNotIn("Exception", err)
        self.assertTrue(os.path.exists(resume), "no resume record written on Ctrl-C")
        store = StateStore(os.path.join(self.state, "state.sqlite"))
        try:  # a clean stop revokes the in-process run's token
            self.assertEqual([t.label for t in store.tokens() if t.label == "in-process"], [])
        finally:
            store.close()
        listed = yield self.cli("list", "--offline", "--json")
        self.assertEqual(json.loads(listed)["name"], "show")
        yield self.cli("list", "--api", "http://127.0.0.1:9", code=1)
        self.assertEqual(self.last_err, "txbittorrent list: error: cannot reach the daemon at"
                                        " http://127.0.0.1:9: connection refused\n")


def _without_times(key: str, text: str) -> str:
    """Tracker output without what depends on when it was asked."""
    if "--json" not in key:
        lines = text.splitlines()
        cut = lines[0].index("STATUS") if lines else 0
        return "\n".join(line[:cut].rstrip() for line in lines)
    lines = []
    for line in text.splitlines():
        value = json.loads(line)
        lines.append(json.dumps({"url": value["url"], "tier": value["tier"]}))
    return "\n".join(lines)
