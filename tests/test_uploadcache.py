"""Tests for txbittorrent.storage.uploadcache: whole pieces in an LRU, reads coalesced."""

from __future__ import annotations

from twisted.internet.defer import Deferred, fail
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.errors import MissingDataError
from txbittorrent.storage.uploadcache import UploadCache


class Reader:
    """read_piece stand-in: each read waits until the test answers it."""

    def __init__(self) -> None:
        self.reads: list[int] = []
        self.pending: dict[int, Deferred[bytes]] = {}

    def __call__(self, index: int) -> Deferred[bytes]:
        self.reads.append(index)
        d: Deferred[bytes] = Deferred()
        self.pending[index] = d
        return d

    def answer(self, index: int, size: int = 10) -> None:
        self.pending.pop(index).callback(bytes([index]) * size)


class UploadCacheTests(SynchronousTestCase):
    """get/put/fetch and the byte budget."""

    def test_lru_eviction(self) -> None:
        """Past max_bytes the least recently used pieces go."""
        cache = UploadCache(Reader(), max_bytes=25)
        cache.put(1, b"a" * 10)
        cache.put(2, b"b" * 10)
        self.assertEqual(cache.get(1), b"a" * 10)  # 1 is now the most recent
        cache.put(3, b"c" * 10)
        self.assertNotIn(2, cache)
        self.assertIn(1, cache)
        self.assertEqual(cache.size, 20)

    def test_oversized_piece_kept_alone(self) -> None:
        """A piece bigger than the budget evicts everything else but stays."""
        cache = UploadCache(Reader(), max_bytes=5)
        cache.put(1, b"a" * 3)
        cache.put(2, b"b" * 10)
        self.assertEqual((1 in cache, 2 in cache, cache.size), (False, True, 10))

    def test_fetch_coalesced(self) -> None:
        """Concurrent fetches of a piece make one read; later ones hit the cache."""
        reader = Reader()
        cache = UploadCache(reader, max_bytes=100)
        got: list[bytes] = []
        cache.fetch(4).addCallback(got.append)
        cache.fetch(4).addCallback(got.append)
        idle: list[object] = []
        cache.when_idle().addCallback(idle.append)
        self.assertEqual((reader.reads, got, idle), ([4], [], []))
        reader.answer(4)
        self.assertEqual(got, [b"\x04" * 10] * 2)
        self.assertEqual(idle, [None])
        cache.fetch(4).addCallback(got.append)
        self.assertEqual((reader.reads, len(got)), ([4], 3))

    def test_fetch_failure(self) -> None:
        """A failed read fails every fetcher and caches nothing."""
        cache = UploadCache(lambda index: fail(MissingDataError("gone")), max_bytes=100)
        errors: list[object] = []
        cache.fetch(1).addErrback(errors.append)
        self.assertEqual(len(errors), 1)
        self.assertNotIn(1, cache)
        self.assertEqual(cache.reading, 0)
