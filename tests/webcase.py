"""The plumbing the web tests' fixtures share (ApiCase, QbtCase,
TransmissionCase, ConfluenceCase, the WebSocket tests): a Session started
on 127.0.0.1, a StateStore, a Site on a loopback port, a treq pool and a
WebSocket client that keeps its JSON frames; ``WebCase``, the base of the
fixtures that serve over a Session in a fresh download directory.  Each helper takes the
running TestCase and registers its own cleanup there, so a fixture's
setUp says only what it builds, not how each piece is torn down."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from txbittorrent.daemon.store import StateStore
from txbittorrent.session import Session


@inlineCallbacks
def start_session(test: TestCase) -> Generator[Any, Any, Session]:
    """A started Session listening on 127.0.0.1; in cleanup its torrents
    are removed and it stops."""
    session = Session(reactor, listen_interfaces=["127.0.0.1"])
    yield session.start()
    test.addCleanup(stop_session, session)
    return session


@inlineCallbacks
def stop_session(session: Session) -> Generator[Any, Any, None]:
    """Remove every torrent of ``session``, then stop it."""
    for torrent in session.torrents():
        yield session.remove(torrent.info_hash)
    yield session.stop()


def open_store(test: TestCase, path: str) -> StateStore:
    """A StateStore at ``path``, closed in cleanup."""
    store = StateStore(path)
    test.addCleanup(store.close)
    return store


def listen(test: TestCase, site: Resource | Site) -> Any:
    """The listening port of ``site`` (a Resource is wrapped in a plain
    Site) on a free port of 127.0.0.1, closed in cleanup."""
    if not isinstance(site, Site):
        site = Site(site)
    port = reactor.listenTCP(0, site, interface="127.0.0.1")
    test.addCleanup(port.stopListening)
    return port


def serve(test: TestCase, site: Resource | Site, path: str = "") -> str:
    """``listen(test, site)``'s base URL, ``path`` appended."""
    return f"http://127.0.0.1:{listen(test, site).getHost().port}{path}"


def make_pool(test: TestCase) -> HTTPConnectionPool:
    """A non-persistent treq pool, its connections closed in cleanup."""
    pool = HTTPConnectionPool(reactor, persistent=False)
    test.addCleanup(pool.closeCachedConnections)
    return pool


class WebCase(TestCase):
    """A fresh ``download_dir`` and a started ``session`` (see
    start_session), both cleaned up; a fixture's setUp yields this one's,
    then builds its resource over them."""

    timeout = 60

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        self.download_dir = os.path.abspath(self.mktemp())
        os.makedirs(self.download_dir)
        self.session: Session = yield start_session(self)


class WSClient:
    """A WebSocketProtocol for Twisted's client that keeps the JSON frames;
    ``lost`` fires (and ``reason`` is set) when the connection ends."""

    def __init__(self) -> None:
        self.transport: Any = None
        self.frames: list[Any] = []
        self.waiting: tuple[int, Deferred[None]] | None = None
        self.lost: Deferred[None] = Deferred()
        self.reason: Failure | None = None

    def negotiationStarted(self, transport: Any) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        pass

    def pongReceived(self, payload: bytes) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        self.frames.append(json.loads(message))
        if self.waiting is not None and len(self.frames) >= self.waiting[0]:
            d, self.waiting = self.waiting[1], None
            d.callback(None)

    def bytesMessageReceived(self, data: bytes) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        self.reason = reason
        self.lost.callback(None)

    def wait_frames(self, n: int) -> Deferred[None]:
        """Fires once ``n`` frames have arrived."""
        d: Deferred[None] = Deferred()
        if len(self.frames) >= n:
            d.callback(None)
        else:
            self.waiting = (n, d)
        return d

    def close(self) -> Deferred[None]:
        """Close the connection unless it is gone; fires when it is."""
        if not self.lost.called:
            self.transport.loseConnection()
        return self.lost


@inlineCallbacks
def connect_ws(test: TestCase, url: str) -> Generator[Any, Any, WSClient]:
    """A WSClient connected to the ``ws://`` ``url`` with Twisted's
    WebSocket client (it needs wsproto), closed in cleanup; a refused
    upgrade fails with ConnectionRejected."""
    from twisted.web.websocket import WebSocketClientEndpoint

    client = WSClient()

    class Factory:
        def buildProtocol(self, url: str) -> WSClient:
            return client

    endpoint = WebSocketClientEndpoint.new(reactor, url)
    yield defer.Deferred.fromCoroutine(endpoint.connect(Factory()))
    test.addCleanup(client.close)
    return client
