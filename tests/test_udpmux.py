"""Tests for txbittorrent.net.udp: binding, routing and sending on in-memory UDP; loopback runs."""

from __future__ import annotations

import errno
import socket
from typing import Any

from twisted.internet.defer import Deferred, ensureDeferred
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import deferLater
from twisted.logger import capturedLogs
from twisted.trial.unittest import SkipTest, SynchronousTestCase, TestCase

from txbittorrent.errors import LocalProtocolError
from txbittorrent.net.testing import FakeDatagramPort, MemoryUDPReactor
from txbittorrent.net.udp import (
    MAX_DATAGRAM_SIZE,
    Address,
    DatagramMux,
    FamilyUnavailableError,
    canonical_host,
    family_of,
    interfaces_for,
    is_krpc,
)

TRACKER = ("10.0.0.9", 6969)
TRACKER6 = ("2001:db8::9", 6969)


def bep15_reply(transaction_id: int, action: int = 1, body: bytes = b"") -> bytes:
    """A datagram shaped like a BEP 15 reply: action, transaction id, body."""
    return action.to_bytes(4, "big") + transaction_id.to_bytes(4, "big") + body


class Recorder:
    """A consumer that keeps what it is given."""

    def __init__(self) -> None:
        self.got: list[tuple[bytes, Address]] = []

    def __call__(self, datagram: bytes, address: Address) -> None:
        self.got.append((datagram, address))


def make_mux(reactor: MemoryUDPReactor, **options: Any) -> DatagramMux:
    return DatagramMux(reactor, v6only_socket=reactor.v6only_socket, **options)


def port_of(reactor: MemoryUDPReactor, family: int) -> FakeDatagramPort:
    [bound] = [p for p in reactor.udp_ports if p.family == family]
    return bound


class RefusingReactor(MemoryUDPReactor):
    """Refuses every IPv6 bind with EACCES (an error that must fail ``start``)."""

    def listenUDP(self, port: int, protocol: Any, interface: str = "",
                  maxPacketSize: int = 8192) -> FakeDatagramPort:
        if ":" in interface:
            make: Any = CannotListenError
            raise make(interface, port, OSError(errno.EACCES, "permission denied"))
        return super().listenUDP(port, protocol, interface, maxPacketSize)

    def v6only_socket(self, interface: str, port: int) -> Any:
        raise OSError(errno.EACCES, "permission denied")


class HelperTests(SynchronousTestCase):
    """The address helpers and the KRPC predicate."""

    def test_canonical_host(self) -> None:
        """IPv4-mapped IPv6 becomes plain IPv4; IPv6 is compressed; names are refused."""
        self.assertEqual(canonical_host("::ffff:1.2.3.4"), "1.2.3.4")
        self.assertEqual(canonical_host("::FFFF:0102:0304"), "1.2.3.4")
        self.assertEqual(canonical_host("2001:DB8:0:0::1"), "2001:db8::1")
        self.assertEqual(canonical_host("10.0.0.1"), "10.0.0.1")
        self.assertRaises(ValueError, canonical_host, "tracker.example")

    def test_family_of(self) -> None:
        """An IPv4-mapped address is of family 4."""
        self.assertEqual([family_of(h) for h in ("1.2.3.4", "::1", "::ffff:1.2.3.4")], [4, 6, 4])

    def test_interfaces_for(self) -> None:
        """The first listening interface of each family; None for a family not listed."""
        self.assertEqual(interfaces_for(["0.0.0.0", "::"]), ("0.0.0.0", "::"))
        self.assertEqual(interfaces_for(["::1", "127.0.0.1", "10.0.0.1"]), ("127.0.0.1", "::1"))
        self.assertEqual(interfaces_for(["127.0.0.1"]), ("127.0.0.1", None))

    def test_is_krpc(self) -> None:
        """A bencoded dict is KRPC; a BEP 15 reply and a uTP header are not."""
        self.assertTrue(is_krpc(b"d1:y1:qe"))
        self.assertFalse(is_krpc(bep15_reply(7)))
        self.assertFalse(is_krpc(b"\x41\x00" + bytes(18)))
        self.assertFalse(is_krpc(b""))


