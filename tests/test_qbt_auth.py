"""qBittorrent API: auth/login and logout, the 403 without a session, the
other ways in (bearer token, native cookie), methods and content types."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

from twisted.internet.defer import inlineCallbacks

from tests.qbtcase import PASSWORD, USER, QbtCase
from txbittorrent.web.auth import SESSION_COOKIE
from txbittorrent.web.qbt.auth import BANNED


class QbtLoginTests(QbtCase):
    @inlineCallbacks
    def test_login_ok_sets_sid(self) -> Generator[Any, Any, None]:
        """Right credentials answer Ok. with an HttpOnly SID cookie on path /."""
        response, body = yield self.request("POST", "/auth/login",
                                            data={"username": USER, "password": PASSWORD})
        self.assertEqual((response.code, body), (200, b"Ok."))
        self.assertEqual(response.headers.getRawHeaders("Content-Type"),
                         ["text/plain; charset=UTF-8"])
        cookie = response.headers.getRawHeaders("Set-Cookie")[0]
        self.assertTrue(cookie.startswith("SID="))
        self.assertIn("HttpOnly", cookie)
        self.assertIn("Path=/", cookie)

    @inlineCallbacks
    def test_login_fails(self) -> Generator[Any, Any, None]:
        """Wrong credentials answer Fails. (200) and no cookie."""
        response, body = yield self.request("POST", "/auth/login",
                                            data={"username": USER, "password": "nope"})
        self.assertEqual((response.code, body), (200, b"Fails."))
        self.assertIsNone(response.headers.getRawHeaders("Set-Cookie"))

    @inlineCallbacks
    def test_login_without_username_fails(self) -> Generator[Any, Any, None]:
        """A login without a username answers Fails."""
        code, text = yield self.status("/auth/login", data={"password": PASSWORD})
        self.assertEqual((code, text), (200, "Fails."))

    @inlineCallbacks
    def test_banned_address_403(self) -> Generator[Any, Any, None]:
        """After too many failures the address is banned: 403 with qBittorrent's
        message, even with the right password."""
        for _ in range(self.guard.ban_threshold):
            yield self.status("/auth/login", data={"username": USER, "password": "x"})
        code, text = yield self.status("/auth/login",
                                       data={"username": USER, "password": PASSWORD})
        self.assertEqual((code, text), (403, BANNED))

    @inlineCallbacks
    def test_login_by_get_is_405(self) -> Generator[Any, Any, None]:
        """Login is an action: GET answers 405 with Allow: POST."""
        response, _ = yield self.request("GET", "/auth/login",
                                         params={"username": USER, "password": PASSWORD})
        self.assertEqual(response.code, 405)
        self.assertEqual(response.headers.getRawHeaders("Allow"), ["POST"])

    @inlineCallbacks
    def test_logout_ends_session(self) -> Generator[Any, Any, None]:
        """After logout the SID no longer works (403)."""
        yield self.login()
        text = yield self.text("/auth/logout")
        self.assertEqual(text, "")
        code, _ = yield self.status("/app/version", method="GET")
        self.assertEqual(code, 403)


class QbtSessionTests(QbtCase):
    @inlineCallbacks
    def test_no_session_is_403(self) -> Generator[Any, Any, None]:
        """Without a session every endpoint but login answers 403 Forbidden."""
        for path in ("/app/version", "/torrents/info", "/sync/maindata"):
            code, text = yield self.status(path, method="GET")
            self.assertEqual((code, text), (403, "Forbidden"))
        code, _ = yield self.status("/torrents/delete", data={"hashes": "all"})
        self.assertEqual(code, 403)

    @inlineCallbacks
    def test_unknown_sid_is_403(self) -> Generator[Any, Any, None]:
        """A made-up SID answers 403."""
        code, _ = yield self.status("/app/version", method="GET", cookie="SID=madeup")
        self.assertEqual(code, 403)

    @inlineCallbacks
    def test_cookie_with_attributes(self) -> Generator[Any, Any, None]:
        """A Cookie header carrying Set-Cookie's attributes back still
        authenticates."""
        yield self.login()
        text = yield self.text("/app/version", method="GET",
                               cookie=f"SID={self.sid}; HttpOnly; path=/")
        self.assertTrue(text.startswith("v"))

    @inlineCallbacks
    def test_bearer_token(self) -> Generator[Any, Any, None]:
        """The daemon's API token (Authorization: Bearer) is a session too."""
        token = self.store.create_token("t", 1.0)
        text = yield self.text("/app/webapiVersion", method="GET",
                               headers={"Authorization": f"Bearer {token}"})
        self.assertEqual(text, "2.11.2")
        code, _ = yield self.status("/app/version", method="GET",
                                    headers={"Authorization": "Bearer wrong"})
        self.assertEqual(code, 403)

    @inlineCallbacks
    def test_native_session_cookie(self) -> Generator[Any, Any, None]:
        """The native API's session cookie (from /login) is a session too."""
        session_id = yield self.guard.attempt_login("127.0.0.1", USER, PASSWORD)
        text = yield self.text("/app/version", method="GET",
                               cookie=f"{SESSION_COOKIE.decode()}={session_id}")
        self.assertTrue(text.startswith("v"))

    @inlineCallbacks
    def test_reads_take_get_and_post(self) -> Generator[Any, Any, None]:
        """A read answers GET, POST with a form, and POST with an empty body."""
        yield self.login()
        for method, data in (("GET", None), ("POST", {"x": "1"}), ("POST", None)):
            text = yield self.text("/app/webapiVersion", method=method, data=data)
            self.assertEqual(text, "2.11.2")
        listing = yield self.json("/torrents/info", method="POST")
        self.assertEqual(listing, [])

    @inlineCallbacks
    def test_head_has_no_body(self) -> Generator[Any, Any, None]:
        """HEAD of a read answers its headers (type, length) without a body."""
        yield self.login()
        response, body = yield self.request("HEAD", "/app/webapiVersion")
        self.assertEqual((response.code, body), (200, b""))
        self.assertEqual(response.headers.getRawHeaders("Content-Type"),
                         ["text/plain; charset=UTF-8"])
        self.assertEqual(response.headers.getRawHeaders("Content-Length"), ["6"])

    @inlineCallbacks
    def test_action_by_get_is_405(self) -> Generator[Any, Any, None]:
        """An action by GET answers 405."""
        yield self.login()
        code, _ = yield self.status("/torrents/stop", method="GET", params={"hashes": "all"})
        self.assertEqual(code, 405)

    @inlineCallbacks
    def test_unknown_endpoint_404(self) -> Generator[Any, Any, None]:
        """An unknown method or namespace answers 404."""
        yield self.login()
        for path in ("/app/nothing", "/nothing/version", "/app", "/app/version/more"):
            code, _ = yield self.status(path, method="GET")
            self.assertEqual(code, 404, path)

    @inlineCallbacks
    def test_guard_rules_still_apply(self) -> Generator[Any, Any, None]:
        """The Guard's Origin rule applies to /api/v2: a cross-origin login is 403."""
        code, _ = yield self.status("/auth/login", data={"username": USER, "password": PASSWORD},
                                    headers={"Origin": "http://evil.example"})
        self.assertEqual(code, 403)
