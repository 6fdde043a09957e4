"""Tests for ``download`` from a magnet link or a URL, without the network:
the run on a ``FakeReactor`` with a fake Torrent that starts without its
metadata, the "fetching metadata" progress, --files and --save-torrent once
the metadata arrives, the discovery options (--dht/--no-dht, --dht-port,
--dht-bootstrap, --no-pex) and the one-line errors of bad TORRENT_IDs."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import SynchronousTestCase

import txbittorrent.core.metainfo as metainfo_module
import txbittorrent.torrent as torrent_module
from txbittorrent.commands import _engine, cli, download
from txbittorrent.commands._source import FetchError, TorrentURL
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.magnet import Magnet
from txbittorrent.core.metainfo import parse
from txbittorrent.errors import LocalProtocolError
from txbittorrent.eventtypes import DHTReady, MetadataReceived
from txbittorrent.testing import FakeReactor, make_torrent

KiB = 1024
MiB = 1024 * KiB
RAW = make_torrent({"a.bin": 100, ".pad/16284": 16284, "b.bin": 50}, 16 * KiB,
                   attrs={".pad/16284": b"p"})
"""Two files (numbered 0 and 1 by --files) around a BEP 47 pad file."""
METAINFO = parse(RAW)
MAGNET = Magnet(METAINFO.info_hash, display_name="from-magnet",
                trackers=("http://tracker.test/announce",))


class FakeTorrent:
    """What download._main uses of a Torrent; starts without metadata when
    made from a Magnet.  ``metadata_arrives`` plays Torrent.set_metainfo."""

    made: list[FakeTorrent] = []

    def __init__(self, source: Any, **kwargs: Any) -> None:
        self.source = source
        self.kwargs = kwargs
        self.metainfo = None if isinstance(source, Magnet) else source
        self.has_metadata = self.metainfo is not None
        self.piece_count = 0 if self.metainfo is None else self.metainfo.piece_count
        self.wanted_size = self.left_wanted = self.size = 0
        self.downloaded = self.uploaded = 0
        self.download_rate = self.upload_rate = 0.0
        self.port = 51413
        self.state = "stopped"
        self.peer_list: list[Any] = []
        self.added_peers: list[tuple[str, int]] = []
        self.peer_sources: list[str] = []
        self.added_trackers: list[str] = []
        self.calls: list[str] = []
        self.subscribers: list[tuple[Any, Any]] = []
        self.tiers = [["http://tracker.test/announce"], ["udp://tracker.test:80"]]
        self.info_hash = source.info_hash
        FakeTorrent.made.append(self)

    @property
    def complete(self) -> bool:
        return self.has_metadata and self.left_wanted == 0

    @property
    def bitfield(self) -> Bitfield:
        return Bitfield(self.piece_count)

    @property
    def wanted(self) -> Bitfield:
        return Bitfield.from_indexes(range(self.piece_count), self.piece_count)

    def peers(self) -> list[Any]:
        return self.peer_list

    def add_observer(self, observer: Any) -> None:
        pass

    def subscribe(self, callback: Any, kinds: Any = None) -> Any:
        entry = (callback, kinds)
        self.subscribers.append(entry)
        return SimpleNamespace(cancel=lambda: self.subscribers.remove(entry))

    def add_peers(self, peers: Any, source: str = "user") -> None:
        self.added_peers.extend(peers)
        self.peer_sources.extend(source for _ in peers)

    def add_tracker(self, url: str) -> None:
        self.added_trackers.append(url)

    def metadata_arrives(self) -> None:
        self.calls.append("metadata")
        self.metainfo = METAINFO
        self.has_metadata = True
        self.piece_count = METAINFO.piece_count
        self.wanted_size = self.left_wanted = self.size = METAINFO.total_length
        event = MetadataReceived(self.info_hash, METAINFO.name, self.piece_count, self.size)
        for callback, kinds in list(self.subscribers):
            if kinds is None or kinds == "metadata_received" or (
                    not isinstance(kinds, str) and "metadata_received" in kinds):
                callback(event)

    def set_priorities(self, priorities: list[int]) -> Deferred[None]:
        self.calls.append(f"priorities {priorities}")
        return succeed(None)

    def info_bytes(self) -> bytes | None:
        return None if self.metainfo is None else self.metainfo.info_bytes

    def trackers(self) -> list[list[Any]]:
        return [[SimpleNamespace(url=url) for url in tier] for tier in self.tiers]

    def start(self) -> Deferred[None]:
        self.calls.append("start")
        self.state = "metadata" if not self.has_metadata else "downloading"
        return succeed(None)

    def stop(self) -> Deferred[None]:
        self.calls.append("stop")
        self.state = "stopped"
        return succeed(None)


class DownloadCase(SynchronousTestCase):
    """download._main over FakeTorrent on a FakeReactor, output captured."""

    def setUp(self) -> None:
        FakeTorrent.made = []
        self.patch(torrent_module, "Torrent", FakeTorrent)
        self.out, self.err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", self.out)
        self.patch(sys, "stderr", self.err)
        self.reactor = FakeReactor()
        self.outcome = download._Outcome()
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.written: list[tuple[bytes, Any]] = []

        def torrent_bytes(info_bytes: bytes, trackers: Any) -> bytes:
            self.written.append((info_bytes, trackers))
            return b"d4:info" + info_bytes + b"e"

        self.patch(metainfo_module, "torrent_bytes", torrent_bytes)

    def args(self, *argv: str) -> argparse.Namespace:
        return cli.build_parser().parse_args(["download", "x", "-o", self.root, *argv])

    def main(self, args: argparse.Namespace, target: Any = MAGNET,
             priorities: Any = None) -> Deferred[None]:
        return Deferred.fromCoroutine(download._main(
            self.reactor, args, target, priorities, False, self.outcome))

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]


class MagnetDownloadTests(DownloadCase):
    """A magnet: fetching metadata first, then the usual download."""

    def test_text_flow(self) -> None:
        """The progress line says "fetching metadata (n peers)" until the
        metadata arrives; then pieces are counted and the run completes."""
        d = self.main(self.args("--peer", "127.0.0.1:7000"))
        t = FakeTorrent.made[0]
        self.assertIs(t.source, MAGNET)
        self.assertEqual(t.added_peers, [("127.0.0.1", 7000)])
        t.peer_list = [object(), object()]
        self.reactor.advance(1)
        self.assertNoResult(d)
        t.metadata_arrives()
        t.left_wanted = 0
        self.reactor.advance(1)
        self.reactor.advance(0)
        self.successResultOf(d)
        self.assertEqual(t.calls, ["start", "metadata", "stop"])
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        lines = self.err.getvalue().splitlines()
        self.assertEqual(lines[0], f"from-magnet: fetching metadata, to download into "
                                   f"{self.root}")
        self.assertEqual(lines[1], "listening on port 51413")
        self.assertEqual(lines[2], "fetching metadata (2 peers)")
        self.assertEqual(lines[3], f"metadata received: {METAINFO.name}, 16.0 KiB in "
                                   f"{METAINFO.piece_count} pieces")
        self.assertEqual(lines[4], "2 of 2 pieces to download")
        self.assertEqual(lines[-1], f"complete: {METAINFO.name} verified in {self.root}")

    def test_bare_hash_named_by_hash(self) -> None:
        """A bare info hash (no dn) is called by its hex digits until the metadata."""
        self.main(self.args(), target=Magnet(METAINFO.info_hash))
        self.assertTrue(self.err.getvalue().startswith(
            f"{METAINFO.info_hash_hex}: fetching metadata"))

    def test_resume_path(self) -> None:
        """The resume record is named by the info hash, known from the magnet."""
        self.main(self.args())
        resume = FakeTorrent.made[0].kwargs["resume_path"]
        self.assertEqual(resume, os.path.join(self.root, ".txbittorrent",
                                              METAINFO.info_hash_hex + ".resume"))
        self.assertTrue(os.path.isdir(os.path.dirname(resume)))
        self.assertIsNone(FakeTorrent.made[0].kwargs["priorities"])

    def test_json_events(self) -> None:
        """--json: "fetching_metadata" events (peers) instead of progress, then
        "metadata_received" (name, pieces, size), then "progress" as before."""
        d = self.main(self.args("--json"))
        t = FakeTorrent.made[0]
        t.peer_list = [object()]
        self.reactor.advance(1)
        t.metadata_arrives()
        self.reactor.advance(1)
        t.left_wanted = 0
        self.reactor.advance(1)
        self.reactor.advance(0)
        self.successResultOf(d)
        got = [{k: v for k, v in e.items() if k != "time"} for e in self.events()
               if e["kind"] not in ("message", "listening")]
        size = METAINFO.total_length
        ih = METAINFO.info_hash.hex()
        self.assertEqual(got[:3], [
            {"kind": "fetching_metadata", "info_hash": ih, "peers": 1},
            {"kind": "metadata_received", "info_hash": ih, "event_id": 0,
             "name": METAINFO.name, "piece_count": METAINFO.piece_count, "size": size},
            {"kind": "progress", "info_hash": ih, "event_id": 0, "have_pieces": 0,
             "piece_count": METAINFO.piece_count, "bytes_done": 0, "left": size,
             "download_rate": 0, "upload_rate": 0, "peers": 1, "downloaded": 0, "uploaded": 0},
        ])

    def test_files_once_metadata_known(self) -> None:
        """--files applies in the same turn as the metadata's arrival, before
        any tick (numbers skip the pad file)."""
        self.main(self.args("--files", "1"))
        t = FakeTorrent.made[0]
        t.metadata_arrives()
        self.assertEqual(t.calls, ["start", "metadata", "priorities [0, 0, 1]"])

    def test_files_out_of_range(self) -> None:
        """--files naming a file the metadata does not have fails the run."""
        d = self.main(self.args("--files", "0,4"))
        FakeTorrent.made[0].metadata_arrives()
        f = self.failureResultOf(d, LocalProtocolError)
        self.assertIn("no file number 4 (there are 2", str(f.value))

    def test_save_torrent(self) -> None:
        """--save-torrent writes the info and the trackers once the metadata
        is known, before --files applies; no temporary file stays."""
        path = os.path.join(self.root, "saved.torrent")
        self.main(self.args("--save-torrent", path, "--files", "0"))
        t = FakeTorrent.made[0]
        self.assertFalse(os.path.exists(path))
        t.metadata_arrives()
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"d4:info" + METAINFO.info_bytes + b"e")
        trackers = [["http://tracker.test/announce"], ["udp://tracker.test:80"]]
        self.assertEqual(self.written, [(METAINFO.info_bytes, trackers)] * 2)
        self.assertIn(f"saved {path}\n", self.err.getvalue())
        self.assertEqual(t.calls[-1], "priorities [1, 0, 0]")
        self.assertEqual(sorted(os.listdir(self.root)), [".txbittorrent", "saved.torrent"])

    def test_metadata_kept(self) -> None:
        """The fetched metadata is kept beside the resume record, with the trackers."""
        self.main(self.args())
        FakeTorrent.made[0].metadata_arrives()
        kept = os.path.join(self.root, ".txbittorrent", METAINFO.info_hash_hex + ".torrent")
        with open(kept, "rb") as f:
            self.assertEqual(f.read(), b"d4:info" + METAINFO.info_bytes + b"e")

    def keep(self, raw: bytes) -> None:
        directory = os.path.join(self.root, ".txbittorrent")
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, METAINFO.info_hash_hex + ".torrent"), "wb") as f:
            f.write(raw)

    def test_next_run_starts_from_kept_metadata(self) -> None:
        """A second run of the magnet starts from the kept metadata (checking
        the data on disk, --files from the start) and still uses the
        magnet's trackers and peers."""
        self.keep(RAW)
        magnet = Magnet(METAINFO.info_hash, trackers=("http://other.test/a",),
                        peers=(("127.0.0.1", 7001),))
        self.main(self.args("--files", "1", "--peer", "127.0.0.1:7000"), target=magnet)
        t = FakeTorrent.made[0]
        self.assertEqual(t.source, METAINFO)
        self.assertEqual(t.kwargs["priorities"], [0, 0, 1])
        self.assertEqual(t.added_trackers, ["http://other.test/a"])
        self.assertEqual(list(zip(t.added_peers, t.peer_sources)),
                         [(("127.0.0.1", 7000), "user"), (("127.0.0.1", 7001), "magnet")])
        self.assertTrue(self.err.getvalue().startswith(
            f"{METAINFO.name}: checking existing data in {self.root}\n"))

    def test_kept_metadata_unusable(self) -> None:
        """Kept metadata that is corrupt or of another torrent is ignored."""
        other = make_torrent({"x.bin": 10}, 16 * KiB)
        for raw in (RAW[:-5], other):
            FakeTorrent.made = []
            self.keep(raw)
            self.main(self.args())
            self.assertIs(FakeTorrent.made[0].source, MAGNET)

    def test_save_torrent_with_a_torrent(self) -> None:
        """--save-torrent with a .torrent writes it at once, after the check."""
        path = os.path.join(self.root, "copy.torrent")
        self.main(self.args("--save-torrent", path), target=METAINFO)
        self.assertTrue(os.path.isfile(path))
        self.assertEqual(self.written[0][0], METAINFO.info_bytes)

    def test_interrupted_while_fetching(self) -> None:
        """Ctrl-C before the metadata stops the torrent: interrupted."""
        d = self.main(self.args())
        t = FakeTorrent.made[0]
        [stopping] = self.reactor.fire_system_event("shutdown")
        self.successResultOf(stopping)
        self.assertTrue(self.outcome.interrupted)
        self.assertEqual(t.calls, ["start", "stop"])
        self.assertNoResult(d)


