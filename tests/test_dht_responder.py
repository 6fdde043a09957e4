"""Tests for txbittorrent.core.dht.responder: answering other nodes' queries."""

from __future__ import annotations

import random

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.dht.krpc import (
    AnnouncePeerQuery,
    ErrorCode,
    ErrorReply,
    FindNodeQuery,
    GetPeersQuery,
    NodeInfo,
    PingQuery,
    Response,
    decode_message,
    encode_message,
)
from txbittorrent.core.dht.node_id import make_node_id
from txbittorrent.core.dht.responder import Responder
from txbittorrent.core.dht.routing import NodeState, RoutingTable
from txbittorrent.core.dht.storage import PeerStore
from txbittorrent.core.dht.tokens import Tokens

OWN_ID = bytes.fromhex("00" * 19 + "01")
QUERIER = bytes.fromhex("ff" * 20)
INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
SOURCE = ("127.0.0.1", 7000)


def node(n: int) -> NodeInfo:
    return NodeInfo(bytes([n]) * 20, ("10.0.0.%d" % n, 6881))


def node6(n: int) -> NodeInfo:
    return NodeInfo(bytes([n]) * 20, ("2001:db8::%x" % n, 6881))


class ResponderTests(SynchronousTestCase):
    """Each query gets the reply BEP 5 asks for."""

    def setUp(self) -> None:
        self.table = RoutingTable(OWN_ID)
        self.table6 = RoutingTable(OWN_ID, ipv6=True)
        for n in range(1, 12):
            self.table.node_responded(node(n).node_id, node(n).address, 0.0)
            self.table6.node_responded(node6(n).node_id, node6(n).address, 0.0)
        self.tokens = Tokens(random.Random(1))
        self.store = PeerStore()
        self.responder = Responder(
            self.table, self.tokens, self.store, random.Random(2),
            other_table=self.table6, version=b"TX\x00\x01",
        )

    def test_ping(self) -> None:
        """A ping is answered with our id, the querier's address and our version;
        the querier enters the table as a node that queried us."""
        ping = PingQuery(transaction_id=b"t1", node_id=QUERIER)
        reply = self.responder.answer(ping, SOURCE, 5.0)
        self.assertEqual(
            reply,
            Response(transaction_id=b"t1", node_id=OWN_ID, ip=SOURCE, version=b"TX\x00\x01"),
        )
        assert isinstance(reply, Response)
        self.assertEqual(decode_message(encode_message(reply)), reply)
        self.assertEqual(self.table.state(QUERIER, 5.0), NodeState.QUESTIONABLE)

    def test_find_node(self) -> None:
        """find_node gives the k nearest of the socket's family by default."""
        target = bytes([3]) * 20
        reply = self.responder.answer(
            FindNodeQuery(transaction_id=b"t", node_id=QUERIER, target=target), SOURCE, 1.0
        )
        assert isinstance(reply, Response)
        self.assertEqual(list(reply.nodes or ()), self.table.closest(target, 1.0))
        self.assertIsNone(reply.nodes6)
        self.assertIsNone(reply.values)

    def test_want(self) -> None:
        """want n4/n6 picks the families (BEP 32); a missing table gives nothing."""
        target = bytes([3]) * 20
        for want, has4, has6 in (((b"n6",), False, True), ((b"n4", b"n6"), True, True)):
            reply = self.responder.answer(
                FindNodeQuery(transaction_id=b"t", node_id=QUERIER, target=target, want=want),
                SOURCE, 1.0,
            )
            assert isinstance(reply, Response)
            self.assertEqual((reply.nodes is not None, reply.nodes6 is not None), (has4, has6))
            self.assertEqual(len(reply.nodes6 or ()), 8)
        lonely = Responder(self.table, self.tokens, self.store, random.Random(1))
        reply = lonely.answer(
            FindNodeQuery(transaction_id=b"t", node_id=QUERIER, target=target, want=(b"n6",)),
            SOURCE, 1.0,
        )
        assert isinstance(reply, Response)
        self.assertEqual((reply.nodes, reply.nodes6), (None, None))

    def test_get_peers_then_announce(self) -> None:
        """get_peers gives a token; announcing with it stores the peer, which the
        next get_peers returns with the nodes."""
        ask = GetPeersQuery(transaction_id=b"g", node_id=QUERIER, info_hash=INFO_HASH)
        first = self.responder.answer(ask, SOURCE, 1.0)
        assert isinstance(first, Response) and first.token is not None
        self.assertIsNone(first.values)
        self.assertEqual(len(first.nodes or ()), 8)
        announce = AnnouncePeerQuery(
            transaction_id=b"a", node_id=QUERIER, info_hash=INFO_HASH, port=6881, token=first.token
        )
        ok = self.responder.answer(announce, SOURCE, 2.0)
        self.assertEqual(ok, Response(transaction_id=b"a", node_id=OWN_ID, ip=SOURCE,
                                      version=b"TX\x00\x01"))
        again = self.responder.answer(ask, ("127.0.0.2", 1), 3.0)
        assert isinstance(again, Response)
        self.assertEqual(again.values, (("127.0.0.1", 6881),))

    def test_implied_port(self) -> None:
        """With implied_port the UDP source port is stored."""
        token = self.tokens.token(SOURCE[0], INFO_HASH, 1.0)
        announce = AnnouncePeerQuery(
            transaction_id=b"a", node_id=QUERIER, info_hash=INFO_HASH, port=1, token=token,
            implied_port=True,
        )
        self.responder.answer(announce, SOURCE, 1.0)
        self.assertEqual(self.store.get(INFO_HASH, 1.0, random.Random(1)), [SOURCE])

    def test_bad_token(self) -> None:
        """A token from another IP, for another torrent, or expired, is a 203."""
        cases = [
            (self.tokens.token("127.0.0.2", INFO_HASH, 0.0), 1.0),
            (self.tokens.token(SOURCE[0], bytes(20), 0.0), 1.0),
            (self.tokens.token(SOURCE[0], INFO_HASH, 0.0), 1000.0),
            (b"nonsense", 1.0),
        ]
        for token, now in cases:
            announce = AnnouncePeerQuery(
                transaction_id=b"a", node_id=QUERIER, info_hash=INFO_HASH, port=6881, token=token
            )
            reply = self.responder.answer(announce, SOURCE, now)
            assert isinstance(reply, ErrorReply)
            self.assertEqual((reply.code, reply.transaction_id), (ErrorCode.PROTOCOL, b"a"))
        self.assertEqual(len(self.store), 0)

    def test_read_only_querier_not_added(self) -> None:
        """A read-only querier (BEP 43), or one claiming our id, stays out of the table."""
        before = len(self.table) + sum(len(self.table.bucket(i)[1])
                                       for i in range(self.table.bucket_count))
        for node_id, read_only in ((QUERIER, True), (OWN_ID, False)):
            query = PingQuery(transaction_id=b"t", node_id=node_id, read_only=read_only)
            self.assertIsInstance(self.responder.answer(query, SOURCE, 1.0), Response)
        after = len(self.table) + sum(len(self.table.bucket(i)[1])
                                      for i in range(self.table.bucket_count))
        self.assertEqual(before, after)

    def test_read_only_node_answers_nothing(self) -> None:
        """When we are read-only (BEP 43) no query is answered."""
        quiet = Responder(self.table, self.tokens, self.store, random.Random(1), read_only=True)
        ping = PingQuery(transaction_id=b"t", node_id=QUERIER)
        self.assertIsNone(quiet.answer(ping, SOURCE, 1.0))

    def test_enforce_node_id(self) -> None:
        """With enforce_node_id, a public querier with an id invalid for its
        address is answered but not added; a valid one is added."""
        table = RoutingTable(OWN_ID)
        strict = Responder(table, self.tokens, self.store, random.Random(1), enforce_node_id=True)
        public = ("124.31.75.21", 6881)
        bad = bytes.fromhex("5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401")[:19] + b"\x07"
        self.assertIsInstance(
            strict.answer(PingQuery(transaction_id=b"t", node_id=bad), public, 1.0), Response
        )
        self.assertEqual(len(table), 0)
        good = make_node_id(public[0], random.Random(5))
        strict.answer(PingQuery(transaction_id=b"t", node_id=good), public, 1.0)
        self.assertEqual(table.nodes(), [NodeInfo(good, public)])
