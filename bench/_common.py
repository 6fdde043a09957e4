"""Helpers shared by the benchmarks: data files, the machine's description,
medians, what ``/proc`` says about processes, child processes (``Child``,
``Children``: each child's output goes to a log file or, for JSON messages,
to a pipe read with a deadline; every child is ended by ``stop_all``), and
clean copies of another commit of this repository (``checkout``), whose
children run that commit's code (``Child(root=...)``).

Nothing here imports Twisted or libtorrent: child processes of a benchmark
import this module too, and must start quickly.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import selectors
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

CHUNK = 16 * 1024 * 1024
MiB = 1024 * 1024
GiB = 1024 * MiB
LOOPBACK = "127.0.0.1"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
"""The checkout's root: child processes run there, with it on PYTHONPATH."""
SAMPLE_INTERVAL = 0.1
"""Seconds between two samples of a child's anonymous RSS while waiting on it."""

TMP_BASE = "/tmp" if os.path.isdir("/tmp") else None
"""Where benchmarks make their temporary directories."""

LT_LOCAL_SETTINGS: dict[str, Any] = {
    "listen_interfaces": f"{LOOPBACK}:0",
    "enable_dht": False,
    "enable_lsd": False,
    "enable_upnp": False,
    "enable_natpmp": False,
    # Every peer of a loopback benchmark shares one address.
    "allow_multiple_connections_per_ip": True,
}
"""libtorrent settings for a session that stays on 127.0.0.1 and discovers
nothing by itself (the same as ``tests/integration/ltutil.BASE_SETTINGS``)."""

Result = dict[str, Any]


def write_random_file(path: str, size: int, sync: bool = True) -> str:
    """Write ``size`` random bytes to ``path`` (flushed to disk unless ``sync``
    is false); return their SHA-1 (hex)."""
    digest = hashlib.sha1()
    with open(path, "wb") as f:
        written = 0
        while written < size:
            chunk = os.urandom(min(CHUNK, size - written))
            f.write(chunk)
            digest.update(chunk)
            written += len(chunk)
        if sync:
            f.flush()
            os.fsync(f.fileno())  # so write-back does not run during the timings
    return digest.hexdigest()


def sha1_file(path: str) -> str:
    """The SHA-1 (hex) of the file at ``path``."""
    digest = hashlib.sha1()
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def environment(load_before: float) -> dict[str, Any]:
    """What the figures depend on, with the 1-minute load average before and now."""
    try:
        import libtorrent

        lt_version = libtorrent.__version__
    except ImportError:  # pragma: no cover - depends on the machine
        lt_version = None
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "openssl": ssl.OPENSSL_VERSION,
        "libtorrent": lt_version,
        "load_before": load_before,
        "load_after": os.getloadavg()[0],
    }


def median(values: Iterable[float | None]) -> float | None:
    """The median of the values that are not None (None if there are none)."""
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def spread(values: Iterable[float | None]) -> tuple[float, float] | None:
    """(min, max) of the values that are not None (None if there are none)."""
    present = [v for v in values if v is not None]
    return (min(present), max(present)) if present else None


def ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


# -- processes -------------------------------------------------------------------------


def own_usage() -> dict[str, float]:
    """This process's CPU seconds so far (user + system, every thread)."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"cpu": r.ru_utime + r.ru_stime}


def proc_status(pid: int | str = "self") -> dict[str, int]:
    """From ``/proc/<pid>/status``: VmRSS, VmHWM (the peak RSS), RssAnon and
    RssFile in KiB, and Threads.  Empty where there is no /proc."""
    out: dict[str, int] = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile", "Threads"):
                    out[key] = int(value.split()[0])
    except (OSError, ValueError):
        pass
    return out


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def proc_cpu(pid: int) -> float | None:
    """CPU seconds (user + system, every thread) another process has used so
    far, from ``/proc/<pid>/stat``; None where there is no /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    # The command name (field 2) may hold spaces; fields after it are plain.
    fields = stat[stat.rindex(")") + 2 :].split()
    utime, stime = int(fields[11]), int(fields[12])
    return (utime + stime) / _CLOCK_TICKS


