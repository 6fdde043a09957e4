"""A rate limit bound to a clock: ``core.ratelimit.TokenBucket`` plus time.

Theory of operation
-------------------
A ``Throttle`` is shared by every connection it limits: the ``Session`` owns
one per direction for the global limits, each torrent (``PeerHost``) one per
direction for its own.  It holds no timers and knows no connection; it only
answers "these ``n`` bytes were sent (or received): how long must this
connection wait before it moves more?".  The connection does the waiting:
``PeerProtocol`` queues its blocks behind the delay (upload) or pauses the
transport for it (download).

Bytes are charged when they move and the bucket may go into debt (see
``core.ratelimit``), so a limit holds on average over any window of a few
seconds, whatever the block size.  Connections sharing a throttle are served
first come, first served; nothing makes them share it evenly.

An unlimited throttle (``rate=None``) never reads its clock, so it costs one
method call per ``consume``.  The constructor reads nothing; without a
``clock`` the global reactor is imported the first time a limited throttle
needs the time (never at module level).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from txbittorrent._reactor import resolve_reactor
from txbittorrent.core.transfer.ratelimit import TokenBucket

__all__ = ["Throttle", "longest_delay"]


class Throttle:
    """``rate`` bytes per second (``None``: unlimited) on ``clock``."""

    __slots__ = ("_bucket", "_clock")

    def __init__(
        self,
        rate: float | None = None,
        clock: Any = None,
        burst: float | None = None,
    ) -> None:
        """``clock`` is an ``IReactorTime``; ``burst`` (bytes) defaults to a
        quarter of a second of ``rate``."""
        self._clock = clock
        # Starting at time 0 is starting full: the first refill is capped at burst.
        self._bucket = TokenBucket(rate, burst)

    def _now(self) -> float:
        clock = self._clock
        if clock is None:
            clock = self._clock = resolve_reactor()
        seconds: float = clock.seconds()
        return seconds

    @property
    def rate(self) -> float | None:
        """Bytes per second, or ``None`` for unlimited."""
        return self._bucket.rate

    @property
    def limited(self) -> bool:
        return self._bucket.rate is not None

    def set_rate(self, rate: float | None, burst: float | None = None) -> None:
        """Change the limit now; the balance (and any debt) carries over."""
        if rate is None and self._bucket.rate is None:
            return
        self._bucket.set_rate(rate, self._now(), burst)

    def consume(self, n: int) -> float:
        """Charge ``n`` bytes; return the seconds to wait (0.0: go on now)."""
        bucket = self._bucket
        if bucket.rate is None:
            return 0.0
        return bucket.consume(n, self._now())

    def delay(self) -> float:
        """Seconds until the debt is paid; 0.0 when bytes may move now."""
        bucket = self._bucket
        if bucket.rate is None:
            return 0.0
        return bucket.delay(self._now())

    def __repr__(self) -> str:
        rate = self._bucket.rate
        return "<Throttle unlimited>" if rate is None else f"<Throttle {rate:g} B/s>"


def longest_delay(throttles: Iterable[Throttle], n: int) -> float:
    """Charge ``n`` bytes to each throttle; return the longest wait."""
    delay = 0.0
    for throttle in throttles:
        wait = throttle.consume(n)
        if wait > delay:
            delay = wait
    return delay
