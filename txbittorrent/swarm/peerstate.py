"""What the swarm remembers about each connection, and how rates are measured.

Theory of operation
-------------------
``RateMeter`` turns a byte counter into a rate without work per byte: the hot
path only adds to ``total``; a periodic ``sample(now)`` (once a second from
the swarm's tick) records ``(now, total)`` and forgets samples older than the
longest window asked for.  ``rate(now, window)`` is the bytes counted since the
oldest sample inside the window, over the time since that sample, so bytes
that arrived since the last sample count at once.

``PeerState`` is the swarm's record of one accepted connection: the
``PeerLink`` and its ``PeerSession``, the byte counters, the request-queue
depth the swarm allows it, and what the choker and the snub check need.  It
is also the key the piece picker and the choker know the peer by (hashed by
identity), so a record outlives its connection where a piece's contributors
are concerned: a peer that sent bad data can be banned after it left.

``PeerInfo`` is the frozen snapshot ``Swarm.peers()`` hands out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from txbittorrent.core.peerid import client_name

if TYPE_CHECKING:
    from txbittorrent.core.wire.session import PeerSession
    from txbittorrent.interfaces import Address, PeerLink

__all__ = ["RateMeter", "PeerState", "PeerInfo"]


class RateMeter:
    """A byte counter with rates over sliding windows (see the module docstring)."""

    __slots__ = ("total", "_samples", "_keep")

    def __init__(self, now: float, keep: float) -> None:
        self.total = 0
        self._keep = keep
        # A list, not a deque: it holds a few dozen samples at most, and an
        # empty deque costs a 64-slot block (a swarm has two meters, and a
        # session may hold thousands of idle swarms).
        self._samples: list[tuple[float, int]] = [(now, 0)]

    def sample(self, now: float) -> None:
        """Record the counter now; forget samples older than ``keep`` seconds
        (keeping at least one at or before the start of the window)."""
        samples = self._samples
        samples.append((now, self.total))
        horizon = now - self._keep
        drop = 0
        while len(samples) - drop > 2 and samples[drop + 1][0] <= horizon:
            drop += 1
        if drop:
            del samples[:drop]

    def rate(self, now: float, window: float) -> float:
        """Bytes per second over the last ``window`` seconds (or since the first sample)."""
        horizon = now - window
        for when, total in self._samples:
            if when >= horizon:
                break
        else:
            when, total = self._samples[-1]
        elapsed = now - when
        if elapsed <= 0:
            return 0.0
        return (self.total - total) / elapsed


class PeerState:
    """The swarm's record of one connection (see the module docstring)."""

    __slots__ = (
        "link", "session", "address", "outgoing", "peer_id", "connected_at", "connected",
        "down", "up", "wasted", "depth", "low_water", "asking_since", "last_block_at",
        "snubbed", "last_unchoked", "suggested", "client_v", "listen_address",
        "wanted_count", "optimistic", "serve_due", "dht_port", "source",
    )

    def __init__(self, link: PeerLink, now: float, keep: float, depth: int) -> None:
        self.link = link
        self.session: PeerSession = link.session
        self.address: Address = link.address
        self.outgoing = link.outgoing
        self.peer_id: bytes = link.session.peer_id or b""
        self.connected_at = now
        self.connected = True
        """False once the link is closing or closed."""
        self.serve_due = False
        """The peer sent requests in the batch of events being dispatched; they
        are served once, when the batch is done (``Swarm.peer_events_done``)."""
        self.down = RateMeter(now, keep)
        """Payload bytes received from the peer (``down.total``)."""
        self.up = RateMeter(now, keep)
        """Payload bytes sent to the peer."""
        self.wasted = 0
        """Payload bytes received that we no longer needed (endgame duplicates)."""
        self.depth = depth
        """How many requests we keep outstanding with this peer."""
        self.low_water = depth
        """Refill the pipeline when the outstanding requests drop to this."""
        self.asking_since: float | None = None
        self.last_block_at: float | None = None
        self.snubbed = False
        self.last_unchoked: float | None = None
        self.suggested: set[int] = set()
        self.client_v: str | None = None
        self.listen_address: Address | None = None
        self.dht_port: int | None = None
        self.source = ""
        """Who named the peer: a tracker's URL, "user", "magnet", "pex",
        "dht", or "incoming" for a connection it made to us."""
        """The UDP port of the peer's DHT node, from its PORT message (BEP 5)."""
        self.wanted_count = 0
        """How many pieces we want that the peer has: interested iff > 0."""
        self.optimistic = False

    def __repr__(self) -> str:
        return f"<PeerState {self.address[0]}:{self.address[1]}>"

    def close(self, reason: str) -> None:
        """Close the link; from now on the peer counts as gone (the adapter's
        ``peer_lost`` may come later: closing is asynchronous)."""
        if self.connected:
            self.connected = False
            self.link.close(reason)

    def info(self, now: float, window: float) -> PeerInfo:
        """A snapshot, with rates over the last ``window`` seconds."""
        s = self.session
        count = s.piece_count
        return PeerInfo(
            address=self.address,
            peer_id=self.peer_id,
            client=client_name(self.peer_id, self.client_v),
            flags=self.flags(),
            outgoing=self.outgoing,
            progress=(s.peer_have.count / count if count else 1.0) if s.metadata_known else 0.0,
            download_rate=self.down.rate(now, window),
            upload_rate=self.up.rate(now, window),
            downloaded=self.down.total,
            uploaded=self.up.total,
            am_choking=s.am_choking,
            am_interested=s.am_interested,
            peer_choking=s.peer_choking,
            peer_interested=s.peer_interested,
            snubbed=self.snubbed,
            outstanding_requests=len(s.outstanding_requests),
            pending_peer_requests=len(s.pending_peer_requests),
            extensions=tuple(sorted(n.decode("utf-8", "replace") for n in s.peer_extensions)),
            source=self.source,
            encrypted=self.encrypted,
        )

    @property
    def encrypted(self) -> bool:
        """Whether the connection went through the MSE/PE handshake (its
        stream RC4 or, as selected, plaintext after it; ``peer.mse``)."""
        return bool(getattr(self.link, "encrypted_handshake", False))

    def flags(self) -> str:
        """libtorrent/uTorrent-style letters: D/d downloading (or would, if not
        choked), U/u uploading (or would, if we did not choke), K they unchoke
        us but we want nothing, ? we unchoke them but they want nothing,
        O optimistic unchoke, S snubbed, I incoming, E encrypted (MSE/PE)."""
        s = self.session
        out = []
        if s.am_interested:
            out.append("d" if s.peer_choking else "D")
        elif not s.peer_choking:
            out.append("K")
        if s.peer_interested:
            out.append("u" if s.am_choking else "U")
        elif not s.am_choking:
            out.append("?")
        if self.optimistic:
            out.append("O")
        if self.snubbed:
            out.append("S")
        if not self.outgoing:
            out.append("I")
        if self.encrypted:
            out.append("E")
        return "".join(out)


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """One connection as ``Swarm.peers()`` reports it."""

    address: Address
    peer_id: bytes
    client: str
    flags: str
    outgoing: bool
    progress: float
    """The share of the torrent's pieces the peer has, 0.0 to 1.0."""
    download_rate: float
    """Payload bytes per second from the peer."""
    upload_rate: float
    downloaded: int
    uploaded: int
    am_choking: bool
    am_interested: bool
    peer_choking: bool
    peer_interested: bool
    snubbed: bool
    outstanding_requests: int
    """Our requests the peer has not answered yet."""
    pending_peer_requests: int
    """The peer's requests we have not answered yet."""
    extensions: tuple[str, ...] = ()
    """The BEP 10 extensions the peer offers (its handshake's ``m``), sorted."""
    source: str = ""
    """Who named the peer: a tracker's URL, "user", "magnet", "pex", "dht",
    or "incoming"."""
    encrypted: bool = False
    """Whether the connection went through the MSE/PE handshake."""
