"""How ``bench.download``'s runs become figures, and the figures a table.

``finish`` derives each verified run's figures (MB/s, CPU s/GiB, ...);
``summarise`` and ``spreads`` give the medians and the min-max behind them
per client, ``compare`` the ratios between two clients, and ``table`` the
text ``bench.download`` prints.  The JSON holds the same dictionaries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bench._common import GiB, Result, median, ratio, spread


def finish(raw: Result, size: int) -> Result:
    """Add the derived figures to a verified run; strip them from a failed one."""
    if not raw["verified"]:
        keep = ("verified", "note", "leecher", "seeder", "pieces", "others_cpu_share",
                "log_tail")
        return {k: v for k, v in raw.items() if k in keep}
    out = dict(raw)
    out["mb_s"] = size / 1e6 / raw["seconds"]
    out["cpu_s_per_gib"] = raw["cpu_seconds"] / (size / GiB)
    if raw.get("reactor_cpu_seconds") is not None:
        out["reactor_cpu_s_per_gib"] = raw["reactor_cpu_seconds"] / (size / GiB)
        out["reactor_busy"] = raw["reactor_cpu_seconds"] / raw["total_seconds"]
    if raw.get("seeder_cpu_seconds") is not None:
        out["seeder_cpu_s_per_gib"] = raw["seeder_cpu_seconds"] / (size / GiB)
    return out


FIGURES = (
    "mb_s", "seconds", "connect_seconds", "total_seconds", "cpu_s_per_gib",
    "reactor_cpu_s_per_gib", "reactor_busy", "others_cpu_share", "peak_rss_mib",
    "peak_anon_mib", "seeder_cpu_s_per_gib", "seeder_peak_anon_mib",
)
"""The figures whose medians are reported (those a client lacks are None)."""


def summarise(results: dict[str, list[Result]]) -> dict[str, dict[str, float | None]]:
    """Medians of each figure over the verified runs, per client."""
    return {
        name: {f: median(r.get(f) for r in runs if r["verified"]) for f in FIGURES}
        for name, runs in results.items()
    }


def spreads(
    results: dict[str, list[Result]]
) -> dict[str, dict[str, tuple[float, float] | None]]:
    """(min, max) of each figure over the verified runs, per client: how far
    apart the runs behind each median lay."""
    return {
        name: {f: spread(r.get(f) for r in runs if r["verified"]) for f in FIGURES}
        for name, runs in results.items()
    }


def compare(
    medians: dict[str, dict[str, float | None]], figures: Sequence[str],
    a: str = "txbittorrent", b: str = "libtorrent",
) -> dict[str, Any]:
    """The ratios ``a`` / ``b`` of the medians of ``figures``; empty if either is absent."""
    x, y = medians.get(a), medians.get(b)
    if x is None or y is None:
        return {}
    return {f: ratio(x[f], y[f]) for f in figures}


def _fmt(value: float | None, width: int, digits: int = 1) -> str:
    return f"{'failed' if value is None else f'{value:.{digits}f}':>{width}}"


def _pct(share: float | None) -> str:
    return f"{'-' if share is None else f'{100 * share:.0f}%':>6}"


def _connect(value: float | None, runs: list[Result]) -> str:
    """The connect-time cell: "-" where the client does not report it."""
    if value is None and any(r["verified"] for r in runs):
        return f"{'-':>9}"
    return _fmt(value, 9, 2)


def _per_run(runs: list[Result]) -> str:
    return " ".join(
        f"{r['mb_s']:.0f}{'p' if r.get('profiled') else ''}" if r["verified"]
        else f"failed({r.get('note') or 'not verified'})"
        for r in runs
    )


def _ratio_line(label: str, ratios: dict[str, Any], names: dict[str, str]) -> str:
    parts = [f"{title} {'n/a' if ratios.get(f) is None else format(ratios[f], '.2f')}"
             for f, title in names.items()]
    return f"{label}: " + ", ".join(parts)


DOWNLOAD_SPREAD = (
    ("mb_s", "MB/s", 0), ("seconds", "wall s", 2), ("connect_seconds", "connect s", 2),
    ("cpu_s_per_gib", "CPU s/GiB", 2), ("peak_rss_mib", "RSS MiB", 0),
    ("peak_anon_mib", "anon MiB", 0), ("others_cpu_share", "others", None),
)
SEED_SPREAD = (
    ("mb_s", "MB/s", 0), ("seconds", "wall s", 2), ("connect_seconds", "connect s", 2),
    ("seeder_cpu_s_per_gib", "seed CPU/GiB", 2), ("seeder_peak_anon_mib", "seed anon MiB", 0),
    ("cpu_s_per_gib", "leech CPU/GiB", 2), ("others_cpu_share", "others", None),
)
"""The spread table's columns: figure, title, digits (None: a share, in %)."""


