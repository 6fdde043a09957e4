"""``txbittorrent serve``: run the daemon (``daemon.service.DaemonService``)
under the reactor until SIGINT or SIGTERM; exit 0 after a clean stop, 1 when
it could not start (a port taken, a state directory it cannot use)."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

DEFAULT_STATE_DIR = os.path.join("~", ".txbittorrent")


def add_parser(sub: Any) -> None:
    p = sub.add_parser("serve", help="run the daemon: a Session behind an HTTP API")
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help="the database, resume records and api.json (default: %(default)s)")
    p.add_argument("--download-dir", default=None,
                   help="where added torrents' data goes (default: STATE_DIR/downloads)")
    p.add_argument("--listen", action="append", default=[], metavar="ENDPOINT",
                   help="a Twisted endpoint string to serve the API on, repeatable"
                        " (default: tcp:8080:interface=127.0.0.1)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from twisted.internet import reactor as global_reactor

    from txbittorrent.commands._engine import start_logging
    from txbittorrent.daemon.service import DaemonService, config_from

    reactor: Any = global_reactor
    config = config_from(os.path.expanduser(args.state_dir), args.download_dir, args.listen)
    service = DaemonService(config, reactor=reactor)
    outcome: dict[str, Any] = {"code": 0}

    def start() -> None:
        service.startService()
        assert service.started is not None

        def failed(failure: Any) -> None:
            print(f"txbittorrent serve: error: {failure.getErrorMessage()}", file=sys.stderr)
            outcome["code"] = 1
            reactor.stop()

        service.started.addErrback(failed)

    def stop() -> Any:
        d = service.stopService()

        def stop_failed(failure: Any) -> None:
            print(f"txbittorrent serve: error while stopping: {failure.getErrorMessage()}",
                  file=sys.stderr)
            outcome["code"] = 1

        return d.addErrback(stop_failed)

    start_logging()
    reactor.callWhenRunning(start)
    reactor.addSystemEventTrigger("before", "shutdown", stop)
    reactor.run()
    return int(outcome["code"])
