"""The command set that runs in-process or against a daemon (issue 10).

``cli.COMMANDS`` names this package once; ``add_parser`` registers every
command of the groups below (``torrents``, ``details``, ``follow``) with
the global options (``framework.add_global_options``), and ``run`` runs one
through a ``CommandRunner`` under the reactor (``_react.react``)."""

from __future__ import annotations

import argparse
import sys
from functools import partial
from typing import Any

from txbittorrent.commands.cmds import details, follow, torrents
from txbittorrent.commands.cmds.framework import Command, CommandRunner, add_global_options

__all__ = ["ALL", "add_parser", "run"]

ALL: tuple[Command, ...] = (*torrents.COMMANDS, *details.COMMANDS, *follow.COMMANDS)


def add_parser(sub: Any) -> None:
    """Add every command to ``sub`` (argparse subparsers)."""
    for command in ALL:
        p = sub.add_parser(command.name, help=command.help, description=command.help)
        for argument in command.arguments:
            p.add_argument(*argument.names, **argument.options)
        add_global_options(p)
        p.set_defaults(run=partial(run, command))


def run(command: Command, args: argparse.Namespace) -> int:
    """Run ``command`` for ``args``; its exit status."""
    from txbittorrent.commands._react import react

    runner = CommandRunner(command, args, out=sys.stdout, err=sys.stderr)
    return react(runner.main)
