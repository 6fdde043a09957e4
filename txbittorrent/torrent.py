"""The ``Torrent`` facade.

Theory of operation
-------------------
A ``Torrent`` is the application's handle on one torrent, with the API of
AnyEvent::BitTorrent.  It owns little and composes the rest:

* its source (``source.TorrentSource``): the info hash, the trackers, the
  magnet's peers, and the metainfo when known;
* ``TorrentData`` (``storage.data``): files, store, hash checks, resume
  record and the ``Completion`` model, made once the metainfo is known (at
  once for a .torrent; later, with ``set_metainfo``, for a magnet link or a
  bare info hash);
* ``RunningTorrent`` (``running``): session, swarm and announcer, from
  ``start`` to ``stop``.

Its state is a ``TorrentState``: stopped, checking, metadata, downloading,
seeding, paused or error; the Perl names (``active``, ``paused``,
``stopped``; ``started`` as an alias) compare equal to it.  Life-cycle calls
(``start``, ``pause``, ``stop``) run one after another in call order.

Its timers schedule nothing while they have nothing to do (a session may
hold thousands of idle torrents): the resume record is saved every
``resume_save_interval`` only if something changed since the last save,
and ``Progress`` is published every ``progress_interval`` while the torrent
has peers or checks its data, and every ``PROGRESS_IDLE_SLOTS`` intervals
otherwise.

Nothing observable happens in the constructor beyond reading and parsing the
.torrent file; the thread pool starts on the first call that needs the disk.
Subclasses may override ``make_peer_id``, ``make_storage`` and
``make_session``.
"""

from __future__ import annotations

import dataclasses
import os
import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txbittorrent._reactor import resolve_reactor
from txbittorrent.accessors import FileInfo, TorrentAccessors
from txbittorrent.config import TorrentConfig
from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.metainfo import Metainfo, parse_info
from txbittorrent.core.peerid import make_peer_id
from txbittorrent.errors import LocalProtocolError, MetainfoError
from txbittorrent.events import EventBus, SwarmPublisher, Subscription, attach_observer
from txbittorrent.eventtypes import (
    Complete,
    MetadataReceived,
    PieceFailed,
    PiecePassed,
    Progress,
    StateChanged,
    TorrentEvent,
    TrackerError,
    TrackerReply,
)
from txbittorrent.reader import DeadlineBook
from txbittorrent.streaming import TorrentStreaming
from txbittorrent.running import RunningTorrent
from txbittorrent.serial import Serial
from txbittorrent.session import Session, SessionConfig
from txbittorrent.source import Source, TorrentSource, load_source
from txbittorrent.state import TorrentState
from txbittorrent.storage.data import TorrentData
from txbittorrent.storage.files import FileStorage
from txbittorrent.storage.hashcheck import OnProgress, default_workers
from txbittorrent.storage.store import Store
from txbittorrent.swarm.extensions import PeerExtension
from txbittorrent.swarm.plugins import PluginContext, builtin_extensions
from txbittorrent.swarm.peerstate import PeerInfo

__all__ = ["Torrent", "FileInfo", "TorrentState"]

_log = Logger()

OnPiece = Callable[[int], object]

LEFT_UNKNOWN = 16 * 1024
"""``left`` announced before the metadata is known: not 0 (that would say
we seed, and trackers send seeds no seeds), the length of one block."""


MAX_WAITING_PEERS = 500
"""Peers ``add_peers`` keeps for a torrent that does not run yet."""

_DEFAULT_CONFIG = TorrentConfig()
"""The settings of a torrent given none: one frozen instance for all (with
its swarm, tracker and metainfo settings), not one per torrent."""

PROGRESS_IDLE_SLOTS = 60
"""A torrent without peers (nothing moves) publishes ``Progress`` every this
many ``progress_interval``s instead of every one."""


