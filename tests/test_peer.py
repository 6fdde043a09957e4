"""Tests for txbittorrent.core.wire.session: two PeerSessions joined back to back.

``A`` is the outgoing side and downloads; ``B`` is the incoming side and has
every piece.  What one side's methods return is fed to the other's
``receive_data``; violations are scripted as raw bytes from ``core.wire``.
"""

from __future__ import annotations

from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import decode
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.wire.events import (
    BlockReceived,
    BlockRequested,
    DHTPort,
    ExtensionHandshake,
    ExtensionMessage,
    HandshakeReceived,
    PeerAllowedFast,
    PeerBitfield,
    PeerChoked,
    PeerEvent,
    PeerHave,
    PeerInterested,
    PeerNotInterested,
    PeerUnchoked,
    Reply,
    RequestCancelled,
    RequestRejected,
    Suggested,
)
from txbittorrent.core.layout import Layout
from txbittorrent.core.wire.session import CANCELLED_MEMORY, PeerSession
from txbittorrent.core.wire.codec import (
    AllowedFast,
    BitfieldMsg,
    Cancel,
    Choke,
    Extended,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    Piece,
    Port,
    Reject,
    Request,
    Suggest,
    UnknownMessage,
    encode,
    encode_handshake,
    encode_reject,
    make_reserved,
)
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError

INFO_HASH = b"\x11" * 20
ID_A = b"-TX0001-aaaaaaaaaaaa"
ID_B = b"-TX0001-bbbbbbbbbbbb"
K16 = 16 * 1024

# Four pieces of 32 KiB, the last one 1000 bytes.
LAYOUT = Layout([3 * 32 * 1024 + 1000], 32 * 1024)
PIECES = LAYOUT.piece_count


def session(peer_id: bytes, outgoing: bool, **options: Any) -> PeerSession:
    """A session for the test torrent; fast/extended/dht options set the reserved bits."""
    bits = {k: options.pop(k) for k in ("fast", "extended", "dht") if k in options}
    return PeerSession(
        INFO_HASH,
        peer_id,
        PIECES,
        outgoing,
        piece_length_of=LAYOUT.piece_size,
        reserved=make_reserved(**bits),
        **options,
    )


class Pair:
    """A and B with handshakes exchanged; ``a_events``/``b_events`` hold what
    each saw of the other's handshake."""

    def __init__(self, a: dict[str, Any] | None = None, b: dict[str, Any] | None = None) -> None:
        self.a = session(ID_A, True, **(a or {}))
        self.b = session(ID_B, False, **(b or {}))
        self.b_events = self.to_b(self.a.send_handshake())
        self.a_events = self.to_a(self.b.send_handshake())

    def to_a(self, data: bytes) -> list[PeerEvent]:
        return self.a.receive_data(data)

    def to_b(self, data: bytes) -> list[PeerEvent]:
        return self.b.receive_data(data)

    def bitfields(self) -> None:
        """A has nothing, B has everything; both sides learn it."""
        self.to_b(self.a.send_bitfield(Bitfield(PIECES)))
        self.to_a(self.b.send_bitfield(Bitfield.full(PIECES)))

    def unchoked(self) -> Pair:
        """Bitfields exchanged, A interested in B and unchoked by it."""
        self.bitfields()
        self.to_b(self.a.interested())
        self.to_a(self.b.unchoke())
        return self


def ready(**options: Any) -> Pair:
    """A pair with both sides' options the same, bitfields exchanged, A unchoked."""
    return Pair(dict(options), dict(options)).unchoked()


class RequestManyTests(SynchronousTestCase):
    """request_many: the checks of request for each block, as one write, all or nothing."""

    def test_same_bytes_as_request(self) -> None:
        """request_many writes what request would for each block, and tracks them all."""
        blocks = [(0, 0, K16), (0, K16, K16), (1, 0, K16)]
        one = ready()
        many = ready()
        expected = b"".join(one.a.request(*b) for b in blocks)
        self.assertEqual(many.a.request_many(blocks), expected)
        self.assertEqual(list(many.a.outstanding_requests), blocks)
        self.assertEqual(many.a.request_many([]), b"")

    def test_all_or_nothing(self) -> None:
        """One refused block (a duplicate, past the piece, too long) leaves none requested."""
        pair = ready()
        pair.a.request(2, 0, K16)
        for bad in ([(0, 0, K16), (2, 0, K16)],        # already requested
                    [(0, 0, K16), (1, 10**9, K16)],    # past the piece's end
                    [(0, 0, K16), (1, 0, 10**6)],      # longer than max_block_length
                    [(0, 0, K16), (PIECES, 0, K16)]):  # no such piece
            self.assertRaises((LocalProtocolError, ValueError, IndexError),
                              pair.a.request_many, bad)
            self.assertEqual(list(pair.a.outstanding_requests), [(2, 0, K16)])

    def test_choked_refused(self) -> None:
        """While choked (and not allowed fast) nothing is requested."""
        pair = Pair()
        pair.bitfields()
        self.assertRaises(LocalProtocolError, pair.a.request_many, [(0, 0, K16)])
        self.assertEqual(list(pair.a.outstanding_requests), [])


