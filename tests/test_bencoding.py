"""Tests for txbittorrent.core.bencoding."""

from __future__ import annotations

import time
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import (
    MAX_DEPTH_CAP,
    MAX_INT_DIGITS_CAP,
    Limits,
    decode,
    decode_prefix,
    decode_spans,
    encode,
)
from txbittorrent.errors import BencodeError, TxBitTorrentError

# -- fixtures: (annotated encoding, decoded value) ------------------------------

INTEGERS = [
    (b"i0e", 0),  # zero: the only integer that may start with 0
    (b"i42e", 42),
    (b"i-42e", -42),  # a minus sign, then the digits
    (b"i9223372036854775808e", 2**63),  # wider than 64 bits is still an integer
    (b"i-9223372036854775809e", -(2**63) - 1),
]

STRINGS = [
    (b"0:", b""),  # length 0, no bytes
    (b"4:spam", b"spam"),
    (b"3:\x00\xff:", b"\x00\xff:"),  # any bytes, a colon included, are content
    (b"10:0123456789", b"0123456789"),  # a two-digit length
    (b"3:i1e", b"i1e"),  # bencoding inside a string is just bytes
]

LIST = (
    b"l"  # list start
    b"4:spam"  # item 0: the 4-byte string "spam"
    b"i-3e"  # item 1: the integer -3
    b"le"  # item 2: an empty list
    b"e"  # list end
)
LIST_VALUE = [b"spam", -3, []]

DICT = (
    b"d"  # dictionary start
    b"3:bar"  # key: the 3-byte string "bar"
    b"4:spam"  # its value: the 4-byte string "spam"
    b"3:foo"  # key: "foo" (keys are sorted as raw bytes)
    b"i42e"  # its value: the integer 42
    b"e"  # dictionary end
)
DICT_VALUE = {b"bar": b"spam", b"foo": 42}

NESTED = (
    b"d"  # outer dictionary
    b"4:info"  # key "info"
    b"d"  # its value: a dictionary
    b"5:files"  # key "files"
    b"l"  # a list of dictionaries
    b"d"  # file 0
    b"6:length"  # key "length"
    b"i7e"  # 7 bytes
    b"4:path"  # key "path"
    b"l"  # a list of path components
    b"1:a"  # "a"
    b"1:b"  # "b"
    b"e"  # end of path
    b"e"  # end of file 0
    b"e"  # end of files
    b"4:name"  # key "name"
    b"4:root"  # "root"
    b"e"  # end of info
    b"e"  # end of the outer dictionary
)
NESTED_VALUE = {
    b"info": {b"files": [{b"length": 7, b"path": [b"a", b"b"]}], b"name": b"root"}
}

UNSORTED = (
    b"d"  # dictionary start
    b"1:b"  # key "b" first...
    b"i1e"  # = 1
    b"1:a"  # ...then key "a": out of order, which BEP 3 forbids
    b"i2e"  # = 2
    b"e"  # dictionary end
)

VALID = (
    INTEGERS
    + STRINGS
    + [(LIST, LIST_VALUE), (DICT, DICT_VALUE), (NESTED, NESTED_VALUE), (b"de", {})]
)

