"""qBittorrent's names and units (txbittorrent.web.qbt.fields): the state
mapping, filters, ETA, sorting and the parameter forms."""

from __future__ import annotations

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.web.qbt.fields import (
    INFINITE_ETA,
    TRACKER_NOT_CONTACTED,
    TRACKER_NOT_WORKING,
    TRACKER_UPDATING,
    TRACKER_WORKING,
    eta,
    matches_filter,
    parse_bool,
    qbt_state,
    ratio,
    sort_and_slice,
    split_hashes,
    split_list,
    tracker_status,
)


class QbtStateTests(SynchronousTestCase):
    def test_table(self) -> None:
        """Each engine state maps to qBittorrent's name (Web API 2.11 names)."""
        cases = [
            (("downloading", False, 10, 0, False, False), "downloading"),
            (("downloading", False, 0, 0, False, False), "stalledDL"),
            (("downloading", False, 0, 0, False, True), "forcedDL"),
            (("metadata", False, 0, 0, False, False), "metaDL"),
            (("metadata", False, 0, 0, False, True), "forcedMetaDL"),
            (("seeding", True, 0, 5, False, False), "uploading"),
            (("seeding", True, 0, 0, False, False), "stalledUP"),
            (("seeding", True, 0, 0, False, True), "forcedUP"),
            (("paused", False, 0, 0, False, False), "stoppedDL"),
            (("paused", True, 0, 0, False, False), "stoppedUP"),
            (("stopped", False, 0, 0, False, False), "stoppedDL"),
            (("stopped", True, 0, 0, False, False), "stoppedUP"),
            (("checking", False, 0, 0, False, False), "checkingDL"),
            (("checking", True, 0, 0, False, False), "checkingUP"),
            (("stopped", True, 0, 0, True, False), "checkingUP"),
            (("error", False, 0, 0, False, False), "error"),
            (("downloading", True, 0, 0, False, False), "stalledUP"),
        ]
        for (state, complete, down, up, rechecking, forced), expected in cases:
            self.assertEqual(
                qbt_state(state, complete=complete, download_rate=down, upload_rate=up,
                          rechecking=rechecking, forced=forced),
                expected, (state, complete, down, up, rechecking, forced))


class FilterTests(SynchronousTestCase):
    def info(self, state: str, down: int = 0, up: int = 0) -> dict[str, object]:
        return {"state": state, "dlspeed": down, "upspeed": up}

    def test_filters(self) -> None:
        """Each filter name keeps the states qBittorrent's does."""
        self.assertTrue(matches_filter("downloading", self.info("stalledDL")))
        self.assertTrue(matches_filter("downloading", self.info("metaDL")))
        self.assertFalse(matches_filter("downloading", self.info("uploading")))
        self.assertTrue(matches_filter("seeding", self.info("stalledUP")))
        self.assertTrue(matches_filter("completed", self.info("stoppedUP")))
        self.assertFalse(matches_filter("completed", self.info("stoppedDL")))
        for name in ("stopped", "paused"):
            self.assertTrue(matches_filter(name, self.info("stoppedDL")))
            self.assertFalse(matches_filter(name, self.info("downloading")))
        for name in ("running", "resumed"):
            self.assertTrue(matches_filter(name, self.info("stalledUP")))
            self.assertFalse(matches_filter(name, self.info("stoppedUP")))
        self.assertTrue(matches_filter("active", self.info("stalledDL", down=1)))
        self.assertFalse(matches_filter("active", self.info("stalledDL")))
        self.assertTrue(matches_filter("inactive", self.info("stalledDL")))
        self.assertTrue(matches_filter("stalled", self.info("stalledUP")))
        self.assertTrue(matches_filter("stalled_downloading", self.info("stalledDL")))
        self.assertFalse(matches_filter("stalled_uploading", self.info("stalledDL")))
        self.assertTrue(matches_filter("checking", self.info("checkingUP")))
        self.assertTrue(matches_filter("errored", self.info("missingFiles")))
        self.assertTrue(matches_filter("all", self.info("error")))
        self.assertTrue(matches_filter("whatever", self.info("error")))


class UnitTests(SynchronousTestCase):
    def test_eta(self) -> None:
        """ETA is left/rate rounded, infinite when complete or not moving."""
        self.assertEqual(eta(False, 1000, 100.0), 10)
        self.assertEqual(eta(False, 1000, 0.0), INFINITE_ETA)
        self.assertEqual(eta(True, 0, 100.0), INFINITE_ETA)
        self.assertEqual(eta(False, 10**12, 1.0), INFINITE_ETA)

    def test_ratio(self) -> None:
        """Ratio is uploaded over downloaded (over the size for a seed),
        capped at 9999."""
        self.assertEqual(ratio(50, 100, 100), 0.5)
        self.assertEqual(ratio(50, 0, 100), 0.5)
        self.assertEqual(ratio(0, 0, 0), 0.0)
        self.assertEqual(ratio(10**9, 1, 1), 9999.0)

    def test_tracker_status(self) -> None:
        """Tracker status codes: updating, not working, working, not contacted."""
        self.assertEqual(tracker_status(True, 0, False), TRACKER_UPDATING)
        self.assertEqual(tracker_status(False, 2, True), TRACKER_NOT_WORKING)
        self.assertEqual(tracker_status(False, 0, True), TRACKER_WORKING)
        self.assertEqual(tracker_status(False, 0, False), TRACKER_NOT_CONTACTED)


class ParameterTests(SynchronousTestCase):
    def test_parse_bool_any_case(self) -> None:
        """Booleans in any case; junk and absence give the default."""
        for text in ("true", "True", "TRUE", "1"):
            self.assertTrue(parse_bool(text))
        for text in ("false", "False", "0"):
            self.assertFalse(parse_bool(text, True))
        self.assertTrue(parse_bool(None, True))
        self.assertFalse(parse_bool("maybe"))

    def test_split_hashes(self) -> None:
        """hashes: "all" is None (every torrent), else "|"-joined, lowercased."""
        self.assertIsNone(split_hashes("all"))
        self.assertEqual(split_hashes("AB|cd||"), ["ab", "cd"])
        self.assertEqual(split_hashes(None), [])

    def test_split_list(self) -> None:
        """Lists drop blanks and repeats, keep order."""
        self.assertEqual(split_list("b, a,,b", ","), ["b", "a"])
        self.assertEqual(split_list("x\n\ny\n", "\n"), ["x", "y"])
        self.assertEqual(split_list(None, ","), [])


class SortTests(SynchronousTestCase):
    items = [{"name": "b", "size": 2}, {"name": "A", "size": 3}, {"name": "c", "size": 1}]

    def test_sort_reverse_limit_offset(self) -> None:
        """sort by a field (text case-insensitively), reverse, offset, limit."""
        names = lambda out: [i["name"] for i in out]  # noqa: E731
        self.assertEqual(names(sort_and_slice(self.items, "name", False, None, None)),
                         ["A", "b", "c"])
        self.assertEqual(names(sort_and_slice(self.items, "size", True, None, None)),
                         ["A", "b", "c"])
        self.assertEqual(names(sort_and_slice(self.items, "size", False, 1, 1)), ["b"])
        self.assertEqual(names(sort_and_slice(self.items, "size", False, None, -1)), ["A"])
        self.assertEqual(names(sort_and_slice(self.items, "nothing", False, 0, None)),
                         ["b", "A", "c"])
