"""One daemon per state directory: ``StateDirLock``.

Theory of operation
-------------------
``StateDirLock(state_dir)`` names ``state_dir/lock``; the constructor does
nothing.  ``acquire()`` opens (creating, mode 0600) that file and takes an
exclusive, non-blocking ``fcntl.flock`` on it, then writes the process id
into it (for people, not for the lock: the lock is the ``flock`` itself).
If another open file holds the lock (another daemon, in this process or
another) it raises ``DaemonRunningError`` naming the directory.
``release()`` unlocks and closes the file; it is idempotent.

The file is never deleted: deleting it would let a second daemon lock a
new file of the same name while the first still holds the old one.  The
kernel drops a ``flock`` when its last file descriptor closes, so a daemon
killed with SIGKILL leaves no stale lock behind; the next start locks the
same file again.  The descriptor is not inherited by child processes
(``O_CLOEXEC``), so a child cannot keep the lock alive after its parent.
"""

from __future__ import annotations

import fcntl
import os

from txbittorrent.errors import TxBitTorrentError

__all__ = ["DaemonRunningError", "LOCK_NAME", "StateDirLock"]

LOCK_NAME = "lock"


class DaemonRunningError(TxBitTorrentError):
    """Another daemon holds the state directory's lock."""

    def __init__(self, state_dir: str, pid: str = "") -> None:
        self.state_dir = state_dir
        self.pid = pid
        owner = f" (process {pid})" if pid else ""
        super().__init__(f"another txbittorrent daemon{owner} is using {state_dir}")


class StateDirLock:
    """An exclusive ``flock`` on ``state_dir/lock`` (see the module docstring)."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = state_dir
        self.path = os.path.join(state_dir, LOCK_NAME)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ``DaemonRunningError`` (``OSError`` when
        the file cannot be opened at all)."""
        if self._fd is not None:
            return
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            try:
                pid = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            except OSError:
                pid = ""
            os.close(fd)
            raise DaemonRunningError(self.state_dir, pid if pid.isdigit() else "") from None
        except BaseException:
            os.close(fd)
            raise
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        except OSError:
            pass  # the pid is a courtesy; the flock is the lock
        self._fd = fd

    def release(self) -> None:
        """Drop the lock (idempotent)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)
