"""``txbittorrent download TORRENT_ID -o DIR``: download, verify, optionally seed.

TORRENT_ID is a .torrent path, a magnet URI, a bare info hash or an http(s)
URL of a .torrent (see ``_source``).  A URL is fetched once the reactor
runs.  A magnet starts without its metadata: the progress line says
"fetching metadata (n peers)" until the info dictionary arrives from peers,
then ``--files`` applies, ``--save-torrent`` writes the .torrent, and the
download goes on as for a .torrent.  The fetched metadata is kept beside
the resume record (``DIR/.txbittorrent/INFOHASH.torrent``): the next run of
the same magnet into DIR starts from it, checks what is on disk and fetches
only what is missing (the magnet's trackers and peers are still used).

Exits 0 once every wanted piece is verified (and any seeding goal is met).
Ctrl-C stops cleanly: trackers hear ``stopped`` and the resume record is
saved, so the next run does not download verified pieces again; the exit
status is then 130.  Errors met while running (a disk that cannot be written,
a port already taken) print one line on stderr and exit 1, like bad input."""

from __future__ import annotations

import argparse
import os
from typing import Any

from txbittorrent.commands._engine import (
    Reporter,
    add_engine_options,
    check_discovery_options,
    dht_state_path_for,
    install_lookup_threads,
    metadata_path_for,
    parse_file_selection,
    resume_path_for,
    session_config,
    start_logging,
    torrent_settings,
    wait_for_goal,
    wait_for_metadata,
)
from txbittorrent.commands._react import anticipated as _anticipated
from txbittorrent.commands._source import (
    TORRENT_ID_HELP,
    Target,
    TorrentURL,
    check_save_path,
    fetch_torrent,
    resolve_local,
    torrent_trackers,
    write_torrent_file,
)
from txbittorrent.core.magnet import Magnet
from txbittorrent.core.metainfo import DEFAULT_LIMITS, Metainfo, parse
from txbittorrent.errors import LocalProtocolError, MetainfoError


STOP_ANNOUNCE_TIMEOUT = 1.0
"""Seconds the command waits at exit for trackers to hear ``stopped`` (the
library waits 5): polite, but a one-shot download is not kept waiting on a
slow tracker.  Only trackers that answered ``started`` are told at all."""


def add_parser(sub: Any) -> None:
    p = sub.add_parser("download", help="download a torrent into a directory")
    p.add_argument("torrent", metavar="TORRENT_ID", help=TORRENT_ID_HELP)
    p.add_argument("-o", "--output", default=".", help="download directory (default: .)")
    p.add_argument("--files", type=parse_file_selection, default=None, metavar="LIST",
                   help="only these files, numbered from 0 in the order `info` lists "
                        "them: 0,2-4")
    p.add_argument("--seed", action="store_true", help="keep seeding after completing")
    p.add_argument("--seed-ratio", type=float, default=None, metavar="R",
                   help="seed until uploaded/size reaches R")
    p.add_argument("--seed-time", type=float, default=None, metavar="SECONDS",
                   help="seed this long after completing")
    p.add_argument("--save-torrent", default=None, metavar="PATH",
                   help="once the metadata is known, write it (with the trackers) "
                        "to this .torrent file")
    add_engine_options(p)
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    check_discovery_options(args)
    target = resolve_local(args.torrent)
    priorities = _priorities(target, args.files) if isinstance(target, Metainfo) else None
    check_save_path(args.save_torrent)
    return run_engine(args, target, priorities, seed_only=False)


def save_torrent(torrent: Any, path: str, reporter: Reporter) -> None:
    """Write ``torrent``'s metadata and trackers to ``path`` (atomically)."""
    write_torrent_file(path, torrent.info_bytes(), torrent_trackers(torrent))
    reporter.message(f"saved {path}")


def cached_metainfo(directory: str, magnet: Magnet) -> Metainfo | None:
    """The metadata an earlier run fetched for ``magnet`` into ``directory``,
    if it is there, whole and of that info hash."""
    path = metadata_path_for(directory, magnet.info_hash_hex)
    try:
        with open(path, "rb") as f:
            metainfo = parse(f.read(DEFAULT_LIMITS.max_torrent_size + 1))
    except (OSError, MetainfoError):
        return None
    return metainfo if metainfo.info_hash == magnet.info_hash else None


def _label(target: Any) -> str:
    """What the messages call the torrent before its metadata is known."""
    if isinstance(target, Magnet):
        return target.display_name or target.info_hash_hex
    return str(target.name)


