"""The tracker's swarms: who announced which info hash, and whom to tell about.

Theory of operation
-------------------
``TrackerState`` is what a tracker knows: for each info hash, the peers that
announced it (address, ``peer_id``, ``key``, ``left``, the counters they
reported, when last seen), how many of them are seeders, and how many
downloads completed.  ``announce`` records the requester and returns some of
the others (a window at a random place, see below); ``scrape`` returns the counts (``scrape_all`` every
swarm, bounded); ``expire`` forgets peers not seen for ``peer_timeout``
seconds.  Every method takes ``now`` (seconds on the caller's clock);
randomness comes from the injected rng.  It knows nothing of HTTP, UDP,
sockets, users' storage or passkeys: an ``Announce`` may carry a ``user``
(whatever the adapter's passkey check returned), and the transfer it reports
since that peer's previous announce goes to the injected ``on_transfer``.

Invariants: within a swarm, one record per ``peer_id`` and one per
(ip, port); records are kept in order of last announce (oldest first, so
expiry stops at the first fresh one); swarms are kept in order of last
announce too (the least recently announced first, the one evicted);
``seeders`` counts the records with ``left == 0``; ``peer_count`` is the sum
of the swarms' records and never exceeds ``max_total_peers``.

Decisions
---------
* ``numwant`` defaults to ``default_numwant`` and is capped at
  ``max_numwant`` (10**9 asks for the cap); a seeder is given only leechers;
  the requester is never in its own list.  ``stopped`` removes the record and
  returns no peers.
* The peers of a reply are a window, not a sample: a swarm's records sit in
  four buckets by family and seeder/leecher, each in order of last
  announce; a reply takes ``numwant`` consecutive records of the buckets the
  requester may get, from a random place (wrapping around), skipping the
  requester.  That is opentracker's choice too: it costs a few C-level steps
  instead of a Python test of every record in the swarm (a 10,000-peer
  swarm no longer costs 10,000 steps per announce), and with announces
  spread over the interval, neighbours in announce order are as good as
  any.  A swarm no larger than the reply gives every other record.
* ``key`` (BEP 3's optional parameter): a known ``peer_id`` announcing from a
  new address replaces its record only when the old record had no key or the
  keys match; otherwise the announce is refused, so nobody can move (or stop)
  another peer's record by copying its ``peer_id``.
* Bounded memory: a new info hash beyond ``max_swarms`` evicts the least
  recently announced swarm (``evict_swarms=True``, the default: a tracker
  keeps serving new torrents under a flood of fake info hashes, which the
  per-address rate limit slows down) or is refused (``evict_swarms=False``:
  established swarms are never lost).  A swarm at ``max_peers``, or a tracker
  at ``max_total_peers``, still answers a newcomer but does not record it.
* With an allow-list (any container of info hashes; a ``set`` is kept as
  given, so its owner may change it later), an info hash not in it is refused.
* A download counts as completed (scrape's ``downloaded``) on ``completed``
  from a peer not known as a seeder, or on any announce (``stopped``
  included) with ``left == 0`` from a peer last seen leeching: aria2 with
  ``--seed-time=0`` goes straight from leeching to ``stopped``.
* ``max_torrents_per_user`` (or ``user_limit(user)`` when it is given and
  not None, a user's own limit): a private user's peers may be recorded in at
  most that many swarms at once; an announce to one more is refused (its
  ``stopped`` and those to swarms it is in are not).  Stale records count
  until they expire.
* Transfer accounting: for an announce with a ``user``, the growth of
  ``uploaded``/``downloaded`` since the same peer's previous announce (the
  whole figures for a peer not known yet; never negative: a client that
  restarted its counters reports 0 growth) goes to ``on_transfer``.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Set
from dataclasses import dataclass
from typing import Protocol

from txbittorrent.core.tracker.announce import AnnounceEvent, ScrapeStats
from txbittorrent.core.tracker.swarmpeers import (
    PeerRecord,
    Sampler,
    SwarmPeers,
    UserId,
    cached_compact_address,
    compact_address,
    compact_peers,
    join_compact,
)
from txbittorrent.errors import TxBitTorrentError

__all__ = [
    "DEFAULT_INTERVAL", "DEFAULT_NUMWANT", "MAX_NUMWANT", "MAX_SWARMS", "MAX_PEERS",
    "MAX_TOTAL_PEERS", "MAX_FULL_SCRAPE", "UserId", "Sampler", "RequestRefused", "PeerRecord",
    "Announce", "AnnounceResult", "TransferDelta", "TrackerState", "SwarmObserver", "compact_address",
    "compact_peers", "join_compact",
]

DEFAULT_INTERVAL = 1800
"""Seconds between a client's announces that the tracker asks for."""
DEFAULT_NUMWANT = 50
"""Peers returned when the client does not say how many it wants."""
MAX_NUMWANT = 200
"""Most peers returned by one announce."""
MAX_SWARMS = 100_000
"""Most info hashes tracked at once."""
MAX_PEERS = 50_000
"""Most peers recorded per swarm."""
MAX_TOTAL_PEERS = 1_000_000
"""Most peers recorded over all swarms."""
MAX_FULL_SCRAPE = 10_000
"""Most torrents in one full scrape (the most recently announced ones)."""

