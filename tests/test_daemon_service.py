"""DaemonService started in-process on 127.0.0.1 port 0: auth, the API,
the store across restarts, the Host check, and streaming a file over
/stream, through real sockets (treq)."""

from __future__ import annotations

import io
import json
import dataclasses
import os
import stat
from collections.abc import Generator
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Factory
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool

from txbittorrent.daemon.lock import DaemonRunningError
from txbittorrent.daemon.service import DaemonConfig, DaemonService
from txbittorrent.daemon.store import StateStore
from txbittorrent.core.metainfo import parse
from txbittorrent.eventtypes import Complete, StateChanged
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files
from txbittorrent.testing.data import make_torrent

HASH = "0123456789abcdef0123456789abcdef01234567"


class DaemonServiceTests(TestCase):
    """A daemon on tcp:0 over a temporary state dir, stopped in cleanup."""

    timeout = 60

    def setUp(self) -> None:
        base = os.path.abspath(self.mktemp())
        self.config = DaemonConfig(
            state_dir=os.path.join(base, "state"),
            download_dir=os.path.join(base, "downloads"),
            listen=("tcp:0:interface=127.0.0.1",),
        )
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self._services: list[DaemonService] = []

    @inlineCallbacks
    def start(self) -> Generator[Any, Any, DaemonService]:
        out = io.StringIO()
        service = DaemonService(self.config, reactor=reactor, out=out)
        service.startService()
        self._services.append(service)
        self.addCleanup(lambda: service.stopService() if service.running else None)
        yield service.started
        service.out = out  # type: ignore[attr-defined]
        return service

    def api(self) -> dict[str, Any]:
        with open(os.path.join(self.config.state_dir, "api.json")) as f:
            return json.load(f)  # type: ignore[no-any-return]

    @inlineCallbacks
    def call(self, method: str, path: str, token: str | None = None,
             body: Any = None, headers: dict[bytes, list[bytes]] | None = None,
             ) -> Generator[Any, Any, tuple[int, bytes]]:
        info = self.api()
        all_headers = dict(headers or {})
        if token is not None:
            all_headers[b"Authorization"] = [b"Bearer " + token.encode()]
        data = json.dumps(body).encode() if body is not None else None
        response = yield treq.request(method, info["url"] + path, data=data,
                                      headers=all_headers, pool=self.pool)
        content = yield treq.content(response)
        return response.code, content

    @inlineCallbacks
    def test_auth_and_api_file(self) -> Generator[Any, Any, None]:
        """/api is 401 without a token, 200 with the one in api.json (mode 0600,
        its url the real port); the password is printed on the first start."""
        service = yield self.start()
        info = self.api()
        port = service.ports[0].getHost().port
        self.assertEqual(info["url"], f"http://127.0.0.1:{port}")
        mode = os.stat(os.path.join(self.config.state_dir, "api.json")).st_mode
        self.assertEqual(stat.S_IMODE(mode), 0o600)
        self.assertIn("password", service.out.getvalue())
        self.assertEqual(service.store.get_setting("download_dir", None),
                         self.config.download_dir)
        code, _ = yield self.call("GET", "/api")
        self.assertEqual(code, 401)
        code, content = yield self.call("GET", "/api", info["token"])
        self.assertEqual(code, 200)
        self.assertIn("routes", json.loads(content))

    @inlineCallbacks
    def test_host_not_allowed(self) -> Generator[Any, Any, None]:
        """A Host header naming another host is 403, even with the token."""
        yield self.start()
        code, _ = yield self.call("GET", "/api", self.api()["token"],
                                  headers={b"Host": [b"evil.example"]})
        self.assertEqual(code, 403)

    @inlineCallbacks
    def test_torrent_survives_a_restart(self) -> Generator[Any, Any, None]:
        """An added info hash is stored, restored by the next start on the
        same state dir; the password is not printed again."""
        first = yield self.start()
        token = self.api()["token"]
        code, _ = yield self.call("POST", "/api/torrents", token, {"source": HASH})
        self.assertEqual(code, 201)
        self.assertIsNotNone(first.store.get(HASH))
        yield first.stopService()
        self.assertFalse(os.path.exists(os.path.join(self.config.state_dir, "api.json.tmp")))

        second = yield self.start()
        self.assertNotIn("password", second.out.getvalue())
        self.assertEqual(self.api()["token"], token)
        self.assertIsNotNone(second.session.get(bytes.fromhex(HASH)))
        code, content = yield self.call("GET", "/api/torrents", token)
        self.assertEqual(code, 200)
        self.assertIn(HASH, content.decode())
        code, _ = yield self.call("GET", "/api/events", None)
        self.assertEqual(code, 401)

    @inlineCallbacks
    def test_stream_a_file(self) -> Generator[Any, Any, None]:
        """A .torrent with its data on disk streams its file over /stream with
        the token; an unknown hash or index is 404; stopping writes its resume
        record under the state dir."""
        service = yield self.start()
        root = os.path.join(self.config.download_dir, "seed")
        files = make_files(os.path.join(root, "t"), {"a.bin": 70_000, "b.txt": 100}, seed=7)
        raw = create_torrent(os.path.join(root, "t"), piece_length=16 * 1024)
        torrent = service.session.add(raw, root)
        self.assertTrue(torrent.resume_path.startswith(self.config.state_dir))
        yield torrent.start()
        yield torrent.when_complete()
        ih = torrent.info_hash.hex()
        index = {f.path.split(os.sep)[-1]: f.index for f in torrent.files()}["a.bin"]
        token = self.api()["token"]
        code, body = yield self.call("GET", f"/stream/{ih}/{index}/a.bin", token)
        self.assertEqual((code, body), (200, files["a.bin"]))
        code, _ = yield self.call("GET", f"/stream/{ih}/{index}/a.bin")
        self.assertEqual(code, 401)
        for path in (f"/stream/{HASH}/0/x", f"/stream/{ih}/99/x", f"/stream/{ih}/z/x"):
            code, _ = yield self.call("GET", path, token)
            self.assertEqual(code, 404, path)
        yield service.stopService()
        resume = os.path.join(self.config.state_dir, "resume", ih + ".resume")
        self.assertTrue(os.path.exists(resume))

    @inlineCallbacks
    def test_confluence_routes_and_media_token(self) -> Generator[Any, Any, None]:
        """confluence's routes are mounted; a player's GET of /data, /stream
        or /playlist with ?token=<media token from api.json> is let in (and
        the playlist's URLs carry it), the API is not, nor a POST, nor a
        wrong token; the media token stays the same across restarts."""
        service = yield self.start()
        root = os.path.join(self.config.download_dir, "seed")
        files = make_files(os.path.join(root, "t"), {"a.mp4": 40_000, "b.txt": 100}, seed=3)
        raw = create_torrent(os.path.join(root, "t"), piece_length=16 * 1024)
        torrent = service.session.add(raw, root)
        yield torrent.start()
        yield torrent.when_complete()
        ih = torrent.info_hash.hex()
        info = self.api()
        media = info["media_token"]
        self.assertEqual(media, service.media_token)
        code, body = yield self.call("GET", "/status", info["token"])
        self.assertEqual(code, 200)
        self.assertIn(ih, body.decode())
        code, body = yield self.call("GET", f"/data?ih={ih}&path=t/a.mp4&token={media}")
        self.assertEqual((code, body), (200, files["a.mp4"]))
        code, body = yield self.call("GET", f"/playlist?ih={ih}&token={media}")
        self.assertEqual(code, 200)
        self.assertIn(f"&token={media}", body.decode())
        self.assertNotIn(info["token"], body.decode())
        for method, path in [("GET", f"/data?ih={ih}&path=t/a.mp4&token=wrong"),
                             ("GET", f"/api/torrents?token={media}"),
                             ("GET", f"/status?token={media}"),
                             ("POST", f"/metainfo?ih={ih}&token={media}"),
                             ("GET", f"/data?ih={ih}&path=t/a.mp4&token={info['token']}")]:
            code, _ = yield self.call(method, path)
            self.assertEqual(code, 401, path)
        yield service.stopService()
        yield self.start()
        self.assertEqual(self.api()["media_token"], media)

    @inlineCallbacks
    def test_transmission_mounted(self) -> Generator[Any, Any, None]:
        """/transmission/rpc answers with its own authentication (401 with a
        Basic challenge, not the Guard's Bearer one), then the session-id
        handshake (409), then session-get; the Guard's Host rule holds."""
        yield self.start()
        token = self.api()["token"]
        code, _ = yield self.call("POST", "/transmission/rpc", body={"method": "session-get"})
        self.assertEqual(code, 401)
        response = yield treq.post(
            self.api()["url"] + "/transmission/rpc", json={"method": "session-get"},
            headers={b"Authorization": [b"Bearer " + token.encode()]}, pool=self.pool)
        yield treq.content(response)
        self.assertEqual(response.code, 409)
        session_id = response.headers.getRawHeaders(b"X-Transmission-Session-Id")[0]
        response = yield treq.post(
            self.api()["url"] + "/transmission/rpc",
            json={"method": "session-get", "tag": 7},
            headers={b"Authorization": [b"Bearer " + token.encode()],
                     b"X-Transmission-Session-Id": [session_id]}, pool=self.pool)
        body = json.loads((yield treq.content(response)))
        self.assertEqual((response.code, body["result"], body["tag"]), (200, "success", 7))
        code, _ = yield self.call("POST", "/transmission/rpc", token,
                                  headers={b"Host": [b"evil.example"]})
        self.assertEqual(code, 403)

    @inlineCallbacks
    def test_qbittorrent_mounted(self) -> Generator[Any, Any, None]:
        """/api/v2 answers as qBittorrent does: 403 without a session, "Ok."
        and an SID cookie for the printed password, then the API; the native
        /api is unchanged beside it."""
        service = yield self.start()
        password = service.out.getvalue().split("password ")[1].split()[0]
        base = self.api()["url"]
        response = yield treq.get(base + "/api/v2/app/webapiVersion", pool=self.pool)
        yield treq.content(response)
        self.assertEqual(response.code, 403)
        response = yield treq.post(base + "/api/v2/auth/login", pool=self.pool,
                                   data={"username": "admin", "password": password})
        self.assertEqual((yield treq.content(response)), b"Ok.")
        [sid] = [c.value for c in response.cookies() if c.name == "SID"]
        response = yield treq.get(base + "/api/v2/app/webapiVersion", pool=self.pool,
                                  cookies={"SID": sid})
        version = (yield treq.content(response)).decode()
        self.assertEqual(response.code, 200)
        self.assertGreaterEqual(tuple(int(p) for p in version.split(".")[:2]), (2, 11))
        code, content = yield self.call("GET", "/api", self.api()["token"])
        self.assertEqual(code, 200)
        self.assertIn("routes", json.loads(content))

    @inlineCallbacks
    def test_page_public_api_not(self) -> Generator[Any, Any, None]:
        """The page (/ and /ui/app.js) loads without credentials, the API
        does not; /api/stats gives the owner the media token for links."""
        service = yield self.start()
        code, body = yield self.call("GET", "/")
        self.assertEqual(code, 200)
        self.assertIn(b"<html", body.lower())
        code, _ = yield self.call("GET", "/ui/app.js")
        self.assertEqual(code, 200)
        code, _ = yield self.call("GET", "/api/stats")
        self.assertEqual(code, 401)
        code, content = yield self.call("GET", "/api/stats", self.api()["token"])
        self.assertEqual((code, json.loads(content)["media_token"]), (200, service.media_token))

    @inlineCallbacks
    def test_trackers_restored(self) -> Generator[Any, Any, None]:
        """Trackers added and removed through the API are as the user left
        them after a restart."""
        yield self.start()
        token = self.api()["token"]
        url = f"magnet:?xt=urn:btih:{HASH}&tr=http%3A%2F%2F127.0.0.1%3A1%2Fa"
        code, _ = yield self.call("POST", "/api/torrents", token, {"source": url,
                                                                   "paused": True})
        self.assertEqual(code, 201)
        path = f"/api/torrents/{HASH}/trackers"
        code, _ = yield self.call("POST", path, token, {"url": "udp://127.0.0.1:2", "tier": 1})
        self.assertEqual(code, 201)
        code, _ = yield self.call("DELETE", path + "?url=http%3A%2F%2F127.0.0.1%3A1%2Fa", token)
        self.assertEqual(code, 200)
        yield self.start_again()
        torrent = self.service.session.get(bytes.fromhex(HASH))
        self.assertEqual([[s.url for s in tier] for tier in torrent.trackers() if tier],
                         [["udp://127.0.0.1:2"]])

    @inlineCallbacks
    def test_stopped_torrent_shows_progress(self) -> Generator[Any, Any, None]:
        """A complete torrent stopped through the API comes back stopped
        after a restart and shows 100% (its resume record, not a check)."""
        yield self.start()
        token = self.api()["token"]
        root = os.path.join(self.config.download_dir, "seed")
        make_files(os.path.join(root, "t"), {"a.bin": 50_000}, seed=9)
        raw = create_torrent(os.path.join(root, "t"), piece_length=16 * 1024)
        response = yield treq.post(
            self.api()["url"] + "/api/torrents?save_path=" + root, data=raw, pool=self.pool,
            headers={b"Authorization": [b"Bearer " + token.encode()],
                     b"Content-Type": [b"application/x-bittorrent"]})
        body = json.loads((yield treq.content(response)))
        self.assertEqual(response.code, 201, body)
        ih = body["info_hash"]
        torrent = self.service_of().session.get(bytes.fromhex(ih))
        yield torrent.when_complete()
        code, _ = yield self.call("POST", f"/api/torrents/{ih}/stop", token)
        self.assertEqual(code, 200)
        yield self.start_again()
        code, content = yield self.call("GET", f"/api/torrents/{ih}", token)
        view = json.loads(content)
        self.assertEqual((code, view["state"], view["progress"], view["left"]),
                         (200, "stopped", 1.0, 0))

    def service_of(self) -> DaemonService:
        return self._services[-1]

    @inlineCallbacks
    def start_again(self) -> Generator[Any, Any, None]:
        for service in list(self._services):
            if service.running:
                yield service.stopService()
        self.service = yield self.start()

    @inlineCallbacks
    def test_stop_closes_everything(self) -> Generator[Any, Any, None]:
        """stopService closes the ports, the session and the store."""
        service = yield self.start()
        url = self.api()["url"]
        yield service.stopService()
        self.assertIsNone(service.store)
        self.assertEqual(service.ports, [])
        with self.assertRaises(Exception):
            yield treq.get(url + "/api", pool=self.pool)
        StateStore(os.path.join(self.config.state_dir, "state.sqlite")).close()

    @inlineCallbacks
    def test_token_attribute(self) -> Generator[Any, Any, None]:
        """DaemonService.token is the plaintext token of api.json."""
        service = yield self.start()
        self.assertEqual(service.token, self.api()["token"])

    @inlineCallbacks
    def test_second_daemon_on_the_same_state_dir(self) -> Generator[Any, Any, None]:
        """A second DaemonService on a state dir in use fails to start with
        DaemonRunningError naming the directory, leaving the first serving;
        once the first stops, a new one starts."""
        first = yield self.start()
        second = DaemonService(self.config, reactor=reactor, out=io.StringIO())
        second.startService()
        with self.assertRaises(DaemonRunningError) as caught:
            yield second.started
        self.assertIn(self.config.state_dir, str(caught.exception))
        self.assertIsNone(second.store)
        self.assertEqual(second.ports, [])
        yield second.stopService()
        code, _ = yield self.call("GET", "/api", self.api()["token"])
        self.assertEqual(code, 200)
        yield first.stopService()
        third = yield self.start()
        self.assertIsNotNone(third.store)

    @inlineCallbacks
    def test_no_api_file(self) -> Generator[Any, Any, None]:
        """write_api_file=False never writes api.json; its token works while
        it runs and is revoked when it stops."""
        self.config = dataclasses.replace(self.config, write_api_file=False)
        service = yield self.start()
        self.assertFalse(os.path.exists(os.path.join(self.config.state_dir, "api.json")))
        self.assertTrue(service.store.check_token(service.token))
        token = service.token
        yield service.stopService()
        store = StateStore(os.path.join(self.config.state_dir, "state.sqlite"))
        self.addCleanup(store.close)
        self.assertFalse(store.check_token(token))
        self.assertEqual(store.tokens(), [])

    @inlineCallbacks
    def test_failed_start_undoes_itself(self) -> Generator[Any, Any, None]:
        """A start whose HTTP or peer port is taken fails started and
        releases the lock, the store and the session."""
        taken = reactor.listenTCP(0, Factory(), interface="127.0.0.1")
        self.addCleanup(taken.stopListening)
        for change in [
            {"listen": (f"tcp:{taken.getHost().port}:interface=127.0.0.1",)},
            {"listen": ("tcp:0:interface=127.0.0.1",), "peer_port": taken.getHost().port},
        ]:
            self.config = dataclasses.replace(self.config, **change)
            service = DaemonService(self.config, reactor=reactor, out=io.StringIO())
            service.startService()
            with self.assertRaises(Exception):
                yield service.started
            self.assertIsNone(service.store)
            self.assertIsNone(service.session)
            self.flushLoggedErrors()
        self.config = dataclasses.replace(self.config, peer_port=0)
        again = yield self.start()
        self.assertIsNotNone(again.store)

    def store_before_start(self) -> StateStore:
        os.makedirs(self.config.state_dir, exist_ok=True)
        store = StateStore(os.path.join(self.config.state_dir, "state.sqlite"))
        self.addCleanup(store.close)
        return store

    @inlineCallbacks
    def test_global_limits(self) -> Generator[Any, Any, None]:
        """A limit given in the config wins over the stored setting; without
        one the stored setting applies; 0 or nothing is unlimited."""
        store = self.store_before_start()
        store.set_setting("download_limit", 5000)
        store.set_setting("upload_limit", 6000)
        store.close()
        self.config = dataclasses.replace(self.config, upload_limit=7000)
        service = yield self.start()
        self.assertEqual(service.session.download_throttle.rate, 5000)
        self.assertEqual(service.session.upload_throttle.rate, 7000)
        yield service.stopService()
        self.config = dataclasses.replace(self.config, download_limit=0, upload_limit=None)
        service = yield self.start()
        self.assertIsNone(service.session.download_throttle.rate)
        self.assertEqual(service.session.upload_throttle.rate, 6000)
        yield service.stopService()
        store = self.store_before_start()
        store.delete_setting("upload_limit")
        store.set_setting("download_limit", "fast")
        store.close()
        self.config = dataclasses.replace(self.config, download_limit=None)
        service = yield self.start()
        self.assertIsNone(service.session.download_throttle.rate)
        self.assertIsNone(service.session.upload_throttle.rate)

    @inlineCallbacks
    def test_encryption_mode(self) -> Generator[Any, Any, None]:
        """The session's encryption: the config's, else the stored setting,
        else "enabled" (a stored value that is no mode is ignored)."""
        service = yield self.start()
        self.assertEqual(service.session.encryption, "enabled")
        yield service.stopService()
        store = self.store_before_start()
        store.set_setting("encryption", "forced")
        store.close()
        service = yield self.start()
        self.assertEqual(service.session.encryption, "forced")
        yield service.stopService()
        self.config = dataclasses.replace(self.config, encryption="disabled")
        service = yield self.start()
        self.assertEqual(service.session.encryption, "disabled")
        yield service.stopService()
        store = self.store_before_start()
        store.set_setting("encryption", "sometimes")
        store.close()
        self.config = dataclasses.replace(self.config, encryption=None)
        service = yield self.start()
        self.assertEqual(service.session.encryption, "enabled")
        self.flushLoggedErrors()

    @inlineCallbacks
    def test_restore_limits_priorities_and_state(self) -> Generator[Any, Any, None]:
        """A stored .torrent comes back with its limits, priorities and
        wanted state; a stored source that is not a magnet is skipped."""
        store = self.store_before_start()
        raw = make_torrent({"a": 20_000, "b": 30_000}, 16384, name="lim")
        ih = parse(raw).info_hash.hex()
        store.add_torrent(ih, raw, name="lim", save_path=self.config.download_dir,
                          added_at=1.0, priorities=[1, 0], download_limit=1000,
                          upload_limit=2000, wanted="paused")
        store.add_torrent(HASH, "/etc/passwd", name="bad", save_path="/tmp", added_at=2.0)
        store.close()
        service = yield self.start()
        torrent = service.session.get(bytes.fromhex(ih))
        self.assertEqual(torrent.config.download_limit, 1000)
        self.assertEqual(torrent.config.upload_limit, 2000)
        self.assertEqual([f.priority for f in torrent.files()], [1, 0])
        if torrent.state == "checking":
            settled: Deferred[Any] = Deferred()
            sub = service.session.events.subscribe(
                lambda e: settled.called or settled.callback(e),
                info_hash=torrent.info_hash, kinds=StateChanged)
            yield settled
            sub.cancel()
        self.assertEqual(torrent.state, "paused")
        self.assertIsNone(service.session.get(bytes.fromhex(HASH)))
        self.assertEqual(len(service.session.torrents()), 1)

    @inlineCallbacks
    def test_recorder_runs(self) -> Generator[Any, Any, None]:
        """The service records completion in its store (the Recorder is
        subscribed to the session's bus) and unsubscribes at stop."""
        service = yield self.start()
        code, _ = yield self.call("POST", "/api/torrents", service.token, {"source": HASH})
        self.assertEqual(code, 201)
        service.session.events.publish(Complete(bytes.fromhex(HASH)))
        self.assertIsNotNone(service.store.get(HASH).completed_at)
        recorder = service._recorder
        yield service.stopService()
        self.assertIsNone(service._recorder)
        self.assertIsNone(recorder._subscription)

    @inlineCallbacks
    def test_login_with_printed_password(self) -> Generator[Any, Any, None]:
        """The password printed on the first start logs in (checked in the
        reactor's thread pool); a wrong one is 401."""
        service = yield self.start()
        password = service.out.getvalue().strip().rsplit(" ", 1)[-1]
        url = self.api()["url"] + "/login"
        response = yield treq.post(url, data={"username": "admin", "password": password},
                                   pool=self.pool)
        yield treq.content(response)
        self.assertEqual(response.code, 200)
        self.assertTrue(response.cookies())
        response = yield treq.post(url, data={"username": "admin", "password": "no"},
                                   pool=self.pool)
        yield treq.content(response)
        self.assertEqual(response.code, 401)
