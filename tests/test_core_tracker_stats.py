"""Tests for txbittorrent.core.tracker.stats: TrackerStats' totals and windowed rates."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.tracker.stats import BUCKET, Rates, TrackerStats, count_udp_reply


class FakeClock:
    """A settable time source."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TrackerStatsTests(SynchronousTestCase):
    """Counting and rates."""

    def setUp(self) -> None:
        self.clock = FakeClock()
        self.stats = TrackerStats(self.clock)

    def test_totals_by_protocol(self) -> None:
        """Totals are kept per kind and protocol and summed over protocols."""
        for _ in range(3):
            self.stats.announce("http")
        self.stats.announce("udp")
        self.stats.scrape("udp")
        self.stats.error("http")
        self.assertEqual(self.stats.total("announce", "http"), 3)
        self.assertEqual(self.stats.total("announce", "udp"), 1)
        self.assertEqual(self.stats.total("announce"), 4)
        self.assertEqual(self.stats.total("scrape"), 1)
        self.assertEqual(self.stats.total("error", "udp"), 0)
        self.assertEqual(self.stats.total("error"), 1)

    def test_unknown_protocol_refused(self) -> None:
        """A protocol that is not http or udp raises ValueError and counts nothing."""
        self.assertRaises(ValueError, self.stats.announce, "tcp")
        self.assertRaises(ValueError, self.stats.total, "announce", "tcp")
        self.assertRaises(ValueError, self.stats.rate, "bogus")
        self.assertRaises(ValueError, self.stats.rate, "announce", None, 61)
        self.assertEqual(self.stats.total("announce"), 0)

    def test_rates_over_full_windows(self) -> None:
        """After 15 minutes up, the rates divide the events in each window by the window."""
        self.clock.now += 1000
        # 60 announces in the last minute, 240 more 2-4 minutes ago, 600 more 10 minutes ago.
        self.clock.now -= 600
        for _ in range(600):
            self.stats.announce("udp")
        self.clock.now += 420
        for _ in range(240):
            self.stats.announce("udp")
        self.clock.now += 150
        for _ in range(60):
            self.stats.announce("udp")
        self.clock.now += 10
        self.assertEqual(self.stats.rates("announce", "udp"), Rates(1.0, 1.0, 1.0))
        self.assertEqual(self.stats.rate("announce", "http", 60), 0.0)

    def test_old_events_leave_the_window(self) -> None:
        """Events older than a window no longer count in it, though the total keeps them."""
        self.clock.now += 1000
        for _ in range(30):
            self.stats.scrape("http")
        self.clock.now += 120
        self.assertEqual(self.stats.rate("scrape", "http", 60), 0.0)
        self.assertEqual(self.stats.rate("scrape", "http", 300), 30 / 300)
        self.clock.now += 900
        self.assertEqual(self.stats.rates("scrape"), Rates(0.0, 0.0, 0.0))
        self.assertEqual(self.stats.total("scrape"), 30)

    def test_reused_slot_resets(self) -> None:
        """A ring slot reused a full ring later starts from zero, not from the old count."""
        self.clock.now += 1000
        for _ in range(10):
            self.stats.error("udp")
        self.clock.now += 900  # same slot, next lap
        self.stats.error("udp")
        self.assertEqual(self.stats.rate("error", "udp", 60), 1 / 60)

    def test_young_tracker_divides_by_uptime(self) -> None:
        """Before a window has passed, a rate divides by the uptime (at least one bucket)."""
        for _ in range(20):
            self.stats.announce("http")
        self.assertEqual(self.stats.rate("announce", "http", 900), 20 / BUCKET)
        self.clock.now += 10
        self.assertEqual(self.stats.rate("announce", "http", 900), 2.0)
        self.assertEqual(self.stats.uptime(), 10.0)

    def test_count_udp_reply(self) -> None:
        """UDP replies count by their action: announce, scrape, error; connect and silence not."""
        for action in (0, 1, 1, 2, 3):
            count_udp_reply(self.stats, action.to_bytes(4, "big") + b"\0" * 12)
        count_udp_reply(self.stats, None)
        count_udp_reply(self.stats, b"\0")
        self.assertEqual([self.stats.total(k, "udp") for k in ("announce", "scrape", "error")],
                         [2, 1, 1])
        self.assertEqual(self.stats.total("announce", "http"), 0)
