"""The tracker side of BEP 3/7/15/23/48: the names existing callers import.

The code lives in smaller modules, by concept:

* ``swarms``: ``TrackerState`` (the swarms, announce/scrape/expire, the caps,
  eviction, ``key``, transfer accounting), ``Announce``, ``AnnounceResult``,
  ``PeerRecord``, ``TransferDelta``, ``RequestRefused``;
* ``requests``: the HTTP side (``parse_query``, ``announce_from_query``,
  ``scrape_hashes_from_query``, the reply encoders, ``canonical_ip``);
* ``udpserver``: ``UDPTrackerResponder`` (BEP 15 with stateless connection
  ids, BEP 41 URL data, no amplification);
* ``ratelimit``: ``RateLimiter``, token buckets per source address.

Each module's docstring says what it owns and why.
"""

from __future__ import annotations

from txbittorrent.core.tracker.ratelimit import RateLimiter
from txbittorrent.core.tracker.requests import (
    MAX_HTTP_SCRAPE_HASHES,
    MAX_QUERY,
    announce_from_query,
    canonical_ip,
    encode_http_announce,
    encode_http_scrape,
    parse_query,
    scrape_hashes_from_query,
    split_tracker_path,
)
from txbittorrent.core.tracker.swarms import (
    DEFAULT_INTERVAL,
    DEFAULT_NUMWANT,
    MAX_FULL_SCRAPE,
    MAX_NUMWANT,
    MAX_PEERS,
    MAX_SWARMS,
    MAX_TOTAL_PEERS,
    Announce,
    AnnounceResult,
    PeerRecord,
    RequestRefused,
    Sampler,
    TrackerState,
    TransferDelta,
    UserId,
)
from txbittorrent.core.tracker.udpserver import (
    CONNECTION_EPOCH,
    MAX_DATAGRAM,
    UDPTrackerResponder,
    url_data_of,
)

__all__ = [
    "DEFAULT_INTERVAL", "DEFAULT_NUMWANT", "MAX_NUMWANT", "MAX_SWARMS", "MAX_PEERS",
    "MAX_TOTAL_PEERS", "MAX_FULL_SCRAPE", "MAX_QUERY", "MAX_HTTP_SCRAPE_HASHES",
    "MAX_DATAGRAM", "CONNECTION_EPOCH", "RequestRefused", "PeerRecord", "Announce",
    "AnnounceResult", "TransferDelta", "UserId", "Sampler", "TrackerState", "RateLimiter",
    "canonical_ip", "parse_query", "announce_from_query", "scrape_hashes_from_query",
    "split_tracker_path", "encode_http_announce", "encode_http_scrape",
    "UDPTrackerResponder", "url_data_of",
]
