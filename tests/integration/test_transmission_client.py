"""Real Transmission clients against the daemon's RPC, on 127.0.0.1.

A ``DaemonService`` runs in-process (its RPC at /transmission/rpc); a
libtorrent session on 127.0.0.1 seeds a two-file torrent.
Debian's ``transmission-remote`` (3.00) adds it by magnet (with ``x.pe``
naming the seeder) and a local .torrent FILE (which transmission-remote
reads and sends as base64 ``metainfo``; its data is already in the
download directory), then lists, shows details and files, stops, starts,
limits (globally and per torrent) and removes them; its output is parsed
and checked against the daemon's state.  ``transmission-rpc`` (PyPI) adds,
reads and removes through its own client (run in a thread: it blocks).

Bounded: each child process is killed after ``WAIT`` seconds, each wait
has a deadline, the daemon is stopped and the seeder closed in cleanup.
"""

from __future__ import annotations

import io
import os
import pathlib
import re
import shutil
import time
from collections.abc import Generator
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration import ltutil
from tests.integration.children import Child
from txbittorrent.daemon.service import DaemonConfig, DaemonService
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files
from txbittorrent.web.transmission.ids import RUN_BASE

REMOTE = shutil.which("transmission-remote") or "/usr/bin/transmission-remote"
WAIT = 60.0
PIECE = 32 * 1024
FILES = {"ep1.mkv": 300_000, "notes/ep1.srt": 5_000}
LOCAL_FILES = {"a.bin": 100_000}