def thread_cpu() -> dict[str, tuple[float, float]]:
    """(user, system) CPU seconds so far of each of this process's threads,
    keyed by "<name> <tid>" (from ``/proc/self/task``; the name is the
    kernel's, which Python does not set for its own threads: the main thread
    is called so); empty where there is no /proc."""
    out: dict[str, tuple[float, float]] = {}
    try:
        tids = os.listdir("/proc/self/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/self/task/{tid}/stat") as f:
                stat = f.read()
        except OSError:
            continue  # the thread ended meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        if tid == str(os.getpid()):
            name = "main thread"
        fields = stat[stat.rindex(")") + 2 :].split()
        out[f"{name} {tid}"] = (int(fields[11]) / _CLOCK_TICKS, int(fields[12]) / _CLOCK_TICKS)
    return out


def thread_cpu_delta(
    before: dict[str, tuple[float, float]], after: dict[str, tuple[float, float]]
) -> dict[str, dict[str, float]]:
    """{"user": s, "sys": s} each thread used between two ``thread_cpu()``
    snapshots, busiest first; threads below 10 ms left out."""
    used = {}
    for key, (user, system) in after.items():
        user0, system0 = before.get(key, (0.0, 0.0))
        if user - user0 + system - system0 >= 0.01:
            used[key] = {"user": round(user - user0, 2), "sys": round(system - system0, 2)}
    return dict(sorted(used.items(), key=lambda kv: -(kv[1]["user"] + kv[1]["sys"])))


def machine_busy() -> float | None:
    """CPU seconds the whole machine has spent busy (every CPU, every
    process: user, nice, system, irq, softirq, steal) since boot, from
    ``/proc/stat``; None where there is no /proc."""
    try:
        with open("/proc/stat") as f:
            fields = f.readline().split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in fields[1:9])
    return (user + nice + system + irq + softirq + steal) / _CLOCK_TICKS


class LineReader:
    """Reads newline-terminated lines from a child's stdout, with a deadline."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._buffer = b""
        self._eof = False

    @property
    def eof(self) -> bool:
        """The child closed its end (nothing more will come)."""
        return self._eof

    def readline(self, timeout: float) -> bytes | None:
        """The next line (without its newline), or None at end of file or timeout."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            selector.register(self._fd, selectors.EVENT_READ)
            while b"\n" not in self._buffer and not self._eof:
                left = deadline - time.monotonic()
                if left <= 0 or not selector.select(left):
                    return None
                data = os.read(self._fd, 65536)
                if data:
                    self._buffer += data
                else:
                    self._eof = True
        if b"\n" not in self._buffer:
            return None
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line


def tail(path: str, limit: int = 1500) -> str:
    """The last ``limit`` characters of a log file ('' if unreadable)."""
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - limit))
            return f.read().decode(errors="replace")
    except OSError:
        return ""


# -- child processes, the parent's side ---------------------------------------------


def _die_with_parent() -> None:  # pragma: no cover - runs in the child before exec
    """Ask Linux to kill this child if the benchmark dies without cleaning up."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except Exception:
        pass


def child_env(root: str = ROOT) -> dict[str, str]:
    """This process's environment with ``root`` first on PYTHONPATH; for
    another checkout than ours, our own root is taken off it, so that the
    child imports that checkout's ``txbittorrent`` and ``bench`` only."""
    inherited = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    if os.path.realpath(root) != os.path.realpath(ROOT):
        inherited = [p for p in inherited if os.path.realpath(p) != os.path.realpath(ROOT)]
    return dict(os.environ, PYTHONPATH=os.pathsep.join([root, *inherited]))


