"""Tests for txbittorrent.core.dht.routing: the routing table.

Node ids are written as short bit strings: ``"01"`` is the id whose first two
bits are 0 and 1 and whose other 158 bits are 0; our own id is ``""`` (all
zeros) unless a test says otherwise.  ``layout(table)`` draws the table the
same way, one string per bucket: live nodes, then ``|`` and the replacement
cache, in the spirit of libtorrent's picker fixtures.
"""

from __future__ import annotations

import json
import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.dht.krpc import NodeInfo
from txbittorrent.core.dht.routing import (
    GOOD_FOR,
    MAX_FAILURES,
    PING_RETRY,
    REFRESH_INTERVAL,
    NodeState,
    RoutingTable,
    distance,
)
from txbittorrent.errors import ResumeDataError


def nid(bits: str) -> bytes:
    """The id whose leading bits are ``bits``, the rest zero."""
    return int(bits.ljust(160, "0"), 2).to_bytes(20, "big")


def bits(node_id: bytes) -> str:
    """The bit string of an id, trailing zeros dropped."""
    return format(int.from_bytes(node_id, "big"), "0160b").rstrip("0")


def addr(b: str) -> tuple[str, int]:
    """A distinct loopback address for each bit string."""
    return ("127.0.0.1", 10_000 + int("1" + b, 2))


def layout(table: RoutingTable) -> list[str]:
    out = []
    for index in range(table.bucket_count):
        live, cached = table.bucket(index)
        text = " ".join(bits(n.node_id) for n in live)
        if cached:
            text += " | " + " ".join(bits(n.node_id) for n in cached)
        out.append(text)
    return out


def respond(table: RoutingTable, *names: str, now: float = 0.0) -> None:
    for name in names:
        table.node_responded(nid(name), addr(name), now)


def check_invariants(table: RoutingTable) -> None:
    """Every node sits in the bucket its id belongs in, within the bounds."""
    seen: set[bytes] = set()
    for index in range(table.bucket_count):
        live, cached = table.bucket(index)
        assert len(live) <= table.k and len(cached) <= table.k, (index, live, cached)
        for node in live + cached:
            assert table.bucket_index(node.node_id) == index
            assert node.node_id not in seen
            assert node.node_id != table.own_id
            seen.add(node.node_id)
    assert table.bucket_count <= 160


class SplittingTests(SynchronousTestCase):
    """Buckets split when the one holding our own id is full."""

    def test_split_sequence(self) -> None:
        """The last bucket splits; the far ones do not."""
        table = RoutingTable(nid(""), k=2)
        respond(table, "1", "11")
        self.assertEqual(layout(table), ["1 11"])
        respond(table, "01")
        self.assertEqual(layout(table), ["1 11", "01"])
        respond(table, "001")
        self.assertEqual(layout(table), ["1 11", "01 001"])
        respond(table, "0001")
        self.assertEqual(layout(table), ["1 11", "01", "001 0001"])
        respond(table, "101")
        self.assertEqual(layout(table), ["1 11 | 101", "01", "001 0001"])
        check_invariants(table)

    def test_split_moves_replacements(self) -> None:
        """Replacements follow their ids into the new bucket and fill its places."""
        table = RoutingTable(nid(""), k=2)
        respond(table, "1", "11")
        table.node_queried_us(nid("01"), addr("01"), 0.0)
        self.assertEqual(layout(table), ["1 11 | 01"])
        respond(table, "001")
        self.assertEqual(layout(table), ["1 11", "01 001"])

    def test_own_id_anywhere(self) -> None:
        """Splitting follows our own id when it is not all zeros."""
        table = RoutingTable(nid("1"), k=1)
        respond(table, "01", "11", "101")
        self.assertEqual(layout(table), ["01", "11", "101"])
        check_invariants(table)

    def test_deepest_split(self) -> None:
        """Ids differing from ours only in the last bit still find a bucket."""
        table = RoutingTable(nid(""), k=1)
        for depth in range(160):
            table.node_responded(nid("0" * depth + "1"), ("10.0.0.1", depth + 1), 0.0)
        self.assertEqual(table.bucket_count, 160)
        self.assertEqual(len(table), 160)
        check_invariants(table)


