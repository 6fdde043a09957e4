"""Whom a swarm connects to, whom it keeps, and whom it bans.

Theory of operation
-------------------
``Connections`` is the swarm's connection policy over its
``addressbook.AddressBook``; the swarm owns the book and the registry of
connected peers (by link and by peer id) and lends both, and calls in at
each step of a connection's life:

* Dialing: ``top_up`` dials due addresses through the ``Dialer`` while the
  connections and attempts leave room under ``max_connections``, skipping
  banned hosts and our own addresses; an attempt the dialer cannot start now
  ends the round.
* Admission: when a handshake arrives ``refusal`` says why the connection is
  not wanted (``None``: keep it): no handshake, ourselves, a duplicate,
  banned, or full.  Of two connections to one peer (both sides dialled at
  once) the one opened by the side with the lower peer id stays, so both
  sides agree; the swarm closes the other.  The book hears what became of
  an outgoing attempt (``refused``, ``connected``, ``failed``) and of a
  connection that ends (``lost``; a failure whose reason starts with
  ``peer.msepolicy.ENCRYPTION_RETRY`` is not counted: the session asks for a
  redial with the other encryption method, which the swarm makes on the
  next reactor turn); an incoming peer's listening port from
  its extension handshake goes into the book as connected (``listening``),
  so that we do not dial it as well.
* Bans: a piece that fails its hash check charges its senders (``charge``):
  a sole sender is banned at once, others once their host reaches
  ``ban_threshold`` failed pieces.  A ban is by host and by peer id
  (``ban``); the swarm then closes every connection sharing either
  (``sharing_ban``).

It never adds to or removes from the registry, closes a link or reads a
clock: the swarm does those and passes ``now`` in.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from txbittorrent.interfaces import SELF_CONNECTION
from txbittorrent.peer.msepolicy import ENCRYPTION_RETRY
from txbittorrent.swarm.addressbook import ban_key

if TYPE_CHECKING:
    from txbittorrent.interfaces import Address, Dialer, PeerHost, PeerLink
    from txbittorrent.swarm.addressbook import AddressBook
    from txbittorrent.swarm.config import SwarmConfig
    from txbittorrent.swarm.peerstate import PeerState

__all__ = ["Connections"]


class Connections:
    """Dialing, admission and bans for one swarm (see the module docstring)."""

    def __init__(
        self,
        book: AddressBook,
        dialer: Dialer,
        peer_id: bytes,
        config: SwarmConfig,
        peers: Mapping[PeerLink, PeerState],
        by_id: Mapping[bytes, PeerState],
    ) -> None:
        self._book = book
        self._dialer = dialer
        self._peer_id = peer_id
        self._config = config
        self._peers = peers
        self._by_id = by_id

    # -- dialing ---------------------------------------------------------------------

    def top_up(self, host: PeerHost, now: float) -> None:
        """Dial known peers for ``host`` while there is room for more connections."""
        book = self._book
        room = self._config.max_connections - len(self._peers) - book.attempts
        if room <= 0:
            return
        for address in book.due(now):
            if book.is_banned(ban_key(address)):
                continue
            if self._dialer.is_own_address(address):
                book.forget_own(address)
                continue
            book.connecting(address, now)
            if not self._dialer.connect(host, address):
                book.not_started(address)
                break
            room -= 1
            if room <= 0:
                break

    def failed(self, address: Address, reason: str, now: float) -> bool:
        """An outgoing attempt failed before the handshake; whether to top up
        soon (the session asks to redial with the other MSE method)."""
        if reason == SELF_CONNECTION:
            self._book.forget_own(address)
            return False
        if reason.startswith(ENCRYPTION_RETRY):
            # Not a failure: due again at once (the session says so once per address).
            self._book.not_started(address)
            return True
        self._book.failed(address, now)
        return False

    # -- admission -------------------------------------------------------------------

    def refusal(self, link: PeerLink, peer_id: bytes | None) -> str | None:
        """Why the connection whose handshake arrived is not wanted, or
        ``None`` (the swarm refuses every one while not running)."""
        if peer_id is None:
            return "no handshake"
        if peer_id == self._peer_id:
            return "self"
        if peer_id in self._by_id and not self._replaces(link, self._by_id[peer_id]):
            return "duplicate"
        if self._book.is_banned(ban_key(link.address), peer_id):
            return "banned"
        if len(self._peers) >= self._config.max_connections:
            return "full"
        return None

    def _replaces(self, link: PeerLink, twin: PeerState) -> bool:
        """Two connections to one peer (both sides dialled at once): keep the
        one opened by the side with the lower peer id, so both sides agree."""
        if link.outgoing == twin.outgoing:
            return False
        lower_dials = link.outgoing if self._peer_id < twin.peer_id else not link.outgoing
        return lower_dials

    def refused(self, link: PeerLink, refusal: str, now: float) -> None:
        """The connection was refused: an outgoing attempt counts as failed
        (as never to be made again, if it reached ourselves)."""
        if link.outgoing:
            if refusal == "self":
                self._book.forget_own(link.address)
            else:
                self._book.failed(link.address, now)

    def connected(self, link: PeerLink) -> None:
        """The connection was accepted."""
        if link.outgoing:
            self._book.connected(link.address, "outgoing")

    def listening(self, peer: PeerState, port: object) -> None:
        """An incoming peer's extension handshake gave ``p``, its listening
        port: the book has that address as connected, not to be dialled."""
        if not peer.outgoing and type(port) is int and 0 < port < 65536:
            if peer.listen_address is None:  # so that we do not dial it as well
                peer.listen_address = (peer.address[0], port)
                self._book.connected(peer.listen_address)

    def lost(self, peer: PeerState, now: float) -> None:
        """An accepted connection ended: its addresses may be dialled again later."""
        if peer.outgoing:
            self._book.lost(peer.address, now)
        if peer.listen_address is not None:
            self._book.lost(peer.listen_address, now)

    # -- bans ------------------------------------------------------------------------

    def charge(self, index: int, contributors: set[PeerState]) -> Iterator[tuple[PeerState, str]]:
        """The senders of piece ``index``, which failed its hash check, to ban
        now, each with the reason, yielded as they are charged (the swarm
        bans one before the next is charged)."""
        if len(contributors) == 1:
            (peer,) = contributors
            yield peer, f"sent every block of piece {index}, which failed its hash check"
            return
        threshold = self._config.ban_threshold
        for peer in contributors:
            if self._book.hash_failure(ban_key(peer.address)) >= threshold:
                yield peer, f"sent data for {threshold} pieces that failed their hash check"

    def ban(self, peer: PeerState) -> bool:
        """Ban the peer's host and peer id; False if it was banned already."""
        host = ban_key(peer.address)
        if self._book.is_banned(host, peer.peer_id):
            return False
        self._book.ban(host, peer.peer_id)
        return True

    def sharing_ban(self, peer: PeerState) -> list[PeerState]:
        """The connected peers with the host or the peer id of ``peer``."""
        host = ban_key(peer.address)
        return [
            other
            for other in self._peers.values()
            if ban_key(other.address) == host or other.peer_id == peer.peer_id
        ]
