"""Tests for txbittorrent.source: what a torrent may be made from."""

from __future__ import annotations

import base64
import os

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import decode, encode
from txbittorrent.core.magnet import Magnet, magnet_from_metainfo, parse_magnet
from txbittorrent.core.metainfo import MetainfoLimits, parse
from txbittorrent.errors import MagnetError, MetainfoError
from txbittorrent.source import TorrentSource, bare_info_hash, load_source
from txbittorrent.testing import make_metainfo, make_torrent

LIMITS = MetainfoLimits()
INFO_HASH = bytes(range(20))
HEX = INFO_HASH.hex()
BASE32 = base64.b32encode(INFO_HASH).decode("ascii")
TRACKER = "http://t.test/announce"
RAW = make_torrent(b"x" * 40, 16, name="film.mkv", announce=TRACKER)


def with_tiers(raw: bytes, tiers: list[list[str]]) -> bytes:
    """``raw`` with a BEP 12 announce-list of ``tiers`` added."""
    meta = decode(raw)
    assert isinstance(meta, dict)
    meta[b"announce-list"] = [[url.encode() for url in tier] for tier in tiers]
    return encode(meta)


class TorrentFileTests(SynchronousTestCase):
    """A .torrent, as a path, bytes or a Metainfo."""

    def write(self, data: bytes, name: str | None = None) -> str:
        """Write ``data`` to a new file and return its path."""
        path = self.mktemp() if name is None else name
        with open(path, "wb") as f:
            f.write(data)
        return path

    def test_path(self) -> None:
        """A path to a .torrent gives its info hash, metainfo, name and trackers."""
        source = load_source(self.write(RAW), LIMITS)
        metainfo = parse(RAW)
        self.assertEqual(source.info_hash, metainfo.info_hash)
        self.assertIsNotNone(source.metainfo)
        assert source.metainfo is not None
        self.assertEqual(source.metainfo.info_hash, metainfo.info_hash)
        self.assertEqual(source.display_name, "film.mkv")
        self.assertEqual(source.trackers, ((TRACKER,),))
        self.assertEqual(source.peers, ())

    def test_raw_bytes(self) -> None:
        """The bytes of a .torrent (bytes, bytearray or memoryview) are parsed."""
        expected = parse(RAW).info_hash
        for raw in (RAW, bytearray(RAW), memoryview(RAW)):
            source = load_source(raw, LIMITS)
            self.assertEqual((source.info_hash, source.display_name), (expected, "film.mkv"))
            self.assertIsNotNone(source.metainfo)

    def test_metainfo(self) -> None:
        """A Metainfo is taken as it is, its tiers kept."""
        tiers = [["http://a.test/", "http://b.test/"], ["udp://c.test:1"]]
        metainfo = parse(with_tiers(RAW, tiers))
        source = load_source(metainfo, LIMITS)
        self.assertIs(source.metainfo, metainfo)
        self.assertEqual(source, TorrentSource.from_metainfo(metainfo))
        self.assertEqual(
            source.trackers, (("http://a.test/", "http://b.test/"), ("udp://c.test:1",))
        )

    def test_made_by_testing_helper(self) -> None:
        """make_metainfo's torrent loads to the same info hash as its bytes."""
        metainfo = make_metainfo({"a/b": b"1" * 20, "c": b"2" * 5}, 16, name="dir")
        self.assertEqual(load_source(metainfo, LIMITS).display_name, "dir")
        self.assertEqual(
            load_source(make_torrent({"a/b": b"1" * 20, "c": b"2" * 5}, 16, name="dir"),
                        LIMITS).info_hash,
            metainfo.info_hash,
        )

    def test_missing_file(self) -> None:
        """A path to no file (and not an info hash) is a MetainfoError naming it."""
        path = self.mktemp()
        error = self.assertRaises(MetainfoError, load_source, path, LIMITS)
        self.assertIn(path, str(error))

    def test_file_named_like_info_hash(self) -> None:
        """A file whose name is 40 hex digits is read as a .torrent, not taken for a hash."""
        directory = self.mktemp()
        os.makedirs(directory)
        here = os.getcwd()
        os.chdir(directory)
        self.addCleanup(os.chdir, here)
        self.write(RAW, HEX)
        self.write(RAW, BASE32)
        for name in (HEX, BASE32):
            source = load_source(name, LIMITS)
            self.assertEqual(source.info_hash, parse(RAW).info_hash)
            self.assertIsNotNone(source.metainfo)

    def test_garbage_file(self) -> None:
        """A file that is not a .torrent is a MetainfoError."""
        self.assertRaises(MetainfoError, load_source, self.write(b"not bencoded"), LIMITS)

    def test_garbage_bytes(self) -> None:
        """Bytes that are not a .torrent (nor 20 bytes) are a MetainfoError."""
        for raw in (b"", b"garbage", b"d3:fooi1ee", RAW[:-1]):
            self.assertRaises(MetainfoError, load_source, raw, LIMITS)

    def test_limits(self) -> None:
        """The limits apply to a path and to bytes alike."""
        small = MetainfoLimits(max_torrent_size=len(RAW) - 1)
        self.assertRaises(MetainfoError, load_source, RAW, small)
        self.assertRaises(MetainfoError, load_source, self.write(RAW), small)
        self.assertEqual(load_source(RAW, MetainfoLimits(max_torrent_size=len(RAW))).display_name,
                         "film.mkv")

    def test_directory(self) -> None:
        """A path to a directory is a MetainfoError, as the docstring promises."""
        directory = self.mktemp()
        os.makedirs(directory)
        self.assertRaises(MetainfoError, load_source, directory, LIMITS)



