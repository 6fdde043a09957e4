# twisted.web's Request and the reactor interfaces are untyped: their calls are all over here.
# mypy: disable-error-code="no-untyped-call"
"""Live events over HTTP: Server-Sent Events, and the same over a WebSocket.

Theory of operation
-------------------
``EventStreamResource(bus, clock=...)`` answers ``GET`` with a
``text/event-stream`` that never ends on its own.  Each request gets one
``_SSEStream``: it parses the filter (``?ih=<40 hex>`` and
``?kinds=a,b``), replays what the client missed when it reconnects with
``Last-Event-ID`` (``bus.since(id)``; when the bus no longer keeps those
events it sends ``event: reset`` first so the client resynchronises), then
subscribes to the bus and writes every matching event as::

    id: <event_id>
    event: <kind>
    data: <event.to_json() as one line of JSON>

A ``: heartbeat`` comment goes out every ``heartbeat`` seconds on the
injected clock (so proxies keep the connection and clients notice a dead
one).  When the request finishes (the client went: ``notifyFinish``), the
stream cancels its subscription and its timer.

Bounded memory: the stream registers itself as a *streaming producer* on
the request.  Twisted's TCP transport calls ``pauseProducing`` once its
write buffer passes its ``bufferSize`` (64 KiB) because the client is not
reading.  While paused the stream queues the encoded events itself; once
that queue passes ``max_buffer`` bytes the stream gives up and aborts the
connection (``abortConnection``: ``loseConnection`` would wait forever for
a buffer the client never drains).  ``resumeProducing`` flushes the queue.
So a stuck client costs at most about ``max_buffer`` + 64 KiB.

``EventWebSocketResource`` (only when ``twisted.web.websocket`` and its
``wsproto`` dependency, Twisted's ``websocket`` extra, are importable: see
``websocket_available()``) sends the same events, one JSON text frame each
(``event_json``: the event's ``to_json()`` plus ``event_id``), with the same
query filter, a ping every ``heartbeat`` seconds, the same bound on what a
client that does not read may cost (the protocol is a producer registered
on the upgraded request, whose channel forwards the transport's pause), and a clean close (code 1001) from ``stop()``.
A bad filter is refused with a 400 before the upgrade.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET

from txbittorrent.eventtypes import EVENT_TYPES

if TYPE_CHECKING:
    from twisted.python.failure import Failure
    from twisted.web.server import Request

    from txbittorrent.events import EventBus, Subscription
    from txbittorrent.eventtypes import TorrentEvent

__all__ = ["EventStreamResource", "EventWebSocketResource", "EventFilter", "parse_filter",
           "encode_sse", "event_json", "websocket_available", "StreamRefused"]

_log = Logger()

DEFAULT_MAX_BUFFER = 1 << 20


class EventFilter:
    """What a client asked for: one torrent (``info_hash``, None: all) and
    some kinds (None: all)."""

    __slots__ = ("info_hash", "kinds")

    def __init__(self, info_hash: bytes | None, kinds: frozenset[str] | None) -> None:
        self.info_hash = info_hash
        self.kinds = kinds

    def matches(self, event: TorrentEvent) -> bool:
        return ((self.info_hash is None or event.info_hash == self.info_hash)
                and (self.kinds is None or event.kind in self.kinds))


def parse_filter(args: dict[bytes, list[bytes]]) -> EventFilter:
    """The filter in a request's query (``ih=<40 hex>``, ``kinds=a,b``);
    ValueError with a message for bad input."""
    info_hash: bytes | None = None
    ih = args.get(b"ih")
    if ih:
        text = ih[0].decode("ascii", "replace")
        try:
            info_hash = bytes.fromhex(text)
        except ValueError:
            raise ValueError(f"ih is not hex: {text!r}") from None
        if len(info_hash) != 20:
            raise ValueError("ih must be 40 hex digits")
    kinds: frozenset[str] | None = None
    raw = args.get(b"kinds")
    if raw:
        names = frozenset(name.strip() for part in raw
                          for name in part.decode("ascii", "replace").split(",")
                          if name.strip())
        unknown = names - EVENT_TYPES.keys()
        if unknown:
            raise ValueError(f"unknown event kinds: {', '.join(sorted(unknown))}")
        kinds = names or None
    return EventFilter(info_hash, kinds)


def event_json(event: TorrentEvent) -> str:
    """One event as compact JSON, with its ``event_id``."""
    body = event.to_json()
    body.setdefault("event_id", event.event_id)
    return json.dumps(body, separators=(",", ":"), sort_keys=True)


def encode_sse(event: TorrentEvent) -> bytes:
    """One event as an SSE message (JSON never holds a raw newline)."""
    return (f"id: {event.event_id}\nevent: {event.kind}\n"
            f"data: {event_json(event)}\n\n").encode()


def _error(request: Request, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    return json.dumps({"error": message}).encode()


class _EventResource(Resource):
    """What both event resources keep: the bus, the clock, the heartbeat and
    buffer bound, and their open streams."""

    isLeaf = True

    def __init__(self, bus: EventBus, *, clock: Any, heartbeat: float = 15.0,
                 max_buffer: int = DEFAULT_MAX_BUFFER) -> None:
        super().__init__()
        self.bus = bus
        self.clock = clock
        self.heartbeat = heartbeat
        self.max_buffer = max_buffer
        self.streams: set[Any] = set()


class EventStreamResource(_EventResource):
    """``GET``: the bus's events as Server-Sent Events (see the module)."""

    def render_GET(self, request: Request) -> bytes | int:
        try:
            wanted = parse_filter(request.args or {})
        except ValueError as e:
            return _error(request, 400, str(e))
        last_id: int | None = None
        header = request.getHeader(b"last-event-id")
        if header is not None and header.strip():
            try:
                last_id = int(header.strip())
            except ValueError:
                return _error(request, 400, "Last-Event-ID must be an integer")
        stream = _SSEStream(self, request, wanted)
        self.streams.add(stream)
        stream.start(last_id)
        return NOT_DONE_YET

    def stop(self) -> None:
        """End every open stream (the daemon is stopping)."""
        for stream in list(self.streams):
            stream.finish()


