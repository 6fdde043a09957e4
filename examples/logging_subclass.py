"""Hear everything a torrent does: a ``Torrent`` subclass that logs each event.

    python examples/logging_subclass.py some.torrent /path/to/dir [--peer HOST:PORT ...]
                                        [--interface ADDRESS] [--seed-time SECONDS]

Downloads (or, if the data is already there, seeds for ``--seed-time``
seconds) and logs with ``twisted.logger`` every piece verified, every peer
that comes and goes, every tracker reply and error, every change of state,
and completion.  ``LoggingTorrent`` also overrides ``make_peer_id``, the hook
that names our client to peers and trackers.
"""

import argparse
import secrets
import string
import sys

from twisted.internet import task
from twisted.logger import (
    FilteringLogObserver,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
    globalLogBeginner,
    textFileLogObserver,
)

from txbittorrent.observers import TorrentObserver
from txbittorrent.torrent import Torrent

PEER_ID_PREFIX = b"-XL0001-"
"""BEP 20 style: a dash, two letters for the client, four digits of version, a dash."""


def address(peer):
    host, port = peer.address[0], peer.address[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class LoggingObserver(TorrentObserver):
    """Logs every event a torrent reports.  Each method is one event; see
    ``txbittorrent.observers.TorrentObserver`` for when it is called."""

    def __init__(self, log=None):
        self.log = log if log is not None else Logger(namespace="torrent")

    def piece_verified(self, torrent, index, passed):
        # passed is False for data that is wrong, and for data not there yet
        # when the pieces on disk are checked at start.
        self.log.info("{name}: piece {index} {verdict}", name=torrent.name, index=index,
                      verdict="verified" if passed else "not verified (missing or corrupt)")

    def peer_connected(self, torrent, peer):
        self.log.info("{name}: peer connected: {address} ({client}, {direction})",
                      name=torrent.name, address=address(peer), client=peer.client or "?",
                      direction="outgoing" if peer.outgoing else "incoming")

    def peer_lost(self, torrent, peer, reason):
        self.log.info("{name}: peer lost: {address}: {reason}", name=torrent.name,
                      address=address(peer), reason=reason)

    def tracker_reply(self, torrent, url, response):
        self.log.info("{name}: tracker reply from {url}: {count} peers, "
                      "{complete} seeders, {incomplete} leechers, next in {interval} s",
                      name=torrent.name, url=url,
                      count=len(response.peers) + len(response.peers6),
                      complete=response.complete, incomplete=response.incomplete,
                      interval=response.interval)

    def tracker_error(self, torrent, url, error):
        self.log.warn("{name}: tracker error from {url}: {error}", name=torrent.name,
                      url=url, error=error)

    def state_changed(self, torrent, old, new):
        self.log.info("{name}: state {old} -> {new}", name=torrent.name, old=old, new=new)

    def completed(self, torrent):
        self.log.info("{name}: completed: every wanted piece is verified", name=torrent.name)


class LoggingTorrent(Torrent):
    """A ``Torrent`` that logs its own events and picks its own peer id."""

    def __init__(self, *args, log=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.log = log if log is not None else Logger(namespace="torrent")
        self.add_observer(LoggingObserver(self.log))

    def make_peer_id(self):
        """Called once, the first time the peer id is needed (at ``start``)."""
        alphabet = string.ascii_letters + string.digits
        peer_id = PEER_ID_PREFIX + "".join(
            secrets.choice(alphabet) for _ in range(20 - len(PEER_ID_PREFIX))
        ).encode("ascii")
        self.log.info("{name}: our peer id is {peer_id}", name=self.name,
                      peer_id=peer_id.decode("ascii"))
        return peer_id


def peer_address(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


async def main(reactor, args):
    torrent = LoggingTorrent(args.torrent, basedir=args.directory, reactor=reactor,
                             listen_interfaces=args.interface)
    reactor.addSystemEventTrigger("before", "shutdown", torrent.stop)
    await torrent.start()
    torrent.add_peers(args.peer)
    await torrent.when_complete()
    if args.seed_time:
        await task.deferLater(reactor, args.seed_time, lambda: None)
    await torrent.close()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("torrent")
    parser.add_argument("directory")
    parser.add_argument("--peer", action="append", type=peer_address, default=[])
    parser.add_argument("--interface", action="append", default=None,
                        help="address to listen on (default: all)")
    parser.add_argument("--seed-time", type=float, default=0.0,
                        help="seconds to keep seeding once complete")
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    everything_but_debug = FilteringLogObserver(
        textFileLogObserver(sys.stdout),
        [LogLevelFilterPredicate(defaultLogLevel=LogLevel.info)],
    )
    globalLogBeginner.beginLoggingTo([everything_but_debug], redirectStandardIO=False)
    task.react(main, [arguments])