class TransmissionClientTests(TestCase):
    """transmission-remote and transmission-rpc against the daemon."""

    timeout = 240

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        ltutil.skip_without_libtorrent()
        if not os.path.exists(REMOTE):
            raise SkipTest("transmission-remote (Debian's transmission-cli) is not installed")
        self.base = os.path.abspath(self.mktemp())
        seed_dir = os.path.join(self.base, "seed")
        make_files(os.path.join(seed_dir, "show"), FILES, seed=11)
        self.raw = create_torrent(os.path.join(seed_dir, "show"), piece_length=PIECE)
        self.lt = ltutil.make_session(self, enable_outgoing_utp=False, enable_incoming_utp=False)
        handle = ltutil.add_torrent(self.lt, self.raw, seed_dir)
        ltutil.wait_until_seeding(handle, WAIT)
        info = ltutil.lt.torrent_info(self.raw)
        self.hash = str(info.info_hash())
        host, port = ltutil.endpoint(self.lt)
        self.magnet = f"magnet:?xt=urn:btih:{self.hash}&dn=show&x.pe={host}:{port}"

        self.download_dir = os.path.join(self.base, "downloads")
        make_files(os.path.join(self.download_dir, "local"), LOCAL_FILES, seed=12)
        self.local_raw = create_torrent(os.path.join(self.download_dir, "local"),
                                        piece_length=PIECE)
        self.local_path = os.path.join(self.base, "local.torrent")
        with open(self.local_path, "wb") as f:
            f.write(self.local_raw)

        out = io.StringIO()
        config = DaemonConfig(state_dir=os.path.join(self.base, "state"),
                              download_dir=self.download_dir,
                              listen=("tcp:0:interface=127.0.0.1",))
        self.daemon = DaemonService(config, reactor=reactor, out=out)
        self.daemon.startService()
        self.addCleanup(lambda: self.daemon.stopService() if self.daemon.running else None)
        yield self.daemon.started
        found = re.search(r"password (\S+)", out.getvalue())
        assert found is not None
        self.password = found.group(1)
        assert self.daemon.ports
        self.port = self.daemon.ports[0].getHost().port
        assert self.daemon.session is not None and self.daemon.store is not None
        self.session = self.daemon.session
        self.store = self.daemon.store

    # -- helpers -----------------------------------------------------------------------

    @inlineCallbacks
    def remote(self, *args: str, expect: int = 0) -> Generator[Any, Any, str]:
        """Run transmission-remote against the daemon; its stdout."""
        protocol = Child()
        argv = [REMOTE, f"127.0.0.1:{self.port}", "-n", f"admin:{self.password}", *args]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": self.base}
        protocol.process = reactor.spawnProcess(protocol, REMOTE, argv, env=env)
        self.addCleanup(protocol.kill)
        timer = reactor.callLater(WAIT, protocol.kill)
        code = yield protocol.ended
        if timer.active():
            timer.cancel()
        out = protocol.out.decode("utf-8", "replace")
        self.assertEqual(code, expect, f"{args}: {out} {protocol.err.decode()}")
        return out

    @inlineCallbacks
    def listing(self) -> Generator[Any, Any, dict[int, dict[str, str]]]:
        """``-l`` parsed: id -> its columns."""
        out = yield self.remote("-l")
        lines = out.splitlines()
        self.assertEqual(lines[0].split(), ["ID", "Done", "Have", "ETA", "Up", "Down", "Ratio",
                                            "Status", "Name"])
        self.assertTrue(lines[-1].startswith("Sum:"), out)
        rows = {}
        pattern = re.compile(
            r"^\s*(\d+)\*?\s+(\S+)\s+(.+?)\s{2,}(\S+(?: \S+)?)\s+([\d.]+)\s+([\d.]+)\s+(\S+)\s+"
            r"(Idle|Seeding|Stopped|Downloading|Up & Down|Uploading|Verifying.*?|Queued|Finished"
            r"|Will Verify.*?)\s+(.+)$")
        for line in lines[1:-1]:
            match = pattern.match(line)
            self.assertIsNotNone(match, line)
            assert match is not None
            rows[int(match.group(1))] = {
                "done": match.group(2), "have": match.group(3), "eta": match.group(4),
                "ratio": match.group(7), "status": match.group(8), "name": match.group(9)}
        return rows

    @inlineCallbacks
    def wait_listing(self, check: Any, what: str) -> Generator[Any, Any, dict[int, Any]]:
        """Poll ``-l`` until ``check(rows)`` holds (at most WAIT seconds)."""
        deadline = time.monotonic() + WAIT
        while True:
            rows = yield self.listing()
            if check(rows):
                return rows
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}: {rows}")
            yield deferLater(reactor, 0.3, lambda: None)

    @staticmethod
    def details(out: str) -> dict[str, str]:
        """``-i`` output: "Key: value" lines."""
        pairs = {}
        for line in out.splitlines():
            key, sep, value = line.strip().partition(": ")
            if sep:
                pairs[key] = value.strip()
        return pairs

    # -- transmission-remote -------------------------------------------------------------

    @inlineCallbacks
    def test_transmission_remote(self) -> Generator[Any, Any, None]:
        """-l, -a (magnet and file), -i, -f, -S/-s, -d/-u, -si, -st, -r
        through Debian's transmission-remote, outputs parsed and checked."""
        rows = yield self.listing()
        self.assertEqual(rows, {})
        out = yield self.remote("-a", self.magnet)
        self.assertIn('responded: "success"', out)
        out = yield self.remote("-a", self.local_path)
        self.assertIn('responded: "success"', out)
        local_hash = self.session.torrents()[1].info_hash.hex()
        magnet_id = self.store.get(self.hash).seq
        local_id = self.store.get(local_hash).seq
        self.assertEqual(self.store.get(local_hash).source, self.local_raw)

        rows = yield self.wait_listing(
            lambda r: len(r) == 2 and all(x["done"] == "100%" for x in r.values()),
            "both torrents complete")
        self.assertEqual(set(rows), {magnet_id, local_id})
        self.assertEqual((rows[magnet_id]["name"], rows[local_id]["name"]), ("show", "local"))
        self.assertEqual(rows[magnet_id]["eta"], "Done")
        self.assertIn(rows[magnet_id]["status"], ("Idle", "Seeding"))
        self.assertEqual(rows[magnet_id]["have"], "305.0 kB")

        out = yield self.remote("-t", str(magnet_id), "-i")
        info = self.details(out)
        self.assertEqual((info["Id"], info["Name"], info["Hash"]),
                         (str(magnet_id), "show", self.hash))
        self.assertTrue(info["Magnet"].startswith(f"magnet:?xt=urn:btih:{self.hash}"))
        self.assertEqual(info["Percent Done"], "100%")
        self.assertEqual(info["Location"], self.download_dir)
        self.assertEqual(info["Total size"], "305.0 kB (305.0 kB wanted)")
        self.assertEqual(info["Have"], "305.0 kB (305.0 kB verified)")
        self.assertEqual(info["Piece Count"], "10")
        self.assertEqual(info["Piece Size"], "32.00 KiB")
        self.assertEqual(info["Public torrent"], "Yes")
        self.assertEqual(info["Download Limit"], "Unlimited")

        out = yield self.remote("-t", str(magnet_id), "-f")
        lines = out.splitlines()
        self.assertEqual(lines[0], "show (2 files):")
        files = [re.match(r"\s*(\d+): +(\d+)% (\S+) +(Yes|No) +(.+?)  (.+)$", line)
                 for line in lines[2:]]
        self.assertEqual([(m.group(1), m.group(2), m.group(3), m.group(4), m.group(6))
                          for m in files if m is not None],
                         [("0", "100", "Normal", "Yes", "show/ep1.mkv"),
                          ("1", "100", "Normal", "Yes", "show/notes/ep1.srt")])

        out = yield self.remote("-t", str(magnet_id), "-S")
        self.assertIn('responded: "success"', out)
        rows = yield self.listing()
        self.assertEqual(rows[magnet_id]["status"], "Stopped")
        self.assertEqual(self.store.get(self.hash).wanted, "stopped")
        out = yield self.remote("-t", str(magnet_id), "-s")
        self.assertIn('responded: "success"', out)
        rows = yield self.listing()
        self.assertIn(rows[magnet_id]["status"], ("Idle", "Seeding"))

        yield self.remote("-d", "100", "-u", "50")
        self.assertEqual((self.session.download_throttle.rate, self.session.upload_throttle.rate),
                         (100_000, 50_000))
        out = yield self.remote("-si")
        self.assertIn("Download speed limit: 100 kB/s (Enabled limit: 100 kB/s;", out)
        self.assertIn("Upload speed limit: 50 kB/s (Enabled limit: 50 kB/s;", out)
        self.assertIn(f"Listenport: {self.session.port}", out)
        self.assertIn("RPC version: 17", out)
        yield self.remote("-D", "-U")
        self.assertEqual((self.session.download_throttle.rate, self.session.upload_throttle.rate),
                         (None, None))
        yield self.remote("-t", str(local_id), "-d", "20")
        torrent = self.session.get(bytes.fromhex(local_hash))
        self.assertEqual(torrent.config.download_limit, 20_000)
        out = yield self.remote("-t", str(local_id), "-i")
        self.assertEqual(self.details(out)["Download Limit"], "20 kB/s")
        out = yield self.remote("-st")
        self.assertIn("CURRENT SESSION", out)
        self.assertIn("Downloaded: 305.0 kB", out)

        out = yield self.remote("-t", str(magnet_id), "-r")
        self.assertIn('responded: "success"', out)
        rows = yield self.listing()
        self.assertEqual(set(rows), {local_id})
        self.assertIsNone(self.store.get(self.hash))
        self.assertTrue(os.path.exists(os.path.join(self.download_dir, "show", "ep1.mkv")))
        yield self.remote("-t", local_hash, "--remove-and-delete")
        self.assertEqual(self.session.torrents(), [])
        self.assertFalse(os.path.exists(os.path.join(self.download_dir, "local", "a.bin")))

    @inlineCallbacks
    def test_remote_refused(self) -> Generator[Any, Any, None]:
        """A wrong password fails (curl gets 401 after the challenge)."""
        protocol = Child()
        argv = [REMOTE, f"127.0.0.1:{self.port}", "-n", "admin:wrong", "-l"]
        protocol.process = reactor.spawnProcess(protocol, REMOTE, argv, env={"HOME": self.base})
        self.addCleanup(protocol.kill)
        timer = reactor.callLater(WAIT, protocol.kill)
        code = yield protocol.ended
        timer.cancel()
        self.assertNotEqual(code, 0)
        self.assertIn("401", protocol.out.decode() + protocol.err.decode())

    # -- transmission-rpc ----------------------------------------------------------------

    @inlineCallbacks
    def test_transmission_rpc(self) -> Generator[Any, Any, None]:
        """transmission-rpc (PyPI) adds a magnet and a .torrent, reads them
        once downloaded and removes one with its data."""
        try:
            from transmission_rpc import Client
        except ImportError:
            raise SkipTest("transmission-rpc is not installed") from None

        def run() -> dict[str, Any]:
            client = Client(host="127.0.0.1", port=self.port, username="admin",
                            password=self.password, timeout=30)
            session = client.get_session()
            added = client.add_torrent(self.magnet, labels=["tv"])
            local = client.add_torrent(pathlib.Path(self.local_path))
            deadline = time.monotonic() + WAIT
            while True:
                torrent = client.get_torrent(added.id)
                if torrent.percent_done >= 1.0 or time.monotonic() > deadline:
                    break
                time.sleep(0.3)
            listed = client.get_torrents()
            files = torrent.get_files()
            client.remove_torrent(added.id, delete_data=True)
            after = client.get_torrents(arguments=["id", "name"])
            return {"session": session, "added": added, "local": local, "torrent": torrent,
                    "listed": listed, "files": files, "after": after}

        result = yield deferToThread(run)
        self.assertEqual(result["session"].rpc_version, 17)
        self.assertEqual(result["added"].hash_string, self.hash)
        self.assertIs(type(result["added"].id), int)
        self.assertLess(result["added"].id, RUN_BASE)  # a store seq, not a per-run number
        self.assertEqual(result["local"].id, self.store.get(result["local"].hash_string).seq)
        torrent = result["torrent"]
        self.assertEqual(torrent.percent_done, 1.0)
        self.assertEqual((torrent.name, torrent.total_size, torrent.status), ("show", 305_000,
                                                                              "seeding"))
        self.assertEqual(torrent.labels, ["tv"])
        self.assertEqual(torrent.download_dir, self.download_dir)
        self.assertEqual([(f.name, f.size, f.completed, f.selected) for f in result["files"]],
                         [("show/ep1.mkv", 300_000, 300_000, True),
                          ("show/notes/ep1.srt", 5_000, 5_000, True)])
        self.assertEqual(sorted(t.name for t in result["listed"]), ["local", "show"])
        self.assertEqual([t.name for t in result["after"]], ["local"])
        self.assertEqual([t.info_hash.hex() for t in self.session.torrents()],
                         [result["local"].hash_string])
        self.assertFalse(os.path.exists(os.path.join(self.download_dir, "show", "ep1.mkv")))
