"""Tests for ``txbittorrent info TORRENT_ID`` (txbittorrent.commands.info)
and the short reactor run under it (txbittorrent.commands._react), without
the network: a .torrent, a magnet and a bare hash as they stand, a URL
through a stubbed fetch, ``--fetch`` over a fake Torrent on a FakeReactor
(the metadata, the timeout, Ctrl-C), and ``--save-torrent``."""

from __future__ import annotations

import io
import json
import os
import sys
from types import SimpleNamespace
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

import txbittorrent.core.metainfo as metainfo_module
import txbittorrent.torrent as torrent_module
from txbittorrent.commands import _react, cli, info
from txbittorrent.commands._source import FetchError
from txbittorrent.core.magnet import Magnet
from txbittorrent.core.metainfo import parse
from txbittorrent.errors import MetainfoError
from txbittorrent.testing import FakeReactor, make_torrent

RAW = make_torrent({"a.bin": 100, ".pad/16284": 16284, "b.bin": 50}, 16 * 1024,
                   attrs={".pad/16284": b"p"})
METAINFO = parse(RAW)
HEX = METAINFO.info_hash_hex
MAGNET_URI = (f"magnet:?xt=urn:btih:{HEX}&dn=fromlink&tr=http%3A%2F%2Ftracker.test%2Fa"
              f"&x.pe=127.0.0.1:7000")


class FakeTorrent:
    """What ``info.fetch_metadata`` uses of a Torrent."""

    made: list[FakeTorrent] = []

    def __init__(self, source: Any, **kwargs: Any) -> None:
        self.source = source
        self.kwargs = kwargs
        self.metainfo: Any = None
        self.calls: list[str] = []
        self.added_peers: list[tuple[str, int]] = []
        self.subscribers: list[Any] = []
        self.peer_list: list[Any] = []
        FakeTorrent.made.append(self)

    def subscribe(self, callback: Any, kinds: Any = None) -> Any:
        self.subscribers.append(callback)
        return SimpleNamespace(cancel=lambda: self.subscribers.remove(callback))

    def start(self) -> Deferred[None]:
        self.calls.append("start")
        return succeed(None)

    def stop(self) -> Deferred[None]:
        self.calls.append("stop")
        return succeed(None)

    def add_peers(self, peers: Any) -> None:
        self.added_peers.extend(peers)

    def peers(self) -> list[Any]:
        return self.peer_list

    def trackers(self) -> list[list[Any]]:
        return [[SimpleNamespace(url="http://tracker.test/a")]]

    def metadata_arrives(self) -> None:
        self.metainfo = METAINFO
        for callback in list(self.subscribers):
            callback(SimpleNamespace(kind="metadata_received"))


def run_on(reactor: FakeReactor) -> Any:
    """A stand-in for ``_react.react`` that runs ``main`` on ``reactor`` and
    needs it to finish at once."""

    def react(main: Any) -> Any:
        d = Deferred.fromCoroutine(main(reactor))
        results: list[Any] = []
        d.addBoth(results.append)
        (result,) = results
        if isinstance(result, Failure):
            result.raiseException()
        return result

    return react


class InfoCase(SynchronousTestCase):
    def setUp(self) -> None:
        self.out, self.err = io.StringIO(), io.StringIO()
        self.patch(sys, "stdout", self.out)
        self.patch(sys, "stderr", self.err)
        self.root = os.path.abspath(self.mktemp())
        os.makedirs(self.root)
        self.torrent_path = os.path.join(self.root, "t.torrent")
        with open(self.torrent_path, "wb") as f:
            f.write(RAW)

    def info(self, *argv: str) -> int:
        return cli.main(["info", *argv])


