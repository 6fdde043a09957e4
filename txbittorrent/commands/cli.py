"""The ``txbittorrent`` command line.

Each subcommand lives in ``txbittorrent.commands.<name>`` and provides
``add_parser(subparsers)`` and ``run(args) -> int``.  Anticipated failures
(``TxBitTorrentError``, ``OSError``) print one line on stderr and exit 1; a
usage error exits 2 (argparse); Ctrl-C exits 130.  Never a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from txbittorrent.errors import TxBitTorrentError

COMMANDS = (
    "info", "create", "verify", "download", "seed", "demo", "serve", "cmds", "tracker", "share",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="txbittorrent", description="A BitTorrent client built on Twisted."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMANDS:
        module = importlib.import_module(f"txbittorrent.commands.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("txbittorrent: interrupted", file=sys.stderr)
        return 130
    except (TxBitTorrentError, OSError) as e:
        print(f"txbittorrent {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
