"""The read endpoints of ``torrents/*``: info, properties, files, trackers,
webseeds, pieceStates, pieceHashes, export (the .torrent) and the
per-torrent limits (the category and tag lists are in ``labels``).

``torrents/info`` filters by ``filter`` (``fields.STATE_FILTERS``),
``category`` ("" for none), ``tag`` ("" for untagged), ``hashes``
("|"-joined), then sorts by ``sort`` (any field), ``reverse``, and slices
by ``offset`` and ``limit``.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING, Any

from txbittorrent.web.apitorrent import Download
from txbittorrent.web.qbt import views
from txbittorrent.web.qbt.base import Call, Context, QbtError, endpoint
from txbittorrent.web.qbt.fields import matches_filter, sort_and_slice, split_hashes

if TYPE_CHECKING:
    from txbittorrent.torrent import Torrent

__all__ = ["all_info"]


def all_info(ctx: Context, torrents: list[Torrent] | None = None) -> list[dict[str, Any]]:
    """Every torrent's (or these torrents') info."""
    positions = views.queue_positions(ctx)
    chosen = ctx.session.torrents() if torrents is None else torrents
    return [views.torrent_info(ctx, t, positions) for t in chosen]


def _labels_of(info: dict[str, Any]) -> list[str]:
    return [t for t in info["tags"].split(", ") if t]


@endpoint("torrents", "info")
def info(call: Call) -> list[Any]:
    items = all_info(call.ctx)
    state_filter = call.get("filter")
    if state_filter:
        items = [i for i in items if matches_filter(state_filter, i)]
    category = call.get("category")
    if category is not None:
        items = [i for i in items if i["category"] == category]
    tag = call.get("tag")
    if tag is not None:
        items = [i for i in items if (tag in _labels_of(i) if tag else not _labels_of(i))]
    hashes = call.get("hashes")
    if hashes is not None:
        wanted = split_hashes(hashes)
        if wanted is not None:
            items = [i for i in items if i["hash"] in wanted]
    return list(sort_and_slice(items, call.get("sort"), call.flag("reverse"),
                               call.integer("limit"), call.integer("offset")))


@endpoint("torrents", "properties")
def properties(call: Call) -> dict[str, Any]:
    return views.properties(call.ctx, call.torrent())


@endpoint("torrents", "files")
def files(call: Call) -> list[dict[str, Any]]:
    torrent = call.torrent()
    out = views.files(torrent)
    indexes = call.get("indexes")
    if indexes:
        try:
            wanted = {int(i) for i in indexes.split("|") if i.strip()}
        except ValueError:
            raise QbtError(400, "'indexes' must be integers joined by '|'") from None
        out = [f for f in out if f["index"] in wanted]
    return out


@endpoint("torrents", "trackers")
def trackers(call: Call) -> list[dict[str, Any]]:
    return views.trackers(call.ctx, call.torrent())


@endpoint("torrents", "export")
def export(call: Call) -> Download:
    """The .torrent (the uploaded bytes if any), named <hash>.torrent; 409
    before the metadata."""
    torrent = call.torrent()
    download = call.ctx.manager.torrent_file(torrent)
    return dataclasses.replace(download, filename=torrent.info_hash.hex() + ".torrent")


@endpoint("torrents", "webseeds")
def webseeds(call: Call) -> list[dict[str, Any]]:
    torrent = call.torrent()
    metainfo = torrent.metainfo
    return [{"url": url} for url in (metainfo.url_list if metainfo is not None else ())]


@endpoint("torrents", "pieceStates")
def piece_states(call: Call) -> list[int]:
    """0 not downloaded, 2 downloaded (1, downloading, is not told apart)."""
    torrent = call.torrent()
    if not torrent.has_metadata:
        return []
    have = torrent.bitfield
    return [2 if i in have else 0 for i in range(torrent.piece_count)]


@endpoint("torrents", "pieceHashes")
def piece_hashes(call: Call) -> list[str]:
    torrent = call.torrent()
    metainfo = torrent.metainfo
    if metainfo is None:
        return []
    return [metainfo.piece_hash(i).hex() for i in range(metainfo.piece_count)]


def _limits(call: Call, which: str) -> dict[str, int]:
    out = {}
    for torrent in call.torrents():
        value = getattr(torrent.config, which)
        out[torrent.info_hash.hex()] = -1 if value is None else int(value)
    return out


@endpoint("torrents", "downloadLimit")
def download_limit(call: Call) -> dict[str, int]:
    return _limits(call, "download_limit")


@endpoint("torrents", "uploadLimit")
def upload_limit(call: Call) -> dict[str, int]:
    return _limits(call, "upload_limit")
