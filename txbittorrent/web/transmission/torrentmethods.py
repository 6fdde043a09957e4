"""The RPC's torrent methods: ``torrent-get``, ``torrent-add``, the
actions (start, stop, verify, reannounce), ``torrent-remove``,
``torrent-set`` and ``torrent-set-location``.

Every change goes through the daemon's ``TorrentManager`` (adding,
removing, life cycle, recheck, priorities, limits, labels, trackers), so
it is recorded in the store as the native API records it.  This module only
translates Transmission's arguments and units:

- ``torrent-add``'s ``filename`` is a magnet link, an http(s) URL (fetched
  by the manager's fetcher: size-capped, with a timeout) or a bare info
  hash; a local path is refused, never opened (transmission-remote reads a
  local .torrent itself and sends it base64 as ``metainfo``).  A duplicate
  answers ``torrent-duplicate`` (success), as Transmission does.
- File indexes are Transmission's: the listed files, pad files left out.
  ``files-unwanted`` sets our priority 0; ``files-wanted`` gives an unwanted
  file priority 1; ``priority-high`` makes a wanted file 6 and
  ``priority-normal``/``-low`` 1 (``fields.HIGH``/``NORMAL``).  An empty list
  means every file.  A magnet's files are not known before its metadata: a
  selection on add is refused for one (set it with ``torrent-set`` later).
- Per-torrent limits are in kB/s; ``downloadLimited: false`` lifts the
  limit (the daemon keeps no disabled value, so enabling one without a
  value uses Transmission's default, 100 kB/s).
- Tracker ids are positions in the torrent's tier order (as ``trackers``
  and ``trackerStats`` number them).
- The actions answer once their torrents have settled, or after
  ``rpc.SETTLE_TIME`` seconds; ``torrent-verify`` answers at once (the
  status says "checking" meanwhile).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, maybeDeferred

from txbittorrent.core.magnet import parse_magnet
from txbittorrent.core.metainfo import Metainfo
from txbittorrent.source import bare_info_hash
from txbittorrent.web import apibody
from txbittorrent.web.apiadd import AddRequest, listed_files, parse_torrent
from txbittorrent.web.apibody import ApiError
from txbittorrent.web.transmission.facts import facts_of
from txbittorrent.web.transmission.fields import HIGH, KB, NORMAL, torrent_object, torrent_table
from txbittorrent.web.transmission.rpc import (
    RpcContext,
    RpcError,
    flag,
    int_list,
    integer,
    method,
    settle,
    torrents,
)

if TYPE_CHECKING:
    from txbittorrent.torrent import Torrent

__all__ = ["DEFAULT_LIMIT_KB", "SELECTION_KEYS"]

DEFAULT_LIMIT_KB = 100
SELECTION_KEYS = ("files-wanted", "files-unwanted", "priority-high", "priority-normal",
                  "priority-low")


def _save_path(value: Any, ctx: RpcContext, name: str) -> str:
    try:
        return apibody.save_path(value, ctx.add_dir)
    except ApiError as e:
        raise RpcError(e.message.replace("'save_path'", f"'{name}'")) from None


def _labels(value: Any) -> tuple[str, ...]:
    try:
        return apibody.labels(value)
    except ApiError as e:
        raise RpcError(e.message) from None


# -- torrent-get -----------------------------------------------------------------------


@method("torrent-get")
def torrent_get(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    names = arguments.get("fields")
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise RpcError("'fields' must be a list of field names")
    form = arguments.get("format", "objects")
    if form not in ("objects", "table"):
        raise RpcError("'format' must be 'objects' or 'table'")
    now = ctx.now()
    selected = torrents(ctx, arguments)
    order = {t.info_hash: i for i, t in enumerate(ctx.session.torrents())}
    facts = [facts_of(t, ctx.manager, id=ctx.ids.id_of(t), queue_position=order.get(t.info_hash, 0),
                      now=now) for t in selected]
    facts.sort(key=lambda f: f.id)
    result: dict[str, Any] = {
        "torrents": torrent_table(facts, names) if form == "table"
        else [torrent_object(f, names) for f in facts]
    }
    if arguments.get("ids") == "recently-active":
        result["removed"] = ctx.ids.removed(now)
    return result


# -- torrent-add -----------------------------------------------------------------------


def _brief(ctx: RpcContext, torrent: Torrent) -> dict[str, Any]:
    return {"id": ctx.ids.id_of(torrent), "name": torrent.name,
            "hashString": torrent.info_hash.hex()}


def _listed_priorities(metainfo: Metainfo, arguments: dict[str, Any]) -> tuple[int, ...] | None:
    """One priority per listed file from the add's selection (None: none given)."""
    if not any(k in arguments for k in SELECTION_KEYS):
        return None
    count = len(listed_files(metainfo))
    out = [NORMAL] * count
    _apply(out, list(range(count)), arguments)
    return tuple(out)


