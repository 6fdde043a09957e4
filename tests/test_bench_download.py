"""The download benchmark's --tiny mode runs end to end and reports verified figures."""

from __future__ import annotations

import io
import json
import os
import shutil
import sys
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import SkipTest, SynchronousTestCase

from tests.benchcase import ROOT, BenchRunCase


class BenchDownloadTinyTests(BenchRunCase):
    """``python -m bench.download --tiny --seed-test`` against real clients on 127.0.0.1."""

    timeout = 180

    @defer.inlineCallbacks
    def test_tiny(self) -> Any:
        """The tiny benchmark exits 0, every transfer is verified, and the JSON
        holds the figures and the txbittorrent / libtorrent ratios."""
        out = os.path.abspath(self.mktemp())
        stdout, stderr, code = yield self.run_bench(
            "bench.download", "--tiny", "--seed-test", "--json", out)
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
        stdout, stderr, code = yield self.run_bench(
            "bench.download", "--tiny", "--files", "40",
            "--leechers", "txbittorrent,libtorrent", "--json", out)
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        with open(out) as f:
            report = json.load(f)
        for name, runs in report["download"]["results"].items():
            self.assertEqual([r["verified"] for r in runs], [True], name)


class BenchDownloadCLITests(BenchRunCase):
    """``--cli``: each client timed as a whole process, spawn to exit."""

    timeout = 180

    @defer.inlineCallbacks
    def test_tiny(self) -> Any:
        """``--tiny --leechers '' --cli`` downloads verified with our command and
        both libtorrent presets, each with its timeline in order, and prints the
        verdicts of txbittorrent against each."""
        out = os.path.abspath(self.mktemp())
        stdout, stderr, code = yield self.run_bench(
            "bench.download", "--tiny", "--leechers", "", "--cli", "--json", out)
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        self.assertIn(b"whole process (as `time` shows it)", stdout)
        self.assertIn(b"txbittorrent / libtorrent (whole process, MB/s): ", stdout)
        self.assertIn(b"txbittorrent / libtorrent-hp (whole process, MB/s): ", stdout)
        with open(out) as f:
            report = json.load(f)
        self.assertNotIn("download", report)
        cli = report["cli"]
        self.assertEqual(list(cli["results"]), ["txbittorrent", "libtorrent", "libtorrent-hp"])
        for name, runs in cli["results"].items():
            self.assertEqual([r["verified"] for r in runs], [True], name)
            marks = runs[0]["timeline"]
            order = [marks[m] for m in ("first_event", "connected", "completed", "exit")]
            self.assertEqual(order, sorted(order), name)
            self.assertGreater(order[0], 0, name)
            self.assertAlmostEqual(runs[0]["seconds"], marks["exit"], msg=name)
            self.assertGreater(runs[0]["cpu_seconds"], 0, name)
        for other in ("libtorrent", "libtorrent-hp"):
            self.assertIn(cli["verdicts"][other]["verdict"], ("faster", "slower", "no difference"))
        self.assertFalse(os.path.exists(report["workdir"]))
        for pid in report["pids"]:
            self.assertRaises(ProcessLookupError, os.kill, pid, 0)


def _git_head() -> tuple[str, str]:
    """HEAD's full and short SHA-1; SkipTest where this checkout is no git repository."""
    from bench._common import resolve_commit

    try:
        return resolve_commit("HEAD")
    except (ValueError, OSError) as e:
        raise SkipTest(f"no git repository to take a baseline from: {e}") from None


