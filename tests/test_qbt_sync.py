"""qBittorrent API: sync/maindata diffs (the pure diff, the snapshot book,
the endpoint) and sync/torrentPeers."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase

from tests.qbtcase import MAGNET, QbtCase
from txbittorrent.web.qbt.sync import Snapshot, SyncBook, diff


class DiffTests(SynchronousTestCase):
    def test_changed_fields_only(self) -> None:
        """A torrent's diff holds only its changed fields; a new one all of them;
        a gone one is in torrents_removed; empty parts are left out."""
        old = Snapshot(items={"a": {"x": 1, "y": 2}, "b": {"x": 1}}, server_state={"s": 1})
        new = Snapshot(items={"a": {"x": 1, "y": 3}, "c": {"x": 5}}, server_state={"s": 1})
        self.assertEqual(diff(old, new, "torrents"), {
            "torrents": {"a": {"y": 3}, "c": {"x": 5}}, "torrents_removed": ["b"]})

    def test_nothing_changed(self) -> None:
        """No change: an empty diff."""
        snap = Snapshot(items={"a": {"x": 1}}, categories={"c": {"name": "c"}}, tags=("t",))
        self.assertEqual(diff(snap, snap, "torrents"), {})

    def test_categories_tags_server_state(self) -> None:
        """Categories, tags and server state diff as qBittorrent's do."""
        old = Snapshot(items={}, categories={"tv": {"name": "tv", "savePath": ""},
                                             "old": {"name": "old", "savePath": ""}},
                       tags=("a", "b"), server_state={"dl": 1, "up": 2})
        new = Snapshot(items={}, categories={"tv": {"name": "tv", "savePath": "/x"}},
                       tags=("b", "c"), server_state={"dl": 1, "up": 3})
        self.assertEqual(diff(old, new, "torrents"), {
            "categories": {"tv": {"name": "tv", "savePath": "/x"}},
            "categories_removed": ["old"], "tags": ["c"], "tags_removed": ["a"],
            "server_state": {"up": 3}})


class SyncBookTests(SynchronousTestCase):
    def test_rids(self) -> None:
        """rid 0 or unknown: full update; a known rid: the diff; rids grow."""
        book = SyncBook(per_client=2, max_clients=2)
        first = book.answer("c", "m", 0, Snapshot(items={"a": {"x": 1}}), "torrents", True)
        self.assertTrue(first["full_update"])
        self.assertEqual(first["torrents"], {"a": {"x": 1}})
        second = book.answer("c", "m", first["rid"], Snapshot(items={"a": {"x": 2}}),
                             "torrents", True)
        self.assertEqual(second, {"torrents": {"a": {"x": 2}}, "rid": first["rid"] + 1})
        unknown = book.answer("c", "m", 999, Snapshot(items={}), "torrents", True)
        self.assertTrue(unknown["full_update"])

    def test_bounded(self) -> None:
        """At most per_client snapshots per stream (an old rid gets a full
        update) and max_clients streams."""
        book = SyncBook(per_client=2, max_clients=2)
        rids = [book.answer("c", "m", 0, Snapshot(items={}), "torrents", False)["rid"]
                for _ in range(3)]
        self.assertTrue(book.answer("c", "m", rids[0], Snapshot(items={}), "torrents",
                                    False)["full_update"])
        self.assertNotIn("full_update", book.answer("c", "m", rids[2], Snapshot(items={}),
                                                    "torrents", False))
        for client in ("d", "e", "f"):
            book.answer(client, "m", 0, Snapshot(items={}), "torrents", False)
        self.assertLessEqual(book.snapshot_count(), 4)

    def test_clients_apart(self) -> None:
        """One client's rid means nothing to another."""
        book = SyncBook()
        rid = book.answer("c", "m", 0, Snapshot(items={}), "torrents", False)["rid"]
        self.assertTrue(book.answer("d", "m", rid, Snapshot(items={}), "torrents",
                                    False)["full_update"])


class MaindataTests(QbtCase):
    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        yield super().setUp()
        yield self.login()

    @inlineCallbacks
    def test_full_then_diffs(self) -> Generator[Any, Any, None]:
        """The first poll is a full update; after an add the diff names the new
        torrent in full; a category change shows as that field alone; a
        deletion as torrents_removed."""
        first = yield self.json("/sync/maindata", params={"rid": "0"})
        self.assertTrue(first["full_update"])
        self.assertEqual(first["torrents"], {})
        self.assertIn("dl_info_speed", first["server_state"])
        self.assertEqual((first["categories"], first["tags"]), ({}, []))
        yield self.text("/torrents/add", data={"urls": MAGNET, "stopped": "true"})
        ih = self.session.torrents()[0].info_hash.hex()
        second = yield self.json("/sync/maindata", params={"rid": str(first["rid"])})
        self.assertNotIn("full_update", second)
        self.assertEqual(second["torrents"][ih]["state"], "stoppedDL")
        self.assertIn("name", second["torrents"][ih])
        yield self.text("/torrents/createCategory", data={"category": "tv"})
        yield self.text("/torrents/setCategory", data={"hashes": ih, "category": "tv"})
        third = yield self.json("/sync/maindata", method="POST",
                                data={"rid": str(second["rid"])})
        self.assertEqual(third["torrents"], {ih: {"category": "tv"}})
        self.assertEqual(third["categories"], {"tv": {"name": "tv", "savePath": "",
                                                      "download_path": None}})
        yield self.text("/torrents/delete", data={"hashes": ih, "deleteFiles": "false"})
        fourth = yield self.json("/sync/maindata", params={"rid": str(third["rid"])})
        self.assertEqual(fourth["torrents_removed"], [ih])
        again = yield self.json("/sync/maindata", params={"rid": "123456"})
        self.assertTrue(again["full_update"])

    @inlineCallbacks
    def test_torrent_peers(self) -> Generator[Any, Any, None]:
        """torrentPeers: a full update with no peers, then empty diffs; 404
        for an unknown hash."""
        yield self.text("/torrents/add", data={"urls": MAGNET, "stopped": "true"})
        ih = self.session.torrents()[0].info_hash.hex()
        first = yield self.json("/sync/torrentPeers", params={"hash": ih, "rid": "0"})
        self.assertEqual((first["full_update"], first["peers"]), (True, {}))
        second = yield self.json("/sync/torrentPeers",
                                 params={"hash": ih, "rid": str(first["rid"])})
        self.assertEqual(set(second), {"rid", "show_flags"})
        code, _ = yield self.status("/sync/torrentPeers", method="GET",
                                    params={"hash": "0" * 40})
        self.assertEqual(code, 404)
