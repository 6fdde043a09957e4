"""Transmission's RPC through real sockets on 127.0.0.1: the handshake,
authentication and the session methods, over a real Session, StateStore
and Guard (delegating /transmission), the fixture in tests/transmissioncase.py."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests.transmissioncase import PASSWORD, TransmissionCase, basic
from txbittorrent.web.transmission import SESSION_ID_HEADER, TransmissionResource
from txbittorrent.web.transmission.sessionmethods import RPC_VERSION


class HandshakeTests(TransmissionCase):
    """Authentication, the session-id handshake and the request shape."""

    @inlineCallbacks
    def test_no_credentials(self) -> Generator[Any, Any, None]:
        """Without Authorization: 401 with a Basic challenge, and no session id."""
        response, _ = yield self.post({"method": "session-get"}, auth="")
        self.assertEqual(response.code, 401)
        self.assertEqual(response.headers.getRawHeaders("WWW-Authenticate"),
                         ['Basic realm="Transmission"'])
        self.assertIsNone(response.headers.getRawHeaders(SESSION_ID_HEADER))

    @inlineCallbacks
    def test_wrong_password_then_ban(self) -> Generator[Any, Any, None]:
        """A wrong password or user is 401; five failures (either kind)
        ban the address (403, even with the right password); a request
        without credentials is no failure."""
        response, _ = yield self.post({}, auth=basic("root", PASSWORD))
        self.assertEqual(response.code, 401)
        for _ in range(3):
            response, _ = yield self.post({}, auth="")
            self.assertEqual(response.code, 401)
        for _ in range(4):
            response, _ = yield self.post({}, auth=basic("admin", "nope"))
            self.assertEqual(response.code, 401)
        response, _ = yield self.post({}, auth=basic("admin", "nope"))
        self.assertEqual(response.code, 403)
        response, _ = yield self.post({})
        self.assertEqual(response.code, 403)

    @inlineCallbacks
    def test_handshake(self) -> Generator[Any, Any, None]:
        """Authenticated without the id: 409 carrying it; with it: 200, the
        tag echoed; a wrong id is 409 again."""
        response, _ = yield self.post({"method": "session-get"}, session_id="")
        self.assertEqual(response.code, 409)
        session_id = response.headers.getRawHeaders(SESSION_ID_HEADER)[0].decode()
        self.assertEqual(session_id, self.resource.session_id)
        self.assertGreaterEqual(len(session_id), 32)
        response, content = yield self.post(
            {"method": "session-get", "arguments": {"fields": ["version"]}, "tag": 7},
            session_id=session_id)
        self.assertEqual(response.code, 200)
        reply = json.loads(content)
        self.assertEqual((reply["result"], reply["tag"]), ("success", 7))
        self.assertEqual(set(reply["arguments"]), {"version"})
        response, _ = yield self.post({"method": "session-get"}, session_id=session_id + "x")
        self.assertEqual(response.code, 409)

    def test_session_id_per_run(self) -> None:
        """Each resource (each daemon run) makes its own random id."""
        other = TransmissionResource(
            self.session, self.manager, store=self.store, download_dir=self.download_dir,
            config_dir=self.state_dir, clock=reactor)
        self.assertNotEqual(other.session_id, self.resource.session_id)

    @inlineCallbacks
    def test_password_checked_once(self) -> Generator[Any, Any, None]:
        """Basic credentials sent with every request cost one scrypt: the
        Guard caches the success."""
        calls = []
        verify = self.store.verify_password

        def counting(user: str, password: str) -> bool:
            calls.append(user)
            return verify(user, password)

        self.patch(self.store, "verify_password", counting)
        for _ in range(3):
            yield self.rpc("session-get", {"fields": ["version"]})
        self.assertEqual(len(calls), 1)

    @inlineCallbacks
    def test_bearer_token(self) -> Generator[Any, Any, None]:
        """The daemon's API token is accepted as a Bearer credential; a
        wrong one is 401."""
        response, _ = yield self.post({"method": "session-get"}, auth=f"Bearer {self.token}")
        self.assertEqual(response.code, 409)
        response, _ = yield self.post({"method": "session-get"}, auth="Bearer wrong")
        self.assertEqual(response.code, 401)

    @inlineCallbacks
    def test_paths(self) -> Generator[Any, Any, None]:
        """/transmission/rpc/ works as well; other paths under
        /transmission are 404."""
        yield self.rpc("session-get")
        response, _ = yield self.post({"method": "session-get"}, url=self.url + "/")
        self.assertEqual(response.code, 200)
        response, _ = yield self.post({"method": "session-get"}, url=self.url + "/x")
        self.assertEqual(response.code, 404)
        response, _ = yield self.post({}, url=self.url.replace("/rpc", "/web/"))
        self.assertEqual(response.code, 404)

    @inlineCallbacks
    def test_post_and_json_only(self) -> Generator[Any, Any, None]:
        """GET is 405; a body that is not a JSON object is 400 with a result
        string; an unknown method is Transmission's error string."""
        yield self.rpc("session-get")
        response, _ = yield self.post(b"", method="GET")
        self.assertEqual(response.code, 405)
        for body in (b"{nope", b"[1, 2]", "\u00e9".encode("latin-1")):
            response, content = yield self.post(body)
            self.assertEqual(response.code, 400)
            self.assertIsInstance(json.loads(content)["result"], str)
        reply = yield self.rpc("no-such-method", tag=3)
        self.assertEqual(reply, {"arguments": {}, "result": "method name not recognized",
                                 "tag": 3})
        reply = yield self.rpc("session-get", [1])  # type: ignore[arg-type]
        self.assertNotEqual(reply["result"], "success")

    @inlineCallbacks
    def test_guard_rules_still_apply(self) -> Generator[Any, Any, None]:
        """The Guard's Host and Origin rules stand in front of the RPC."""
        yield self.rpc("session-get")
        response, _ = yield self.post({"method": "session-get"},
                                      headers={"Host": "evil.example"})
        self.assertEqual(response.code, 403)
        response, _ = yield self.post({"method": "session-get"},
                                      headers={"Origin": "http://evil.example"})
        self.assertEqual(response.code, 403)


