"""The DHT node's traffic: queries out, datagrams in, deadlines, walks driven.

Theory of operation
-------------------
``Exchange`` is the half of ``DHTNode`` that touches the UDP transport and
the clock.  It owns the pending queries (``core.dht.transactions``), the
per-source rate limit, the walks in progress and one ``DelayedCall``; it
shares the node's ``Family`` objects (tables, stores, responders).

* Out: ``query(address, context, deadline, build)`` records a transaction
  and sends ``build(transaction_id)``; ``ping`` and ``drive`` (a walk's
  queries; a query that cannot be sent counts as timed out at once) use it.
* In (``datagram_received``, the mux consumer): a reply or error must
  match a pending query from its address, else it is dropped; a reply puts
  the responder in its family's table (BEP 42-checked if the settings say
  so), votes its ``ip`` and goes to its walk.  A query, or an unreadable
  one we owe a 203/204, must pass the rate limit of its source host, then
  the family's responder answers it (BEP 43: a read-only node answers
  nothing).  Whatever goes wrong with one datagram is logged and counted;
  nothing is raised to the mux.
* Time: ``reschedule`` keeps one ``DelayedCall`` at the earliest deadline
  of the pending queries and the walks.  A query that times out fails its
  node in the table and in its walk; a walk past its ``next_deadline`` is
  ticked (slow queries free their slot).
* A walk whose lookup is done is removed and handed to ``walk_done``.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Callable, Protocol

from twisted.logger import Logger

from txbittorrent.core.dht.krpc import (
    Address,
    ErrorReply,
    KRPCError,
    Message,
    PingQuery,
    Query,
    Response,
    decode_message,
    encode_message,
)
from txbittorrent.core.dht.lookup import LookupQuery
from txbittorrent.core.dht.node_id import ExternalAddressVotes, is_valid_node_id
from txbittorrent.core.dht.ratelimit import SourceRateLimit
from txbittorrent.core.dht.transactions import Transactions
from txbittorrent.dht.family import Family, NodeStats
from txbittorrent.dht.search import Walk

if TYPE_CHECKING:
    import random

    from txbittorrent.dht.config import DHTConfig
    from txbittorrent.net.udp import Consumer

__all__ = ["Exchange", "Sent", "family_of", "DatagramTransport"]

_log = Logger()


def family_of(address: Address) -> int:
    """4 or 6, from a canonical host."""
    return 6 if ":" in address[0] else 4


class DatagramTransport(Protocol):
    """What the node uses of ``net.udp.DatagramMux``."""

    @property
    def families(self) -> frozenset[int]: ...

    def local_address(self, family: int) -> tuple[str, int] | None: ...

    def send(self, data: bytes, address: Address) -> None: ...

    def add_consumer(self, predicate: Callable[[bytes], bool], consumer: Consumer) -> None: ...

    def remove_consumer(self, consumer: Consumer) -> None: ...


@dataclass(frozen=True, slots=True)
class Sent:
    """The context of one pending query: whom we asked, for which walk."""

    node_id: bytes | None
    walk: Walk | None = None


class Exchange:
    """Queries, replies and deadlines of one node (see the module docstring)."""

    def __init__(
        self,
        transport: DatagramTransport,
        families: dict[int, Family],
        config: DHTConfig,
        rng: random.Random,
        stats: NodeStats,
        version: bytes | None,
        walk_done: Callable[[Walk, float], None],
    ) -> None:
        self.transport = transport
        self.families = families
        self.config = config
        self.stats = stats
        self.version = version
        self._walk_done = walk_done
        self.node_id = b""
        self.transactions: Transactions[Sent] = Transactions(rng)
        self.ratelimit = SourceRateLimit(
            config.query_rate, config.query_burst, max_sources=config.max_sources,
            global_rate=config.global_query_rate,
        )
        self.votes = ExternalAddressVotes()
        """What responders say our address is (BEP 42's ``ip``)."""
        self.walks: set[Walk] = set()
        self._clock: Any = None
        self._timer: Any = None
        self._timer_at = 0.0

    def start(self, clock: Any, node_id: bytes) -> None:
        self._clock = clock
        self.node_id = node_id

    def stop(self) -> None:
        """Cancel the timer; forget the walks (their replies are dropped)."""
        timer, self._timer = self._timer, None
        if timer is not None and timer.active():
            timer.cancel()
        self.walks.clear()
        self._clock = None

    @property
    def running(self) -> bool:
        return self._clock is not None

    def now(self) -> float:
        return float(self._clock.seconds())

    # -- queries out ---------------------------------------------------------------------

    def ping(self, address: Address, node_id: bytes | None) -> bool:
        """Ping ``address`` (``node_id``: whom we expect there, if known)."""

        def build(tid: bytes) -> Query:
            return PingQuery(transaction_id=tid, node_id=self.node_id,
                             read_only=self.config.read_only, version=self.version)

        return self.query(address, Sent(node_id), None, build)

    def query(
        self, address: Address, context: Sent, deadline: float | None,
        build: Callable[[bytes], Query],
    ) -> bool:
        """Send the query ``build(transaction_id)`` makes; False if it could
        not be sent (too many pending, or the socket refused)."""
        pending = self.transactions.add(address, context, self.now(), deadline)
        if pending is None:
            self.stats.dropped_queries += 1
            return False
        tid = pending.transaction_id
        if not self.send(build(tid), address):
            self.transactions.cancel(tid)
            return False
        self.stats.queries_sent += 1
        return True

    def send(self, message: Message, address: Address) -> bool:
        try:
            self.transport.send(encode_message(message), address)
        except (OSError, ValueError) as e:
            self.stats.send_errors += 1
            _log.debug("DHT send to {address} failed: {error}", address=address, error=e)
            return False
        self.stats.sent += 1
        return True

    def drive(self, walk: Walk, queries: list[LookupQuery], now: float) -> None:
        """Send a walk's queries; hand it to ``walk_done`` once it is done."""
        todo = deque(queries)
        lookup = walk.lookup

        def build(tid: bytes) -> Query:
            return lookup.make_query(
                tid, self.node_id, read_only=self.config.read_only, version=self.version
            )

        while todo:
            q = todo.popleft()
            if not self.query(q.address, Sent(q.node_id, walk), q.deadline, build):
                todo.extend(lookup.timed_out(q.address, now))
        walk.search.peers_learned(walk)
        if lookup.done and walk in self.walks:
            self.walks.discard(walk)
            self._walk_done(walk, now)

    # -- datagrams in ------------------------------------------------------------------------

    def datagram_received(self, data: bytes, source: Address) -> None:
        """A KRPC datagram from the mux (never raises)."""
        if not self.running:
            return
        self.stats.received += 1
        try:
            self._handle(data, source, self.now())
        except Exception:
            self.stats.errors += 1
            _log.failure("a DHT datagram from {source} could not be handled", source=source)
        self.reschedule()

    def _handle(self, data: bytes, source: Address, now: float) -> None:
        family = self.families.get(family_of(source))
        if family is None:
            return
        try:
            message = decode_message(data)
        except KRPCError as e:
            self.stats.malformed += 1
            reply = e.reply()
            if reply is not None and not self.config.read_only and self.allow(source, now):
                self.send(replace(reply, version=self.version), source)
            return
        if isinstance(message, (Response, ErrorReply)):
            self._reply(family, message, source, now)
            return
        if not self.allow(source, now):
            return
        self.stats.queries_received += 1
        answer = family.responder.answer(message, source, now)
        if answer is not None:
            self.send(answer, source)

    def _reply(
        self, family: Family, message: Response | ErrorReply, source: Address, now: float
    ) -> None:
        pending = self.transactions.match(message.transaction_id, source)
        if pending is None:
            self.stats.unsolicited += 1
            return
        walk = pending.context.walk
        live = walk is not None and walk in self.walks
        if isinstance(message, ErrorReply):
            self.stats.errors_received += 1
            if walk is not None and live:
                self.drive(walk, walk.lookup.error_received(source, now), now)
            return
        self.stats.responses += 1
        if not self.config.enforce_node_id or is_valid_node_id(message.node_id, source[0]):
            family.table.node_responded(message.node_id, source, now)
        if message.ip is not None:
            self.votes.vote(message.ip[0], source[0])
        if walk is not None and live:
            self.drive(walk, walk.lookup.responded(source, message, now), now)

    def allow(self, source: Address, now: float) -> bool:
        """Whether the rate limit lets a query from ``source`` through."""
        if self.ratelimit.allow(source[0], now):
            return True
        self.stats.rate_limited += 1
        return False

    # -- deadlines ----------------------------------------------------------------------------

    def reschedule(self) -> None:
        """One DelayedCall at the earliest deadline of the queries and walks."""
        if not self.running:
            return
        deadlines = [self.transactions.next_deadline]
        deadlines += [walk.lookup.next_deadline for walk in self.walks]
        at = min((d for d in deadlines if d is not None), default=None)
        timer = self._timer
        if timer is not None and timer.active():
            if at is not None and self._timer_at <= at:
                return
            timer.cancel()
        self._timer = None
        if at is None:
            return
        self._timer_at = at
        self._timer = self._clock.callLater(max(0.0, at - self.now()), self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        # At least the deadline aimed at, whatever the float sums made of it.
        now = max(self.now(), self._timer_at)
        try:
            for pending in self.transactions.expire(now):
                self.stats.timeouts += 1
                context = pending.context
                family = self.families.get(family_of(pending.address))
                if context.node_id is not None and family is not None:
                    family.table.node_failed(context.node_id, now)
                walk = context.walk
                if walk is not None and walk in self.walks:
                    self.drive(walk, walk.lookup.timed_out(pending.address, now), now)
            for walk in list(self.walks):
                deadline = walk.lookup.next_deadline
                if deadline is not None and deadline <= now and walk in self.walks:
                    self.drive(walk, walk.lookup.tick(now), now)
        except Exception:
            _log.failure("the DHT timer failed")
        self.reschedule()
