"""The local/remote command set: the framework, each command's calls and
values, and the human formats, over a fake ``ApiClient`` (no daemon)."""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase

from txbittorrent.commands import cli, cmds
from txbittorrent.commands.cmds.client import ApiError
from txbittorrent.commands.cmds.details import parse_limit, parse_priority_setting
from txbittorrent.commands.cmds.follow import RECONNECT_DELAYS, event_line
from txbittorrent.commands.cmds.framework import CommandError, CommandRunner, resolve_info_hash
from txbittorrent.commands.cmds.sse import SSEMessage
from txbittorrent.commands.cmds.text import table

IH = "0123456789abcdef0123456789abcdef01234567"
IH2 = "01ffffffffffffffffffffffffffffffffffffff"
IH3 = "abcdefabcdefabcdefabcdefabcdefabcdefabcd"


def torrent(ih: str = IH, **changes: Any) -> dict[str, Any]:
    view = {
        "info_hash": ih, "name": "movie", "state": "downloading", "has_metadata": True,
        "size": 3 * 1024 * 1024, "left": 1024 * 1024, "progress": 2 / 3, "piece_count": 12,
        "uploaded": 0, "downloaded": 2 * 1024 * 1024, "download_rate": 1536,
        "upload_rate": 0, "peers": 2, "save_path": "/data",
    }
    view.update(changes)
    return view


class FakeApi:
    """An ``ApiClient`` answering from a table, recording every call."""

    def __init__(self, answers: dict[tuple[str, str], Any] | None = None) -> None:
        self.answers = answers or {}
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.streams: list[tuple[str, Any, str | None]] = []
        self.stream_results: list[Callable[[Callable[[SSEMessage], None]], Deferred[None]]] = []

    def call(self, method: str, path: str, **kwargs: Any) -> Deferred[Any]:
        self.calls.append((method, path, {k: v for k, v in kwargs.items() if v is not None}))
        answer = self.answers.get((method, path), {})
        if isinstance(answer, Exception):
            return fail(answer)
        return succeed(answer)

    def stream(self, path: str, query: Any, last_event_id: str | None,
               on_message: Callable[[SSEMessage], None]) -> Deferred[None]:
        self.streams.append((path, query, last_event_id))
        if not self.stream_results:
            return Deferred()  # follows forever
        return self.stream_results.pop(0)(on_message)


