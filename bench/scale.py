"""How does txbittorrent scale: many torrents in one session, many peers on one torrent?

Run ``python -m bench.scale [--torrents 1000] [--peers 200] [--runs 1]
[--json out.json] [--profile out.pstats]``, or ``--tiny`` (20 torrents,
10 peers, a few seconds) as the test suite does.

Part a, many torrents.  ``--torrents`` files of random bytes (sizes drawn
between ``--min-kib`` and ``--max-kib``, seeded) are written once under a
temporary directory (under /tmp, removed afterwards), with a single-file
torrent each (``create_torrent``, which hashes them) and two clean resume
records each: ours (``core.resume.make_record`` with every piece, the file's
size and mtime; the pieces were hashed by ``create_torrent`` from the very
bytes on disk) and libtorrent's (``write_resume_data_buf`` with every piece
marked present).  Then, per run and per client, a fresh child process:

txbittorrent  one ``Session`` on 127.0.0.1, a ``Torrent`` per .torrent file
              with ``session=``, ``resume_path=``, ``start()`` on all of them
              at once; timed from before the session is made until every
              ``start()`` has fired.  A run counts only if every torrent is
              "active", has every piece, and no piece was hashed
              (``on_hash_pass`` never called: all trusted from resume data).
libtorrent    one session (local only), ``async_add_torrent`` of each resume
              file (not auto-managed, so none is queued), timed until a
              ``state_changed_alert`` to seeding for each; counts only if
              every torrent seeds with every piece and none went through
              ``checking_files``.

Both report RSS just before the clock starts (the interpreter and the
imports), right after all started, after ``--idle-seconds`` more (default 1;
the process's CPU over that time is the idle CPU, in cores), and the peak
(VmHWM, which is ``ru_maxrss``; read before stopping, and once more after it
in the JSON), plus RssAnon (memory the process allocated;
RssFile is mapped files) and the thread count; then everything is stopped
and the stop is timed: ours ``stop()``s every torrent, which writes its clean
resume record (atomically: fsync of the file and of its directory);
libtorrent saves every torrent's resume data and the benchmark writes each
to a file (plain writes, no fsync), then removes the torrents.  The issues'
targets: for 1,000 torrents, under 10 s to all started and under 200 MiB;
for 10,000 (issue 13), under 5 s to all started, under 250 MiB, under 3 s
to stop, and near-zero CPU while idle.

Part b, many peers.  One torrent of ``--peer-data-mib`` MiB is seeded by a
child process (ours, or libtorrent), and ``--peers`` connections are made to
it from ONE other process of scripted leechers built on our sans-I/O
``core.wire.session.PeerSession`` (the seeder is what is measured; running P real
clients, or P/20 libtorrent sessions, would swamp two cores).  Each scripted
leecher handshakes, says HAVE_NONE (or nothing) and INTERESTED and, whenever
unchoked, keeps ``--depth`` block requests outstanding, walking the torrent
from a random piece; every block received is compared byte for byte with the
data file and then dropped.  Connections are opened a few at a time; once
all are in (handshakes done) and a second has passed, the seeder's CPU
seconds (user + system, every thread, from /proc/<pid>/stat) and the payload
received are sampled, and again ``--seconds`` later: CPU ms per MB uploaded
is the figure.  Both seeders keep their own choking defaults (ours unchokes
4 peers, libtorrent 8), so most connections are choked and idle, as in a
real swarm: the figure is the cost of serving with P peers connected.  A run
counts only if all P connected, none was lost, data flowed and every block
matched.

MB is 10**6 bytes; MiB is 2**20.  Medians over the runs that counted.

This module prepares the data, runs the children and reports; the child
roles are ``bench._load`` (part a) and ``bench._scripted`` (part b).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import shutil
import sys
import tempfile
import time
from typing import Any

from bench._load import lt_load, tx_load
from bench._procs import (
    MiB,
    Children,
    ChildFailed,
    Result,
    environment,
    have_libtorrent,
    median,
    ratio,
    read_spec,
    run_twisted_child,
    write_random_file,
    write_spec,
)
from bench._scripted import CONNECT_TIMEOUT, WARMUP, scripted_peers

TARGET_TORRENTS = 1000
TARGET_SECONDS = 10.0
TARGET_MIB = 200.0
TARGETS_BY_COUNT = {
    # torrents: (start s, peak MiB, stop s)
    1000: (TARGET_SECONDS, TARGET_MIB, None),
    10000: (5.0, 250.0, 3.0),
}
PEER_PIECE_LENGTH = 256 * 1024


# -- preparing the data -------------------------------------------------------------------


def torrent_names(count: int) -> list[str]:
    return [f"t{i:05d}" for i in range(count)]


def prepare_many(
    root: str, count: int, min_size: int, max_size: int, seed: int, with_lt: bool
) -> dict[str, Any]:
    """Write the data, .torrent files and both clients' clean resume records."""
    from txbittorrent.core.bitfield import Bitfield
    from txbittorrent.core.metainfo import parse
    from txbittorrent.core.resume import encode_record, make_record
    from txbittorrent.storage.create import create_torrent

    dirs = {name: os.path.join(root, name) for name in ("data", "torrents", "records", "lt")}
    for path in dirs.values():
        os.makedirs(path)
    rng = random.Random(seed)
    names = torrent_names(count)
    total = pieces = 0
    for name in names:
        size = rng.randint(min_size, max_size)
        write_random_file(os.path.join(dirs["data"], name + ".bin"), size, sync=False)
        total += size
    os.sync()  # once, so write-back does not run during the timings
    lt: Any = None
    if with_lt:
        lt = importlib.import_module("libtorrent")
    for name in names:
        path = os.path.join(dirs["data"], name + ".bin")
        raw = create_torrent(path, created_by=None, workers=1)
        with open(os.path.join(dirs["torrents"], name + ".torrent"), "wb") as f:
            f.write(raw)
        metainfo = parse(raw)
        pieces += metainfo.piece_count
        st = os.stat(path)
        record = make_record(
            metainfo.info_hash,
            Bitfield.full(metainfo.piece_count),
            {},
            [(st.st_size, st.st_mtime_ns)],
            None,
            clean=True,
            priorities=(1,),
        )
        with open(os.path.join(dirs["records"], name + ".resume"), "wb") as f:
            f.write(encode_record(record))
        if lt is not None:
            params = lt.add_torrent_params()
            params.ti = lt.torrent_info(lt.bdecode(raw))
            params.save_path = dirs["data"]
            params.have_pieces = [True] * metainfo.piece_count
            with open(os.path.join(dirs["lt"], name + ".fastresume"), "wb") as f:
                f.write(lt.write_resume_data_buf(params))
    return {"dirs": dirs, "names": names, "bytes": total, "pieces": pieces}


