"""How fast is a DHT get_peers lookup, and how many queries does it take, ours against libtorrent?

Run ``python -m bench.dht [--nodes 30] [--lookups 20] [--runs 5] [--json out.json]``,
or ``--tiny`` (6 nodes, 4 lookups, one run) as the test suite does.

Theory of operation
-------------------
A DHT of ``--nodes`` libtorrent nodes runs on 127.0.0.1, ``--per-process``
sessions to a process (``LoopbackDHT``; the processes are
``bench._dht_children``'s ``lt-nodes``), each node on its own port with no
bootstrap router at all.  The nodes are introduced to each other and the
benchmark waits, bounded, until every node knows every other.  Nothing is
sent anywhere but 127.0.0.1: every libtorrent session is given its
bootstrap list explicitly (empty, or the one loopback node).

Then per run: fresh random info hashes, ``--announced`` of them announced
beforehand by ``--announcers`` DHT nodes each (each with its own peer port,
so a lookup that finds them all finds that many peers), and the benchmark
waits until every announce is stored.  Then two fresh nodes, each in a
process of its own, one after the other (in the reverse order every other
run): a txbittorrent ``DHTNode`` and a libtorrent session, both read only
(BEP 43: they leave nothing behind in the DHT's tables when they exit; see
bench/README), both joining through the same one node of the DHT.  Each
lets its table settle, then does the same get_peers lookups in the same
order, one at a time, and reports per lookup the seconds from the call to
the end of the lookup, the queries sent, the replies and timeouts, and the
peers found.  ``run_figures`` makes each run's figures (medians over its
lookups); the report gives their medians over the runs, the spread (min-max)
behind each, and the ratios txbittorrent / libtorrent (below 1: we are
faster, or ask fewer nodes).

libtorrent reports no end of a ``dht_get_peers`` lookup in its ordinary
alerts (``dht_get_peers_reply_alert`` comes per reply that holds peers), so
its measured session turns on its DHT log and the end is its traversal's
``COMPLETED`` line; its queries are the traversal's ``INVOKE`` lines
(``bench._dht_children.TraversalLog``; its ``dht_outgoing_get_peers_alert``
count is kept beside them as a check), and the times are the alerts' own
timestamps.  A run in which a process failed or a lookup did not end counts
in no median and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from typing import Any

from bench._common import (
    add_child_options,
    bench_main,
    ensure_json_dir,
    LOOPBACK,
    TMP_BASE,
    Child,
    Children,
    Result,
    environment,
    median,
    spread,
    tail,
)
from bench._dht_children import CHILDREN, JOIN_TIMEOUT, SETTLE_MAX, command_path
from bench._download_report import compare

__all__ = ["CHILDREN", "CLIENTS", "LoopbackDHT", "main", "parse_args", "plan", "run",
           "run_figures", "table"]

CLIENTS = ("txbittorrent", "libtorrent")
ROLES = {"txbittorrent": "tx-lookups", "libtorrent": "lt-lookups"}
START_TIMEOUT = 60.0
"""Seconds a process may take to start (and a host to listen on every port)."""
INTRODUCE_TIMEOUT = 30.0
"""Seconds the DHT's nodes may take to know each other."""
ANNOUNCE_TIMEOUT = 30.0
ANNOUNCE_QUIET = 0.5
"""Once every announce is stored somewhere, wait until none more for this long."""
EXIT_TIMEOUT = 10.0
FIRST_PEER_PORT = 20000
"""The announced peers' ports (nobody listens there: only the DHT sees them)."""
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("lookup_ms", "lookup ms", 2),
    ("slowest_ms", "slowest ms", 2),
    ("walk_ms", "walk ms", 2),
    ("queries", "queries", 1),
    ("queries_mean", "mean q", 1),
    ("responses", "replies", 1),
    ("timeouts", "timeouts", 0),
    ("nodes_at_start", "nodes", 0),
    ("join_ms", "join ms", 1),
)
"""The table's figures: key, title, digits."""
FIGURES = tuple(c[0] for c in COLUMNS) + ("cpu_seconds", "peak_rss_mib")
RATIOS = {"lookup_ms": "lookup", "slowest_ms": "slowest", "walk_ms": "walk",
          "queries": "queries", "queries_mean": "mean queries", "responses": "replies"}
