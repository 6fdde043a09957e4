"""Two ``txbittorrent tracker --redis URL --db FILE`` processes on one real redis-server
and one database file: one tracker everywhere, not only in announce replies.

The /api list, one torrent and /metrics of process B show a swarm announced only to
A; a completion is counted once in the shared database; thousands of fake info hashes
announced to both stay within ``--max-swarms`` in Redis (keys, completed counts), and
the test logs Redis's bytes per swarm (``INFO memory`` before and after).  The Redis
server is started by the test and killed at cleanup; skipped without redis-server or
txredisapi.
"""

from __future__ import annotations

import base64
import json
import os
import re
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, DeferredSemaphore, ensureDeferred, gatherResults
from twisted.logger import Logger
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from tests.integration.children import Child, spawn_child
from tests.redisserver import start_redis
from txbittorrent.core.tracker.announce import AnnounceEvent, AnnounceRequest
from txbittorrent.tracker.client import HTTPTrackerClient

_log = Logger()

INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
CAP = 1000
FAKES = 3000
_PASSWORD = re.compile(r"password (\S+),")


def request(peer: int, info_hash: bytes = INFO_HASH, **changes: Any) -> AnnounceRequest:
    fields: dict[str, Any] = dict(info_hash=info_hash, peer_id=b"-TX0010-%012d" % peer,
                                  port=7000 + peer % 50000, uploaded=0, downloaded=0, left=10,
                                  numwant=0)
    fields.update(changes)
    return AnnounceRequest(**fields)


def samples(text: str) -> dict[str, float]:
    return {line.rpartition(" ")[0]: float(line.rpartition(" ")[2])
            for line in text.splitlines() if line and not line.startswith("#")}


