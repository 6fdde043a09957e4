"""Tests for txbittorrent.swarm.peerstate: rate meters and peer flags."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.swarm.peerstate import RateMeter


class RateMeterTests(SynchronousTestCase):
    """Rates from a counter and periodic samples."""

    def test_rate_over_window(self) -> None:
        """The rate is the bytes since the window's start over its length."""
        meter = RateMeter(0.0, keep=10.0)
        for second in range(1, 21):
            meter.total += 1000 if second <= 10 else 3000
            meter.sample(float(second))
        self.assertAlmostEqual(meter.rate(20.0, 5.0), 3000.0)
        self.assertAlmostEqual(meter.rate(20.0, 10.0), 3000.0)

    def test_young_meter(self) -> None:
        """Before a full window has passed, the rate is over the time so far."""
        meter = RateMeter(100.0, keep=20.0)
        meter.total = 500
        self.assertAlmostEqual(meter.rate(102.0, 20.0), 250.0)
        self.assertEqual(meter.rate(100.0, 20.0), 0.0)

    def test_unsampled_bytes_count(self) -> None:
        """Bytes since the last sample count at once."""
        meter = RateMeter(0.0, keep=5.0)
        meter.sample(1.0)
        meter.total = 2000
        self.assertAlmostEqual(meter.rate(2.0, 5.0), 1000.0)

    def test_bounded_history(self) -> None:
        """Old samples are forgotten."""
        meter = RateMeter(0.0, keep=3.0)
        for second in range(1, 100):
            meter.sample(float(second))
        self.assertLessEqual(len(meter._samples), 5)
