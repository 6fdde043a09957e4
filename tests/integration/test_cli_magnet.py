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
from typing import Any
from urllib.parse import quote

from twisted.internet import reactor
from twisted.trial.unittest import FailTest
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site
from twisted.web.static import Data

from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, same_files, wait_until

from tests.integration.clibase import (
    DEAD_TRACKER,
    KiB,
    LOOPBACK,
    MiB,
    RUN_TIMEOUT,
    TREE,
    CLITestBase,
)


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
        kinds = [e["kind"] for e in events]
        meta = events[kinds.index("metadata_received")]
        m = parse(raw)
        self.assertEqual((meta["name"], meta["piece_count"], meta["size"]),
                         ("tree", m.piece_count, m.total_length))
        self.assertLess(kinds.index("listening"), kinds.index("metadata_received"))
        if "progress" in kinds:
            self.assertLess(kinds.index("metadata_received"), kinds.index("progress"))
        self.assertIn("complete", kinds)
        progress = [e for e in events if e["kind"] == "progress"]
        self.assertEqual((progress[-1]["bytes_done"] + progress[-1]["left"], progress[-1]["left"]), (m.total_length, 0))
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
            return progress is not None and progress["have_pieces"] >= 8

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
        texts = [e["text"] for e in second.events() if e["kind"] == "message"]
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
