"""Tests for txbittorrent.swarm.swarm: the peer manager of one torrent.

Each connection is a ``FakePeerLink`` (from ``txbittorrent.testing``): the
swarm's ``PeerSession`` on one side and a real ``PeerSession`` acting as the
remote peer on the other, so every byte the swarm sends is decoded by the
remote (its events are kept in ``link.events``) and everything the remote
says is real wire bytes fed to the swarm's session.  The store is a real
``FileStorage`` in a temporary directory behind a ``Store`` whose thread pool
runs each job at once (``SyncPool``) or when the test says (``ManualPool``),
time is a ``Clock`` and chance a seeded ``Random``.
"""

from __future__ import annotations

import os
import random
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from tests.swarmharness import OUR_ID, PIECE, FakeDialer, Harness, peer_id, small
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.wire.events import (
    BlockReceived,
    ExtensionHandshake,
    PeerBitfield,
    PeerChoked,
    PeerHave,
    PeerInterested,
    PeerNotInterested,
    PeerUnchoked,
    RequestCancelled,
)
from txbittorrent.core.wire.codec import WireDecoder, encode_reject, encode_request
from txbittorrent.errors import MissingDataError
from txbittorrent.core.wire.session import PeerSession
from txbittorrent.peer.links import LinkGroup
from txbittorrent.peer.protocol import PeerProtocol
from txbittorrent.swarm.swarm import CLIENT_VERSION, Swarm, SwarmConfig
from txbittorrent.testing import FakePeerLink, ManualPool

K16 = 16 * 1024


class AcceptanceTests(SynchronousTestCase):
    """peer_connected: who is let in, and what they are told first."""

    def setUp(self) -> None:
        self.h = Harness(self, have=[0, 2], config=small(max_connections=2))
        self.h.swarm.start()

    def test_refuses_ourselves(self) -> None:
        """A connection whose peer id is ours is refused, and its address forgotten."""
        self.h.swarm.add_peers([("10.9.9.9", 6881)])
        link = self.h.link(host="10.9.9.9")
        link.remote.receive_data(link.session.send_handshake())
        link.session.peer_id = OUR_ID  # a real session refuses this itself
        self.assertFalse(self.h.swarm.peer_connected(link))
        self.assertNotIn(("10.9.9.9", 6881), self.h.swarm._book)

    def test_refuses_duplicate(self) -> None:
        """A second connection with a connected peer's id is refused."""
        self.h.connect(remote_id=peer_id(99))
        self.assertFalse(self.h.link(remote_id=peer_id(99)).handshake())

    def test_simultaneous_dial_lower_id_dials(self) -> None:
        """Both sides dialled at once: the connection opened by the side with the
        lower peer id is kept, whichever arrived first."""
        low, high = b"-AA0000-" + b"0" * 12, b"-ZZ0000-" + b"z" * 12
        self.assertLess(low, OUR_ID)
        self.assertLess(OUR_ID, high)
        # Remote id lower than ours: keep the link it opened (incoming to us).
        ours = self.h.link(host="10.1.1.1", outgoing=True, remote_id=low)
        self.assertTrue(ours.handshake())
        theirs = self.h.link(host="10.1.1.1", outgoing=False, remote_id=low)
        self.assertTrue(theirs.handshake())
        self.assertIsNotNone(ours.closed)
        self.assertEqual([p.address for p in self.h.swarm.peers()], [theirs.address])
        # Remote id higher than ours: keep the link we opened, refuse theirs.
        mine = self.h.link(host="10.2.2.2", outgoing=True, remote_id=high)
        self.assertTrue(mine.handshake())
        self.assertFalse(self.h.link(host="10.2.2.2", outgoing=False,
                                     remote_id=high).handshake())
        self.assertIsNone(mine.closed)

    def test_refuses_banned(self) -> None:
        """A banned host, or a banned peer id from another host, is refused."""
        self.h.swarm._book.ban("10.0.0.50", peer_id(50))
        self.assertFalse(self.h.link(host="10.0.0.50").handshake())
        self.assertFalse(self.h.link(host="10.0.0.51", remote_id=peer_id(50)).handshake())
        self.assertTrue(self.h.link(host="10.0.0.52").handshake())

    def test_refuses_over_limit(self) -> None:
        """Past max_connections, new peers are refused and accepting() is false."""
        self.h.connect()
        self.assertTrue(self.h.swarm.accepting())
        self.h.connect()
        self.assertFalse(self.h.swarm.accepting())
        self.assertFalse(self.h.link().handshake())

    def test_refuses_when_stopped(self) -> None:
        """A stopped swarm accepts nobody."""
        self.h.swarm.stop()
        self.assertFalse(self.h.swarm.accepting())
        self.assertFalse(self.h.link().handshake())

    def test_sends_bitfield_and_extension_handshake(self) -> None:
        """The peer gets our pieces and our BEP 10 handshake (v, reqq, yourip)."""
        link = self.h.connect()
        (bitfield,) = link.of(PeerBitfield)
        self.assertEqual(bitfield.have.to_string(), "10100")
        (ext,) = link.of(ExtensionHandshake)
        self.assertEqual(ext.payload[b"v"], CLIENT_VERSION.encode())
        self.assertEqual(ext.payload[b"yourip"], bytes([10, 0, 0, 1]))
        self.assertEqual(link.remote.peer_reqq, SwarmConfig().max_peer_requests)
        self.assertEqual(link.sends, 1)

    def test_listen_port_in_handshake(self) -> None:
        """With a listen port known, our extension handshake carries it as p."""
        self.h.swarm.listen_port = 51413
        link = self.h.connect()
        (ext,) = link.of(ExtensionHandshake)
        self.assertEqual(ext.payload[b"p"], 51413)

    def test_incoming_listen_port_recorded(self) -> None:
        """An incoming peer's p marks its listen address connected, so it is not dialled."""
        link = self.h.connect(outgoing=False)
        link.has(Bitfield(5))
        self.h.dialer.calls.clear()
        self.h.swarm.add_peers([(link.address[0], 6881)])
        self.assertEqual(self.h.dialer.calls, [])

    def test_peer_info(self) -> None:
        """peers() reports address, client, progress and flags."""
        link = self.h.connect(outgoing=False)
        link.has(Bitfield.from_indexes([1, 3], 5))
        link.unchoke_us()
        (info,) = self.h.swarm.peers()
        self.assertEqual(info.address, link.address)
        self.assertEqual(info.client, "Remote 1.0")
        self.assertEqual(info.progress, 0.4)
        self.assertEqual(info.flags, "D?I")  # unchoked at connect, not interested (yet)
        self.assertTrue(info.am_interested)
        self.assertFalse(info.peer_choking)


