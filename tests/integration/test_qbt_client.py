"""The qBittorrent Web API v2 driven by ``qbittorrent-api`` (PyPI), the
client library Python tools use, through the sequence a Sonarr-style
manager runs, against a real libtorrent seeder.

A ``DaemonService`` runs in-process on 127.0.0.1 port 0 (its qBittorrent
API at ``/api/v2``).
Its only peer is a libtorrent session on 127.0.0.1 seeding two torrents:
one added by magnet (its ``x.pe`` names the seeder), one as a .torrent
upload (the test hands the daemon's torrent the seeder's address: the
.torrent names no tracker).  ``qbittorrent-api`` is synchronous, so each
call runs in a thread (``deferToThread``) while the reactor serves it.

Checked: login, webapiVersion, preferences, createCategory, both adds
with category and tags, torrents/info filtered by category, properties,
files, setShareLimits, topPrio, setForceStart, pause (stopped) and
resume, both downloads complete and match the seeder's files byte for
byte, sync/maindata, delete with files (the files are gone), logout.

Bounded: every wait has a deadline; the daemon is stopped and the
libtorrent session closed in cleanup.
"""

from __future__ import annotations

import io
import os
import re
import time
from collections.abc import Callable, Generator
from typing import Any

from twisted.internet import reactor, task
from twisted.internet.defer import inlineCallbacks, succeed
from twisted.internet.threads import deferToThread
from twisted.trial.unittest import SkipTest, TestCase

from tests.integration import ltutil
from txbittorrent.core.metainfo import parse
from txbittorrent.daemon.service import DaemonConfig, DaemonService
from txbittorrent.state import TorrentState
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files

try:
    import qbittorrentapi
except ImportError:  # pragma: no cover - the [test] extra installs it
    qbittorrentapi = None

WAIT = 60.0
"""Seconds any one wait may take."""


