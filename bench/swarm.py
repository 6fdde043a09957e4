"""One seed and four leechers on 127.0.0.1: txbittorrent against libtorrent.

Run ``python -m bench.swarm [--size-mib 256] [--leechers 4] [--runs 1]
[--json out.json]``, or ``--tiny`` (4 MiB, one run) as the test suite does.

One data file of random bytes is written under a temporary directory (under
/tmp, removed afterwards).  Each run then measures two swarms, one after the
other, every peer a process of its own:

txbittorrent  a ``Torrent`` seeding the file, and ``--leechers`` ``Torrent``
              leechers, each with its own session on 127.0.0.1;
libtorrent    the same with libtorrent sessions (local only: no DHT, LSD,
              UPnP, NAT-PMP; several connections per IP allowed), on TCP
              only unless ``--lt-utp``: libtorrent tries uTP first by
              default, and uTP's delay-based congestion control over
              loopback cut its swarm to about a third of its TCP speed here
              (figures in bench/README), which would compare transports,
              not clients.

Each swarm gets a fresh tracker of ours (``start_tracker``, in a process of
its own, announce interval 10 s) and a .torrent made for it
(``create_torrent``, the tracker's URL in ``announce``), so no swarm ever
hears of another's peers.  The seed starts first and verifies the data; once
the tracker has registered it, the leechers are started and loaded (process,
imports, .torrent parsed, session made), the benchmark pauses ``--settle``
seconds (default 5; 0 with ``--tiny``: the kernel's reclaim of the previous
swarm's page cache and files otherwise lands in this one's first seconds,
and ours measured 3.2-3.5 s alone against 3.6-3.9 s right after
libtorrent's swarm), and then all are told "go" at the same moment: each starts its torrent (announce, connect, download) and
reports when it is complete, with the CPU seconds its process used from
"go" to complete (``getrusage``: user + system, every thread).  Leechers keep
seeding to the others until all are done.  Then every process is stopped,
and each leecher's file is compared with the source by SHA-1.

Figures: the time from "go" until the last leecher completed; the aggregate
download rate (leechers x size / that time); leecher CPU seconds per GiB
downloaded (summed over the leechers); the seed's CPU seconds in the same
span (from /proc).  A run counts only if every leecher completed in time and
every file matches; otherwise it is reported as failed.  MB is 10**6 bytes,
GiB 2**30.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from bench._common import thread_cpu, thread_cpu_delta
from bench._procs import (
    GiB,
    LOOPBACK,
    LT_LOCAL_SETTINGS,
    MiB,
    Children,
    ChildFailed,
    Commands,
    Result,
    emit,
    environment,
    have_libtorrent,
    kib_to_mib,
    listen_for_commands,
    median,
    own_cpu,
    proc_cpu,
    proc_status,
    ratio,
    read_spec,
    run_twisted_child,
    sha1_file,
    write_random_file,
    write_spec,
)

TRACKER_INTERVAL = 10
"""Seconds between announces that the benchmark's tracker asks for."""
DATA_NAME = "swarm.bin"
TCP_ONLY = {"enable_outgoing_utp": False, "enable_incoming_utp": False}
"""libtorrent settings that keep it on TCP, as txbittorrent is (see ``--lt-utp``)."""
CLIENT_NAMES = {"tx": "txbittorrent", "lt": "libtorrent"}


# -- child roles ----------------------------------------------------------------------------


async def tracker(reactor: Any, spec: dict[str, Any]) -> None:
    """Our tracker on 127.0.0.1; after ``watch <info hash hex>``, says PEERS
    with the swarm's size each time it changes."""
    from twisted.internet.defer import Deferred
    from twisted.internet.task import LoopingCall

    from txbittorrent.tracker.server import start_tracker

    running = await start_tracker(reactor, LOOPBACK, interval=int(spec["interval"]))
    stopped: Deferred[None] = Deferred()
    watched: list[bytes] = []
    last = [-1]

    def on_command(word: str) -> None:
        if word.startswith("watch "):
            watched[:] = [bytes.fromhex(word.split()[1])]
        elif word == "stop" and not stopped.called:
            stopped.callback(None)

    def poll() -> None:
        if watched:
            count = len(running.state.peers(watched[0]))
            if count != last[0]:
                last[0] = count
                emit("PEERS", count=count)

    listen_for_commands(reactor, on_command)
    poller = LoopingCall(poll)
    poller.clock = reactor
    poller.start(0.02)
    emit("READY", announce_url=running.announce_url, pid=os.getpid())
    try:
        await stopped
    finally:
        poller.stop()
        await running.stop()


