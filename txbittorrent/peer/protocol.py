"""The Twisted adapter over ``core.peer.PeerSession``: one TCP connection.

Theory of operation
-------------------
A ``PeerProtocol`` is a ``PeerLink`` (see ``interfaces``): it owns one
transport and one ``PeerSession``, and does nothing the session could do.
``dataReceived`` hands the bytes to ``session.receive_data`` in one call and
dispatches the events that come back: ``HandshakeReceived`` becomes
``host.peer_connected(link)``, a ``Reply`` is written, every other event goes
to ``host.peer_event(link, event)`` in order, and then, once per batch,
``host.peer_events_done(link)``.  What the swarm wants to say it says through
``send`` (bytes a session method returned), ``send_block`` (a PIECE header
and its block, written with ``writeSequence``, never joined) and
``send_blocks`` (several, joined into one write).

Outgoing links are made for a known host: on ``connectionMade`` they ask it
for a session and write our handshake.  Incoming links are made by the
session's listener with a ``router`` (``info_hash -> PeerHost | None``): they
keep the first bytes until the handshake's first 48 bytes name the info hash,
pick the host, write our handshake and feed the kept bytes to the new session.

Life cycle and the host's callbacks, exactly one of:

* the handshake is accepted (``peer_connected`` returns True): then exactly
  one ``peer_lost`` when the connection is gone, whoever closed it;
* it is refused (``peer_connected`` returns False): the link closes and the
  host hears nothing more;
* an outgoing link ends before that (refused, wrong info hash, protocol
  violation, timeout): ``connect_failed(address, reason)``; an incoming one
  ends silently (the host was never told of it).

``close`` is asynchronous as Twisted's ``loseConnection`` is: the callback
comes from ``connectionLost``.  A connection that has not gone away
``close_grace`` seconds after ``close`` is aborted.  An exception raised by a
host callback propagates to Twisted, which logs it and drops the connection
(the host then hears ``peer_lost`` as usual).

Timers: a link has no timer of its own per message.  A ``LinkGroup`` (one per
``Session``) runs one coarse ``LoopingCall`` (``tick_interval``, 5 s) over its
live links, started with the first link and stopped with the last; each tick
calls ``check_timers(now)``, which compares byte counters with their values
at the previous tick, so ``dataReceived`` and the writes never read the clock.
It enforces the handshake timeout, the idle timeout (nothing received), the
write-stall timeout (the transport paused our writes and has not resumed
them: the peer does not read its socket), sends keep-alives after
``keepalive_interval`` seconds of our own silence, and aborts links slow to
close.  Precision is one tick.  The only other timers are the rate limits':
at most one ``DelayedCall`` per link to flush held-back blocks and one to
resume reading, both cancelled when the link closes.

Writing and memory: the link registers itself with its transport as a
streaming producer, so Twisted calls ``pauseProducing`` when the transport's
buffer passes its ``bufferSize`` (64 KiB) and ``resumeProducing`` when it has
drained.  While paused, blocks wait in the link's own queue (control messages
are still written, unless blocks are queued: order is never changed), and so
do blocks held back by the upload limits.  ``pending_write_bytes`` is the
queue's size, plus, while paused, the transport's ``bufferSize`` and what was
written since the pause (an estimate of the transport's buffer, within one
message); when not paused the transport holds less than its ``bufferSize``,
which is not counted.  The swarm reads no more blocks from disk for a link
whose ``pending_write_bytes`` is high.

Rate limits (``throttle.Throttle``, shared): ``send_block`` charges the
session's and the host's upload throttles and, when they ask for a delay,
queues the block until then; every later message queues behind it.
``send_blocks`` writes several blocks as one joined ``bytes`` when no limit
is in force and nothing is queued, and otherwise goes block by block.
``dataReceived`` charges the download throttles and, when they ask for a
delay, pauses the transport (stops reading) until the debt is paid.

Socket options (``LinkConfig``): ``TCP_NODELAY`` is set by default.  Twisted
already coalesces everything written during one reactor turn into one
``send``, so Nagle's algorithm would add nothing but latency: a REQUEST or
HAVE written behind a full window would wait for an ACK that the peer delays.
``SO_RCVBUF``/``SO_SNDBUF`` are left to the kernel by default: on Linux an
explicit size turns off the buffer auto-tuning (which grows to
``tcp_rmem``/``tcp_wmem`` max, often 4-6 MiB) and is capped by
``rmem_max``/``wmem_max`` (often 208 KiB), so setting 4 MiB can make things
slower; set them where the kernel's limits allow it and auto-tuning is off.
"""

