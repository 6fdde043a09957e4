"""``TempRootCase``: an integration test's own temporary directory.

Every integration test works under one absolute directory made fresh for it
(``self.root``, under trial's ``_trial_temp``), and names the places in it
with ``path("seed", "tree")``.  ``make_root()`` makes the directory; with
``remove=True`` it is removed in the test's cleanup, registered first so that
it runs last, after every torrent, session and child process has closed.
Otherwise it is left for a look after a failure (trial empties
``_trial_temp`` at the start of the next run).

``path`` only joins, unless the class sets ``make_dirs = True``: then the
directory it names is made too (for the tests that hand those paths to
clients as download directories).
"""

from __future__ import annotations

import os
import shutil

from twisted.trial.unittest import TestCase

__all__ = ["TempRootCase"]


class TempRootCase(TestCase):
    """A trial TestCase with ``root``, ``make_root`` and ``path`` (see the module)."""

    root: str
    make_dirs = False
    """Whether ``path`` makes the directory it names."""

    def make_root(self, remove: bool = False) -> str:
        """Make this test's directory, ``self.root``, and return it."""
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        if remove:
            self.addCleanup(shutil.rmtree, self.root, ignore_errors=True)
        return self.root

    def path(self, *parts: str) -> str:
        """``parts`` joined under the root (made, if ``make_dirs``)."""
        p = os.path.join(self.root, *parts)
        if self.make_dirs:
            os.makedirs(p, exist_ok=True)
        return p
