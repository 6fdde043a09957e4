"""Tests for txbittorrent.core.wire.codec (and the message classes of core.messages)."""

from __future__ import annotations

from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.wire.codec import (
    DEFAULT_MAX_MESSAGE_LENGTH,
    AllowedFast,
    BitfieldMsg,
    Cancel,
    Choke,
    Extended,
    Handshake,
    HandshakeInfoHash,
    Have,
    HaveAll,
    HaveNone,
    Interested,
    KeepAlive,
    Message,
    MessageId,
    NotInterested,
    Piece,
    Port,
    Reject,
    Request,
    Suggest,
    Unchoke,
    UnknownMessage,
    WireDecoder,
    WireEvent,
    encode,
    encode_cancel,
    encode_handshake,
    encode_have,
    encode_piece_header,
    encode_reject,
    encode_request,
    make_reserved,
    parse_handshake_prefix,
)
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError

INFO_HASH = bytes(range(0xA0, 0xB4))
PEER_ID = b"-TX0001-abcdefghijkl"

# -- fixtures: (annotated bytes, the message) -------------------------------------

HANDSHAKE = (
    b"\x13"  # pstrlen: 19
    b"BitTorrent protocol"  # pstr
    b"\x00\x00\x00\x00\x00"  # reserved bytes 0-4: nothing
    b"\x10"  # reserved byte 5: 0x10, the extension protocol (BEP 10)
    b"\x00"  # reserved byte 6: nothing
    b"\x05"  # reserved byte 7: 0x04 fast extension (BEP 6) | 0x01 DHT (BEP 5)
    b"\xa0\xa1\xa2\xa3\xa4\xa5\xa6\xa7\xa8\xa9"  # info_hash, first half
    b"\xaa\xab\xac\xad\xae\xaf\xb0\xb1\xb2\xb3"  # info_hash, second half
    b"-TX0001-abcdefghijkl"  # peer_id
)
HANDSHAKE_EVENTS: list[WireEvent] = [
    HandshakeInfoHash(INFO_HASH, b"\x00\x00\x00\x00\x00\x10\x00\x05"),
    Handshake(INFO_HASH, PEER_ID, b"\x00\x00\x00\x00\x00\x10\x00\x05"),
]

