"""The torrent commands: ``add``, ``list``, ``status``, ``start``, ``pause``,
``stop``, ``recheck`` and ``remove``, defined once over the API
(``framework``)."""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable, Sequence
from typing import Any

from txbittorrent.commands._common import MAX_TORRENT_FILE
from txbittorrent.commands.cmds import text
from txbittorrent.commands.cmds.framework import (
    Command,
    CommandError,
    Context,
    arg,
    resolve_info_hash,
)
from txbittorrent.source import bare_info_hash

__all__ = ["COMMANDS", "add_request", "torrent_lines", "list_lines"]

TORRENT_TYPE = "application/x-bittorrent"


def _file_list(value: str) -> list[int]:
    from txbittorrent.commands._engine import parse_file_selection

    return sorted(parse_file_selection(value))


def add_request(args: argparse.Namespace) -> dict[str, Any]:
    """The ``call`` keywords adding ``args.source``: JSON for a magnet URI,
    http(s) URL or info hash; the file's bytes for a .torrent path (the
    options then go in the query string)."""
    options: dict[str, Any] = {}
    if args.paused:
        options["paused"] = True
    if args.save_path is not None:
        options["save_path"] = os.path.abspath(os.path.expanduser(args.save_path))
    if args.files is not None:
        options["files"] = args.files
    if args.label:
        options["labels"] = list(args.label)
    source = args.source.strip()
    scheme = source.split(":", 1)[0].lower()
    if scheme in ("magnet", "http", "https"):
        return {"body": {"source": source, **options}}
    if os.path.isfile(source):
        return {"data": _read_torrent(source), "content_type": TORRENT_TYPE,
                "query": _upload_query(options)}
    if bare_info_hash(source) is not None:
        return {"body": {"source": source, **options}}
    raise CommandError(f"{args.source!r} is not a magnet URI, info hash, http(s) URL"
                       " or .torrent file")


def _read_torrent(path: str) -> bytes:
    size = os.path.getsize(path)
    if size > MAX_TORRENT_FILE:
        raise CommandError(f"{path}: {size} bytes is too large for a torrent file")
    with open(path, "rb") as f:
        return f.read()


def _upload_query(options: dict[str, Any]) -> dict[str, Any]:
    query: dict[str, Any] = {}
    if options.get("paused"):
        query["paused"] = "1"
    if "save_path" in options:
        query["save_path"] = options["save_path"]
    if "files" in options:
        query["files"] = ",".join(str(i) for i in options["files"])
    if "labels" in options:
        query["labels"] = options["labels"]
    return query


async def _add(ctx: Context) -> None:
    ctx.emit(await ctx.api.call("POST", "/api/torrents", **add_request(ctx.args)))


def _add_lines(value: Any) -> Iterable[str]:
    yield f"added {value.get('info_hash')}  {value.get('name') or '-'}"


async def _list(ctx: Context) -> None:
    query = {"label": ctx.args.label} if ctx.args.label else None
    listing = await ctx.api.call("GET", "/api/torrents", query=query)
    for torrent in listing.get("torrents", ()):
        ctx.emit(torrent)


def list_lines(torrents: Sequence[Any]) -> list[str]:
    """``list``'s table: one row per torrent."""
    rows = [
        (text.short_hash(t.get("info_hash")), t.get("state", "?"),
         text.percent(t.get("progress")) if t.get("has_metadata", True) else "-",
         text.size(t.get("size")) if t.get("has_metadata", True) else "?",
         text.rate(t.get("download_rate")), text.rate(t.get("upload_rate")),
         t.get("peers", 0), t.get("name") or "-")
        for t in torrents
    ]
    return text.table(("HASH", "STATE", "DONE", "SIZE", "DOWN", "UP", "PEERS", "NAME"),
                      rows, right=frozenset({2, 3, 4, 5, 6}))


async def _status(ctx: Context) -> None:
    ih = await resolve_info_hash(ctx.api, ctx.args.info_hash)
    ctx.emit(await ctx.api.call("GET", f"/api/torrents/{ih}"))