"""The ratios txbittorrent / libtorrent the summary gives."""


class LoopbackDHT:
    """The DHT's libtorrent nodes: their processes, steered by command files
    (the protocol is in ``bench._dht_children``'s docstring)."""

    def __init__(self, children: Children, control: str) -> None:
        self.children = children
        self.control = control
        self.hosts: list[Child] = []
        self.ports: list[int] = []
        self.stored: dict[tuple[str, int], int] = {}
        """Copies of each announce (info hash, peer port) stored so far."""
        self._commands = 0
        self._last_stored = 0.0

    def start(self, nodes: int, per_process: int) -> None:
        """Start the processes; wait until every node listens."""
        os.makedirs(self.control, exist_ok=True)
        sizes = [min(per_process, nodes - n) for n in range(0, nodes, per_process)]
        for number, count in enumerate(sizes, 1):
            spec = {"count": count, "control": self.control}
            self.hosts.append(self.children.start_role("lt-nodes", spec, name=f"lt-nodes{number}"))
        for host in self.hosts:
            message = self._next(host, START_TIMEOUT)
            if message is None or message.get("event") != "listening":
                raise RuntimeError(f"{host.name} did not start: {message!r}\n{tail(host.log_path)}")
            self.ports += message["ports"]

    def _next(self, host: Child, timeout: float) -> dict[str, Any] | None:
        """The host's next message that is not a "stored" one (those are noted)."""
        deadline = time.monotonic() + timeout
        while True:
            message = host.message(max(0.0, deadline - time.monotonic()))
            if message is None:
                if host.exited():
                    raise RuntimeError(f"{host.name} ended: {tail(host.log_path)}")
                return None
            if message.get("event") != "stored":
                return message
            key = (message["info_hash"], message["port"])
            self.stored[key] = self.stored.get(key, 0) + 1
            self._last_stored = time.monotonic()

    def command(self, do: str, wait: float, **fields: Any) -> list[dict[str, Any]]:
        """Have every host run a command; their answers, in the hosts' order."""
        self._commands += 1
        path = command_path(self.control, self._commands)
        with open(path + ".tmp", "w") as f:
            json.dump(dict(fields, do=do), f)
        os.replace(path + ".tmp", path)  # a host never reads half a command
        deadline = time.monotonic() + wait
        answers: dict[int, dict[str, Any]] = {}
        while len(answers) < len(self.hosts):
            if time.monotonic() > deadline:
                raise RuntimeError(f"the DHT's hosts did not answer {do!r} in {wait:g} s")
            for index, host in enumerate(self.hosts):
                if index not in answers:
                    message = self._next(host, 0.02)
                    if message is not None and message.get("cmd") == self._commands:
                        answers[index] = message
        return [answers[index] for index in range(len(self.hosts))]

    def introduce(self) -> dict[str, Any]:
        """Every node adds every other; wait until each knows them all (bounded)."""
        started = time.monotonic()
        answers = self.command("introduce", INTRODUCE_TIMEOUT + 10, ports=self.ports,
                               need=len(self.ports) - 1, timeout=INTRODUCE_TIMEOUT)
        counts = [count for answer in answers for count in answer["counts"]]
        return {"counts": counts, "settled": all(a["settled"] for a in answers),
                "seconds": time.monotonic() - started}

    def counts(self) -> list[int]:
        return [c for answer in self.command("report", 10.0) for c in answer["counts"]]

    def announce(self, lookups: list[dict[str, Any]]) -> dict[str, Any]:
        """The planned announces; wait until each is stored and the DHT is quiet."""
        started = time.monotonic()
        announces = [[node, lookup["info_hash"], port]
                     for lookup in lookups for node, port in lookup["announcers"]]
        wanted = {(info_hash, port) for _, info_hash, port in announces}
        self.command("announce", 10.0, announces=announces)
        deadline = started + ANNOUNCE_TIMEOUT
        while time.monotonic() < deadline:
            for host in self.hosts:
                self._next(host, 0.02)
            if wanted <= self.stored.keys() and \
                    time.monotonic() - self._last_stored >= ANNOUNCE_QUIET:
                break
        return {"announces": len(wanted), "stored": len(wanted & self.stored.keys()),
                "copies": sum(self.stored.get(key, 0) for key in wanted),
                "seconds": time.monotonic() - started}


