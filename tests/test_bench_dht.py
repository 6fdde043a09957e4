"""The DHT lookup benchmark: its parts, and its --tiny mode end to end."""

from __future__ import annotations

import contextlib
import io
import json
import os
import random
from typing import Any

from twisted.internet import defer
from twisted.trial.unittest import SynchronousTestCase

from tests.benchcase import BenchRunCase
from bench import dht
from bench._common import environment, median, spread
from bench._dht_children import Settle, TraversalLog
from bench._download_report import compare

TARGET = "5884a8feba96b36dc76e251b6e197e46cfeaf03f"

# libtorrent 2.1.1's traversal log for one get_peers lookup (dht_log_alert,
# module traversal), shortened: ids and addresses cut, a second traversal (7)
# running at the same time, and lines after the end.
TRAVERSAL = [
    (0.000, "[7] NEW target: 0000000000000000000000000000000000000000 k: 8"),
    (0.001, f"[2] NEW target: {TARGET} k: 8"),  # ours: number 2, started
    (0.001, "[2] ADD id: 18ac addr: 127.0.0.1:36747 distance: 158 invoke-count: 0 "
            "type: get_peers"),
    (0.001, "[2] INVOKE nodes-left: 1 top-invoke-count: 0 invoke-count: 0 branch-factor: 5 "
            "distance: 158 id: 18ac addr: 127.0.0.1 type: get_peers"),  # query 1
    (0.001, "[7] INVOKE nodes-left: 3 top-invoke-count: 0 invoke-count: 0 branch-factor: 5 "
            "distance: 150 id: 99aa addr: 127.0.0.1 type: refresh"),  # not ours
    (0.002, "[2] PEERS invoke-count: 1 branch-factor: 5 addr: 127.0.0.1:36747 id: 18ac "
            "distance: 158 p: 1"),
    (0.002, "[2] RESPONSE id: 18ac invoke-count: 1 addr: 127.0.0.1:36747 type: get_peers"),
    (0.002, "[2] INVOKE nodes-left: 9 top-invoke-count: 0 invoke-count: 0 branch-factor: 5 "
            "distance: 153 id: 5ae1 addr: 127.0.0.1 type: get_peers"),  # query 2
    (0.002, "[2] INVOKE nodes-left: 8 top-invoke-count: 1 invoke-count: 1 branch-factor: 5 "
            "distance: 156 id: 4c55 addr: 127.0.0.1 type: get_peers"),  # query 3
    (2.002, "[2] 1ST_TIMEOUT id: 5ae1 distance: 153 addr: 127.0.0.1 branch-factor: 6 "
            "invoke-count: 2 type: get_peers"),  # slow
    (2.003, "[2] RESPONSE id: 4c55 invoke-count: 2 addr: 127.0.0.1:57649 type: get_peers"),
    (9.000, "[2] TIMEOUT id: 5ae1 distance: 153 addr: 127.0.0.1 branch-factor: 6 "
            "invoke-count: 1 type: get_peers"),  # failed
    (9.001, "[2] id: 4c55 distance: 160 addr: 127.0.0.1:57649"),
    (9.001, "[2] COMPLETED distance: 156 type: get_peers"),  # the end
    (9.002, "[2] INVOKE nodes-left: 1 top-invoke-count: 0 invoke-count: 0 branch-factor: 5 "
            "distance: 150 id: ffff addr: 127.0.0.1 type: get_peers"),  # after the end
    (9.500, "[7] COMPLETED distance: 150 type: refresh"),
]


class TraversalLogTests(SynchronousTestCase):
    """``TraversalLog`` counts one lookup's lines of libtorrent's traversal log."""

    def test_counts_one_traversal(self) -> None:
        """Queries, replies, slow and failed queries of the traversal whose
        NEW line names the target, from NEW to COMPLETED, with their times."""
        log = TraversalLog(TARGET.upper())
        for at, line in TRAVERSAL:
            log.line(line, at)
        self.assertEqual(log.number, "2")
        self.assertEqual((log.started, log.completed), (0.001, 9.001))
        self.assertEqual((log.queries, log.responses, log.slow, log.timeouts), (3, 2, 1, 1))

    def test_not_begun(self) -> None:
        """Lines of other traversals, and anything that is no traversal line,
        count for nothing."""
        log = TraversalLog(TARGET)
        log.line("[7] COMPLETED distance: 150 type: refresh", 1.0)
        log.line("using router nodes", 1.0)
        self.assertIsNone(log.number)
        self.assertIsNone(log.completed)
        self.assertEqual(log.queries, 0)


