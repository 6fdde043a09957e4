"""One UDP socket per address family, shared by everything that speaks UDP, and its demultiplexer.

Theory of operation
-------------------
A ``DatagramMux`` owns at most two bound UDP sockets, one IPv4 and one IPv6,
and is the only thing in a session that binds UDP: the UDP tracker client
(BEP 15), the DHT node (BEP 5) and, later, uTP (BEP 29) all send with
``send`` and receive what the mux routes to them.  It knows of each protocol
only the first bytes it needs to route a datagram, never its contents.

Binding (``start``): the IPv4 socket first, on ``port`` (0: the kernel's
choice), then the IPv6 one on the port number the IPv4 socket got, so both
families share one number (a session passes its TCP listening port, as
libtorrent and Transmission do).  A port number that is taken is replaced by
a kernel-chosen one, with a log line.  ``::`` would also take the IPv4 port
on a dual-stack host, so when an IPv4 socket is bound the IPv6 one is made
here with ``IPV6_V6ONLY`` and handed to the reactor with
``adoptDatagramPort`` (``session.py`` does so for TCP after a collision;
here it is done every time, which is as correct for a specific address
and needs no error to decide).  Without an IPv4 socket (or a reactor that
cannot adopt), the IPv6 socket is bound with ``listenUDP``; ``::`` is then
dual-stack and serves IPv4 too, by IPv4-mapped addresses.  A family the host
lacks (no IPv6, an address it does not have) is skipped with a log line;
``start`` fails only when nothing at all could be bound, or on any other
error (closing what it bound first).
``stop`` closes the sockets; its Deferred fires once they are closed.  The
mux can be started again after it has stopped.

Routing, for each datagram that arrives, from any address:

1. longer than ``max_datagram_size``: counted (``oversize``) and dropped.  The
   sockets read one byte more than the cap, so a longer datagram shows as too
   long rather than arriving truncated;
2. the source host is made canonical (``canonical_host``: an IPv4-mapped IPv6
   address as plain IPv4), so consumers compare addresses as they sent them;
3. shaped like a BEP 15 reply (eight bytes or more, the first three zero: an
   action from 0 to 3 as a 32-bit big-endian number) and carrying a
   transaction id (bytes 4-8) that consumers have ``claim``-ed: given to each
   of those consumers.  KRPC (a bencoded dict: ``b"d"``) and uTP (first byte
   ``type << 4 | 1``) never start with a zero byte, so a claim cannot catch
   their datagrams;
4. otherwise the first consumer, in the order added, whose predicate matches
   (the DHT node: ``is_krpc``; uTP later, by its header);
5. otherwise counted (``unclaimed``) and dropped.

A consumer (or predicate) that raises is logged and counted
(``consumer_errors``); the mux carries on with the next datagram.

Sending: ``send(data, (ip, port))`` takes an IP literal (host names must be
resolved by the caller), picks the socket by the address's family (an
IPv4-mapped IPv6 address counts as IPv4; with no IPv4 socket, IPv4 goes out
of a dual-stack IPv6 socket as a mapped address) and raises
``FamilyUnavailableError`` when there is no socket for it.

Invariants: nothing is bound outside ``start()`` .. ``stop()``; the
constructor does nothing observable; consumers and claims are the business
of whoever added them and survive a stop and a start.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Callable

from twisted.internet.defer import Deferred, gatherResults, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import DatagramProtocol
from twisted.logger import Logger

from txbittorrent._reactor import resolve_reactor
from txbittorrent.errors import LocalProtocolError, TxBitTorrentError
from txbittorrent.net.sockets import (
    UNAVAILABLE,
    cannot_listen,
    is_unspecified,
    socket_errno,
    v6only_socket,
)

__all__ = [
    "MAX_DATAGRAM_SIZE", "Address", "Consumer", "Predicate", "FamilyUnavailableError",
    "DatagramCounters", "DatagramMux", "canonical_host", "family_of", "interfaces_for", "is_krpc",
    "v6only_datagram_socket",
]

_log = Logger()

MAX_DATAGRAM_SIZE = 8192
"""Longest datagram routed; longer ones are dropped.  BEP 15 replies are
at most about 4 KiB (opentracker's cap), KRPC and uTP datagrams fit an MTU."""

Address = tuple[str, int]
"""An IP address (a literal, never a host name) and a port."""
Consumer = Callable[[bytes, Address], None]
"""Receives a datagram and its source, the host canonical (``canonical_host``)."""
Predicate = Callable[[bytes], bool]
"""Says whether a datagram is for the consumer it was added with."""




class FamilyUnavailableError(TxBitTorrentError, OSError):
    """No socket of the address's family is bound (no IPv6 here, or not started)."""


@dataclass(slots=True)
class DatagramCounters:
    """What the mux has seen since it was made."""

    received: int = 0
    """Datagrams read from the sockets."""
    delivered: int = 0
    """Datagrams given to at least one consumer."""
    unclaimed: int = 0
    """Datagrams no consumer wanted (dropped)."""
    oversize: int = 0
    """Datagrams over ``max_datagram_size`` (dropped)."""
    consumer_errors: int = 0
    """Exceptions raised by consumers and predicates (logged)."""
    sent: int = 0
    """Datagrams handed to a socket."""


def canonical_host(host: str) -> str:
    """``host`` as the mux reports and compares it: an IPv4-mapped IPv6 address
    as plain IPv4, IPv6 compressed and lower-case.  ``ValueError`` for a name."""
    ip = ipaddress.ip_address(host)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def family_of(host: str) -> int:
    """4 or 6: the family of an IP literal (an IPv4-mapped IPv6 address is 4)."""
    return 6 if ":" in canonical_host(host) else 4


def interfaces_for(listen_interfaces: Iterable[str]) -> tuple[str | None, str | None]:
    """(interface4, interface6) for a mux beside TCP listening on ``listen_interfaces``:
    the first of each family, ``None`` for a family not listed."""
    given = list(listen_interfaces)
    return (
        next((i for i in given if ":" not in i), None),
        next((i for i in given if ":" in i), None),
    )


def is_krpc(datagram: bytes) -> bool:
    """Whether ``datagram`` may be KRPC (BEP 5): a bencoded dict starts with ``d``."""
    return datagram[:1] == b"d"


def _bep15_transaction(datagram: bytes) -> int | None:
    """The transaction id of a datagram shaped like a BEP 15 reply, else ``None``."""
    if len(datagram) < 8 or datagram[:3] != b"\x00\x00\x00":
        return None
    return int.from_bytes(datagram[4:8], "big")


def v6only_datagram_socket(interface: str, port: int) -> socket.socket:
    """A non-blocking IPv6 UDP socket bound to ``interface`` and ``port`` with
    ``IPV6_V6ONLY`` set (so it does not take the IPv4 port too)."""
    return v6only_socket(socket.SOCK_DGRAM, interface, port)


class _Socket(DatagramProtocol):
    """One bound socket of the mux; hands every datagram to it."""

    noisy = False

    def __init__(self, mux: DatagramMux) -> None:
        self._mux = mux

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self._mux._datagram_received(datagram, addr)


class DatagramMux:
    """The session's UDP sockets and the routing of their datagrams (see the module docstring).

    ``interface4`` and ``interface6`` are where each family's socket is bound
    (``None``: no socket of that family); ``v6only_socket`` makes the
    IPv6-only socket (tests replace it)."""

    def __init__(
        self,
        reactor: Any = None,
        *,
        port: int = 0,
        interface4: str | None = "0.0.0.0",
        interface6: str | None = "::",
        max_datagram_size: int = MAX_DATAGRAM_SIZE,
        v6only_socket: Callable[[str, int], Any] = v6only_datagram_socket,
    ) -> None:
        if interface4 is None and interface6 is None:
            raise ValueError("a DatagramMux needs an IPv4 or an IPv6 interface")
        self._reactor = reactor
        self.requested_port = port
        self.interface4 = interface4
        self.interface6 = interface6
        self.max_datagram_size = max_datagram_size
        self._v6only_socket = v6only_socket
        self.counters = DatagramCounters()
        self._sockets: dict[int, Any] = {}
        self._dual_stack = False
        self._claims: dict[int, list[Consumer]] = {}
        self._consumers: list[tuple[Predicate, Consumer]] = []
        self._running = False

    # -- lifecycle --

    @property
    def running(self) -> bool:
        return self._running

    @property
    def families(self) -> frozenset[int]:
        """The families (4, 6) with a bound socket."""
        return frozenset(self._sockets)

    @property
    def port(self) -> int | None:
        """The IPv4 socket's port number, else the IPv6 one's, else ``None``."""
        for family in (4, 6):
            address = self.local_address(family)
            if address is not None:
                return address[1]
        return None

    def local_address(self, family: int) -> Address | None:
        """(interface, port) of the socket of ``family``, if one is bound."""
        listening = self._sockets.get(family)
        if listening is None:
            return None
        host = listening.getHost()
        return (host.host, host.port)

    def start(self) -> None:
        """Bind the sockets (see the module docstring); raises ``CannotListenError``."""
        if self._running:
            raise LocalProtocolError("the datagram mux is already started")
        self._reactor = resolve_reactor(self._reactor)
        try:
            port = self.requested_port
            if self.interface4 is not None:
                self._bind(4, self.interface4, port)
                port = self.port or port
            if self.interface6 is not None:
                self._bind(6, self.interface6, port)
        except BaseException:
            self._close()
            raise
        if not self._sockets:
            wanted = ",".join(i for i in (self.interface4, self.interface6) if i is not None)
            raise cannot_listen(wanted, self.requested_port, OSError("no interface available"))
        self._running = True

    def stop(self) -> Deferred[None]:
        """Close the sockets; the Deferred fires once they are closed."""
        self._running = False
        return self._close()

    # -- consumers --

    def claim(self, transaction_id: int, consumer: Consumer) -> None:
        """Give ``consumer`` the BEP 15 replies carrying ``transaction_id`` until released."""
        claimants = self._claims.setdefault(transaction_id, [])
        if consumer not in claimants:
            claimants.append(consumer)

    @property
    def claimed(self) -> frozenset[int]:
        """The transaction ids claimed now."""
        return frozenset(self._claims)

    def release(self, transaction_id: int, consumer: Consumer) -> None:
        """Undo ``claim`` (nothing happens if there is no such claim)."""
        claimants = self._claims.get(transaction_id)
        if claimants is not None and consumer in claimants:
            claimants.remove(consumer)
            if not claimants:
                del self._claims[transaction_id]

    def add_consumer(self, predicate: Predicate, consumer: Consumer) -> None:
        """Give ``consumer`` the unclaimed datagrams that ``predicate`` accepts,
        unless a consumer added earlier accepts them first."""
        self._consumers.append((predicate, consumer))

    def remove_consumer(self, consumer: Consumer) -> None:
        """Undo every ``add_consumer`` of ``consumer``."""
        self._consumers = [(p, c) for p, c in self._consumers if c != consumer]

    # -- sending --

    def send(self, data: bytes, address: Address) -> None:
        """Send ``data`` to ``address`` (an IP literal and a port) from the socket of its family.

        Raises ``ValueError`` for a host name, ``FamilyUnavailableError`` when
        no socket can reach the address, and whatever the socket raises."""
        host, port = address
        host = canonical_host(host)
        family = 6 if ":" in host else 4
        listening = self._sockets.get(family)
        if listening is None and family == 4 and self._dual_stack:
            listening, host = self._sockets[6], f"::ffff:{host}"
        if listening is None:
            raise FamilyUnavailableError(f"no IPv{family} UDP socket to reach {host}")
        listening.write(data, (host, port))
        self.counters.sent += 1

    # -- internals --

    def _bind(self, family: int, interface: str, port: int) -> None:
        """Bind ``family``'s socket on ``port``, or on another if it is taken;
        log and skip a family or address the host lacks."""
        try:
            try:
                listening = self._listen(family, interface, port)
            except CannotListenError as e:
                if not port or socket_errno(e) != errno.EADDRINUSE:
                    raise
                _log.info(
                    "UDP port {port} on {interface} is taken; binding another",
                    port=port,
                    interface=interface,
                )
                listening = self._listen(family, interface, 0)
        except CannotListenError as e:
            if socket_errno(e) not in UNAVAILABLE:
                raise
            _log.info(
                "no IPv{family} UDP socket on {interface}: unavailable here ({error})",
                family=family,
                interface=interface,
                error=e,
            )
            return
        self._sockets[family] = listening

    def _listen(self, family: int, interface: str, port: int) -> Any:
        reactor = self._reactor
        protocol = _Socket(self)
        size = self.max_datagram_size + 1  # one more, so longer ones show as too long
        can_adopt = getattr(reactor, "adoptDatagramPort", None) is not None
        v6only = family == 6 and 4 in self._sockets and can_adopt
        if not v6only:
            listening = reactor.listenUDP(port, protocol, interface=interface, maxPacketSize=size)
            self._dual_stack = family == 6 and is_unspecified(interface)
            return listening
        # A dual-stack socket would collide with our own IPv4 one: IPv6 only.
        try:
            sock = self._v6only_socket(interface, port)
        except OSError as e:
            raise cannot_listen(interface, port, e) from e
        try:
            return reactor.adoptDatagramPort(sock.fileno(), socket.AF_INET6, protocol, size)
        finally:
            sock.close()  # the reactor keeps its own duplicate

    def _close(self) -> Deferred[None]:
        sockets, self._sockets = self._sockets, {}
        self._dual_stack = False
        closing = [maybeDeferred(listening.stopListening) for listening in sockets.values()]
        if not closing:
            return succeed(None)
        return gatherResults(closing).addCallback(lambda _: None)

    def _datagram_received(self, datagram: bytes, addr: Any) -> None:
        counters = self.counters
        counters.received += 1
        if len(datagram) > self.max_datagram_size:
            counters.oversize += 1
            return
        try:
            address = (canonical_host(addr[0]), int(addr[1]))
        except (ValueError, TypeError, IndexError):
            counters.unclaimed += 1
            return
        consumers = self._route(datagram)
        if not consumers:
            counters.unclaimed += 1
            return
        counters.delivered += 1
        for consumer in consumers:
            try:
                consumer(datagram, address)
            except Exception:
                counters.consumer_errors += 1
                _log.failure("a UDP consumer failed on a datagram from {address}", address=address)

    def _route(self, datagram: bytes) -> list[Consumer]:
        """The consumers of ``datagram``: its claimants, else the first whose predicate holds."""
        transaction_id = _bep15_transaction(datagram)
        if transaction_id is not None:
            claimants = self._claims.get(transaction_id)
            if claimants:
                return list(claimants)
        for predicate, consumer in self._consumers:
            try:
                if predicate(datagram):
                    return [consumer]
            except Exception:
                self.counters.consumer_errors += 1
                _log.failure("a UDP consumer's predicate failed")
        return []