async def tx_leech(reactor: Any, spec: dict[str, Any]) -> None:
    """A txbittorrent leecher: load, wait for ``go``, download, say DONE,
    keep seeding until ``stop``."""
    from twisted.internet.defer import DeferredList

    from txbittorrent.torrent import Torrent

    commands = Commands(reactor)
    torrent = Torrent(
        spec["torrent"], basedir=spec["basedir"], reactor=reactor, listen_interfaces=[LOOPBACK]
    )
    emit("READY", pid=os.getpid())
    try:
        if await commands.wait("go") != "go":
            return
        profiler = None
        if spec.get("profile"):
            import cProfile

            # The main thread's CPU time, not the wall clock: five processes
            # share two cores here, so a wall-clock profile charges a
            # function for the time it sat preempted.
            profiler = cProfile.Profile(time.thread_time)
            profiler.enable()
        cpu0, threads0 = own_cpu(), thread_cpu()
        t0 = time.monotonic()
        await torrent.start()
        await DeferredList([torrent.when_complete(), commands.wait("stop")], fireOnOneCallback=True)
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(spec["profile"])
        if torrent.complete:
            emit(
                "DONE",
                at=time.monotonic(),
                seconds=time.monotonic() - t0,
                cpu=own_cpu() - cpu0,
                threads=thread_cpu_delta(threads0, thread_cpu()),
                downloaded=torrent.downloaded,
                uploaded=torrent.uploaded,
                rss_mib=kib_to_mib(proc_status().get("VmRSS")),
            )
        await commands.wait("stop")
    finally:
        await torrent.close()


def lt_leech(spec: dict[str, Any]) -> None:
    """A libtorrent leecher: the same steps as ``tx_leech``."""
    lt: Any = importlib.import_module("libtorrent")

    settings = dict(LT_LOCAL_SETTINGS)
    settings.update(spec.get("settings") or {})
    settings["alert_mask"] = lt.alert_category.status | lt.alert_category.error
    session = lt.session(settings)
    try:
        with open(spec["torrent"], "rb") as f:
            info = lt.torrent_info(lt.bdecode(f.read()))
        emit("READY", pid=os.getpid())
        if sys.stdin.readline().strip() != "go":
            return
        cpu0 = own_cpu()
        t0 = time.monotonic()
        params = lt.add_torrent_params()
        params.ti = info
        params.save_path = spec["basedir"]
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        handle = session.add_torrent(params)
        deadline = t0 + float(spec["timeout"])
        done = False
        while not done and time.monotonic() < deadline:
            session.wait_for_alert(50)
            for alert in session.pop_alerts():
                if isinstance(alert, lt.torrent_finished_alert):
                    done = True
                elif isinstance(alert, lt.torrent_error_alert):
                    emit("FAIL", reason=alert.message())
                    return
        status = handle.status()
        if done and status.is_seeding:
            emit(
                "DONE",
                at=time.monotonic(),
                seconds=time.monotonic() - t0,
                cpu=own_cpu() - cpu0,
                downloaded=status.total_payload_download,
                uploaded=status.total_payload_upload,
                rss_mib=kib_to_mib(proc_status().get("VmRSS")),
            )
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        session.remove_torrent(handle)
    finally:
        session.pause()
        del session


# -- the parent -----------------------------------------------------------------------------


