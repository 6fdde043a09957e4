"""One torrent's parts, the limits and the totals: ``files``, ``peers``,
``trackers``, ``limits`` and ``stats``, defined once over the API
(``framework``)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable, Sequence
from typing import Any

from txbittorrent.commands.cmds import text
from txbittorrent.commands.cmds.framework import Command, Context, arg, resolve_info_hash

__all__ = ["COMMANDS", "parse_priority_setting", "parse_limit", "files_lines", "peers_lines",
           "trackers_lines", "limits_lines", "stats_lines"]

PRIORITY_NAMES = {"skip": 0, "normal": 1}


def parse_priority_setting(value: str) -> tuple[int, int]:
    """'3=0' or '3=skip' -> (3, 0)."""
    index, sep, priority = value.partition("=")
    name = priority.strip().lower()
    try:
        i = int(index)
        p = PRIORITY_NAMES[name] if name in PRIORITY_NAMES else int(name)
    except ValueError:
        i = p = -1
    if not sep or i < 0 or p < 0:
        raise argparse.ArgumentTypeError(
            f"not INDEX=PRIORITY (a priority is a number >= 0, or skip/normal): {value!r}")
    return i, p


def parse_limit(value: str) -> int | None:
    """'500K', '2MiB/s', '1000' -> bytes/s; 'none', 'unlimited' or '0' -> None."""
    from txbittorrent.commands._engine import parse_rate

    if value.strip().lower() in ("none", "unlimited", "0", "off"):
        return None
    return parse_rate(value)


async def _files(ctx: Context) -> None:
    ih = await resolve_info_hash(ctx.api, ctx.args.info_hash)
    path = f"/api/torrents/{ih}/files"
    answer: Any = None
    if ctx.args.set:
        body = {"files": {str(i): p for i, p in ctx.args.set}}
        answer = await ctx.api.call("POST", path, body=body)
    if not isinstance(answer, dict) or "files" not in answer:
        answer = await ctx.api.call("GET", path)
    for item in answer.get("files", ()):
        ctx.emit(item)


def _priority(p: Any) -> str:
    return "skip" if p == 0 else str(p)


def files_lines(files: Sequence[Any]) -> list[str]:
    """``files``' table: index, priority, size, path."""
    rows = [(f.get("index"), _priority(f.get("priority")), text.size(f.get("length")),
             f.get("path")) for f in files]
    return text.table(("#", "PRIO", "SIZE", "PATH"), rows, right=frozenset({0, 2}))


async def _peers(ctx: Context) -> None:
    ih = await resolve_info_hash(ctx.api, ctx.args.info_hash)
    answer = await ctx.api.call("GET", f"/api/torrents/{ih}/peers")
    for peer in answer.get("peers", ()):
        ctx.emit(peer)


def _address(p: Any) -> str:
    host = str(p.get("host"))
    return f"[{host}]:{p.get('port')}" if ":" in host else f"{host}:{p.get('port')}"


def peers_lines(peers: Sequence[Any]) -> list[str]:
    """``peers``' table."""
    rows = [(_address(p), p.get("flags") or "-", text.percent(p.get("progress")),
             text.rate(p.get("download_rate")), text.rate(p.get("upload_rate")),
             p.get("client") or "?") for p in peers]
    return text.table(("ADDRESS", "FLAGS", "DONE", "DOWN", "UP", "CLIENT"), rows,
                      right=frozenset({2, 3, 4}))


async def _trackers(ctx: Context) -> None:
    ih = await resolve_info_hash(ctx.api, ctx.args.info_hash)
    path = f"/api/torrents/{ih}/trackers"
    for url in ctx.args.remove:
        await ctx.api.call("DELETE", path, query={"url": url})
    for url in ctx.args.add:
        body: dict[str, Any] = {"url": url}
        if ctx.args.tier is not None:
            body["tier"] = ctx.args.tier
        await ctx.api.call("POST", path, body=body)
    answer = await ctx.api.call("GET", path)
    for tracker in answer.get("trackers", ()):
        ctx.emit(tracker)


