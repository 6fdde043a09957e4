"""Tests for txbittorrent.core.metainfo."""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import decode, encode
from txbittorrent.core.metainfo import (
    FileEntry,
    Metainfo,
    MetainfoLimits,
    parse,
    parse_info,
    sanitize_path,
)
from txbittorrent.errors import MetainfoError, UnsupportedTorrentError

# -- building torrents ----------------------------------------------------------


def _hashes(total: int, piece_length: int) -> bytes:
    """Distinct made-up hashes, one per piece of ``total`` bytes."""
    count = (total + piece_length - 1) // piece_length
    return b"".join(hashlib.sha1(i.to_bytes(4, "big")).digest() for i in range(count))


def _file(length: int, *path: str | bytes, **extra: Any) -> dict[bytes, Any]:
    """One entry of info.files; each ``extra`` keyword becomes a key (attr=b"p")."""
    entry: dict[bytes, Any] = {
        b"length": length,
        b"path": [p.encode() if isinstance(p, str) else p for p in path],
    }
    entry.update({k.encode(): v for k, v in extra.items()})
    return entry


def _info(
    *,
    length: int | None = None,
    files: list[dict[bytes, Any]] | None = None,
    name: bytes = b"root",
    piece_length: int = 16,
    extra: dict[bytes, Any] | None = None,
) -> dict[bytes, Any]:
    """A valid info dictionary: single-file (40 bytes by default) or multi-file."""
    info: dict[bytes, Any] = {b"name": name, b"piece length": piece_length}
    if files is None:
        info[b"length"] = 40 if length is None else length
        total = info[b"length"]
    else:
        info[b"files"] = files
        total = sum(f[b"length"] for f in files if isinstance(f[b"length"], int))
    info[b"pieces"] = _hashes(total, piece_length)
    info.update(extra or {})
    return info


def _torrent(info: Any = None, top: dict[bytes, Any] | None = None) -> bytes:
    """The bencoded torrent holding ``info`` (a default single-file one if None)."""
    meta: dict[bytes, Any] = {b"info": _info() if info is None else info}
    meta.update(top or {})
    return encode(meta)


def _multi(*files: dict[bytes, Any], **kw: Any) -> Metainfo:
    """Parse a multi-file torrent of ``files``."""
    return parse(_torrent(_info(files=list(files), **kw)))


def _paths(meta: Metainfo) -> list[tuple[str, ...]]:
    return [f.path for f in meta.files]


class SingleFileTests(SynchronousTestCase):
    """A torrent of one file."""

    def setUp(self) -> None:
        self.info = _info(length=40, piece_length=16)
        self.raw = _torrent(
            self.info,
            {
                b"comment": b"a comment",
                b"created by": b"tests",
                b"creation date": 1700000000,
            },
        )
        self.meta = parse(self.raw)

    def test_fields(self) -> None:
        """Name, piece length, pieces and length are read."""
        m = self.meta
        self.assertEqual(m.name, "root")
        self.assertEqual(m.piece_length, 16)
        self.assertEqual(m.pieces, self.info[b"pieces"])
        self.assertEqual(m.total_length, 40)
        self.assertFalse(m.multi_file)
        self.assertFalse(m.private)
        self.assertFalse(m.hybrid)
        self.assertEqual(m.comment, "a comment")
        self.assertEqual(m.created_by, "tests")
        self.assertEqual(m.creation_date, 1700000000)

    def test_file(self) -> None:
        """The one file is named after the torrent, at offset 0."""
        self.assertEqual(self.meta.files, (FileEntry(("root",), 40, 0),))

    def test_info_hash(self) -> None:
        """The info hash is the SHA-1 of the bencoded info dictionary."""
        self.assertEqual(self.meta.info_bytes, encode(self.info))
        self.assertEqual(self.meta.info_hash, hashlib.sha1(encode(self.info)).digest())
        self.assertEqual(self.meta.info_hash_hex, self.meta.info_hash.hex())

    def test_pieces(self) -> None:
        """piece_count, piece_hash and piece_size (the last piece is short)."""
        m = self.meta
        self.assertEqual(m.piece_count, 3)
        self.assertEqual(m.piece_hash(1), self.info[b"pieces"][20:40])
        self.assertEqual([m.piece_size(i) for i in range(3)], [16, 16, 8])

    def test_piece_out_of_range(self) -> None:
        """piece_hash and piece_size refuse indexes outside the torrent."""
        for index in (-1, 3):
            self.assertRaises(IndexError, self.meta.piece_hash, index)
            self.assertRaises(IndexError, self.meta.piece_size, index)

    def test_exact_multiple(self) -> None:
        """A length that is a multiple of the piece length has no short piece."""
        m = parse(_torrent(_info(length=32, piece_length=16)))
        self.assertEqual((m.piece_count, m.piece_size(1)), (2, 16))

    def test_attributes(self) -> None:
        """BEP 47 attributes on a single file: x is executable, h hidden."""
        m = parse(_torrent(_info(extra={b"attr": b"xh"})))
        self.assertEqual((m.files[0].executable, m.files[0].hidden), (True, True))

    def test_bytearray(self) -> None:
        """bytearray and memoryview input parse like bytes."""
        self.assertEqual(parse(bytearray(self.raw)), self.meta)
        self.assertEqual(parse(memoryview(self.raw)), self.meta)


