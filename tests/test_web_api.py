"""The native JSON API (ApiResource) through real sockets on 127.0.0.1
(treq), over a real Session: torrents from bare info hashes and magnets
(idle in the metadata state: no trackers, no DHT) and one real .torrent
seeding from its data on disk; with and without a StateStore."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase

from tests.apicase import BASE32, HASH1, HASH2, MAGNET, ApiCase
from txbittorrent.web.api import MAX_BODY
from txbittorrent.web.apiviews import ROUTES


class RoutesTests(ApiCase):
    """Every route without a store."""

    @inlineCallbacks
    def test_route_list(self) -> Generator[Any, Any, None]:
        """GET /api (and /api/) lists the routes."""
        for path in ("", "/"):
            response, body = yield self.call("GET", path)
            self.assertEqual(response.code, 200)
            self.assertEqual(body, {"routes": ROUTES})

    @inlineCallbacks
    def test_route_list_matches(self) -> Generator[Any, Any, None]:
        """Every listed route exists: another method is 405 with exactly the
        listed methods in Allow."""
        yield self.call("POST", "/torrents", {"source": HASH1})
        for route in ROUTES:
            path = route["path"].replace("<info_hash>", HASH1)[len("/api"):]
            response, body = yield self.call("PATCH", path)
            self.assertEqual(response.code, 405, path)
            self.assertEqual(response.headers.getRawHeaders("Allow"),
                             [", ".join(route["methods"])], path)

    @inlineCallbacks
    def test_add_and_list(self) -> Generator[Any, Any, None]:
        """Adding by hex hash, base32 hash and magnet gives 201 and the
        torrent, running in the metadata state; the list shows all three."""
        response, body = yield self.call("POST", "/torrents", {"source": HASH1.upper()})
        self.assertEqual(response.code, 201)
        self.assertEqual(body["info_hash"], HASH1)
        self.assertEqual(body["has_metadata"], False)
        self.assertEqual((body["size"], body["progress"], body["peers"]), (0, 0.0, 0))
        self.assertEqual(body["save_path"], self.download_dir)
        response, body = yield self.call("POST", "/torrents", {"source": MAGNET})
        self.assertEqual((response.code, body["name"]), (201, "hello"))
        response, body = yield self.call("GET", "/torrents")
        self.assertEqual(response.code, 200)
        self.assertEqual([t["info_hash"] for t in body["torrents"]], [HASH1, HASH2])
        self.assertEqual({t["state"] for t in body["torrents"]}, {"metadata"})
        yield self.session.remove(bytes.fromhex(HASH1))
        response, body = yield self.call("POST", "/torrents", {"source": BASE32})
        self.assertEqual((response.code, body["info_hash"]), (201, HASH1))

    @inlineCallbacks
    def test_add_paused(self) -> Generator[Any, Any, None]:
        """"paused": true adds a torrent that starts paused."""
        response, body = yield self.call("POST", "/torrents", {"source": HASH1, "paused": True})
        self.assertEqual(response.code, 201)
        torrent = self.session.get(bytes.fromhex(HASH1))
        assert torrent is not None
        yield torrent.pause()  # queued after the add's own start: that has run
        response, body = yield self.call("GET", f"/torrents/{HASH1}")
        self.assertEqual(body["state"], "paused")
        response, body = yield self.call("POST", f"/torrents/{HASH1}/start")
        self.assertEqual((response.code, body["state"]), (200, "metadata"))

    @inlineCallbacks
    def test_add_twice_is_409(self) -> Generator[Any, Any, None]:
        """A torrent the session has already is a conflict."""
        yield self.call("POST", "/torrents", {"source": HASH1})
        response, body = yield self.call("POST", "/torrents", {"source": HASH1})
        self.assertEqual(response.code, 409)
        self.assertIn(HASH1, body["error"])
        self.assertEqual(len(self.session.torrents()), 1)

    @inlineCallbacks
    def test_bad_adds_are_400(self) -> Generator[Any, Any, None]:
        """Bad bodies and sources are 400 with a message, and add nothing;
        a path is never opened as a .torrent."""
        bad: list[Any] = [
            b"", b"not json", b"\xff\xfe", b"[1, 2]", b'"x"',
            json.dumps({}).encode(), json.dumps({"source": 5}).encode(),
            json.dumps({"source": "  "}).encode(),
            json.dumps({"source": HASH1, "paused": "yes"}).encode(),
            json.dumps({"source": "/etc/passwd"}).encode(),
            json.dumps({"source": HASH1[:-1]}).encode(),
            json.dumps({"source": "magnet:?dn=nohash"}).encode(),
            b'{"source": "' + b"x" * MAX_BODY + b'"}',
        ]
        for raw in bad:
            response, body = yield self.call("POST", "/torrents", raw=raw)
            self.assertEqual(response.code, 400, raw[:40])
            self.assertIsInstance(body["error"], str)
        self.assertEqual(self.session.torrents(), [])

    @inlineCallbacks
    def test_one_torrent_and_files(self) -> Generator[Any, Any, None]:
        """A seeding .torrent's status, files, peers and trackers."""
        torrent = yield self.seeding_torrent()
        ih = torrent.info_hash.hex()
        response, body = yield self.call("GET", f"/torrents/{ih.upper()}")
        self.assertEqual(response.code, 200)
        self.assertEqual(body["state"], "seeding")
        self.assertEqual((body["size"], body["left"], body["progress"]), (71_000, 0, 1.0))
        self.assertEqual((body["name"], body["has_metadata"]), ("t", True))
        response, body = yield self.call("GET", f"/torrents/{ih}/files")
        self.assertEqual(response.code, 200)
        self.assertEqual(body["files"], [
            {"index": 0, "path": os.path.join("t", "a.bin"), "length": 70_000, "priority": 1,
             "done": 70_000, "progress": 1.0},
            {"index": 1, "path": os.path.join("t", "b", "c.txt"), "length": 1000, "priority": 1,
             "done": 1000, "progress": 1.0},
        ])
        response, body = yield self.call("GET", f"/torrents/{ih}/peers")
        self.assertEqual((response.code, body), (200, {"peers": []}))
        response, body = yield self.call("GET", f"/torrents/{ih}/trackers")
        self.assertEqual((response.code, body), (200, {"trackers": []}))

    @inlineCallbacks
    def test_trackers_of_a_magnet(self) -> Generator[Any, Any, None]:
        """A stopped magnet's trackers are listed with their status."""
        tracker = "http://127.0.0.1:1/announce"
        self.session.add(f"{MAGNET}&tr={tracker}", basedir=self.download_dir)
        response, body = yield self.call("GET", f"/torrents/{HASH2}/trackers")
        self.assertEqual(response.code, 200)
        [status] = body["trackers"]
        self.assertEqual((status["url"], status["tier"], status["failures"]), (tracker, 0, 0))
        self.assertIsNone(status["next_announce"])

    @inlineCallbacks
    def test_life_cycle(self) -> Generator[Any, Any, None]:
        """pause, start and stop answer with the torrent in its new state."""
        yield self.seeding_torrent()
        ih = self.session.torrents()[0].info_hash.hex()
        for action, state in [("pause", "paused"), ("start", "seeding"), ("stop", "stopped"),
                              ("start", "seeding")]:
            response, body = yield self.call("POST", f"/torrents/{ih}/{action}")
            self.assertEqual((response.code, body["state"]), (200, state), action)

    @inlineCallbacks
    def test_remove(self) -> Generator[Any, Any, None]:
        """DELETE removes the torrent (its data stays); then it is 404."""
        torrent = yield self.seeding_torrent()
        ih = torrent.info_hash.hex()
        response, body = yield self.call("DELETE", f"/torrents/{ih}")
        self.assertEqual((response.code, body),
                         (200, {"info_hash": ih, "removed": True, "data_deleted": False}))
        self.assertEqual(self.session.torrents(), [])
        self.assertTrue(os.path.exists(os.path.join(self.download_dir, "seed", "t", "a.bin")))
        response, body = yield self.call("GET", f"/torrents/{ih}")
        self.assertEqual(response.code, 404)

    @inlineCallbacks
    def test_not_found(self) -> Generator[Any, Any, None]:
        """Unknown routes and unknown hashes are 404; a malformed hash is 400."""
        for method, path in [
            ("GET", "/nothing"), ("GET", "/torrents/x/y/z"), ("GET", f"/torrents/{HASH1}/nope"),
            ("GET", f"/torrents/{HASH1}"), ("DELETE", f"/torrents/{HASH1}"),
            ("POST", f"/torrents/{HASH1}/start"), ("GET", f"/torrents/{HASH1}/files"),
            ("GET", f"/torrents/{HASH1}/peers"), ("GET", f"/torrents/{HASH1}/trackers"),
        ]:
            response, body = yield self.call(method, path)
            self.assertEqual(response.code, 404, path)
            self.assertIn("error", body)
        for path in ("/torrents/xyz", f"/torrents/{HASH1}0", f"/torrents/{BASE32}/files"):
            response, body = yield self.call("GET", path)
            self.assertEqual(response.code, 400, path)

    @inlineCallbacks
    def test_wrong_method(self) -> Generator[Any, Any, None]:
        """A known route with another method is 405 with Allow; nothing changes."""
        yield self.call("POST", "/torrents", {"source": HASH1})
        for method, path, allow in [
            ("POST", "", "GET"), ("DELETE", "/torrents", "GET, POST"),
            ("PUT", f"/torrents/{HASH1}", "GET, DELETE"),
            ("GET", f"/torrents/{HASH1}/stop", "POST"),
            ("POST", f"/torrents/{HASH1}/peers", "GET"),
            ("GET", f"/torrents/{HASH1}/labels", "POST"),
            ("PUT", f"/torrents/{HASH1}/files", "GET, POST"),
            ("PUT", "/limits", "GET, POST"), ("POST", "/stats", "GET"),
            ("DELETE", f"/torrents/{HASH1}/peers", "GET"),
        ]:
            response, body = yield self.call(method, path)
            self.assertEqual(response.code, 405, (method, path))
            self.assertEqual(response.headers.getRawHeaders("Allow"), [allow])
            self.assertIn("error", body)
        self.assertEqual(len(self.session.torrents()), 1)