class RequestRefused(TxBitTorrentError, ValueError):
    """The tracker will not serve a request; ``reason`` is sent to the client."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class Announce:
    """A validated announce, whatever the transport; ``ip`` is canonical."""

    info_hash: bytes
    peer_id: bytes
    ip: str
    port: int
    left: int
    uploaded: int = 0
    downloaded: int = 0
    event: AnnounceEvent | None = None
    numwant: int | None = None
    compact: bool = True
    no_peer_id: bool = False
    key: int | None = None
    user: UserId | None = None


@dataclass(frozen=True, slots=True)
class AnnounceResult:
    """What to tell the announcing peer: counts and other peers."""

    interval: int
    min_interval: int | None
    complete: int
    incomplete: int
    peers: tuple[PeerRecord, ...]
    tracker_id: bytes | None = None


@dataclass(frozen=True, slots=True)
class TransferDelta:
    """What a user's peer transferred of one torrent since its previous announce."""

    user: UserId
    info_hash: bytes
    uploaded: int
    downloaded: int
    completed: bool


class SwarmObserver(Protocol):
    """What ``TrackerState.observer`` is told, on the announce's own turn."""

    def swarm_created(self, info_hash: bytes, now: float) -> None: ...

    def completed(self, info_hash: bytes) -> None: ...


def _no_accounting(delta: TransferDelta) -> None:
    pass


