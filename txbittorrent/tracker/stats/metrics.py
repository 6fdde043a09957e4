"""``/metrics``: the tracker's figures in Prometheus' text exposition format 0.0.4.

Counters come from ``TrackerStats`` (by protocol), gauges from the swarms
(``SwarmView``) and the process.  Each family has one ``# HELP`` and one
``# TYPE`` line, then one sample per label set.  The resource is public
and read-only (GET/HEAD); put it behind whatever guards the listener.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from twisted.web.resource import Resource
from twisted.web.server import Request

from txbittorrent.core.tracker.stats import PROTOCOLS, TrackerStats
from txbittorrent.tracker.stats.view import SwarmView, resident_memory

__all__ = ["CONTENT_TYPE", "MetricsResource", "render_metrics"]

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_COUNTERS = (
    ("tracker_announces_total", "announce", "Announces answered."),
    ("tracker_scrapes_total", "scrape", "Scrapes answered."),
    ("tracker_errors_total", "error", "Requests refused or malformed."),
)


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render_metrics(view: SwarmView, stats: TrackerStats) -> str:
    """The exposition text for ``view`` and ``stats``."""
    lines: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")

    for name, kind, text in _COUNTERS:
        family(name, "counter", text)
        for protocol in PROTOCOLS:
            lines.append(f'{name}{{protocol="{protocol}"}} {stats.total(kind, protocol)}')
    totals = view.totals()
    family("tracker_swarms", "gauge", "Torrents with peers or completions in memory.")
    lines.append(f"tracker_swarms {totals.swarms}")
    family("tracker_peers", "gauge", "Peers in the swarms, by kind.")
    lines.append(f'tracker_peers{{kind="seeders"}} {totals.seeders}')
    lines.append(f'tracker_peers{{kind="leechers"}} {totals.leechers}')
    family("tracker_uptime_seconds", "gauge", "Seconds since the tracker started.")
    lines.append(f"tracker_uptime_seconds {_number(stats.uptime())}")
    memory = resident_memory()
    if memory is not None:
        family("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.")
        lines.append(f"process_resident_memory_bytes {memory}")
    return "\n".join(lines) + "\n"


class MetricsResource(Resource):
    """``GET /metrics`` (mount it as a child named ``metrics``)."""

    isLeaf = True

    def __init__(self, view: SwarmView, stats: TrackerStats) -> None:
        super().__init__()
        self.view = view
        self.stats = stats

    def render_GET(self, request: Request) -> bytes:
        if request.postpath not in ([], [b""]):
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found\n"
        request.setHeader(b"content-type", CONTENT_TYPE)
        request.setHeader(b"cache-control", b"no-store")
        return render_metrics(self.view, self.stats).encode("utf-8")