class URLDownloadTests(DownloadCase):
    """A URL: fetched once the reactor runs, then a .torrent like any other."""

    def test_fetched_then_downloaded(self) -> None:
        """The URL is fetched first; --files applies from the start."""
        fetched: list[str] = []

        async def fetch(reactor: Any, url: str) -> Any:
            fetched.append(url)
            return METAINFO

        self.patch(download, "fetch_torrent", fetch)
        self.main(self.args("--files", "1"), target=TorrentURL("http://h.test/t.torrent"))
        self.assertEqual(fetched, ["http://h.test/t.torrent"])
        t = FakeTorrent.made[0]
        self.assertIs(t.source, METAINFO)
        self.assertEqual(t.kwargs["priorities"], [0, 0, 1])
        lines = self.err.getvalue().splitlines()
        self.assertEqual(lines[0], f"{METAINFO.name}: checking existing data in {self.root}")

    def test_fetch_fails(self) -> None:
        """A failed fetch fails the run before any torrent is made."""

        async def fetch(reactor: Any, url: str) -> Any:
            raise FetchError(url, "HTTP 404 Not Found")

        self.patch(download, "fetch_torrent", fetch)
        d = self.main(self.args(), target=TorrentURL("http://h.test/t.torrent"))
        self.failureResultOf(d, FetchError)
        self.assertEqual(FakeTorrent.made, [])


