"""Tests for ``txbittorrent create`` (txbittorrent.commands.create) through cli.main."""

from __future__ import annotations

import argparse
import io
import os
import sys
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.commands import cli
from txbittorrent.commands import create as create_command
from txbittorrent.core.bencoding import decode
from txbittorrent.core.metainfo import parse
from txbittorrent.storage.create import DEFAULT_CREATED_BY


class FakeTime:
    """Stands in for the ``time`` module in the command: a fixed clock."""

    @staticmethod
    def time() -> float:
        return 1_700_000_000.75


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


class ParseSizeTests(SynchronousTestCase):
    def test_forms(self) -> None:
        """Plain bytes and K/M/G (binary) suffixes, any case, optional 'iB'/'B'."""
        for text, expected in [
            ("262144", 262144),
            ("256K", 256 * 1024),
            ("256k", 256 * 1024),
            ("1M", 1024**2),
            ("16MiB", 16 * 1024**2),
            ("4mb", 4 * 1024**2),
            ("1G", 1024**3),
        ]:
            self.assertEqual(create_command.parse_size(text), expected, text)

    def test_garbage(self) -> None:
        """Anything else is an argparse type error (a usage error, exit 2)."""
        for text in ("", "K", "1.5M", "-1", "12Q", "1 M B"):
            self.assertRaises(argparse.ArgumentTypeError, create_command.parse_size, text)


