"""What ``download``, ``seed`` and ``demo`` share: options, the progress
line, JSON events, and running a Torrent until a goal is met or Ctrl-C.

Before a magnet's metadata arrives the progress line is "fetching metadata
(n peers)" (JSON: "fetching_metadata" events instead of "progress"), and
the metadata's arrival is a "metadata_received" event."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from twisted.internet.defer import Deferred, succeed
from twisted.logger import ILogObserver, LogLevel, formatEvent, globalLogBeginner
from zope.interface import implementer  # type: ignore[import-untyped]

from txbittorrent.eventtypes import Progress, TorrentEvent
from txbittorrent.commands.progress import format_size


def parse_rate(text: str) -> int:
    """'500K', '2M', '1.5MiB/s', '1000' (bytes per second) -> int."""
    units = {"K": 1024, "M": 1024**2, "G": 1024**3}
    t = text.strip().upper().removesuffix("/S").removesuffix("B")
    if t[-2:-1] in units and t.endswith("I"):
        t = t[:-1]
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


def parse_port(text: str) -> int:
    """'6881' -> 6881; 0 means any free port."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"port out of range: {port}")
    return port


def parse_positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {value}")
    return value


def add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--port", type=parse_port, default=0,
                   help="listening port (default: any)")
    p.add_argument("--interface", action="append", default=None,
                   help="address to listen on (repeatable; default: all)")
    p.add_argument("--max-peers", type=parse_positive_int, default=None,
                   help="connections for this torrent")
    p.add_argument("--download-limit", type=parse_rate, default=None, metavar="RATE",
                   help="bytes per second, e.g. 2M")
    p.add_argument("--upload-limit", type=parse_rate, default=None, metavar="RATE")
    p.add_argument("--peer", action="append", type=parse_peer, default=[],
                   metavar="HOST:PORT", help="connect to this peer too (repeatable)")
    p.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    p.add_argument("--quiet", action="store_true",
                   help="no progress line or messages (errors still go to stderr)")
    add_encryption_option(p)
    add_discovery_options(p)


ENCRYPTION_CHOICES = ("disabled", "enabled", "forced")
"""``SessionConfig.encryption``'s values (``peer.msepolicy.ENCRYPTION_MODES``,
not imported here: the CLI's start-up imports only what it needs)."""


def add_encryption_option(p: argparse.ArgumentParser) -> None:
    """--encryption disabled|enabled|forced (None when not given)."""
    p.add_argument("--encryption", choices=ENCRYPTION_CHOICES, default=None,
                   help="MSE/PE: 'enabled' (default) accepts plain and encrypted peers "
                        "and dials plain with an encrypted fallback; 'forced' only RC4 "
                        "both ways; 'disabled' plain only")


def add_discovery_options(p: argparse.ArgumentParser) -> None:
    """--dht/--no-dht, --dht-port, --dht-bootstrap and --no-pex (each None
    when not given: the library's default).  ``check_discovery_options``
    refuses contradictions."""
    p.add_argument("--dht", action=argparse.BooleanOptionalAction, default=None,
                   help="find peers in the DHT (BEP 5; default: on, never for a "
                        "private torrent)")
    p.add_argument("--dht-port", type=parse_port, default=None, metavar="N",
                   help="UDP port of the DHT node (default: the session's)")
    p.add_argument("--dht-bootstrap", action="append", type=parse_peer, default=[],
                   metavar="HOST:PORT",
                   help="a DHT node to join through (repeatable; default: the public "
                        "routers)")
    p.add_argument("--no-pex", dest="pex", action="store_false", default=None,
                   help="do not exchange peers with peers (BEP 11)")
    p.set_defaults(usage_error=p.error)


def check_discovery_options(args: argparse.Namespace) -> None:
    """A usage error (exit 2) for DHT settings given along with --no-dht."""
    if args.dht is False and (args.dht_port is not None or args.dht_bootstrap):
        option = "--dht-port" if args.dht_port is not None else "--dht-bootstrap"
        args.usage_error(f"{option} needs the DHT (drop --no-dht)")


