"""The child processes of ``bench.magnet``: the seeder and the two magnet leechers.

Theory of operation
-------------------
Each role is a function of a JSON ``spec`` run in a process of its own, as
``python -m bench.magnet --child ROLE --spec JSON``.  The seeder is
``bench.download``'s libtorrent seeder (``lt-seed``: TCP only, local only,
encryption accepted but not required), so both benchmarks serve alike.

A magnet leecher first starts itself up: its interpreter, its libraries
and, for libtorrent, its session (ours makes its session when its torrent
starts: a listening socket, inside the timed window).  Then it is "given
the magnet": the clock starts, the leecher adds a torrent made from the
magnet link alone (the info hash, no tracker, no peer) and is told the
seeder's address (ours: ``Torrent(magnet)``, ``start()``, ``add_peers``;
libtorrent: ``parse_magnet_uri``, ``add_torrent``, ``connect_peer``).  It
reports, in seconds from that moment,

* ``added``: the torrent is added and the seeder given;
* ``dialled``: the leecher starts its connection to the seeder.  Ours dials
  at once, inside ``add_peers`` (``Swarm.add_peers`` tops up its
  connections there and then), so this is ``added``; libtorrent dials on its
  session tick, up to half a second later, and posts ``peer_connect_alert``
  as it starts the TCP connect (measured: the alert comes for a closed port
  too).  Both therefore count the TCP connect and the handshakes after this
  moment, which is what makes the times after it comparable;
* ``handshake`` (ours only): our ``peer_connected`` event, both handshakes
  done (libtorrent has no alert for it short of its per-message peer log,
  which would slow it down);
* ``metadata``: the info dictionary arrived and matched the info hash (ours:
  the ``metadata_received`` event; libtorrent: ``metadata_received_alert``);
* ``complete``: every piece verified (ours: the ``complete`` event;
  libtorrent: ``torrent_finished_alert``);

and ``cpu``, its user+system seconds from being given the magnet to the
end, as one JSON line ``{"event": "result", "ok", "added", "dialled",
"handshake", "metadata", "complete", "seconds", "cpu", "threads",
"pieces", "note"}`` (ours adds ``reactor_cpu``).  A moment never reached is
null.  Our events are delivered on the reactor thread as they happen, so
ours are read from ``time.perf_counter`` then; libtorrent's are its alerts'
own timestamps (microseconds, on the wall clock), not the moment the
leecher popped them.  The parent verifies the data by SHA-1 after the child
has exited.

Twisted, libtorrent and txbittorrent are imported inside the roles only, so
the parent stays light; each leecher imports what it needs before the clock
starts.
"""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable
from typing import Any

from bench._common import LOOPBACK, own_usage, thread_cpu, thread_cpu_delta
from bench._download_children import (
    LT_PLAIN_OUT,
    LT_POLL_MS,
    _lt_session,
    _run_twisted,
    child_lt_seed,
    emit,
)

__all__ = ["CHILDREN", "magnet_uri"]


def magnet_uri(info_hash_hex: str) -> str:
    """The magnet link the leechers are given: the info hash alone."""
    return f"magnet:?xt=urn:btih:{info_hash_hex}"


def _since(start: float, moment: float | None) -> float | None:
    return None if moment is None else moment - start


