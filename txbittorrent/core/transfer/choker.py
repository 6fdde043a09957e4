"""Which peers we upload to: choking, tit-for-tat and the optimistic unchoke.

Theory of operation
-------------------
Every ``RECHOKE_INTERVAL`` seconds the swarm gathers a ``PeerStats`` snapshot
per connection, asks ``OptimisticUnchoke.update`` for the optimistic peer,
then ``choke`` for the set of peers to unchoke; it sends UNCHOKE to those in
the set that it is choking and CHOKE to the others it is not.  Nothing here
holds a connection, reads a clock or draws from the global random generator:
``now`` and a ``random.Random``-like ``rng`` come in from the caller, so a
test can replay any schedule.  ``choke`` is a pure function; the only state is
the optimistic peer and when it is due to change.

The rules (BEP 3 and the original client's, as commonly described):

* Leeching, tit-for-tat: the ``slots - 1`` interested peers that upload to us
  fastest (``download_rate``), plus the optimistic one.  Anti-snubbing: a
  peer that has sent us nothing for ``SNUB_TIMEOUT`` seconds although we have
  asked is only ever unchoked optimistically.
* Seeding, "fastest upload": the peers we upload to fastest
  (``upload_rate``).  That puts our bandwidth where it flows best, so our
  pieces reach the swarm soonest, and needs no state; the fairness that a
  round-robin scheme would add comes from the optimistic slot, which gives
  every interested peer a turn.  Being snubbed means nothing to a seed (it
  requests nothing), so snubbed peers are not set aside when seeding.
* A peer that is not interested gets no slot and is choked: it asks for
  nothing, and keeping the set at ``slots`` peers bounds our upload
  connections.  When such a peer becomes interested the swarm may rechoke
  at once rather than wait for the next round.
* Ties go, in order, to the peer we already unchoke (no churn for nothing),
  then to the one we unchoked longest ago (or never), then to the earlier in
  the input: the result is deterministic for a given input.
* The optimistic unchoke changes every ``OPTIMISTIC_INTERVAL`` seconds (or at
  once when its peer leaves or loses interest) to a random choked, interested
  peer; peers connected less than ``NEW_PEER_WINDOW`` seconds ago are
  ``NEW_PEER_WEIGHT`` times as likely to be chosen, since they have no pieces
  yet and need a first one to trade.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar

__all__ = [
    "RECHOKE_INTERVAL",
    "OPTIMISTIC_INTERVAL",
    "SNUB_TIMEOUT",
    "NEW_PEER_WINDOW",
    "NEW_PEER_WEIGHT",
    "UNCHOKE_SLOTS",
    "PeerStats",
    "choke",
    "is_snubbed",
    "OptimisticUnchoke",
]

RECHOKE_INTERVAL = 10.0
"""Seconds between two rechokes."""

OPTIMISTIC_INTERVAL = 30.0
"""Seconds an optimistic unchoke lasts (three rechokes)."""

SNUB_TIMEOUT = 60.0
"""Seconds without a block, while we have requests out, after which a peer is snubbed."""

NEW_PEER_WINDOW = 60.0
"""Seconds after connecting during which a peer counts as new for the optimistic draw."""

NEW_PEER_WEIGHT = 3
"""How many times likelier a new peer is to be drawn as the optimistic unchoke."""

UNCHOKE_SLOTS = 4
"""Peers unchoked at once, the optimistic one included (the original client's default)."""

K = TypeVar("K", bound=Hashable)


class RandomSource(Protocol):
    """The part of ``random.Random`` the choker uses (inject a seeded one in tests)."""

    def randrange(self, start: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class PeerStats(Generic[K]):
    """What the choker needs to know of one connection, at one moment."""

    key: K
    peer_interested: bool
    am_choking: bool = True
    download_rate: float = 0.0
    """Bytes per second from the peer to us."""
    upload_rate: float = 0.0
    """Bytes per second from us to the peer."""
    snubbed: bool = False
    """No block from the peer for ``SNUB_TIMEOUT`` seconds although we asked (``is_snubbed``)."""
    is_seed: bool = False
    connected_at: float = 0.0
    last_unchoked: float | None = None
    """When we last unchoked the peer; ``None`` if we never have."""


def is_snubbed(now: float, asking_since: float | None, last_block_at: float | None) -> bool:
    """Whether a peer is snubbing us: we have had requests out to it since
    ``asking_since`` (``None``: none out) and its last block, if any, came
    ``SNUB_TIMEOUT`` or more seconds ago."""
    if asking_since is None:
        return False
    waiting_since = asking_since if last_block_at is None else max(asking_since, last_block_at)
    return now - waiting_since >= SNUB_TIMEOUT


def _rank(peer: PeerStats[K], seeding: bool) -> tuple[float, bool, float]:
    """Sort key: fastest first, then already unchoked, then unchoked longest ago."""
    rate = peer.upload_rate if seeding else peer.download_rate
    last = float("-inf") if peer.last_unchoked is None else peer.last_unchoked
    return (-rate, peer.am_choking, last)


def choke(
    peers: Sequence[PeerStats[K]], slots: int, seeding: bool, optimistic: K | None = None
) -> set[K]:
    """The peers to unchoke: at most ``slots``, ``optimistic`` among them if it is
    an interested peer in ``peers`` (it then takes one of the slots).

    Slots go to interested peers first; a slot still spare is left to a peer
    we unchoke already though it is not interested (yet): one unchoked when
    it connected (``Choking.connected``) stays so until its interest arrives
    or an interested peer needs the slot, so a client that asks only once it
    sees an unchoke (Transmission decides its interests on a 10-s round) is
    not choked again meanwhile."""
    if slots <= 0:
        return set()
    wanting = [p for p in peers if p.peer_interested and not p.is_seed]
    unchoked: set[K] = set()
    if optimistic is not None and any(p.key == optimistic for p in wanting):
        unchoked.add(optimistic)
    ranked = sorted(
        (p for p in wanting if p.key != optimistic and (seeding or not p.snubbed)),
        key=lambda p: _rank(p, seeding),
    )
    unchoked.update(p.key for p in ranked[: slots - len(unchoked)])
    if len(unchoked) < slots:
        idle = [p.key for p in peers if not p.am_choking and not p.peer_interested
                and not p.is_seed]
        unchoked.update(idle[: slots - len(unchoked)])
    return unchoked


class OptimisticUnchoke(Generic[K]):
    """The optimistic unchoke: one random choked peer, changed every
    ``interval`` seconds, new peers weighted (see the module docstring)."""

    def __init__(
        self,
        rng: RandomSource,
        interval: float = OPTIMISTIC_INTERVAL,
        new_peer_window: float = NEW_PEER_WINDOW,
        new_peer_weight: int = NEW_PEER_WEIGHT,
    ) -> None:
        self._rng = rng
        self.interval = interval
        self.new_peer_window = new_peer_window
        self.new_peer_weight = new_peer_weight
        self.current: K | None = None
        self.due: float | None = None
        """When ``current`` is next replaced (``None``: at the next ``update``)."""

    def update(self, peers: Sequence[PeerStats[K]], now: float) -> K | None:
        """The optimistic unchoke for a rechoke at ``now``.

        The same peer until its ``interval`` is up, unless it has left or is
        no longer interested; then a new one, drawn among the interested
        peers we are choking.  If there is no other such peer, a current peer
        that is still interested stays on.  ``None`` when nobody qualifies."""
        still = any(p.key == self.current and p.peer_interested for p in peers)
        if still and self.due is not None and now < self.due:
            return self.current
        candidates = [
            p
            for p in peers
            if p.peer_interested and p.am_choking and not p.is_seed and p.key != self.current
        ]
        if candidates:
            self.current = self._draw(candidates, now)
        elif not still:
            self.current = None
        self.due = None if self.current is None else now + self.interval
        return self.current

    def _draw(self, candidates: Sequence[PeerStats[K]], now: float) -> K:
        """A random candidate, new peers ``new_peer_weight`` times as likely."""
        weights = [
            self.new_peer_weight if now - p.connected_at < self.new_peer_window else 1
            for p in candidates
        ]
        ticket = self._rng.randrange(sum(weights))
        for peer, weight in zip(candidates, weights):
            if ticket < weight:
                return peer.key
            ticket -= weight
        raise AssertionError("unreachable: the ticket is below the sum of the weights")
