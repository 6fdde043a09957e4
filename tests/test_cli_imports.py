"""``txbittorrent download`` imports only what a download needs.

Each check runs in a fresh interpreter (``sys.modules`` of this test process
holds everything the other tests imported) and reports the modules it found
loaded that a download from peers has no use for: the HTTP client stack
(treq, twisted.web, hyperlink: loaded once an HTTP tracker is asked), the
daemon, the web API, the tracker server, the daemon's client commands,
``create``'s hashing and SQLite; and, with ``--no-dht``, the DHT node.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

UNWANTED = (
    "treq", "twisted.web", "hyperlink", "sqlite3", "_sqlite3",
    "txbittorrent.web", "txbittorrent.daemon", "txbittorrent.tracker.server",
    "txbittorrent.tracker.service", "txbittorrent.share", "txbittorrent.commands.cmds",
    "txbittorrent.storage.create",
    # --no-dht (as every check here): no node, no KRPC (about 20 ms).
    "txbittorrent.dht.node", "txbittorrent.dht.torrent", "txbittorrent.core.dht.krpc",
)
"""Packages and modules (with their submodules) a download must not import."""

REPORT = """
import json, sys
unwanted = {unwanted!r}
found = sorted(m for m in sys.modules
               if any(m == u or m.startswith(u + ".") for u in unwanted))
print(json.dumps({{"result": result, "found": found}}))
"""


def run_child(code: str) -> dict[str, object]:
    """Run ``code`` (which sets ``result``) and the report in a new interpreter."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(
        [ROOT, *[p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]]))
    done = subprocess.run(
        [sys.executable, "-c", code + REPORT.format(unwanted=UNWANTED)],
        cwd=ROOT, env=env, capture_output=True, timeout=120,
    )
    if done.returncode != 0:
        raise AssertionError(done.stderr.decode(errors="replace"))
    return json.loads(done.stdout.decode().splitlines()[-1])  # type: ignore[no-any-return]


class DownloadImportsTests(SynchronousTestCase):
    """What the ``download`` command loads."""

    def test_parser(self) -> None:
        """Parsing a download's command line registers the download command
        only: none of the unwanted modules is loaded."""
        report = run_child(
            "from txbittorrent.commands import cli\n"
            "args = cli.build_parser(['download', 'x.torrent'])"
            ".parse_args(['download', 'x.torrent', '--no-dht'])\n"
            "result = args.command\n")
        self.assertEqual(report, {"result": "download", "found": []})

    def test_whole_download(self) -> None:
        """A whole run of ``download`` (its data already complete on disk, no
        tracker: it checks, completes and stops) loads none of the unwanted
        modules from start to exit."""
        from txbittorrent.storage.create import create_torrent

        base = os.path.abspath(self.mktemp())
        os.makedirs(base)
        data = os.path.join(base, "data.bin")
        with open(data, "wb") as f:
            f.write(os.urandom(100_000))
        torrent = os.path.join(base, "data.torrent")
        with open(torrent, "wb") as f:
            f.write(create_torrent(data, piece_length=16384))
        argv = ["download", torrent, "-o", base, "--no-dht", "--quiet",
                "--interface", "127.0.0.1"]
        report = run_child(
            "from txbittorrent.commands import cli\n"
            f"result = cli.main({argv!r})\n")
        self.assertEqual(report, {"result": 0, "found": []})

    def test_full_parser(self) -> None:
        """Without a command word that one module handles, every command is
        registered (the help lists them all)."""
        from txbittorrent.commands import cli

        self.assertEqual(cli.modules_for(["--help"]), cli.COMMANDS)
        self.assertEqual(cli.modules_for(["list", "--json"]), cli.COMMANDS)
        self.assertEqual(cli.modules_for(None), cli.COMMANDS)
        self.assertEqual(cli.modules_for(["download", "x"]), ("download",))
        self.assertEqual(cli.modules_for(["--help", "seed"]), ("seed",))
