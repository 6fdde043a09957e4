# twisted.web's Resource and Request, and twisted.application, are untyped.
# mypy: disable-error-code="no-untyped-call"
"""The daemon as a Twisted service: ``DaemonService``.

Theory of operation
-------------------
``DaemonService(config)`` is a ``MultiService`` assembling the daemon's
building blocks; the constructor does nothing observable.

``startService`` (synchronous apart from the Session's start, which binds
at once):

1. locks the state directory (``daemon.lock``: a ``flock`` on
   ``state_dir/lock`` held until stopped; a second daemon on the same
   directory fails with ``DaemonRunningError``) and opens the
   ``StateStore`` (``state_dir/state.sqlite``);
2. on the first start (the store has no user) makes a random password
   (``secrets``), stores it hashed, and writes it once to ``out`` (stdout);
   a later start never prints it.  It then makes an API token and, on
   every start, writes ``state_dir/api.json`` (``{"url", "token"}``, mode
   0600, through a temporary file and ``os.replace``) once the HTTP ports
   listen, so the url names the real port even for port 0.  The token's
   plaintext lives only in that file (the store keeps its digest), so a
   start whose api.json is gone makes a new token.  ``token`` holds the
   plaintext.  With ``write_api_file=False`` (the CLI's in-process mode)
   api.json is never written and a token made for this run is revoked
   when it stops;
3. starts a ``Session`` on ``peer_port``/``peer_interfaces`` (a DHT node
   if ``dht``; its own ``EventBus`` keeping ``event_history`` events for
   ``Last-Event-ID``; the global limits of ``global_limits``: the command
   line's, else the stored ``download_limit``/``upload_limit`` settings,
   else unlimited; the encryption mode of ``encryption_mode``, likewise),
   restores every stored torrent (its metainfo if stored,
   else its magnet; its priorities, limits and ``wanted`` state; a
   ``resume_path`` under ``state_dir/resume``), starts the ones not
   "stopped" (the stopped ones show what their resume record vouches for:
   ``Torrent.peek_resume``), and starts a ``Recorder`` (``daemon.recorder``) storing a
   magnet's metadata when it arrives and a torrent's completion time;
4. serves ``build_root``'s tree behind ``build_guard``'s ``Guard``
   (password checks in the reactor's thread pool): ``/api``
   (``ApiResource``), ``/api/events`` (SSE), ``/api/ws`` (WebSocket, when
   available), ``/stream/<info hash>/<file index>/<name>``
   (``FileStreamResource`` with the ``readahead`` window) and confluence's
   routes (``/data``, ``/info``, ``/metainfo``, ``/fileState``,
   ``/status``, ``/events``, ``/playlist``: ``web.confluence``, with an
   ``OnDemand`` starting torrents that requests need and stopping the ones
   it started ``grace`` seconds after the last request let go) and the
   APIs other programs speak (``daemon.apps``: qBittorrent's Web API v2
   at ``/api/v2`` and Transmission's RPC at ``/transmission/rpc``, each
   authenticating itself) and the page (``/`` and ``/ui/``: ``web.page``,
   served without credentials; it logs in through ``/login``), on every
   ``listen`` endpoint string (``serverFromString``).  The body cap is the
   largest .torrent upload, as base64 in JSON, plus its form.  Media players cannot log in:
   ``/data``, ``/stream`` and ``/playlist`` also take ``?token=`` the
   media token (a read-only secret made on the first start and kept in
   the settings; the playlists carry it, api.json names it).

Every torrent the session makes (through the API too) gets its resume path
under ``state_dir/resume/<info hash>.resume`` (``SessionConfig.resume_dir``).

A start that fails undoes what it did (ports, session, store, lock) and
``started`` fails with the reason.  ``stopService`` stops the recorder,
stops listening, stops the event streams, stops every torrent (trackers hear "stopped", resume
records are written), stops the session, closes the store and releases the
lock; its Deferred fires when all that is done.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
from typing import Any, TextIO

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, DeferredList, inlineCallbacks, maybeDeferred
from twisted.internet.endpoints import serverFromString
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.resource import NoResource, Resource
from twisted.web.server import Request

from txbittorrent.daemon.config import (
    DEFAULT_READAHEAD,
    DOWNLOAD_DIR_SETTING,
    ENCRYPTION_SETTING,
    STATE_FILE,
    LIMIT_SETTINGS,
    DaemonConfig,
    config_from,
)
from txbittorrent.daemon.apps import AppContext, AppMounts, mount_apps
from txbittorrent.daemon.lock import DaemonRunningError, StateDirLock
from txbittorrent.daemon.ondemand import OnDemand
from txbittorrent.daemon.recorder import Recorder
from txbittorrent.daemon.store import StateStore
from txbittorrent.dht.config import DHTConfig
from txbittorrent.events import EventBus
from txbittorrent.session import Session, SessionConfig
from txbittorrent.storage.resumefile import write_atomic
from txbittorrent.web.api import MAX_BODY, MAX_TORRENT, ApiResource
from txbittorrent.web.auth import Guard
from txbittorrent.web.confluence import confluence_resources
from txbittorrent.web.events import (
    EventStreamResource,
    EventWebSocketResource,
    websocket_available,
)
from txbittorrent.web.page import PUBLIC_PATHS, page_resources
from txbittorrent.web.stream import FileStreamResource

__all__ = [
    "DaemonConfig", "DaemonRunningError", "DaemonService", "USERNAME", "config_from",
]

_log = Logger()

USERNAME = "admin"
MEDIA_TOKEN_SETTING = "media_token"


class _ApiRoot(Resource):
    """``/api``: the event streams by name, everything else to the API."""

    def __init__(self, api: ApiResource, children: dict[bytes, Resource]) -> None:
        super().__init__()
        self.api = api
        self.streams = children
        self.apps: dict[bytes, Resource] = {}
        """Other APIs under /api by their first segment (qBittorrent's b"v2")."""

    def getChildWithDefault(self, path: bytes, request: Request) -> Resource:
        assert request.postpath is not None and request.prepath is not None
        if path in self.apps:
            return self.apps[path]
        if path in self.streams and not any(request.postpath):
            return self.streams[path]
        request.prepath.pop()
        request.postpath.insert(0, path)
        return self.api

    def render(self, request: Request) -> Any:
        return self.api.render(request)


class _StreamRoot(Resource):
    """``/stream/<info hash>/<file index>/<name>``: one file of a torrent."""

    def __init__(self, session: Session, readahead: int = DEFAULT_READAHEAD) -> None:
        super().__init__()
        self.session = session
        self.readahead = readahead

    def getChildWithDefault(self, path: bytes, request: Request) -> Resource:
        try:
            info_hash = bytes.fromhex(path.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            return NoResource("unknown torrent")
        torrent = self.session.get(info_hash) if len(info_hash) == 20 else None
        assert request.postpath is not None and request.prepath is not None
        if torrent is None or not request.postpath:
            return NoResource("unknown torrent")
        index_text = request.postpath.pop(0)
        request.prepath.append(index_text)
        if not index_text.isdigit():
            return NoResource("unknown file")
        request.prepath.extend(request.postpath)  # the name is decoration
        del request.postpath[:]
        return FileStreamResource(torrent, int(index_text), readahead=self.readahead)


def _url(address: Any) -> str:
    port = getattr(address, "port", None)
    if port is None:
        return f"unix:{getattr(address, 'name', '')!s}"
    host = address.host
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


class DaemonService(MultiService):
    """One Session, its store and its HTTP API (see the module docstring)."""

    def __init__(
        self, config: DaemonConfig, *, reactor: Any = None, out: TextIO | None = None
    ) -> None:
        super().__init__()
        self.config = config
        self._given_reactor = reactor
        self._out = out
        self.store: StateStore | None = None
        self.session: Session | None = None
        self.ports: list[Any] = []
        """The HTTP listening ports (``IListeningPort``), once started."""
        self.url: str | None = None
        self.token: str | None = None
        """The plaintext API token, once started."""
        self._lock = StateDirLock(config.state_dir)
        self._revoke_token_id: int | None = None
        self._recorder: Recorder | None = None
        self._apps: AppMounts | None = None
        self.on_demand: OnDemand | None = None
        self.media_token: str | None = None
        """The secret that lets a media player read ``/data``, ``/stream``
        and ``/playlist`` (see ``web.auth.Guard``), once started."""
        self._event_resources: list[Any] = []
        self.started: Deferred[None] | None = None
        """Fires once every HTTP port listens and api.json is written."""

    @property
    def api_path(self) -> str:
        return os.path.join(self.config.state_dir, "api.json")

    def _reactor(self) -> Any:
        if self._given_reactor is None:
            from twisted.internet import reactor

            self._given_reactor = reactor
        return self._given_reactor

    def startService(self) -> None:
        super().startService()
        self.started = self._start()
        self.started.addErrback(self._start_failed)

    def _start_failed(self, failure: Failure) -> Deferred[Any]:
        if failure.check(DaemonRunningError):
            # Anticipated: the caller (serve, the CLI, twist) says so once.
            _log.info("{message}", message=failure.getErrorMessage())
        else:
            _log.failure("the daemon failed to start", failure)
        d = self._teardown()
        d.addCallback(lambda _: failure)
        return d

    @inlineCallbacks
    def _start(self) -> Any:
        cfg = self.config
        reactor = self._reactor()
        os.makedirs(cfg.state_dir, mode=0o700, exist_ok=True)
        self._lock.acquire()
        os.makedirs(cfg.download_dir, exist_ok=True)
        resume_dir = os.path.join(cfg.state_dir, "resume")
        os.makedirs(resume_dir, exist_ok=True)
        store = self.store = StateStore(os.path.join(cfg.state_dir, STATE_FILE))
        store.set_setting(DOWNLOAD_DIR_SETTING, cfg.download_dir)
        if store.username() is None:
            password = secrets.token_urlsafe(18)
            store.set_password(USERNAME, password)
            out = self._out if self._out is not None else sys.stdout
            out.write(f"txbittorrent: user {USERNAME!r}, password {password}\n")
            out.flush()
        token = self._known_token(store)
        if token is None:
            before = {t.token_id for t in store.tokens()}
            label = "cli" if cfg.write_api_file else "in-process"
            token = store.create_token(label, float(reactor.seconds()))
            if not cfg.write_api_file:
                made = [t.token_id for t in store.tokens() if t.token_id not in before]
                self._revoke_token_id = made[0] if made else None
        self.token = token
        media_token = store.get_setting(MEDIA_TOKEN_SETTING, None)
        if not isinstance(media_token, str) or len(media_token) < 16:
            media_token = secrets.token_urlsafe(24)
            store.set_setting(MEDIA_TOKEN_SETTING, media_token)
        self.media_token = media_token

        session = self.session = self._make_session(store, resume_dir)
        yield session.start()
        self._recorder = Recorder(session, store, reactor)
        self._recorder.start()
        yield self._restore(session, store)

        site = self.build_guard(self.build_root(session, store), store).site()
        for description in cfg.listen:
            port = yield serverFromString(reactor, description).listen(site)
            self.ports.append(port)
        if self.ports:
            self.url = _url(self.ports[0].getHost())
        if cfg.write_api_file:
            write_atomic(
                self.api_path,
                json.dumps({"url": self.url, "token": token,
                            "media_token": media_token}).encode(),
                mode=0o600,
            )
        _log.info("txbittorrent daemon listening on {url}", url=self.url)

    def global_limits(self, store: StateStore) -> tuple[int | None, int | None]:
        """(download, upload) bytes/s for this run: the command line's value,
        else the stored setting, else None (unlimited)."""
        given = (self.config.download_limit, self.config.upload_limit)
        limits: list[int | None] = []
        for key, value in zip(LIMIT_SETTINGS, given):
            if value is None:
                stored = store.get_setting(key, None)
                if stored is None or (type(stored) in (int, float) and stored > 0):
                    value = None if stored is None else int(stored)
                else:
                    _log.warn("ignoring the stored {key} setting {value!r}", key=key,
                              value=stored)
            limits.append(value if value else None)
        return limits[0], limits[1]

    def encryption_mode(self, store: StateStore) -> str:
        """MSE/PE for this run: the command line's, else the stored setting
        (what an API last set), else "enabled"."""
        given = self.config.encryption
        if given is not None:
            return given
        stored = store.get_setting(ENCRYPTION_SETTING, None)
        if stored in ("disabled", "enabled", "forced"):
            return str(stored)
        if stored is not None:
            _log.warn("ignoring the stored {key} setting {value!r}", key=ENCRYPTION_SETTING,
                      value=stored)
        return "enabled"

    def _make_session(self, store: StateStore, resume_dir: str) -> Session:
        cfg = self.config
        download_limit, upload_limit = self.global_limits(store)
        return Session(
            self._reactor(), cfg.peer_port, cfg.peer_interfaces,
            SessionConfig(
                dht=DHTConfig(enabled=cfg.dht), resume_dir=resume_dir,
                download_limit=download_limit, upload_limit=upload_limit,
                encryption=self.encryption_mode(store),
            ),
            # Event ids from the clock (ms): a client's Last-Event-ID from an
            # earlier run is older than any of this run's and gets a reset.
            events=EventBus(history=cfg.event_history,
                            first_id=max(1, int(self._reactor().seconds() * 1000))),
        )

    def build_root(self, session: Session, store: StateStore) -> Resource:
        """The resource tree behind the Guard: ``/api`` (the API, its SSE
        and WebSocket streams), ``/stream``, confluence's routes and the
        other APIs (``daemon.apps``).  Add routes here."""
        reactor = self._reactor()
        api = ApiResource(session, store=store, download_dir=self.config.download_dir,
                          media_token=self.media_token)
        streams: dict[bytes, Resource] = {}
        sse = EventStreamResource(session.events, clock=reactor)
        streams[b"events"] = sse
        self._event_resources.append(sse)
        if websocket_available():
            ws = EventWebSocketResource(session.events, clock=reactor)
            streams[b"ws"] = ws
            self._event_resources.append(ws)
        root = Resource()
        api_root = _ApiRoot(api, streams)
        root.putChild(b"api", api_root)  # type: ignore[arg-type]
        root.putChild(
            b"stream", _StreamRoot(session, self.config.readahead)  # type: ignore[arg-type]
        )
        self.on_demand = OnDemand(session, reactor, self.config.grace, store,
                                  download_dir=self.config.download_dir)
        self.on_demand.start()
        confluence = confluence_resources(
            session, on_demand=self.on_demand, store=store, clock=reactor,
            readahead=self.config.readahead, media_token=self.media_token,
        )
        for name, child in confluence.items():
            root.putChild(name, child)  # type: ignore[arg-type]
        self._event_resources.append(confluence[b"events"])
        for name, child in page_resources().items():
            root.putChild(name, child)  # type: ignore[arg-type]
        self._apps = mount_apps(root, api_root, AppContext(
            session, store, api.manager, self.config, reactor,
        ))
        return root

    def build_guard(self, root: Resource, store: StateStore) -> Guard:
        """The Guard in front of ``root``: password checks (scrypt) in the
        reactor's thread pool when it has one."""
        reactor = self._reactor()
        pool = reactor.getThreadPool() if hasattr(reactor, "getThreadPool") else None
        apps = self._apps if self._apps is not None else AppMounts()
        guard = Guard(
            root, store=store, clock=reactor, allowed_hosts=self.config.allowed_hosts,
            threadpool=pool, reactor=reactor if pool is not None else None,
            # a .torrent upload as base64 in JSON (Transmission's metainfo) and its form
            max_body=MAX_TORRENT * 4 // 3 + MAX_BODY, media_token=self.media_token,
            delegated=apps.delegated, public=PUBLIC_PATHS,
        )
        apps.guard_ready(guard)
        return guard

    def _known_token(self, store: StateStore) -> str | None:
        """The token of the existing api.json if the store still accepts it."""
        try:
            with open(self.api_path, "rb") as f:
                token = json.load(f).get("token")
        except (OSError, ValueError, AttributeError):
            return None
        return token if isinstance(token, str) and store.check_token(token) else None

    def _restore(self, session: Session, store: StateStore) -> Deferred[Any]:
        """Add every stored torrent to the session, with its priorities and
        limits, paused or active as wanted; start the ones not stopped.
        Fires once the stopped ones show their resume records' progress."""
        peeks: list[Deferred[Any]] = []
        for record in store.torrents():
            source: Any = record.metainfo if record.metainfo else record.source
            if isinstance(source, str) and not source[:7].lower() == "magnet:":
                _log.error("not restoring torrent {info_hash}: its source is not a magnet URI",
                           info_hash=record.info_hash)
                continue
            options: dict[str, Any] = {}
            if record.metainfo and record.priorities:
                options["priorities"] = list(record.priorities)
            if record.download_limit is not None:
                options["download_limit"] = record.download_limit
            if record.upload_limit is not None:
                options["upload_limit"] = record.upload_limit
            try:
                torrent = session.add(
                    source, record.save_path,
                    state="paused" if record.wanted == "paused" else "active", **options,
                )
            except Exception:
                _log.failure("restoring torrent {info_hash} failed", info_hash=record.info_hash)
                continue
            if record.trackers is not None:
                _restore_trackers(torrent, record.trackers)
            ih = record.info_hash
            if record.wanted != "stopped":
                torrent.start().addErrback(_start_failed, ih)
            elif torrent.has_metadata:  # show its progress without starting it
                peeks.append(torrent.peek_resume().addErrback(_peek_failed, ih))
        return DeferredList(peeks)

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        return self._stop()

    @inlineCallbacks
    def _stop(self) -> Any:
        if self.started is not None and not self.started.called:
            yield DeferredList([self.started], consumeErrors=True)
        yield self._teardown()

    @inlineCallbacks
    def _teardown(self) -> Any:
        """Undo whatever ``_start`` did so far (idempotent)."""
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.stop()
        on_demand, self.on_demand = self.on_demand, None
        if on_demand is not None:
            on_demand.stop()
        ports, self.ports = self.ports, []
        yield DeferredList([maybeDeferred(p.stopListening) for p in ports], consumeErrors=True)
        for resource in self._event_resources:
            resource.stop()
        self._event_resources = []
        session, self.session = self.session, None
        if session is not None:
            stops = [maybeDeferred(t.stop) for t in session.torrents()]
            results = yield DeferredList(stops, consumeErrors=True)
            for ok, failure in results:
                if not ok:
                    _log.failure("stopping a torrent failed", failure)
            yield session.stop()
        store, self.store = self.store, None
        if store is not None:
            token_id, self._revoke_token_id = self._revoke_token_id, None
            if token_id is not None:
                store.revoke_token(token_id)
            store.close()
        self._lock.release()


def _restore_trackers(torrent: Any, tiers: tuple[tuple[str, ...], ...]) -> None:
    """Make the torrent's trackers the stored tiers (the user's additions
    and removals since its source)."""
    wanted = [url for tier in tiers for url in tier]
    for tier in torrent.trackers():
        for status in tier:
            if status.url not in wanted:
                torrent.remove_tracker(status.url)
    have = {status.url for tier in torrent.trackers() for status in tier}
    for number, tier in enumerate(tiers):
        for url in tier:
            if url not in have:
                torrent.add_tracker(url, number)
                have.add(url)


def _peek_failed(failure: Failure, info_hash: str) -> None:
    _log.failure("reading {info_hash}'s resume record failed", failure, info_hash=info_hash)


def _start_failed(failure: Failure, info_hash: str) -> None:
    _log.failure("starting torrent {info_hash} failed", failure, info_hash=info_hash)