# Each malformed input, with the reason BencodeError must give and whether the
# input is still malformed as the prefix of longer data (b"i1ee" is a valid
# value followed by a stray byte).
MALFORMED = [
    (b"d1:ai0e-6:", "dictionary key is not a string", True),  # hangs bencode.py
    (b"i+5e", "invalid integer", True),  # a plus sign
    (b"i 5e", "invalid integer", True),  # a space
    (b"i1_0e", "invalid integer", True),  # an underscore, as int() allows
    (b"i-0e", "non-canonical integer", True),  # minus zero
    (b"i05e", "non-canonical integer", True),  # a leading zero
    (b"i-05e", "non-canonical integer", True),
    (b"ie", "invalid integer", True),  # no digits
    (b"i-e", "invalid integer", True),  # a sign and no digits
    (b"i--1e", "invalid integer", True),
    (b"i\xd9\xa1e", "invalid integer", True),  # an Arabic-Indic digit in UTF-8
    (b"i1", "unterminated integer", True),
    (b"d1:ai1e1:ai2ee", "duplicate dictionary key", True),
    (b"5:abc", "runs past the end", True),  # too few bytes for the length
    (b"", "unexpected end of data", True),
    (b"x", "unexpected byte", True),
    (b"e", "unexpected byte", True),
    (b"-1:a", "unexpected byte", True),  # a negative string length
    (b"l", "unterminated list", True),
    (b"li1e", "unterminated list", True),
    (b"d", "unterminated dictionary", True),
    (b"d1:a", "unexpected end of data", True),  # a key without a value
    (b"d1:ae", "unexpected byte", True),  # ditto, then the end
    (b"di1ei2ee", "dictionary key is not a string", True),  # an integer key
    (b"dlee1:ae", "dictionary key is not a string", True),  # a list key
    (b"i1ee", "trailing bytes", False),
    (b"01:a", "leading zero", True),  # string length with a leading zero
    (b"1111111111111111111111111:a", "invalid string length", True),  # 25 digits
    (b"99999999999999999999:a", "runs past the end", True),  # 20 digits, too long
]


def _deep(depth: int, open_: bytes = b"l") -> bytes:
    """``depth`` nested empty containers."""
    if open_ == b"l":
        return b"l" * depth + b"e" * depth
    return b"d1:a" * (depth - 1) + b"de" + b"e" * (depth - 1)


