"""The settings of one torrent, gathered in one object.

``TorrentConfig`` holds what a ``Torrent`` needs besides its source, data
directory and the Perl API's arguments: limits, thread counts, the swarm's
and the trackers' settings.  ``Torrent(..., max_peers=10)`` still works: a
keyword the Torrent does not take itself is looked up here (see
``TorrentConfig.from_options``), so the old keyword arguments keep working.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from txbittorrent.core.metainfo import MetainfoLimits
from txbittorrent.swarm.config import SwarmConfig
from txbittorrent.tracker.config import TrackerConfig

if TYPE_CHECKING:
    from txbittorrent.session import SessionConfig

__all__ = ["TorrentConfig", "TrackerConfig", "SwarmConfig"]


@dataclass(frozen=True)
class TorrentConfig:
    """The settings of one ``Torrent``."""

    listen_interfaces: tuple[str, ...] | None = None
    """Where a torrent with a session of its own listens (None: every
    interface, IPv4 and IPv6)."""
    max_peers: int | None = None
    """Connections of this torrent (None: ``swarm.max_connections``)."""
    download_limit: float | None = None
    """Bytes per second for this torrent; None is unlimited."""
    upload_limit: float | None = None
    swarm: SwarmConfig = field(default_factory=SwarmConfig)
    tracker: TrackerConfig = field(default_factory=TrackerConfig)
    limits: MetainfoLimits = field(default_factory=MetainfoLimits)
    """What a .torrent (or fetched metadata) may hold."""
    disk_threads: int = 2
    """Threads for disk I/O, for a torrent with a session of its own."""
    hash_workers: int | None = None
    """Pieces hashed at once by a hash check (None: one per core)."""
    resume_save_interval: float = 60.0
    """Seconds between the unclean resume saves of a running torrent."""
    progress_interval: float = 1.0
    """Seconds between the ``Progress`` events of a running torrent (0: none)."""
    max_metadata_size: int = 16 * 1024 * 1024
    """The largest info dictionary fetched from peers (BEP 9); a peer saying
    more is not asked."""
    pex: bool = True
    """Exchange peers with peers (BEP 11; never for private torrents)."""
    dht: bool = True
    """Announce to and look peers up in the session's DHT node, if it runs
    one (BEP 5; never for private torrents)."""
    session_config: SessionConfig | None = None
    """The settings of the session a torrent without a shared one makes for
    itself (its DHT node among them: ``SessionConfig.dht``; MSE/PE:
    ``SessionConfig.encryption``); None: the defaults."""

    def swarm_config(self) -> SwarmConfig:
        """``swarm`` with ``max_peers`` applied."""
        if self.max_peers is None:
            return self.swarm
        return dataclasses.replace(self.swarm, max_connections=self.max_peers)

    @classmethod
    def from_options(
        cls, base: TorrentConfig | None, options: Mapping[str, Any]
    ) -> TorrentConfig:
        """``base`` (or the defaults) with the given keyword options applied.

        Besides the field names, the older spellings ``swarm_config`` (for
        ``swarm``) and ``announce_to_all`` (for ``tracker.announce_to_all``)
        are understood; anything else is a ``TypeError``."""
        config = base if base is not None else cls()
        changes = dict(options)
        if "swarm_config" in changes:
            swarm = changes.pop("swarm_config")
            if swarm is not None:
                changes["swarm"] = swarm
        if "announce_to_all" in changes:
            tracker = changes.get("tracker", config.tracker)
            changes["tracker"] = dataclasses.replace(
                tracker, announce_to_all=bool(changes.pop("announce_to_all"))
            )
        if "listen_interfaces" in changes and changes["listen_interfaces"] is not None:
            interfaces: Sequence[str] = changes["listen_interfaces"]
            if isinstance(interfaces, str):
                raise TypeError("listen_interfaces is a list of addresses, not one string")
            changes["listen_interfaces"] = tuple(interfaces)
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(changes) - names)
        if unknown:
            raise TypeError(f"unexpected Torrent option(s): {', '.join(unknown)}")
        return dataclasses.replace(config, **changes) if changes else config
