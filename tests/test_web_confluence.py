"""confluence's routes (web.confluence*) through real sockets on 127.0.0.1
(treq, and Twisted's WebSocket client), over a real Session: one real
two-file torrent seeding from disk, torrents by bare info hash waiting for
their metadata, an OnDemand policy and a StateStore; the clock of the waits
and the grace timers is a Clock."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Generator
from typing import Any
from urllib.parse import quote

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.task import Clock, deferLater
from twisted.trial.unittest import SkipTest
from twisted.web.resource import Resource

from tests.webcase import WebCase, WSClient, connect_ws, make_pool, open_store, serve
from txbittorrent.core.bencoding import decode, encode
from txbittorrent.core.metainfo import parse
from txbittorrent.daemon.ondemand import OnDemand
from txbittorrent.eventtypes import PiecePassed, StateChanged
from txbittorrent.state import TorrentState
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files, wait_until
from txbittorrent.web.confluence import confluence_resources
from txbittorrent.web.events import websocket_available

PIECE = 16 * 1024
UNKNOWN = "0123456789abcdef0123456789abcdef01234567"
DEAD_TRACKER = "http://127.0.0.1:1/announce"


class ConfluenceCase(WebCase):
    """A started Session, the confluence routes on 127.0.0.1 behind a plain
    Site, OnDemand on a Clock (grace 30 s), a StateStore, a treq pool."""

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        yield super().setUp()
        self.store = open_store(self, os.path.join(self.download_dir, "state.sqlite"))
        self.clock = Clock()
        self.on_demand = OnDemand(self.session, self.clock, 30, self.store,
                                  download_dir=self.download_dir)
        self.on_demand.start()
        self.addCleanup(self.on_demand.stop)
        self.children = confluence_resources(
            self.session, on_demand=self.on_demand, store=self.store,
            clock=self.clock, info_timeout=100,
        )
        root = Resource()
        for name, child in self.children.items():
            root.putChild(name, child)
        self.base = serve(self, root)
        self.pool = make_pool(self)

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        return treq.request(method, self.base + path, pool=self.pool, **kwargs)

    @inlineCallbacks
    def fetch(self, method: str, path: str, **kwargs: Any) -> Generator[Any, Any, Any]:
        response = yield self.request(method, path, **kwargs)
        body = yield treq.content(response)
        return response, body

    def files_and_raw(self, name: str = "t", seed: int = 5) -> tuple[dict[str, bytes], bytes]:
        """A two-file torrent's data under download_dir/<name>, and its .torrent."""
        files = make_files(os.path.join(self.download_dir, name),
                           {"a.mkv": 70_000, "sub dir/é & b.mp3": 1000, "c.txt": 10},
                           seed=seed)
        raw = create_torrent(os.path.join(self.download_dir, name), piece_length=PIECE)
        return files, raw

    @inlineCallbacks
    def seeding(self) -> Generator[Any, Any, Any]:
        """The two-file torrent, added from its .torrent and seeding."""
        self.files, self.raw = self.files_and_raw()
        torrent = self.session.add(self.raw, self.download_dir)
        yield torrent.start()
        yield torrent.when_complete()
        self.ih = torrent.info_hash.hex()
        return torrent

    def subscriptions(self) -> int:
        return len(self.session.events._subscriptions)


