"""Tests for what ``download`` and ``seed`` share (txbittorrent.commands._engine)
and for their flow (txbittorrent.commands.download), without the network: option
parsing, the progress line and JSON events of ``Reporter`` over a fake torrent,
``--files`` selection, the run from start to goal or Ctrl-C on a ``Clock``, and
bad input through ``cli.main``."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.task import Clock
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

import txbittorrent.torrent as torrent_module
from txbittorrent.commands import cli
from txbittorrent.commands import _engine, download
from txbittorrent.commands import seed as seed_command
from txbittorrent.core.bencoding import encode
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.magnet import Magnet
from txbittorrent.core.metainfo import parse
from txbittorrent.errors import LocalProtocolError, MetainfoError
from txbittorrent.eventtypes import (
    Complete,
    DiskError,
    PeerConnected,
    PeerLost,
    PieceFailed,
    StateChanged,
    TrackerError,
    TrackerReply,
)
from txbittorrent.testing import FakeReactor, make_torrent

KiB = 1024
MiB = 1024 * KiB


class TTY(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


class FakeClock:
    """A settable monotonic clock."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class FakeTorrent:
    """What Reporter and download._main use of a Torrent, all settable."""

    made: list[FakeTorrent] = []
    start_have = 0
    """Pieces verified in each new instance."""

    def __init__(self, metainfo: Any = None, **kwargs: Any) -> None:
        self.metainfo = metainfo
        self.kwargs = kwargs
        self.wanted_size = 4 * MiB
        self.left_wanted = 4 * MiB
        self.size = 4 * MiB
        self.piece_count = 16
        self.have = self.start_have
        self.downloaded = 0
        self.uploaded = 0
        self.download_rate = 0.0
        self.upload_rate = 0.0
        self.port = 51413
        self.state = "stopped"
        self.peer_list: list[Any] = []
        self.observers: list[Any] = []
        self.added_peers: list[tuple[str, int]] = []
        self.calls: list[str] = []
        self.stop_result: Deferred[None] = succeed(None)
        self.has_metadata = not isinstance(metainfo, Magnet)
        self.subscribers: list[tuple[Any, Any]] = []
        self.priority_calls: list[list[int]] = []
        self.tiers: list[list[str]] = []
        self.info_hash = b"\x11" * 20
        FakeTorrent.made.append(self)

    def subscribe(self, callback: Any, kinds: Any = None) -> Any:
        entry = (callback, kinds)
        self.subscribers.append(entry)
        return SimpleNamespace(cancel=lambda: self.subscribers.remove(entry))

    def metadata_arrives(self, metainfo: Any) -> None:
        """As Torrent.set_metainfo: the metadata, then the event."""
        self.metainfo = metainfo
        self.has_metadata = True
        event = SimpleNamespace(kind="metadata_received", name=metainfo.name,
                                piece_count=self.piece_count, size=self.size)
        for callback, kinds in list(self.subscribers):
            if kinds in (None, "metadata_received"):
                callback(event)

    def set_priorities(self, priorities: list[int]) -> Deferred[None]:
        self.priority_calls.append(list(priorities))
        return succeed(None)

    def info_bytes(self) -> bytes:
        return self.metainfo.info_bytes  # type: ignore[no-any-return]

    def trackers(self) -> list[list[Any]]:
        return [[SimpleNamespace(url=url) for url in tier] for tier in self.tiers]

    @property
    def complete(self) -> bool:
        return self.left_wanted == 0

    @property
    def bitfield(self) -> Bitfield:
        return Bitfield.from_indexes(range(self.have), self.piece_count)

    @property
    def wanted(self) -> Bitfield:
        return Bitfield.from_indexes(range(self.have, self.piece_count), self.piece_count)

    def peers(self) -> list[Any]:
        return self.peer_list

    def add_observer(self, observer: Any) -> None:
        self.observers.append(observer)

    def add_peers(self, peers: Any) -> None:
        self.added_peers.extend(peers)

    def start(self) -> Deferred[None]:
        self.calls.append("start")
        self.state = "active"
        return succeed(None)

    def stop(self) -> Deferred[None]:
        self.calls.append("stop")
        self.state = "stopped"
        return self.stop_result


def peer(host: str = "127.0.0.1", port: int = 6881, client: str = "libtorrent 2.0") -> Any:
    return SimpleNamespace(address=(host, port), client=client)


