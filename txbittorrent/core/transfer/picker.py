"""Which blocks to request next, and from whom.

Theory of operation
-------------------
``PiecePicker`` owns the download side of one torrent's pieces: our have set,
each piece's priority and availability (how many connected peers have it),
streaming deadlines, and for each piece in progress the state of every block:
*free*, *requested* (by which peers, since when) or *received*, plus the peers
that sent its blocks.  It knows nothing of sockets, disks or clocks: the swarm
reports what peers announce and what arrives, passes ``now`` in, and sends the
requests and cancels that ``pick`` and ``block_received`` (or
``block_arrived``, which also says whether to keep the block) return.

The picker is the policy over two books: the per-block state is
``requests.RequestBook``'s, which the picker extends (``block_arrived``,
``request_failed``, ``timed_out`` and the rest are the book's), and the
pieces it may start are ``buckets.CandidateBuckets``, which it owns.

Each piece is in one place: *had* (never picked again), *in progress* (it has
per-block state in the request book), a *candidate* (not had, not in
progress, priority > 0; kept in the buckets) or *idle* (priority 0).

``pick`` fills a peer's pipeline in this order:

1. pieces with a deadline, earliest first, whatever their rarity;
2. pieces in progress with free blocks: the one this peer was last given (so
   a peer tends to fetch whole pieces), then the most complete;
3. new pieces: one the peer suggested (BEP 6) if it is of the top priority,
   else by priority, then rarest, then at random.  While we have fewer than
   ``RANDOM_FIRST_PIECES`` pieces the pick is uniformly random within the top
   priority, so we get whole pieces to trade soon instead of every newcomer
   queueing on the same rare, slow pieces (BitTorrent's "random first piece");
4. endgame, once no wanted block is free anywhere: blocks already requested
   from others, at most ``endgame_requesters`` peers per block; the first copy
   to arrive names the peers to CANCEL.

``has_due_free_blocks`` tells the swarm that a deadline has passed on a
piece with blocks nobody was asked for, which this peer could send: the
swarm may then make room in the peer's pipeline (see ``swarm.downloader``).

A choking peer is only asked for its allowed-fast pieces (BEP 6).  Pieces of
priority 0 are never picked, even with a deadline.

Complexity
----------
Candidates sit in ``buckets.CandidateBuckets``, by priority then
availability: adding, removing or moving a piece one availability step (a
HAVE) is O(1).  Peers that have everything are counted apart (they add the
same to every piece), so a seed coming or going is O(1).

``pick`` is amortised O(1) per block while a piece is in progress: the peer's
current piece is a dict lookup, its next free block a ``bytearray.find`` from
the cursor.  Starting a new piece is O(L * A + s): L priority levels, A the
highest availability among partial peers (empty buckets are skipped), s the
pieces looked at, from a random point in each bucket (the tie-break), until
one the peer has; for a seed s = 1.  For a peer with under an eighth as many
pieces as there are candidates, and for random-first picks, we walk the peer's
own pieces instead.  Deadlines are O(deadline pieces) per call; finding
another started piece O(started pieces with free blocks), once per piece;
endgame and ``timed_out`` O(blocks in flight); ``peer_gone`` O(its pieces
and requests); priorities O(pieces).
"""

from __future__ import annotations

from collections.abc import Collection, Hashable, Iterable
from typing import Protocol, TypeVar

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import BLOCK_SIZE, Layout
from txbittorrent.core.transfer.buckets import CandidateBuckets
from txbittorrent.core.transfer.requests import STATE_CHARS, PieceInProgress, Request, RequestBook
from txbittorrent.errors import LocalProtocolError

__all__ = ["PiecePicker", "RandomSource", "Request", "RANDOM_FIRST_PIECES", "ENDGAME_REQUESTERS"]

RANDOM_FIRST_PIECES = 4
"""Below this many pieces of our own, new pieces are picked at random, not rarest first."""

ENDGAME_REQUESTERS = 2
"""In endgame, the most peers asked at once for the same block."""

_NO_CAP = 1 << 62  # new_pieces=None: no cap on the pieces one pick may start

K = TypeVar("K", bound=Hashable)

_Out = list[Request]
_Allowed = Collection[int] | None
_PRIORITY_STEP = 1 << 32  # sort key of a new piece: availability - priority * _PRIORITY_STEP
_SMALL_PEER = 8  # walk a peer's own pieces when it has < 1/_SMALL_PEER of the candidates


class RandomSource(Protocol):
    """The part of ``random.Random`` the picker uses (inject a seeded one in tests)."""

    def randrange(self, start: int, /) -> int: ...


