"""The read-only accessors of a ``Torrent`` (AnyEvent::BitTorrent's names).

``TorrentAccessors`` is a base class of ``Torrent``: what the facade knows,
read from the parts it composes (``source``, ``_data``, ``_run``), with no
state of its own.  Before the metadata is known the figures that need it
are 0 (``size``, ``piece_count``...), empty (``files()``, ``bitfield``) or
False (``complete``, ``seed``).
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import TYPE_CHECKING

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.tracker.tiers import TrackerStatus, TrackerTiers
from txbittorrent.core.magnet import Magnet
from txbittorrent.state import TorrentState
from txbittorrent.swarm.peerstate import PeerInfo

if TYPE_CHECKING:
    from txbittorrent.running import RunningTorrent
    from txbittorrent.source import TorrentSource
    from txbittorrent.storage.data import TorrentData

__all__ = ["TorrentAccessors", "FileInfo"]


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One file of a torrent as ``Torrent.files()`` shows it."""

    index: int
    path: str
    """Relative to ``basedir``, with the OS's separator."""
    length: int
    priority: int


class TorrentAccessors:
    """The Perl API's accessors, over what a ``Torrent`` composes."""

    source: TorrentSource
    _data: TorrentData | None
    _run: RunningTorrent | None
    _state: TorrentState
    _peer_id: bytes | None
    _port: int
    _uploaded_before: int
    _downloaded_before: int
    _trackers: list[list[str]]
    rng: random.Random

    def make_peer_id(self) -> bytes:
        raise NotImplementedError

    def _require_data(self) -> TorrentData:
        raise NotImplementedError

    # -- accessors -----------------------------------------------------------------

    @property
    def infohash(self) -> bytes:
        return self.source.info_hash

    info_hash = infohash

    @property
    def name(self) -> str:
        """The torrent's name; before the metadata, the magnet's ``dn`` or the
        info hash in hexadecimal."""
        if self._data is not None:
            return self._data.metainfo.name
        return self.source.display_name or self.infohash.hex()

    @property
    def size(self) -> int:
        """Bytes in the torrent (0 while the metadata is unknown)."""
        return self._data.metainfo.total_length if self._data is not None else 0

    @property
    def piece_length(self) -> int:
        return self._data.metainfo.piece_length if self._data is not None else 0

    @property
    def piece_count(self) -> int:
        return self._data.metainfo.piece_count if self._data is not None else 0

    @property
    def private(self) -> bool:
        return self._data.metainfo.private if self._data is not None else False

    @property
    def magnet(self) -> Magnet:
        return self.source.magnet()

    @property
    def peerid(self) -> bytes:
        """Our peer id (made by ``make_peer_id`` on first use)."""
        if self._peer_id is None:
            self._peer_id = self.make_peer_id()
        return self._peer_id

    @property
    def peer_id(self) -> bytes:
        return self.peerid

    @property
    def port(self) -> int:
        """The listening port (the real one once started)."""
        if self._run is not None and self._run.session.port is not None:
            return self._run.session.port
        return self._port

    @property
    def state(self) -> TorrentState:
        """What the torrent is doing; equal to its Perl name too ("active",
        "paused", "stopped"): see ``state.TorrentState``."""
        return self._state

    @property
    def uploaded(self) -> int:
        """Payload bytes sent to peers since this object was made."""
        live = self._run.swarm.uploaded if self._run is not None else 0
        return self._uploaded_before + live

    @property
    def downloaded(self) -> int:
        """Payload bytes received from peers (verified or not) since this object was made."""
        live = self._run.swarm.downloaded if self._run is not None else 0
        return self._downloaded_before + live

    @property
    def download_rate(self) -> float:
        return self._run.swarm.download_rate if self._run is not None else 0.0

    @property
    def upload_rate(self) -> float:
        return self._run.swarm.upload_rate if self._run is not None else 0.0

    def peers(self) -> list[PeerInfo]:
        """The connected peers (address, client, flags, rates, progress...)."""
        return self._run.swarm.peers() if self._run is not None else []

    # -- progress (the Completion model's figures) -------------------------------------

    @property
    def bitfield(self) -> Bitfield:
        """A copy of the set of verified pieces."""
        return self._data.completion.have.copy() if self._data is not None else Bitfield(0)

    @property
    def wanted(self) -> Bitfield:
        """Pieces not verified yet that belong to a file of priority > 0."""
        return self._data.completion.wanted() if self._data is not None else Bitfield(0)

    @property
    def complete(self) -> bool:
        """Every wanted piece is verified (never before the metadata)."""
        return self._data is not None and self._data.completion.complete

    @property
    def seed(self) -> bool:
        """Every piece is verified."""
        return self._data is not None and self._data.completion.seed

    @property
    def left(self) -> int:
        """Bytes of the torrent not verified yet (BEP 3's ``left``)."""
        return self._data.completion.left if self._data is not None else 0

    @property
    def wanted_size(self) -> int:
        """Bytes in pieces that belong to a wanted file (the download's size)."""
        return self._data.completion.wanted_size if self._data is not None else 0

    @property
    def left_wanted(self) -> int:
        """Bytes of wanted pieces not verified yet."""
        return self._data.completion.left_wanted if self._data is not None else 0

    @property
    def priorities(self) -> tuple[int, ...]:
        return self._data.completion.file_priorities if self._data is not None else ()

    def files(self) -> list[FileInfo]:
        """The torrent's files (pad files left out), with their priorities
        (none before the metadata)."""
        if self._data is None:
            return []
        priorities = self.priorities
        return [
            FileInfo(i, os.path.join(*f.path), f.length, priorities[i])
            for i, f in enumerate(self._data.metainfo.files)
            if not f.pad
        ]

    def trackers(self) -> tuple[tuple[TrackerStatus, ...], ...]:
        """The trackers as BEP 12 tiers, each URL with its status (complete,
        incomplete, failures, peers, last error, next announce...)."""
        if self._run is not None:
            return self._run.announcer.trackers()
        tiers = TrackerTiers(self._trackers, self.rng)
        return tuple(tuple(tiers.status(url) for url in tier) for tier in tiers.tiers)

    def info_bytes(self) -> bytes | None:
        """The raw info dictionary, exactly as hashed (None before the metadata)."""
        return self._data.metainfo.info_bytes if self._data is not None else None

    def piece_cache(self) -> dict[int, int]:
        """Where pieces held in the part file live: pass it back as ``piece_cache=``."""
        return self._data.storage.piece_cache() if self._data is not None else {}

    def path_of(self, file_index: int) -> str:
        return self._require_data().storage.file_path(file_index)
