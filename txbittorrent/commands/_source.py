"""What a TORRENT_ID on the command line names, and .torrent files in and out.

Theory of operation
-------------------
``download`` and ``info`` take a TORRENT_ID: a .torrent path, a magnet URI,
a bare info hash (40 hex digits or 32 base32 characters), or an http(s) URL
of a .torrent.  ``resolve_local`` sorts one out without the network: it
parses a path or a magnet at once (so bad input fails before the reactor
runs) and leaves a URL as a ``TorrentURL`` for ``fetch_torrent`` to get
with treq once the reactor runs.

``fetch_torrent`` is bounded every way a server could make it hang or grow:
at most ``max_redirects`` redirects, at most ``limits.max_torrent_size``
bytes (a larger Content-Length is refused before reading; a body that grows
past it is cut off), and ``timeout`` seconds from the first byte sent to
the last byte read, after which the connection is dropped.  Every failure
is a ``FetchError`` (or the ``MetainfoError`` of a body that is not a
torrent) naming the URL, which the command line prints as one line.

``write_torrent_file`` writes a .torrent made from fetched metadata
atomically: a temporary file in the same directory (its mode left to the
umask, as for any file we make), flushed and synced, then renamed over
the target.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Protocol, connectionDone
from twisted.python.failure import Failure

from txbittorrent.commands._common import load_torrent
from txbittorrent.core.magnet import Magnet, parse_magnet
from txbittorrent.core.metainfo import DEFAULT_LIMITS, Metainfo, MetainfoLimits, parse
from txbittorrent.errors import MetainfoError, StorageError, TxBitTorrentError
from txbittorrent.net.urls import treq_url
from txbittorrent.source import bare_info_hash

__all__ = [
    "FETCH_TIMEOUT", "MAX_REDIRECTS", "FetchError", "TorrentURL", "Target",
    "resolve_local", "fetch_torrent", "check_save_path", "torrent_trackers",
    "write_torrent_file", "TORRENT_ID_HELP",
]

TORRENT_ID_HELP = ("a .torrent file, a magnet: URI, a bare info hash (40 hex digits or "
                   "32 base32 characters) or an http(s) URL of a .torrent")

FETCH_TIMEOUT = 30.0
"""Seconds a .torrent download may take, connecting included."""
MAX_REDIRECTS = 5
"""Redirects followed when fetching a .torrent."""


class FetchError(TxBitTorrentError):
    """A .torrent could not be fetched from its URL."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = url
        self.reason = reason
        super().__init__(f"{url}: {reason}")


@dataclass(frozen=True, slots=True)
class TorrentURL:
    """An http(s) URL of a .torrent, not fetched yet."""

    url: str


Target = Metainfo | Magnet | TorrentURL
"""What a TORRENT_ID names, as far as it is known before the reactor runs."""


def is_url(text: str) -> bool:
    """Whether ``text`` is an http or https URL."""
    scheme, sep, rest = text.strip().partition("://")
    return bool(sep and rest) and scheme.lower() in ("http", "https")


def resolve_local(torrent_id: str) -> Target:
    """Sort out a TORRENT_ID (see the module docstring) without the network.

    A file of that name wins over a bare info hash.  Raises ``MetainfoError``
    (no such file, not a torrent) or ``MagnetError``."""
    text = torrent_id.strip()
    if text[:7].lower() == "magnet:":
        return parse_magnet(text)
    if is_url(text):
        return TorrentURL(text)
    if not os.path.exists(torrent_id):
        info_hash = bare_info_hash(text)
        if info_hash is not None:
            return Magnet(info_hash)
    return load_torrent(torrent_id)


