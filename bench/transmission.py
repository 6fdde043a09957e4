"""How fast do we seed to Transmission 3.00, against a libtorrent seeder in the same run?

Run ``python -m bench.transmission [--size-mib 256] [--runs 5] [--json out.json]``,
or ``--tiny`` (16 MiB, one run) as the test suite does.  It needs
``transmission-cli`` (Debian's transmission-cli package), ``stdbuf``
(coreutils) and libtorrent's Python bindings.

Theory of operation
-------------------
One file of random bytes is written under a temporary directory (under /tmp,
removed at the end) with a v1 .torrent for it whose tracker URL points at an
unused port on 127.0.0.1 (Transmission tries it, fails at once and says so
in its log; nothing outside the machine is ever contacted).  Each run then
lets each seeder serve one Transmission leecher, in the reverse order every
other run, after the same pause (``--settle``):

1. a fresh ``transmission-cli`` starts with a fresh configuration directory
   and an empty download directory (``bench._transmission_leecher``), and
   the benchmark waits for its first status line (its torrent runs); if it
   logs that it could not bind its port (taken meanwhile by some other
   process), it is started again on another;
2. the seeder starts in a process of its own (``bench._transmission_seeders``:
   ours a ``Torrent``, libtorrent a local-only session, both plaintext and
   TCP) and verifies the data before anything is timed;
3. the seeder is told to dial it (Transmission 3.00 ignores loopback peers
   from a tracker) and reports the moment; the benchmark reads
   Transmission's status lines and log live, stamping each as it arrives,
   until Transmission logs that the torrent is complete;
4. both processes are ended and Transmission's copy is compared with the
   source by SHA-1.  A run counts only if Transmission completed and the
   copy matches; otherwise it is reported as failed and the exit status is 1.

Transmission only becomes interested in a new peer at its next rechoke
(every 10 s), so the time from the dial to complete includes up to 10 s of
Transmission's own waiting whoever seeds.  The report gives both that time
("conn-done") and the time from Transmission's first status line showing
data (progress or a download rate above 0; it updates them about once a
second) to complete ("byte-done"); the headline MB/s is 10**6 bytes over
byte-done.  The seeder's own first payload byte (its upload counter, looked
at every 10 ms) is in the JSON as ``seeder_data_seconds`` (its first byte to
complete).  CPU: the seeder's user+system seconds from the dial to complete
(``/proc/<pid>/stat``), and per GiB from its first payload byte to complete
(its own ``getrusage`` at the first byte: the wait for Transmission's
rechoke and the seeder's 10 ms looks at its counter left out);
Transmission's from the dial to complete; the share of the machine's CPU
that processes not ours took meanwhile.  Medians over the verified runs
with the min-max spread behind each, the ratios txbittorrent / libtorrent
of MB/s and CPU s/GiB, and "no difference" where the wider spread (or the
measurement's resolution) covers the difference
(``bench._transmission_report``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

from bench import _transmission_leecher as leecher_mod
from bench._common import (
    TMP_BASE,
    MiB,
    Result,
    add_child_options,
    bench_main,
    ensure_json_dir,
    environment,
    free_port,
    machine_busy,
    own_usage,
    proc_cpu,
    write_random_file,
)
from bench._procs import ChildFailed, Children, sha1_file
from bench._transmission_leecher import TransmissionLeecher
from bench._transmission_report import SEEDERS, figures, spreads, summarise, table, verdicts
from bench._transmission_seeders import lt_seed, tx_seed

CHILDREN = {"tx-seed": tx_seed, "lt-seed": lt_seed}
DATA_NAME = "transmission.bin"


def transmission_version() -> str | None:
    """What ``transmission-cli -V`` says ("3.00 (bb6b5a062e)"), or None."""
    try:
        done = subprocess.run([leecher_mod.EXECUTABLE, "-V"], capture_output=True, text=True,
                              timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    words = (done.stdout + done.stderr).split()
    return " ".join(words[1:3]) if len(words) >= 2 else None


def _cpu_delta(after: float | None, before: float | None) -> float | None:
    return None if after is None or before is None else after - before


def start_transmission(work: str, torrent: str, pids: list[int],
                       attempts: int = 3) -> TransmissionLeecher:
    """A running transmission-cli (its first status line read) listening on
    a port that was free; another port if it logs that it could not bind
    its own (some other process took it meanwhile), up to ``attempts`` times."""
    for _ in range(attempts):
        leecher = TransmissionLeecher(os.path.join(work, "transmission"), torrent, free_port())
        try:
            leecher.start()
            pids.append(leecher.pid)
            running = leecher.follow("running", 60)
        except BaseException:
            leecher.stop()
            raise
        if running and leecher.timeline.bind_error is None:
            return leecher
        why = leecher.timeline.bind_error or f"Transmission did not start: {leecher.tail()}"
        leecher.stop()
        if leecher.timeline.bind_error is None:
            raise ChildFailed(why)
        shutil.rmtree(leecher.work, ignore_errors=True)
    raise ChildFailed(f"Transmission could not listen ({attempts} ports tried): {why}")


def run_one(seeder: str, args: argparse.Namespace, root: str, torrent: str, source_dir: str,
            digest: str, n: int) -> Result:
    """One transfer from ``seeder`` ("tx" or "lt") to a fresh Transmission: its raw moments."""
    work = os.path.join(root, f"{seeder}-{n}")
    os.makedirs(work)
    children = Children(work)
    leecher: TransmissionLeecher | None = None
    raw: Result = {"seeder": seeder, "pids": []}
    try:
        leecher = start_transmission(work, torrent, raw["pids"])
        spec = {"torrent": torrent, "basedir": source_dir, "peer_port": leecher.peer_port}
        seed = children.start(f"{seeder}-seed", "bench.transmission",
                              ["--child", f"{seeder}-seed", "--spec", json.dumps(spec)])
        raw["pids"].append(seed.pid)
        seed.expect("READY", args.timeout)
        time.sleep(args.settle)
        busy0, own0 = machine_busy(), own_usage()["cpu"]
        seed_cpu0, tr_cpu0 = proc_cpu(seed.pid), proc_cpu(leecher.pid)
        wall0 = time.monotonic()
        seed.send("go")
        raw["dialled"] = seed.expect("DIALLED", 30)["at"]
        done = leecher.follow("complete", args.timeout)
        seed_cpu1, tr_cpu1 = proc_cpu(seed.pid), proc_cpu(leecher.pid)
        busy1, own1, wall1 = machine_busy(), own_usage()["cpu"], time.monotonic()
        timeline = leecher.timeline
        raw.update(first_data=timeline.first_data, complete=timeline.complete,
                   full=timeline.full, complete_logged=timeline.complete_logged,
                   seeder_cpu=_cpu_delta(seed_cpu1, seed_cpu0),
                   transmission_cpu=_cpu_delta(tr_cpu1, tr_cpu0))
        if busy0 is not None and busy1 is not None:
            ours = sum(x or 0.0 for x in (raw["seeder_cpu"], raw["transmission_cpu"]))
            raw["others_cpu_share"] = max(0.0, busy1 - busy0 - ours - (own1 - own0)) / (
                (wall1 - wall0) * (os.cpu_count() or 1))
        if not done:
            last = timeline.last
            raw["note"] = (f"Transmission did not complete in {args.timeout:.0f} s (last status: "
                           f"{last.percent if last else '?'}%)")
        try:
            first = seed.expect("FIRST", 2)
        except ChildFailed:
            first = {}
        raw["seeder_first"] = first.get("at")
        raw["seeder_data_cpu"] = _cpu_delta(seed_cpu1, first.get("cpu"))
        seed.send("stop")
        raw["uploaded"] = seed.expect("STATUS", 30).get("uploaded")
    except ChildFailed as e:
        raw["note"] = str(e)
    finally:
        if leecher is not None:
            leecher.stop()
        children.finish_all(30)
        if args.keep_logs:
            os.makedirs(args.keep_logs, exist_ok=True)
            for name in os.listdir(work):
                if name.endswith(".log"):
                    shutil.copy(os.path.join(work, name),
                                os.path.join(args.keep_logs, f"run{n + 1}-{name}"))
            if leecher is not None and os.path.exists(leecher.log_path):
                shutil.copy(leecher.log_path,
                            os.path.join(args.keep_logs, f"run{n + 1}-{seeder}-transmission.log"))
    try:
        copy = None if leecher is None else os.path.join(leecher.download_dir, DATA_NAME)
        raw["matched"] = (raw.get("complete") is not None and copy is not None
                          and sha1_file(copy) == digest)
        if raw.get("complete") is not None and not raw["matched"] and not raw.get("note"):
            raw["note"] = "Transmission's copy differs from the source"
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return raw


def run(args: argparse.Namespace) -> int:
    missing = leecher_mod.available()
    if missing:
        print(f"bench.transmission: {missing}", file=sys.stderr)
        return 2
    from txbittorrent.core.metainfo import parse
    from txbittorrent.storage.create import create_torrent

    load_before = os.getloadavg()[0]
    size = args.size_mib * MiB
    seeders = args.seeders
    results: dict[str, list[Result]] = {s: [] for s in seeders}
    with tempfile.TemporaryDirectory(prefix="txbt-bench-transmission-", dir=TMP_BASE) as root:
        source_dir = os.path.join(root, "source")
        os.makedirs(source_dir)
        source = os.path.join(source_dir, DATA_NAME)
        digest = write_random_file(source, size)
        # The tracker: an unused loopback port (Transmission fails quietly).
        tracker = f"http://127.0.0.1:{free_port()}/announce"
        data = create_torrent(source, trackers=[tracker], piece_length=args.piece_length,
                              created_by=None)
        metainfo = parse(data)
        torrent = os.path.join(root, "transmission.torrent")
        with open(torrent, "wb") as f:
            f.write(data)
        for n in range(args.runs):
            for seeder in seeders if n % 2 == 0 else seeders[::-1]:
                raw = run_one(seeder, args, root, torrent, source_dir, digest, n)
                results[seeder].append(figures(raw, size))
            print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
    report: dict[str, Any] = {
        "config": {
            "size_mib": args.size_mib, "piece_length": metainfo.piece_length,
            "pieces": metainfo.piece_count, "runs": args.runs, "seeders": seeders,
            "timeout": args.timeout, "settle": args.settle,
            "transmission_version": transmission_version(),
        },
        "environment": environment(load_before),
        "results": results,
        "medians": summarise(results),
        "spreads": spreads(results),
        "verdicts": verdicts(results) if set(seeders) == set(SEEDERS) else {},
        "workdir": root,
    }
    print(table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    return 0 if all(r["verified"] for runs in results.values() for r in runs) else 1


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.transmission", description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--piece-length", type=int, default=256 * 1024)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seeders", default="tx,lt",
                   help="which seeders, in the first run's order: tx, lt or both (default tx,lt)")
    p.add_argument("--json", metavar="PATH", help="also save the raw figures as JSON")
    p.add_argument("--tiny", action="store_true", help="16 MiB, one run (for the test suite)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per transfer (default 600; 120 with --tiny)")
    p.add_argument("--settle", type=float, default=None,
                   help="seconds to pause before each dial, Transmission started "
                        "(default 3; 0 with --tiny)")
    add_child_options(p, CHILDREN)
    args = p.parse_args(argv)
    if args.child:
        return args
    if args.tiny:
        args.size_mib, args.runs = 16, 1
        args.timeout = args.timeout or 120.0
        args.settle = 0.0 if args.settle is None else args.settle
    args.timeout = args.timeout or 600.0
    args.settle = 3.0 if args.settle is None else args.settle
    args.seeders = [s.strip() for s in args.seeders.split(",") if s.strip()]
    if not args.seeders or any(s not in SEEDERS for s in args.seeders) \
            or len(set(args.seeders)) != len(args.seeders):
        p.error("--seeders takes tx, lt or both, comma-separated")
    if args.size_mib < 1 or args.runs < 1 or args.piece_length < 16 * 1024:
        p.error("--size-mib and --runs must be positive, --piece-length at least 16384")
    ensure_json_dir(args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bench_main("bench.transmission", args, CHILDREN, run)


if __name__ == "__main__":
    main()
