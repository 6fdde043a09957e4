"""The peers other nodes announced to us (BEP 5 ``announce_peer``), bounded.

Theory of operation
-------------------
A node answers ``get_peers`` with the peers announced to it for that info
hash.  Anyone can announce (with a token, so from an address it receives at),
so the store must stay small whatever arrives:

* per info hash, at most ``max_peers_per_info_hash`` peers, each forgotten
  ``lifetime`` seconds (30 minutes) after its last announce; a full info
  hash forgets its oldest announce to take a new one;
* at most ``max_info_hashes`` info hashes; a new one beyond that evicts the
  info hash announced least recently;
* at most ``max_peers`` peers in all; beyond that the oldest peer of the
  least recently announced info hash goes.

Entries are kept in announce order (an ``OrderedDict`` per info hash, and one
over the info hashes), so expiry and eviction take the oldest from the front
in constant time each.  Expired peers are dropped lazily when their info hash
is touched, and all at once by ``expire(now)``, which the adapter calls now
and then.  ``get`` samples up to ``n`` live peers with the injected rng, so
every peer gets a chance to be handed out.

One store serves one address family (the adapter keeps one per socket
family, as it keeps one routing table), so a reply's ``values`` hold peers
of the querier's family.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol, TypeVar

from txbittorrent.core.dht.krpc import Address

__all__ = [
    "PeerStore", "PEER_LIFETIME", "MAX_INFO_HASHES", "MAX_PEERS_PER_INFO_HASH", "MAX_PEERS",
    "MAX_VALUES", "Sampler",
]

PEER_LIFETIME = 30 * 60.0
"""Seconds an announced peer is kept after its last announce."""
MAX_INFO_HASHES = 1000
"""Most info hashes kept (libtorrent's dht_max_torrents is 2000)."""
MAX_PEERS_PER_INFO_HASH = 200
"""Most peers kept for one info hash."""
MAX_PEERS = 20_000
"""Most peers kept in all (a few MB at most)."""
MAX_VALUES = 50
"""Peers in one get_peers reply by default (50 IPv6 peers fit a 1280-byte datagram)."""

T = TypeVar("T")


class Sampler(Protocol):
    """The part of ``random.Random`` used here."""

    def sample(self, population: Sequence[T], k: int) -> list[T]: ...


class PeerStore:
    """Announced peers by info hash (see the module docstring)."""

    def __init__(
        self,
        *,
        lifetime: float = PEER_LIFETIME,
        max_info_hashes: int = MAX_INFO_HASHES,
        max_peers_per_info_hash: int = MAX_PEERS_PER_INFO_HASH,
        max_peers: int = MAX_PEERS,
    ) -> None:
        if min(max_info_hashes, max_peers_per_info_hash, max_peers) < 1 or lifetime <= 0:
            raise ValueError("bounds and lifetime must be positive")
        self.lifetime = lifetime
        self.max_info_hashes = max_info_hashes
        self.max_peers_per_info_hash = max_peers_per_info_hash
        self.max_peers = max_peers
        self._torrents: OrderedDict[bytes, OrderedDict[Address, float]] = OrderedDict()
        self._count = 0

    def __len__(self) -> int:
        """Info hashes held."""
        return len(self._torrents)

    def __contains__(self, info_hash: object) -> bool:
        return info_hash in self._torrents

    @property
    def peer_count(self) -> int:
        """Peers held, over all info hashes (expired ones until they are dropped)."""
        return self._count

    def announce(self, info_hash: bytes, address: Address, now: float) -> None:
        """``address`` is a peer for ``info_hash`` as of ``now``."""
        peers = self._torrents.get(info_hash)
        if peers is not None:
            self._expire_peers(info_hash, peers, now)
            peers = self._torrents.get(info_hash)
        if peers is None:
            peers = self._torrents[info_hash] = OrderedDict()
            while len(self._torrents) > self.max_info_hashes:
                self._drop_torrent(next(iter(self._torrents)))
        else:
            self._torrents.move_to_end(info_hash)
        if address in peers:
            peers.move_to_end(address)
        else:
            if len(peers) >= self.max_peers_per_info_hash:
                peers.popitem(last=False)
                self._count -= 1
            self._count += 1
        peers[address] = now
        while self._count > self.max_peers:
            oldest_hash, oldest_peers = next(iter(self._torrents.items()))
            oldest_peers.popitem(last=False)
            self._count -= 1
            if not oldest_peers:
                del self._torrents[oldest_hash]

    def get(self, info_hash: bytes, now: float, rng: Sampler, n: int = MAX_VALUES) -> list[Address]:
        """Up to ``n`` live peers for ``info_hash``, a random sample if there are more."""
        peers = self._torrents.get(info_hash)
        if peers is None:
            return []
        self._expire_peers(info_hash, peers, now)
        addresses = list(peers)
        return addresses if len(addresses) <= n else rng.sample(addresses, n)

    def expire(self, now: float) -> int:
        """Drop every peer not announced for ``lifetime``; how many went."""
        before = self._count
        for info_hash, peers in list(self._torrents.items()):
            self._expire_peers(info_hash, peers, now)
        return before - self._count

    def _expire_peers(
        self, info_hash: bytes, peers: OrderedDict[Address, float], now: float
    ) -> None:
        while peers and now - next(iter(peers.values())) >= self.lifetime:
            peers.popitem(last=False)
            self._count -= 1
        if not peers:
            del self._torrents[info_hash]

    def _drop_torrent(self, info_hash: bytes) -> None:
        self._count -= len(self._torrents.pop(info_hash))
