"""What Transmission's ``torrent-get`` reports of one torrent, read once.

``facts_of`` reads a ``Torrent`` (and what the daemon's manager remembers
of it) into a frozen ``TorrentFacts``; ``fields`` turns facts into
Transmission's fields with pure functions.  Reading everything into one
snapshot keeps the field builders free of Twisted and of the Torrent's
internals, and testable with made-up facts.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from txbittorrent.core.layout import Layout
from txbittorrent.web.apiviews import files_done

if TYPE_CHECKING:
    from txbittorrent.core.tracker.tiers import TrackerStatus
    from txbittorrent.swarm.peerstate import PeerInfo
    from txbittorrent.torrent import Torrent
    from txbittorrent.web.manager import TorrentManager

__all__ = ["FileFacts", "TorrentFacts", "facts_of"]


@dataclass(frozen=True, slots=True)
class FileFacts:
    """One listed (not pad) file: its path with "/" separators (a
    multi-file torrent's starts with the torrent's name), length, verified
    bytes, our priority (0 skips it) and its first and last piece."""

    name: str
    length: int
    done: int
    priority: int
    begin_piece: int = 0
    end_piece: int = 0


@dataclass(frozen=True, slots=True)
class TorrentFacts:
    """A torrent as the RPC sees it at ``now`` (Unix time)."""

    id: int
    info_hash: str
    name: str
    state: str
    """``TorrentState`` value: stopped, checking, metadata, downloading,
    seeding, paused or error."""
    rechecking: bool
    has_metadata: bool
    size: int
    wanted_size: int
    left: int
    left_wanted: int
    downloaded: int
    uploaded: int
    download_rate: float
    upload_rate: float
    peers: tuple[PeerInfo, ...]
    trackers: tuple[tuple[TrackerStatus, ...], ...]
    save_path: str
    labels: tuple[str, ...]
    added_at: float | None
    completed_at: float | None
    files: tuple[FileFacts, ...]
    piece_count: int
    piece_length: int
    pieces: bytes
    """The verified pieces as a BitTorrent bitfield (high bit first)."""
    magnet: str
    comment: str
    creator: str
    date_created: int
    private: bool
    download_limit: float | None
    upload_limit: float | None
    max_peers: int | None
    web_seeds: tuple[str, ...]
    queue_position: int
    now: float


def _files(torrent: Torrent) -> tuple[FileFacts, ...]:
    metainfo = torrent.metainfo
    if metainfo is None:
        return ()
    layout = Layout.from_metainfo(metainfo)
    done = files_done(layout, torrent.bitfield)
    priorities = torrent.priorities
    out = []
    for index, entry in enumerate(metainfo.files):
        if entry.pad:
            continue
        begin = entry.offset // metainfo.piece_length if metainfo.piece_length else 0
        last = max(entry.offset, entry.offset + entry.length - 1)
        end = last // metainfo.piece_length if metainfo.piece_length else 0
        out.append(FileFacts(
            name="/".join(entry.path), length=entry.length, done=done[index],
            priority=priorities[index] if index < len(priorities) else 1,
            begin_piece=begin, end_piece=end,
        ))
    return tuple(out)


def facts_of(
    torrent: Torrent, manager: TorrentManager, *, id: int, queue_position: int, now: float
) -> TorrentFacts:
    """The torrent's facts now; ``id`` is its RPC id."""
    ih = torrent.info_hash.hex()
    record = manager.record(ih)
    metainfo = torrent.metainfo
    return TorrentFacts(
        id=id,
        info_hash=ih,
        name=torrent.name,
        state=str(torrent.state),
        rechecking=ih in manager.rechecking,
        has_metadata=torrent.has_metadata,
        size=torrent.size,
        wanted_size=torrent.wanted_size,
        left=torrent.left,
        left_wanted=torrent.left_wanted,
        downloaded=torrent.downloaded,
        uploaded=torrent.uploaded,
        download_rate=torrent.download_rate,
        upload_rate=torrent.upload_rate,
        peers=tuple(torrent.peers()),
        trackers=torrent.trackers(),
        save_path=torrent.basedir,
        labels=manager.labels(ih),
        added_at=manager.added_at(ih),
        completed_at=record.completed_at if record is not None else None,
        files=_files(torrent),
        piece_count=torrent.piece_count,
        piece_length=torrent.piece_length,
        pieces=torrent.bitfield.to_bytes() if torrent.has_metadata else b"",
        magnet=torrent.magnet.to_uri(),
        comment=(metainfo.comment or "") if metainfo is not None else "",
        creator=(metainfo.created_by or "") if metainfo is not None else "",
        date_created=(metainfo.creation_date or 0) if metainfo is not None else 0,
        private=torrent.private,
        download_limit=torrent.config.download_limit,
        upload_limit=torrent.config.upload_limit,
        max_peers=torrent.config.max_peers,
        web_seeds=metainfo.url_list if metainfo is not None else (),
        queue_position=queue_position,
        now=now,
    )
