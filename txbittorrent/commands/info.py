"""``txbittorrent info TORRENT_ID``: describe a torrent or a magnet link.

TORRENT_ID is what ``download`` takes (see ``_source``).  A URL is fetched
first.  A magnet (or a bare info hash) is described as it stands, unless
``--fetch``: then a ``Torrent`` is started in a temporary directory, its
metadata fetched from peers (the magnet's ``x.pe``, ``--peer``, trackers,
the DHT), and the real file list printed; the torrent stops at once and the
directory goes, whatever happens (Ctrl-C included).
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import shutil
import sys
import tempfile
from typing import Any

from txbittorrent.commands._engine import (
    add_discovery_options,
    check_discovery_options,
    parse_peer,
    session_config,
    torrent_settings,
)
from txbittorrent.commands._react import react
from txbittorrent.commands._source import (
    FETCH_TIMEOUT,
    TORRENT_ID_HELP,
    TorrentURL,
    check_save_path,
    fetch_torrent,
    resolve_local,
    torrent_trackers,
    write_torrent_file,
)
from txbittorrent.core.magnet import Magnet, magnet_from_metainfo
from txbittorrent.core.metainfo import Metainfo
from txbittorrent.commands.progress import format_size
from txbittorrent.errors import TxBitTorrentError

METADATA_TIMEOUT = 60.0
"""Seconds ``--fetch`` waits for the metadata by default."""


class MetadataTimeout(TxBitTorrentError):
    """No peer sent the metadata in time."""


def parse_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0: {text}")
    return value


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="show what a torrent or a magnet link holds")
    p.add_argument("source", metavar="TORRENT_ID", help=TORRENT_ID_HELP)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--fetch", action="store_true",
                   help="for a magnet or an info hash: fetch the metadata from peers "
                        "and show the files")
    p.add_argument("--peer", action="append", type=parse_peer, default=[],
                   metavar="HOST:PORT", help="with --fetch: ask this peer too (repeatable)")
    p.add_argument("--timeout", type=parse_seconds, default=None, metavar="SECONDS",
                   help=f"give up fetching after this long (default: {METADATA_TIMEOUT:g} "
                        f"for --fetch, {FETCH_TIMEOUT:g} for a URL)")
    p.add_argument("--interface", action="append", default=None,
                   help="with --fetch: address to listen on (repeatable; default: all)")
    p.add_argument("--save-torrent", default=None, metavar="PATH",
                   help="write the metadata (with the trackers) to this .torrent file")
    add_discovery_options(p)
    p.set_defaults(run=run)


def torrent_facts(m: Metainfo) -> dict[str, Any]:
    return {
        "name": m.name,
        "info_hash": m.info_hash_hex,
        "size": m.total_length,
        "piece_length": m.piece_length,
        "piece_count": m.piece_count,
        "private": m.private,
        "hybrid": m.hybrid,
        "files": [
            {"path": "/".join(f.path), "length": f.length, "pad": f.pad, "renamed": f.renamed}
            for f in m.files
        ],
        "trackers": [list(tier) for tier in m.trackers],
        "url_list": list(m.url_list),
        "comment": m.comment,
        "created_by": m.created_by,
        "creation_date": m.creation_date,
        "magnet": magnet_from_metainfo(m).to_uri(),
    }


def magnet_facts(m: Magnet) -> dict[str, Any]:
    return {
        "name": m.display_name,
        "info_hash": m.info_hash_hex,
        "size": m.exact_length,
        "trackers": [[t] for t in m.trackers],
        "peers": [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in m.peers],
        "web_seeds": list(m.web_seeds),
        "magnet": m.to_uri(),
    }


def _print_text(facts: dict[str, Any], out: Any) -> None:
    w = out.write
    w(f"name:         {facts['name'] if facts['name'] is not None else '(unknown)'}\n")
    w(f"info hash:    {facts['info_hash']}\n")
    if facts.get("size") is not None:
        w(f"size:         {format_size(facts['size'])} ({facts['size']} bytes)\n")
    if "piece_count" in facts:
        w(
            f"pieces:       {facts['piece_count']} x {format_size(facts['piece_length'])}"
            f" ({facts['piece_length']} bytes)\n"
        )
        flags = [k for k in ("private", "hybrid") if facts[k]]
        if flags:
            w(f"flags:        {', '.join(flags)}\n")
    for key, label in (("comment", "comment"), ("created_by", "created by")):
        if facts.get(key):
            w(f"{label + ':':<14}{facts[key]}\n")
    if facts.get("creation_date") is not None:
        try:
            when = datetime.datetime.fromtimestamp(
                facts["creation_date"], datetime.timezone.utc
            ).isoformat()
        except (OverflowError, OSError, ValueError):
            when = str(facts["creation_date"])
        w(f"created:      {when}\n")
    if facts["trackers"]:
        w("trackers:\n")
        for n, tier in enumerate(facts["trackers"]):
            for url in tier:
                w(f"  tier {n}: {url}\n")
    for url in facts.get("url_list", []) + facts.get("web_seeds", []):
        w(f"web seed:     {url}\n")
    for peer in facts.get("peers", []):
        w(f"peer:         {peer}\n")
    if "files" in facts:
        files = [f for f in facts["files"] if not f["pad"]]
        w(f"files ({len(files)}):\n")
        for f in files:
            w(f"  {f['length']:>15}  {f['path']}\n")
    w(f"magnet:       {facts['magnet']}\n")


def run(args: argparse.Namespace) -> int:
    check_discovery_options(args)
    target = resolve_local(args.source)
    if isinstance(target, Magnet) and not args.fetch:
        if args.save_torrent is not None:
            args.usage_error("--save-torrent needs the metadata: add --fetch")
        facts = magnet_facts(target)
    else:
        check_save_path(args.save_torrent)
        if isinstance(target, (TorrentURL, Magnet)):
            pending = target
            target = react(lambda reactor: _fetch(reactor, pending, args))
        assert isinstance(target, Metainfo)
        if args.save_torrent is not None:
            write_torrent_file(args.save_torrent, target.info_bytes, target.trackers)
        facts = torrent_facts(target)
    if args.json:
        json.dump(facts, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(facts, sys.stdout)
    return 0


async def _fetch(reactor: Any, target: TorrentURL | Magnet, args: argparse.Namespace
                 ) -> Metainfo:
    if isinstance(target, TorrentURL):
        timeout = args.timeout if args.timeout is not None else FETCH_TIMEOUT
        return await fetch_torrent(reactor, target.url, timeout=timeout)
    return await fetch_metadata(reactor, target, args)


async def fetch_metadata(reactor: Any, magnet: Magnet, args: argparse.Namespace) -> Metainfo:
    """Start a torrent of ``magnet`` in a temporary directory, wait for its
    metadata (at most ``args.timeout`` s), stop it, and return the metainfo
    with the magnet's trackers."""
    from twisted.internet.defer import Deferred

    from txbittorrent.torrent import Torrent

    workdir = tempfile.mkdtemp(prefix="txbittorrent-info-")
    torrent = Torrent(magnet, basedir=workdir, reactor=reactor,
                      listen_interfaces=args.interface, session_config=session_config(args),
                      **torrent_settings(args))

    def cleanup(_: object = None) -> object:
        shutil.rmtree(workdir, ignore_errors=True)
        return _

    # Ctrl-C: the coroutine never resumes, so the trigger cleans up.
    reactor.addSystemEventTrigger("before", "shutdown",
                                  lambda: torrent.stop().addBoth(cleanup))
    arrived: Deferred[None] = Deferred()
    subscription = torrent.subscribe(lambda event: arrived.callback(None),
                                     kinds="metadata_received")
    timeout = args.timeout if args.timeout is not None else METADATA_TIMEOUT

    def expire() -> None:
        peers = len(torrent.peers())
        arrived.errback(MetadataTimeout(
            f"no metadata for {magnet.info_hash_hex} after {timeout:g} s "
            f"({peers} peer{'s' if peers != 1 else ''} connected)"))

    deadline = reactor.callLater(timeout, expire)
    try:
        await torrent.start()
        torrent.add_peers(args.peer)
        await arrived
        metainfo = torrent.metainfo
        assert metainfo is not None
        trackers = tuple(tuple(tier) for tier in torrent_trackers(torrent))
    finally:
        subscription.cancel()
        if deadline.active():
            deadline.cancel()
        try:
            await torrent.stop()
        finally:
            cleanup()
    return dataclasses.replace(metainfo, trackers=trackers)