class DataTests(ConfluenceCase):
    """/data."""

    @inlineCallbacks
    def test_whole_file_and_range(self) -> Generator[Any, Any, None]:
        """The path as Torrent.files() gives it serves the file; a Range gets 206."""
        yield self.seeding()
        response, body = yield self.fetch("GET", f"/data?ih={self.ih}&path=t/a.mkv")
        self.assertEqual(response.code, 200)
        self.assertTrue(body == self.files["a.mkv"])
        self.assertEqual(response.headers.getRawHeaders("content-type"), ["video/x-matroska"])
        response, body = yield self.fetch("GET", f"/data?ih={self.ih}&path=t/a.mkv",
                                          headers={"Range": "bytes=-100"})
        self.assertEqual((response.code, body), (206, self.files["a.mkv"][-100:]))
        self.assertEqual(response.headers.getRawHeaders("content-range"),
                         ["bytes 69900-69999/70000"])

    @inlineCallbacks
    def test_display_path_and_encoding(self) -> Generator[Any, Any, None]:
        """confluence's display path (without the torrent's directory) works
        too, percent-encoded, in the query or as /data/infohash/<ih>/<path>;
        HEAD gives the length and no body."""
        yield self.seeding()
        path = quote("sub dir/é & b.mp3", safe="")
        response, body = yield self.fetch("GET", f"/data?ih={self.ih}&path={path}")
        self.assertEqual((response.code, body), (200, self.files["sub dir/é & b.mp3"]))
        response, body = yield self.fetch("GET", f"/data/infohash/{self.ih}/sub%20dir/"
                                          + quote("é & b.mp3"))
        self.assertEqual((response.code, body), (200, self.files["sub dir/é & b.mp3"]))
        response, _ = yield self.fetch("GET", f"/data/infohash/{self.ih}/t/nope")
        self.assertEqual(response.code, 404)
        response, _ = yield self.fetch("GET", f"/data/other/{self.ih}/t/c.txt")
        self.assertEqual(response.code, 404)
        response, body = yield self.fetch("HEAD", f"/data?ih={self.ih}&path=t%2Fc.txt")
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(response.headers.getRawHeaders("content-length"), ["10"])

    @inlineCallbacks
    def test_errors(self) -> Generator[Any, Any, None]:
        """No such file, unknown torrent: 404; malformed or missing ih, no
        path in a multi-file torrent, a magnet that is not one: 400; POST: 405.
        Errors are JSON."""
        yield self.seeding()
        cases = [
            ("GET", f"/data?ih={self.ih}&path=t/nope.mkv", 404),
            ("GET", f"/data?ih={self.ih}&path=../t/a.mkv", 404),
            ("GET", f"/data?ih={self.ih}&path=/etc/passwd", 404),
            ("GET", f"/data?ih={UNKNOWN}&path=x", 404),
            ("GET", "/data?ih=xyz&path=x", 400),
            ("GET", "/data?path=x", 400),
            ("GET", f"/data?ih={self.ih}", 400),
            ("GET", "/data?magnet=/etc/passwd&path=x", 400),
            ("GET", "/data?magnet=magnet:%3Fxt%3Dnope", 400),
            ("POST", f"/data?ih={self.ih}&path=t/a.mkv", 405),
        ]
        for method, path, code in cases:
            response, body = yield self.fetch(method, path)
            self.assertEqual(response.code, code, path)
            self.assertIn("error", json.loads(body), path)

    @inlineCallbacks
    def test_waits_for_metadata_then_streams(self) -> Generator[Any, Any, None]:
        """/data of a torrent known by its info hash only starts it (on
        demand) and waits; once POST /metainfo gives the info, the data on
        disk is checked and the range is served."""
        files, raw = self.files_and_raw("t")
        info_hash = parse(raw).info_hash
        torrent = self.session.add(info_hash, self.download_dir)
        self.assertEqual(torrent.state, TorrentState.STOPPED)
        d = self.fetch("GET", f"/data?ih={info_hash.hex()}&path=t/a.mkv",
                       headers={"Range": "bytes=20000-20009"})
        for _ in range(100):
            if torrent.state == TorrentState.METADATA:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(torrent.state, TorrentState.METADATA)
        self.assertTrue(self.on_demand.owns(torrent))
        self.assertNoResult(d)
        response, body = yield self.fetch("POST", f"/metainfo?ih={info_hash.hex()}", data=raw)
        self.assertEqual((response.code, body), (200, info_hash.hex().encode() + b"\n"))
        response, body = yield d
        self.assertEqual((response.code, body), (206, files["a.mkv"][20000:20010]))

    @inlineCallbacks
    def test_magnet_adds_on_demand(self) -> Generator[Any, Any, None]:
        """/data?magnet= adds the torrent (recorded, wanted "stopped") and
        starts it; once the request is gone the grace period stops it."""
        files, raw = self.files_and_raw("t")
        info_hash = parse(raw).info_hash
        magnet = quote(f"magnet:?xt=urn:btih:{info_hash.hex()}&dn=t", safe="")
        d = self.request("GET", f"/data?magnet={magnet}&path=t/c.txt")
        for _ in range(100):
            if self.session.get(info_hash) is not None:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        torrent = self.session.get(info_hash)
        assert torrent is not None
        record = self.store.get(info_hash.hex())
        assert record is not None
        self.assertEqual(record.wanted, "stopped")
        torrent.metadata_received(parse(raw).info_bytes)
        response = yield d
        self.assertEqual((yield treq.content(response)), files["c.txt"])
        for _ in range(100):  # the response is over: the grace timer runs
            if [c.getTime() for c in self.clock.getDelayedCalls()] == [30]:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual([c.getTime() for c in self.clock.getDelayedCalls()], [30])
        self.clock.advance(30)
        for _ in range(100):
            if torrent.state == TorrentState.STOPPED:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(torrent.state, TorrentState.STOPPED)
        self.assertFalse(self.on_demand.owns(torrent))


    @inlineCallbacks
    def test_stream_holds_until_client_leaves(self) -> Generator[Any, Any, None]:
        """A /data response waiting for pieces nobody has holds its torrent
        (no grace timer runs); when the client goes away its read deadlines
        are dropped and the grace period starts."""
        _, raw = self.files_and_raw("elsewhere")
        meta = parse(raw)
        torrent = self.session.add(meta.info_hash, os.path.join(self.download_dir, "empty"))
        torrent.metadata_received(meta.info_bytes)
        d = self.request("GET", f"/data?ih={meta.info_hash.hex()}&path=elsewhere/a.mkv",
                         headers={"Range": "bytes=40000-40009"})
        for _ in range(200):
            if torrent._deadlines.merged():
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertIn(40000 // PIECE, torrent._deadlines.merged())
        self.assertTrue(self.on_demand.owns(torrent))
        self.clock.advance(1000)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        # held: running (still checking its empty directory, or downloading)
        self.assertIn(torrent.state, (TorrentState.CHECKING, TorrentState.DOWNLOADING))
        d.cancel()
        self.failureResultOf(d)
        for _ in range(200):
            if self.clock.getDelayedCalls():
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(torrent._deadlines.merged(), {})
        (grace,) = self.clock.getDelayedCalls()
        self.assertEqual(grace.getTime(), 1030)


class InfoTests(ConfluenceCase):
    """/info and /metainfo."""

    @inlineCallbacks
    def test_info_and_metainfo(self) -> Generator[Any, Any, None]:
        """/info is the raw info dictionary; GET /metainfo a .torrent with it
        and the trackers, or confluence's JSON."""
        torrent = yield self.seeding()
        torrent.add_tracker(DEAD_TRACKER)
        response, body = yield self.fetch("GET", f"/info?ih={self.ih}")
        self.assertEqual((response.code, body), (200, parse(self.raw).info_bytes))
        response, body = yield self.fetch("GET", f"/metainfo?ih={self.ih}")
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["application/x-bittorrent"])
        meta = parse(body)
        self.assertEqual((meta.info_hash.hex(), meta.trackers),
                         (self.ih, ((DEAD_TRACKER,),)))
        response, body = yield self.fetch("GET", f"/metainfo?ih={self.ih}",
                                          headers={"Accept": "application/json"})
        view = json.loads(body)
        self.assertEqual((view["announce"], view["announceList"]),
                         (DEAD_TRACKER, [[DEAD_TRACKER]]))

    @inlineCallbacks
    def test_info_blocks_then_times_out(self) -> Generator[Any, Any, None]:
        """/info of a torrent without metadata waits; info_timeout later
        (on the clock) it is 504 and nothing is left subscribed; ?nowait=1
        is 202 at once."""
        self.session.add(bytes.fromhex(UNKNOWN), self.download_dir)
        before = self.subscriptions()
        response, _ = yield self.fetch("GET", f"/info?ih={UNKNOWN}&nowait=1")
        self.assertEqual(response.code, 202)
        d = self.fetch("GET", f"/info?ih={UNKNOWN}")
        for _ in range(100):
            if self.subscriptions() > before:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertNoResult(d)
        self.clock.advance(100)
        response, body = yield d
        self.assertEqual(response.code, 504)
        self.assertIn("metadata", json.loads(body)["error"])
        self.assertEqual(self.subscriptions(), before)

    @inlineCallbacks
    def test_removed_while_waiting(self) -> Generator[Any, Any, None]:
        """A torrent removed while /info waits for it answers 404."""
        self.session.add(bytes.fromhex(UNKNOWN), self.download_dir)
        before = self.subscriptions()
        d = self.fetch("GET", f"/info?ih={UNKNOWN}")
        for _ in range(100):
            if self.subscriptions() > before:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        yield self.session.remove(bytes.fromhex(UNKNOWN))
        response, body = yield d
        self.assertEqual(response.code, 404)
        self.assertIn("removed", json.loads(body)["error"])
        self.assertEqual(self.subscriptions(), before)

    @inlineCallbacks
    def test_disconnect_cancels_wait(self) -> Generator[Any, Any, None]:
        """A client that goes away while /info waits leaves no subscription
        and no timer but the grace timer."""
        self.session.add(bytes.fromhex(UNKNOWN), self.download_dir)
        before = self.subscriptions()
        d = self.request("GET", f"/info?ih={UNKNOWN}")
        for _ in range(100):
            if self.subscriptions() > before:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(len(self.clock.getDelayedCalls()), 1)  # the info timeout
        d.cancel()
        self.failureResultOf(d)
        for _ in range(100):
            if self.subscriptions() == before:
                break
            yield deferLater(reactor, 0.01, lambda: None)
        self.assertEqual(self.subscriptions(), before)
        (grace,) = self.clock.getDelayedCalls()
        self.assertEqual(grace.getTime(), 30)

    @inlineCallbacks
    def test_post_metainfo(self) -> Generator[Any, Any, None]:
        """POST adds the body's trackers; an info of another torrent, a body
        that is not bencoding, or an info that is not a dictionary: 400;
        without ih the info's SHA-1 names the torrent; an unknown one is 404."""
        torrent = yield self.seeding()
        body = encode({b"announce": DEAD_TRACKER.encode(),
                       b"announce-list": [[b"udp://127.0.0.1:1"], [b"file:///etc/passwd"]]})
        response, answer = yield self.fetch("POST", f"/metainfo?ih={self.ih}", data=body)
        self.assertEqual((response.code, answer), (200, self.ih.encode() + b"\n"))
        urls = [s.url for tier in torrent.trackers() for s in tier]
        self.assertEqual(urls, [DEAD_TRACKER, "udp://127.0.0.1:1"])
        other = encode({b"info": {b"name": b"x"}})
        for data in [other, b"garbage", b"d4:infoi1ee", b""]:
            response, answer = yield self.fetch("POST", f"/metainfo?ih={self.ih}", data=data)
            self.assertEqual(response.code, 400, data)
        response, answer = yield self.fetch("POST", "/metainfo", data=self.raw)
        self.assertEqual((response.code, answer), (200, self.ih.encode() + b"\n"))
        response, _ = yield self.fetch("POST", "/metainfo", data=other)
        self.assertEqual(response.code, 404)
        response, _ = yield self.fetch("PUT", f"/metainfo?ih={self.ih}", data=body)
        self.assertEqual(response.code, 405)

    @inlineCallbacks
    def test_post_info_stores_metainfo(self) -> Generator[Any, Any, None]:
        """The info POSTed to a torrent recorded by magnet becomes its stored
        .torrent, and /info answers it."""
        _, raw = self.files_and_raw("t")
        meta = parse(raw)
        magnet = quote(f"magnet:?xt=urn:btih:{meta.info_hash.hex()}", safe="")
        d = self.fetch("GET", f"/info?magnet={magnet}")
        # The GET adds the torrent; the POST, on another connection, must not
        # overtake it.
        yield wait_until(lambda: self.session.get(meta.info_hash) is not None, 2,
                         "the GET to add the torrent", interval=0.01)
        response, _ = yield self.fetch("POST", f"/metainfo?ih={meta.info_hash.hex()}",
                                       data=encode({b"info": decode(meta.info_bytes)}))
        self.assertEqual(response.code, 200)
        response, body = yield d
        self.assertEqual((response.code, body), (200, meta.info_bytes))
        record = self.store.get(meta.info_hash.hex())
        assert record is not None and record.metainfo is not None
        self.assertEqual(hashlib.sha1(parse(record.metainfo).info_bytes).hexdigest(),
                         meta.info_hash.hex())


