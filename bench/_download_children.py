"""The child processes of ``bench.download``: the seeders, leechers and tracker.

Theory of operation
-------------------
Each role is a function of a JSON ``spec`` run in a process of its own, as
``python -m bench.download --child ROLE --spec JSON`` (``bench.download``'s
``main`` looks the role up in ``CHILDREN``, which it re-exports: the
``--baseline`` probe and an older commit's parent look for it there).  A role
writes JSON lines to its stdout: {"event": "ready", ...} once serving
(seeders, tracker), or {"event": "result", ...} once a download ended
(leechers).  The spec and the result line of the leechers are the contract
described in ``bench.download``'s docstring; keep them so.

Twisted, libtorrent and txbittorrent are imported inside the roles only, so
the parent stays light.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from bench._common import (
    LOOPBACK,
    LT_LOCAL_SETTINGS,
    own_usage,
    thread_cpu,
    thread_cpu_delta,
)

START_TIMEOUT = 120.0
"""Seconds a seeder or the tracker may take to be ready (a seeder checks the data first)."""
LT_POLL_MS = 50


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


LT_TCP_ONLY = {"enable_outgoing_utp": False, "enable_incoming_utp": False}
"""Between two libtorrent peers libtorrent picks uTP, which on loopback is
many times slower than TCP (bench/README): the benchmark compares the clients
over TCP, the only transport txbittorrent speaks."""


LT_PLAIN_OUT = {"out_enc_policy": 2}
"""libtorrent's leechers dial in plain BitTorrent (``enc_policy.disabled``).
By default libtorrent first tries an encrypted (MSE/PE) handshake, which
txbittorrent did not speak before issue 13 (libtorrent then dialled again in
plain text a second later); kept so that the plaintext figures compare with
earlier runs.  Seeders keep accepting both."""

LT_RC4 = {"out_enc_policy": 0, "in_enc_policy": 0, "allowed_enc_level": 2}
"""libtorrent with MSE/PE forced both ways and RC4 only (``enc_policy.forced``,
``enc_level.rc4``): the seeder and the leechers of ``--encryption rc4``."""

RC4_SUFFIX = "+rc4"
"""Names the clients of ``--encryption rc4``: ``txbittorrent+rc4`` (our
session's encryption forced) and ``libtorrent+rc4`` (``LT_RC4``)."""


def _lt_session(lt: Any, **extra: Any) -> Any:
    settings = dict(LT_LOCAL_SETTINGS)
    settings.update(LT_TCP_ONLY)
    settings.update(extra)
    return lt.session(settings)


def _lt_add(lt: Any, session: Any, torrent_path: str, save_path: str) -> Any:
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(_read(torrent_path))
    params.save_path = save_path
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    return session.add_torrent(params)


def child_lt_seed(spec: dict[str, Any]) -> None:
    """A libtorrent seeder: check the data, announce if the torrent has a
    tracker, report the port, then serve until killed (with the spec's
    ``settings`` over the benchmark's, if it has some)."""
    import libtorrent as lt

    category = lt.alert_category
    session = _lt_session(lt, alert_mask=category.status | category.error | category.tracker,
                          **spec.get("settings", {}))
    handle = _lt_add(lt, session, spec["torrent"], spec["dir"])
    deadline = time.monotonic() + START_TIMEOUT
    announced = not spec["tracker"]
    while not (announced and handle.status().is_seeding):
        if time.monotonic() > deadline or handle.status().errc.value():
            if handle.status().is_seeding:
                break  # seeding, but the tracker never answered: aria2 will fail
            emit(event="error", note=f"not seeding: {handle.status().errc.message()}")
            return
        session.wait_for_alert(100)
        for alert in session.pop_alerts():
            announced = announced or isinstance(alert, lt.tracker_reply_alert)
    emit(event="ready", port=session.listen_port(), announced=announced)
    while True:
        session.wait_for_alert(1000)
        session.pop_alerts()


def child_lt_leech(spec: dict[str, Any]) -> None:
    """A libtorrent leecher: download from ``spec["peer"]``, report the times
    (dialling plain, or with the spec's ``settings`` instead if it has some)."""
    import libtorrent as lt

    category = lt.alert_category
    session = _lt_session(
        lt, alert_mask=category.status | category.error | category.connect,
        **spec.get("settings", LT_PLAIN_OUT))
    handle = _lt_add(lt, session, spec["torrent"], spec["dir"])
    starting = (
        lt.torrent_status.states.checking_resume_data,
        lt.torrent_status.states.checking_files,
        lt.torrent_status.states.queued_for_checking,
        lt.torrent_status.states.allocating,
    )
    deadline = time.monotonic() + START_TIMEOUT
    while handle.status().state in starting and time.monotonic() < deadline:
        session.wait_for_alert(LT_POLL_MS)
        session.pop_alerts()
    threads0 = thread_cpu()
    cpu0, start = own_usage()["cpu"], time.perf_counter()
    handle.connect_peer((LOOPBACK, spec["peer"]))
    finished = False
    connected = None
    end_by = start + spec["timeout"]
    while not finished and time.perf_counter() < end_by:
        session.wait_for_alert(LT_POLL_MS)
        for alert in session.pop_alerts():
            if isinstance(alert, lt.peer_connect_alert) and connected is None:
                connected = time.perf_counter()
            elif isinstance(alert, lt.torrent_finished_alert):
                finished = True
    end, cpu1 = time.perf_counter(), own_usage()["cpu"]
    threads = thread_cpu_delta(threads0, thread_cpu())
    status = handle.status()
    note = "" if finished else f"timed out after {spec['timeout']:g} s"
    emit(
        event="result",
        ok=finished and status.num_pieces == spec["pieces"] and connected is not None,
        seconds=end - start,
        connected=None if connected is None else connected - start,
        cpu=cpu1 - cpu0,
        threads=threads,
        pieces=status.num_pieces,
        note=note or (status.errc.message() if status.errc.value() else ""),
    )
    session.remove_torrent(handle)
    session.pause()
    del session


def _run_twisted(main: Callable[[Any], Any]) -> None:
    from twisted.internet import defer, task

    task.react(lambda reactor: defer.ensureDeferred(main(reactor)))


def child_tx_seed(spec: dict[str, Any]) -> None:
    """A txbittorrent seeder: check the data, report the port, serve until killed."""

    async def main(reactor: Any) -> None:
        from twisted.internet.defer import Deferred

        from txbittorrent.torrent import Torrent

        torrent = Torrent(
            _read(spec["torrent"]), basedir=spec["dir"], reactor=reactor,
            listen_interfaces=[LOOPBACK],
        )
        await torrent.start()
        if not torrent.seed:
            emit(event="error", note=f"only {torrent.bitfield.count} pieces verified")
            return
        emit(event="ready", port=torrent.port)
        await Deferred()  # until SIGTERM stops the reactor

    _run_twisted(main)


def child_tx_leech(spec: dict[str, Any]) -> None:
    """A txbittorrent leecher: download from ``spec["peer"]``, report the
    times (with the spec's ``encryption`` setting, if it has one)."""

    async def main(reactor: Any) -> None:
        from twisted.internet import defer

        from txbittorrent.observers import TorrentObserver
        from txbittorrent.torrent import Torrent

        options: dict[str, Any] = {}
        if spec.get("encryption"):
            from txbittorrent.session import SessionConfig

            options["session_config"] = SessionConfig(encryption=spec["encryption"])
        torrent = Torrent(
            _read(spec["torrent"]), basedir=spec["dir"], reactor=reactor,
            listen_interfaces=[LOOPBACK], **options,
        )
        await torrent.start()  # checks the (empty) directory
        profiler = None
        if spec.get("profile"):
            import cProfile

            profiler = cProfile.Profile()
            profiler.enable()
        connected: list[float] = []

        class FirstPeer(TorrentObserver):
            def peer_connected(self, torrent: Any, peer: Any) -> None:
                connected.append(time.perf_counter())

        torrent.add_observer(FirstPeer())
        threads0 = thread_cpu()
        cpu0, start = own_usage()["cpu"], time.perf_counter()
        reactor_cpu0 = time.thread_time()
        torrent.add_peers([(LOOPBACK, spec["peer"])])
        done = torrent.when_complete()
        done.addTimeout(spec["timeout"], reactor)
        note = ""
        try:
            await done
        except defer.TimeoutError:
            note = f"timed out after {spec['timeout']:g} s"
        end, cpu1 = time.perf_counter(), own_usage()["cpu"]
        reactor_cpu = time.thread_time() - reactor_cpu0
        threads = thread_cpu_delta(threads0, thread_cpu())
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(spec["profile"])
        emit(
            event="result",
            ok=torrent.complete and bool(connected),
            seconds=end - start,
            connected=connected[0] - start if connected else None,
            cpu=cpu1 - cpu0,
            reactor_cpu=reactor_cpu,
            threads=threads,
            pieces=torrent.bitfield.count,
            note=note,
        )
        await torrent.stop()

    _run_twisted(main)


def child_tracker(spec: dict[str, Any]) -> None:
    """Our HTTP tracker on 127.0.0.1: report its announce URL, serve until killed."""

    async def main(reactor: Any) -> None:
        from twisted.internet.defer import Deferred

        from txbittorrent.tracker.server import start_tracker

        tracker = await start_tracker(reactor, LOOPBACK, interval=spec.get("interval", 60))
        emit(event="ready", url=tracker.announce_url)
        await Deferred()

    _run_twisted(main)


CHILDREN: dict[str, Callable[[dict[str, Any]], None]] = {
    "lt-seed": child_lt_seed,
    "lt-leech": child_lt_leech,
    "tx-seed": child_tx_seed,
    "tx-leech": child_tx_leech,
    "tracker": child_tracker,
}
