"""The settings of ``txbittorrent tracker`` (``TrackerService``), in one frozen value.

Theory of operation
-------------------
``TrackerServerConfig`` holds every number and listener the tracker server
uses; the command line builds one, tests build their own.  Nothing here does
I/O: ``load_whitelist`` parses the text of a whitelist file the caller read.
(``tracker.config.TrackerConfig`` is the *client's* announce settings.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from txbittorrent.core.tracker.redisform import parse_redis_url
from txbittorrent.core.tracker.registry import (
    DEFAULT_INTERVAL,
    DEFAULT_NUMWANT,
    MAX_FULL_SCRAPE,
    MAX_NUMWANT,
    MAX_PEERS,
    MAX_SWARMS,
    MAX_TOTAL_PEERS,
)

__all__ = ["TrackerServerConfig", "DEFAULT_HTTP", "DEFAULT_UDP_PORT", "load_whitelist"]

DEFAULT_HTTP = "tcp:6969:interface=127.0.0.1"
"""The HTTP listener when none is given: loopback only."""
DEFAULT_UDP_PORT = 6969
"""The UDP port when none is given (on ``udp_interfaces``, loopback by default)."""
_HEX_HASH = re.compile(r"[0-9A-Fa-f]{40}")


@dataclass(frozen=True, slots=True)
class TrackerServerConfig:
    """What ``TrackerService`` listens on and the rules it applies."""

    http: tuple[str, ...] = (DEFAULT_HTTP,)
    """Twisted server endpoint strings for HTTP announce and scrape."""
    udp_ports: tuple[int, ...] = (DEFAULT_UDP_PORT,)
    """UDP ports for BEP 15 (0: any free port), each on every ``udp_interfaces``."""
    udp_interfaces: tuple[str, ...] = ("127.0.0.1",)
    """Addresses the UDP ports are bound to."""
    interval: int = DEFAULT_INTERVAL
    """Seconds between announces that clients are asked for."""
    min_interval: int | None = None
    """BEP 3's ``min interval`` sent to HTTP clients, if any."""
    peer_timeout: float | None = None
    """Seconds after its last announce that a peer is forgotten (default: 2 intervals)."""
    default_numwant: int = DEFAULT_NUMWANT
    max_numwant: int = MAX_NUMWANT
    """Most peers in one reply, whatever ``numwant`` asks for."""
    full_scrape: bool = False
    """Whether a scrape without ``info_hash`` lists every torrent (bounded below)."""
    full_scrape_limit: int = MAX_FULL_SCRAPE
    whitelist: frozenset[bytes] | None = None
    """Info hashes served (a closed tracker); ``None`` serves any."""
    trusted_proxies: tuple[str, ...] = ()
    """Addresses whose ``X-Forwarded-For`` and ``ip=`` are believed."""
    rate_limit: int | None = None
    """Announces and scrapes per source address per minute (``None``: no limit)."""
    max_swarms: int = MAX_SWARMS
    max_peers: int = MAX_PEERS
    """Most peers recorded per swarm."""
    max_total_peers: int = MAX_TOTAL_PEERS
    evict_swarms: bool = True
    """At ``max_swarms``, evict the least recently announced swarm (else refuse)."""
    max_torrents_per_user: int | None = None
    """Private mode: most swarms one user's peers may be in at once (``None``: no limit)."""
    tracker_id: bytes | None = None
    """The ``tracker id`` sent to HTTP clients (default: random per start)."""
    secret: bytes | None = None
    """Keys the UDP connection ids (16+ bytes; default: random per start)."""
    sweep_interval: float = 60.0
    """Seconds between sweeps that forget idle peers."""
    warning: str | None = None
    """A ``warning message`` sent with every HTTP announce reply (BEP 3; UDP has
    no such field), e.g. to announce a move; ``None``: none."""
    redis: str | None = None
    """A ``redis://host:port/db`` URL: the swarms and counters live there, shared by
    every tracker process using it (``tracker.redisswarms``); ``None``: in memory."""

    def __post_init__(self) -> None:
        if not self.http and not self.udp_ports:
            raise ValueError("the tracker needs at least one HTTP or UDP listener")
        if self.interval < 1 or self.sweep_interval <= 0:
            raise ValueError("interval and sweep_interval must be positive")
        if self.min_interval is not None and not 0 < self.min_interval <= self.interval:
            raise ValueError("min_interval must be between 1 and interval")
        if self.peer_timeout is not None and self.peer_timeout <= 0:
            raise ValueError("peer_timeout must be positive")
        if self.max_numwant < 0 or self.default_numwant < 0:
            raise ValueError("numwant limits must not be negative")
        if self.rate_limit is not None and self.rate_limit < 1:
            raise ValueError("rate_limit must be at least 1 per minute")
        if self.max_swarms < 1:
            raise ValueError("max_swarms must be at least 1")
        if any(not 0 <= p <= 0xFFFF for p in self.udp_ports):
            raise ValueError("UDP port out of range")
        if self.secret is not None and len(self.secret) < 16:
            raise ValueError("the secret must be at least 16 bytes")
        if self.redis is not None:
            parse_redis_url(self.redis)
        if self.warning is not None and not 0 < len(self.warning.encode("utf-8")) <= 1024:
            raise ValueError("the warning message must be 1 to 1024 bytes")


def load_whitelist(text: str) -> frozenset[bytes]:
    """Info hashes from a whitelist file: 40 hex digits a line; blank lines and
    ``#`` comments are skipped; anything else raises ``ValueError``."""
    hashes = set()
    for number, line in enumerate(text.splitlines(), 1):
        line = line.partition("#")[0].strip()
        if not line:
            continue
        if not _HEX_HASH.fullmatch(line):
            raise ValueError(f"whitelist line {number}: not a 40-digit hex info hash")
        hashes.add(bytes.fromhex(line))
    return frozenset(hashes)