def _tracker_status(t: Any) -> str:
    if t.get("updating"):
        return "announcing"
    if t.get("last_error"):
        return f"error: {t['last_error']}"
    if t.get("last_announce") is None:
        return "not yet"
    return f"ok, next {text.when(t.get('next_announce'))}"


def _count(n: Any) -> str:
    return "-" if n is None else str(n)


def trackers_lines(trackers: Sequence[Any]) -> list[str]:
    """``trackers``' table, tier by tier."""
    rows = [(t.get("tier"), t.get("url"), _count(t.get("complete")),
             _count(t.get("incomplete")), _tracker_status(t)) for t in trackers]
    return text.table(("TIER", "URL", "SEEDS", "LEECHERS", "STATUS"), rows,
                      right=frozenset({0, 2, 3}))


async def _limits(ctx: Context) -> None:
    a = ctx.args
    if a.info_hash is not None:
        ih = await resolve_info_hash(ctx.api, a.info_hash)
        path = f"/api/torrents/{ih}/limits"
    else:
        path = "/api/limits"
    change: dict[str, Any] = {}
    if a.down is not _UNCHANGED:
        change["download_limit"] = a.down
    if a.up is not _UNCHANGED:
        change["upload_limit"] = a.up
    if change:
        answer = await ctx.api.call("POST", path, body=change)
    else:
        answer = await ctx.api.call("GET", path)
    ctx.emit(answer)


def limits_lines(value: Any) -> Iterable[str]:
    """``limits``: the two limits, one line each."""
    if value.get("info_hash"):
        yield f"Torrent:     {value['info_hash']}"
    yield f"Down limit:  {text.limit(value.get('download_limit'))}"
    yield f"Up limit:    {text.limit(value.get('upload_limit'))}"


async def _stats(ctx: Context) -> None:
    ctx.emit(await ctx.api.call("GET", "/api/stats"))


def stats_lines(value: Any) -> Iterable[str]:
    """``stats``: the session's totals."""
    yield f"Torrents:    {value.get('torrents')}"
    yield f"Down:        {text.rate(value.get('download_rate'))}" \
          f"  ({text.size(value.get('downloaded'))} in all)"
    yield f"Up:          {text.rate(value.get('upload_rate'))}" \
          f"  ({text.size(value.get('uploaded'))} in all)"
    yield f"Peers:       {value.get('peers')}"
    dht = value.get("dht_nodes")
    yield f"DHT nodes:   {'off' if dht is None else dht}"
    yield f"Listen port: {value.get('listen_port')}"


_UNCHANGED: Any = object()
_IH = arg("info_hash", metavar="IH", help="an info hash, or a unique prefix of one")

COMMANDS = (
    Command("files", "a torrent's files, and set their priorities", _files, (
        _IH,
        arg("--set", action="append", default=[], type=parse_priority_setting,
            metavar="INDEX=PRIO", help="set a file's priority (0 or skip: not downloaded),"
                                       " repeatable"),
    ), text=files_lines),
    Command("peers", "a torrent's connected peers", _peers, (_IH,), text=peers_lines),
    Command("trackers", "a torrent's trackers; add or remove one", _trackers, (
        _IH,
        arg("--add", action="append", default=[], metavar="URL", help="add a tracker"),
        arg("--tier", type=int, default=None, help="the tier for --add (default: a new one)"),
        arg("--remove", action="append", default=[], metavar="URL", help="remove a tracker"),
    ), text=trackers_lines),
    Command("limits", "the global rate limits, or one torrent's; set them", _limits, (
        arg("info_hash", metavar="IH", nargs="?", default=None,
            help="a torrent (default: the global limits)"),
        arg("--down", type=parse_limit, default=_UNCHANGED, metavar="BYTES/S",
            help="the download limit ('500K', '2M', or none)"),
        arg("--up", type=parse_limit, default=_UNCHANGED, metavar="BYTES/S",
            help="the upload limit ('500K', '2M', or none)"),
    ), text_each=limits_lines),
    Command("stats", "the session's totals: torrents, rates, peers, DHT, port", _stats,
            text_each=stats_lines),
)
