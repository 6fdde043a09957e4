"""Tests for txbittorrent.core.tracker.tiers."""

from __future__ import annotations

import math
import random
from collections.abc import MutableSequence
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.tracker.announce import AnnounceResponse
from txbittorrent.core.tracker.tiers import (
    RETRY_BASE,
    RETRY_CAP,
    TrackerStatus,
    TrackerTiers,
    next_announce,
    retry_delay,
)
from txbittorrent.errors import LocalProtocolError

TIERS = (("a", "b", "c"), ("d", "e"))
"""Two tiers; the walk tests keep them in this order (see ``KeepOrder``)."""


class KeepOrder:
    """A shuffler that leaves the order alone and counts its calls, so the walk
    tests can be read against ``TIERS``."""

    def __init__(self) -> None:
        self.calls = 0

    def shuffle(self, x: MutableSequence[Any], /) -> None:
        self.calls += 1


def _walk_everything(tiers: TrackerTiers, now: float = 0.0) -> None:
    """Fail every tracker once and let a few succeed, in every tier."""
    for url in list(tiers):
        tiers.failed(url, now, "down")
    for url in list(tiers)[::2]:
        tiers.succeeded(url, now, AnnounceResponse(1800))


class ShuffleTests(SynchronousTestCase):
    """Each tier is shuffled once, at construction, with the injected rng."""

    def test_seeded(self) -> None:
        """The order is the one the seeded rng gives, tier by tier."""
        tiers = [["u%d" % i for i in range(8)], ["v%d" % i for i in range(5)]]
        twin = random.Random(12)
        expected = []
        for tier in tiers:
            copy = list(tier)
            twin.shuffle(copy)
            expected.append(tuple(copy))
        self.assertEqual(TrackerTiers(tiers, random.Random(12)).tiers, tuple(expected))

    def test_once(self) -> None:
        """The rng is asked once per tier and never again."""
        rng = KeepOrder()
        tiers = TrackerTiers(TIERS, rng)
        self.assertEqual(rng.calls, 2)
        _walk_everything(tiers)
        self.assertEqual(rng.calls, 2)

    def test_order_kept_across_failures(self) -> None:
        """Failures never reorder; only a success moves its URL to the front."""
        tiers = TrackerTiers([["u%d" % i for i in range(8)]], random.Random(3))
        before = tiers.tiers
        for _ in range(3):
            for url in before[0]:
                tiers.failed(url, 0.0, "down")
        self.assertEqual(tiers.tiers, before)
        moved = before[0][5]
        tiers.succeeded(moved, 0.0, AnnounceResponse(1800))
        self.assertEqual(tiers.tiers, ((moved,) + tuple(u for u in before[0] if u != moved),))

    def test_duplicates_and_empty_tiers(self) -> None:
        """A repeated URL keeps its first place; empty tiers are dropped."""
        tiers = TrackerTiers([["a", "a", "b"], [], ["b", "c"]], KeepOrder())
        self.assertEqual(tiers.tiers, (("a", "b"), ("c",)))
        self.assertEqual(tiers.status("c").tier, 1)

    def test_no_trackers(self) -> None:
        """Without trackers there is nothing to announce to."""
        empty: list[list[list[str]]] = [[], [[]], [[], []]]
        for urls in empty:
            tiers = TrackerTiers(urls, random.Random(0))
            self.assertEqual(tiers.current(), ())
            self.assertEqual((list(tiers), len(tiers), tiers.statuses()), ([], 0, ()))
        all_tiers = TrackerTiers((), random.Random(0), announce_to_all=True)
        self.assertEqual(all_tiers.current(), ())


