"""An m3u playlist of a torrent's media files, pure: no I/O, no Twisted.

``m3u_playlist(base_url, info_hash, files)`` writes an extended M3U
(``#EXTM3U``; one ``#EXTINF:-1,<title>`` and one absolute URL per media
file, in the torrent's order).  Each URL is confluence's
``<base_url>/data?ih=<hex>&path=<display path>``, the path percent-encoded
whole (``/`` too, as a query value), so any name survives.  A file is media
when its Content-Type (``web.stream.content_type_for``, with the daemon's
overrides) is ``video/*`` or ``audio/*``, or its extension is in
``MEDIA_EXTENSIONS``.  Titles lose control characters, so a name cannot
start a line of its own.  Skipped files (priority 0) are left out: the
daemon would refuse to stream them.

``base_url_for(scheme, host, prefix)`` builds the base from a request's
Host header, refusing one that could break out of the URL (``None``: the
caller falls back to the address the request came in on).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from urllib.parse import quote

from txbittorrent.web.stream import content_type_for

__all__ = ["MEDIA_EXTENSIONS", "is_media", "data_url", "m3u_playlist", "base_url_for",
           "PLAYLIST_CONTENT_TYPE"]

PLAYLIST_CONTENT_TYPE = "audio/x-mpegurl"

MEDIA_EXTENSIONS = frozenset({
    # video
    ".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".wmv", ".flv", ".mpg", ".mpeg",
    ".ts", ".m2ts", ".mts", ".ogv", ".3gp", ".vob", ".divx",
    # audio
    ".mp3", ".flac", ".ogg", ".oga", ".opus", ".m4a", ".aac", ".wav", ".wma", ".alac",
    ".ape", ".mka", ".aiff", ".aif",
})

_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]+")
_HOST = re.compile(r"\A(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.-]+)(?::[0-9]{1,5})?\Z")


def is_media(name: str) -> bool:
    """Whether a file called ``name`` is video or audio, by its extension."""
    extension = os.path.splitext(name)[1].lower()
    if extension in MEDIA_EXTENSIONS:
        return True
    return content_type_for(name).split("/", 1)[0] in ("video", "audio")


def data_url(base_url: str, info_hash_hex: str, path: str, token: str | None = None) -> str:
    """confluence's ``/data`` URL of file ``path`` of a torrent (with the
    daemon's media ``token``, when given, for players that cannot log in)."""
    url = f"{base_url}/data?ih={info_hash_hex}&path={quote(path, safe='')}"
    return url if token is None else f"{url}&token={quote(token, safe='')}"


def _title(path: str) -> str:
    name = path.rsplit("/", 1)[-1]
    return _CONTROL.sub(" ", name).strip() or "?"


def m3u_playlist(
    base_url: str, info_hash_hex: str, files: Iterable[tuple[str, int]],
    token: str | None = None,
) -> str:
    """The playlist of ``files`` (each ``(display path, priority)``, the
    path ``/``-separated) that are media and not skipped; each URL carries
    ``token`` when given."""
    lines = ["#EXTM3U"]
    for path, priority in files:
        if priority <= 0 or not is_media(path):
            continue
        lines.append(f"#EXTINF:-1,{_title(path)}")
        lines.append(data_url(base_url, info_hash_hex, path, token))
    return "\n".join(lines) + "\n"


def base_url_for(scheme: str, host: str | None, prefix: str = "") -> str | None:
    """``scheme://host`` and the mount ``prefix`` (``/``-led, or empty), or
    None when ``host`` is absent or not a plain host[:port]."""
    if host is None or not _HOST.match(host) or scheme not in ("http", "https"):
        return None
    return f"{scheme}://{host}{prefix}"
