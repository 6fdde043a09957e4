"""Where the stats API and ``/metrics`` read the swarms: in memory or in Redis.

Theory of operation
-------------------
A ``SwarmSource`` answers, with Deferreds, the few questions the stats
views ask of the swarms: how many are tracked (``tracked``), which ones
(``recent(offset, limit)``: most recently announced first, at most
``limit``), which of some info hashes are tracked (``tracked_among``),
their counts (``counts``) and the totals (``totals``).  Each fact has one
owner: ``MemorySource`` reads this process's ``TrackerState`` (every
answer already fired; nothing expires as it reads), ``RedisSource`` reads
the Redis every tracker process shares (``RedisSwarms`` and its
``RedisUpkeep``): counts live (peers newer than ``peer_timeout``), totals
as of the last sweep (at most ``RedisUpkeep.totals_age`` old; refreshed
first when older), the swarm count live.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from twisted.internet.defer import Deferred, succeed

from txbittorrent.core.tracker.announce import ScrapeStats
from txbittorrent.core.tracker.registry import TrackerState
from txbittorrent.tracker.redisswarms import RedisSwarms
from txbittorrent.tracker.redisupkeep import SwarmTotals

__all__ = ["MemorySource", "RedisSource", "SwarmSource", "Totals"]


@dataclass(frozen=True, slots=True)
class Totals:
    """Tracked swarms and their peers; ``at``: when the peers were counted (None: now)."""

    swarms: int
    seeders: int
    leechers: int
    at: float | None = None


class SwarmSource(Protocol):
    """What the stats views read of the swarms (see the module docstring)."""

    def tracked(self) -> Deferred[int]: ...

    def recent(self, offset: int, limit: int) -> Deferred[list[bytes]]: ...

    def tracked_among(self, info_hashes: Sequence[bytes]) -> Deferred[set[bytes]]: ...

    def counts(self, info_hashes: Sequence[bytes]) -> Deferred[dict[bytes, ScrapeStats]]: ...

    def totals(self) -> Deferred[Totals]: ...


class MemorySource:
    """The swarms of this process's ``TrackerState``."""

    def __init__(self, state: TrackerState) -> None:
        self.state = state

    def tracked(self) -> Deferred[int]:
        return succeed(len(self.state))

    def recent(self, offset: int, limit: int) -> Deferred[list[bytes]]:
        hashes = self.state.info_hashes()  # least recently announced first
        end = len(hashes) - offset
        return succeed(hashes[max(0, end - limit):max(0, end)][::-1])

    def tracked_among(self, info_hashes: Sequence[bytes]) -> Deferred[set[bytes]]:
        return succeed({h for h in info_hashes if self.state.swarm_stats(h) is not None})

    def counts(self, info_hashes: Sequence[bytes]) -> Deferred[dict[bytes, ScrapeStats]]:
        found = {}
        for info_hash in info_hashes:
            stats = self.state.swarm_stats(info_hash)
            if stats is not None:
                found[info_hash] = stats
        return succeed(found)

    def totals(self) -> Deferred[Totals]:
        seeders = 0
        hashes = self.state.info_hashes()
        for info_hash in hashes:
            stats = self.state.swarm_stats(info_hash)
            if stats is not None:
                seeders += stats.complete
        return succeed(Totals(len(hashes), seeders, self.state.peer_count - seeders))


class RedisSource:
    """The swarms every tracker process shares in Redis."""

    def __init__(self, swarms: RedisSwarms, clock: Any) -> None:
        self.swarms = swarms
        self.clock = clock

    def tracked(self) -> Deferred[int]:
        return self.swarms.upkeep.tracked()

    def recent(self, offset: int, limit: int) -> Deferred[list[bytes]]:
        return self.swarms.upkeep.recent(offset, limit)

    def tracked_among(self, info_hashes: Sequence[bytes]) -> Deferred[set[bytes]]:
        return self.swarms.upkeep.tracked_among(info_hashes)

    def counts(self, info_hashes: Sequence[bytes]) -> Deferred[dict[bytes, ScrapeStats]]:
        return self.swarms.scrape(info_hashes, self.clock.seconds())

    def totals(self) -> Deferred[Totals]:
        def convert(found: SwarmTotals) -> Totals:
            return Totals(found.swarms, found.seeders, found.leechers, found.at)

        return self.swarms.upkeep.totals(self.clock.seconds()).addCallback(convert)
