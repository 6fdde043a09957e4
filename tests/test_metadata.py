"""Tests for BEP 9 in the core: the ut_metadata codec
(txbittorrent.core.wire.metadata), the fetch state machine
(txbittorrent.core.wire.metadatafetch) and saving fetched metadata as a
.torrent (txbittorrent.core.metainfo.torrent_bytes).

Peers of the fetch are plain strings ("A", "B" ...); time is a number the
test passes."""

from __future__ import annotations

import hashlib

from hypothesis import given, settings, strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import decode, encode as bencode
from txbittorrent.core.metainfo import parse, torrent_bytes
from txbittorrent.core.wire.codec import Extended, encode as encode_wire
from txbittorrent.core.wire.events import ExtensionMessage
from txbittorrent.core.wire.metadata import (
    METADATA_PIECE_SIZE,
    MetadataData,
    MetadataReject,
    MetadataRequest,
    encode_data,
    encode_message,
    encode_reject,
    encode_request,
    parse_message,
    piece_count,
    piece_length,
    serve_piece,
)
from txbittorrent.core.wire.metadatafetch import (
    Ignored,
    MetadataFetch,
    MetadataHashFailed,
    MetadataVerified,
    PieceStored,
    Violation,
)
from txbittorrent.core.wire.session import PeerSession
from txbittorrent.errors import MetainfoError, RemoteProtocolError

KiB = 1024

# -- fixtures ----------------------------------------------------------------------

REQUEST_2 = (
    b"d"
    b"8:msg_type" b"i0e"  # msg_type: 0, a request
    b"5:piece" b"i2e"  # piece: 2
    b"e"
)

DATA_1 = (
    b"d"
    b"8:msg_type" b"i1e"  # msg_type: 1, data
    b"5:piece" b"i1e"  # piece: 1
    b"10:total_size" b"i16390e"  # total_size: 16 KiB + 6 bytes, so piece 1 is 6 bytes
    b"e"
    b"d1:xe!"  # the piece itself, after the dictionary
)

REJECT_0 = (
    b"d"
    b"8:msg_type" b"i2e"  # msg_type: 2, reject
    b"5:piece" b"i0e"  # piece: 0
    b"e"
)

LIBTORRENT_REJECT = (
    b"d"
    b"8:msg_type" b"i2e"  # reject
    b"5:piece" b"i7e"  # piece 7
    b"10:total_size" b"i646e"  # libtorrent adds total_size when it has the metadata
    b"e"
)


def make_info(size: int, salt: bytes = b"") -> bytes:
    """A bencoded info-like dictionary of exactly ``size`` bytes."""
    want = size - len(bencode({b"name": b"x" + salt, b"pad": b""})) + 1  # pad + its digits
    pad = want - len(str(want))
    pad += want - (pad + len(str(pad)))
    body = bencode({b"name": b"x" + salt, b"pad": b"\x00" * pad})
    assert len(body) == size, (len(body), size)
    return body


INFO = make_info(40_000)
"""Three pieces: 16 KiB, 16 KiB and 7232 bytes."""
INFO_HASH = hashlib.sha1(INFO).digest()


def chunk(info: bytes, piece: int) -> bytes:
    return info[piece * METADATA_PIECE_SIZE:(piece + 1) * METADATA_PIECE_SIZE]


