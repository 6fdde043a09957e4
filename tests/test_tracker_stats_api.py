"""Tests for txbittorrent.tracker.stats.api: the tracker's /api over real sockets on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks

from tests.trackerstatscase import ADMIN, H1, H2, H3, NOW, USER, USER_PASSWORD, StatsApiCase


class LoginTests(StatsApiCase):
    """POST /api/login with HTTP Basic, and logout."""

    @inlineCallbacks
    def test_login_issues_key(self) -> Generator[Any, Any, None]:
        """The right password gives a key that works as a bearer token."""
        body = yield self.login(USER, USER_PASSWORD)
        self.assertEqual((body["user"], body["admin"]), (USER, False))
        self.assertEqual(body["expires_at"], NOW + self.api.key_lifetime)
        code, status, _ = yield self.call("GET", "/api/status", headers=self.bearer(body["key"]))
        self.assertEqual(code, 200)

    @inlineCallbacks
    def test_wrong_password(self) -> Generator[Any, Any, None]:
        """A wrong password or an unknown user is 401 JSON with WWW-Authenticate."""
        for name, password in [(USER, "not it at all"), ("nobody", USER_PASSWORD)]:
            code, body, headers = yield self.call("POST", "/api/login",
                                                  headers=self.basic(name, password))
            self.assertEqual(code, 401)
            self.assertIn("error", body)
            self.assertIn(b"Basic", headers.getRawHeaders(b"www-authenticate")[0])

    @inlineCallbacks
    def test_malformed_basic(self) -> Generator[Any, Any, None]:
        """No credentials, another scheme or bad base64 is 401 JSON."""
        for value in [None, b"Bearer abc", b"Basic !!!notbase64", b"Basic " + b"bm9jb2xvbg=="]:
            headers = {} if value is None else {b"Authorization": [value]}
            code, body, _ = yield self.call("POST", "/api/login", headers=headers)
            self.assertEqual(code, 401, value)
            self.assertIn("error", body)

    @inlineCallbacks
    def test_ban_after_failures(self) -> Generator[Any, Any, None]:
        """Five failures ban the address: even the right password is then 403."""
        for _ in range(5):
            code, _, _ = yield self.call("POST", "/api/login",
                                         headers=self.basic(USER, "wrong password"))
            self.assertEqual(code, 401)
        code, body, _ = yield self.call("POST", "/api/login",
                                        headers=self.basic(USER, USER_PASSWORD))
        self.assertEqual(code, 403)
        self.assertIn("error", body)

    @inlineCallbacks
    def test_login_in_thread_pool(self) -> Generator[Any, Any, None]:
        """With a thread pool, the scrypt check runs there and the login still works."""
        self.api.threadpool = reactor.getThreadPool()  # type: ignore[attr-defined]
        self.api.reactor = reactor
        body = yield self.login(USER, USER_PASSWORD)
        self.assertEqual(body["user"], USER)

    @inlineCallbacks
    def test_logout_revokes(self) -> Generator[Any, Any, None]:
        """After POST /api/logout the key is refused."""
        body = yield self.login()
        code, _, _ = yield self.call("POST", "/api/logout", headers=self.bearer(body["key"]))
        self.assertEqual(code, 200)
        code, _, _ = yield self.call("GET", "/api/status", headers=self.bearer(body["key"]))
        self.assertEqual(code, 401)


class ReadTests(StatsApiCase):
    """The read-only routes."""

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        super().setUp()
        login = yield self.login(USER, USER_PASSWORD)
        self.auth = self.bearer(login["key"])

    @inlineCallbacks
    def test_unauthenticated(self) -> Generator[Any, Any, None]:
        """Every route but login needs credentials: 401 JSON; a wrong bearer too."""
        for path in ["/api/status", "/api/torrents", "/api/users", "/api/whitelist"]:
            code, body, _ = yield self.call("GET", path)
            self.assertEqual(code, 401, path)
            self.assertIn("error", body)
        code, _, _ = yield self.call("GET", "/api/status", headers=self.bearer("0" * 64))
        self.assertEqual(code, 401)

    @inlineCallbacks
    def test_status(self) -> Generator[Any, Any, None]:
        """Status: uptime, swarms, peers, memory and request rates by protocol."""
        for _ in range(6):
            self.stats.announce("udp")
        self.stats.scrape("http")
        self.clock.advance(30)
        code, body, _ = yield self.call("GET", "/api/status", headers=self.auth)
        self.assertEqual(code, 200)
        self.assertEqual(body["uptime"], 30.0)
        self.assertEqual(body["swarms"], 3)
        self.assertEqual(body["peers"], {"seeders": 3, "leechers": 2, "total": 5, "as_of": None})
        self.assertGreater(body["memory"]["rss_bytes"], 1 << 20)
        self.assertEqual(body["requests"]["udp"]["announces"],
                         {"total": 6, "per_second": {"1m": 0.2, "5m": 0.2, "15m": 0.2}})
        self.assertEqual(body["requests"]["http"]["scrapes"]["total"], 1)
        self.assertEqual(body["requests"]["all"]["announces"]["total"], 6)
        self.assertEqual(body["requests"]["all"]["errors"]["total"], 0)

    @inlineCallbacks
    def test_torrents_paged(self) -> Generator[Any, Any, None]:
        """Torrents come most recently announced first, then whitelisted ones without a
        swarm by info hash, with counts, first seen and completed."""
        h4, h0 = b"\x04" * 20, b"\x00" * 20
        self.db.add_whitelist(h4)
        self.db.add_whitelist(h0)
        code, body, _ = yield self.call("GET", "/api/torrents?limit=2", headers=self.auth)
        self.assertEqual(code, 200)
        self.assertEqual((body["total"], body["offset"], body["limit"]), (5, 0, 2))
        self.assertEqual([t["info_hash"] for t in body["torrents"]], [H3.hex(), H2.hex()])
        self.assertEqual(body["torrents"][0]["completed"], 1)
        code, body, _ = yield self.call("GET", "/api/torrents?offset=2&limit=2",
                                        headers=self.auth)
        self.assertEqual(body["torrents"][0], {
            "info_hash": H1.hex(), "seeders": 2, "leechers": 1, "completed": 7,
            "first_seen": NOW - 100, "whitelisted": True,
        })
        self.assertEqual(body["torrents"][1]["info_hash"], h0.hex())
        code, body, _ = yield self.call("GET", "/api/torrents?offset=4&limit=3",
                                        headers=self.auth)
        self.assertEqual(body["torrents"], [{
            "info_hash": h4.hex(), "seeders": 0, "leechers": 0, "completed": 0,
            "first_seen": None, "whitelisted": True,
        }])

    @inlineCallbacks
    def test_bad_paging(self) -> Generator[Any, Any, None]:
        """A limit or offset that is not a number in range is 400 JSON."""
        for query in ["limit=0", "limit=501", "limit=x", "offset=-1", "limit=1&limit=2"]:
            code, body, _ = yield self.call("GET", "/api/torrents?" + query, headers=self.auth)
            self.assertEqual(code, 400, query)
            self.assertIn("error", body)

    @inlineCallbacks
    def test_one_torrent(self) -> Generator[Any, Any, None]:
        """One torrent by hex info hash; unknown is 404, malformed 400."""
        code, body, _ = yield self.call("GET", f"/api/torrents/{H2.hex()}", headers=self.auth)
        self.assertEqual((code, body["leechers"], body["seeders"]), (200, 1, 0))
        code, body, _ = yield self.call("GET", f"/api/torrents/{'ab' * 20}", headers=self.auth)
        self.assertEqual(code, 404)
        for bad in ["zz" * 20, "abc", "ab" * 21]:
            code, body, _ = yield self.call("GET", f"/api/torrents/{bad}", headers=self.auth)
            self.assertEqual(code, 400, bad)
            self.assertIn("error", body)

    @inlineCallbacks
    def test_whitelist(self) -> Generator[Any, Any, None]:
        """Any user may read the whitelist."""
        code, body, _ = yield self.call("GET", "/api/whitelist", headers=self.auth)
        self.assertEqual((code, body), (200, {"whitelist": [H1.hex()]}))

    @inlineCallbacks
    def test_users_admin_only(self) -> Generator[Any, Any, None]:
        """A plain user gets 403 for the user list; an admin sees users, keys and totals."""
        code, body, _ = yield self.call("GET", "/api/users", headers=self.auth)
        self.assertEqual(code, 403)
        self.db.account(self.user.user_id, H1, 100, 20)
        self.db.flush()
        login = yield self.login()
        code, body, _ = yield self.call("GET", "/api/users", headers=self.bearer(login["key"]))
        self.assertEqual(code, 200)
        by_name = {u["name"]: u for u in body["users"]}
        self.assertEqual(set(by_name), {ADMIN, USER})
        self.assertEqual((by_name[USER]["uploaded"], by_name[USER]["downloaded"]), (100, 20))
        self.assertEqual(by_name[USER]["torrent_limit"], 5)
        self.assertEqual(len(by_name[USER]["keys"]), 1)
        self.assertEqual([k["key_id"] for k in by_name[ADMIN]["keys"]], [login["key_id"]])
        self.assertNotIn("key", by_name[ADMIN]["keys"][0])

    @inlineCallbacks
    def test_unknown_route_and_method(self) -> Generator[Any, Any, None]:
        """An unknown path is 404 JSON; a known path with another method 405 with Allow."""
        code, body, _ = yield self.call("GET", "/api/nothing", headers=self.auth)
        self.assertEqual(code, 404)
        self.assertIn("error", body)
        code, body, headers = yield self.call("GET", "/api/login")
        self.assertEqual(code, 405)
        self.assertEqual(headers.getRawHeaders(b"allow"), [b"POST"])
        code, _, _ = yield self.call("PUT", "/api/whitelist", headers=self.auth)
        self.assertEqual(code, 405)


class WriteTests(StatsApiCase):
    """The admin's changes."""

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        super().setUp()
        login = yield self.login()
        self.auth = self.bearer(login["key"])
        user_login = yield self.login(USER, USER_PASSWORD)
        self.user_auth = self.bearer(user_login["key"])

    @inlineCallbacks
    def test_non_admin_writes_refused(self) -> Generator[Any, Any, None]:
        """A plain user's POST and DELETE are 403 and change nothing."""
        code, _, _ = yield self.call("POST", "/api/whitelist", json_body={"info_hash": H2.hex()},
                                     headers=self.user_auth)
        self.assertEqual(code, 403)
        code, _, _ = yield self.call("DELETE", f"/api/whitelist/{H1.hex()}",
                                     headers=self.user_auth)
        self.assertEqual(code, 403)
        code, _, _ = yield self.call("POST", "/api/users",
                                     json_body={"name": "eve", "password": "password1"},
                                     headers=self.user_auth)
        self.assertEqual(code, 403)
        code, _, _ = yield self.call("POST", f"/api/users/{USER}/passkey", headers=self.user_auth)
        self.assertEqual(code, 403)
        self.assertEqual(self.db.whitelist(), frozenset({H1}))
        self.assertIsNone(self.db.user_named("eve"))

    @inlineCallbacks
    def test_whitelist_add_remove(self) -> Generator[Any, Any, None]:
        """An admin adds (201) and removes (200) whitelist entries; removing again is 404."""
        code, body, _ = yield self.call("POST", "/api/whitelist",
                                        json_body={"info_hash": H2.hex().upper()},
                                        headers=self.auth)
        self.assertEqual((code, body), (201, {"info_hash": H2.hex(), "whitelisted": True}))
        self.assertTrue(self.db.whitelisted(H2))
        code, _, _ = yield self.call("DELETE", f"/api/whitelist/{H1.hex()}", headers=self.auth)
        self.assertEqual(code, 200)
        self.assertFalse(self.db.whitelisted(H1))
        code, _, _ = yield self.call("DELETE", f"/api/whitelist/{H1.hex()}", headers=self.auth)
        self.assertEqual(code, 404)

    @inlineCallbacks
    def test_create_user_and_reset_passkey(self) -> Generator[Any, Any, None]:
        """An admin creates a user (with a working passkey) and resets a passkey."""
        self.api.threadpool = reactor.getThreadPool()  # type: ignore[attr-defined]
        self.api.reactor = reactor
        code, body, _ = yield self.call(
            "POST", "/api/users", headers=self.auth,
            json_body={"name": "bob", "password": "bob's password", "torrent_limit": 2})
        self.assertEqual(code, 201)
        self.assertEqual((body["name"], body["admin"], body["torrent_limit"]), ("bob", False, 2))
        self.assertEqual(self.db.user_for_passkey(body["passkey"]), body["user_id"])
        code, again, _ = yield self.call("POST", "/api/users", headers=self.auth,
                                         json_body={"name": "bob", "password": "other pass"})
        self.assertEqual(code, 400)
        code, reset, _ = yield self.call("POST", "/api/users/bob/passkey", headers=self.auth)
        self.assertEqual(code, 200)
        self.assertIsNone(self.db.user_for_passkey(body["passkey"]))
        self.assertEqual(self.db.user_for_passkey(reset["passkey"]), body["user_id"])
        code, _, _ = yield self.call("POST", "/api/users/nobody/passkey", headers=self.auth)
        self.assertEqual(code, 404)

    @inlineCallbacks
    def test_bad_bodies(self) -> Generator[Any, Any, None]:
        """Bodies that are not the JSON object expected are 400 JSON; oversized ones 413."""
        cases = [b"not json", b"[1, 2]", b'{"info_hash": 5}', b'{"info_hash": "abc"}',
                 b"\xff\xfe"]
        for raw in cases:
            code, body, _ = yield self.call("POST", "/api/whitelist", body=raw, headers=self.auth)
            self.assertEqual(code, 400, raw)
            self.assertIn("error", body)
        for fields in [{"name": "x"}, {"name": "x", "password": "password1", "admin": "yes"},
                       {"name": "x", "password": "password1", "torrent_limit": -1},
                       {"name": "x", "password": "short"}]:
            code, body, _ = yield self.call("POST", "/api/users", json_body=fields,
                                            headers=self.auth)
            self.assertEqual(code, 400, fields)
        code, body, _ = yield self.call("POST", "/api/whitelist", body=b"x" * (64 * 1024 + 1),
                                        headers=self.auth)
        self.assertEqual(code, 413)
        self.assertIn("error", body)
