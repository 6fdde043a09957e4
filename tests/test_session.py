"""Tests for txbittorrent.session: listening, dialing, limits, routing, stop.

Most tests run on a ``MemoryReactorClock``: ``listenTCP`` and ``connectTCP``
are recorded, connections are completed by hand with the recorded factories
(``buildProtocol`` + ``makeConnection`` on a ``StringTransport``) and failures
delivered with ``clientConnectionFailed``, as Twisted's own name-resolver
tests do.  One test uses real sockets, on 127.0.0.1 (and ::1 when the host has
it) only.
"""

from __future__ import annotations

import errno
import os
import threading
import socket
import struct
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, gatherResults, succeed
from twisted.internet.error import (
    CannotListenError,
    ConnectionRefusedError,
    TimeoutError,
)
from twisted.internet.testing import MemoryReactorClock, StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase, TestCase

from txbittorrent.core.wire.session import PeerSession
from txbittorrent.core.wire.codec import HaveAll, encode
from txbittorrent.errors import LocalProtocolError
from txbittorrent.interfaces import PeerLink
from txbittorrent.peer.protocol import PeerProtocol
from txbittorrent.session import DEFAULT_INTERFACES, Session, SessionConfig, v6only_listening_socket
from txbittorrent.testing import FakePeerHost
from txbittorrent.testing import connection_lost as lost

INFO_HASH = b"\x22" * 20
OTHER_INFO_HASH = b"\x33" * 20
OUR_ID = b"-TX0001-ourselves000"
THEIR_ID = b"-TX0001-theirs000000"
PEER = ("10.0.0.2", 6881)


def unknown_message(size: int) -> bytes:
    """A message with an id nobody uses, ``size`` bytes on the wire (ignored by the peer)."""
    return struct.pack(">IB", size - 4, 99) + b"\0" * (size - 5)


class RecordingPort:
    """A listening port that remembers whether it was stopped."""

    def __init__(self, interface: str, port: int) -> None:
        self.interface = interface
        self.port = port
        self.stopped = False

    def getHost(self) -> Any:
        if ":" in self.interface:
            return IPv6Address("TCP", self.interface, self.port)
        return IPv4Address("TCP", self.interface or "0.0.0.0", self.port)

    def stopListening(self) -> Deferred[None]:
        self.stopped = True
        return succeed(None)


class ListeningReactor(MemoryReactorClock):
    """A MemoryReactorClock whose listenTCP picks port numbers for port 0 and
    fails with a given errno for chosen (interface, port) pairs (port None: any)."""

    def __init__(self, refuse: dict[tuple[str, int | None], int] | None = None) -> None:
        super().__init__()
        self.refuse = refuse or {}
        self.next_port = 40000
        self.ports: list[RecordingPort] = []

    def listenTCP(self, port: int, factory: Any, backlog: int = 50, interface: str = "") -> Any:
        code = self.refuse.get((interface, port), self.refuse.get((interface, None)))
        if code is not None:
            raise CannotListenError(interface, port, OSError(code, os.strerror(code)))
        if port == 0:
            port = self.next_port
            self.next_port += 1
        super().listenTCP(port, factory, backlog, interface)
        recorded = RecordingPort(interface, port)
        self.ports.append(recorded)
        return recorded


class FakeSocket:
    """What the IPv6-only socket factory returns in tests."""

    def __init__(self, fileno: int) -> None:
        self._fileno = fileno
        self.closed = False

    def fileno(self) -> int:
        return self._fileno

    def close(self) -> None:
        self.closed = True


def started(session: Session, test: SynchronousTestCase) -> Session:
    test.successResultOf(session.start())
    return session


