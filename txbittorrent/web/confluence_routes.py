# twisted.web's Request is untyped: its calls are all over here.
# mypy: disable-error-code="no-untyped-call"
"""confluence's routes, one resource each, over ``web.confluence.Confluence``.

Theory of operation
-------------------
Each route parses its query, asks ``Confluence`` for the torrent (and to
hold it running while the request lasts, and to wait for its metadata when
the answer needs it), then renders:

* ``DataRoute`` (``GET``/``HEAD /data?ih=&path=``, or confluence's
  ``/data/infohash/<ih>/<path>``): the file through
  ``web.stream.FileStreamResource``, which does the ranges, the piece
  deadlines and the backpressure; ``path`` is the file's path as
  ``Torrent.files()`` gives it (``/``-joined) or confluence's display path
  (see ``find_file``); no such file is 404.
* ``InfoRoute`` (``/info?ih=``): the raw bencoded info dictionary.
* ``MetainfoRoute``: ``GET`` a .torrent of the info and trackers (JSON
  with ``Accept: application/json``, as confluence); ``POST`` a bencoded
  metainfo (``web.confluence_meta``) whose trackers are added and whose
  ``info`` is given to the torrent if its SHA-1 is the info hash.
* ``FileStateRoute`` (``/fileState?ih=&path=``): confluence's JSON, one
  object per piece the file touches: ``Bytes`` (of the file in it),
  ``Priority``, ``Complete``, ``Ok``, ``Checking``, ``Partial``.
* ``StatusRoute`` (``/status``): a text/plain page of every torrent.
* ``PlaylistRoute`` (``/playlist?ih=`` or ``/playlist/<ih>.m3u``): the m3u
  of ``web.playlist``, its URLs built from the request's Host.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from txbittorrent.state import TorrentState
from txbittorrent.web.confluence import (
    RouteError,
    Route,
    after,
    display_path,
    find_file,
    query,
)
from txbittorrent.web.confluence_meta import apply_metainfo, metainfo_answer, status_text
from txbittorrent.web.playlist import PLAYLIST_CONTENT_TYPE, base_url_for, m3u_playlist
from txbittorrent.web.stream import FileStreamResource

if TYPE_CHECKING:
    from txbittorrent.accessors import FileInfo
    from txbittorrent.torrent import Torrent

__all__ = ["DataRoute", "InfoRoute", "MetainfoRoute", "FileStateRoute", "StatusRoute",
           "PlaylistRoute", "file_state"]


def _file(torrent: Torrent, path: str | None) -> FileInfo:
    if path is None:
        if len(torrent.files()) == 1:
            return torrent.files()[0]
        raise RouteError(400, "expected a query parameter path")
    info = find_file(torrent, path)
    if info is None:
        raise RouteError(404, f"no file {path!r} in the torrent")
    return info


class DataRoute(Route):
    """``/data?ih=&path=``: a file of the torrent, with ranges, as it downloads."""

    def answer(self, request: Request) -> Any:
        confluence = self.confluence
        segments = list(request.postpath or ())
        while segments and not segments[-1]:
            segments.pop()
        if segments:  # /data/infohash/<ih>/<display path>
            if segments[0] != b"infohash" or len(segments) < 2:
                raise RouteError(404, "no such route: /data/infohash/<info hash>/<path>")
            try:
                texts = [s.decode("utf-8") for s in segments[1:]]
            except UnicodeDecodeError:
                raise RouteError(400, "the path is not UTF-8") from None
            torrent = confluence.torrent_for(request, texts[0])
            path = "/".join(texts[1:]) if len(texts) > 1 else None
        else:
            torrent = confluence.torrent_for(request)
            path = query(request, "path")
        confluence.hold(torrent, request)
        return after(confluence.when_metadata(torrent, request),
                     lambda: self._serve(request, torrent, path))

    def _serve(self, request: Request, torrent: Torrent, path: str | None) -> bytes | int:
        info = _file(torrent, path)
        stream = FileStreamResource(torrent, info.index, chunk_size=self.confluence.chunk_size,
                                    readahead=self.confluence.readahead)
        result: bytes | int = stream.render(request)
        return result


class InfoRoute(Route):
    """``/info?ih=``: the bencoded info dictionary, once known."""

    def answer(self, request: Request) -> Any:
        confluence = self.confluence
        torrent = confluence.torrent_for(request)
        confluence.hold(torrent, request)

        def info() -> bytes:
            data = torrent.info_bytes()
            assert data is not None
            request.setHeader(b"content-type", b"application/octet-stream")
            return data

        return after(confluence.when_metadata(torrent, request), info)


class MetainfoRoute(Route):
    """``GET /metainfo?ih=``: the .torrent; ``POST``: apply a bencoded metainfo."""

    methods = ("GET", "HEAD", "POST")

    def answer(self, request: Request) -> Any:
        confluence = self.confluence
        if request.method == b"POST":
            return apply_metainfo(confluence, request)
        torrent = confluence.torrent_for(request)
        confluence.hold(torrent, request)
        return after(confluence.when_metadata(torrent, request),
                     lambda: metainfo_answer(torrent, request))


def file_state(torrent: Torrent, info: FileInfo) -> list[dict[str, Any]]:
    """confluence's file state: per piece of the file, its bytes of the
    file and how far it is."""
    layout = torrent.layout
    start = layout.file_offset(info.index)
    end = start + info.length
    priorities = layout.piece_priorities(torrent.priorities)
    checking = torrent.state == TorrentState.CHECKING
    out = []
    for index in layout.pieces_of_file(info.index):
        piece_start = index * layout.piece_length
        piece_end = piece_start + layout.piece_size(index)
        complete = torrent.has_piece(index)
        out.append({
            "Bytes": min(end, piece_end) - max(start, piece_start),
            "Priority": priorities[index],
            "Complete": complete,
            "Ok": True,
            "Checking": checking and not complete,
            "Partial": False,
        })
    return out


class FileStateRoute(Route):
    """``/fileState?ih=&path=``: the file's pieces as JSON."""

    def answer(self, request: Request) -> Any:
        confluence = self.confluence
        torrent = confluence.torrent_for(request)
        path = query(request, "path")
        confluence.hold(torrent, request)

        def state() -> bytes:
            info = _file(torrent, path)
            request.setHeader(b"content-type", b"application/json; charset=utf-8")
            request.setHeader(b"cache-control", b"no-store")
            return json.dumps(file_state(torrent, info)).encode("utf-8")

        return after(confluence.when_metadata(torrent, request), state)