class _EventClient:
    """What an SSE stream and a WebSocket client share: the bus subscription,
    the heartbeat timer, and the queue kept while the transport is paused,
    bounded by ``max_buffer`` (past it the client is cut off).  Subclasses
    say how an item is written (``_emit``), what a heartbeat is
    (``_heartbeat``) and how the connection is dropped (``_abort``)."""

    what = "event client"

    def __init__(self, owner: _EventResource, request: Request, wanted: EventFilter) -> None:
        self.owner = owner
        self.request = request
        self.wanted = wanted
        self.subscription: Subscription | None = None
        self.timer: Any | None = None
        self.paused = False
        self.pending: list[Any] = []
        self.pending_size = 0
        self.open = False

    def _emit(self, item: Any) -> None:
        raise NotImplementedError

    def _heartbeat(self) -> None:
        raise NotImplementedError

    def _abort(self) -> None:
        raise NotImplementedError

    def _deliver(self, event: TorrentEvent) -> None:
        raise NotImplementedError

    def _subscribe(self) -> None:
        self.subscription = self.owner.bus.subscribe(
            self._deliver, info_hash=self.wanted.info_hash, kinds=self.wanted.kinds)
        self._schedule()

    def _schedule(self) -> None:
        self.timer = self.owner.clock.callLater(self.owner.heartbeat, self._beat)

    def _beat(self) -> None:
        self.timer = None
        if self.open:
            self._heartbeat()
        if self.open:
            self._schedule()

    def _send(self, item: Any) -> None:
        if not self.open:
            return
        if self.paused:
            self.pending.append(item)
            self.pending_size += len(item)
            if self.pending_size > self.owner.max_buffer:
                _log.info("{what} not reading ({size} bytes queued): closing",
                          what=self.what, size=self.pending_size)
                self._abort()
            return
        self._emit(item)

    # IPushProducer
    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        pending, self.pending, self.pending_size = self.pending, [], 0
        for item in pending:
            self._send(item)  # (paused again while flushing: the rest is queued again)

    def stopProducing(self) -> None:
        self._cleanup()

    def _cleanup(self) -> None:
        self.open = False
        self.pending, self.pending_size = [], 0
        self.owner.streams.discard(self)
        if self.subscription is not None:
            self.subscription.cancel()
            self.subscription = None
        if self.timer is not None:
            if self.timer.active():
                self.timer.cancel()
            self.timer = None