def torrent_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The ``TorrentConfig`` fields the discovery options set (only those
    given): ``pex`` and ``dht``, for ``Torrent(..., **torrent_settings(args))``."""
    settings: dict[str, Any] = {}
    if args.pex is not None:
        settings["pex"] = args.pex
    if args.dht is not None:
        settings["dht"] = args.dht
    return settings


def dht_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The session's DHT node settings the command line gives (only those
    given): ``enabled`` (--dht/--no-dht), ``port`` (--dht-port: an int,
    0 for any) and ``bootstrap_nodes`` (--dht-bootstrap: a tuple of
    ``(host, port)``); ``session_config`` makes them a ``SessionConfig``."""
    settings: dict[str, Any] = {}
    if args.dht is not None:
        settings["enabled"] = args.dht
    if args.dht_port is not None:
        settings["port"] = args.dht_port
    if args.dht_bootstrap:
        settings["bootstrap_nodes"] = tuple(args.dht_bootstrap)
    return settings


def session_config(args: argparse.Namespace, state_path: str | None = None) -> Any:
    """The ``SessionConfig`` of the command's own session: its DHT node on
    unless --no-dht (the library's default is off), with ``dht_settings``
    and ``state_path`` (where the node keeps its id and routing table), and
    --encryption when given."""
    from txbittorrent.dht.config import DHTConfig
    from txbittorrent.session import SessionConfig

    dht = DHTConfig.from_settings(state_path=state_path, **dht_settings(args))
    encryption = getattr(args, "encryption", None)
    if encryption is None:
        return SessionConfig(dht=dht)
    return SessionConfig(dht=dht, encryption=encryption)


def dht_state_path_for(directory: str) -> str:
    """Where ``download`` and ``seed`` keep the DHT node's state."""
    return os.path.join(directory, ".txbittorrent", "dht.state")


def resume_path_for(directory: str, info_hash_hex: str) -> str:
    return os.path.join(directory, ".txbittorrent", f"{info_hash_hex}.resume")


def metadata_path_for(directory: str, info_hash_hex: str) -> str:
    """Where ``download`` keeps the metadata it fetched for a magnet, so that
    the next run of the same magnet starts as from the .torrent (and its
    resume record counts)."""
    return os.path.join(directory, ".txbittorrent", f"{info_hash_hex}.torrent")


def format_address(address: tuple[str, int]) -> str:
    """('::1', 6881) -> '[::1]:6881'; ('127.0.0.1', 6881) -> '127.0.0.1:6881'."""
    host, port = address[0], address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


