"""``txbittorrent tracker``: run a BitTorrent tracker (``tracker.service.TrackerService``)
over HTTP and UDP until SIGINT or SIGTERM; exit 0 after a clean stop, 1 when it
could not start (a port taken, an unreadable whitelist).  SIGHUP reloads the
``--whitelist`` file.  Loopback only unless
told otherwise.  Its log goes to stderr: text lines, or one JSON object per
line with ``--log-format json``."""

from __future__ import annotations

import argparse
import sys
from typing import Any

LOG_FORMATS = ("text", "json")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"not a positive whole number: {text!r}")
    return int(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 0xFFFF:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return int(text)


def _address(text: str) -> str:
    from txbittorrent.core.tracker.registry import canonical_ip

    try:
        return canonical_ip(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an IP address: {text!r}") from None


def add_parser(sub: Any) -> None:
    p = sub.add_parser("tracker", help="run a BitTorrent tracker (HTTP and UDP)")
    p.add_argument("--http", action="append", default=[], metavar="ENDPOINT",
                   help="a Twisted endpoint string for HTTP announce/scrape, repeatable"
                        " (default: tcp:6969:interface=127.0.0.1)")
    p.add_argument("--no-http", action="store_true", help="no HTTP listener")
    p.add_argument("--udp", action="append", default=[], type=_port, metavar="PORT",
                   help="a UDP port for BEP 15, repeatable (default: 6969; 0: any free port)")
    p.add_argument("--no-udp", action="store_true", help="no UDP listener")
    p.add_argument("--udp-interface", action="append", default=[], type=_address,
                   metavar="ADDRESS",
                   help="an address the UDP ports bind to, repeatable (default: 127.0.0.1)")
    p.add_argument("--interval", type=_positive, default=1800, metavar="SECONDS",
                   help="announce interval given to clients (default: %(default)s)")
    p.add_argument("--min-interval", type=_positive, default=None, metavar="SECONDS",
                   help="BEP 3 'min interval' given to HTTP clients (default: none)")
    p.add_argument("--peer-timeout", type=_positive, default=None, metavar="SECONDS",
                   help="forget a peer this long after its last announce"
                        " (default: twice the interval)")
    p.add_argument("--max-numwant", type=_positive, default=200, metavar="N",
                   help="most peers in one reply (default: %(default)s)")
    p.add_argument("--full-scrape", action=argparse.BooleanOptionalAction, default=False,
                   help="answer a scrape without info_hash with every torrent"
                        " (bounded; default: off)")
    p.add_argument("--whitelist", metavar="FILE", default=None,
                   help="serve only these info hashes (40 hex digits a line): a closed tracker")
    p.add_argument("--trusted-proxy", action="append", default=[], type=_address,
                   metavar="ADDRESS",
                   help="a proxy whose X-Forwarded-For and ip= are believed, repeatable")
    p.add_argument("--rate-limit", type=_positive, default=300, metavar="N",
                   help="announces and scrapes per source address per minute"
                        " (default: %(default)s)")
    p.add_argument("--max-swarms", type=_positive, default=100_000, metavar="N",
                   help="most torrents tracked; the least recently announced is evicted"
                        " (default: %(default)s)")
    p.add_argument("--secret-file", metavar="FILE", default=None,
                   help="the key of the UDP connection ids (at least 16 bytes; default:"
                        " random each start): tracker processes behind one address, or"
                        " a restarted one, accept each other's ids when they share it")
    p.add_argument("--db", metavar="FILE", default=None,
                   help="an SQLite file for completed counts, users, passkeys, API keys"
                        " and accounting; also serves the stats API at /api and /metrics"
                        " (the first start prints the admin password once)")
    p.add_argument("--private", action="store_true",
                   help="announces need a user's passkey (/<passkey>/announce; needs --db)")
    p.add_argument("--db-whitelist", action="store_true",
                   help="serve only the info hashes whitelisted in the database,"
                        " edited live through the API (needs --db)")
    p.add_argument("--redis", metavar="URL", default=None,
                   help="keep the swarms and counters in this Redis server"
                        " (redis://127.0.0.1:6379/0), shared by every tracker process using it;"
                        " needs the [redis] extra (txredisapi); not with --private")
    p.add_argument("--warning", metavar="TEXT", default=None,
                   help="a warning message sent with every HTTP announce reply"
                        " (e.g. a notice that the tracker moves)")
    p.add_argument("--log-format", choices=LOG_FORMATS, default="text",
                   help="the log on stderr (default: %(default)s)")
    p.set_defaults(run=run)


def read_whitelist(path: str) -> frozenset[bytes]:
    """The info hashes of a whitelist file (``TxBitTorrentError`` if malformed)."""
    from txbittorrent.errors import TxBitTorrentError
    from txbittorrent.tracker.serverconfig import load_whitelist

    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        return load_whitelist(text)
    except ValueError as e:
        raise TxBitTorrentError(f"{path}: {e}") from None


def config_of(args: argparse.Namespace) -> Any:
    """The ``TrackerServerConfig`` for the parsed command line (reads the whitelist)."""
    from txbittorrent.errors import TxBitTorrentError
    from txbittorrent.tracker.serverconfig import (
        DEFAULT_HTTP,
        DEFAULT_UDP_PORT,
        TrackerServerConfig,
    )

    whitelist = None if args.whitelist is None else read_whitelist(args.whitelist)
    secret = None
    if args.secret_file is not None:
        with open(args.secret_file, "rb") as f:
            secret = f.read(4096).strip()
    http = () if args.no_http else tuple(args.http or [DEFAULT_HTTP])
    udp = () if args.no_udp else tuple(args.udp or [DEFAULT_UDP_PORT])
    try:
        return TrackerServerConfig(
            http=http,
            udp_ports=udp,
            udp_interfaces=tuple(args.udp_interface or ["127.0.0.1"]),
            interval=args.interval,
            min_interval=args.min_interval,
            peer_timeout=args.peer_timeout,
            max_numwant=args.max_numwant,
            default_numwant=min(50, args.max_numwant),
            full_scrape=args.full_scrape,
            whitelist=whitelist,
            trusted_proxies=tuple(args.trusted_proxy),
            rate_limit=args.rate_limit,
            max_swarms=args.max_swarms,
            secret=secret,
            redis=args.redis,
            warning=args.warning,
        )
    except ValueError as e:
        raise TxBitTorrentError(str(e)) from None


def _reload_on_sighup(reactor: Any, service: Any, path: str) -> None:
    """SIGHUP reads the whitelist file again and serves it from then on (as
    opentracker does); a file that cannot be read or parsed keeps the old
    list and says why on stderr."""
    import signal

    from txbittorrent.errors import TxBitTorrentError

    def reload() -> None:
        try:
            hashes = read_whitelist(path)
        except (OSError, TxBitTorrentError) as e:
            print(f"txbittorrent tracker: whitelist not reloaded: {e}", file=sys.stderr)
            return
        if service.tracker is not None:
            service.tracker.state.allowed = hashes
            print(f"txbittorrent tracker: whitelist reloaded: {len(hashes)} info hashes",
                  file=sys.stderr, flush=True)

    signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(reload))


def run(args: argparse.Namespace) -> int:
    from twisted.internet import reactor as global_reactor

    from txbittorrent.commands.serve import start_logging
    from txbittorrent.tracker.app import TrackerApp

    reactor: Any = global_reactor
    if (args.private or args.db_whitelist) and args.db is None:
        print("txbittorrent tracker: error: --private and --db-whitelist need --db",
              file=sys.stderr)
        return 2
    if args.private and args.redis is not None:
        print("txbittorrent tracker: error: --private keeps its swarms in memory:"
              " not with --redis", file=sys.stderr)
        return 2
    service = TrackerApp(config_of(args), db_path=args.db, private=args.private,
                         db_whitelist=args.db_whitelist, reactor=reactor)
    outcome: dict[str, Any] = {"code": 0}

    def start() -> None:
        try:
            service.startService()
        except Exception as e:  # e.g. the database file cannot be opened
            print(f"txbittorrent tracker: error: {e}", file=sys.stderr)
            outcome["code"] = 1
            reactor.stop()
            return
        assert service.started is not None

        def ready(_: object) -> None:
            assert service.tracker is not None
            for url in service.tracker.announce_urls():
                print(url, flush=True)

        def failed(failure: Any) -> None:
            print(f"txbittorrent tracker: error: {failure.getErrorMessage()}", file=sys.stderr)
            outcome["code"] = 1
            reactor.stop()

        service.started.addCallbacks(ready, failed)

    def stop() -> Any:
        return service.stopService()

    if args.whitelist is not None and not args.db_whitelist:
        _reload_on_sighup(reactor, service, args.whitelist)
    start_logging(args.log_format)
    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    return int(outcome["code"])
