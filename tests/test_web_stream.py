"""Streaming a torrent's file over HTTP: the Range parser, then
FileStreamResource through real sockets on 127.0.0.1 (treq), over a real
complete Torrent and over a fake one whose pieces the test passes."""

from __future__ import annotations

import os
from collections.abc import Callable, Generator
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred, FirstError, fail, inlineCallbacks, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase, TestCase
from twisted.web.server import NOT_DONE_YET
from twisted.web.test.requesthelper import DummyRequest

from tests.webcase import make_pool, serve
from txbittorrent.accessors import FileInfo
from txbittorrent.core.layout import Layout
from txbittorrent.errors import LocalProtocolError
from txbittorrent.reader import FileReader, ReaderConfig
from txbittorrent.storage.create import create_torrent
from txbittorrent.testing import make_files
from txbittorrent.torrent import Torrent
from txbittorrent.web.ranges import ByteRange, if_range_allows, parse_range
from txbittorrent.web.stream import (
    FileStreamResource,
    content_disposition,
    content_type_for,
)

R = ByteRange

# (Range header, size, expected parse)
RANGE_TABLE: list[tuple[Any, int, Any]] = [
    (None, 100, None),
    ("bytes=0-9", 100, (R(0, 9),)),
    ("bytes=0-0", 100, (R(0, 0),)),
    ("bytes=90-200", 100, (R(90, 99),)),
    ("bytes=99-", 100, (R(99, 99),)),
    ("bytes=10-", 100, (R(10, 99),)),
    ("bytes=-10", 100, (R(90, 99),)),
    ("bytes=-1000", 100, (R(0, 99),)),
    ("bytes=-0", 100, ()),
    ("bytes=100-", 100, ()),
    ("bytes=100-200", 100, ()),
    ("bytes=0-", 0, ()),
    ("bytes=-5", 0, ()),
    ("BYTES = 1-2", 100, (R(1, 2),)),
    ("bytes= 1-2 , 5-6", 100, (R(1, 2), R(5, 6))),
    ("bytes=1-2,,5-6,", 100, (R(1, 2), R(5, 6))),
    ("bytes=200-300,1-2", 100, (R(1, 2),)),
    ("bytes=5-6,-3", 100, (R(5, 6), R(97, 99))),
    (b"bytes=3-4", 100, (R(3, 4),)),
    ("bytes=0-99999999999999999999999999999", 100, (R(0, 99),)),
    ("bytes=99999999999999999999999999999-", 100, ()),
    # malformed: ignored
    ("bytes=5-4", 100, None),
    ("bytes=-", 100, None),
    ("bytes=", 100, None),
    ("bytes=,", 100, None),
    ("bytes=a-b", 100, None),
    ("bytes=1-2-3", 100, None),
    ("bytes=+1-2", 100, None),
    ("bytes=1 -2", 100, None),
    ("bytes=1_0-20", 100, None),
    ("bytes=\u0661-2", 100, None),
    (b"bytes=\xff-2", 100, None),
    ("bytes 0-9", 100, None),
    ("items=0-9", 100, None),
    ("0-9", 100, None),
    ("", 100, None),
    ("bytes=" + ",".join(["0-1"] * 17), 100, None),
]


class RangeParserTests(SynchronousTestCase):
    """parse_range and if_range_allows, on a table."""

    def test_table(self) -> None:
        """Every row of the table parses as expected."""
        for header, size, expected in RANGE_TABLE:
            self.assertEqual(parse_range(header, size), expected, header)

    def test_content_range(self) -> None:
        """A range's Content-Range and length count inclusively."""
        self.assertEqual(R(0, 9).content_range(100), "bytes 0-9/100")
        self.assertEqual(R(5, 5).length, 1)

    def test_if_range(self) -> None:
        """Only our ETag, compared strongly, lets the Range apply."""
        self.assertTrue(if_range_allows(None, '"x"'))
        self.assertTrue(if_range_allows(b'"x"', '"x"'))
        self.assertTrue(if_range_allows(' "x" ', '"x"'))
        self.assertFalse(if_range_allows('"y"', '"x"'))
        self.assertFalse(if_range_allows('W/"x"', '"x"'))
        self.assertFalse(if_range_allows("Tue, 15 Nov 1994 08:12:31 GMT", '"x"'))


