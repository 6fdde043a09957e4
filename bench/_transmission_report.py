"""How ``bench.transmission``'s runs become figures, and the figures a table.

``figures`` turns one run's moments and CPU readings into its figures,
``summarise`` and ``spreads`` give the medians and the min-max behind them
per seeder, ``verdicts`` compares ours with libtorrent's (the ratio of the
medians, and "no difference" where the wider of the two spreads covers the
difference), and ``table`` is the text the benchmark prints.  The JSON
holds the same dictionaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench._common import GiB, Result, median, ratio, spread

SEEDERS = {"tx": "txbittorrent", "lt": "libtorrent"}
FIGURES = (
    "mb_s", "data_seconds", "connect_seconds", "wait_seconds", "seeder_data_seconds",
    "seeder_cpu", "seeder_data_cpu", "cpu_s_per_gib", "transmission_cpu", "others_cpu_share",
)
"""The figures whose medians and spreads are reported."""
VERDICTS = {"mb_s": "higher", "cpu_s_per_gib": "lower"}
"""The figures ours is judged on against libtorrent's, and which way is better."""
STATUS_INTERVAL = 0.2
"""Seconds between Transmission's status lines: how late the first-data
moment may be seen, so the least difference in byte-done that counts."""
CPU_TICK = 0.01
"""The resolution of /proc's CPU seconds."""
MIN_RUNS = 3
"""Verified runs each side needs before a verdict (a spread of one run says nothing)."""


def figures(raw: Result, size: int) -> Result:
    """A run's figures from its moments (``dialled``, ``first_data``,
    ``complete``, ``seeder_first``: monotonic seconds) and CPU seconds.  It
    is ``verified`` only if Transmission completed, showed data first, and
    its copy matched the source; a failed run keeps only its note."""
    out: Result = {k: raw.get(k) for k in ("seeder", "note", "complete_logged", "uploaded",
                                           "pids")}
    dialled, first, complete = raw.get("dialled"), raw.get("first_data"), raw.get("complete")
    verified = bool(raw.get("matched")) and None not in (dialled, first, complete)
    out["verified"] = verified
    if not verified:
        if not out.get("note"):
            out["note"] = ("Transmission's copy differs from the source"
                           if complete is not None else "Transmission did not complete")
        return out
    assert dialled is not None and first is not None and complete is not None
    data = complete - first
    out.update(
        connect_seconds=complete - dialled,
        wait_seconds=first - dialled,
        data_seconds=data,
        mb_s=size / 1e6 / data if data > 0 else None,
        seeder_cpu=raw.get("seeder_cpu"),
        seeder_data_cpu=raw.get("seeder_data_cpu"),
        cpu_s_per_gib=(None if raw.get("seeder_data_cpu") is None
                       else raw["seeder_data_cpu"] / (size / GiB)),
        transmission_cpu=raw.get("transmission_cpu"),
        others_cpu_share=raw.get("others_cpu_share"),
    )
    seeder_first = raw.get("seeder_first")
    out["seeder_data_seconds"] = None if seeder_first is None else complete - seeder_first
    return out


def summarise(results: dict[str, list[Result]]) -> dict[str, dict[str, float | None]]:
    """Medians of each figure over the verified runs, per seeder."""
    return {name: {f: median(r.get(f) for r in runs if r["verified"]) for f in FIGURES}
            for name, runs in results.items()}


def spreads(results: dict[str, list[Result]]) -> dict[str, dict[str, tuple[float, float] | None]]:
    """(min, max) of each figure over the verified runs, per seeder."""
    return {name: {f: spread(r.get(f) for r in runs if r["verified"]) for f in FIGURES}
            for name, runs in results.items()}


def _resolution(figure: str, results: dict[str, list[Result]], a: str, b: str) -> float:
    """The least difference in ``figure`` the measurement can tell: for MB/s
    the status lines' interval on byte-done, for CPU s/GiB two /proc ticks
    (at the medians of both sides' verified runs)."""
    runs = [r for name in (a, b) for r in results.get(name, []) if r["verified"]]
    if figure == "mb_s":
        rates = [(r["mb_s"], r["data_seconds"]) for r in runs
                 if r.get("mb_s") and r.get("data_seconds")]
        return max((mb * STATUS_INTERVAL / seconds for mb, seconds in rates), default=0.0)
    if figure == "cpu_s_per_gib":
        per_gib = [r["cpu_s_per_gib"] / r["seeder_data_cpu"] for r in runs
                   if r.get("cpu_s_per_gib") and r.get("seeder_data_cpu")]
        return max((2 * CPU_TICK * k for k in per_gib), default=0.0)
    return 0.0


