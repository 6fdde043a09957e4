"""Upkeep of the tracker's swarms in Redis: the sweep, the totals, the list, the journal.

Theory of operation
-------------------
``RedisUpkeep(swarms)`` does what no single announce does for the swarms a
``RedisSwarms`` keeps in Redis (layout: ``core.tracker.redisform``):

* ``sweep(now)`` walks the swarm index (``<p>:swarms``, by last announce)
  in batches of ``batch`` swarms, one Lua script each (Redis is never held
  for long): a swarm with no live peer and no completed download leaves the
  index (its keys are deleted; their TTL would have removed them soon);
  the live seeders and leechers of the others are summed into
  ``<p>:totals`` (with the time), which ``/metrics`` and ``/api/status``
  read.  The totals are a snapshot taken over the sweep's batches, not an
  atomic count.  At ``max_total_peers`` live peers or more the sweep sets
  ``<p>:peers-full`` (announces then record no new peer) until a sweep
  finds room.  ``expire(now)`` is the periodic entry point: it sweeps
  only if it takes the lock ``<p>:sweep-lock`` (``SET NX`` for ``gap``
  seconds), so N tracker processes sweep no more often than one would.
* ``totals(now)`` reads ``<p>:totals``, sweeping first (under the lock) if
  they are older than ``totals_age``; the swarm count is always live
  (``ZCARD``).
* ``tracked()``, ``recent(offset, limit)`` (info hashes, most recently
  announced first: ``ZREVRANGE``, bounded by ``limit``) and
  ``tracked_among(info_hashes)`` (``ZMSCORE`` in chunks) page the index.
* ``drain(ttl)`` takes the recorder's journal atomically: the new swarms
  (``<p>:journal:seen``: info hash -> first announce time) and the
  completions (``<p>:journal:completed``: info hash -> count) written by
  announces since the last drain, and emptied in the same script, so each
  completion reaches exactly one process's recorder (counted once over
  all processes).  ``record(ttl)`` (the recorder's start; sent as soon as
  the connection exists, before this process's listeners open) and each
  drain set ``<p>:recording`` for ``ttl`` seconds; announces journal only
  while it exists (no recorder, no journal), and at most ``max_swarms``
  info hashes per journal hash.

Nothing here owns a timer: the tracker service calls ``expire`` from its
sweep, the recorder calls ``drain``, the stats API the readers.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.logger import Logger

if TYPE_CHECKING:
    from txbittorrent.tracker.redisswarms import RedisSwarms

__all__ = [
    "DRAIN_SCRIPT", "SWEEP_BATCH", "SWEEP_GAP", "SWEEP_SCRIPT", "TOTALS_AGE", "Journal",
    "RedisUpkeep", "SwarmTotals",
]

_log = Logger()

SWEEP_BATCH = 500
"""Swarms per sweep script (each a few milliseconds of Redis time)."""
SWEEP_GAP = 30.0
"""Least seconds between two sweeps over all the processes sharing a Redis."""
TOTALS_AGE = 60.0
"""Totals older than this are refreshed (a sweep) before they are read."""
_ZMSCORE_CHUNK = 1000


@dataclass(frozen=True, slots=True)
class SwarmTotals:
    """The swarms in Redis: ``swarms`` live, peers as of the last sweep at ``at``."""

    swarms: int
    seeders: int
    leechers: int
    at: float | None


@dataclass(frozen=True, slots=True)
class Journal:
    """What announces recorded for the recorder since the last drain."""

    seen: dict[bytes, float]
    completed: dict[bytes, int]


def _pairs(flat: Sequence[Any]) -> list[tuple[bytes, bytes]]:
    items = list(flat or [])
    return list(zip(items[0::2], items[1::2]))


class RedisUpkeep:
    """Sweep, totals, paging and the recorder's journal (see the module docstring)."""

    def __init__(
        self,
        swarms: RedisSwarms,
        *,
        batch: int = SWEEP_BATCH,
        gap: float = SWEEP_GAP,
        totals_age: float = TOTALS_AGE,
    ) -> None:
        if batch < 1 or gap <= 0:
            raise ValueError("batch and gap must be positive")
        self.swarms = swarms
        self.batch = batch
        self.gap = gap
        self.totals_age = totals_age
        self._token = uuid.uuid4().hex
        self.recording_ttl: float | None = None
        """Set by ``record``: this process drains the journal."""

    def _key(self, name: str) -> str:
        return f"{self.swarms.prefix}:{name}"

    # -- the sweep -------------------------------------------------------------

    def sweep(self, now: float) -> Deferred[int]:
        """Trim the index and write the totals now; fires with the swarms removed."""
        return Deferred.fromCoroutine(self._sweep(now))

    async def _sweep(self, now: float) -> int:
        swarms = self.swarms
        cutoff = "%.6f" % (now - swarms.state.peer_timeout)
        keys = [self._key("swarms"), self._key("completed")]
        start = removed = seeders = leechers = 0
        while True:
            reply = await swarms._call(swarms.client.eval(
                SWEEP_SCRIPT, keys, [cutoff, str(start), str(self.batch), swarms.prefix]))
            scanned, gone, s, n = (int(x) for x in reply)
            removed, seeders, leechers = removed + gone, seeders + s, leechers + n
            if scanned < self.batch:
                break
            start += scanned - gone
        count = await swarms._call(swarms.client.zcard(keys[0]))
        await swarms._call(swarms.client.hmset(self._key("totals"), {
            "swarms": int(count), "seeders": seeders, "leechers": leechers,
            "at": "%.6f" % now}))
        full = self._key("peers-full")
        if seeders + leechers >= swarms.state.max_total_peers:
            # kept until a sweep finds room (three gaps: a stalled sweep lets it lapse)
            await swarms._call(swarms.client.set(full, "1", pexpire=int(self.gap * 3000)))
        else:
            await swarms._call(swarms.client.delete(full))
        return removed

    def expire(self, now: float) -> Deferred[int]:
        """``sweep`` if no process swept within ``gap`` seconds (a lock); else 0."""
        swarms = self.swarms
        d = swarms._call(swarms.client.set(
            self._key("sweep-lock"), self._token, pexpire=max(1, int(self.gap * 1000)),
            only_if_not_exists=True))

        def locked(taken: Any) -> Deferred[int] | int:
            return self.sweep(now) if taken else 0

        return d.addCallback(locked)

    # -- readers ---------------------------------------------------------------

    def totals(self, now: float) -> Deferred[SwarmTotals]:
        """The totals, refreshed first (under the lock) if older than ``totals_age``."""
        return Deferred.fromCoroutine(self._totals(now))

    async def _totals(self, now: float) -> SwarmTotals:
        swarms = self.swarms
        found = await self._read_totals()
        at = found.get(b"at")
        if at is None or now - float(at) > self.totals_age:
            await self.expire(now)
            found = await self._read_totals()
        count = await swarms._call(swarms.client.zcard(self._key("swarms")))
        at = found.get(b"at")
        return SwarmTotals(int(count), int(found.get(b"seeders", 0)),
                           int(found.get(b"leechers", 0)), None if at is None else float(at))

    async def _read_totals(self) -> dict[bytes, bytes]:
        swarms = self.swarms
        found = await swarms._call(swarms.client.hgetall(self._key("totals")))
        return {(k if isinstance(k, bytes) else str(k).encode()): v
                for k, v in dict(found or {}).items()}

    def tracked(self) -> Deferred[int]:
        """How many swarms the index holds."""
        d = self.swarms._call(self.swarms.client.zcard(self._key("swarms")))
        return d.addCallback(int)

    def recent(self, offset: int, limit: int) -> Deferred[list[bytes]]:
        """Up to ``limit`` info hashes from ``offset``, most recently announced first."""
        if limit <= 0:
            return succeed([])
        d = self.swarms._call(self.swarms.client.zrevrange(
            self._key("swarms"), offset, offset + limit - 1))
        return d.addCallback(list)

    def tracked_among(self, info_hashes: Sequence[bytes]) -> Deferred[set[bytes]]:
        """Which of ``info_hashes`` the index holds."""
        return Deferred.fromCoroutine(self._among(list(info_hashes)))

    async def _among(self, hashes: list[bytes]) -> set[bytes]:
        found: set[bytes] = set()
        for i in range(0, len(hashes), _ZMSCORE_CHUNK):
            chunk = hashes[i:i + _ZMSCORE_CHUNK]
            scores = await self.swarms._call(self.swarms.client.execute_command(
                "ZMSCORE", self._key("swarms"), *chunk))
            found.update(h for h, score in zip(chunk, scores) if score is not None)
        return found

    # -- the recorder's journal --------------------------------------------------

    def record(self, ttl: float) -> None:
        """A recorder will drain: make announces journal from now on (or from the
        connection, if ``swarms`` is not started yet, before any announce of
        this process), for ``ttl`` seconds at a time, renewed by each drain."""
        self.recording_ttl = ttl
        if self.swarms._client is not None:
            self._mark()

    def started(self) -> None:
        """Called by ``RedisSwarms.start`` once its client exists."""
        if self.recording_ttl is not None:
            self._mark()

    def _mark(self) -> None:
        assert self.recording_ttl is not None
        d = self.swarms._call(self.swarms.client.set(
            self._key("recording"), "1", pexpire=max(1, int(self.recording_ttl * 1000))))
        d.addErrback(lambda f: _log.failure("Redis: marking the journal as drained", f))

    def drain(self, ttl: float) -> Deferred[Journal]:
        """Take (and empty) the journal; keep announces journaling for ``ttl`` seconds."""
        keys = [self._key("journal:seen"), self._key("journal:completed"),
                self._key("recording")]
        d = self.swarms._call(self.swarms.client.eval(
            DRAIN_SCRIPT, keys, [str(max(1, int(ttl * 1000)))]))

        def read(reply: Sequence[Any]) -> Journal:
            seen, completed = reply
            return Journal({ih: float(t) for ih, t in _pairs(seen)},
                           {ih: int(n) for ih, n in _pairs(completed)})

        return d.addCallback(read)


