"""Our outstanding KRPC queries, by transaction id.

Theory of operation
-------------------
Every query we send gets a transaction id, and its reply is recognised by
that id *and* the address it comes from, so a node cannot answer for
another, and an off-path attacker must guess ``length`` random bytes.
``Transactions`` owns that bookkeeping for the adapter:

* ``add(address, context, now)`` draws a fresh random id (unique among the
  pending ones) and records the query with its deadline and a ``context``
  of the adapter's choosing (what was asked, which lookup asked it, a
  Deferred); it refuses (``None``) beyond ``max_pending`` queries, so a
  burst of lookups cannot grow without bound;
* ``match(transaction_id, address)`` pops the pending query a reply (or an
  error) answers, or gives ``None`` for anything unsolicited or from the
  wrong address (which is then dropped);
* ``expire(now)`` pops every query whose deadline has passed; the adapter
  counts each as a failure of that node (``RoutingTable.node_failed``,
  ``Lookup.timed_out``).  ``next_deadline`` says when to call it.

Deadlines sit in a heap with lazy deletion, so every call is logarithmic.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

from txbittorrent.core.dht.krpc import Address

__all__ = ["Transactions", "Pending", "QUERY_TIMEOUT", "MAX_PENDING", "Bits"]

QUERY_TIMEOUT = 10.0
"""Seconds we wait for a reply by default (libtorrent waits 10 to 15)."""
MAX_PENDING = 2048
"""Queries outstanding at once, over all lookups, pings and announces."""
_MAX_DRAWS = 64

T = TypeVar("T")


class Bits(Protocol):
    """The part of ``random.Random`` used here."""

    def getrandbits(self, k: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class Pending(Generic[T]):
    """One query awaiting its reply."""

    transaction_id: bytes
    address: Address
    deadline: float
    context: T


class Transactions(Generic[T]):
    """Pending queries by transaction id (see the module docstring)."""

    def __init__(
        self,
        rng: Bits,
        *,
        timeout: float = QUERY_TIMEOUT,
        length: int = 4,
        max_pending: int = MAX_PENDING,
    ) -> None:
        if not 2 <= length <= 8 or timeout <= 0 or max_pending < 1:
            raise ValueError("length must be 2..8, timeout and max_pending positive")
        if max_pending > 2 ** (8 * length) // 4:
            raise ValueError("too many pending queries for ids of this length")
        self._rng = rng
        self.timeout = timeout
        self.length = length
        self.max_pending = max_pending
        self._pending: dict[bytes, Pending[T]] = {}
        self._deadlines: list[tuple[float, bytes]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def __iter__(self) -> Iterator[Pending[T]]:
        return iter(list(self._pending.values()))

    def add(
        self, address: Address, context: T, now: float, deadline: float | None = None
    ) -> Pending[T] | None:
        """Record a query to ``address``, due by ``deadline`` (default ``now +
        timeout``); ``None`` when ``max_pending`` are already outstanding."""
        if len(self._pending) >= self.max_pending:
            return None
        for _ in range(_MAX_DRAWS):
            tid = self._rng.getrandbits(8 * self.length).to_bytes(self.length, "big")
            if tid not in self._pending:
                break
        else:  # pragma: no cover - needs 64 collisions at most 1/4 likely each
            return None
        pending = Pending(tid, address, now + self.timeout if deadline is None else deadline,
                          context)
        self._pending[tid] = pending
        heapq.heappush(self._deadlines, (pending.deadline, tid))
        return pending

    def match(self, transaction_id: bytes, address: Address) -> Pending[T] | None:
        """The pending query a reply from ``address`` with ``transaction_id``
        answers, removed; ``None`` if there is none."""
        pending = self._pending.get(transaction_id)
        if pending is None or pending.address != address:
            return None
        del self._pending[transaction_id]
        self._compact()
        return pending

    def cancel(self, transaction_id: bytes) -> Pending[T] | None:
        """Forget a pending query (its reply will be dropped)."""
        pending = self._pending.pop(transaction_id, None)
        self._compact()
        return pending

    def expire(self, now: float) -> list[Pending[T]]:
        """Every pending query whose deadline is ``now`` or earlier, removed."""
        expired = []
        while self._deadlines and self._deadlines[0][0] <= now:
            deadline, tid = heapq.heappop(self._deadlines)
            pending = self._pending.get(tid)
            if pending is not None and pending.deadline == deadline:
                del self._pending[tid]
                expired.append(pending)
        return expired

    @property
    def next_deadline(self) -> float | None:
        """When ``expire`` has work next, or ``None`` if nothing is pending."""
        while self._deadlines:
            deadline, tid = self._deadlines[0]
            pending = self._pending.get(tid)
            if pending is not None and pending.deadline == deadline:
                return deadline
            heapq.heappop(self._deadlines)
        return None

    def _compact(self) -> None:
        """Rebuild the heap when stale entries outnumber live ones."""
        if len(self._deadlines) > 2 * len(self._pending) + 64:
            self._deadlines = [(p.deadline, p.transaction_id) for p in self._pending.values()]
            heapq.heapify(self._deadlines)
