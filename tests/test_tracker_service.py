"""Tests for txbittorrent.tracker.service (TrackerService) through real sockets on 127.0.0.1."""

from __future__ import annotations

import random
import struct
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.static import Data

from txbittorrent.core.bencoding import decode
from txbittorrent.core.tracker.announce import (
    AnnounceEvent,
    AnnounceRequest,
    ScrapeStats,
    TrackerFailure,
    announce_url,
)
from txbittorrent.core.tracker.stats import TrackerStats
from txbittorrent.core.tracker.udp import encode_connect_request
from txbittorrent.tracker.client import HTTPTrackerClient, UDPTrackerClient
from txbittorrent.tracker.private import Passkeys, TransferLedger
from txbittorrent.tracker.service import TrackerService
from txbittorrent.tracker.serverconfig import TrackerServerConfig, load_whitelist

INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
OTHER_HASH = bytes(range(20))
PEER_A = b"-TX0010-aaaaaaaaaaaa"
PEER_B = b"-TX0010-bbbbbbbbbbbb"
LOOPBACK_CONFIG = TrackerServerConfig(
    http=("tcp:0:interface=127.0.0.1",), udp_ports=(0,), interval=120, min_interval=60,
    tracker_id=b"tid-1",
)


def request(peer_id: bytes = PEER_A, port: int = 7001, **changes: Any) -> AnnounceRequest:
    fields: dict[str, Any] = dict(info_hash=INFO_HASH, peer_id=peer_id, port=port,
                                  uploaded=0, downloaded=0, left=10)
    fields.update(changes)
    return AnnounceRequest(**fields)


class ServiceCase(TestCase):
    """A started TrackerService and clients, all stopped at the end."""

    timeout = 20

    async def start(self, config: TrackerServerConfig = LOOPBACK_CONFIG,
                    **kwargs: Any) -> TrackerService:
        service = TrackerService(config, reactor=reactor, rng=random.Random(3), **kwargs)
        service.startService()
        assert service.started is not None
        await service.started
        self.addCleanup(service.stopService)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.http = HTTPTrackerClient(HTTPClient(Agent(reactor, pool=pool)), reactor, timeout=10)
        self.udp = UDPTrackerClient(reactor, random.Random(4), interface4="127.0.0.1")
        self.udp.start()
        self.addCleanup(self.udp.stop)
        self.base = service.announce_urls()[0].rsplit("/", 1)[0]
        return service

    async def get(self, path: str, **kwargs: Any) -> tuple[int, bytes]:
        response = await treq.get(self.base + path, persistent=False, **kwargs)
        return response.code, await response.content()