class AdmissionTests(SynchronousTestCase):
    """Who gets in, and where."""

    def test_refused(self) -> None:
        """Our own id, a wrong-length id, the other family and port 0 are refused."""
        table = RoutingTable(nid(""))
        self.assertFalse(table.node_responded(nid(""), addr("1"), 0.0))
        self.assertFalse(table.node_responded(b"short", addr("1"), 0.0))
        self.assertFalse(table.node_responded(nid("1"), ("::1", 5), 0.0))
        self.assertFalse(table.node_responded(nid("1"), ("127.0.0.1", 0), 0.0))
        self.assertFalse(table.node_responded(nid("1"), ("localhost", 5), 0.0))
        self.assertEqual(len(table), 0)
        table6 = RoutingTable(nid(""), ipv6=True)
        self.assertTrue(table6.node_responded(nid("1"), ("::1", 5), 0.0))
        self.assertFalse(table6.node_responded(nid("11"), ("127.0.0.1", 5), 0.0))

    def test_queried_us_takes_free_places_only(self) -> None:
        """A node that queried us takes a free place, never splits nor displaces."""
        table = RoutingTable(nid(""), k=2)
        for name in ("1", "01", "001"):
            self.assertTrue(table.node_queried_us(nid(name), addr(name), 0.0))
        self.assertEqual(layout(table), ["1 01 | 001"])
        self.assertEqual(table.state(nid("1"), 0.0), NodeState.QUESTIONABLE)

    def test_confirmed_displaces_unconfirmed(self) -> None:
        """A node that answered us takes the place of one that never did."""
        table = RoutingTable(nid(""), k=2)
        respond(table, "1")
        table.node_queried_us(nid("11"), addr("11"), 0.0)
        table.node_queried_us(nid("111"), addr("111"), 1.0)
        self.assertEqual(layout(table), ["1 11 | 111"])
        # The bucket holds our id, so it would split instead; use a far bucket.
        respond(table, "01")
        self.assertEqual(layout(table), ["1 11 | 111", "01"])
        respond(table, "101")
        self.assertEqual(layout(table), ["1 101 | 111", "01"])

    def test_cached_node_answering_takes_place(self) -> None:
        """A cached node that answers us takes a bad node's place; removing a
        live node promotes a cached one."""
        table = RoutingTable(nid(""), k=2)
        respond(table, "1", "11", "01")
        for _ in range(MAX_FAILURES):
            table.node_failed(nid("11"), 1.0)
        table.node_queried_us(nid("101"), addr("101"), 2.0)
        self.assertEqual(layout(table), ["1 11 | 101", "01"])
        respond(table, "101", now=3.0)
        self.assertEqual(layout(table), ["1 101", "01"])
        self.assertEqual(table.state(nid("101"), 3.0), NodeState.GOOD)
        table.node_queried_us(nid("1001"), addr("1001"), 4.0)
        table.remove(nid("1"))
        self.assertEqual(layout(table), ["101 1001", "01"])
        table.remove(nid("101"))
        self.assertEqual(layout(table), ["1001", "01"])

    def test_id_at_another_address_ignored(self) -> None:
        """An id we know at one address is not taken over from another."""
        table = RoutingTable(nid(""))
        respond(table, "1")
        self.assertFalse(table.node_responded(nid("1"), ("127.0.0.2", 1), 0.0))
        self.assertEqual(table.get(nid("1")), NodeInfo(nid("1"), addr("1")))

    def test_new_id_at_known_address(self) -> None:
        """An address answering with a new id replaces its old one; a query does not."""
        table = RoutingTable(nid(""))
        respond(table, "1")
        self.assertFalse(table.node_queried_us(nid("11"), addr("1"), 1.0))
        self.assertIn(nid("1"), table)
        self.assertTrue(table.node_responded(nid("11"), addr("1"), 1.0))
        self.assertEqual(table.nodes(), [NodeInfo(nid("11"), addr("1"))])
        self.assertNotIn(nid("1"), table)

    def test_replacement_cache_bounded(self) -> None:
        """The cache keeps the k most recent; the oldest goes first."""
        table = RoutingTable(nid(""), k=2)
        respond(table, "1", "11", "01")
        respond(table, "101", "111", "1001")
        self.assertEqual(layout(table), ["1 11 | 111 1001", "01"])


