"""Live events over HTTP (txbittorrent.web.events) through real sockets on 127.0.0.1."""

from __future__ import annotations

import json
from collections.abc import Callable

from twisted.internet import defer, reactor
from twisted.internet.protocol import ClientFactory, Protocol
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial import unittest
from twisted.web.server import Site

from tests.webcase import WSClient, connect_ws, listen
from txbittorrent.events import EventBus
from txbittorrent.eventtypes import PiecePassed, StateChanged, TorrentAdded
from txbittorrent.web.events import (
    EventStreamResource,
    EventWebSocketResource,
    encode_sse,
    parse_filter,
    websocket_available,
)

IH_A = bytes(range(20))
IH_B = bytes(range(1, 21))


class _RawClient(Protocol):
    """Sends one HTTP/1.0 request (so the body is not chunked) and keeps
    every byte; ``wait_for(predicate)`` fires once the bytes satisfy it."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.data = b""
        self.waiters: list[tuple[Callable[[bytes], bool], defer.Deferred[bytes]]] = []
        self.lost: defer.Deferred[None] = defer.Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)

    def dataReceived(self, data: bytes) -> None:
        self.data += data
        for waiter in list(self.waiters):
            if waiter[0](self.data):
                self.waiters.remove(waiter)
                waiter[1].callback(self.data)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        for _, d in self.waiters:
            d.errback(AssertionError(f"connection lost; got {self.data!r}"))
        self.waiters = []
        self.lost.callback(None)

    def wait_for(self, predicate: Callable[[bytes], bool]) -> defer.Deferred[bytes]:
        d: defer.Deferred[bytes] = defer.Deferred()
        if predicate(self.data):
            d.callback(self.data)
        else:
            self.waiters.append((predicate, d))
        return d

    @property
    def body(self) -> bytes:
        return self.data.partition(b"\r\n\r\n")[2]


def _messages(body: bytes) -> list[dict[str, str]]:
    """The SSE messages in ``body`` as dicts of field -> value (comments as ``":"``)."""
    out = []
    for block in body.decode().split("\n\n")[:-1]:
        fields: dict[str, str] = {}
        for line in block.split("\n"):
            if line.startswith(":"):
                fields[":"] = line[1:].strip()
            else:
                name, _, value = line.partition(": ")
                fields[name] = value
        out.append(fields)
    return out


def _events(body: bytes) -> list[dict[str, str]]:
    return [m for m in _messages(body) if "event" in m]


class EventStreamTests(unittest.TestCase):
    """The SSE resource served by a real Site on 127.0.0.1."""

    timeout = 20

    def setUp(self) -> None:
        self.bus = EventBus(history=4)
        self.clock = Clock()
        self.resource = EventStreamResource(self.bus, clock=self.clock, heartbeat=15.0,
                                            max_buffer=8192)
        self.port = listen(self, self.resource)

    @defer.inlineCallbacks
    def connect(self, target: bytes = b"/", headers: bytes = b"",
                stream: bool = True) -> defer.Generator:
        client = _RawClient(b"GET " + target + b" HTTP/1.0\r\nHost: 127.0.0.1\r\n"
                            + headers + b"\r\n")
        factory = ClientFactory.forProtocol(lambda: client)
        reactor.connectTCP("127.0.0.1", self.port.getHost().port, factory)
        self.addCleanup(self.disconnect, client)
        if not stream:
            yield client.lost
            return client
        yield client.wait_for(lambda data: b"\r\n\r\n" in data and b"\n\n" in
                              data.partition(b"\r\n\r\n")[2])
        return client

    def disconnect(self, client: _RawClient) -> defer.Deferred[None]:
        if client.transport is not None and client.transport.connected:
            client.transport.loseConnection()
        return client.lost

    def server_stream(self) -> object:
        (stream,) = self.resource.streams
        return stream

    @defer.inlineCallbacks
    def test_headers_and_events_in_order(self) -> defer.Generator:
        """The response is an uncached text/event-stream; events come with id, event and JSON data, in order."""
        client = yield self.connect()
        head = client.data.partition(b"\r\n\r\n")[0].lower()
        self.assertIn(b"content-type: text/event-stream", head)
        self.assertIn(b"cache-control: no-cache", head)
        self.bus.publish(TorrentAdded(IH_A, "a"))
        self.bus.publish(PiecePassed(IH_A, 3))
        self.bus.publish(StateChanged(IH_B, "stopped", "active"))
        yield client.wait_for(lambda data: len(_events(client.body)) == 3)
        events = _events(client.body)
        self.assertEqual([e["id"] for e in events], ["1", "2", "3"])
        self.assertEqual([e["event"] for e in events],
                         ["torrent_added", "piece_passed", "state_changed"])
        data = json.loads(events[1]["data"])
        self.assertEqual(data["piece_index"], 3)
        self.assertEqual(data["kind"], "piece_passed")
        self.assertEqual(data["info_hash"], IH_A.hex())

    @defer.inlineCallbacks
    def test_filter_by_info_hash_and_kinds(self) -> defer.Generator:
        """?ih= and ?kinds= keep only the matching events."""
        client = yield self.connect(b"/?ih=" + IH_A.hex().encode() + b"&kinds=piece_passed,complete")
        self.bus.publish(TorrentAdded(IH_A, "a"))
        self.bus.publish(PiecePassed(IH_B, 1))
        self.bus.publish(PiecePassed(IH_A, 2))
        self.bus.publish(StateChanged(IH_A, "stopped", "active"))
        self.bus.publish(PiecePassed(IH_A, 4))
        yield client.wait_for(lambda data: b"id: 5" in data)
        events = _events(client.body)
        self.assertEqual([(e["id"], e["event"]) for e in events],
                         [("3", "piece_passed"), ("5", "piece_passed")])

    @defer.inlineCallbacks
    def test_bad_filter_is_400(self) -> defer.Generator:
        """An unknown kind or a malformed ih is a 400 with a JSON message, and nothing subscribes."""
        for target in (b"/?kinds=nope", b"/?ih=zz", b"/?ih=abcd"):
            client = yield self.connect(target, stream=False)
            self.assertIn(b" 400 ", client.data.split(b"\r\n")[0])
            self.assertIn("error", json.loads(client.body))
        self.assertEqual(self.resource.streams, set())

    @defer.inlineCallbacks
    def test_last_event_id_replays(self) -> defer.Generator:
        """A client reconnecting with Last-Event-ID first gets the kept events it missed, filtered, then live ones."""
        for index in range(4):
            self.bus.publish(PiecePassed(IH_A if index != 2 else IH_B, index))
        client = yield self.connect(b"/?ih=" + IH_A.hex().encode(), b"Last-Event-ID: 1\r\n")
        self.bus.publish(PiecePassed(IH_A, 9))
        yield client.wait_for(lambda data: b"id: 5" in data)
        self.assertEqual([e["id"] for e in _events(client.body)], ["2", "4", "5"])

    @defer.inlineCallbacks
    def test_last_event_id_too_old_resets(self) -> defer.Generator:
        """When the bus no longer keeps the events after Last-Event-ID, an ``event: reset`` comes first."""
        for index in range(6):
            self.bus.publish(PiecePassed(IH_A, index))
        client = yield self.connect(b"/", b"Last-Event-ID: 1\r\n")
        self.bus.publish(PiecePassed(IH_A, 9))
        yield client.wait_for(lambda data: b"id: 7" in data)
        events = _events(client.body)
        self.assertEqual([e["event"] for e in events], ["reset", "piece_passed"])
        self.assertEqual(json.loads(events[0]["data"]), {"last_event_id": 6})

    @defer.inlineCallbacks
    def test_heartbeat_on_the_clock(self) -> defer.Generator:
        """A ``: heartbeat`` comment goes out every heartbeat seconds of the injected clock."""
        client = yield self.connect()
        self.clock.advance(14.9)
        self.clock.advance(0.1)
        yield client.wait_for(lambda data: data.count(b": heartbeat\n\n") == 1)
        self.clock.advance(15)
        yield client.wait_for(lambda data: data.count(b": heartbeat\n\n") == 2)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)

    @defer.inlineCallbacks
    def test_disconnect_unsubscribes(self) -> defer.Generator:
        """When the client goes, the stream cancels its subscription and its heartbeat timer."""
        client = yield self.connect()
        stream = self.server_stream()
        subscription = stream.subscription  # type: ignore[attr-defined]
        finished = stream.request.notifyFinish()  # type: ignore[attr-defined]
        client.transport.loseConnection()
        yield self.assertFailure(finished, Exception)
        self.assertFalse(subscription.active)
        self.assertEqual(self.bus._subscriptions, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(self.resource.streams, set())

    @defer.inlineCallbacks
    def test_slow_reader_is_cut_off(self) -> defer.Generator:
        """Past the transport's buffer plus max_buffer of queued events, the stream is aborted instead of growing."""
        client = yield self.connect()
        stream = self.server_stream()
        big = "x" * 4000
        for _ in range(40):  # ~160 KB in one reactor turn: more than 64 KiB + 8 KiB
            self.bus.publish(TorrentAdded(IH_A, big))
        self.assertFalse(stream.open)  # type: ignore[attr-defined]
        self.assertEqual(self.bus._subscriptions, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        yield client.lost

    @defer.inlineCallbacks
    def test_stop_ends_streams(self) -> defer.Generator:
        """``stop()`` finishes every open response cleanly."""
        client = yield self.connect()
        self.resource.stop()
        yield client.lost
        self.assertEqual(self.bus._subscriptions, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])