class MagnetSourceTests(SynchronousTestCase):
    """A magnet URI or a Magnet: no metainfo yet; trackers one per tier; x.pe peers."""

    def test_hex(self) -> None:
        """A magnet with a hex btih gives its hash, name, trackers and peers."""
        uri = (f"magnet:?xt=urn:btih:{HEX}&dn=Big+Buck+Bunny&tr=http%3A%2F%2Fa.test%2Fann"
               "&tr=udp://b.test:6969&x.pe=10.0.0.1:6881&x.pe=[::1]:6882")
        source = load_source(uri, LIMITS)
        self.assertEqual(source, TorrentSource(
            INFO_HASH, None, "Big Buck Bunny",
            (("http://a.test/ann",), ("udp://b.test:6969",)),
            (("10.0.0.1", 6881), ("::1", 6882)),
        ))

    def test_base32(self) -> None:
        """A magnet with a base32 btih (either case) gives the same hash."""
        for text in (BASE32, BASE32.lower()):
            source = load_source(f"magnet:?xt=urn:btih:{text}", LIMITS)
            self.assertEqual(source, TorrentSource(INFO_HASH, None, None, ()))

    def test_magnet_object(self) -> None:
        """A Magnet is taken as it is."""
        magnet = Magnet(INFO_HASH, display_name="n", trackers=("http://a.test/", "http://b.test/"),
                        peers=(("10.0.0.1", 1),))
        source = load_source(magnet, LIMITS)
        self.assertEqual(source, TorrentSource.from_magnet(magnet))
        self.assertEqual(source.trackers, (("http://a.test/",), ("http://b.test/",)))
        self.assertEqual((source.metainfo, source.peers), (None, (("10.0.0.1", 1),)))

    def test_bad_magnet(self) -> None:
        """A magnet URI without a usable info hash is a MagnetError."""
        for uri in ("magnet:?dn=x", "magnet:?xt=urn:btih:zz", "magnet:", "magnet:xt"):
            self.assertRaises(MagnetError, load_source, uri, LIMITS)

    def test_scheme_case_and_whitespace(self) -> None:
        """A magnet URI in upper case or with pasted whitespace is still a magnet."""
        for uri in (f"MAGNET:?xt=urn:btih:{HEX}", f"  magnet:?xt=urn:btih:{HEX}\n"):
            self.assertEqual(load_source(uri, LIMITS).info_hash, INFO_HASH)



class BareInfoHashTests(SynchronousTestCase):
    """A bare info hash: 40 hex digits, 32 base32 characters or 20 raw bytes."""

    def test_hex(self) -> None:
        """40 hex digits (either case) name a torrent with nothing else known."""
        for text in (HEX, HEX.upper()):
            self.assertEqual(load_source(text, LIMITS), TorrentSource(INFO_HASH, None, None, ()))

    def test_base32(self) -> None:
        """32 base32 characters (either case) name a torrent."""
        for text in (BASE32, BASE32.lower()):
            self.assertEqual(load_source(text, LIMITS).info_hash, INFO_HASH)

    def test_raw(self) -> None:
        """20 raw bytes are an info hash."""
        self.assertEqual(load_source(INFO_HASH, LIMITS), TorrentSource(INFO_HASH, None, None, ()))
        self.assertEqual(load_source(bytearray(INFO_HASH), LIMITS).info_hash, INFO_HASH)

    def test_raw_starting_with_d(self) -> None:
        """20 raw bytes starting with 0x64 ('d') are an info hash too: no .torrent is 20 bytes."""
        info_hash = b"d" + bytes(19)
        self.assertEqual(load_source(info_hash, LIMITS).info_hash, info_hash)


    def test_not_a_hash(self) -> None:
        """Texts of the wrong length or alphabet are no info hash."""
        for text in (HEX[:-1], HEX + "0", "g" * 40, BASE32[:-1], "1" * 32, "", "x"):
            self.assertIsNone(bare_info_hash(text))
        for text in ("g" * 40, "1" * 32):
            self.assertRaises(MetainfoError, load_source, text, LIMITS)


class MagnetRoundTripTests(SynchronousTestCase):
    """TorrentSource.magnet() says what the source said."""

    def test_from_magnet(self) -> None:
        """A magnet's hash, name, trackers and peers come back in the same order."""
        magnet = Magnet(INFO_HASH, display_name="name with spaces",
                        trackers=("http://a.test/", "udp://b.test:1"),
                        peers=(("10.0.0.1", 6881), ("::1", 6882)))
        source = load_source(magnet.to_uri(), LIMITS)
        self.assertEqual(source.magnet(), magnet)
        self.assertEqual(load_source(source.magnet().to_uri(), LIMITS), source)

    def test_from_metainfo(self) -> None:
        """A .torrent's magnet is magnet_from_metainfo's; it loads to its hash, name, trackers."""
        metainfo = parse(with_tiers(RAW, [["http://a.test/"], ["http://b.test/", TRACKER]]))
        source = load_source(metainfo, LIMITS)
        magnet = source.magnet()
        self.assertEqual(magnet, magnet_from_metainfo(metainfo))
        back = load_source(magnet.to_uri(), LIMITS)
        self.assertEqual((back.info_hash, back.display_name, back.metainfo),
                         (metainfo.info_hash, "film.mkv", None))
        self.assertEqual(back.trackers,
                         (("http://a.test/",), ("http://b.test/",), (TRACKER,)))

    def test_from_bare_hash(self) -> None:
        """A bare info hash's magnet carries the hash alone."""
        self.assertEqual(load_source(HEX, LIMITS).magnet(), Magnet(INFO_HASH))
        self.assertEqual(parse_magnet(load_source(INFO_HASH, LIMITS).magnet().to_uri()),
                         Magnet(INFO_HASH))