class BindTests(SynchronousTestCase):
    """start() binds one socket per family on one port number; stop() closes them."""

    def setUp(self) -> None:
        self.reactor = MemoryUDPReactor()

    def test_constructor_binds_nothing(self) -> None:
        """Making a mux binds nothing and schedules nothing."""
        mux = make_mux(self.reactor)
        self.assertEqual((self.reactor.udp_ports, self.reactor.getDelayedCalls()), ([], []))
        self.assertEqual((mux.running, mux.families, mux.port), (False, frozenset(), None))

    def test_both_families_one_port(self) -> None:
        """IPv4 gets a kernel-chosen port, IPv6 the same number on an IPv6-only socket."""
        mux = make_mux(self.reactor)
        mux.start()
        self.assertEqual(mux.families, frozenset({4, 6}))
        self.assertEqual(mux.local_address(4), ("0.0.0.0", 40000))
        self.assertEqual(mux.local_address(6), ("::", 40000))
        self.assertTrue(port_of(self.reactor, 6).v6only)
        [sock] = self.reactor.v6only_sockets
        self.assertTrue(sock.closed, "the mux closes its copy after adoption")
        self.assertEqual(mux.port, 40000)

    def test_read_size(self) -> None:
        """The sockets read one byte more than the cap, so a longer datagram shows as too long."""
        make_mux(self.reactor, max_datagram_size=1000).start()
        self.assertEqual({p.max_packet_size for p in self.reactor.udp_ports}, {1001})

    def test_requested_port(self) -> None:
        """A requested port (the session's TCP port) is used for both families."""
        mux = make_mux(self.reactor, port=6881)
        mux.start()
        self.assertEqual({p.port for p in self.reactor.udp_ports}, {6881})

    def test_requested_port_taken(self) -> None:
        """A taken port is replaced by a kernel-chosen one, shared by both families, and logged."""
        self.reactor.listenUDP(6881, DatagramProtocol(), "0.0.0.0")
        mux = make_mux(self.reactor, port=6881)
        with capturedLogs() as events:
            mux.start()
        self.assertEqual((mux.local_address(4), mux.local_address(6)),
                         (("0.0.0.0", 40000), ("::", 40000)))
        self.assertTrue(any("is taken" in e["log_format"] for e in events))

    def test_specific_interfaces(self) -> None:
        """Loopback interfaces share one port number too."""
        mux = make_mux(self.reactor, interface4="127.0.0.1", interface6="::1")
        mux.start()
        self.assertEqual((mux.local_address(4), mux.local_address(6)),
                         (("127.0.0.1", 40000), ("::1", 40000)))

    def test_no_adoption(self) -> None:
        """A reactor that cannot adopt sockets gets listenUDP for IPv6, on another number
        when the dual-stack :: collides with the IPv4 socket."""
        reactor = MemoryUDPReactor()
        reactor.adoptDatagramPort = None  # type: ignore[assignment,method-assign]
        mux = make_mux(reactor)
        with capturedLogs():
            mux.start()
        self.assertEqual((mux.local_address(4), mux.local_address(6)),
                         (("0.0.0.0", 40000), ("::", 40001)))

    def test_ipv6_unavailable(self) -> None:
        """A host without IPv6 gets an IPv4 socket only, and a log line says why."""
        self.reactor.unavailable.add("::")
        mux = make_mux(self.reactor)
        with capturedLogs() as events:
            mux.start()
        self.assertEqual(mux.families, frozenset({4}))
        self.assertTrue(any("unavailable" in e["log_format"] for e in events))

    def test_ipv6_only(self) -> None:
        """Without an IPv4 interface, :: is bound dual-stack with listenUDP."""
        mux = make_mux(self.reactor, interface4=None)
        mux.start()
        self.assertEqual(mux.families, frozenset({6}))
        self.assertFalse(port_of(self.reactor, 6).v6only)
        self.assertEqual(self.reactor.v6only_sockets, [])

    def test_nothing_available(self) -> None:
        """start() fails when no family can be bound, leaving nothing bound."""
        self.reactor.unavailable.update({"0.0.0.0", "::"})
        mux = make_mux(self.reactor)
        with capturedLogs():
            self.assertRaises(CannotListenError, mux.start)
        self.assertEqual((mux.running, self.reactor.udp_ports), (False, []))

    def test_other_error_closes_what_was_bound(self) -> None:
        """A bind error that is not "unavailable" fails start() and closes the IPv4 socket."""
        reactor = RefusingReactor()
        mux = make_mux(reactor)
        self.assertRaises(CannotListenError, mux.start)
        self.assertEqual((mux.running, mux.families, reactor.udp_ports), (False, frozenset(), []))

    def test_no_interface(self) -> None:
        """A mux with neither family is refused when made."""
        self.assertRaises(ValueError, DatagramMux, self.reactor, interface4=None, interface6=None)

    def test_stop(self) -> None:
        """stop() closes every socket and fires; nothing is left bound or scheduled."""
        mux = make_mux(self.reactor)
        mux.start()
        ports = list(self.reactor.udp_ports)
        self.successResultOf(mux.stop())
        self.assertEqual((self.reactor.udp_ports, self.reactor.getDelayedCalls()), ([], []))
        self.assertTrue(all(p.closed for p in ports))
        self.assertEqual((mux.running, mux.families), (False, frozenset()))
        self.successResultOf(mux.stop())

    def test_restart(self) -> None:
        """A stopped mux can start again; starting a running one is refused."""
        mux = make_mux(self.reactor)
        mux.start()
        self.assertRaises(LocalProtocolError, mux.start)
        self.successResultOf(mux.stop())
        mux.start()
        self.assertEqual(len(self.reactor.udp_ports), 2)