class HandshakeTests(SynchronousTestCase):
    """Handshakes in both directions and what they negotiate."""

    def test_fast_and_extended(self) -> None:
        """With both bits on each side, each sees the other's id and both extensions."""
        pair = Pair()
        self.assertEqual(pair.b_events, [HandshakeReceived(INFO_HASH, ID_A, True, True, False)])
        self.assertEqual(pair.a_events, [HandshakeReceived(INFO_HASH, ID_B, True, True, False)])
        self.assertEqual((pair.a.fast, pair.a.extended, pair.b.fast, pair.b.extended), (True,) * 4)
        self.assertEqual((pair.a.peer_id, pair.b.peer_id), (ID_B, ID_A))
        self.assertEqual(pair.b.peer_reserved, make_reserved())

    def test_plain(self) -> None:
        """Without the bits, neither extension is on."""
        pair = Pair(dict(fast=False, extended=False), dict(fast=False, extended=False))
        self.assertEqual(pair.a_events, [HandshakeReceived(INFO_HASH, ID_B, False, False, False)])

    def test_one_sided(self) -> None:
        """An extension is on only if both sides set its bit."""
        pair = Pair(dict(fast=False, dht=True), dict(extended=False, dht=True))
        self.assertEqual(pair.a_events, [HandshakeReceived(INFO_HASH, ID_B, False, False, True)])
        self.assertEqual(pair.b_events, [HandshakeReceived(INFO_HASH, ID_A, False, False, True)])

    def test_initial_state(self) -> None:
        """Both sides start choking and not interested (BEP 3)."""
        a = Pair().a
        self.assertEqual(
            (a.am_choking, a.am_interested, a.peer_choking, a.peer_interested),
            (True, False, True, False),
        )
        self.assertEqual(a.peer_have.count, 0)

    def test_wrong_info_hash_early(self) -> None:
        """A wrong info hash is refused after 48 bytes, before the peer id."""
        theirs = encode_handshake(b"\x22" * 20, ID_B, make_reserved())
        a = session(ID_A, True)
        a.send_handshake()
        with self.assertRaises(RemoteProtocolError) as caught:
            a.receive_data(theirs[:48])
        self.assertIn("info hash " + "22" * 20, str(caught.exception))

    def test_ourselves(self) -> None:
        """A handshake carrying our own peer id is refused."""
        a = session(ID_A, True)
        self.assertRaises(RemoteProtocolError, a.receive_data, a.send_handshake())

    def test_not_bittorrent(self) -> None:
        """Bytes that are not a handshake are refused."""
        self.assertRaises(RemoteProtocolError, session(ID_B, False).receive_data, b"\x00" * 68)

    def test_handshake_once(self) -> None:
        """Our handshake can be sent only once."""
        a = session(ID_A, True)
        a.send_handshake()
        self.assertRaises(LocalProtocolError, a.send_handshake)

    def test_messages_need_handshakes(self) -> None:
        """No message can be sent before both handshakes are exchanged."""
        a = session(ID_A, True)
        self.assertRaises(LocalProtocolError, a.interested)
        a.send_handshake()
        self.assertRaises(LocalProtocolError, a.keep_alive)

    def test_dead_after_violation(self) -> None:
        """After a violation, every call raises LocalProtocolError."""
        pair = Pair()
        self.assertRaises(RemoteProtocolError, pair.to_a, encode(Have(PIECES)))
        self.assertTrue(pair.a.dead)
        self.assertRaises(LocalProtocolError, pair.to_a, encode(KeepAlive()))
        self.assertRaises(LocalProtocolError, pair.a.keep_alive)
        self.assertRaises(LocalProtocolError, pair.a.send_bitfield, Bitfield(PIECES))

    def test_constructor_checks(self) -> None:
        """Wrong-sized ids and bad limits are refused."""
        self.assertRaises(ValueError, session, b"short", True)
        self.assertRaises(ValueError, session, ID_A, True, max_peer_requests=0)
        self.assertRaises(ValueError, session, ID_A, True, max_block_length=256 * 1024)


