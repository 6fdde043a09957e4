"""The ``Torrent`` facade.

Theory of operation
-------------------
A ``Torrent`` wires parts together and owns nothing clever:

* what: the parsed ``Metainfo`` and its ``Layout``;
* where: a ``FileStorage`` (blocking, safe file I/O) behind a ``Store``
  (the same calls as Deferreds, run in a thread pool);
* is it right: a ``HashChecker`` that hashes pieces in the store's threads;
* what we knew last time: the resume record (``core.resume`` decides what to
  trust, ``resumefile`` writes it atomically).

It owns the set of verified pieces (``bitfield``) and the file priorities.
The invariant it keeps: a piece is in ``bitfield`` only after its hash was
checked in this process or a clean resume record vouched for it with every
file it touches unchanged since.

Nothing observable happens in the constructor beyond reading and parsing the
.torrent file; the thread pool starts on the first call that needs the disk,
and ``close()`` stops it.  Subclasses may override ``make_storage`` to put
the data somewhere else.  The peer engine (``start``/``stop``/``pause``,
peers, trackers) joins in the next milestone.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import (
    Deferred,
    DeferredList,
    inlineCallbacks,
    maybeDeferred,
    succeed,
)
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.python.failure import Failure

from txbittorrent.tracker.announcer import Announcer
from txbittorrent.core.peerid import make_peer_id
from txbittorrent.core.tracker.tiers import TrackerStatus, TrackerTiers
from txbittorrent.observers import ObserverList
from txbittorrent.swarm.peerstate import PeerInfo
from txbittorrent.session import Session, SessionConfig
from txbittorrent.swarm.swarm import Swarm
from txbittorrent.swarm.config import SwarmConfig, SwarmObserver
from txbittorrent.peer.throttle import Throttle
from txbittorrent.tracker.client import HTTPTrackerClient, UDPTrackerClient

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import Layout
from txbittorrent.core.metainfo import Metainfo, MetainfoLimits, parse
from txbittorrent.core.resume import make_record, plan_resume
from txbittorrent.errors import LocalProtocolError, MetainfoError, ResumeDataError
from txbittorrent.storage.hashcheck import HashChecker, OnProgress
from txbittorrent.storage.resumefile import load_record, save_record
from txbittorrent.storage.files import FileStorage
from txbittorrent.storage.store import Store

__all__ = ["Torrent", "FileInfo"]

_log = Logger()

OnPiece = Callable[[int], object]


@dataclass(frozen=True, slots=True)
class FileInfo:
    """One file of a torrent as ``Torrent.files()`` shows it."""

    index: int
    path: str
    """Relative to ``basedir``, with the OS's separator."""
    length: int
    priority: int


def _load_metainfo(path: str | bytes | Metainfo, limits: MetainfoLimits) -> Metainfo:
    if isinstance(path, Metainfo):
        return path
    if isinstance(path, (bytes, bytearray, memoryview)):
        return parse(bytes(path), limits)
    try:
        with open(path, "rb") as f:
            raw = f.read(limits.max_torrent_size + 1)
    except FileNotFoundError:
        raise MetainfoError(str(path), "no such file") from None
    return parse(raw, limits)


