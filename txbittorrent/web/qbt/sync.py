"""``sync/maindata`` and ``sync/torrentPeers``: snapshots and their diffs.

Theory of operation
-------------------
A client polls with the ``rid`` of its last answer (0 at first).  Every
answer carries a new ``rid`` and is either a full update
(``full_update: true`` and everything) when the ``rid`` is 0 or unknown,
or only what changed since the snapshot that ``rid`` names: for each
torrent (peer) only its changed fields (all of them when new),
``torrents_removed``; changed ``categories`` and ``categories_removed``;
new ``tags`` and ``tags_removed``; changed ``server_state`` fields.  Keys
with nothing in them are left out, as qBittorrent does.

``SyncBook`` keeps the snapshots, per client (its session id or token)
and per stream (``maindata`` or a torrent's peers): at most
``per_client`` snapshots for each (older ``rid``\\ s get a full update)
and ``max_clients`` streams, the least recently used forgotten first.
``diff`` is a pure function of two snapshots.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from txbittorrent.web.qbt import views
from txbittorrent.web.qbt.base import Call, endpoint

__all__ = ["Snapshot", "SyncBook", "diff", "full"]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What a client was last told: items by key (torrents or peers),
    categories by name, tags, and the server state."""

    items: Mapping[str, Mapping[str, Any]]
    categories: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    server_state: Mapping[str, Any] = field(default_factory=dict)


def _changed(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in new.items() if k not in old or old[k] != v}


def diff(old: Snapshot, new: Snapshot, items_key: str) -> dict[str, Any]:
    """What changed from ``old`` to ``new`` (empty parts left out);
    ``items_key`` names the items ("torrents" or "peers")."""
    out: dict[str, Any] = {}
    items = {}
    for key, value in new.items.items():
        before = old.items.get(key)
        change = dict(value) if before is None else _changed(before, value)
        if change:
            items[key] = change
    if items:
        out[items_key] = items
    removed = [k for k in old.items if k not in new.items]
    if removed:
        out[items_key + "_removed"] = removed
    categories = {k: dict(v) for k, v in new.categories.items() if old.categories.get(k) != v}
    if categories:
        out["categories"] = categories
    gone = [k for k in old.categories if k not in new.categories]
    if gone:
        out["categories_removed"] = gone
    tags = [t for t in new.tags if t not in old.tags]
    if tags:
        out["tags"] = tags
    tags_gone = [t for t in old.tags if t not in new.tags]
    if tags_gone:
        out["tags_removed"] = tags_gone
    state = _changed(old.server_state, new.server_state)
    if state:
        out["server_state"] = state
    return out


def full(snapshot: Snapshot, items_key: str, with_maindata: bool) -> dict[str, Any]:
    """A full update of ``snapshot``."""
    out: dict[str, Any] = {"full_update": True,
                           items_key: {k: dict(v) for k, v in snapshot.items.items()}}
    if with_maindata:
        out["categories"] = {k: dict(v) for k, v in snapshot.categories.items()}
        out["tags"] = list(snapshot.tags)
        out["server_state"] = dict(snapshot.server_state)
    return out


class SyncBook:
    """The snapshots each client was answered with (see the module docstring)."""

    def __init__(self, per_client: int = 4, max_clients: int = 64) -> None:
        self.per_client = per_client
        self.max_clients = max_clients
        self._next_rid = 1
        self._streams: OrderedDict[tuple[str, str], OrderedDict[int, Snapshot]] = OrderedDict()

    def answer(
        self, client: str, stream: str, rid: int, snapshot: Snapshot, items_key: str,
        with_maindata: bool,
    ) -> dict[str, Any]:
        """The answer to a poll with ``rid``: a diff against the snapshot it
        names, or a full update; the new snapshot is kept under the new rid."""
        key = (client, stream)
        kept = self._streams.pop(key, None)
        if kept is None:
            kept = OrderedDict()
        old = kept.get(rid) if rid > 0 else None
        body = full(snapshot, items_key, with_maindata) if old is None \
            else diff(old, snapshot, items_key)
        new_rid = self._next_rid
        self._next_rid += 1
        kept[new_rid] = snapshot
        while len(kept) > self.per_client:
            kept.popitem(last=False)
        self._streams[key] = kept
        while len(self._streams) > self.max_clients:
            self._streams.popitem(last=False)
        body["rid"] = new_rid
        return body

    def snapshot_count(self) -> int:
        return sum(len(s) for s in self._streams.values())


@endpoint("sync", "maindata")
def maindata(call: Call) -> dict[str, Any]:
    from txbittorrent.web.qbt.labels import all_tags, categories_view
    from txbittorrent.web.qbt.torrents import all_info
    from txbittorrent.web.qbt.transfer import server_state

    ctx = call.ctx
    infos = all_info(ctx)
    snapshot = Snapshot(
        items={i["hash"]: i for i in infos},
        categories=categories_view(ctx),
        tags=tuple(all_tags(ctx)),
        server_state=server_state(ctx),
    )
    return ctx.sync.answer(call.client, "maindata", call.integer("rid", 0) or 0, snapshot,
                           "torrents", True)


@endpoint("sync", "torrentPeers")
def torrent_peers(call: Call) -> dict[str, Any]:
    torrent = call.torrent()
    ctx = call.ctx
    snapshot = Snapshot(items={views.peer_key(p): views.peer_info(p) for p in torrent.peers()})
    body = ctx.sync.answer(call.client, "peers:" + torrent.info_hash.hex(),
                           call.integer("rid", 0) or 0, snapshot, "peers", False)
    body["show_flags"] = True
    return body
