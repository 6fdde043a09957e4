"""txbittorrent: a BitTorrent client library for Twisted."""

from txbittorrent.errors import (
    BencodeError,
    LocalProtocolError,
    MagnetError,
    MetainfoError,
    RemoteProtocolError,
    ResumeDataError,
    StorageError,
    TxBitTorrentError,
    UnsafePathError,
    UnsupportedTorrentError,
)

__version__ = "0.1.0.dev0"

__all__ = [
    "BencodeError",
    "LocalProtocolError",
    "MagnetError",
    "MetainfoError",
    "RemoteProtocolError",
    "ResumeDataError",
    "StorageError",
    "TxBitTorrentError",
    "UnsafePathError",
    "UnsupportedTorrentError",
]
