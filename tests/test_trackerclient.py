"""Tests for txbittorrent.tracker.client: HTTP over StubTreq, UDP over an in-memory network."""

from __future__ import annotations

import gzip
import random
from typing import Any, Callable

from treq.testing import StubTreq
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.error import CannotListenError, ConnectionRefusedError, DNSLookupError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txbittorrent.core.tracker.announce import (
    AnnounceEvent,
    AnnounceRequest,
    AnnounceResponse,
    ScrapeStats,
    TrackerFailure,
    encode_announce_response,
    encode_failure,
)
from txbittorrent.core.bencoding import encode
from txbittorrent.core.tracker.registry import Announce, TrackerState, parse_query
from txbittorrent.core.tracker.udp import MAX_N, UDPTrackerError, transaction_id_of
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError
from txbittorrent.net.udp import DatagramMux, is_krpc
from txbittorrent.tracker.server import UDPTrackerProtocol
from txbittorrent.tracker.client import (
    HTTPTrackerClient,
    TrackerConnectionError,
    TrackerHTTPError,
    TrackerTimeoutError,
    TrackerURLError,
    UDPTrackerClient,
)

INFO_HASH = bytes(range(0x20, 0x34))  # includes ' ', '%', '+', '&' and '/'
PEER_ID = b"-TX0010-\x00\xff&=+%#?/ 12"
REQUEST = AnnounceRequest(INFO_HASH, PEER_ID, 6881, 1, 2, 3, event=AnnounceEvent.STARTED)
REPLY = AnnounceResponse(interval=900, complete=2, incomplete=5,
                         peers=(("10.0.0.1", 6881), ("10.0.0.2", 51413)))
SECRET = b"0123456789abcdef"


class CannedResource(Resource):
    """Answers every GET with ``handler(request)`` and remembers the requests' queries."""

    isLeaf = True

    def __init__(self, handler: Callable[[Request], Any]) -> None:
        super().__init__()
        self.handler = handler
        self.queries: list[dict[bytes, list[bytes]]] = []
        self.requests: list[Request] = []

    def render_GET(self, request: Request) -> Any:
        self.queries.append(parse_query(request.uri.partition(b"?")[2]))
        self.requests.append(request)
        return self.handler(request)


def body(data: bytes, code: int = 200, **headers: str) -> Callable[[Request], bytes]:
    """A handler answering ``data`` with status ``code`` and ``headers``."""

    def handler(request: Request) -> bytes:
        request.setResponseCode(code)
        for name, value in headers.items():
            request.setHeader(name.replace("_", "-").encode(), value.encode())
        return data

    return handler