class Torrent:
    """One torrent: its metadata, its data on disk, what of it is verified,
    and (between ``start`` and ``stop``) its peers and trackers.

    ``path`` is a .torrent file's path, its raw bytes, or a parsed ``Metainfo``.
    ``basedir`` (default: the current directory at construction) holds the
    data; a multi-file torrent adds a directory of its name below it.
    ``port`` is the listening port (0: the kernel picks) when the torrent has
    no ``session`` of its own.  ``state`` is the state ``start()`` enters:
    "active" (the default; "started" is an alias) or "paused".  Nothing at all
    happens until ``start()`` (or ``hashcheck()``) is called.
    ``resume_path`` names the resume record's file; without it nothing but
    the torrent's own data (and its part file) is ever written.
    A torrent given a shared ``session`` does its disk work and hashing in
    the session's thread pool; one without has a pool of its own of
    ``disk_threads + hash_workers`` threads.

    Subclasses may override ``make_peer_id``, ``make_storage`` and
    ``make_session`` (the listening and dialing side, where a protocol or
    endpoint of one's own would go)."""

    def __init__(
        self,
        path: str | bytes | Metainfo,
        basedir: str | None = None,
        port: int = 0,
        on_hash_pass: OnPiece | None = None,
        on_hash_fail: OnPiece | None = None,
        state: str = "active",
        piece_cache: Mapping[int, int] | None = None,
        reactor: Any = None,
        *,
        priorities: Sequence[int] | None = None,
        resume_path: str | None = None,
        session: Session | None = None,
        listen_interfaces: Sequence[str] | None = None,
        peer_id: bytes | None = None,
        rng: random.Random | None = None,
        max_peers: int | None = None,
        download_limit: float | None = None,
        upload_limit: float | None = None,
        swarm_config: SwarmConfig | None = None,
        announce_to_all: bool = False,
        limits: MetainfoLimits = MetainfoLimits(),
        disk_threads: int = 2,
        hash_workers: int | None = None,
    ) -> None:
        self.metainfo = _load_metainfo(path, limits)
        self.basedir = os.path.abspath(basedir if basedir is not None else os.getcwd())
        self.on_hash_pass = on_hash_pass
        self.on_hash_fail = on_hash_fail
        if state == "started":
            state = "active"
        if state not in ("active", "paused"):
            raise ValueError(f"state must be 'active' or 'paused', not {state!r}")
        self._start_state = state
        self._state = "stopped"
        self.layout = Layout.from_metainfo(self.metainfo)
        self.resume_path = resume_path
        self._reactor = reactor
        self._rng = rng if rng is not None else random.Random()
        self._peer_id = peer_id
        self._port = port
        self._shared_session = session
        self._listen_interfaces = listen_interfaces
        config = swarm_config if swarm_config is not None else SwarmConfig()
        if max_peers is not None:
            config = dataclasses.replace(config, max_connections=max_peers)
        self.swarm_config = config
        self.download_limit = download_limit
        self.upload_limit = upload_limit
        self.announce_to_all = announce_to_all
        self._storage = self.make_storage(priorities, piece_cache)
        self._disk_threads = disk_threads
        self._hash_workers = hash_workers if hash_workers is not None else os.cpu_count() or 2
        self._store: Store | None = None
        self._checkers: list[HashChecker] = []
        self._have = Bitfield(self.metainfo.piece_count)
        self._piece_prio: list[int] | None = None
        self._missing: int | None = None
        self._have_known = False
        self._closed = False
        self._run: _Running | None = None
        self._transitions: Deferred[None] = succeed(None)
        self._observers = ObserverList()
        self._complete_waiters: list[Deferred[Torrent]] = []
        self._uploaded_before = 0
        self._downloaded_before = 0

    # -- hooks for subclasses ------------------------------------------------------

    def make_storage(
        self, priorities: Sequence[int] | None, piece_cache: Mapping[int, int] | None
    ) -> FileStorage:
        """Build the blocking file store (override to store data elsewhere)."""
        return FileStorage(self.metainfo, self.basedir, priorities, piece_cache)

    def make_peer_id(self) -> bytes:
        """Our 20-byte peer id (BEP 20 style, ``-TX0100-`` and 12 random characters)."""
        return make_peer_id(self._rng)

    def make_session(self) -> Session:
        """The listening and dialing side for a torrent with no shared session."""
        interfaces = self._listen_interfaces
        kwargs: dict[str, Any] = {}
        if interfaces is not None:
            kwargs["listen_interfaces"] = tuple(interfaces)
        return Session(
            reactor=self._reactor,
            listen_port=self._port,
            config=SessionConfig(),
            **kwargs,
        )

    # -- accessors -----------------------------------------------------------------

    @property
    def infohash(self) -> bytes:
        return self.metainfo.info_hash

    info_hash = infohash

    @property
    def name(self) -> str:
        return self.metainfo.name

    @property
    def size(self) -> int:
        return self.metainfo.total_length

    @property
    def piece_length(self) -> int:
        return self.metainfo.piece_length

    @property
    def piece_count(self) -> int:
        return self.metainfo.piece_count

    @property
    def private(self) -> bool:
        return self.metainfo.private

    @property
    def peerid(self) -> bytes:
        """Our peer id (made by ``make_peer_id`` on first use)."""
        if self._peer_id is None:
            self._peer_id = self.make_peer_id()
        return self._peer_id

    peer_id = peerid

    @property
    def port(self) -> int:
        """The listening port (the real one once started)."""
        if self._run is not None and self._run.session.port is not None:
            return self._run.session.port
        return self._port

    @property
    def state(self) -> str:
        """"stopped", "paused" or "active"."""
        return self._state

    @property
    def uploaded(self) -> int:
        """Payload bytes sent to peers since this object was made."""
        live = self._run.swarm.uploaded if self._run is not None else 0
        return self._uploaded_before + live

    @property
    def downloaded(self) -> int:
        """Payload bytes received from peers (verified or not) since this object was made."""
        live = self._run.swarm.downloaded if self._run is not None else 0
        return self._downloaded_before + live

    @property
    def download_rate(self) -> float:
        return self._run.swarm.download_rate if self._run is not None else 0.0

    @property
    def upload_rate(self) -> float:
        return self._run.swarm.upload_rate if self._run is not None else 0.0

    def peers(self) -> list[PeerInfo]:
        """The connected peers (address, client, flags, rates, progress...)."""
        return self._run.swarm.peers() if self._run is not None else []

    def trackers(self) -> tuple[tuple[TrackerStatus, ...], ...]:
        """The trackers as BEP 12 tiers, each URL with its status (complete,
        incomplete, failures, peers, last error, next announce...)."""
        if self._run is not None and self._run.announcer is not None:
            return self._run.announcer.trackers()
        tiers = TrackerTiers(self.metainfo.trackers, self._rng)
        return tuple(tuple(tiers.status(url) for url in tier) for tier in tiers.tiers)

    def add_peers(self, addresses: Iterable[tuple[str, int]]) -> None:
        """Peers to connect to (besides those trackers give); ignored while stopped."""
        if self._run is not None:
            self._run.swarm.add_peers(list(addresses), source="user")

    # -- observers --------------------------------------------------------------------

    def add_observer(self, observer: Any) -> None:
        """Hear what happens: see ``observers.TorrentObserver``."""
        self._observers.add(observer)

    def remove_observer(self, observer: Any) -> None:
        self._observers.remove(observer)

    def when_complete(self) -> Deferred[Torrent]:
        """A Deferred that fires (with this torrent) once every wanted piece is verified."""
        if self.complete:
            return succeed(self)
        d: Deferred[Torrent] = Deferred()
        self._complete_waiters.append(d)
        return d

    @property
    def bitfield(self) -> Bitfield:
        """A copy of the set of verified pieces."""
        return self._have.copy()

    @property
    def wanted(self) -> Bitfield:
        """Pieces not verified yet that belong to a file of priority > 0."""
        out = Bitfield(self.piece_count)
        for index, priority in enumerate(self._piece_priorities()):
            if priority > 0 and index not in self._have:
                out.add(index)
        return out

    @property
    def complete(self) -> bool:
        """Every wanted piece is verified."""
        return self._missing_wanted() == 0

    def _piece_priorities(self) -> list[int]:
        if self._piece_prio is None:
            self._piece_prio = self.layout.piece_priorities(self.priorities)
        return self._piece_prio

    def _missing_wanted(self) -> int:
        """Wanted pieces not verified yet, kept up to date as pieces come and go
        (``complete`` is asked after every piece: it must not scan them all)."""
        if self._missing is None:
            have = self._have
            self._missing = sum(
                1 for i, p in enumerate(self._piece_priorities()) if p > 0 and i not in have
            )
        return self._missing

    def _have_changed(self) -> None:
        """``_have`` or the priorities changed wholesale: recount lazily."""
        self._missing = None
        self._piece_prio = None

    @property
    def seed(self) -> bool:
        """Every piece is verified."""
        return self._have.complete

    @property
    def left(self) -> int:
        """Bytes of the torrent not verified yet (BEP 3's ``left``)."""
        return self.size - sum(self.layout.piece_size(i) for i in self._have)

    @property
    def wanted_size(self) -> int:
        """Bytes in pieces that belong to a wanted file (the download's size)."""
        priorities = self._piece_priorities()
        return sum(self.layout.piece_size(i) for i, p in enumerate(priorities) if p > 0)

    @property
    def left_wanted(self) -> int:
        """Bytes of wanted pieces not verified yet."""
        return sum(self.layout.piece_size(i) for i in self.wanted)

    @property
    def priorities(self) -> tuple[int, ...]:
        return self._storage.priorities

    def files(self) -> list[FileInfo]:
        """The torrent's files (pad files left out), with their priorities."""
        return [
            FileInfo(i, os.path.join(*f.path), f.length, self._storage.priorities[i])
            for i, f in enumerate(self.metainfo.files)
            if not f.pad
        ]

    def set_priorities(self, priorities: Sequence[int]) -> Deferred[None]:
        """Set every file's priority (0 = skip); data moves out of the part file
        for files that become wanted."""
        store = self._ensure_store()
        d = store.set_priorities(priorities)

        def applied(_: object) -> None:
            self._have_changed()
            if self._run is not None:
                self._run.swarm.set_piece_priorities(
                    self.layout.piece_priorities(self.priorities)
                )
            self._check_complete()

        return d.addCallback(applied)

    def set_file_priority(self, index: int, priority: int) -> Deferred[None]:
        priorities = list(self.priorities)
        priorities[index] = priority
        return self.set_priorities(priorities)

    def piece_cache(self) -> dict[int, int]:
        """Where pieces held in the part file live: pass it back as ``piece_cache=``."""
        return self._storage.piece_cache()

    def path_of(self, file_index: int) -> str:
        return self._storage.file_path(file_index)

    # -- verification ---------------------------------------------------------------

    def _ensure_store(self) -> Store:
        """The running store, started (anew after a stop) when needed."""
        if self._closed:
            raise LocalProtocolError("this torrent is closed")
        if self._store is None:
            shared = self._shared_session
            self._store = Store(
                self._storage,
                reactor=self._reactor,
                threadpool=shared.threadpool if shared is not None else None,
                threads=self._disk_threads + self._hash_workers,
            )
            self._store.start()
        return self._store

    def hashcheck(
        self, indexes: Iterable[int] | None = None, on_progress: OnProgress | None = None
    ) -> Deferred[Bitfield]:
        """Verify pieces (default: all) and fire with a copy of ``bitfield``.

        Each piece that passes is added to ``bitfield`` and reported to
        ``on_hash_pass``; one that fails (or whose data is missing) is removed
        and reported to ``on_hash_fail``.  The hashing runs in threads; the
        reactor only sees the results."""
        store = self._ensure_store()
        full = indexes is None
        checker = HashChecker(
            self.metainfo,
            self._storage.read_piece,
            reactor=store.reactor,
            threadpool=store.threadpool,
            workers=self._hash_workers,
        )
        self._checkers.append(checker)
        d = checker.check(indexes, self._passed, self._failed, on_progress)

        def done(_: Bitfield) -> Bitfield:
            if full:
                self._have_known = True
            return self.bitfield

        def forget(result: object) -> object:
            self._checkers.remove(checker)
            return result

        return d.addCallback(done).addBoth(forget)

    def _passed(self, index: int) -> None:
        if index not in self._have:
            self._have.add(index)
            if self._missing is not None and self._piece_priorities()[index] > 0:
                self._missing -= 1
        if self.on_hash_pass is not None:
            self.on_hash_pass(index)
        self._observers.notify("piece_verified", self, index, True)
        self._check_complete()

    def _failed(self, index: int) -> None:
        if index in self._have:
            self._have.discard(index)
            if self._missing is not None and self._piece_priorities()[index] > 0:
                self._missing += 1
        if self.on_hash_fail is not None:
            self.on_hash_fail(index)
        self._observers.notify("piece_verified", self, index, False)

    def _check_complete(self) -> None:
        if not self._complete_waiters and self._run is None:
            return
        if not self.complete:
            return
        if self._run is not None and not self._run.completed_sent:
            self._run.completed_sent = True
            if self._run.announcer is not None:
                self._run.announcer.completed()
            self._observers.notify("completed", self)
        waiters, self._complete_waiters = self._complete_waiters, []
        for d in waiters:
            d.callback(self)

    # -- resume ----------------------------------------------------------------------

    @inlineCallbacks
    def load_resume(self, on_progress: OnProgress | None = None) -> Any:
        """Restore ``bitfield`` from the resume record, hashing what it cannot vouch for.

        A missing or corrupt record means a full check of the data on disk.
        Right after loading, the record is rewritten as unclean, so a crash
        before a clean ``stop()`` makes the next run recheck what it claims.
        Fires with a copy of ``bitfield``."""
        path = self._resume_file()
        store = self._ensure_store()
        try:
            record = yield store.call(
                load_record,
                path,
                self.infohash,
                self.piece_count,
                len(self.metainfo.files),
            )
        except ResumeDataError:
            record = None
        disk_files = yield store.file_stats()
        disk_part = yield store.part_stat()
        plan = plan_resume(record, self.layout, disk_files, disk_part)
        for index in list(self._have):
            if index not in plan.have:
                self._have.discard(index)
        for index in plan.have:
            self._have.add(index)
        self._have_changed()
        if plan.recheck:
            yield self.hashcheck(sorted(plan.recheck), on_progress)
        self._have_known = True
        yield self._save(clean=False)
        return self.bitfield

    def save_resume(self, clean: bool = False) -> Deferred[None]:
        """Write the resume record atomically (after flushing the data files)."""
        self._resume_file()
        self._ensure_store()
        return self._save(clean)

    @inlineCallbacks
    def _save(self, clean: bool) -> Any:
        path = self._resume_file()
        store = self._ensure_store()
        yield store.sync()
        disk_files = yield store.file_stats()
        disk_part = yield store.part_stat()
        record = make_record(
            self.infohash,
            self._have,
            self.piece_cache(),
            disk_files,
            disk_part,
            clean=clean,
            priorities=self.priorities,
        )
        yield store.call(save_record, path, record)

    def _resume_file(self) -> str:
        if self.resume_path is None:
            raise LocalProtocolError("this torrent has no resume_path")
        return self.resume_path

    # -- life cycle --------------------------------------------------------------------

    def _set_state(self, new: str) -> None:
        old, self._state = self._state, new
        if old != new:
            self._observers.notify("state_changed", self, old, new)

    def _serially(self, step: Callable[[], Any]) -> Deferred[None]:
        """Run life-cycle steps one after another, in call order.  Each call
        gets a Deferred of its own, and the next step begins only after the
        callbacks on the previous step's Deferred have run."""
        out: Deferred[None] = Deferred()
        gate: Deferred[None] = Deferred()
        previous, self._transitions = self._transitions, gate

        def finish(result: object) -> None:
            if isinstance(result, Failure):
                out.errback(result)
            else:
                out.callback(None)
            gate.callback(None)

        def run(_: object) -> None:
            maybeDeferred(step).addBoth(finish)

        previous.addCallback(run)
        return out

    def start(self) -> Deferred[None]:
        """Begin (or resume) sharing: verify or load resume data if the state
        of the data is unknown, listen, announce ``started``, make and accept
        connections.  From "paused", resume; fires once running."""
        return self._serially(self._start)

    def pause(self) -> Deferred[None]:
        """Keep connections (and accept new ones) but request and serve nothing;
        no tracker event.  ``start()`` resumes."""
        return self._serially(self._pause)

    def stop(self) -> Deferred[None]:
        """Announce ``stopped``, close every connection and file, stop
        listening, cancel every timer, and save a clean resume record."""
        return self._serially(self._stop)

    def close(self) -> Deferred[None]:
        """``stop()``, then refuse any further use.  Safe to call twice."""

        def closed(_: object) -> None:
            self._closed = True

        if self._closed:
            return succeed(None)
        return self.stop().addCallback(closed)

    def _pause(self) -> None:
        if self._run is None:
            self._start_state = "paused"
            return
        self._run.swarm.pause()
        self._set_state("paused")

    @inlineCallbacks
    def _start(self) -> Any:
        if self._run is not None:
            if self._state == "paused":
                self._run.swarm.resume()
                self._set_state("active")
            return None
        self._ensure_store()
        if not self._have_known:
            if self.resume_path is not None:
                yield self.load_resume()
            else:
                yield self.hashcheck()
        run = yield self._launch()
        self._run = run
        if self._start_state == "paused":
            run.swarm.pause()
        # A torrent complete at start says so with "started" (left=0): no "completed".
        run.completed_sent = self.complete
        if run.announcer is not None:
            run.announcer.start()
        if self.resume_path is not None:
            run.saver = LoopingCall(self._periodic_save)
            run.saver.clock = run.clock
            run.saver.start(RESUME_SAVE_INTERVAL, now=False)
        self._start_state = "active"
        self._set_state("paused" if run.swarm.paused else "active")
        self._check_complete()
        return None

    @inlineCallbacks
    def _launch(self) -> Any:
        """Build and start the parts that live from ``start`` to ``stop``."""
        store = self._ensure_store()
        reactor = store.reactor
        own = self._shared_session is None
        session = self.make_session() if own else self._shared_session
        assert session is not None
        if own:
            yield session.start()
        swarm = Swarm(
            self.metainfo,
            self.layout,
            store,
            self._have,
            self.peerid,
            session,
            reactor,
            self._rng,
            self.layout.piece_priorities(self.priorities),
            config=self.swarm_config,
            upload_throttle=Throttle(self.upload_limit, reactor),
            download_throttle=Throttle(self.download_limit, reactor),
            on_piece_passed=self._piece_downloaded,
            on_piece_failed=self._failed,
            observer=_SwarmBridge(self),
        )
        swarm.listen_port = session.port
        session.add_host(swarm)
        swarm.start()
        run = _Running(reactor, session, own, swarm)
        if self.metainfo.trackers:
            interface4, interface6 = self._udp_interfaces()
            run.udp = UDPTrackerClient(
                reactor=reactor, rng=self._rng, interface4=interface4, interface6=interface6
            )
            run.udp.start()
            run.announcer = Announcer(
                self.metainfo.trackers,
                self.infohash,
                self.peerid,
                lambda: session.port or 0,
                lambda: (self.uploaded, self.downloaded, self.left),
                _adder(swarm),
                reactor,
                self._rng,
                HTTPTrackerClient(reactor=reactor),
                run.udp,
                announce_to_all=self.announce_to_all,
                on_reply=lambda url, r: self._observers.notify("tracker_reply", self, url, r),
                on_error=lambda url, e: self._observers.notify("tracker_error", self, url, e),
            )
        return run

    def _udp_interfaces(self) -> tuple[str, str]:
        """Where the UDP tracker client binds: where we listen, when given."""
        given = list(self._listen_interfaces or ())
        v4 = next((i for i in given if ":" not in i), "0.0.0.0")
        v6 = next((i for i in given if ":" in i), "::")
        return v4, v6

    def _piece_downloaded(self, index: int) -> None:
        """The swarm verified and wrote a piece."""
        self._passed(index)

    def _periodic_save(self) -> Any:
        d = self._save(clean=False)
        d.addErrback(lambda f: _log.failure("saving resume data failed", f))
        return d

    @inlineCallbacks
    def _stop(self) -> Any:
        run, self._run = self._run, None
        if run is not None:
            if run.saver is not None and run.saver.running:
                run.saver.stop()
            waits = [run.swarm.stop()]
            if run.announcer is not None:
                waits.append(run.announcer.stop())
            yield DeferredList(waits, consumeErrors=True)
            run.session.remove_host(run.swarm)
            if run.udp is not None:
                yield run.udp.stop()
            if run.own_session:
                yield run.session.stop()
            self._uploaded_before += run.swarm.uploaded
            self._downloaded_before += run.swarm.downloaded
        store, self._store = self._store, None
        if store is not None:
            for checker in list(self._checkers):
                yield checker.when_idle()
            if self._have_known and self.resume_path is not None:
                self._store = store
                try:
                    yield self._save(clean=True)
                finally:
                    self._store = None
            yield store.stop()
        self._set_state("stopped")
        return None


