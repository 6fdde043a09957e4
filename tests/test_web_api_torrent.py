"""One torrent's routes of the native API beyond its life cycle (files and
priorities, trackers, limits, labels, the .torrent, recheck, removal with
its data) and the session's (global limits, stats), through real sockets
on 127.0.0.1 with treq, with and without a StateStore."""

from __future__ import annotations

import os
import random
from collections.abc import Generator
from typing import Any

import treq
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase

from tests.apicase import HASH1, MAGNET, ApiCase
from txbittorrent.core.layout import Layout
from txbittorrent.core.metainfo import parse
from txbittorrent.daemon.store import StateStoreError
from txbittorrent.web.apitorrent import content_disposition
from txbittorrent.web.apiviews import files_done
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files


class FilesDoneTests(TestCase):
    """apiviews.files_done: each file's verified bytes."""

    def test_spans(self) -> None:
        """Pieces spanning files count in each file for the bytes they hold."""
        layout = Layout([10, 0, 25, 5], piece_length=16)  # pieces: 0-15, 16-31, 32-39
        self.assertEqual(files_done(layout, []), [0, 0, 0, 0])
        self.assertEqual(files_done(layout, [0]), [10, 0, 6, 0])
        self.assertEqual(files_done(layout, [1, 2]), [0, 0, 19, 5])
        self.assertEqual(files_done(layout, [0, 1, 2]), [10, 0, 25, 5])

    def test_against_spans(self) -> None:
        """Random layouts and verified sets agree with Layout.spans."""
        rng = random.Random(7)
        for _ in range(200):
            lengths = [rng.choice([0, 1, 5, 16, 40, 100]) for _ in range(rng.randint(1, 8))]
            if not sum(lengths):
                continue
            layout = Layout(lengths, piece_length=rng.choice([1, 4, 16, 64]))
            have = sorted(rng.sample(range(layout.piece_count),
                                     rng.randint(0, layout.piece_count)))
            expected = [0] * len(lengths)
            for index in have:
                for span in layout.spans(index):
                    expected[span.file_index] += span.length
            self.assertEqual(files_done(layout, have), expected, (lengths, have))


class ContentDispositionTests(TestCase):
    """apitorrent.content_disposition: an ASCII fallback and RFC 8187."""

    def test_names(self) -> None:
        """Quotes, backslashes and non-ASCII become _ in filename= and are
        percent-encoded in filename*."""
        self.assertEqual(content_disposition("a b.torrent"),
                         b"attachment; filename=\"a b.torrent\"; filename*=UTF-8''a%20b.torrent")
        self.assertEqual(content_disposition('\u00e9t\u00e9 "x"\\.torrent'),
                         b"attachment; filename=\"_t_ _x__.torrent\"; "
                         b"filename*=UTF-8''%C3%A9t%C3%A9%20%22x%22%5C.torrent")