class SessionTestCase(SynchronousTestCase):
    """A running session on a ListeningReactor, listening on 127.0.0.1:6881."""

    interfaces: tuple[str, ...] = ("127.0.0.1",)
    config = SessionConfig()

    def setUp(self) -> None:
        self.reactor = ListeningReactor()
        self.session = Session(self.reactor, 6881, self.interfaces, self.config)
        self.successResultOf(self.session.start())
        self.host = FakePeerHost(self.reactor, INFO_HASH, OUR_ID)
        self.session.add_host(self.host)

    def dial(self, address: tuple[str, int] = PEER, host: FakePeerHost | None = None) -> Any:
        """connect() and return the factory the reactor was given."""
        self.assertTrue(self.session.connect(host or self.host, address))
        return self.reactor.tcpClients[-1][2]

    def complete(self, factory: Any) -> tuple[PeerProtocol, StringTransport]:
        """Complete a recorded TCP connect: the factory's protocol on a
        StringTransport (the endpoint's wrapper around it set aside)."""
        wrapper = factory.buildProtocol(None)
        transport = StringTransport()
        wrapper.makeConnection(transport)
        return getattr(wrapper, "_wrappedProtocol", wrapper), transport

    def accept(self) -> tuple[PeerProtocol | None, StringTransport]:
        """Accept an incoming connection on the first listening factory."""
        factory = self.reactor.tcpServers[0][1]
        protocol = factory.buildProtocol(IPv4Address("TCP", "10.0.0.9", 50000))
        transport = StringTransport(peerAddress=IPv4Address("TCP", "10.0.0.9", 50000))
        if protocol is not None:
            protocol.makeConnection(transport)
        return protocol, transport

    def refuse(self, factory: Any, error: Exception) -> None:
        """Deliver a TCP connect failure to a recorded factory."""
        factory.clientConnectionFailed(None, Failure(error))

    def handshake_from(self, protocol: PeerProtocol, info_hash: bytes = INFO_HASH) -> PeerSession:
        """The remote of an incoming link sends its handshake and HAVE_ALL."""
        remote = FakePeerHost(self.reactor, info_hash, THEIR_ID).new_peer_session(outgoing=True)
        protocol.dataReceived(remote.send_handshake() + encode(HaveAll()))
        return remote


