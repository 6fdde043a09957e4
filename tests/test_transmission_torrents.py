"""Transmission's torrent methods through real sockets on 127.0.0.1: adding
(magnet, info hash, URL refused as a path, base64 metainfo, duplicates),
torrent-get (the ids forms, recently-active with removed, integer fields,
the table format), the actions, removal and torrent-set, over a real
Session, StateStore and Guard."""

from __future__ import annotations

import base64
import os
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.web.resource import Resource
from twisted.web.static import Data
from twisted.web.util import Redirect

from tests.transmissioncase import TransmissionCase
from tests.webcase import serve
from txbittorrent.web.transmission.fields import FIELDS
from txbittorrent.web.transmission.ids import RUN_BASE

HASH1 = "0123456789abcdef0123456789abcdef01234567"
HASH2 = "89abcdef0123456789abcdef0123456789abcdef"
MAGNET = f"magnet:?xt=urn:btih:{HASH2}&dn=hello"

INTEGER_FIELDS = {
    "activityDate", "addedDate", "bandwidthPriority", "corruptEver", "dateCreated",
    "desiredAvailable", "doneDate", "downloadedEver", "downloadLimit", "editDate", "error",
    "eta", "etaIdle", "file-count", "haveUnchecked", "haveValid", "id", "leftUntilDone",
    "manualAnnounceTime", "maxConnectedPeers", "peer-limit", "peersConnected",
    "peersGettingFromUs", "peersSendingToUs", "pieceCount", "pieceSize", "queuePosition",
    "rateDownload", "rateUpload", "secondsDownloading", "secondsSeeding", "seedIdleLimit",
    "seedIdleMode", "seedRatioMode", "sizeWhenDone", "startDate", "status", "totalSize",
    "uploadedEver", "uploadLimit", "webseedsSendingToUs",
}
"""Every field Transmission documents as a number that is an integer."""


class AddTests(TransmissionCase):
    """torrent-add in its forms."""

    @inlineCallbacks
    def test_add_magnet_and_hash(self) -> Generator[Any, Any, None]:
        """A magnet and a bare info hash are added: torrent-added with the
        store's seq as id, the name and the hash; labels and paused kept."""
        args = yield self.ok("torrent-add", {"filename": MAGNET, "labels": ["tv", "x"],
                                             "paused": True})
        added = args["torrent-added"]
        record = self.store.get(HASH2)
        self.assertEqual(added, {"id": record.seq, "name": "hello", "hashString": HASH2})
        self.assertEqual((record.labels, record.wanted), (("tv", "x"), "paused"))
        args = yield self.ok("torrent-add", {"filename": HASH1})
        self.assertEqual(args["torrent-added"]["hashString"], HASH1)
        self.assertEqual(args["torrent-added"]["id"], self.store.get(HASH1).seq)
        self.assertNotEqual(args["torrent-added"]["id"], added["id"])

    @inlineCallbacks
    def test_duplicate(self) -> Generator[Any, Any, None]:
        """Adding a torrent the session has answers torrent-duplicate (success)."""
        first = yield self.ok("torrent-add", {"filename": MAGNET})
        again = yield self.ok("torrent-add", {"filename": HASH2})
        self.assertEqual(again, {"torrent-duplicate": first["torrent-added"]})

    @inlineCallbacks
    def test_local_path_never_read(self) -> Generator[Any, Any, None]:
        """A filename that is a local path (even of a real .torrent) is
        refused, and nothing is added."""
        _, raw = self.seed_files()
        path = os.path.join(self.download_dir, "real.torrent")
        with open(path, "wb") as f:
            f.write(raw)
        for filename in (path, "file://" + path, "relative.torrent", ""):
            reply = yield self.rpc("torrent-add", {"filename": filename})
            self.assertNotEqual(reply["result"], "success", filename)
        reply = yield self.rpc("torrent-add", {})
        self.assertIn("filename", reply["result"])
        self.assertEqual(self.session.torrents(), [])

    @inlineCallbacks
    def test_add_metainfo(self) -> Generator[Any, Any, None]:
        """Base64 metainfo is parsed strictly; download-dir and a file
        selection (files-unwanted, priority-high) apply at once."""
        root, raw = self.seed_files()
        for bad in ({"metainfo": "!!!"}, {"metainfo": base64.b64encode(b"junk").decode()},
                    {"metainfo": base64.b64encode(raw).decode(), "files-unwanted": [9]},
                    {"metainfo": base64.b64encode(raw).decode(), "download-dir": "../x"}):
            reply = yield self.rpc("torrent-add", bad)
            self.assertNotEqual(reply["result"], "success")
        self.assertEqual(self.session.torrents(), [])
        args = yield self.ok("torrent-add", {
            "metainfo": base64.b64encode(raw).decode(), "download-dir": root,
            "files-unwanted": [1], "priority-high": [0], "paused": True})
        ih = args["torrent-added"]["hashString"]
        torrent = self.session.get(bytes.fromhex(ih))
        self.assertEqual(torrent.basedir, root)
        self.assertEqual(torrent.priorities, (6, 0))
        self.assertEqual(self.store.get(ih).priorities, (6, 0))
        self.assertEqual(self.store.get(ih).source, raw)

    @inlineCallbacks
    def test_add_url(self) -> Generator[Any, Any, None]:
        """An http URL is fetched (a .torrent, or a redirect to a magnet);
        a failed fetch is an error string."""
        _, raw = self.seed_files()
        files = Resource()
        files.putChild(b"t.torrent", Data(raw, "application/x-bittorrent"))
        files.putChild(b"m", Redirect(MAGNET.encode()))
        base = serve(self, files)
        args = yield self.ok("torrent-add", {"filename": base + "/t.torrent", "paused": True})
        ih = args["torrent-added"]["hashString"]
        self.assertEqual(self.store.get(ih).source, raw)
        args = yield self.ok("torrent-add", {"filename": base + "/m"})
        self.assertEqual(args["torrent-added"]["hashString"], HASH2)
        args = yield self.ok("torrent-add", {"filename": base + "/t.torrent"})
        self.assertEqual(args["torrent-duplicate"]["hashString"], ih)
        reply = yield self.rpc("torrent-add", {"filename": base + "/missing"})
        self.assertIn("404", reply["result"])

    @inlineCallbacks
    def test_magnet_selection_refused(self) -> Generator[Any, Any, None]:
        """A magnet's files are unknown: unwanting files on add is an error."""
        reply = yield self.rpc("torrent-add", {"filename": MAGNET, "files-unwanted": [0]})
        self.assertIn("metadata", reply["result"])


