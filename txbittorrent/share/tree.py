"""The shared directory on disk: safe paths, snapshots, hashing, the cache.

Theory of operation
-------------------
Everything here blocks (it stats, walks and reads files); the service runs
it in the Session's thread pool, the catalog never calls it directly.

* ``request_path`` turns the segments of a URL (already percent-decoded by
  twisted.web) into a relative path, refusing anything that could leave the
  directory: empty, ``.`` or ``..`` components, ``/``, ``\\`` or NUL inside a
  component, bytes that are not UTF-8, and paths over ``MAX_PATH_BYTES`` or
  ``MAX_COMPONENTS``.  ``resolve`` then walks the path from the root with
  ``lstat``, one component at a time: a symbolic link anywhere, a hidden
  name (the cache directory), something missing or other than a regular
  file or a directory is ``NotShared`` (a 404).  A last ``realpath`` check
  keeps the answer inside the root even if a component was swapped meanwhile.
* A ``snapshot`` is ``(path in the torrent, size, st_mtime_ns)`` of every
  file a torrent of the path would hold (``storage.create.collect_files``:
  symbolic links inside are skipped), capped at ``max_files``.
* ``build`` hashes with ``create_torrent`` between two snapshots; a torrent
  whose files did not change (size and mtime, the resume record's own test)
  across the hashing is returned with the snapshot, so seeding can trust its
  hashes: ``write_clean_resume`` writes the clean resume record that says so
  (``core.resume.plan_resume`` then trusts every piece whose files still
  match, and rechecks the others).
* The cache keeps, per shared path, ``<key>.torrent`` and ``<key>.json``
  (the snapshot, tracker URL and piece length it was made with); ``load``
  returns it only if all of them still match.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from typing import Any

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.metainfo import MetainfoLimits, parse
from txbittorrent.core.resume import make_record
from txbittorrent.errors import MetainfoError, TxBitTorrentError
from txbittorrent.storage.create import TorrentCreationError, collect_files, create_torrent
from txbittorrent.storage.resumefile import save_record, write_atomic

__all__ = [
    "MAX_COMPONENTS", "MAX_PATH_BYTES", "Built", "FileState", "Listed", "NotShared",
    "build", "cache_forget", "cache_load", "cache_store", "list_tree", "request_path",
    "resolve", "snapshot", "write_clean_resume",
]

MAX_PATH_BYTES = 4096
MAX_COMPONENTS = 64
BUILD_ATTEMPTS = 3
MAX_CACHED_TORRENT = 64 * 1024 * 1024

FileState = tuple[tuple[str, ...], int, int]
"""(path in the torrent, size, st_mtime_ns) of one file."""


class NotShared(TxBitTorrentError):
    """The path names nothing this service shares (answered with a 404)."""


@dataclass(frozen=True)
class Built:
    """A .torrent made (or found in the cache) for a shared path."""

    rel: tuple[str, ...]
    raw: bytes
    info_hash: bytes
    files: tuple[FileState, ...]


@dataclass(frozen=True)
class Listed:
    """One entry of the listing: a file or a directory below the root."""

    path: tuple[str, ...]
    directory: bool
    size: int


# -- paths ---------------------------------------------------------------------


def request_path(segments: Sequence[bytes]) -> tuple[str, ...]:
    """The relative path named by URL segments; ``NotShared`` if unsafe."""
    parts = list(segments)
    if parts and parts[-1] == b"":
        parts.pop()  # a trailing slash
    if not parts or len(parts) > MAX_COMPONENTS or sum(len(p) + 1 for p in parts) > MAX_PATH_BYTES:
        raise NotShared("no such path")
    out = []
    for part in parts:
        if part in (b"", b".", b"..") or any(c in part for c in (b"/", b"\\", b"\0")):
            raise NotShared("no such path")
        try:
            out.append(part.decode("utf-8"))
        except UnicodeDecodeError:
            raise NotShared("no such path") from None
    return tuple(out)


def _inside(root: str, path: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def resolve(root: str, rel: tuple[str, ...], hidden: Collection[str] = ()) -> str:
    """The absolute path of ``rel`` below ``root`` (a real path), reached
    without any symbolic link; ``NotShared`` otherwise (see the module
    docstring)."""
    if not rel or rel[0] in hidden:
        raise NotShared("no such path")
    where = root
    for n, name in enumerate(rel):
        where = os.path.join(where, name)
        try:
            st = os.lstat(where)
        except OSError:
            raise NotShared("no such path") from None
        last = n == len(rel) - 1
        if stat.S_ISLNK(st.st_mode) or not (
            stat.S_ISDIR(st.st_mode) or (last and stat.S_ISREG(st.st_mode))
        ):
            raise NotShared("no such path")
    if not _inside(root, os.path.realpath(where)):
        raise NotShared("no such path")
    return where


# -- snapshots and hashing -----------------------------------------------------------


def snapshot(
    path: str, limits: MetainfoLimits, max_files: int, exclude: Collection[str] = ()
) -> tuple[FileState, ...]:
    """The state of every file a torrent of ``path`` would hold."""
    try:
        files = collect_files(path, limits=limits, exclude=exclude)
    except FileNotFoundError:
        raise NotShared("no such path") from None
    if len(files) > max_files:
        raise TorrentCreationError(
            os.path.basename(path), f"holds more than {max_files} files"
        )
    out = []
    for f in files:
        try:
            st = os.lstat(f.abspath)
        except FileNotFoundError:
            raise TorrentCreationError(f.abspath, "vanished while being listed") from None
        out.append((f.path, st.st_size, st.st_mtime_ns))
    return tuple(out)


def build(
    root: str,
    rel: tuple[str, ...],
    tracker_url: str,
    piece_length: int | None,
    limits: MetainfoLimits,
    max_files: int,
    hidden: Collection[str] = (),
    exclude: Collection[str] = (),
) -> Built:
    """Hash ``rel`` into a .torrent whose files did not change meanwhile."""
    for _ in range(BUILD_ATTEMPTS):
        path = resolve(root, rel, hidden)
        before = snapshot(path, limits, max_files, exclude)
        try:
            raw = create_torrent(
                path, trackers=[tracker_url], piece_length=piece_length, workers=1,
                limits=limits, exclude=exclude,
            )
        except TorrentCreationError:
            if snapshot(path, limits, max_files, exclude) != before:
                continue  # it changed while being read: again
            raise
        after = snapshot(resolve(root, rel, hidden), limits, max_files, exclude)
        if after != before:
            continue
        metainfo = parse(raw, limits)
        if tuple(f.path for f in metainfo.files) != tuple(s[0] for s in after):
            continue
        return Built(rel, raw, metainfo.info_hash, after)
    raise TorrentCreationError("/".join(rel), "kept changing while being hashed")


def write_clean_resume(resume_path: str, built: Built, limits: MetainfoLimits) -> None:
    """The clean resume record of a torrent just hashed: every piece, with
    the files' sizes and mtimes seen around the hashing."""
    metainfo = parse(built.raw, limits)
    states = {path: (size, mtime) for path, size, mtime in built.files}
    files = [None if f.pad else states[f.path] for f in metainfo.files]
    record = make_record(
        metainfo.info_hash, Bitfield.full(metainfo.piece_count), {}, files, None, clean=True
    )
    os.makedirs(os.path.dirname(resume_path), exist_ok=True)
    save_record(resume_path, record)


