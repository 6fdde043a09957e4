"""The pure parts of ``bench.stream``: sizes, the seek plan, figures, the table.

``parse_size`` reads ``--size`` ("1GiB", "64MiB", bytes); ``seek_plan``
draws a run's seeks from a seeded ``random.Random`` (each inside one piece,
so that the first byte needs exactly one piece, for us as for libtorrent);
``seek_figures`` and ``throughput_figures`` turn one measurement's raw
numbers into its figures; ``section`` gives the medians, the spreads
(min-max behind each median) and the ratios of one part of the report; and
``table`` the text ``bench.stream`` prints.  Nothing here starts a process
or reads a clock: tests/test_bench_stream.py tests it all.
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from bench._common import MiB, Result, median, ratio, spread

__all__ = [
    "SEEK_FIGURES", "THROUGHPUT_FIGURES", "parse_size", "seek_figures", "seek_plan",
    "section", "table", "throughput_figures",
]

_UNITS = {"": 1, "b": 1, "k": 1024, "kib": 1024, "m": MiB, "mib": MiB,
          "g": 1024 * MiB, "gib": 1024 * MiB}
_SIZE = re.compile(r"\A\s*(\d+)\s*([a-z]*)\s*\Z", re.IGNORECASE)

SEEK_FIGURES = ("ttfb_median_ms", "ttfb_max_ms", "ttfb_min_ms", "background_share")
"""Per run: the median, slowest and fastest first byte of its seeks (ms),
and the share of the file the client held when its seeks were done."""
THROUGHPUT_FIGURES = ("mb_s", "seconds", "first_byte_ms", "head_start_mib")
"""Per run: 10**6 bytes/s, the seconds of the transfer, the first byte
(stream only) and what the daemon had before the GET (stream only)."""


def parse_size(text: str) -> int:
    """Bytes from "1GiB", "64MiB", "512k", "1048576" (binary units); ValueError otherwise."""
    match = _SIZE.match(text)
    if match is None or match.group(2).lower() not in _UNITS:
        raise ValueError(f"not a size: {text!r} (e.g. 1GiB, 64MiB, 1048576)")
    size = int(match.group(1)) * _UNITS[match.group(2).lower()]
    if size <= 0:
        raise ValueError(f"a size must be positive: {text!r}")
    return size


def seek_plan(
    seed: int, size: int, piece_length: int, seeks: int, length: int
) -> list[tuple[int, int]]:
    """``seeks`` ranges ``(offset, length)`` of one file of ``size`` bytes,
    each inside one piece: a random piece (distinct while there are enough),
    a random offset in it.  The same ``seed`` gives the same plan."""
    if size <= 0 or piece_length <= 0 or seeks < 0 or length <= 0:
        raise ValueError("size, piece_length and length must be positive, seeks not negative")
    rng = random.Random(seed)
    pieces = -(-size // piece_length)
    order = rng.sample(range(pieces), min(seeks, pieces))
    while len(order) < seeks:  # fewer pieces than seeks: some come again
        order.append(rng.randrange(pieces))
    plan = []
    for index in order:
        start = index * piece_length
        in_piece = min(piece_length, size - start)
        span = min(length, in_piece)
        plan.append((start + rng.randrange(in_piece - span + 1), span))
    return plan


def seek_figures(raw: Result, size: int) -> Result:
    """One client's seeks in one run, with their figures (none if not verified)."""
    out = dict(raw)
    times = [t for t in raw.get("ttfb_seconds") or [] if t is not None]
    if not raw.get("verified") or not times:
        out["verified"] = False
        return out
    out["ttfb_median_ms"] = 1e3 * (median(times) or 0.0)
    out["ttfb_max_ms"] = 1e3 * max(times)
    out["ttfb_min_ms"] = 1e3 * min(times)
    held = raw.get("held_bytes")
    out["background_share"] = None if held is None else held / size
    return out


def throughput_figures(raw: Result, size: int) -> Result:
    """One sequential transfer of the whole file, with its figures."""
    out = dict(raw)
    seconds = raw.get("seconds")
    if not raw.get("verified") or not seconds:
        out["verified"] = False
        return out
    out["mb_s"] = size / 1e6 / seconds
    if raw.get("first_byte_seconds") is not None:
        out["first_byte_ms"] = 1e3 * raw["first_byte_seconds"]
    if raw.get("head_start_bytes") is not None:
        out["head_start_mib"] = raw["head_start_bytes"] / MiB
    return out


def section(
    results: dict[str, list[Result]], figures: Sequence[str], a: str, b: str
) -> dict[str, Any]:
    """The medians and spreads of ``figures`` over each client's verified
    runs, and the ratios ``a`` / ``b`` of the medians."""
    medians = {name: {f: median(r.get(f) for r in runs if r.get("verified")) for f in figures}
               for name, runs in results.items()}
    spreads = {name: {f: spread(r.get(f) for r in runs if r.get("verified")) for f in figures}
               for name, runs in results.items()}
    x, y = medians.get(a), medians.get(b)
    ratios = {} if x is None or y is None else {f: ratio(x[f], y[f]) for f in figures}
    return {"results": results, "medians": medians, "spreads": spreads, "ratios": ratios}