class StateTests(ConfluenceCase):
    """/fileState, /status, /playlist."""

    @inlineCallbacks
    def test_file_state(self) -> Generator[Any, Any, None]:
        """One object per piece of the file; the Bytes add up to its length."""
        yield self.seeding()
        response, body = yield self.fetch("GET", f"/fileState?ih={self.ih}&path=t/a.mkv")
        self.assertEqual(response.code, 200)
        state = json.loads(body)
        self.assertEqual(len(state), 5)  # 70000 bytes from offset 0 in 16 KiB pieces
        self.assertEqual(sum(p["Bytes"] for p in state), 70_000)
        self.assertEqual(state[0], {"Bytes": PIECE, "Priority": 1, "Complete": True, "Ok": True,
                                    "Checking": False, "Partial": False})
        response, _ = yield self.fetch("GET", f"/fileState?ih={self.ih}&path=nope")
        self.assertEqual(response.code, 404)

    @inlineCallbacks
    def test_status(self) -> Generator[Any, Any, None]:
        """/status is text naming every torrent and its progress."""
        yield self.seeding()
        self.session.add(bytes.fromhex(UNKNOWN), self.download_dir)
        response, body = yield self.fetch("GET", "/status")
        text = body.decode()
        self.assertEqual(response.headers.getRawHeaders("content-type"),
                         ["text/plain; charset=utf-8"])
        self.assertIn("2 torrents", text)
        self.assertIn(f"{self.ih}  t", text)
        self.assertIn("progress: 100.0%", text)
        self.assertIn(f"{UNKNOWN}  {UNKNOWN}", text)
        self.assertIn("waiting for the metadata", text)

    @inlineCallbacks
    def test_playlist(self) -> Generator[Any, Any, None]:
        """The m3u lists the media files as /data URLs on the request's Host;
        both spellings of the route answer it; a bad Host falls back to the
        address the request came to."""
        yield self.seeding()
        for path in [f"/playlist?ih={self.ih}", f"/playlist/{self.ih}.m3u"]:
            response, body = yield self.fetch("GET", path, headers={"Host": "media.local:8080"})
            self.assertEqual(response.code, 200)
            self.assertEqual(response.headers.getRawHeaders("content-type"), ["audio/x-mpegurl"])
            lines = body.decode().splitlines()
            self.assertEqual(lines, [
                "#EXTM3U",
                "#EXTINF:-1,a.mkv",
                f"http://media.local:8080/data?ih={self.ih}&path=t%2Fa.mkv",
                "#EXTINF:-1,é & b.mp3",
                f"http://media.local:8080/data?ih={self.ih}&path="
                + quote("t/sub dir/é & b.mp3", safe=""),
            ])
        response, body = yield self.fetch("GET", f"/playlist?ih={self.ih}",
                                          headers={"Host": "evil/x"})
        self.assertIn(f"{self.base}/data?ih=", body.decode())
        response, body = yield self.fetch("GET", lines[2][len("http://media.local:8080"):])
        self.assertTrue(body == self.files["a.mkv"])
        response, _ = yield self.fetch("GET", "/playlist/nothing.txt")
        self.assertEqual(response.code, 404)

    @inlineCallbacks
    def test_touch_starts_stopped(self) -> Generator[Any, Any, None]:
        """/fileState of a stopped torrent starts it, on demand."""
        torrent = yield self.seeding()
        yield torrent.stop()
        response, _ = yield self.fetch("GET", f"/fileState?ih={self.ih}&path=t/c.txt")
        self.assertEqual(response.code, 200)
        self.assertTrue(self.on_demand.owns(torrent))
        self.assertTrue(torrent.state.running or torrent.state == TorrentState.CHECKING)


