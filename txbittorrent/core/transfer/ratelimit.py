"""Token buckets for rate limits, without a clock.

Theory of operation
-------------------
A ``TokenBucket`` holds up to ``burst`` tokens (bytes) and gains ``rate``
tokens per second.  Traffic is charged when it happens, in full, and the
bucket may go into debt: ``consume(n, now)`` takes ``n`` tokens and returns how
many seconds the caller must wait before the bytes count as allowed (0.0 when
the bucket could pay at once).  Because the charge never waits for ``n``
tokens to be there, a block larger than ``burst`` is delayed, never starved,
and the average can never exceed the rate: by time ``t`` at most
``burst + rate * t`` bytes have been allowed since the bucket was full.

A bucket with ``rate=None`` is unlimited: it keeps no account and every
``consume`` returns 0.0.  Raising or lowering the rate keeps the balance
(debt included); a bucket that becomes limited starts full.

Nothing here reads a clock: ``now`` (seconds, from any monotonic source) is an
argument.  A ``now`` earlier than the last one seen is treated as no time
passing.  Several limits that apply to the same bytes (the session's global
limit and a torrent's) combine with ``consume_all``: each bucket is charged,
and the caller waits for the slowest.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["TokenBucket", "consume_all", "DEFAULT_BURST_SECONDS"]

DEFAULT_BURST_SECONDS = 0.25
"""A bucket's default capacity, in seconds' worth of its rate: small enough
that a 10-second average stays within 3% of the limit, large enough that a
16 KiB block is rarely held back at rates above 64 KiB/s."""


def _check_rate(rate: float | None) -> None:
    if rate is not None and not rate > 0:
        raise ValueError(f"rate must be positive or None (unlimited), not {rate!r}")


class TokenBucket:
    """One rate limit: ``rate`` bytes per second, bursts of ``burst`` bytes."""

    __slots__ = ("rate", "burst", "tokens", "_last")

    def __init__(self, rate: float | None, burst: float | None = None, now: float = 0.0) -> None:
        """``burst`` defaults to ``DEFAULT_BURST_SECONDS`` of ``rate``; the
        bucket starts full at time ``now``."""
        _check_rate(rate)
        self.rate = rate
        self.burst = self._burst_for(rate, burst)
        self.tokens = self.burst
        self._last = now

    @staticmethod
    def _burst_for(rate: float | None, burst: float | None) -> float:
        if burst is None:
            return 0.0 if rate is None else rate * DEFAULT_BURST_SECONDS
        if burst < 0:
            raise ValueError(f"burst must not be negative, not {burst!r}")
        return float(burst)

    @property
    def limited(self) -> bool:
        return self.rate is not None

    def _refill(self, now: float) -> None:
        rate = self.rate
        elapsed = now - self._last
        if elapsed > 0:
            self._last = now
            if rate is not None:
                tokens = self.tokens + elapsed * rate
                self.tokens = tokens if tokens < self.burst else self.burst

    def consume(self, n: float, now: float) -> float:
        """Charge ``n`` bytes at time ``now``; return the seconds to wait
        before they are allowed (0.0 if allowed now)."""
        rate = self.rate
        if rate is None:
            return 0.0
        self._refill(now)
        tokens = self.tokens - n
        self.tokens = tokens
        return -tokens / rate if tokens < 0 else 0.0

    def delay(self, now: float) -> float:
        """Seconds until the debt (if any) is paid, without charging anything."""
        rate = self.rate
        if rate is None:
            return 0.0
        self._refill(now)
        return -self.tokens / rate if self.tokens < 0 else 0.0

    def set_rate(self, rate: float | None, now: float, burst: float | None = None) -> None:
        """Change the limit from time ``now`` on (``burst`` as in the
        constructor).  Time before ``now`` is accounted at the old rate."""
        _check_rate(rate)
        self._refill(now)
        was_limited = self.rate is not None
        self.rate = rate
        self.burst = self._burst_for(rate, burst)
        if rate is None:
            self.tokens = 0.0
        elif not was_limited:
            self.tokens = self.burst
        elif self.tokens > self.burst:
            self.tokens = self.burst

    def __repr__(self) -> str:
        if self.rate is None:
            return "<TokenBucket unlimited>"
        return f"<TokenBucket {self.rate:g} B/s, {self.tokens:g}/{self.burst:g} tokens>"


def consume_all(buckets: Iterable[TokenBucket], n: float, now: float) -> float:
    """Charge ``n`` bytes to every bucket; return the longest wait among them."""
    delay = 0.0
    for bucket in buckets:
        wait = bucket.consume(n, now)
        if wait > delay:
            delay = wait
    return delay