class ListeningTests(SynchronousTestCase):
    """start(): one port number on every interface asked for."""

    def test_interfaces_and_port(self) -> None:
        """Each interface is bound on the given port, in order."""
        reactor = ListeningReactor()
        session = started(Session(reactor, 6881, ("127.0.0.1", "::1")), self)
        self.assertEqual(
            [(port, interface) for port, _, _, interface in reactor.tcpServers],
            [(6881, "127.0.0.1"), (6881, "::1")],
        )
        self.assertEqual(session.port, 6881)
        self.assertEqual(session.listening_addresses, [("127.0.0.1", 6881), ("::1", 6881)])
        self.assertTrue(session.running)

    def test_default_interfaces(self) -> None:
        """By default the session listens on every IPv4 and IPv6 address."""
        self.assertEqual(DEFAULT_INTERFACES, ("0.0.0.0", "::"))
        reactor = ListeningReactor()
        started(Session(reactor, 6881), self)
        self.assertEqual([s[3] for s in reactor.tcpServers], ["0.0.0.0", "::"])

    def test_kernel_port_shared(self) -> None:
        """Port 0: the kernel's choice for the first interface is reused for the others."""
        reactor = ListeningReactor()
        session = started(Session(reactor, 0, ("127.0.0.1", "::1")), self)
        self.assertEqual([s[0] for s in reactor.tcpServers], [40000, 40000])
        self.assertEqual(session.port, 40000)

    def test_kernel_port_taken_retries(self) -> None:
        """A kernel-chosen number taken on a later interface: start over with another."""
        reactor = ListeningReactor({("::1", 40000): errno.EADDRINUSE})
        session = started(Session(reactor, 0, ("127.0.0.1", "::1")), self)
        self.assertEqual(session.port, 40001)
        self.assertTrue(reactor.ports[0].stopped)
        self.assertEqual([(p.interface, p.port) for p in reactor.ports[1:]],
                         [("127.0.0.1", 40001), ("::1", 40001)])
        self.assertFalse(any(p.stopped for p in reactor.ports[1:]))

    def test_kernel_port_always_taken(self) -> None:
        """After a few tries start fails, leaving nothing bound."""
        reactor = ListeningReactor({("::1", None): errno.EADDRINUSE})
        session = Session(reactor, 0, ("127.0.0.1", "::1"))
        self.failureResultOf(session.start(), CannotListenError)
        self.assertTrue(all(p.stopped for p in reactor.ports))
        self.assertEqual(len(reactor.ports), 5)
        self.assertIsNone(session.port)
        self.assertFalse(session.running)

    def test_explicit_port_taken(self) -> None:
        """A given port taken on any interface fails start and unbinds the others."""
        reactor = ListeningReactor({("::1", 6881): errno.EADDRINUSE})
        session = Session(reactor, 6881, ("127.0.0.1", "::1"))
        self.failureResultOf(session.start(), CannotListenError)
        self.assertTrue(reactor.ports[0].stopped)
        self.assertEqual(session.listening_addresses, [])

    def test_ipv4_first(self) -> None:
        """IPv4 interfaces are bound before IPv6 ones, whatever the order given."""
        reactor = ListeningReactor()
        session = started(Session(reactor, 0, ("::", "0.0.0.0", "::1", "127.0.0.1")), self)
        self.assertEqual(
            session.listening_addresses,
            [("0.0.0.0", 40000), ("127.0.0.1", 40000), ("::", 40000), ("::1", 40000)],
        )

    def test_ipv6_unavailable_skipped(self) -> None:
        """An interface the host lacks (no ::1, no IPv6) is skipped."""
        for code in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
            reactor = ListeningReactor({("::1", None): code})
            session = started(Session(reactor, 0, ("::1", "127.0.0.1")), self)
            self.assertEqual(session.listening_addresses, [("127.0.0.1", 40000)])
            self.assertEqual(session.port, 40000)

    def test_nothing_available(self) -> None:
        """If no interface can be bound, start fails."""
        reactor = ListeningReactor({("::1", None): errno.EADDRNOTAVAIL})
        self.failureResultOf(Session(reactor, 0, ("::1",)).start(), CannotListenError)

    def test_dual_stack_fallback(self) -> None:
        """'::' colliding with our own '0.0.0.0' is bound IPv6-only and adopted."""
        reactor = ListeningReactor({("::", 6881): errno.EADDRINUSE})
        session = Session(reactor, 6881)
        made: list[tuple[Any, ...]] = []
        fake = FakeSocket(42)

        def v6only(interface: str, port: int, backlog: int) -> FakeSocket:
            made.append((interface, port, backlog))
            return fake

        session._v6only_socket = v6only
        started(session, self)
        self.assertEqual(made, [("::", 6881, 50)])
        self.assertEqual(
            reactor.adoptedPorts, [(42, socket.AF_INET6, reactor.tcpServers[0][1])]
        )
        self.assertTrue(fake.closed)
        self.assertEqual([a for a, _ in session.listening_addresses], ["0.0.0.0", "::"])

    def test_other_errors_fail(self) -> None:
        """An unexpected error on '::' (not our own IPv4 wildcard) fails start."""
        reactor = ListeningReactor({("::", 6881): errno.EACCES})
        self.failureResultOf(Session(reactor, 6881).start(), CannotListenError)

    def test_no_interfaces(self) -> None:
        """No interfaces: nothing bound, no port, outgoing connections still work."""
        reactor = ListeningReactor()
        session = started(Session(reactor, 0, ()), self)
        self.assertIsNone(session.port)
        self.assertEqual(reactor.tcpServers, [])
        host = FakePeerHost(reactor, INFO_HASH, OUR_ID)
        session.add_host(host)
        self.assertTrue(session.connect(host, PEER))

    def test_constructor_does_nothing(self) -> None:
        """Constructing a session binds nothing and schedules nothing."""
        reactor = ListeningReactor()
        Session(reactor, 6881)
        self.assertEqual(reactor.tcpServers, [])
        self.assertEqual(reactor.getDelayedCalls(), [])

    def test_shared_threadpool(self) -> None:
        """threadpool: made and started on first use (even before start),
        sized by disk_threads, stopped with its shutdown trigger by stop()."""
        triggers: dict[int, tuple[str, str, Any]] = {}

        class Reactor(ListeningReactor):
            def addSystemEventTrigger(self, phase: str, event: str, f: Any, *a: Any) -> int:
                triggers[len(triggers) + 1] = (phase, event, f)
                return len(triggers)

            def removeSystemEventTrigger(self, key: int) -> None:
                del triggers[key]

        session = Session(Reactor(), 0, ("127.0.0.1",), SessionConfig(disk_threads=3))
        self.assertEqual(triggers, {})
        pool = session.threadpool
        self.addCleanup(lambda: pool.joined or pool.stop())
        self.assertIs(session.threadpool, pool)
        self.assertEqual((pool.max, pool.started, pool.joined), (3, True, False))
        self.assertEqual(list(triggers.values()), [("during", "shutdown", pool.stop)])
        self.successResultOf(session.start())
        self.successResultOf(session.stop())
        self.assertTrue(pool.joined)
        self.assertEqual(triggers, {})
        again = session.threadpool  # a torrent still using it gets a new one
        self.addCleanup(again.stop)
        self.assertIsNot(again, pool)

    def test_busy_threadpool_left_to_shutdown(self) -> None:
        """stop() does not join a pool whose thread is busy (that would block
        the reactor); the pool and its shutdown trigger stay."""
        reactor = ListeningReactor()
        session = Session(reactor, 0, ("127.0.0.1",))
        pool = session.threadpool
        release = threading.Event()
        self.addCleanup(lambda: pool.joined or pool.stop())
        self.addCleanup(release.set)
        pool.callInThread(release.wait, 30)
        self.assertEqual(len(pool.working), 1)
        self.successResultOf(session.stop())
        self.assertFalse(pool.joined)
        self.assertIs(session.threadpool, pool)

    def test_start_twice(self) -> None:
        """start() on a session already started is a mistake."""
        session = started(Session(ListeningReactor(), 6881, ("127.0.0.1",)), self)
        self.assertRaises(LocalProtocolError, session.start)

    def test_bad_port(self) -> None:
        """A port out of range is refused at once."""
        self.assertRaises(ValueError, Session, None, 70000)


