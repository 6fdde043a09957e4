"""The swarm's numbers and what it reports: ``SwarmConfig`` and ``SwarmObserver``.

Every number the swarm's policy uses is a field of ``SwarmConfig``, a frozen
dataclass, so a test or an application changes them in one place
(``SwarmConfig(max_connections=10)``) and nothing is a scattered literal.
The defaults follow common practice (libtorrent's, and the original client's
for choking: ``core.choker`` holds those).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from txbittorrent.core.transfer.choker import (
    OPTIMISTIC_INTERVAL,
    RECHOKE_INTERVAL,
    SNUB_TIMEOUT,
    UNCHOKE_SLOTS,
)
from txbittorrent.core.layout import BLOCK_SIZE
from txbittorrent.core.wire.session import MAX_PEER_REQUESTS

if TYPE_CHECKING:
    from twisted.python.failure import Failure

    from txbittorrent.interfaces import Address
    from txbittorrent.swarm.peerstate import PeerInfo

__all__ = ["SwarmConfig", "SwarmObserver"]

_MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class SwarmConfig:
    """Every number the swarm's policy uses, in one place."""

    # -- connections
    max_connections: int = 50
    max_candidates: int = 1000
    """Addresses remembered (from trackers and others) at most."""
    connect_interval: float = 3.0
    """Seconds between two connection top-ups."""
    connect_timeout: float = 60.0
    """An attempt neither connected nor failed after this is taken as failed."""
    reconnect_backoff: tuple[float, ...] = (10.0, 30.0, 60.0, 300.0, 900.0)
    """Seconds to wait after the n-th failed attempt in a row; one failure
    more and the address is forgotten.  The first step also follows a
    connection that worked and closed."""

    # -- choking
    unchoke_slots: int = UNCHOKE_SLOTS
    """Peers unchoked at once, the optimistic one included."""
    rechoke_interval: float = RECHOKE_INTERVAL
    optimistic_interval: float = OPTIMISTIC_INTERVAL
    choke_rate_window: float = 20.0
    """Seconds of history behind the rates the choker compares."""

    # -- requesting
    min_queue_depth: int = 16
    max_queue_depth: int = 500
    queue_time: float = 2.0
    """A peer's pipeline holds this many seconds of its rate: depth =
    clamp(rate * queue_time / 16 KiB, min_queue_depth, max_queue_depth),
    and never more than the peer's ``reqq``."""
    snubbed_queue_depth: int = 1
    block_timeout: float = 30.0
    """A request unanswered this long is cancelled and asked of another peer."""
    snub_timeout: float = SNUB_TIMEOUT
    """Seconds without a block, while we have requests out, that make a peer snubbed."""
    request_check_interval: float = 2.0
    """Seconds between two checks for timed-out requests and snubbing."""
    max_suggested: int = 16
    """SUGGESTs (BEP 6) remembered per peer."""

    # -- memory, disk and uploads
    max_buffer_bytes: int = 32 * _MiB
    """Pieces in progress held in memory; past it no new piece is started."""
    upload_cache_bytes: int = 16 * _MiB
    cache_downloaded: bool = True
    """Keep the pieces we just verified in the upload cache."""
    read_ahead_pieces: int = 2
    """On a cache miss, also read this many further pieces the peer asked for."""
    max_send_buffer: int = 4 * _MiB
    """No more blocks for a peer whose link holds this many unwritten bytes
    (served again when the link says it drained: ``Swarm.peer_writable``)."""
    max_peer_requests: int = MAX_PEER_REQUESTS
    """Our ``reqq``: requests a peer may have pending with us (more is a flood).
    A client that keeps ``reqq`` requests in flight and tops them up about
    once a second (Transmission 3.00 does) gets at most ``reqq`` blocks a
    second from us: 500 held it to 8.2 MB/s on loopback, where 2,000 (as
    libtorrent's ``max_allowed_in_request_queue``) let it reach 32.8 MB/s,
    a libtorrent seeder's rate.  The queue costs about 150 bytes a request."""

    # -- bans and rates
    ban_threshold: int = 3
    """Failed pieces a host may contribute to before it is banned."""
    tick_interval: float = 1.0
    """Seconds between two samples of the rates (and retries of stalled work)."""
    rate_window: float = 5.0
    """Seconds of history behind the rates shown and the queue depths."""

    def queue_depth(self, rate: float) -> int:
        """The pipeline depth for a peer sending ``rate`` bytes per second."""
        depth = int(rate * self.queue_time / BLOCK_SIZE)
        return max(self.min_queue_depth, min(self.max_queue_depth, depth))


class SwarmObserver:
    """What a swarm reports as it happens.  Subclass and override what you
    need: every method here does nothing."""

    def peer_connected(self, info: PeerInfo) -> None:
        """A connection was accepted."""

    def peer_lost(self, info: PeerInfo, reason: str) -> None:
        """An accepted connection closed."""

    def piece_verified(self, index: int, passed: bool) -> None:
        """A downloaded piece was hashed (and, if it passed, written)."""

    def peer_banned(self, address: Address, peer_id: bytes | None, reason: str) -> None:
        """A peer's host and id are banned."""

    def disk_error(self, index: int, failure: Failure) -> None:
        """Reading or writing piece ``index`` failed."""
