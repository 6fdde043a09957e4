"""The Transmission seeding benchmark: reading Transmission's output, the
figures and the table, and its --tiny mode end to end."""

from __future__ import annotations

import contextlib
import io
import json
import os
import socket
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from bench import transmission
from bench._common import environment
from bench._common import free_port as _free_port
from bench._transmission_leecher import (
    Status,
    Timeline,
    TransmissionLeecher,
    available,
    parse_status,
    settings,
)
from bench._transmission_report import figures, spreads, summarise, table, verdicts
from tests.benchcase import BenchRunCase

MiB = 1024 * 1024
LINE = ("Progress: {pct}%, dl from {n} of 1 peers ({rate}), ul to 0 (0 kB/s) [0.00]"
        "          ")
COMPLETE = ('[2026-12-05 05:07:54.606] transmission.bin: State changed from "Incomplete" '
            'to "Complete"')


def line(pct: str = "0.0", rate: str = "0 kB/s", n: int = 1) -> str:
    """A status line as transmission-cli 3.00 prints it."""
    return LINE.format(pct=pct, n=n, rate=rate)


class ParseStatusTests(SynchronousTestCase):
    """``parse_status`` reads one of transmission-cli's status lines."""

    def test_progress(self) -> None:
        """Percent, peers downloaded from and the rate in bytes/s (units of 1000)."""
        self.assertEqual(parse_status(line("34.7", "22.12 MB/s")),
                         Status(percent=34.7, rate=22.12e6, peers=1))
        self.assertEqual(parse_status(line("0.2", "196 kB/s", n=0)),
                         Status(percent=0.2, rate=196e3, peers=0))

    def test_seeding(self) -> None:
        """A Seeding line is complete: 100%, seeding."""
        status = parse_status("Seeding, uploading to 0 of 0 peer(s), 0 kB/s [0.00]   ")
        self.assertEqual(status, Status(percent=100.0, rate=0.0, peers=0, seeding=True))

    def test_other_lines(self) -> None:
        """The banner, log lines, a cut-off status line and nothing are not status lines."""
        for text in ("transmission-cli 3.00 (bb6b5a062e)", COMPLETE, "Progress: 1.0%, dl fr",
                     "", "Verifying local files (0.00%, 100.00% valid)"):
            self.assertIsNone(parse_status(text), text)


class TimelineTests(SynchronousTestCase):
    """``Timeline`` keeps the moments of a transfer as the lines are read."""

    def test_moments(self) -> None:
        """Running at the first status line, first data at the first
        nonzero rate or progress, full at 100%, complete at the log line."""
        timeline = Timeline()
        timeline.status(line(n=0), 1.0)
        timeline.status(line(), 2.0)
        timeline.status(line("0.0", "32 kB/s"), 3.0)
        timeline.status(line("50.0", "20 MB/s"), 4.0)
        timeline.log("[2026-12-05 05:07:37.294] x: Could not connect to tracker", 4.1)
        timeline.status(line("100.0", "20 MB/s"), 5.0)
        timeline.log(COMPLETE, 5.3)
        timeline.status("Seeding, uploading to 0 of 0 peer(s), 0 kB/s [0.00]", 5.4)
        self.assertEqual((timeline.running, timeline.first_data, timeline.full,
                          timeline.complete), (1.0, 3.0, 5.0, 5.3))
        self.assertEqual(timeline.complete_logged, "2026-12-05 05:07:54.606")
        self.assertEqual(timeline.lines, 6)

    def test_bind_error(self) -> None:
        """A log line saying it could not bind its port is kept."""
        timeline = Timeline()
        text = ("[2026-12-05 05:20:12.933] Couldn't bind port 48087 on 127.0.0.1: Address "
                "already in use (Is another copy of Transmission already running?)")
        timeline.log(text, 1.0)
        self.assertEqual(timeline.bind_error, text)
        self.assertIsNone(timeline.complete)

    def test_seeding_without_log(self) -> None:
        """Without the log line, the first Seeding line is the completion."""
        timeline = Timeline()
        timeline.status(line("10.0", "1 MB/s"), 1.0)
        timeline.status("Seeding, uploading to 0 of 0 peer(s), 0 kB/s [0.00]", 2.0)
        timeline.status("Seeding, uploading to 0 of 0 peer(s), 0 kB/s [0.00]", 2.2)
        self.assertEqual((timeline.first_data, timeline.complete), (1.0, 2.0))


