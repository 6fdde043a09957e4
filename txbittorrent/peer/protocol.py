"""The Twisted adapter over ``core.wire.session.PeerSession``: one TCP connection.

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

Timers: a link has no timer of its own per message.  Its ``LinkGroup``
(``links``) calls ``check_timers(now)`` once per coarse tick: handshake, idle
and write-stall timeouts, keep-alives, and the abort of links slow to close.
The only other timers are the rate limits': at most one ``DelayedCall`` per
link to flush held-back blocks and one to resume reading, both cancelled when
the link closes.

Writing: the output queue, the upload limits and the producer methods the
transport calls for backpressure are ``output.LinkOutput``'s, a base class.
When the transport has drained and nothing is left queued, an accepted link
calls ``host.peer_writable(link)`` if the host has it (``Swarm`` does): the
uploader serves a peer it held back then, with no polling.
``dataReceived`` charges the download throttles (``throttle.Throttle``,
shared) and, when they ask for a delay, pauses the transport (stops reading)
until the debt is paid.  Socket options are ``LinkConfig``'s, applied on
connect by ``links.tune_socket``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.protocol import Protocol, connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure

from txbittorrent.core.wire.events import HandshakeReceived, PeerEvent, Reply
from txbittorrent.core.wire.session import PeerSession
from txbittorrent.core.wire.codec import parse_handshake_prefix
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError, SelfConnectionError
from txbittorrent.interfaces import SELF_CONNECTION
from txbittorrent.interfaces import Address, PeerHost
from txbittorrent.peer.links import LinkConfig, LinkGroup, normalize_host, tune_socket
from txbittorrent.peer.output import LinkOutput
from txbittorrent.peer.throttle import Throttle, longest_delay

__all__ = ["PeerProtocol"]

_log = Logger()

# Link states.  _GONE is final; peer_lost/connect_failed fire on the way there.
_NEW, _HANDSHAKING, _ACCEPTED, _REFUSED, _GONE = range(5)


class PeerProtocol(LinkOutput, Protocol):
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
        """Raw bytes received, handshake and framing included (and, on an
        ``MSEPeerProtocol``, the MSE handshake's bytes)."""
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
        self._resume_call: Any = None
        self._writable: Callable[[PeerProtocol], object] | None = None  # host.peer_writable
        self._init_output()
        # Timer bookkeeping, read and written by check_timers only.
        self._connected_at = 0.0
        self._last_received = 0.0
        self._last_sent = 0.0
        self._received_mark = 0
        self._sent_mark = 0

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
        tune_socket(transport, self._config)
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

    def _start_session(self, host: PeerHost) -> None:
        session = self._session = host.new_peer_session(self.outgoing)
        self._writable = getattr(host, "peer_writable", None)
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

    def _drained(self) -> None:
        writable = self._writable
        if writable is not None and self._state == _ACCEPTED:
            writable(self)

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
