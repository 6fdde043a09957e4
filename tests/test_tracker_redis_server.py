"""Tests for the asynchronous-store path of txbittorrent.tracker.server (``swarms=``),
with a store whose Deferreds the test fires by hand (no Redis needed)."""

from __future__ import annotations

import random
from typing import Any

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from txbittorrent.core.bencoding import decode
from txbittorrent.core.tracker.announce import AnnounceRequest, ScrapeStats, announce_url
from txbittorrent.core.tracker.registry import (
    Announce,
    AnnounceResult,
    PeerRecord,
    RequestRefused,
    TrackerState,
)
from txbittorrent.core.tracker.stats import TrackerStats
from txbittorrent.core.tracker.udp import (
    UDPTrackerError,
    decode_announce_response,
    decode_connect_response,
    decode_scrape_response,
    encode_announce_request,
    encode_connect_request,
    encode_scrape_request,
)
from txbittorrent.tracker.server import HTTPTrackerResource, UDPTrackerProtocol
from tests.trackerfakes import INFO_HASH, PEER_A, PEER_B, SECRET


class HeldStore:
    """A ``SwarmStore`` that records each call and answers when the test says."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any, Deferred[Any]]] = []

    def _held(self, kind: str, what: Any) -> Deferred[Any]:
        d: Deferred[Any] = Deferred()
        self.calls.append((kind, what, d))
        return d

    def announce(self, request: Announce, now: float, *, ipv6: bool | None = None) -> Any:
        return self._held("announce", (request, ipv6))

    def scrape(self, info_hashes: Any, now: float) -> Any:
        return self._held("scrape", list(info_hashes))

    def scrape_all(self, now: float, limit: int = 0) -> Any:
        return self._held("scrape_all", limit)


def result(*peers: tuple[str, int]) -> AnnounceResult:
    records = tuple(PeerRecord(ip, port, PEER_B, 0, 0.0) for ip, port in peers)
    return AnnounceResult(120, None, 1, 2, records, b"tid")


class FakeDatagramTransport:
    """Collects what a DatagramProtocol writes."""

    def __init__(self) -> None:
        self.written: list[tuple[bytes, Any]] = []

    def write(self, datagram: bytes, addr: Any) -> None:
        self.written.append((datagram, addr))


class HTTPStoreTests(SynchronousTestCase):
    """HTTPTrackerResource answers later when its store is asynchronous."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.store = HeldStore()
        self.stats = TrackerStats(self.clock.seconds)
        self.state = TrackerState(random.Random(1), interval=120)
        self.resource = HTTPTrackerResource(self.state, self.clock, swarms=self.store,
                                            stats=self.stats, full_scrape=True)

    def get(self, url: str) -> DummyRequest:
        path, _, query = url.partition("?")
        request = DummyRequest([p.encode() for p in path.strip("/").split("/")])
        request.uri = url.encode()
        request.client = IPv4Address("TCP", "127.0.0.1", 40000)
        self.assertEqual(self.resource.render_GET(request), NOT_DONE_YET)
        return request

    def announce_url(self) -> str:
        return announce_url("/announce", AnnounceRequest(INFO_HASH, PEER_A, 6881, 0, 0, 5))

    def test_announce_later(self) -> None:
        """The body is written when the store answers; the local state records nothing."""
        request = self.get(self.announce_url())
        [(kind, (announce, ipv6), d)] = self.store.calls
        self.assertEqual((kind, announce.peer_id, announce.port, ipv6), ("announce", PEER_A, 6881, None))
        self.assertEqual((request.written, request.finished), ([], 0))
        d.callback(result(("10.0.0.2", 7002), ("::1", 7003)))
        body = decode(b"".join(request.written))
        self.assertEqual(request.finished, 1)
        self.assertEqual((body[b"complete"], body[b"incomplete"], body[b"tracker id"]),
                         (1, 2, b"tid"))
        self.assertEqual(body[b"peers"], bytes([10, 0, 0, 2, 0x1B, 0x5A]))
        self.assertEqual(len(body[b"peers6"]), 18)
        self.assertEqual(self.state.peer_count, 0)
        self.assertEqual(self.stats.total("announce", "http"), 1)

    def test_scrapes_later(self) -> None:
        """A scrape and a full scrape go to the store and are encoded when it answers."""
        request = self.get("/scrape?info_hash=" + "".join("%%%02x" % b for b in INFO_HASH))
        full = self.get("/scrape")
        (_, hashes, d), (kind, _, d_all) = self.store.calls
        self.assertEqual((hashes, kind), ([INFO_HASH], "scrape_all"))
        d.callback({INFO_HASH: ScrapeStats(1, 2, 3)})
        d_all.callback({})
        self.assertEqual(decode(b"".join(request.written))[b"files"][INFO_HASH],
                         {b"complete": 1, b"downloaded": 2, b"incomplete": 3})
        self.assertEqual(decode(b"".join(full.written)), {b"files": {}})

    def test_refusal_and_failure(self) -> None:
        """A refusal from the store is its reason; any other failure is logged and generic."""
        refused, broken = self.get(self.announce_url()), self.get(self.announce_url())
        self.store.calls[0][2].errback(RequestRefused("unregistered torrent"))
        self.store.calls[1][2].errback(ConnectionError("redis down"))
        self.assertEqual(decode(b"".join(refused.written)),
                         {b"failure reason": b"unregistered torrent"})
        self.assertEqual(decode(b"".join(broken.written)),
                         {b"failure reason": b"tracker storage unavailable"})
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
        self.assertEqual(self.stats.total("error", "http"), 2)

    def test_client_gone(self) -> None:
        """A client that left before the store answered gets nothing written."""
        request = self.get(self.announce_url())
        request.processingFailed(Failure(ConnectionError("gone")))
        self.store.calls[0][2].callback(result())
        self.assertEqual(request.written, [])

    def test_synchronous_refusal(self) -> None:
        """A request refused before the store (a bad query) is still answered at once."""
        request = DummyRequest([b"announce"])
        request.uri = b"/announce?info_hash=short"
        request.client = IPv4Address("TCP", "127.0.0.1", 40000)
        body = self.resource.render_GET(request)
        self.assertIsInstance(body, bytes)
        self.assertIn(b"failure reason", body)  # type: ignore[operator]
        self.assertEqual(self.store.calls, [])


