"""``txbittorrent tracker`` with Transmission and qBittorrent on 127.0.0.1:
each announces to our tracker over HTTP and over UDP, completes a swarm with
a libtorrent peer, and the scrape counts are right at the end.

* Transmission (Debian's ``transmission-cli`` 3.00) seeds (``-v``: it
  verifies the data, announcing event=stopped then event=started); a
  libtorrent leecher learns of it from the tracker and dials it.  Transmission is the
  seeder because it ignores 127.x peers handed out by a tracker, so it never
  dials anyone on loopback: the other side has to.
* qBittorrent (Debian's ``qbittorrent-nox``, driven over its Web API with
  ``qbittorrent-api``) leeches from a libtorrent seeder it learns of from the
  tracker.  It starts on a fresh profile written by the test (legal notice
  accepted, WebUI on 127.0.0.1 without a password for localhost, DHT, LSD,
  PeX, UPnP/NAT-PMP off, bound to ``lo``); the same preferences are set again
  through the API and read back.

Every client has DHT, local discovery, PeX and port mapping off, so the
tracker is the only way the peers meet.  The tracker runs as a child process
(the command as a user runs it) on free ports, HTTP on 127.0.0.1 and UDP on a
loopback address of each test's own (127.0.0.11, .12, ...: see ``setUp``);
the tests block on real time (``ltutil.wait_for``, bounded), which is fine:
nothing they wait for runs on this process's reactor.  Every process is
killed and every session closed in cleanup.  A test skips when its client's
binary or library is missing.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
from typing import Any

from twisted.trial.unittest import SkipTest

from tests.integration import ltutil
from tests.integration.engine import write_transmission_settings
from tests.integration.trackerproc import LOOPBACK, SIZES, TrackerChild, free_port
from tests.integration.temproot import TempRootCase
from txbittorrent.core.bencoding import decode
from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, same_files

try:
    import qbittorrentapi
except ImportError:  # pragma: no cover - the [test] extra installs it
    qbittorrentapi = None

TRANSMISSION = shutil.which("transmission-cli")
QBITTORRENT = shutil.which("qbittorrent-nox")
KiB = 1024
WAIT = 90.0
"""Seconds any one wait may take."""
_UDP_HOSTS = itertools.count(11)
"""The last byte of each test's UDP tracker address (127.0.0.N)."""


class InteropTestCase(TempRootCase):
    """Our tracker as a child process; helpers shared by the client tests."""

    timeout = 240

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.make_root()
        self.tracker = TrackerChild(self, self.root, f"127.0.0.{next(_UDP_HOSTS)}")
        self.http_port = self.tracker.http_port
        self.http_url, self.udp_url = self.tracker.http_url, self.tracker.udp_url

    def stop_tracker(self) -> None:
        """SIGTERM: the tracker stops cleanly and exits 0."""
        self.tracker.stop()

    def start_process(self, argv: list[str], name: str, **options: Any) -> subprocess.Popen[bytes]:
        """A client process logging to root/NAME.log, SIGKILLed in cleanup."""
        log = open(os.path.join(self.root, f"{name}.log"), "wb")
        self.addCleanup(log.close)
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, **options)

        def kill() -> None:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)

        self.addCleanup(kill)
        return proc

    def client_log(self, name: str) -> str:
        with open(os.path.join(self.root, f"{name}.log"), "rb") as f:
            return f.read()[-3000:].decode("utf-8", "replace")

    def scrape(self, info_hash: bytes) -> tuple[int, int, int]:
        """(complete, downloaded, incomplete) from our tracker's HTTP scrape,
        over a raw socket (one HTTP/1.0 request)."""
        query = "".join(f"%{b:02X}" for b in info_hash)
        request = (f"GET /scrape?info_hash={query} HTTP/1.0\r\n"
                   f"Host: {LOOPBACK}:{self.http_port}\r\n\r\n").encode()
        with socket.create_connection((LOOPBACK, self.http_port), timeout=10) as s:
            s.sendall(request)
            reply = bytearray()
            while chunk := s.recv(65536):
                reply += chunk
        head, _, body = bytes(reply).partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.0 200") or head.startswith(b"HTTP/1.1 200"),
                        head)
        entry = decode(body)[b"files"].get(info_hash, {})
        return (entry.get(b"complete", 0), entry.get(b"downloaded", 0),
                entry.get(b"incomplete", 0))

    def wait_scrape(self, info_hash: bytes, expected: tuple[int, int, int]) -> None:
        seen: list[Any] = []

        def matches() -> bool:
            seen[:] = [self.scrape(info_hash)]
            return seen[0] == expected

        ltutil.wait_for(matches, WAIT, f"scrape {expected}", lambda: repr(seen))

    def make_torrent(self, tracker_url: str) -> tuple[bytes, bytes, str]:
        """(the .torrent, its info hash, its path) for SIZES under root/seed/album."""
        source = os.path.join(self.root, "seed", "album")
        make_files(source, {k.split("/", 1)[1]: v for k, v in SIZES.items()}, seed=7)
        raw = create_torrent(source, trackers=[tracker_url], piece_length=64 * KiB)
        path = os.path.join(self.root, "album.torrent")
        with open(path, "wb") as f:
            f.write(raw)
        return raw, parse(raw).info_hash, path

    def assert_same(self, directory: str) -> None:
        names = [k.split("/", 1)[1] for k in SIZES]
        self.assertEqual(same_files(os.path.join(self.root, "seed", "album"),
                                    os.path.join(directory, "album"), names), [])