class LivenessTests(SynchronousTestCase):
    """Good, questionable and bad, and what to ping."""

    def test_states_over_time(self) -> None:
        """Good after answering, questionable after 15 minutes, bad after failures."""
        table = RoutingTable(nid(""))
        respond(table, "1", now=100.0)
        self.assertEqual(table.state(nid("1"), 100.0 + GOOD_FOR - 1), NodeState.GOOD)
        self.assertEqual(table.state(nid("1"), 100.0 + GOOD_FOR), NodeState.QUESTIONABLE)
        for failure in range(1, MAX_FAILURES + 1):
            state = table.node_failed(nid("1"), 100.0 + GOOD_FOR)
            expected = NodeState.BAD if failure == MAX_FAILURES else NodeState.QUESTIONABLE
            self.assertEqual(state, expected)
        self.assertEqual(table.closest(nid("1"), 2000.0), [])
        self.assertEqual(len(table), 1)
        respond(table, "1", now=2000.0)
        self.assertEqual(table.state(nid("1"), 2000.0), NodeState.GOOD)
        self.assertIsNone(table.node_failed(nid("11"), 2000.0))
        self.assertIsNone(table.state(nid("11"), 2000.0))

    def test_good_by_querying_us(self) -> None:
        """A node that once answered stays good while it keeps querying us."""
        table = RoutingTable(nid(""))
        respond(table, "1", now=0.0)
        table.node_queried_us(nid("1"), addr("1"), GOOD_FOR + 10)
        self.assertEqual(table.state(nid("1"), GOOD_FOR + 20), NodeState.GOOD)
        table.node_queried_us(nid("11"), addr("11"), 0.0)
        self.assertEqual(table.state(nid("11"), 1.0), NodeState.QUESTIONABLE)

    def test_a_failure_then_an_answer(self) -> None:
        """An answer clears the failure count: failures must be in a row."""
        table = RoutingTable(nid(""))
        respond(table, "1")
        for _ in range(MAX_FAILURES - 1):
            table.node_failed(nid("1"), 1.0)
        respond(table, "1", now=2.0)
        table.node_failed(nid("1"), 3.0)
        self.assertEqual(table.state(nid("1"), 3.0), NodeState.GOOD)

    def test_pings_due(self) -> None:
        """Questionable nodes are named, longest unheard first, once per ping_retry."""
        table = RoutingTable(nid(""))
        respond(table, "1", now=10.0)
        respond(table, "11", now=0.0)
        respond(table, "01", now=5000.0)
        later = 10.0 + GOOD_FOR
        self.assertEqual(
            [bits(n.node_id) for n in table.pings_due(later)], ["11", "1"]
        )
        self.assertEqual(table.pings_due(later + PING_RETRY - 1), [])
        self.assertEqual(len(table.pings_due(later + PING_RETRY, limit=1)), 1)
        table.node_failed(nid("11"), later)
        for _ in range(MAX_FAILURES):
            table.node_failed(nid("1"), later)
        self.assertEqual([bits(n.node_id) for n in table.pings_due(later + 5 * PING_RETRY)], ["11"])

    def test_bad_replaced_from_cache(self) -> None:
        """A live node turning bad gives its place to the freshest cached node,
        preferring one that answered us."""
        table = RoutingTable(nid(""), k=2)
        respond(table, "1", "11", "01")
        respond(table, "101", now=5.0)
        table.node_queried_us(nid("111"), addr("111"), 9.0)
        self.assertEqual(layout(table), ["1 11 | 101 111", "01"])
        for _ in range(MAX_FAILURES):
            table.node_failed(nid("1"), 10.0)
        self.assertEqual(layout(table), ["11 101 | 111", "01"])
        for _ in range(MAX_FAILURES):
            table.node_failed(nid("111"), 10.0)
        self.assertEqual(layout(table), ["11 101", "01"])

    def test_bad_without_cache_stays_until_displaced(self) -> None:
        """With no replacement a bad node keeps its place until a newcomer comes."""
        table = RoutingTable(nid(""), k=2)
        respond(table, "1", "11", "01")
        for _ in range(MAX_FAILURES):
            table.node_failed(nid("1"), 10.0)
        self.assertEqual(layout(table), ["1 11", "01"])
        respond(table, "101", now=11.0)
        self.assertEqual(layout(table), ["11 101", "01"])

    def test_counts(self) -> None:
        """count() tells how many nodes are in each state."""
        table = RoutingTable(nid(""))
        respond(table, "1", "11")
        table.node_queried_us(nid("01"), addr("01"), 0.0)
        self.assertEqual(table.count(1.0), 2)
        self.assertEqual(table.count(1.0, NodeState.QUESTIONABLE), 1)
        self.assertEqual(len(table), 3)