class StatusRoute(Route):
    """``/status``: every torrent, as text."""

    def answer(self, request: Request) -> bytes:
        request.setHeader(b"content-type", b"text/plain; charset=utf-8")
        request.setHeader(b"cache-control", b"no-store")
        return status_text(self.confluence).encode("utf-8")


class PlaylistRoute(Route):
    """``/playlist?ih=`` or ``/playlist/<ih>.m3u``: the torrent's media files."""

    def answer(self, request: Request) -> Any:
        confluence = self.confluence
        segments = [s for s in request.postpath or () if s]
        ih: str | None = None
        if segments:
            name = segments[-1].decode("utf-8", "replace")
            if len(segments) != 1 or not name.lower().endswith(".m3u"):
                raise RouteError(404, "no such playlist: /playlist/<info hash>.m3u")
            ih = name[:-4]
        torrent = confluence.torrent_for(request, ih)
        confluence.hold(torrent, request)
        return after(confluence.when_metadata(torrent, request),
                     lambda: self._playlist(request, torrent))

    def _playlist(self, request: Request, torrent: Torrent) -> bytes:
        scheme = "https" if request.isSecure() else "http"
        prefix = "".join("/" + p.decode("utf-8", "replace")
                         for p in (request.prepath or [])[:-1])
        header = request.getHeader(b"host")
        base = base_url_for(scheme, header.decode("latin-1") if header else None, prefix)
        if base is None:
            address: Any = request.getHost()
            host = getattr(address, "host", "localhost")
            host = f"[{host}]" if ":" in host else host
            base = f"{scheme}://{host}:{getattr(address, 'port', 80)}{prefix}"
        files = [(display_path(f), f.priority) for f in torrent.files()]
        ih = torrent.info_hash.hex()
        request.setHeader(b"content-type", PLAYLIST_CONTENT_TYPE.encode("ascii"))
        request.setHeader(b"content-disposition", f'inline; filename="{ih}.m3u"'.encode("ascii"))
        request.setHeader(b"cache-control", b"no-store")
        return m3u_playlist(base, ih, files, self.confluence.media_token).encode("utf-8")

