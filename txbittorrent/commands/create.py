"""``txbittorrent create PATH -o OUT.torrent``: make a v1 torrent of a file or directory.

Each ``-t URL`` is a tier of its own (BEP 12), as Transmission and mktorrent
do: clients try the first and fall back to the next.  ``--tier`` puts all the
``-t`` URLs in one tier instead, among which clients pick in random order.
The torrent is written only once hashing has succeeded; an existing OUT is
replaced (atomically) only with ``--force``.  stdout gets one summary line
that starts with the info hash (so ``cut -d' ' -f1`` finds it), then the
name, size, file and piece counts; the progress bar and warnings go to stderr.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import time
from typing import Any

from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import TorrentCreationError, create_torrent
from txbittorrent.commands.progress import ProgressBar, format_size

_SIZE = re.compile(r"(\d+)\s*([kmg]?)(?:i?b)?", re.IGNORECASE)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_size(text: str) -> int:
    """``'262144'``, ``'256K'``, ``'1M'``, ``'1MiB'`` -> bytes (binary units)."""
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise argparse.ArgumentTypeError(f"{text!r} is not a size like 262144, 256K or 1M")
    return int(match.group(1)) * _UNITS[match.group(2).lower()]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "create",
        help="make a .torrent file of a file or a directory",
        description="Make a v1 .torrent file of a file or a directory, hashing on every core.",
    )
    p.add_argument("path", metavar="PATH", help="the file or directory to share")
    p.add_argument(
        "-o", "--output", required=True, metavar="OUT.torrent", help="where to write the torrent"
    )
    p.add_argument(
        "-t",
        "--tracker",
        action="append",
        default=[],
        metavar="URL",
        help="an announce URL; repeat for backups, each in a tier of its own",
    )
    p.add_argument(
        "--tier", action="store_true", help="put all the -t URLs in a single tier instead"
    )
    p.add_argument(
        "--piece-length",
        type=parse_size,
        metavar="N",
        help="bytes per piece, a power of two of at least 16K (262144, 256K, 1M); "
        "default: the smallest giving at most 2,000 pieces, up to 16M",
    )
    p.add_argument("--private", action="store_true", help="mark the torrent private (BEP 27)")
    p.add_argument("--comment", metavar="TEXT", help="a comment to store in the torrent")
    p.add_argument(
        "--web-seed",
        action="append",
        default=[],
        metavar="URL",
        help="a web seed URL (BEP 19); may be repeated",
    )
    p.add_argument("--no-date", action="store_true", help="leave out the creation date")
    p.add_argument("--force", action="store_true", help="replace OUT if it exists")
    p.set_defaults(run=run)


def _warn(path: str, reason: str) -> None:
    print(f"txbittorrent create: warning: skipped {path}: {reason}", file=sys.stderr)


def _write(out: str, raw: bytes, force: bool) -> None:
    """Write ``raw`` to ``out``: never over an existing file unless ``force``,
    and then by an atomic rename, so a failed write leaves the old one."""
    target = f"{out}.{os.getpid()}.tmp" if force else out
    f = open(target, "xb")
    try:
        with f:
            f.write(raw)
        if force:
            os.replace(target, out)
    except BaseException:
        os.unlink(target)
        raise


def run(args: argparse.Namespace) -> int:
    out = args.output
    if os.path.lexists(out) and not args.force:
        raise TorrentCreationError(out, "already exists; use --force to replace it")
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise TorrentCreationError(out, f"directory {out_dir} does not exist")

    bar: ProgressBar | None = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = ProgressBar(total, label="hashing", stream=sys.stderr)
        bar.update(done)

    try:
        raw = create_torrent(
            args.path,
            trackers=[args.tracker] if args.tier else args.tracker,
            piece_length=args.piece_length,
            private=args.private,
            comment=args.comment,
            creation_date=None if args.no_date else int(time.time()),
            url_list=args.web_seed,
            progress=progress,
            on_skip=_warn,
            exclude=[os.path.abspath(out)],
        )
    except BaseException:
        if bar is not None and bar.enabled:
            sys.stderr.write("\n")  # end the half-drawn bar before the error line
        raise
    if bar is not None:
        bar.finish()
    _write(out, raw, args.force)

    m = parse(raw)
    files = sum(1 for f in m.files if not f.pad)
    print(
        f"{m.info_hash_hex}  {m.name}  {format_size(m.total_length)} ({m.total_length} bytes), "
        f"{files} file{'' if files == 1 else 's'}, {m.piece_count} pieces of "
        f"{format_size(m.piece_length)} -> {out}"
    )
    return 0
