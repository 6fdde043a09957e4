"""Tests for txbittorrent.swarm.peerstate: rate meters and peer flags."""

from __future__ import annotations

from types import SimpleNamespace

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.swarm.peerstate import PeerState, RateMeter
from txbittorrent.testing import FakePeerHost


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


class EncryptedFlagTests(SynchronousTestCase):
    """A peer whose link went through the MSE/PE handshake."""

    def state(self, encrypted: bool) -> PeerState:
        session = FakePeerHost(Clock(), b"\x11" * 20, b"-TX0001-" + b"o" * 12).new_peer_session(True)
        link = SimpleNamespace(session=session, address=("10.0.0.1", 5), outgoing=False,
                               encrypted_handshake=encrypted)
        return PeerState(link, 0.0, 10.0, 4)  # type: ignore[arg-type]

    def test_flag_and_info(self) -> None:
        """E in the flags and encrypted in the info; neither for a plain link."""
        on, off = self.state(True), self.state(False)
        self.assertTrue(on.flags().endswith("IE"))
        self.assertTrue(on.info(0.0, 5.0).encrypted)
        self.assertNotIn("E", off.flags())
        self.assertFalse(off.info(0.0, 5.0).encrypted)