def child_tx_magnet(spec: dict[str, Any]) -> None:
    """A txbittorrent leecher given the magnet and the seeder's address."""

    async def main(reactor: Any) -> None:
        from twisted.internet import defer

        from txbittorrent.eventtypes import TorrentEvent
        from txbittorrent.torrent import Torrent

        seen: dict[str, float] = {}
        finished: defer.Deferred[None] = defer.Deferred()

        def event(e: TorrentEvent) -> None:
            seen.setdefault(e.kind, time.perf_counter())
            if e.kind == "complete" and not finished.called:
                finished.callback(None)

        finished.addTimeout(spec["timeout"], reactor)
        threads0 = thread_cpu()
        cpu0, start = own_usage()["cpu"], time.perf_counter()
        reactor_cpu0 = time.thread_time()
        # Given the magnet: from here on everything is timed.
        torrent = Torrent(spec["magnet"], basedir=spec["dir"], reactor=reactor,
                          listen_interfaces=[LOOPBACK], dht=False)
        torrent.subscribe(event, kinds=("peer_connected", "metadata_received", "complete"))
        await torrent.start()
        torrent.add_peers([(LOOPBACK, spec["peer"])])  # dials at once
        added = time.perf_counter()
        note = ""
        try:
            await finished
        except defer.TimeoutError:
            note = f"timed out after {spec['timeout']:g} s"
        end, cpu1 = time.perf_counter(), own_usage()["cpu"]
        reactor_cpu = time.thread_time() - reactor_cpu0
        threads = thread_cpu_delta(threads0, thread_cpu())
        pieces = torrent.bitfield.count if torrent.has_metadata else 0
        moments = ("peer_connected", "metadata_received", "complete")
        emit(
            event="result",
            ok=(torrent.complete and pieces == spec["pieces"]
                and all(kind in seen for kind in moments)),
            added=added - start,
            dialled=added - start,
            handshake=_since(start, seen.get("peer_connected")),
            metadata=_since(start, seen.get("metadata_received")),
            complete=_since(start, seen.get("complete")),
            seconds=end - start,
            cpu=cpu1 - cpu0,
            reactor_cpu=reactor_cpu,
            threads=threads,
            pieces=pieces,
            note=note,
        )
        await torrent.stop()

    _run_twisted(main)


def child_lt_magnet(spec: dict[str, Any]) -> None:
    """A libtorrent leecher given the magnet and the seeder's address."""
    import libtorrent as lt

    category = lt.alert_category
    session = _lt_session(
        lt, alert_mask=category.status | category.error | category.connect, **LT_PLAIN_OUT)
    threads0 = thread_cpu()
    cpu0, start, wall = own_usage()["cpu"], time.perf_counter(), time.time()
    # Given the magnet: from here on everything is timed.
    params = lt.parse_magnet_uri(spec["magnet"])
    params.save_path = spec["dir"]
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    handle = session.add_torrent(params)
    handle.connect_peer((LOOPBACK, spec["peer"]))
    added = time.perf_counter()
    # The alerts' timestamps are naive local datetimes of the wall clock.
    given = datetime.datetime.fromtimestamp(wall)
    dialled = metadata = complete = None
    note = ""
    end_by = start + spec["timeout"]
    while complete is None and time.perf_counter() < end_by:
        session.wait_for_alert(LT_POLL_MS)
        for alert in session.pop_alerts():
            if isinstance(alert, lt.peer_connect_alert) and dialled is None:
                dialled = (alert.timestamp() - given).total_seconds()
            elif isinstance(alert, lt.metadata_received_alert) and metadata is None:
                metadata = (alert.timestamp() - given).total_seconds()
            elif isinstance(alert, lt.metadata_failed_alert):
                note = f"metadata failed: {alert.message()}"
            elif isinstance(alert, lt.torrent_finished_alert):
                complete = (alert.timestamp() - given).total_seconds()
    end, cpu1 = time.perf_counter(), own_usage()["cpu"]
    threads = thread_cpu_delta(threads0, thread_cpu())
    status = handle.status()
    if complete is None and not note:
        note = f"timed out after {spec['timeout']:g} s"
    emit(
        event="result",
        ok=(complete is not None and metadata is not None and dialled is not None
            and status.num_pieces == spec["pieces"]),
        added=added - start,
        dialled=dialled,
        handshake=None,
        metadata=metadata,
        complete=complete,
        seconds=end - start,
        cpu=cpu1 - cpu0,
        threads=threads,
        pieces=status.num_pieces,
        note=note or (status.errc.message() if status.errc.value() else ""),
    )
    # Removing the torrent and pausing the session flushes its disk threads,
    # so that the data is on disk when the parent compares it.
    session.remove_torrent(handle)
    session.pause()
    del session


CHILDREN: dict[str, Callable[[dict[str, Any]], None]] = {
    "lt-seed": child_lt_seed,
    "tx-magnet": child_tx_magnet,
    "lt-magnet": child_lt_magnet,
}
