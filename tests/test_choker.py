"""Tests for txbittorrent.core.transfer.choker.

Peers are built from short strings: ``peers("ab-cd", rates=[...])`` makes one
peer per letter, named by the letter; a peer written in upper case is not
interested, ``*`` after a letter marks it snubbed, ``!`` one we already
unchoke.  Rates are given in the same order, in KiB/s.
"""

from __future__ import annotations

import random
from collections import Counter
from dataclasses import replace

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.transfer.choker import (
    NEW_PEER_WINDOW,
    OPTIMISTIC_INTERVAL,
    RECHOKE_INTERVAL,
    SNUB_TIMEOUT,
    OptimisticUnchoke,
    PeerStats,
    choke,
    is_snubbed,
)


def peers(spec: str, down: str = "", up: str = "") -> list[PeerStats[str]]:
    """Peers from a spec such as ``"a b* C d!"``; ``down``/``up``: one rate digit each."""
    out = []
    for i, word in enumerate(spec.split()):
        out.append(
            PeerStats(
                key=word[0].lower(),
                peer_interested=word[0].islower(),
                am_choking="!" not in word,
                snubbed="*" in word,
                download_rate=float(down[i]) * 1024 if down else 0.0,
                upload_rate=float(up[i]) * 1024 if up else 0.0,
            )
        )
    return out


class ChokeTests(SynchronousTestCase):
    """choke: who gets the upload slots."""

    def test_best_rates_win(self) -> None:
        """Leeching, the peers uploading to us fastest are unchoked."""
        got = choke(peers("a b c d e f", down="172839"), 4, seeding=False)
        self.assertEqual(got, {"b", "d", "f", "e"})

    def test_slots_bound(self) -> None:
        """Never more than ``slots`` peers, and none for zero slots."""
        group = peers("a b c d e f", down="172839")
        for slots in range(8):
            self.assertEqual(len(choke(group, slots, False)), min(slots, 6))
            self.assertEqual(len(choke(group, slots, False, optimistic="a")), min(slots, 6))
        self.assertEqual(choke(group, 1, False, optimistic="a"), {"a"})

    def test_optimistic_takes_a_slot(self) -> None:
        """The optimistic peer is added to the ``slots - 1`` best."""
        got = choke(peers("a b c d e f", down="172839"), 4, False, optimistic="a")
        self.assertEqual(got, {"a", "f", "d", "b"})

    def test_optimistic_among_best(self) -> None:
        """An optimistic peer that is among the best leaves its regular slot to the next."""
        got = choke(peers("a b c d e f", down="172839"), 4, False, optimistic="f")
        self.assertEqual(got, {"f", "d", "e", "b"})

    def test_optimistic_not_there(self) -> None:
        """An optimistic peer that left or is not interested reserves no slot."""
        group = peers("a b c D", down="1239")
        self.assertEqual(choke(group, 2, False, optimistic="x"), {"c", "b"})
        self.assertEqual(choke(group, 2, False, optimistic="d"), {"c", "b"})

    def test_snubbed(self) -> None:
        """Snubbed peers are skipped when leeching, except as the optimistic unchoke."""
        group = peers("a* b c* d", down="9912")
        self.assertEqual(choke(group, 2, False), {"b", "d"})
        self.assertEqual(choke(group, 2, False, optimistic="a"), {"a", "b"})

    def test_not_interested(self) -> None:
        """Peers that are not interested are given no slot, however fast; one
        unchoked already keeps its slot only while that slot is spare."""
        group = peers("A B! c d E", down="99119")
        self.assertEqual(choke(group, 4, False), {"b", "c", "d"})
        self.assertEqual(choke(group, 2, False), {"c", "d"})

    def test_seeds_take_no_slot(self) -> None:
        """A peer that is a seed is not unchoked, even if it claims interest."""
        group = [PeerStats("s", True, is_seed=True, download_rate=9e9), *peers("a", down="1")]
        self.assertEqual(choke(group, 2, False), {"a"})

    def test_seeding_by_upload_rate(self) -> None:
        """Seeding, the peers we upload to fastest win; download rates and snubs do not count."""
        group = peers("a b* c d", down="9900", up="1382")
        self.assertEqual(choke(group, 2, seeding=True), {"b", "c"})
        self.assertEqual(choke(group, 2, seeding=False), {"a", "c"})

    def test_ties_prefer_unchoked(self) -> None:
        """Equal rates: the peers already unchoked keep their slots."""
        group = peers("a b c! d e!")
        self.assertEqual(choke(group, 2, False), {"c", "e"})
        self.assertEqual(choke(group, 2, True), {"c", "e"})

    def test_ties_longest_waiting(self) -> None:
        """Equal rates and all choked: never unchoked first, then unchoked longest ago."""
        group = [
            PeerStats("a", True, last_unchoked=50.0),
            PeerStats("b", True, last_unchoked=10.0),
            PeerStats("c", True, last_unchoked=None),
            PeerStats("d", True, last_unchoked=30.0),
        ]
        self.assertEqual(choke(group, 2, False), {"c", "b"})

    def test_ties_input_order(self) -> None:
        """Peers alike in every respect are taken in input order, so results repeat."""
        group = peers("a b c d e f")
        self.assertEqual(choke(group, 3, False), {"a", "b", "c"})
        self.assertEqual(choke(group[::-1], 3, False), {"f", "e", "d"})