class PiecePicker(RequestBook[K]):
    """Rarest-first block selection with priorities, deadlines and endgame,
    over the per-block state of the ``RequestBook`` it extends.

    ``K`` is whatever the swarm uses to name a peer connection (hashable)."""

    def __init__(
        self,
        piece_length: int,
        total_length: int,
        rng: RandomSource,
        have: Bitfield | None = None,
        block_size: int = BLOCK_SIZE,
        endgame_requesters: int = ENDGAME_REQUESTERS,
        random_first: int = RANDOM_FIRST_PIECES,
    ) -> None:
        super().__init__(piece_length, total_length, block_size, endgame_requesters)
        n = self.piece_count
        if have is not None and have.piece_count != n:
            raise ValueError(f"have has {have.piece_count} pieces, expected {n}")
        self._rng = rng
        self._random_first = random_first
        self._have = have.copy() if have is not None else Bitfield(n)
        self._buckets = CandidateBuckets(n)
        self._seeds: set[K] = set()
        self._peers: dict[K, Bitfield] = {}  # what each partial peer has
        self._priority = [1] * n
        self._wanted_left = 0
        self._peer_piece: dict[K, int] = {}  # the piece each peer was last given
        self._deadlines: dict[int, float] = {}
        self._deadline_order: list[int] | None = []
        # Peers an endgame pick found nothing for, with what it looked at:
        # (room generation, their piece count); see _pick_endgame.
        self._endgame_dry: dict[K, tuple[int, int]] = {}
        self._rebuild()

    @classmethod
    def from_layout(
        cls, layout: Layout, rng: RandomSource, have: Bitfield | None = None
    ) -> PiecePicker[K]:
        return cls(layout.piece_length, layout.total_length, rng, have)

    def _rebuild(self) -> None:
        """Recompute the candidates and counters from have, priorities and progress."""
        buckets, priority = self._buckets, self._priority
        buckets.clear()
        self._wanted_left = 0
        for index in range(self.piece_count):
            if index not in self._have and priority[index] > 0:
                self._wanted_left += 1
                if index not in self._progress:
                    buckets.add(index, priority[index])

    # -- what peers have -------------------------------------------------

    def peer_bitfield(self, peer: K, bitfield: Bitfield) -> None:
        """A peer's BITFIELD (or, empty, HAVE NONE).  Replaces what we knew of it."""
        if bitfield.piece_count != self.piece_count:
            raise ValueError("bitfield of the wrong size")
        self._forget_pieces(peer)
        if bitfield.complete:
            self._seeds.add(peer)
        else:
            self._peers[peer] = bitfield.copy()
            change_avail, priority = self._buckets.change_avail, self._priority
            for index in bitfield:
                change_avail(index, 1, priority[index])

    def peer_have_all(self, peer: K) -> None:
        """HAVE ALL (BEP 6): the peer is a seed."""
        self._forget_pieces(peer)
        self._seeds.add(peer)

    def peer_have(self, peer: K, index: int) -> None:
        """A HAVE message."""
        self._check_index(index)
        if peer in self._seeds:
            return
        pieces = self._peers.get(peer)
        if pieces is None:
            pieces = self._peers[peer] = Bitfield(self.piece_count)
        if index not in pieces:
            pieces.add(index)
            self._buckets.change_avail(index, 1, self._priority[index])

    def _forget_pieces(self, peer: K) -> None:
        self._seeds.discard(peer)
        change_avail, priority = self._buckets.change_avail, self._priority
        for index in self._peers.pop(peer, ()):
            change_avail(index, -1, priority[index])

    def peer_gone(self, peer: K) -> None:
        """The connection closed: forget its pieces and free the blocks it owed us."""
        self._forget_pieces(peer)
        self._peer_piece.pop(peer, None)
        self._endgame_dry.pop(peer, None)
        self._release_all(peer)

    def availability(self, index: int) -> int:
        """How many connected peers have piece ``index``."""
        return self._buckets.avail[index] + len(self._seeds)

    # -- priorities and deadlines ----------------------------------------

    def set_piece_priorities(self, priorities: Iterable[int]) -> None:
        """One priority per piece: 0 = skip, higher = sooner (the default is 1)."""
        new = list(priorities)
        if len(new) != self.piece_count or any(p < 0 for p in new):
            raise ValueError(f"need {self.piece_count} priorities, none negative")
        self._priority = new
        self._room_generation += 1
        self._rebuild()

    def set_piece_priority(self, index: int, priority: int) -> None:
        self._check_index(index)
        if priority < 0:
            raise ValueError("priority must not be negative")
        old = self._priority[index]
        self._room_generation += 1
        if index in self._have or old == priority:
            self._priority[index] = priority
            return
        if self._buckets.slot[index] >= 0:
            self._buckets.remove(index, old)
        self._wanted_left += (priority > 0) - (old > 0)
        self._priority[index] = priority
        if priority > 0 and index not in self._progress:
            self._buckets.add(index, priority)

    def set_deadline(self, index: int, deadline: float) -> None:
        """Fetch piece ``index`` before anything else, earliest deadline first."""
        self._check_index(index)
        if index not in self._have:
            self._deadlines[index] = deadline
            self._deadline_order = None

    def clear_deadline(self, index: int) -> None:
        if self._deadlines.pop(index, None) is not None:
            self._deadline_order = None

    @property
    def has_deadlines(self) -> bool:
        """Some piece not had yet has a deadline."""
        return bool(self._deadlines)

    def has_deadline(self, index: int) -> bool:
        return index in self._deadlines

    def _ordered_deadlines(self) -> list[int]:
        """The pieces with a deadline, earliest first (sorted once per change)."""
        if self._deadline_order is None:
            self._deadline_order = sorted(self._deadlines, key=lambda i: (self._deadlines[i], i))
        return self._deadline_order

    def has_due_free_blocks(
        self, peer_has: Bitfield, now: float, allowed_fast: Collection[int] | None = None
    ) -> bool:
        """Whether a piece due by ``now`` (its deadline passed), of priority
        > 0, that the peer has (and, if given, allows fast) has a block
        nobody was asked for: a pick for this peer would take it first.
        O(due pieces)."""
        if not self._deadlines:
            return False
        for index in self._ordered_deadlines():
            if self._deadlines[index] > now:
                break
            if index in self._have or not self._priority[index] or index not in peer_has:
                continue
            if allowed_fast is not None and index not in allowed_fast:
                continue
            piece = self._progress.get(index)
            if piece is None or piece.free:
                return True
        return False

    # -- picking ---------------------------------------------------------

    def pick(
        self,
        peer: K,
        peer_has: Bitfield,
        count: int,
        now: float,
        allowed_fast: Collection[int] | None = None,
        peer_choking: bool = False,
        suggested: Collection[int] = (),
        new_pieces: int | None = None,
    ) -> list[Request]:
        """Up to ``count`` blocks to request from ``peer``, each now marked requested.

        ``new_pieces`` caps how many pieces not yet in progress this pick may
        start (None: no cap), for a caller that must buffer each piece it starts."""
        out: _Out = []
        if peer_choking and not allowed_fast:
            return out
        allowed = allowed_fast if peer_choking else None
        need, priority = count, self._priority
        starts = _NO_CAP if new_pieces is None else new_pieces
        if need > 0 and self._deadlines:
            need, starts = self._pick_deadlines(peer, peer_has, allowed, need, now, out, starts)
        current = self._peer_piece.get(peer, -1)
        if need > 0 and current in self._open and priority[current] and current in peer_has:
            if allowed is None or current in allowed:
                need = self._take(self._progress[current], peer, need, now, out)
        while need > 0 and self._open:
            best: PieceInProgress[K] | None = None
            for index in self._open:
                piece = self._progress[index]
                if (best is None or piece.free < best.free) and priority[index]:
                    if index in peer_has and (allowed is None or index in allowed):
                        best = piece
            if best is None:
                break
            self._peer_piece[peer] = best.index
            need = self._take(best, peer, need, now, out)
        while need > 0 and starts > 0 and self._buckets.count:
            index = self._choose_new(peer_has, allowed, suggested)
            if index < 0:
                break
            starts -= 1
            need = self._take(self._start(index, peer), peer, need, now, out)
        if need > 0 and self.is_endgame:
            self._pick_endgame(peer, peer_has, allowed, need, now, out)
        return out

    def _pick_deadlines(
        self, peer: K, peer_has: Bitfield, allowed: _Allowed, need: int, now: float, out: _Out,
        starts: int,
    ) -> tuple[int, int]:
        """Take blocks of deadline pieces, earliest deadline first; the new
        (need, starts).  A deadline piece starts whatever ``starts`` allows (a
        reader is waiting for it), and the blocks of a late one (deadline
        passed) already requested from another peer are requested from this
        one too, as in endgame."""
        for index in self._ordered_deadlines():
            if index in self._have or not self._priority[index] or index not in peer_has:
                continue
            if allowed is not None and index not in allowed:
                continue
            piece = self._progress.get(index)
            if piece is None:
                piece = self._start(index, peer)
            if piece.free:
                need = self._take(piece, peer, need, now, out)
            elif self._deadlines[index] <= now:
                mine = self._peer_requests.setdefault(peer, set())
                need = self._duplicate(piece, peer, need, now, out, mine)
            if not need:
                break
        return need, starts

    def _choose_new(self, peer_has: Bitfield, allowed: _Allowed, suggested: Collection[int]) -> int:
        """The candidate piece to start next for a peer having ``peer_has``, or -1."""
        buckets, priority = self._buckets, self._priority
        slot = buckets.slot
        top = buckets.top_priority()
        for index in suggested:
            if 0 <= index < self.piece_count and slot[index] >= 0 and index in peer_has:
                if priority[index] == top and (allowed is None or index in allowed):
                    return index
        random_first = self._have.count < self._random_first
        source: Iterable[int]
        if allowed is not None:
            source = [i for i in allowed if 0 <= i < self.piece_count and i in peer_has]
        elif random_first or peer_has.count * _SMALL_PEER < buckets.count:
            source = peer_has
        else:
            return buckets.scan(peer_has, self._rng)
        # One pass over the peer's pieces, keeping every candidate with the best key.
        avail, rarity = buckets.avail, 0 if random_first else 1
        best_key, ties = 0, list[int]()
        for index in source:
            if slot[index] >= 0:
                key = avail[index] * rarity - priority[index] * _PRIORITY_STEP
                if not ties or key < best_key:
                    best_key, ties = key, [index]
                elif key == best_key:
                    ties.append(index)
        return ties[self._rng.randrange(len(ties))] if ties else -1

    def _start(self, index: int, peer: K) -> PieceInProgress[K]:
        """Put piece ``index`` in progress, as ``peer``'s current piece."""
        if self._buckets.slot[index] >= 0:
            self._buckets.remove(index, self._priority[index])
        piece = self._begin(index)
        self._peer_piece[peer] = index
        return piece

    @property
    def has_started_blocks(self) -> bool:
        """Whether a pick that may start no new piece (``new_pieces=0``) could
        return anything: a piece in progress has a free block, or no piece is
        left to start (so endgame may apply).  O(1)."""
        return bool(self._open) or not self._buckets.count

    @property
    def is_endgame(self) -> bool:
        """True when every missing wanted block is requested and some are in flight."""
        priority = self._priority
        if self._buckets.count or any(priority[index] for index in self._open):
            return False
        return any(p.requests and priority[i] for i, p in self._progress.items())

    def _pick_endgame(
        self, peer: K, peer_has: Bitfield, allowed: _Allowed, need: int, now: float, out: _Out
    ) -> None:
        """Duplicate others' blocks for ``peer``.  This walks every block in
        flight, and the swarm asks again after each block that arrives while
        the peer's pipeline is low: a peer it found nothing for is remembered
        with the room generation and its piece count, and skipped until one
        of them changes (a block arriving or duplicated makes no new room)."""
        if allowed is None:
            mark = (self._room_generation, peer_has.count)
            if self._endgame_dry.get(peer) == mark:
                return
        mine = self._peer_requests.setdefault(peer, set())
        wanted = need
        for index, piece in self._progress.items():
            ok = index in peer_has and (allowed is None or index in allowed)
            if not ok or not self._priority[index]:
                continue
            need = self._duplicate(piece, peer, need, now, out, mine)
            if not need:
                return
        if need == wanted and allowed is None:
            self._endgame_dry[peer] = mark

    # -- whole pieces ----------------------------------------------------

    def piece_passed(self, index: int) -> None:
        """The piece hashed correctly (or was found on disk): we have it."""
        self._check_index(index)
        if index in self._have:
            return
        self._drop_progress(index)
        if self._buckets.slot[index] >= 0:
            self._buckets.remove(index, self._priority[index])
        if self._priority[index] > 0:
            self._wanted_left -= 1
        self._have.add(index)
        self.clear_deadline(index)

    def piece_failed(self, index: int) -> set[K]:
        """The piece failed its hash: start it afresh.  The peers that sent its blocks."""
        self._check_index(index)
        if index in self._have:
            raise LocalProtocolError(f"piece {index} failed after it passed")
        piece = self._drop_progress(index)
        if self._priority[index] > 0 and self._buckets.slot[index] < 0:
            self._buckets.add(index, self._priority[index])
        return piece.contributors if piece is not None else set()

    def piece_lost(self, index: int) -> None:
        """A piece we had is no longer verified (a recheck found it bad or
        missing): it is wanted again, a candidate like any other."""
        self._check_index(index)
        if index not in self._have:
            return
        self._have.discard(index)
        if self._priority[index] > 0:
            self._wanted_left += 1
            self._buckets.add(index, self._priority[index])

    # -- introspection ---------------------------------------------------

    @property
    def have(self) -> Bitfield:
        """Our pieces (a copy)."""
        return self._have.copy()

    def block_states(self, index: int) -> str:
        """One character per block: ``.`` free, ``r`` requested, ``#`` received."""
        piece = self._progress.get(index)
        if piece is None:
            return ("#" if index in self._have else ".") * self._block_count(index)
        return "".join(STATE_CHARS[s] for s in piece.state)

    def wanted_left(self) -> int:
        """Pieces of priority > 0 we do not have yet."""
        return self._wanted_left
