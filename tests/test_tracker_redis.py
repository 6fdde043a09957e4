"""Tests for txbittorrent.tracker.redisswarms (RedisSwarms) against a real redis-server on 127.0.0.1.

Each test starts its own ``redis-server`` (Debian's package) on a free
loopback port, with no persistence, in a temporary directory, and kills it
at cleanup; the tests are skipped where the binary or txredisapi is missing.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase

from tests.redisserver import RedisCase
from txbittorrent.core.tracker.announce import AnnounceEvent, ScrapeStats
from txbittorrent.core.tracker.redisform import (
    decode_member,
    encode_member,
    parse_redis_url,
    split_candidates,
)
from txbittorrent.core.tracker.swarms import Announce, RequestRefused

INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
OTHER_HASH = bytes(range(20))


def announce(peer: int, *, port: int | None = None, ip: str = "127.0.0.1", left: int = 10,
             **changes: Any) -> Announce:
    fields: dict[str, Any] = dict(info_hash=INFO_HASH, peer_id=b"%020d" % peer, ip=ip,
                                  port=port or 7000 + peer, left=left)
    fields.update(changes)
    return Announce(**fields)


class TrackerCommandRedisTests(TestCase):
    """``txbittorrent tracker --redis URL``."""

    def parse(self, *argv: str) -> Any:
        from txbittorrent.commands.cli import build_parser

        return build_parser().parse_args(["tracker", *argv])

    def test_option(self) -> None:
        """--redis goes into the config; a URL that is not redis:// is an error."""
        from txbittorrent.commands.tracker import config_of
        from txbittorrent.errors import TxBitTorrentError

        self.assertIsNone(config_of(self.parse()).redis)
        url = "redis://127.0.0.1:6390/2"
        self.assertEqual(config_of(self.parse("--redis", url)).redis, url)
        self.assertRaises(TxBitTorrentError, config_of, self.parse("--redis", "http://x/"))

    def test_private_refused(self) -> None:
        """--private with --redis exits 2 before starting anything."""
        from txbittorrent.commands.tracker import run

        args = self.parse("--db", "unused.db", "--private", "--redis", "redis://127.0.0.1/0")
        self.assertEqual(run(args), 2)


class RedisFormTests(TestCase):
    """The sans-I/O half: URLs and members."""

    def test_url(self) -> None:
        """redis:// URLs give host, port, database and password; other schemes are refused."""
        address = parse_redis_url("redis://:s%40cret@127.0.0.1:6380/2")
        self.assertEqual((address.host, address.port, address.db, address.password),
                         ("127.0.0.1", 6380, 2, "s@cret"))
        self.assertEqual(parse_redis_url("redis://localhost").port, 6379)
        for bad in ("http://x", "redis://", "redis://h/x"):
            self.assertRaises(ValueError, parse_redis_url, bad)

    def test_member(self) -> None:
        """A member is the compact address then the peer_id, for both families."""
        member = encode_member("10.0.0.1", 6881, b"p" * 20)
        self.assertEqual(member, bytes([10, 0, 0, 1]) + (6881).to_bytes(2, "big") + b"p" * 20)
        self.assertEqual(decode_member(member), ("10.0.0.1", 6881, b"p" * 20))
        self.assertEqual(decode_member(encode_member("::1", 1, b"q" * 20)), ("::1", 1, b"q" * 20))
        self.assertRaises(ValueError, decode_member, b"short")

    def test_split_candidates(self) -> None:
        """The script's candidates string: members each after their length byte; a
        truncated last member is dropped."""
        one, two = encode_member("10.0.0.1", 1, b"a" * 20), encode_member("::1", 2, b"b" * 20)
        blob = bytes([len(one)]) + one + bytes([len(two)]) + two
        self.assertEqual(split_candidates(blob), [one, two])
        self.assertEqual(split_candidates(blob[:-1]), [one])
        self.assertEqual(split_candidates(b""), [])


