"""Torrents started by requests and stopped after a grace period: ``OnDemand``.

Theory of operation
-------------------
confluence adds a torrent when a request names it and drops it once no
request has used it for ``-torrentGrace``.  ``OnDemand(session, clock,
grace_seconds, store=None, download_dir=...)`` does the same over a
``Session``, on the injected clock:

* ``hold(torrent)`` is called by every request that uses a torrent
  (``/data``, ``/info``, ``/fileState``...): a stopped torrent is started,
  and from then on it is *ours*.  It returns the release function, called
  when the response is finished (a streaming ``/data`` response holds its
  torrent for as long as it streams).  ``touch(torrent)`` is a hold
  released at once.
* ``acquire(source)`` (a magnet URI, or 20 bytes of info hash) returns the
  session's torrent, adding it first (under ``download_dir``, recorded in
  the ``StateStore`` when given, as ``web.api`` records an add) when the
  session does not have it; a magnet's trackers are added to a torrent the
  session had.  A torrent it adds is ours.
* Once the last hold on one of our torrents is released, a timer of
  ``grace_seconds`` starts; a new hold cancels it.  When it fires, the
  torrent is stopped (and ``wanted="stopped"`` stored, if recorded) and is
  no longer ours: the next request starts it again.

What is never stopped: a torrent this object did not start (the user
started it through the API, or the daemon restored it running); a torrent
the user took back meanwhile (the store says ``wanted`` "active" or
"paused": the user asked for it through the API after we started it); a
paused one (paused is the user's doing); one the session no longer has.
A paused torrent is not started by ``hold`` either.

Recorded adds are stored with ``wanted="stopped"``: a torrent started on
demand is not started again by the daemon's restart, only by the next
request, so a crash inside the grace period leaves nothing running for ever.

The constructor does nothing; ``stop()`` cancels every timer (the daemon
stops every torrent itself when it stops).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.logger import Logger

from txbittorrent.core.magnet import parse_magnet
from txbittorrent.state import TorrentState

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore
    from txbittorrent.session import Session
    from txbittorrent.torrent import Torrent

__all__ = ["OnDemand", "DEFAULT_GRACE"]

DEFAULT_GRACE = 60.0
"""confluence's ``-torrentGrace`` default: one minute."""

_log = Logger()


class _Entry:
    """What OnDemand knows of one torrent it holds or owns."""

    __slots__ = ("torrent", "holds", "owned", "timer", "stopping")

    def __init__(self, torrent: Torrent) -> None:
        self.torrent = torrent
        self.holds = 0
        self.owned = False
        """Started by us (and not stopped or taken back since)."""
        self.timer: Any = None
        self.stopping = False


