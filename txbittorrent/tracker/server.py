"""A small BitTorrent tracker: HTTP (BEP 3/7/23/48) and UDP (BEP 15) over one registry.

Theory of operation
-------------------
The rules live in ``core.tracker`` (``registry`` re-exports them):
``TrackerState`` (the swarms), ``announce_from_query`` and the HTTP reply
encoders, ``UDPTrackerResponder`` (BEP 15) and ``RateLimiter``.  This module
only adapts them to Twisted (``tracker.service.TrackerService`` runs them as
the ``txbittorrent tracker`` process):

* ``HTTPTrackerResource`` is a ``twisted.web`` resource answering
  ``announce`` and ``scrape`` below the point where it is mounted (at the
  root of a ``Site``: ``/announce`` and ``/scrape``);
* ``UDPTrackerProtocol`` is a ``DatagramProtocol`` that feeds each datagram
  to a responder and writes the reply back to the sender;
* ``start_tracker`` listens with both on one registry and returns a
  ``RunningTracker`` whose ``stop()`` closes everything it opened.

Decisions
---------
* The peer's address in the registry is the request's source address
  (``request.getClientAddress().host`` for HTTP, the datagram's sender for
  UDP).  A client's ``ip`` parameter (or the UDP IP address field) replaces
  it only with ``trust_ip=True`` (anyone; tests and closed networks) or, for
  HTTP, when the request comes from one of ``trusted_proxies``, whose last
  ``X-Forwarded-For`` address is then the client's.  Otherwise a client
  could have the tracker hand a victim's address to every peer.  Peers that
  all run on 127.0.0.1 need no trust: they differ by the port they announce,
  which is what the registry records.
* Refusals (a bad request, an unregistered torrent, a rate limit, an
  unknown passkey) are ``200 OK`` with a ``failure reason``, as BitTorrent
  clients expect; a query over ``MAX_QUERY`` bytes is a 414 with one; an
  unknown path is a 404 (in private mode, ``/announce`` without a passkey
  too).
* Every clock read goes through the injected ``clock``; the periodic sweep
  of idle peers is a ``LoopingCall`` on it, started by ``start_tracker``.
* ``RunningTracker.stop()`` stops listening, aborts open HTTP connections
  and fires once they are all gone, so tests end with a clean reactor.
* An asynchronous swarm store (``swarms=``, a ``SwarmStore`` such as
  ``tracker.redisswarms.RedisSwarms``) makes announces and scrapes answer
  later: the HTTP resource returns ``NOT_DONE_YET`` and writes the body
  when the store's Deferred fires (nothing if the client left); the UDP
  protocol lets the responder check and parse the datagram as usual, with
  a stand-in for its ``TrackerState`` that stops it at the swarm lookup
  and hands the request over, then encodes the store's answer.  A store
  failure other than a refusal is logged and answered with a failure
  reason.  Without ``swarms`` every request is answered synchronously, as
  before.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Collection, Sequence
from typing import Any, Protocol

from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.defer import Deferred, fail, gatherResults, maybeDeferred, succeed
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.protocols.policies import ProtocolWrapper, WrappingFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from txbittorrent.core.tracker.announce import ScrapeStats, encode_failure
from txbittorrent.core.tracker.udp import encode_error
from txbittorrent.core.tracker.stats import TrackerStats, count_udp_reply
from txbittorrent.core.tracker.registry import (
    DEFAULT_INTERVAL,
    MAX_FULL_SCRAPE,
    MAX_QUERY,
    RateLimiter,
    Announce,
    AnnounceResult,
    RequestRefused,
    TrackerState,
    UDPTrackerResponder,
    UserId,
    announce_from_query,
    canonical_ip,
    encode_http_announce,
    encode_http_scrape,
    parse_query,
    scrape_hashes_from_query,
    split_tracker_path,
)
from txbittorrent.core.tracker.udpserver import Checked, announce_reply, scrape_reply

__all__ = [
    "HTTPTrackerResource", "UDPTrackerProtocol", "RunningTracker", "SwarmStore", "start_tracker",
]

_log = Logger()
STORE_FAILURE = "tracker storage unavailable"
"""The failure reason sent when an asynchronous swarm store fails."""


class SwarmStore(Protocol):
    """Swarms kept elsewhere (``RedisSwarms``): ``TrackerState``'s answers, later."""

    def announce(
        self, request: Announce, now: float, *, ipv6: bool | None = None
    ) -> Deferred[AnnounceResult]: ...

    def scrape(self, info_hashes: Sequence[bytes], now: float) -> Deferred[dict[bytes, ScrapeStats]]: ...

    def scrape_all(self, now: float, limit: int = ...) -> Deferred[dict[bytes, ScrapeStats]]: ...


