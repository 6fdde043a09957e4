"""Two tracker services sharing one real redis-server, over HTTP and UDP on 127.0.0.1.

``SharedRedisTests`` runs the services in this process (each with its own
listeners, rules and Redis connection); ``TrackerProcessesTests`` runs two
``txbittorrent tracker --redis URL`` child processes and SIGKILLs one.  The
Redis server is started by the test and killed at cleanup.
"""

from __future__ import annotations

import random
from typing import Any

from treq.client import HTTPClient
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from txbittorrent.core.tracker.announce import (
    AnnounceEvent,
    AnnounceRequest,
    ScrapeStats,
    TrackerFailure,
)
from txbittorrent.tracker.app import TrackerApp
from txbittorrent.tracker.client import HTTPTrackerClient, UDPTrackerClient
from txbittorrent.tracker.service import TrackerService
from txbittorrent.tracker.serverconfig import TrackerServerConfig

from tests.integration.children import Child, spawn_child
from tests.redisserver import start_redis

INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")


def request(peer: int, **changes: Any) -> AnnounceRequest:
    fields: dict[str, Any] = dict(info_hash=INFO_HASH, peer_id=b"-TX0010-%012d" % peer,
                                  port=7000 + peer, uploaded=0, downloaded=0, left=10)
    fields.update(changes)
    return AnnounceRequest(**fields)


class SharedRedisTests(TestCase):
    """A peer announced to one tracker is returned by the other; stopping one loses nothing."""

    timeout = 40

    def setUp(self) -> None:
        self.redis = start_redis(self)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPTrackerClient(HTTPClient(Agent(reactor, pool=pool)), reactor, timeout=10)
        self.udp = UDPTrackerClient(reactor, random.Random(4), interface4="127.0.0.1")
        self.udp.start()
        self.addCleanup(self.udp.stop)

    async def tracker(self, seed: int) -> TrackerService:
        config = TrackerServerConfig(http=("tcp:0:interface=127.0.0.1",), udp_ports=(0,),
                                     interval=120, redis=self.redis.url)
        service = TrackerService(config, reactor=reactor, rng=random.Random(seed))
        service.startService()
        assert service.started is not None
        await service.started
        self.addCleanup(service.stopService)
        return service

    def test_shared_swarm(self) -> Deferred[None]:
        """HTTP and UDP peers of one tracker reach the other's clients, counts agree, stop survives."""
        return ensureDeferred(self._shared())

    async def _shared(self) -> None:
        one, two = await self.tracker(1), await self.tracker(2)
        http1, udp1 = one.announce_urls()
        http2, udp2 = two.announce_urls()
        await self.http.announce(http1, request(1, event=AnnounceEvent.STARTED))
        reply = await self.udp.announce(udp2, request(2))
        self.assertEqual(reply.peers, (("127.0.0.1", 7001),))
        reply = await self.http.announce(http2, request(3, left=0))
        self.assertEqual(sorted(reply.peers), [("127.0.0.1", 7001), ("127.0.0.1", 7002)])
        reply = await self.udp.announce(udp1, request(1, left=0, event=AnnounceEvent.COMPLETED))
        self.assertEqual(reply.peers, (("127.0.0.1", 7002),))  # a seeder gets the leecher only
        expected = {INFO_HASH: ScrapeStats(complete=2, downloaded=1, incomplete=1)}
        self.assertEqual(await self.http.scrape(http2, [INFO_HASH]), expected)
        self.assertEqual(await self.udp.scrape(udp1, [INFO_HASH]), expected)
        self.assertEqual(one.state.peer_count + two.state.peer_count, 0)  # all in Redis
        # One tracker stops (as a killed process would, its listeners gone): nothing is lost.
        await one.stopService()
        reply = await self.http.announce(http2, request(4))
        self.assertEqual(sorted(reply.peers),
                         [("127.0.0.1", 7001), ("127.0.0.1", 7002), ("127.0.0.1", 7003)])
        self.assertEqual(await self.udp.scrape(udp2, [INFO_HASH]),
                         {INFO_HASH: ScrapeStats(complete=2, downloaded=1, incomplete=2)})
        # A new process joining the same Redis sees the same swarm at once.
        three = await self.tracker(3)
        reply = await self.udp.announce(three.announce_urls()[1], request(2, event=AnnounceEvent.STOPPED))
        self.assertEqual((reply.complete, reply.incomplete), (2, 1))

    def test_redis_gone(self) -> Deferred[None]:
        """With the Redis server killed, an announce gets a failure reason, not a hang or a crash."""
        return ensureDeferred(self._gone())

    async def _gone(self) -> None:
        service = await self.tracker(1)
        assert service.swarms is not None
        service.swarms.reply_timeout = 2
        http_url = service.announce_urls()[0]
        await self.http.announce(http_url, request(1))
        self.redis.kill()
        with self.assertRaises(TrackerFailure) as caught:
            await self.http.announce(http_url, request(2))
        self.assertEqual(caught.exception.reason, "tracker storage unavailable")
        self.flushLoggedErrors()


