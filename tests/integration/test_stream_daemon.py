"""Streaming through the daemon while a real libtorrent seeder supplies the torrent.

A ``DaemonService`` runs in-process on 127.0.0.1 port 0; its only peer is a
libtorrent session on 127.0.0.1 whose uploads to local peers are
rate-limited, so the download takes a while.  Every request goes through
the Guard (the token of api.json as a Bearer token, Host 127.0.0.1) to
``/stream/<info hash>/<file index>/<name>``.  Checked: a range near the end
of a 256 MiB file comes long before the download reaches it; ``curl
--range`` and ``ffprobe`` read exact bytes and a real media file while the
torrent is still downloading; a client that goes away mid-stream
leaves no deadline, reader or producer behind; and one that stops reading
keeps the pieces after its position coming first.

Bounded: every wait has a deadline, every child process is killed in
cleanup, the daemon stopped, the libtorrent session closed.  Assertions
are about piece order and bytes downloaded, never about wall-clock time.
"""

from __future__ import annotations

import gc
import io
import json
import os
import socket
import struct
from collections.abc import Generator
from typing import Any

import treq
from twisted.internet import reactor, task
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.protocol import Protocol
from twisted.internet.endpoints import TCP4ClientEndpoint, connectProtocol
from twisted.python.failure import Failure
from twisted.trial.unittest import SkipTest, TestCase
from twisted.web.client import HTTPConnectionPool

from tests.integration import ltutil
from tests.integration.children import Child
from txbittorrent.daemon.service import DaemonConfig, DaemonService
from txbittorrent.reader import FileReader
from txbittorrent.storage.create import create_torrent
from txbittorrent.swarm.config import SwarmConfig

PIECE = 256 * 1024
BIG = 256 * 1024 * 1024
"""The file of the range-near-the-end test: 1024 pieces."""
RATE = 2 * 1024 * 1024
"""The seeder's upload limit to local peers (bytes/s): 256 MiB would take two minutes."""
WAIT = 60.0
"""Seconds any one wait may take before the test fails."""
FFMPEG = "/usr/bin/ffmpeg"
FFPROBE = "/usr/bin/ffprobe"
CURL = "/usr/bin/curl"


def pattern_file(path: str, size: int, seed_block: bytes) -> None:
    """Write ``size`` bytes fast: one random block repeated, each PIECE-sized
    stretch stamped with its offset, so that no two pieces are alike."""
    with open(path, "wb") as f:
        for offset in range(0, size, PIECE):
            f.write(pattern_bytes(offset, min(PIECE, size - offset), seed_block))


def pattern_bytes(offset: int, length: int, seed_block: bytes) -> bytes:
    """The bytes ``pattern_file`` wrote at ``offset`` (any offset and length)."""
    out = bytearray()
    start = offset - offset % PIECE
    while start < offset + length:
        stretch = struct.pack(">Q", start) + seed_block[8:PIECE]
        out += stretch
        start += PIECE
    skip = offset % PIECE
    return bytes(out[skip : skip + length])


class _Reader(Protocol):
    """A raw HTTP client that sends one request and reads until told to stop."""

    def __init__(self, request: bytes, want: int) -> None:
        self.request = request
        self.want = want
        self.received = bytearray()
        self.enough: Deferred[None] = Deferred()
        self.lost: Deferred[None] = Deferred()

    def connectionMade(self) -> None:
        self.transport.write(self.request)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        head, sep, body = bytes(self.received).partition(b"\r\n\r\n")
        if sep and len(body) >= self.want and not self.enough.called:
            self.enough.callback(None)

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        if not self.enough.called:
            self.enough.errback(reason)
        self.lost.callback(None)


