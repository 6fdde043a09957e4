"""The example scripts run and do what they say."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_example(name: str, *args: str) -> str:
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "examples", name), *args],
        capture_output=True, text=True, timeout=120, env=env,
    )
    if result.returncode:
        raise AssertionError(f"{name} exited {result.returncode}: {result.stderr}")
    return result.stdout


class ExampleTests(SynchronousTestCase):
    """Each example script works on a small directory."""

    def test_create_then_hashcheck(self) -> None:
        """create_and_inspect.py makes a torrent that hashcheck.py finds complete."""
        root = os.path.abspath(self.mktemp())
        os.makedirs(os.path.join(root, "d", "s"))
        for name, size in (("a", 100_000), ("s/b", 10)):
            with open(os.path.join(root, "d", *name.split("/")), "wb") as f:
                f.write(os.urandom(size))
        out = os.path.join(root, "d.torrent")
        text = run_example("create_and_inspect.py", os.path.join(root, "d"), out)
        self.assertIn("magnet:?xt=urn:btih:", text)
        text = run_example("hashcheck.py", out, root)
        self.assertIn("complete: True", text)
        self.assertNotIn("FAILED", text)
