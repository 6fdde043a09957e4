"""The shared fixture of the end-to-end benchmark tests: ``BenchRunCase``
skips where libtorrent's Python bindings are missing and runs
``python -m bench.<name>`` from this checkout as a child process."""

from __future__ import annotations

import os
import sys

from twisted.internet import utils
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SkipTest, TestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The checkout: the benchmarks' working directory and PYTHONPATH."""


class BenchRunCase(TestCase):
    """Skipped without libtorrent; ``run_bench`` runs one benchmark."""

    def setUp(self) -> None:
        try:
            import libtorrent  # noqa: F401
        except ImportError:
            raise SkipTest("libtorrent (python bindings) is not installed") from None

    def run_bench(self, module: str, *args: str) -> Deferred[tuple[bytes, bytes, int]]:
        """``python -m module args...`` in ROOT: (stdout, stderr, exit code)."""
        return utils.getProcessOutputAndValue(
            sys.executable, ["-m", module, *args],
            env=dict(os.environ, PYTHONPATH=ROOT), path=ROOT,
        )