class StoreTests(ApiCase):
    """With a real StateStore on a temporary file, changes are recorded."""

    use_store = True

    @inlineCallbacks
    def test_recorded(self) -> Generator[Any, Any, None]:
        """An add is stored (a bare hash as its magnet), start/pause/stop set
        ``wanted``, DELETE forgets it."""
        assert self.store is not None
        yield self.call("POST", "/torrents", {"source": HASH1, "paused": True})
        record = self.store.get(HASH1)
        assert record is not None
        self.assertEqual(record.wanted, "paused")
        self.assertEqual(record.added_at, 1_700_000_000.0)
        self.assertEqual(record.save_path, self.download_dir)
        self.assertTrue(str(record.source).startswith(f"magnet:?xt=urn:btih:{HASH1}"))
        for action, wanted in [("start", "active"), ("stop", "stopped"), ("pause", "paused")]:
            response, _ = yield self.call("POST", f"/torrents/{HASH1}/{action}")
            self.assertEqual(response.code, 200)
            self.assertEqual(self.store.get(HASH1).wanted, wanted)  # type: ignore[union-attr]
        yield self.call("POST", "/torrents", {"source": MAGNET})
        self.assertEqual(self.store.get(HASH2).source, MAGNET)  # type: ignore[union-attr]
        response, _ = yield self.call("DELETE", f"/torrents/{HASH1}")
        self.assertEqual(response.code, 200)
        self.assertIsNone(self.store.get(HASH1))
        self.assertEqual([r.info_hash for r in self.store.torrents()], [HASH2])

    @inlineCallbacks
    def test_in_store_already_is_409(self) -> Generator[Any, Any, None]:
        """A torrent the store has (but the session not) is a conflict, and
        the session is left without it."""
        assert self.store is not None
        self.store.add_torrent(HASH1, MAGNET, name="x", save_path="/", added_at=1.0)
        response, body = yield self.call("POST", "/torrents", {"source": HASH1})
        self.assertEqual(response.code, 409)
        self.assertIn(HASH1, body["error"])
        self.assertEqual(self.session.torrents(), [])

    @inlineCallbacks
    def test_unstored_torrent(self) -> Generator[Any, Any, None]:
        """A torrent added outside the API is driven and removed without the
        store hearing of it."""
        assert self.store is not None
        torrent = yield self.seeding_torrent()
        ih = torrent.info_hash.hex()
        response, _ = yield self.call("POST", f"/torrents/{ih}/pause")
        self.assertEqual(response.code, 200)
        response, _ = yield self.call("DELETE", f"/torrents/{ih}")
        self.assertEqual(response.code, 200)
        self.assertEqual(self.store.torrents(), [])


class PeerViewTests(SynchronousTestCase):
    """The native API's view of one connected peer."""

    def test_encrypted_and_flags(self) -> None:
        """A peer's view carries its address, flags and whether its link is encrypted."""
        from txbittorrent.swarm.peerstate import PeerInfo
        from txbittorrent.web.apiviews import peer_view

        peer = PeerInfo(("127.0.0.1", 6881), b"-LT2010-" + b"a" * 12, "libtorrent 2.1", "DE",
                        True, 0.5, 1000.0, 0.0, 10, 0, True, True, False, False, False, 3, 0,
                        encrypted=True)
        view = peer_view(peer)
        self.assertEqual((view["host"], view["port"], view["flags"], view["encrypted"]),
                         ("127.0.0.1", 6881, "DE", True))
