"""Many torrents behind one listening port: listener, dialer and global limits.

Theory of operation
-------------------
A ``Session`` owns what the torrents of one client share:

* the listening sockets, one per interface, all on one port number;
* the registry of torrents (``PeerHost``, keyed by ``info_hash``), which
  routes an incoming connection to its torrent once the first 48 bytes of
  the peer's handshake name the info hash (``route``, the links' router);
* outgoing connection attempts (``connect``, the ``Dialer``), under the
  global limits: ``max_connections`` (live links plus attempts in progress)
  and ``max_half_open`` (attempts whose TCP connect has not completed);
* the global rate limits, ``upload_throttle`` and ``download_throttle``,
  charged by every link along with its torrent's own;
* the ``LinkGroup`` of live links, with the one coarse timer that checks
  their timeouts and keep-alives (see ``peerprotocol``);
* the thread pool (``threadpool``, ``SessionConfig.disk_threads`` threads)
  in which every torrent sharing the session reads, hashes and writes, so a
  thousand torrents make a handful of threads, not thousands.  It is made
  and started on first use (a torrent may check its data before the session
  listens), and stopped by ``stop`` (if idle; else at reactor shutdown).

It knows nothing of pieces, choking or peers' ids: everything after the TCP
connection belongs to ``PeerProtocol`` and the host.

Life cycle: ``new`` -> ``start()`` -> ``running`` -> ``stop()`` ->
``stopped``.  The constructor does nothing observable (the reactor is
resolved by ``start``).  ``start`` binds the listening ports; ``stop`` stops
listening, cancels the attempts in progress (each host hears
``connect_failed``), aborts every link (accepted ones end with ``peer_lost``)
and fires once every port is closed and every link is gone; the link timer
stops with the last link, so nothing is left scheduled.

An attempt ends in exactly one way: ``connect_failed`` (TCP failure, timeout,
cancellation by ``stop``/``remove_host``, or a link that ended before its
handshake was accepted), or an accepted handshake (``peer_connected`` True,
later ``peer_lost``), or a refused one (``peer_connected`` False, then
silence).  ``connect`` returns False (and nothing follows) when a limit stops
it now, for an address already connected or being connected for the same
torrent, and for our own listening address.

Listening: the IPv4 interfaces are bound first, then the IPv6 ones (each
group in the order given), the first on ``listen_port`` (0: the kernel's
choice) and the others on the port number it got, so ``port`` is the same
for every family.  With a kernel-chosen port a
later interface finding that number taken makes the session start over with
a new one (a few times).  An interface whose address or family the host
lacks (no IPv6, no ``::1``) is skipped with a log message; any other failure
fails ``start``, as does finding nothing to bind.  By default the session
listens on ``0.0.0.0`` and ``::``.  On a dual-stack system (Linux by default)
``::`` cannot be bound on a port ``0.0.0.0`` already holds; the session then
binds it as an IPv6-only socket of its own, handed to the reactor with
``adoptStreamPort``, so both families are served by separate sockets and
IPv4 peers keep their plain addresses.

Our own address: ``connect`` refuses an address whose port is one of ours
and whose host is loopback, unspecified, or an interface we bound.  Our LAN
address on a wildcard socket is not recognised here; the handshake's
``peer_id`` check (``PeerSession``) catches that connection instead.
"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Callable

from twisted.internet.defer import Deferred, fail, gatherResults, maybeDeferred, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import ClientFactory, ServerFactory
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from txbittorrent.errors import LocalProtocolError
from txbittorrent.interfaces import Address, PeerHost
from txbittorrent.peer.links import LinkConfig, LinkGroup, normalize_host
from txbittorrent.peer.protocol import PeerProtocol
from txbittorrent.peer.throttle import Throttle

__all__ = ["Session", "SessionConfig", "DEFAULT_INTERFACES", "v6only_listening_socket"]

_log = Logger()

DEFAULT_INTERFACES = ("0.0.0.0", "::")
"""Every IPv4 and IPv6 address of the host."""

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

_NEW, _RUNNING, _STOPPED = "new", "running", "stopped"


@dataclass(frozen=True)
class SessionConfig:
    """The limits and settings of a ``Session``."""

    max_connections: int = 200
    """Live links plus attempts in progress, all torrents together."""
    max_half_open: int = 20
    """Outgoing attempts whose TCP connect has not completed."""
    connect_timeout: float = 10.0
    """Seconds a TCP connect may take."""
    upload_limit: float | None = None
    """Bytes per second for all torrents; None is unlimited."""
    download_limit: float | None = None
    backlog: int = 50
    """The listening sockets' accept backlog."""
    link: LinkConfig = field(default_factory=LinkConfig)
    """Timeouts and socket options of every connection."""
    disk_threads: int = 6
    """Threads of the pool shared by the session's torrents for disk I/O and
    hashing (writes to one file go one at a time whatever this is)."""


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