class StreamDaemonTests(TestCase):
    """The daemon's /stream route over a download from a rate-limited libtorrent seeder."""

    timeout = 180

    def setUp(self) -> None:
        ltutil.skip_without_libtorrent()
        self.base = os.path.abspath(self.mktemp())
        self.seed_dir = os.path.join(self.base, "seed")
        os.makedirs(self.seed_dir)
        self.block = os.urandom(PIECE)
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)

    # -- fixtures ----------------------------------------------------------------------

    @inlineCallbacks
    def serve(self, source: str, rate: int = RATE) -> Generator[Any, Any, Any]:
        """Seed ``source`` (under seed_dir) from libtorrent, start the daemon,
        add the torrent to it and start it (no peer yet: ``connect``)."""
        raw = create_torrent(source, piece_length=PIECE)
        session = ltutil.make_session(self, enable_outgoing_utp=False, enable_incoming_utp=False)
        ltutil.limit_local_peers(session, upload=rate)
        handle = ltutil.add_torrent(session, raw, self.seed_dir)
        ltutil.wait_until_seeding(handle, WAIT)
        self.lt_session = session
        config = DaemonConfig(
            state_dir=os.path.join(self.base, "state"),
            download_dir=os.path.join(self.base, "downloads"),
            listen=("tcp:0:interface=127.0.0.1",),
        )
        service = DaemonService(config, reactor=reactor, out=io.StringIO())
        service.startService()
        self.addCleanup(lambda: service.stopService() if service.running else None)
        yield service.started
        with open(service.api_path) as f:
            self.api = json.load(f)
        assert service.session is not None
        torrent = service.session.add(raw, config.download_dir)
        yield torrent.start()
        self.service, self.torrent = service, torrent
        self.passed: list[int] = []
        torrent.subscribe(lambda e: self.passed.append(e.piece_index), kinds="piece_passed")
        return torrent

    def connect(self) -> None:
        self.torrent.add_peers([ltutil.endpoint(self.lt_session)])

    def url(self, index: int, name: str) -> str:
        return f"{self.api['url']}/stream/{self.torrent.info_hash.hex()}/{index}/{name}"

    def auth(self) -> bytes:
        return b"Bearer " + self.api["token"].encode()

    @inlineCallbacks
    def wait_until(self, predicate: Any, what: str) -> Generator[Any, Any, None]:
        """Poll ``predicate`` on the reactor (every 50 ms) for at most WAIT seconds."""
        waited = 0.0
        while not predicate():
            if waited >= WAIT:
                self.fail(f"timed out waiting for {what}; passed {len(self.passed)} pieces")
            yield task.deferLater(reactor, 0.05, lambda: None)
            waited += 0.05

    @inlineCallbacks
    def run_child(self, argv: list[str]) -> Generator[Any, Any, tuple[int | None, bytes, bytes]]:
        """Run a child process to its end (killed after WAIT seconds, or in cleanup)."""
        child = Child()
        child.process = reactor.spawnProcess(child, argv[0], argv, env={"PATH": "/usr/bin:/bin"})
        self.addCleanup(child.kill)
        timer = reactor.callLater(WAIT, child.kill)
        code = yield child.ended
        if timer.active():
            timer.cancel()
        return code, bytes(child.out), bytes(child.err)

    @inlineCallbacks
    def open_stream(self, want: int) -> Generator[Any, Any, _Reader]:
        """A raw client GETting the whole of file 0, once it has ``want`` body
        bytes; it is hung up on in cleanup."""
        host = self.service.ports[0].getHost()
        request = (
            f"GET /stream/{self.torrent.info_hash.hex()}/0/data.bin HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{host.port}\r\n"
            f"Authorization: Bearer {self.api['token']}\r\n\r\n"
        ).encode()
        client = _Reader(request, want)
        yield connectProtocol(TCP4ClientEndpoint(reactor, "127.0.0.1", host.port), client)

        def hang_up() -> Any:
            if client.transport is not None and not client.lost.called:
                client.transport.abortConnection()
                return client.lost
            return None

        self.addCleanup(hang_up)
        yield client.enough
        return client

    def assert_still_downloading(self) -> None:
        self.assertFalse(self.torrent.complete, "the torrent finished first: the test proves nothing")

    # -- tests -------------------------------------------------------------------------

    @inlineCallbacks
    def test_range_near_the_end_jumps_the_queue(self) -> Generator[Any, Any, None]:
        """A range in the last MiB of a 256 MiB file, asked once the download is
        under way, is answered with the right bytes while less than an eighth
        of the file is there, its pieces among the first to pass after the
        requests already sent."""
        path = os.path.join(self.seed_dir, "big.bin")
        pattern_file(path, BIG, self.block)
        torrent = yield self.serve(path)
        self.connect()
        yield self.wait_until(lambda: len(self.passed) >= 4, "the download to start")
        first, last = BIG - 1024 * 1024 + 12345, BIG - 1000
        asked_after = len(self.passed)
        response = yield treq.get(
            self.url(0, "big.bin"),
            headers={b"Authorization": [self.auth()], b"Range": [f"bytes={first}-{last}".encode()]},
            pool=self.pool,
        )
        body = yield treq.content(response)
        verified_then = torrent.bitfield.count
        order = list(self.passed)
        self.assertEqual(response.code, 206)
        self.assertEqual(response.headers.getRawHeaders(b"content-range"),
                         [f"bytes {first}-{last}/{BIG}".encode()])
        self.assertEqual(body, pattern_bytes(first, last - first + 1, self.block))
        pieces = torrent.piece_count
        # (Rarest first is random here: one of them may have come before the ask.)
        wanted = set(range(first // PIECE, last // PIECE + 1)) - set(order[:asked_after])
        after = order[asked_after:]
        # Behind at most what was already asked of the seeder when the range
        # came (the pipeline holds queue_time seconds of the peer's rate: 16
        # pieces here), and hash-and-write jobs finishing in any order.  (The
        # downloader cancels most of that pipeline for a piece due now, so
        # they come sooner, 0-9 pieces after the ask in our runs, but what
        # the seeder has read or sent already comes first: not bounded here.)
        in_flight = int(SwarmConfig().queue_time * RATE / PIECE)
        for index in wanted:
            self.assertIn(index, after[: in_flight + len(wanted) + 8],
                          f"piece {index} came late: {after[:60]}")
        # Long before the download reached it: a small share of the file was there.
        self.assertLess(verified_then, pieces // 8, f"{verified_then} of {pieces} pieces")
        self.assert_still_downloading()

    @inlineCallbacks
    def test_curl_range_while_downloading(self) -> Generator[Any, Any, None]:
        """curl --range gets exactly the bytes asked for, mid-file, while the
        torrent is still downloading."""
        if not os.access(CURL, os.X_OK):
            raise SkipTest(f"{CURL} is not installed (Debian package curl)")
        size = 32 * 1024 * 1024
        path = os.path.join(self.seed_dir, "data.bin")
        pattern_file(path, size, self.block)
        yield self.serve(path)
        self.connect()
        first, last = 20 * 1024 * 1024 + 777, 20 * 1024 * 1024 + 777 + 600_000
        code, out, err = yield self.run_child([
            CURL, "--silent", "--show-error", "--fail", "--max-time", str(int(WAIT)),
            "--header", f"Authorization: Bearer {self.api['token']}",
            "--range", f"{first}-{last}", self.url(0, "data.bin"),
        ])
        self.assertEqual(code, 0, err.decode(errors="replace"))
        self.assertEqual(len(out), last - first + 1)
        self.assertEqual(out, pattern_bytes(first, last - first + 1, self.block))
        self.assert_still_downloading()

    @inlineCallbacks
    def test_ffprobe_reads_media_while_downloading(self) -> Generator[Any, Any, None]:
        """ffprobe, through the daemon's URL, finds the duration and codec of an
        MP4 made with ffmpeg's test source (moov at the end: it seeks) and
        counts every frame, while the torrent is still downloading."""
        for tool in (FFMPEG, FFPROBE):
            if not os.access(tool, os.X_OK):
                raise SkipTest(f"{tool} is not installed (Debian package ffmpeg)")
        tree = os.path.join(self.seed_dir, "show")
        os.makedirs(tree)
        clip = os.path.join(tree, "b-clip.mp4")
        code, _, err = yield self.run_child([
            FFMPEG, "-v", "error", "-nostdin", "-f", "lavfi",
            "-i", "testsrc=duration=5:size=320x240:rate=25",
            "-c:v", "mpeg4", "-q:v", "5", clip,
        ])
        self.assertEqual(code, 0, err.decode(errors="replace"))
        for name in ("a-padding.bin", "c-padding.bin"):
            pattern_file(os.path.join(tree, name), 24 * 1024 * 1024, self.block)
        torrent = yield self.serve(tree)
        index = next(f.index for f in torrent.files() if f.path.endswith("b-clip.mp4"))
        self.connect()
        code, out, err = yield self.run_child([
            FFPROBE, "-v", "error",
            "-headers", f"Authorization: Bearer {self.api['token']}\r\n",
            "-count_frames", "-show_entries",
            "format=duration:stream=codec_name,nb_read_frames,width,height",
            "-of", "json", self.url(index, "b-clip.mp4"),
        ])
        self.assertEqual(code, 0, err.decode(errors="replace"))
        probe = json.loads(out)
        self.assertAlmostEqual(float(probe["format"]["duration"]), 5.0, delta=0.1)
        [stream] = probe["streams"]
        self.assertEqual(stream["codec_name"], "mpeg4")
        self.assertEqual((stream["width"], stream["height"]), (320, 240))
        self.assertEqual(int(stream["nb_read_frames"]), 125)
        self.assert_still_downloading()

    @inlineCallbacks
    def test_client_gone_mid_stream(self) -> Generator[Any, Any, None]:
        """A client reading the whole file goes away after its first bytes:
        the reader's deadlines leave the torrent and the picker, its piece
        watch is cancelled, and no reader or body producer stays open."""
        size = 32 * 1024 * 1024
        path = os.path.join(self.seed_dir, "data.bin")
        pattern_file(path, size, self.block)
        torrent = yield self.serve(path)
        bus = torrent.events
        watchers_before = len(bus._subscriptions)
        self.connect()
        client = yield self.open_stream(PIECE + 1)
        head = bytes(client.received).partition(b"\r\n\r\n")[0]
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), head)
        # Mid-stream: the reader's window has deadlines in the picker.
        picker = torrent._run.swarm._downloader.picker
        yield self.wait_until(lambda: torrent._deadlines.merged() and picker.has_deadlines,
                              "the window's deadlines")
        self.assert_still_downloading()
        client.transport.abortConnection()
        yield client.lost

        def clean() -> bool:
            return not torrent._deadlines.merged() and not picker.has_deadlines
        yield self.wait_until(clean, "the deadlines to be dropped")
        self.assertEqual(torrent._deadlines._owners, {})
        self.assertEqual(len(bus._subscriptions), watchers_before, "a piece watch leaked")
        gc.collect()
        # (This torrent's only: another test's leak is not this one's failure.)
        open_readers = [o for o in gc.get_objects()
                        if isinstance(o, FileReader) and o._host is torrent and not o._closed]
        self.assertEqual(open_readers, [])
        producers = [o for o in gc.get_objects()
                     if type(o).__name__ == "_BodyProducer" and o._reader._host is torrent
                     and not o._done]
        self.assertEqual(producers, [])
        self.assert_still_downloading()

    @inlineCallbacks
    def test_slow_client_keeps_its_readahead(self) -> Generator[Any, Any, None]:
        """A client that stops reading for a while (its socket full, so the
        transport pauses the body producer, no read pending) keeps its
        reader's readahead deadlines: the pieces after its position are in
        the picker's deadlines, and come before the rest of the file, while
        it still reads nothing."""
        size = 64 * 1024 * 1024
        rate = 4 * 1024 * 1024
        path = os.path.join(self.seed_dir, "data.bin")
        pattern_file(path, size, self.block)
        torrent = yield self.serve(path, rate=rate)
        self.connect()
        client = yield self.open_stream(PIECE + 1)
        client.transport.socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        client.transport.pauseProducing()  # a player whose buffer is full

        def paused_producer() -> Any:
            producers = [o for o in gc.get_objects()
                         if type(o).__name__ == "_BodyProducer" and o._reader._host is torrent
                         and not o._done]
            return producers[0] if producers and producers[0]._paused else None
        yield self.wait_until(paused_producer, "the transport to pause the body producer")
        producer = paused_producer()
        self.assertIsNone(producer._pending, "a paused producer reads nothing")
        picker = torrent._run.swarm._downloader.picker
        first = producer._reader.position // PIECE
        # What was asked of the seeder before the pause (queue_time of its
        # rate) comes anyway; the 16 pieces past it come first only if the
        # window still has its deadlines (else: rarest first, here random).
        in_flight = int(SwarmConfig().queue_time * rate / PIECE)
        ahead = range(first, min(first + in_flight + 16, torrent.piece_count))
        missing = [i for i in ahead if not torrent.has_piece(i)]
        passed_at_pause = len(self.passed)
        self.assert_still_downloading()
        self.assertTrue(missing, "the window was there already: the test proves nothing")
        self.assertEqual([i for i in missing if not picker.has_deadline(i)], [],
                         "a paused response's window has no deadlines")
        yield self.wait_until(lambda: all(torrent.has_piece(i) for i in ahead),
                              "the pieces after the position")
        came_after = self.passed[passed_at_pause:]
        self.assertTrue(producer._paused and not producer._done, "the client read again")
        # Hash-and-write jobs finish in any order, and the pieces that finish
        # while two jobs run are verified together in the next (up to 8): a
        # few others may slip in, a batch's worth more since batching.
        self.assertLessEqual(len(came_after), len(missing) + 16, came_after)
        self.assert_still_downloading()
