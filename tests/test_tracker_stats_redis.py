"""Tests for the stats API, /metrics and TrackerRecorder over swarms shared in Redis
(txbittorrent.tracker.stats.sources.RedisSource, the recorder's journal), against a
real redis-server on 127.0.0.1 (skipped without redis-server or txredisapi)."""

from __future__ import annotations

import os
import random
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred, inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from tests.redisserver import start_redis
from tests.trackerstatscase import H1, H2, H3, NOW, USER, USER_PASSWORD, StatsApiCase
from txbittorrent.core.tracker.announce import AnnounceEvent
from txbittorrent.core.tracker.registry import Announce, TrackerState
from txbittorrent.tracker.db import TorrentRow, TrackerDB
from txbittorrent.tracker.stats import mount_stats
from txbittorrent.tracker.stats.recorder import TrackerRecorder

PEERS = [(H1, 0, 1), (H1, 0, 2), (H1, 50, 3), (H2, 10, 4), (H3, 10, 5)]
"""As trackerstatscase.fill: H1 2 seeders and 1 leecher; H2 1 leecher; H3 1 seeder
that completed."""


def parse(text: str) -> dict[str, float]:
    """Samples by 'name{labels}' (the format itself is checked in test_tracker_stats_metrics)."""
    return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
            for line in text.splitlines() if line and not line.startswith("#")}


def shared_swarms(case: TestCase, url: str, seed: int = 1, **options: Any) -> Any:
    """A started RedisSwarms on ``url``, stopped at cleanup."""
    from txbittorrent.tracker.redisswarms import RedisSwarms

    state = TrackerState(random.Random(seed), **options)
    swarms = RedisSwarms(state, url, rng=random.Random(seed))
    swarms.start()
    case.addCleanup(swarms.stop)
    return swarms


async def fill_shared(swarms: Any, now: float) -> None:
    for info_hash, left, n in PEERS:
        await swarms.announce(Announce(info_hash, b"-TX0010-%012d" % n, "127.0.0.1",
                                       6880 + n, left), now)
    await swarms.announce(Announce(H3, b"-TX0010-%012d" % 5, "127.0.0.1", 6885, 0,
                                   event=AnnounceEvent.COMPLETED), now)


class RedisStatsTests(StatsApiCase):
    """/api and /metrics of a process whose local state is empty read the shared swarms."""

    def setUp(self) -> Deferred[None]:  # type: ignore[override]
        super().setUp()
        from txbittorrent.tracker.stats.sources import RedisSource

        server = start_redis(self)
        writer = shared_swarms(self, server.url, 1)  # another process's announces
        reader = shared_swarms(self, server.url, 2)
        self.state = reader.state  # this process: nothing in memory
        self.api = mount_stats(self.root, RedisSource(reader, self.clock), self.db,
                               self.stats, self.clock)
        self.reader = reader
        return ensureDeferred(self._fill(writer))

    async def _fill(self, writer: Any) -> None:
        await fill_shared(writer, NOW)
        login = await self.login(USER, USER_PASSWORD)
        self.auth = self.bearer(login["key"])

    @inlineCallbacks
    def test_torrents(self) -> Generator[Any, Any, None]:
        """The list and one torrent show the swarms announced to the other process."""
        code, body, _ = yield self.call("GET", "/api/torrents?limit=2", headers=self.auth)
        self.assertEqual(code, 200)
        self.assertEqual(body["total"], 3)
        self.assertEqual([t["info_hash"] for t in body["torrents"]], [H3.hex(), H2.hex()])
        self.assertEqual(body["torrents"][0]["completed"], 1)  # from Redis: not in the db
        code, body, _ = yield self.call("GET", f"/api/torrents/{H1.hex()}", headers=self.auth)
        self.assertEqual(body, {"info_hash": H1.hex(), "seeders": 2, "leechers": 1,
                                "completed": 7, "first_seen": NOW - 100, "whitelisted": True})
        code, _, _ = yield self.call("GET", "/api/torrents/" + "ab" * 20, headers=self.auth)
        self.assertEqual(code, 404)

    @inlineCallbacks
    def test_status_and_metrics(self) -> Generator[Any, Any, None]:
        """Status and /metrics count the shared peers (as of a sweep, made on demand)."""
        code, body, _ = yield self.call("GET", "/api/status", headers=self.auth)
        self.assertEqual(code, 200)
        self.assertEqual(body["swarms"], 3)
        self.assertEqual(body["peers"], {"seeders": 3, "leechers": 2, "total": 5,
                                         "as_of": NOW})
        code, text, _ = yield self.call("GET", "/metrics")
        self.assertEqual(code, 200)
        samples = parse(text)
        self.assertEqual(samples["tracker_swarms"], 3)
        self.assertEqual(samples['tracker_peers{kind="seeders"}'], 3)
        self.assertEqual(samples['tracker_peers{kind="leechers"}'], 2)
        self.assertEqual(samples["tracker_peers_counted_timestamp_seconds"], NOW)

    @inlineCallbacks
    def test_redis_gone(self) -> Generator[Any, Any, None]:
        """With Redis unreachable the API is a 500 JSON error and /metrics a 503, no hang."""
        yield self.reader.stop()
        self.reader._client = _Broken()
        code, body, _ = yield self.call("GET", "/api/torrents", headers=self.auth)
        self.assertEqual((code, body), (500, {"error": "internal error"}))
        code, _, _ = yield self.call("GET", "/metrics")
        self.assertEqual(code, 503)
        self.flushLoggedErrors(ConnectionError)


