"""Helpers for integration tests against other real clients: aria2c as a
child process (``aria2_command``, ``start_process``) and a scripted peer that
lies about its data (``LiarFactory``).

Helpers that need no real client (``wait_until``, ``make_files``,
``same_files``) live in ``txbittorrent.testing``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
from typing import Any

from twisted.internet.protocol import Factory, Protocol

ARIA2C = shutil.which("aria2c")


def write_transmission_settings(config_dir: str, peer_port: int, encryption: int) -> None:
    """A Transmission (transmission-cli) settings.json in ``config_dir``: on
    127.0.0.1/::1 only, no DHT, LPD, PEX, uTP, port forwarding or blocklist,
    no RPC, no limits; ``encryption`` 0 prefers plaintext, 1 prefers
    encryption, 2 requires it."""
    settings = {
        "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False,
        "port-forwarding-enabled": False, "utp-enabled": False,
        "bind-address-ipv4": "127.0.0.1", "bind-address-ipv6": "::1",
        "peer-port": peer_port, "peer-port-random-on-start": False,
        "blocklist-enabled": False, "rpc-enabled": False,
        "speed-limit-up-enabled": False, "ratio-limit-enabled": False,
        "encryption": encryption,
    }
    with open(os.path.join(config_dir, "settings.json"), "w") as f:
        json.dump(settings, f)


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