def prepare_one(root: str, size: int) -> dict[str, Any]:
    """One data file and its torrent, for part b."""
    from txbittorrent.storage.create import create_torrent

    basedir = os.path.join(root, "peerdata")
    os.makedirs(basedir)
    path = os.path.join(basedir, "peers.bin")
    write_random_file(path, size)
    torrent = os.path.join(root, "peers.torrent")
    with open(torrent, "wb") as f:
        f.write(create_torrent(path, piece_length=PEER_PIECE_LENGTH, created_by=None))
    return {"basedir": basedir, "data": path, "torrent": torrent}


# -- the parent -----------------------------------------------------------------------------


def copy_records(source: str, target: str) -> None:
    if os.path.isdir(target):
        shutil.rmtree(target)
    shutil.copytree(source, target)


def run_load(
    client: str, prep: dict[str, Any], root: str, run: int, timeout: float, profile: str | None,
    idle_seconds: float = 1.0, collector: str = "daemon",
) -> Result:
    """Part a for one client in a fresh child process."""
    resume_dir = os.path.join(root, f"resume-{client}-{run}")
    copy_records(prep["dirs"]["records"], resume_dir)
    spec = {
        "dirs": prep["dirs"],
        "names": prep["names"],
        "resume_dir": resume_dir,
        "timeout": timeout,
        "profile": profile,
        "idle_seconds": idle_seconds,
        "collector": collector,
    }
    children = Children(root)
    try:
        name = f"{client}-load-{run}" + ("-profile" if profile else "")
        child = children.start(
            name, "bench.scale", ["--child", f"{client}-load", write_spec(root, name, spec)]
        )
        result = child.expect("RESULT", timeout + 60)
    except ChildFailed as e:
        return {"ok": False, "note": str(e)}
    finally:
        children.finish_all()
        shutil.rmtree(resume_dir, ignore_errors=True)
    count = len(prep["names"])
    problems = []
    if result["error_count"]:
        problems.append(f"{result['error_count']} errors, first: {result['errors'][:1]}")
    if result["active"] != count or result["complete"] != count:
        problems.append(f"{result['active']} active, {result['complete']} complete of {count}")
    if result.get("hashed_pieces"):
        problems.append(f"{result['hashed_pieces']} pieces were hashed, not trusted")
    if result.get("checking_files"):
        problems.append(f"{result['checking_files']} torrents were rechecked")
    if result.get("resume_saved", count) != count:
        problems.append(f"resume data of {result['resume_saved']} of {count} saved on stop")
    result["ok"] = not problems
    if problems:
        result["note"] = "; ".join(problems)
    return result


