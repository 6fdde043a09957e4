# twisted.application and twisted.web are untyped.
# mypy: disable-error-code="no-untyped-call"
"""``ShareService``: a directory shared over HTTP as torrents, seeded from one Session.

Theory of operation
-------------------
``ShareService(config)`` is a ``MultiService``; the constructor does nothing
observable.  ``startService`` (``started`` fires when it is done):

1. starts an embedded tracker (``tracker.server.start_tracker``, HTTP and
   UDP on ``tracker_interface``/``tracker_port``, loopback by default) that
   tracks only the torrents this service shares (its ``allowed`` set: a
   torrent is registered before it seeds and unregistered when it stops);
   the announce URL written into the torrents is ``tracker_url``, by
   default the embedded tracker's own (when another URL is given, the
   seeder announces to the embedded tracker as well: the given address may
   not be reachable from this host);
2. starts one ``Session`` on ``peer_interface``/``peer_port``: every
   torrent seeds from it, on one port;
3. serves ``resource.ShareResource`` over a ``catalog.Catalog`` on the
   ``listen`` endpoint string; the catalog's blocking work
   (``share.tree``) runs in the Session's thread pool;
4. checks every ``check_interval`` seconds (on ``clock``) that the files of each torrent
   are still there and unchanged (``Catalog.check``); seeding stops for
   those that are not.

Seeding without a second hash pass: the catalog hands over a torrent built
between two identical snapshots of its files (size and mtime).  The seeder
writes the clean resume record those snapshots justify
(``tree.write_clean_resume``) and adds the torrent with that
``resume_path``; its start loads the record (``core.resume.plan_resume``)
and trusts every piece whose files still match, rechecking only the
others.  The record lives in ``<cache>/resume/<info hash>.resume``.

A seeding torrent (``_SharedTorrent``) opens its files from ``DIR`` itself,
one component at a time without following symbolic links
(``storage.paths.SafeDirectory``), not from its parent directory by path:
a directory swapped for a link after the torrent was made is never read
through (its reads fail), and the next check stops it.

``stopService`` stops the checks, listening and open HTTP connections,
every seeding torrent (trackers hear "stopped"), the Session and the
tracker; its Deferred fires when all of that is done.  A failed start
undoes what it did and ``started`` fails with the reason.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from twisted.application.service import MultiService
from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import LoopingCall
from twisted.internet.threads import deferToThreadPool
from twisted.logger import Logger
from twisted.protocols.policies import WrappingFactory
from twisted.python.failure import Failure
from twisted.web.server import Site

from txbittorrent._reactor import resolve_reactor
from txbittorrent.core.metainfo import MetainfoLimits
from txbittorrent.session import Session, SessionConfig
from txbittorrent.share import tree
from txbittorrent.share.catalog import Catalog
from txbittorrent.share.resource import ShareResource
from txbittorrent.share.tree import Built, FileState, Listed, NotShared
from txbittorrent.storage.files import FileStorage
from txbittorrent.torrent import Torrent
from txbittorrent.tracker.server import RunningTracker, start_tracker

__all__ = ["CACHE_NAME", "ShareConfig", "ShareService"]

_log = Logger()

T = TypeVar("T")

CACHE_NAME = ".txbittorrent-share"
"""The default cache directory, inside the shared one (never shared itself)."""


@dataclass(frozen=True)
class ShareConfig:
    """The settings of a ``ShareService``."""

    directory: str
    listen: str = "tcp:8000:interface=127.0.0.1"
    """A Twisted endpoint string for the HTTP service."""
    peer_port: int = 0
    peer_interface: str = "127.0.0.1"
    tracker_url: str | None = None
    """The announce URL written into the torrents (the address clients will
    reach); None: the embedded tracker's own URL."""
    tracker_interface: str = "127.0.0.1"
    tracker_port: int = 0
    """The embedded tracker's HTTP port and UDP port (0: any free ports)."""
    piece_length: int | None = None
    """None: ``storage.create.auto_piece_length``."""
    cache_dir: str | None = None
    """None: ``<directory>/.txbittorrent-share``."""
    max_jobs: int = 2
    """Torrents hashed at once; more wait in the queue."""
    max_queued: int = 64
    max_files: int = 10_000
    """The most files a directory's torrent may hold."""
    check_interval: float = 30.0
    """Seconds between checks that seeded files are still there."""
    disk_threads: int = 6
    """The Session's pool, shared by hashing and seeding (at least ``max_jobs + 2``)."""
    limits: MetainfoLimits = field(default_factory=MetainfoLimits)


