"""Tracker clients: HTTP(S) over treq, UDP (BEP 15) over a ``net.udp.DatagramMux``.

Theory of operation
-------------------
Both clients turn ``announce(url, request)`` into a ``Deferred`` that fires
with the codec's ``AnnounceResponse`` (and ``scrape(url, info_hashes)`` into
one of ``{info_hash: ScrapeStats}``), or fails with one of:

* ``TrackerFailure`` (the tracker said no) or another ``RemoteProtocolError``
  (garbage, a body too long, an HTTP status other than 200, too many
  redirects, a UDP error packet);
* ``TrackerTimeoutError`` (no complete answer in time);
* ``TrackerConnectionError`` (the tracker could not be reached: DNS, a refused
  connection, a connection lost mid-reply, a socket that cannot be bound);
* ``TrackerURLError`` (a URL this client does not handle).

Cancelling the ``Deferred`` abandons the request (and closes its connection)
and fails it with ``CancelledError``.  The clients parse nothing themselves:
the codecs in ``core.announce`` and ``core.udptracker`` do.

Decisions (HTTP)
----------------
* Redirects are followed here, not by treq's ``RedirectAgent`` (whose limit
  is 20): at most ``max_redirects`` (5) hops, each to an http or https URL;
  a 3xx without ``Location`` or one hop too many is a ``RemoteProtocolError``.
* ``timeout`` (30 s) covers the whole exchange, redirects and body included,
  on the injected reactor; on expiry the request is cancelled.
* The body is read as it arrives, after gzip decoding (treq asks for gzip),
  and the connection is closed as soon as it passes ``max_response_size``
  (a declared ``Content-Length`` over the cap is refused before reading).
  gzip is decoded a network chunk at a time, so a hostile gzip body can
  expand one chunk (about a thousand-fold at most) before the cap sees it.
  We read with our own small protocol rather than ``treq.collect`` because a
  ``treq.collect`` Deferred cannot be cancelled: on a time-out it would leave
  a stalled connection open.
* Error messages name the URL without its query string, which carries our
  ids and, for private trackers, often a passkey.

Decisions (UDP)
---------------
* The client binds no socket of its own: it sends and receives through a
  ``DatagramMux`` (``net.udp``), the session's one UDP socket per family,
  given as ``mux`` and started and stopped by its owner.  For each datagram
  it sends it ``claim``-s the transaction id the reply must carry (and
  releases it when the exchange moves on or ends), so the mux hands it
  exactly the replies it waits for; the DHT and uTP share the sockets.
  Without a ``mux`` the client makes a private one on ``interface4``
  ("0.0.0.0") and ``interface6`` ("::"), port 0, started on the first
  request (a bind failure fails that request) and stopped by ``stop()``.
  ``start()`` allows requests; ``stop()`` fails the pending ones with
  ``CancelledError`` and cancels every timer.  One client may serve every
  torrent of a session: transaction ids and the ``ConnectionCache`` are per
  client.
* Each announce is a ``core.udptracker.UDPTrackerExchange`` with one
  DelayedCall at the deadline the exchange returns (15 * 2**n s, from the
  core).  By default the client gives up after three tries (``max_n`` 2,
  105 s) rather than BEP 15's nine (over two hours): see ``DEFAULT_MAX_N``.
  A datagram is given to the exchange whose transaction id it
  carries, and only if it came from that exchange's tracker address.  One
  ``ConnectionCache`` is shared by every exchange.
* Host names are resolved with the reactor's resolver (``reactor.resolve``:
  IPv4 only) before anything is sent; literal IPv4 and IPv6 addresses are
  used as they are, an IPv4-mapped IPv6 one as the IPv4 address it maps
  (``net.udp.canonical_host``, the form the mux reports sources in).  The
  address's family decides the socket and whether peers come as IPv6.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Any, Callable, Protocol
from urllib.parse import urljoin, urlsplit

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.protocol import connectionDone
from twisted.internet.protocol import Protocol as StreamProtocol
from twisted.python.failure import Failure

from txbittorrent._reactor import resolve_reactor
from txbittorrent.core.tracker.announce import (
    MAX_RESPONSE_SIZE,
    AnnounceRequest,
    AnnounceResponse,
    ScrapeStats,
    announce_url,
    parse_announce_response,
    parse_scrape_response,
    scrape_request_url,
    scrape_url,
)
from txbittorrent.core.tracker.udp import (
    MAX_N,
    ConnectionCache,
    Done,
    Failed,
    ScrapeRequest,
    Send,
    Step,
    UDPTrackerExchange,
    parse_udp_url,
    transaction_id_of,
)
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError, TxBitTorrentError
from txbittorrent.net.udp import Address, DatagramMux, canonical_host, family_of
from txbittorrent.net.urls import treq_url

__all__ = [
    "DEFAULT_TIMEOUT", "MAX_REDIRECTS", "DEFAULT_MAX_N", "MAX_N", "TrackerTimeoutError",
    "TrackerConnectionError",
    "TrackerURLError", "TrackerHTTPError", "HTTPTrackerClient", "UDPTrackerClient",
]

DEFAULT_TIMEOUT = 30.0
"""Seconds an HTTP announce or scrape may take, redirects and body included."""
MAX_REDIRECTS = 5
"""Most HTTP redirects followed for one request."""
DEFAULT_MAX_N = 2
"""The UDP client gives up after the timeout with this n (three tries, 105 s in all).

