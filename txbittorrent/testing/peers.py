"""Fakes for both sides of the ``interfaces`` seam between a connection and a torrent.

Theory of operation
-------------------
``FakePeerHost`` stands where a ``Swarm`` would, for testing a connection
adapter (``peer.protocol.PeerProtocol``) or the ``Session``: it records every
call and accepts every peer unless told otherwise.

``FakePeerLink`` stands where a ``PeerProtocol`` would, for testing a
``PeerHost`` (a ``Swarm``, or your own): it is a connection with a real
``PeerSession`` at the far end (``remote``), joined in memory.  Every byte the
host sends through the link is decoded by ``remote``, whose events pile up in
``events`` (``of(kind)`` picks some out); whatever the test makes ``remote``
say (``has``, ``unchoke_us``, ``want``, ``serve``, or any ``remote`` method
through ``deliver``) is real wire bytes fed to the host's session, and its
events are dispatched to the host as ``PeerProtocol`` does: a ``Reply`` is
written back by the link, every other event goes to ``peer_event`` in order,
then ``peer_events_done`` once per batch.  No reactor and no transport.

Setting ``reading`` to False stops the remote reading: what the host sends
is held (``pending_write_bytes`` grows) until ``drain()``.  With
``sync_close`` False, ``close`` only records the reason and the test calls
``lost()`` later, as the real adapter reports ``peer_lost`` from
``connectionLost``.
"""

from __future__ import annotations

from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import Layout
from txbittorrent.core.wire.codec import make_reserved
from txbittorrent.core.wire.events import HandshakeReceived, PeerEvent, Reply
from txbittorrent.core.wire.session import PeerSession
from txbittorrent.interfaces import Address, PeerHost, PeerLink
from txbittorrent.peer.throttle import Throttle

__all__ = ["DEFAULT_LAYOUT", "FakePeerHost", "FakePeerLink"]

E = TypeVar("E")

DEFAULT_LAYOUT = Layout([4 * 32 * 1024], 32 * 1024)
"""The torrent a ``FakePeerHost`` describes unless given one: four pieces of 32 KiB."""


class FakePeerHost:
    """A ``PeerHost`` that records its calls in ``calls`` and says yes unless
    told otherwise (``is_accepting``, ``welcome``).  ``clock`` drives the
    upload and download throttles (unlimited unless a rate is given)."""

    def __init__(
        self,
        clock: Any,
        info_hash: bytes,
        peer_id: bytes,
        *,
        layout: Layout = DEFAULT_LAYOUT,
        upload_rate: float | None = None,
        download_rate: float | None = None,
        burst: float | None = None,
    ) -> None:
        self.info_hash = info_hash
        self.peer_id = peer_id
        self.layout = layout
        self.upload_throttle = Throttle(upload_rate, clock, burst)
        self.download_throttle = Throttle(download_rate, clock, burst)
        self.is_accepting = True
        """What ``accepting()`` returns."""
        self.welcome = True
        """What ``peer_connected`` returns."""
        self.calls: list[tuple[Any, ...]] = []
        """``(name, argument...)`` of each call from a link, in order."""
        self.sessions: list[PeerSession] = []
        """Every session ``new_peer_session`` made."""
        self.on_connected: Any = None
        """Called with the link on ``peer_connected``, if set."""

    def accepting(self) -> bool:
        return self.is_accepting

    def new_peer_session(self, outgoing: bool) -> PeerSession:
        """A session for ``layout`` (fast and extension protocols on)."""
        session = PeerSession(self.info_hash, self.peer_id, self.layout.piece_count, outgoing,
                              piece_length_of=self.layout.piece_size)
        self.sessions.append(session)
        return session

    def peer_connected(self, link: PeerLink) -> bool:
        self.calls.append(("peer_connected", link))
        if self.on_connected is not None:
            self.on_connected(link)
        return self.welcome

    def peer_event(self, link: PeerLink, event: object) -> None:
        self.calls.append(("peer_event", event))

    def peer_events_done(self, link: PeerLink) -> None:
        self.calls.append(("peer_events_done",))

    def peer_lost(self, link: PeerLink, reason: str) -> None:
        self.calls.append(("peer_lost", reason))

    def connect_failed(self, address: Address, reason: str) -> None:
        self.calls.append(("connect_failed", address, reason))

    def names(self) -> list[str]:
        """The names of the calls so far, in order."""
        return [call[0] for call in self.calls]

    def events(self) -> list[object]:
        """The events passed to ``peer_event``, in order."""
        return [call[1] for call in self.calls if call[0] == "peer_event"]


DEFAULT_REMOTE_HANDSHAKE: Mapping[str | bytes, Any] = {"v": "Remote 1.0", "p": 6881}


