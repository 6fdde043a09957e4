"""The pieces every qBittorrent endpoint shares: ``QbtError``, ``Call`` (one
request's parameters and the context it runs in) and ``ENDPOINTS`` (the
table of ``(namespace, method)`` -> handler that each endpoint module fills
with ``@endpoint``).

A handler takes a ``Call`` and returns the answer: a ``str`` (sent as
``text/plain; charset=UTF-8``), a dict or list (``application/json``), or
a Deferred of one of those; it raises ``QbtError`` for an answer other
than 200 (qBittorrent's plain-text error bodies).
"""
# twisted.web's Request is untyped.
# mypy: disable-error-code="no-untyped-call"

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.web.server import Request

from txbittorrent.web.qbt.fields import parse_bool, split_hashes

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore
    from txbittorrent.session import Session
    from txbittorrent.torrent import Torrent
    from txbittorrent.web.auth import Guard
    from txbittorrent.web.manager import TorrentManager
    from txbittorrent.web.qbt.extras import QbtExtras
    from txbittorrent.web.qbt.sync import SyncBook

__all__ = ["QbtError", "Call", "Context", "ENDPOINTS", "endpoint", "Handler"]


class QbtError(Exception):
    """An answer other than 200: status and plain-text body."""

    def __init__(self, code: int, text: str = "") -> None:
        super().__init__(text)
        self.code = code
        self.text = text


@dataclass(slots=True)
class Context:
    """What the endpoints work on (one per ``QbtResource``)."""

    session: Session
    store: StateStore
    manager: TorrentManager
    guard: Guard
    extras: QbtExtras
    sync: SyncBook
    download_dir: str
    clock: Callable[[], float]


@dataclass(slots=True)
class Call:
    """One request: its parameters (query and form, text), its file parts
    (the raw bytes of every form field), who asks (``client``: the session
    id or token the sync snapshots are kept under) and the context."""

    request: Request
    params: dict[str, str]
    raw: dict[str, list[bytes]]
    client: str
    ctx: Context

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.params.get(name, default)

    def need(self, name: str) -> str:
        """A required parameter (400 "Missing required parameters" without)."""
        value = self.params.get(name)
        if value is None:
            raise QbtError(400, "Missing required parameters")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        return parse_bool(self.params.get(name), default)

    def integer(self, name: str, default: int | None = None) -> int | None:
        value = self.params.get(name)
        if value is None or not value.strip():
            return default
        try:
            return int(value.strip())
        except ValueError:
            raise QbtError(400, f"'{name}' must be an integer") from None

    def number(self, name: str, default: float | None = None) -> float | None:
        value = self.params.get(name)
        if value is None or not value.strip():
            return default
        try:
            return float(value.strip())
        except ValueError:
            raise QbtError(400, f"'{name}' must be a number") from None

    def torrent(self, name: str = "hash") -> Torrent:
        """The torrent named by a hash parameter (404 if unknown)."""
        text = self.need(name).strip().lower()
        torrent = find(self.ctx.session, text)
        if torrent is None:
            raise QbtError(404, "Torrent hash was not found")
        return torrent

    def torrents(self, name: str = "hashes") -> list[Torrent]:
        """The torrents named by ``hashes`` ("all" or "|"-joined; unknown
        hashes are skipped, as qBittorrent does)."""
        wanted = split_hashes(self.need(name))
        everyone = self.ctx.session.torrents()
        if wanted is None:
            return everyone
        return [t for t in everyone if t.info_hash.hex() in wanted]


def find(session: Session, text: str) -> Torrent | None:
    """The session's torrent of a 40-hex-digit hash, or None."""
    if len(text) != 40:
        return None
    try:
        info_hash = bytes.fromhex(text)
    except ValueError:
        return None
    return session.get(info_hash)


Handler = Callable[[Call], Any]


@dataclass(frozen=True, slots=True)
class Endpoint:
    handler: Handler
    changes: bool
    """POST only (an action); reads take GET and POST."""


ENDPOINTS: dict[tuple[str, str], Endpoint] = {}


def endpoint(namespace: str, *names: str, changes: bool = False) -> Callable[[Handler], Handler]:
    """Register a handler as ``/api/v2/<namespace>/<name>`` for each name."""

    def register(handler: Handler) -> Handler:
        for name in names:
            ENDPOINTS[(namespace, name)] = Endpoint(handler, changes)
        return handler

    return register
