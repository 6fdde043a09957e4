"""What ``download``, ``seed`` and ``demo`` share: options, the progress
line, JSON events, and running a Torrent until a goal is met or Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from twisted.internet.defer import Deferred

from txbittorrent.observers import TorrentObserver
from txbittorrent.progress import format_size


def parse_rate(text: str) -> int:
    """'500K', '2M', '1000' (bytes per second) -> int."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    t = text.strip().upper().removesuffix("B").removesuffix("/S")
    factor = 1
    if t and t[-1] in units:
        factor = units[t[-1]]
        t = t[:-1]
    try:
        value = float(t) * factor
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a rate: {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError("a rate must be positive")
    return int(value)


def parse_peer(text: str) -> tuple[str, int]:
    """'127.0.0.1:6881' or '[::1]:6881' -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"not HOST:PORT: {text!r}")
    return host.strip("[]"), int(port)


def parse_file_selection(text: str) -> set[int]:
    """'0,2-4' -> {0, 2, 3, 4}."""
    out: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        if not part:
            continue
        first, _, last = part.partition("-")
        try:
            lo = int(first)
            hi = int(last) if last else lo
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a file list: {text!r}") from None
        if lo < 0 or hi < lo:
            raise argparse.ArgumentTypeError(f"bad range {part!r}")
        out.update(range(lo, hi + 1))
    return out


def add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=int, default=0, help="listening port (default: any)")
    p.add_argument("--interface", action="append", default=None,
                   help="address to listen on (repeatable; default: all)")
    p.add_argument("--max-peers", type=int, default=None, help="connections for this torrent")
    p.add_argument("--download-limit", type=parse_rate, default=None, metavar="RATE",
                   help="bytes per second, e.g. 2M")
    p.add_argument("--upload-limit", type=parse_rate, default=None, metavar="RATE")
    p.add_argument("--peer", action="append", type=parse_peer, default=[],
                   metavar="HOST:PORT", help="connect to this peer too (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    p.add_argument("--quiet", action="store_true", help="no progress line")


def resume_path_for(directory: str, info_hash_hex: str) -> str:
    return os.path.join(directory, ".txbittorrent", f"{info_hash_hex}.resume")


class Reporter(TorrentObserver):
    """Draws the progress line (or writes JSON events)."""

    def __init__(self, torrent: Any, json_mode: bool, quiet: bool,
                 out: TextIO | None = None, err: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.torrent = torrent
        self.json_mode = json_mode
        self.quiet = quiet
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.clock = clock
        self._drawn = False

    def event(self, kind: str, **fields: Any) -> None:
        if self.json_mode:
            record = {"event": kind, "time": round(time.time(), 3), **fields}
            self.out.write(json.dumps(record) + "\n")
            self.out.flush()

    def line(self) -> str:
        t = self.torrent
        total = t.wanted_size
        done = max(total - t.left_wanted, 0)
        pct = 100.0 * done / total if total else 100.0
        down, up = t.download_rate, t.upload_rate
        if down > 0 and done < total:
            eta_s = int((total - done) / down)
            eta = f"ETA {eta_s // 3600}:{eta_s // 60 % 60:02d}:{eta_s % 60:02d}"
        else:
            eta = "ETA -"
        return (f"{pct:5.1f}%  {format_size(done)} / {format_size(total)}  "
                f"down {format_size(down)}/s  up {format_size(up)}/s  "
                f"peers {len(t.peers())}  {eta}")

    def tick(self) -> None:
        if self.json_mode:
            t = self.torrent
            self.event("progress", left=t.left_wanted, downloaded=t.downloaded,
                       uploaded=t.uploaded, down_rate=round(t.download_rate),
                       up_rate=round(t.upload_rate), peers=len(t.peers()))
        elif not self.quiet:
            self.err.write("\r" + self.line() + "\x1b[K" if self.err.isatty() else self.line() + "\n")
            self.err.flush()
            self._drawn = True

    def done_line(self) -> None:
        if self._drawn and self.err.isatty():
            self.err.write("\n")
            self.err.flush()

    def message(self, text: str) -> None:
        if self.json_mode:
            self.event("message", text=text)
        else:
            self.done_line()
            self._drawn = False
            self.err.write(text + "\n")
            self.err.flush()

    # observer methods
    def piece_verified(self, torrent: Any, index: int, passed: bool) -> None:
        if not passed:
            self.event("hash_failed", piece=index)

    def peer_connected(self, torrent: Any, peer: Any) -> None:
        self.event("peer_connected", address=f"{peer.address[0]}:{peer.address[1]}",
                   client=getattr(peer, "client", ""))

    def peer_lost(self, torrent: Any, peer: Any, reason: str) -> None:
        self.event("peer_lost", address=f"{peer.address[0]}:{peer.address[1]}", reason=reason)

    def tracker_error(self, torrent: Any, url: str, error: str) -> None:
        self.event("tracker_error", url=url, error=error)

    def tracker_reply(self, torrent: Any, url: str, response: Any) -> None:
        self.event("tracker_reply", url=url, peers=len(getattr(response, "peers", ())))

    def state_changed(self, torrent: Any, old: str, new: str) -> None:
        self.event("state", old=old, new=new)

    def completed(self, torrent: Any) -> None:
        self.event("completed")


def wait_for_goal(reactor: Any, torrent: Any, reporter: Reporter,
                  goal: Callable[[], bool], interval: float = 1.0) -> Deferred[None]:
    """Tick the reporter every ``interval`` until ``goal()`` holds."""
    from twisted.internet.task import LoopingCall

    done: Deferred[None] = Deferred()

    def tick() -> None:
        reporter.tick()
        if goal() and not done.called:
            loop.stop()
            done.callback(None)

    loop = LoopingCall(tick)
    loop.clock = reactor
    loop.start(interval, now=False)
    return done
