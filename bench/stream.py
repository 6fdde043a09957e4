"""Streaming through `txbittorrent serve`: time to first byte of a seek, and throughput.

Run ``python -m bench.stream [--size 1GiB] [--runs 5] [--seeks 10]
[--seek-rate 16] [--json out.json] [--keep-logs DIR]``; a smoke run:
``python -m bench.stream --size 64MiB --runs 1 --settle 0``.

Theory of operation
-------------------
What users run: ``txbittorrent serve`` as a whole process (its own state
directory; its url and token read from its api.json), torrents added to it
through its API by magnet (the seeder's address as ``x.pe``), files read
through ``/data?ih=<info hash>&path=<name>`` by an HTTP client (this
process).  The seeders are libtorrent, each in its own process
(``bench._stream_children``); one file of random bytes, a trackerless v1
torrent (``bench._stream_bench`` has the details).  Each run measures two
things, each against a reference measured in the same run, on the same
data and seeders, in the reverse order every other run:

(a) **Seeks**: ``--seeks`` ranged reads (``--seek-length`` bytes, each
    inside one piece) at random offsets drawn from ``random.Random(--seed +
    run)``, on a download that has just started from a seeder limited to
    ``--seek-rate`` MB/s, so that the file is mostly missing.  Ours: a fresh
    daemon; each seek a GET with Range, timed from sending the request to
    the first body byte.  libtorrent (the reference): a fresh leecher of the
    same torrent from the same seeder doing the same seeks with
    ``set_piece_deadline`` + ``read_piece``, timed from the deadline to the
    ``read_piece_alert``.  Both start seeking once their first payload bytes
    are in; both check the bytes against the source.  A run's figure is the
    median of its seeks (and the slowest, the fastest); "held" is the share
    of the file the client had when its seeks were done (the rest of the
    torrent downloads meanwhile, rarest-first).  Ratio: ours / libtorrent.

(b) **Throughput**: the whole file (``--size``, 1 GiB by default) from an
    unlimited seeder into a fresh directory.  Ours: one GET of the whole
    file through ``/data`` from a fresh daemon, sent once its metadata is
    known (polling its API every 5 ms: what it downloaded before the GET is
    reported as "head MiB"), to the last byte, SHA-1 checked.  The
    reference: the plain download rate of ``txbittorrent download`` (the CLI
    process, given the same magnet), from its ``metadata_received`` JSON
    line to its ``complete`` line, the file's SHA-1 checked.  Ratio: stream
    / download.  Each transfer starts after the same pause (``--settle``, as
    in bench.download: the VM hands freed memory back to its host).

Medians over the runs, with their spread (min-max), the ratios, the
machine's load; ``--json`` keeps every run's figures.  A run that failed
or whose bytes differ counts in no median and makes the exit status 1.
Every process is ended and the temporary directory removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from typing import Any

from bench._common import (
    TMP_BASE,
    Children,
    MiB,
    Result,
    add_child_options,
    bench_main,
    ensure_json_dir,
    environment,
)
from bench._stream_bench import StreamBench
from bench._stream_children import CHILDREN
from bench._stream_report import (
    SEEK_FIGURES,
    THROUGHPUT_FIGURES,
    parse_size,
    section,
    seek_figures,
    seek_plan,
    table,
    throughput_figures,
)

__all__ = ["CHILDREN", "main", "parse_args", "run"]

SEEKERS = ("txbittorrent", "libtorrent")
TRANSFERS = ("stream", "download")


def run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    seeks: dict[str, list[Result]] = {name: [] for name in SEEKERS}
    transfers: dict[str, list[Result]] = {name: [] for name in TRANSFERS}
    with tempfile.TemporaryDirectory(prefix="txbt-bench-stream-", dir=TMP_BASE) as root:
        children = Children(root, "bench.stream")
        try:
            bench = StreamBench(args, root, children)
            bench.prepare()
            for n in range(args.runs):
                backwards = n % 2 == 1
                if "seek" in args.parts:
                    plan = seek_plan(args.seed + n, args.size, args.piece_length,
                                     args.seeks, args.seek_length)
                    for name in SEEKERS[::-1] if backwards else SEEKERS:
                        raw = bench.tx_seeks(plan) if name == "txbittorrent" else bench.lt_seeks(plan)
                        raw["plan"] = plan
                        seeks[name].append(seek_figures(raw, args.size))
                if "throughput" in args.parts:
                    for name in TRANSFERS[::-1] if backwards else TRANSFERS:
                        raw = bench.tx_stream() if name == "stream" else bench.cli_download()
                        transfers[name].append(throughput_figures(raw, args.size))
                print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
        finally:
            children.stop_all()
            if args.keep_logs:
                os.makedirs(args.keep_logs, exist_ok=True)
                for child in children.all:
                    shutil.copy(child.log_path, args.keep_logs)
    report: dict[str, Any] = {
        "config": {
            "size": args.size, "piece_length": args.piece_length, "pieces": bench.pieces,
            "runs": args.runs, "seeks": args.seeks, "seek_length": args.seek_length,
            "seek_rate": args.seek_rate, "seed": args.seed, "settle": args.settle,
            "timeout": args.timeout, "parts": list(args.parts),
        },
        "environment": environment(load_before),
        "workdir": root,
        "pids": [child.pid for child in children.all],
    }
    if "seek" in args.parts:
        report["seek"] = section(seeks, SEEK_FIGURES, "txbittorrent", "libtorrent")
    if "throughput" in args.parts:
        report["throughput"] = section(transfers, THROUGHPUT_FIGURES, "stream", "download")
    print(table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    every = [r for part in (seeks, transfers) for runs in part.values() for r in runs]
    return 0 if all(r["verified"] for r in every) else 1


def _size(text: str) -> int:
    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.stream", description=__doc__.split("\n")[0])
    p.add_argument("--size", type=_size, default=1024 * MiB,
                   help="the file's size: 1GiB (default), 64MiB, or bytes")
    p.add_argument("--piece-length", type=_size, default=MiB, help="default 1MiB")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--seeks", type=int, default=10, help="ranged reads per run (default 10)")
    p.add_argument("--seek-length", type=_size, default=64 * 1024,
                   help="bytes per ranged read (default 64KiB; at most a piece)")
    p.add_argument("--seek-rate", type=float, default=16.0,
                   help="MB/s the seeder of the seek part uploads at most (default 16)")
    p.add_argument("--seed", type=int, default=1, help="the seek plan's seed (run n: seed + n)")
    p.add_argument("--parts", default="seek,throughput",
                   help="what to measure: seek, throughput or both (default)")
    p.add_argument("--json", metavar="PATH", help="also save the raw figures as JSON")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds a transfer, or one seek, may take (default 600)")
    p.add_argument("--settle", type=float, default=10.0,
                   help="seconds to pause before each transfer of part (b) (default 10; see "
                        "bench.download in bench/README)")
    add_child_options(p, CHILDREN)
    args = p.parse_args(argv)
    if args.child:
        return args
    args.parts = [part for part in args.parts.split(",") if part]
    unknown = set(args.parts) - {"seek", "throughput"}
    if unknown or not args.parts:
        p.error(f"--parts: choose from seek,throughput (got {sorted(unknown) or 'nothing'})")
    if args.runs < 1 or args.seeks < 1:
        p.error("--runs and --seeks must be positive")
    if args.piece_length < 16 * 1024 or args.piece_length % (16 * 1024):
        p.error("--piece-length must be a multiple of 16KiB")
    if args.seek_length > args.piece_length:
        p.error("--seek-length must fit in a piece")
    if args.seek_rate <= 0 or args.timeout <= 0 or args.settle < 0:
        p.error("--seek-rate and --timeout must be positive, --settle not negative")
    args.seek_rate = args.seek_rate * 1e6  # bytes/s from here on
    ensure_json_dir(args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bench_main("bench.stream", args, CHILDREN, run)


if __name__ == "__main__":
    main()
