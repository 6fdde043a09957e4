"""qBittorrent API: torrents/add and the torrent reads (info with its
filters, properties, files, trackers, pieceStates, pieceHashes)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.web.resource import Resource
from twisted.web.static import Data

from tests.qbtcase import HASH1, HASH2, MAGNET, NOW, QbtCase
from tests.webcase import serve
from txbittorrent.core.metainfo import parse
from txbittorrent.web.qbt.fields import INFINITE_ETA


class QbtAddTests(QbtCase):
    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        yield super().setUp()
        yield self.login()

    @inlineCallbacks
    def test_add_magnet_urlencoded(self) -> Generator[Any, Any, None]:
        """urls (url-encoded) adds a magnet with category, tags, stopped and
        the stored-only options; the category is created; booleans in any case."""
        text = yield self.text("/torrents/add", data={
            "urls": MAGNET, "category": "tv", "tags": "a,b", "stopped": "TRUE",
            "sequentialDownload": "True", "ratioLimit": "1.5", "dlLimit": "5000",
            "skip_checking": "true", "contentLayout": "Original"})
        self.assertEqual(text, "Ok.")
        [torrent] = self.session.torrents()
        self.assertEqual(torrent.info_hash.hex(), HASH2)
        record = self.store.get(HASH2)
        assert record is not None
        self.assertEqual((record.category, record.labels, record.wanted),
                         ("tv", ("a", "b"), "paused"))
        self.assertIn("tv", self.store.categories())
        self.assertEqual(torrent.config.download_limit, 5000)
        [info] = yield self.json("/torrents/info")
        self.assertEqual((info["category"], info["tags"], info["seq_dl"], info["ratio_limit"]),
                         ("tv", "a, b", True, 1.5))
        self.assertEqual(info["state"], "stoppedDL")
        self.assertEqual(info["dl_limit"], 5000)

    @inlineCallbacks
    def test_add_several_urls(self) -> Generator[Any, Any, None]:
        """urls holds one source a line: a magnet and a bare info hash."""
        text = yield self.text("/torrents/add", data={"urls": f"{MAGNET}\n{HASH1}\n",
                                                      "paused": "true"})
        self.assertEqual(text, "Ok.")
        self.assertEqual({t.info_hash.hex() for t in self.session.torrents()}, {HASH1, HASH2})

    @inlineCallbacks
    def test_add_torrent_file_any_field(self) -> Generator[Any, Any, None]:
        """A .torrent part under any field name is added, to savepath."""
        root, raw = self.seed_files()
        text = yield self.text("/torrents/add", data={"savepath": root, "tags": "x"},
                               files={"fileselect[]": raw})
        self.assertEqual(text, "Ok.")
        [torrent] = self.session.torrents()
        self.assertEqual(torrent.info_hash, parse(raw).info_hash)
        self.assertEqual(torrent.basedir, root)
        record = self.store.get(torrent.info_hash.hex())
        assert record is not None
        self.assertEqual(record.source, raw)

    @inlineCallbacks
    def test_add_http_url(self) -> Generator[Any, Any, None]:
        """An http URL in urls is fetched and its .torrent added; a URL that
        answers 404 is Fails."""
        root, raw = self.seed_files()
        files = Resource()
        files.putChild(b"t.torrent", Data(raw, "application/x-bittorrent"))
        base = serve(self, files)
        text = yield self.text("/torrents/add", data={"urls": f"{base}/t.torrent",
                                                      "savepath": root, "paused": "true"})
        self.assertEqual(text, "Ok.")
        [torrent] = self.session.torrents()
        self.assertEqual(torrent.info_hash, parse(raw).info_hash)
        text = yield self.text("/torrents/add", data={"urls": f"{base}/missing.torrent"})
        self.assertEqual(text, "Fails.")

    @inlineCallbacks
    def test_add_default_and_category_save_path(self) -> Generator[Any, Any, None]:
        """Without savepath: the category's save path, else the default one."""
        yield self.text("/torrents/createCategory", data={"category": "films",
                                                          "savePath": "films"})
        yield self.text("/torrents/add", data={"urls": MAGNET, "category": "films",
                                               "stopped": "true"})
        yield self.text("/torrents/add", data={"urls": HASH1, "stopped": "true"})
        paths = {t.info_hash.hex(): t.basedir for t in self.session.torrents()}
        self.assertEqual(paths, {HASH2: os.path.join(self.download_dir, "films"),
                                 HASH1: self.download_dir})

    @inlineCallbacks
    def test_add_fails(self) -> Generator[Any, Any, None]:
        """A duplicate, a bad source or a bad .torrent answer Fails.; nothing
        at all is 400; a savepath with '..' is 400."""
        yield self.text("/torrents/add", data={"urls": MAGNET, "stopped": "true"})
        for data in ({"urls": MAGNET}, {"urls": "/etc/passwd"}, {"urls": "ftp://x/y.torrent"}):
            text = yield self.text("/torrents/add", data=data)
            self.assertEqual(text, "Fails.", data)
        code, text = yield self.status("/torrents/add", data={}, files={"t": b"d4:infoi1ee"})
        self.assertEqual((code, text), (400, "Error: 't' is not a valid torrent file."))
        code, _ = yield self.status("/torrents/add", data={"category": "x"})
        self.assertEqual(code, 400)
        code, _ = yield self.status("/torrents/add", data={"urls": HASH1, "savepath": "../up"})
        self.assertEqual(code, 400)
        self.assertEqual(len(self.session.torrents()), 1)


