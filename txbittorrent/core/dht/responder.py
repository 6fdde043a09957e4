"""Answering other nodes' queries (BEP 5, 32, 42, 43), sans I/O.

Theory of operation
-------------------
``Responder.answer(query, source, now)`` is everything a node does with an
incoming query, given the query already decoded (``krpc.decode_message``)
and allowed by the rate limit (``ratelimit.SourceRateLimit``):

* the querier goes into the routing table as a node that queried us
  (``RoutingTable.node_queried_us``), unless it is read-only (BEP 43), it
  claims our own id, or, with ``enforce_node_id``, its id is not valid for
  its address (BEP 42; local addresses always pass);
* ``ping`` is answered with our id; ``find_node`` with the ``k`` nearest
  nodes to the target; ``get_peers`` with a token, the peers announced for
  the info hash (a sample of at most ``max_values``) and the nearest nodes
  (given with the peers too, so the querier's walk can go on);
  ``announce_peer`` stores the querier's address (its UDP port if
  ``implied_port``, else ``port``) if the token is the one we gave that IP
  for that info hash, and is refused with a 203 otherwise;
* nodes come from the table of the socket's family, unless the query's
  ``want`` (BEP 32) asks for ``n4`` and/or ``n6``: then from each table
  named that we have (``other_table`` is the other family's);
* every reply carries the querier's address as we see it (BEP 42's ``ip``)
  and our ``version``, if set.

A read-only node (BEP 43) answers nothing: ``answer`` returns ``None`` and
the adapter sends nothing.  The adapter keeps one responder per socket
family, sharing one ``Tokens``; each has its family's table and store.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, TypeVar

from txbittorrent.core.dht.krpc import (
    WANT_IPV4,
    WANT_IPV6,
    Address,
    AnnouncePeerQuery,
    ErrorCode,
    ErrorReply,
    FindNodeQuery,
    GetPeersQuery,
    NodeInfo,
    PingQuery,
    Query,
    Response,
)
from txbittorrent.core.dht.node_id import is_valid_node_id
from txbittorrent.core.dht.routing import RoutingTable
from txbittorrent.core.dht.storage import MAX_VALUES, PeerStore
from txbittorrent.core.dht.tokens import Tokens

__all__ = ["Responder", "Sampler"]

T = TypeVar("T")


class Sampler(Protocol):
    """The part of ``random.Random`` used here."""

    def sample(self, population: Sequence[T], k: int) -> list[T]: ...


class Responder:
    """Answers to queries arriving on one socket (see the module docstring)."""

    def __init__(
        self,
        table: RoutingTable,
        tokens: Tokens,
        store: PeerStore,
        rng: Sampler,
        *,
        other_table: RoutingTable | None = None,
        read_only: bool = False,
        enforce_node_id: bool = False,
        version: bytes | None = None,
        max_values: int = MAX_VALUES,
    ) -> None:
        self.table = table
        self.other_table = other_table
        self.tokens = tokens
        self.store = store
        self._rng = rng
        self.read_only = read_only
        self.enforce_node_id = enforce_node_id
        self.version = version
        self.max_values = max_values

    @property
    def own_id(self) -> bytes:
        return self.table.own_id

    def answer(self, query: Query, source: Address, now: float) -> Response | ErrorReply | None:
        """The reply to ``query`` from ``source`` at ``now`` (``None``: send nothing)."""
        if self.read_only:
            return None
        self._note_querier(query, source, now)
        tid = query.transaction_id
        if isinstance(query, PingQuery):
            return self._response(tid, source)
        if isinstance(query, FindNodeQuery):
            nodes, nodes6 = self._nodes(query.target, query.want, now)
            return self._response(tid, source, nodes=nodes, nodes6=nodes6)
        if isinstance(query, GetPeersQuery):
            nodes, nodes6 = self._nodes(query.info_hash, query.want, now)
            values = self.store.get(query.info_hash, now, self._rng, self.max_values)
            token = self.tokens.token(source[0], query.info_hash, now)
            return self._response(
                tid, source, nodes=nodes, nodes6=nodes6, values=tuple(values) or None, token=token
            )
        return self._announce(query, source, now)

    def _announce(
        self, query: AnnouncePeerQuery, source: Address, now: float
    ) -> Response | ErrorReply:
        host, udp_port = source
        if not self.tokens.is_valid(query.token, host, query.info_hash, now):
            return ErrorReply(
                transaction_id=query.transaction_id, version=self.version,
                code=ErrorCode.PROTOCOL, message="bad token",
            )
        port = udp_port if query.implied_port else query.port
        self.store.announce(query.info_hash, (host, port), now)
        return self._response(query.transaction_id, source)

    def _note_querier(self, query: Query, source: Address, now: float) -> None:
        if query.read_only or query.node_id == self.own_id:
            return
        if self.enforce_node_id and not is_valid_node_id(query.node_id, source[0]):
            return
        self.table.node_queried_us(query.node_id, source, now)

    def _nodes(
        self, target: bytes, want: tuple[bytes, ...], now: float
    ) -> tuple[tuple[NodeInfo, ...] | None, tuple[NodeInfo, ...] | None]:
        """``nodes`` and ``nodes6`` for a reply, as ``want`` asks."""
        tables = {self.table.ipv6: self.table}
        if self.other_table is not None:
            tables[self.other_table.ipv6] = self.other_table
        wanted = {flag for flag, name in ((False, WANT_IPV4), (True, WANT_IPV6)) if name in want}
        if not wanted:
            wanted = {self.table.ipv6}
        found: dict[bool, tuple[NodeInfo, ...] | None] = {False: None, True: None}
        for ipv6 in wanted:
            table = tables.get(ipv6)
            if table is not None:
                found[ipv6] = tuple(table.closest(target, now))
        return found[False], found[True]

    def _response(
        self,
        transaction_id: bytes,
        source: Address,
        *,
        nodes: tuple[NodeInfo, ...] | None = None,
        nodes6: tuple[NodeInfo, ...] | None = None,
        values: tuple[Address, ...] | None = None,
        token: bytes | None = None,
    ) -> Response:
        return Response(
            transaction_id=transaction_id,
            version=self.version,
            node_id=self.own_id,
            nodes=nodes,
            nodes6=nodes6,
            values=values,
            token=token,
            ip=source,
        )
