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
import socket
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger

from txbittorrent.net.sockets import (
    UNAVAILABLE,
    cannot_listen,
    is_ipv6,
    is_unspecified,
    socket_errno,
    v6only_socket,
)

__all__ = [
    "ClientEndpointFactory", "PORT_ATTEMPTS", "TCPListeners", "tcp_client_endpoint",
    "v6only_listening_socket",
]

_log = Logger()

PORT_ATTEMPTS = 5
"""How many kernel-chosen port numbers ``start`` tries before giving up when
a later interface finds the number taken."""




def v6only_listening_socket(interface: str, port: int, backlog: int) -> socket.socket:
    """A non-blocking IPv6 socket listening on ``interface`` and ``port``
    with ``IPV6_V6ONLY`` set (so it does not claim the IPv4 port)."""
    return v6only_socket(socket.SOCK_STREAM, interface, port, backlog)


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
        ordered = sorted(self.interfaces, key=is_ipv6)
        try:
            for interface in ordered:
                try:
                    listening = self._listen_on(interface, port, factory)
                except CannotListenError as e:
                    code = socket_errno(e)
                    if code in UNAVAILABLE:
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
            raise cannot_listen(
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
                and is_ipv6(interface)
                and is_unspecified(interface)
                and socket_errno(e) == errno.EADDRINUSE
                and any(
                    not is_ipv6(bound) and is_unspecified(bound)
                    for bound, _ in self.listening
                )
                and hasattr(reactor, "adoptStreamPort")
            ):
                raise
        # A dual-stack "::" collides with our own "0.0.0.0": bind IPv6 only.
        try:
            sock = self.v6only_socket(interface, port, backlog)
        except OSError as e:
            raise cannot_listen(interface, port, e) from e
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
