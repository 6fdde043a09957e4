"""``txbittorrent download`` and ``txbittorrent seed`` as child processes,
against libtorrent on 127.0.0.1.

Each test runs ``python -m txbittorrent ...`` listening on 127.0.0.1 only and
given its peer with ``--peer``; libtorrent (in this process, with its own
threads) is the other side.  Every child is bounded in time and killed in
cleanup if still running; every session is closed; the data lives in the
test's temporary directory.  The children handle SIGINT as Python does by
default even when this process was started with it ignored (as a shell's
background job is), so the Ctrl-C test means what it says.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from typing import Any

from twisted.trial.unittest import FailTest, TestCase

from tests.integration import ltutil
from tests.integration.temproot import TempRootCase
from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, same_files

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOOPBACK = ltutil.LOOPBACK
KiB = 1024
MiB = 1024 * KiB

TREE = {
    "movie.bin": 2 * MiB + 12345,
    "extras/a.bin": 700 * KiB,
    "extras/deep/b.bin": 300 * KiB + 1,
    "extras/empty.txt": 0,
    "notes.txt": 5000,
}
"""In torrent order: 0 extras/a.bin, 1 extras/deep/b.bin, 2 extras/empty.txt,
3 movie.bin, 4 notes.txt."""

RUN_TIMEOUT = 30.0
"""Seconds any one child may take."""
STOP_TIMEOUT = 10.0
"""Seconds a child may take to exit after SIGINT."""

PROGRESS_LINE = re.compile(
    r"^ *\d+\.\d%  [\d.]+ \S+ / [\d.]+ \S+  down [\d.]+ \S+/s  up [\d.]+ \S+/s  "
    r"peers \d+  ETA \S+$",
    re.MULTILINE,
)


CHILD = (
    "import runpy, signal; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('txbittorrent', run_name='__main__')"
)
"""``python -m txbittorrent`` with Ctrl-C handled as in a terminal even when
this process was started with SIGINT ignored (set in the child itself:
``preexec_fn`` is unsafe beside libtorrent's threads)."""


class Command:
    """One ``python -m txbittorrent`` child, its stdout and stderr in files."""

    def __init__(self, case: TestCase, workdir: str, *argv: str) -> None:
        n = len(os.listdir(workdir))
        self.out_path = os.path.join(workdir, f"{n}.out")
        self.err_path = os.path.join(workdir, f"{n}.err")
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        with open(self.out_path, "wb") as out, open(self.err_path, "wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD, *argv],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
            )
        self.started = time.monotonic()
        case.addCleanup(self._reap)

    def _reap(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=30)

    def wait(self, timeout: float = RUN_TIMEOUT) -> int:
        """The exit status; fails the test (after killing the child) past ``timeout``."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise FailTest(f"still running after {timeout} s; stderr:\n{self.stderr()}"
                           f"\nstdout tail:\n{self.stdout()[-2000:]}") from None

    def interrupt(self) -> None:
        self.proc.send_signal(signal.SIGINT)

    def stdout(self) -> str:
        with open(self.out_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def stderr(self) -> str:
        with open(self.err_path, encoding="utf-8", errors="replace") as f:
            return f.read()

    def events(self) -> list[dict[str, Any]]:
        """The JSON events written so far (a line still being written is left out)."""
        text = self.stdout()
        complete = text[: text.rfind("\n") + 1]
        return [json.loads(line) for line in complete.splitlines()]

    def event(self, kind: str) -> dict[str, Any] | None:
        """The last event of this kind so far."""
        found = [e for e in self.events() if e["kind"] == kind]
        return found[-1] if found else None

    def describe(self) -> str:
        return f"exit={self.proc.poll()} stderr={self.stderr()[-1000:]!r}"


class CommandTestBase(TempRootCase):
    timeout = 120

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.make_root()
        self.logs = os.path.join(self.root, "logs")
        os.makedirs(self.logs)

    def make_torrent(self, sizes: dict[str, int] = TREE,
                     piece_length: int = 32 * KiB) -> tuple[str, bytes]:
        """Data under seed/tree, its torrent at t.torrent: (path, raw)."""
        make_files(self.path("seed", "tree"), sizes)
        raw = create_torrent(self.path("seed", "tree"), piece_length=piece_length)
        with open(self.path("t.torrent"), "wb") as f:
            f.write(raw)
        return self.path("t.torrent"), raw

    def lt_seeder(self, raw: bytes) -> str:
        """A libtorrent session seeding seed/tree; its HOST:PORT for --peer."""
        session = ltutil.make_session(self)
        handle = ltutil.add_torrent(session, raw, self.path("seed"))
        ltutil.wait_until_seeding(handle, 30)
        host, port = ltutil.endpoint(session)
        return f"{host}:{port}"

    def txbt(self, *argv: str) -> Command:
        return Command(self, self.logs, *argv)

    def download(self, torrent: str, directory: str, *extra: str) -> Command:
        return self.txbt("download", torrent, "-o", directory, "--interface", LOOPBACK, *extra)

    def assert_same(self, directory: str, names: list[str]) -> None:
        self.assertEqual(same_files(self.path("seed", "tree"), os.path.join(directory, "tree"),
                                    names), [])

    def assert_clean_exit(self, command: Command, code: int) -> None:
        status = command.wait()
        self.assertEqual(status, code, command.describe())
        self.assertNotIn("Traceback", command.stderr() + command.stdout())


class DownloadTests(CommandTestBase):
    """``download`` from a libtorrent seeder."""

    def test_download_text(self) -> None:
        """A multi-file torrent downloads byte for byte and exits 0, drawing the
        progress line; --port, --max-peers and --upload-limit are taken."""
        torrent, raw = self.make_torrent()
        peer = self.lt_seeder(raw)
        with socket.socket() as probe:
            probe.bind((LOOPBACK, 0))
            port = probe.getsockname()[1]
        out = self.path("out")
        command = self.download(torrent, out, "--peer", peer, "--port", str(port),
                                "--max-peers", "4", "--upload-limit", "1M")
        self.assert_clean_exit(command, 0)
        self.assert_same(out, list(TREE))
        self.assertTrue(os.path.exists(os.path.join(out, "tree", "extras", "empty.txt")))
        err = command.stderr()
        self.assertIn(f"listening on port {port}\n", err)
        self.assertIn("complete: tree verified in", err)
        lines = PROGRESS_LINE.findall(err)
        self.assertTrue(lines, err)
        self.assertTrue(lines[-1].startswith("100.0%  3.0 MiB / 3.0 MiB"), lines[-1])
        self.assertEqual(command.stdout(), "")
        resume = os.path.join(out, ".txbittorrent", parse(raw).info_hash_hex + ".resume")
        self.assertTrue(os.path.isfile(resume))

    def test_download_quiet(self) -> None:
        """--quiet: the same download, and not a word on stdout or stderr."""
        torrent, raw = self.make_torrent()
        peer = self.lt_seeder(raw)
        command = self.download(torrent, self.path("out"), "--peer", peer, "--quiet")
        self.assert_clean_exit(command, 0)
        self.assert_same(self.path("out"), list(TREE))
        self.assertEqual(command.stderr() + command.stdout(), "")

    def test_download_json_then_seed(self) -> None:
        """--json: one parseable event per line on stdout, "complete" among them;
        --seed-time keeps it running that long after completing, then exits 0."""
        torrent, raw = self.make_torrent()
        peer = self.lt_seeder(raw)
        command = self.download(torrent, self.path("out"), "--peer", peer, "--json",
                                "--seed-time", "1")
        self.assert_clean_exit(command, 0)
        self.assert_same(self.path("out"), list(TREE))
        self.assertEqual(command.stderr(), "")
        events = command.events()
        kinds = [e["kind"] for e in events]
        for kind in ("listening", "peer_connected", "complete", "progress"):
            self.assertIn(kind, kinds)
        self.assertTrue(all(isinstance(e["time"], float) for e in events))
        completed = kinds.index("complete")
        seeding = [i for i, e in enumerate(events) if e.get("text") == "seeding"]
        self.assertEqual(len(seeding), 1)
        self.assertGreater(seeding[0], completed)
        self.assertGreaterEqual(events[-1]["time"] - events[seeding[0]]["time"], 0.9)
        last = [e for e in events if e["kind"] == "progress"][-1]
        size = sum(TREE.values())
        self.assertEqual((last["bytes_done"], last["left"]), (size, 0))

    def test_files_selection(self) -> None:
        """--files 0,3: the other files are never created; the chosen ones are whole."""
        torrent, raw = self.make_torrent()
        peer = self.lt_seeder(raw)
        out = self.path("out")
        command = self.download(torrent, out, "--peer", peer, "--files", "0,3", "--json")
        self.assert_clean_exit(command, 0)
        self.assert_same(out, ["extras/a.bin", "movie.bin"])
        for name in ("extras/deep/b.bin", "extras/empty.txt", "notes.txt"):
            self.assertFalse(os.path.exists(os.path.join(out, "tree", *name.split("/"))), name)
        last = command.event("progress")
        assert last is not None
        self.assertEqual(last["left"], 0)
        self.assertLess(last["bytes_done"], sum(TREE.values()))


class InterruptTests(CommandTestBase):
    """Ctrl-C in the middle of a download, then a second run."""

    def test_sigint_then_resume(self) -> None:
        """SIGINT stops promptly (exit 130) keeping the resume record; a second run
        completes without downloading the verified pieces again."""
        piece = 64 * KiB
        sizes = {"big.bin": 3 * MiB}
        torrent, raw = self.make_torrent(sizes, piece_length=piece)
        peer = self.lt_seeder(raw)
        out = self.path("out")
        first = self.download(torrent, out, "--peer", peer, "--json",
                              "--download-limit", "512K")

        def some_pieces() -> bool:
            if first.proc.poll() is not None:
                raise FailTest(f"exited early: {first.describe()}")
            progress = first.event("progress")
            return progress is not None and progress["have_pieces"] >= 8

        ltutil.wait_for(some_pieces, RUN_TIMEOUT, "a few pieces", first.describe)
        first.interrupt()
        sent = time.monotonic()
        status = first.wait(STOP_TIMEOUT)
        self.assertLess(time.monotonic() - sent, STOP_TIMEOUT)
        self.assertEqual(status, 130, first.describe())
        self.assertNotIn("Traceback", first.stderr())
        stopped = first.event("stopped")
        assert stopped is not None, first.stdout()
        had = stopped["pieces"]
        self.assertGreaterEqual(had, 8)
        self.assertLess(had, 48, "the rate limit should have kept it from finishing")
        self.assertEqual(first.event("complete"), None)
        resume = os.path.join(out, ".txbittorrent", parse(raw).info_hash_hex + ".resume")
        self.assertTrue(os.path.isfile(resume))

        second = self.download(torrent, out, "--peer", peer, "--json")
        self.assert_clean_exit(second, 0)
        self.assert_same(out, list(sizes))
        texts = [e["text"] for e in second.events() if e["kind"] == "message"]
        self.assertIn(f"{had}/48 pieces verified, {48 - had} to download", texts)
        last = second.event("progress")
        assert last is not None
        self.assertEqual(last["left"], 0)
        self.assertLessEqual(last["downloaded"], (48 - had + 2) * piece)


class SeedTests(CommandTestBase):
    """``seed`` serving a libtorrent leecher."""

    def leech(self, raw: bytes, port: int) -> Any:
        # Straight to TCP: libtorrent tries uTP first and we speak only TCP,
        # which costs a connect time-out of several seconds.
        session = ltutil.make_session(self, enable_outgoing_utp=False)
        handle = ltutil.add_torrent(session, raw, self.path("lt"))
        handle.connect_peer((LOOPBACK, port))
        return handle

    def test_seed_until_interrupted(self) -> None:
        """seed serves libtorrent everything byte for byte, and runs until SIGINT."""
        torrent, raw = self.make_torrent()
        command = self.txbt("seed", torrent, "-d", self.path("seed"), "--interface", LOOPBACK,
                           "--json")
        ltutil.wait_for(lambda: command.event("listening") or command.proc.poll() is not None,
                        RUN_TIMEOUT, "the seeder to listen", command.describe)
        listening = command.event("listening")
        assert listening is not None, command.describe()
        handle = self.leech(raw, listening["port"])
        ltutil.wait_until_seeding(handle, RUN_TIMEOUT)
        ltutil.wait_for_files(self.path("seed", "tree"), self.path("lt", "tree"), TREE)
        self.assertIsNone(command.proc.poll(), "seed without a goal keeps running")
        command.interrupt()
        self.assertEqual(command.wait(STOP_TIMEOUT), 130, command.describe())
        stopped = command.event("stopped")
        assert stopped is not None
        self.assertGreaterEqual(stopped["uploaded"], sum(TREE.values()))
        self.assertNotIn("Traceback", command.stderr())

    def test_seed_time(self) -> None:
        """seed --seed-time: says its port on stderr, serves libtorrent, exits 0 by itself."""
        torrent, raw = self.make_torrent()
        command = self.txbt("seed", torrent, "-d", self.path("seed"), "--interface", LOOPBACK,
                           "--seed-time", "5")
        found: list[int] = []

        def port() -> bool:
            m = re.search(r"^listening on port (\d+)$", command.stderr(), re.MULTILINE)
            if m:
                found.append(int(m.group(1)))
            return bool(m) or command.proc.poll() is not None

        ltutil.wait_for(port, RUN_TIMEOUT, "the seeder to listen", command.describe)
        self.assertTrue(found, command.describe())
        handle = self.leech(raw, found[0])
        ltutil.wait_until_seeding(handle, RUN_TIMEOUT)
        self.assert_clean_exit(command, 0)
        self.assertGreaterEqual(time.monotonic() - command.started, 5)
        ltutil.wait_for_files(self.path("seed", "tree"), self.path("lt", "tree"), TREE)
        err = command.stderr()
        count = parse(raw).piece_count
        self.assertIn(f"{count}/{count} pieces verified\n", err)
        self.assertIn("seeding\n", err)


class BadInputTests(CommandTestBase):
    """Bad input: one line on stderr, exit 1 (2 for usage), never a traceback."""

    def assert_one_line(self, command: Command, code: int, fragment: str) -> None:
        self.assert_clean_exit(command, code)
        lines = command.stderr().splitlines()
        if code == 1:
            self.assertEqual(len(lines), 1, lines)
        self.assertIn("error:", lines[-1])
        self.assertIn(fragment, lines[-1])

    def test_errors(self) -> None:
        """A corrupt or missing .torrent, --files out of range, a missing data
        directory, a port in use, a bad option value."""
        torrent, raw = self.make_torrent({"a.bin": 1000, "b.bin": 10})
        corrupt = self.path("corrupt.torrent")
        with open(corrupt, "wb") as f:
            f.write(raw[: len(raw) // 2])
        out = self.path("out")
        with socket.socket() as taken:
            taken.bind((LOOPBACK, 0))
            taken.listen(1)
            busy = taken.getsockname()[1]
            commands = [
                (self.download(corrupt, out), 1, "corrupt.torrent"),
                (self.download(self.path("missing.torrent"), out), 1,
                 "missing.torrent: no such file"),
                (self.download(torrent, out, "--files", "2"), 1, "no file number 2"),
                (self.txbt("seed", torrent, "-d", self.path("nowhere")), 1,
                 "nowhere: no such directory"),
                (self.download(torrent, out, "--port", str(busy), "--quiet"), 1,
                 f"{LOOPBACK}:{busy}"),
                (self.download(torrent, out, "--download-limit", "fast"), 2,
                 "argument --download-limit"),
            ]
            for command, code, fragment in commands:
                self.assert_one_line(command, code, fragment)