def _hex_lua() -> str:
    return ("string.gsub(ih, '.', function(c) return string.format('%02x', string.byte(c))"
            " end)")


SWEEP_SCRIPT = """
-- KEYS: 1 swarms 2 completed
-- ARGV: 1 cutoff 2 start 3 count 4 prefix
local cutoff, first = '(' .. ARGV[1], tonumber(ARGV[2])
local rows = redis.call('ZRANGE', KEYS[1], first, first + tonumber(ARGV[3]) - 1)
local removed, seeders, leechers = 0, 0, 0
for _, ih in ipairs(rows) do
  local base = ARGV[4] .. ':' .. HEXOF_IH .. ':'
  local s = redis.call('ZCOUNT', base .. '4:seeders', cutoff, '+inf')
            + redis.call('ZCOUNT', base .. '6:seeders', cutoff, '+inf')
  local l = redis.call('ZCOUNT', base .. '4:leechers', cutoff, '+inf')
            + redis.call('ZCOUNT', base .. '6:leechers', cutoff, '+inf')
  if s + l == 0 and redis.call('HEXISTS', KEYS[2], ih) == 0 then
    redis.call('DEL', base .. '4:seeders', base .. '4:leechers', base .. '6:seeders',
               base .. '6:leechers', base .. 'ids', base .. 'addrs')
    redis.call('ZREM', KEYS[1], ih)
    removed = removed + 1
  else
    seeders, leechers = seeders + s, leechers + l
  end
end
return {#rows, removed, seeders, leechers}
""".replace("HEXOF_IH", _hex_lua())
"""One batch of the sweep: ``{scanned, removed, seeders, leechers}``."""

DRAIN_SCRIPT = """
-- KEYS: 1 journal-seen 2 journal-completed 3 recording; ARGV: 1 ttl (ms)
redis.call('SET', KEYS[3], '1', 'PX', ARGV[1])
local seen = redis.call('HGETALL', KEYS[1])
local done = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
return {seen, done}
"""
"""Take the journal and keep announces journaling: ``{seen pairs, completed pairs}``."""