class BenchDownloadBaselineTests(BenchDownloadTinyTests):
    """``--baseline REF``: REF's own txbittorrent leecher runs as one more leecher."""

    @defer.inlineCallbacks
    def test_tiny(self) -> Any:
        """With --baseline HEAD the copy's leecher downloads verified next to ours,
        the summary gives txbittorrent / baseline, and the copy is gone afterwards."""
        commit, short = _git_head()
        out = os.path.abspath(self.mktemp())
        stdout, stderr, code = yield self.run_bench(
            "bench.download", "--tiny", "--leechers", "txbittorrent",
            "--baseline", "HEAD", "--json", out)
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        name = f"txbittorrent@{short}"
        self.assertIn(f"txbittorrent / baseline {name}: MB/s ".encode(), stdout)
        self.assertIn(b"spread: min-max", stdout)
        with open(out) as f:
            report = json.load(f)
        self.assertEqual(report["config"]["baseline"], {
            "ref": "HEAD", "commit": commit, "short": short, "leecher": name})
        download = report["download"]
        self.assertEqual(list(download["results"]), ["txbittorrent", name])
        for leecher, runs in download["results"].items():
            self.assertEqual([r["verified"] for r in runs], [True], leecher)
            self.assertGreater(runs[0]["cpu_s_per_gib"], 0, leecher)
            # Both are txbittorrent leechers: both report their reactor thread.
            self.assertIsNotNone(runs[0]["reactor_cpu_seconds"], leecher)
        self.assertIsNotNone(download["baseline_ratios"]["mb_s"])
        self.assertIsNotNone(download["baseline_ratios"]["cpu_s_per_gib"])
        low, high = download["spreads"][name]["mb_s"]
        self.assertEqual(low, high)  # one run
        self.assertFalse(os.path.exists(report["workdir"]))


class BaselineCheckoutTests(SynchronousTestCase):
    """The clean copy of another commit that ``--baseline`` runs."""

    def test_copy_of_head(self) -> None:
        """prepare_baseline extracts HEAD's tree, which imports its own code and
        has a tx-leech child; the leecher is named after the short SHA-1."""
        from bench._baseline import baseline_name, prepare_baseline

        commit, short = _git_head()
        where = os.path.join(os.path.abspath(self.mktemp()), "copy")
        copy = prepare_baseline("HEAD", where)
        self.assertEqual((copy.ref, copy.commit, copy.short, copy.root),
                         ("HEAD", commit, short, where))
        self.assertTrue(os.path.isfile(os.path.join(where, "bench", "download.py")))
        self.assertTrue(os.path.isfile(os.path.join(where, "txbittorrent", "__init__.py")))
        self.assertFalse(os.path.exists(os.path.join(where, ".git")))
        self.assertEqual(baseline_name(copy), f"txbittorrent@{short}")

    def test_unknown_ref(self) -> None:
        """A ref that names no commit is refused before anything is written."""
        from bench._common import checkout, resolve_commit
        from bench.download import parse_args

        _git_head()
        where = os.path.abspath(self.mktemp())
        self.assertRaises(ValueError, resolve_commit, "no-such-ref-for-the-bench")
        self.assertRaises(ValueError, checkout, "no-such-ref-for-the-bench", where)
        self.assertFalse(os.path.exists(where))
        self.patch(sys, "stderr", io.StringIO())  # argparse's usage message
        self.assertRaises(SystemExit, parse_args, ["--baseline", "no-such-ref-for-the-bench"])

    def test_child_env_of_another_root(self) -> None:
        """A child of another checkout has that checkout first on its
        PYTHONPATH and ours not at all; our own children keep ours first."""
        from bench import _common

        other = os.path.abspath(self.mktemp())
        self.patch(os, "environ", {"PYTHONPATH": os.pathsep.join([ROOT, "/elsewhere"])})
        self.assertEqual(_common.child_env(other)["PYTHONPATH"],
                         os.pathsep.join([other, "/elsewhere"]))
        self.assertEqual(_common.child_env()["PYTHONPATH"].split(os.pathsep)[0], _common.ROOT)


class MixedSizesTests(SynchronousTestCase):
    """The sizes of the multi-file data."""

    def test_sizes_add_up(self) -> None:
        """mixed_sizes gives count positive sizes that add up to the total."""
        from bench._download_bench import mixed_sizes

        for total, count in ((8 << 20, 40), (1 << 30, 2000), (5000, 5000)):
            sizes = mixed_sizes(total, count)
            self.assertEqual(len(sizes), count)
            self.assertEqual(sum(sizes), total)
            self.assertTrue(all(s >= 1 for s in sizes))


