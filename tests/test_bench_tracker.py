"""bench.tracker: its pure parts (the command line, Zipf picking, the request
plans, what counts as a valid reply, figures, medians and ratios, the table)
and one tiny run end to end."""

from __future__ import annotations

import collections
import contextlib
import io
import json
import os
import shutil
import struct
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from bench._tracker_load import (
    FILL_PORT_BASE,
    LOAD_PORT_BASE,
    fill_plan,
    http_request,
    info_hashes,
    parse_http_response,
    request_plan,
    udp_body,
    valid_http_body,
    valid_udp_reply,
    whitelist_text,
    zipf_cum_weights,
)
import bench._tracker_procs as procs
from bench._tracker_procs import RATE_LIMIT, redis_argv, redis_available, tracker_argv
from bench._tracker_report import (
    LOAD_FIGURES,
    MEMORY_FIGURES,
    OPENTRACKER,
    OURS,
    REDIS,
    load_figures,
    memory_figures,
    section,
    table,
)
from bench.tracker import parse_args
from txbittorrent.core.tracker.announce import AnnounceEvent
from txbittorrent.core.tracker.udp import encode_announce_request
from tests.benchcase import BenchRunCase


class ParseArgsTests(SynchronousTestCase):
    """The command line."""

    def test_defaults(self) -> None:
        """5 runs of 10 s after 2 s of warm-up, 100k peers, 1000 torrents, both protocols."""
        args = parse_args([])
        self.assertEqual((args.runs, args.duration, args.warmup, args.peers, args.torrents),
                         (5, 10.0, 2.0, 100_000, 1000))
        self.assertEqual(args.parts, ["http", "udp"])
        self.assertFalse(args.redis)
        self.assertTrue(args.pin)

    def test_smoke_options(self) -> None:
        """--json's directory is made; --keep-logs, --redis and --parts are taken."""
        out = os.path.join(os.path.abspath(self.mktemp()), "sub", "out.json")
        args = parse_args(["--runs", "1", "--duration", "2", "--peers", "0", "--json", out,
                           "--keep-logs", "logs", "--redis", "--parts", "udp"])
        self.assertEqual((args.runs, args.duration, args.peers), (1, 2.0, 0))
        self.assertEqual((args.keep_logs, args.redis, args.parts), ("logs", True, ["udp"]))
        self.assertTrue(os.path.isdir(os.path.dirname(out)))

    def test_errors(self) -> None:
        """Zero runs or duration, unknown parts, negative Zipf and too many peers exit."""
        for argv in (["--runs", "0"], ["--duration", "0"], ["--parts", "tcp"],
                     ["--zipf", "-1"], ["--torrents", "1", "--peers", "40000"],
                     ["--clients", "0"]):
            with contextlib.redirect_stderr(io.StringIO()):
                self.assertRaises(SystemExit, parse_args, argv)


class ZipfTests(SynchronousTestCase):
    """Skewed popularity of the info hashes."""

    def test_weights(self) -> None:
        """Rank r weighs 1/r**s, cumulated; s = 0 is uniform."""
        self.assertEqual(zipf_cum_weights(3, 1.0), [1.0, 1.5, 1.5 + 1 / 3])
        self.assertEqual(zipf_cum_weights(3, 0.0), [1.0, 2.0, 3.0])
        self.assertRaises(ValueError, zipf_cum_weights, 0, 1.0)

    def test_plan_is_skewed_and_seeded(self) -> None:
        """The same seed gives the same plan; the first torrent is picked far
        more often than the hundredth, about 100 times at s = 1."""
        hashes = info_hashes(100)
        plan = request_plan(3, hashes, 20_000, 8, 1.0)
        self.assertEqual(plan, request_plan(3, hashes, 20_000, 8, 1.0))
        self.assertNotEqual(plan, request_plan(4, hashes, 20_000, 8, 1.0))
        counts = collections.Counter(r.info_hash for r in plan)
        self.assertGreater(counts[hashes[0]], 20 * max(1, counts[hashes[99]]))
        self.assertGreater(counts[hashes[0]], 3000)


