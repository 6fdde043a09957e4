"""``/metrics``: the tracker's figures in Prometheus' text exposition format 0.0.4.

Counters come from ``TrackerStats`` (by protocol), gauges from the swarms
(``SwarmView``: this process's, or those shared in Redis, asked for once
per request; the answer waits for them) and the process.  Each family has one ``# HELP`` and one
``# TYPE`` line, then one sample per label set.  The resource is public
and read-only (GET/HEAD); put it behind whatever guards the listener.
"""

# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from txbittorrent.core.tracker.stats import PROTOCOLS, TrackerStats
from txbittorrent.tracker.stats.view import SwarmView, Totals, resident_memory

__all__ = ["CONTENT_TYPE", "MetricsResource", "render_metrics"]

_log = Logger()

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"

_COUNTERS = (
    ("tracker_announces_total", "announce", "Announces answered."),
    ("tracker_scrapes_total", "scrape", "Scrapes answered."),
    ("tracker_errors_total", "error", "Requests refused or malformed."),
)


def _number(value: float) -> str:
    return repr(float(value)) if isinstance(value, float) else str(value)


def render_metrics(totals: Totals, stats: TrackerStats) -> str:
    """The exposition text for the swarms' ``totals`` and ``stats``."""
    lines: list[str] = []

    def family(name: str, kind: str, text: str) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")

    for name, kind, text in _COUNTERS:
        family(name, "counter", text)
        for protocol in PROTOCOLS:
            lines.append(f'{name}{{protocol="{protocol}"}} {stats.total(kind, protocol)}')
    family("tracker_swarms", "gauge", "Torrents with peers or completions tracked.")
    lines.append(f"tracker_swarms {totals.swarms}")
    family("tracker_peers", "gauge", "Peers in the swarms, by kind.")
    lines.append(f'tracker_peers{{kind="seeders"}} {totals.seeders}')
    lines.append(f'tracker_peers{{kind="leechers"}} {totals.leechers}')
    if totals.at is not None:
        family("tracker_peers_counted_timestamp_seconds", "gauge",
               "When the peers were last counted (shared swarms: the last sweep).")
        lines.append(f"tracker_peers_counted_timestamp_seconds {_number(totals.at)}")
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

    def render_GET(self, request: Request) -> bytes | int:
        if request.postpath not in ([], [b""]):
            request.setResponseCode(404)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"not found\n"
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))

        def answer(totals: Totals) -> None:
            if finished[0]:
                return
            request.setHeader(b"content-type", CONTENT_TYPE)
            request.setHeader(b"cache-control", b"no-store")
            request.write(render_metrics(totals, self.stats).encode("utf-8"))
            request.finish()

        def failed(failure: Failure) -> None:
            _log.failure("tracker /metrics", failure)
            if finished[0]:
                return
            request.setResponseCode(503)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            request.write(b"swarm storage unavailable\n")
            request.finish()

        self.view.totals().addCallbacks(answer, failed).addErrback(
            lambda f: _log.failure("tracker /metrics", f))
        return NOT_DONE_YET
