"""``txbittorrent seed TORRENT -d DIR``: verify (or trust resume data) and seed.

Seeds whatever verifies (a partial copy serves its pieces); runs until Ctrl-C,
``--seed-ratio`` or ``--seed-time``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from txbittorrent.commands._common import load_torrent
from txbittorrent.commands._engine import add_engine_options, resume_path_for
from txbittorrent.errors import StorageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("seed", help="seed a torrent from data on disk")
    p.add_argument("torrent", metavar="TORRENT", help="the .torrent file")
    p.add_argument("-d", "--dir", dest="output", default=".", help="data directory")
    p.add_argument("--seed-ratio", type=float, default=None, metavar="R",
                   help="stop once uploaded/size reaches R")
    p.add_argument("--seed-time", type=float, default=None, metavar="SECONDS",
                   help="stop after seeding this long")
    add_engine_options(p)
    p.set_defaults(run=run, files=None, seed=True)


def run(args: argparse.Namespace) -> int:
    from txbittorrent.commands.download import run_engine

    metainfo = load_torrent(args.torrent)
    if not os.path.isdir(args.output):
        raise StorageError("no such directory", args.output)
    os.makedirs(os.path.dirname(resume_path_for(args.output, metainfo.info_hash_hex)),
                exist_ok=True)
    return run_engine(args, metainfo, None, seed_only=True)
