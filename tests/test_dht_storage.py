"""Tests for txbittorrent.core.dht.storage (announced peers) and
txbittorrent.core.dht.ratelimit (queries per source address)."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.dht.ratelimit import SourceRateLimit
from txbittorrent.core.dht.storage import MAX_VALUES, PEER_LIFETIME, PeerStore


def h(n: int) -> bytes:
    """The n-th test info hash."""
    return n.to_bytes(20, "big")


def peer(n: int) -> tuple[str, int]:
    """The n-th test peer."""
    return ("10.0.%d.%d" % divmod(n, 256), 6881)


class PeerStoreTests(SynchronousTestCase):
    """Announced peers: kept, expired, bounded, sampled."""

    def test_announce_and_get(self) -> None:
        """Announced peers come back for their info hash only."""
        store = PeerStore()
        store.announce(h(1), peer(1), 0.0)
        store.announce(h(1), peer(2), 0.0)
        store.announce(h(2), peer(3), 0.0)
        rng = random.Random(1)
        self.assertEqual(sorted(store.get(h(1), 1.0, rng)), [peer(1), peer(2)])
        self.assertEqual(store.get(h(3), 1.0, rng), [])
        self.assertEqual((len(store), store.peer_count), (2, 3))
        self.assertIn(h(2), store)

    def test_reannounce_is_one_peer(self) -> None:
        """Announcing again refreshes the peer instead of adding another."""
        store = PeerStore()
        store.announce(h(1), peer(1), 0.0)
        store.announce(h(1), peer(1), PEER_LIFETIME - 1)
        self.assertEqual(store.peer_count, 1)
        self.assertEqual(store.get(h(1), PEER_LIFETIME + 5, random.Random(1)), [peer(1)])

    def test_expiry(self) -> None:
        """A peer goes lifetime seconds after its last announce; an emptied info
        hash goes with it."""
        store = PeerStore()
        store.announce(h(1), peer(1), 0.0)
        store.announce(h(1), peer(2), 100.0)
        store.announce(h(2), peer(3), 0.0)
        rng = random.Random(1)
        self.assertEqual(store.get(h(1), PEER_LIFETIME, rng), [peer(2)])
        self.assertEqual(store.expire(PEER_LIFETIME), 1)
        self.assertNotIn(h(2), store)
        self.assertEqual(store.get(h(1), PEER_LIFETIME + 100, rng), [])
        self.assertEqual((len(store), store.peer_count), (0, 0))

    def test_announce_after_expiry(self) -> None:
        """An info hash whose peers all expired takes a new announce."""
        store = PeerStore()
        store.announce(h(1), peer(1), 0.0)
        store.announce(h(1), peer(2), PEER_LIFETIME + 1)
        self.assertEqual(store.get(h(1), PEER_LIFETIME + 2, random.Random(1)), [peer(2)])
        self.assertEqual(store.peer_count, 1)

    def test_per_info_hash_bound(self) -> None:
        """A full info hash forgets its oldest announce."""
        store = PeerStore(max_peers_per_info_hash=3)
        for n in range(5):
            store.announce(h(1), peer(n), float(n))
        store.announce(h(1), peer(2), 10.0)
        store.announce(h(1), peer(5), 11.0)
        held = sorted(store.get(h(1), 12.0, random.Random(1)))
        self.assertEqual(held, [peer(2), peer(4), peer(5)])

    def test_info_hash_bound(self) -> None:
        """Beyond max_info_hashes, the least recently announced info hash goes."""
        store = PeerStore(max_info_hashes=2)
        store.announce(h(1), peer(1), 0.0)
        store.announce(h(2), peer(2), 1.0)
        store.announce(h(1), peer(3), 2.0)
        store.announce(h(3), peer(4), 3.0)
        self.assertEqual((h(1) in store, h(2) in store, h(3) in store), (True, False, True))
        self.assertEqual(store.peer_count, 3)

    def test_total_bound(self) -> None:
        """Beyond max_peers, the oldest peers of the stalest info hash go first."""
        store = PeerStore(max_peers=3)
        store.announce(h(1), peer(1), 0.0)
        store.announce(h(1), peer(2), 1.0)
        store.announce(h(2), peer(3), 2.0)
        store.announce(h(3), peer(4), 3.0)
        self.assertEqual(store.get(h(1), 4.0, random.Random(1)), [peer(2)])
        store.announce(h(3), peer(5), 4.0)
        self.assertNotIn(h(1), store)
        self.assertEqual(store.peer_count, 3)

    def test_sample(self) -> None:
        """Over n peers, get returns n distinct ones chosen by the rng."""
        store = PeerStore()
        for n in range(120):
            store.announce(h(1), peer(n), 0.0)
        first = store.get(h(1), 1.0, random.Random(1))
        self.assertEqual(len(first), MAX_VALUES)
        self.assertEqual(len(set(first)), MAX_VALUES)
        self.assertEqual(first, store.get(h(1), 1.0, random.Random(1)))
        self.assertNotEqual(first, store.get(h(1), 1.0, random.Random(2)))
        self.assertEqual(len(store.get(h(1), 1.0, random.Random(1), n=7)), 7)

    def test_options(self) -> None:
        """Bounds must be positive."""
        for options in ({"max_peers": 0}, {"max_info_hashes": 0}, {"lifetime": 0.0}):
            with self.assertRaises(ValueError):
                PeerStore(**options)

    @given(st.lists(st.tuples(st.integers(0, 12), st.integers(0, 40), st.integers(0, 500)),
                    max_size=400))
    @settings(max_examples=100, deadline=None)
    def test_bounds_hold(self, announces: list[tuple[int, int, int]]) -> None:
        """Whatever is announced, every bound holds and the count is exact."""
        store = PeerStore(max_info_hashes=5, max_peers_per_info_hash=6, max_peers=20, lifetime=900)
        now = 0.0
        for info, who, step in announces:
            now += step
            store.announce(h(info), peer(who), now)
            self.assertLessEqual(len(store), 5)
            self.assertLessEqual(store.peer_count, 20)
            held = [store.get(h(i), now, random.Random(0), n=100) for i in range(13)]
            self.assertTrue(all(len(p) <= 6 for p in held))
            self.assertEqual(sum(map(len, held)), store.peer_count)


class SourceRateLimitTests(SynchronousTestCase):
    """A token bucket per source host."""

    def test_burst_then_rate(self) -> None:
        """A host gets its burst at once, then rate per second."""
        limit = SourceRateLimit(rate=2.0, burst=5.0)
        self.assertEqual([limit.allow("1.2.3.4", 0.0) for _ in range(6)], [True] * 5 + [False])
        self.assertFalse(limit.allow("1.2.3.4", 0.4))
        self.assertTrue(limit.allow("1.2.3.4", 0.6))
        self.assertFalse(limit.allow("1.2.3.4", 0.6))
        self.assertEqual([limit.allow("1.2.3.4", 100.0) for _ in range(6)], [True] * 5 + [False])
        self.assertEqual(limit.refused, 4)

    def test_hosts_independent(self) -> None:
        """One host's flood does not limit another."""
        limit = SourceRateLimit(rate=1.0, burst=1.0)
        self.assertTrue(limit.allow("1.2.3.4", 0.0))
        self.assertFalse(limit.allow("1.2.3.4", 0.0))
        self.assertTrue(limit.allow("::1", 0.0))

    def test_sources_bounded(self) -> None:
        """At most max_sources hosts are tracked; the least recently seen go."""
        limit = SourceRateLimit(rate=1.0, burst=1.0, max_sources=2)
        limit.allow("10.0.0.1", 0.0)
        limit.allow("10.0.0.2", 0.0)
        limit.allow("10.0.0.1", 0.0)
        limit.allow("10.0.0.3", 0.0)
        self.assertEqual(len(limit), 2)
        self.assertFalse(limit.allow("10.0.0.3", 0.0))
        self.assertTrue(limit.allow("10.0.0.2", 0.0))

    def test_global(self) -> None:
        """The global bucket caps all hosts together."""
        limit = SourceRateLimit(rate=100.0, burst=100.0, global_rate=1.0, global_burst=3.0)
        allowed = [limit.allow(f"10.0.0.{n}", 0.0) for n in range(5)]
        self.assertEqual(allowed, [True, True, True, False, False])
        self.assertTrue(limit.allow("10.0.0.9", 1.0))

    def test_clock_backwards(self) -> None:
        """A clock going back adds no tokens."""
        limit = SourceRateLimit(rate=1.0, burst=1.0)
        self.assertTrue(limit.allow("1.2.3.4", 10.0))
        self.assertFalse(limit.allow("1.2.3.4", 5.0))
        self.assertFalse(limit.allow("1.2.3.4", 10.5))
        self.assertTrue(limit.allow("1.2.3.4", 11.0))

    def test_options(self) -> None:
        """Rates and bounds must be positive."""
        for args in ({"rate": 0.0}, {"burst": 0.5}, {"max_sources": 0}, {"global_rate": 0.0}):
            with self.assertRaises(ValueError):
                SourceRateLimit(**args)
