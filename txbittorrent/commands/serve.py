"""``txbittorrent serve``: run the daemon (``daemon.service.DaemonService``)
under the reactor until SIGINT or SIGTERM; exit 0 after a clean stop, 1 when
it could not start (a port taken, a state directory in use by another
daemon or that it cannot use).  Its log goes to stderr through
``twisted.logger``: one line of text per event, or one JSON object per line
with ``--log-format json``.  The restore of the stored torrents runs
with the cycle collector paused, and what it made is frozen afterwards
(``txbittorrent.collector.follow_restore``)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any, TextIO

from txbittorrent.collector import BulkLoad, follow_restore

DEFAULT_STATE_DIR = os.path.join("~", ".txbittorrent")
LOG_FORMATS = ("text", "json")


def _size(text: str) -> int:
    from txbittorrent.daemon.config import parse_size

    try:
        return parse_size(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def _host(text: str) -> str:
    from txbittorrent.daemon.config import normalize_host

    try:
        return normalize_host(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the daemon: a Session behind an HTTP API")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help="the database, resume records and api.json (default: %(default)s)")
    p.add_argument("--download-dir", default=None,
                   help="where added torrents' data goes (default: STATE_DIR/downloads)")
    p.add_argument("--listen", action="append", default=[], metavar="ENDPOINT",
                   help="a Twisted endpoint string to serve the API on, repeatable"
                        " (default: tcp:8080:interface=127.0.0.1)")
    p.add_argument("--peer-port", type=_port, default=0, metavar="PORT",
                   help="the BitTorrent listening port (default: 0, any free port)")
    p.add_argument("--peer-interface", action="append", default=[], metavar="ADDRESS",
                   help="an address peers may connect to, repeatable (default: 127.0.0.1;"
                        " 0.0.0.0 and :: for every interface)")
    p.add_argument("--dht", action="store_true", help="run a DHT node (BEP 5)")
    p.add_argument("--download-limit", type=_size, default=None, metavar="RATE",
                   help="global download limit in bytes/s (500K, 2M; 0: unlimited);"
                        " default: the last one set through the API, else unlimited")
    p.add_argument("--upload-limit", type=_size, default=None, metavar="RATE",
                   help="global upload limit, as --download-limit")
    p.add_argument("--encryption", choices=("disabled", "enabled", "forced"), default=None,
                   help="MSE/PE with peers: 'enabled' accepts plain and encrypted peers and"
                        " dials plain with an encrypted fallback, 'forced' RC4 only,"
                        " 'disabled' plain only; default: the last one set through an"
                        " API, else enabled")
    p.add_argument("--allow-host", action="append", default=[], metavar="HOST", type=_host,
                   help="a Host header name to accept besides 127.0.0.1, localhost and"
                        " [::1] (no port), repeatable")
    p.add_argument("--readahead", type=_size, default=None, metavar="BYTES",
                   help="how far ahead of a streaming read pieces are wanted first"
                        " (default: 32M)")
    p.add_argument("--grace", type=_seconds, default=None, metavar="SECONDS",
                   help="how long a torrent started on demand may go unread before it"
                        " is stopped (default: 600)")
    p.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                   help="the log on stderr: text lines or JSON objects, one per line"
                        " (default: %(default)s)")
    p.set_defaults(run=run)


def config_of(args: argparse.Namespace) -> Any:
    """The ``DaemonConfig`` for the parsed command line."""
    from txbittorrent.daemon.config import config_from

    options: dict[str, Any] = {
        "peer_port": args.peer_port, "dht": args.dht,
        "download_limit": args.download_limit, "upload_limit": args.upload_limit,
    }
    if args.readahead is not None:
        options["readahead"] = args.readahead
    if args.grace is not None:
        options["grace"] = args.grace
    if getattr(args, "encryption", None) is not None:
        options["encryption"] = args.encryption
    return config_from(
        os.path.expanduser(args.state_dir), args.download_dir, args.listen,
        peer_interfaces=args.peer_interface, allow_hosts=args.allow_host, **options,
    )


def start_logging(log_format: str, err: TextIO | None = None) -> None:
    """Send the process's ``twisted.logger`` events to ``err`` (stderr):
    Twisted's usual text lines, or (``json``) one JSON object per line.
    Call once per process, before the reactor runs."""
    from twisted.logger import globalLogBeginner, jsonFileLogObserver, textFileLogObserver

    stream = err if err is not None else sys.stderr
    observer: Any  # a FileLogObserver provides ILogObserver (mypy cannot see it)
    if log_format == "json":
        observer = jsonFileLogObserver(stream, recordSeparator="")
    else:
        observer = textFileLogObserver(stream)
    globalLogBeginner.beginLoggingTo([observer], discardBuffer=True, redirectStandardIO=False)


def run(args: argparse.Namespace) -> int:
    from twisted.internet import reactor as global_reactor

    from txbittorrent.daemon.service import DaemonService

    reactor: Any = global_reactor
    config = config_of(args)
    service = DaemonService(config, reactor=reactor)
    outcome: dict[str, Any] = {"code": 0}
    bulk = BulkLoad()

    def start() -> None:
        bulk.start()
        service.startService()
        assert service.started is not None
        follow_restore(service, bulk)

        def failed(failure: Any) -> None:
            print(f"txbittorrent serve: error: {failure.getErrorMessage()}", file=sys.stderr)
            outcome["code"] = 1
            reactor.stop()

        service.started.addErrback(failed)

    def stop() -> Any:
        bulk.for_exit()  # the process ends after the stop (collector.py)
        d = service.stopService()

        def stop_failed(failure: Any) -> None:
            print(f"txbittorrent serve: error while stopping: {failure.getErrorMessage()}",
                  file=sys.stderr)
            outcome["code"] = 1

        return d.addErrback(stop_failed)

    start_logging(args.log_format)
    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    return int(outcome["code"])
