"""Helpers shared by the subcommands."""

from __future__ import annotations

import os

from txbittorrent.core.metainfo import Metainfo, parse
from txbittorrent.errors import MetainfoError

MAX_TORRENT_FILE = 64 * 1024 * 1024


def load_torrent(path: str) -> Metainfo:
    """Read and parse a .torrent file, with errors that name the file."""
    try:
        size = os.path.getsize(path)
    except FileNotFoundError:
        raise MetainfoError(path, "no such file") from None
    if size > MAX_TORRENT_FILE:
        raise MetainfoError(path, f"{size} bytes is too large for a torrent file")
    with open(path, "rb") as f:
        raw = f.read()
    try:
        return parse(raw)
    except MetainfoError as e:
        raise MetainfoError(f"{path}: {e.field}", e.reason) from None
