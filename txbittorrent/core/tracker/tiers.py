"""Tracker tiers (BEP 12): which tracker to announce to next, and how each fared.

Theory of operation
-------------------
``TrackerTiers`` owns the order of a torrent's trackers and one
``TrackerStatus`` record per tracker (what ``Torrent.trackers()`` shows).  It
does not announce, schedule or read the clock: the announcer asks
``current()`` whom to announce to, reports each outcome with ``announcing``,
``succeeded`` and ``failed`` (passing ``now``), and reads the time of the next
announce from the records.  ``retry_delay`` and ``next_announce`` are the
timing policy as pure functions.

Invariants: every URL appears once, in exactly one tier; tiers are never
empty; each tier is shuffled once, at construction, with the injected rng,
and after that only ``succeeded`` changes the order (BEP 12's move to front).

The BEP 12 walk
---------------
An announce round starts at the first URL of the first tier.  When a tracker
fails, the round moves on to the next URL of the tier, then to the first URL
of the next tier; ``failed`` returns the URL(s) to try at once, or ``()`` when
every tracker has failed in this round (the next round starts again at the
top, after the failed tracker's ``next_announce``).  When a tracker succeeds it
moves to the front of its tier and the next round starts at the top again.

With ``announce_to_all`` (libtorrent's ``announce_to_all_tiers``) each tier
walks on its own: ``current()`` names one URL per tier, to be announced to
concurrently, and a failure moves on within that tier only.  Announcing to
every URL of every tier (libtorrent's ``announce_to_all_trackers``) is not an
option here: it is what a caller gets by putting each URL in a tier of its own.

Timing decisions
----------------
* After a success the next announce is ``interval`` seconds later (the codecs
  have already clamped it and raised it to ``min interval``);
  ``min_announce`` records the earliest moment ``min interval`` allows, for a
  manual re-announce.
* After the n-th consecutive failure a tracker waits
  ``retry_delay(n) = RETRY_BASE * 2**(n-1)`` seconds, at most ``RETRY_CAP``
  (1, 2, 4, ... 32, then 60 minutes), and never less than the ``min interval``
  of its last successful reply, nor less than a failure's BEP 31 ``retry in``.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableSequence, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from txbittorrent.core.tracker.announce import AnnounceResponse
from txbittorrent.errors import LocalProtocolError

__all__ = [
    "RETRY_BASE", "RETRY_CAP", "Shuffler", "TrackerStatus", "TrackerTiers", "retry_delay",
    "next_announce",
]

RETRY_BASE = 60.0
"""Seconds a tracker waits after its first consecutive failure."""
RETRY_CAP = 3600.0
"""The longest wait after failures (unless the tracker asked for longer)."""


class Shuffler(Protocol):
    """What the tiers need of a ``random.Random``."""

    def shuffle(self, x: MutableSequence[Any], /) -> None: ...


def retry_delay(failures: int, min_interval: float | None = None) -> float:
    """Seconds to wait after ``failures`` (>= 1) consecutive failures of one tracker.

    ``min_interval`` is that tracker's last known ``min interval``: a failing
    tracker (perhaps an overloaded one) does not hear from us sooner than it
    asked to."""
    if failures < 1:
        raise ValueError("retry_delay needs at least one failure")
    delay = min(RETRY_BASE * 2.0 ** min(failures - 1, 32), RETRY_CAP)
    if min_interval is not None:
        delay = max(delay, min_interval)
    return delay


def next_announce(now: float, response: AnnounceResponse) -> float:
    """When to announce again to a tracker that sent ``response`` at ``now``."""
    return now + max(response.interval, response.min_interval or 0)


@dataclass(frozen=True, slots=True)
class TrackerStatus:
    """How one tracker has fared; times are the caller's ``now`` values.

    ``complete``, ``incomplete``, ``peers``, ``peers6`` and ``warning`` are
    from the last successful reply; ``failures`` counts consecutive failures
    since; ``last_error`` is the last failure's reason (cleared by a
    success); ``next_announce`` is when the tracker is due again and
    ``min_announce`` the earliest its ``min interval`` allows; ``updating``
    is true while an announce is under way, which began at ``last_announce``."""

    url: str
    tier: int
    complete: int | None = None
    incomplete: int | None = None
    peers: int = 0
    peers6: int = 0
    failures: int = 0
    last_error: str | None = None
    warning: str | None = None
    min_interval: int | None = None
    next_announce: float | None = None
    min_announce: float | None = None
    updating: bool = False
    last_announce: float | None = None


class TrackerTiers:
    """The BEP 12 order of a torrent's trackers and their status records."""

    def __init__(
        self,
        tiers: Sequence[Sequence[str]],
        rng: Shuffler,
        *,
        announce_to_all: bool = False,
    ) -> None:
        seen: set[str] = set()
        self._tiers: list[list[str]] = []
        for tier in tiers:
            urls = [url for url in dict.fromkeys(tier) if url not in seen]
            seen.update(urls)
            if urls:
                rng.shuffle(urls)
                self._tiers.append(urls)
        self.announce_to_all = announce_to_all
        self._cursor = [0] * len(self._tiers)
        self._tier = 0
        self._status = {
            url: TrackerStatus(url, index) for index, tier in enumerate(self._tiers) for url in tier
        }

    def __iter__(self) -> Iterator[str]:
        """Every URL, tier by tier, in the current order."""
        for tier in self._tiers:
            yield from list(tier)

    def __len__(self) -> int:
        return len(self._status)

    def __contains__(self, url: object) -> bool:
        return url in self._status

    @property
    def tiers(self) -> tuple[tuple[str, ...], ...]:
        """The tiers in their current order."""
        return tuple(tuple(tier) for tier in self._tiers)

    def current(self) -> tuple[str, ...]:
        """The URL(s) to announce to now: one, or one per tier with
        ``announce_to_all``; ``()`` when there are no trackers."""
        if not self._tiers:
            return ()
        if self.announce_to_all:
            return tuple(tier[i] for tier, i in zip(self._tiers, self._cursor))
        return (self._tiers[self._tier][self._cursor[self._tier]],)

    def status(self, url: str) -> TrackerStatus:
        return self._status[self._known(url)]

    def statuses(self) -> tuple[TrackerStatus, ...]:
        """Every tracker's record, tier by tier, in the current order."""
        return tuple(self._status[url] for url in self)

    def announcing(self, url: str, now: float) -> None:
        """An announce to ``url`` begins at ``now``."""
        self._update(url, updating=True, last_announce=now)

    def succeeded(self, url: str, now: float, response: AnnounceResponse) -> None:
        """``url`` answered ``response`` at ``now``: it moves to the front of its tier."""
        status = self._status[self._known(url)]
        self._update(
            url,
            complete=response.complete,
            incomplete=response.incomplete,
            peers=len(response.peers),
            peers6=len(response.peers6),
            failures=0,
            last_error=None,
            warning=response.warning_message,
            min_interval=response.min_interval,
            next_announce=next_announce(now, response),
            min_announce=now + (response.min_interval or 0),
            updating=False,
        )
        tier = self._tiers[status.tier]
        tier.remove(url)
        tier.insert(0, url)
        self._cursor[status.tier] = 0
        if not self.announce_to_all:
            self._cursor = [0] * len(self._tiers)
            self._tier = 0

    def failed(
        self, url: str, now: float, reason: str, retry_in: float | None = None
    ) -> tuple[str, ...]:
        """``url`` failed at ``now``; return the URL(s) to try at once instead.

        ``retry_in`` is the tracker's BEP 31 hint, in seconds.  The result is
        ``()`` when the round is over (or ``url`` was not being walked)."""
        status = self._status[self._known(url)]
        failures = status.failures + 1
        delay = retry_delay(failures, status.min_interval)
        if retry_in is not None:
            delay = max(delay, retry_in)
        self._update(
            url, failures=failures, last_error=reason, next_announce=now + delay, updating=False
        )
        index = status.tier
        tier = self._tiers[index]
        walking = index == self._tier or self.announce_to_all
        if not walking or tier[self._cursor[index]] != url:
            return ()
        self._cursor[index] += 1
        if self._cursor[index] < len(tier):
            return (tier[self._cursor[index]],)
        self._cursor[index] = 0
        if self.announce_to_all:
            return ()
        self._tier = (self._tier + 1) % len(self._tiers)
        return () if self._tier == 0 else self.current()

    def add(self, url: str, tier: int | None = None) -> bool:
        """Add ``url`` at the end of tier ``tier`` (default, or past the last
        tier: a new last tier).  False if it is there already."""
        if url in self._status:
            return False
        if tier is None or tier >= len(self._tiers):
            self._tiers.append([url])
            self._cursor.append(0)
            index = len(self._tiers) - 1
        else:
            if tier < 0:
                raise ValueError("tier must not be negative")
            self._tiers[tier].append(url)
            index = tier
        self._status[url] = TrackerStatus(url, index)
        return True

    def remove(self, url: str) -> bool:
        """Forget ``url``; False if it was not there.  The walk goes on as if
        it had failed: removing the URL being tried moves to the next one of
        its tier, or past the tier once it was the last (the round ends
        when that was the last tier).  An emptied tier goes, and the later
        tiers move up."""
        status = self._status.pop(url, None)
        if status is None:
            return False
        index = status.tier
        tier = self._tiers[index]
        position = tier.index(url)
        del tier[position]
        cursor = self._cursor[index]
        if position < cursor:
            self._cursor[index] = cursor - 1
        elif position == cursor and cursor >= len(tier):
            self._cursor[index] = 0
            if tier and not self.announce_to_all and self._tier == index:
                self._tier = (self._tier + 1) % len(self._tiers)
        if not tier:
            del self._tiers[index]
            del self._cursor[index]
            for other in list(self._status.values()):
                if other.tier > index:
                    self._status[other.url] = replace(other, tier=other.tier - 1)
            if self._tier > index:
                self._tier -= 1
            if self._tier >= len(self._tiers):
                self._tier = 0
        return True

    def _known(self, url: str) -> str:
        if url not in self._status:
            raise LocalProtocolError(f"{url!r} is not one of this torrent's trackers")
        return url

    def _update(self, url: str, **changes: Any) -> None:
        status = self._status[self._known(url)]
        self._status[url] = replace(status, **changes)
