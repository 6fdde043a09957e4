"""bench.stream: its pure parts (sizes, the seek plan, figures, medians and
ratios, the table, the command line) and one small run end to end."""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from bench._stream_report import (
    SEEK_FIGURES,
    THROUGHPUT_FIGURES,
    parse_size,
    section,
    seek_figures,
    seek_plan,
    table,
    throughput_figures,
)
from bench.stream import parse_args
from tests.benchcase import BenchRunCase

MiB = 1024 * 1024


class ParseSizeTests(SynchronousTestCase):
    """``--size`` and friends."""

    def test_units(self) -> None:
        """Binary units, any case, and plain bytes."""
        self.assertEqual(parse_size("1GiB"), 1024 * MiB)
        self.assertEqual(parse_size("64MiB"), 64 * MiB)
        self.assertEqual(parse_size("64m"), 64 * MiB)
        self.assertEqual(parse_size("512k"), 512 * 1024)
        self.assertEqual(parse_size("1048576"), MiB)

    def test_rejects(self) -> None:
        """Zero, negative, fractional and unknown units are errors."""
        for text in ("0", "-1MiB", "1.5GiB", "3TB", "", "MiB"):
            self.assertRaises(ValueError, parse_size, text)


class SeekPlanTests(SynchronousTestCase):
    """The run's seeks, drawn from a seeded random generator."""

    def test_same_seed_same_plan(self) -> None:
        """The same seed gives the same seeks; another seed others."""
        a = seek_plan(1, 1024 * MiB, MiB, 10, 65536)
        self.assertEqual(a, seek_plan(1, 1024 * MiB, MiB, 10, 65536))
        self.assertNotEqual(a, seek_plan(2, 1024 * MiB, MiB, 10, 65536))

    def test_each_seek_inside_one_piece(self) -> None:
        """Every range lies inside the file and inside one piece, in distinct pieces."""
        size, piece = 64 * MiB + 12345, MiB
        plan = seek_plan(7, size, piece, 50, 65536)
        self.assertEqual(len(plan), 50)
        for offset, length in plan:
            self.assertGreaterEqual(offset, 0)
            self.assertLessEqual(offset + length, size)
            self.assertEqual(offset // piece, (offset + length - 1) // piece)
        self.assertEqual(len({offset // piece for offset, _ in plan}), 50)

    def test_short_last_piece_and_few_pieces(self) -> None:
        """A last piece shorter than the range gives a shorter range; more seeks
        than pieces visit pieces again."""
        plan = seek_plan(3, 2 * MiB + 100, MiB, 12, 65536)
        self.assertEqual(len(plan), 12)
        for offset, length in plan:
            self.assertLessEqual(offset + length, 2 * MiB + 100)
            if offset >= 2 * MiB:
                self.assertEqual(length, 100)

    def test_bad_arguments(self) -> None:
        """Sizes must be positive."""
        self.assertRaises(ValueError, seek_plan, 1, 0, MiB, 10, 1)
        self.assertRaises(ValueError, seek_plan, 1, MiB, MiB, 10, 0)


def _seeks(*ttfb: float, held: int = 10 * MiB, verified: bool = True) -> dict[str, Any]:
    return seek_figures({"verified": verified, "ttfb_seconds": list(ttfb),
                         "held_bytes": held}, 100 * MiB)


class FiguresTests(SynchronousTestCase):
    """A run's raw numbers become its figures."""

    def test_seek_figures(self) -> None:
        """Median, slowest and fastest seek in ms; the share of the file held."""
        run = _seeks(0.1, 0.3, 0.2, 0.9)
        self.assertAlmostEqual(run["ttfb_median_ms"], 250.0)
        self.assertAlmostEqual(run["ttfb_max_ms"], 900.0)
        self.assertAlmostEqual(run["ttfb_min_ms"], 100.0)
        self.assertAlmostEqual(run["background_share"], 0.1)

    def test_failed_seeks_have_no_figures(self) -> None:
        """A failed run, or one without a single seek, has no figures."""
        for run in (_seeks(0.1, verified=False), _seeks()):
            self.assertFalse(run["verified"])
            self.assertNotIn("ttfb_median_ms", run)

    def test_throughput_figures(self) -> None:
        """MB/s is 10**6 bytes per second; first byte in ms; head start in MiB."""
        run = throughput_figures({"verified": True, "seconds": 2.0, "first_byte_seconds": 0.01,
                                  "head_start_bytes": 3 * MiB}, 1000 * 1000 * 1000)
        self.assertAlmostEqual(run["mb_s"], 500.0)
        self.assertAlmostEqual(run["first_byte_ms"], 10.0)
        self.assertAlmostEqual(run["head_start_mib"], 3.0)
        plain = throughput_figures({"verified": True, "seconds": 4.0}, 1000 * 1000 * 1000)
        self.assertAlmostEqual(plain["mb_s"], 250.0)
        self.assertNotIn("first_byte_ms", plain)
        self.assertFalse(throughput_figures({"verified": False}, 1)["verified"])


class SectionTests(SynchronousTestCase):
    """Medians, spreads and ratios over runs."""

    def test_medians_spreads_ratios(self) -> None:
        """Failed runs count in nothing; the ratio is of the medians."""
        results = {
            "txbittorrent": [_seeks(0.1), _seeks(0.3), _seeks(0.2), _seeks(9, verified=False)],
            "libtorrent": [_seeks(0.4), _seeks(0.4)],
        }
        part = section(results, SEEK_FIGURES, "txbittorrent", "libtorrent")
        self.assertAlmostEqual(part["medians"]["txbittorrent"]["ttfb_median_ms"], 200.0)
        low, high = part["spreads"]["txbittorrent"]["ttfb_median_ms"]
        self.assertAlmostEqual(low, 100.0)
        self.assertAlmostEqual(high, 300.0)
        self.assertAlmostEqual(part["ratios"]["ttfb_median_ms"], 0.5)

    def test_no_reference_no_ratio(self) -> None:
        """Without verified runs of one side, the ratios are None."""
        results = {"stream": [throughput_figures({"verified": True, "seconds": 1.0}, 10**6)],
                   "download": [throughput_figures({"verified": False}, 10**6)]}
        part = section(results, THROUGHPUT_FIGURES, "stream", "download")
        self.assertIsNone(part["medians"]["download"]["mb_s"])
        self.assertIsNone(part["ratios"]["mb_s"])


class TableTests(SynchronousTestCase):
    """The printed report."""

    def report(self) -> dict[str, Any]:
        seek = section({"txbittorrent": [_seeks(0.2)],
                        "libtorrent": [_seeks(0.4), _seeks(1, verified=False)]},
                       SEEK_FIGURES, "txbittorrent", "libtorrent")
        seek["results"]["libtorrent"][1]["note"] = "piece 3: timed out"
        throughput = section(
            {"stream": [throughput_figures({"verified": True, "seconds": 2.0}, 10**9)],
             "download": [throughput_figures({"verified": True, "seconds": 1.0}, 10**9)]},
            THROUGHPUT_FIGURES, "stream", "download")
        return {
            "config": {"size": 1024 * MiB, "piece_length": MiB, "pieces": 1024, "runs": 1,
                       "seeks": 10, "seek_length": 65536, "seek_rate": 16e6, "seed": 1},
            "environment": {"cpu_count": 2, "load_before": 0.5, "load_after": 0.7,
                            "libtorrent": "2.1.1.0", "python": "3.11.7"},
            "seek": seek,
            "throughput": throughput,
        }

    def test_table(self) -> None:
        """Both parts, each client's median, the failure's note, the spreads
        and both ratios are printed."""
        text = table(self.report())
        self.assertIn("1024 MiB file", text)
        self.assertIn("txbittorrent / libtorrent (below 1: our first byte comes sooner): "
                      "ttfb 0.50", text)
        self.assertIn("failed(piece 3: timed out)", text)
        self.assertIn("stream / download (1: streaming as fast as downloading): MB/s 0.50", text)
        self.assertIn("200.0-200.0", text)
        self.assertIn("16 MB/s", text)

    def test_one_part(self) -> None:
        """A report with one part prints that part only."""
        report = self.report()
        del report["throughput"]
        text = table(report)
        self.assertIn("(a) seeks", text)
        self.assertNotIn("(b) throughput", text)


class ParseArgsTests(SynchronousTestCase):
    """The command line."""

    def test_defaults(self) -> None:
        """1 GiB, 5 runs, 10 seeks of 64 KiB, 16 MB/s, both parts."""
        args = parse_args([])
        self.assertEqual((args.size, args.runs, args.seeks, args.seek_length),
                         (1024 * MiB, 5, 10, 65536))
        self.assertEqual(args.seek_rate, 16e6)
        self.assertEqual(args.parts, ["seek", "throughput"])
        self.assertEqual(args.settle, 10.0)

    def test_smoke_options(self) -> None:
        """--size takes units; --parts picks one part; --json's directory is made."""
        out = os.path.join(os.path.abspath(self.mktemp()), "sub", "out.json")
        args = parse_args(["--size", "64MiB", "--runs", "1", "--parts", "seek",
                           "--json", out, "--keep-logs", "logs"])
        self.assertEqual((args.size, args.runs, args.parts), (64 * MiB, 1, ["seek"]))
        self.assertTrue(os.path.isdir(os.path.dirname(out)))
        self.assertEqual(args.keep_logs, "logs")

    def test_errors(self) -> None:
        """Bad sizes, parts, counts and a range bigger than a piece exit with usage."""
        for argv in (["--size", "lots"], ["--parts", "both"], ["--runs", "0"],
                     ["--seek-length", "2MiB"], ["--piece-length", "1000"],
                     ["--seek-rate", "0"]):
            with contextlib.redirect_stderr(io.StringIO()):
                self.assertRaises(SystemExit, parse_args, argv)


class BenchStreamSmallTests(BenchRunCase):
    """``python -m bench.stream`` at 8 MiB, one run, three seeks, end to end."""

    timeout = 180

    @defer.inlineCallbacks
    def test_small_run(self) -> Any:
        """It exits 0 with every measurement verified, both ratios, and
        nothing left behind (its directory, its processes)."""
        out = os.path.abspath(self.mktemp())
        stdout, stderr, code = yield self.run_bench(
            "bench.stream", "--size", "8MiB", "--piece-length", "256KiB", "--runs", "1",
            "--seeks", "3", "--settle", "0", "--timeout", "60", "--json", out,
        )
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        with open(out) as f:
            report = json.load(f)
        for part in ("seek", "throughput"):
            for name, runs in report[part]["results"].items():
                self.assertEqual([r["verified"] for r in runs], [True], (part, name))
        self.assertEqual(len(report["seek"]["results"]["txbittorrent"][0]["ttfb_seconds"]), 3)
        self.assertIsNotNone(report["seek"]["ratios"]["ttfb_median_ms"])
        self.assertIsNotNone(report["throughput"]["ratios"]["mb_s"])
        self.assertFalse(os.path.exists(report["workdir"]))
        self.assertGreaterEqual(len(report["pids"]), 6)
        for pid in report["pids"]:
            self.assertRaises(ProcessLookupError, os.kill, pid, 0)
