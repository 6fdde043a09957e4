"""How long from a magnet link to the metadata and to the whole download, ours against libtorrent?

Run ``python -m bench.magnet [--size-mib 256] [--runs 5] [--piece-length N]
[--files N] [--json out.json]``, or ``--tiny`` (4 MiB, one run) as the test
suite does.

Theory of operation
-------------------
``bench.download``'s ``Bench`` does the groundwork (``MagnetBench`` is a
``Bench`` whose ``_child_leecher`` runs magnet leechers): one data file of
random bytes (or ``--files N`` of mixed sizes) in a temporary directory under
/tmp, a trackerless v1 torrent for it, and a libtorrent seeder in a process
of its own (TCP only, local only: no DHT, LSD, UPnP or NAT-PMP, several
connections per IP allowed; it accepts plain and encrypted handshakes).  In
each run the two leechers take their turns, in the reverse order every other
run, each in a fresh process and an empty directory
(``bench._magnet_children``): once started up, each is given only the magnet
link (the info hash: no tracker, no name, no peer) and the seeder's address,
and reports the seconds from then to its connection to the seeder, to the
metadata and to every piece verified, and its CPU seconds over that window.
``Bench.transfer`` pauses before each transfer (``--settle``), can wait for
a quiet machine (``--wait-quiet``), samples the leecher's anonymous RSS,
reads its peak RSS when it exits, notes the CPU the machine's other
processes took meanwhile, and compares the download with the source by
SHA-1; a run that failed, timed out or differs counts in no median and makes
the exit status 1.

libtorrent makes its connections on its session tick (every 0.5 s), so its
"connect" takes up to half a second that ours does not: the times after the
connection (metadata - connect, complete - connect) are the comparable ones,
and the report gives both.  "connect" is the moment the leecher starts its
connection to the seeder (ours dials inside ``add_peers``; libtorrent posts
``peer_connect_alert`` as it starts the TCP connect), so that both count the
TCP connect and the handshakes after it (``bench._magnet_children`` says
why; our own handshake moment is in the JSON as ``handshake_seconds``).  The
ratios are txbittorrent / libtorrent: below 1, we are faster (or use less).

The child processes are this module, run with a hidden ``--child ROLE``.
This module leans on bench.download's parts, a few private ones included
(``Bench._child_leecher``, which it overrides, ``_maxrss_mib`` and
``_process_cpu``; the children use ``_lt_session`` and ``_run_twisted``):
changing those changes both benchmarks alike.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from bench._common import (
    add_child_options,
    bench_main,
    ensure_json_dir,
    TMP_BASE,
    Children,
    Result,
    environment,
    median,
    spread,
    tail,
)
from bench._download_bench import (
    EXIT_TIMEOUT,
    QUIET_WINDOW,
    Bench,
    _maxrss_mib,
    _process_cpu,
)
from bench._download_children import START_TIMEOUT
from bench._download_report import compare
from bench._magnet_children import CHILDREN, magnet_uri

__all__ = ["CHILDREN", "LEECHERS", "MagnetBench", "main", "parse_args", "run", "table"]

LEECHERS = ("txbittorrent", "libtorrent")
ROLES = {"txbittorrent": "tx-magnet", "libtorrent": "lt-magnet"}
COLUMNS: tuple[tuple[str, str, int | None, float], ...] = (
    ("connect_seconds", "connect ms", 1, 1e3),
    ("metadata_seconds", "metadata ms", 1, 1e3),
    ("metadata_after_connect", "meta-conn ms", 2, 1e3),
    ("complete_seconds", "complete s", 3, 1.0),
    ("complete_after_connect", "done-conn s", 3, 1.0),
    ("mb_s", "MB/s", 0, 1.0),
    ("cpu_seconds", "CPU s", 2, 1.0),
    ("peak_rss_mib", "RSS MiB", 0, 1.0),
    ("peak_anon_mib", "anon MiB", 0, 1.0),
    ("others_cpu_share", "others", None, 1.0),
)
"""The table's figures: key, title, digits (None: a share, in %), and the
factor from the JSON's unit to the table's (seconds to milliseconds)."""
FIGURES = tuple(column[0] for column in COLUMNS) + (
    "added_seconds", "handshake_seconds", "data_seconds", "reactor_cpu_seconds")
RATIOS = {
    "metadata_seconds": "metadata", "metadata_after_connect": "metadata after connect",
    "complete_seconds": "complete", "complete_after_connect": "complete after connect",
    "cpu_seconds": "CPU", "peak_rss_mib": "RSS", "peak_anon_mib": "anon",
}
"""The ratios txbittorrent / libtorrent the summary gives (the times, CPU, memory)."""


class MagnetBench(Bench):
    """``Bench`` with magnet leechers: the same data, seeder, pause, samples
    and SHA-1 check; the leecher is given the magnet, not the torrent."""

    def __init__(self, args: argparse.Namespace, root: str, children: Children) -> None:
        super().__init__(args, root, children)
        self.magnet = ""
        self.info_size = 0
        self.metadata_pieces = 0

    def prepare(self, need_tracker: bool = False) -> None:
        """The data, the torrent and the libtorrent seeder (never a tracker)."""
        from txbittorrent.core.metainfo import parse
        from txbittorrent.core.wire.metadata import METADATA_PIECE_SIZE

        super().prepare(need_tracker=False)
        with open(self.torrent_path, "rb") as f:
            metainfo = parse(f.read())
        self.magnet = magnet_uri(metainfo.info_hash.hex())
        self.info_size = len(metainfo.info_bytes)
        self.metadata_pieces = -(-self.info_size // METADATA_PIECE_SIZE)

    def _child_leecher(self, leecher: str, directory: str, seeder: str, run: int) -> Result:
        """Run one magnet leecher (``Bench.transfer`` calls this); its raw figures."""
        spec = {"magnet": self.magnet, "dir": directory, "peer": self.ports[seeder],
                "pieces": self.pieces, "timeout": self.args.timeout}
        seed_child = self.seeders[seeder]
        child = self.children.start_role(ROLES[leecher], spec)
        try:
            # The leecher's own start-up comes on top of the transfer's time limit.
            message = child.message(self.args.timeout + START_TIMEOUT, also=[seed_child])
            exited = child.wait(EXIT_TIMEOUT, also=[seed_child])
        finally:
            child.stop()
        if message is None or message.get("event") != "result":
            return {"verified": False,
                    "note": f"no result from the leecher: {tail(child.log_path, 300)!r}"}
        raw = leecher_figures(message, self.pieces)
        raw.update(
            process_cpu_seconds=_process_cpu(child.rusage),
            peak_rss_mib=_maxrss_mib(child.rusage),
            peak_anon_mib=child.peak_anon_kib / 1024,
        )
        if not raw["verified"]:
            raw["log_tail"] = tail(child.log_path)  # in the JSON: what went wrong
        if not exited:
            raw["exit"] = "killed after reporting"
        return raw


def leecher_figures(message: dict[str, Any], pieces: int) -> Result:
    """A magnet leecher's result line as a run's raw figures (``finish``
    derives MB/s from ``seconds``: complete - connect)."""
    connected, metadata, complete = (
        message.get(key) for key in ("dialled", "metadata", "complete"))
    moments = connected is not None and metadata is not None and complete is not None
    raw: Result = {
        "verified": bool(message["ok"]) and moments,
        "added_seconds": message.get("added"),
        "connect_seconds": connected,
        "handshake_seconds": message.get("handshake"),
        "metadata_seconds": metadata,
        "complete_seconds": complete,
        "total_seconds": complete,
        "cpu_seconds": message["cpu"],
        "cpu_scope": "from being given the magnet to complete",
        "reactor_cpu_seconds": message.get("reactor_cpu"),
        "thread_cpu_seconds": message.get("threads"),
        "pieces": message["pieces"],
        "wall_from": "given the magnet, as the leecher reports",
    }
    if connected is not None and metadata is not None and complete is not None:
        raw.update(
            seconds=complete - connected,
            metadata_after_connect=metadata - connected,
            complete_after_connect=complete - connected,
            data_seconds=complete - metadata,
        )
    if message.get("note"):
        raw["note"] = message["note"]
    elif not raw["verified"]:
        raw["note"] = f"{message['pieces']}/{pieces} pieces" + (
            "" if moments else ", a moment not reported")
    return raw


def summarise(results: dict[str, list[Result]]) -> dict[str, dict[str, float | None]]:
    """Medians of each figure over the verified runs, per leecher."""
    return {name: {f: median(r.get(f) for r in runs if r["verified"]) for f in FIGURES}
            for name, runs in results.items()}


def spreads(results: dict[str, list[Result]]) -> dict[str, dict[str, Any]]:
    """(min, max) of each figure over the verified runs, per leecher."""
    return {name: {f: spread(r.get(f) for r in runs if r["verified"]) for f in FIGURES}
            for name, runs in results.items()}


def _cell(value: float | None, digits: int | None, scale: float, width: int) -> str:
    if value is None:
        text = "-"
    elif digits is None:
        text = f"{100 * value:.0f}%"
    else:
        text = f"{value * scale:.{digits}f}"
    return f"{text:>{width}}"


def _range(bounds: Sequence[float] | None, digits: int | None, scale: float, width: int) -> str:
    if bounds is None:
        return f"{'-':>{width}}"
    low, high = bounds
    if digits is None:
        return f"{f'{100 * low:.0f}-{100 * high:.0f}%':>{width}}"
    return f"{f'{low * scale:.{digits}f}-{high * scale:.{digits}f}':>{width}}"


def _per_run(runs: list[Result]) -> str:
    return " ".join(
        f"{1e3 * r['metadata_seconds']:.1f}/{r['complete_seconds']:.3f}" if r["verified"]
        else f"failed({r.get('note') or 'not verified'})"
        for r in runs)


def table(report: dict[str, Any]) -> str:
    """The text ``bench.magnet`` prints: medians, per-run values, spreads, ratios."""
    cfg, env = report["config"], report["environment"]
    results, medians = report["results"], report["medians"]
    width = max([12, *(len(name) for name in results)])
    cells = [max(len(title), 11) for _, title, _, _ in COLUMNS]
    header = f"{'leecher':<{width}} " + " ".join(
        f"{title:>{w}}" for (_, title, _, _), w in zip(COLUMNS, cells))
    lines = [
        f"magnet benchmark: {cfg['size_mib']} MiB in {cfg['files']} file(s), piece length "
        f"{cfg['piece_length']} ({cfg['pieces']} pieces), info dictionary {cfg['info_bytes']} "
        f"bytes ({cfg['metadata_pieces']} metadata piece(s)), {cfg['runs']} run(s), "
        f"{env['cpu_count']} CPUs, load average before/after "
        f"{env['load_before']:.2f}/{env['load_after']:.2f}",
        f"libtorrent {env['libtorrent']}, Python {env['python']}; a libtorrent seeder (TCP "
        "only); each leecher in its own process on 127.0.0.1, one transfer at a time",
        "each leecher, once started up, is given only the magnet (the info hash: no tracker, "
        "no peer) and the seeder's address; the times run from then:",
        "  connect ms: to the start of its connection to the seeder (ours dials at once; "
        "libtorrent on its session tick, up to 0.5 s later)",
        "  metadata ms: to the info dictionary received and verified (BEP 9); complete s: "
        "to every piece verified",
        "  meta-conn ms, done-conn s: the same less connect (the comparable figures); "
        "MB/s = 10**6 bytes / done-conn s",
        "CPU s: the leecher's user+system seconds over that window; RSS: its peak resident "
        "set; anon: its peak anonymous RSS, sampled every 0.1 s; others: the machine's CPU "
        "that other processes took",
        "medians of the runs verified byte for byte (SHA-1 against the source); per run: "
        "metadata ms / complete s",
        "",
        header + "     ok  per run",
    ]
    for name, runs in results.items():
        ok = sum(r["verified"] for r in runs)
        lines.append(f"{name:<{width}} " + " ".join(
            _cell(medians[name][key], digits, scale, w)
            for (key, _, digits, scale), w in zip(COLUMNS, cells))
            + f"  {ok:>2}/{len(runs):<3} {_per_run(runs)}")
    lines += ["", "spread: min-max of the verified runs", header]
    for name, by_figure in report["spreads"].items():
        lines.append(f"{name:<{width}} " + " ".join(
            _range(by_figure[key], digits, scale, w)
            for (key, _, digits, scale), w in zip(COLUMNS, cells)))
    ratios = report["ratios"]
    if ratios:
        parts = [f"{title} {'n/a' if ratios.get(key) is None else format(ratios[key], '.2f')}"
                 for key, title in RATIOS.items()]
        lines += ["", "txbittorrent / libtorrent (below 1: we are faster, or use less): "
                  + ", ".join(parts)]
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    load_before = os.getloadavg()[0]
    results: dict[str, list[Result]] = {name: [] for name in LEECHERS}
    with tempfile.TemporaryDirectory(prefix="txbt-bench-magnet-", dir=TMP_BASE) as root:
        children = Children(root, "bench.magnet")
        try:
            bench = MagnetBench(args, root, children)
            bench.prepare()
            for n in range(args.runs):
                # Every other run in the reverse order: no leecher is always first.
                for leecher in LEECHERS if n % 2 == 0 else LEECHERS[::-1]:
                    results[leecher].append(bench.transfer(leecher, "libtorrent", n))
                print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
        finally:
            children.stop_all()
            if args.keep_logs:
                os.makedirs(args.keep_logs, exist_ok=True)
                for child in children.all:
                    shutil.copy(child.log_path, args.keep_logs)
    medians = summarise(results)
    report: dict[str, Any] = {
        "config": {
            "size_mib": args.size_mib, "files": args.files, "piece_length": args.piece_length,
            "pieces": bench.pieces, "info_bytes": bench.info_size,
            "metadata_pieces": bench.metadata_pieces, "runs": args.runs,
            "leechers": list(LEECHERS), "timeout": args.timeout, "settle": args.settle,
            "magnet": bench.magnet,
        },
        "environment": environment(load_before),
        "results": results,
        "medians": medians,
        "spreads": spreads(results),
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
    p = argparse.ArgumentParser(
        prog="python -m bench.magnet", description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=256)
    p.add_argument("--files", type=int, default=1,
                   help="1: one file (default); N > 1: N files of mixed sizes in nested "
                        "directories (a bigger info dictionary)")
    p.add_argument("--piece-length", type=int, default=None,
                   help="default 1048576 (65536 with --tiny)")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--json", metavar="PATH", help="also save the raw figures as JSON")
    p.add_argument("--tiny", action="store_true", help="4 MiB, one run (for the test suite)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per transfer (default 600; 60 with --tiny)")
    p.add_argument("--settle", type=float, default=None,
                   help="seconds to pause before each transfer (default 10; 0 with --tiny); "
                        "see bench.download in bench/README")
    p.add_argument("--wait-quiet", type=float, metavar="PCT",
                   help="before each transfer, wait until the machine's CPU use stays below "
                        f"PCT%% of all CPUs for {QUIET_WINDOW:.0f} s")
    p.add_argument("--quiet-timeout", type=float, default=600.0,
                   help="seconds --wait-quiet waits at most (then the transfer runs anyway)")
    add_child_options(p, CHILDREN)
    args = p.parse_args(argv)
    if args.child:
        return args
    if args.tiny:
        args.size_mib, args.runs = 4, 1
        args.piece_length = args.piece_length or 64 * 1024
        args.timeout = args.timeout or 60.0
        args.settle = 0.0 if args.settle is None else args.settle
    args.settle = 10.0 if args.settle is None else args.settle
    args.piece_length = args.piece_length or 1024 * 1024
    args.timeout = args.timeout or 600.0
    args.seed_test = False  # what Bench.prepare asks
    if args.size_mib < 1 or args.runs < 1 or args.piece_length < 16 * 1024:
        p.error("--size-mib and --runs must be positive, --piece-length at least 16384")
    if args.files < 1 or args.files > args.size_mib * 1024:
        p.error("--files must be between 1 and one file per KiB of data")
    ensure_json_dir(args)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    bench_main("bench.magnet", args, CHILDREN, run)


if __name__ == "__main__":
    main()