class ParseRateTests(SynchronousTestCase):
    """``parse_rate``: the --download-limit and --upload-limit values."""

    def test_forms(self) -> None:
        """Bytes per second, with K/M/G binary suffixes, any case, optional B and /s."""
        for text, expected in [
            ("1000", 1000),
            ("512K", 512 * KiB),
            ("512k", 512 * KiB),
            ("2M", 2 * MiB),
            ("1.5M", int(1.5 * MiB)),
            ("1G", 1024 * MiB),
            ("100KB", 100 * KiB),
            ("100kb/s", 100 * KiB),
            ("2MiB", 2 * MiB),
            ("2MiB/s", 2 * MiB),
        ]:
            self.assertEqual(_engine.parse_rate(text), expected, text)

    def test_garbage(self) -> None:
        """Anything else, and zero or less, is an argparse type error."""
        for text in ("", "K", "fast", "0", "-1M", "1Q", "1I", "1MiBB"):
            self.assertRaises(argparse.ArgumentTypeError, _engine.parse_rate, text)


class ParsePeerTests(SynchronousTestCase):
    """``parse_peer``: the --peer values."""

    def test_ipv4(self) -> None:
        """HOST:PORT gives (host, port)."""
        self.assertEqual(_engine.parse_peer("127.0.0.1:6881"), ("127.0.0.1", 6881))

    def test_ipv6(self) -> None:
        """[V6]:PORT loses its brackets."""
        self.assertEqual(_engine.parse_peer("[::1]:51413"), ("::1", 51413))

    def test_garbage(self) -> None:
        """No port, a port out of range or not a number is an argparse type error."""
        for text in ("127.0.0.1", "127.0.0.1:", "h:0", "h:65536", "h:x", "h:-1"):
            self.assertRaises(argparse.ArgumentTypeError, _engine.parse_peer, text)


class ParseNumbersTests(SynchronousTestCase):
    """``parse_port`` and ``parse_positive_int``: --port and --max-peers."""

    def test_port(self) -> None:
        """0 to 65535 are ports (0: any); anything else is a type error."""
        self.assertEqual(_engine.parse_port("0"), 0)
        self.assertEqual(_engine.parse_port("65535"), 65535)
        for text in ("-1", "65536", "http", ""):
            self.assertRaises(argparse.ArgumentTypeError, _engine.parse_port, text)

    def test_positive(self) -> None:
        """At least 1, or a type error."""
        self.assertEqual(_engine.parse_positive_int("8"), 8)
        for text in ("0", "-3", "many"):
            self.assertRaises(argparse.ArgumentTypeError, _engine.parse_positive_int, text)


class ParseFileSelectionTests(SynchronousTestCase):
    """``parse_file_selection``: the --files value."""

    def test_forms(self) -> None:
        """Single numbers and inclusive ranges, comma separated, spaces and empty
        parts ignored."""
        self.assertEqual(_engine.parse_file_selection("0"), {0})
        self.assertEqual(_engine.parse_file_selection("0,2-4"), {0, 2, 3, 4})
        self.assertEqual(_engine.parse_file_selection(" 3 , 1,,1-1 "), {1, 3})

    def test_garbage(self) -> None:
        """Words, negative numbers and backward ranges are argparse type errors."""
        for text in ("a", "1-a", "-1", "4-2", "1-2-3"):
            self.assertRaises(argparse.ArgumentTypeError, _engine.parse_file_selection, text)


def torrent_with_pad() -> bytes:
    """A three-file torrent whose middle file is a BEP 47 pad file."""
    return make_torrent({"a.bin": 100, ".pad/16284": 16284, "b.bin": 50}, 16 * KiB,
                        attrs={".pad/16284": b"p"})


class FileSelectionTests(SynchronousTestCase):
    """``download._priorities``: --files numbers count the files `info` lists."""

    def test_none(self) -> None:
        """No --files: every file is wanted (the torrent's default)."""
        self.assertIsNone(download._priorities(parse(torrent_with_pad()), None))

    def test_pad_files_skipped(self) -> None:
        """Numbers skip pad files, which are never wanted."""
        m = parse(torrent_with_pad())
        self.assertEqual(download._priorities(m, {1}), [0, 0, 1])
        self.assertEqual(download._priorities(m, {0, 1}), [1, 0, 1])

    def test_out_of_range(self) -> None:
        """A number past the last file is an error naming it and the count."""
        m = parse(torrent_with_pad())
        e = self.assertRaises(LocalProtocolError, download._priorities, m, {0, 7, 2})
        self.assertEqual(str(e), "--files: no file number 2 (there are 2, numbered from 0)")