class BitfieldTests(SynchronousTestCase):
    """BITFIELD, HAVE_ALL, HAVE_NONE and HAVE."""

    def test_bitfield(self) -> None:
        """Without fast, a bitfield arrives as PeerBitfield and becomes peer_have."""
        pair = Pair(dict(fast=False), dict(fast=False))
        have = Bitfield.from_indexes([0, 2], PIECES)
        events = pair.to_b(pair.a.send_bitfield(have))
        self.assertEqual(events, [PeerBitfield(have)])
        self.assertEqual(pair.b.peer_have, have)

    def test_have_all(self) -> None:
        """With fast, a complete bitfield goes as HAVE_ALL and arrives full."""
        pair = Pair()
        data = pair.b.send_bitfield(Bitfield.full(PIECES))
        self.assertEqual(data, encode(HaveAll()))
        self.assertEqual(pair.to_a(data), [PeerBitfield(Bitfield.full(PIECES))])

    def test_have_none(self) -> None:
        """With fast, an empty bitfield goes as HAVE_NONE; without, as nothing."""
        pair = Pair()
        data = pair.a.send_bitfield(Bitfield(PIECES))
        self.assertEqual(data, encode(HaveNone()))
        self.assertEqual(pair.to_b(data), [PeerBitfield(Bitfield(PIECES))])
        plain = Pair(dict(fast=False), dict(fast=False))
        self.assertEqual(plain.a.send_bitfield(Bitfield(PIECES)), b"")

    def test_event_is_a_copy(self) -> None:
        """Later HAVEs change peer_have, not the PeerBitfield event's set."""
        pair = Pair()
        (event,) = pair.to_b(pair.a.send_bitfield(Bitfield(PIECES)))
        self.assertEqual(pair.to_b(pair.a.send_have(1)), [PeerHave(1)])
        assert isinstance(event, PeerBitfield)
        self.assertEqual((event.have.count, pair.b.peer_have.count), (0, 1))

    def test_have(self) -> None:
        """A HAVE is reported once; a repeat changes nothing."""
        pair = Pair(dict(fast=False), dict(fast=False))
        self.assertEqual(pair.to_b(pair.a.send_have(3)), [PeerHave(3)])
        self.assertEqual(pair.to_b(pair.a.send_have(3)), [])
        self.assertEqual(list(pair.b.peer_have), [3])

    def test_send_bitfield_once_and_first(self) -> None:
        """Our bitfield goes once, before other messages; with fast it must go first."""
        pair = Pair(dict(fast=False), dict(fast=False))
        pair.a.interested()
        self.assertRaises(LocalProtocolError, pair.a.send_bitfield, Bitfield(PIECES))
        fast = Pair()
        self.assertRaises(LocalProtocolError, fast.a.interested)
        fast.a.send_bitfield(Bitfield(PIECES))
        self.assertRaises(LocalProtocolError, fast.a.send_bitfield, Bitfield(PIECES))
        self.assertRaises(ValueError, Pair().a.send_bitfield, Bitfield(PIECES + 1))

    def test_after_extension_handshake(self) -> None:
        """An extension handshake may come before the bitfield (libtorrent does that)."""
        pair = Pair()
        pair.to_b(pair.a.send_extension_handshake())
        pair.to_b(encode(KeepAlive()) + encode(Port(6881)))
        self.assertEqual(pair.to_b(encode(HaveAll())), [PeerBitfield(Bitfield.full(PIECES))])

    def test_late_bitfield_replaces(self) -> None:
        """A BITFIELD after other messages replaces the peer's set (aria2 sends
        HAVE_NONE, ALLOWED_FAST, INTERESTED, then a BITFIELD)."""
        pair = Pair()
        pair.to_b(encode(Have(0)))
        events = pair.to_b(encode(BitfieldMsg(b"\xc0")))
        self.assertEqual([type(e) for e in events], [PeerBitfield])
        self.assertEqual(list(pair.b.peer_have), [0, 1])

    def test_late_bitfield_still_checked(self) -> None:
        """A late BITFIELD with spare bits set is still a violation."""
        pair = Pair()
        pair.to_b(encode(Have(0)))
        self.assertRaises(RemoteProtocolError, pair.to_b, encode(BitfieldMsg(b"\xff")))

    def test_bitfield_twice(self) -> None:
        """A second BITFIELD (or HAVE_ALL after BITFIELD) is a violation."""
        pair = Pair()
        pair.to_b(encode(BitfieldMsg(b"\x80")))
        self.assertRaises(RemoteProtocolError, pair.to_b, encode(HaveAll()))

    def test_have_none_after_interested(self) -> None:
        """HAVE_NONE after another message is a violation."""
        pair = Pair()
        pair.to_b(encode(Interested()))
        self.assertRaises(RemoteProtocolError, pair.to_b, encode(HaveNone()))

    def test_wrong_length(self) -> None:
        """A bitfield of the wrong length is a violation."""
        pair = Pair()
        self.assertRaises(RemoteProtocolError, pair.to_b, encode(BitfieldMsg(b"\x80\x00")))

    def test_spare_bits(self) -> None:
        """A bitfield with spare bits set is a violation."""
        pair = Pair()
        with self.assertRaises(RemoteProtocolError) as caught:
            pair.to_b(encode(BitfieldMsg(b"\x88")))  # 1000_1000: bit 4 is past piece 3
        self.assertIn("spare bits", str(caught.exception))

    def test_have_all_without_fast(self) -> None:
        """HAVE_ALL or HAVE_NONE without the fast extension is a violation."""
        for message in (HaveAll(), HaveNone()):
            pair = Pair(dict(fast=False), dict(fast=False))
            self.assertRaises(RemoteProtocolError, pair.to_b, encode(message))

    def test_have_out_of_range(self) -> None:
        """A HAVE for a piece past the last is a violation."""
        pair = Pair()
        with self.assertRaises(RemoteProtocolError) as caught:
            pair.to_b(encode(Have(PIECES)))
        self.assertIn("HAVE for piece 4, but the torrent has 4 pieces", str(caught.exception))