def _cell(value: float | None, digits: int | None, width: int) -> str:
    if value is None:
        text = "-"
    elif digits is None:
        text = f"{100 * value:.0f}%"
    else:
        text = f"{value:.{digits}f}"
    return f"{text:>{width}}"


def _range(bounds: Sequence[float] | None, digits: int | None, width: int) -> str:
    if bounds is None:
        return f"{'-':>{width}}"
    low, high = bounds
    text = (f"{100 * low:.0f}-{100 * high:.0f}%" if digits is None
            else f"{low:.{digits}f}-{high:.{digits}f}")
    return f"{text:>{width}}"


def _failed(run: Result) -> str:
    return f"failed({run.get('note') or 'not verified'})"


def _lines(
    part: dict[str, Any], columns: Sequence[tuple[str, str, int | None]], per_run: Any
) -> list[str]:
    results = part["results"]
    width = max([12, *(len(name) for name in results)])
    header = f"{'client':<{width}} " + " ".join(f"{title:>12}" for _, title, _ in columns)
    lines = [header + "     ok  per run"]
    for name, runs in results.items():
        ok = sum(bool(r.get("verified")) for r in runs)
        cells = " ".join(_cell(part["medians"][name][key], digits, 12)
                         for key, _, digits in columns)
        runs_text = " ".join(per_run(r) if r.get("verified") else _failed(r) for r in runs)
        lines.append(f"{name:<{width}} {cells}  {ok:>2}/{len(runs):<3} {runs_text}")
    lines += ["spread: min-max of the verified runs", header]
    for name, by_figure in part["spreads"].items():
        lines.append(f"{name:<{width}} " + " ".join(
            _range(by_figure[key], digits, 12) for key, _, digits in columns))
    return lines


SEEK_COLUMNS = (("ttfb_median_ms", "ttfb ms", 1), ("ttfb_max_ms", "slowest ms", 1),
                ("ttfb_min_ms", "fastest ms", 1), ("background_share", "held", None))
THROUGHPUT_COLUMNS = (("mb_s", "MB/s", 1), ("seconds", "seconds", 3),
                      ("first_byte_ms", "1st byte ms", 1), ("head_start_mib", "head MiB", 1))


def _ratio(ratios: dict[str, Any], key: str) -> str:
    value = ratios.get(key)
    return "n/a" if value is None else f"{value:.2f}"


def table(report: dict[str, Any]) -> str:
    """The text ``bench.stream`` prints: both parts, medians, spreads, ratios."""
    cfg, env = report["config"], report["environment"]
    lines = [
        f"stream benchmark: {cfg['size'] / MiB:.0f} MiB file, piece length {cfg['piece_length']} "
        f"({cfg['pieces']} pieces), {cfg['runs']} run(s), {env['cpu_count']} CPUs, load "
        f"average before/after {env['load_before']:.2f}/{env['load_after']:.2f}",
        f"libtorrent {env['libtorrent']}, Python {env['python']}; `txbittorrent serve`, the "
        "libtorrent seeders and leechers each in its own process on 127.0.0.1",
    ]
    seek = report.get("seek")
    if seek is not None:
        lines += [
            "",
            f"(a) seeks: {cfg['seeks']} ranged reads of {cfg['seek_length']} bytes at random "
            f"offsets (seed {cfg['seed']}), the seeder limited to {cfg['seek_rate'] / 1e6:g} "
            "MB/s so the file is mostly not there yet",
            "  txbittorrent: GET /data with Range, from sending the request to the first "
            "body byte; libtorrent: set_piece_deadline to its read_piece_alert",
            "  ttfb ms: the median seek of a run; held: the share of the file the client had "
            "when its seeks were done; medians over the runs",
            "",
            *_lines(seek, SEEK_COLUMNS, lambda r: f"{r['ttfb_median_ms']:.0f}"),
            "",
            "txbittorrent / libtorrent (below 1: our first byte comes sooner): ttfb "
            f"{_ratio(seek['ratios'], 'ttfb_median_ms')}, slowest "
            f"{_ratio(seek['ratios'], 'ttfb_max_ms')}",
        ]
    throughput = report.get("throughput")
    if throughput is not None:
        lines += [
            "",
            "(b) throughput: the whole file, from an unlimited seeder, into a fresh directory",
            "  stream: one GET /data of the whole file from a fresh daemon (magnet with the "
            "seeder as x.pe), sent once its metadata is known, to the last byte",
            "  download: `txbittorrent download` with the same magnet, from metadata_received "
            "to complete (its --json lines, as this process reads them)",
            "  head MiB: what the daemon had downloaded before the GET was sent",
            "",
            *_lines(throughput, THROUGHPUT_COLUMNS, lambda r: f"{r['mb_s']:.0f}"),
            "",
            "stream / download (1: streaming as fast as downloading): MB/s "
            f"{_ratio(throughput['ratios'], 'mb_s')}",
        ]
    return "\n".join(lines)