class ParserTests(SynchronousTestCase):
    """The download and seed options, as the command line parses them."""

    def setUp(self) -> None:
        self.parser = cli.build_parser()

    def test_download_defaults(self) -> None:
        """Without options: the current directory, any port, no limits, no seeding."""
        args = self.parser.parse_args(["download", "x.torrent"])
        self.assertEqual((args.torrent, args.output, args.port), ("x.torrent", ".", 0))
        self.assertEqual((args.files, args.seed, args.seed_ratio, args.seed_time),
                         (None, False, None, None))
        self.assertEqual((args.max_peers, args.download_limit, args.upload_limit),
                         (None, None, None))
        self.assertEqual((args.peer, args.interface, args.json, args.quiet),
                         ([], None, False, False))
        self.assertIs(args.run, download.run)

    def test_download_options(self) -> None:
        """Every option lands where _main reads it."""
        args = self.parser.parse_args([
            "download", "x.torrent", "-o", "out", "--files", "0,2-3", "--seed",
            "--seed-ratio", "1.5", "--seed-time", "30", "--port", "6881",
            "--interface", "127.0.0.1", "--interface", "::1", "--max-peers", "20",
            "--download-limit", "512K", "--upload-limit", "1M",
            "--peer", "127.0.0.1:1", "--peer", "[::1]:2", "--json", "--quiet",
        ])
        self.assertEqual(args.output, "out")
        self.assertEqual(args.files, {0, 2, 3})
        self.assertEqual((args.seed, args.seed_ratio, args.seed_time), (True, 1.5, 30.0))
        self.assertEqual((args.port, args.max_peers), (6881, 20))
        self.assertEqual(args.interface, ["127.0.0.1", "::1"])
        self.assertEqual((args.download_limit, args.upload_limit), (512 * KiB, MiB))
        self.assertEqual(args.peer, [("127.0.0.1", 1), ("::1", 2)])
        self.assertTrue(args.json and args.quiet)

    def test_seed(self) -> None:
        """seed takes -d for the data, always seeds and selects no files."""
        args = self.parser.parse_args(["seed", "x.torrent", "-d", "data", "--seed-time", "5"])
        self.assertEqual((args.output, args.seed, args.files, args.seed_time),
                         ("data", True, None, 5.0))
        self.assertIs(args.run, seed_command.run)

    def test_encryption(self) -> None:
        """--encryption reaches the session's config; without it, the
        library's default ("enabled"); a mode it does not know is a usage error."""
        from txbittorrent.commands._engine import session_config

        for command in ("download", "seed"):
            args = self.parser.parse_args([command, "x.torrent", "--encryption", "forced"])
            self.assertEqual(session_config(args).encryption, "forced")
            args = self.parser.parse_args([command, "x.torrent"])
            self.assertIsNone(args.encryption)
            self.assertEqual(session_config(args).encryption, "enabled")
        self.patch(sys, "stderr", io.StringIO())
        e = self.assertRaises(SystemExit, self.parser.parse_args,
                              ["download", "x", "--encryption", "sometimes"])
        self.assertEqual(e.code, 2)

    def test_usage_errors(self) -> None:
        """Bad option values are usage errors: exit 2 and one 'error:' line."""
        err = io.StringIO()
        self.patch(sys, "stderr", err)
        for argv in (["download", "x", "--port", "70000"],
                     ["download", "x", "--files", "two"],
                     ["download", "x", "--peer", "nowhere"],
                     ["download", "x", "--download-limit", "0"],
                     ["seed", "x", "--max-peers", "0"]):
            e = self.assertRaises(SystemExit, self.parser.parse_args, argv)
            self.assertEqual(e.code, 2, argv)
        self.assertEqual(err.getvalue().count("error:"), 5)


