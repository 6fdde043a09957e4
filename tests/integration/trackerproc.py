"""``txbittorrent tracker`` as a child process for the integration tests:
``TrackerChild`` (HTTP on 127.0.0.1, UDP on a loopback address of the
test's choice), SIGKILLed in the test's cleanup if still running."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys

from collections.abc import Sequence

from twisted.trial.unittest import SynchronousTestCase, TestCase

from tests.integration import ltutil
from tests.integration.children import ROOT

__all__ = ["KiB", "LOOPBACK", "SIZES", "TrackerChild", "free_port"]

LOOPBACK = "127.0.0.1"
KiB = 1024
SIZES = {"album/one.bin": 700 * KiB + 3, "album/two.bin": 300 * KiB}
"""The swarm's files in the tracker interop tests."""


def free_port(kind: int = socket.SOCK_STREAM, host: str = LOOPBACK) -> int:
    """A port nobody uses now on ``host``."""
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class TrackerChild:
    """A running ``txbittorrent tracker``: its URLs, its log, how to stop it.

    ``udp_host`` is a loopback address of the test's own: libtorrent caches
    UDP connection ids per tracker IP for a minute across its sessions in a
    process, and a tracker started by another test on the same address (with
    another secret) would refuse them until then."""

    def __init__(self, test: TestCase | SynchronousTestCase, root: str, udp_host: str = LOOPBACK,
                 extra: Sequence[str] = ()) -> None:
        self.test = test
        self.http_port = free_port()
        self.udp_host = udp_host
        self.udp_port = free_port(socket.SOCK_DGRAM, udp_host)
        self.log_path = os.path.join(root, "tracker.log")
        log = open(self.log_path, "wb")
        test.addCleanup(log.close)
        env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "txbittorrent.commands.cli", "tracker",
             "--http", f"tcp:{self.http_port}:interface={LOOPBACK}",
             "--udp", str(self.udp_port), "--udp-interface", udp_host,
             "--interval", "30", "--peer-timeout", "900", "--rate-limit", "10000", *extra],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env, cwd=ROOT,
        )
        test.addCleanup(self.kill)
        self.http_url = f"http://{LOOPBACK}:{self.http_port}/announce"
        self.udp_url = f"udp://{udp_host}:{self.udp_port}/announce"
        ltutil.wait_for(self.listening, 30, "the tracker to listen", self.log_tail)

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)

    def log_tail(self) -> str:
        with open(self.log_path, "rb") as f:
            return f.read()[-2000:].decode("utf-8", "replace")

    def listening(self) -> bool:
        """Whether HTTP accepts and the log says UDP listens (fails the test
        if the tracker ended)."""
        if self.process.poll() is not None:
            self.test.fail(f"the tracker ended early:\n{self.log_tail()}")
        try:
            with socket.create_connection((LOOPBACK, self.http_port), timeout=1):
                with open(self.log_path, "rb") as f:
                    return b"UDP" in f.read()
        except OSError:
            return False

    def stop(self) -> None:
        """SIGTERM: the tracker stops cleanly and exits 0."""
        self.process.send_signal(signal.SIGTERM)
        self.test.assertEqual(self.process.wait(timeout=30), 0, self.log_tail())
