"""``txbittorrent download TORRENT -o DIR``: download, verify, optionally seed.

Exits 0 once every wanted piece is verified (and any seeding goal is met).
Ctrl-C stops cleanly: trackers hear ``stopped`` and the resume record is
saved, so the next run does not download verified pieces again."""

from __future__ import annotations

import argparse
import os
from typing import Any

from txbittorrent.commands._common import load_torrent
from txbittorrent.commands._engine import (
    Reporter,
    add_engine_options,
    parse_file_selection,
    resume_path_for,
    wait_for_goal,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("download", help="download a torrent into a directory")
    p.add_argument("torrent", metavar="TORRENT", help="the .torrent file")
    p.add_argument("-o", "--output", default=".", help="download directory (default: .)")
    p.add_argument("--files", type=parse_file_selection, default=None, metavar="LIST",
                   help="only these files, by index as `info` lists them: 0,2-4")
    p.add_argument("--seed", action="store_true", help="keep seeding after completing")
    p.add_argument("--seed-ratio", type=float, default=None, metavar="R",
                   help="seed until uploaded/size reaches R")
    p.add_argument("--seed-time", type=float, default=None, metavar="SECONDS",
                   help="seed this long after completing")
    add_engine_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from twisted.internet import task

    metainfo = load_torrent(args.torrent)
    os.makedirs(args.output, exist_ok=True)
    return task.react(lambda reactor: _run(reactor, args, metainfo, seed_only=False))


def _priorities(metainfo: Any, selection: set[int] | None) -> list[int] | None:
    if selection is None:
        return None
    visible = [i for i, f in enumerate(metainfo.files) if not f.pad]
    bad = [i for i in selection if i >= len(visible)]
    if bad:
        from txbittorrent.errors import LocalProtocolError

        raise LocalProtocolError(f"--files: no file number {bad[0]} (there are {len(visible)})")
    chosen = {visible[i] for i in selection}
    return [1 if i in chosen else 0 for i in range(len(metainfo.files))]


def _run(reactor: Any, args: argparse.Namespace, metainfo: Any, seed_only: bool) -> Any:
    from twisted.internet.defer import Deferred

    return Deferred.fromCoroutine(_main(reactor, args, metainfo, seed_only))


async def _main(reactor: Any, args: argparse.Namespace, metainfo: Any, seed_only: bool) -> None:
    from twisted.internet.task import deferLater

    from txbittorrent.torrent import Torrent

    directory = args.output
    torrent = Torrent(
        metainfo,
        basedir=directory,
        port=args.port,
        reactor=reactor,
        resume_path=resume_path_for(directory, metainfo.info_hash_hex),
        priorities=_priorities(metainfo, getattr(args, "files", None)),
        listen_interfaces=args.interface,
        max_peers=args.max_peers,
        download_limit=args.download_limit,
        upload_limit=args.upload_limit,
    )
    reporter = Reporter(torrent, args.json, args.quiet)
    torrent.add_observer(reporter)

    def on_shutdown() -> Any:
        if torrent.state != "stopped":
            reporter.message("stopping: telling trackers, saving resume data")
            return torrent.stop()
        return None

    reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)
    reporter.message(f"{metainfo.name}: checking existing data in {directory}")
    await torrent.start()
    torrent.add_peers(args.peer)
    reporter.message(f"listening on port {torrent.port}")
    if not seed_only:
        await wait_for_goal(reactor, torrent, reporter, lambda: torrent.complete)
        reporter.tick()
        reporter.message(f"complete: {metainfo.name} verified in {directory}")
    seed = seed_only or args.seed or args.seed_ratio is not None or args.seed_time is not None
    if seed:
        started = reactor.seconds()
        ratio, seconds = args.seed_ratio, args.seed_time

        def goal() -> bool:
            if ratio is not None and torrent.uploaded >= ratio * torrent.size:
                return True
            if seconds is not None and reactor.seconds() - started >= seconds:
                return True
            return False

        reporter.message("seeding" + ("" if ratio or seconds else " until Ctrl-C"))
        await wait_for_goal(reactor, torrent, reporter, goal)
    await torrent.stop()
    reporter.done_line()
    await deferLater(reactor, 0, lambda: None)
