"""Tests for txbittorrent.tracker.stats.metrics: /metrics over a real socket on 127.0.0.1."""

from __future__ import annotations

import re
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import inlineCallbacks

from tests.trackerstatscase import StatsApiCase

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
