"""The write side of a peer link: its queue, upload pacing and backpressure.

Theory of operation
-------------------
``LinkOutput`` is a base class of ``protocol.PeerProtocol``, not a separate
object, so that a block's way to the transport costs no extra call.  It owns
the link's output queue and its producer state; the protocol owns the
connection (``_transport``, ``_clock``, ``_closing``, the throttles).

Writing and memory: the link registers itself with its transport as a
streaming producer, so Twisted calls ``pauseProducing`` when the transport's
buffer passes its ``bufferSize`` (``LinkConfig.read_size``) and
``resumeProducing`` when it has drained.  While paused, blocks wait in the
link's own queue (control messages are still written, unless blocks are
queued: order is never changed), and so do blocks held back by the upload
limits.  ``pending_write_bytes`` is the queue's size, plus, while paused, the
transport's ``bufferSize`` and what was written since the pause (an estimate
of the transport's buffer, within one message); when not paused the
transport holds less than its ``bufferSize``, which is not counted.  The
swarm reads no more blocks from disk for a link whose
``pending_write_bytes`` is high.

Drain notification: whenever the queue is empty and the transport takes
bytes again (``resumeProducing`` found nothing queued, or a flush, after a
resume or a rate-limit delay, emptied the queue), the link calls its
``_drained`` hook once, which the protocol turns into
``host.peer_writable(link)``.  ``pending_write_bytes`` only falls by a
flush or a resume, and both end there while anything is still queued, so a
host that stopped at a high mark always hears of it: it needs no timer.  The
fast path (no limit, not paused) never reaches the hook.

Rate limits (``throttle.Throttle``, shared): ``send_block`` charges the
session's and the host's upload throttles and, when they ask for a delay,
queues the block until then; every later message queues behind it.
``send_blocks`` writes several blocks as one joined ``bytes`` when no limit
is in force and nothing is queued, and otherwise goes block by block.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet.interfaces import IPushProducer
from zope.interface import implementer  # type: ignore[import-untyped]

from txbittorrent.peer.throttle import Throttle, longest_delay

__all__ = ["LinkOutput", "TRANSPORT_BUFFER_SIZE"]

TRANSPORT_BUFFER_SIZE = 64 * 1024
"""What a transport buffers before it pauses its producer, when it does not
say (``FileDescriptor.bufferSize``)."""


_CLOCK_SLACK = 1e-9
"""A queued block due within this many seconds is due now (float rounding in
``callLater`` must not make a flush reschedule itself for no time at all)."""


@implementer(IPushProducer)
class LinkOutput:
    """A link's output queue, upload pacing and producer methods (see the
    module docstring).  The subclass calls ``_init_output`` first and sets
    the connection attributes declared here."""

    # Set by the subclass.
    _transport: Any
    _clock: Any
    _closing: bool
    _upload_throttles: tuple[Throttle, ...]

    def _init_output(self) -> None:
        self.bytes_sent = 0
        """Raw bytes handed to the transport."""
        # Output: (ready_at, first, second or None); ready_at 0.0 = as soon as its turn comes.
        self._queue: deque[tuple[float, bytes, bytes | None]] = deque()
        self._queued_bytes = 0
        self._flush_call: Any = None
        self._write_paused = False
        self._sent_at_pause = 0
        self._stalled_since: float | None = None
        """When the write-stall timer (``check_timers``) saw us paused first."""

    @property
    def pending_write_bytes(self) -> int:
        """Bytes given to ``send``/``send_block`` and not yet handed to the
        kernel: exact for what the link queues, estimated for the transport
        (see the module docstring).  0 once the link is closing."""
        if self._closing:
            return 0
        pending = self._queued_bytes
        if self._write_paused:
            transport_buffer = getattr(self._transport, "bufferSize", TRANSPORT_BUFFER_SIZE)
            pending += transport_buffer + self.bytes_sent - self._sent_at_pause
        return pending

    def send(self, data: bytes) -> None:
        """Write bytes a ``PeerSession`` method returned (behind any queued
        block).  Ignored once the link is closing."""
        if self._closing or not data:
            return
        if self._queue:
            self._queue.append((0.0, data, None))
            self._queued_bytes += len(data)
            return
        self._transport.write(data)
        self.bytes_sent += len(data)

    def send_block(self, header: bytes, block: bytes | memoryview) -> None:
        """Write a PIECE header and its block without joining them, after the
        upload limits allow it; pass ``bytes`` (a ``memoryview`` is copied,
        as transports take only bytes).  Ignored once the link is closing."""
        if self._closing:
            return
        if type(block) is not bytes:
            block = bytes(block)
        size = len(header) + len(block)
        delay = longest_delay(self._upload_throttles, size) if self._upload_throttles else 0.0
        queue = self._queue
        if delay > 0.0 or queue or self._write_paused:
            ready_at = self._clock.seconds() + delay if delay > 0.0 else 0.0
            queue.append((ready_at, header, block))
            self._queued_bytes += size
            if len(queue) == 1 and not self._write_paused:
                self._flush_call = self._clock.callLater(delay, self._flush)
            return
        self._transport.writeSequence((header, block))
        self.bytes_sent += size

    def send_blocks(self, parts: list[bytes | memoryview]) -> None:
        """Write PIECE messages, ``parts`` alternating headers and blocks.
        With no upload limit in force and nothing queued, they go to the
        transport as one ``bytes``: one copy of each block, and Twisted, which
        joins what it is given before each send, keeps a lone buffer as it
        is.  Otherwise each pair goes through ``send_block`` (its pacing)."""
        if self._closing or not parts:
            return
        if self._queue or self._write_paused or any(t.limited for t in self._upload_throttles):
            for i in range(0, len(parts), 2):
                self.send_block(parts[i], parts[i + 1])  # type: ignore[arg-type]
            return
        data = b"".join(parts)
        self._transport.write(data)
        self.bytes_sent += len(data)

    # -- IPushProducer: the transport's buffer is full / drained -----------------

    def pauseProducing(self) -> None:
        if not self._write_paused:
            self._write_paused = True
            self._sent_at_pause = self.bytes_sent

    def resumeProducing(self) -> None:
        if not self._write_paused:
            return
        self._write_paused = False
        self._stalled_since = None
        if self._closing:
            return
        if self._queue:
            self._flush()
        else:
            self._drained()

    def stopProducing(self) -> None:
        self._drop_output()

    # -- internals -------------------------------------------------------------------

    def _flush(self) -> None:
        """Write queued messages whose turn and time have come, until the
        queue is empty, the transport pauses us, or a block must wait."""
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()
        queue = self._queue
        transport = self._transport
        now = self._clock.seconds()
        while queue and not self._write_paused and not self._closing:
            ready_at, first, second = queue[0]
            if ready_at > now + _CLOCK_SLACK:
                self._flush_call = self._clock.callLater(ready_at - now, self._flush)
                return
            queue.popleft()
            if second is None:
                size = len(first)
                transport.write(first)
            else:
                size = len(first) + len(second)
                transport.writeSequence((first, second))
            self._queued_bytes -= size
            self.bytes_sent += size
        if not queue and not self._closing:
            self._drained()

    def _drained(self) -> None:
        """Hook: the queue just emptied and the transport takes bytes (see
        the module docstring); the protocol tells its host."""

    def _drop_output(self) -> None:
        self._queue.clear()
        self._queued_bytes = 0
        call, self._flush_call = self._flush_call, None
        if call is not None and call.active():
            call.cancel()
