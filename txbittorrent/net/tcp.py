"""TCP for a session: its listening sockets (every interface, one port
number) and the endpoints its outgoing connections go through.

Theory of operation
-------------------
``TCPListeners`` binds the IPv4 interfaces first, then the IPv6 ones (each
group in the order given), the first on the requested port (0: the
kernel's choice) and the others on the port number it got, so ``port`` is
the same for every family.  With a kernel-chosen port a later interface
finding that number taken makes it start over with a new one (a few
times).  An interface whose address or family the host lacks (no IPv6, no
``::1``) is skipped with a log message; any other failure is raised, as is
finding nothing to bind.  On a dual-stack system (Linux by default) ``::``
cannot be bound on a port ``0.0.0.0`` already holds; it is then bound as an
IPv6-only socket of its own, handed to the reactor with
``adoptStreamPort``, so both families are served by separate sockets and
IPv4 peers keep their plain addresses.

It owns only the sockets: what an accepted connection becomes is the
factory's business (the ``Session``'s).  Listening stays on ``listenTCP``
and ``adoptStreamPort`` rather than server endpoints, because binding every
interface on one port number, with retries when a kernel-chosen number is
taken on a later interface, must finish within ``Session.start``.

Outgoing connections go through ``IStreamClientEndpoint``\ s made by a
``ClientEndpointFactory`` (``tcp_client_endpoint`` by default), so an
encrypted (MSE), uTP or proxied transport is another endpoint.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

__all__ = [
    "ClientEndpointFactory", "PORT_ATTEMPTS", "TCPListeners", "tcp_client_endpoint",
    "v6only_listening_socket",
]

_log = Logger()

PORT_ATTEMPTS = 5
"""How many kernel-chosen port numbers ``start`` tries before giving up when
a later interface finds the number taken."""

_UNAVAILABLE = frozenset(
    code
    for code in (
        getattr(errno, "EADDRNOTAVAIL", None),
        getattr(errno, "EAFNOSUPPORT", None),
        getattr(errno, "EPROTONOSUPPORT", None),
        getattr(errno, "ENETUNREACH", None),
    )
    if code is not None
)
"""Errors meaning this host has no such address or family: skip the interface."""


def v6only_listening_socket(interface: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking IPv6 socket listening on ``interface`` and ``port``
    with ``IPV6_V6ONLY`` set (so it does not claim the IPv4 port)."""
    sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((interface, port))
        sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _socket_errno(error: CannotListenError) -> int | None:
    socket_error = getattr(error, "socketError", None)
    return getattr(socket_error, "errno", None)


def _cannot_listen(interface: str, port: int, error: OSError) -> CannotListenError:
    make: Any = CannotListenError  # untyped in Twisted
    result: CannotListenError = make(interface, port, error)
    return result


def _is_ipv6(interface: str) -> bool:
    return ":" in interface


ClientEndpointFactory = Callable[[Any, tuple[str, int], float], Any]
"""``(reactor, (host, port), timeout)`` to the endpoint a peer is dialed through."""


def tcp_client_endpoint(reactor: Any, address: tuple[str, int], timeout: float) -> Any:
    """A plain TCP endpoint (an ``IStreamClientEndpoint``) to an IPv4 or IPv6
    literal address."""
    host, port = address
    make: Any = TCP6ClientEndpoint if ":" in host else TCP4ClientEndpoint  # untyped in Twisted
    return make(reactor, host, port, timeout=timeout)


class TCPListeners:
    """The listening sockets of one session (see the module docstring)."""

    def __init__(
        self,
        reactor: Any,
        interfaces: Sequence[str],
        port: int,
        backlog: int,
        v6only_socket: Callable[[str, int, int], Any] = v6only_listening_socket,
    ) -> None:
        self.reactor = reactor
        self.interfaces = tuple(interfaces)
        self.requested_port = port
        self.backlog = backlog
        self.v6only_socket = v6only_socket
        self.listening: list[tuple[str, Any]] = []
        """(interface, IListeningPort) of each bound socket."""
        self.port: int | None = None
        """The port number bound (None when nothing is)."""

    def listen(self, factory: ServerFactory) -> None:
        """Bind every interface (see the module docstring); ``CannotListenError``
        if that fails, leaving nothing bound."""
        attempts = PORT_ATTEMPTS if self.requested_port == 0 else 1
        for attempt in range(attempts):
            try:
                self._listen_once(factory, last=attempt == attempts - 1)
                return
            except _PortTaken:
                self.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def _listen_once(self, factory: ServerFactory, last: bool) -> None:
        port = self.requested_port
        # IPv4 first: a dual-stack "::" bound first would take the IPv4 port too.
        ordered = sorted(self.interfaces, key=_is_ipv6)
        try:
            for interface in ordered:
                try:
                    listening = self._listen_on(interface, port, factory)
                except CannotListenError as e:
                    code = _socket_errno(e)
                    if code in _UNAVAILABLE:
                        _log.info(
                            "not listening on {interface}: unavailable here ({error})",
                            interface=interface,
                            error=e,
                        )
                        continue
                    if code == errno.EADDRINUSE and self.listening and not last:
                        raise _PortTaken() from e
                    raise
                self.listening.append((interface, listening))
                if port == 0:
                    port = listening.getHost().port
        except _PortTaken:
            raise  # _listen closes what is bound and starts over
        except BaseException:
            self.close()
            raise
        if self.interfaces and not self.listening:
            raise _cannot_listen(
                ",".join(self.interfaces),
                self.requested_port,
                OSError("no interface available"),
            )
        self.port = port if self.listening else None

    def _listen_on(self, interface: str, port: int, factory: ServerFactory) -> Any:
        reactor = self.reactor
        backlog = self.backlog
        try:
            return reactor.listenTCP(port, factory, backlog=backlog, interface=interface)
        except CannotListenError as e:
            if not (
                port
                and _is_ipv6(interface)
                and ipaddress.ip_address(interface.partition("%")[0]).is_unspecified
                and _socket_errno(e) == errno.EADDRINUSE
                and any(
                    not _is_ipv6(bound) and ipaddress.ip_address(bound).is_unspecified
                    for bound, _ in self.listening
                )
                and hasattr(reactor, "adoptStreamPort")
            ):
                raise
        # A dual-stack "::" collides with our own "0.0.0.0": bind IPv6 only.
        try:
            sock = self.v6only_socket(interface, port, backlog)
        except OSError as e:
            raise _cannot_listen(interface, port, e) from e
        try:
            return reactor.adoptStreamPort(sock.fileno(), socket.AF_INET6, factory)
        finally:
            sock.close()  # the reactor keeps its own duplicate

    def close(self) -> list[Deferred[Any]]:
        """Stop listening; a Deferred per socket, fired once it is closed."""
        waits = [maybeDeferred(listening.stopListening) for _, listening in self.listening]
        self.listening = []
        self.port = None
        return waits


class _PortTaken(Exception):
    """A kernel-chosen port number is taken on a later interface: start over."""