class MultiFileTests(SynchronousTestCase):
    """A torrent of several files."""

    def test_files(self) -> None:
        """Paths start with the torrent name; offsets accumulate."""
        m = _multi(_file(10, "a.txt"), _file(0, "empty"), _file(25, "sub", "b.bin"))
        self.assertTrue(m.multi_file)
        self.assertEqual(
            m.files,
            (
                FileEntry(("root", "a.txt"), 10, 0),
                FileEntry(("root", "empty"), 0, 10),
                FileEntry(("root", "sub", "b.bin"), 25, 10),
            ),
        )
        self.assertEqual(m.total_length, 35)
        self.assertEqual(m.piece_count, 3)

    def test_attributes(self) -> None:
        """BEP 47 attributes: x executable, h hidden, p pad, in any combination."""
        m = _multi(
            _file(5, "run", attr=b"x"),
            _file(3, ".dot", attr=b"h"),
            _file(8, ".pad", "8", attr=b"p"),
            _file(4, "both", attr=b"hx"),
            _file(1, "none", attr=b""),
            _file(1, "junk", attr=7),
        )
        flags = [(f.executable, f.hidden, f.pad) for f in m.files]
        self.assertEqual(
            flags,
            [
                (True, False, False),
                (False, True, False),
                (False, False, True),
                (True, True, False),
                (False, False, False),
                (False, False, False),
            ],
        )

    def test_pad_attr(self) -> None:
        """A file with attr 'p' is a pad file, whatever its path."""
        m = _multi(_file(5, "a"), _file(11, "padding", "x", attr=b"p"), _file(5, "b"))
        self.assertEqual([f.pad for f in m.files], [False, True, False])

    def test_legacy_pad_name(self) -> None:
        """BitComet's '_____padding_file_' names are pad files even without attr."""
        m = _multi(_file(5, "a"), _file(11, "_____padding_file_0_x____"), _file(5, "b"))
        self.assertEqual([f.pad for f in m.files], [False, True, False])

    def test_pad_dir_without_attr_is_not_pad(self) -> None:
        """Files under a '.pad' directory without attr 'p' are ordinary files
        (a user's own directory of that name stays data)."""
        m = _multi(_file(5, ".pad"), _file(5, ".pad2", "x"), _file(11, ".padx", "11"))
        self.assertEqual([f.pad for f in m.files], [False, False, False])
        m = _multi(_file(5, "a"), _file(11, ".pad", "11"))
        self.assertEqual([f.pad for f in m.files], [False, False])

    def test_private(self) -> None:
        """private=1 marks the torrent private; 0 or absent does not."""
        self.assertTrue(parse(_torrent(_info(extra={b"private": 1}))).private)
        self.assertFalse(parse(_torrent(_info(extra={b"private": 0}))).private)
        self.assertFalse(parse(_torrent(_info())).private)

    def test_utf8_keys_preferred(self) -> None:
        """name.utf-8 and path.utf-8 win over name and path."""
        info = _info(
            files=[{b"length": 5, b"path": [b"old"], b"path.utf-8": [b"n\xc3\xa9w"]}],
            name=b"old-name",
            extra={b"name.utf-8": b"r\xc3\xa9al"},
        )
        m = parse(_torrent(info))
        self.assertEqual(m.name, "r\u00e9al")
        self.assertEqual(m.files[0].path, ("r\u00e9al", "n\u00e9w"))
        self.assertFalse(m.files[0].renamed)


