"""Tests for txbittorrent.core.tracker.registry and txbittorrent.tracker.server."""

from __future__ import annotations

import random
import struct
from typing import Any

from treq.client import HTTPClient
from treq.testing import StubTreq
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from txbittorrent.tracker.announcer import Announcer
from txbittorrent.core.tracker.announce import (
    AnnounceEvent,
    AnnounceRequest,
    ScrapeStats,
    TrackerFailure,
    parse_announce_response,
    parse_scrape_response,
)
from txbittorrent.core.bencoding import decode
from txbittorrent.core.tracker.registry import (
    Announce,
    RequestRefused,
    TrackerState,
    UDPTrackerResponder,
    announce_from_query,
    canonical_ip,
    parse_query,
    scrape_hashes_from_query,
)
from txbittorrent.core.tracker.udp import (
    PROTOCOL_ID,
    UDPTrackerError,
    decode_announce_response,
    decode_connect_response,
    decode_scrape_response,
    encode_announce_request,
    encode_connect_request,
    encode_scrape_request,
)
from txbittorrent.tracker.server import HTTPTrackerResource, UDPTrackerProtocol, start_tracker
from txbittorrent.tracker.client import HTTPTrackerClient, UDPTrackerClient
from tests.trackerfakes import (
    INFO_HASH,
    OTHER_HASH,
    PEER_A,
    PEER_B,
    PEER_C,
    SECRET,
    addresses,
    announce,
)