class ReportTests(SynchronousTestCase):
    """How runs become figures, without starting any process."""

    def test_failed_run_has_no_figures(self) -> None:
        """A run that did not verify keeps its note but no number."""
        from bench._download_report import finish

        raw = {"verified": False, "seconds": 1.0, "cpu_seconds": 2.0, "note": "timed out"}
        self.assertEqual(finish(raw, 1024), {"verified": False, "note": "timed out"})

    def test_failed_run_shown_as_failed(self) -> None:
        """The medians leave out failed runs; a client with none verified reads "failed"."""
        from bench._download_report import compare, finish, summarise, table

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

    def test_baseline_ratios_and_spreads(self) -> None:
        """The table gives txbittorrent / baseline and each median's min-max."""
        from bench._download_report import compare, finish, spreads, summarise, table

        size = 1024 * 1024 * 1024
        run = {"verified": True, "seconds": 2.0, "connect_seconds": 0.0,
               "cpu_seconds": 2.0, "peak_rss_mib": 100.0, "peak_anon_mib": 50.0}
        name = "txbittorrent@abc1234"
        results = {
            "txbittorrent": [finish(dict(run, seconds=s), size) for s in (1.0, 2.0, 4.0)],
            name: [finish(dict(run, cpu_seconds=c), size) for c in (3.0, 4.0, 5.0)],
        }
        medians = summarise(results)
        figures = ("mb_s", "cpu_s_per_gib")
        ratios = compare(medians, figures, "txbittorrent", name)
        self.assertAlmostEqual(ratios["mb_s"], 1.0)
        self.assertAlmostEqual(ratios["cpu_s_per_gib"], 0.5)
        self.assertEqual(spreads(results)["txbittorrent"]["seconds"], (1.0, 4.0))
        report: dict[str, Any] = {
            "config": {"size_mib": 1024, "piece_length": 1 << 20, "pieces": 1024, "runs": 3,
                       "baseline": {"ref": "main~1", "commit": "abc1234" + "0" * 33,
                                    "short": "abc1234", "leecher": name}},
            "environment": {"cpu_count": 2, "load_before": 0.0, "load_after": 0.0,
                            "libtorrent": "2", "python": "3"},
            "download": {"results": results, "medians": medians,
                         "ratios": compare(medians, figures), "baseline_ratios": ratios},
        }
        text = table(report)
        self.assertIn(f"txbittorrent / baseline {name}: MB/s 1.00, CPU s/GiB 0.50", text)
        spread_lines = text.split("spread: min-max of the verified runs\n")[1].splitlines()
        self.assertEqual(spread_lines[1].split()[:3], ["txbittorrent", "268-1074", "1.00-4.00"])
        self.assertEqual(spread_lines[2].split()[0], name)
        self.assertIn("3.00-5.00", spread_lines[2])

    def test_tracker_copy_keeps_info_hash(self) -> None:
        """The torrent given to aria2c differs only by its announce URL."""
        from bench._download_bench import with_tracker
        from txbittorrent.core.bencoding import encode
        from txbittorrent.core.metainfo import parse

        info = {b"length": 5, b"name": b"x", b"piece length": 16384, b"pieces": b"a" * 20}
        raw = encode({b"info": info})
        tracked = parse(with_tracker(raw, "http://127.0.0.1:1/announce"))
        self.assertEqual(tracked.info_hash, parse(raw).info_hash)