def torrent_lines(t: Any) -> list[str]:
    """``status``: one torrent as "Label: value" lines."""
    known = t.get("has_metadata", True)
    size, left = t.get("size"), t.get("left")
    lines = [
        f"Name:        {t.get('name') or '-'}",
        f"Info hash:   {t.get('info_hash')}",
        f"State:       {t.get('state')}",
    ]
    if known:
        done = None if size is None or left is None else size - left
        lines.append(f"Progress:    {text.percent(t.get('progress'))}"
                     f" ({text.size(done)} of {text.size(size)}, {text.size(left)} left)")
        lines.append(f"Pieces:      {t.get('piece_count')}")
    else:
        lines.append("Progress:    waiting for the metadata")
    lines += [
        f"Downloaded:  {text.size(t.get('downloaded'))}"
        f"  ({text.rate(t.get('download_rate'))})",
        f"Uploaded:    {text.size(t.get('uploaded'))}  ({text.rate(t.get('upload_rate'))})",
        f"Peers:       {t.get('peers', 0)}",
        f"Save path:   {t.get('save_path')}",
    ]
    if "labels" in t:
        lines.append(f"Labels:      {', '.join(t['labels']) or '-'}")
    for key in ("download_limit", "upload_limit"):
        if key in t:
            name = "Down limit:" if key == "download_limit" else "Up limit:"
            lines.append(f"{name:<12} {text.limit(t[key])}")
    for key in ("added_at", "completed_at"):
        if key in t:
            name = "Added:" if key == "added_at" else "Completed:"
            lines.append(f"{name:<12} {text.when(t[key])}")
    return lines


def _life_cycle(action: str) -> Any:
    async def run(ctx: Context) -> None:
        ih = await resolve_info_hash(ctx.api, ctx.args.info_hash)
        ctx.emit(await ctx.api.call("POST", f"/api/torrents/{ih}/{action}"))

    return run


def _state_line(value: Any) -> Iterable[str]:
    yield f"{value.get('info_hash')}  {value.get('state')}  {value.get('name') or '-'}"


async def _remove(ctx: Context) -> None:
    ih = await resolve_info_hash(ctx.api, ctx.args.info_hash)
    query = {"delete_data": "1"} if ctx.args.delete_data else None
    ctx.emit(await ctx.api.call("DELETE", f"/api/torrents/{ih}", query=query))


def _remove_line(value: Any) -> Iterable[str]:
    yield f"removed {value.get('info_hash')}"


_IH = arg("info_hash", metavar="IH", help="an info hash, or a unique prefix of one")

COMMANDS = (
    Command("add", "add a torrent (magnet URI, info hash, http(s) URL or .torrent file)",
            _add, (
                arg("source", metavar="SOURCE"),
                arg("--paused", action="store_true", help="add it paused"),
                arg("--save-path", metavar="DIR", default=None,
                    help="where its data goes, relative to the current directory"
                         " (default: the daemon's download dir)"),
                arg("--files", type=_file_list, default=None, metavar="LIST",
                    help="only these files, by index: '0,2-4'"),
                arg("--label", action="append", default=[], metavar="LABEL",
                    help="a label, repeatable"),
            ), text_each=_add_lines),
    Command("list", "list the torrents", _list, (
        arg("--label", default=None, help="only the torrents with this label"),
    ), text=list_lines),
    Command("status", "one torrent's status", _status, (_IH,), text_each=torrent_lines),
    Command("start", "start or resume a torrent", _life_cycle("start"), (_IH,),
            text_each=_state_line),
    Command("pause", "pause a torrent (connections kept, nothing moves)",
            _life_cycle("pause"), (_IH,), text_each=_state_line),
    Command("stop", "stop a torrent (trackers told, connections closed)",
            _life_cycle("stop"), (_IH,), text_each=_state_line),
    Command("recheck", "check a torrent's data on disk again", _life_cycle("recheck"), (_IH,),
            text_each=_state_line),
    Command("remove", "remove a torrent", _remove, (
        _IH, arg("--delete-data", action="store_true", help="delete its downloaded data too"),
    ), text_each=_remove_line),
)