class FollowTests(SynchronousTestCase):
    """``TransmissionLeecher.follow`` reads its two streams live."""

    def setUp(self) -> None:
        self.leecher = TransmissionLeecher(self.mktemp(), "t.torrent", 6881)
        os.makedirs(self.leecher.work)
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        self.open = [self.out_r, self.out_w, self.err_r, self.err_w]
        self.addCleanup(self.close_open)
        self.leecher.attach(self.out_r, self.err_r)
        self.addCleanup(self.leecher.stop)

    def close_open(self) -> None:
        for fd in self.open:
            os.close(fd)

    def test_status_line_taken_before_the_next(self) -> None:
        """A status line counts as soon as it is read whole, not when the
        next line's carriage return ends it; a cut-off one waits."""
        os.write(self.out_w, b"transmission-cli 3.00 (bb6b5a062e)\n\r" + line().encode())
        self.assertTrue(self.leecher.follow("running", 0))
        os.write(self.out_w, b"\r" + line("1.5", "2 MB/s").encode()[:20])
        self.assertFalse(self.leecher.follow("first_data", 0))
        os.write(self.out_w, line("1.5", "2 MB/s").encode()[20:])
        self.assertTrue(self.leecher.follow("first_data", 0))
        self.assertEqual(self.leecher.timeline.last, Status(1.5, 2e6, 1))

    def test_complete_from_log(self) -> None:
        """The Complete log line on stderr ends a follow for "complete";
        every log line goes to the log file."""
        os.write(self.err_w, b"[2026-12-05 05:07:37.294] x: Could not connect to tracker\n")
        os.write(self.err_w, COMPLETE.encode() + b"\n")
        self.assertTrue(self.leecher.follow("complete", 0))
        self.assertIsNone(self.leecher.timeline.running)
        self.assertIn("Could not connect", self.leecher.tail())

    def test_end_of_file(self) -> None:
        """Both streams closed before the moment: False, without waiting out the deadline."""
        for fd in (self.out_w, self.err_w):
            os.close(fd)
            self.open.remove(fd)
        self.assertFalse(self.leecher.follow("complete", 30))


class SettingsTests(SynchronousTestCase):
    """Transmission's settings keep it on loopback, alone, in plaintext."""

    def test_settings(self) -> None:
        """No DHT, LPD, PEX, port forwarding, uTP or RPC; bound to 127.0.0.1
        at the given port; plaintext preferred."""
        got = settings(51413)
        for key in ("dht-enabled", "lpd-enabled", "pex-enabled", "port-forwarding-enabled",
                    "utp-enabled", "rpc-enabled", "peer-port-random-on-start"):
            self.assertIs(got[key], False, key)
        self.assertEqual((got["bind-address-ipv4"], got["peer-port"], got["encryption"]),
                         ("127.0.0.1", 51413, 0))


def raw_run(seeder: str = "tx", **changes: Any) -> dict[str, Any]:
    """A run's raw moments: dialled at 10 s, data at 15 s, complete at 19 s."""
    raw: dict[str, Any] = {
        "seeder": seeder, "dialled": 10.0, "first_data": 15.0, "complete": 19.0,
        "seeder_first": 14.5, "matched": True, "seeder_cpu": 1.0, "seeder_data_cpu": 0.5,
        "transmission_cpu": 2.0,
        "others_cpu_share": 0.05, "pids": [1, 2],
    }
    raw.update(changes)
    return raw


class FiguresTests(SynchronousTestCase):
    """``figures``: a run's moments become its figures."""

    def test_verified(self) -> None:
        """MB/s over first data to complete; the waits; CPU per GiB from
        the seeder's first byte."""
        got = figures(raw_run(), 128 * MiB)
        self.assertTrue(got["verified"])
        self.assertAlmostEqual(got["data_seconds"], 4.0)
        self.assertAlmostEqual(got["mb_s"], 128 * MiB / 1e6 / 4.0)
        self.assertAlmostEqual(got["connect_seconds"], 9.0)
        self.assertAlmostEqual(got["wait_seconds"], 5.0)
        self.assertAlmostEqual(got["seeder_data_seconds"], 4.5)
        self.assertAlmostEqual(got["seeder_cpu"], 1.0)
        self.assertAlmostEqual(got["cpu_s_per_gib"], 4.0)

    def test_mismatch_fails(self) -> None:
        """A copy that differs from the source: not verified, no figures."""
        got = figures(raw_run(matched=False), 128 * MiB)
        self.assertFalse(got["verified"])
        self.assertNotIn("mb_s", got)
        self.assertEqual(got["note"], "Transmission's copy differs from the source")

    def test_incomplete_keeps_note(self) -> None:
        """A run that did not complete keeps the note it was given."""
        got = figures(raw_run(complete=None, matched=False, note="timed out"), MiB)
        self.assertEqual((got["verified"], got["note"]), (False, "timed out"))