class EventsTests(ConfluenceCase):
    """/events?ih= as a WebSocket of confluence's frames."""

    def setUp(self) -> Any:
        if not websocket_available():
            raise SkipTest("twisted.web.websocket needs wsproto (twisted[websocket])")
        return super().setUp()

    def connect(self, query: str) -> Deferred[WSClient]:
        return connect_ws(self, "ws" + self.base.removeprefix("http") + f"/events{query}")

    @inlineCallbacks
    def test_piece_changed_frames(self) -> Generator[Any, Any, None]:
        """Each piece passed or failed of the torrent is {"PieceChanged": n};
        other torrents' pieces and other events send nothing; stop() closes."""
        torrent = yield self.seeding()
        before = self.subscriptions()
        client = yield self.connect(f"?ih={self.ih}")
        for _ in range(200):
            if self.subscriptions() > before:
                break
            yield deferLater(reactor, 0, lambda: None)
        bus = self.session.events
        bus.publish(PiecePassed(bytes.fromhex(UNKNOWN), 1))
        bus.publish(StateChanged(torrent.info_hash, "stopped", "active"))
        bus.publish(PiecePassed(torrent.info_hash, 3))
        yield client.wait_frames(1)
        self.assertEqual(client.frames, [{"PieceChanged": 3}])
        self.children[b"events"].stop()  # type: ignore[attr-defined]
        yield client.lost
        self.assertEqual(self.subscriptions(), before)

    @inlineCallbacks
    def test_unknown_torrent_refused(self) -> Generator[Any, Any, None]:
        """An unknown ih is 404 and a bad one 400, before the upgrade."""
        from twisted.web.websocket import ConnectionRejected

        for query, code in [(f"?ih={UNKNOWN}", 404), ("?ih=zz", 400)]:
            try:
                yield self.connect(query)
            except ConnectionRejected as e:
                self.assertEqual(e.response.code, code)
            else:
                self.fail("connected")


