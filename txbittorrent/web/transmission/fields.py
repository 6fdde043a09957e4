"""Transmission's ``torrent-get`` fields from ``TorrentFacts``: pure functions.

One table, ``FIELDS``, maps each field name of RPC version 17 (Transmission
4.0; the camelCase and kebab-case names) to a function of the facts.  The
units are Transmission's: bytes and bytes/s as JSON integers, times as
integer Unix times (0: never), limits in kB/s (1000 bytes), ratios and
percentages as doubles (0..1).  Integer fields are Python ``int`` always:
transmission-remote reads them with ``tr_variantGetInt``, which refuses a
JSON real.

Mapping decisions (Transmission has no pause and no per-file skip apart from
"wanted"):

- ``status``: stopped, paused and error are 0 (stopped); checking (or a
  recheck of the daemon's) 2; metadata and downloading 4; seeding 6.  Nothing
  is ever queued (1, 3, 5): the daemon has no queue.
- File priorities: our priority 0 is "not wanted" (Transmission's priority
  then shows 0, normal); 1 is normal (0); 2 and above are high (1).  Low (-1)
  has no equivalent and is never shown (``PRIORITY_OF``).
- ``eta``: -1 (not available) when nothing wanted is left, else the seconds
  at the current rate, else -2 (unknown).
- ``error``: 3 (local error) for the error state, else 2 (tracker error)
  when every tracker failed its last announce, else 0.
"""

from __future__ import annotations

import base64
import mimetypes
from collections.abc import Callable, Iterable, Sequence
from typing import Any
from urllib.parse import urlsplit

from txbittorrent.web.transmission.facts import TorrentFacts

__all__ = [
    "FIELDS", "HIGH", "NORMAL", "STATUS", "eta", "priority_of", "status", "torrent_object",
    "torrent_table", "tracker_list", "scrape_url", "unknown_fields", "KB",
]

KB = 1000
"""Bytes in Transmission's kB (its ``speed-bytes``)."""

STATUS = {
    "stopped": 0, "paused": 0, "error": 0, "checking": 2, "metadata": 4,
    "downloading": 4, "seeding": 6,
}
NORMAL = 1
"""Our priority for Transmission's normal (and low)."""
HIGH = 6
"""Our priority for Transmission's high (qBittorrent's high too)."""

ETA_NOT_AVAILABLE = -1
ETA_UNKNOWN = -2
RATIO_NOT_AVAILABLE = -1.0
LOCAL_ERROR, TRACKER_ERROR = 3, 2


def status(facts: TorrentFacts) -> int:
    return 2 if facts.rechecking else STATUS.get(facts.state, 0)


def priority_of(priority: int) -> int:
    """Transmission's priority (-1 low, 0 normal, 1 high) of ours."""
    return 1 if priority >= 2 else 0


def eta(facts: TorrentFacts) -> int:
    if facts.has_metadata and facts.left_wanted == 0:
        return ETA_NOT_AVAILABLE
    if facts.download_rate >= 1 and facts.has_metadata:
        return int(facts.left_wanted / facts.download_rate)
    return ETA_UNKNOWN


def _ratio(facts: TorrentFacts) -> float:
    if facts.downloaded <= 0:
        return RATIO_NOT_AVAILABLE
    return round(facts.uploaded / facts.downloaded, 4)


def _percent_done(facts: TorrentFacts) -> float:
    if not facts.has_metadata:
        return 0.0
    if facts.wanted_size <= 0:
        return 1.0
    return (facts.wanted_size - facts.left_wanted) / facts.wanted_size


def _percent_complete(facts: TorrentFacts) -> float:
    if not facts.has_metadata:
        return 0.0
    if facts.size <= 0:
        return 1.0
    return (facts.size - facts.left) / facts.size


def _time(value: float | None) -> int:
    return int(value) if value else 0


def _kb(limit: float | None) -> int:
    return 0 if limit is None else int(round(limit / KB))


def _done(facts: TorrentFacts) -> bool:
    return facts.has_metadata and facts.left_wanted == 0


