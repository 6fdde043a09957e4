"""``txbittorrent download`` and ``info`` given a magnet link, a bare info
hash or a URL, as child processes on 127.0.0.1.

A libtorrent seeder (in this process, with its own threads) holds the data
and sends the metadata (BEP 9); a twisted.web server in this process serves
the .torrent for the URL tests, so the reactor runs while each child does:
children are spawned with ``reactor.spawnProcess``, bounded in time, and
killed in cleanup if still running.  Every transfer is compared byte for
byte.  The magnet tests need our ut_metadata plug-in (swarm.metadata).
"""

from __future__ import annotations

import json
import os
import socket
import sys
from typing import Any
from urllib.parse import quote

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import FailTest, TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.static import Data

from tests.integration import ltutil
from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, same_files, wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LOOPBACK = ltutil.LOOPBACK
KiB = 1024
MiB = 1024 * KiB

TREE = {
    "movie.bin": 1 * MiB + 12345,
    "extras/a.bin": 300 * KiB,
    "extras/empty.txt": 0,
    "notes.txt": 5000,
}
"""In torrent order: 0 extras/a.bin, 1 extras/empty.txt, 2 movie.bin, 3 notes.txt."""

RUN_TIMEOUT = 45.0
"""Seconds any one child may take."""
CHILD = (
    "import runpy, signal; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('txbittorrent', run_name='__main__')"
)
"""``python -m txbittorrent`` with Ctrl-C handled as in a terminal even when
this process was started with SIGINT ignored (as a background job is)."""
DEAD_TRACKER = "http://127.0.0.1:9/announce"
"""A tracker URL that refuses connections (the discard port, never served)."""


