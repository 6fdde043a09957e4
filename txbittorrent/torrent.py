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

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import Layout
from txbittorrent.core.metainfo import Metainfo, MetainfoLimits, parse
from txbittorrent.core.resume import make_record, plan_resume
from txbittorrent.errors import LocalProtocolError, MetainfoError, ResumeDataError
from txbittorrent.hashcheck import HashChecker, OnProgress
from txbittorrent.resumefile import load_record, save_record
from txbittorrent.storage import FileStorage
from txbittorrent.store import Store

__all__ = ["Torrent", "FileInfo"]

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
    """One torrent: its metadata, its data on disk and what of it is verified.

    ``path`` is a .torrent file's path, its raw bytes, or a parsed ``Metainfo``.
    ``basedir`` (default: the current directory at construction) holds the
    data; a multi-file torrent adds a directory of its name below it.
    ``resume_path`` names the resume record's file; without it nothing but
    the torrent's own data (and its part file) is ever written."""

    def __init__(
        self,
        path: str | bytes | Metainfo,
        basedir: str | None = None,
        on_hash_pass: OnPiece | None = None,
        on_hash_fail: OnPiece | None = None,
        piece_cache: Mapping[int, int] | None = None,
        priorities: Sequence[int] | None = None,
        resume_path: str | None = None,
        reactor: Any = None,
        limits: MetainfoLimits = MetainfoLimits(),
        disk_threads: int = 2,
        hash_workers: int | None = None,
    ) -> None:
        self.metainfo = _load_metainfo(path, limits)
        self.basedir = os.path.abspath(basedir if basedir is not None else os.getcwd())
        self.on_hash_pass = on_hash_pass
        self.on_hash_fail = on_hash_fail
        self.layout = Layout.from_metainfo(self.metainfo)
        self.resume_path = resume_path
        self._reactor = reactor
        self._storage = self.make_storage(priorities, piece_cache)
        self._hash_workers = hash_workers if hash_workers is not None else os.cpu_count() or 2
        # The hash checker's lanes run in the store's pool: size it for both.
        self._store = Store(
            self._storage, reactor=reactor, threads=disk_threads + self._hash_workers
        )
        self._checkers: list[HashChecker] = []
        self._have = Bitfield(self.metainfo.piece_count)
        self._have_known = False
        self._closed = False

    # -- hooks for subclasses ------------------------------------------------------

    def make_storage(
        self, priorities: Sequence[int] | None, piece_cache: Mapping[int, int] | None
    ) -> FileStorage:
        """Build the blocking file store (override to store data elsewhere)."""
        return FileStorage(self.metainfo, self.basedir, priorities, piece_cache)

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
    def trackers(self) -> tuple[tuple[str, ...], ...]:
        """The announce URLs as BEP 12 tiers (live tracker state comes with the engine)."""
        return self.metainfo.trackers

    @property
    def bitfield(self) -> Bitfield:
        """A copy of the set of verified pieces."""
        return self._have.copy()

    @property
    def wanted(self) -> Bitfield:
        """Pieces not verified yet that belong to a file of priority > 0."""
        out = Bitfield(self.piece_count)
        for index, priority in enumerate(self.layout.piece_priorities(self.priorities)):
            if priority > 0 and index not in self._have:
                out.add(index)
        return out

    @property
    def complete(self) -> bool:
        """Every wanted piece is verified."""
        return self.wanted.count == 0

    @property
    def seed(self) -> bool:
        """Every piece is verified."""
        return self._have.complete

    @property
    def left(self) -> int:
        """Bytes of the torrent not verified yet (BEP 3's ``left``)."""
        return self.size - sum(self.layout.piece_size(i) for i in self._have)

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
        self._ensure_store()
        return self._store.set_priorities(priorities)

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

    def _ensure_store(self) -> None:
        if self._closed:
            raise LocalProtocolError("this torrent is closed")
        if not self._store.running:
            self._store.start()

    def hashcheck(
        self, indexes: Iterable[int] | None = None, on_progress: OnProgress | None = None
    ) -> Deferred[Bitfield]:
        """Verify pieces (default: all) and fire with a copy of ``bitfield``.

        Each piece that passes is added to ``bitfield`` and reported to
        ``on_hash_pass``; one that fails (or whose data is missing) is removed
        and reported to ``on_hash_fail``.  The hashing runs in threads; the
        reactor only sees the results."""
        self._ensure_store()
        full = indexes is None
        checker = HashChecker(
            self.metainfo,
            self._storage.read_piece,
            reactor=self._store.reactor,
            threadpool=self._store.threadpool,
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
        self._have.add(index)
        if self.on_hash_pass is not None:
            self.on_hash_pass(index)

    def _failed(self, index: int) -> None:
        self._have.discard(index)
        if self.on_hash_fail is not None:
            self.on_hash_fail(index)

    # -- resume ----------------------------------------------------------------------

    @inlineCallbacks
    def load_resume(self, on_progress: OnProgress | None = None) -> Any:
        """Restore ``bitfield`` from the resume record, hashing what it cannot vouch for.

        A missing or corrupt record means a full check of the data on disk.
        Right after loading, the record is rewritten as unclean, so a crash
        before ``close()`` makes the next run recheck what it claims.  Fires
        with a copy of ``bitfield``."""
        path = self._resume_file()
        self._ensure_store()
        try:
            record = yield self._store.call(
                load_record,
                path,
                self.infohash,
                self.piece_count,
                len(self.metainfo.files),
            )
        except ResumeDataError:
            record = None
        disk_files = yield self._store.file_stats()
        disk_part = yield self._store.part_stat()
        plan = plan_resume(record, self.layout, disk_files, disk_part)
        self._have = plan.have.copy()
        if plan.recheck:
            yield self.hashcheck(sorted(plan.recheck), on_progress)
        self._have_known = True
        yield self.save_resume(clean=False)
        return self.bitfield

    def save_resume(self, clean: bool = False) -> Deferred[None]:
        """Write the resume record atomically (after flushing the data files)."""
        self._resume_file()
        self._ensure_store()
        return self._save(clean)

    @inlineCallbacks
    def _save(self, clean: bool) -> Any:
        path = self._resume_file()
        yield self._store.sync()
        disk_files = yield self._store.file_stats()
        disk_part = yield self._store.part_stat()
        record = make_record(
            self.infohash,
            self._have,
            self.piece_cache(),
            disk_files,
            disk_part,
            clean=clean,
            priorities=self.priorities,
        )
        yield self._store.call(save_record, path, record)

    def _resume_file(self) -> str:
        if self.resume_path is None:
            raise LocalProtocolError("this torrent has no resume_path")
        return self.resume_path

    @inlineCallbacks
    def close(self) -> Any:
        """Save a clean resume record (with a ``resume_path``, once the state of
        the data is known: after ``load_resume`` or a full ``hashcheck``), close
        every file and stop the disk threads.  Safe to call twice."""
        if self._closed:
            return None
        self._closed = True
        if self._store.running:
            for checker in list(self._checkers):
                yield checker.when_idle()
            if self._have_known and self.resume_path is not None:
                yield self._save(clean=True)
            yield self._store.stop()
        return None