class HTTPTrackerClientTests(SynchronousTestCase):
    """HTTPTrackerClient against canned tracker replies through StubTreq."""

    def client(self, handler: Callable[[Request], Any], **options: Any) -> Any:
        """A client over a StubTreq of ``handler``; sets self.stub/resource/clock."""
        self.clock = Clock()
        self.resource = CannedResource(handler)
        self.stub = StubTreq(self.resource)
        return HTTPTrackerClient(self.stub, self.clock, **options)

    def announce(self, client: HTTPTrackerClient, url: str = "http://t.test/announce") -> Any:
        """Announce REQUEST and deliver everything in memory."""
        d = client.announce(url, REQUEST)
        self.stub.flush()
        return d

    def test_compact(self) -> None:
        """A compact reply is parsed; the request's bytes arrive intact."""
        client = self.client(body(encode_announce_response(REPLY)))
        self.assertEqual(self.successResultOf(self.announce(client)), REPLY)
        [query] = self.resource.queries
        self.assertEqual((query[b"info_hash"], query[b"peer_id"]), ([INFO_HASH], [PEER_ID]))
        self.assertEqual(query[b"event"], [b"started"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_ipv6_literal_host(self) -> None:
        """A tracker URL with an IPv6 literal host (http://[::1]:port/) is
        announced to (treq's IDNA step used to refuse "::1")."""
        client = self.client(body(encode_announce_response(REPLY)))
        d = self.announce(client, "http://[::1]:6969/announce")
        self.assertEqual(self.successResultOf(d), REPLY)
        [query] = self.resource.queries
        self.assertEqual(query[b"info_hash"], [INFO_HASH])

    def test_dictionary_peers(self) -> None:
        """A reply with dictionary peers is parsed."""
        raw = encode({b"interval": 900, b"peers": [{b"ip": b"10.0.0.1", b"port": 6881,
                                                    b"peer id": b"x" * 20}]})
        response = self.successResultOf(self.announce(self.client(body(raw))))
        self.assertEqual(response.peers, (("10.0.0.1", 6881),))

    def test_peers6(self) -> None:
        """BEP 7 peers6 land in AnnounceResponse.peers6."""
        reply = AnnounceResponse(interval=900, peers6=(("::1", 6881),))
        response = self.successResultOf(
            self.announce(self.client(body(encode_announce_response(reply))))
        )
        self.assertEqual(response.peers6, (("::1", 6881),))

    def test_failure_reason(self) -> None:
        """A failure reason fails the Deferred with TrackerFailure."""
        failure = self.failureResultOf(
            self.announce(self.client(body(encode_failure("go away")))), TrackerFailure
        )
        self.assertEqual(failure.value.reason, "go away")

    def test_garbage(self) -> None:
        """A body that is not bencoding is a RemoteProtocolError."""
        self.failureResultOf(self.announce(self.client(body(b"<html>"))), RemoteProtocolError)

    def test_oversized_body(self) -> None:
        """A body over the cap fails, and the connection is closed."""
        client = self.client(lambda request: self._stream(request, b"x" * 600),
                             max_response_size=500)
        failure = self.failureResultOf(self.announce(client), RemoteProtocolError)
        self.assertIn("longer than 500", str(failure.value))
        self.assertTrue(self.closed)

    def test_declared_length_over_cap(self) -> None:
        """A Content-Length over the cap is refused before the body is read."""
        client = self.client(body(b"d8:intervali900ee" + b" " * 600), max_response_size=500)
        failure = self.failureResultOf(self.announce(client), RemoteProtocolError)
        self.assertIn("too long", str(failure.value))

    def test_gzip_capped_after_decompression(self) -> None:
        """gzip bodies are decoded; the cap applies to the decoded size."""
        small = encode_announce_response(REPLY)
        client = self.client(body(gzip.compress(small), content_encoding="gzip"))
        self.assertEqual(self.successResultOf(self.announce(client)), REPLY)
        bomb = gzip.compress(b"d8:intervali900e5:peers" + b" " * 5000)
        self.assertLess(len(bomb), 500)
        client = self.client(body(bomb, content_encoding="gzip"), max_response_size=500)
        self.failureResultOf(self.announce(client), RemoteProtocolError)

    def test_non_200(self) -> None:
        """A status other than 200 is a TrackerHTTPError carrying the status."""
        failure = self.failureResultOf(self.announce(self.client(body(b"busy", 503))),
                                       TrackerHTTPError)
        self.assertEqual(failure.value.status, 503)

    def test_redirect_followed(self) -> None:
        """A redirect is followed to its (relative) Location."""

        def handler(request: Request) -> bytes:
            if request.path == b"/announce":
                request.setResponseCode(302)
                request.setHeader(b"location", b"/real/announce?passkey=1")
                return b""
            return encode_announce_response(REPLY)

        self.assertEqual(self.successResultOf(self.announce(self.client(handler))), REPLY)
        self.assertEqual([r.path for r in self.resource.requests],
                         [b"/announce", b"/real/announce"])

    def test_redirects_bounded(self) -> None:
        """A redirect loop stops after max_redirects hops."""
        client = self.client(body(b"", 301, location="/announce"), max_redirects=3)
        failure = self.failureResultOf(self.announce(client), RemoteProtocolError)
        self.assertIn("more than 3 redirects", str(failure.value))
        self.assertEqual(len(self.resource.requests), 4)

    def test_bad_redirects(self) -> None:
        """A redirect without Location, or to a non-HTTP URL, is an error."""
        for handler in (body(b"", 302), body(b"", 307, location="udp://t.test:80/")):
            self.failureResultOf(self.announce(self.client(handler)), RemoteProtocolError)

    def test_timeout(self) -> None:
        """A tracker that never answers times out with TrackerTimeoutError, leaving no timer."""
        client = self.client(lambda request: NOT_DONE_YET, timeout=30)
        d = self.announce(client)
        self.clock.advance(29)
        self.assertNoResult(d)
        self.clock.advance(1)
        self.stub.flush()
        self.failureResultOf(d, TrackerTimeoutError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_timeout_mid_body(self) -> None:
        """A body that stalls times out and its connection is closed."""

        def handler(request: Request) -> Any:
            request.setHeader(b"content-length", b"100")
            request.write(b"d8:interval")
            self._watch(request)
            return NOT_DONE_YET

        d = self.announce(self.client(handler, timeout=10))
        self.assertNoResult(d)
        self.clock.advance(10)
        self.stub.flush()
        self.failureResultOf(d, TrackerTimeoutError)
        self.assertTrue(self.closed)

    def test_cancel(self) -> None:
        """Cancelling an announce fails it with CancelledError and leaves no timer."""
        d = self.announce(self.client(lambda request: NOT_DONE_YET))
        d.cancel()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_connection_refused(self) -> None:
        """A connection failure is a TrackerConnectionError."""

        class Refusing:
            def get(self, url: str, **kwargs: Any) -> Deferred[Any]:
                return fail(ConnectionRefusedError())

        d = HTTPTrackerClient(Refusing(), Clock()).announce("http://t.test/announce", REQUEST)
        self.failureResultOf(d, TrackerConnectionError)

    def test_url_checks(self) -> None:
        """Only http and https URLs are accepted; scrape needs an 'announce' path."""
        client = self.client(body(b""))
        self.failureResultOf(client.announce("udp://t.test:80/announce", REQUEST),
                             TrackerURLError)
        self.failureResultOf(client.scrape("http://t.test/tracker", [INFO_HASH]),
                             TrackerURLError)

    def test_scrape(self) -> None:
        """scrape() asks the BEP 48 scrape URL and parses the files dictionary."""
        reply = encode({b"files": {INFO_HASH: {b"complete": 1, b"downloaded": 2,
                                               b"incomplete": 3}}})
        client = self.client(body(reply))
        d = client.scrape("https://t.test/announce.php?key=9", [INFO_HASH])
        self.stub.flush()
        self.assertEqual(self.successResultOf(d), {INFO_HASH: ScrapeStats(1, 2, 3)})
        self.assertEqual(self.resource.requests[0].path, b"/scrape.php")

    # -- helpers --

    closed = False

    def _watch(self, request: Request) -> None:
        """Set self.closed when the server sees the connection go."""
        request.notifyFinish().addErrback(lambda _: setattr(self, "closed", True))

    def _stream(self, request: Request, data: bytes) -> Any:
        """Write ``data`` without a Content-Length, then never finish."""
        self._watch(request)
        request.write(data)
        return NOT_DONE_YET


# -- UDP ----------------------------------------------------------------------


class FakeUDPPort:
    """A bound UDP socket on a FakeUDPNetwork."""

    def __init__(self, network: FakeUDPNetwork, protocol: Any, address: tuple[str, int]):
        self.network = network
        self.protocol = protocol
        self.address = address
        self.closed = False

    def write(self, datagram: bytes, addr: tuple[str, int]) -> None:
        self.network.queue.append((self.address, (addr[0], addr[1]), datagram))

    def getHost(self) -> Any:
        host, port = self.address
        return (IPv6Address if ":" in host else IPv4Address)("UDP", host, port)

    def stopListening(self) -> None:
        self.closed = True
        del self.network.ports[self.address]
        self.protocol.doStop()


class FakeUDPNetwork:
    """Datagrams between protocols in memory, delivered on flush(); optionally dropped."""

    def __init__(self) -> None:
        self.ports: dict[tuple[str, int], FakeUDPPort] = {}
        self.queue: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
        self.log: list[tuple[tuple[str, int], tuple[str, int], bytes]] = []
        self.drop: Callable[[bytes], bool] = lambda datagram: False
        self._next = 50000

    def listenUDP(self, port: int, protocol: Any, interface: str = "",
                  maxPacketSize: int = 8192) -> FakeUDPPort:
        if not port:
            port, self._next = self._next, self._next + 1
        transport = FakeUDPPort(self, protocol, (interface or "0.0.0.0", port))
        self.ports[transport.address] = transport
        protocol.makeConnection(transport)
        return transport

    def flush(self) -> None:
        while self.queue:
            source, target, datagram = self.queue.pop(0)
            self.log.append((source, target, datagram))
            if self.drop(datagram):
                continue
            wildcard = "::" if ":" in target[0] else "0.0.0.0"
            port = self.ports.get(target) or self.ports.get((wildcard, target[1]))
            if port is None:
                continue
            if source[0] in ("0.0.0.0", "::"):
                source = (target[0], source[1])
            port.protocol.datagramReceived(datagram, source)


class FakeReactor(Clock):
    """A Clock with listenUDP on a FakeUDPNetwork and a resolver that knows localhost."""

    def __init__(self, network: FakeUDPNetwork) -> None:
        super().__init__()
        self.network = network

    def listenUDP(self, port: int, protocol: Any, interface: str = "",
                  maxPacketSize: int = 8192) -> FakeUDPPort:
        return self.network.listenUDP(port, protocol, interface, maxPacketSize)

    def resolve(self, name: str) -> Deferred[str]:
        if name == "localhost":
            return succeed("127.0.0.1")
        return fail(DNSLookupError(name))


def is_connect(datagram: bytes) -> bool:
    """Whether ``datagram`` is a BEP 15 connect request."""
    return len(datagram) == 16 and datagram[8:12] == b"\x00\x00\x00\x00"


class UDPTrackerClientTests(SynchronousTestCase):
    """UDPTrackerClient against UDPTrackerProtocol on an in-memory network."""

    def setUp(self) -> None:
        self.network = FakeUDPNetwork()
        self.reactor = FakeReactor(self.network)
        self.state = TrackerState(random.Random(1), interval=600)
        self.tracker = UDPTrackerProtocol(self.state, SECRET, self.reactor)
        self.network.listenUDP(6969, self.tracker, "127.0.0.1")
        self.client = UDPTrackerClient(self.reactor, random.Random(2))
        self.client.start()

    def announce(self, url: str = "udp://127.0.0.1:6969/announce",
                 request: AnnounceRequest = REQUEST) -> Any:
        d = self.client.announce(url, request)
        self.network.flush()
        return d

    def sent_by_client(self) -> list[bytes]:
        """Datagrams the client sent, in order."""
        return [d for source, _, d in self.network.log if source[1] != 6969]

    def test_announce(self) -> None:
        """An announce connects, announces and fires with the reply; no timer is left."""
        self.state.announce(Announce(INFO_HASH, b"P" * 20, "127.0.0.1", 7000, 5), 0)
        response = self.successResultOf(self.announce())
        self.assertEqual((response.peers, response.interval, response.incomplete),
                         ((("127.0.0.1", 7000),), 600, 2))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        [record] = [r for r in self.state.peers(INFO_HASH) if r.peer_id == PEER_ID]
        self.assertEqual((record.port, record.left), (6881, 3))

    def test_retransmissions(self) -> None:
        """With no reply, the request is resent at 15, 45 and 105 s, then times out."""
        self.network.drop = lambda datagram: True
        d = self.announce()
        times = [0.0]
        for step in (15, 30, 60):
            self.reactor.advance(step - 0.5)
            self.network.flush()
            self.assertEqual(len(self.sent_by_client()), len(times))
            self.reactor.advance(0.5)
            self.network.flush()
            times.append(self.reactor.seconds())
        self.assertEqual(times, [0, 15, 45, 105])
        self.assertEqual(len(self.sent_by_client()), 3)
        self.assertTrue(all(is_connect(d) for d in self.sent_by_client()))
        self.failureResultOf(d, TrackerTimeoutError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_bep15_max_n(self) -> None:
        """With max_n=MAX_N the client makes BEP 15's nine tries, over 7665 s."""
        self.network.drop = lambda datagram: True
        client = UDPTrackerClient(self.reactor, random.Random(2), max_n=MAX_N)
        client.start()
        d = client.announce("udp://127.0.0.1:6969", REQUEST)
        for n in range(8):
            self.reactor.advance(15 * 2**n)
        self.reactor.advance(15 * 2**8 - 1)
        self.network.flush()
        self.assertNoResult(d)
        self.assertEqual(len(self.sent_by_client()), 9)
        self.assertEqual(self.reactor.seconds(), 15 * (2**9 - 1) - 1)
        self.reactor.advance(1)
        self.failureResultOf(d, TrackerTimeoutError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_lost_reply_recovered(self) -> None:
        """A lost connect reply is recovered by the retransmission at 15 s."""
        dropped: list[bytes] = []

        def drop_once(datagram: bytes) -> bool:
            if len(datagram) == 16 and datagram[:4] == bytes(4) and not dropped:  # connect reply
                dropped.append(datagram)
                return True
            return False

        self.network.drop = drop_once
        d = self.announce()
        self.assertNoResult(d)
        self.reactor.advance(15)
        self.network.flush()
        self.successResultOf(d)
        self.assertEqual(len(dropped), 1)

    def test_connection_id_reused(self) -> None:
        """A second announce within 60 s skips the connect; after 60 s it connects again."""
        self.successResultOf(self.announce())
        self.reactor.advance(59)
        self.successResultOf(self.announce())
        self.assertEqual([is_connect(d) for d in self.sent_by_client()], [True, False, False])
        self.reactor.advance(1)
        self.successResultOf(self.announce())
        self.assertEqual([is_connect(d) for d in self.sent_by_client()],
                         [True, False, False, True, False])

    def test_error_packet(self) -> None:
        """An error packet fails the announce with UDPTrackerError and its message."""
        self.state.allowed = frozenset()
        failure = self.failureResultOf(self.announce(), UDPTrackerError)
        self.assertEqual(failure.value.message, "unregistered torrent")

    def test_wrong_source_ignored(self) -> None:
        """A reply from another address than the tracker's is ignored."""
        self.network.listenUDP(6970, UDPTrackerProtocol(self.state, SECRET, self.reactor),
                               "127.0.0.1")
        d = self.announce("udp://127.0.0.1:6970/announce")
        connect = self.sent_by_client()[-1]
        forged = b"\x00\x00\x00\x00" + connect[12:16] + b"\x00" * 8
        self.client._datagram_received(forged, ("127.0.0.2", 6970))
        self.network.flush()
        self.successResultOf(d)

    def test_stop(self) -> None:
        """stop() fails pending announces, cancels every timer and closes the socket."""
        self.network.drop = lambda datagram: True
        d = self.announce()
        self.assertTrue(self.reactor.getDelayedCalls())
        ports = [p for a, p in self.network.ports.items() if a[1] != 6969]
        self.successResultOf(self.client.stop())
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertTrue(all(p.closed for p in ports))
        self.failureResultOf(self.client.announce("udp://127.0.0.1:6969", REQUEST),
                             LocalProtocolError)

    def test_cancel(self) -> None:
        """Cancelling one announce removes its timer; a late reply is ignored."""
        d = self.client.announce("udp://127.0.0.1:6969/announce", REQUEST)
        d.cancel()
        self.network.flush()
        self.failureResultOf(d, CancelledError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_localhost_resolved(self) -> None:
        """A host name is resolved with the reactor's resolver."""
        self.successResultOf(self.announce("udp://localhost:6969/announce"))

    def test_unresolvable(self) -> None:
        """A name that does not resolve is a TrackerConnectionError."""
        self.failureResultOf(self.announce("udp://nowhere.invalid:6969"),
                             TrackerConnectionError)

    def test_ipv6(self) -> None:
        """A tracker on ::1 is reached from a second, IPv6 socket; peers come in peers6."""
        self.network.listenUDP(6969, UDPTrackerProtocol(self.state, SECRET, self.reactor), "::1")
        self.state.announce(Announce(INFO_HASH, b"P" * 20, "::1", 7000, 5), 0)
        self.state.announce(Announce(INFO_HASH, b"Q" * 20, "127.0.0.1", 7001, 5), 0)
        response = self.successResultOf(self.announce("udp://[::1]:6969/announce"))
        self.assertEqual((response.peers, response.peers6), ((), (("::1", 7000),)))
        self.assertIn(("::", 50000), self.network.ports)

    def test_bad_urls(self) -> None:
        """A URL that is not udp://host:port fails with TrackerURLError."""
        for url in ("http://127.0.0.1:6969/", "udp://127.0.0.1/announce"):
            self.failureResultOf(self.client.announce(url, REQUEST), TrackerURLError)

    def test_scrape(self) -> None:
        """A UDP scrape returns stats per info hash."""
        self.successResultOf(self.announce())
        d = self.client.scrape("udp://127.0.0.1:6969", [INFO_HASH])
        self.network.flush()
        self.assertEqual(self.successResultOf(d), {INFO_HASH: ScrapeStats(0, 0, 1)})

    def test_transaction_ids_from_rng(self) -> None:
        """Transaction ids come from the injected rng."""
        self.announce()
        expected = random.Random(2).getrandbits(32)
        self.assertEqual(int.from_bytes(self.sent_by_client()[0][12:16], "big"), expected)
        reply = [d for source, _, d in self.network.log if source[1] == 6969][0]
        self.assertEqual(transaction_id_of(reply), expected)

    def test_binds_on_first_request(self) -> None:
        """start() binds nothing; the first request binds the private mux, both
        families on one port number."""
        self.assertEqual(list(self.network.ports), [("127.0.0.1", 6969)])
        self.successResultOf(self.announce())
        self.assertEqual(sorted(self.network.ports),
                         [("0.0.0.0", 50000), ("127.0.0.1", 6969), ("::", 50000)])
        mux = self.client.mux
        assert mux is not None
        self.assertTrue(mux.running)

    def test_bind_failure(self) -> None:
        """A private mux that cannot bind fails the request with TrackerConnectionError."""
        def refuse(port: int, protocol: Any, interface: str = "", maxPacketSize: int = 0) -> Any:
            make: Any = CannotListenError
            raise make(interface, port, PermissionError(13, "permission denied"))

        self.patch(self.reactor, "listenUDP", refuse)
        self.failureResultOf(self.announce(), TrackerConnectionError)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_claims_released(self) -> None:
        """The mux holds a claim only while a reply is awaited: none after a reply,
        a cancel or a time-out."""
        self.successResultOf(self.announce())
        mux = self.client.mux
        assert mux is not None
        self.assertEqual(mux.claimed, frozenset())
        self.network.drop = lambda datagram: True
        d = self.announce()
        self.assertEqual(len(mux.claimed), 1)
        d.cancel()
        self.failureResultOf(d, CancelledError)
        d = self.announce()
        for step in (15, 30, 60):
            self.reactor.advance(step)
        self.failureResultOf(d, TrackerTimeoutError)
        self.assertEqual(mux.claimed, frozenset())

    def test_private_mux_one_family(self) -> None:
        """interface6=None gives a private mux without an IPv6 socket."""
        client = UDPTrackerClient(self.reactor, random.Random(2), interface6=None)
        client.start()
        self.successResultOf(self.announce_with(client))
        self.assertEqual(sorted(self.network.ports), [("0.0.0.0", 50000), ("127.0.0.1", 6969)])
        self.failureResultOf(client.announce("udp://[::1]:6969/announce", REQUEST),
                             TrackerConnectionError)
        self.successResultOf(client.stop())
        self.assertEqual(sorted(self.network.ports), [("127.0.0.1", 6969)])

    def announce_with(self, client: UDPTrackerClient) -> Any:
        d = client.announce("udp://127.0.0.1:6969/announce", REQUEST)
        self.network.flush()
        return d

    def test_ipv4_mapped_tracker(self) -> None:
        """A tracker written as an IPv4-mapped IPv6 address is reached over IPv4."""
        self.state.announce(Announce(INFO_HASH, b"P" * 20, "127.0.0.1", 7000, 5), 0)
        response = self.successResultOf(self.announce("udp://[::ffff:127.0.0.1]:6969/announce"))
        self.assertEqual((response.peers, response.peers6), ((("127.0.0.1", 7000),), ()))
        self.assertTrue(all(source == ("0.0.0.0", 50000)
                            for source, target, _ in self.network.log if target[1] == 6969))


class SharedMuxTests(SynchronousTestCase):
    """UDPTrackerClients over a session's DatagramMux, beside a KRPC consumer."""

    def setUp(self) -> None:
        self.network = FakeUDPNetwork()
        self.reactor = FakeReactor(self.network)
        self.state = TrackerState(random.Random(1), interval=600)
        self.network.listenUDP(6969, UDPTrackerProtocol(self.state, SECRET, self.reactor),
                               "127.0.0.1")
        self.mux = DatagramMux(self.reactor)
        self.mux.start()
        self.krpc: list[tuple[bytes, tuple[str, int]]] = []
        self.mux.add_consumer(is_krpc, lambda datagram, address: self.krpc.append((datagram,
                                                                                   address)))
        self.bound = sorted(self.network.ports)

    def client(self, seed: int = 2, mux: DatagramMux | None = None) -> UDPTrackerClient:
        client = UDPTrackerClient(self.reactor, random.Random(seed), mux=mux or self.mux)
        client.start()
        return client

    def test_no_socket_of_its_own(self) -> None:
        """The client sends through the mux; its stop() leaves the mux's sockets open."""
        client = self.client()
        d = client.announce("udp://127.0.0.1:6969/announce", REQUEST)
        self.network.flush()
        self.successResultOf(d)
        self.assertEqual(sorted(self.network.ports), self.bound)
        self.successResultOf(client.stop())
        self.assertTrue(self.mux.running)
        self.assertEqual(sorted(self.network.ports), self.bound)
        self.assertEqual(self.mux.claimed, frozenset())

    def test_one_client_many_torrents(self) -> None:
        """One client serves announces of several torrents at once."""
        client = self.client()
        other = AnnounceRequest(b"\x01" * 20, PEER_ID, 6882, 0, 0, 9, event=AnnounceEvent.STARTED)
        first = client.announce("udp://127.0.0.1:6969/announce", REQUEST)
        second = client.announce("udp://127.0.0.1:6969/announce", other)
        self.network.flush()
        self.successResultOf(first)
        self.successResultOf(second)
        self.assertEqual((len(self.state.peers(INFO_HASH)), len(self.state.peers(b"\x01" * 20))),
                         (1, 1))

    def test_two_clients_one_mux(self) -> None:
        """Two clients on one mux each get the replies to their own transactions."""
        a, b = self.client(2), self.client(3)
        da = a.announce("udp://127.0.0.1:6969/announce", REQUEST)
        db = b.scrape("udp://127.0.0.1:6969", [INFO_HASH])
        self.network.flush()
        self.assertEqual(self.successResultOf(da).incomplete, 1)
        self.assertEqual(self.successResultOf(db), {INFO_HASH: ScrapeStats(0, 0, 1)})

    def test_krpc_beside(self) -> None:
        """KRPC datagrams on the same socket go to the DHT consumer, not to the client."""
        client = self.client()
        d = client.announce("udp://127.0.0.1:6969/announce", REQUEST)
        v4 = self.network.ports[("0.0.0.0", 50000)]
        v4.protocol.datagramReceived(b"d1:y1:qe", ("127.0.0.1", 6969))
        self.network.flush()
        self.successResultOf(d)
        self.assertEqual(self.krpc, [(b"d1:y1:qe", ("127.0.0.1", 6969))])

    def test_mux_not_started(self) -> None:
        """Over a mux that is not started, requests fail with TrackerConnectionError
        and the client binds nothing."""
        client = self.client(mux=DatagramMux(self.reactor))
        d = client.announce("udp://127.0.0.1:6969/announce", REQUEST)
        self.failureResultOf(d, TrackerConnectionError)
        self.assertEqual(sorted(self.network.ports), self.bound)
        self.assertEqual(self.reactor.getDelayedCalls(), [])

    def test_family_unavailable(self) -> None:
        """A tracker of a family the mux has no socket for fails with TrackerConnectionError."""
        mux = DatagramMux(self.reactor, interface6=None)
        mux.start()
        client = self.client(mux=mux)
        self.failureResultOf(client.announce("udp://[::1]:6969/announce", REQUEST),
                             TrackerConnectionError)
        self.assertEqual(mux.claimed, frozenset())
