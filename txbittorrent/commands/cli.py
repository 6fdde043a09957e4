"""The ``txbittorrent`` command line.

Each subcommand lives in ``txbittorrent.commands.<name>`` and provides
``add_parser(subparsers)`` and ``run(args) -> int``.  Anticipated failures
(``TxBitTorrentError``, ``OSError``) print one line on stderr and exit 1; a
usage error exits 2 (argparse); Ctrl-C exits 130.  Never a traceback.

Only the command being run is imported: ``build_parser(argv)`` looks at the
command word of ``argv`` and, when it names one of ``COMMANDS``, registers
that module alone, so that ``txbittorrent download`` never imports the
daemon's client, the tracker server or ``create``'s hashing (start-up time
is part of every download).  Without a command word that one module
handles (``--help``, a typo, or one of ``cmds``' many commands) every
module is registered, as ``build_parser()`` with no ``argv`` does.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
from collections.abc import Sequence
from typing import NoReturn

from txbittorrent.errors import TxBitTorrentError

COMMANDS = (
    "info", "create", "verify", "download", "seed", "demo", "serve", "cmds", "tracker", "share",
)
MULTI = frozenset({"cmds"})
"""Modules that register several commands under other names than their own."""


def command_word(argv: Sequence[str]) -> str | None:
    """The subcommand ``argv`` names: its first word that is no option (the
    top-level parser takes no option with a value)."""
    for word in argv:
        if not word.startswith("-"):
            return word
    return None


def modules_for(argv: Sequence[str] | None) -> tuple[str, ...]:
    """The command modules to register for ``argv`` (None: all of them)."""
    if argv is not None:
        word = command_word(argv)
        if word in COMMANDS and word not in MULTI:
            return (word,)
    return tuple(COMMANDS)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or with ``argv`` only of the one it runs."""
    parser = argparse.ArgumentParser(
        prog="txbittorrent", description="A BitTorrent client built on Twisted."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in modules_for(argv):
        module = importlib.import_module(f"txbittorrent.commands.{name}")
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(arguments)
    args = parser.parse_args(arguments)
    try:
        return int(args.run(args))
    except KeyboardInterrupt:
        print("txbittorrent: interrupted", file=sys.stderr)
        return 130
    except (TxBitTorrentError, OSError) as e:
        print(f"txbittorrent {args.command}: error: {e}", file=sys.stderr)
        return 1


def console_main() -> NoReturn:
    """The ``txbittorrent`` program: ``main()``, then exit.

    Before exiting, every object is moved out of the garbage collector's
    sight (``gc.freeze``): the interpreter's collections at exit would walk
    them all for nothing (the process ends), about 45 ms of a download's
    exit here.  Not in ``main``, which tests call in-process."""
    code = main()
    gc.freeze()
    sys.exit(code)


if __name__ == "__main__":  # pragma: no cover
    console_main()