class CreateCommandTests(SynchronousTestCase):
    def setUp(self) -> None:
        # Only our subcommand: cli.main builds its parser from COMMANDS.
        self.patch(cli, "COMMANDS", ("create",))
        self.patch(create_command, "time", FakeTime)
        self.stdout = io.StringIO()
        self.stderr = io.StringIO()
        self.patch(sys, "stdout", self.stdout)
        self.patch(sys, "stderr", self.stderr)
        self.base = self.mktemp()
        self.data = os.path.join(self.base, "data")
        os.makedirs(os.path.join(self.data, "sub"))
        with open(os.path.join(self.data, "a.bin"), "wb") as f:
            f.write(b"a" * 40_000)
        with open(os.path.join(self.data, "sub", "b.bin"), "wb") as f:
            f.write(b"b" * 3_000)
        self.out = os.path.join(self.base, "data.torrent")

    def main(self, *argv: str) -> int:
        return cli.main(["create", *argv])

    def load(self) -> Any:
        with open(self.out, "rb") as f:
            return decode(f.read())

    def test_creates_and_summarises(self) -> None:
        """The torrent is written and stdout starts with its info hash, then the facts."""
        self.assertEqual(self.main(self.data, "-o", self.out), 0)
        with open(self.out, "rb") as f:
            m = parse(f.read())
        line = self.stdout.getvalue()
        self.assertEqual(line.count("\n"), 1)
        self.assertEqual(line.split()[0], m.info_hash_hex)
        self.assertIn(" data ", line)
        self.assertIn("43000 bytes", line)
        self.assertIn("2 files", line)
        self.assertIn(f"{m.piece_count} pieces", line)
        self.assertEqual(m.created_by, DEFAULT_CREATED_BY)
        self.assertEqual(m.creation_date, 1_700_000_000)
        self.assertEqual(self.stderr.getvalue(), "")

    def test_each_tracker_a_tier(self) -> None:
        """Repeated -t give one tier per URL."""
        self.main(self.data, "-o", self.out, "-t", "http://a/ann", "-t", "udp://b:1")
        meta = self.load()
        self.assertEqual(meta[b"announce"], b"http://a/ann")
        self.assertEqual(meta[b"announce-list"], [[b"http://a/ann"], [b"udp://b:1"]])

    def test_tier_flag(self) -> None:
        """--tier puts all the -t URLs in a single tier."""
        self.main(self.data, "-o", self.out, "-t", "http://a/ann", "-t", "udp://b:1", "--tier")
        self.assertEqual(self.load()[b"announce-list"], [[b"http://a/ann", b"udp://b:1"]])

    def test_options(self) -> None:
        """--piece-length, --private, --comment, --web-seed and --no-date reach the torrent."""
        code = self.main(
            self.data, "-o", self.out, "--piece-length", "32K", "--private",
            "--comment", "hello", "--web-seed", "http://w/1/", "--web-seed", "http://w/2/",
            "--no-date",
        )  # fmt: skip
        self.assertEqual(code, 0)
        meta = self.load()
        info = meta[b"info"]
        self.assertEqual(info[b"piece length"], 32 * 1024)
        self.assertEqual(info[b"private"], 1)
        self.assertEqual(meta[b"comment"], b"hello")
        self.assertEqual(meta[b"url-list"], [b"http://w/1/", b"http://w/2/"])
        self.assertNotIn(b"creation date", meta)

    def test_bad_piece_length(self) -> None:
        """A piece length that is not a power of two fails with one line and exit 1."""
        self.assertEqual(self.main(self.data, "-o", self.out, "--piece-length", "100000"), 1)
        err = self.stderr.getvalue()
        self.assertEqual(err.count("\n"), 1)
        self.assertTrue(err.startswith("txbittorrent create: error: piece length:"))
        self.assertFalse(os.path.exists(self.out))

    def test_unparsable_piece_length(self) -> None:
        """A piece length argparse cannot read is a usage error (exit 2)."""
        e = self.assertRaises(
            SystemExit, self.main, self.data, "-o", self.out, "--piece-length", "big"
        )
        self.assertEqual(e.code, 2)

    def test_output_required(self) -> None:
        """-o is required."""
        self.assertEqual(self.assertRaises(SystemExit, self.main, self.data).code, 2)

    def test_refuses_to_overwrite(self) -> None:
        """An existing OUT is left alone without --force (exit 1, one line)."""
        with open(self.out, "wb") as f:
            f.write(b"precious")
        self.assertEqual(self.main(self.data, "-o", self.out), 1)
        err = self.stderr.getvalue()
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("--force", err)
        with open(self.out, "rb") as f:
            self.assertEqual(f.read(), b"precious")

    def test_force_replaces(self) -> None:
        """--force replaces OUT and leaves no temporary file behind."""
        with open(self.out, "wb") as f:
            f.write(b"old")
        self.assertEqual(self.main(self.data, "-o", self.out, "--force"), 0)
        with open(self.out, "rb") as f:
            parse(f.read())
        self.assertEqual(sorted(os.listdir(self.base)), ["data", "data.torrent"])

    def test_missing_path(self) -> None:
        """A PATH that does not exist fails with one line on stderr and exit 1."""
        missing = os.path.join(self.base, "nope")
        self.assertEqual(self.main(missing, "-o", self.out), 1)
        err = self.stderr.getvalue()
        self.assertEqual(err.count("\n"), 1)
        self.assertIn("nope", err)
        self.assertFalse(os.path.exists(self.out))

    def test_missing_output_directory(self) -> None:
        """An OUT in a directory that does not exist fails before hashing."""
        out = os.path.join(self.base, "no", "such", "x.torrent")
        self.assertEqual(self.main(self.data, "-o", out), 1)
        self.assertIn("does not exist", self.stderr.getvalue())

    def test_bad_tracker(self) -> None:
        """A tracker that is not a URL fails with one line on stderr and exit 1."""
        self.assertEqual(self.main(self.data, "-o", self.out, "-t", "example.com"), 1)
        self.assertIn("not an absolute URL", self.stderr.getvalue())

    def test_symlink_warning(self) -> None:
        """A skipped symbolic link is reported as a warning on stderr."""
        os.symlink("a.bin", os.path.join(self.data, "link"))
        self.assertEqual(self.main(self.data, "-o", self.out), 0)
        err = self.stderr.getvalue()
        self.assertIn("warning: skipped", err)
        self.assertIn("link", err)
        self.assertEqual(len(self.load()[b"info"][b"files"]), 2)

    def test_progress_bar_on_a_terminal(self) -> None:
        """On a terminal, stderr shows the hashing bar reaching 100%."""
        tty = TTY()
        self.patch(sys, "stderr", tty)
        self.assertEqual(self.main(self.data, "-o", self.out), 0)
        drawn = tty.getvalue()
        self.assertIn("\rhashing [", drawn)
        self.assertIn("100.0%", drawn)
        self.assertTrue(drawn.endswith("\n"))
        self.assertNotIn("hashing", self.stdout.getvalue())

    def test_no_progress_bar_when_piped(self) -> None:
        """When stderr is not a terminal, nothing is drawn."""
        self.assertEqual(self.main(self.data, "-o", self.out), 0)
        self.assertEqual(self.stderr.getvalue(), "")


class OutputInsideSourceTests(SynchronousTestCase):
    """Writing the .torrent into the directory being shared."""

    def test_force_rerun_excludes_old_torrent(self) -> None:
        """A second --force run inside the shared directory leaves the old .torrent out."""
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        with open(os.path.join(root, "data.bin"), "wb") as f:
            f.write(b"x" * 40000)
        out = os.path.join(root, "self.torrent")
        parser = argparse.ArgumentParser()
        create_command.add_parser(parser.add_subparsers())
        for extra in ([], ["--force"]):
            args = parser.parse_args(["create", root, "-o", out, "--no-date"] + extra)
            self.patch(sys, "stdout", io.StringIO())
            self.assertEqual(args.run(args), 0)
        with open(out, "rb") as f:
            m = parse(f.read())
        self.assertEqual([f.path[-1] for f in m.files], ["data.bin"])
