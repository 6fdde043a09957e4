"""How fast does HashChecker verify a torrent, next to raw SHA-1 and libtorrent?

Run ``python -m bench.hashcheck [--size-mib 1024] [--piece-length 1048576]
[--runs 3] [--workers N] [--json out.json]``, or ``--tiny`` (4 MiB, one run)
as the test suite does.

One data file of random bytes is written to a temporary directory (under
/tmp, removed afterwards) and a single-file v1 torrent is built for it in
memory.  The file is read once before anything is timed, so every measurement
reads it from the page cache.  Each run then measures, in turn:

raw         SHA-1 over each piece of the file held in memory, one thread: the
            ceiling for one core, with no I/O at all;
hashcheck   ``HashChecker.check`` on a real reactor, reading with ``os.pread``
            in its pool threads;
libtorrent  (when importable) libtorrent's full check of the same file: a
            fresh local-only session per run, the torrent added without resume
            data, timed from ``add_torrent`` to ``torrent_checked_alert``; with
            its default ``hashing_threads`` (1) and with as many hashing
            threads as hashcheck has workers.  ``tick_interval`` is lowered to
            20 ms so the end of a check is not rounded up to a 500 ms tick.
            (``force_recheck`` on a torrent already added was tried first: it
            adds a fixed delay of about half a second, so it is not used.)

A run counts only if every piece verified; otherwise it is reported as
failed and left out of the medians.  MB is 10**6 bytes.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import ssl
import statistics
import sys
import tempfile
import time
from typing import Any

from txbittorrent.core.bencoding import encode
from txbittorrent.core.metainfo import Metainfo, parse
from txbittorrent.errors import MissingDataError
from txbittorrent.storage.hashcheck import HashChecker

lt: Any
try:
    import libtorrent as lt
except ImportError:  # pragma: no cover - depends on the machine
    lt = None

CHUNK = 16 * 1024 * 1024
LT_TICK_MS = 20
Result = dict[str, Any]


def make_dataset(directory: str, size: int, piece_length: int) -> tuple[str, bytes]:
    """Write ``size`` random bytes to ``directory``; return its path and a torrent for it."""
    path = os.path.join(directory, "bench.bin")
    hashes = []
    pending = b""
    with open(path, "wb") as f:
        written = 0
        while written < size:
            chunk = os.urandom(min(CHUNK, size - written))
            f.write(chunk)
            written += len(chunk)
            pending += chunk
            while len(pending) >= piece_length:
                hashes.append(hashlib.sha1(pending[:piece_length]).digest())
                pending = pending[piece_length:]
        if pending:
            hashes.append(hashlib.sha1(pending).digest())
        f.flush()
        os.fsync(f.fileno())  # so write-back does not run during the timings
    info = {
        b"name": b"bench.bin",
        b"length": size,
        b"piece length": piece_length,
        b"pieces": b"".join(hashes),
    }
    return path, encode({b"info": info})


def read_all(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def outcome(seconds: float, size: int, verified: bool, note: str = "") -> Result:
    out: Result = {"seconds": seconds, "verified": verified}
    if verified:
        out["mb_s"] = size / 1e6 / seconds
    if note:
        out["note"] = note
    return out


def measure_raw(data: bytes, metainfo: Metainfo) -> Result:
    """SHA-1 of each piece slice of ``data``, single thread."""
    view = memoryview(data)
    length = metainfo.piece_length
    sha1 = hashlib.sha1
    ok = 0
    start = time.perf_counter()
    for index in range(metainfo.piece_count):
        if sha1(view[index * length : (index + 1) * length]).digest() == metainfo.piece_hash(index):
            ok += 1
    seconds = time.perf_counter() - start
    return outcome(seconds, len(data), ok == metainfo.piece_count)


async def measure_hashcheck(reactor: Any, path: str, metainfo: Metainfo, workers: int) -> Result:
    """HashChecker.check over the file, on ``reactor`` with a pool of ``workers`` threads."""
    from twisted.python.threadpool import ThreadPool

    fd = os.open(path, os.O_RDONLY)
    length = metainfo.piece_length

    def read_piece(index: int) -> bytes:
        size = metainfo.piece_size(index)
        data = os.pread(fd, size, index * length)
        if len(data) != size:
            raise MissingDataError(f"short read of piece {index}", path)
        return data

    pool = ThreadPool(minthreads=workers, maxthreads=workers, name="bench-hashcheck")
    pool.start()
    try:
        checker = HashChecker(
            metainfo, read_piece, reactor=reactor, threadpool=pool, workers=workers
        )
        start = time.perf_counter()
        passed = await checker.check()
        seconds = time.perf_counter() - start
    finally:
        pool.stop()
        os.close(fd)
    return outcome(seconds, metainfo.total_length, passed.complete)


def measure_libtorrent(
    directory: str, torrent: bytes, metainfo: Metainfo, hashing_threads: int, timeout: float
) -> Result:
    """Time libtorrent's check of the file, from adding the torrent to torrent_checked_alert.

    A torrent added without resume data is checked in full; the session is
    local only (no DHT, LSD, UPnP or NAT-PMP; listening on 127.0.0.1)."""
    session = lt.session(
        {
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "listen_interfaces": "127.0.0.1:0",
            "alert_mask": lt.alert_category.status | lt.alert_category.error,
            "hashing_threads": hashing_threads,
            # The default 500 ms tick quantises when a check is seen to end.
            "tick_interval": LT_TICK_MS,
        }
    )
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = directory
    start = time.perf_counter()
    deadline = start + timeout
    handle = session.add_torrent(params)
    checked = False
    while not checked and time.perf_counter() < deadline:
        session.wait_for_alert(100)
        for alert in session.pop_alerts():
            if isinstance(alert, lt.torrent_checked_alert):
                checked = True
    seconds = time.perf_counter() - start
    status = handle.status()
    verified = checked and status.num_pieces == metainfo.piece_count
    note = "" if checked else f"timed out after {timeout:.0f} s"
    session.remove_torrent(handle)  # keeps the files: no delete flag
    del session
    return outcome(seconds, metainfo.total_length, verified, note)


def median_rate(results: list[Result]) -> float | None:
    rates = [r["mb_s"] for r in results if r["verified"]]
    return statistics.median(rates) if rates else None


def table(report: dict[str, Any]) -> str:
    cfg = report["config"]
    lines = [
        f"hashcheck benchmark: {cfg['size_mib']} MiB file, piece length {cfg['piece_length']} "
        f"({cfg['pieces']} pieces), {cfg['runs']} run(s), hashcheck workers {cfg['workers']}, "
        f"{report['environment']['cpu_count']} CPUs, load average before/after "
        f"{report['environment']['load_before']:.2f}/{report['environment']['load_after']:.2f}",
        f"the data file was read once before timing ({cfg['warm_seconds']:.2f} s), so every "
        "measurement reads it from the page cache",
        "MB/s is 10**6 bytes per second; median of the runs that verified every piece",
        "",
        f"{'measurement':<34} {'MB/s':>8}  {'ok':>5}  per run",
    ]
    for name, results in report["results"].items():
        rate = report["medians"][name]
        shown = "failed" if rate is None else f"{rate:8.1f}"
        runs = " ".join(
            f"{r['mb_s']:.0f}" if r["verified"] else f"failed({r.get('note') or 'not verified'})"
            for r in results
        )
        ok = sum(r["verified"] for r in results)
        lines.append(f"{name:<34} {shown:>8}  {ok}/{len(results):<3}  {runs}")
    lines.append("")
    for name, ratio in report["ratios"].items():
        lines.append(f"{name:<34} {'n/a' if ratio is None else f'{ratio:8.2f}':>8}")
    return "\n".join(lines)


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a / b


async def run(reactor: Any, args: argparse.Namespace) -> int:
    workers = args.workers or (os.cpu_count() or 2)
    size = args.size_mib * 1024 * 1024
    names = {"raw": "raw hashlib sha1 (1 thread)", "hc": f"hashcheck ({workers} workers)"}
    lt_threads = [] if lt is None or args.no_libtorrent else sorted({1, workers})
    for n in lt_threads:
        names[f"lt{n}"] = f"libtorrent (hashing_threads={n})"
    results: dict[str, list[Result]] = {name: [] for name in names.values()}
    base = "/tmp" if os.path.isdir("/tmp") else None
    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory(prefix="txbt-bench-", dir=base) as directory:
        path, torrent = make_dataset(directory, size, args.piece_length)
        metainfo = parse(torrent)
        start = time.perf_counter()
        data = read_all(path)  # warms the page cache; raw hashes this copy
        warm = time.perf_counter() - start
        for n in range(args.runs):
            results[names["raw"]].append(measure_raw(data, metainfo))
            results[names["hc"]].append(await measure_hashcheck(reactor, path, metainfo, workers))
            for threads in lt_threads:
                results[names[f"lt{threads}"]].append(
                    measure_libtorrent(directory, torrent, metainfo, threads, args.lt_timeout)
                )
            print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
        del data
    medians = {name: median_rate(rs) for name, rs in results.items()}
    hc = medians[names["hc"]]
    ratios = {"hashcheck / raw": ratio(hc, medians[names["raw"]])}
    for threads in lt_threads:
        ratios[f"hashcheck / libtorrent({threads} thr)"] = ratio(hc, medians[names[f"lt{threads}"]])
    report = {
        "config": {
            "size_mib": args.size_mib,
            "piece_length": args.piece_length,
            "pieces": metainfo.piece_count,
            "runs": args.runs,
            "workers": workers,
            "warm_seconds": warm,
        },
        "environment": {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "openssl": ssl.OPENSSL_VERSION,
            "libtorrent": getattr(lt, "__version__", None),
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
        },
        "results": results,
        "medians": medians,
        "ratios": ratios,
    }
    print(table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    failed = any(not r["verified"] for rs in results.values() for r in rs)
    return 1 if failed else 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.hashcheck", description=__doc__.split("\n")[0]
    )
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument(
        "--piece-length", type=int, default=None, help="default 1048576 (262144 with --tiny)"
    )
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--workers", type=int, default=None, help="default: the CPU count")
    p.add_argument("--json", metavar="PATH", help="also save the raw figures as JSON")
    p.add_argument("--tiny", action="store_true", help="4 MiB, one run (for the test suite)")
    p.add_argument("--no-libtorrent", action="store_true")
    p.add_argument("--lt-timeout", type=float, default=300.0, help="seconds per libtorrent run")
    args = p.parse_args(argv)
    if args.tiny:
        args.size_mib, args.runs = 4, 1
        args.piece_length = args.piece_length or 256 * 1024
    args.piece_length = args.piece_length or 1024 * 1024
    if args.size_mib < 1 or args.runs < 1 or args.piece_length < 16 * 1024:
        p.error("--size-mib and --runs must be positive, --piece-length at least 16384")
    return args


def main(argv: list[str] | None = None) -> None:
    from twisted.internet import defer, task

    args = parse_args(sys.argv[1:] if argv is None else argv)
    task.react(lambda reactor: defer.ensureDeferred(run(reactor, args)))


if __name__ == "__main__":
    main()
