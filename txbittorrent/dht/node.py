"""A mainline DHT node (BEP 5, 32, 42, 43) over the session's UDP sockets.

Theory of operation
-------------------
``DHTNode`` is the thin Twisted adapter over ``core.dht`` (its package
docstring is the wiring plan this follows).  It owns, per address family
the UDP transport has a socket for, a ``RoutingTable``, a ``PeerStore`` and
a ``Responder`` (BEP 32: separate tables); and shared by both, the
``Tokens``, the ``Transactions`` (pending queries by id), the
``SourceRateLimit`` and the BEP 42 ``ExternalAddressVotes``.

The traffic (queries out, KRPC datagrams in from the ``DatagramMux``,
deadlines, the rate limit, walks driven) is ``rpc.Exchange``'s: see there.
Here: a maintenance ``LoopingCall`` (pings of questionable nodes, bucket
refreshes, expiry of announced peers, joining again while the node has not
joined) and a save ``LoopingCall`` when ``state_path`` is set.

Joining: with saved nodes (``state_path``), a lookup of our own id among
them; with none, or if none answers, the same lookup through the bootstrap
routers (``bootstrap.resolve_bootstrap``: only addresses our sockets can
reach).  Once it gets answers the node is ready (``DHTReady`` on
``events``, ``when_ready`` fires); if it gets none it tries again later,
backing off.

Searches (``find_node``, ``get_peers``, ``announce``): a walk per family,
seeded with the table's nearest nodes (and the routers while the table is
small); at most ``MAX_SEARCHES`` run at once, the rest wait in a bounded
queue.  An announce sends ``announce_peer`` with each token the walks
collected once they are done.

Life cycle: the constructor does nothing observable; ``start`` reads the
saved state, registers the consumer and starts timers and the join;
``stop`` cancels every timer, unregisters, fails the searches under way
and saves the state.  Bounds: queries pending (``Transactions``), searches,
the tables, the stores and the rate limiter's hosts are all capped.
"""

from __future__ import annotations

import random
from collections import deque
from typing import Any, Callable

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

from txbittorrent._reactor import resolve_reactor
from txbittorrent.core.dht.krpc import Address, AnnouncePeerQuery, Query
from txbittorrent.core.dht.lookup import Lookup, LookupKind
from txbittorrent.core.dht.node_id import ExternalAddressVotes, make_node_id
from txbittorrent.core.dht.tokens import Tokens
from txbittorrent.dht.bootstrap import Reachability, Resolve, resolve_bootstrap
from txbittorrent.dht.config import DHTConfig
from txbittorrent.dht.family import Family, NodeStats
from txbittorrent.dht.rpc import DatagramTransport, Exchange, Sent, family_of
from txbittorrent.dht.search import LookupResult, OnPeers, Search, Walk
from txbittorrent.dht.state import NodeState, load_state, save_state
from txbittorrent.errors import LocalProtocolError, ResumeDataError, StorageError
from txbittorrent.eventtypes import DHTReady
from txbittorrent.net.udp import is_krpc

__all__ = ["DHTNode", "DatagramTransport", "VERSION", "MAINTENANCE_INTERVAL", "MAX_SEARCHES"]

_log = Logger()

VERSION = b"TX01"
"""Our KRPC ``v``: client TX, version 0.1."""
MAINTENANCE_INTERVAL = 5.0
"""Seconds between pings, refreshes, expiry and join attempts."""
MAX_SEARCHES = 32
"""Searches running at once; more wait in the queue."""
MAX_QUEUED = 1024
"""Searches waiting; beyond that a search fails at once."""
JOIN_RETRY = (5.0, 15.0, 60.0, 300.0)
"""Seconds before joining again after a join got no answer, then each further failure."""


