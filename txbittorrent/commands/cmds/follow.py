"""``events``: follow the daemon's event stream until Ctrl-C.

Theory of operation
-------------------
The command reads ``GET /api/events`` (Server-Sent Events; ``?ih=`` for one
torrent) through ``ApiClient.stream`` and emits each event's JSON as the
daemon sent it (the ``EventBus`` schema: ``kind``, ``info_hash``, the
event's fields, ``event_id``).  It remembers the last event id; when the
stream ends or the connection drops it says so on stderr, waits a delay
from ``RECONNECT_DELAYS`` (the next one each failed attempt, the first
again once events flow) and reconnects with ``Last-Event-ID``, so the
daemon replays what was missed (a daemon that came back on another port is
found again through api.json by ``RemoteApi``, which then asks for all of
the new run's events).  An ``event: reset`` (the daemon no longer
keeps those events) is reported on stderr.  An error answer (``ApiError``:
a bad filter, a wrong token) ends the command.  It never ends on its own:
Ctrl-C stops the reactor.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from txbittorrent.commands.cmds import text
from txbittorrent.commands.cmds.client import ApiError
from txbittorrent.commands.cmds.framework import Command, Context, arg, resolve_info_hash
from txbittorrent.commands.cmds.sse import SSEMessage

__all__ = ["COMMANDS", "RECONNECT_DELAYS", "follow_events", "event_line"]

RECONNECT_DELAYS = (0.5, 1.0, 2.0, 5.0, 10.0)
"""Seconds before each reconnection attempt in a row (the last repeats)."""

_SKIP = frozenset({"kind", "info_hash", "event_id", "time"})


async def follow_events(ctx: Context) -> None:
    """The ``events`` command's run (see the module docstring)."""
    from twisted.internet.defer import CancelledError
    from twisted.internet.task import deferLater

    query: dict[str, Any] = {}
    if ctx.args.torrent is not None:
        query["ih"] = await resolve_info_hash(ctx.api, ctx.args.torrent)
    last_id: str | None = None
    attempt = 0

    def received(message: SSEMessage) -> None:
        nonlocal last_id, attempt
        attempt = 0
        if message.id is not None:
            last_id = message.id
        if message.event == "reset":
            ctx.note("the daemon no longer has every event since the last one seen;"
                     " some were missed")
            return
        try:
            value = json.loads(message.data)
        except ValueError:
            ctx.note(f"not JSON in the event stream: {message.data[:80]!r}")
            return
        ctx.emit(value)

    while True:
        try:
            await ctx.api.stream("/api/events", query or None, last_id, received)
            reason = "the daemon ended the stream"
        except (ApiError, CancelledError):
            raise
        except Exception as e:  # the connection dropped or was refused
            reason = _reason(e)
        delay = RECONNECT_DELAYS[min(attempt, len(RECONNECT_DELAYS) - 1)]
        attempt += 1
        ctx.note(f"{reason}; reconnecting in {delay:g} s")
        await deferLater(ctx.clock, delay, lambda: None)


def _reason(error: Exception) -> str:
    reasons = getattr(error, "reasons", None)  # ResponseFailed and friends
    if reasons:
        return "connection lost: " + "; ".join(r.getErrorMessage() for r in reasons)
    return f"connection lost: {error}"


def event_line(event: Any) -> Iterable[str]:
    """One event as one line: id, kind, short info hash, its fields."""
    fields = []
    for key, value in event.items():
        if key in _SKIP:
            continue
        if isinstance(value, list) and len(value) == 2 and key in ("address", "peer"):
            value = f"{value[0]}:{value[1]}"
        fields.append(f"{key}={value}")
    head = f"[{event.get('event_id', '?')}] {event.get('kind')}"
    if event.get("info_hash"):
        head += f" {text.short_hash(event['info_hash'])}"
    yield " ".join([head, *fields])


COMMANDS = (
    Command("events", "follow the daemon's events until Ctrl-C", follow_events, (
        arg("--torrent", metavar="IH", default=None, help="only this torrent's events"),
    ), text_each=event_line),
)
