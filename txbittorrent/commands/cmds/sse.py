"""Reading a ``text/event-stream`` (the daemon's ``/api/events``): ``SSEParser``.

Theory of operation
-------------------
Sans-I/O, after the WHATWG "event stream interpretation": ``feed(data)``
takes bytes as they arrive, split anywhere (mid-line, mid-UTF-8 sequence),
and returns the messages the bytes completed.  A message ends at a blank
line; ``id:``, ``event:`` and ``data:`` fields build it (several ``data:``
lines join with newlines); a line starting with ``:`` is a comment (the
daemon's heartbeats) and is dropped; one space after the colon is not part
of the value.  A message with no ``data:`` line is not dispatched, but its
``id:`` still becomes ``last_event_id``, as the spec says.  Bytes after the
last blank line stay buffered until more arrive.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["SSEMessage", "SSEParser"]


@dataclass(frozen=True, slots=True)
class SSEMessage:
    """One dispatched message: its ``event`` name ("message" when none was
    given), its ``data`` and the stream's last event id when it came."""

    event: str
    data: str
    id: str | None


class SSEParser:
    """Incremental event-stream parser (see the module docstring)."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event = ""
        self._data: list[str] = []
        self.last_event_id: str | None = None

    def feed(self, data: bytes) -> list[SSEMessage]:
        """The messages completed by ``data``."""
        self._buffer += data
        out: list[SSEMessage] = []
        while True:
            cut = _line_end(self._buffer)
            if cut is None:
                return out
            end, skip = cut
            raw, self._buffer = self._buffer[:end], self._buffer[end + skip:]
            message = self._line(raw.decode("utf-8", "replace"))
            if message is not None:
                out.append(message)

    def _line(self, line: str) -> SSEMessage | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id" and "\0" not in value:
            self.last_event_id = value
        return None  # "retry" and unknown fields are ignored

    def _dispatch(self) -> SSEMessage | None:
        data, event = self._data, self._event
        self._data, self._event = [], ""
        if not data:
            return None
        return SSEMessage(event or "message", "\n".join(data), self.last_event_id)


def _line_end(buffer: bytes) -> tuple[int, int] | None:
    """Where the first complete line ends and how long its terminator is
    (CRLF, LF or CR; a CR at the very end may still become CRLF)."""
    lf, cr = buffer.find(b"\n"), buffer.find(b"\r")
    if cr == -1 and lf == -1:
        return None
    if cr == -1 or (lf != -1 and lf < cr):
        return lf, 1
    if cr + 1 == len(buffer):
        return None  # wait: "\r" then perhaps "\n"
    return (cr, 2) if buffer[cr + 1:cr + 2] == b"\n" else (cr, 1)
