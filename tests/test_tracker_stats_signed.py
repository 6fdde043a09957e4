"""Tests for the tracker API's TXBT-HMAC signed requests, over real sockets on
127.0.0.1, and for txbittorrent.tracker.stats.signing's pure parts."""

from __future__ import annotations

import json
from collections.abc import Generator
from typing import Any

from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import SynchronousTestCase

from tests.trackerstatscase import H2, NOW, USER, USER_PASSWORD, StatsApiCase
from txbittorrent.tracker.stats.signing import (
    LoginLimiter,
    NonceCache,
    parse_signed_header,
    string_to_sign,
)


class SignedRequestTests(StatsApiCase):
    """Requests signed with the key's SHA-256 instead of sending the key."""

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        super().setUp()
        self.admin_login = yield self.login()
        self.user_login = yield self.login(USER, USER_PASSWORD)

    @inlineCallbacks
    def test_signed_get(self) -> Generator[Any, Any, None]:
        """A correctly signed GET (query included) is answered."""
        target = "/api/torrents?limit=1"
        code, body, _ = yield self.call("GET", target,
                                        headers=self.signed(self.user_login, "GET", target))
        self.assertEqual(code, 200, body)
        self.assertEqual(len(body["torrents"]), 1)

    @inlineCallbacks
    def test_replayed_nonce_refused(self) -> Generator[Any, Any, None]:
        """The same signed request sent twice is refused the second time (401)."""
        headers = self.signed(self.user_login, "GET", "/api/status", nonce="replay-me-1")
        code, _, _ = yield self.call("GET", "/api/status", headers=headers)
        self.assertEqual(code, 200)
        code, body, _ = yield self.call("GET", "/api/status", headers=headers)
        self.assertEqual(code, 401)
        self.assertIn("nonce", body["error"])

    @inlineCallbacks
    def test_wrong_signature_refused(self) -> Generator[Any, Any, None]:
        """A signature over another path, by another key, or made up is 401."""
        cases = [
            self.signed(self.user_login, "GET", "/api/torrents"),
            self.signed(dict(self.user_login, key=self.admin_login["key"]), "GET", "/api/status"),
            self.signed(self.user_login, "GET", "/api/status", signature="0" * 64),
            self.signed(self.user_login, "POST", "/api/status"),
        ]
        for n, headers in enumerate(cases):
            code, body, _ = yield self.call("GET", "/api/status", headers=headers)
            self.assertEqual(code, 401, n)
            self.assertIn("error", body)

    @inlineCallbacks
    def test_stale_timestamp_refused(self) -> Generator[Any, Any, None]:
        """A timestamp more than the window away from the server's clock is 401."""
        for when in (int(NOW) - 301, int(NOW) + 301):
            headers = self.signed(self.user_login, "GET", "/api/status", timestamp=when)
            code, body, _ = yield self.call("GET", "/api/status", headers=headers)
            self.assertEqual(code, 401)
            self.assertIn("timestamp", body["error"])

    @inlineCallbacks
    def test_malformed_header_refused(self) -> Generator[Any, Any, None]:
        """A TXBT-HMAC header missing a parameter, or with a short nonce, is 401."""
        for value in [b"TXBT-HMAC key_id=ab, nonce=abcdefgh, timestamp=1",
                      b"TXBT-HMAC key_id=ab, nonce=short, timestamp=1, signature=" + b"0" * 64]:
            code, body, _ = yield self.call("GET", "/api/status",
                                            headers={b"Authorization": [value]})
            self.assertEqual(code, 401)
            self.assertIn("error", body)

    @inlineCallbacks
    def test_signed_admin_write(self) -> Generator[Any, Any, None]:
        """An admin's signed POST covers its body: it works, and a changed body is refused."""
        body = json.dumps({"info_hash": H2.hex()}).encode()
        headers = self.signed(self.admin_login, "POST", "/api/whitelist", body, nonce="write-01")
        code, reply, _ = yield self.call("POST", "/api/whitelist", body=body, headers=headers)
        self.assertEqual(code, 201, reply)
        self.assertTrue(self.db.whitelisted(H2))
        other = json.dumps({"info_hash": "ff" * 20}).encode()
        headers = self.signed(self.admin_login, "POST", "/api/whitelist", body, nonce="write-02")
        code, _, _ = yield self.call("POST", "/api/whitelist", body=other, headers=headers)
        self.assertEqual(code, 401)
        self.assertFalse(self.db.whitelisted(b"\xff" * 20))

    @inlineCallbacks
    def test_signed_non_admin_write_refused(self) -> Generator[Any, Any, None]:
        """A plain user's correctly signed DELETE is 403."""
        target = "/api/whitelist/" + "01" * 20
        headers = self.signed(self.user_login, "DELETE", target)
        code, _, _ = yield self.call("DELETE", target, headers=headers)
        self.assertEqual(code, 403)


