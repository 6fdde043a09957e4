"""The engine against real clients on 127.0.0.1: libtorrent (PyPI) and aria2.

Every test is bounded in time, listens on 127.0.0.1 only, and stops every
torrent, session, tracker and child process it starts.  Data is compared
byte for byte.
"""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SkipTest

from tests.integration import ltutil
from tests.integration.engine import ARIA2C, LiarFactory, aria2_command, start_process
from tests.integration.temproot import TempRootCase
from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.observers import TorrentObserver
from txbittorrent.testing import make_files, same_files, wait_until
from txbittorrent.torrent import Torrent
from txbittorrent.tracker.server import start_tracker

LOOPBACK = "127.0.0.1"
KiB = 1024
MiB = 1024 * KiB

TREE = {
    "movie.bin": 3 * MiB + 12345,
    "extras/a.bin": 700 * KiB,
    "extras/deep/b.bin": 1 * MiB + 1,
    "extras/empty.txt": 0,
    "notes.txt": 5000,
}


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


class Banned(TorrentObserver):
    """Records bans and losses the swarm reports."""

    def __init__(self) -> None:
        self.lost: list[tuple[Any, str]] = []

    def peer_lost(self, torrent: Any, peer: Any, reason: str) -> None:
        self.lost.append((peer.address, reason))


class EngineTestBase(TempRootCase):
    make_dirs = True
    timeout = 240

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.make_root()

    def make_torrent(self, sizes: dict[str, int] = TREE, piece_length: int = 64 * KiB,
                     trackers: list[str] | None = None, seed: int = 1) -> tuple[bytes, dict]:
        source = self.path("seed")
        data = make_files(os.path.join(source, "tree"), sizes, seed=seed)
        raw = create_torrent(os.path.join(source, "tree"), piece_length=piece_length,
                             trackers=trackers or [])
        return raw, data

    def torrent(self, raw: bytes, basedir: str, **kwargs: Any) -> Torrent:
        t = Torrent(raw, basedir=basedir, reactor=reactor, listen_interfaces=[LOOPBACK],
                    **kwargs)
        self.addCleanup(t.close)
        return t

    def lt_seed(self, raw: bytes, save_path: str, **settings: Any) -> Any:
        session = ltutil.make_session(self, **settings)
        handle = ltutil.add_torrent(session, raw, save_path)
        ltutil.wait_until_seeding(handle, 30)
        return session, handle

    def assert_tree(self, basedir: str, sizes: dict[str, int] = TREE) -> None:
        bad = same_files(os.path.join(self.root, "seed", "tree"),
                         os.path.join(basedir, "tree"), list(sizes))
        self.assertEqual(bad, [])


class LibtorrentTests(EngineTestBase):
    """Downloading from and seeding to libtorrent."""

    @inlineCallbacks
    def test_download_from_libtorrent_seed(self) -> Any:
        """A multi-file torrent downloads from a libtorrent seeder, byte for byte."""
        raw, _ = self.make_torrent()
        session, _ = self.lt_seed(raw, self.path("seed"))
        t = self.torrent(raw, self.path("leech"))
        yield t.start()
        t.add_peers([ltutil.endpoint(session)])
        yield wait_until(lambda: t.complete, 60, "the download",
                         lambda: f"left={t.left} peers={len(t.peers())}")
        yield t.stop()
        self.assert_tree(self.path("leech"))
        self.assertTrue(os.path.exists(os.path.join(self.root, "leech", "tree", "extras",
                                                    "empty.txt")))

    @inlineCallbacks
    def test_seed_to_libtorrent(self) -> Any:
        """A libtorrent leecher downloads everything from us."""
        raw, _ = self.make_torrent()
        t = self.torrent(raw, self.path("seed"))
        yield t.start()
        self.assertTrue(t.seed)
        session = ltutil.make_session(self)
        handle = ltutil.add_torrent(session, raw, self.path("lt"))
        handle.connect_peer((LOOPBACK, t.port))
        yield wait_until(lambda: handle.status().is_seeding, 60, "libtorrent to finish",
                         lambda: ltutil.describe(handle))
        self.assertGreaterEqual(t.uploaded, sum(TREE.values()))
        yield ltutil.files_landed(os.path.join(self.root, "seed", "tree"),
                                  os.path.join(self.root, "lt", "tree"), TREE, 10)
        bad = same_files(os.path.join(self.root, "seed", "tree"),
                         os.path.join(self.root, "lt", "tree"), list(TREE))
        self.assertEqual(bad, [])

    @inlineCallbacks
    def test_file_priorities(self) -> Any:
        """A priority-0 file is never created; the wanted ones arrive whole."""
        raw, _ = self.make_torrent()
        session, _ = self.lt_seed(raw, self.path("seed"))
        leech = self.path("leech")
        # Files in torrent order: extras/a.bin, extras/deep/b.bin, extras/empty.txt,
        # movie.bin, notes.txt.
        t = self.torrent(raw, leech, priorities=[1, 0, 1, 1, 0])
        yield t.start()
        t.add_peers([ltutil.endpoint(session)])
        yield wait_until(lambda: t.complete, 60, "the wanted files",
                         lambda: f"left={t.left_wanted}")
        yield t.stop()
        self.assertFalse(os.path.exists(os.path.join(leech, "tree", "extras", "deep", "b.bin")))
        self.assertFalse(os.path.exists(os.path.join(leech, "tree", "notes.txt")))
        wanted = {"extras/a.bin": 0, "movie.bin": 0}
        self.assertEqual(same_files(os.path.join(self.root, "seed", "tree"),
                                    os.path.join(leech, "tree"), list(wanted)), [])

    @inlineCallbacks
    def test_stop_and_resume(self) -> Any:
        """A download stopped half way resumes from its resume record without
        downloading verified pieces again."""
        sizes = {"big.bin": 8 * MiB}
        raw, _ = self.make_torrent(sizes, piece_length=256 * KiB)
        session, _ = self.lt_seed(raw, self.path("seed"))
        leech = self.path("leech")
        resume = os.path.join(leech, "r.resume")
        t = self.torrent(raw, leech, resume_path=resume, download_limit=1 * MiB)
        yield t.start()
        t.add_peers([ltutil.endpoint(session)])
        yield wait_until(lambda: t.bitfield.count >= 8, 60, "a few pieces")
        yield t.stop()
        had = t.bitfield.count
        self.assertFalse(t.complete)

        again = self.torrent(raw, leech, resume_path=resume)
        hashed: list[int] = []
        again.on_hash_pass = hashed.append
        yield again.start()
        self.assertEqual(hashed, [], "a clean resume record needs no rehash")
        self.assertGreaterEqual(again.bitfield.count, had)
        again.add_peers([ltutil.endpoint(session)])
        yield wait_until(lambda: again.complete, 60, "the rest")
        yield again.stop()
        left_before = sizes["big.bin"] - had * 256 * KiB
        self.assertLessEqual(again.downloaded, left_before + 2 * 256 * KiB)
        self.assert_tree(leech, sizes)

    @inlineCallbacks
    def test_corrupt_peer_banned(self) -> Any:
        """A peer serving corrupt data is banned; the download completes from the
        honest libtorrent seeder, and no corrupt byte reaches the disk."""
        sizes = {"big.bin": 4 * MiB}
        raw, _ = self.make_torrent(sizes, piece_length=64 * KiB)
        good, _ = self.lt_seed(raw, self.path("seed"))
        liar_factory = LiarFactory(parse(raw))
        liar_port = reactor.listenTCP(0, liar_factory, interface=LOOPBACK)
        self.addCleanup(liar_port.stopListening)
        liar = (LOOPBACK, liar_port.getHost().port)
        t = self.torrent(raw, self.path("leech"))
        lost = Banned()
        t.add_observer(lost)
        yield t.start()
        t.add_peers([liar])
        yield wait_until(lambda: any("banned" in r for _, r in lost.lost), 60,
                         "the liar to be banned", lambda: repr(lost.lost))
        self.assertFalse(t.bitfield.count, "no piece from the liar may pass")
        t.add_peers([ltutil.endpoint(good)])
        yield wait_until(lambda: t.complete, 90, "the download from the honest seed",
                         lambda: f"left={t.left} lost={lost.lost}")
        self.assertNotIn(liar, [p.address for p in t.peers()])
        yield t.stop()
        for p in liar_factory.protocols:
            p.transport.loseConnection()
        self.assertGreater(sum(p.served for p in liar_factory.protocols), 0)
        self.assert_tree(self.path("leech"), sizes)


