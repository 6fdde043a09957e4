"""The seam between the commands and a daemon: ``ApiClient``, ``RemoteApi``
over HTTP, and ``LocalDaemon`` for the in-process mode.

Theory of operation
-------------------
A command talks to the native JSON API only through an ``ApiClient``:
``call(method, path, query=, body=, data=, content_type=)`` answers the
decoded JSON of a 2xx response or raises ``ApiError`` (the daemon's
``{"error": msg}`` and its status); ``stream(path, query, last_event_id,
on_message)`` follows a Server-Sent Events response, handing each
``SSEMessage`` to ``on_message``, and returns when the response ends (an
error when the connection is lost).  Tests give commands a fake.

``RemoteApi(url, token, http=..., rediscover=...)`` is the one real client:
treq with a bearer token.  When a connection is refused it asks
``rediscover`` (the CLI: read api.json again) where the daemon is now, so
the next call (``events`` reconnecting) reaches a daemon that came back on
another port; a stream to a daemon found elsewhere asks for every event
it keeps (``Last-Event-ID: 0``), since the ids it was given before were
another run's.

The in-process mode does not re-implement the API: ``LocalDaemon`` starts
a ``DaemonService`` on the same state directory, listening on an ephemeral
loopback port, never writing api.json (``write_api_file=False``: a running
daemon's file stays its own, and the run's token is revoked at the end),
and the command talks to it through the same ``RemoteApi``; so both modes
print the same thing because the same code answers.  Before the command
runs it waits (at most ``settle`` seconds) for the restored torrents to
leave "checking", so a listing does not show a resume check in progress.
``stop()`` stops the service cleanly (trackers told "stopped", resume
records written); it is idempotent, so a Ctrl-C trigger and the normal
end can both call it.  The state directory's lock refuses the mode while a
daemon runs (``DaemonRunningError``).
"""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Callable
from typing import Any, Protocol, TextIO
from urllib.parse import urlencode

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from txbittorrent.commands.cmds.sse import SSEMessage, SSEParser
from txbittorrent.errors import TxBitTorrentError

__all__ = ["ApiClient", "ApiError", "DaemonUnreachable", "RemoteApi", "LocalDaemon", "ApiFile", "read_api_file",
           "CALL_TIMEOUT", "SETTLE_SECONDS"]

CALL_TIMEOUT = 120.0
"""Seconds one API call may take (a removal waits for the torrent to stop)."""
SETTLE_SECONDS = 30.0
"""At most this long the in-process mode waits for restored torrents' checks."""
SETTLE_POLL = 0.05
LOCAL_LISTEN = ("tcp:0:interface=127.0.0.1",)
_log = Logger()


