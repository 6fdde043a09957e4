"""Hostile load on the tracker's registry: many fake info hashes, announce floods.

Memory figures are printed to the test log (tracemalloc), never asserted
against a threshold; what is asserted is the bound on what is kept."""

from __future__ import annotations

import random
import tracemalloc

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.tracker.ratelimit import RateLimiter
from txbittorrent.core.tracker.swarms import Announce, TrackerState

PEER = b"-TX0010-aaaaaaaaaaaa"


class ManyInfoHashesTests(SynchronousTestCase):
    """100k distinct info hashes against a cap of 10k swarms."""

    def test_cap_and_eviction(self) -> None:
        """The swarm table stays at its cap; memory per swarm is logged."""
        cap, total = 10_000, 100_000
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            state = TrackerState(random.Random(1), max_swarms=cap)
            for n in range(total):
                state.announce(
                    Announce(n.to_bytes(20, "big"), PEER, f"10.{n >> 16 & 255}.{n >> 8 & 255}."
                             f"{n & 255}", 6881, 100), n / 100)
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        self.assertEqual((len(state), state.peer_count, state.evicted), (cap, cap, total - cap))
        self.assertEqual(state.info_hashes()[0], (total - cap).to_bytes(20, "big"))
        print(f"\n{total} info hashes, cap {cap}: {held / 2**20:.1f} MiB held,"
              f" {held / cap:.0f} bytes per swarm of one peer")

    def test_refusal_mode(self) -> None:
        """Without eviction, info hashes past the cap are refused and the first ones kept."""
        state = TrackerState(random.Random(1), max_swarms=100, evict_swarms=False)
        refused = 0
        for n in range(1000):
            try:
                state.announce(Announce(n.to_bytes(20, "big"), PEER, "10.0.0.1", 6881, 1), 0)
            except ValueError:
                refused += 1
        self.assertEqual((refused, len(state)), (900, 100))
        self.assertEqual(state.info_hashes()[0], bytes(20))


class FloodTests(SynchronousTestCase):
    """An announce flood from many addresses keeps the rate limit's table bounded."""

    def test_hot_and_cold_sources(self) -> None:
        """Ten hot addresses get a burst each; 100k cold ones leave the table at its cap."""
        limiter = RateLimiter(30, max_entries=50_000)
        hot = sum(limiter.allow(f"10.0.0.{n % 10}", 0.0) for n in range(10_000))
        self.assertEqual((hot, limiter.refused), (300, 9_700))
        for n in range(100_000):
            limiter.allow(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 1.0)
        self.assertEqual(len(limiter), 50_000)