BEP 15's ``MAX_N`` (8) keeps a dead tracker for 2 h 8 min, and the announcer
walks on to the next tracker only when an announce has failed; pass
``max_n=MAX_N`` for the letter of BEP 15."""
_REDIRECTS = frozenset({301, 302, 303, 307, 308})


class TrackerTimeoutError(TxBitTorrentError, TimeoutError):
    """The tracker did not answer in time."""


class TrackerConnectionError(TxBitTorrentError, ConnectionError):
    """The tracker could not be reached, or the connection broke mid-reply."""


class TrackerURLError(TxBitTorrentError, ValueError):
    """A tracker URL this client cannot use (wrong scheme, no host or port)."""


class TrackerHTTPError(RemoteProtocolError):
    """The HTTP tracker answered with a status other than 200; ``status`` is it."""

    def __init__(self, status: int, url: str) -> None:
        self.status = status
        super().__init__(f"HTTP status {status} from {url}")


class Clock(Protocol):
    """What the clients need of a reactor for time."""

    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any) -> Any: ...


def _describe(error: BaseException) -> str:
    """A readable one-line reason, unwrapping Twisted's ResponseFailed and friends."""
    reasons = getattr(error, "reasons", None)
    if reasons:
        return "; ".join(r.getErrorMessage() for r in reasons)
    return str(error) or type(error).__name__


def _short(url: str) -> str:
    """``url`` without its query (which holds our ids, and perhaps a passkey)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _timed_out(what: str, seconds: float) -> Callable[[Any, float], Any]:
    def convert(result: Any, timeout: float) -> Any:
        raise TrackerTimeoutError(f"{what}: no answer in {seconds:g} s")

    return convert


# -- HTTP ---------------------------------------------------------------------


class _BodyReader(StreamProtocol):
    """Collects a response body up to ``limit`` bytes; the Deferred is cancellable."""

    def __init__(self, limit: int, declared: Any) -> None:
        self.limit = limit
        self.declared = declared
        self.finished: Deferred[bytes] = Deferred(lambda _: self._close())
        self._parts: list[bytes] = []
        self._size = 0

    def connectionMade(self) -> None:
        if isinstance(self.declared, int) and self.declared > self.limit:
            self._fail(RemoteProtocolError(f"reply of {self.declared} bytes is too long"))

    def dataReceived(self, data: bytes) -> None:
        if self.finished.called:
            return
        self._size += len(data)
        if self._size > self.limit:
            self._fail(RemoteProtocolError(f"reply longer than {self.limit} bytes"))
        else:
            self._parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self.finished.called:
            return
        # Here, not at the top: twisted.web loads only once an HTTP tracker
        # is asked (a download from peers or UDP trackers never imports it).
        from twisted.web.client import ResponseDone
        from twisted.web.http import PotentialDataLoss

        if isinstance(reason.value, (ResponseDone, PotentialDataLoss)):
            self.finished.callback(b"".join(self._parts))
        else:
            self.finished.errback(TrackerConnectionError(_describe(reason.value or reason)))

    def _fail(self, error: Exception) -> None:
        self._close()
        self.finished.errback(error)

    def _close(self) -> None:
        transport: Any = self.transport
        if transport is not None:
            transport.loseConnection()


def _discard(response: Any) -> None:
    """Drop a response's body unread, closing its connection."""
    reader = _BodyReader(0, 1)
    reader.finished.addErrback(lambda _: None)
    response.deliverBody(reader)


