"""``txbittorrent share``'s command line (txbittorrent.commands.share): the
options become a ShareConfig; bad values are usage errors; a DIR that is
not a directory exits 1 without starting anything."""

from __future__ import annotations

import io
import os
from contextlib import redirect_stderr

from twisted.trial.unittest import TestCase

from txbittorrent.commands.cli import build_parser, main
from txbittorrent.commands.share import DEFAULT_LISTEN, config_of


class ShareCommandTests(TestCase):
    def parse(self, *argv: str) -> object:
        return config_of(build_parser().parse_args(["share", *argv]))

    def test_defaults(self) -> None:
        """Without options: HTTP and peers and tracker on loopback, any free ports."""
        config = self.parse("some/dir")
        self.assertEqual(config.directory, "some/dir")
        self.assertEqual(config.listen, DEFAULT_LISTEN)
        self.assertEqual(DEFAULT_LISTEN, "tcp:8000:interface=127.0.0.1")
        self.assertEqual((config.peer_port, config.peer_interface), (0, "127.0.0.1"))
        self.assertEqual((config.tracker_port, config.tracker_interface), (0, "127.0.0.1"))
        self.assertIsNone(config.tracker_url)
        self.assertIsNone(config.piece_length)
        self.assertIsNone(config.cache_dir)

    def test_options(self) -> None:
        """Every option reaches the config."""
        config = self.parse(
            "d", "--listen", "tcp:9000", "--peer-port", "6881", "--peer-interface", "0.0.0.0",
            "--tracker-url", "http://example.org:6969/announce", "--tracker-port", "6969",
            "--tracker-interface", "0.0.0.0", "--piece-length", "65536",
            "--cache-dir", "/tmp/c", "--max-jobs", "3", "--max-files", "50",
            "--check-interval", "5",
        )
        self.assertEqual(config.listen, "tcp:9000")
        self.assertEqual((config.peer_port, config.peer_interface), (6881, "0.0.0.0"))
        self.assertEqual(config.tracker_url, "http://example.org:6969/announce")
        self.assertEqual((config.tracker_port, config.tracker_interface), (6969, "0.0.0.0"))
        self.assertEqual(config.piece_length, 65536)
        self.assertEqual(config.cache_dir, "/tmp/c")
        self.assertEqual((config.max_jobs, config.max_files, config.check_interval), (3, 50, 5.0))

    def test_bad_values_are_usage_errors(self) -> None:
        """A piece length that is not a power of two, a bad port or URL: exit 2."""
        for argv in (["--piece-length", "1000"], ["--peer-port", "70000"],
                     ["--tracker-url", "ftp://x/announce"], ["--max-jobs", "0"]):
            with redirect_stderr(io.StringIO()), self.assertRaises(SystemExit) as caught:
                build_parser().parse_args(["share", "d", *argv])
            self.assertEqual(caught.exception.code, 2, argv)

    def test_not_a_directory(self) -> None:
        """DIR missing: one line on stderr, exit 1."""
        missing = os.path.abspath(self.mktemp())
        err = io.StringIO()
        with redirect_stderr(err):
            code = main(["share", missing])
        self.assertEqual(code, 1)
        self.assertIn("not a directory", err.getvalue())
