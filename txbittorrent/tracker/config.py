"""How a torrent talks to its trackers: one place for the announce settings."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TrackerConfig"]


@dataclass(frozen=True)
class TrackerConfig:
    """The announce settings of a torrent (``TorrentConfig.tracker``)."""

    announce_to_all: bool = False
    """Announce to one tracker of every BEP 12 tier at once instead of walking
    the tiers in order (what libtorrent calls ``announce_to_all_tiers``)."""
    numwant: int = 50
    """Peers asked for in each announce (0 for ``stopped``)."""
    http_timeout: float = 30.0
    """Seconds an HTTP announce or scrape may take, redirects and body included."""
    udp_max_n: int = 2
    """BEP 15 retries: a UDP request is resent after 15 * 2**n seconds for
    n = 0 .. ``udp_max_n`` (8 is the BEP's full two-hour schedule)."""
    stop_timeout: float = 5.0
    """Seconds ``stop()`` waits for the trackers to hear ``stopped``."""
