"""Metainfo against libtorrent, the reference: torrents it makes load with our
parser unchanged, and torrents we make load in libtorrent and seed to it."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from typing import Any

from twisted.trial.unittest import TestCase

from tests.integration import ltutil
from txbittorrent.core.bencoding import decode, encode
from txbittorrent.core.metainfo import Metainfo, parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files

ltutil.skip_without_libtorrent()
lt = ltutil.lt

KiB = 1024
MiB = 1024 * KiB


def lt_make(path: str, piece_length: int, flags: int = 0) -> bytes:
    """A .torrent of ``path`` made by libtorrent (hybrid v1/v2 unless ``flags`` says)."""
    ct = lt.create_torrent(lt.list_files(path), piece_length, flags)
    ct.set_creator("libtorrent test")
    lt.set_piece_hashes(ct, os.path.dirname(path))
    return bytes(lt.bencode(ct.generate()))


def encode_in_order(value: Any) -> bytes:
    """Bencode keeping each dictionary's key order as it is (it may be unsorted)."""
    if isinstance(value, dict):
        return b"d" + b"".join(encode(k) + encode_in_order(v) for k, v in value.items()) + b"e"
    if isinstance(value, list):
        return b"l" + b"".join(encode_in_order(v) for v in value) + b"e"
    return encode(value)


def our_files(m: Metainfo) -> list[tuple[str, int, bool]]:
    return [("/".join(f.path), f.length, f.pad) for f in m.files]


class Workspace:
    """A temporary directory removed by the test's cleanup."""

    def __init__(self, case: TestCase) -> None:
        self.path = tempfile.mkdtemp(prefix="txbt-lt-")
        case.addCleanup(shutil.rmtree, self.path, True)

    def sub(self, *parts: str) -> str:
        path = os.path.join(self.path, *parts)
        os.makedirs(path, exist_ok=True)
        return path


NESTED = {
    "album/cover.jpg": 70_001,
    "album/disc 1/01 intro.flac": 300_000,
    "album/disc 1/02 caf\u00e9.flac": 123_457,
    "album/disc 2/deeper/03.flac": 16_384,
    "album/notes.txt": 1_000,
    "album/.hidden": 10,
}


class LibtorrentMadeTests(TestCase):
    """Torrents libtorrent creates parse with our info hash, name, size and files."""

    def setUp(self) -> None:
        self.work = Workspace(self)

    def assert_same(self, raw: bytes) -> Metainfo:
        ti = lt.torrent_info(raw)
        m = parse(raw)
        self.assertEqual(m.info_hash, ti.info_hashes().v1.to_bytes())
        self.assertEqual(m.name, ti.name())
        self.assertEqual(m.total_length, ti.total_size())
        self.assertEqual(m.piece_length, ti.piece_length())
        self.assertEqual(m.piece_count, ti.num_pieces())
        self.assertEqual(our_files(m), ltutil.file_list(ti.layout()))
        for index in range(m.piece_count):
            self.assertEqual(m.piece_hash(index), ti.hash_for_piece(index))
        self.assertFalse(any(f.renamed for f in m.files))
        return m

    def test_single_file(self) -> None:
        """A single-file hybrid torrent."""
        root = self.work.sub("single")
        make_files(root, {"file.bin": 200_000}, seed=0)
        m = self.assert_same(lt_make(os.path.join(root, "file.bin"), 16 * KiB))
        self.assertFalse(m.multi_file)
        self.assertTrue(m.hybrid)

    def test_multi_file_hybrid_with_pad_files(self) -> None:
        """A nested multi-file hybrid torrent, pad files included and flagged alike."""
        make_files(self.work.path, NESTED, seed=0)
        m = self.assert_same(lt_make(os.path.join(self.work.path, "album"), 16 * KiB))
        self.assertTrue(m.multi_file)
        self.assertTrue(m.hybrid)
        self.assertTrue(any(f.pad for f in m.files), "libtorrent made no pad files")

    def test_multi_file_v1_only(self) -> None:
        """A nested multi-file v1-only torrent."""
        make_files(self.work.path, NESTED, seed=0)
        raw = lt_make(os.path.join(self.work.path, "album"), 32 * KiB, lt.create_torrent.v1_only)
        m = self.assert_same(raw)
        self.assertFalse(m.hybrid)
        self.assertEqual(len(m.files), len(NESTED))

    def test_large_piece_small_data(self) -> None:
        """An 8 MiB piece length over less than one piece of data."""
        make_files(self.work.path, {"small/a": 5_000, "small/b/c": 7_000}, seed=0)
        raw = lt_make(os.path.join(self.work.path, "small"), 8 * MiB, lt.create_torrent.v1_only)
        m = self.assert_same(raw)
        self.assertEqual((m.piece_count, m.piece_length), (1, 8 * MiB))

    def test_non_power_of_two_piece_length(self) -> None:
        """A hand-made torrent with 20,000-byte pieces (libtorrent will not make one)."""
        content = random.Random(5).randbytes(123_456)
        pieces = b"".join(
            hashlib.sha1(content[i : i + 20_000]).digest() for i in range(0, len(content), 20_000)
        )
        info = {b"name": b"odd.bin", b"piece length": 20_000, b"pieces": pieces, b"length": 123_456}
        m = self.assert_same(encode({b"info": info}))
        self.assertEqual(m.piece_count, 7)

    def test_unsorted_info_keys(self) -> None:
        """An info dictionary with its keys in reverse order keeps its own info hash."""
        # v1 only: libtorrent 2.1 refuses a hybrid torrent whose info keys are unsorted.
        make_files(self.work.path, NESTED, seed=0)
        album = os.path.join(self.work.path, "album")
        canonical = lt_make(album, 16 * KiB, lt.create_torrent.v1_only)
        meta = decode(canonical)
        info = meta[b"info"]
        reversed_info = {k: info[k] for k in sorted(info, reverse=True)}
        raw = encode_in_order({b"info": reversed_info, b"creation date": 1, b"announce": b"x"})
        info_bytes = encode_in_order(reversed_info)
        self.assertIn(info_bytes, raw)
        self.assertNotEqual(info_bytes, encode(info))
        m = self.assert_same(raw)
        self.assertEqual(m.info_hash, hashlib.sha1(info_bytes).digest())
        self.assertNotEqual(m.info_hash, parse(canonical).info_hash)


