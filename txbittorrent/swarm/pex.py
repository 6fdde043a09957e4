"""Peer exchange (BEP 11) as a plug-in of the swarm's extension dispatcher.

Theory of operation
-------------------
``PexExtension`` is the ``PeerExtension`` named ``b"ut_pex"``.  It owns, for
each peer it has heard an extension handshake from, a ``PexRecord``: what
we told that peer (a ``core.wire.pex.PexState``), when we may next write to
it, how often it wrote to us (a ``FloodGuard``), and what its handshake said
of it (``e``, ``upload_only``).

Sending, from the swarm's ``tick(now)``: a peer that supports ``ut_pex`` and
is due gets the diff between the peers we are connected to now and what it
heard from us before.  A peer is due at the first tick after its handshake,
then ``PEX_INTERVAL`` (60 s) after each message, or ``RECHECK_INTERVAL``
after a round with nothing new for it; so no peer ever hears from us twice
within a minute.  The list is the listening addresses of our live peers
other than the recipient: ``peer.address`` for a connection we made,
``PeerState.listen_address`` (the ``p`` of its extension handshake) for one
it made, and nothing for an incoming peer that never said where it listens.
Flags: reachable for a connection we made, seed for a peer that has every
piece or said ``upload_only``, encryption for one whose handshake had ``e``,
holepunch for one offering ``ut_holepunch``.

Receiving: a message over ``MAX_MESSAGE_SIZE``, the seventh within
``FLOOD_WINDOW`` seconds, or one that does not decode (more than
``MAX_ENTRIES`` peers, say) raises ``RemoteProtocolError``: the dispatcher
closes that peer.  The added peers that ``plausible_peer`` allows (at most
``MAX_LEARNED`` a message) go to ``context.add_peers(addresses, "pex")``;
dropped ones are only news (a connection of the sender ended), not a reason
to forget an address.

Never for a private torrent (BEP 27): ``builtin_extensions`` does not build
the plug-in when the torrent is known to be private at start; when the
metadata arrives later and says private, the plug-in sends nothing and
ignores what it receives from then on.  It adds no handshake field.

What it must not know: links, sockets, the reactor (the clock is read
through ``context.clock`` only to time incoming messages).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from txbittorrent.core.wire.pex import (
    MAX_ADDED,
    MAX_DROPPED,
    MAX_ENTRIES,
    MAX_FIRST_ADDED,
    MAX_MESSAGE_SIZE,
    PEX_NAME,
    FloodGuard,
    PexFlags,
    PexState,
    decode_pex,
    encode_pex,
    plausible_peer,
)
from txbittorrent.errors import RemoteProtocolError

if TYPE_CHECKING:
    from txbittorrent.interfaces import Address
    from txbittorrent.swarm.extensions import ExtensionPeer
    from txbittorrent.swarm.peerstate import PeerState
    from txbittorrent.swarm.plugins import PluginContext

__all__ = [
    "PEX_INTERVAL",
    "RECHECK_INTERVAL",
    "FLOOD_MESSAGES",
    "FLOOD_WINDOW",
    "MAX_LEARNED",
    "PexRecord",
    "PexExtension",
    "listen_address",
]

PEX_INTERVAL = 60.0
"""Seconds between two messages to the same peer (BEP 11: at most one a minute)."""

RECHECK_INTERVAL = 10.0
"""Seconds before a peer that had nothing new to hear is looked at again."""

FLOOD_MESSAGES = 6
"""Messages a peer may send within ``FLOOD_WINDOW``; the next one closes it."""

FLOOD_WINDOW = 60.0

MAX_LEARNED = 100
"""Added peers taken from one message (libtorrent sends at most 100)."""


def listen_address(peer: PeerState) -> Address | None:
    """Where ``peer`` accepts connections: the address we dialled, or the
    one its extension handshake gave; None if it connected to us and never
    said."""
    return peer.address if peer.outgoing else peer.listen_address


class PexRecord:
    """The plug-in's state for one peer."""

    __slots__ = ("state", "due", "guard", "prefers_encryption", "upload_only")

    def __init__(self) -> None:
        self.state = PexState(
            max_added=MAX_ADDED, max_first_added=MAX_FIRST_ADDED, max_dropped=MAX_DROPPED
        )
        self.due = float("-inf")
        """Clock time from which we may write to the peer again."""
        self.guard = FloodGuard(FLOOD_MESSAGES, FLOOD_WINDOW)
        self.prefers_encryption = False
        self.upload_only = False