class NonceCacheTests(SynchronousTestCase):
    """The bounded nonce cache."""

    def test_replay_and_window(self) -> None:
        """A nonce is accepted once; timestamps outside the window never."""
        cache = NonceCache(window=300, max_entries=10)
        self.assertTrue(cache.use("k", "n1", 1000, 1000.0))
        self.assertFalse(cache.use("k", "n1", 1000, 1001.0))
        self.assertTrue(cache.use("other", "n1", 1000, 1001.0))
        self.assertFalse(cache.use("k", "n2", 600, 1000.0))
        self.assertFalse(cache.use("k", "n3", 1400, 1000.0))

    def test_forgets_old_nonces(self) -> None:
        """Nonces older than the window are dropped (their timestamps are refused anyway)."""
        cache = NonceCache(window=300, max_entries=10)
        cache.use("k", "n1", 1000, 1000.0)
        cache.use("k", "n2", 1100, 1100.0)
        cache.use("k", "n3", 1400, 1400.0)
        self.assertEqual(len(cache), 2)
        self.assertFalse(cache.use("k", "n1", 1000, 1400.0))

    def test_eviction_raises_floor(self) -> None:
        """Past max_entries the oldest nonce goes and its timestamp becomes the floor,
        so it cannot be replayed while still inside the window."""
        cache = NonceCache(window=300, max_entries=2)
        for n, when in enumerate((1000, 1001, 1002)):
            self.assertTrue(cache.use("k", f"n{n}", when, 1002.0))
        self.assertEqual((len(cache), cache.floor), (2, 1000))
        self.assertFalse(cache.use("k", "n0", 1000, 1003.0))
        self.assertTrue(cache.use("k", "n9", 1001, 1003.0))


class HeaderTests(SynchronousTestCase):
    """Parsing the header and the string to sign."""

    def test_parse(self) -> None:
        """The four parameters parse in any order, quoted or not; anything odd is None."""
        good = parse_signed_header(
            'TXBT-HMAC nonce="abcdefgh", key_id=0a1b, signature=' + "A" * 64 + ", timestamp=12")
        assert good is not None
        self.assertEqual((good.key_id, good.nonce, good.timestamp, good.signature),
                         ("0a1b", "abcdefgh", 12, "a" * 64))
        for bad in ["Bearer x", "TXBT-HMAC key_id=0a, nonce=abcdefgh, timestamp=1",
                    "TXBT-HMAC key_id=0a, nonce=abcdefgh, timestamp=-1, signature=" + "a" * 64,
                    "TXBT-HMAC key_id=0a, key_id=0b, nonce=abcdefgh, timestamp=1, signature="
                    + "a" * 64]:
            self.assertIsNone(parse_signed_header(bad), bad)

    def test_string_to_sign(self) -> None:
        """Method, target, timestamp, nonce and the body's SHA-256, one per line."""
        self.assertEqual(
            string_to_sign("get", "/api/status?x=1", 5, "abcdefgh", b""),
            b"GET\n/api/status?x=1\n5\nabcdefgh\n"
            b"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")


class LoginLimiterTests(SynchronousTestCase):
    """Bans after failed logins."""

    def test_ban_and_expiry(self) -> None:
        """Threshold failures in the window ban for ban_duration; old failures don't count."""
        limiter = LoginLimiter(threshold=3, window=60, ban_duration=100)
        limiter.failed("a", 0.0)
        limiter.failed("a", 70.0)
        limiter.failed("a", 80.0)
        self.assertFalse(limiter.banned("a", 80.0))
        limiter.failed("a", 90.0)
        self.assertTrue(limiter.banned("a", 90.0))
        self.assertFalse(limiter.banned("b", 90.0))
        self.assertFalse(limiter.banned("a", 190.0))
