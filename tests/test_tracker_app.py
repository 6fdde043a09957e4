"""TrackerApp (what ``txbittorrent tracker`` runs) through real sockets on
127.0.0.1: without a database the listeners alone; with one the first
admin printed once, the stats API and /metrics mounted, private mode with
the database's passkeys, counters kept across a restart."""

from __future__ import annotations

import base64
import io
import os
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from txbittorrent.core.tracker.announce import AnnounceRequest, TrackerFailure
from txbittorrent.tracker.app import TrackerApp
from txbittorrent.tracker.client import HTTPTrackerClient
from txbittorrent.tracker.db import TrackerDB
from txbittorrent.tracker.serverconfig import TrackerServerConfig

INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
CONFIG = TrackerServerConfig(http=("tcp:0:interface=127.0.0.1",), udp_ports=())


def request(**changes: Any) -> AnnounceRequest:
    fields: dict[str, Any] = dict(info_hash=INFO_HASH, peer_id=b"-TX0010-aaaaaaaaaaaa",
                                  port=7001, uploaded=0, downloaded=0, left=0)
    fields.update(changes)
    return AnnounceRequest(**fields)


class TrackerAppTests(TestCase):
    """The tracker with and without its database."""

    timeout = 30

    def setUp(self) -> None:
        self.db_path = os.path.join(os.path.abspath(self.mktemp()) + ".sqlite")
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)
        self.http = HTTPTrackerClient(HTTPClient(Agent(reactor, pool=pool)), reactor, timeout=10)

    async def start(self, **options: Any) -> tuple[TrackerApp, str, str]:
        out = io.StringIO()
        app = TrackerApp(CONFIG, reactor=reactor, out=out, **options)
        app.startService()
        assert app.started is not None
        await app.started
        self.addCleanup(lambda: app.stopService() if app.running else None)
        assert app.tracker is not None
        base = app.tracker.announce_urls()[0].rsplit("/", 1)[0]
        return app, base, out.getvalue()

    def test_without_database(self) -> Deferred[None]:
        """No --db: announces work, /api and /metrics are not there."""
        return ensureDeferred(self._plain())

    async def _plain(self) -> None:
        _, base, printed = await self.start()
        self.assertEqual(printed, "")
        await self.http.announce(base + "/announce", request())
        for path in ("/api/status", "/metrics"):
            response = await treq.get(base + path, persistent=False)
            await response.content()
            self.assertEqual(response.code, 404, path)

    def test_private_with_database(self) -> Deferred[None]:
        """--db --private: the first start prints the admin's password and
        passkey once; the passkey announces, a wrong one is refused; the
        admin logs in to the API; /metrics counts the announce; the
        completed count survives a restart, which prints nothing."""
        return ensureDeferred(self._private())

    async def _private(self) -> None:
        app, base, printed = await self.start(db_path=self.db_path, private=True)
        fields = printed.split()
        password = fields[fields.index("password") + 1].rstrip(",")
        passkey = fields[fields.index("passkey") + 1]
        await self.http.announce(f"{base}/{passkey}/announce", request(left=10))
        await self.http.announce(f"{base}/{passkey}/announce", request(left=0))
        with self.assertRaises(TrackerFailure):
            await self.http.announce(f"{base}/wrong/announce", request())
        basic = base64.b64encode(f"admin:{password}".encode()).decode()
        response = await treq.post(base + "/api/login", persistent=False,
                                   headers={"Authorization": f"Basic {basic}"})
        login = await response.json()
        self.assertEqual(response.code, 200, login)
        response = await treq.get(base + "/api/status", persistent=False,
                                  headers={"Authorization": f"Bearer {login['key']}"})
        await response.content()
        self.assertEqual(response.code, 200)
        response = await treq.get(base + "/metrics", persistent=False)
        metrics = (await response.content()).decode()
        self.assertIn('tracker_announces_total{protocol="http"}', metrics)
        await app.stopService()
        db = TrackerDB(self.db_path)
        try:
            torrent = db.torrent(INFO_HASH)
            assert torrent is not None
            self.assertEqual(torrent.completed, 1)
        finally:
            db.close()
        _, _, printed = await self.start(db_path=self.db_path, private=True)
        self.assertEqual(printed, "")

    def test_user_torrent_limit(self) -> Deferred[None]:
        """A private user's own torrent limit, from the database, is enforced:
        a user with a limit of one is refused a second torrent; the admin
        (no limit of its own) is not."""
        return ensureDeferred(self._user_limit())

    async def _user_limit(self) -> None:
        db = TrackerDB(self.db_path)
        try:
            db.create_user("admin", "admin's password", 0.0, admin=True)
            _, passkey = db.create_user("bob", "bob's password", 0.0, torrent_limit=1)
        finally:
            db.close()
        _, base, _ = await self.start(db_path=self.db_path, private=True)
        url = f"{base}/{passkey}/announce"
        await self.http.announce(url, request(left=10))
        with self.assertRaises(TrackerFailure) as caught:
            await self.http.announce(url, request(info_hash=b"\x02" * 20, left=10))
        self.assertIn("torrent limit reached", str(caught.exception))
        await self.http.announce(url, request(left=0))  # the torrent it is in: fine

    def test_private_needs_database(self) -> None:
        """Private mode or the database's whitelist without a database is a ValueError."""
        self.assertRaises(ValueError, TrackerApp, CONFIG, private=True)
        self.assertRaises(ValueError, TrackerApp, CONFIG, db_whitelist=True)
