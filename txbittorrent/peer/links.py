"""What every link of a session shares: its settings and its one timer.

Theory of operation
-------------------
``LinkConfig`` holds the timers and socket options of every ``PeerProtocol``
of a session; ``tune_socket`` applies the socket options on connect.

Timers: a link has no timer of its own per message.  A ``LinkGroup`` (one per
``Session``) runs one coarse ``LoopingCall`` (``tick_interval``, 5 s) over its
live links, started with the first link and stopped with the last; each tick
calls the link's ``check_timers(now)``, which compares byte counters with
their values at the previous tick, so ``dataReceived`` and the writes never
read the clock.  It enforces the handshake timeout, the idle timeout (nothing
received), the write-stall timeout (the transport paused our writes and has
not resumed them: the peer does not read its socket), sends keep-alives after
``keepalive_interval`` seconds of our own silence, and aborts links slow to
close.  Precision is one tick.  The group owns no link: a link joins on
``connectionMade`` and leaves on ``connectionLost``.

Socket options: ``TCP_NODELAY`` is set by default.  Twisted already coalesces
everything written during one reactor turn into one ``send``, so Nagle's
algorithm would add nothing but latency: a REQUEST or HAVE written behind a
full window would wait for an ACK that the peer delays.
``SO_RCVBUF``/``SO_SNDBUF`` are left to the kernel by default: on Linux an
explicit size turns off the buffer auto-tuning (which grows to
``tcp_rmem``/``tcp_wmem`` max, often 4-6 MiB) and is capped by
``rmem_max``/``wmem_max`` (often 208 KiB), so setting 4 MiB can make things
slower; set them where the kernel's limits allow it and auto-tuning is off.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.task import LoopingCall
from twisted.logger import Logger

if TYPE_CHECKING:
    from txbittorrent.peer.protocol import PeerProtocol

__all__ = ["TICK_INTERVAL", "LinkConfig", "LinkGroup", "normalize_host", "tune_socket"]

_log = Logger()

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
    peer silent for 120 s).  The one keep-alive setting: links are timed per
    session (``SessionConfig.link``), not per torrent."""
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


def tune_socket(transport: Any, config: LinkConfig) -> None:
    """Apply ``config``'s read size and socket options to a new connection's
    transport (what it does not support is skipped)."""
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
