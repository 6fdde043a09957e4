"""One swarm's peer records: how they are kept and how a reply's peers are chosen.

Theory of operation
-------------------
A ``PeerRecord`` is one peer as it last announced, with its compact address
made once.  A ``SwarmPeers`` holds one info hash's records in four buckets,
(IPv6?, seeder?) -> {peer_id: record}, each in order of last announce (a
record is removed and added again on every announce), plus an index of the
compact addresses, so that a swarm has one record per peer_id and one per
address.  Expiry reads each bucket from its front.  A reply's peers are a
*window*: ``numwant`` consecutive records of the buckets the requester may
get (leechers, and seeders unless it seeds; one family or both), from a
random place, wrapping around, skipping the requester: a few C-level steps
instead of a Python test of every record (see ``TrackerState.announce``).
It knows nothing of users, caps or totals: ``swarms.TrackerState`` does.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain, islice
from operator import attrgetter
from typing import Protocol, TypeVar

from txbittorrent.core.tracker.announce import ScrapeStats

__all__ = [
    "Sampler", "PeerRecord", "SwarmPeers", "UserId", "cached_compact_address", "compact_address",
    "compact_peers", "join_compact",
]

T = TypeVar("T")

UserId = str | int
"""Who a passkey belongs to, as the passkey check returned it."""


class Sampler(Protocol):
    """What the registry needs of a ``random.Random``."""

    def sample(self, population: Sequence[T], k: int) -> list[T]: ...

    def randrange(self, start: int, stop: int | None = ..., step: int = ...) -> int: ...




@dataclass(frozen=True, slots=True)
class PeerRecord:
    """One peer of a swarm as last announced."""

    ip: str
    port: int
    peer_id: bytes
    left: int
    last_seen: float
    key: int | None = None
    uploaded: int = 0
    downloaded: int = 0
    user: UserId | None = None
    compact: bytes = b""
    """The address in compact form (BEP 23/7: 4 or 16 bytes of IP, 2 of
    port), made once when the peer announces so that replies only join
    bytes; empty when not given (``compact_peers`` then makes it)."""


def compact_address(ip: str, port: int) -> bytes:
    """An address in compact form (``ValueError`` for a bad IP or port)."""
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} out of range")
    return ipaddress.ip_address(ip).packed + port.to_bytes(2, "big")


@lru_cache(maxsize=8192)
def cached_compact_address(ip: str, port: int) -> bytes:
    """``compact_address`` for the hot path: the same (ip, port) announces
    again and again, so the parse is remembered (bounded)."""
    return compact_address(ip, port)


def compact_peers(peers: Iterable[PeerRecord], *, ipv6: bool = False) -> bytes:
    """The compact list of the ``peers`` of one family (IPv4, or IPv6)."""
    size = 18 if ipv6 else 6
    return b"".join(
        [c for c in (p.compact or compact_address(p.ip, p.port) for p in peers) if len(c) == size]
    )


def join_compact(peers: Sequence[PeerRecord], *, ipv6: bool = False) -> bytes:
    """``compact_peers`` for the peers of an announce that named its family:
    when every record has its compact address (those a ``TrackerState``
    made do), they are joined without a Python step per peer."""
    if all(map(_COMPACT, peers)):
        return b"".join(map(_COMPACT, peers))
    return compact_peers(peers, ipv6=ipv6)


_COMPACT = attrgetter("compact")


class SwarmPeers:
    """One info hash's records in four buckets: (IPv6?, seeder?) -> {peer_id: record}.

    Each bucket keeps its records in order of last announce (a record is
    removed and added again on every announce), so expiry reads each from
    its front, and a reply is a window of the buckets it may draw from."""

    __slots__ = ("buckets", "by_address", "downloaded")

    def __init__(self) -> None:
        self.buckets: tuple[dict[bytes, PeerRecord], ...] = ({}, {}, {}, {})
        self.by_address: dict[bytes, bytes] = {}
        """The compact address of each record -> its peer_id."""
        self.downloaded = 0

    @property
    def seeders(self) -> int:
        b = self.buckets
        return len(b[_SEEDER]) + len(b[_IPV6 | _SEEDER])

    def __len__(self) -> int:
        b = self.buckets
        return len(b[0]) + len(b[1]) + len(b[2]) + len(b[3])

    def records(self) -> list[PeerRecord]:
        """Every record, oldest announce first."""
        everything = [r for bucket in self.buckets for r in bucket.values()]
        everything.sort(key=_last_seen)
        return everything

    def get(self, peer_id: bytes) -> PeerRecord | None:
        for bucket in self.buckets:
            record = bucket.get(peer_id)
            if record is not None:
                return record
        return None

    def remove(self, peer_id: bytes) -> PeerRecord | None:
        for bucket in self.buckets:
            record = bucket.pop(peer_id, None)
            if record is not None:
                del self.by_address[record.compact]
                return record
        return None

    def add(self, record: PeerRecord) -> None:
        self.buckets[_bucket(record)][record.peer_id] = record
        self.by_address[record.compact] = record.peer_id

    def expire(self, before: float, *, full: bool) -> list[PeerRecord]:
        """Drop records last seen at or before ``before``; from each bucket's front only unless ``full``."""
        stale = []
        for bucket in self.buckets:
            for peer_id, record in bucket.items():
                if record.last_seen <= before:
                    stale.append(peer_id)
                elif not full:
                    break
        return [record for record in map(self.remove, stale) if record is not None]

    def window(
        self, rng: Sampler, wanted: int, *, seeding: bool, ipv6: bool | None,
        own: PeerRecord | None,
    ) -> tuple[PeerRecord, ...]:
        """Up to ``wanted`` records for a requester: leechers (and seeders
        unless it is ``seeding``) of the family asked for, never ``own``;
        a window at a random place in the buckets (see ``announce``)."""
        families = (0, _IPV6) if ipv6 is None else ((_IPV6,) if ipv6 else (0,))
        kinds = (0,) if seeding else (0, _SEEDER)
        pools = [self.buckets[f | k] for f in families for k in kinds]
        pools = [p for p in pools if p]
        total = sum(map(len, pools))
        if total <= wanted + 1:
            chosen = [r for p in pools for r in p.values() if r is not own]
            return tuple(chosen[:wanted])
        start = rng.randrange(total)
        take = wanted + 1
        chosen = list(islice(chain.from_iterable(p.values() for p in pools), start, start + take))
        if len(chosen) < take:
            chosen += islice(chain.from_iterable(p.values() for p in pools), take - len(chosen))
        return tuple([r for r in chosen if r is not own][:wanted])

    def stats(self) -> ScrapeStats:
        seeders = self.seeders
        return ScrapeStats(
            complete=seeders, downloaded=self.downloaded, incomplete=len(self) - seeders
        )


_IPV6, _SEEDER = 2, 1


def _bucket(record: PeerRecord) -> int:
    return (_IPV6 if len(record.compact) == 18 else 0) | (_SEEDER if record.left == 0 else 0)


def _last_seen(record: PeerRecord) -> float:
    return record.last_seen