class TrackerServiceTests(ServiceCase):
    """Announce and scrape over both protocols; the service's seams."""

    def test_http_and_udp(self) -> Deferred[None]:
        """Peers over HTTP and UDP meet; scrape counts them; tracker id comes back."""
        return ensureDeferred(self._both())

    async def _both(self) -> None:
        service = await self.start()
        http_url, udp_url = service.announce_urls()
        self.assertTrue(udp_url.startswith("udp://127.0.0.1:"))
        first = await self.http.announce(http_url, request(event=AnnounceEvent.STARTED))
        self.assertEqual((first.tracker_id, first.min_interval), (b"tid-1", 60))
        second = await self.udp.announce(udp_url, request(PEER_B, 7002, left=0))
        self.assertEqual(second.peers, (("127.0.0.1", 7001),))
        self.assertEqual(await self.http.scrape(http_url, [INFO_HASH]),
                         {INFO_HASH: ScrapeStats(1, 0, 1)})
        self.assertEqual(await self.udp.scrape(udp_url, [INFO_HASH]),
                         {INFO_HASH: ScrapeStats(1, 0, 1)})

    def test_site_root_children(self) -> Deferred[None]:
        """A resource put on site_root is served beside /announce."""
        return ensureDeferred(self._children())

    async def _children(self) -> None:
        service = await self.start()
        api = Resource()  # type: ignore[no-untyped-call]
        api.putChild(b"status", Data(b"ok", "text/plain"))  # type: ignore[no-untyped-call]
        service.site_root.putChild(b"api", api)  # type: ignore[no-untyped-call]
        self.assertEqual(await self.get("/api/status"), (200, b"ok"))
        self.assertEqual((await self.get("/nothing"))[0], 404)
        self.assertEqual((await self.get("/"))[0], 404)

    def test_private_mode(self) -> Deferred[None]:
        """With passkeys: /<passkey>/announce works, other paths do not; transfer is accounted."""
        return ensureDeferred(self._private())

    async def _private(self) -> None:
        ledger = TransferLedger()
        service = await self.start(passkeys=Passkeys({"s3cret": "alice"}), on_transfer=ledger)
        _, udp_url = service.announce_urls()
        await self.http.announce(self.base + "/s3cret/announce", request(uploaded=100))
        await self.http.announce(self.base + "/s3cret/announce", request(uploaded=250))
        await self.udp.announce(udp_url.replace("/announce", "/s3cret/announce"),
                                request(PEER_B, 7002, downloaded=30))
        totals = ledger.totals["alice"]
        self.assertEqual((totals.uploaded, totals.downloaded), (250, 30))
        with self.assertRaises(TrackerFailure) as caught:
            await self.http.announce(self.base + "/wrong/announce", request())
        self.assertEqual(caught.exception.reason, "unknown passkey")
        self.assertEqual((await self.get("/announce"))[0], 404)
        with self.assertRaises(Exception):
            await self.udp.announce(udp_url, request())
        scraped = await self.http.scrape(self.base + "/s3cret/announce", [INFO_HASH])
        self.assertEqual(scraped, {INFO_HASH: ScrapeStats(0, 0, 2)})

    def test_whitelist(self) -> Deferred[None]:
        """A closed tracker refuses torrents not on its whitelist."""
        return ensureDeferred(self._whitelist())

    async def _whitelist(self) -> None:
        config = TrackerServerConfig(http=("tcp:0:interface=127.0.0.1",), udp_ports=(),
                                     whitelist=load_whitelist(OTHER_HASH.hex() + "\n# c\n"))
        service = await self.start(config)
        with self.assertRaises(TrackerFailure) as caught:
            await self.http.announce(service.announce_urls()[0], request())
        self.assertEqual(caught.exception.reason, "unregistered torrent")
        await self.http.announce(service.announce_urls()[0], request(info_hash=OTHER_HASH))

    def test_full_scrape(self) -> Deferred[None]:
        """A scrape without info_hash lists every torrent only when allowed."""
        return ensureDeferred(self._full())

    async def _full(self) -> None:
        config = TrackerServerConfig(http=("tcp:0:interface=127.0.0.1",), udp_ports=(),
                                     full_scrape=True)
        service = await self.start(config)
        await self.http.announce(service.announce_urls()[0], request())
        code, body = await self.get("/scrape")
        self.assertEqual(list(decode(body)[b"files"]), [INFO_HASH])
        service.http_resource.full_scrape = False
        code, body = await self.get("/scrape")
        self.assertIn(b"failure reason", decode(body))

    def test_port_taken(self) -> Deferred[None]:
        """When a listener cannot listen, started fails and the others are closed."""
        return ensureDeferred(self._taken())

    async def _taken(self) -> None:
        first = await self.start(TrackerServerConfig(http=(), udp_ports=(0,)))
        taken = first.udp_ports[0].getHost().port
        second = TrackerService(
            TrackerServerConfig(http=("tcp:0:interface=127.0.0.1",), udp_ports=(0, taken)),
            reactor=reactor)
        second.startService()
        assert second.started is not None
        with self.assertRaises(CannotListenError):
            await second.started
        self.assertEqual((second.http_ports, second.udp_ports), ([], []))
        await second.stopService()


