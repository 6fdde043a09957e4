"""The swarm tests' harness: a Swarm over fake links, dialer, clock and
storage, and what it records (shared by the swarm and DHT-session tests)."""

from __future__ import annotations

import os
import random
from collections.abc import Iterable
from typing import Any

from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.transfer.completion import BitfieldView, Completion
from txbittorrent.core.layout import Layout
from txbittorrent.interfaces import Address
from txbittorrent.swarm.peerstate import PeerInfo
from txbittorrent.storage.files import FileStorage
from txbittorrent.storage.store import Store
from txbittorrent.swarm.swarm import Swarm, SwarmConfig, SwarmObserver
from txbittorrent.testing import FakePeerLink, FakeReactor, SyncPool, make_metainfo

PIECE = 32 * 1024
OUR_ID = b"-TX0100-ourselves000"


def peer_id(n: int) -> bytes:
    return b"-LT2010-remote%06d" % n


class FakeDialer:
    """Records connection attempts; ``allow`` says whether they start."""

    def __init__(self) -> None:
        self.calls: list[Address] = []
        self.allow = True
        self.own: set[Address] = set()

    def connect(self, host: object, address: Address) -> bool:
        self.calls.append(address)
        return self.allow

    def is_own_address(self, address: Address) -> bool:
        return address in self.own


class Recorder(SwarmObserver):
    """Keeps what the swarm reports."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, ...]] = []

    def peer_connected(self, info: PeerInfo) -> None:
        self.seen.append(("connected", info.address))

    def peer_lost(self, info: PeerInfo, reason: str) -> None:
        self.seen.append(("lost", info.address, reason))

    def piece_verified(self, index: int, passed: bool) -> None:
        self.seen.append(("verified", index, passed))

    def peer_banned(self, address: Address, peer_id: bytes | None, reason: str) -> None:
        self.seen.append(("banned", address, reason))

    def disk_error(self, index: int, failure: Failure) -> None:
        self.seen.append(("disk_error", index, failure.type))


class Harness:
    """A swarm over a real store, a clock, a seeded rng and fake links."""

    def __init__(
        self, test: SynchronousTestCase, pieces: int = 5, have: Iterable[int] = (),
        config: SwarmConfig | None = None, pool: Any = None, last: int = 20000,
        before_write: Any = None,
    ) -> None:
        self.data = random.Random(5).randbytes(PIECE * (pieces - 1) + last)
        split = len(self.data) // 3
        self.meta = make_metainfo({"a.bin": self.data[:split], "b.bin": self.data[split:]}, PIECE)
        self.layout = Layout.from_metainfo(self.meta)
        base = test.mktemp()
        os.makedirs(base)
        self.storage = FileStorage(self.meta, base)
        test.addCleanup(self.storage.close)
        self.reads: list[int] = []
        read_piece = self.storage.read_piece

        def counting_read(index: int) -> bytes:
            self.reads.append(index)
            return read_piece(index)

        self.storage.read_piece = counting_read  # type: ignore[method-assign]
        self.pool = pool if pool is not None else SyncPool()
        self.store = Store(self.storage, FakeReactor(), self.pool)  # type: ignore[arg-type]
        self.store.start()
        self.completion = Completion(self.layout)
        for index in have:
            self.storage.write(index, 0, self.piece(index))
            self.completion.passed(index)
        self.clock = Clock()
        self.dialer = FakeDialer()
        self.passed: list[int] = []
        self.failed: list[int] = []
        self.observer = Recorder()
        self.swarm = Swarm(
            self.meta.info_hash, OUR_ID, self.dialer, self.clock, random.Random(1),
            config=config, observer=self.observer,
        )
        self.swarm.attach(self.meta, self.layout, self.store, self.completion,
                          on_piece_passed=self._passed, on_piece_failed=self.failed.append,
                          before_write=before_write)
        self.links: list[FakePeerLink] = []
        self._count = 0
        test.addCleanup(self._cleanup)

    @property
    def have(self) -> BitfieldView:
        """Our verified pieces (the completion model's live view)."""
        return self.completion.have

    def set_file_priorities(self, priorities: list[int]) -> None:
        """Change the priorities in the completion model and tell the swarm."""
        self.completion.set_file_priorities(priorities)
        self.swarm.priorities_changed()

    def _passed(self, index: int) -> None:
        self.passed.append(index)
        self.completion.passed(index)

    def _cleanup(self) -> None:
        if self.swarm.running:
            self.swarm.stop()

    def piece(self, index: int) -> bytes:
        return self.data[index * PIECE : index * PIECE + self.layout.piece_size(index)]

    def link(
        self, host: str | None = None, outgoing: bool = True, remote_id: bytes | None = None,
        **options: Any,
    ) -> FakePeerLink:
        """A new link (not yet handshaken)."""
        self._count += 1
        address = (host or f"10.0.0.{self._count}", 6881)
        link = FakePeerLink(self.swarm, self.layout, address, outgoing,
                        remote_id or peer_id(self._count), **options)
        self.links.append(link)
        return link

    def connect(self, **options: Any) -> FakePeerLink:
        link = self.link(**options)
        assert link.handshake(), "connection refused"
        return link

    def seed(self, **options: Any) -> FakePeerLink:
        """A connected remote with every piece, unchoking us."""
        link = self.connect(**options)
        link.has(Bitfield.full(self.layout.piece_count))
        link.unchoke_us()
        return link

    def on_disk(self, index: int) -> bytes:
        """The bytes of a piece as they are on disk now (missing bytes as zeros)."""
        out = bytearray()
        for span in self.layout.spans(index):
            path = self.storage.file_path(span.file_index)
            chunk = b""
            if os.path.exists(path):
                with open(path, "rb") as f:
                    f.seek(span.file_offset)
                    chunk = f.read(span.length)
            out += chunk.ljust(span.length, b"\0")
        return bytes(out)


def small(**changes: Any) -> SwarmConfig:
    """A config with small queues, so that tests see several rounds."""
    values: dict[str, Any] = {"min_queue_depth": 4, "max_queue_depth": 8}
    values.update(changes)
    return SwarmConfig(**values)


# -- connections ------------------------------------------------------------------------
