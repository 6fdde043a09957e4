"""Part a of ``bench.scale``: the load child roles, one per client.

Theory of operation
-------------------
Each runs in a fresh child process (``bench.scale --child tx-load`` or
``lt-load``) over the data, torrents and resume records that
``bench.scale.prepare_many`` wrote: ``tx_load`` starts every torrent in one
``Session`` from its resume record, ``lt_load`` adds every torrent with its
fast-resume data to one libtorrent session.  Both time the start and the
stop, sample their own memory and CPU, and emit one ``RESULT`` line; the
parent (``bench.scale.run_load``) judges it.
"""

from __future__ import annotations

import importlib
import os
import time
from typing import Any

from bench._procs import (
    LOOPBACK,
    LT_LOCAL_SETTINGS,
    emit,
    kib_to_mib,
    own_cpu,
    own_peak_rss_kib,
    proc_status,
)

__all__ = ["lt_load", "tx_load"]


def _memory(status: dict[str, int]) -> dict[str, Any]:
    return {
        "rss_mib": kib_to_mib(status.get("VmRSS")),
        "anon_mib": kib_to_mib(status.get("RssAnon")),
        "threads": status.get("Threads"),
    }


def _describe_failure(failure: Any) -> str:
    return f"{failure.type.__name__}: {failure.value}"


async def tx_load(reactor: Any, spec: dict[str, Any]) -> None:
    """Load and start every torrent with its resume record in one session."""
    from twisted.internet.defer import DeferredList
    from twisted.internet.task import deferLater

    from txbittorrent.collector import BulkLoad
    from txbittorrent.session import Session
    from txbittorrent.torrent import Torrent

    dirs, names = spec["dirs"], spec["names"]
    passes: list[int] = []
    fails: list[int] = []
    profiler = None
    if spec.get("profile"):
        import cProfile

        profiler = cProfile.Profile()
    before = proc_status()
    cpu0 = own_cpu()
    if profiler is not None:
        profiler.enable()
    # As `txbittorrent serve` restores its torrents (unless --collector plain).
    bulk = BulkLoad() if spec.get("collector", "daemon") == "daemon" else None
    t0 = time.perf_counter()
    if bulk is not None:
        bulk.start()
    session = Session(reactor=reactor, listen_interfaces=(LOOPBACK,))
    await session.start()
    torrents = [
        Torrent(
            os.path.join(dirs["torrents"], name + ".torrent"),
            basedir=dirs["data"],
            reactor=reactor,
            session=session,
            resume_path=os.path.join(spec["resume_dir"], name + ".resume"),
            on_hash_pass=passes.append,
            on_hash_fail=fails.append,
        )
        for name in names
    ]
    t_made = time.perf_counter()
    starts = [t.start() for t in torrents]
    if bulk is not None:
        bulk.finish()
    results = await DeferredList(starts, consumeErrors=True)
    t1 = time.perf_counter()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(spec["profile"])
    cpu1 = own_cpu()
    after = proc_status()
    errors = [_describe_failure(f) for ok, f in results if not ok]
    active = sum(t.state == "active" for t in torrents)
    seeds = sum(t.seed for t in torrents)
    idle0, wall0 = own_cpu(), time.perf_counter()
    await deferLater(reactor, float(spec.get("idle_seconds", 1.0)), lambda: None)
    idle_cpu = (own_cpu() - idle0) / (time.perf_counter() - wall0)
    settled = proc_status()
    t2 = time.perf_counter()
    if bulk is not None:
        bulk.for_exit()  # as `txbittorrent serve` stops
    stops = await DeferredList([t.stop() for t in torrents], consumeErrors=True)
    await session.stop()
    t3 = time.perf_counter()
    errors += ["stop: " + _describe_failure(f) for ok, f in stops if not ok]
    emit(
        "RESULT",
        torrents=len(torrents),
        construct_seconds=t_made - t0,
        start_seconds=t1 - t0,
        start_cpu=cpu1 - cpu0,
        idle_cpu=idle_cpu,
        stop_seconds=t3 - t2,
        active=active,
        complete=seeds,
        hashed_pieces=len(passes),
        failed_pieces=len(fails),
        errors=errors[:5],
        error_count=len(errors),
        before=_memory(before),
        after=_memory(after),
        settled=_memory(settled),
        peak_mib=kib_to_mib(settled.get("VmHWM")),
        peak_with_stop_mib=kib_to_mib(own_peak_rss_kib()),
    )