class ChokeInterestTests(SynchronousTestCase):
    """Interest and choke transitions."""

    def test_interest(self) -> None:
        """INTERESTED and NOT_INTERESTED change peer_interested; repeats send nothing."""
        pair = Pair()
        pair.bitfields()
        self.assertEqual(pair.to_b(pair.a.interested()), [PeerInterested()])
        self.assertEqual(pair.a.interested(), b"")
        self.assertTrue(pair.a.am_interested and pair.b.peer_interested)
        self.assertEqual(pair.to_b(pair.a.not_interested()), [PeerNotInterested()])
        self.assertEqual(pair.a.not_interested(), b"")
        self.assertFalse(pair.b.peer_interested)

    def test_choke(self) -> None:
        """UNCHOKE and CHOKE change peer_choking; repeats send nothing."""
        pair = Pair()
        pair.bitfields()
        self.assertEqual(pair.to_a(pair.b.unchoke()), [PeerUnchoked()])
        self.assertEqual(pair.b.unchoke(), b"")
        self.assertEqual((pair.a.peer_choking, pair.b.am_choking), (False, False))
        self.assertEqual(pair.to_a(pair.b.choke()), [PeerChoked()])
        self.assertEqual(pair.b.choke(), b"")
        self.assertEqual((pair.a.peer_choking, pair.b.am_choking), (True, True))

    def test_repeated_messages(self) -> None:
        """A CHOKE or INTERESTED that changes nothing gives no event."""
        pair = Pair()
        self.assertEqual(pair.to_a(encode(Choke())), [])
        pair.to_b(encode(Interested()))
        self.assertEqual(pair.to_b(encode(Interested())), [])