class V6OnlySocketTests(SynchronousTestCase):
    """v6only_listening_socket on the IPv6 loopback."""

    def test_v6only(self) -> None:
        """The socket listens on ::1, IPv6 only, non-blocking."""
        try:
            sock = v6only_listening_socket("::1", 0, 5)
        except OSError as e:
            raise self.skipTest(f"no IPv6 loopback here: {e}")
        try:
            self.assertEqual(sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY), 1)
            self.assertFalse(sock.getblocking())
            self.assertEqual(sock.getsockname()[0], "::1")
        finally:
            sock.close()


class ConnectTests(SessionTestCase):
    """connect(): the Dialer, its limits and its reports."""

    config = SessionConfig(max_connections=5, max_half_open=3, connect_timeout=7.0)

    def test_connect(self) -> None:
        """An attempt is a connectTCP with the configured timeout; it counts as half-open."""
        self.dial()
        host, port, _, timeout, bind = self.reactor.tcpClients[0]
        self.assertEqual((host, port, timeout, bind), ("10.0.0.2", 6881, 7.0, None))
        self.assertEqual(self.session.half_open, 1)
        self.assertEqual(self.session.connection_count(), 1)
        self.assertEqual(self.session.connection_count(self.host), 1)
        self.assertEqual(self.session.connection_count(FakePeerHost(self.reactor, OTHER_INFO_HASH, OUR_ID)), 0)

    def test_ipv6_address(self) -> None:
        """IPv6 literals are dialed as they are; IPv4-mapped ones as IPv4."""
        self.dial(("2001:db8::7", 51413))
        self.dial(("::ffff:10.0.0.3", 51413))
        self.assertEqual(
            [(h, p) for h, p, *_ in self.reactor.tcpClients],
            [("2001:db8::7", 51413), ("10.0.0.3", 51413)],
        )

    def test_needs_add_host(self) -> None:
        """connect() for a host never added is a mistake."""
        stranger = FakePeerHost(self.reactor, OTHER_INFO_HASH, OUR_ID)
        self.assertRaises(LocalProtocolError, self.session.connect, stranger, PEER)

    def test_not_running(self) -> None:
        """Before start and after stop, connect() returns False."""
        session = Session(ListeningReactor(), 6881, ("127.0.0.1",))
        session.add_host(self.host)
        self.assertFalse(session.connect(self.host, PEER))
        self.session.stop()
        self.assertFalse(self.session.connect(self.host, PEER))

    def test_max_half_open(self) -> None:
        """At max_half_open attempts, connect() returns False until one ends."""
        factories = [self.dial(("10.0.0.%d" % i, 6881)) for i in range(3)]
        self.assertFalse(self.session.connect(self.host, ("10.0.0.9", 6881)))
        self.refuse(factories[0], ConnectionRefusedError())
        self.assertTrue(self.session.connect(self.host, ("10.0.0.9", 6881)))

    def test_connected_not_half_open(self) -> None:
        """A completed TCP connect frees its half-open slot."""
        factory = self.dial()
        self.complete(factory)
        self.assertEqual(self.session.half_open, 0)
        self.assertEqual(self.session.connection_count(), 1)
        self.assertEqual(self.session.connection_count(self.host), 1)

    def test_max_connections(self) -> None:
        """Links and attempts together are capped by max_connections, both ways."""
        for i in range(3):
            self.complete(self.dial(("10.0.0.%d" % i, 6881)))
        self.dial(("10.0.0.5", 6881))
        protocol, _ = self.accept()
        self.assertIsNotNone(protocol)
        self.assertEqual(self.session.connection_count(), 5)
        self.assertFalse(self.session.connect(self.host, ("10.0.0.6", 6881)))
        self.assertIsNone(self.accept()[0])

    def test_failure_reported(self) -> None:
        """A failed TCP connect reaches the host as connect_failed with the reason."""
        factory = self.dial()
        self.refuse(factory, TimeoutError())
        self.assertEqual(self.host.names(), ["connect_failed"])
        self.assertEqual(self.host.calls[0][1], PEER)
        self.assertIn("connect failed", self.host.calls[0][2])
        self.assertEqual(self.session.half_open, 0)
        self.assertEqual(self.session.connection_count(), 0)
        self.dial()  # the address may be tried again

    def test_failure_reported_once(self) -> None:
        """A second failure report for the same attempt is ignored."""
        factory = self.dial()
        self.refuse(factory, TimeoutError())
        self.refuse(factory, TimeoutError())
        self.assertEqual(self.host.names(), ["connect_failed"])
        self.assertEqual(self.session.half_open, 0)

    def test_link_lifecycle(self) -> None:
        """A completed connect becomes an outgoing link; its end frees the address."""
        factory = self.dial()
        protocol, transport = self.complete(factory)
        self.assertTrue(protocol.outgoing)
        self.assertEqual(protocol.address, PEER)
        self.assertEqual(list(self.session.links(self.host)), [protocol])
        self.assertTrue(transport.value().startswith(b"\x13BitTorrent protocol"))
        self.assertFalse(self.session.connect(self.host, PEER))
        lost(protocol)
        self.assertEqual(self.host.names(), ["connect_failed"])
        self.assertEqual(self.session.connection_count(), 0)
        self.dial()

    def test_duplicate_address(self) -> None:
        """A second attempt to an address being connected for the same host is refused."""
        self.dial()
        self.assertFalse(self.session.connect(self.host, PEER))
        other = FakePeerHost(self.reactor, OTHER_INFO_HASH, OUR_ID)
        self.session.add_host(other)
        self.dial(PEER, other)

    def test_not_ourselves(self) -> None:
        """Our own listening address is never dialed."""
        for address in [
            ("127.0.0.1", 6881),
            ("::ffff:127.0.0.1", 6881),
            ("127.0.0.2", 6881),
            ("::1", 6881),
            ("0.0.0.0", 6881),
            ("localhost", 6881),
        ]:
            self.assertFalse(self.session.connect(self.host, address), address)
            self.assertTrue(self.session.is_own_address(address))
        self.assertEqual(self.reactor.tcpClients, [])
        self.dial(("127.0.0.1", 6882))
        self.dial(("10.0.0.2", 6881))
        self.dial(("example.org", 6881))

    def test_own_interface_address(self) -> None:
        """An address we bound explicitly is ours on our port."""
        reactor = ListeningReactor()
        session = started(Session(reactor, 6881, ("192.0.2.10",)), self)
        self.assertTrue(session.is_own_address(("192.0.2.10", 6881)))
        self.assertFalse(session.is_own_address(("192.0.2.11", 6881)))
        self.assertFalse(session.is_own_address(("192.0.2.10", 6882)))


