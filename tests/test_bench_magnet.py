"""The magnet benchmark: its figures and table, and its --tiny mode end to end."""

from __future__ import annotations

import contextlib
import io
import json
import os
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from tests.benchcase import BenchRunCase
from bench import magnet
from bench._common import environment
from bench._download_report import compare



def message(**changes: Any) -> dict[str, Any]:
    """A leecher's result line: dialled at 0.5 s, metadata 2 ms later,
    complete at 1.5 s."""
    line: dict[str, Any] = {
        "event": "result", "ok": True, "added": 0.0002, "dialled": 0.5, "handshake": None,
        "metadata": 0.502, "complete": 1.5, "seconds": 1.501, "cpu": 0.8, "threads": {},
        "pieces": 256, "note": "",
    }
    line.update(changes)
    return line


class LeecherFiguresTests(SynchronousTestCase):
    """``leecher_figures`` turns a result line into a run's raw figures."""

    def test_times_after_connect(self) -> None:
        """The times after the connection are the reported ones less the
        moment the leecher dialled; MB/s comes from complete - connect."""
        raw = magnet.leecher_figures(message(), 256)
        self.assertTrue(raw["verified"])
        self.assertEqual(raw["connect_seconds"], 0.5)
        self.assertAlmostEqual(raw["metadata_after_connect"], 0.002)
        self.assertAlmostEqual(raw["complete_after_connect"], 1.0)
        self.assertAlmostEqual(raw["data_seconds"], 0.998)
        self.assertAlmostEqual(raw["seconds"], 1.0)
        self.assertEqual(raw["complete_seconds"], 1.5)

    def test_missing_moment_fails(self) -> None:
        """A result that says ok but lacks the metadata moment is not verified."""
        raw = magnet.leecher_figures(message(metadata=None), 256)
        self.assertFalse(raw["verified"])
        self.assertNotIn("metadata_after_connect", raw)
        self.assertIn("a moment not reported", raw["note"])

    def test_note_kept(self) -> None:
        """The leecher's own note (a timeout, say) is what the run says."""
        raw = magnet.leecher_figures(
            message(ok=False, complete=None, note="timed out after 60 s"), 256)
        self.assertFalse(raw["verified"])
        self.assertEqual(raw["note"], "timed out after 60 s")


class TableTests(SynchronousTestCase):
    """The printed table: medians, per-run values, spreads, ratios."""

    def report(self, results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        medians = magnet.summarise(results)
        return {
            "config": {"size_mib": 256, "files": 1, "piece_length": 1 << 20, "pieces": 256,
                       "info_bytes": 5_160, "metadata_pieces": 1, "runs": 2},
            "environment": environment(0.0),
            "results": results,
            "medians": medians,
            "spreads": magnet.spreads(results),
            "ratios": compare(medians, tuple(magnet.RATIOS)),
        }

    def test_ratios_and_per_run(self) -> None:
        """Ours against libtorrent: the ratios of the medians, and each
        verified run as metadata ms / complete s."""
        ours = dict(magnet.leecher_figures(
            message(dialled=0.001, metadata=0.003, complete=1.001), 256), mb_s=1.0)
        theirs = dict(magnet.leecher_figures(message(), 256), mb_s=1.0)
        text = magnet.table(self.report({"txbittorrent": [ours], "libtorrent": [theirs]}))
        self.assertIn("3.0/1.001", text)
        self.assertIn("502.0/1.500", text)
        # 0.003 / 0.502 and (0.003 - 0.001) / 0.002.
        self.assertIn("metadata 0.01, metadata after connect 1.00", text)
        self.assertIn("complete 0.67, complete after connect 1.00", text)

    def test_failed_run(self) -> None:
        """A failed run shows its note and counts in no median; the ratios
        it cannot give say n/a."""
        failed = {"verified": False, "note": "the downloaded data differs from the source"}
        theirs = dict(magnet.leecher_figures(message(), 256), mb_s=1.0)
        text = magnet.table(self.report({"txbittorrent": [failed], "libtorrent": [theirs]}))
        self.assertIn("failed(the downloaded data differs from the source)", text)
        self.assertIn(" 0/1 ", text)
        self.assertIn("metadata n/a", text)


class ParseArgsTests(SynchronousTestCase):
    """The command line."""

    def test_tiny(self) -> None:
        """--tiny is a few MiB, one run, no pause, a short time limit."""
        args = magnet.parse_args(["--tiny"])
        self.assertEqual((args.size_mib, args.runs, args.settle, args.timeout),
                         (4, 1, 0.0, 60.0))
        self.assertEqual(args.piece_length, 64 * 1024)

    def test_defaults(self) -> None:
        """By default: 256 MiB in 1 MiB pieces, five runs, a 10 s pause."""
        args = magnet.parse_args([])
        self.assertEqual((args.size_mib, args.piece_length, args.runs, args.settle),
                         (256, 1 << 20, 5, 10.0))

    def test_bad_piece_length(self) -> None:
        """A piece length below 16 KiB is refused before anything is written."""
        with contextlib.redirect_stderr(io.StringIO()) as said:
            self.assertRaises(SystemExit, magnet.parse_args, ["--piece-length", "1024"])
        self.assertIn("--piece-length at least 16384", said.getvalue())


class BenchMagnetTinyTests(BenchRunCase):
    """``python -m bench.magnet --tiny`` against a libtorrent seeder on 127.0.0.1."""

    timeout = 120

    @defer.inlineCallbacks
    def test_tiny(self) -> Any:
        """Both leechers, given only the magnet, get the metadata and every
        verified byte; the JSON holds the times and the ratios, and nothing
        the benchmark made outlives it."""
        out = os.path.abspath(self.mktemp())
        stdout, stderr, code = yield self.run_bench("bench.magnet", "--tiny", "--json", out)
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        self.assertIn(b"txbittorrent / libtorrent", stdout)
        self.assertIn(b"load average", stdout)
        with open(out) as f:
            report = json.load(f)
        config = report["config"]
        self.assertEqual((config["size_mib"], config["runs"]), (4, 1))
        self.assertEqual(config["metadata_pieces"], 1)
        # The info hash alone: no tracker, no peer, no name.
        self.assertRegex(config["magnet"], r"^magnet:\?xt=urn:btih:[0-9a-f]{40}$")

        self.assertEqual(list(report["results"]), ["txbittorrent", "libtorrent"])
        for name, runs in report["results"].items():
            self.assertEqual([r["verified"] for r in runs], [True], (name, runs))
            run = runs[0]
            self.assertGreaterEqual(run["connect_seconds"], 0, name)
            self.assertGreater(run["metadata_seconds"], run["connect_seconds"], name)
            self.assertGreater(run["complete_seconds"], run["metadata_seconds"], name)
            self.assertGreater(run["cpu_seconds"], 0, name)
            self.assertGreater(run["peak_rss_mib"], 0, name)
        self.assertIsNotNone(report["results"]["txbittorrent"][0]["handshake_seconds"])
        for figure in ("metadata_seconds", "metadata_after_connect", "complete_seconds",
                       "complete_after_connect"):
            self.assertIsNotNone(report["ratios"][figure], figure)

        self.assertFalse(os.path.exists(report["workdir"]))
        self.assertEqual(len(report["pids"]), 3)  # the seeder and the two leechers
        for pid in report["pids"]:
            self.assertRaises(ProcessLookupError, os.kill, pid, 0)