class SessionMethodTests(TransmissionCase):
    """session-get/-set/-stats, free-space, port-test and the refusals."""

    @inlineCallbacks
    def test_session_get(self) -> Generator[Any, Any, None]:
        """The fields clients read, with Transmission's types: versions,
        directories, the peer port, limits in kB/s; ``fields`` filters."""
        args = yield self.ok("session-get")
        self.assertEqual((args["rpc-version"], args["rpc-version-minimum"]), (RPC_VERSION, 14))
        self.assertTrue(args["version"].startswith("4.0.6 ("))
        self.assertEqual(args["download-dir"], self.download_dir)
        self.assertEqual(args["config-dir"], self.state_dir)
        self.assertEqual(args["peer-port"], self.session.port)
        self.assertEqual(args["session-id"], self.resource.session_id)
        self.assertIs(args["speed-limit-down-enabled"], False)
        for key in ("rpc-version", "peer-port", "speed-limit-down", "speed-limit-up",
                    "download-dir-free-space", "peer-limit-global", "alt-speed-down",
                    "cache-size-mb", "blocklist-size"):
            self.assertIs(type(args[key]), int, key)
        self.assertIsInstance(args["seedRatioLimit"], float)
        args = yield self.ok("session-get", {"fields": ["version", "peer-port", "bogus"]})
        self.assertEqual(set(args), {"version", "peer-port"})

    @inlineCallbacks
    def test_session_set_limits(self) -> Generator[Any, Any, None]:
        """Speed limits in kB/s set the session's throttles (bytes/s) and
        the store's settings; disabling lifts them and remembers the value."""
        yield self.ok("session-set", {"speed-limit-down": 250, "speed-limit-down-enabled": True,
                                      "speed-limit-up": 40, "speed-limit-up-enabled": True})
        self.assertEqual(self.session.download_throttle.rate, 250_000)
        self.assertEqual(self.session.upload_throttle.rate, 40_000)
        self.assertEqual(self.store.get_setting("download_limit", None), 250_000)
        args = yield self.ok("session-get")
        self.assertEqual((args["speed-limit-down"], args["speed-limit-down-enabled"]), (250, True))
        self.assertEqual((args["speed-limit-up"], args["speed-limit-up-enabled"]), (40, True))
        yield self.ok("session-set", {"speed-limit-down-enabled": False})
        self.assertIsNone(self.session.download_throttle.rate)
        self.assertIsNone(self.store.get_setting("download_limit", None))
        self.assertEqual(self.session.upload_throttle.rate, 40_000)
        args = yield self.ok("session-get")
        self.assertEqual((args["speed-limit-down"], args["speed-limit-down-enabled"]), (250, False))
        reply = yield self.rpc("session-set", {"speed-limit-up": -3})
        self.assertNotEqual(reply["result"], "success")

    @inlineCallbacks
    def test_session_encryption(self) -> Generator[Any, Any, None]:
        """encryption reads the session's mode ("preferred" by default) and
        session-set changes it and the stored setting; a name Transmission
        does not have is an error that changes nothing."""
        args = yield self.ok("session-get", {"fields": ["encryption"]})
        self.assertEqual(args, {"encryption": "preferred"})
        for name, mode in (("required", "forced"), ("tolerated", "disabled"),
                           ("preferred", "enabled")):
            yield self.ok("session-set", {"encryption": name})
            self.assertEqual(self.session.encryption, mode)
            self.assertEqual(self.store.get_setting("encryption", None), mode)
            args = yield self.ok("session-get", {"fields": ["encryption"]})
            self.assertEqual(args["encryption"], name)
        for bad in ("always", 1, None):
            reply = yield self.rpc("session-set", {"encryption": bad,
                                                   "speed-limit-down": 5,
                                                   "speed-limit-down-enabled": True})
            self.assertNotEqual(reply["result"], "success")
        self.assertEqual(self.session.encryption, "enabled")
        self.assertIsNone(self.session.download_throttle.rate)

    @inlineCallbacks
    def test_session_set_download_dir(self) -> Generator[Any, Any, None]:
        """download-dir may move under the daemon's download directory only."""
        yield self.ok("session-set", {"download-dir": "sub"})
        args = yield self.ok("session-get", {"fields": ["download-dir"]})
        self.assertEqual(args["download-dir"], os.path.join(self.download_dir, "sub"))
        reply = yield self.rpc("session-set", {"download-dir": "/etc"})
        self.assertIn("must be under", reply["result"])
        reply = yield self.rpc("session-set", {"download-dir": "../x"})
        self.assertNotEqual(reply["result"], "success")

    @inlineCallbacks
    def test_session_stats(self) -> Generator[Any, Any, None]:
        """Counts, speeds and byte totals are integers."""
        yield self.add_seeding()
        args = yield self.ok("session-stats")
        self.assertEqual((args["torrentCount"], args["activeTorrentCount"],
                          args["pausedTorrentCount"]), (1, 1, 0))
        for key in ("downloadSpeed", "uploadSpeed"):
            self.assertIs(type(args[key]), int)
        for stats in (args["current-stats"], args["cumulative-stats"]):
            self.assertEqual(set(stats), {"uploadedBytes", "downloadedBytes", "filesAdded",
                                          "sessionCount", "secondsActive"})
            self.assertTrue(all(type(v) is int for v in stats.values()))

    @inlineCallbacks
    def test_free_space(self) -> Generator[Any, Any, None]:
        """free-space answers for the download directory (and below), and
        is an error anywhere else."""
        args = yield self.ok("free-space", {"path": self.download_dir})
        self.assertEqual(args["path"], self.download_dir)
        self.assertIs(type(args["size-bytes"]), int)
        self.assertGreater(args["total_size"], 0)
        for path in ("/", "/etc", self.download_dir + "/../state", "relative"):
            reply = yield self.rpc("free-space", {"path": path})
            self.assertNotEqual(reply["result"], "success", path)

    @inlineCallbacks
    def test_port_test_and_refusals(self) -> Generator[Any, Any, None]:
        """port-test says whether the session listens (no outside service);
        blocklist-update and session-close are errors."""
        args = yield self.ok("port-test")
        self.assertEqual(args, {"port-is-open": True})
        for name in ("blocklist-update", "session-close", "queue-move-top"):
            reply = yield self.rpc(name)
            self.assertNotEqual(reply["result"], "success", name)
