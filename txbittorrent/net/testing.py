"""In-memory UDP for tests: a reactor whose ``listenUDP`` binds nothing real.

Theory of operation
-------------------
``MemoryUDPReactor`` is a ``MemoryReactorClock`` (so it also records TCP
listens and has a ``Clock``) with ``listenUDP`` and ``adoptDatagramPort``
that return ``FakeDatagramPort`` objects.  A port records what is written
to it (``written``) and lets a test hand its protocol a datagram
(``deliver``); ``stopListening`` closes it and takes it off the reactor's
``udp_ports``.  Binding follows a host's rules closely enough to test
binding logic: a port number already bound on the same interface (or on
any interface, for a wildcard) is ``EADDRINUSE``; a dual-stack ``::``
collides with every IPv4 socket on its port, an IPv6-only one (made with
``v6only_socket`` and adopted) does not; interfaces listed in
``unavailable`` fail with ``EADDRNOTAVAIL``.  Port 0 gets numbers counting
up from ``next_port``.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.error import CannotListenError, InvalidAddressError
from twisted.internet.testing import MemoryReactorClock

_invalid_address: Any = InvalidAddressError  # untyped in Twisted

__all__ = ["FakeDatagramPort", "FakeV6OnlySocket", "MemoryUDPReactor"]


def _is_ipv6(host: str) -> bool:
    return ":" in host


def _unspecified(host: str) -> bool:
    return ipaddress.ip_address(host.partition("%")[0]).is_unspecified


class FakeDatagramPort:
    """A bound UDP socket of a ``MemoryUDPReactor``."""

    def __init__(
        self,
        reactor: MemoryUDPReactor,
        protocol: Any,
        interface: str,
        port: int,
        *,
        v6only: bool = False,
        max_packet_size: int = 8192,
    ) -> None:
        self.reactor = reactor
        self.protocol = protocol
        self.interface = interface
        self.port = port
        self.v6only = v6only
        self.max_packet_size = max_packet_size
        self.family = 6 if _is_ipv6(interface) else 4
        self.written: list[tuple[bytes, tuple[str, int]]] = []
        self.closed = False

    def write(self, datagram: bytes, addr: tuple[str, int]) -> None:
        """Record ``datagram``; refuse a host name or the other family, as Twisted does."""
        try:
            ip = ipaddress.ip_address(addr[0].partition("%")[0])
        except ValueError:
            raise _invalid_address(addr[0], "not an IP address") from None
        if (ip.version == 6) != (self.family == 6):
            raise _invalid_address(addr[0], f"IPv{self.family} port, IPv{ip.version} address")
        self.written.append((datagram, (addr[0], addr[1])))

    def deliver(self, datagram: bytes, addr: tuple[str, int]) -> None:
        """Hand the protocol a datagram from ``addr``, as the socket would (truncated)."""
        self.protocol.datagramReceived(datagram[: self.max_packet_size], addr)

    def getHost(self) -> IPv4Address | IPv6Address:
        if self.family == 6:
            return IPv6Address("UDP", self.interface, self.port)
        return IPv4Address("UDP", self.interface, self.port)

    def stopListening(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.reactor.udp_ports.remove(self)
        self.protocol.doStop()


class FakeV6OnlySocket:
    """What ``MemoryUDPReactor.v6only_socket`` returns: a number standing for a socket."""

    def __init__(self, number: int, interface: str, port: int) -> None:
        self.number = number
        self.interface = interface
        self.port = port
        self.closed = False

    def fileno(self) -> int:
        return self.number

    def close(self) -> None:
        self.closed = True


class MemoryUDPReactor(MemoryReactorClock):
    """A ``MemoryReactorClock`` with in-memory UDP (see the module docstring)."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.udp_ports: list[FakeDatagramPort] = []
        self.unavailable: set[str] = set()
        self.next_port = 40000
        self.v6only_sockets: list[FakeV6OnlySocket] = []

    def listenUDP(
        self, port: int, protocol: Any, interface: str = "", maxPacketSize: int = 8192
    ) -> FakeDatagramPort:
        interface = interface or "0.0.0.0"
        try:
            port = self._claim(interface, port, v6only=False)
        except OSError as e:
            make: Any = CannotListenError  # untyped in Twisted
            raise make(interface, port, e) from e
        bound = FakeDatagramPort(self, protocol, interface, port, max_packet_size=maxPacketSize)
        return self._open(bound)

    def v6only_socket(self, interface: str, port: int) -> FakeV6OnlySocket:
        """A stand-in for ``net.udp.v6only_datagram_socket``: fails as its bind
        would; the port is taken only once the socket is adopted."""
        port = self._claim(interface, port, v6only=True)
        sock = FakeV6OnlySocket(1000 + len(self.v6only_sockets), interface, port)
        self.v6only_sockets.append(sock)
        return sock

    def adoptDatagramPort(
        self, fileno: int, addressFamily: int, protocol: Any, maxPacketSize: int = 8192
    ) -> FakeDatagramPort:
        assert addressFamily == socket.AF_INET6, "only IPv6-only sockets are adopted here"
        [sock] = [s for s in self.v6only_sockets if s.number == fileno]
        assert not sock.closed, "adopted after close"
        bound = FakeDatagramPort(
            self, protocol, sock.interface, sock.port, v6only=True, max_packet_size=maxPacketSize
        )
        return self._open(bound)

    def _open(self, bound: FakeDatagramPort) -> FakeDatagramPort:
        self.udp_ports.append(bound)
        bound.protocol.makeConnection(bound)
        return bound

    def _claim(self, interface: str, port: int, *, v6only: bool) -> int:
        """The port number a bind of ``interface`` and ``port`` gets; ``OSError`` as a host's."""
        if interface in self.unavailable:
            raise OSError(errno.EADDRNOTAVAIL, "address not available")
        if port == 0:
            port, self.next_port = self.next_port, self.next_port + 1
        for other in self.udp_ports:
            if other.port == port and self._collide(interface, v6only, other):
                raise OSError(errno.EADDRINUSE, "address already in use")
        return port

    @staticmethod
    def _collide(interface: str, v6only: bool, other: FakeDatagramPort) -> bool:
        if _is_ipv6(interface) == (other.family == 6):
            return interface == other.interface or _unspecified(interface) or _unspecified(
                other.interface
            )
        # Across families only a dual-stack wildcard collides.
        six, six_v6only = (interface, v6only) if _is_ipv6(interface) else (
            other.interface, other.v6only
        )
        return _unspecified(six) and not six_v6only