def _adder(swarm: Swarm) -> Callable[[list[tuple[str, int]], str], None]:
    def add(peers: list[tuple[str, int]], source: str) -> None:
        swarm.add_peers(peers, source)

    return add


RESUME_SAVE_INTERVAL = 60.0
"""Seconds between the unclean resume saves of a running torrent."""


class _Running:
    """The parts that live from ``start`` to ``stop``."""

    def __init__(self, clock: Any, session: Session, own_session: bool, swarm: Swarm) -> None:
        self.clock = clock
        self.session = session
        self.own_session = own_session
        self.swarm = swarm
        self.announcer: Announcer | None = None
        self.udp: UDPTrackerClient | None = None
        self.saver: LoopingCall | None = None
        self.completed_sent = False


class _SwarmBridge(SwarmObserver):
    """Passes what the swarm reports on to the torrent's observers."""

    def __init__(self, torrent: Torrent) -> None:
        self.torrent = torrent

    def peer_connected(self, info: PeerInfo) -> None:
        self.torrent._observers.notify("peer_connected", self.torrent, info)

    def peer_lost(self, info: PeerInfo, reason: str) -> None:
        self.torrent._observers.notify("peer_lost", self.torrent, info, reason)

    def disk_error(self, index: int, failure: Failure) -> None:
        _log.failure("disk error on piece {index}", failure, index=index)
        self.torrent._observers.notify("disk_error", self.torrent, index, failure)