from __future__ import annotations

import ipaddress
import socket
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IPushProducer
from twisted.internet.protocol import Protocol, connectionDone
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer  # type: ignore[import-untyped]

from txbittorrent.core.wire.events import HandshakeReceived, PeerEvent, Reply
from txbittorrent.core.wire.session import PeerSession
from txbittorrent.core.wire.codec import parse_handshake_prefix
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError, SelfConnectionError
from txbittorrent.interfaces import SELF_CONNECTION
from txbittorrent.interfaces import Address, PeerHost
from txbittorrent.peer.throttle import Throttle, longest_delay

__all__ = ["LinkConfig", "LinkGroup", "PeerProtocol", "normalize_host"]

_log = Logger()

TRANSPORT_BUFFER_SIZE = 64 * 1024
"""What a transport buffers before it pauses its producer, when it does not
say (``FileDescriptor.bufferSize``)."""


TICK_INTERVAL = 5.0
"""Seconds between two checks of the links' timers."""


@dataclass(frozen=True, slots=True)
class LinkConfig:
    """Timers (seconds) and socket options of every link of a session."""

    tick_interval: float = TICK_INTERVAL
    """How often ``LinkGroup`` checks its links' timers: their precision."""
    handshake_timeout: float = 20.0
    """From TCP connect until the peer's handshake is accepted."""
    idle_timeout: float = 180.0
    """Nothing received for this long: closed (BEP 3 keep-alives come every
    two minutes)."""
    keepalive_interval: float = 60.0
    """A keep-alive after this much of our own silence (libtorrent drops a
    peer silent for 120 s)."""
    write_stall_timeout: float = 120.0
    """The transport's buffer has stayed full this long: the peer does not
    read its socket, and the connection is aborted."""
    close_grace: float = 10.0
    """After ``close``, how long the transport may take to flush and go."""
    tcp_nodelay: bool = True
    receive_buffer_size: int | None = None
    """``SO_RCVBUF`` for each connection; None leaves the kernel's choice
    (and its auto-tuning) alone."""
    send_buffer_size: int | None = None
    """``SO_SNDBUF`` for each connection; None leaves the kernel's choice."""
    read_size: int = 256 * 1024
    """Bytes asked of the socket per read (Twisted's ``bufferSize``, 64 KiB by
    default): fewer, larger reads mean fewer trips through the session per
    megabyte.  It is also the transport's write-buffer mark for pausing us."""


def normalize_host(host: str) -> str:
    """An IPv4-mapped IPv6 address (``::ffff:1.2.3.4``, what a dual-stack
    socket reports for an IPv4 peer) as the IPv4 address; anything else as is."""
    if host.startswith("::ffff:") or host.startswith("::FFFF:"):
        try:
            mapped = ipaddress.IPv6Address(host).ipv4_mapped
        except ValueError:
            return host
        if mapped is not None:
            return str(mapped)
    return host


