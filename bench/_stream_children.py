"""The child processes of ``bench.stream``: the seeders and libtorrent's seeks.

Theory of operation
-------------------
Each role is a function of a JSON ``spec`` run in a process of its own, as
``python -m bench.stream --child ROLE --spec JSON``; each writes JSON lines
to its stdout ({"event": "ready", ...} once serving, {"event": "result",
...} once done).  ``txbittorrent serve`` and ``txbittorrent download`` are
not roles: the benchmark runs those commands themselves.

* ``lt-seed``: ``bench.download``'s libtorrent seeder, unlimited (the
  throughput part).
* ``lt-seed-limited``: the same, its uploads to local peers held to
  ``spec["upload_limit"]`` bytes/s (libtorrent spares loopback peers its
  session-wide limits unless their peer class has them), so that the seek
  part finds most of the file not yet downloaded.
* ``lt-seek``: the reference for the seeks: a libtorrent leecher of the
  same torrent from the same (limited) seeder.  Once it has its first
  payload bytes (as ours, whose seeks start then too) it does the run's
  seeks in order: ``set_piece_deadline(piece, 0, alert_when_available)``
  and waits for that piece's ``read_piece_alert``; the time is the alert's
  own timestamp less the moment of the call (``time.time``, as the alert's
  clock), and the bytes of the range are compared with the source file.

Twisted, libtorrent and txbittorrent are imported inside the roles only.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

from bench._common import LOOPBACK
from bench._download_children import (
    LT_PLAIN_OUT,
    START_TIMEOUT,
    _lt_add,
    _lt_session,
    child_lt_seed,
    emit,
)

__all__ = ["CHILDREN"]

POLL_MS = 5
"""How long libtorrent's leecher waits for an alert at a time (ms); the
times are the alerts' own timestamps, so this only bounds the loop."""


def child_lt_seed_limited(spec: dict[str, Any]) -> None:
    """A libtorrent seeder whose uploads to local peers are limited."""
    import libtorrent as lt

    category = lt.alert_category
    session = _lt_session(lt, alert_mask=category.status | category.error)
    local = lt.session.local_peer_class_id
    limits = session.get_peer_class(local)
    limits["upload_limit"] = int(spec["upload_limit"])
    session.set_peer_class(local, limits)
    handle = _lt_add(lt, session, spec["torrent"], spec["dir"])
    deadline = time.monotonic() + START_TIMEOUT
    while not handle.status().is_seeding:
        if time.monotonic() > deadline or handle.status().errc.value():
            emit(event="error", note=f"not seeding: {handle.status().errc.message()}")
            return
        session.wait_for_alert(100)
        session.pop_alerts()
    emit(event="ready", port=session.listen_port())
    while True:
        session.wait_for_alert(1000)
        session.pop_alerts()


def _source_bytes(path: str, offset: int, length: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(length)


def child_lt_seek(spec: dict[str, Any]) -> None:
    """libtorrent's seeks: a deadline per seek, timed to its read_piece_alert.

    ``spec``: torrent, dir, peer, source (the data file), piece_length,
    seeks ([offset, length] pairs), timeout (seconds per seek)."""
    import libtorrent as lt

    category = lt.alert_category
    session = _lt_session(
        lt, alert_mask=category.status | category.error | category.storage, **LT_PLAIN_OUT)
    handle = _lt_add(lt, session, spec["torrent"], spec["dir"])
    deadline = time.monotonic() + START_TIMEOUT
    starting = (lt.torrent_status.states.checking_resume_data,
                lt.torrent_status.states.checking_files)
    while handle.status().state in starting and time.monotonic() < deadline:
        session.wait_for_alert(50)
        session.pop_alerts()
    handle.connect_peer((LOOPBACK, spec["peer"]))
    note = ""
    while handle.status().total_payload_download == 0:
        if time.monotonic() > deadline:
            note = "no payload from the seeder"
            break
        session.wait_for_alert(POLL_MS)
        session.pop_alerts()
    piece_length = int(spec["piece_length"])
    times: list[float | None] = []
    had: list[bool] = []
    verified = not note
    for offset, length in spec["seeks"] if not note else []:
        piece = offset // piece_length
        had.append(bool(handle.have_piece(piece)))
        wall = time.time()
        handle.set_piece_deadline(piece, 0, lt.deadline_flags_t.alert_when_available)
        asked = datetime.datetime.fromtimestamp(wall)  # the alerts' clock: naive local time
        got = None
        end_by = time.monotonic() + float(spec["timeout"])
        while got is None and time.monotonic() < end_by:
            session.wait_for_alert(POLL_MS)
            for alert in session.pop_alerts():
                if isinstance(alert, lt.read_piece_alert) and alert.piece == piece:
                    got = alert
                    break
        if got is None or got.error.value():
            why = "timed out" if got is None else got.error.message()
            note = f"piece {piece}: {why}"
            verified = False
            times.append(None)
            break
        times.append((got.timestamp() - asked).total_seconds())
        begin = offset - piece * piece_length
        if bytes(got.buffer)[begin : begin + length] != _source_bytes(
                spec["source"], offset, length):
            note = f"piece {piece}: the bytes differ from the source"
            verified = False
            break
    status = handle.status()
    emit(event="result", ok=verified, ttfb=times, had=had,
         held=status.total_wanted_done, note=note)
    session.remove_torrent(handle)
    session.pause()
    del session


CHILDREN: dict[str, Callable[[dict[str, Any]], None]] = {
    "lt-seed": child_lt_seed,
    "lt-seed-limited": child_lt_seed_limited,
    "lt-seek": child_lt_seek,
}
