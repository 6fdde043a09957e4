"""Helpers for integration tests that run our engine on the real reactor.

Our engine needs the reactor to turn, so waiting must not block it:
``wait_until`` polls a predicate from the reactor every few milliseconds and
fails the test with a description when a deadline passes.  Real clients
(libtorrent's own threads, aria2 as a child process) run beside it.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
from collections.abc import Callable
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import FailTest

POLL = 0.05


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    what: str,
    describe: Callable[[], str] | None = None,
) -> Deferred[None]:
    """Fire once ``predicate()`` is true; errback with FailTest after ``timeout`` s."""
    done: Deferred[None] = Deferred()
    deadline = reactor.seconds() + timeout

    def poll() -> None:
        try:
            ok = predicate()
        except Exception as e:  # a predicate that raises ends the wait
            done.errback(e)
            return
        if ok:
            done.callback(None)
        elif reactor.seconds() >= deadline:
            detail = f": {describe()}" if describe is not None else ""
            done.errback(FailTest(f"timed out after {timeout} s waiting for {what}{detail}"))
        else:
            reactor.callLater(POLL, poll)

    reactor.callLater(0, poll)
    return done


def make_files(root: str, sizes: dict[str, int], seed: int = 1) -> dict[str, bytes]:
    """Write files of seeded random bytes under ``root``; return their contents."""
    rng = random.Random(seed)
    out = {}
    for name, size in sizes.items():
        path = os.path.join(root, *name.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = rng.randbytes(size)
        with open(path, "wb") as f:
            f.write(data)
        out[name] = data
    return out


def same_files(a_root: str, b_root: str, names: list[str]) -> list[str]:
    """The names whose bytes differ (or are missing) between the two trees."""
    bad = []
    for name in names:
        pa = os.path.join(a_root, *name.split("/"))
        pb = os.path.join(b_root, *name.split("/"))
        try:
            with open(pa, "rb") as fa, open(pb, "rb") as fb:
                if fa.read() != fb.read():
                    bad.append(name)
        except FileNotFoundError:
            bad.append(name)
    return bad


ARIA2C = shutil.which("aria2c")


def aria2_command(torrent_path: str, directory: str, listen_port: int,
                  extra: list[str] | None = None) -> list[str]:
    """aria2c downloading ``torrent_path`` on loopback, no DHT/LPD/PEX, no seeding."""
    assert ARIA2C is not None
    return [
        ARIA2C,
        "--dir", directory,
        "--enable-dht=false", "--enable-dht6=false",
        "--bt-enable-lpd=false", "--enable-peer-exchange=false",
        "--listen-port", str(listen_port),
        "--seed-time=0", "--check-integrity=true",
        "--bt-stop-timeout=120", "--summary-interval=0",
        "--console-log-level=warn", "--file-allocation=none",
        "--disable-ipv6=true",
        *(extra or []),
        torrent_path,
    ]


def start_process(case: Any, argv: list[str], log_path: str) -> subprocess.Popen[bytes]:
    """Start a child process whose output goes to ``log_path``; killed in cleanup."""
    log = open(log_path, "wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL)

    def cleanup() -> None:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        log.close()

    case.addCleanup(cleanup)
    return proc


class LiarProtocol(Protocol):
    """A scripted bad peer: claims every piece, unchokes, and answers every
    request with random bytes.  Built on our own PeerSession, so the wire
    format is right and only the data lies."""

    def __init__(self, metainfo: Any, rng: random.Random) -> None:
        from txbittorrent.core.bitfield import Bitfield
        from txbittorrent.core.wire.session import PeerSession

        self.rng = rng
        self.session = PeerSession(
            metainfo.info_hash, b"-LI0001-" + bytes(rng.randrange(97, 123) for _ in range(12)),
            metainfo.piece_count, False, piece_length_of=metainfo.piece_size)
        self.full = Bitfield.full(metainfo.piece_count)
        self.served = 0

    def dataReceived(self, data: bytes) -> None:
        from txbittorrent.core.wire.events import BlockRequested, HandshakeReceived, Reply
        from txbittorrent.errors import TxBitTorrentError

        try:
            events = self.session.receive_data(data)
        except TxBitTorrentError:
            self.transport.loseConnection()
            return
        for event in events:
            if isinstance(event, HandshakeReceived):
                self.transport.write(self.session.send_handshake()
                                     + self.session.send_bitfield(self.full)
                                     + self.session.unchoke())
            elif isinstance(event, Reply):
                self.transport.write(event.data)
            elif isinstance(event, BlockRequested):
                header = self.session.send_piece_header(event.piece_index, event.begin,
                                                        event.length)
                self.transport.write(header + self.rng.randbytes(event.length))
                self.served += 1


class LiarFactory(Factory):
    def __init__(self, metainfo: Any, seed: int = 5) -> None:
        self.metainfo = metainfo
        self.rng = random.Random(seed)
        self.protocols: list[LiarProtocol] = []

    def buildProtocol(self, addr: Any) -> LiarProtocol:
        p = LiarProtocol(self.metainfo, self.rng)
        self.protocols.append(p)
        return p
