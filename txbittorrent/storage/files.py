"""A torrent's bytes on disk: blocking, thread-safe, no Twisted.

Theory of operation
-------------------
``FileStorage`` maps (piece index, offset, length) onto the torrent's files
through ``Layout.spans`` and moves bytes with positioned I/O (``os.pread`` and
``os.pwrite`` on raw descriptors, so threads never race on a file position).
It owns the files under ``basedir``, a bounded LRU cache of open descriptors
and the part-file index; it knows nothing of peers, hashes or the reactor
(``store.Store`` runs it in a thread pool).

Invariants and decisions:

* The constructor touches no file.  Files and directories are created on the
  first write into them, at their full length but sparse (as libtorrent and
  Transmission do): no space is reserved and no zeros are written, so a byte
  never written reads as zero (the hash check tells), and as
  ``MissingDataError`` only when it lies past the end of a file that is
  shorter than the torrent says (cut short by someone else).  A file longer
  than the torrent says is left alone; a file is never shortened.
* Before a write takes its file's write lock, the range is announced to the
  kernel with ``posix_fadvise(WILLNEED)``: for a range never written, that
  fills the page cache with zeroed pages outside the inode lock, from any
  thread, so the write itself only copies.  On this project's VM, where
  memory freshly taken from the host is slow to touch, 1 GiB in 1 MiB writes
  from 4 threads took 0.4-0.5 s wall and 0.6-0.8 s of system time with it,
  1.9-2.2 s and 1.9-2.2 s without (this is why files are extended first:
  the kernel reads ahead only below the end of a file).
* Zero-length files (not pad, priority > 0) are created by
  ``create_empty_files()``, which ``write`` calls once, on the first write of
  this object; raising an empty file's priority after that creates it too.
* Pad files (BEP 47) are never created: their spans read as zeros and writes
  into them are dropped.
* Safety: every open goes through ``paths.SafeDirectory``, which walks the
  path one component at a time with ``O_NOFOLLOW``: a symlink below
  ``basedir`` raises ``UnsafePathError``, and a final path that is not a
  regular file raises ``StorageError`` and is never opened.
* Skipped files (priority 0) are not created.  Bytes of theirs that arrive
  (a piece shared with a wanted file must still be downloaded and hashed) go
  to the part file ``basedir/.<info_hash_hex>.parts``.  Each piece that needs
  it gets one slot of ``piece_length`` bytes, appended the first time one of
  its bytes lands there; a byte sits at its piece offset inside the slot.
  ``piece_cache()`` is ``{piece_index: slot_offset}`` and can be passed back.
* A file at priority 0 that already exists on disk keeps being used for its
  reads and writes: downloaded data is never moved or deleted.  Only a skipped
  file that is absent routes to the part file.  Raising a file from 0 copies
  its slot bytes into the real file; slots that no longer hold skipped bytes
  are dropped from the index, and an empty index deletes the part file.
* A file removed under an open descriptor is noticed (``st_nlink == 0``):
  the handle is dropped and the call raises (``MissingDataError`` for a read,
  ``StorageError`` for a write) rather than writing into a deleted inode.  A
  retry recreates the file; the caller should recheck its pieces.  A file
  renamed under us is not noticed.
* Concurrency: ``_lock`` guards the handle cache, the part-file index and the
  routing; reads and writes do their I/O outside it, holding a reference on
  the handle so eviction closes a descriptor only once its last user is done
  (so the cache may exceed ``max_open_files`` by the number of I/O calls in
  flight).  ``set_priorities`` and ``close`` wait for in-flight I/O and
  exclude new I/O while they run (``gate.Gate``).
* Writes to one file go one at a time (a lock per file, ``_write_locks``):
  the kernel serialises buffered writes to an inode anyway, and threads
  queued on its lock spin on the CPU rather than sleep: the lock cuts the
  writers' system time by almost half (figures in bench/README).
* Write-behind (``write_behind``, on by default): once ``writeback_batch``
  bytes (1 MiB) were written to a file, the kernel is asked to start writing
  the file's dirty pages back to the disk (``sync_file_range`` with
  ``SYNC_FILE_RANGE_WRITE``: it returns once the I/O is queued and waits for
  nothing); a file leaving the descriptor cache with bytes not yet sent
  gets the same.  So dirty pages do not pile up until ``sync()``: on a
  machine with plenty of memory the kernel would otherwise keep a whole
  download dirty, and the ``fsync`` at the end (before the clean resume
  record) would write all of it while the user waits: 512 MiB took 0.29 s
  here, 2 ms after write-behind, and the wait grows with the download.  It
  makes nothing durable (no metadata, no device cache flush): ``sync()`` is
  still what the resume record waits for.  The call is
  ``writeback.start_writeback``.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Mapping, Sequence

from txbittorrent.core.layout import Layout, Span
from txbittorrent.core.metainfo import Metainfo
from txbittorrent.errors import MissingDataError, StorageError, UnsafePathError
from txbittorrent.storage.gate import Gate
from txbittorrent.storage.paths import SafeDirectory, failure_reason
from txbittorrent.storage.writeback import WRITEBACK_BATCH, start_writeback

__all__ = ["FileStorage"]

_PART = -1
"""The part file's key in the handle cache (files use their index)."""

