"""The README's first command: ``txbittorrent demo`` shares data over 127.0.0.1."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class DemoTests(SynchronousTestCase):
    """The demo runs end to end on a small size and cleans up after itself."""

    def test_small_demo(self) -> None:
        """demo --size-mib 4 downloads, verifies every byte and exits 0."""
        env = dict(os.environ, PYTHONPATH=ROOT)
        result = subprocess.run(
            [sys.executable, "-m", "txbittorrent", "demo", "--size-mib", "4", "--timeout", "60"],
            capture_output=True, text=True, timeout=120, env=env, cwd=ROOT,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
        self.assertIn("all 7 files identical", result.stdout)
        self.assertIn("127.0.0.1", result.stdout)
        self.assertNotIn("Traceback", result.stderr)
        workdir = result.stdout.split("sample data in ", 1)[1].split("\n", 1)[0]
        self.assertFalse(os.path.exists(workdir))
