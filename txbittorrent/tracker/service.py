"""The tracker server as a Twisted service: ``txbittorrent tracker``'s process.

Theory of operation
-------------------
``TrackerService(config)`` owns one ``TrackerState`` and serves it over every
HTTP endpoint and UDP port of its ``TrackerServerConfig``.  The constructor
builds the state and the resource tree and touches nothing else;
``startService`` listens (``started`` fires once every listener is up, or
fails with the first listener's error after closing the ones that opened)
and starts the sweep of idle peers; ``stopService`` stops the sweep, stops
listening, aborts open HTTP connections, and fires once all are gone (a test
can then assert ``clock.getDelayedCalls() == []``).

The HTTP site's root is ``site_root``: ``/announce`` and ``/scrape`` (and
``/<passkey>/announce``, ``/<passkey>/scrape`` in private mode) go to the
tracker; other services mount their resources with
``site_root.putChild(name, resource)`` (a child put there wins over a
passkey of the same name).  ``TrackerService`` is a ``MultiService``, so they
may add child services too, started and stopped with it.

Seams: ``passkeys`` (a ``PasskeyCheck``: private mode when given),
``on_transfer`` (each announce's ``TransferDelta`` of a private user),
``allowed`` (a container of allowed info hashes, overriding the config's
whitelist: a ``set`` may be changed while running), ``stats`` (a
``TrackerStats`` the listeners count requests into), ``reactor``, ``rng``.

With ``config.redis`` the swarms and counters live in that Redis server
(``tracker.redisswarms.RedisSwarms``, connected at start, disconnected after
the listeners close), shared with every other tracker process using it; the
``TrackerState`` then keeps only the rules, and the sweep also trims the
shared swarm index.  Private mode keeps per-process state and is refused
with Redis.

Decisions
---------
* UDP ignores the announce's IP field always: a UDP source address can be
  forged and no proxy sits in front of UDP, so no address is trusted there.
* Listeners of the same service share one rate limiter, so a client cannot
  double its share by switching protocol.
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Container
from typing import Any

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, gatherResults, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import Request, Site

from txbittorrent.core.tracker.registry import RateLimiter, TrackerState, TransferDelta
from txbittorrent.core.tracker.swarms import UserId
from txbittorrent.core.tracker.stats import TrackerStats
from txbittorrent.tracker.private import PasskeyCheck
from txbittorrent.tracker.redisswarms import RedisSwarms
from txbittorrent.web.bodycap import BoundedRequest
from txbittorrent.tracker.server import (
    HTTPTrackerResource,
    UDPTrackerProtocol,
    _ConnectionTracker,
)
from txbittorrent.tracker.serverconfig import TrackerServerConfig

__all__ = ["TrackerRoot", "TrackerService"]

_log = Logger()


MAX_REQUEST_BODY = 64 * 1024
"""The largest request body the tracker's HTTP listeners read (bytes)."""


class TrackerRoot(Resource):
    """The HTTP root: children put here first, then the tracker for any other path."""

    def __init__(self, tracker: HTTPTrackerResource) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.tracker = tracker

    def getChild(self, path: bytes, request: Request) -> Resource:
        # The tracker is a leaf that reads its path from postpath: give it back.
        if request.postpath is not None and request.prepath:
            request.postpath.insert(0, path)
            request.prepath.pop()
        return self.tracker

    def render_GET(self, request: Request) -> bytes:
        request.setResponseCode(404)
        return b"not found\n"


class _TrackerRequest(BoundedRequest):
    """A tracker's requests carry no body to speak of (the API's JSON at most)."""

    max_body = MAX_REQUEST_BODY


class _TrackerSite(Site):
    """No access-log line per request: a tracker answers thousands a second,
    and each line would carry info hashes and peer ids (privacy, and a
    quarter of the HTTP throughput in bench.tracker)."""

    def log(self, request: Any) -> None:
        pass


