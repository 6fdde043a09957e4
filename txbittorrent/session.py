"""Many torrents behind one listening port: listener, dialer and global limits.

Theory of operation
-------------------
A ``Session`` owns what the torrents of one client share:

* the listening sockets, one per interface, all on one port number;
* the registry of torrents (``PeerHost``, keyed by ``info_hash``), which
  routes an incoming connection to its torrent once the first 48 bytes of
  the peer's handshake name the info hash (``route``, the links' router);
* outgoing connection attempts (``connect``, a ``peer.dialer.Dialer``), under the
  global limits: ``max_connections`` (live links plus attempts in progress)
  and ``max_half_open`` (attempts whose TCP connect has not completed);
* the global rate limits, ``upload_throttle`` and ``download_throttle``,
  charged by every link along with its torrent's own;
* the ``LinkGroup`` of live links, with the one coarse timer that checks
  their timeouts and keep-alives (see ``peerprotocol``);
* the DHT node (``dht``, BEP 5), when ``SessionConfig.dht.enabled``: on
  the session's UDP sockets (or on sockets of its own when
  ``DHTConfig.port`` names another port), started and stopped with the
  session; it publishes ``DHTReady`` on ``events``;
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

Listening: ``net.tcp.TCPListeners`` binds every interface on one port
number (IPv4 first; an IPv6-only socket beside a wildcard IPv4 one).  By
default the session listens on ``0.0.0.0`` and ``::``.

Encryption fallback (``SessionConfig.encryption == "enabled"``): we dial
plain first (``DIAL_ENCRYPTED_FIRST``).  A peer that drops our plain
dial before sending a byte (a client with encryption required) is
remembered, and the next dial to it goes encrypted; one that drops an
encrypted dial before its DH key (MSE step 2) is remembered the other way.
The memory (``peer.dialer.DialMethods``) is an LRU of ``FALLBACK_MEMORY`` addresses.
The attempt still ends in ``connect_failed``; when the address was not
remembered before, the reason starts with ``peer.msepolicy.ENCRYPTION_RETRY``,
which tells the swarm to redial on the next reactor turn rather than after
its backoff (once: a peer that drops both methods backs off as usual).
Measured against libtorrent 2.1 on loopback (from ``add_peers`` to the
accepted handshake): plain first connects to a default libtorrent in
1.0-1.4 ms (encrypted first: 2.0-3.0 ms, one more round trip and the DH
work) and to one with encryption forced in 2.3-3.3 ms, the dropped dial
included (encrypted first: 1.9-2.4 ms); most peers accept plain, hence
plain first.  On a real network the difference is a round trip either way.

Our own address: ``connect`` refuses an address whose port is one of ours
and whose host is loopback, unspecified, or an interface we bound.  Our LAN
address on a wildcard socket is not recognised here; the handshake's
``peer_id`` check (``PeerSession``) catches that connection instead.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import os
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from twisted.internet.defer import Deferred, fail, gatherResults, succeed
from twisted.internet.error import CannotListenError
from twisted.internet.protocol import ServerFactory
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from txbittorrent._reactor import resolve_reactor
from txbittorrent.core.metainfo import MetainfoLimits
from txbittorrent.errors import LocalProtocolError
from txbittorrent.interfaces import Address, PeerHost
from txbittorrent.peer.dialer import (
    DIAL_ENCRYPTED_FIRST,
    FALLBACK_MEMORY,
    Dial,
    Dialer,
    DialMethods,
)
from txbittorrent.peer.links import LinkConfig, LinkGroup, normalize_host
from txbittorrent.peer.mse import MSEPeerProtocol, PlainPeerProtocol
from txbittorrent.peer.msepolicy import ENCRYPTION_MODES, Req2Map
from txbittorrent.peer.protocol import PeerProtocol
from txbittorrent.dht.config import DHTConfig
from txbittorrent.eventtypes import TorrentAdded, TorrentRemoved
from txbittorrent.events import EventBus
from txbittorrent.net.tcp import (
    ClientEndpointFactory,
    TCPListeners,
    tcp_client_endpoint,
    v6only_listening_socket,
)
from txbittorrent.net.udp import DatagramMux, interfaces_for
from txbittorrent.storage.batch import JobBatcher
from txbittorrent.tracker.client import UDPTrackerClient
from txbittorrent.peer.throttle import Throttle

if TYPE_CHECKING:
    from txbittorrent.dht.node import DHTNode
    from txbittorrent.torrent import Torrent

__all__ = ["Session", "SessionConfig", "DEFAULT_INTERFACES", "DIAL_ENCRYPTED_FIRST",
           "FALLBACK_MEMORY", "v6only_listening_socket"]

_log = Logger()

DEFAULT_INTERFACES = ("0.0.0.0", "::")
"""Every IPv4 and IPv6 address of the host."""

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
    dht: DHTConfig = field(default_factory=DHTConfig)
    """The DHT node (BEP 5): off unless ``dht.enabled``."""
    resume_dir: str | None = None
    """Where ``add`` puts each torrent's resume record (``<info hash>.resume``)
    when it is given no ``resume_path``; None: no record unless given."""
    encryption: str = "enabled"
    """MSE/PE (``peer.mse``): ``"disabled"`` (plain only), ``"enabled"``
    (incoming: plain or encrypted, plaintext selected when the peer offers
    both; outgoing: plain first, which costs no extra round trip and no
    cipher work, with an encrypted fallback for a peer that drops plain
    handshakes; see "Encryption fallback" in the module docstring) or
    ``"forced"`` (RC4 both ways; plain incoming refused)."""

    def __post_init__(self) -> None:
        if self.encryption not in ENCRYPTION_MODES:
            raise ValueError(f"encryption must be one of {ENCRYPTION_MODES}: {self.encryption!r}")


class _Listener(ServerFactory):
    """Builds an incoming link for each accepted connection."""

    noisy = False

    def __init__(self, session: Session) -> None:
        self._session = session
        self.req2 = Req2Map(session._hosts)
        """The MSE responders' torrent lookup over the session's registry."""

    def buildProtocol(self, addr: Any) -> PeerProtocol | None:
        return self._session._incoming(self.req2)


class Session:
    """The listening port, outgoing connections and global limits of a client."""

    def __init__(
        self,
        reactor: Any = None,
        listen_port: int = 0,
        listen_interfaces: Sequence[str] = DEFAULT_INTERFACES,
        config: SessionConfig | None = None,
        *,
        events: EventBus | None = None,
    ) -> None:
        """``reactor`` (``IReactorTCP`` and ``IReactorTime``; the global one,
        resolved by ``start``, if None).  ``listen_interfaces`` may be empty:
        no listening, outgoing connections only.  ``events``: the bus to
        publish on (default: a new one)."""
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
        self._tcp: TCPListeners | None = None
        self._hosts: dict[bytes, PeerHost] = {}
        self._dialer = Dialer(self._dial_connected)
        self._dial_methods = DialMethods()
        """Encryption fallback: how to dial each address (see the module docstring)."""
        self._links: LinkGroup | None = None
        self._v6only_socket: Callable[[str, int, int], Any] = v6only_listening_socket
        self.client_endpoint: ClientEndpointFactory = tcp_client_endpoint
        """Makes the endpoint an outgoing connection goes through:
        ``(reactor, address, timeout) -> IStreamClientEndpoint`` (plain TCP
        by default; an encrypting, uTP or proxy endpoint could go here)."""
        self.events = events if events is not None else EventBus()
        """Every event of the session's torrents (``events.EventBus``)."""
        self._torrents: dict[bytes, Torrent] = {}
        self._udp: DatagramMux | None = None
        self._udp_tracker: UDPTrackerClient | None = None
        self._dht: DHTNode | None = None
        self._dht_udp: DatagramMux | None = None
        self._pool: ThreadPool | None = None
        self._pool_trigger: Any = None
        self._pool_reactor: Any = None
        self._batcher: JobBatcher | None = None
        self.rng = random.Random()
        """Randomness for the session's torrents that were given none (one
        ``random.Random`` is 2.5 KB: not one per torrent)."""

    # -- life cycle ------------------------------------------------------------------

    def start(self) -> Deferred[None]:
        """Bind the listening ports; fires when listening (or fails with
        ``CannotListenError``, leaving nothing bound)."""
        if self._state != _NEW:
            raise LocalProtocolError(f"start() on a {self._state} session")
        reactor = self._reactor = self.resolve_reactor()
        self._links = LinkGroup(reactor, self.config.link.tick_interval)
        self._tcp = TCPListeners(
            reactor, self.listen_interfaces, self.listen_port, self.config.backlog,
            self._v6only_socket,
        )
        try:
            self._tcp.listen(_Listener(self))
        except CannotListenError as e:
            self._state = _STOPPED
            return fail(e)
        self.port = self._tcp.port
        self._state = _RUNNING
        if self.config.dht.enabled:
            self._start_dht()
        return succeed(None)

    def stop(self) -> Deferred[None]:
        """Stop listening, cancel attempts, abort links; fires once every port
        is closed and every link gone."""
        if self._state == _STOPPED:
            return self._links.when_empty() if self._links is not None else succeed(None)
        self._state = _STOPPED
        waits: list[Deferred[Any]] = self._tcp.close() if self._tcp is not None else []
        dht, self._dht = self._dht, None
        if dht is not None:
            waits.append(dht.stop())
        dht_udp, self._dht_udp = self._dht_udp, None
        if dht_udp is not None:
            waits.append(dht_udp.stop())
        udp_tracker, self._udp_tracker = self._udp_tracker, None
        if udp_tracker is not None:
            waits.append(udp_tracker.stop())
        udp, self._udp = self._udp, None
        if udp is not None:
            waits.append(udp.stop())
        self._dialer.cancel_all("session stopped")
        if self._links is not None:
            for link in self._links:
                link.abort("session stopped")
            waits.append(self._links.when_empty())
        done: Deferred[Any] = gatherResults(waits, consumeErrors=True)
        done.addCallback(lambda _: self._stop_pool())
        return done

    def resolve_reactor(self) -> Any:
        """The reactor given to the constructor, else the global one."""
        return resolve_reactor(self._given_reactor)

    # -- UDP: one socket per family, shared ----------------------------------------

    @property
    def udp(self) -> DatagramMux:
        """The session's UDP sockets (one per family, on the listening port
        number when free), bound on first use while running: UDP trackers
        now, the DHT node next."""
        if self._state != _RUNNING:
            raise LocalProtocolError("the session's UDP sockets exist only while it runs")
        mux = self._udp
        if mux is None:
            interface4, interface6 = interfaces_for(self.listen_interfaces or DEFAULT_INTERFACES)
            mux = DatagramMux(
                self._reactor, port=self.port or 0, interface4=interface4, interface6=interface6
            )
            mux.start()
            self._udp = mux
        return mux

    def udp_tracker(self, max_n: int) -> UDPTrackerClient:
        """The UDP tracker client (BEP 15) every torrent of the session
        shares, over ``udp`` (bound now if it was not); ``max_n`` is the
        retry limit of the first torrent that asks."""
        client = self._udp_tracker
        if client is None:
            client = UDPTrackerClient(reactor=self._reactor, mux=self.udp, max_n=max_n)
            client.start()
            self._udp_tracker = client
        return client

    # -- the DHT node ------------------------------------------------------------------

    @property
    def dht(self) -> DHTNode | None:
        """The session's DHT node while it runs one (``SessionConfig.dht``)."""
        return self._dht

    def _start_dht(self) -> None:
        """Start the DHT node: on ``udp``, or on sockets of its own when
        ``DHTConfig.port`` is another number.  A port that cannot be bound
        leaves the session without a DHT (logged), not without a session."""
        cfg = self.config.dht
        try:
            if cfg.port is None or cfg.port == self.port:
                mux = self.udp
            else:
                interface4, interface6 = interfaces_for(
                    self.listen_interfaces or DEFAULT_INTERFACES
                )
                mux = DatagramMux(
                    self._reactor, port=cfg.port, interface4=interface4, interface6=interface6
                )
                mux.start()
                self._dht_udp = mux
        except Exception as e:  # the DHT is an extra: the session goes on without
            _log.warn("no DHT: its UDP socket could not be bound ({error})", error=e)
            return
        # Imported here: a session without a DHT (--no-dht) never pays for it.
        from txbittorrent.dht.bootstrap import resolve_with_reactor
        from txbittorrent.dht.node import DHTNode

        resolver = getattr(self._reactor, "nameResolver", None)
        node = DHTNode(
            mux, cfg, reactor=self._reactor, events=self.events,
            resolve=resolve_with_reactor(self._reactor) if resolver is not None else None,
        )
        node.start()
        self._dht = node

    # -- the registry of torrents -------------------------------------------------------

    def add(self, source: Any, basedir: str | None = None, **options: Any) -> Torrent:
        """A new ``Torrent`` of this session (a .torrent path or bytes, a
        ``Metainfo``, a magnet URI or a bare info hash), not started yet;
        ``options`` are the Torrent's keywords.  A second torrent with the
        same info hash is a ``LocalProtocolError``."""
        from txbittorrent.source import load_source
        from txbittorrent.torrent import Torrent

        resume_dir = self.config.resume_dir
        if resume_dir is not None and options.get("resume_path") is None:
            given = options.get("config")
            parsed = load_source(source, given.limits if given is not None else MetainfoLimits())
            source = parsed.metainfo if parsed.metainfo is not None else source  # parsed once
            options["resume_path"] = os.path.join(resume_dir, parsed.info_hash.hex() + ".resume")
        torrent = Torrent(source, basedir, reactor=self._given_reactor, session=self, **options)
        self.adopt(torrent)
        return torrent

    def adopt(self, torrent: Torrent) -> None:
        """Register a torrent made with ``session=`` this session (``add``
        and ``Torrent.start`` call this)."""
        known = self._torrents.get(torrent.info_hash)
        if known is torrent:
            return
        if known is not None:
            raise LocalProtocolError(f"the session has torrent {torrent.info_hash.hex()} already")
        self._torrents[torrent.info_hash] = torrent
        name = torrent.name if torrent.has_metadata else torrent.source.display_name
        self.events.publish(TorrentAdded(torrent.info_hash, name))

    def remove(self, info_hash: bytes) -> Deferred[None]:
        """Stop and close a torrent and forget it (its data stays on disk)."""
        torrent = self._torrents.get(info_hash)
        if torrent is None:
            return fail(LocalProtocolError(f"no torrent {info_hash.hex()} in the session"))

        def forget(result: object) -> object:
            if self._torrents.get(info_hash) is torrent:
                del self._torrents[info_hash]
                self.events.publish(TorrentRemoved(info_hash))
            return result

        return torrent.close().addBoth(forget)

    def get(self, info_hash: bytes) -> Torrent | None:
        return self._torrents.get(info_hash)

    def torrents(self) -> list[Torrent]:
        """Every torrent of the session, in the order they were added."""
        return list(self._torrents.values())

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

    @property
    def disk_batcher(self) -> JobBatcher:
        """Batches the torrents' small disk jobs (resume records) into few
        jobs of ``threadpool`` (``storage.batch``); made on first use."""
        batcher = self._batcher
        if batcher is None:
            batcher = self._batcher = JobBatcher(
                self.resolve_reactor(), lambda: self.threadpool,
                max_running=max(1, self.config.disk_threads // 2),
            )
        return batcher

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
    def _listening(self) -> list[tuple[str, Any]]:
        return self._tcp.listening if self._tcp is not None else []

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
        self._dialer.cancel_host(host, "torrent removed")
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
        return self._dialer.half_open

    def connection_count(self, host: PeerHost | None = None) -> int:
        """Live links plus attempts in progress, for one host or all."""
        links = self._links
        if host is None:
            return (len(links) if links is not None else 0) + self._dialer.half_open
        count = self._dialer.pending(host)
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
        if key in self._dialer or self.is_own_address(address):
            return False
        config = self.config
        if self._dialer.half_open >= config.max_half_open:
            return False
        if self.connection_count() >= config.max_connections:
            return False
        links = self._links
        assert links is not None
        if any(link.host is host and link.address == address for link in links):
            return False
        endpoint = self.client_endpoint(self._reactor, address, config.connect_timeout)
        self._dialer.dial(host, address, endpoint)
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

    # -- internals: links and attempts ---------------------------------------------

    def _link_options(self) -> dict[str, Any]:
        return {
            "config": self.config.link,
            "upload_throttles": (self.upload_throttle,),
            "download_throttles": (self.download_throttle,),
        }

    def _incoming(self, req2: Req2Map | None = None) -> PeerProtocol | None:
        """The link of an accepted connection: one that tells plain from
        encrypted (MSE) by the first bytes, unless encryption is disabled."""
        if self._state != _RUNNING or self.connection_count() >= self.config.max_connections:
            return None
        assert self._links is not None
        mode = self.config.encryption
        if mode == "disabled":
            return PeerProtocol(self._links, router=self.route, **self._link_options())
        return MSEPeerProtocol.make_incoming(
            self._links, self.route, req2 if req2 is not None else Req2Map(self._hosts), mode,
            **self._link_options(),
        )

    def _dial_connected(self, dial: Dial) -> PeerProtocol | None:
        """The link of a connection we dialled: encrypted when encryption is
        forced, plain when disabled, else as ``dials_encrypted`` says, with
        the fallback hook (see ``SessionConfig.encryption``)."""
        assert self._links is not None
        mode = self.config.encryption
        if mode == "disabled":
            return PeerProtocol(
                self._links, host=dial.host, address=dial.address, **self._link_options()
            )
        if mode == "forced":
            return MSEPeerProtocol.make_outgoing(
                self._links, dial.host, dial.address, "forced", **self._link_options()
            )
        if self.dials_encrypted(dial.address):
            return MSEPeerProtocol.make_outgoing(
                self._links, dial.host, dial.address, "enabled", fallback=self._fell_back,
                **self._link_options(),
            )
        return PlainPeerProtocol(
            self._links, host=dial.host, address=dial.address, fallback=self._fell_back,
            **self._link_options(),
        )

    @property
    def encryption(self) -> str:
        """The encryption setting now (``SessionConfig.encryption``)."""
        return self.config.encryption

    def set_encryption(self, mode: str) -> None:
        """Change the encryption setting (one of ``ENCRYPTION_MODES``): it
        applies to the connections made or accepted from now on; those up
        keep theirs.  An unknown mode is a ``ValueError`` (from the config's check)."""
        self.config = dataclasses.replace(self.config, encryption=mode)

    def dials_encrypted(self, address: Address) -> bool:
        """Whether our next dial to ``address`` starts with the MSE handshake."""
        mode = self.config.encryption
        if mode != "enabled":
            return mode == "forced"
        return self._dial_methods.encrypted(address)

    def _fell_back(self, link: PeerProtocol, encrypted: bool) -> str | None:
        """An outgoing link the peer dropped before a sign of life, dialled
        ``encrypted`` or not: remember to dial the other way next time; the
        reason its host hears (see "Encryption fallback")."""
        return self._dial_methods.fell_back(link.address, encrypted)