class ConnectionTests(SynchronousTestCase):
    """The connection top-up: dialling known peers, backoff and bans."""

    def setUp(self) -> None:
        self.h = Harness(self, config=small(max_connections=3, connect_interval=5.0,
                                            reconnect_backoff=(10.0, 60.0)))

    def test_dials_on_start_and_add(self) -> None:
        """Known peers are dialled at start, and new ones when added, up to the limit."""
        self.h.swarm.add_peers([("10.1.0.1", 1), ("10.1.0.2", 2)])
        self.assertEqual(self.h.dialer.calls, [])  # not before start()
        self.h.swarm.start()
        self.assertEqual(self.h.dialer.calls, [("10.1.0.1", 1), ("10.1.0.2", 2)])
        self.h.swarm.add_peers([("10.1.0.3", 3), ("10.1.0.4", 4)])
        self.assertEqual(self.h.dialer.calls[2:], [("10.1.0.3", 3)])

    def test_backoff_after_failure(self) -> None:
        """A failed address is retried after the backoff, then forgotten."""
        self.h.swarm.start()
        self.h.swarm.add_peers([("10.1.0.1", 1)])
        self.h.swarm.connect_failed(("10.1.0.1", 1), "refused")
        self.h.dialer.calls.clear()
        self.h.clock.advance(5)
        self.assertEqual(self.h.dialer.calls, [])
        self.h.clock.advance(5)
        self.assertEqual(self.h.dialer.calls, [("10.1.0.1", 1)])
        self.h.swarm.connect_failed(("10.1.0.1", 1), "refused")
        self.h.clock.advance(60)
        self.assertEqual(len(self.h.dialer.calls), 2)
        self.h.swarm.connect_failed(("10.1.0.1", 1), "refused")
        self.h.clock.advance(1000)
        self.assertEqual(len(self.h.dialer.calls), 2)

    def test_dialer_refusal_stops_round(self) -> None:
        """When the dialer is at its limit, the round stops and is retried later."""
        self.h.dialer.allow = False
        self.h.swarm.add_peers([("10.1.0.1", 1), ("10.1.0.2", 2)])
        self.h.swarm.start()
        self.assertEqual(self.h.dialer.calls, [("10.1.0.1", 1)])
        self.h.dialer.allow = True
        self.h.clock.advance(5)
        self.assertEqual(self.h.dialer.calls[1:], [("10.1.0.1", 1), ("10.1.0.2", 2)])

    def test_banned_not_dialled(self) -> None:
        """Addresses of banned hosts are neither added nor dialled."""
        self.h.swarm._book.ban("10.1.0.1", None)
        self.h.swarm.add_peers([("10.1.0.1", 1)])
        self.h.swarm.start()
        self.assertEqual(self.h.dialer.calls, [])

    def test_connected_not_redialled(self) -> None:
        """A connected address is not dialled; once closed, only after backoff[0]."""
        self.h.swarm.start()
        self.h.swarm.add_peers([("10.0.0.1", 6881)])
        link = self.h.connect()
        self.h.dialer.calls.clear()
        self.h.clock.advance(20)
        self.assertEqual(self.h.dialer.calls, [])
        link.close("gone")
        self.h.clock.advance(5)
        self.assertEqual(self.h.dialer.calls, [])
        self.h.clock.advance(5)
        self.assertEqual(self.h.dialer.calls, [("10.0.0.1", 6881)])


# -- downloading ------------------------------------------------------------------------


class InterestTests(SynchronousTestCase):
    """We are interested exactly in peers that have pieces we want."""

    def setUp(self) -> None:
        self.h = Harness(self, have=[0])
        self.h.swarm.start()

    def test_interested_in_wanted_pieces(self) -> None:
        """A bitfield with a piece we lack makes us interested."""
        link = self.h.connect()
        link.has(Bitfield.from_indexes([0, 3], 5))
        self.assertEqual(len(link.of(PeerInterested)), 1)

    def test_not_interested_until_have(self) -> None:
        """A peer with only what we have is not interesting until a HAVE."""
        link = self.h.connect()
        link.has(Bitfield.from_indexes([0], 5))
        self.assertEqual(link.of(PeerInterested), [])
        link.deliver(link.remote.send_have(4))
        self.assertEqual(len(link.of(PeerInterested)), 1)

    def test_priority_zero(self) -> None:
        """Pieces of priority 0 do not count; raising them makes us interested."""
        self.h.set_file_priorities([1, 0])  # piece 4 lies in b.bin only
        link = self.h.connect()
        link.has(Bitfield.from_indexes([4], 5))
        self.assertEqual(link.of(PeerInterested), [])
        self.h.set_file_priorities([1, 1])
        self.assertEqual(len(link.of(PeerInterested)), 1)

    def test_not_interested_once_done(self) -> None:
        """Once we have what a peer has, we tell it we are not interested."""
        partial = self.h.connect()
        partial.has(Bitfield.from_indexes([1], 5))
        seed = self.h.seed()
        seed.serve(self.h.data)
        self.assertEqual(sorted(self.h.passed), [1, 2, 3, 4])
        self.assertEqual(len(partial.of(PeerNotInterested)), 1)
        self.assertEqual(len(seed.of(PeerNotInterested)), 1)
        # The partial peer hears of the pieces it lacks; the seed of none.
        self.assertEqual(sorted(e.piece_index for e in partial.of(PeerHave)), [2, 3, 4])
        self.assertEqual(seed.of(PeerHave), [])


