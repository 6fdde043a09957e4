"""Serving the blocks peers ask us for.

Theory of operation
-------------------
A peer's ``session.pending_peer_requests`` is its upload queue: the session
adds a request when it arrives (and only while we unchoke the peer, or for an
allowed-fast piece), and drops it on CANCEL or when we choke.  ``serve(peer)``
walks that queue in order and, for each request, sends the PIECE header and a
``memoryview`` slice of the whole piece held in the ``UploadCache``; nothing
else remembers requests, so a cancelled or choked-away request can never be
sent.  Requests are checked here, not when they arrive: the session applies
every message of a read before the swarm sees the first event, so the queue
may already hold a later request, for a piece we do not have, whose event is
still to come.

* On a cache miss the piece is read whole (one pool job, shared by every
  peer waiting for it), together with up to ``read_ahead_pieces`` further
  pieces the peer asked for; serving resumes when the read is done.
* Backpressure: nothing more is sent to a peer whose link holds
  ``max_send_buffer`` unwritten bytes (blocks gathered for one write are
  handed over first and the mark checked again, so a peer is held back only
  while its link really holds that much).  It is ``stalled``, and served
  again on its next request, or when its link has written out what it
  queued (``Swarm.peer_writable``, which ``PeerProtocol`` calls when its
  transport drains): no timer polls for it.  ``retry_stalled``, on the
  swarm's coarse tick, is a safety net for ``PeerLink``s that do not call
  ``peer_writable`` (the interface does not require it).
* A request for a piece we lack gets a REJECT from a fast peer's session; a
  peer without the fast extension broke BEP 3 and is disconnected.
* While ``paused`` nothing is served (everyone is choked; a request that got
  through as allowed-fast is REJECTed).
* Writes: the swarm calls ``serve`` once per batch of events from a peer
  (``peer_events_done``), and ``serve`` hands the blocks to the link in one
  ``send_blocks`` call per ``_BATCH_PARTS``, which joins them into one
  ``bytes``: each block is copied once on its way to the socket.  Anything
  else written meanwhile (a REJECT, a close, a read that serves at once)
  first flushes the blocks gathered so far, so the order is the queue's.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import islice
from typing import TYPE_CHECKING

from twisted.python.failure import Failure

from txbittorrent.swarm.peerstate import RateMeter
from txbittorrent.storage.uploadcache import PieceData, UploadCache

if TYPE_CHECKING:
    from txbittorrent.core.transfer.completion import BitfieldView
    from txbittorrent.swarm.peerstate import PeerState
    from txbittorrent.swarm.config import SwarmConfig

__all__ = ["Uploader"]

_BATCH_PARTS = 128
"""Blocks go out in writes of at most this many parts (64 blocks, 1 MiB).
With no cap a batch could make a 4 MiB buffer to fault in each time; a cap
of 16 blocks made Twisted join our several writes again.  Both cost CPU
(figures in bench/README, "Seeding to many peers")."""

_READ_AHEAD_SCAN = 256
"""How many of a peer's pending requests a read-ahead looks through at most."""