@implementer(ILogObserver)
class OneLineLogObserver:
    """Writes each log event of level warn or above as one line, a logged
    failure as its message (no traceback); drops the rest."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream

    def __call__(self, event: dict[str, Any]) -> None:
        level = event.get("log_level")
        if level is None or level < LogLevel.warn:
            return
        text = formatEvent(event)
        failure = event.get("log_failure")
        if failure is not None:
            text = f"{text}: {failure.getErrorMessage()}"
        self.stream.write(f"txbittorrent: {text}\n")
        self.stream.flush()


def start_logging(err: TextIO | None = None) -> None:
    """Send the engine's log to ``err`` (default: stderr) through a
    ``OneLineLogObserver``.

    Without this, Twisted prints every logged failure (a resume save that
    failed, a disk error) as a traceback on stderr.  Call once per process,
    before the reactor runs."""
    stream = err if err is not None else sys.stderr
    observers: list[Any] = [OneLineLogObserver(stream)]  # provides ILogObserver
    globalLogBeginner.beginLoggingTo(observers, discardBuffer=True, redirectStandardIO=False)


def install_lookup_threads(reactor: Any, threads: int = 4) -> Any:
    """Run ``reactor``'s host name lookups (``getaddrinfo``) in daemon
    threads of their own, which nothing waits for; the pool, started.

    By default Twisted looks names up in the reactor's thread pool, which it
    joins at shutdown: a lookup that hangs (a DNS server that does not
    answer, for a tracker's or a DHT router's name) kept the command from
    exiting until it gave up, seconds after the download was over.  A one-shot
    command has no use for a late answer; a daemon thread dies with the
    process.  Both ``reactor.nameResolver`` and the older ``reactor.resolve``
    go through the new resolver."""
    from threading import Thread

    # GAIResolver is Twisted's own getaddrinfo resolver (the default one);
    # its getThreadPool argument is the hook for choosing the pool.
    from twisted.internet._resolver import GAIResolver
    from twisted.python.threadpool import ThreadPool

    class DaemonThreadPool(ThreadPool):
        @staticmethod
        def threadFactory(*args: Any, **kwargs: Any) -> Thread:  # type: ignore[override]
            return Thread(*args, daemon=True, **kwargs)

    pool = DaemonThreadPool(0, threads, name="txbittorrent-lookups")
    pool.start()
    reactor.installNameResolver(GAIResolver(reactor, lambda: pool))
    return pool


PLAIN_INTERVAL = 10.0
"""Seconds between progress lines written to a file or pipe (not a terminal)."""


JSON_KINDS = frozenset({
    "state_changed", "piece_failed", "peer_connected", "peer_lost", "peer_banned",
    "tracker_reply", "tracker_error", "disk_error", "metadata_received", "complete",
})
"""The engine's events a ``--json`` run prints as they happen (with the
periodic "progress"; "piece_passed" would be one line per piece)."""


class Reporter:
    """Draws the progress line (or writes JSON events).

    Text mode writes to ``err``: the progress line (redrawn in place on a
    terminal, a line every ``plain_interval`` s otherwise) and short messages;
    ``quiet`` silences both.  JSON mode writes one object per line on
    ``out`` in the schema of the daemon's event streams: the engine's events
    as their ``to_json()`` (``"kind"``, ``"info_hash"``, the fields, see
    ``txbittorrent.eventtypes``) plus ``"time"`` (Unix seconds); progress as
    the ``Progress`` event; the command line's own news (``"message"``,
    ``"listening"``, ``"fetching_metadata"``, ``"interrupted"``,
    ``"stopped"``) with the same ``"kind"``/``"info_hash"``/``"time"``."""

    def __init__(self, torrent: Any, json_mode: bool, quiet: bool,
                 out: TextIO | None = None, err: TextIO | None = None,
                 clock: Callable[[], float] = time.time,
                 monotonic: Callable[[], float] = time.monotonic,
                 plain_interval: float = PLAIN_INTERVAL) -> None:
        self.torrent = torrent
        self.json_mode = json_mode
        self.quiet = quiet
        self.out = out if out is not None else sys.stdout
        self.err = err if err is not None else sys.stderr
        self.clock = clock
        """Wall-clock time for the JSON events' "time"."""
        self.monotonic = monotonic
        self.plain_interval = plain_interval
        """Seconds between progress lines when ``err`` is not a terminal."""
        self._drawn = False
        self._finished = False
        self._last_plain: float | None = None

    def attach(self, torrent: Any) -> None:
        """Report on ``torrent``: in JSON mode, print its ``JSON_KINDS``
        events and its session's ``dht_ready`` as they are published."""
        self.torrent = torrent
        if not self.json_mode:
            return
        torrent.subscribe(self.publish, kinds=JSON_KINDS)
        events = getattr(torrent, "events", None)
        if events is not None:  # the DHT node's news is the session's, not the torrent's
            events.subscribe(self.publish, kinds="dht_ready")

    def _write(self, record: dict[str, Any]) -> None:
        record["time"] = round(self.clock(), 3)
        self.out.write(json.dumps(record) + "\n")
        self.out.flush()

    def publish(self, event: TorrentEvent) -> None:
        """Print one engine event (JSON mode)."""
        if self.json_mode:
            self._write(event.to_json())

    def event(self, kind: str, **fields: Any) -> None:
        """Print one of the command line's own events (JSON mode)."""
        if self.json_mode:
            record: dict[str, Any] = {"kind": kind}
            if self.torrent is not None:
                record["info_hash"] = self.torrent.info_hash.hex()
            record.update(fields)
            self._write(record)

    def line(self) -> str:
        t = self.torrent
        if not t.has_metadata:
            return f"fetching metadata ({len(t.peers())} peers)"
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

    def tick(self, final: bool = False) -> None:
        """Report progress: a JSON event, or the progress line (redrawn on a
        terminal; otherwise printed every ``plain_interval`` s and when ``final``)."""
        if self._finished:
            return
        if self.json_mode:
            t = self.torrent
            if not t.has_metadata:
                self.event("fetching_metadata", peers=len(t.peers()))
                return
            self.publish(Progress(
                t.info_hash, have_pieces=t.bitfield.count, piece_count=t.piece_count,
                bytes_done=max(t.wanted_size - t.left_wanted, 0), left=t.left_wanted,
                download_rate=round(t.download_rate), upload_rate=round(t.upload_rate),
                peers=len(t.peers()), downloaded=t.downloaded, uploaded=t.uploaded,
            ))
        elif not self.quiet:
            if self.err.isatty():
                self.err.write("\r" + self.line() + "\x1b[K")
                self._drawn = True
            else:
                now = self.monotonic()
                last = self._last_plain
                if not final and last is not None and now - last < self.plain_interval:
                    return
                self._last_plain = now
                self.err.write(self.line() + "\n")
            self.err.flush()

    def done_line(self) -> None:
        """End a progress line drawn in place, so what follows starts afresh."""
        if self._drawn:
            self.err.write("\n")
            self.err.flush()
            self._drawn = False

    def finish(self) -> None:
        """No more progress from now on (the torrent is stopping)."""
        self.done_line()
        self._finished = True

    def message(self, text: str) -> None:
        if self.json_mode:
            self.event("message", text=text)
        elif not self.quiet:
            self.done_line()
            self.err.write(text + "\n")
            self.err.flush()

    def listening(self, port: int) -> None:
        """Say which port peers can connect to (JSON: a "listening" event)."""
        if self.json_mode:
            self.event("listening", port=port)
        else:
            self.message(f"listening on port {port}")

    def metadata_received(self, name: str, piece_count: int, size: int) -> None:
        """The info dictionary arrived (text mode; JSON mode prints the
        engine's "metadata_received" event itself)."""
        if not self.json_mode:
            self.message(f"metadata received: {name}, {format_size(size)} in "
                         f"{piece_count} pieces")

    def dht_ready(self, node_count: int) -> None:
        """The DHT node has joined (text mode; JSON mode prints the event)."""
        if not self.json_mode:
            self.message(f"DHT ready: {node_count} nodes")