class GetTests(TransmissionCase):
    """torrent-get: ids, fields, formats."""

    @inlineCallbacks
    def test_ids_forms(self) -> Generator[Any, Any, None]:
        """ids as absent, an int, a list of ints and hashes, a hash string;
        unknown ids are skipped; bad shapes are errors."""
        a = (yield self.ok("torrent-add", {"filename": HASH1}))["torrent-added"]
        b = (yield self.ok("torrent-add", {"filename": MAGNET}))["torrent-added"]
        fields = {"fields": ["id", "hashString"]}
        got = yield self.ok("torrent-get", fields)
        self.assertEqual([t["id"] for t in got["torrents"]], [a["id"], b["id"]])
        for ids, expected in ((a["id"], [a]), ([b["id"]], [b]), ([a["id"], HASH2], [a, b]),
                              (HASH2.upper(), [b]), ([999], []), ([], [])):
            got = yield self.ok("torrent-get", dict(fields, ids=ids))
            self.assertEqual([t["hashString"] for t in got["torrents"]],
                             [x["hashString"] for x in expected], ids)
        for ids in ({"x": 1}, ["nothash"], [True], 1.5):
            reply = yield self.rpc("torrent-get", dict(fields, ids=ids))
            self.assertNotEqual(reply["result"], "success", ids)
        reply = yield self.rpc("torrent-get", {"ids": a["id"]})
        self.assertIn("fields", reply["result"])

    @inlineCallbacks
    def test_run_counter_for_torrents_not_stored(self) -> Generator[Any, Any, None]:
        """A torrent the store lacks gets a per-run id, stable for the run."""
        self.session.add(bytes.fromhex(HASH1), self.download_dir)
        got = yield self.ok("torrent-get", {"fields": ["id"]})
        self.assertEqual(got["torrents"], [{"id": RUN_BASE}])
        got = yield self.ok("torrent-get", {"fields": ["id"], "ids": [RUN_BASE]})
        self.assertEqual(got["torrents"], [{"id": RUN_BASE}])

    @inlineCallbacks
    def test_recently_active_and_removed(self) -> Generator[Any, Any, None]:
        """recently-active lists just-added torrents and, in ``removed``,
        the ids of torrents removed since (by any API)."""
        a = (yield self.ok("torrent-add", {"filename": HASH1}))["torrent-added"]
        b = (yield self.ok("torrent-add", {"filename": MAGNET}))["torrent-added"]
        got = yield self.ok("torrent-get", {"fields": ["id"], "ids": "recently-active"})
        self.assertEqual(sorted(t["id"] for t in got["torrents"]), sorted([a["id"], b["id"]]))
        self.assertEqual(got["removed"], [])
        yield self.ok("torrent-remove", {"ids": [a["id"]]})
        yield self.manager.remove(self.session.get(bytes.fromhex(HASH2)), False)
        got = yield self.ok("torrent-get", {"fields": ["id"], "ids": "recently-active"})
        self.assertEqual(got["torrents"], [])
        self.assertEqual(got["removed"], sorted([a["id"], b["id"]]))

    @inlineCallbacks
    def test_every_field_of_a_seed(self) -> Generator[Any, Any, None]:
        """Every field of a seeding two-file torrent: integer fields are JSON
        integers, the figures are right, files/priorities/wanted line up."""
        added = yield self.add_seeding()
        got = yield self.ok("torrent-get", {"fields": sorted(FIELDS) + ["notAField"],
                                            "ids": [added["id"]]})
        (t,) = got["torrents"]
        self.assertEqual(set(t), set(FIELDS))
        for name in INTEGER_FIELDS:
            self.assertIs(type(t[name]), int, name)
        self.assertEqual(t["status"], 6)
        self.assertEqual((t["totalSize"], t["sizeWhenDone"], t["leftUntilDone"]),
                         (71_000, 71_000, 0))
        self.assertEqual((t["percentDone"], t["haveValid"], t["eta"]), (1.0, 71_000, -1))
        self.assertEqual((t["pieceCount"], t["pieceSize"]), (5, 16 * 1024))
        self.assertEqual(base64.b64decode(t["pieces"]), b"\xf8")
        self.assertEqual([f["name"] for f in t["files"]], ["t/a.bin", "t/b/c.txt"])
        self.assertEqual([f["bytesCompleted"] for f in t["files"]], [70_000, 1000])
        self.assertEqual((t["priorities"], t["wanted"]), ([0, 0], [1, 1]))
        self.assertEqual([s["wanted"] for s in t["fileStats"]], [True, True])
        self.assertEqual(t["uploadRatio"], -1.0)
        self.assertEqual(t["downloadDir"], os.path.join(self.download_dir, "seed"))
        self.assertTrue(t["magnetLink"].startswith(f"magnet:?xt=urn:btih:{added['hashString']}"))
        self.assertEqual((t["error"], t["errorString"], t["isPrivate"]), (0, "", False))
        self.assertEqual((t["downloadLimited"], t["uploadLimited"]), (False, False))
        self.assertEqual((t["trackers"], t["trackerStats"], t["peers"]), ([], [], []))
        self.assertGreater(t["addedDate"], 1_600_000_000)

    @inlineCallbacks
    def test_table_format(self) -> Generator[Any, Any, None]:
        """format "table": a header row, then a row per torrent."""
        a = (yield self.ok("torrent-add", {"filename": HASH1}))["torrent-added"]
        got = yield self.ok("torrent-get", {"fields": ["id", "name", "x"], "format": "table"})
        self.assertEqual(got["torrents"], [["id", "name"], [a["id"], HASH1]])

    @inlineCallbacks
    def test_magnet_without_metadata(self) -> Generator[Any, Any, None]:
        """Before its metadata a magnet downloads (4) with nothing known:
        sizes 0, eta unknown (-2), no files."""
        yield self.ok("torrent-add", {"filename": MAGNET})
        got = yield self.ok("torrent-get", {"fields": [
            "status", "sizeWhenDone", "eta", "files", "metadataPercentComplete", "pieces"]})
        self.assertEqual(got["torrents"], [{"status": 4, "sizeWhenDone": 0, "eta": -2,
                                            "files": [], "metadataPercentComplete": 0.0,
                                            "pieces": ""}])


