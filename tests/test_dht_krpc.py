"""Tests for txbittorrent.core.dht.krpc: the KRPC codec."""

from __future__ import annotations

from collections.abc import Mapping

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import encode
from txbittorrent.core.dht.krpc import (
    MAX_TRANSACTION_ID,
    AnnouncePeerQuery,
    ErrorCode,
    ErrorReply,
    FindNodeQuery,
    GetPeersQuery,
    KRPCError,
    Message,
    NodeInfo,
    PingQuery,
    Response,
    decode_address,
    decode_message,
    decode_nodes,
    encode_address,
    encode_message,
    encode_nodes,
)

QUERIER = b"abcdefghij0123456789"
RESPONDER = b"mnopqrstuvwxyz123456"
INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
NODE_A = bytes(range(20))
NODE_B = bytes(range(100, 120))

# The fixtures follow BEP 5's examples; each line is one key and its value.

PING_QUERY = (
    b"d"
    b"1:a" b"d"  # arguments
    b"2:id" b"20:abcdefghij0123456789"  # the querier's node id
    b"e"
    b"1:q" b"4:ping"  # method: ping
    b"1:t" b"2:aa"  # transaction id
    b"1:y" b"1:q"  # a query
    b"e"
)

PING_RESPONSE = (
    b"d"
    b"1:r" b"d"  # return values
    b"2:id" b"20:mnopqrstuvwxyz123456"  # the responder's node id
    b"e"
    b"1:t" b"2:aa"  # transaction id, echoed
    b"1:y" b"1:r"  # a response
    b"e"
)

FIND_NODE_QUERY = (
    b"d"
    b"1:a" b"d"  # arguments
    b"2:id" b"20:abcdefghij0123456789"  # the querier's node id
    b"6:target" b"20:mnopqrstuvwxyz123456"  # the id sought
    b"4:want" b"l" b"2:n4" b"2:n6" b"e"  # BEP 32: IPv4 and IPv6 nodes, please
    b"e"
    b"1:q" b"9:find_node"  # method: find_node
    b"1:t" b"2:aa"  # transaction id
    b"1:y" b"1:q"  # a query
    b"e"
)

FIND_NODE_RESPONSE = (
    b"d"
    b"2:ip" b"6:\x7f\x00\x00\x01\x1a\xe1"  # BEP 42: the querier is 127.0.0.1:6881
    b"1:r" b"d"  # return values
    b"2:id" b"20:mnopqrstuvwxyz123456"  # the responder's node id
    b"5:nodes" b"52:"  # two IPv4 nodes, 26 bytes each:
    + NODE_A  # first node's id,
    + b"\x0a\x00\x00\x01\x1a\xe1"  # at 10.0.0.1:6881
    + NODE_B  # second node's id,
    + b"\xc0\xa8\x01\x02\x00\x50"  # at 192.168.1.2:80
    + b"6:nodes6" b"38:"  # one IPv6 node, 38 bytes:
    + NODE_A  # its id,
    + b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"  # at 2001:db8::1
    + b"\x1a\xe2"  # port 6882
    + b"e"
    b"1:t" b"2:aa"  # transaction id, echoed
    b"1:v" b"4:LT\x01\x02"  # the responder's version
    b"1:y" b"1:r"  # a response
    b"e"
)

GET_PEERS_QUERY = (
    b"d"
    b"1:a" b"d"  # arguments
    b"2:id" b"20:abcdefghij0123456789"  # the querier's node id
    b"9:info_hash" b"20:" + INFO_HASH + b""  # the torrent
    b"e"
    b"1:q" b"9:get_peers"  # method: get_peers
    b"2:ro" b"i1e"  # BEP 43: the querier is read-only
    b"1:t" b"2:aa"  # transaction id
    b"1:y" b"1:q"  # a query
    b"e"
)

