"""The pure parts of ``bench.tracker``: figures, medians, ratios, the table.

``load_figures`` turns one load window's counts (the generator's result and
the tracker's CPU seconds over the window) into its figures;
``memory_figures`` the RSS before and after the fill into bytes per peer;
``section`` gives, for one part (http, udp or memory), each tracker's
medians over its runs, their spread (min-max) and the ratios of ours to the
reference; ``table`` the text ``bench.tracker`` prints.  Nothing here starts
a process or reads a clock: tests/test_bench_tracker.py tests it all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench._common import Result, median, ratio, spread

__all__ = [
    "OURS", "OPENTRACKER", "REDIS", "LOAD_FIGURES", "MEMORY_FIGURES", "load_figures",
    "memory_figures", "section", "table",
]

OURS = "txbittorrent"
OPENTRACKER = "opentracker"
REDIS = "txbittorrent+redis"

LOAD_FIGURES = ("per_s", "tracker_cpu", "per_cpu_s", "generator_cpu", "slowest_ms")
"""Per window: valid announce replies per second, the tracker's CPU share of
one core, valid replies per CPU second of the tracker, the generator's CPU
share, and the slowest valid reply (ms from sending the request)."""
MEMORY_FIGURES = ("bytes_per_peer", "peers")
"""Per fill: RSS growth (tracker, plus redis-server's for the Redis backend)
per peer answered, and how many peers were answered."""


def load_figures(raw: Result, tracker_cpu_seconds: float | None) -> Result:
    """One window's figures; ``ok`` false (and no figures) if nothing valid came back."""
    out = dict(raw)
    seconds = raw.get("seconds") or 0.0
    valid = int(raw.get("valid") or 0)
    out["tracker_cpu_seconds"] = tracker_cpu_seconds
    if seconds <= 0 or valid <= 0:
        out["ok"] = False
        out.setdefault("note", f"no valid reply: {raw.get('invalid', 0)} invalid, "
                               f"{raw.get('lost', 0)} lost")
        return out
    out["ok"] = True
    out["per_s"] = valid / seconds
    out["generator_cpu"] = (raw.get("generator_cpu") or 0.0) / seconds
    if tracker_cpu_seconds is not None:
        out["tracker_cpu"] = tracker_cpu_seconds / seconds
        out["per_cpu_s"] = valid / tracker_cpu_seconds if tracker_cpu_seconds > 0 else None
    return out


def memory_figures(raw: Result, rss_before_kib: int | None, rss_after_kib: int | None,
                   extra_before_kib: int | None = None,
                   extra_after_kib: int | None = None) -> Result:
    """Bytes of RSS growth per peer answered; ``extra`` is another process
    holding the peers (redis-server), added when given."""
    out = dict(raw)
    out.update(rss_before_kib=rss_before_kib, rss_after_kib=rss_after_kib)
    peers = int(raw.get("valid") or 0)
    if rss_before_kib is None or rss_after_kib is None or peers <= 0:
        out["ok"] = False
        return out
    growth = rss_after_kib - rss_before_kib
    if extra_before_kib is not None and extra_after_kib is not None:
        out.update(extra_before_kib=extra_before_kib, extra_after_kib=extra_after_kib)
        growth += extra_after_kib - extra_before_kib
    out["ok"] = True
    out["peers"] = peers
    out["bytes_per_peer"] = growth * 1024 / peers
    return out


def section(results: dict[str, list[Result]], figures: Sequence[str],
            ours: str = OURS, reference: str = OPENTRACKER) -> dict[str, Any]:
    """Medians and spreads of ``figures`` over each tracker's ok runs; the
    ratios ours / reference and, if present, redis / ours."""
    medians = {name: {f: median(r.get(f) for r in runs if r.get("ok")) for f in figures}
               for name, runs in results.items()}
    spreads = {name: {f: spread(r.get(f) for r in runs if r.get("ok")) for f in figures}
               for name, runs in results.items()}
    ratios: dict[str, dict[str, float | None]] = {}
    pairs = ((f"{ours}/{reference}", ours, reference), (f"{REDIS}/{ours}", REDIS, ours))
    for label, a, b in pairs:
        if a in medians and b in medians:
            ratios[label] = {f: ratio(medians[a][f], medians[b][f]) for f in figures}
    return {"results": results, "medians": medians, "spreads": spreads, "ratios": ratios}


def _num(value: float | None, digits: int, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.0f}%" if percent else f"{value:.{digits}f}"


def _bounds(value: Sequence[float] | None, digits: int, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{_num(value[0], digits, percent)}-{_num(value[1], digits, percent)}"


_LOAD_COLUMNS = (
    ("per_s", "announces/s", 0, False), ("tracker_cpu", "tracker CPU", 0, True),
    ("per_cpu_s", "per CPU s", 0, False), ("generator_cpu", "load gen CPU", 0, True),
    ("slowest_ms", "slowest ms", 0, False),
)
_MEMORY_COLUMNS = (("bytes_per_peer", "bytes/peer", 0, False), ("peers", "peers", 0, False))


def _part_lines(part: dict[str, Any], columns: Sequence[tuple[str, str, int, bool]],
                per_run: str, ratio_keys: Sequence[str]) -> list[str]:
    width = max([20, *(len(n) for n in part["results"])])
    header = f"{'tracker':<{width}}" + "".join(f"{title:>14}" for _, title, _, _ in columns)
    lines = [header + "    ok  per run"]
    for name, runs in part["results"].items():
        cells = "".join(f"{_num(part['medians'][name][key], d, p):>14}"
                        for key, _, d, p in columns)
        ok = sum(bool(r.get("ok")) for r in runs)
        each = " ".join(f"{r[per_run]:.0f}" if r.get("ok") else f"failed({r.get('note', '?')})"
                        for r in runs)
        lines.append(f"{name:<{width}}{cells}  {ok:>2}/{len(runs):<2} {each}")
    lines.append("spread: min-max of the ok runs")
    for name, by_figure in part["spreads"].items():
        lines.append(f"{name:<{width}}" + "".join(
            f"{_bounds(by_figure[key], d, p):>14}" for key, _, d, p in columns))
    for label, values in part["ratios"].items():
        lines.append(f"{label} (of the medians): " + ", ".join(
            f"{title} {_num(values.get(key), 2)}" for key, title, _, _ in columns
            if key in ratio_keys))
    return lines


def table(report: dict[str, Any]) -> str:
    """The text ``bench.tracker`` prints."""
    cfg, env = report["config"], report["environment"]
    lines = [
        f"tracker benchmark: {cfg['runs']} run(s), {cfg['duration']:g} s per window after "
        f"{cfg['warmup']:g} s warm-up, {cfg['torrents']} info hashes (Zipf s={cfg['zipf_s']:g}), "
        f"{cfg['clients']}x{cfg['depth']} requests in flight",
        f"{env['cpu_count']} CPUs, pinning: {cfg['pinning']}; load average before/after "
        f"{env['load_before']:.2f}/{env['load_after']:.2f}; Python {env['python']}",
        f"opentracker: {report['opentracker']}",
        f"redis backend: {report['redis']}",
    ]
    if "http" in report or "udp" in report:
        lines += ["per CPU s: valid replies per CPU second of the tracker (all its threads); "
                  "load gen CPU near 100%:", "  the generator set the pace, and that tracker's "
                  "announces/s is a lower bound"]
    for part, title in (("http", "HTTP announces"), ("udp", "UDP announces (BEP 15)")):
        if part in report:
            lines += ["", f"{title}: valid replies per second, medians over the runs",
                      *_part_lines(report[part], _LOAD_COLUMNS, "per_s",
                                  ("per_s", "per_cpu_s"))]
    if "memory" in report:
        lines += ["", f"memory per tracked peer: RSS growth after {cfg['peers']} distinct peers "
                  "announced (UDP, started), divided by the peers answered",
                  *_part_lines(report["memory"], _MEMORY_COLUMNS, "bytes_per_peer",
                              ("bytes_per_peer",))]
    return "\n".join(lines)