def _chosen(arguments: dict[str, Any], name: str, count: int) -> list[int]:
    """Listed positions a selection argument names (all for [])."""
    indexes = int_list(arguments, name)
    if indexes is None:
        return []
    if not indexes:
        return list(range(count))
    for index in indexes:
        if index >= count:
            raise RpcError(f"'{name}': no file {index} (the torrent has {count})")
    return indexes


def _apply(priorities: list[int], real: list[int], arguments: dict[str, Any]) -> None:
    """Apply the selection arguments to ``priorities`` (indexed by real file
    index; ``real`` maps listed positions to them)."""
    count = len(real)
    for position in _chosen(arguments, "files-wanted", count):
        if priorities[real[position]] == 0:
            priorities[real[position]] = NORMAL
    for position in _chosen(arguments, "files-unwanted", count):
        priorities[real[position]] = 0
    for name, value in (("priority-high", HIGH), ("priority-normal", NORMAL),
                        ("priority-low", NORMAL)):
        for position in _chosen(arguments, name, count):
            if priorities[real[position]] > 0:
                priorities[real[position]] = value


def _source(text: Any) -> tuple[str | bytes | None, str | None]:
    """(source, url) from ``filename``: a magnet, an info hash or a URL."""
    if not isinstance(text, str) or not text.strip():
        raise RpcError("'filename' must be a magnet link, an http(s) URL or an info hash")
    text = text.strip()
    scheme = text.split(":", 1)[0].lower()
    if scheme == "magnet":
        return text, None
    if scheme in ("http", "https") and text[len(scheme):].startswith("://"):
        return None, text
    info_hash = bare_info_hash(text)
    if info_hash is None:
        raise RpcError("'filename' must be a magnet link, an http(s) URL or an info hash;"
                       " local files are never read: send the .torrent as 'metainfo'")
    return info_hash, None


def _info_hash(source: str | bytes | Metainfo) -> bytes:
    if isinstance(source, Metainfo):
        return source.info_hash
    if isinstance(source, bytes):
        return source
    try:
        return parse_magnet(source).info_hash
    except ValueError as e:
        raise RpcError(f"bad magnet link: {e}") from None


def _add(ctx: RpcContext, arguments: dict[str, Any], source: str | bytes | Metainfo,
         raw: bytes | None) -> dict[str, Any]:
    existing = ctx.session.get(_info_hash(source))
    if existing is not None:
        return {"torrent-duplicate": _brief(ctx, existing)}
    priorities = None
    if isinstance(source, Metainfo):
        priorities = _listed_priorities(source, arguments)
    elif any(int_list(arguments, k) for k in ("files-unwanted", "priority-high")) or \
            arguments.get("files-unwanted") == []:
        raise RpcError("a magnet's files are not known before its metadata:"
                       " choose them with torrent-set once they are")
    directory = _save_path(arguments["download-dir"], ctx, "download-dir") \
        if arguments.get("download-dir") else ctx.add_dir
    add = AddRequest(
        source=source, raw=raw, save_path=directory, paused=flag(arguments, "paused"),
        priorities=priorities, labels=_labels(arguments.get("labels", [])),
    )
    try:
        result = ctx.manager.add(add)
    except ApiError as e:
        if e.code == 409:
            again = ctx.session.get(_info_hash(source))
            if again is not None:
                return {"torrent-duplicate": _brief(ctx, again)}
        raise
    assert not isinstance(result, Deferred)  # no URL left to fetch
    return {"torrent-added": _brief(ctx, result)}


