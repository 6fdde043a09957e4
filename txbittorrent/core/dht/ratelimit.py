"""A rate limit on incoming DHT queries: a token bucket per source address.

Theory of operation
-------------------
Every query we answer costs a reply datagram, and an unanswered flood still
costs decoding, so the adapter asks ``allow(host, now)`` before it decodes a
datagram (or at least before it answers) and drops what is refused, silently
as libtorrent does.

* Each source host has a bucket of ``burst`` tokens refilled at ``rate``
  tokens a second; a datagram takes one token, and is refused when the
  bucket is empty.
* At most ``max_sources`` hosts are tracked, least recently seen forgotten
  first (a forgotten host starts again with a full bucket), so a flood from
  many (possibly spoofed) addresses costs bounded memory.
* Because source addresses cost nothing to spoof in UDP, an optional global
  bucket (``global_rate``, ``global_burst``) caps the total the node answers.

Loopback tests where every node is 127.0.0.1 need a generous per-host rate;
the defaults (5 a second, bursts of 20) are about libtorrent's (it blocks a
host after 50 packets in 10 seconds).
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["SourceRateLimit", "RATE", "BURST", "MAX_SOURCES"]

RATE = 5.0
"""Queries a second each source host may send, sustained."""
BURST = 20.0
"""Queries a source host may send at once after a quiet spell."""
MAX_SOURCES = 4096
"""Source hosts tracked at once."""


class _Bucket:
    __slots__ = ("tokens", "updated")

    def __init__(self, tokens: float, updated: float) -> None:
        self.tokens = tokens
        self.updated = updated

    def take(self, now: float, rate: float, burst: float) -> bool:
        if now > self.updated:
            self.tokens = min(burst, self.tokens + (now - self.updated) * rate)
            self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class SourceRateLimit:
    """Token buckets by source host, bounded in number (see the module docstring)."""

    def __init__(
        self,
        rate: float = RATE,
        burst: float = BURST,
        *,
        max_sources: int = MAX_SOURCES,
        global_rate: float | None = None,
        global_burst: float | None = None,
    ) -> None:
        if rate <= 0 or burst < 1 or max_sources < 1:
            raise ValueError("rate must be positive, burst at least 1, max_sources positive")
        if global_rate is not None and global_rate <= 0:
            raise ValueError("global_rate must be positive")
        self.rate = rate
        self.burst = burst
        self.max_sources = max_sources
        self.global_rate = global_rate
        self.global_burst = max(1.0, global_burst or global_rate or 1.0)
        self._sources: OrderedDict[str, _Bucket] = OrderedDict()
        self._global: _Bucket | None = None
        self.refused = 0
        """How many datagrams ``allow`` refused so far (for statistics)."""

    def __len__(self) -> int:
        """Source hosts tracked."""
        return len(self._sources)

    def allow(self, host: str, now: float) -> bool:
        """Whether a datagram from ``host`` at ``now`` may be handled (takes a token)."""
        bucket = self._sources.get(host)
        if bucket is None:
            bucket = self._sources[host] = _Bucket(self.burst, now)
            while len(self._sources) > self.max_sources:
                self._sources.popitem(last=False)
        else:
            self._sources.move_to_end(host)
        allowed = bucket.take(now, self.rate, self.burst)
        if allowed and self.global_rate is not None:
            if self._global is None:
                self._global = _Bucket(self.global_burst, now)
            allowed = self._global.take(now, self.global_rate, self.global_burst)
        if not allowed:
            self.refused += 1
        return allowed
