"""The engine examples run and do what they say: examples/download.py and
examples/logging_subclass.py, each as a child process downloading from a
libtorrent seeder on 127.0.0.1 (the logging one also from an embedded tracker
in this process, beside a tracker that refuses connections).

Every child is bounded in time and killed in cleanup if still running; the
libtorrent session and the tracker are stopped in cleanup too.
"""

from __future__ import annotations

import os
import socket
import sys
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.error import ProcessDone, ProcessTerminated
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import FailTest, TestCase

from tests.integration import ltutil
from tests.integration.temproot import TempRootCase
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, same_files
from txbittorrent.tracker.server import start_tracker

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOOPBACK = ltutil.LOOPBACK
KiB = 1024
MiB = 1024 * KiB
SCRIPT_TIMEOUT = 45.0
"""Seconds an example may run."""

TREE = {
    "video.bin": 1 * MiB + 777,
    "docs/readme.txt": 3000,
    "docs/deep/data.bin": 200 * KiB,
}


class _Collect(ProcessProtocol):
    """Gathers a child's output; ``ended`` fires with (exit code, stdout, stderr)."""

    def __init__(self) -> None:
        self.out: list[bytes] = []
        self.err: list[bytes] = []
        self.ended: Deferred[tuple[int, str, str]] = Deferred()

    def outReceived(self, data: bytes) -> None:
        self.out.append(data)

    def errReceived(self, data: bytes) -> None:
        self.err.append(data)

    def processEnded(self, reason: Failure) -> None:
        code = 0
        if reason.check(ProcessTerminated):
            value = reason.value
            code = value.exitCode if value.exitCode is not None else -(value.signal or 1)
        elif not reason.check(ProcessDone):  # pragma: no cover
            code = -1
        self.ended.callback((code, b"".join(self.out).decode(), b"".join(self.err).decode()))


def run_example(case: TestCase, name: str, *args: str) -> Deferred[tuple[int, str, str]]:
    """Run examples/``name`` on the reactor; fires with (exit code, stdout, stderr).

    Fails the test if it runs past SCRIPT_TIMEOUT; killed in cleanup if alive."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proto = _Collect()
    process = reactor.spawnProcess(
        proto, sys.executable, [sys.executable, os.path.join(ROOT, "examples", name), *args],
        env=env, path=ROOT)
    ended = proto.ended
    timer = reactor.callLater(SCRIPT_TIMEOUT, process.signalProcess, "KILL")

    def cleanup() -> Deferred[Any] | None:
        if timer.active():
            timer.cancel()
        if ended.called:
            return None
        process.signalProcess("KILL")
        return ended

    case.addCleanup(cleanup)
    result: Deferred[tuple[int, str, str]] = Deferred()

    def done(outcome: tuple[int, str, str]) -> tuple[int, str, str]:
        if not timer.active():
            result.errback(FailTest(f"{name} ran past {SCRIPT_TIMEOUT} s: {outcome}"))
        else:
            timer.cancel()
            result.callback(outcome)
        return outcome

    ended.addCallback(done)
    return result


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (connections are refused)."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class ExampleTestBase(TempRootCase):
    timeout = 90

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.make_root()

    def make_torrent(self, trackers: list[str] | None = None) -> tuple[str, bytes]:
        make_files(self.path("seed", "tree"), TREE)
        raw = create_torrent(self.path("seed", "tree"), piece_length=32 * KiB,
                             trackers=trackers or [])
        with open(self.path("t.torrent"), "wb") as f:
            f.write(raw)
        return self.path("t.torrent"), raw

    def lt_seeder(self, raw: bytes) -> str:
        session = ltutil.make_session(self)
        handle = ltutil.add_torrent(session, raw, self.path("seed"))
        ltutil.wait_until_seeding(handle, 30)
        host, port = ltutil.endpoint(session)
        return f"{host}:{port}"

    def assert_tree(self, directory: str) -> None:
        self.assertEqual(same_files(self.path("seed", "tree"), os.path.join(directory, "tree"),
                                    list(TREE)), [])


class DownloadExampleTests(ExampleTestBase):
    """examples/download.py."""

    @inlineCallbacks
    def test_download(self) -> Any:
        """Downloads from libtorrent, printing progress, and exits 0 when complete."""
        torrent, raw = self.make_torrent()
        peer = self.lt_seeder(raw)
        out = self.path("out")
        code, stdout, stderr = yield run_example(
            self, "download.py", torrent, out, "--peer", peer, "--interface", LOOPBACK)
        self.assertEqual(code, 0, stderr)
        self.assert_tree(out)
        lines = stdout.splitlines()
        self.assertTrue(lines[0].startswith("tree: 0/"), lines[0])
        size = sum(TREE.values())
        self.assertIn(f"100.0%  {size}/{size} bytes", stdout)
        self.assertTrue(lines[-1].startswith(f"complete: tree in {out}"), lines[-1])

    @inlineCallbacks
    def test_already_complete(self) -> Any:
        """Run on a directory that holds the data, it checks and exits at once."""
        torrent, _ = self.make_torrent()
        code, stdout, stderr = yield run_example(
            self, "download.py", torrent, self.path("seed"), "--interface", LOOPBACK)
        self.assertEqual(code, 0, stderr)
        self.assertIn("complete: tree", stdout)
        self.assertIn("0 bytes downloaded", stdout)


class LoggingExampleTests(ExampleTestBase):
    """examples/logging_subclass.py."""

    @inlineCallbacks
    def test_logs_every_event(self) -> Any:
        """Logs its peer id, tracker error and reply, peers, pieces, state changes
        and completion while downloading from libtorrent (then seeding a moment,
        so that the trackers have answered before it stops)."""
        tracker = yield start_tracker(reactor, LOOPBACK, interval=60)
        dead = f"http://{LOOPBACK}:{closed_port()}/announce"
        try:
            torrent, raw = self.make_torrent(trackers=[dead, tracker.announce_url])
            peer = self.lt_seeder(raw)
        except BaseException:
            yield tracker.stop()
            raise
        # Cleanups run last-in first-out: the tracker stops before libtorrent's
        # session closes, so libtorrent's "stopped" announce is refused at once
        # instead of waiting for a reactor that cleanup keeps from turning.
        self.addCleanup(tracker.stop)
        out = self.path("out")
        code, stdout, stderr = yield run_example(
            self, "logging_subclass.py", torrent, out, "--peer", peer,
            "--interface", LOOPBACK, "--seed-time", "1.5")
        self.assertEqual(code, 0, stderr + stdout)
        self.assert_tree(out)
        self.assertNotIn("Traceback", stdout + stderr)
        for fragment in (
            "tree: our peer id is -XL0001-",
            "tree: state stopped -> checking",
            f"tree: tracker error from {dead}: ",
            f"tree: tracker reply from {tracker.announce_url}: ",
            "tree: peer connected: 127.0.0.1:",
            "tree: piece 0 verified",
            "tree: completed: every wanted piece is verified",
            "tree: peer lost: 127.0.0.1:",
            "tree: state seeding -> stopped",
        ):
            self.assertIn(fragment, stdout)
        # The peer id is made once, and what it logs is what went out.
        self.assertEqual(stdout.count("our peer id is"), 1)