@method("torrent-add")
def torrent_add(ctx: RpcContext, arguments: dict[str, Any]) -> Any:
    for name in SELECTION_KEYS:
        int_list(arguments, name)  # wrong shapes fail before any fetch
    if arguments.get("metainfo") is not None:
        encoded = arguments["metainfo"]
        if not isinstance(encoded, str):
            raise RpcError("'metainfo' must be the base64 of a .torrent")
        try:
            raw = base64.b64decode("".join(encoded.split()), validate=True)
        except (binascii.Error, ValueError):
            raise RpcError("'metainfo' is not valid base64") from None
        return _add(ctx, arguments, parse_torrent(raw), raw)
    if "filename" not in arguments:
        raise RpcError("no 'filename' or 'metainfo' given")
    source, url = _source(arguments["filename"])
    if url is None:
        assert source is not None
        return _add(ctx, arguments, source, None)

    def fetched(body: bytes | str) -> dict[str, Any]:
        if isinstance(body, str):
            return _add(ctx, arguments, body, None)
        return _add(ctx, arguments, parse_torrent(body), body)

    return ctx.manager.fetch(url).addCallback(fetched)


# -- actions ---------------------------------------------------------------------------


def _life_cycle(ctx: RpcContext, arguments: dict[str, Any], action: str) -> Deferred[None]:
    changes = [maybeDeferred(ctx.manager.set_state, t, action) for t in torrents(ctx, arguments)]
    return settle(ctx, changes, f"torrent-{action}")


@method("torrent-start")
def torrent_start(ctx: RpcContext, arguments: dict[str, Any]) -> Deferred[None]:
    return _life_cycle(ctx, arguments, "start")


@method("torrent-start-now")
def torrent_start_now(ctx: RpcContext, arguments: dict[str, Any]) -> Deferred[None]:
    return _life_cycle(ctx, arguments, "start")


@method("torrent-stop")
def torrent_stop(ctx: RpcContext, arguments: dict[str, Any]) -> Deferred[None]:
    return _life_cycle(ctx, arguments, "stop")


