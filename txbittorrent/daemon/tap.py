# twisted.python.usage and twisted.application are untyped.
# mypy: disable-error-code="no-untyped-call"
"""``twist txbittorrent [options]``: the daemon as a twist plugin.

``twisted/plugins/txbittorrent_plugin.py`` is a one-line ``ServiceMaker``
naming this module; ``Options`` mirrors ``txbittorrent serve``'s options
(logging is twist's own: ``twist --log-format json txbittorrent ...``) and
``makeService`` returns the same ``DaemonService``.  If the daemon cannot
start (a port taken, the state directory in use) the failure is logged and
the reactor stopped, so twist does not linger with nothing to serve.  As
with ``txbittorrent serve``, the restore runs with the cycle collector
paused and its objects frozen afterwards (``txbittorrent.collector``).
"""

from __future__ import annotations

import os
from typing import Any

from twisted.logger import Logger
from twisted.python import usage
from twisted.python.failure import Failure

from txbittorrent.collector import BulkLoad, follow_restore
from txbittorrent.daemon.config import DaemonConfig, config_from, normalize_host, parse_size
from txbittorrent.daemon.service import DaemonService

__all__ = ["Options", "TwistDaemonService", "makeService"]

_log = Logger()

DEFAULT_STATE_DIR = os.path.join("~", ".txbittorrent")


def _size(text: str) -> int:
    return parse_size(text)


def _port(text: str) -> int:
    if not text.isdigit() or not 0 <= int(text) <= 0xFFFF:
        raise ValueError(f"not a port number: {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    value = float(text)
    if not 0 <= value < float("inf"):
        raise ValueError(f"not a number of seconds: {text!r}")
    return value


class Options(usage.Options):
    """The options of ``twist txbittorrent`` (those of ``txbittorrent serve``)."""

    synopsis = "[options]"
    longdesc = (
        "Run the txbittorrent daemon: a Session behind an HTTP API.  Logging is"
        " twist's (--log-format text|json before the plugin name)."
    )
    optFlags = [["dht", None, "run a DHT node (BEP 5)"]]
    optParameters = [
        ["state-dir", None, DEFAULT_STATE_DIR,
         "the database, resume records and api.json"],
        ["download-dir", None, None,
         "where added torrents' data goes (default: STATE_DIR/downloads)"],
        ["peer-port", None, 0, "the BitTorrent listening port (0: any free port)", _port],
        ["download-limit", None, None,
         "global download limit in bytes/s (500K, 2M; 0: unlimited); default: the last one"
         " set through the API, else unlimited", _size],
        ["upload-limit", None, None, "global upload limit, as --download-limit", _size],
        ["readahead", None, None,
         "how far ahead of a streaming read pieces are wanted first (default: 32M)", _size],
        ["grace", None, None,
         "how long a torrent started on demand may go unread before it is stopped"
         " (default: 600)", _seconds],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["listen"] = []
        self["peer-interface"] = []
        self["allow-host"] = []

    def opt_listen(self, endpoint: str) -> None:
        """a Twisted endpoint string to serve the API on, repeatable (default: tcp:8080:interface=127.0.0.1)"""  # noqa: E501
        self["listen"].append(endpoint)

    def opt_peer_interface(self, address: str) -> None:
        """an address peers may connect to, repeatable (default: 127.0.0.1)"""
        self["peer-interface"].append(address)

    def opt_allow_host(self, host: str) -> None:
        """a Host header name to accept besides 127.0.0.1, localhost and [::1] (no port), repeatable"""  # noqa: E501
        try:
            self["allow-host"].append(normalize_host(host))
        except ValueError as e:
            raise usage.UsageError(str(e)) from None

    def config(self) -> DaemonConfig:
        """The ``DaemonConfig`` these options describe."""
        options: dict[str, Any] = {
            "peer_port": self["peer-port"], "dht": bool(self["dht"]),
            "download_limit": self["download-limit"], "upload_limit": self["upload-limit"],
        }
        if self["readahead"] is not None:
            options["readahead"] = self["readahead"]
        if self["grace"] is not None:
            options["grace"] = self["grace"]
        return config_from(
            os.path.expanduser(self["state-dir"]), self["download-dir"], self["listen"],
            peer_interfaces=self["peer-interface"], allow_hosts=self["allow-host"], **options,
        )


class TwistDaemonService(DaemonService):
    """A ``DaemonService`` that stops the reactor when it cannot start, and
    starts under a ``BulkLoad`` (and stops with collection paused)."""

    _bulk: BulkLoad | None = None  # made by startService

    def startService(self) -> None:
        bulk = self._bulk = BulkLoad()
        bulk.start()
        super().startService()
        assert self.started is not None
        follow_restore(self, bulk)
        self.started.addErrback(self._give_up)

    def stopService(self) -> Any:
        if self._bulk is not None:
            self._bulk.for_exit()  # twist ends after the stop (collector.py)
        return super().stopService()

    def _give_up(self, failure: Failure) -> None:
        _log.critical("txbittorrent: cannot start: {message}",
                      message=failure.getErrorMessage())
        reactor = self._reactor()
        if reactor.running:
            reactor.stop()


def makeService(options: Options) -> DaemonService:
    """The daemon for ``twist txbittorrent``."""
    return TwistDaemonService(options.config())