class Child(ProcessProtocol):
    """One ``python -m txbittorrent`` child: its output and exit status."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self.ended: Deferred[int | None] = Deferred()
        self.running = True
        self.code: int | None = None
        """The exit status (None if killed by a signal)."""

    process: Any = None

    def kill(self) -> None:
        if self.running and self.process is not None:
            self.process.signalProcess("KILL")

    def interrupt(self) -> None:
        self.process.signalProcess("INT")

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        self.code = getattr(reason.value, "exitCode", None)
        self.ended.callback(self.code)

    def stdout(self) -> str:
        return self.out.decode("utf-8", "replace")

    def stderr(self) -> str:
        return self.err.decode("utf-8", "replace")

    def events(self) -> list[dict[str, Any]]:
        """The JSON events written so far (a line still being written is left out)."""
        text = self.stdout()
        return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]

    def event(self, kind: str) -> dict[str, Any] | None:
        """The last event of this kind so far."""
        found = [e for e in self.events() if e["event"] == kind]
        return found[-1] if found else None


class CLITestBase(TestCase):
    timeout = 120

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    def make_torrent(self, sizes: dict[str, int] = TREE,
                     piece_length: int = 16 * KiB) -> bytes:
        """Data under seed/tree; its .torrent (v1) as bytes."""
        make_files(self.path("seed", "tree"), sizes)
        return create_torrent(self.path("seed", "tree"), piece_length=piece_length)

    def lt_seeder(self, raw: bytes) -> tuple[str, int]:
        """A libtorrent session seeding seed/tree; its address."""
        session = ltutil.make_session(self)
        handle = ltutil.add_torrent(session, raw, self.path("seed"))
        ltutil.wait_until_seeding(handle, 30)
        return ltutil.endpoint(session)

    def magnet(self, raw: bytes, peer: tuple[str, int] | None, *extra: str) -> str:
        uri = f"magnet:?xt=urn:btih:{parse(raw).info_hash_hex}"
        if peer is not None:
            uri += f"&x.pe={peer[0]}:{peer[1]}"
        return uri + "".join(f"&{e}" for e in extra)

    def spawn(self, *argv: str) -> Child:
        """Start ``python -m txbittorrent ARGV`` (killed in cleanup if still running)."""
        child = Child()
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        child.process = reactor.spawnProcess(  # type: ignore[attr-defined]
            child, sys.executable, [sys.executable, "-c", CHILD, *argv], env=env, path=ROOT)
        self.addCleanup(lambda: (child.kill(), child.ended)[1])
        return child

    async def finish(self, child: Child, timeout: float = RUN_TIMEOUT) -> Child:
        """Wait for ``child`` to exit; fail (killing it) past ``timeout``."""
        deadline = reactor.callLater(timeout, child.kill)  # type: ignore[attr-defined]
        await child.ended
        if not deadline.active():
            raise FailTest(f"still running after {timeout} s; stderr:\n{child.stderr()}"
                           f"\nstdout tail:\n{child.stdout()[-2000:]}")
        deadline.cancel()
        return child

    async def txbt(self, *argv: str, timeout: float = RUN_TIMEOUT) -> Child:
        """Run ``python -m txbittorrent ARGV`` to its end."""
        return await self.finish(self.spawn(*argv), timeout)

    def assert_exit(self, child: Child, code: int) -> None:
        self.assertEqual(child.code, code, f"stderr={child.stderr()[-2000:]!r}")
        self.assertNotIn("Traceback", child.stderr() + child.stdout())

    def assert_one_line(self, child: Child, *fragments: str) -> None:
        """Exit 1 with one error line on stderr holding every fragment."""
        self.assert_exit(child, 1)
        lines = child.stderr().splitlines()
        self.assertEqual(len(lines), 1, lines)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def assert_same(self, directory: str, names: list[str]) -> None:
        self.assertEqual(same_files(self.path("seed", "tree"), os.path.join(directory, "tree"),
                                    names), [])


class MagnetDownloadTests(CLITestBase):
    """``download MAGNET`` with only ``x.pe`` pointing at a libtorrent seeder."""

    async def test_json_and_save_torrent(self) -> None:
        """A magnet with x.pe and one dead tracker: the metadata from
        libtorrent, then every byte; --json says metadata_received before any
        progress; --save-torrent writes the metadata with the magnet's tracker."""
        raw = self.make_torrent()
        peer = self.lt_seeder(raw)
        uri = self.magnet(raw, peer, "dn=fromlink", "tr=" + quote(DEAD_TRACKER, safe=""))
        out, saved = self.path("out"), self.path("saved.torrent")
        child = await self.txbt("download", uri, "-o", out, "--interface", LOOPBACK,
                                "--json", "--save-torrent", saved)
        self.assert_exit(child, 0)
        self.assert_same(out, list(TREE))
        self.assertEqual(child.stderr(), "")
        events = child.events()
        kinds = [e["event"] for e in events]
        meta = events[kinds.index("metadata_received")]
        m = parse(raw)
        self.assertEqual((meta["name"], meta["pieces"], meta["size"]),
                         ("tree", m.piece_count, m.total_length))
        self.assertLess(kinds.index("listening"), kinds.index("metadata_received"))
        if "progress" in kinds:
            self.assertLess(kinds.index("metadata_received"), kinds.index("progress"))
        self.assertIn("completed", kinds)
        progress = [e for e in events if e["event"] == "progress"]
        self.assertEqual((progress[-1]["size"], progress[-1]["left"]), (m.total_length, 0))
        with open(saved, "rb") as f:
            again = parse(f.read())
        self.assertEqual(again.info_hash, m.info_hash)
        self.assertEqual(again.info_bytes, m.info_bytes)
        self.assertEqual(again.trackers, ((DEAD_TRACKER,),))
        self.assertIn(f"saved {saved}", [e.get("text") for e in events])

    async def test_text_files_and_bare_hash(self) -> None:
        """A bare info hash plus --peer, --files 0,2, text mode: the messages,
        then only the chosen files, whole."""
        raw = self.make_torrent()
        host, port = self.lt_seeder(raw)
        out = self.path("out")
        child = await self.txbt("download", parse(raw).info_hash_hex, "-o", out,
                                "--interface", LOOPBACK, "--peer", f"{host}:{port}",
                                "--files", "0,2", "--no-dht")
        self.assert_exit(child, 0)
        self.assert_same(out, ["extras/a.bin", "movie.bin"])
        for name in ("extras/empty.txt", "notes.txt"):
            self.assertFalse(os.path.exists(os.path.join(out, "tree", *name.split("/"))))
        err = child.stderr()
        self.assertIn(f"{parse(raw).info_hash_hex}: fetching metadata", err)
        self.assertIn("metadata received: tree, ", err)
        self.assertIn("complete: tree verified in", err)


