"""The torrent-get field builders (``web.transmission.fields``): pure
functions of made-up ``TorrentFacts``, no session, no sockets."""

from __future__ import annotations

import ast
import base64
import dataclasses
import inspect
from typing import Any

from twisted.trial.unittest import TestCase

from txbittorrent.core.tracker.tiers import TrackerStatus
from txbittorrent.swarm.peerstate import PeerInfo
from txbittorrent.web.transmission import fields
from txbittorrent.web.transmission.facts import FileFacts, TorrentFacts
from txbittorrent.web.transmission.fields import (
    FIELDS,
    eta,
    priority_of,
    scrape_url,
    status,
    torrent_object,
    torrent_table,
    tracker_list,
)

NOW = 1_700_000_000.0


def make_facts(**changes: Any) -> TorrentFacts:
    """A half-downloaded two-file torrent, changed by ``changes``."""
    base = TorrentFacts(
        id=3, info_hash="ab" * 20, name="t", state="downloading", rechecking=False,
        has_metadata=True, size=4000, wanted_size=4000, left=1000, left_wanted=1000,
        downloaded=3000, uploaded=1500, download_rate=250.7, upload_rate=0.4, peers=(),
        trackers=(), save_path="/d", labels=("a",), added_at=NOW - 100.5,
        completed_at=None,
        files=(FileFacts("t/a", 3000, 3000, 1, 0, 2), FileFacts("t/b", 1000, 0, 6, 2, 3)),
        piece_count=4, piece_length=1024, pieces=b"\xe0", magnet="magnet:?xt=urn:btih:" + "ab" * 20,
        comment="", creator="me", date_created=1_600_000_000, private=False,
        download_limit=None, upload_limit=12_345.0, max_peers=None, web_seeds=(),
        queue_position=0, now=NOW,
    )
    return dataclasses.replace(base, **changes)


def peer(**changes: Any) -> PeerInfo:
    base = PeerInfo(
        address=("127.0.0.1", 6881), peer_id=b"-LT2000-" + b"x" * 12, client="libtorrent 2",
        flags="D", outgoing=True, progress=1.0, download_rate=100.0, upload_rate=0.0,
        downloaded=10, uploaded=0, am_choking=True, am_interested=True, peer_choking=False,
        peer_interested=False, snubbed=False, outstanding_requests=0, pending_peer_requests=0,
        source="magnet",
    )
    return dataclasses.replace(base, **changes)


class StatusTests(TestCase):
    """The status numbers and the eta."""

    def test_states(self) -> None:
        """stopped/paused/error 0, checking 2, metadata/downloading 4,
        seeding 6; a recheck is 2 whatever the state."""
        expected = {"stopped": 0, "paused": 0, "error": 0, "checking": 2, "metadata": 4,
                    "downloading": 4, "seeding": 6}
        for state, number in expected.items():
            self.assertEqual(status(make_facts(state=state)), number, state)
        self.assertEqual(status(make_facts(state="seeding", rechecking=True)), 2)

    def test_eta(self) -> None:
        """Seconds left at the current rate; -1 when done; -2 when unknown
        (no rate, or no metadata)."""
        self.assertEqual(eta(make_facts()), 3)
        self.assertEqual(eta(make_facts(left_wanted=0)), -1)
        self.assertEqual(eta(make_facts(download_rate=0.0)), -2)
        self.assertEqual(eta(make_facts(has_metadata=False, left_wanted=0)), -2)

    def test_priorities(self) -> None:
        """Ours 0 and 1 are normal (0), 2 and above high (1)."""
        self.assertEqual([priority_of(p) for p in (0, 1, 2, 6, 7)], [0, 0, 1, 1, 1])