class Torrent(TorrentAccessors, TorrentStreaming):
    """One torrent: its source, its data on disk (once the metadata is
    known), what of it is verified, and (between ``start`` and ``stop``)
    its peers and trackers.

    ``path`` is a .torrent file's path, its raw bytes, a parsed ``Metainfo``,
    a magnet URI (or ``Magnet``), or a bare info hash (40 hex digits, 32
    base32 characters, or 20 bytes).  ``basedir`` (default: the current
    directory at construction) holds the data; a multi-file torrent adds a
    directory of its name below it.  ``port`` is the listening port (0: the
    kernel picks) when the torrent has no ``session`` of its own.  ``state``
    is the state ``start()`` enters: "active" (the default; "started" is an
    alias) or "paused".  ``resume_path`` names the resume record's file;
    without it nothing but the torrent's own data (and its part file) is
    ever written.  ``config`` is a ``TorrentConfig``; any other keyword
    (``max_peers=``, ``download_limit=``, ``listen_interfaces=``...) is one of
    its fields.  Nothing at all happens until ``start()`` (or
    ``hashcheck()``) is called."""

    def __init__(
        self,
        path: Source,
        basedir: str | None = None,
        port: int = 0,
        on_hash_pass: OnPiece | None = None,
        on_hash_fail: OnPiece | None = None,
        state: str = "active",
        piece_cache: Mapping[int, int] | None = None,
        reactor: Any = None,
        *,
        config: TorrentConfig | None = None,
        priorities: Sequence[int] | None = None,
        resume_path: str | None = None,
        session: Session | None = None,
        peer_id: bytes | None = None,
        rng: random.Random | None = None,
        **options: Any,
    ) -> None:
        self.config = TorrentConfig.from_options(
            config if config is not None else _DEFAULT_CONFIG, options
        )
        self.source: TorrentSource = load_source(path, self.config.limits)
        self.basedir = os.path.abspath(basedir if basedir is not None else os.getcwd())
        self.on_hash_pass = on_hash_pass
        self.on_hash_fail = on_hash_fail
        if state not in ("active", "started", "paused"):
            raise ValueError(f"state must be 'active' or 'paused', not {state!r}")
        self._start_paused = state == "paused"
        self._state = TorrentState.STOPPED
        self.resume_path = resume_path
        if rng is None:  # one per session, not per torrent (2.5 KB each)
            rng = session.rng if session is not None else random.Random()
        self.rng = rng
        self._reactor = reactor
        self._peer_id = peer_id
        self._port = port
        self._shared_session = session
        self._trackers = [list(tier) for tier in self.source.trackers]
        self._storage_args = (priorities, piece_cache)
        # (Fewer than 30 attributes: CPython shares the keys of smaller
        # instance dicts; past that each torrent's dict costs 1.3 KB more.)
        self.metainfo: Metainfo | None = self.source.metainfo
        """The parsed .torrent (None until the metadata is known)."""
        self._data: TorrentData | None = None
        if self.source.metainfo is not None:
            self._data = self._make_data(self.source.metainfo)
        self._closed = False
        self._run: RunningTorrent | None = None
        self._steps = Serial()
        self._waiting_peers: list[tuple[tuple[str, int], str]] | None = None
        """Peers given while not running, for the next start's swarm."""
        """start, pause and stop, one after another in call order."""
        self.events: EventBus = session.events if session is not None else EventBus()
        """Where this torrent's events go: its session's bus when it shares
        one (filter by ``info_hash``), else a bus of its own."""
        self._subscriptions: dict[int, tuple[Any, Subscription]] = {}
        self._deadlines = DeadlineBook()
        self._checking = False
        self._complete_waiters: list[Deferred[Torrent]] | None = None
        # (None, not empty lists, until used: a session holds thousands.)
        self._uploaded_before = 0
        self._downloaded_before = 0

    def _make_data(self, metainfo: Metainfo) -> TorrentData:
        cfg = self.config
        hash_workers = cfg.hash_workers if cfg.hash_workers is not None else default_workers()
        shared = self._shared_session
        self.metainfo = metainfo
        return TorrentData(
            metainfo,
            self.make_storage(*self._storage_args),
            reactor=self._reactor,
            threadpool=(lambda: shared.threadpool) if shared is not None else None,
            batcher=(lambda: shared.disk_batcher) if shared is not None else None,
            threads=cfg.disk_threads + hash_workers,
            hash_workers=hash_workers,
            resume_path=self.resume_path,
            on_passed=self._passed,
            on_failed=self._failed,
        )

    # -- hooks for subclasses ------------------------------------------------------

    def make_storage(
        self, priorities: Sequence[int] | None, piece_cache: Mapping[int, int] | None
    ) -> FileStorage:
        """Build the blocking file store (override to store data elsewhere)."""
        assert self.metainfo is not None
        return FileStorage(self.metainfo, self.basedir, priorities, piece_cache)

    def make_peer_id(self) -> bytes:
        """Our 20-byte peer id (BEP 20 style, ``-TX0100-`` and 12 random characters)."""
        return make_peer_id(self.rng)

    def make_session(self) -> Session:
        """The listening and dialing side for a torrent with no shared session."""
        interfaces = self.config.listen_interfaces
        kwargs: dict[str, Any] = {}
        if interfaces is not None:
            kwargs["listen_interfaces"] = interfaces
        config = self.config.session_config
        return Session(
            reactor=self._reactor, listen_port=self._port,
            config=config if config is not None else SessionConfig(), events=self.events,
            **kwargs,
        )

    # -- the metadata ----------------------------------------------------------------

    @property
    def has_metadata(self) -> bool:
        """Whether the info dictionary is known (always, for a .torrent)."""
        return self._data is not None

    def set_metainfo(self, metainfo: Metainfo) -> None:
        """The info dictionary arrived (BEP 9) for a torrent made from a
        magnet link or an info hash: set up the files; if running, check
        what is on disk (or load the resume record), then transfer pieces.
        Stopped, the next ``start`` checks."""
        if self._data is not None:
            raise LocalProtocolError("this torrent has its metadata already")
        if metainfo.info_hash != self.infohash:
            raise LocalProtocolError("the metadata is of another torrent")
        self._data = self._make_data(metainfo)
        self._publish(MetadataReceived(
            self.infohash, metainfo.name, metainfo.piece_count, metainfo.total_length
        ))
        if self._run is not None:
            self._wake_progress()  # checking, then pieces may move
            d = self._steps.run(self._attach_checked)
            d.addErrback(lambda f: _log.failure("checking {name} failed", f, name=self.name))

    @inlineCallbacks
    def _attach_checked(self) -> Any:
        """Check the data, then give it to the running swarm (a life-cycle
        step: a stop() waits for it)."""
        run, data = self._run, self._data
        if run is None or data is None:
            return None  # stopped meanwhile: the next start checks
        yield self._verify(data)
        if self._run is not run:
            return None
        run.attach_data(data)
        self._deadlines.attach(run.swarm)
        self._wake_saving()
        self._wake_progress()
        self._refresh_state()
        self._check_complete()
        return None

    @inlineCallbacks
    def _verify(self, data: TorrentData) -> Any:
        """Learn what of the data is on disk, if that is not known yet: the
        resume record (and a check of what it cannot vouch for) or a check."""
        data.ensure_store()
        if data.have_known:
            return None
        self._checking = True
        self._set_state(TorrentState.CHECKING)
        try:
            if self.resume_path is not None:
                yield data.load_resume()
            else:
                yield data.hashcheck()
        finally:
            self._checking = False
        return None

    @property
    def session(self) -> Session | None:
        """The shared ``Session`` this torrent was made with (None: it makes
        one of its own while it runs)."""
        return self._shared_session

    def _require_data(self) -> TorrentData:
        if self._data is None:
            raise LocalProtocolError("the torrent's metadata is not known yet")
        return self._data

    def add_peers(self, addresses: Iterable[tuple[str, int]], source: str = "user") -> int:
        """Peers to connect to (``PeerSource``); the number new.  Given
        while the torrent does not run (stopped, or still checking its
        data), they are kept (at most ``MAX_WAITING_PEERS``) for the swarm
        of its next start."""
        if self._run is None:
            waiting = self._waiting_peers
            if waiting is None:
                waiting = self._waiting_peers = []
            known = {address for address, _ in waiting}
            new = 0
            for address in addresses:
                if address not in known and len(waiting) < MAX_WAITING_PEERS:
                    waiting.append((address, source))
                    known.add(address)
                    new += 1
            return new
        return self._run.swarm.add_peers(list(addresses), source=source)

    # -- trackers ----------------------------------------------------------------------

    def add_tracker(self, url: str, tier: int | None = None) -> None:
        """Add a tracker, in tier ``tier`` (default: a new last tier); a
        running torrent announces to it as BEP 12 says."""
        if any(url in t for t in self._trackers):
            return
        if tier is None or tier >= len(self._trackers):
            self._trackers.append([url])
        else:
            self._trackers[tier].append(url)
        if self._run is not None:
            self._run.announcer.add_tracker(url, tier)

    def reannounce(self) -> bool:
        """Announce to the current trackers now (or as soon as each one's
        ``min interval`` allows); False if the torrent is not running."""
        if self._run is None:
            return False
        self._run.announcer.force_announce()
        return True

    def remove_tracker(self, url: str) -> None:
        """Forget a tracker (a running torrent tells it ``stopped`` if it had
        started with it)."""
        self._trackers = [[u for u in t if u != url] for t in self._trackers]
        self._trackers = [t for t in self._trackers if t]
        if self._run is not None:
            self._run.announcer.remove_tracker(url)

    # -- events and observers -------------------------------------------------------------

    def subscribe(self, callback: Callable[[TorrentEvent], object], **filters: Any) -> Subscription:
        """Hear this torrent's events (``events.EventBus.subscribe``: ``kinds=``)."""
        return self.events.subscribe(callback, info_hash=self.infohash, **filters)

    def add_observer(self, observer: Any) -> None:
        """Hear what happens the older way: see ``observers.TorrentObserver``
        (a view of the event stream)."""
        if id(observer) not in self._subscriptions:
            subscription = attach_observer(self.events, observer, self, self.infohash)
            self._subscriptions[id(observer)] = (observer, subscription)

    def remove_observer(self, observer: Any) -> None:
        entry = self._subscriptions.pop(id(observer), None)
        if entry is not None:
            entry[1].cancel()

    def _publish(self, event: TorrentEvent) -> None:
        self.events.publish(event)

    def when_complete(self) -> Deferred[Torrent]:
        """A Deferred that fires (with this torrent) once every wanted piece is verified."""
        if self.complete:
            return succeed(self)
        d: Deferred[Torrent] = Deferred()
        if self._complete_waiters is None:
            self._complete_waiters = []
        self._complete_waiters.append(d)
        return d

    def set_priorities(self, priorities: Sequence[int]) -> Deferred[None]:
        """Set every file's priority (0 = skip); data moves out of the part file
        for files that become wanted."""
        data = self._require_data()
        self._check_open()

        def applied(changed: frozenset[int]) -> None:
            self._wake_saving()
            if self._run is not None and changed:
                self._run.swarm.priorities_changed()
            self._check_complete()
            self._refresh_state()

        return data.set_priorities(priorities).addCallback(applied)

    def set_file_priority(self, index: int, priority: int) -> Deferred[None]:
        priorities = list(self.priorities)
        priorities[index] = priority
        return self.set_priorities(priorities)

    def set_rate_limits(self, download: float | None, upload: float | None) -> None:
        """This torrent's own rate limits in bytes per second (None:
        unlimited), now if it runs (its throttles change in place; the
        session's global limits still apply) and from its next start on
        (``config`` keeps them)."""
        for value in (download, upload):
            if value is not None and not value > 0:
                raise ValueError(f"a rate limit must be positive or None, not {value!r}")
        self.config = dataclasses.replace(
            self.config, download_limit=download, upload_limit=upload
        )
        if self._run is not None:
            self._run.set_rate_limits(download, upload)

    def _clock(self) -> Any:
        if self._run is not None:
            return self._run.clock
        self._reactor = resolve_reactor(self._reactor)
        return self._reactor

    # -- verification and resume ----------------------------------------------------------

    def _check_open(self) -> None:
        if self._closed:
            raise LocalProtocolError("this torrent is closed")

    def _ensure_store(self) -> Store:
        self._check_open()
        return self._require_data().ensure_store()

    @property
    def _store(self) -> Store | None:
        return self._data.store if self._data is not None else None

    def hashcheck(
        self, indexes: Iterable[int] | None = None, on_progress: OnProgress | None = None
    ) -> Deferred[Bitfield]:
        """Verify pieces (default: all) and fire with a copy of ``bitfield``.

        Each piece that passes is added to ``bitfield`` and reported to
        ``on_hash_pass``; one that fails (or whose data is missing) is removed
        and reported to ``on_hash_fail``.  The hashing runs in threads; the
        reactor only sees the results."""
        self._check_open()
        return self._require_data().hashcheck(indexes, on_progress)

    def load_resume(self, on_progress: OnProgress | None = None) -> Deferred[Bitfield]:
        """Restore ``bitfield`` from the resume record, hashing what it cannot vouch for.

        A missing or corrupt record means a full check of the data on disk.
        The record is rewritten as unclean, so a crash before a clean
        ``stop()`` makes the next run recheck what it claims: right after
        loading, or, for a clean record trusted in full, before the data is
        first written (until then it is still true; see ``storage.data``).
        Fires with a copy of ``bitfield``."""
        self._check_open()
        return self._require_data().load_resume(on_progress)

    def peek_resume(self) -> Deferred[Bitfield]:
        """For a torrent that is not running: set ``bitfield`` to what the
        resume record vouches for, without hashing or rewriting anything,
        so a stopped torrent shows its progress.  Queued with start/stop;
        a no-op while running, before the metadata, without a
        ``resume_path``, or once the data is known.  Fires with a copy of
        ``bitfield`` (empty before the metadata)."""
        d = self._steps.run(self._peek_resume)
        return d.addCallback(lambda _: self.bitfield)

    @inlineCallbacks
    def _peek_resume(self) -> Any:
        self._check_open()
        data = self._data
        if data is None:
            return None
        if self._run is None and self.resume_path is not None and not data.have_known:
            yield data.peek_resume()
        return None

    def save_resume(self, clean: bool = False) -> Deferred[None]:
        """Write the resume record atomically (after flushing the data files)."""
        self._check_open()
        if self.resume_path is None:
            raise LocalProtocolError("this torrent has no resume_path")
        return self._require_data().save(clean)

    def _passed(self, index: int) -> None:
        self._wake_saving()
        if self.on_hash_pass is not None:
            self.on_hash_pass(index)
        self._publish(PiecePassed(self.infohash, index))
        self._check_complete()

    def _failed(self, index: int) -> None:
        self._wake_saving()
        if self.on_hash_fail is not None:
            self.on_hash_fail(index)
        self._publish(PieceFailed(self.infohash, index, "hash"))

    def _check_complete(self) -> None:
        if not self.complete:
            return
        run = self._run
        if run is not None and not run.completed_sent:
            run.completed_sent = True
            run.announcer.completed()
            self._publish(Complete(self.infohash))
        if run is not None:
            self._refresh_state()
        waiters, self._complete_waiters = self._complete_waiters or (), None
        for d in waiters:
            d.callback(self)

    # -- plug-ins (TorrentRunHost) ------------------------------------------------

    def make_extensions(self, context: PluginContext) -> list[PeerExtension]:
        """The BEP 10 plug-ins of this torrent's swarm (override to add or
        leave out some): ``swarm.plugins.builtin_extensions`` by default.
        Called when the running swarm first needs them (its first peer),
        not at ``start``."""
        return builtin_extensions(context)

    def metadata_received(self, info_bytes: bytes) -> None:
        """An info dictionary fetched from peers (BEP 9): parsed with the
        torrent's limits, checked against the info hash, then used."""
        if self._data is not None:
            return
        metainfo = parse_info(info_bytes, self.config.limits)
        if metainfo.info_hash != self.infohash:
            raise MetainfoError("info", "its SHA-1 is not the info hash")
        self.set_metainfo(metainfo)

    # -- TorrentRunHost ---------------------------------------------------------------------

    def transfer_stats(self) -> tuple[int, int, int]:
        left = self.left if self._data is not None else LEFT_UNKNOWN
        return self.uploaded, self.downloaded, left

    def piece_downloaded(self, index: int) -> None:
        self._require_data().passed(index)

    def piece_failed(self, index: int) -> None:
        self._require_data().failed(index)

    def tracker_reply(self, url: str, response: Any) -> None:
        self._publish(TrackerReply.from_response(self.infohash, url, response))

    def tracker_error(self, url: str, message: str) -> None:
        self._publish(TrackerError(self.infohash, url, message))

    # -- life cycle --------------------------------------------------------------------

    def _set_state(self, new: TorrentState) -> None:
        old, self._state = self._state, new
        if old is not new:
            self._publish(StateChanged(self.infohash, old, new))

    def _refresh_state(self) -> None:
        """The state a running torrent is in, from what it knows."""
        run = self._run
        if run is None:
            return
        if self._checking:
            self._set_state(TorrentState.CHECKING)
        elif run.swarm.paused:
            self._set_state(TorrentState.PAUSED)
        elif self._data is None:
            self._set_state(TorrentState.METADATA)
        elif self.complete:
            self._set_state(TorrentState.SEEDING)
        else:
            self._set_state(TorrentState.DOWNLOADING)

    def start(self) -> Deferred[None]:
        """Begin (or resume) sharing: verify or load resume data if the state
        of the data is unknown, listen, announce ``started``, make and accept
        connections.  From "paused", resume; fires once running."""
        return self._steps.run(self._start)

    def pause(self) -> Deferred[None]:
        """Keep connections (and accept new ones) but request and serve nothing;
        no tracker event.  ``start()`` resumes."""
        return self._steps.run(self._pause)

    def stop(self) -> Deferred[None]:
        """Announce ``stopped``, close every connection and file, stop
        listening, cancel every timer, and save a clean resume record."""
        return self._steps.run(self._stop)

    def close(self) -> Deferred[None]:
        """``stop()``, then refuse any further use.  Safe to call twice."""

        def closed(_: object) -> None:
            self._closed = True

        if self._closed:
            return succeed(None)
        return self.stop().addCallback(closed)

    def _pause(self) -> None:
        if self._run is None:
            self._start_paused = True
            return
        self._run.swarm.pause()
        self._refresh_state()

    @inlineCallbacks
    def _start(self) -> Any:
        self._check_open()
        if self._run is not None:
            if self._run.swarm.paused:
                self._run.swarm.resume()
                self._refresh_state()
            return None
        if self._data is not None:
            try:
                yield self._verify(self._data)
            except BaseException:
                self._set_state(TorrentState.STOPPED)
                raise
        run = yield self._launch()
        self._run = run
        self._deadlines.attach(run.swarm)
        if self._start_paused:
            run.swarm.pause()
        # A torrent complete at start says so with "started" (left=0): no "completed".
        run.completed_sent = self.complete
        run.announcer.start()
        if self.source.peers:
            run.swarm.add_peers(list(self.source.peers), source="magnet")
        waiting, self._waiting_peers = self._waiting_peers or (), None
        for address, source in waiting:
            run.swarm.add_peers([address], source=source)
        if self._data is not None:
            self._wake_saving()
        if self.config.progress_interval > 0:
            run.progress_timer = run.every(
                self.config.progress_interval, self._publish_progress,
                needed=self._progress_needed, idle_slots=PROGRESS_IDLE_SLOTS,
            )
        self._start_paused = False
        self._refresh_state()
        self._check_complete()
        return None

    def _launch(self) -> Deferred[RunningTorrent]:
        """Build and start the parts that live from ``start`` to ``stop``."""
        own = self._shared_session is None
        session = self.make_session() if own else self._shared_session
        assert session is not None
        data = self._data
        clock = data.ensure_store().reactor if data is not None else session.resolve_reactor()
        if not own:
            session.adopt(self)
        return RunningTorrent.launch(
            self, session, own, clock, self._trackers,
            _SwarmBridge(self.events, self.infohash, self._wake_progress), data,
        )

    def _wake_saving(self) -> None:
        """Something a record shows changed: the periodic resume save (made
        now if it was not) runs on its next slot, and only while something
        changed since the last record (``TorrentData.dirty``)."""
        run, data = self._run, self._data
        if run is None or data is None or self.resume_path is None or not data.dirty:
            return
        if run.save_timer is None:
            run.save_timer = run.every(
                self.config.resume_save_interval, self._periodic_save,
                needed=self._save_needed,
            )
        else:
            run.save_timer.wake()

    def _save_needed(self) -> bool:
        return self._data is not None and self._data.dirty

    def _wake_progress(self) -> None:
        run = self._run
        if run is not None and run.progress_timer is not None:
            run.progress_timer.wake()

    def _progress_needed(self) -> bool:
        """Progress every interval while something may move: peers, a check."""
        run = self._run
        return self._checking or (run is not None and run.swarm.peer_count > 0)

    def _publish_progress(self) -> None:
        completion = self._data.completion if self._data is not None else None
        self._publish(Progress(
            self.infohash,
            have_pieces=completion.have.count if completion is not None else 0,
            piece_count=self.piece_count,
            bytes_done=completion.wanted_size - completion.left_wanted if completion else 0,
            left=completion.left_wanted if completion is not None else 0,
            download_rate=self.download_rate,
            upload_rate=self.upload_rate,
            peers=len(self.peers()),
            downloaded=self.downloaded,
            uploaded=self.uploaded,
        ))

    def _periodic_save(self) -> None:
        data = self._require_data()
        if data.saving or not data.dirty or not data.have_known:
            return
        data.saving = True

        def done(_: object) -> None:
            data.saving = False

        d = data.save(clean=False)
        d.addErrback(lambda f: _log.failure("saving resume data failed", f))
        d.addBoth(done)

    @inlineCallbacks
    def _stop(self) -> Any:
        run, self._run = self._run, None
        if run is not None:
            self._deadlines.attach(None)
            yield run.stop()
            self._uploaded_before += run.swarm.uploaded
            self._downloaded_before += run.swarm.downloaded
        if self._data is not None:
            yield self._data.stop_store(save_clean=True)
        self._set_state(TorrentState.STOPPED)
        return None


class _SwarmBridge(SwarmPublisher):
    """Publishes what the swarm reports; disk errors are logged too; a peer
    wakes the torrent's progress timer."""

    def __init__(self, bus: EventBus, info_hash: bytes, on_peer: Callable[[], object]) -> None:
        super().__init__(bus, info_hash)
        self._on_peer = on_peer

    def peer_connected(self, info: PeerInfo) -> None:
        super().peer_connected(info)
        self._on_peer()

    def disk_error(self, index: int, failure: Failure) -> None:
        _log.failure("disk error on piece {index}", failure, index=index)
        super().disk_error(index, failure)
