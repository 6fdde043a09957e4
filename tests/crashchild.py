"""SIGKILL at a random moment: what the SQLite stores' crash tests share.

``kill_mid_stream`` runs ``python -c CODE PATH``, a child that makes one
change after another and writes the number of each on stdout once it
returned; after a random number of acknowledged changes (and a few random
milliseconds more, so the kill lands somewhere inside the next change) it
SIGKILLs the child and returns how many changes were acknowledged."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from twisted.trial.unittest import TestCase

__all__ = ["kill_mid_stream", "reap"]

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def reap(child: subprocess.Popen[bytes]) -> None:
    """Kill (if still running) and wait for a child, closing its pipe."""
    if child.poll() is None:
        child.kill()
    child.wait()
    if child.stdout is not None:
        child.stdout.close()


def kill_mid_stream(test: TestCase, code: str, path: str, rng: random.Random,
                    deadline: float, most: int) -> int:
    """SIGKILL the child writing ``path`` after 1..``most`` acknowledged
    changes (fewer if ``deadline``, a ``time.monotonic`` value, passes);
    the number acknowledged (at least one, or the test fails)."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    child = subprocess.Popen([sys.executable, "-c", code, path], stdout=subprocess.PIPE,
                             env=env)
    test.addCleanup(reap, child)
    assert child.stdout is not None
    target = rng.randint(1, most)
    acknowledged = 0
    while acknowledged < target and time.monotonic() < deadline:
        line = child.stdout.readline()
        if not line:
            break
        acknowledged = int(line) + 1
    # The child is somewhere in its next change (most of which is the
    # fsync); a random few milliseconds more make the moment random.
    time.sleep(rng.uniform(0.0, 0.005))
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=5)
    test.assertEqual(child.returncode, -signal.SIGKILL)
    test.assertGreater(acknowledged, 0, "the child never acknowledged a change")
    return acknowledged
