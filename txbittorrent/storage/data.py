"""The data side of a torrent whose metadata is known.

Theory of operation
-------------------
``TorrentData`` gathers what exists only once the info dictionary is known:

* what: the ``Metainfo`` and its ``Layout``;
* where: a ``FileStorage`` (blocking, safe file I/O) behind a ``Store`` (the
  same calls as Deferreds in a thread pool, made on first use);
* how far: the ``Completion`` model, the one owner of the verified pieces
  and the file priorities, which the swarm's downloader and uploader and
  the resume record read too;
* is it right: ``HashChecker`` runs over the store's threads;
* what we knew last time: the resume record (``core.resume`` decides what to
  trust, ``resumefile`` writes it atomically).

The invariant it keeps: a piece is in ``completion.have`` only after its
hash was checked in this process or a clean resume record vouched for it
with every file it touches unchanged since.  A record never claims a piece
that is not durable: the verified set is copied before the job that flushes
the files, stats them and writes the record.

Each reading of the record (with the files' stats) and each saving is ONE
job, not one per step, and the jobs go through a ``batch.JobBatcher`` (the
session's, shared by its torrents): a session starting ten thousand
torrents from their records otherwise spends most of its time handing
small jobs to threads and their results back, and fsyncing the records'
directory once per record.  ``changes`` counts what
could make the record out of date (pieces passed or failed, priorities), so
a periodic save of a torrent where nothing happened is skipped
(``dirty``).

A clean record that loading trusted in full is not rewritten at once: while
the torrent writes nothing to its data it stays true, so it stays on disk
(``clean_on_disk``).  Before the first write (a downloaded piece: the
swarm's ``before_write`` hook; a priority change that moves data) it is
rewritten as unclean, durably, so a crash after that rechecks what it
claims; and a stop with nothing changed leaves it as it is.  Starting and
stopping a session of idle torrents then writes no record at all.  It reports each verification
through the ``on_passed``/``on_failed`` callables the facade gives it, and
knows nothing of peers, trackers or events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.python.failure import Failure

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.layout import Layout
from txbittorrent.core.metainfo import Metainfo
from txbittorrent.core.resume import ResumeRecord, make_record, plan_resume
from txbittorrent.core.transfer.completion import Completion
from txbittorrent.errors import LocalProtocolError, ResumeDataError
from txbittorrent.storage.batch import JobBatcher
from txbittorrent.storage.files import FileStorage
from txbittorrent.storage.hashcheck import HashChecker, OnProgress
from txbittorrent.storage.resumefile import DirSyncs, load_record, save_record
from txbittorrent.storage.store import Store

__all__ = ["TorrentData"]

OnPiece = Callable[[int], object]

DiskStats = tuple[list[tuple[int, int] | None], tuple[int, int] | None]
"""Each file's (size, mtime_ns) or None, and the part file's."""


def read_state(
    storage: FileStorage, path: str, info_hash: bytes, piece_count: int, file_count: int
) -> tuple[ResumeRecord | None, DiskStats]:
    """Blocking (one thread job): the record at ``path`` (None if there is
    none or it is not a valid record of this torrent) and the disk's stats."""
    try:
        record = load_record(path, info_hash, piece_count, file_count)
    except ResumeDataError:
        record = None
    return record, (storage.file_stats(), storage.part_stat())


def write_state(
    storage: FileStorage, path: str, info_hash: bytes, have: Bitfield, clean: bool,
    dir_syncs: DirSyncs | None = None,
) -> None:
    """Blocking (one thread job): flush the data files, then write the
    record of ``have`` (copied before this started) with the files' stats
    (the directory's fsync left to ``dir_syncs`` if given)."""
    storage.sync()
    record = make_record(
        info_hash,
        have,
        storage.piece_cache(),
        storage.file_stats(),
        storage.part_stat(),
        clean=clean,
        priorities=storage.priorities,
    )
    save_record(path, record, dir_syncs)