class GuardedTests(ConfluenceCase):
    """Mounted as the daemon mounts them: at the root, behind the Guard."""

    @inlineCallbacks
    def test_behind_guard(self) -> Generator[Any, Any, None]:
        """With the API token /status and /data answer; without it, 401; a
        POST /metainfo from another origin is refused by the Guard."""
        from txbittorrent.web.auth import Guard

        yield self.seeding()
        root = Resource()
        for name, child in self.children.items():
            root.putChild(name, child)
        guard = Guard(root, store=self.store, clock=self.clock)
        self.base = serve(self, guard.site())
        token = self.store.create_token("test", 0.0)
        auth = {"Authorization": f"Bearer {token}"}
        response, _ = yield self.fetch("GET", "/status")
        self.assertEqual(response.code, 401)
        response, body = yield self.fetch("GET", "/status", headers=auth)
        self.assertEqual(response.code, 200)
        response, body = yield self.fetch("GET", f"/data?ih={self.ih}&path=t/c.txt",
                                          headers=auth)
        self.assertEqual((response.code, body), (200, self.files["c.txt"]))
        response, body = yield self.fetch("GET", f"/playlist/{self.ih}.m3u", headers=auth)
        self.assertIn(f"{self.base}/data?ih={self.ih}&path=t%2Fa.mkv", body.decode())
        response, _ = yield self.fetch(
            "POST", f"/metainfo?ih={self.ih}", data=self.raw,
            headers={**auth, "Origin": "http://evil.example"})
        self.assertEqual(response.code, 403)