class TrackerStateTests(SynchronousTestCase):
    """The swarm registry's rules, with explicit ``now`` values."""

    def setUp(self) -> None:
        self.state = TrackerState(random.Random(5), interval=100)

    def test_first_peer_gets_nobody(self) -> None:
        """The first announce records the peer and returns no peers."""
        result = self.state.announce(announce(), 0)
        self.assertEqual(result.peers, ())
        self.assertEqual((result.complete, result.incomplete, result.interval), (0, 1, 100))
        self.assertEqual([p.peer_id for p in self.state.peers(INFO_HASH)], [PEER_A])

    def test_second_peer_gets_first(self) -> None:
        """The second peer is given the first, never itself."""
        self.state.announce(announce(), 0)
        result = self.state.announce(announce(PEER_B, 6882), 1)
        self.assertEqual(addresses(result), {("127.0.0.1", 6881)})
        again = self.state.announce(announce(), 2)
        self.assertEqual(addresses(again), {("127.0.0.1", 6882)})

    def test_stopped_removes(self) -> None:
        """``stopped`` removes the peer and returns no peers."""
        self.state.announce(announce(), 0)
        self.state.announce(announce(PEER_B, 6882), 0)
        result = self.state.announce(announce(PEER_B, 6882, event=AnnounceEvent.STOPPED), 1)
        self.assertEqual((result.peers, result.incomplete), ((), 1))
        self.assertEqual([p.peer_id for p in self.state.peers(INFO_HASH)], [PEER_A])

    def test_stopped_for_unknown_torrent(self) -> None:
        """``stopped`` for an unknown torrent creates no swarm."""
        result = self.state.announce(announce(event=AnnounceEvent.STOPPED), 0)
        self.assertEqual((result.complete, result.incomplete), (0, 0))
        self.assertEqual(len(self.state), 0)

    def test_completed_counted_once(self) -> None:
        """``completed`` from a leecher counts one download; a repeat does not."""
        self.state.announce(announce(), 0)
        self.state.announce(announce(left=0, event=AnnounceEvent.COMPLETED), 1)
        self.state.announce(announce(left=0, event=AnnounceEvent.COMPLETED), 2)
        self.assertEqual(self.state.scrape([INFO_HASH], 3), {INFO_HASH: ScrapeStats(1, 1, 0)})

    def test_seeder_gets_only_leechers(self) -> None:
        """A seeder is given leechers only; a leecher gets both."""
        self.state.announce(announce(PEER_A, 1, left=0), 0)
        self.state.announce(announce(PEER_B, 2, left=5), 0)
        seeder = self.state.announce(announce(PEER_C, 3, left=0), 0)
        self.assertEqual(addresses(seeder), {("127.0.0.1", 2)})
        leecher = self.state.announce(announce(PEER_B, 2, left=5), 0)
        self.assertEqual(addresses(leecher), {("127.0.0.1", 1), ("127.0.0.1", 3)})
        self.assertEqual((leecher.complete, leecher.incomplete), (2, 1))

    def test_numwant_bounded(self) -> None:
        """numwant defaults to 50, is capped at max_numwant, and 0 means none."""
        state = TrackerState(random.Random(1), max_numwant=70)
        for n in range(100):
            state.announce(announce(b"%020d" % n, 1000 + n), 0)
        self.assertEqual(len(state.announce(announce(PEER_A), 0).peers), 50)
        self.assertEqual(len(state.announce(announce(PEER_A, numwant=500), 0).peers), 70)
        self.assertEqual(len(state.announce(announce(PEER_A, numwant=3), 0).peers), 3)
        self.assertEqual(state.announce(announce(PEER_A, numwant=0), 0).peers, ())

    def test_selection_uses_rng(self) -> None:
        """The peers returned are chosen by the injected rng: same seed, same choice."""

        def choose(seed: int) -> list[bytes]:
            state = TrackerState(random.Random(seed))
            for n in range(30):
                state.announce(announce(b"%020d" % n, 1000 + n), 0)
            return [p.peer_id for p in state.announce(announce(numwant=5), 0).peers]

        self.assertEqual(choose(7), choose(7))
        self.assertNotEqual(choose(7), choose(8))

    def test_expiry_on_announce(self) -> None:
        """A peer not seen for two intervals is not handed out; one seen since is."""
        self.state.announce(announce(PEER_A, 1), 0)
        self.state.announce(announce(PEER_B, 2), 50)
        result = self.state.announce(announce(PEER_C, 3), 200)
        self.assertEqual(addresses(result), {("127.0.0.1", 2)})
        self.assertEqual(result.incomplete, 2)

    def test_expiry_boundary(self) -> None:
        """A peer last seen just under two intervals ago is kept."""
        self.state.announce(announce(PEER_A, 1), 0)
        result = self.state.announce(announce(PEER_B, 2), 199.5)
        self.assertEqual(addresses(result), {("127.0.0.1", 1)})

    def test_expire_sweeps_all(self) -> None:
        """expire(now) drops idle peers of every swarm and empty swarms."""
        self.state.announce(announce(), 0)
        self.state.announce(announce(PEER_B, info_hash=OTHER_HASH), 150)
        self.assertEqual(self.state.expire(250), 1)
        self.assertEqual(len(self.state), 1)
        self.assertEqual(self.state.peers(INFO_HASH), ())

    def test_same_address_new_peer_id_replaces(self) -> None:
        """A client restarting with a new peer_id on the same address replaces its record."""
        self.state.announce(announce(PEER_A, 6881), 0)
        self.state.announce(announce(PEER_B, 6881), 1)
        self.assertEqual([p.peer_id for p in self.state.peers(INFO_HASH)], [PEER_B])

    def test_peer_moves_address(self) -> None:
        """A known peer_id announcing from a new address is recorded once, at the new one."""
        self.state.announce(announce(PEER_A, 6881), 0)
        self.state.announce(announce(PEER_A, 7000, ip="127.0.0.2"), 1)
        records = self.state.peers(INFO_HASH)
        self.assertEqual([(p.ip, p.port) for p in records], [("127.0.0.2", 7000)])

    def test_family_filter(self) -> None:
        """ipv6=True returns only IPv6 peers, ipv6=False only IPv4, None both."""
        self.state.announce(announce(PEER_A, 1), 0)
        self.state.announce(announce(PEER_B, 2, ip="::1"), 0)
        self.assertEqual(addresses(self.state.announce(announce(PEER_C, 3), 0, ipv6=True)),
                         {("::1", 2)})
        self.assertEqual(addresses(self.state.announce(announce(PEER_C, 3), 0, ipv6=False)),
                         {("127.0.0.1", 1)})
        self.assertEqual(len(self.state.announce(announce(PEER_C, 3), 0).peers), 2)

    def test_allow_list(self) -> None:
        """With an allow-list, other torrents are refused and listed ones scrape as zero."""
        state = TrackerState(random.Random(1), allowed=[OTHER_HASH])
        with self.assertRaises(RequestRefused) as caught:
            state.announce(announce(), 0)
        self.assertEqual(caught.exception.reason, "unregistered torrent")
        self.assertEqual(state.scrape([INFO_HASH, OTHER_HASH], 0),
                         {OTHER_HASH: ScrapeStats(0, 0, 0)})

    def test_max_swarms(self) -> None:
        """A new torrent beyond max_swarms evicts the least recently announced swarm."""
        state = TrackerState(random.Random(1), max_swarms=1)
        state.announce(announce(), 0)
        state.announce(announce(info_hash=OTHER_HASH), 0)
        self.assertEqual(state.info_hashes(), [OTHER_HASH])
        self.assertEqual((state.evicted, state.peer_count), (1, 1))

    def test_max_swarms_refused(self) -> None:
        """Without eviction, a new torrent beyond max_swarms is refused."""
        state = TrackerState(random.Random(1), max_swarms=1, evict_swarms=False)
        state.announce(announce(), 0)
        self.assertRaises(RequestRefused, state.announce, announce(info_hash=OTHER_HASH), 0)

    def test_max_peers(self) -> None:
        """A full swarm answers a newcomer but does not record it."""
        state = TrackerState(random.Random(1), max_peers=1)
        state.announce(announce(PEER_A, 1), 0)
        result = state.announce(announce(PEER_B, 2), 0)
        self.assertEqual(addresses(result), {("127.0.0.1", 1)})
        self.assertEqual(len(state.peers(INFO_HASH)), 1)

    def test_scrape_unknown(self) -> None:
        """Scraping a torrent nobody announced returns nothing for it."""
        self.assertEqual(self.state.scrape([INFO_HASH], 0), {})


