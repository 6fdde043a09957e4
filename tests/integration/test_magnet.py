"""A torrent made from a magnet link (or a bare info hash) against a real
libtorrent seeder: before the metadata it announces to the magnet's
tracker, dials its ``x.pe`` peers and exchanges extension handshakes."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests.integration import ltutil
from tests.integration.temproot import TempRootCase
from txbittorrent import Torrent
from txbittorrent.core.metainfo import parse
from txbittorrent.state import TorrentState
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, wait_until
from txbittorrent.tracker.server import start_tracker

LOOPBACK = "127.0.0.1"
SIZES = {"a.bin": 300_000, "b/c.bin": 123_457}


class NoPluginTorrent(Torrent):
    """A torrent without BEP 10 plug-ins: it never fetches the metadata
    itself, so the state before the metadata can be looked at."""

    def make_extensions(self, context: Any) -> list[Any]:
        return []


class MagnetTests(TempRootCase):
    """Torrents without their metadata, against libtorrent."""

    timeout = 60

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.make_root()
        self.data = make_files(os.path.join(self.root, "seed", "tree"), SIZES)
        self.raw = create_torrent(os.path.join(self.root, "seed", "tree"), piece_length=16384)
        self.info_hash = parse(self.raw).info_hash
        self.session = ltutil.make_session(self)
        handle = ltutil.add_torrent(self.session, self.raw, os.path.join(self.root, "seed"))
        ltutil.wait_until_seeding(handle, 30)
        self.lt_address = ltutil.endpoint(self.session)

    def torrent(self, source: str) -> Torrent:
        t = NoPluginTorrent(source, basedir=os.path.join(self.root, "leech"), reactor=reactor,
                            listen_interfaces=[LOOPBACK])
        self.addCleanup(t.close)
        return t

    @inlineCallbacks
    def test_magnet_connects_and_announces(self) -> Any:
        """From a magnet link: state metadata, an announce to its tracker, a
        connection to its x.pe peer with libtorrent's extension handshake."""
        tracker = yield start_tracker(reactor, LOOPBACK, interval=30)
        self.addCleanup(tracker.stop)
        host, port = self.lt_address
        magnet = (f"magnet:?xt=urn:btih:{self.info_hash.hex()}&dn=tree"
                  f"&tr={quote(tracker.announce_url, safe='')}&x.pe={host}:{port}")
        t = self.torrent(magnet)
        self.assertFalse(t.has_metadata)
        self.assertEqual((t.name, t.size, t.piece_count), ("tree", 0, 0))
        yield t.start()
        self.assertIs(t.state, TorrentState.METADATA)
        self.assertEqual(t.state, "active")
        yield wait_until(lambda: any("ut_metadata" in p.extensions for p in t.peers()), 20,
                         "libtorrent's extension handshake",
                         lambda: repr(t.peers()))
        self.assertFalse(t.has_metadata)
        (peer,) = t.peers()
        self.assertEqual(peer.address, self.lt_address)
        self.assertIn("libtorrent", peer.client)
        self.assertEqual(peer.progress, 0.0)
        yield wait_until(
            lambda: any(r.peer_id == t.peer_id for r in tracker.state.peers(self.info_hash)),
            20, "our announce")
        (status,) = t.trackers()[0]
        self.assertEqual((status.url, status.failures), (tracker.announce_url, 0))
        self.assertEqual(t.downloaded, 0, "no piece moves before the metadata")
        yield t.stop()
        self.assertIs(t.state, TorrentState.STOPPED)

    @inlineCallbacks
    def test_bare_info_hash_with_a_peer(self) -> Any:
        """From a bare info hash and a peer given by hand: the connection and
        the extension handshake happen."""
        t = self.torrent(self.info_hash.hex())
        yield t.start()
        self.assertIs(t.state, TorrentState.METADATA)
        self.assertEqual(t.add_peers([self.lt_address]), 1)
        yield wait_until(lambda: any("ut_metadata" in p.extensions for p in t.peers()), 20,
                         "libtorrent's extension handshake")
        self.assertEqual(t.trackers(), ())

    @inlineCallbacks
    def test_metadata_given_later_downloads(self) -> Any:
        """Once the metadata is set on a running magnet torrent, the peers
        already connected learn our pieces and the download completes."""
        host, port = self.lt_address
        t = self.torrent(f"magnet:?xt=urn:btih:{self.info_hash.hex()}&x.pe={host}:{port}")
        states: list[str] = []
        t.subscribe(lambda e: states.append(str(e.new)), kinds="state_changed")
        yield t.start()
        yield wait_until(lambda: any("ut_metadata" in p.extensions for p in t.peers()), 20,
                         "libtorrent's extension handshake")
        t.set_metainfo(parse(self.raw))
        self.assertTrue(t.has_metadata)
        yield wait_until(lambda: t.complete, 30, "the download",
                         lambda: f"left={t.left} peers={t.peers()!r}")
        self.assertEqual(t.peers()[0].address, self.lt_address, "the same connection")
        self.assertEqual(states, ["metadata", "checking", "downloading", "seeding"])
        yield t.stop()
        for name in SIZES:
            with open(os.path.join(self.root, "leech", "tree", name), "rb") as f:
                self.assertEqual(f.read(), self.data[name], name)

    @inlineCallbacks
    def test_data_already_on_disk_is_checked(self) -> Any:
        """A running magnet torrent whose files are already on disk checks
        them once the metadata arrives, and seeds without downloading."""
        make_files(os.path.join(self.root, "leech", "tree"), SIZES)  # the same bytes
        host, port = self.lt_address
        t = Torrent(f"magnet:?xt=urn:btih:{self.info_hash.hex()}&x.pe={host}:{port}",
                    basedir=os.path.join(self.root, "leech"), reactor=reactor,
                    listen_interfaces=[LOOPBACK])
        self.addCleanup(t.close)
        states: list[str] = []
        t.subscribe(lambda e: states.append(str(e.new)), kinds="state_changed")
        yield t.start()
        yield wait_until(lambda: t.seed, 20, "the check", lambda: f"{t.state} left={t.left}")
        self.assertEqual(t.downloaded, 0)
        self.assertEqual(states, ["metadata", "checking", "seeding"])

