"""The shared fixture of the Transmission RPC's tests
(tests/test_transmission_*): ``TransmissionCase``, a real Session,
StateStore and Guard (delegating /transmission) on 127.0.0.1 and a client
that does the session-id handshake.  It holds no tests itself."""

from __future__ import annotations

import base64
import json
import os
from collections.abc import Generator
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import inlineCallbacks
from twisted.trial.unittest import TestCase
from twisted.web.resource import Resource

from tests.webcase import make_pool, open_store, serve, start_session
from txbittorrent.storage.create import create_torrent
from txbittorrent.state import TorrentState
from txbittorrent.testing import make_files, wait_until
from txbittorrent.web.auth import Guard
from txbittorrent.web.manager import TorrentManager
from txbittorrent.web.transmission import SESSION_ID_HEADER, TransmissionResource

PASSWORD = "correct horse"


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


class TransmissionCase(TestCase):
    """A started Session, a StateStore with a password and a token, a
    TorrentManager, the RPC resource behind a Guard on 127.0.0.1, and a
    client that does the handshake; all cleaned up."""

    timeout = 60

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        base = os.path.abspath(self.mktemp())
        self.download_dir = os.path.join(base, "downloads")
        self.state_dir = os.path.join(base, "state")
        os.makedirs(self.download_dir)
        os.makedirs(self.state_dir)
        self.session = yield start_session(self)
        self.store = open_store(self, os.path.join(self.state_dir, "state.sqlite"))
        self.store.set_password("admin", PASSWORD)
        self.token = self.store.create_token("test", 0.0)
        self.manager = TorrentManager(self.session, store=self.store,
                                      download_dir=self.download_dir)
        self.resource = TransmissionResource(
            self.session, self.manager, store=self.store, download_dir=self.download_dir,
            config_dir=self.state_dir, clock=reactor,
        )
        root = Resource()
        root.putChild(b"transmission", self.resource)
        self.guard = Guard(root, store=self.store, clock=reactor, delegated=[b"/transmission"])
        self.resource.guard = self.guard
        self.url = serve(self, self.guard.site(), "/transmission/rpc")
        self.pool = make_pool(self)
        self.session_id = ""

    @inlineCallbacks
    def post(
        self, body: Any, *, auth: str | None = None, session_id: str | None = None,
        url: str | None = None, method: str = "POST", headers: dict[str, str] | None = None,
    ) -> Generator[Any, Any, Any]:
        """One raw request: (response, body bytes)."""
        sent = {"Authorization": auth if auth is not None else basic("admin", PASSWORD),
                "X-Transmission-Session-Id": session_id if session_id is not None
                else self.session_id}
        sent.update(headers or {})
        data = body if isinstance(body, bytes) else json.dumps(body).encode()
        response = yield treq.request(method, url or self.url, data=data,
                                      headers={k: [v] for k, v in sent.items() if v},
                                      pool=self.pool)
        content = yield treq.content(response)
        return response, content

    @inlineCallbacks
    def rpc(self, method: str, arguments: dict[str, Any] | None = None,
            tag: int | None = None) -> Generator[Any, Any, dict[str, Any]]:
        """A call as clients make it: on 409, take the id and send again."""
        body: dict[str, Any] = {"method": method}
        if arguments is not None:
            body["arguments"] = arguments
        if tag is not None:
            body["tag"] = tag
        response, content = yield self.post(body)
        if response.code == 409:
            self.session_id = response.headers.getRawHeaders(SESSION_ID_HEADER)[0].decode()
            response, content = yield self.post(body)
        self.assertEqual(response.code, 200, content)
        self.assertEqual(response.headers.getRawHeaders("Content-Type"),
                         ["application/json; charset=UTF-8"])
        reply: dict[str, Any] = json.loads(content)
        return reply

    @inlineCallbacks
    def ok(self, method: str, arguments: dict[str, Any] | None = None
           ) -> Generator[Any, Any, dict[str, Any]]:
        """A call that must succeed: its arguments."""
        reply = yield self.rpc(method, arguments)
        self.assertEqual(reply["result"], "success", reply)
        result: dict[str, Any] = reply["arguments"]
        return result

    def seed_files(self, name: str = "t") -> tuple[str, bytes]:
        """A two-file torrent's data under the download dir: (its directory, .torrent)."""
        root = os.path.join(self.download_dir, "seed")
        make_files(os.path.join(root, name), {"a.bin": 70_000, "b/c.txt": 1000}, seed=5)
        return root, create_torrent(os.path.join(root, name), piece_length=16 * 1024,
                                    trackers=[])

    @inlineCallbacks
    def add_seeding(self) -> Generator[Any, Any, Any]:
        """The two-file torrent added by metainfo, complete: its brief."""
        root, raw = self.seed_files()
        result = yield self.ok("torrent-add", {
            "metainfo": base64.b64encode(raw).decode(), "download-dir": root})
        added = result["torrent-added"]
        torrent = self.session.get(bytes.fromhex(added["hashString"]))
        yield torrent.when_complete()
        # Complete can come a turn before the check ends and the state says seeding.
        yield wait_until(lambda: torrent.state is TorrentState.SEEDING, 30,
                         "the added torrent to be seeding", lambda: str(torrent.state))
        return added