class WalkTests(SynchronousTestCase):
    """The BEP 12 walk: next URL of the tier, then the next tier."""

    def setUp(self) -> None:
        self.tiers = TrackerTiers(TIERS, KeepOrder())

    def test_fall_through(self) -> None:
        """Each failure names the next URL, across tiers, until the round is over."""
        self.assertEqual(self.tiers.current(), ("a",))
        self.assertEqual(self.tiers.failed("a", 0.0, "down"), ("b",))
        self.assertEqual(self.tiers.current(), ("b",))
        self.assertEqual(self.tiers.failed("b", 0.0, "down"), ("c",))
        self.assertEqual(self.tiers.failed("c", 0.0, "down"), ("d",))
        self.assertEqual(self.tiers.failed("d", 0.0, "down"), ("e",))
        self.assertEqual(self.tiers.failed("e", 0.0, "down"), ())
        self.assertEqual(self.tiers.current(), ("a",))

    def test_success_moves_to_front(self) -> None:
        """A tracker that answers goes to the front of its tier."""
        self.tiers.failed("a", 0.0, "down")
        self.tiers.succeeded("b", 1.0, AnnounceResponse(1800))
        self.assertEqual(self.tiers.tiers, (("b", "a", "c"), ("d", "e")))
        self.assertEqual(self.tiers.current(), ("b",))

    def test_success_in_later_tier(self) -> None:
        """After a success in tier 2 the next round starts at the top again."""
        for url in ("a", "b", "c", "d"):
            self.tiers.failed(url, 0.0, "down")
        self.tiers.succeeded("e", 1.0, AnnounceResponse(1800))
        self.assertEqual(self.tiers.tiers, (("a", "b", "c"), ("e", "d")))
        self.assertEqual(self.tiers.current(), ("a",))
        self.assertEqual(list(self.tiers), ["a", "b", "c", "e", "d"])

    def test_failure_of_another_url(self) -> None:
        """A failure of a URL not being walked is recorded but does not move the walk."""
        self.assertEqual(self.tiers.failed("d", 0.0, "down"), ())
        self.assertEqual(self.tiers.current(), ("a",))
        self.assertEqual(self.tiers.status("d").failures, 1)

    def test_unknown_url(self) -> None:
        """A URL that is not one of the trackers is LocalProtocolError."""
        self.assertRaises(LocalProtocolError, self.tiers.failed, "z", 0.0, "down")
        self.assertRaises(LocalProtocolError, self.tiers.succeeded, "z", 0.0, AnnounceResponse(60))
        self.assertRaises(LocalProtocolError, self.tiers.announcing, "z", 0.0)
        self.assertRaises(LocalProtocolError, self.tiers.status, "z")
        self.assertIn("a", self.tiers)
        self.assertNotIn("z", self.tiers)


class AnnounceToAllTests(SynchronousTestCase):
    """With announce_to_all each tier walks on its own, one URL per tier at a time."""

    def setUp(self) -> None:
        self.tiers = TrackerTiers(TIERS, KeepOrder(), announce_to_all=True)

    def test_one_per_tier(self) -> None:
        """current() names the walked URL of every tier."""
        self.assertEqual(self.tiers.current(), ("a", "d"))

    def test_tiers_walk_apart(self) -> None:
        """A failure moves on within its own tier only, and wraps at the tier's end."""
        self.assertEqual(self.tiers.failed("a", 0.0, "down"), ("b",))
        self.assertEqual(self.tiers.current(), ("b", "d"))
        self.assertEqual(self.tiers.failed("d", 0.0, "down"), ("e",))
        self.assertEqual(self.tiers.failed("e", 0.0, "down"), ())
        self.assertEqual(self.tiers.current(), ("b", "d"))

    def test_success(self) -> None:
        """A success moves the URL to the front of its tier; other tiers are untouched."""
        self.tiers.failed("d", 0.0, "down")
        self.tiers.failed("a", 0.0, "down")
        self.tiers.succeeded("b", 1.0, AnnounceResponse(1800))
        self.assertEqual(self.tiers.tiers, (("b", "a", "c"), ("d", "e")))
        self.assertEqual(self.tiers.current(), ("b", "e"))