class QueryTests(SynchronousTestCase):
    """HTTP query parsing and validation."""

    def query(self, **fields: bytes) -> dict[bytes, list[bytes]]:
        """A parsed query with the usual announce fields, overridden by ``fields``."""
        base = {
            "info_hash": b"%C1%2F%E1%C0k%BA%25J%9D%C9%F5%19%B35%AA%7C%13g%A8%8A",
            "peer_id": b"-TX0010-aaaaaaaaaaaa",
            "port": b"6881", "uploaded": b"0", "downloaded": b"0", "left": b"100",
        }
        base.update(fields)
        return parse_query(b"&".join(k.encode() + b"=" + v for k, v in base.items()))

    def test_parse_query_bytes(self) -> None:
        """Values are percent-decoded to raw bytes; '+' stays '+'; repeats are kept."""
        args = parse_query(b"a=%00%FF+x&b=&c&a=2")
        self.assertEqual(args, {b"a": [b"\x00\xff+x", b"2"], b"b": [b""], b"c": [b""]})

    def test_valid(self) -> None:
        """A complete query becomes an Announce from the source address."""
        result = announce_from_query(self.query(event=b"started", numwant=b"10"), "127.0.0.1")
        self.assertEqual(result, Announce(
            INFO_HASH, PEER_A, "127.0.0.1", 6881, 100, event=AnnounceEvent.STARTED, numwant=10
        ))

    def test_compact_and_peer_id_flags(self) -> None:
        """compact=0 asks for dictionaries; no_peer_id=1 drops peer ids."""
        result = announce_from_query(self.query(compact=b"0", no_peer_id=b"1"), "127.0.0.1")
        self.assertEqual((result.compact, result.no_peer_id), (False, True))

    def test_refusals(self) -> None:
        """Short hashes, bad ports, non-numbers, unknown events and repeats are refused."""
        cases = [
            dict(info_hash=b"short"),
            dict(peer_id=b"%00" * 21),
            dict(port=b"0"),
            dict(port=b"65536"),
            dict(port=b"-1"),
            dict(left=b"1e3"),
            dict(left=b"99999999999999999999"),
            dict(event=b"finished"),
            dict(numwant=b"many"),
        ]
        for fields in cases:
            self.assertRaises(RequestRefused, announce_from_query, self.query(**fields), "::1")
        args = self.query()
        del args[b"left"]
        self.assertRaises(RequestRefused, announce_from_query, args, "127.0.0.1")
        args = self.query()
        args[b"port"].append(b"1")
        self.assertRaises(RequestRefused, announce_from_query, args, "127.0.0.1")

    def test_ip_parameter_policy(self) -> None:
        """The ip parameter is ignored unless trusted, and must then be an IP address."""
        args = self.query(ip=b"10.1.2.3")
        self.assertEqual(announce_from_query(args, "127.0.0.1").ip, "127.0.0.1")
        self.assertEqual(announce_from_query(args, "127.0.0.1", trust_ip=True).ip, "10.1.2.3")
        bad = self.query(ip=b"example.com")
        self.assertRaises(RequestRefused, announce_from_query, bad, "127.0.0.1", trust_ip=True)

    def test_mapped_address(self) -> None:
        """An IPv4-mapped IPv6 source address is recorded as IPv4."""
        self.assertEqual(canonical_ip("::ffff:127.0.0.1"), "127.0.0.1")
        self.assertEqual(announce_from_query(self.query(), "::ffff:127.0.0.1").ip, "127.0.0.1")

    def test_scrape_hashes(self) -> None:
        """A scrape names at least one 20-byte info hash."""
        self.assertEqual(scrape_hashes_from_query(parse_query(b"info_hash=" + b"a" * 20)),
                         [b"a" * 20])
        self.assertRaises(RequestRefused, scrape_hashes_from_query, {})
        self.assertRaises(RequestRefused, scrape_hashes_from_query, {b"info_hash": [b"x"]})