class DHTNode:
    """A DHT node on a ``DatagramTransport`` (see the module docstring)."""

    def __init__(
        self,
        transport: DatagramTransport,
        config: DHTConfig | None = None,
        *,
        reactor: Any = None,
        rng: random.Random | None = None,
        events: Any = None,
        resolve: Resolve | None = None,
        version: bytes | None = VERSION,
    ) -> None:
        """``events``: an ``EventBus`` for ``DHTReady``; ``resolve``: turns a
        router's name into addresses (None: routers by IP literal only)."""
        self.config = config if config is not None else DHTConfig(enabled=True)
        self.transport = transport
        self._given_reactor = reactor
        self._clock: Any = None
        self._rng = rng if rng is not None else random.Random()
        self.events = events
        self._resolve = resolve
        self.version = version
        self.node_id = b""
        """Our id (known once started)."""
        self.families: dict[int, Family] = {}
        self._tokens = Tokens(self._rng)
        self.stats = NodeStats()
        self.exchange = Exchange(
            transport, self.families, self.config, self._rng, self.stats, version,
            self._walk_done,
        )
        self._searches: set[Search] = set()
        self._queue: deque[tuple[Search, tuple[int, ...]]] = deque()
        self._loops: list[LoopingCall] = []
        self._reachable = Reachability({})
        self._routers: list[Address] = []
        self._joining = False
        self._use_routers = True
        self._join_failures = 0
        self._next_join = 0.0
        self.ready = False
        """Whether the node has joined (a lookup of its own id got answers)."""
        self._ready_waiters: list[Deferred[int]] = []
        self._running = False

    @property
    def votes(self) -> ExternalAddressVotes:
        """What responders say our address is (BEP 42's ``ip``)."""
        return self.exchange.votes

    # -- life cycle ------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._running

    @property
    def port(self) -> int | None:
        """The UDP port peers reach the node on (for the PORT message)."""
        for family in (4, 6):
            address = self.transport.local_address(family)
            if address is not None:
                return address[1]
        return None

    def start(self) -> None:
        """Load the saved state, listen for KRPC datagrams, start timers and the join."""
        if self._running or self._clock is not None:
            raise LocalProtocolError("a DHT node starts once")
        self._clock = resolve_reactor(self._given_reactor)
        families = sorted(self.transport.families)
        if not families:
            raise LocalProtocolError("the DHT node has no UDP socket to run on")
        saved = self._load()
        self.node_id = saved.node_id if saved is not None else make_node_id(None, self._rng)
        tables = {f: saved.table(f) if saved is not None else None for f in families}
        for family in families:
            self.families[family] = Family.make(
                family, self.node_id, tables.get(family), self._tokens, self._rng, self.config,
                self.version,
            )
        for family in families:
            other = self.families.get(10 - family)
            self.families[family].responder.other_table = other.table if other else None
        local = {f: a[0] for f in families if (a := self.transport.local_address(f))}
        self._reachable = Reachability(local)
        self._use_routers = not any(len(f.table) for f in self.families.values())
        self.exchange.start(self._clock, self.node_id)
        self.transport.add_consumer(is_krpc, self.exchange.datagram_received)
        self._running = True
        self._every(MAINTENANCE_INTERVAL, self._maintain)
        if self.config.state_path is not None:
            self._every(self.config.save_interval, self.save)
        self._join()

    def stop(self) -> Deferred[None]:
        """Stop timers and listening, fail the searches under way, save the state."""
        if not self._running:
            return succeed(None)
        self._running = False
        self.exchange.stop()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        self._loops = []
        self.transport.remove_consumer(self.exchange.datagram_received)
        queued = [search for search, _ in self._queue]
        self._queue.clear()
        for search in list(self._searches) + queued:
            search.fail("the DHT node stopped")
        self._searches.clear()
        self.save()
        return succeed(None)

    def _every(self, interval: float, f: Callable[[], object]) -> None:
        loop = LoopingCall(self._guarded, f)
        loop.clock = self._clock
        self._loops.append(loop)
        loop.start(interval, now=False)

    def _guarded(self, f: Callable[[], object]) -> None:
        try:
            f()
        except Exception:
            _log.failure("DHT timer {name} failed", name=getattr(f, "__name__", f))
        self.exchange.reschedule()

    # -- persistence ------------------------------------------------------------------

    def _load(self) -> NodeState | None:
        path = self.config.state_path
        if path is None:
            return None
        try:
            return load_state(path)
        except ResumeDataError as e:
            _log.warn("DHT state not used, starting afresh: {error}", error=e)
            return None

    def save(self) -> None:
        """Write our id and tables to ``state_path`` (if set) atomically."""
        path = self.config.state_path
        if path is None or not self.node_id:
            return
        tables = {number: f.table.to_state() for number, f in self.families.items()}
        try:
            save_state(path, NodeState(self.node_id, tables))
        except (StorageError, OSError) as e:
            _log.warn("saving the DHT state failed: {error}", error=e)

    # -- what others ask of the node ------------------------------------------------

    def node_count(self, family: int | None = None) -> int:
        """Nodes in the routing tables (one family's, or all)."""
        return sum(len(f.table) for n, f in self.families.items() if family in (None, n))

    def when_ready(self) -> Deferred[int]:
        """Fires with the node count once the node has joined (at once if it
        has); cancel it to stop waiting."""
        if self.ready:
            return succeed(self.node_count())
        d: Deferred[int] = Deferred(self._ready_waiters.remove)  # cancel: forgotten
        self._ready_waiters.append(d)
        return d

    def find_node(self, target: bytes) -> Deferred[LookupResult]:
        """The nodes nearest ``target`` (an iterative find_node)."""
        return self._search(Search(target, LookupKind.FIND_NODE, self._now()))

    def get_peers(
        self, info_hash: bytes, on_peers: OnPeers | None = None
    ) -> Deferred[LookupResult]:
        """The peers of ``info_hash`` (an iterative get_peers); ``on_peers``
        hears them as they come."""
        return self._search(
            Search(info_hash, LookupKind.GET_PEERS, self._now(), on_peers=on_peers)
        )

    def announce(
        self, info_hash: bytes, port: int = 0, *, implied_port: bool = False,
        on_peers: OnPeers | None = None,
    ) -> Deferred[LookupResult]:
        """``get_peers``, then ``announce_peer`` of ``port`` (or, with
        ``implied_port``, our UDP port) to the nearest nodes that gave a token."""
        if not implied_port and not 0 < port <= 0xFFFF:
            raise ValueError(f"announce port out of range: {port}")
        search = Search(info_hash, LookupKind.GET_PEERS, self._now(), announce_port=port,
                        implied_port=implied_port, on_peers=on_peers)
        return self._search(search)

    def add_node(self, address: Address) -> bool:
        """A node worth knowing (a peer's PORT message): ping it, and it goes in
        the table if it answers.  False if not sent (not running, unreachable,
        known already, too many queries pending)."""
        family = self.families.get(family_of(address))
        if not self._running or family is None or not self._reachable(address):
            return False
        if any(node.address == address for node in family.table.nodes()):
            return False
        sent = self.exchange.ping(address, None)
        self.exchange.reschedule()
        return sent

    def _now(self) -> float:
        if self._clock is None:
            raise LocalProtocolError("the DHT node is not started")
        return float(self._clock.seconds())

    # -- joining -----------------------------------------------------------------------

    def _join(self) -> None:
        """Look up our own id: among the saved nodes, or through the routers."""
        self._joining = True
        if not self._use_routers:
            self._join_search(())
            return
        d = resolve_bootstrap(self.config.bootstrap_nodes, self._reachable, self._resolve)
        d.addCallback(self._join_search)
        d.addErrback(self._join_failed)

    def _join_failed(self, failure: Any) -> None:
        self._joining = False
        _log.failure("joining the DHT failed", failure)

    def _join_search(self, routers: list[Address] | tuple[()]) -> None:
        if not self._running:
            return
        if routers:
            self._routers = list(routers)
        search = Search(self.node_id, LookupKind.FIND_NODE, self._now())
        search.deferred.addCallbacks(self._joined, lambda f: None)
        self._search(search, use_routers=self._use_routers)

    def _joined(self, result: LookupResult) -> None:
        self._joining = False
        now = self._now()
        if result.responses and self.node_count():
            self._join_failures = 0
            if not self.ready:
                self._became_ready()
            return
        if not self._use_routers:
            self._use_routers = True  # the saved nodes are gone: ask the routers now
            self._next_join = now
            return
        delay = JOIN_RETRY[min(self._join_failures, len(JOIN_RETRY) - 1)]
        self._join_failures += 1
        self._next_join = now + delay
        _log.info("the DHT join got no answer; trying again in {delay:.0f} s", delay=delay)

    def _became_ready(self) -> None:
        self.ready = True
        count = self.node_count()
        _log.info("DHT node {id} ready with {count} nodes", id=self.node_id.hex(), count=count)
        if self.events is not None:
            self.events.publish(DHTReady(b"", count))
        waiters, self._ready_waiters = self._ready_waiters, []
        for d in waiters:
            d.callback(count)

    # -- searches ---------------------------------------------------------------------------

    def _search(
        self, search: Search, families: tuple[int, ...] | None = None, *,
        use_routers: bool | None = None,
    ) -> Deferred[LookupResult]:
        if not self._running:
            search.fail("the DHT node is not running")
        elif len(self._searches) >= MAX_SEARCHES:
            if len(self._queue) >= MAX_QUEUED:
                search.fail("too many DHT lookups waiting")
            else:
                self._queue.append((search, families or tuple(self.families)))
        else:
            self._begin(search, families or tuple(self.families), use_routers)
        return search.deferred

    def _begin(
        self, search: Search, families: tuple[int, ...], use_routers: bool | None = None
    ) -> None:
        now = self._now()
        self._searches.add(search)
        for number in families:
            family = self.families[number]
            table = family.table
            seeds = table.closest(search.target, now, 2 * table.k)
            routers = [a for a in self._routers if family_of(a) == number]
            if not (len(table) < table.k if use_routers is None else use_routers):
                routers = []
            lookup = Lookup(
                search.target, search.kind, seeds, bootstrap=routers, own_id=self.node_id,
                ipv6=number == 6,
            )
            walk = Walk(lookup, number, search)
            search.walks.append(walk)
            self.exchange.walks.add(walk)
        for walk in list(search.walks):
            self.exchange.drive(walk, walk.lookup.start(now), now)
        self.exchange.reschedule()

    def _walk_done(self, walk: Walk, now: float) -> None:
        lookup = walk.lookup
        if lookup.kind is LookupKind.FIND_NODE:
            self.families[walk.family].table.refreshed(lookup.target, now)
        if walk.search.done:
            self._search_done(walk.search, now)

    def _search_done(self, search: Search, now: float) -> None:
        self._searches.discard(search)
        if search.announcing:
            self._announce(search)
        self.stats.lookups += 1
        search.finish(now)
        while self._queue and len(self._searches) < MAX_SEARCHES:
            queued, families = self._queue.popleft()
            self._begin(queued, families)

    def _announce(self, search: Search) -> None:
        port = search.announce_port or 0
        for walk in search.walks:
            for node, token in walk.lookup.announce_targets():
                def build(tid: bytes, token: bytes = token) -> Query:
                    return AnnouncePeerQuery(
                        transaction_id=tid, node_id=self.node_id, info_hash=search.target,
                        port=port, token=token, implied_port=search.implied_port,
                        read_only=self.config.read_only, version=self.version,
                    )
                if self.exchange.query(node.address, Sent(node.node_id), None, build):
                    search.announced += 1

    def _maintain(self) -> None:
        """Pings, refreshes, expiry, and joining again while the tables are empty."""
        now = self._now()
        if not self._joining and (not self.node_count() or not self.ready):
            if now >= self._next_join:
                self._join()
        for number, family in self.families.items():
            for node in family.table.pings_due(now):
                self.exchange.ping(node.address, node.node_id)
            for target in family.table.refresh_due(now, self._rng):
                if len(self._searches) < MAX_SEARCHES // 2:
                    refresh = Search(target, LookupKind.FIND_NODE, now)
                    refresh.deferred.addErrback(lambda _: None)  # (the node stopped)
                    self._search(refresh, (number,))
            family.store.expire(now)