class QbtClientTests(TestCase):
    """qbittorrent-api against the daemon, a libtorrent seeder behind it."""

    timeout = 240

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        if qbittorrentapi is None:
            raise SkipTest("qbittorrent-api is not installed")
        self.base = os.path.abspath(self.mktemp())
        self.seed_dir = os.path.join(self.base, "seed")
        make_files(os.path.join(self.seed_dir, "show"), {"e01.mkv": 3_000_000,
                                                         "e01.srt": 20_000}, seed=1)
        make_files(self.seed_dir, {"film.mkv": 2_500_000}, seed=2)
        self.raw_show = create_torrent(os.path.join(self.seed_dir, "show"),
                                       piece_length=64 * 1024)
        self.raw_film = create_torrent(os.path.join(self.seed_dir, "film.mkv"),
                                       piece_length=64 * 1024)
        self.lt = ltutil.make_session(self, enable_outgoing_utp=False,
                                      enable_incoming_utp=False)
        for raw in (self.raw_show, self.raw_film):
            handle = ltutil.add_torrent(self.lt, raw, self.seed_dir)
            ltutil.wait_until_seeding(handle, WAIT)

    @inlineCallbacks
    def start_daemon(self) -> Generator[Any, Any, None]:
        out = io.StringIO()
        config = DaemonConfig(
            state_dir=os.path.join(self.base, "state"),
            download_dir=os.path.join(self.base, "downloads"),
            listen=("tcp:0:interface=127.0.0.1",),
        )
        self.config = config
        service = DaemonService(config, reactor=reactor, out=out)
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        yield service.started
        self.service = service
        match = re.search(r"password (\S+)", out.getvalue())
        assert match is not None
        self.password = match.group(1)

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """One qbittorrent-api call, in a thread (it blocks)."""
        return deferToThread(fn, *args, **kwargs)

    @inlineCallbacks
    def until(self, check: Callable[[], Any], what: str) -> Generator[Any, Any, Any]:
        """Poll ``check`` (a Deferred-returning call) until it is truthy."""
        deadline = time.monotonic() + WAIT
        while True:
            value = yield check()
            if value:
                return value
            if time.monotonic() > deadline:
                self.fail(f"timed out waiting for {what}")
            yield task.deferLater(reactor, 0.2, lambda: None)

    @inlineCallbacks
    def give_peer(self, torrent: Any, host: str, port: int) -> Generator[Any, Any, None]:
        """Once the torrent runs (its check done), hand it the seeder's address."""
        yield self.until(lambda: succeed(torrent.state in (TorrentState.DOWNLOADING,
                                                           TorrentState.SEEDING)),
                         f"{torrent.name} to run")
        torrent.add_peers([(host, port)])

    @inlineCallbacks
    def test_sonarr_sequence(self) -> Generator[Any, Any, None]:
        """login, webapiVersion, preferences, createCategory, a magnet and a
        .torrent added with a category and tags, info by category, properties,
        files, setShareLimits, topPrio, setForceStart, pause/resume, both
        downloads complete and verified, delete with files, logout."""
        yield self.start_daemon()
        url = self.service.url
        client = qbittorrentapi.Client(host=url, username="admin", password=self.password,
                                       REQUESTS_ARGS={"timeout": 30},
                                       EXTRA_HEADERS={"Connection": "close"})
        yield self.call(client.auth_log_in)
        api_version = yield self.call(client.app_web_api_version)
        self.assertEqual(api_version, "2.11.2")
        prefs = yield self.call(client.app_preferences)
        self.assertEqual(prefs["save_path"], self.config.download_dir)
        yield self.call(client.torrents_create_category, name="tv", save_path="tv")
        categories = yield self.call(client.torrents_categories)
        self.assertIn("tv", categories)

        show_hash = parse(self.raw_show).info_hash.hex()
        film_hash = parse(self.raw_film).info_hash.hex()
        host, port = ltutil.endpoint(self.lt)
        magnet = f"magnet:?xt=urn:btih:{show_hash}&dn=show&x.pe={host}:{port}"
        added = yield self.call(client.torrents_add, urls=magnet, category="tv",
                                tags=["sonarr", "hd"])
        self.assertEqual(added, "Ok.")
        added = yield self.call(client.torrents_add, torrent_files=self.raw_film,
                                category="tv", tags="sonarr", is_paused=False)
        self.assertEqual(added, "Ok.")
        film = self.service.session.get(bytes.fromhex(film_hash))
        yield self.give_peer(film, host, port)  # the .torrent names no tracker

        listing = yield self.call(client.torrents_info, category="tv")
        self.assertEqual({t.hash for t in listing}, {show_hash, film_hash})
        for info in listing:
            self.assertEqual(info.category, "tv")
            self.assertIn("sonarr", info.tags)
            self.assertEqual(info.save_path, os.path.join(self.config.download_dir, "tv"))
        none = yield self.call(client.torrents_info, category="films")
        self.assertEqual(list(none), [])

        # the magnet's metadata arrives from the seeder
        yield self.until(lambda: self.call(
            lambda: client.torrents_properties(torrent_hash=show_hash)["pieces_num"] > 0),
            "the magnet's metadata")
        props = yield self.call(client.torrents_properties, torrent_hash=film_hash)
        self.assertEqual(props["total_size"], 2_500_000)
        files = yield self.call(client.torrents_files, torrent_hash=show_hash)
        self.assertEqual(sorted((f.name, f.size) for f in files),
                         [("show/e01.mkv", 3_000_000), ("show/e01.srt", 20_000)])

        yield self.call(client.torrents_set_share_limits, ratio_limit=2.0,
                        seeding_time_limit=1440, inactive_seeding_time_limit=-2,
                        torrent_hashes=show_hash)
        yield self.call(client.torrents_top_priority, torrent_hashes=film_hash)
        yield self.call(client.torrents_set_force_start, enable=True, torrent_hashes=show_hash)
        [show] = yield self.call(client.torrents_info, torrent_hashes=show_hash)
        self.assertEqual((show.ratio_limit, show.seeding_time_limit, show.force_start),
                         (2.0, 1440, True))

        yield self.call(client.torrents_pause, torrent_hashes=film_hash)
        [film_info] = yield self.call(client.torrents_info, torrent_hashes=film_hash)
        self.assertIn(film_info.state, ("stoppedDL", "stoppedUP"))
        yield self.call(client.torrents_resume, torrent_hashes=film_hash)
        yield self.give_peer(film, host, port)  # stopping closed the connection

        def complete() -> Any:
            def check() -> bool:
                infos = client.torrents_info(category="tv")
                return len(infos) == 2 and all(
                    i.progress == 1.0 and i.state in ("uploading", "stalledUP", "forcedUP")
                    for i in infos)
            return self.call(check)

        yield self.until(complete, "both downloads to complete")
        tv = os.path.join(self.config.download_dir, "tv")
        for relative in ("show/e01.mkv", "show/e01.srt", "film.mkv"):
            with open(os.path.join(self.seed_dir, relative), "rb") as a, \
                    open(os.path.join(tv, relative), "rb") as b:
                self.assertEqual(a.read(), b.read(), relative)

        main = yield self.call(client.sync_maindata, rid=0)
        self.assertEqual(set(main["torrents"]), {show_hash, film_hash})
        delta = yield self.call(client.sync_maindata, rid=main["rid"])
        self.assertNotIn("full_update", delta)

        yield self.call(client.torrents_delete, delete_files=True,
                        torrent_hashes=[show_hash, film_hash])
        remaining = yield self.call(client.torrents_info)
        self.assertEqual(list(remaining), [])
        for relative in ("show/e01.mkv", "film.mkv"):
            self.assertFalse(os.path.exists(os.path.join(tv, relative)), relative)
        yield self.call(client.auth_log_out)
        yield task.deferLater(reactor, 0.1, lambda: None)  # the server sees the last close
