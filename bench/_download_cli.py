"""``bench.download --cli``: downloads timed as whole processes, as ``time`` shows them.

Theory of operation
-------------------
A user runs a program, not a library: the figure that matters is from the
moment the process is started to the moment it has exited, its interpreter's
start, its imports, its set-up, the transfer and its shutdown included.  Each
client is one such process started by the benchmark with the seeder's
address on its command line, into an empty directory:

txbittorrent    ``python -m txbittorrent download T -o DIR --peer
                127.0.0.1:PORT --json --no-dht --interface 127.0.0.1``, the
                command a user types (no DHT: the benchmark is offline);
libtorrent      ``python -m bench._download_ltcli``: what a command-line
                client on libtorrent's Python bindings does (import, session,
                add the torrent, connect, wait for every piece, exit), with
                libtorrent's default settings (plus the benchmark's loopback
                ones: TCP only, plain-text dialling, see
                ``bench._download_children``);
libtorrent-hp   the same with libtorrent's ``high_performance_seed`` preset.

"s" runs from just before the process is spawned (``fork``/``exec``
included) to its reaping (polled every millisecond); MB/s is the data's
10**6 bytes over that; CPU is the whole process's user + system time
(``wait4``).  libtorrent never fsyncs what it wrote; txbittorrent fsyncs
every file before its clean resume record, so its figure includes making
the data durable.

The timeline (seconds from the spawn) comes from the clients' own events:
txbittorrent's ``--json`` events carry a Unix ``time``: the first event
(imports and set-up done), ``peer_connected``, ``complete`` (the last piece
verified); libtorrent's child prints "session", "connected" and "finished"
the same way; "exit" is the reaping.

Byte code: the processes run with ``-X pycache_prefix=`` a directory of the
benchmark's own, filled before the first timing by ``warm_bytecode`` (the
modules each client imports, compiled there), so that no run pays for
compiling its modules, as none of an installed program's runs does; this
holds even where ``PYTHONDONTWRITEBYTECODE`` is set (it stops writing, not
reading).

A verdict compares two clients' medians of "s": where the difference is no
larger than the wider of their two spreads (max - min over the runs), the
runs move more than the difference claims, and the verdict is "no
difference".
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from typing import Any

from bench._common import (
    LOOPBACK,
    LT_LOCAL_SETTINGS,
    ROOT,
    Child,
    Children,
    Result,
    child_env,
    median,
    spread,
    tail,
)
from bench._download_children import LT_PLAIN_OUT, LT_TCP_ONLY

CLI_CLIENTS = ("txbittorrent", "libtorrent", "libtorrent-hp")
CLI_PREFIX = "cli:"
"""``Bench.transfer`` runs leecher ``cli:NAME`` as client NAME's whole process."""
PRESETS = {"libtorrent": "default", "libtorrent-hp": "high_performance_seed"}
EXIT_TIMEOUT = 30.0
"""Seconds a process may take to exit once its output has ended."""

TIMELINE = ("first_event", "connected", "completed", "exit")
"""The timeline's marks, in seconds from the spawn."""

WARM_TX = """
import compileall, importlib.util, os, py_compile, sys
import txbittorrent.commands.cli, txbittorrent.commands.download, txbittorrent.commands._react
import txbittorrent.torrent, txbittorrent.session
from twisted.internet import reactor
compileall.compile_dir(os.path.dirname(txbittorrent.__file__), quiet=1)
"""
WARM_LT = """
import json, sys, time
import libtorrent
"""
WARM_TAIL = """
for module in list(sys.modules.values()):
    path = getattr(module, "__file__", None)
    if path and path.endswith(".py"):
        try:
            py_compile.compile(path, cfile=importlib.util.cache_from_source(path), doraise=True)
        except (OSError, py_compile.PyCompileError):
            pass
"""


def python(prefix: str) -> list[str]:
    """The interpreter, reading (and writing) byte code under ``prefix``."""
    return [sys.executable, "-X", f"pycache_prefix={prefix}"]


def warm_bytecode(prefix: str) -> None:
    """Compile what each client's process imports into ``prefix``."""
    os.makedirs(prefix, exist_ok=True)
    for code in (WARM_TX, WARM_LT):
        subprocess.run(
            [*python(prefix), "-c", "import importlib.util, py_compile\n" + code + WARM_TAIL],
            cwd=ROOT, env=child_env(), check=True, timeout=300,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )


def tx_cli_argv(prefix: str, torrent: str, directory: str, peer: int) -> list[str]:
    return [*python(prefix), "-m", "txbittorrent", "download", torrent, "-o", directory,
            "--peer", f"{LOOPBACK}:{peer}", "--json", "--no-dht", "--interface", LOOPBACK]