def wait_for_metadata(reactor: Any, torrent: Any, reporter: Reporter,
                      interval: float = 1.0) -> Deferred[None]:
    """Tick the reporter every ``interval`` until ``torrent`` has its
    metadata; fires in the same turn as the "metadata_received" event (so
    what follows, such as --files, applies before pieces are asked for)."""
    from twisted.internet.task import LoopingCall

    if torrent.has_metadata:
        return succeed(None)
    done: Deferred[None] = Deferred()

    def arrived(event: Any) -> None:
        subscription.cancel()
        if loop.running:
            loop.stop()
        if not done.called:
            done.callback(None)

    def failed(failure: Any) -> None:
        subscription.cancel()
        if not done.called:
            done.errback(failure)

    loop = LoopingCall(reporter.tick)
    loop.clock = reactor
    subscription = torrent.subscribe(arrived, kinds="metadata_received")
    loop.start(interval, now=False).addErrback(failed)
    return done


GOAL_EVENTS = ("complete", "state_changed")
"""The torrent's events after which ``wait_for_goal`` checks its goal at once
(not at the next tick): the download's end is not kept waiting a second."""


def wait_for_goal(reactor: Any, torrent: Any, reporter: Reporter,
                  goal: Callable[[], bool], interval: float = 1.0) -> Deferred[None]:
    """Tick the reporter every ``interval`` until ``goal()`` holds (fires at
    once if it already does); the last tick is ``final``.  The goal is also
    checked in the reactor turn after each of ``torrent``'s ``GOAL_EVENTS``
    (a download is over when its last piece is verified, not at the next
    tick).  An exception from a tick fails the wait."""
    from twisted.internet.task import LoopingCall

    if goal():
        reporter.tick(final=True)
        return succeed(None)
    done: Deferred[None] = Deferred()
    subscription: Any = None

    def finish() -> None:
        if subscription is not None:
            subscription.cancel()
        if loop.running:
            loop.stop()
        done.callback(None)

    def tick() -> None:
        if done.called:
            return
        reached = goal()
        reporter.tick(final=reached)
        if reached:
            finish()

    def check() -> None:
        # A turn later: the event is published from deep inside the swarm,
        # which must not be stopped under its own feet.
        if not done.called and goal():
            tick()

    def failed(failure: Any) -> None:
        if not done.called:
            if subscription is not None:
                subscription.cancel()
            done.errback(failure)

    loop = LoopingCall(tick)
    loop.clock = reactor
    if torrent is not None and hasattr(torrent, "subscribe"):
        subscription = torrent.subscribe(lambda event: reactor.callLater(0, check),
                                         kinds=GOAL_EVENTS)
    loop.start(interval, now=False).addErrback(failed)
    return done