class TransmissionTrackerTests(InteropTestCase):
    """transmission-cli seeds through our tracker; libtorrent dials it and leeches."""

    def setUp(self) -> None:
        if TRANSMISSION is None:
            raise SkipTest("transmission-cli is not installed (apt-get install transmission-cli)")
        super().setUp()

    def seed_with_transmission(self, tracker_url: str) -> None:
        raw, info_hash, path = self.make_torrent(tracker_url)
        config_dir = os.path.join(self.root, "transmission")
        os.makedirs(config_dir)
        port = free_port()
        write_transmission_settings(config_dir, port, 1)
        assert TRANSMISSION is not None
        proc = self.start_process(
            # No -v: Transmission checks a new torrent's files when it adds
            # it; a second check can race the first and stop transmission-cli.
            [TRANSMISSION, "-g", config_dir, "-w", os.path.join(self.root, "seed"),
             "-p", str(port), "-M", path],
            "transmission", env={"HOME": self.root, "PATH": os.environ.get("PATH", "")})
        # Transmission's announce as a seeder: one complete peer
        ltutil.wait_for(lambda: proc.poll() is None and self.scrape(info_hash) == (1, 0, 0),
                        WAIT, "Transmission's seeding announce",
                        lambda: self.client_log("transmission"))
        # TCP only: Transmission's uTP is off, and libtorrent's first try over
        # uTP to it can stall the connection for longer than the test waits
        leecher = ltutil.make_session(self, enable_outgoing_utp=False,
                                      enable_incoming_utp=False)
        leech = ltutil.add_torrent(leecher, raw, os.path.join(self.root, "leech"))
        ltutil.wait_until_seeding(leech, WAIT)
        self.assert_same(os.path.join(self.root, "leech"))
        self.wait_scrape(info_hash, (2, 1, 0))
        leecher.remove_torrent(leech)
        self.wait_scrape(info_hash, (1, 1, 0))
        # Not checked: Transmission's event=stopped on SIGINT.  transmission-cli
        # 3.00 exits without waiting for its HTTP stop announce (seen: none
        # reaches the tracker; the UDP one usually does), so it is killed.
        proc.kill()
        self.stop_tracker()

    def test_http(self) -> None:
        """Transmission seeds through our tracker over HTTP; a libtorrent leecher
        completes; scrape counts the seeders, the download and the stops."""
        self.seed_with_transmission(self.http_url)

    def test_udp(self) -> None:
        """Transmission seeds through our tracker over UDP; a libtorrent leecher
        completes; scrape counts the seeders, the download and the stops."""
        self.seed_with_transmission(self.udp_url)


QBT_CONFIG = """\
[LegalNotice]
Accepted=true

[BitTorrent]
Session\\DHTEnabled=false
Session\\LSDEnabled=false
Session\\PeXEnabled=false
Session\\Port={port}
Session\\Interface=lo
Session\\InterfaceName=lo
Session\\InterfaceAddress=127.0.0.1
Session\\MultiConnectionsPerIp=true

[Network]
PortForwardingEnabled=false

[Preferences]
Connection\\ResolvePeerCountries=false
WebUI\\Address=127.0.0.1
WebUI\\Port={webui}
WebUI\\LocalHostAuth=false
WebUI\\UPnP=false
"""
"""qBittorrent 4.5's profile: legal notice accepted (4.5.2 has no
``--confirm-legal-notice``; without this it waits on stdin), no discovery, the
WebUI on loopback without a password for localhost (4.5's default login is
admin/adminadmin)."""

