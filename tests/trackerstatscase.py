"""The fixture of the tracker stats API tests: a TrackerState with three
swarms, a TrackerDB with an admin and a plain user, TrackerStats, and
``/api`` + ``/metrics`` mounted on a Site listening on 127.0.0.1; a treq
helper that speaks JSON, with Basic, Bearer or TXBT-HMAC credentials."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
from collections.abc import Generator
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.internet.task import Clock
from twisted.trial.unittest import TestCase
from twisted.web.client import HTTPConnectionPool
from twisted.web.resource import Resource
from twisted.web.server import Site

from txbittorrent.core.tracker.registry import Announce, TrackerState
from txbittorrent.core.tracker.stats import TrackerStats
from txbittorrent.tracker.db import TrackerDB
from txbittorrent.tracker.stats import mount_stats
from txbittorrent.tracker.stats.signing import sign

NOW = 1_000_000.0
H1, H2, H3 = b"\x01" * 20, b"\x02" * 20, b"\x03" * 20
ADMIN, ADMIN_PASSWORD = "root", "admin password"
USER, USER_PASSWORD = "alice", "alice password"


def fill(state: TrackerState, now: float) -> None:
    """H1: 2 seeders and 1 leecher; H2: 1 leecher; H3: 1 seeder that completed."""
    peers = [(H1, 0, 1), (H1, 0, 2), (H1, 50, 3), (H2, 10, 4), (H3, 10, 5)]
    for info_hash, left, n in peers:
        state.announce(Announce(info_hash, b"-TX0010-%012d" % n, "127.0.0.1", 6880 + n, left), now)
    from txbittorrent.core.tracker.announce import AnnounceEvent
    state.announce(Announce(H3, b"-TX0010-%012d" % 5, "127.0.0.1", 6885, 0,
                            event=AnnounceEvent.COMPLETED), now)


class StatsApiCase(TestCase):
    """Builds the fixture (see the module docstring)."""

    timeout = 30

    def setUp(self) -> None:
        self.clock = Clock()
        self.clock.advance(NOW)
        self.state = TrackerState(random.Random(1))
        fill(self.state, NOW)
        directory = self.mktemp()
        os.makedirs(directory)
        self.db = TrackerDB(os.path.join(directory, "tracker.sqlite"))
        self.addCleanup(self.db.close)
        self.admin, self.admin_passkey = self.db.create_user(ADMIN, ADMIN_PASSWORD, NOW,
                                                             admin=True)
        self.user, self.user_passkey = self.db.create_user(USER, USER_PASSWORD, NOW,
                                                           torrent_limit=5)
        self.db.seen(H1, NOW - 100)
        self.db.add_completed(H1, 7)
        self.db.flush()
        self.db.add_whitelist(H1)
        self.stats = TrackerStats(self.clock.seconds)
        self.root = Resource()
        self.api = mount_stats(self.root, self.state, self.db, self.stats, self.clock)
        port = reactor.listenTCP(0, Site(self.root), interface="127.0.0.1")  # type: ignore[attr-defined]
        self.addCleanup(port.stopListening)
        self.base = f"http://127.0.0.1:{port.getHost().port}"
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    @inlineCallbacks
    def call(
        self, method: str, path: str, *, body: bytes | None = None, json_body: Any = None,
        headers: dict[bytes, list[bytes]] | None = None,
    ) -> Generator[Any, Any, tuple[int, Any, Any]]:
        """(status, decoded JSON or text, response headers) of one request."""
        if json_body is not None:
            body = json.dumps(json_body).encode()
        response = yield treq.request(method, self.base + path, data=body,
                                      headers=headers or {}, pool=self.pool)
        content = yield treq.content(response)
        kind = response.headers.getRawHeaders(b"content-type", [b""])[0]
        decoded = json.loads(content) if kind == b"application/json" else content.decode()
        return response.code, decoded, response.headers

    def basic(self, name: str, password: str) -> dict[bytes, list[bytes]]:
        token = base64.b64encode(f"{name}:{password}".encode())
        return {b"Authorization": [b"Basic " + token]}

    @inlineCallbacks
    def login(self, name: str = ADMIN, password: str = ADMIN_PASSWORD) -> Generator[Any, Any, dict[str, Any]]:
        """The JSON of a successful login."""
        code, body, _ = yield self.call("POST", "/api/login", headers=self.basic(name, password))
        self.assertEqual(code, 200, body)
        return body  # type: ignore[no-any-return]

    def bearer(self, key: str) -> dict[bytes, list[bytes]]:
        return {b"Authorization": [b"Bearer " + key.encode()]}

    def signed(self, login: dict[str, Any], method: str, target: str, body: bytes = b"", *,
               nonce: str = "nonce-0001", timestamp: int | None = None,
               signature: str | None = None) -> dict[bytes, list[bytes]]:
        """TXBT-HMAC headers for a request (the secret is SHA-256 of the key)."""
        when = int(NOW) if timestamp is None else timestamp
        secret = hashlib.sha256(login["key"].encode()).digest()
        mac = signature or sign(secret, method, target, when, nonce, body)
        value = (f'TXBT-HMAC key_id={login["key_id"]}, nonce={nonce}, timestamp={when},'
                 f" signature={mac}")
        return {b"Authorization": [value.encode()]}