class TrackerTests(SynchronousTestCase):
    """announce, announce-list (BEP 12) and url-list (BEP 19)."""

    def test_announce(self) -> None:
        """announce alone is one tier of one tracker."""
        m = parse(_torrent(top={b"announce": b"http://t/announce"}))
        self.assertEqual(m.trackers, (("http://t/announce",),))

    def test_none(self) -> None:
        """A trackerless torrent has no tiers."""
        self.assertEqual(parse(_torrent()).trackers, ())

    def test_announce_list_wins(self) -> None:
        """With announce-list, announce is ignored (BEP 12)."""
        m = parse(
            _torrent(
                top={
                    b"announce": b"http://ignored/",
                    b"announce-list": [[b"udp://a:1", b"udp://b:1"], [b"http://c/"]],
                }
            )
        )
        self.assertEqual(m.trackers, (("udp://a:1", "udp://b:1"), ("http://c/",)))

    def test_empty_tiers_dropped(self) -> None:
        """Empty tiers, and tiers that hold nothing usable, are dropped."""
        m = parse(
            _torrent(
                top={
                    b"announce-list": [[], [b"udp://a:1"], [b"", b"  ", 5], b"notalist", [b"x:/"]]
                }
            )
        )
        self.assertEqual(m.trackers, (("udp://a:1",), ("x:/",)))

    def test_duplicates_dropped(self) -> None:
        """A URL already seen, in any tier, is dropped."""
        m = parse(
            _torrent(
                top={
                    b"announce-list": [
                        [b"udp://a:1", b"udp://a:1", b"udp://b:1"],
                        [b"udp://b:1"],
                        [b"udp://c:1", b"udp://a:1"],
                    ]
                }
            )
        )
        self.assertEqual(m.trackers, (("udp://a:1", "udp://b:1"), ("udp://c:1",)))

    def test_whitespace_stripped(self) -> None:
        """Whitespace around a tracker URL is removed."""
        m = parse(_torrent(top={b"announce-list": [[b" udp://a:1\n"]]}))
        self.assertEqual(m.trackers, (("udp://a:1",),))

    def test_empty_announce_list_falls_back(self) -> None:
        """An announce-list with nothing usable falls back to announce."""
        m = parse(_torrent(top={b"announce": b"http://t/", b"announce-list": [[]]}))
        self.assertEqual(m.trackers, (("http://t/",),))

    def test_url_list_string(self) -> None:
        """url-list may be a single string."""
        m = parse(_torrent(top={b"url-list": b"https://w/f"}))
        self.assertEqual(m.url_list, ("https://w/f",))

    def test_url_list_list(self) -> None:
        """url-list may be a list; empty and non-string entries are skipped."""
        m = parse(_torrent(top={b"url-list": [b"https://a/", b"", 3, b"http://b/"]}))
        self.assertEqual(m.url_list, ("https://a/", "http://b/"))

    def test_url_list_empty_string(self) -> None:
        """An empty url-list string means no web seeds."""
        self.assertEqual(parse(_torrent(top={b"url-list": b""})).url_list, ())