class ActionTests(TransmissionCase):
    """start, stop, verify, reannounce, remove, set, set-location."""

    @inlineCallbacks
    def status(self, number: int) -> Generator[Any, Any, int]:
        got = yield self.ok("torrent-get", {"fields": ["status"], "ids": [number]})
        value: int = got["torrents"][0]["status"]
        return value

    @inlineCallbacks
    def test_stop_start_verify_reannounce(self) -> Generator[Any, Any, None]:
        """stop records "stopped" (status 0); start runs it again (6);
        verify checks it (2, then 6 again); reannounce succeeds."""
        added = yield self.add_seeding()
        number = added["id"]
        yield self.ok("torrent-stop", {"ids": number})
        self.assertEqual((yield self.status(number)), 0)
        self.assertEqual(self.store.get(added["hashString"]).wanted, "stopped")
        yield self.ok("torrent-start", {"ids": [number]})
        self.assertEqual((yield self.status(number)), 6)
        self.assertEqual(self.store.get(added["hashString"]).wanted, "active")
        checks: list[Any] = []
        recheck = self.manager.recheck
        gate: Deferred[None] = Deferred()

        def held(torrent: Any) -> Any:
            # the check waits for the gate, so the status is seen mid-check
            ih = torrent.info_hash.hex()
            self.manager.rechecking.add(ih)

            def go(_: object) -> Any:
                self.manager.rechecking.discard(ih)
                return recheck(torrent)

            checks.append(gate.addCallback(go))
            return checks[-1]

        self.patch(self.manager, "recheck", held)
        yield self.ok("torrent-verify", {"ids": [number]})
        self.assertEqual((yield self.status(number)), 2)  # answered before the check ends
        gate.callback(None)
        yield checks[0]
        self.assertEqual((yield self.status(number)), 6)
        yield self.ok("torrent-reannounce", {"ids": [number]})
        yield self.ok("torrent-start-now", {})

    @inlineCallbacks
    def test_remove_with_data(self) -> Generator[Any, Any, None]:
        """torrent-remove forgets the torrent (store too); with
        delete-local-data, its files go."""
        added = yield self.add_seeding()
        data = os.path.join(self.download_dir, "seed", "t", "a.bin")
        self.assertTrue(os.path.exists(data))
        yield self.ok("torrent-remove", {"ids": [added["hashString"]],
                                         "delete-local-data": True})
        self.assertEqual(self.session.torrents(), [])
        self.assertIsNone(self.store.get(added["hashString"]))
        self.assertFalse(os.path.exists(data))

    @inlineCallbacks
    def test_remove_keeps_data(self) -> Generator[Any, Any, None]:
        """Without delete-local-data the files stay."""
        added = yield self.add_seeding()
        yield self.ok("torrent-remove", {"ids": added["id"]})
        self.assertEqual(self.session.torrents(), [])
        self.assertTrue(os.path.exists(os.path.join(self.download_dir, "seed", "t", "a.bin")))

    @inlineCallbacks
    def test_set_files(self) -> Generator[Any, Any, None]:
        """files-unwanted/-wanted and priority-high/-normal change the
        priorities (recorded); an unknown index is an error."""
        added = yield self.add_seeding()
        ids = {"ids": [added["id"]]}
        torrent = self.session.get(bytes.fromhex(added["hashString"]))
        yield self.ok("torrent-set", dict(ids, **{"files-unwanted": [1]}))
        self.assertEqual(torrent.priorities, (1, 0))
        yield self.ok("torrent-set", dict(ids, **{"files-wanted": [], "priority-high": [1]}))
        self.assertEqual(torrent.priorities, (1, 6))
        self.assertEqual(self.store.get(added["hashString"]).priorities, (1, 6))
        got = yield self.ok("torrent-get", dict(ids, fields=["priorities", "wanted"]))
        self.assertEqual(got["torrents"], [{"priorities": [0, 1], "wanted": [1, 1]}])
        yield self.ok("torrent-set", dict(ids, **{"priority-normal": []}))
        self.assertEqual(torrent.priorities, (1, 1))
        reply = yield self.rpc("torrent-set", dict(ids, **{"files-wanted": [5]}))
        self.assertIn("no file 5", reply["result"])

    @inlineCallbacks
    def test_set_limits_and_labels(self) -> Generator[Any, Any, None]:
        """downloadLimit/uploadLimit in kB/s with *Limited; false lifts the
        limit; labels replace the torrent's labels; all recorded."""
        added = (yield self.ok("torrent-add", {"filename": HASH1}))["torrent-added"]
        ids = {"ids": [added["id"]]}
        torrent = self.session.get(bytes.fromhex(HASH1))
        yield self.ok("torrent-set", dict(ids, downloadLimit=50, downloadLimited=True,
                                          uploadLimit=7, uploadLimited=True, labels=["a"]))
        self.assertEqual((torrent.config.download_limit, torrent.config.upload_limit),
                         (50_000, 7_000))
        record = self.store.get(HASH1)
        self.assertEqual((record.download_limit, record.labels), (50_000, ("a",)))
        got = yield self.ok("torrent-get", dict(ids, fields=[
            "downloadLimit", "downloadLimited", "uploadLimit", "labels"]))
        self.assertEqual(got["torrents"], [{"downloadLimit": 50, "downloadLimited": True,
                                            "uploadLimit": 7, "labels": ["a"]}])
        yield self.ok("torrent-set", dict(ids, downloadLimited=False))
        self.assertEqual((torrent.config.download_limit, torrent.config.upload_limit),
                         (None, 7_000))
        reply = yield self.rpc("torrent-set", dict(ids, uploadLimit=0, uploadLimited=True))
        self.assertNotEqual(reply["result"], "success")

    @inlineCallbacks
    def test_set_trackers(self) -> Generator[Any, Any, None]:
        """trackerAdd, trackerReplace, trackerRemove and trackerList change
        the trackers (recorded); a bad URL is an error."""
        added = (yield self.ok("torrent-add", {"filename": HASH1, "paused": True}))
        ids = {"ids": [added["torrent-added"]["id"]]}
        torrent = self.session.get(bytes.fromhex(HASH1))

        def urls() -> list[list[str]]:
            return [[s.url for s in tier] for tier in torrent.trackers()]

        yield self.ok("torrent-set", dict(ids, trackerAdd=["http://a.example/announce",
                                                           "udp://b.example:80"]))
        self.assertEqual(urls(), [["http://a.example/announce"], ["udp://b.example:80"]])
        yield self.ok("torrent-set", dict(ids, trackerReplace=[1, "http://c.example/announce"]))
        self.assertEqual(sorted(u for t in urls() for u in t),
                         ["http://a.example/announce", "http://c.example/announce"])
        got = yield self.ok("torrent-get", dict(ids, fields=["trackers", "trackerList"]))
        (t,) = got["torrents"]
        self.assertEqual(t["trackers"][0]["scrape"], "http://a.example/scrape")
        self.assertEqual(t["trackerList"].count("\n\n"), 1)
        yield self.ok("torrent-set", dict(ids, trackerRemove=[0]))
        self.assertEqual(len([u for t in urls() for u in t]), 1)
        yield self.ok("torrent-set", dict(ids, trackerList="http://x.example/a\nhttp://y.example/a"
                                                            "\n\nudp://z.example:1"))
        self.assertEqual(urls(), [["http://x.example/a", "http://y.example/a"],
                                  ["udp://z.example:1"]])
        self.assertEqual(self.store.get(HASH1).trackers,
                         (("http://x.example/a", "http://y.example/a"), ("udp://z.example:1",)))
        reply = yield self.rpc("torrent-set", dict(ids, trackerAdd=["ftp://nope"]))
        self.assertNotEqual(reply["result"], "success")
        reply = yield self.rpc("torrent-set", dict(ids, trackerRemove=[9]))
        self.assertNotEqual(reply["result"], "success")

    @inlineCallbacks
    def test_set_location(self) -> Generator[Any, Any, None]:
        """The present location is accepted; moving is not supported."""
        added = (yield self.ok("torrent-add", {"filename": HASH1}))["torrent-added"]
        yield self.ok("torrent-set-location", {"ids": [added["id"]],
                                               "location": self.download_dir, "move": False})
        reply = yield self.rpc("torrent-set-location", {"ids": [added["id"]],
                                                        "location": "elsewhere", "move": True})
        self.assertIn("not supported", reply["result"])