class DecodeTests(SynchronousTestCase):
    """decode, decode_prefix and decode_spans on well-formed input."""

    def test_fixtures(self) -> None:
        """Each annotated fixture decodes to its value."""
        for data, value in VALID:
            self.assertEqual(decode(data), value, data)

    def test_types(self) -> None:
        """Strings decode to bytes (never str) and containers to list and dict."""
        value = decode(NESTED)
        self.assertIs(type(value), dict)
        self.assertIs(type(value[b"info"][b"name"]), bytes)
        self.assertIs(type(value[b"info"][b"files"]), list)

    def test_bytearray_and_memoryview(self) -> None:
        """bytearray and memoryview input decode like bytes."""
        for data, value in VALID:
            self.assertEqual(decode(bytearray(data)), value, data)
            self.assertEqual(decode(memoryview(data)), value, data)

    def test_prefix_leaves_trailing_bytes(self) -> None:
        """decode_prefix stops at the end of the value, whatever follows."""
        for data, value in VALID:
            for trailer in [b"", b"e", b"i1e", b"\xff garbage"]:
                self.assertEqual(decode_prefix(data + trailer), (value, len(data)), data)
                self.assertEqual(
                    decode_prefix(memoryview(bytearray(data + trailer))),
                    (value, len(data)),
                    data,
                )

    def test_prefix_at_offset(self) -> None:
        """decode_prefix decodes at the given start and returns an absolute end."""
        self.assertEqual(decode_prefix(b"xxi5eyy", 2), (5, 5))
        self.assertEqual(decode_prefix(b"4:spam3:egg", 6), (b"egg", 11))

    def test_prefix_past_end(self) -> None:
        """A start at or past the end is a BencodeError."""
        self.assertRaises(BencodeError, decode_prefix, b"i1e", 3)
        self.assertRaises(BencodeError, decode_prefix, b"i1e", 10)

    def test_bep9_metadata_message(self) -> None:
        """A ut_metadata data message: a dictionary followed by raw piece bytes."""
        message = (
            b"d"  # the header dictionary
            b"8:msg_type"  # key "msg_type"
            b"i1e"  # 1: data
            b"5:piece"  # key "piece"
            b"i0e"  # piece 0
            b"10:total_size"  # key "total_size"
            b"i5e"  # 5 bytes of metadata
            b"e"  # end of the dictionary
            b"d1:ae"  # the raw metadata bytes, not part of the dictionary
        )
        value, end = decode_prefix(message)
        self.assertEqual(value, {b"msg_type": 1, b"piece": 0, b"total_size": 5})
        self.assertEqual(message[end:], b"d1:ae")

    def test_unsorted_accepted(self) -> None:
        """Unsorted keys are accepted by default."""
        self.assertEqual(decode(UNSORTED), {b"a": 2, b"b": 1})

    def test_unsorted_rejected_when_required(self) -> None:
        """require_sorted=True rejects unsorted keys, at any depth."""
        e = self.assertRaises(BencodeError, decode, UNSORTED, require_sorted=True)
        self.assertIn("out of order", e.reason)
        self.assertRaises(BencodeError, decode, b"l" + UNSORTED + b"e", require_sorted=True)
        self.assertRaises(BencodeError, decode_prefix, UNSORTED, require_sorted=True)

    def test_sorted_required_accepts_sorted(self) -> None:
        """require_sorted=True accepts canonical input, sorted as raw bytes."""
        self.assertEqual(decode(DICT, require_sorted=True), DICT_VALUE)
        self.assertEqual(decode(b"d1:Ai1e1:ai2ee", require_sorted=True), {b"A": 1, b"a": 2})

    def test_spans(self) -> None:
        """decode_spans gives each top-level value's exact byte span."""
        value, spans = decode_spans(DICT)
        self.assertEqual(value, DICT_VALUE)
        self.assertEqual(spans, {b"bar": (6, 12), b"foo": (17, 21)})
        self.assertEqual(DICT[6:12], b"4:spam")
        self.assertEqual(DICT[17:21], b"i42e")

    def test_spans_unsorted(self) -> None:
        """decode_spans accepts unsorted keys and gives their spans as they stand."""
        value, spans = decode_spans(UNSORTED)
        self.assertEqual(value, {b"a": 2, b"b": 1})
        self.assertEqual(spans, {b"b": (4, 7), b"a": (10, 13)})

    def test_spans_nested_value(self) -> None:
        """The span of a nested dictionary re-decodes to that dictionary."""
        value, spans = decode_spans(NESTED)
        start, end = spans[b"info"]
        self.assertEqual(decode(NESTED[start:end]), value[b"info"])
        self.assertEqual(NESTED[start], ord("d"))
        self.assertEqual(end, len(NESTED) - 1)

    def test_spans_non_canonical_inner(self) -> None:
        """A non-canonical inner dictionary's span is its original bytes."""
        data = b"d4:info" + UNSORTED + b"e"
        value, spans = decode_spans(memoryview(data))
        start, end = spans[b"info"]
        self.assertEqual(data[start:end], UNSORTED)
        self.assertNotEqual(encode(value[b"info"]), UNSORTED)

    def test_spans_rejections(self) -> None:
        """decode_spans needs a single top-level dictionary."""
        for data in [b"", b"le", b"i1e", b"4:spam", b"dei1e", b"d1:a", b"d1:ai1e1:ai1ee"]:
            self.assertRaises(BencodeError, decode_spans, data)

    def test_not_bytes(self) -> None:
        """str input is API misuse: TypeError, not BencodeError."""
        self.assertRaises(TypeError, decode, "i1e")
        self.assertRaises(TypeError, decode_prefix, "i1e")
        self.assertRaises(TypeError, decode_spans, "de")


