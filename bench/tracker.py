"""Tracker announces per second (HTTP and UDP) and memory per peer, ours against opentracker.

Run ``python -m bench.tracker [--runs 5] [--duration 10] [--warmup 2]
[--peers 100000] [--torrents 1000] [--redis] [--json out.json] [--keep-logs
DIR]``; a smoke run: ``python -m bench.tracker --runs 1 --duration 2``.

Theory of operation
-------------------
What users run: ``txbittorrent tracker`` as a whole process, against
Debian's ``opentracker`` (built with a whitelist, so both get the same one:
the benchmark's ``--torrents`` info hashes), both on 127.0.0.1, in the same
run; each tracker pinned to CPU 0 with ``taskset`` and the load generator
(``bench._tracker_load``, a process of its own) to CPU 1 when the machine
has two.  Each run, for each tracker in turn (the order reversed every
other run), a fresh tracker process:

1. is probed until it answers a valid announce over HTTP and UDP;
2. memory: its VmRSS is read, ``--peers`` distinct peers announce
   ``started`` once each over UDP (round robin over the info hashes), and
   VmRSS is read again: the growth divided by the peers answered;
3. HTTP, then UDP: the generator keeps ``--clients`` x ``--depth`` requests
   in flight for ``--warmup`` seconds, then counts for ``--duration``
   seconds only the replies that decode as successful announces; the
   announces come from a seeded plan (info hashes by Zipf popularity,
   ``--zipf``; a fixed pool of peers per torrent; started/none/completed/
   stopped).  The tracker's CPU over the window is read from /proc, so
   "per CPU s" (valid replies per CPU second of the tracker) says what
   the tracker costs even where the generator, not the tracker, is the
   limit (load gen CPU near 100%).

Medians over the runs with their spread (min-max) and the ratios ours /
opentracker.  Without opentracker, ours runs alone (no ratio).  With
``--redis``, when ``txbittorrent tracker`` has ``--redis`` and a
``redis-server`` exists, ours also runs on a redis-server the benchmark
starts afresh for each run (loopback, no persistence, on the tracker's
CPU: its CPU time is added to the tracker's, its RSS growth to the memory
figure).  A run in which a tracker failed counts in
no median and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from bench._common import (
    LOOPBACK,
    TMP_BASE,
    Child,
    Children,
    Result,
    add_child_options,
    ensure_json_dir,
    environment,
    free_port,
    proc_cpu,
    proc_status,
    tail,
)
from bench._tracker_load import generate, info_hashes, whitelist_text
from bench._tracker_procs import (
    free_udp_port,
    pin_prefix,
    probe,
    redis_argv,
    redis_available,
    redis_flush,
    tracker_argv,
)
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

__all__ = ["CHILDREN", "main", "parse_args", "run"]

CHILDREN = {"load": generate}
PARTS = ("http", "udp")
START_TIMEOUT = 30.0


class TrackerFailed(Exception):
    """A tracker or the generator did not do its part."""


def _cpus() -> tuple[int | None, int | None]:
    """(the trackers' CPU, the generator's) when there are two to pin to."""
    try:
        cpus = sorted(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return None, None
    return (cpus[0], cpus[1]) if len(cpus) >= 2 else (None, None)


class TrackerBench:
    """The runs' processes and their measurements (see the module docstring)."""

    def __init__(self, args: argparse.Namespace, root: str, children: Children) -> None:
        self.args = args
        self.root = root
        self.children = children
        self.tracker_cpu, self.load_cpu = _cpus() if args.pin else (None, None)
        self.hashes = info_hashes(args.torrents)
        self.whitelist = os.path.join(root, "whitelist.txt")
        self.redis_port: int | None = None
        self.redis: Child | None = None

    def prepare(self) -> None:
        os.chmod(self.root, 0o755)  # opentracker reads it as nobody, chrooted there
        with open(self.whitelist, "w") as f:
            f.write(whitelist_text(self.hashes))
        os.chmod(self.whitelist, 0o644)

    def start_redis(self, run: int) -> None:
        """A fresh redis-server for this run's measurement (its RSS starts afresh)."""
        directory = os.path.join(self.root, f"redis-{run}")
        os.makedirs(directory)
        self.redis_port = free_port()
        self.redis = self.children.start(
            "redis-server", redis_argv(self.redis_port, directory, self.tracker_cpu),
            messages=False)
        if not redis_flush(self.redis_port):
            redis, self.redis, self.redis_port = self.redis, None, None
            redis.stop()
            raise TrackerFailed(f"redis-server did not answer: {tail(redis.log_path)}")

    def _cpu(self, tracker: Child) -> float | None:
        """CPU seconds the tracker (and its redis-server, if any) used so far."""
        used = proc_cpu(tracker.pid)
        if used is not None and self.redis is not None:
            extra = proc_cpu(self.redis.pid)
            used = None if extra is None else used + extra
        return used

    def _load(self, spec: dict[str, Any], tracker: Child) -> tuple[Result, float | None]:
        """Run the generator; its result and the tracker's CPU seconds over the
        window (with its redis-server's)."""
        load = self.children.start_role("load", dict(spec, cpu=self.load_cpu),
                                        name=f"load-{spec['mode']}")
        timeout = START_TIMEOUT + float(spec.get("warmup", 0)) + float(spec.get("timeout", 0))
        cpu0 = None
        while True:
            message = load.message(timeout)
            if message is None:
                raise TrackerFailed(f"the load generator stopped: {tail(load.log_path)}")
            if message["event"] == "start":
                cpu0 = self._cpu(tracker)
                timeout = START_TIMEOUT + float(spec.get("duration", 0))
            elif message["event"] == "result":
                cpu1 = self._cpu(tracker)
                load.wait(10.0)
                used = None if cpu0 is None or cpu1 is None else cpu1 - cpu0
                return message, used

    def measure(self, name: str, run: int) -> dict[str, Result]:
        """One tracker's memory, HTTP and UDP figures in a fresh process."""
        http_port, udp_port = free_port(), free_udp_port()
        out: dict[str, Result] = {}
        if name == REDIS:
            try:
                self.start_redis(run)
            except TrackerFailed as e:
                self._failed(name, e, out)
                return out
        redis_url = None if self.redis_port is None else f"redis://{LOOPBACK}:{self.redis_port}/0"
        argv = tracker_argv(name if name == OPENTRACKER else OURS, http_port, udp_port,
                            self.whitelist, self.root, self.tracker_cpu, self.args.torrents,
                            redis_url if name == REDIS else None)
        tracker = self.children.start(name, argv, messages=False)
        try:
            if not probe(http_port, udp_port, self.hashes[0], START_TIMEOUT,
                         alive=lambda: not tracker.exited()):
                raise TrackerFailed(f"{name} did not answer: {tail(tracker.log_path)}")
            base = {"host": LOOPBACK, "torrents": self.args.torrents, "hash_seed": 0,
                    "depth": self.args.depth, "clients": self.args.clients}
            if self.args.peers:
                before = proc_status(tracker.pid).get("VmRSS")
                extra0 = self._redis_rss()
                raw, _ = self._load(dict(base, mode="fill", port=udp_port,
                                         peers=self.args.peers, timeout=600), tracker)
                time.sleep(0.5)
                out["memory"] = memory_figures(raw, before, proc_status(tracker.pid).get("VmRSS"),
                                               extra0, self._redis_rss())
            for part in PARTS:
                if part not in self.args.parts:
                    continue
                spec = dict(base, mode=part, port=http_port if part == "http" else udp_port,
                            seed=self.args.seed + run, plan_size=self.args.plan_size,
                            slots=self.args.slots, zipf_s=self.args.zipf,
                            warmup=self.args.warmup, duration=self.args.duration)
                raw, cpu = self._load(spec, tracker)
                out[part] = load_figures(raw, cpu)
        except TrackerFailed as e:
            self._failed(name, e, out)
        finally:
            tracker.stop()
            if self.redis is not None:
                self.redis.stop()
                self.redis = None
                self.redis_port = None
        return out

    @staticmethod
    def _failed(name: str, error: Exception, out: dict[str, Result]) -> None:
        note = str(error).splitlines()[0][:200]
        for part in ("memory", *PARTS):
            out.setdefault(part, {"ok": False, "note": note})
        print(f"{name}: {error}", file=sys.stderr)

    def _redis_rss(self) -> int | None:
        if self.redis is None:
            return None
        return proc_status(self.redis.pid).get("VmRSS")


