"""Make a torrent of a file or directory and print what it holds.

    python examples/create_and_inspect.py PATH OUT.torrent
"""

import sys

from txbittorrent.core.magnet import magnet_from_metainfo
from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent


def main(path, out):
    raw = create_torrent(path, trackers=["http://127.0.0.1:6969/announce"])
    with open(out, "wb") as f:
        f.write(raw)
    metainfo = parse(raw)
    print(f"{metainfo.name}: {metainfo.total_length} bytes, "
          f"{metainfo.piece_count} pieces of {metainfo.piece_length}")
    for entry in metainfo.files:
        print(f"  {entry.length:>12}  {'/'.join(entry.path)}")
    print(magnet_from_metainfo(metainfo).to_uri())


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(*sys.argv[1:])