class DownloadTests(SynchronousTestCase):
    """Requests, blocks, verified writes."""

    def test_full_download(self) -> None:
        """A download from one seed, through real wire bytes, is on disk byte for byte."""
        h = Harness(self, pieces=7)
        h.swarm.start()
        seed = h.seed()
        seed.serve(h.data)
        self.assertEqual(sorted(h.passed), list(range(7)))
        self.assertTrue(h.have.complete)
        for path, start, end in (("a.bin", 0, len(h.data) // 3),
                                 ("b.bin", len(h.data) // 3, len(h.data))):
            with open(os.path.join(h.storage._basedir, "t", path), "rb") as f:
                self.assertEqual(f.read(), h.data[start:end])
        self.assertEqual(h.swarm.downloaded, len(h.data))
        self.assertEqual(h.reads, [])  # verified from memory, never read back
        self.assertEqual(h.swarm._downloader.buffers.used, 0)

    def test_pipeline_depth_and_batched_refill(self) -> None:
        """Requests go out depth at a time, refilled a quarter at a time, one write each."""
        h = Harness(self, pieces=20, config=small(min_queue_depth=8, max_queue_depth=8))
        h.swarm.start()
        seed = h.connect()
        seed.has(Bitfield.full(20))
        before = seed.sends
        seed.unchoke_us()
        self.assertEqual(len(seed.asked), 8)
        self.assertEqual(seed.sends, before + 1)
        before = seed.sends
        seed.serve(h.data, count=1)
        self.assertEqual((len(seed.asked), seed.sends), (7, before))
        seed.serve(h.data, count=1)
        self.assertEqual((len(seed.asked), seed.sends), (8, before + 1))

    def test_depth_follows_rate(self) -> None:
        """A fast peer's pipeline deepens with its rate, up to max_queue_depth."""
        h = Harness(self, pieces=40, config=small(min_queue_depth=4, max_queue_depth=12))
        h.swarm.start()
        seed = h.seed()
        self.assertEqual(len(seed.asked), 4)
        seed.serve(h.data, count=8)  # 128 KiB in a second: 16 blocks in 2 s
        self.assertEqual(len(seed.asked), 4)
        h.clock.advance(1)
        self.assertEqual(len(seed.asked), 12)

    def test_depth_capped_by_reqq(self) -> None:
        """No more requests outstanding than the peer's reqq."""
        h = Harness(self, pieces=20, config=small(min_queue_depth=8))
        h.swarm.start()
        seed = h.seed(reqq=3)
        self.assertEqual(len(seed.asked), 3)

    def test_endgame_cancels_duplicates(self) -> None:
        """In endgame a block asked of two peers is cancelled at the slower one."""
        h = Harness(self, pieces=2, config=small())
        h.swarm.start()
        first = h.seed()
        self.assertEqual(len(first.asked), 4)
        second = h.seed()  # nothing is free: endgame duplicates
        self.assertEqual(len(second.asked), 4)
        first.serve(h.data)
        self.assertEqual(sorted(h.passed), [0, 1])
        self.assertEqual(second.asked, [])
        self.assertEqual(len(second.of(RequestCancelled)), 4)

    def test_reject_frees_block(self) -> None:
        """A REJECTed block is asked of another peer."""
        h = Harness(self, pieces=2, config=small(min_queue_depth=1, max_queue_depth=1))
        h.swarm.start()
        first = h.seed()
        (key,) = first.asked
        first.deliver(first.remote.reject(*key))
        self.assertEqual(first.asked, [])
        second = h.seed()
        self.assertEqual(second.asked, [key])

    def test_nonfast_choke_frees_blocks(self) -> None:
        """A choke from a peer without the fast extension returns its blocks."""
        h = Harness(self, pieces=6, config=small())
        h.swarm.start()
        first = h.seed(fast=False)
        asked = first.asked
        first.deliver(first.remote.choke())
        second = h.seed()
        self.assertEqual(second.asked, asked)

    def test_timeout_rerequests_and_snubs(self) -> None:
        """A request timed out is cancelled, asked elsewhere, and its peer snubbed."""
        h = Harness(self, pieces=2, config=small(block_timeout=30.0))
        h.swarm.start()
        slow = h.seed()
        asked = slow.asked
        self.assertEqual(len(asked), 4)
        h.clock.advance(32)
        self.assertEqual(len(slow.of(RequestCancelled)), 4)
        self.assertEqual(len(slow.asked), 1)  # snubbed: one request at a time
        info = {i.address: i for i in h.swarm.peers()}[slow.address]
        self.assertTrue(info.snubbed)
        self.assertIn("S", info.flags)
        fast = h.seed()  # the three free blocks, and the snubbed peer's one in endgame
        self.assertEqual(sorted(fast.asked), sorted(asked))
        fast.serve(h.data)
        self.assertEqual(sorted(h.passed), [0, 1])

    def test_snubbed_without_timeout(self) -> None:
        """A peer that sends nothing for snub_timeout is snubbed; a block unsnubs it."""
        h = Harness(self, pieces=2, config=small(snub_timeout=10.0, block_timeout=100.0))
        h.swarm.start()
        slow = h.seed()
        h.clock.advance(12)
        self.assertTrue(h.swarm.peers()[0].snubbed)
        slow.serve(h.data, count=1)
        self.assertFalse(h.swarm.peers()[0].snubbed)

    def test_memory_budget(self) -> None:
        """Past max_buffer_bytes no new piece is started; finishing one frees room."""
        h = Harness(self, pieces=10, config=small(min_queue_depth=8, max_buffer_bytes=PIECE))
        h.swarm.start()
        seed = h.seed()
        self.assertEqual(len(seed.asked), 2)  # the two blocks of one piece
        self.assertEqual(len({key[0] for key in seed.asked}), 1)
        # No second piece was started only to be handed back.
        self.assertEqual(len(h.swarm._downloader.picker.in_progress()), 1)
        seed.serve(h.data, count=2)
        self.assertEqual(len(h.passed), 1)
        self.assertEqual(len(seed.asked), 2)
        self.assertEqual(len({key[0] for key in seed.asked}), 1)
        self.assertLessEqual(h.swarm._downloader.buffers.used, PIECE)
        seed.serve(h.data)
        self.assertEqual(len(h.passed), 10)

    def test_budget_room_goes_to_peers_in_turn(self) -> None:
        """Room freed by a verified piece is offered to the peers in turn:
        with one piece's budget and two seeds, the next piece goes to the
        other seed each time (not always to the first connected)."""
        h = Harness(self, pieces=10, config=small(min_queue_depth=8, max_buffer_bytes=PIECE))
        h.swarm.start()
        seeds = [h.seed(), h.seed()]
        takers = []
        for _ in range(4):
            asking = [n for n, seed in enumerate(seeds) if seed.asked]
            self.assertEqual(len(asking), 1, "one piece in progress, from one seed")
            takers.append(asking[0])
            seeds[asking[0]].serve(h.data, count=2)
            self.assertLessEqual(h.swarm._downloader.buffers.used, PIECE)
        self.assertEqual(len(h.passed), 4)
        self.assertEqual(takers[1:], [1, 0, 1])

    def test_unrequested_late_block_dropped(self) -> None:
        """A block arriving after we cancelled it is dropped without harm."""
        h = Harness(self, pieces=2, config=small())
        h.swarm.start()
        first = h.seed()
        second = h.seed()
        # second's duplicate requests are cancelled when first's copies arrive,
        # but second answers one anyway: the session drops it silently.
        key = second.asked[0]
        first.serve(h.data)
        index, begin, length = key
        second.remote._pending[key] = None  # as if the CANCEL had not arrived yet
        start = index * PIECE + begin
        second.deliver(second.remote.send_piece_header(*key) + h.data[start : start + length])
        self.assertIsNone(second.closed)
        self.assertEqual(sorted(h.passed), [0, 1])


class DeadlineTests(SynchronousTestCase):
    """Streaming deadlines reach the picker through the swarm."""

    def test_far_piece_first(self) -> None:
        """A piece far ahead of the others, given a deadline, is requested first."""
        h = Harness(self, pieces=12, config=small())
        h.swarm.start()
        h.swarm.set_deadline(10, 0.0)
        seed = h.seed()
        self.assertEqual(seed.asked[0][0], 10)
        seed.serve(h.data, count=len(seed.asked))
        self.assertEqual(h.passed[0], 10)

    def test_deadline_over_the_buffer_budget(self) -> None:
        """With the piece buffer budget used up, a deadline piece still starts."""
        h = Harness(self, pieces=12, config=small(max_buffer_bytes=PIECE))
        h.swarm.start()
        seed = h.seed()
        started = {index for index, _, _ in seed.asked}
        self.assertEqual(len(started), 1, "the budget holds one piece")
        (first,) = started
        far = 11 if first != 11 else 10
        h.swarm.set_deadline(far, 0.0)
        seed.serve(h.data, count=1)
        self.assertIn(far, {index for index, _, _ in seed.asked})

    def test_due_piece_jumps_the_pipeline(self) -> None:
        """A piece that falls due while the pipeline is full of other requests
        is asked next: the requests past the oldest few are cancelled and
        asked again after it."""
        h = Harness(self, pieces=40, config=small(min_queue_depth=8, max_queue_depth=8))
        h.swarm.start()
        seed = h.seed()
        before = seed.asked
        self.assertEqual(len(before), 8)
        far = max(set(range(39)) - {index for index, _, _ in before})  # (39 is short)
        h.swarm.set_deadline(far, h.clock.seconds())
        after = seed.asked
        self.assertEqual(len(seed.of(RequestCancelled)), 4)
        self.assertEqual(after[:4], before[:4], "the oldest requests are left alone")
        self.assertEqual(after[4:6], [(far, 0, K16), (far, K16, K16)])
        self.assertEqual(sorted(after[6:]), sorted(before[4:6]), "asked again after it")
        self.assertEqual(h.swarm._downloader.preempted, 4)
        seed.serve(h.data, count=6)
        self.assertIn(far, h.passed)
        seed.serve(h.data)
        self.assertEqual(sorted(h.passed), list(range(40)))
        self.assertIsNone(seed.closed)

    def test_deadline_not_due_cancels_nothing(self) -> None:
        """A deadline in the future waits for room in the pipeline; once due,
        at the next refill, it goes ahead."""
        h = Harness(self, pieces=40, config=small(min_queue_depth=8, max_queue_depth=8))
        h.swarm.start()
        seed = h.seed()
        before = seed.asked
        far = max(set(range(39)) - {index for index, _, _ in before})  # (39 is short)
        h.swarm.set_deadline(far, h.clock.seconds() + 10)
        self.assertEqual(seed.asked, before)
        self.assertEqual(seed.of(RequestCancelled), [])
        h.clock.advance(10)
        seed.serve(h.data, count=2)  # down to the low-water mark: a refill
        self.assertEqual(len(seed.of(RequestCancelled)), 2)
        self.assertEqual(seed.asked[4:6], [(far, 0, K16), (far, K16, K16)])

    def test_no_due_piece_no_cancel(self) -> None:
        """Without deadlines a whole download sends no CANCEL; a due piece whose
        blocks are all asked for cancels nothing either."""
        h = Harness(self, pieces=12, config=small())
        h.swarm.start()
        seed = h.seed()
        first = seed.asked[0][0]
        h.swarm.set_deadline(first, 0.0)
        seed.serve(h.data)
        self.assertEqual(len(h.passed), 12)
        self.assertEqual(seed.of(RequestCancelled), [])
        self.assertEqual(h.swarm._downloader.preempted, 0)

    def test_cleared_deadline(self) -> None:
        """A cleared deadline gives the piece no precedence."""
        h = Harness(self, pieces=12, config=small())
        h.swarm.start()
        h.swarm.set_deadline(10, 0.0)
        h.swarm.clear_deadline(10)
        self.assertFalse(h.swarm._downloader.picker.has_deadlines)

    def test_recheck_loss_is_fetched_again(self) -> None:
        """A piece the completion model loses while running (a recheck found
        it bad) is wanted again: we become interested and request it."""
        h = Harness(self, pieces=5, config=small())
        h.swarm.start()
        seed = h.seed()
        seed.serve(h.data)
        self.assertTrue(h.have.complete)
        self.assertEqual(len(seed.of(PeerNotInterested)), 1)
        h.completion.failed(3)
        self.assertEqual(len(seed.of(PeerInterested)), 2)
        self.assertEqual({index for index, _, _ in seed.asked}, {3})
        seed.serve(h.data)
        self.assertTrue(h.have.complete)

    def test_no_deadlines_before_metadata(self) -> None:
        """A swarm without its metadata takes deadlines quietly (there is no piece yet)."""
        swarm = Swarm(b"i" * 20, OUR_ID, FakeDialer(), Clock(), random.Random(1))
        swarm.set_deadline(3, 0.0)
        swarm.clear_deadline(3)
        self.assertFalse(swarm.has_metadata)

    def test_priorities_before_metadata(self) -> None:
        """Priorities changed before ``attach`` (a magnet's file selection
        while its data is checked) are taken quietly: the downloader reads
        the completion model when it is made."""
        swarm = Swarm(b"i" * 20, OUR_ID, FakeDialer(), Clock(), random.Random(1))
        swarm.priorities_changed()
        self.assertFalse(swarm.has_metadata)


class HashFailureTests(SynchronousTestCase):
    """Pieces that fail their hash: never written, and their senders banned."""

    def test_sole_contributor_banned_at_once(self) -> None:
        """A peer that sent every block of a bad piece is banned and disconnected."""
        h = Harness(self, config=small())
        h.swarm.start()
        bad = h.seed()
        bad.serve(h.data, corrupt=[2])
        self.assertIn(2, h.failed)
        self.assertEqual(bad.closed[:7], "banned:")
        self.assertTrue(h.swarm.is_banned(bad.address[0]))
        self.assertTrue(h.swarm.is_banned("10.99.0.1", bad.remote.our_peer_id))
        self.assertIn(("banned", bad.address,
                       "sent every block of piece 2, which failed its hash check"),
                      h.observer.seen)
        self.assertNotIn(2, h.have)
        self.assertEqual(h.on_disk(2), bytes(h.layout.piece_size(2)))
        # It may not come back.
        self.assertFalse(h.link(host=bad.address[0]).handshake())

    def test_failed_piece_fetched_again(self) -> None:
        """After a failure the piece is fetched again from an honest peer."""
        h = Harness(self, config=small())
        h.swarm.start()
        bad = h.seed()
        bad.serve(h.data, corrupt=[2])
        good = h.seed()
        good.serve(h.data)
        self.assertTrue(h.have.complete)
        self.assertEqual(h.on_disk(2), h.piece(2))

    def test_shared_blame_bans_at_threshold(self) -> None:
        """Two peers sharing bad pieces are each charged; banned at ban_threshold."""
        config = small(min_queue_depth=1, max_queue_depth=1, ban_threshold=2)
        h = Harness(self, pieces=6, config=config)
        h.swarm.start()
        a, b = h.seed(), h.seed()
        everything = range(6)
        # One block each: a gets the first block of a piece, b the second.
        a.serve(h.data, count=1, corrupt=everything)
        b.serve(h.data, count=1, corrupt=everything)
        self.assertEqual(len(h.failed), 1)
        self.assertIsNone(a.closed)
        self.assertIsNone(b.closed)
        a.serve(h.data, count=1, corrupt=everything)
        b.serve(h.data, count=1, corrupt=everything)
        self.assertEqual(len(h.failed), 2)
        self.assertIsNotNone(a.closed)
        self.assertIsNotNone(b.closed)
        self.assertEqual(h.passed, [])
        for index in h.failed:
            self.assertEqual(h.on_disk(index), bytes(h.layout.piece_size(index)))


# -- uploading ---------------------------------------------------------------------------


class UploadTests(SynchronousTestCase):
    """Serving requests from the piece cache, in order, under backpressure."""

    def setUp(self) -> None:
        self.h = Harness(self, have=range(5), config=small(max_send_buffer=64 * 1024))
        self.h.swarm.start()

    def leecher(self, **options: Any) -> FakePeerLink:
        link = self.h.connect(**options)
        link.has(Bitfield(5))
        link.want()
        return link

    def request(self, link: FakePeerLink, *keys: tuple[int, int, int]) -> None:
        link.deliver(b"".join(link.remote.request(*key) for key in keys))

    def leecher_with_manual_pool(self) -> tuple[ManualPool, FakePeerLink]:
        """A fresh swarm whose disk reads wait for the test, and one leecher."""
        pool = ManualPool()
        h = Harness(self, have=range(5), pool=pool)
        h.swarm.start()
        link = h.connect()
        link.has(Bitfield(5))
        link.want()
        return pool, link

    def test_served_from_cache_one_read_per_piece(self) -> None:
        """Blocks come from one whole-piece read each, and arrive intact."""
        link = self.leecher()
        self.assertEqual(len(link.of(PeerUnchoked)), 1)  # a free slot: unchoked at once
        keys = [(0, 0, K16), (0, K16, K16), (1, 0, K16), (1, K16, K16), (0, 0, 100)]
        self.request(link, *keys)
        self.assertEqual(self.h.reads, [0, 1])
        blocks = link.of(BlockReceived)
        self.assertEqual([(b.piece_index, b.begin, len(b.block)) for b in blocks], keys)
        for b in blocks:
            start = b.piece_index * PIECE + b.begin
            self.assertEqual(b.block, self.h.data[start : start + len(b.block)])
        self.assertEqual(self.h.swarm.uploaded, 4 * K16 + 100)
        self.assertEqual(self.h.swarm.peers()[0].uploaded, 4 * K16 + 100)

    def test_reads_answered_at_once_do_not_recurse(self) -> None:
        """With reads from the page cache answered at once, a peer asking for
        a block of each of many pieces is served them all, in order, without
        the stack growing per piece (it did, past Python's limit)."""
        count = 400
        h = Harness(self, pieces=count, have=range(count), last=PIECE,
                    config=SwarmConfig(upload_cache_bytes=4 * PIECE))
        h.store.cached_reads = True
        h.swarm.start()
        link = h.connect()
        link.has(Bitfield(count))
        link.want()
        keys = [(index, K16, K16) for index in range(count)]
        self.request(link, *keys)
        blocks = link.of(BlockReceived)
        self.assertEqual([(b.piece_index, b.begin, len(b.block)) for b in blocks], keys)
        if h.reads:  # no RWF_NOWAIT here: read in the (synchronous) pool
            self.assertEqual(h.reads, list(range(count)))

    def test_one_read_for_many_peers(self) -> None:
        """Two peers asking for the same piece while it is read cost one read."""
        pool = ManualPool()
        h = Harness(self, have=range(5), pool=pool)
        h.swarm.start()
        links = []
        for _ in range(2):
            link = h.connect()
            link.has(Bitfield(5))
            link.want()
            link.deliver(link.remote.request(3, 0, K16))
            links.append(link)
        self.assertEqual(len(pool.queue), 1)
        pool.run_one()
        self.assertEqual(h.reads, [3])
        self.assertEqual([len(link.of(BlockReceived)) for link in links], [1, 1])

    def test_blocks_batched_per_read(self) -> None:
        """The blocks a serve can send go out in one send_blocks: here one
        batch per piece read, in order."""
        pool, link = self.leecher_with_manual_pool()
        keys = [(0, 0, K16), (0, K16, K16), (1, 0, K16), (1, K16, K16)]
        self.request(link, *keys)
        while pool.queue:
            pool.run_one()
        blocks = link.of(BlockReceived)
        self.assertEqual([(b.piece_index, b.begin, len(b.block)) for b in blocks], keys)
        self.assertEqual((link.blocks_sent, link.batches), (4, 2))

    def test_requests_of_one_batch_served_in_one_write(self) -> None:
        """REQUESTs arriving together are answered together: one send_blocks."""
        link = self.leecher()
        self.request(link, (0, 0, K16))  # reads piece 0 into the cache
        before = (link.blocks_sent, link.batches)
        self.request(link, (0, K16, K16), (0, 0, 100), (0, 200, 300))
        self.assertEqual((link.blocks_sent - before[0], link.batches - before[1]), (3, 1))

    def test_reject_between_blocks_keeps_order(self) -> None:
        """A REJECT for a piece we lack goes out after the blocks before it
        and before those after it."""
        h = Harness(self, have=range(4))
        h.swarm.start()
        link = h.connect()
        link.has(Bitfield(5))
        link.want()
        link.decode = False  # the remote never asked for piece 4 itself
        mark = len(link.wire)
        link.deliver(b"".join(encode_request(*key) for key in
                              [(0, 0, K16), (4, 0, K16), (0, K16, K16)]))
        sent = WireDecoder(expect_handshake=False).feed(bytes(link.wire[mark:]))
        got = [(type(m).__name__, m.piece_index, m.begin) for m in sent]
        self.assertEqual(got, [("Piece", 0, 0), ("Reject", 4, 0), ("Piece", 0, K16)])

    def test_cancelled_not_served(self) -> None:
        """A request cancelled while its piece is read is not sent."""
        pool, link = self.leecher_with_manual_pool()
        self.request(link, (1, 0, K16), (1, K16, K16))
        link.deliver(link.remote.cancel(1, 0, K16))
        pool.run_one()
        self.assertEqual([(b.piece_index, b.begin) for b in link.of(BlockReceived)], [(1, K16)])

    def test_choked_requests_ignored(self) -> None:
        """Requests from a peer we choke are not served (REJECTed if it is fast)."""
        h = Harness(self, have=range(5), config=small(unchoke_slots=0))
        h.swarm.start()
        plain = h.connect(fast=False)
        plain.decode = False
        fast = h.connect()
        fast.decode = False
        for link in (plain, fast):
            link.deliver(link.remote.send_bitfield(Bitfield(5)) + link.remote.interested())
            sent = len(link.wire)
            link.deliver(encode_request(0, 0, K16))
            if link is plain:
                self.assertEqual(len(link.wire), sent)
            else:
                self.assertEqual(bytes(link.wire[sent:]), encode_reject(0, 0, K16))
        self.assertEqual(h.reads, [])
        self.assertEqual(h.swarm.uploaded, 0)

    def test_missing_piece(self) -> None:
        """A request for a piece we lack is REJECTed (fast) or closes the link."""
        h = Harness(self, have=[0])
        h.swarm.start()
        fast = h.connect()
        fast.has(Bitfield(5))
        fast.want()
        fast.decode = False
        sent = len(fast.wire)
        fast.deliver(encode_request(3, 0, K16))
        self.assertEqual(bytes(fast.wire[sent:]), encode_reject(3, 0, K16))
        plain = h.connect(fast=False)
        plain.has(Bitfield(5))
        plain.want()
        plain.deliver(encode_request(3, 0, K16))
        self.assertEqual(plain.closed, "requested piece 3, which we do not have")
        self.assertEqual(h.reads, [])

    def no_polling(self) -> None:
        """No timer of the swarm's is due sooner than its coarse tick."""
        now, tick = self.h.clock.seconds(), self.h.swarm.config.tick_interval
        soon = [c for c in self.h.clock.getDelayedCalls() if c.getTime() - now < tick]
        self.assertEqual(soon, [])

    def test_backpressure(self) -> None:
        """Nothing is sent past max_send_buffer, and no timer polls for the link to drain."""
        link = self.leecher()
        link.pending_write_bytes = 10 * 1024 * 1024
        self.request(link, (0, 0, K16), (0, K16, K16))
        self.assertEqual(link.of(BlockReceived), [])
        self.no_polling()
        self.h.clock.advance(0.5)
        self.assertEqual(link.of(BlockReceived), [])

    def test_batch_over_the_mark_handed_over_first(self) -> None:
        """Blocks gathered past max_send_buffer go to the link, and serving
        goes on if the link took them: a peer that reads is never held back."""
        link = self.leecher()
        keys = [(i, begin, K16) for i in range(4) for begin in (0, K16)]  # 128 KiB
        self.request(link, *keys)  # read and cached: one write per piece
        batches = link.batches
        self.request(link, *keys)  # from the cache: 4 blocks reach the mark
        self.assertEqual(len(link.of(BlockReceived)), 16)
        self.assertEqual(link.batches - batches, 2)
        self.assertEqual(self.h.swarm._uploader._stalled, set())

    def test_tick_serves_a_silent_link(self) -> None:
        """A link that drains without calling peer_writable is served at the next tick."""
        link = self.leecher()
        link.pending_write_bytes = 10 * 1024 * 1024
        self.request(link, (0, 0, K16), (0, K16, K16))
        link.pending_write_bytes = 0
        self.h.clock.advance(self.h.swarm.config.tick_interval)
        self.assertEqual(len(link.of(BlockReceived)), 2)

    def test_drained_transport_serves(self) -> None:
        """A PeerProtocol whose transport is full holds its peer back with no
        timer polling; when the transport drains, the waiting blocks go out."""
        h = self.h
        protocol = PeerProtocol(LinkGroup(h.clock), host=h.swarm, address=("10.0.0.99", 6881))
        transport = StringTransport()
        protocol.makeConnection(transport)
        self.addCleanup(protocol.connectionLost, Failure(ConnectionDone()))
        remote = PeerSession(
            h.meta.info_hash, peer_id(99), h.layout.piece_count, False,
            piece_length_of=h.layout.piece_size,
        )
        remote.receive_data(transport.value())  # our handshake
        transport.clear()
        protocol.dataReceived(
            remote.send_handshake() + remote.send_bitfield(Bitfield(5)) + remote.interested()
        )
        remote.receive_data(transport.value())
        self.assertFalse(remote.peer_choking)
        transport.clear()
        protocol.pauseProducing()  # as the transport does when its buffer is full
        keys = [(i, begin, K16) for i in range(4) for begin in (0, K16)]
        protocol.dataReceived(b"".join(remote.request(*key) for key in keys))
        self.assertEqual(transport.value(), b"")
        self.no_polling()
        protocol.resumeProducing()  # as the transport does once it has drained
        blocks = [e for e in remote.receive_data(transport.value()) if type(e) is BlockReceived]
        self.assertEqual([(b.piece_index, b.begin, len(b.block)) for b in blocks], keys)

    def test_drain_notification(self) -> None:
        """peer_writable serves a stalled peer at once."""
        link = self.leecher()
        link.pending_write_bytes = 10 * 1024 * 1024
        self.request(link, (0, 0, K16))
        link.pending_write_bytes = 0
        self.h.swarm.peer_writable(link)
        self.assertEqual(len(link.of(BlockReceived)), 1)

    def test_peer_that_never_reads(self) -> None:
        """A peer that reads nothing is sent about max_send_buffer, then nothing more."""
        link = self.leecher()
        link.reading = False
        keys = [(i, begin, K16) for i in range(4) for begin in (0, K16)]
        self.request(link, *keys)
        self.assertEqual(link.blocks_sent, 4)  # 64 KiB
        for _ in range(30):
            self.h.clock.advance(1)
        self.assertEqual(link.blocks_sent, 4)
        link.drain()
        self.h.clock.advance(1)
        self.assertEqual(link.blocks_sent, 8)
        self.assertEqual(len(link.of(BlockReceived)), 8)

    def test_stop_while_stalled(self) -> None:
        """stop() with a peer held back by backpressure leaves no timer behind."""
        link = self.leecher()
        link.reading = False
        self.request(link, *[(i, 0, K16) for i in range(5)])
        self.assertEqual(len(self.h.swarm._uploader._stalled), 1)
        self.h.swarm.stop()
        self.assertEqual(self.h.clock.getDelayedCalls(), [])
        self.assertEqual(self.h.swarm._uploader._stalled, set())

    def test_fresh_piece_served_without_read(self) -> None:
        """A piece we just downloaded is served from memory."""
        h = Harness(self)
        h.swarm.start()
        seed = h.seed()
        seed.serve(h.data)
        link = h.connect()
        link.has(Bitfield(5))
        link.want()
        link.deliver(link.remote.request(4, 0, K16))
        self.assertEqual(len(link.of(BlockReceived)), 1)
        self.assertEqual(h.reads, [])

    def test_read_failure(self) -> None:
        """A piece that cannot be read is REJECTed and reported."""
        h = Harness(self, have=[0])
        h.completion.passed(1)  # claimed, but not on disk
        h.swarm.start()
        link = h.connect()
        link.has(Bitfield(5))
        link.want()
        link.deliver(link.remote.request(1, 0, K16))
        self.assertEqual(link.of(BlockReceived), [])
        self.assertEqual(list(link.remote.outstanding_requests), [])
        self.assertIn(("disk_error", 1, MissingDataError), h.observer.seen)


# -- choking ------------------------------------------------------------------------------


class ChokeTests(SynchronousTestCase):
    """The rechoke: tit-for-tat and the optimistic unchoke."""

    def setUp(self) -> None:
        config = small(min_queue_depth=16, block_timeout=1000.0, snub_timeout=1000.0)
        self.h = Harness(self, pieces=60, have=[0], config=config)
        self.h.swarm.start()
        self.links = []
        for _ in range(6):
            link = self.h.connect()
            link.has(Bitfield.from_indexes(range(1, 60), 60))
            link.want()
            link.unchoke_us()
            self.links.append(link)

    def unchoked(self) -> set[int]:
        return {i for i, link in enumerate(self.links) if not link.remote.peer_choking}

    def optimistic(self) -> int:
        by_address = {info.address: info.flags for info in self.h.swarm.peers()}
        (one,) = [i for i, link in enumerate(self.links) if "O" in by_address[link.address]]
        return one

    def test_rechoke_prefers_best_uploaders(self) -> None:
        """The rechoke unchokes the three best uploaders to us plus an optimistic one."""
        self.assertEqual(self.unchoked(), {0, 1, 2, 3})  # free slots, at once
        for i, link in enumerate(self.links):
            link.serve(self.h.data, count=2 * i)
        self.h.clock.advance(10)
        optimistic = self.optimistic()
        self.assertIn(optimistic, {4, 5})  # drawn among the peers we were choking
        best = [i for i in (5, 4, 3, 2, 1, 0) if i != optimistic][:3]
        self.assertEqual(self.unchoked(), {optimistic, *best})
        flags = {info.address: info.flags for info in self.h.swarm.peers()}
        for i in best:
            self.assertEqual(flags[self.links[i].address], "DU")

    def test_unchoked_at_connect_while_slots_are_free(self) -> None:
        """A peer that connects while a slot is free is unchoked at once, in the
        same write as our bitfield, before it says it is interested; with the
        slots taken, the next one is not."""
        h = Harness(self, have=range(5), config=small(unchoke_slots=2))
        h.swarm.start()
        first, second, third = h.connect(), h.connect(), h.connect()
        self.assertEqual([len(link.of(PeerUnchoked)) for link in (first, second, third)],
                         [1, 1, 0])
        self.assertEqual(first.sends, 1)

    def test_interest_takes_a_slot_from_an_idle_peer(self) -> None:
        """With every slot held by peers that are not interested, a peer that
        becomes interested gets a slot at once and one idle peer is choked;
        a rechoke leaves idle peers their slots only while they are spare."""
        h = Harness(self, have=range(5), config=small(unchoke_slots=2))
        h.swarm.start()
        idle = [h.connect(), h.connect()]
        late = h.connect()
        late.has(Bitfield(5))
        late.want()
        self.assertEqual(len(late.of(PeerUnchoked)), 1)
        self.assertEqual(sum(len(link.of(PeerChoked)) for link in idle), 1)
        h.clock.advance(10)  # a rechoke: the interested peer and one idle one keep theirs
        self.assertFalse(late.remote.peer_choking)
        self.assertEqual(sum(not link.remote.peer_choking for link in idle), 1)

    def test_optimistic_rotation(self) -> None:
        """The optimistic unchoke lasts optimistic_interval (30 s), then changes."""
        for i, link in enumerate(self.links):
            link.serve(self.h.data, count=2 * i)
        self.h.clock.advance(10)
        first = self.optimistic()
        self.h.clock.advance(10)
        self.assertEqual(self.optimistic(), first)
        self.h.clock.advance(10)
        self.assertEqual(self.optimistic(), first)
        self.h.clock.advance(10)
        self.assertNotEqual(self.optimistic(), first)
        self.assertIn(self.optimistic(), self.unchoked())
        self.assertEqual(len(self.unchoked()), 4)

    def test_lost_peer_frees_slot(self) -> None:
        """When an unchoked peer leaves, its slot goes to another at once."""
        self.links[0].close("gone")
        self.assertEqual(len(self.unchoked() - {0}), 4)


class PauseTests(SynchronousTestCase):
    """pause() keeps connections but exchanges nothing; resume() restarts."""

    def setUp(self) -> None:
        self.h = Harness(self, pieces=20, have=[0], config=small())
        self.h.swarm.start()
        self.seed = self.h.seed()
        self.leecher = self.h.connect()
        self.leecher.has(Bitfield(20))
        self.leecher.want()

    def test_pause(self) -> None:
        """Paused: everyone choked, our requests cancelled, interest withdrawn."""
        self.assertFalse(self.leecher.remote.peer_choking)
        self.assertEqual(len(self.seed.asked), 4)
        self.h.swarm.pause()
        self.assertTrue(self.h.swarm.paused)
        self.assertEqual(self.seed.asked, [])
        self.assertEqual(len(self.seed.of(RequestCancelled)), 4)
        self.assertEqual(len(self.seed.of(PeerNotInterested)), 1)
        self.assertEqual(len(self.leecher.of(PeerChoked)), 1)
        self.h.clock.advance(60)
        self.assertEqual(self.seed.asked, [])
        self.assertTrue(self.leecher.remote.peer_choking)
        # New peers are still accepted, but not asked for anything.
        other = self.h.seed()
        self.assertEqual(other.asked, [])
        self.assertEqual(other.of(PeerInterested), [])

    def test_resume(self) -> None:
        """Resumed: interest, requests and unchokes come back."""
        self.h.swarm.pause()
        self.h.swarm.resume()
        self.assertFalse(self.h.swarm.paused)
        self.assertEqual(len(self.seed.asked), 4)
        self.assertEqual(len(self.seed.of(PeerInterested)), 2)
        self.assertFalse(self.leecher.remote.peer_choking)
        self.seed.serve(self.h.data)
        self.assertTrue(self.h.have.complete)


class LifeCycleTests(SynchronousTestCase):
    """Construction, start and stop."""

    def test_constructor_has_no_side_effects(self) -> None:
        """Constructing a swarm schedules nothing and dials nobody."""
        h = Harness(self)
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.assertEqual(h.dialer.calls, [])
        self.assertFalse(h.swarm.running)

    def test_start_twice(self) -> None:
        """start() may only be called once."""
        h = Harness(self)
        h.swarm.start()
        self.assertRaises(Exception, h.swarm.start)

    def test_stop(self) -> None:
        """stop() cancels every timer and closes every link."""
        h = Harness(self, have=[0], config=small())
        h.swarm.start()
        seed = h.seed()
        leecher = h.connect()
        self.assertNotEqual(h.clock.getDelayedCalls(), [])
        fired: list[object] = []
        h.swarm.stop().addCallback(fired.append)
        self.assertEqual(fired, [None])
        self.assertEqual(h.clock.getDelayedCalls(), [])
        self.assertEqual(seed.closed, "the torrent is stopping")
        self.assertEqual(leecher.closed, "the torrent is stopping")
        self.assertEqual(h.swarm.peers(), [])

    def test_idle_swarm_schedules_nothing(self) -> None:
        """A started swarm with no peer and no address leaves the clock empty."""
        h = Harness(self)
        h.swarm.start()
        self.assertEqual(h.clock.getDelayedCalls(), [])
        h.clock.advance(100)
        self.assertEqual(h.dialer.calls, [])

    def test_timers_wake_with_a_peer_and_sleep_after(self) -> None:
        """A peer wakes the timers on the phase of the swarm's start; once
        the last peer is gone they sleep again after the rates' history."""
        h = Harness(self, config=small())
        h.swarm.start()
        h.clock.advance(0.5)
        link = h.connect()
        times = sorted(c.getTime() for c in h.clock.getDelayedCalls())
        cfg = h.swarm.config
        self.assertEqual(times, sorted([cfg.tick_interval, cfg.request_check_interval,
                                        cfg.rechoke_interval, cfg.connect_interval]))
        link.close()
        link.lost()
        h.clock.pump([1.0] * 40)
        # Only the top-up is left: the address book still holds the peer's address.
        (top_up,) = h.clock.getDelayedCalls()
        self.assertEqual(top_up.getTime() % cfg.connect_interval, 0)

    def test_peer_parts_made_with_the_first_peer(self) -> None:
        """With its metadata but no peer, a swarm makes no downloader or
        uploader (a big session's idle torrents); the first peer makes them."""
        h = Harness(self, have=[0])
        h.swarm.start()
        self.assertIsNone(h.swarm._downloader)
        self.assertTrue(h.swarm.has_metadata)
        leecher = h.connect()
        self.assertIsNotNone(h.swarm._downloader)
        (bitfield,) = leecher.of(PeerBitfield)
        self.assertEqual(list(bitfield.have), [0])

    def test_addresses_wake_the_top_up(self) -> None:
        """Addresses given to an idle swarm are dialled now and retried on the top-up."""
        h = Harness(self)
        h.swarm.start()
        h.clock.advance(1.0)
        h.swarm.add_peers([("10.1.0.1", 6881)])
        self.assertEqual(len(h.dialer.calls), 1)
        (call,) = h.clock.getDelayedCalls()
        self.assertEqual(call.getTime(), h.swarm.config.connect_interval)

    def test_stop_waits_for_disk(self) -> None:
        """stop() fires only once the hash-and-write job in flight is done."""
        pool = ManualPool()
        h = Harness(self, pieces=2, pool=pool, config=small())
        h.swarm.start()
        seed = h.seed()
        seed.serve(h.data, count=2)
        self.assertEqual(len(pool.queue), 1)
        fired: list[object] = []
        d: Deferred[None] = h.swarm.stop()
        d.addCallback(fired.append)
        self.assertEqual(fired, [])
        pool.run_one()
        self.assertEqual(fired, [None])
        self.assertEqual(h.passed, [0])
        self.assertEqual(h.on_disk(0), h.piece(0))

    def test_verify_jobs_batch_while_busy(self) -> None:
        """Two hash-and-write jobs run at most; pieces that finish meanwhile
        leave together in the next, and each passes on its own."""
        pool = ManualPool()
        h = Harness(self, pieces=5, pool=pool)
        h.swarm.start()
        seed = h.seed()
        seed.serve(h.data)
        self.assertEqual(len(pool.queue), 2)
        pool.run_one()
        self.assertEqual(len(pool.queue), 2)  # the other three, as one job
        pool.run_all()
        self.assertEqual(sorted(h.passed), [0, 1, 2, 3, 4])
        for index in range(5):
            self.assertEqual(h.on_disk(index), h.piece(index))


class BeforeWriteTests(SynchronousTestCase):
    """The before_write hook: a verified piece is written only after it."""

    def test_write_waits_for_the_hook(self) -> None:
        """The hash-and-write job is submitted once the hook's Deferred fires."""
        pool = ManualPool()
        gate: Deferred[None] = Deferred()
        calls: list[int] = []

        def before_write() -> Deferred[None] | None:
            calls.append(1)
            return gate if len(calls) == 1 else None

        h = Harness(self, pieces=2, pool=pool, config=small(), before_write=before_write)
        h.swarm.start()
        seed = h.seed()
        seed.serve(h.data, count=2)
        self.assertEqual(pool.queue, [])
        gate.callback(None)
        self.assertEqual(len(pool.queue), 1)
        pool.run_all()
        self.assertEqual(h.passed, [0])
        self.assertEqual(h.on_disk(0), h.piece(0))


class RobustnessTests(SynchronousTestCase):
    """Closing links, dead sessions and priorities."""

    def test_closing_peer_gives_blocks_back_at_once(self) -> None:
        """A banned peer closing slowly gives its blocks back at once and hears nothing more."""
        h = Harness(self, pieces=8, config=small())
        h.swarm.start()
        bad = h.seed()
        bad.sync_close = False
        good = h.seed()
        bad.serve(h.data, count=2, corrupt=range(8))  # a whole piece: banned
        self.assertIsNotNone(bad.closed)
        self.assertEqual(len(h.failed), 1)
        self.assertTrue(bad.asked)  # what it still owes us is asked of good instead:
        good.serve(h.data)  # (a write to bad would fail the FakePeerLink's assertion)
        self.assertEqual(sorted(h.passed), list(range(8)))
        bad.lost()
        self.assertEqual(h.swarm.peers()[0].address, good.address)

    def test_dead_session_left_alone(self) -> None:
        """A peer whose session died is not written to while the adapter closes it."""
        h = Harness(self, pieces=6, have=[0], config=small())
        h.swarm.start()
        broken = h.seed()
        self.assertRaises(Exception, broken.session.receive_data, b"\0\0\0\x05\x04\xff\xff\xff\xff")
        broken.decode = False
        before = len(broken.wire)
        good = h.seed()
        good.serve(h.data)
        h.clock.advance(30)
        self.assertTrue(h.have.complete)
        self.assertEqual(len(broken.wire), before)

    def test_priority_zero_not_requested(self) -> None:
        """Pieces of priority 0 are never requested."""
        h = Harness(self, pieces=6, config=small())
        h.set_file_priorities([1, 0])  # a.bin: pieces 0 and 1 (1 it shares with b.bin)
        h.swarm.start()
        seed = h.seed()
        seed.serve(h.data)
        self.assertEqual(sorted(h.passed), [0, 1])
        self.assertEqual(len(seed.of(PeerNotInterested)), 1)

    def test_read_ahead(self) -> None:
        """A cache miss also reads the next pieces the peer asked for."""
        pool = ManualPool()
        h = Harness(self, pieces=6, have=range(6), pool=pool,
                    config=small(read_ahead_pieces=2))
        h.swarm.start()
        link = h.connect()
        link.has(Bitfield(6))
        link.want()
        keys = [(4, 0, K16), (1, 0, K16), (4, K16, K16), (2, 0, K16), (3, 0, K16)]
        link.deliver(b"".join(link.remote.request(*key) for key in keys))
        self.assertEqual(len(pool.queue), 3)
        while pool.queue:
            pool.run_one()
        self.assertEqual(h.reads, [4, 1, 2, 3])
        self.assertEqual([(b.piece_index, b.begin) for b in link.of(BlockReceived)],
                         [(4, 0), (1, 0), (4, K16), (2, 0), (3, 0)])