_fadvise = getattr(os, "posix_fadvise", None)  # not on macOS: writes go without the hint
_WILLNEED = getattr(os, "POSIX_FADV_WILLNEED", 3)

_COPY_CHUNK = 1 << 20

_RWF_NOWAIT: int | None = getattr(os, "RWF_NOWAIT", None)
"""``preadv2``'s flag for "only what the page cache holds" (Linux 4.14)."""


class _Handle:
    __slots__ = ("key", "fd", "writable", "dirty", "users", "retired", "where", "behind")

    def __init__(self, key: int, fd: int, writable: bool, where: str) -> None:
        self.key = key
        self.fd = fd
        self.writable = writable
        self.where = where
        self.dirty = False
        self.users = 0
        self.retired = False
        self.behind = 0
        """Bytes written since this file's write-back was last started."""


class FileStorage:
    """The files of one torrent under ``basedir``, plus its part file."""

    def __init__(
        self,
        metainfo: Metainfo,
        basedir: str,
        priorities: Sequence[int] | None = None,
        piece_cache: Mapping[int, int] | None = None,
        max_open_files: int = 32,
        write_behind: bool = True,
    ) -> None:
        if max_open_files < 1:
            raise ValueError("max_open_files must be at least 1")
        self.metainfo = metainfo
        self.layout = Layout.from_metainfo(metainfo)
        self._basedir = os.path.abspath(basedir)
        self._tree = SafeDirectory(self._basedir)
        self._paths = tuple(f.path for f in metainfo.files)
        for path in self._paths:  # core.metainfo sanitises; check again, cheaply
            if not path or any(p in ("", ".", "..") or "/" in p or "\0" in p for p in path):
                raise UnsafePathError("unsafe path in the torrent", "/".join(path))
        self._pad = self.layout.pad
        self._part_name = "." + metainfo.info_hash_hex + ".parts"
        self.priorities = self._checked(priorities) if priorities is not None else (
            (1,) * self.layout.file_count
        )
        self._slots = self._checked_cache(piece_cache or {})
        self._part_end = max(self._slots.values(), default=-metainfo.piece_length) + (
            metainfo.piece_length
        )
        self.max_open_files = max_open_files
        self.write_behind = write_behind
        """Start the files' write-back as they are written (see the module docstring)."""
        self.writeback_batch = WRITEBACK_BATCH
        self._lock = threading.RLock()
        self._gate = Gate()
        self._write_locks: dict[int, threading.Lock] = {}
        self._handles: OrderedDict[int, _Handle] = OrderedDict()
        self._unsynced: set[int] = set()
        self._route: dict[int, bool] = {}
        self._empties_due = False
        # Hooks for tests that inject disk failures.
        self._pread = os.pread
        self._pwrite = os.pwrite
        self._fsync = os.fsync
        self._start_writeback = start_writeback

    # -- validation ------------------------------------------------------------

    def _checked(self, priorities: Sequence[int]) -> tuple[int, ...]:
        return self.layout.checked_priorities(priorities)

    def _checked_cache(self, cache: Mapping[int, int]) -> dict[int, int]:
        out = dict(cache)
        length = self.metainfo.piece_length
        for index, slot in out.items():
            if not 0 <= index < self.layout.piece_count:
                raise ValueError(f"piece_cache names piece {index}, which does not exist")
            if slot < 0 or slot % length:
                raise ValueError(f"piece_cache slot {slot} is not a multiple of {length}")
        if len(set(out.values())) != len(out):
            raise ValueError("piece_cache gives two pieces the same slot")
        return out

    # -- paths -----------------------------------------------------------------

    def file_path(self, file_index: int) -> str:
        return self._tree.where(self._paths[file_index])

    def part_path(self) -> str:
        return self._tree.where((self._part_name,))

    def _components(self, key: int) -> tuple[str, ...]:
        return (self._part_name,) if key == _PART else self._paths[key]

    def _where(self, key: int) -> str:
        return self.part_path() if key == _PART else self.file_path(key)

    def _open(self, key: int, write: bool) -> tuple[int, bool]:
        """Open a file safely: (fd, writable).  Read mode never creates; a
        file opened for writing is extended (sparse) to its full length."""
        fd, writable, size = self._tree.open_file(self._components(key), write)
        length = self.layout.file_length(key) if writable and key != _PART else 0
        if size < length:
            try:
                os.ftruncate(fd, length)  # sparse: only the size changes
            except OSError as e:
                os.close(fd)
                raise StorageError(failure_reason("extending the file", e), self._where(key)) from e
        return fd, writable

    def _lstat(self, key: int) -> os.stat_result | None:
        """A regular file's lstat, ``None`` if it (or a directory above) is missing."""
        return self._tree.lstat(self._components(key))

    def file_stats(self) -> list[tuple[int, int] | None]:
        """(size, st_mtime_ns) of each file; ``None`` for a missing or pad file."""
        with self._gate.shared():
            stats = [
                None if self._pad[f] else self._lstat(f) for f in range(self.layout.file_count)
            ]
        return [None if st is None else (st.st_size, st.st_mtime_ns) for st in stats]

    def part_stat(self) -> tuple[int, int] | None:
        with self._gate.shared():
            st = self._lstat(_PART)
        return None if st is None else (st.st_size, st.st_mtime_ns)

    # -- the handle cache --------------------------------------------------------

    def _acquire(self, key: int, write: bool) -> _Handle:
        with self._lock:
            old = self._handles.get(key)
            if old is not None and (old.writable or not write):
                self._handles.move_to_end(key)
                old.users += 1
                return old
            fd, writable = self._open(key, write)
            if old is not None:
                self._retire(key)
            handle = _Handle(key, fd, writable, self._where(key))
            handle.users = 1
            self._handles[key] = handle
            while len(self._handles) > self.max_open_files:
                idle = [k for k, h in self._handles.items() if h.users == 0]
                self._retire(idle[0] if idle else next(iter(self._handles)))
            return handle

    def _release(self, handle: _Handle) -> None:
        with self._lock:
            handle.users -= 1
            if handle.retired and handle.users == 0:
                self._close_handle(handle)

    def _retire(self, key: int) -> None:
        handle = self._handles.pop(key)
        handle.retired = True
        if handle.users == 0:
            self._close_handle(handle)

    def _close_handle(self, handle: _Handle) -> None:
        if handle.dirty:
            self._unsynced.add(handle.key)
        if handle.behind and self.write_behind:
            handle.behind = 0
            self._start_writeback(handle.fd, 0, 0)
        try:
            os.close(handle.fd)
        except OSError:
            pass  # nothing to do about it here; sync() is where write errors surface

    def _check_linked(self, handle: _Handle, write: bool) -> None:
        if os.fstat(handle.fd).st_nlink:
            return
        with self._lock:
            if self._handles.get(handle.key) is handle:
                self._retire(handle.key)
        if write:
            raise StorageError("the file was removed while open", handle.where)
        raise MissingDataError("the file was removed while open", handle.where)

    # -- I/O ---------------------------------------------------------------------

    def _write_at(self, key: int, data: memoryview, position: int) -> None:
        lock = self._write_locks.get(key)
        if lock is None:
            lock = self._write_locks.setdefault(key, threading.Lock())
        handle = self._acquire(key, write=True)
        try:
            if _fadvise is not None:
                try:
                    _fadvise(handle.fd, position, len(data), _WILLNEED)
                except OSError:
                    pass  # only a hint
            with lock:
                self._write_locked(handle, data, position)
                due = self.write_behind and self._behind(handle, len(data))
            if due:
                self._start_writeback(handle.fd, 0, 0)  # the whole file: offset 0, to its end
        finally:
            self._release(handle)

    def _behind(self, handle: _Handle, written: int) -> bool:
        """Count ``written`` bytes (under the file's write lock); whether
        the file's write-back is due now."""
        handle.behind += written
        if handle.behind < self.writeback_batch:
            return False
        handle.behind = 0
        return True

    def _write_locked(self, handle: _Handle, data: memoryview, position: int) -> None:
        self._check_linked(handle, write=True)
        handle.dirty = True
        while data:
            try:
                n = self._pwrite(handle.fd, data, position)
            except OSError as e:
                raise StorageError(failure_reason("writing", e), handle.where) from e
            if n <= 0:
                raise StorageError("writing made no progress (0 bytes written)", handle.where)
            data = data[n:]
            position += n

    def _read_at(self, key: int, length: int, position: int, short_ok: bool = False) -> bytes:
        handle = self._acquire(key, write=False)
        try:
            self._check_linked(handle, write=False)
            chunks = []
            got = 0
            while got < length:
                try:
                    chunk = self._pread(handle.fd, length - got, position + got)
                except OSError as e:
                    raise StorageError(failure_reason("reading", e), handle.where) from e
                if not chunk:
                    if short_ok:
                        break
                    raise MissingDataError(
                        f"file ends before byte {position + length}", handle.where
                    )
                chunks.append(chunk)
                got += len(chunk)
            return b"".join(chunks)
        finally:
            self._release(handle)

    def _on_disk(self, f: int) -> bool:
        if f in self._handles:
            return True
        try:
            return self._lstat(f) is not None
        except StorageError:
            return True  # something odd is there: the I/O will report it

    def _in_part(self, f: int, may_stat: bool = True) -> bool | None:
        """Whether file ``f``'s bytes live in the part file (call with _lock);
        ``None`` if that is not known yet and ``may_stat`` is false (finding
        out is an lstat)."""
        if self.priorities[f] > 0 or self._pad[f]:
            return False
        routed = self._route.get(f)
        if routed is None and may_stat:
            routed = self._route[f] = not self._on_disk(f)
        return routed

    def _place(self, index: int, span: Span, allocate: bool) -> tuple[int, int]:
        """(handle key, byte position) for a span's bytes."""
        with self._lock:
            if not self._in_part(span.file_index):
                return span.file_index, span.file_offset
            slot = self._slots.get(index)
            if slot is None:
                if not allocate:
                    raise MissingDataError(f"piece {index} has no slot", self.part_path())
                slot = self._slots[index] = self._part_end
                self._part_end += self.metainfo.piece_length
            return _PART, slot + span.piece_offset

    def read(self, index: int, offset: int, length: int) -> bytes:
        """``length`` bytes at ``offset`` of piece ``index``."""
        spans = self.layout.spans(index, offset, length)
        parts: list[bytes] = []
        with self._gate.shared():
            for span in spans:
                if self._pad[span.file_index]:
                    parts.append(bytes(span.length))
                    continue
                key, position = self._place(index, span, allocate=False)
                parts.append(self._read_at(key, span.length, position))
        # One span (the common case): pread's own bytes, not copied again.
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_piece(self, index: int) -> bytes:
        return self.read(index, 0, self.layout.piece_size(index))

    def read_piece_cached(self, index: int) -> bytearray | None:
        """Piece ``index`` if the page cache holds all of it and nothing on
        the way would wait; ``None`` otherwise (read it with ``read_piece``,
        in a thread).  Safe on the reactor thread: it opens no file, looks up
        no path, takes ``_lock`` only if it is free, and reads with
        ``preadv2(RWF_NOWAIT)``, which fails instead of waiting for the disk.
        Errors are not reported here either: the thread's read reports them."""
        if _RWF_NOWAIT is None or self._pread is not os.pread:
            return None  # no such flag here, or a test's injected reads
        if not self._lock.acquire(blocking=False):
            return None
        try:  # holding _lock: no handle closes, set_priorities and close wait
            size = self.layout.piece_size(index)
            out = bytearray(size)
            view = memoryview(out)
            for span in self.layout.spans(index, 0, size):
                f = span.file_index
                if self._pad[f]:
                    continue  # zeros already
                in_part = self._in_part(f, may_stat=False)
                if in_part is None:
                    return None
                if in_part:
                    slot = self._slots.get(index)
                    if slot is None:
                        return None
                    key, position = _PART, slot + span.piece_offset
                else:
                    key, position = f, span.file_offset
                handle = self._handles.get(key)
                if handle is None or handle.retired:
                    return None
                part = view[span.piece_offset : span.piece_offset + span.length]
                try:
                    if not os.fstat(handle.fd).st_nlink:
                        return None
                    got = os.preadv(handle.fd, [part], position, _RWF_NOWAIT)
                except OSError:
                    return None  # EAGAIN: not all in memory; or an error the pool will report
                if got != span.length:
                    return None
                self._handles.move_to_end(key)
            return out
        finally:
            self._lock.release()

    def write(self, index: int, offset: int, data: bytes | bytearray | memoryview) -> None:
        """Store ``data`` at ``offset`` of piece ``index``."""
        view = memoryview(data).cast("B")
        spans = self.layout.spans(index, offset, len(view))
        with self._gate.shared():
            with self._lock:
                if not self._empties_due:
                    self._create_empty_files()
            for span in spans:
                if self._pad[span.file_index]:
                    continue
                key, position = self._place(index, span, allocate=True)
                start = span.piece_offset - offset
                self._write_at(key, view[start : start + span.length], position)

    def create_empty_files(self) -> None:
        """Create every zero-length file that is wanted (not pad, priority > 0)."""
        with self._gate.shared(), self._lock:
            self._create_empty_files()

    def _create_empty_files(self) -> None:
        for f in range(self.layout.file_count):
            self._create_if_empty(f)
        self._empties_due = True

    def _create_if_empty(self, f: int) -> None:
        if self.layout.file_length(f) or self._pad[f] or self.priorities[f] <= 0:
            return
        if f not in self._handles:
            os.close(self._open(f, write=True)[0])

    # -- priorities and the part file --------------------------------------------

    def piece_cache(self) -> dict[int, int]:
        """The part-file index, {piece_index: slot offset}; pass it back as ``piece_cache=``."""
        with self._lock:
            return dict(self._slots)

    def set_priorities(self, priorities: Sequence[int]) -> None:
        """Change file priorities, moving part-file bytes of files raised from 0."""
        new = self._checked(priorities)
        with self._gate.exclusive(), self._lock:
            raised = [f for f in range(len(new)) if self.priorities[f] == 0 < new[f]]
            for f in raised:
                if self._in_part(f):
                    self._copy_out_of_part(f)
            self.priorities = new
            self._route.clear()
            if self._empties_due:
                for f in raised:
                    self._create_if_empty(f)
            self._drop_unused_slots()

    def _copy_out_of_part(self, f: int) -> None:
        for index in self.layout.pieces_of_file(f):
            slot = self._slots.get(index)
            if slot is None:
                continue
            for span in self.layout.spans(index):
                if span.file_index != f:
                    continue
                for start in range(0, span.length, _COPY_CHUNK):
                    size = min(_COPY_CHUNK, span.length - start)
                    try:
                        data = self._read_at(_PART, size, slot + span.piece_offset + start, True)
                    except MissingDataError:
                        return  # no part file (removed by hand): nothing to copy
                    if data:
                        self._write_at(f, memoryview(data), span.file_offset + start)
                    if len(data) < size:
                        break

    def _drop_unused_slots(self) -> None:
        for index in list(self._slots):
            if not any(self._in_part(s.file_index) for s in self.layout.spans(index)):
                del self._slots[index]
        if self._slots:
            return
        self._part_end = 0
        if _PART in self._handles:
            self._retire(_PART)
        self._unsynced.discard(_PART)
        self._tree.unlink((self._part_name,), "removing the part file")

    # -- durability ----------------------------------------------------------------

    def sync(self) -> None:
        """fsync every file written since the last sync (open or evicted since)."""
        with self._gate.shared():
            with self._lock:
                handles = [h for h in self._handles.values() if h.dirty]
                for handle in handles:
                    handle.dirty = False
                    handle.users += 1
                closed = sorted(self._unsynced - {h.key for h in handles})
                self._unsynced.clear()
            try:
                for handle in handles:
                    self._fsync_handle(handle)
                for key in closed:
                    try:
                        handle = self._acquire(key, write=False)
                    except MissingDataError:
                        continue
                    try:
                        self._fsync_handle(handle)
                    finally:
                        self._release(handle)
            finally:
                for handle in handles:
                    self._release(handle)

    def _fsync_handle(self, handle: _Handle) -> None:
        try:
            self._fsync(handle.fd)
        except OSError as e:
            raise StorageError(failure_reason("fsync", e), handle.where) from e

    def close(self) -> None:
        """Close every descriptor; later calls reopen files as needed."""
        with self._gate.exclusive(), self._lock:
            for key in list(self._handles):
                self._retire(key)
