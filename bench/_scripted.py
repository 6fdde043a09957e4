"""Part b of ``bench.scale``: the scripted leechers, in a child process of their own.

Theory of operation
-------------------
``scripted_peers`` (the ``--child peers`` role of ``bench.scale``) opens
``spec["peers"]`` connections to a seeder child from this one process, a few
at a time (``CONNECT_AT_ONCE`` handshakes in progress), each a ``Leecher``
built on the sans-I/O ``PeerSession``: it handshakes, says HAVE_NONE (an
empty bitfield) and INTERESTED and, whenever unchoked, keeps ``spec["depth"]``
requests outstanding, walking the torrent from a random piece (``rng`` from
``spec["seed"]``).  Every block received is compared byte for byte with the
data file (mapped read-only) and dropped.

Once all are in (or ``CONNECT_TIMEOUT`` passed) and ``WARMUP`` more seconds,
it samples the seeder's CPU (``/proc/<pid>/stat``) and the payload received,
again ``spec["seconds"]`` later, emits one ``RESULT`` line and aborts its
connections.  The parent (``bench.scale.run_peers``) judges the result.
"""

from __future__ import annotations

import random
import time
from typing import Any

from bench._procs import LOOPBACK, emit, kib_to_mib, own_cpu, proc_cpu, proc_status

__all__ = ["CONNECT_AT_ONCE", "CONNECT_TIMEOUT", "WARMUP", "scripted_peers"]

CONNECT_AT_ONCE = 8
"""Scripted connections whose handshake is in progress at a time."""
CONNECT_TIMEOUT = 60.0
"""Seconds for all connections to be made (or to fail)."""
WARMUP = 1.0
"""Seconds between the last connection and the start of the window."""