class HTTPTrackerResourceTests(SynchronousTestCase):
    """The HTTP tracker through treq's StubTreq (every client is 127.0.0.1)."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.state = TrackerState(random.Random(3), interval=120)
        self.stub = StubTreq(HTTPTrackerResource(self.state, self.clock, trust_ip=True))

    def get(self, url: str) -> tuple[int, bytes]:
        """GET ``url`` from the stub tracker: (status, body)."""
        d = self.stub.get(url)
        self.stub.flush()
        response = self.successResultOf(d)
        body = self.successResultOf(self.stub.content(response))
        return response.code, body

    def announce(self, request: AnnounceRequest, path: str = "/announce") -> Any:
        """Announce through HTTPTrackerClient over the stub."""
        client = HTTPTrackerClient(self.stub, self.clock)
        d = client.announce("http://tracker.test" + path, request)
        self.stub.flush()
        return d

    def request(self, peer_id: bytes, port: int, **changes: Any) -> AnnounceRequest:
        """An AnnounceRequest for INFO_HASH."""
        fields: dict[str, Any] = dict(info_hash=INFO_HASH, peer_id=peer_id, port=port,
                                      uploaded=0, downloaded=0, left=10)
        fields.update(changes)
        return AnnounceRequest(**fields)

    def test_announce_adds_peer(self) -> None:
        """An announce records the peer at the source address and the announced port."""
        response = self.successResultOf(self.announce(self.request(PEER_A, 6881)))
        self.assertEqual((response.peers, response.incomplete), ((), 1))
        self.assertEqual(response.external_ip, "127.0.0.1")
        [record] = self.state.peers(INFO_HASH)
        self.assertEqual((record.ip, record.port, record.peer_id), ("127.0.0.1", 6881, PEER_A))

    def test_second_gets_first_compact(self) -> None:
        """The second peer gets the first in compact form."""
        self.successResultOf(self.announce(self.request(PEER_A, 6881)))
        response = self.successResultOf(self.announce(self.request(PEER_B, 6882)))
        self.assertEqual(response.peers, (("127.0.0.1", 6881),))

    def test_non_compact(self) -> None:
        """compact=0 gets dictionaries with peer ids, unless no_peer_id=1."""
        self.successResultOf(self.announce(self.request(PEER_A, 6881)))
        base = ("/announce?info_hash=%C1%2F%E1%C0k%BA%25J%9D%C9%F5%19%B35%AA%7C%13g%A8%8A"
                "&peer_id=-TX0010-bbbbbbbbbbbb&port=6882&left=5&compact=0")
        status, body = self.get("http://tracker.test" + base)
        self.assertEqual(status, 200)
        self.assertEqual(decode(body)[b"peers"],
                         [{b"ip": b"127.0.0.1", b"port": 6881, b"peer id": PEER_A}])
        _, body = self.get("http://tracker.test" + base + "&no_peer_id=1")
        self.assertEqual(decode(body)[b"peers"], [{b"ip": b"127.0.0.1", b"port": 6881}])
        self.assertEqual(parse_announce_response(body).peers, (("127.0.0.1", 6881),))

    def test_peers6(self) -> None:
        """An IPv6 peer (here by a trusted ip parameter) is returned in peers6."""
        self.successResultOf(self.announce(self.request(PEER_A, 6881, ip="::1")))
        response = self.successResultOf(self.announce(self.request(PEER_B, 6882)))
        self.assertEqual((response.peers, response.peers6), ((), (("::1", 6881),)))

    def test_scrape(self) -> None:
        """Scrape counts seeders, leechers and completed downloads."""
        self.successResultOf(self.announce(self.request(PEER_A, 1)))
        self.successResultOf(self.announce(self.request(PEER_B, 2, left=0)))
        self.successResultOf(
            self.announce(self.request(PEER_A, 1, left=0, event=AnnounceEvent.COMPLETED))
        )
        client = HTTPTrackerClient(self.stub, self.clock)
        d = client.scrape("http://tracker.test/announce", [INFO_HASH, OTHER_HASH])
        self.stub.flush()
        self.assertEqual(self.successResultOf(d), {INFO_HASH: ScrapeStats(2, 1, 0)})

    def test_bad_requests(self) -> None:
        """A bad announce or scrape gets a failure reason with status 200."""
        for path in ("/announce?info_hash=abc&peer_id=x&port=1&left=0", "/scrape"):
            status, body = self.get("http://tracker.test" + path)
            self.assertEqual(status, 200)
            self.assertRaises(TrackerFailure, parse_announce_response, body)
        failure = self.failureResultOf(self.announce(self.request(PEER_A, 6881, ip="bogus")),
                                       TrackerFailure)
        self.assertEqual(failure.value.reason, "invalid ip")

    def test_unknown_path(self) -> None:
        """A path other than announce or scrape is a 404."""
        self.assertEqual(self.get("http://tracker.test/other")[0], 404)

    def test_scrape_reply_format(self) -> None:
        """A raw scrape reply is a BEP 48 files dictionary."""
        self.successResultOf(self.announce(self.request(PEER_A, 1)))
        _, body = self.get("http://tracker.test/scrape?info_hash="
                           "%C1%2F%E1%C0k%BA%25J%9D%C9%F5%19%B35%AA%7C%13g%A8%8A")
        self.assertEqual(parse_scrape_response(body, [INFO_HASH]),
                         {INFO_HASH: ScrapeStats(0, 0, 1)})


class FakeDatagramTransport:
    """Collects what a DatagramProtocol writes."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, datagram: bytes, addr: Any) -> None:
        self.written.append((datagram, addr))