class DiscoveryOptionsTests(SynchronousTestCase):
    """--dht/--no-dht, --dht-port, --dht-bootstrap and --no-pex."""

    def parse(self, *argv: str) -> argparse.Namespace:
        return cli.build_parser().parse_args(list(argv))

    def test_defaults(self) -> None:
        """Not given: None everywhere (the library's defaults), no settings."""
        for command in ("download", "seed", "info"):
            args = self.parse(command, "x")
            self.assertEqual((args.dht, args.dht_port, args.dht_bootstrap, args.pex),
                             (None, None, [], None), command)
            self.assertEqual(_engine.torrent_settings(args), {})
            self.assertEqual(_engine.dht_settings(args), {})

    def test_given(self) -> None:
        """Given: pex and dht for the Torrent, the rest for the session's DHT node."""
        args = self.parse("download", "x", "--no-pex", "--dht", "--dht-port", "6881",
                          "--dht-bootstrap", "127.0.0.1:7000",
                          "--dht-bootstrap", "[::1]:7001")
        self.assertEqual(_engine.torrent_settings(args), {"pex": False, "dht": True})
        self.assertEqual(_engine.dht_settings(args), {
            "enabled": True, "port": 6881,
            "bootstrap_nodes": (("127.0.0.1", 7000), ("::1", 7001))})
        args = self.parse("download", "x", "--no-dht")
        self.assertEqual(_engine.torrent_settings(args), {"dht": False})
        self.assertEqual(_engine.dht_settings(args), {"enabled": False})

    def test_settings_reach_the_torrent(self) -> None:
        """--no-pex and --no-dht become Torrent(pex=False, dht=False)."""
        FakeTorrent.made = []
        self.patch(torrent_module, "Torrent", FakeTorrent)
        self.patch(sys, "stderr", io.StringIO())
        args = self.parse("download", "x", "-o", self.mktemp(), "--no-pex", "--no-dht")
        Deferred.fromCoroutine(download._main(FakeReactor(), args, MAGNET, None, False,
                                              download._Outcome()))
        kwargs = FakeTorrent.made[0].kwargs
        self.assertEqual((kwargs["pex"], kwargs["dht"]), (False, False))

    def test_usage_errors(self) -> None:
        """Bad values and DHT settings with --no-dht are usage errors (exit 2)."""
        self.patch(sys, "stderr", io.StringIO())
        for argv in (["download", "x", "--dht-port", "70000"],
                     ["download", "x", "--dht-bootstrap", "nowhere"],
                     ["info", "x", "--dht-bootstrap", "h:0"]):
            e = self.assertRaises(SystemExit, self.parse, *argv)
            self.assertEqual(e.code, 2, argv)
        for argv in (["download", "x", "--no-dht", "--dht-port", "1"],
                     ["seed", "x", "--no-dht", "--dht-bootstrap", "h:1"],
                     ["info", "x", "--no-dht", "--dht-port", "1"]):
            e = self.assertRaises(SystemExit, cli.main, argv)
            self.assertEqual(e.code, 2, argv)
        self.assertIn("--dht-port needs the DHT (drop --no-dht)", sys.stderr.getvalue())


