"""Tests for txbittorrent.tracker.stats.metrics (/metrics over a real socket on
127.0.0.1) and txbittorrent.tracker.stats.recorder (on a fake clock)."""

from __future__ import annotations

import os
import random
import re
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from tests.trackerstatscase import H1, H2, H3, NOW, StatsApiCase, fill
from txbittorrent.core.tracker.announce import AnnounceEvent
from txbittorrent.core.tracker.registry import Announce, TrackerState
from txbittorrent.tracker.db import Batch, TorrentRow, TrackerDB, TrackerDBError
from txbittorrent.tracker.stats.recorder import TrackerRecorder

SAMPLE = re.compile(
    r'\A([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*"'
    r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"\\\n]*")*)?\})? (-?[0-9.eE+]+|NaN|[+-]Inf)\Z'
)
COMMENT = re.compile(r"\A# (HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+|TYPE [a-zA-Z_:][a-zA-Z0-9_:]*"
                     r" (counter|gauge|histogram|summary|untyped))\Z")


def parse(text: str) -> dict[str, float]:
    """Samples by 'name{labels}' of an exposition text; fails on a malformed line."""
    assert text.endswith("\n"), "the text ends with a newline"
    samples: dict[str, float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("#"):
            assert COMMENT.match(line), line
            if line.startswith("# TYPE "):
                name = line.split()[2]
                assert name not in typed, f"two TYPE lines for {name}"
                typed.add(name)
            continue
        match = SAMPLE.match(line)
        assert match, line
        assert match.group(1) in typed, f"{match.group(1)} sampled before its TYPE"
        samples[line.rpartition(" ")[0]] = float(match.group(5))
    return samples


class MetricsTests(StatsApiCase):
    """GET /metrics."""

    @inlineCallbacks
    def test_metrics_parse(self) -> Generator[Any, Any, None]:
        """Every line is a valid comment or sample; counters and gauges have the right values."""
        for _ in range(3):
            self.stats.announce("http")
        self.stats.scrape("udp")
        self.stats.error("udp")
        self.clock.advance(12.5)
        code, text, headers = yield self.call("GET", "/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(headers.getRawHeaders(b"content-type")[0].startswith(
            b"text/plain; version=0.0.4"))
        samples = parse(text)
        self.assertEqual(samples['tracker_announces_total{protocol="http"}'], 3)
        self.assertEqual(samples['tracker_announces_total{protocol="udp"}'], 0)
        self.assertEqual(samples['tracker_scrapes_total{protocol="udp"}'], 1)
        self.assertEqual(samples['tracker_errors_total{protocol="udp"}'], 1)
        self.assertEqual(samples["tracker_swarms"], 3)
        self.assertEqual(samples['tracker_peers{kind="seeders"}'], 3)
        self.assertEqual(samples['tracker_peers{kind="leechers"}'], 2)
        self.assertEqual(samples["tracker_uptime_seconds"], 12.5)
        self.assertGreater(samples["process_resident_memory_bytes"], 1 << 20)

    @inlineCallbacks
    def test_metrics_only_get(self) -> Generator[Any, Any, None]:
        """POST is 405 and a path below /metrics 404."""
        code, _, _ = yield self.call("POST", "/metrics")
        self.assertEqual(code, 405)
        code, _, _ = yield self.call("GET", "/metrics/more")
        self.assertEqual(code, 404)


class RecorderTests(SynchronousTestCase):
    """TrackerRecorder: the flush loop and the swarms' observer, on a fake clock."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.state = TrackerState(random.Random(1))
        directory = self.mktemp()
        os.makedirs(directory)
        self.db = TrackerDB(os.path.join(directory, "tracker.sqlite"))
        self.addCleanup(self.db.close)
        self.recorder = TrackerRecorder(self.state, self.db, self.clock, interval=1.0,
                                        threaded=False)

    def test_observed_and_flushed(self) -> None:
        """New swarms are recorded as seen at their first announce, each completion
        once as it happens, all written by the next tick; a stopped recorder
        observes no more."""
        self.recorder.startService()
        fill(self.state, NOW)
        self.clock.advance(1)
        self.assertEqual(self.db.torrents(), [
            TorrentRow(H1, NOW, 0, False), TorrentRow(H2, NOW, 0, False),
            TorrentRow(H3, NOW, 1, False)])
        for n in (6, 7):
            self.state.announce(Announce(H1, b"-TX0010-%012d" % n, "127.0.0.1", 7000 + n, 0,
                                         event=AnnounceEvent.COMPLETED), NOW + 2)
        self.clock.advance(1)
        self.assertEqual(self.db.torrents()[0], TorrentRow(H1, NOW, 2, False))
        self.clock.advance(30)
        self.assertEqual(self.db.torrents()[0].completed, 2)
        self.successResultOf(self.recorder.stopService())
        self.assertIsNone(self.state.observer)

    def test_stop_flushes(self) -> None:
        """Stopping flushes what is pending and leaves no timer behind."""
        self.recorder.startService()
        self.db.add_completed(H2, 4)
        d = self.recorder.stopService()
        self.successResultOf(d)
        self.assertEqual(self.db.torrents(), [TorrentRow(H2, None, 4, False)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_failed_write_retried(self) -> None:
        """A write that fails keeps its batch for the next tick."""
        self.recorder.startService()
        self.addCleanup(self.recorder.stopService)
        real = self.db.write_batch
        calls = []

        def flaky(batch: Batch) -> None:
            calls.append(batch)
            if len(calls) == 1:
                raise TrackerDBError("disk full")
            real(batch)

        self.db.write_batch = flaky  # type: ignore[method-assign]
        self.db.add_completed(H3, 2)
        self.clock.advance(1)
        self.assertEqual(len(self.flushLoggedErrors(TrackerDBError)), 1)
        self.assertEqual(self.db.torrents(), [])
        self.clock.advance(1)
        self.assertEqual(self.db.torrents(), [TorrentRow(H3, None, 2, False)])
