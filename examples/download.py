"""Download a torrent into a directory, printing progress, and exit when complete.

    python examples/download.py some.torrent /path/to/dir [--peer HOST:PORT ...]
                                [--interface ADDRESS]

Peers come from the torrent's trackers and from each ``--peer``.  The resume
record is kept next to the data, so after Ctrl-C a second run carries on
where the first stopped instead of starting again.
"""

import argparse
import os

from twisted.internet import task

from txbittorrent.torrent import Torrent


def peer_address(text):
    host, _, port = text.rpartition(":")
    return host.strip("[]"), int(port)


def show_progress(torrent):
    size = torrent.wanted_size
    done = size - torrent.left_wanted
    percent = 100.0 * done / size if size else 100.0
    print(f"{percent:5.1f}%  {done}/{size} bytes  "
          f"{torrent.download_rate / 1024:.0f} KiB/s down  "
          f"{len(torrent.peers())} peers", flush=True)


async def main(reactor, args):
    os.makedirs(args.directory, exist_ok=True)
    torrent = Torrent(
        args.torrent,
        basedir=args.directory,
        reactor=reactor,
        resume_path=os.path.join(args.directory, ".download-example.resume"),
        listen_interfaces=args.interface,
    )
    # Ctrl-C stops the reactor; stopping the torrent first saves the resume record.
    reactor.addSystemEventTrigger("before", "shutdown", torrent.stop)

    # start() checks what is already on disk (or trusts the resume record),
    # listens, and announces to the trackers.
    await torrent.start()
    torrent.add_peers(args.peer)
    print(f"{torrent.name}: {torrent.bitfield.count}/{torrent.piece_count} pieces "
          f"already here, listening on port {torrent.port}", flush=True)

    progress = task.LoopingCall(show_progress, torrent)
    progress.clock = reactor
    progress.start(1.0)
    try:
        await torrent.when_complete()
    finally:
        progress.stop()
    show_progress(torrent)
    await torrent.close()
    print(f"complete: {torrent.name} in {args.directory}, "
          f"{torrent.downloaded} bytes downloaded", flush=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("torrent")
    parser.add_argument("directory")
    parser.add_argument("--peer", action="append", type=peer_address, default=[])
    parser.add_argument("--interface", action="append", default=None,
                        help="address to listen on (default: all)")
    return parser.parse_args()


if __name__ == "__main__":
    task.react(main, [parse_args()])