def lt_cli_argv(prefix: str, preset: str, torrent: str, directory: str, peer: int,
                pieces: int, timeout: float) -> list[str]:
    settings = dict(LT_LOCAL_SETTINGS)
    settings.update(LT_TCP_ONLY)
    settings.update(LT_PLAIN_OUT)
    spec = {"preset": preset, "settings": settings, "torrent": torrent, "dir": directory,
            "peer": peer, "pieces": pieces, "timeout": timeout}
    return [*python(prefix), "-m", "bench._download_ltcli", json.dumps(spec)]


def _reap(child: Child, deadline: float) -> float | None:
    """Wait for ``child`` to end; the Unix time it was seen ended (None: it did not)."""
    while not child.exited():
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.001)
    return time.time()


def _events(child: Child, timeout: float, also: list[Child]) -> list[dict[str, Any]]:
    """Every JSON object the child prints until it exits (or ``timeout``)."""
    out: list[dict[str, Any]] = []
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0:
        event = child.message(left, also=also)  # None once it has exited
        if event is None:
            break
        out.append(event)
    return out


def timeline_of(client: str, events: list[dict[str, Any]], started: float,
                ended: float | None) -> dict[str, float | None]:
    """The marks of ``TIMELINE`` in seconds from ``started`` (None where missing)."""
    key = "kind" if client == "txbittorrent" else "event"
    names = ({"connected": "peer_connected", "completed": "complete"} if client == "txbittorrent"
             else {"connected": "connected", "completed": "finished"})
    first: dict[str, float] = {}
    for event in events:
        if isinstance(event.get("time"), (int, float)):
            first.setdefault(str(event.get(key)), float(event["time"]))
    stamps = [float(e["time"]) for e in events if isinstance(e.get("time"), (int, float))]
    marks: dict[str, float | None] = {
        "first_event": min(stamps) - started if stamps else None,
        "connected": first[names["connected"]] - started if names["connected"] in first else None,
        "completed": first[names["completed"]] - started if names["completed"] in first else None,
        "exit": None if ended is None else ended - started,
    }
    return marks


def cli_transfer(children: Children, client: str, argv: list[str], timeout: float,
                 also: list[Child]) -> Result:
    """Run one client's process to its end; its raw figures (``verified`` not
    yet checked against the source: ``Bench.transfer`` does that)."""
    child = children.start(f"cli-{client}", argv)
    try:
        events = _events(child, timeout, also)
        ended = _reap(child, time.monotonic() + EXIT_TIMEOUT)
    finally:
        child.stop()
    code = child.proc.returncode
    marks = timeline_of(client, events, child.started, ended)
    if client == "txbittorrent":
        ok = code == 0 and marks["completed"] is not None
        note = "" if ok else f"exit status {code}"
    else:
        result = next((e for e in events if e.get("event") == "result"), {})
        ok = code == 0 and bool(result.get("ok"))
        note = "" if ok else str(result.get("note") or f"exit status {code}")
    if ended is None:
        ok, note = False, "did not exit in time"
    if not ok:
        return {"verified": False, "note": note, "log_tail": tail(child.log_path)}
    rusage = child.rusage
    cpu = rusage.ru_utime + rusage.ru_stime
    assert marks["exit"] is not None
    raw: Result = {
        "verified": True,
        "seconds": marks["exit"],
        "connect_seconds": marks["connected"],
        "total_seconds": marks["exit"],
        "cpu_seconds": cpu,
        "cpu_scope": "process",
        "process_cpu_seconds": cpu,
        "peak_rss_mib": rusage.ru_maxrss / 1024,
        "peak_anon_mib": child.peak_anon_kib / 1024,
        "wall_from": "process spawn to exit",
        "timeline": marks,
    }
    for mark, value in marks.items():
        raw[f"t_{mark}"] = value
    if marks["completed"] is not None and marks["exit"] is not None:
        raw["completed_to_exit"] = marks["exit"] - marks["completed"]
    return raw


# -- the figures ---------------------------------------------------------------------

CLI_FIGURES = ("seconds", "mb_s", "cpu_seconds", "peak_rss_mib", "peak_anon_mib",
               "others_cpu_share", "completed_to_exit", *(f"t_{m}" for m in TIMELINE))