class PlanTests(SynchronousTestCase):
    """What the generator sends."""

    def test_request_plan_mix(self) -> None:
        """Every event appears; completed announces have left 0; a slot has one
        peer_id and one port."""
        plan = request_plan(1, info_hashes(10), 4000, 4, 1.0)
        events = collections.Counter(r.event for r in plan)
        self.assertEqual(set(events), {None, AnnounceEvent.STARTED, AnnounceEvent.COMPLETED,
                                       AnnounceEvent.STOPPED})
        self.assertGreater(events[None], events[AnnounceEvent.STARTED])
        self.assertTrue(all(r.left == 0 for r in plan if r.event is AnnounceEvent.COMPLETED))
        by_peer = {(r.info_hash, r.peer_id): r.port for r in plan}
        self.assertTrue(all(LOAD_PORT_BASE <= p < LOAD_PORT_BASE + 4 for p in by_peer.values()))
        self.assertLessEqual(len(by_peer), 40)

    def test_fill_plan_distinct(self) -> None:
        """N distinct peers, round robin over the torrents, each (info hash, port)
        and each peer_id once, apart from the load's ports."""
        hashes = info_hashes(7)
        plan = list(fill_plan(hashes, 1000))
        self.assertEqual(len(plan), 1000)
        self.assertEqual(len({r.peer_id for r in plan}), 1000)
        self.assertEqual(len({(r.info_hash, r.port) for r in plan}), 1000)
        self.assertTrue(all(r.port >= FILL_PORT_BASE and r.event is AnnounceEvent.STARTED
                            for r in plan))
        self.assertRaises(ValueError, list, fill_plan(hashes[:1], 40_000))

    def test_encodings(self) -> None:
        """The whitelist is hex lines; the UDP body is the client's packet less
        its header; the HTTP request is a GET of /announce with a Host."""
        hashes = info_hashes(2)
        self.assertEqual(whitelist_text(hashes), hashes[0].hex() + "\n" + hashes[1].hex() + "\n")
        request = request_plan(1, hashes, 1, 2, 1.0)[0]
        self.assertEqual(udp_body(request), encode_announce_request(5, 6, request)[16:])
        self.assertEqual(len(udp_body(request)), 98 - 16)
        text = http_request(request, "127.0.0.1:80")
        self.assertTrue(text.startswith(b"GET /announce?info_hash="))
        self.assertTrue(text.endswith(b" HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n"))


class ValidReplyTests(SynchronousTestCase):
    """Only replies that decode as successful announces count."""

    def test_udp(self) -> None:
        """An announce reply with whole peers gives its transaction id; errors,
        short or ragged replies and a zero interval give None."""
        header = struct.pack(">IIIII", 1, 77, 1800, 2, 3)
        self.assertEqual(valid_udp_reply(header), 77)
        self.assertEqual(valid_udp_reply(header + bytes(12)), 77)
        self.assertIsNone(valid_udp_reply(header + bytes(5)))
        self.assertIsNone(valid_udp_reply(struct.pack(">II", 3, 77) + b"unknown torrent xx"))
        self.assertIsNone(valid_udp_reply(header[:12]))
        self.assertIsNone(valid_udp_reply(struct.pack(">IIIII", 1, 77, 0, 0, 0)))

    def test_http_body(self) -> None:
        """A dictionary with an interval and compact peers counts; a failure
        reason, ragged peers or garbage does not."""
        self.assertTrue(valid_http_body(b"d8:intervali1800e5:peers6:abcdefe"))
        self.assertTrue(valid_http_body(b"d8:intervali1800e5:peerslee"))
        self.assertFalse(valid_http_body(b"d14:failure reason4:nopee"))
        self.assertFalse(valid_http_body(b"d8:intervali1800e5:peers5:abcdee"))
        self.assertFalse(valid_http_body(b"d5:peers0:e"))
        self.assertFalse(valid_http_body(b"<html>"))

    def test_http_response(self) -> None:
        """A whole response is parsed with its length, whether the connection
        stays open, and its verdict; a partial one is None."""
        body = b"d8:intervali1800e5:peers0:e"
        response = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
        self.assertEqual(parse_http_response(response + b"HTTP/1.1"),
                         (len(response), True, True, body))
        self.assertIsNone(parse_http_response(response[:-1]))
        closing = response.replace(b"OK\r\n", b"OK\r\nConnection: close\r\n")
        self.assertEqual(parse_http_response(closing)[2], False)  # type: ignore[index]
        refused = response.replace(b"200 OK", b"400 Bad")
        self.assertEqual(parse_http_response(refused)[1], False)  # type: ignore[index]

    def test_http_chunked(self) -> None:
        """A chunked body (Twisted's for a reply written later) is put together;
        incomplete is None; a bad chunk size is a failure that ends the connection."""
        body = b"d8:intervali1800e5:peers0:e"
        chunked = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"a\r\n" + body[:10] + b"\r\n" + b"%x\r\n" % (len(body) - 10)
                   + body[10:] + b"\r\n0\r\n\r\n")
        self.assertEqual(parse_http_response(chunked + b"HTTP"),
                         (len(chunked), True, True, body))
        for cut in (len(chunked) - 1, len(chunked) - 3, len(chunked) - 10):
            self.assertIsNone(parse_http_response(chunked[:cut]))
        bad = chunked.replace(b"a\r\n", b"zz\r\n")
        self.assertEqual(parse_http_response(bad), (len(bad), False, False, b""))