class _Broken:
    """A Redis client whose every command fails."""

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            d.errback(ConnectionError("redis down"))
            return d

        return fail

    def disconnect(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        d.callback(None)
        return d


class RedisRecorderTests(TestCase):
    """TrackerRecorder with a Redis journal: completions of every process counted once."""

    timeout = 30

    def setUp(self) -> None:
        self.server = start_redis(self)
        self.clock = Clock()
        self.clock.advance(NOW)
        directory = self.mktemp()
        os.makedirs(directory)
        self.path = os.path.join(directory, "tracker.sqlite")

    def recorder(self, swarms: Any) -> tuple[TrackerDB, TrackerRecorder]:
        db = TrackerDB(self.path)
        self.addCleanup(db.close)
        recorder = TrackerRecorder(swarms.state, db, self.clock, interval=1.0,
                                   threaded=False, journal=swarms.upkeep)
        return db, recorder

    def test_counted_once(self) -> Deferred[None]:
        """Two processes' recorders on one database file record each completion once."""
        return ensureDeferred(self._once())

    async def _once(self) -> None:
        one = shared_swarms(self, self.server.url, 1)
        two = shared_swarms(self, self.server.url, 2)
        (db1, rec1), (db2, rec2) = self.recorder(one), self.recorder(two)
        rec1.startService()
        rec2.startService()
        self.clock.advance(1)  # both drain (empty): the journal starts
        await _settle(rec1, rec2)
        await fill_shared(one, NOW + 1)
        await two.announce(Announce(H2, b"-TX0010-%012d" % 4, "127.0.0.1", 6884, 0,
                                    event=AnnounceEvent.COMPLETED), NOW + 1)
        for _ in range(2):
            self.clock.advance(1)
            await _settle(rec1, rec2)
        await rec1.stopService()
        await rec2.stopService()
        rows = {row.info_hash: row for row in db1.torrents()}
        self.assertEqual(rows, {
            H1: TorrentRow(H1, NOW + 1, 0, False), H2: TorrentRow(H2, NOW + 1, 1, False),
            H3: TorrentRow(H3, NOW + 1, 1, False)})
        self.assertEqual(db2.torrents(), db1.torrents())
        self.assertEqual(self.clock.getDelayedCalls(), [])


async def _settle(*recorders: TrackerRecorder) -> None:
    """Wait for the recorders' drains in flight."""
    for recorder in recorders:
        while recorder._draining is not None:
            await recorder._draining
