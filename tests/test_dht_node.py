"""Tests for txbittorrent.dht.node: the DHT node over an in-memory network.

Nodes run on ``tests.dhtfakes.FakeNetwork`` (datagrams carried with a
latency on a ``Clock``); a ``FakeMux`` also stands in for a remote node
whose datagrams a test writes by hand.  Nothing sleeps.
"""

from __future__ import annotations

import os
import random

from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.dhtfakes import FakeNetwork, loopback_config, make_nodes, settle
from txbittorrent.core.dht.krpc import (
    ErrorCode,
    ErrorReply,
    FindNodeQuery,
    GetPeersQuery,
    PingQuery,
    Response,
    decode_message,
    encode_message,
)
from txbittorrent.core.dht.lookup import LookupKind
from txbittorrent.dht.config import DHTConfig
from txbittorrent.dht.node import JOIN_RETRY, DHTNode
from txbittorrent.dht.search import DHTError, LookupResult
from txbittorrent.events import EventBus
from txbittorrent.eventtypes import DHTReady

INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
REMOTE_ID = b"\xee" * 20


class NodeTestCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.clock = Clock()
        self.network = FakeNetwork(self.clock)

    def node(self, **fields: object) -> DHTNode:
        node = DHTNode(self.network.mux(), loopback_config(**fields), reactor=self.clock,
                       rng=random.Random(7))
        self.addCleanup(node.stop)
        return node

    def results(self, d: object) -> list[LookupResult]:
        out: list[LookupResult] = []
        d.addCallback(out.append)  # type: ignore[attr-defined]
        return out