class StatusTests(SynchronousTestCase):
    """Each tracker's record follows its announces."""

    def setUp(self) -> None:
        self.tiers = TrackerTiers(TIERS, KeepOrder())

    def test_initial(self) -> None:
        """Every tracker starts with an empty record, tier by tier."""
        self.assertEqual(
            self.tiers.statuses(),
            tuple(TrackerStatus(url, tier) for tier, urls in enumerate(TIERS) for url in urls),
        )

    def test_success(self) -> None:
        """A reply's counts and timings are recorded, and failures forgotten."""
        self.tiers.failed("a", 10.0, "down")
        self.tiers.announcing("a", 100.0)
        self.assertTrue(self.tiers.status("a").updating)
        response = AnnounceResponse(
            interval=1800,
            min_interval=900,
            complete=5,
            incomplete=3,
            peers=(("10.0.0.1", 1), ("10.0.0.2", 2)),
            peers6=(("::1", 3),),
            warning_message="careful",
        )
        self.tiers.succeeded("a", 101.0, response)
        self.assertEqual(
            self.tiers.status("a"),
            TrackerStatus(
                "a",
                0,
                complete=5,
                incomplete=3,
                peers=2,
                peers6=1,
                failures=0,
                last_error=None,
                warning="careful",
                min_interval=900,
                next_announce=1901.0,
                min_announce=1001.0,
                updating=False,
                last_announce=100.0,
            ),
        )

    def test_failures(self) -> None:
        """Consecutive failures count up and back off."""
        self.tiers.announcing("a", 0.0)
        self.tiers.failed("a", 5.0, "timed out")
        status = self.tiers.status("a")
        self.assertEqual(
            (status.failures, status.last_error, status.updating), (1, "timed out", False)
        )
        self.assertEqual(status.next_announce, 5.0 + RETRY_BASE)
        self.tiers.failed("a", 100.0, "refused")
        self.assertEqual(self.tiers.status("a").next_announce, 100.0 + 2 * RETRY_BASE)
        self.assertEqual(self.tiers.status("a").last_error, "refused")

    def test_failure_respects_min_interval(self) -> None:
        """After a failure the last reply's min interval still binds."""
        self.tiers.succeeded("a", 0.0, AnnounceResponse(1800, min_interval=900))
        self.tiers.failed("a", 2000.0, "down")
        self.assertEqual(self.tiers.status("a").next_announce, 2900.0)

    def test_failure_retry_in(self) -> None:
        """A BEP 31 retry in longer than the backoff wins; 'never' is forever."""
        self.tiers.failed("a", 0.0, "busy", retry_in=600.0)
        self.assertEqual(self.tiers.status("a").next_announce, 600.0)
        self.tiers.failed("b", 0.0, "busy", retry_in=1.0)
        self.assertEqual(self.tiers.status("b").next_announce, RETRY_BASE)
        self.tiers.failed("c", 0.0, "gone", retry_in=math.inf)
        self.assertEqual(self.tiers.status("c").next_announce, math.inf)


class BackoffTests(SynchronousTestCase):
    """The timing policy functions."""

    def test_schedule(self) -> None:
        """One minute, doubling per consecutive failure, at most an hour."""
        self.assertEqual(
            [retry_delay(n) for n in range(1, 10)],
            [60, 120, 240, 480, 960, 1920, 3600, 3600, 3600],
        )
        self.assertEqual(retry_delay(10**9), RETRY_CAP)
        self.assertEqual((RETRY_BASE, RETRY_CAP), (60.0, 3600.0))

    def test_min_interval(self) -> None:
        """The delay is never below the tracker's min interval."""
        self.assertEqual(retry_delay(1, min_interval=900), 900)
        self.assertEqual(retry_delay(7, min_interval=900), 3600)
        self.assertEqual(retry_delay(1, min_interval=7200), 7200)

    def test_no_failures(self) -> None:
        """retry_delay needs at least one failure."""
        self.assertRaises(ValueError, retry_delay, 0)

    def test_next_announce(self) -> None:
        """The next announce is the reply's interval after now."""
        self.assertEqual(next_announce(100.0, AnnounceResponse(1800)), 1900.0)
        self.assertEqual(next_announce(100.0, AnnounceResponse(60, min_interval=120)), 220.0)


class AddTests(SynchronousTestCase):
    """TrackerTiers.add: a URL at the end of a tier, or in a new last tier."""

    def setUp(self) -> None:
        self.tiers = TrackerTiers(TIERS, KeepOrder())

    def test_existing_tier(self) -> None:
        """A URL added to a tier goes at its end, with a fresh record of that tier."""
        self.assertIs(self.tiers.add("x", 0), True)
        self.assertEqual(self.tiers.tiers, (("a", "b", "c", "x"), ("d", "e")))
        self.assertEqual(self.tiers.status("x"), TrackerStatus("x", 0))
        self.assertIn("x", self.tiers)
        self.assertEqual(len(self.tiers), 6)
        self.assertEqual(self.tiers.current(), ("a",))

    def test_new_last_tier(self) -> None:
        """With no tier, or one past the last, the URL makes a new last tier."""
        self.assertIs(self.tiers.add("x"), True)
        self.assertIs(self.tiers.add("y", 7), True)
        self.assertEqual(self.tiers.tiers, (("a", "b", "c"), ("d", "e"), ("x",), ("y",)))
        self.assertEqual((self.tiers.status("x").tier, self.tiers.status("y").tier), (2, 3))

    def test_duplicate(self) -> None:
        """A URL already there (in any tier) is not added again."""
        self.assertIs(self.tiers.add("a"), False)
        self.assertIs(self.tiers.add("d", 0), False)
        self.assertEqual(self.tiers.tiers, TIERS)
        self.assertEqual(len(self.tiers), 5)

    def test_negative_tier(self) -> None:
        """A negative tier is a ValueError."""
        self.assertRaises(ValueError, self.tiers.add, "x", -1)
        self.assertNotIn("x", self.tiers)

    def test_walked_in_turn(self) -> None:
        """An added URL is walked after the tier's others, before the next tier."""
        self.tiers.add("x", 0)
        for url, following in (("a", "b"), ("b", "c"), ("c", "x"), ("x", "d")):
            self.assertEqual(self.tiers.failed(url, 0.0, "down"), (following,))

    def test_no_shuffle(self) -> None:
        """Adding never asks the rng."""
        rng = KeepOrder()
        tiers = TrackerTiers(TIERS, rng)
        tiers.add("x", 0)
        tiers.add("y")
        self.assertEqual(rng.calls, 2)

    def test_to_empty(self) -> None:
        """The first URL of a torrent without trackers is current at once."""
        tiers = TrackerTiers((), KeepOrder())
        self.assertIs(tiers.add("x", 3), True)
        self.assertEqual((tiers.tiers, tiers.current()), ((("x",),), ("x",)))
        self.assertEqual(tiers.status("x").tier, 0)

    def test_announce_to_all(self) -> None:
        """With announce_to_all a new tier's URL is current with the others."""
        tiers = TrackerTiers(TIERS, KeepOrder(), announce_to_all=True)
        tiers.add("x", 1)
        self.assertEqual(tiers.current(), ("a", "d"))
        tiers.add("y")
        self.assertEqual(tiers.current(), ("a", "d", "y"))
        self.assertEqual(tiers.failed("e", 0.0, "down"), ())
        self.assertEqual(tiers.failed("d", 0.0, "down"), ("e",))
        self.assertEqual(tiers.failed("e", 0.0, "down"), ("x",))