class Uploader:
    """Answers peers' requests (see the module docstring)."""

    def __init__(
        self,
        cache: UploadCache,
        have: BitfieldView,
        config: SwarmConfig,
        meter: RateMeter,
        on_disk_error: Callable[[int, Failure], object],
    ) -> None:
        self.cache = cache
        self.meter = meter
        """Payload bytes handed to links, all peers together."""
        self.paused = False
        self.stopped = False
        self._have = have
        self._config = config
        self._on_disk_error = on_disk_error
        self._stalled: set[PeerState] = set()
        self._waiting: dict[int, set[PeerState]] = {}
        self._serving: set[PeerState] = set()
        self._again: set[PeerState] = set()

    def forget(self, peer: PeerState) -> None:
        """The peer is gone or choked: nothing of it is stalled any more."""
        self._stalled.discard(peer)

    def clear(self) -> None:
        """Forget every stalled peer."""
        self._stalled.clear()

    def serve(self, peer: PeerState) -> None:
        """Send the peer's pending requests, in order, while the cache has the
        piece and the link is not backed up.

        A read may complete at once (``Store.read_piece`` answers from the
        page cache when it can) and serve its waiters: a call for a peer
        already being served only asks the running call to go round again,
        so the stack does not grow by a level per piece read."""
        if peer in self._serving:
            self._again.add(peer)
            return
        self._serving.add(peer)
        try:
            while True:
                self._serve_once(peer)
                if peer not in self._again:
                    break
                self._again.discard(peer)
        finally:
            self._serving.discard(peer)

    def _serve_once(self, peer: PeerState) -> None:
        session, link = peer.session, peer.link
        pending = session.pending_peer_requests
        if not pending or not peer.connected or session.dead or self.stopped:
            return
        if self.paused:
            if session.fast:
                link.send(b"".join([session.reject(*key) for key in list(pending)]))
            return
        limit = self._config.max_send_buffer
        cache, have = self.cache, self._have
        sent = 0
        # The blocks go out in one send_blocks at the end (or before anything
        # else is written), so each is copied once, into one write.
        parts: list[bytes | memoryview] = []
        batched = 0
        while pending:
            if link.pending_write_bytes + batched >= limit:
                if parts:  # hand them over, then look at what the link holds
                    link.send_blocks(parts)
                    parts, batched = [], 0
                    continue
                self._stalled.add(peer)
                break
            index, begin, length = next(iter(pending))
            data = cache.get(index) if index in have else None
            if data is None and parts:
                # Whatever comes next (a REJECT, a close, a read that may
                # complete and serve at once) goes after the blocks so far.
                link.send_blocks(parts)
                parts, batched = [], 0
            if index not in have:
                if not session.fast:
                    peer.close(f"requested piece {index}, which we do not have")
                    break
                link.send(session.reject(index, begin, length))
                continue
            if data is None:
                waiters = self._waiting.get(index)
                if waiters is None:
                    self._read(peer, index)
                else:  # being read already
                    waiters.add(peer)
                break
            header = session.send_piece_header(index, begin, length)
            parts.append(header)
            parts.append(memoryview(data)[begin : begin + length])
            batched += len(header) + length
            sent += length
            if len(parts) >= _BATCH_PARTS:
                link.send_blocks(parts)
                parts, batched = [], 0
        else:
            self._stalled.discard(peer)
        if parts:
            link.send_blocks(parts)
        if sent:
            peer.up.total += sent
            self.meter.total += sent

    def retry_stalled(self) -> None:
        """Serve the peers that stopped on backpressure (their links may have
        drained without saying so: see the module docstring)."""
        for peer in list(self._stalled):
            if peer.connected:
                self.serve(peer)
            else:
                self._stalled.discard(peer)

    def _read(self, peer: PeerState, index: int) -> None:
        """Read the piece, and a few more the peer asked for that are not cached."""
        wanted = [index]
        ahead = self._config.read_ahead_pieces
        cache, have, waiting = self.cache, self._have, self._waiting
        # Look a bounded way down the queue: this runs once per piece read.
        for other, _, _ in islice(peer.session.pending_peer_requests, _READ_AHEAD_SCAN):
            if len(wanted) > ahead:
                break
            if other not in wanted and other in have and other not in cache:
                if other not in waiting:
                    wanted.append(other)
        for other in wanted:  # (a read may complete, and serve, at once)
            self._fetch(peer, other)

    def _fetch(self, peer: PeerState, index: int) -> None:
        waiters = self._waiting.get(index)
        if waiters is not None:
            waiters.add(peer)
            return
        self._waiting[index] = {peer}
        d = self.cache.fetch(index)
        d.addCallbacks(self._read_done, self._read_failed, callbackArgs=(index,),
                       errbackArgs=(index,))

    def _read_done(self, data: PieceData, index: int) -> None:
        for peer in self._waiting.pop(index, ()):
            if peer.connected:
                self.serve(peer)

    def _read_failed(self, failure: Failure, index: int) -> None:
        waiters = self._waiting.pop(index, ())
        self._on_disk_error(index, failure)
        if self.stopped:
            return
        for peer in waiters:
            session = peer.session
            if not peer.connected or session.dead:
                continue
            if not session.fast:
                peer.close(f"could not read piece {index}")
                continue
            refused = [key for key in session.pending_peer_requests if key[0] == index]
            if refused:
                peer.link.send(b"".join(session.reject(*key) for key in refused))