class ClosestTests(SynchronousTestCase):
    """Nearest nodes by XOR distance."""

    def test_order(self) -> None:
        """Nodes come nearest first, at most n (k by default)."""
        table = RoutingTable(nid(""), k=3)
        respond(table, "1", "11", "01", "001", "0001", "011")
        target = nid("0101")
        found = table.closest(target, 0.0)
        self.assertEqual([bits(n.node_id) for n in found], ["01", "011", "0001"])
        self.assertEqual(len(table.closest(target, 0.0, 10)), 6)
        distances = [distance(n.node_id, target) for n in table.closest(target, 0.0, 10)]
        self.assertEqual(distances, sorted(distances))

    def test_good_only(self) -> None:
        """good_only leaves out questionable nodes; bad ones are always left out."""
        table = RoutingTable(nid(""))
        respond(table, "1")
        table.node_queried_us(nid("11"), addr("11"), 0.0)
        self.assertEqual(len(table.closest(nid("1"), 0.0)), 2)
        self.assertEqual(table.closest(nid("1"), 0.0, good_only=True), [table.get(nid("1"))])


class RefreshTests(SynchronousTestCase):
    """Buckets unchanged for 15 minutes are refreshed with a lookup."""

    def test_refresh_targets(self) -> None:
        """The first call starts the clock; later, one target per stale bucket,
        inside that bucket's range."""
        table = RoutingTable(nid(""), k=2)
        respond(table, "1", "11", "01", "001", now=0.0)
        rng = random.Random(3)
        self.assertEqual(table.refresh_due(0.0, rng), [])
        respond(table, "1", now=100.0)
        targets = table.refresh_due(REFRESH_INTERVAL, rng)
        self.assertEqual([table.bucket_index(t) for t in targets], [1])
        self.assertEqual(table.refresh_due(REFRESH_INTERVAL, rng), [])
        targets = table.refresh_due(100.0 + REFRESH_INTERVAL, rng)
        self.assertEqual([table.bucket_index(t) for t in targets], [0])

    def test_refreshed(self) -> None:
        """A lookup for a target counts as refreshing its bucket."""
        table = RoutingTable(nid(""), k=1)
        respond(table, "1", "01")
        table.refresh_due(0.0, random.Random(1))
        table.refreshed(nid("11"), REFRESH_INTERVAL - 1)
        targets = table.refresh_due(REFRESH_INTERVAL, random.Random(1))
        self.assertEqual([table.bucket_index(t) for t in targets], [1])

    @given(st.integers(0, 2**160 - 1), st.integers(0, 2**32))
    @settings(max_examples=100, deadline=None)
    def test_random_ids_in_range(self, own: int, seed: int) -> None:
        """A refresh target always lands in the bucket it refreshes."""
        table = RoutingTable(own.to_bytes(20, "big"), k=1)
        rng = random.Random(seed)
        for i in range(12):
            node = rng.getrandbits(160).to_bytes(20, "big")
            table.node_responded(node, ("10.0.0.1", i + 1), 0.0)
        table.refresh_due(0.0, rng)
        targets = table.refresh_due(REFRESH_INTERVAL, rng)
        self.assertEqual([table.bucket_index(t) for t in targets], list(range(table.bucket_count)))


