"""qBittorrent's JSON shapes from the library's objects: a torrent's info
(``torrents/info``, ``sync/maindata``), properties, files, trackers and
peers.  Names and units are qBittorrent's (bytes, bytes/s, Unix seconds,
progress 0..1, -1 for unknown or unlimited); the state names come from
``fields.qbt_state``.  Nothing here changes anything.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from txbittorrent.core.layout import Layout
from txbittorrent.web.apiviews import files_done
from txbittorrent.web.qbt.fields import (
    TRACKER_DISABLED,
    TRACKER_WORKING,
    eta,
    joined,
    qbt_state,
    ratio,
    tracker_status,
)

if TYPE_CHECKING:
    from txbittorrent.swarm.peerstate import PeerInfo
    from txbittorrent.torrent import Torrent
    from txbittorrent.web.qbt.base import Context

__all__ = ["torrent_info", "properties", "files", "trackers", "peer_info", "content_path",
           "queue_positions"]


def content_path(torrent: Torrent) -> str:
    """The torrent's file (single-file) or top directory (multi-file)."""
    return os.path.join(torrent.basedir, torrent.name)


def _progress(torrent: Torrent) -> tuple[int, int, float]:
    """(wanted size, left of it, progress 0..1)."""
    if not torrent.has_metadata:
        return 0, 0, 0.0
    wanted, left = torrent.wanted_size, torrent.left_wanted
    return wanted, left, (wanted - left) / wanted if wanted else 1.0


def _swarm_counts(torrent: Torrent) -> tuple[int, int, int, int]:
    """(connected seeds, connected leechers, swarm seeds, swarm leechers):
    the swarm's from the trackers' best answer, else the connected ones."""
    peers = torrent.peers()
    seeds = sum(1 for p in peers if p.progress >= 1.0)
    leechs = len(peers) - seeds
    complete = [s.complete for tier in torrent.trackers() for s in tier if s.complete is not None]
    incomplete = [s.incomplete for tier in torrent.trackers() for s in tier
                  if s.incomplete is not None]
    return (seeds, leechs, max(complete, default=seeds), max(incomplete, default=leechs))


def queue_positions(ctx: Context) -> dict[str, int]:
    """Each unfinished torrent's 1-based queue position (the store's
    ``position`` order); finished ones are absent (qBittorrent shows 0)."""
    out: dict[str, int] = {}
    rank = 0
    for record in sorted(ctx.store.torrents(), key=lambda r: r.position):
        torrent = ctx.session.get(bytes.fromhex(record.info_hash)) \
            if len(record.info_hash) == 40 else None
        if torrent is None or (torrent.has_metadata and torrent.complete):
            continue
        rank += 1
        out[record.info_hash] = rank
    return out


def _limit(value: float | None) -> int:
    return -1 if value is None else int(value)