class InfoLocalTests(InfoCase):
    """What needs no network: a .torrent, a magnet, a bare hash."""

    def test_torrent(self) -> None:
        """A .torrent: its facts, files without the pad file."""
        self.assertEqual(self.info(self.torrent_path), 0)
        text = self.out.getvalue()
        self.assertIn(f"info hash:    {HEX}\n", text)
        self.assertIn("files (2):\n", text)
        self.assertNotIn(".pad", text)

    def test_magnet(self) -> None:
        """A magnet without --fetch: what the link says, as JSON too."""
        self.assertEqual(self.info(MAGNET_URI, "--json"), 0)
        facts = json.loads(self.out.getvalue())
        self.assertEqual((facts["name"], facts["info_hash"], facts["trackers"], facts["peers"]),
                         ("fromlink", HEX, [["http://tracker.test/a"]], ["127.0.0.1:7000"]))
        self.assertNotIn("files", facts)

    def test_bare_hash(self) -> None:
        """A bare info hash: the hash and its magnet link."""
        self.assertEqual(self.info(HEX.upper()), 0)
        self.assertEqual(self.out.getvalue(), f"name:         (unknown)\ninfo hash:    {HEX}\n"
                                              f"magnet:       magnet:?xt=urn:btih:{HEX}\n")

    def test_save_torrent(self) -> None:
        """--save-torrent with a .torrent writes its info and trackers."""
        calls: list[Any] = []

        def torrent_bytes(info_bytes: bytes, trackers: Any) -> bytes:
            calls.append((info_bytes, trackers))
            return b"saved"

        self.patch(metainfo_module, "torrent_bytes", torrent_bytes)
        path = os.path.join(self.root, "copy.torrent")
        self.assertEqual(self.info(self.torrent_path, "--save-torrent", path), 0)
        with open(path, "rb") as f:
            self.assertEqual(f.read(), b"saved")
        self.assertEqual(calls, [(METAINFO.info_bytes, METAINFO.trackers)])

    def test_save_torrent_needs_fetch(self) -> None:
        """--save-torrent with a magnet and no --fetch is a usage error."""
        e = self.assertRaises(SystemExit, self.info, MAGNET_URI, "--save-torrent", "x.torrent")
        self.assertEqual(e.code, 2)
        self.assertIn("--save-torrent needs the metadata: add --fetch", self.err.getvalue())

    def test_errors(self) -> None:
        """A bad magnet and a missing file: one line, exit 1."""
        for argv, fragment in ((["magnet:?xt=urn:btih:00"], "invalid magnet link"),
                               ([os.path.join(self.root, "no.torrent")], "no such file"),
                               (["--timeout", "1", HEX, "--fetch", "--save-torrent",
                                 os.path.join(self.root, "no", "x")], "no such directory")):
            self.err.truncate(0)
            self.err.seek(0)
            self.assertEqual(self.info(*argv), 1, argv)
            self.assertEqual(self.err.getvalue().count("\n"), 1)
            self.assertIn(fragment, self.err.getvalue())


class InfoURLTests(InfoCase):
    """A URL: fetched (stubbed here), then shown as a .torrent."""

    def setUp(self) -> None:
        super().setUp()
        self.patch(info, "react", run_on(FakeReactor()))
        self.fetched: list[tuple[str, float]] = []

    def fetch(self, result: Any) -> None:
        async def fetch_torrent(reactor: Any, url: str, timeout: float) -> Any:
            self.fetched.append((url, timeout))
            if isinstance(result, BaseException):
                raise result
            return result

        self.patch(info, "fetch_torrent", fetch_torrent)

    def test_fetched(self) -> None:
        """The torrent at the URL is shown; --timeout reaches the fetch."""
        self.fetch(METAINFO)
        self.assertEqual(self.info("http://h.test/t.torrent", "--timeout", "3", "--json"), 0)
        self.assertEqual(self.fetched, [("http://h.test/t.torrent", 3.0)])
        self.assertEqual(json.loads(self.out.getvalue())["info_hash"], HEX)

    def test_default_timeout(self) -> None:
        """Without --timeout a URL gets FETCH_TIMEOUT."""
        self.fetch(METAINFO)
        self.info("https://h.test/t.torrent")
        self.assertEqual(self.fetched, [("https://h.test/t.torrent", 30.0)])

    def test_failures(self) -> None:
        """An unreachable URL or a body that is not a torrent: one line, exit 1."""
        for error in (FetchError("http://h.test/t", "Connection was refused"),
                      MetainfoError("http://h.test/t: torrent", "invalid bencoding")):
            self.fetch(error)
            self.err.truncate(0)
            self.err.seek(0)
            self.assertEqual(self.info("http://h.test/t"), 1)
            self.assertEqual(self.err.getvalue(), f"txbittorrent info: error: {error}\n")