@method("torrent-verify")
def torrent_verify(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    checks = [maybeDeferred(ctx.manager.recheck, t) for t in torrents(ctx, arguments)
              if t.has_metadata]
    settle(ctx, checks, "torrent-verify")  # answered now; the checks go on
    return {}


@method("torrent-reannounce")
def torrent_reannounce(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    for torrent in torrents(ctx, arguments):
        ctx.manager.reannounce(torrent)
    return {}


@method("torrent-remove")
def torrent_remove(ctx: RpcContext, arguments: dict[str, Any]) -> Deferred[None]:
    delete = flag(arguments, "delete-local-data")
    removals = [maybeDeferred(ctx.manager.remove, t, delete) for t in torrents(ctx, arguments)]
    return settle(ctx, removals, "torrent-remove")


# -- torrent-set -----------------------------------------------------------------------


def _new_priorities(torrent: Torrent, arguments: dict[str, Any]) -> tuple[int, ...] | None:
    if not any(k in arguments for k in SELECTION_KEYS):
        return None
    metainfo = torrent.metainfo
    if metainfo is None:
        raise RpcError(f"the files of {torrent.info_hash.hex()} are not known yet")
    priorities = list(torrent.priorities)
    _apply(priorities, listed_files(metainfo), arguments)
    return tuple(priorities)


def _limit(arguments: dict[str, Any], name: str, current: float | None) -> tuple[bool, int | None]:
    """(changed, bytes/s or None) from ``<name>Limit`` and ``<name>Limited``."""
    value = integer(arguments, name + "Limit")
    if name + "Limited" in arguments:
        limited = flag(arguments, name + "Limited")
    elif value is not None and current is not None:
        limited = True
    else:
        return False, None
    if not limited:
        return True, None
    if value is None:
        value = int(round(current / KB)) if current is not None else DEFAULT_LIMIT_KB
    if value <= 0:
        raise RpcError(f"'{name}Limit' must be at least 1 kB/s")
    return True, value * KB


def _tracker_urls(torrent: Torrent) -> list[tuple[int, str]]:
    """(tier, url) in the order ``trackers`` numbers them."""
    return [(s.tier, s.url) for tier in torrent.trackers() for s in tier]


def _url(value: Any) -> str:
    try:
        return apibody.tracker_url(value)
    except ApiError as e:
        raise RpcError(e.message.replace("'url'", "a tracker")) from None


def _set_trackers(torrent: Torrent, arguments: dict[str, Any]) -> bool:
    """Apply trackerAdd/Remove/Replace/List; whether anything changed."""
    changed = False
    if "trackerList" in arguments:
        text = arguments["trackerList"]
        if not isinstance(text, str):
            raise RpcError("'trackerList' must be a string")
        tiers = [[_url(u.strip()) for u in block.splitlines() if u.strip()]
                 for block in text.replace("\r\n", "\n").split("\n\n")]
        tiers = [t for t in tiers if t]
        wanted = {u for t in tiers for u in t}
        for _, url in _tracker_urls(torrent):
            if url not in wanted:
                torrent.remove_tracker(url)
        have = {u for _, u in _tracker_urls(torrent)}
        for number, tier in enumerate(tiers):
            for url in tier:
                if url not in have:
                    torrent.add_tracker(url, number)
                    have.add(url)
        changed = True
    current = _tracker_urls(torrent)
    replace = arguments.get("trackerReplace")
    if replace is not None:
        if not isinstance(replace, list) or len(replace) % 2:
            raise RpcError("'trackerReplace' must be a list of id, URL pairs")
        for number, url in zip(replace[::2], replace[1::2]):
            if type(number) is not int or not 0 <= number < len(current):
                raise RpcError(f"'trackerReplace': no tracker {number!r}")
            tier_number, old = current[number]
            new = _url(url)
            if new != old:
                torrent.remove_tracker(old)
                torrent.add_tracker(new, tier_number)
        changed = True
    remove = arguments.get("trackerRemove")
    if remove is not None:
        if not isinstance(remove, list):
            raise RpcError("'trackerRemove' must be a list of tracker ids")
        for number in remove:
            if type(number) is not int or not 0 <= number < len(current):
                raise RpcError(f"'trackerRemove': no tracker {number!r}")
        for number in remove:
            torrent.remove_tracker(current[number][1])
        changed = True
    add = arguments.get("trackerAdd")
    if add is not None:
        if not isinstance(add, list):
            raise RpcError("'trackerAdd' must be a list of announce URLs")
        have = {u for _, u in _tracker_urls(torrent)}
        for url in (_url(u) for u in add):
            if url not in have:
                torrent.add_tracker(url)  # a tier of its own, as Transmission adds it
                have.add(url)
        changed = True
    return changed


def _check_location(ctx: RpcContext, torrent: Torrent, value: Any) -> None:
    location = _save_path(value, ctx, "location")
    if os.path.realpath(location) != os.path.realpath(torrent.basedir):
        raise RpcError("moving a torrent's data is not supported")


@method("torrent-set")
def torrent_set(ctx: RpcContext, arguments: dict[str, Any]) -> Deferred[None]:
    selected = torrents(ctx, arguments)
    labels = _labels(arguments["labels"]) if "labels" in arguments else None
    changes: list[Deferred[Any]] = []
    for torrent in selected:
        if "location" in arguments:
            _check_location(ctx, torrent, arguments["location"])
        priorities = _new_priorities(torrent, arguments)
        config = torrent.config
        down_changed, down = _limit(arguments, "download", config.download_limit)
        up_changed, up = _limit(arguments, "upload", config.upload_limit)
        if down_changed or up_changed:
            ctx.manager.set_limits(
                torrent,
                down if down_changed else _int(config.download_limit),
                up if up_changed else _int(config.upload_limit),
            )
        if labels is not None:
            ctx.manager.set_labels(torrent, labels)
        if _set_trackers(torrent, arguments):
            ctx.manager.trackers_changed(torrent)
        if priorities is not None and priorities != tuple(torrent.priorities):
            changes.append(ctx.manager.set_priorities(torrent, priorities))
    return settle(ctx, changes, "torrent-set")


def _int(value: float | None) -> int | None:
    return None if value is None else int(value)


@method("torrent-set-location")
def torrent_set_location(ctx: RpcContext, arguments: dict[str, Any]) -> dict[str, Any]:
    """Only a torrent's present location is accepted: the daemon cannot
    move data yet."""
    if "location" not in arguments:
        raise RpcError("no 'location' given")
    for torrent in torrents(ctx, arguments):
        _check_location(ctx, torrent, arguments["location"])
    return {}
