"""Tests for txbittorrent.core.tracker.swarms: the registry's rules, with explicit ``now``."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from tests.trackerfakes import INFO_HASH, OTHER_HASH, PEER_A, PEER_B, PEER_C, addresses, announce
from txbittorrent.core.tracker.announce import AnnounceEvent, ScrapeStats
from txbittorrent.core.tracker.swarms import RequestRefused, TrackerState, TransferDelta



class KeyTests(SynchronousTestCase):
    """``key`` recognises a peer whose address changed, and nobody else."""

    def setUp(self) -> None:
        self.state = TrackerState(random.Random(1), interval=100)

    def test_same_key_new_address_replaces(self) -> None:
        """A peer with the same peer_id and key from a new IP replaces its old record."""
        self.state.announce(announce(key=0xDEADBEEF), 0)
        self.state.announce(announce(ip="10.0.0.2", key=0xDEADBEEF), 1)
        self.assertEqual([(p.ip, p.port) for p in self.state.peers(INFO_HASH)],
                         [("10.0.0.2", 6881)])
        self.assertEqual(self.state.peer_count, 1)

    def test_other_key_new_address_refused(self) -> None:
        """Another key from another address cannot take over (or stop) a keyed record."""
        self.state.announce(announce(key=1), 0)
        self.assertRaises(RequestRefused, self.state.announce,
                          announce(ip="10.6.6.6", key=2), 1)
        self.assertRaises(RequestRefused, self.state.announce,
                          announce(ip="10.6.6.6", event=AnnounceEvent.STOPPED), 1)
        self.assertEqual([p.ip for p in self.state.peers(INFO_HASH)], ["127.0.0.1"])

    def test_same_address_any_key(self) -> None:
        """From its own address and port a peer may change its key (a restart)."""
        self.state.announce(announce(key=1), 0)
        self.state.announce(announce(key=2), 1)
        self.assertEqual([p.key for p in self.state.peers(INFO_HASH)], [2])


class RepliesTests(SynchronousTestCase):
    """What an announce reply holds."""

    def test_tracker_id_and_intervals(self) -> None:
        """The configured tracker id, interval and min interval come back in every reply."""
        state = TrackerState(random.Random(1), interval=300, min_interval=60, tracker_id=b"t1")
        result = state.announce(announce(), 0)
        self.assertEqual((result.interval, result.min_interval, result.tracker_id),
                         (300, 60, b"t1"))
        stopped = state.announce(announce(event=AnnounceEvent.STOPPED), 1)
        self.assertEqual(stopped.tracker_id, b"t1")

    def test_numwant_huge_is_capped(self) -> None:
        """numwant 10**9 gets max_numwant peers."""
        state = TrackerState(random.Random(1), max_numwant=20)
        for n in range(40):
            state.announce(announce(b"%020d" % n, 1000 + n), 0)
        self.assertEqual(len(state.announce(announce(numwant=10**9), 0).peers), 20)

    def test_requester_never_listed(self) -> None:
        """Neither the requester's peer_id nor its address is in its own list, even unrecorded."""
        state = TrackerState(random.Random(1), max_peers=2)
        state.announce(announce(PEER_A, 1), 0)
        state.announce(announce(PEER_B, 2), 0)
        for _ in range(5):
            self.assertEqual(addresses(state.announce(announce(PEER_A, 1), 0)),
                             {("127.0.0.1", 2)})
        self.assertEqual(addresses(state.announce(announce(PEER_C, 3), 0)),
                         {("127.0.0.1", 1), ("127.0.0.1", 2)})

    def test_big_swarm_window(self) -> None:
        """In a swarm larger than numwant, a reply is numwant distinct other peers of
        the requester's family, never itself, and different requests see different ones."""
        state = TrackerState(random.Random(1))
        for n in range(300):
            state.announce(announce(b"%020d" % n, 1000 + n, left=n % 2), 0)
        for n in range(5):
            state.announce(announce(b"v6%018d" % n, 1000 + n, ip="::1"), 0)
        seen: set[tuple[str, int]] = set()
        for _ in range(20):
            result = state.announce(announce(b"%020d" % 7, 1007, numwant=50), 1, ipv6=False)
            got = addresses(result)
            self.assertEqual(len(result.peers), 50)
            self.assertEqual(len(got), 50)
            self.assertNotIn(("127.0.0.1", 1007), got)
            self.assertTrue(all(ip == "127.0.0.1" for ip, _ in got))
            seen |= got
        self.assertGreater(len(seen), 100)
        seeding = state.announce(announce(b"%020d" % 8, 1008, left=0, numwant=200), 2)
        self.assertTrue(all(p.left > 0 for p in seeding.peers))
        self.assertEqual(len(seeding.peers), 150 + 5)

    def test_seeders_not_given_seeders(self) -> None:
        """A seeder gets no seeders, only leechers."""
        state = TrackerState(random.Random(1))
        state.announce(announce(PEER_A, 1, left=0), 0)
        state.announce(announce(PEER_B, 2, left=0), 0)
        self.assertEqual(state.announce(announce(PEER_C, 3, left=0), 0).peers, ())

    def test_stopped_removes_and_forgets_swarm(self) -> None:
        """The last peer's ``stopped`` removes it and the empty swarm."""
        state = TrackerState(random.Random(1))
        state.announce(announce(), 0)
        state.announce(announce(event=AnnounceEvent.STOPPED), 1)
        self.assertEqual((len(state), state.peer_count), (0, 0))