def plan(rng: random.Random, ports: list[int], lookups: int, announced: int,
         announcers: int) -> list[dict[str, Any]]:
    """One run's lookups, in the order both clients do them: fresh random
    info hashes, ``announced`` of them announced by ``announcers`` nodes each."""
    out = []
    for n in range(lookups):
        nodes = rng.sample(ports, announcers) if n < announced else []
        peer_ports = [FIRST_PEER_PORT + n * announcers + i for i in range(len(nodes))]
        out.append({"info_hash": rng.randbytes(20).hex(),
                    "announcers": [list(pair) for pair in zip(nodes, peer_ports)],
                    "expected": [[LOOPBACK, port] for port in peer_ports]})
    rng.shuffle(out)
    return out


def run_figures(message: dict[str, Any]) -> Result:
    """A measured node's result line as a run's figures (medians over its lookups)."""
    lookups = message.get("lookups") or []
    done = [lookup for lookup in lookups if lookup["seconds"] is not None]
    announced = [lookup for lookup in lookups if lookup["expected"]]
    raw: Result = {
        "verified": bool(message.get("ok")) and bool(lookups) and len(done) == len(lookups),
        "lookups": lookups,
        "join_ms": None if message.get("join_seconds") is None
        else 1e3 * message["join_seconds"],
        "nodes_at_start": message.get("nodes_at_start"),
        "settled": message.get("settled"),
        "cpu_seconds": message.get("cpu_seconds"),
        "found": sum(lookup["found_all"] for lookup in announced),
        "announced": len(announced),
        "stray_peers": sum(lookup["peers"] for lookup in lookups if not lookup["expected"]),
    }
    if done:
        raw.update(
            lookup_ms=1e3 * statistics.median(lookup["seconds"] for lookup in done),
            slowest_ms=1e3 * max(lookup["seconds"] for lookup in done),
            walk_ms=median(None if lookup["walk_seconds"] is None
                           else 1e3 * lookup["walk_seconds"] for lookup in done),
            queries=statistics.median(lookup["queries"] for lookup in done),
            queries_mean=statistics.fmean(lookup["queries"] for lookup in done),
            responses=statistics.median(lookup["responses"] for lookup in done),
            timeouts=sum(lookup["timeouts"] for lookup in done),
        )
    if message.get("note"):
        raw["note"] = message["note"]
    elif not raw["verified"]:
        raw["note"] = f"{len(done)}/{len(lookups)} lookups ended"
    return raw


def measure(children: Children, client: str, spec: dict[str, Any], run: int) -> Result:
    """One measured node in its own process; its run's figures."""
    child = children.start_role(ROLES[client], spec, name=f"{client}-run{run + 1}")
    budget = START_TIMEOUT + JOIN_TIMEOUT + SETTLE_MAX + spec["timeout"] * len(spec["lookups"])
    try:
        message = child.message(budget)
        child.wait(EXIT_TIMEOUT)
    finally:
        child.stop()
    if message is None or message.get("event") != "result":
        return {"verified": False, "note": f"no result: {tail(child.log_path, 300)!r}"}
    raw = run_figures(message)
    raw["peak_rss_mib"] = None if child.rusage is None else child.rusage.ru_maxrss / 1024
    return raw


def pooled(results: dict[str, list[Result]]) -> dict[str, dict[str, float | None]]:
    """Over every lookup of the verified runs: the median and 90th percentile
    time (ms), the median queries."""
    out = {}
    for name, runs in results.items():
        lookups = [lookup for r in runs if r["verified"] for lookup in r["lookups"]]
        times = sorted(1e3 * lookup["seconds"] for lookup in lookups)
        out[name] = {
            "lookups": len(lookups),
            "lookup_ms": median(times),
            "p90_ms": times[min(len(times) - 1, int(0.9 * len(times)))] if times else None,
            "queries": median(lookup["queries"] for lookup in lookups),
        }
    return out


def _num(value: float | None, digits: int, width: int) -> str:
    return f"{'-' if value is None else f'{value:.{digits}f}':>{width}}"


def _range(bounds: Sequence[float] | None, digits: int, width: int) -> str:
    text = "-" if bounds is None else f"{bounds[0]:.{digits}f}-{bounds[1]:.{digits}f}"
    return f"{text:>{width}}"