class HeaderTests(SynchronousTestCase):
    """Content-Type and Content-Disposition of a file name."""

    def test_content_types(self) -> None:
        """The overrides, the standard table, and octet-stream otherwise."""
        cases = {
            "a.ts": "video/mp2t", "a.MKV": "video/x-matroska", "a.srt": "application/x-subrip",
            "a.vtt": "text/vtt", "a.m3u8": "application/vnd.apple.mpegurl",
            "a.mp4": "video/mp4", "a.png": "image/png", "a.txt": "text/plain",
            "a.unknownext": "application/octet-stream", "noext": "application/octet-stream",
            "a.tar.gz": "application/octet-stream",
        }
        for name, expected in cases.items():
            self.assertEqual(content_type_for(name), expected, name)

    def test_disposition(self) -> None:
        """inline, an ASCII fallback and the UTF-8 name (RFC 6266)."""
        self.assertEqual(
            content_disposition('é "x".mkv'),
            "inline; filename=\"_ _x_.mkv\"; filename*=UTF-8''%C3%A9%20%22x%22.mkv",
        )
        self.assertEqual(
            content_disposition("a\r\nSet-Cookie: x"),
            "inline; filename=\"a__Set-Cookie: x\"; filename*=UTF-8''a%0D%0ASet-Cookie%3A%20x",
        )


PIECE = 32 * 1024
BIG = 3 * 1024 * 1024 + 777


class HTTPCase(TestCase):
    """A Site on 127.0.0.1 and a non-persistent treq pool, both cleaned up."""

    timeout = 60

    def serve(self, resource: FileStreamResource) -> str:
        base = serve(self, resource, "/")
        self.pool = make_pool(self)
        return base

    @inlineCallbacks
    def fetch(self, url: str, method: str = "GET", **headers: str) -> Generator[Any, Any, Any]:
        response = yield treq.request(
            method, url, headers={k.replace("_", "-"): v for k, v in headers.items()},
            pool=self.pool,
        )
        body = yield treq.content(response)
        return response, body


def header(response: Any, name: str) -> str | None:
    value = response.headers.getRawHeaders(name)
    return str(value[0]) if value else None