class ReporterMetadataTests(SynchronousTestCase):
    """``Reporter`` and ``wait_for_metadata`` before the metadata."""

    def setUp(self) -> None:
        self.torrent = FakeTorrent(MAGNET)
        self.out, self.err = io.StringIO(), io.StringIO()
        self.reactor = FakeReactor()

    def reporter(self, json_mode: bool = False) -> _engine.Reporter:
        return _engine.Reporter(self.torrent, json_mode, False, out=self.out, err=self.err,
                                clock=lambda: 1.0)

    def test_line(self) -> None:
        """The line counts the peers until the metadata, then is the usual line."""
        self.torrent.peer_list = [object()] * 3
        self.assertEqual(self.reporter().line(), "fetching metadata (3 peers)")
        self.torrent.metadata_arrives()
        self.assertTrue(self.reporter().line().startswith("  0.0%  0 B / 16.0 KiB"))

    def test_dht_ready(self) -> None:
        """Text: one message; JSON: the session's "dht_ready" event as it is."""
        self.reporter().dht_ready(12)
        self.assertEqual(self.err.getvalue(), "DHT ready: 12 nodes\n")
        reporter = self.reporter(json_mode=True)
        reporter.dht_ready(12)
        self.assertEqual(self.out.getvalue(), "")
        reporter.publish(DHTReady(b"", 12))
        event = json.loads(self.out.getvalue())
        self.assertEqual((event["kind"], event["node_count"]), ("dht_ready", 12))

    def test_metadata_received(self) -> None:
        """Text: one message; JSON: nothing from the call (the engine's
        event is printed through attach)."""
        self.reporter().metadata_received("tree", 4, 3 * MiB)
        self.assertEqual(self.err.getvalue(), "metadata received: tree, 3.0 MiB in 4 pieces\n")
        self.reporter(json_mode=True).metadata_received("tree", 4, 3 * MiB)
        self.assertEqual(self.out.getvalue(), "")

    def test_wait(self) -> None:
        """Ticks every second until the event; fires in its turn; no timer or
        subscription is left."""
        ticks: list[bool] = []
        reporter: Any = SimpleNamespace(tick=lambda final=False: ticks.append(final))
        d = _engine.wait_for_metadata(self.reactor, self.torrent, reporter)
        self.reactor.advance(1)
        self.reactor.advance(1)
        self.assertNoResult(d)
        self.torrent.metadata_arrives()
        self.successResultOf(d)
        self.assertEqual(ticks, [False, False])
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.torrent.subscribers, [])

    def test_wait_known(self) -> None:
        """With the metadata known already, it fires at once."""
        self.torrent.metadata_arrives()
        self.successResultOf(_engine.wait_for_metadata(self.reactor, self.torrent,
                                                       self.reporter()))
        self.assertEqual(self.reactor.getDelayedCalls(), [])