class ReporterTests(SynchronousTestCase):
    """``Reporter``: the progress line and the JSON events, over a fake torrent."""

    def setUp(self) -> None:
        self.torrent = FakeTorrent()
        self.out = io.StringIO()
        self.err = io.StringIO()
        self.mono = FakeClock()

    def reporter(self, json_mode: bool = False, quiet: bool = False, tty: bool = False,
                 ) -> _engine.Reporter:
        if tty:
            self.err = TTY()
        return _engine.Reporter(self.torrent, json_mode, quiet, out=self.out, err=self.err,
                                clock=lambda: 1700000000.12345, monotonic=self.mono)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.out.getvalue().splitlines()]

    def test_line(self) -> None:
        """Percent, sizes, down and up rates, peers and ETA, in one line."""
        t = self.torrent
        t.left_wanted = 3 * MiB
        t.download_rate, t.upload_rate = 256 * KiB, 10 * KiB
        t.peer_list = [peer(), peer(port=2)]
        self.assertEqual(
            self.reporter().line(),
            " 25.0%  1.0 MiB / 4.0 MiB  down 256.0 KiB/s  up 10.0 KiB/s  peers 2  ETA 0:00:12",
        )

    def test_line_eta(self) -> None:
        """The ETA counts hours; none without a download rate or once done."""
        t = self.torrent
        t.wanted_size = t.left_wanted = 5 * 3600 * 100 + 61 * 100
        t.download_rate = 100.0
        self.assertTrue(self.reporter().line().endswith("ETA 5:01:01"))
        t.download_rate = 0.0
        self.assertTrue(self.reporter().line().endswith("ETA -"))
        t.left_wanted, t.download_rate = 0, 100.0
        self.assertTrue(self.reporter().line().startswith("100.0%"))
        self.assertTrue(self.reporter().line().endswith("ETA -"))

    def test_line_nothing_wanted(self) -> None:
        """Nothing wanted (every file deselected) is 100%, not a division by zero."""
        self.torrent.wanted_size = self.torrent.left_wanted = 0
        self.assertTrue(self.reporter().line().startswith("100.0%  0 B / 0 B"))

    def test_tty_redraws_in_place(self) -> None:
        """On a terminal each tick redraws the line; a message starts a new line first."""
        r = self.reporter(tty=True)
        r.tick()
        r.tick()
        r.message("hello")
        text = self.err.getvalue()
        self.assertEqual(text.count("\r"), 2)
        self.assertEqual(text.count("\x1b[K"), 2)
        self.assertTrue(text.endswith("\x1b[K\nhello\n"), repr(text))

    def test_plain_lines_throttled(self) -> None:
        """Not a terminal: a line at the first tick, then one per plain_interval,
        and always on the final tick."""
        r = self.reporter()
        r.tick()
        self.mono.now += 1
        r.tick()
        self.mono.now += _engine.PLAIN_INTERVAL
        r.tick()
        self.mono.now += 1
        r.tick(final=True)
        lines = self.err.getvalue().splitlines()
        self.assertEqual(len(lines), 3)
        self.assertNotIn("\r", self.err.getvalue())

    def test_quiet(self) -> None:
        """--quiet: no progress line and no messages."""
        r = self.reporter(quiet=True)
        r.tick(final=True)
        r.message("checking")
        r.listening(6881)
        r.done_line()
        self.assertEqual(self.err.getvalue() + self.out.getvalue(), "")

    def test_finish(self) -> None:
        """After finish() ticks draw nothing; messages still go out."""
        r = self.reporter(tty=True)
        r.tick()
        r.finish()
        r.tick(final=True)
        r.message("stopped")
        self.assertEqual(self.err.getvalue().count("\r"), 1)
        self.assertTrue(self.err.getvalue().endswith("\x1b[K\nstopped\n"))

    def test_text_listening(self) -> None:
        """The listening port is a message (scripts parse 'listening on port N')."""
        self.reporter().listening(6881)
        self.assertEqual(self.err.getvalue(), "listening on port 6881\n")

    def test_json_progress(self) -> None:
        """JSON mode: each tick is one "progress" event (the daemon's schema)
        on stdout, stderr untouched."""
        t = self.torrent
        t.left_wanted, t.have = 3 * MiB, 4
        t.downloaded, t.uploaded = 1234567, 89
        t.download_rate, t.upload_rate = 1000.4, 2.6
        t.peer_list = [peer()]
        self.reporter(json_mode=True).tick()
        self.assertEqual(self.events(), [{
            "kind": "progress", "info_hash": "11" * 20, "event_id": 0,
            "have_pieces": 4, "piece_count": 16, "bytes_done": MiB, "left": 3 * MiB,
            "download_rate": 1000, "upload_rate": 3, "peers": 1, "downloaded": 1234567,
            "uploaded": 89, "time": 1700000000.123,
        }])
        self.assertEqual(self.err.getvalue(), "")

    def test_json_messages(self) -> None:
        """JSON mode: messages and the port are events too, even with --quiet."""
        r = self.reporter(json_mode=True, quiet=True)
        r.message("checking")
        r.listening(6881)
        self.assertEqual(
            [(e["kind"], e["info_hash"], e.get("text"), e.get("port")) for e in self.events()],
            [("message", "11" * 20, "checking", None), ("listening", "11" * 20, None, 6881)])

    def test_json_engine_events(self) -> None:
        """JSON mode: attach() subscribes to the engine's events but passing
        pieces and the engine's own progress; each prints as its to_json()
        plus "time"."""
        r = self.reporter(json_mode=True)
        r.attach(self.torrent)
        [(callback, kinds)] = self.torrent.subscribers
        self.assertEqual(kinds, _engine.JSON_KINDS)
        self.assertNotIn("piece_passed", kinds)
        self.assertNotIn("progress", kinds)
        ih = self.torrent.info_hash
        events = [
            PieceFailed(ih, 4, "hash"),
            PeerConnected(ih, ("::1", 7000), b"\x01" * 20, "Transmission 4.0", "user"),
            PeerLost(ih, ("127.0.0.1", 6881), "timed out"),
            TrackerReply(ih, "http://t/a", 3, None, 2, 1800),
            TrackerError(ih, "udp://t:1", "timed out"),
            StateChanged(ih, "stopped", "active"),
            Complete(ih),
            DiskError(ih, 9, "OSError: [Errno 28] No space left on device"),
        ]
        for event in events:
            callback(event)
        self.assertEqual(self.events(),
                         [{**e.to_json(), "time": 1700000000.123} for e in events])
        self.assertEqual(self.events()[1]["address"], ["::1", 7000])

    def test_text_attach_silent(self) -> None:
        """Text mode: attach() subscribes to nothing (the progress line says it all)."""
        r = self.reporter()
        r.attach(self.torrent)
        self.assertEqual(self.torrent.subscribers, [])
        r.publish(Complete(self.torrent.info_hash))
        self.assertEqual(self.err.getvalue() + self.out.getvalue(), "")


