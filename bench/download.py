"""How fast does txbittorrent download from (and seed to) real clients on 127.0.0.1?

Run ``python -m bench.download [--size-mib 1024] [--piece-length 1048576]
[--runs 3] [--leechers txbittorrent,libtorrent,aria2] [--seed-test]
[--json out.json]``, or ``--tiny`` (8 MiB, one run) as the test suite does.

One data file of random bytes is written to a temporary directory (under
/tmp, removed afterwards) and a single-file v1 torrent is made for it with
``create_torrent``, with no tracker.  Every client runs in a process of its
own, so that one client's CPU time is never mixed with another's:

seeder      a libtorrent session (local only, TCP only) seeding the
            file, started once and kept for the whole benchmark;
leechers    in each run, one after another, each leecher downloads into an
            empty directory from that seeder:
            txbittorrent  a ``Torrent`` listening on 127.0.0.1, given the
                          seeder with ``add_peers``;
            libtorrent    a second libtorrent session, given the seeder with
                          ``connect_peer``;
            aria2         ``aria2c`` (no DHT, LPD or PEX).  It cannot be told
                          a peer, so for it a tracker of ours
                          (``txbittorrent.tracker.server``) runs in another process,
                          the seeder announces to it, and aria2c gets a copy
                          of the torrent with that tracker's URL (the info
                          dictionary, hence the info hash, is the same).
seed test   (``--seed-test``) a txbittorrent seeder and the libtorrent seeder,
            one after the other, each serve a libtorrent leecher.
baseline    (``--baseline REF``) one more leecher, ``txbittorrent@<short
            SHA-1>``: the txbittorrent leecher of commit REF of this
            repository, so that a change can be timed against the code before
            it in the same run.  A clean copy of REF is extracted (``git
            archive``, no worktree) into the benchmark's temporary directory,
            and the leecher is REF's own ``bench.download --child tx-leech``
            run in that copy (its cwd and PYTHONPATH): old code with its old
            child, each side importing its own modules.  The parent sends it
            the same spec and reads the same result line as from ours (see
            "child processes" below), so REF's child must speak them; the
            benchmark checks, before anything is timed, that the copy imports
            its own ``txbittorrent`` and has that role.  It takes its turn in
            the alternating order like any leecher, and the summary adds the
            ratios txbittorrent / baseline.

What is measured, per transfer:

wall        for txbittorrent and libtorrent, the leecher process reports its
            own times.  It is given the seeder's address once its
            interpreter, libraries, session and torrent are up and its check
            of the empty directory is done; "connect s" runs from then to the
            connection to the seeder (txbittorrent: our handshake done;
            libtorrent: its ``peer_connect_alert``; libtorrent makes
            connections on its session tick, so this takes it up to a
            second), and "wall s" from the connection to every piece
            verified.  Process start-up and shutdown are left out.  aria2c
            reports nothing, so its wall time runs from its launch to the
            moment its ``--on-bt-download-complete`` hook runs: its start-up
            (milliseconds: a C program) and one announce to the loopback
            tracker are included.
MB/s        10**6 bytes of the file / wall.
CPU s/GiB   user + system seconds of the leecher process (every thread) per
            GiB: for txbittorrent and libtorrent the CPU time its own
            ``getrusage`` counted from being given the seeder to the end; for
            aria2c its whole life (``os.wait4``).  The whole life of every
            process is in the JSON too.  In the seed test, the seeder's CPU
            time over the transfer comes from ``/proc/<pid>/stat`` (10 ms
            granularity).
RSS MiB     the leecher's peak resident set (``ru_maxrss`` from ``os.wait4``).
            libtorrent reads and writes through memory-mapped files, and the
            kernel counts the mapped pages of the torrent in its RSS, so the
            benchmark also samples each process's anonymous RSS
            (``RssAnon`` in ``/proc/<pid>/status``) every 0.1 s: "anon MiB"
            is the largest value seen, the memory the client allocated.

libtorrent is held to TCP (uTP off, see ``LT_TCP_ONLY``) on both sides: by
default two libtorrent peers talk uTP, which on loopback is many times slower
than TCP (figures in bench/README).
Its leechers dial in plain BitTorrent (``LT_PLAIN_OUT``): by default they try
an encrypted handshake first, which txbittorrent refuses, and dial again a
second later.  Otherwise every client keeps its default settings.

Each download is then compared with the source, SHA-1 over the whole file.
A run that timed out, failed, or whose data differs is reported as failed,
counted in no median, and makes the exit status 1.  The figures are medians
over the runs, each with its spread (min-max) in a second table; the ratios
are txbittorrent / libtorrent (and txbittorrent / baseline).  The machine's load
average is printed: other processes skew the figures, and on a small machine
seeder and leecher compete for the same cores.  Each transfer also records
the share of the machine's CPU that other processes took meanwhile
(``/proc/stat`` less our processes: "others"), and ``--wait-quiet PCT`` waits
before each transfer until the machine has been below PCT% busy for a moment.

``--profile-dir DIR`` runs the txbittorrent leecher under cProfile (its
reactor thread, over the wall interval only) and saves one ``.pstats`` file
per run there; those runs are slower and marked as profiled.

The child processes are this same module, run with a hidden ``--child ROLE``
argument; each writes JSON lines to its standard output.  Between parent and
leecher children the contract is: the spec holds ``torrent``, ``dir``,
``peer``, ``pieces``, ``timeout`` and, when profiled, ``profile``; the
result line holds ``ok``, ``seconds``, ``connected``, ``cpu`` and ``pieces``,
and may hold ``reactor_cpu``, ``threads`` and ``note``.  Keep it so, or
``--baseline`` against older commits breaks (a1a823c's child speaks it).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from typing import Any

from bench._common import (
    ROOT,
    Checkout,
    Child,
    Children,
    GiB,
    LOOPBACK,
    LT_LOCAL_SETTINGS,
    TMP_BASE,
    MiB,
    Result,
    checkout,
    environment,
    free_port,
    machine_busy,
    median,
    own_usage,
    proc_cpu,
    proc_status,
    ratio,
    resolve_commit,
    run_in,
    sha1_file,
    spread,
    tail,
    thread_cpu,
    thread_cpu_delta,
    write_random_file,
)

DATA_NAME = "bench.bin"
TREE_NAME = "bench"
"""With ``--files N`` (N > 1) the data is a directory of N files of mixed sizes."""


def mixed_sizes(total: int, count: int, seed: int = 7) -> list[int]:
    """``count`` sizes adding up to ``total``: mostly small files, a few large
    (a log-uniform spread, as a real multi-file torrent has)."""
    rng = random.Random(seed)
    weights = [2 ** rng.uniform(0, 12) for _ in range(count)]
    rest = total - count  # one byte each, the rest spread by weight (floors)
    scale = rest / sum(weights)
    sizes = [1 + int(w * scale) for w in weights]
    sizes[-1] += total - sum(sizes)  # what the floors left over (never negative)
    return sizes


def write_tree(root: str, sizes: list[int]) -> tuple[list[str], str]:
    """Files ``d{n // 100:03d}/f{n:05d}.bin`` of random bytes; their relative
    paths in torrent order and the SHA-1 (hex) of their concatenation."""
    names = [os.path.join(f"d{n // 100:03d}", f"f{n:05d}.bin") for n in range(len(sizes))]
    digest = hashlib.sha1()
    for name, size in zip(names, sizes):
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        data = os.urandom(size)
        with open(path, "wb") as f:
            f.write(data)
        digest.update(data)
    os.sync()
    return names, digest.hexdigest()


def tree_sha1(root: str, names: list[str]) -> str | None:
    """The SHA-1 (hex) of the files' concatenation; None if one is missing."""
    digest = hashlib.sha1()
    for name in names:
        try:
            with open(os.path.join(root, name), "rb") as f:
                while chunk := f.read(1 << 20):
                    digest.update(chunk)
        except FileNotFoundError:
            return None
    return digest.hexdigest()
LEECHERS = ("txbittorrent", "libtorrent", "aria2")
SEEDERS = ("txbittorrent", "libtorrent")
START_TIMEOUT = 120.0
"""Seconds a seeder or the tracker may take to be ready (a seeder checks the data first)."""
EXIT_TIMEOUT = 30.0
"""Seconds a leecher may take to exit after reporting."""
LT_POLL_MS = 50
QUIET_WINDOW = 2.0
"""Seconds over which ``--wait-quiet`` measures the machine's CPU use."""


# -- child processes ------------------------------------------------------------------
#
# Each role reads its arguments from a JSON ``spec`` and writes JSON lines to
# stdout: {"event": "ready", ...} once serving (seeders, tracker), or
# {"event": "result", ...} once a download ended (leechers).


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
By default libtorrent first tries an encrypted (MSE/PE) handshake; txbittorrent
does not speak it and closes the connection, and libtorrent dials again in
plain text a second later.  The benchmark times transfers, not that fallback.
Seeders keep accepting both."""


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
    tracker, report the port, then serve until killed."""
    import libtorrent as lt

    category = lt.alert_category
    session = _lt_session(lt, alert_mask=category.status | category.error | category.tracker)
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
    """A libtorrent leecher: download from ``spec["peer"]``, report the times."""
    import libtorrent as lt

    category = lt.alert_category
    session = _lt_session(
        lt, alert_mask=category.status | category.error | category.connect, **LT_PLAIN_OUT)
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
    """A txbittorrent leecher: download from ``spec["peer"]``, report the times."""

    async def main(reactor: Any) -> None:
        from twisted.internet import defer

        from txbittorrent.observers import TorrentObserver
        from txbittorrent.torrent import Torrent

        torrent = Torrent(
            _read(spec["torrent"]), basedir=spec["dir"], reactor=reactor,
            listen_interfaces=[LOOPBACK],
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


# -- the baseline: another commit's txbittorrent leecher ----------------------------

BASELINE_PROBE = """\
import json
import bench.download
import txbittorrent
print(json.dumps({"txbittorrent": txbittorrent.__file__, "bench": bench.download.__file__,
                  "roles": sorted(bench.download.CHILDREN)}))
"""
"""Run in the baseline's copy as its children run: which files it imports, which roles it has."""


def baseline_name(copy: Checkout) -> str:
    """The baseline leecher's name in the table and the JSON: ``txbittorrent@<short SHA-1>``."""
    return f"txbittorrent@{copy.short}"


def prepare_baseline(ref: str, directory: str) -> Checkout:
    """A clean copy of commit ``ref`` in the new directory ``directory``, checked:
    its children import its own ``txbittorrent`` and ``bench`` (not ours) and
    its ``bench.download`` has a ``tx-leech`` role.  RuntimeError otherwise."""
    copy = checkout(ref, directory)
    lines = run_in(copy.root, BASELINE_PROBE).strip().splitlines()
    found = json.loads(lines[-1])
    inside = os.path.realpath(copy.root) + os.sep
    for module in ("txbittorrent", "bench"):
        if not os.path.realpath(found[module]).startswith(inside):
            raise RuntimeError(
                f"the copy of {ref} imports {module} from {found[module]}, not from {copy.root}")
    if "tx-leech" not in found["roles"]:
        raise RuntimeError(f"{ref} ({copy.short}): its bench.download has no tx-leech child")
    return copy


# -- the parent: one transfer ---------------------------------------------------------


def _maxrss_mib(rusage: Any) -> float | None:
    # Linux gives ru_maxrss in KiB.
    return None if rusage is None else rusage.ru_maxrss / 1024


def _process_cpu(rusage: Any) -> float | None:
    return None if rusage is None else rusage.ru_utime + rusage.ru_stime


def finish(raw: Result, size: int) -> Result:
    """Add the derived figures to a verified run; strip them from a failed one."""
    if not raw["verified"]:
        keep = ("verified", "note", "leecher", "seeder", "pieces", "others_cpu_share",
                "log_tail")
        return {k: v for k, v in raw.items() if k in keep}
    out = dict(raw)
    out["mb_s"] = size / 1e6 / raw["seconds"]
    out["cpu_s_per_gib"] = raw["cpu_seconds"] / (size / GiB)
    if raw.get("reactor_cpu_seconds") is not None:
        out["reactor_cpu_s_per_gib"] = raw["reactor_cpu_seconds"] / (size / GiB)
        out["reactor_busy"] = raw["reactor_cpu_seconds"] / raw["total_seconds"]
    if raw.get("seeder_cpu_seconds") is not None:
        out["seeder_cpu_s_per_gib"] = raw["seeder_cpu_seconds"] / (size / GiB)
    return out


class Bench:
    """The data, the torrents, the processes and the transfers."""

    def __init__(
        self, args: argparse.Namespace, root: str, children: Children,
        baseline: Checkout | None = None,
    ) -> None:
        self.args = args
        self.root = root
        self.children = children
        self.baseline = baseline
        """Whose ``tx-leech`` child runs as ``baseline_name(baseline)``, if any."""
        self.size = args.size_mib * MiB
        self.source_dir = os.path.join(root, "seed")
        self.source_sha1 = ""
        self.names: list[str] = []
        self.torrent_path = os.path.join(root, "plain.torrent")
        self.tracked_path = ""
        self.pieces = 0
        self.seeders: dict[str, Child] = {}
        self.ports: dict[str, int] = {}
        self._transfer = 0

    def prepare(self, need_tracker: bool) -> None:
        from txbittorrent.core.metainfo import parse
        from txbittorrent.storage.create import create_torrent

        os.makedirs(self.source_dir)
        if self.args.files > 1:
            path = os.path.join(self.source_dir, TREE_NAME)
            self.names, self.source_sha1 = write_tree(
                path, mixed_sizes(self.size, self.args.files))
        else:
            path = os.path.join(self.source_dir, DATA_NAME)
            self.source_sha1 = write_random_file(path, self.size)
        raw = create_torrent(path, piece_length=self.args.piece_length)
        self.pieces = parse(raw).piece_count
        with open(self.torrent_path, "wb") as f:
            f.write(raw)
        seed_torrent = self.torrent_path
        if need_tracker:
            # libtorrent re-announces at most every 300 s (min_announce_interval),
            # and our tracker forgets a peer after two intervals: with 60 s it
            # dropped the seeder from a long run and aria2c found nobody.
            _, hello = self.children.start_server("tracker", {"interval": 1800}, START_TIMEOUT)
            self.tracked_path = os.path.join(self.root, "tracked.torrent")
            with open(self.tracked_path, "wb") as f:
                f.write(with_tracker(raw, hello["url"]))
            seed_torrent = self.tracked_path
        spec = {"torrent": seed_torrent, "dir": self.source_dir,
                "tracker": bool(need_tracker)}
        child, hello = self.children.start_server("lt-seed", spec, START_TIMEOUT)
        if need_tracker and not hello.get("announced"):
            print("warning: the libtorrent seeder's announce got no reply", file=sys.stderr)
        self.seeders["libtorrent"], self.ports["libtorrent"] = child, hello["port"]
        if self.args.seed_test:
            spec = {"torrent": self.torrent_path, "dir": self.source_dir}
            child, hello = self.children.start_server("tx-seed", spec, START_TIMEOUT)
            self.seeders["txbittorrent"], self.ports["txbittorrent"] = child, hello["port"]

    def transfer(self, leecher: str, seeder: str, run: int) -> Result:
        """One download by ``leecher`` from ``seeder``, verified; its figures."""
        self._transfer += 1
        directory = os.path.join(self.root, f"leech-{self._transfer:03d}-{leecher}")
        os.makedirs(directory)
        seed_child = self.seeders[seeder]
        time.sleep(self.args.settle)
        waited = self._wait_quiet()
        seed_child.peak_anon_kib = 0
        ours0 = self._our_cpu()
        busy0, wall0 = machine_busy(), time.monotonic()
        seed_cpu0 = proc_cpu(seed_child.pid)
        try:
            if leecher == "aria2":
                raw = self._aria2(directory, seed_child)
            else:
                raw = self._child_leecher(leecher, directory, seeder, run)
            seed_cpu1 = proc_cpu(seed_child.pid)
            busy1, wall1 = machine_busy(), time.monotonic()
            raw.update(leecher=leecher, seeder=seeder)
            if waited is not None:
                raw["waited_for_quiet"] = waited
            if seed_cpu0 is not None and seed_cpu1 is not None:
                raw["seeder_cpu_seconds"] = seed_cpu1 - seed_cpu0
            if busy0 is not None and busy1 is not None:
                # What other processes took from the machine meanwhile: the
                # machine's busy time less ours (the leecher's whole life, the
                # other children's and this process's share of the window).
                ours = self._our_cpu() - ours0 + (raw.get("process_cpu_seconds") or 0.0)
                raw["others_cpu_share"] = max(0.0, busy1 - busy0 - ours) / (
                    (wall1 - wall0) * (os.cpu_count() or 1))
            raw["seeder_peak_anon_mib"] = seed_child.peak_anon_kib / 1024
            raw["seeder_vmhwm_mib"] = proc_status(seed_child.pid).get("VmHWM", 0) / 1024
            if raw["verified"] and self.names:
                if tree_sha1(os.path.join(directory, TREE_NAME), self.names) != self.source_sha1:
                    raw.update(verified=False, note="the downloaded files differ or are missing")
            elif raw["verified"]:
                got = os.path.join(directory, DATA_NAME)
                if not os.path.exists(got) or os.path.getsize(got) != self.size:
                    raw.update(verified=False, note="the downloaded file is missing or short")
                elif sha1_file(got) != self.source_sha1:
                    raw.update(verified=False, note="the downloaded data differs from the source")
            return finish(raw, self.size)
        finally:
            shutil.rmtree(directory, ignore_errors=True)

    def _wait_quiet(self) -> float | None:
        """With ``--wait-quiet PCT``: wait until the machine's CPU use (ours
        included: the seeders idle) stays below PCT% for ``QUIET_WINDOW``
        seconds, or ``--quiet-timeout`` passes; the seconds waited."""
        if self.args.wait_quiet is None:
            return None
        limit = self.args.wait_quiet / 100 * QUIET_WINDOW * (os.cpu_count() or 1)
        start = time.monotonic()
        while time.monotonic() - start < self.args.quiet_timeout:
            before = machine_busy()
            time.sleep(QUIET_WINDOW)
            after = machine_busy()
            if before is None or after is None or after - before < limit:
                break
        return time.monotonic() - start

    def _our_cpu(self) -> float:
        """CPU seconds used so far by this process and the long-lived children."""
        total = own_usage()["cpu"]
        for child in self.children.all:
            if child.proc.returncode is None and child.name != "aria2c":
                total += proc_cpu(child.pid) or 0.0
        return total

    def _child_leecher(self, leecher: str, directory: str, seeder: str, run: int) -> Result:
        code_root = ROOT
        if leecher == "libtorrent":
            role = "lt-leech"
        elif leecher == "txbittorrent":
            role = "tx-leech"
        elif self.baseline is not None and leecher == baseline_name(self.baseline):
            role, code_root = "tx-leech", self.baseline.root  # its own child, its own code
        else:
            raise ValueError(f"no child process for the leecher {leecher!r}")
        spec: dict[str, Any] = {
            "torrent": self.torrent_path, "dir": directory, "peer": self.ports[seeder],
            "pieces": self.pieces, "timeout": self.args.timeout,
        }
        profiled = role == "tx-leech" and self.args.profile_dir
        if profiled:
            spec["profile"] = os.path.join(
                os.path.abspath(self.args.profile_dir),
                f"{leecher}-from-{seeder}-run{run + 1}.pstats")
        seed_child = self.seeders[seeder]
        child = self.children.start_role(
            role, spec, root=code_root, name=f"{role}-{leecher}")
        try:
            # The leecher's own start-up comes on top of the transfer's time limit.
            message = child.message(self.args.timeout + START_TIMEOUT, also=[seed_child])
            exited = child.wait(EXIT_TIMEOUT, also=[seed_child])
        finally:
            child.stop()
        if message is None or message.get("event") != "result":
            return {"verified": False, "note": f"no result from the leecher: "
                    f"{tail(child.log_path, 300)!r}"}
        raw: Result = {
            "verified": bool(message["ok"]),
            "seconds": message["seconds"] - (message["connected"] or 0.0),
            "connect_seconds": message["connected"],
            "total_seconds": message["seconds"],
            "cpu_seconds": message["cpu"],
            "cpu_scope": "transfer",
            # txbittorrent only: the reactor thread's share (the rest is its
            # pool threads: SHA-1 and writes).
            "reactor_cpu_seconds": message.get("reactor_cpu"),
            "thread_cpu_seconds": message.get("threads"),
            "process_cpu_seconds": _process_cpu(child.rusage),
            "peak_rss_mib": _maxrss_mib(child.rusage),
            "peak_anon_mib": child.peak_anon_kib / 1024,
            "pieces": message["pieces"],
            "wall_from": "connected, as the leecher reports",
        }
        if profiled:
            raw["profiled"] = spec["profile"]
        if message.get("note"):
            raw["note"] = message["note"]
        elif not message["ok"]:
            raw["note"] = f"{message['pieces']}/{self.pieces} pieces"
        if not message["ok"]:
            raw["log_tail"] = tail(child.log_path)  # in the JSON: what went wrong
        if not exited:
            raw["exit"] = "killed after reporting"
        return raw

    def _aria2(self, directory: str, seed_child: Child) -> Result:
        stamp = os.path.join(self.root, f"aria2-done-{self._transfer:03d}")
        hook = stamp + ".sh"
        with open(hook, "w") as f:
            f.write(f"#!/bin/sh\ndate +%s.%N > '{stamp}'\n")
        os.chmod(hook, 0o755)
        timeout = self.args.timeout
        child = self.children.start("aria2c", aria2_argv(
            self.tracked_path, directory, free_port(), hook, int(timeout)), messages=False)
        try:
            ended = child.wait(timeout + 10, also=[seed_child])
        finally:
            child.stop()
        code = child.proc.returncode
        try:
            with open(stamp) as f:
                done_at = float(f.read().strip())
        except (OSError, ValueError):
            done_at = None
        if not ended or code != 0 or done_at is None:
            why = "timed out" if not ended else f"exit status {code}"
            return {"verified": False, "note": f"aria2c {why}: {tail(child.log_path, 300)!r}"}
        return {
            "verified": True,
            "seconds": done_at - child.started,
            "connect_seconds": None,
            "total_seconds": done_at - child.started,
            "cpu_seconds": _process_cpu(child.rusage),
            "cpu_scope": "process",
            "process_cpu_seconds": _process_cpu(child.rusage),
            "peak_rss_mib": _maxrss_mib(child.rusage),
            "peak_anon_mib": child.peak_anon_kib / 1024,
            "wall_from": "launch to on-bt-download-complete",
            "process_seconds": time.time() - child.started,
        }


def with_tracker(raw: bytes, url: str) -> bytes:
    """The torrent ``raw`` with ``url`` as its tracker; the info dictionary
    (and so the info hash) unchanged."""
    from txbittorrent.core.bencoding import decode, encode
    from txbittorrent.core.metainfo import parse

    meta = decode(raw)
    meta[b"announce"] = url.encode()
    out = encode(meta)
    if parse(out).info_hash != parse(raw).info_hash:
        raise RuntimeError("re-encoding the torrent changed its info hash")
    return out


def aria2_argv(torrent: str, directory: str, port: int, hook: str, timeout: int) -> list[str]:
    """aria2c downloading ``torrent`` into ``directory`` on loopback: no DHT,
    LPD or PEX, no seeding afterwards, ``hook`` run once the download is complete."""
    aria2c = shutil.which("aria2c")
    assert aria2c is not None
    return [
        aria2c,
        "--dir", directory,
        "--enable-dht=false", "--enable-dht6=false",
        "--bt-enable-lpd=false", "--enable-peer-exchange=false",
        "--disable-ipv6=true",
        "--listen-port", str(port),
        "--seed-time=0",
        "--bt-stop-timeout", str(timeout),
        "--summary-interval=0", "--console-log-level=warn",
        "--file-allocation=none",
        "--on-bt-download-complete", hook,
        torrent,
    ]


# -- the parent: the report -----------------------------------------------------------

FIGURES = (
    "mb_s", "seconds", "connect_seconds", "total_seconds", "cpu_s_per_gib",
    "reactor_cpu_s_per_gib", "reactor_busy", "others_cpu_share", "peak_rss_mib",
    "peak_anon_mib", "seeder_cpu_s_per_gib", "seeder_peak_anon_mib",
)
"""The figures whose medians are reported (those a client lacks are None)."""


def summarise(results: dict[str, list[Result]]) -> dict[str, dict[str, float | None]]:
    """Medians of each figure over the verified runs, per client."""
    return {
        name: {f: median(r.get(f) for r in runs if r["verified"]) for f in FIGURES}
        for name, runs in results.items()
    }


def spreads(
    results: dict[str, list[Result]]
) -> dict[str, dict[str, tuple[float, float] | None]]:
    """(min, max) of each figure over the verified runs, per client: how far
    apart the runs behind each median lay."""
    return {
        name: {f: spread(r.get(f) for r in runs if r["verified"]) for f in FIGURES}
        for name, runs in results.items()
    }


def compare(
    medians: dict[str, dict[str, float | None]], figures: Sequence[str],
    a: str = "txbittorrent", b: str = "libtorrent",
) -> dict[str, Any]:
    """The ratios ``a`` / ``b`` of the medians of ``figures``; empty if either is absent."""
    x, y = medians.get(a), medians.get(b)
    if x is None or y is None:
        return {}
    return {f: ratio(x[f], y[f]) for f in figures}


def _fmt(value: float | None, width: int, digits: int = 1) -> str:
    return f"{'failed' if value is None else f'{value:.{digits}f}':>{width}}"


def _pct(share: float | None) -> str:
    return f"{'-' if share is None else f'{100 * share:.0f}%':>6}"


def _connect(value: float | None, runs: list[Result]) -> str:
    """The connect-time cell: "-" where the client does not report it."""
    if value is None and any(r["verified"] for r in runs):
        return f"{'-':>9}"
    return _fmt(value, 9, 2)


def _per_run(runs: list[Result]) -> str:
    return " ".join(
        f"{r['mb_s']:.0f}{'p' if r.get('profiled') else ''}" if r["verified"]
        else f"failed({r.get('note') or 'not verified'})"
        for r in runs
    )


def _ratio_line(label: str, ratios: dict[str, Any], names: dict[str, str]) -> str:
    parts = [f"{title} {'n/a' if ratios.get(f) is None else format(ratios[f], '.2f')}"
             for f, title in names.items()]
    return f"{label}: " + ", ".join(parts)


DOWNLOAD_SPREAD = (
    ("mb_s", "MB/s", 0), ("seconds", "wall s", 2), ("connect_seconds", "connect s", 2),
    ("cpu_s_per_gib", "CPU s/GiB", 2), ("peak_rss_mib", "RSS MiB", 0),
    ("peak_anon_mib", "anon MiB", 0), ("others_cpu_share", "others", None),
)
SEED_SPREAD = (
    ("mb_s", "MB/s", 0), ("seconds", "wall s", 2), ("connect_seconds", "connect s", 2),
    ("seeder_cpu_s_per_gib", "seed CPU/GiB", 2), ("seeder_peak_anon_mib", "seed anon MiB", 0),
    ("cpu_s_per_gib", "leech CPU/GiB", 2), ("others_cpu_share", "others", None),
)
"""The spread table's columns: figure, title, digits (None: a share, in %)."""


def _range(bounds: Sequence[float] | None, digits: int | None) -> str:
    if bounds is None:
        return "-"
    low, high = bounds
    if digits is None:
        return f"{100 * low:.0f}-{100 * high:.0f}%"
    return f"{low:.{digits}f}-{high:.{digits}f}"


def _spread_lines(
    label: str, results: dict[str, list[Result]], columns: Sequence[tuple[str, str, int | None]],
    width: int,
) -> list[str]:
    """The spread (min-max over the verified runs) behind each median of a table."""
    lines = [f"{label:<{width}} " + " ".join(f"{title:>13}" for _, title, _ in columns)]
    for name, by_figure in spreads(results).items():
        lines.append(f"{name:<{width}} " + " ".join(
            f"{_range(by_figure[f], digits):>13}" for f, _, digits in columns))
    return lines


def table(report: dict[str, Any]) -> str:
    cfg, env = report["config"], report["environment"]
    lines = [
        f"download benchmark: {cfg['size_mib']} MiB file, piece length {cfg['piece_length']} "
        f"({cfg['pieces']} pieces), {cfg['runs']} run(s), {env['cpu_count']} CPUs, "
        f"load average before/after {env['load_before']:.2f}/{env['load_after']:.2f}",
        f"libtorrent {env['libtorrent']}, Python {env['python']}; every client in its own "
        "process on 127.0.0.1, one transfer at a time",
        "libtorrent over TCP only (uTP off), its leechers dial without encryption; connect s: "
        "from the leecher being given the seeder (its start-up done) to connected",
        "wall s: from connected to every piece verified, as the leecher reports it; aria2c: "
        "from its launch to its download-complete hook",
        "MB/s = 10**6 bytes / wall; CPU s/GiB: the leecher's user+system time from being "
        "given the seeder to the end (aria2c: its whole life)",
        "RSS: peak resident set over the leecher's life (libtorrent's includes the "
        "memory-mapped torrent); anon: peak anonymous RSS, sampled every 0.1 s",
        "medians of the runs verified byte for byte (SHA-1 of the whole file); "
        "the spread (min-max of those runs) below each table",
    ]
    baseline = cfg.get("baseline")
    if baseline:
        lines.append(
            f"{baseline['leecher']}: the txbittorrent leecher of commit {baseline['commit']} "
            f"({baseline['ref']}), its own bench.download child run from a clean copy")
    others = [r["others_cpu_share"] for part in ("download", "seed") if report.get(part)
              for runs in report[part]["results"].values() for r in runs
              if r.get("others_cpu_share") is not None]
    if others:
        lines.append(
            "others: the share of the machine's CPU that other processes took during the "
            f"transfers (median {100 * (median(others) or 0):.0f}%, at most "
            f"{100 * max(others):.0f}%); on a busy machine MB/s means little, CPU s/GiB more")
    download = report.get("download")
    if download:
        width = max([14, *(len(name) for name in download["results"])])
        lines += [
            "",
            "download from a libtorrent seeder",
            f"{'leecher':<{width}} {'MB/s':>8} {'wall s':>8} {'connect s':>9} {'CPU s/GiB':>10} "
            f"{'RSS MiB':>8} {'anon MiB':>9} {'others':>6}  {'ok':>5}  per run (MB/s)",
        ]
        for name, runs in download["results"].items():
            m = download["medians"][name]
            ok = sum(r["verified"] for r in runs)
            lines.append(
                f"{name:<{width}} {_fmt(m['mb_s'], 8)} {_fmt(m['seconds'], 8, 2)} "
                f"{_connect(m['connect_seconds'], runs)} "
                f"{_fmt(m['cpu_s_per_gib'], 10, 2)} {_fmt(m['peak_rss_mib'], 8)} "
                f"{_fmt(m['peak_anon_mib'], 9)} {_pct(m['others_cpu_share'])}  "
                f"{ok}/{len(runs):<3}  {_per_run(runs)}"
            )
        for name, m in download["medians"].items():
            if m.get("reactor_cpu_s_per_gib") is not None and m.get("reactor_busy") is not None:
                lines.append(
                    f"{'':<{width}} {name}'s reactor thread: {m['reactor_cpu_s_per_gib']:.2f} "
                    f"CPU s/GiB, busy {100 * m['reactor_busy']:.0f}% of the time")
        for name, why in report.get("skipped", {}).items():
            lines.append(f"{name:<{width}} skipped: {why}")
        lines += ["", "spread: min-max of the verified runs"]
        lines += _spread_lines("leecher", download["results"], DOWNLOAD_SPREAD, width)
        if download["ratios"]:
            lines += ["", _ratio_line("txbittorrent / libtorrent", download["ratios"], {
                "mb_s": "MB/s", "cpu_s_per_gib": "CPU s/GiB", "peak_rss_mib": "RSS",
                "peak_anon_mib": "anon"})]
        if download.get("baseline_ratios"):
            if not download["ratios"]:
                lines.append("")
            label = f"txbittorrent / baseline {baseline['leecher'] if baseline else ''}"
            lines.append(_ratio_line(label.rstrip(), download["baseline_ratios"], {
                "mb_s": "MB/s", "cpu_s_per_gib": "CPU s/GiB", "peak_rss_mib": "RSS",
                "peak_anon_mib": "anon"}))
    seed = report.get("seed")
    if seed:
        width = max([14, *(len(name) for name in seed["results"])])
        lines += [
            "",
            "seed test: each seeder serves a libtorrent leecher; seeder CPU from "
            "/proc/<pid>/stat over the transfer, anon RSS sampled",
            f"{'seeder':<{width}} {'MB/s':>8} {'wall s':>8} {'connect s':>9} "
            f"{'seed CPU/GiB':>13} {'seed anon MiB':>14} {'leech CPU/GiB':>14} {'others':>6}  "
            f"{'ok':>5}  per run (MB/s)",
        ]
        for name, runs in seed["results"].items():
            m = seed["medians"][name]
            ok = sum(r["verified"] for r in runs)
            lines.append(
                f"{name:<{width}} {_fmt(m['mb_s'], 8)} {_fmt(m['seconds'], 8, 2)} "
                f"{_connect(m['connect_seconds'], runs)} "
                f"{_fmt(m['seeder_cpu_s_per_gib'], 13, 2)} "
                f"{_fmt(m['seeder_peak_anon_mib'], 14)} {_fmt(m['cpu_s_per_gib'], 14, 2)} "
                f"{_pct(m['others_cpu_share'])}  {ok}/{len(runs):<3}  {_per_run(runs)}"
            )
        lines += ["", "spread: min-max of the verified runs"]
        lines += _spread_lines("seeder", seed["results"], SEED_SPREAD, width)
        if seed["ratios"]:
            lines += ["", _ratio_line("txbittorrent / libtorrent (seeding)", seed["ratios"], {
                "mb_s": "MB/s", "seeder_cpu_s_per_gib": "seeder CPU s/GiB",
                "seeder_peak_anon_mib": "seeder anon"})]
    if report.get("profile_dir"):
        lines += ["", f"p: run under cProfile; profiles in {report['profile_dir']}"]
    return "\n".join(lines)


# -- the parent: main -----------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    leechers = list(args.leechers)
    skipped: dict[str, str] = {}
    if "aria2" in leechers and shutil.which("aria2c") is None:
        leechers.remove("aria2")
        skipped["aria2"] = "aria2c is not installed"
    load_before = os.getloadavg()[0]
    seeding: dict[str, list[Result]] = {name: [] for name in SEEDERS} if args.seed_test else {}
    baseline: Checkout | None = None
    with tempfile.TemporaryDirectory(prefix="txbt-bench-dl-", dir=TMP_BASE) as root:
        if args.baseline:
            # Removed with the temporary directory; the repository is not touched.
            baseline = prepare_baseline(args.baseline, os.path.join(root, "baseline"))
            print(f"baseline {baseline_name(baseline)}: commit {baseline.commit}, "
                  f"copied to {baseline.root}", file=sys.stderr)
            # Next to ours, so that the two take their turns one after the other.
            at = leechers.index("txbittorrent") + 1 if "txbittorrent" in leechers else 0
            leechers.insert(at, baseline_name(baseline))
        download: dict[str, list[Result]] = {name: [] for name in leechers}
        children = Children(root, "bench.download")
        try:
            bench = Bench(args, root, children, baseline)
            bench.prepare(need_tracker="aria2" in leechers)
            for n in range(args.runs):
                # Every other run in the reverse order, so that no client is
                # always the first after the pause (or after the other).
                for leecher in leechers if n % 2 == 0 else leechers[::-1]:
                    download[leecher].append(bench.transfer(leecher, "libtorrent", n))
                for seeder in seeding:
                    seeding[seeder].append(bench.transfer("libtorrent", seeder, n))
                print(f"run {n + 1}/{args.runs} done", file=sys.stderr)
        finally:
            children.stop_all()
            if args.keep_logs:
                os.makedirs(args.keep_logs, exist_ok=True)
                for child in children.all:
                    shutil.copy(child.log_path, args.keep_logs)
    report: dict[str, Any] = {
        "config": {
            "size_mib": args.size_mib,
            "piece_length": args.piece_length,
            "pieces": bench.pieces,
            "runs": args.runs,
            "leechers": leechers,
            "seed_test": args.seed_test,
            "timeout": args.timeout,
            "settle": args.settle,
            "baseline": None if baseline is None else {
                "ref": baseline.ref, "commit": baseline.commit, "short": baseline.short,
                "leecher": baseline_name(baseline)},
        },
        "environment": environment(load_before),
        "skipped": skipped,
        "profile_dir": args.profile_dir,
        "workdir": root,
        "pids": [child.pid for child in children.all],
    }
    if download:
        medians = summarise(download)
        figures = ("mb_s", "seconds", "cpu_s_per_gib", "peak_rss_mib", "peak_anon_mib")
        report["download"] = {
            "results": download,
            "medians": medians,
            "spreads": spreads(download),
            "ratios": compare(medians, figures),
            "baseline_ratios": None if baseline is None else compare(
                medians, figures, "txbittorrent", baseline_name(baseline)),
        }
    if seeding:
        medians = summarise(seeding)
        report["seed"] = {
            "results": seeding,
            "medians": medians,
            "spreads": spreads(seeding),
            "ratios": compare(medians, ("mb_s", "seconds", "seeder_cpu_s_per_gib",
                                        "seeder_peak_anon_mib", "cpu_s_per_gib")),
        }
    print(table(report))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=2)
    failed = any(not r["verified"] for part in (download, seeding)
                 for runs in part.values() for r in runs)
    return 1 if failed else 0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.download", description=__doc__.split("\n")[0])
    p.add_argument("--size-mib", type=int, default=1024)
    p.add_argument("--files", type=int, default=1,
                   help="1: one file (default); N > 1: N files of mixed sizes in nested "
                        "directories (e.g. 2000)")
    p.add_argument(
        "--piece-length", type=int, default=None, help="default 1048576 (262144 with --tiny)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--leechers", default=",".join(LEECHERS),
                   help=f"comma-separated, from {','.join(LEECHERS)}; empty for none")
    p.add_argument("--seed-test", action="store_true",
                   help="also time txbittorrent and libtorrent seeding to a libtorrent leecher")
    p.add_argument("--json", metavar="PATH", help="also save the raw figures as JSON")
    p.add_argument("--tiny", action="store_true", help="8 MiB, one run (for the test suite)")
    p.add_argument("--timeout", type=float, default=None,
                   help="seconds per transfer (default 600; 60 with --tiny)")
    p.add_argument("--wait-quiet", type=float, metavar="PCT",
                   help="before each transfer, wait until the machine's CPU use stays below "
                        f"PCT%% of all CPUs for {QUIET_WINDOW:.0f} s (a shared machine)")
    p.add_argument("--settle", type=float, default=None,
                   help="seconds to pause before each transfer, so that every transfer "
                        "finds the machine's free memory in the same state (default 10; 0 with "
                        "--tiny); see bench/README")
    p.add_argument("--quiet-timeout", type=float, default=600.0,
                   help="seconds --wait-quiet waits at most (then the transfer runs anyway)")
    p.add_argument("--profile-dir", metavar="DIR",
                   help="run the txbittorrent leecher under cProfile, saving .pstats here")
    p.add_argument("--keep-logs", metavar="DIR", help="copy every child's log here at the end")
    p.add_argument("--baseline", metavar="REF",
                   help="also run the txbittorrent leecher of commit REF of this repository "
                        "(a clean copy of it, its own bench child), as txbittorrent@<sha>")
    p.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        return args
    if args.tiny:
        args.size_mib, args.runs = 8, 1
        args.piece_length = args.piece_length or 256 * 1024
        args.timeout = args.timeout or 60.0
        args.settle = 0.0 if args.settle is None else args.settle
    args.settle = 10.0 if args.settle is None else args.settle
    args.piece_length = args.piece_length or 1024 * 1024
    args.timeout = args.timeout or 600.0
    args.leechers = [name for name in args.leechers.split(",") if name]
    unknown = set(args.leechers) - set(LEECHERS)
    if unknown:
        p.error(f"unknown leechers {sorted(unknown)}; choose from {','.join(LEECHERS)}")
    if not args.leechers and not args.seed_test and not args.baseline:
        p.error("nothing to measure: no leechers, no --seed-test and no --baseline")
    if args.files < 1 or args.files > args.size_mib * 1024:
        p.error("--files must be between 1 and one file per KiB of data")
    if args.size_mib < 1 or args.runs < 1 or args.piece_length < 16 * 1024:
        p.error("--size-mib and --runs must be positive, --piece-length at least 16384")
    if args.baseline:
        try:
            resolve_commit(args.baseline)  # a typo fails here, before 1 GiB is written
        except ValueError as e:
            p.error(f"--baseline: {e}")
    if args.profile_dir:
        os.makedirs(args.profile_dir, exist_ok=True)
    if args.json and os.path.dirname(args.json):
        os.makedirs(os.path.dirname(args.json), exist_ok=True)  # not found after the runs
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.child:
        CHILDREN[args.child](json.loads(args.spec))
        return
    try:
        import libtorrent  # noqa: F401  (the seeder is libtorrent)
    except ImportError:
        sys.exit("bench.download needs libtorrent's Python bindings (pip install libtorrent)")

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")  # so that children are ended

    signal.signal(signal.SIGTERM, terminated)
    sys.exit(run(args))


if __name__ == "__main__":
    main()