class MalformedTests(SynchronousTestCase):
    """Every malformed input raises BencodeError, and quickly."""

    def test_each(self) -> None:
        """Each malformed case raises BencodeError with its reason."""
        started = time.perf_counter()
        for data, reason, _ in MALFORMED:
            for given_ in (data, bytearray(data), memoryview(data)):
                e = self.assertRaises(BencodeError, decode, given_)
                self.assertIn(reason, e.reason, data)
                self.assertIsInstance(e, TxBitTorrentError)
                self.assertIsInstance(e.offset, int)
        self.assertLess(time.perf_counter() - started, 1.0)

    def test_each_with_trailing_bytes(self) -> None:
        """A malformed value stays malformed with bytes after it (decode_prefix)."""
        for data, _, as_prefix in MALFORMED:
            if as_prefix:
                self.assertRaises(BencodeError, decode_prefix, data + b"\x00")
                self.assertRaises(BencodeError, decode_prefix, bytearray(data + b"\x00"))

    def test_trailing_bytes(self) -> None:
        """decode refuses a valid value followed by anything."""
        for data, _ in VALID:
            e = self.assertRaises(BencodeError, decode, data + b"e")
            self.assertEqual(e.offset, len(data))

    def test_every_truncation(self) -> None:
        """Every proper prefix of a valid encoding raises BencodeError."""
        for data, _ in VALID:
            for cut in range(len(data)):
                self.assertRaises(BencodeError, decode, data[:cut])

    def test_offsets(self) -> None:
        """The error says where the problem is."""
        self.assertEqual(self.assertRaises(BencodeError, decode, b"d1:ai0e-6:").offset, 7)
        self.assertEqual(self.assertRaises(BencodeError, decode, b"li1ei05ee").offset, 4)
        self.assertEqual(self.assertRaises(BencodeError, decode, b"di1ei2ee").offset, 1)

    def test_message(self) -> None:
        """The message names the offset and the reason."""
        e = self.assertRaises(BencodeError, decode, b"i05e")
        self.assertEqual(str(e), "invalid bencoding at byte 0: non-canonical integer b'05'")

    def test_huge_length_is_quick(self) -> None:
        """A string claiming 10**19 bytes is refused without allocating them."""
        started = time.perf_counter()
        self.assertRaises(BencodeError, decode, b"l9999999999999999999:" + b"x" * 1000 + b"e")
        self.assertLess(time.perf_counter() - started, 1.0)


