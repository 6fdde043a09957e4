"""Making v1 .torrent files from files on disk (BEP 3, 12, 19, 27).

Theory of operation
-------------------
``collect_files`` walks the file system once and returns the files in the
order the torrent will list them.  ``hash_pieces`` reads those files as one
byte stream, in order, on the calling thread, cuts the stream into pieces
(a piece may span several files) and hands each piece to a thread pool for
SHA-1; ``hashlib`` releases the GIL on large buffers, so the hashing runs on
every core while the reader keeps the disk busy.  At most ``2 * workers``
pieces are in memory at once: the reader waits for the oldest piece's digest
before it reads another, and the digests come back in piece order.
``create_torrent`` ties the two together and bencodes the result.

Nothing here touches a reactor: callers run it in a thread (or, like the
command line, just call it).

Decisions
---------
* Piece length: see ``auto_piece_length``.  A chosen one must be a power of
  two of at least 16 KiB (every mainstream client makes these, peers request
  16 KiB blocks, and BEP 52 demands it of any v2 upgrade).
* Symbolic links are never followed.  Inside a directory each one is skipped
  and reported through ``on_skip(path, reason)``, so the data in the torrent
  is exactly the data under the directory; a ``path`` that is itself a link is
  refused, since the caller named it and would not expect it to vanish.
* Other special files (FIFOs, sockets, devices) are refused: reading them can
  block forever or never end.
* Hidden files (dot files) are included: a torrent of a directory holds all of
  it.  Empty files are included (length 0); empty directories cannot be
  represented and are left out.  A torrent with no bytes at all is refused.
* Order: files sorted by their path components, compared as UTF-8 bytes, so
  the same tree gives the same torrent on every machine.
* Names come from ``os.fsdecode`` and must be valid UTF-8.  A name that our
  own reader (``txbittorrent.core.metainfo.sanitize_path``) would rename or
  reject (control characters, ``\\``, a drive-like ``X:`` prefix, over-long,
  a BitComet pad-file name) is refused before any hashing, naming the file: the torrent must
  load everywhere under the names it was made from.
* ``creation_date`` is written only when given, so the output is a pure
  function of the inputs; the command line passes the current time.
* Trackers: a plain URL is a tier of its own, a list of URLs is one tier
  (BEP 12).  ``announce`` is the first URL, ``announce-list`` is written when
  there is more than one URL.  Duplicates are dropped.
"""

from __future__ import annotations

import hashlib
import os
import stat
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from txbittorrent import __version__
from txbittorrent.core.bencoding import encode
from txbittorrent.core.metainfo import DEFAULT_LIMITS, MetainfoLimits, parse, sanitize_path
from txbittorrent.errors import MetainfoError

__all__ = [
    "DEFAULT_CREATED_BY",
    "MIN_PIECE_LENGTH",
    "MAX_AUTO_PIECE_LENGTH",
    "SourceFile",
    "TorrentCreationError",
    "auto_piece_length",
    "collect_files",
    "default_workers",
    "hash_pieces",
    "create_torrent",
]

DEFAULT_CREATED_BY = f"txbittorrent/{__version__}"
MIN_PIECE_LENGTH = 16 * 1024
MAX_AUTO_PIECE_LENGTH = 16 * 1024 * 1024
AUTO_MAX_PIECES = 2000
"""``auto_piece_length`` picks the smallest piece length giving at most this many."""

ProgressCallback = Callable[[int, int], None]
SkipCallback = Callable[[str, str], None]


class TorrentCreationError(MetainfoError):
    """Input that cannot become a torrent: a bad name, an empty directory, a
    file that changed while it was read, an invalid option.

    ``field`` names the file (or the option) concerned."""


class SourceFile(NamedTuple):
    """One file to put in a torrent.

    ``path`` always starts with the torrent's name, as ``FileEntry.path``
    does: ``(name,)`` for a single-file torrent, ``(name, dir, ..., file)``
    otherwise."""

    path: tuple[str, ...]
    abspath: str
    size: int


