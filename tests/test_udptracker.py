"""Tests for txbittorrent.core.tracker.udp."""

from __future__ import annotations

import ipaddress
import random
import struct

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.tracker.announce import (
    INTERVAL_CEILING,
    INTERVAL_FLOOR,
    AnnounceEvent,
    AnnounceRequest,
    AnnounceResponse,
    ScrapeStats,
)
from txbittorrent.core.tracker.udp import (
    CONNECTION_ID_LIFETIME,
    MAX_N,
    MAX_SCRAPE_HASHES,
    PROTOCOL_ID,
    ConnectionCache,
    Done,
    Failed,
    ScrapeRequest,
    Send,
    UDPTrackerError,
    UDPTrackerExchange,
    decode_announce_response,
    decode_connect_response,
    decode_scrape_response,
    encode_announce_request,
    encode_announce_response,
    encode_connect_request,
    encode_connect_response,
    encode_error,
    encode_scrape_request,
    encode_scrape_response,
    parse_udp_url,
    transaction_id_of,
)
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError

SEED = 1980
"""random.Random(SEED).getrandbits(32) draws TID1, then TID2, then TID3."""
TID1, TID2, TID3 = 0x0272C83B, 0xD6E545A9, 0x610EEA78
CONNECTION_ID = 0xC0FFEE0012345678
TRACKER = ("tracker.example", 6969)
INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
OTHER_HASH = bytes(range(20))
PEER_ID = b"-TX0010-abcdefghijkl"

REQUEST = AnnounceRequest(
    info_hash=INFO_HASH,
    peer_id=PEER_ID,
    port=6881,
    uploaded=10,
    downloaded=20,
    left=30,
    event=AnnounceEvent.STARTED,
    key=0xDEADBEEF,
)

CONNECT_REQUEST = (
    b"\x00\x00\x04\x17\x27\x10\x19\x80"  # protocol id 0x41727101980
    b"\x00\x00\x00\x00"  # action 0: connect
    b"\x02\x72\xc8\x3b"  # transaction id TID1
)

CONNECT_RESPONSE = (
    b"\x00\x00\x00\x00"  # action 0: connect
    b"\x02\x72\xc8\x3b"  # transaction id TID1, as in the request
    b"\xc0\xff\xee\x00\x12\x34\x56\x78"  # connection id
)

ANNOUNCE_REQUEST = (
    b"\xc0\xff\xee\x00\x12\x34\x56\x78"  # connection id
    b"\x00\x00\x00\x01"  # action 1: announce
    b"\xd6\xe5\x45\xa9"  # transaction id TID2
    + INFO_HASH  # info hash, 20 bytes
    + PEER_ID  # peer id, 20 bytes
    + b"\x00\x00\x00\x00\x00\x00\x00\x14"  # downloaded: 20
    b"\x00\x00\x00\x00\x00\x00\x00\x1e"  # left: 30
    b"\x00\x00\x00\x00\x00\x00\x00\x0a"  # uploaded: 10
    b"\x00\x00\x00\x02"  # event 2: started
    b"\x00\x00\x00\x00"  # IP address 0: the one the datagram comes from
    b"\xde\xad\xbe\xef"  # key
    b"\xff\xff\xff\xff"  # num want -1: the tracker's default
    b"\x1a\xe1"  # port 6881
)

URL_DATA = (
    b"\x02"  # BEP 41 option 2: URLData
    b"\x0e"  # 14 bytes
    b"/announce?k=v1"  # the URL's path and query
)

ANNOUNCE_RESPONSE = (
    b"\x00\x00\x00\x01"  # action 1: announce
    b"\xd6\xe5\x45\xa9"  # transaction id TID2
    b"\x00\x00\x07\x08"  # interval: 1800 seconds
    b"\x00\x00\x00\x03"  # leechers: 3
    b"\x00\x00\x00\x05"  # seeders: 5
    b"\x0a\x00\x00\x01" b"\x1a\xe1"  # peer 10.0.0.1, port 6881
    b"\xc0\xa8\x01\x02" b"\x00\x50"  # peer 192.168.1.2, port 80
)
ANNOUNCED = AnnounceResponse(
    interval=1800, complete=5, incomplete=3, peers=(("10.0.0.1", 6881), ("192.168.1.2", 80))
)