class TorrentData:
    """Metainfo, files, store, hash checks and resume record of one torrent."""

    def __init__(
        self,
        metainfo: Metainfo,
        storage: FileStorage,
        *,
        reactor: Any,
        threadpool: Callable[[], Any] | None,
        batcher: Callable[[], JobBatcher] | None = None,
        threads: int,
        hash_workers: int,
        resume_path: str | None,
        on_passed: OnPiece,
        on_failed: OnPiece,
    ) -> None:
        """``threadpool`` gives a shared pool (a Session's) when called; None
        means a pool of the store's own with ``threads`` threads.
        ``batcher`` gives the shared ``JobBatcher`` for the resume record's
        jobs (None: one of its own over the store's pool)."""
        self.metainfo = metainfo
        self.layout = Layout.from_metainfo(metainfo)
        self.storage = storage
        self.completion = Completion(self.layout, storage.priorities)
        self.resume_path = resume_path
        self.have_known = False
        """Whether ``completion.have`` reflects the disk (checked or resumed)."""
        self._reactor = reactor
        self._threadpool = threadpool
        self._batcher = batcher
        self._own_batcher: JobBatcher | None = None
        self._jobs = 0
        self._idle: list[Deferred[None]] | None = None
        self._threads = threads
        self._hash_workers = hash_workers
        self._on_passed = on_passed
        self._on_failed = on_failed
        self.store: Store | None = None
        self._checkers: list[HashChecker] | None = None
        """Hash checks running (None, not an empty list, until one runs)."""
        self.changes = 0
        """Counts the changes a resume record would show (pieces, priorities)."""
        self._saved_changes = -1
        """``changes`` when the last record written was made (-1: none yet)."""
        self.saving = False
        """A periodic save is under way (the torrent's flag: one at a time)."""
        self.clean_on_disk = False
        """The record on disk is the clean one loading trusted in full, and
        nothing was written to the data since (see the module docstring)."""
        self._marking: list[Deferred[None]] | None = None
        """Writes waiting for the record to be marked unclean."""

    @property
    def dirty(self) -> bool:
        """Whether something changed since the last record was written."""
        return self.changes != self._saved_changes

    # -- the store ----------------------------------------------------------------------

    def ensure_store(self) -> Store:
        """The running store, started (anew after a stop) when needed."""
        if self.store is None:
            batcher = self._batcher
            self.store = Store(
                self.storage,
                reactor=self._reactor,
                threadpool=self._threadpool() if self._threadpool is not None else None,
                threads=self._threads,
                cached_reads=True,
                close_via=(lambda close: batcher().submit(close)) if batcher is not None else None,
            )
            self.store.start()
        return self.store

    @inlineCallbacks
    def stop_store(self, save_clean: bool) -> Any:
        """Wait for hash checks, save a clean record if asked, stop the store."""
        store = self.store
        if store is None:
            return None
        for checker in list(self._checkers or ()):
            yield checker.when_idle()
        while self._jobs:  # record jobs in flight (a periodic save)
            waiter: Deferred[None] = Deferred()
            if self._idle is None:
                self._idle = []
            self._idle.append(waiter)
            yield waiter
        try:
            if save_clean and self.have_known and self.resume_path is not None:
                if not (self.clean_on_disk and not self.dirty):  # (else it is on disk)
                    yield self.save(clean=True)
        finally:
            self.clean_on_disk = False
            self.store = None
            self._own_batcher = None  # (over the pool of the store that stops)
            yield store.stop()
        return None

    # -- verification ---------------------------------------------------------------------

    def hashcheck(
        self, indexes: Iterable[int] | None = None, on_progress: OnProgress | None = None
    ) -> Deferred[Bitfield]:
        """Verify pieces (default: all) in threads; fires with a copy of the
        verified set.  Each result goes to ``passed``/``failed``."""
        store = self.ensure_store()
        full = indexes is None
        checker = HashChecker(
            self.metainfo,
            self.storage.read_piece,
            reactor=store.reactor,
            threadpool=store.threadpool,
            workers=self._hash_workers,
        )
        if self._checkers is None:
            self._checkers = []
        self._checkers.append(checker)
        d = checker.check(indexes, self.passed, self.failed, on_progress)

        def done(_: Bitfield) -> Bitfield:
            if full:
                self.have_known = True
            return self.completion.have.copy()

        def forget(result: object) -> object:
            if self._checkers is not None:
                self._checkers.remove(checker)
            return result

        return d.addCallback(done).addBoth(forget)

    def passed(self, index: int) -> None:
        """Piece ``index`` is verified (by a check, or downloaded and written)."""
        self.completion.passed(index)
        self.changes += 1
        self._on_passed(index)

    def failed(self, index: int) -> None:
        """Piece ``index`` failed its hash, or its data is missing."""
        self.completion.failed(index)
        self.changes += 1
        self._on_failed(index)

    # -- priorities -------------------------------------------------------------------------

    def set_priorities(self, priorities: Sequence[int]) -> Deferred[frozenset[int]]:
        """Set every file's priority (0 = skip); data moves out of the part
        file for files that become wanted.  Fires with the pieces whose
        wantedness changed."""
        store = self.ensure_store()
        first = self.before_write()
        if first is None:
            d = store.set_priorities(priorities)
        else:
            d = first.addCallback(lambda _: store.set_priorities(priorities))

        def applied(_: None) -> frozenset[int]:
            self.changes += 1
            return self.completion.set_file_priorities(priorities)

        return d.addCallback(applied)

    # -- resume -----------------------------------------------------------------------------

    def _submit(self, store: Store, f: Callable[..., Any], *args: Any,
                dir_syncs: bool = False) -> Deferred[Any]:
        """Run a record job through the batcher; ``stop_store`` waits for it."""
        if not store.running:
            raise LocalProtocolError("the store is not running")
        if self._batcher is not None:
            batcher = self._batcher()
        else:
            if self._own_batcher is None:
                self._own_batcher = JobBatcher(store.reactor, lambda: store.threadpool)
            batcher = self._own_batcher
        self._jobs += 1
        d = batcher.submit(f, *args, dir_syncs=dir_syncs)
        return d.addBoth(self._job_done)

    def _job_done(self, result: object) -> object:
        self._jobs -= 1
        if not self._jobs:
            waiting, self._idle = self._idle or (), None
            for d in waiting:
                d.callback(None)
        return result

    def _read_state(self, store: Store, path: str) -> Deferred[tuple[Any, DiskStats]]:
        meta = self.metainfo
        return self._submit(
            store, read_state, self.storage, path, meta.info_hash, meta.piece_count,
            len(meta.files),
        )

    @inlineCallbacks
    def load_resume(self, on_progress: OnProgress | None = None) -> Any:
        """Restore the verified set from the resume record, hashing what it
        cannot vouch for; then rewrite the record as unclean, unless it was
        a clean one trusted in full (see the module docstring).  Fires with
        a copy of the verified set."""
        path = self._resume_file()
        store = self.ensure_store()
        record, (disk_files, disk_part) = yield self._read_state(store, path)
        plan = plan_resume(record, self.layout, disk_files, disk_part)
        self.completion.replace_have(plan.have)
        self.changes += 1
        if (record is not None and record.clean and not plan.recheck
                and plan.have.to_bytes() == record.have):
            self.have_known = True
            self.clean_on_disk = True
            self._saved_changes = self.changes
            return self.completion.have.copy()
        if plan.recheck:
            yield self.hashcheck(sorted(plan.recheck), on_progress)
        self.have_known = True
        yield self.save(clean=False)
        return self.completion.have.copy()

    @inlineCallbacks
    def peek_resume(self) -> Any:
        """Show what the resume record vouches for (the pieces whose files'
        sizes and times still match it) without hashing anything or
        rewriting the record: the progress of a torrent that is not
        started.  ``have_known`` stays False, so a start still loads the
        record (and checks what it cannot vouch for).  A store started here
        is stopped again.  Fires with a copy of the verified set."""
        path = self._resume_file()
        own_store = self.store is None
        store = self.ensure_store()
        try:
            record, (disk_files, disk_part) = yield self._read_state(store, path)
            if record is not None:
                plan = plan_resume(record, self.layout, disk_files, disk_part)
                self.completion.replace_have(plan.have)
        finally:
            if own_store:
                yield self.stop_store(save_clean=False)
        return self.completion.have.copy()

    def save(self, clean: bool) -> Deferred[None]:
        """Write the resume record atomically, after flushing the data files
        (one job in the pool)."""
        path = self._resume_file()
        store = self.ensure_store()
        changes = self.changes
        d = self._submit(
            store, write_state, self.storage, path, self.metainfo.info_hash,
            self.completion.have.copy(), clean, dir_syncs=True,
        )

        def saved(_: None) -> None:
            self._saved_changes = max(self._saved_changes, changes)
            self.clean_on_disk = False

        return d.addCallback(saved)

    def before_write(self) -> Deferred[None] | None:
        """Call before writing to the data: None if the write may go at once,
        else a Deferred that fires once the record on disk is unclean (the
        clean one loading trusted would otherwise vouch for changed data)."""
        if not self.clean_on_disk:
            return None
        waiter: Deferred[None] = Deferred()
        if self._marking is not None:
            self._marking.append(waiter)
            return waiter
        waiting = self._marking = [waiter]

        def marked(result: object) -> None:
            self._marking = None
            for d in waiting:
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(None)

        self.save(clean=False).addBoth(marked)
        return waiter

    def _resume_file(self) -> str:
        if self.resume_path is None:
            raise LocalProtocolError("this torrent has no resume_path")
        return self.resume_path
