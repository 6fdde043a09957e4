"""Tests for txbittorrent.core.tracker.udpserver: BEP 15 and BEP 41, server side, hostile input."""

from __future__ import annotations

import random
import struct

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.tracker.announce import AnnounceRequest, ScrapeStats
from txbittorrent.core.tracker.ratelimit import RateLimiter
from txbittorrent.core.tracker.swarms import TrackerState
from txbittorrent.core.tracker.udp import (
    UDPTrackerError,
    decode_announce_response,
    decode_connect_response,
    decode_scrape_response,
    encode_announce_request,
    encode_connect_request,
    encode_scrape_request,
)
from txbittorrent.core.tracker.udpserver import MAX_DATAGRAM, UDPTrackerResponder, url_data_of
from tests.trackerfakes import INFO_HASH, PEER_A, PEER_B, SECRET

HOST, PORT = "127.0.0.1", 40000
NOW = 1000.0


class UDPResponderTests(SynchronousTestCase):
    """The responder fed datagrams directly."""

    def setUp(self) -> None:
        self.state = TrackerState(random.Random(2), interval=300)
        self.responder = UDPTrackerResponder(self.state, SECRET)

    def connect(self, host: str = HOST, port: int = PORT) -> int:
        reply = self.responder.datagram_received(encode_connect_request(7), host, port, NOW)
        assert reply is not None
        return decode_connect_response(reply, 7)

    def test_forged_connection_id(self) -> None:
        """An id not issued to this IP address (forged, or another's) gets an error."""
        request = AnnounceRequest(INFO_HASH, PEER_A, 6881, 0, 0, 5)
        for connection in (0x1234, self.connect("127.0.0.2")):
            packet = encode_announce_request(connection, 8, request)
            reply = self.responder.datagram_received(packet, HOST, PORT, NOW)
            assert reply is not None
            self.assertRaises(UDPTrackerError, decode_announce_response, reply, 8)
        self.assertEqual(self.state.peers(INFO_HASH), ())

    def test_expired_connection_id(self) -> None:
        """An id two epochs old is refused."""
        connection = self.connect()
        packet = encode_announce_request(connection, 8, AnnounceRequest(INFO_HASH, PEER_A, 1, 0, 0, 5))
        reply = self.responder.datagram_received(packet, HOST, PORT, NOW + 120)
        assert reply is not None
        self.assertEqual(self.assertRaises(UDPTrackerError, decode_announce_response, reply, 8)
                         .message, "invalid connection id")

    def test_no_amplification(self) -> None:
        """Before a valid id, no reply is longer than the request."""
        for packet in (
            struct.pack(">QII", 0x41727101980, 0, 5),  # connect: 16 in, 16 out
            struct.pack(">QII", 99, 1, 5),  # bare announce with a bad id
            struct.pack(">QII", 99, 2, 5),  # bare scrape with a bad id
            struct.pack(">QII", 99, 1, 5) + b"\x00" * 4,
        ):
            reply = self.responder.datagram_received(packet, HOST, PORT, NOW)
            assert reply is not None
            self.assertLessEqual(len(reply), len(packet))

    def test_oversized_dropped(self) -> None:
        """A datagram over MAX_DATAGRAM bytes gets no reply at all."""
        connection = self.connect()
        packet = struct.pack(">QII", connection, 2, 5) + b"a" * (MAX_DATAGRAM - 16 + 4)
        self.assertIsNone(self.responder.datagram_received(packet, HOST, PORT, NOW))

    def test_scrape_74(self) -> None:
        """74 hashes in one scrape are answered; 75 are refused."""
        connection = self.connect()
        hashes = [b"%020d" % n for n in range(75)]
        reply = self.responder.datagram_received(
            encode_scrape_request(connection, 4, hashes[:74]), HOST, PORT, NOW)
        assert reply is not None
        stats = decode_scrape_response(reply, 4, hashes[:74])
        self.assertEqual(set(stats.values()), {ScrapeStats(0, 0, 0)})
        packet = struct.pack(">QII", connection, 2, 4) + b"".join(hashes)
        reply = self.responder.datagram_received(packet, HOST, PORT, NOW)
        assert reply is not None
        self.assertRaises(UDPTrackerError, decode_scrape_response, reply, 4, hashes)

    def test_bep41_tolerated(self) -> None:
        """URL data options (and junk after them) do not spoil an announce."""
        request = AnnounceRequest(INFO_HASH, PEER_A, 6881, 0, 0, 5)
        packet = encode_announce_request(self.connect(), 8, request,
                                         url_data=b"/announce?x=" + b"y" * 300)
        for extra in (b"", b"\x01\x01\x00", b"\x02\xff"):
            reply = self.responder.datagram_received(packet + extra, HOST, PORT, NOW)
            assert reply is not None
            self.assertEqual(decode_announce_response(reply, 8).incomplete, 1)

    def test_url_data_of(self) -> None:
        """NOPs are skipped, URLData chunks joined, EndOfOptions and bad lengths stop."""
        self.assertEqual(url_data_of(b"\x01\x02\x02ab\x01\x02\x01c\x00\x02\x01d"), b"abc")
        self.assertEqual(url_data_of(b"\x02\x05ab"), b"")
        self.assertEqual(url_data_of(b"\x07"), b"")

    def test_private_passkey(self) -> None:
        """In private mode the BEP 41 path must name a known passkey; UDP scrapes are refused."""
        responder = UDPTrackerResponder(self.state, SECRET,
                                        passkeys={"goodkey": "alice"}.get)
        connection = self.connect()
        request = AnnounceRequest(INFO_HASH, PEER_A, 6881, 0, 0, 5)
        for url, ok in ((b"/goodkey/announce", True), (b"/badkey/announce", False),
                        (b"/announce", False), (b"", False)):
            packet = encode_announce_request(connection, 8, request, url_data=url)
            reply = responder.datagram_received(packet, HOST, PORT, NOW)
            assert reply is not None
            if ok:
                decode_announce_response(reply, 8)
            else:
                self.assertRaises(UDPTrackerError, decode_announce_response, reply, 8)
        reply = responder.datagram_received(
            encode_scrape_request(connection, 9, [INFO_HASH]), HOST, PORT, NOW)
        assert reply is not None
        self.assertRaises(UDPTrackerError, decode_scrape_response, reply, 9, [INFO_HASH])

    def test_rate_limited(self) -> None:
        """An announce flood from one address hits the limit; the swarm sees only the allowed."""
        responder = UDPTrackerResponder(self.state, SECRET, limiter=RateLimiter(10))
        connection = self.connect()
        refused = 0
        for n in range(50):
            request = AnnounceRequest(INFO_HASH, b"%020d" % n, 1000 + n, 0, 0, 5)
            reply = responder.datagram_received(
                encode_announce_request(connection, n, request), HOST, PORT, NOW)
            assert reply is not None
            try:
                decode_announce_response(reply, n)
            except UDPTrackerError as e:
                self.assertEqual(e.message, "rate limited")
                refused += 1
        self.assertEqual((refused, len(self.state.peers(INFO_HASH))), (40, 10))

    def test_key_recognised(self) -> None:
        """The announce's key field is kept, so the peer can move address later."""
        request = AnnounceRequest(INFO_HASH, PEER_B, 6881, 0, 0, 5, key=77)
        self.responder.datagram_received(
            encode_announce_request(self.connect(), 8, request), HOST, PORT, NOW)
        self.assertEqual([p.key for p in self.state.peers(INFO_HASH)], [77])