class RoutingTests(SynchronousTestCase):
    """Each datagram goes to its claimant, else to the first consumer whose predicate holds."""

    def setUp(self) -> None:
        self.reactor = MemoryUDPReactor()
        self.mux = make_mux(self.reactor, max_datagram_size=100)
        self.mux.start()
        self.v4 = port_of(self.reactor, 4)
        self.v6 = port_of(self.reactor, 6)
        self.tracker = Recorder()
        self.dht = Recorder()
        self.mux.add_consumer(is_krpc, self.dht)

    def test_claimed_transaction(self) -> None:
        """A BEP 15 reply goes to the consumer that claimed its transaction id, from any address."""
        self.mux.claim(7, self.tracker)
        self.v4.deliver(bep15_reply(7, 0, bytes(8)), TRACKER)
        self.v6.deliver(bep15_reply(7), TRACKER6)
        self.assertEqual(self.tracker.got,
                         [(bep15_reply(7, 0, bytes(8)), TRACKER), (bep15_reply(7), TRACKER6)])
        self.assertEqual((self.dht.got, self.mux.counters.delivered), ([], 2))

    def test_error_reply_claimed(self) -> None:
        """An error packet (action 3) is claimed like any reply."""
        self.mux.claim(7, self.tracker)
        self.v4.deliver(bep15_reply(7, 3, b"go away"), TRACKER)
        self.assertEqual(len(self.tracker.got), 1)

    def test_released(self) -> None:
        """After release, a reply with that id is unclaimed; releasing twice is harmless."""
        self.mux.claim(7, self.tracker)
        self.assertEqual(self.mux.claimed, frozenset({7}))
        self.mux.release(7, self.tracker)
        self.mux.release(7, self.tracker)
        self.assertEqual(self.mux.claimed, frozenset())
        self.v4.deliver(bep15_reply(7), TRACKER)
        self.assertEqual((self.tracker.got, self.mux.counters.unclaimed), ([], 1))

    def test_several_claimants(self) -> None:
        """Every consumer that claimed an id gets the reply once, however often it claimed."""
        other = Recorder()
        self.mux.claim(7, self.tracker)
        self.mux.claim(7, self.tracker)
        self.mux.claim(7, other)
        self.v4.deliver(bep15_reply(7), TRACKER)
        self.assertEqual((len(self.tracker.got), len(other.got)), (1, 1))

    def test_claim_needs_bep15_shape(self) -> None:
        """Bytes 4-8 matching a claim do not claim a datagram whose first bytes are not zero."""
        self.mux.claim(int.from_bytes(b"2:ad", "big"), self.tracker)
        self.v4.deliver(b"d1:ad2:id20:" + bytes(20) + b"ee", TRACKER)
        self.assertEqual((self.tracker.got, len(self.dht.got)), ([], 1))

    def test_krpc(self) -> None:
        """A datagram starting with b"d" goes to the KRPC consumer."""
        self.v6.deliver(b"d1:y1:qe", TRACKER6)
        self.assertEqual(self.dht.got, [(b"d1:y1:qe", TRACKER6)])

    def test_first_matching_consumer(self) -> None:
        """Consumers are asked in the order added; a removed one is skipped."""
        catch_all = Recorder()
        self.mux.add_consumer(lambda datagram: True, catch_all)
        self.v4.deliver(b"d1:y1:qe", TRACKER)
        self.v4.deliver(b"\x41utp", TRACKER)
        self.mux.remove_consumer(self.dht)
        self.v4.deliver(b"d1:y1:re", TRACKER)
        self.assertEqual([d for d, _ in self.dht.got], [b"d1:y1:qe"])
        self.assertEqual([d for d, _ in catch_all.got], [b"\x41utp", b"d1:y1:re"])

    def test_unclaimed_dropped(self) -> None:
        """Datagrams nobody wants are counted and dropped: an unclaimed reply, noise, nothing."""
        for datagram in (bep15_reply(8), b"\x01noise", b""):
            self.v4.deliver(datagram, TRACKER)
        counters = self.mux.counters
        self.assertEqual((counters.received, counters.unclaimed, counters.delivered), (3, 3, 0))
        self.assertEqual((self.tracker.got, self.dht.got), ([], []))

    def test_oversize_dropped(self) -> None:
        """A datagram over the cap is dropped even if claimed; one at the cap is delivered."""
        self.mux.claim(7, self.tracker)
        self.v4.deliver(bep15_reply(7, body=bytes(93)), TRACKER)
        self.v4.deliver(bep15_reply(7, body=bytes(92)), TRACKER)
        self.assertEqual([len(d) for d, _ in self.tracker.got], [100])
        self.assertEqual(self.mux.counters.oversize, 1)

    def test_default_cap(self) -> None:
        """The default cap is MAX_DATAGRAM_SIZE."""
        self.assertEqual(DatagramMux(self.reactor).max_datagram_size, MAX_DATAGRAM_SIZE)

    def test_mapped_source(self) -> None:
        """An IPv4 source seen through a dual-stack socket is reported as plain IPv4."""
        self.v6.deliver(b"d1:y1:qe", ("::ffff:10.0.0.9", 6969))
        self.assertEqual(self.dht.got, [(b"d1:y1:qe", TRACKER)])

    def test_raising_consumer(self) -> None:
        """A consumer that raises is logged and counted; the next datagram is routed as usual."""
        def broken(datagram: bytes, address: Address) -> None:
            raise RuntimeError("boom")

        self.mux.claim(7, broken)
        self.mux.claim(7, self.tracker)
        self.v4.deliver(bep15_reply(7), TRACKER)
        self.v4.deliver(b"d1:y1:qe", TRACKER)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        self.assertEqual(self.mux.counters.consumer_errors, 1)
        self.assertEqual((len(self.tracker.got), len(self.dht.got)), (1, 1))

    def test_raising_predicate(self) -> None:
        """A predicate that raises counts as no match and is logged."""
        self.mux.remove_consumer(self.dht)
        self.mux.add_consumer(lambda datagram: 1 / 0 > 0, Recorder())
        self.mux.add_consumer(is_krpc, self.dht)
        self.v4.deliver(b"d1:y1:qe", TRACKER)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.assertEqual((len(self.dht.got), self.mux.counters.consumer_errors), (1, 1))

    def test_claims_survive_restart(self) -> None:
        """Claims and consumers belong to their owners and outlive a stop and a start."""
        self.mux.claim(7, self.tracker)
        self.successResultOf(self.mux.stop())
        self.mux.start()
        port_of(self.reactor, 4).deliver(bep15_reply(7), TRACKER)
        port_of(self.reactor, 4).deliver(b"d1:y1:qe", TRACKER)
        self.assertEqual((len(self.tracker.got), len(self.dht.got)), (1, 1))