class StreamTests(HTTPCase):
    """FileStreamResource over a real Torrent whose data is complete on disk."""

    @inlineCallbacks
    def setUp(self) -> Generator[Any, Any, None]:
        root = os.path.abspath(self.mktemp())
        self.files = make_files(
            os.path.join(root, "t"),
            {"movie.mkv": BIG, "sub.srt": 1000, "x.ts": 10, "empty.bin": b""},
            seed=3,
        )
        raw = create_torrent(os.path.join(root, "t"), piece_length=PIECE)
        self.torrent = Torrent(raw, basedir=root, reactor=reactor, listen_interfaces=["127.0.0.1"])
        self.addCleanup(self.torrent.close)
        yield self.torrent.start()
        yield self.torrent.when_complete()
        self.index = {f.path.split(os.sep)[-1]: f.index for f in self.torrent.files()}
        self.etag = f'"{self.torrent.infohash.hex()}-{self.index["movie.mkv"]}"'

    def url(self, name: str, **kwargs: Any) -> str:
        return self.serve(FileStreamResource(self.torrent, self.index[name], **kwargs))

    @inlineCallbacks
    def test_range_table(self) -> Generator[Any, Any, None]:
        """Each Range is answered with the file's bytes: 200, 206 or 416."""
        url = self.url("sub.srt")
        data = self.files["sub.srt"]
        table = [
            ("bytes=0-9", 206, data[0:10], "bytes 0-9/1000"),
            ("bytes=990-", 206, data[990:], "bytes 990-999/1000"),
            ("bytes=-7", 206, data[-7:], "bytes 993-999/1000"),
            ("bytes=500-5000", 206, data[500:], "bytes 500-999/1000"),
            ("bytes=-5000", 206, data, "bytes 0-999/1000"),
            ("bytes=1000-", 416, b"", "bytes */1000"),
            ("bytes=-0", 416, b"", "bytes */1000"),
            ("bytes=9-3", 200, data, None),
            ("bytes=garbage", 200, data, None),
            ("pages=1-2", 200, data, None),
            ("bytes=3000-4000,10-19", 206, data[10:20], "bytes 10-19/1000"),
        ]
        for value, code, body, content_range in table:
            response, got = yield self.fetch(url, Range=value)
            self.assertEqual(response.code, code, value)
            self.assertEqual(got, body, value)
            self.assertEqual(header(response, "Content-Range"), content_range, value)
            self.assertEqual(header(response, "Accept-Ranges"), "bytes")
            if code != 416:
                self.assertEqual(header(response, "Content-Type"), "application/x-subrip")
                self.assertEqual(response.length, len(body))

    @inlineCallbacks
    def test_multipart(self) -> Generator[Any, Any, None]:
        """Several ranges come as multipart/byteranges, as static.File does."""
        url = self.url("sub.srt", boundary=lambda: b"SEP")
        data = self.files["sub.srt"]
        response, got = yield self.fetch(url, Range="bytes=0-2,-3")
        self.assertEqual(response.code, 206)
        self.assertEqual(header(response, "Content-Type"), "multipart/byteranges; boundary=SEP")
        self.assertEqual(
            got,
            b"--SEP\r\nContent-Type: application/x-subrip\r\nContent-Range: bytes 0-2/1000\r\n\r\n"
            + data[:3]
            + b"\r\n--SEP\r\nContent-Type: application/x-subrip\r\n"
            b"Content-Range: bytes 997-999/1000\r\n\r\n" + data[-3:] + b"\r\n--SEP--\r\n",
        )
        self.assertEqual(response.length, len(got))

    @inlineCallbacks
    def test_whole_big_file(self) -> Generator[Any, Any, None]:
        """A file of many chunks and pieces streams whole and equals the file;
        the headers describe it."""
        url = self.url("movie.mkv", chunk_size=64 * 1024)
        response, got = yield self.fetch(url)
        self.assertEqual(response.code, 200)
        self.assertEqual(len(got), BIG)
        self.assertTrue(got == self.files["movie.mkv"])
        self.assertEqual(header(response, "Content-Type"), "video/x-matroska")
        self.assertEqual(header(response, "ETag"), self.etag)
        self.assertEqual(
            header(response, "Content-Disposition"),
            "inline; filename=\"movie.mkv\"; filename*=UTF-8''movie.mkv",
        )

    @inlineCallbacks
    def test_big_range_across_pieces(self) -> Generator[Any, Any, None]:
        """A range across piece and chunk boundaries is the file's bytes."""
        url = self.url("movie.mkv", chunk_size=50_000)
        response, got = yield self.fetch(url, Range="bytes=12345-1234567")
        self.assertEqual(response.code, 206)
        self.assertTrue(got == self.files["movie.mkv"][12345:1234568])

    @inlineCallbacks
    def test_head(self) -> Generator[Any, Any, None]:
        """HEAD answers the headers of GET without a body."""
        url = self.url("movie.mkv")
        response, got = yield self.fetch(url, "HEAD")
        self.assertEqual((response.code, got), (200, b""))
        self.assertEqual(header(response, "Content-Length"), str(BIG))
        self.assertEqual(header(response, "ETag"), self.etag)
        response, got = yield self.fetch(url, "HEAD", Range="bytes=-10")
        self.assertEqual((response.code, got), (206, b""))
        self.assertEqual(header(response, "Content-Range"), f"bytes {BIG - 10}-{BIG - 1}/{BIG}")
        self.assertEqual(header(response, "Content-Length"), "10")

    @inlineCallbacks
    def test_if_range(self) -> Generator[Any, Any, None]:
        """If-Range with our ETag honours the Range; another tag or a date gets 200 whole."""
        url = self.url("movie.mkv")
        data = self.files["movie.mkv"]
        response, got = yield self.fetch(url, Range="bytes=0-3", If_Range=self.etag)
        self.assertEqual((response.code, got), (206, data[:4]))
        for other in ['"other"', "W/" + self.etag, "Tue, 15 Nov 1994 08:12:31 GMT"]:
            response, got = yield self.fetch(url, "HEAD", Range="bytes=0-3", If_Range=other)
            self.assertEqual(response.code, 200, other)
            self.assertEqual(header(response, "Content-Length"), str(BIG))

    @inlineCallbacks
    def test_small_and_empty(self) -> Generator[Any, Any, None]:
        """A .ts file is video/mp2t; an empty file is 200 with no body and any
        range of it 416; content_type= overrides the guess."""
        response, got = yield self.fetch(self.url("x.ts"))
        self.assertEqual((response.code, got), (200, self.files["x.ts"]))
        self.assertEqual(header(response, "Content-Type"), "video/mp2t")
        url = self.url("empty.bin", content_type="text/plain")
        response, got = yield self.fetch(url)
        self.assertEqual((response.code, got), (200, b""))
        self.assertEqual(header(response, "Content-Type"), "text/plain")
        response, got = yield self.fetch(url, Range="bytes=0-")
        self.assertEqual(response.code, 416)
        self.assertEqual(header(response, "Content-Range"), "bytes */0")

    @inlineCallbacks
    def test_unknown_file(self) -> Generator[Any, Any, None]:
        """A file index not in the torrent is 404."""
        response, _ = yield self.fetch(self.serve(FileStreamResource(self.torrent, 99)))
        self.assertEqual(response.code, 404)