def verdicts(results: dict[str, list[Result]], a: str = "tx", b: str = "lt") -> dict[str, Any]:
    """Per figure of ``VERDICTS``: the ratio of the medians a / b, the
    margin, and "better", "worse" or "no difference" (when the
    wider of the two min-max spreads, or the measurement's resolution if
    larger, covers the difference of the medians; no verdict with fewer
    than ``MIN_RUNS`` verified runs a side)."""
    out: dict[str, Any] = {}
    for figure, better in VERDICTS.items():
        xs = [r[figure] for r in results.get(a, []) if r["verified"] and r.get(figure) is not None]
        ys = [r[figure] for r in results.get(b, []) if r["verified"] and r.get(figure) is not None]
        if not xs or not ys:
            out[figure] = {"ratio": None, "verdict": "n/a"}
            continue
        mx, my = median(xs), median(ys)
        sx, sy = spread(xs), spread(ys)
        assert mx is not None and my is not None and sx is not None and sy is not None
        widest = max(sx[1] - sx[0], sy[1] - sy[0], _resolution(figure, results, a, b))
        # (the margin: a difference within it is no difference)
        if min(len(xs), len(ys)) < MIN_RUNS:
            word = f"fewer than {MIN_RUNS} runs: no verdict"
        elif abs(mx - my) <= widest:
            word = "no difference"
        else:
            word = "better" if (mx > my) == (better == "higher") else "worse"
        out[figure] = {"ratio": ratio(mx, my), "margin": widest, "verdict": word}
    return out


# -- the table ------------------------------------------------------------------------------

_COLUMNS: Sequence[tuple[str, str, int, float]] = (
    # figure, heading, digits, scale
    ("mb_s", "MB/s", 1, 1.0),
    ("data_seconds", "byte-done s", 2, 1.0),
    ("seeder_data_seconds", "sbyte-done s", 2, 1.0),
    ("connect_seconds", "conn-done s", 2, 1.0),
    ("wait_seconds", "wait s", 2, 1.0),
    ("seeder_cpu", "CPU s", 2, 1.0),
    ("cpu_s_per_gib", "CPU s/GiB", 2, 1.0),
    ("transmission_cpu", "Tr CPU s", 2, 1.0),
    ("others_cpu_share", "others", 0, 100.0),
)
_WIDTH = 13


def _cell(value: float | None, digits: int, scale: float) -> str:
    if value is None:
        return f"{'-':>{_WIDTH}}"
    text = f"{value * scale:.{digits}f}" + ("%" if scale == 100.0 else "")
    return f"{text:>{_WIDTH}}"


def _range(bounds: Sequence[float] | None, digits: int, scale: float) -> str:
    if bounds is None:
        return f"{'-':>{_WIDTH}}"
    low, high = bounds
    text = f"{low * scale:.{digits}f}-{high * scale:.{digits}f}" + ("%" if scale == 100.0 else "")
    return f"{text:>{_WIDTH}}"


def _per_run(runs: list[Result]) -> str:
    return " ".join(f"{r['mb_s']:.1f}" if r["verified"] and r.get("mb_s") else "failed"
                    for r in runs)


def table(report: dict[str, Any]) -> str:
    cfg, env = report["config"], report["environment"]
    results: dict[str, list[Result]] = report["results"]
    head = f"{'seeder':<13}" + "".join(f"{h:>{_WIDTH}}" for _, h, _, _ in _COLUMNS)
    lines = [
        f"seeding to Transmission {cfg.get('transmission_version') or '?'} (transmission-cli, "
        f"one process per run): one {cfg['size_mib']} MiB file, {cfg['pieces']} pieces of "
        f"{cfg['piece_length'] // 1024} KiB; {cfg['runs']} run(s), seeders in alternating order; "
        f"{env['cpu_count']} CPUs, load average before/after "
        f"{env['load_before']:.2f}/{env['load_after']:.2f}",
        "medians of the verified runs (Transmission complete, its copy's SHA-1 = the source's);"
        " MB/s over byte-done",
        "",
        f"{head}{'ok':>7}  per run (MB/s)",
    ]
    for name, runs in results.items():
        medians = report["medians"][name]
        ok = sum(r["verified"] for r in runs)
        cells = "".join(_cell(medians.get(f), d, s) for f, _, d, s in _COLUMNS)
        lines.append(f"{SEEDERS[name]:<13}{cells}{f'{ok}/{len(runs)}':>7}  {_per_run(runs)}")
    lines += ["", "spread: min-max of the verified runs", head]
    for name in results:
        cells = "".join(_range(report["spreads"][name].get(f), d, s) for f, _, d, s in _COLUMNS)
        lines.append(f"{SEEDERS[name]:<13}{cells}")
    found = report.get("verdicts") or {}
    if found:
        parts = []
        for figure, label in (("mb_s", "MB/s"), ("cpu_s_per_gib", "CPU s/GiB")):
            v = found.get(figure) or {}
            r = v.get("ratio")
            parts.append(f"{label} {'-' if r is None else f'{r:.2f}'} ({v.get('verdict', 'n/a')})")
        lines += ["", "txbittorrent / libtorrent: " + ", ".join(parts)]
    notes = [f"{SEEDERS[name]} run {n + 1}: {r['note']}"
             for name, runs in results.items() for n, r in enumerate(runs) if r.get("note")]
    if notes:
        lines += [""] + notes
    lines += [
        "",
        "byte-done: Transmission's first status line showing data (it updates them once a",
        "second) to its Complete log line; sbyte-done: the seeder's first payload byte sent to",
        "complete; conn-done: the seeder's dial to complete (wait: dial to first data; a new",
        "peer waits for Transmission's rechoke, every 10 s); CPU s: the seeder's, dial to",
        "complete (/proc); CPU s/GiB: the seeder's from its first byte to complete; Tr CPU s:",
        "Transmission's, dial to complete; others: the share of the machine's CPU that",
        "processes not ours took meanwhile",
    ]
    return "\n".join(lines)