class MetadataCodecTests(SynchronousTestCase):
    """The three messages of BEP 9, their fixtures, and what is refused."""

    def test_request(self) -> None:
        """A request decodes from its fixture and encodes back to it."""
        self.assertEqual(parse_message(REQUEST_2), MetadataRequest(2))
        self.assertEqual(encode_request(2), REQUEST_2)

    def test_data(self) -> None:
        """Data: the bytes after the dictionary are the piece."""
        self.assertEqual(parse_message(DATA_1), MetadataData(1, 16390, b"d1:xe!"))
        self.assertEqual(encode_data(1, 16390, b"d1:xe!"), DATA_1)

    def test_reject(self) -> None:
        """A reject, with or without libtorrent's total_size."""
        self.assertEqual(parse_message(REJECT_0), MetadataReject(0))
        self.assertEqual(encode_reject(0), REJECT_0)
        self.assertEqual(parse_message(LIBTORRENT_REJECT), MetadataReject(7))

    def test_encode_message(self) -> None:
        """encode_message dispatches on the message type."""
        for fixture in (REQUEST_2, DATA_1, REJECT_0):
            message = parse_message(fixture)
            assert message is not None
            self.assertEqual(encode_message(message), fixture)

    def test_prefixes_refused(self) -> None:
        """Every truncation of a request or a reject's dictionary is refused."""
        for fixture in (REQUEST_2, REJECT_0):
            for end in range(len(fixture)):
                self.assertRaises(RemoteProtocolError, parse_message, fixture[:end])

    def test_data_truncated_is_shorter(self) -> None:
        """Cutting a data message's piece short still parses (BEP 9 cannot
        tell), with the shorter piece: the fetch checks the length."""
        header = len(DATA_1) - 6
        for end in range(header, len(DATA_1)):
            message = parse_message(DATA_1[:end])
            assert isinstance(message, MetadataData)
            self.assertEqual(message.data, DATA_1[header:end])
        for end in range(header):
            self.assertRaises(RemoteProtocolError, parse_message, DATA_1[:end])

    def test_trailing_bytes_of_request_ignored(self) -> None:
        """Bytes after a request's or reject's dictionary are ignored, as libtorrent does."""
        self.assertEqual(parse_message(REQUEST_2 + b"junk"), MetadataRequest(2))
        self.assertEqual(parse_message(REJECT_0 + b"\x00"), MetadataReject(0))

    def test_unknown_type_ignored(self) -> None:
        """A msg_type BEP 9 does not define is None (to be ignored), even without a piece."""
        self.assertIsNone(parse_message(b"d8:msg_typei3e5:piecei0ee"))
        self.assertIsNone(parse_message(b"d8:msg_typei-1ee"))

    def test_malformed(self) -> None:
        """Not a dictionary, missing or mistyped fields, bad sizes: violations."""
        bad = [
            b"",
            b"li0ee",  # a list
            b"de",  # no msg_type
            b"d8:msg_type1:0e",  # msg_type a string
            b"d8:msg_typei0ee",  # no piece
            b"d8:msg_typei0e5:piece1:1e",  # piece a string
            b"d8:msg_typei0e5:piecei-1ee",  # negative piece
            b"d8:msg_typei1e5:piecei0ee",  # data without total_size
            b"d8:msg_typei1e5:piecei0e10:total_sizei0ee",  # total_size 0
            b"d8:msg_typei1e5:piecei0e10:total_sizei-5ee",  # negative total_size
            encode_data(0, 99_999, b"\x00" * (METADATA_PIECE_SIZE + 1)),  # over 16 KiB
            b"d8:msg_typei0e5:piecei" + b"9" * 30 + b"ee",  # an absurd integer
            b"d1:ad1:ad1:ad1:ad1:aeeeee8:msg_typei0e5:piecei0ee",  # nested deep
        ]
        for payload in bad:
            self.assertRaises(RemoteProtocolError, parse_message, payload)

    def test_piece_arithmetic(self) -> None:
        """Pieces are 16 KiB but the last; out of range is an IndexError."""
        self.assertEqual([piece_count(n) for n in (1, 16384, 16385, 40_000)], [1, 1, 2, 3])
        self.assertEqual([piece_length(i, 40_000) for i in range(3)], [16384, 16384, 7232])
        self.assertEqual(piece_length(0, 16384), 16384)
        self.assertRaises(IndexError, piece_length, 3, 40_000)
        self.assertRaises(IndexError, piece_length, -1, 40_000)

    def test_serve_piece(self) -> None:
        """Serving: the exact bytes of each piece, a reject past the end."""
        joined = b""
        for piece in range(3):
            message = parse_message(serve_piece(INFO, piece))
            assert isinstance(message, MetadataData)
            self.assertEqual((message.piece, message.total_size), (piece, len(INFO)))
            joined += message.data
        self.assertEqual(joined, INFO)
        self.assertEqual(parse_message(serve_piece(INFO, 3)), MetadataReject(3))
        self.assertEqual(parse_message(serve_piece(INFO, 10**9)), MetadataReject(10**9))

    @given(
        piece=st.integers(min_value=0, max_value=2**31),
        total_size=st.integers(min_value=1, max_value=2**40),
        data=st.binary(max_size=METADATA_PIECE_SIZE),
    )
    def test_round_trip(self, piece: int, total_size: int, data: bytes) -> None:
        """Every message decodes to what was encoded."""
        for message in (MetadataRequest(piece), MetadataReject(piece),
                        MetadataData(piece, total_size, data)):
            self.assertEqual(parse_message(encode_message(message)), message)

    @settings(max_examples=300)
    @given(st.binary(max_size=80))
    def test_garbage(self, payload: bytes) -> None:
        """Arbitrary bytes parse or raise RemoteProtocolError, nothing else."""
        try:
            parse_message(payload)
        except RemoteProtocolError:
            pass


