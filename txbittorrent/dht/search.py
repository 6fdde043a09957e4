"""One lookup the node runs for someone: a walk per address family, one result.

Theory of operation
-------------------
A ``Search`` is what ``DHTNode.find_node``, ``get_peers`` and ``announce``
start: one ``core.dht.lookup.Lookup`` per routing table (IPv4, IPv6: BEP 32
keeps them apart), each wrapped in a ``Walk`` that knows its family and
which of its lookup's peers were already handed out.  The node drives the
walks (sends their queries, reports replies and deadlines, see
``node.py``); the search only collects:

* ``on_peers`` hears each new batch of peers as a walk learns them, so a
  torrent can dial the first peers while the walk goes on;
* once every walk is done, ``finish`` fires ``deferred`` with a
  ``LookupResult`` (peers without repeats, the nearest nodes that
  answered, counts of queries, replies, failures and announces, and the
  seconds it took); ``fail`` errbacks it instead (the node stopped).

It sends nothing and reads no clock (``now`` is given).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from txbittorrent.core.dht.krpc import Address, NodeInfo
from txbittorrent.core.dht.lookup import Lookup, LookupKind
from txbittorrent.errors import TxBitTorrentError

__all__ = ["LookupResult", "Search", "Walk", "DHTError", "OnPeers"]

_log = Logger()

OnPeers = Callable[[list[Address]], object]
"""Hears peers as a get_peers search learns them."""


class DHTError(TxBitTorrentError):
    """A DHT request that cannot be served (the node stopped, too many lookups)."""


@dataclass(frozen=True, slots=True)
class LookupResult:
    """What a search found (``peers`` empty for find_node)."""

    target: bytes
    kind: LookupKind
    peers: tuple[Address, ...]
    nodes: tuple[NodeInfo, ...]
    """The nearest nodes that answered, of every family, nearest first per family."""
    queries: int
    responses: int
    failures: int
    announced: int
    """announce_peer queries sent (0 unless the search announced)."""
    elapsed: float
    """Seconds from start to finish."""


class Walk:
    """One family's lookup of a search (see the module docstring)."""

    __slots__ = ("lookup", "family", "search", "_peers_seen")

    def __init__(self, lookup: Lookup, family: int, search: Search) -> None:
        self.lookup = lookup
        self.family = family
        self.search = search
        self._peers_seen = 0

    def new_peers(self) -> list[Address]:
        """The peers learned since the last call."""
        peers = self.lookup.peers
        new, self._peers_seen = peers[self._peers_seen :], len(peers)
        return new


class Search:
    """A lookup over one or two families, with one Deferred (see the module docstring)."""

    def __init__(
        self,
        target: bytes,
        kind: LookupKind,
        started: float,
        *,
        announce_port: int | None = None,
        implied_port: bool = False,
        on_peers: OnPeers | None = None,
    ) -> None:
        self.target = target
        self.kind = kind
        self.started = started
        self.announce_port = announce_port
        """Announce with this port once the walks are done (None: no announce)."""
        self.implied_port = implied_port
        self.on_peers = on_peers
        self.walks: list[Walk] = []
        self.announced = 0
        self.deferred: Deferred[LookupResult] = Deferred()
        self.finished = False

    @property
    def announcing(self) -> bool:
        return self.announce_port is not None

    @property
    def done(self) -> bool:
        """Every walk is done."""
        return all(walk.lookup.done for walk in self.walks)

    def peers_learned(self, walk: Walk) -> None:
        """Hand ``walk``'s new peers to ``on_peers`` (an error there is logged)."""
        if self.on_peers is None or self.finished:
            return
        new = walk.new_peers()
        if new:
            try:
                self.on_peers(new)
            except Exception:
                _log.failure("a DHT peers callback failed")

    def result(self, now: float) -> LookupResult:
        peers: dict[Address, None] = {}
        nodes: list[NodeInfo] = []
        for walk in self.walks:
            peers.update(dict.fromkeys(walk.lookup.peers))
            nodes.extend(walk.lookup.closest())
        lookups = [walk.lookup for walk in self.walks]
        return LookupResult(
            target=self.target,
            kind=self.kind,
            peers=tuple(peers),
            nodes=tuple(nodes),
            queries=sum(lookup.queries_sent for lookup in lookups),
            responses=sum(lookup.responses for lookup in lookups),
            failures=sum(lookup.failures for lookup in lookups),
            announced=self.announced,
            elapsed=now - self.started,
        )

    def finish(self, now: float) -> None:
        """Fire ``deferred`` with the result (once)."""
        if self.finished:
            return
        self.finished = True
        self.deferred.callback(self.result(now))

    def fail(self, reason: str) -> None:
        """Errback ``deferred`` with ``DHTError(reason)`` (once)."""
        if self.finished:
            return
        self.finished = True
        self.deferred.errback(DHTError(reason))