class SendTests(SynchronousTestCase):
    """send() picks the socket by the address family."""

    def setUp(self) -> None:
        self.reactor = MemoryUDPReactor()
        self.mux = make_mux(self.reactor)

    def test_family(self) -> None:
        """IPv4 (also written IPv4-mapped) leaves the IPv4 socket, IPv6 the IPv6 one."""
        self.mux.start()
        self.mux.send(b"a", TRACKER)
        self.mux.send(b"b", ("::ffff:10.0.0.9", 6969))
        self.mux.send(b"c", ("2001:DB8::9", 6969))
        self.assertEqual(port_of(self.reactor, 4).written, [(b"a", TRACKER), (b"b", TRACKER)])
        self.assertEqual(port_of(self.reactor, 6).written, [(b"c", TRACKER6)])
        self.assertEqual(self.mux.counters.sent, 3)

    def test_host_name_refused(self) -> None:
        """A host name is a ValueError (the caller resolves); nothing is sent."""
        self.mux.start()
        self.assertRaises(ValueError, self.mux.send, b"a", ("tracker.example", 6969))
        self.assertEqual([p.written for p in self.reactor.udp_ports], [[], []])

    def test_family_missing(self) -> None:
        """With no IPv6 socket, sending to IPv6 raises FamilyUnavailableError."""
        self.reactor.unavailable.add("::")
        with capturedLogs():
            self.mux.start()
        self.assertRaises(FamilyUnavailableError, self.mux.send, b"a", TRACKER6)
        self.assertEqual(self.mux.counters.sent, 0)

    def test_not_started(self) -> None:
        """Before start and after stop there is no socket to send from."""
        self.assertRaises(FamilyUnavailableError, self.mux.send, b"a", TRACKER)
        self.mux.start()
        self.successResultOf(self.mux.stop())
        self.assertRaises(FamilyUnavailableError, self.mux.send, b"a", TRACKER)

    def test_ipv4_through_dual_stack(self) -> None:
        """With only a dual-stack :: socket, IPv4 goes out of it as an IPv4-mapped address."""
        mux = make_mux(self.reactor, interface4=None)
        mux.start()
        mux.send(b"a", TRACKER)
        self.assertEqual(port_of(self.reactor, 6).written, [(b"a", ("::ffff:10.0.0.9", 6969))])

    def test_ipv4_not_through_v6only(self) -> None:
        """An IPv6 socket on ::1 (not dual-stack) does not carry IPv4."""
        mux = make_mux(self.reactor, interface4=None, interface6="::1")
        mux.start()
        self.assertRaises(FamilyUnavailableError, mux.send, b"a", TRACKER)