class AbuseTests(ServiceCase):
    """Hostile HTTP requests against a running service."""

    def test_ip_spoofing(self) -> Deferred[None]:
        """ip= and X-Forwarded-For are ignored from an untrusted address, believed from a proxy."""
        return ensureDeferred(self._spoof())

    async def _spoof(self) -> None:
        service = await self.start()
        url = announce_url(self.base + "/announce", request(ip="198.51.100.7"))
        await self.get(url[len(self.base):], headers={"X-Forwarded-For": ["203.0.113.9"]})
        self.assertEqual([p.ip for p in service.state.peers(INFO_HASH)], ["127.0.0.1"])
        await service.stopService()
        config = TrackerServerConfig(http=("tcp:0:interface=127.0.0.1",), udp_ports=(),
                                     trusted_proxies=("127.0.0.1",))
        proxied = await self.start(config)
        await self.get("/announce" + url.partition("/announce")[2].replace(
            "ip=198.51.100.7", "ip="), headers={"X-Forwarded-For": ["10.9.9.9, 203.0.113.9"]})
        self.assertEqual([p.ip for p in proxied.state.peers(INFO_HASH)], ["203.0.113.9"])
        await self.get("/announce" + url.partition("/announce")[2].replace(PEER_A.decode()[-4:],
                                                                           "zzzz"))
        self.assertIn("198.51.100.7", [p.ip for p in proxied.state.peers(INFO_HASH)])

    def test_long_query(self) -> Deferred[None]:
        """A query over the cap gets 414 and a failure reason."""
        return ensureDeferred(self._long())

    async def _long(self) -> None:
        await self.start()
        code, body = await self.get("/announce?x=" + "a" * 9000)
        self.assertEqual(code, 414)
        self.assertIn(b"failure reason", decode(body))

    def test_big_body_and_no_access_log(self) -> Deferred[None]:
        """A body over 64 KiB is refused (413) before it is read; requests
        leave no access-log line (they would carry info hashes and peer ids)."""
        return ensureDeferred(self._big_body())

    async def _big_body(self) -> None:
        service = await self.start()
        response = await treq.post(self.base + "/announce", data=b"x" * (65 * 1024),
                                   persistent=False)
        await response.content()
        self.assertEqual(response.code, 413)
        logged: list[Any] = []
        self.patch(service.site, "_logFormatter", lambda *a: logged.append(a) or "line")
        await self.get("/nothing")
        self.assertEqual(logged, [])

    def test_numwant_huge(self) -> Deferred[None]:
        """numwant=10**9 over HTTP gets at most max_numwant peers."""
        return ensureDeferred(self._numwant())

    async def _numwant(self) -> None:
        config = TrackerServerConfig(http=("tcp:0:interface=127.0.0.1",), udp_ports=(),
                                     max_numwant=5)
        service = await self.start(config)
        url = service.announce_urls()[0]
        for n in range(12):
            await self.http.announce(url, request(b"%020d" % n, 2000 + n))
        reply = await self.http.announce(url, request(numwant=10**9 - 1))
        self.assertEqual(len(reply.peers), 5)

    def test_flood(self) -> Deferred[None]:
        """An announce flood from one address hits the rate limit; the rest is refused."""
        return ensureDeferred(self._flood())

    async def _flood(self) -> None:
        config = TrackerServerConfig(http=("tcp:0:interface=127.0.0.1",), udp_ports=(),
                                     rate_limit=20)
        service = await self.start(config)
        url = service.announce_urls()[0]
        refused = 0
        for n in range(40):
            try:
                await self.http.announce(url, request(b"%020d" % n, 2000 + n))
            except TrackerFailure as e:
                self.assertEqual(e.reason, "rate limited")
                refused += 1
        self.assertGreaterEqual(refused, 19)
        self.assertLessEqual(len(service.state.peers(INFO_HASH)), 21)


class RawUDP(DatagramProtocol):
    """Collects datagrams; ``next_reply()`` fires with the next one."""

    def __init__(self) -> None:
        self.replies: list[bytes] = []
        self._waiting: list[Deferred[bytes]] = []

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.replies.append(datagram)
        if self._waiting:
            self._waiting.pop(0).callback(datagram)

    def next_reply(self) -> Deferred[bytes]:
        d: Deferred[bytes] = Deferred()
        self._waiting.append(d)
        return d.addTimeout(5, reactor)


