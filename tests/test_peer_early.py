"""Tests for a PeerSession built before the metadata is known (piece_count=None):
txbittorrent.core.wire.session with core.wire.early.

``M`` is our session from a magnet link, without a piece count; ``P`` is a
real peer that knows the torrent (four pieces).  What P says is fed to M
whole and one byte at a time (``FEEDS``); what M keeps is checked by
``set_piece_count`` and must come out as the events a session built with the
count would have given.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import Layout
from txbittorrent.core.wire.codec import (
    AllowedFast,
    BitfieldMsg,
    Cancel,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    Piece,
    Reject,
    Request,
    Suggest,
    Unchoke,
    encode,
    encode_have,
    encode_reject,
    make_reserved,
)
from txbittorrent.core.wire.early import MAX_UNKNOWN_PIECES, EarlyPieces
from txbittorrent.core.wire.events import (
    BlockReceived,
    DHTPort,
    ExtensionHandshake,
    PeerAllowedFast,
    PeerBitfield,
    PeerEvent,
    PeerHave,
    PeerInterested,
    PeerUnchoked,
    Reply,
)
from txbittorrent.core.wire.session import PeerSession
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError

INFO_HASH = b"\x33" * 20
ID_M = b"-TX0001-magnet000000"
ID_P = b"-LT2010-peer00000000"
K16 = 16 * 1024
LAYOUT = Layout([3 * 32 * 1024 + 1000], 32 * 1024)  # four pieces, the last 1000 bytes
PIECES = LAYOUT.piece_count


def feed_whole(session: PeerSession, data: bytes) -> list[PeerEvent]:
    return session.receive_data(data)


def feed_bytewise(session: PeerSession, data: bytes) -> list[PeerEvent]:
    events: list[PeerEvent] = []
    for i in range(len(data)):
        events += session.receive_data(data[i : i + 1])
    return events


FEEDS: tuple[Callable[[PeerSession, bytes], list[PeerEvent]], ...] = (feed_whole, feed_bytewise)


class Magnet:
    """M (no piece count) and P (knows the torrent), handshakes exchanged."""

    def __init__(self, fast: bool = True, **m_options: Any) -> None:
        reserved = make_reserved(fast=fast, dht=True)
        self.m = PeerSession(INFO_HASH, ID_M, None, True, reserved=reserved, **m_options)
        self.p = PeerSession(
            INFO_HASH, ID_P, PIECES, False, piece_length_of=LAYOUT.piece_size, reserved=reserved
        )
        self.p.receive_data(self.m.send_handshake())
        self.m.receive_data(self.p.send_handshake())

    def metadata(self) -> list[PeerEvent]:
        return self.m.set_piece_count(PIECES, LAYOUT.piece_size)


class EarlyPiecesTests(SynchronousTestCase):
    """What the peer says about pieces is kept, then checked against the count."""

    def test_bitfield(self) -> None:
        """A BITFIELD gives no event; the count turns it into PeerBitfield and peer_have."""
        for feed in FEEDS:
            magnet = Magnet(fast=False)
            have = Bitfield.from_indexes([0, 3], PIECES)
            self.assertEqual(feed(magnet.m, magnet.p.send_bitfield(have)), [], feed.__name__)
            self.assertEqual(magnet.m.peer_have.count, 0)
            self.assertFalse(magnet.m.may_request(0))
            self.assertEqual(magnet.metadata(), [PeerBitfield(have)])
            self.assertEqual(magnet.m.peer_have, have)

    def test_have_all(self) -> None:
        """HAVE_ALL comes out as a full PeerBitfield."""
        magnet = Magnet()
        self.assertEqual(magnet.m.receive_data(magnet.p.send_bitfield(Bitfield.full(PIECES))), [])
        self.assertEqual(magnet.metadata(), [PeerBitfield(Bitfield.full(PIECES))])
        self.assertTrue(magnet.m.peer_have.complete)

    def test_have_none_then_haves(self) -> None:
        """HAVE_NONE and later HAVEs come out as one PeerBitfield holding the HAVEs."""
        for feed in FEEDS:
            magnet = Magnet()
            data = encode(HaveNone()) + encode(Have(3)) + encode(Have(1)) + encode(Have(3))
            self.assertEqual(feed(magnet.m, data), [])
            expected = PeerBitfield(Bitfield.from_indexes([1, 3], PIECES))
            self.assertEqual(magnet.metadata(), [expected])

    def test_haves_only(self) -> None:
        """HAVEs without a bitfield come out as PeerHave events, in index order, once each."""
        for feed in FEEDS:
            magnet = Magnet(fast=False)
            feed(magnet.m, encode(Have(2)) + encode(Have(0)) + encode(Have(2)))
            self.assertEqual(magnet.metadata(), [PeerHave(0), PeerHave(2)])
            self.assertEqual(list(magnet.m.peer_have), [0, 2])

    def test_nothing(self) -> None:
        """A peer that said nothing about pieces gives no event and has none."""
        magnet = Magnet()
        self.assertEqual(magnet.metadata(), [])
        self.assertEqual(magnet.m.peer_have, Bitfield(PIECES))

    def test_late_bitfield_replaces(self) -> None:
        """A BITFIELD after HAVEs replaces them, as it would with the count known."""
        magnet = Magnet()
        magnet.m.receive_data(encode(Have(3)) + encode(BitfieldMsg(b"\x40")))
        self.assertEqual(magnet.metadata(), [PeerBitfield(Bitfield.from_indexes([1], PIECES))])

    def test_allowed_fast(self) -> None:
        """ALLOWED_FAST is kept and comes out as PeerAllowedFast after the pieces."""
        for feed in FEEDS:
            magnet = Magnet()
            feed(magnet.m, encode(AllowedFast(2)) + encode(HaveAll()) + encode(AllowedFast(0)))
            self.assertEqual(
                magnet.metadata(),
                [PeerBitfield(Bitfield.full(PIECES)), PeerAllowedFast(0), PeerAllowedFast(2)],
            )
            self.assertEqual(magnet.m.peer_allowed_fast, {0, 2})

    def test_bitfield_wrong_length(self) -> None:
        """A bitfield of the wrong length is found out by set_piece_count and kills the session."""
        for feed in FEEDS:
            magnet = Magnet()
            feed(magnet.m, encode(BitfieldMsg(b"\xf0\x00")))
            with self.assertRaises(RemoteProtocolError) as caught:
                magnet.metadata()
            self.assertIn("bad BITFIELD", str(caught.exception))
            self.assertTrue(magnet.m.dead)
            self.assertRaises(LocalProtocolError, magnet.m.keep_alive)
            self.assertRaises(LocalProtocolError, magnet.metadata)

    def test_bitfield_spare_bits(self) -> None:
        """A bitfield with spare bits set is a violation once the count is known."""
        magnet = Magnet()
        magnet.m.receive_data(encode(BitfieldMsg(b"\x88")))
        self.assertRaises(RemoteProtocolError, magnet.metadata)

    def test_have_past_last(self) -> None:
        """A HAVE past the last piece is a violation once the count is known."""
        for feed in FEEDS:
            magnet = Magnet()
            feed(magnet.m, encode(HaveAll()) + encode(Have(PIECES)))
            with self.assertRaises(RemoteProtocolError) as caught:
                magnet.metadata()
            self.assertIn(
                "HAVE for piece 4 before the metadata, but the torrent has 4 pieces",
                str(caught.exception),
            )

    def test_replaced_have_still_checked(self) -> None:
        """A bad HAVE index is found even if a later BITFIELD replaced the HAVEs."""
        magnet = Magnet()
        magnet.m.receive_data(encode(Have(9)) + encode(BitfieldMsg(b"\x80")))
        self.assertRaises(RemoteProtocolError, magnet.metadata)

    def test_allowed_fast_past_last(self) -> None:
        """An ALLOWED_FAST past the last piece is a violation once the count is known."""
        magnet = Magnet()
        magnet.m.receive_data(encode(AllowedFast(PIECES + 5)))
        self.assertRaises(RemoteProtocolError, magnet.metadata)

    def test_index_bound(self) -> None:
        """A piece index at max_unknown_pieces or past it is a violation at once."""
        messages = (Have(16), AllowedFast(16), Suggest(16), Request(16, 0, K16), Cancel(16, 0, 1))
        for message in messages:
            magnet = Magnet(max_unknown_pieces=16)
            magnet.m.receive_data(encode(Have(15)))
            with self.assertRaises(RemoteProtocolError) as caught:
                magnet.m.receive_data(encode(message))
            self.assertIn("at most 16 pieces", str(caught.exception))
            self.assertTrue(magnet.m.dead)

    def test_bitfield_bound(self) -> None:
        """A BITFIELD longer than max_unknown_pieces bits is a violation at once."""
        magnet = Magnet(max_unknown_pieces=16)
        magnet.m.receive_data(encode(BitfieldMsg(b"\xff\xff")))
        too_long = encode(BitfieldMsg(b"\xff" * 3))
        self.assertRaises(RemoteProtocolError, magnet.m.receive_data, too_long)

    def test_default_bound(self) -> None:
        """By default indexes below 2**20 are kept, and the message cap fits their bitfield."""
        magnet = Magnet()
        magnet.m.receive_data(encode(Have(MAX_UNKNOWN_PIECES - 1)))
        past = encode(Have(MAX_UNKNOWN_PIECES))
        self.assertRaises(RemoteProtocolError, magnet.m.receive_data, past)
        other = Magnet()
        other.m.receive_data(encode(BitfieldMsg(b"\x00" * (MAX_UNKNOWN_PIECES // 8))))
        self.assertRaises(RemoteProtocolError, other.metadata)  # wrong length for four pieces

    def test_many_distinct_haves(self) -> None:
        """Every index below the bound may be announced; each comes out once."""
        early = EarlyPieces(limit=64)
        for index in reversed(range(64)):
            early.have(index)
            early.have(index)
        have, allowed, events = early.resolve(64)
        self.assertTrue(have.complete)
        self.assertEqual(events, [PeerHave(i) for i in range(64)])
        self.assertEqual(allowed, set())


class EarlyMessageTests(SynchronousTestCase):
    """The other messages before the metadata."""

    def test_what_works(self) -> None:
        """Extension handshake, PORT, keep-alive, UNCHOKE and INTERESTED give their events."""
        for feed in FEEDS:
            magnet = Magnet()
            data = (
                magnet.p.send_extension_handshake() + magnet.p.send_port(6881)
                + magnet.p.keep_alive() + encode(Unchoke()) + encode(Interested())
            )
            events = feed(magnet.m, data)
            self.assertEqual(
                [type(e) for e in events],
                [ExtensionHandshake, DHTPort, PeerUnchoked, PeerInterested],
            )
            self.assertFalse(magnet.m.peer_choking)

    def test_request_fast_rejected(self) -> None:
        """A fast peer's REQUEST is answered with HAVE_NONE and REJECT, later ones with REJECT."""
        for feed in FEEDS:
            magnet = Magnet()
            events = feed(magnet.m, encode(Request(0, 0, K16)))
            self.assertEqual(events, [Reply(encode(HaveNone()) + encode_reject(0, 0, K16))])
            events = feed(magnet.m, encode(Request(1, 0, K16)))
            self.assertEqual(events, [Reply(encode_reject(1, 0, K16))])
            self.assertEqual(list(magnet.m.pending_peer_requests), [])
            self.assertEqual(
                magnet.p.receive_data(encode(HaveNone())), [PeerBitfield(Bitfield(PIECES))]
            )

    def test_request_after_have_none_sent(self) -> None:
        """After our send_bitfield(None), a REQUEST gets a REJECT alone."""
        magnet = Magnet()
        magnet.m.send_bitfield(None)
        events = magnet.m.receive_data(encode(Request(0, 0, 5)))
        self.assertEqual(events, [Reply(encode_reject(0, 0, 5))])

    def test_request_non_fast_dropped(self) -> None:
        """A non-fast peer's REQUEST is dropped without an answer."""
        magnet = Magnet(fast=False)
        self.assertEqual(magnet.m.receive_data(encode(Request(0, 0, K16))), [])
        self.assertEqual(list(magnet.m.pending_peer_requests), [])

    def test_request_bad_length(self) -> None:
        """A REQUEST of 0 bytes or over 128 KiB is a violation even without the metadata."""
        for length in (0, 128 * 1024 + 1):
            magnet = Magnet()
            request = encode(Request(0, 0, length))
            self.assertRaises(RemoteProtocolError, magnet.m.receive_data, request)

    def test_request_past_last_found_later(self) -> None:
        """A REQUEST for a piece past the last is found out by set_piece_count."""
        magnet = Magnet(fast=False)
        magnet.m.receive_data(encode(Request(PIECES, 0, K16)))
        self.assertRaises(RemoteProtocolError, magnet.metadata)

    def test_cancel_and_suggest_dropped(self) -> None:
        """CANCEL and SUGGEST give no event."""
        magnet = Magnet()
        self.assertEqual(magnet.m.receive_data(encode(Cancel(0, 0, K16)) + encode(Suggest(1))), [])
        self.assertEqual(magnet.metadata(), [])

    def test_violations(self) -> None:
        """PIECE, REJECT, fast messages without fast, late HAVE_ALL: violations as ever."""
        cases: list[tuple[bool, list[Any]]] = [
            (True, [Piece(0, 0, b"x")]),
            (True, [Reject(0, 0, K16)]),
            (False, [Suggest(0)]),
            (False, [AllowedFast(0)]),
            (False, [HaveAll()]),
            (True, [Interested(), HaveNone()]),
            (True, [HaveAll(), HaveAll()]),
        ]
        for fast, messages in cases:
            magnet = Magnet(fast=fast)
            data = b"".join(encode(message) for message in messages)
            self.assertRaises(RemoteProtocolError, magnet.m.receive_data, data)
            self.assertTrue(magnet.m.dead, messages)