class FetchMetadataTests(SynchronousTestCase):
    """``info.fetch_metadata``: a torrent started just for the metadata."""

    def setUp(self) -> None:
        FakeTorrent.made = []
        self.patch(torrent_module, "Torrent", FakeTorrent)
        self.reactor = FakeReactor()
        self.magnet = Magnet(METAINFO.info_hash)

    def fetch(self, *argv: str) -> Deferred[Any]:
        args = cli.build_parser().parse_args(["info", HEX, "--fetch", *argv])
        return Deferred.fromCoroutine(info.fetch_metadata(self.reactor, self.magnet, args))

    def test_metadata(self) -> None:
        """Fires with the metainfo and the torrent's trackers once it arrives;
        the torrent is stopped and its temporary directory gone."""
        d = self.fetch("--peer", "127.0.0.1:7000", "--no-pex", "--interface", "127.0.0.1")
        t = FakeTorrent.made[0]
        self.assertIs(t.source, self.magnet)
        workdir = t.kwargs["basedir"]
        self.assertTrue(os.path.isdir(workdir))
        self.assertEqual((t.kwargs["pex"], t.kwargs["listen_interfaces"]),
                         (False, ["127.0.0.1"]))
        self.assertEqual(t.added_peers, [("127.0.0.1", 7000)])
        self.assertNoResult(d)
        t.metadata_arrives()
        got = self.successResultOf(d)
        self.assertEqual(got.info_hash, METAINFO.info_hash)
        self.assertEqual(got.trackers, (("http://tracker.test/a",),))
        self.assertEqual(t.calls, ["start", "stop"])
        self.assertFalse(os.path.exists(workdir))
        self.assertEqual(self.reactor.getDelayedCalls(), [])
        self.assertEqual(t.subscribers, [])

    def test_timeout(self) -> None:
        """No metadata within --timeout: a one-line error naming the hash and
        the peers; the torrent is stopped and the directory gone."""
        d = self.fetch("--timeout", "5")
        t = FakeTorrent.made[0]
        t.peer_list = [object()]
        self.reactor.advance(4.9)
        self.assertNoResult(d)
        self.reactor.advance(0.1)
        f = self.failureResultOf(d, info.MetadataTimeout)
        self.assertEqual(str(f.value), f"no metadata for {HEX} after 5 s (1 peer connected)")
        self.assertEqual(t.calls, ["start", "stop"])
        self.assertFalse(os.path.exists(t.kwargs["basedir"]))
        self.assertEqual(t.subscribers, [])

    def test_default_timeout(self) -> None:
        """Without --timeout it waits METADATA_TIMEOUT seconds."""
        d = self.fetch()
        self.reactor.advance(info.METADATA_TIMEOUT - 1)
        self.assertNoResult(d)
        self.reactor.advance(1)
        self.failureResultOf(d, info.MetadataTimeout)

    def test_interrupted(self) -> None:
        """Ctrl-C (the reactor shutting down) stops the torrent and removes
        the directory though the coroutine never resumes."""
        d = self.fetch()
        t = FakeTorrent.made[0]
        for result in self.reactor.fire_system_event("shutdown"):
            self.successResultOf(result)
        self.assertEqual(t.calls, ["start", "stop"])
        self.assertFalse(os.path.exists(t.kwargs["basedir"]))
        self.assertNoResult(d)
        self.reactor.advance(info.METADATA_TIMEOUT)  # the deadline still ends it
        self.failureResultOf(d, info.MetadataTimeout)

    def test_through_run(self) -> None:
        """info MAGNET --fetch prints the real file list, with the magnet's trackers."""
        out = io.StringIO()
        self.patch(sys, "stdout", out)

        def start(torrent: FakeTorrent) -> Deferred[None]:
            torrent.calls.append("start")
            self.reactor.callLater(1, torrent.metadata_arrives)
            return succeed(None)

        self.patch(FakeTorrent, "start", start)

        def react(main: Any) -> Any:
            d = Deferred.fromCoroutine(main(self.reactor))
            self.reactor.advance(1)
            return self.successResultOf(d)

        self.patch(info, "react", react)
        self.assertEqual(cli.main(["info", MAGNET_URI, "--fetch", "--json"]), 0)
        facts = json.loads(out.getvalue())
        self.assertEqual([f["path"] for f in facts["files"] if not f["pad"]],
                         [f"{METAINFO.name}/a.bin", f"{METAINFO.name}/b.bin"])
        self.assertEqual(facts["trackers"], [["http://tracker.test/a"]])
        self.assertIn("tr=http://tracker.test/a", facts["magnet"])


class FakeReact:
    """Stands in for ``task.react``: runs ``main`` on a FakeReactor; with
    ``interrupt`` the reactor "stops" before ``main`` is done."""

    def __init__(self, reactor: FakeReactor, interrupt: bool = False) -> None:
        self.reactor = reactor
        self.interrupt = interrupt

    def __call__(self, main: Any) -> None:
        d = main(self.reactor)
        if self.interrupt:
            raise SystemExit(0)
        failures: list[Failure] = []
        d.addErrback(failures.append)
        if not failures:
            raise SystemExit(0)
        if failures[0].check(SystemExit):
            raise SystemExit(failures[0].value.code)
        raise SystemExit(1)


class ReactTests(SynchronousTestCase):
    """``_react.react``: the result, the error, or Ctrl-C."""

    def react(self, main: Any, interrupt: bool = False) -> Any:
        import twisted.internet.task as task_module

        self.patch(task_module, "react", FakeReact(FakeReactor(), interrupt))
        self.patch(_react, "start_logging", lambda: None)
        return _react.react(main)

    def test_result(self) -> None:
        """main's result comes back."""

        async def main(reactor: Any) -> int:
            return 42

        self.assertEqual(self.react(main), 42)

    def test_anticipated(self) -> None:
        """An anticipated error is raised again for cli.main to print."""

        async def main(reactor: Any) -> int:
            raise FetchError("http://x/", "boom")

        e = self.assertRaises(FetchError, self.react, main)
        self.assertEqual(str(e), "http://x/: boom")

    def test_interrupted(self) -> None:
        """The reactor stopping first is KeyboardInterrupt (exit 130 in cli.main)."""

        async def main(reactor: Any) -> int:
            await Deferred()
            return 0

        self.assertRaises(KeyboardInterrupt, self.react, main, True)

    def test_bug(self) -> None:
        """Anything else is left to react (logged with its traceback): exit 1."""

        async def main(reactor: Any) -> int:
            raise KeyError("bug")

        e = self.assertRaises(SystemExit, self.react, main)
        self.assertEqual(e.code, 1)