class OptimisticUnchokeTests(SynchronousTestCase):
    """The optimistic unchoke rotates on its own schedule."""

    def setUp(self) -> None:
        self.group = peers("a b c d e")
        self.optimistic: OptimisticUnchoke[str] = OptimisticUnchoke(random.Random(7))

    def test_rotates_every_interval(self) -> None:
        """The same peer for OPTIMISTIC_INTERVAL seconds of rechokes, then another."""
        picks = []
        now = 0.0
        for _ in range(10):
            picks.append(self.optimistic.update(self.group, now))
            now += RECHOKE_INTERVAL
        per_interval = int(OPTIMISTIC_INTERVAL // RECHOKE_INTERVAL)
        for start in range(0, 10, per_interval):
            self.assertEqual(len(set(picks[start : start + per_interval])), 1, picks)
        for start in range(per_interval, 10, per_interval):
            self.assertNotEqual(picks[start], picks[start - 1])

    def test_reproducible(self) -> None:
        """The same seed and times give the same sequence."""
        other: OptimisticUnchoke[str] = OptimisticUnchoke(random.Random(7))
        for now in range(0, 300, 10):
            self.assertEqual(
                self.optimistic.update(self.group, float(now)), other.update(self.group, float(now))
            )

    def test_only_choked_interested(self) -> None:
        """Only peers we choke that are interested (and not seeds) are drawn."""
        group = peers("A b! c D! e!") + [PeerStats("s", True, is_seed=True)]
        for now in range(0, 3000, 30):
            self.assertEqual(self.optimistic.update(group, float(now)), "c")

    def test_nobody(self) -> None:
        """With no candidate there is no optimistic unchoke."""
        self.assertIsNone(self.optimistic.update(peers("A b!"), 0.0))
        self.assertIsNone(self.optimistic.update([], 0.0))

    def test_current_leaves(self) -> None:
        """A new peer is drawn at once when the current one leaves or loses interest."""
        first = self.optimistic.update(self.group, 0.0)
        rest = [p for p in self.group if p.key != first]
        second = self.optimistic.update(rest, 1.0)
        self.assertNotIn(second, (None, first))
        bored = [replace(p, peer_interested=p.key != second) for p in rest]
        third = self.optimistic.update(bored, 2.0)
        self.assertNotIn(third, (None, first, second))
        self.assertEqual(self.optimistic.due, 2.0 + OPTIMISTIC_INTERVAL)

    def test_keeps_only_candidate(self) -> None:
        """When the interval is up and nobody else qualifies, the current peer stays."""
        group = peers("a")
        self.assertEqual(self.optimistic.update(group, 0.0), "a")
        unchoked = [replace(group[0], am_choking=False)]
        self.assertEqual(self.optimistic.update(unchoked, OPTIMISTIC_INTERVAL), "a")

    def test_new_peers_weighted(self) -> None:
        """Peers connected under NEW_PEER_WINDOW ago are drawn three times as often."""
        now = 1000.0
        group = [
            PeerStats("new", True, connected_at=now - NEW_PEER_WINDOW / 2),
            *(PeerStats(k, True, connected_at=0.0) for k in "abc"),
        ]
        counts: Counter[str | None] = Counter()
        for seed in range(600):
            counts[OptimisticUnchoke[str](random.Random(seed)).update(group, now)] += 1
        # Expected: new 3/6 of the draws, each old peer 1/6 (300 and 100 of 600).
        self.assertTrue(250 <= counts["new"] <= 350, counts)
        for key in "abc":
            self.assertTrue(70 <= counts[key] <= 130, counts)
        old_now = now + NEW_PEER_WINDOW
        counts.clear()
        for seed in range(600):
            counts[OptimisticUnchoke[str](random.Random(seed)).update(group, old_now)] += 1
        self.assertTrue(120 <= counts["new"] <= 180, counts)


class SnubTests(SynchronousTestCase):
    """is_snubbed: no block for SNUB_TIMEOUT seconds while we ask."""

    def test_snubbed(self) -> None:
        """Asked long ago, nothing (or nothing recent) received: snubbed."""
        self.assertTrue(is_snubbed(SNUB_TIMEOUT, 0.0, None))
        self.assertTrue(is_snubbed(100.0, 10.0, 40.0))

    def test_not_snubbed(self) -> None:
        """Not asking, asked recently, or a recent block: not snubbed."""
        self.assertFalse(is_snubbed(1000.0, None, None))
        self.assertFalse(is_snubbed(SNUB_TIMEOUT - 1, 0.0, None))
        self.assertFalse(is_snubbed(100.0, 0.0, 50.0))
