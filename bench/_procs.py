"""Child processes for the multi-process benchmarks (``bench.scale``, ``bench.swarm``).

Theory of operation
-------------------
A benchmark that compares clients runs each client in a process of its own,
so its CPU time and memory can be read cleanly from ``/proc`` (or from the
child's own ``getrusage``) and one client's threads do not slow another's
interpreter.  The parent talks to each child over its stdin and stdout, one
line at a time:

* the child writes ``TAG {json}`` lines (``emit``): ``READY`` when it is
  listening or loaded, ``DONE``/``RESULT`` with its figures, ``FAIL`` with a
  reason;
* the parent writes plain command words (``go``, ``stop``); end of file on
  the child's stdin (the parent died or closed it) means ``stop``.

``Child`` is the parent's side: it starts ``python -m <module> ...`` with
stderr going to a log file (so a chatty child can never block on a full
pipe), waits for a tagged line with a deadline (``expect``), and ``finish``
asks the child to stop, waits, and kills it if it does not exit in time, so
nothing outlives the benchmark.

The child roles shared by both benchmarks live here too: ``tx-seed`` (a
txbittorrent seeder) and ``lt-seed`` (a libtorrent seeder), run as
``python -m bench._procs ROLE SPEC.json``.  Twisted and libtorrent are only
imported inside the roles, so the parent stays light.

Every libtorrent session listens on 127.0.0.1 only, with DHT, LSD, UPnP and
NAT-PMP off and several connections per IP allowed (``LT_LOCAL_SETTINGS``,
the same as ``tests/integration/ltutil.BASE_SETTINGS``).
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

# Shared with bench.download; re-exported for bench.scale and bench.swarm.
from bench import _common
from bench._common import CHUNK as CHUNK
from bench._common import GiB as GiB
from bench._common import LOOPBACK as LOOPBACK
from bench._common import LT_LOCAL_SETTINGS as LT_LOCAL_SETTINGS
from bench._common import ROOT as ROOT
from bench._common import TMP_BASE as TMP_BASE
from bench._common import LineReader
from bench._common import MiB as MiB
from bench._common import Result as Result
from bench._common import write_random_file as write_random_file
from bench._common import environment as environment
from bench._common import median as median
from bench._common import proc_cpu as proc_cpu
from bench._common import proc_status as proc_status
from bench._common import ratio as ratio



def have_libtorrent() -> bool:
    try:
        import libtorrent  # noqa: F401
    except ImportError:  # pragma: no cover - depends on the machine
        return False
    return True


# -- data -------------------------------------------------------------------------------


def sha1_file(path: str) -> str | None:
    """The SHA-1 (hex) of the file at ``path``; None if it cannot be read."""
    try:
        return _common.sha1_file(path)
    except OSError:
        return None


# -- figures ----------------------------------------------------------------------------


def own_cpu() -> float:
    """CPU seconds (user + system, every thread) this process has used."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def own_peak_rss_kib() -> int:
    """``ru_maxrss``: the peak resident set of this process (KiB on Linux)."""
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def kib_to_mib(value: float | None) -> float | None:
    return None if value is None else value / 1024


# -- the child's side -------------------------------------------------------------------


def emit(tag: str, **data: Any) -> None:
    """Tell the parent something: one ``TAG {json}`` line on stdout."""
    sys.stdout.write(f"{tag} {json.dumps(data)}\n")
    sys.stdout.flush()


def read_spec(path: str) -> dict[str, Any]:
    with open(path) as f:
        spec: dict[str, Any] = json.load(f)
    return spec


def listen_for_commands(reactor: Any, on_command: Callable[[str], None]) -> None:
    """Call ``on_command(word)`` on the reactor for each line the parent
    writes; end of file is ``stop``.  A daemon thread reads stdin (blocking),
    so stdout keeps its ordinary blocking mode for ``emit``."""

    def read() -> None:
        for line in sys.stdin:
            word = line.strip()
            if word:
                reactor.callFromThread(on_command, word)
        reactor.callFromThread(on_command, "stop")

    threading.Thread(target=read, name="bench-commands", daemon=True).start()


def log_warnings_to_stderr() -> None:
    """Send Twisted's log events of level warn and above to stderr (the
    child's log file); the rest is dropped."""
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    predicate: Any = LogLevelFilterPredicate(defaultLogLevel=LogLevel.warn)
    text: Any = textFileLogObserver(sys.stderr)
    observer: Any = FilteringLogObserver(text, [predicate])
    globalLogBeginner.beginLoggingTo([observer], redirectStandardIO=False)