GET_PEERS_VALUES = (
    b"d"
    b"1:r" b"d"  # return values
    b"2:id" b"20:abcdefghij0123456789"  # the responder's node id
    b"5:token" b"8:aoeusnth"  # the token to announce with
    b"6:values" b"l"  # peers:
    b"6:\x01\x02\x03\x04\x1a\xe1"  # 1.2.3.4:6881
    b"18:" + bytes(15) + b"\x01\x00\x50"  # [::1]:80
    b"e"
    b"e"
    b"1:t" b"2:aa"  # transaction id, echoed
    b"1:y" b"1:r"  # a response
    b"e"
)

ANNOUNCE_PEER_QUERY = (
    b"d"
    b"1:a" b"d"  # arguments
    b"2:id" b"20:abcdefghij0123456789"  # the querier's node id
    b"12:implied_port" b"i1e"  # use the UDP source port
    b"9:info_hash" b"20:" + INFO_HASH + b""  # the torrent
    b"4:port" b"i6881e"  # the TCP port (ignored with implied_port)
    b"5:token" b"8:aoeusnth"  # the token from get_peers
    b"e"
    b"1:q" b"13:announce_peer"  # method: announce_peer
    b"1:t" b"4:\x00\x01\x02\x03"  # a 4-byte transaction id
    b"1:y" b"1:q"  # a query
    b"e"
)

ERROR_REPLY = (
    b"d"
    b"1:e" b"l" b"i201e" b"23:A Generic Error Ocurred" b"e"  # code and message
    b"1:t" b"2:aa"  # transaction id, echoed
    b"1:y" b"1:e"  # an error
    b"e"
)

FIXTURES: dict[str, tuple[bytes, Message]] = {
    "ping": (PING_QUERY, PingQuery(transaction_id=b"aa", node_id=QUERIER)),
    "ping response": (PING_RESPONSE, Response(transaction_id=b"aa", node_id=RESPONDER)),
    "find_node": (
        FIND_NODE_QUERY,
        FindNodeQuery(
            transaction_id=b"aa", node_id=QUERIER, target=RESPONDER, want=(b"n4", b"n6")
        ),
    ),
    "find_node response": (
        FIND_NODE_RESPONSE,
        Response(
            transaction_id=b"aa",
            version=b"LT\x01\x02",
            node_id=RESPONDER,
            nodes=(NodeInfo(NODE_A, ("10.0.0.1", 6881)), NodeInfo(NODE_B, ("192.168.1.2", 80))),
            nodes6=(NodeInfo(NODE_A, ("2001:db8::1", 6882)),),
            ip=("127.0.0.1", 6881),
        ),
    ),
    "get_peers": (
        GET_PEERS_QUERY,
        GetPeersQuery(transaction_id=b"aa", node_id=QUERIER, info_hash=INFO_HASH, read_only=True),
    ),
    "get_peers values": (
        GET_PEERS_VALUES,
        Response(
            transaction_id=b"aa",
            node_id=QUERIER,
            token=b"aoeusnth",
            values=(("1.2.3.4", 6881), ("::1", 80)),
        ),
    ),
    "announce_peer": (
        ANNOUNCE_PEER_QUERY,
        AnnouncePeerQuery(
            transaction_id=b"\x00\x01\x02\x03",
            node_id=QUERIER,
            info_hash=INFO_HASH,
            port=6881,
            token=b"aoeusnth",
            implied_port=True,
        ),
    ),
    "error": (
        ERROR_REPLY,
        ErrorReply(transaction_id=b"aa", code=201, message="A Generic Error Ocurred"),
    ),
}


class FixtureTests(SynchronousTestCase):
    """Each annotated datagram decodes to its message and encodes back byte for byte."""

    def test_decode(self) -> None:
        """Every fixture, fed whole, decodes to the expected message."""
        for name, (data, message) in FIXTURES.items():
            self.assertEqual(decode_message(data), message, name)

    def test_encode(self) -> None:
        """Every expected message encodes to the fixture's exact bytes."""
        for name, (data, message) in FIXTURES.items():
            self.assertEqual(encode_message(message), data, name)

    def test_prefixes_refused(self) -> None:
        """Every proper prefix of a fixture is a KRPCError (a truncated datagram)."""
        for name, (data, _) in FIXTURES.items():
            for end in range(len(data)):
                with self.assertRaises(KRPCError, msg=f"{name}[:{end}]"):
                    decode_message(data[:end])

    def test_trailing_bytes_refused(self) -> None:
        """Bytes after the dictionary make the datagram invalid."""
        for name, (data, _) in FIXTURES.items():
            with self.assertRaises(KRPCError, msg=name):
                decode_message(data + b"x")

    def test_method_names(self) -> None:
        """Each query class names its BEP 5 method."""
        self.assertEqual(
            [q.method for q in (PingQuery, FindNodeQuery, GetPeersQuery, AnnouncePeerQuery)],
            [b"ping", b"find_node", b"get_peers", b"announce_peer"],
        )