class AnsweringTests(NodeTestCase):
    """Queries from others get answers; bad input gets nothing worse than an error."""

    def setUp(self) -> None:
        super().setUp()
        self.dht = self.node()
        self.dht.start()
        self.remote = self.network.mux()

    def ask(self, message: object) -> list[object]:
        """Send ``message`` (or raw bytes) from the remote mux; the replies it got."""
        before = len(self.remote.received)
        data = message if isinstance(message, bytes) else encode_message(message)  # type: ignore[arg-type]
        self.remote.send(data, self.dht.transport.local_address(4))  # type: ignore[arg-type]
        settle(self.clock, 0.1)
        return [decode_message(d) for d, _ in self.remote.received[before:]]

    def test_ping_answered(self) -> None:
        """A ping gets our id and the querier's address; the querier is noted."""
        [reply] = self.ask(PingQuery(transaction_id=b"p1", node_id=REMOTE_ID))
        assert isinstance(reply, Response)
        self.assertEqual((reply.transaction_id, reply.node_id, reply.ip),
                         (b"p1", self.dht.node_id, self.remote.address))
        self.assertEqual(self.dht.families[4].table.bucket(0)[0][0].node_id, REMOTE_ID)
        self.assertEqual(self.dht.stats.queries_received, 1)

    def test_get_peers_gives_token_and_announce_stores(self) -> None:
        """get_peers gives a token that an announce_peer from the same host may use."""
        [reply] = self.ask(GetPeersQuery(transaction_id=b"g", node_id=REMOTE_ID,
                                         info_hash=INFO_HASH))
        assert isinstance(reply, Response) and reply.token is not None
        from txbittorrent.core.dht.krpc import AnnouncePeerQuery
        [ok] = self.ask(AnnouncePeerQuery(transaction_id=b"a", node_id=REMOTE_ID,
                                          info_hash=INFO_HASH, port=6881, token=reply.token))
        self.assertIsInstance(ok, Response)
        [bad] = self.ask(AnnouncePeerQuery(transaction_id=b"b", node_id=REMOTE_ID,
                                           info_hash=INFO_HASH, port=6881, token=b"x" * 8))
        self.assertEqual((bad.code, bad.transaction_id), (ErrorCode.PROTOCOL, b"b"))  # type: ignore[attr-defined]
        [again] = self.ask(GetPeersQuery(transaction_id=b"g2", node_id=b"\xdd" * 20,
                                         info_hash=INFO_HASH))
        self.assertEqual(again.values, (("127.0.0.1", 6881),))  # type: ignore[attr-defined]

    def test_bogus_datagrams(self) -> None:
        """Garbage, truncated and mistyped datagrams are counted and dropped; a
        readable query with an unknown method or a bad argument gets 204 / 203."""
        for junk in (b"d", b"de", b"d1:y1:qe", b"d1:t2:aa1:y1:r1:rdee", b"d" * 5000,
                     b"di1ei2ee", b"d1:t2:aa1:y1:e1:eli201eee", b"\x00" * 20):
            self.assertEqual(self.ask(junk), [], junk[:40])
        self.assertEqual(self.dht.stats.malformed, 6)
        self.assertEqual(self.dht.stats.unsolicited, 1)
        [unknown] = self.ask(b"d1:ad2:id20:" + REMOTE_ID + b"e1:q4:nope1:t2:zz1:y1:qe")
        self.assertEqual((unknown.code, unknown.transaction_id),  # type: ignore[attr-defined]
                         (ErrorCode.METHOD_UNKNOWN, b"zz"))
        [short] = self.ask(b"d1:ad2:id3:abce1:q4:ping1:t2:yy1:y1:qe")
        self.assertEqual(short.code, ErrorCode.PROTOCOL)  # type: ignore[attr-defined]
        self.assertEqual(self.dht.stats.errors, 0)
        # Still answering:
        self.assertIsInstance(self.ask(PingQuery(transaction_id=b"p", node_id=REMOTE_ID))[0],
                              Response)

    def test_unsolicited_reply_dropped(self) -> None:
        """A response or error matching no query of ours is dropped."""
        self.assertEqual(self.ask(Response(transaction_id=b"zz", node_id=REMOTE_ID)), [])
        self.assertEqual(self.ask(ErrorReply(transaction_id=b"zz", code=201)), [])
        self.assertEqual(self.dht.stats.unsolicited, 2)
        self.assertNotIn(REMOTE_ID, self.dht.families[4].table)

    def test_handler_bug_does_not_escape(self) -> None:
        """An exception while handling a datagram is logged and counted, not raised."""
        def broken(*args: object) -> None:
            raise RuntimeError("boom")
        self.dht.families[4].responder.answer = broken  # type: ignore[method-assign]
        self.assertEqual(self.ask(PingQuery(transaction_id=b"p", node_id=REMOTE_ID)), [])
        self.assertEqual(self.dht.stats.errors, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)

    def test_flood_rate_limited(self) -> None:
        """A flood of queries from one host is answered up to the burst, then
        at the sustained rate."""
        dht = self.node(query_rate=5.0, query_burst=20.0)
        dht.start()
        target = dht.transport.local_address(4)
        for n in range(100):
            self.remote.send(encode_message(PingQuery(transaction_id=n.to_bytes(2, "big"),
                                                      node_id=REMOTE_ID)), target)  # type: ignore[arg-type]
        self.clock.advance(0.1)
        self.assertEqual((dht.stats.queries_received, dht.stats.rate_limited), (20, 80))
        self.clock.advance(2.0)
        self.remote.send(encode_message(PingQuery(transaction_id=b"late", node_id=REMOTE_ID)),
                         target)  # type: ignore[arg-type]
        self.clock.advance(0.1)
        self.assertEqual(dht.stats.queries_received, 21)

    def test_read_only(self) -> None:
        """A read-only node (BEP 43) answers nothing and says ro=1 in its queries."""
        dht = self.node(read_only=True, bootstrap_nodes=(self.remote.address,))
        dht.start()
        settle(self.clock, 0.1)
        [(query, _)] = [(d, a) for d, a in self.remote.received]
        self.assertTrue(decode_message(query).read_only)  # type: ignore[union-attr]
        before = len(self.remote.received)
        self.remote.send(encode_message(PingQuery(transaction_id=b"p", node_id=REMOTE_ID)),
                         dht.transport.local_address(4))  # type: ignore[arg-type]
        settle(self.clock, 0.1)
        self.assertEqual(len(self.remote.received), before)


