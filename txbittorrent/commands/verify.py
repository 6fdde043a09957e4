"""``txbittorrent verify TORRENT -d DIR``: hash-check data on disk.

Exit status: 0 when every piece is present and correct, 3 when the check ran
but some data is missing or wrong, 1 on an error (bad torrent, unsafe path).
Reads only: it writes nothing, not even resume data."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from txbittorrent.commands._common import load_torrent
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import Layout
from txbittorrent.core.metainfo import Metainfo
from txbittorrent.storage.hashcheck import check_blocking
from txbittorrent.commands.progress import ProgressBar
from txbittorrent.storage.files import FileStorage

INCOMPLETE = 3


def add_parser(sub: Any) -> None:
    p = sub.add_parser("verify", help="hash-check a torrent's data on disk")
    p.add_argument("torrent", metavar="TORRENT", help="the .torrent file")
    p.add_argument("-d", "--dir", default=".", help="the download directory (default: .)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--threads", type=int, default=None, help="hashing threads (default: cores)")
    p.set_defaults(run=run)


def file_report(metainfo: Metainfo, passed: Bitfield) -> list[dict[str, Any]]:
    """Per non-pad file: its path, length, and how many of its pieces passed."""
    layout = Layout.from_metainfo(metainfo)
    out = []
    for index, f in enumerate(metainfo.files):
        if f.pad:
            continue
        pieces = layout.pieces_of_file(index)
        good = sum(1 for p in pieces if p in passed)
        out.append(
            {
                "path": "/".join(f.path),
                "length": f.length,
                "pieces": len(pieces),
                "pieces_ok": good,
                "complete": good == len(pieces),
            }
        )
    return out


def run(args: argparse.Namespace) -> int:
    metainfo = load_torrent(args.torrent)
    storage = FileStorage(metainfo, args.dir)
    bar = ProgressBar(metainfo.total_length, "verify", enabled=None if not args.quiet else False)
    try:
        passed = check_blocking(
            metainfo,
            storage.read_piece,
            workers=args.threads,
            on_progress=lambda pieces, total, done, all_bytes: bar.update(done),
        )
    finally:
        storage.close()
    bar.finish()
    files = file_report(metainfo, passed)
    if args.json:
        json.dump(
            {
                "info_hash": metainfo.info_hash_hex,
                "pieces": metainfo.piece_count,
                "pieces_ok": passed.count,
                "complete": passed.complete,
                "files": files,
            },
            sys.stdout,
            indent=2,
        )
        sys.stdout.write("\n")
    else:
        for f in files:
            state = "complete" if f["complete"] else f"incomplete ({f['pieces_ok']}/{f['pieces']} pieces)"
            print(f"{state:<32} {f['path']}")
        print(
            f"{passed.count}/{metainfo.piece_count} pieces verified: "
            + ("complete" if passed.complete else "incomplete")
        )
    return 0 if passed.complete else INCOMPLETE