def auto_piece_length(total_size: int) -> int:
    """The piece length for ``total_size`` bytes of data.

    The rule: the smallest power of two, at least 16 KiB and at most 16 MiB,
    that cuts the data into no more than 2,000 pieces.  Between about 31 MiB
    and 31 GiB of data this gives 1,001 to 2,000 pieces; smaller torrents get
    16 KiB pieces (fewer of them) and larger ones 16 MiB (more of them)."""
    length = MIN_PIECE_LENGTH
    while length < MAX_AUTO_PIECE_LENGTH and -(-total_size // length) > AUTO_MAX_PIECES:
        length *= 2
    return length


# -- names ---------------------------------------------------------------------


def _display(path: str) -> str:
    """``path`` printable, with undecodable bytes shown as ``\\xNN``."""
    return path.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _check_name(name: str, where: str, limits: MetainfoLimits) -> None:
    """Refuse a file name that the torrent cannot carry unchanged."""
    try:
        raw = name.encode("utf-8")
    except UnicodeEncodeError:
        raise TorrentCreationError(
            _display(where), f"name {os.fsencode(name)!r} is not valid UTF-8; rename it"
        ) from None
    try:
        _, renamed = sanitize_path([raw], "name", limits)
    except MetainfoError as e:
        raise TorrentCreationError(
            _display(where), f"name {name!r} cannot go in a torrent: {e.reason}"
        ) from None
    if renamed:
        raise TorrentCreationError(
            _display(where),
            f"name {name!r} holds control characters or a drive-like prefix; "
            "readers would rename it",
        )
    if name.startswith("_____padding_file_"):
        raise TorrentCreationError(
            _display(where), f"name {name!r} would be read as a BitComet pad file"
        )


def _check_path(path: tuple[str, ...], where: str, limits: MetainfoLimits) -> None:
    if len(path) > limits.max_path_depth:
        raise TorrentCreationError(
            _display(where), f"nested deeper than {limits.max_path_depth} levels"
        )


# -- collecting ----------------------------------------------------------------


def collect_files(
    path: str | os.PathLike[str],
    on_skip: SkipCallback | None = None,
    limits: MetainfoLimits = DEFAULT_LIMITS,
    exclude: Iterable[str] = (),
) -> list[SourceFile]:
    """The files of a torrent of ``path`` (a file or a directory), in order.

    Files whose absolute path is in ``exclude`` (say, the .torrent being
    written into the shared directory) are left out silently.
    Symbolic links inside a directory are skipped, each reported as
    ``on_skip(path, reason)``.  A missing ``path`` raises ``OSError``; a bad
    name, a special file, or no data at all raises ``TorrentCreationError``."""
    given = os.fspath(path)
    abspath = os.path.abspath(given)
    st = os.lstat(abspath)
    name = os.path.basename(abspath)
    if not name:
        raise TorrentCreationError(_display(given), "has no name to give the torrent")
    if stat.S_ISLNK(st.st_mode):
        raise TorrentCreationError(
            _display(given), "is a symbolic link; give the path it points to"
        )
    _check_name(name, abspath, limits)
    if stat.S_ISREG(st.st_mode):
        if st.st_size == 0:
            raise TorrentCreationError(_display(given), "is empty; a torrent needs data")
        return [SourceFile((name,), abspath, st.st_size)]
    if not stat.S_ISDIR(st.st_mode):
        raise TorrentCreationError(_display(given), "is not a regular file or a directory")

    excluded = {os.path.abspath(p) for p in exclude}
    files: list[SourceFile] = []
    stack: list[tuple[str, tuple[str, ...]]] = [(abspath, (name,))]
    while stack:
        directory, prefix = stack.pop()
        with os.scandir(directory) as entries:
            for entry in entries:
                components = prefix + (entry.name,)
                if entry.path in excluded:
                    continue
                if entry.is_symlink():
                    if on_skip is not None:
                        on_skip(entry.path, "symbolic link, not followed")
                    continue
                if entry.is_dir(follow_symlinks=False):
                    stack.append((entry.path, components))
                    continue
                if not entry.is_file(follow_symlinks=False):
                    raise TorrentCreationError(
                        _display(entry.path), "is not a regular file or a directory"
                    )
                for depth, part in enumerate(components[1:], 2):
                    _check_name(part, os.path.join(abspath, *components[1:depth]), limits)
                _check_path(components, entry.path, limits)
                size = entry.stat(follow_symlinks=False).st_size
                files.append(SourceFile(components, entry.path, size))
    if not files:
        raise TorrentCreationError(_display(given), "holds no files")
    if not any(f.size for f in files):
        raise TorrentCreationError(_display(given), "holds only empty files")
    files.sort(key=lambda f: [part.encode("utf-8") for part in f.path])
    return files


# -- hashing -------------------------------------------------------------------


class _Stream:
    """The bytes of ``files`` one after another, read with ``fill``."""

    def __init__(self, files: Sequence[SourceFile]) -> None:
        self._files = [f for f in files if f.size]
        self._next = 0
        self._current: Any = None
        self._source: SourceFile | None = None
        self._left = 0

    def _open_next(self) -> None:
        self._source = source = self._files[self._next]
        self._next += 1
        flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
        self._current = os.fdopen(os.open(source.abspath, flags), "rb", buffering=0)
        self._left = source.size

    def _close_current(self) -> None:
        assert self._source is not None
        try:
            size = os.fstat(self._current.fileno()).st_size
        finally:
            self._current.close()
            self._current = None
        if size != self._source.size:
            raise self._changed()

    def _changed(self) -> TorrentCreationError:
        assert self._source is not None
        return TorrentCreationError(
            _display(self._source.abspath),
            f"changed size while being read (expected {self._source.size} bytes)",
        )

    def fill(self, view: memoryview) -> None:
        """Fill ``view`` entirely with the next bytes of the stream."""
        pos = 0
        while pos < len(view):
            if self._current is None:
                self._open_next()
            want = min(len(view) - pos, self._left)
            got = self._current.readinto(view[pos : pos + want])
            if not got:
                raise self._changed()
            pos += got
            self._left -= got
            if self._left == 0:
                self._close_current()

    def close(self) -> None:
        if self._current is not None:
            self._current.close()
            self._current = None


def _sha1(data: memoryview) -> bytes:
    return hashlib.sha1(data, usedforsecurity=False).digest()


def default_workers() -> int:
    """How many hashing threads to use: one per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def hash_pieces(
    files: Sequence[SourceFile],
    piece_length: int,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> bytes:
    """The concatenated SHA-1 digests of the pieces of ``files``' bytes.

    ``progress(done_bytes, total_bytes)`` is called on the calling thread,
    first with 0 and then after each piece, in order, ending at the total."""
    if piece_length < 1:
        raise ValueError("piece_length must be positive")
    workers = default_workers() if workers is None else workers
    if workers < 1:
        raise ValueError("workers must be at least 1")
    total = sum(f.size for f in files)
    count = -(-total // piece_length)
    max_in_flight = 2 * workers
    digests: list[bytes] = []
    free: list[bytearray] = []
    pending: deque[tuple[Future[bytes], bytearray, int]] = deque()
    done = 0
    if progress is not None:
        progress(0, total)

    def collect_oldest() -> None:
        nonlocal done
        future, buffer, size = pending.popleft()
        digests.append(future.result())
        free.append(buffer)
        done += size
        if progress is not None:
            progress(done, total)

    stream = _Stream(files)
    try:
        with ThreadPoolExecutor(workers, thread_name_prefix="txbittorrent-hash") as pool:
            try:
                for index in range(count):
                    if len(pending) >= max_in_flight:
                        collect_oldest()
                    size = min(piece_length, total - index * piece_length)
                    buffer = free.pop() if free else bytearray(piece_length)
                    view = memoryview(buffer)[:size]
                    stream.fill(view)
                    pending.append((pool.submit(_sha1, view), buffer, size))
                while pending:
                    collect_oldest()
            finally:
                for future, _, _ in pending:
                    future.cancel()
    finally:
        stream.close()
    return b"".join(digests)


# -- the metainfo --------------------------------------------------------------


def _utf8(text: str, field: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise TorrentCreationError(field, f"{_display(text)!r} is not valid UTF-8") from None


def _url(value: Any, field: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{field}: URLs must be str, not {type(value).__name__}")
    url = value.strip()
    parts = urlsplit(url)
    if not parts.scheme or not parts.netloc:
        raise TorrentCreationError(field, f"{_display(value)!r} is not an absolute URL")
    return _utf8(url, field)


def _tiers(trackers: Iterable[str | Sequence[str]]) -> list[list[bytes]]:
    tiers: list[list[bytes]] = []
    seen: set[bytes] = set()
    for item in trackers:
        tier: list[bytes] = []
        for value in [item] if isinstance(item, str) else item:
            url = _url(value, "trackers")
            if url not in seen:
                seen.add(url)
                tier.append(url)
        if tier:
            tiers.append(tier)
    return tiers


def _check_piece_length(piece_length: int, limits: MetainfoLimits) -> None:
    if (
        not isinstance(piece_length, int)
        or piece_length < MIN_PIECE_LENGTH
        or piece_length & (piece_length - 1)
        or piece_length > limits.max_piece_length
    ):
        raise TorrentCreationError(
            "piece length",
            f"{piece_length!r} is not a power of two between {MIN_PIECE_LENGTH} "
            f"and {limits.max_piece_length}",
        )


def create_torrent(
    path: str | os.PathLike[str],
    trackers: Iterable[str | Sequence[str]] = (),
    piece_length: int | None = None,
    private: bool = False,
    comment: str | None = None,
    created_by: str | None = DEFAULT_CREATED_BY,
    creation_date: int | None = None,
    url_list: Iterable[str] = (),
    progress: ProgressCallback | None = None,
    workers: int | None = None,
    on_skip: SkipCallback | None = None,
    limits: MetainfoLimits = DEFAULT_LIMITS,
    exclude: Iterable[str] = (),
) -> bytes:
    """The bencoded v1 .torrent of the file or directory at ``path``.

    ``trackers`` holds URLs (a tier each) or lists of URLs (one tier each).
    ``url_list`` holds BEP 19 web seeds.  ``progress``, ``workers``: see
    ``hash_pieces``; ``on_skip``, ``exclude``: see ``collect_files``.  Everything is
    checked before the first byte is hashed."""
    tiers = _tiers(trackers)
    web_seeds = [_url(u, "url-list") for u in url_list]
    if piece_length is not None:
        _check_piece_length(piece_length, limits)
    comment_bytes = None if comment is None else _utf8(comment, "comment")
    created_by_bytes = None if created_by is None else _utf8(created_by, "created by")
    if creation_date is not None and not isinstance(creation_date, int):
        raise TypeError("creation_date must be an int (seconds since the epoch) or None")

    files = collect_files(path, on_skip, limits, exclude)
    total = sum(f.size for f in files)
    if piece_length is None:
        piece_length = auto_piece_length(total)
    count = -(-total // piece_length)
    if count > limits.max_pieces:
        raise TorrentCreationError(
            "piece length",
            f"{count} pieces of {piece_length} bytes exceed the limit of {limits.max_pieces}",
        )

    info: dict[bytes, Any] = {
        b"name": files[0].path[0].encode("utf-8"),
        b"piece length": piece_length,
    }
    single = len(files) == 1 and len(files[0].path) == 1
    if single:
        info[b"length"] = total
    else:
        info[b"files"] = [
            {b"length": f.size, b"path": [part.encode("utf-8") for part in f.path[1:]]}
            for f in files
        ]
    if private:
        info[b"private"] = 1
    info[b"pieces"] = hash_pieces(files, piece_length, progress, workers)

    meta: dict[bytes, Any] = {b"info": info}
    if tiers:
        meta[b"announce"] = tiers[0][0]
        if sum(len(tier) for tier in tiers) > 1:
            meta[b"announce-list"] = tiers
    if web_seeds:
        meta[b"url-list"] = web_seeds
    if comment_bytes is not None:
        meta[b"comment"] = comment_bytes
    if created_by_bytes is not None:
        meta[b"created by"] = created_by_bytes
    if creation_date is not None:
        meta[b"creation date"] = creation_date
    raw = encode(meta)

    # The names were checked one by one above; this is the whole-torrent proof.
    try:
        parsed = parse(raw, limits)
    except MetainfoError as e:
        raise TorrentCreationError(
            _display(os.fspath(path)), f"the torrent would not load: {e}"
        ) from None
    renamed = [f for f in parsed.files if f.renamed]
    if renamed:
        raise TorrentCreationError(
            _display(os.fspath(path)),
            f"{'/'.join(renamed[0].path)!r} would be renamed on loading",
        )
    return raw
