"""Child processes for the integration tests: ``Child`` (one
``python ...`` process, its output and how it ended), ``spawn_child``
(started, SIGKILLed in the test's cleanup if still running) and
``wait_for_api_file`` (a ``txbittorrent serve`` child's api.json, once it
names a new URL)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Generator, Sequence
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import ProcessProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import TestCase

__all__ = ["Child", "ROOT", "spawn_child", "wait_for_api_file"]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class Child(ProcessProtocol):
    """One child process: what it wrote, and how it ended."""

    def __init__(self) -> None:
        self.out = bytearray()
        self.err = bytearray()
        self.ended: Deferred[int | None] = Deferred()
        """Fires with the exit status (None if a signal ended it)."""
        self.running = True
        self.code: int | None = None
        """The exit status (None if killed by a signal)."""
        self.signal: int | None = None
        """The signal that ended it, if one did."""

    process: Any = None

    def kill(self) -> Deferred[int | None] | None:
        """SIGKILL it if it still runs; the Deferred of its end (None if it
        had ended)."""
        if self.running and self.process is not None:
            self.process.signalProcess("KILL")
            return self.ended
        return None

    def interrupt(self) -> None:
        self.process.signalProcess("INT")

    def terminate(self) -> None:
        self.process.signalProcess("TERM")

    def stdout(self) -> str:
        return self.out.decode("utf-8", "replace")

    def stderr(self) -> str:
        return self.err.decode("utf-8", "replace")

    def outReceived(self, data: bytes) -> None:
        self.out += data

    def errReceived(self, data: bytes) -> None:
        self.err += data

    def processEnded(self, reason: Failure) -> None:
        self.running = False
        self.code = getattr(reason.value, "exitCode", None)
        self.signal = getattr(reason.value, "signal", None)
        self.ended.callback(self.code)


def spawn_child(test: TestCase, args: Sequence[str], *, child: Child | None = None,
                env: dict[str, str] | None = None, path: str = ROOT,
                drop_env: Sequence[str] = ()) -> Child:
    """``python ARGS`` with this tree first on its path, SIGKILLed in
    ``test``'s cleanup if it still runs then."""
    child = child if child is not None else Child()
    inherited = os.environ.get("PYTHONPATH")
    python_path = ROOT + (os.pathsep + inherited if inherited else "")
    environment = dict(os.environ, PYTHONPATH=python_path, **(env or {}))
    for name in drop_env:
        environment.pop(name, None)
    child.process = reactor.spawnProcess(
        child, sys.executable, [sys.executable, *args], env=environment, path=path,
    )
    test.addCleanup(child.kill)
    return child


@inlineCallbacks
def wait_for_api_file(test: TestCase, state_dir: str, child: Child, timeout: float,
                      old_url: str | None = None) -> Generator[Any, Any, dict[str, Any]]:
    """A serve child's api.json once it names a URL other than ``old_url``
    (a killed run's file stays); fails the test if the child ends first or
    ``timeout`` seconds pass."""
    api_file = os.path.join(state_dir, "api.json")
    waited = 0.0
    while True:
        test.assertTrue(child.running, f"the daemon ended early:\n{child.stderr()}")
        try:
            with open(api_file) as f:
                info = json.load(f)
        except (OSError, ValueError):
            info = None
        if isinstance(info, dict) and info.get("url") not in (None, old_url):
            return info
        test.assertLess(waited, timeout, f"no api.json from the daemon:\n{child.stderr()}")
        yield task.deferLater(reactor, 0.1, lambda: None)
        waited += 0.1