class SwarmTests(EngineTestBase):
    """One libtorrent seed and three of ours, introduced by our tracker."""

    @inlineCallbacks
    def test_three_leechers_trade(self) -> Any:
        """Three txbittorrent leechers complete from a slow libtorrent seed and each
        uploads to the others."""
        tracker = yield start_tracker(reactor, LOOPBACK, interval=5)
        self.addCleanup(tracker.stop)
        sizes = {"big.bin": 6 * MiB}
        raw, _ = self.make_torrent(sizes, piece_length=64 * KiB,
                                   trackers=[tracker.announce_url])
        session, handle = self.lt_seed(raw, self.path("seed"))
        ltutil.limit_local_peers(session, upload=1 * MiB)  # a slow seed, on loopback too
        leechers = []
        for n in range(3):
            t = self.torrent(raw, self.path(f"leech{n}"))
            leechers.append(t)
            yield t.start()
        # libtorrent learns the swarm from our tracker too.
        handle.force_reannounce()
        for t in leechers:
            t.add_peers([ltutil.endpoint(session)])
        yield wait_until(lambda: all(t.complete for t in leechers), 120, "every leecher",
                         lambda: repr([(t.left, len(t.peers()), t.uploaded) for t in leechers]))
        uploads = [t.uploaded for t in leechers]
        for t in leechers:
            yield t.stop()
        for n in range(3):
            self.assert_tree(self.path(f"leech{n}"), sizes)
        self.assertTrue(all(u > 0 for u in uploads), f"uploads: {uploads}")


class Aria2Tests(EngineTestBase):
    """aria2 (Debian's aria2c) downloads from us."""

    def setUp(self) -> None:
        super().setUp()
        if ARIA2C is None:
            raise SkipTest("aria2c is not installed (apt-get install aria2)")

    @inlineCallbacks
    def test_seed_to_aria2(self) -> Any:
        """aria2c finds us through our tracker and downloads everything."""
        tracker = yield start_tracker(reactor, LOOPBACK, interval=5)
        self.addCleanup(tracker.stop)
        raw, _ = self.make_torrent(trackers=[tracker.announce_url])
        t = self.torrent(raw, self.path("seed"))
        yield t.start()
        torrent_path = os.path.join(self.root, "t.torrent")
        with open(torrent_path, "wb") as f:
            f.write(raw)
        proc = start_process(self, aria2_command(torrent_path, self.path("aria2"),
                                                 free_port()),
                             os.path.join(self.root, "aria2.log"))
        yield wait_until(lambda: proc.poll() is not None, 120, "aria2c to finish",
                         lambda: open(os.path.join(self.root, "aria2.log")).read()[-2000:])
        self.assertEqual(proc.returncode, 0)
        bad = same_files(os.path.join(self.root, "seed", "tree"),
                         os.path.join(self.root, "aria2", "tree"), list(TREE))
        self.assertEqual(bad, [])
        self.assertGreater(t.uploaded, 0)