ANNOUNCE_RESPONSE6 = (
    b"\x00\x00\x00\x01"  # action 1: announce
    b"\xd6\xe5\x45\xa9"  # transaction id TID2
    b"\x00\x00\x00\x0a"  # interval: 10 seconds (raised to INTERVAL_FLOOR)
    b"\x00\x00\x00\x00"  # leechers: 0
    b"\x00\x00\x00\x01"  # seeders: 1
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"  # peer 2001:db8::1
    b"\x1a\xe1"  # port 6881
)
ANNOUNCED6 = AnnounceResponse(
    interval=INTERVAL_FLOOR, complete=1, incomplete=0, peers6=(("2001:db8::1", 6881),)
)

SCRAPE_REQUEST = (
    b"\xc0\xff\xee\x00\x12\x34\x56\x78"  # connection id
    b"\x00\x00\x00\x02"  # action 2: scrape
    b"\xd6\xe5\x45\xa9"  # transaction id TID2
    + INFO_HASH  # first info hash
    + OTHER_HASH  # second info hash
)

SCRAPE_RESPONSE = (
    b"\x00\x00\x00\x02"  # action 2: scrape
    b"\xd6\xe5\x45\xa9"  # transaction id TID2
    b"\x00\x00\x00\x05"  # first torrent: 5 seeders
    b"\x00\x00\x00\x32"  # 50 completed
    b"\x00\x00\x00\x0a"  # 10 leechers
    b"\x00\x00\x00\x00"  # second torrent: 0 seeders
    b"\x00\x00\x00\x01"  # 1 completed
    b"\x00\x00\x00\x02"  # 2 leechers
)
SCRAPED = {INFO_HASH: ScrapeStats(5, 50, 10), OTHER_HASH: ScrapeStats(0, 1, 2)}

ERROR_RESPONSE = (
    b"\x00\x00\x00\x03"  # action 3: error
    b"\xd6\xe5\x45\xa9"  # transaction id TID2
    b"unknown torrent"  # the message, to the end of the datagram
)


class FixtureTests(SynchronousTestCase):
    """The fixtures say what they claim to."""

    def test_transaction_ids(self) -> None:
        """The seeded rng draws TID1, TID2, TID3 in turn."""
        rng = random.Random(SEED)
        self.assertEqual([rng.getrandbits(32) for _ in range(3)], [TID1, TID2, TID3])

    def test_protocol_id(self) -> None:
        """The first 8 bytes of a connect request are BEP 15's magic constant."""
        self.assertEqual(struct.unpack(">Q", CONNECT_REQUEST[:8])[0], PROTOCOL_ID)
        self.assertEqual(PROTOCOL_ID, 0x41727101980)

    def test_announce_request_size(self) -> None:
        """An announce request is 98 bytes."""
        self.assertEqual(len(ANNOUNCE_REQUEST), 98)


class EncodeTests(SynchronousTestCase):
    """The encoders write the fixtures."""

    def test_connect_request(self) -> None:
        """A connect request."""
        self.assertEqual(encode_connect_request(TID1), CONNECT_REQUEST)

    def test_announce_request(self) -> None:
        """An announce request."""
        self.assertEqual(encode_announce_request(CONNECTION_ID, TID2, REQUEST), ANNOUNCE_REQUEST)

    def test_announce_request_url_data(self) -> None:
        """BEP 41 URL data follows the announce request."""
        self.assertEqual(
            encode_announce_request(CONNECTION_ID, TID2, REQUEST, url_data=b"/announce?k=v1"),
            ANNOUNCE_REQUEST + URL_DATA,
        )

    def test_long_url_data(self) -> None:
        """URL data longer than 255 bytes is split across options."""
        packet = encode_announce_request(CONNECTION_ID, TID2, REQUEST, url_data=b"/" * 300)
        self.assertEqual(packet[98:], b"\x02\xff" + b"/" * 255 + b"\x02\x2d" + b"/" * 45)

    def test_announce_fields(self) -> None:
        """Other events, a num want and no key."""
        request = AnnounceRequest(INFO_HASH, PEER_ID, 1, 0, 0, 0, numwant=200)
        packet = encode_announce_request(1, 2, request)
        # event, IP address, key, num want, port
        self.assertEqual(struct.unpack(">IIIiH", packet[80:]), (0, 0, 0, 200, 1))
        codes = [
            (AnnounceEvent.COMPLETED, 1),
            (AnnounceEvent.STARTED, 2),
            (AnnounceEvent.STOPPED, 3),
        ]
        for event, code in codes:
            request = AnnounceRequest(INFO_HASH, PEER_ID, 1, 0, 0, 0, event=event)
            self.assertEqual(encode_announce_request(1, 2, request)[80:84], bytes([0, 0, 0, code]))

    def test_scrape_request(self) -> None:
        """A scrape request."""
        self.assertEqual(
            encode_scrape_request(CONNECTION_ID, TID2, [INFO_HASH, OTHER_HASH]), SCRAPE_REQUEST
        )

    def test_scrape_request_limits(self) -> None:
        """A scrape asks about 1 to 74 torrents of 20-byte hashes."""
        self.assertRaises(ValueError, encode_scrape_request, 1, 2, [])
        too_many = [INFO_HASH] * (MAX_SCRAPE_HASHES + 1)
        self.assertRaises(ValueError, encode_scrape_request, 1, 2, too_many)
        self.assertRaises(ValueError, ScrapeRequest, (b"short",))

    def test_tracker_side(self) -> None:
        """The tracker's encoders write the reply fixtures."""
        self.assertEqual(encode_connect_response(TID1, CONNECTION_ID), CONNECT_RESPONSE)
        self.assertEqual(encode_announce_response(TID2, ANNOUNCED), ANNOUNCE_RESPONSE)
        response6 = AnnounceResponse(10, complete=1, incomplete=0, peers6=ANNOUNCED6.peers6)
        self.assertEqual(encode_announce_response(TID2, response6, ipv6=True), ANNOUNCE_RESPONSE6)
        self.assertEqual(encode_scrape_response(TID2, SCRAPED.values()), SCRAPE_RESPONSE)
        self.assertEqual(encode_error(TID2, "unknown torrent"), ERROR_RESPONSE)