class UDPAbuseTests(ServiceCase):
    """Hostile datagrams to the service's real UDP port."""

    def test_hostile_datagrams(self) -> Deferred[None]:
        """Forged ids get an error no longer than the request; oversized ones nothing."""
        return ensureDeferred(self._hostile())

    async def _hostile(self) -> None:
        service = await self.start()
        port = service.udp_ports[0].getHost().port
        raw = RawUDP()
        listener = reactor.listenUDP(0, raw, interface="127.0.0.1")
        self.addCleanup(listener.stopListening)
        forged = struct.pack(">QII", 0x0123456789ABCDEF, 1, 77)
        reply = raw.next_reply()
        raw.transport.write(forged, ("127.0.0.1", port))
        error = await reply
        self.assertLessEqual(len(error), len(forged))
        self.assertEqual(struct.unpack_from(">II", error), (3, 77))
        # An oversized scrape, then a connect: only the connect is answered.
        raw.replies.clear()
        reply = raw.next_reply()
        raw.transport.write(struct.pack(">QII", 1, 2, 78) + b"h" * 3000, ("127.0.0.1", port))
        raw.transport.write(encode_connect_request(79), ("127.0.0.1", port))
        connected = await reply
        self.assertEqual(struct.unpack_from(">II", connected), (0, 79))
        self.assertEqual(raw.replies, [connected])


class DualStackTests(ServiceCase):
    """Listeners on 127.0.0.1 and ::1 share one registry: peers6 and UDP over IPv6."""

    def test_ipv6_peers(self) -> Deferred[None]:
        """An IPv6 peer (UDP over ::1) is given to an HTTP client in peers6,
        and an HTTP client over ::1 is answered too."""
        return ensureDeferred(self._dual())

    async def _dual(self) -> None:
        config = TrackerServerConfig(
            http=("tcp:0:interface=127.0.0.1", r"tcp6:0:interface=\:\:1"), udp_ports=(0,),
            udp_interfaces=("::1",))
        service = await self.start(config)
        urls = service.announce_urls()
        self.assertTrue(urls[1].startswith("http://[::1]:") and urls[2].startswith("udp://[::1]:"))
        udp6 = UDPTrackerClient(reactor, random.Random(5), interface4=None, interface6="::1")
        udp6.start()
        self.addCleanup(udp6.stop)
        first = await udp6.announce(urls[2], request(PEER_B, 7002))
        self.assertEqual(first.peers6, ())
        over_http = await self.http.announce(urls[0], request())
        self.assertEqual((over_http.peers, over_http.peers6), ((), (("::1", 7002),)))
        again = await udp6.announce(urls[2], request(PEER_B, 7002))
        self.assertEqual(again.peers6, ())  # UDP over IPv6 carries IPv6 peers only
        self.assertEqual(service.http_ports[1].getHost().host, "::1")
        # HTTP over ::1 too: the peer is recorded under its IPv6 address
        over_http6 = await self.http.announce(urls[1], request(b"-TX0010-dddddddddddd", 7003))
        self.assertIn(("::1", 7002), over_http6.peers6)


class StatsHookTests(ServiceCase):
    """The listeners count requests into the service's TrackerStats."""

    def test_counts(self) -> Deferred[None]:
        """HTTP and UDP announces, scrapes and refusals are counted by protocol."""
        return ensureDeferred(self._counts())

    async def _counts(self) -> None:
        stats = TrackerStats(reactor.seconds)
        service = await self.start(stats=stats)
        http_url, udp_url = service.announce_urls()
        await self.http.announce(http_url, request())
        await self.http.scrape(http_url, [INFO_HASH])
        await self.udp.announce(udp_url, request(PEER_B, 7002))
        with self.assertRaises(TrackerFailure):
            await self.http.announce(http_url, request(ip="bogus", event=None, port=0))
        self.assertEqual(
            [stats.total(kind, protocol) for kind in ("announce", "scrape", "error")
             for protocol in ("http", "udp")],
            [1, 1, 1, 0, 1, 0])