def _priorities(metainfo: Any, selection: set[int] | None) -> list[int] | None:
    if selection is None:
        return None
    visible = [i for i, f in enumerate(metainfo.files) if not f.pad]
    bad = sorted(i for i in selection if i >= len(visible))
    if bad:
        raise LocalProtocolError(f"--files: no file number {bad[0]} "
                                 f"(there are {len(visible)}, numbered from 0)")
    chosen = {visible[i] for i in selection}
    return [1 if i in chosen else 0 for i in range(len(metainfo.files))]


class _Outcome:
    """How a run ended, for ``run_engine`` to turn into an exit status."""

    def __init__(self) -> None:
        self.finished = False
        """``_main`` is over: its goal met (the torrent stopping), or failed."""
        self.interrupted = False
        """The reactor began shutting down first (Ctrl-C, SIGTERM)."""
        self.error: BaseException | None = None
        """An anticipated failure, re-raised for ``cli.main`` to print."""


def run_engine(args: argparse.Namespace, target: Target | Any, priorities: list[int] | None,
               seed_only: bool) -> int:
    """Run the reactor until the goal is met or Ctrl-C; the exit status.

    ``target`` is what ``_source.resolve_local`` made of the TORRENT_ID;
    ``priorities`` apply to a target whose metadata is known already.

    ``task.react`` would print an anticipated error as a traceback and exit;
    here it is re-raised once the reactor has stopped, so ``cli.main`` prints
    it as one line."""
    from twisted.internet import task
    from twisted.internet.defer import Deferred

    outcome = _Outcome()

    def main(reactor: Any) -> Any:
        d = Deferred.fromCoroutine(_main(reactor, args, target, priorities, seed_only,
                                         outcome))

        def failed(failure: Any) -> Any:
            outcome.finished = True
            error = _anticipated(failure)
            if error is None:
                return failure  # a bug: react logs it with its traceback
            outcome.error = error
            raise SystemExit(1)

        return d.addErrback(failed)

    start_logging()
    install_lookup_threads(_global_reactor())
    _stop_once_on_signals(_global_reactor())
    try:
        task.react(main)
    except SystemExit as e:
        code = e.code
    else:  # pragma: no cover - react always exits
        code = 0
    if outcome.error is not None:
        raise outcome.error
    if outcome.interrupted and not outcome.finished:
        return 130
    return int(code or 0)


def _global_reactor() -> Any:
    from twisted.internet import reactor

    return reactor


def _stop_once_on_signals(reactor: Any) -> None:
    """Once running, let SIGINT and SIGTERM stop the reactor only once.

    Twisted's own handlers call ``reactor.stop()`` on every signal, so a
    second Ctrl-C while the torrent is stopping logs "Can't stop reactor that
    isn't running".  A signal that was ignored when we started (a background
    job's SIGINT) stays ignored."""
    import signal

    stopping = False

    def mark() -> None:
        nonlocal stopping
        stopping = True

    def stop() -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            reactor.stop()

    def handler(signum: int, frame: Any) -> None:
        reactor.callFromThread(stop)

    def install() -> None:
        for number in (signal.SIGINT, signal.SIGTERM):
            if signal.getsignal(number) not in (signal.SIG_IGN, signal.SIG_DFL, None):
                signal.signal(number, handler)

    reactor.addSystemEventTrigger("before", "shutdown", mark)
    reactor.callWhenRunning(install)