def results(tx_rates: list[float], lt_rates: list[float]) -> dict[str, list[dict[str, Any]]]:
    """Verified runs at these MB/s (data seconds chosen to match), 128 MiB."""
    out: dict[str, list[dict[str, Any]]] = {}
    for seeder, rates in (("tx", tx_rates), ("lt", lt_rates)):
        out[seeder] = [figures(raw_run(seeder, complete=15.0 + 128 * MiB / 1e6 / rate), 128 * MiB)
                       for rate in rates]
    return out


class VerdictTests(SynchronousTestCase):
    """``verdicts``: ratios of the medians, and "no difference" within the spread."""

    def test_no_difference(self) -> None:
        """Medians closer than the wider spread: no difference."""
        got = verdicts(results([20, 21, 25], [22, 23, 24]))
        self.assertAlmostEqual(got["mb_s"]["ratio"], 21 / 23)
        self.assertEqual(got["mb_s"]["verdict"], "no difference")

    def test_better_and_worse(self) -> None:
        """Faster beyond the spreads is better; more CPU per GiB is worse."""
        res = results([30, 31, 32], [20, 21, 22])
        for run in res["tx"]:
            run["cpu_s_per_gib"] = 9.0
        for n, run in enumerate(res["lt"]):
            run["cpu_s_per_gib"] = 4.0 + n * 0.1
        got = verdicts(res)
        self.assertEqual(got["mb_s"]["verdict"], "better")
        self.assertEqual(got["cpu_s_per_gib"]["verdict"], "worse")

    def test_within_resolution(self) -> None:
        """Runs that agree to the hundredth but differ by less than a status
        line's interval in byte-done: no difference."""
        got = verdicts(results([18.0, 18.0, 18.0], [17.8, 17.8, 17.8]))
        self.assertAlmostEqual(got["mb_s"]["ratio"], 18.0 / 17.8)
        self.assertEqual(got["mb_s"]["verdict"], "no difference")
        self.assertGreater(got["mb_s"]["margin"], 0.2)

    def test_too_few_runs(self) -> None:
        """Under three verified runs a side: a ratio, but no verdict."""
        got = verdicts(results([30], [20]))
        self.assertAlmostEqual(got["mb_s"]["ratio"], 1.5)
        self.assertIn("no verdict", got["mb_s"]["verdict"])


class TableTests(SynchronousTestCase):
    """The printed table: medians, per-run values, spreads, ratios, notes."""

    def test_table(self) -> None:
        """Each seeder's row, its per-run MB/s and failures, the spread
        table and the ratio line."""
        res = results([20, 22, 21], [21, 23, 22])
        res["lt"].append(figures(raw_run("lt", complete=None, matched=False,
                                         note="did not complete"), 128 * MiB))
        report = {
            "config": {"size_mib": 128, "pieces": 512, "piece_length": 262144, "runs": 4,
                       "transmission_version": "3.00 (bb6b5a062e)"},
            "environment": environment(0.5),
            "results": res, "medians": summarise(res), "spreads": spreads(res),
            "verdicts": verdicts(res),
        }
        text = table(report)
        self.assertIn("Transmission 3.00 (bb6b5a062e)", text)
        self.assertRegex(text, r"txbittorrent +21\.0 .* 3/3  20\.0 22\.0 21\.0")
        self.assertRegex(text, r"libtorrent +22\.0 .* 3/4  21\.0 23\.0 22\.0 failed")
        self.assertRegex(text, r"txbittorrent +20\.0-22\.0")
        self.assertIn("txbittorrent / libtorrent: MB/s 0.95 (no difference)", text)
        self.assertIn("libtorrent run 4: did not complete", text)