class PersistenceTests(SynchronousTestCase):
    """to_state and from_state."""

    def test_round_trip(self) -> None:
        """The saved nodes come back, through JSON, as questionable nodes to ping."""
        table = RoutingTable(nid("1"), k=2)
        respond(table, "0", "01", "11", "101", "1001")
        state = json.loads(json.dumps(table.to_state()))
        restored = RoutingTable.from_state(state, k=2)
        self.assertEqual(restored.own_id, nid("1"))
        self.assertEqual(layout(restored), [s.split(" |")[0] for s in layout(table)])
        self.assertEqual(restored.count(0.0), 0)
        self.assertEqual(len(restored.pings_due(0.0, limit=100)), len(table))

    def test_new_own_id(self) -> None:
        """own_id overrides the saved id; the nodes are arranged around it."""
        table = RoutingTable(nid(""), k=8)
        respond(table, "1", "01", "001")
        restored = RoutingTable.from_state(table.to_state(), own_id=nid("0011"))
        self.assertEqual(restored.own_id, nid("0011"))
        self.assertEqual(len(restored), 3)
        check_invariants(restored)

    def test_ipv6(self) -> None:
        """The family is saved; addresses come back canonical."""
        table = RoutingTable(nid(""), ipv6=True)
        table.node_responded(nid("1"), ("2001:db8::1", 7), 0.0)
        state = table.to_state()
        state["nodes"].append([nid("11").hex(), "2001:DB8:0::2", 8])
        restored = RoutingTable.from_state(state)
        self.assertTrue(restored.ipv6)
        self.assertEqual(restored.get(nid("11")), NodeInfo(nid("11"), ("2001:db8::2", 8)))

    def test_skips_unusable_nodes(self) -> None:
        """Our own id, duplicates and the other family are skipped."""
        state = {
            "node_id": nid("").hex(),
            "nodes": [
                [nid("").hex(), "127.0.0.1", 1],
                [nid("1").hex(), "127.0.0.1", 2],
                [nid("1").hex(), "127.0.0.1", 3],
                [nid("11").hex(), "127.0.0.1", 2],
                [nid("111").hex(), "::1", 4],
                [nid("101").hex(), "127.0.0.1", 0],
            ],
        }
        expected = [NodeInfo(nid("1"), ("127.0.0.1", 2))]
        self.assertEqual(RoutingTable.from_state(state).nodes(), expected)

    def test_malformed(self) -> None:
        """Malformed state raises ResumeDataError."""
        state: object
        for state in (
            None,
            [],
            {},
            {"node_id": "zz", "nodes": []},
            {"node_id": "00", "nodes": []},
            {"node_id": nid("").hex()},
            {"node_id": nid("").hex(), "nodes": [["00", "127.0.0.1", 1]]},
            {"node_id": nid("").hex(), "nodes": [[nid("1").hex(), "127.0.0.1", "1"]]},
            {"node_id": nid("").hex(), "nodes": [[nid("1").hex()]]},
            {"node_id": nid("").hex(), "nodes": 5},
        ):
            with self.assertRaises(ResumeDataError, msg=repr(state)):
                RoutingTable.from_state(state)


class BoundTests(SynchronousTestCase):
    """Whatever arrives, the table stays within its bounds."""

    @given(
        st.lists(
            st.tuples(
                st.sampled_from(["responded", "queried", "failed", "remove"]),
                st.integers(0, 63),
                st.tuples(st.integers(0, 2**160 - 1), st.integers(0, 159)),
            ),
            max_size=300,
        )
    )
    @settings(max_examples=150, deadline=None)
    def test_invariants(self, events: list[tuple[str, int, tuple[int, int]]]) -> None:
        """Random events keep every node in its bucket and every bucket bounded."""
        self.run_events(events)

    def test_stress(self) -> None:
        """Thousands of seeded random events, ids near ours, keep the bounds."""
        rng = random.Random(7)
        kinds = ["responded"] * 5 + ["queried"] * 3 + ["failed"] * 3 + ["remove"]
        events = [
            (rng.choice(kinds), rng.randrange(200), (rng.getrandbits(160), rng.randrange(40)))
            for _ in range(5000)
        ]
        table = self.run_events(events)
        self.assertGreater(table.bucket_count, 10)
        self.assertGreater(len(table), 40)

    def run_events(self, events: list[tuple[str, int, tuple[int, int]]]) -> RoutingTable:
        table = RoutingTable(nid(""), k=2, max_failures=2)
        now = 0.0
        known: list[bytes] = []
        for kind, port, (random_bits, shift) in events:
            now += 7.0
            value = random_bits >> shift
            node_id = value.to_bytes(20, "big")
            if kind in ("failed", "remove") and known:
                node_id = known[value % len(known)]
            address = ("127.0.0.1", port + 1)
            if kind == "responded":
                table.node_responded(node_id, address, now)
                known.append(node_id)
            elif kind == "queried":
                table.node_queried_us(node_id, address, now)
                known.append(node_id)
            elif kind == "failed":
                table.node_failed(node_id, now)
            else:
                table.remove(node_id)
            check_invariants(table)
        addresses = [n.address for n in table.nodes()]
        self.assertEqual(len(addresses), len(set(addresses)))
        return table
