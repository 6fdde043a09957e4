"""``txbittorrent tracker`` against real clients on 127.0.0.1: libtorrent seeds
and leeches through it over HTTP and over UDP, aria2 leeches over HTTP, and
the scrape counts are right at the end.

The tracker runs as a child process (the command itself, as a user runs it),
on ports picked free beforehand, and is stopped with SIGTERM (exit 0 asserted:
a clean stop).  The tests block on libtorrent's state (``ltutil.wait_for``),
which is fine: nothing they wait for runs on this process's reactor.  Every
session, process and port is closed in the cleanup; waits are bounded.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from typing import Any

from twisted.trial.unittest import SkipTest, TestCase

from tests.integration import ltutil
from tests.integration.children import ROOT
from tests.integration.trackerproc import KiB, LOOPBACK, SIZES, TrackerChild, free_port
from tests.integration.engine import ARIA2C, aria2_command, start_process
from tests.integration.temproot import TempRootCase
from txbittorrent.core.bencoding import decode
from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, same_files

UDP_LOOPBACK = "127.0.0.31"
UDP_HOSTS = {"test_aria2_udp": "127.0.0.32"}
"""This module's UDP tracker address (see ``TrackerChild``)."""

class TrackerClientsTests(TempRootCase):
    """Our tracker as a child process, real clients announcing to it."""

    timeout = 180

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.make_root()
        # libtorrent keeps a UDP tracker's connection id per tracker IP for a
        # minute across the sessions of this process: a test whose libtorrent
        # seeder announces over UDP gets a loopback address of its own, or
        # the next test's tracker (another secret) would refuse that id.
        udp_host = UDP_HOSTS.get(self._testMethodName, UDP_LOOPBACK)
        self.tracker = TrackerChild(self, self.root, udp_host)
        self.http_port = self.tracker.http_port
        self.http_url, self.udp_url = self.tracker.http_url, self.tracker.udp_url

    def stop_tracker(self) -> None:
        """SIGTERM: the tracker stops cleanly and exits 0."""
        self.tracker.stop()

    def scrape(self, info_hash: bytes) -> tuple[int, int, int]:
        """(complete, downloaded, incomplete) from our tracker's HTTP scrape."""
        query = "".join(f"%{b:02X}" for b in info_hash)
        url = f"http://{LOOPBACK}:{self.http_port}/scrape?info_hash={query}"
        with urllib.request.urlopen(url, timeout=10) as response:
            files = decode(response.read())[b"files"]
        entry = files.get(info_hash, {})
        return (entry.get(b"complete", 0), entry.get(b"downloaded", 0),
                entry.get(b"incomplete", 0))

    def make_torrent(self, tracker_url: str) -> tuple[bytes, bytes]:
        """(the .torrent, its info hash) for SIZES under root/seed/tree."""
        source = os.path.join(self.root, "seed", "tree")
        make_files(source, SIZES, seed=7)
        raw = create_torrent(source, trackers=[tracker_url], piece_length=64 * KiB)
        return raw, parse(raw).info_hash

    def wait_scrape(self, info_hash: bytes, expected: tuple[int, int, int]) -> None:
        seen: list[Any] = []

        def matches() -> bool:
            seen[:] = [self.scrape(info_hash)]
            return seen[0] == expected

        ltutil.wait_for(matches, 60, f"scrape {expected}", lambda: repr(seen))

    def swarm_through(self, tracker_url: str) -> None:
        """A libtorrent seeder and leecher find each other only through the tracker."""
        raw, info_hash = self.make_torrent(tracker_url)
        seeder = ltutil.make_session(self)
        seed = ltutil.add_torrent(seeder, raw, os.path.join(self.root, "seed"))
        ltutil.wait_until_seeding(seed, 30)
        self.wait_scrape(info_hash, (1, 0, 0))
        leecher = ltutil.make_session(self)
        leech = ltutil.add_torrent(leecher, raw, os.path.join(self.root, "leech"))
        ltutil.wait_until_seeding(leech, 90)
        ltutil.wait_for_files(os.path.join(self.root, "seed", "tree"),
                              os.path.join(self.root, "leech", "tree"), SIZES)
        self.wait_scrape(info_hash, (2, 1, 0))
        leecher.remove_torrent(leech)
        self.wait_scrape(info_hash, (1, 1, 0))
        self.stop_tracker()

    def test_libtorrent_http(self) -> None:
        """libtorrent seeds and leeches through our tracker over HTTP; scrape is right."""
        self.swarm_through(self.http_url)

    def test_libtorrent_udp(self) -> None:
        """libtorrent seeds and leeches through our tracker over UDP; scrape is right."""
        self.swarm_through(self.udp_url)

    def test_aria2_http(self) -> None:
        """aria2c leeches from a libtorrent seeder it learnt of from our tracker (HTTP)."""
        self.aria2_through(self.http_url)

    def test_aria2_udp(self) -> None:
        """aria2c leeches from a libtorrent seeder it learnt of from our tracker (UDP).

        aria2 sends UDP tracker requests from its DHT socket: without the DHT it
        never asks a udp:// tracker.  Its DHT is on here with one entry point on
        loopback (nobody answers there) and no saved routing table, so it sends
        nothing off this machine."""
        udp_port = free_port(socket.SOCK_DGRAM)
        self.aria2_through(self.udp_url, [
            "--enable-dht=true", f"--dht-listen-port={udp_port}",
            f"--dht-entry-point={LOOPBACK}:9",
            f"--dht-file-path={os.path.join(self.root, 'aria2-dht.dat')}",
        ])

    def aria2_through(self, tracker_url: str, extra: list[str] | None = None) -> None:
        if ARIA2C is None:
            raise SkipTest("aria2c is not installed (apt-get install aria2)")
        raw, info_hash = self.make_torrent(tracker_url)
        seeder = ltutil.make_session(self)
        seed = ltutil.add_torrent(seeder, raw, os.path.join(self.root, "seed"))
        ltutil.wait_until_seeding(seed, 30)
        self.wait_scrape(info_hash, (1, 0, 0))
        torrent_path = os.path.join(self.root, "t.torrent")
        with open(torrent_path, "wb") as f:
            f.write(raw)
        aria2_dir = os.path.join(self.root, "aria2")
        proc = start_process(self, aria2_command(torrent_path, aria2_dir, free_port(), extra),
                             os.path.join(self.root, "aria2.log"))
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.2)
        self.assertEqual(proc.poll(), 0,
                         open(os.path.join(self.root, "aria2.log")).read()[-2000:])
        self.assertEqual(same_files(os.path.join(self.root, "seed", "tree"),
                                    os.path.join(aria2_dir, "tree"), list(SIZES)), [])
        self.wait_scrape(info_hash, (1, 1, 0))
        self.stop_tracker()


class TrackerCommandTests(TestCase):
    """The command's exit statuses, without other clients."""

    timeout = 60

    def run_tracker(self, *argv: str) -> subprocess.CompletedProcess[str]:
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        return subprocess.run(
            [sys.executable, "-m", "txbittorrent.commands.cli", "tracker", *argv],
            capture_output=True, text=True, env=env, cwd=ROOT, timeout=30,
            stdin=subprocess.DEVNULL)

    def test_port_taken(self) -> None:
        """A UDP port in use: one line on stderr, exit 1, nothing left listening."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind((LOOPBACK, 0))
            port = taken.getsockname()[1]
            result = self.run_tracker("--http", f"tcp:0:interface={LOOPBACK}",
                                      "--udp", str(port))
        self.assertEqual(result.returncode, 1, result.stderr)
        self.assertIn("txbittorrent tracker: error:", result.stderr)

    def test_bad_whitelist(self) -> None:
        """An unreadable whitelist is one line on stderr and exit 1."""
        result = self.run_tracker("--whitelist", os.path.join(self.mktemp(), "missing"))
        self.assertEqual(result.returncode, 1)
        self.assertEqual(len(result.stderr.strip().splitlines()), 1, result.stderr)