def _query(method: bytes, args: Mapping[bytes, object], tid: object = b"aa") -> bytes:
    return encode({b"t": tid, b"y": b"q", b"q": method, b"a": args})


def _response(r: Mapping[bytes, object], **top: object) -> bytes:
    return encode({b"t": b"aa", b"y": b"r", b"r": r, **{k.encode(): v for k, v in top.items()}})


class QueryDecodingTests(SynchronousTestCase):
    """Queries: what is accepted, and the error reply owed for what is not."""

    def assertOwes(self, data: bytes, code: ErrorCode, tid: bytes = b"aa") -> KRPCError:
        with self.assertRaises(KRPCError) as caught:
            decode_message(data)
        reply = caught.exception.reply()
        self.assertIsNotNone(reply)
        assert reply is not None
        self.assertEqual((reply.code, reply.transaction_id), (code, tid))
        return caught.exception

    def assertOwesNothing(self, data: bytes) -> None:
        with self.assertRaises(KRPCError) as caught:
            decode_message(data)
        self.assertIsNone(caught.exception.reply())

    def test_unknown_method(self) -> None:
        """An unknown method is owed a 204 with its transaction id."""
        self.assertOwes(_query(b"vote", {b"id": QUERIER}), ErrorCode.METHOD_UNKNOWN)

    def test_missing_id(self) -> None:
        """A query without a 20-byte id is owed a 203."""
        self.assertOwes(_query(b"ping", {}), ErrorCode.PROTOCOL)
        self.assertOwes(_query(b"ping", {b"id": b"short"}), ErrorCode.PROTOCOL)
        self.assertOwes(_query(b"ping", {b"id": 5}), ErrorCode.PROTOCOL)

    def test_missing_arguments(self) -> None:
        """A missing or mistyped method argument is owed a 203."""
        args = {b"id": QUERIER}
        self.assertOwes(_query(b"find_node", args), ErrorCode.PROTOCOL)
        self.assertOwes(_query(b"get_peers", {**args, b"info_hash": b"x" * 19}), ErrorCode.PROTOCOL)
        self.assertOwes(
            _query(b"find_node", {**args, b"target": RESPONDER, b"want": b"n4"}), ErrorCode.PROTOCOL
        )
        self.assertOwes(
            _query(b"find_node", {**args, b"target": RESPONDER, b"want": [4]}), ErrorCode.PROTOCOL
        )
        announce = {**args, b"info_hash": INFO_HASH, b"port": 6881, b"token": b"t"}
        for key in (b"info_hash", b"port", b"token"):
            partial = {k: v for k, v in announce.items() if k != key}
            self.assertOwes(_query(b"announce_peer", partial), ErrorCode.PROTOCOL)
        for port in (0, -1, 65536, b"6881"):
            bad_port = _query(b"announce_peer", {**announce, b"port": port})
            self.assertOwes(bad_port, ErrorCode.PROTOCOL)
        self.assertOwes(
            _query(b"announce_peer", {**announce, b"implied_port": b"1"}), ErrorCode.PROTOCOL
        )

    def test_bad_envelope(self) -> None:
        """A query whose q or a is missing or mistyped is owed a 203."""
        base = {b"t": b"aa", b"y": b"q"}
        for extra in (
            {b"a": {b"id": QUERIER}},
            {b"q": b"ping"},
            {b"q": 1, b"a": {}},
            {b"q": b"ping", b"a": []},
        ):
            self.assertOwes(encode({**base, **extra}), ErrorCode.PROTOCOL)

    def test_no_reply_without_transaction_id(self) -> None:
        """A query without a usable t is owed nothing: there is nothing to echo."""
        self.assertOwesNothing(_query(b"vote", {b"id": QUERIER}, tid=1))
        too_long = b"x" * (MAX_TRANSACTION_ID + 1)
        self.assertOwesNothing(_query(b"vote", {b"id": QUERIER}, tid=too_long))
        self.assertOwesNothing(encode({b"y": b"q", b"q": b"ping", b"a": {b"id": QUERIER}}))

    def test_no_reply_to_non_queries(self) -> None:
        """Bad responses, errors and unknown kinds are dropped without a reply."""
        self.assertOwesNothing(_response({b"id": b"short"}))
        self.assertOwesNothing(encode({b"t": b"aa", b"y": b"e", b"e": b"oops"}))
        self.assertOwesNothing(encode({b"t": b"aa", b"y": b"x"}))
        self.assertOwesNothing(encode({b"t": b"aa"}))
        self.assertOwesNothing(b"l1:ae")
        self.assertOwesNothing(b"d1:t2:aa1:y1:q")
        self.assertOwesNothing(b"")

    def test_unknown_keys_ignored(self) -> None:
        """Extra arguments and top-level keys are ignored (BEP 5's extensibility)."""
        data = encode(
            {b"t": b"aa", b"y": b"q", b"q": b"ping", b"z": [1], b"a": {b"id": QUERIER, b"x": {}}}
        )
        self.assertEqual(decode_message(data), PingQuery(transaction_id=b"aa", node_id=QUERIER))

    def test_read_only_only_for_one(self) -> None:
        """ro is true only for the integer 1; a mistyped v is ignored."""
        base = {b"t": b"aa", b"y": b"q", b"q": b"ping", b"a": {b"id": QUERIER}}
        for ro, expected in ((1, True), (0, False), (b"1", False), (2, False)):
            message = decode_message(encode({**base, b"ro": ro, b"v": 7}))
            assert isinstance(message, PingQuery)
            self.assertEqual((message.read_only, message.version), (expected, None))

    def test_announce_without_port_when_implied(self) -> None:
        """With implied_port, a missing port is accepted as 0."""
        args = {b"id": QUERIER, b"info_hash": INFO_HASH, b"token": b"t", b"implied_port": 1}
        message = decode_message(_query(b"announce_peer", args))
        assert isinstance(message, AnnouncePeerQuery)
        self.assertEqual((message.port, message.implied_port), (0, True))

    def test_empty_transaction_id(self) -> None:
        """An empty t is a transaction id like any other, and is echoed."""
        self.assertOwes(_query(b"vote", {b"id": QUERIER}, tid=b""), ErrorCode.METHOD_UNKNOWN, b"")

    def test_oversized_datagram(self) -> None:
        """A datagram over the UDP maximum is refused unread."""
        self.assertOwesNothing(b"d" + b"0:" * 40_000 + b"e")

    def test_deep_nesting(self) -> None:
        """Nesting beyond the limits is refused without recursion trouble."""
        self.assertOwesNothing(b"d1:al" + b"l" * 100 + b"e" * 101 + b"1:t2:aa1:y1:qe")


