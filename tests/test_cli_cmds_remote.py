"""RemoteApi over real sockets on 127.0.0.1 (a small stand-in resource),
the discovery of a daemon through api.json, and LocalDaemon (a real
DaemonService in this process)."""

from __future__ import annotations

import argparse
import io
import json
import os
import socket
from collections.abc import Generator
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request, Site

from txbittorrent.commands.cmds.client import (
    ApiError,
    ApiFile,
    DaemonUnreachable,
    LocalDaemon,
    RemoteApi,
)
from txbittorrent.commands.cmds.framework import TOKEN_ENV, CommandError, connect
from txbittorrent.commands.cmds.sse import SSEMessage
from txbittorrent.daemon.lock import DaemonRunningError
from txbittorrent.daemon.service import DaemonService, config_from

TOKEN = "s3cret"


class _Api(Resource):
    """Answers like the daemon: JSON, 401 without the token, SSE at /api/events
    (two events, then the connection closes), recording each request."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.requests: list[tuple[bytes, bytes, dict[str, Any]]] = []

    def render(self, request: Request) -> Any:
        headers = {k.decode().lower(): v[0].decode()
                   for k, v in request.requestHeaders.getAllRawHeaders()}
        body = request.content.read() if request.content is not None else b""
        self.requests.append((request.method, request.uri, {"headers": headers, "body": body}))
        request.setHeader(b"content-type", b"application/json")
        if headers.get("authorization") != f"Bearer {TOKEN}":
            request.setResponseCode(401)
            return b'{"error": "a token is needed"}'
        if request.path == b"/api/missing":
            request.setResponseCode(404)
            return b'{"error": "no torrent 00"}'
        if request.path == b"/api/html":
            request.setResponseCode(502)
            return b"<html>bad gateway</html>"
        if request.path == b"/api/events":
            request.setHeader(b"content-type", b"text/event-stream")
            request.write(b": connected\n\nid: 4\nevent: progress\ndata: {\"n\": 4}\n\n")
            request.write(b"id: 5\nevent: complete\ndata: {\"n\": 5}\n\n")
            reactor.callLater(0, request.finish)
            return NOT_DONE_YET
        return json.dumps({"method": request.method.decode(), "args": {
            k.decode(): [x.decode() for x in v] for k, v in (request.args or {}).items()},
            "body": body.decode("latin-1")}).encode()


class RemoteApiTests(TestCase):
    """RemoteApi against a real HTTP server on 127.0.0.1."""

    timeout = 20

    def setUp(self) -> None:
        self.resource = _Api()
        self.port = reactor.listenTCP(0, Site(self.resource), interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.url = f"http://127.0.0.1:{self.port.getHost().port}"
        self.api = RemoteApi(self.url, TOKEN, reactor=reactor)

    @inlineCallbacks
    def test_json_call(self) -> Generator[Any, Any, None]:
        """A JSON body and a query go out with the bearer token; the JSON answer comes back."""
        answer = yield self.api.call("POST", "/api/torrents", query={"label": ["a", "b"]},
                                     body={"source": "x"})
        self.assertEqual(answer, {"method": "POST", "args": {"label": ["a", "b"]},
                                  "body": '{"source": "x"}'})
        headers = self.resource.requests[-1][2]["headers"]
        self.assertEqual(headers["content-type"], "application/json")

    @inlineCallbacks
    def test_raw_upload(self) -> Generator[Any, Any, None]:
        """Raw bytes go as the body with their content type."""
        yield self.api.call("POST", "/api/torrents", data=b"d4:infode",
                            content_type="application/x-bittorrent")
        request = self.resource.requests[-1][2]
        self.assertEqual(request["body"], b"d4:infode")
        self.assertEqual(request["headers"]["content-type"], "application/x-bittorrent")

    @inlineCallbacks
    def test_errors(self) -> Generator[Any, Any, None]:
        """An error answer is ApiError with the daemon's message (or the status)."""
        error = yield self.assertFailure(self.api.call("GET", "/api/missing"), ApiError)
        self.assertEqual((error.code, str(error)), (404, "no torrent 00"))
        error = yield self.assertFailure(self.api.call("GET", "/api/html"), ApiError)
        self.assertEqual((error.code, str(error)), (502, "HTTP 502 from the daemon"))
        wrong = RemoteApi(self.url, "nope", reactor=reactor)
        error = yield self.assertFailure(wrong.call("GET", "/api"), ApiError)
        self.assertEqual(error.code, 401)

    @inlineCallbacks
    def test_stream(self) -> Generator[Any, Any, None]:
        """The event stream's messages arrive in order with Last-Event-ID sent;
        the call returns when the server ends the response."""
        got: list[SSEMessage] = []
        yield self.api.stream("/api/events", {"ih": "ab"}, "3", got.append)
        self.assertEqual(got, [SSEMessage("progress", '{"n": 4}', "4"),
                               SSEMessage("complete", '{"n": 5}', "5")])
        method, uri, request = self.resource.requests[-1]
        self.assertEqual(uri, b"/api/events?ih=ab")
        self.assertEqual(request["headers"]["last-event-id"], "3")

    @inlineCallbacks
    def test_refused(self) -> Generator[Any, Any, None]:
        """Nothing listening is DaemonUnreachable (refused), a one-line error."""
        api = RemoteApi(f"http://127.0.0.1:{_free_port()}", TOKEN, reactor=reactor)
        error = yield self.assertFailure(api.call("GET", "/api"), DaemonUnreachable)
        self.assertTrue(error.refused)
        self.assertIn("connection refused", str(error))

    @inlineCallbacks
    def test_rediscover(self) -> Generator[Any, Any, None]:
        """A refused connection asks where the daemon is now; the next call goes
        there, and the first stream there asks for all its events (id 0)."""
        moved = RemoteApi(f"http://127.0.0.1:{_free_port()}", "old", reactor=reactor,
                          rediscover=lambda: ApiFile(self.url + "/", TOKEN))
        yield self.assertFailure(moved.call("GET", "/api"), DaemonUnreachable)
        self.assertEqual((moved.url, moved.token), (self.url, TOKEN))
        answer = yield moved.call("GET", "/api")
        self.assertEqual(answer["method"], "GET")
        yield moved.stream("/api/events", None, None, lambda message: None)
        self.assertEqual(self.resource.requests[-1][2]["headers"]["last-event-id"], "0")
        yield moved.stream("/api/events", None, "5", lambda message: None)
        self.assertEqual(self.resource.requests[-1][2]["headers"]["last-event-id"], "5")

    @inlineCallbacks
    def test_connect_discovers_daemon(self) -> Generator[Any, Any, None]:
        """Without --api or --offline, api.json's daemon is used when it answers."""
        state = os.path.abspath(self.mktemp())
        os.makedirs(state)
        with open(os.path.join(state, "api.json"), "w") as f:
            json.dump({"url": self.url, "token": TOKEN}, f)
        api, local = yield Deferred.fromCoroutine(connect(_args(state), reactor, io.StringIO()))
        self.assertIsNone(local)
        self.assertEqual((api.url, api.token), (self.url, TOKEN))

    @inlineCallbacks
    def test_connect_explicit(self) -> Generator[Any, Any, None]:
        """--api takes its token from --token, else $TXBITTORRENT_TOKEN, else api.json."""
        state = os.path.abspath(self.mktemp())
        args = _args(state, api=self.url)
        api, _ = yield Deferred.fromCoroutine(
            connect(args, reactor, io.StringIO(), environ={TOKEN_ENV: "env"}))
        self.assertEqual(api.token, "env")
        args.token = "given"
        api, _ = yield Deferred.fromCoroutine(
            connect(args, reactor, io.StringIO(), environ={TOKEN_ENV: "env"}))
        self.assertEqual(api.token, "given")


