"""The twist plugin: ``twist txbittorrent`` finds it, its options mirror
``txbittorrent serve``'s, and makeService returns a DaemonService."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.application.service import IServiceMaker
from twisted.plugin import getPlugins
from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.daemon import tap
from txbittorrent.daemon.config import config_from
from txbittorrent.daemon.service import DaemonService

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TWIST = (
    "import sys; from twisted.application.twist._twist import Twist;"
    " sys.argv[0] = 'twist'; sys.exit(Twist.main())"
)
"""What the ``twist`` script runs, for this very interpreter."""


def _options(*argv: str) -> tap.Options:
    options = tap.Options()
    options.parseOptions(list(argv))
    return options


class TwistPluginTests(SynchronousTestCase):
    """The dropin, its Options and makeService."""

    def test_dropin_has_no_init(self) -> None:
        """twisted/plugins has no __init__.py (it would hide Twisted's own)."""
        self.assertTrue(os.path.exists(os.path.join(ROOT, "twisted", "plugins",
                                                    "txbittorrent_plugin.py")))
        self.assertFalse(os.path.exists(os.path.join(ROOT, "twisted", "plugins", "__init__.py")))
        self.assertFalse(os.path.exists(os.path.join(ROOT, "twisted", "__init__.py")))

    def test_plugin_found(self) -> None:
        """getPlugins(IServiceMaker) lists the txbittorrent maker (once per
        copy on sys.path: the tree and an installed one), whose options are
        tap.Options."""
        makers = [m for m in getPlugins(IServiceMaker) if m.tapname == "txbittorrent"]
        self.assertTrue(makers)
        for maker in makers:
            self.assertIsInstance(maker.options(), tap.Options)

    def test_twist_help(self) -> None:
        """``twist txbittorrent --help`` exits 0 listing serve's options."""
        env = dict(os.environ, PYTHONPATH=ROOT)
        result = subprocess.run(
            [sys.executable, "-c", TWIST, "txbittorrent", "--help"],
            capture_output=True, env=env, cwd=ROOT, timeout=60,
        )
        self.assertEqual(result.returncode, 0, result.stderr)
        for option in (b"--state-dir", b"--listen", b"--peer-port", b"--peer-interface",
                       b"--dht", b"--download-limit", b"--upload-limit", b"--allow-host",
                       b"--readahead", b"--grace"):
            self.assertIn(option, result.stdout)

    def test_defaults(self) -> None:
        """No options: serve's defaults (config_from of ~/.txbittorrent)."""
        service = tap.makeService(_options())
        self.assertIsInstance(service, DaemonService)
        self.assertEqual(service.config, config_from(os.path.expanduser("~/.txbittorrent")))

    def test_options_mapped(self) -> None:
        """Every option lands in its DaemonConfig field."""
        service = tap.makeService(_options(
            "--state-dir", "s", "--download-dir", "d", "--listen", "tcp:0",
            "--listen", "unix:/tmp/x.sock", "--peer-port", "6881",
            "--peer-interface", "0.0.0.0", "--peer-interface", "::", "--dht",
            "--download-limit", "2M", "--upload-limit", "0", "--allow-host", "Box.lan",
            "--readahead", "8M", "--grace", "30",
        ))
        expected = config_from(
            "s", "d", ["tcp:0", "unix:/tmp/x.sock"], peer_interfaces=["0.0.0.0", "::"],
            allow_hosts=["box.lan"], peer_port=6881, dht=True, download_limit=2 << 20,
            upload_limit=0, readahead=8 << 20, grace=30.0,
        )
        self.assertEqual(service.config, expected)

    def test_bad_options(self) -> None:
        """A bad port, size, host or grace is a UsageError."""
        for argv in (["--peer-port", "70000"], ["--download-limit", "fast"],
                     ["--allow-host", "a:1"], ["--grace", "-1"], ["extra"]):
            self.assertRaises(usage.UsageError, _options, *argv)
