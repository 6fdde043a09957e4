"""MSE/PE against aria2 and Transmission on 127.0.0.1.

* aria2c with ``--bt-require-crypto=true`` (it never sends a plain
  handshake) downloads from our seeder, found through our tracker: with
  plaintext allowed after the handshake, and with ``--bt-min-crypto-level
  =arc4`` (RC4 only).  An aria2c seeder requiring encryption is dialled by
  our leecher with encryption forced, and by our default ("enabled")
  leecher, whose plain dial it drops: the encrypted redial follows at once.
* Transmission (Debian's ``transmission-cli`` 3.00) with encryption
  required seeds; our leechers with encryption forced and enabled dial it.
  Transmission never dials 127.x peers it hears of, so only this direction.

Every child process is killed in cleanup, every wait has a deadline, and
everything listens on 127.0.0.1.  A test skips when its client is missing.
"""

from __future__ import annotations

import os
import shutil
import socket
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SkipTest

from tests.integration.engine import (
    ARIA2C,
    aria2_command,
    start_process,
    write_transmission_settings,
)
from tests.integration.temproot import TempRootCase
from txbittorrent.core.wire.mse import CRYPTO_PLAINTEXT, CRYPTO_RC4
from txbittorrent.observers import TorrentObserver
from txbittorrent.session import Session, SessionConfig
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, same_files, wait_until
from txbittorrent.torrent import Torrent
from txbittorrent.tracker.server import start_tracker

LOOPBACK = "127.0.0.1"
TRANSMISSION = shutil.which("transmission-cli")
MiB = 1024 * 1024
SIZES = {"clip.bin": 2 * MiB + 321, "readme.txt": 1500}
WAIT = 90.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class LinkCrypto(TorrentObserver):
    """Each accepted peer link's crypto method and whether it went through MSE."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.seen: set[tuple[Any, bool]] = set()

    def peer_connected(self, torrent: Any, peer: Any) -> None:
        for link in self.session.links():  # the new one is accepted once this returns
            if link.host is not None and not link.closing:
                self.seen.add((getattr(link, "crypto", None),
                               getattr(link, "encrypted_handshake", False)))


class ClientsBase(TempRootCase):
    make_dirs = True
    timeout = 180

    def setUp(self) -> None:
        self.make_root(remove=True)

    def make_torrent(self, trackers: list[str] | None = None) -> tuple[bytes, str]:
        """The torrent's bytes and a .torrent file of it."""
        source = os.path.join(self.path("seed"), "clip")
        make_files(source, SIZES, seed=21)
        raw = create_torrent(source, piece_length=128 * 1024, trackers=trackers or [])
        torrent_path = os.path.join(self.root, "clip.torrent")
        with open(torrent_path, "wb") as f:
            f.write(raw)
        return raw, torrent_path

    def our_torrent(self, raw: bytes, basedir: str, mode: str) -> tuple[Torrent, LinkCrypto]:
        session = Session(reactor=reactor, listen_interfaces=(LOOPBACK,),
                          config=SessionConfig(encryption=mode))
        self.addCleanup(session.stop)
        self.successResultOf(session.start())  # binds at once
        t = Torrent(raw, basedir=basedir, reactor=reactor, session=session)
        self.addCleanup(t.close)
        seen = LinkCrypto(session)
        t.add_observer(seen)
        return t, seen

    def log_tail(self, name: str) -> str:
        try:
            with open(os.path.join(self.root, name), errors="replace") as f:
                return f.read()[-2000:]
        except OSError:
            return "(no log)"

    def assert_same(self, basedir: str) -> None:
        bad = same_files(os.path.join(self.root, "seed", "clip"),
                         os.path.join(basedir, "clip"), list(SIZES))
        self.assertEqual(bad, [])