class ArgvTests(SynchronousTestCase):
    """The processes' command lines."""

    def test_trackers(self) -> None:
        """Ours: the CLI with the whitelist and the rate limit out of the way;
        opentracker: -i/-p/-P/-w, chrooted; both pinned behind taskset."""
        ours = tracker_argv(OURS, 8000, 8001, "/d/wl.txt", "/d", 0, 1000)
        self.assertEqual(ours[ours.index("tracker") + 1:][:6],
                         ["--http", "tcp:8000:interface=127.0.0.1", "--udp", "8001",
                          "--whitelist", "/d/wl.txt"])
        self.assertIn(str(RATE_LIMIT), ours)
        ot = tracker_argv(OPENTRACKER, 8000, 8001, "/d/wl.txt", "/d", 0, 1000)
        self.assertIn("opentracker", ot)
        self.assertEqual(ot[ot.index("opentracker"):],
                         ["opentracker", "-i", "127.0.0.1", "-p", "8000", "-P", "8001",
                          "-w", "wl.txt", "-d", "/d"])
        if shutil.which("taskset"):
            self.assertEqual(ot[:3], ["taskset", "-c", "0"])
        self.assertEqual(tracker_argv(OURS, 1, 2, "w", "d", None, 10)[0:2][1], "-m")
        redis = tracker_argv(OURS, 1, 2, "w", "d", None, 10, "redis://127.0.0.1:7/0")
        self.assertEqual(redis[-2:], ["--redis", "redis://127.0.0.1:7/0"])

    def test_redis_available(self) -> None:
        """The Redis figure needs both redis-server and our --redis option."""
        helps: list[str] = []

        class Done:
            def __init__(self, stdout: str) -> None:
                self.stdout = stdout

        def run(argv: list[str], **kwargs: Any) -> Done:
            helps.append(" ".join(argv[1:]))
            return Done(helps_text[0])

        helps_text = ["usage: txbittorrent tracker [--db FILE]"]
        self.patch(procs.subprocess, "run", run)
        self.patch(procs.shutil, "which", lambda name: None)
        self.assertEqual(redis_available(), (False, "redis-server is not installed"))
        self.patch(procs.shutil, "which", lambda name: "/usr/bin/" + name)
        self.assertEqual(redis_available(),
                         (False, "txbittorrent tracker has no --redis option yet"))
        self.assertEqual(helps, ["-m txbittorrent tracker --help"])
        helps_text[0] = "usage: txbittorrent tracker [--redis URL]"
        self.assertEqual(redis_available(), (True, ""))

    def test_redis(self) -> None:
        """redis-server on loopback without persistence."""
        argv = redis_argv(6400, "/d/redis", None)
        self.assertEqual(argv[:5], ["redis-server", "--bind", "127.0.0.1", "--port", "6400"])
        self.assertIn("--save", argv)
        self.assertEqual(argv[argv.index("--appendonly") + 1], "no")


def _load(valid: int, seconds: float = 2.0, cpu: float | None = 1.0) -> dict[str, Any]:
    return load_figures({"valid": valid, "invalid": 0, "lost": 0, "seconds": seconds,
                         "generator_cpu": 0.5, "slowest_ms": 12.5}, cpu)


class FiguresTests(SynchronousTestCase):
    """A window's or a fill's counts become figures."""

    def test_load(self) -> None:
        """Valid replies per second, the tracker's CPU share and replies per CPU
        second; nothing valid is a failed window."""
        window = _load(1000, 2.0, 1.0)
        self.assertEqual((window["per_s"], window["tracker_cpu"], window["per_cpu_s"],
                          window["generator_cpu"]), (500.0, 0.5, 1000.0, 0.25))
        self.assertTrue(window["ok"])
        self.assertFalse(_load(0)["ok"])
        self.assertNotIn("tracker_cpu", _load(10, cpu=None))

    def test_memory(self) -> None:
        """RSS growth in bytes per peer answered, with redis-server's growth
        added when given; no RSS reading is a failure."""
        fill = memory_figures({"valid": 1024}, 1000, 1100)
        self.assertEqual((fill["bytes_per_peer"], fill["peers"]), (100.0, 1024))
        both = memory_figures({"valid": 1024}, 1000, 1100, 500, 600)
        self.assertEqual(both["bytes_per_peer"], 200.0)
        self.assertFalse(memory_figures({"valid": 1024}, None, 1100)["ok"])
        self.assertFalse(memory_figures({"valid": 0}, 1, 2)["ok"])