def table(report: dict[str, Any]) -> str:
    """The text ``bench.dht`` prints: medians, per-run values, spreads, ratios."""
    cfg, env, dht = report["config"], report["environment"], report["dht"]
    results, medians = report["results"], report["medians"]
    width = 12
    cells = [max(len(title), 9) for _, title, _ in COLUMNS]
    header = f"{'client':<{width}} " + " ".join(
        f"{title:>{w}}" for (_, title, _), w in zip(COLUMNS, cells))
    before, after = dht["counts_before"], dht["counts_after"]
    lines = [
        f"DHT lookup benchmark: {cfg['nodes']} libtorrent DHT nodes on 127.0.0.1 in "
        f"{dht['processes']} processes, {cfg['lookups']} get_peers lookups per run "
        f"({cfg['announced']} announced by {cfg['announcers']} nodes each), {cfg['runs']} "
        f"run(s), {env['cpu_count']} CPUs, load average before/after "
        f"{env['load_before']:.2f}/{env['load_after']:.2f}",
        f"libtorrent {env['libtorrent']}, Python {env['python']}; the DHT's nodes knew "
        f"{min(before)}-{max(before)} others before the runs"
        f"{'' if dht['settled'] else ' (NOT settled)'}, {min(after)}-{max(after)} after",
        "each client: a fresh node in its own process, "
        f"{'read only (BEP 43), ' if cfg['read_only'] else ''}joined through one node of "
        "the DHT, then the same lookups one at a time; per run the median over its lookups:",
        "  lookup ms: from the call to the end of the lookup (libtorrent: its traversal's "
        "COMPLETED log line); walk ms: the same from the walk's own start",
        "  queries: get_peers queries sent per lookup (median; mean q: the mean); replies: "
        "answers to them; timeouts: queries that failed, in all",
        "  nodes: the node's table when its lookups began; join ms: to the end of its first "
        "lookup of its own id through the bootstrap node",
        "medians of the runs in which every lookup ended; per run: lookup ms/queries",
        "",
        header + "  found    ok  per run",
    ]
    for name, runs in results.items():
        ok = [r for r in runs if r["verified"]]
        found = f"{sum(r['found'] for r in ok)}/{sum(r['announced'] for r in ok)}"
        per_run = " ".join(
            f"{r['lookup_ms']:.2f}/{r['queries']:g}" if r["verified"]
            else f"failed({r.get('note') or 'not verified'})" for r in runs)
        lines.append(f"{name:<{width}} " + " ".join(
            _num(medians[name][key], digits, w) for (key, _, digits), w in zip(COLUMNS, cells))
            + f"  {found:>5} {len(ok):>2}/{len(runs):<3} {per_run}")
    lines += ["", "spread: min-max of those runs", header]
    for name, by_figure in report["spreads"].items():
        lines.append(f"{name:<{width}} " + " ".join(
            _range(by_figure[key], digits, w) for (key, _, digits), w in zip(COLUMNS, cells)))
    lines.append("")
    for name, pool in report["pooled"].items():
        lines.append(
            f"{name}: all {pool['lookups']} lookups: median {_num(pool['lookup_ms'], 2, 0)} ms, "
            f"90th percentile {_num(pool['p90_ms'], 2, 0)} ms, median "
            f"{_num(pool['queries'], 1, 0)} queries")
    ratios = report["ratios"]
    if ratios:
        parts = [f"{title} {'n/a' if ratios.get(key) is None else format(ratios[key], '.2f')}"
                 for key, title in RATIOS.items()]
        lines += ["", "txbittorrent / libtorrent (below 1: we are faster, or ask fewer "
                  "nodes): " + ", ".join(parts)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    rng = random.Random(args.seed)
    results: dict[str, list[Result]] = {name: [] for name in CLIENTS}
    runs_info: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="txbt-bench-dht-", dir=TMP_BASE) as root:
        children = Children(root, "bench.dht")
        try:
            dht = LoopbackDHT(children, os.path.join(root, "control"))
            dht.start(args.nodes, args.per_process)
            settled = dht.introduce()
            print(f"the DHT's {args.nodes} nodes know {min(settled['counts'])}-"
                  f"{max(settled['counts'])} others after {settled['seconds']:.1f} s",
                  file=sys.stderr)
            for n in range(args.runs):
                lookups = plan(rng, dht.ports, args.lookups, args.announced, args.announcers)
                info = dht.announce(lookups)
                runs_info.append(dict(info, order=list(CLIENTS if n % 2 == 0 else CLIENTS[::-1])))
                spec = {"bootstrap": dht.ports[0], "read_only": args.read_only,
                        "timeout": args.timeout,
                        "lookups": [{"info_hash": lookup["info_hash"],
                                     "expected": lookup["expected"]} for lookup in lookups]}
                for client in runs_info[-1]["order"]:
                    results[client].append(measure(children, client, spec, n))
                print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
            counts_after = dht.counts()
        finally:
            children.stop_all()
            if args.keep_logs:
                os.makedirs(args.keep_logs, exist_ok=True)
                for child in children.all:
                    shutil.copy(child.log_path, args.keep_logs)
    medians = {name: {f: median(r.get(f) for r in runs if r["verified"]) for f in FIGURES}
               for name, runs in results.items()}
    report: dict[str, Any] = {
        "config": {key: getattr(args, key) for key in (
            "nodes", "per_process", "lookups", "announced", "announcers", "runs", "timeout",
            "read_only", "seed")},
        "environment": environment(load_before),
        "dht": {"processes": len(dht.hosts), "ports": dht.ports, "bootstrap": dht.ports[0],
                "counts_before": settled["counts"], "settled": settled["settled"],
                "settle_seconds": settled["seconds"], "counts_after": counts_after},
        "runs": runs_info,
        "results": results,
        "medians": medians,
        "spreads": {name: {f: spread(r.get(f) for r in runs if r["verified"])
                           for f in FIGURES} for name, runs in results.items()},
        "pooled": pooled(results),
        "ratios": compare(medians, tuple(RATIOS)),
        "workdir": root,
        "pids": [child.pid for child in children.all],
    }
    print(table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0 if all(r["verified"] for runs in results.values() for r in runs) else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.dht", description=__doc__.split("\n")[0])
    p.add_argument("--nodes", type=int, default=None, help="the DHT's nodes (default 30)")
    p.add_argument("--per-process", type=int, default=10,
                   help="libtorrent DHT nodes per process (default 10)")
    p.add_argument("--lookups", type=int, default=None, help="lookups per run (default 20)")
    p.add_argument("--announced", type=int, default=None,
                   help="of them, announced beforehand (default half)")
    p.add_argument("--announcers", type=int, default=2,
                   help="nodes announcing each of those, each with its own peer port")
    p.add_argument("--runs", type=int, default=None, help="default 5")
    p.add_argument("--timeout", type=float, default=30.0, help="seconds one lookup may take")
    p.add_argument("--read-write", dest="read_only", action="store_false",
                   help="the measured nodes answer queries too (they then stay in the "
                        "DHT's tables, dead, after their process ends)")
    p.add_argument("--seed", type=int, default=None, help="for the info hashes and announcers")
    p.add_argument("--json", metavar="PATH", help="also save the raw figures as JSON")
    p.add_argument("--tiny", action="store_true",
                   help="6 nodes, 4 lookups, one run (for the test suite)")
    add_child_options(p, CHILDREN)
    args = p.parse_args(argv)
    if args.child:
        return args
    tiny = (6, 4, 1) if args.tiny else (30, 20, 5)
    args.nodes = args.nodes or tiny[0]
    args.lookups = args.lookups or tiny[1]
    args.runs = args.runs or tiny[2]
    if args.tiny:
        args.per_process = min(args.per_process, 3)
    args.announced = args.lookups // 2 if args.announced is None else args.announced
    args.seed = random.randrange(2**32) if args.seed is None else args.seed
    if args.nodes < 2 or args.lookups < 1 or args.runs < 1 or args.per_process < 1:
        p.error("--nodes must be at least 2; --lookups, --runs and --per-process positive")
    if not 0 <= args.announced <= args.lookups or not 1 <= args.announcers <= args.nodes:
        p.error("--announced must be between 0 and --lookups, --announcers between 1 and "
                "--nodes")
    if FIRST_PEER_PORT + args.lookups * args.announcers > 0xFFFF:
        p.error("too many announced peers for the port numbers")
    ensure_json_dir(args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bench_main("bench.dht", args, CHILDREN, run)


if __name__ == "__main__":
    main()