class DecodeTests(SynchronousTestCase):
    """The decoders read the fixtures, and check length, action and transaction id."""

    def test_connect(self) -> None:
        """A connect reply gives the connection id; extra bytes are ignored."""
        self.assertEqual(decode_connect_response(CONNECT_RESPONSE, TID1), CONNECTION_ID)
        self.assertEqual(decode_connect_response(CONNECT_RESPONSE + b"xx", TID1), CONNECTION_ID)

    def test_announce(self) -> None:
        """An IPv4 announce reply."""
        self.assertEqual(decode_announce_response(ANNOUNCE_RESPONSE, TID2), ANNOUNCED)

    def test_announce6(self) -> None:
        """Over IPv6 the peers are 18 bytes each, and go in peers6."""
        self.assertEqual(decode_announce_response(ANNOUNCE_RESPONSE6, TID2, ipv6=True), ANNOUNCED6)

    def test_announce_interval_clamped(self) -> None:
        """A huge interval is lowered to INTERVAL_CEILING."""
        data = ANNOUNCE_RESPONSE[:8] + b"\xff\xff\xff\xff" + ANNOUNCE_RESPONSE[12:]
        self.assertEqual(decode_announce_response(data, TID2).interval, INTERVAL_CEILING)

    def test_scrape(self) -> None:
        """A scrape reply, entries in the order asked."""
        self.assertEqual(
            decode_scrape_response(SCRAPE_RESPONSE, TID2, [INFO_HASH, OTHER_HASH]), SCRAPED
        )

    def test_error(self) -> None:
        """An error packet raises UDPTrackerError with its message, whatever was expected."""
        e = self.assertRaises(UDPTrackerError, decode_announce_response, ERROR_RESPONSE, TID2)
        self.assertEqual(e.message, "unknown torrent")
        self.assertIsInstance(e, RemoteProtocolError)
        self.assertRaises(UDPTrackerError, decode_connect_response, ERROR_RESPONSE, TID2)
        self.assertRaises(
            UDPTrackerError, decode_scrape_response, ERROR_RESPONSE, TID2, [INFO_HASH]
        )

    def check(self, words: str, decode: object, *args: object, **kwargs: object) -> None:
        e = self.assertRaises(RemoteProtocolError, decode, *args, **kwargs)
        self.assertNotIsInstance(e, UDPTrackerError)
        self.assertIn(words, str(e))

    def test_short(self) -> None:
        """Too short for a header, or for the reply's fixed part."""
        self.check("too short", decode_connect_response, b"\x00\x00\x00", TID1)
        self.check("too short", decode_connect_response, CONNECT_RESPONSE[:15], TID1)
        self.check("too short", decode_announce_response, ANNOUNCE_RESPONSE[:19], TID2)

    def test_wrong_transaction(self) -> None:
        """A reply to another transaction."""
        self.check("transaction", decode_connect_response, CONNECT_RESPONSE, TID2)

    def test_wrong_action(self) -> None:
        """A reply of another kind."""
        self.check("action 0, not 1", decode_announce_response, CONNECT_RESPONSE, TID1)
        data = b"\x00\x00\x00\x09" + CONNECT_RESPONSE[4:]  # an action BEP 15 does not define
        self.check("action 9, not 0", decode_connect_response, data, TID1)

    def test_peers_bad_length(self) -> None:
        """Peers that are not whole entries of the socket's family."""
        self.check("multiple of 6", decode_announce_response, ANNOUNCE_RESPONSE[:-1], TID2)
        self.check("multiple of 18", decode_announce_response, ANNOUNCE_RESPONSE, TID2, ipv6=True)

    def test_scrape_wrong_count(self) -> None:
        """A scrape reply with more or fewer entries than torrents asked about."""
        self.check("for 1 torrents", decode_scrape_response, SCRAPE_RESPONSE, TID2, [INFO_HASH])
        self.check(
            "for 2 torrents",
            decode_scrape_response,
            SCRAPE_RESPONSE[:-1],
            TID2,
            [INFO_HASH, OTHER_HASH],
        )

    def test_transaction_id_of(self) -> None:
        """The transaction id of any reply, or None below 8 bytes."""
        self.assertEqual(transaction_id_of(CONNECT_RESPONSE), TID1)
        self.assertEqual(transaction_id_of(ERROR_RESPONSE[:8]), TID2)
        self.assertIsNone(transaction_id_of(ERROR_RESPONSE[:7]))


