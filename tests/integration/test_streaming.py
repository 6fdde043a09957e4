"""Streaming from a real libtorrent seeder: a read far ahead is served first."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.integration import ltutil
from txbittorrent import Torrent
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files

LOOPBACK = "127.0.0.1"
PIECE = 16384
SIZE = 4 * 1024 * 1024 + 123  # 257 pieces


class StreamingTests(TestCase):
    """FileReader over a download from libtorrent."""

    timeout = 60

    @inlineCallbacks
    def test_read_at_the_end_comes_first(self) -> Any:
        """Reading the file's last bytes while the download starts fetches the
        last piece among the first ones, and the read gives the right bytes."""
        ltutil.skip_without_libtorrent()
        root = os.path.abspath(self.mktemp())
        data = make_files(os.path.join(root, "seed"), {"movie.bin": SIZE})["movie.bin"]
        raw = create_torrent(os.path.join(root, "seed", "movie.bin"), piece_length=PIECE)
        session = ltutil.make_session(self)
        handle = ltutil.add_torrent(session, raw, os.path.join(root, "seed"))
        ltutil.wait_until_seeding(handle, 30)
        t = Torrent(raw, basedir=os.path.join(root, "leech"), reactor=reactor,
                    listen_interfaces=[LOOPBACK], download_limit=1024 * 1024)
        self.addCleanup(t.close)
        order: list[int] = []
        t.subscribe(lambda e: order.append(e.piece_index), kinds="piece_passed")
        yield t.start()
        reader = t.open(0)
        d = reader.read(SIZE - 100, 100)
        t.add_peers([ltutil.endpoint(session)])
        got = yield d
        self.assertEqual(got, data[-100:])
        last = t.piece_count - 1
        # Asked for first; hash-and-write jobs finish in any order on a busy
        # machine, so "among the first few of 257" rather than "first".
        self.assertIn(last, order[:10], f"the last piece came {order.index(last) + 1}th")
        self.assertFalse(t.complete, "served before the whole download (1 MB/s limit)")
        middle = yield reader.read(SIZE // 2, 50_000)
        self.assertEqual(middle, data[SIZE // 2 : SIZE // 2 + 50_000])
        reader.close()
