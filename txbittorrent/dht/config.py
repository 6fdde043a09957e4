"""The settings of a session's DHT node (BEP 5), in one frozen object.

``SessionConfig.dht`` holds a ``DHTConfig``.  The node is off unless
``enabled`` (a library user or a test that forgets the DHT never sends a
datagram to anyone); the command line turns it on (``--dht`` is its
default).  The defaults are for real use: the public routers as bootstrap
nodes, libtorrent's rate limit per source address.  Tests give loopback
``bootstrap_nodes`` and generous rates, since every node of a loopback DHT
is 127.0.0.1.
"""

from __future__ import annotations

from dataclasses import dataclass

from txbittorrent.core.dht.ratelimit import BURST, MAX_SOURCES, RATE

__all__ = ["DHTConfig", "DEFAULT_BOOTSTRAP_NODES", "BootstrapNode"]

BootstrapNode = tuple[str, int]
"""A host name or IP literal, and a UDP port."""

DEFAULT_BOOTSTRAP_NODES: tuple[BootstrapNode, ...] = (
    ("router.bittorrent.com", 6881),
    ("dht.transmissionbt.com", 6881),
    ("router.utorrent.com", 6881),
)
"""The public routers most clients join the mainline DHT through."""


@dataclass(frozen=True, slots=True)
class DHTConfig:
    """How a session runs its DHT node."""

    enabled: bool = False
    """Run a DHT node while the session runs (off by default in the library)."""
    port: int | None = None
    """The node's UDP port: None shares the session's UDP sockets (on the
    listening port's number); a number (0: any) gives the node sockets of
    its own."""
    bootstrap_nodes: tuple[BootstrapNode, ...] = DEFAULT_BOOTSTRAP_NODES
    """Where to join when the routing table is empty (names are resolved;
    a node bound to loopback only never tries a non-loopback one)."""
    read_only: bool = False
    """BEP 43: ask, never answer; others keep us out of their tables."""
    state_path: str | None = None
    """Where the node id and routing table are kept across restarts
    (written atomically on stop and every ``save_interval``); None: nowhere."""
    save_interval: float = 600.0
    """Seconds between saves of the state while running."""
    query_rate: float = RATE
    """Queries a second each source host may send us, sustained."""
    query_burst: float = BURST
    """Queries a source host may send at once after a quiet spell."""
    max_sources: int = MAX_SOURCES
    """Source hosts the rate limit tracks at once."""
    global_query_rate: float | None = None
    """Queries a second we answer in all (None: no global cap)."""
    enforce_node_id: bool = False
    """BEP 42: keep nodes whose id does not match their (public) address out
    of the table."""

    def __post_init__(self) -> None:
        if self.port is not None and not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"DHT port out of range: {self.port}")
        for host, port in self.bootstrap_nodes:
            if not isinstance(host, str) or not host or not 0 < port <= 0xFFFF:
                raise ValueError(f"bad DHT bootstrap node: {host!r}:{port!r}")
        if self.save_interval <= 0 or self.query_rate <= 0 or self.query_burst < 1:
            raise ValueError("save_interval and query_rate must be positive, query_burst >= 1")

    @classmethod
    def from_settings(cls, base: DHTConfig | None = None, **settings: object) -> DHTConfig:
        """``base`` (default: a node that is on) with the command line's
        settings applied (``commands._engine.dht_settings``: ``enabled``,
        ``port``, ``bootstrap_nodes``) and any other field given."""
        from dataclasses import replace

        config = base if base is not None else cls(enabled=True)
        if "bootstrap_nodes" in settings:
            settings["bootstrap_nodes"] = tuple(
                (str(h), int(p)) for h, p in settings["bootstrap_nodes"]  # type: ignore[attr-defined]
            )
        return replace(config, **settings)  # type: ignore[arg-type]