class EventStreamTreqTests(unittest.TestCase):
    """The stream read by treq, the body collected as it arrives."""

    timeout = 20

    @defer.inlineCallbacks
    def test_treq_collects_events(self) -> defer.Generator:
        """treq.collect sees each event as it is published."""
        import treq
        from twisted.web.client import HTTPConnectionPool

        bus = EventBus()
        resource = EventStreamResource(bus, clock=Clock())
        port = reactor.listenTCP(0, Site(resource), interface="127.0.0.1")
        self.addCleanup(port.stopListening)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        response = yield treq.get(f"http://127.0.0.1:{port.getHost().port}/?kinds=piece_passed",
                                  pool=pool)
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["text/event-stream; charset=utf-8"])
        received = bytearray()
        two: defer.Deferred[None] = defer.Deferred()

        def chunk(data: bytes) -> None:
            received.extend(data)
            if received.count(b"event: piece_passed") == 2 and not two.called:
                two.callback(None)

        done = treq.collect(response, chunk)
        bus.publish(PiecePassed(IH_A, 1))
        bus.publish(StateChanged(IH_A, "stopped", "active"))
        bus.publish(PiecePassed(IH_A, 2))
        yield two
        self.assertEqual([e["id"] for e in _events(bytes(received))], ["1", "3"])
        resource.stop()
        yield done