QBT_PREFERENCES = {
    "dht": False, "lsd": False, "pex": False, "upnp": False,
    "random_port": False, "enable_multi_connections_from_same_ip": True,
    "current_network_interface": "lo", "current_interface_address": LOOPBACK,
    "resolve_peer_countries": False, "anonymous_mode": False,
}


class QBittorrentTrackerTests(InteropTestCase):
    """qbittorrent-nox leeches through our tracker from a libtorrent seeder."""

    def setUp(self) -> None:
        if QBITTORRENT is None:
            raise SkipTest("qbittorrent-nox is not installed (apt-get install qbittorrent-nox)")
        if qbittorrentapi is None:
            raise SkipTest("qbittorrent-api is not installed (the [test] extra)")
        super().setUp()
        profile = os.path.join(self.root, "qbt")
        config_dir = os.path.join(profile, "qBittorrent", "config")
        os.makedirs(config_dir)
        self.qbt_port = free_port()
        webui = free_port()
        with open(os.path.join(config_dir, "qBittorrent.conf"), "w") as f:
            f.write(QBT_CONFIG.format(port=self.qbt_port, webui=webui))
        assert QBITTORRENT is not None
        self.qbt = self.start_process(
            [QBITTORRENT, f"--profile={profile}", f"--webui-port={webui}"], "qbt",
            env={"HOME": self.root, "PATH": os.environ.get("PATH", "")})
        self.client = qbittorrentapi.Client(host=LOOPBACK, port=webui, username="admin",
                                            password="adminadmin", REQUESTS_ARGS={"timeout": 10})

        def logged_in() -> bool:
            if self.qbt.poll() is not None:
                self.fail(f"qbittorrent-nox ended early:\n{self.client_log('qbt')}")
            try:
                self.client.auth_log_in()
            except qbittorrentapi.APIConnectionError:
                return False
            return True

        ltutil.wait_for(logged_in, 30, "qBittorrent's Web API", lambda: self.client_log("qbt"))
        self.client.app_set_preferences(dict(QBT_PREFERENCES, listen_port=self.qbt_port))
        preferences = self.client.app_preferences()
        self.assertEqual({k: preferences[k] for k in QBT_PREFERENCES}, QBT_PREFERENCES)
        self.assertEqual(preferences["listen_port"], self.qbt_port)

    def leech_with_qbittorrent(self, tracker_url: str) -> None:
        raw, info_hash, path = self.make_torrent(tracker_url)
        seeder = ltutil.make_session(self)
        seed = ltutil.add_torrent(seeder, raw, os.path.join(self.root, "seed"))
        ltutil.wait_until_seeding(seed, WAIT)
        self.wait_scrape(info_hash, (1, 0, 0))
        save = os.path.join(self.root, "qbt-downloads")
        self.assertEqual(self.client.torrents_add(torrent_files=path, save_path=save), "Ok.")
        seen: list[Any] = []

        def complete() -> bool:
            seen[:] = self.client.torrents_info(torrent_hashes=info_hash.hex())
            return bool(seen) and seen[0]["progress"] == 1.0

        ltutil.wait_for(complete, WAIT, "qBittorrent to complete",
                        lambda: repr([(t["state"], t["progress"], t["num_seeds"]) for t in seen]))
        trackers = self.client.torrents_trackers(torrent_hash=info_hash.hex())
        ours = [t for t in trackers if t["url"] == tracker_url]
        self.assertEqual(len(ours), 1, trackers)
        self.assertEqual(ours[0]["status"], 2, ours)  # 2: working
        self.assert_same(save)
        self.wait_scrape(info_hash, (2, 1, 0))
        # deleting the torrent announces event=stopped
        self.client.torrents_delete(delete_files=False, torrent_hashes=info_hash.hex())
        self.wait_scrape(info_hash, (1, 1, 0))
        self.client.app_shutdown()
        self.assertEqual(self.qbt.wait(timeout=WAIT), 0, self.client_log("qbt"))
        self.stop_tracker()

    def test_http(self) -> None:
        """qBittorrent leeches from a libtorrent seeder found through our tracker
        over HTTP; scrape counts the completed download and the stop."""
        self.leech_with_qbittorrent(self.http_url)

    def test_udp(self) -> None:
        """qBittorrent leeches from a libtorrent seeder found through our tracker
        over UDP; scrape counts the completed download and the stop."""
        self.leech_with_qbittorrent(self.udp_url)