_ports = st.integers(1, 65535)
_uint32 = st.integers(0, 2**32 - 1)
_peers4 = st.lists(st.tuples(st.integers(0, 2**32 - 1), _ports), unique=True, max_size=40)
_peers6 = st.lists(st.tuples(st.integers(0, 2**128 - 1), _ports), unique=True, max_size=40)


class RoundTripTests(SynchronousTestCase):
    """Tracker and client codecs agree; garbage raises only RemoteProtocolError."""

    @settings(max_examples=200, deadline=None)
    @given(
        st.integers(0, 2**32 - 1),
        st.integers(INTERVAL_FLOOR, INTERVAL_CEILING),
        st.integers(0, 2**32 - 1),
        st.integers(0, 2**32 - 1),
        _peers4,
        _peers6,
        st.booleans(),
    )
    def test_announce(
        self,
        tid: int,
        interval: int,
        seeders: int,
        leechers: int,
        peers4: list[tuple[int, int]],
        peers6: list[tuple[int, int]],
        ipv6: bool,
    ) -> None:
        """An announce reply of either family survives."""
        v4 = tuple((str(ipaddress.IPv4Address(a)), p) for a, p in peers4)
        v6 = tuple((str(ipaddress.IPv6Address(a)), p) for a, p in peers6)
        response = AnnounceResponse(
            interval,
            complete=seeders,
            incomplete=leechers,
            peers=() if ipv6 else v4,
            peers6=v6 if ipv6 else (),
        )
        data = encode_announce_response(tid, response, ipv6=ipv6)
        self.assertEqual(decode_announce_response(data, tid, ipv6=ipv6), response)

    @settings(max_examples=200, deadline=None)
    @given(
        st.integers(0, 2**32 - 1),
        st.lists(
            st.tuples(st.binary(min_size=20, max_size=20), st.tuples(*[_uint32] * 3)),
            min_size=1,
            max_size=MAX_SCRAPE_HASHES,
            unique_by=lambda e: e[0],
        ),
    )
    def test_scrape(self, tid: int, entries: list[tuple[bytes, tuple[int, int, int]]]) -> None:
        """A scrape reply survives."""
        stats = {h: ScrapeStats(*counts) for h, counts in entries}
        data = encode_scrape_response(tid, stats.values())
        self.assertEqual(decode_scrape_response(data, tid, list(stats)), stats)

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=120), st.booleans())
    def test_garbage(self, data: bytes, ipv6: bool) -> None:
        """Arbitrary datagrams with our transaction id."""
        data = data[:4] + struct.pack(">I", TID2) + data[8:] if len(data) >= 8 else data
        for decode in (
            lambda: decode_connect_response(data, TID2),
            lambda: decode_announce_response(data, TID2, ipv6=ipv6),
            lambda: decode_scrape_response(data, TID2, [INFO_HASH]),
        ):
            try:
                decode()
            except RemoteProtocolError:
                pass