def _downloading_from(p: Any, done: bool) -> bool:
    """Whether a peer sends us pieces (never once nothing wanted is left:
    the rate meter lags the end of the download)."""
    return not done and (p.download_rate >= 1 or (p.am_interested and not p.peer_choking))


def _sending_to_us(facts: TorrentFacts) -> int:
    done = _done(facts)
    return sum(1 for p in facts.peers if _downloading_from(p, done))


def _getting_from_us(facts: TorrentFacts) -> int:
    return sum(1 for p in facts.peers
               if p.upload_rate >= 1 or (p.peer_interested and not p.am_choking))


def _error(facts: TorrentFacts) -> tuple[int, str]:
    if facts.state == "error":
        return LOCAL_ERROR, "the torrent stopped on an error"
    statuses = [s for tier in facts.trackers for s in tier]
    if statuses and all(s.failures > 0 for s in statuses):
        return TRACKER_ERROR, statuses[0].last_error or "announce failed"
    return 0, ""


def _activity(facts: TorrentFacts) -> int:
    if facts.download_rate >= 1 or facts.upload_rate >= 1:
        return int(facts.now)
    return max(_time(facts.added_at), _time(facts.completed_at))


def _desired_available(facts: TorrentFacts) -> int:
    """Wanted bytes still missing that connected peers have: all of them
    when a connected peer has every piece (peers' bitfields are not
    exposed, so partial peers are not counted)."""
    if any(p.progress >= 1.0 for p in facts.peers):
        return facts.left_wanted
    return 0


def _files(facts: TorrentFacts) -> list[dict[str, Any]]:
    return [{"bytesCompleted": f.done, "length": f.length, "name": f.name,
             "beginPiece": f.begin_piece, "endPiece": f.end_piece} for f in facts.files]


def _file_stats(facts: TorrentFacts) -> list[dict[str, Any]]:
    return [{"bytesCompleted": f.done, "wanted": f.priority > 0,
             "priority": priority_of(f.priority)} for f in facts.files]


def _peer(p: Any, done: bool) -> dict[str, Any]:
    return {
        "address": p.address[0],
        "clientName": p.client,
        "clientIsChoked": p.peer_choking,
        "clientIsInterested": p.am_interested,
        "flagStr": p.flags,
        "isDownloadingFrom": _downloading_from(p, done),
        "isEncrypted": bool(getattr(p, "encrypted", False)),
        "isIncoming": not p.outgoing,
        "isUploadingTo": p.upload_rate >= 1 or (p.peer_interested and not p.am_choking),
        "isUTP": False,
        "peerIsChoked": p.am_choking,
        "peerIsInterested": p.peer_interested,
        "port": int(p.address[1]),
        "progress": float(p.progress),
        "rateToClient": int(p.download_rate),
        "rateToPeer": int(p.upload_rate),
    }


def _peers_from(facts: TorrentFacts) -> dict[str, int]:
    out = {"fromCache": 0, "fromDht": 0, "fromIncoming": 0, "fromLpd": 0, "fromLtep": 0,
           "fromPex": 0, "fromTracker": 0}
    for p in facts.peers:
        source = p.source
        if source == "dht":
            out["fromDht"] += 1
        elif source == "pex":
            out["fromPex"] += 1
        elif source == "incoming" or (not source and not p.outgoing):
            out["fromIncoming"] += 1
        elif "://" in source:
            out["fromTracker"] += 1
        else:  # user, magnet (x.pe): what Transmission would have from its cache
            out["fromCache"] += 1
    return out


def scrape_url(announce: str) -> str:
    """BEP 48's convention: ``.../announce...`` -> ``.../scrape...``; "" if
    the URL does not follow it."""
    head, sep, tail = announce.rpartition("/")
    if sep and tail.startswith("announce"):
        return f"{head}/scrape{tail[len('announce'):]}"
    return ""


def _host(url: str) -> str:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    host = parts.hostname or ""
    return f"{parts.scheme}://{host}:{port}" if port else f"{parts.scheme}://{host}"


