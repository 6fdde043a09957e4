"""An iterative DHT lookup (BEP 5's find_node and get_peers walks), sans I/O.

Theory of operation
-------------------
A lookup walks towards ``target``: it asks the nodes it knows nearest the
target, learns nearer ones from their replies, asks those, and stops when
the ``k`` nearest nodes it has heard of have all answered (or failed).  A
get_peers lookup also collects the peers (``values``) and, from each node
that answered, the token an announce_peer to it needs.

The machine sends nothing and keeps no timers.  Each call returns the
queries to send now, as ``LookupQuery(address, node_id, deadline)``; the
caller sends them (``make_query`` builds the KRPC message) and reports:

* ``responded(address, response, now)`` when a reply comes;
* ``timed_out(address, now)`` when ``deadline`` passes without one, or
  ``error_received(address, now)`` for an error reply;
* ``tick(now)`` at ``next_deadline``: a query unanswered after
  ``slow_after`` seconds stops counting against ``alpha`` (libtorrent's
  "short timeout"), so one dead node does not stall the walk; its reply
  is still welcome until its deadline.

Invariants and bounds:

* at most ``alpha`` queries are in flight, not counting slow ones;
* only candidates among the ``k`` nearest neither failed nor slow are asked,
  except nodes whose id is unknown (bootstrap routers given by address
  only), which are asked first;
* candidates are keyed by address; an address is asked at most once, and
  an id is accepted at one address only;
* at most ``max_candidates`` unasked candidates are kept (the farthest are
  dropped), at most ``max_queries`` are sent, at most ``max_peers`` peers
  kept, so a hostile reply cannot grow the lookup;
* ``done`` once the ``k`` nearest known candidates neither failed nor slow
  have all answered and no id-less node is pending, or nothing is left to
  ask and nothing is in flight.  A slow query nearer than those does not
  hold the walk up (libtorrent's choice too): a late reply that comes before
  the end is used, one after is ignored, like every reply after ``done``.

The machine is deterministic: candidates are ordered by XOR distance (no two
distinct ids tie) and id-less nodes in the order given.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from txbittorrent.core.dht.krpc import (
    ID_LENGTH,
    Address,
    FindNodeQuery,
    GetPeersQuery,
    NodeInfo,
    Response,
)

__all__ = [
    "LookupKind", "LookupQuery", "Lookup", "ALPHA", "SLOW_AFTER", "LOOKUP_QUERY_TIMEOUT",
    "MAX_QUERIES", "MAX_CANDIDATES", "MAX_PEERS",
]

ALPHA = 3
"""Queries in flight at once (BEP 5 / Kademlia's alpha)."""
SLOW_AFTER = 2.0
"""Seconds after which an unanswered query no longer holds back another."""
LOOKUP_QUERY_TIMEOUT = 10.0
"""Seconds after which an unanswered query has failed."""
MAX_QUERIES = 200
"""Queries one lookup may send in all."""
MAX_CANDIDATES = 64
"""Unasked candidates kept, nearest first."""
MAX_PEERS = 2000
"""Peers one get_peers lookup collects."""


class LookupKind(enum.Enum):
    FIND_NODE = "find_node"
    GET_PEERS = "get_peers"


@dataclass(frozen=True, slots=True)
class LookupQuery:
    """Ask the node at ``address``; call ``timed_out`` at ``deadline`` without a reply."""

    address: Address
    node_id: bytes | None
    deadline: float


class _State(enum.Enum):
    NEW = "new"
    ASKED = "asked"
    SLOW = "slow"
    RESPONDED = "responded"
    FAILED = "failed"


_IN_FLIGHT = (_State.ASKED, _State.SLOW)


@dataclass(slots=True)
class _Candidate:
    address: Address
    node_id: bytes | None
    key: int
    state: _State = _State.NEW
    sent_at: float = 0.0
    token: bytes | None = None


class Lookup:
    """One find_node or get_peers walk towards ``target`` (see the module docstring)."""

    def __init__(
        self,
        target: bytes,
        kind: LookupKind,
        seeds: Iterable[NodeInfo],
        *,
        bootstrap: Iterable[Address] = (),
        own_id: bytes | None = None,
        ipv6: bool = False,
        k: int = 8,
        alpha: int = ALPHA,
        slow_after: float | None = SLOW_AFTER,
        query_timeout: float = LOOKUP_QUERY_TIMEOUT,
        max_queries: int = MAX_QUERIES,
        max_candidates: int = MAX_CANDIDATES,
        max_peers: int = MAX_PEERS,
    ) -> None:
        if len(target) != ID_LENGTH:
            raise ValueError(f"a lookup target has {ID_LENGTH} bytes")
        if min(k, alpha, max_queries, max_peers) < 1 or max_candidates < k:
            raise ValueError("k, alpha and the bounds must be positive, max_candidates >= k")
        self.target = target
        self.kind = kind
        self.own_id = own_id
        self.ipv6 = ipv6
        self.k = k
        self.alpha = alpha
        self.slow_after = slow_after
        self.query_timeout = query_timeout
        self.max_queries = max_queries
        self.max_candidates = max_candidates
        self.max_peers = max_peers
        self._target = int.from_bytes(target, "big")
        self._candidates: dict[Address, _Candidate] = {}
        self._ids: dict[bytes, Address] = {}
        self._peers: dict[Address, None] = {}
        self._started = False
        self.done = False
        self.queries_sent = 0
        self.responses = 0
        self.failures = 0
        for address in bootstrap:
            if address not in self._candidates:
                self._candidates[address] = _Candidate(address, None, -1)
        self._learn(seeds)

    # -- results -----------------------------------------------------------------

    @property
    def peers(self) -> list[Address]:
        """The peers collected so far, in the order first heard, without repeats."""
        return list(self._peers)

    def closest(self, n: int | None = None) -> list[NodeInfo]:
        """The ``n`` (default k) nearest nodes that answered, nearest first."""
        answered = self._known(lambda c: c.state is _State.RESPONDED)
        return [_info(c) for c in answered[: self.k if n is None else n]]

    def announce_targets(self) -> list[tuple[NodeInfo, bytes]]:
        """The k nearest nodes that answered with a token, and their tokens."""
        answered = self._known(lambda c: c.state is _State.RESPONDED and c.token is not None)
        return [(_info(c), c.token) for c in answered[: self.k] if c.token is not None]

    @property
    def candidate_count(self) -> int:
        """Candidates held (asked or not): bounded by max_candidates + max_queries."""
        return len(self._candidates)

    @property
    def in_flight(self) -> int:
        """Queries sent and neither answered nor failed (slow ones included)."""
        return sum(c.state in _IN_FLIGHT for c in self._candidates.values())

    @property
    def next_deadline(self) -> float | None:
        """When ``tick`` should be called next (a query turns slow), if ever."""
        if self.done or self.slow_after is None:
            return None
        asked = [c.sent_at for c in self._candidates.values() if c.state is _State.ASKED]
        return min(asked) + self.slow_after if asked else None

    def make_query(
        self,
        transaction_id: bytes,
        own_id: bytes,
        *,
        want: tuple[bytes, ...] = (),
        read_only: bool = False,
        version: bytes | None = None,
    ) -> FindNodeQuery | GetPeersQuery:
        """The KRPC query this lookup sends to each node."""
        if self.kind is LookupKind.FIND_NODE:
            return FindNodeQuery(
                transaction_id=transaction_id, node_id=own_id, target=self.target, want=want,
                read_only=read_only, version=version,
            )
        return GetPeersQuery(
            transaction_id=transaction_id, node_id=own_id, info_hash=self.target, want=want,
            read_only=read_only, version=version,
        )

    # -- events ------------------------------------------------------------------

    def start(self, now: float) -> list[LookupQuery]:
        """The first queries (at most ``alpha``)."""
        if self._started:
            return []
        self._started = True
        return self._advance(now)

    def responded(self, address: Address, response: Response, now: float) -> list[LookupQuery]:
        """The node at ``address`` answered our query with ``response``."""
        candidate = self._candidates.get(address)
        if self.done or candidate is None or candidate.state not in _IN_FLIGHT:
            return []
        node_id = response.node_id
        owner = self._ids.get(node_id)
        if node_id == self.own_id or (owner is not None and owner != address):
            return self._fail(candidate, now)
        if candidate.node_id != node_id:
            if candidate.node_id is not None:
                del self._ids[candidate.node_id]
            candidate.node_id = node_id
            candidate.key = int.from_bytes(node_id, "big") ^ self._target
            self._ids[node_id] = address
        candidate.state = _State.RESPONDED
        self.responses += 1
        if self.kind is LookupKind.GET_PEERS:
            candidate.token = response.token
            for peer in response.values or ():
                if len(self._peers) >= self.max_peers:
                    break
                self._peers[peer] = None
        self._learn((response.nodes6 if self.ipv6 else response.nodes) or ())
        return self._advance(now)

    def timed_out(self, address: Address, now: float) -> list[LookupQuery]:
        """Our query to ``address`` reached its deadline unanswered."""
        candidate = self._candidates.get(address)
        if self.done or candidate is None or candidate.state not in _IN_FLIGHT:
            return []
        return self._fail(candidate, now)

    def error_received(self, address: Address, now: float) -> list[LookupQuery]:
        """The node at ``address`` answered our query with a KRPC error."""
        return self.timed_out(address, now)

    def tick(self, now: float) -> list[LookupQuery]:
        """Mark queries unanswered for ``slow_after`` as slow; more queries may go."""
        if self.done or self.slow_after is None:
            return []
        for candidate in self._candidates.values():
            # The same sum as next_deadline, so a tick at that time always acts.
            if candidate.state is _State.ASKED and candidate.sent_at + self.slow_after <= now:
                candidate.state = _State.SLOW
        return self._advance(now)

    # -- the walk ----------------------------------------------------------------

    def _fail(self, candidate: _Candidate, now: float) -> list[LookupQuery]:
        candidate.state = _State.FAILED
        self.failures += 1
        return self._advance(now)

    def _learn(self, nodes: Iterable[NodeInfo]) -> None:
        added = False
        for node in nodes:
            if (
                len(node.node_id) != ID_LENGTH
                or node.node_id == self.own_id
                or node.address in self._candidates
                or node.node_id in self._ids
            ):
                continue
            key = int.from_bytes(node.node_id, "big") ^ self._target
            self._candidates[node.address] = _Candidate(node.address, node.node_id, key)
            self._ids[node.node_id] = node.address
            added = True
        if added:
            self._prune()

    def _prune(self) -> None:
        unasked = self._known(lambda c: c.state is _State.NEW)
        for candidate in unasked[self.max_candidates :]:
            del self._candidates[candidate.address]
            if candidate.node_id is not None:
                del self._ids[candidate.node_id]

    def _known(self, keep: Callable[[_Candidate], bool]) -> list[_Candidate]:
        """Candidates with a known id passing ``keep``, nearest first."""
        found = [c for c in self._candidates.values() if c.node_id is not None and keep(c)]
        found.sort(key=lambda c: c.key)
        return found

    def _advance(self, now: float) -> list[LookupQuery]:
        """Send what may be sent; decide whether the walk is over."""
        if self.done:
            return []
        window = self._known(lambda c: c.state not in (_State.FAILED, _State.SLOW))[: self.k]
        idless = [c for c in self._candidates.values() if c.node_id is None]
        eligible = [c for c in idless if c.state is _State.NEW]
        eligible += [c for c in window if c.state is _State.NEW]
        active = sum(c.state is _State.ASKED for c in self._candidates.values())
        queries = []
        for candidate in eligible:
            if active >= self.alpha or self.queries_sent >= self.max_queries:
                break
            candidate.state = _State.ASKED
            candidate.sent_at = now
            self.queries_sent += 1
            active += 1
            deadline = now + self.query_timeout
            queries.append(LookupQuery(candidate.address, candidate.node_id, deadline))
        if not queries:
            # Nothing more can happen with nothing in flight; otherwise the walk
            # is over once the k nearest answered (slow ones count as failed, as
            # in libtorrent) and no id-less node is still expected to.
            settled = all(c.state is _State.RESPONDED for c in window)
            idless_pending = any(c.state in (_State.NEW, _State.ASKED) for c in idless)
            if self.in_flight == 0 or (settled and not idless_pending):
                self.done = True
        return queries


def _info(candidate: _Candidate) -> NodeInfo:
    assert candidate.node_id is not None
    return NodeInfo(candidate.node_id, candidate.address)