class UDPTrackerProtocolTests(SynchronousTestCase):
    """BEP 15 requests fed straight to the tracker's DatagramProtocol."""

    CLIENT = ("127.0.0.1", 40000)

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.state = TrackerState(random.Random(2), interval=300)
        self.protocol = UDPTrackerProtocol(self.state, SECRET, self.clock)
        self.transport = FakeDatagramTransport()
        self.protocol.transport = self.transport  # type: ignore[assignment]

    def exchange(self, datagram: bytes, source: Any = CLIENT) -> bytes | None:
        """Send one datagram; return the reply, if any."""
        before = len(self.transport.written)
        self.protocol.datagramReceived(datagram, source)
        if len(self.transport.written) == before:
            return None
        reply, addr = self.transport.written[-1]
        self.assertEqual(addr, source)
        return reply

    def connect(self, source: Any = CLIENT) -> int:
        """A connection id from the tracker."""
        reply = self.exchange(encode_connect_request(7), source)
        assert reply is not None
        return decode_connect_response(reply, 7)

    def test_round_trip(self) -> None:
        """Connect, then announce: the second peer gets the first."""
        request = AnnounceRequest(INFO_HASH, PEER_A, 6881, 0, 0, 5)
        connection = self.connect()
        first = self.exchange(encode_announce_request(connection, 8, request))
        assert first is not None
        self.assertEqual(decode_announce_response(first, 8).incomplete, 1)
        other = ("127.0.0.1", 40001)
        request_b = AnnounceRequest(INFO_HASH, PEER_B, 6882, 0, 0, 5)
        reply = self.exchange(encode_announce_request(self.connect(other), 9, request_b), other)
        assert reply is not None
        response = decode_announce_response(reply, 9)
        self.assertEqual((response.peers, response.interval), ((("127.0.0.1", 6881),), 300))

    def test_ipv6_client(self) -> None:
        """An IPv6 client gets IPv6 peers only, in 18-byte entries."""
        source = ("::1", 40000, 0, 0)
        self.state.announce(announce(PEER_A, 1, ip="::1"), self.clock.seconds())
        self.state.announce(announce(PEER_C, 3), self.clock.seconds())
        request = AnnounceRequest(INFO_HASH, PEER_B, 6882, 0, 0, 5)
        reply = self.exchange(encode_announce_request(self.connect(source), 9, request), source)
        assert reply is not None
        self.assertEqual(decode_announce_response(reply, 9, ipv6=True).peers6, (("::1", 1),))

    def test_connection_id_lifetime(self) -> None:
        """An id works for at least one minute and at most two, and only for its IP address."""
        responder = UDPTrackerResponder(self.state, SECRET)
        issued = responder.connection_id("127.0.0.1", 1, 1019.9)
        self.assertTrue(responder.valid(issued, "127.0.0.1", 1, 1079.8))
        self.assertFalse(responder.valid(issued, "127.0.0.1", 1, 1080.0))
        self.assertTrue(responder.valid(issued, "127.0.0.1", 2, 1030.0))  # any port
        self.assertFalse(responder.valid(issued, "127.0.0.2", 1, 1030.0))
        issued = responder.connection_id("127.0.0.1", 1, 1020.0)
        self.assertTrue(responder.valid(issued, "127.0.0.1", 1, 1139.9))
        other = UDPTrackerResponder(self.state, b"another secret!!")
        self.assertFalse(other.valid(issued, "127.0.0.1", 1, 1020.0))

    def test_expired_connection_id(self) -> None:
        """An announce with an expired connection id gets an error packet."""
        connection = self.connect()
        self.clock.advance(121)
        request = AnnounceRequest(INFO_HASH, PEER_A, 6881, 0, 0, 5)
        reply = self.exchange(encode_announce_request(connection, 8, request))
        assert reply is not None
        error = self.assertRaises(UDPTrackerError, decode_announce_response, reply, 8)
        self.assertEqual(error.message, "invalid connection id")

    def test_bad_packets(self) -> None:
        """Junk is ignored; a short announce or bad event gets an error packet."""
        self.assertIsNone(self.exchange(b"\x00" * 7))
        self.assertIsNone(self.exchange(struct.pack(">QII", 1234, 0, 5)))  # no magic
        self.assertIsNone(self.exchange(struct.pack(">QII", PROTOCOL_ID, 9, 5)))  # action 9
        connection = self.connect()
        short = struct.pack(">QII", connection, 1, 5) + b"\x00" * 10
        reply = self.exchange(short)
        assert reply is not None
        self.assertRaises(UDPTrackerError, decode_announce_response, reply, 5)
        request = AnnounceRequest(INFO_HASH, PEER_A, 6881, 0, 0, 5)
        packet = bytearray(encode_announce_request(connection, 6, request))
        packet[80:84] = struct.pack(">I", 9)  # event 9
        reply = self.exchange(bytes(packet))
        assert reply is not None
        self.assertRaises(UDPTrackerError, decode_announce_response, reply, 6)

    def test_scrape(self) -> None:
        """A scrape returns one entry per info hash, zero for unknown ones."""
        self.state.announce(announce(PEER_A, 1, left=0), self.clock.seconds())
        reply = self.exchange(encode_scrape_request(self.connect(), 4, [INFO_HASH, OTHER_HASH]))
        assert reply is not None
        self.assertEqual(decode_scrape_response(reply, 4, [INFO_HASH, OTHER_HASH]),
                         {INFO_HASH: ScrapeStats(1, 0, 0), OTHER_HASH: ScrapeStats(0, 0, 0)})

    def test_trusted_ip_field(self) -> None:
        """The announce's IP field replaces the source address only when trusted."""
        request = AnnounceRequest(INFO_HASH, PEER_A, 6881, 0, 0, 5)
        for trust, expected in ((False, "127.0.0.1"), (True, "10.0.0.9")):
            state = TrackerState(random.Random(1))
            protocol = UDPTrackerProtocol(state, SECRET, self.clock, trust_ip=trust)
            protocol.transport = self.transport  # type: ignore[assignment]
            responder = protocol.responder
            connection = responder.connection_id(*self.CLIENT, self.clock.seconds())
            packet = bytearray(encode_announce_request(connection, 6, request))
            packet[84:88] = bytes([10, 0, 0, 9])
            protocol.datagramReceived(bytes(packet), self.CLIENT)
            self.assertEqual([p.ip for p in state.peers(INFO_HASH)], [expected])


