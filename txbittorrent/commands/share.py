"""``txbittorrent share DIR``: serve a directory's files as torrents made on
demand (``share.service.ShareService``), seeded from one port and tracked by
an embedded tracker, until SIGINT or SIGTERM; exit 0 after a clean stop, 1
when it could not start (a port taken, DIR not a directory)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

DEFAULT_LISTEN = "tcp:8000:interface=127.0.0.1"


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive number: {text!r}")
    return int(text)


def _piece_length(text: str) -> int:
    from txbittorrent.storage.create import MIN_PIECE_LENGTH

    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < MIN_PIECE_LENGTH or value & (value - 1):
        raise argparse.ArgumentTypeError(
            f"not a power of two of at least {MIN_PIECE_LENGTH}: {text!r}"
        )
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def _url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text)
    if parts.scheme not in ("http", "https", "udp") or not parts.netloc:
        raise argparse.ArgumentTypeError(f"not a tracker URL: {text!r}")
    return text


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "share", help="serve a directory's files as torrents made on demand, and seed them"
    )
    p.add_argument("directory", metavar="DIR", help="the directory to share")
    p.add_argument("--listen", default=DEFAULT_LISTEN, metavar="ENDPOINT",
                   help="a Twisted endpoint string for the HTTP service"
                        " (default: %(default)s)")
    p.add_argument("--peer-port", type=_port, default=0, metavar="N",
                   help="the BitTorrent listening port (default: 0, any free port)")
    p.add_argument("--peer-interface", default="127.0.0.1", metavar="ADDR",
                   help="the address peers connect to (default: %(default)s;"
                        " 0.0.0.0 for every IPv4 interface)")
    p.add_argument("--tracker-url", type=_url, default=None, metavar="URL",
                   help="the announce URL written into the torrents, as clients will reach"
                        " the embedded tracker (default: its own loopback URL)")
    p.add_argument("--tracker-interface", default="127.0.0.1", metavar="ADDR",
                   help="where the embedded tracker listens (default: %(default)s)")
    p.add_argument("--tracker-port", type=_port, default=0, metavar="N",
                   help="the embedded tracker's HTTP and UDP port (default: 0, any free port)")
    p.add_argument("--piece-length", type=_piece_length, default=None, metavar="N",
                   help="bytes per piece, a power of two (default: chosen by size)")
    p.add_argument("--cache-dir", default=None, metavar="D",
                   help="where torrents and resume records are kept"
                        " (default: DIR/.txbittorrent-share)")
    p.add_argument("--max-jobs", type=_positive, default=2, metavar="N",
                   help="torrents hashed at once; others wait (default: %(default)s)")
    p.add_argument("--max-files", type=_positive, default=10_000, metavar="N",
                   help="the most files a directory's torrent may hold (default: %(default)s)")
    p.add_argument("--check-interval", type=_seconds, default=30.0, metavar="SECONDS",
                   help="how often seeded files are checked for removal or change"
                        " (default: %(default)s)")
    p.set_defaults(run=run)


def config_of(args: argparse.Namespace) -> Any:
    """The ``ShareConfig`` for the parsed command line."""
    from txbittorrent.share.service import ShareConfig

    return ShareConfig(
        args.directory, listen=args.listen, peer_port=args.peer_port,
        peer_interface=args.peer_interface, tracker_url=args.tracker_url,
        tracker_interface=args.tracker_interface, tracker_port=args.tracker_port,
        piece_length=args.piece_length, cache_dir=args.cache_dir, max_jobs=args.max_jobs,
        max_files=args.max_files, check_interval=args.check_interval,
    )


def run(args: argparse.Namespace) -> int:
    import os

    from twisted.internet import reactor as global_reactor

    from txbittorrent.commands.serve import start_logging
    from txbittorrent.share.service import ShareService

    if not os.path.isdir(args.directory):
        print(f"txbittorrent share: error: not a directory: {args.directory}", file=sys.stderr)
        return 1
    reactor: Any = global_reactor
    service = ShareService(config_of(args), reactor=reactor)
    outcome: dict[str, Any] = {"code": 0}

    def start() -> None:
        service.startService()
        assert service.started is not None

        def started(_: object) -> None:
            print(f"txbittorrent share: serving {service.root} on {service.url}"
                  f" (tracker {service.tracker_url})", flush=True)

        def failed(failure: Any) -> None:
            print(f"txbittorrent share: error: {failure.getErrorMessage()}", file=sys.stderr)
            outcome["code"] = 1
            reactor.stop()

        service.started.addCallbacks(started, failed)

    def stop() -> Any:
        if not service.running:
            return None
        d = service.stopService()

        def stop_failed(failure: Any) -> None:
            print(f"txbittorrent share: error while stopping: {failure.getErrorMessage()}",
                  file=sys.stderr)
            outcome["code"] = 1

        return d.addErrback(stop_failed)

    start_logging("text")
    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    return int(outcome["code"])
