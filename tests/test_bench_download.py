"""The download benchmark's --tiny mode runs end to end and reports verified figures."""

from __future__ import annotations

import json
import os
import shutil
import sys
from typing import Any

from twisted.internet import defer, utils
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BenchDownloadTinyTests(TestCase):
    """``python -m bench.download --tiny --seed-test`` against real clients on 127.0.0.1."""

    timeout = 180

    def setUp(self) -> None:
        try:
            import libtorrent  # noqa: F401
        except ImportError:
            raise SkipTest("libtorrent (python bindings) is not installed") from None

    @defer.inlineCallbacks
    def test_tiny(self) -> Any:
        """The tiny benchmark exits 0, every transfer is verified, and the JSON
        holds the figures and the txbittorrent / libtorrent ratios."""
        out = os.path.abspath(self.mktemp())
        env = dict(os.environ, PYTHONPATH=ROOT)
        stdout, stderr, code = yield utils.getProcessOutputAndValue(
            sys.executable,
            ["-m", "bench.download", "--tiny", "--seed-test", "--json", out],
            env=env,
            path=ROOT,
        )
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        self.assertIn(b"txbittorrent / libtorrent", stdout)
        self.assertIn(b"load average", stdout)
        with open(out) as f:
            report = json.load(f)
        self.assertEqual(report["config"]["size_mib"], 8)
        self.assertEqual(report["config"]["runs"], 1)

        download = report["download"]
        expected = ["txbittorrent", "libtorrent"]
        if shutil.which("aria2c"):
            expected.append("aria2")
        self.assertEqual(list(download["results"]), expected)
        for name, runs in download["results"].items():
            self.assertEqual([r["verified"] for r in runs], [True], name)
            run = runs[0]
            self.assertGreater(run["mb_s"], 0, name)
            self.assertGreater(run["cpu_s_per_gib"], 0, name)
            self.assertGreater(run["peak_rss_mib"], 0, name)
        self.assertIsNotNone(download["ratios"]["mb_s"])
        self.assertIsNotNone(download["ratios"]["cpu_s_per_gib"])

        seed = report["seed"]
        self.assertEqual(sorted(seed["results"]), ["libtorrent", "txbittorrent"])
        for name, runs in seed["results"].items():
            self.assertEqual([r["verified"] for r in runs], [True], name)
            self.assertIn("seeder_cpu_s_per_gib", runs[0], name)
        self.assertIsNotNone(seed["ratios"]["mb_s"])

        # Everything it made is gone: its temporary directory and its processes.
        self.assertFalse(os.path.exists(report["workdir"]))
        self.assertGreaterEqual(len(report["pids"]), 4)  # seeders and leechers at least
        for pid in report["pids"]:
            self.assertRaises(ProcessLookupError, os.kill, pid, 0)


class BenchDownloadMultiFileTests(BenchDownloadTinyTests):
    """``--files N``: a multi-file torrent of mixed sizes, verified file by file."""

    @defer.inlineCallbacks
    def test_tiny(self) -> Any:
        """Forty files of mixed sizes download verified from the libtorrent seeder."""
        out = os.path.abspath(self.mktemp())
        env = dict(os.environ, PYTHONPATH=ROOT)
        stdout, stderr, code = yield utils.getProcessOutputAndValue(
            sys.executable,
            ["-m", "bench.download", "--tiny", "--files", "40",
             "--leechers", "txbittorrent,libtorrent", "--json", out],
            env=env,
            path=ROOT,
        )
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        with open(out) as f:
            report = json.load(f)
        for name, runs in report["download"]["results"].items():
            self.assertEqual([r["verified"] for r in runs], [True], name)


class MixedSizesTests(SynchronousTestCase):
    """The sizes of the multi-file data."""

    def test_sizes_add_up(self) -> None:
        """mixed_sizes gives count positive sizes that add up to the total."""
        from bench.download import mixed_sizes

        for total, count in ((8 << 20, 40), (1 << 30, 2000), (5000, 5000)):
            sizes = mixed_sizes(total, count)
            self.assertEqual(len(sizes), count)
            self.assertEqual(sum(sizes), total)
            self.assertTrue(all(s >= 1 for s in sizes))


class ReportTests(SynchronousTestCase):
    """How runs become figures, without starting any process."""

    def test_failed_run_has_no_figures(self) -> None:
        """A run that did not verify keeps its note but no number."""
        from bench.download import finish

        raw = {"verified": False, "seconds": 1.0, "cpu_seconds": 2.0, "note": "timed out"}
        self.assertEqual(finish(raw, 1024), {"verified": False, "note": "timed out"})

    def test_failed_run_shown_as_failed(self) -> None:
        """The medians leave out failed runs; a client with none verified reads "failed"."""
        from bench.download import compare, finish, summarise, table

        size = 1024 * 1024 * 1024
        ok = {"verified": True, "seconds": 2.0, "connect_seconds": 0.5,
              "cpu_seconds": 3.0, "peak_rss_mib": 100.0, "peak_anon_mib": 50.0}
        results = {
            "txbittorrent": [finish(dict(ok, verified=False, note="data differs"), size)],
            "libtorrent": [finish(ok, size), finish(dict(ok, seconds=4.0), size)],
        }
        medians = summarise(results)
        self.assertIsNone(medians["txbittorrent"]["mb_s"])
        self.assertAlmostEqual(medians["libtorrent"]["seconds"], 3.0)
        report: dict[str, Any] = {
            "config": {"size_mib": 1024, "piece_length": 1 << 20, "pieces": 1024, "runs": 2},
            "environment": {"cpu_count": 2, "load_before": 0.0, "load_after": 0.0,
                            "libtorrent": "2", "python": "3"},
            "download": {"results": results, "medians": medians,
                         "ratios": compare(medians, ("mb_s",))},
        }
        self.assertIsNone(report["download"]["ratios"]["mb_s"])
        text = table(report)
        self.assertIn("failed(data differs)", text)
        line = next(x for x in text.splitlines() if x.startswith("txbittorrent "))
        self.assertEqual(line.split()[1], "failed")

    def test_tracker_copy_keeps_info_hash(self) -> None:
        """The torrent given to aria2c differs only by its announce URL."""
        from bench.download import with_tracker
        from txbittorrent.core.bencoding import encode
        from txbittorrent.core.metainfo import parse

        info = {b"length": 5, b"name": b"x", b"piece length": 16384, b"pieces": b"a" * 20}
        raw = encode({b"info": info})
        tracked = parse(with_tracker(raw, "http://127.0.0.1:1/announce"))
        self.assertEqual(tracked.info_hash, parse(raw).info_hash)