def run_peers(client: str, prep: dict[str, Any], root: str, run: int, args: Any) -> Result:
    """Part b for one client: a seeder child and the scripted-peers child."""
    children = Children(root)
    name = f"{client}-seed-{run}"
    seed_spec: dict[str, Any] = {"torrent": prep["torrent"], "basedir": prep["basedir"]}
    if client == "tx":
        seed_spec["max_peers"] = args.peers
    else:
        # libtorrent refused peers past about 70% of connections_limit (176
        # of 200 with a limit of 250): leave it plenty of room.
        seed_spec["settings"] = {
            "connections_limit": 2 * args.peers + 50,
            "listen_queue_size": 64,
        }
    try:
        seeder = children.start(
            name, "bench._procs", [f"{client}-seed", write_spec(root, name, seed_spec)]
        )
        ready = seeder.expect("READY", 120)
        peers_spec = {
            "torrent": prep["torrent"],
            "data": prep["data"],
            "port": ready["port"],
            "seeder_pid": seeder.pid,
            "peers": args.peers,
            "depth": args.depth,
            "seconds": args.seconds,
            "seed": run + 1,
        }
        pname = f"{client}-peers-{run}"
        peers = children.start(
            pname, "bench.scale", ["--child", "peers", write_spec(root, pname, peers_spec)]
        )
        result = peers.expect("RESULT", CONNECT_TIMEOUT + WARMUP + args.seconds + 60)
    except ChildFailed as e:
        return {"ok": False, "note": str(e)}
    finally:
        children.finish_all()
    problems = []
    if result["connected"] != args.peers:
        problems.append(
            f"{result['connected']} of {args.peers} peers connected "
            f"({result['failed']} failed, {result['lost']} lost)"
        )
    if result["mismatches"]:
        problems.append(f"{result['mismatches']} blocks differed from the data")
    if not result["window_bytes"]:
        problems.append("no data flowed")
    if result["seeder_cpu"] is None:
        problems.append("the seeder's CPU time could not be read")
    result["ok"] = not problems
    if problems:
        result["note"] = "; ".join(problems)
    else:
        mb = result["window_bytes"] / 1e6
        result["mb"] = mb
        result["mb_s"] = mb / result["window_seconds"]
        result["cpu_ms_per_mb"] = 1000 * result["seeder_cpu"] / mb
        result["seeder_cpu_share"] = result["seeder_cpu"] / result["window_seconds"]
    return result