class ExpiryTests(SynchronousTestCase):
    """Peers are forgotten ``peer_timeout`` seconds after their last announce."""

    def test_peer_timeout(self) -> None:
        """peer_timeout overrides the default of two intervals."""
        state = TrackerState(random.Random(1), interval=100, peer_timeout=30)
        state.announce(announce(PEER_A, 1), 0)
        state.announce(announce(PEER_B, 2), 20)
        self.assertEqual(addresses(state.announce(announce(PEER_C, 3), 31)),
                         {("127.0.0.1", 2)})
        self.assertEqual(state.expire(100), 2)
        self.assertEqual((len(state), state.peer_count), (0, 0))


class CapsTests(SynchronousTestCase):
    """Bounded memory: swarms, peers per swarm, peers in all."""

    def test_eviction_order(self) -> None:
        """The least recently announced swarm goes first; an announce refreshes a swarm."""
        state = TrackerState(random.Random(1), max_swarms=2)
        state.announce(announce(info_hash=b"a" * 20), 0)
        state.announce(announce(info_hash=b"b" * 20), 1)
        state.announce(announce(PEER_B, 2, info_hash=b"a" * 20), 2)
        state.announce(announce(info_hash=b"c" * 20), 3)
        self.assertEqual(state.info_hashes(), [b"a" * 20, b"c" * 20])
        self.assertEqual((state.evicted, state.peer_count), (1, 3))

    def test_total_peer_cap(self) -> None:
        """At max_total_peers a newcomer is answered but not recorded."""
        state = TrackerState(random.Random(1), max_total_peers=2)
        state.announce(announce(PEER_A, 1), 0)
        state.announce(announce(PEER_B, 2, info_hash=OTHER_HASH), 0)
        result = state.announce(announce(PEER_C, 3), 0)
        self.assertEqual(addresses(result), {("127.0.0.1", 1)})
        self.assertEqual(state.peer_count, 2)

    def test_live_allow_list(self) -> None:
        """A set passed as the allow-list is kept: adding to it opens the torrent."""
        allowed: set[bytes] = set()
        state = TrackerState(random.Random(1), allowed=allowed)
        self.assertRaises(RequestRefused, state.announce, announce(), 0)
        allowed.add(INFO_HASH)
        self.assertEqual(state.announce(announce(), 0).incomplete, 1)


class FullScrapeTests(SynchronousTestCase):
    """scrape_all lists the most recently announced swarms, at most ``limit``."""

    def test_bounded(self) -> None:
        """Three swarms, limit two: the two most recent."""
        state = TrackerState(random.Random(1))
        for n, letter in enumerate(b"abc"):
            state.announce(announce(info_hash=bytes([letter]) * 20, left=n), n)
        stats = state.scrape_all(10, limit=2)
        self.assertEqual(stats, {b"c" * 20: ScrapeStats(0, 0, 1), b"b" * 20: ScrapeStats(0, 0, 1)})


class AccountingTests(SynchronousTestCase):
    """Transfer of a private user's peer goes to on_transfer as deltas."""

    def test_deltas(self) -> None:
        """The first announce reports its counters, later ones the growth, never negative."""
        seen: list[TransferDelta] = []
        state = TrackerState(random.Random(1), on_transfer=seen.append)
        state.announce(announce(user="u1", uploaded=10, downloaded=5), 0)
        state.announce(announce(user="u1", uploaded=25, downloaded=5), 1)
        state.announce(announce(user="u1", uploaded=3, downloaded=2), 2)  # a restart
        state.announce(announce(PEER_B, 2, uploaded=99), 3)  # no user: not accounted
        state.announce(announce(user="u1", uploaded=3, downloaded=2, left=0,
                                event=AnnounceEvent.COMPLETED), 4)
        self.assertEqual(seen, [
            TransferDelta("u1", INFO_HASH, 10, 5, False),
            TransferDelta("u1", INFO_HASH, 15, 0, False),
            TransferDelta("u1", INFO_HASH, 0, 0, True),
        ])