class OnDemand:
    """Starts torrents on demand and stops them after a grace period (see
    the module docstring)."""

    def __init__(
        self,
        session: Session,
        clock: Any,
        grace_seconds: float = DEFAULT_GRACE,
        store: StateStore | None = None,
        *,
        download_dir: str,
        add_info_hashes: bool = False,
    ) -> None:
        """``add_info_hashes``: whether a request naming an info hash the
        session does not know adds it (confluence does; off by default)."""
        if grace_seconds < 0:
            raise ValueError("grace_seconds must not be negative")
        self.session = session
        self.clock = clock
        self.grace_seconds = grace_seconds
        self.store = store
        self.download_dir = download_dir
        self.add_info_hashes = add_info_hashes
        self._entries: dict[bytes, _Entry] = {}
        self._running = False

    # -- life cycle ----------------------------------------------------------

    def start(self) -> None:
        """Grace timers run from now on (before, nothing is ever stopped)."""
        self._running = True

    def stop(self) -> None:
        """Cancel every grace timer; nothing is stopped."""
        self._running = False
        for entry in self._entries.values():
            self._cancel_timer(entry)
        self._entries.clear()

    # -- what requests call ---------------------------------------------------

    def owns(self, torrent: Torrent) -> bool:
        """Whether ``torrent`` was started by us and is not stopped yet."""
        entry = self._entries.get(torrent.info_hash)
        return entry is not None and entry.torrent is torrent and entry.owned

    def hold(self, torrent: Torrent) -> Callable[[], None]:
        """Keep ``torrent`` running until the returned function is called
        (once; later calls do nothing); start it if it is stopped."""
        entry = self._entry(torrent)
        entry.holds += 1
        self._cancel_timer(entry)
        self._ensure_running(entry)
        released = False

        def release() -> None:
            nonlocal released
            if released:
                return
            released = True
            entry.holds -= 1
            if entry.holds == 0:
                if entry.owned and self._entries.get(entry.torrent.info_hash) is entry:
                    self._schedule(entry)
                elif not entry.owned:
                    self._forget(entry)

        return release

    def touch(self, torrent: Torrent) -> None:
        """A request used ``torrent``: start it if stopped, restart its grace."""
        self.hold(torrent)()

    def acquire(self, source: str | bytes) -> Torrent:
        """The torrent of a magnet URI (``str``) or an info hash (20 bytes),
        added and started if the session does not have it.  ``ValueError``
        for a string that is not a magnet URI (never opened as a path)."""
        trackers: tuple[str, ...] = ()
        if isinstance(source, str):
            if source.strip()[:7].lower() != "magnet:":
                raise ValueError("not a magnet URI")
            magnet = parse_magnet(source.strip())  # MagnetError is a ValueError
            info_hash, trackers = magnet.info_hash, magnet.trackers
            add_source: str | bytes = magnet.to_uri()
        else:
            if len(source) != 20:
                raise ValueError("an info hash is 20 bytes")
            info_hash = add_source = bytes(source)
        torrent = self.session.get(info_hash)
        if torrent is not None:
            for url in trackers:
                torrent.add_tracker(url)
            self.touch(torrent)
            return torrent
        torrent = self.session.add(add_source, self.download_dir, state="active")
        self._record(torrent, add_source)
        self.touch(torrent)
        return torrent

    # -- internals --------------------------------------------------------------

    def _entry(self, torrent: Torrent) -> _Entry:
        entry = self._entries.get(torrent.info_hash)
        if entry is None or entry.torrent is not torrent:
            if entry is not None:
                self._cancel_timer(entry)
            entry = self._entries[torrent.info_hash] = _Entry(torrent)
        return entry

    def _forget(self, entry: _Entry) -> None:
        if (self._entries.get(entry.torrent.info_hash) is entry and entry.holds == 0
                and not entry.stopping):
            self._cancel_timer(entry)
            del self._entries[entry.torrent.info_hash]

    def _ensure_running(self, entry: _Entry) -> None:
        torrent = entry.torrent
        if self.session.get(torrent.info_hash) is not torrent:
            return
        if entry.stopping or torrent.state == TorrentState.STOPPED:
            # A grace stop under way is followed by this start (start/stop
            # run in call order), so the request is not left waiting.
            entry.owned = True
            entry.stopping = False
            ih = torrent.info_hash.hex()
            try:
                d = torrent.start()
            except Exception:
                _log.failure("starting torrent {info_hash} on demand failed", info_hash=ih)
                return
            d.addErrback(
                lambda f: _log.failure("starting torrent {info_hash} on demand failed", f,
                                       info_hash=ih))

    def _schedule(self, entry: _Entry) -> None:
        self._cancel_timer(entry)
        if not self._running:
            return
        entry.timer = self.clock.callLater(self.grace_seconds, self._expired, entry)

    def _cancel_timer(self, entry: _Entry) -> None:
        timer, entry.timer = entry.timer, None
        if timer is not None and timer.active():
            timer.cancel()

    def _expired(self, entry: _Entry) -> None:
        entry.timer = None
        torrent = entry.torrent
        ih = torrent.info_hash.hex()
        if self._entries.get(torrent.info_hash) is not entry or entry.holds:
            return
        entry.owned = False
        record = self.store.get(ih) if self.store is not None else None
        if (self.session.get(torrent.info_hash) is not torrent
                or (record is not None and record.wanted in ("active", "paused"))
                or torrent.state == TorrentState.PAUSED or not torrent.state.running):
            # gone; taken back by the user through the API; paused by the
            # user; or stopped already
            self._forget(entry)
            return
        _log.info("stopping torrent {info_hash}: no request for {grace} s",
                  info_hash=ih, grace=self.grace_seconds)
        if record is not None and self.store is not None:
            self.store.update(ih, wanted="stopped")
        entry.stopping = True  # a hold meanwhile starts it again
        d = torrent.stop()

        def stopped(result: object) -> object:
            entry.stopping = False
            if not entry.owned:
                self._forget(entry)
            return result

        d.addBoth(stopped).addErrback(
            lambda f: _log.failure("stopping torrent {info_hash} failed", f, info_hash=ih))

    def _record(self, torrent: Torrent, source: str | bytes) -> None:
        store = self.store
        if store is None:
            return
        ih = torrent.info_hash.hex()
        if store.get(ih) is not None:
            return
        stored = source if isinstance(source, str) else torrent.magnet.to_uri()
        store.add_torrent(
            ih, stored, name=torrent.name, save_path=torrent.basedir,
            added_at=float(self.clock.seconds()), wanted="stopped",
        )
