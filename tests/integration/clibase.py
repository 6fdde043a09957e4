"""A base for integration tests that run ``python -m txbittorrent`` as a
child process against real peers on 127.0.0.1 (shared by the magnet and DHT
command-line tests)."""

from __future__ import annotations

import json
import os
from typing import Any

from twisted.internet import reactor
from twisted.trial.unittest import FailTest

from tests.integration import children, ltutil
from tests.integration.children import ROOT, spawn_child
from tests.integration.temproot import TempRootCase
from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, same_files

__all__ = ["CLITestBase", "Child", "TREE", "KiB", "MiB", "LOOPBACK", "ROOT", "RUN_TIMEOUT",
           "DEAD_TRACKER"]

LOOPBACK = ltutil.LOOPBACK
KiB = 1024
MiB = 1024 * KiB

TREE = {
    "movie.bin": 1 * MiB + 12345,
    "extras/a.bin": 300 * KiB,
    "extras/empty.txt": 0,
    "notes.txt": 5000,
}
"""In torrent order: 0 extras/a.bin, 1 extras/empty.txt, 2 movie.bin, 3 notes.txt."""

RUN_TIMEOUT = 45.0
"""Seconds any one child may take."""
CHILD = (
    "import runpy, signal; "
    "signal.signal(signal.SIGINT, signal.default_int_handler); "
    "runpy.run_module('txbittorrent', run_name='__main__')"
)
"""``python -m txbittorrent`` with Ctrl-C handled as in a terminal even when
this process was started with SIGINT ignored (as a background job is)."""
DEAD_TRACKER = "http://127.0.0.1:9/announce"
"""A tracker URL that refuses connections (the discard port, never served)."""


class Child(children.Child):
    """One ``python -m txbittorrent`` child: its output, exit status and
    ``--json`` events."""

    def events(self) -> list[dict[str, Any]]:
        """The JSON events written so far (a line still being written is left out)."""
        text = self.stdout()
        return [json.loads(line) for line in text[: text.rfind("\n") + 1].splitlines()]

    def event(self, kind: str) -> dict[str, Any] | None:
        """The last event of this kind so far."""
        found = [e for e in self.events() if e["kind"] == kind]
        return found[-1] if found else None


class CLITestBase(TempRootCase):
    timeout = 120

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.make_root()

    def make_torrent(self, sizes: dict[str, int] = TREE,
                     piece_length: int = 16 * KiB) -> bytes:
        """Data under seed/tree; its .torrent (v1) as bytes."""
        make_files(self.path("seed", "tree"), sizes)
        return create_torrent(self.path("seed", "tree"), piece_length=piece_length)

    def lt_seeder(self, raw: bytes) -> tuple[str, int]:
        """A libtorrent session seeding seed/tree; its address."""
        session = ltutil.make_session(self)
        handle = ltutil.add_torrent(session, raw, self.path("seed"))
        ltutil.wait_until_seeding(handle, 30)
        return ltutil.endpoint(session)

    def magnet(self, raw: bytes, peer: tuple[str, int] | None, *extra: str) -> str:
        uri = f"magnet:?xt=urn:btih:{parse(raw).info_hash_hex}"
        if peer is not None:
            uri += f"&x.pe={peer[0]}:{peer[1]}"
        return uri + "".join(f"&{e}" for e in extra)

    def spawn(self, *argv: str) -> Child:
        """Start ``python -m txbittorrent ARGV`` (killed in cleanup if still running)."""
        child = Child()
        spawn_child(self, ["-c", CHILD, *argv], child=child)
        return child

    async def finish(self, child: Child, timeout: float = RUN_TIMEOUT) -> Child:
        """Wait for ``child`` to exit; fail (killing it) past ``timeout``."""
        deadline = reactor.callLater(timeout, child.kill)  # type: ignore[attr-defined]
        await child.ended
        if not deadline.active():
            raise FailTest(f"still running after {timeout} s; stderr:\n{child.stderr()}"
                           f"\nstdout tail:\n{child.stdout()[-2000:]}")
        deadline.cancel()
        return child

    async def txbt(self, *argv: str, timeout: float = RUN_TIMEOUT) -> Child:
        """Run ``python -m txbittorrent ARGV`` to its end."""
        return await self.finish(self.spawn(*argv), timeout)

    def assert_exit(self, child: Child, code: int) -> None:
        self.assertEqual(child.code, code, f"stderr={child.stderr()[-2000:]!r}")
        self.assertNotIn("Traceback", child.stderr() + child.stdout())

    def assert_one_line(self, child: Child, *fragments: str) -> None:
        """Exit 1 with one error line on stderr holding every fragment."""
        self.assert_exit(child, 1)
        lines = child.stderr().splitlines()
        self.assertEqual(len(lines), 1, lines)
        for fragment in fragments:
            self.assertIn(fragment, lines[0])

    def assert_same(self, directory: str, names: list[str]) -> None:
        self.assertEqual(same_files(self.path("seed", "tree"), os.path.join(directory, "tree"),
                                    names), [])