class JoinTests(NodeTestCase):
    """Joining through routers, deadlines, readiness and retries."""

    def test_small_dht_joins(self) -> None:
        """Nodes joining through a first one all become ready and know each other;
        the ready event names the node count."""
        bus = EventBus()
        ready: list[object] = []
        bus.subscribe(ready.append, kinds="dht_ready")
        nodes = make_nodes(self.network, 5)
        last = self.node(bootstrap_nodes=(nodes[0].transport.local_address(4),))
        last.events = bus
        last.start()
        nodes.append(last)
        settle(self.clock, 10, 0.05)
        self.assertTrue(all(n.ready for n in nodes))
        self.assertTrue(all(n.node_count() == 5 for n in nodes))
        self.assertEqual(len(ready), 1)
        self.assertIsInstance(ready[0], DHTReady)
        self.assertEqual(ready[0].info_hash, b"")  # type: ignore[attr-defined]
        self.assertGreater(ready[0].node_count, 0)  # type: ignore[attr-defined]
        for n in nodes:
            n.stop()
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_dead_router_times_out_and_retries(self) -> None:
        """A router that never answers fails after the query timeout; the join
        is tried again after the first retry delay, not before."""
        dead = ("127.0.0.1", 9)
        dht = self.node(bootstrap_nodes=(dead,))
        dht.start()
        sent = lambda: [a for _, a in dht.transport.sent]  # type: ignore[attr-defined]
        self.assertEqual(sent(), [dead])
        self.clock.advance(9.9)
        self.assertEqual(dht.stats.timeouts, 0)
        self.clock.advance(0.1)
        self.assertEqual(dht.stats.timeouts, 1)
        self.assertFalse(dht.ready)
        # The maintenance tick after the retry delay asks again.
        self.clock.advance(JOIN_RETRY[0] + 5)
        self.assertEqual(sent(), [dead, dead])

    def test_slow_node_frees_its_slot(self) -> None:
        """A router that does not answer within 2 s no longer holds the walk up:
        the node's other lookups go on (the walk ticks at the deadline)."""
        nodes = make_nodes(self.network, 4)
        settle(self.clock, 10, 0.05)
        # Node 1 goes silent; a lookup from node 2 still finishes within ~2 s.
        del self.network.muxes[nodes[1].transport.local_address(4)]  # type: ignore[arg-type]
        results = self.results(nodes[2].find_node(b"\x00" * 20))
        settle(self.clock, 2.5, 0.05)
        self.assertEqual(len(results), 1)
        self.assertEqual(results[0].responses, 2)

    def test_when_ready(self) -> None:
        """when_ready fires with the node count on joining; a cancelled wait is
        forgotten (joining later does not fire it again)."""
        nodes = make_nodes(self.network, 2)
        self.addCleanup(nodes[0].stop)
        late = self.node(bootstrap_nodes=(nodes[0].transport.local_address(4),))
        waits = [late.when_ready(), late.when_ready()]
        fired: list[object] = []
        waits[0].addCallback(fired.append)
        waits[1].addErrback(lambda f: fired.append("cancelled"))
        waits[1].cancel()
        late.start()
        settle(self.clock, 1)
        self.assertEqual(fired, ["cancelled", late.node_count()])
        now: list[int] = []
        late.when_ready().addCallback(now.append)  # joined: at once
        self.assertEqual(now, [late.node_count()])

    def test_public_routers_never_tried_on_loopback(self) -> None:
        """A node bound to loopback only does not resolve or contact the
        public routers (the default bootstrap nodes)."""
        asked: list[str] = []

        def resolve(host: str, port: int) -> object:
            asked.append(host)
            raise AssertionError("no resolution on loopback")

        dht = DHTNode(self.network.mux(), DHTConfig(enabled=True), reactor=self.clock,
                      resolve=resolve)  # type: ignore[arg-type]
        dht.start()
        self.addCleanup(dht.stop)
        self.clock.advance(60)
        self.assertEqual((asked, dht.transport.sent), ([], []))  # type: ignore[attr-defined]