class Aria2Tests(ClientsBase):
    """aria2c requiring encryption, both ways."""

    def setUp(self) -> None:
        if ARIA2C is None:
            raise SkipTest("aria2c is not installed (apt-get install aria2)")
        super().setUp()

    @inlineCallbacks
    def seed_to_aria2(self, mode: str, extra: list[str]) -> Any:
        tracker = yield start_tracker(reactor, LOOPBACK, interval=5)
        self.addCleanup(tracker.stop)
        raw, torrent_path = self.make_torrent([tracker.announce_url])
        seeder, seen = self.our_torrent(raw, self.path("seed"), mode)
        yield seeder.start()
        proc = start_process(
            self, aria2_command(torrent_path, self.path("aria2"), free_port(),
                                ["--bt-require-crypto=true", *extra]),
            os.path.join(self.root, "aria2.log"))
        yield wait_until(lambda: proc.poll() is not None, WAIT, "aria2c to finish",
                         lambda: self.log_tail("aria2.log"))
        self.assertEqual(proc.returncode, 0, self.log_tail("aria2.log"))
        self.assert_same(self.path("aria2"))
        yield seeder.stop()
        return seen.seen

    @inlineCallbacks
    def test_aria2_requiring_crypto_leeches(self) -> Any:
        """aria2c (encrypted handshake only, plaintext payload allowed)
        downloads from our default seeder: plaintext selected after MSE."""
        seen = yield self.seed_to_aria2("enabled", [])
        self.assertEqual(seen, {(CRYPTO_PLAINTEXT, True)})

    @inlineCallbacks
    def test_aria2_requiring_rc4_leeches(self) -> Any:
        """aria2c with RC4 as its minimum downloads from our default seeder over RC4."""
        seen = yield self.seed_to_aria2("enabled", ["--bt-min-crypto-level=arc4"])
        self.assertEqual(seen, {(CRYPTO_RC4, True)})

    def test_forced_leecher_from_aria2(self) -> Any:
        """Our forced leecher dials an aria2c seeder requiring encryption."""
        return self.leech_from_aria2("forced")

    def test_enabled_leecher_from_aria2(self) -> Any:
        """Our default leecher reaches an aria2c seeder requiring encryption:
        its plain dial is dropped, and it redials encrypted (RC4) at once."""
        return self.leech_from_aria2("enabled")

    @inlineCallbacks
    def leech_from_aria2(self, mode: str) -> Any:
        raw, torrent_path = self.make_torrent()
        port = free_port()
        argv = aria2_command(torrent_path, self.path("seed"), port,
                             ["--bt-require-crypto=true", "--bt-min-crypto-level=arc4",
                              "--seed-time=5", "--seed-ratio=0.0"])
        proc = start_process(self, argv, os.path.join(self.root, "aria2.log"))
        yield wait_until(lambda: "SEED" in self.log_tail("aria2.log") or self.listening(port),
                         WAIT, "aria2c to seed", lambda: self.log_tail("aria2.log"))
        leecher, seen = self.our_torrent(raw, self.path("leech"), mode)
        yield leecher.start()
        leecher.add_peers([(LOOPBACK, port)])
        yield wait_until(lambda: leecher.complete, WAIT, "our download",
                         lambda: f"left={leecher.left} {self.log_tail('aria2.log')}")
        yield leecher.stop()
        proc.kill()
        self.assert_same(self.path("leech"))
        self.assertEqual(seen.seen, {(CRYPTO_RC4, True)})

    def listening(self, port: int) -> bool:
        with socket.socket() as s:
            s.settimeout(0.2)
            return s.connect_ex((LOOPBACK, port)) == 0


class TransmissionTests(ClientsBase):
    """Transmission with encryption required seeds to our forced and our
    default leechers."""

    def setUp(self) -> None:
        if TRANSMISSION is None:
            raise SkipTest("transmission-cli is not installed (apt-get install transmission-cli)")
        super().setUp()

    def test_forced_leecher_from_transmission(self) -> Any:
        """Our forced leecher downloads from Transmission requiring encryption, over RC4."""
        return self.leech_from_transmission("forced")

    def test_enabled_leecher_from_transmission(self) -> Any:
        """Our default leecher downloads from Transmission requiring
        encryption: plain dial dropped, encrypted redial (RC4)."""
        return self.leech_from_transmission("enabled")

    @inlineCallbacks
    def leech_from_transmission(self, mode: str) -> Any:
        raw, torrent_path = self.make_torrent()
        config_dir = self.path("transmission")
        port = free_port()
        write_transmission_settings(config_dir, port, 2)
        assert TRANSMISSION is not None
        # No -v: Transmission checks a new torrent's files when it adds it;
        # a second check can race the first and stop transmission-cli.
        proc = start_process(
            self, [TRANSMISSION, "-g", config_dir, "-w", self.path("seed"), "-p", str(port),
                   "-M", "-er", torrent_path],
            os.path.join(self.root, "transmission.log"))
        yield wait_until(lambda: "Seeding" in self.log_tail("transmission.log"), WAIT,
                         "Transmission to seed", lambda: self.log_tail("transmission.log"))
        leecher, seen = self.our_torrent(raw, self.path("leech"), mode)
        yield leecher.start()
        leecher.add_peers([(LOOPBACK, port)])
        yield wait_until(lambda: leecher.complete, WAIT, "our download",
                         lambda: f"left={leecher.left} {self.log_tail('transmission.log')}")
        yield leecher.stop()
        proc.kill()
        self.assert_same(self.path("leech"))
        self.assertEqual(seen.seen, {(CRYPTO_RC4, True)})