class FieldTests(TestCase):
    """Each field's value and type."""

    def test_integers_are_ints(self) -> None:
        """Rates, sizes, times and limits are ints (never floats) even when
        the facts hold floats."""
        t = torrent_object(make_facts(), sorted(FIELDS))
        for name in ("rateDownload", "rateUpload", "addedDate", "uploadLimit", "downloadLimit",
                     "eta", "sizeWhenDone", "leftUntilDone", "activityDate", "id", "status"):
            self.assertIs(type(t[name]), int, name)
        self.assertEqual((t["rateDownload"], t["rateUpload"], t["addedDate"]),
                         (250, 0, int(NOW - 100.5)))
        self.assertEqual((t["uploadLimit"], t["uploadLimited"]), (12, True))
        self.assertEqual((t["downloadLimit"], t["downloadLimited"]), (0, False))
        self.assertEqual(t["activityDate"], int(NOW))

    def test_progress_fields(self) -> None:
        """percentDone counts wanted bytes, percentComplete all; haveValid
        is the verified bytes; the ratio is uploaded/downloaded, -1 with
        nothing downloaded."""
        t = torrent_object(make_facts(wanted_size=2000, left_wanted=500), [
            "percentDone", "percentComplete", "haveValid", "uploadRatio"])
        self.assertEqual(t, {"percentDone": 0.75, "percentComplete": 0.75, "haveValid": 3000,
                             "uploadRatio": 0.5})
        self.assertEqual(FIELDS["uploadRatio"](make_facts(downloaded=0)), -1.0)
        self.assertEqual(FIELDS["percentDone"](make_facts(has_metadata=False)), 0.0)

    def test_files(self) -> None:
        """files, fileStats, priorities and wanted line up, one per file."""
        t = torrent_object(make_facts(files=(
            FileFacts("t/a", 3000, 3000, 1), FileFacts("t/b", 1000, 10, 0),
            FileFacts("t/c", 5, 0, 6))), ["files", "fileStats", "priorities", "wanted",
                                          "file-count"])
        self.assertEqual([f["name"] for f in t["files"]], ["t/a", "t/b", "t/c"])
        self.assertEqual([f["bytesCompleted"] for f in t["files"]], [3000, 10, 0])
        self.assertEqual(t["fileStats"][1], {"bytesCompleted": 10, "wanted": False,
                                             "priority": 0})
        self.assertEqual((t["priorities"], t["wanted"], t["file-count"]),
                         ([0, 0, 1], [1, 0, 1], 3))

    def test_pieces(self) -> None:
        """pieces is the bitfield in base64."""
        self.assertEqual(base64.b64decode(FIELDS["pieces"](make_facts())), b"\xe0")

    def test_peers(self) -> None:
        """A peer's fields, and the counts of peers sending and getting."""
        facts = make_facts(peers=(
            peer(), peer(address=("10.0.0.2", 5), outgoing=False, download_rate=0.0,
                         am_interested=False, peer_interested=True, am_choking=False,
                         upload_rate=9.9, source="incoming")))
        t = torrent_object(facts, ["peers", "peersConnected", "peersSendingToUs",
                                   "peersGettingFromUs", "peersFrom"])
        first = t["peers"][0]
        self.assertEqual((first["address"], first["port"], first["rateToClient"],
                          first["clientName"], first["isIncoming"], first["progress"]),
                         ("127.0.0.1", 6881, 100, "libtorrent 2", False, 1.0))
        self.assertEqual((t["peersConnected"], t["peersSendingToUs"], t["peersGettingFromUs"]),
                         (2, 1, 1))
        self.assertEqual((t["peersFrom"]["fromIncoming"], t["peersFrom"]["fromCache"]), (1, 1))
        self.assertEqual(FIELDS["peersSendingToUs"](dataclasses.replace(facts, left_wanted=0)), 0)
        self.assertEqual(FIELDS["desiredAvailable"](facts), 1000)
        self.assertEqual(FIELDS["desiredAvailable"](make_facts()), 0)

    def test_peer_encrypted(self) -> None:
        """isEncrypted says whether the peer's connection went through MSE/PE."""
        facts = make_facts(peers=(peer(), peer(address=("10.0.0.2", 5), encrypted=True,
                                               flags="DE")))
        t = torrent_object(facts, ["peers"])
        self.assertEqual([p["isEncrypted"] for p in t["peers"]], [False, True])

    def test_trackers(self) -> None:
        """trackers and trackerStats number the trackers in tier order; the
        first of a tier is active, the others backups; results and counts
        come from the status."""
        tiers = (
            (TrackerStatus("http://t.example.org:8080/announce?k=1", 0, complete=5, incomplete=2,
                           peers=3, last_announce=NOW - 60, next_announce=NOW + 1740),
             TrackerStatus("udp://u.example:80", 0)),
            (TrackerStatus("http://e.example/a", 1, failures=2, last_error="refused",
                           last_announce=NOW - 5),),
        )
        t = torrent_object(make_facts(trackers=tiers), ["trackers", "trackerStats",
                                                        "trackerList", "error"])
        self.assertEqual([(x["id"], x["tier"]) for x in t["trackers"]], [(0, 0), (1, 0), (2, 1)])
        self.assertEqual(t["trackers"][0]["scrape"], "http://t.example.org:8080/scrape?k=1")
        self.assertEqual(t["trackers"][0]["sitename"], "example")
        first, backup, failed = t["trackerStats"]
        self.assertEqual((first["isBackup"], backup["isBackup"]), (False, True))
        self.assertEqual((first["host"], first["announceState"], first["seederCount"],
                          first["leecherCount"], first["lastAnnouncePeerCount"]),
                         ("http://t.example.org:8080", 1, 5, 2, 3))
        self.assertEqual((first["lastAnnounceSucceeded"], first["lastAnnounceTime"],
                          first["nextAnnounceTime"]), (True, int(NOW - 60), int(NOW + 1740)))
        self.assertEqual((failed["lastAnnounceSucceeded"], failed["lastAnnounceResult"]),
                         (False, "refused"))
        self.assertEqual(backup["seederCount"], -1)
        self.assertEqual(t["trackerList"],
                         "http://t.example.org:8080/announce?k=1\nudp://u.example:80"
                         "\n\nhttp://e.example/a")
        self.assertEqual(t["error"], 0)
        self.assertEqual(tracker_list(()), "")

    def test_errors(self) -> None:
        """error 3 for the error state; 2 when every tracker failed."""
        self.assertEqual(FIELDS["error"](make_facts(state="error")), 3)
        failing = ((TrackerStatus("http://x.example/announce", 0, failures=1,
                                  last_error="timed out"),),)
        facts = make_facts(trackers=failing)
        self.assertEqual((FIELDS["error"](facts), FIELDS["errorString"](facts)),
                         (2, "timed out"))

    def test_scrape_url(self) -> None:
        """BEP 48's announce -> scrape, or "" when it does not apply."""
        self.assertEqual(scrape_url("http://x/announce"), "http://x/scrape")
        self.assertEqual(scrape_url("http://x/announce.php?a=1"), "http://x/scrape.php?a=1")
        self.assertEqual(scrape_url("udp://x:1"), "")
        self.assertEqual(scrape_url("http://x/a/announce/y"), "")

    def test_object_and_table(self) -> None:
        """Unknown names are left out of objects and table headers."""
        facts = make_facts()
        self.assertEqual(torrent_object(facts, ["id", "nope", "name"]), {"id": 3, "name": "t"})
        self.assertEqual(torrent_table([facts, make_facts(id=4)], ["nope", "id"]),
                         [["id"], [3], [4]])


class PurityTests(TestCase):
    """The field module stays pure."""

    def test_no_twisted(self) -> None:
        """fields.py imports no twisted, os, socket or time."""
        tree = ast.parse(inspect.getsource(fields))
        names = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        names += [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
        for name in names:
            self.assertFalse(name.split(".")[0] in ("twisted", "os", "socket", "time"), name)