class PexExtension:
    """BEP 11 peer exchange (see the module docstring)."""

    name = PEX_NAME

    def __init__(self, context: PluginContext) -> None:
        self._context = context
        self._records: dict[ExtensionPeer, PexRecord] = {}
        self.messages_sent = 0
        self.peers_learned = 0

    def record(self, peer: ExtensionPeer) -> PexRecord | None:
        """The state kept for ``peer`` (None before its extension handshake)."""
        return self._records.get(peer)

    # -- PeerExtension -----------------------------------------------------------------

    def handshake_fields(self) -> Mapping[bytes | str, Any]:
        return {}

    def on_handshake(self, peer: ExtensionPeer, payload: Mapping[bytes, Any]) -> None:
        record = self._records.get(peer)
        if record is None:
            record = self._records[peer] = PexRecord()
        record.prefers_encryption = payload.get(b"e") == 1
        record.upload_only = type(payload.get(b"upload_only")) is int and bool(
            payload[b"upload_only"]
        )

    def on_message(self, peer: ExtensionPeer, payload: bytes) -> None:
        context = self._context
        if context.private():
            return
        if len(payload) > MAX_MESSAGE_SIZE:
            raise RemoteProtocolError(
                f"ut_pex message of {len(payload)} bytes (at most {MAX_MESSAGE_SIZE})"
            )
        record = self._records.get(peer)
        if record is None:
            record = self._records[peer] = PexRecord()
        if not record.guard.allow(context.clock.seconds()):
            raise RemoteProtocolError(
                f"more than {FLOOD_MESSAGES} ut_pex messages within {FLOOD_WINDOW:.0f} s"
            )
        message = decode_pex(payload, max_entries=MAX_ENTRIES)
        sender = peer.address[0]
        learned = [p.address for p in message.added if plausible_peer(sender, p.address[0])]
        if learned:
            self.peers_learned += context.add_peers(learned[:MAX_LEARNED], "pex")

    def on_peer_lost(self, peer: ExtensionPeer) -> None:
        self._records.pop(peer, None)

    def tick(self, now: float) -> None:
        """Send each due peer what changed since its last message."""
        context = self._context
        if context.private():
            return
        extensions = context.extensions
        live = context.live_peers()
        due = [
            p for p in live
            if p in self._records and self._records[p].due <= now
            and extensions.supports(p, PEX_NAME)
        ]
        if not due:
            return
        connected: dict[Address, tuple[PeerState, int]] = {}
        for p in live:
            address = listen_address(p)
            if address is not None and address not in connected:
                connected[address] = (p, self._flags(p))
        for peer in due:
            record = self._records[peer]
            view = {a: flags for a, (p, flags) in connected.items() if p is not peer}
            message = record.state.diff(view)
            if message is None:
                record.due = now + RECHECK_INTERVAL
                continue
            if extensions.send(peer, PEX_NAME, encode_pex(message)):
                self.messages_sent += 1
            record.due = now + PEX_INTERVAL

    # -- helpers --------------------------------------------------------------------------

    def _flags(self, peer: PeerState) -> int:
        """The ``added.f`` byte for ``peer``, from what we know of it."""
        flags = PexFlags(0)
        if peer.outgoing:
            flags |= PexFlags.REACHABLE
        session = peer.session
        record = self._records.get(peer)
        seed = session.metadata_known and session.piece_count and session.peer_have.complete
        if seed or (record is not None and record.upload_only):
            flags |= PexFlags.SEED
        if record is not None and record.prefers_encryption:
            flags |= PexFlags.ENCRYPTION
        if session.peer_extensions.get(b"ut_holepunch"):
            flags |= PexFlags.HOLEPUNCH
        return int(flags)