class WaitForGoalTests(SynchronousTestCase):
    """``wait_for_goal`` ticks the reporter on the clock until the goal holds."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.ticks: list[bool] = []
        self.reporter = SimpleNamespace(tick=lambda final=False: self.ticks.append(final))

    def test_reached_later(self) -> None:
        """Fires on the tick where the goal holds, that tick being final; no timer left."""
        state = {"done": False}
        d = _engine.wait_for_goal(self.clock, None, self.reporter, lambda: state["done"])
        self.clock.advance(1)
        self.clock.advance(1)
        self.assertNoResult(d)
        state["done"] = True
        self.clock.advance(1)
        self.successResultOf(d)
        self.assertEqual(self.ticks, [False, False, True])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_reached_already(self) -> None:
        """A goal that holds already fires at once, after one final tick."""
        d = _engine.wait_for_goal(self.clock, None, self.reporter, lambda: True)
        self.successResultOf(d)
        self.assertEqual(self.ticks, [True])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_tick_raises(self) -> None:
        """An exception in a tick fails the wait instead of hanging it."""

        def tick(final: bool = False) -> None:
            raise ZeroDivisionError()

        reporter = SimpleNamespace(tick=tick)
        d = _engine.wait_for_goal(self.clock, None, reporter, lambda: False)
        self.clock.advance(1)
        self.failureResultOf(d, ZeroDivisionError)


class FormatAddressTests(SynchronousTestCase):
    """``format_address`` brackets IPv6 hosts."""

    def test_forms(self) -> None:
        """IPv4 as host:port, IPv6 as [host]:port."""
        self.assertEqual(_engine.format_address(("10.0.0.1", 1)), "10.0.0.1:1")
        self.assertEqual(_engine.format_address(("fe80::1", 2)), "[fe80::1]:2")


class OneLineLogObserverTests(SynchronousTestCase):
    """``OneLineLogObserver``: the engine's log on stderr, never a traceback."""

    def setUp(self) -> None:
        self.stream = io.StringIO()
        self.log = Logger(observer=_engine.OneLineLogObserver(self.stream))

    def test_failure(self) -> None:
        """A logged failure is one line: the message and the exception's text."""
        try:
            raise OSError(28, "No space left on device")
        except OSError:
            self.log.failure("disk error on piece {index}", index=7)
        self.assertEqual(self.stream.getvalue(),
                         "txbittorrent: disk error on piece 7: "
                         "[Errno 28] No space left on device\n")

    def test_levels(self) -> None:
        """Warnings and errors are written; info and debug are not."""
        self.log.debug("closing {link}", link="x")
        self.log.info("listening")
        self.log.warn("tracker {url} said {what}", url="http://t/", what="no")
        self.log.error("oops")
        self.assertEqual(self.stream.getvalue(),
                         "txbittorrent: tracker http://t/ said no\ntxbittorrent: oops\n")


