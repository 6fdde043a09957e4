"""Deleting a torrent's data: ``delete_torrent_files``.

Theory of operation
-------------------
When a torrent is removed "with its data", only what the torrent itself
names may go: the files its layout lists (and its part file), below its
save path, and then the directories on those paths that are left empty.
Nothing else in the save path is touched, however it got there.

Every path is reached from a descriptor of the save path one component at
a time without following symlinks (``SafeDirectory``); the save path itself
may be a symlink (the user chose it).  So:

* a symlink on the way (a directory of the torrent replaced by a link to
  somewhere else) stops that path: nothing below it is removed;
* only regular files are unlinked; a symlink, FIFO or directory where the
  torrent has a file is left alone (a symlink is never followed, so its
  target is safe whatever it is);
* a path component that is empty, ``.``, ``..`` or holds ``/`` or NUL is
  refused (``core.metainfo`` sanitises paths already; this checks again);
* directories go deepest first and only when empty (``rmdir``), and never
  the save path itself.

It blocks (system calls): run it in a thread (``deferToThread`` or the
session's pool).  It never raises for one path: what it could not remove is
reported in the result with the reason.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from txbittorrent.errors import MissingDataError, StorageError
from txbittorrent.storage.paths import SafeDirectory

if TYPE_CHECKING:
    from txbittorrent.core.metainfo import Metainfo

__all__ = ["RemovedFiles", "delete_torrent_files", "torrent_paths"]


@dataclass(frozen=True, slots=True)
class RemovedFiles:
    """What ``delete_torrent_files`` did (full paths)."""

    files: tuple[str, ...]
    """Regular files unlinked."""
    directories: tuple[str, ...]
    """Directories removed because they were left empty."""
    skipped: tuple[tuple[str, str], ...]
    """(path, reason) of each named file left in place other than a missing
    one: a symlink, not a regular file, an unsafe name, an error."""

    @property
    def ok(self) -> bool:
        """Nothing the torrent names was left behind."""
        return not self.skipped


def torrent_paths(metainfo: Metainfo) -> list[tuple[str, ...]]:
    """The paths a torrent's data may occupy below its save path: each file
    of its layout (pad files too) and its part file (as ``FileStorage``
    names it)."""
    paths = [tuple(f.path) for f in metainfo.files]
    paths.append(("." + metainfo.info_hash.hex() + ".parts",))
    return paths


def _safe(path: Sequence[str]) -> bool:
    return bool(path) and all(
        isinstance(p, str) and p not in ("", ".", "..") and "/" not in p and "\0" not in p
        for p in path
    )


def delete_torrent_files(save_path: str, paths: Iterable[Sequence[str]]) -> RemovedFiles:
    """Remove the regular files at ``paths`` (component tuples relative to
    ``save_path``), then the directories on those paths left empty (see the
    module docstring for what is never touched)."""
    tree = SafeDirectory(os.path.abspath(save_path))
    removed: list[str] = []
    skipped: list[tuple[str, str]] = []
    directories: set[tuple[str, ...]] = set()
    for raw in paths:
        path = tuple(raw)
        if not _safe(path):
            skipped.append((repr(path), "unsafe path"))
            continue
        directories.update(path[:k] for k in range(1, len(path)))
        reason = _unlink(tree, path)
        if reason is None:
            removed.append(tree.where(path))
        elif reason != "missing":
            skipped.append((tree.where(path), reason))
    gone: list[str] = []
    for directory in sorted(directories, key=len, reverse=True):
        if _rmdir(tree, directory):
            gone.append(tree.where(directory))
    return RemovedFiles(tuple(removed), tuple(gone), tuple(skipped))


def _unlink(tree: SafeDirectory, path: tuple[str, ...]) -> str | None:
    """Unlink one regular file; None when done, else why not ("missing" when
    it or a directory above is absent)."""
    try:
        dfd = tree.open_parent(path, create=False)
    except MissingDataError:
        return "missing"
    except StorageError as e:  # UnsafePathError (a symlink on the way) among them
        return e.reason
    try:
        st = os.stat(path[-1], dir_fd=dfd, follow_symlinks=False)
        if stat.S_ISLNK(st.st_mode):
            return "is a symbolic link; left alone"
        if not stat.S_ISREG(st.st_mode):
            return "not a regular file; left alone"
        os.unlink(path[-1], dir_fd=dfd)
    except FileNotFoundError:
        return "missing"
    except OSError as e:
        return e.strerror or str(e)
    finally:
        os.close(dfd)
    return None


def _rmdir(tree: SafeDirectory, path: tuple[str, ...]) -> bool:
    """Remove one directory if it is a real (not symlinked) empty directory."""
    try:
        dfd = tree.open_parent(path, create=False)
    except StorageError:  # missing, or a symlink on the way
        return False
    try:
        st = os.stat(path[-1], dir_fd=dfd, follow_symlinks=False)
        if not stat.S_ISDIR(st.st_mode):
            return False
        os.rmdir(path[-1], dir_fd=dfd)
    except OSError:  # not empty, gone, no permission: leave it
        return False
    finally:
        os.close(dfd)
    return True
