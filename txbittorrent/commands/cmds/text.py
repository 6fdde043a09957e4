"""Human formatting for the commands' values: sizes, rates, times, tables.

Pure functions of the values (no clock read: a time is shown as the UTC
date and time it names, so local and remote output agree)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from txbittorrent.commands.progress import format_size

__all__ = ["size", "rate", "percent", "when", "limit", "table", "short_hash"]

SHORT_HASH = 8
"""Hex digits of an info hash shown in tables (a prefix the commands accept)."""


def size(n: Any) -> str:
    """1536 -> '1.5 KiB'; unknown (None) -> '?'."""
    return "?" if n is None else format_size(int(n))


def rate(n: Any) -> str:
    return "?" if n is None else f"{format_size(int(n))}/s"


def limit(n: Any) -> str:
    """A rate limit: None or 0 is 'unlimited'."""
    return "unlimited" if not n else rate(n)


def percent(p: Any) -> str:
    return "?" if p is None else f"{float(p) * 100:.1f}%"


def when(t: Any) -> str:
    """A Unix time as 'YYYY-MM-DD HH:MM:SS UTC'; None -> '-'."""
    if t is None:
        return "-"
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(int(t)))


def short_hash(info_hash: Any) -> str:
    return str(info_hash)[:SHORT_HASH]


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]],
          right: frozenset[int] = frozenset()) -> list[str]:
    """Aligned columns, two spaces apart, the columns in ``right`` aligned
    right; the last column is never padded (a name may be long)."""
    cells = [list(headers)] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        parts = []
        for i, cell in enumerate(row):
            if i == len(row) - 1 and i not in right:
                parts.append(cell)
            elif i in right:
                parts.append(cell.rjust(widths[i]))
            else:
                parts.append(cell.ljust(widths[i]))
        lines.append("  ".join(parts).rstrip())
    return lines