class UDPStoreTests(SynchronousTestCase):
    """UDPTrackerProtocol checks and parses, then lets the store answer."""

    CLIENT = ("127.0.0.1", 40000)

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.store = HeldStore()
        self.state = TrackerState(random.Random(2), interval=300)
        self.protocol = UDPTrackerProtocol(self.state, SECRET, self.clock, swarms=self.store)
        self.transport = FakeDatagramTransport()
        self.protocol.transport = self.transport  # type: ignore[assignment]
        self.protocol.datagramReceived(encode_connect_request(7), self.CLIENT)
        self.connection = decode_connect_response(self.transport.written.pop()[0], 7)

    def test_announce_later(self) -> None:
        """The announce reaches the store parsed; the reply goes out when it answers."""
        request = AnnounceRequest(INFO_HASH, PEER_A, 6881, 0, 0, 5)
        self.protocol.datagramReceived(encode_announce_request(self.connection, 8, request),
                                       self.CLIENT)
        [(kind, (announce, ipv6), d)] = self.store.calls
        self.assertEqual((kind, announce.peer_id, announce.ip, ipv6),
                         ("announce", PEER_A, "127.0.0.1", False))
        self.assertEqual(self.transport.written, [])
        d.callback(result(("10.0.0.2", 7002)))
        [(reply, addr)] = self.transport.written
        self.assertEqual(addr, self.CLIENT)
        response = decode_announce_response(reply, 8)
        self.assertEqual((response.peers, response.complete, response.incomplete),
                         ((("10.0.0.2", 7002),), 1, 2))

    def test_scrape_later(self) -> None:
        """A scrape is answered from the store's counts, zeros for unknown hashes."""
        other = bytes(range(20))
        self.protocol.datagramReceived(
            encode_scrape_request(self.connection, 9, [INFO_HASH, other]), self.CLIENT)
        [(_, hashes, d)] = self.store.calls
        self.assertEqual(hashes, [INFO_HASH, other])
        d.callback({INFO_HASH: ScrapeStats(4, 5, 6)})
        stats = decode_scrape_response(self.transport.written[0][0], 9, [INFO_HASH, other])
        self.assertEqual(stats, {INFO_HASH: ScrapeStats(4, 5, 6), other: ScrapeStats(0, 0, 0)})

    def test_errors(self) -> None:
        """Refusals and store failures become BEP 15 errors; a forged id never reaches the store."""
        request = AnnounceRequest(INFO_HASH, PEER_B, 6882, 0, 0, 5)
        self.protocol.datagramReceived(encode_announce_request(self.connection ^ 1, 10, request),
                                       self.CLIENT)
        self.assertEqual(self.store.calls, [])
        self.transport.written.clear()
        for transaction in (11, 12):
            self.protocol.datagramReceived(
                encode_announce_request(self.connection, transaction, request), self.CLIENT)
        self.store.calls[0][2].errback(RequestRefused("peer_id in use by another peer"))
        self.store.calls[1][2].errback(ConnectionError("redis down"))
        errors = []
        for (reply, _), transaction in zip(self.transport.written, (11, 12)):
            with self.assertRaises(UDPTrackerError) as caught:
                decode_announce_response(reply, transaction)
            errors.append(str(caught.exception))
        self.assertIn("peer_id in use", errors[0])
        self.assertIn("tracker storage unavailable", errors[1])
        self.assertEqual(len(self.flushLoggedErrors(ConnectionError)), 1)
