"""Torrent.set_rate_limits: the torrent's own throttles, live and for the
next start."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from txbittorrent.session import Session
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files

HASH = "0123456789abcdef0123456789abcdef01234567"


class SetRateLimitsTests(TestCase):
    """Per-torrent limits changed at run time."""

    timeout = 30

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        self.session = Session(reactor, listen_interfaces=["127.0.0.1"])
        yield self.session.start()
        self.addCleanup(self.session.stop)

    def test_stopped_keeps_them_in_config(self) -> None:
        """A stopped torrent keeps the limits in its config."""
        torrent = self.session.add(bytes.fromhex(HASH), self.mktemp())
        torrent.set_rate_limits(1000, None)
        self.assertEqual((torrent.config.download_limit, torrent.config.upload_limit),
                         (1000, None))
        torrent.set_rate_limits(None, 2000.5)
        self.assertEqual((torrent.config.download_limit, torrent.config.upload_limit),
                         (None, 2000.5))

    def test_bad_values(self) -> None:
        """Zero or negative limits are a ValueError and change nothing."""
        torrent = self.session.add(bytes.fromhex(HASH), self.mktemp())
        for down, up in [(0, None), (None, -1), (-5, 10)]:
            self.assertRaises(ValueError, torrent.set_rate_limits, down, up)
        self.assertEqual((torrent.config.download_limit, torrent.config.upload_limit),
                         (None, None))

    @inlineCallbacks
    def test_running_and_restarted(self) -> Generator[Any, Any, None]:
        """A running torrent's throttles change at once; after a stop and
        start the new swarm gets the same limits."""
        root = os.path.abspath(self.mktemp())
        make_files(os.path.join(root, "t"), {"a": 40_000}, seed=3)
        torrent = self.session.add(create_torrent(os.path.join(root, "t"),
                                                  piece_length=16384), root)
        self.addCleanup(lambda: self.session.remove(torrent.info_hash))
        yield torrent.start()
        torrent.set_rate_limits(5000, 7000)
        swarm = torrent._run.swarm  # type: ignore[union-attr]
        self.assertEqual((swarm.download_throttle.rate, swarm.upload_throttle.rate),
                         (5000, 7000))
        torrent.set_rate_limits(None, 100)
        self.assertEqual((swarm.download_throttle.rate, swarm.upload_throttle.rate),
                         (None, 100))
        yield torrent.stop()
        yield torrent.start()
        swarm = torrent._run.swarm  # type: ignore[union-attr]
        self.assertIsNot(swarm, None)
        self.assertEqual((swarm.download_throttle.rate, swarm.upload_throttle.rate),
                         (None, 100))
