"""``txbittorrent demo``: the library at work on a fresh machine, offline.

Makes sample data in a temporary directory (a few files of random bytes in
nested directories), creates a torrent of it, shows what the torrent holds,
verifies the data with ``Torrent.hashcheck`` on a real reactor, then damages
one byte and shows the check catching it.  Everything it makes is removed at
the end (``--keep`` keeps it)."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from typing import Any

from txbittorrent.core.metainfo import parse
from txbittorrent.create import create_torrent
from txbittorrent.progress import ProgressBar, format_size


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="make sample data, a torrent of it, and verify it")
    p.add_argument("--size-mib", type=int, default=64, help="sample data size (default 64)")
    p.add_argument("--keep", action="store_true", help="keep the temporary directory")
    p.set_defaults(run=run)


def make_sample(root: str, total: int) -> None:
    """Random bytes in files of mixed sizes under ``root/sample``."""
    sizes = [total // 2, total // 4, total // 8, total // 16, 12345, 0]
    sizes.append(total - sum(sizes))
    names = ["video.bin", "music/track1.bin", "music/track2.bin", "docs/a.txt",
             "docs/deep/b.txt", "empty.txt", "rest.bin"]
    for name, size in zip(names, sizes):
        path = os.path.join(root, "sample", *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            left = size
            while left:
                chunk = min(left, 1 << 20)
                f.write(os.urandom(chunk))
                left -= chunk


def run(args: argparse.Namespace) -> int:
    from twisted.internet import task

    if args.size_mib < 1:
        raise SystemExit("txbittorrent demo: --size-mib must be at least 1")
    workdir = tempfile.mkdtemp(prefix="txbittorrent-demo-")
    try:
        return task.react(_demo, (workdir, args.size_mib * 1024 * 1024))
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


async def _demo_steps(reactor: Any, workdir: str, total: int) -> None:
    from txbittorrent.torrent import Torrent

    out = sys.stdout
    out.write(f"1. making {format_size(total)} of sample data in {workdir}\n")
    make_sample(workdir, total)

    out.write("2. creating a torrent of it (hashing on every core)\n")
    bar = ProgressBar(total, "   hash")
    started = time.monotonic()
    raw = create_torrent(
        os.path.join(workdir, "sample"),
        trackers=["http://127.0.0.1:6969/announce"],
        progress=lambda done, _total: bar.update(done),
    )
    bar.finish()
    elapsed = time.monotonic() - started
    torrent_path = os.path.join(workdir, "sample.torrent")
    with open(torrent_path, "wb") as f:
        f.write(raw)
    m = parse(raw)
    out.write(f"   {m.name}: {format_size(m.total_length)} in {m.piece_count} pieces of "
              f"{format_size(m.piece_length)}, {len(m.files)} files, "
              f"{total / elapsed / 1e6:.0f} MB/s\n   info hash {m.info_hash_hex}\n")

    out.write("3. verifying the data with Torrent.hashcheck()\n")
    failed: list[int] = []
    t = Torrent(torrent_path, basedir=workdir, reactor=reactor, on_hash_fail=failed.append)
    bar = ProgressBar(total, "   check")
    started = time.monotonic()
    await t.hashcheck(on_progress=lambda pieces, n, done, all_bytes: bar.update(done))
    bar.finish()
    elapsed = time.monotonic() - started
    out.write(f"   {t.bitfield.count}/{t.piece_count} pieces good, complete: {t.complete}, "
              f"{total / elapsed / 1e6:.0f} MB/s\n")

    victim = t.files()[0]
    out.write(f"4. flipping one byte in the middle of {victim.path}\n")
    with open(t.path_of(victim.index), "r+b") as f:
        f.seek(victim.length // 2)
        byte = f.read(1)
        f.seek(victim.length // 2)
        f.write(bytes([byte[0] ^ 0xFF]))
    await t.hashcheck(t.layout.pieces_of_file(victim.index))
    out.write(f"   pieces failing now: {failed}; complete: {t.complete}\n")
    await t.close()


def _demo(reactor: Any, workdir: str, total: int) -> Any:
    from twisted.internet.defer import Deferred

    return Deferred.fromCoroutine(_demo_steps(reactor, workdir, total))