KEEP_ALIVE = (
    b"\x00\x00\x00\x00",  # length 0: a keep-alive, nothing follows
    KeepAlive(),
)
CHOKE = (
    b"\x00\x00\x00\x01"  # length 1
    b"\x00",  # id 0: choke
    Choke(),
)
UNCHOKE = (
    b"\x00\x00\x00\x01"  # length 1
    b"\x01",  # id 1: unchoke
    Unchoke(),
)
INTERESTED = (
    b"\x00\x00\x00\x01"  # length 1
    b"\x02",  # id 2: interested
    Interested(),
)
NOT_INTERESTED = (
    b"\x00\x00\x00\x01"  # length 1
    b"\x03",  # id 3: not interested
    NotInterested(),
)
HAVE = (
    b"\x00\x00\x00\x05"  # length 5
    b"\x04"  # id 4: have
    b"\x00\x00\x01\x02",  # piece index 258
    Have(258),
)
BITFIELD = (
    b"\x00\x00\x00\x03"  # length 3
    b"\x05"  # id 5: bitfield
    b"\xa0"  # 1010_0000: pieces 0 and 2
    b"\x01",  # 0000_0001: piece 15
    BitfieldMsg(b"\xa0\x01"),
)
REQUEST = (
    b"\x00\x00\x00\x0d"  # length 13
    b"\x06"  # id 6: request
    b"\x00\x00\x00\x07"  # piece index 7
    b"\x00\x00\x40\x00"  # begin 16384
    b"\x00\x00\x40\x00",  # length 16384
    Request(7, 16384, 16384),
)
PIECE = (
    b"\x00\x00\x00\x0c"  # length 12: id, index, begin and a 3-byte block
    b"\x07"  # id 7: piece
    b"\x00\x00\x00\x03"  # piece index 3
    b"\x00\x00\x80\x00"  # begin 32768
    b"abc",  # the block
    Piece(3, 32768, b"abc"),
)
EMPTY_PIECE = (
    b"\x00\x00\x00\x09"  # length 9: id, index, begin and no block
    b"\x07"  # id 7: piece
    b"\x00\x00\x00\x00"  # piece index 0
    b"\x00\x00\x00\x00",  # begin 0
    Piece(0, 0, b""),
)
CANCEL = (
    b"\x00\x00\x00\x0d"  # length 13
    b"\x08"  # id 8: cancel
    b"\x00\x00\x00\x07"  # piece index 7
    b"\x00\x00\x40\x00"  # begin 16384
    b"\x00\x00\x20\x00",  # length 8192
    Cancel(7, 16384, 8192),
)
PORT = (
    b"\x00\x00\x00\x03"  # length 3
    b"\x09"  # id 9: port (BEP 5)
    b"\x1a\xe1",  # port 6881
    Port(6881),
)
SUGGEST = (
    b"\x00\x00\x00\x05"  # length 5
    b"\x0d"  # id 13: suggest piece (BEP 6)
    b"\x00\x00\x00\x2a",  # piece index 42
    Suggest(42),
)
HAVE_ALL = (
    b"\x00\x00\x00\x01"  # length 1
    b"\x0e",  # id 14: have all (BEP 6)
    HaveAll(),
)
HAVE_NONE = (
    b"\x00\x00\x00\x01"  # length 1
    b"\x0f",  # id 15: have none (BEP 6)
    HaveNone(),
)
REJECT = (
    b"\x00\x00\x00\x0d"  # length 13
    b"\x10"  # id 16: reject request (BEP 6)
    b"\xff\xff\xff\xff"  # piece index 2**32 - 1
    b"\x00\x00\x00\x00"  # begin 0
    b"\x00\x00\x40\x00",  # length 16384
    Reject(2**32 - 1, 0, 16384),
)
ALLOWED_FAST = (
    b"\x00\x00\x00\x05"  # length 5
    b"\x11"  # id 17: allowed fast (BEP 6)
    b"\x00\x00\x00\x05",  # piece index 5
    AllowedFast(5),
)
EXTENSION_HANDSHAKE = (
    b"\x00\x00\x00\x1a"  # length 26
    b"\x14"  # id 20: extended (BEP 10)
    b"\x00"  # extended id 0: the extension handshake
    b"d1:md11:ut_metadatai3eee",  # payload: {"m": {"ut_metadata": 3}}
    Extended(0, b"d1:md11:ut_metadatai3eee"),
)
EXTENSION_MESSAGE = (
    b"\x00\x00\x00\x07"  # length 7
    b"\x14"  # id 20: extended (BEP 10)
    b"\x03"  # extended id 3, as the receiver assigned it
    b"\x00\xffxyz",  # payload, opaque here
    Extended(3, b"\x00\xffxyz"),
)
UNKNOWN = (
    b"\x00\x00\x00\x03"  # length 3
    b"\x63"  # id 99: nobody's
    b"\xfe\xff",  # payload, kept as is
    UnknownMessage(99, b"\xfe\xff"),
)

FIXTURES: list[tuple[bytes, Message]] = [
    KEEP_ALIVE,
    CHOKE,
    UNCHOKE,
    INTERESTED,
    NOT_INTERESTED,
    HAVE,
    BITFIELD,
    REQUEST,
    PIECE,
    EMPTY_PIECE,
    CANCEL,
    PORT,
    SUGGEST,
    HAVE_ALL,
    HAVE_NONE,
    REJECT,
    ALLOWED_FAST,
    EXTENSION_HANDSHAKE,
    EXTENSION_MESSAGE,
    UNKNOWN,
]


def _messages_decoder() -> WireDecoder:
    return WireDecoder(expect_handshake=False)


def _feed_bytewise(decoder: WireDecoder, data: bytes) -> list[WireEvent]:
    out: list[WireEvent] = []
    for i in range(len(data)):
        out += decoder.feed(data[i : i + 1])
    return out