class _Connections(WrappingFactory):
    """Remembers a factory's open connections, to abort them at stop."""

    _closing: Deferred[None] | None = None

    def close_all(self) -> Deferred[None]:
        done: Deferred[None] = Deferred()
        if not self.protocols:
            return succeed(None)
        self._closing = done
        for protocol in list(self.protocols):
            protocol.transport.abortConnection()
        return done

    def unregisterProtocol(self, p: Any) -> None:
        super().unregisterProtocol(p)
        closing = self._closing
        if closing is not None and not self.protocols:
            self._closing = None
            closing.callback(None)


class _ThreadDisk:
    """``catalog.ShareDisk`` over ``share.tree``, in a thread pool."""

    def __init__(
        self, service: ShareService, root: str, cache_dir: str, tracker_url: str
    ) -> None:
        self._service = service
        self.root = root
        self.cache_dir = cache_dir
        self.tracker_url = tracker_url
        cfg = service.config
        self._cfg = cfg
        self.hidden = (CACHE_NAME,)
        self.exclude = (cache_dir,)

    def _resolve(self, rel: tuple[str, ...]) -> str:
        path = tree.resolve(self.root, rel, self.hidden)
        real = os.path.realpath(path)
        if real == self.cache_dir or real.startswith(self.cache_dir + os.sep):
            raise NotShared("no such path")
        return path

    def probe(self, rel: tuple[str, ...]) -> Deferred[tuple[FileState, ...]]:
        def probe() -> tuple[FileState, ...]:
            return tree.snapshot(
                self._resolve(rel), self._cfg.limits, self._cfg.max_files, self.exclude
            )

        return self._service.in_thread(probe)

    def load(self, rel: tuple[str, ...], files: tuple[FileState, ...]) -> Deferred[Built | None]:
        cfg = self._cfg
        return self._service.in_thread(
            tree.cache_load, self.cache_dir, rel, files, self.tracker_url, cfg.piece_length,
            cfg.limits,
        )

    def build(self, rel: tuple[str, ...]) -> Deferred[Built]:
        def build() -> Built:
            self._resolve(rel)
            return tree.build(
                self.root, rel, self.tracker_url, cfg.piece_length, cfg.limits, cfg.max_files,
                self.hidden, self.exclude,
            )

        cfg = self._cfg
        return self._service.in_thread(build)

    def store(self, built: Built) -> Deferred[None]:
        return self._service.in_thread(
            tree.cache_store, self.cache_dir, built, self.tracker_url, self._cfg.piece_length
        )

    def forget(self, rel: tuple[str, ...]) -> Deferred[None]:
        return self._service.in_thread(tree.cache_forget, self.cache_dir, rel)

    def list_files(self) -> Deferred[tuple[list[Listed], bool]]:
        return self._service.in_thread(
            tree.list_tree, self.root, self.hidden, frozenset(self.exclude)
        )


