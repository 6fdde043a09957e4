"""What a DHT node keeps per address family, and the counters it keeps in all.

BEP 32 keeps IPv4 and IPv6 apart: each family has its own routing table,
its own store of announced peers (a reply's ``values`` hold peers of the
querier's family) and a responder over both.  ``Family.make`` builds one
from the node's settings, from a saved table when there is one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from txbittorrent.core.dht.responder import Responder
from txbittorrent.core.dht.routing import RoutingTable
from txbittorrent.core.dht.storage import PeerStore
from txbittorrent.core.dht.tokens import Tokens
from txbittorrent.dht.config import DHTConfig

__all__ = ["Family", "NodeStats"]


@dataclass(slots=True)
class Family:
    """One address family's table, store and responder."""

    number: int
    """4 or 6."""
    table: RoutingTable
    store: PeerStore
    responder: Responder

    @classmethod
    def make(
        cls,
        number: int,
        node_id: bytes,
        saved: RoutingTable | None,
        tokens: Tokens,
        rng: random.Random,
        config: DHTConfig,
        version: bytes | None,
    ) -> Family:
        table = saved if saved is not None else RoutingTable(node_id, ipv6=number == 6)
        store = PeerStore()
        responder = Responder(
            table, tokens, store, rng, read_only=config.read_only,
            enforce_node_id=config.enforce_node_id, version=version,
        )
        return cls(number, table, store, responder)


@dataclass(slots=True)
class NodeStats:
    """What a node has seen and done since it started (for logs and tests)."""

    received: int = 0
    """KRPC datagrams handed to the node."""
    queries_received: int = 0
    """Queries from others that passed the rate limit."""
    rate_limited: int = 0
    """Queries dropped by the per-source rate limit."""
    malformed: int = 0
    """Datagrams that were not KRPC we accept."""
    unsolicited: int = 0
    """Replies matching no query of ours (from that address)."""
    responses: int = 0
    """Replies to our queries."""
    errors_received: int = 0
    """KRPC errors in reply to our queries."""
    timeouts: int = 0
    """Our queries that got no reply in time."""
    queries_sent: int = 0
    sent: int = 0
    """Datagrams sent (queries and replies)."""
    send_errors: int = 0
    dropped_queries: int = 0
    """Queries not sent because too many were pending."""
    errors: int = 0
    """Datagrams whose handling raised (a bug; logged)."""
    lookups: int = 0
    """Searches finished."""