class RemoveTests(SynchronousTestCase):
    """TrackerTiers.remove: the record goes, emptied tiers go, the walk stays valid."""

    def setUp(self) -> None:
        self.tiers = TrackerTiers(TIERS, KeepOrder())

    def test_unknown(self) -> None:
        """Removing a URL that is not there is False and changes nothing."""
        self.assertIs(self.tiers.remove("z"), False)
        self.assertEqual(self.tiers.tiers, TIERS)

    def test_forgotten(self) -> None:
        """A removed URL has no record, is not listed and can be added again."""
        self.assertIs(self.tiers.remove("b"), True)
        self.assertNotIn("b", self.tiers)
        self.assertEqual(len(self.tiers), 4)
        self.assertRaises(LocalProtocolError, self.tiers.status, "b")
        self.assertEqual([s.url for s in self.tiers.statuses()], ["a", "c", "d", "e"])
        self.assertIs(self.tiers.remove("b"), False)
        self.assertIs(self.tiers.add("b", 0), True)
        self.assertEqual(self.tiers.tiers, (("a", "c", "b"), ("d", "e")))

    def test_current_url(self) -> None:
        """Removing the current URL makes the next URL of its tier current."""
        self.tiers.remove("a")
        self.assertEqual(self.tiers.current(), ("b",))
        self.assertEqual(self.tiers.failed("b", 0.0, "down"), ("c",))

    def test_current_url_mid_walk(self) -> None:
        """Removing the URL being walked, mid-tier, goes on with the next one of the tier."""
        self.tiers.failed("a", 0.0, "down")
        self.tiers.remove("b")
        self.assertEqual(self.tiers.current(), ("c",))
        self.assertEqual(self.tiers.failed("c", 0.0, "down"), ("d",))

    def test_url_before_or_after_cursor(self) -> None:
        """Removing another URL of the walked tier leaves the current one current."""
        self.tiers.failed("a", 0.0, "down")
        self.tiers.remove("a")
        self.assertEqual(self.tiers.current(), ("b",))
        self.tiers.remove("c")
        self.assertEqual(self.tiers.current(), ("b",))
        self.assertEqual(self.tiers.failed("b", 0.0, "down"), ("d",))

    def test_last_url_of_tier(self) -> None:
        """An emptied tier goes; later tiers' records shift down and current() stays valid."""
        tiers = TrackerTiers([["a"], ["b", "c"], ["d"]], KeepOrder())
        tiers.failed("a", 0.0, "down")
        self.assertEqual(tiers.current(), ("b",))
        self.assertIs(tiers.remove("a"), True)
        self.assertEqual(tiers.tiers, (("b", "c"), ("d",)))
        self.assertEqual([(s.url, s.tier) for s in tiers.statuses()],
                         [("b", 0), ("c", 0), ("d", 1)])
        self.assertEqual(tiers.current(), ("b",))
        self.assertEqual(tiers.failed("b", 0.0, "down"), ("c",))
        self.assertEqual(tiers.failed("c", 0.0, "down"), ("d",))
        self.assertEqual(tiers.failed("d", 0.0, "down"), ())

    def test_walked_tier_removed(self) -> None:
        """Removing the only URL of the walked tier goes on with the next tier."""
        tiers = TrackerTiers([["a"], ["b"], ["c"]], KeepOrder())
        tiers.failed("a", 0.0, "down")
        tiers.remove("b")
        self.assertEqual(tiers.current(), ("c",))
        self.assertEqual(tiers.status("c").tier, 1)

    def test_walked_last_tier_removed(self) -> None:
        """Removing the walked last tier starts again at the top."""
        for url in ("a", "b", "c"):
            self.tiers.failed(url, 0.0, "down")
        self.tiers.remove("d")
        self.assertEqual(self.tiers.current(), ("e",))
        self.tiers.remove("e")
        self.assertEqual(self.tiers.tiers, (("a", "b", "c"),))
        self.assertEqual(self.tiers.current(), ("a",))

    def test_earlier_tier_removed(self) -> None:
        """Removing a tier before the walked one keeps the walk where it was."""
        tiers = TrackerTiers([["a"], ["b"], ["c", "d"]], KeepOrder())
        tiers.failed("a", 0.0, "down")
        tiers.failed("b", 0.0, "down")
        tiers.failed("c", 0.0, "down")
        self.assertEqual(tiers.current(), ("d",))
        tiers.remove("a")
        self.assertEqual(tiers.current(), ("d",))
        self.assertEqual(tiers.status("d").tier, 1)
        self.assertEqual(tiers.failed("d", 0.0, "down"), ())
        self.assertEqual(tiers.current(), ("b",))

    def test_record_kept_on_shift(self) -> None:
        """A record moved to a lower tier keeps everything but its tier number."""
        tiers = TrackerTiers([["a"], ["b"]], KeepOrder())
        tiers.succeeded("b", 5.0, AnnounceResponse(1800, complete=4))
        before = tiers.status("b")
        tiers.remove("a")
        self.assertEqual(tiers.status("b"), TrackerStatus(**{**_fields(before), "tier": 0}))

    def test_everything(self) -> None:
        """Removing every URL leaves no tiers and nothing current; adding starts over."""
        for url in list(self.tiers):
            self.assertIs(self.tiers.remove(url), True)
        self.assertEqual((self.tiers.tiers, self.tiers.current(), len(self.tiers)), ((), (), 0))
        self.tiers.add("x")
        self.assertEqual(self.tiers.current(), ("x",))

    def test_current_url_at_end_of_tier(self) -> None:
        """Removing the current URL, last of its tier, goes on with the next tier, not back."""
        self.tiers.failed("a", 0.0, "down")
        self.tiers.failed("b", 0.0, "down")
        self.assertEqual(self.tiers.current(), ("c",))
        self.tiers.remove("c")
        self.assertEqual(self.tiers.current(), ("d",))