class DecodeMessageTests(SynchronousTestCase):
    """Every message decodes from its fixture, fed three ways."""

    def test_whole(self) -> None:
        """Each fixture fed in one piece gives its message and leaves nothing buffered."""
        for data, message in FIXTURES:
            decoder = _messages_decoder()
            self.assertEqual(decoder.feed(data), [message], data)
            self.assertEqual(decoder.buffered, 0)

    def test_bytewise(self) -> None:
        """Each fixture fed one byte at a time gives its message only at the last byte."""
        for data, message in FIXTURES:
            decoder = _messages_decoder()
            for i in range(len(data) - 1):
                self.assertEqual(decoder.feed(data[i : i + 1]), [], data)
            self.assertEqual(decoder.feed(data[-1:]), [message], data)
            self.assertEqual(decoder.buffered, 0)

    def test_trailing(self) -> None:
        """Bytes of the next message stay buffered until it is complete."""
        have_bytes = HAVE[0]
        for data, message in FIXTURES:
            decoder = _messages_decoder()
            self.assertEqual(decoder.feed(data + have_bytes[:7]), [message], data)
            self.assertEqual(decoder.buffered, 7)
            self.assertEqual(decoder.feed(have_bytes[7:]), [Have(258)])
            self.assertEqual(decoder.buffered, 0)

    def test_stream(self) -> None:
        """All fixtures back to back decode in order, whole and byte by byte."""
        stream = b"".join(data for data, _ in FIXTURES)
        expected = [message for _, message in FIXTURES]
        self.assertEqual(_messages_decoder().feed(stream), expected)
        self.assertEqual(_feed_bytewise(_messages_decoder(), stream), expected)

    def test_block_is_bytes_copy(self) -> None:
        """A block is bytes that does not change when the fed buffer does."""
        data = bytearray(PIECE[0])
        (piece,) = _messages_decoder().feed(data)
        data[-3:] = b"XYZ"
        assert isinstance(piece, Piece)
        self.assertIs(type(piece.block), bytes)
        self.assertEqual(piece.block, b"abc")

    def test_split_block_is_bytes(self) -> None:
        """A block completed across two feeds is bytes too."""
        decoder = _messages_decoder()
        decoder.feed(PIECE[0][:10])
        (piece,) = decoder.feed(memoryview(PIECE[0])[10:])
        assert isinstance(piece, Piece)
        self.assertIs(type(piece.block), bytes)
        self.assertEqual(piece, PIECE[1])

    def test_buffers_one_partial_message(self) -> None:
        """Only the cut message is buffered, and only as far as it arrived."""
        block = bytes(range(256)) * 64
        message = encode(Piece(1, 0, block))
        decoder = _messages_decoder()
        out = decoder.feed(message * 2 + message[:5000])
        self.assertEqual(len(out), 2)
        self.assertEqual(decoder.buffered, 5000)
        out = decoder.feed(message[5000:] + message[:100])
        self.assertEqual(out, [Piece(1, 0, block)])
        self.assertEqual(decoder.buffered, 100)

    def test_feed_empty(self) -> None:
        """Feeding no bytes returns nothing and changes nothing."""
        decoder = _messages_decoder()
        decoder.feed(HAVE[0][:3])
        self.assertEqual(decoder.feed(b""), [])
        self.assertEqual(decoder.buffered, 3)

    def test_known_ids(self) -> None:
        """Message ids are grouped per BEP: 0-8 BEP 3, 9 BEP 5, 13-17 BEP 6, 20 BEP 10."""
        self.assertEqual([int(m) for m in MessageId], [*range(10), *range(13, 18), 20])