# -- a fake torrent: pieces in memory, passed by the test ------------------------------

FAKE_PIECE = 100
FAKE_LAYOUT = Layout([250, 430], FAKE_PIECE)
FAKE_DATA = bytes(i % 251 for i in range(680))


class ClosingReader(FileReader):
    """A FileReader that tells when it is closed."""

    closed: Deferred[None]

    def close(self) -> None:
        super().close()
        if not self.closed.called:
            self.closed.callback(None)


class FakeTorrent:
    """What FileStreamResource and a FileReader need of a torrent."""

    has_metadata = True
    infohash = b"\x01" * 20

    def __init__(self) -> None:
        self.layout = FAKE_LAYOUT
        self.have: set[int] = set()
        self.clock = Clock()
        self.deadlines: dict[object, dict[int, float]] = {}
        self.deadlines_set: Deferred[None] = Deferred()
        self.watchers: list[Callable[[int], object]] = []
        self.readers: list[ClosingReader] = []

    def files(self) -> list[FileInfo]:
        return [FileInfo(0, "t/a.bin", 250, 1), FileInfo(1, "t/b.vtt", 430, 1)]

    def open(self, file_index: int, config: ReaderConfig | None = None) -> FileReader:
        reader = ClosingReader(self, file_index, config)  # type: ignore[arg-type]
        reader.closed = Deferred()
        self.readers.append(reader)
        return reader

    def has_piece(self, index: int) -> bool:
        return index in self.have

    def read_piece_range(self, index: int, begin: int, length: int) -> Deferred[bytes]:
        assert index in self.have, f"read of piece {index}, not verified"
        start = index * FAKE_PIECE + begin
        return succeed(FAKE_DATA[start : start + length])

    def watch_pieces(self, callback: Callable[[int], object]) -> Callable[[], None]:
        self.watchers.append(callback)
        return lambda: self.watchers.remove(callback)

    def set_deadlines(self, owner: object, deadlines: dict[int, float]) -> None:
        if deadlines:
            self.deadlines[owner] = dict(deadlines)
            if not self.deadlines_set.called:
                self.deadlines_set.callback(None)
        else:
            self.deadlines.pop(owner, None)

    def seconds(self) -> float:
        return self.clock.seconds()

    def passed(self, index: int) -> None:
        self.have.add(index)
        for watcher in list(self.watchers):
            watcher(index)


