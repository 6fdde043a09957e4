"""``python -m txbittorrent serve`` as a real child process on 127.0.0.1:
it writes api.json with its real URL (listening on port 0), answers GET
/api with the token, and exits 0 on SIGTERM; bounded in time, the child
killed in cleanup whatever happens."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Generator, Sequence
from typing import Any

import treq
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SERVE = ("-m", "txbittorrent", "serve")
TWIST = ("-c", "import sys; from twisted.application.twist._twist import Twist;"
         " sys.argv[0] = 'twist'; sys.exit(Twist.main())", "txbittorrent")
DEADLINE = 25.0
"""Seconds the child may take to write api.json, and then to exit."""


class _Child(ProcessProtocol):
    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self.ended: Deferred[int | None] = Deferred()
        self.running = True
        self.signal: int | None = None

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        self.signal = getattr(reason.value, "signal", None)
        self.ended.callback(getattr(reason.value, "exitCode", None))


class ServeTests(TestCase):
    """The serve command end to end."""

    timeout = 30

    def spawn(self, state: str, *options: str, command: Sequence[str] = SERVE,
              ) -> tuple[_Child, Any]:
        """``txbittorrent serve`` (or ``command``) on ``state``, SIGKILLed in
        cleanup if still running."""
        child = _Child()
        env = dict(os.environ, PYTHONPATH=ROOT)
        process = reactor.spawnProcess(
            child, sys.executable,
            [sys.executable, *command, "--state-dir", state,
             "--download-dir", os.path.join(os.path.dirname(state), "dl"),
             "--listen", "tcp:0:interface=127.0.0.1", *options],
            env=env, path=ROOT,
        )

        def kill() -> Any:
            if child.running:
                process.signalProcess("KILL")
                return child.ended
            return None

        self.addCleanup(kill)
        child.kill = kill  # type: ignore[attr-defined]
        return child, process

    @inlineCallbacks
    def api_info(self, state: str, child: _Child) -> Generator[Any, Any, dict[str, Any]]:
        """api.json once the child has written it."""
        api_file = os.path.join(state, "api.json")
        waited = 0.0
        while not os.path.exists(api_file):
            self.assertTrue(child.running, child.err.decode(errors="replace"))
            self.assertLess(waited, DEADLINE, "no api.json")
            yield task.deferLater(reactor, 0.1, lambda: None)
            waited += 0.1
        with open(api_file) as f:
            return json.load(f)  # type: ignore[no-any-return]

    @inlineCallbacks
    def test_serve_answers_and_stops_on_sigterm(self) -> Generator[Any, Any, None]:
        """The child serves /api with the token from api.json and exits 0 on
        SIGTERM; with --log-format json every stderr line is a JSON object; a
        second serve on the same state dir exits 1 saying it is in use."""
        base = os.path.abspath(self.mktemp())
        state = os.path.join(base, "state")
        child, process = self.spawn(state, "--log-format", "json", "--peer-port", "0",
                                    "--upload-limit", "1M", "--readahead", "8M")
        kill = child.kill  # type: ignore[attr-defined]
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)

        info = yield self.api_info(state, child)
        self.assertTrue(info["url"].startswith("http://127.0.0.1:"))
        self.assertNotEqual(info["url"], "http://127.0.0.1:0")

        response = yield treq.get(
            info["url"] + "/api", headers={b"Authorization": [b"Bearer " + info["token"].encode()]},
            pool=pool,
        )
        body = yield treq.content(response)
        self.assertEqual(response.code, 200)
        self.assertIn("routes", json.loads(body))
        self.assertIn(b"password", bytes(child.out))

        second, _ = self.spawn(state)
        timer = reactor.callLater(DEADLINE, second.kill)  # type: ignore[attr-defined]
        code = yield second.ended
        if timer.active():
            timer.cancel()
        self.assertEqual(code, 1)
        self.assertIn(f"is using {state}".encode(), bytes(second.err))

        process.signalProcess("TERM")
        timer = reactor.callLater(DEADLINE, kill)
        code = yield child.ended
        if timer.active():
            timer.cancel()
        self.assertEqual(code, 0, child.err.decode(errors="replace"))
        lines = bytes(child.err).decode().splitlines()
        self.assertTrue(lines)
        events = [json.loads(line) for line in lines]
        self.assertTrue(any("listening on" in e.get("log_format", "") for e in events), lines)

    @inlineCallbacks
    def test_twist_plugin(self) -> Generator[Any, Any, None]:
        """``twist txbittorrent`` runs the same daemon: api.json, GET /api with
        its token, a clean stop on SIGTERM (twist then ends by that signal, as
        Unix programs should)."""
        state = os.path.join(os.path.abspath(self.mktemp()), "state")
        child, process = self.spawn(state, command=TWIST)
        info = yield self.api_info(state, child)
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        response = yield treq.get(
            info["url"] + "/api", headers={b"Authorization": [b"Bearer " + info["token"].encode()]},
            pool=pool,
        )
        yield treq.content(response)
        self.assertEqual(response.code, 200)
        process.signalProcess("TERM")
        timer = reactor.callLater(DEADLINE, child.kill)  # type: ignore[attr-defined]
        yield child.ended
        if timer.active():
            timer.cancel()
        output = (bytes(child.out) + bytes(child.err)).decode(errors="replace")
        self.assertEqual(child.signal, signal.SIGTERM, output)
        self.assertIn("txbittorrent daemon listening", output)