class Clock(Protocol):
    """What the tracker needs of a reactor to read the time."""

    def seconds(self) -> float: ...


def _client_host(request: Request) -> str:
    address = request.getClientAddress()  # type: ignore[no-untyped-call]
    if not isinstance(address, (IPv4Address, IPv6Address)):
        raise RequestRefused("request from a non-IP address")
    return address.host


def _forwarded_for(request: Request) -> str | None:
    """The last address of X-Forwarded-For (the one our proxy added), if any."""
    header = request.getHeader(b"x-forwarded-for")
    if not header:
        return None
    last = bytes(header).rsplit(b",", 1)[-1].strip()
    return last.decode("ascii", "replace") or None


class HTTPTrackerResource(Resource):
    """``announce`` and ``scrape`` for a ``TrackerState``; mount it anywhere in a Site.

    Paths below it: ``announce`` and ``scrape``, and with ``passkeys``
    (private mode) ``<passkey>/announce`` and ``<passkey>/scrape`` instead.
    ``trusted_proxies``: source addresses whose ``X-Forwarded-For`` and
    ``ip=`` are believed (``trust_ip=True`` believes ``ip=`` from anyone, for
    tests and closed networks).  ``limiter`` counts requests per source
    address.  ``full_scrape`` allows a scrape without ``info_hash`` (the
    ``full_scrape_limit`` most recently announced torrents).  ``stats``
    counts each announce, scrape and refusal."""

    isLeaf = True

    def __init__(
        self,
        state: TrackerState,
        clock: Clock,
        *,
        trust_ip: bool = False,
        trusted_proxies: Collection[str] = (),
        limiter: RateLimiter | None = None,
        passkeys: Callable[[str], UserId | None] | None = None,
        full_scrape: bool = False,
        full_scrape_limit: int = MAX_FULL_SCRAPE,
        stats: TrackerStats | None = None,
        swarms: SwarmStore | None = None,
        warning: bytes | None = None,
    ):
        super().__init__()  # type: ignore[no-untyped-call]
        self.warning = warning
        """A ``warning message`` added to every announce reply (e.g. a notice of a move)."""
        self.state = state
        self.swarms = swarms
        self._clock = clock
        self.trust_ip = trust_ip
        self.trusted_proxies = frozenset(canonical_ip(a) for a in trusted_proxies)
        self.limiter = limiter
        self.passkeys = passkeys
        self.full_scrape = full_scrape
        self.full_scrape_limit = full_scrape_limit
        self.stats = stats

    def render_GET(self, request: Request) -> bytes | int:
        request.setHeader(b"content-type", b"text/plain")  # type: ignore[no-untyped-call]
        request.setHeader(b"cache-control", b"no-cache")  # type: ignore[no-untyped-call]
        try:
            passkey, what = split_tracker_path(request.postpath or [])
        except LookupError:
            passkey, what = None, b""
        if not what or (passkey is None) != (self.passkeys is None):
            request.setResponseCode(404)
            return b"not found\n"
        query = request.uri.partition(b"?")[2].partition(b"#")[0]
        if len(query) > MAX_QUERY:
            request.setResponseCode(414)
            return encode_failure("request too long")
        try:
            host, trust = self._source(request)
            now = self._clock.seconds()
            if self.limiter is not None and not self.limiter.allow(host, now):
                raise RequestRefused("rate limited")
            user = self._user(passkey)
            if what == b"announce":
                body = self._announce(query, host, trust, user, now)
            else:
                body = self._scrape(query, now)
            if isinstance(body, Deferred):
                return self._reply_later(request, body, what)
            self._count(what)
            return body
        except RequestRefused as e:
            if self.stats is not None:
                self.stats.error("http")
            return encode_failure(e.reason)

    def _count(self, what: bytes) -> None:
        if self.stats is not None:
            if what == b"announce":
                self.stats.announce("http")
            else:
                self.stats.scrape("http")

    def _reply_later(self, request: Request, body: Deferred[bytes], what: bytes) -> int:
        """Write ``body`` once it fires (a failure reason if it fails); ``NOT_DONE_YET``."""
        gone: list[bool] = []
        request.notifyFinish().addErrback(lambda _: gone.append(True))

        def answered(data: bytes) -> bytes:
            self._count(what)
            return data

        def failed(failure: Any) -> bytes:
            if self.stats is not None:
                self.stats.error("http")
            if failure.check(RequestRefused):
                return encode_failure(failure.value.reason)
            _log.failure("tracker swarm store", failure)
            return encode_failure(STORE_FAILURE)

        def write(data: bytes) -> None:
            if not gone:
                request.write(data)  # type: ignore[no-untyped-call]
                request.finish()  # type: ignore[no-untyped-call]

        body.addCallbacks(answered, failed).addCallback(write).addErrback(
            lambda f: _log.failure("writing a tracker reply", f)
        )
        return NOT_DONE_YET

    def _source(self, request: Request) -> tuple[str, bool]:
        """(the client's address, whether its ip= is believed)."""
        try:
            host = canonical_ip(_client_host(request))
        except ValueError:  # the source address is no IP address we can record
            raise RequestRefused("unusable source address") from None
        if host not in self.trusted_proxies:
            return host, self.trust_ip
        forwarded = _forwarded_for(request)
        if forwarded is not None:
            try:
                host = canonical_ip(forwarded)
            except ValueError:
                raise RequestRefused("invalid X-Forwarded-For") from None
        return host, True

    def _user(self, passkey: bytes | None) -> UserId | None:
        if passkey is None or self.passkeys is None:
            return None
        user = self.passkeys(passkey.decode("ascii"))
        if user is None:
            raise RequestRefused("unknown passkey")
        return user

    def _announce(
        self, query: bytes, host: str, trust: bool, user: UserId | None, now: float
    ) -> bytes | Deferred[bytes]:
        announce = announce_from_query(parse_query(query), host, trust_ip=trust, user=user)
        if self.swarms is not None:
            later = self.swarms.announce(announce, now)
            return later.addCallback(
                lambda result: encode_http_announce(announce, result, self.warning))
        result = self.state.announce(announce, now)
        return encode_http_announce(announce, result, self.warning)

    def _scrape(self, query: bytes, now: float) -> bytes | Deferred[bytes]:
        hashes = scrape_hashes_from_query(parse_query(query), allow_full=self.full_scrape)
        if self.swarms is not None:
            if not hashes:
                return self.swarms.scrape_all(now, self.full_scrape_limit).addCallback(
                    encode_http_scrape)
            return self.swarms.scrape(hashes, now).addCallback(encode_http_scrape)
        if not hashes:
            return encode_http_scrape(self.state.scrape_all(now, self.full_scrape_limit))
        return encode_http_scrape(self.state.scrape(hashes, now))