async def scripted_peers(reactor: Any, spec: dict[str, Any]) -> None:
    """P scripted leechers on one seeder; sample the seeder's CPU over a window."""
    import mmap

    from twisted.internet.defer import Deferred
    from twisted.internet.protocol import ClientFactory, Protocol
    from twisted.internet.task import deferLater

    from txbittorrent.core.bitfield import Bitfield
    from txbittorrent.core.wire.events import BlockReceived, HandshakeReceived, Reply
    from txbittorrent.core.layout import BLOCK_SIZE, Layout
    from txbittorrent.core.metainfo import parse
    from txbittorrent.core.wire.session import PeerSession
    from txbittorrent.errors import LocalProtocolError, RemoteProtocolError

    with open(spec["torrent"], "rb") as f:
        metainfo = parse(f.read())
    layout = Layout.from_metainfo(metainfo)
    piece_count = metainfo.piece_count
    piece_length = metainfo.piece_length
    depth = int(spec["depth"])
    rng = random.Random(spec.get("seed", 1))
    data_file = open(spec["data"], "rb")
    data = mmap.mmap(data_file.fileno(), 0, access=mmap.ACCESS_READ)
    target = int(spec["peers"])
    seeder_pid = int(spec["seeder_pid"])

    class Tally:
        started = 0
        in_handshake = 0
        handshaken = 0
        lost_after_handshake = 0
        failed = 0
        bytes = 0
        blocks = 0
        mismatches = 0
        errors: list[str] = []
        links: list[Leecher] = []
        all_in: Deferred[None] | None = None

    tally = Tally()

    def peer_id() -> bytes:
        return b"-BENCH0-" + bytes(rng.randrange(48, 58) for _ in range(12))

    class Leecher(Protocol):
        transport: Any

        def __init__(self) -> None:
            self.session = PeerSession(
                metainfo.info_hash,
                peer_id(),
                piece_count,
                True,
                piece_length_of=layout.piece_size,
            )
            self.piece = rng.randrange(piece_count)
            self.begin = 0
            self.ready = False
            self.gone = False

        def connectionMade(self) -> None:
            tally.links.append(self)
            self.transport.write(self.session.send_handshake())

        def dataReceived(self, chunk: bytes) -> None:
            if self.gone:
                return
            try:
                events = self.session.receive_data(chunk)
            except RemoteProtocolError as e:
                tally.errors.append(f"seeder broke the protocol: {e}")
                self.gone = True
                self.transport.abortConnection()
                return
            out = []
            for event in events:
                if isinstance(event, BlockReceived):
                    size = len(event.block)
                    offset = event.piece_index * piece_length + event.begin
                    if data[offset : offset + size] != event.block:
                        tally.mismatches += 1
                    tally.bytes += size
                    tally.blocks += 1
                elif isinstance(event, HandshakeReceived):
                    out.append(self.session.send_bitfield(Bitfield(piece_count)))
                    out.append(self.session.interested())
                    self.ready = True
                    tally.handshaken += 1
                    handshake_done()
                elif isinstance(event, Reply):
                    out.append(event.data)
            if self.ready:
                out.append(self.fill())
            payload = b"".join(out)
            if payload:
                self.transport.write(payload)

        def fill(self) -> bytes:
            session = self.session
            if session.peer_choking or not session.peer_have.complete:
                return b""
            want = depth - len(session.outstanding_requests)
            requests = []
            try:
                for _ in range(want):
                    size = min(BLOCK_SIZE, layout.piece_size(self.piece) - self.begin)
                    requests.append(session.request(self.piece, self.begin, size))
                    self.begin += size
                    if self.begin >= layout.piece_size(self.piece):
                        self.piece = (self.piece + 1) % piece_count
                        self.begin = 0
            except LocalProtocolError:
                pass  # wrapped round to a block still outstanding: enough for now
            return b"".join(requests)

        def connectionLost(self, reason: Any = None) -> None:
            was_ready = self.ready
            self.gone = True
            if was_ready:
                tally.lost_after_handshake += 1
            else:
                tally.failed += 1
                handshake_done()

    class Factory(ClientFactory):
        noisy = False

        def buildProtocol(self, addr: Any) -> Leecher:
            return Leecher()

        def clientConnectionFailed(self, connector: Any, reason: Any) -> None:
            tally.failed += 1
            tally.errors.append(f"connect failed: {reason.getErrorMessage()}")
            handshake_done()

    factory = Factory()

    def launch() -> None:
        while tally.started < target and tally.in_handshake < CONNECT_AT_ONCE:
            tally.started += 1
            tally.in_handshake += 1
            reactor.connectTCP(LOOPBACK, int(spec["port"]), factory, timeout=10)

    def handshake_done() -> None:
        tally.in_handshake -= 1
        launch()
        if tally.handshaken + tally.failed >= target:
            give_up()

    def give_up() -> None:
        if tally.all_in is not None:
            d, tally.all_in = tally.all_in, None
            d.callback(None)

    waiting: Deferred[None] = Deferred()
    tally.all_in = waiting
    t_connect = time.perf_counter()
    launch()
    timeout = reactor.callLater(CONNECT_TIMEOUT, give_up)
    await waiting
    if timeout.active():
        timeout.cancel()
    connect_seconds = time.perf_counter() - t_connect
    await deferLater(reactor, WARMUP, lambda: None)
    cpu0, bytes0, own0, t0 = proc_cpu(seeder_pid), tally.bytes, own_cpu(), time.perf_counter()
    mismatches0 = tally.mismatches
    await deferLater(reactor, float(spec["seconds"]), lambda: None)
    cpu1, bytes1, own1, t1 = proc_cpu(seeder_pid), tally.bytes, own_cpu(), time.perf_counter()
    seeder_status = proc_status(seeder_pid)
    emit(
        "RESULT",
        peers=target,
        connected=tally.handshaken - tally.lost_after_handshake,
        handshaken=tally.handshaken,
        failed=tally.failed,
        lost=tally.lost_after_handshake,
        connect_seconds=connect_seconds,
        window_seconds=t1 - t0,
        window_bytes=bytes1 - bytes0,
        seeder_cpu=None if cpu0 is None or cpu1 is None else cpu1 - cpu0,
        peers_cpu=own1 - own0,
        blocks=tally.blocks,
        mismatches=tally.mismatches,
        window_mismatches=tally.mismatches - mismatches0,
        seeder_rss_mib=kib_to_mib(seeder_status.get("VmRSS")),
        seeder_anon_mib=kib_to_mib(seeder_status.get("RssAnon")),
        seeder_threads=seeder_status.get("Threads"),
        errors=tally.errors[:5],
    )
    for link in tally.links:
        if not link.gone:
            link.gone = True
            link.transport.abortConnection()
    data.close()
    data_file.close()