def _sitename(url: str) -> str:
    host = urlsplit(url).hostname or ""
    labels = host.split(".")
    if len(labels) >= 2 and not host.replace(".", "").isdigit():
        return labels[-2]
    return host


def _flat_trackers(facts: TorrentFacts) -> list[tuple[int, int, Any]]:
    """(id, index in its tier, status) of every tracker, ids from 0."""
    out: list[tuple[int, int, Any]] = []
    for tier in facts.trackers:
        for position, tracker in enumerate(tier):
            out.append((len(out), position, tracker))
    return out


def _trackers(facts: TorrentFacts) -> list[dict[str, Any]]:
    return [{"announce": s.url, "id": i, "scrape": scrape_url(s.url), "sitename": _sitename(s.url),
             "tier": int(s.tier)} for i, _, s in _flat_trackers(facts)]


def _announce_state(facts: TorrentFacts, s: Any) -> int:
    """0 inactive, 1 waiting, 2 queued, 3 active (announcing now)."""
    if facts.state in ("stopped", "error"):
        return 0
    if s.updating:
        return 3
    return 1 if s.next_announce is not None else 0


def _tracker_stats(facts: TorrentFacts) -> list[dict[str, Any]]:
    out = []
    for i, position, s in _flat_trackers(facts):
        announced = s.last_announce is not None
        succeeded = announced and s.failures == 0 and s.last_error is None
        out.append({
            "announce": s.url,
            "announceState": _announce_state(facts, s),
            "downloadCount": -1,
            "hasAnnounced": announced,
            "hasScraped": False,
            "host": _host(s.url),
            "id": i,
            "isBackup": position > 0,
            "lastAnnouncePeerCount": int(s.peers + s.peers6),
            "lastAnnounceResult": (s.last_error or "") if not succeeded else "Success",
            "lastAnnounceStartTime": _time(s.last_announce),
            "lastAnnounceSucceeded": succeeded,
            "lastAnnounceTime": _time(s.last_announce),
            "lastAnnounceTimedOut": False,
            "lastScrapeResult": "",
            "lastScrapeStartTime": 0,
            "lastScrapeSucceeded": False,
            "lastScrapeTime": 0,
            "lastScrapeTimedOut": False,
            "leecherCount": -1 if s.incomplete is None else int(s.incomplete),
            "nextAnnounceTime": _time(s.next_announce),
            "nextScrapeTime": 0,
            "scrape": scrape_url(s.url),
            "scrapeState": 0,
            "seederCount": -1 if s.complete is None else int(s.complete),
            "sitename": _sitename(s.url),
            "tier": int(s.tier),
        })
    return out


def tracker_list(trackers: Sequence[Sequence[Any]]) -> str:
    """Announce URLs one per line, a blank line between tiers."""
    return "\n\n".join("\n".join(s.url for s in tier) for tier in trackers if tier)


def _primary_mime_type(facts: TorrentFacts) -> str:
    if not facts.files:
        return "application/octet-stream"
    biggest = max(facts.files, key=lambda f: f.length)
    kind, _ = mimetypes.guess_type(biggest.name, strict=False)
    return kind or "application/octet-stream"