class MainTests(SynchronousTestCase):
    """``download._main``, the command's flow, with a fake Torrent on a Clock."""

    def setUp(self) -> None:
        FakeTorrent.made = []
        self.patch(torrent_module, "Torrent", FakeTorrent)
        self.out, self.err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", self.out)
        self.patch(sys, "stderr", self.err)
        self.reactor = FakeReactor()
        self.metainfo = SimpleNamespace(name="tree", info_hash_hex="ab" * 20)
        self.outcome = download._Outcome()

    def args(self, *argv: str) -> argparse.Namespace:
        return cli.build_parser().parse_args(list(argv))

    def main(self, args: argparse.Namespace, priorities: Any = None,
             seed_only: bool = False) -> Deferred[None]:
        return Deferred.fromCoroutine(download._main(
            self.reactor, args, self.metainfo, priorities, seed_only, self.outcome))

    def test_options_reach_the_torrent(self) -> None:
        """Port, interfaces, peers, limits, priorities and the resume path pass through."""
        args = self.args("download", "x", "-o", "out", "--port", "6881",
                         "--interface", "127.0.0.1", "--max-peers", "9",
                         "--download-limit", "1M", "--upload-limit", "2K",
                         "--peer", "127.0.0.1:7000")
        self.main(args, priorities=[1, 0])
        t = FakeTorrent.made[0]
        session_config = t.kwargs.pop("session_config")
        # Trackers hear "stopped" at exit, but the command waits 1 s at most.
        self.assertEqual(t.kwargs.pop("tracker").stop_timeout, 1.0)
        self.assertEqual(t.kwargs, {
            "basedir": "out", "port": 6881, "reactor": self.reactor,
            "resume_path": os.path.join("out", ".txbittorrent", "ab" * 20 + ".resume"),
            "priorities": [1, 0], "listen_interfaces": ["127.0.0.1"], "max_peers": 9,
            "download_limit": MiB, "upload_limit": 2 * KiB,
        })
        self.assertEqual(session_config.dht.state_path,  # the DHT node's state by the data
                         os.path.join("out", ".txbittorrent", "dht.state"))
        self.assertEqual(t.added_peers, [("127.0.0.1", 7000)])
        self.assertEqual(t.calls, ["start"])

    def test_complete_event_ends_at_once(self) -> None:
        """The torrent's "complete" event ends the run in the next reactor
        turn, not at the next progress tick."""
        d = self.main(self.args("download", "x"))
        t = FakeTorrent.made[0]
        self.reactor.advance(0.25)
        t.left_wanted = 0
        for callback, kinds in list(t.subscribers):
            if kinds is not None and "complete" in kinds:
                callback(SimpleNamespace(kind="complete"))
        self.assertNoResult(d)  # not from inside the event's publication
        self.reactor.advance(0)
        self.reactor.advance(0)
        self.successResultOf(d)
        self.assertEqual(t.calls, ["start", "stop"])
        self.assertNotIn(_engine.GOAL_EVENTS, [kinds for _, kinds in t.subscribers])
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_download_until_complete(self) -> None:
        """The run ends (stopping the torrent) once every wanted piece is verified."""
        d = self.main(self.args("download", "x"))
        t = FakeTorrent.made[0]
        self.reactor.advance(1)
        self.assertNoResult(d)
        t.left_wanted = 0
        self.reactor.advance(1)
        self.reactor.advance(0)
        self.successResultOf(d)
        self.assertEqual(t.calls, ["start", "stop"])
        self.assertTrue(self.outcome.finished)
        self.assertFalse(self.outcome.interrupted)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        text = self.err.getvalue()
        self.assertIn("tree: checking existing data in .\n", text)
        self.assertIn("0/16 pieces verified, 16 to download\n", text)
        self.assertIn("listening on port 51413\n", text)
        self.assertIn("100.0%  4.0 MiB / 4.0 MiB", text)
        self.assertTrue(text.endswith("complete: tree verified in .\n"), text)
        # After a normal end, the shutdown trigger has nothing to do.
        self.assertEqual(self.reactor.fire_system_event("shutdown"), [None])
        self.assertFalse(self.outcome.interrupted)

    def test_seed_time(self) -> None:
        """--seed-time keeps the torrent running that long after completing."""
        d = self.main(self.args("download", "x", "--seed-time", "30"))
        t = FakeTorrent.made[0]
        t.left_wanted = 0
        self.reactor.advance(1)
        self.reactor.pump([1] * 29)
        self.assertNoResult(d)
        self.reactor.advance(1)
        self.reactor.advance(0)
        self.successResultOf(d)
        self.assertIn("seeding\n", self.err.getvalue())

    def test_seed_ratio(self) -> None:
        """--seed-ratio keeps the torrent running until uploaded/size reaches it."""
        d = self.main(self.args("download", "x", "--seed-ratio", "0.5"))
        t = FakeTorrent.made[0]
        t.left_wanted = 0
        self.reactor.pump([1] * 5)
        self.assertNoResult(d)
        t.uploaded = 2 * MiB
        self.reactor.advance(1)
        self.reactor.advance(0)
        self.successResultOf(d)

    def test_seed_until_interrupted(self) -> None:
        """seed without a goal runs until Ctrl-C, which stops it: interrupted."""
        self.patch(FakeTorrent, "start_have", 16)
        d = self.main(self.args("seed", "x", "--json"), seed_only=True)
        t = FakeTorrent.made[0]
        t.left_wanted = 0
        self.reactor.pump([1] * 100)
        self.assertNoResult(d)
        self.assertEqual(t.calls, ["start"])
        [stopping] = self.reactor.fire_system_event("shutdown")
        self.successResultOf(stopping)
        self.assertEqual(t.calls, ["start", "stop"])
        self.assertTrue(self.outcome.interrupted)
        events = [json.loads(line)["kind"] for line in self.out.getvalue().splitlines()]
        self.assertEqual(events[:3], ["message", "message", "listening"])
        self.assertEqual(events[-4:], ["interrupted", "message", "stopped", "message"])

    def test_seed_warns_without_data(self) -> None:
        """seed says so when nothing in the directory verified."""
        self.main(self.args("seed", "x"), seed_only=True)
        self.assertIn("warning: no data of tree verified in .\n", self.err.getvalue())

    def test_interrupted_while_checking(self) -> None:
        """Ctrl-C before start() finishes stops nothing (nothing to save yet)."""
        start: Deferred[None] = Deferred()
        self.patch(FakeTorrent, "start", lambda torrent: start)
        d = self.main(self.args("download", "x"))
        self.assertEqual(self.reactor.fire_system_event("shutdown"), [None])
        self.assertTrue(self.outcome.interrupted)
        self.assertTrue(self.err.getvalue().endswith("\ninterrupted\n"))
        start.callback(None)
        self.successResultOf(d)
        self.assertEqual(FakeTorrent.made[0].calls, [])

    def test_stop_fails_on_interrupt(self) -> None:
        """A stop that fails on Ctrl-C is reported and kept as the run's error."""
        d = self.main(self.args("download", "x"))
        t = FakeTorrent.made[0]
        t.stop_result = Deferred()
        [stopping] = self.reactor.fire_system_event("shutdown")
        t.stop_result.errback(Failure(OSError(28, "No space left on device")))
        self.successResultOf(stopping)
        self.assertIsInstance(self.outcome.error, OSError)
        self.assertIn("stopping failed: [Errno 28] No space left on device\n",
                      self.err.getvalue())
        self.assertNoResult(d)

    def test_start_fails(self) -> None:
        """A failing start() stops the torrent (releasing its threads) and fails the run."""
        self.patch(FakeTorrent, "start", lambda torrent: Deferred.fromCoroutine(_raise()))
        d = self.main(self.args("download", "x"))
        self.failureResultOf(d, MetainfoError)
        self.assertEqual(FakeTorrent.made[0].calls, ["stop"])