def lt_load(spec: dict[str, Any]) -> None:
    """Add every torrent with its resume data to one libtorrent session."""
    lt: Any = importlib.import_module("libtorrent")

    dirs, names = spec["dirs"], spec["names"]
    count = len(names)
    before = proc_status()
    cpu0 = own_cpu()
    t0 = time.perf_counter()
    settings = dict(LT_LOCAL_SETTINGS)
    settings["alert_mask"] = (
        lt.alert_category.status | lt.alert_category.error | lt.alert_category.storage
    )
    settings["alert_queue_size"] = max(1000, 8 * count)
    session = lt.session(settings)
    for name in names:
        with open(os.path.join(dirs["lt"], name + ".fastresume"), "rb") as f:
            params = lt.read_resume_data(f.read())
        params.save_path = dirs["data"]
        params.flags &= ~lt.torrent_flags.auto_managed
        params.flags &= ~lt.torrent_flags.paused
        session.async_add_torrent(params)
    seeding: set[str] = set()
    checked_files: set[str] = set()
    errors: list[str] = []
    dropped = False
    deadline = time.monotonic() + float(spec["timeout"])
    while len(seeding) < count and time.monotonic() < deadline:
        session.wait_for_alert(100)
        for alert in session.pop_alerts():
            if isinstance(alert, lt.state_changed_alert):
                if alert.state == lt.torrent_status.seeding:
                    seeding.add(alert.torrent_name)
                elif alert.state == lt.torrent_status.checking_files:
                    checked_files.add(alert.torrent_name)
            elif isinstance(alert, lt.alerts_dropped_alert):
                dropped = True
            elif isinstance(alert, (lt.add_torrent_alert,)) and alert.error.value():
                errors.append(alert.error.message())
            elif isinstance(alert, (lt.torrent_error_alert, lt.fastresume_rejected_alert)):
                errors.append(alert.message())
        if dropped:  # alerts were lost: ask every torrent instead
            seeding = {h.status().name for h in session.get_torrents() if h.status().is_seeding}
    t1 = time.perf_counter()
    cpu1 = own_cpu()
    after = proc_status()
    statuses = [h.status() for h in session.get_torrents()]
    complete = sum(s.is_seeding and s.num_pieces == s.torrent_file.num_pieces() for s in statuses)
    idle0, wall0 = own_cpu(), time.perf_counter()
    time.sleep(float(spec.get("idle_seconds", 1.0)))
    idle_cpu = (own_cpu() - idle0) / (time.perf_counter() - wall0)
    settled = proc_status()
    # Stopping, as a client does at exit: resume data of every torrent saved
    # to a file (plain writes: libtorrent leaves writing to the caller), then
    # every torrent removed and the session gone.
    t2 = time.perf_counter()
    handles = session.get_torrents()
    for handle in handles:
        handle.save_resume_data()
    saved = 0
    while saved < len(handles) and time.monotonic() < deadline + 60:
        session.wait_for_alert(100)
        for alert in session.pop_alerts():
            if isinstance(alert, lt.save_resume_data_alert):
                path = os.path.join(spec["resume_dir"], alert.torrent_name + ".fastresume")
                with open(path, "wb") as f:
                    f.write(lt.write_resume_data_buf(alert.params))
                saved += 1
            elif isinstance(alert, lt.save_resume_data_failed_alert):
                errors.append(f"stop: {alert.message()}")
                saved += 1
    for handle in handles:
        session.remove_torrent(handle)
    session.pause()
    del session
    t3 = time.perf_counter()
    emit(
        "RESULT",
        torrents=len(statuses),
        start_seconds=t1 - t0,
        start_cpu=cpu1 - cpu0,
        idle_cpu=idle_cpu,
        stop_seconds=t3 - t2,
        active=len(seeding),
        complete=complete,
        hashed_pieces=None,
        checking_files=len(checked_files),
        alerts_dropped=dropped,
        resume_saved=saved,
        errors=errors[:5],
        error_count=len(errors),
        before=_memory(before),
        after=_memory(after),
        settled=_memory(settled),
        peak_mib=kib_to_mib(settled.get("VmHWM")),
        peak_with_stop_mib=kib_to_mib(own_peak_rss_kib()),
    )