class InfoHashTests(SynchronousTestCase):
    """The info hash is over the info bytes exactly as they stand."""

    def test_unsorted_keys(self) -> None:
        """A hand-built info with unsorted keys hashes as written, not re-encoded."""
        pieces = _hashes(20, 16)
        info = (
            b"d"  # info dictionary start
            b"4:name"  # "name" comes before "length": out of order
            b"4:file"  # = "file"
            b"6:length"  # "length"
            b"i20e"  # = 20
            b"6:pieces"  # "pieces" before "piece length": out of order
            b"40:" + pieces + b"12:piece length"  # two hashes, then "piece length"
            b"i16e"  # = 16
            b"e"  # info dictionary end
        )
        raw = (
            b"d"  # torrent start
            b"8:announce"  # key "announce"
            b"9:http://t/"  # a tracker
            b"4:info" + info + b"7:zzzlast"  # the info dictionary, then another key
            b"i1e"  # = 1
            b"e"  # torrent end
        )
        m = parse(raw)
        self.assertEqual(m.info_bytes, info)
        self.assertEqual(m.info_hash, hashlib.sha1(info).digest())
        self.assertNotEqual(m.info_hash, hashlib.sha1(encode(decode(info))).digest())
        self.assertEqual(m.name, "file")

    def test_unknown_info_keys(self) -> None:
        """Keys we do not know stay in the hashed bytes."""
        info = _info(extra={b"source": b"tracker", b"x-custom": [1, 2]})
        m = parse(_torrent(info))
        self.assertEqual(m.info_hash, hashlib.sha1(encode(info)).digest())


class HybridTests(SynchronousTestCase):
    """BitTorrent v2 (BEP 52)."""

    def test_hybrid(self) -> None:
        """v1 keys plus 'meta version' 2 and 'file tree' load as v1, flagged hybrid."""
        info = _info(
            extra={
                b"meta version": 2,
                b"file tree": {b"root": {b"": {b"length": 40, b"pieces root": b"r" * 32}}},
            }
        )
        m = parse(_torrent(info, {b"piece layers": {}}))
        self.assertTrue(m.hybrid)
        self.assertEqual(m.files, (FileEntry(("root",), 40, 0),))
        self.assertEqual(m.info_hash, hashlib.sha1(encode(info)).digest())

    def test_v2_only(self) -> None:
        """A v2-only torrent raises UnsupportedTorrentError naming info."""
        info = {
            b"name": b"root",
            b"piece length": 16384,
            b"meta version": 2,
            b"file tree": {b"root": {b"": {b"length": 40, b"pieces root": b"r" * 32}}},
        }
        e = self.assertRaises(UnsupportedTorrentError, parse, _torrent(info))
        self.assertEqual(e.field, "info")
        self.assertIsInstance(e, MetainfoError)


