"""What every web API does to torrents, once: ``TorrentManager``.

Theory of operation
-------------------
The daemon speaks several APIs over one Session: the native JSON API
(``web.api``), qBittorrent's Web API v2 and Transmission's RPC.  Each
parses its own requests and renders its own answers; the changes
themselves go through one ``TorrentManager`` so that every API adds,
removes, starts, rechecks and re-prioritises a torrent the same way and
records the same facts in the ``StateStore``.

``TorrentManager(session, store=None, download_dir=..., clock=None,
http_client=None, fetch_timeout=...)`` holds no torrent state of its own
beyond:

* ``extras``: labels and add time of torrents the store does not hold
  (added with no store, or some other way);
* the torrents being rechecked (a change to one of them is a 409);
* the file selections of magnets waiting for their metadata.

Every change is recorded in the store when the store knows the torrent
(``record``): add (source, save path, priorities, labels, wanted state,
``added_at``), removal, wanted state, priorities, labels, limits, trackers.
Errors are ``ApiError`` (``web.apibody``) with the status a native client
gets (400 bad input, 404 unknown, 409 conflict); other APIs map them to
their own forms.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.logger import Logger

from txbittorrent.core.metainfo import Metainfo
from txbittorrent.daemon.store import DuplicateTorrentError
from txbittorrent.errors import LocalProtocolError
from txbittorrent.web import apitorrent
from txbittorrent.web.apiadd import (
    FETCH_TIMEOUT,
    AddRequest,
    TorrentFetcher,
    priorities_for,
    resolved,
    select_on_metadata,
)
from txbittorrent.web.apibody import ApiError
from txbittorrent.web.apiviews import torrent_view

if TYPE_CHECKING:
    from txbittorrent.daemon.store import StateStore, TorrentRecord
    from txbittorrent.session import Session
    from txbittorrent.torrent import Torrent

__all__ = ["TorrentManager", "WANTED"]

WANTED = {"start": "active", "pause": "paused", "stop": "stopped"}
"""The life-cycle actions and the wanted state each records."""

_log = Logger()


@dataclass(slots=True)
class _Extra:
    """What the manager remembers of a torrent the store does not hold."""

    labels: tuple[str, ...]
    added_at: float


class TorrentManager:
    """The changes every API makes to torrents (see the module docstring)."""

    def __init__(
        self,
        session: Session,
        *,
        store: StateStore | None = None,
        download_dir: str,
        clock: Callable[[], float] | None = None,
        http_client: Any = None,
        fetch_timeout: float = FETCH_TIMEOUT,
    ) -> None:
        """``clock`` gives the Unix time recorded as ``added_at`` (default:
        the session's reactor's ``seconds``).  ``http_client`` fetches URL
        sources (a ``treq.HTTPClient``; default: one over an ``Agent`` on
        the session's reactor, made on first use), each within
        ``fetch_timeout`` seconds."""
        self.session = session
        self.store = store
        self.download_dir = download_dir
        self._clock = clock
        self._http_client = http_client
        self._fetch_timeout = fetch_timeout
        self._extras: dict[str, _Extra] = {}
        self.rechecking: set[str] = set()
        """Info hashes (hex) being rechecked."""
        self.pending: dict[str, Deferred[tuple[int, ...] | None]] = {}
        """File selections of magnets waiting for their metadata."""

    # -- what is known of a torrent ---------------------------------------------------

    def now(self) -> float:
        if self._clock is not None:
            return self._clock()
        return float(self.session.resolve_reactor().seconds())

    def record(self, ih: str) -> TorrentRecord | None:
        """The store's record of a torrent (hex info hash), or None."""
        return self.store.get(ih) if self.store is not None else None

    def labels(self, ih: str) -> tuple[str, ...]:
        record = self.record(ih)
        if record is not None:
            return record.labels
        extra = self._extras.get(ih)
        return extra.labels if extra is not None else ()

    def added_at(self, ih: str) -> float | None:
        record = self.record(ih)
        if record is not None:
            return record.added_at
        extra = self._extras.get(ih)
        return extra.added_at if extra is not None else None

    def store_update(self, ih: str, **changes: Any) -> None:
        """Record changes of a torrent the store holds (else nothing)."""
        if self.record(ih) is not None:
            assert self.store is not None
            self.store.update(ih, **changes)

    def view(self, torrent: Torrent) -> dict[str, Any]:
        """The native view with its labels, times and (during a recheck)
        state "checking"."""
        ih = torrent.info_hash.hex()
        record, extra = self.record(ih), self._extras.get(ih)
        state = "checking" if ih in self.rechecking else None
        if record is not None:
            return torrent_view(torrent, labels=record.labels, added_at=record.added_at,
                                completed_at=record.completed_at, state=state)
        if extra is not None:
            return torrent_view(torrent, labels=extra.labels, added_at=extra.added_at,
                                state=state)
        return torrent_view(torrent, state=state)

    def not_rechecking(self, torrent: Torrent) -> str:
        """The torrent's hex info hash; 409 while it is rechecked."""
        ih = torrent.info_hash.hex()
        if ih in self.rechecking:
            raise ApiError(409, f"torrent {ih} is being rechecked")
        return ih

    # -- adding and removing ----------------------------------------------------------

    def add(self, add: AddRequest) -> Torrent | Deferred[Torrent]:
        """Add and start a torrent (fetching a URL source first: then a
        Deferred); 409 if the session has it, 400 for a bad source."""
        if add.url is None:
            return self._add_now(add)
        d = self._fetcher().fetch(add.url)
        return d.addCallback(lambda fetched: self._add_now(resolved(add, fetched)))

    def _fetcher(self) -> TorrentFetcher:
        reactor = self.session.resolve_reactor()
        if self._http_client is None:
            from treq.client import HTTPClient
            from twisted.web.client import Agent

            agent: Any = Agent(reactor)  # type: ignore[no-untyped-call]
            self._http_client = HTTPClient(agent)
        return TorrentFetcher(self._http_client, reactor, self._fetch_timeout)

    def _add_now(self, add: AddRequest) -> Torrent:
        source = add.source
        assert source is not None
        options: dict[str, Any] = {"state": "paused" if add.paused else "active"}
        priorities = None
        if isinstance(source, Metainfo):
            priorities = priorities_for(source, add.priorities, add.files)
            if priorities is not None:
                options["priorities"] = list(priorities)
        try:
            torrent = self.session.add(source, add.save_path, **options)
        except LocalProtocolError as e:  # the session has it already
            raise ApiError(409, str(e)) from None
        except ValueError as e:  # MagnetError, MetainfoError
            raise ApiError(400, f"bad source: {e}") from None
        ih, now = torrent.info_hash.hex(), self.now()
        if self.store is not None:
            stored: bytes | str
            if add.raw is not None:
                stored = add.raw
            else:
                stored = source if isinstance(source, str) else torrent.magnet.to_uri()
            try:
                self.store.add_torrent(
                    ih, stored, name=torrent.name, save_path=torrent.basedir, added_at=now,
                    priorities=priorities or (), labels=add.labels,
                    wanted="paused" if add.paused else "active",
                )
            except DuplicateTorrentError as e:
                self.session.remove(torrent.info_hash)  # never started: closes at once
                raise ApiError(409, str(e)) from None
        else:
            self._extras[ih] = _Extra(add.labels, now)
        if priorities is None and (add.priorities is not None or add.files is not None):
            self.pending[ih] = select_on_metadata(torrent, add.priorities, add.files)
            self.pending[ih].addCallback(self._selected, ih)
        torrent.start().addErrback(
            lambda f: _log.failure("starting torrent {info_hash} failed", f, info_hash=ih)
        )
        return torrent

    def _selected(self, priorities: tuple[int, ...] | None, ih: str) -> tuple[int, ...] | None:
        """A magnet's file selection was applied (or dropped)."""
        self.pending.pop(ih, None)
        if priorities is not None:
            self.store_update(ih, priorities=priorities)
        return priorities

    def remove(self, torrent: Torrent, delete_data: bool) -> Deferred[dict[str, Any]]:
        """Forget the torrent (store, session, resume record) and, with
        ``delete_data``, its own files; fires with the native answer."""
        ih = self.not_rechecking(torrent)
        if self.record(ih) is not None:
            assert self.store is not None
            self.store.remove_torrent(ih)
        self._extras.pop(ih, None)
        return apitorrent.remove(self.session, torrent, delete_data)

    # -- changes ------------------------------------------------------------------------

    def set_state(self, torrent: Torrent, action: str) -> Deferred[None]:
        """``start``, ``pause`` or ``stop`` the torrent, recording the
        wanted state."""
        ih = self.not_rechecking(torrent)
        d: Deferred[None] = getattr(torrent, action)()
        self.store_update(ih, wanted=WANTED[action])
        return d

    def recheck(self, torrent: Torrent) -> Deferred[None]:
        """Verify every piece again and go back to the state it was in
        (``apitorrent.recheck``); changes meanwhile are 409."""
        ih = self.not_rechecking(torrent)
        self.rechecking.add(ih)
        try:
            d = apitorrent.recheck(torrent)
        except BaseException:
            self.rechecking.discard(ih)
            raise

        def done(result: object) -> object:
            self.rechecking.discard(ih)
            return result

        return d.addBoth(done)

    def set_priorities(self, torrent: Torrent, priorities: Sequence[int]) -> Deferred[None]:
        """Every file's priority (0 skips it), recorded."""
        ih = self.not_rechecking(torrent)
        chosen = tuple(priorities)

        def applied(_: object) -> None:
            self.store_update(ih, priorities=chosen)

        return torrent.set_priorities(chosen).addCallback(applied)

    def trackers_changed(self, torrent: Torrent) -> None:
        """Record the torrent's trackers as they are now."""
        tiers = [[s.url for s in tier] for tier in torrent.trackers()]
        self.store_update(torrent.info_hash.hex(), trackers=[t for t in tiers if t])

    def set_limits(self, torrent: Torrent, download: int | None, upload: int | None) -> None:
        """The torrent's own rate limits (None: unlimited), recorded."""
        torrent.set_rate_limits(download, upload)
        self.store_update(torrent.info_hash.hex(), download_limit=download, upload_limit=upload)

    def set_labels(self, torrent: Torrent, labels: Sequence[str]) -> None:
        """The torrent's labels (qBittorrent's tags, Transmission's labels)."""
        ih, new = torrent.info_hash.hex(), tuple(labels)
        if self.record(ih) is not None:
            self.store_update(ih, labels=new)
        else:
            extra = self._extras.setdefault(ih, _Extra((), self.now()))
            extra.labels = new

    def torrent_file(self, torrent: Torrent) -> apitorrent.Download:
        """The .torrent: the uploaded bytes if any, else one made from the
        info dictionary; 409 before the metadata."""
        record = self.record(torrent.info_hash.hex())
        source = record.source if record is not None and isinstance(record.source, bytes) \
            else None
        return apitorrent.torrent_file(torrent, source)

    # -- additions for the Transmission RPC -------------------------------------------

    def fetch(self, url: str) -> Deferred[bytes | str]:
        """The .torrent at an http(s) URL (or the magnet URI it redirects
        to), as ``add`` fetches it: for APIs that must know the info hash
        before adding (Transmission's ``torrent-duplicate``).  400 on failure."""
        return self._fetcher().fetch(url)

    def reannounce(self, torrent: Torrent) -> bool:
        """Announce to the running torrent's current trackers now (or as
        soon as their ``min interval`` allows); False if it is not running."""
        return torrent.reannounce()