def verdict(a: list[Result], b: list[Result], figure: str = "seconds") -> dict[str, Any]:
    """``a`` against ``b`` on ``figure`` (lower is better): the ratio of the
    medians b / a (above 1: ``a`` is faster), the spreads, and "faster",
    "slower" or, where the wider spread covers the difference, "no difference"."""
    xs = [r[figure] for r in a if r["verified"] and r.get(figure) is not None]
    ys = [r[figure] for r in b if r["verified"] and r.get(figure) is not None]
    if not xs or not ys:
        return {"ratio": None, "verdict": "n/a"}
    mx, my = median(xs), median(ys)
    sx, sy = spread(xs), spread(ys)
    assert mx is not None and my is not None and sx is not None and sy is not None
    widest = max(sx[1] - sx[0], sy[1] - sy[0])
    if abs(mx - my) <= widest:
        word = "no difference"
    else:
        word = "faster" if mx < my else "slower"
    return {"ratio": my / mx if mx else None, "a": mx, "b": my, "spread": widest,
            "verdict": word}


def summarise_cli(results: dict[str, list[Result]]) -> dict[str, Any]:
    """Medians and spreads of ``CLI_FIGURES`` per client, and the verdicts of
    txbittorrent against each libtorrent."""
    out: dict[str, Any] = {
        "medians": {name: {f: median(r.get(f) for r in runs if r["verified"])
                           for f in CLI_FIGURES} for name, runs in results.items()},
        "spreads": {name: {f: spread(r.get(f) for r in runs if r["verified"])
                           for f in CLI_FIGURES} for name, runs in results.items()},
        "verdicts": {},
    }
    ours = results.get("txbittorrent")
    if ours is not None:
        for other in ("libtorrent", "libtorrent-hp"):
            if other in results:
                out["verdicts"][other] = verdict(ours, results[other])
    return out


def _cell(value: float | None, width: int, digits: int) -> str:
    return f"{'-' if value is None else f'{value:.{digits}f}':>{width}}"


def _share(value: float | None) -> str:
    return f"{'-' if value is None else f'{100 * value:.0f}%':>6}"


def _range(bounds: Any, digits: int) -> str:
    return "-" if bounds is None else f"{bounds[0]:.{digits}f}-{bounds[1]:.{digits}f}"


def cli_table(cli: dict[str, Any]) -> list[str]:
    """The text of the whole-process section."""
    results, medians, spreads = cli["results"], cli["medians"], cli["spreads"]
    width = max([14, *(len(name) for name in results)])
    lines = [
        "",
        "whole process (as `time` shows it): from spawning the process to its exit, "
        "interpreter, imports and shutdown included",
        "txbittorrent: `python -m txbittorrent download ... --json`; libtorrent: a Python "
        "program on its bindings (bench._download_ltcli), default and high_performance_seed "
        "presets; libtorrent never fsyncs, txbittorrent fsyncs before its resume record",
        "others: the share of the machine's CPU other processes took meanwhile (median); "
        "byte code compiled beforehand (bench._download_cli)",
        f"{'client':<{width}} {'s':>7} {'s min-max':>12} {'MB/s':>7} {'CPU s':>7} "
        f"{'RSS MiB':>8} {'anon MiB':>9} {'others':>6}  {'ok':>5}  per run (s)",
    ]
    for name, runs in results.items():
        m, s = medians[name], spreads[name]
        ok = sum(r["verified"] for r in runs)
        per_run = " ".join(f"{r['seconds']:.2f}" if r["verified"]
                           else f"failed({r.get('note') or 'not verified'})" for r in runs)
        lines.append(
            f"{name:<{width}} {_cell(m['seconds'], 7, 2)} {_range(s['seconds'], 2):>12} "
            f"{_cell(m['mb_s'], 7, 1)} {_cell(m['cpu_seconds'], 7, 2)} "
            f"{_cell(m['peak_rss_mib'], 8, 0)} {_cell(m['peak_anon_mib'], 9, 0)} "
            f"{_share(m['others_cpu_share'])}  {ok}/{len(runs):<3}  {per_run}")
    lines += ["", "timeline (medians, s from the spawn): first event -> connected -> "
              "completed (last piece verified) -> exit"]
    for name, m in medians.items():
        marks = " -> ".join(f"{mark.replace('_', ' ')} {_cell(m[f't_{mark}'], 0, 3).strip()}"
                            for mark in TIMELINE)
        after = m.get("completed_to_exit")
        lines.append(f"{name:<{width}} {marks}"
                     + ("" if after is None else f"  (completed to exit {after:.3f})"))
    for other, v in cli["verdicts"].items():
        if v["ratio"] is None:
            lines.append(f"txbittorrent / {other} (whole process, MB/s): n/a")
            continue
        lines.append(
            f"txbittorrent / {other} (whole process, MB/s): {v['ratio']:.2f} "
            f"(medians {v['a']:.2f} s / {v['b']:.2f} s, widest spread {v['spread']:.2f} s): "
            f"{v['verdict']}")
    return lines
