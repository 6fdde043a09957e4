"""The routing table of one address family (BEP 5): k-buckets that split.

Theory of operation
-------------------
The table holds the nodes we know, by the XOR distance of their ids to ours.
Bucket ``i`` of ``n`` holds the ids sharing exactly ``i`` leading bits with our
own id; the last bucket holds every id sharing ``n - 1`` bits or more, so it
is the one that contains our own id, and the only one that splits when full
(into itself and a new last bucket).  Each bucket keeps at most ``k`` live
nodes and a replacement cache of at most ``k`` more, so the table never holds
more than ``160 * 2k`` entries.  One table serves one address family: a node
running IPv4 and IPv6 keeps two (BEP 32).

A node's state comes from what we saw of it (BEP 5):

* good: it answered one of our queries within ``good_for`` seconds (15
  minutes), or answered us once and queried us within ``good_for``;
* bad: it failed ``max_failures`` of our queries in a row;
* questionable: anything else, including a node that only ever queried us.

The adapter reports what happens, with the time:

* ``node_responded``: a node answered one of our queries.  It may be added
  anywhere (splitting the last bucket, or taking the place of a bad or
  never-confirmed node); a full bucket puts it in the replacement cache;
* ``node_queried_us``: a node (not read-only: BEP 43 nodes stay out of the
  table, the caller checks ``ro``) sent us a query.  It only takes a free
  live slot, else the replacement cache, and stays questionable until it
  answers a query of ours, so spoofed queries cannot take over the table;
* ``node_failed``: one of our queries to a node timed out.  A node that
  turns bad is replaced by the freshest node in its bucket's cache.

and asks what to do, each answer recorded so the same one is not given twice
too soon:

* ``pings_due(now)``: questionable live nodes to ping (liveness is checked
  by our own queries, never assumed);
* ``refresh_due(now, rng)``: a random target in each bucket unchanged for
  ``refresh_interval`` (15 minutes), for a find_node lookup;
* ``closest(target, n)``: the ``n`` non-bad nodes nearest ``target``.

An id already in the table at another address is ignored (it may be spoofed);
an address already in the table under another id is taken over by the new id
only when the node answers from it (a node that restarted with a new id).
BEP 42 checks are the caller's (``node_id.is_valid_node_id``).

``to_state()`` gives plain data (strings, integers, lists) for the adapter to
save; ``from_state`` rebuilds a table whose nodes are all questionable, so the
first ``pings_due`` calls re-check them instead of bootstrapping again.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Any, Protocol

from txbittorrent.core.dht.krpc import ID_LENGTH, Address, NodeInfo
from txbittorrent.errors import ResumeDataError

__all__ = [
    "K", "GOOD_FOR", "REFRESH_INTERVAL", "MAX_FAILURES", "PING_RETRY", "NodeState",
    "RoutingTable", "distance", "Bits",
]

K = 8
"""Live nodes per bucket (BEP 5's k), and the replacement cache's size."""
GOOD_FOR = 15 * 60.0
"""Seconds a node stays good after answering us."""
REFRESH_INTERVAL = 15 * 60.0
"""Seconds after which an unchanged bucket is refreshed with a lookup."""
MAX_FAILURES = 3
"""Failed queries in a row after which a node is bad."""
PING_RETRY = 60.0
"""Seconds before ``pings_due`` names the same questionable node again."""
_BITS = ID_LENGTH * 8


class Bits(Protocol):
    """The part of ``random.Random`` used here."""

    def getrandbits(self, k: int, /) -> int: ...


class NodeState(enum.Enum):
    GOOD = "good"
    QUESTIONABLE = "questionable"
    BAD = "bad"


def distance(a: bytes, b: bytes) -> int:
    """The XOR distance between two ids, as an integer."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


@dataclass(slots=True)
class _Entry:
    node_id: bytes
    key: int
    address: Address
    last_response: float | None = None
    last_query: float | None = None
    last_ping: float | None = None
    failures: int = 0
    live: bool = False

    def info(self) -> NodeInfo:
        return NodeInfo(self.node_id, self.address)

    def last_heard(self) -> float:
        heard = [t for t in (self.last_response, self.last_query) if t is not None]
        return max(heard, default=float("-inf"))


@dataclass(slots=True)
class _Bucket:
    nodes: list[_Entry]
    replacements: list[_Entry]
    last_changed: float | None = None


class RoutingTable:
    """The nodes of one address family that we know (see the module docstring)."""

    def __init__(
        self,
        own_id: bytes,
        *,
        ipv6: bool = False,
        k: int = K,
        good_for: float = GOOD_FOR,
        refresh_interval: float = REFRESH_INTERVAL,
        max_failures: int = MAX_FAILURES,
        ping_retry: float = PING_RETRY,
    ) -> None:
        if len(own_id) != ID_LENGTH:
            raise ValueError(f"a node id has {ID_LENGTH} bytes")
        if k < 1 or max_failures < 1:
            raise ValueError("k and max_failures must be positive")
        self.own_id = own_id
        self.ipv6 = ipv6
        self.k = k
        self.good_for = good_for
        self.refresh_interval = refresh_interval
        self.max_failures = max_failures
        self.ping_retry = ping_retry
        self._own = int.from_bytes(own_id, "big")
        self._buckets = [_Bucket([], [])]
        self._entries: dict[bytes, _Entry] = {}
        self._by_address: dict[Address, _Entry] = {}

    # -- queries ----------------------------------------------------------------

    def __len__(self) -> int:
        """Live nodes (replacements not counted), whatever their state."""
        return sum(len(b.nodes) for b in self._buckets)

    def __contains__(self, node_id: object) -> bool:
        entry = self._entries.get(node_id) if isinstance(node_id, bytes) else None
        return entry is not None and entry.live

    @property
    def bucket_count(self) -> int:
        return len(self._buckets)

    def bucket_index(self, node_id: bytes) -> int:
        """The index of the bucket ``node_id`` belongs in (our own id: the last)."""
        shared = _BITS - (int.from_bytes(node_id, "big") ^ self._own).bit_length()
        return min(shared, len(self._buckets) - 1)

    def bucket(self, index: int) -> tuple[list[NodeInfo], list[NodeInfo]]:
        """The live nodes and the replacement cache of bucket ``index``."""
        bucket = self._buckets[index]
        return [e.info() for e in bucket.nodes], [e.info() for e in bucket.replacements]

    def nodes(self) -> list[NodeInfo]:
        """Every live node, bucket by bucket."""
        return [e.info() for b in self._buckets for e in b.nodes]

    def get(self, node_id: bytes) -> NodeInfo | None:
        """The live node with ``node_id``, if any."""
        entry = self._entries.get(node_id)
        return entry.info() if entry is not None and entry.live else None

    def state(self, node_id: bytes, now: float) -> NodeState | None:
        """The state of the node with ``node_id`` (live or cached), if known."""
        entry = self._entries.get(node_id)
        return None if entry is None else self._state(entry, now)

    def count(self, now: float, state: NodeState = NodeState.GOOD) -> int:
        """How many live nodes are in ``state`` at ``now``."""
        return sum(self._state(e, now) is state for b in self._buckets for e in b.nodes)

    def closest(
        self, target: bytes, now: float, n: int | None = None, *, good_only: bool = False
    ) -> list[NodeInfo]:
        """The ``n`` (default k) live nodes nearest ``target`` by XOR, nearest first:
        good and questionable ones, or only good ones with ``good_only``."""
        key = int.from_bytes(target, "big")
        wanted = (NodeState.GOOD,) if good_only else (NodeState.GOOD, NodeState.QUESTIONABLE)
        candidates = [
            e for b in self._buckets for e in b.nodes if self._state(e, now) in wanted
        ]
        candidates.sort(key=lambda e: e.key ^ key)
        return [e.info() for e in candidates[: self.k if n is None else n]]

    def _state(self, entry: _Entry, now: float) -> NodeState:
        if entry.failures >= self.max_failures:
            return NodeState.BAD
        if entry.last_response is not None and (
            now - entry.last_response < self.good_for
            or (entry.last_query is not None and now - entry.last_query < self.good_for)
        ):
            return NodeState.GOOD
        return NodeState.QUESTIONABLE

    # -- what happened ------------------------------------------------------------

    def node_responded(self, node_id: bytes, address: Address, now: float) -> bool:
        """A node answered one of our queries; whether it is now in the table."""
        entry = self._admit(node_id, address, now, responded=True)
        if entry is None:
            return False
        entry.last_response = now
        entry.failures = 0
        bucket = self._buckets[self.bucket_index(node_id)]
        if entry.live:
            bucket.last_changed = now
        else:
            # A confirmed replacement: it may take a free or bad place now.
            self._forget(entry, bucket)
            self._insert(entry, now, split=True, displace=True)
        return True

    def node_queried_us(self, node_id: bytes, address: Address, now: float) -> bool:
        """A (not read-only) node queried us; whether it is now in the table."""
        entry = self._admit(node_id, address, now, responded=False)
        if entry is None:
            return False
        entry.last_query = now
        return True

    def node_failed(self, node_id: bytes, now: float) -> NodeState | None:
        """One of our queries to ``node_id`` timed out; its state now, if known.

        A node that turns bad gives its place to the freshest replacement (or
        leaves the cache, if it was one)."""
        entry = self._entries.get(node_id)
        if entry is None:
            return None
        entry.failures += 1
        state = self._state(entry, now)
        if state is NodeState.BAD:
            bucket = self._buckets[self.bucket_index(node_id)]
            if not entry.live:
                self._forget(entry, bucket)
            elif bucket.replacements:
                self._forget(entry, bucket)
                self._promote(bucket, now)
        return state

    def remove(self, node_id: bytes) -> None:
        """Forget ``node_id`` (live or cached); a replacement takes a live place."""
        entry = self._entries.get(node_id)
        if entry is not None:
            bucket = self._buckets[self.bucket_index(node_id)]
            was_live = entry.live
            self._forget(entry, bucket)
            if was_live and bucket.replacements:
                self._promote(bucket, None)

    def _admit(
        self, node_id: bytes, address: Address, now: float, *, responded: bool
    ) -> _Entry | None:
        """The entry for ``node_id`` at ``address``, inserted if new; ``None`` if refused."""
        if len(node_id) != ID_LENGTH or node_id == self.own_id or not self._family_ok(address):
            return None
        entry = self._entries.get(node_id)
        if entry is not None:
            return entry if entry.address == address else None
        other = self._by_address.get(address)
        if other is not None:
            if not responded:
                return None
            self.remove(other.node_id)
        entry = _Entry(node_id, int.from_bytes(node_id, "big"), address)
        self._insert(entry, now, split=responded, displace=responded)
        return entry

    def _insert(self, entry: _Entry, now: float | None, *, split: bool, displace: bool) -> None:
        """Place ``entry`` in its bucket: a free place (splitting the last bucket
        first if ``split``), a displaced node's (if ``displace``), or the cache."""
        while True:
            index = self.bucket_index(entry.node_id)
            bucket = self._buckets[index]
            if len(bucket.nodes) < self.k:
                self._place(entry, bucket, live=True, now=now)
                return
            if split and index == len(self._buckets) - 1 and index < _BITS - 1:
                self._split()
                continue
            break
        if displace:
            victim = self._victim(bucket, now)
            if victim is not None:
                self._forget(victim, bucket)
                self._place(entry, bucket, live=True, now=now)
                return
        if len(bucket.replacements) >= self.k:
            self._forget(bucket.replacements[0], bucket)
        self._place(entry, bucket, live=False, now=now)

    def _victim(self, bucket: _Bucket, now: float | None) -> _Entry | None:
        """A live node a confirmed newcomer may displace: a bad one, else one that
        never answered us (the longest unheard first)."""
        if now is not None:
            for entry in bucket.nodes:
                if self._state(entry, now) is NodeState.BAD:
                    return entry
        unconfirmed = [e for e in bucket.nodes if e.last_response is None]
        return min(unconfirmed, key=_Entry.last_heard, default=None)

    def _place(self, entry: _Entry, bucket: _Bucket, *, live: bool, now: float | None) -> None:
        entry.live = live
        (bucket.nodes if live else bucket.replacements).append(entry)
        self._entries[entry.node_id] = entry
        self._by_address[entry.address] = entry
        if live and now is not None:
            bucket.last_changed = now

    def _forget(self, entry: _Entry, bucket: _Bucket) -> None:
        (bucket.nodes if entry.live else bucket.replacements).remove(entry)
        del self._entries[entry.node_id]
        del self._by_address[entry.address]

    def _promote(self, bucket: _Bucket, now: float | None) -> None:
        """Move the freshest replacement (answered us, most recently heard) into place."""
        best = max(
            bucket.replacements, key=lambda e: (e.last_response is not None, e.last_heard())
        )
        bucket.replacements.remove(best)
        best.live = True
        bucket.nodes.append(best)
        if now is not None:
            bucket.last_changed = now

    def _split(self) -> None:
        """Split the last bucket: ids sharing more bits with ours move to a new one."""
        last = self._buckets[-1]
        depth = len(self._buckets) - 1
        new = _Bucket([], [], last.last_changed)

        def moves(e: _Entry) -> bool:
            return _BITS - (e.key ^ self._own).bit_length() > depth

        new.nodes = [e for e in last.nodes if moves(e)]
        new.replacements = [e for e in last.replacements if moves(e)]
        last.nodes = [e for e in last.nodes if not moves(e)]
        last.replacements = [e for e in last.replacements if not moves(e)]
        self._buckets.append(new)
        for bucket in (last, new):
            while len(bucket.nodes) < self.k and bucket.replacements:
                self._promote(bucket, None)

    def _family_ok(self, address: Address) -> bool:
        try:
            version = ipaddress.ip_address(address[0]).version
        except ValueError:
            return False
        return version == (6 if self.ipv6 else 4) and 0 < address[1] <= 0xFFFF

    # -- what to do --------------------------------------------------------------

    def pings_due(self, now: float, limit: int = K) -> list[NodeInfo]:
        """Up to ``limit`` questionable live nodes to ping, the longest unheard first;
        each is not named again for ``ping_retry`` seconds."""
        due = [
            e
            for b in self._buckets
            for e in b.nodes
            if self._state(e, now) is NodeState.QUESTIONABLE
            and (e.last_ping is None or now - e.last_ping >= self.ping_retry)
        ]
        due.sort(key=_Entry.last_heard)
        for entry in due[:limit]:
            entry.last_ping = now
        return [e.info() for e in due[:limit]]

    def refresh_due(self, now: float, rng: Bits) -> list[bytes]:
        """A random target in each bucket unchanged for ``refresh_interval``
        (the first call starts the clock); each counts as refreshed now."""
        targets = []
        for index, bucket in enumerate(self._buckets):
            if bucket.last_changed is None:
                bucket.last_changed = now
            elif now - bucket.last_changed >= self.refresh_interval:
                bucket.last_changed = now
                targets.append(self._random_id(index, rng))
        return targets

    def refreshed(self, target: bytes, now: float) -> None:
        """A lookup for ``target`` finished: its bucket needs no refresh for a while."""
        self._buckets[self.bucket_index(target)].last_changed = now

    def _random_id(self, index: int, rng: Bits) -> bytes:
        """A random id in bucket ``index``'s range."""
        last = index == len(self._buckets) - 1
        free = _BITS - index if last else _BITS - index - 1
        prefix = self._own >> free
        if not last:
            prefix ^= 1
        return ((prefix << free) | rng.getrandbits(free)).to_bytes(ID_LENGTH, "big")

    # -- persistence --------------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        """Our id and live nodes as plain data (JSON- and bencode-friendly)."""
        return {
            "node_id": self.own_id.hex(),
            "ipv6": self.ipv6,
            "nodes": [[e.node_id.hex(), e.address[0], e.address[1]]
                      for b in self._buckets for e in b.nodes],
        }

    @classmethod
    def from_state(cls, state: Any, *, own_id: bytes | None = None, **options: Any) -> RoutingTable:
        """A table from ``to_state()``'s data: every node questionable.

        ``own_id`` overrides the saved id (after a BEP 42 change of address);
        ``options`` are the constructor's.  ``ResumeDataError`` if the data is
        malformed."""
        try:
            saved_id = bytes.fromhex(state["node_id"])
            ipv6 = bool(state.get("ipv6", False))
            nodes = [(bytes.fromhex(i), str(h), p) for i, h, p in state["nodes"]]
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise ResumeDataError(f"DHT routing state: {e}") from None
        if len(saved_id) != ID_LENGTH:
            raise ResumeDataError("DHT routing state: bad node id")
        table = cls(own_id or saved_id, ipv6=ipv6, **options)
        for node_id, host, port in nodes:
            if not isinstance(port, int) or len(node_id) != ID_LENGTH:
                raise ResumeDataError("DHT routing state: bad node")
            if node_id == table.own_id or not table._family_ok((host, port)):
                continue
            address = (str(ipaddress.ip_address(host)), port)
            if node_id in table._entries or address in table._by_address:
                continue
            entry = _Entry(node_id, int.from_bytes(node_id, "big"), address)
            table._insert(entry, None, split=True, displace=False)
        return table