async def fetch_torrent(
    reactor: Any,
    url: str,
    *,
    agent: Any = None,
    clock: Any = None,
    limits: MetainfoLimits = DEFAULT_LIMITS,
    timeout: float = FETCH_TIMEOUT,
    max_redirects: int = MAX_REDIRECTS,
) -> Metainfo:
    """GET ``url`` with treq and parse the body as a .torrent.

    ``agent`` (an ``IAgent``; default: Twisted's ``Agent`` on ``reactor``)
    makes the requests, behind a ``RedirectAgent`` of ``max_redirects``;
    ``clock`` (default: ``reactor``) times the whole fetch out."""
    from treq.client import HTTPClient
    from twisted.web import client

    web: Any = client  # Agent and RedirectAgent are untyped
    if agent is None:
        agent = web.Agent(reactor, connectTimeout=timeout)
    http = HTTPClient(web.RedirectAgent(agent, redirectLimit=max_redirects))
    clock = clock if clock is not None else reactor
    fetched = Deferred.fromCoroutine(_get(http, url, limits.max_torrent_size))
    timed_out = False

    def expire() -> None:
        nonlocal timed_out
        timed_out = True
        fetched.cancel()

    deadline = clock.callLater(timeout, expire)
    try:
        body = await fetched
    except FetchError:
        raise
    except Exception as e:
        if timed_out:
            raise FetchError(url, f"timed out after {timeout:g} s") from None
        raise FetchError(url, _describe(e)) from None
    finally:
        if deadline.active():
            deadline.cancel()
    try:
        return parse(body, limits)
    except MetainfoError as e:
        raise MetainfoError(f"{url}: {e.field}", e.reason) from None


async def _get(http: Any, url: str, max_size: int) -> bytes:
    response = await http.get(treq_url(url), allow_redirects=False)
    code = response.code
    if code != 200:
        phrase = response.phrase.decode("latin-1", "replace") if response.phrase else ""
        raise FetchError(url, f"HTTP {code} {phrase}".rstrip())
    length = response.length
    if isinstance(length, int) and length > max_size:
        raise FetchError(url, f"{length} bytes is too large for a torrent file "
                              f"(the limit is {max_size})")
    body = _CappedBody(max_size)
    response.deliverBody(body)
    try:
        return await body.done
    except _TooLarge:
        raise FetchError(url, f"more than {max_size} bytes is too large for a torrent "
                              f"file") from None


def _describe(error: BaseException) -> str:
    """One line for a failed request: the reasons inside Twisted's wrappers
    (``ResponseFailed``, ``ResponseNeverReceived``...)."""
    from twisted.web import error as web_error

    reasons = getattr(error, "reasons", None)
    if reasons:
        values = (r.value if isinstance(r, Failure) else r for r in reasons)
        return "; ".join(_describe(v) if isinstance(v, BaseException) else str(v)
                         for v in values)
    if isinstance(error, web_error.InfiniteRedirection):
        return "too many redirects"
    if isinstance(error, web_error.RedirectWithNoLocation):
        return "a redirect without a Location"
    text = str(error).strip() or type(error).__name__
    return text.rstrip(".")


class _TooLarge(Exception):
    pass


class _CappedBody(Protocol):
    """Collects a response body of at most ``max_size`` bytes; cancelling
    ``done`` (or growing past the cap) drops the connection."""

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self.parts: list[bytes] = []
        self.size = 0
        self.done: Deferred[bytes] = Deferred(lambda d: self._abort())

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.stopProducing()

    def dataReceived(self, data: bytes) -> None:
        if self.done.called:
            return
        self.size += len(data)
        if self.size > self.max_size:
            self.parts = []
            self._abort()
            self.done.errback(_TooLarge())
            return
        self.parts.append(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        from twisted.web.client import ResponseDone
        from twisted.web.http import PotentialDataLoss

        if self.done.called:
            return
        if isinstance(reason.value, (ResponseDone, PotentialDataLoss)):
            self.done.callback(b"".join(self.parts))
        else:
            self.done.errback(reason)


def check_save_path(path: str | None) -> None:
    """Refuse a --save-torrent PATH whose directory is not there (or that is
    a directory), before anything is fetched."""
    if path is None:
        return
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise StorageError("no such directory", directory)
    if os.path.isdir(path):
        raise StorageError("is a directory (--save-torrent wants a file name)", path)


def torrent_trackers(torrent: Any) -> list[list[str]]:
    """A running or stopped ``Torrent``'s trackers as BEP 12 tiers of URLs."""
    return [[status.url for status in tier] for tier in torrent.trackers()]


def write_torrent_file(path: str, info_bytes: bytes,
                       trackers: Sequence[Sequence[str]]) -> None:
    """Write a .torrent of ``info_bytes`` with ``trackers`` to ``path``
    atomically (the old file, if any, stays whole until the new one is)."""
    from txbittorrent.core.metainfo import torrent_bytes
    from txbittorrent.storage.resumefile import write_atomic

    # 0666 less the umask, as any file the user makes: a .torrent is no secret.
    write_atomic(path, torrent_bytes(info_bytes, trackers), mode=0o666)
