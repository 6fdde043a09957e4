"""Fetching the pieces we want: interest, requests, blocks, verification.

Theory of operation
-------------------
``Downloader`` is the download half of a swarm.  It owns the ``PiecePicker``
(keyed by ``PeerState``), the in-memory buffers of the pieces in progress
(``piecebuffer``) and the hash-and-write jobs in the store's pool; the swarm
feeds it what peers announce and send, and it writes requests, cancels,
interest and HAVEs to the links.  What it needs of the swarm goes through a
small ``DownloadHost``: the live peers, and what to do with a piece that
passed or failed (the swarm tells the Torrent, bans, caches).

Requests.  ``fill(peer)`` tops a pipeline up to ``peer.depth`` with one
``pick``, one ``session.request_many`` and one ``link.send``; after a block it
is called only once the pipeline has drained to ``peer.low_water`` (three
quarters), so requests go out in batches.  The depth follows the peer's rate
(``SwarmConfig.queue_depth``, recomputed at each fill and tick), capped by its
``reqq``; a snubbed peer gets ``snubbed_queue_depth``.  Once
``max_buffer_bytes`` of buffers are allocated no new piece is started: each
pick may start only as many new pieces as the budget has room for
(``new_pieces``), and a block of a piece without a buffer that a pick returns
anyway (one started earlier and handed back) is handed back to the picker.

Deadlines (streaming).  A piece with a deadline is picked before anything
else, but a peer serves our requests in order, so a piece that falls due
(a seek, a read waiting) would still wait behind the whole pipeline,
``queue_time`` of the peer's rate.  So when ``fill`` finds a due piece with
a block nobody was asked for that the peer has, it first CANCELs the
peer's requests of pieces without a deadline, all but the oldest
(``DEADLINE_KEEP_TIME`` of the peer's rate, at least
``DEADLINE_KEEP_BLOCKS``: those are likely on their way already), and
hands them back to the picker; the pick that follows asks for the due
blocks first and the handed-back blocks again after them.  (libtorrent
does not cancel: it puts time-critical requests ahead of those it has not
sent yet, and lets them exceed the pipeline; we send every request at
once, so cancelling is how the due blocks get ahead.)  Without a due
piece nothing is cancelled: with no deadline at all, ``fill`` is as it
was.

Blocks.  A wanted block is copied into its piece's buffer; the picker names
the other peers asked for it in endgame, which get a CANCEL.  A late copy is
dropped (and counted as ``wasted``).  A complete piece goes to the pool in
a job that hashes it and writes it only if it is good (``verify_and_write``),
batched with other pieces while the pool is busy (see ``_verify``).

Timeouts.  ``check_requests(now)`` cancels what has been outstanding for
``block_timeout``, marks those peers snubbed and refills every pipeline, so
the blocks go to other peers; a peer with requests out and no block for
``snub_timeout`` is snubbed too.  A block from a peer unsnubs it.

Interest: ``peer.wanted_count`` is how many pieces we want that the peer has,
kept up to date per HAVE and per verified piece; we are interested exactly
while it is above zero (and we are not paused).  Counting a whole bitfield is
a single AND of two big integers.
"""

from __future__ import annotations

from collections.abc import Collection
from itertools import islice
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet.defer import Deferred, fail, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import BLOCK_SIZE
from txbittorrent.core.transfer.choker import SNUB_TIMEOUT, is_snubbed
from txbittorrent.core.transfer.picker import PiecePicker, RandomSource
from txbittorrent.storage.batch import JobBatcher
from txbittorrent.swarm.piecebuffer import PieceBuffers, verify_and_write

from txbittorrent.core.transfer.completion import (
    CompletionEvent,
    HaveReplaced,
)
from txbittorrent.core.transfer.completion import PieceFailed as CompletionPieceFailed
from txbittorrent.core.transfer.completion import PiecePassed as CompletionPiecePassed

if TYPE_CHECKING:
    from txbittorrent.core.layout import Layout
    from txbittorrent.core.transfer.completion import Completion
    from txbittorrent.core.metainfo import Metainfo
    from txbittorrent.swarm.peerstate import PeerState, RateMeter
    from txbittorrent.storage.store import Store
    from txbittorrent.swarm.config import SwarmConfig

