"""The command framework: a command defined once, run in-process or
against a daemon with the same output.

Theory of operation
-------------------
After go-ipfs-cmds' idea (a command is a description of its arguments and
a function that *emits values*; where it runs and how the values are
printed are someone else's business):

* ``Command(name, help, run, arguments, text=..., text_each=...)``: ``run``
  is ``async run(ctx)``; it talks to the daemon only through ``ctx.api``
  (an ``ApiClient``) and calls ``ctx.emit(value)`` with each JSON object
  the API gave (its shapes, unchanged).
* An emitter prints the values: ``JsonLines`` writes one compact JSON
  object per line as each comes; ``TextOutput`` writes human lines, either
  one per value as it comes (``text_each``, for a stream such as
  ``events``) or all together once the command ends (``text``, for tables
  whose columns need every row).
* ``CommandRunner(command, args, out=, err=)`` chooses the ``ApiClient``
  (``connect``: ``--api URL``; ``--offline``; else STATE_DIR/api.json's
  daemon if it answers, and the in-process ``LocalDaemon`` when the file is
  absent or the connection is refused), runs the command over it and, in
  the in-process mode, stops the daemon afterwards, and also before the
  reactor shuts down on Ctrl-C.

Errors the user should read as one line are ``TxBitTorrentError``s
(``CommandError``, ``ApiError``): ``cli.main`` prints them as
``txbittorrent CMD: error: msg`` and exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import re
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, TextIO

from txbittorrent.commands.cmds.client import (
    ApiClient,
    ApiFile,
    DaemonUnreachable,
    LocalDaemon,
    RemoteApi,
    read_api_file,
)
from txbittorrent.daemon.lock import DaemonRunningError
from txbittorrent.errors import TxBitTorrentError
from txbittorrent.source import bare_info_hash

__all__ = ["Arg", "Command", "Context", "CommandError", "CommandRunner", "JsonLines",
           "TextOutput", "add_global_options", "resolve_info_hash", "connect", "TOKEN_ENV",
           "DEFAULT_STATE_DIR"]

TOKEN_ENV = "TXBITTORRENT_TOKEN"
DEFAULT_STATE_DIR = os.path.join("~", ".txbittorrent")
_HEX = re.compile(r"\A[0-9a-f]{1,40}\Z")


class CommandError(TxBitTorrentError):
    """A command cannot do what it was asked (a message for the user)."""


@dataclass(frozen=True, slots=True)
class Arg:
    """One argparse argument: its names and ``add_argument`` keywords."""

    names: tuple[str, ...]
    options: Mapping[str, Any] = field(default_factory=dict)


def arg(*names: str, **options: Any) -> Arg:
    return Arg(names, options)


@dataclass(slots=True)
class Context:
    """What a command's ``run`` gets: the API, its arguments, where values
    go, a note channel (stderr) and the clock (for waiting)."""

    api: ApiClient
    args: argparse.Namespace
    emit: Callable[[Any], None]
    note: Callable[[str], None]
    clock: Any


Run = Callable[[Context], Awaitable[None]]
TextAll = Callable[[Sequence[Any]], Iterable[str]]
TextEach = Callable[[Any], Iterable[str]]


@dataclass(frozen=True, slots=True)
class Command:
    """A command: its name, help, arguments, the function emitting values,
    and how its values read as text (``text`` for all at the end, or
    ``text_each`` one by one; neither: JSON lines)."""

    name: str
    help: str
    run: Run
    arguments: tuple[Arg, ...] = ()
    text: TextAll | None = None
    text_each: TextEach | None = None


class JsonLines:
    """Each value as one line of compact JSON, at once."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def emit(self, value: Any) -> None:
        self.out.write(json.dumps(value, separators=(",", ":")) + "\n")
        self.out.flush()

    def close(self) -> None:
        pass


class TextOutput:
    """The command's human lines: per value or all together at ``close``."""

    def __init__(self, out: TextIO, command: Command) -> None:
        self.out = out
        self.command = command
        self.values: list[Any] = []

    def emit(self, value: Any) -> None:
        if self.command.text_each is not None:
            self._write(self.command.text_each(value))
        else:
            self.values.append(value)

    def close(self) -> None:
        if self.command.text_each is None:
            text = self.command.text
            if text is None:
                lines: Iterable[str] = (json.dumps(v) for v in self.values)
            else:
                lines = text(self.values)
            self._write(lines)

    def _write(self, lines: Iterable[str]) -> None:
        for line in lines:
            self.out.write(line + "\n")
        self.out.flush()


