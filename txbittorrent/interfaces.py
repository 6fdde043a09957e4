"""The seams between the engine's Twisted parts.

Three parts meet here, each written and tested on its own:

* the peer protocol adapter (``peer.protocol.PeerProtocol``), one per TCP
  connection: it owns the transport, feeds a ``core.wire.session.PeerSession``
  and writes its bytes;
* the swarm (``swarm.swarm.Swarm``), one per torrent: the policy (what to
  request, whom to unchoke, what to serve, whom to ban);
* the session (``session.Session``): the listening sockets, outgoing
  connection attempts under global limits, and the global rate limits; it
  routes an incoming connection to a swarm by the info hash in the handshake.

The adapter sees a swarm only as a ``PeerHost``; the swarm sees a connection
only as a ``PeerLink`` and asks for new ones through a ``Dialer``.  Whatever
finds peers hands them to a ``PeerSource``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from txbittorrent.core.wire.session import PeerSession

Address = tuple[str, int]
"""(host, port); host is an IPv4 or IPv6 literal (no brackets)."""

SELF_CONNECTION = "self"
"""The ``connect_failed`` reason for a connection that reached ourselves."""


class PeerLink(Protocol):
    """One live connection to a peer, as the swarm sees it."""

    address: Address
    outgoing: bool
    session: PeerSession
    """The connection's sans-I/O state (``am_choking``, ``peer_have``, ...)."""

    def send(self, data: bytes) -> None:
        """Write bytes a ``PeerSession`` method returned."""

    def send_block(self, header: bytes, block: bytes | memoryview) -> None:
        """Write a PIECE message: the header from ``session.send_piece_header``
        and the block, without concatenating them.  May be delayed by the
        upload rate limits; never reordered with other messages."""

    def send_blocks(self, parts: list[bytes | memoryview]) -> None:
        """Write several PIECE messages at once: ``parts`` alternates headers
        and their blocks.  The same as ``send_block`` for each pair, but the
        blocks may be joined into one write, not copied one by one first."""

    def close(self, reason: str | None = None) -> None:
        """Drop the connection; ``PeerHost.peer_lost`` follows."""

    @property
    def pending_write_bytes(self) -> int:
        """Bytes accepted by ``send``/``send_block`` not yet handed to the
        kernel (a peer that does not read its socket makes this grow)."""


class PeerHost(Protocol):
    """What a connection needs of the torrent it belongs to (a ``Swarm``).

    One method is optional, so left out of the protocol:
    ``peer_writable(link: PeerLink) -> None``.  An adapter calls it, if the
    host has it, when the link has handed every queued byte to its transport
    and the transport takes bytes again (it had paused us, or a rate limit
    had held blocks back): a host that stopped writing to a backed-up link
    can go on now.  ``PeerProtocol`` looks it up once per connection; the
    ``Swarm`` has it (its uploader serves the peer again), and keeps a coarse
    retry for links that never call it."""

    info_hash: bytes
    peer_id: bytes
    upload_throttle: Any
    """A ``throttle.Throttle`` for this torrent's upload limit (may be unlimited)."""
    download_throttle: Any

    def accepting(self) -> bool:
        """Whether new connections are welcome (False once stopped)."""

    def new_peer_session(self, outgoing: bool) -> PeerSession:
        """A fresh ``PeerSession`` configured for this torrent."""

    def peer_connected(self, link: PeerLink) -> bool:
        """The peer's handshake has arrived (``link.session.peer_id`` is known).
        Return False to refuse it (a duplicate, ourselves, banned, over a limit):
        the adapter then closes the connection without calling ``peer_lost``."""

    def peer_event(self, link: PeerLink, event: object) -> None:
        """One event from ``PeerSession.receive_data``, in order."""

    def peer_events_done(self, link: PeerLink) -> None:
        """Every event of one ``receive_data`` has been given to ``peer_event``
        (work best done once per batch, such as answering requests, goes here)."""

    def peer_lost(self, link: PeerLink, reason: str) -> None:
        """A connection accepted by ``peer_connected`` is gone."""

    def connect_failed(self, address: Address, reason: str) -> None:
        """An outgoing attempt made for this host through a ``Dialer`` failed
        before the handshake (refused, timed out, wrong info hash...).
        ``reason`` is ``SELF_CONNECTION`` when the address turned out to be
        ourselves (never dial it again)."""


class Dialer(Protocol):
    """Makes outgoing connections under the global limits (the ``Session``)."""

    def connect(self, host: PeerHost, address: Address) -> bool:
        """Start connecting to ``address`` for ``host``.  False when a limit
        (total, half-open) stops it now; the host may try again later."""

    def is_own_address(self, address: Address) -> bool:
        """Whether ``address`` is one we listen on (never worth dialling)."""


class PeerSource(Protocol):
    """Where candidate peers go, whoever found them: trackers (``source`` is
    the tracker's URL), the user ("user"), a magnet link's ``x.pe``
    ("magnet"), and next PEX ("pex") and the DHT ("dht").  A ``Torrent``,
    its ``Swarm`` and its ``RunningTorrent`` (for its announcer) are
    ``PeerSource``\ s."""

    def add_peers(self, addresses: Iterable[Address], source: str) -> int:
        """Remember candidates (bounded); the number new."""