class DecodeHandshakeTests(SynchronousTestCase):
    """The handshake comes first and is reported in two steps."""

    def test_whole(self) -> None:
        """The whole handshake gives the info hash event, then the handshake."""
        decoder = WireDecoder()
        self.assertTrue(decoder.in_handshake)
        self.assertEqual(decoder.feed(HANDSHAKE), HANDSHAKE_EVENTS)
        self.assertFalse(decoder.in_handshake)
        self.assertEqual(decoder.buffered, 0)

    def test_bytewise(self) -> None:
        """Fed byte by byte, the info hash is reported at byte 48, the handshake at 68."""
        decoder = WireDecoder()
        seen = {}
        for i in range(len(HANDSHAKE)):
            for event in decoder.feed(HANDSHAKE[i : i + 1]):
                seen[i + 1] = event
        self.assertEqual(seen, {48: HANDSHAKE_EVENTS[0], 68: HANDSHAKE_EVENTS[1]})

    def test_trailing(self) -> None:
        """Messages after the handshake in the same data come out after it."""
        decoder = WireDecoder()
        out = decoder.feed(HANDSHAKE + BITFIELD[0] + HAVE[0][:2])
        self.assertEqual(out, HANDSHAKE_EVENTS + [BITFIELD[1]])
        self.assertEqual(decoder.buffered, 2)
        self.assertEqual(decoder.feed(HAVE[0][2:]), [HAVE[1]])

    def test_reserved_bits(self) -> None:
        """The handshake's reserved bits say which extensions the peer supports."""
        handshake = HANDSHAKE_EVENTS[1]
        assert isinstance(handshake, Handshake)
        self.assertEqual((handshake.fast, handshake.extended, handshake.dht), (True, True, True))
        bare = Handshake(INFO_HASH, PEER_ID, bytes(8))
        self.assertEqual((bare.fast, bare.extended, bare.dht), (False, False, False))

    def test_parse_prefix(self) -> None:
        """parse_handshake_prefix reads the info hash from 48 bytes, None before."""
        self.assertIsNone(parse_handshake_prefix(HANDSHAKE[:47]))
        self.assertEqual(parse_handshake_prefix(HANDSHAKE[:48]), HANDSHAKE_EVENTS[0])
        self.assertEqual(parse_handshake_prefix(HANDSHAKE + b"more"), HANDSHAKE_EVENTS[0])
        self.assertRaises(RemoteProtocolError, parse_handshake_prefix, b"\x13BitTorrent pr0")

    def test_bad_length_byte(self) -> None:
        """A first byte other than 19 is refused at once, naming the byte."""
        decoder = WireDecoder()
        with self.assertRaises(RemoteProtocolError) as caught:
            decoder.feed(b"G")
        self.assertIn("protocol name length 71, not 19", str(caught.exception))

    def test_bad_protocol_name(self) -> None:
        """A wrong protocol name is refused as soon as the wrong byte arrives."""
        decoder = WireDecoder()
        decoder.feed(b"\x13BitTorrent")
        with self.assertRaises(RemoteProtocolError) as caught:
            decoder.feed(b" Protocol")
        self.assertIn("b'BitTorrent Protocol', not b'BitTorrent protocol'", str(caught.exception))

    def test_bad_protocol_name_bytewise(self) -> None:
        """Byte by byte, the error comes with the first wrong byte."""
        bad = b"\x13BitTorrent protocoL"
        decoder = WireDecoder()
        for i in range(len(bad) - 1):
            decoder.feed(bad[i : i + 1])
        self.assertRaises(RemoteProtocolError, decoder.feed, bad[-1:])

    def test_http(self) -> None:
        """An HTTP request is not a handshake."""
        self.assertRaises(RemoteProtocolError, WireDecoder().feed, b"GET / HTTP/1.1\r\n\r\n")

    def test_without_handshake(self) -> None:
        """expect_handshake=False reads messages from the first byte."""
        self.assertEqual(WireDecoder(expect_handshake=False).feed(CHOKE[0]), [Choke()])