class RequestTests(SynchronousTestCase):
    """Requests, blocks, choking, cancelling, rejecting."""

    def test_round_trip(self) -> None:
        """A request reaches B as BlockRequested; the block reaches A as BlockReceived."""
        pair = ready()
        self.assertEqual(pair.to_b(pair.a.request(1, K16, K16)), [BlockRequested(1, K16, K16)])
        self.assertEqual(list(pair.a.outstanding_requests), [(1, K16, K16)])
        self.assertEqual(list(pair.b.pending_peer_requests), [(1, K16, K16)])
        block = bytes(range(256)) * 64
        header = pair.b.send_piece_header(1, K16, K16)
        self.assertEqual(pair.to_a(header + block), [BlockReceived(1, K16, block)])
        self.assertEqual(list(pair.a.outstanding_requests), [])
        self.assertEqual(list(pair.b.pending_peer_requests), [])

    def test_pending_in_order(self) -> None:
        """pending_peer_requests lists the peer's requests oldest first."""
        pair = ready()
        keys = [(2, 0, K16), (0, K16, K16), (3, 0, 1000)]
        for key in keys:
            pair.to_b(pair.a.request(*key))
        self.assertEqual(list(pair.b.pending_peer_requests), keys)

    def test_request_rules(self) -> None:
        """We cannot request while choked, a piece the peer lacks, or the same block twice."""
        pair = Pair()
        pair.bitfields()
        self.assertFalse(pair.a.may_request(0))
        self.assertRaises(LocalProtocolError, pair.a.request, 0, 0, K16)
        pair.to_a(pair.b.unchoke())
        self.assertTrue(pair.a.may_request(0))
        pair.a.request(0, 0, K16)
        self.assertRaises(LocalProtocolError, pair.a.request, 0, 0, K16)
        self.assertRaises(LocalProtocolError, pair.b.request, 0, 0, K16)  # A has nothing

    def test_request_arguments(self) -> None:
        """Blocks of bad size or past the piece end are refused with ValueError."""
        a = ready().a
        self.assertRaises(ValueError, a.request, 0, 0, K16 + 1)
        self.assertRaises(ValueError, a.request, 0, 0, 0)
        self.assertRaises(ValueError, a.request, 3, 0, 1001)
        self.assertRaises(ValueError, a.request, PIECES, 0, K16)

    def test_non_fast_choke_drops_requests(self) -> None:
        """A non-fast peer's choke rejects every outstanding request implicitly."""
        pair = ready(fast=False)
        pair.to_b(pair.a.request(0, 0, K16))
        pair.to_b(pair.a.request(0, K16, K16))
        self.assertEqual(pair.b.choke(), encode(Choke()))
        self.assertEqual(list(pair.b.pending_peer_requests), [])
        events = pair.to_a(encode(Choke()))
        self.assertEqual(
            events, [PeerChoked(), RequestRejected(0, 0, K16), RequestRejected(0, K16, K16)]
        )
        self.assertEqual(list(pair.a.outstanding_requests), [])

    def test_non_fast_late_block_after_choke(self) -> None:
        """A block sent just before a non-fast choke is still accepted, silently."""
        pair = ready(fast=False)
        pair.to_b(pair.a.request(0, 0, 10))
        pair.to_a(encode(Choke()))
        self.assertEqual(pair.to_a(encode(Piece(0, 0, b"x" * 10))), [])

    def test_fast_choke_rejects(self) -> None:
        """Choking a fast peer sends CHOKE then a REJECT per pending request."""
        pair = ready()
        pair.to_b(pair.a.request(0, 0, K16))
        pair.to_b(pair.a.request(2, 0, K16))
        data = pair.b.choke()
        rejects = encode_reject(0, 0, K16) + encode_reject(2, 0, K16)
        self.assertEqual(data, encode(Choke()) + rejects)
        events = pair.to_a(data)
        self.assertEqual(
            events, [PeerChoked(), RequestRejected(0, 0, K16), RequestRejected(2, 0, K16)]
        )
        self.assertEqual(list(pair.a.outstanding_requests), [])

    def test_fast_choke_keeps_requests(self) -> None:
        """A fast peer's choke alone drops nothing: requests wait for REJECT or PIECE."""
        pair = ready()
        pair.to_b(pair.a.request(0, 0, K16))
        self.assertEqual(pair.to_a(encode(Choke())), [PeerChoked()])
        self.assertEqual(list(pair.a.outstanding_requests), [(0, 0, K16)])
        block = b"y" * K16
        self.assertEqual(pair.to_a(encode(Piece(0, 0, block))), [BlockReceived(0, 0, block)])

    def test_fast_choke_keeps_allowed_fast(self) -> None:
        """Choking a fast peer keeps its requests for allowed-fast pieces pending."""
        pair = ready()
        pair.to_a(pair.b.allowed_fast(1))
        pair.to_b(pair.a.request(1, 0, K16))
        pair.to_b(pair.a.request(0, 0, K16))
        self.assertEqual(pair.b.choke(), encode(Choke()) + encode_reject(0, 0, K16))
        self.assertEqual(list(pair.b.pending_peer_requests), [(1, 0, K16)])

    def test_allowed_fast_while_choked(self) -> None:
        """Allowed-fast pieces are requested and served while choked."""
        pair = Pair()
        pair.bitfields()
        self.assertEqual(pair.to_a(pair.b.allowed_fast(2)), [PeerAllowedFast(2)])
        self.assertEqual(pair.a.peer_allowed_fast, {2})
        self.assertTrue(pair.a.peer_choking and pair.a.may_request(2))
        self.assertFalse(pair.a.may_request(1))
        self.assertEqual(pair.to_b(pair.a.request(2, 0, K16)), [BlockRequested(2, 0, K16)])
        header = pair.b.send_piece_header(2, 0, K16)
        self.assertEqual(pair.to_a(header + b"z" * K16), [BlockReceived(2, 0, b"z" * K16)])

    def test_fast_request_while_choked_rejected(self) -> None:
        """A fast peer's request while we choke it is answered with a REJECT reply."""
        pair = Pair()
        pair.bitfields()
        events = pair.to_b(encode(Request(0, 0, K16)))
        self.assertEqual(events, [Reply(encode_reject(0, 0, K16))])
        self.assertEqual(list(pair.b.pending_peer_requests), [])

    def test_non_fast_request_while_choked_ignored(self) -> None:
        """A non-fast peer's request while we choke it is ignored (BEP 3)."""
        pair = Pair(dict(fast=False), dict(fast=False))
        pair.bitfields()
        self.assertEqual(pair.to_b(encode(Request(0, 0, K16))), [])
        self.assertEqual(list(pair.b.pending_peer_requests), [])

    def test_cancel_then_late_block(self) -> None:
        """A block for a request we cancelled is accepted silently."""
        pair = ready(fast=False)
        pair.to_b(pair.a.request(0, 0, 100))
        header = pair.b.send_piece_header(0, 0, 100)  # sent before the CANCEL arrives
        cancel = pair.a.cancel(0, 0, 100)
        self.assertEqual(list(pair.a.outstanding_requests), [])
        self.assertEqual(pair.to_b(cancel), [])  # no longer pending at B
        self.assertEqual(pair.to_a(header + b"q" * 100), [])
        self.assertRaises(RemoteProtocolError, pair.to_a, header + b"q" * 100)

    def test_cancel_pending(self) -> None:
        """A CANCEL withdraws the pending request; with fast, B answers with a REJECT."""
        pair = ready()
        pair.to_b(pair.a.request(0, 0, 100))
        events = pair.to_b(pair.a.cancel(0, 0, 100))
        self.assertEqual(events, [RequestCancelled(0, 0, 100), Reply(encode_reject(0, 0, 100))])
        self.assertEqual(list(pair.b.pending_peer_requests), [])
        assert isinstance(events[1], Reply)
        self.assertEqual(pair.to_a(events[1].data), [])
        self.assertRaises(LocalProtocolError, pair.b.send_piece_header, 0, 0, 100)

    def test_cancel_pending_non_fast(self) -> None:
        """Without fast, a CANCEL withdraws the request and nothing is answered."""
        pair = ready(fast=False)
        pair.to_b(pair.a.request(0, 0, 100))
        self.assertEqual(pair.to_b(pair.a.cancel(0, 0, 100)), [RequestCancelled(0, 0, 100)])

    def test_cancel_unknown(self) -> None:
        """We cannot cancel what is not outstanding; a peer's stray CANCEL is ignored."""
        pair = ready()
        self.assertRaises(LocalProtocolError, pair.a.cancel, 0, 0, 100)
        self.assertEqual(pair.to_b(encode(Cancel(0, 0, 100))), [])

    def test_cancelled_memory_bounded(self) -> None:
        """Only the last CANCELLED_MEMORY cancelled requests are remembered."""
        pair = ready()
        for begin in range(CANCELLED_MEMORY + 1):
            pair.a.request(0, begin, 1)
            pair.a.cancel(0, begin, 1)
        self.assertEqual(pair.to_a(encode(Piece(0, 1, b"x"))), [])
        self.assertRaises(RemoteProtocolError, pair.to_a, encode(Piece(0, 0, b"x")))

    def test_re_request_after_cancel(self) -> None:
        """A block requested again after a cancel is delivered once, its repeat dropped."""
        pair = ready()
        pair.a.request(0, 0, 10)
        pair.a.cancel(0, 0, 10)
        pair.a.request(0, 0, 10)
        piece = encode(Piece(0, 0, b"k" * 10))
        self.assertEqual(pair.to_a(piece), [BlockReceived(0, 0, b"k" * 10)])
        self.assertEqual(pair.to_a(piece), [])

    def test_we_reject(self) -> None:
        """Our REJECT removes the pending request and reaches A as RequestRejected."""
        pair = ready()
        pair.to_b(pair.a.request(3, 0, 1000))
        data = pair.b.reject(3, 0, 1000)
        self.assertEqual(list(pair.b.pending_peer_requests), [])
        self.assertEqual(pair.to_a(data), [RequestRejected(3, 0, 1000)])
        self.assertRaises(LocalProtocolError, pair.b.reject, 3, 0, 1000)
        plain = ready(fast=False)
        plain.to_b(plain.a.request(3, 0, 1000))
        self.assertRaises(LocalProtocolError, plain.b.reject, 3, 0, 1000)

    def test_send_piece_header_needs_request(self) -> None:
        """A PIECE header for a block the peer did not ask for is refused."""
        pair = ready()
        self.assertRaises(LocalProtocolError, pair.b.send_piece_header, 0, 0, K16)

    def test_medium_request_served(self) -> None:
        """A peer's request between 16 KiB and 128 KiB is passed up."""
        pair = ready()
        events = pair.to_b(encode(Request(0, 0, 32 * 1024)))
        self.assertEqual(events, [BlockRequested(0, 0, 32 * 1024)])

    def test_duplicate_peer_request(self) -> None:
        """The same request twice is pending once."""
        pair = ready()
        pair.to_b(encode(Request(0, 0, K16)))
        self.assertEqual(pair.to_b(encode(Request(0, 0, K16))), [])
        self.assertEqual(len(pair.b.pending_peer_requests), 1)