class TorrentRoutesTests(ApiCase):
    """Files, trackers, limits, labels, .torrent, recheck and removal."""

    use_store = True

    @inlineCallbacks
    def test_files_priorities(self) -> Generator[Any, Any, None]:
        """POST /files with a list or with {index: priority} sets them, answers
        the new list and records it in the store; bad input is 400."""
        torrent = yield self.seeding_torrent()
        ih = torrent.info_hash.hex()
        yield self.store_it(torrent)
        response, body = yield self.call("POST", f"/torrents/{ih}/files", {"priorities": [0, 3]})
        self.assertEqual(response.code, 200, body)
        self.assertEqual([f["priority"] for f in body["files"]], [0, 3])
        self.assertEqual(body["files"][0]["done"], 70_000)
        self.assertEqual(torrent.priorities, (0, 3))
        self.assertEqual(self.store.get(ih).priorities, (0, 3))  # type: ignore[union-attr]
        response, body = yield self.call("POST", f"/torrents/{ih}/files", {"files": {"0": 2}})
        self.assertEqual([f["priority"] for f in body["files"]], [2, 3])
        for bad in [{}, {"priorities": [1]}, {"priorities": [1, -1]}, {"files": {"2": 1}},
                    {"files": {"x": 1}}, {"files": {"0": "1"}}, {"files": []},
                    {"files": {"0": 1}, "priorities": [1, 1]}]:
            response, body = yield self.call("POST", f"/torrents/{ih}/files", bad)
            self.assertEqual(response.code, 400, bad)
        self.assertEqual(torrent.priorities, (2, 3))

    @inlineCallbacks
    def test_before_metadata_409(self) -> Generator[Any, Any, None]:
        """Files, the .torrent and recheck need the metadata: 409 for a magnet."""
        yield self.call("POST", "/torrents", {"source": MAGNET})
        ih = MAGNET.split("btih:")[1].split("&")[0]
        response, body = yield self.call("GET", f"/torrents/{ih}/files")
        self.assertEqual((response.code, body), (200, {"files": []}))
        for method, action, data in [("POST", "files", {"priorities": []}),
                                     ("POST", "recheck", None)]:
            response, body = yield self.call(method, f"/torrents/{ih}/{action}", data)
            self.assertEqual(response.code, 409, action)
        response = yield treq.get(f"{self.base}/torrents/{ih}/torrent", pool=self.pool)
        yield treq.content(response)
        self.assertEqual(response.code, 409)

    @inlineCallbacks
    def test_trackers(self) -> Generator[Any, Any, None]:
        """POST adds a tracker (201), DELETE ?url= removes it; a duplicate is
        409, an unknown url 404, a bad one 400."""
        yield self.call("POST", "/torrents", {"source": HASH1})
        path = f"/torrents/{HASH1}/trackers"
        url, udp = "http://127.0.0.1:1/announce", "udp://127.0.0.1:1"
        response, body = yield self.call("POST", path, {"url": url})
        self.assertEqual(response.code, 201, body)
        response, body = yield self.call("POST", path, {"url": udp, "tier": 0})
        self.assertEqual([(t["url"], t["tier"]) for t in body["trackers"]], [(url, 0), (udp, 0)])
        self.assertEqual(self.store.get(HASH1).trackers, ((url, udp),))  # type: ignore[union-attr]
        response, body = yield self.call("POST", path, {"url": url})
        self.assertEqual(response.code, 409)
        for bad in [{}, {"url": "ftp://x/a"}, {"url": "http://"}, {"url": "http://a b/"},
                    {"url": 5}, {"url": url + "x", "tier": -1}, {"url": "file:///etc/passwd"}]:
            response, body = yield self.call("POST", path, bad)
            self.assertEqual(response.code, 400, bad)
        response, body = yield self.call("DELETE", path + "?url=" + treq_quote(url))
        self.assertEqual(response.code, 200, body)
        self.assertEqual([t["url"] for t in body["trackers"]], [udp])
        self.assertEqual(self.store.get(HASH1).trackers, ((udp,),))  # type: ignore[union-attr]
        response, body = yield self.call("DELETE", path + "?url=" + treq_quote(url))
        self.assertEqual(response.code, 404)
        response, body = yield self.call("DELETE", path)
        self.assertEqual(response.code, 400)

    @inlineCallbacks
    def test_limits(self) -> Generator[Any, Any, None]:
        """A torrent's limits: set (live and in the store), one at a time,
        0 or null unlimited, negative 400."""
        yield self.call("POST", "/torrents", {"source": HASH1})
        path = f"/torrents/{HASH1}/limits"
        response, body = yield self.call("GET", path)
        self.assertEqual(body, {"download_limit": None, "upload_limit": None})
        response, body = yield self.call("POST", path, {"download_limit": 50_000,
                                                        "upload_limit": 20_000})
        self.assertEqual(body, {"download_limit": 50_000, "upload_limit": 20_000})
        response, body = yield self.call("POST", path, {"upload_limit": 0})
        self.assertEqual(body, {"download_limit": 50_000, "upload_limit": None})
        torrent = self.session.get(bytes.fromhex(HASH1))
        assert torrent is not None
        self.assertEqual(torrent.config.download_limit, 50_000)
        record = self.store.get(HASH1)  # type: ignore[union-attr]
        assert record is not None
        self.assertEqual((record.download_limit, record.upload_limit), (50_000, None))
        response, body = yield self.call("GET", f"/torrents/{HASH1}")
        self.assertEqual((body["download_limit"], body["upload_limit"]), (50_000, None))
        for bad in [{}, {"download_limit": -1}, {"upload_limit": 1.5},
                    {"upload_limit": "5"}, {"download_limit": True}]:
            response, body = yield self.call("POST", path, bad)
            self.assertEqual(response.code, 400, bad)

    @inlineCallbacks
    def test_labels(self) -> Generator[Any, Any, None]:
        """POST /labels replaces them (stored); the list filters by label."""
        yield self.call("POST", "/torrents", {"source": HASH1, "labels": ["old"]})
        response, body = yield self.call("POST", f"/torrents/{HASH1}/labels",
                                         {"labels": ["tv", " hd ", "tv"]})
        self.assertEqual((response.code, body["labels"]), (200, ["tv", "hd"]))
        self.assertEqual(self.store.get(HASH1).labels, ("tv", "hd"))  # type: ignore[union-attr]
        response, body = yield self.call("GET", "/torrents?label=hd")
        self.assertEqual(len(body["torrents"]), 1)
        response, body = yield self.call("GET", "/torrents?label=old")
        self.assertEqual(body["torrents"], [])
        for bad in [{}, {"labels": "tv"}, {"labels": [None]}, {"labels": ["a\nb"]}]:
            response, body = yield self.call("POST", f"/torrents/{HASH1}/labels", bad)
            self.assertEqual(response.code, 400, bad)

    @inlineCallbacks
    def test_torrent_file(self) -> Generator[Any, Any, None]:
        """GET /torrent gives a .torrent of the same info hash, as an
        attachment named after the torrent."""
        torrent = yield self.seeding_torrent()
        ih = torrent.info_hash.hex()
        response = yield treq.get(f"{self.base}/torrents/{ih}/torrent", pool=self.pool)
        raw = yield treq.content(response)
        self.assertEqual(response.code, 200)
        self.assertEqual(response.headers.getRawHeaders("Content-Type"),
                         ["application/x-bittorrent"])
        [disposition] = response.headers.getRawHeaders("Content-Disposition")
        self.assertTrue(disposition.startswith('attachment; filename="t.torrent"'))
        self.assertEqual(parse(raw).info_hash, torrent.info_hash)

    @inlineCallbacks
    def test_recheck(self) -> Generator[Any, Any, None]:
        """A recheck finds a piece damaged on disk and the torrent goes back
        to running (downloading now); a paused one stays paused."""
        torrent = yield self.seeding_torrent()
        ih = torrent.info_hash.hex()
        path = os.path.join(self.download_dir, "seed", "t", "a.bin")
        with open(path, "r+b") as f:
            f.write(b"\xff" * 10)
        response, body = yield self.call("POST", f"/torrents/{ih}/recheck")
        self.assertEqual(response.code, 200, body)
        self.assertEqual(body["state"], "downloading")
        self.assertEqual(body["left"], 16 * 1024)
        response, body = yield self.call("GET", f"/torrents/{ih}/files")
        self.assertEqual(body["files"][0]["done"], 70_000 - 16 * 1024)
        yield self.call("POST", f"/torrents/{ih}/pause")
        response, body = yield self.call("POST", f"/torrents/{ih}/recheck")
        self.assertEqual((response.code, body["state"]), (200, "paused"))
        yield self.call("POST", f"/torrents/{ih}/stop")
        response, body = yield self.call("POST", f"/torrents/{ih}/recheck")
        self.assertEqual((response.code, body["state"]), (200, "stopped"))

    @inlineCallbacks
    def test_recheck_conflicts(self) -> Generator[Any, Any, None]:
        """While a recheck runs, the torrent says "checking" and changes to it
        are 409."""
        torrent = yield self.seeding_torrent()
        ih = torrent.info_hash.hex()
        started: Deferred[None] = Deferred()
        gate: Deferred[None] = Deferred()

        def slow_check(*args: Any, **kwargs: Any) -> Deferred[None]:
            started.callback(None)
            return gate

        torrent.hashcheck = slow_check  # the check waits for the test
        pending = self.call("POST", f"/torrents/{ih}/recheck")
        yield started
        response, body = yield self.call("GET", f"/torrents/{ih}")
        self.assertEqual(body["state"], "checking")
        for method, path in [("POST", "start"), ("POST", "stop"), ("POST", "recheck")]:
            response, _ = yield self.call(method, f"/torrents/{ih}/{path}")
            self.assertEqual(response.code, 409, path)
        response, _ = yield self.call("DELETE", f"/torrents/{ih}")
        self.assertEqual(response.code, 409)
        gate.callback(None)
        response, body = yield pending
        self.assertEqual((response.code, body["state"]), (200, "seeding"))
        self.assertNotIn(ih, self.api.manager.rechecking)

    @inlineCallbacks
    def test_remove_with_data(self) -> Generator[Any, Any, None]:
        """DELETE ?delete_data=1 removes the torrent's own files and the
        directories they leave empty; a file it does not name stays."""
        torrent = yield self.seeding_torrent()
        ih = torrent.info_hash.hex()
        top = os.path.join(self.download_dir, "seed", "t")
        with open(os.path.join(top, "mine.txt"), "wb") as f:
            f.write(b"mine")
        response, body = yield self.call("DELETE", f"/torrents/{ih}?delete_data=1")
        self.assertEqual(response.code, 200, body)
        self.assertEqual(body, {"info_hash": ih, "removed": True, "data_deleted": True})
        self.assertEqual(sorted(os.listdir(top)), ["mine.txt"])
        self.assertEqual(self.session.torrents(), [])
        response, body = yield self.call("DELETE", f"/torrents/{ih}?delete_data=maybe")
        self.assertEqual(response.code, 404)

    @inlineCallbacks
    def test_remove_forgets_resume(self) -> Generator[Any, Any, None]:
        """DELETE removes the torrent's resume record (its stop wrote it);
        the data stays."""
        root = os.path.join(self.download_dir, "seed")
        make_files(os.path.join(root, "t"), {"a.bin": 20_000}, seed=3)
        raw = create_torrent(os.path.join(root, "t"), piece_length=16 * 1024)
        resume = os.path.join(self.download_dir, "t.resume")
        torrent = self.session.add(raw, basedir=root, resume_path=resume)
        yield torrent.start()
        yield torrent.save_resume()
        self.assertTrue(os.path.exists(resume))
        response, body = yield self.call("DELETE", f"/torrents/{torrent.info_hash.hex()}")
        self.assertEqual((response.code, body["data_deleted"]), (200, False), body)
        self.assertFalse(os.path.exists(resume))
        self.assertTrue(os.path.exists(os.path.join(root, "t", "a.bin")))

    @inlineCallbacks
    def test_remove_bad_flag(self) -> Generator[Any, Any, None]:
        """A delete_data that is not a boolean is 400 and removes nothing."""
        yield self.call("POST", "/torrents", {"source": HASH1})
        response, body = yield self.call("DELETE", f"/torrents/{HASH1}?delete_data=maybe")
        self.assertEqual(response.code, 400)
        self.assertEqual(len(self.session.torrents()), 1)

    @inlineCallbacks
    def test_store_failure_is_json_500(self) -> Generator[Any, Any, None]:
        """A store that fails gives a logged JSON 500, not a traceback page."""
        yield self.call("POST", "/torrents", {"source": HASH1})
        assert self.store is not None
        self.store.close()
        response, body = yield self.call("GET", f"/torrents/{HASH1}")
        self.assertEqual(response.code, 500)
        self.assertIn("internal error", body["error"])
        self.assertEqual(len(self.flushLoggedErrors(StateStoreError)), 1)

    @inlineCallbacks
    def store_it(self, torrent: Any) -> Generator[Any, Any, None]:
        """Put a torrent added outside the API into the store."""
        assert self.store is not None
        self.store.add_torrent(torrent.info_hash.hex(), torrent.magnet.to_uri(), name="t",
                               save_path=torrent.basedir, added_at=5.0)
        yield None


