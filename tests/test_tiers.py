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