class ParseURLTests(SynchronousTestCase):
    """parse_udp_url splits a tracker URL into host, port and BEP 41 URL data."""

    def test_urls(self) -> None:
        """Names, IPv6 literals, paths and queries."""
        self.assertEqual(
            parse_udp_url("udp://tracker.example:6969/announce"),
            ("tracker.example", 6969, b"/announce"),
        )
        self.assertEqual(
            parse_udp_url("UDP://[2001:db8::1]:80/announce?k=v1"),
            ("2001:db8::1", 80, b"/announce?k=v1"),
        )
        self.assertEqual(parse_udp_url("udp://tracker.example:1"), ("tracker.example", 1, b""))

    def test_bad(self) -> None:
        """Another scheme, no host, no port or a bad port: ValueError."""
        for url in [
            "http://t.example:80/announce",
            "udp://:80/",
            "udp://t.example/announce",
            "udp://t.example:0/",
            "udp://t.example:65536/",
            "udp://t.example:x/",
        ]:
            self.assertRaises(ValueError, parse_udp_url, url)


class ConnectionCacheTests(SynchronousTestCase):
    """ConnectionCache keeps each tracker's id for 60 seconds after receipt."""

    def test_lifetime(self) -> None:
        """Usable up to, not at, 60 seconds after receipt."""
        cache = ConnectionCache()
        cache.put(TRACKER, CONNECTION_ID, 100.0)
        self.assertEqual(cache.get(TRACKER, 159.9), (CONNECTION_ID, 100.0))
        self.assertIsNone(cache.get(TRACKER, 160.0))
        self.assertEqual(len(cache), 0)
        self.assertEqual(CONNECTION_ID_LIFETIME, 60.0)

    def test_per_tracker(self) -> None:
        """Trackers do not share ids; put forgets expired ones; discard forgets one."""
        cache = ConnectionCache(lifetime=10)
        cache.put(TRACKER, 1, 0.0)
        cache.put(("other.example", 1), 2, 5.0)
        self.assertIsNone(cache.get(("tracker.example", 1), 1.0))
        cache.put(("third.example", 1), 3, 10.0)
        self.assertEqual(len(cache), 2)
        cache.discard(("other.example", 1))
        self.assertIsNone(cache.get(("other.example", 1), 11.0))


def _exchange(
    cache: ConnectionCache | None = None,
    request: AnnounceRequest | ScrapeRequest = REQUEST,
    *,
    ipv6: bool = False,
    url_data: bytes = b"",
    max_n: int = MAX_N,
) -> UDPTrackerExchange:
    """An exchange with TRACKER whose transaction ids are TID1, TID2, TID3, ..."""
    return UDPTrackerExchange(
        TRACKER,
        request,
        rng=random.Random(SEED),
        cache=cache if cache is not None else ConnectionCache(),
        ipv6=ipv6,
        url_data=url_data,
        max_n=max_n,
    )


