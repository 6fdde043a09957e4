"""Bencoding (BEP 3): a strict, bounded decoder and a canonical encoder.

Theory of operation
-------------------
Every byte we decode comes from somewhere we do not trust: a .torrent file, a
peer's extension message, a tracker's reply, a resume file that may have been
truncated by a crash.  ``decode`` therefore

* accepts exactly the grammar of BEP 3 and nothing else: integers are ``i``, an
  optional ``-``, ASCII digits, ``e``, with no leading zeros, no ``-0``, no
  ``+``, spaces or underscores; string lengths have no leading zeros; dictionary
  keys are byte strings and never repeat;
* runs in time linear in the input and never allocates more than a small
  multiple of it: nesting depth, item count and integer width are capped
  (``Limits``), and a string length is checked against the bytes that remain
  before anything is sliced;
* raises ``BencodeError`` (with the byte offset) for every malformed input and
  never anything else.

Dictionary keys that are not sorted are accepted (``require_sorted=False``, the
default), because real .torrent files and trackers produce them and libtorrent
accepts them; the raw bytes of the ``info`` dictionary are what the info hash is
computed over, so no information is lost by the leniency.  ``decode_spans``
also returns where each top-level dictionary value starts and ends, which is
how the metainfo parser finds the exact ``info`` bytes.

Encoding uses bencode2 (a maintained native library) and always produces the
canonical form: sorted keys, minimal integers.  bencode2's decoder is not used
because it rejects unsorted keys and cannot report spans or decode a prefix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union

import bencode2

from txbittorrent.errors import BencodeError

__all__ = ["Limits", "BValue", "encode", "decode", "decode_prefix", "decode_spans"]

BValue = Union[int, bytes, list[Any], dict[bytes, Any]]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what one call to ``decode`` accepts."""

    max_depth: int = 64
    """Deepest nesting of lists and dictionaries."""
    max_items: int = 4_000_000
    """Most values (integers, strings, lists, dictionaries) in one document."""
    max_int_digits: int = 64
    """Longest integer literal, in digits (64 covers any 64-bit value amply)."""

    def __post_init__(self) -> None:
        # The decoder recurses twice per level, and int() refuses more than
        # 4300 digits by default: keep both well inside what Python allows.
        if not 1 <= self.max_depth <= MAX_DEPTH_CAP:
            raise ValueError(f"max_depth must be between 1 and {MAX_DEPTH_CAP}")
        if not 1 <= self.max_int_digits <= MAX_INT_DIGITS_CAP:
            raise ValueError(f"max_int_digits must be between 1 and {MAX_INT_DIGITS_CAP}")
        if self.max_items < 1:
            raise ValueError("max_items must be positive")


MAX_DEPTH_CAP = 256
MAX_INT_DIGITS_CAP = 4000


DEFAULT_LIMITS = Limits()

_DIGITS = frozenset(b"0123456789")


class _Decoder:
    """One decoding pass over ``data``.  Single use."""

    __slots__ = ("data", "end", "limits", "items", "require_sorted")

    def __init__(self, data: bytes, limits: Limits, require_sorted: bool) -> None:
        self.data = data
        self.end = len(data)
        self.limits = limits
        self.items = 0
        self.require_sorted = require_sorted

    def fail(self, reason: str, offset: int) -> BencodeError:
        return BencodeError(reason, offset)

    def count(self, pos: int) -> None:
        self.items += 1
        if self.items > self.limits.max_items:
            raise self.fail(f"more than {self.limits.max_items} items", pos)

    def value(self, pos: int, depth: int) -> tuple[Any, int]:
        """Decode the value starting at ``pos``; return it and the next position."""
        if pos >= self.end:
            raise self.fail("unexpected end of data", pos)
        self.count(pos)
        c = self.data[pos]
        if c == 0x69:  # 'i'
            return self.integer(pos)
        if 0x30 <= c <= 0x39:
            return self.string(pos)
        if c == 0x6C:  # 'l'
            return self.list_(pos, depth)
        if c == 0x64:  # 'd'
            return self.dict_(pos, depth)
        raise self.fail(f"unexpected byte {bytes([c])!r}", pos)

    def integer(self, pos: int) -> tuple[int, int]:
        data = self.data
        e = data.find(b"e", pos + 1, pos + 3 + self.limits.max_int_digits)
        if e < 0:
            if data.find(b"e", pos + 1) < 0:
                raise self.fail("unterminated integer", pos)
            raise self.fail("integer too long", pos)
        body = data[pos + 1 : e]
        digits = body[1:] if body[:1] == b"-" else body
        if not digits or not _DIGITS.issuperset(digits):
            raise self.fail(f"invalid integer {body[:40]!r}", pos)
        if len(digits) > self.limits.max_int_digits:
            raise self.fail("integer too long", pos)
        if digits[0] == 0x30 and (len(digits) > 1 or body[:1] == b"-"):
            raise self.fail(f"non-canonical integer {body[:40]!r}", pos)
        return int(body), e + 1

    def string(self, pos: int) -> tuple[bytes, int]:
        data = self.data
        colon = data.find(b":", pos, pos + 21)
        if colon < 0:
            raise self.fail("invalid string length", pos)
        length_digits = data[pos:colon]
        if not _DIGITS.issuperset(length_digits):
            raise self.fail(f"invalid string length {length_digits!r}", pos)
        if length_digits[0] == 0x30 and len(length_digits) > 1:
            raise self.fail("string length with leading zero", pos)
        length = int(length_digits)
        start = colon + 1
        stop = start + length
        if stop > self.end:
            raise self.fail(f"string of {length} bytes runs past the end", pos)
        return data[start:stop], stop

    def list_(self, pos: int, depth: int) -> tuple[list[Any], int]:
        if depth >= self.limits.max_depth:
            raise self.fail(f"nested deeper than {self.limits.max_depth}", pos)
        out: list[Any] = []
        p = pos + 1
        data = self.data
        while True:
            if p >= self.end:
                raise self.fail("unterminated list", pos)
            if data[p] == 0x65:  # 'e'
                return out, p + 1
            item, p = self.value(p, depth + 1)
            out.append(item)

    def dict_(
        self, pos: int, depth: int, spans: dict[bytes, tuple[int, int]] | None = None
    ) -> tuple[dict[bytes, Any], int]:
        if depth >= self.limits.max_depth:
            raise self.fail(f"nested deeper than {self.limits.max_depth}", pos)
        out: dict[bytes, Any] = {}
        p = pos + 1
        data = self.data
        previous: bytes | None = None
        while True:
            if p >= self.end:
                raise self.fail("unterminated dictionary", pos)
            c = data[p]
            if c == 0x65:  # 'e'
                return out, p + 1
            if not 0x30 <= c <= 0x39:
                raise self.fail("dictionary key is not a string", p)
            self.count(p)
            key_at = p
            key, p = self.string(p)
            if key in out:
                raise self.fail(f"duplicate dictionary key {key[:40]!r}", key_at)
            if self.require_sorted and previous is not None and key < previous:
                raise self.fail(f"dictionary key {key[:40]!r} out of order", key_at)
            previous = key
            start = p
            out[key], p = self.value(p, depth + 1)
            if spans is not None:
                spans[key] = (start, p)


