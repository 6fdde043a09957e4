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

_LAZY = {
    "Torrent": "txbittorrent.torrent",
    "FileInfo": "txbittorrent.torrent",
    "Session": "txbittorrent.session",
    "SessionConfig": "txbittorrent.session",
    "SwarmConfig": "txbittorrent.swarm.config",
    "TorrentObserver": "txbittorrent.observers",
}


def __getattr__(name: str) -> object:
    """The Twisted-side names load on first use, so that importing the
    sans-I/O core (``txbittorrent.core``) never imports Twisted."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'txbittorrent' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)

__all__ = [
    "Torrent",
    "FileInfo",
    "Session",
    "SessionConfig",
    "SwarmConfig",
    "TorrentObserver",
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