class FakePeerLink:
    """A ``PeerLink`` to ``host`` whose far end is a real ``PeerSession``
    (``remote``) for a torrent of ``layout`` (see the module docstring).

    The remote speaks the fast extension (``fast``) and the extension
    protocol (``extended``); ``extension_handshake`` is what it says in its
    BEP 10 handshake (``reqq`` is added to it when given)."""

    def __init__(
        self,
        host: PeerHost,
        layout: Layout,
        address: Address,
        outgoing: bool,
        remote_peer_id: bytes,
        *,
        fast: bool = True,
        extended: bool = True,
        reqq: int | None = None,
        extension_handshake: Mapping[str | bytes, Any] = DEFAULT_REMOTE_HANDSHAKE,
    ) -> None:
        self.host = host
        self.layout = layout
        self.address = address
        self.outgoing = outgoing
        self.session = host.new_peer_session(outgoing)
        handshake = dict(extension_handshake)
        if reqq is not None:
            handshake["reqq"] = reqq
        self.remote = PeerSession(
            host.info_hash, remote_peer_id, layout.piece_count, not outgoing,
            piece_length_of=layout.piece_size, reserved=make_reserved(fast=fast, extended=extended),
            extension_handshake=handshake,
        )
        self.events: list[PeerEvent] = []
        """What ``remote`` decoded of the bytes the host sent, in order."""
        self.wire = bytearray()
        """Every byte the host sent."""
        self.decode = True
        """False: the remote stops decoding (bytes still land in ``wire``)."""
        self.sends = 0
        self.blocks_sent = 0
        self.batches = 0
        self.closed: str | None = None
        """The reason given to ``close``, once closed."""
        self.sync_close = True
        """False: ``close`` only records, and ``lost()`` reports it later, as
        the real adapter does from ``connectionLost``."""
        self.pending_write_bytes = 0
        self.reading = True
        """False: the remote reads nothing; sends are held until ``drain()``."""
        self._held: list[bytes] = []

    # -- PeerLink ---------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        assert data, "empty writes are pointless"
        self.sends += 1
        self._out(data)

    def send_block(self, header: bytes, block: bytes | memoryview) -> None:
        self.blocks_sent += 1
        self._out(header + bytes(block))

    def send_blocks(self, parts: list[bytes | memoryview]) -> None:
        self.batches += 1
        for i in range(0, len(parts), 2):
            self.send_block(bytes(parts[i]), parts[i + 1])

    def close(self, reason: str | None = None) -> None:
        if self.closed is None:
            self.closed = reason or "closed"
            if self.sync_close:
                self.host.peer_lost(self, self.closed)

    def _out(self, data: bytes) -> None:
        assert self.closed is None, "written to after close"
        self.wire += data
        if not self.reading:
            self.pending_write_bytes += len(data)
            self._held.append(data)
        elif self.decode:
            self.events.extend(self.remote.receive_data(data))

    # -- the test's side ----------------------------------------------------------------

    def handshake(self) -> bool:
        """Exchange handshakes and tell the host (``peer_connected``); if it
        accepts, hand it the rest of what the remote's handshake brought.
        Return whether it accepted."""
        self.remote.receive_data(self.session.send_handshake())
        events = self.session.receive_data(self.remote.send_handshake())
        accepted = self.host.peer_connected(self)
        if accepted:
            self._dispatch([e for e in events if not isinstance(e, HandshakeReceived)])
        return accepted

    def lost(self) -> None:
        """The connection is gone: tell the host, as ``connectionLost`` would."""
        self.host.peer_lost(self, self.closed or "connection lost")

    def deliver(self, data: bytes) -> None:
        """Bytes from the remote to the host."""
        self._dispatch(self.session.receive_data(data))

    def _dispatch(self, events: list[PeerEvent]) -> None:
        """As ``PeerProtocol`` does: a Reply is written by the link, the rest
        goes to the host in order, then ``peer_events_done``."""
        told = False
        for event in events:
            if isinstance(event, Reply):
                self.send(event.data)
            else:
                self.host.peer_event(self, event)
                told = True
        if told and self.closed is None:
            self.host.peer_events_done(self)

    def drain(self) -> None:
        """The remote reads everything held back, and reads again from now on."""
        held, self._held = self._held, []
        self.pending_write_bytes = 0
        self.reading = True
        for data in held:
            self.events.extend(self.remote.receive_data(data))

    def of(self, kind: type[E]) -> list[E]:
        """The remote's events of type ``kind``, in order."""
        return [e for e in self.events if isinstance(e, kind)]

    def has(self, pieces: Bitfield) -> None:
        """The remote sends its bitfield and its extension handshake."""
        self.deliver(self.remote.send_bitfield(pieces) + self.remote.send_extension_handshake())

    def unchoke_us(self) -> None:
        self.deliver(self.remote.unchoke())

    def want(self) -> None:
        """The remote says it is interested."""
        self.deliver(self.remote.interested())

    def serve(self, data: bytes, count: int | None = None, corrupt: Iterable[int] = ()) -> int:
        """Answer the host's requests in order, at most ``count`` of them,
        with blocks of ``data`` (the whole torrent's bytes), or zeros for the
        pieces in ``corrupt``; return how many were answered."""
        bad = set(corrupt)
        served = 0
        pending = self.remote.pending_peer_requests
        while pending and (count is None or served < count):
            index, begin, length = next(iter(pending))
            start = index * self.layout.piece_length + begin
            block = bytes(length) if index in bad else data[start : start + length]
            self.deliver(self.remote.send_piece_header(index, begin, length) + block)
            served += 1
        return served

    @property
    def asked(self) -> list[tuple[int, int, int]]:
        """The host's requests the remote has not answered."""
        return list(self.remote.pending_peer_requests)


def connection_lost(protocol: Any, error: Exception | None = None) -> None:
    """Deliver ``connectionLost`` to a protocol on a fake transport, as the
    reactor would once the transport is closed (``ConnectionDone`` unless
    ``error`` is given)."""
    failure: Any = Failure  # untyped in Twisted
    protocol.connectionLost(failure(error if error is not None else ConnectionDone()))
