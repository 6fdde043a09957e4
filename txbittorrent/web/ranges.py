"""HTTP Range requests (RFC 9110, section 14), pure: no I/O, no Twisted.

``parse_range(value, size)`` reads a ``Range`` header against a
representation of ``size`` bytes, as ``twisted.web.static.File`` treats
one for a finished file:

- ``None``: no usable Range (absent, another unit, malformed, or more
  than ``max_ranges`` ranges): serve the whole representation (200).
- ``()`` (``UNSATISFIABLE``): no range overlaps the bytes: 416 with
  ``Content-Range: bytes */size``.
- otherwise the satisfiable ranges in the order asked, each cut to the
  representation (unsatisfiable ones among satisfiable ones are dropped).

A range is ``first-last`` (inclusive), ``first-`` (open-ended) or ``-n``
(the last ``n`` bytes; ``-0`` is unsatisfiable).  ``if_range_allows``
tells whether an ``If-Range`` precondition lets the Range apply.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = [
    "ByteRange",
    "UNSATISFIABLE",
    "parse_range",
    "if_range_allows",
    "unsatisfied_content_range",
]

_SPEC = re.compile(r"([0-9]*)-([0-9]*)", re.ASCII)
_HUGE = 1 << 80
"""Stands for any number too long to parse (past the end of every file)."""
_MAX_DIGITS = 20


@dataclass(frozen=True, slots=True)
class ByteRange:
    """Bytes ``first`` to ``last`` inclusive, as Content-Range counts them."""

    first: int
    last: int

    @property
    def length(self) -> int:
        return self.last - self.first + 1

    def content_range(self, size: int) -> str:
        """The Content-Range value of this range of ``size`` bytes."""
        return f"bytes {self.first}-{self.last}/{size}"


UNSATISFIABLE: tuple[ByteRange, ...] = ()


def unsatisfied_content_range(size: int) -> str:
    """The Content-Range value of a 416 response."""
    return f"bytes */{size}"


def _number(digits: str) -> int:
    return _HUGE if len(digits) > _MAX_DIGITS else int(digits)


def parse_range(
    value: str | bytes | None, size: int, max_ranges: int = 16
) -> tuple[ByteRange, ...] | None:
    """The ranges a Range header ``value`` asks of ``size`` bytes (see the
    module docstring for ``None`` and ``UNSATISFIABLE``)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        try:
            value = value.decode("ascii")
        except UnicodeDecodeError:
            return None
    unit, sep, range_set = value.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    specs = [s.strip() for s in range_set.split(",")]
    specs = [s for s in specs if s]
    if not specs or len(specs) > max_ranges:
        return None
    out = []
    for spec in specs:
        match = _SPEC.fullmatch(spec)
        if match is None:
            return None
        first_text, last_text = match.groups()
        if not first_text:
            if not last_text:
                return None
            suffix = _number(last_text)
            if suffix > 0 and size > 0:
                out.append(ByteRange(max(0, size - suffix), size - 1))
            continue
        first = _number(first_text)
        last = _number(last_text) if last_text else None
        if last is not None and last < first:
            return None
        if first < size:
            out.append(ByteRange(first, size - 1 if last is None else min(last, size - 1)))
    return tuple(out)


def if_range_allows(if_range: str | bytes | None, etag: str) -> bool:
    """Whether the Range applies given an ``If-Range`` value: always without
    one; with one, only when it is ``etag`` by the strong comparison (a weak
    tag never matches; a date never does either, as no Last-Modified is
    sent)."""
    if if_range is None:
        return True
    if isinstance(if_range, bytes):
        if_range = if_range.decode("latin-1")
    return if_range.strip() == etag and not etag.startswith("W/")