class WaitingStreamTests(HTTPCase):
    """Reads wait for their pieces; a client that leaves closes the reader."""

    @inlineCallbacks
    def test_range_waits_for_piece(self) -> Generator[Any, Any, None]:
        """A Range over a piece not yet verified waits (its piece has a
        deadline), then answers once the piece passes."""
        torrent = FakeTorrent()
        url = self.serve(FileStreamResource(torrent, 1, chunk_size=64, readahead=200))
        d = self.fetch(url, Range="bytes=60-139")  # torrent bytes 310-389: all in piece 3
        yield torrent.deadlines_set
        self.assertNoResult(d)
        (reader,) = torrent.readers
        self.assertIn(3, torrent.deadlines[reader])
        torrent.passed(3)
        response, got = yield d
        self.assertEqual(response.code, 206)
        self.assertEqual(got, FAKE_DATA[310:390])
        self.assertEqual(header(response, "Content-Type"), "text/vtt")
        yield reader.closed
        self.assertEqual(torrent.deadlines, {})
        self.assertEqual(torrent.watchers, [])

    @inlineCallbacks
    def test_disconnect_closes_reader(self) -> Generator[Any, Any, None]:
        """A client that goes away mid-stream has its pending read cancelled
        and its reader closed: the deadlines are dropped."""
        torrent = FakeTorrent()
        torrent.have = {2}
        url = self.serve(FileStreamResource(torrent, 1, chunk_size=40, readahead=300))
        response = yield treq.get(url, pool=self.pool)  # headers out, first chunk written
        self.assertEqual(response.code, 200)
        (reader,) = torrent.readers
        self.assertTrue(torrent.deadlines[reader])
        response.original.deliverBody(_Dropper())
        yield reader.closed
        self.assertEqual(torrent.deadlines, {})
        self.assertEqual(torrent.watchers, [])


class _Dropper:
    """A body protocol that drops the connection as soon as it hears bytes."""

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport

    def dataReceived(self, data: bytes) -> None:
        self.transport.stopProducing()

    def connectionLost(self, reason: Any) -> None:
        pass


class PushingRequest(DummyRequest):
    """A DummyRequest that holds a push producer and pauses it after every
    write, as a transport with a full buffer would."""

    def __init__(self, headers: dict[bytes, bytes]) -> None:
        super().__init__([b""])
        for name, value in headers.items():
            self.requestHeaders.setRawHeaders(name, [value])
        self.producer: Any = None
        self.aborted = 0
        self.transport = self

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        assert streaming
        self.producer = producer

    def unregisterProducer(self) -> None:
        self.producer = None

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.producer is not None:
            self.producer.pauseProducing()

    def abortConnection(self) -> None:
        self.aborted += 1