def parse(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers(dest="command")
    cmds.add_parser(sub)
    return parser.parse_args(argv)


def command(name: str) -> Any:
    return next(c for c in cmds.ALL if c.name == name)


class Run:
    """One command run over a FakeApi: its stdout, stderr and Deferred."""

    def __init__(self, test: TestCase, api: FakeApi, argv: Sequence[str],
                 clock: Any = None) -> None:
        args = parse(argv)
        self.out, self.err = io.StringIO(), io.StringIO()
        runner = CommandRunner(command(args.command), args, out=self.out, err=self.err)
        self.done = Deferred.fromCoroutine(runner.execute(api, clock or Clock()))

    def lines(self) -> list[str]:
        return self.out.getvalue().splitlines()


class RegistrationTests(TestCase):
    """The commands in the CLI."""

    def test_registered(self) -> None:
        """Every command is a subcommand of ``txbittorrent``; the old ones stay."""
        parser = cli.build_parser()
        names = set(parser._subparsers._group_actions[0].choices)  # type: ignore[union-attr]
        expected = {"add", "list", "status", "start", "pause", "stop", "remove", "files",
                    "peers", "trackers", "limits", "events", "recheck", "stats", "download", "info", "create",
                    "verify", "seed", "demo", "serve"}
        self.assertEqual(expected - names, set())

    def test_global_options(self) -> None:
        """Each command takes --state-dir, --api, --token, --offline and --json;
        --api and --offline exclude each other."""
        args = parse(["peers", IH, "--api", "http://127.0.0.1:1", "--token", "t", "--json",
                      "--state-dir", "/s"])
        self.assertEqual((args.api, args.token, args.json, args.state_dir, args.offline),
                         ("http://127.0.0.1:1", "t", True, "/s", False))
        self.patch(sys, "stderr", io.StringIO())
        self.assertRaises(SystemExit, parse, ["list", "--api", "http://x", "--offline"])
        self.assertIn("not allowed", sys.stderr.getvalue())


class ResolveTests(TestCase):
    """resolve_info_hash: full hashes as they are, prefixes through the list."""

    def setUp(self) -> None:
        listing = {"torrents": [torrent(IH), torrent(IH2), torrent(IH3)]}
        self.api = FakeApi({("GET", "/api/torrents"): listing})

    def resolve(self, text: str) -> Deferred[str]:
        return Deferred.fromCoroutine(resolve_info_hash(self.api, text))

    def test_full(self) -> None:
        """40 hex digits (any case) are used without asking the daemon."""
        self.assertEqual(self.successResultOf(self.resolve(IH.upper())), IH)
        self.assertEqual(self.api.calls, [])

    def test_base32(self) -> None:
        """32 base32 characters are converted to hex."""
        import base64

        b32 = base64.b32encode(bytes.fromhex(IH3)).decode()
        self.assertEqual(self.successResultOf(self.resolve(b32)), IH3)

    def test_unique_prefix(self) -> None:
        """A prefix matching one torrent names it."""
        self.assertEqual(self.successResultOf(self.resolve("0123")), IH)
        self.assertEqual(self.successResultOf(self.resolve("AB")), IH3)

    def test_ambiguous_unknown_and_bad(self) -> None:
        """A prefix of two, of none, or not hex is a CommandError saying so."""
        error = self.failureResultOf(self.resolve("01"), CommandError)
        self.assertIn("ambiguous", str(error.value))
        error = self.failureResultOf(self.resolve("99"), CommandError)
        self.assertIn("no torrent", str(error.value))
        self.failureResultOf(self.resolve("xyz"), CommandError)


class OutputTests(TestCase):
    """JSON lines and human tables from the same values."""

    def test_list_json(self) -> None:
        """--json: one compact line per torrent, the API's objects unchanged."""
        api = FakeApi({("GET", "/api/torrents"): {"torrents": [torrent(IH), torrent(IH3)]}})
        run = Run(self, api, ["list", "--json"])
        self.successResultOf(run.done)
        self.assertEqual([json.loads(line) for line in run.lines()],
                         [torrent(IH), torrent(IH3)])
        self.assertNotIn(" ", run.lines()[0].replace("movie", ""))

    def test_list_text(self) -> None:
        """The table: short hash, state, done, size, rates, peers, name."""
        magnet = torrent(IH3, name=None, has_metadata=False, state="metadata", size=0,
                         progress=0.0, download_rate=0, peers=0)
        api = FakeApi({("GET", "/api/torrents"): {"torrents": [torrent(IH), magnet]}})
        run = Run(self, api, ["list", "--label", "tv"])
        self.successResultOf(run.done)
        self.assertEqual(run.lines(), [
            "HASH      STATE         DONE     SIZE       DOWN     UP  PEERS  NAME",
            "01234567  downloading  66.7%  3.0 MiB  1.5 KiB/s  0 B/s      2  movie",
            "abcdefab  metadata         -        ?      0 B/s  0 B/s      0  -",
        ])
        self.assertEqual(api.calls, [("GET", "/api/torrents", {"query": {"label": "tv"}})])

    def test_status_text(self) -> None:
        """status: labelled lines; labels, limits and times when the view has them."""
        view = torrent(labels=["tv", "hd"], download_limit=512000, upload_limit=None,
                       added_at=0, completed_at=None)
        api = FakeApi({("GET", f"/api/torrents/{IH}"): view})
        run = Run(self, api, ["status", IH])
        self.successResultOf(run.done)
        self.assertEqual(run.lines(), [
            "Name:        movie",
            f"Info hash:   {IH}",
            "State:       downloading",
            "Progress:    66.7% (2.0 MiB of 3.0 MiB, 1.0 MiB left)",
            "Pieces:      12",
            "Downloaded:  2.0 MiB  (1.5 KiB/s)",
            "Uploaded:    0 B  (0 B/s)",
            "Peers:       2",
            "Save path:   /data",
            "Labels:      tv, hd",
            "Down limit:  500.0 KiB/s",
            "Up limit:    unlimited",
            "Added:       1970-01-01 00:00:00 UTC",
            "Completed:   -",
        ])

    def test_table(self) -> None:
        """Columns are padded to the widest cell; the last is never padded."""
        self.assertEqual(table(("A", "BB", "C"), [(1, "x", "long name"), (22, "yyy", "z")],
                               right=frozenset({0})),
                         [" A  BB   C", " 1  x    long name", "22  yyy  z"])

    def test_error_propagates(self) -> None:
        """The daemon's error reaches the caller as ApiError, nothing printed."""
        api = FakeApi({("GET", f"/api/torrents/{IH}"): ApiError(404, f"no torrent {IH}")})
        run = Run(self, api, ["status", IH])
        failure = self.failureResultOf(run.done, ApiError)
        self.assertEqual(str(failure.value), f"no torrent {IH}")
        self.assertEqual(run.out.getvalue(), "")


class CommandCallsTests(TestCase):
    """What each command asks of the API."""

    def test_add_magnet(self) -> None:
        """A magnet URI goes as JSON with the options given."""
        api = FakeApi({("POST", "/api/torrents"): torrent()})
        run = Run(self, api, ["add", "magnet:?xt=urn:btih:" + IH, "--paused", "--label", "a",
                              "--label", "b", "--save-path", "/srv/x"])
        self.successResultOf(run.done)
        self.assertEqual(api.calls, [("POST", "/api/torrents", {"body": {
            "source": "magnet:?xt=urn:btih:" + IH, "paused": True, "save_path": "/srv/x",
            "labels": ["a", "b"]}})])
        self.assertEqual(run.lines(), [f"added {IH}  movie"])

    def test_add_info_hash_and_url(self) -> None:
        """An info hash or an http(s) URL goes as the JSON source."""
        for source in (IH, "https://example.org/a.torrent"):
            api = FakeApi()
            self.successResultOf(Run(self, api, ["add", source]).done)
            self.assertEqual(api.calls[0][2], {"body": {"source": source}})

    def test_add_file(self) -> None:
        """A .torrent path is read and uploaded; options in the query; a
        relative save path is made absolute here."""
        path = self.mktemp()
        with open(path, "wb") as f:
            f.write(b"d4:infode")
        api = FakeApi()
        self.successResultOf(Run(self, api, ["add", path, "--files", "0,2-3", "--paused",
                                             "--save-path", "rel", "--label", "x"]).done)
        self.assertEqual(api.calls, [("POST", "/api/torrents", {
            "data": b"d4:infode", "content_type": "application/x-bittorrent",
            "query": {"paused": "1", "save_path": os.path.abspath("rel"), "files": "0,2,3",
                      "labels": ["x"]}})])

    def test_add_nonsense(self) -> None:
        """A source that is none of those is a CommandError; nothing is sent."""
        api = FakeApi()
        self.failureResultOf(Run(self, api, ["add", "no-such-file"]).done, CommandError)
        self.assertEqual(api.calls, [])

    def test_life_cycle_and_remove(self) -> None:
        """start/pause/stop POST to their route; remove DELETEs, with delete_data=1."""
        for action in ("start", "pause", "stop"):
            api = FakeApi({("POST", f"/api/torrents/{IH}/{action}"): torrent(state=action)})
            run = Run(self, api, [action, IH])
            self.successResultOf(run.done)
            self.assertEqual(api.calls, [("POST", f"/api/torrents/{IH}/{action}", {})])
            self.assertEqual(run.lines(), [f"{IH}  {action}  movie"])
        api = FakeApi({("DELETE", f"/api/torrents/{IH}"): {"info_hash": IH, "removed": True}})
        run = Run(self, api, ["remove", IH, "--delete-data"])
        self.successResultOf(run.done)
        self.assertEqual(api.calls, [("DELETE", f"/api/torrents/{IH}",
                                      {"query": {"delete_data": "1"}})])
        self.assertEqual(run.lines(), [f"removed {IH}"])

    def test_files_set(self) -> None:
        """files --set posts the priorities, then lists the files."""
        files = {"files": [{"index": 0, "path": "a/b.bin", "length": 2048, "priority": 1},
                           {"index": 1, "path": "c.txt", "length": 5, "priority": 0}]}
        api = FakeApi({("POST", f"/api/torrents/{IH}/files"): files})
        run = Run(self, api, ["files", IH, "--set", "1=skip", "--set", "0=1"])
        self.successResultOf(run.done)
        self.assertEqual(api.calls, [("POST", f"/api/torrents/{IH}/files",
                                      {"body": {"files": {"1": 0, "0": 1}}})])
        self.assertEqual(run.lines(), ["#  PRIO     SIZE  PATH", "0  1     2.0 KiB  a/b.bin",
                                       "1  skip      5 B  c.txt"])

    def test_trackers_add_remove(self) -> None:
        """trackers removes, adds (with the tier), then lists."""
        api = FakeApi({("GET", f"/api/torrents/{IH}/trackers"): {"trackers": [
            {"url": "http://t/a", "tier": 0, "complete": 3, "incomplete": None,
             "last_error": None, "updating": False, "last_announce": 10,
             "next_announce": 0}]}})
        run = Run(self, api, ["trackers", IH, "--remove", "http://old/a", "--add", "http://t/a",
                              "--tier", "0"])
        self.successResultOf(run.done)
        path = f"/api/torrents/{IH}/trackers"
        self.assertEqual(api.calls, [
            ("DELETE", path, {"query": {"url": "http://old/a"}}),
            ("POST", path, {"body": {"url": "http://t/a", "tier": 0}}),
            ("GET", path, {}),
        ])
        self.assertEqual(run.lines(), [
            "TIER  URL         SEEDS  LEECHERS  STATUS",
            "   0  http://t/a      3         -  ok, next 1970-01-01 00:00:00 UTC",
        ])

    def test_limits(self) -> None:
        """limits reads without options; posts only what is given ('none': null)."""
        api = FakeApi({("GET", "/api/limits"): {"download_limit": None, "upload_limit": 1024}})
        run = Run(self, api, ["limits"])
        self.successResultOf(run.done)
        self.assertEqual(run.lines(), ["Down limit:  unlimited", "Up limit:    1.0 KiB/s"])
        api = FakeApi()
        self.successResultOf(Run(self, api, ["limits", IH, "--down", "none", "--json"]).done)
        self.assertEqual(api.calls, [("POST", f"/api/torrents/{IH}/limits",
                                      {"body": {"download_limit": None}})])

    def test_recheck_and_stats(self) -> None:
        """recheck POSTs its route; stats reads /api/stats as labelled lines."""
        api = FakeApi({("POST", f"/api/torrents/{IH}/recheck"): torrent(state="checking")})
        run = Run(self, api, ["recheck", IH])
        self.successResultOf(run.done)
        self.assertEqual(run.lines(), [f"{IH}  checking  movie"])
        stats = {"torrents": 2, "download_rate": 2048, "upload_rate": 0, "downloaded": 5,
                 "uploaded": 0, "peers": 3, "dht_nodes": None, "listen_port": 6881}
        run = Run(self, FakeApi({("GET", "/api/stats"): stats}), ["stats"])
        self.successResultOf(run.done)
        self.assertEqual(run.lines(), [
            "Torrents:    2", "Down:        2.0 KiB/s  (5 B in all)",
            "Up:          0 B/s  (0 B in all)", "Peers:       3", "DHT nodes:   off",
            "Listen port: 6881"])

    def test_peers_table(self) -> None:
        """peers: address (IPv6 bracketed), flags, done, rates, client."""
        peers = {"peers": [
            {"host": "::1", "port": 6881, "flags": "dE", "progress": 0.5,
             "download_rate": 1024, "upload_rate": 0, "client": "libtorrent 2.0"},
            {"host": "127.0.0.1", "port": 51413, "flags": "", "progress": 1.0,
             "download_rate": 0, "upload_rate": 10, "client": None}]}
        run = Run(self, FakeApi({("GET", f"/api/torrents/{IH}/peers"): peers}), ["peers", IH])
        self.successResultOf(run.done)
        self.assertEqual(run.lines(), [
            "ADDRESS          FLAGS    DONE       DOWN      UP  CLIENT",
            "[::1]:6881       dE      50.0%  1.0 KiB/s   0 B/s  libtorrent 2.0",
            "127.0.0.1:51413  -      100.0%      0 B/s  10 B/s  ?",
        ])

    def test_parsers(self) -> None:
        """INDEX=PRIO and rate limits parse; nonsense is an argparse error."""
        self.assertEqual(parse_priority_setting("3=0"), (3, 0))
        self.assertEqual(parse_priority_setting("3=Skip"), (3, 0))
        self.assertEqual(parse_priority_setting("2=7"), (2, 7))
        for bad in ("3", "a=1", "1=-1", "1=x"):
            self.assertRaises(argparse.ArgumentTypeError, parse_priority_setting, bad)
        self.assertEqual(parse_limit("500K"), 512000)
        self.assertIsNone(parse_limit("none"))
        self.assertIsNone(parse_limit("0"))


class EventsTests(TestCase):
    """events: follow, print, reconnect with Last-Event-ID."""

    def message(self, event_id: int, kind: str = "progress") -> SSEMessage:
        body = {"kind": kind, "info_hash": IH, "peers": 1, "event_id": event_id}
        return SSEMessage(kind, json.dumps(body), str(event_id))

    def test_reconnects_with_last_event_id(self) -> None:
        """After the stream drops, the command waits the first delay and
        reconnects with the last id it saw; every event is printed once."""
        api = FakeApi()

        def first(on_message: Callable[[SSEMessage], None]) -> Deferred[None]:
            on_message(self.message(1))
            on_message(SSEMessage("reset", '{"last_event_id": 5}', None))
            on_message(self.message(2, "state_changed"))
            return fail(ConnectionError("gone"))

        api.stream_results.append(first)
        clock = Clock()
        run = Run(self, api, ["events", "--json", "--torrent", IH], clock)
        self.assertEqual(api.streams, [("/api/events", {"ih": IH}, None)])
        self.assertEqual([json.loads(line)["event_id"] for line in run.lines()], [1, 2])
        self.assertIn("missed", run.err.getvalue())
        self.assertIn("reconnecting", run.err.getvalue())
        clock.advance(RECONNECT_DELAYS[0])
        self.assertEqual(api.streams[-1], ("/api/events", {"ih": IH}, "2"))
        self.assertNoResult(run.done)
        run.done.cancel()
        self.failureResultOf(run.done)

    def test_backoff(self) -> None:
        """Refused attempts in a row wait longer each time."""
        api = FakeApi()
        for _ in range(3):
            api.stream_results.append(lambda on_message: fail(ConnectionRefusedError()))
        clock = Clock()
        run = Run(self, api, ["events"], clock)
        clock.advance(RECONNECT_DELAYS[0])
        self.assertEqual(len(api.streams), 2)
        clock.advance(RECONNECT_DELAYS[1] - 0.01)
        self.assertEqual(len(api.streams), 2)
        clock.advance(0.01)
        self.assertEqual(len(api.streams), 3)
        run.done.cancel()
        self.failureResultOf(run.done)

    def test_api_error_ends(self) -> None:
        """An error answer (a wrong token) ends the command with it."""
        api = FakeApi()
        api.stream_results.append(lambda on_message: fail(ApiError(401, "bad token")))
        run = Run(self, api, ["events"])
        self.failureResultOf(run.done, ApiError)

    def test_event_line(self) -> None:
        """One event as one line: id, kind, short hash, its fields."""
        line = list(event_line({"kind": "peer_connected", "info_hash": IH, "event_id": 3,
                                "address": ["127.0.0.1", 6881], "time": 5}))
        self.assertEqual(line, ["[3] peer_connected 01234567 address=127.0.0.1:6881"])
