"""A per-source-address rate limit for the tracker: token buckets in a bounded table.

Theory of operation
-------------------
``RateLimiter.allow(address, now)`` spends one token of ``address``'s bucket
and says whether there was one.  A bucket holds at most ``burst`` tokens and
refills at ``per_minute / 60`` tokens a second; a new address starts full.
The table holds at most ``max_entries`` buckets, least recently used first:
when it is full, the least recently used bucket is dropped (that address
starts again with a full bucket, which costs an attacker with that many
addresses nothing it could not have had anyway).  ``now`` comes from the
caller; nothing here reads a clock.
"""

from __future__ import annotations

__all__ = ["RateLimiter", "MAX_ENTRIES"]

MAX_ENTRIES = 100_000
"""Most addresses whose buckets are remembered at once."""


class RateLimiter:
    """Token buckets by address (see the module docstring)."""

    def __init__(
        self, per_minute: float, *, burst: float | None = None, max_entries: int = MAX_ENTRIES
    ) -> None:
        if per_minute <= 0 or max_entries < 1:
            raise ValueError("per_minute and max_entries must be positive")
        self.rate = per_minute / 60.0
        self.burst = float(per_minute if burst is None else burst)
        self.max_entries = max_entries
        self.refused = 0
        """Requests refused so far."""
        self._buckets: dict[str, tuple[float, float]] = {}  # address: (tokens, when)

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, address: str, now: float) -> bool:
        """Spend a token of ``address``'s bucket at ``now``; False if it is empty."""
        entry = self._buckets.pop(address, None)
        if entry is None:
            tokens = self.burst
            if len(self._buckets) >= self.max_entries:
                del self._buckets[next(iter(self._buckets))]
        else:
            tokens = min(self.burst, entry[0] + max(now - entry[1], 0.0) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        else:
            self.refused += 1
        self._buckets[address] = (tokens, now)
        return allowed