class SessionRoutesTests(ApiCase):
    """Global limits and stats."""

    use_store = True

    @inlineCallbacks
    def test_global_limits(self) -> Generator[Any, Any, None]:
        """The session's throttles change, and the settings are stored."""
        response, body = yield self.call("GET", "/limits")
        self.assertEqual((response.code, body), (200, {"download_limit": None,
                                                       "upload_limit": None}))
        response, body = yield self.call("POST", "/limits", {"download_limit": 1_000_000})
        self.assertEqual(body, {"download_limit": 1_000_000, "upload_limit": None})
        self.assertEqual(self.session.download_throttle.rate, 1_000_000)
        assert self.store is not None
        self.assertEqual(self.store.settings(), {"download_limit": 1_000_000})
        self.assertEqual(self.store.get_setting("download_limit", None, int), 1_000_000)
        response, body = yield self.call("POST", "/limits", {"download_limit": None,
                                                             "upload_limit": 500})
        self.assertEqual(body, {"download_limit": None, "upload_limit": 500})
        self.assertIsNone(self.session.download_throttle.rate)
        self.assertEqual(self.store.settings(), {"upload_limit": 500})
        response, body = yield self.call("POST", "/limits", {"upload_limit": -5})
        self.assertEqual(response.code, 400)

    @inlineCallbacks
    def test_stats(self) -> Generator[Any, Any, None]:
        """Totals over the session's torrents."""
        response, body = yield self.call("GET", "/stats")
        self.assertEqual(body, {"torrents": 0, "download_rate": 0, "upload_rate": 0,
                                "downloaded": 0, "uploaded": 0, "peers": 0,
                                "dht_nodes": None, "listen_port": self.session.port})
        yield self.seeding_torrent()
        yield self.call("POST", "/torrents", {"source": HASH1})
        response, body = yield self.call("GET", "/stats")
        self.assertEqual(body["torrents"], 2)


def treq_quote(text: str) -> str:
    from urllib.parse import quote

    return quote(text, safe="")
