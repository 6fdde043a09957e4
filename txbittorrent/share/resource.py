# twisted.web's Resource and Request are untyped.
# mypy: disable-error-code="no-untyped-call"
"""The HTTP side of ``share``: ``/`` lists, ``/torrent/<path>`` answers a .torrent.

Theory of operation
-------------------
``ShareResource`` is the root of the service's Site.  It stays thin: it
parses the request, asks the ``Catalog`` (or the listing function) for one
thing, and renders the answer.

* ``GET /``: every file and directory shared, with sizes and links to their
  torrents, as HTML (every name escaped) or, with ``?format=json``, JSON.
* ``GET /torrent/<path>``: the .torrent of a file or directory below the
  shared directory (``application/x-bittorrent``, as an attachment).  The
  path is checked by ``tree.request_path`` before anything touches the
  disk.  Not shared (missing, a symbolic link, outside, hidden): 404; a
  path that cannot become a torrent (empty, too many files, a bad name):
  422; the hashing queue full: 503 with ``Retry-After``.
* Anything else is a 404; methods other than GET and HEAD are a 405.

A client that goes away while its torrent is being made does not stop the
job: other requests may be waiting for it, and the torrent is cached.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import NoResource, Resource
from twisted.web.server import NOT_DONE_YET, Request

from txbittorrent.errors import MetainfoError
from txbittorrent.share.catalog import Busy, Catalog
from txbittorrent.share.tree import Built, Listed, NotShared, request_path

__all__ = ["ShareResource", "TorrentResource", "RETRY_AFTER"]

_log = Logger()

RETRY_AFTER = b"5"
"""Seconds a client told 503 should wait."""

ListFiles = Callable[[], Deferred[tuple[list[Listed], bool]]]


def _text(path: tuple[str, ...]) -> str:
    """A path for people: undecodable bytes shown as U+FFFD."""
    return "/".join(p.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for p in path)


def _link(path: tuple[str, ...]) -> str:
    return "/torrent/" + "/".join(
        quote(p.encode("utf-8", "surrogateescape"), safe="") for p in path
    )


def _plain(request: Request, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    return (message + "\n").encode("utf-8")


def _common_headers(request: Request) -> None:
    request.setHeader(b"x-content-type-options", b"nosniff")
    request.setHeader(b"cache-control", b"no-cache")


class TorrentResource(Resource):
    """``/torrent/<path>``: the .torrent of one shared path."""

    isLeaf = True

    def __init__(self, catalog: Catalog) -> None:
        super().__init__()
        self.catalog = catalog

    def render_GET(self, request: Request) -> Any:
        _common_headers(request)
        assert request.postpath is not None
        try:
            rel = request_path(request.postpath)
        except NotShared:
            return _plain(request, 404, "not shared")
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))

        def answer(built: Built) -> None:
            if finished[0]:
                return
            name = rel[-1].encode("ascii", "replace").decode("ascii")
            fallback = "".join(c if c.isalnum() or c in "-_.+ " else "_" for c in name)
            utf8 = quote(rel[-1].encode("utf-8", "surrogateescape") + b".torrent", safe="")
            request.setHeader(b"content-type", b"application/x-bittorrent")
            request.setHeader(
                b"content-disposition",
                f"attachment; filename=\"{fallback}.torrent\"; filename*=UTF-8''{utf8}".encode(),
            )
            request.setHeader(b"x-info-hash", built.info_hash.hex().encode())
            request.write(built.raw)
            request.finish()

        def refuse(failure: Failure) -> None:
            if finished[0]:
                return
            if failure.check(NotShared):
                body = _plain(request, 404, "not shared")
            elif failure.check(Busy):
                request.setHeader(b"retry-after", RETRY_AFTER)
                body = _plain(request, 503, f"busy: {failure.getErrorMessage()}")
            elif failure.check(MetainfoError):
                body = _plain(request, 422, f"cannot make a torrent: {failure.getErrorMessage()}")
            else:
                _log.failure("making the torrent of {path} failed", failure, path=_text(rel))
                body = _plain(request, 500, "internal error")
            request.write(body)
            request.finish()

        self.catalog.torrent(rel).addCallbacks(answer, refuse)
        return NOT_DONE_YET


class ShareResource(Resource):
    """The root: the listing at ``/``, torrents below ``/torrent/``."""

    def __init__(self, catalog: Catalog, list_files: ListFiles) -> None:
        super().__init__()
        self.catalog = catalog
        self.list_files = list_files
        self.torrents = TorrentResource(catalog)

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"torrent":
            return self.torrents
        if path == b"" and request.postpath == []:
            return self
        return NoResource("not shared")

    def render_GET(self, request: Request) -> Any:
        _common_headers(request)
        as_json = request.args.get(b"format") == [b"json"]
        finished = [False]
        request.notifyFinish().addBoth(lambda _: finished.__setitem__(0, True))

        def answer(listing: tuple[list[Listed], bool]) -> None:
            if finished[0]:
                return
            entries, truncated = listing
            body = self._json(entries, truncated) if as_json else self._html(entries, truncated)
            request.setHeader(
                b"content-type",
                b"application/json" if as_json else b"text/html; charset=utf-8",
            )
            if not as_json:
                request.setHeader(b"content-security-policy", b"default-src 'none'")
            request.write(body)
            request.finish()

        def failed(failure: Failure) -> None:
            _log.failure("listing the shared directory failed", failure)
            if not finished[0]:
                request.write(_plain(request, 500, "internal error"))
                request.finish()

        self.list_files().addCallbacks(answer, failed)
        return NOT_DONE_YET

    def _describe(self, entry: Listed) -> dict[str, Any]:
        built = self.catalog.get(entry.path)
        return {
            "path": _text(entry.path),
            "type": "directory" if entry.directory else "file",
            "size": entry.size,
            "torrent": _link(entry.path),
            "info_hash": built.info_hash.hex() if built is not None else None,
            "seeding": built is not None and self.catalog.seeding(built.info_hash),
        }

    def _json(self, entries: list[Listed], truncated: bool) -> bytes:
        return json.dumps(
            {"files": [self._describe(e) for e in entries], "truncated": truncated}
        ).encode("utf-8")

    def _html(self, entries: list[Listed], truncated: bool) -> bytes:
        rows = []
        for entry in entries:
            d = self._describe(entry)
            name = d["path"] + ("/" if entry.directory else "")
            rows.append(
                f"<tr><td><a href=\"{html.escape(d['torrent'])}\">{html.escape(name)}</a></td>"
                f"<td>{d['type']}</td><td>{entry.size}</td>"
                f"<td>{'seeding' if d['seeding'] else ''}</td></tr>"
            )
        note = "<p>The listing was cut short.</p>" if truncated else ""
        page = (
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Shared files</title>"
            "</head><body><h1>Shared files</h1>"
            "<table><tr><th>Path (its torrent)</th><th>Type</th><th>Bytes</th><th></th></tr>"
            + "".join(rows) + f"</table>{note}</body></html>"
        )
        return page.encode("utf-8")
