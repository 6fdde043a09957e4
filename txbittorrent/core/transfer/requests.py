"""The per-block state of the pieces in progress: who was asked for what.

Theory of operation
-------------------
``RequestBook`` keeps, for each piece in progress, a ``PieceInProgress``:
the state of every block (*free*, *requested* by which peers since when, or
*received*), a cursor before which no block is free, and the peers that sent
its blocks; and for each peer the blocks in flight from it, numbered
``piece_index * blocks_per_piece + block``.  It answers for what becomes of
requests (a block arrives, a REJECT or a choke drops it, it times out) and
for whole pieces (complete, dropped).  It knows no policy: which piece to
start, and for whom, is ``picker.PiecePicker``'s, which extends the book, so
that the per-block calls (``pick`` taking blocks, ``block_arrived``) cost no
extra call or lookup.

Pieces enter the book through ``_begin`` and leave through
``_drop_progress``.  Invariants: a block is requested exactly when it has
requesters, and each (peer, block) in flight is also in that peer's request
set; ``_open`` holds exactly the pieces in progress with a free block; no
block before a piece's cursor is free.

Complexity: taking the next free blocks of a piece is a ``bytearray.find``
from its cursor; a block arriving or failing is O(its requesters);
``timed_out`` is O(blocks in flight) and ``_release_all`` O(the peer's
requests).
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Generic, TypeVar

from txbittorrent.core.metainfo import piece_size

__all__ = ["RequestBook", "PieceInProgress", "Request", "STATE_CHARS"]

K = TypeVar("K", bound=Hashable)

Request = tuple[int, int, int]
"""``(piece_index, begin, length)`` of one block."""

_Out = list[Request]
_FREE, _REQUESTED, _RECEIVED = 0, 1, 2
STATE_CHARS = ".r#"
"""How ``block_states`` shows a free, a requested and a received block."""


class PieceInProgress(Generic[K]):
    """One piece in progress: the state of each block and who asked for it."""

    __slots__ = ("index", "state", "requests", "free", "received", "cursor", "contributors")

    def __init__(self, index: int, blocks: int) -> None:
        self.index = index
        self.state = bytearray(blocks)  # _FREE, _REQUESTED or _RECEIVED per block
        self.requests: dict[int, dict[K, float]] = {}  # block -> {peer: requested at}
        self.free = blocks
        self.received = 0
        self.cursor = 0  # no block before this one is free
        self.contributors: set[K] = set()


class RequestBook(Generic[K]):
    """The blocks of the pieces in progress and the requests for them
    (see the module docstring).  ``K`` names a peer connection."""

    def __init__(
        self, piece_length: int, total_length: int, block_size: int, max_requesters: int
    ) -> None:
        if piece_length <= 0 or block_size <= 0 or total_length < 0:
            raise ValueError("piece_length and block_size must be positive")
        self.piece_length = piece_length
        self.total_length = total_length
        self.block_size = block_size
        self.piece_count = (total_length + piece_length - 1) // piece_length
        self._blocks_per_piece = (piece_length + block_size - 1) // block_size
        self._max_requesters = max_requesters  # of one block, by _duplicate (endgame)
        self._progress: dict[int, PieceInProgress[K]] = {}
        self._open: dict[int, None] = {}  # an ordered set
        self._peer_requests: dict[K, set[int]] = {}  # piece * blocks_per_piece + block
        self._room_generation = 0
        """Counts the changes that may let a peer duplicate a block it could
        not before (a block newly requested, a requester dropped, a priority
        changed); a block arriving or a duplicate made is not one.  Endgame
        remembers by it which peers it found nothing for."""

    def piece_size(self, index: int) -> int:
        return piece_size(index, self.piece_length, self.total_length)

    def _block_count(self, index: int) -> int:
        return (self.piece_size(index) + self.block_size - 1) // self.block_size

    def _block_length(self, index: int, block: int) -> int:
        return min(self.block_size, self.piece_size(index) - block * self.block_size)

    def _check_index(self, index: int) -> None:
        if not 0 <= index < self.piece_count:
            raise IndexError(f"piece index {index} out of range")

    # -- taking blocks -----------------------------------------------------

    def _begin(self, index: int) -> PieceInProgress[K]:
        """Put piece ``index`` in progress, every block free."""
        piece: PieceInProgress[K] = PieceInProgress(index, self._block_count(index))
        self._progress[index] = piece
        self._open[index] = None
        return piece

    def _take(self, piece: PieceInProgress[K], peer: K, need: int, now: float, out: _Out) -> int:
        """Request up to ``need`` free blocks of ``piece`` from ``peer``; the new need."""
        index, state, size = piece.index, piece.state, self.block_size
        requests = self._peer_requests.get(peer)
        if requests is None:
            requests = self._peer_requests[peer] = set()
        base = index * self._blocks_per_piece
        last = len(state) - 1
        last_length = self._block_length(index, last)  # only the last block may be short
        block, free, piece_requests = piece.cursor, piece.free, piece.requests
        add, append, find = requests.add, out.append, state.find
        while need and free:
            block = find(_FREE, block)
            state[block] = _REQUESTED
            free -= 1
            piece_requests[block] = {peer: now}
            add(base + block)
            append((index, block * size, size if block != last else last_length))
            need -= 1
            block += 1
        piece.cursor = block
        piece.free = free
        if not free:
            self._open.pop(index, None)
        self._room_generation += 1
        return need

    def _duplicate(
        self, piece: PieceInProgress[K], peer: K, need: int, now: float, out: _Out, mine: set[int]
    ) -> int:
        """Request from ``peer`` too the blocks of ``piece`` others were asked
        for (at most ``max_requesters`` peers a block); the new need."""
        index = piece.index
        base = index * self._blocks_per_piece
        for block, requesters in piece.requests.items():
            if peer in requesters or len(requesters) >= self._max_requesters:
                continue
            requesters[peer] = now
            mine.add(base + block)
            out.append((index, block * self.block_size, self._block_length(index, block)))
            need -= 1
            if not need:
                break
        return need

    # -- what became of requests -----------------------------------------

    def _locate(self, index: int, begin: int) -> tuple[PieceInProgress[K] | None, int]:
        piece = self._progress.get(index)
        block, rest = divmod(begin, self.block_size)
        if piece is None or rest or not 0 <= block < len(piece.state):
            return None, -1
        return piece, block

    def wants_block(self, index: int, begin: int) -> bool:
        """Whether a block arriving now is needed (store it) or not (drop it)."""
        piece, block = self._locate(index, begin)
        return piece is not None and piece.state[block] != _RECEIVED

    def block_arrived(self, peer: K, index: int, begin: int) -> list[K] | None:
        """``wants_block`` and ``block_received`` in one step: ``None`` if the
        block is not wanted (nothing changes), else the peers to CANCEL."""
        piece = self._progress.get(index)
        if piece is None:
            return None
        block, rest = divmod(begin, self.block_size)
        state = piece.state
        if rest or not 0 <= block < len(state) or state[block] == _RECEIVED:
            return None
        requesters = piece.requests.pop(block, None)
        if state[block] == _FREE:  # its request had timed out
            piece.free -= 1
            if not piece.free:
                self._open.pop(index, None)
        state[block] = _RECEIVED
        piece.received += 1
        piece.contributors.add(peer)
        if not requesters:
            return []
        number = index * self._blocks_per_piece + block
        peer_requests = self._peer_requests
        for other in requesters:
            peer_requests[other].discard(number)
        if len(requesters) == 1 and peer in requesters:
            return []
        return [other for other in requesters if other != peer]

    def block_received(self, peer: K, index: int, begin: int) -> list[K]:
        """A block arrived from ``peer``: the other peers to send CANCEL for it.

        A block not wanted (a second copy, a piece not in progress) changes
        nothing and returns ``[]``; ask ``wants_block`` before storing one."""
        piece, block = self._locate(index, begin)
        if piece is None or piece.state[block] == _RECEIVED:
            return []
        number = index * self._blocks_per_piece + block
        requesters = piece.requests.pop(block, {})
        for other in requesters:
            self._peer_requests[other].discard(number)
        if piece.state[block] == _FREE:  # its request had timed out
            piece.free -= 1
            if not piece.free:
                self._open.pop(index, None)
        piece.state[block] = _RECEIVED
        piece.received += 1
        piece.contributors.add(peer)
        return [other for other in requesters if other != peer]

    def request_failed(self, peer: K, index: int, begin: int) -> None:
        """A REJECT, a choke that dropped the request, or our CANCEL: free the block."""
        piece, block = self._locate(index, begin)
        if piece is not None and peer in piece.requests.get(block, ()):
            self._peer_requests[peer].discard(index * self._blocks_per_piece + block)
            self._release(peer, piece, block)

    def _release(self, peer: K, piece: PieceInProgress[K], block: int) -> None:
        """Drop ``peer``'s request for ``block``; with no requester left it is free."""
        requesters = piece.requests.get(block)
        if requesters is None or requesters.pop(peer, None) is None:
            return
        self._room_generation += 1
        if requesters:
            return
        del piece.requests[block]
        piece.state[block] = _FREE
        piece.free += 1
        piece.cursor = min(piece.cursor, block)
        self._open[piece.index] = None

    def _release_all(self, peer: K) -> None:
        """Drop every request of ``peer``'s (the connection closed)."""
        for number in self._peer_requests.pop(peer, ()):
            index, block = divmod(number, self._blocks_per_piece)
            self._release(peer, self._progress[index], block)

    def timed_out(self, now: float, timeout: float) -> list[tuple[K, int, int, int]]:
        """Requests made ``timeout`` or more ago, as ``(peer, index, begin, length)``.

        They are released (the block is free unless another peer has it too),
        so the swarm can ask again elsewhere and mark the peers snubbed.  A
        late copy still counts if it arrives first."""
        expired: list[tuple[K, int, int, int]] = []
        for index, piece in self._progress.items():
            for block, requesters in piece.requests.items():
                for peer, since in requesters.items():
                    if now - since >= timeout:
                        length = self._block_length(index, block)
                        expired.append((peer, index, block * self.block_size, length))
        for peer, index, begin, _ in expired:
            self.request_failed(peer, index, begin)
        return expired

    # -- whole pieces ----------------------------------------------------

    def piece_complete(self, index: int) -> bool:
        """All blocks of piece ``index`` received: ready to hash."""
        piece = self._progress.get(index)
        return piece is not None and piece.received == len(piece.state)

    def _drop_progress(self, index: int) -> PieceInProgress[K] | None:
        piece = self._progress.pop(index, None)
        if piece is not None:
            self._open.pop(index, None)
            base = index * self._blocks_per_piece
            for block, requesters in piece.requests.items():
                for peer in requesters:
                    self._peer_requests[peer].discard(base + block)
        return piece

    def in_progress(self) -> list[int]:
        """The pieces with per-block state, in index order."""
        return sorted(self._progress)

    def requests_of(self, peer: K) -> list[Request]:
        """The blocks in flight from ``peer``, in order."""
        out: _Out = []
        for number in sorted(self._peer_requests.get(peer, ())):
            index, block = divmod(number, self._blocks_per_piece)
            out.append((index, block * self.block_size, self._block_length(index, block)))
        return out
