"""The tracker's swarms in Redis, shared by several tracker processes.

Theory of operation
-------------------
``RedisSwarms(state, url, rng=...)`` answers announces and scrapes like
``TrackerState`` does, but keeps the swarms and the counters in a Redis
server (layout and scripts: ``core.tracker.redisform``), so every tracker
process that uses the same server gives the same peers and counts.  The
``TrackerState`` stays the local rules (allow-list, ``numwant`` caps,
intervals, ``tracker id``, ``peer_timeout``); its own swarms stay empty.
Every method returns a ``Deferred``; a ``RequestRefused`` arrives as its
failure.  The constructor opens nothing; ``start()`` connects (txredisapi
reconnects by itself if the server goes away; commands then wait, and a
reply that takes longer than ``reply_timeout`` fails, and so does a command
waiting longer for a connection, given a ``clock``); ``stop()``
disconnects and fires once the connection is closed.  ``upkeep``
(``tracker.redisupkeep.RedisUpkeep``) is what no single announce does: the
periodic sweep (``expire``), the totals, paging the index for the stats
API, and the recorder's journal.

Decisions
---------
* txredisapi, not redis-py: it is a Twisted protocol over the reactor the
  program already runs; redis-py's asyncio client would need the asyncio
  reactor (``Deferred.fromFuture``), and its blocking client a thread per
  request.
* Replies are bytes (no charset, no number conversion): members and info
  hashes are binary.
* Private mode (per-user limits and accounting) is not supported here: its
  state is per process.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed

from txbittorrent.core.tracker.announce import ScrapeStats
from txbittorrent.core.tracker.redisform import (
    ANNOUNCE_SCRIPT,
    DEFAULT_PREFIX,
    SCRAPE_SCRIPT,
    announce_call,
    announce_result,
    parse_redis_url,
    scrape_call,
    scrape_result,
    wanted_peers,
)
from txbittorrent.errors import TxBitTorrentError
from txbittorrent.tracker.redisupkeep import RedisUpkeep
from txbittorrent.core.tracker.swarms import (
    MAX_FULL_SCRAPE,
    Announce,
    AnnounceResult,
    RequestRefused,
    Sampler,
    TrackerState,
)

__all__ = ["RedisSwarms", "REPLY_TIMEOUT"]

REPLY_TIMEOUT = 5
"""Seconds a Redis reply may take before the request fails."""


def _connect(url: str, reply_timeout: int) -> Any:
    try:
        import txredisapi
    except ImportError:
        raise TxBitTorrentError(
            "Redis needs txredisapi: pip install 'txbittorrent[redis]'") from None

    address = parse_redis_url(url)
    return txredisapi.lazyConnection(
        address.host, address.port, dbid=address.db, password=address.password,
        reconnect=True, charset=None, convertNumbers=False, replyTimeout=reply_timeout,
    )


class RedisSwarms:
    """Announce, scrape and sweep against a Redis server (see the module docstring)."""

    def __init__(
        self,
        state: TrackerState,
        url: str,
        *,
        rng: Sampler,
        prefix: str = DEFAULT_PREFIX,
        reply_timeout: int = REPLY_TIMEOUT,
        connect: Callable[[str, int], Any] = _connect,
        clock: Any = None,
    ) -> None:
        parse_redis_url(url)  # fail early on a bad URL
        self.state = state
        self.url = url
        self.prefix = prefix
        self._rng = rng
        self.reply_timeout = reply_timeout
        self._connect = connect
        self._client: Any = None
        self._clock = clock
        self.upkeep = RedisUpkeep(self)
        """The sweep, totals, paging and the recorder's journal."""

    def _call(self, d: Deferred[Any]) -> Deferred[Any]:
        """``d`` failing after ``reply_timeout`` seconds on ``clock`` (if one was given):
        a command waiting for a lost connection does not hang its request."""
        if self._clock is not None:
            d.addTimeout(self.reply_timeout, self._clock)
        return d

    def start(self) -> None:
        """Connect (lazily: commands wait for the connection)."""
        if self._client is None:
            self._client = self._connect(self.url, self.reply_timeout)
            self.upkeep.started()

    def stop(self) -> Deferred[None]:
        """Disconnect; fire once the connection is closed."""
        client, self._client = self._client, None
        if client is None:
            return succeed(None)
        d: Deferred[Any] = client.disconnect()
        return d.addCallback(lambda _: None)

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("RedisSwarms is not started")
        return self._client

    def announce(
        self, request: Announce, now: float, *, ipv6: bool | None = None
    ) -> Deferred[AnnounceResult]:
        """Record ``request`` at ``now`` in Redis and choose peers for it."""
        try:
            keys, args = announce_call(self.state, self.prefix, request, now, ipv6)
        except RequestRefused as e:
            return fail(e)
        numwant = wanted_peers(self.state, request)
        d = self._call(self.client.eval(ANNOUNCE_SCRIPT, keys, args))
        return d.addCallback(
            lambda reply: announce_result(self.state, reply, self._rng, numwant, now)
        )

    def scrape(self, info_hashes: Sequence[bytes], now: float) -> Deferred[dict[bytes, ScrapeStats]]:
        """Counts of each info hash asked about that some tracker knows (or allows)."""
        hashes = list(dict.fromkeys(info_hashes))
        if not hashes:
            return succeed({})
        keys, args = scrape_call(self.prefix, hashes, now - self.state.peer_timeout)
        d = self._call(self.client.eval(SCRAPE_SCRIPT, keys, args))
        return d.addCallback(lambda reply: scrape_result(self.state, hashes, reply))

    def scrape_all(
        self, now: float, limit: int = MAX_FULL_SCRAPE
    ) -> Deferred[dict[bytes, ScrapeStats]]:
        """Counts of the ``limit`` most recently announced swarms (a full scrape)."""
        d = self._call(self.client.zrevrange(f"{self.prefix}:swarms", 0, limit - 1))
        return d.addCallback(lambda hashes: self.scrape(list(hashes), now))

    def expire(self, now: float) -> Deferred[int]:
        """The periodic sweep (``RedisUpkeep.expire``): forget swarms with no live
        peer and no completed download, refresh the totals; at most once per
        ``upkeep.gap`` seconds over every process.  Fires with the swarms removed.

        Peers expire at each announce to their swarm; a swarm nobody announces
        to loses its keys by TTL."""
        return self.upkeep.expire(now)

    def counters(self) -> Deferred[dict[str, int]]:
        """The shared counters (``announces``)."""
        d: Deferred[Any] = self.client.hgetall(f"{self.prefix}:counters")
        return d.addCallback(
            lambda found: {
                (k.decode() if isinstance(k, bytes) else str(k)): int(v)
                for k, v in dict(found).items()
            }
        )

    def completed(self, info_hash: bytes) -> Deferred[int]:
        """Completed downloads of ``info_hash`` over every process."""
        d: Deferred[Any] = self.client.hget(f"{self.prefix}:completed", info_hash)
        return d.addCallback(lambda n: int(n or 0))
