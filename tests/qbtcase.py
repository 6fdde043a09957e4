"""The shared fixture of the qBittorrent API's tests: ``QbtCase`` (a started
Session, a StateStore with a user, a ``QbtResource`` at ``/api/v2`` behind
a real ``Guard`` delegating it, on 127.0.0.1, and a treq pool).  It holds
no tests itself."""

from __future__ import annotations

import io
import json
import os
from collections.abc import Generator, Mapping
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.web.resource import Resource

from tests.webcase import WebCase, make_pool, open_store, serve
from txbittorrent.storage.create import create_torrent
from txbittorrent.state import TorrentState
from txbittorrent.testing import make_files, wait_until
from txbittorrent.web.auth import Guard
from txbittorrent.web.qbt import QbtResource

USER, PASSWORD = "admin", "s3cret"
HASH1 = "0123456789abcdef0123456789abcdef01234567"
HASH2 = "89abcdef0123456789abcdef0123456789abcdef"
MAGNET = f"magnet:?xt=urn:btih:{HASH2}&dn=hello"
NOW = 1_700_000_000.0


class QbtCase(WebCase):
    """See the module docstring; ``self.sid`` holds a logged-in SID after
    ``login()``."""

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        yield super().setUp()
        self.store = open_store(self, os.path.join(self.download_dir, "state.sqlite"))
        self.store.set_password(USER, PASSWORD)
        self.qbt = QbtResource(self.session, store=self.store, download_dir=self.download_dir,
                               clock=lambda: NOW)
        root, api = Resource(), Resource()
        root.putChild(b"api", api)
        api.putChild(b"v2", self.qbt)
        self.guard = Guard(root, store=self.store, clock=reactor, delegated=[b"/api/v2"],
                           max_body=12 << 20)
        self.qbt.guard = self.guard
        self.base = serve(self, self.guard.site(), "/api/v2")
        self.pool = make_pool(self)
        self.sid: str | None = None

    @inlineCallbacks
    def request(
        self, method: str, path: str, data: Mapping[str, Any] | None = None,
        files: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None, cookie: str | None = None,
    ) -> Generator[Any, Any, tuple[Any, bytes]]:
        """(response, body) of one request; the SID cookie goes along when
        logged in (``cookie`` overrides the whole Cookie header)."""
        sent = dict(headers or {})
        if cookie is not None:
            sent["Cookie"] = cookie
        elif self.sid is not None:
            sent["Cookie"] = f"SID={self.sid}"
        kwargs: dict[str, Any] = {"pool": self.pool, "headers": sent}
        if data is not None:
            kwargs["data"] = data
        if files is not None:
            kwargs["files"] = {k: (f"{k}.torrent", io.BytesIO(v)) if isinstance(v, bytes) else v
                               for k, v in files.items()}
        if params is not None:
            kwargs["params"] = params
        response = yield treq.request(method, self.base + path, **kwargs)
        body = yield treq.content(response)
        return response, body

    @inlineCallbacks
    def login(self) -> Generator[Any, Any, None]:
        response, body = yield self.request("POST", "/auth/login",
                                            data={"username": USER, "password": PASSWORD})
        self.assertEqual((response.code, body), (200, b"Ok."))
        cookies = response.headers.getRawHeaders("Set-Cookie")
        self.sid = cookies[0].split(";")[0].split("=", 1)[1]

    @inlineCallbacks
    def text(self, path: str, method: str = "POST", **kwargs: Any) -> Generator[Any, Any, str]:
        """A 200 plain-text answer's text."""
        response, body = yield self.request(method, path, **kwargs)
        self.assertEqual(response.code, 200, body)
        self.assertEqual(response.headers.getRawHeaders("Content-Type"),
                         ["text/plain; charset=UTF-8"])
        return body.decode("utf-8")

    @inlineCallbacks
    def json(self, path: str, method: str = "GET", **kwargs: Any) -> Generator[Any, Any, Any]:
        """A 200 JSON answer, decoded."""
        response, body = yield self.request(method, path, **kwargs)
        self.assertEqual(response.code, 200, body)
        self.assertEqual(response.headers.getRawHeaders("Content-Type"), ["application/json"])
        return json.loads(body)

    @inlineCallbacks
    def status(self, path: str, method: str = "POST", **kwargs: Any) -> Generator[Any, Any, Any]:
        """(status, text) of an answer."""
        response, body = yield self.request(method, path, **kwargs)
        return response.code, body.decode("utf-8")

    def seed_files(self, name: str = "t") -> tuple[str, bytes]:
        """(save path, .torrent bytes) of a two-file torrent whose data is on disk."""
        root = os.path.join(self.download_dir, "seed")
        make_files(os.path.join(root, name), {"a.bin": 70_000, "b/c.txt": 1000}, seed=5)
        return root, create_torrent(os.path.join(root, name), piece_length=16 * 1024)

    @inlineCallbacks
    def add_seed(self, **fields: str) -> Generator[Any, Any, Any]:
        """Add the seeded torrent through torrents/add and wait until it seeds."""
        root, raw = self.seed_files()
        text = yield self.text("/torrents/add", data={"savepath": root, **fields},
                               files={"torrents": raw})
        self.assertEqual(text, "Ok.")
        torrent = self.session.torrents()[-1]
        yield torrent.when_complete()
        # Complete can come a turn before the check ends and the state says seeding.
        yield wait_until(lambda: torrent.state is TorrentState.SEEDING, 30,
                         "the torrent to be seeding", lambda: str(torrent.state))
        return torrent