class ApiError(TxBitTorrentError):
    """The daemon answered with an error: its status and message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class DaemonUnreachable(TxBitTorrentError):
    """No answer from the daemon at ``url``: ``refused`` when nothing
    listens there (the in-process mode may take over then)."""

    def __init__(self, url: str, reason: str, refused: bool = False) -> None:
        super().__init__(f"cannot reach the daemon at {url}: {reason}")
        self.url = url
        self.refused = refused


class ApiClient(Protocol):
    """What a command may ask of the daemon (see the module docstring)."""

    def call(self, method: str, path: str, *, query: dict[str, Any] | None = None,
             body: Any = None, data: bytes | None = None,
             content_type: str | None = None) -> Deferred[Any]: ...

    def stream(self, path: str, query: dict[str, Any] | None, last_event_id: str | None,
               on_message: Callable[[SSEMessage], None]) -> Deferred[None]: ...


def _url(base: str, path: str, query: dict[str, Any] | None) -> str:
    url = base.rstrip("/") + path
    if query:
        url += "?" + urlencode(query, doseq=True)
    return url


class RemoteApi:
    """``ApiClient`` over HTTP with a bearer token (treq)."""

    def __init__(self, url: str, token: str | None, *, http: Any = None,
                 reactor: Any = None, timeout: float = CALL_TIMEOUT,
                 rediscover: Callable[[], ApiFile | None] | None = None) -> None:
        """``http``: a treq ``HTTPClient`` (or ``StubTreq``); by default one
        over an ``Agent`` on ``reactor`` with a non-persistent pool.
        ``rediscover``: where the daemon is now (its api.json); asked when a
        connection is refused, so the next call reaches a daemon that came
        back on another port."""
        self.url = url.rstrip("/")
        self.token = token
        self._http = http
        self._reactor = reactor
        self.timeout = timeout
        self._rediscover = rediscover
        self._moves = 0
        """Times ``rediscover`` found the daemon at another URL."""
        self._streamed_moves = 0

    def _client(self) -> Any:
        if self._http is None:
            from treq.client import HTTPClient
            from twisted.web.client import Agent, HTTPConnectionPool

            reactor = self._reactor
            if reactor is None:
                from twisted.internet import reactor as global_reactor

                reactor = global_reactor
            pool = HTTPConnectionPool(reactor, persistent=False)  # type: ignore[no-untyped-call]
            agent: Any = Agent(reactor, pool=pool)  # type: ignore[no-untyped-call]
            self._http = HTTPClient(agent)
        return self._http

    def _headers(self, extra: dict[bytes, list[bytes]] | None = None) -> dict[bytes, list[bytes]]:
        headers = dict(extra or {})
        if self.token:
            headers[b"Authorization"] = [b"Bearer " + self.token.encode("utf-8")]
        return headers

    def call(self, method: str, path: str, *, query: dict[str, Any] | None = None,
             body: Any = None, data: bytes | None = None,
             content_type: str | None = None) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._call(method, path, query, body, data, content_type))

    async def _call(self, method: str, path: str, query: dict[str, Any] | None, body: Any,
                    data: bytes | None, content_type: str | None) -> Any:
        import treq

        extra: dict[bytes, list[bytes]] = {b"Accept": [b"application/json"]}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            content_type = "application/json"
        if content_type is not None:
            extra[b"Content-Type"] = [content_type.encode("ascii")]
        response = await self._request(
            method, _url(self.url, path, query), data=data, headers=self._headers(extra),
            timeout=self.timeout,
        )
        content = await treq.content(response)
        return _decode(response.code, content)

    async def _request(self, method: str, url: str, **kwargs: Any) -> Any:
        """The response, or ``DaemonUnreachable`` when the connection
        cannot be made or no answer comes (within the timeout, if any)."""
        from twisted.internet.defer import CancelledError
        from twisted.internet.error import ConnectError, ConnectionRefusedError
        from twisted.web.client import ResponseNeverReceived

        try:
            return await self._client().request(method, url, **kwargs)
        except ConnectionRefusedError:
            url = self.url
            self._moved()
            raise DaemonUnreachable(url, "connection refused", refused=True) from None
        except ConnectError as e:
            raise DaemonUnreachable(self.url, str(e)) from None
        except ResponseNeverReceived as e:
            reasons = "; ".join(r.getErrorMessage() for r in e.reasons)
            raise DaemonUnreachable(self.url, f"no answer ({reasons})") from None
        except CancelledError:
            if "timeout" not in kwargs:
                raise
            raise DaemonUnreachable(self.url, f"no answer in {self.timeout:g} s") from None

    def _moved(self) -> None:
        found = self._rediscover() if self._rediscover is not None else None
        if found is not None and found.url.lower().startswith(("http://", "https://")):
            if found.url.rstrip("/") != self.url:
                self._moves += 1
            self.url, self.token = found.url.rstrip("/"), found.token

    def stream(self, path: str, query: dict[str, Any] | None, last_event_id: str | None,
               on_message: Callable[[SSEMessage], None]) -> Deferred[None]:
        return Deferred.fromCoroutine(self._stream(path, query, last_event_id, on_message))

    async def _stream(self, path: str, query: dict[str, Any] | None, last_event_id: str | None,
                      on_message: Callable[[SSEMessage], None]) -> None:
        import treq

        if self._moves != self._streamed_moves:
            last_event_id = "0"  # another daemon run: its events are all new to us
        self._streamed_moves = self._moves
        extra = {b"Accept": [b"text/event-stream"]}
        if last_event_id is not None:
            extra[b"Last-Event-ID"] = [last_event_id.encode("utf-8")]
        response = await self._request(
            "GET", _url(self.url, path, query), headers=self._headers(extra), unbuffered=True,
        )
        if response.code != 200:
            _decode(response.code, await treq.content(response))
            raise ApiError(response.code, f"HTTP {response.code} from the event stream")
        parser = SSEParser()

        def received(chunk: bytes) -> None:
            for message in parser.feed(chunk):
                on_message(message)

        await treq.collect(response, received)


def _decode(code: int, content: bytes) -> Any:
    """A response's JSON, or ``ApiError`` for an error status."""
    try:
        value = json.loads(content.decode("utf-8")) if content.strip() else None
    except (UnicodeDecodeError, ValueError):
        value = None
        if code < 400:
            raise ApiError(code, f"the daemon's answer (HTTP {code}) is not JSON") from None
    if code >= 400:
        message = value.get("error") if isinstance(value, dict) else None
        raise ApiError(code, str(message) if message else f"HTTP {code} from the daemon")
    return value