class ParseArgsTests(SynchronousTestCase):
    """The command line."""

    def test_tiny(self) -> None:
        """--tiny: 16 MiB, one run, no pause, a bounded transfer."""
        args = transmission.parse_args(["--tiny"])
        self.assertEqual((args.size_mib, args.runs, args.settle, args.timeout),
                         (16, 1, 0.0, 120.0))

    def test_defaults(self) -> None:
        """256 MiB, five runs, both seeders."""
        args = transmission.parse_args([])
        self.assertEqual((args.size_mib, args.runs, args.seeders), (256, 5, ["tx", "lt"]))

    def test_bad_seeders(self) -> None:
        """An unknown seeder is refused."""
        with contextlib.redirect_stderr(io.StringIO()) as said:
            self.assertRaises(SystemExit, transmission.parse_args, ["--seeders", "tx,aria2"])
        self.assertIn("--seeders", said.getvalue())


class StartTransmissionTests(SynchronousTestCase):
    """``start_transmission`` against a real transmission-cli whose port is taken."""

    def setUp(self) -> None:
        missing = available()
        if missing:
            raise SkipTest(missing)
        self.work = os.path.abspath(self.mktemp())
        os.makedirs(self.work)
        self.torrent = os.path.join(self.work, "t.torrent")
        source = os.path.join(self.work, "source.bin")
        with open(source, "wb") as f:
            f.write(b"x" * 65536)
        from txbittorrent.storage.create import create_torrent

        with open(self.torrent, "wb") as f:
            f.write(create_torrent(source, trackers=["http://127.0.0.1:9/announce"],
                                   created_by=None))
        self.taken = socket.socket()
        self.addCleanup(self.taken.close)
        self.taken.bind(("127.0.0.1", 0))
        self.taken.listen()
        self.ports: list[int] = []
        self.patch(transmission, "free_port", lambda: self.ports.pop(0))

    def test_another_port(self) -> None:
        """Its port taken, Transmission is started again on another one."""
        taken, free = self.taken.getsockname()[1], _free_port()
        self.ports[:] = [taken, free]
        pids: list[int] = []
        leecher = transmission.start_transmission(self.work, self.torrent, pids)
        self.addCleanup(leecher.stop)
        self.assertEqual((leecher.peer_port, len(pids)), (free, 2))
        self.assertIsNone(leecher.timeline.bind_error)
        self.assertRaises(ProcessLookupError, os.kill, pids[0], 0)

    def test_gives_up(self) -> None:
        """Every port taken: a failure that says so, no process left."""
        self.ports[:] = [self.taken.getsockname()[1]] * 2
        pids: list[int] = []
        error = self.assertRaises(transmission.ChildFailed, transmission.start_transmission,
                                  self.work, self.torrent, pids, attempts=2)
        self.assertIn("could not listen (2 ports tried)", str(error))
        for pid in pids:
            self.assertRaises(ProcessLookupError, os.kill, pid, 0)


class BenchTransmissionTinyTests(BenchRunCase):
    """``python -m bench.transmission --tiny``: each seeder to a real transmission-cli."""

    timeout = 300  # two transfers, each with up to ~13 s of Transmission's rechoke wait

    def setUp(self) -> None:
        super().setUp()
        missing = available()
        if missing:
            raise SkipTest(missing)

    @defer.inlineCallbacks
    def test_tiny(self) -> Any:
        """Both seeders get Transmission to complete with a matching copy;
        the JSON holds the moments and ratios, and nothing the benchmark
        made outlives it."""
        out = os.path.abspath(self.mktemp())
        stdout, stderr, code = yield self.run_bench("bench.transmission", "--tiny", "--json", out)
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        self.assertIn(b"txbittorrent / libtorrent", stdout)
        with open(out) as f:
            report = json.load(f)
        self.assertEqual((report["config"]["size_mib"], report["config"]["runs"]), (16, 1))
        self.assertEqual(sorted(report["results"]), ["lt", "tx"])
        for seeder, runs in report["results"].items():
            self.assertEqual([r["verified"] for r in runs], [True], (seeder, runs))
            run = runs[0]
            self.assertGreater(run["connect_seconds"], run["data_seconds"], seeder)
            self.assertGreater(run["seeder_cpu"], 0, seeder)
            self.assertGreaterEqual(run["uploaded"], 16 * MiB, seeder)
            for pid in run["pids"]:
                self.assertRaises(ProcessLookupError, os.kill, pid, 0)
        self.assertIsNotNone(report["verdicts"]["mb_s"]["ratio"])
        self.assertFalse(os.path.exists(report["workdir"]))