class LinkGroup:
    """The live links of a session and the one coarse timer that checks them.

    A link joins on ``connectionMade`` and leaves on ``connectionLost``; the
    ``LoopingCall`` runs only while the group is not empty."""

    def __init__(self, clock: Any, tick_interval: float = TICK_INTERVAL) -> None:
        """``clock`` is an ``IReactorTime`` (the reactor, or a ``Clock``)."""
        self.clock = clock
        self.tick_interval = tick_interval
        self._links: dict[PeerProtocol, None] = {}
        self._loop: LoopingCall | None = None
        self._waiters: list[Deferred[None]] = []

    def __len__(self) -> int:
        return len(self._links)

    def __iter__(self) -> Iterator[PeerProtocol]:
        return iter(list(self._links))

    def __contains__(self, link: object) -> bool:
        return link in self._links

    def add(self, link: PeerProtocol) -> None:
        self._links[link] = None
        if self._loop is None:
            loop = LoopingCall(self.tick)
            loop.clock = self.clock
            self._loop = loop
            loop.start(self.tick_interval, now=False)

    def discard(self, link: PeerProtocol) -> None:
        self._links.pop(link, None)
        if self._links:
            return
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.callback(None)

    def when_empty(self) -> Deferred[None]:
        """A Deferred that fires once no link is left."""
        if not self._links:
            return succeed(None)
        waiter: Deferred[None] = Deferred()
        self._waiters.append(waiter)
        return waiter

    def tick(self) -> None:
        """Check every link's timers (called by the group's ``LoopingCall``)."""
        now = self.clock.seconds()
        for link in list(self._links):
            try:
                link.check_timers(now)
            except Exception:
                _log.failure("checking the timers of {link}", link=link)
                link.abort("internal error")


_CLOCK_SLACK = 1e-9
"""A queued block due within this many seconds is due now (float rounding in
``callLater`` must not make a flush reschedule itself for no time at all)."""

# Link states.  _GONE is final; peer_lost/connect_failed fire on the way there.
_NEW, _HANDSHAKING, _ACCEPTED, _REFUSED, _GONE = range(5)


