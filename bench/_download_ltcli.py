"""libtorrent's leecher as a whole program, for ``bench.download --cli``.

Run as ``python -m bench._download_ltcli SPEC_JSON``: what a command-line
client built on libtorrent's Python bindings does for one download, from the
interpreter's start to its exit: import libtorrent, make a session with the
spec's ``settings`` (the benchmark's loopback settings over a preset: the
default or ``high_performance_seed``), add the torrent, connect to the
seeder once the (empty) directory is checked, wait for every piece, and exit
(the session's destructor closes the files; libtorrent never fsyncs them).
It prints JSON lines on stdout, each with ``time`` (Unix seconds):
``{"event": "session"}`` once the session and torrent exist,
``{"event": "connected"}``, ``{"event": "finished"}``, and at the end
``{"event": "result", "ok": ..., "pieces": ..., "note": ...}``.

It imports nothing but libtorrent and the standard library's json, sys and
time (the benchmark's helpers would lengthen its start-up): the settings come
in the spec, made by the parent (``bench._download_cli.lt_cli_argv``).
"""

from __future__ import annotations

import json
import sys
import time
from typing import Any

POLL_MS = 50


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, "time": time.time(), **fields}), flush=True)


def main(spec: dict[str, Any]) -> int:
    import libtorrent as lt

    settings = lt.high_performance_seed() if spec["preset"] == "high_performance_seed" else {}
    settings.update(spec["settings"])
    category = lt.alert_category
    settings["alert_mask"] = category.status | category.error | category.connect
    session = lt.session(settings)
    params = lt.add_torrent_params()
    with open(spec["torrent"], "rb") as f:
        params.ti = lt.torrent_info(f.read())
    params.save_path = spec["dir"]
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    handle = session.add_torrent(params)
    emit("session")
    starting = (
        lt.torrent_status.states.checking_resume_data,
        lt.torrent_status.states.checking_files,
        lt.torrent_status.states.queued_for_checking,
        lt.torrent_status.states.allocating,
    )
    deadline = time.monotonic() + spec["timeout"]
    while handle.status().state in starting and time.monotonic() < deadline:
        session.wait_for_alert(POLL_MS)
        session.pop_alerts()
    handle.connect_peer(("127.0.0.1", spec["peer"]))
    connected = finished = False
    while not finished and time.monotonic() < deadline:
        session.wait_for_alert(POLL_MS)
        for alert in session.pop_alerts():
            if isinstance(alert, lt.peer_connect_alert) and not connected:
                connected = True
                emit("connected")
            elif isinstance(alert, lt.torrent_finished_alert):
                finished = True
                emit("finished")
    status = handle.status()
    ok = finished and connected and status.num_pieces == spec["pieces"]
    note = "" if finished else f"timed out after {spec['timeout']:g} s"
    if status.errc.value():
        note = status.errc.message()
    emit("result", ok=ok, pieces=status.num_pieces, note=note)
    del handle, session  # closes the files, as a program's exit would
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(json.loads(sys.argv[1])))
