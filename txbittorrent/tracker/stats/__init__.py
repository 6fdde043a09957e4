"""The tracker's stats and admin API (``/api``) and Prometheus metrics (``/metrics``).

``mount_stats(root, swarms, db, stats, clock)`` puts both under a resource
(the tracker site's root); ``swarms`` is this process's ``TrackerState`` or
a ``SwarmSource`` (``sources.RedisSource`` for the swarms shared in Redis).
``StatsApi`` and ``MetricsResource`` can also be mounted one by one over a
shared ``SwarmView``.
"""

from __future__ import annotations

from typing import Any

from twisted.web.resource import Resource

from txbittorrent.core.tracker.registry import TrackerState
from txbittorrent.core.tracker.stats import TrackerStats
from txbittorrent.tracker.db import TrackerDB
from txbittorrent.tracker.stats.api import StatsApi
from txbittorrent.tracker.stats.metrics import MetricsResource
from txbittorrent.tracker.stats.sources import MemorySource, RedisSource, SwarmSource
from txbittorrent.tracker.stats.view import SwarmView

__all__ = [
    "MemorySource", "MetricsResource", "RedisSource", "StatsApi", "SwarmSource", "SwarmView",
    "mount_stats",
]


def mount_stats(
    root: Resource,
    swarms: TrackerState | SwarmSource,
    db: TrackerDB,
    stats: TrackerStats,
    clock: Any,
    **api_options: Any,
) -> StatsApi:
    """Mount ``/api`` and ``/metrics`` under ``root``; returns the API resource.

    ``api_options`` go to ``StatsApi`` (``threadpool``/``reactor`` for the
    scrypt checks, ``key_lifetime``, ``signature_window``, ``max_body``...)."""
    view = SwarmView(swarms, db)
    api = StatsApi(view, db, stats, clock, **api_options)
    root.putChild(b"api", api)  # type: ignore[arg-type]
    root.putChild(b"metrics", MetricsResource(view, stats))  # type: ignore[arg-type]
    return api