class EndToEndTests(TestCase):
    """A real tracker on 127.0.0.1 with the real clients."""

    timeout = 20

    def test_http_and_udp_peers_meet(self) -> Deferred[None]:
        """Two peers announce, one over HTTP and one over UDP, and each sees the other."""
        return ensureDeferred(self._meet())

    async def _meet(self) -> None:
        from twisted.internet import reactor as global_reactor

        tracker = await start_tracker(global_reactor, "127.0.0.1", interval=60)
        pool = HTTPConnectionPool(global_reactor, persistent=True)
        http = HTTPTrackerClient(HTTPClient(Agent(global_reactor, pool=pool)), global_reactor,
                                 timeout=10)
        udp = UDPTrackerClient(global_reactor, random.Random(4), interface4="127.0.0.1")
        udp.start()
        try:
            self.assertTrue(tracker.announce_url.startswith("http://127.0.0.1:"))
            self.assertTrue(tracker.udp_url.startswith("udp://127.0.0.1:"))
            request_a = AnnounceRequest(INFO_HASH, PEER_A, 7001, 0, 0, 10,
                                        event=AnnounceEvent.STARTED)
            request_b = AnnounceRequest(INFO_HASH, PEER_B, 7002, 0, 0, 10,
                                        event=AnnounceEvent.STARTED)
            first = await http.announce(tracker.announce_url, request_a)
            self.assertEqual(first.peers, ())
            second = await udp.announce(tracker.udp_url, request_b)
            self.assertEqual(second.peers, (("127.0.0.1", 7001),))
            again = await http.announce(tracker.announce_url,
                                        AnnounceRequest(INFO_HASH, PEER_A, 7001, 0, 0, 10))
            self.assertEqual(again.peers, (("127.0.0.1", 7002),))
            stats = await http.scrape(tracker.announce_url, [INFO_HASH])
            self.assertEqual(stats, {INFO_HASH: ScrapeStats(0, 0, 2)})
        finally:
            await udp.stop()
            await pool.closeCachedConnections()
            await tracker.stop()

    def test_start_failure_closes_http_port(self) -> Deferred[None]:
        """When the UDP port is taken, start_tracker fails and closes its HTTP port."""
        return ensureDeferred(self._port_taken())

    async def _port_taken(self) -> None:
        from twisted.internet import reactor as global_reactor
        from twisted.internet.error import CannotListenError

        first = await start_tracker(global_reactor, "127.0.0.1")
        try:
            taken = first.udp_port.getHost().port
            with self.assertRaises(CannotListenError):
                await start_tracker(global_reactor, "127.0.0.1", udp_port=taken)
        finally:
            await first.stop()

    def test_announcers_meet(self) -> Deferred[None]:
        """Two Announcers, over UDP and HTTP, find each other and say stopped at the end."""
        return ensureDeferred(self._announcers())

    async def _announcers(self) -> None:
        from twisted.internet import reactor as global_reactor

        tracker = await start_tracker(global_reactor, "127.0.0.1", interval=60)
        pool = HTTPConnectionPool(global_reactor, persistent=True)
        http = Recording(HTTPTrackerClient(HTTPClient(Agent(global_reactor, pool=pool)),
                                           global_reactor, timeout=10))
        udp_client = UDPTrackerClient(global_reactor, random.Random(4), interface4="127.0.0.1")
        udp = Recording(udp_client)
        udp_client.start()
        found: Deferred[list[tuple[str, int]]] = Deferred()
        class Host:
            def __init__(self, port: int, on_peers: Any) -> None:
                self.port, self.add_peers = port, on_peers

            def listen_port(self) -> int:
                return self.port

            def transfer_stats(self) -> tuple[int, int, int]:
                return 0, 0, 10

            def tracker_reply(self, url: str, response: Any) -> None:
                pass

            def tracker_error(self, url: str, message: str) -> None:
                pass

        first = Announcer([[tracker.udp_url]], INFO_HASH, PEER_A,
                          Host(7001, lambda peers, source: None), global_reactor,
                          random.Random(1), http, udp)
        second = Announcer([[tracker.announce_url]], INFO_HASH, PEER_B,
                           Host(7002, lambda peers, source: found.callback(peers)),
                           global_reactor, random.Random(2), http, udp)
        try:
            first.start()
            await udp.calls[0]
            second.start()
            self.assertEqual(await found, [("127.0.0.1", 7001)])
            self.assertEqual(len(tracker.state.peers(INFO_HASH)), 2)
        finally:
            await first.stop()
            await second.stop()
            self.assertEqual(tracker.state.peers(INFO_HASH), ())
            await udp_client.stop()
            await pool.closeCachedConnections()
            await tracker.stop()


class Recording:
    """A tracker client wrapper that keeps each announce's Deferred (fired alongside)."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.calls: list[Deferred[Any]] = []

    def announce(self, url: str, request: AnnounceRequest) -> Deferred[Any]:
        d = self.client.announce(url, request)
        seen: Deferred[Any] = Deferred()
        self.calls.append(seen)

        def relay(result: Any) -> Any:
            seen.callback(None)
            return result

        return d.addBoth(relay)
