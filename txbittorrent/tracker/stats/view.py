"""Read-only figures about a running tracker, for the API and /metrics.

Theory of operation
-------------------
``SwarmView`` reads a ``TrackerState`` (and optionally a ``TrackerDB``)
without changing either: per-swarm seeders, leechers and completed counts,
totals, and the list of tracked info hashes for paging.
``TrackerState`` has no public way to list its info hashes, so the one
read of its private ``_swarms`` is here (and only here); once the registry
grows a public iterator this is the one place to change.

``resident_memory()`` is the process's resident set size from
``/proc/self/statm`` (Linux), or the peak RSS from ``resource.getrusage``
elsewhere, or None.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from txbittorrent.core.tracker.registry import TrackerState
from txbittorrent.tracker.db import TrackerDB

__all__ = ["SwarmSummary", "SwarmView", "Totals", "resident_memory"]


@dataclass(frozen=True, slots=True)
class SwarmSummary:
    """One tracked torrent as the API shows it."""

    info_hash: bytes
    seeders: int
    leechers: int
    completed: int
    first_seen: float | None
    whitelisted: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "info_hash": self.info_hash.hex(),
            "seeders": self.seeders,
            "leechers": self.leechers,
            "completed": self.completed,
            "first_seen": self.first_seen,
            "whitelisted": self.whitelisted,
        }


@dataclass(frozen=True, slots=True)
class Totals:
    swarms: int
    seeders: int
    leechers: int


class SwarmView:
    """What the API shows of ``state`` (and ``db``, when there is one)."""

    def __init__(self, state: TrackerState, db: TrackerDB | None = None) -> None:
        self.state = state
        self.db = db

    def _swarms(self) -> dict[bytes, Any]:
        return self.state._swarms  # see the module docstring

    def info_hashes(self) -> list[bytes]:
        """Every torrent with a swarm in memory or on the whitelist, sorted."""
        known = set(self._swarms())
        if self.db is not None:
            known |= self.db.whitelist()
        return sorted(known)

    def summary(self, info_hash: bytes) -> SwarmSummary | None:
        """The torrent's figures, or None if neither the state nor the db knows it.

        ``completed`` is the database's count when it has the torrent (it
        survives restarts), else the swarm's since the tracker started."""
        swarm = self._swarms().get(info_hash)
        row = self.db.torrent(info_hash) if self.db is not None else None
        if swarm is None and row is None:
            return None
        seeders = leechers = completed = 0
        if swarm is not None:
            seeders = swarm.seeders
            leechers = len(swarm.peers) - seeders
            completed = swarm.downloaded
        if row is not None:
            completed = row.completed
        return SwarmSummary(
            info_hash, seeders, leechers, completed,
            row.first_seen if row is not None else None,
            row.whitelisted if row is not None else False,
        )

    def page(self, offset: int, limit: int) -> tuple[int, list[SwarmSummary]]:
        """(how many torrents in all, the summaries of ``limit`` from ``offset``)."""
        hashes = self.info_hashes()
        chosen = (self.summary(h) for h in hashes[offset : offset + limit])
        return len(hashes), [s for s in chosen if s is not None]

    def totals(self) -> Totals:
        seeders = leechers = 0
        swarms = self._swarms()
        for swarm in swarms.values():
            seeders += swarm.seeders
            leechers += len(swarm.peers) - swarm.seeders
        return Totals(len(swarms), seeders, leechers)

    def each(self) -> Iterator[SwarmSummary]:
        for info_hash in self.info_hashes():
            summary = self.summary(info_hash)
            if summary is not None:
                yield summary


def resident_memory() -> int | None:
    """Bytes of resident memory of this process (see the module docstring)."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource
    except ImportError:
        return None
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * 1024