@dataclasses.dataclass(frozen=True, slots=True)
class ApiFile:
    """``STATE_DIR/api.json`` as ``serve`` writes it."""

    url: str
    token: str | None


def read_api_file(state_dir: str) -> ApiFile | None:
    """The state directory's api.json, or None when absent or unreadable
    as such (a daemon writes it atomically, so a torn file is not expected)."""
    try:
        with open(os.path.join(state_dir, "api.json"), "rb") as f:
            info = json.load(f)
    except (OSError, ValueError):
        return None
    if not isinstance(info, dict) or not isinstance(info.get("url"), str):
        return None
    token = info.get("token")
    return ApiFile(info["url"], token if isinstance(token, str) else None)


class LocalDaemon:
    """A ``DaemonService`` in this process for one command (see the module
    docstring)."""

    def __init__(self, state_dir: str, *, reactor: Any, out: TextIO,
                 settle: float = SETTLE_SECONDS) -> None:
        """``out`` receives what the service prints (the first start's
        password): the CLI passes stderr, keeping stdout the command's."""
        self.state_dir = state_dir
        self._reactor = reactor
        self._out = out
        self._settle = settle
        self.service: Any = None
        self._stopping: Deferred[None] | None = None

    async def start(self) -> RemoteApi:
        """Start the service; a ``RemoteApi`` to it once the torrents settled."""
        from txbittorrent.daemon.service import DaemonService, config_from

        config = dataclasses.replace(
            config_from(self.state_dir), listen=LOCAL_LISTEN, write_api_file=False
        )
        self.service = service = DaemonService(config, reactor=self._reactor, out=self._out)
        service.startService()
        started = service.started
        assert started is not None
        try:
            await started
        except BaseException:
            self.service = None
            raise
        await self._settled()
        assert service.url is not None
        return RemoteApi(service.url, service.token, reactor=self._reactor)

    async def _settled(self) -> None:
        from twisted.internet.task import deferLater

        session = self.service.session
        waited = 0.0
        while waited < self._settle and any(
            str(t.state) == "checking" for t in session.torrents()
        ):
            await deferLater(self._reactor, SETTLE_POLL, lambda: None)
            waited += SETTLE_POLL

    def stop(self) -> Deferred[None]:
        """Stop the service once; the same Deferred's result on every call."""
        if self._stopping is None:
            if self.service is None or not self.service.running:
                self._stopping = Deferred()
                self._stopping.callback(None)
            else:
                self._stopping = self.service.stopService()
                self._stopping.addErrback(
                    lambda f: _log.failure("stopping the in-process daemon failed", f))
        result: Deferred[None] = Deferred()
        self._stopping.addCallback(lambda _: result.callback(None))
        return result