class DecodeErrorTests(SynchronousTestCase):
    """Malformed messages raise RemoteProtocolError, and the decoder is then spent."""

    def test_length_cap_at_header(self) -> None:
        """A length prefix over the cap is refused from the four length bytes alone."""
        decoder = WireDecoder(max_message_length=100, expect_handshake=False)
        with self.assertRaises(RemoteProtocolError) as caught:
            decoder.feed(b"\x00\x00\x00\x65")  # length 101
        self.assertIn("101 bytes exceeds the limit of 100", str(caught.exception))

    def test_length_cap_at_header_bytewise(self) -> None:
        """Fed byte by byte, the cap is checked when the fourth length byte arrives."""
        decoder = WireDecoder(expect_handshake=False)
        for byte in b"\x00\x10\x00":
            decoder.feed(bytes([byte]))
        self.assertRaises(RemoteProtocolError, decoder.feed, b"\x01")  # 2**20 + 1

    def test_length_cap_after_handshake(self) -> None:
        """The cap applies to a length prefix in the same data as the handshake."""
        decoder = WireDecoder(max_message_length=5)
        self.assertRaises(RemoteProtocolError, decoder.feed, HANDSHAKE + b"\x00\x00\x00\x06")

    def test_length_cap_inclusive(self) -> None:
        """A message exactly at the cap is accepted."""
        decoder = WireDecoder(max_message_length=12, expect_handshake=False)
        self.assertEqual(decoder.feed(PIECE[0]), [PIECE[1]])
        self.assertEqual(WireDecoder().max_message_length, DEFAULT_MAX_MESSAGE_LENGTH)

    def test_fixed_sizes(self) -> None:
        """Fixed-size messages with one byte too many or too few are refused."""
        for data, _ in FIXTURES:
            message_id = data[4:5]
            if data == KEEP_ALIVE[0] or message_id in (b"\x05", b"\x07", b"\x14", b"\x63"):
                continue
            payload = data[5:]
            for wrong in (payload + b"\x00", payload[:-1]):
                if len(wrong) == len(payload):
                    continue
                bad = (1 + len(wrong)).to_bytes(4, "big") + message_id + wrong
                self.assertRaises(RemoteProtocolError, _messages_decoder().feed, bad)

    def test_have_with_three_bytes(self) -> None:
        """HAVE with a 3-byte payload is refused, naming the message."""
        bad = (
            b"\x00\x00\x00\x04"  # length 4
            b"\x04"  # id 4: have
            b"\x00\x00\x01"  # three bytes where four belong
        )
        with self.assertRaises(RemoteProtocolError) as caught:
            _messages_decoder().feed(bad)
        self.assertIn("HAVE message with a 3-byte payload (expected 4)", str(caught.exception))

    def test_short_piece(self) -> None:
        """PIECE shorter than its index and begin fields is refused."""
        bad = (
            b"\x00\x00\x00\x08"  # length 8
            b"\x07"  # id 7: piece
            b"\x00\x00\x00\x01"  # piece index 1
            b"\x00\x00\x00"  # three bytes of begin, no block
        )
        self.assertRaises(RemoteProtocolError, _messages_decoder().feed, bad)

    def test_empty_extended(self) -> None:
        """EXTENDED without its extended id byte is refused."""
        self.assertRaises(RemoteProtocolError, _messages_decoder().feed, b"\x00\x00\x00\x01\x14")

    def test_spent_after_error(self) -> None:
        """After an error, feeding raises LocalProtocolError."""
        decoder = WireDecoder()
        self.assertRaises(RemoteProtocolError, decoder.feed, b"\x00")
        self.assertRaises(LocalProtocolError, decoder.feed, HANDSHAKE)

    def test_bad_cap(self) -> None:
        """A cap below one byte is refused."""
        self.assertRaises(ValueError, WireDecoder, 0)


class EncodeTests(SynchronousTestCase):
    """encode and the direct encoders produce the fixtures' bytes."""

    def test_fixtures(self) -> None:
        """Every fixture's message encodes to the fixture's bytes."""
        for data, message in FIXTURES:
            self.assertEqual(encode(message), data, message)

    def test_handshake(self) -> None:
        """encode_handshake and encode(Handshake) give the 68-byte handshake."""
        reserved = make_reserved(fast=True, extended=True, dht=True)
        self.assertEqual(encode_handshake(INFO_HASH, PEER_ID, reserved), HANDSHAKE)
        self.assertEqual(encode(Handshake(INFO_HASH, PEER_ID, reserved)), HANDSHAKE)
        self.assertRaises(ValueError, encode_handshake, INFO_HASH[:19], PEER_ID, reserved)

    def test_direct_encoders(self) -> None:
        """The direct encoders agree with encode."""
        self.assertEqual(encode_have(258), HAVE[0])
        self.assertEqual(encode_request(7, 16384, 16384), REQUEST[0])
        self.assertEqual(encode_cancel(7, 16384, 8192), CANCEL[0])
        self.assertEqual(encode_reject(2**32 - 1, 0, 16384), REJECT[0])

    def test_piece_header(self) -> None:
        """The PIECE header followed by the block is the whole PIECE."""
        self.assertEqual(encode_piece_header(3, 32768, 3), PIECE[0][:13])
        self.assertEqual(encode_piece_header(3, 32768, 3) + b"abc", PIECE[0])

    def test_reserved(self) -> None:
        """make_reserved sets exactly the bits asked for."""
        self.assertEqual(make_reserved(), b"\x00\x00\x00\x00\x00\x10\x00\x04")
        self.assertEqual(make_reserved(False, False, False), bytes(8))
        self.assertEqual(make_reserved(False, False, True), b"\x00" * 7 + b"\x01")

    def test_out_of_range(self) -> None:
        """Fields that do not fit their wire width raise ValueError."""
        self.assertRaises(ValueError, encode, Have(2**32))
        self.assertRaises(ValueError, encode, Port(65536))
        self.assertRaises(ValueError, encode, Extended(256, b""))

    def test_not_a_message(self) -> None:
        """Encoding something that is not a message raises TypeError."""
        self.assertRaises(TypeError, encode, "choke")  # type: ignore[arg-type]