@implementer(IPushProducer)
class PeerProtocol(Protocol):
    """One connection to a peer; see the module docstring.

    Give ``host`` and ``address`` for an outgoing connection, ``router`` for an
    incoming one.  ``upload_throttles`` and ``download_throttles`` are the
    session's; the host's own throttles are added once the host is known."""

    def __init__(
        self,
        group: LinkGroup,
        *,
        host: PeerHost | None = None,
        address: Address | None = None,
        router: Callable[[bytes], PeerHost | None] | None = None,
        config: LinkConfig | None = None,
        upload_throttles: Sequence[Throttle] = (),
        download_throttles: Sequence[Throttle] = (),
    ) -> None:
        if (host is None) == (router is None):
            raise ValueError("give a host (outgoing) or a router (incoming), not both")
        if host is not None and address is None:
            raise ValueError("an outgoing link needs the address it connects to")
        self.outgoing = host is not None
        self.host: PeerHost | None = host
        self.address: Address = address if address is not None else ("", 0)
        self.bytes_received = 0
        """Raw bytes received, handshake and framing included."""
        self.bytes_sent = 0
        """Raw bytes handed to the transport."""
        self._group = group
        self._clock = group.clock
        self._router = router
        self._config = config if config is not None else LinkConfig()
        self._upload_throttles = tuple(upload_throttles)
        self._download_throttles = tuple(download_throttles)
        self._session: PeerSession | None = None
        self._transport: Any = None
        self._state = _NEW
        self._closing = False
        self._close_reason: str | None = None
        self._reached_self = False
        self._abort_at: float | None = None
        self._aborted = False
        self._producer_registered = False
        self._prefix = bytearray()  # an incoming handshake's first bytes, until routed
        # Output: (ready_at, first, second or None); ready_at 0.0 = as soon as its turn comes.
        self._queue: deque[tuple[float, bytes, bytes | None]] = deque()
        self._queued_bytes = 0
        self._flush_call: Any = None
        self._write_paused = False
        self._sent_at_pause = 0
        self._resume_call: Any = None
        # Timer bookkeeping, read and written by check_timers only.
        self._connected_at = 0.0
        self._last_received = 0.0
        self._last_sent = 0.0
        self._received_mark = 0
        self._sent_mark = 0
        self._stalled_since: float | None = None

    def __repr__(self) -> str:
        host, port = self.address
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        return f"<PeerProtocol {'to' if self.outgoing else 'from'} {where}>"

    # -- PeerLink --------------------------------------------------------------------

    @property
    def session(self) -> PeerSession:
        """The connection's ``PeerSession`` (an incoming link has none until
        its handshake names the torrent)."""
        session = self._session
        if session is None:
            raise LocalProtocolError("this link has no PeerSession yet")
        return session

    @session.setter
    def session(self, session: PeerSession) -> None:
        # Settable only so that the class matches PeerLink's plain attribute.
        self._session = session

    @property
    def accepted(self) -> bool:
        """The host accepted the handshake and has not lost the link yet."""
        return self._state == _ACCEPTED

    @property
    def closing(self) -> bool:
        return self._closing

    @property
    def pending_write_bytes(self) -> int:
        """Bytes given to ``send``/``send_block`` and not yet handed to the
        kernel: exact for what the link queues, estimated for the transport
        (see the module docstring).  0 once the link is closing."""
        if self._closing:
            return 0
        pending = self._queued_bytes
        if self._write_paused:
            transport_buffer = getattr(self._transport, "bufferSize", TRANSPORT_BUFFER_SIZE)
            pending += transport_buffer + self.bytes_sent - self._sent_at_pause
        return pending

    def send(self, data: bytes) -> None:
        """Write bytes a ``PeerSession`` method returned (behind any queued
        block).  Ignored once the link is closing."""
        if self._closing or not data:
            return
        if self._queue:
            self._queue.append((0.0, data, None))
            self._queued_bytes += len(data)
            return
        self._transport.write(data)
        self.bytes_sent += len(data)

    def send_block(self, header: bytes, block: bytes | memoryview) -> None:
        """Write a PIECE header and its block without joining them, after the
        upload limits allow it; pass ``bytes`` (a ``memoryview`` is copied,
        as transports take only bytes).  Ignored once the link is closing."""
        if self._closing:
            return
        if type(block) is not bytes:
            block = bytes(block)
        size = len(header) + len(block)
        delay = longest_delay(self._upload_throttles, size) if self._upload_throttles else 0.0
        queue = self._queue
        if delay > 0.0 or queue or self._write_paused:
            ready_at = self._clock.seconds() + delay if delay > 0.0 else 0.0
            queue.append((ready_at, header, block))
            self._queued_bytes += size
            if len(queue) == 1 and not self._write_paused:
                self._flush_call = self._clock.callLater(delay, self._flush)
            return
        self._transport.writeSequence((header, block))
        self.bytes_sent += size

    def send_blocks(self, parts: list[bytes | memoryview]) -> None:
        """Write PIECE messages, ``parts`` alternating headers and blocks.
        With no upload limit in force and nothing queued, they go to the
        transport as one ``bytes``: one copy of each block, and Twisted, which
        joins what it is given before each send, keeps a lone buffer as it
        is.  Otherwise each pair goes through ``send_block`` (its pacing)."""
        if self._closing or not parts:
            return
        if self._queue or self._write_paused or any(t.limited for t in self._upload_throttles):
            for i in range(0, len(parts), 2):
                self.send_block(parts[i], parts[i + 1])  # type: ignore[arg-type]
            return
        data = b"".join(parts)
        self._transport.write(data)
        self.bytes_sent += len(data)

    def close(self, reason: str | None = None) -> None:
        """Close the connection after writing what the transport holds (our
        queue is dropped); the host's callback follows from
        ``connectionLost``.  Idempotent."""
        self._close(reason or "closed by us", abort=False)

    def abort(self, reason: str | None = None) -> None:
        """Drop the connection at once, discarding anything unsent."""
        self._close(reason or "aborted by us", abort=True)

    # -- Twisted Protocol ----------------------------------------------------------

    def connectionMade(self) -> None:
        transport: Any = self.transport
        self._transport = transport
        now = self._clock.seconds()
        self._connected_at = self._last_received = self._last_sent = now
        if not self.outgoing:
            peer = transport.getPeer()
            self.address = (normalize_host(getattr(peer, "host", "")), getattr(peer, "port", 0))
        self._tune_socket(transport)
        transport.registerProducer(self, True)
        self._producer_registered = True
        self._state = _HANDSHAKING
        self._group.add(self)
        if self._closing:  # closed before the transport came
            self._closing = False
            self._close(self._close_reason or "closed by us", abort=False)
            return
        host = self.host
        if host is not None:
            if not host.accepting():
                self.close("the torrent no longer accepts connections")
                return
            self._start_session(host)

    def dataReceived(self, data: bytes) -> None:
        self.bytes_received += len(data)
        if self._closing:
            return
        if self._download_throttles:
            self._charge_download(len(data))
        session = self._session
        if session is None:
            self._route(data)
            return
        try:
            events = session.receive_data(data)
        except RemoteProtocolError as e:
            self._violation(e)
            return
        if events:
            self._dispatch(events)

    def _violation(self, error: RemoteProtocolError) -> None:
        if isinstance(error, SelfConnectionError):
            self._reached_self = True
        self.close(f"protocol violation: {error}")

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        state = self._state
        if state == _GONE:
            return
        self._state = _GONE
        self._closing = True
        self._producer_registered = False
        self._drop_output()
        self._cancel_resume()
        why = self._close_reason or f"connection lost: {reason.getErrorMessage()}"
        host = self.host
        try:
            if host is None:
                pass
            elif state == _ACCEPTED:
                host.peer_lost(self, why)
            elif self.outgoing and state != _REFUSED:
                host.connect_failed(self.address, SELF_CONNECTION if self._reached_self else why)
        finally:
            # Last, so that whoever waits for the group to empty sees the host told.
            self._group.discard(self)

    # -- IPushProducer: the transport's buffer is full / drained -----------------

    def pauseProducing(self) -> None:
        if not self._write_paused:
            self._write_paused = True
            self._sent_at_pause = self.bytes_sent

    def resumeProducing(self) -> None:
        if not self._write_paused:
            return
        self._write_paused = False
        self._stalled_since = None
        if self._queue and not self._closing:
            self._flush()

    def stopProducing(self) -> None:
        self._drop_output()

    # -- timers (LinkGroup) --------------------------------------------------------

    def check_timers(self, now: float) -> None:
        """Apply the timeouts and keep-alives as of ``now`` (see the module
        docstring); called by the ``LinkGroup`` every tick."""
        config = self._config
        if self._closing:
            if self._state == _GONE or self._aborted:
                return
            if self._abort_at is not None and now >= self._abort_at:
                self._close(self._close_reason or "closed by us", abort=True)
            return
        if self.bytes_received != self._received_mark or self._resume_call is not None:
            self._received_mark = self.bytes_received
            self._last_received = now
        if self._state != _ACCEPTED:
            if now - self._connected_at >= config.handshake_timeout:
                self.close(f"no handshake within {config.handshake_timeout:g} s")
                return
        elif now - self._last_received >= config.idle_timeout:
            self.close(f"nothing received for {config.idle_timeout:g} s")
            return
        if self._write_paused:
            if self._stalled_since is None:
                self._stalled_since = now
            elif now - self._stalled_since >= config.write_stall_timeout:
                self.abort(
                    f"peer does not read its socket (writes blocked for "
                    f"{config.write_stall_timeout:g} s)"
                )
                return
        if self.bytes_sent != self._sent_mark:
            self._sent_mark = self.bytes_sent
            self._last_sent = now
        elif (
            self._state == _ACCEPTED
            and not self._queue
            and not self._write_paused
            and now - self._last_sent >= config.keepalive_interval
        ):
            self.send(self.session.keep_alive())
            self._sent_mark = self.bytes_sent
            self._last_sent = now

    # -- internals -------------------------------------------------------------------

    def _tune_socket(self, transport: Any) -> None:
        config = self._config
        if config.read_size and hasattr(transport, "bufferSize"):
            transport.bufferSize = config.read_size
        if config.tcp_nodelay:
            set_no_delay = getattr(transport, "setTcpNoDelay", None)
            if set_no_delay is not None:
                try:
                    set_no_delay(True)
                except OSError:
                    pass
        options = [
            (socket.SO_RCVBUF, config.receive_buffer_size),
            (socket.SO_SNDBUF, config.send_buffer_size),
        ]
        if not any(size for _, size in options):
            return
        get_handle = getattr(transport, "getHandle", None)
        handle = get_handle() if get_handle is not None else None
        if not isinstance(handle, socket.socket):
            return
        for option, size in options:
            if size:
                try:
                    handle.setsockopt(socket.SOL_SOCKET, option, size)
                except OSError as e:
                    _log.info("cannot set socket buffer size {size}: {e}", size=size, e=e)

    def _start_session(self, host: PeerHost) -> None:
        session = self._session = host.new_peer_session(self.outgoing)
        extra_up = getattr(host, "upload_throttle", None)
        extra_down = getattr(host, "download_throttle", None)
        if extra_up is not None:
            self._upload_throttles += (extra_up,)
        if extra_down is not None:
            self._download_throttles += (extra_down,)
        self.send(session.send_handshake())

    def _route(self, data: bytes) -> None:
        """An incoming link before its handshake names the torrent."""
        prefix = self._prefix
        prefix += data
        try:
            found = parse_handshake_prefix(prefix)
        except RemoteProtocolError as e:
            self.close(f"not a BitTorrent handshake: {e}")
            return
        if found is None:
            return
        assert self._router is not None
        host = self._router(found.info_hash)
        if host is None:
            self.close(f"unknown info hash {found.info_hash.hex()}")
            return
        if not host.accepting():
            self.close(f"torrent {found.info_hash.hex()} does not accept connections")
            return
        self.host = host
        self._start_session(host)
        buffered = bytes(prefix)
        self._prefix = bytearray()
        session = self.session
        try:
            events = session.receive_data(buffered)
        except RemoteProtocolError as e:
            self._violation(e)
            return
        if events:
            self._dispatch(events)

    def _dispatch(self, events: list[PeerEvent]) -> None:
        host = self.host
        assert host is not None
        told = False
        for event in events:
            if self._closing:
                return
            kind = type(event)
            if kind is Reply:
                self.send(event.data)  # type: ignore[union-attr]
            elif kind is HandshakeReceived:
                if host.peer_connected(self):
                    if self._state == _HANDSHAKING:
                        self._state = _ACCEPTED
                else:
                    self._state = _REFUSED
                    self.close("refused by the torrent")
            else:
                host.peer_event(self, event)
                told = True
        if told and not self._closing:
            host.peer_events_done(self)

    def _charge_download(self, size: int) -> None:
        delay = longest_delay(self._download_throttles, size)
        if delay > 0.0 and self._resume_call is None:
            self._transport.pauseProducing()
            self._resume_call = self._clock.callLater(delay, self._resume_reading)

    def _resume_reading(self) -> None:
        self._resume_call = None
        if self._closing:
            return
        delay = max([t.delay() for t in self._download_throttles], default=0.0)
        if delay > 0.0:
            self._resume_call = self._clock.callLater(delay, self._resume_reading)
            return
        self._transport.resumeProducing()

    def _cancel_resume(self) -> None:
        call, self._resume_call = self._resume_call, None
        if call is not None and call.active():
            call.cancel()

    def _flush(self) -> None:
        """Write queued messages whose turn and time have come, until the
        queue is empty, the transport pauses us, or a block must wait."""
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()
        queue = self._queue
        transport = self._transport
        now = self._clock.seconds()
        while queue and not self._write_paused and not self._closing:
            ready_at, first, second = queue[0]
            if ready_at > now + _CLOCK_SLACK:
                self._flush_call = self._clock.callLater(ready_at - now, self._flush)
                return
            queue.popleft()
            if second is None:
                size = len(first)
                transport.write(first)
            else:
                size = len(first) + len(second)
                transport.writeSequence((first, second))
            self._queued_bytes -= size
            self.bytes_sent += size

    def _drop_output(self) -> None:
        self._queue.clear()
        self._queued_bytes = 0
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()

    def _close(self, reason: str, abort: bool) -> None:
        if self._state == _GONE:
            return
        transport = self._transport
        if self._closing:
            if abort and not self._aborted and transport is not None:
                self._aborted = True
                transport.abortConnection()
            return
        self._closing = True
        self._close_reason = reason
        if transport is None:  # before connectionMade, which will close it
            return
        self._abort_at = self._clock.seconds() + self._config.close_grace
        _log.debug("closing {link}: {reason}", link=self, reason=reason)
        self._drop_output()
        self._cancel_resume()
        if self._producer_registered:
            self._producer_registered = False
            transport.unregisterProducer()
        if abort:
            self._aborted = True
            transport.abortConnection()
        else:
            transport.loseConnection()