class HelpersTests(unittest.TestCase):
    """The pure helpers."""

    def test_encode_sse(self) -> None:
        """An event encodes as id, event and one line of JSON data."""
        event = PiecePassed(IH_A, 7, event_id=12)
        text = encode_sse(event).decode()
        self.assertTrue(text.startswith("id: 12\nevent: piece_passed\ndata: {"))
        self.assertTrue(text.endswith("}\n\n"))
        self.assertEqual(text.count("\n"), 4)

    def test_parse_filter_defaults(self) -> None:
        """No query means every torrent and every kind."""
        wanted = parse_filter({})
        self.assertIsNone(wanted.info_hash)
        self.assertIsNone(wanted.kinds)


class EventWebSocketTests(unittest.TestCase):
    """The WebSocket resource with Twisted's own WebSocket client."""

    timeout = 20

    def setUp(self) -> None:
        if not websocket_available():
            raise unittest.SkipTest("twisted.web.websocket needs wsproto (twisted[websocket])")
        self.bus = EventBus()
        self.clock = Clock()
        self.resource = EventWebSocketResource(self.bus, clock=self.clock, heartbeat=15.0)
        self.port = listen(self, self.resource)

    def connect(self, query: str = "") -> defer.Deferred[WSClient]:
        return connect_ws(self, f"ws://127.0.0.1:{self.port.getHost().port}/{query}")

    @defer.inlineCallbacks
    def wait_subscribed(self) -> defer.Generator:
        # the server subscribes when the upgrade completes, which the client
        # may see first: one turn of the reactor at most, but turn until then
        from twisted.internet.task import deferLater

        for _ in range(200):
            if self.bus._subscriptions:
                return
            yield deferLater(reactor, 0, lambda: None)
        self.fail("the server never subscribed")

    @defer.inlineCallbacks
    def test_one_json_frame_per_event_filtered(self) -> defer.Generator:
        """Each matching event arrives as one JSON text frame with its event_id, in order; ?ih and ?kinds filter."""
        client = yield self.connect(f"?ih={IH_A.hex()}&kinds=piece_passed,state_changed")
        yield self.wait_subscribed()
        self.bus.publish(PiecePassed(IH_A, 1))
        self.bus.publish(PiecePassed(IH_B, 2))
        self.bus.publish(TorrentAdded(IH_A, "a"))
        self.bus.publish(StateChanged(IH_A, "stopped", "active"))
        yield client.wait_frames(2)
        self.assertEqual([(f["event_id"], f["kind"]) for f in client.frames],
                         [(1, "piece_passed"), (4, "state_changed")])
        self.assertEqual(client.frames[0]["info_hash"], IH_A.hex())

    @defer.inlineCallbacks
    def test_client_close_unsubscribes(self) -> defer.Generator:
        """When the client closes, the server cancels its subscription and its ping timer."""
        client = yield self.connect()
        yield self.wait_subscribed()
        (stream,) = self.resource.streams
        client.transport.loseConnection()
        yield client.lost
        from twisted.internet.task import deferLater

        for _ in range(200):
            if not stream.subscription:
                break
            yield deferLater(reactor, 0, lambda: None)
        self.assertEqual(self.bus._subscriptions, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_stop_closes_cleanly(self) -> defer.Generator:
        """``stop()`` sends a close frame; the client sees a clean end."""
        client = yield self.connect()
        yield self.wait_subscribed()
        self.clock.advance(15)  # a ping goes out and the timer re-arms
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)
        self.resource.stop()
        yield client.lost
        from twisted.internet.error import ConnectionDone

        self.assertTrue(client.reason is not None and client.reason.check(ConnectionDone))
        self.assertEqual(self.bus._subscriptions, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    @defer.inlineCallbacks
    def test_bad_filter_refused(self) -> defer.Generator:
        """A bad ?kinds= is refused before the upgrade."""
        from twisted.web.websocket import ConnectionRejected

        try:
            yield self.connect("?kinds=nope")
        except ConnectionRejected as e:
            self.assertEqual(e.response.code, 400)
        else:
            self.fail("connected")

    @defer.inlineCallbacks
    def test_slow_reader_is_cut_off(self) -> defer.Generator:
        """Past the transport's buffer plus max_buffer of queued frames, the WebSocket is aborted."""
        self.resource.max_buffer = 8192
        client = yield self.connect()
        yield self.wait_subscribed()
        (stream,) = self.resource.streams
        for _ in range(40):  # ~160 KB in one reactor turn
            self.bus.publish(TorrentAdded(IH_A, "x" * 4000))
        self.assertFalse(stream.open)
        self.assertEqual(self.bus._subscriptions, [])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        yield client.lost
