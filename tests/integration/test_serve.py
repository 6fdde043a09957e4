"""``python -m txbittorrent serve`` as a real child process on 127.0.0.1:
it writes api.json with its real URL (listening on port 0), answers GET
/api with the token, and exits 0 on SIGTERM; bounded in time, the child
killed in cleanup whatever happens."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Generator, Sequence
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from tests.integration.children import Child, spawn_child, wait_for_api_file

SERVE = ("-m", "txbittorrent", "serve")
TWIST = ("-c", "import sys; from twisted.application.twist._twist import Twist;"
         " sys.argv[0] = 'twist'; sys.exit(Twist.main())", "txbittorrent")
DEADLINE = 25.0
"""Seconds the child may take to write api.json, and then to exit."""


class ServeTests(TestCase):
    """The serve command end to end."""

    timeout = 30

    def spawn(self, state: str, *options: str, command: Sequence[str] = SERVE,
              ) -> tuple[Child, Any]:
        """``txbittorrent serve`` (or ``command``) on ``state``, SIGKILLed in
        cleanup if still running."""
        child = spawn_child(self, [
            *command, "--state-dir", state,
            "--download-dir", os.path.join(os.path.dirname(state), "dl"),
            "--listen", "tcp:0:interface=127.0.0.1", *options,
        ])
        return child, child.process

    def api_info(self, state: str, child: Child) -> Deferred[dict[str, Any]]:
        """api.json once the child has written it."""
        return wait_for_api_file(self, state, child, DEADLINE)

    @inlineCallbacks
    def test_serve_answers_and_stops_on_sigterm(self) -> Generator[Any, Any, None]:
        """The child serves /api with the token from api.json and exits 0 on
        SIGTERM; with --log-format json every stderr line is a JSON object; a
        second serve on the same state dir exits 1 saying it is in use."""
        base = os.path.abspath(self.mktemp())
        state = os.path.join(base, "state")
        child, process = self.spawn(state, "--log-format", "json", "--peer-port", "0",
                                    "--upload-limit", "1M", "--readahead", "8M")
        kill = child.kill
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
        timer = reactor.callLater(DEADLINE, second.kill)
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
        timer = reactor.callLater(DEADLINE, child.kill)
        yield child.ended
        if timer.active():
            timer.cancel()
        output = (bytes(child.out) + bytes(child.err)).decode(errors="replace")
        self.assertEqual(child.signal, signal.SIGTERM, output)
        self.assertIn("txbittorrent daemon listening", output)