class CLIFiguresTests(SynchronousTestCase):
    """The whole-process figures, without starting any process."""

    def test_no_difference_within_spread(self) -> None:
        """Medians closer than the wider spread are "no difference"; farther
        apart, the faster or slower verdict, with the MB/s ratio b / a."""
        from bench._download_cli import verdict

        def runs(*seconds: float) -> list[dict[str, Any]]:
            return [{"verified": True, "seconds": s} for s in seconds]

        close = verdict(runs(2.0, 2.1, 2.5), runs(2.3, 2.4, 2.45))
        self.assertEqual(close["verdict"], "no difference")
        self.assertAlmostEqual(close["ratio"], 2.4 / 2.1)
        self.assertAlmostEqual(close["spread"], 0.5)
        self.assertEqual(verdict(runs(1.0, 1.1, 1.2), runs(2.0, 2.1, 2.2))["verdict"], "faster")
        self.assertEqual(verdict(runs(3.0, 3.1), runs(2.0, 2.1))["verdict"], "slower")
        failed = [{"verified": False}]
        self.assertEqual(verdict(failed, runs(1.0)), {"ratio": None, "verdict": "n/a"})

    def test_timelines(self) -> None:
        """Our --json events and libtorrent's program's events give the same
        marks, in seconds from the spawn; a missing event is None."""
        from bench._download_cli import timeline_of

        ours = [{"kind": "message", "time": 100.25}, {"kind": "peer_connected", "time": 100.375},
                {"kind": "peer_connected", "time": 100.9}, {"kind": "complete", "time": 102.0}]
        self.assertEqual(timeline_of("txbittorrent", ours, 100.0, 102.5), {
            "first_event": 0.25, "connected": 0.375, "completed": 2.0, "exit": 2.5})
        lt = [{"event": "session", "time": 10.5}, {"event": "connected", "time": 11.0}]
        self.assertEqual(timeline_of("libtorrent", lt, 10.0, None), {
            "first_event": 0.5, "connected": 1.0, "completed": None, "exit": None})

    def test_options(self) -> None:
        """--cli alone names every client, --cli NAMES some; an unknown one is refused."""
        from bench._download_cli import CLI_CLIENTS
        from bench.download import parse_args

        args = parse_args(["--tiny", "--leechers", "", "--cli"])
        self.assertEqual((args.cli, args.cli_runs), (list(CLI_CLIENTS), 1))
        self.assertEqual(parse_args(["--cli", "txbittorrent,libtorrent-hp"]).cli,
                         ["txbittorrent", "libtorrent-hp"])
        self.assertEqual(parse_args([]).cli, [])
        self.assertEqual(parse_args(["--cli"]).cli_runs, 5)
        self.patch(sys, "stderr", io.StringIO())  # argparse's usage message
        self.assertRaises(SystemExit, parse_args, ["--cli", "utorrent"])
        self.assertRaises(SystemExit, parse_args, ["--leechers", ""])

    def test_encryption_option(self) -> None:
        """--encryption: plain by default; rc4 runs the +rc4 twins of
        txbittorrent and libtorrent (not aria2) from the RC4 seeder; an
        unknown method is refused."""
        from bench.download import parse_args, seeder_for, with_encryption

        self.assertEqual(parse_args([]).encryption, ["plain"])
        self.assertEqual(parse_args(["--encryption", "plain,rc4"]).encryption, ["plain", "rc4"])
        names = ["txbittorrent", "libtorrent", "aria2"]
        self.assertEqual(with_encryption(names, ["plain"]), names)
        self.assertEqual(with_encryption(names, ["rc4"]), ["txbittorrent+rc4", "libtorrent+rc4"])
        self.assertEqual(with_encryption(names, ["plain", "rc4"]), [
            "txbittorrent", "txbittorrent+rc4", "libtorrent", "libtorrent+rc4", "aria2"])
        self.assertEqual(seeder_for("txbittorrent+rc4"), "libtorrent+rc4")
        self.assertEqual(seeder_for("aria2"), "libtorrent")
        self.patch(sys, "stderr", io.StringIO())
        self.assertRaises(SystemExit, parse_args, ["--encryption", "aes"])
        self.assertRaises(SystemExit, parse_args, ["--encryption", ""])


class BenchDownloadRC4Tests(BenchRunCase):
    """``--tiny --encryption rc4``: our forced leecher and libtorrent's from
    a libtorrent seeder with MSE/PE forced, RC4 only."""

    timeout = 180

    @defer.inlineCallbacks
    def test_tiny(self) -> Any:
        """Both +rc4 leechers' runs are verified, and the RC4 ratio is there."""
        out = os.path.abspath(self.mktemp())
        stdout, stderr, code = yield self.run_bench(
            "bench.download", "--tiny", "--leechers", "txbittorrent,libtorrent",
            "--encryption", "rc4", "--json", out)
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        self.assertIn(b"txbittorrent / libtorrent (RC4)", stdout)
        with open(out) as f:
            report = json.load(f)
        download = report["download"]
        self.assertEqual(list(download["results"]), ["txbittorrent+rc4", "libtorrent+rc4"])
        for name, runs in download["results"].items():
            self.assertEqual([r["verified"] for r in runs], [True], name)
        self.assertIsNotNone(
            download["rc4_ratios"]["txbittorrent / libtorrent (RC4)"]["mb_s"])
