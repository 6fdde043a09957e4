"""What a tracker counts about itself: ``TrackerStats``.

Theory of operation
-------------------
The tracker's adapters call ``announce(protocol)``, ``scrape(protocol)``
and ``error(protocol)`` once per request (``protocol`` is ``"http"`` or
``"udp"``).  ``TrackerStats`` keeps, per kind of event and protocol, a
running total (for Prometheus counters) and a ring of ``BUCKET`` second
buckets covering the longest window (15 minutes), from which ``rate``
gives events per second over the last 1, 5 or 15 minutes.  It reads time
only through the injected ``clock`` (a callable returning seconds, e.g.
``reactor.seconds``), does no I/O and owns no timers: old buckets are
recognised by their epoch tag and reset lazily when reused or ignored when
read.

Invariants: a bucket slot holds the count of the epoch in its tag, and
only slots whose tag lies within the window are summed.  Recording is
O(1); reading a rate is O(window / BUCKET).

Decisions
---------
* A rate is the count in the window divided by the window, except while
  the tracker has been up for less than the window: then by the uptime (at
  least one bucket), so a fresh tracker does not under-report.
* An unknown protocol name raises ``ValueError`` (a typo in an adapter
  should fail its tests, not invent a label).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "BUCKET", "KINDS", "PROTOCOLS", "WINDOWS", "Rates", "TrackerStats", "count_udp_reply",
]

PROTOCOLS = ("http", "udp")
"""The tracker's transports, as labels."""
KINDS = ("announce", "scrape", "error")
"""What is counted."""
WINDOWS = (60, 300, 900)
"""The windows (seconds) rates are given over: 1, 5 and 15 minutes."""
BUCKET = 5
"""Seconds per bucket of the rate rings."""


@dataclass(frozen=True, slots=True)
class Rates:
    """Events per second over the last 1, 5 and 15 minutes."""

    m1: float
    m5: float
    m15: float


class _Ring:
    """Counts per ``BUCKET``-second epoch over the longest window."""

    __slots__ = ("tags", "counts")

    def __init__(self, size: int) -> None:
        self.tags = [-1] * size
        self.counts = [0] * size

    def add(self, epoch: int) -> None:
        slot = epoch % len(self.tags)
        if self.tags[slot] != epoch:
            self.tags[slot] = epoch
            self.counts[slot] = 0
        self.counts[slot] += 1

    def count(self, epoch: int, buckets: int) -> int:
        """Events in the ``buckets`` epochs ending with ``epoch`` (inclusive)."""
        oldest = epoch - buckets + 1
        return sum(c for t, c in zip(self.tags, self.counts) if oldest <= t <= epoch)


class TrackerStats:
    """Totals and 1/5/15-minute rates of announces, scrapes and errors by protocol."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self.started_at = clock()
        size = max(WINDOWS) // BUCKET
        self._totals = {(k, p): 0 for k in KINDS for p in PROTOCOLS}
        self._rings = {(k, p): _Ring(size) for k in KINDS for p in PROTOCOLS}

    # -- recording (called by the adapters) --------------------------------

    def announce(self, protocol: str) -> None:
        """One announce answered over ``protocol``."""
        self._record("announce", protocol)

    def scrape(self, protocol: str) -> None:
        """One scrape answered over ``protocol``."""
        self._record("scrape", protocol)

    def error(self, protocol: str) -> None:
        """One request refused or malformed over ``protocol``."""
        self._record("error", protocol)

    def _record(self, kind: str, protocol: str) -> None:
        key = (kind, protocol)
        if key not in self._totals:
            raise ValueError(f"unknown protocol {protocol!r}")
        self._totals[key] += 1
        self._rings[key].add(int(self._clock() // BUCKET))

    # -- reading ---------------------------------------------------------------

    def uptime(self) -> float:
        """Seconds since the stats were made."""
        return max(0.0, self._clock() - self.started_at)

    def total(self, kind: str, protocol: str | None = None) -> int:
        """Events of ``kind`` since the start, over ``protocol`` or all."""
        protocols = PROTOCOLS if protocol is None else (protocol,)
        try:
            return sum(self._totals[(kind, p)] for p in protocols)
        except KeyError:
            raise ValueError(f"unknown kind or protocol {kind!r}/{protocol!r}") from None

    def rate(self, kind: str, protocol: str | None = None, window: int = 60) -> float:
        """Events of ``kind`` per second over the last ``window`` seconds (one of WINDOWS)."""
        if window not in WINDOWS:
            raise ValueError(f"window must be one of {WINDOWS}")
        protocols = PROTOCOLS if protocol is None else (protocol,)
        now = self._clock()
        epoch = int(now // BUCKET)
        buckets = window // BUCKET
        try:
            count = sum(self._rings[(kind, p)].count(epoch, buckets) for p in protocols)
        except KeyError:
            raise ValueError(f"unknown kind or protocol {kind!r}/{protocol!r}") from None
        span = min(float(window), max(float(BUCKET), now - self.started_at))
        return count / span

    def rates(self, kind: str, protocol: str | None = None) -> Rates:
        """``rate`` over each of WINDOWS."""
        m1, m5, m15 = (self.rate(kind, protocol, w) for w in WINDOWS)
        return Rates(m1, m5, m15)


_UDP_KINDS = {1: "announce", 2: "scrape", 3: "error"}
"""BEP 15 reply actions that are counted (connect replies are not)."""


def count_udp_reply(stats: TrackerStats, reply: bytes | None) -> None:
    """Count one BEP 15 reply by its action (announce, scrape or error); a
    connect reply or silence (``None``) counts nothing."""
    if reply is not None and len(reply) >= 4:
        kind = _UDP_KINDS.get(int.from_bytes(reply[:4], "big"))
        if kind is not None:
            stats._record(kind, "udp")