class ViolationTests(SynchronousTestCase):
    """Each rule broken by a scripted byte stream raises RemoteProtocolError."""

    def assertViolation(self, pair: Pair, message: Any, reason: str) -> None:
        with self.assertRaises(RemoteProtocolError) as caught:
            pair.to_b(encode(message))
        self.assertIn(reason, str(caught.exception))
        self.assertTrue(pair.b.dead)

    def test_request_index(self) -> None:
        """A REQUEST for a piece past the last is a violation."""
        self.assertViolation(ready(), Request(PIECES, 0, K16), "REQUEST for piece 4")

    def test_request_zero_length(self) -> None:
        """A zero-length REQUEST is a violation."""
        self.assertViolation(ready(), Request(0, 0, 0), "REQUEST of 0 bytes")

    def test_request_too_long(self) -> None:
        """A REQUEST over 128 KiB is a violation."""
        self.assertViolation(ready(), Request(0, 0, 128 * 1024 + 1), "REQUEST of 131073 bytes")

    def test_request_past_piece_end(self) -> None:
        """A REQUEST running past the end of the (short) last piece is a violation."""
        self.assertViolation(ready(), Request(3, 500, 501), "runs past the end of piece 3")

    def test_request_flood(self) -> None:
        """More than max_peer_requests pending requests is a violation."""
        pair = Pair(b=dict(max_peer_requests=3)).unchoked()
        for begin in range(3):
            pair.to_b(encode(Request(0, begin, 1)))
        self.assertViolation(pair, Request(0, 3, 1), "request flood")

    def test_flood_counts_pending_only(self) -> None:
        """Answered requests no longer count towards the flood limit."""
        pair = Pair(b=dict(max_peer_requests=1)).unchoked()
        pair.to_b(encode(Request(0, 0, 1)))
        pair.b.send_piece_header(0, 0, 1)
        self.assertEqual(pair.to_b(encode(Request(0, 1, 1))), [BlockRequested(0, 1, 1)])

    def test_cancel_index(self) -> None:
        """A CANCEL for a piece past the last is a violation."""
        self.assertViolation(ready(), Cancel(PIECES, 0, K16), "CANCEL for piece 4")

    def test_unrequested_block(self) -> None:
        """A block we never requested is a violation."""
        self.assertViolation(ready(), Piece(0, 0, b"x"), "that we did not request")

    def test_block_of_wrong_length(self) -> None:
        """A block whose length differs from the request is a violation."""
        pair = ready()
        pair.a.request(0, 0, 10)
        self.assertRaises(RemoteProtocolError, pair.to_a, encode(Piece(0, 0, b"x" * 9)))

    def test_reject_unrequested(self) -> None:
        """A REJECT for a request we did not make is a violation (BEP 6)."""
        self.assertViolation(ready(), Reject(0, 0, K16), "which we did not request")

    def test_fast_messages_without_fast(self) -> None:
        """REJECT, SUGGEST and ALLOWED_FAST without the fast extension are violations."""
        for message in (Reject(0, 0, K16), Suggest(0), AllowedFast(0)):
            self.assertViolation(ready(fast=False), message, "without the fast extension")

    def test_suggest_and_allowed_fast_index(self) -> None:
        """SUGGEST and ALLOWED_FAST for a piece past the last are violations."""
        self.assertViolation(ready(), Suggest(PIECES), "SUGGEST for piece 4")
        self.assertViolation(ready(), AllowedFast(PIECES), "ALLOWED_FAST for piece 4")

    def test_extended_without_extension_protocol(self) -> None:
        """EXTENDED without BEP 10 negotiated is a violation."""
        self.assertViolation(ready(extended=False), Extended(1, b""), "BEP 10")

    def test_bad_extension_handshake(self) -> None:
        """An extension handshake that is not a bencoded dictionary is a violation."""
        self.assertViolation(ready(), Extended(0, b"d1:m"), "bad extension handshake")
        self.assertViolation(ready(), Extended(0, b"li1ee"), "not a dictionary")
        self.assertViolation(ready(), Extended(0, b"d1:mi1ee"), "'m' is not a dictionary")
        self.assertViolation(ready(), Extended(0, b"d1:md1:xi300eee"), "id 300")