class RemoveAnnounceToAllTests(SynchronousTestCase):
    """TrackerTiers.remove with announce_to_all: each tier's walk stays its own."""

    def setUp(self) -> None:
        self.tiers = TrackerTiers([["a", "b"], ["c"], ["d", "e"]], KeepOrder(),
                                  announce_to_all=True)

    def test_current_url(self) -> None:
        """Removing a tier's current URL makes its next URL current; other tiers keep theirs."""
        self.tiers.failed("d", 0.0, "down")
        self.tiers.remove("a")
        self.assertEqual(self.tiers.current(), ("b", "c", "e"))

    def test_tier_removed(self) -> None:
        """An emptied tier leaves current(); later tiers shift down with their cursors."""
        self.tiers.failed("d", 0.0, "down")
        self.tiers.remove("c")
        self.assertEqual(self.tiers.tiers, (("a", "b"), ("d", "e")))
        self.assertEqual(self.tiers.current(), ("a", "e"))
        self.assertEqual((self.tiers.status("d").tier, self.tiers.status("e").tier), (1, 1))
        self.assertEqual(self.tiers.failed("e", 0.0, "down"), ())
        self.assertEqual(self.tiers.current(), ("a", "d"))

    def test_other_url(self) -> None:
        """Removing a URL before a tier's cursor keeps that tier's current URL."""
        self.tiers.failed("a", 0.0, "down")
        self.tiers.remove("a")
        self.assertEqual(self.tiers.current(), ("b", "c", "d"))
        self.assertIs(self.tiers.remove("z"), False)


def _fields(status: TrackerStatus) -> dict[str, Any]:
    """A record's fields by name."""
    return {name: getattr(status, name) for name in TrackerStatus.__dataclass_fields__}
