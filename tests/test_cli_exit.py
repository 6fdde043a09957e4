"""The command line's exit is not held up by name lookups that never end."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.commands._engine import install_lookup_threads

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

HANGING_LOOKUP = """
import socket, sys, threading
real = socket.getaddrinfo
never = threading.Event()

def getaddrinfo(host, *args, **kwargs):
    if host == "hangs.example":
        sys.stderr.write("lookup\\n")
        sys.stderr.flush()
        never.wait()  # a DNS server that never answers
    return real(host, *args, **kwargs)

socket.getaddrinfo = getaddrinfo
from txbittorrent.commands import cli
code = cli.main(sys.argv[1:])
print("exit", code, flush=True)
sys.exit(code)
"""


class RecordingReactor:
    """Records the resolver a reactor is given."""

    def __init__(self) -> None:
        self.resolvers: list[Any] = []

    def installNameResolver(self, resolver: Any) -> Any:  # noqa: N802 - Twisted's name
        self.resolvers.append(resolver)
        return None


class LookupThreadsTests(SynchronousTestCase):
    """``_engine.install_lookup_threads``."""

    def test_daemon_threads(self) -> None:
        """The reactor gets a getaddrinfo resolver whose pool runs its work in
        daemon threads (which the interpreter's exit does not wait for)."""
        from twisted.internet._resolver import GAIResolver

        reactor = RecordingReactor()
        pool = install_lookup_threads(reactor, threads=2)
        self.addCleanup(pool.stop)
        [resolver] = reactor.resolvers
        self.assertIsInstance(resolver, GAIResolver)
        self.assertIs(resolver._getThreadPool(), pool)
        self.assertEqual((pool.min, pool.max), (0, 2))
        seen: list[bool] = []
        ran = threading.Event()

        def work() -> None:
            seen.append(threading.current_thread().daemon)
            ran.set()

        pool.callInThread(work)
        self.assertTrue(ran.wait(30))
        self.assertEqual(seen, [True])

    def test_download_exits_during_a_lookup(self) -> None:
        """``download`` of data already on disk exits with 0 while the lookup
        of its tracker's name still hangs (before, the reactor's shutdown
        joined the thread stuck in getaddrinfo: the process never ended)."""
        from txbittorrent.storage.create import create_torrent

        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        data = os.path.join(base, "data.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(50_000))
        torrent = os.path.join(base, "data.torrent")
        with open(torrent, "wb") as f:
            f.write(create_torrent(data, ["http://hangs.example:6969/announce"],
                                   piece_length=16384))
        env = dict(os.environ, PYTHONPATH=ROOT)
        done = subprocess.run(
            [sys.executable, "-c", HANGING_LOOKUP, "download", torrent, "-o", base,
             "--quiet", "--interface", "127.0.0.1", "--no-dht"],
            cwd=ROOT, env=env, capture_output=True, timeout=60,
        )
        self.assertEqual((done.returncode, done.stdout, done.stderr), (0, b"exit 0\n", b"lookup\n"))