class RejectionTests(SynchronousTestCase):
    """Each way a torrent is refused, naming the field."""

    def assertRejected(
        self, raw: bytes, field: str, limits: MetainfoLimits | None = None
    ) -> MetainfoError:
        """parse(raw) raises MetainfoError naming C{field}."""
        args = (raw,) if limits is None else (raw, limits)
        e: MetainfoError = self.assertRaises(MetainfoError, parse, *args)
        self.assertEqual(e.field, field)
        self.assertTrue(e.reason)
        return e

    def test_not_bencoding(self) -> None:
        """Bytes that are not bencoding are refused as 'torrent'."""
        for raw in [b"", b"garbage", b"d4:info", b"d4:infodee\x00"]:
            self.assertRejected(raw, "torrent")

    def test_not_dictionary(self) -> None:
        """A top level that is not a dictionary is refused."""
        for raw in [b"le", b"i1e", b"4:spam"]:
            self.assertRejected(raw, "torrent")

    def test_missing_info(self) -> None:
        """A torrent without info is refused."""
        self.assertRejected(encode({b"announce": b"http://t/"}), "info")

    def test_info_not_dict(self) -> None:
        """An info that is not a dictionary is refused."""
        for info in [b"x", 1, [1]]:
            self.assertRejected(_torrent(info), "info")

    def test_piece_length(self) -> None:
        """A missing, non-integer, zero or negative piece length is refused."""
        info = _info()
        del info[b"piece length"]
        self.assertRejected(_torrent(info), "info.piece length")
        for value in [b"16", 0, -16, [16]]:
            info = _info()
            info[b"piece length"] = value
            self.assertRejected(_torrent(info), "info.piece length")

    def test_pieces_missing(self) -> None:
        """A v1 torrent without pieces is refused."""
        info = _info()
        del info[b"pieces"]
        self.assertRejected(_torrent(info), "info.pieces")

    def test_pieces_not_string(self) -> None:
        """pieces must be a string."""
        self.assertRejected(_torrent(_info(extra={b"pieces": [b"x" * 20]})), "info.pieces")

    def test_pieces_not_multiple_of_20(self) -> None:
        """pieces whose length is not a multiple of 20 is refused."""
        for n in (1, 19, 41, 59):
            self.assertRejected(_torrent(_info(extra={b"pieces": b"x" * n})), "info.pieces")

    def test_pieces_count_mismatch(self) -> None:
        """One hash too few or too many is refused."""
        for n in (2, 4, 0):  # 40 bytes in pieces of 16 need exactly 3
            e = self.assertRejected(
                _torrent(_info(length=40, extra={b"pieces": b"x" * 20 * n})), "info.pieces"
            )
            self.assertIn("expected 3", e.reason)

    def test_both_length_and_files(self) -> None:
        """info with both length and files is refused."""
        info = _info(files=[_file(40, "a")], extra={b"length": 40})
        self.assertRejected(_torrent(info), "info")

    def test_files_empty(self) -> None:
        """An empty files list is refused."""
        info = _info(files=[])
        info[b"pieces"] = b"x" * 20
        self.assertRejected(_torrent(info), "info.files")

    def test_files_not_list(self) -> None:
        """files that is not a list is refused."""
        self.assertRejected(_torrent(_info(files=[_file(1, "a")], extra={b"files": b"a"})),
                            "info.files")

    def test_file_not_dict(self) -> None:
        """A files entry that is not a dictionary is refused, by index."""
        info = _info(files=[_file(40, "a")])
        info[b"files"].append(b"b")
        self.assertRejected(_torrent(info), "info.files[1]")

    def test_file_length(self) -> None:
        """A file length that is missing, negative or not an integer is refused."""
        for bad in [{b"path": [b"b"]}, _file(-1, "b"), _file(0, "b") | {b"length": b"1"}]:
            info = _info(files=[_file(40, "a")])
            info[b"files"].append(bad)
            self.assertRejected(_torrent(info), "info.files[1].length")

    def test_single_length(self) -> None:
        """A single file's length that is missing or negative is refused."""
        info = _info()
        del info[b"length"]
        self.assertRejected(_torrent(info), "info.length")
        info = _info(length=40)
        info[b"length"] = -40
        self.assertRejected(_torrent(info), "info.length")

    def test_no_data(self) -> None:
        """A torrent whose files are all empty is refused."""
        info = _info(files=[_file(0, "a"), _file(0, "b")])
        info[b"pieces"] = b""
        self.assertRejected(_torrent(info), "info")

    def test_path_types(self) -> None:
        """A path that is missing, not a list, empty, or holds a non-string is refused."""
        for path in [None, b"a", [], [b"a", 1], [[b"a"]]]:
            entry: dict[bytes, Any] = {b"length": 40}
            if path is not None:
                entry[b"path"] = path
            self.assertRejected(_torrent(_info(files=[entry])), "info.files[0].path")

    def test_name(self) -> None:
        """A name that is missing, not a string, or empty is refused."""
        info = _info()
        del info[b"name"]
        self.assertRejected(_torrent(info), "info.name")
        for name in [1, [b"a"]]:
            self.assertRejected(_torrent(_info(extra={b"name": name})), "info.name")
        for name in [b"", b".", b"..", b"a/b", b"C:\\x", b"\x00"]:
            self.assertRejected(_torrent(_info(name=name)), "info.name")

    def test_not_bytes(self) -> None:
        """parse refuses str with TypeError (API misuse)."""
        self.assertRaises(TypeError, parse, "d4:infodee")