def run_twisted_child(main: Callable[[Any], Any]) -> None:
    """Run ``await main(reactor)`` on the global reactor and exit with its status
    (0 unless it raises); a failure is reported to the parent as ``FAIL``."""
    from twisted.internet import defer, task

    log_warnings_to_stderr()

    async def wrapped(reactor: Any) -> None:
        try:
            await main(reactor)
        except BaseException as e:
            emit("FAIL", reason=f"{type(e).__name__}: {e}")
            raise

    task.react(lambda reactor: defer.ensureDeferred(wrapped(reactor)))


class Commands:
    """The parent's commands as Deferreds: ``await commands.wait("go")``."""

    def __init__(self, reactor: Any) -> None:
        from twisted.internet.defer import Deferred

        self._deferred = Deferred
        self._seen: set[str] = set()
        self._waiting: dict[str, list[Any]] = {}
        listen_for_commands(reactor, self._on_command)

    def _on_command(self, word: str) -> None:
        self._seen.add(word)
        for d in self._waiting.pop(word, []):
            d.callback(word)
        if word == "stop":  # stop also releases whoever waits for go
            for waiters in self._waiting.values():
                for d in waiters:
                    d.callback(word)
            self._waiting.clear()

    def wait(self, word: str) -> Any:
        """A Deferred firing with ``word`` once the parent sent it (or ``stop``)."""
        from twisted.internet.defer import succeed

        if word in self._seen:
            return succeed(word)
        if "stop" in self._seen:
            return succeed("stop")
        d: Any = self._deferred()
        self._waiting.setdefault(word, []).append(d)
        return d


# -- the parent's side ------------------------------------------------------------------


class ChildFailed(Exception):
    """A child said FAIL, exited early, or did not answer in time."""


class Child:
    """A benchmark child process: ``python -m <module> <args>``, stdout read by
    line with deadlines, stderr in a log file under ``logdir``."""

    def __init__(self, name: str, module: str, args: Sequence[str], logdir: str) -> None:
        self.name = name
        self.log_path = os.path.join(logdir, f"{name}.log")
        env = dict(os.environ)
        env["PYTHONPATH"] = ROOT + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        env["PYTHONUNBUFFERED"] = "1"
        self._log = open(self.log_path, "wb")
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-m", module, *args],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=self._log,
                cwd=ROOT,
                env=env,
            )
        except BaseException:
            self._log.close()
            raise
        assert self.process.stdout is not None
        self._reader = LineReader(self.process.stdout.fileno())

    @property
    def pid(self) -> int:
        return self.process.pid

    def _readline(self, deadline: float) -> bytes | None:
        return self._reader.readline(deadline - time.monotonic())

    def expect(self, tag: str, timeout: float) -> Result:
        """The data of the next ``tag`` line; ``ChildFailed`` on FAIL, exit or deadline."""
        deadline = time.monotonic() + timeout
        while True:
            line = self._readline(deadline)
            if line is None:
                why = "exited" if self._reader.eof else f"said nothing for {timeout:.0f} s"
                raise ChildFailed(f"{self.name} {why} while we waited for {tag}{self._tail()}")
            got, _, rest = line.decode(errors="replace").partition(" ")
            if got == tag:
                data: Result = json.loads(rest) if rest.strip() else {}
                return data
            if got == "FAIL":
                reason = json.loads(rest).get("reason", "?") if rest.strip() else "?"
                raise ChildFailed(f"{self.name}: {reason}{self._tail()}")
            # anything else on stdout is noise from a library: ignore it

    def send(self, word: str) -> None:
        """Write one command line; a child that is gone is not an error here."""
        stdin = self.process.stdin
        if stdin is None or stdin.closed:
            return
        try:
            stdin.write(word.encode() + b"\n")
            stdin.flush()
        except (BrokenPipeError, OSError):
            pass

    def finish(self, timeout: float = 30.0) -> int:
        """Ask the child to stop (``stop``, then end of file), wait up to
        ``timeout`` seconds, then kill it.  Returns its exit status."""
        self.send("stop")
        stdin = self.process.stdin
        if stdin is not None and not stdin.closed:
            try:
                stdin.close()
            except OSError:
                pass
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(10)
        if self.process.stdout is not None:
            self.process.stdout.close()
        self._log.close()
        return code

    def kill(self) -> None:
        """End the child at once (it is ours: its pid is known)."""
        if self.process.poll() is None:
            try:
                os.kill(self.process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.finish(10)

    def _tail(self, limit: int = 1500) -> str:
        self._log.flush()
        try:
            with open(self.log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - limit))
                text = f.read().decode(errors="replace").strip()
        except OSError:
            return ""
        return f"; its stderr ends: {text}" if text else ""