def run_swarm(client: str, args: Any, root: str, source: str, digest: str, run: int) -> Result:
    """One swarm of ``client``: tracker, seed, leechers; returns the figures."""
    from txbittorrent.core.metainfo import parse
    from txbittorrent.storage.create import create_torrent

    work = os.path.join(root, f"{client}-{run}")
    os.makedirs(work)
    children = Children(work)
    size = args.size_mib * MiB
    timeout = args.timeout
    result: Result = {"ok": False}
    try:
        tracker_child = children.start(
            "tracker",
            "bench.swarm",
            ["--child", "tracker", write_spec(work, "tracker", {"interval": TRACKER_INTERVAL})],
        )
        url = tracker_child.expect("READY", 30)["announce_url"]
        raw = create_torrent(
            source, trackers=[url], piece_length=args.piece_length, created_by=None
        )
        metainfo = parse(raw)
        torrent = os.path.join(work, "swarm.torrent")
        with open(torrent, "wb") as f:
            f.write(raw)
        tracker_child.send(f"watch {metainfo.info_hash.hex()}")
        lt_settings = {} if args.lt_utp else TCP_ONLY
        seed_spec = {
            "torrent": torrent,
            "basedir": os.path.dirname(source),
            "timeout": timeout,
            "settings": lt_settings,
        }
        seed = children.start(
            "seed", "bench._procs", [f"{client}-seed", write_spec(work, "seed", seed_spec)]
        )
        seed.expect("READY", timeout)
        while tracker_child.expect("PEERS", 30)["count"] < 1:
            pass  # until the tracker has registered the seed
        leechers = []
        for n in range(args.leechers):
            basedir = os.path.join(work, f"leech{n}")
            os.makedirs(basedir)
            spec = {
                "torrent": torrent,
                "basedir": basedir,
                "timeout": timeout,
                "settings": lt_settings,
            }
            if args.profile_dir and client == "tx":
                spec["profile"] = os.path.join(
                    os.path.abspath(args.profile_dir), f"leech{n}-run{run}.pstats"
                )
            leecher = children.start(
                f"leech{n}",
                "bench.swarm",
                ["--child", f"{client}-leech", write_spec(work, f"leech{n}", spec)],
            )
            leechers.append((leecher, basedir))
        for leecher, _ in leechers:
            leecher.expect("READY", 60)
        time.sleep(args.settle)
        seed_cpu0 = proc_cpu(seed.pid)
        go = time.monotonic()
        for leecher, _ in leechers:
            leecher.send("go")
        deadline = go + timeout
        done = []
        for leecher, _ in leechers:
            done.append(leecher.expect("DONE", max(1.0, deadline - time.monotonic())))
        seed_cpu1 = proc_cpu(seed.pid)
        codes = children.finish_all(60)
    except ChildFailed as e:
        result["note"] = str(e)
        children.finish_all(30)
        shutil.rmtree(work, ignore_errors=True)
        return result
    except BaseException:
        children.finish_all(30)
        shutil.rmtree(work, ignore_errors=True)
        raise
    try:
        hashes = [sha1_file(os.path.join(basedir, DATA_NAME)) for _, basedir in leechers]
    finally:
        shutil.rmtree(work, ignore_errors=True)
    verified = sum(h == digest for h in hashes)
    seconds = max(d["at"] for d in done) - go
    cpu = sum(d["cpu"] for d in done)
    result.update(
        verified=verified,
        leechers=args.leechers,
        seconds=seconds,
        first_seconds=min(d["at"] for d in done) - go,
        mb_s=args.leechers * size / 1e6 / seconds,
        leecher_cpu=cpu,
        cpu_per_gib=cpu / (args.leechers * size / GiB),
        seed_cpu=None if seed_cpu0 is None or seed_cpu1 is None else seed_cpu1 - seed_cpu0,
        leecher_rss_mib=median(d.get("rss_mib") for d in done),
        per_leecher=done,
        exit_codes=codes,
        pieces=metainfo.piece_count,
        piece_length=metainfo.piece_length,
    )
    notes = []
    if verified != args.leechers:
        notes.append(f"only {verified} of {args.leechers} leechers' files match the source")
    bad_exits = {name: code for name, code in codes.items() if code}
    if bad_exits:
        notes.append(f"nonzero exit status: {bad_exits}")
    result["ok"] = verified == args.leechers
    if notes:
        result["note"] = "; ".join(notes)
    return result


ROWS = [
    # (key, label, format)
    ("seconds", "time until all {n} complete (s)", "{:.2f}"),
    ("first_seconds", "time until the first completes (s)", "{:.2f}"),
    ("mb_s", "aggregate download (MB/s)", "{:.1f}"),
    ("cpu_per_gib", "leecher CPU per GiB (s)", "{:.2f}"),
    ("seed_cpu", "seed CPU over the same span (s)", "{:.2f}"),
    ("leecher_rss_mib", "leecher RSS when complete (MiB)", "{:.1f}"),
]