class SearchTests(NodeTestCase):
    """find_node, get_peers and announce over a small DHT."""

    def setUp(self) -> None:
        super().setUp()
        self.nodes = make_nodes(self.network, 8)
        settle(self.clock, 10, 0.05)
        for node in self.nodes:
            self.addCleanup(node.stop)

    def test_announce_then_get_peers(self) -> None:
        """A node's announce reaches the nodes nearest the info hash; another
        node's get_peers finds the announced address, handing it over as it comes."""
        announced = self.results(self.nodes[3].announce(INFO_HASH, 6881))
        self.assertEqual(announced, [])  # not yet: the walk runs on the clock
        settle(self.clock, 1, 0.05)
        self.assertGreater(announced[0].announced, 0)
        streamed: list[list[tuple[str, int]]] = []
        found = self.results(self.nodes[6].get_peers(INFO_HASH, on_peers=streamed.append))
        settle(self.clock, 1, 0.05)
        [result] = found
        self.assertEqual(result.peers, (("127.0.0.1", 6881),))
        self.assertEqual(streamed, [[("127.0.0.1", 6881)]])
        self.assertEqual(result.kind, LookupKind.GET_PEERS)
        self.assertGreater(result.responses, 0)

    def test_announce_counts(self) -> None:
        """An announce sends announce_peer to every node that gave a token (k at most)."""
        results = self.results(self.nodes[2].announce(INFO_HASH, implied_port=True))
        settle(self.clock, 1, 0.05)
        [result] = results
        self.assertEqual(result.announced, min(8, len(result.nodes)))
        stored = sum(INFO_HASH in n.families[4].store for n in self.nodes)
        self.assertEqual(stored, result.announced)
        port = self.nodes[2].transport.local_address(4)[1]  # type: ignore[index]
        peers = [n.families[4].store.get(INFO_HASH, self.clock.seconds(), random.Random(1))
                 for n in self.nodes if INFO_HASH in n.families[4].store]
        self.assertEqual({p[0] for p in peers}, {("127.0.0.1", port)})

    def test_find_node(self) -> None:
        """find_node of a node's id finds that node first."""
        target = self.nodes[5].node_id
        results = self.results(self.nodes[0].find_node(target))
        settle(self.clock, 1, 0.05)
        self.assertEqual(results[0].nodes[0].node_id, target)

    def test_stop_fails_searches(self) -> None:
        """Stopping fails the searches under way and leaves no timer behind."""
        failures: list[object] = []
        self.nodes[4].get_peers(INFO_HASH).addErrback(failures.append)
        self.nodes[4].stop()
        [failure] = failures
        self.assertTrue(failure.check(DHTError))  # type: ignore[attr-defined]
        self.assertFalse(self.nodes[4].transport.consumers)  # type: ignore[attr-defined]

    def test_add_node_pings(self) -> None:
        """A peer's PORT names a node: it is pinged and enters the table if it answers."""
        newcomer = make_nodes(self.network, 1, seed=9)[0]
        self.addCleanup(newcomer.stop)
        address = newcomer.transport.local_address(4)
        self.assertTrue(self.nodes[0].add_node(address))  # type: ignore[arg-type]
        settle(self.clock, 0.1)
        self.assertIn(newcomer.node_id, self.nodes[0].families[4].table)
        self.assertFalse(self.nodes[0].add_node(address))  # type: ignore[arg-type]


class PersistenceTests(NodeTestCase):
    """The node id and table survive a restart; no router is needed then."""

    def test_round_trip(self) -> None:
        """A node saved on stop restarts with its id and nodes, joins through
        them without the router, and becomes ready."""
        path = os.path.join(self.mktemp(), "dht.state")
        nodes = make_nodes(self.network, 5)
        for node in nodes:
            self.addCleanup(node.stop)
        router = nodes[0].transport.local_address(4)
        first = self.node(state_path=path, bootstrap_nodes=(router,))
        first.start()
        settle(self.clock, 5, 0.05)
        self.assertTrue(first.ready)
        known = {n.node_id for n in first.families[4].table.nodes()}
        first.stop()
        self.assertTrue(os.path.exists(path))
        # A router that would not answer: the saved nodes are enough.
        router = ("127.0.0.1", 9)
        second = self.node(state_path=path, bootstrap_nodes=(router,))
        second.start()
        self.assertEqual(second.node_id, first.node_id)
        self.assertEqual({n.node_id for n in second.families[4].table.nodes()}, known)
        settle(self.clock, 5, 0.05)
        self.assertTrue(second.ready)
        self.assertNotIn(router, [a for _, a in second.transport.sent])  # type: ignore[attr-defined]

    def test_periodic_save(self) -> None:
        """The state is written every save_interval while running."""
        path = os.path.join(self.mktemp(), "dht.state")
        dht = self.node(state_path=path, save_interval=60.0)
        dht.start()
        self.clock.advance(59)
        self.assertFalse(os.path.exists(path))
        self.clock.advance(1)
        self.assertTrue(os.path.exists(path))

    def test_corrupt_state_ignored(self) -> None:
        """A corrupt state file is logged and the node starts afresh."""
        directory = self.mktemp()
        os.makedirs(directory)
        path = os.path.join(directory, "dht.state")
        with open(path, "wb") as f:
            f.write(b"{not json")
        dht = self.node(state_path=path)
        dht.start()
        self.assertEqual(len(dht.node_id), 20)
        self.assertEqual(dht.node_count(), 0)


