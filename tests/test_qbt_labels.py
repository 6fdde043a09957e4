"""qBittorrent API: categories and tags, kept in the StateStore."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import inlineCallbacks

from tests.qbtcase import HASH1, HASH2, MAGNET, QbtCase


class QbtCategoryTests(QbtCase):
    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        yield super().setUp()
        yield self.login()
        yield self.text("/torrents/add", data={"urls": f"{MAGNET}\n{HASH1}", "stopped": "true"})

    @inlineCallbacks
    def test_create_edit_remove(self) -> Generator[Any, Any, None]:
        """createCategory (409 if it exists, 400 for a bad name), editCategory
        (409 if it does not), categories lists them, removeCategories (one a
        line) deletes them and takes them off their torrents."""
        yield self.text("/torrents/createCategory", data={"category": "tv", "savePath": "tv"})
        yield self.text("/torrents/createCategory", data={"category": "films"})
        code, _ = yield self.status("/torrents/createCategory", data={"category": "tv"})
        self.assertEqual(code, 409)
        code, _ = yield self.status("/torrents/createCategory", data={"category": ""})
        self.assertEqual(code, 400)
        for bad in ("/x", "a//b", "x/", "a\\b"):
            code, text = yield self.status("/torrents/createCategory", data={"category": bad})
            self.assertEqual((code, text), (409, "Incorrect category name"), bad)
        code, _ = yield self.status("/torrents/editCategory",
                                    data={"category": "nope", "savePath": ""})
        self.assertEqual(code, 409)
        code, _ = yield self.status("/torrents/editCategory", data={"category": "tv"})
        self.assertEqual(code, 400)
        yield self.text("/torrents/editCategory", data={"category": "films", "savePath": "/f"})
        categories = yield self.json("/torrents/categories")
        self.assertEqual({k: v["savePath"] for k, v in categories.items()},
                         {"tv": os.path.join(self.download_dir, "tv"), "films": "/f"})
        self.assertEqual(categories["tv"]["name"], "tv")
        yield self.text("/torrents/setCategory", data={"hashes": HASH2, "category": "tv"})
        yield self.text("/torrents/removeCategories", data={"categories": "tv\nfilms"})
        self.assertEqual(self.store.categories(), {})
        self.assertIsNone(self.store.get(HASH2).category)

    @inlineCallbacks
    def test_set_category(self) -> Generator[Any, Any, None]:
        """setCategory needs an existing category (409); an empty one clears it."""
        code, _ = yield self.status("/torrents/setCategory",
                                    data={"hashes": HASH2, "category": "nope"})
        self.assertEqual(code, 409)
        yield self.text("/torrents/createCategory", data={"category": "tv"})
        yield self.text("/torrents/setCategory", data={"hashes": "all", "category": "tv"})
        self.assertEqual({r.category for r in self.store.torrents()}, {"tv"})
        yield self.text("/torrents/setCategory", data={"hashes": HASH1, "category": ""})
        self.assertIsNone(self.store.get(HASH1).category)


class QbtTagTests(QbtCase):
    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        yield super().setUp()
        yield self.login()
        yield self.text("/torrents/add", data={"urls": f"{MAGNET}\n{HASH1}", "stopped": "true",
                                               "tags": "x"})

    @inlineCallbacks
    def test_tags(self) -> Generator[Any, Any, None]:
        """createTags, addTags (the torrents' labels), removeTags (all without
        tags), deleteTags (off every torrent), tags lists them all."""
        yield self.text("/torrents/createTags", data={"tags": "a, b"})
        tags = yield self.json("/torrents/tags")
        self.assertEqual(tags, ["a", "b", "x"])
        yield self.text("/torrents/addTags", data={"hashes": HASH2, "tags": "b,c"})
        self.assertEqual(self.store.get(HASH2).labels, ("x", "b", "c"))
        [info] = yield self.json("/torrents/info", params={"hashes": HASH2})
        self.assertEqual(info["tags"], "x, b, c")
        yield self.text("/torrents/removeTags", data={"hashes": HASH2, "tags": "x"})
        self.assertEqual(self.store.get(HASH2).labels, ("b", "c"))
        yield self.text("/torrents/deleteTags", data={"tags": "c"})
        self.assertEqual(self.store.get(HASH2).labels, ("b",))
        tags = yield self.json("/torrents/tags")
        self.assertEqual(tags, ["a", "b", "x"])
        yield self.text("/torrents/removeTags", data={"hashes": "all"})
        self.assertEqual({r.labels for r in self.store.torrents()}, {()})
        code, _ = yield self.status("/torrents/createTags", data={"tags": "\x01bad"})
        self.assertEqual(code, 400)

    @inlineCallbacks
    def test_set_tags(self) -> Generator[Any, Any, None]:
        """setTags replaces the torrents' tags and creates the new ones."""
        yield self.text("/torrents/setTags", data={"hashes": HASH1, "tags": "y,z"})
        self.assertEqual(self.store.get(HASH1).labels, ("y", "z"))
        self.assertEqual(self.store.get(HASH2).labels, ("x",))
        self.assertEqual(self.store.tags(), ["y", "z"])