class Child:
    """One process the benchmark started, in ``root`` (our checkout, or a
    ``Checkout``'s) with that root on its PYTHONPATH."""

    def __init__(
        self, name: str, argv: list[str], log_path: str, messages: bool, root: str = ROOT
    ) -> None:
        self.name = name
        self.log_path = log_path
        self.root = root
        self._log = open(log_path, "wb")
        self.started = time.time()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE if messages else self._log,
            stderr=self._log,
            cwd=root,
            env=child_env(root),
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        self._lines = LineReader(self.proc.stdout.fileno()) if self.proc.stdout else None
        self.rusage: Any = None
        self.peak_anon_kib = 0

    @property
    def pid(self) -> int:
        return self.proc.pid

    def sample(self) -> None:
        """Note the anonymous RSS now (for the peak)."""
        if self.proc.returncode is None:
            anon = proc_status(self.pid).get("RssAnon", 0)
            self.peak_anon_kib = max(self.peak_anon_kib, anon)

    def message(self, timeout: float, also: Sequence[Child] = ()) -> dict[str, Any] | None:
        """The next JSON message (None on timeout or exit), sampling the RSS
        of this process and of ``also`` meanwhile."""
        assert self._lines is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for child in (self, *also):
                child.sample()
            line = self._lines.readline(min(SAMPLE_INTERVAL, deadline - time.monotonic()))
            if line is None:
                if self.exited():
                    return None
                continue
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict):
                return message
        return None

    def exited(self) -> bool:
        """Reap the process if it has ended (keeping its resource usage)."""
        if self.proc.returncode is not None:
            return True
        pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
        if pid == 0:
            return False
        self.rusage = rusage
        # Popen must know, or it would signal a pid that may be reused.
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return True

    def wait(self, timeout: float, also: Sequence[Child] = ()) -> bool:
        """Wait for the process to end (sampling RSS); True if it did."""
        deadline = time.monotonic() + timeout
        while not self.exited():
            if time.monotonic() >= deadline:
                return False
            for child in (self, *also):
                child.sample()
            time.sleep(0.02)
        return True

    def stop(self) -> None:
        """End the process: SIGTERM, then SIGKILL after a few seconds."""
        try:
            if not self.exited():
                self.proc.terminate()
                if not self.wait(5.0):
                    self.proc.kill()
                    self.wait(30.0)
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()
            self._log.close()


class Children:
    """Every process started (logs in ``directory``), so that all of them are
    ended in the end.  Roles are run as ``python -m <module> --child ROLE``."""

    def __init__(self, directory: str, module: str) -> None:
        self.directory = directory
        self.module = module
        self.all: list[Child] = []
        self._count = 0

    def start(
        self, name: str, argv: list[str], messages: bool = True, root: str = ROOT
    ) -> Child:
        self._count += 1
        log = os.path.join(self.directory, f"{self._count:03d}-{name}.log")
        child = Child(name, argv, log, messages, root)
        self.all.append(child)
        return child

    def start_role(
        self, role: str, spec: dict[str, Any], root: str = ROOT, name: str | None = None
    ) -> Child:
        """Start ``python -m <module> --child ROLE --spec JSON`` in ``root``
        (another checkout's root runs that checkout's module), logged as ``name``."""
        argv = [sys.executable, "-m", self.module, "--child", role,
                "--spec", json.dumps(spec)]
        return self.start(name or role, argv, root=root)

    def start_server(
        self, role: str, spec: dict[str, Any], timeout: float
    ) -> tuple[Child, dict[str, Any]]:
        """Start a seeder or tracker and wait until it reports ready."""
        child = self.start_role(role, spec)
        message = child.message(timeout)
        if message is None or message.get("event") != "ready":
            raise RuntimeError(
                f"{role} did not start: {message!r}\n{tail(child.log_path)}")
        return child, message

    def stop_all(self) -> None:
        for child in reversed(self.all):
            try:
                child.stop()
            except Exception as e:  # keep going: every other child must end too
                print(f"could not stop {child.name} (pid {child.pid}): {e}", file=sys.stderr)


# -- another commit of this repository ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Checkout:
    """A clean copy of one commit of this repository, made by ``checkout``."""

    ref: str
    """What was asked for (a commit, branch or tag)."""
    commit: str
    """Its commit's full SHA-1."""
    short: str
    """The same, abbreviated as ``git rev-parse --short`` does."""
    root: str
    """The directory holding the copy; removing it is the caller's business."""