ROWS: list[tuple[str, str, str, str]] = [
    # (key, label, part, format)
    ("start_seconds", "wall to all started (s)", "load", "{:.2f}"),
    ("start_cpu", "CPU to all started (s)", "load", "{:.2f}"),
    ("before_rss", "RSS before loading (MiB)", "load", "{:.1f}"),
    ("after_rss", "RSS when all started (MiB)", "load", "{:.1f}"),
    ("settled_rss", "RSS after idling (MiB)", "load", "{:.1f}"),
    ("settled_anon", "  of which anonymous (MiB)", "load", "{:.1f}"),
    ("idle_cpu", "CPU while idle (cores)", "load", "{:.3f}"),
    ("peak_mib", "peak RSS, VmHWM (MiB)", "load", "{:.1f}"),
    ("peak_with_stop_mib", "peak RSS counting the stop (MiB)", "load", "{:.1f}"),
    ("threads", "threads when all started", "load", "{:.0f}"),
    ("stop_seconds", "wall to stop all (s)", "load", "{:.2f}"),
    ("connect_seconds", "time to connect all peers (s)", "peers", "{:.2f}"),
    ("mb_s", "upload in window (MB/s)", "peers", "{:.1f}"),
    ("cpu_ms_per_mb", "seeder CPU per MB (ms)", "peers", "{:.2f}"),
    ("seeder_cpu_share", "seeder CPU (cores busy)", "peers", "{:.2f}"),
    ("seeder_rss_mib", "seeder RSS (MiB)", "peers", "{:.1f}"),
    ("peers_cpu_ms_per_mb", "scripted peers' CPU per MB (ms)", "peers", "{:.2f}"),
]


def flatten(result: Result) -> dict[str, float | None]:
    """The figures ROWS shows, from one run's result."""
    out: dict[str, float | None] = {}
    for key in ("start_seconds", "start_cpu", "idle_cpu", "stop_seconds", "peak_mib",
                "peak_with_stop_mib",
                "connect_seconds", "mb_s", "cpu_ms_per_mb", "seeder_cpu_share",
                "seeder_rss_mib"):
        out[key] = result.get(key)
    for when in ("before", "after", "settled"):
        out[f"{when}_rss"] = (result.get(when) or {}).get("rss_mib")
    out["settled_anon"] = (result.get("settled") or {}).get("anon_mib")
    out["threads"] = (result.get("after") or {}).get("threads")
    if result.get("mb"):
        out["peers_cpu_ms_per_mb"] = 1000 * result["peers_cpu"] / result["mb"]
    return out


def summarize(results: dict[str, list[Result]]) -> dict[str, dict[str, float | None]]:
    """Medians of each figure over the runs that counted, per measurement."""
    out = {}
    for name, runs in results.items():
        good = [flatten(r) for r in runs if r.get("ok")]
        keys = {k for f in good for k in f}
        out[name] = {k: median(f.get(k) for f in good) for k in sorted(keys)}
    return out


def target_verdict(report: dict[str, Any]) -> dict[str, str]:
    med = report["medians"].get("tx-load", {})
    cfg = report["config"]
    targets = TARGETS_BY_COUNT.get(cfg["torrents"])
    if targets is None:
        return {"start_seconds": "-", "peak_mib": "-"}
    out = {}
    for key, limit in zip(("start_seconds", "peak_mib", "stop_seconds"), targets):
        if limit is None:
            continue
        value = med.get(key)
        out[key] = "n/a" if value is None else ("met" if value < limit else "MISSED")
    return out