class QbtReadTests(QbtCase):
    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        yield super().setUp()
        yield self.login()
        self.seed = yield self.add_seed(category="", tags="seed")
        self.ih = self.seed.info_hash.hex()
        yield self.text("/torrents/createCategory", data={"category": "tv"})
        yield self.text("/torrents/add", data={"urls": MAGNET, "category": "tv",
                                               "stopped": "true"})

    @inlineCallbacks
    def test_info_fields(self) -> Generator[Any, Any, None]:
        """A seeding torrent's info: names and units as qBittorrent's."""
        [info] = yield self.json("/torrents/info", params={"hashes": self.ih})
        self.assertEqual(info["hash"], self.ih)
        self.assertEqual(info["name"], "t")
        self.assertEqual((info["size"], info["total_size"]), (71_000, 71_000))
        self.assertEqual(info["progress"], 1.0)
        self.assertIn(info["state"], ("stalledUP", "uploading"))
        self.assertEqual(info["eta"], INFINITE_ETA)
        self.assertEqual(info["tags"], "seed")
        self.assertEqual(info["category"], "")
        self.assertEqual(info["content_path"], os.path.join(self.seed.basedir, "t"))
        self.assertEqual(info["added_on"], int(NOW))
        self.assertEqual((info["amount_left"], info["completed"]), (0, 71_000))
        self.assertEqual((info["dl_limit"], info["up_limit"]), (-1, -1))
        self.assertTrue(info["magnet_uri"].startswith("magnet:?xt=urn:btih:" + self.ih))
        for key in ("dlspeed", "upspeed", "downloaded", "uploaded", "num_seeds", "num_leechs",
                    "num_complete", "num_incomplete", "completion_on", "last_activity",
                    "priority"):
            self.assertIsInstance(info[key], int, key)
        for key in ("seq_dl", "super_seeding", "force_start", "auto_tmm"):
            self.assertIs(info[key], False, key)

    @inlineCallbacks
    def test_info_filters(self) -> Generator[Any, Any, None]:
        """filter, category, tag and hashes narrow the list."""
        def hashes(listing: list[dict[str, Any]]) -> set[str]:
            return {i["hash"] for i in listing}

        got = yield self.json("/torrents/info", params={"filter": "completed"})
        self.assertEqual(hashes(got), {self.ih})
        got = yield self.json("/torrents/info", params={"filter": "stopped"})
        self.assertEqual(hashes(got), {HASH2})
        got = yield self.json("/torrents/info", params={"filter": "paused"})
        self.assertEqual(hashes(got), {HASH2})
        got = yield self.json("/torrents/info", params={"filter": "downloading"})
        self.assertEqual(hashes(got), {HASH2})
        got = yield self.json("/torrents/info", params={"category": "tv"})
        self.assertEqual(hashes(got), {HASH2})
        got = yield self.json("/torrents/info", params={"category": ""})
        self.assertEqual(hashes(got), {self.ih})
        got = yield self.json("/torrents/info", params={"tag": "seed"})
        self.assertEqual(hashes(got), {self.ih})
        got = yield self.json("/torrents/info", params={"tag": ""})
        self.assertEqual(hashes(got), {HASH2})
        got = yield self.json("/torrents/info", params={"hashes": f"{HASH2}|{HASH1}"})
        self.assertEqual(hashes(got), {HASH2})
        got = yield self.json("/torrents/info", method="POST", data={"filter": "all"})
        self.assertEqual(len(got), 2)

    @inlineCallbacks
    def test_info_sort_limit_offset(self) -> Generator[Any, Any, None]:
        """sort, reverse, limit and offset order and slice the list."""
        got = yield self.json("/torrents/info", params={"sort": "total_size"})
        self.assertEqual([i["hash"] for i in got], [HASH2, self.ih])
        got = yield self.json("/torrents/info", params={"sort": "total_size",
                                                        "reverse": "true", "limit": "1"})
        self.assertEqual([i["hash"] for i in got], [self.ih])
        got = yield self.json("/torrents/info", params={"sort": "total_size", "offset": "1"})
        self.assertEqual([i["hash"] for i in got], [self.ih])

    @inlineCallbacks
    def test_properties(self) -> Generator[Any, Any, None]:
        """properties: pieces, sizes, dates; 404 for an unknown hash; a magnet
        without metadata says so."""
        props = yield self.json("/torrents/properties", params={"hash": self.ih})
        self.assertEqual((props["piece_size"], props["pieces_num"], props["pieces_have"]),
                         (16384, 5, 5))
        self.assertEqual(props["total_size"], 71_000)
        self.assertEqual(props["save_path"], self.seed.basedir)
        self.assertEqual(props["addition_date"], int(NOW))
        self.assertIs(props["has_metadata"], True)
        props = yield self.json("/torrents/properties", method="POST", data={"hash": HASH2})
        self.assertEqual((props["has_metadata"], props["pieces_num"]), (False, -1))
        code, text = yield self.status("/torrents/properties", method="GET",
                                       params={"hash": HASH1})
        self.assertEqual(code, 404)
        code, _ = yield self.status("/torrents/properties", method="GET")
        self.assertEqual(code, 400)

    @inlineCallbacks
    def test_files(self) -> Generator[Any, Any, None]:
        """files: the folder-prefixed names, sizes, progress, priorities,
        piece ranges; indexes narrows; none before the metadata."""
        files = yield self.json("/torrents/files", params={"hash": self.ih})
        self.assertEqual([(f["index"], f["name"], f["size"], f["progress"], f["priority"])
                          for f in files],
                         [(0, "t/a.bin", 70_000, 1.0, 1), (1, "t/b/c.txt", 1000, 1.0, 1)])
        self.assertEqual(files[0]["piece_range"], [0, 4])
        self.assertEqual(files[1]["piece_range"], [4, 4])
        self.assertTrue(files[0]["is_seed"])
        files = yield self.json("/torrents/files", params={"hash": self.ih, "indexes": "1"})
        self.assertEqual([f["index"] for f in files], [1])
        files = yield self.json("/torrents/files", params={"hash": HASH2})
        self.assertEqual(files, [])

    @inlineCallbacks
    def test_trackers(self) -> Generator[Any, Any, None]:
        """trackers: the DHT/PeX/LSD pseudo-entries, then each tracker with an
        int status and tier and a string msg."""
        yield self.text("/torrents/addTrackers", data={"hash": self.ih,
                                                       "urls": "http://127.0.0.1:9/announce"})
        trackers = yield self.json("/torrents/trackers", params={"hash": self.ih})
        self.assertEqual([t["url"] for t in trackers[:3]],
                         ["** [DHT] **", "** [PeX] **", "** [LSD] **"])
        real = trackers[3:]
        self.assertEqual([t["url"] for t in real], ["http://127.0.0.1:9/announce"])
        for entry in trackers:
            self.assertIsInstance(entry["status"], int)
            self.assertIsInstance(entry["tier"], int)
            self.assertIsInstance(entry["msg"], str)

    @inlineCallbacks
    def test_piece_states_and_hashes(self) -> Generator[Any, Any, None]:
        """pieceStates: 2 for each verified piece; pieceHashes: the SHA-1s in hex."""
        states = yield self.json("/torrents/pieceStates", params={"hash": self.ih})
        self.assertEqual(states, [2] * 5)
        hashes = yield self.json("/torrents/pieceHashes", params={"hash": self.ih})
        with open(os.path.join(self.seed.basedir, "t", "a.bin"), "rb") as f:
            first = f.read(16384)
        self.assertEqual(hashes[0], hashlib.sha1(first).hexdigest())
        self.assertEqual(len(hashes), 5)
        empty = yield self.json("/torrents/pieceStates", params={"hash": HASH2})
        self.assertEqual(empty, [])

    @inlineCallbacks
    def test_export(self) -> Generator[Any, Any, None]:
        """export answers the uploaded .torrent as application/x-bittorrent;
        409 before the metadata."""
        response, body = yield self.request("GET", "/torrents/export", params={"hash": self.ih})
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("Content-Type"),
                         ["application/x-bittorrent"])
        self.assertIn(f"{self.ih}.torrent",
                      response.headers.getRawHeaders("Content-Disposition")[0])
        self.assertEqual(parse(body).info_hash.hex(), self.ih)
        code, _ = yield self.status("/torrents/export", method="GET", params={"hash": HASH2})
        self.assertEqual(code, 409)

    @inlineCallbacks
    def test_webseeds(self) -> Generator[Any, Any, None]:
        """webseeds lists the .torrent's url-list (none here)."""
        seeds = yield self.json("/torrents/webseeds", params={"hash": self.ih})
        self.assertEqual(seeds, [])

    @inlineCallbacks
    def test_limits_read(self) -> Generator[Any, Any, None]:
        """downloadLimit/uploadLimit: each torrent's limit, -1 unlimited."""
        yield self.text("/torrents/setDownloadLimit", data={"hashes": self.ih, "limit": "4096"})
        limits = yield self.json("/torrents/downloadLimit", params={"hashes": "all"})
        self.assertEqual(limits, {self.ih: 4096, HASH2: -1})
        limits = yield self.json("/torrents/uploadLimit", params={"hashes": self.ih})
        self.assertEqual(limits, {self.ih: -1})