def _args(state_dir: str, **changes: Any) -> argparse.Namespace:
    args = argparse.Namespace(state_dir=state_dir, api=None, offline=False, token=None,
                              json=False)
    for key, value in changes.items():
        setattr(args, key, value)
    return args


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalDaemonTests(TestCase):
    """The in-process mode: a DaemonService on the state dir for one command."""

    timeout = 60

    def setUp(self) -> None:
        self.state = os.path.abspath(self.mktemp())

    @inlineCallbacks
    def test_refused_runs_locally(self) -> Generator[Any, Any, None]:
        """A stale api.json (connection refused) gives the in-process daemon:
        its API answers with its token; it writes no api.json; stop is clean
        and idempotent."""
        os.makedirs(self.state)
        stale = {"url": f"http://127.0.0.1:{_free_port()}", "token": "old"}
        with open(os.path.join(self.state, "api.json"), "w") as f:
            json.dump(stale, f)
        err = io.StringIO()
        api, local = yield Deferred.fromCoroutine(connect(_args(self.state), reactor, err))
        self.assertIsNotNone(local)
        self.addCleanup(local.stop)
        answer = yield api.call("GET", "/api/torrents")
        self.assertEqual(answer, {"torrents": []})
        self.assertIn("password", err.getvalue())  # the first start's, on stderr
        yield local.stop()
        yield local.stop()
        self.assertFalse(local.service.running)
        with open(os.path.join(self.state, "api.json")) as f:
            self.assertEqual(json.load(f), stale)

    @inlineCallbacks
    def test_offline_refused_while_daemon_runs(self) -> Generator[Any, Any, None]:
        """--offline while a daemon holds the state dir fails with DaemonRunningError."""
        daemon = DaemonService(
            config_from(self.state, listen=("tcp:0:interface=127.0.0.1",)),
            reactor=reactor, out=io.StringIO())
        daemon.startService()
        self.addCleanup(daemon.stopService)
        yield daemon.started
        local = LocalDaemon(self.state, reactor=reactor, out=io.StringIO())
        yield self.assertFailure(Deferred.fromCoroutine(local.start()), DaemonRunningError)
        yield local.stop()  # nothing to stop
        error = yield self.assertFailure(Deferred.fromCoroutine(
            connect(_args(self.state, offline=True), reactor, io.StringIO())), CommandError)
        self.assertIn("leave out --offline", str(error))

    @inlineCallbacks
    def test_not_http(self) -> Generator[Any, Any, None]:
        """An api.json or --api naming no http(s) URL is a CommandError."""
        os.makedirs(self.state)
        with open(os.path.join(self.state, "api.json"), "w") as f:
            json.dump({"url": "unix:/run/x.sock", "token": "t"}, f)
        for args in (_args(self.state), _args(self.state, api="ftp://127.0.0.1/")):
            error = yield self.assertFailure(
                Deferred.fromCoroutine(connect(args, reactor, io.StringIO())), CommandError)
            self.assertIn("not an http(s) URL", str(error))
