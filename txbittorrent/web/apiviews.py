"""The JSON shapes of the native API: plain dicts from the library's objects.

Units everywhere: lowercase hex info hashes and peer ids, bytes and bytes/s
as integers, Unix times as integers (None when unknown), progress 0..1.
Nothing here reads a clock or touches the network.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from txbittorrent.accessors import FileInfo
    from txbittorrent.core.tracker.tiers import TrackerStatus
    from txbittorrent.swarm.peerstate import PeerInfo
    from txbittorrent.torrent import Torrent

__all__ = ["ROUTES", "torrent_view", "file_view", "peer_view", "tracker_view"]

ROUTES: list[dict[str, Any]] = [
    {"path": "/api", "methods": ["GET"], "doc": "This list of routes."},
    {"path": "/api/torrents", "methods": ["GET", "POST"],
     "doc": "GET: every torrent.  POST {\"source\": magnet URI or info hash (40 hex or"
            " 32 base32), \"paused\": bool}: add and start one (201); .torrent uploads"
            " are not accepted yet."},
    {"path": "/api/torrents/<info_hash>", "methods": ["GET", "DELETE"],
     "doc": "GET: one torrent.  DELETE: stop and remove it (its data stays on disk)."},
    {"path": "/api/torrents/<info_hash>/start", "methods": ["POST"],
     "doc": "Start or resume the torrent."},
    {"path": "/api/torrents/<info_hash>/pause", "methods": ["POST"],
     "doc": "Pause: connections kept, nothing transferred."},
    {"path": "/api/torrents/<info_hash>/stop", "methods": ["POST"],
     "doc": "Stop: trackers told, connections closed."},
    {"path": "/api/torrents/<info_hash>/files", "methods": ["GET"],
     "doc": "The torrent's files with their priorities."},
    {"path": "/api/torrents/<info_hash>/peers", "methods": ["GET"],
     "doc": "The connected peers."},
    {"path": "/api/torrents/<info_hash>/trackers", "methods": ["GET"],
     "doc": "The trackers, tier by tier, with their status."},
]


def _time(value: float | None) -> int | None:
    return None if value is None else int(value)


def torrent_view(torrent: Torrent) -> dict[str, Any]:
    """One torrent's status."""
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
        "state": str(torrent.state),
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
    }


def file_view(info: FileInfo) -> dict[str, Any]:
    """One file of a torrent."""
    return {"index": info.index, "path": info.path, "length": info.length,
            "priority": info.priority}


def peer_view(peer: PeerInfo) -> dict[str, Any]:
    """One connected peer."""
    return {
        "host": peer.address[0],
        "port": peer.address[1],
        "peer_id": peer.peer_id.hex(),
        "client": peer.client,
        "flags": peer.flags,
        "outgoing": peer.outgoing,
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
