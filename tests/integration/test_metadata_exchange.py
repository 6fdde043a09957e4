"""The metadata exchange (BEP 9) against libtorrent, both ways: our magnet
leecher fetches the info dictionary from a libtorrent seeder and then the
data; a libtorrent leecher given only the magnet fetches it from our seeder.

Each test logs the seconds from start to metadata (in trial's test.log)."""

from __future__ import annotations

import os
import time
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.logger import Logger

from tests.integration import ltutil
from tests.integration.temproot import TempRootCase
from txbittorrent import Torrent
from txbittorrent.core.metainfo import parse
from txbittorrent.core.wire.metadata import METADATA_PIECE_SIZE
from txbittorrent.state import TorrentState
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, wait_until

LOOPBACK = "127.0.0.1"
KiB = 1024

_log = Logger()


def many_files(count: int) -> dict[str, int]:
    """``count`` small files with long names, several directories deep: an
    info dictionary of about 150 bytes per file."""
    return {
        f"directory-{i % 7:02d}/a-rather-long-subdirectory-name-{i % 13:02d}/"
        f"file-number-{i:05d}-with-a-long-descriptive-name.bin": 1 + (i * 37) % 300
        for i in range(count)
    }


class MetadataExchangeTests(TempRootCase):
    """Magnets end to end on 127.0.0.1, byte for byte."""

    timeout = 120

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.make_root()

    def make(self, sizes: dict[str, int], piece_length: int) -> tuple[bytes, dict[str, bytes]]:
        """Files under seed/tree and their .torrent."""
        data = make_files(self.path("seed", "tree"), sizes)
        return create_torrent(self.path("seed", "tree"), piece_length=piece_length), data

    def lt_seeder(self, raw: bytes) -> tuple[str, int]:
        session = ltutil.make_session(self)
        handle = ltutil.add_torrent(session, raw, self.path("seed"))
        ltutil.wait_until_seeding(handle, 60)
        return ltutil.endpoint(session)

    def torrent(self, source: Any, basedir: str) -> Torrent:
        t = Torrent(source, basedir=basedir, reactor=reactor, listen_interfaces=[LOOPBACK])
        self.addCleanup(t.close)
        return t

    def wrong_files(self, data: dict[str, bytes], base: str) -> list[str]:
        """The files under ``base``/tree that are missing or differ from ``data``."""
        wrong = []
        for name, contents in data.items():
            try:
                with open(os.path.join(base, "tree", *name.split("/")), "rb") as f:
                    if f.read() != contents:
                        wrong.append(name)
            except FileNotFoundError:
                wrong.append(name)
        return wrong

    def assert_files(self, data: dict[str, bytes], base: str) -> None:
        self.assertEqual(self.wrong_files(data, base), [])

    @inlineCallbacks
    def fetch_from_libtorrent(self, raw: bytes, data: dict[str, bytes]) -> Any:
        """A trackerless magnet with x.pe at a libtorrent seeder: metadata,
        then every byte; returns the seconds to the metadata."""
        metainfo = parse(raw)
        host, port = self.lt_seeder(raw)
        magnet = f"magnet:?xt=urn:btih:{metainfo.info_hash.hex()}&x.pe={host}:{port}"
        t = self.torrent(magnet, self.path("leech"))
        kinds: list[str] = []
        seen: dict[str, float] = {}

        def event(e: Any) -> None:
            kinds.append(e.kind)
            seen[e.kind] = time.monotonic() - started

        t.subscribe(event, kinds=("metadata_received", "complete"))
        started = time.monotonic()
        yield t.start()
        self.assertIs(t.state, TorrentState.METADATA)
        yield wait_until(lambda: t.has_metadata, 60, "the metadata",
                         lambda: f"state={t.state} peers={t.peers()!r}")
        self.assertEqual(t.info_bytes(), metainfo.info_bytes)
        self.assertEqual((t.name, t.size, t.piece_count),
                         ("tree", metainfo.total_length, metainfo.piece_count))
        yield wait_until(lambda: t.complete, 60, "the download",
                         lambda: f"left={t.left} peers={t.peers()!r}")
        yield t.stop()
        self.assertEqual(kinds, ["metadata_received", "complete"])
        to_metadata, to_complete = seen["metadata_received"], seen["complete"]
        self.assert_files(data, self.path("leech"))
        pieces = -(-len(metainfo.info_bytes) // METADATA_PIECE_SIZE)
        _log.info("BEP 9 fetch from libtorrent: {size} bytes of info ({pieces} pieces) in "
                  "{meta:.3f}s, complete in {done:.3f}s", size=len(metainfo.info_bytes),
                  pieces=pieces, meta=to_metadata, done=to_complete)
        return to_metadata

    def test_magnet_from_libtorrent_seeder(self) -> Any:
        """A single-file torrent from a trackerless magnet (x.pe only)
        downloads completely: metadata by BEP 9, then the data."""
        raw, data = self.make({"one.bin": 1_500_000}, 64 * KiB)
        return self.fetch_from_libtorrent(raw, data)

    def test_big_metadata_multi_file(self) -> Any:
        """A multi-file torrent whose info dictionary is more than 10 pieces
        of 16 KiB comes through whole."""
        raw, data = self.make(many_files(1300), 16 * KiB)
        self.assertGreater(len(parse(raw).info_bytes), 10 * METADATA_PIECE_SIZE)
        return self.fetch_from_libtorrent(raw, data)

    @inlineCallbacks
    def serve_to_libtorrent(self, raw: bytes, data: dict[str, bytes]) -> Any:
        """A libtorrent leecher given only the magnet (the info hash) and our
        seeder's address gets the exact info bytes from us, then the data."""
        metainfo = parse(raw)
        t = self.torrent(raw, self.path("seed"))
        yield t.start()
        self.assertTrue(t.seed)
        # TCP without MSE from the start: libtorrent otherwise tries uTP (3 s
        # to time out) and an encrypted handshake first, which we refuse.
        lt = ltutil.lt
        session = ltutil.make_session(self, enable_outgoing_utp=False,
                                      out_enc_policy=int(lt.enc_policy.pe_disabled))
        params = lt.parse_magnet_uri(f"magnet:?xt=urn:btih:{metainfo.info_hash.hex()}")
        params.save_path = self.path("lt")
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        connected: list[float] = []
        t.subscribe(lambda e: connected.append(time.monotonic()), kinds="peer_connected")
        handle = session.add_torrent(params)
        handle.connect_peer((LOOPBACK, t.port))
        yield wait_until(lambda: handle.status().has_metadata, 60, "libtorrent's metadata",
                         lambda: ltutil.describe(handle), interval=0.005)
        to_metadata = time.monotonic() - connected[0]
        info = bytes(handle.torrent_file().info_section())
        self.assertEqual(info, metainfo.info_bytes)
        yield wait_until(lambda: handle.status().is_seeding, 60, "libtorrent to finish",
                         lambda: ltutil.describe(handle))
        pieces = -(-len(info) // METADATA_PIECE_SIZE)
        _log.info("BEP 9: libtorrent fetched {size} bytes of info ({pieces} pieces) from us "
                  "in {meta:.3f}s after it connected (to within 5 ms)",
                  size=len(info), pieces=pieces, meta=to_metadata)
        # libtorrent reports seeding before its disk threads have written
        # every small file: wait for them (bounded), then compare.
        lt_dir = self.path("lt")
        yield wait_until(lambda: not self.wrong_files(data, lt_dir), 20, "libtorrent's files",
                         lambda: repr(self.wrong_files(data, lt_dir)[:3]))

    def test_libtorrent_fetches_from_us(self) -> Any:
        """A libtorrent leecher given only the magnet and our address gets the
        metadata from our seeder, then the data."""
        raw, data = self.make({"a.bin": 700_000, "b/c.bin": 123_457}, 32 * KiB)
        return self.serve_to_libtorrent(raw, data)

    def test_libtorrent_fetches_big_metadata_from_us(self) -> Any:
        """The same with metadata of more than 10 pieces: every piece we
        serve is the exact bytes."""
        raw, data = self.make(many_files(1300), 16 * KiB)
        return self.serve_to_libtorrent(raw, data)