class LimitsTests(SynchronousTestCase):
    """Each MetainfoLimits field: accepted at the limit, refused one past it."""

    def check(
        self, raw: bytes, field: str, at: MetainfoLimits, past: MetainfoLimits
    ) -> None:
        """raw parses under C{at} and is refused naming C{field} under C{past}."""
        parse(raw, at)
        e = self.assertRaises(MetainfoError, parse, raw, past)
        self.assertEqual(e.field, field)

    def test_max_torrent_size(self) -> None:
        """max_torrent_size counts the bytes of the file."""
        raw = _torrent()
        self.check(
            raw,
            "torrent",
            MetainfoLimits(max_torrent_size=len(raw)),
            MetainfoLimits(max_torrent_size=len(raw) - 1),
        )

    def test_max_pieces(self) -> None:
        """max_pieces counts the hashes."""
        raw = _torrent(_info(length=40, piece_length=16))  # 3 pieces
        self.check(
            raw, "info.pieces", MetainfoLimits(max_pieces=3), MetainfoLimits(max_pieces=2)
        )

    def test_max_piece_length(self) -> None:
        """max_piece_length bounds the piece length."""
        raw = _torrent(_info(piece_length=16))
        self.check(
            raw,
            "info.piece length",
            MetainfoLimits(max_piece_length=16),
            MetainfoLimits(max_piece_length=15),
        )

    def test_max_files(self) -> None:
        """max_files counts the entries of info.files."""
        raw = _torrent(_info(files=[_file(10, "a"), _file(10, "b"), _file(0, "c")]))
        self.check(raw, "info.files", MetainfoLimits(max_files=3), MetainfoLimits(max_files=2))

    def test_max_path_depth_multi(self) -> None:
        """max_path_depth counts the components of a file's path on disk,
        the torrent's name included."""
        raw = _torrent(_info(files=[_file(10, "a", "b", "c")]))  # root/a/b/c
        self.check(
            raw,
            "info.files[0].path",
            MetainfoLimits(max_path_depth=4),
            MetainfoLimits(max_path_depth=3),
        )

    def test_max_path_depth_raw(self) -> None:
        """A path list longer than max_path_depth is refused before sanitising."""
        raw = _torrent(_info(files=[_file(10, "", "", "", "a")]))
        e = self.assertRaises(MetainfoError, parse, raw, MetainfoLimits(max_path_depth=3))
        self.assertEqual(e.field, "info.files[0].path")

    def test_max_component_length(self) -> None:
        """max_component_length counts UTF-8 bytes, in paths and in the name."""
        exact = "\u00e9" * 5  # ten bytes of UTF-8
        raw = _torrent(_info(files=[_file(10, exact)]))
        self.check(
            raw,
            "info.files[0].path",
            MetainfoLimits(max_component_length=10),
            MetainfoLimits(max_component_length=9),
        )
        raw = _torrent(_info(name=exact.encode()))
        self.check(
            raw,
            "info.name",
            MetainfoLimits(max_component_length=10),
            MetainfoLimits(max_component_length=9),
        )