def _have_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


class LoopbackTests(TestCase):
    """A mux on 127.0.0.1 exchanges datagrams with a plain socket."""

    timeout = 10

    def test_exchange(self) -> Deferred[None]:
        """A plain socket's datagram reaches the consumer with its source; the reply comes back."""
        return ensureDeferred(self._exchange())

    async def _exchange(self) -> None:
        from twisted.internet import reactor

        mux = DatagramMux(reactor, interface4="127.0.0.1", interface6=None)
        mux.start()
        self.addCleanup(mux.stop)
        plain = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(plain.close)
        plain.bind(("127.0.0.1", 0))
        plain.setblocking(False)
        received: Deferred[tuple[bytes, Address]] = Deferred()
        mux.add_consumer(is_krpc, lambda datagram, address: received.callback((datagram, address)))
        port = mux.port
        assert port is not None
        plain.sendto(b"d1:y1:qe", ("127.0.0.1", port))
        datagram, source = await received.addTimeout(5, reactor)
        self.assertEqual((datagram, source), (b"d1:y1:qe", plain.getsockname()))
        mux.send(b"d1:y1:re", source)
        reply = None
        for _ in range(500):  # at most 5 s
            try:
                reply = plain.recvfrom(2048)
                break
            except BlockingIOError:
                await deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(reply, (b"d1:y1:re", ("127.0.0.1", port)))
        await mux.stop()
        self.assertEqual(mux.families, frozenset())

    def test_ipv6_loopback(self) -> Deferred[None]:
        """On 127.0.0.1 and ::1 both sockets share one port number (the IPv6 one
        IPv6-only, adopted) and a datagram comes in over ::1."""
        if not _have_ipv6_loopback():
            raise SkipTest("no ::1 here")
        return ensureDeferred(self._ipv6())

    async def _ipv6(self) -> None:
        from twisted.internet import reactor

        mux = DatagramMux(reactor, interface4="127.0.0.1", interface6="::1")
        mux.start()
        self.addCleanup(mux.stop)
        four, six = mux.local_address(4), mux.local_address(6)
        assert four is not None and six is not None
        self.assertEqual(four[1], six[1])
        plain = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.addCleanup(plain.close)
        plain.bind(("::1", 0))
        received: Deferred[tuple[bytes, Address]] = Deferred()
        mux.claim(7, lambda datagram, address: received.callback((datagram, address)))
        plain.sendto(bep15_reply(7), ("::1", six[1]))
        datagram, source = await received.addTimeout(5, reactor)
        self.assertEqual((datagram, source), (bep15_reply(7), plain.getsockname()[:2]))
        await mux.stop()