def table(report: dict[str, Any]) -> str:
    cfg, env = report["config"], report["environment"]
    parts = cfg["parts"]
    lines = [
        f"scale benchmark: {cfg['runs']} run(s), {env['cpu_count']} CPUs, "
        f"load average before/after {env['load_before']:.2f}/{env['load_after']:.2f}",
    ]
    if "load" in parts:
        lines.append(
            f"load: {cfg['torrents']} torrents of {cfg['min_kib']}-{cfg['max_kib']} KiB "
            f"({cfg['data_mib']:.0f} MiB, {cfg['pieces']} pieces) started from resume data "
            "in one session, a fresh child process per client and run"
        )
        if cfg.get("collector") == "daemon":
            lines.append(
                "txbittorrent's loader pauses the cycle collector until every start() is "
                "called and then freezes the heap, and pauses it again for the stop, as "
                "`txbittorrent serve` does (txbittorrent.collector; --collector plain: "
                "untouched)"
            )
        else:
            lines.append("txbittorrent's loader leaves the cycle collector as it is "
                         "(--collector plain)")
        for count, (seconds, mib, stop) in TARGETS_BY_COUNT.items():
            lines.append(
                f"targets ({count} torrents): all started in under {seconds:.0f} s, "
                f"peak RSS under {mib:.0f} MiB"
                + (f", stopped in under {stop:.0f} s" if stop is not None else "")
            )
    if "peers" in parts:
        lines.append(
            f"peers: one {cfg['peer_data_mib']} MiB torrent ({PEER_PIECE_LENGTH // 1024} KiB "
            f"pieces) seeded to {cfg['peers']} scripted peers (one process, PeerSession, "
            f"{cfg['depth']} requests in flight when unchoked), {cfg['seconds']:.0f} s window"
        )
    lines += [
        "medians of the runs that counted; MB = 10**6 bytes, MiB = 2**20",
        "",
        f"{'measurement':<36} {'txbittorrent':>12} {'libtorrent':>11} {'tx/lt':>7}  target",
    ]
    verdict = target_verdict(report)
    oks = report["ok_counts"]
    for key, label, part, fmt in ROWS:
        if part not in parts:
            continue
        tx = report["medians"].get(f"tx-{part}", {}).get(key)
        lt = report["medians"].get(f"lt-{part}", {}).get(key)

        def show(value: float | None, name: str) -> str:
            if name not in report["results"]:
                return "n/a"
            return "failed" if value is None else fmt.format(value)

        r = ratio(tx, lt)
        lines.append(
            f"{label:<36} {show(tx, f'tx-{part}'):>12} {show(lt, f'lt-{part}'):>11} "
            f"{'' if r is None else f'{r:.2f}':>7}  {verdict.get(key, '')}"
        )
    lines.append("")
    for name, runs in report["results"].items():
        line = f"{name}: {oks[name]}/{len(runs)} runs counted"
        notes = [r["note"] for r in runs if r.get("note")]
        if notes:
            line += "; " + " | ".join(notes)
        lines.append(line)
    for name, text in report.get("profile_text", {}).items():
        lines += ["", text]
    return "\n".join(lines)


def profile_summary(path: str, limit: int = 20) -> str:
    """The top functions of a cProfile dump, by own time and by cumulative time."""
    import io
    import pstats

    out = io.StringIO()
    stats = pstats.Stats(path, stream=out)
    stats.strip_dirs()
    total = stats.total_tt  # type: ignore[attr-defined]
    heading = f"cProfile of txbittorrent's load (main thread only; {total:.2f} s profiled)"
    stats.sort_stats("tottime").print_stats(limit)
    stats.sort_stats("cumulative").print_stats(limit)
    # Drop pstats' own banner lines (date, file name): keep the tables.
    kept = [
        line for line in out.getvalue().splitlines()
        if line.strip() and not line.startswith(("   Ordered", "   List reduced"))
        and path not in line
    ]
    return "\n".join([heading, *kept])


