"""The stats API, /metrics, TrackerDB and TrackerRecorder mounted on a real
TrackerService in private, whitelisted mode, over 127.0.0.1 (the wiring the
lead will put in the service: this test does it from outside)."""

from __future__ import annotations

import hashlib
import os
import random
from typing import Any

import treq
from treq.client import HTTPClient
from twisted.internet import reactor
from twisted.internet.defer import Deferred, ensureDeferred
from twisted.trial.unittest import TestCase
from twisted.web.client import Agent, HTTPConnectionPool

from txbittorrent.core.tracker.announce import AnnounceEvent, AnnounceRequest, TrackerFailure
from txbittorrent.core.tracker.stats import TrackerStats
from txbittorrent.tracker.client import HTTPTrackerClient
from txbittorrent.tracker.db import TrackerDB
from txbittorrent.tracker.service import TrackerService
from txbittorrent.tracker.serverconfig import TrackerServerConfig
from txbittorrent.tracker.stats import mount_stats
from txbittorrent.tracker.stats.recorder import TrackerRecorder

INFO_HASH = hashlib.sha1(b"stats service").digest()
CONFIG = TrackerServerConfig(http=("tcp:0:interface=127.0.0.1",), udp_ports=(0,))


class ServiceWiringTests(TestCase):
    """Private mode backed by TrackerDB, administered through /api."""

    timeout = 30

    def test_private_tracker_through_the_api(self) -> Deferred[None]:
        """An admin whitelists a torrent and creates a user over /api; the user's
        passkey announces; the API, the database and /metrics see the swarm."""
        return ensureDeferred(self._scenario())

    async def _scenario(self) -> None:
        directory = self.mktemp()
        os.makedirs(directory)
        db = TrackerDB(os.path.join(directory, "tracker.sqlite"))
        self.addCleanup(db.close)
        db.create_user("root", "admin password", reactor.seconds(), admin=True)
        service = TrackerService(CONFIG, reactor=reactor, rng=random.Random(1),
                                 passkeys=db.user_for_passkey, on_transfer=db.on_transfer,
                                 allowed=db.live_whitelist())
        stats = TrackerStats(reactor.seconds)
        mount_stats(service.site_root, service.state, db, stats, reactor,
                    threadpool=reactor.getThreadPool(), reactor=reactor)
        TrackerRecorder(service.state, db, reactor).setServiceParent(service)
        service.startService()
        assert service.started is not None
        await service.started
        self.addCleanup(service.stopService)
        base = service.announce_urls()[0].rsplit("/", 1)[0]
        pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(pool.closeCachedConnections)

        async def api(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
            response = await treq.request(method, base + path, pool=pool, **kwargs)
            return response.code, await response.json()

        code, login = await api("POST", "/api/login", auth=("root", "admin password"))
        self.assertEqual(code, 200)
        admin = {"Authorization": "Bearer " + login["key"]}
        code, user = await api("POST", "/api/users", headers=admin,
                               json={"name": "alice", "password": "alice password"})
        self.assertEqual(code, 201)

        client = HTTPTrackerClient(HTTPClient(Agent(reactor, pool=pool)), reactor, timeout=10)
        url = f"{base}/{user['passkey']}/announce"
        request = AnnounceRequest(info_hash=INFO_HASH, peer_id=b"-TX0010-aaaaaaaaaaaa",
                                  port=7001, uploaded=0, downloaded=0, left=10,
                                  event=AnnounceEvent.STARTED)
        with self.assertRaises(TrackerFailure):
            await client.announce(url, request)  # not whitelisted yet
        code, _ = await api("POST", "/api/whitelist", headers=admin,
                            json={"info_hash": INFO_HASH.hex()})
        self.assertEqual(code, 201)
        await client.announce(url, request)
        await client.announce(url, AnnounceRequest(
            info_hash=INFO_HASH, peer_id=b"-TX0010-aaaaaaaaaaaa", port=7001, uploaded=300,
            downloaded=10, left=0, event=AnnounceEvent.COMPLETED))

        code, torrent = await api("GET", f"/api/torrents/{INFO_HASH.hex()}", headers=admin)
        self.assertEqual((code, torrent["seeders"], torrent["whitelisted"]), (200, 1, True))
        await service.stopService()  # the recorder's last flush
        [account] = db.accounting(user["user_id"])
        self.assertEqual((account.uploaded, account.downloaded), (300, 10))
        row = db.torrent(INFO_HASH)
        assert row is not None
        self.assertEqual((row.completed, row.whitelisted), (1, True))
        self.assertIsNotNone(row.first_seen)
