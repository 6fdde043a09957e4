"""qBittorrent API: the torrent actions (life cycle, delete, recheck,
priorities, queue order, limits, trackers, stored-only settings)."""

from __future__ import annotations

import os
from collections.abc import Generator
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import deferLater

from tests.qbtcase import HASH1, HASH2, MAGNET, QbtCase
from txbittorrent.state import TorrentState


class QbtActionTests(QbtCase):
    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        yield super().setUp()
        yield self.login()
        self.seed = yield self.add_seed()
        self.ih = self.seed.info_hash.hex()

    @inlineCallbacks
    def info(self, ih: str | None = None) -> Generator[Any, Any, dict[str, Any]]:
        [info] = yield self.json("/torrents/info", params={"hashes": ih or self.ih})
        return info

    @inlineCallbacks
    def test_stop_start_pause_resume(self) -> Generator[Any, Any, None]:
        """stop/pause stop the torrent (stoppedUP, wanted "stopped");
        start/resume start it again."""
        for stop, start in (("stop", "start"), ("pause", "resume")):
            yield self.text(f"/torrents/{stop}", data={"hashes": self.ih})
            self.assertEqual(self.seed.state, TorrentState.STOPPED)
            info = yield self.info()
            self.assertEqual(info["state"], "stoppedUP")
            self.assertEqual(self.store.get(self.ih).wanted, "stopped")
            yield self.text(f"/torrents/{start}", data={"hashes": "all"})
            self.assertEqual(self.seed.state, TorrentState.SEEDING)
            self.assertEqual(self.store.get(self.ih).wanted, "active")

    @inlineCallbacks
    def test_unknown_hashes_skipped(self) -> Generator[Any, Any, None]:
        """Unknown hashes are skipped; a missing hashes is 400."""
        yield self.text("/torrents/stop", data={"hashes": HASH1})
        self.assertEqual(self.seed.state, TorrentState.SEEDING)
        code, _ = yield self.status("/torrents/stop", data={})
        self.assertEqual(code, 400)

    @inlineCallbacks
    def test_delete_keeps_or_deletes_files(self) -> Generator[Any, Any, None]:
        """delete forgets the torrent (session and store); deleteFiles=true
        removes its files too."""
        yield self.text("/torrents/add", data={"urls": MAGNET, "stopped": "true"})
        yield self.text("/torrents/delete", data={"hashes": HASH2, "deleteFiles": "false"})
        self.assertIsNone(self.store.get(HASH2))
        path = os.path.join(self.seed.basedir, "t", "a.bin")
        yield self.text("/torrents/delete", data={"hashes": self.ih, "deleteFiles": "True"})
        self.assertEqual(self.session.torrents(), [])
        self.assertIsNone(self.store.get(self.ih))
        self.assertFalse(os.path.exists(path))

    @inlineCallbacks
    def test_recheck(self) -> Generator[Any, Any, None]:
        """recheck answers at once and the torrent comes back seeding."""
        yield self.text("/torrents/recheck", data={"hashes": self.ih})
        for _ in range(100):
            if self.ih not in self.qbt.manager.rechecking:
                break
            yield deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(self.seed.state, TorrentState.SEEDING)

    @inlineCallbacks
    def test_reannounce(self) -> Generator[Any, Any, None]:
        """reannounce answers 200."""
        yield self.text("/torrents/reannounce", data={"hashes": "all"})

    @inlineCallbacks
    def test_file_prio(self) -> Generator[Any, Any, None]:
        """filePrio sets listed files' priorities (0, 1, 6, 7), recorded;
        a bad priority is 400, a bad id 409."""
        yield self.text("/torrents/filePrio", data={"hash": self.ih, "id": "1", "priority": "0"})
        yield self.text("/torrents/filePrio", data={"hash": self.ih, "id": "0", "priority": "7"})
        self.assertEqual(self.seed.priorities, (7, 0))
        self.assertEqual(self.store.get(self.ih).priorities, (7, 0))
        files = yield self.json("/torrents/files", params={"hash": self.ih})
        self.assertEqual([f["priority"] for f in files], [7, 0])
        for fields, expected in (({"id": "0", "priority": "3"}, (400, "Priority is not valid")),
                                 ({"id": "0", "priority": "x"},
                                  (400, "Priority must be an integer")),
                                 ({"id": "a", "priority": "1"}, (400, "File IDs must be integers")),
                                 ({"id": "5", "priority": "1"}, (409, "File ID is not valid"))):
            got = yield self.status("/torrents/filePrio", data={"hash": self.ih, **fields})
            self.assertEqual(got, expected, fields)
        code, _ = yield self.status("/torrents/filePrio",
                                    data={"hash": HASH1, "id": "0", "priority": "1"})
        self.assertEqual(code, 404)

    @inlineCallbacks
    def test_queue_order(self) -> Generator[Any, Any, None]:
        """topPrio/bottomPrio/increasePrio/decreasePrio reorder the store's
        positions; unfinished torrents show their 1-based queue position."""
        yield self.text("/torrents/add", data={"urls": MAGNET, "stopped": "true"})
        yield self.text("/torrents/add", data={"urls": HASH1, "stopped": "true"})

        def order() -> list[str]:
            return [r.info_hash for r in sorted(self.store.torrents(), key=lambda r: r.position)]

        self.assertEqual(order(), [self.ih, HASH2, HASH1])
        yield self.text("/torrents/topPrio", data={"hashes": HASH1})
        self.assertEqual(order(), [HASH1, self.ih, HASH2])
        yield self.text("/torrents/bottomPrio", data={"hashes": HASH1})
        self.assertEqual(order(), [self.ih, HASH2, HASH1])
        yield self.text("/torrents/increasePrio", data={"hashes": HASH1})
        self.assertEqual(order(), [self.ih, HASH1, HASH2])
        yield self.text("/torrents/decreasePrio", data={"hashes": HASH1})
        self.assertEqual(order(), [self.ih, HASH2, HASH1])
        info = yield self.info(HASH1)
        self.assertEqual(info["priority"], 2)
        info = yield self.info()
        self.assertEqual(info["priority"], 0)

    @inlineCallbacks
    def test_force_start(self) -> Generator[Any, Any, None]:
        """setForceStart is stored and shown, and starts a stopped torrent."""
        yield self.text("/torrents/stop", data={"hashes": self.ih})
        yield self.text("/torrents/setForceStart", data={"hashes": self.ih, "value": "true"})
        self.assertEqual(self.seed.state, TorrentState.SEEDING)
        info = yield self.info()
        self.assertEqual((info["force_start"], info["state"]), (True, "forcedUP"))
        yield self.text("/torrents/stop", data={"hashes": self.ih})
        yield self.text("/torrents/setForceStart", data={"hashes": self.ih, "value": "false"})
        self.assertEqual(self.seed.state, TorrentState.SEEDING)
        info = yield self.info()
        self.assertEqual((info["force_start"], info["state"]), (False, "stalledUP"))

    @inlineCallbacks
    def test_stored_settings(self) -> Generator[Any, Any, None]:
        """Super seeding, sequential download, first/last piece priority and the
        share limits are stored and shown back (in the store's settings)."""
        yield self.text("/torrents/setSuperSeeding", data={"hashes": self.ih, "value": "true"})
        yield self.text("/torrents/toggleSequentialDownload", data={"hashes": self.ih})
        yield self.text("/torrents/toggleFirstLastPiecePrio", data={"hashes": "all"})
        yield self.text("/torrents/setShareLimits", data={
            "hashes": self.ih, "ratioLimit": "2", "seedingTimeLimit": "60",
            "inactiveSeedingTimeLimit": "-2"})
        info = yield self.info()
        self.assertEqual((info["super_seeding"], info["seq_dl"], info["f_l_piece_prio"],
                          info["ratio_limit"], info["seeding_time_limit"]),
                         (True, True, True, 2.0, 60))
        self.assertEqual(self.store.get_setting(f"qbt_torrent:{self.ih}", None)["ratio_limit"],
                         2.0)
        yield self.text("/torrents/toggleSequentialDownload", data={"hashes": self.ih})
        info = yield self.info()
        self.assertIs(info["seq_dl"], False)
        code, _ = yield self.status("/torrents/setShareLimits", data={"hashes": self.ih})
        self.assertEqual(code, 400)

    @inlineCallbacks
    def test_limits(self) -> Generator[Any, Any, None]:
        """setDownloadLimit/setUploadLimit set the torrent's own limits
        (recorded); 0 or less is unlimited."""
        yield self.text("/torrents/setDownloadLimit", data={"hashes": self.ih, "limit": "1000"})
        yield self.text("/torrents/setUploadLimit", data={"hashes": self.ih, "limit": "2000"})
        self.assertEqual((self.seed.config.download_limit, self.seed.config.upload_limit),
                         (1000, 2000))
        record = self.store.get(self.ih)
        self.assertEqual((record.download_limit, record.upload_limit), (1000, 2000))
        yield self.text("/torrents/setDownloadLimit", data={"hashes": self.ih, "limit": "-1"})
        self.assertIsNone(self.seed.config.download_limit)
        self.assertEqual(self.seed.config.upload_limit, 2000)

    @inlineCallbacks
    def test_trackers(self) -> Generator[Any, Any, None]:
        """addTrackers (one a line), editTracker, removeTrackers ("|"-joined),
        each recorded in the store."""
        a, b, c = ("http://127.0.0.1:9/a", "udp://127.0.0.1:9", "http://127.0.0.1:9/c")
        yield self.text("/torrents/addTrackers", data={"hash": self.ih,
                                                       "urls": f"{a}\n{b}\nnot a url"})
        self.assertEqual(self.store.get(self.ih).trackers, ((a,), (b,)))
        yield self.text("/torrents/editTracker", data={"hash": self.ih, "origUrl": a,
                                                       "newUrl": c})
        yield self.text("/torrents/removeTrackers", data={"hash": self.ih, "urls": b})
        self.assertEqual(self.store.get(self.ih).trackers, ((c,),))
        yield self.text("/torrents/addTrackers", data={"hash": "*", "urls": a})
        yield self.text("/torrents/removeTrackers", data={"hash": self.ih,
                                                          "urls": f"{b}|{a}"})
        self.assertEqual(self.store.get(self.ih).trackers, ((c,),))
        code, _ = yield self.status("/torrents/addTrackers", data={"hash": HASH1, "urls": a})
        self.assertEqual(code, 404)
        code, _ = yield self.status("/torrents/editTracker",
                                    data={"hash": self.ih, "origUrl": b, "newUrl": a})
        self.assertEqual(code, 409)

    @inlineCallbacks
    def test_add_peers(self) -> Generator[Any, Any, None]:
        """addPeers takes "|"-joined addresses and says per torrent how many
        were added; none valid is 400."""
        got = yield self.json("/torrents/addPeers", method="POST",
                              data={"hashes": self.ih, "peers": "127.0.0.1:9|bad|[::1]:9"})
        self.assertEqual(set(got), {self.ih})
        self.assertEqual(got[self.ih]["added"] + got[self.ih]["failed"], 3)
        code, _ = yield self.status("/torrents/addPeers", data={"hashes": self.ih,
                                                                "peers": "x|y:z"})
        self.assertEqual(code, 400)

    @inlineCallbacks
    def test_set_location(self) -> Generator[Any, Any, None]:
        """setLocation to the torrent's own path is fine; elsewhere is 409
        (data is not moved); empty is 400."""
        yield self.text("/torrents/setLocation", data={"hashes": self.ih,
                                                       "location": self.seed.basedir})
        code, _ = yield self.status("/torrents/setLocation",
                                    data={"hashes": self.ih, "location": "/elsewhere"})
        self.assertEqual(code, 409)
        code, _ = yield self.status("/torrents/setLocation",
                                    data={"hashes": self.ih, "location": " "})
        self.assertEqual(code, 400)
