"""Opening files below the download directory without following symlinks.

Theory of operation
-------------------
Torrent paths are sanitised by ``core.metainfo``, but a symlink already on
disk could still lead outside the download directory.  A ``SafeDirectory``
reaches every path one component at a time from a descriptor of its root,
each ``open`` relative to its parent's descriptor (``dir_fd``) with
``O_NOFOLLOW``; the root itself may be a symlink (the user chose it).

* A symlink anywhere below the root raises ``UnsafePathError``.
* Something other than a directory where a directory is expected, or other
  than a regular file where a file is expected (a FIFO, a device), raises
  ``StorageError`` and is never opened (files are opened ``O_NONBLOCK``, so
  even a FIFO made between the check and the open cannot block).
* Missing directories are made when writing (``create``); when reading, a
  missing directory or file raises ``MissingDataError``.
* A file that cannot be opened for writing (read-only file or file system)
  is opened read-only for reading; the caller learns which it got.

It holds no descriptor between calls and no lock: every call opens what it
needs and closes it (the file's own descriptor goes to the caller).  Errors
carry a short reason (``failure_reason``) and the full path.
"""

from __future__ import annotations

import errno
import os
import stat

from txbittorrent.errors import MissingDataError, StorageError, UnsafePathError

__all__ = ["SafeDirectory", "failure_reason"]

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK

_REASONS = {
    errno.ENOSPC: "no space left on device",
    errno.EDQUOT: "disk quota exceeded",
    errno.EROFS: "read-only file system",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EIO: "input/output error",
    errno.EFBIG: "file too large",
}

_READ_ONLY_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ETXTBSY)


def failure_reason(action: str, err: OSError) -> str:
    """``"<action> failed: <why>"``, in words for the common errors."""
    text = _REASONS.get(err.errno or 0) or err.strerror or str(err)
    return f"{action} failed: {text}"


class SafeDirectory:
    """The download directory, walked without following symlinks below it.

    A path is a tuple of components relative to ``root`` (an absolute path)."""

    def __init__(self, root: str) -> None:
        self.root = root

    def where(self, path: tuple[str, ...]) -> str:
        """The full path, for messages and for the user."""
        return os.path.join(self.root, *path)

    def open_file(self, path: tuple[str, ...], write: bool) -> tuple[int, bool, int]:
        """Open a regular file: (blocking fd, writable, size).  With ``write``
        it and its directories are created if missing, and a file that allows
        only reading is opened read-only; without, it is never created."""
        where = self.where(path)
        dfd = self.open_parent(path, create=write)
        try:
            name = path[-1]
            if self._refuse_odd(dfd, name, where, want_dir=False) is None and not write:
                raise MissingDataError("file is missing", where)
            writable = True
            try:
                flags = os.O_RDWR | (os.O_CREAT if write else 0)
                fd = os.open(name, _FILE_FLAGS | flags, 0o666, dir_fd=dfd)
            except OSError as e:
                if e.errno == errno.ELOOP:
                    raise UnsafePathError("is a symbolic link; refusing to follow it", where) from e
                if write or e.errno not in _READ_ONLY_ERRNOS:
                    if isinstance(e, FileNotFoundError) and not write:
                        raise MissingDataError("file is missing", where) from e
                    raise StorageError(failure_reason("opening the file", e), where) from e
                try:
                    fd = os.open(name, _FILE_FLAGS | os.O_RDONLY, dir_fd=dfd)
                except OSError as e2:
                    raise StorageError(failure_reason("opening the file", e2), where) from e2
                writable = False
        finally:
            os.close(dfd)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise StorageError("exists but is not a regular file", where)
            os.set_blocking(fd, True)
        except BaseException:
            os.close(fd)
            raise
        return fd, writable, st.st_size

    def lstat(self, path: tuple[str, ...]) -> os.stat_result | None:
        """A regular file's lstat, ``None`` if it (or a directory above) is missing."""
        if len(path) == 1:
            # Right under the root: lstat of root/name checks what opening the
            # root and an fstatat without following would (the root is reached
            # by its path either way), in one system call instead of three;
            # resuming thousands of single-file torrents makes one each.
            where = self.where(path)
            return self._refuse_odd(None, where, where, want_dir=False)
        try:
            dfd = self.open_parent(path, create=False)
        except MissingDataError:
            return None
        try:
            return self._refuse_odd(dfd, path[-1], self.where(path), want_dir=False)
        finally:
            os.close(dfd)

    def unlink(self, path: tuple[str, ...], action: str = "removing the file") -> None:
        """Remove a file; nothing happens if it (or a directory above) is
        missing.  ``action`` names the removal in an error's reason."""
        try:
            dfd = self.open_parent(path, create=False)
        except MissingDataError:
            return
        try:
            os.unlink(path[-1], dir_fd=dfd)
        except FileNotFoundError:
            pass
        except OSError as e:
            raise StorageError(failure_reason(action, e), self.where(path)) from e
        finally:
            os.close(dfd)

    def open_parent(self, path: tuple[str, ...], create: bool) -> int:
        """A descriptor of the directory holding ``path``, reached without
        following any symlink below the root; missing directories are made
        when ``create``, else ``MissingDataError``."""
        root = self.root
        try:
            dfd = os.open(root, _DIR_FLAGS)
        except FileNotFoundError:
            if not create:
                raise MissingDataError("the download directory is missing", root) from None
            try:
                os.makedirs(root, exist_ok=True)
                dfd = os.open(root, _DIR_FLAGS)
            except OSError as e:
                reason = failure_reason("creating the download directory", e)
                raise StorageError(reason, root) from e
        except OSError as e:
            raise StorageError(failure_reason("opening the download directory", e), root) from e
        where = root
        try:
            for name in path[:-1]:
                where = os.path.join(where, name)
                fd = self._open_dir(dfd, name, where, create)
                os.close(dfd)
                dfd = fd
        except BaseException:
            os.close(dfd)
            raise
        return dfd

    def _open_dir(self, dfd: int, name: str, where: str, create: bool) -> int:
        for _ in range(2):
            try:
                return os.open(name, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=dfd)
            except FileNotFoundError:
                if not create:
                    raise MissingDataError("directory is missing", where) from None
                try:
                    os.mkdir(name, 0o777, dir_fd=dfd)
                except FileExistsError:
                    pass  # made meanwhile by another thread or process: open it
                except OSError as e:
                    raise StorageError(failure_reason("creating a directory", e), where) from e
            except OSError as e:
                self._refuse_odd(dfd, name, where, want_dir=True)
                raise StorageError(failure_reason("opening a directory", e), where) from e
        raise StorageError("directory vanished while being created", where)

    def _refuse_odd(
        self, dfd: int | None, name: str, where: str, want_dir: bool
    ) -> os.stat_result | None:
        """lstat ``name`` (in directory ``dfd``; a whole path if None) (``None``
        if absent); raise for a symlink, or for something other than a
        directory (``want_dir``) or a regular file."""
        try:
            st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise StorageError(failure_reason("examining the path", e), where) from e
        if stat.S_ISLNK(st.st_mode):
            raise UnsafePathError("is a symbolic link; refusing to follow it", where)
        if want_dir and not stat.S_ISDIR(st.st_mode):
            raise StorageError("is not a directory", where)
        if not want_dir and not stat.S_ISREG(st.st_mode):
            raise StorageError("exists but is not a regular file", where)
        return st
