"""Tests for txbittorrent.core.dht.lookup (and .transactions) over a fake network.

The fake network is a dict from address to ``FakeNode``: each has an id, a
real ``RoutingTable`` holding a random part of the network, peers for some
info hashes, and a behaviour (answers after a latency, never answers, or
lies).  ``drive`` plays a lookup against it on a simulated clock: replies
arrive ``latency`` seconds after their query, deadlines and ``tick`` times
fire in order, and nothing sleeps.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.dht.krpc import (
    Address,
    FindNodeQuery,
    GetPeersQuery,
    NodeInfo,
    Response,
)
from txbittorrent.core.dht.lookup import Lookup, LookupKind, LookupQuery
from txbittorrent.core.dht.routing import RoutingTable, distance
from txbittorrent.core.dht.transactions import Transactions

OWN_ID = b"\x00" * 20
INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")


@dataclass
class FakeNode:
    node_id: bytes
    address: Address
    table: RoutingTable
    peers: dict[bytes, list[Address]] = field(default_factory=dict)
    latency: float | None = 0.05
    """Seconds to answer; ``None`` never answers."""
    lie: list[NodeInfo] | None = None
    """If set, the nodes this node answers with, whatever the target."""
    claimed_id: bytes | None = None
    """If set, the id this node answers with instead of its own."""

    def answer(self, target: bytes, kind: LookupKind) -> Response:
        nodes = self.lie if self.lie is not None else self.table.closest(target, 0.0)
        values = tuple(self.peers.get(target, ())) if kind is LookupKind.GET_PEERS else None
        token = b"tk" + self.node_id[:2] if kind is LookupKind.GET_PEERS else None
        return Response(
            transaction_id=b"aa",
            node_id=self.claimed_id or self.node_id,
            nodes=tuple(nodes),
            values=values or None,
            token=token,
        )


def make_network(size: int, seed: int, known: int = 40) -> dict[Address, FakeNode]:
    """``size`` nodes, each knowing its 16 nearest and ``known`` others at random
    (a settled DHT: every node knows its neighbourhood well, the rest sparsely)."""
    rng = random.Random(seed)
    nodes = []
    for n in range(size):
        node_id = rng.getrandbits(160).to_bytes(20, "big")
        address = (f"10.{n // 250}.{n % 250}.1", 6881)
        nodes.append(FakeNode(node_id, address, RoutingTable(node_id)))
    for node in nodes:
        near = sorted(nodes, key=lambda other: distance(other.node_id, node.node_id))[1:17]
        for other in near + rng.sample(nodes, min(known, size)):
            node.table.node_responded(other.node_id, other.address, 0.0)
    return {node.address: node for node in nodes}


def kill(network: dict[Address, FakeNode], count: int, seed: int) -> list[FakeNode]:
    """Make ``count`` random nodes dead; the others have noticed and dropped them
    (only a stale table, like the seeds a test gives, still names them)."""
    dead = random.Random(seed).sample(list(network.values()), count)
    for node in dead:
        node.latency = None
        for other in network.values():
            other.table.remove(node.node_id)
    return dead


def true_closest(network: dict[Address, FakeNode], target: bytes, k: int = 8) -> list[bytes]:
    alive = [n.node_id for n in network.values() if n.latency is not None and n.lie is None]
    return sorted(alive, key=lambda i: distance(i, target))[:k]


@dataclass
class Trace:
    sent: list[LookupQuery] = field(default_factory=list)
    max_active: int = 0
    finished_at: float = 0.0


def drive(lookup: Lookup, network: dict[Address, FakeNode], now: float = 0.0) -> Trace:
    """Run ``lookup`` to the end against ``network`` on a simulated clock."""
    trace = Trace()
    events: list[tuple[float, int, str, Address]] = []
    seq = 0

    def push(when: float, kind: str, address: Address) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(events, (when, seq, kind, address))

    def send(queries: list[LookupQuery], at: float) -> None:
        for query in queries:
            trace.sent.append(query)
            node = network.get(query.address)
            if node is not None and node.latency is not None:
                push(at + node.latency, "reply", query.address)
            push(query.deadline, "deadline", query.address)
        deadline = lookup.next_deadline
        if deadline is not None:
            push(deadline, "tick", ("", 0))
        asked = lookup.in_flight if lookup.slow_after is None else None
        if asked is not None:
            trace.max_active = max(trace.max_active, asked)

    answered: set[Address] = set()
    send(lookup.start(now), now)
    while events and not lookup.done:
        now, _, kind, address = heapq.heappop(events)
        if kind == "reply":
            answered.add(address)
            response = network[address].answer(lookup.target, lookup.kind)
            send(lookup.responded(address, response, now), now)
        elif kind == "deadline" and address not in answered:
            send(lookup.timed_out(address, now), now)
        elif kind == "tick":
            send(lookup.tick(now), now)
    trace.finished_at = now
    return trace


def seeds_from(network: dict[Address, FakeNode], count: int, seed: int) -> list[NodeInfo]:
    """``count`` live nodes chosen at random."""
    rng = random.Random(seed + 1000)
    alive = [n for n in network.values() if n.latency is not None]
    return [NodeInfo(n.node_id, n.address) for n in rng.sample(alive, count)]


def nearest_dead(dead: list[FakeNode], target: bytes, count: int) -> list[NodeInfo]:
    """The ``count`` dead nodes nearest ``target`` (stale seeds a walk must try)."""
    dead = sorted(dead, key=lambda n: distance(n.node_id, target))
    return [NodeInfo(n.node_id, n.address) for n in dead[:count]]


class FindNodeTests(SynchronousTestCase):
    """find_node walks converge on the k nearest nodes."""

    def test_converges(self) -> None:
        """From a few random seeds, the lookup ends with the true 8 nearest."""
        network = make_network(300, seed=1)
        for attempt in range(5):
            target = random.Random(attempt).getrandbits(160).to_bytes(20, "big")
            lookup = Lookup(target, LookupKind.FIND_NODE, seeds_from(network, 3, attempt),
                            own_id=OWN_ID)
            trace = drive(lookup, network)
            self.assertTrue(lookup.done)
            self.assertEqual([n.node_id for n in lookup.closest()], true_closest(network, target))
            self.assertLess(lookup.queries_sent, 60)
            self.assertEqual(lookup.queries_sent, len(trace.sent))
            self.assertEqual(len({q.address for q in trace.sent}), len(trace.sent))

    def test_alpha_respected(self) -> None:
        """Without slow queries, at most alpha queries are ever in flight."""
        network = make_network(200, seed=2)
        for alpha in (1, 3, 5):
            lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, seeds_from(network, 8, 2),
                            alpha=alpha, slow_after=None)
            trace = drive(lookup, network)
            self.assertEqual(trace.max_active, alpha)
            self.assertEqual(len(lookup.start(0.0)), 0)

    def test_dead_nodes(self) -> None:
        """Nodes that never answer time out and the walk goes around them."""
        network = make_network(300, seed=3)
        dead = kill(network, 90, seed=3)
        stale = nearest_dead(dead, INFO_HASH, 5)
        failures = []
        for slow_after in (None, 2.0):
            lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, stale + seeds_from(network, 8, 3),
                            slow_after=slow_after)
            trace = drive(lookup, network)
            self.assertTrue(lookup.done)
            self.assertTrue({n.address for n in stale} & {q.address for q in trace.sent})
            expected = true_closest(network, INFO_HASH)
            self.assertEqual([n.node_id for n in lookup.closest()], expected)
            failures.append(lookup.failures)
        # Without slow queries each dead node asked had to time out; with them,
        # the walk ended before their deadlines.
        self.assertGreater(failures[0], 0)
        self.assertEqual(failures[1], 0)
        self.assertLess(trace.finished_at, 10.0)

    def test_slow_queries_do_not_stall(self) -> None:
        """With slow_after, a walk through dead nodes ends far sooner."""
        times = []
        for slow_after in (None, 1.0):
            network = make_network(300, seed=4)
            dead = kill(network, 120, seed=4)
            seeds = nearest_dead(dead, INFO_HASH, 6) + seeds_from(network, 2, 4)
            lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, seeds,
                            slow_after=slow_after, query_timeout=10.0)
            times.append(drive(lookup, network).finished_at)
            self.assertEqual([n.node_id for n in lookup.closest()],
                             true_closest(network, INFO_HASH))
        self.assertLess(times[1], times[0] / 2)

    def test_bootstrap_by_address(self) -> None:
        """A node known only by address is asked first and learned from."""
        network = make_network(200, seed=5)
        router = next(iter(network.values()))
        lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, [], bootstrap=[router.address])
        first = lookup.start(0.0)
        self.assertEqual(first, [LookupQuery(router.address, None, 10.0)])
        lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, [], bootstrap=[router.address])
        drive(lookup, network)
        self.assertEqual([n.node_id for n in lookup.closest()], true_closest(network, INFO_HASH))

    def test_nothing_to_ask(self) -> None:
        """With no seeds the lookup is over at once; a dead bootstrap ends it too."""
        lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, [])
        self.assertEqual(lookup.start(0.0), [])
        self.assertTrue(lookup.done)
        lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, [], bootstrap=[("10.9.9.9", 1)])
        [query] = lookup.start(0.0)
        self.assertFalse(lookup.done)
        self.assertEqual(lookup.timed_out(query.address, query.deadline), [])
        self.assertTrue(lookup.done)
        self.assertEqual(lookup.closest(), [])

    def test_deterministic(self) -> None:
        """The same network and seeds give the same queries in the same order."""
        runs = []
        for _ in range(2):
            network = make_network(150, seed=6)
            lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, seeds_from(network, 4, 6))
            runs.append(drive(lookup, network).sent)
        self.assertEqual(runs[0], runs[1])


class GetPeersTests(SynchronousTestCase):
    """get_peers walks collect peers and tokens."""

    def test_peers_and_tokens(self) -> None:
        """Peers from every answering node are collected; the announce targets
        are the 8 nearest that answered, with their tokens."""
        network = make_network(300, seed=7)
        by_id = {n.node_id: n for n in network.values()}
        holders = [by_id[i] for i in true_closest(network, INFO_HASH, 5)]
        for n, holder in enumerate(holders):
            holder.peers[INFO_HASH] = [("192.0.2.1", 6881), ("192.0.2.%d" % (n + 2), 6881)]
        lookup = Lookup(INFO_HASH, LookupKind.GET_PEERS, seeds_from(network, 3, 7))
        drive(lookup, network)
        expected = [("192.0.2.1", 6881)] + [("192.0.2.%d" % (n + 2), 6881) for n in range(5)]
        self.assertEqual(sorted(lookup.peers), sorted(expected))
        targets = lookup.announce_targets()
        self.assertEqual([n.node_id for n, _ in targets], true_closest(network, INFO_HASH))
        self.assertTrue(all(token == b"tk" + n.node_id[:2] for n, token in targets))

    def test_peers_bounded(self) -> None:
        """No more than max_peers peers are kept."""
        network = make_network(100, seed=8)
        for node in network.values():
            node.peers[INFO_HASH] = [(f"192.0.{i}.{node.address[0][-3]}", 1) for i in range(50)]
        lookup = Lookup(INFO_HASH, LookupKind.GET_PEERS, seeds_from(network, 8, 8), max_peers=30)
        drive(lookup, network)
        self.assertEqual(len(lookup.peers), 30)

    def test_make_query(self) -> None:
        """make_query builds the KRPC query of the lookup's kind."""
        get = Lookup(INFO_HASH, LookupKind.GET_PEERS, [])
        find = Lookup(INFO_HASH, LookupKind.FIND_NODE, [])
        self.assertEqual(
            get.make_query(b"tt", OWN_ID, want=(b"n4",), read_only=True),
            GetPeersQuery(transaction_id=b"tt", node_id=OWN_ID, info_hash=INFO_HASH,
                          want=(b"n4",), read_only=True),
        )
        self.assertEqual(
            find.make_query(b"tt", OWN_ID),
            FindNodeQuery(transaction_id=b"tt", node_id=OWN_ID, target=INFO_HASH),
        )