async def _raise() -> None:
    raise MetainfoError("x", "boom")


class FakeReact:
    """Stands in for ``task.react``: runs ``main`` on a FakeReactor, optionally
    "presses Ctrl-C" (runs the shutdown triggers), and exits as react does."""

    def __init__(self, reactor: FakeReactor, interrupt: bool = False) -> None:
        self.reactor = reactor
        self.interrupt = interrupt

    def __call__(self, main: Any, argv: Any = ()) -> None:
        d = main(self.reactor, *argv)
        if self.interrupt:
            for stopping in self.reactor.fire_system_event("shutdown"):
                if stopping is not None:
                    self.reactor.advance(0)
            raise SystemExit(0)  # the reactor stopped before main's Deferred fired
        for _ in range(100):
            if d.called:
                break
            self.reactor.advance(1)
        failures: list[Failure] = []
        d.addErrback(failures.append)
        if not failures:
            raise SystemExit(0)
        if failures[0].check(SystemExit):
            raise SystemExit(failures[0].value.code)
        raise SystemExit(1)


class StopOnceTests(SynchronousTestCase):
    """``download._stop_once_on_signals``: a second Ctrl-C does not stop twice."""

    def setUp(self) -> None:
        import signal

        self.signal = signal
        self.handlers: dict[int, Any] = {signal.SIGINT: lambda *a: None,
                                         signal.SIGTERM: signal.SIG_IGN}
        self.patch(signal, "getsignal", self.handlers.get)
        self.patch(signal, "signal", self.handlers.__setitem__)
        self.reactor = FakeReactor()
        download._stop_once_on_signals(self.reactor)

    def test_twice(self) -> None:
        """Two SIGINTs stop the reactor once; an ignored SIGTERM stays ignored."""
        self.assertIs(self.handlers[self.signal.SIGTERM], self.signal.SIG_IGN)
        handler = self.handlers[self.signal.SIGINT]
        handler(self.signal.SIGINT, None)
        handler(self.signal.SIGINT, None)
        self.assertEqual(self.reactor.stops, 1)

    def test_after_shutdown_began(self) -> None:
        """A signal once the reactor is shutting down (react ending) does nothing."""
        self.reactor.fire_system_event("shutdown")
        self.handlers[self.signal.SIGINT](self.signal.SIGINT, None)
        self.assertEqual(self.reactor.stops, 0)