def run(args: argparse.Namespace) -> int:
    with_lt = have_libtorrent() and not args.no_libtorrent
    clients = ["tx", "lt"] if with_lt else ["tx"]
    load_before = os.getloadavg()[0]
    results: dict[str, list[Result]] = {}
    for part in ("load", "peers"):
        if part in args.parts:
            for client in clients:
                results[f"{client}-{part}"] = []
    profile_text = {}
    root = tempfile.mkdtemp(prefix="txbt-scale-", dir="/tmp" if os.path.isdir("/tmp") else None)
    try:
        prep: dict[str, Any] = {"bytes": 0, "pieces": 0}
        if "load" in args.parts:
            start = time.perf_counter()
            prep = prepare_many(
                root, args.torrents, args.min_kib * 1024, args.max_kib * 1024, args.seed, with_lt
            )
            print(f"prepared {args.torrents} torrents in {time.perf_counter() - start:.1f} s",
                  file=sys.stderr)
        one = prepare_one(root, args.peer_data_mib * MiB) if "peers" in args.parts else {}
        for n in range(args.runs):
            order = clients if n % 2 == 0 else clients[::-1]
            if "load" in args.parts:
                for client in order:
                    results[f"{client}-load"].append(
                        run_load(client, prep, root, n, args.timeout, None, args.idle_seconds,
                                 args.collector)
                    )
            if "peers" in args.parts:
                for client in order:
                    results[f"{client}-peers"].append(run_peers(client, one, root, n, args))
            print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
        if args.profile and "load" in args.parts:
            profiled = run_load("tx", prep, root, args.runs, args.timeout, args.profile,
                                collector=args.collector)
            if profiled.get("ok") or os.path.exists(args.profile):
                profile_text["tx-load"] = profile_summary(args.profile)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    report: dict[str, Any] = {
        "config": {
            "torrents": args.torrents,
            "min_kib": args.min_kib,
            "max_kib": args.max_kib,
            "data_mib": prep["bytes"] / MiB,
            "pieces": prep["pieces"],
            "peers": args.peers,
            "peer_data_mib": args.peer_data_mib,
            "depth": args.depth,
            "seconds": args.seconds,
            "idle_seconds": args.idle_seconds,
            "collector": args.collector,
            "runs": args.runs,
            "seed": args.seed,
            "parts": list(args.parts),
        },
        "environment": environment(load_before),
        "results": results,
        "ok_counts": {name: sum(bool(r.get("ok")) for r in rs) for name, rs in results.items()},
        "medians": summarize(results),
    }
    report["ratios"] = {
        f"{key} tx/lt ({part})": ratio(
            report["medians"].get(f"tx-{part}", {}).get(key),
            report["medians"].get(f"lt-{part}", {}).get(key),
        )
        for key, _, part, _ in ROWS
        if f"lt-{part}" in results
    }
    report["targets"] = target_verdict(report)
    report["profile_text"] = profile_text
    print(table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    failed = any(not r.get("ok") for rs in results.values() for r in rs)
    return 1 if failed else 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.split("\n")[0])
    p.add_argument("--torrents", type=int, default=TARGET_TORRENTS)
    p.add_argument("--min-kib", type=int, default=64, help="smallest data file (KiB)")
    p.add_argument("--max-kib", type=int, default=1024, help="largest data file (KiB)")
    p.add_argument("--peers", type=int, default=200)
    p.add_argument("--peer-data-mib", type=int, default=64, help="the torrent of part b")
    p.add_argument("--depth", type=int, default=64, help="requests in flight per scripted peer")
    p.add_argument("--seconds", type=float, default=20.0, help="the measuring window of part b")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--seed", type=int, default=1, help="seeds the file sizes")
    p.add_argument("--parts", default="load,peers", help="load, peers or both (the default)")
    p.add_argument("--timeout", type=float, default=300.0, help="seconds for one load")
    p.add_argument("--idle-seconds", type=float, default=1.0,
                   help="how long the loaded torrents idle (CPU and RSS measured) before the stop")
    p.add_argument("--json", metavar="PATH", help="also save the raw figures as JSON")
    p.add_argument("--profile", metavar="PATH",
                   help="also run txbittorrent's load once under cProfile, save and summarise it")
    p.add_argument("--no-libtorrent", action="store_true")
    p.add_argument("--collector", choices=("daemon", "plain"), default="daemon",
                   help="daemon (default): our loader handles the cycle collector as "
                        "`txbittorrent serve` does (txbittorrent.collector.BulkLoad); "
                        "plain: leaves it alone")
    p.add_argument("--tiny", action="store_true",
                   help="20 torrents, 10 peers, a 2 s window (for the test suite)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("spec", nargs="?", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
    if args.tiny:
        args.torrents, args.peers, args.seconds, args.runs = 20, 10, 2.0, 1
        args.min_kib, args.max_kib, args.peer_data_mib, args.timeout = 16, 64, 4, 60.0
    args.parts = tuple(part.strip() for part in args.parts.split(",") if part.strip())
    if not set(args.parts) <= {"load", "peers"} or not args.parts:
        p.error("--parts takes load, peers or load,peers")
    if args.torrents < 1 or args.peers < 1 or args.runs < 1 or args.depth < 1:
        p.error("--torrents, --peers, --runs and --depth must be positive")
    if not 1 <= args.min_kib <= args.max_kib:
        p.error("need 1 <= --min-kib <= --max-kib")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        spec = read_spec(args.spec)
        if args.child == "tx-load":
            run_twisted_child(lambda reactor: tx_load(reactor, spec))
        elif args.child == "lt-load":
            lt_load(spec)
        elif args.child == "peers":
            run_twisted_child(lambda reactor: scripted_peers(reactor, spec))
        else:
            sys.exit(f"unknown child role {args.child!r}")
        return
    sys.exit(run(args))


if __name__ == "__main__":
    main()