def torrent_info(ctx: Context, torrent: Torrent, positions: dict[str, int]) -> dict[str, Any]:
    """One torrent as ``torrents/info`` lists it."""
    ih = torrent.info_hash.hex()
    record = ctx.store.get(ih)
    extra = ctx.extras.get(ih)
    wanted, left, progress = _progress(torrent)
    complete = torrent.has_metadata and torrent.complete
    dlspeed, upspeed = int(torrent.download_rate), int(torrent.upload_rate)
    running = torrent.state.running and str(torrent.state) != "paused"
    state = qbt_state(str(torrent.state), complete=complete, download_rate=dlspeed,
                      upload_rate=upspeed, rechecking=ih in ctx.manager.rechecking,
                      forced=bool(extra["force_start"]) and running)
    seeds, leechs, num_complete, num_incomplete = _swarm_counts(torrent)
    added = record.added_at if record is not None else ctx.manager.added_at(ih)
    completed = record.completed_at if record is not None else None
    now = int(ctx.clock())
    if dlspeed or upspeed:
        ctx.extras.active[ih] = now
    last_activity = ctx.extras.active.get(ih, int(added) if added is not None else 0)
    trackers = [s for tier in torrent.trackers() for s in tier]
    working = next((s.url for s in trackers if s.failures == 0 and s.last_announce is not None
                    and not s.updating), "")
    labels = record.labels if record is not None else ctx.manager.labels(ih)
    path = content_path(torrent)
    metainfo = torrent.metainfo
    return {
        "hash": ih,
        "infohash_v1": ih,
        "infohash_v2": "",
        "name": torrent.name,
        "magnet_uri": torrent.magnet.to_uri(),
        "size": wanted,
        "total_size": torrent.size,
        "progress": progress,
        "dlspeed": dlspeed,
        "upspeed": upspeed,
        "priority": positions.get(ih, 0),
        "num_seeds": seeds,
        "num_complete": num_complete,
        "num_leechs": leechs,
        "num_incomplete": num_incomplete,
        "state": state,
        "eta": eta(complete, left, dlspeed),
        "seq_dl": bool(extra["seq_dl"]),
        "f_l_piece_prio": bool(extra["f_l_piece_prio"]),
        "category": (record.category or "") if record is not None else "",
        "tags": joined(labels),
        "super_seeding": bool(extra["super_seeding"]),
        "force_start": bool(extra["force_start"]),
        "save_path": torrent.basedir,
        "download_path": "",
        "content_path": path,
        "root_path": path if metainfo is not None and metainfo.multi_file else "",
        "added_on": int(added) if added is not None else 0,
        "completion_on": int(completed) if completed is not None else -1,
        "tracker": working,
        "trackers_count": len(trackers),
        "dl_limit": _limit(torrent.config.download_limit),
        "up_limit": _limit(torrent.config.upload_limit),
        "downloaded": torrent.downloaded,
        "uploaded": torrent.uploaded,
        "downloaded_session": torrent.downloaded,
        "uploaded_session": torrent.uploaded,
        "amount_left": left,
        "completed": wanted - left,
        "max_ratio": -1,
        "max_seeding_time": -1,
        "max_inactive_seeding_time": -1,
        "ratio": ratio(torrent.uploaded, torrent.downloaded, wanted - left),
        "ratio_limit": extra["ratio_limit"],
        "seeding_time_limit": extra["seeding_time_limit"],
        "inactive_seeding_time_limit": extra["inactive_seeding_time_limit"],
        "seen_complete": int(completed) if completed is not None else -1,
        "auto_tmm": False,
        "time_active": 0,
        "seeding_time": 0,
        "last_activity": last_activity,
        "availability": -1,
        "has_metadata": torrent.has_metadata,
        "private": torrent.private,
        "comment": (metainfo.comment or "") if metainfo is not None else "",
        "popularity": 0,
        "reannounce": _reannounce(torrent, now),
    }


def _reannounce(torrent: Torrent, now: float) -> int:
    """Seconds until the next announce (0 when none is due)."""
    due = [s.next_announce for tier in torrent.trackers() for s in tier
           if s.next_announce is not None]
    return max(0, int(min(due) - now)) if due else 0


def properties(ctx: Context, torrent: Torrent) -> dict[str, Any]:
    """``torrents/properties``: the torrent's general facts."""
    info = torrent_info(ctx, torrent, {})
    metainfo = torrent.metainfo
    peers = torrent.peers()
    have = torrent.bitfield.count if torrent.has_metadata else 0
    now = int(ctx.clock())
    added = info["added_on"]
    return {
        "hash": info["hash"],
        "infohash_v1": info["hash"],
        "infohash_v2": "",
        "name": info["name"],
        "save_path": info["save_path"],
        "download_path": "",
        "creation_date": (metainfo.creation_date or -1) if metainfo is not None else -1,
        "piece_size": torrent.piece_length if torrent.has_metadata else -1,
        "comment": info["comment"],
        "created_by": (metainfo.created_by or "") if metainfo is not None else "",
        "total_wasted": 0,
        "total_uploaded": torrent.uploaded,
        "total_uploaded_session": torrent.uploaded,
        "total_downloaded": torrent.downloaded,
        "total_downloaded_session": torrent.downloaded,
        "up_limit": info["up_limit"],
        "dl_limit": info["dl_limit"],
        "time_elapsed": max(0, now - added) if added else 0,
        "seeding_time": 0,
        "nb_connections": len(peers),
        "nb_connections_limit": torrent.config.max_peers or -1,
        "share_ratio": info["ratio"],
        "addition_date": added,
        "completion_date": info["completion_on"],
        "dl_speed": info["dlspeed"],
        "dl_speed_avg": info["dlspeed"],
        "up_speed": info["upspeed"],
        "up_speed_avg": info["upspeed"],
        "eta": info["eta"],
        "last_seen": info["seen_complete"],
        "peers": info["num_leechs"],
        "peers_total": info["num_incomplete"],
        "seeds": info["num_seeds"],
        "seeds_total": info["num_complete"],
        "pieces_have": have,
        "pieces_num": torrent.piece_count if torrent.has_metadata else -1,
        "reannounce": info["reannounce"],
        "total_size": torrent.size if torrent.has_metadata else -1,
        "isPrivate": torrent.private,
        "is_private": torrent.private,
        "has_metadata": torrent.has_metadata,
        "popularity": 0,
    }