class ResponseDecodingTests(SynchronousTestCase):
    """Responses and errors: strict where needed, lenient for advisory fields."""

    def test_nodes_must_be_whole(self) -> None:
        """nodes and nodes6 must be multiples of 26 and 38 bytes."""
        for key, size in ((b"nodes", 26), (b"nodes6", 38)):
            with self.assertRaises(KRPCError):
                decode_message(_response({b"id": RESPONDER, key: b"x" * (size + 1)}))
            with self.assertRaises(KRPCError):
                decode_message(_response({b"id": RESPONDER, key: [b"x" * size]}))

    def test_port_zero_nodes_dropped(self) -> None:
        """A node with port 0 cannot be reached and is dropped."""
        nodes = NODE_A + b"\x01\x02\x03\x04\x00\x00" + NODE_B + b"\x01\x02\x03\x05\x00\x01"
        message = decode_message(_response({b"id": RESPONDER, b"nodes": nodes}))
        assert isinstance(message, Response)
        self.assertEqual(message.nodes, (NodeInfo(NODE_B, ("1.2.3.5", 1)),))

    def test_empty_nodes_kept(self) -> None:
        """An empty nodes string is an empty tuple, not an absent key."""
        message = decode_message(_response({b"id": RESPONDER, b"nodes": b""}))
        assert isinstance(message, Response)
        self.assertEqual((message.nodes, message.nodes6), ((), None))

    def test_odd_values_skipped(self) -> None:
        """values entries of the wrong length or type, or port 0, are skipped."""
        values = [b"\x01\x02\x03\x04\x00\x00", b"12345", 7, b"\x01\x02\x03\x04\x00\x07"]
        message = decode_message(_response({b"id": RESPONDER, b"values": values}))
        assert isinstance(message, Response)
        self.assertEqual(message.values, (("1.2.3.4", 7),))
        with self.assertRaises(KRPCError):
            decode_message(_response({b"id": RESPONDER, b"values": b"\x01\x02\x03\x04\x00\x07"}))

    def test_token_must_be_string(self) -> None:
        """A token that is not a string makes the response invalid."""
        with self.assertRaises(KRPCError):
            decode_message(_response({b"id": RESPONDER, b"token": 5}))

    def test_odd_ip_ignored(self) -> None:
        """A BEP 42 ip of the wrong size or type is ignored."""
        for ip in (b"12345", 5, b"\x01\x02\x03\x04\x00\x07"):
            message = decode_message(_response({b"id": RESPONDER}, ip=ip))
            assert isinstance(message, Response)
            expected = ("1.2.3.4", 7) if isinstance(ip, bytes) and len(ip) == 6 else None
            self.assertEqual(message.ip, expected)

    def test_error_forms(self) -> None:
        """An error needs a code; a missing or mistyped message is empty, bad UTF-8 replaced."""
        for e, expected in (([202], ""), ([203, 5], ""), ([204, b"\xff!"], "\ufffd!")):
            message = decode_message(encode({b"t": b"aa", b"y": b"e", b"e": e}))
            self.assertEqual(message, ErrorReply(transaction_id=b"aa", code=e[0], message=expected))
        for bad in ([], [b"201"], b"201"):
            with self.assertRaises(KRPCError):
                decode_message(encode({b"t": b"aa", b"y": b"e", b"e": bad}))