class EarlySendingTests(SynchronousTestCase):
    """What we may send before the metadata, and our bitfield after it."""

    def test_needs_the_count(self) -> None:
        """Anything naming a piece is refused until the count is known."""
        m = Magnet().m
        m.send_bitfield(None)
        for call in (
            lambda: m.send_bitfield(Bitfield(PIECES)), lambda: m.send_have(0),
            lambda: m.request(0, 0, K16), lambda: m.request_many([(0, 0, K16)]),
            lambda: m.allowed_fast(0), lambda: m.suggest(0),
        ):
            self.assertRaises(LocalProtocolError, call)

    def test_fast_needs_have_none_first(self) -> None:
        """To a fast peer, choke and interest need send_bitfield(None) (HAVE_NONE) first."""
        magnet = Magnet()
        self.assertRaises(LocalProtocolError, magnet.m.interested)
        self.assertEqual(magnet.m.send_extension_handshake()[4], 20)  # BEP 10 is fine
        data = magnet.m.send_bitfield(None)
        self.assertEqual(data, encode(HaveNone()))
        self.assertEqual(magnet.p.receive_data(data), [PeerBitfield(Bitfield(PIECES))])
        self.assertRaises(LocalProtocolError, magnet.m.send_bitfield, None)
        self.assertEqual(magnet.p.receive_data(magnet.m.interested()), [PeerInterested()])
        self.assertEqual(magnet.m.unchoke(), encode(Unchoke()))

    def test_non_fast_needs_nothing(self) -> None:
        """To a non-fast peer, interest goes without a bitfield; send_bitfield(None) is empty."""
        magnet = Magnet(fast=False)
        self.assertEqual(magnet.m.send_bitfield(None), b"")
        self.assertEqual(magnet.p.receive_data(magnet.m.interested()), [PeerInterested()])

    def test_quiet_then_bitfield(self) -> None:
        """Nothing of BEP 3 before the metadata (as libtorrent), then an ordinary bitfield."""
        magnet = Magnet()
        magnet.p.receive_data(magnet.m.send_extension_handshake())
        magnet.metadata()
        have = Bitfield.from_indexes([1, 2], PIECES)
        self.assertEqual(magnet.p.receive_data(magnet.m.send_bitfield(have)), [PeerBitfield(have)])
        self.assertRaises(LocalProtocolError, magnet.m.send_bitfield, have)

    def test_have_none_then_haves(self) -> None:
        """After HAVE_NONE, the bitfield sent once the metadata is in goes as HAVEs."""
        magnet = Magnet()
        events = magnet.p.receive_data(magnet.m.send_bitfield(None))
        self.assertEqual(events, [PeerBitfield(Bitfield(PIECES))])
        magnet.metadata()
        data = magnet.m.send_bitfield(Bitfield.from_indexes([0, 2], PIECES))
        self.assertEqual(data, encode_have(0) + encode_have(2))
        self.assertEqual(magnet.p.receive_data(data), [PeerHave(0), PeerHave(2)])
        self.assertRaises(LocalProtocolError, magnet.m.send_bitfield, Bitfield(PIECES))
        self.assertEqual(magnet.m.send_have(3), encode_have(3))

    def test_non_fast_nothing_sent_then_bitfield(self) -> None:
        """To a non-fast peer that had no BEP 3 message from us, the bitfield is a BITFIELD."""
        magnet = Magnet(fast=False)
        magnet.m.send_bitfield(None)
        magnet.metadata()
        have = Bitfield.from_indexes([3], PIECES)
        self.assertEqual(magnet.p.receive_data(magnet.m.send_bitfield(have)), [PeerBitfield(have)])

    def test_non_fast_interest_then_haves(self) -> None:
        """To a non-fast peer that had INTERESTED from us, the later bitfield goes as HAVEs."""
        magnet = Magnet(fast=False)
        magnet.m.send_bitfield(None)
        magnet.m.interested()
        magnet.metadata()
        self.assertEqual(magnet.m.send_bitfield(Bitfield.from_indexes([3], PIECES)), encode_have(3))
        self.assertRaises(LocalProtocolError, magnet.m.send_bitfield, Bitfield(PIECES))