class UDPTrackerProtocol(DatagramProtocol):
    """BEP 15 for a ``TrackerState``; connection ids come from ``secret`` (16+ bytes).

    ``limiter`` and ``passkeys`` as for ``UDPTrackerResponder``; ``stats``
    counts each reply by its action; ``swarms`` answers announces and
    scrapes later (see the module docstring)."""

    def __init__(
        self,
        state: TrackerState,
        secret: bytes,
        clock: Clock,
        *,
        trust_ip: bool = False,
        limiter: RateLimiter | None = None,
        passkeys: Callable[[str], UserId | None] | None = None,
        stats: TrackerStats | None = None,
        swarms: SwarmStore | None = None,
    ) -> None:
        self.responder = UDPTrackerResponder(
            state, secret, trust_ip=trust_ip, limiter=limiter, passkeys=passkeys,
        )
        self._clock = clock
        self.stats = stats
        self.swarms = swarms

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        host, port = addr[0], addr[1]
        now = self._clock.seconds()
        try:
            if self.swarms is None:
                self._send(self.responder.datagram_received(datagram, host, port, now), addr)
                return
            checked = self.responder.check(datagram, host, port, now)
        except ValueError:  # a source address we cannot make sense of
            return
        if isinstance(checked, Checked):
            self._answer_later(checked, addr, now)
        else:
            self._send(checked, addr)

    def _answer_later(self, checked: Checked, addr: Any, now: float) -> None:
        assert self.swarms is not None
        transaction_id = checked.transaction_id
        if checked.announce is not None:
            d: Deferred[bytes] = self.swarms.announce(
                checked.announce, now, ipv6=checked.ipv6
            ).addCallback(lambda result: announce_reply(transaction_id, result, checked.ipv6))
        else:
            hashes = checked.hashes
            d = self.swarms.scrape(hashes, now).addCallback(
                lambda stats: scrape_reply(transaction_id, hashes, stats))

        def failed(failure: Any) -> bytes:
            if failure.check(RequestRefused):
                return encode_error(transaction_id, failure.value.reason)
            _log.failure("tracker swarm store", failure)
            return encode_error(transaction_id, STORE_FAILURE)

        d.addErrback(failed).addCallback(self._send, addr).addErrback(
            lambda f: _log.failure("sending a tracker reply", f))

    def _send(self, reply: bytes | None, addr: Any) -> None:
        if self.stats is not None:
            count_udp_reply(self.stats, reply)
        transport: Any = self.transport
        if reply is not None and transport is not None:
            # Straight to the socket when there is one: the address came from
            # recvfrom, so the checks of Twisted's Port.write (three address
            # parses a reply) would only cost time.  A full send buffer or an
            # ICMP error loses this reply only: the client asks again.
            sock = getattr(transport, "socket", None)
            try:
                if sock is not None:
                    sock.sendto(reply, addr)
                else:
                    transport.write(reply, addr)
            except OSError as e:
                _log.debug("UDP tracker: reply to {addr} failed: {e}", addr=addr, e=e)