def _range(bounds: Sequence[float] | None, digits: int | None) -> str:
    if bounds is None:
        return "-"
    low, high = bounds
    if digits is None:
        return f"{100 * low:.0f}-{100 * high:.0f}%"
    return f"{low:.{digits}f}-{high:.{digits}f}"


def _spread_lines(
    label: str, results: dict[str, list[Result]], columns: Sequence[tuple[str, str, int | None]],
    width: int,
) -> list[str]:
    """The spread (min-max over the verified runs) behind each median of a table."""
    lines = [f"{label:<{width}} " + " ".join(f"{title:>13}" for _, title, _ in columns)]
    for name, by_figure in spreads(results).items():
        lines.append(f"{name:<{width}} " + " ".join(
            f"{_range(by_figure[f], digits):>13}" for f, _, digits in columns))
    return lines


def table(report: dict[str, Any]) -> str:
    cfg, env = report["config"], report["environment"]
    lines = [
        f"download benchmark: {cfg['size_mib']} MiB file, piece length {cfg['piece_length']} "
        f"({cfg['pieces']} pieces), {cfg['runs']} run(s), {env['cpu_count']} CPUs, "
        f"load average before/after {env['load_before']:.2f}/{env['load_after']:.2f}",
        f"libtorrent {env['libtorrent']}, Python {env['python']}; every client in its own "
        "process on 127.0.0.1, one transfer at a time",
        "libtorrent over TCP only (uTP off), its leechers dial without encryption (+rc4: "
        "MSE/PE forced, RC4 only, both sides, from a seeder so set); connect s: "
        "from the leecher being given the seeder (its start-up done) to connected",
        "wall s: from connected to every piece verified, as the leecher reports it; aria2c: "
        "from its launch to its download-complete hook",
        "MB/s = 10**6 bytes / wall; CPU s/GiB: the leecher's user+system time from being "
        "given the seeder to the end (aria2c: its whole life)",
        "RSS: peak resident set over the leecher's life (libtorrent's includes the "
        "memory-mapped torrent); anon: peak anonymous RSS, sampled every 0.1 s",
        "medians of the runs verified byte for byte (SHA-1 of the whole file); "
        "the spread (min-max of those runs) below each table",
    ]
    baseline = cfg.get("baseline")
    if baseline:
        lines.append(
            f"{baseline['leecher']}: the txbittorrent leecher of commit {baseline['commit']} "
            f"({baseline['ref']}), its own bench.download child run from a clean copy")
    others = [r["others_cpu_share"] for part in ("download", "seed") if report.get(part)
              for runs in report[part]["results"].values() for r in runs
              if r.get("others_cpu_share") is not None]
    if others:
        lines.append(
            "others: the share of the machine's CPU that other processes took during the "
            f"transfers (median {100 * (median(others) or 0):.0f}%, at most "
            f"{100 * max(others):.0f}%); on a busy machine MB/s means little, CPU s/GiB more")
    download = report.get("download")
    if download:
        width = max([14, *(len(name) for name in download["results"])])
        lines += [
            "",
            "download from a libtorrent seeder",
            f"{'leecher':<{width}} {'MB/s':>8} {'wall s':>8} {'connect s':>9} {'CPU s/GiB':>10} "
            f"{'RSS MiB':>8} {'anon MiB':>9} {'others':>6}  {'ok':>5}  per run (MB/s)",
        ]
        for name, runs in download["results"].items():
            m = download["medians"][name]
            ok = sum(r["verified"] for r in runs)
            lines.append(
                f"{name:<{width}} {_fmt(m['mb_s'], 8)} {_fmt(m['seconds'], 8, 2)} "
                f"{_connect(m['connect_seconds'], runs)} "
                f"{_fmt(m['cpu_s_per_gib'], 10, 2)} {_fmt(m['peak_rss_mib'], 8)} "
                f"{_fmt(m['peak_anon_mib'], 9)} {_pct(m['others_cpu_share'])}  "
                f"{ok}/{len(runs):<3}  {_per_run(runs)}"
            )
        for name, m in download["medians"].items():
            if m.get("reactor_cpu_s_per_gib") is not None and m.get("reactor_busy") is not None:
                lines.append(
                    f"{'':<{width}} {name}'s reactor thread: {m['reactor_cpu_s_per_gib']:.2f} "
                    f"CPU s/GiB, busy {100 * m['reactor_busy']:.0f}% of the time")
        for name, why in report.get("skipped", {}).items():
            lines.append(f"{name:<{width}} skipped: {why}")
        lines += ["", "spread: min-max of the verified runs"]
        lines += _spread_lines("leecher", download["results"], DOWNLOAD_SPREAD, width)
        if download["ratios"]:
            lines += ["", _ratio_line("txbittorrent / libtorrent", download["ratios"], {
                "mb_s": "MB/s", "cpu_s_per_gib": "CPU s/GiB", "peak_rss_mib": "RSS",
                "peak_anon_mib": "anon"})]
        for label, ratios in (download.get("rc4_ratios") or {}).items():
            if ratios:
                lines.append(_ratio_line(label, ratios, {
                    "mb_s": "MB/s", "cpu_s_per_gib": "CPU s/GiB", "peak_anon_mib": "anon"}))
        if download.get("baseline_ratios"):
            if not download["ratios"]:
                lines.append("")
            label = f"txbittorrent / baseline {baseline['leecher'] if baseline else ''}"
            lines.append(_ratio_line(label.rstrip(), download["baseline_ratios"], {
                "mb_s": "MB/s", "cpu_s_per_gib": "CPU s/GiB", "peak_rss_mib": "RSS",
                "peak_anon_mib": "anon"}))
    seed = report.get("seed")
    if seed:
        width = max([14, *(len(name) for name in seed["results"])])
        lines += [
            "",
            "seed test: each seeder serves a libtorrent leecher; seeder CPU from "
            "/proc/<pid>/stat over the transfer, anon RSS sampled",
            f"{'seeder':<{width}} {'MB/s':>8} {'wall s':>8} {'connect s':>9} "
            f"{'seed CPU/GiB':>13} {'seed anon MiB':>14} {'leech CPU/GiB':>14} {'others':>6}  "
            f"{'ok':>5}  per run (MB/s)",
        ]
        for name, runs in seed["results"].items():
            m = seed["medians"][name]
            ok = sum(r["verified"] for r in runs)
            lines.append(
                f"{name:<{width}} {_fmt(m['mb_s'], 8)} {_fmt(m['seconds'], 8, 2)} "
                f"{_connect(m['connect_seconds'], runs)} "
                f"{_fmt(m['seeder_cpu_s_per_gib'], 13, 2)} "
                f"{_fmt(m['seeder_peak_anon_mib'], 14)} {_fmt(m['cpu_s_per_gib'], 14, 2)} "
                f"{_pct(m['others_cpu_share'])}  {ok}/{len(runs):<3}  {_per_run(runs)}"
            )
        lines += ["", "spread: min-max of the verified runs"]
        lines += _spread_lines("seeder", seed["results"], SEED_SPREAD, width)
        if seed["ratios"]:
            lines += ["", _ratio_line("txbittorrent / libtorrent (seeding)", seed["ratios"], {
                "mb_s": "MB/s", "seeder_cpu_s_per_gib": "seeder CPU s/GiB",
                "seeder_peak_anon_mib": "seeder anon"})]
    if report.get("profile_dir"):
        lines += ["", f"p: run under cProfile; profiles in {report['profile_dir']}"]
    return "\n".join(lines)