class _Listener(ServerFactory):
    """Builds an incoming link for each accepted connection."""

    noisy = False

    def __init__(self, session: Session) -> None:
        self._session = session

    def buildProtocol(self, addr: Any) -> PeerProtocol | None:
        return self._session._incoming()


class _Dial(ClientFactory):
    """One outgoing attempt: its host, address, connector and state."""

    noisy = False

    def __init__(self, session: Session, host: PeerHost, address: Address) -> None:
        self.session = session
        self.host = host
        self.address = address
        self.connector: Any = None
        self.connected = False
        self.done = False

    def buildProtocol(self, addr: Any) -> PeerProtocol | None:
        return self.session._dial_connected(self)

    def clientConnectionFailed(self, connector: Any, reason: Failure) -> None:
        self.session._dial_failed(self, f"connect failed: {reason.getErrorMessage()}")

    def clientConnectionLost(self, connector: Any, reason: Failure) -> None:
        self.session._dial_ended(self)


class Session:
    """The listening port, outgoing connections and global limits of a client."""

    def __init__(
        self,
        reactor: Any = None,
        listen_port: int = 0,
        listen_interfaces: Sequence[str] = DEFAULT_INTERFACES,
        config: SessionConfig | None = None,
    ) -> None:
        """``reactor`` (``IReactorTCP`` and ``IReactorTime``; the global one,
        resolved by ``start``, if None).  ``listen_interfaces`` may be empty:
        no listening, outgoing connections only."""
        if not 0 <= listen_port <= 0xFFFF:
            raise ValueError(f"listen_port out of range: {listen_port}")
        self.config = config if config is not None else SessionConfig()
        self.listen_port = listen_port
        self.listen_interfaces = tuple(listen_interfaces)
        self.upload_throttle = Throttle(self.config.upload_limit, reactor)
        """The global upload limit; ``set_rate`` changes it at any time."""
        self.download_throttle = Throttle(self.config.download_limit, reactor)
        """The global download limit."""
        self.port: int | None = None
        """The port number we listen on, once started (None if not listening)."""
        self._given_reactor = reactor
        self._reactor: Any = None
        self._state = _NEW
        self._listening: list[tuple[str, Any]] = []  # (interface, IListeningPort)
        self._hosts: dict[bytes, PeerHost] = {}
        self._dials: dict[tuple[bytes, Address], _Dial] = {}
        self._half_open = 0
        self._links: LinkGroup | None = None
        self._v6only_socket: Callable[[str, int, int], Any] = v6only_listening_socket
        self._pool: ThreadPool | None = None
        self._pool_trigger: Any = None
        self._pool_reactor: Any = None

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        """Bind the listening ports; fires when listening (or fails with
        ``CannotListenError``, leaving nothing bound)."""
        if self._state != _NEW:
            raise LocalProtocolError(f"start() on a {self._state} session")
        reactor = self._reactor = self.resolve_reactor()
        self._links = LinkGroup(reactor, self.config.link.tick_interval)
        try:
            self._listen()
        except CannotListenError as e:
            self._state = _STOPPED
            return fail(e)
        self._state = _RUNNING
        return succeed(None)

    def stop(self) -> Deferred[None]:
        """Stop listening, cancel attempts, abort links; fires once every port
        is closed and every link gone."""
        if self._state == _STOPPED:
            return self._links.when_empty() if self._links is not None else succeed(None)
        self._state = _STOPPED
        waits: list[Deferred[Any]] = []
        for _, listening in self._listening:
            waits.append(maybeDeferred(listening.stopListening))
        self._listening = []
        for dial in list(self._dials.values()):
            self._cancel_dial(dial, "session stopped")
        if self._links is not None:
            for link in self._links:
                link.abort("session stopped")
            waits.append(self._links.when_empty())
        done: Deferred[Any] = gatherResults(waits, consumeErrors=True)
        done.addCallback(lambda _: self._stop_pool())
        return done

    def resolve_reactor(self) -> Any:
        """The reactor given to the constructor, else the global one."""
        if self._given_reactor is not None:
            return self._given_reactor
        from twisted.internet import reactor as global_reactor

        return global_reactor

    # -- the shared thread pool ------------------------------------------------------

    @property
    def threadpool(self) -> ThreadPool:
        """The pool of the session's torrents' disk work, started on first use."""
        pool = self._pool
        if pool is None:
            reactor = self.resolve_reactor()
            pool = self._pool = ThreadPool(0, self.config.disk_threads, name="txbittorrent-disk")
            pool.start()
            self._pool_trigger = reactor.addSystemEventTrigger("during", "shutdown", pool.stop)
            self._pool_reactor = reactor
        return pool

    def _stop_pool(self) -> None:
        """Stop the pool if it is idle.  Stopping joins its threads, so with a
        job still running (a torrent's hash check, say) that would block the
        reactor: such a pool is left to the shutdown trigger.  A torrent
        using the session after a pool was stopped gets a new one."""
        pool = self._pool
        if pool is None or pool.working:
            return
        self._pool = None
        self._pool_reactor.removeSystemEventTrigger(self._pool_trigger)
        self._pool_trigger = None
        pool.stop()

    @property
    def running(self) -> bool:
        return self._state == _RUNNING

    @property
    def listening_addresses(self) -> list[Address]:
        """(interface, port) of each listening socket."""
        return [(interface, listening.getHost().port) for interface, listening in self._listening]

    # -- torrents --------------------------------------------------------------------

    def add_host(self, host: PeerHost) -> None:
        """Register a torrent: incoming connections for its info hash go to it,
        and ``connect`` accepts it."""
        known = self._hosts.get(host.info_hash)
        if known is not None and known is not host:
            raise LocalProtocolError(f"another host has info hash {host.info_hash.hex()}")
        self._hosts[host.info_hash] = host

    def remove_host(self, host: PeerHost) -> None:
        """Unregister a torrent: its attempts in progress are cancelled
        (``connect_failed``) and its links not yet accepted are closed.  Its
        accepted links are the host's to close."""
        if self._hosts.get(host.info_hash) is not host:
            return
        del self._hosts[host.info_hash]
        for dial in list(self._dials.values()):
            if dial.host is host and not dial.connected:
                self._cancel_dial(dial, "torrent removed")
        if self._links is not None:
            for link in self._links:
                if link.host is host and not link.accepted:
                    link.close("torrent removed")

    def route(self, info_hash: bytes) -> PeerHost | None:
        """The registered host for an incoming handshake's info hash."""
        if self._state != _RUNNING:
            return None
        return self._hosts.get(info_hash)

    # -- counts ----------------------------------------------------------------------

    @property
    def half_open(self) -> int:
        """Outgoing attempts whose TCP connect has not completed."""
        return self._half_open

    def connection_count(self, host: PeerHost | None = None) -> int:
        """Live links plus attempts in progress, for one host or all."""
        links = self._links
        if host is None:
            return (len(links) if links is not None else 0) + self._half_open
        count = sum(1 for dial in self._dials.values() if dial.host is host and not dial.connected)
        if links is not None:
            count += sum(1 for link in links if link.host is host)
        return count

    def links(self, host: PeerHost | None = None) -> Iterator[PeerProtocol]:
        """The live links (from TCP connect to connection loss), for one host or all."""
        if self._links is None:
            return iter(())
        return (link for link in self._links if host is None or link.host is host)

    # -- Dialer ------------------------------------------------------------------------

    def connect(self, host: PeerHost, address: Address) -> bool:
        """Start connecting to ``address`` for ``host`` (see the module
        docstring for when it returns False)."""
        if self._state != _RUNNING:
            return False
        if self._hosts.get(host.info_hash) is not host:
            raise LocalProtocolError("connect() for a host that was not added with add_host()")
        address = (normalize_host(address[0]), address[1])
        key = (host.info_hash, address)
        if key in self._dials or self.is_own_address(address):
            return False
        config = self.config
        if self._half_open >= config.max_half_open:
            return False
        if self.connection_count() >= config.max_connections:
            return False
        links = self._links
        assert links is not None
        if any(link.host is host and link.address == address for link in links):
            return False
        dial = _Dial(self, host, address)
        self._dials[key] = dial
        self._half_open += 1
        dial.connector = self._reactor.connectTCP(
            address[0], address[1], dial, timeout=config.connect_timeout
        )
        return True

    def is_own_address(self, address: Address) -> bool:
        """Whether ``address`` is one of our listening sockets (see the module
        docstring for how far this goes)."""
        host, port = normalize_host(address[0]), address[1]
        if not self._listening or port not in {p.getHost().port for _, p in self._listening}:
            return False
        try:
            ip = ipaddress.ip_address(host.partition("%")[0])
        except ValueError:
            return host == "localhost"
        if ip.is_loopback or ip.is_unspecified:
            return True
        for interface, _ in self._listening:
            try:
                if ipaddress.ip_address(interface.partition("%")[0]) == ip:
                    return True
            except ValueError:
                continue
        return False

    # -- internals: listening ------------------------------------------------------

    def _listen(self) -> None:
        attempts = PORT_ATTEMPTS if self.listen_port == 0 else 1
        for attempt in range(attempts):
            try:
                self._listen_once(last=attempt == attempts - 1)
                return
            except _PortTaken:
                self._close_listening()
        raise AssertionError("unreachable")  # pragma: no cover

    def _listen_once(self, last: bool) -> None:
        factory = _Listener(self)
        port = self.listen_port
        # IPv4 first: a dual-stack "::" bound first would take the IPv4 port too.
        ordered = sorted(self.listen_interfaces, key=_is_ipv6)
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
                    if code == errno.EADDRINUSE and self._listening and not last:
                        raise _PortTaken() from e
                    raise
                self._listening.append((interface, listening))
                if port == 0:
                    port = listening.getHost().port
        except _PortTaken:
            raise  # _listen closes what is bound and starts over
        except BaseException:
            self._close_listening()
            raise
        if self.listen_interfaces and not self._listening:
            raise _cannot_listen(
                ",".join(self.listen_interfaces),
                self.listen_port,
                OSError("no interface available"),
            )
        self.port = port if self._listening else None

    def _listen_on(self, interface: str, port: int, factory: _Listener) -> Any:
        reactor = self._reactor
        backlog = self.config.backlog
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
                    for bound, _ in self._listening
                )
                and hasattr(reactor, "adoptStreamPort")
            ):
                raise
        # A dual-stack "::" collides with our own "0.0.0.0": bind IPv6 only.
        try:
            sock = self._v6only_socket(interface, port, backlog)
        except OSError as e:
            raise _cannot_listen(interface, port, e) from e
        try:
            return reactor.adoptStreamPort(sock.fileno(), socket.AF_INET6, factory)
        finally:
            sock.close()  # the reactor keeps its own duplicate

    def _close_listening(self) -> None:
        for _, listening in self._listening:
            listening.stopListening()
        self._listening = []
        self.port = None

    # -- internals: links and attempts ---------------------------------------------

    def _link_options(self) -> dict[str, Any]:
        return {
            "config": self.config.link,
            "upload_throttles": (self.upload_throttle,),
            "download_throttles": (self.download_throttle,),
        }

    def _incoming(self) -> PeerProtocol | None:
        if self._state != _RUNNING or self.connection_count() >= self.config.max_connections:
            return None
        assert self._links is not None
        return PeerProtocol(self._links, router=self.route, **self._link_options())

    def _dial_connected(self, dial: _Dial) -> PeerProtocol | None:
        if dial.done or dial.connected:
            return None
        dial.connected = True
        self._half_open -= 1
        assert self._links is not None
        return PeerProtocol(
            self._links, host=dial.host, address=dial.address, **self._link_options()
        )

    def _dial_failed(self, dial: _Dial, reason: str) -> None:
        if dial.done:
            return
        self._forget_dial(dial)
        dial.host.connect_failed(dial.address, reason)

    def _dial_ended(self, dial: _Dial) -> None:
        if not dial.done:
            self._forget_dial(dial)

    def _forget_dial(self, dial: _Dial) -> None:
        dial.done = True
        if not dial.connected:
            self._half_open -= 1
        key = (dial.host.info_hash, dial.address)
        if self._dials.get(key) is dial:
            del self._dials[key]

    def _cancel_dial(self, dial: _Dial, reason: str) -> None:
        if dial.connected:
            # Its link is in the group; closing the link ends the attempt.
            return
        self._forget_dial(dial)
        try:
            dial.connector.stopConnecting()
        except Exception:  # already connected or failed in the meantime
            pass
        dial.host.connect_failed(dial.address, reason)


class _PortTaken(Exception):
    """A kernel-chosen port number is taken on a later interface: start over."""
