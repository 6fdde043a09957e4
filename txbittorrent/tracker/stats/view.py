"""Read-only figures about a running tracker, for the API and /metrics.

Theory of operation
-------------------
``SwarmView`` reads a ``TrackerState`` (and optionally a ``TrackerDB``)
without changing either (``info_hashes``, ``swarm_stats``, ``peer_count``:
no expiry runs): per-swarm seeders, leechers and completed counts, totals,
and the list of tracked info hashes for paging.  Totals and pages cost
O(swarms) per call: fine for an admin's API and a scrape every few seconds.

``resident_memory()`` is the process's resident set size from
``/proc/self/statm`` (Linux), or the peak RSS from ``resource.getrusage``
elsewhere, or None.
"""

from __future__ import annotations

import os
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

    def info_hashes(self) -> list[bytes]:
        """Every torrent with a swarm in memory or on the whitelist, sorted."""
        known = set(self.state.info_hashes())
        if self.db is not None:
            known |= self.db.whitelist()
        return sorted(known)

    def summary(self, info_hash: bytes) -> SwarmSummary | None:
        """The torrent's figures, or None if neither the state nor the db knows it.

        ``completed`` is the database's count when it has the torrent (it
        survives restarts), else the swarm's since the tracker started."""
        swarm = self.state.swarm_stats(info_hash)
        row = self.db.torrent(info_hash) if self.db is not None else None
        if swarm is None and row is None:
            return None
        seeders = leechers = completed = 0
        if swarm is not None:
            seeders, leechers, completed = swarm.complete, swarm.incomplete, swarm.downloaded
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
        seeders = 0
        hashes = self.state.info_hashes()
        for info_hash in hashes:
            swarm = self.state.swarm_stats(info_hash)
            if swarm is not None:
                seeders += swarm.complete
        return Totals(len(hashes), seeders, self.state.peer_count - seeders)


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