class TorrentForTests(ConfluenceCase):
    """How a request names its torrent, with and without OnDemand."""

    def request_for(self, **args: str) -> Any:
        from twisted.web.test.requesthelper import DummyRequest

        request = DummyRequest([b""])
        request.args = {k.encode(): [v.encode()] for k, v in args.items()}
        return request

    def test_without_on_demand(self) -> None:
        """Without OnDemand a magnet or ih finds only a known torrent (404
        otherwise) and nothing is added."""
        from txbittorrent.web.confluence import Confluence, RouteError

        confluence = Confluence(self.session, clock=self.clock)
        known = self.session.add(bytes.fromhex(UNKNOWN), self.download_dir)
        self.assertIs(confluence.torrent_for(self.request_for(ih=UNKNOWN.upper())), known)
        self.assertIs(confluence.torrent_for(
            self.request_for(magnet=f"magnet:?xt=urn:btih:{UNKNOWN}")), known)
        other = "89abcdef0123456789abcdef0123456789abcdef"
        for args in [{"ih": other}, {"magnet": f"magnet:?xt=urn:btih:{other}"}]:
            with self.assertRaises(RouteError) as caught:
                confluence.torrent_for(self.request_for(**args))
            self.assertEqual(caught.exception.code, 404)
        self.assertEqual(len(self.session.torrents()), 1)

    def test_add_info_hashes(self) -> None:
        """With OnDemand(add_info_hashes=True) an unknown ih is added and
        started, as confluence does."""
        from txbittorrent.web.confluence import Confluence

        on_demand = OnDemand(self.session, self.clock, 30, download_dir=self.download_dir,
                             add_info_hashes=True)
        confluence = Confluence(self.session, clock=self.clock, on_demand=on_demand)
        torrent = confluence.torrent_for(self.request_for(ih=UNKNOWN))
        self.assertIs(self.session.get(bytes.fromhex(UNKNOWN)), torrent)
        self.assertTrue(on_demand.owns(torrent))