class _SSEStream(_EventClient):
    """One client's stream; a streaming producer on its request."""

    what = "event stream client"

    def __init__(self, owner: EventStreamResource, request: Request,
                 wanted: EventFilter) -> None:
        super().__init__(owner, request, wanted)
        self.open = True

    def start(self, last_id: int | None) -> None:
        request = self.request
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache, no-store")
        request.setHeader(b"x-accel-buffering", b"no")
        request.registerProducer(self, True)
        request.notifyFinish().addBoth(self._gone)
        self._send(b": connected\n\n")  # sends the headers now
        if last_id is not None:
            missed = self.owner.bus.since(last_id)
            if missed is None:
                reset = {"last_event_id": self.owner.bus.last_event_id}
                self._send(f"event: reset\ndata: {json.dumps(reset)}\n\n".encode())
            else:
                for event in missed:
                    if self.wanted.matches(event):
                        self._send(encode_sse(event))
        if not self.open:
            return
        self._subscribe()

    def _emit(self, item: bytes) -> None:
        self.request.write(item)

    def _heartbeat(self) -> None:
        self._send(b": heartbeat\n\n")

    def _deliver(self, event: TorrentEvent) -> None:
        self._send(encode_sse(event))

    def finish(self) -> None:
        """End the response cleanly (server side)."""
        if self.open:
            self._cleanup()
            self.request.unregisterProducer()
            self.request.finish()

    def _abort(self) -> None:
        transport: Any = self.request.transport
        self._cleanup()
        if transport is not None:
            abort = getattr(transport, "abortConnection", None)
            (abort or transport.loseConnection)()

    def _gone(self, result: None | Failure) -> None:
        self._cleanup()


# -- the same over a WebSocket ------------------------------------------------------------


def websocket_available() -> bool:
    """Whether ``twisted.web.websocket`` imports (Twisted >= 24.10 with wsproto)."""
    try:
        import twisted.web.websocket  # noqa: F401
    except ImportError:
        return False
    return True


class StreamRefused(Exception):
    """A stream request refused before the upgrade: its status and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EventWebSocketResource(_EventResource):
    """``GET`` with a WebSocket upgrade: one JSON text frame per event.

    Subclasses may change what a client hears: ``filter_for(request)``
    (which events; raise ``StreamRefused`` to answer an error instead) and
    ``protocol`` (the per-client class, whose ``_deliver`` writes a frame)."""

    protocol: type[_EventWebSocket]

    def filter_for(self, request: Request) -> EventFilter:
        """The events this request's client hears: its query's filter."""
        try:
            return parse_filter(request.args or {})
        except ValueError as e:
            raise StreamRefused(400, str(e)) from None

    def render_GET(self, request: Request) -> bytes | int:
        try:
            from twisted.web.websocket import WebSocketResource
        except ImportError:
            return _error(request, 501, "WebSocket support needs Twisted's websocket extra")
        try:
            wanted = self.filter_for(request)
        except StreamRefused as e:
            return _error(request, e.code, e.message)
        owner, protocol_class = self, self.protocol

        class _Factory:
            def buildProtocol(self, request: Request) -> _EventWebSocket:
                protocol = protocol_class(owner, wanted, request)
                # The upgraded connection keeps the HTTPChannel as its
                # transport's producer (so WebSocketTransport.attachProducer
                # fails server side): register on the request instead, and the
                # channel forwards pause/resume.  Its idle timeout would drop a
                # quiet socket: liveness is the pings' job now.
                request.registerProducer(protocol, True)
                request.channel.setTimeout(None)
                return protocol

        result: bytes | int = WebSocketResource(_Factory()).render_GET(request)
        return result

    def stop(self) -> None:
        """Close every open WebSocket (1001: going away)."""
        for stream in list(self.streams):
            stream.close(1001)


class _EventWebSocket(_EventClient):
    """One WebSocket client (a ``WebSocketProtocol``), a push producer on
    its transport."""

    what = "event WebSocket client"

    def __init__(self, owner: EventWebSocketResource, wanted: EventFilter,
                 request: Request) -> None:
        super().__init__(owner, request, wanted)
        self.transport: Any = None

    # WebSocketProtocol
    def negotiationStarted(self, transport: Any) -> None:
        self.transport = transport

    def negotiationFinished(self) -> None:
        self.open = True
        self.owner.streams.add(self)
        self._subscribe()

    def pongReceived(self, payload: bytes) -> None:
        pass

    def textMessageReceived(self, message: str) -> None:
        pass  # the stream is one way

    def bytesMessageReceived(self, data: bytes | bytearray) -> None:
        pass

    def connectionLost(self, reason: Failure) -> None:
        self._cleanup()

    # sending
    def _heartbeat(self) -> None:
        self.transport.ping(b"")

    def _deliver(self, event: TorrentEvent) -> None:
        self._send(event_json(event))

    def _emit(self, item: str) -> None:
        self.transport.sendTextMessage(item)

    def _abort(self) -> None:
        raw = getattr(self.transport, "transport", None)
        self._cleanup()
        if raw is not None:
            getattr(raw, "abortConnection", raw.loseConnection)()

    def close(self, code: int = 1000) -> None:
        """Send a close frame and end the connection."""
        if self.open:
            self._cleanup()
            self.request.unregisterProducer()
            self.transport.loseConnection(code)


EventWebSocketResource.protocol = _EventWebSocket
