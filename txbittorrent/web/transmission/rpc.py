# Failure is untyped.
# mypy: disable-error-code="no-untyped-call"
"""The RPC's methods, their shared context and the dispatch: ``call``.

Each method is a function ``(ctx, arguments) -> dict | Deferred[dict]``
registered by name with ``@method("torrent-get")``; ``call`` runs one and
turns what goes wrong into Transmission's answer: ``result`` is
``"success"`` or an error string (never an HTTP error: clients read the
string).  ``RpcError`` is the error a method raises on purpose; an
``ApiError`` of the daemon's manager becomes its message; anything else is
logged and answered as an internal error.

Argument helpers (``flag``, ``int_list``...) raise ``RpcError`` with the
argument's name, so a client learns what it sent wrong.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred, DeferredList, maybeDeferred
from twisted.logger import Logger
from twisted.python.failure import Failure

from txbittorrent.errors import LocalProtocolError
from txbittorrent.web.apibody import ApiError
from txbittorrent.web.transmission.ids import BadIds, TorrentIds

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore
    from txbittorrent.session import Session
    from txbittorrent.torrent import Torrent
    from txbittorrent.web.manager import TorrentManager

__all__ = ["METHODS", "RpcContext", "RpcError", "call", "method", "flag", "int_list",
           "settle", "SETTLE_TIME", "torrents"]

SETTLE_TIME = 10.0
"""Seconds a life-cycle method waits for its torrents before answering
(they go on after the answer if slower: a hash check may take long)."""
_log = Logger()


class RpcError(Exception):
    """A method's failure: ``str(e)`` is the ``result`` string."""


@dataclass
class RpcContext:
    """What the methods work with (one per resource, for the daemon's run)."""

    session: Session
    manager: TorrentManager
    store: StateStore | None
    download_dir: str
    """The daemon's download directory: adds default here (or under
    ``default_dir``), free-space answers only under it."""
    config_dir: str
    session_id: str
    clock: Any
    """An ``IReactorTime`` (Unix times with the real reactor)."""
    started_at: float
    ids: TorrentIds
    default_dir: str = ""
    """session-set's ``download-dir`` (under ``download_dir``); "" for
    ``download_dir`` itself."""
    speed_kb: dict[str, int] = field(default_factory=lambda: {"down": 100, "up": 100})
    """The last global limits set in kB/s (shown while disabled)."""

    def now(self) -> float:
        return float(self.clock.seconds())

    @property
    def add_dir(self) -> str:
        return self.default_dir or self.download_dir


Method = Callable[[RpcContext, dict[str, Any]], Any]
METHODS: dict[str, Method] = {}


def method(name: str) -> Callable[[Method], Method]:
    def register(function: Method) -> Method:
        METHODS[name] = function
        return function

    return register


def call(ctx: RpcContext, name: Any, arguments: Any) -> Deferred[tuple[str, dict[str, Any]]]:
    """Run one method: fires with ``(result, arguments)``, never fails."""
    function = METHODS.get(name) if isinstance(name, str) else None
    if function is None:
        return _done(("method name not recognized", {}))
    if arguments is None:
        arguments = {}
    if not isinstance(arguments, dict):
        return _done(("'arguments' must be an object", {}))
    d: Deferred[Any] = maybeDeferred(function, ctx, arguments)

    def success(value: dict[str, Any] | None) -> tuple[str, dict[str, Any]]:
        return "success", value or {}

    def failure(f: Failure) -> tuple[str, dict[str, Any]]:
        if f.check(RpcError):
            return str(f.value), {}
        if isinstance(f.value, ApiError):
            return f.value.message, {}
        if f.check(BadIds):
            return str(f.value), {}
        if f.check(LocalProtocolError):
            return f.getErrorMessage(), {}
        _log.failure("transmission RPC {method} failed", f, method=name)
        return f"internal error: {f.getErrorMessage()}", {}

    return d.addCallbacks(success, failure)


def _done(value: tuple[str, dict[str, Any]]) -> Deferred[tuple[str, dict[str, Any]]]:
    d: Deferred[tuple[str, dict[str, Any]]] = Deferred()
    d.callback(value)
    return d


def torrents(ctx: RpcContext, arguments: dict[str, Any]) -> list[Torrent]:
    """The torrents the ``ids`` argument names (all without it)."""
    return ctx.ids.select(ctx.session, arguments.get("ids"), ctx.now())


def settle(ctx: RpcContext, deferreds: list[Deferred[Any]], what: str) -> Deferred[None]:
    """Fires when every Deferred has fired, or after ``SETTLE_TIME``
    seconds, whichever comes first; failures are logged, not answered
    (Transmission answers its actions at once)."""
    done: Deferred[None] = Deferred()

    def logged(f: Failure) -> None:
        if isinstance(f.value, ApiError):
            _log.warn("transmission RPC {what}: {why}", what=what, why=f.value.message)
        else:
            _log.failure("transmission RPC {what} failed", f, what=what)

    for d in deferreds:
        d.addErrback(logged)

    def finish(_: object = None) -> None:
        if not done.called:
            done.callback(None)

    timer = ctx.clock.callLater(SETTLE_TIME, finish)

    def all_fired(_: object) -> None:
        if timer.active():
            timer.cancel()
        finish()

    DeferredList(deferreds, consumeErrors=True).addCallback(all_fired)
    return done


# -- argument helpers ----------------------------------------------------------------


def flag(arguments: dict[str, Any], name: str, default: bool = False) -> bool:
    """A boolean argument (JSON true/false, or 0/1 as Transmission accepts)."""
    value = arguments.get(name, default)
    if isinstance(value, bool):
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    raise RpcError(f"'{name}' must be a boolean")


def int_list(arguments: dict[str, Any], name: str) -> list[int] | None:
    """A list of non-negative ints, or None when absent."""
    value = arguments.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(type(v) is int and v >= 0 for v in value):
        raise RpcError(f"'{name}' must be a list of file indexes")
    return value


def integer(arguments: dict[str, Any], name: str) -> int | None:
    value = arguments.get(name)
    if value is None:
        return None
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int or value < 0:
        raise RpcError(f"'{name}' must be a non-negative integer")
    return value