def files(torrent: Torrent) -> list[dict[str, Any]]:
    """``torrents/files``: the listed files (pad files left out), indexed
    0.. in that order, named with the torrent's folder as qBittorrent's
    "Original" layout shows them."""
    metainfo = torrent.metainfo
    if metainfo is None:
        return []
    layout = Layout.from_metainfo(metainfo)
    done = files_done(layout, torrent.bitfield)
    out = []
    for position, info in enumerate(torrent.files()):
        offset, length = layout.file_offset(info.index), info.length
        first = offset // metainfo.piece_length
        last = (offset + length - 1) // metainfo.piece_length if length else first
        name = info.path.replace(os.sep, "/")  # a multi-file torrent's begins with its folder
        progress = done[info.index] / length if length else 1.0
        out.append({
            "index": position,
            "name": name,
            "size": length,
            "progress": progress,
            "priority": info.priority,
            "is_seed": progress >= 1.0,
            "piece_range": [first, last],
            "availability": -1,
        })
    return out


def trackers(ctx: Context, torrent: Torrent) -> list[dict[str, Any]]:
    """``torrents/trackers``: the DHT, PeX and LSD pseudo-entries (tier -1),
    then every tracker with its status code and message."""
    private = torrent.private
    peers = torrent.peers()

    def pseudo(url: str, enabled: bool, source: str) -> dict[str, Any]:
        return {"url": url, "status": TRACKER_WORKING if enabled else TRACKER_DISABLED,
                "tier": -1, "num_peers": sum(1 for p in peers if p.source == source),
                "num_seeds": 0, "num_leeches": 0, "num_downloaded": 0,
                "msg": "This torrent is private" if private else ""}

    out = [
        pseudo("** [DHT] **", ctx.session.dht is not None and not private, "dht"),
        pseudo("** [PeX] **", not private, "pex"),
        pseudo("** [LSD] **", False, "lsd"),
    ]
    for tier in torrent.trackers():
        for status in tier:
            answered = status.complete is not None or status.peers > 0 or (
                status.last_announce is not None and status.failures == 0)
            out.append({
                "url": status.url,
                "status": tracker_status(status.updating, status.failures, answered),
                "tier": status.tier,
                "num_peers": status.peers + status.peers6,
                "num_seeds": -1 if status.complete is None else status.complete,
                "num_leeches": -1 if status.incomplete is None else status.incomplete,
                "num_downloaded": -1,
                "msg": status.last_error or status.warning or "",
            })
    return out


def peer_key(peer: PeerInfo) -> str:
    host, port = peer.address[0], peer.address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def peer_info(peer: PeerInfo) -> dict[str, Any]:
    """One connected peer as ``sync/torrentPeers`` shows it."""
    return {
        "ip": peer.address[0],
        "port": peer.address[1],
        "client": peer.client,
        "peer_id_client": peer.peer_id[:8].decode("latin-1"),
        "connection": "BT",
        "flags": peer.flags,
        "flags_desc": "",
        "progress": peer.progress,
        "dl_speed": int(peer.download_rate),
        "up_speed": int(peer.upload_rate),
        "downloaded": peer.downloaded,
        "uploaded": peer.uploaded,
        "relevance": 0,
        "files": "",
        "country": "",
        "country_code": "",
    }