class MetadataOnTheWireTests(SynchronousTestCase):
    """A data message inside an EXTENDED message, through a PeerSession."""

    def session(self) -> PeerSession:
        ours = PeerSession(INFO_HASH, b"-TX0001-ourselves000", None, True,
                           extension_handshake={b"m": {b"ut_metadata": 3}})
        remote = PeerSession(INFO_HASH, b"-LT2010-remote000001", None, False,
                             extension_handshake={b"m": {b"ut_metadata": 2}})
        remote.receive_data(ours.send_handshake())
        ours.receive_data(remote.send_handshake())
        remote.receive_data(ours.send_extension_handshake())
        ours.receive_data(remote.send_extension_handshake())
        return ours

    def test_fed_whole_and_byte_by_byte(self) -> None:
        """Fed whole or one byte at a time, with the next message's bytes
        after it, the frame gives one message whose payload parses; the
        trailing bytes wait for the rest of their message."""
        payload = serve_piece(INFO, 2)
        frame = encode_wire(Extended(3, payload))
        next_start = encode_wire(Extended(3, REQUEST_2))[:7]
        for split in (False, True):
            session = self.session()
            events = []
            if split:
                for i in range(len(frame + next_start)):
                    events += session.receive_data((frame + next_start)[i:i + 1])
            else:
                events = session.receive_data(frame + next_start)
            self.assertEqual(events, [ExtensionMessage(3, payload, b"ut_metadata")])
            self.assertEqual(parse_message(events[0].payload),
                             MetadataData(2, len(INFO), chunk(INFO, 2)))
            rest = encode_wire(Extended(3, REQUEST_2))[7:]
            (event,) = session.receive_data(rest)
            assert isinstance(event, ExtensionMessage)
            self.assertEqual(parse_message(event.payload), MetadataRequest(2))


class TorrentBytesTests(SynchronousTestCase):
    """torrent_bytes: a .torrent around fetched info bytes."""

    info = (b"d6:lengthi5e4:name1:a12:piece lengthi16384e6:pieces20:"
            + b"\x01" * 20 + b"e")

    def test_info_hash_unchanged(self) -> None:
        """The info bytes go in verbatim: the .torrent's info hash is theirs,
        even when their keys are not sorted."""
        unsorted = (b"d4:name1:a6:lengthi5e12:piece lengthi16384e6:pieces20:"
                    + b"\x01" * 20 + b"e")
        for info in (self.info, unsorted):
            raw = torrent_bytes(info, [["http://t.example/announce"]])
            metainfo = parse(raw)
            self.assertEqual(metainfo.info_hash, hashlib.sha1(info).digest())
            self.assertEqual(metainfo.info_bytes, info)

    def test_trackers(self) -> None:
        """announce is the first tracker; announce-list holds the tiers when
        there are several trackers; empty tiers and URLs are dropped."""
        raw = torrent_bytes(self.info, [["http://a/"], [], ["http://b/", "", "udp://c:1"]])
        meta = decode(raw)
        self.assertEqual(meta[b"announce"], b"http://a/")
        self.assertEqual(meta[b"announce-list"], [[b"http://a/"], [b"http://b/", b"udp://c:1"]])
        self.assertEqual(parse(raw).trackers, (("http://a/",), ("http://b/", "udp://c:1")))

    def test_one_tracker(self) -> None:
        """A single tracker: announce only."""
        raw = torrent_bytes(self.info, [["http://a/"]])
        self.assertEqual(raw, b"d8:announce9:http://a/4:info" + self.info + b"e")

    def test_no_tracker(self) -> None:
        """No tracker: just the info dictionary (a trackerless torrent)."""
        self.assertEqual(torrent_bytes(self.info, []), b"d4:info" + self.info + b"e")

    def test_bad_info(self) -> None:
        """Info bytes that are not exactly one dictionary are refused."""
        for bad in (b"", b"li1ee", self.info + b"x", self.info[:-1], b"i1e"):
            self.assertRaises(MetainfoError, torrent_bytes, bad, [])