class RunEngineTests(SynchronousTestCase):
    """``download.run_engine``: how the run's end becomes the exit status."""

    def setUp(self) -> None:
        FakeTorrent.made = []
        self.patch(torrent_module, "Torrent", FakeTorrent)
        self.patch(sys, "stdout", io.StringIO())
        self.err = io.StringIO()
        self.patch(sys, "stderr", self.err)
        # No global logging and no signal handlers in the test process.
        self.patch(download, "start_logging", lambda: None)
        self.patch(download, "_stop_once_on_signals", lambda reactor: None)
        self.patch(download, "_global_reactor", lambda: None)
        self.lookups: list[Any] = []
        self.patch(download, "install_lookup_threads", self.lookups.append)
        self.reactor = FakeReactor()
        self.metainfo = SimpleNamespace(name="tree", info_hash_hex="ab" * 20)

    def run_engine(self, interrupt: bool = False, *argv: str) -> int:
        import twisted.internet.task as task_module

        self.patch(task_module, "react", FakeReact(self.reactor, interrupt))
        args = cli.build_parser().parse_args(["download", "x", *argv])
        return download.run_engine(args, self.metainfo, None, seed_only=False)

    def test_complete(self) -> None:
        """Goal met: 0.  Name lookups ran in the command's own daemon threads."""
        self.patch(FakeTorrent, "start_have", 16)
        self.patch(FakeTorrent, "complete", True)
        self.assertEqual(self.run_engine(), 0)
        self.assertEqual(self.lookups, [None])  # the global reactor (patched to None)

    def test_interrupted(self) -> None:
        """Ctrl-C before the goal: the torrent stops, and the status is 130."""
        self.assertEqual(self.run_engine(True), 130)
        self.assertEqual(FakeTorrent.made[0].calls, ["start", "stop"])

    def test_error_reraised(self) -> None:
        """An anticipated error is raised again once the reactor is done, for
        cli.main to print; no "interrupted" is said on the way out."""
        self.patch(FakeTorrent, "start", lambda torrent: Deferred.fromCoroutine(_raise()))
        e = self.assertRaises(MetainfoError, self.run_engine)
        self.assertEqual(str(e), "x: boom")
        self.assertNotIn("interrupted", self.err.getvalue())

    def test_bug_exits_1(self) -> None:
        """An unexpected exception is left to react (logged with its traceback): 1."""

        async def bug() -> None:
            raise KeyError("bug")

        self.patch(FakeTorrent, "start", lambda torrent: Deferred.fromCoroutine(bug()))
        self.assertEqual(self.run_engine(), 1)


class AnticipatedTests(SynchronousTestCase):
    """``download._anticipated``: which failures print as one line."""

    def test_ours_and_os(self) -> None:
        """Our errors and OSError pass as they are."""
        e = MetainfoError("f", "bad")
        self.assertIs(download._anticipated(Failure(e)), e)
        o = OSError(13, "Permission denied")
        self.assertIs(download._anticipated(Failure(o)), o)

    def test_cannot_listen(self) -> None:
        """A port that cannot be bound becomes an OSError with Twisted's text."""
        e = CannotListenError("127.0.0.1", 6881, OSError(98, "Address already in use"))
        got = download._anticipated(Failure(e))
        self.assertIsInstance(got, OSError)
        self.assertIn("6881", str(got))
        self.assertIn("Address already in use", str(got))

    def test_bug(self) -> None:
        """Anything else is a bug, left to be logged with its traceback."""
        self.assertIsNone(download._anticipated(Failure(KeyError("x"))))


class BadInputTests(SynchronousTestCase):
    """Bad input to download and seed: one line on stderr, exit 1, no traceback."""

    def setUp(self) -> None:
        self.err = io.StringIO()
        self.patch(sys, "stderr", self.err)
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)

    def write(self, name: str, data: bytes) -> str:
        path = os.path.join(self.root, name)
        with open(path, "wb") as f:
            f.write(data)
        return path

    def assert_one_line(self, argv: list[str], *fragments: str) -> None:
        self.err.truncate(0)
        self.err.seek(0)
        self.assertEqual(cli.main(argv), 1)
        text = self.err.getvalue()
        self.assertEqual(text.count("\n"), 1, text)
        self.assertNotIn("Traceback", text)
        for fragment in fragments:
            self.assertIn(fragment, text)

    def test_missing_torrent(self) -> None:
        """A .torrent that is not there."""
        missing = os.path.join(self.root, "nope.torrent")
        self.assert_one_line(["download", missing, "-o", self.root],
                             "txbittorrent download: error:", "nope.torrent: no such file")
        self.assert_one_line(["seed", missing, "-d", self.root], "txbittorrent seed: error:")

    def test_corrupt_torrent(self) -> None:
        """A .torrent that is not bencoding, or lacks its info dictionary."""
        garbage = self.write("garbage.torrent", b"d8:announce")
        self.assert_one_line(["download", garbage, "-o", self.root], "garbage.torrent")
        no_info = self.write("noinfo.torrent", encode({b"announce": b"http://x/"}))
        self.assert_one_line(["seed", no_info, "-d", self.root], "noinfo.torrent")

    def test_files_out_of_range(self) -> None:
        """--files naming a file the torrent does not have."""
        path = self.write("t.torrent", torrent_with_pad())
        self.assert_one_line(["download", path, "-o", self.root, "--files", "0,5"],
                             "--files: no file number 5 (there are 2, numbered from 0)")

    def test_seed_missing_directory(self) -> None:
        """seed -d naming a directory that is not there."""
        path = self.write("t.torrent", torrent_with_pad())
        self.assert_one_line(["seed", path, "-d", os.path.join(self.root, "gone")],
                             "gone: no such directory")