# -- the cache -------------------------------------------------------------------


def _key(rel: tuple[str, ...]) -> str:
    return hashlib.sha1("/".join(rel).encode("utf-8", "surrogateescape")).hexdigest()


def _cache_paths(cache_dir: str, rel: tuple[str, ...]) -> tuple[str, str]:
    base = os.path.join(cache_dir, "torrents", _key(rel))
    return base + ".torrent", base + ".json"


def cache_store(
    cache_dir: str, built: Built, tracker_url: str, piece_length: int | None
) -> None:
    """Keep ``built`` for the next run."""
    torrent_path, json_path = _cache_paths(cache_dir, built.rel)
    os.makedirs(os.path.dirname(torrent_path), exist_ok=True)
    write_atomic(torrent_path, built.raw, mode=0o644)
    index = {
        "path": list(built.rel),
        "info_hash": built.info_hash.hex(),
        "tracker_url": tracker_url,
        "piece_length": piece_length,
        "files": [[list(path), size, mtime] for path, size, mtime in built.files],
    }
    write_atomic(json_path, json.dumps(index).encode(), mode=0o644)


def cache_load(
    cache_dir: str,
    rel: tuple[str, ...],
    files: tuple[FileState, ...],
    tracker_url: str,
    piece_length: int | None,
    limits: MetainfoLimits,
) -> Built | None:
    """The cached torrent of ``rel`` if it was made from exactly ``files``
    with the same tracker URL and piece length; else None."""
    torrent_path, json_path = _cache_paths(cache_dir, rel)
    try:
        with open(json_path, "rb") as f:
            index: Any = json.loads(f.read(MAX_CACHED_TORRENT))
        seen = tuple((tuple(p), int(s), int(m)) for p, s, m in index["files"])
        if (
            index["path"] != list(rel)
            or index["tracker_url"] != tracker_url
            or index["piece_length"] != piece_length
            or seen != files
        ):
            return None
        with open(torrent_path, "rb") as f:
            raw = f.read(MAX_CACHED_TORRENT + 1)
        metainfo = parse(raw, limits)
    except (OSError, ValueError, KeyError, TypeError, MetainfoError):
        return None
    if metainfo.info_hash.hex() != index["info_hash"]:
        return None
    if tuple(f.path for f in metainfo.files) != tuple(s[0] for s in files):
        return None
    return Built(rel, raw, metainfo.info_hash, files)