class PathTests(SynchronousTestCase):
    """Path sanitising: reject what is dangerous, rename what is merely odd."""

    def assertPathRejected(self, *path: str | bytes) -> None:
        """A file with this path is refused, naming its path field."""
        raw = _torrent(_info(files=[_file(5, "ok"), _file(5, *path)]))
        e = self.assertRaises(MetainfoError, parse, raw)
        self.assertEqual(e.field, "info.files[1].path")

    def test_dot_dot(self) -> None:
        """'..' anywhere is refused."""
        self.assertPathRejected("..", "etc", "passwd")
        self.assertPathRejected("a", "..")
        self.assertPathRejected("a", "..", "b")

    def test_separators(self) -> None:
        """A component holding '/' or '\\' is refused."""
        self.assertPathRejected("a/b")
        self.assertPathRejected("a\\b")
        self.assertPathRejected("..\\..\\evil")

    def test_absolute(self) -> None:
        """An absolute path as a component is refused."""
        self.assertPathRejected("/etc/passwd")
        self.assertPathRejected("/")

    def test_drive_letter(self) -> None:
        """A drive-letter prefix loses its colon (a rename); with a backslash it is refused."""
        m = _multi(_file(5, "C:"), _file(5, "c:evil"), _file(5, "A: story.txt"))
        self.assertEqual(
            _paths(m), [("root", "C_"), ("root", "c_evil"), ("root", "A_ story.txt")]
        )
        self.assertEqual([f.renamed for f in m.files], [True, True, True])
        self.assertPathRejected("C:\\Windows")

    def test_nul(self) -> None:
        """A NUL byte is refused."""
        self.assertPathRejected(b"a\x00b")

    def test_empty_and_dot_dropped(self) -> None:
        """'' and '.' components are dropped, and the file marked renamed."""
        m = _multi(_file(5, "", "a", ".", "b"), _file(5, "c"))
        self.assertEqual(_paths(m), [("root", "a", "b"), ("root", "c")])
        self.assertEqual([f.renamed for f in m.files], [True, False])

    def test_only_dots(self) -> None:
        """A path with nothing left after dropping is refused."""
        self.assertPathRejected(".", "")

    def test_control_characters(self) -> None:
        """Control characters become '_' (a rename)."""
        m = _multi(_file(5, "a\x01b\x1fc\x7fd\ne"))
        self.assertEqual(m.files[0].path, ("root", "a_b_c_d_e"))
        self.assertTrue(m.files[0].renamed)

    def test_invalid_utf8(self) -> None:
        """Bytes that are not UTF-8 become U+FFFD (a rename)."""
        m = _multi(_file(5, b"caf\xe9"))
        self.assertEqual(m.files[0].path, ("root", "caf\ufffd"))
        self.assertTrue(m.files[0].renamed)

    def test_unicode_not_normalised(self) -> None:
        """Names keep their Unicode spelling (NFD stays NFD, no rename), so two
        spellings of one name are two files, as on POSIX file systems."""
        m = _multi(_file(5, b"e\xcc\x81.txt"), _file(5, b"\xc3\xa9.txt"))
        self.assertEqual(_paths(m), [("root", "e\u0301.txt"), ("root", "\u00e9.txt")])
        self.assertEqual([f.renamed for f in m.files], [False, False])

    def test_name_sanitised(self) -> None:
        """The torrent's name is sanitised too, and a rename marks every file."""
        m = parse(_torrent(_info(name=b"a\x01b")))
        self.assertEqual((m.name, m.files[0].path, m.files[0].renamed), ("a_b", ("a_b",), True))
        m = _multi(_file(5, "x"), _file(5, "y"), name=b"n\x02")
        self.assertEqual([f.renamed for f in m.files], [True, True])

    def test_clean_not_renamed(self) -> None:
        """An ordinary path is kept as is and not marked renamed."""
        m = _multi(_file(5, "dir", "Sub Dir", "file name (1).tar.gz"))
        self.assertEqual(m.files[0].path, ("root", "dir", "Sub Dir", "file name (1).tar.gz"))
        self.assertFalse(m.files[0].renamed)

    def test_duplicates_renamed(self) -> None:
        """A repeated path gets '.N' before its extension, N counting up."""
        m = _multi(
            _file(1, "a.txt"),
            _file(1, "a.txt"),
            _file(1, "a.txt"),
            _file(1, "noext"),
            _file(1, "noext"),
            _file(1, ".bashrc"),
            _file(1, ".bashrc"),
            _file(1, "d", "x.tar.gz"),
            _file(1, "d", "x.tar.gz"),
        )
        self.assertEqual(
            [f.path[1:] for f in m.files],
            [
                ("a.txt",),
                ("a.1.txt",),
                ("a.2.txt",),
                ("noext",),
                ("noext.1",),
                (".bashrc",),
                (".bashrc.1",),
                ("d", "x.tar.gz"),
                ("d", "x.tar.1.gz"),
            ],
        )
        self.assertEqual(
            [f.renamed for f in m.files],
            [False, True, True, False, True, False, True, False, True],
        )

    def test_rename_skips_taken_name(self) -> None:
        """A rename never lands on a name a file already has."""
        m = _multi(_file(1, "a.1.txt"), _file(1, "a.txt"), _file(1, "a.txt"))
        self.assertEqual(
            [f.path[1:] for f in m.files], [("a.1.txt",), ("a.txt",), ("a.2.txt",)]
        )

    def test_file_after_directory(self) -> None:
        """A file named like an earlier file's directory is renamed."""
        m = _multi(_file(1, "a", "b"), _file(1, "a"))
        self.assertEqual(_paths(m), [("root", "a", "b"), ("root", "a.1")])
        self.assertEqual([f.renamed for f in m.files], [False, True])

    def test_directory_after_file(self) -> None:
        """A path that needs an earlier file to be a directory is refused."""
        e = self.assertRaises(MetainfoError, _multi, _file(1, "a"), _file(1, "a", "b"))
        self.assertEqual(e.field, "info.files[1].path")
        e = self.assertRaises(
            MetainfoError, _multi, _file(1, "a", "b"), _file(1, "a", "b", "c", "d")
        )
        self.assertEqual(e.field, "info.files[1].path")

    def test_pad_files_not_checked(self) -> None:
        """Pad files never collide with each other or with real files."""
        m = _multi(
            _file(1, "a"),
            _file(15, ".pad", "15", attr=b"p"),
            _file(1, "b"),
            _file(15, ".pad", "15", attr=b"p"),
            _file(1, "c"),
            _file(15, "a", attr=b"p"),
            _file(1, "a", "x", attr=b"p"),
        )
        self.assertEqual(
            _paths(m),
            [
                ("root", "a"),
                ("root", ".pad", "15"),
                ("root", "b"),
                ("root", ".pad", "15"),
                ("root", "c"),
                ("root", "a"),
                ("root", "a", "x"),
            ],
        )
        self.assertFalse(any(f.renamed for f in m.files))

    def test_pad_path_still_sanitised(self) -> None:
        """A pad file's path is still checked for danger."""
        raw = _torrent(_info(files=[_file(5, "ok"), _file(5, "..", "x", attr=b"p")]))
        self.assertRaises(MetainfoError, parse, raw)


