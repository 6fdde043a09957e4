"""The share catalog (txbittorrent.share.catalog) over a fake disk and seeder:
no threads, no files; each blocking step is a Deferred the test fires."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.trial.unittest import TestCase

from txbittorrent.share.catalog import Busy, Catalog
from txbittorrent.share.tree import Built, FileState, NotShared
from txbittorrent.storage.create import TorrentCreationError

Rel = tuple[str, ...]


def files_of(rel: Rel, size: int = 10, mtime: int = 1) -> tuple[FileState, ...]:
    return (((rel[-1],), size, mtime),)


def built(rel: Rel, tag: int = 0, files: tuple[FileState, ...] | None = None) -> Built:
    info_hash = bytes([tag]) * 20
    return Built(rel, b"torrent-" + bytes([tag]), info_hash, files or files_of(rel))


class FakeDisk:
    """probe answers from ``files`` at once; ``build`` waits for the test."""

    def __init__(self) -> None:
        self.files: dict[Rel, tuple[FileState, ...]] = {}
        self.cached: dict[Rel, Built] = {}
        self.builds: list[tuple[Rel, Deferred[Built]]] = []
        self.stored: list[Built] = []
        self.forgotten: list[Rel] = []
        self.probes = 0

    def probe(self, rel: Rel) -> Deferred[tuple[FileState, ...]]:
        self.probes += 1
        if rel not in self.files:
            return Deferred.fromCoroutine(_fail(NotShared("no such path")))
        return succeed(self.files[rel])

    def load(self, rel: Rel, files: tuple[FileState, ...]) -> Deferred[Built | None]:
        cached = self.cached.get(rel)
        return succeed(cached if cached is not None and cached.files == files else None)

    def build(self, rel: Rel) -> Deferred[Built]:
        d: Deferred[Built] = Deferred()
        self.builds.append((rel, d))
        return d

    def store(self, b: Built) -> Deferred[None]:
        self.stored.append(b)
        return succeed(None)

    def forget(self, rel: Rel) -> Deferred[None]:
        self.forgotten.append(rel)
        return succeed(None)


async def _fail(error: Exception) -> Any:
    raise error


class FakeSeeder:
    def __init__(self) -> None:
        self.seeding: list[bytes] = []
        self.log: list[tuple[str, bytes]] = []
        self.sources: list[Rel] = []

    def seed(self, b: Built) -> Deferred[None]:
        self.seeding.append(b.info_hash)
        self.sources.append(b.rel)
        self.log.append(("seed", b.info_hash))
        return succeed(None)

    def unseed(self, info_hash: bytes) -> Deferred[None]:
        self.seeding.remove(info_hash)
        self.log.append(("unseed", info_hash))
        return succeed(None)


class CatalogTests(TestCase):
    def setUp(self) -> None:
        self.disk = FakeDisk()
        self.seeder = FakeSeeder()
        self.catalog = Catalog(self.disk, self.seeder, max_jobs=2, max_queued=1)

    def results(self, d: Deferred[Any]) -> list[Any]:
        out: list[Any] = []
        d.addBoth(out.append)
        return out

    def test_concurrent_requests_share_one_build(self) -> None:
        """Three requests for one path while it hashes make one build; all get its torrent."""
        rel = ("a.bin",)
        self.disk.files[rel] = files_of(rel)
        outs = [self.results(self.catalog.torrent(rel)) for _ in range(3)]
        self.assertEqual(len(self.disk.builds), 1)
        self.assertTrue(self.catalog.busy(rel))
        self.disk.builds[0][1].callback(built(rel, 1))
        self.assertEqual([o[0].info_hash for o in outs], [b"\x01" * 20] * 3)
        self.assertEqual(self.seeder.seeding, [b"\x01" * 20])
        self.assertEqual(self.disk.stored, [built(rel, 1)])
        self.assertFalse(self.catalog.busy(rel))

    def test_known_torrent_is_reused(self) -> None:
        """A second request for unchanged files builds nothing and seeds once."""
        rel = ("a.bin",)
        self.disk.files[rel] = files_of(rel)
        self.catalog.torrent(rel)
        self.disk.builds[0][1].callback(built(rel, 1))
        out = self.results(self.catalog.torrent(rel))
        self.assertEqual(out[0].info_hash, b"\x01" * 20)
        self.assertEqual(len(self.disk.builds), 1)
        self.assertEqual(self.seeder.log, [("seed", b"\x01" * 20)])

    def test_cached_torrent_on_disk_is_reused(self) -> None:
        """A torrent cached on disk from the same files is seeded without hashing."""
        rel = ("a.bin",)
        self.disk.files[rel] = files_of(rel)
        self.disk.cached[rel] = built(rel, 7)
        out = self.results(self.catalog.torrent(rel))
        self.assertEqual(out[0].info_hash, b"\x07" * 20)
        self.assertEqual(self.disk.builds, [])
        self.assertEqual(self.seeder.seeding, [b"\x07" * 20])

    def test_changed_file_makes_a_new_torrent(self) -> None:
        """Changed files: a new torrent is built, the old one stops seeding."""
        rel = ("a.bin",)
        self.disk.files[rel] = files_of(rel)
        self.catalog.torrent(rel)
        self.disk.builds[0][1].callback(built(rel, 1))
        self.disk.files[rel] = files_of(rel, mtime=2)
        out = self.results(self.catalog.torrent(rel))
        self.disk.builds[1][1].callback(built(rel, 2, files_of(rel, mtime=2)))
        self.assertEqual(out[0].info_hash, b"\x02" * 20)
        self.assertEqual(self.seeder.log, [
            ("seed", b"\x01" * 20), ("unseed", b"\x01" * 20), ("seed", b"\x02" * 20),
        ])

    def test_missing_path_is_not_shared(self) -> None:
        """A path that is gone fails with NotShared; a torrent it had stops seeding."""
        rel = ("a.bin",)
        self.disk.files[rel] = files_of(rel)
        self.catalog.torrent(rel)
        self.disk.builds[0][1].callback(built(rel, 1))
        del self.disk.files[rel]
        out = self.results(self.catalog.torrent(rel))
        out[0].trap(NotShared)
        self.assertEqual(self.seeder.seeding, [])
        self.assertIsNone(self.catalog.get(rel))
        self.assertEqual(self.disk.forgotten, [rel])

    def test_build_error_reaches_every_waiter(self) -> None:
        """A build that fails fails each request waiting for it, and the next request retries."""
        rel = ("a.bin",)
        self.disk.files[rel] = files_of(rel)
        outs = [self.results(self.catalog.torrent(rel)) for _ in range(2)]
        self.disk.builds[0][1].errback(TorrentCreationError("a.bin", "is empty"))
        for out in outs:
            out[0].trap(TorrentCreationError)
        self.catalog.torrent(rel)
        self.assertEqual(len(self.disk.builds), 2)

    def test_builds_are_queued_beyond_max_jobs(self) -> None:
        """At most max_jobs builds run; one more waits; the next is Busy."""
        rels = [(f"{n}.bin",) for n in range(4)]
        for rel in rels:
            self.disk.files[rel] = files_of(rel)
        outs = [self.results(self.catalog.torrent(rel)) for rel in rels]
        self.assertEqual([r for r, _ in self.disk.builds], rels[:2])
        self.assertEqual(self.catalog.queued, 1)
        outs[3][0].trap(Busy)
        self.disk.builds[0][1].callback(built(rels[0], 1))
        self.assertEqual([r for r, _ in self.disk.builds], rels[:3])
        self.assertEqual(self.catalog.building, 2)
        self.disk.builds[1][1].callback(built(rels[1], 2))
        self.disk.builds[2][1].callback(built(rels[2], 3))
        self.assertEqual(self.catalog.building, 0)
        self.assertEqual(len(self.seeder.seeding), 3)

    def test_same_torrent_for_two_paths_seeds_once(self) -> None:
        """Two paths with one info hash seed it once (from the first path's files,
        then from the second's), until neither has it."""
        a, b = ("x", "f.bin"), ("y", "f.bin")
        for rel in (a, b):
            self.disk.files[rel] = files_of(rel)
            self.catalog.torrent(rel)
        self.disk.builds[0][1].callback(built(a, 5))
        self.disk.builds[1][1].callback(built(b, 5))
        self.assertEqual(self.seeder.seeding, [b"\x05" * 20])
        del self.disk.files[a]
        self.catalog.check()
        self.assertEqual(self.seeder.seeding, [b"\x05" * 20])
        # It seeded from a's files: now from b's.
        self.assertEqual(self.seeder.log, [("seed", b"\x05" * 20), ("unseed", b"\x05" * 20),
                                           ("seed", b"\x05" * 20)])
        self.assertEqual(self.seeder.sources, [a, b])
        del self.disk.files[b]
        self.catalog.check()
        self.assertEqual(self.seeder.seeding, [])

    def test_check_forgets_vanished_and_changed(self) -> None:
        """check() stops seeding torrents whose files vanished or changed, keeps the rest."""
        rels = [("a",), ("b",), ("c",)]
        for n, rel in enumerate(rels):
            self.disk.files[rel] = files_of(rel)
            self.catalog.torrent(rel)
            self.disk.builds[n][1].callback(built(rel, n + 1))
        del self.disk.files[rels[0]]
        self.disk.files[rels[1]] = files_of(rels[1], size=11)
        out = self.results(self.catalog.check())
        self.assertEqual(out[0], [rels[0], rels[1]])
        self.assertEqual(self.seeder.seeding, [b"\x03" * 20])

    def test_stop_refuses_and_releases_the_queue(self) -> None:
        """After stop(), a queued build ends Busy and new requests are Busy."""
        rels = [(f"{n}.bin",) for n in range(3)]
        for rel in rels:
            self.disk.files[rel] = files_of(rel)
        outs = [self.results(self.catalog.torrent(rel)) for rel in rels]
        self.catalog.stop()
        outs[2][0].trap(Busy)
        self.results(self.catalog.torrent(rels[0]))[0].trap(Busy)
        for _, d in self.disk.builds:
            d.callback(built(("z",), 9))

    def test_second_path_going_keeps_seeding(self) -> None:
        """A path that shares a torrent but is not its source goes: nothing restarts."""
        a, b = ("x", "f.bin"), ("y", "f.bin")
        for rel in (a, b):
            self.disk.files[rel] = files_of(rel)
            self.catalog.torrent(rel)
        self.disk.builds[0][1].callback(built(a, 5))
        self.disk.builds[1][1].callback(built(b, 5))
        del self.disk.files[b]
        self.catalog.check()
        self.assertEqual(self.seeder.log, [("seed", b"\x05" * 20)])
        self.assertTrue(self.catalog.seeding(b"\x05" * 20))
