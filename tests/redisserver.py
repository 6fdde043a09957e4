"""A real ``redis-server`` for the tests: ``RedisServer`` (a child on
127.0.0.1 on a free port, no persistence, a temporary directory) and
``start_redis`` (started, stopped at the test's cleanup; SkipTest without
the binary)."""

from __future__ import annotations

import os
import random
import select
import shutil
import socket
import subprocess
import tempfile
import time
from typing import Any

from twisted.trial.unittest import SkipTest, TestCase

__all__ = ["REDIS_SERVER", "RedisServer", "start_redis"]

REDIS_SERVER = shutil.which("redis-server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    """A throwaway ``redis-server`` on 127.0.0.1; ``url`` once started."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.directory = ""
        self.url = ""

    def start(self, deadline: float = 10.0) -> None:
        if REDIS_SERVER is None:
            raise SkipTest("redis-server is not installed")
        try:
            import txredisapi  # noqa: F401
        except ImportError:
            raise SkipTest("txredisapi is not installed") from None
        self.directory = tempfile.mkdtemp(prefix="txbt-redis-")
        port = _free_port()
        self.process = subprocess.Popen(
            [REDIS_SERVER, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
             "--appendonly", "no", "--dir", self.directory, "--daemonize", "no",
             "--loglevel", "notice"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        assert self.process.stdout is not None
        seen = b""
        end = time.monotonic() + deadline
        while b"Ready to accept connections" not in seen:
            left = end - time.monotonic()
            ready, _, _ = select.select([self.process.stdout], [], [], max(left, 0))
            chunk = os.read(self.process.stdout.fileno(), 4096) if ready else b""
            if not chunk:
                self.stop()
                raise RuntimeError(f"redis-server did not start: {seen[-500:]!r}")
            seen += chunk
        self.url = f"redis://127.0.0.1:{port}/0"

    def kill(self) -> None:
        """Kill the server at once (no clean shutdown)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        if self.process is not None:
            self.kill()
            if self.process.stdout is not None:
                self.process.stdout.close()
            self.process = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = ""


def start_redis(case: TestCase) -> RedisServer:
    """A started ``RedisServer``, stopped at ``case``'s cleanup (or a SkipTest)."""
    server = RedisServer()
    server.start()
    case.addCleanup(server.stop)
    return server


class RedisCase(TestCase):
    """A fresh redis-server per test, and ``swarms()``: a started RedisSwarms on it."""

    timeout = 30

    def setUp(self) -> None:
        self.server = start_redis(self)

    def swarms(self, **options: Any) -> Any:
        """RedisSwarms over a TrackerState(interval=100, peer_timeout=200, **options)."""
        from txbittorrent.core.tracker.swarms import TrackerState
        from txbittorrent.tracker.redisswarms import RedisSwarms

        state = TrackerState(random.Random(1), interval=100, peer_timeout=200, **options)
        swarms = RedisSwarms(state, self.server.url, rng=random.Random(2))
        swarms.start()
        self.addCleanup(swarms.stop)
        return swarms
