"""Tests for txbittorrent.swarm.piecebuffer: piece buffers and the verified write."""

from __future__ import annotations

import hashlib
import os

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.errors import MissingDataError
from txbittorrent.swarm.piecebuffer import PieceBuffers, verify_and_write
from txbittorrent.storage.files import FileStorage
from txbittorrent.testing import make_metainfo


class PieceBuffersTests(SynchronousTestCase):
    """Allocation and the memory budget."""

    def test_budget(self) -> None:
        """used counts buffers from create to drop/release; over_budget at the limit."""
        buffers = PieceBuffers(limit=20)
        buffers.create(1, 10)
        self.assertIs(buffers.create(1, 10), buffers.get(1))
        self.assertEqual((buffers.used, buffers.over_budget), (10, False))
        buffers.create(2, 10)
        self.assertTrue(buffers.over_budget)
        taken = buffers.take(2)
        self.assertEqual((len(taken or b""), 2 in buffers, buffers.used), (10, False, 20))
        buffers.release(10)
        buffers.drop(1)
        self.assertEqual((buffers.used, len(buffers)), (0, 0))


class VerifyAndWriteTests(SynchronousTestCase):
    """verify_and_write: only data that hashes right reaches the disk."""

    def setUp(self) -> None:
        base = self.mktemp()
        os.makedirs(base)
        self.storage = FileStorage(make_metainfo(32, 16, name="one.bin"), base)
        self.addCleanup(self.storage.close)

    def test_good_piece_written(self) -> None:
        """A matching piece is written whole."""
        data = bytearray(b"x" * 16)
        self.assertTrue(verify_and_write(self.storage, 1, hashlib.sha1(data).digest(), data))
        self.assertEqual(self.storage.read_piece(1), bytes(data))

    def test_bad_piece_not_written(self) -> None:
        """A piece that does not match is not written at all."""
        data = bytearray(b"x" * 16)
        self.assertFalse(verify_and_write(self.storage, 1, b"\0" * 20, data))
        self.assertRaises(MissingDataError, self.storage.read_piece, 1)
