"""The package type-checks: mypy (strict on txbittorrent/core, per setup.cfg)."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

try:
    import mypy  # noqa: F401
except ImportError:  # pragma: no cover
    HAVE_MYPY = False
else:
    HAVE_MYPY = True


class TypingTests(SynchronousTestCase):
    """mypy finds no errors in the package."""

    if not HAVE_MYPY:
        skip = "mypy is not installed (pip install '.[test]')"

    def test_mypy(self) -> None:
        """python -m mypy txbittorrent reports no issues."""
        result = subprocess.run(
            [sys.executable, "-m", "mypy", "--cache-dir", os.path.abspath("mypy-cache"),
             "txbittorrent"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
