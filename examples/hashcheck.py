"""Verify a torrent's data with the library and report each piece.

    python examples/hashcheck.py some.torrent /path/to/download/dir
"""

import sys

from twisted.internet import task

from txbittorrent.torrent import Torrent


def main(reactor, torrent_path, basedir):
    torrent = Torrent(
        torrent_path,
        basedir=basedir,
        reactor=reactor,
        on_hash_pass=lambda index: print(f"piece {index}: ok"),
        on_hash_fail=lambda index: print(f"piece {index}: FAILED"),
    )

    def report(bitfield):
        print(f"{torrent.name}: {bitfield.count}/{torrent.piece_count} pieces, "
              f"{torrent.left} bytes left, complete: {torrent.complete}")

    d = torrent.hashcheck()
    d.addCallback(report)
    d.addBoth(lambda result: torrent.close().addCallback(lambda _: result))
    return d


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    task.react(main, sys.argv[1:])
