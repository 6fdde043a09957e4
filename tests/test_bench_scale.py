"""The scale and swarm benchmarks run end to end in their --tiny modes."""

from __future__ import annotations

import json
import os
import sys
from typing import Any

from twisted.internet import defer, utils
from twisted.trial.unittest import TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class BenchTinyTests(TestCase):
    """``python -m bench.scale --tiny`` and ``python -m bench.swarm --tiny`` verify and report."""

    timeout = 300

    @defer.inlineCallbacks
    def run_bench(self, module: str) -> Any:
        """Run ``python -m <module> --tiny --json <file>``; return its stdout and report."""
        out = os.path.abspath(self.mktemp())
        env = dict(os.environ, PYTHONPATH=ROOT)
        stdout, stderr, code = yield utils.getProcessOutputAndValue(
            sys.executable, ["-m", module, "--tiny", "--json", out], env=env, path=ROOT
        )
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        with open(out) as f:
            report = json.load(f)
        return stdout.decode(), report

    @defer.inlineCallbacks
    def test_scale_tiny(self) -> Any:
        """Every load and peers run counts: all torrents start from resume data
        with no piece hashed, all peers connect, every block matches the data."""
        stdout, report = yield self.run_bench("bench.scale")
        self.assertIn("wall to all started", stdout)
        self.assertIn("seeder CPU per MB", stdout)
        self.assertIn("load average", stdout)
        count = report["config"]["torrents"]
        self.assertEqual(count, 20)
        self.assertIn("tx-load", report["results"])
        self.assertIn("tx-peers", report["results"])
        for name, runs in report["results"].items():
            self.assertEqual([r["ok"] for r in runs], [True], name)
        (load,) = report["results"]["tx-load"]
        self.assertEqual((load["active"], load["complete"]), (count, count))
        self.assertEqual(load["hashed_pieces"], 0)
        (peers,) = report["results"]["tx-peers"]
        self.assertEqual(peers["connected"], report["config"]["peers"])
        self.assertEqual(peers["mismatches"], 0)
        self.assertGreater(peers["window_bytes"], 0)
        self.assertIsNotNone(report["medians"]["tx-load"]["start_seconds"])
        self.assertIsNotNone(report["medians"]["tx-peers"]["cpu_ms_per_mb"])

    @defer.inlineCallbacks
    def test_swarm_tiny(self) -> Any:
        """Every swarm run counts: each leecher completes and its file's SHA-1 matches."""
        stdout, report = yield self.run_bench("bench.swarm")
        self.assertIn("time until all 4 complete", stdout)
        self.assertIn("load average", stdout)
        self.assertEqual(report["config"]["size_mib"], 4)
        self.assertIn("tx", report["results"])
        for client, runs in report["results"].items():
            self.assertEqual([r["ok"] for r in runs], [True], client)
            self.assertEqual([r["verified"] for r in runs], [4], client)
        self.assertIsNotNone(report["medians"]["tx"]["seconds"])
        self.assertIsNotNone(report["medians"]["tx"]["cpu_per_gib"])
