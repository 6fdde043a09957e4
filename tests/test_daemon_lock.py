"""daemon.lock.StateDirLock: one holder per state directory, in this process
and across processes; released by release() or by the holder's death."""

from __future__ import annotations

import os
import subprocess
import sys

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.daemon.lock import DaemonRunningError, StateDirLock
from txbittorrent.errors import TxBitTorrentError


class StateDirLockTests(SynchronousTestCase):
    """The flock on STATE_DIR/lock."""

    def setUp(self) -> None:
        self.dir = os.path.abspath(self.mktemp())
        os.makedirs(self.dir)

    def test_constructor_does_nothing(self) -> None:
        """Making a lock creates no file."""
        lock = StateDirLock(self.dir)
        self.assertFalse(lock.held)
        self.assertFalse(os.path.exists(os.path.join(self.dir, "lock")))

    def test_second_holder_refused(self) -> None:
        """A second lock on the same directory raises DaemonRunningError (a
        TxBitTorrentError) naming the directory and our pid."""
        first = StateDirLock(self.dir)
        first.acquire()
        self.addCleanup(first.release)
        self.assertTrue(first.held)
        second = StateDirLock(self.dir)
        with self.assertRaises(DaemonRunningError) as caught:
            second.acquire()
        self.assertIsInstance(caught.exception, TxBitTorrentError)
        self.assertIn(self.dir, str(caught.exception))
        self.assertEqual(caught.exception.pid, str(os.getpid()))
        self.assertFalse(second.held)

    def test_release_lets_the_next_in(self) -> None:
        """After release (idempotent) another lock succeeds; the file stays."""
        first = StateDirLock(self.dir)
        first.acquire()
        first.release()
        first.release()
        second = StateDirLock(self.dir)
        second.acquire()
        self.addCleanup(second.release)
        self.assertTrue(second.held)
        self.assertTrue(os.path.exists(os.path.join(self.dir, "lock")))

    def test_acquire_twice_is_harmless(self) -> None:
        """acquire on a lock already held by the same object does nothing."""
        lock = StateDirLock(self.dir)
        lock.acquire()
        self.addCleanup(lock.release)
        lock.acquire()
        self.assertTrue(lock.held)

    def test_other_process_and_its_death(self) -> None:
        """A lock held by another process refuses us; once that process has
        exited (no release: the kernel drops the flock) we get it."""
        code = (
            "import sys, fcntl\n"
            "f = open(sys.argv[1], 'a')\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n"
        )
        child = subprocess.Popen(
            [sys.executable, "-c", code, os.path.join(self.dir, "lock")],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )
        self.addCleanup(lambda: child.poll() is None and child.kill())
        assert child.stdout is not None and child.stdin is not None
        self.assertEqual(child.stdout.readline().strip(), b"locked")
        lock = StateDirLock(self.dir)
        with self.assertRaises(DaemonRunningError):
            lock.acquire()
        child.kill()
        child.wait(10)
        child.stdin.close()
        child.stdout.close()
        lock.acquire()
        self.addCleanup(lock.release)
        self.assertTrue(lock.held)