class SettleTests(SynchronousTestCase):
    """``Settle`` says when a routing table has stopped growing."""

    def test_quiet(self) -> None:
        """Settled once the count stayed the same for ``quiet`` seconds."""
        settle = Settle(quiet=1.0, limit=10.0)
        self.assertFalse(settle.update(3, 0.0))
        self.assertFalse(settle.update(8, 0.5))
        self.assertFalse(settle.update(8, 1.4))
        self.assertTrue(settle.update(8, 1.5))
        self.assertTrue(settle.settled)
        self.assertEqual(settle.count, 8)

    def test_limit(self) -> None:
        """An empty table never settles, but the wait ends after ``limit`` seconds."""
        settle = Settle(quiet=1.0, limit=10.0)
        self.assertFalse(settle.update(0, 0.0))
        self.assertFalse(settle.update(0, 5.0))
        self.assertTrue(settle.update(0, 10.0))
        self.assertFalse(settle.settled)


class PlanTests(SynchronousTestCase):
    """``plan``: one run's lookups."""

    def test_announced(self) -> None:
        """The first ``announced`` hashes get ``announcers`` distinct nodes with
        distinct peer ports, which are the peers the lookup should find; the
        order is shuffled, the hashes fresh."""
        ports = [6000 + n for n in range(10)]
        lookups = dht.plan(random.Random(1), ports, 6, 4, 3)
        self.assertEqual(len({lookup["info_hash"] for lookup in lookups}), 6)
        announced = [lookup for lookup in lookups if lookup["announcers"]]
        self.assertEqual(len(announced), 4)
        peer_ports = []
        for lookup in announced:
            nodes = [node for node, _ in lookup["announcers"]]
            self.assertEqual(len(set(nodes)), 3)
            self.assertTrue(set(nodes) <= set(ports))
            self.assertEqual(lookup["expected"],
                             [["127.0.0.1", port] for _, port in lookup["announcers"]])
            peer_ports += [port for _, port in lookup["announcers"]]
        self.assertEqual(len(set(peer_ports)), 12)
        self.assertEqual(lookups, dht.plan(random.Random(1), ports, 6, 4, 3))


def lookup(seconds: float | None, queries: int, expected: int = 0, found: bool = True,
           peers: int = 0) -> dict[str, Any]:
    return {"info_hash": "00" * 20, "seconds": seconds, "walk_seconds": seconds,
            "queries": queries, "responses": queries, "timeouts": 0, "peers": peers,
            "expected": expected, "found_all": found}


def message(*lookups: dict[str, Any], **changes: Any) -> dict[str, Any]:
    line = {"event": "result", "ok": True, "join_seconds": 0.002, "nodes_at_start": 8,
            "settled": True, "lookups": list(lookups), "cpu_seconds": 0.1, "note": ""}
    line.update(changes)
    return line


class RunFiguresTests(SynchronousTestCase):
    """``run_figures``: a result line as one run's figures."""

    def test_medians(self) -> None:
        """Median and slowest lookup in ms, median and mean queries, and the
        announced lookups that found every announced peer."""
        raw = dht.run_figures(message(
            lookup(0.001, 8, 2, peers=2), lookup(0.003, 10), lookup(0.002, 12, 2, False)))
        self.assertTrue(raw["verified"])
        self.assertAlmostEqual(raw["lookup_ms"], 2.0)
        self.assertAlmostEqual(raw["slowest_ms"], 3.0)
        self.assertEqual(raw["queries"], 10)
        self.assertAlmostEqual(raw["queries_mean"], 10.0)
        self.assertEqual((raw["found"], raw["announced"], raw["stray_peers"]), (1, 2, 0))
        self.assertAlmostEqual(raw["join_ms"], 2.0)

    def test_unfinished_lookup(self) -> None:
        """A lookup that never ended fails the run; the note says so."""
        raw = dht.run_figures(message(lookup(0.001, 8), lookup(None, 0),
                                      note="a lookup took over 30 s"))
        self.assertFalse(raw["verified"])
        self.assertEqual(raw["note"], "a lookup took over 30 s")
        raw = dht.run_figures(message(lookup(None, 0)))
        self.assertEqual(raw["note"], "0/1 lookups ended")