class _SharedTorrent(Torrent):
    """A torrent of a shared path whose storage is rooted at the shared
    directory: its files' paths get the path's parent directories in
    front, so every component below ``DIR`` is opened without following
    links."""

    def __init__(
        self, *args: Any, share_root: str, share_prefix: tuple[str, ...], **kwargs: Any
    ) -> None:
        self.share_root = share_root
        self.share_prefix = share_prefix
        super().__init__(*args, **kwargs)

    def make_storage(
        self, priorities: Sequence[int] | None, piece_cache: Mapping[int, int] | None
    ) -> FileStorage:
        assert self.metainfo is not None
        prefix = self.share_prefix
        rooted = dataclasses.replace(self.metainfo, files=tuple(
            dataclasses.replace(f, path=prefix + f.path) for f in self.metainfo.files
        ))
        return FileStorage(rooted, self.share_root, priorities, piece_cache)


class _SessionSeeder:
    """``catalog.Seeder``: torrents of the Session, trusted from clean records."""

    def __init__(self, service: ShareService, root: str, resume_dir: str) -> None:
        self._service = service
        self.root = root
        self.resume_dir = resume_dir

    def _resume_path(self, info_hash: bytes) -> str:
        return os.path.join(self.resume_dir, info_hash.hex() + ".resume")

    @inlineCallbacks
    def seed(self, built: Built) -> Any:
        service = self._service
        session, tracker = service.session, service.tracker
        assert session is not None and tracker is not None
        if session.get(built.info_hash) is not None:
            return None
        resume_path = self._resume_path(built.info_hash)
        yield service.in_thread(
            tree.write_clean_resume, resume_path, built, service.config.limits
        )
        service.allowed.add(built.info_hash)
        basedir = os.path.join(self.root, *built.rel[:-1])
        torrent = _SharedTorrent(
            built.raw, basedir, reactor=service.reactor, session=session,
            resume_path=resume_path, progress_interval=0, limits=service.config.limits,
            share_root=self.root, share_prefix=built.rel[:-1],
        )
        if tracker.announce_url != service.tracker_url:
            # The torrents name the address clients reach (a proxy, a public
            # name), which this host may not reach: register with the
            # embedded tracker directly too, as a tier of its own.
            torrent.add_tracker(tracker.announce_url)
        session.adopt(torrent)
        try:
            yield torrent.start()
        except BaseException:
            service.allowed.discard(built.info_hash)
            yield session.remove(built.info_hash)
            raise
        _log.info("seeding {path} ({info_hash})", path="/".join(built.rel),
                  info_hash=built.info_hash.hex())
        return None

    @inlineCallbacks
    def unseed(self, info_hash: bytes) -> Any:
        service = self._service
        service.allowed.discard(info_hash)
        session = service.session
        if session is not None and session.get(info_hash) is not None:
            try:
                yield session.remove(info_hash)
            except Exception as e:
                # Stopped and forgotten all the same; its last resume record
                # could not be written (its files are gone or unsafe now).
                _log.warn("stopping {info_hash}: {error}", info_hash=info_hash.hex(), error=e)
            _log.info("stopped seeding {info_hash}", info_hash=info_hash.hex())
        path = self._resume_path(info_hash)
        yield service.in_thread(_unlink, path)
        return None


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class ShareService(MultiService):
    """The share service (see the module docstring)."""

    def __init__(self, config: ShareConfig, *, reactor: Any = None, clock: Any = None) -> None:
        """``reactor``: the global one if None; ``clock`` (``IReactorTime``)
        times the periodic check, the reactor if None."""
        super().__init__()
        self.config = config
        self._given_reactor = reactor
        self._clock = clock
        self._reactor: Any = None
        self.tracker: RunningTracker | None = None
        self.session: Session | None = None
        self.catalog: Catalog | None = None
        self.port: Any = None
        """The HTTP listening port, once started."""
        self.tracker_url: str | None = None
        """The announce URL in the torrents, once started."""
        self.url: str | None = None
        """The HTTP service's base URL, once started."""
        self.root: str | None = None
        self.cache_dir: str | None = None
        self.started: Deferred[None] | None = None
        self.allowed: set[bytes] = set()
        """The info hashes the embedded tracker tracks: those seeding (the
        tracker keeps this set, not a copy, so adding to it registers)."""
        self._connections: _Connections | None = None
        self._sweep: LoopingCall | None = None

    @property
    def reactor(self) -> Any:
        """The reactor, once started."""
        return self._reactor

    def in_thread(self, f: Callable[..., T], *args: Any) -> Deferred[T]:
        """Run ``f(*args)`` in the Session's thread pool."""
        assert self.session is not None
        return deferToThreadPool(self._reactor, self.session.threadpool, f, *args)

    def startService(self) -> None:
        super().startService()
        self.started = self._start()
        self.started.addErrback(self._start_failed)

    def _start_failed(self, failure: Failure) -> Deferred[Any]:
        d = self._teardown()
        d.addCallback(lambda _: failure)
        return d

    @inlineCallbacks
    def _start(self) -> Any:
        cfg = self.config
        reactor = self._reactor = resolve_reactor(self._given_reactor)
        root = self.root = os.path.realpath(cfg.directory)
        if not os.path.isdir(root):
            raise NotADirectoryError(f"not a directory: {cfg.directory}")
        cache_dir = os.path.realpath(cfg.cache_dir or os.path.join(root, CACHE_NAME))
        self.cache_dir = cache_dir
        resume_dir = os.path.join(cache_dir, "resume")
        os.makedirs(resume_dir, exist_ok=True)

        self.tracker = yield start_tracker(
            reactor, cfg.tracker_interface, cfg.tracker_port, cfg.tracker_port,
            allowed=self.allowed,
        )
        tracker_url = self.tracker_url = cfg.tracker_url or self.tracker.announce_url
        session = self.session = Session(
            reactor, cfg.peer_port, [cfg.peer_interface],
            # Builds hold a thread each for as long as they hash: keep some for seeding.
            SessionConfig(disk_threads=max(cfg.disk_threads, cfg.max_jobs + 2)),
        )
        yield session.start()
        disk = _ThreadDisk(self, root, cache_dir, tracker_url)
        catalog = self.catalog = Catalog(
            disk, _SessionSeeder(self, root, resume_dir), cfg.max_jobs, cfg.max_queued
        )
        site = Site(ShareResource(catalog, disk.list_files))
        site.displayTracebacks = False
        self._connections = _Connections(site)
        self.port = yield serverFromString(reactor, cfg.listen).listen(self._connections)
        address = self.port.getHost()
        host = f"[{address.host}]" if ":" in address.host else address.host
        self.url = f"http://{host}:{address.port}"
        sweep = self._sweep = LoopingCall(self._check)
        sweep.clock = self._clock if self._clock is not None else reactor
        sweep.start(cfg.check_interval, now=False)
        _log.info("sharing {root} on {url}; tracker {tracker}", root=root, url=self.url,
                  tracker=tracker_url)
        return None

    def _check(self) -> Deferred[Any]:
        assert self.catalog is not None
        d = self.catalog.check()
        d.addErrback(lambda f: _log.failure("checking shared files failed", f))
        return d

    def stopService(self) -> Deferred[Any]:
        super().stopService()
        return self._teardown()

    @inlineCallbacks
    def _teardown(self) -> Any:
        sweep, self._sweep = self._sweep, None
        if sweep is not None and sweep.running:
            sweep.stop()
        if self.catalog is not None:
            self.catalog.stop()
        port, self.port = self.port, None
        if port is not None:
            yield port.stopListening()
        if self._connections is not None:
            yield self._connections.close_all()
        session, self.session = self.session, None
        if session is not None:
            for torrent in session.torrents():
                try:
                    yield session.remove(torrent.info_hash)
                except Exception:
                    _log.failure("stopping a seeding torrent failed")
            yield session.stop()
        tracker, self.tracker = self.tracker, None
        if tracker is not None:
            yield tracker.stop()
        return None