class EncodingTests(SynchronousTestCase):
    """What we refuse to send."""

    def test_bad_ids(self) -> None:
        """Ids, targets and info hashes must be 20 bytes."""
        for message in (
            PingQuery(transaction_id=b"aa", node_id=b"short"),
            FindNodeQuery(transaction_id=b"aa", node_id=QUERIER, target=b""),
            GetPeersQuery(transaction_id=b"aa", node_id=QUERIER, info_hash=b"x" * 21),
            Response(transaction_id=b"aa", node_id=b"x"),
        ):
            with self.assertRaises(ValueError):
                encode_message(message)

    def test_bad_transaction_id(self) -> None:
        """A transaction id longer than the maximum is refused."""
        with self.assertRaises(ValueError):
            encode_message(PingQuery(transaction_id=b"x" * 33, node_id=QUERIER))

    def test_bad_ports(self) -> None:
        """An announce port must be 1..65535, or anything 0..65535 with implied_port."""
        for port, implied in ((0, False), (65536, True), (-1, True)):
            query = AnnouncePeerQuery(
                transaction_id=b"aa", node_id=QUERIER, info_hash=INFO_HASH, port=port,
                token=b"t", implied_port=implied,
            )
            with self.assertRaises(ValueError):
                encode_message(query)

    def test_wrong_family_nodes(self) -> None:
        """An IPv6 node in nodes (or IPv4 in nodes6) is refused."""
        with self.assertRaises(ValueError):
            encode_nodes([NodeInfo(NODE_A, ("::1", 1))])
        with self.assertRaises(ValueError):
            encode_nodes([NodeInfo(NODE_A, ("1.2.3.4", 1))], ipv6=True)

    def test_compact_helpers(self) -> None:
        """The compact address and node helpers are inverses."""
        for address in (("1.2.3.4", 1), ("2001:db8::7", 65535)):
            self.assertEqual(decode_address(encode_address(address)), address)
        nodes = (NodeInfo(NODE_A, ("2001:db8::7", 9)),)
        self.assertEqual(decode_nodes(encode_nodes(nodes, ipv6=True), ipv6=True), nodes)
        with self.assertRaises(ValueError):
            decode_address(b"12345")