class TableTests(SynchronousTestCase):
    """The printed table: medians, per-run values, spreads, ratios."""

    def report(self, results: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
        medians = {name: {f: median(r.get(f) for r in runs if r["verified"])
                          for f in dht.FIGURES} for name, runs in results.items()}
        return {
            "config": {"nodes": 30, "lookups": 2, "announced": 1, "announcers": 2, "runs": 1,
                       "read_only": True},
            "environment": environment(0.0),
            "dht": {"processes": 3, "counts_before": [29] * 30, "counts_after": [29] * 30,
                    "settled": True},
            "results": results,
            "medians": medians,
            "spreads": {name: {f: spread(r.get(f) for r in runs if r["verified"])
                               for f in dht.FIGURES} for name, runs in results.items()},
            "pooled": dht.pooled(results),
            "ratios": compare(medians, tuple(dht.RATIOS)),
        }

    def test_ratios_and_per_run(self) -> None:
        """Ours against libtorrent: the ratios of the medians, each run as
        lookup ms/queries, and the announced lookups that found their peers."""
        ours = dht.run_figures(message(lookup(0.002, 8, 2, peers=2), lookup(0.002, 8)))
        theirs = dht.run_figures(message(lookup(0.001, 10, 2, peers=2), lookup(0.001, 10)))
        text = dht.table(self.report({"txbittorrent": [ours], "libtorrent": [theirs]}))
        self.assertIn("2.00/8", text)
        self.assertIn("1.00/10", text)
        self.assertIn("1/1", text)
        self.assertIn("lookup 2.00, slowest 2.00, walk 2.00, queries 0.80", text)
        self.assertIn("knew 29-29 others before the runs, 29-29 after", text)

    def test_failed_run(self) -> None:
        """A failed run shows its note and counts in no median; the ratios it
        cannot give say n/a."""
        failed = {"verified": False, "note": "no result"}
        theirs = dht.run_figures(message(lookup(0.001, 10)))
        text = dht.table(self.report({"txbittorrent": [failed], "libtorrent": [theirs]}))
        self.assertIn("failed(no result)", text)
        self.assertIn(" 0/1 ", text)
        self.assertIn("lookup n/a", text)


class ParseArgsTests(SynchronousTestCase):
    """The command line."""

    def test_defaults(self) -> None:
        """30 nodes, 20 lookups (half announced, by 2 nodes each), 5 runs,
        read-only measured nodes."""
        args = dht.parse_args([])
        self.assertEqual((args.nodes, args.lookups, args.announced, args.announcers,
                          args.runs, args.read_only), (30, 20, 10, 2, 5, True))

    def test_tiny(self) -> None:
        """--tiny: a handful of nodes in two processes, a few lookups, one run."""
        args = dht.parse_args(["--tiny"])
        self.assertEqual((args.nodes, args.per_process, args.lookups, args.runs),
                         (6, 3, 4, 1))

    def test_bad_announcers(self) -> None:
        """More announcers than nodes is refused."""
        with contextlib.redirect_stderr(io.StringIO()) as said:
            self.assertRaises(SystemExit, dht.parse_args, ["--nodes", "3", "--announcers", "4"])
        self.assertIn("--announcers between 1 and --nodes", said.getvalue())


class BenchDHTTinyTests(BenchRunCase):
    """``python -m bench.dht --tiny``: a libtorrent DHT on 127.0.0.1."""

    timeout = 120

    @defer.inlineCallbacks
    def test_tiny(self) -> Any:
        """Both clients do every lookup and find every announced peer; the
        JSON holds the times, queries and ratios; the read-only clients left
        the DHT's tables as they were; nothing the benchmark made outlives it."""
        out = os.path.abspath(self.mktemp())
        stdout, stderr, code = yield self.run_bench("bench.dht", "--tiny", "--json", out)
        self.assertEqual(code, 0, (stdout + stderr).decode(errors="replace"))
        self.assertIn(b"txbittorrent / libtorrent", stdout)
        with open(out) as f:
            report = json.load(f)
        self.assertEqual((report["config"]["nodes"], report["config"]["runs"]), (6, 1))
        self.assertEqual(report["dht"]["counts_before"], [5] * 6)
        self.assertEqual(report["dht"]["counts_after"], [5] * 6)
        self.assertEqual(report["runs"][0]["stored"], report["runs"][0]["announces"])

        self.assertEqual(list(report["results"]), ["txbittorrent", "libtorrent"])
        for name, runs in report["results"].items():
            self.assertEqual([r["verified"] for r in runs], [True], (name, runs))
            run = runs[0]
            self.assertEqual(len(run["lookups"]), 4, name)
            self.assertEqual((run["found"], run["announced"]), (2, 2), name)
            self.assertEqual(run["stray_peers"], 0, name)
            for lookup in run["lookups"]:
                self.assertGreater(lookup["seconds"], 0, name)
                self.assertGreaterEqual(lookup["queries"], 1, name)
                self.assertEqual(lookup["peers"], lookup["expected"], name)
            self.assertGreater(run["nodes_at_start"], 0, name)
        for lookup in report["results"]["libtorrent"][0]["lookups"]:
            # Its log and its alerts count the same queries.
            self.assertEqual(lookup["queries"], lookup["outgoing_get_peers"])
        for figure in ("lookup_ms", "queries", "walk_ms"):
            self.assertIsNotNone(report["ratios"][figure], figure)

        self.assertFalse(os.path.exists(report["workdir"]))
        self.assertEqual(len(report["pids"]), 4)  # two hosts and the two clients
        for pid in report["pids"]:
            self.assertRaises(ProcessLookupError, os.kill, pid, 0)