class FakeEndpoint:
    """An IStreamClientEndpoint whose connect waits for the test."""

    def __init__(self) -> None:
        self.factories: list[Any] = []
        self.deferreds: list[Deferred[Any]] = []

    def connect(self, factory: Any) -> Deferred[Any]:
        self.factories.append(factory)
        d: Deferred[Any] = Deferred()
        self.deferreds.append(d)
        return d


class EndpointTests(SessionTestCase):
    """Outgoing connections go through the endpoint ``client_endpoint`` makes."""

    def test_custom_endpoint(self) -> None:
        """A session's client_endpoint is asked for each dial, with the timeout."""
        endpoint = FakeEndpoint()
        asked: list[tuple[Any, tuple[str, int], float]] = []

        def make(reactor: Any, address: tuple[str, int], timeout: float) -> FakeEndpoint:
            asked.append((reactor, address, timeout))
            return endpoint

        self.session.client_endpoint = make  # type: ignore[assignment]
        self.assertTrue(self.session.connect(self.host, PEER))
        self.assertEqual(asked, [(self.reactor, PEER, self.config.connect_timeout)])
        self.assertEqual(self.reactor.tcpClients, [])
        protocol = endpoint.factories[0].buildProtocol(None)
        self.assertIsInstance(protocol, PeerProtocol)
        self.assertEqual(self.session.half_open, 0)
        endpoint.deferreds[0].callback(protocol)
        self.assertEqual(self.session.connection_count(self.host), 0, "no link yet")

    def test_endpoint_failure(self) -> None:
        """An endpoint's failure is the host's connect_failed, with the reason."""
        endpoint = FakeEndpoint()
        self.session.client_endpoint = lambda *a: endpoint  # type: ignore[assignment]
        self.session.connect(self.host, PEER)
        endpoint.deferreds[0].errback(Failure(ConnectionRefusedError("no")))
        self.assertEqual(self.host.names(), ["connect_failed"])
        self.assertEqual(self.session.half_open, 0)
        self.assertTrue(self.session.connect(self.host, PEER), "the address is free again")

    def test_stop_cancels_the_endpoint(self) -> None:
        """Stopping the session cancels the endpoint's attempt."""
        endpoint = FakeEndpoint()
        self.session.client_endpoint = lambda *a: endpoint  # type: ignore[assignment]
        self.session.connect(self.host, PEER)
        self.session.stop()
        self.assertTrue(endpoint.deferreds[0].called, "cancelled (and handled)")
        self.assertEqual(self.host.names(), ["connect_failed"])


