"""The seeder processes of ``bench.transmission``: ours and libtorrent's.

Theory of operation
-------------------
Each seeder is a child process of the benchmark (``python -m
bench.transmission --child tx-seed|lt-seed --spec JSON``) that speaks
``bench._procs``'s line protocol: it loads the torrent, verifies the data
(a run never starts with a seeder still hashing), says ``READY`` with its
pid, and waits.  On ``go`` it dials Transmission at ``spec["peer_port"]`` on
127.0.0.1 (Transmission 3.00 ignores loopback peers a tracker gives it, so
the seeder must dial), says ``DIALLED`` with the moment (``time.monotonic()``:
one clock for every process of the machine), then watches its own payload
upload counter every 10 ms until it moves and says ``FIRST`` with that
moment and its own CPU seconds so far: the seeder's view of the first byte.  On ``stop`` (or end of file on
stdin) it says ``STATUS`` with the payload bytes it sent and exits.

Both seeders dial in plain text: ours with the default settings (encryption
"enabled" dials plain), libtorrent with ``out_enc_policy``/``in_enc_policy``
disabled; libtorrent is held to TCP (Transmission's uTP is off) and to
127.0.0.1 with no DHT, LSD, UPnP or NAT-PMP (``LT_LOCAL_SETTINGS``).
"""

from __future__ import annotations

import importlib
import os
import sys
import time
from typing import Any

from bench._common import LOOPBACK, LT_LOCAL_SETTINGS, LineReader
from bench._procs import Commands, emit, lt_add_seeding, own_cpu, run_twisted_child

POLL = 0.01
"""Seconds between two looks at the seeder's upload counter, until it moves."""
LT_SETTINGS = {
    "enable_outgoing_utp": False, "enable_incoming_utp": False,
    "out_enc_policy": 2, "in_enc_policy": 2,  # pe_disabled: plaintext, as ours dials
}


async def _tx_seed(reactor: Any, spec: dict[str, Any]) -> None:
    from twisted.internet.defer import Deferred
    from twisted.internet.task import LoopingCall

    from txbittorrent.torrent import Torrent

    commands = Commands(reactor)
    torrent = Torrent(spec["torrent"], basedir=spec["basedir"], reactor=reactor,
                      listen_interfaces=[LOOPBACK])
    try:
        await torrent.start()
        if not torrent.seed:
            emit("FAIL", reason=f"the seeder's data did not verify ({torrent.left} bytes left)")
            return
        emit("READY", pid=os.getpid())
        if await commands.wait("go") != "go":
            return
        at = time.monotonic()
        torrent.add_peers([(LOOPBACK, int(spec["peer_port"]))])
        emit("DIALLED", at=at)
        first: Deferred[None] = Deferred()

        def look() -> None:
            if torrent.uploaded > 0 and not first.called:
                emit("FIRST", at=time.monotonic(), cpu=own_cpu())
                first.callback(None)

        poller = LoopingCall(look)
        poller.clock = reactor
        poller.start(POLL)
        first.addBoth(lambda _: poller.stop() if poller.running else None)
        await commands.wait("stop")
        if poller.running:
            poller.stop()
        emit("STATUS", uploaded=torrent.uploaded)
    finally:
        await torrent.close()


def tx_seed(spec: dict[str, Any]) -> None:
    """Our seeder: a ``Torrent`` on 127.0.0.1 with the default settings."""
    run_twisted_child(lambda reactor: _tx_seed(reactor, spec))


def lt_seed(spec: dict[str, Any]) -> None:
    """libtorrent's seeder: a local-only session, plaintext, TCP only."""
    lt: Any = importlib.import_module("libtorrent")

    settings: dict[str, Any] = dict(LT_LOCAL_SETTINGS)
    settings.update(LT_SETTINGS)
    settings["alert_mask"] = lt.alert_category.error | lt.alert_category.status
    session = lt.session(settings)
    commands = LineReader(sys.stdin.fileno())
    try:
        handle, failed = lt_add_seeding(lt, session, spec["torrent"], spec["basedir"], 300.0)
        if failed is not None:
            emit("FAIL", reason=failed)
            return
        emit("READY", pid=os.getpid())
        if commands.readline(3600) != b"go":
            return
        at = time.monotonic()
        handle.connect_peer((LOOPBACK, int(spec["peer_port"])))
        emit("DIALLED", at=at)
        first = False
        while True:
            line = commands.readline(POLL if not first else 3600)
            if line == b"stop" or commands.eof:
                break
            if not first and handle.status().total_payload_upload > 0:
                emit("FIRST", at=time.monotonic(), cpu=own_cpu())
                first = True
        emit("STATUS", uploaded=handle.status().total_payload_upload)
        session.remove_torrent(handle)
    finally:
        session.pause()
        del session