__all__ = ["Downloader", "DownloadHost", "DEADLINE_KEEP_TIME", "DEADLINE_KEEP_BLOCKS"]

_log = Logger()

DEADLINE_KEEP_TIME = 0.25
"""When a deadline piece falls due, a peer's oldest requests worth this
many seconds of its rate are left alone (they are likely on their way)."""

DEADLINE_KEEP_BLOCKS = 4
"""... and at least this many of them."""


class DownloadHost(Protocol):
    """What the downloader needs of its swarm."""

    def live_peers(self) -> list[PeerState]:
        """The connected peers whose session is alive."""

    def piece_passed(self, index: int, data: bytearray) -> None:
        """A piece is verified and on disk (called before any HAVE goes out)."""

    def piece_failed(self, index: int, contributors: set[PeerState]) -> None:
        """A piece failed its hash; these peers sent its blocks."""

    def disk_error(self, index: int, failure: Failure) -> None:
        """Writing a verified piece failed; it will be fetched again."""

    def before_write(self) -> Deferred[None] | None:
        """What must be done before a piece is written (the resume record
        marked unclean): a Deferred to wait for, or None to write at once."""


class Downloader:
    """The download half of a swarm (see the module docstring)."""

    def __init__(
        self,
        metainfo: Metainfo,
        layout: Layout,
        store: Store,
        completion: Completion,
        rng: RandomSource,
        config: SwarmConfig,
        clock: Any,
        meter: RateMeter,
        host: DownloadHost,
    ) -> None:
        self.picker: PiecePicker[PeerState] = PiecePicker.from_layout(
            layout, rng, completion.have.copy()
        )
        self.picker.set_piece_priorities(completion.piece_priorities)
        self.buffers = PieceBuffers(config.max_buffer_bytes)
        self.meter = meter
        """Payload bytes received, all peers together."""
        self.wasted = 0
        """Payload bytes received that were no longer needed."""
        self.preempted = 0
        """Requests cancelled to let a due deadline piece go first."""
        self.paused = False
        self.stopped = False
        self._metainfo = metainfo
        self._layout = layout
        self._store = store
        self._verifier = JobBatcher(call=store.call, max_batch=8, max_running=2)
        """Hash-and-write jobs: at most two in the pool; pieces that finish
        while both run leave together in the next (see ``_verify``)."""
        self._completion = completion
        self._config = config
        self._clock = clock
        self._host = host
        self._jobs = 0
        self._idle: list[Deferred[None]] = []
        self._fill_turn = 0

    @property
    def seeding(self) -> bool:
        """We have every piece we want."""
        return self._completion.complete

    def follow(self) -> None:
        """Hear the completion model's changes that do not come through us
        (a recheck while running finding a piece bad, or good)."""
        self._completion.add_listener(self._completion_changed)

    def unfollow(self) -> None:
        self._completion.remove_listener(self._completion_changed)

    def _completion_changed(self, event: CompletionEvent) -> None:
        if isinstance(event, CompletionPieceFailed):
            self._lost(event.piece_index)
        elif isinstance(event, CompletionPiecePassed):
            self.picker.piece_passed(event.piece_index)  # (ours already told it: a no-op)
        elif isinstance(event, HaveReplaced):
            for index in event.removed:
                self._lost(index)
            for index in event.added:
                self.picker.piece_passed(index)

    def _lost(self, index: int) -> None:
        """A verified piece is not any more: fetch it again."""
        self.picker.piece_lost(index)
        if self.stopped or not self._completion.is_wanted(index):
            return
        for peer in self._host.live_peers():
            if index in peer.session.peer_have:
                peer.wanted_count += 1
                if peer.wanted_count == 1:
                    self.send_interest(peer)
                self.fill(peer)

    def when_idle(self) -> Deferred[None]:
        """Fires once no hash-and-write job is in flight."""
        if not self._jobs:
            return succeed(None)
        d: Deferred[None] = Deferred()
        self._idle.append(d)
        return d

    # -- interest ----------------------------------------------------------------------

    def count_wanted(self, pieces: Bitfield) -> int:
        """How many pieces we want are in ``pieces`` (a peer's)."""
        return self._completion.count_wanted_in(pieces)

    def send_interest(self, peer: PeerState) -> None:
        """Tell the peer whether we are interested, if that changed."""
        session = peer.session
        if peer.wanted_count > 0 and not self.paused:
            data = session.interested()
        else:
            data = session.not_interested()
        if data:
            peer.link.send(data)

    def priorities_changed(self) -> None:
        """The completion model's priorities changed: picks, interest and
        requests follow."""
        self.picker.set_piece_priorities(self._completion.piece_priorities)
        for peer in self._host.live_peers():
            peer.wanted_count = self.count_wanted(peer.session.peer_have)
            self.send_interest(peer)
            self.fill(peer)

    # -- what peers have ---------------------------------------------------------------

    def peer_bitfield(self, peer: PeerState, have: Bitfield) -> None:
        if have.complete:
            self.picker.peer_have_all(peer)
        else:
            self.picker.peer_bitfield(peer, have)
        peer.wanted_count = self.count_wanted(peer.session.peer_have)
        self.send_interest(peer)
        self.fill(peer)

    def peer_have(self, peer: PeerState, index: int) -> None:
        self.picker.peer_have(peer, index)
        if self._completion.is_wanted(index):
            peer.wanted_count += 1
            if peer.wanted_count == 1:
                self.send_interest(peer)
            if len(peer.session.outstanding_requests) <= peer.low_water:
                self.fill(peer)

    def peer_gone(self, peer: PeerState) -> None:
        """Free the blocks the peer owed us (others may take them)."""
        self.picker.peer_gone(peer)

    # -- requests ----------------------------------------------------------------------

    def set_depth(self, peer: PeerState, depth: int) -> None:
        reqq = peer.session.peer_reqq
        if reqq is not None and reqq < depth:
            depth = reqq
        peer.depth = depth
        peer.low_water = depth - max(1, depth // 4)

    def _follow_rate(self, peer: PeerState, now: float) -> None:
        cfg = self._config
        if peer.snubbed:
            self.set_depth(peer, cfg.snubbed_queue_depth)
        else:
            self.set_depth(peer, cfg.queue_depth(peer.down.rate(now, cfg.rate_window)))

    def tick(self, peer: PeerState, now: float) -> None:
        """The swarm's tick: follow the peer's rate, and top its pipeline up
        if it ran low (after REJECTs, say, which refill nothing)."""
        self._follow_rate(peer, now)
        if len(peer.session.outstanding_requests) <= peer.low_water:
            self.fill(peer)

    def fill(self, peer: PeerState) -> None:
        """Top up the peer's pipeline with one pick and one write."""
        session = peer.session
        if self.paused or self.stopped or not peer.connected or session.dead:
            return
        if not session.am_interested:
            return
        buffers, picker = self.buffers, self.picker
        room = buffers.limit - buffers.used
        if room <= 0 and not picker.has_started_blocks and not picker.has_deadlines:
            return  # nothing to finish and no room to start: the common case at full speed
        now = self._clock.seconds()
        self._follow_rate(peer, now)
        choking = session.peer_choking
        allowed: Collection[int] | None = session.peer_allowed_fast if choking else None
        if choking and not allowed:
            return
        if picker.has_deadlines:
            self._make_room_for_due(peer, now, allowed)
        want = peer.depth - len(session.outstanding_requests)
        if want <= 0:
            return
        # Start only as many new pieces as the buffer budget has room for
        # (each needs a whole piece's buffer); over it, finish what is started.
        new_pieces = -(-room // self._metainfo.piece_length) if room > 0 else 0
        picked = picker.pick(
            peer, session.peer_have, want, now,
            allowed_fast=allowed, peer_choking=choking, suggested=peer.suggested,
            new_pieces=new_pieces,
        )
        piece_size = self._layout.piece_size
        out: list[tuple[int, int, int]] = []
        last = -1
        for key in picked:
            index = key[0]
            if index != last:
                if index not in buffers:
                    if buffers.over_budget and not picker.has_deadline(index):
                        # A new piece past the budget: give the block back; the
                        # piece stays started and is taken up once there is room.
                        # (A reader waiting on a deadline piece gets it anyway.)
                        picker.request_failed(peer, index, key[1])
                        continue
                    buffers.create(index, piece_size(index))
                last = index
            out.append(key)
        if out:
            if peer.asking_since is None:
                peer.asking_since = now
            peer.link.send(session.request_many(out))

    def _make_room_for_due(
        self, peer: PeerState, now: float, allowed: Collection[int] | None
    ) -> None:
        """If a due deadline piece has a block the peer could be asked for,
        CANCEL the peer's requests of pieces without a deadline past its
        oldest few, so that the due blocks are next in its queue (see the
        module docstring)."""
        session = peer.session
        outstanding = session.outstanding_requests
        rate = peer.down.rate(now, self._config.rate_window)
        keep = max(DEADLINE_KEEP_BLOCKS, int(rate * DEADLINE_KEEP_TIME / BLOCK_SIZE))
        if len(outstanding) <= keep:
            return
        picker = self.picker
        if not picker.has_due_free_blocks(session.peer_have, now, allowed):
            return
        cancels = []
        for index, begin, length in list(islice(outstanding, keep, None)):
            if not picker.has_deadline(index):
                cancels.append(session.cancel(index, begin, length))
                picker.request_failed(peer, index, begin)
        if cancels:
            self.preempted += len(cancels)
            peer.link.send(b"".join(cancels))

    def set_deadline(self, index: int, when: float) -> None:
        """Fetch piece ``index`` before anything else (streaming), earliest
        deadline first; every pipeline is topped up at once."""
        self.picker.set_deadline(index, when)
        for peer in self._host.live_peers():
            self.fill(peer)

    def clear_deadline(self, index: int) -> None:
        self.picker.clear_deadline(index)

    def rejected(self, peer: PeerState, index: int, begin: int) -> None:
        """A REJECT, or a non-fast peer's choke dropped the request.  No refill
        here: a peer refusing a block would be asked for it again at once; the
        next block or tick refills."""
        self.picker.request_failed(peer, index, begin)
        if not peer.session.outstanding_requests:
            peer.asking_since = None

    def withdraw(self, peer: PeerState) -> bytes:
        """CANCEL every outstanding request of ours (pause); the bytes to send."""
        session = peer.session
        out = []
        for index, begin, length in list(session.outstanding_requests):
            out.append(session.cancel(index, begin, length))
            self.picker.request_failed(peer, index, begin)
        peer.asking_since = None
        return b"".join(out)

    def check_requests(self, now: float) -> None:
        """Cancel and re-request what timed out; mark snubbing peers."""
        cfg = self._config
        cancels: dict[PeerState, list[bytes]] = {}
        for peer, index, begin, length in self.picker.timed_out(now, cfg.block_timeout):
            peer.snubbed = True
            session = peer.session
            key = (index, begin, length)
            if peer.connected and not session.dead and key in session.outstanding_requests:
                cancels.setdefault(peer, []).append(session.cancel(index, begin, length))
        for peer, data in cancels.items():
            self.set_depth(peer, cfg.snubbed_queue_depth)
            peer.link.send(b"".join(data))
            if not peer.session.outstanding_requests:
                peer.asking_since = None
        # is_snubbed uses the choker's SNUB_TIMEOUT: shift ``now`` so that
        # the configured timeout applies instead.
        shifted = now + SNUB_TIMEOUT - cfg.snub_timeout
        peers = self._host.live_peers()
        for peer in peers:
            if not peer.snubbed and is_snubbed(shifted, peer.asking_since, peer.last_block_at):
                peer.snubbed = True
                self.set_depth(peer, cfg.snubbed_queue_depth)
        if cancels:
            for peer in peers:
                self.fill(peer)

    # -- blocks and pieces ---------------------------------------------------------------

    def block(self, peer: PeerState, index: int, begin: int, block: bytes) -> None:
        """A block we asked the peer for arrived."""
        size = len(block)
        peer.down.total += size
        self.meter.total += size
        peer.last_block_at = self._clock.seconds()
        peer.snubbed = False
        picker = self.picker
        others = picker.block_arrived(peer, index, begin)
        if others is None:
            self.wasted += size
        else:
            buffer = self.buffers.get(index)
            if buffer is None:
                buffer = self.buffers.create(index, self._layout.piece_size(index))
            buffer[begin : begin + size] = block
            for other in others:
                self._cancel(other, index, begin, size)
            if picker.piece_complete(index):
                self._verify(index)
        session = peer.session
        if len(session.outstanding_requests) <= peer.low_water:
            if not session.outstanding_requests:
                peer.asking_since = None
            self.fill(peer)

    def _cancel(self, peer: PeerState, index: int, begin: int, length: int) -> None:
        session = peer.session
        key = (index, begin, length)
        if peer.connected and not session.dead and key in session.outstanding_requests:
            peer.link.send(session.cancel(index, begin, length))

    def _verify(self, index: int) -> None:
        """Hash the complete piece and, if it is good, write it, in the pool.
        A pool job costs two thread wake-ups (about 80 us of CPU here, a third
        of the work for a 256 KiB piece), and on a busy machine pieces finish
        faster than the pool gets the CPU: in bench.swarm a third of them found
        five jobs or more ahead.  So at most two jobs run, and the pieces that
        finish meanwhile go together in the next (``JobBatcher``)."""
        buffer = self.buffers.take(index)
        assert buffer is not None
        self._jobs += 1
        expected = self._metainfo.piece_hash(index)
        submit, storage = self._verifier.submit, self._store.storage
        try:
            first = self._host.before_write()
        except Exception:
            first = fail()
        if first is None:
            d = submit(verify_and_write, storage, index, expected, buffer)
        else:
            d = first.addCallback(
                lambda _: submit(verify_and_write, storage, index, expected, buffer)
            )
        d.addCallbacks(self._verified, self._write_failed,
                       callbackArgs=(index, buffer), errbackArgs=(index, len(buffer)))
        d.addBoth(self._job_done)

    def _job_done(self, result: object) -> None:
        self._jobs -= 1
        if isinstance(result, Failure):
            _log.failure("after verifying a piece", result)
        if not self._jobs:
            idle, self._idle = self._idle, []
            for d in idle:
                d.callback(None)

    def _write_failed(self, failure: Failure, index: int, size: int) -> None:
        self.buffers.release(size)
        self.picker.piece_failed(index)  # fetch it again; nobody to blame
        self._host.disk_error(index, failure)

    def _verified(self, passed: bool, index: int, buffer: bytearray) -> None:
        was_over = self.buffers.over_budget
        self.buffers.release(len(buffer))
        if passed:
            self._passed(index, buffer)
        else:
            self._host.piece_failed(index, self.picker.piece_failed(index))
        if was_over and not self.buffers.over_budget:
            self._fill_until_spent()

    def _fill_until_spent(self) -> None:
        """The budget has room again (a piece's worth, usually): top
        pipelines up until a new piece has taken it, each time starting one
        peer further on, so that no peer is always first to the room."""
        peers = self._host.live_peers()
        if not peers:
            return
        turn = self._fill_turn = (self._fill_turn + 1) % len(peers)
        for peer in peers[turn:] + peers[:turn]:
            self.fill(peer)
            if self.buffers.over_budget:
                break

    def _passed(self, index: int, buffer: bytearray) -> None:
        self.picker.piece_passed(index)
        self._host.piece_passed(index, buffer)  # the completion model hears it there
        if self.stopped:
            return
        wanted = self._completion.piece_priorities[index] > 0
        for peer in self._host.live_peers():
            session = peer.session
            if index not in session.peer_have:
                peer.link.send(session.send_have(index))
            elif wanted:
                peer.wanted_count -= 1
                if not peer.wanted_count:
                    self.send_interest(peer)