# -- round trips -----------------------------------------------------------------

_U32 = st.integers(0, 2**32 - 1)
_KNOWN_IDS = {int(m) for m in MessageId}

MESSAGES = st.one_of(
    st.sampled_from(
        [KeepAlive(), Choke(), Unchoke(), Interested(), NotInterested(), HaveAll(), HaveNone()]
    ),
    st.builds(Have, _U32),
    st.builds(BitfieldMsg, st.binary(max_size=40)),
    st.builds(Request, _U32, _U32, _U32),
    st.builds(Piece, _U32, _U32, st.binary(max_size=300)),
    st.builds(Cancel, _U32, _U32, _U32),
    st.builds(Port, st.integers(0, 0xFFFF)),
    st.builds(Suggest, _U32),
    st.builds(Reject, _U32, _U32, _U32),
    st.builds(AllowedFast, _U32),
    st.builds(Extended, st.integers(0, 255), st.binary(max_size=60)),
    st.builds(
        UnknownMessage,
        st.integers(0, 255).filter(lambda i: i not in _KNOWN_IDS),
        st.binary(max_size=30),
    ),
)


def _chunks(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in zip(points, points[1:])]


class RoundTripTests(SynchronousTestCase):
    """encode then decode gives the messages back, however the stream is cut."""

    @settings(max_examples=300, deadline=None)
    @given(st.lists(MESSAGES, max_size=20), st.lists(st.integers(0, 10_000), max_size=30))
    def test_messages(self, messages: list[Message], cuts: list[int]) -> None:
        """A random message stream cut at random points decodes to the same messages."""
        stream = b"".join(encode(m) for m in messages)
        decoder = WireDecoder(expect_handshake=False)
        out: list[WireEvent] = []
        for chunk in _chunks(stream, cuts):
            out += decoder.feed(chunk)
        self.assertEqual(out, messages)
        self.assertEqual(decoder.buffered, 0)

    @settings(max_examples=200, deadline=None)
    @given(
        st.binary(min_size=20, max_size=20),
        st.binary(min_size=20, max_size=20),
        st.binary(min_size=8, max_size=8),
        st.lists(MESSAGES, max_size=8),
        st.lists(st.integers(0, 2_000), max_size=20),
    )
    def test_handshake_then_messages(
        self,
        info_hash: bytes,
        peer_id: bytes,
        reserved: bytes,
        messages: list[Message],
        cuts: list[int],
    ) -> None:
        """A handshake and messages, cut at random points, decode in order."""
        stream = encode_handshake(info_hash, peer_id, reserved)
        stream += b"".join(encode(m) for m in messages)
        decoder = WireDecoder()
        out: list[WireEvent] = []
        for chunk in _chunks(stream, cuts):
            out += decoder.feed(chunk)
        expected: list[WireEvent] = [
            HandshakeInfoHash(info_hash, reserved),
            Handshake(info_hash, peer_id, reserved),
        ]
        self.assertEqual(out, expected + list(messages))