class _ConnectionTracker(WrappingFactory):
    """Remembers the open connections of a factory, to close them at stop."""

    def __init__(self, wrapped: Any) -> None:
        super().__init__(wrapped)  # type: ignore[no-untyped-call]
        self._waiting: list[Deferred[None]] = []

    def unregisterProtocol(self, p: ProtocolWrapper) -> None:
        super().unregisterProtocol(p)  # type: ignore[no-untyped-call]
        if not self.protocols:
            waiting, self._waiting = self._waiting, []
            for d in waiting:
                d.callback(None)

    def close_all(self) -> Deferred[None]:
        """Abort every open connection; fire when the last one is gone."""
        if not self.protocols:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        for protocol in list(self.protocols):
            protocol.transport.abortConnection()
        return d


def _url_host(interface: str) -> str:
    if interface in ("", "0.0.0.0"):
        return "127.0.0.1"
    if interface == "::":
        return "[::1]"
    return f"[{interface}]" if ":" in interface else interface


class RunningTracker:
    """A tracker listening on HTTP and UDP; built by ``start_tracker``."""

    def __init__(
        self,
        state: TrackerState,
        http_port: Any,
        udp_port: Any,
        connections: _ConnectionTracker,
        sweep: LoopingCall,
        interface: str,
    ) -> None:
        self.state = state
        self.http_port = http_port
        self.udp_port = udp_port
        self._connections = connections
        self._sweep = sweep
        host = _url_host(interface)
        self.announce_url = f"http://{host}:{http_port.getHost().port}/announce"
        self.scrape_url = f"http://{host}:{http_port.getHost().port}/scrape"
        self.udp_url = f"udp://{host}:{udp_port.getHost().port}/announce"
        self._stopping = False
        self._stopped = False
        self._waiting: list[Deferred[None]] = []

    def stop(self) -> Deferred[None]:
        """Stop listening and close open connections; fire when all is closed."""
        if self._stopped:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._waiting.append(d)
        if not self._stopping:
            self._stopping = True
            if self._sweep.running:
                self._sweep.stop()
            gatherResults(
                [
                    maybeDeferred(self.http_port.stopListening),
                    maybeDeferred(self.udp_port.stopListening),
                    self._connections.close_all(),
                ],
                consumeErrors=True,
            ).addErrback(lambda f: _log.failure("stopping the tracker", f)).addCallback(
                self._closed
            )
        return d

    def _closed(self, _: object) -> None:
        self._stopped = True
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(None)


def start_tracker(
    reactor: Any,
    interface: str = "127.0.0.1",
    http_port: int = 0,
    udp_port: int = 0,
    *,
    interval: int = DEFAULT_INTERVAL,
    min_interval: int | None = None,
    allowed: Collection[bytes] | None = None,
    trust_ip: bool = False,
    rng: random.Random | None = None,
    secret: bytes | None = None,
) -> Deferred[RunningTracker]:
    """Listen on ``interface`` (port 0: any free port) for HTTP and UDP tracker requests.

    ``reactor`` provides ``IReactorTCP``, ``IReactorUDP`` and ``IReactorTime``.
    ``secret`` (16+ bytes) keys the UDP connection ids; by default it is
    random.  ``rng`` chooses the peers returned (default: a new
    ``random.Random``)."""
    state = TrackerState(
        rng or random.Random(), interval=interval, min_interval=min_interval, allowed=allowed
    )
    resource = HTTPTrackerResource(state, reactor, trust_ip=trust_ip)
    site = Site(resource)  # type: ignore[no-untyped-call]
    site.displayTracebacks = False
    connections = _ConnectionTracker(site)
    udp = UDPTrackerProtocol(state, secret or os.urandom(32), reactor, trust_ip=trust_ip)
    try:
        tcp_listener = reactor.listenTCP(http_port, connections, interface=interface)
    except Exception as e:
        return fail(e)
    try:
        udp_listener = reactor.listenUDP(udp_port, udp, interface=interface)
    except Exception as e:
        return Deferred.fromCoroutine(_close_and_raise(tcp_listener, e))
    sweep = LoopingCall(lambda: state.expire(reactor.seconds()))
    sweep.clock = reactor
    sweep.start(interval, now=False)
    return succeed(
        RunningTracker(state, tcp_listener, udp_listener, connections, sweep, interface)
    )


async def _close_and_raise(listener: Any, error: Exception) -> RunningTracker:
    """Stop ``listener`` (the HTTP port), then fail with ``error``."""
    await maybeDeferred(listener.stopListening)
    raise error