class ProducerTests(SynchronousTestCase):
    """The body producer respects backpressure and aborts on a failed read."""

    def test_backpressure(self) -> None:
        """Paused after each write, the producer writes one chunk per resume
        and reads nothing while paused."""
        torrent = FakeTorrent()
        torrent.have = set(range(7))
        request = PushingRequest({b"range": b"bytes=10-209"})
        result = FileStreamResource(torrent, 1, chunk_size=64).render(request)
        self.assertEqual(result, NOT_DONE_YET)
        self.assertEqual(request.responseCode, 206)
        self.assertEqual([len(w) for w in request.written], [64])
        resumes = 0
        while request.producer is not None:
            request.producer.resumeProducing()
            resumes += 1
        self.assertEqual([len(w) for w in request.written], [64, 64, 64, 8])
        self.assertEqual(resumes, 3)
        self.assertEqual(b"".join(request.written), FAKE_DATA[260:460])
        self.assertEqual(request.finished, 1)
        self.assertTrue(self.successResultOf(torrent.readers[0].closed) is None)

    def test_paused_response_keeps_readahead(self) -> None:
        """A response paused by backpressure, with no read pending, keeps the
        deadlines of the window from its next offset; they go when it ends."""
        torrent = FakeTorrent()
        torrent.have = {2, 3}
        request = PushingRequest({})
        FileStreamResource(torrent, 1, chunk_size=64, readahead=200).render(request)
        self.assertEqual([len(w) for w in request.written], [64])
        (reader,) = torrent.readers
        # The next offset is 64 (torrent byte 314): pieces 3-5, 4 and 5 missing.
        self.assertEqual(sorted(torrent.deadlines[reader]), [4, 5])
        torrent.clock.advance(60)
        self.assertEqual(sorted(torrent.deadlines[reader]), [4, 5], "paused for a minute")
        for index in (4, 5, 6):
            torrent.passed(index)
        while request.producer is not None:
            request.producer.resumeProducing()
        self.assertEqual(b"".join(request.written), FAKE_DATA[250:680])
        self.assertEqual(torrent.deadlines, {})

    def test_first_chunk_stops_at_piece_boundary(self) -> None:
        """A range starting just before a piece boundary gets its first bytes
        once the piece under it is verified, without waiting for the next;
        each later chunk waits for one piece at most."""
        torrent = FakeTorrent()
        torrent.have = {3}
        request = PushingRequest({b"range": b"bytes=60-259"})  # torrent 310-509: pieces 3-5
        FileStreamResource(torrent, 1, chunk_size=200).render(request)
        self.assertEqual(request.written, [FAKE_DATA[310:400]])
        request.producer.resumeProducing()  # waits for piece 4 alone
        self.assertEqual(len(request.written), 1)
        torrent.passed(4)
        self.assertEqual(request.written[1:], [FAKE_DATA[400:500]])
        request.producer.resumeProducing()
        torrent.passed(5)
        self.assertEqual(request.written[2:], [FAKE_DATA[500:510]])
        self.assertEqual(request.finished, 1)

    def test_failed_read_aborts(self) -> None:
        """A read that fails once the headers are out aborts the connection,
        closes the reader and writes no traceback."""
        torrent = FakeTorrent()
        torrent.have = set(range(7))
        fail_piece = 4

        def read_piece_range(index: int, begin: int, length: int) -> Deferred[bytes]:
            if index == fail_piece:
                return fail(OSError("disk on fire"))
            return FakeTorrent.read_piece_range(torrent, index, begin, length)

        torrent.read_piece_range = read_piece_range  # type: ignore[method-assign]
        request = PushingRequest({})
        FileStreamResource(torrent, 1, chunk_size=100).render(request)
        request.producer.resumeProducing()
        self.assertEqual(request.aborted, 1)
        self.assertEqual(request.finished, 0)
        self.assertEqual(b"".join(request.written), FAKE_DATA[250:350])
        self.successResultOf(torrent.readers[0].closed)
        self.assertEqual(len(self.flushLoggedErrors(FirstError)), 1)

    def test_head_reads_nothing(self) -> None:
        """HEAD answers the length and opens no reader."""
        torrent = FakeTorrent()
        request = PushingRequest({})
        request.method = b"HEAD"
        self.assertEqual(FileStreamResource(torrent, 0).render(request), b"")
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-length"), [b"250"])
        self.assertEqual(torrent.readers, [])

    def test_no_metadata_and_skipped(self) -> None:
        """Without metadata: 503; a skipped file (open refuses it): 409."""
        torrent = FakeTorrent()
        torrent.has_metadata = False  # type: ignore[misc]
        request = PushingRequest({})
        FileStreamResource(torrent, 0).render(request)
        self.assertEqual(request.responseCode, 503)

        def refuse(file_index: int, config: ReaderConfig | None = None) -> FileReader:
            raise LocalProtocolError("file 0 is skipped (priority 0)")

        torrent = FakeTorrent()
        torrent.open = refuse  # type: ignore[method-assign]
        request = PushingRequest({b"range": b"bytes=0-1"})
        FileStreamResource(torrent, 0).render(request)
        self.assertEqual(request.responseCode, 409)
        self.assertEqual(request.responseHeaders.getRawHeaders(b"content-range"), None)
