"""How fast does txbittorrent download from (and seed to) real clients on 127.0.0.1?

Run ``python -m bench.download [--size-mib 1024] [--piece-length 1048576]
[--runs 3] [--leechers txbittorrent,libtorrent,aria2] [--seed-test]
[--cli [txbittorrent,libtorrent,libtorrent-hp]] [--cli-runs 5]
[--encryption plain|rc4|plain,rc4]
[--json out.json]``, or ``--tiny`` (8 MiB, one run) as the test suite does.

One data file of random bytes is written to a temporary directory (under
/tmp, removed afterwards) and a single-file v1 torrent is made for it with
``create_torrent``, with no tracker.  Every client runs in a process of its
own, so that one client's CPU time is never mixed with another's:

seeder      a libtorrent session (local only, TCP only) seeding the
            file, started once and kept for the whole benchmark;
leechers    in each run, one after another, each leecher downloads into an
            empty directory from that seeder:
            txbittorrent  a ``Torrent`` listening on 127.0.0.1, given the
                          seeder with ``add_peers``;
            libtorrent    a second libtorrent session, given the seeder with
                          ``connect_peer``;
            aria2         ``aria2c`` (no DHT, LPD or PEX).  It cannot be told
                          a peer, so for it a tracker of ours
                          (``txbittorrent.tracker.server``) runs in another process,
                          the seeder announces to it, and aria2c gets a copy
                          of the torrent with that tracker's URL (the info
                          dictionary, hence the info hash, is the same).
RC4         (``--encryption rc4`` or ``plain,rc4``) a second libtorrent
            seeder with MSE/PE forced and RC4 only (``LT_RC4``), from which
            ``txbittorrent+rc4`` (our session's encryption "forced") and
            ``libtorrent+rc4`` (``LT_RC4`` too) download, each after its
            plain twin; the summary adds txbittorrent / libtorrent with RC4
            and each client's RC4 / plain ratios: the cost of the cipher.
            The seed test and the whole-process runs stay plain.
seed test   (``--seed-test``) a txbittorrent seeder and the libtorrent seeder,
            one after the other, each serve a libtorrent leecher.
baseline    (``--baseline REF``) one more leecher, ``txbittorrent@<short
            SHA-1>``: the txbittorrent leecher of commit REF of this
            repository, so that a change can be timed against the code before
            it in the same run.  A clean copy of REF is extracted (``git
            archive``, no worktree) into the benchmark's temporary directory,
            and the leecher is REF's own ``bench.download --child tx-leech``
            run in that copy (its cwd and PYTHONPATH): old code with its old
            child, each side importing its own modules.  The parent sends it
            the same spec and reads the same result line as from ours (see
            "child processes" below), so REF's child must speak them; the
            benchmark checks, before anything is timed, that the copy imports
            its own ``txbittorrent`` and has that role.  It takes its turn in
            the alternating order like any leecher, and the summary adds the
            ratios txbittorrent / baseline.

whole process
            (``--cli``) after the runs above, ``--cli-runs`` more runs in
            which each client downloads as a whole program, timed from
            spawning its process to its exit, as ``time`` shows it:
            ``python -m txbittorrent download ...`` and a libtorrent
            program with the default and the ``high_performance_seed``
            presets; each run starts with the next client in turn.  The
            table gives each client's median with its min-max, the timeline
            of ours (spawn -> first event -> connected -> completed -> exit,
            from its ``--json`` events), and txbittorrent / libtorrent as
            MB/s ratios, "no difference" where the runs' spread covers the
            difference (``bench._download_cli``).  ``--leechers ''
            --cli`` measures only this.

What is measured, per transfer:

wall        for txbittorrent and libtorrent, the leecher process reports its
            own times.  It is given the seeder's address once its
            interpreter, libraries, session and torrent are up and its check
            of the empty directory is done; "connect s" runs from then to the
            connection to the seeder (txbittorrent: our handshake done;
            libtorrent: its ``peer_connect_alert``; libtorrent makes
            connections on its session tick, so this takes it up to a
            second), and "wall s" from the connection to every piece
            verified.  Process start-up and shutdown are left out.  aria2c
            reports nothing, so its wall time runs from its launch to the
            moment its ``--on-bt-download-complete`` hook runs: its start-up
            (milliseconds: a C program) and one announce to the loopback
            tracker are included.
MB/s        10**6 bytes of the file / wall.
CPU s/GiB   user + system seconds of the leecher process (every thread) per
            GiB: for txbittorrent and libtorrent the CPU time its own
            ``getrusage`` counted from being given the seeder to the end; for
            aria2c its whole life (``os.wait4``).  The whole life of every
            process is in the JSON too.  In the seed test, the seeder's CPU
            time over the transfer comes from ``/proc/<pid>/stat`` (10 ms
            granularity).
RSS MiB     the leecher's peak resident set (``ru_maxrss`` from ``os.wait4``).
            libtorrent reads and writes through memory-mapped files, and the
            kernel counts the mapped pages of the torrent in its RSS, so the
            benchmark also samples each process's anonymous RSS
            (``RssAnon`` in ``/proc/<pid>/status``) every 0.1 s: "anon MiB"
            is the largest value seen, the memory the client allocated.

libtorrent is held to TCP (uTP off, see ``LT_TCP_ONLY`` in
``bench._download_children``) on both sides: by default two libtorrent peers
talk uTP, which on loopback is many times slower than TCP (figures in
bench/README).
Its leechers dial in plain BitTorrent (``LT_PLAIN_OUT``): by default they try
an encrypted handshake first, which txbittorrent refuses, and dial again a
second later.  Otherwise every client keeps its default settings.

Each download is then compared with the source, SHA-1 over the whole file.
A run that timed out, failed, or whose data differs is reported as failed,
counted in no median, and makes the exit status 1.  The figures are medians
over the runs, each with its spread (min-max) in a second table; the ratios
are txbittorrent / libtorrent (and txbittorrent / baseline).  The machine's load
average is printed: other processes skew the figures, and on a small machine
seeder and leecher compete for the same cores.  Each transfer also records
the share of the machine's CPU that other processes took meanwhile
(``/proc/stat`` less our processes: "others"), and ``--wait-quiet PCT`` waits
before each transfer until the machine has been below PCT% busy for a moment.

``--profile-dir DIR`` runs the txbittorrent leecher under cProfile (its
reactor thread, over the wall interval only) and saves one ``.pstats`` file
per run there; those runs are slower and marked as profiled.

The child processes are this same module, run with a hidden ``--child ROLE``
argument (the roles live in ``bench._download_children``); each writes JSON
lines to its standard output.  Between parent and
leecher children the contract is: the spec holds ``torrent``, ``dir``,
``peer``, ``pieces``, ``timeout`` and, when profiled, ``profile``; the
result line holds ``ok``, ``seconds``, ``connected``, ``cpu`` and ``pieces``,
and may hold ``reactor_cpu``, ``threads`` and ``note``.  Keep it so, or
``--baseline`` against older commits breaks (a1a823c's child speaks it).

The parts: ``bench._download_bench`` (``Bench``: the data, the seeders, one
transfer), ``bench._download_children`` (the child roles),
``bench._download_cli`` and ``bench._download_ltcli`` (the whole-process
runs and libtorrent's program),
``bench._download_report`` (figures, medians, spreads, ratios, the table),
``bench._baseline`` (the ``--baseline`` copy); this module keeps the command
line and the run loop.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Any

from bench._baseline import baseline_name, prepare_baseline
from bench._common import add_child_options, bench_main, ensure_json_dir
from bench._common import TMP_BASE, Checkout, Children, Result, environment, resolve_commit
from bench._download_bench import QUIET_WINDOW, Bench
from bench._download_children import CHILDREN, RC4_SUFFIX
from bench._download_cli import CLI_CLIENTS, CLI_PREFIX, cli_table, summarise_cli
from bench._download_report import compare, spreads, summarise, table

# CHILDREN, the roles' table, stays importable from here: ``main`` runs one
# with ``--child ROLE``, and the ``--baseline`` probe (bench._baseline) looks
# for it in every commit's ``bench.download``.
__all__ = ["CHILDREN", "LEECHERS", "SEEDERS", "main", "parse_args", "run"]

LEECHERS = ("txbittorrent", "libtorrent", "aria2")
SEEDERS = ("txbittorrent", "libtorrent")
ENCRYPTIONS = ("plain", "rc4")
RC4_LEECHERS = ("txbittorrent", "libtorrent")
"""The leechers that also run with ``--encryption rc4`` (as ``<name>+rc4``)."""


def with_encryption(leechers: list[str], encryptions: list[str]) -> list[str]:
    """The leechers to run: the plain ones if ``plain`` is asked for, and
    after each of ``RC4_LEECHERS`` its ``+rc4`` twin if ``rc4`` is."""
    out: list[str] = []
    for name in leechers:
        if "plain" in encryptions:
            out.append(name)
        if "rc4" in encryptions and name in RC4_LEECHERS:
            out.append(name + RC4_SUFFIX)
    return out


def seeder_for(leecher: str) -> str:
    """The libtorrent seeder a leecher downloads from: the RC4-forced one
    for a ``+rc4`` leecher, else the plain one."""
    return "libtorrent" + RC4_SUFFIX if leecher.endswith(RC4_SUFFIX) else "libtorrent"


def run(args: argparse.Namespace) -> int:
    leechers = list(args.leechers)
    skipped: dict[str, str] = {}
    if "aria2" in leechers and shutil.which("aria2c") is None:
        leechers.remove("aria2")
        skipped["aria2"] = "aria2c is not installed"
    leechers = with_encryption(leechers, args.encryption)
    load_before = os.getloadavg()[0]
    seeding: dict[str, list[Result]] = {name: [] for name in SEEDERS} if args.seed_test else {}
    baseline: Checkout | None = None
    with tempfile.TemporaryDirectory(prefix="txbt-bench-dl-", dir=TMP_BASE) as root:
        if args.baseline:
            # Removed with the temporary directory; the repository is not touched.
            baseline = prepare_baseline(args.baseline, os.path.join(root, "baseline"))
            print(f"baseline {baseline_name(baseline)}: commit {baseline.commit}, "
                  f"copied to {baseline.root}", file=sys.stderr)
            # Next to ours, so that the two take their turns one after the other.
            at = leechers.index("txbittorrent") + 1 if "txbittorrent" in leechers else 0
            leechers.insert(at, baseline_name(baseline))
        download: dict[str, list[Result]] = {name: [] for name in leechers}
        cli: dict[str, list[Result]] = {name: [] for name in args.cli}
        children = Children(root, "bench.download")
        try:
            bench = Bench(args, root, children, baseline)
            bench.prepare(need_tracker="aria2" in leechers)
            library_runs = args.runs if leechers or seeding else 0
            for n in range(library_runs):
                # Every other run in the reverse order, so that no client is
                # always the first after the pause (or after the other).
                for leecher in leechers if n % 2 == 0 else leechers[::-1]:
                    download[leecher].append(bench.transfer(leecher, seeder_for(leecher), n))
                for seeder in seeding:
                    seeding[seeder].append(bench.transfer("libtorrent", seeder, n))
                print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
            if cli:
                bench.prepare_cli()
            for n in range(args.cli_runs if cli else 0):
                # Each run starts with the next client, so that none is always first.
                order = args.cli[n % len(args.cli):] + args.cli[:n % len(args.cli)]
                for client in order:
                    cli[client].append(bench.transfer(CLI_PREFIX + client, "libtorrent", n))
                print(f"whole-process run {n + 1}/{args.cli_runs} done", file=sys.stderr)
        finally:
            children.stop_all()
            if args.keep_logs:
                os.makedirs(args.keep_logs, exist_ok=True)
                for child in children.all:
                    shutil.copy(child.log_path, args.keep_logs)
    report: dict[str, Any] = {
        "config": {
            "size_mib": args.size_mib,
            "piece_length": args.piece_length,
            "pieces": bench.pieces,
            "runs": args.runs,
            "leechers": leechers,
            "cli": args.cli,
            "cli_runs": args.cli_runs if args.cli else 0,
            "seed_test": args.seed_test,
            "encryption": args.encryption,
            "timeout": args.timeout,
            "settle": args.settle,
            "baseline": None if baseline is None else {
                "ref": baseline.ref, "commit": baseline.commit, "short": baseline.short,
                "leecher": baseline_name(baseline)},
        },
        "environment": environment(load_before),
        "skipped": skipped,
        "profile_dir": args.profile_dir,
        "workdir": root,
        "pids": [child.pid for child in children.all],
    }
    if download:
        medians = summarise(download)
        figures = ("mb_s", "seconds", "cpu_s_per_gib", "peak_rss_mib", "peak_anon_mib")
        report["download"] = {
            "results": download,
            "medians": medians,
            "spreads": spreads(download),
            "ratios": compare(medians, figures),
            "baseline_ratios": None if baseline is None else compare(
                medians, figures, "txbittorrent", baseline_name(baseline)),
            "rc4_ratios": {
                "txbittorrent / libtorrent (RC4)": compare(
                    medians, figures, "txbittorrent" + RC4_SUFFIX, "libtorrent" + RC4_SUFFIX),
                "txbittorrent RC4 / plain": compare(
                    medians, figures, "txbittorrent" + RC4_SUFFIX, "txbittorrent"),
                "libtorrent RC4 / plain": compare(
                    medians, figures, "libtorrent" + RC4_SUFFIX, "libtorrent"),
            },
        }
    if seeding:
        medians = summarise(seeding)
        report["seed"] = {
            "results": seeding,
            "medians": medians,
            "spreads": spreads(seeding),
            "ratios": compare(medians, ("mb_s", "seconds", "seeder_cpu_s_per_gib",
                                        "seeder_peak_anon_mib", "cpu_s_per_gib")),
        }
    if cli:
        report["cli"] = {"results": cli, **summarise_cli(cli)}
    text = table(report)
    if cli:
        text += "\n" + "\n".join(cli_table(report["cli"]))
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    failed = any(not r["verified"] for part in (download, seeding, cli)
                 for runs in part.values() for r in runs)
    return 1 if failed else 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.download", description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--files", type=int, default=1,
                   help="1: one file (default); N > 1: N files of mixed sizes in nested "
                        "directories (e.g. 2000)")
    p.add_argument(
        "--piece-length", type=int, default=None, help="default 1048576 (262144 with --tiny)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--leechers", default=",".join(LEECHERS),
                   help=f"comma-separated, from {','.join(LEECHERS)}; empty for none")
    p.add_argument("--encryption", default="plain", metavar="plain,rc4",
                   help="plain (default): leechers dial plain; rc4: txbittorrent+rc4 (our "
                        "encryption forced) and libtorrent+rc4 download from a second "
                        "libtorrent seeder with MSE/PE forced, RC4 only; plain,rc4: both, "
                        "with the ratios RC4 / plain")
    p.add_argument("--seed-test", action="store_true",
                   help="also time txbittorrent and libtorrent seeding to a libtorrent leecher")
    p.add_argument("--cli", nargs="?", const=",".join(CLI_CLIENTS), default="",
                   metavar="CLIENTS",
                   help="also time whole processes, from spawn to exit (see "
                        f"bench._download_cli), of these clients (default {','.join(CLI_CLIENTS)})")
    p.add_argument("--cli-runs", type=int, default=5,
                   help="runs of the whole-process measurement (default 5; 1 with --tiny)")
    p.add_argument("--json", metavar="PATH", help="also save the raw figures as JSON")
    p.add_argument("--tiny", action="store_true", help="8 MiB, one run (for the test suite)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per transfer (default 600; 60 with --tiny)")
    p.add_argument("--wait-quiet", type=float, metavar="PCT",
                   help="before each transfer, wait until the machine's CPU use stays below "
                        f"PCT%% of all CPUs for {QUIET_WINDOW:.0f} s (a shared machine)")
    p.add_argument("--settle", type=float, default=None,
                   help="seconds to pause before each transfer, so that every transfer "
                        "finds the machine's free memory in the same state (default 10; 0 with "
                        "--tiny); see bench/README")
    p.add_argument("--quiet-timeout", type=float, default=600.0,
                   help="seconds --wait-quiet waits at most (then the transfer runs anyway)")
    p.add_argument("--profile-dir", metavar="DIR",
                   help="run the txbittorrent leecher under cProfile, saving .pstats here")
    p.add_argument("--baseline", metavar="REF",
                   help="also run the txbittorrent leecher of commit REF of this repository "
                        "(a clean copy of it, its own bench child), as txbittorrent@<sha>")
    add_child_options(p, CHILDREN)
    args = p.parse_args(argv)
    if args.child:
        return args
    if args.tiny:
        args.size_mib, args.runs, args.cli_runs = 8, 1, 1
        args.piece_length = args.piece_length or 256 * 1024
        args.timeout = args.timeout or 60.0
        args.settle = 0.0 if args.settle is None else args.settle
    args.settle = 10.0 if args.settle is None else args.settle
    args.piece_length = args.piece_length or 1024 * 1024
    args.timeout = args.timeout or 600.0
    args.leechers = [name for name in args.leechers.split(",") if name]
    unknown = set(args.leechers) - set(LEECHERS)
    if unknown:
        p.error(f"unknown leechers {sorted(unknown)}; choose from {','.join(LEECHERS)}")
    args.encryption = [name for name in args.encryption.split(",") if name]
    if not args.encryption or set(args.encryption) - set(ENCRYPTIONS):
        p.error(f"--encryption: a comma-separated list from {','.join(ENCRYPTIONS)}")
    args.cli = [name for name in args.cli.split(",") if name]
    unknown = set(args.cli) - set(CLI_CLIENTS)
    if unknown:
        p.error(f"unknown --cli clients {sorted(unknown)}; choose from {','.join(CLI_CLIENTS)}")
    if not args.leechers and not args.seed_test and not args.baseline and not args.cli:
        p.error("nothing to measure: no leechers, no --seed-test, no --baseline and no --cli")
    if args.cli_runs < 1:
        p.error("--cli-runs must be positive")
    if args.files < 1 or args.files > args.size_mib * 1024:
        p.error("--files must be between 1 and one file per KiB of data")
    if args.size_mib < 1 or args.runs < 1 or args.piece_length < 16 * 1024:
        p.error("--size-mib and --runs must be positive, --piece-length at least 16384")
    if args.baseline:
        try:
            resolve_commit(args.baseline)  # a typo fails here, before 1 GiB is written
        except ValueError as e:
            p.error(f"--baseline: {e}")
    if args.profile_dir:
        os.makedirs(args.profile_dir, exist_ok=True)
    ensure_json_dir(args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bench_main("bench.download", args, CHILDREN, run)


if __name__ == "__main__":
    main()
