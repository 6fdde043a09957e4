"""``txbittorrent tracker`` assembled: the listeners, and with a database
the stats/admin API, ``/metrics``, private mode and persistent counters.

Theory of operation
-------------------
``TrackerApp(config, db_path=None, private=False, db_whitelist=False,
reactor=..., out=...)`` is a ``MultiService``; the constructor opens
nothing.  ``startService``:

* without ``db_path``: runs the ``TrackerService`` alone (swarms in memory,
  nothing kept across restarts; whitelist from the config);
* with ``db_path``: opens the ``TrackerDB`` (SQLite), and on the first start
  (no user yet) creates the user ``admin`` with a random password printed
  once on ``out``, with its passkey; counts announces, scrapes and errors
  in a ``TrackerStats``; mounts ``/api`` (login, torrents, status, users,
  whitelist; bearer keys or HMAC-signed requests) and ``/metrics`` on the
  HTTP listeners; a ``TrackerRecorder`` writes the counters every second
  (completed counts, first-seen times, per-user accounting).  ``private``
  takes passkeys (``/<passkey>/announce``) from the database and reports
  transfers to it; ``db_whitelist`` makes the database's whitelist (edited
  through the API, live) the tracker's.

With ``config.redis`` the swarms and counters are shared through Redis
(not in private mode), and so is what the database side reads of them:
``/api`` and ``/metrics`` read the shared swarms (``stats.sources.
RedisSource``: every process shows the same torrents and peers), and the
recorder drains the Redis journal of new swarms and completions (each
completion reaches one process's recorder: several processes sharing one
database file count it once).  This process's ``TrackerState`` then holds
only the rules.

``stopService`` stops the listeners, then the recorder (its last flush),
then closes the database.
"""

from __future__ import annotations

import secrets
import sys
from typing import Any, TextIO

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, inlineCallbacks

from txbittorrent.core.tracker.registry import TrackerState
from txbittorrent.core.tracker.stats import TrackerStats
from txbittorrent.tracker.db import TrackerDB
from txbittorrent.tracker.serverconfig import TrackerServerConfig
from txbittorrent.tracker.service import TrackerService
from txbittorrent.tracker.stats import mount_stats
from txbittorrent.tracker.stats.recorder import TrackerRecorder
from txbittorrent.tracker.stats.sources import RedisSource

__all__ = ["TrackerApp", "ADMIN"]

ADMIN = "admin"


class TrackerApp(MultiService):
    """The tracker with its optional database (see the module docstring)."""

    def __init__(
        self,
        config: TrackerServerConfig,
        *,
        db_path: str | None = None,
        private: bool = False,
        db_whitelist: bool = False,
        reactor: Any = None,
        out: TextIO | None = None,
    ) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        if (private or db_whitelist) and db_path is None:
            raise ValueError("private mode and a database whitelist need a database")
        if private and config.redis is not None:
            raise ValueError("private mode keeps its swarms in memory: not with Redis")
        self.config = config
        self.db_path = db_path
        self.private = private
        self.db_whitelist = db_whitelist
        self._reactor = reactor
        self._out = out
        self.db: TrackerDB | None = None
        self.tracker: TrackerService | None = None
        self.started: Deferred[None] | None = None
        """Fires once every listener listens."""

    def startService(self) -> None:
        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor as global_reactor

            reactor = self._reactor = global_reactor
        options: dict[str, Any] = {}
        db = None
        if self.db_path is not None:
            db = self.db = TrackerDB(self.db_path)
            if not db.users():
                self._first_admin(db, reactor)
            options["stats"] = TrackerStats(reactor.seconds)
            if self.private:
                options["passkeys"] = db.user_for_passkey
                options["on_transfer"] = db.on_transfer
                options["user_limit"] = db.torrent_limit
            if self.db_whitelist:
                options["allowed"] = db.live_whitelist()
        tracker = self.tracker = TrackerService(self.config, reactor=reactor, **options)
        if db is not None:
            pool = reactor.getThreadPool() if hasattr(reactor, "getThreadPool") else None
            api_options: dict[str, Any] = {}
            if pool is not None:
                api_options = {"threadpool": pool, "reactor": reactor}
            shared = tracker.swarms
            source: TrackerState | RedisSource = (
                tracker.state if shared is None else RedisSource(shared, reactor))
            mount_stats(tracker.site_root, source, db, options["stats"], reactor, **api_options)
            # added first, stopped last: its final flush comes after the listeners close
            TrackerRecorder(tracker.state, db, reactor, threaded=pool is not None,
                            journal=None if shared is None else shared.upkeep,
                            ).setServiceParent(self)  # type: ignore[no-untyped-call]
        tracker.setServiceParent(self)  # type: ignore[no-untyped-call]
        super().startService()  # type: ignore[no-untyped-call]
        self.started = tracker.started

    def _first_admin(self, db: TrackerDB, reactor: Any) -> None:
        password = secrets.token_urlsafe(18)
        _, passkey = db.create_user(ADMIN, password, float(reactor.seconds()), admin=True)
        out = self._out if self._out is not None else sys.stdout
        out.write(f"txbittorrent tracker: user {ADMIN!r}, password {password},"
                  f" passkey {passkey}\n")
        out.flush()

    @inlineCallbacks
    def stopService(self) -> Any:
        # children stop in reverse order: the tracker, then the recorder (last flush)
        yield super().stopService()  # type: ignore[no-untyped-call]
        db, self.db = self.db, None
        if db is not None:
            db.close()
