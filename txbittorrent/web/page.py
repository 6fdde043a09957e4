# twisted.web's Request is untyped: its calls are all over here.
# mypy: disable-error-code="no-untyped-call"
"""The daemon's page: ``page_resources()``, the HTML, CSS and JavaScript
shipped in ``txbittorrent/web/page/``.

Theory of operation
-------------------
The page is three small static files (``index.html``, ``app.css``,
``app.js``) and an icon, package data read with ``importlib.resources``
the first time each is asked for and kept in memory afterwards (the
constructors read nothing).  ``page_resources()`` gives the two children
the daemon's root mounts: ``b""`` (the page itself, at exactly ``/``) and
``b"ui"`` (the assets, ``/ui/<name>``).  The Guard lets both through
without credentials (``Guard(public=PUBLIC_PATHS)``); the page then talks
to ``/login``, ``/logout`` and the native API with the session cookie.

What is served is a fixed table of names (``ASSETS``): a request path is
never joined to a directory, so ``..``, encoded or not, a NUL or any other
name is a 404 without touching the file system.

Every answer carries ``Cache-Control: no-cache`` with an ``ETag`` (a
revalidation costs a 304, and a new version of the package shows at
once), ``X-Content-Type-Options: nosniff``, ``X-Frame-Options: DENY``, a
``Referrer-Policy`` and a strict ``Content-Security-Policy``: scripts,
styles, images, media and connections from the daemon itself only, no
inline script or style, no framing, forms posting only to the daemon.
Only GET and HEAD are answered (405 otherwise).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources

from twisted.web.resource import Resource
from twisted.web.server import Request

__all__ = ["ASSETS", "CONTENT_SECURITY_POLICY", "PUBLIC_PATHS", "AssetsResource",
           "PageResource", "page_resources"]

ASSETS: dict[bytes, bytes] = {
    b"index.html": b"text/html; charset=utf-8",
    b"app.css": b"text/css; charset=utf-8",
    b"app.js": b"text/javascript; charset=utf-8",
    b"icon.svg": b"image/svg+xml",
}
"""Every file the page is made of, with its Content-Type."""

PUBLIC_PATHS: tuple[bytes, ...] = (b"/", b"/ui/")
"""What ``Guard(public=...)`` must let in without credentials: the page at
exactly ``/`` and everything under ``/ui/``."""

CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    b"media-src 'self'; connect-src 'self'; form-action 'self'; base-uri 'none'; "
    b"frame-ancestors 'none'"
)

_SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"Content-Security-Policy", CONTENT_SECURITY_POLICY),
    (b"X-Content-Type-Options", b"nosniff"),
    (b"X-Frame-Options", b"DENY"),
    (b"Referrer-Policy", b"same-origin"),
    (b"Cross-Origin-Opener-Policy", b"same-origin"),
)


class _Files:
    """The page's files, read once from the package when first asked for."""

    def __init__(self, package: str = "txbittorrent.web", folder: str = "page") -> None:
        self.package = package
        self.folder = folder
        self._cache: dict[bytes, tuple[bytes, bytes]] = {}  # name -> (content, etag)

    def get(self, name: bytes) -> tuple[bytes, bytes] | None:
        """(content, ETag) of the asset ``name``, or None if there is none."""
        if name not in ASSETS:
            return None
        found = self._cache.get(name)
        if found is None:
            folder = resources.files(self.package).joinpath(self.folder)
            content = folder.joinpath(name.decode("ascii")).read_bytes()
            etag = b'"' + hashlib.sha256(content).hexdigest()[:32].encode("ascii") + b'"'
            found = self._cache[name] = (content, etag)
        return found


def _answer(request: Request, files: _Files, name: bytes) -> bytes:
    for header, value in _SECURITY_HEADERS:
        request.setHeader(header, value)
    found = files.get(name)
    if found is None:
        request.setResponseCode(404)
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps({"error": "not found"}).encode("ascii")
    content, etag = found
    request.setHeader(b"Content-Type", ASSETS[name])
    request.setHeader(b"Cache-Control", b"no-cache")
    request.setHeader(b"ETag", etag)
    tags = request.getHeader(b"if-none-match")
    if tags is not None and (tags.strip() == b"*"
                             or etag in (t.strip() for t in tags.split(b","))):
        request.setResponseCode(304)
        return b""
    request.setHeader(b"Content-Length", str(len(content)).encode("ascii"))
    return content


class _Static(Resource):
    """A leaf answering GET and HEAD from ``files``; anything else is 405."""

    isLeaf = True

    def __init__(self, files: _Files | None = None) -> None:
        super().__init__()
        self.files = files if files is not None else _Files()

    def render(self, request: Request) -> bytes:
        if request.method in (b"GET", b"HEAD"):
            return self.render_GET(request)
        for header, value in _SECURITY_HEADERS:
            request.setHeader(header, value)
        request.setResponseCode(405)
        request.setHeader(b"Allow", b"GET, HEAD")
        request.setHeader(b"Content-Type", b"application/json")
        request.setHeader(b"Cache-Control", b"no-store")
        return json.dumps({"error": "method not allowed"}).encode("ascii")

    def render_GET(self, request: Request) -> bytes:
        raise NotImplementedError


class PageResource(_Static):
    """The page (``index.html``) at exactly the path it is mounted on."""

    def render_GET(self, request: Request) -> bytes:
        return _answer(request, self.files, b"" if request.postpath else b"index.html")


class AssetsResource(_Static):
    """The page's assets, ``<mount>/<name>`` for a name of ``ASSETS``."""

    def render_GET(self, request: Request) -> bytes:
        segments = request.postpath or []
        name = segments[0] if len(segments) == 1 else b""
        return _answer(request, self.files, name)


def page_resources() -> dict[bytes, Resource]:
    """The children to mount on the daemon's root: ``b""`` (the page at
    ``/``) and ``b"ui"`` (its assets under ``/ui/``)."""
    files = _Files()
    return {b"": PageResource(files), b"ui": AssetsResource(files)}
