"""What a swarm does with each event a peer's session reports.

Theory of operation
-------------------
``Swarm.peer_event`` hands each event from a ``PeerSession`` to one
handler, found by the event's type in ``PeerEvents.handlers``; only a
``BlockReceived``, the hot path, goes straight to the downloader without
the lookup.  ``HandshakeReceived`` is ``Swarm.peer_connected``'s, and
``Reply`` bytes are written by the adapter itself, so neither is here.

From the start the table holds what needs no metadata: a CHOKE (a choked
peer's silence is no snub), INTERESTED (the swarm's own handler: a free
upload slot at once), SUGGEST PIECE (BEP 6: kept for the picker, at most
``max_suggested``), PORT (BEP 5), and BEP 10: a peer's extension handshake
gives its client name, its ``reqq`` (the downloader's pipeline depth) and
its listening port (for the address book, through ``Connections``); it and
extension messages then go to the plug-ins (``Extensions``), and a
plug-in's complaint about the peer closes the connection.  ``attach``, once
the swarm has the metadata, adds the downloader's events (BITFIELD and its
BEP 6 forms, HAVE, PIECE, REJECT, UNCHOKE and ALLOWED FAST, which refill the
pipeline) and REQUEST, which only marks the peer to be served once the
whole batch of events is in (``Swarm.peer_events_done``: one write for all
the blocks a batch of REQUESTs asks for).

It closes connections through the swarm (``close``) and holds no state but
the table and the downloader.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from txbittorrent.core.wire.events import (
    BlockReceived,
    BlockRequested,
    DHTPort,
    ExtensionHandshake,
    ExtensionMessage,
    PeerAllowedFast,
    PeerBitfield,
    PeerChoked,
    PeerHave,
    PeerInterested,
    PeerUnchoked,
    RequestRejected,
    Suggested,
)
from txbittorrent.errors import RemoteProtocolError

if TYPE_CHECKING:
    from txbittorrent.swarm.config import SwarmConfig
    from txbittorrent.swarm.connections import Connections
    from txbittorrent.swarm.downloader import Downloader
    from txbittorrent.swarm.extensions import Extensions
    from txbittorrent.swarm.peerstate import PeerState

__all__ = ["PeerEvents", "Handler"]

Handler = Callable[["PeerState", Any], None]
"""What handles one event: called with the peer and the event."""


class PeerEvents:
    """A swarm's table of handlers by event type (see the module docstring)."""

    def __init__(
        self,
        config: SwarmConfig,
        extensions: Extensions,
        connections: Connections,
        close: Callable[[PeerState, str], None],
        interested: Handler,
    ) -> None:
        self._config = config
        self._extensions = extensions
        self._connections = connections
        self._close = close
        self._downloader: Downloader | None = None
        self.dht_port: Callable[[PeerState], None] | None = None
        """Hears each peer whose PORT message (BEP 5) set its ``dht_port``."""
        self.handlers: dict[type, Handler] = {
            PeerChoked: self._on_choked,
            PeerInterested: interested,
            Suggested: self._on_suggested,
            ExtensionHandshake: self._on_extension_handshake,
            ExtensionMessage: self._on_extension_message,
            DHTPort: self._on_dht_port,
        }

    def attach(self, downloader: Downloader) -> None:
        """The swarm has its metadata: pieces move from now on."""
        self._downloader = d = downloader
        self.handlers.update({
            BlockReceived: lambda p, e: d.block(p, e.piece_index, e.begin, e.block),
            BlockRequested: self._on_requested,
            PeerHave: lambda p, e: d.peer_have(p, e.piece_index),
            RequestRejected: lambda p, e: d.rejected(p, e.piece_index, e.begin),
            PeerBitfield: lambda p, e: d.peer_bitfield(p, e.have),
            PeerUnchoked: lambda p, e: d.fill(p),
            PeerAllowedFast: lambda p, e: d.fill(p),
        })

    def _on_requested(self, peer: PeerState, event: Any) -> None:
        # Served once the whole batch is in (peer_events_done): one write for
        # all the blocks a batch of REQUESTs asks for.
        peer.serve_due = True

    def _on_choked(self, peer: PeerState, event: PeerChoked) -> None:
        # Not sending while choking us is no snub.  A non-fast peer's choke
        # also dropped our requests: RequestRejected events follow.
        peer.asking_since = None

    def _on_suggested(self, peer: PeerState, event: Suggested) -> None:
        if len(peer.suggested) >= self._config.max_suggested:
            peer.suggested.clear()  # the older ones are likely taken by now
        peer.suggested.add(event.piece_index)

    def _on_extension_handshake(self, peer: PeerState, event: ExtensionHandshake) -> None:
        payload = event.payload
        v = payload.get(b"v")
        if isinstance(v, bytes):
            peer.client_v = v.decode("utf-8", "replace")
        if self._downloader is not None:
            self._downloader.set_depth(peer, peer.depth)  # the peer's reqq may be known now
        self._connections.listening(peer, payload.get(b"p"))
        self._extension_call(peer, self._extensions.handshake_received, payload)

    def _on_extension_message(self, peer: PeerState, event: ExtensionMessage) -> None:
        self._extension_call(peer, self._extensions.message, event)

    def _on_dht_port(self, peer: PeerState, event: DHTPort) -> None:
        peer.dht_port = event.port
        if self.dht_port is not None:
            self.dht_port(peer)

    def _extension_call(self, peer: PeerState, call: Callable[..., object], *args: Any) -> None:
        """Hand an extension event to its plug-in; a plug-in's complaint
        about the peer closes the connection."""
        try:
            call(peer, *args)
        except RemoteProtocolError as e:
            self._close(peer, f"protocol error: {e}")