class Children:
    """Every child of one measurement: ``finish_all`` in a ``finally`` ends them all."""

    def __init__(self, logdir: str) -> None:
        self.logdir = logdir
        self.children: list[Child] = []

    def start(self, name: str, module: str, args: Sequence[str]) -> Child:
        child = Child(name, module, args, self.logdir)
        self.children.append(child)
        return child

    def finish_all(self, timeout: float = 30.0) -> dict[str, int]:
        codes: dict[str, int] = {}
        for child in self.children:
            child.send("stop")
        for child in reversed(self.children):
            try:
                codes[child.name] = child.finish(timeout)
            except Exception:  # pragma: no cover - last resort
                child.kill()
                codes[child.name] = -9
        self.children = []
        return codes


def write_spec(directory: str, name: str, spec: dict[str, Any]) -> str:
    path = os.path.join(directory, f"{name}.json")
    with open(path, "w") as f:
        json.dump(spec, f)
    return path


# -- shared roles: seeders ----------------------------------------------------------------


async def tx_seed(reactor: Any, spec: dict[str, Any]) -> None:
    """A txbittorrent seeder: verify the data, listen on 127.0.0.1, say READY
    (with the port) and seed until ``stop``.

    ``spec``: torrent (path), basedir, max_peers (optional)."""
    from txbittorrent.session import Session, SessionConfig
    from txbittorrent.torrent import Torrent

    commands = Commands(reactor)
    max_peers = int(spec.get("max_peers") or 0)
    kwargs: dict[str, Any] = {}
    session = None
    if max_peers:
        # Room for every peer: the session's and the swarm's connection limits.
        session = Session(
            reactor=reactor,
            listen_interfaces=(LOOPBACK,),
            config=SessionConfig(max_connections=max_peers + 16),
        )
        await session.start()
        kwargs = {"session": session, "max_peers": max_peers + 16}
    else:
        kwargs = {"listen_interfaces": [LOOPBACK]}
    torrent = Torrent(spec["torrent"], basedir=spec["basedir"], reactor=reactor, **kwargs)
    try:
        await torrent.start()
        if not torrent.seed:
            emit("FAIL", reason=f"the seeder's data did not verify ({torrent.left} bytes left)")
            return
        emit("READY", port=torrent.port, pid=os.getpid())
        await commands.wait("stop")
        emit("STATUS", uploaded=torrent.uploaded, cpu=own_cpu(), status=proc_status())
    finally:
        await torrent.close()
        if session is not None:
            await session.stop()


def lt_add_seeding(lt: Any, session: Any, torrent: str, basedir: str,
                   timeout: float) -> tuple[Any, str | None]:
    """Add the .torrent at ``torrent`` (data in ``basedir``) to a libtorrent
    ``session``, not auto-managed, and wait until it seeds: (the handle,
    None), or (the handle, why not) after an error or ``timeout`` s."""
    params = lt.add_torrent_params()
    with open(torrent, "rb") as f:
        params.ti = lt.torrent_info(lt.bdecode(f.read()))
    params.save_path = basedir
    params.flags &= ~lt.torrent_flags.auto_managed
    params.flags &= ~lt.torrent_flags.paused
    handle = session.add_torrent(params)
    deadline = time.monotonic() + timeout
    while not handle.status().is_seeding:
        status = handle.status()
        if status.errc.value():
            return handle, f"libtorrent: {status.errc.message()}"
        if time.monotonic() > deadline:
            return handle, f"the libtorrent seeder's data did not verify: {status.state}"
        time.sleep(0.02)
    return handle, None


def lt_seed(spec: dict[str, Any]) -> None:
    """A libtorrent seeder: check the data, say READY (with the port) and
    seed until ``stop`` (or end of file) on stdin.

    ``spec``: torrent (path), basedir, settings (extra libtorrent settings)."""
    lt: Any = importlib.import_module("libtorrent")

    settings = dict(LT_LOCAL_SETTINGS)
    settings.update(spec.get("settings") or {})
    settings["alert_mask"] = lt.alert_category.error | lt.alert_category.status
    session = lt.session(settings)
    try:
        handle, failed = lt_add_seeding(lt, session, spec["torrent"], spec["basedir"],
                                        float(spec.get("timeout", 120)))
        if failed is not None:
            emit("FAIL", reason=failed)
            return
        deadline = time.monotonic() + 10
        while session.listen_port() == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        emit("READY", port=session.listen_port(), pid=os.getpid())
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        emit(
            "STATUS",
            uploaded=handle.status().total_payload_upload,
            cpu=own_cpu(),
            status=proc_status(),
        )
        session.remove_torrent(handle)
    finally:
        session.pause()
        del session


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("tx-seed", "lt-seed"):
        sys.exit("usage: python -m bench._procs {tx-seed|lt-seed} SPEC.json")
    role, spec = args[0], read_spec(args[1])
    if role == "tx-seed":
        run_twisted_child(lambda reactor: tx_seed(reactor, spec))
    else:
        lt_seed(spec)


if __name__ == "__main__":
    main()
