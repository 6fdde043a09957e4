"""``txbittorrent info TORRENT|MAGNET``: describe a torrent or a magnet link."""

from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from txbittorrent.commands._common import load_torrent
from txbittorrent.core.magnet import Magnet, magnet_from_metainfo, parse_magnet
from txbittorrent.core.metainfo import Metainfo
from txbittorrent.commands.progress import format_size


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="show what a .torrent file or magnet link holds")
    p.add_argument("source", metavar="TORRENT|MAGNET", help="a .torrent file or a magnet: URI")
    p.add_argument("--json", action="store_true", help="print one JSON object")
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
    if args.source.lower().startswith("magnet:"):
        facts = magnet_facts(parse_magnet(args.source))
    else:
        facts = torrent_facts(load_torrent(args.source))
    if args.json:
        json.dump(facts, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        _print_text(facts, sys.stdout)
    return 0