class DualStackTests(NodeTestCase):
    """BEP 32: IPv4 and IPv6 in separate tables, searches over both."""

    def test_two_tables(self) -> None:
        """Nodes with both families join in both; each table holds its family
        only; a search walks both and finds an IPv6 peer and an IPv4 one."""
        nodes = make_nodes(self.network, 5, ipv6=True)
        for node in nodes:
            self.addCleanup(node.stop)
        settle(self.clock, 10, 0.05)
        for node in nodes:
            self.assertEqual((node.node_count(4), node.node_count(6)), (4, 4))
            self.assertTrue(all(":" in n.address[0] for n in node.families[6].table.nodes()))
            self.assertTrue(all(":" not in n.address[0] for n in node.families[4].table.nodes()))
        announced = self.results(nodes[1].announce(INFO_HASH, 6881))
        settle(self.clock, 1, 0.05)
        self.assertGreater(announced[0].announced, 4)  # to nodes of both families
        found = self.results(nodes[3].get_peers(INFO_HASH))
        settle(self.clock, 1, 0.05)
        self.assertEqual(set(found[0].peers), {("127.0.0.1", 6881), ("::1", 6881)})

    def test_ipv6_query_answered_from_ipv6_table(self) -> None:
        """A find_node over IPv6 is answered with nodes6 from the IPv6 table;
        asking with want n4 gives IPv4 nodes too."""
        nodes = make_nodes(self.network, 3, ipv6=True)
        for node in nodes:
            self.addCleanup(node.stop)
        settle(self.clock, 10, 0.05)
        remote = self.network.mux(ipv6=True)
        target = nodes[0].transport.local_address(6)
        remote.send(encode_message(FindNodeQuery(
            transaction_id=b"f6", node_id=REMOTE_ID, target=b"\x00" * 20)), target)  # type: ignore[arg-type]
        remote.send(encode_message(FindNodeQuery(
            transaction_id=b"fb", node_id=b"\xdd" * 20, target=b"\x00" * 20,
            want=(b"n4", b"n6"))), target)  # type: ignore[arg-type]
        settle(self.clock, 0.1)
        replies = {m.transaction_id: m for m in (decode_message(d) for d, _ in remote.received)}
        six = replies[b"f6"]
        assert isinstance(six, Response)
        self.assertIsNone(six.nodes)
        self.assertTrue(six.nodes6 and all(":" in n.address[0] for n in six.nodes6))
        both = replies[b"fb"]
        assert isinstance(both, Response)
        self.assertTrue(both.nodes and both.nodes6)


class MaintenanceTests(NodeTestCase):
    """Pings of questionable nodes and bucket refreshes, on the clock."""

    def test_refresh_and_ping(self) -> None:
        """After 15 quiet minutes a bucket is refreshed by a find_node, and
        nodes not heard from are pinged; stopping during a refresh is quiet."""
        nodes = make_nodes(self.network, 4)
        for node in nodes:
            self.addCleanup(node.stop)
        settle(self.clock, 10, 0.05)
        dht = nodes[1]
        sent = len(dht.transport.sent)  # type: ignore[attr-defined]
        lookups = dht.stats.lookups
        self.clock.advance(15 * 60)  # quiet: every node questionable, every bucket stale
        self.clock.advance(5)
        kinds = [getattr(decode_message(d), "method", b"reply")
                 for d, _ in dht.transport.sent[sent:]]  # type: ignore[attr-defined]
        self.assertIn(b"ping", kinds)
        self.assertIn(b"find_node", kinds)
        dht.stop()  # refreshes under way fail without an unhandled error
        self.assertGreaterEqual(dht.stats.lookups, lookups)