class BadTorrentIdTests(SynchronousTestCase):
    """Bad TORRENT_IDs through cli.main: one line on stderr, exit 1."""

    def setUp(self) -> None:
        self.err = io.StringIO()
        self.patch(sys, "stderr", self.err)
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)

    def assert_one_line(self, argv: list[str], fragment: str) -> None:
        self.err.truncate(0)
        self.err.seek(0)
        self.assertEqual(cli.main(argv), 1, argv)
        text = self.err.getvalue()
        self.assertEqual(text.count("\n"), 1, text)
        self.assertNotIn("Traceback", text)
        self.assertIn(fragment, text)

    def test_errors(self) -> None:
        """A bad magnet, a missing file, a hash of the wrong length, seed with
        a magnet, --save-torrent into a missing directory."""
        out = ["-o", self.root]
        self.assert_one_line(["download", "magnet:?xt=urn:btih:xyz", *out],
                             "txbittorrent download: error: invalid magnet link")
        self.assert_one_line(["download", "magnet:?dn=nohash", *out], "invalid magnet link")
        self.assert_one_line(["download", os.path.join(self.root, "no.torrent"), *out],
                             "no.torrent: no such file")
        self.assert_one_line(["download", "ab" * 19, *out], f"{'ab' * 19}: no such file")
        self.assert_one_line(["seed", MAGNET.to_uri(), "-d", self.root],
                             "seed needs the .torrent")
        self.assert_one_line(["download", MAGNET.to_uri(), *out, "--save-torrent",
                              os.path.join(self.root, "gone", "x.torrent")],
                             "gone: no such directory")