def _as_bytes(data: bytes | bytearray | memoryview) -> bytes:
    if isinstance(data, bytes):
        return data
    if isinstance(data, (bytearray, memoryview)):
        return bytes(data)
    raise TypeError(f"bencoded data must be bytes, not {type(data).__name__}")


def decode_prefix(
    data: bytes | bytearray | memoryview,
    start: int = 0,
    *,
    limits: Limits = DEFAULT_LIMITS,
    require_sorted: bool = False,
) -> tuple[Any, int]:
    """Decode one value at ``data[start:]``; return it and the offset just past it.

    Bytes after the value are left alone (BEP 9 puts raw data there)."""
    raw = _as_bytes(data)
    return _Decoder(raw, limits, require_sorted).value(start, 0)


def decode(
    data: bytes | bytearray | memoryview,
    *,
    limits: Limits = DEFAULT_LIMITS,
    require_sorted: bool = False,
) -> Any:
    """Decode exactly one value that fills ``data``; raise ``BencodeError`` otherwise."""
    raw = _as_bytes(data)
    value, end = _Decoder(raw, limits, require_sorted).value(0, 0)
    if end != len(raw):
        raise BencodeError(f"{len(raw) - end} trailing bytes after the value", end)
    return value


def decode_spans(
    data: bytes | bytearray | memoryview,
    *,
    limits: Limits = DEFAULT_LIMITS,
) -> tuple[dict[bytes, Any], dict[bytes, tuple[int, int]]]:
    """Decode a document whose top level is a dictionary.

    Returns the dictionary and, for each of its keys, the ``(start, end)`` byte
    span of that key's value in ``data``, so ``data[start:end]`` is the value's
    exact encoding as it appeared."""
    raw = _as_bytes(data)
    if not raw or raw[0] != 0x64:
        raise BencodeError("top level is not a dictionary", 0)
    decoder = _Decoder(raw, limits, False)
    decoder.count(0)
    spans: dict[bytes, tuple[int, int]] = {}
    value, end = decoder.dict_(0, 0, spans)
    if end != len(raw):
        raise BencodeError(f"{len(raw) - end} trailing bytes after the value", end)
    return value, spans


MAX_ENCODE_DEPTH = 1000


def _check_encodable(value: Any) -> None:
    """Refuse what bencoding cannot say (booleans anywhere, floats, None) and
    nesting deep enough to hurt the native encoder."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, bool):
            raise BencodeError("booleans have no bencoding")
        if isinstance(item, (int, bytes, bytearray, memoryview, str)):
            continue
        if depth >= MAX_ENCODE_DEPTH:
            raise BencodeError(f"nested deeper than {MAX_ENCODE_DEPTH}")
        if isinstance(item, (list, tuple)):
            stack.extend((v, depth + 1) for v in item)
        elif isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        else:
            raise BencodeError(f"cannot encode {type(item).__name__}")


def encode(value: Any) -> bytes:
    """Encode ints, bytes (and str as UTF-8), lists/tuples and dicts canonically."""
    _check_encodable(value)
    try:
        return bytes(bencode2.bencode(value))
    except (TypeError, ValueError) as e:
        raise BencodeError(f"cannot encode: {e}") from None