def table(report: dict[str, Any]) -> str:
    cfg, env = report["config"], report["environment"]
    lines = [
        f"swarm benchmark: one {cfg['size_mib']} MiB file ({cfg['pieces']} pieces of "
        f"{cfg['piece_length'] // 1024} KiB), 1 seed + {cfg['leechers']} leechers, each in its "
        f"own process, our tracker on {LOOPBACK}; {cfg['runs']} run(s), "
        f"{env['cpu_count']} CPUs, load average before/after "
        f"{env['load_before']:.2f}/{env['load_after']:.2f}",
        "libtorrent " + ("with uTP and TCP (its default)" if cfg.get("lt_utp") else
                         "on TCP only, as txbittorrent (--lt-utp: its default uTP and TCP)"),
        "medians of the runs in which every leecher completed and its file matched (SHA-1); "
        f"--settle {cfg.get('settle', 0):g} s before each swarm's go",
        "",
        f"{'measurement':<36} {'txbittorrent':>12} {'libtorrent':>11} {'tx/lt':>7}",
    ]
    for key, label, fmt in ROWS:
        row = [label.format(n=cfg["leechers"])]
        values: list[float | None] = []
        for client in ("tx", "lt"):
            if client not in report["results"]:
                row.append("n/a")
                values.append(None)
                continue
            value = report["medians"][client].get(key)
            values.append(value)
            row.append("failed" if value is None else fmt.format(value))
        r = ratio(values[0], values[1])
        lines.append(f"{row[0]:<36} {row[1]:>12} {row[2]:>11} {'' if r is None else f'{r:.2f}':>7}")
    row = ["leechers verified (SHA-1), all runs"]
    for client in ("tx", "lt"):
        runs = report["results"].get(client)
        if runs is None:
            row.append("n/a")
        else:
            row.append(f"{sum(r.get('verified', 0) for r in runs)}/{cfg['leechers'] * len(runs)}")
    lines.append(f"{row[0]:<36} {row[1]:>12} {row[2]:>11}")
    lines.append("")
    for client, runs in report["results"].items():
        ok = sum(bool(r.get("ok")) for r in runs)
        line = f"{CLIENT_NAMES[client]}: {ok}/{len(runs)} runs counted"
        times = " ".join(f"{r['seconds']:.2f}" if r.get("ok") else "failed" for r in runs)
        line += f"; time per run: {times}"
        notes = [r["note"] for r in runs if r.get("note")]
        if notes:
            line += "; " + " | ".join(notes)
        lines.append(line)
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    clients = ["tx", "lt"] if have_libtorrent() and not args.no_libtorrent else ["tx"]
    load_before = os.getloadavg()[0]
    results: dict[str, list[Result]] = {client: [] for client in clients}
    root = tempfile.mkdtemp(prefix="txbt-swarm-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        src = os.path.join(root, "src")
        os.makedirs(src)
        source = os.path.join(src, DATA_NAME)
        digest = write_random_file(source, args.size_mib * MiB)
        for n in range(args.runs):
            for client in clients if n % 2 == 0 else clients[::-1]:
                results[client].append(run_swarm(client, args, root, source, digest, n))
            print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    medians = {
        client: {
            key: median(r.get(key) for r in runs if r.get("ok"))
            for key, _, _ in ROWS
        }
        for client, runs in results.items()
    }
    sample = next((r for rs in results.values() for r in rs if "pieces" in r), {})
    report: dict[str, Any] = {
        "config": {
            "size_mib": args.size_mib,
            "leechers": args.leechers,
            "runs": args.runs,
            "pieces": sample.get("pieces", 0),
            "piece_length": sample.get("piece_length", args.piece_length or 0),
            "tracker_interval": TRACKER_INTERVAL,
            "lt_utp": args.lt_utp,
            "settle": args.settle,
        },
        "environment": environment(load_before),
        "results": results,
        "medians": medians,
        "ratios": {
            key: ratio(medians["tx"].get(key), medians["lt"].get(key))
            for key, _, _ in ROWS
            if "lt" in medians
        },
    }
    print(table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    failed = any(not r.get("ok") for rs in results.values() for r in rs)
    return 1 if failed else 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.swarm", description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--leechers", type=int, default=4)
    p.add_argument("--piece-length", type=int, default=None,
                   help="default: create_torrent's choice (256 KiB for 256 MiB)")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--timeout", type=float, default=600.0, help="seconds for one swarm")
    p.add_argument("--json", metavar="PATH", help="also save the raw figures as JSON")
    p.add_argument("--no-libtorrent", action="store_true")
    p.add_argument("--lt-utp", action="store_true",
                   help="let libtorrent use uTP as well as TCP (its default; ours is TCP only)")
    p.add_argument("--tiny", action="store_true", help="4 MiB, one run (for the test suite)")
    p.add_argument("--profile-dir", metavar="DIR",
                   help="run txbittorrent's leechers under cProfile (main thread, go to "
                        "complete) and save leech<N>-run<R>.pstats there; slower")
    p.add_argument("--settle", type=float, default=None,
                   help="seconds to pause, every peer loaded, before each swarm's go "
                        "(default 5; 0 with --tiny)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("spec", nargs="?", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
    if args.settle is None:
        args.settle = 0.0 if args.tiny else 5.0
    if args.settle < 0:
        p.error("--settle must not be negative")
    if args.profile_dir:
        os.makedirs(args.profile_dir, exist_ok=True)
    if args.tiny:
        args.size_mib, args.runs, args.timeout = 4, 1, 120.0
    if args.size_mib < 1 or args.leechers < 1 or args.runs < 1:
        p.error("--size-mib, --leechers and --runs must be positive")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        spec = read_spec(args.spec)
        if args.child == "tracker":
            run_twisted_child(lambda reactor: tracker(reactor, spec))
        elif args.child == "tx-leech":
            run_twisted_child(lambda reactor: tx_leech(reactor, spec))
        elif args.child == "lt-leech":
            lt_leech(spec)
        else:
            sys.exit(f"unknown child role {args.child!r}")
        return
    sys.exit(run(args))


if __name__ == "__main__":
    main()
