"""The event-stream parser the ``events`` command reads ``/api/events`` with."""

from __future__ import annotations

from twisted.trial.unittest import TestCase

from txbittorrent.commands.cmds.sse import SSEMessage, SSEParser

STREAM = (
    b": connected\n"                      # a comment: dropped
    b"\n"                                 # ends an empty message: nothing dispatched
    b"id: 7\n"                            # the event id
    b"event: progress\n"                  # the event's name
    b'data: {"kind":"progress"}\n'        # its data
    b"\n"                                 # dispatch
    b": heartbeat\n\n"                    # a heartbeat comment
    b"id: 8\nevent: piece_passed\n"
    b"data: line one\ndata: line two\n"   # two data lines join with a newline
    b"\n"
)
EXPECTED = [
    SSEMessage("progress", '{"kind":"progress"}', "7"),
    SSEMessage("piece_passed", "line one\nline two", "8"),
]


class SSEParserTests(TestCase):
    """SSEParser.feed."""

    def test_whole(self) -> None:
        """A stream fed at once yields its messages in order."""
        self.assertEqual(SSEParser().feed(STREAM), EXPECTED)

    def test_byte_at_a_time(self) -> None:
        """The same stream one byte at a time yields the same messages."""
        parser = SSEParser()
        out = []
        for i in range(len(STREAM)):
            out += parser.feed(STREAM[i:i + 1])
        self.assertEqual(out, EXPECTED)

    def test_trailing_bytes_wait(self) -> None:
        """An unfinished message stays buffered until its blank line comes."""
        parser = SSEParser()
        self.assertEqual(parser.feed(STREAM + b"id: 9\ndata: x"), EXPECTED)
        self.assertEqual(parser.feed(b"yz\n\n"), [SSEMessage("message", "xyz", "9")])

    def test_line_endings(self) -> None:
        """CRLF and lone CR end lines too; a CR at the end waits for a LF."""
        parser = SSEParser()
        self.assertEqual(parser.feed(b"data: a\r\n\r"), [])
        self.assertEqual(parser.feed(b"\ndata: b\r\r"), [SSEMessage("message", "a", None)])
        self.assertEqual(parser.feed(b"\n"), [SSEMessage("message", "b", None)])

    def test_id_without_data(self) -> None:
        """A message with an id but no data is not dispatched; the id counts."""
        parser = SSEParser()
        self.assertEqual(parser.feed(b"id: 41\n\n"), [])
        self.assertEqual(parser.last_event_id, "41")
        self.assertEqual(parser.feed(b"data:x\n\n"), [SSEMessage("message", "x", "41")])

    def test_one_space_stripped(self) -> None:
        """Only the first space after the colon is dropped; unknown fields ignored."""
        parser = SSEParser()
        self.assertEqual(parser.feed(b"retry: 10\nfoo: bar\ndata:  two\n\n"),
                         [SSEMessage("message", " two", None)])