def run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    trackers = [OURS]
    have_ot = shutil.which("opentracker") is not None
    opentracker_note = "in the same run" if have_ot else "not installed: ours alone, no ratio"
    if have_ot:
        trackers.append(OPENTRACKER)
    redis_note = "not asked (--redis)"
    if args.redis:
        ok, why = redis_available()
        redis_note = ("a fresh redis-server a run on 127.0.0.1, no persistence, on the tracker's "
                      "CPU (its CPU and RSS counted with the tracker's)" if ok
                      else f"not available ({why})")
        if ok:
            trackers.append(REDIS)
        else:
            print("redis backend: not available", file=sys.stderr)
    results: dict[str, list[dict[str, Result]]] = {name: [] for name in trackers}
    with tempfile.TemporaryDirectory(prefix="txbt-bench-tracker-", dir=TMP_BASE) as root:
        children = Children(root, "bench.tracker")
        bench = TrackerBench(args, root, children)
        try:
            bench.prepare()
            for n in range(args.runs):
                for name in trackers[::-1] if n % 2 else trackers:
                    results[name].append(bench.measure(name, n))
                print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
        finally:
            children.stop_all()
            if args.keep_logs:
                os.makedirs(args.keep_logs, exist_ok=True)
                for child in children.all:
                    shutil.copy(child.log_path, args.keep_logs)
    pinning = ("none" if bench.tracker_cpu is None else
               f"trackers on CPU {bench.tracker_cpu}, load generator on CPU {bench.load_cpu}"
               + ("" if pin_prefix(0) else " (no taskset: trackers unpinned)"))
    report: dict[str, Any] = {
        "config": {
            "runs": args.runs, "duration": args.duration, "warmup": args.warmup,
            "torrents": args.torrents, "zipf_s": args.zipf, "slots": args.slots,
            "clients": args.clients, "depth": args.depth, "peers": args.peers,
            "seed": args.seed, "plan_size": args.plan_size, "parts": list(args.parts),
            "pinning": pinning,
        },
        "environment": environment(load_before),
        "opentracker": opentracker_note,
        "redis": redis_note,
        "workdir": root,
        "pids": [child.pid for child in children.all],
    }
    for part in args.parts:
        report[part] = section({name: [r[part] for r in runs] for name, runs in results.items()},
                               LOAD_FIGURES)
    if args.peers:
        report["memory"] = section(
            {name: [r["memory"] for r in runs] for name, runs in results.items()}, MEMORY_FIGURES)
    print(table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    every = [r for runs in results.values() for run_ in runs for r in run_.values()]
    return 0 if all(r.get("ok") for r in every) else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.tracker",
                                description=(__doc__ or "").split("\n")[0])
    p.add_argument("--runs", type=int, default=5, help="runs (default 5)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds counted per window (default 10)")
    p.add_argument("--warmup", type=float, default=2.0,
                   help="seconds of load before each window (default 2)")
    p.add_argument("--peers", type=int, default=100_000,
                   help="distinct peers announced for the memory figure (0: none; default 100000)")
    p.add_argument("--torrents", type=int, default=1000,
                   help="info hashes, the whitelist of both trackers (default 1000)")
    p.add_argument("--zipf", type=float, default=1.0,
                   help="Zipf exponent of the torrents' popularity (0: uniform; default 1)")
    p.add_argument("--slots", type=int, default=64,
                   help="peers per torrent in the load (default 64)")
    p.add_argument("--clients", type=int, default=16,
                   help="UDP client addresses / HTTP connections per depth (default 16)")
    p.add_argument("--depth", type=int, default=4,
                   help="requests in flight per UDP client; HTTP: connections = clients x depth"
                        " (default 4)")
    p.add_argument("--plan-size", type=int, default=50_000,
                   help="distinct announces in the plan, sent in a cycle (default 50000)")
    p.add_argument("--seed", type=int, default=1, help="the plan's seed (run n: seed + n)")
    p.add_argument("--parts", default="http,udp", help="http, udp or both (default)")
    p.add_argument("--redis", action="store_true",
                   help="also ours on a redis-server, if --redis exists and redis-server is here")
    p.add_argument("--no-pin", dest="pin", action="store_false",
                   help="do not pin the trackers and the generator to CPUs")
    p.add_argument("--json", metavar="PATH", help="also save the raw figures as JSON")
    add_child_options(p, CHILDREN)
    args = p.parse_args(argv)
    if args.child:
        return args
    args.parts = [part for part in args.parts.split(",") if part]
    if not args.parts or set(args.parts) - set(PARTS):
        p.error("--parts: choose from http,udp")
    if args.runs < 1 or args.duration <= 0 or args.warmup < 0:
        p.error("--runs and --duration must be positive, --warmup not negative")
    if min(args.torrents, args.slots, args.clients, args.depth, args.plan_size) < 1:
        p.error("--torrents, --slots, --clients, --depth and --plan-size must be positive")
    if args.peers < 0 or args.peers > args.torrents * 35000:
        p.error("--peers: 0 to 35000 per torrent")
    if args.slots > 20000 or args.zipf < 0:
        p.error("--slots at most 20000, --zipf not negative")
    ensure_json_dir(args)
    return args


def main(argv: list[str] | None = None) -> None:
    import signal

    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        CHILDREN[args.child](json.loads(args.spec))
        return

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