# -- the fetch ---------------------------------------------------------------------


def fetch(max_size: int = 1 << 20, per_peer: int = 4, info: bytes = INFO) -> MetadataFetch[str]:
    return MetadataFetch(hashlib.sha1(info).digest(), max_size, per_peer=per_peer,
                         request_timeout=10.0, slow_backoff=30.0, reject_backoff=60.0)


def answer(f: MetadataFetch[str], peer: str, piece: int, info: bytes = INFO) -> object:
    """``peer`` sends ``piece`` of ``info``, truthfully."""
    return f.on_data(peer, piece, len(info), chunk(info, piece))


def lie(f: MetadataFetch[str], peer: str, piece: int, info: bytes = INFO) -> object:
    """``peer`` sends ``piece`` with the right length and wrong bytes."""
    return f.on_data(peer, piece, len(info), b"\xff" * len(chunk(info, piece)))


class MetadataFetchTests(SynchronousTestCase):
    """Who is asked what, and what is accepted."""

    def test_one_peer(self) -> None:
        """One peer, a few requests at a time, the pieces in order; verified
        bytes are exactly the info dictionary."""
        f = fetch(per_peer=2)
        self.assertTrue(f.add_peer("A", len(INFO)))
        self.assertEqual(f.requests(0.0), [("A", 0), ("A", 1)])
        self.assertEqual(f.requests(0.0), [], "no more than per_peer in flight")
        self.assertEqual(answer(f, "A", 0), PieceStored(0, 2))
        self.assertEqual(f.requests(1.0), [("A", 2)])
        self.assertEqual(answer(f, "A", 2), PieceStored(2, 1))
        outcome = answer(f, "A", 1)
        self.assertEqual(outcome, MetadataVerified(INFO, frozenset()))
        assert isinstance(outcome, MetadataVerified)
        self.assertEqual(outcome.info_bytes, INFO)
        self.assertEqual((f.peers, f.requests(2.0)), ([], []))

    def test_parallel(self) -> None:
        """Pieces go to several peers at once, each piece to one peer."""
        f = fetch(per_peer=1)
        for peer in "ABCD":
            f.add_peer(peer, len(INFO))
        self.assertEqual(f.requests(0.0), [("A", 0), ("B", 1), ("C", 2)])
        self.assertEqual(f.outstanding("B"), {1})

    def test_size_refused(self) -> None:
        """A size over the limit, zero or negative: the peer is never asked."""
        f = fetch(max_size=len(INFO) - 1)
        self.assertFalse(f.add_peer("A", len(INFO)))
        self.assertFalse(f.add_peer("B", 0))
        self.assertFalse(f.add_peer("C", -3))
        self.assertEqual((f.peers, f.requests(0.0), f.size), ([], [], None))

    def test_sizes_differ_between_peers(self) -> None:
        """The size most peers announced is fetched, from them only."""
        f = fetch(per_peer=1)
        f.add_peer("A", len(INFO))
        f.add_peer("B", len(INFO) + 1)
        f.add_peer("C", len(INFO))
        self.assertEqual(f.requests(0.0), [("A", 0), ("C", 1)])
        self.assertEqual(f.size, len(INFO))
        self.assertEqual(f.outstanding("B"), set())

    def test_lying_size_first(self) -> None:
        """A peer whose made-up size won the tie is the sole sender of bad
        metadata: it is excluded and the true size is fetched elsewhere."""
        f = fetch()
        fake = make_info(20_000, b"fake")
        f.add_peer("Liar", len(fake))
        f.add_peer("B", len(INFO))
        self.assertEqual(f.requests(0.0), [("Liar", 0), ("Liar", 1)])
        answer(f, "Liar", 0, fake)
        outcome = answer(f, "Liar", 1, fake)
        self.assertEqual(outcome, MetadataHashFailed({0: "Liar", 1: "Liar"},
                                                     frozenset({"Liar"})))
        self.assertEqual(f.requests(1.0), [("B", 0), ("B", 1), ("B", 2)])
        self.assertEqual(f.size, len(INFO))
        for piece in range(2):
            answer(f, "B", piece)
        self.assertIsInstance(answer(f, "B", 2), MetadataVerified)

    def test_resting_size_gives_way(self) -> None:
        """Two peers of a wrong size outvote one of the true size; once both
        reject and rest, the true size is fetched from the other peer."""
        f = fetch(per_peer=4)
        f.add_peer("Liar1", len(INFO) + 1)
        f.add_peer("Liar2", len(INFO) + 1)
        f.add_peer("Honest", len(INFO))
        first = f.requests(0.0)
        self.assertEqual({peer for peer, _ in first}, {"Liar1"})
        for peer, piece in first:
            f.on_reject(peer, piece, 0.0)
        second = f.requests(0.0)
        self.assertEqual({peer for peer, _ in second}, {"Liar2"})
        for peer, piece in second:
            f.on_reject(peer, piece, 0.0)
        self.assertEqual(f.requests(0.0), [("Honest", 0), ("Honest", 1), ("Honest", 2)])
        self.assertEqual(f.size, len(INFO))
        for piece in range(2):
            answer(f, "Honest", piece)
        self.assertIsInstance(answer(f, "Honest", 2), MetadataVerified)

    def test_total_size_differs_from_handshake(self) -> None:
        """A data message whose total_size is not what its sender announced
        is a violation; nothing is kept, the piece goes elsewhere."""
        f = fetch(per_peer=2)
        f.add_peer("A", len(INFO))
        f.add_peer("B", len(INFO))
        self.assertEqual(f.requests(0.0), [("A", 0), ("A", 1), ("B", 2)])
        outcome = f.on_data("A", 0, 2**40, chunk(INFO, 0))
        self.assertIsInstance(outcome, Violation)
        self.assertEqual((f.received, f.buffered), (0, 0))
        self.assertEqual(f.peers, ["B"])
        self.assertFalse(f.add_peer("A", len(INFO)), "excluded")
        self.assertEqual(f.requests(0.0), [("B", 0)])
        self.assertIsInstance(answer(f, "A", 1), Ignored)

    def test_wrong_length(self) -> None:
        """A piece that is not 16 KiB (or not the exact rest, for the last)
        is a violation and the piece is asked again elsewhere."""
        for piece, data in ((0, chunk(INFO, 0)[:-1]), (2, chunk(INFO, 2) + b"x")):
            f = fetch()
            f.add_peer("A", len(INFO))
            f.add_peer("B", len(INFO))
            f.requests(0.0)
            outcome = f.on_data("A", piece, len(INFO), data)
            self.assertIsInstance(outcome, Violation)
            self.assertEqual(f.requests(0.0), [("B", 0), ("B", 1), ("B", 2)])

    def test_reject(self) -> None:
        """A REJECT sends the piece to another peer and rests the rejecting
        one for reject_backoff; a reject of something not asked is nothing."""
        f = fetch(per_peer=1)
        f.add_peer("A", len(INFO))
        f.add_peer("B", len(INFO))
        self.assertEqual(f.requests(0.0), [("A", 0), ("B", 1)])
        self.assertFalse(f.on_reject("A", 2, 0.0))
        self.assertTrue(f.on_reject("A", 0, 1.0))
        self.assertEqual(f.requests(1.0), [])
        answer(f, "B", 1)
        self.assertEqual(f.requests(2.0), [("B", 0)])
        answer(f, "B", 0)
        self.assertEqual(f.requests(60.9), [("B", 2)])
        self.assertEqual(f.on_reject("B", 2, 61.0), True)
        self.assertEqual(f.requests(61.0), [("A", 2)], "A has rested")

    def test_timeout(self) -> None:
        """A peer that never answers: its requests go to another peer after
        request_timeout, it rests for slow_backoff, and a late answer from
        it is still taken."""
        f = fetch()
        f.add_peer("Mute", len(INFO))
        f.add_peer("B", len(INFO))
        self.assertEqual(f.requests(0.0), [("Mute", 0), ("Mute", 1), ("Mute", 2)])
        self.assertEqual(f.expire(9.9), [])
        self.assertEqual(f.expire(10.0), [("Mute", 0), ("Mute", 1), ("Mute", 2)])
        self.assertEqual(f.requests(10.0), [("B", 0), ("B", 1), ("B", 2)])
        self.assertEqual(f.outstanding("Mute"), {0, 1, 2})
        self.assertEqual(answer(f, "Mute", 0), PieceStored(0, 2))
        self.assertEqual(answer(f, "B", 0), Ignored("piece 0 is in already"))
        answer(f, "B", 1)
        self.assertIsInstance(answer(f, "B", 2), MetadataVerified)

    def test_mute_peer_alone(self) -> None:
        """With only a silent peer, it is asked again after resting."""
        f = fetch(per_peer=1)
        f.add_peer("Mute", len(INFO))
        self.assertEqual(f.requests(0.0), [("Mute", 0)])
        f.expire(10.0)
        self.assertEqual(f.requests(39.9), [])
        self.assertEqual(f.requests(40.0), [("Mute", 0)])

    def test_unasked_data_ignored(self) -> None:
        """Data we never asked that peer for is ignored (BEP 9 is silent;
        libtorrent ignores it too), from a known peer or not."""
        f = fetch(per_peer=1)
        f.add_peer("A", len(INFO))
        f.requests(0.0)
        self.assertIsInstance(answer(f, "A", 1), Ignored)
        self.assertIsInstance(answer(f, "Stranger", 0), Ignored)
        self.assertIsInstance(f.on_data("A", 99, len(INFO), b"x"), Ignored)
        self.assertEqual(f.received, 0)
        self.assertEqual(answer(f, "A", 0), PieceStored(0, 2))

    def test_hash_failure_sole_sender(self) -> None:
        """Metadata that fails the hash is never accepted; its sole sender is
        named and never asked again; the next attempt convicts it."""
        f = fetch()
        f.add_peer("Liar", len(INFO))
        f.add_peer("B", len(INFO))
        f.requests(0.0)
        lie(f, "Liar", 0)
        answer(f, "Liar", 1)
        outcome = answer(f, "Liar", 2)
        self.assertEqual(outcome, MetadataHashFailed({0: "Liar", 1: "Liar", 2: "Liar"},
                                                     frozenset({"Liar"})))
        self.assertEqual((f.attempts, f.received, f.peers), (1, 0, ["B"]))
        self.assertFalse(f.add_peer("Liar", len(INFO)))
        self.assertEqual(f.requests(1.0), [("B", 0), ("B", 1), ("B", 2)])
        answer(f, "B", 0)
        answer(f, "B", 1)
        self.assertEqual(answer(f, "B", 2), MetadataVerified(INFO, frozenset({"Liar"})))

    def test_hash_failure_several_senders(self) -> None:
        """After a failure with several senders, every piece comes from one
        peer; when that passes, the peer that sent a bad piece is convicted."""
        f = fetch(per_peer=1)
        for peer in "ABC":
            f.add_peer(peer, len(INFO))
        self.assertEqual(f.requests(0.0), [("A", 0), ("B", 1), ("C", 2)])
        answer(f, "A", 0)
        lie(f, "B", 1)
        outcome = answer(f, "C", 2)
        self.assertEqual(outcome, MetadataHashFailed({0: "A", 1: "B", 2: "C"}, frozenset()))
        for step, piece in enumerate(range(3)):
            self.assertEqual(f.requests(1.0 + step), [("A", piece)], "one source")
            result = answer(f, "A", piece)
        self.assertEqual(result, MetadataVerified(INFO, frozenset({"B"})))

    def test_single_source_moves_on(self) -> None:
        """In single-source mode, a source that goes is replaced and its
        pieces dropped; a lying source is then the sole sender."""
        f = fetch(per_peer=1)
        for peer in "ABC":
            f.add_peer(peer, len(INFO))
        f.requests(0.0)
        lie(f, "A", 0)
        answer(f, "B", 1)
        answer(f, "C", 2)
        self.assertEqual(f.requests(1.0), [("A", 0)])
        lie(f, "A", 0)
        f.remove_peer("A")
        self.assertEqual(f.requests(2.0), [("B", 0)])
        self.assertEqual(f.received, 0)

    def test_peer_gone(self) -> None:
        """A peer's requests go to others when it goes."""
        f = fetch(per_peer=2)
        f.add_peer("A", len(INFO))
        f.add_peer("B", len(INFO))
        self.assertEqual(f.requests(0.0), [("A", 0), ("A", 1), ("B", 2)])
        f.remove_peer("A")
        self.assertEqual(f.requests(0.0), [("B", 0)])
        self.assertIsInstance(answer(f, "A", 1), Ignored)

    def test_size_switch_when_its_peers_go(self) -> None:
        """When no peer of the size being fetched is left, the attempt starts
        over with another peer's size."""
        f = fetch()
        other = make_info(20_000, b"other")
        f.add_peer("A", len(other))
        f.add_peer("B", len(other))
        f.add_peer("C", len(INFO))
        self.assertEqual(f.requests(0.0), [("A", 0), ("A", 1)])
        answer(f, "A", 0, other)
        self.assertEqual(f.received, 1)
        f.remove_peer("A")
        f.remove_peer("B")
        self.assertEqual(f.requests(1.0), [("C", 0), ("C", 1), ("C", 2)])
        self.assertEqual((f.size, f.received), (len(INFO), 0))

    def test_new_size_from_same_peer(self) -> None:
        """A later handshake with another size drops the peer's requests."""
        f = fetch()
        f.add_peer("A", len(INFO))
        f.requests(0.0)
        self.assertTrue(f.add_peer("A", len(INFO)))
        self.assertEqual(f.outstanding("A"), {0, 1, 2}, "same size: nothing changes")
        self.assertTrue(f.add_peer("A", 20_000))
        self.assertEqual(f.outstanding("A"), set())
        self.assertEqual(f.requests(1.0), [("A", 0), ("A", 1)])
        self.assertEqual(f.size, 20_000)

    def test_cancel(self) -> None:
        """A request that could not be sent is asked again."""
        f = fetch(per_peer=1)
        f.add_peer("A", len(INFO))
        self.assertEqual(f.requests(0.0), [("A", 0)])
        f.cancel("A", 0)
        self.assertEqual(f.requests(0.0), [("A", 0)])

    def test_bounded_memory(self) -> None:
        """The buffer never holds more than the size being fetched, which
        never exceeds max_size; nothing is allocated from a peer's claim."""
        f = fetch(max_size=len(INFO))
        self.assertFalse(f.add_peer("Huge", 2**40))
        f.add_peer("A", len(INFO))
        f.requests(0.0)
        self.assertIsInstance(f.on_data("A", 0, 2**40, b"\x00" * METADATA_PIECE_SIZE),
                              Violation)
        self.assertEqual(f.buffered, 0)
        f.add_peer("B", len(INFO))
        f.requests(0.0)
        answer(f, "B", 0)
        answer(f, "B", 1)
        self.assertEqual(f.buffered, 2 * METADATA_PIECE_SIZE)
        self.assertLessEqual(f.buffered, len(INFO))

    def test_bad_arguments(self) -> None:
        """The info hash is 20 bytes; max_size and per_peer are positive."""
        self.assertRaises(ValueError, MetadataFetch, b"x", 10)
        self.assertRaises(ValueError, MetadataFetch, INFO_HASH, 0)
        self.assertRaises(ValueError, MetadataFetch, INFO_HASH, 10, per_peer=0)

    @settings(max_examples=150, deadline=None)
    @given(st.data())
    def test_never_accepts_wrong_metadata(self, data: st.DataObject) -> None:
        """Honest and lying peers, answers in any order, timeouts and
        rejects: whatever is verified is exactly the info dictionary, and
        with an honest peer present the fetch always completes."""
        f = fetch(per_peer=data.draw(st.integers(1, 3)))
        peers = data.draw(st.lists(st.sampled_from(["honest", "liar", "short", "rejecter"]),
                                   min_size=1, max_size=4))
        names = [f"{kind}{i}" for i, kind in enumerate(peers)]
        for name in names:
            f.add_peer(name, len(INFO))
        honest = any(name.startswith("honest") for name in names)
        now = 0.0
        pending: list[tuple[str, int]] = []
        for _ in range(200):
            pending += f.requests(now)
            if not pending:
                now += 61.0
                f.expire(now)
                if not f.peers:
                    break
                continue
            peer, piece = pending.pop(data.draw(st.integers(0, len(pending) - 1)))
            if peer.startswith("honest"):
                outcome = answer(f, peer, piece)
            elif peer.startswith("liar"):
                outcome = lie(f, peer, piece)
            elif peer.startswith("short"):
                outcome = f.on_data(peer, piece, len(INFO), b"x")
            else:
                f.on_reject(peer, piece, now)
                continue
            if isinstance(outcome, MetadataVerified):
                self.assertEqual(outcome.info_bytes, INFO)
                self.assertFalse(any(p.startswith("honest") for p in outcome.liars))
                return
            now += 1.0
        self.assertFalse(honest, "an honest peer was there but nothing was verified")
