"""``txbittorrent seed TORRENT -d DIR``: verify (or trust resume data) and seed.

Seeds whatever verifies (a partial copy serves its pieces); runs until Ctrl-C,
``--seed-ratio`` or ``--seed-time``."""

from __future__ import annotations

import argparse
from typing import Any

from txbittorrent.commands._common import load_torrent
from txbittorrent.commands._engine import add_engine_options


def add_parser(sub: Any) -> None:
    p = sub.add_parser("seed", help="seed a torrent from data on disk")
    p.add_argument("torrent", metavar="TORRENT", help="the .torrent file")
    p.add_argument("-d", "--dir", dest="output", default=".", help="data directory")
    p.add_argument("--seed-ratio", type=float, default=None, metavar="R")
    p.add_argument("--seed-time", type=float, default=None, metavar="SECONDS")
    add_engine_options(p)
    p.set_defaults(run=run, files=None, seed=True)


def run(args: argparse.Namespace) -> int:
    from twisted.internet import task

    from txbittorrent.commands.download import _run

    metainfo = load_torrent(args.torrent)
    return task.react(lambda reactor: _run(reactor, args, metainfo, seed_only=True))