class TrackerAppRedisTests(TestCase):
    """``txbittorrent tracker --redis``'s app refuses private mode with Redis."""

    def test_private_refused(self) -> None:
        """Private mode keeps per-process state: TrackerApp refuses it with Redis."""
        config = TrackerServerConfig(redis="redis://127.0.0.1:1/0")
        with self.assertRaises(ValueError):
            TrackerApp(config, db_path="x.db", private=True)
        with self.assertRaises(ValueError):
            TrackerServerConfig(redis="http://127.0.0.1/")


class TrackerProcessesTests(TestCase):
    """Two ``txbittorrent tracker --redis`` processes: one SIGKILLed, the other serves on."""

    timeout = 60

    async def child(self, url: str) -> tuple[Child, list[str]]:
        child = spawn_child(self, ["-m", "txbittorrent.commands.cli", "tracker",
                                   "--http", "tcp:0:interface=127.0.0.1", "--udp", "0",
                                   "--redis", url])
        waited = 0.0
        while child.stdout().count("\n") < 2:
            self.assertTrue(child.running, f"the tracker ended early:\n{child.stderr()}")
            self.assertLess(waited, 30, f"the tracker printed no URLs:\n{child.stderr()}")
            await task.deferLater(reactor, 0.1, lambda: None)
            waited += 0.1
        return child, child.stdout().split()

    def test_kill_one(self) -> Deferred[None]:
        """A peer announced to one process is returned by the other, also after the first is killed."""
        return ensureDeferred(self._kill())

    async def _kill(self) -> None:
        redis = start_redis(self)
        (first, (http1, udp1)), (second, (http2, udp2)) = (
            await self.child(redis.url), await self.child(redis.url))
        pool = HTTPConnectionPool(reactor, persistent=False)
        http = HTTPTrackerClient(HTTPClient(Agent(reactor, pool=pool)), reactor, timeout=10)
        udp = UDPTrackerClient(reactor, random.Random(4), interface4="127.0.0.1")
        udp.start()
        self.addCleanup(udp.stop)
        await http.announce(http1, request(1, event=AnnounceEvent.STARTED))
        reply = await udp.announce(udp2, request(2))
        self.assertEqual(reply.peers, (("127.0.0.1", 7001),))
        await first.kill()
        reply = await http.announce(http2, request(3))
        self.assertEqual(sorted(reply.peers), [("127.0.0.1", 7001), ("127.0.0.1", 7002)])
        self.assertEqual(await udp.scrape(udp2, [INFO_HASH]),
                         {INFO_HASH: ScrapeStats(complete=0, downloaded=0, incomplete=3)})
        second.terminate()
        self.assertEqual(await second.ended, 0, second.stderr())