class CompletedTests(SynchronousTestCase):
    """What counts as a completed download in scrape's ``downloaded``."""

    def test_leecher_stops_finished(self) -> None:
        """A known leecher that goes straight to stopped with left=0 (aria2) counts once."""
        state = TrackerState(random.Random(1))
        state.announce(announce(PEER_B, 2, left=0), 0)  # a seeder keeps the swarm
        state.announce(announce(left=50), 0)
        state.announce(announce(left=0, event=AnnounceEvent.STOPPED), 1)
        state.announce(announce(left=0, event=AnnounceEvent.STOPPED), 2)
        self.assertEqual(state.scrape([INFO_HASH], 3), {INFO_HASH: ScrapeStats(1, 1, 0)})

    def test_seeder_started_not_counted(self) -> None:
        """A peer that starts as a seeder, or re-announces as one, adds no download."""
        state = TrackerState(random.Random(1))
        state.announce(announce(left=0, event=AnnounceEvent.STARTED), 0)
        state.announce(announce(left=0), 1)
        self.assertEqual(state.scrape([INFO_HASH], 2), {INFO_HASH: ScrapeStats(1, 0, 0)})


class UserLimitTests(SynchronousTestCase):
    """max_torrents_per_user bounds the swarms a private user is in at once."""

    def test_limit(self) -> None:
        """A third torrent is refused at a limit of two; it opens again when one ends."""
        state = TrackerState(random.Random(1), interval=100, max_torrents_per_user=2)
        state.announce(announce(user="bob", info_hash=b"a" * 20), 0)
        state.announce(announce(PEER_B, 2, user="bob", info_hash=b"b" * 20), 0)
        state.announce(announce(user="bob", info_hash=b"a" * 20), 1)  # one it is in: fine
        with self.assertRaises(RequestRefused) as caught:
            state.announce(announce(PEER_C, 3, user="bob", info_hash=b"c" * 20), 1)
        self.assertEqual(caught.exception.reason, "torrent limit reached")
        state.announce(announce(PEER_C, 3, user="eve", info_hash=b"c" * 20), 1)  # another user
        state.announce(announce(user="bob", info_hash=b"a" * 20,
                                event=AnnounceEvent.STOPPED), 2)
        state.announce(announce(PEER_C, 4, user="bob", info_hash=b"c" * 20), 3)
        self.assertEqual(state.user_torrents("bob"), 2)

    def test_own_limit(self) -> None:
        """user_limit gives each user its own limit; None falls back to max_torrents_per_user."""
        limits = {"bob": 1, "eve": None}
        state = TrackerState(random.Random(1), max_torrents_per_user=2, user_limit=limits.get)
        state.announce(announce(user="bob", info_hash=b"a" * 20), 0)
        self.assertRaises(RequestRefused, state.announce,
                          announce(user="bob", info_hash=b"b" * 20), 0)
        state.announce(announce(PEER_B, 2, user="eve", info_hash=b"a" * 20), 0)
        state.announce(announce(PEER_B, 2, user="eve", info_hash=b"b" * 20), 0)
        self.assertRaises(RequestRefused, state.announce,
                          announce(PEER_B, 2, user="eve", info_hash=b"c" * 20), 0)

    def test_bookkeeping(self) -> None:
        """Expiry and eviction count a user's records out as well."""
        state = TrackerState(random.Random(1), interval=100, max_swarms=2,
                             max_torrents_per_user=5)
        state.announce(announce(user="bob", info_hash=b"a" * 20), 0)
        state.announce(announce(PEER_B, 2, user="bob", info_hash=b"a" * 20), 0)
        state.announce(announce(user="bob", info_hash=b"b" * 20), 0)
        state.announce(announce(PEER_C, 3, info_hash=b"c" * 20), 1)  # evicts a
        self.assertEqual(state.user_torrents("bob"), 1)
        state.expire(1000)
        self.assertEqual((state.user_torrents("bob"), state.peer_count), (0, 0))
