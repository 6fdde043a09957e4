"""Tests for ``txbittorrent tracker`` (commands/tracker.py) and the service's timers."""

from __future__ import annotations

import argparse
import os
import random

from twisted.internet.address import IPv4Address
from twisted.internet.testing import MemoryReactorClock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.commands.cli import build_parser
from txbittorrent.commands.tracker import config_of
from txbittorrent.core.tracker.registry import Announce
from txbittorrent.errors import TxBitTorrentError
from txbittorrent.tracker.service import TrackerService
from txbittorrent.tracker.serverconfig import TrackerServerConfig, load_whitelist

HASH = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"


def parse(*argv: str) -> argparse.Namespace:
    return build_parser().parse_args(["tracker", *argv])


class CommandLineTests(SynchronousTestCase):
    """The options become a TrackerServerConfig."""

    def test_defaults_loopback(self) -> None:
        """By default: HTTP and UDP 6969 on 127.0.0.1 only, a rate limit, no full scrape."""
        config = config_of(parse())
        self.assertEqual(config.http, ("tcp:6969:interface=127.0.0.1",))
        self.assertEqual((config.udp_ports, config.udp_interfaces), ((6969,), ("127.0.0.1",)))
        self.assertEqual((config.full_scrape, config.rate_limit, config.whitelist),
                         (False, 300, None))

    def test_options(self) -> None:
        """Every option lands in the config; --http, --udp and --trusted-proxy repeat."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(f"# ours\n{HASH}\n\n")
        config = config_of(parse(
            "--http", "tcp:7000", "--http", "tcp6:7001", "--udp", "7002", "--udp", "7003",
            "--udp-interface", "::1", "--interval", "600", "--min-interval", "300",
            "--peer-timeout", "1300", "--max-numwant", "80", "--full-scrape",
            "--whitelist", path, "--trusted-proxy", "10.0.0.1", "--trusted-proxy", "::1",
            "--rate-limit", "50", "--max-swarms", "1000", "--log-format", "json"))
        self.assertEqual(config, TrackerServerConfig(
            http=("tcp:7000", "tcp6:7001"), udp_ports=(7002, 7003), udp_interfaces=("::1",),
            interval=600, min_interval=300, peer_timeout=1300, max_numwant=80,
            default_numwant=50, full_scrape=True, whitelist=frozenset([bytes.fromhex(HASH)]),
            trusted_proxies=("10.0.0.1", "::1"), rate_limit=50, max_swarms=1000))

    def test_bad_input(self) -> None:
        """A bad whitelist or inconsistent numbers are one-line errors; bad values usage errors."""
        path = self.mktemp()
        with open(path, "w") as f:
            f.write("not a hash\n")
        self.assertRaises(TxBitTorrentError, config_of, parse("--whitelist", path))
        self.assertRaises(TxBitTorrentError, config_of,
                          parse("--interval", "60", "--min-interval", "120"))
        self.assertRaises(TxBitTorrentError, config_of, parse("--no-http", "--no-udp"))
        self.assertRaises(OSError, config_of, parse("--whitelist", os.path.join(path, "none")))
        for argv in (["--udp", "70000"], ["--trusted-proxy", "proxy.example"],
                     ["--rate-limit", "0"], ["--log-format", "xml"]):
            self.assertRaises(SystemExit, parse, *argv)

    def test_secret_file(self) -> None:
        """--secret-file gives the UDP connection ids' key (so processes
        behind one address share ids); under 16 bytes is an error."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"0123456789abcdefXYZ\n")
        self.assertEqual(config_of(parse("--secret-file", path)).secret,
                         b"0123456789abcdefXYZ")
        with open(path, "wb") as f:
            f.write(b"short")
        self.assertRaises(TxBitTorrentError, config_of, parse("--secret-file", path))
        self.assertIsNone(config_of(parse()).secret)

    def test_load_whitelist(self) -> None:
        """Hex hashes a line, comments and blank lines skipped, case ignored."""
        self.assertEqual(load_whitelist(f"{HASH.upper()}  # one\n\n{HASH}\n"),
                         frozenset([bytes.fromhex(HASH)]))


class UDPMemoryReactor(MemoryReactorClock):
    """A MemoryReactorClock that also records listenUDP calls."""

    def __init__(self) -> None:
        super().__init__()
        self.udpServers: list[tuple[int, object, str]] = []

    def listenUDP(self, port: int, protocol: object, interface: str = "") -> object:
        self.udpServers.append((port, protocol, interface))
        return _FakeUDPPort()


class _FakeUDPPort:
    def getHost(self) -> IPv4Address:
        return IPv4Address("UDP", "127.0.0.1", 6969)

    def stopListening(self) -> None:
        pass


class ServiceTimerTests(SynchronousTestCase):
    """The service on a memory reactor: its sweep runs on the clock and stops with it."""

    def test_sweep_and_clean_stop(self) -> None:
        """Idle peers are swept every sweep_interval; stop leaves no delayed call."""
        reactor = UDPMemoryReactor()
        config = TrackerServerConfig(http=("tcp:0:interface=127.0.0.1",), udp_ports=(0,),
                                     interval=60, sweep_interval=30)
        service = TrackerService(config, reactor=reactor, rng=random.Random(1))
        self.assertEqual((reactor.tcpServers, reactor.getDelayedCalls()), ([], []))
        service.startService()
        assert service.started is not None
        self.successResultOf(service.started)
        self.assertEqual((len(reactor.tcpServers), len(reactor.udpServers)), (1, 1))
        service.state.announce(
            Announce(bytes(20), b"p" * 20, "127.0.0.1", 6881, 10), reactor.seconds())
        reactor.advance(121)
        self.assertEqual((service.state.peer_count, len(service.state)), (0, 0))
        self.successResultOf(service.stopService())
        self.assertEqual(reactor.getDelayedCalls(), [])


class StartFailureTests(SynchronousTestCase):
    """A tracker that cannot start says why and exits non-zero (it does not hang)."""

    def test_unopenable_database(self) -> None:
        """--db in a missing directory: a one-line error and exit status 1."""
        import subprocess
        import sys

        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        missing = os.path.join(self.mktemp(), "no-such-dir", "tracker.db")
        done = subprocess.run(
            [sys.executable, "-m", "txbittorrent", "tracker", "--db", missing,
             "--http", "tcp:0:interface=127.0.0.1", "--udp", "0"],
            cwd=root, capture_output=True, text=True, timeout=60,
        )
        self.assertEqual(done.returncode, 1)
        self.assertIn("txbittorrent tracker: error: cannot open tracker database", done.stderr)
        self.assertNotIn("Traceback", done.stderr)