class LimitsTests(SynchronousTestCase):
    """Limits bound depth, item count and integer width, exactly."""

    def test_depth_at_limit(self) -> None:
        """Exactly max_depth nested containers are accepted."""
        for open_ in (b"l", b"d"):
            decode(_deep(5, open_), limits=Limits(max_depth=5))

    def test_depth_past_limit(self) -> None:
        """One container more than max_depth is refused."""
        for open_ in (b"l", b"d"):
            e = self.assertRaises(
                BencodeError, decode, _deep(6, open_), limits=Limits(max_depth=5)
            )
            self.assertIn("nested deeper than 5", e.reason)

    def test_default_depth(self) -> None:
        """The default limit takes 64 levels and refuses 65."""
        decode(_deep(64))
        self.assertRaises(BencodeError, decode, _deep(65))

    def test_very_deep_is_quick(self) -> None:
        """A million open brackets fail fast, with no RecursionError."""
        started = time.perf_counter()
        self.assertRaises(BencodeError, decode, b"l" * 1_000_000)
        self.assertRaises(BencodeError, decode, b"d1:a" * 1_000_000)
        self.assertLess(time.perf_counter() - started, 1.0)

    def test_depth_limit_capped(self) -> None:
        """A depth limit past what recursion allows is refused when Limits is built,
        and the highest allowed one decodes that deep without RecursionError."""
        self.assertRaises(ValueError, Limits, max_depth=MAX_DEPTH_CAP + 1)
        self.assertRaises(ValueError, Limits, max_depth=50_000)
        limits = Limits(max_depth=MAX_DEPTH_CAP)
        decode(_deep(MAX_DEPTH_CAP), limits=limits)
        self.assertRaises(BencodeError, decode, _deep(MAX_DEPTH_CAP + 1), limits=limits)

    def test_items_at_limit(self) -> None:
        """A document of exactly max_items values is accepted."""
        # the list and its four integers are five items
        self.assertEqual(decode(b"li1ei2ei3ei4ee", limits=Limits(max_items=5)), [1, 2, 3, 4])
        # the dictionary, a key and its value are three items
        self.assertEqual(decode(b"d1:ai1ee", limits=Limits(max_items=3)), {b"a": 1})

    def test_items_past_limit(self) -> None:
        """One value more than max_items is refused."""
        e = self.assertRaises(
            BencodeError, decode, b"li1ei2ei3ei4ei5ee", limits=Limits(max_items=5)
        )
        self.assertIn("more than 5 items", e.reason)
        self.assertRaises(BencodeError, decode, b"d1:ai1ee", limits=Limits(max_items=2))
        self.assertRaises(
            BencodeError, decode_spans, b"d1:ai1e1:bi2ee", limits=Limits(max_items=4)
        )

    def test_int_digits_at_limit(self) -> None:
        """An integer of exactly max_int_digits digits is accepted, either sign."""
        limits = Limits(max_int_digits=5)
        self.assertEqual(decode(b"i12345e", limits=limits), 12345)
        self.assertEqual(decode(b"i-12345e", limits=limits), -12345)

    def test_int_digits_past_limit(self) -> None:
        """An integer of max_int_digits + 1 digits is refused, either sign."""
        limits = Limits(max_int_digits=5)
        self.assertRaises(BencodeError, decode, b"i123456e", limits=limits)
        self.assertRaises(BencodeError, decode, b"i-123456e", limits=limits)

    def test_default_int_digits(self) -> None:
        """The default takes 64 digits and refuses 65."""
        self.assertEqual(decode(b"i" + b"9" * 64 + b"e"), 10**64 - 1)
        self.assertRaises(BencodeError, decode, b"i" + b"9" * 65 + b"e")

    def test_int_digits_limit_capped(self) -> None:
        """A digit limit past Python's int-conversion limit (4300) is refused when
        Limits is built; at the cap, integers decode and one digit more is refused."""
        self.assertRaises(ValueError, Limits, max_int_digits=5000)
        limits = Limits(max_int_digits=MAX_INT_DIGITS_CAP)
        value = decode(b"i" + b"1" * MAX_INT_DIGITS_CAP + b"e", limits=limits)
        self.assertEqual(len(str(value)), MAX_INT_DIGITS_CAP)
        self.assertRaises(
            BencodeError, decode, b"i" + b"1" * (MAX_INT_DIGITS_CAP + 1) + b"e", limits=limits
        )


class EncodeTests(SynchronousTestCase):
    """encode produces canonical bencoding."""

    def test_fixtures(self) -> None:
        """Each annotated fixture is what its value encodes to."""
        for data, value in VALID:
            self.assertEqual(encode(value), data)

    def test_sorts_keys(self) -> None:
        """Keys are written sorted as raw bytes, whatever the dict's order."""
        self.assertEqual(encode({b"b": 1, b"a": 2, b"B": 3}), b"d1:Bi3e1:ai2e1:bi1ee")

    def test_unsorted_input_canonicalised(self) -> None:
        """Re-encoding a decoded unsorted dictionary sorts it."""
        self.assertEqual(encode(decode(UNSORTED)), b"d1:ai2e1:bi1ee")

    def test_str_as_utf8(self) -> None:
        """str values and keys are written as UTF-8."""
        self.assertEqual(encode("\u00e9t\u00e9"), b"5:\xc3\xa9t\xc3\xa9")
        self.assertEqual(encode({"k\u00e9": "v"}), b"d3:k\xc3\xa91:ve")

    def test_tuple_as_list(self) -> None:
        """A tuple is written as a list."""
        self.assertEqual(encode((1, b"a")), b"li1e1:ae")

    def test_big_int(self) -> None:
        """Integers of any width are written in full."""
        self.assertEqual(encode(-(10**30)), b"i-1000000000000000000000000000000e")

    def test_bool_rejected(self) -> None:
        """Booleans have no bencoding, at the top or nested."""
        for value in [True, False, [True], {b"a": False}, [[1, (True,)]]]:
            self.assertRaises(BencodeError, encode, value)

    def test_float_rejected(self) -> None:
        """Floats are refused with BencodeError."""
        for value in [1.5, [0.0], {b"a": float("nan")}]:
            self.assertRaises(BencodeError, encode, value)

    def test_other_types_rejected(self) -> None:
        """None, sets, int keys, a key given as both str and bytes, and str
        that is not valid Unicode are refused."""
        for value in [None, [None], {1, 2}, {1: 2}, {"a": 1, b"a": 2}, object(), "\udc80"]:
            self.assertRaises(BencodeError, encode, value)


