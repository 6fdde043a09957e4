"""Tests for txbittorrent.config: TorrentConfig and the Torrent's keywords."""

from __future__ import annotations

import dataclasses
import os

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.config import SwarmConfig, TorrentConfig, TrackerConfig
from txbittorrent.core.metainfo import MetainfoLimits
from txbittorrent.session import SessionConfig
from txbittorrent.testing import FakeReactor, make_torrent
from txbittorrent.torrent import Torrent

RAW = make_torrent(b"x" * 40, 16, name="t")


class FromOptionsTests(SynchronousTestCase):
    """TorrentConfig.from_options: field names, old spellings, unknown keywords."""

    def test_no_options(self) -> None:
        """No options give the defaults, or the base itself."""
        self.assertEqual(TorrentConfig.from_options(None, {}), TorrentConfig())
        base = TorrentConfig(max_peers=7)
        self.assertIs(TorrentConfig.from_options(base, {}), base)

    def test_field_names(self) -> None:
        """Every field may be given by its name."""
        swarm = SwarmConfig(unchoke_slots=9)
        tracker = TrackerConfig(numwant=5)
        limits = MetainfoLimits(max_files=3)
        options = dict(max_peers=4, download_limit=1000.0, upload_limit=2000.0, swarm=swarm,
                       tracker=tracker, limits=limits, disk_threads=1, hash_workers=3,
                       resume_save_interval=5.0, progress_interval=0.5,
                       max_metadata_size=1024, pex=False, dht=False,
                       listen_interfaces=("::1",), session_config=SessionConfig())
        config = TorrentConfig.from_options(None, options)
        self.assertEqual(config, TorrentConfig(**options))  # type: ignore[arg-type]
        self.assertEqual({f.name for f in dataclasses.fields(TorrentConfig)}, set(options))

    def test_base_kept(self) -> None:
        """Options change only their own fields of the base config."""
        base = TorrentConfig(max_peers=7, disk_threads=1, tracker=TrackerConfig(numwant=9))
        config = TorrentConfig.from_options(base, {"upload_limit": 10.0})
        self.assertEqual(config, dataclasses.replace(base, upload_limit=10.0))
        self.assertEqual(base.upload_limit, None)

    def test_swarm_config_spelling(self) -> None:
        """swarm_config is the old name of swarm; None leaves swarm alone."""
        swarm = SwarmConfig(unchoke_slots=2)
        self.assertEqual(TorrentConfig.from_options(None, {"swarm_config": swarm}).swarm, swarm)
        base = TorrentConfig(swarm=swarm)
        self.assertEqual(TorrentConfig.from_options(base, {"swarm_config": None}), base)

    def test_announce_to_all_spelling(self) -> None:
        """announce_to_all sets tracker.announce_to_all, keeping the rest of the tracker config."""
        base = TorrentConfig(tracker=TrackerConfig(numwant=9))
        config = TorrentConfig.from_options(base, {"announce_to_all": True})
        self.assertEqual(config.tracker, TrackerConfig(numwant=9, announce_to_all=True))
        off = TorrentConfig.from_options(config, {"announce_to_all": 0})
        self.assertIs(off.tracker.announce_to_all, False)

    def test_announce_to_all_with_tracker(self) -> None:
        """announce_to_all applies on top of a tracker config given alongside."""
        config = TorrentConfig.from_options(
            None, {"tracker": TrackerConfig(numwant=3), "announce_to_all": True})
        self.assertEqual(config.tracker, TrackerConfig(numwant=3, announce_to_all=True))

    def test_listen_interfaces(self) -> None:
        """listen_interfaces may be any sequence; it is kept as a tuple (None stays None)."""
        config = TorrentConfig.from_options(None, {"listen_interfaces": ["127.0.0.1", "::1"]})
        self.assertEqual(config.listen_interfaces, ("127.0.0.1", "::1"))
        self.assertIsInstance(config.listen_interfaces, tuple)
        base = TorrentConfig(listen_interfaces=("::1",))
        self.assertIsNone(
            TorrentConfig.from_options(base, {"listen_interfaces": None}).listen_interfaces)

    def test_unknown_keyword(self) -> None:
        """An unknown keyword is a TypeError naming it (every one, sorted)."""
        error = self.assertRaises(TypeError, TorrentConfig.from_options, None, {"max_peer": 3})
        self.assertIn("max_peer", str(error))
        error = self.assertRaises(
            TypeError, TorrentConfig.from_options, None, {"zed": 1, "alpha": 2, "max_peers": 1})
        self.assertIn("alpha, zed", str(error))
        self.assertNotIn("max_peers", str(error))

    def test_options_not_changed(self) -> None:
        """The caller's mapping is left as it was."""
        options = {"swarm_config": SwarmConfig(), "announce_to_all": True,
                   "listen_interfaces": ["::1"]}
        copy = dict(options)
        TorrentConfig.from_options(None, options)
        self.assertEqual(options, copy)


class SwarmConfigTests(SynchronousTestCase):
    """TorrentConfig.swarm_config applies max_peers."""

    def test_no_max_peers(self) -> None:
        """Without max_peers the swarm config is the one given."""
        swarm = SwarmConfig(max_connections=12)
        self.assertIs(TorrentConfig(swarm=swarm).swarm_config(), swarm)

    def test_max_peers(self) -> None:
        """max_peers replaces max_connections and nothing else."""
        swarm = SwarmConfig(max_connections=12, unchoke_slots=3)
        self.assertEqual(TorrentConfig(swarm=swarm, max_peers=5).swarm_config(),
                         dataclasses.replace(swarm, max_connections=5))
        self.assertEqual(TorrentConfig(max_peers=0).swarm_config().max_connections, 0)


class TorrentKeywordTests(SynchronousTestCase):
    """Torrent's keyword options land in torrent.config (constructed, never started)."""

    def setUp(self) -> None:
        self.basedir = self.mktemp()
        os.makedirs(self.basedir)

    def test_old_keywords(self) -> None:
        """max_peers, announce_to_all and listen_interfaces reach the torrent's config."""
        torrent = Torrent(RAW, self.basedir, reactor=FakeReactor(), max_peers=3,
                          announce_to_all=True, listen_interfaces=["127.0.0.1"])
        config = torrent.config
        self.assertEqual(config.max_peers, 3)
        self.assertIs(config.tracker.announce_to_all, True)
        self.assertEqual(config.listen_interfaces, ("127.0.0.1",))
        self.assertEqual(config.swarm_config().max_connections, 3)
        self.assertEqual(dataclasses.replace(config, max_peers=None, listen_interfaces=None,
                                             tracker=TrackerConfig()), TorrentConfig())
        self.assertEqual(torrent.make_session().listen_interfaces, ("127.0.0.1",))
        self.assertEqual(os.listdir(self.basedir), [])

    def test_config_and_keywords(self) -> None:
        """A config given to the Torrent is the base its keywords change."""
        base = TorrentConfig(disk_threads=1, max_peers=9)
        torrent = Torrent(RAW, self.basedir, reactor=FakeReactor(), config=base, max_peers=2)
        self.assertEqual(torrent.config, dataclasses.replace(base, max_peers=2))
        self.assertIs(Torrent(RAW, self.basedir, reactor=FakeReactor(), config=base).config, base)

    def test_unknown_keyword(self) -> None:
        """An unknown Torrent keyword is a TypeError naming it."""
        error = self.assertRaises(TypeError, Torrent, RAW, self.basedir, reactor=FakeReactor(),
                                  max_peerz=3)
        self.assertIn("max_peerz", str(error))