class TrackerState:
    """Swarms by info hash (see the module docstring)."""

    def __init__(
        self,
        rng: Sampler,
        *,
        interval: int = DEFAULT_INTERVAL,
        min_interval: int | None = None,
        peer_timeout: float | None = None,
        default_numwant: int = DEFAULT_NUMWANT,
        max_numwant: int = MAX_NUMWANT,
        allowed: Container[bytes] | None = None,
        max_swarms: int = MAX_SWARMS,
        max_peers: int = MAX_PEERS,
        max_total_peers: int = MAX_TOTAL_PEERS,
        evict_swarms: bool = True,
        max_torrents_per_user: int | None = None,
        user_limit: Callable[[UserId], int | None] | None = None,
        tracker_id: bytes | None = None,
        on_transfer: Callable[[TransferDelta], None] | None = None,
    ) -> None:
        if interval < 1:
            raise ValueError("interval must be at least one second")
        if max_swarms < 1 or max_peers < 0 or max_total_peers < 0:
            raise ValueError("the caps must not be negative (and max_swarms at least 1)")
        self.interval = interval
        self.min_interval = min_interval
        self.peer_timeout = 2.0 * interval if peer_timeout is None else float(peer_timeout)
        self.default_numwant = default_numwant
        self.max_numwant = max_numwant
        if allowed is None or isinstance(allowed, Set) or not isinstance(allowed, Iterable):
            self.allowed = allowed
        else:
            self.allowed = frozenset(allowed)
        self.max_swarms = max_swarms
        self.max_peers = max_peers
        self.max_total_peers = max_total_peers
        self.evict_swarms = evict_swarms
        self.max_torrents_per_user = max_torrents_per_user
        self.user_limit = user_limit
        self.tracker_id = tracker_id
        self.on_transfer = on_transfer or _no_accounting
        self.observer: SwarmObserver | None = None
        """Told of each new swarm and each completed download as they happen
        (a recorder sets it; one at a time)."""
        self.evicted = 0
        """Swarms evicted so far to make room for new ones."""
        self._rng = rng
        self._swarms: dict[bytes, SwarmPeers] = {}
        self._peer_count = 0
        self._user_torrents: dict[UserId, dict[bytes, int]] = {}

    def __len__(self) -> int:
        """How many swarms have at least one peer or completed download."""
        return len(self._swarms)

    @property
    def peer_count(self) -> int:
        """Peers recorded over all swarms."""
        return self._peer_count

    @property
    def peer_lifetime(self) -> float:
        """Seconds after its last announce that a peer is forgotten (``peer_timeout``)."""
        return self.peer_timeout

    def peers(self, info_hash: bytes) -> tuple[PeerRecord, ...]:
        """The swarm's records, oldest announce first."""
        swarm = self._swarms.get(info_hash)
        return () if swarm is None else tuple(swarm.records())

    def info_hashes(self) -> list[bytes]:
        """Every tracked info hash, least recently announced first."""
        return list(self._swarms)

    def swarm_stats(self, info_hash: bytes) -> ScrapeStats | None:
        """A tracked swarm's counts as they stand (no expiry), or ``None``."""
        swarm = self._swarms.get(info_hash)
        return None if swarm is None else swarm.stats()

    def announce(
        self, request: Announce, now: float, *, ipv6: bool | None = None
    ) -> AnnounceResult:
        """Record ``request`` at ``now`` and choose peers for it.

        ``ipv6`` limits the peers to one family (UDP replies carry only the
        family of the socket); ``None`` returns both."""
        stopping = request.event is AnnounceEvent.STOPPED
        if not stopping:
            self._check_user_limit(request)
        swarm = self._swarm(request.info_hash, now, create=not stopping)
        if swarm is None:
            return AnnounceResult(self.interval, self.min_interval, 0, 0, (), self.tracker_id)
        self._expire(request.info_hash, swarm, now, full=False)
        known = swarm.get(request.peer_id)
        if (
            known is not None
            and known.key is not None
            and known.key != request.key
            and (known.ip, known.port) != (request.ip, request.port)
        ):
            raise RequestRefused("peer_id in use by another peer")
        old = self._remove(request.info_hash, swarm, request.peer_id)
        self._account(request, old)
        if stopping:
            if self._completes(request, old):
                self._completed(request.info_hash, swarm)
            self._forget_if_empty(request.info_hash, swarm)
            return self._result(swarm, ())
        if self._completes(request, old):
            self._completed(request.info_hash, swarm)
        compact = cached_compact_address(request.ip, request.port)
        other = swarm.by_address.get(compact)
        if other is not None:
            self._remove(request.info_hash, swarm, other)
        own = None
        if len(swarm) < self.max_peers and self._peer_count < self.max_total_peers:
            own = PeerRecord(
                request.ip, request.port, request.peer_id, request.left, now,
                request.key, request.uploaded, request.downloaded, request.user, compact,
            )
            swarm.add(own)
            self._peer_count += 1
            if request.user is not None:
                torrents = self._user_torrents.setdefault(request.user, {})
                torrents[request.info_hash] = torrents.get(request.info_hash, 0) + 1
        wanted = self.default_numwant if request.numwant is None else request.numwant
        wanted = min(wanted, self.max_numwant)
        if not wanted:
            return self._result(swarm, ())
        peers = swarm.window(
            self._rng, wanted, seeding=request.left == 0, ipv6=ipv6, own=own
        )
        return self._result(swarm, peers)

    def scrape(self, info_hashes: Iterable[bytes], now: float) -> dict[bytes, ScrapeStats]:
        """Counts for each info hash asked about that the tracker knows or allows."""
        stats: dict[bytes, ScrapeStats] = {}
        for info_hash in info_hashes:
            swarm = self._swarms.get(info_hash)
            if swarm is not None:
                self._expire(info_hash, swarm, now, full=False)
                stats[info_hash] = swarm.stats()
            elif self.allowed is not None and info_hash in self.allowed:
                stats[info_hash] = ScrapeStats(0, 0, 0)
        return stats

    def scrape_all(self, now: float, limit: int = MAX_FULL_SCRAPE) -> dict[bytes, ScrapeStats]:
        """Counts for the ``limit`` most recently announced swarms (a full scrape)."""
        stats: dict[bytes, ScrapeStats] = {}
        for info_hash in reversed(self._swarms):
            if len(stats) >= limit:
                break
            swarm = self._swarms[info_hash]
            self._expire(info_hash, swarm, now, full=False)
            stats[info_hash] = swarm.stats()
        return stats

    def expire(self, now: float) -> int:
        """Forget every peer not seen for ``peer_timeout``, and empty swarms; return the count."""
        removed = 0
        for info_hash, swarm in list(self._swarms.items()):
            removed += self._expire(info_hash, swarm, now, full=True)
            if not len(swarm) and not swarm.downloaded:
                del self._swarms[info_hash]
        return removed

    def user_torrents(self, user: UserId) -> int:
        """In how many swarms ``user`` has a recorded peer."""
        return len(self._user_torrents.get(user, ()))

    def _check_user_limit(self, request: Announce) -> None:
        if request.user is None:
            return
        limit = None if self.user_limit is None else self.user_limit(request.user)
        if limit is None:
            limit = self.max_torrents_per_user
        if limit is None:
            return
        torrents = self._user_torrents.get(request.user, {})
        if request.info_hash not in torrents and len(torrents) >= limit:
            raise RequestRefused("torrent limit reached")

    def _expire(self, info_hash: bytes, swarm: SwarmPeers, now: float, *, full: bool) -> int:
        stale = swarm.expire(now - self.peer_timeout, full=full)
        for record in stale:
            self._forgotten(info_hash, record)
        return len(stale)

    def _remove(self, info_hash: bytes, swarm: SwarmPeers, peer_id: bytes) -> PeerRecord | None:
        record = swarm.remove(peer_id)
        if record is not None:
            self._forgotten(info_hash, record)
        return record

    def _forgotten(self, info_hash: bytes, record: PeerRecord) -> None:
        """Count ``record``, just removed from ``info_hash``'s swarm, out of the totals."""
        self._peer_count -= 1
        if record.user is None:
            return
        torrents = self._user_torrents[record.user]
        if torrents[info_hash] <= 1:
            del torrents[info_hash]
            if not torrents:
                del self._user_torrents[record.user]
        else:
            torrents[info_hash] -= 1

    @staticmethod
    def _completes(request: Announce, old: PeerRecord | None) -> bool:
        """Whether ``request`` reports a finished download: ``completed`` from a
        peer not known as a seeder, or ``left == 0`` from a known leecher."""
        if request.event is AnnounceEvent.COMPLETED:
            return old is None or old.left > 0
        return request.left == 0 and old is not None and old.left > 0

    def _account(self, request: Announce, old: PeerRecord | None) -> None:
        if request.user is None:
            return
        uploaded = request.uploaded - (old.uploaded if old is not None else 0)
        downloaded = request.downloaded - (old.downloaded if old is not None else 0)
        completed = request.event is AnnounceEvent.COMPLETED
        if uploaded > 0 or downloaded > 0 or completed:
            self.on_transfer(
                TransferDelta(
                    request.user, request.info_hash, max(uploaded, 0), max(downloaded, 0),
                    completed,
                )
            )

    def _swarm(self, info_hash: bytes, now: float, *, create: bool) -> SwarmPeers | None:
        if self.allowed is not None and info_hash not in self.allowed:
            raise RequestRefused("unregistered torrent")
        swarm = self._swarms.pop(info_hash, None)
        if swarm is not None:
            self._swarms[info_hash] = swarm  # now the most recently announced
        elif create:
            if len(self._swarms) >= self.max_swarms:
                if not self.evict_swarms:
                    raise RequestRefused("tracker is full")
                oldest = next(iter(self._swarms))
                for record in self._swarms.pop(oldest).records():
                    self._forgotten(oldest, record)
                self.evicted += 1
            swarm = self._swarms[info_hash] = SwarmPeers()
            if self.observer is not None:
                self.observer.swarm_created(info_hash, now)
        return swarm

    def _completed(self, info_hash: bytes, swarm: SwarmPeers) -> None:
        swarm.downloaded += 1
        if self.observer is not None:
            self.observer.completed(info_hash)

    def _forget_if_empty(self, info_hash: bytes, swarm: SwarmPeers) -> None:
        if not len(swarm) and not swarm.downloaded:
            self._swarms.pop(info_hash, None)

    def _result(self, swarm: SwarmPeers, peers: tuple[PeerRecord, ...]) -> AnnounceResult:
        seeders = swarm.seeders
        return AnnounceResult(
            interval=self.interval,
            min_interval=self.min_interval,
            complete=seeders,
            incomplete=len(swarm) - seeders,
            peers=peers,
            tracker_id=self.tracker_id,
        )