async def _main(reactor: Any, args: argparse.Namespace, target: Any,
                priorities: list[int] | None, seed_only: bool, outcome: _Outcome) -> None:
    from twisted.internet.task import deferLater

    from txbittorrent.torrent import Torrent
    from txbittorrent.tracker.config import TrackerConfig

    directory = args.output
    reporter = Reporter(None, args.json, args.quiet)
    magnet: Magnet | None = None  # one whose metadata an earlier run kept
    if isinstance(target, TorrentURL):
        # No "fetching" message: a failure is to be one line on stderr.
        target = await fetch_torrent(reactor, target.url)
        priorities = _priorities(target, args.files)
    elif isinstance(target, Magnet):
        cached = cached_metainfo(directory, target)
        if cached is not None:
            magnet, target = target, cached
            priorities = _priorities(cached, args.files)
    resume_path = resume_path_for(directory, target.info_hash_hex)
    os.makedirs(os.path.dirname(resume_path), exist_ok=True)
    torrent = Torrent(
        target,
        basedir=directory,
        port=args.port,
        reactor=reactor,
        resume_path=resume_path,
        priorities=priorities,
        listen_interfaces=args.interface,
        max_peers=args.max_peers,
        download_limit=args.download_limit,
        upload_limit=args.upload_limit,
        session_config=session_config(args, dht_state_path_for(directory)),
        tracker=TrackerConfig(stop_timeout=STOP_ANNOUNCE_TIMEOUT),
        **torrent_settings(args),
    )
    if magnet is not None:
        for url in magnet.trackers:
            torrent.add_tracker(url)  # a no-op for one it has
    reporter.attach(torrent)

    def on_metadata(event: Any) -> None:
        reporter.metadata_received(event.name, event.piece_count, event.size)

    torrent.subscribe(on_metadata, kinds="metadata_received")
    events = getattr(torrent, "events", None)
    if events is not None:  # the DHT node's news is the session's, not the torrent's
        events.subscribe(lambda event: reporter.dht_ready(event.node_count), kinds="dht_ready")

    def on_shutdown() -> Any:
        if not outcome.finished:
            outcome.interrupted = True
            reporter.finish()
            reporter.event("interrupted")
        if torrent.state == "stopped":
            # Not started yet (still checking the data: nothing verified is
            # at risk, and the check could take minutes), or stopped already.
            if outcome.interrupted:
                reporter.message("interrupted")
            return None
        if outcome.interrupted:
            reporter.message("interrupted: stopping (telling trackers, saving resume data)")

        def stopped(_: object) -> None:
            if outcome.interrupted:
                reporter.event("stopped", left=torrent.left_wanted,
                               pieces=torrent.bitfield.count,
                               downloaded=torrent.downloaded, uploaded=torrent.uploaded)
                reporter.message("stopped; resume data saved")

        def failed(failure: Any) -> None:
            outcome.error = _anticipated(failure) or RuntimeError(failure.getErrorMessage())
            reporter.message(f"stopping failed: {outcome.error}")

        # Queued behind a stop already under way, if any.
        return torrent.stop().addCallbacks(stopped, failed)

    reactor.addSystemEventTrigger("before", "shutdown", on_shutdown)
    name = _label(target)
    fetching = not torrent.has_metadata
    if fetching:
        reporter.message(f"{name}: fetching metadata, to download into {directory}")
    else:
        reporter.message(f"{name}: checking existing data in {directory}")
    try:
        await torrent.start()
    except Exception:
        await _quietly(torrent.stop())
        raise
    if outcome.interrupted:
        return
    if fetching:
        torrent.add_peers(args.peer)
        reporter.listening(torrent.port)
        await wait_for_metadata(reactor, torrent, reporter)
        metainfo = torrent.metainfo
        assert metainfo is not None
        name = metainfo.name
        write_torrent_file(metadata_path_for(directory, metainfo.info_hash_hex),
                           metainfo.info_bytes, torrent_trackers(torrent))
        if args.save_torrent is not None:
            save_torrent(torrent, args.save_torrent, reporter)
        priorities = _priorities(metainfo, args.files)
        if priorities is not None:
            await torrent.set_priorities(priorities)
        reporter.message(f"{torrent.wanted.count} of {torrent.piece_count} pieces "
                         f"to download")
    else:
        have = torrent.bitfield.count
        if seed_only:
            reporter.message(f"{have}/{torrent.piece_count} pieces verified")
            if have == 0:
                reporter.message(f"warning: no data of {name} verified in {directory}")
        else:
            reporter.message(f"{have}/{torrent.piece_count} pieces verified, "
                             f"{torrent.wanted.count} to download")
        if args.save_torrent is not None:
            save_torrent(torrent, args.save_torrent, reporter)
        torrent.add_peers(args.peer)
        if magnet is not None and magnet.peers:
            torrent.add_peers(list(magnet.peers), source="magnet")
        reporter.listening(torrent.port)
    if not seed_only:
        await wait_for_goal(reactor, torrent, reporter, lambda: torrent.complete)
        reporter.message(f"complete: {name} verified in {directory}")
    seed = seed_only or args.seed or args.seed_ratio is not None or args.seed_time is not None
    if seed:
        started = reactor.seconds()
        ratio, seconds = args.seed_ratio, args.seed_time

        def goal() -> bool:
            if ratio is not None and torrent.uploaded >= ratio * torrent.size:
                return True
            if seconds is not None and reactor.seconds() - started >= seconds:
                return True
            return False

        forever = ratio is None and seconds is None
        reporter.message("seeding" + (" until Ctrl-C" if forever else ""))
        await wait_for_goal(reactor, torrent, reporter, goal)
    reporter.finish()
    outcome.finished = True
    await torrent.stop()
    await deferLater(reactor, 0, lambda: None)


async def _quietly(d: Any) -> None:
    """Wait for ``d``, ignoring its failure (the original error matters more)."""
    try:
        await d
    except Exception:
        pass