class SectionTests(SynchronousTestCase):
    """Medians, spreads and ratios over runs."""

    def test_medians_and_ratios(self) -> None:
        """Failed runs count in nothing; ours/opentracker and redis/ours are
        ratios of the medians."""
        part = section({OURS: [_load(1000), _load(3000), _load(2000), {"ok": False}],
                        OPENTRACKER: [_load(8000)], REDIS: [_load(1000)]}, LOAD_FIGURES)
        self.assertEqual(part["medians"][OURS]["per_s"], 1000.0)
        self.assertEqual(part["spreads"][OURS]["per_s"], (500.0, 1500.0))
        self.assertEqual(part["ratios"][f"{OURS}/{OPENTRACKER}"]["per_s"], 0.25)
        self.assertEqual(part["ratios"][f"{REDIS}/{OURS}"]["per_s"], 0.5)

    def test_alone(self) -> None:
        """Ours alone: medians, no ratio."""
        part = section({OURS: [_load(1000)]}, LOAD_FIGURES)
        self.assertEqual(part["ratios"], {})


class TableTests(SynchronousTestCase):
    """The printed report."""

    def report(self) -> dict[str, Any]:
        udp = section({OURS: [_load(1000)], OPENTRACKER: [_load(8000), {"ok": False,
                                                                         "note": "died"}]},
                      LOAD_FIGURES)
        memory = section({OURS: [memory_figures({"valid": 1024}, 0, 100)],
                          OPENTRACKER: [memory_figures({"valid": 1024}, 0, 10)]},
                         MEMORY_FIGURES)
        return {
            "config": {"runs": 2, "duration": 10.0, "warmup": 2.0, "torrents": 1000,
                       "zipf_s": 1.0, "clients": 16, "depth": 4, "peers": 1024,
                       "pinning": "trackers on CPU 0, load generator on CPU 1"},
            "environment": {"cpu_count": 2, "load_before": 0.1, "load_after": 0.2,
                            "python": "3.11.7"},
            "opentracker": "in the same run",
            "redis": "not available (redis-server is not installed)",
            "udp": udp, "memory": memory,
        }

    def test_table(self) -> None:
        """Each part, the medians, a failed run's note, the spreads and ratios print."""
        text = table(self.report())
        self.assertIn("UDP announces (BEP 15)", text)
        self.assertNotIn("HTTP announces", text)
        self.assertIn("failed(died)", text)
        self.assertIn("txbittorrent/opentracker (of the medians): "
                      "announces/s 0.12, per CPU s 0.12", text)
        self.assertIn("txbittorrent/opentracker (of the medians): bytes/peer 10.00", text)
        self.assertIn("redis backend: not available", text)
        self.assertIn("500-500", text)
        self.assertIn("slowest ms", text)
        self.assertIn("12-12", text)


class BenchTrackerSmallTests(BenchRunCase):
    """``python -m bench.tracker`` for about a second of load, end to end."""

    timeout = 120

    @defer.inlineCallbacks
    def test_small_run(self) -> Any:
        """It exits 0 with every window and fill ok, a ratio when opentracker
        is here (ours alone otherwise), the Redis backend or the reason it is
        not available, and nothing left behind."""
        out = os.path.abspath(self.mktemp())
        stdout, stderr, code = yield self.run_bench(
            "bench.tracker", "--runs", "1", "--duration", "0.5", "--warmup", "0.2",
            "--peers", "300", "--torrents", "20", "--plan-size", "2000", "--redis",
            "--json", out,
        )
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        with open(out) as f:
            report = json.load(f)
        have_ot = shutil.which("opentracker") is not None
        have_redis = redis_available()[0]
        expected = {OURS} | ({OPENTRACKER} if have_ot else set()) | (
            {REDIS} if have_redis else set())
        for part in ("http", "udp", "memory"):
            results = report[part]["results"]
            self.assertEqual(set(results), expected)
            for name, runs in results.items():
                self.assertEqual([r["ok"] for r in runs], [True], (part, name))
            self.assertEqual(f"{OURS}/{OPENTRACKER}" in report[part]["ratios"], have_ot)
            self.assertEqual(f"{REDIS}/{OURS}" in report[part]["ratios"], have_redis)
        self.assertEqual(report["memory"]["results"][OURS][0]["peers"], 300)
        if not have_redis:
            self.assertIn(b"redis backend: not available", stdout + stderr)
        self.assertFalse(os.path.exists(report["workdir"]))
        for pid in report["pids"]:
            self.assertRaises(ProcessLookupError, os.kill, pid, 0)
