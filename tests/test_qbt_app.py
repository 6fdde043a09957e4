"""qBittorrent API: app/* and transfer/*."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import inlineCallbacks

from tests.qbtcase import QbtCase


class QbtAppTests(QbtCase):
    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        yield super().setUp()
        yield self.login()

    @inlineCallbacks
    def test_versions(self) -> Generator[Any, Any, None]:
        """version is v5.x, webapiVersion a plain dotted 2.11 or later."""
        version = yield self.text("/app/version", method="GET")
        self.assertTrue(version.startswith("v5."))
        api = yield self.text("/app/webapiVersion", method="GET")
        parts = tuple(int(p) for p in api.split("."))
        self.assertGreaterEqual(parts, (2, 11))

    @inlineCallbacks
    def test_build_info(self) -> Generator[Any, Any, None]:
        """buildInfo is a JSON object with qBittorrent's keys."""
        info = yield self.json("/app/buildInfo")
        self.assertEqual(set(info) >= {"qt", "libtorrent", "boost", "openssl", "bitness"}, True)

    @inlineCallbacks
    def test_preferences(self) -> Generator[Any, Any, None]:
        """preferences show the save path, port, limits and the switches
        managers read."""
        prefs = yield self.json("/app/preferences")
        self.assertEqual(prefs["save_path"], self.download_dir)
        self.assertEqual(prefs["listen_port"], self.session.port)
        self.assertEqual((prefs["dl_limit"], prefs["up_limit"]), (0, 0))
        self.assertFalse(prefs["queueing_enabled"])
        self.assertFalse(prefs["max_ratio_enabled"])
        path = yield self.text("/app/defaultSavePath", method="GET")
        self.assertEqual(path, self.download_dir)

    @inlineCallbacks
    def test_set_preferences_limits_and_save_path(self) -> Generator[Any, Any, None]:
        """setPreferences sets the session's throttles and the store's
        settings, and the default save path (relative: under the download dir)."""
        yield self.text("/app/setPreferences", data={"json": json.dumps(
            {"dl_limit": 100_000, "up_limit": 50_000, "save_path": "tv", "listen_port": 1})})
        self.assertEqual(self.session.download_throttle.rate, 100_000)
        self.assertEqual(self.session.upload_throttle.rate, 50_000)
        self.assertEqual(self.store.get_setting("download_limit", None), 100_000)
        prefs = yield self.json("/app/preferences")
        self.assertEqual((prefs["dl_limit"], prefs["up_limit"]), (100_000, 50_000))
        self.assertEqual(prefs["save_path"], os.path.join(self.download_dir, "tv"))
        self.assertNotEqual(prefs["listen_port"], 1)
        yield self.text("/app/setPreferences", data={"json": json.dumps({"dl_limit": 0})})
        self.assertIsNone(self.session.download_throttle.rate)
        self.assertIsNone(self.store.get_setting("download_limit", None))

    @inlineCallbacks
    def test_encryption(self) -> Generator[Any, Any, None]:
        """preferences' encryption is the session's mode (0 prefer, 1 force
        on, 2 force off); setPreferences changes the session and the stored
        setting; anything else is a 400 that changes nothing."""
        prefs = yield self.json("/app/preferences")
        self.assertEqual(prefs["encryption"], 0)
        for code, mode in ((1, "forced"), (2, "disabled"), (0, "enabled")):
            yield self.text("/app/setPreferences",
                            data={"json": json.dumps({"encryption": code})})
            self.assertEqual(self.session.encryption, mode)
            self.assertEqual(self.store.get_setting("encryption", None), mode)
            prefs = yield self.json("/app/preferences")
            self.assertEqual(prefs["encryption"], code)
        for bad in (3, "1", True, None):
            code, _ = yield self.status("/app/setPreferences", data={
                "json": json.dumps({"encryption": bad, "dl_limit": 5})})
            self.assertEqual(code, 400, bad)
        self.assertEqual(self.session.encryption, "enabled")
        self.assertIsNone(self.session.download_throttle.rate)

    @inlineCallbacks
    def test_logs_and_interfaces_empty(self) -> Generator[Any, Any, None]:
        """log/main, log/peers and the network interface lists answer []."""
        for path in ("/log/main", "/log/peers", "/app/networkInterfaceList",
                     "/app/networkInterfaceAddressList"):
            got = yield self.json(path)
            self.assertEqual(got, [], path)

    @inlineCallbacks
    def test_set_preferences_bad_input(self) -> Generator[Any, Any, None]:
        """Bad JSON, a non-integer limit, a save path with '..' or no json: 400."""
        for data in ({"json": "{"}, {"json": "[]"}, {"json": json.dumps({"dl_limit": "x"})},
                     {"json": json.dumps({"save_path": "../x"})}, {}):
            code, _ = yield self.status("/app/setPreferences", data=data)
            self.assertEqual(code, 400, data)


class QbtTransferTests(QbtCase):
    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        yield super().setUp()
        yield self.login()

    @inlineCallbacks
    def test_info(self) -> Generator[Any, Any, None]:
        """transfer/info has the speeds, totals, limits and status."""
        info = yield self.json("/transfer/info")
        self.assertEqual(info["dl_info_speed"], 0)
        self.assertEqual(info["connection_status"], "connected")
        self.assertEqual((info["dl_rate_limit"], info["up_rate_limit"]), (0, 0))

    @inlineCallbacks
    def test_limits(self) -> Generator[Any, Any, None]:
        """setDownloadLimit/setUploadLimit change the global throttles;
        downloadLimit/uploadLimit read them (0: unlimited)."""
        yield self.text("/transfer/setDownloadLimit", data={"limit": "2048"})
        yield self.text("/transfer/setUploadLimit", data={"limit": "1024"})
        down = yield self.text("/transfer/downloadLimit", method="GET")
        up = yield self.text("/transfer/uploadLimit", method="GET")
        self.assertEqual((down, up), ("2048", "1024"))
        yield self.text("/transfer/setDownloadLimit", data={"limit": "0"})
        self.assertIsNone(self.session.download_throttle.rate)
        code, _ = yield self.status("/transfer/setUploadLimit", data={})
        self.assertEqual(code, 400)
