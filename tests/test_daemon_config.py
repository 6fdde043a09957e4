"""daemon.config (DaemonConfig from the command line's choices, the size and
host parsers) and the options of ``txbittorrent serve``."""

from __future__ import annotations

import argparse
import contextlib
import io
import os

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.commands import serve
from txbittorrent.daemon.store import StateStore
from txbittorrent.daemon.config import (
    DEFAULT_READAHEAD,
    DaemonConfig,
    config_from,
    normalize_host,
    parse_size,
)


def _parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve.add_parser(parser.add_subparsers())
    return parser.parse_args(["serve", *argv])


class ParseTests(SynchronousTestCase):
    """parse_size and normalize_host."""

    def test_sizes(self) -> None:
        """Plain bytes, K/M/G (with or without iB, /s), fractions, unlimited."""
        cases = {"1000": 1000, "32M": 32 << 20, "512KiB": 512 << 10, "1.5G": 3 << 29,
                 "2MB/s": 2 << 20, "0": 0, "unlimited": 0, " 4k ": 4096}
        for text, value in cases.items():
            self.assertEqual(parse_size(text), value, text)
        for bad in ("", "x", "-1", "1T", "nan", "inf", "1e30"):
            self.assertRaises(ValueError, parse_size, bad)

    def test_hosts(self) -> None:
        """Hosts are lowercased, IPv6 bracketed; ports, paths and junk refused."""
        self.assertEqual(normalize_host("Box.LAN"), "box.lan")
        self.assertEqual(normalize_host("fe80::1"), "[fe80::1]")
        self.assertEqual(normalize_host("[::1]"), "[::1]")
        for bad in ("", "box:8080", "a/b", "[::1"):
            self.assertRaises(ValueError, normalize_host, bad)


class ConfigFromTests(SynchronousTestCase):
    """config_from and serve's options."""

    def test_defaults(self) -> None:
        """Absolute paths, downloads under the state dir, loopback everywhere,
        limits from the store, 32 MiB readahead, 600 s grace."""
        config = config_from("state")
        self.assertEqual(config.state_dir, os.path.abspath("state"))
        self.assertEqual(config.download_dir, os.path.abspath("state/downloads"))
        self.assertEqual(config, DaemonConfig(config.state_dir, config.download_dir))
        self.assertEqual(config.peer_interfaces, ("127.0.0.1",))
        self.assertEqual(config.listen, ("tcp:8080:interface=127.0.0.1",))
        self.assertEqual((config.download_limit, config.upload_limit), (None, None))
        self.assertEqual(config.readahead, DEFAULT_READAHEAD)
        self.assertEqual(config.grace, 600.0)
        self.assertFalse(config.dht)
        self.assertTrue(config.write_api_file)

    def test_remembered_download_dir(self) -> None:
        """Without --download-dir, the directory the last start recorded in
        the store; a given one wins; a corrupt store is no setting."""
        state = os.path.abspath(self.mktemp())
        os.makedirs(state)
        store = StateStore(os.path.join(state, "state.sqlite"))
        store.set_setting("download_dir", "/srv/media")
        store.close()
        self.assertEqual(config_from(state).download_dir, "/srv/media")
        self.assertEqual(config_from(state, "d").download_dir, os.path.abspath("d"))
        with open(os.path.join(state, "state.sqlite"), "wb") as f:
            f.write(b"not a database at all" * 100)
        self.assertEqual(config_from(state).download_dir, os.path.join(state, "downloads"))

    def test_serve_defaults(self) -> None:
        """serve with no options gives config_from's defaults."""
        args = _parse("--state-dir", "s")
        self.assertEqual(serve.config_of(args), config_from("s"))
        self.assertEqual(args.log_format, "text")

    def test_serve_options(self) -> None:
        """Every serve option lands in its DaemonConfig field."""
        args = _parse(
            "--state-dir", "s", "--download-dir", "d", "--listen", "tcp:0", "--listen",
            "unix:/tmp/x.sock", "--peer-port", "6881", "--peer-interface", "0.0.0.0",
            "--peer-interface", "::", "--dht", "--download-limit", "2M",
            "--upload-limit", "0", "--allow-host", "Box.lan", "--allow-host", "fe80::1",
            "--readahead", "8M", "--grace", "30", "--log-format", "json",
        )
        config = serve.config_of(args)
        self.assertEqual(config.download_dir, os.path.abspath("d"))
        self.assertEqual(config.listen, ("tcp:0", "unix:/tmp/x.sock"))
        self.assertEqual(config.peer_port, 6881)
        self.assertEqual(config.peer_interfaces, ("0.0.0.0", "::"))
        self.assertTrue(config.dht)
        self.assertEqual((config.download_limit, config.upload_limit), (2 << 20, 0))
        self.assertEqual(config.allowed_hosts,
                         ("127.0.0.1", "localhost", "[::1]", "box.lan", "[fe80::1]"))
        self.assertEqual(config.readahead, 8 << 20)
        self.assertEqual(config.grace, 30.0)
        self.assertEqual(args.log_format, "json")
        self.assertIsNone(config.encryption)

    def test_serve_encryption(self) -> None:
        """serve --encryption lands in DaemonConfig.encryption."""
        for mode in ("disabled", "enabled", "forced"):
            config = serve.config_of(_parse("--state-dir", "s", "--encryption", mode))
            self.assertEqual(config.encryption, mode)

    def test_bad_options(self) -> None:
        """A bad port, size, host, grace or log format is a usage error."""
        for argv in (["--peer-port", "70000"], ["--download-limit", "fast"],
                     ["--allow-host", "a:1"], ["--grace", "-1"], ["--log-format", "xml"]):
            with self.assertRaises(SystemExit, msg=str(argv)):
                with contextlib.redirect_stderr(io.StringIO()):
                    _parse(*argv)