def cache_forget(cache_dir: str, rel: tuple[str, ...]) -> None:
    """Drop the cached torrent of ``rel``, if any."""
    for path in _cache_paths(cache_dir, rel):
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass


# -- the listing -------------------------------------------------------------------


def list_tree(
    root: str,
    hidden: Collection[str] = (),
    exclude: Collection[str] = (),
    max_entries: int = 10_000,
    max_depth: int = 16,
) -> tuple[list[Listed], bool]:
    """Files and directories below ``root`` (symbolic links, special files,
    ``hidden`` top-level names and the absolute paths in ``exclude`` left
    out), sorted by path, with each directory's total size; and whether
    ``max_entries`` cut the walk short."""
    entries: list[Listed] = []
    truncated = False

    def walk(directory: str, prefix: tuple[str, ...]) -> int:
        nonlocal truncated
        total = 0
        try:
            with os.scandir(directory) as it:
                children = sorted(it, key=lambda e: e.name)
        except OSError:
            return 0
        for entry in children:
            if (not prefix and entry.name in hidden) or entry.path in exclude:
                continue
            if len(entries) >= max_entries:
                truncated = True
                break
            path = prefix + (entry.name,)
            try:
                if entry.is_symlink():
                    continue
                if entry.is_dir(follow_symlinks=False):
                    slot = len(entries)
                    entries.append(Listed(path, True, 0))
                    size = walk(entry.path, path) if len(path) < max_depth else 0
                    entries[slot] = Listed(path, True, size)
                    total += size
                elif entry.is_file(follow_symlinks=False):
                    size = entry.stat(follow_symlinks=False).st_size
                    entries.append(Listed(path, False, size))
                    total += size
            except OSError:
                continue
        return total

    walk(root, ())
    return entries, truncated