class SharedStatsTests(TestCase):
    """Process B's /api and /metrics show what A was told; the cap holds in Redis."""

    timeout = 120

    async def child(self, url: str, db: str, lines: int) -> tuple[Child, str]:
        child = spawn_child(self, [
            "-m", "txbittorrent.commands.cli", "tracker", "--http", "tcp:0:interface=127.0.0.1",
            "--no-udp", "--redis", url, "--db", db, "--max-swarms", str(CAP),
            "--rate-limit", "1000000", "--interval", "600"])
        waited = 0.0
        while child.stdout().count("\n") < lines:
            self.assertTrue(child.running, f"the tracker ended early:\n{child.stderr()}")
            self.assertLess(waited, 30, f"the tracker printed no URL:\n{child.stderr()}")
            await task.deferLater(reactor, 0.1, lambda: None)
            waited += 0.1
        return child, child.stdout()

    async def api(self, base: str, path: str, key: str) -> Any:
        response = await treq.get(base + path, headers={b"Authorization": [b"Bearer " + key.encode()]},
                                  pool=self.pool)
        body = await treq.content(response)
        self.assertEqual(response.code, 200, body)
        return json.loads(body) if path.startswith("/api") else body.decode()

    def test_one_tracker(self) -> Deferred[None]:
        """B's list, torrent view and metrics show A's swarm; completions count once; the cap holds."""
        return ensureDeferred(self._one())

    async def _one(self) -> None:
        redis = start_redis(self)
        directory = os.path.abspath(self.mktemp())  # the children run in the checkout
        os.makedirs(directory)
        db = os.path.join(directory, "tracker.sqlite")
        first, out = await self.child(redis.url, db, 2)  # the admin's password, then the URL
        password = _PASSWORD.search(out)
        assert password is not None, out
        announce_a = out.splitlines()[-1]
        second, out = await self.child(redis.url, db, 1)  # users exist: the URL only
        announce_b = out.splitlines()[-1]
        base_a = announce_a.rpartition("/")[0]
        base_b = announce_b.rpartition("/")[0]
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        http = HTTPTrackerClient(HTTPClient(Agent(reactor, pool=self.pool)), reactor, timeout=10)

        await http.announce(announce_a, request(1, event=AnnounceEvent.STARTED))
        await http.announce(announce_a, request(2, left=0))
        await http.announce(announce_a, request(1, left=0, event=AnnounceEvent.COMPLETED))
        await http.announce(announce_a, request(3))

        token = base64.b64encode(b"admin:" + password.group(1).encode())
        keys = {}
        for base in (base_a, base_b):  # each process caches the API keys it issued
            response = await treq.post(base + "/api/login", pool=self.pool,
                                       headers={b"Authorization": [b"Basic " + token]})
            keys[base] = json.loads(await treq.content(response))["key"]
        key = keys[base_b]
        listing = await self.api(base_b, "/api/torrents", key)
        self.assertEqual(listing["total"], 1)
        [entry] = listing["torrents"]
        self.assertEqual((entry["info_hash"], entry["seeders"], entry["leechers"]),
                         (INFO_HASH.hex(), 2, 1))
        metrics = samples(await self.api(base_b, "/metrics", key))
        self.assertEqual(metrics["tracker_swarms"], 1)
        self.assertEqual(metrics['tracker_peers{kind="seeders"}'], 2)
        self.assertEqual(metrics['tracker_peers{kind="leechers"}'], 1)

        # The completion reaches the shared database once (both recorders drain each second).
        waited = 0.0
        while True:
            views = [await self.api(base, f"/api/torrents/{INFO_HASH.hex()}", keys[base])
                     for base in (base_a, base_b)]
            if all(v["first_seen"] is not None for v in views) or waited > 10:
                break
            await task.deferLater(reactor, 0.5, lambda: None)
            waited += 0.5
        await task.deferLater(reactor, 2.5, lambda: None)  # a second completion would show now
        for base in (base_a, base_b):
            view = await self.api(base, f"/api/torrents/{INFO_HASH.hex()}", keys[base])
            self.assertEqual((view["completed"], view["seeders"], view["leechers"]), (1, 2, 1))
            self.assertIsNotNone(view["first_seen"])

        # The cap: FAKES fake info hashes (each a completed seeder) through both processes.
        client = await redis_client(self, redis.url)
        before = await used_memory(client)
        gate = DeferredSemaphore(16)
        await gatherResults([
            gate.run(http.announce, (announce_a, announce_b)[n % 2],
                     request(10 + n, (n + 1).to_bytes(20, "big"), left=0,
                             event=AnnounceEvent.COMPLETED))
            for n in range(FAKES)])
        after = await used_memory(client)
        self.assertEqual(await client.zcard("txbt:swarms"), CAP)
        self.assertLessEqual(await client.hlen("txbt:completed"), CAP)
        self.assertLessEqual(await client.dbsize(), 6 * CAP + 20)
        counters = await client.hgetall("txbt:counters")
        self.assertEqual(int(counters[b"evicted"]), FAKES + 1 - CAP)
        per_swarm = (after - before) / CAP
        _log.info("Redis: {per_swarm:.0f} bytes per swarm ({before} -> {after} used_memory,"
                  " {cap} swarms of one peer)", per_swarm=per_swarm, before=before,
                  after=after, cap=CAP)
        self.assertLess(per_swarm, 4096)
        listing = await self.api(base_b, "/api/torrents?limit=5", key)
        self.assertEqual(listing["total"], CAP)
        self.assertEqual(len(listing["torrents"]), 5)

        for child in (first, second):
            child.terminate()
            self.assertEqual(await child.ended, 0, child.stderr())


async def redis_client(case: TestCase, url: str) -> Any:
    """A connected txredisapi client of the test's own, closed at cleanup."""
    import txredisapi

    from txbittorrent.core.tracker.redisform import parse_redis_url

    address = parse_redis_url(url)
    client = await txredisapi.Connection(address.host, address.port, dbid=address.db,
                                         reconnect=False, charset=None, convertNumbers=False)
    case.addCleanup(client.disconnect)
    return client


async def used_memory(client: Any) -> int:
    """INFO memory's used_memory (txredisapi parses INFO into a dict)."""
    info = await client.info("memory")
    return int(dict(info)["used_memory"])