class SanitizePathTests(SynchronousTestCase):
    """sanitize_path on its own."""

    def test_result(self) -> None:
        """It returns the cleaned tuple and whether it changed."""
        self.assertEqual(sanitize_path([b"a", b"b"], "f"), (("a", "b"), False))
        self.assertEqual(sanitize_path([b"a", b"", b"b\x01"], "f"), (("a", "b_"), True))

    def test_field_named(self) -> None:
        """Errors carry the field name given."""
        e = self.assertRaises(MetainfoError, sanitize_path, [b".."], "my.field")
        self.assertEqual(e.field, "my.field")
        e = self.assertRaises(MetainfoError, sanitize_path, b"a", "my.field")
        self.assertEqual(e.field, "my.field")

    def test_limits(self) -> None:
        """It applies depth and component-length limits."""
        limits = MetainfoLimits(max_path_depth=2, max_component_length=3)
        self.assertEqual(sanitize_path([b"abc", b"def"], "f", limits), (("abc", "def"), False))
        self.assertRaises(MetainfoError, sanitize_path, [b"a", b"b", b"c"], "f", limits)
        self.assertRaises(MetainfoError, sanitize_path, [b"abcd"], "f", limits)


class ParseInfoTests(SynchronousTestCase):
    """parse_info: a bare info dictionary, as BEP 9 delivers it."""

    def test_round_trip(self) -> None:
        """parse_info of a torrent's info_bytes gives the same torrent, minus trackers."""
        info = _info(files=[_file(10, "a"), _file(30, "b", "c")], extra={b"private": 1})
        full = parse(_torrent(info, {b"announce": b"http://t/", b"comment": b"c"}))
        bare = parse_info(full.info_bytes)
        self.assertEqual(bare.info_hash, full.info_hash)
        self.assertEqual(bare.info_bytes, full.info_bytes)
        self.assertEqual(bare.files, full.files)
        self.assertEqual((bare.name, bare.pieces, bare.private), (full.name, full.pieces, True))
        self.assertEqual((bare.trackers, bare.comment), ((), None))

    def test_unsorted(self) -> None:
        """Unsorted info bytes keep their hash through parse_info."""
        info = b"d4:name1:x6:lengthi5e6:pieces20:" + b"p" * 20 + b"12:piece lengthi16ee"
        self.assertEqual(parse_info(info).info_hash, hashlib.sha1(info).digest())

    def test_hash_is_of_input(self) -> None:
        """The info hash is the SHA-1 of exactly the bytes given."""
        info = encode(_info())
        self.assertEqual(parse_info(info).info_hash, hashlib.sha1(info).digest())

    def test_not_a_dictionary(self) -> None:
        """Input that is not one dictionary is refused."""
        for raw in [b"", b"i1e", b"le", encode(_info())[:-1]]:
            self.assertRaises(MetainfoError, parse_info, raw)

    def test_trailing_bytes(self) -> None:
        """Bytes after the info dictionary are refused, not read as torrent keys."""
        info = encode(_info())
        for trailer in [b"8:announce9:http://x/", b"1:xi0e", b"e"]:
            self.assertRaises(MetainfoError, parse_info, info + trailer)