def _git(args: Sequence[str], repo: str) -> str:
    done = subprocess.run(
        ["git", "-C", repo, *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise ValueError(f"git {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


def resolve_commit(ref: str, repo: str = ROOT) -> tuple[str, str]:
    """The full and the short SHA-1 of the commit ``ref`` names in ``repo``;
    ValueError if it names none (or ``repo`` is no git repository)."""
    try:
        commit = _git(["rev-parse", "--verify", "--quiet", "--end-of-options",
                       f"{ref}^{{commit}}"], repo)
    except ValueError as e:
        raise ValueError(f"{ref!r} names no commit in {repo} ({e})") from None
    return commit, _git(["rev-parse", "--short", commit], repo)


def checkout(ref: str, into: str, repo: str = ROOT) -> Checkout:
    """Extract the tree of ``ref``'s commit into the new directory ``into``
    (``git archive | tar -x``: the repository, its index and its worktrees
    are left as they are) and compile its Python files, so that no child
    compiles them while it is being timed."""
    commit, short = resolve_commit(ref, repo)
    os.makedirs(into)
    archive = subprocess.Popen(
        ["git", "-C", repo, "archive", "--format=tar", commit],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert archive.stdout is not None
    extract = subprocess.run(
        ["tar", "-x", "-C", into], stdin=archive.stdout, capture_output=True, timeout=300)
    archive.stdout.close()
    archive_err = archive.communicate(timeout=60)[1]
    if archive.returncode != 0 or extract.returncode != 0:
        raise ValueError(f"could not extract {ref} ({short}): "
                         f"{(archive_err or extract.stderr).decode(errors='replace').strip()}")
    subprocess.run([sys.executable, "-m", "compileall", "-q", into],
                   capture_output=True, cwd=into, env=child_env(into), timeout=300)
    return Checkout(ref=ref, commit=commit, short=short, root=into)


def run_in(root: str, code: str, timeout: float = 60.0) -> str:
    """Run ``python -c code`` as a child of ``root`` would run (its cwd and
    PYTHONPATH); its standard output.  RuntimeError if it fails."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=root, env=child_env(root), timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"python -c in {root} failed: {done.stderr.strip()[-1500:]}")
    return done.stdout


def bench_main(
    name: str,
    args: Any,
    children: Mapping[str, Callable[[dict[str, Any]], None]],
    run: Callable[[Any], int],
) -> None:
    """The entry point every multi-process benchmark shares: a ``--child``
    role runs and returns; otherwise libtorrent must be importable, SIGTERM
    ends the run through ``SystemExit`` (so the children are ended), and
    ``run(args)`` is the exit status."""
    if args.child:
        children[args.child](json.loads(args.spec))
        return
    try:
        import libtorrent  # noqa: F401  (every benchmark compares with libtorrent)
    except ImportError:
        sys.exit(f"{name} needs libtorrent's Python bindings (pip install libtorrent)")

    def terminated(signum: int, frame: Any) -> None:
        raise SystemExit(f"stopped by signal {signum}")

    signal.signal(signal.SIGTERM, terminated)
    sys.exit(run(args))


def add_child_options(parser: Any, children: Mapping[str, Any]) -> None:
    """The options every multi-process benchmark takes: ``--keep-logs``, and
    the hidden ``--child ROLE --spec JSON`` its own children are run with."""
    parser.add_argument("--keep-logs", metavar="DIR", help="copy every child's log here at the end")
    parser.add_argument("--child", choices=sorted(children), help=argparse.SUPPRESS)
    parser.add_argument("--spec", help=argparse.SUPPRESS)


def ensure_json_dir(args: Any) -> None:
    """Make ``--json``'s directory now, so that the path is not found
    missing after the runs."""
    if args.json and os.path.dirname(args.json):
        os.makedirs(os.path.dirname(args.json), exist_ok=True)

