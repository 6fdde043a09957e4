"""``txbittorrent seed TORRENT -d DIR``: verify (or trust resume data) and seed.

TORRENT is a .torrent file or an http(s) URL of one (a magnet link says
too little to check the data against).

Seeds whatever verifies (a partial copy serves its pieces); runs until Ctrl-C,
``--seed-ratio`` or ``--seed-time``."""

from __future__ import annotations

import argparse
import os
from typing import Any

from txbittorrent.commands._engine import add_engine_options, check_discovery_options
from txbittorrent.commands._source import resolve_local
from txbittorrent.core.magnet import Magnet
from txbittorrent.errors import LocalProtocolError, StorageError


def add_parser(sub: Any) -> None:
    p = sub.add_parser("seed", help="seed a torrent from data on disk")
    p.add_argument("torrent", metavar="TORRENT",
                   help="a .torrent file or an http(s) URL of one")
    p.add_argument("-d", "--dir", dest="output", default=".", help="data directory")
    p.add_argument("--seed-ratio", type=float, default=None, metavar="R",
                   help="stop once uploaded/size reaches R")
    p.add_argument("--seed-time", type=float, default=None, metavar="SECONDS",
                   help="stop after seeding this long")
    add_engine_options(p)
    p.set_defaults(run=run, files=None, seed=True, save_torrent=None)


def run(args: argparse.Namespace) -> int:
    from txbittorrent.commands.download import run_engine

    check_discovery_options(args)
    target = resolve_local(args.torrent)
    if isinstance(target, Magnet):
        raise LocalProtocolError("seed needs the .torrent (a file or an http(s) URL), "
                                 "not a magnet link or an info hash")
    if not os.path.isdir(args.output):
        raise StorageError("no such directory", args.output)
    return run_engine(args, target, None, seed_only=True)