def add_global_options(p: argparse.ArgumentParser) -> None:
    """The options every command has."""
    p.add_argument("--state-dir", default=DEFAULT_STATE_DIR,
                   help="the daemon's state directory, as for serve (default: %(default)s)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--api", metavar="URL", default=None,
                       help="talk to the daemon at URL (token: --token, $"
                            f"{TOKEN_ENV} or STATE_DIR/api.json)")
    where.add_argument("--offline", action="store_true",
                       help="run in this process on STATE_DIR even if a daemon's api.json"
                            " is there (refused while a daemon runs)")
    p.add_argument("--token", default=None, help="the daemon's API token")
    p.add_argument("--json", action="store_true",
                   help="one JSON object per line (the API's shapes)")


async def resolve_info_hash(api: ApiClient, text: str) -> str:
    """A full lowercase hex info hash for ``text``: 40 hex digits or 32
    base32 as they are, or a unique hex prefix of a known torrent's."""
    wanted = text.strip().lower()
    if len(wanted) == 40 and _HEX.match(wanted):
        return wanted
    if len(wanted) == 32:
        parsed = bare_info_hash(text.strip())
        if parsed is not None:
            return parsed.hex()
    if not _HEX.match(wanted):
        raise CommandError(f"not an info hash or a prefix of one: {text!r}")
    listing = await api.call("GET", "/api/torrents")
    found = [t["info_hash"] for t in listing.get("torrents", ())
             if str(t.get("info_hash", "")).startswith(wanted)]
    if not found:
        raise CommandError(f"no torrent's info hash starts with {wanted}")
    if len(found) > 1:
        raise CommandError(f"{wanted} is ambiguous: {len(found)} torrents' info hashes"
                           " start with it")
    return str(found[0])


async def connect(args: argparse.Namespace, reactor: Any, err: TextIO,
                  environ: Mapping[str, str] | None = None,
                  ) -> tuple[ApiClient, LocalDaemon | None]:
    """The API the command talks to, and the in-process daemon when it
    started one (see the module docstring)."""
    env = os.environ if environ is None else environ
    state_dir = os.path.abspath(os.path.expanduser(args.state_dir))
    token = args.token or env.get(TOKEN_ENV) or None
    if args.api:
        if token is None:
            found = read_api_file(state_dir)
            token = found.token if found is not None else None
        return RemoteApi(_http_url(args.api), token, reactor=reactor), None
    if not args.offline:
        def rediscover() -> ApiFile | None:
            found = read_api_file(state_dir)
            return found if found is None or token is None else replace(found, token=token)

        found = rediscover()
        if found is not None:
            remote = RemoteApi(_http_url(found.url), found.token, reactor=reactor,
                               rediscover=rediscover)
            try:
                await remote.call("GET", "/api")
            except DaemonUnreachable as e:
                if not e.refused:
                    raise
                # a daemon that has gone: run here
            else:
                return remote, None
    local = LocalDaemon(state_dir, reactor=reactor, out=err)
    try:
        return await local.start(), local
    except DaemonRunningError as e:
        hint = ("leave out --offline to use it" if args.offline
                else "give its address with --api URL")
        raise CommandError(f"{e}; {hint}") from None


def _http_url(url: str) -> str:
    if not url.lower().startswith(("http://", "https://")):
        raise CommandError(f"the daemon's address {url!r} is not an http(s) URL: the commands"
                           " speak HTTP over TCP; give one with --api URL")
    return url


class CommandRunner:
    """Runs one ``Command`` for parsed ``args`` (see the module docstring)."""

    def __init__(self, command: Command, args: argparse.Namespace, *,
                 out: TextIO, err: TextIO) -> None:
        self.command = command
        self.args = args
        self.out = out
        self.err = err
        self.closing = False

    def _closing(self) -> None:
        self.closing = True

    def note(self, text: str) -> None:
        """A line on stderr, unless the reactor is shutting down (Ctrl-C:
        a dropped event stream is then no news)."""
        if self.closing:
            return
        self.err.write(f"txbittorrent {self.command.name}: {text}\n")
        self.err.flush()

    async def execute(self, api: ApiClient, clock: Any) -> None:
        """Run the command over ``api``, printing its values."""
        output: JsonLines | TextOutput
        output = JsonLines(self.out) if self.args.json else TextOutput(self.out, self.command)
        ctx = Context(api=api, args=self.args, emit=output.emit, note=self.note, clock=clock)
        await self.command.run(ctx)
        output.close()

    async def main(self, reactor: Any) -> int:
        """Connect, run, and stop an in-process daemon; the exit status."""
        reactor.addSystemEventTrigger("before", "shutdown", self._closing)
        api, local = await connect(self.args, reactor, self.err)
        if local is None:
            await self.execute(api, reactor)
            return 0
        trigger = reactor.addSystemEventTrigger("before", "shutdown", local.stop)
        try:
            await self.execute(api, reactor)
        except Exception:  # not GeneratorExit: on Ctrl-C the trigger stops it
            reactor.removeSystemEventTrigger(trigger)
            await local.stop()
            raise
        reactor.removeSystemEventTrigger(trigger)
        await local.stop()
        return 0