class RoutingTests(SessionTestCase):
    """Incoming links find their torrent through the session."""

    def test_routed(self) -> None:
        """An incoming handshake for a registered torrent reaches its host."""
        protocol, transport = self.accept()
        assert protocol is not None
        self.assertFalse(protocol.outgoing)
        self.assertEqual(protocol.address, ("10.0.0.9", 50000))
        self.handshake_from(protocol)
        self.assertIs(protocol.host, self.host)
        self.assertEqual(self.host.names(), ["peer_connected", "peer_event", "peer_events_done"])
        self.assertEqual(self.session.connection_count(self.host), 1)

    def test_unknown_torrent(self) -> None:
        """An incoming handshake for an unknown torrent is dropped."""
        protocol, transport = self.accept()
        assert protocol is not None
        self.handshake_from(protocol, OTHER_INFO_HASH)
        self.assertTrue(transport.disconnecting)
        self.assertEqual(self.host.calls, [])

    def test_route(self) -> None:
        """route() finds registered hosts while running, nothing after stop."""
        self.assertIs(self.session.route(INFO_HASH), self.host)
        self.assertIsNone(self.session.route(OTHER_INFO_HASH))
        self.session.stop()
        self.assertIsNone(self.session.route(INFO_HASH))

    def test_add_host_conflict(self) -> None:
        """Two hosts with one info hash are a mistake; adding the same twice is not."""
        self.session.add_host(self.host)
        self.assertRaises(LocalProtocolError, self.session.add_host, FakePeerHost(self.reactor, INFO_HASH, OUR_ID))

    def test_remove_host(self) -> None:
        """Removing a host cancels its attempts and drops its unaccepted links."""
        pending = self.dial(("10.0.0.3", 6881))
        connected = self.dial(("10.0.0.4", 6881))
        link, link_transport = self.complete(connected)
        accepted, accepted_transport = self.accept()
        assert accepted is not None
        self.handshake_from(accepted)
        self.session.remove_host(self.host)
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        self.assertEqual(
            self.host.calls[-1], ("connect_failed", ("10.0.0.3", 6881), "torrent removed")
        )
        self.assertTrue(link_transport.disconnecting)
        self.assertFalse(accepted_transport.disconnecting)
        self.assertIsNone(self.session.route(INFO_HASH))
        self.assertEqual(self.session.half_open, 0)
        self.refuse(pending, Exception("cancelled"))  # the real connector reports it; ignored
        self.assertEqual(self.host.names().count("connect_failed"), 1)
        self.session.remove_host(self.host)  # twice is harmless