class OtherMessageTests(SynchronousTestCase):
    """SUGGEST, PORT, keep-alives and unknown messages."""

    def test_suggest(self) -> None:
        """A fast peer's SUGGEST arrives as Suggested."""
        pair = ready()
        self.assertEqual(pair.to_a(pair.b.suggest(3)), [Suggested(3)])
        self.assertRaises(LocalProtocolError, ready(fast=False).b.suggest, 3)

    def test_port(self) -> None:
        """PORT arrives as DHTPort."""
        pair = ready(dht=True)
        self.assertEqual(pair.to_a(pair.b.send_port(6881)), [DHTPort(6881)])
        self.assertRaises(ValueError, pair.b.send_port, 70000)

    def test_keep_alive_and_unknown(self) -> None:
        """Keep-alives and unknown messages produce no event."""
        pair = ready()
        self.assertEqual(pair.to_a(pair.b.keep_alive() + encode(UnknownMessage(99, b"?"))), [])


class ExtensionTests(SynchronousTestCase):
    """The BEP 10 extension handshake and messages."""

    def test_handshake_round_trip(self) -> None:
        """Our m, v and reqq reach the peer, which records its extension map and reqq."""
        ours = {"m": {"ut_metadata": 3, "ut_pex": 1}, "v": "txbittorrent 0.1"}
        pair = Pair(dict(extension_handshake=ours, max_peer_requests=250))
        data = pair.a.send_extension_handshake()
        events = pair.to_b(data)
        payload = {b"m": {b"ut_metadata": 3, b"ut_pex": 1}, b"v": b"txbittorrent 0.1", b"reqq": 250}
        self.assertEqual(events, [ExtensionHandshake(payload)])
        self.assertEqual(decode(data[6:]), payload)
        self.assertEqual(pair.b.peer_extensions, {b"ut_metadata": 3, b"ut_pex": 1})
        self.assertEqual(pair.b.peer_reqq, 250)

    def test_default_handshake(self) -> None:
        """Without a handshake dict we still send m (empty) and reqq."""
        pair = Pair()
        events = pair.to_b(pair.a.send_extension_handshake())
        self.assertEqual(events, [ExtensionHandshake({b"m": {}, b"reqq": 2000})])

    def test_handshake_update(self) -> None:
        """A later handshake adds extensions and id 0 disables one."""
        pair = Pair()
        pair.to_b(pair.a.send_extended(0, {"m": {"ut_metadata": 3, "ut_pex": 1}}))
        pair.to_b(pair.a.send_extended(0, {"m": {"ut_pex": 0, "lt_donthave": 7}}))
        self.assertEqual(pair.b.peer_extensions, {b"ut_metadata": 3, b"lt_donthave": 7})

    def test_message(self) -> None:
        """Other extended ids pass up as ExtensionMessage with the raw payload."""
        pair = Pair()
        events = pair.to_b(pair.a.send_extended(3, b"d8:msg_typei0e5:piecei0ee"))
        self.assertEqual(events, [ExtensionMessage(3, b"d8:msg_typei0e5:piecei0ee")])

    def test_send_needs_extension_protocol(self) -> None:
        """Sending extension messages needs BEP 10 on both sides."""
        pair = Pair(b=dict(extended=False))
        self.assertRaises(LocalProtocolError, pair.a.send_extension_handshake)
        self.assertRaises(ValueError, Pair().a.send_extended, 256, b"")
