"""Tests for txbittorrent.core.transfer.ratelimit: token buckets driven by explicit times."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.transfer.ratelimit import DEFAULT_BURST_SECONDS, TokenBucket, consume_all


class TokenBucketTests(SynchronousTestCase):
    """One bucket: charging, debt, refill and rate changes."""

    def test_unlimited(self) -> None:
        """A bucket without a rate never asks for a delay."""
        bucket = TokenBucket(None, 0)
        self.assertFalse(bucket.limited)
        self.assertEqual(bucket.consume(10**12, 0.0), 0.0)
        self.assertEqual(bucket.delay(0.0), 0.0)

    def test_default_burst(self) -> None:
        """Without a burst the bucket holds DEFAULT_BURST_SECONDS of its rate, full."""
        bucket = TokenBucket(1000.0)
        self.assertEqual(bucket.burst, 1000.0 * DEFAULT_BURST_SECONDS)
        self.assertEqual(bucket.tokens, bucket.burst)

    def test_within_burst(self) -> None:
        """Bytes the bucket holds are allowed at once."""
        bucket = TokenBucket(100.0, 50.0)
        self.assertEqual(bucket.consume(30, 0.0), 0.0)
        self.assertEqual(bucket.consume(20, 0.0), 0.0)
        self.assertEqual(bucket.tokens, 0.0)

    def test_debt_delays(self) -> None:
        """Bytes beyond the tokens are charged anyway; the delay pays the debt."""
        bucket = TokenBucket(100.0, 50.0)
        self.assertEqual(bucket.consume(250, 0.0), 2.0)
        self.assertEqual(bucket.tokens, -200.0)
        self.assertEqual(bucket.delay(1.0), 1.0)
        self.assertEqual(bucket.delay(2.0), 0.0)

    def test_block_larger_than_burst(self) -> None:
        """A block larger than the burst waits, it is not starved."""
        bucket = TokenBucket(10.0, 1.0)
        self.assertAlmostEqual(bucket.consume(16, 0.0), 1.5)

    def test_refill_capped(self) -> None:
        """An idle bucket fills up to its burst and no further."""
        bucket = TokenBucket(100.0, 50.0)
        bucket.consume(50, 0.0)
        self.assertEqual(bucket.consume(0, 0.25), 0.0)
        self.assertEqual(bucket.tokens, 25.0)
        bucket.consume(0, 100.0)
        self.assertEqual(bucket.tokens, 50.0)

    def test_time_going_back(self) -> None:
        """A time earlier than the last one seen counts as no time passing."""
        bucket = TokenBucket(100.0, 50.0, now=10.0)
        self.assertEqual(bucket.consume(150, 10.0), 1.0)
        self.assertEqual(bucket.consume(0, 5.0), 1.0)

    def test_average_rate_bound(self) -> None:
        """Whatever the block size, bytes allowed by time t never exceed burst + rate * t."""
        rate, burst = 1000.0, 250.0
        bucket = TokenBucket(rate, burst)
        now = 0.0
        allowed = 0
        while now < 10.0:
            wait = bucket.consume(300, now)
            now += wait
            allowed += 300
            self.assertLessEqual(allowed, burst + rate * now + 1e-6)
        self.assertGreaterEqual(allowed, rate * 10.0)

    def test_set_rate_keeps_debt(self) -> None:
        """A new rate applies from now on; the debt carries over."""
        bucket = TokenBucket(100.0, 50.0)
        bucket.consume(250, 0.0)  # 200 in debt
        bucket.set_rate(200.0, 1.0, burst=50.0)  # 100 paid at the old rate
        self.assertEqual(bucket.tokens, -100.0)
        self.assertEqual(bucket.delay(1.0), 0.5)

    def test_set_rate_caps_tokens(self) -> None:
        """Lowering the burst drops the tokens beyond it."""
        bucket = TokenBucket(100.0, 50.0)
        bucket.set_rate(100.0, 0.0, burst=10.0)
        self.assertEqual(bucket.tokens, 10.0)

    def test_becoming_limited_starts_full(self) -> None:
        """An unlimited bucket given a rate starts with a full burst."""
        bucket = TokenBucket(None)
        bucket.consume(10**9, 0.0)
        bucket.set_rate(100.0, 5.0)
        self.assertEqual(bucket.tokens, 25.0)
        self.assertEqual(bucket.consume(25, 5.0), 0.0)

    def test_becoming_unlimited(self) -> None:
        """Removing the rate forgets the debt."""
        bucket = TokenBucket(100.0, 0.0)
        bucket.consume(1000, 0.0)
        bucket.set_rate(None, 0.0)
        self.assertEqual(bucket.consume(1000, 0.0), 0.0)

    def test_bad_arguments(self) -> None:
        """A rate must be positive and a burst not negative."""
        self.assertRaises(ValueError, TokenBucket, 0.0)
        self.assertRaises(ValueError, TokenBucket, -1.0)
        self.assertRaises(ValueError, TokenBucket, 10.0, -1.0)
        self.assertRaises(ValueError, TokenBucket(10.0).set_rate, 0.0, 0.0)

    def test_repr(self) -> None:
        """The repr shows the rate and the tokens."""
        self.assertEqual(repr(TokenBucket(None)), "<TokenBucket unlimited>")
        self.assertEqual(repr(TokenBucket(10.0, 5.0)), "<TokenBucket 10 B/s, 5/5 tokens>")


class ConsumeAllTests(SynchronousTestCase):
    """Several limits on the same bytes."""

    def test_longest_wait(self) -> None:
        """Every bucket is charged and the slowest sets the delay."""
        fast = TokenBucket(1000.0, 0.0)
        slow = TokenBucket(100.0, 0.0)
        self.assertEqual(consume_all([fast, slow], 100, 0.0), 1.0)
        self.assertEqual(fast.tokens, -100.0)
        self.assertEqual(slow.tokens, -100.0)

    def test_unlimited_ignored(self) -> None:
        """Unlimited buckets add no delay; no buckets means none."""
        self.assertEqual(consume_all([TokenBucket(None), TokenBucket(None)], 10**6, 0.0), 0.0)
        self.assertEqual(consume_all([], 10**6, 0.0), 0.0)