# -- properties ----------------------------------------------------------------

_values: st.SearchStrategy[Any] = st.recursive(
    st.integers() | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=5)
    | st.dictionaries(st.binary(max_size=8), children, max_size=5),
    max_leaves=30,
)

_tokens = st.lists(
    st.sampled_from(
        [b"i", b"e", b"l", b"d", b"0", b"1", b"9", b"-", b":", b"1:a", b"2:", b"i1e", b"\x00"]
    ),
    max_size=40,
).map(b"".join)


def _check_decodes_or_fails(case: SynchronousTestCase, data: bytes) -> None:
    """``data`` decodes to a value that re-encodes and re-decodes to itself,
    or raises BencodeError; and strict decoding accepts only canonical bytes."""
    try:
        value = decode(data)
    except BencodeError:
        pass
    else:
        case.assertEqual(decode(encode(value)), value)
    try:
        strict = decode(data, require_sorted=True)
    except BencodeError:
        pass
    else:
        case.assertEqual(encode(strict), data)


class PropertyTests(SynchronousTestCase):
    """Hypothesis properties; the deadline turns a hang into a failure."""

    @settings(max_examples=400, deadline=500)
    @given(_values)
    def test_round_trip(self, value: Any) -> None:
        """decode(encode(v)) == v, and strict decoding accepts the encoding."""
        data = encode(value)
        self.assertEqual(decode(data), value)
        self.assertEqual(decode(data, require_sorted=True), value)

    @settings(max_examples=200, deadline=500)
    @given(st.dictionaries(st.binary(max_size=8), _values, max_size=6))
    def test_spans_redecode(self, value: dict[bytes, Any]) -> None:
        """Every span from decode_spans re-decodes to its key's value."""
        data = encode(value)
        decoded, spans = decode_spans(data)
        self.assertEqual(decoded, value)
        self.assertEqual(set(spans), set(value))
        for key, (start, end) in spans.items():
            self.assertEqual(decode(data[start:end]), value[key])

    @settings(max_examples=400, deadline=500)
    @given(st.binary(max_size=200))
    def test_arbitrary_bytes(self, data: bytes) -> None:
        """Arbitrary bytes decode consistently or raise BencodeError only."""
        _check_decodes_or_fails(self, data)

    @settings(max_examples=400, deadline=500)
    @given(_tokens)
    def test_arbitrary_tokens(self, data: bytes) -> None:
        """Streams of bencoding tokens decode consistently or raise BencodeError only."""
        _check_decodes_or_fails(self, data)

    @settings(max_examples=400, deadline=500)
    @given(
        _values,
        st.integers(min_value=0),
        st.sampled_from(["insert", "delete", "flip"]),
        st.integers(0, 255),
    )
    def test_mutations(self, value: Any, where: int, how: str, byte: int) -> None:
        """Inserting, deleting or flipping one byte of a valid encoding never
        raises anything but BencodeError."""
        data = bytearray(encode(value))
        at = where % (len(data) + (how == "insert"))
        if how == "insert":
            data.insert(at, byte)
        elif how == "delete":
            del data[at]
        else:
            data[at] ^= byte or 0xFF
        _check_decodes_or_fails(self, bytes(data))
        try:
            decode_prefix(memoryview(data))
        except BencodeError:
            pass
