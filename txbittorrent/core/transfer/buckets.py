"""The pieces a picker may start, sorted by priority and availability.

Theory of operation
-------------------
``CandidateBuckets`` holds the *candidates* of a ``picker.PiecePicker``: the
pieces not had, not in progress and of priority above 0.  Per priority level
it keeps a list indexed by availability of lists of pieces (the buckets), and
for each piece its ``slot`` in its bucket (-1 when it is no candidate), so
adding, removing or moving a piece one availability step (a HAVE) is O(1):
a piece leaves a bucket by swapping the bucket's last piece into its slot.

It also keeps ``avail``, each piece's availability among partial peers
(candidate or not: a piece in progress goes back to the bucket of its current
availability when it fails).  Peers that have everything are counted apart by
the picker, as they add the same to every piece; so are the priorities: the
picker owns them and passes a piece's priority in, and must pass the same
one to ``remove`` as to ``add``.

What is a candidate, and when, is the picker's to say; the buckets only
sort.  Invariants: ``slot[i] >= 0`` exactly when piece ``i`` is in the bucket
``levels[p][avail[i]]`` (p its priority) at position ``slot[i]``; ``count``
is the number of candidates, ``level_count[p]`` those of priority ``p``;
``levels_desc`` lists the priority levels ever used, highest first.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from txbittorrent.core.bitfield import Bitfield
    from txbittorrent.core.transfer.picker import RandomSource

__all__ = ["CandidateBuckets"]


class CandidateBuckets:
    """Candidate pieces by priority, then availability (see the module docstring)."""

    __slots__ = ("avail", "slot", "count", "levels", "level_count", "levels_desc")

    def __init__(self, piece_count: int) -> None:
        self.avail = [0] * piece_count  # peers with the piece, seeds left out
        self.slot = [-1] * piece_count  # position in its bucket; -1 when not a candidate
        self.count = 0
        self.levels: dict[int, list[list[int]]] = {}  # priority -> availability -> pieces
        self.level_count: dict[int, int] = {}
        self.levels_desc: list[int] = []

    def clear(self) -> None:
        """Drop every candidate (availability stays)."""
        self.levels, self.level_count, self.levels_desc = {}, {}, []
        self.slot = [-1] * len(self.slot)
        self.count = 0

    def add(self, index: int, priority: int) -> None:
        """Make piece ``index``, of ``priority``, a candidate."""
        level = self.levels.get(priority)
        if level is None:
            level = self.levels[priority] = []
            self.level_count[priority] = 0
            self.levels_desc = sorted(self.levels, reverse=True)
        avail = self.avail[index]
        while len(level) <= avail:
            level.append([])
        self.slot[index] = len(level[avail])
        level[avail].append(index)
        self.level_count[priority] += 1
        self.count += 1

    def remove(self, index: int, priority: int) -> None:
        """Piece ``index``, a candidate added with ``priority``, is one no more."""
        bucket = self.levels[priority][self.avail[index]]
        slot = self.slot[index]
        last = bucket.pop()
        if last != index:
            bucket[slot] = last
            self.slot[last] = slot
        self.slot[index] = -1
        self.level_count[priority] -= 1
        self.count -= 1

    def change_avail(self, index: int, delta: int, priority: int) -> None:
        """``delta`` more partial peers have piece ``index``; a candidate
        moves to its new bucket."""
        if self.slot[index] < 0:
            self.avail[index] += delta
            return
        self.remove(index, priority)
        self.avail[index] += delta
        self.add(index, priority)

    def top_priority(self) -> int:
        """The highest priority of any candidate (0 when there is none)."""
        return next((p for p in self.levels_desc if self.level_count[p]), 0)

    def scan(self, peer_has: Bitfield, rng: RandomSource) -> int:
        """By priority then rarity, the first candidate the peer has, from a
        random point in each bucket; -1 if none.  O(L * A + s): L priority
        levels, A the highest availability (empty buckets are skipped), s the
        pieces looked at.

        A partial peer's own pieces count in their availability, so what it
        has is in bucket 1 or above once the picker has seen its messages:
        bucket 0 (pieces only seeds have), often most of the candidates early
        in a swarm, is looked through last for such a peer instead of first."""
        partial = not peer_has.complete
        for priority in self.levels_desc:
            if not self.level_count[priority]:
                continue
            level = self.levels[priority]
            for bucket in level[1:] if partial else level:
                if bucket:
                    found = peer_has.first_of(bucket, rng.randrange(len(bucket)))
                    if found >= 0:
                        return found
            if partial and level and level[0]:
                # A HAVE the session applied but the picker has not seen yet.
                found = peer_has.first_of(level[0], rng.randrange(len(level[0])))
                if found >= 0:
                    return found
        return -1