class MagnetInterruptTests(CLITestBase):
    """Ctrl-C in the middle of a magnet download, then the same magnet again."""

    async def test_sigint_then_resume(self) -> None:
        """The second run starts from the metadata the first one kept, counts
        the verified pieces and fetches only the rest."""
        piece = 64 * KiB
        raw = self.make_torrent({"big.bin": 3 * MiB}, piece_length=piece)
        uri = self.magnet(raw, self.lt_seeder(raw))
        out = self.path("out")
        first = self.spawn("download", uri, "-o", out, "--interface", LOOPBACK, "--json",
                           "--download-limit", "512K")

        def some_pieces() -> bool:
            if not first.running:
                raise FailTest(f"exited early: {first.stderr()}")
            progress = first.event("progress")
            return progress is not None and progress["pieces"] >= 8

        await wait_until(some_pieces, RUN_TIMEOUT, "a few pieces")
        first.interrupt()
        await self.finish(first, 10)
        self.assert_exit(first, 130)
        stopped = first.event("stopped")
        assert stopped is not None, first.stdout()
        had = stopped["pieces"]
        self.assertTrue(8 <= had < 48, had)
        kept = os.path.join(out, ".txbittorrent", parse(raw).info_hash_hex + ".torrent")
        with open(kept, "rb") as f:
            self.assertEqual(parse(f.read()).info_hash, parse(raw).info_hash)

        second = await self.txbt("download", uri, "-o", out, "--interface", LOOPBACK,
                                 "--json")
        self.assert_exit(second, 0)
        self.assertEqual(same_files(self.path("seed", "tree"), os.path.join(out, "tree"),
                                    ["big.bin"]), [])
        texts = [e["text"] for e in second.events() if e["event"] == "message"]
        self.assertIn(f"{had}/48 pieces verified, {48 - had} to download", texts)
        self.assertIsNone(second.event("metadata_received"))
        last = second.event("progress")
        assert last is not None
        self.assertLessEqual(last["downloaded"], (48 - had + 2) * piece)


class InfoFetchTests(CLITestBase):
    """``info MAGNET --fetch`` against a libtorrent seeder."""

    async def test_file_list(self) -> None:
        """The real file list, as text and as JSON."""
        raw = self.make_torrent()
        peer = self.lt_seeder(raw)
        uri = self.magnet(raw, peer)
        child = await self.txbt("info", uri, "--fetch", "--interface", LOOPBACK,
                                "--timeout", "30")
        self.assert_exit(child, 0)
        text = child.stdout()
        self.assertIn("files (4):\n", text)
        for name, size in TREE.items():
            self.assertIn(f"  {size:>15}  tree/{name}\n", text)
        child = await self.txbt("info", uri, "--fetch", "--interface", LOOPBACK, "--json")
        self.assert_exit(child, 0)
        facts = json.loads(child.stdout())
        self.assertEqual(sorted((f["path"], f["length"]) for f in facts["files"]),
                         sorted((f"tree/{n}", s) for n, s in TREE.items()))
        self.assertEqual(facts["info_hash"], parse(raw).info_hash_hex)

    async def test_timeout(self) -> None:
        """No peer answers: one line naming the hash, exit 1, within the timeout."""
        with socket.socket() as closed:
            closed.bind((LOOPBACK, 0))
            port = closed.getsockname()[1]
        raw = create_torrent(self._one_file(), piece_length=16 * KiB)
        child = await self.txbt("info", self.magnet(raw, (LOOPBACK, port)), "--fetch",
                                "--interface", LOOPBACK, "--timeout", "2", "--no-dht",
                                timeout=20)
        self.assert_one_line(child, "txbittorrent info: error: no metadata for",
                             "after 2 s (0 peers connected)")

    def _one_file(self) -> str:
        make_files(self.path("lone"), {"x.bin": 1000})
        return self.path("lone", "x.bin")