class SetPieceCountTests(SynchronousTestCase):
    """set_piece_count itself, and the session afterwards."""

    def test_then_as_if_built_with_the_count(self) -> None:
        """After the count, requests and blocks work, and HAVE indexes are checked at once."""
        magnet = Magnet()
        magnet.m.receive_data(magnet.p.send_bitfield(Bitfield.full(PIECES)))
        self.assertFalse(magnet.m.metadata_known)
        magnet.metadata()
        self.assertTrue(magnet.m.metadata_known)
        self.assertEqual(magnet.m.piece_count, PIECES)
        magnet.p.receive_data(magnet.m.send_bitfield(Bitfield(PIECES)) + magnet.m.interested())
        magnet.m.receive_data(magnet.p.unchoke())
        magnet.p.receive_data(magnet.m.request(3, 0, 1000))
        block = b"b" * 1000
        events = magnet.m.receive_data(magnet.p.send_piece_header(3, 0, 1000) + block)
        self.assertEqual(events, [BlockReceived(3, 0, block)])
        with self.assertRaises(RemoteProtocolError) as caught:
            magnet.m.receive_data(encode(Have(PIECES)))
        self.assertIn("HAVE for piece 4, but the torrent has 4 pieces", str(caught.exception))

    def test_once(self) -> None:
        """The count is set once; a session built with it refuses it too."""
        magnet = Magnet()
        self.assertRaises(ValueError, magnet.m.set_piece_count, -1, LAYOUT.piece_size)
        magnet.metadata()
        self.assertRaises(LocalProtocolError, magnet.metadata)
        self.assertRaises(LocalProtocolError, magnet.p.set_piece_count, PIECES, LAYOUT.piece_size)

    def test_message_cap_follows_the_count(self) -> None:
        """A torrent whose bitfield exceeds the default cap gets a cap that fits it."""
        magnet = Magnet(max_unknown_pieces=16)
        count = 9 * 1024 * 1024
        magnet.m.set_piece_count(count, lambda index: K16)
        bitfield = Bitfield(count)
        bitfield.add(5)
        events = magnet.m.receive_data(encode(BitfieldMsg(bitfield.to_bytes())))
        self.assertEqual(events, [PeerBitfield(bitfield)])

    def test_constructor_checks(self) -> None:
        """A piece count needs piece_length_of; None needs nothing."""
        self.assertRaises(ValueError, PeerSession, INFO_HASH, ID_M, 4, True)
        session = PeerSession(INFO_HASH, ID_M, None, True)
        self.assertIsNone(session.piece_count)
        self.assertEqual(session.peer_have.piece_count, 0)
