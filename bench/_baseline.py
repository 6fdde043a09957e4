"""The ``--baseline`` leecher of ``bench.download``: another commit's own txbittorrent leecher.

A clean copy of commit REF of this repository (``bench._common.checkout``:
``git archive`` into a new directory, no worktree) whose own ``bench.download
--child tx-leech`` the benchmark then runs, in that copy, as one more leecher
named ``txbittorrent@<short SHA-1>``.  ``prepare_baseline`` checks, before
anything is timed, that the copy imports its own code and has that role.
"""

from __future__ import annotations

import json
import os

from bench._common import Checkout, checkout, run_in

BASELINE_PROBE = """\
import json
import bench.download
import txbittorrent
print(json.dumps({"txbittorrent": txbittorrent.__file__, "bench": bench.download.__file__,
                  "roles": sorted(bench.download.CHILDREN)}))
"""
"""Run in the baseline's copy as its children run: which files it imports, which roles it has."""


def baseline_name(copy: Checkout) -> str:
    """The baseline leecher's name in the table and the JSON: ``txbittorrent@<short SHA-1>``."""
    return f"txbittorrent@{copy.short}"


def prepare_baseline(ref: str, directory: str) -> Checkout:
    """A clean copy of commit ``ref`` in the new directory ``directory``, checked:
    its children import its own ``txbittorrent`` and ``bench`` (not ours) and
    its ``bench.download`` has a ``tx-leech`` role.  RuntimeError otherwise."""
    copy = checkout(ref, directory)
    lines = run_in(copy.root, BASELINE_PROBE).strip().splitlines()
    found = json.loads(lines[-1])
    inside = os.path.realpath(copy.root) + os.sep
    for module in ("txbittorrent", "bench"):
        if not os.path.realpath(found[module]).startswith(inside):
            raise RuntimeError(
                f"the copy of {ref} imports {module} from {found[module]}, not from {copy.root}")
    if "tx-leech" not in found["roles"]:
        raise RuntimeError(f"{ref} ({copy.short}): its bench.download has no tx-leech child")
    return copy