class GlobalLimitTests(SessionTestCase):
    """The global limits apply to every link."""

    config = SessionConfig(upload_limit=1000.0, download_limit=1000.0)

    def test_global_limits(self) -> None:
        """Links are charged against the session's throttles, settable at any time."""
        self.assertEqual(self.session.upload_throttle.rate, 1000.0)
        protocol, transport = self.accept()
        assert protocol is not None
        self.handshake_from(protocol)
        self.reactor.advance(10)
        protocol.dataReceived(unknown_message(1000))
        self.assertEqual(transport.producerState, "paused")
        transport.clear()
        protocol.send_block(b"H" * 13, b"x" * 1000)
        self.assertEqual(transport.value(), b"")
        self.reactor.advance(0.8)
        self.assertEqual(len(transport.value()), 1013)
        self.session.upload_throttle.set_rate(None)
        protocol.send_block(b"H" * 13, b"x" * 1000)
        self.assertEqual(len(transport.value()), 2026)


class StopTests(SessionTestCase):
    """stop() leaves nothing behind."""

    def test_stop(self) -> None:
        """Ports closed, attempts cancelled, links aborted, no timer left."""
        pending = self.dial(("10.0.0.3", 6881))
        outgoing, out_transport = self.complete(self.dial(("10.0.0.4", 6881)))
        incoming, in_transport = self.accept()
        assert incoming is not None
        self.handshake_from(incoming)
        self.reactor.advance(1)
        self.assertNotEqual(self.reactor.getDelayedCalls(), [])
        d = self.session.stop()
        self.assertTrue(all(p.stopped for p in self.reactor.ports))
        self.assertTrue(self.reactor.connectors[0].stoppedConnecting)
        self.assertTrue(out_transport.disconnected)
        self.assertTrue(in_transport.disconnected)
        self.assertIn(("connect_failed", ("10.0.0.3", 6881), "session stopped"), self.host.calls)
        self.assertNoResult(d)
        lost(outgoing)
        lost(incoming)
        self.successResultOf(d)
        self.assertEqual(self.host.calls[-1], ("peer_lost", "session stopped"))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(self.session.connection_count(), 0)
        self.assertFalse(self.session.running)
        self.successResultOf(self.session.stop())

    def test_stop_before_start(self) -> None:
        """A session never started stops at once."""
        self.successResultOf(Session(ListeningReactor(), 6881).stop())