class TrackerService(MultiService):
    """HTTP and UDP tracker listeners over one registry (see the module docstring)."""

    def __init__(
        self,
        config: TrackerServerConfig,
        *,
        reactor: Any = None,
        rng: random.Random | None = None,
        passkeys: PasskeyCheck | None = None,
        on_transfer: Callable[[TransferDelta], None] | None = None,
        allowed: Container[bytes] | None = None,
        stats: TrackerStats | None = None,
        user_limit: Callable[[UserId], int | None] | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if config.redis is not None and passkeys is not None:
            raise ValueError("private mode keeps its swarms in memory: not with Redis")
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = global_reactor
        self.config = config
        self._reactor = reactor
        self._rng = rng or random.Random()
        self.state = TrackerState(
            self._rng,
            interval=config.interval,
            min_interval=config.min_interval,
            peer_timeout=config.peer_timeout,
            default_numwant=config.default_numwant,
            max_numwant=config.max_numwant,
            allowed=allowed if allowed is not None else config.whitelist,
            max_swarms=config.max_swarms,
            max_peers=config.max_peers,
            max_total_peers=config.max_total_peers,
            evict_swarms=config.evict_swarms,
            max_torrents_per_user=config.max_torrents_per_user,
            user_limit=user_limit,
            tracker_id=config.tracker_id
            or b"%016x" % self._rng.getrandbits(64),
            on_transfer=on_transfer,
        )
        self.limiter = None if config.rate_limit is None else RateLimiter(config.rate_limit)
        self.passkeys = passkeys
        self.stats = stats
        """Counts requests by kind and protocol (``core.tracker.stats``), if given."""
        self.swarms: RedisSwarms | None = None
        """The shared swarms in Redis, with ``config.redis``."""
        if config.redis is not None:
            self.swarms = RedisSwarms(self.state, config.redis, rng=self._rng, clock=reactor)
            self.swarms.upkeep.gap = max(1.0, config.sweep_interval / 2)
        self.http_resource = HTTPTrackerResource(
            self.state,
            reactor,
            trusted_proxies=config.trusted_proxies,
            limiter=self.limiter,
            passkeys=passkeys,
            full_scrape=config.full_scrape,
            full_scrape_limit=config.full_scrape_limit,
            stats=stats,
            swarms=self.swarms,
            warning=None if config.warning is None else config.warning.encode("utf-8"),
        )
        self.site_root = TrackerRoot(self.http_resource)
        self.site = _TrackerSite(  # type: ignore[no-untyped-call]
            self.site_root, requestFactory=_TrackerRequest)
        self.site.displayTracebacks = False
        self._connections = _ConnectionTracker(self.site)
        self.http_ports: list[Any] = []
        """The listening HTTP ports (``IListeningPort``), once started."""
        self.udp_ports: list[Any] = []
        """The listening UDP ports, once started."""
        self.started: Deferred[None] | None = None
        """Fires once every listener is up; fails if one could not listen."""
        self._sweep: LoopingCall | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.started = Deferred.fromCoroutine(self._start())
        self.started.addErrback(self._start_failed)

    async def _start(self) -> None:
        secret = self.config.secret or os.urandom(32)
        if self.swarms is not None:
            self.swarms.start()
        for port in self.config.udp_ports:
            for interface in self.config.udp_interfaces:
                protocol = UDPTrackerProtocol(
                    self.state, secret, self._reactor, limiter=self.limiter,
                    passkeys=self.passkeys, stats=self.stats, swarms=self.swarms,
                )
                self.udp_ports.append(self._reactor.listenUDP(port, protocol, interface=interface))
        results = await DeferredList(
            [serverFromString(self._reactor, d).listen(self._connections)  # type: ignore[no-untyped-call]
             for d in self.config.http],
            consumeErrors=True,
        )
        failures = []
        for ok, value in results:
            if ok:
                self.http_ports.append(value)
            else:
                failures.append(value)
        if failures:
            failures[0].raiseException()
        sweep = self._sweep = LoopingCall(self._expire)
        sweep.clock = self._reactor
        sweep.start(self.config.sweep_interval, now=False)
        _log.info(
            "tracker listening: HTTP {http}, UDP {udp}",
            http=", ".join(_describe(p) for p in self.http_ports) or "none",
            udp=", ".join(_describe(p) for p in self.udp_ports) or "none",
        )

    def _expire(self) -> Deferred[None] | None:
        now = self._reactor.seconds()
        self.state.expire(now)
        if self.swarms is None:
            return None
        d = self.swarms.expire(now).addErrback(
            lambda f: _log.failure("sweeping the Redis swarms", f))
        return d.addCallback(lambda _: None)

    def _start_failed(self, failure: Any) -> Any:
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        self._sweep = None
        d = self._close_listeners()
        d.addCallback(lambda _: failure)
        return d

    def stopService(self) -> Deferred[None]:
        super_stop = maybeDeferred(super().stopService)
        if self._sweep is not None and self._sweep.running:
            self._sweep.stop()
        self._sweep = None
        d = gatherResults([super_stop, self._close_listeners()], consumeErrors=True)
        d.addErrback(lambda f: _log.failure("stopping the tracker", f))
        return d.addCallback(lambda _: None)

    def _close_listeners(self) -> Deferred[None]:
        ports = self.http_ports + self.udp_ports
        self.http_ports, self.udp_ports = [], []
        d = gatherResults(
            [maybeDeferred(p.stopListening) for p in ports] + [self._connections.close_all()],
            consumeErrors=True,
        )
        swarms = self.swarms
        if swarms is not None:
            d.addBoth(lambda _: swarms.stop())
        return d.addCallback(lambda _: None)

    def announce_urls(self) -> list[str]:
        """The tracker's announce URLs on its listeners (for tests and logs)."""
        urls = []
        for port in self.http_ports:
            host = port.getHost()
            urls.append(f"http://{_url_host(host.host)}:{host.port}/announce")
        for port in self.udp_ports:
            host = port.getHost()
            urls.append(f"udp://{_url_host(host.host)}:{host.port}/announce")
        return urls


def _url_host(host: str) -> str:
    if host in ("", "0.0.0.0"):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def _describe(port: Any) -> str:
    host = port.getHost()
    return f"{_url_host(host.host)}:{host.port}"