class OursInLibtorrentTests(TestCase):
    """Torrents we create load in libtorrent unchanged, and libtorrent seeds from them."""

    def setUp(self) -> None:
        self.work = Workspace(self)

    def assert_lt_agrees(self, raw: bytes) -> Any:
        ti = lt.torrent_info(raw)
        m = parse(raw)
        self.assertEqual(ti.info_hashes().v1.to_bytes(), m.info_hash)
        self.assertFalse(ti.info_hashes().has_v2())
        self.assertEqual(ti.name(), m.name)
        self.assertEqual(ti.total_size(), m.total_length)
        self.assertEqual(ti.piece_length(), m.piece_length)
        self.assertEqual(ltutil.file_list(ti.layout()), our_files(m))
        self.assertEqual(bytes(ti.info_section()), m.info_bytes)
        return ti

    def test_single_file(self) -> None:
        """A single-file torrent of ours, with its trackers, comment and web seeds."""
        make_files(self.work.path, {"one.bin": 100_000}, seed=0)
        raw = create_torrent(
            os.path.join(self.work.path, "one.bin"),
            trackers=[["http://127.0.0.1:1/a", "http://127.0.0.1:2/a"], "udp://127.0.0.1:3"],
            comment="made by us",
            url_list=["http://127.0.0.1:4/files/"],
            private=True,
        )
        ti = self.assert_lt_agrees(raw)
        self.assertEqual(
            [(t.url, t.tier) for t in ti.trackers()],
            [("http://127.0.0.1:1/a", 0), ("http://127.0.0.1:2/a", 0), ("udp://127.0.0.1:3", 1)],
        )
        self.assertEqual(ti.comment(), "made by us")
        self.assertTrue(ti.priv())
        self.assertEqual([w["url"] for w in ti.web_seeds()], ["http://127.0.0.1:4/files/"])

    def test_multi_file(self) -> None:
        """A nested multi-file torrent of ours, with a piece that crosses files."""
        make_files(self.work.path, NESTED, seed=0)
        self.assert_lt_agrees(
            create_torrent(os.path.join(self.work.path, "album"), piece_length=16 * KiB)
        )

    def test_libtorrent_seeds_our_torrent(self) -> None:
        """libtorrent verifies our data against our torrent and seeds it to another libtorrent."""
        source = self.work.sub("source")
        sizes = {
            "payload/a.bin": 1 * MiB + 7,
            "payload/dir/b.bin": 2 * MiB - 3,
            "payload/dir/sub/c.bin": 700_001,
            "payload/dir/sub/empty": 0,
            "payload/z.txt": 5,
        }
        contents = make_files(source, sizes, seed=42)
        raw = create_torrent(os.path.join(source, "payload"), piece_length=64 * KiB)
        self.assert_lt_agrees(raw)

        seeder = ltutil.make_session(self)
        leecher = ltutil.make_session(self)
        seed_handle = ltutil.add_torrent(seeder, raw, source)
        ltutil.wait_until_seeding(seed_handle, timeout=30)

        target = self.work.sub("target")
        leech_handle = ltutil.add_torrent(leecher, raw, target)
        leech_handle.connect_peer(ltutil.endpoint(seeder))
        ltutil.wait_until_seeding(leech_handle, timeout=60)

        for rel, content in contents.items():
            path = os.path.join(target, *rel.split("/"))
            with open(path, "rb") as f:
                self.assertEqual(f.read(), content, rel)