class RealNetworkTests(TestCase):
    """Two sessions on the real reactor, over loopback only."""

    timeout = 10

    def setUp(self) -> None:
        from twisted.internet import reactor

        self.reactor = reactor

    def start_session(self) -> Session:
        session = Session(self.reactor, 0, ("127.0.0.1", "::1"))
        self.successResultOf(session.start())
        self.addCleanup(session.stop)
        return session

    def host(self, info_hash: bytes, peer_id: bytes) -> tuple[FakePeerHost, Deferred[PeerLink]]:
        host = FakePeerHost(self.reactor, info_hash, peer_id)
        connected: Deferred[PeerLink] = Deferred()
        host.on_connected = connected.callback
        return host, connected

    async def test_handshake_both_ways(self) -> None:
        """A dials B over 127.0.0.1 (and B dials A over ::1 if present); all handshakes complete."""
        a, b = self.start_session(), self.start_session()
        a_host, a_connected = self.host(INFO_HASH, OUR_ID)
        b_host, b_connected = self.host(INFO_HASH, THEIR_ID)
        a.add_host(a_host)
        b.add_host(b_host)
        waits = [a_connected, b_connected]
        self.assertTrue(a.connect(a_host, ("127.0.0.1", b.port)))
        if ("::1", a.port) in a.listening_addresses:
            a_host6, a6_connected = self.host(OTHER_INFO_HASH, OUR_ID)
            b_host6, b6_connected = self.host(OTHER_INFO_HASH, THEIR_ID)
            a.add_host(a_host6)
            b.add_host(b_host6)
            self.assertTrue(b.connect(b_host6, ("::1", a.port)))
            waits += [a6_connected, b6_connected]
        links = await gatherResults(waits)
        self.assertEqual(links[0].session.peer_id, THEIR_ID)
        self.assertEqual(links[1].session.peer_id, OUR_ID)
        self.assertTrue(links[0].outgoing)
        self.assertFalse(links[1].outgoing)
        self.assertEqual(links[0].address, ("127.0.0.1", b.port))
        if len(links) == 4:
            self.assertEqual(links[3].address, ("::1", a.port))
            self.assertEqual(links[2].address[0], "::1")
        await gatherResults([a.stop(), b.stop()])
        self.assertEqual(a.connection_count() + b.connection_count(), 0)
        self.assertEqual(a_host.names(), ["peer_connected", "peer_lost"])
        self.assertEqual(b_host.names(), ["peer_connected", "peer_lost"])
