"""``txbittorrent demo``: the whole engine at work on a fresh machine, offline.

Makes sample data in a temporary directory (random bytes in files of mixed
sizes in nested directories), creates a torrent of it, starts an embedded
tracker on 127.0.0.1, a seeder that verifies the data, and a leecher that
downloads it over 127.0.0.1 with the real engine, showing progress; then
compares every byte.  Everything it makes is removed at the end (``--keep``
keeps it).  No traffic leaves the machine."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from txbittorrent.commands._engine import Reporter, wait_for_goal
from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.commands.progress import ProgressBar, format_size

LOOPBACK = "127.0.0.1"


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="share sample data from a seeder to a leecher on 127.0.0.1")
    p.add_argument("--size-mib", type=int, default=256, help="sample data size (default 256)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.add_argument("--timeout", type=float, default=600.0, help="give up after this long")
    p.set_defaults(run=run)


SAMPLE = [
    ("video.bin", 8, 16),
    ("music/track1.bin", 3, 16),
    ("music/track2.bin", 2, 16),
    ("docs/a.txt", 1, 64),
    ("docs/deep/b.txt", 1, 1024),
    ("empty.txt", 0, 1),
    ("rest.bin", 1, 16),
]
"""(name, share of the total, divisor of that share): mixed sizes, one empty."""


def make_sample(root: str, total: int) -> list[str]:
    """Random bytes in files of mixed sizes under ``root/sample``; the names."""
    weights = sum(share / div for _, share, div in SAMPLE)
    names = []
    for name, share, div in SAMPLE:
        size = int(total * share / div / weights)
        path = os.path.join(root, "sample", *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left:
                chunk = min(left, 1 << 20)
                f.write(os.urandom(chunk))
                left -= chunk
        names.append(name)
    return names


def run(args: argparse.Namespace) -> int:
    from twisted.internet import task

    if args.size_mib < 1:
        raise SystemExit("txbittorrent demo: --size-mib must be at least 1")
    workdir = tempfile.mkdtemp(prefix="txbittorrent-demo-")
    try:
        return task.react(_demo, (workdir, args.size_mib * 1024 * 1024, args.timeout))
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


def _same(a: str, b: str) -> bool:
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            x, y = fa.read(1 << 20), fb.read(1 << 20)
            if x != y:
                return False
            if not x:
                return True


async def _steps(reactor: Any, workdir: str, total: int, timeout: float) -> None:
    from twisted.internet.defer import Deferred

    from txbittorrent.torrent import Torrent
    from txbittorrent.tracker.server import start_tracker

    out = sys.stdout
    out.write(f"1. making {format_size(total)} of sample data in {workdir}\n")
    names = make_sample(workdir, total)

    tracker = await start_tracker(reactor, LOOPBACK, interval=60)
    out.write(f"2. embedded tracker at {tracker.announce_url}\n")
    cleanup: list[Any] = [tracker.stop]
    try:
        out.write("3. creating a torrent of the data (hashing on every core)\n")
        bar = ProgressBar(total, "   hash")
        raw = create_torrent(
            os.path.join(workdir, "sample"),
            trackers=[tracker.announce_url],
            progress=lambda done, _t: bar.update(done),
        )
        bar.finish()
        m = parse(raw)
        out.write(f"   {m.name}: {format_size(m.total_length)} in {m.piece_count} pieces of "
                  f"{format_size(m.piece_length)}, {len(m.files)} files\n"
                  f"   info hash {m.info_hash_hex}\n")

        out.write("4. the seeder verifies its copy and starts seeding\n")
        seeder = Torrent(raw, basedir=workdir, reactor=reactor, listen_interfaces=[LOOPBACK])
        cleanup.insert(0, seeder.stop)
        bar = ProgressBar(m.piece_count, "   check")
        checked = 0

        def one_more(_index: int) -> None:
            nonlocal checked
            checked += 1
            bar.update(checked)

        seeder.on_hash_pass = seeder.on_hash_fail = one_more
        await seeder.start()
        bar.finish()
        out.write(f"   {seeder.bitfield.count}/{seeder.piece_count} pieces verified, "
                  f"seeding on port {seeder.port}\n")

        download_dir = os.path.join(workdir, "download")
        os.makedirs(download_dir)
        out.write(f"5. the leecher downloads into {download_dir} over {LOOPBACK}\n")
        leecher = Torrent(raw, basedir=download_dir, reactor=reactor,
                          listen_interfaces=[LOOPBACK])
        cleanup.insert(0, leecher.stop)
        reporter = Reporter(leecher, json_mode=False, quiet=False)
        started = time.monotonic()
        await leecher.start()
        deadline = reactor.seconds() + timeout
        await wait_for_goal(reactor, leecher, reporter,
                            lambda: leecher.complete or reactor.seconds() > deadline,
                            interval=0.5)
        reporter.tick()
        reporter.done_line()
        elapsed = time.monotonic() - started
        if not leecher.complete:
            raise SystemExit(f"txbittorrent demo: not complete after {timeout:.0f} s")
        out.write(f"   complete in {elapsed:.1f} s: "
                  f"{format_size(leecher.downloaded / max(elapsed, 1e-9))}/s, "
                  f"every piece verified by SHA-1 on arrival\n")

        out.write("6. comparing every byte with the original\n")
        for name in names:
            a = os.path.join(workdir, "sample", *name.split("/"))
            b = os.path.join(download_dir, "sample", *name.split("/"))
            if not _same(a, b):
                raise SystemExit(f"txbittorrent demo: {name} differs")
        out.write(f"   all {len(names)} files identical\n")
    finally:
        for stop in cleanup:
            await Deferred.fromCoroutine(_quietly(stop))


async def _quietly(stop: Any) -> None:
    try:
        await stop()
    except Exception as e:  # pragma: no cover - best effort at shutdown
        print(f"   (while stopping: {e})", file=sys.stderr)


def _demo(reactor: Any, workdir: str, total: int, timeout: float) -> Any:
    from twisted.internet.defer import Deferred

    return Deferred.fromCoroutine(_steps(reactor, workdir, total, timeout))