class HostileTests(SynchronousTestCase):
    """Lies and floods stay bounded."""

    def test_flood_of_fake_nodes(self) -> None:
        """A node answering with a thousand unreachable near ids cannot grow the
        lookup past its bounds, and the walk still ends."""
        network = make_network(200, seed=9)
        liar = next(iter(network.values()))
        rng = random.Random(9)
        liar.lie = [
            NodeInfo(bytes(INFO_HASH[:4]) + rng.getrandbits(128).to_bytes(16, "big"),
                     (f"203.0.{i // 250}.{i % 250}", 1))
            for i in range(1000)
        ]
        lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, [NodeInfo(liar.node_id, liar.address)],
                        max_queries=40, query_timeout=5.0)
        drive(lookup, network)
        self.assertTrue(lookup.done)
        self.assertLessEqual(lookup.queries_sent, 40)
        self.assertLessEqual(lookup.candidate_count, 40 + lookup.max_candidates)

    def test_unsolicited_and_late_replies_ignored(self) -> None:
        """Replies from addresses not asked, repeated, or after the end are ignored."""
        network = make_network(50, seed=10)
        node = next(iter(network.values()))
        lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, [NodeInfo(node.node_id, node.address)])
        reply = node.answer(INFO_HASH, LookupKind.FIND_NODE)
        self.assertEqual(lookup.responded(node.address, reply, 0.0), [])
        lookup.start(0.0)
        self.assertEqual(lookup.responded(("10.99.0.1", 1), reply, 0.1), [])
        lookup.responded(node.address, reply, 0.1)
        self.assertEqual(lookup.responses, 1)
        self.assertEqual(lookup.responded(node.address, reply, 0.2), [])
        self.assertEqual(lookup.timed_out(node.address, 0.3), [])
        self.assertEqual(lookup.responses, 1)

    def test_own_id_and_stolen_ids(self) -> None:
        """A reply claiming our id, or an id already seen at another address, fails."""
        network = make_network(50, seed=11)
        a, b = list(network.values())[:2]
        lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE,
                        [NodeInfo(a.node_id, a.address), NodeInfo(b.node_id, b.address)],
                        own_id=OWN_ID)
        lookup.start(0.0)
        b.claimed_id = a.node_id
        lookup.responded(b.address, b.answer(INFO_HASH, LookupKind.FIND_NODE), 0.1)
        a.claimed_id = OWN_ID
        lookup.responded(a.address, a.answer(INFO_HASH, LookupKind.FIND_NODE), 0.1)
        self.assertEqual((lookup.responses, lookup.failures), (0, 2))

    def test_changed_id_accepted(self) -> None:
        """A node answering under a new id is re-placed under that id."""
        network = make_network(50, seed=12)
        a = next(iter(network.values()))
        lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, [NodeInfo(a.node_id, a.address)],
                        k=1, max_candidates=1)
        lookup.start(0.0)
        a.claimed_id = INFO_HASH
        a.lie = []
        lookup.responded(a.address, a.answer(INFO_HASH, LookupKind.FIND_NODE), 0.1)
        self.assertEqual(lookup.closest(), [NodeInfo(INFO_HASH, a.address)])
        self.assertTrue(lookup.done)

    def test_error_reply_is_a_failure(self) -> None:
        """An error reply counts as a failed query."""
        network = make_network(50, seed=13)
        a = next(iter(network.values()))
        lookup = Lookup(INFO_HASH, LookupKind.FIND_NODE, [NodeInfo(a.node_id, a.address)])
        lookup.start(0.0)
        lookup.error_received(a.address, 0.1)
        self.assertEqual(lookup.failures, 1)
        self.assertTrue(lookup.done)

    def test_options(self) -> None:
        """Bad targets and bounds are refused."""
        with self.assertRaises(ValueError):
            Lookup(b"short", LookupKind.FIND_NODE, [])
        with self.assertRaises(ValueError):
            Lookup(INFO_HASH, LookupKind.FIND_NODE, [], alpha=0)
        with self.assertRaises(ValueError):
            Lookup(INFO_HASH, LookupKind.FIND_NODE, [], k=8, max_candidates=4)


