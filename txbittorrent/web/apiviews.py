"""The JSON shapes of the native API: plain dicts from the library's objects.

Units everywhere: lowercase hex info hashes and peer ids, bytes and bytes/s
as integers, Unix times as integers (None when unknown), progress 0..1.
Nothing here reads a clock or touches the network.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from txbittorrent.core.layout import Layout
    from txbittorrent.accessors import FileInfo
    from txbittorrent.core.tracker.tiers import TrackerStatus
    from txbittorrent.swarm.peerstate import PeerInfo
    from txbittorrent.torrent import Torrent

__all__ = ["ROUTES", "torrent_view", "file_view", "files_done", "peer_view", "tracker_view"]

ROUTES: list[dict[str, Any]] = [
    {"path": "/api", "methods": ["GET"], "doc": "This list of routes."},
    {"path": "/api/torrents", "methods": ["GET", "POST"],
     "doc": "GET [?label=L]: every torrent (with that label).  POST: add one (201 with it;"
            " 409 if there already; 400 on bad input): a JSON body {\"source\": magnet URI,"
            " info hash (40 hex or 32 base32) or http(s) URL of a .torrent, \"save_path\","
            " \"paused\", \"priorities\" (one per file), \"files\" (indexes wanted),"
            " \"labels\"}; or a multipart form with the .torrent in the file field"
            " \"torrent\" and the options as fields; or the raw .torrent as"
            " application/x-bittorrent with the options in the query string."},
    {"path": "/api/torrents/<info_hash>", "methods": ["GET", "DELETE"],
     "doc": "GET: one torrent.  DELETE [?delete_data=1]: stop and remove it; with"
            " delete_data, its own files too (and the directories they leave empty)."},
    {"path": "/api/torrents/<info_hash>/start", "methods": ["POST"],
     "doc": "Start or resume the torrent."},
    {"path": "/api/torrents/<info_hash>/pause", "methods": ["POST"],
     "doc": "Pause: connections kept, nothing transferred."},
    {"path": "/api/torrents/<info_hash>/stop", "methods": ["POST"],
     "doc": "Stop: trackers told, connections closed."},
    {"path": "/api/torrents/<info_hash>/recheck", "methods": ["POST"],
     "doc": "Stop, verify every piece again, then return to the wanted state; answers"
            " when done (409 before the metadata or while a recheck runs)."},
    {"path": "/api/torrents/<info_hash>/files", "methods": ["GET", "POST"],
     "doc": "GET: the files with their priorities and verified bytes.  POST"
            " {\"priorities\": [one per file]} or {\"files\": {\"<index>\": priority}}:"
            " set them (409 before the metadata)."},
    {"path": "/api/torrents/<info_hash>/peers", "methods": ["GET"],
     "doc": "The connected peers."},
    {"path": "/api/torrents/<info_hash>/trackers", "methods": ["GET", "POST", "DELETE"],
     "doc": "GET: the trackers with their status.  POST {\"url\", \"tier\"}: add one"
            " (201).  DELETE ?url=: remove one (404 if unknown)."},
    {"path": "/api/torrents/<info_hash>/limits", "methods": ["GET", "POST"],
     "doc": "The torrent's own rate limits {\"download_limit\", \"upload_limit\"}"
            " in bytes/s (null or 0: unlimited)."},
    {"path": "/api/torrents/<info_hash>/labels", "methods": ["POST"],
     "doc": "POST {\"labels\": [str]}: replace the torrent's labels."},
    {"path": "/api/torrents/<info_hash>/torrent", "methods": ["GET"],
     "doc": "The .torrent file (409 before the metadata)."},
    {"path": "/api/limits", "methods": ["GET", "POST"],
     "doc": "The global rate limits {\"download_limit\", \"upload_limit\"} in bytes/s"
            " (null or 0: unlimited)."},
    {"path": "/api/stats", "methods": ["GET"],
     "doc": "Session totals: torrents, rates, bytes, peers, DHT nodes, listening port;"
            " the daemon's media token (for players' ?token= links)."},
]


def _time(value: float | None) -> int | None:
    return None if value is None else int(value)


def _limit(value: float | None) -> int | None:
    return None if value is None else int(value)


def torrent_view(
    torrent: Torrent,
    *,
    labels: Sequence[str] = (),
    added_at: float | None = None,
    completed_at: float | None = None,
    state: str | None = None,
) -> dict[str, Any]:
    """One torrent's status; ``labels`` and the times come from the daemon's
    store (or what the API remembers), ``state`` overrides the torrent's
    own (the API says "checking" during its recheck)."""
    size, left = torrent.size, torrent.left
    if not torrent.has_metadata:
        progress = 0.0
    elif size == 0:
        progress = 1.0
    else:
        progress = (size - left) / size
    return {
        "info_hash": torrent.info_hash.hex(),
        "name": torrent.name,
        "state": state if state is not None else str(torrent.state),
        "has_metadata": torrent.has_metadata,
        "size": size,
        "left": left,
        "progress": progress,
        "piece_count": torrent.piece_count,
        "uploaded": torrent.uploaded,
        "downloaded": torrent.downloaded,
        "download_rate": int(torrent.download_rate),
        "upload_rate": int(torrent.upload_rate),
        "peers": len(torrent.peers()),
        "save_path": torrent.basedir,
        "labels": list(labels),
        "download_limit": _limit(torrent.config.download_limit),
        "upload_limit": _limit(torrent.config.upload_limit),
        "added_at": _time(added_at),
        "completed_at": _time(completed_at),
    }


def file_view(info: FileInfo, done: int | None = None) -> dict[str, Any]:
    """One file of a torrent; ``done`` is its verified bytes (see
    ``files_done``)."""
    view: dict[str, Any] = {"index": info.index, "path": info.path, "length": info.length,
                            "priority": info.priority}
    if done is not None:
        view["done"] = done
        view["progress"] = done / info.length if info.length else 1.0
    return view


def files_done(layout: Layout, have: Iterable[int]) -> list[int]:
    """Each file's verified bytes: the bytes of the verified pieces that lie
    in it.  ``have`` in increasing order (a Bitfield iterates so): one merge
    of the pieces with the files, O(pieces + files)."""
    count = layout.file_count
    starts = [layout.file_offset(f) for f in range(count)]
    ends = [starts[f] + layout.file_length(f) for f in range(count)]
    done = [0] * count
    f = 0
    for index in have:
        begin = index * layout.piece_length
        end = begin + layout.piece_size(index)
        while f < count and ends[f] <= begin:
            f += 1
        g = f
        while g < count and starts[g] < end:
            done[g] += max(0, min(end, ends[g]) - max(begin, starts[g]))
            g += 1
    return done


def peer_view(peer: PeerInfo) -> dict[str, Any]:
    """One connected peer."""
    return {
        "host": peer.address[0],
        "port": peer.address[1],
        "peer_id": peer.peer_id.hex(),
        "client": peer.client,
        "flags": peer.flags,
        "outgoing": peer.outgoing,
        "encrypted": peer.encrypted,
        "source": peer.source,
        "progress": peer.progress,
        "download_rate": int(peer.download_rate),
        "upload_rate": int(peer.upload_rate),
        "downloaded": peer.downloaded,
        "uploaded": peer.uploaded,
        "am_choking": peer.am_choking,
        "am_interested": peer.am_interested,
        "peer_choking": peer.peer_choking,
        "peer_interested": peer.peer_interested,
        "snubbed": peer.snubbed,
        "outstanding_requests": peer.outstanding_requests,
        "pending_peer_requests": peer.pending_peer_requests,
        "extensions": list(peer.extensions),
    }


def tracker_view(status: TrackerStatus) -> dict[str, Any]:
    """One tracker and how it has fared (times as the reactor's clock says:
    Unix times with the real reactor)."""
    return {
        "url": status.url,
        "tier": status.tier,
        "complete": status.complete,
        "incomplete": status.incomplete,
        "peers": status.peers,
        "peers6": status.peers6,
        "failures": status.failures,
        "last_error": status.last_error,
        "warning": status.warning,
        "min_interval": status.min_interval,
        "next_announce": _time(status.next_announce),
        "min_announce": _time(status.min_announce),
        "last_announce": _time(status.last_announce),
        "updating": status.updating,
    }
