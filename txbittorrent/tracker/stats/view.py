"""Read-only figures about a running tracker, for the API and /metrics.

Theory of operation
-------------------
``SwarmView(source, db)`` reads the swarms through a ``SwarmSource``
(``sources``: this process's ``TrackerState``, or the Redis every tracker
process shares; a bare ``TrackerState`` is wrapped in a ``MemorySource``)
and the torrents' stored rows through an optional ``TrackerDB``, changing
neither.  Every reader returns a Deferred.

The torrent list is the tracked swarms, most recently announced first,
then the whitelisted torrents that have no swarm, by info hash; a page
asks the source for at most ``limit`` swarms (``ZREVRANGE`` in Redis, no
scan), and the whitelist (the database's, in memory) is checked against
the source in one call.  Per-swarm counts come from the source; the
completed count is the database's when it has the torrent (it survives
restarts and, with Redis, counts every process's completions once), else
the swarm's.

``resident_memory()`` is the process's resident set size from
``/proc/self/statm`` (Linux), or the peak RSS from ``resource.getrusage``
elsewhere, or None.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred

from txbittorrent.core.tracker.announce import ScrapeStats
from txbittorrent.core.tracker.registry import TrackerState
from txbittorrent.tracker.db import TrackerDB
from txbittorrent.tracker.stats.sources import MemorySource, SwarmSource, Totals

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


class SwarmView:
    """What the API shows of the swarms (and ``db``, when there is one)."""

    def __init__(self, source: SwarmSource | TrackerState, db: TrackerDB | None = None) -> None:
        self.source: SwarmSource = (
            MemorySource(source) if isinstance(source, TrackerState) else source)
        self.db = db

    def _summary(self, info_hash: bytes, swarm: ScrapeStats | None) -> SwarmSummary | None:
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

    def summary(self, info_hash: bytes) -> Deferred[SwarmSummary | None]:
        """The torrent's figures, or None if neither the swarms nor the db know it."""
        d = self.source.counts([info_hash])
        return d.addCallback(lambda found: self._summary(info_hash, found.get(info_hash)))

    def page(self, offset: int, limit: int) -> Deferred[tuple[int, list[SwarmSummary]]]:
        """(how many torrents in all, the summaries of at most ``limit`` from ``offset``)."""
        return Deferred.fromCoroutine(self._page(offset, limit))

    async def _page(self, offset: int, limit: int) -> tuple[int, list[SwarmSummary]]:
        tracked = await self.source.tracked()
        listed = sorted(self.db.whitelist()) if self.db is not None else []
        known = await self.source.tracked_among(listed) if listed else set()
        idle = [h for h in listed if h not in known]
        hashes = await self.source.recent(offset, limit) if offset < tracked else []
        if len(hashes) < limit:
            start = max(0, offset - tracked)
            hashes += [h for h in idle[start:start + limit - len(hashes)] if h not in hashes]
        counts = await self.source.counts(hashes) if hashes else {}
        chosen = (self._summary(h, counts.get(h)) for h in hashes)
        return tracked + len(idle), [s for s in chosen if s is not None]

    def totals(self) -> Deferred[Totals]:
        """Tracked swarms, seeders and leechers (see ``sources`` for how fresh)."""
        return self.source.totals()


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
