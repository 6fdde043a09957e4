"""The shared fixture of the native API's tests: ``ApiCase`` (a started
Session, an ApiResource on 127.0.0.1, a treq pool) and a few info hashes."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from typing import Any

import treq
from twisted.internet.defer import inlineCallbacks
from twisted.web.resource import Resource

from tests.webcase import WebCase, make_pool, open_store, serve
from txbittorrent.daemon.store import StateStore
from txbittorrent.storage.create import create_torrent
from txbittorrent.state import TorrentState
from txbittorrent.testing import make_files, wait_until
from txbittorrent.web.api import ApiResource

HASH1 = "0123456789abcdef0123456789abcdef01234567"
HASH2 = "89abcdef0123456789abcdef0123456789abcdef"
BASE32 = "AERUKZ4JVPG66AJDIVTYTK6N54ASGRLH"  # HASH1 in base32
MAGNET = f"magnet:?xt=urn:btih:{HASH2}&dn=hello"


class ApiCase(WebCase):
    """A started Session, an ApiResource on 127.0.0.1 and a treq pool, all
    cleaned up (torrents removed, session stopped, port closed)."""

    use_store = False

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        yield super().setUp()
        self.store: StateStore | None = None
        if self.use_store:
            self.store = open_store(self, os.path.join(self.download_dir, "state.sqlite"))
        root = Resource()
        self.api = ApiResource(
            self.session, store=self.store, download_dir=self.download_dir,
            clock=lambda: 1_700_000_000.0, **self.api_options(),
        )
        root.putChild(b"api", self.api)
        self.base = serve(self, root, "/api")
        self.pool = make_pool(self)

    def api_options(self) -> dict[str, Any]:
        """More keyword arguments for the ApiResource."""
        return {}

    @inlineCallbacks
    def call(
        self, method: str, path: str, body: Any = None, raw: bytes | None = None
    ) -> Generator[Any, Any, Any]:
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        response = yield treq.request(method, self.base + path, data=data, pool=self.pool)
        content = yield treq.content(response)
        self.assertEqual(
            response.headers.getRawHeaders("Content-Type"), ["application/json; charset=utf-8"]
        )
        return response, json.loads(content)

    @inlineCallbacks
    def seeding_torrent(self) -> Generator[Any, Any, Any]:
        """A real two-file .torrent whose data is on disk, added and seeding."""
        root = os.path.join(self.download_dir, "seed")
        make_files(os.path.join(root, "t"), {"a.bin": 70_000, "b/c.txt": 1000}, seed=5)
        raw = create_torrent(os.path.join(root, "t"), piece_length=16 * 1024)
        torrent = self.session.add(raw, basedir=root)
        yield torrent.start()
        yield torrent.when_complete()
        # Complete can come a turn before the check ends and the state says seeding.
        yield wait_until(lambda: torrent.state is TorrentState.SEEDING, 30,
                         "the torrent to be seeding", lambda: str(torrent.state))
        return torrent