class HTTPTrackerClient:
    """Announces and scrapes over HTTP(S) with treq (see the module docstring).

    ``treq_client`` is anything with treq's ``get`` (a ``treq.client.HTTPClient``,
    a ``treq.testing.StubTreq``); by default an ``HTTPClient`` over a
    ``twisted.web.client.Agent`` on ``reactor``."""

    def __init__(
        self,
        treq_client: Any = None,
        reactor: Any = None,
        timeout: float = DEFAULT_TIMEOUT,
        max_response_size: int = MAX_RESPONSE_SIZE,
        max_redirects: int = MAX_REDIRECTS,
    ) -> None:
        self._treq = treq_client
        self._reactor = reactor
        self.timeout = timeout
        self.max_response_size = max_response_size
        self.max_redirects = max_redirects

    def _resolve(self) -> tuple[Any, Any]:
        self._reactor = resolve_reactor(self._reactor)
        if self._treq is None:
            from treq.client import HTTPClient
            from twisted.web.client import Agent

            agent: Any = Agent(self._reactor)  # type: ignore[no-untyped-call]
            self._treq = HTTPClient(agent)
        return self._treq, self._reactor

    def announce(self, url: str, request: AnnounceRequest) -> Deferred[AnnounceResponse]:
        """Announce ``request`` to the tracker whose announce URL is ``url``."""
        try:
            target = announce_url(self._check(url), request)
        except TrackerURLError as e:
            return fail(e)
        return self._get(target).addCallback(parse_announce_response)

    def scrape(
        self, url: str, info_hashes: Iterable[bytes]
    ) -> Deferred[dict[bytes, ScrapeStats]]:
        """Scrape (BEP 48) the tracker whose announce URL is ``url``."""
        hashes = list(info_hashes)
        try:
            base = scrape_url(self._check(url))
            if base is None:
                raise TrackerURLError(f"no scrape URL for {url!r}")
            target = scrape_request_url(base, hashes)
        except (TrackerURLError, ValueError) as e:
            return fail(e if isinstance(e, TrackerURLError) else TrackerURLError(str(e)))
        return self._get(target).addCallback(parse_scrape_response, hashes)

    @staticmethod
    def _check(url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise TrackerURLError(f"not an HTTP tracker URL: {url!r}")
        return url

    def _get(self, url: str) -> Deferred[bytes]:
        client, reactor = self._resolve()
        d = Deferred.fromCoroutine(self._fetch(client, reactor, url))
        on_timeout = _timed_out(_short(url), self.timeout)
        return d.addTimeout(self.timeout, reactor, onTimeoutCancel=on_timeout)

    async def _fetch(self, client: Any, reactor: Any, url: str) -> bytes:
        for _ in range(self.max_redirects + 1):
            try:
                response = await client.get(
                    treq_url(url), allow_redirects=False, unbuffered=True, reactor=reactor
                )
            except (CancelledError, TxBitTorrentError):
                raise
            except Exception as e:
                if any(r.check(CancelledError) for r in getattr(e, "reasons", ())):
                    raise CancelledError() from e  # Agent wraps a cancellation
                raise TrackerConnectionError(f"{_short(url)}: {_describe(e)}") from e
            if response.code in _REDIRECTS:
                _discard(response)
                location = response.headers.getRawHeaders(b"location")
                if not location:
                    raise RemoteProtocolError(
                        f"HTTP {response.code} without Location from {_short(url)}"
                    )
                url = urljoin(url, location[-1].decode("latin-1"))
                if urlsplit(url).scheme.lower() not in ("http", "https"):
                    raise RemoteProtocolError(f"redirect to a non-HTTP URL: {_short(url)!r}")
                continue
            if response.code != 200:
                _discard(response)
                raise TrackerHTTPError(response.code, _short(url))
            reader = _BodyReader(self.max_response_size, response.length)
            response.deliverBody(reader)
            body: bytes = await reader.finished
            return body
        raise RemoteProtocolError(f"more than {self.max_redirects} redirects")


# -- UDP ----------------------------------------------------------------------


class _Pending:
    """One exchange in flight: where it goes, its timer, whom to tell."""

    def __init__(self, url: str, deferred: Deferred[Any]) -> None:
        self.url = url
        self.deferred = deferred
        self.exchange: UDPTrackerExchange | None = None
        self.address: tuple[str, int] | None = None
        self.family = 4
        self.timer: Any = None
        self.transaction_id: int | None = None
        self.resolving: Deferred[Any] | None = None


def _literal(host: str) -> str | None:
    """``host`` as the mux reports it if it is an IP address, else ``None``."""
    try:
        return canonical_host(host)
    except ValueError:
        return None


class UDPTrackerClient:
    """Announces and scrapes over UDP (BEP 15); see the module docstring.

    ``mux`` is the session's ``DatagramMux`` (its owner starts and stops it);
    without one the client makes a private mux on ``interface4`` and
    ``interface6`` (``None``: no socket of that family; both are ignored
    when ``mux`` is given)."""

    def __init__(
        self,
        reactor: Any = None,
        rng: random.Random | None = None,
        *,
        mux: DatagramMux | None = None,
        interface4: str | None = "0.0.0.0",
        interface6: str | None = "::",
        max_n: int = DEFAULT_MAX_N,
    ) -> None:
        self._reactor = reactor
        self._rng = rng
        self._mux = mux
        self._own_mux = mux is None
        self._interfaces = (interface4, interface6)
        self.max_n = max_n
        self.cache = ConnectionCache()
        self._by_transaction: dict[int, list[_Pending]] = {}
        self._pending: set[_Pending] = set()
        self._running = False

    @property
    def mux(self) -> DatagramMux | None:
        """The mux the client sends through (a private one exists once started)."""
        return self._mux

    def start(self) -> None:
        """Accept requests (a private mux binds on the first one)."""
        self._reactor = resolve_reactor(self._reactor)
        if self._rng is None:
            self._rng = random.SystemRandom()
        if self._mux is None:
            interface4, interface6 = self._interfaces
            self._mux = DatagramMux(self._reactor, interface4=interface4, interface6=interface6)
        self._running = True

    def stop(self) -> Deferred[None]:
        """Fail pending requests, cancel every timer, close a private mux's sockets."""
        self._running = False
        for pending in list(self._pending):
            pending.deferred.cancel()
        if self._own_mux and self._mux is not None:
            return self._mux.stop()
        return succeed(None)

    def announce(self, url: str, request: AnnounceRequest) -> Deferred[AnnounceResponse]:
        """Announce ``request`` to the UDP tracker at ``url``."""
        return self._request(url, request)

    def scrape(
        self, url: str, info_hashes: Iterable[bytes]
    ) -> Deferred[dict[bytes, ScrapeStats]]:
        """Scrape up to 74 torrents at the UDP tracker at ``url``."""
        try:
            request = ScrapeRequest(tuple(info_hashes))
        except ValueError as e:
            return fail(LocalProtocolError(str(e)))
        return self._request(url, request)

    # -- internals --

    def _request(self, url: str, request: AnnounceRequest | ScrapeRequest) -> Deferred[Any]:
        if not self._running:
            return fail(LocalProtocolError("the UDP tracker client is not started"))
        try:
            host, port, url_data = parse_udp_url(url)
        except ValueError as e:
            return fail(TrackerURLError(str(e)))
        d: Deferred[Any] = Deferred(lambda _: self._forget(pending))
        pending = _Pending(url, d)
        self._pending.add(pending)
        literal = _literal(host)
        resolving = succeed(literal) if literal else Deferred.fromCoroutine(self._lookup(host))
        pending.resolving = resolving
        resolving.addCallbacks(
            self._resolved,
            lambda f: self._finish(pending, error=f.value),
            callbackArgs=(pending, port, request, url_data),
        )
        return d

    async def _lookup(self, host: str) -> str:
        try:
            address: str = await self._reactor.resolve(host)
        except CancelledError:
            raise
        except Exception as e:
            raise TrackerConnectionError(f"cannot resolve {host!r}: {_describe(e)}") from e
        return address

    def _resolved(
        self,
        ip: str,
        pending: _Pending,
        port: int,
        request: AnnounceRequest | ScrapeRequest,
        url_data: bytes,
    ) -> None:
        pending.resolving = None
        if pending not in self._pending:
            return
        literal = _literal(ip)
        if literal is None:
            self._finish(pending, error=TrackerConnectionError(f"not an IP address: {ip!r}"))
            return
        pending.family = family_of(literal)
        pending.address = (literal, port)
        try:
            self._start_mux()
        except Exception as e:
            self._finish(pending, error=TrackerConnectionError(_describe(e)))
            return
        assert self._rng is not None
        pending.exchange = UDPTrackerExchange(
            pending.address,
            request,
            rng=self._rng,
            cache=self.cache,
            ipv6=pending.family == 6,
            url_data=url_data,
            max_n=self.max_n,
        )
        self._step(pending, pending.exchange.start(self._reactor.seconds()))

    def _start_mux(self) -> None:
        """Bind a private mux on first use (the owner of a given one starts it)."""
        assert self._mux is not None
        if self._own_mux and not self._mux.running:
            self._mux.start()

    def _step(self, pending: _Pending, step: Step | None) -> None:
        if step is None:
            return
        if isinstance(step, Done):
            self._finish(pending, result=step.response)
        elif isinstance(step, Failed):
            error = step.error or TrackerTimeoutError(f"{_short(pending.url)}: {step.reason}")
            self._finish(pending, error=error)
        else:
            self._send(pending, step)

    def _send(self, pending: _Pending, step: Send) -> None:
        assert pending.exchange is not None and pending.address is not None
        assert self._mux is not None
        self._unregister(pending)
        tid = pending.transaction_id = pending.exchange.transaction_id
        waiting = self._by_transaction.setdefault(tid, [])
        if not waiting:
            self._mux.claim(tid, self._datagram_received)
        waiting.append(pending)
        self._schedule(pending, step.deadline)
        try:
            self._mux.send(step.datagram, pending.address)
        except Exception as e:
            self._finish(pending, error=TrackerConnectionError(_describe(e)))

    def _schedule(self, pending: _Pending, deadline: float) -> None:
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        delay = max(0.0, deadline - self._reactor.seconds())
        pending.timer = self._reactor.callLater(delay, self._timed_out, pending)

    def _timed_out(self, pending: _Pending) -> None:
        pending.timer = None
        exchange = pending.exchange
        assert exchange is not None
        step = exchange.timeout(self._reactor.seconds())
        if step is None and exchange.deadline is not None:
            self._schedule(pending, exchange.deadline)
        self._step(pending, step)

    def _datagram_received(self, datagram: bytes, source: Address) -> None:
        """A reply the mux routed here by its transaction id, from ``source`` (canonical)."""
        tid = transaction_id_of(datagram)
        if tid is None:
            return
        for pending in list(self._by_transaction.get(tid, ())):
            if pending.address != source or pending.exchange is None:
                continue
            step = pending.exchange.datagram_received(datagram, self._reactor.seconds())
            if step is not None:
                self._step(pending, step)
                return

    def _unregister(self, pending: _Pending) -> None:
        tid, pending.transaction_id = pending.transaction_id, None
        waiting = self._by_transaction.get(tid) if tid is not None else None
        if tid is not None and waiting is not None:
            waiting.remove(pending)
            if not waiting:
                del self._by_transaction[tid]
                if self._mux is not None:
                    self._mux.release(tid, self._datagram_received)

    def _forget(self, pending: _Pending) -> None:
        """Drop every trace of ``pending`` (its Deferred is done or being cancelled)."""
        self._pending.discard(pending)
        self._unregister(pending)
        if pending.timer is not None and pending.timer.active():
            pending.timer.cancel()
        pending.timer = None
        if pending.resolving is not None:
            resolving, pending.resolving = pending.resolving, None
            resolving.cancel()

    def _finish(
        self, pending: _Pending, result: Any = None, error: BaseException | None = None
    ) -> None:
        if pending not in self._pending:
            return
        self._forget(pending)
        if error is not None:
            pending.deferred.errback(error)
        else:
            pending.deferred.callback(result)
