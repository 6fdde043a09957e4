"""Our tracker and Debian's opentracker side by side on 127.0.0.1, sent the
same HTTP and UDP requests by raw clients of the test's own (Twisted's
``Agent`` for HTTP, without persistent connections; a
Twisted ``DatagramProtocol`` writing BEP 15 packets by hand).

Where both should agree, one check runs against both: the announce reply's
keys (``interval``, ``complete``, ``incomplete``, compact ``peers``), a
leecher given the seeder, ``numwant`` honoured and capped at 200,
``event=stopped`` removing the peer, scrape of one and several info hashes,
``ip=`` ignored from an untrusted address, and UDP connect, announce and
scrape, and a short error reply to a forged connection id.  Differences
checked: the requester in its own peer list and seeders given seeders
(opentracker), ``min interval`` and ``tracker id``, full scrape, malformed
requests and ``compact=0``, whitelist versus open mode, IPv6.

Where they differ, each one's behaviour is asserted and the test's docstring
says why.  Debian's opentracker (built with ``WANT_ACCESSLIST_WHITE``, IPv4
only) is started in whitelist mode with the test's info hashes, chrooted to a
temporary directory; our tracker runs in-process (``TrackerService``) in its
open default mode.  The process is killed in cleanup; every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import socket
import struct
from collections.abc import Generator
from hashlib import sha1
from typing import Any
from urllib.parse import quote_from_bytes

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import Agent, HTTPConnectionPool, readBody

from tests.integration.children import Child
from txbittorrent.core.bencoding import decode
from txbittorrent.tracker.serverconfig import TrackerServerConfig
from txbittorrent.tracker.service import TrackerService

OPENTRACKER = shutil.which("opentracker")
LOOPBACK = "127.0.0.1"
HASHES = [sha1(b"txbittorrent opentracker %d" % i).digest() for i in range(4)]
"""The info hashes the tests announce (opentracker's whitelist)."""
UNKNOWN = sha1(b"never announced").digest()
PROTOCOL_ID = 0x41727101980
"""BEP 15's connect magic."""
WAIT = 10.0


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def peer_id(n: int) -> bytes:
    return b"-XX0001-%012d" % n


def compact_ports(peers: bytes) -> list[int]:
    """The ports of a compact IPv4 peer list (every address is 127.0.0.1 here)."""
    assert len(peers) % 6 == 0, peers
    entries = [peers[i:i + 6] for i in range(0, len(peers), 6)]
    assert all(e[:4] == socket.inet_aton(LOOPBACK) for e in entries), peers
    return sorted(struct.unpack(">H", e[4:])[0] for e in entries)


@inlineCallbacks
def http_get(url: str) -> Generator[Any, Any, tuple[int, bytes]]:
    """(status, body) of one GET on a fresh connection, bounded by WAIT seconds."""
    agent = Agent(reactor, pool=HTTPConnectionPool(reactor, persistent=False))
    d = agent.request(b"GET", url.encode("ascii"))
    timer = reactor.callLater(WAIT, d.cancel)
    try:
        response = yield d
        body = yield readBody(response)
    finally:
        if timer.active():
            timer.cancel()
    return response.code, body


class UDPClient(DatagramProtocol):
    """Sends BEP 15 packets; each reply is matched by its transaction id."""

    def __init__(self) -> None:
        self.pending: dict[int, Deferred[bytes | None]] = {}
        self.next_transaction = 1000

    def datagramReceived(self, data: bytes, addr: Any) -> None:
        if len(data) >= 8:
            (transaction,) = struct.unpack(">I", data[4:8])
            d = self.pending.pop(transaction, None)
            if d is not None:
                d.callback(data)

    def request(self, port: int, build: Any) -> Deferred[bytes | None]:
        """Send ``build(transaction_id)``; the reply, or None after 2 seconds."""
        self.next_transaction += 1
        transaction = self.next_transaction
        d: Deferred[bytes | None] = Deferred()
        self.pending[transaction] = d
        assert self.transport is not None
        self.transport.write(build(transaction), (LOOPBACK, port))

        def expire() -> None:
            if self.pending.pop(transaction, None) is d:
                d.callback(None)

        call = reactor.callLater(2.0, expire)
        d.addBoth(lambda r: (call.cancel() if call.active() else None, r)[1])
        return d


class Tracker:
    """One tracker's addresses and the raw requests the tests send it."""

    def __init__(self, name: str, http_port: int, udp_port: int, udp: UDPClient) -> None:
        self.name = name
        self.http_port = http_port
        self.udp_port = udp_port
        self.udp = udp

    def __repr__(self) -> str:
        return self.name

    def get(self, path: str) -> Deferred[tuple[int, bytes]]:
        return http_get(f"http://{LOOPBACK}:{self.http_port}{path}")

    @inlineCallbacks
    def announce(self, info_hash: bytes, n: int, *, left: int = 0, numwant: int | None = None,
                 event: str | None = None, extra: str = "") -> Generator[Any, Any, Any]:
        """Peer ``n`` (port 7000 + n) announces; the decoded reply."""
        query = (f"info_hash={quote_from_bytes(info_hash)}&peer_id={quote_from_bytes(peer_id(n))}"
                 f"&port={7000 + n}&uploaded=0&downloaded=0&left={left}&compact=1")
        if numwant is not None:
            query += f"&numwant={numwant}"
        if event is not None:
            query += f"&event={event}"
        code, body = yield self.get(f"/announce?{query}{extra}")
        assert code == 200, (self, code, body)
        return decode(body)

    @inlineCallbacks
    def scrape(self, *hashes: bytes) -> Generator[Any, Any, dict[bytes, tuple[int, int, int]]]:
        """HTTP scrape: info hash -> (complete, downloaded, incomplete)."""
        query = "&".join(f"info_hash={quote_from_bytes(h)}" for h in hashes)
        code, body = yield self.get(f"/scrape?{query}")
        assert code == 200, (self, code, body)
        return {h: (e[b"complete"], e[b"downloaded"], e[b"incomplete"])
                for h, e in decode(body)[b"files"].items()}

    @inlineCallbacks
    def connect(self) -> Generator[Any, Any, int]:
        """A BEP 15 connection id."""
        reply = yield self.udp.request(
            self.udp_port, lambda t: struct.pack(">QII", PROTOCOL_ID, 0, t))
        assert reply is not None and len(reply) == 16, (self, reply)
        assert struct.unpack(">I", reply[:4])[0] == 0, reply
        return struct.unpack(">Q", reply[8:])[0]

    def udp_announce(self, connection_id: int, info_hash: bytes, n: int, *, left: int = 0,
                     numwant: int = -1, event: int = 0) -> Deferred[bytes | None]:
        return self.udp.request(self.udp_port, lambda t: struct.pack(
            ">QII20s20sQQQIIIiH", connection_id, 1, t, info_hash, peer_id(n), 0, left, 0,
            event, 0, 0x1234, numwant, 7000 + n))

    def udp_scrape(self, connection_id: int, *hashes: bytes) -> Deferred[bytes | None]:
        return self.udp.request(self.udp_port, lambda t: struct.pack(
            ">QII", connection_id, 2, t) + b"".join(hashes))


class OpentrackerComparisonTests(TestCase):
    """The same requests to our tracker and to opentracker."""

    timeout = 120

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        if OPENTRACKER is None:
            raise SkipTest("opentracker is not installed (apt-get install opentracker)")
        self.base = os.path.abspath(self.mktemp())
        os.makedirs(self.base)
        with open(os.path.join(self.base, "whitelist"), "w") as f:
            f.write("".join(h.hex() + "\n" for h in HASHES))
        # as root opentracker chroots to -d and drops to -u: the whitelist's
        # path is then relative to the chroot
        whitelist = "/whitelist" if os.geteuid() == 0 else os.path.join(self.base, "whitelist")
        ot_port = free_port()
        self.opentracker = Child()
        self.opentracker.process = reactor.spawnProcess(
            self.opentracker, OPENTRACKER,
            [OPENTRACKER, "-i", LOOPBACK, "-p", str(ot_port), "-P", str(ot_port),
             "-w", whitelist, "-d", self.base, "-u", "nobody"],
            env={}, path=self.base)
        self.addCleanup(self.opentracker.kill)

        config = TrackerServerConfig(http=(f"tcp:0:interface={LOOPBACK}",), udp_ports=(0,),
                                     rate_limit=None)
        self.service = TrackerService(config, reactor=reactor)
        self.service.startService()
        self.addCleanup(self.service.stopService)
        yield self.service.started

        self.udp_client = UDPClient()
        port = reactor.listenUDP(0, self.udp_client, interface=LOOPBACK)
        self.addCleanup(port.stopListening)
        self.ours = Tracker("ours", self.service.http_ports[0].getHost().port,
                            self.service.udp_ports[0].getHost().port, self.udp_client)
        self.ot = Tracker("opentracker", ot_port, ot_port, self.udp_client)
        self.both = (self.ours, self.ot)
        yield self.wait_listening(ot_port)

    @inlineCallbacks
    def wait_listening(self, port: int) -> Generator[Any, Any, None]:
        waited = 0.0
        while True:
            self.assertTrue(self.opentracker.running,
                            f"opentracker ended early: {self.opentracker.stdout()}"
                            f" {self.opentracker.stderr()}")
            try:
                socket.create_connection((LOOPBACK, port), timeout=1).close()
                return
            except OSError:
                pass
            self.assertLess(waited, WAIT, "opentracker never listened")
            yield deferLater(reactor, 0.1, lambda: None)
            waited += 0.1

    # -- HTTP ------------------------------------------------------------------------------

    @inlineCallbacks
    def test_announce_reply(self) -> Generator[Any, Any, None]:
        """Both: interval, complete, incomplete and compact peers; a leecher is
        given the seeder.  Differ: opentracker lists the requester in its own
        peer list (it never filters by peer), we never do; opentracker sends
        ``min interval`` (half a jittered interval, and the interval itself
        jittered around 1800), we send ``tracker id`` and the configured
        interval exactly."""
        for tracker in self.both:
            seed = yield tracker.announce(HASHES[0], 0, event="started")
            leech = yield tracker.announce(HASHES[0], 1, left=100, event="started")
            for reply in (seed, leech):
                self.assertIsInstance(reply[b"interval"], int, tracker)
                self.assertGreater(reply[b"interval"], 0, tracker)
                self.assertIsInstance(reply[b"peers"], bytes, tracker)
            self.assertEqual((leech[b"complete"], leech[b"incomplete"]), (1, 1), tracker)
            self.assertIn(7000, compact_ports(leech[b"peers"]), tracker)
        ours_seed = yield self.ours.announce(HASHES[0], 0)
        ours_leech = yield self.ours.announce(HASHES[0], 1, left=100)
        self.assertEqual(compact_ports(ours_leech[b"peers"]), [7000])
        self.assertNotIn(7000, compact_ports(ours_seed[b"peers"]))
        self.assertEqual(ours_leech[b"interval"], 1800)
        self.assertIn(b"tracker id", ours_leech)
        self.assertNotIn(b"min interval", ours_leech)
        ot_leech = yield self.ot.announce(HASHES[0], 1, left=100)
        self.assertEqual(compact_ports(ot_leech[b"peers"]), [7000, 7001])
        self.assertNotIn(b"tracker id", ot_leech)
        self.assertIn(b"min interval", ot_leech)
        self.assertLessEqual(ot_leech[b"min interval"], ot_leech[b"interval"])

    @inlineCallbacks
    def test_seeder_peer_lists(self) -> Generator[Any, Any, None]:
        """Differ: opentracker gives a seeder the other seeders (and itself);
        ours gives a seeder only leechers: two seeders have nothing to trade."""
        for tracker in self.both:
            yield tracker.announce(HASHES[0], 0)
            yield tracker.announce(HASHES[0], 1)
            yield tracker.announce(HASHES[0], 2, left=100)
        ours = yield self.ours.announce(HASHES[0], 0)
        self.assertEqual(compact_ports(ours[b"peers"]), [7002])
        ot = yield self.ot.announce(HASHES[0], 0)
        self.assertEqual(compact_ports(ot[b"peers"]), [7000, 7001, 7002])

    @inlineCallbacks
    def test_numwant(self) -> Generator[Any, Any, None]:
        """Both honour a small numwant and cap a huge one (10**9) at 200 peers."""
        for tracker in self.both:
            for n in range(1, 211):
                yield tracker.announce(HASHES[1], n, left=100)
            few = yield tracker.announce(HASHES[1], 0, left=100, numwant=5)
            self.assertEqual(len(few[b"peers"]) // 6, 5, tracker)
            many = yield tracker.announce(HASHES[1], 0, left=100, numwant=10**9)
            ports = compact_ports(many[b"peers"])
            self.assertEqual(len(ports), 200, tracker)
            self.assertEqual(len(set(ports)), 200, tracker)

    @inlineCallbacks
    def test_stopped(self) -> Generator[Any, Any, None]:
        """Both: event=stopped removes the peer from the counts and from the
        others' peer lists."""
        for tracker in self.both:
            yield tracker.announce(HASHES[2], 0)
            yield tracker.announce(HASHES[2], 1, left=100)
            yield tracker.announce(HASHES[2], 2, left=100)
            yield tracker.announce(HASHES[2], 2, left=100, event="stopped")
            scraped = yield tracker.scrape(HASHES[2])
            self.assertEqual(scraped[HASHES[2]][0::2], (1, 1), tracker)
            reply = yield tracker.announce(HASHES[2], 1, left=100)
            self.assertNotIn(7002, compact_ports(reply[b"peers"]), tracker)
            self.assertIn(7000, compact_ports(reply[b"peers"]), tracker)

    @inlineCallbacks
    def test_scrape(self) -> Generator[Any, Any, None]:
        """Both: a scrape of one hash and of several gives each its counts, a
        completed download counted once.  Both leave out a hash never announced."""
        for tracker in self.both:
            yield tracker.announce(HASHES[0], 0)
            yield tracker.announce(HASHES[0], 1, left=100)
            yield tracker.announce(HASHES[0], 1, event="completed")
            yield tracker.announce(HASHES[0], 2, left=100)
            yield tracker.announce(HASHES[3], 3, left=100)
            one = yield tracker.scrape(HASHES[0])
            self.assertEqual(one, {HASHES[0]: (2, 1, 1)}, tracker)
            several = yield tracker.scrape(HASHES[0], HASHES[3], UNKNOWN)
            self.assertEqual(several, {HASHES[0]: (2, 1, 1), HASHES[3]: (0, 0, 1)}, tracker)

    @inlineCallbacks
    def test_full_scrape(self) -> Generator[Any, Any, None]:
        """Differ: opentracker answers a scrape without info_hash with every
        torrent; ours refuses it with a failure reason unless started with
        ``--full-scrape`` (it costs a reply as large as the tracker)."""
        for tracker in self.both:
            yield tracker.announce(HASHES[0], 0)
        code, body = yield self.ot.get("/scrape")
        self.assertEqual(code, 200)
        self.assertIn(HASHES[0], decode(body)[b"files"])
        code, body = yield self.ours.get("/scrape")
        self.assertEqual(code, 200)
        self.assertIn(b"failure reason", decode(body))

    @inlineCallbacks
    def test_ip_parameter(self) -> Generator[Any, Any, None]:
        """Both: ``ip=`` from an untrusted address is ignored; the peer is the
        source address."""
        for tracker in self.both:
            yield tracker.announce(HASHES[0], 0, extra="&ip=192.0.2.1")
            reply = yield tracker.announce(HASHES[0], 1, left=100)
            self.assertIn(7000, compact_ports(reply[b"peers"]), tracker)

    @inlineCallbacks
    def test_malformed_and_refused(self) -> Generator[Any, Any, None]:
        """Differ: opentracker answers a short peer_id and ``compact=0`` with
        ``400 Invalid Request`` (it speaks compact only), and a hash off its
        whitelist with a failure reason; ours answers a short peer_id with a
        failure reason, ``compact=0`` with the dictionary peer list, and tracks
        any hash (open mode)."""
        bad = (f"/announce?info_hash={quote_from_bytes(HASHES[0])}&peer_id=short&port=7000"
               "&uploaded=0&downloaded=0&left=0")
        code, body = yield self.ot.get(bad)
        self.assertEqual(code, 400)
        code, body = yield self.ours.get(bad)
        self.assertEqual(code, 200)
        self.assertIn(b"failure reason", decode(body))

        yield self.ot.announce(HASHES[0], 0)
        yield self.ours.announce(HASHES[0], 0)
        dictionary = bad.replace("peer_id=short", f"peer_id={quote_from_bytes(peer_id(1))}"
                                 ).replace("port=7000", "port=7001").replace(
                                     "left=0", "left=100") + "&compact=0"
        code, body = yield self.ot.get(dictionary)
        self.assertEqual(code, 400)
        code, body = yield self.ours.get(dictionary)
        self.assertEqual(code, 200)
        peers = decode(body)[b"peers"]
        self.assertEqual([(p[b"ip"], p[b"port"]) for p in peers], [(LOOPBACK.encode(), 7000)])

        reply = yield self.ot.announce(UNKNOWN, 0)
        self.assertIn(b"failure reason", reply)
        reply = yield self.ours.announce(UNKNOWN, 0)
        self.assertNotIn(b"failure reason", reply)

    # -- UDP -------------------------------------------------------------------------------

    @inlineCallbacks
    def test_udp_announce_and_scrape(self) -> Generator[Any, Any, None]:
        """Both: connect, then announce (interval, leechers, seeders, compact
        peers: a leecher is given the seeder) and scrape of several hashes in
        request order (seeders, completed, leechers; zeros for an unknown hash)."""
        for tracker in self.both:
            connection_id = yield tracker.connect()
            seed = yield tracker.udp_announce(connection_id, HASHES[0], 0, event=2)
            self.assertIsNotNone(seed, tracker)
            reply = yield tracker.udp_announce(connection_id, HASHES[0], 1, left=100, event=2)
            assert reply is not None
            action, _, interval, leechers, seeders = struct.unpack(">IIIII", reply[:20])
            self.assertEqual((action, leechers, seeders), (1, 1, 1), tracker)
            self.assertGreater(interval, 0, tracker)
            self.assertIn(7000, compact_ports(reply[20:]), tracker)
            yield tracker.announce(HASHES[3], 3, left=100)
            reply = yield tracker.udp_scrape(connection_id, HASHES[0], UNKNOWN, HASHES[3])
            assert reply is not None
            self.assertEqual(struct.unpack(">II", reply[:8])[0], 2, tracker)
            self.assertEqual(struct.unpack(">9I", reply[8:]),
                             (1, 0, 1, 0, 0, 0, 0, 0, 1), tracker)

    @inlineCallbacks
    def test_udp_forged_connection_id(self) -> Generator[Any, Any, None]:
        """Both answer an announce with a forged connection id with an error
        packet (action 3, our transaction id, a text) no longer than the
        98-byte request, and track nothing.
        The texts differ (opentracker: "Connection ID missmatch.")."""
        texts = {}
        for tracker in self.both:
            connection_id = yield tracker.connect()
            reply = yield tracker.udp_announce(connection_id ^ 0xFFFF, HASHES[0], 0)
            assert reply is not None, tracker
            self.assertLessEqual(len(reply), 98, tracker)  # no amplification
            self.assertEqual(struct.unpack(">I", reply[:4])[0], 3, tracker)
            self.assertEqual(struct.unpack(">I", reply[4:8])[0],
                             self.udp_client.next_transaction, tracker)
            texts[tracker.name] = reply[8:].rstrip(b"\0")
            self.assertTrue(texts[tracker.name], tracker)
            scraped = yield tracker.scrape(HASHES[0])
            self.assertEqual(scraped, {}, tracker)
        self.assertEqual(texts["opentracker"], b"Connection ID missmatch.")

    @inlineCallbacks
    def test_ipv6(self) -> Generator[Any, Any, None]:
        """Differ: Debian's opentracker is built IPv4-only (it refuses to bind
        ::1); ours serves an IPv6 announce with compact ``peers6``."""
        child = Child()
        assert OPENTRACKER is not None
        child.process = reactor.spawnProcess(
            child, OPENTRACKER, [OPENTRACKER, "-i", "::1", "-p", str(free_port()),
                                 "-P", str(free_port(socket.SOCK_DGRAM)), "-d", self.base,
                                 "-u", "nobody"], env={}, path=self.base)
        self.addCleanup(child.kill)
        timer = reactor.callLater(WAIT, child.kill)
        code = yield child.ended
        if timer.active():
            timer.cancel()
        self.assertNotEqual(code, 0)
        self.assertIn(b"V4 only", child.out + child.err)

        if not socket.has_ipv6:
            raise SkipTest("no IPv6 on this machine")
        config = TrackerServerConfig(http=("tcp6:0:interface=\\:\\:1",), udp_ports=(),
                                     rate_limit=None)
        service = TrackerService(config, reactor=reactor)
        service.startService()
        self.addCleanup(service.stopService)
        yield service.started
        port = service.http_ports[0].getHost().port
        replies = []
        for n, left in ((0, 0), (1, 100)):
            query = (f"info_hash={quote_from_bytes(HASHES[0])}"
                     f"&peer_id={quote_from_bytes(peer_id(n))}&port={7000 + n}"
                     f"&uploaded=0&downloaded=0&left={left}&compact=1")
            code, body = yield http_get(f"http://[::1]:{port}/announce?{query}")
            self.assertEqual(code, 200)
            replies.append(decode(body))
        self.assertEqual(replies[1][b"peers6"],
                         socket.inet_pton(socket.AF_INET6, "::1") + struct.pack(">H", 7000))