FIELDS: dict[str, Callable[[TorrentFacts], Any]] = {
    "activityDate": _activity,
    "addedDate": lambda f: _time(f.added_at),
    "bandwidthPriority": lambda f: 0,
    "comment": lambda f: f.comment,
    "corruptEver": lambda f: 0,
    "creator": lambda f: f.creator,
    "dateCreated": lambda f: int(f.date_created),
    "desiredAvailable": _desired_available,
    "doneDate": lambda f: _time(f.completed_at),
    "downloadDir": lambda f: f.save_path,
    "downloadedEver": lambda f: int(f.downloaded),
    "downloadLimit": lambda f: _kb(f.download_limit),
    "downloadLimited": lambda f: f.download_limit is not None,
    "editDate": lambda f: 0,
    "error": lambda f: _error(f)[0],
    "errorString": lambda f: _error(f)[1],
    "eta": eta,
    "etaIdle": lambda f: ETA_NOT_AVAILABLE,
    "file-count": lambda f: len(f.files),
    "files": _files,
    "fileStats": _file_stats,
    "group": lambda f: "",
    "hashString": lambda f: f.info_hash,
    "haveUnchecked": lambda f: 0,
    "haveValid": lambda f: int(f.size - f.left) if f.has_metadata else 0,
    "honorsSessionLimits": lambda f: True,
    "id": lambda f: int(f.id),
    "isFinished": lambda f: False,
    "isPrivate": lambda f: f.private,
    "isStalled": lambda f: False,
    "labels": lambda f: list(f.labels),
    "leftUntilDone": lambda f: int(f.left_wanted),
    "magnetLink": lambda f: f.magnet,
    "manualAnnounceTime": lambda f: 0,
    "maxConnectedPeers": lambda f: int(f.max_peers or 0),
    "metadataPercentComplete": lambda f: 1.0 if f.has_metadata else 0.0,
    "name": lambda f: f.name,
    "peer-limit": lambda f: int(f.max_peers or 0),
    "peers": lambda f: [_peer(p, _done(f)) for p in f.peers],
    "peersConnected": lambda f: len(f.peers),
    "peersFrom": _peers_from,
    "peersGettingFromUs": _getting_from_us,
    "peersSendingToUs": _sending_to_us,
    "percentComplete": _percent_complete,
    "percentDone": _percent_done,
    "pieceCount": lambda f: int(f.piece_count),
    "pieceSize": lambda f: int(f.piece_length),
    "pieces": lambda f: base64.b64encode(f.pieces).decode("ascii"),
    "primary-mime-type": _primary_mime_type,
    "priorities": lambda f: [priority_of(x.priority) for x in f.files],
    "queuePosition": lambda f: int(f.queue_position),
    "rateDownload": lambda f: int(f.download_rate),
    "rateUpload": lambda f: int(f.upload_rate),
    "recheckProgress": lambda f: 0.0,
    "secondsDownloading": lambda f: 0,
    "secondsSeeding": lambda f: 0,
    "seedIdleLimit": lambda f: 30,
    "seedIdleMode": lambda f: 2,
    "seedRatioLimit": lambda f: 2.0,
    "seedRatioMode": lambda f: 2,
    "sequentialDownload": lambda f: False,
    "sizeWhenDone": lambda f: int(f.wanted_size),
    "startDate": lambda f: 0,
    "status": status,
    "torrentFile": lambda f: "",
    "totalSize": lambda f: int(f.size),
    "trackerList": lambda f: tracker_list(f.trackers),
    "trackers": _trackers,
    "trackerStats": _tracker_stats,
    "uploadedEver": lambda f: int(f.uploaded),
    "uploadLimit": lambda f: _kb(f.upload_limit),
    "uploadLimited": lambda f: f.upload_limit is not None,
    "uploadRatio": _ratio,
    "wanted": lambda f: [1 if x.priority > 0 else 0 for x in f.files],
    "webseeds": lambda f: list(f.web_seeds),
    "webseedsSendingToUs": lambda f: 0,
}
"""Every field the daemon answers; a requested field not here is left out
(as Transmission leaves out names it does not know)."""


def unknown_fields(names: Iterable[str]) -> list[str]:
    return [n for n in names if n not in FIELDS]


def torrent_object(facts: TorrentFacts, names: Sequence[str]) -> dict[str, Any]:
    """The torrent's requested fields (unknown ones left out)."""
    return {n: FIELDS[n](facts) for n in names if n in FIELDS}


def torrent_table(rows: Sequence[TorrentFacts], names: Sequence[str]) -> list[list[Any]]:
    """The "table" format: a header row of the known names, then one row
    per torrent."""
    known = [n for n in names if n in FIELDS]
    return [list(known)] + [[FIELDS[n](facts) for n in known] for facts in rows]
