"""Whom a swarm uploads to: ``core.transfer.choker`` applied to its peers.

Theory of operation
-------------------
``Choking`` adapts the sans-I/O choker to live connections.  ``rechoke``
(every ``rechoke_interval``, when an unchoked peer leaves, on resume) takes
a ``PeerStats`` snapshot of each live peer, asks ``OptimisticUnchoke`` for
the optimistic peer and ``choke`` for the set to unchoke, and writes UNCHOKE
or CHOKE through the link of each peer whose state changes; a peer choked
now is no longer stalled in the uploader (its session dropped its queue).
``unchoke_on_connect`` unchokes a peer that has just connected if a slot is free,
and ``interested`` gives a free upload slot at once to a peer that has just
become interested (a slot held by a peer not interested counts as free),
rather than at the next round.  While paused nobody is
unchoked, and a rechoke chokes everyone.

It keeps the optimistic unchoke's state and nothing else: the peers, the
pause and whether we are seeding come in with each call (they are the
swarm's), time from the injected clock.  Before the metadata a peer is no
seed to the choker (its pieces are not known yet).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from txbittorrent.core.transfer.choker import OptimisticUnchoke, PeerStats, choke

if TYPE_CHECKING:
    from txbittorrent.core.transfer.picker import RandomSource
    from txbittorrent.swarm.config import SwarmConfig
    from txbittorrent.swarm.peerstate import PeerState
    from txbittorrent.swarm.uploader import Uploader

__all__ = ["Choking"]


class Choking:
    """Hands out a swarm's upload slots (see the module docstring)."""

    def __init__(self, config: SwarmConfig, clock: Any, rng: RandomSource) -> None:
        self._config = config
        self._clock = clock
        self._optimistic: OptimisticUnchoke[PeerState] = OptimisticUnchoke(
            rng, interval=config.optimistic_interval
        )

    def rechoke(
        self,
        peers: list[PeerState],
        *,
        paused: bool,
        seeding: bool,
        uploader: Uploader | None,
    ) -> None:
        """Give the upload slots to the best of the live ``peers``."""
        now = self._clock.seconds()
        window = self._config.choke_rate_window
        optimistic: PeerState | None = None
        unchoke: set[PeerState] = set()
        if not paused:
            stats = [
                PeerStats(
                    key=peer,
                    peer_interested=peer.session.peer_interested,
                    am_choking=peer.session.am_choking,
                    download_rate=peer.down.rate(now, window),
                    upload_rate=peer.up.rate(now, window),
                    snubbed=peer.snubbed,
                    is_seed=peer.session.metadata_known and peer.session.peer_have.complete,
                    connected_at=peer.connected_at,
                    last_unchoked=peer.last_unchoked,
                )
                for peer in peers
            ]
            optimistic = self._optimistic.update(stats, now)
            unchoke = choke(stats, self._config.unchoke_slots, seeding, optimistic)
        for peer in peers:
            session = peer.session
            peer.optimistic = peer is optimistic and peer in unchoke
            if peer in unchoke:
                if session.am_choking:
                    peer.link.send(session.unchoke())
                    peer.last_unchoked = now
            elif not session.am_choking:
                peer.link.send(session.choke())
                if uploader is not None:
                    uploader.forget(peer)

    def unchoke_on_connect(self, peer: PeerState, peers: Iterable[PeerState], paused: bool) -> bytes:
        """The UNCHOKE for ``peer``, which has just connected, if a slot is free
        (counted over all ``peers``): before it says it is interested, as
        libtorrent does, so a client that sends its requests only on a round
        of its own (Transmission) sends them with its INTERESTED.  The caller
        writes it (with the bitfield, in one write); b"" if no slot."""
        if paused or not peer.session.am_choking:
            return b""
        if sum(not p.session.am_choking for p in peers) >= self._config.unchoke_slots:
            return b""
        peer.last_unchoked = self._clock.seconds()
        return peer.session.unchoke()

    def interested(self, peer: PeerState, peers: Iterable[PeerState], paused: bool) -> None:
        """``peer`` became interested: a free upload slot goes to it at once.
        A slot held by a peer that is not interested counts as free: that
        peer is choked to make room (it asked for nothing)."""
        if paused or not peer.session.am_choking:
            return
        unchoked = [p for p in peers if not p.session.am_choking]
        busy = sum(p.session.peer_interested for p in unchoked)
        if busy >= self._config.unchoke_slots:
            return
        if len(unchoked) >= self._config.unchoke_slots:
            idle = next(p for p in unchoked if not p.session.peer_interested)
            idle.link.send(idle.session.choke())
        self._unchoke(peer)

    def _unchoke(self, peer: PeerState) -> None:
        peer.link.send(peer.session.unchoke())
        peer.last_unchoked = self._clock.seconds()
