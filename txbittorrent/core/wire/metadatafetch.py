"""BEP 9 (``ut_metadata``): fetching an info dictionary from peers.

Theory of operation
-------------------
``MetadataFetch`` is the fetching side for one torrent, over peers of any
hashable type ``P`` (the swarm's plug-in uses its ``PeerState``s).  It owns:

* the peers that offer the metadata and the size each announced (a size over
  ``max_size`` or not positive is refused: nothing is asked of that peer);
* the current *attempt*: one size, the pieces received so far (at most that
  many bytes, kept piece by piece as they arrive, never allocated ahead
  from a size a peer claimed) and who sent each;
* the requests in flight, per peer, with the time they were sent.

The caller asks ``requests(now)`` for what to send (and sends it),
``on_data``/``on_reject`` for what came back, ``expire(now)`` now and then,
and ``remove_peer`` when a peer goes.  Time is only ever passed in; nothing
here sends, reads a clock or knows the wire format (``core.wire.metadata``).

Rules it keeps:

* An attempt fetches one size: the one most usable peers announced (peers
  never blamed for a failed attempt count first).  Only peers that
  announced it are asked; a DATA whose ``total_size`` is not what its sender
  announced, or whose length is wrong for its piece, is a ``Violation``
  (the sender is dropped and the piece asked elsewhere).  If every peer of
  that size goes, the attempt starts over with another size.
* At most ``per_peer`` requests per peer; a piece is in flight at one peer
  at a time.  A request unanswered after ``request_timeout`` is handed to
  another peer; the slow one is not asked again for ``slow_backoff`` (its
  late answer is still welcome).  A REJECT backs its sender off for
  ``reject_backoff``.  A DATA we never asked that peer for is ``Ignored``
  (BEP 9 says nothing; libtorrent ignores them too): it costs nothing.
* Once every piece is in, the bytes are accepted only if their SHA-1 is the
  info hash (``MetadataVerified``).  Otherwise (``MetadataHashFailed``) the
  attempt starts over.  The senders are named: a sole sender is certainly
  lying and is never asked again; after a failure with several senders
  every later attempt takes all its pieces from one peer, so a failure then
  has one culprit.  When an attempt finally passes, the pieces of the last
  failed one (kept as digests) are compared with the good ones, which
  convicts the peers that sent bad ones (``MetadataVerified.liars``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar, Union

from txbittorrent.core.wire.metadata import piece_count, piece_length

__all__ = [
    "MetadataFetch",
    "PieceStored",
    "Ignored",
    "Violation",
    "MetadataVerified",
    "MetadataHashFailed",
    "DataOutcome",
    "REQUEST_TIMEOUT",
    "SLOW_BACKOFF",
    "REJECT_BACKOFF",
    "REQUESTS_PER_PEER",
]

REQUEST_TIMEOUT = 10.0
"""Seconds before an unanswered request is handed to another peer."""
SLOW_BACKOFF = 30.0
"""Seconds a peer that let a request time out is not asked again."""
REJECT_BACKOFF = 60.0
"""Seconds a peer that sent a REJECT is not asked again (libtorrent: a minute)."""
REQUESTS_PER_PEER = 4
"""Requests in flight at one peer (libtorrent keeps 2)."""

P = TypeVar("P")
"""A peer, as the caller keys it (hashable)."""


@dataclass(frozen=True, slots=True)
class PieceStored:
    """A piece was kept; ``remaining`` pieces still to come."""

    piece: int
    remaining: int


@dataclass(frozen=True, slots=True)
class Ignored:
    """Nothing wrong, nothing kept (not asked for, or already in)."""

    reason: str


@dataclass(frozen=True, slots=True)
class Violation:
    """The sender broke BEP 9; it is dropped from the fetch (disconnect it)."""

    reason: str


@dataclass(frozen=True, slots=True)
class MetadataVerified(Generic[P]):
    """Every piece is in and the SHA-1 is the info hash."""

    info_bytes: bytes = field(repr=False)
    liars: frozenset[P] = frozenset()
    """Peers that sent pieces of an earlier, failed attempt that differ from
    the verified ones."""


@dataclass(frozen=True, slots=True)
class MetadataHashFailed(Generic[P]):
    """Every piece came in but the SHA-1 is not the info hash; the attempt
    starts over."""

    senders: Mapping[int, P]
    """Who sent each piece of the failed attempt."""
    excluded: frozenset[P]
    """The peers never asked again (a sole sender)."""


DataOutcome = Union[PieceStored, Ignored, Violation, MetadataVerified[P], MetadataHashFailed[P]]


class _Peer:
    """What the fetch knows of one peer."""

    __slots__ = ("size", "order", "outstanding", "late", "not_before", "strikes", "slow")

    def __init__(self, size: int, order: int) -> None:
        self.size = size
        self.order = order
        self.outstanding: dict[int, float] = {}
        """Piece -> when it was asked (still counted as in flight)."""
        self.late: set[int] = set()
        """Pieces asked, timed out and handed to others; an answer is welcome."""
        self.not_before = 0.0
        self.strikes = 0
        """Failed attempts it sent pieces of."""
        self.slow = 0
        """Timeouts and rejects."""


class MetadataFetch(Generic[P]):
    """Fetching one info dictionary from peers; see the module docstring."""

    def __init__(
        self,
        info_hash: bytes,
        max_size: int,
        *,
        request_timeout: float = REQUEST_TIMEOUT,
        per_peer: int = REQUESTS_PER_PEER,
        slow_backoff: float = SLOW_BACKOFF,
        reject_backoff: float = REJECT_BACKOFF,
    ) -> None:
        if len(info_hash) != 20:
            raise ValueError("an info hash is 20 bytes")
        if max_size < 1 or per_peer < 1:
            raise ValueError("max_size and per_peer must be positive")
        self.info_hash = info_hash
        self.max_size = max_size
        self.request_timeout = request_timeout
        self.per_peer = per_peer
        self.slow_backoff = slow_backoff
        self.reject_backoff = reject_backoff
        self._peers: dict[P, _Peer] = {}
        self._excluded: set[P] = set()
        self._joined = 0
        self._size: int | None = None
        self._pieces: dict[int, bytes] = {}
        self._senders: dict[int, P] = {}
        self._single_source = False
        self._source: P | None = None
        self._failed_digests: dict[int, tuple[bytes, P]] = {}
        self._failed_size: int | None = None
        self.attempts = 0
        """Attempts that completed and failed the hash."""

    # -- peers -------------------------------------------------------------------

    def add_peer(self, peer: P, metadata_size: int) -> bool:
        """``peer`` offers the metadata and says it is ``metadata_size`` bytes
        (again, if it said so before: requests for the old size are dropped).
        False, and the peer is not asked, if the size is not positive or
        over ``max_size``, or the peer has been excluded."""
        if peer in self._excluded:
            return False
        if not 0 < metadata_size <= self.max_size:
            self.remove_peer(peer)
            return False
        record = self._peers.get(peer)
        if record is not None and record.size == metadata_size:
            return True
        self._joined += 1
        self._peers[peer] = _Peer(metadata_size, self._joined)
        return True

    def remove_peer(self, peer: P) -> None:
        """The peer is gone: its requests go to others (and it is forgotten,
        excluded or not)."""
        self._peers.pop(peer, None)
        self._excluded.discard(peer)

    def exclude(self, peer: P) -> None:
        """Never ask ``peer`` again."""
        self._peers.pop(peer, None)
        self._excluded.add(peer)

    @property
    def peers(self) -> list[P]:
        """The peers that may be asked (now or later)."""
        return list(self._peers)

    def outstanding(self, peer: P) -> set[int]:
        """The pieces ``peer`` was asked for and has not answered (late ones too)."""
        record = self._peers.get(peer)
        return set() if record is None else set(record.outstanding) | record.late

    # -- the attempt ---------------------------------------------------------------

    @property
    def size(self) -> int | None:
        """The size being fetched (None before the first request)."""
        return self._size

    @property
    def received(self) -> int:
        """Pieces of the current attempt in hand."""
        return len(self._pieces)

    @property
    def buffered(self) -> int:
        """Bytes held for the current attempt (never more than ``size``)."""
        return sum(len(p) for p in self._pieces.values())

    def _reset(self, size: int | None) -> None:
        self._size = size
        self._pieces = {}
        self._senders = {}
        self._source = None
        for record in self._peers.values():
            record.outstanding.clear()
            record.late.clear()

    def _choose_size(self, now: float) -> int | None:
        """The size most usable peers announced: peers that may be asked now
        before resting ones, clean ones (no failed attempt, no reject or
        timeout) first."""
        votes: dict[int, tuple[int, int, int, int]] = {}
        for record in self._peers.values():
            ready, clean, total, first = votes.get(record.size, (0, 0, 0, -record.order))
            votes[record.size] = (
                ready + (record.not_before <= now),
                clean + (record.strikes == 0 and record.slow == 0),
                total + 1,
                max(first, -record.order),
            )
        if not votes:
            return None
        return max(votes, key=lambda size: votes[size])

    def requests(self, now: float) -> list[tuple[P, int]]:
        """The requests to send now, as ``(peer, piece)``; they count as sent.

        When every peer of the size being fetched is resting (it rejected,
        timed out) and a peer of another size may be asked now, the attempt
        moves to that size: a peer announcing a wrong size and never giving
        it cannot hold the fetch."""
        sizes = {record.size for record in self._peers.values()}
        ready = {record.size for record in self._peers.values() if record.not_before <= now}
        if self._size not in sizes or (ready and self._size not in ready):
            self._reset(self._choose_size(now))
        size = self._size
        if size is None:
            return []
        candidates = sorted(
            ((peer, r) for peer, r in self._peers.items()
             if r.size == size and r.not_before <= now),
            key=lambda item: (item[1].strikes, item[1].slow, item[1].order),
        )
        if self._single_source:
            candidates = self._one_source(candidates, size)
        in_flight = {piece for r in self._peers.values() for piece in r.outstanding}
        wanted = [p for p in range(piece_count(size))
                  if p not in self._pieces and p not in in_flight]
        out: list[tuple[P, int]] = []
        for peer, record in candidates:
            while wanted and len(record.outstanding) < self.per_peer:
                piece = wanted.pop(0)
                record.outstanding[piece] = now
                out.append((peer, piece))
            if not wanted:
                break
        return out

    def _one_source(
        self, candidates: list[tuple[P, _Peer]], size: int
    ) -> list[tuple[P, _Peer]]:
        """After a failure with several senders: the attempt's one source, or
        a new one (the pieces of the old one dropped) if it is gone or resting."""
        source = self._source
        for peer, record in candidates:
            if peer == source:
                return [(peer, record)]
        if not candidates:
            return []
        if source is not None:
            self._reset(size)
        self._source = candidates[0][0]
        return candidates[:1]

    def cancel(self, peer: P, piece: int) -> None:
        """A request ``requests`` returned could not be sent after all."""
        record = self._peers.get(peer)
        if record is not None:
            record.outstanding.pop(piece, None)

    def expire(self, now: float) -> list[tuple[P, int]]:
        """Requests unanswered for ``request_timeout``: their pieces may now go
        to other peers, and their peers rest for ``slow_backoff``."""
        expired: list[tuple[P, int]] = []
        for peer, record in self._peers.items():
            late = [piece for piece, sent in record.outstanding.items()
                    if now - sent >= self.request_timeout]
            for piece in late:
                del record.outstanding[piece]
                record.late.add(piece)
                expired.append((peer, piece))
            if late:
                record.slow += 1
                record.not_before = max(record.not_before, now + self.slow_backoff)
        return expired

    def on_reject(self, peer: P, piece: int, now: float) -> bool:
        """The peer refused ``piece``: it goes elsewhere and the peer rests
        for ``reject_backoff``.  False if we had not asked it."""
        record = self._peers.get(peer)
        if record is None or (piece not in record.outstanding and piece not in record.late):
            return False
        record.outstanding.pop(piece, None)
        record.late.discard(piece)
        record.slow += 1
        record.not_before = max(record.not_before, now + self.reject_backoff)
        return True

    def on_data(self, peer: P, piece: int, total_size: int, data: bytes) -> DataOutcome[P]:
        """A DATA message from ``peer``: see the outcome types."""
        record = self._peers.get(peer)
        if record is None:
            return Ignored("not asked: the peer does not offer the metadata")
        if piece not in record.outstanding and piece not in record.late:
            return Ignored(f"piece {piece} was not asked of this peer")
        was_late = piece in record.late
        record.outstanding.pop(piece, None)
        record.late.discard(piece)
        if total_size != record.size:
            self.exclude(peer)
            return Violation(f"total_size {total_size}, but its handshake said {record.size}")
        expected = piece_length(piece, record.size)
        if len(data) != expected:
            self.exclude(peer)
            return Violation(f"piece {piece} of {len(data)} bytes, expected {expected}")
        if was_late:
            record.not_before = 0.0  # it is alive after all
        if piece in self._pieces:
            return Ignored(f"piece {piece} is in already")
        self._pieces[piece] = data
        self._senders[piece] = peer
        remaining = piece_count(record.size) - len(self._pieces)
        if remaining:
            return PieceStored(piece, remaining)
        return self._verify(record.size)

    def _verify(self, size: int) -> DataOutcome[P]:
        pieces, senders = self._pieces, self._senders
        info_bytes = b"".join(pieces[i] for i in range(len(pieces)))
        if hashlib.sha1(info_bytes).digest() == self.info_hash:
            liars: set[P] = set()
            if self._failed_size == size:
                for index, (digest, sender) in self._failed_digests.items():
                    if hashlib.sha1(pieces[index]).digest() != digest:
                        liars.add(sender)
            self._reset(None)
            self._peers.clear()
            return MetadataVerified(info_bytes, frozenset(liars))
        self.attempts += 1
        self._failed_size = size
        self._failed_digests = {
            index: (hashlib.sha1(data).digest(), senders[index]) for index, data in pieces.items()
        }
        culprits = set(senders.values())
        excluded: frozenset[P] = frozenset()
        if len(culprits) == 1:
            excluded = frozenset(culprits)
            for peer in culprits:
                self.exclude(peer)
        else:
            self._single_source = True
            for peer in culprits:
                if peer in self._peers:
                    self._peers[peer].strikes += 1
        failed = MetadataHashFailed(dict(senders), excluded)
        self._reset(None)
        return failed