class TransactionsTests(SynchronousTestCase):
    """Pending queries by transaction id."""

    def test_match(self) -> None:
        """A reply matches by id and address, once."""
        pending: Transactions[str] = Transactions(random.Random(1))
        query = pending.add(("10.0.0.1", 1), "ping", 0.0)
        assert query is not None
        self.assertEqual(len(query.transaction_id), 4)
        self.assertEqual(query.deadline, 10.0)
        self.assertIsNone(pending.match(query.transaction_id, ("10.0.0.2", 1)))
        self.assertIsNone(pending.match(b"zzzz", ("10.0.0.1", 1)))
        self.assertEqual(pending.match(query.transaction_id, ("10.0.0.1", 1)), query)
        self.assertIsNone(pending.match(query.transaction_id, ("10.0.0.1", 1)))
        self.assertEqual(len(pending), 0)

    def test_expire(self) -> None:
        """Queries past their deadline expire, in deadline order; answered ones do not."""
        pending: Transactions[int] = Transactions(random.Random(2), length=2)
        a = pending.add(("10.0.0.1", 1), 1, 0.0, deadline=5.0)
        b = pending.add(("10.0.0.1", 1), 2, 0.0, deadline=3.0)
        c = pending.add(("10.0.0.1", 1), 3, 0.0, deadline=4.0)
        assert a and b and c
        pending.match(c.transaction_id, c.address)
        self.assertEqual(pending.next_deadline, 3.0)
        self.assertEqual(pending.expire(2.9), [])
        self.assertEqual(pending.expire(5.0), [b, a])
        self.assertIsNone(pending.next_deadline)

    def test_bounded_and_unique(self) -> None:
        """Ids are unique among pending queries; max_pending is a hard bound."""
        pending: Transactions[None] = Transactions(random.Random(3), length=2, max_pending=1000)
        ids = set()
        for n in range(1000):
            query = pending.add(("10.0.0.1", 1), None, float(n))
            assert query is not None
            ids.add(query.transaction_id)
        self.assertEqual(len(ids), 1000)
        self.assertIsNone(pending.add(("10.0.0.1", 1), None, 0.0))
        self.assertEqual(len(pending.expire(10_000.0)), 1000)

    def test_cancel_and_compact(self) -> None:
        """Cancelled and answered queries leave the heap bounded."""
        pending: Transactions[None] = Transactions(random.Random(4))
        for n in range(500):
            query = pending.add(("10.0.0.1", 1), None, float(n))
            assert query is not None
            pending.cancel(query.transaction_id)
        self.assertLess(len(pending._deadlines), 100)
        self.assertEqual(list(pending), [])

    def test_with_lookup(self) -> None:
        """A lookup's queries, sent through Transactions, are matched back."""
        network = make_network(100, seed=14)
        lookup = Lookup(INFO_HASH, LookupKind.GET_PEERS, seeds_from(network, 3, 14))
        pending: Transactions[Lookup] = Transactions(random.Random(5))
        queries = lookup.start(0.0)
        sent = [pending.add(q.address, lookup, 0.0, deadline=q.deadline) for q in queries]
        for p in sent:
            assert p is not None
            message = lookup.make_query(p.transaction_id, OWN_ID)
            self.assertEqual(message.transaction_id, p.transaction_id)
            matched = pending.match(p.transaction_id, p.address)
            assert matched is not None
            response = network[p.address].answer(INFO_HASH, LookupKind.GET_PEERS)
            matched.context.responded(p.address, response, 0.1)
        self.assertEqual(lookup.responses, 3)
