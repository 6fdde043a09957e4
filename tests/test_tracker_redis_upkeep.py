"""Tests for the Redis swarms' bounds and upkeep (max_swarms in the announce script,
txbittorrent.tracker.redisupkeep: the sweep, totals, paging, the recorder's journal)
against a real redis-server on 127.0.0.1 (skipped without redis-server or txredisapi)."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred

from tests.redisserver import RedisCase
from txbittorrent.core.tracker.announce import AnnounceEvent, ScrapeStats
from txbittorrent.core.tracker.swarms import Announce, RequestRefused, TrackerState

INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")


def fake(n: int) -> bytes:
    """The n-th fake info hash."""
    return n.to_bytes(20, "big")


def announce(peer: int, info_hash: bytes = INFO_HASH, *, left: int = 10, ip: str = "127.0.0.1",
             **changes: Any) -> Announce:
    return Announce(info_hash, b"%020d" % peer, ip, 7000 + peer, left, **changes)


class CapTests(RedisCase):
    """max_swarms holds in Redis: eviction of the least recently announced, or refusal."""

    def test_eviction(self) -> Deferred[None]:
        """Past the cap the oldest swarm goes with its peers and its completed count."""
        return ensureDeferred(self._eviction())

    async def _eviction(self) -> None:
        swarms = self.swarms(max_swarms=3)
        await swarms.announce(announce(1, fake(1), left=0, event=AnnounceEvent.COMPLETED),
                              1000.0)
        for n in (2, 3):
            await swarms.announce(announce(n, fake(n)), 1000.0 + n)
        await swarms.announce(announce(9, fake(1)), 1010.0)  # fake(1) is now the newest
        await swarms.announce(announce(4, fake(4)), 1011.0)  # evicts fake(2)
        client = swarms.client
        self.assertEqual(await client.zcard("txbt:swarms"), 3)
        self.assertEqual(await swarms.scrape([fake(n) for n in (1, 2, 3, 4)], 1012.0), {
            fake(1): ScrapeStats(1, 1, 1), fake(3): ScrapeStats(0, 0, 1),
            fake(4): ScrapeStats(0, 0, 1)})
        self.assertEqual(await client.exists(f"txbt:{fake(2).hex()}:4:leechers"), 0)
        self.assertEqual(await client.exists(f"txbt:{fake(2).hex()}:ids"), 0)
        for n in range(5, 15):
            await swarms.announce(announce(n, fake(n)), 1020.0 + n)
        self.assertEqual(await client.zcard("txbt:swarms"), 3)
        self.assertEqual(await client.hgetall("txbt:completed"), {})  # fake(1) evicted too
        self.assertEqual((await swarms.counters())["evicted"], 11)

    def test_lowered_cap(self) -> Deferred[None]:
        """A cap lowered at a restart is reached over new swarms, 64 evictions at most each."""
        return ensureDeferred(self._lowered())

    async def _lowered(self) -> None:
        before = self.swarms(max_swarms=1000)
        for n in range(200):
            await before.announce(announce(n, fake(n)), 1000.0 + n)
        after = self.swarms(max_swarms=10)
        await after.announce(announce(500, fake(500)), 1500.0)
        self.assertEqual(await after.client.zcard("txbt:swarms"), 201 - 64)
        for n in range(501, 504):
            await after.announce(announce(n, fake(n)), 1500.0 + n)
        self.assertEqual(await after.client.zcard("txbt:swarms"), 10)
        self.assertEqual(await after.upkeep.recent(0, 100),
                         [fake(n) for n in (503, 502, 501, 500, 199, 198, 197, 196, 195, 194)])

    def test_refusal(self) -> Deferred[None]:
        """With evict_swarms=False a new info hash past the cap is refused; known ones go on."""
        return ensureDeferred(self._refusal())

    async def _refusal(self) -> None:
        swarms = self.swarms(max_swarms=2, evict_swarms=False)
        await swarms.announce(announce(1, fake(1)), 1000.0)
        await swarms.announce(announce(2, fake(2)), 1001.0)
        with self.assertRaises(RequestRefused) as caught:
            await swarms.announce(announce(3, fake(3)), 1002.0)
        self.assertEqual(caught.exception.reason, "tracker is full")
        again = await swarms.announce(announce(4, fake(1)), 1003.0)
        self.assertEqual(again.incomplete, 2)
        stopped = await swarms.announce(announce(5, fake(3), event=AnnounceEvent.STOPPED),
                                        1004.0)
        self.assertEqual(stopped.peers, ())
        self.assertEqual(await swarms.client.zcard("txbt:swarms"), 2)

    def test_last_peer_stopping(self) -> Deferred[None]:
        """A swarm whose last peer stops, with no completion, leaves the index at once."""
        return ensureDeferred(self._last())

    async def _last(self) -> None:
        swarms = self.swarms()
        await swarms.announce(announce(1), 1000.0)
        await swarms.announce(announce(1, event=AnnounceEvent.STOPPED), 1001.0)
        self.assertEqual(await swarms.client.zcard("txbt:swarms"), 0)
        self.assertEqual(await swarms.scrape_all(1002.0), {})

    def test_ttl(self) -> Deferred[None]:
        """Every key of a swarm lives peer_timeout (+1 s) after its last announce."""
        return ensureDeferred(self._ttl())

    async def _ttl(self) -> None:
        from txbittorrent.core.tracker.redisform import swarm_keys

        swarms = self.swarms()
        await swarms.announce(announce(1), 1000.0)
        await swarms.announce(announce(2, ip="::1"), 1000.0)
        await swarms.announce(announce(3, left=0, ip="::1"), 1000.0)
        for key in swarm_keys("txbt", INFO_HASH):
            ttl = await swarms.client.ttl(key)
            if await swarms.client.exists(key):
                self.assertTrue(195 <= ttl <= 201, (key, ttl))


class SweepTests(RedisCase):
    """RedisUpkeep.sweep / expire / totals."""

    def test_sweep_and_totals(self) -> Deferred[None]:
        """Idle swarms without completions leave; those with completions stay; totals add up."""
        return ensureDeferred(self._sweep())

    async def _sweep(self) -> None:
        swarms = self.swarms()
        upkeep = swarms.upkeep
        upkeep.batch = 2  # several batches
        await swarms.announce(announce(1, fake(1)), 1000.0)  # idle by 1300, no completion
        await swarms.announce(announce(2, fake(2), left=0, event=AnnounceEvent.COMPLETED),
                              1000.0)  # idle, completed: stays
        for n in range(3, 8):
            await swarms.announce(announce(n, fake(n), left=0 if n % 2 else 5), 1250.0)
        await swarms.announce(announce(8, fake(3)), 1250.0)
        self.assertEqual(await upkeep.sweep(1300.0), 1)
        totals = await upkeep.totals(1300.0)
        self.assertEqual((totals.swarms, totals.seeders, totals.leechers, totals.at),
                         (6, 3, 3, 1300.0))
        self.assertEqual(set(await swarms.scrape_all(1300.0)),
                         {fake(n) for n in range(2, 8)})

    def test_total_peers_cap(self) -> Deferred[None]:
        """At max_total_peers (as the sweep counted) new peers are answered, not recorded."""
        return ensureDeferred(self._total())

    async def _total(self) -> None:
        swarms = self.swarms(max_total_peers=3)
        for n in range(1, 4):
            await swarms.announce(announce(n, fake(n)), 1000.0)
        await swarms.upkeep.sweep(1000.0)
        self.assertEqual(await swarms.client.exists("txbt:peers-full"), 1)
        refused = await swarms.announce(announce(4, fake(1)), 1001.0)
        self.assertEqual(refused.incomplete, 1)  # answered, not recorded
        known = await swarms.announce(announce(1, fake(1), left=0), 1001.0)
        self.assertEqual((known.complete, known.incomplete), (1, 0))  # known peers go on
        await swarms.announce(announce(2, fake(2), event=AnnounceEvent.STOPPED), 1002.0)
        await swarms.upkeep.sweep(1002.0)
        self.assertEqual(await swarms.client.exists("txbt:peers-full"), 0)
        added = await swarms.announce(announce(4, fake(1)), 1003.0)
        self.assertEqual((added.complete, added.incomplete), (1, 1))

    def test_lock(self) -> Deferred[None]:
        """expire sweeps once per gap over every process; totals refresh when too old."""
        return ensureDeferred(self._lock())

    async def _lock(self) -> None:
        one, two = self.swarms(), self.swarms()
        await one.announce(announce(1), 1000.0)
        self.assertEqual(await one.expire(1500.0), 1)
        await two.announce(announce(2, fake(2)), 1500.0)
        await two.announce(announce(3, fake(3), event=AnnounceEvent.STOPPED), 1500.0)
        self.assertEqual(await two.expire(1800.0), 0)  # locked: not swept
        self.assertEqual((await two.upkeep.totals(1500.0)).leechers, 0)  # fresh enough
        await one.client.delete("txbt:sweep-lock")
        totals = await two.upkeep.totals(1600.0)  # older than totals_age: swept first
        self.assertEqual((totals.swarms, totals.leechers, totals.at), (1, 1, 1600.0))


class PagingTests(RedisCase):
    """tracked / recent / tracked_among."""

    def test_recent(self) -> Deferred[None]:
        """Info hashes come most recently announced first, bounded by limit."""
        return ensureDeferred(self._recent())

    async def _recent(self) -> None:
        swarms = self.swarms()
        for n in range(1, 6):
            await swarms.announce(announce(n, fake(n)), 1000.0 + n)
        upkeep = swarms.upkeep
        self.assertEqual(await upkeep.tracked(), 5)
        self.assertEqual(await upkeep.recent(0, 2), [fake(5), fake(4)])
        self.assertEqual(await upkeep.recent(4, 10), [fake(1)])
        self.assertEqual(await upkeep.recent(9, 10), [])
        self.assertEqual(await upkeep.tracked_among([fake(1), fake(9), fake(3)]),
                         {fake(1), fake(3)})
        self.assertEqual(await upkeep.tracked_among([]), set())


class JournalTests(RedisCase):
    """The recorder's journal: counted once over processes, bounded, only while recording."""

    def test_counted_once(self) -> Deferred[None]:
        """Completions through two processes are drained once, by whichever drains first."""
        return ensureDeferred(self._once())

    async def _once(self) -> None:
        one, two = self.swarms(), self.swarms()
        await one.announce(announce(1), 1000.0)
        empty = await one.upkeep.drain(10.0)  # starts the journal
        self.assertEqual((empty.seen, empty.completed), ({}, {}))
        await one.announce(announce(2, left=0, event=AnnounceEvent.COMPLETED), 1001.0)
        await two.announce(announce(1, left=0), 1002.0)  # a known leecher now seeds
        await two.announce(announce(3, fake(3)), 1003.0)
        first = await two.upkeep.drain(10.0)
        self.assertEqual(first.completed, {INFO_HASH: 2})
        self.assertEqual(first.seen, {fake(3): 1003.0})
        second = await one.upkeep.drain(10.0)
        self.assertEqual((second.seen, second.completed), ({}, {}))
        self.assertEqual(await one.completed(INFO_HASH), 2)

    def test_not_recording(self) -> Deferred[None]:
        """Without a recorder (no drain) announces journal nothing."""
        return ensureDeferred(self._idle())

    async def _idle(self) -> None:
        swarms = self.swarms()
        await swarms.announce(announce(1, left=0, event=AnnounceEvent.COMPLETED), 1000.0)
        self.assertEqual(await swarms.client.exists("txbt:journal:completed"), 0)
        self.assertEqual(await swarms.client.exists("txbt:journal:seen"), 0)

    def test_recording_from_start(self) -> Deferred[None]:
        """A recorder's record() before the start journals the very first announces."""
        return ensureDeferred(self._from_start())

    async def _from_start(self) -> None:
        from txbittorrent.tracker.redisswarms import RedisSwarms

        state = TrackerState(random.Random(1), interval=100, peer_timeout=200)
        swarms = RedisSwarms(state, self.server.url, rng=random.Random(2))
        swarms.upkeep.record(30.0)
        swarms.start()
        self.addCleanup(swarms.stop)
        await swarms.announce(announce(1, left=0, event=AnnounceEvent.COMPLETED), 1000.0)
        self.assertTrue(0 < await swarms.client.execute_command("PTTL", "txbt:recording") <= 30000)
        journal = await swarms.upkeep.drain(30.0)
        self.assertEqual((journal.seen, journal.completed), ({INFO_HASH: 1000.0}, {INFO_HASH: 1}))

    def test_bounded(self) -> Deferred[None]:
        """The journal holds at most max_swarms info hashes per hash between drains."""
        return ensureDeferred(self._bounded())

    async def _bounded(self) -> None:
        swarms = self.swarms(max_swarms=4)
        await swarms.upkeep.drain(60.0)
        for n in range(10):
            await swarms.announce(announce(n, fake(n), left=0, event=AnnounceEvent.COMPLETED),
                                  1000.0 + n)
        journal = await swarms.upkeep.drain(60.0)
        self.assertEqual(len(journal.seen), 4)
        self.assertEqual(len(journal.completed), 4)
