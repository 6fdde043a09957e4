# twisted.web's Request is untyped: its calls are all over here.
# mypy: disable-error-code="no-untyped-call"
"""Request bodies capped before they are read: ``BoundedRequest``.

Theory of operation
-------------------
``twisted.web`` stores a request's whole body (in memory, or a temporary
file past 100 KiB) before any resource sees it, so a cap checked by the
resource comes too late to save the memory or disk.  ``BoundedRequest``
checks while the body arrives: a ``Content-Length`` over ``max_body`` is
refused from the headers alone, a chunked body the moment it passes the
cap; the 413 goes straight to the transport and the rest of the body is
read and dropped, boundedly, before the connection closes.  ``Guard.site()``
makes a subclass per cap.
"""

from __future__ import annotations

import io
import json
from typing import Any

from twisted.web.server import Request

__all__ = ["BoundedRequest"]


class BoundedRequest(Request):
    """A Request that never stores more than ``max_body`` bytes of body.

    A ``Content-Length`` over the cap is answered at once, as soon as the
    headers are parsed and before any of the body is read: 413 with
    ``Connection: close`` is written straight to the transport, and the
    request is never processed.  A body of unknown length (chunked) is
    stored up to the cap and answered the same way the moment it goes over.
    Either way what the client still sends is read and dropped (so closing
    does not reset the connection under the client before it reads the 413)
    for at most ``linger`` seconds and ``drain_budget`` bytes, then the
    connection is closed.  ``body_too_large`` says it happened.  Made per
    cap by ``Guard.site()``."""

    max_body = 1 << 20
    linger = 5.0
    drain_budget = 16 << 20
    body_too_large = False
    answered_early = False
    _received = 0
    _linger_call: Any = None

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self.max_body:
            self._refuse()
            return
        super().gotLength(length)

    def handleContentChunk(self, data: bytes) -> None:
        if self.body_too_large:
            return
        self._received += len(data)
        if self._received > self.max_body:
            self._refuse()
            return
        super().handleContentChunk(data)

    def process(self) -> None:
        if self.answered_early:
            return  # the 413 is out; the rest of the body was dropped
        super().process()

    def _refuse(self) -> None:
        """Answer 413 now and drop whatever the client still sends."""
        self.body_too_large = True
        self.content = io.BytesIO()
        channel = self.channel
        transport = getattr(channel, "transport", None)
        if self.answered_early or channel is None or transport is None:
            return
        self.answered_early = True
        # allHeadersReceived sends "100 Continue" after gotLength if asked:
        # not after a final answer.
        self.requestHeaders.removeHeader(b"expect")
        body = json.dumps({"error": f"request body over {self.max_body} bytes"}).encode()
        transport.write(
            b"HTTP/1.1 413 Content Too Large\r\n"
            b"Content-Type: application/json\r\n"
            b"Cache-Control: no-store\r\n"
            b"Connection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body)
        )
        dropped = [0]

        def drop(data: bytes) -> None:
            dropped[0] += len(data)
            if dropped[0] > self.drain_budget:
                self._close(abort=True)

        channel.dataReceived = drop  # type: ignore[method-assign]  # nothing more is parsed
        channel.persistent = False
        half_close = getattr(transport, "loseWriteConnection", None)
        call_later = getattr(channel, "callLater", None)
        if half_close is None or call_later is None:
            self._close(abort=False)
            return
        half_close()
        self._linger_call = call_later(self.linger, self._close, True)

    def _close(self, abort: bool) -> None:
        call, self._linger_call = self._linger_call, None
        if call is not None and call.active():
            call.cancel()
        transport = getattr(self.channel, "transport", None)
        if transport is None:
            return
        if abort:
            transport.abortConnection()
        else:
            transport.loseConnection()

    def connectionLost(self, reason: Any) -> None:
        call, self._linger_call = self._linger_call, None
        if call is not None and call.active():
            call.cancel()
        super().connectionLost(reason)
