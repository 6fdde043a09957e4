"""Which shared paths have a torrent, which are being hashed, which seed.

Theory of operation
-------------------
A ``Catalog`` owns, per shared path (a tuple of names relative to the
directory): the torrent it has for it (a ``tree.Built``), the job in
flight for it, and, per info hash, the paths that seed it (two paths with
the same name and bytes make the same torrent: it seeds once).  It does no
I/O of its own: a ``ShareDisk`` does the blocking work (in threads, as
Deferreds) and a ``Seeder`` starts and stops seeding.

``torrent(rel)`` is the one request: at most one job per path runs at a
time, and every request for a path with a job in flight waits for that job
(so concurrent requests for one file hash it once).  A job:

1. ``probe``: the files of the path now (``NotShared`` if it is gone: a
   torrent it had stops seeding);
2. the torrent known for the path if its files are unchanged; else the
   cached one on disk (``load``) if that was made from exactly these files;
   else a new one (``build``), behind the hashing queue: at most
   ``max_jobs`` builds at once, at most ``max_queued`` waiting (``Busy``
   beyond);
3. a torrent replaced by a new one for the same path stops seeding (unless
   another path seeds it); the new one is stored (``store``) and seeded.

``check()`` probes every path that has a torrent, one after another, and
forgets (and stops seeding) those whose files vanished or changed; the
service calls it periodically.  ``stop()`` refuses new requests; jobs in
flight end with ``Busy``.

Invariants: a path is in ``_jobs`` exactly while its job runs; an info
hash is in ``_seeding`` exactly while some path's torrent has it and the
seeder was asked to seed it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from typing import Any, Protocol

from twisted.internet.defer import Deferred, inlineCallbacks, succeed
from twisted.logger import Logger
from twisted.python.failure import Failure

from txbittorrent.errors import TxBitTorrentError
from txbittorrent.share.tree import Built, FileState, NotShared

__all__ = ["Busy", "Catalog", "Seeder", "ShareDisk"]

_log = Logger()

Rel = tuple[str, ...]


class Busy(TxBitTorrentError):
    """Too many torrents are being made; try again later (a 503)."""


class ShareDisk(Protocol):
    """The blocking side, as Deferreds (threads in the service, fakes in tests)."""

    def probe(self, rel: Rel) -> Deferred[tuple[FileState, ...]]:
        """The files of ``rel`` now; fails with ``NotShared`` if it is gone."""

    def load(self, rel: Rel, files: tuple[FileState, ...]) -> Deferred[Built | None]:
        """The cached torrent of ``rel`` if made from exactly ``files``."""

    def build(self, rel: Rel) -> Deferred[Built]:
        """Hash ``rel`` into a new torrent."""

    def store(self, built: Built) -> Deferred[None]:
        """Cache ``built`` on disk."""

    def forget(self, rel: Rel) -> Deferred[None]:
        """Drop the cached torrent of ``rel``."""


class Seeder(Protocol):
    """Starts and stops seeding a torrent."""

    def seed(self, built: Built) -> Deferred[None]: ...

    def unseed(self, info_hash: bytes) -> Deferred[None]: ...


class Catalog:
    """Torrents of shared paths, made once, seeded while their files last."""

    def __init__(
        self, disk: ShareDisk, seeder: Seeder, max_jobs: int = 2, max_queued: int = 64
    ) -> None:
        if max_jobs < 1 or max_queued < 0:
            raise ValueError("max_jobs must be at least 1 and max_queued at least 0")
        self._disk = disk
        self._seeder = seeder
        self.max_jobs = max_jobs
        self.max_queued = max_queued
        self._entries: dict[Rel, Built] = {}
        self._jobs: dict[Rel, list[Deferred[Built]]] = {}
        self._seeding: dict[bytes, list[Rel]] = {}
        """Info hash -> the paths that have it; it seeds from the first's files."""
        self._building = 0
        self._queue: deque[Deferred[None]] = deque()
        self._stopped = False

    # -- what is known -----------------------------------------------------------------

    def get(self, rel: Rel) -> Built | None:
        """The torrent known for ``rel`` (maybe stale until the next request)."""
        return self._entries.get(rel)

    def entries(self) -> Iterator[Built]:
        return iter(list(self._entries.values()))

    def seeding(self, info_hash: bytes) -> bool:
        return info_hash in self._seeding

    @property
    def building(self) -> int:
        """Builds running now (at most ``max_jobs``)."""
        return self._building

    @property
    def queued(self) -> int:
        return len(self._queue)

    def busy(self, rel: Rel) -> bool:
        """Whether a job for ``rel`` is in flight."""
        return rel in self._jobs

    # -- requests ------------------------------------------------------------------------

    def torrent(self, rel: Rel) -> Deferred[Built]:
        """The torrent of ``rel``, made and seeded if need be (see the module
        docstring); fails with ``NotShared``, ``Busy``, or the build's error."""
        if self._stopped:
            return Deferred.fromCoroutine(_raise(Busy("the service is stopping")))
        d: Deferred[Built] = Deferred()
        waiters = self._jobs.get(rel)
        if waiters is not None:
            waiters.append(d)
            return d
        self._jobs[rel] = [d]
        self._job(rel).addBoth(self._job_done, rel)
        return d

    def _job_done(self, result: Built | Failure, rel: Rel) -> None:
        waiters = self._jobs.pop(rel)
        for d in waiters:
            if isinstance(result, Failure):
                d.errback(result)
            else:
                d.callback(result)

    @inlineCallbacks
    def _job(self, rel: Rel) -> Any:
        try:
            files = yield self._disk.probe(rel)
        except NotShared:
            yield self._drop(rel)
            raise
        known = self._entries.get(rel)
        if known is not None and known.files == files:
            if known.info_hash not in self._seeding:
                yield self._seed(rel, known)
            return known
        built = yield self._disk.load(rel, files)
        if built is None:
            built = yield self._build(rel)
            yield self._disk.store(built)
        if known is not None and known.info_hash != built.info_hash:
            yield self._unseed(rel, known.info_hash)
        self._entries[rel] = built
        yield self._seed(rel, built)
        return built

    @inlineCallbacks
    def _build(self, rel: Rel) -> Any:
        if self._building >= self.max_jobs:
            if len(self._queue) >= self.max_queued:
                raise Busy(f"{self._building} torrents are being made, {len(self._queue)} wait")
            turn: Deferred[None] = Deferred()
            self._queue.append(turn)
            yield turn
            if self._stopped:
                raise Busy("the service is stopping")
        self._building += 1
        try:
            built = yield self._disk.build(rel)
        finally:
            self._building -= 1
            if self._queue:
                self._queue.popleft().callback(None)
        return built

    # -- seeding ---------------------------------------------------------------------------

    def _seed(self, rel: Rel, built: Built) -> Deferred[None]:
        paths = self._seeding.get(built.info_hash)
        if paths is not None:
            if rel not in paths:
                paths.append(rel)
            return succeed(None)
        self._seeding[built.info_hash] = [rel]
        d = self._seeder.seed(built)

        def failed(f: Failure) -> Failure:
            left = self._seeding.get(built.info_hash)
            if left is not None and rel in left:
                left.remove(rel)
                if not left:
                    del self._seeding[built.info_hash]
            return f

        return d.addErrback(failed)

    @inlineCallbacks
    def _unseed(self, rel: Rel, info_hash: bytes) -> Any:
        """``rel`` no longer has ``info_hash``: stop seeding it if no other
        path has it; if it seeded from ``rel``'s files, seed it again from
        the next path's."""
        paths = self._seeding.get(info_hash)
        if paths is None or rel not in paths:
            return None
        source = paths[0] == rel
        paths.remove(rel)
        if paths and not source:
            return None
        if not paths:
            del self._seeding[info_hash]
        yield self._seeder.unseed(info_hash)
        if paths:
            del self._seeding[info_hash]
            next_rel = paths[0]
            yield self._seed(next_rel, self._entries[next_rel])
            self._seeding[info_hash].extend(paths[1:])
        return None

    @inlineCallbacks
    def _drop(self, rel: Rel) -> Any:
        known = self._entries.pop(rel, None)
        if known is not None:
            yield self._unseed(rel, known.info_hash)
            yield self._disk.forget(rel)
        return None

    # -- upkeep --------------------------------------------------------------------------------

    @inlineCallbacks
    def check(self) -> Any:
        """Forget the torrents whose files vanished or changed (see the module
        docstring); fires with the paths forgotten."""
        forgotten: list[Rel] = []
        for rel, known in list(self._entries.items()):
            if rel in self._jobs or self._entries.get(rel) is not known:
                continue  # a request is looking at it now
            try:
                files = yield self._disk.probe(rel)
            except NotShared:
                files = None
            except Exception:
                _log.failure("checking {path} failed", path="/".join(rel))
                continue
            if files != known.files and self._entries.get(rel) is known and rel not in self._jobs:
                yield self._drop(rel)
                forgotten.append(rel)
        return forgotten

    def stop(self) -> None:
        """Refuse new requests; jobs waiting for their turn end with ``Busy``."""
        self._stopped = True
        queue, self._queue = self._queue, deque()
        for turn in queue:
            turn.callback(None)


async def _raise(error: Exception) -> Built:
    raise error

