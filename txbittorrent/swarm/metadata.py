"""The ``ut_metadata`` plug-in (BEP 9): fetching and serving the info dictionary.

Theory of operation
-------------------
One ``MetadataExchange`` per running torrent, registered with the swarm's
``Extensions`` dispatcher like every BEP 10 plug-in.  It works both ways:

* **Fetching**, while the torrent has no metadata (``context.info_bytes()``
  is None): every peer whose extension handshake gives ``ut_metadata`` an id
  and a ``metadata_size`` joins a ``core.wire.metadatafetch.MetadataFetch``,
  which decides who is asked which piece (several peers in parallel, a few
  requests each), times requests out (``tick``), checks sizes and lengths,
  and verifies the assembled bytes against the info hash.  Verified bytes go
  to ``context.metadata_received`` (the torrent parses them, publishes
  ``MetadataReceived`` and attaches its data); this plug-in publishes
  nothing itself.  A peer that breaks BEP 9 (a wrong ``total_size`` or piece
  length, a malformed message) is disconnected, by raising
  ``RemoteProtocolError`` from ``on_message``; the sole sender of metadata
  that fails the hash likewise; peers convicted later are logged.  The
  addresses of culprits (the last ``MAX_BLOCKED``) are not asked again.
* **Serving**, once the torrent has its metadata: our extension handshake
  carries ``metadata_size`` (``handshake_fields``) and a REQUEST is answered
  with the exact raw info bytes the info hash was computed from.  A REQUEST
  is REJECTed when the piece does not exist, when we have no metadata yet,
  when the torrent is private (BEP 27: a magnet cannot know it is private
  before its metadata arrives, so fetching is allowed; serving never is),
  and while more than ``SERVE_BUFFER_LIMIT`` bytes wait unsent to that peer
  (BEP 9's flood protection, as libtorrent does).

What it must not know: sockets, links beyond ``pending_write_bytes``, the
torrent or the swarm (only its ``PluginContext``).  Every message goes
through ``context.extensions.send``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from txbittorrent.core.wire.metadata import (
    METADATA_PIECE_SIZE,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    encode_reject,
    encode_request,
    parse_message,
    serve_piece,
)
from txbittorrent.core.wire.metadatafetch import (
    Ignored,
    MetadataFetch,
    MetadataHashFailed,
    MetadataVerified,
    Violation,
)
from txbittorrent.errors import RemoteProtocolError

if TYPE_CHECKING:
    from txbittorrent.interfaces import Address
    from txbittorrent.swarm.extensions import ExtensionPeer
    from txbittorrent.swarm.plugins import PluginContext

__all__ = ["MetadataExchange", "SERVE_BUFFER_LIMIT"]

NAME = b"ut_metadata"

SERVE_BUFFER_LIMIT = 10 * 16 * 1024
"""Bytes waiting unsent to a peer above which its requests are rejected
(libtorrent stops at the same 160 KiB)."""

MAX_BLOCKED = 1024
"""Addresses of culprits remembered (the oldest forgotten first)."""

_log = Logger()


def _names(peers: Any) -> str:
    return ", ".join(sorted({f"{p.address[0]}:{p.address[1]}" for p in peers}))


class MetadataExchange:
    """The ``ut_metadata`` plug-in of one torrent; see the module docstring."""

    name = NAME

    def __init__(self, context: PluginContext) -> None:
        self._context = context
        self._fetch: MetadataFetch[ExtensionPeer] | None = None
        self._blocked: dict[Address, None] = {}
        self._oversized: set[ExtensionPeer] = set()
        """Connected peers already logged for announcing too large a size."""
        """Culprits' addresses, never asked again (an ordered set, capped)."""
        self.unusable: str | None = None
        """Why verified metadata was refused by the torrent (then nothing
        more is fetched: the info hash names metadata we cannot use)."""
        self.served = 0
        """Pieces of metadata sent."""
        self.hash_failures = 0
        """Assembled metadata that failed the info hash."""

    # -- PeerExtension ----------------------------------------------------------------

    def handshake_fields(self) -> Mapping[bytes | str, Any]:
        info = self._context.info_bytes()
        if info is None or self._context.private():
            return {}
        return {b"metadata_size": len(info)}

    def on_handshake(self, peer: ExtensionPeer, payload: Mapping[bytes, Any]) -> None:
        fetch = self._fetching()
        if fetch is None:
            return
        size = payload.get(b"metadata_size")
        offers = bool(peer.session.peer_extensions.get(NAME)) and type(size) is int
        if not offers or peer.address in self._blocked:
            fetch.remove_peer(peer)  # (it may have offered before)
            self._pump(fetch)
            return
        assert isinstance(size, int)
        if not fetch.add_peer(peer, size):
            if peer not in self._oversized:  # once per peer: a handshake storm is no log storm
                self._oversized.add(peer)
                _log.info(
                    "not fetching metadata from {peer!r}: it says {size} bytes (limit {limit})",
                    peer=peer, size=size, limit=fetch.max_size,
                )
            return
        self._pump(fetch)

    def on_message(self, peer: ExtensionPeer, payload: bytes) -> None:
        message = parse_message(payload)
        if isinstance(message, MetadataRequest):
            self._serve(peer, message.piece)
            return
        fetch = self._fetching()
        if fetch is None or message is None:
            return
        if isinstance(message, MetadataReject):
            if fetch.on_reject(peer, message.piece, self._now()):
                self._pump(fetch)
            return
        assert isinstance(message, MetadataData)
        self._data(fetch, peer, message)

    def on_peer_lost(self, peer: ExtensionPeer) -> None:
        self._oversized.discard(peer)
        fetch = self._fetch
        if fetch is not None:
            fetch.remove_peer(peer)
            if self._fetching() is fetch:
                self._pump(fetch)

    def tick(self, now: float) -> None:
        fetch = self._fetching()
        if fetch is not None:
            fetch.expire(now)
            self._pump(fetch)

    # -- fetching ------------------------------------------------------------------------

    def _now(self) -> float:
        return float(self._context.clock.seconds())

    def _fetching(self) -> MetadataFetch[ExtensionPeer] | None:
        """The fetch, made on first use; None (and any fetch dropped) once the
        torrent has its metadata or verified metadata was refused."""
        context = self._context
        if self.unusable is not None or context.info_bytes() is not None:
            self._fetch = None
            return None
        if self._fetch is None:
            self._fetch = MetadataFetch(context.info_hash, context.config.max_metadata_size)
        return self._fetch

    @property
    def fetch(self) -> MetadataFetch[ExtensionPeer] | None:
        """The fetch in progress (None when there is none)."""
        return self._fetch

    def _block(self, peers: Iterable[ExtensionPeer]) -> None:
        blocked = self._blocked
        for peer in peers:
            blocked.pop(peer.address, None)
            blocked[peer.address] = None
        while len(blocked) > MAX_BLOCKED:
            del blocked[next(iter(blocked))]

    def _pump(self, fetch: MetadataFetch[ExtensionPeer]) -> None:
        """Send the requests the fetch wants sent now."""
        send = self._context.extensions.send
        for peer, piece in fetch.requests(self._now()):
            if not send(peer, NAME, encode_request(piece)):
                fetch.cancel(peer, piece)

    def _data(
        self, fetch: MetadataFetch[ExtensionPeer], peer: ExtensionPeer, message: MetadataData
    ) -> None:
        outcome = fetch.on_data(peer, message.piece, message.total_size, message.data)
        if isinstance(outcome, Ignored):
            return
        if isinstance(outcome, Violation):
            self._block([peer])
            self._pump(fetch)
            raise RemoteProtocolError(f"ut_metadata: {outcome.reason}")
        if isinstance(outcome, MetadataHashFailed):
            self._hash_failed(fetch, peer, outcome)
        elif isinstance(outcome, MetadataVerified):
            self._verified(outcome)
        else:
            self._pump(fetch)

    def _hash_failed(
        self,
        fetch: MetadataFetch[ExtensionPeer],
        peer: ExtensionPeer,
        outcome: MetadataHashFailed[ExtensionPeer],
    ) -> None:
        self.hash_failures += 1
        _log.warn(
            "metadata from {senders} fails the info hash {info_hash}; starting over",
            senders=_names(outcome.senders.values()), info_hash=self._context.info_hash.hex(),
        )
        self._block(outcome.excluded)
        self._pump(fetch)
        if peer in outcome.excluded:
            raise RemoteProtocolError("ut_metadata: sent metadata that fails the info hash")

    def _verified(self, outcome: MetadataVerified[ExtensionPeer]) -> None:
        self._fetch = None
        if outcome.liars:
            self._block(outcome.liars)
            _log.warn("{liars} sent metadata pieces that were wrong",
                      liars=_names(outcome.liars))
            for liar in outcome.liars:
                self._context.ban(liar, "sent metadata pieces that failed the info hash")
        try:
            self._context.metadata_received(outcome.info_bytes)
        except Exception as e:
            self.unusable = str(e)
            _log.failure("verified metadata for {info_hash} was refused",
                         info_hash=self._context.info_hash.hex())

    # -- serving ---------------------------------------------------------------------------

    def _serve(self, peer: ExtensionPeer, piece: int) -> None:
        context = self._context
        info = context.info_bytes()
        if info is None or context.private() or peer.link.pending_write_bytes > SERVE_BUFFER_LIMIT:
            context.extensions.send(peer, NAME, encode_reject(piece))
            return
        answer = serve_piece(info, piece)
        if context.extensions.send(peer, NAME, answer) and piece * METADATA_PIECE_SIZE < len(info):
            self.served += 1