# -- hypothesis ----------------------------------------------------------------

ids = st.binary(min_size=20, max_size=20)
tids = st.binary(min_size=0, max_size=MAX_TRANSACTION_ID)
versions = st.none() | st.binary(max_size=8)
ports = st.integers(1, 65535)
ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
addresses = st.tuples(ipv4 | ipv6, ports)
wants = st.lists(st.sampled_from([b"n4", b"n6", b"xx"]), max_size=3).map(tuple)


def _nodes(hosts: st.SearchStrategy[str]) -> st.SearchStrategy[tuple[NodeInfo, ...] | None]:
    node = st.builds(NodeInfo, ids, st.tuples(hosts, ports))
    return st.none() | st.lists(node, max_size=8).map(tuple)


common = {"transaction_id": tids, "version": versions}
query_common = {**common, "node_id": ids, "read_only": st.booleans()}
messages: st.SearchStrategy[Message] = st.one_of(
    st.builds(PingQuery, **query_common),
    st.builds(FindNodeQuery, target=ids, want=wants, **query_common),
    st.builds(GetPeersQuery, info_hash=ids, want=wants, **query_common),
    st.builds(
        AnnouncePeerQuery,
        info_hash=ids,
        port=ports,
        token=st.binary(max_size=20),
        implied_port=st.booleans(),
        **query_common,
    ),
    st.builds(
        Response,
        node_id=ids,
        nodes=_nodes(ipv4),
        nodes6=_nodes(ipv6),
        values=st.none() | st.lists(addresses, max_size=20).map(tuple),
        token=st.none() | st.binary(max_size=20),
        ip=st.none() | addresses,
        **common,
    ),
    st.builds(
        ErrorReply, code=st.integers(-(2**63), 2**63), message=st.text(max_size=40), **common
    ),
)


def _mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """``data`` with a few bytes changed, removed or inserted."""
    index = st.integers(0, max(len(data) - 1, 0))
    return st.lists(st.tuples(index, st.integers(0, 255), st.sampled_from("cdi")), max_size=4).map(
        lambda edits: _apply(data, edits)
    )


def _apply(data: bytes, edits: list[tuple[int, int, str]]) -> bytes:
    out = bytearray(data)
    for where, byte, how in edits:
        where = min(where, len(out))
        if how == "c" and where < len(out):
            out[where] = byte
        elif how == "d" and where < len(out):
            del out[where]
        else:
            out.insert(where, byte)
    return bytes(out)


class PropertyTests(SynchronousTestCase):
    """Round trips, and nothing but KRPCError from any input."""

    @given(messages)
    @settings(max_examples=400, deadline=None)
    def test_round_trip(self, message: Message) -> None:
        """Every valid message survives encoding and decoding unchanged."""
        data = encode_message(message)
        self.assertEqual(decode_message(data), message)
        self.assertEqual(encode_message(decode_message(data)), data)

    @given(st.binary(max_size=300))
    @settings(max_examples=500, deadline=None)
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """Arbitrary bytes decode or raise KRPCError, never anything else."""
        try:
            decode_message(data)
        except KRPCError:
            pass

    @given(st.sampled_from(sorted(FIXTURES)).flatmap(lambda name: _mutations(FIXTURES[name][0])))
    @settings(max_examples=500, deadline=None)
    def test_mutated_fixtures(self, data: bytes) -> None:
        """Fixtures with a few bytes changed decode or raise KRPCError, nothing else;
        what decodes encodes again."""
        try:
            message = decode_message(data)
        except KRPCError as e:
            reply = e.reply()
            if reply is not None:
                self.assertIsInstance(encode_message(reply), bytes)
            return
        self.assertIsInstance(encode_message(message), bytes)
