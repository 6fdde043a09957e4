"""Tests for txbittorrent.peer.throttle: token buckets on a Clock."""

from __future__ import annotations

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.peer.throttle import Throttle, longest_delay


class ThrottleTests(SynchronousTestCase):
    """A Throttle charges bytes at the clock's time."""

    def test_unlimited(self) -> None:
        """An unlimited throttle asks for no delay."""
        throttle = Throttle(None, Clock())
        self.assertFalse(throttle.limited)
        self.assertIsNone(throttle.rate)
        self.assertEqual(throttle.consume(10**9), 0.0)
        self.assertEqual(throttle.delay(), 0.0)

    def test_delay_follows_clock(self) -> None:
        """The debt is paid as the clock advances."""
        clock = Clock()
        throttle = Throttle(1000.0, clock, burst=0)
        self.assertEqual(throttle.consume(500), 0.5)
        clock.advance(0.25)
        self.assertEqual(throttle.delay(), 0.25)
        clock.advance(0.25)
        self.assertEqual(throttle.delay(), 0.0)

    def test_starts_full_at_any_time(self) -> None:
        """A throttle made when the clock is far from zero starts with its burst."""
        clock = Clock()
        clock.advance(1e6)
        throttle = Throttle(1000.0, clock, burst=100)
        self.assertEqual(throttle.consume(100), 0.0)
        self.assertEqual(throttle.consume(100), 0.1)

    def test_set_rate(self) -> None:
        """Rates can be set, raised and removed at any time."""
        clock = Clock()
        throttle = Throttle(None, clock)
        throttle.set_rate(1000.0, burst=0)
        self.assertTrue(throttle.limited)
        self.assertEqual(throttle.rate, 1000.0)
        self.assertEqual(throttle.consume(1000), 1.0)
        throttle.set_rate(None)
        self.assertEqual(throttle.consume(1000), 0.0)
        self.assertEqual(repr(throttle), "<Throttle unlimited>")
        throttle.set_rate(2048.0)
        self.assertEqual(repr(throttle), "<Throttle 2048 B/s>")

    def test_longest_delay(self) -> None:
        """Several throttles are all charged; the longest wait wins."""
        clock = Clock()
        a = Throttle(1000.0, clock, burst=0)
        b = Throttle(100.0, clock, burst=0)
        self.assertEqual(longest_delay([a, b, Throttle(None, clock)], 100), 1.0)
        self.assertEqual(a.delay(), 0.1)

    def test_rate_holds_over_ten_seconds(self) -> None:
        """Sending whenever allowed for 10 s at 1 MB/s moves 10 MB within 10%."""
        clock = Clock()
        throttle = Throttle(1_000_000.0, clock)
        sent = 0
        while clock.seconds() < 10.0:
            wait = throttle.consume(16384)
            sent += 16384
            if wait:
                clock.advance(wait)
        self.assertApproximates(sent, 10_000_000, 1_000_000)