class Torrents(Resource):
    """/t.torrent, /redirect (to it), /page.html, /huge (a Content-Length over
    the limit, then silence) and 404 for anything else."""

    def __init__(self, raw: bytes) -> None:
        super().__init__()
        self.putChild(b"t.torrent", Data(raw, "application/x-bittorrent"))
        self.putChild(b"page.html", Data(b"<html><body>not a torrent</body></html>",
                                         "text/html"))
        self.putChild(b"redirect", _Redirect(b"/t.torrent"))
        self.putChild(b"huge", _Huge())


class _Redirect(Resource):
    isLeaf = True

    def __init__(self, to: bytes) -> None:
        super().__init__()
        self.to = to

    def render_GET(self, request: Request) -> bytes:
        request.redirect(self.to)
        return b""


class _Huge(Resource):
    isLeaf = True

    def render_GET(self, request: Request) -> Any:
        request.setHeader(b"content-length", str(100 * MiB).encode())
        request.write(b"d8:announce")
        return NOT_DONE_YET


class URLTests(CLITestBase):
    """TORRENT_ID as an http URL served by twisted.web on 127.0.0.1."""

    def serve(self, raw: bytes) -> str:
        port = reactor.listenTCP(0, Site(Torrents(raw)),  # type: ignore[attr-defined]
                                 interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        return f"http://{LOOPBACK}:{port.getHost().port}"

    async def test_download_and_info(self) -> None:
        """download URL completes byte for byte; info URL (through a redirect)
        shows the torrent's files."""
        raw = self.make_torrent()
        base = self.serve(raw)
        host, port = self.lt_seeder(raw)
        out = self.path("out")
        child = await self.txbt("download", f"{base}/t.torrent", "-o", out, "--interface",
                                LOOPBACK, "--peer", f"{host}:{port}")
        self.assert_exit(child, 0)
        self.assert_same(out, list(TREE))
        self.assertTrue(child.stderr().startswith("tree: checking existing data in "))
        child = await self.txbt("info", f"{base}/redirect", "--json")
        self.assert_exit(child, 0)
        self.assertEqual(json.loads(child.stdout())["info_hash"], parse(raw).info_hash_hex)

    async def test_errors(self) -> None:
        """An unreachable URL, a page that is not a torrent, a body over the
        size limit, a 404, a bad magnet, a missing file: one line, exit 1."""
        raw = self.make_torrent({"a.bin": 1000})
        base = self.serve(raw)
        with socket.socket() as closed:
            closed.bind((LOOPBACK, 0))
            dead = f"http://{LOOPBACK}:{closed.getsockname()[1]}/t.torrent"
        out = self.path("out")
        cases = [
            (["download", dead, "-o", out], dead, "refused"),
            (["info", f"{base}/page.html"], f"{base}/page.html: torrent: invalid bencoding"),
            (["download", f"{base}/huge", "-o", out],
             f"{base}/huge: {100 * MiB} bytes is too large for a torrent file"),
            (["info", f"{base}/missing"], f"{base}/missing: HTTP 404 Not Found"),
            (["download", "magnet:?xt=urn:btih:nothex", "-o", out], "invalid magnet link"),
            (["info", self.path("no.torrent")], "no.torrent: no such file"),
        ]
        for argv, *fragments in cases:
            child = await self.txbt(*argv, timeout=20)
            self.assert_one_line(child, f"txbittorrent {argv[0]}: error: ", *fragments)