class RedisSwarmsTests(RedisCase):
    """RedisSwarms against a real redis-server."""

    def test_announce_and_peers(self) -> Deferred[None]:
        """A second peer gets the first; counts and the seeders-get-no-seeders rule hold."""
        return ensureDeferred(self._peers())

    async def _peers(self) -> None:
        swarms = self.swarms()
        first = await swarms.announce(announce(1), 1000.0)
        self.assertEqual((first.complete, first.incomplete, first.peers), (0, 1, ()))
        second = await swarms.announce(announce(2, left=0), 1001.0)
        self.assertEqual([(p.ip, p.port, p.peer_id) for p in second.peers],
                         [("127.0.0.1", 7001, b"%020d" % 1)])
        self.assertEqual((second.complete, second.incomplete), (1, 1))
        third = await swarms.announce(announce(3, left=0), 1002.0)
        self.assertEqual([p.port for p in third.peers], [7001])  # not the other seeder
        again = await swarms.announce(announce(1), 1003.0)
        self.assertEqual(sorted(p.port for p in again.peers), [7002, 7003])
        self.assertEqual((again.complete, again.incomplete), (2, 1))
        self.assertEqual((await swarms.counters())["announces"], 4)

    def test_stopped_and_numwant(self) -> Deferred[None]:
        """stopped removes the peer; numwant is capped; the requester never gets itself."""
        return ensureDeferred(self._stopped())

    async def _stopped(self) -> None:
        swarms = self.swarms(max_numwant=3)
        for n in range(6):
            await swarms.announce(announce(n), 1000.0 + n)
        reply = await swarms.announce(announce(0, numwant=10**9), 1010.0)
        self.assertEqual(len(reply.peers), 3)
        self.assertNotIn(7000, [p.port for p in reply.peers])
        stopped = await swarms.announce(announce(0, event=AnnounceEvent.STOPPED), 1011.0)
        self.assertEqual((stopped.incomplete, stopped.peers), (5, ()))
        self.assertEqual(await swarms.scrape([INFO_HASH], 1012.0),
                         {INFO_HASH: ScrapeStats(0, 0, 5)})

    def test_expiry(self) -> Deferred[None]:
        """Peers older than peer_timeout are neither counted nor returned, and are removed."""
        return ensureDeferred(self._expiry())

    async def _expiry(self) -> None:
        swarms = self.swarms()
        await swarms.announce(announce(1), 1000.0)
        await swarms.announce(announce(2), 1150.0)
        self.assertEqual(await swarms.scrape([INFO_HASH], 1201.0),
                         {INFO_HASH: ScrapeStats(0, 0, 1)})
        reply = await swarms.announce(announce(3), 1201.0)
        self.assertEqual([p.port for p in reply.peers], [7002])
        members = await swarms.client.zrange(f"txbt:{INFO_HASH.hex()}:4:leechers")
        self.assertEqual(sorted(decode_member(m)[1] for m in members), [7002, 7003])
        ids = await swarms.client.hkeys(f"txbt:{INFO_HASH.hex()}:ids")
        self.assertNotIn(b"%020d" % 1, ids)
        self.assertEqual(await swarms.expire(1500.0), 1)
        self.assertEqual(await swarms.scrape_all(1500.0), {})

    def test_completed(self) -> Deferred[None]:
        """completed, and left=0 from a known leecher, count once each; stopped at left=0 too."""
        return ensureDeferred(self._completed())

    async def _completed(self) -> None:
        swarms = self.swarms()
        await swarms.announce(announce(1), 1000.0)
        await swarms.announce(announce(1, left=0, event=AnnounceEvent.COMPLETED), 1001.0)
        await swarms.announce(announce(1, left=0, event=AnnounceEvent.COMPLETED), 1002.0)
        await swarms.announce(announce(2), 1003.0)
        await swarms.announce(announce(2, left=0, event=AnnounceEvent.STOPPED), 1004.0)
        self.assertEqual(await swarms.completed(INFO_HASH), 2)
        self.assertEqual(await swarms.scrape([INFO_HASH, OTHER_HASH], 1005.0),
                         {INFO_HASH: ScrapeStats(1, 2, 0)})

    def test_families(self) -> Deferred[None]:
        """IPv4 and IPv6 peers live in their own sets; ipv6= limits the reply to one family."""
        return ensureDeferred(self._families())

    async def _families(self) -> None:
        swarms = self.swarms()
        await swarms.announce(announce(1), 1000.0)
        await swarms.announce(announce(2, ip="::1"), 1001.0)
        both = await swarms.announce(announce(3), 1002.0)
        self.assertEqual(sorted(p.ip for p in both.peers), ["127.0.0.1", "::1"])
        only6 = await swarms.announce(announce(4, ip="::1"), 1003.0, ipv6=True)
        self.assertEqual([p.port for p in only6.peers], [7002])
        only4 = await swarms.announce(announce(5), 1004.0, ipv6=False)
        self.assertEqual(sorted(p.port for p in only4.peers), [7001, 7003])
        self.assertEqual(await swarms.client.zcard(f"txbt:{INFO_HASH.hex()}:6:leechers"), 2)

    def test_key_and_address_rules(self) -> Deferred[None]:
        """A peer_id with a key cannot be moved without it; a new peer_id on an address replaces the old."""
        return ensureDeferred(self._rules())

    async def _rules(self) -> None:
        swarms = self.swarms(allowed={INFO_HASH})
        await swarms.announce(announce(1, key=0xABC), 1000.0)
        with self.assertRaises(RequestRefused):
            await swarms.announce(announce(1, port=9999, key=0xDEF), 1001.0)
        moved = await swarms.announce(announce(1, port=9999, key=0xABC), 1002.0)
        self.assertEqual(moved.incomplete, 1)
        replaced = await swarms.announce(announce(2, port=9999), 1003.0)
        self.assertEqual((replaced.incomplete, replaced.peers), (1, ()))
        with self.assertRaises(RequestRefused) as caught:
            await swarms.announce(announce(3, info_hash=OTHER_HASH), 1004.0)
        self.assertEqual(caught.exception.reason, "unregistered torrent")
        self.assertEqual(await swarms.scrape([OTHER_HASH], 1005.0), {})

    def test_concurrent(self) -> Deferred[None]:
        """Two hundred announces in flight at once on one connection are all answered right."""
        return ensureDeferred(self._concurrent())

    async def _concurrent(self) -> None:
        from twisted.internet.defer import gatherResults

        swarms = self.swarms()
        results = await gatherResults(
            [swarms.announce(announce(n, numwant=0), 1000.0) for n in range(200)])
        self.assertEqual(sorted(r.incomplete for r in results), list(range(1, 201)))
        self.assertEqual(await swarms.scrape([INFO_HASH], 1001.0),
                         {INFO_HASH: ScrapeStats(0, 0, 200)})

    def test_two_clients_share(self) -> Deferred[None]:
        """Two RedisSwarms on one server (two processes' view) see each other's peers."""
        return ensureDeferred(self._share())

    async def _share(self) -> None:
        one, two = self.swarms(), self.swarms()
        await one.announce(announce(1), 1000.0)
        reply = await two.announce(announce(2), 1001.0)
        self.assertEqual([p.port for p in reply.peers], [7001])
        self.assertEqual(await one.scrape([INFO_HASH], 1002.0), {INFO_HASH: ScrapeStats(0, 0, 2)})