class ExchangeTests(SynchronousTestCase):
    """UDPTrackerExchange runs one announce or scrape (times are plain numbers)."""

    def test_happy_path(self) -> None:
        """Connect, then announce, then done; the id is cached."""
        cache = ConnectionCache()
        exchange = _exchange(cache)
        self.assertEqual(exchange.start(0.0), Send(CONNECT_REQUEST, 15.0))
        self.assertEqual(exchange.deadline, 15.0)
        step = exchange.datagram_received(CONNECT_RESPONSE, 1.0)
        self.assertEqual(step, Send(ANNOUNCE_REQUEST, 16.0))
        self.assertEqual(exchange.transaction_id, TID2)
        self.assertEqual(exchange.datagram_received(ANNOUNCE_RESPONSE, 2.0), Done(ANNOUNCED))
        self.assertTrue(exchange.finished)
        self.assertIsNone(exchange.deadline)
        self.assertEqual(cache.get(TRACKER, 2.0), (CONNECTION_ID, 1.0))

    def test_url_data(self) -> None:
        """The announce carries the BEP 41 URL data given."""
        exchange = _exchange(url_data=b"/announce?k=v1")
        exchange.start(0.0)
        step = exchange.datagram_received(CONNECT_RESPONSE, 1.0)
        self.assertEqual(step, Send(ANNOUNCE_REQUEST + URL_DATA, 16.0))

    def test_ipv6(self) -> None:
        """Over IPv6 the reply's 18-byte peers land in peers6."""
        exchange = _exchange(ipv6=True)
        exchange.start(0.0)
        exchange.datagram_received(CONNECT_RESPONSE, 1.0)
        self.assertEqual(exchange.datagram_received(ANNOUNCE_RESPONSE6, 2.0), Done(ANNOUNCED6))

    def test_scrape(self) -> None:
        """A scrape exchange sends a scrape and returns stats by info hash."""
        exchange = _exchange(request=ScrapeRequest((INFO_HASH, OTHER_HASH)))
        exchange.start(0.0)
        step = exchange.datagram_received(CONNECT_RESPONSE, 1.0)
        self.assertEqual(step, Send(SCRAPE_REQUEST, 16.0))
        self.assertEqual(exchange.datagram_received(SCRAPE_RESPONSE, 2.0), Done(SCRAPED))

    def test_retransmission_schedule(self) -> None:
        """Timeouts of 15 * 2**n seconds, n = 0..8, the same datagram each time, then give up."""
        exchange = _exchange()
        sends = [exchange.start(0.0)]
        now = 0.0
        for _ in range(MAX_N):
            now = sends[-1].deadline
            step = exchange.timeout(now)
            assert isinstance(step, Send)
            sends.append(step)
        waits = [b.deadline - a.deadline for a, b in zip([Send(b"", 0.0)] + sends, sends)]
        self.assertEqual(waits, [15, 30, 60, 120, 240, 480, 960, 1920, 3840])
        self.assertEqual({s.datagram for s in sends}, {CONNECT_REQUEST})
        step = exchange.timeout(sends[-1].deadline)
        self.assertIsInstance(step, Failed)
        assert isinstance(step, Failed)
        self.assertIsNone(step.error)
        self.assertIn("after 9 tries", step.reason)
        self.assertTrue(exchange.finished)

    def test_give_up_early(self) -> None:
        """With max_n 2 the exchange fails when the third timeout passes."""
        exchange = _exchange(max_n=2)
        self.assertEqual(exchange.start(0.0).deadline, 15.0)
        self.assertEqual(exchange.timeout(15.0), Send(CONNECT_REQUEST, 45.0))
        self.assertEqual(exchange.timeout(45.0), Send(CONNECT_REQUEST, 105.0))
        self.assertIsInstance(exchange.timeout(105.0), Failed)
        self.assertIsNone(exchange.timeout(1000.0))

    def test_stale_timer(self) -> None:
        """A timeout before the deadline does nothing."""
        exchange = _exchange()
        exchange.start(0.0)
        self.assertIsNone(exchange.timeout(14.9))
        self.assertEqual(exchange.timeout(15.0), Send(CONNECT_REQUEST, 45.0))

    def test_late_reply_to_earlier_copy(self) -> None:
        """A retransmission keeps the transaction id, so a late reply is taken."""
        exchange = _exchange()
        exchange.start(0.0)
        exchange.timeout(15.0)
        step = exchange.datagram_received(CONNECT_RESPONSE, 20.0)
        self.assertEqual(step, Send(ANNOUNCE_REQUEST, 50.0))

    def test_connection_reused(self) -> None:
        """Within 60 seconds of receiving the id, a second announce skips connect."""
        cache = ConnectionCache()
        first = _exchange(cache)
        first.start(0.0)
        first.datagram_received(CONNECT_RESPONSE, 1.0)
        first.datagram_received(ANNOUNCE_RESPONSE, 2.0)
        step = _exchange(cache).start(60.9)  # its first transaction id is TID1
        expected = ANNOUNCE_REQUEST[:12] + struct.pack(">I", TID1) + ANNOUNCE_REQUEST[16:]
        self.assertEqual(step, Send(expected, 75.9))

    def test_connection_refreshed(self) -> None:
        """Sixty seconds after the id came, an announce connects first."""
        cache = ConnectionCache()
        cache.put(TRACKER, CONNECTION_ID, 1.0)
        self.assertEqual(_exchange(cache).start(61.0), Send(CONNECT_REQUEST, 76.0))

    def test_expiry_mid_exchange(self) -> None:
        """When the id expires while retrying, the exchange connects again."""
        exchange = _exchange()
        exchange.start(0.0)
        exchange.datagram_received(CONNECT_RESPONSE, 1.0)  # id received at 1
        self.assertEqual(exchange.timeout(16.0), Send(ANNOUNCE_REQUEST, 46.0))
        self.assertEqual(exchange.timeout(46.0), Send(ANNOUNCE_REQUEST, 106.0))
        step = exchange.timeout(106.0)  # the id is 105 seconds old
        assert isinstance(step, Send)
        self.assertEqual(step, Send(CONNECT_REQUEST[:12] + struct.pack(">I", TID3), 226.0))
        reply = CONNECT_RESPONSE[:4] + struct.pack(">I", TID3) + b"\x00" * 7 + b"\x01"
        step2 = exchange.datagram_received(reply, 110.0)
        assert isinstance(step2, Send)
        self.assertEqual(step2.datagram[:8], b"\x00" * 7 + b"\x01")  # the new connection id
        self.assertEqual(step2.deadline, 110.0 + 15 * 2**3)

    def test_expiry_uses_fresher_cached_id(self) -> None:
        """An id another exchange refreshed meanwhile is used instead of connecting."""
        cache = ConnectionCache()
        exchange = _exchange(cache)
        exchange.start(0.0)
        exchange.datagram_received(CONNECT_RESPONSE, 1.0)
        exchange.timeout(16.0)
        exchange.timeout(46.0)
        cache.put(TRACKER, 7, 100.0)
        step = exchange.timeout(106.0)
        assert isinstance(step, Send)
        self.assertEqual(step.datagram[:12], struct.pack(">QI", 7, 1))

    def test_unknown_transaction_ignored(self) -> None:
        """A datagram for another transaction is ignored, and the exchange goes on."""
        exchange = _exchange()
        exchange.start(0.0)
        self.assertIsNone(exchange.datagram_received(CONNECT_RESPONSE[:4] + b"\x00" * 12, 1.0))
        self.assertIsNone(exchange.datagram_received(ANNOUNCE_RESPONSE, 1.0))  # TID2, not yet ours
        step = exchange.datagram_received(CONNECT_RESPONSE, 2.0)
        self.assertEqual(step, Send(ANNOUNCE_REQUEST, 17.0))

    def test_short_datagram_ignored(self) -> None:
        """A datagram too short to hold a transaction id is ignored."""
        exchange = _exchange()
        exchange.start(0.0)
        self.assertIsNone(exchange.datagram_received(CONNECT_RESPONSE[:7], 1.0))
        self.assertIsNone(exchange.datagram_received(b"", 1.0))
        self.assertFalse(exchange.finished)

    def test_garbled_reply_fails(self) -> None:
        """A reply with our transaction id that does not decode ends the exchange."""
        exchange = _exchange()
        exchange.start(0.0)
        step = exchange.datagram_received(CONNECT_RESPONSE[:12], 1.0)
        assert isinstance(step, Failed)
        self.assertIsInstance(step.error, RemoteProtocolError)
        self.assertIn("too short", step.reason)
        self.assertTrue(exchange.finished)
        self.assertIsNone(exchange.datagram_received(CONNECT_RESPONSE, 2.0))

    def test_garbled_announce_fails(self) -> None:
        """An announce reply with a partial peer entry ends the exchange."""
        exchange = _exchange()
        exchange.start(0.0)
        exchange.datagram_received(CONNECT_RESPONSE, 1.0)
        self.assertIsInstance(exchange.datagram_received(ANNOUNCE_RESPONSE[:-1], 2.0), Failed)

    def test_error_reported(self) -> None:
        """An error packet ends the exchange with the tracker's message."""
        exchange = _exchange()
        exchange.start(0.0)
        exchange.datagram_received(CONNECT_RESPONSE, 1.0)
        step = exchange.datagram_received(ERROR_RESPONSE, 2.0)
        assert isinstance(step, Failed)
        self.assertEqual(step.reason, "unknown torrent")
        self.assertIsInstance(step.error, UDPTrackerError)

    def test_misuse(self) -> None:
        """Starting twice or timing out before starting is LocalProtocolError."""
        exchange = _exchange()
        self.assertRaises(LocalProtocolError, exchange.timeout, 0.0)
        self.assertIsNone(exchange.datagram_received(CONNECT_RESPONSE, 0.0))
        exchange.start(0.0)
        self.assertRaises(LocalProtocolError, exchange.start, 1.0)
        self.assertRaises(ValueError, _exchange, max_n=-1)
