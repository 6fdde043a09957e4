"""Transmission 3.00's command-line client as a leecher for ``bench.transmission``.

Theory of operation
-------------------
``transmission-cli`` downloads one torrent and then seeds it until it is
ended.  It is started with a configuration directory of its own (a fresh
``settings.json``: no DHT, LPD, PEX, port forwarding or uTP, listening on
127.0.0.1 only at a fixed port, no RPC, encryption 0 = plaintext preferred)
and an empty download directory.  It says how it is doing in two streams,
both read live here, each moment stamped with ``time.monotonic()`` as it is
read:

* stdout: a status line every 0.2 s, each started with ``\\r`` (no newline):
  ``Progress: 12.3%, dl from 1 of 1 peers (21.65 MB/s), ...`` while it
  downloads, ``Seeding, ...`` once complete.  stdout is a pipe, so the C
  library would hold these lines back in 4 KiB blocks (seconds late): the
  client is run under ``stdbuf -o0``.  ``parse_status`` reads one line.
* stderr: its log, one line each, ``[date time] name: message``; the moment
  it has every piece verified it logs ``State changed from "Incomplete" to
  "Complete"``.

``Timeline`` keeps the moments that matter: the first status line (it is
running and listening), the first line that shows data arriving (progress
above 0 or a download rate above 0: Transmission updates both about once a
second), the first ``Progress: 100.0%`` line, and completion (the log line
above, or failing that the first ``Seeding`` line); and whether it logged
that it could not bind its port (it then runs on, reachable by no one).  ``TransmissionLeecher``
owns the process (``start``, ``follow`` until a moment is reached or a
deadline passes, ``stop``).
"""

from __future__ import annotations

import json
import os
import re
import selectors
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from typing import Any

from bench._common import LOOPBACK, _die_with_parent

EXECUTABLE = "transmission-cli"
COMPLETE_LOG = 'State changed from "Incomplete" to "Complete"'
BIND_ERROR_LOG = "Couldn't bind port"
_STATUS = re.compile(
    r"Progress: (?P<percent>[0-9.]+)%, dl from (?P<from>\d+) of (?P<of>\d+) peers "
    r"\((?P<rate>[0-9.]+) (?P<unit>[kMGT]B)/s\)")
_UNITS = {"kB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12}  # transmission-cli's are powers of 1000


def available() -> str | None:
    """Why Transmission cannot be run here (None if it can)."""
    for tool in (EXECUTABLE, "stdbuf"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed"
    return None


def settings(peer_port: int) -> dict[str, Any]:
    """Its settings.json: loopback only, nothing discovered by itself, plaintext preferred."""
    return {
        "dht-enabled": False, "lpd-enabled": False, "pex-enabled": False,
        "port-forwarding-enabled": False, "utp-enabled": False,
        "bind-address-ipv4": LOOPBACK, "bind-address-ipv6": "::1",
        "peer-port": peer_port, "peer-port-random-on-start": False,
        "blocklist-enabled": False, "rpc-enabled": False,
        "speed-limit-down-enabled": False, "speed-limit-up-enabled": False,
        "ratio-limit-enabled": False, "encryption": 0,
    }


@dataclass(frozen=True, slots=True)
class Status:
    """One ``Progress:`` line (``Seeding`` lines are ``seeding=True``, 100%)."""

    percent: float
    rate: float
    """The download rate it shows, bytes/s."""
    peers: int
    """Peers it downloads from."""
    seeding: bool = False


def parse_status(line: str) -> Status | None:
    """The status line ``line`` (None if it is not one)."""
    line = line.strip()
    if line.startswith("Seeding"):
        return Status(percent=100.0, rate=0.0, peers=0, seeding=True)
    m = _STATUS.search(line)
    if m is None:
        return None
    return Status(percent=float(m["percent"]), rate=float(m["rate"]) * _UNITS[m["unit"]],
                  peers=int(m["from"]))


@dataclass(slots=True)
class Timeline:
    """The moments (``time.monotonic()``) read from Transmission's output."""

    running: float | None = None
    """Its first status line: the torrent runs and it listens."""
    first_data: float | None = None
    """The first status line showing data (progress or a download rate above 0)."""
    full: float | None = None
    """The first ``Progress: 100.0%`` line."""
    complete: float | None = None
    """The ``Complete`` log line, or failing that the first ``Seeding`` line."""
    complete_logged: str | None = None
    """The time stamp Transmission wrote on its ``Complete`` log line."""
    bind_error: str | None = None
    """Its log line saying it could not listen on its port (it runs on regardless)."""
    last: Status | None = None
    lines: int = 0

    def status(self, line: str, at: float) -> None:
        """Take in one status line read at ``at``."""
        status = parse_status(line)
        if status is None:
            return
        self.lines += 1
        self.last = status
        if self.running is None:
            self.running = at
        if self.first_data is None and (status.percent > 0 or status.rate > 0):
            self.first_data = at
        if self.full is None and status.percent >= 100.0:
            self.full = at
        if status.seeding and self.complete is None:
            self.complete = at

    def log(self, line: str, at: float) -> None:
        """Take in one log line read at ``at``."""
        if BIND_ERROR_LOG in line and self.bind_error is None:
            self.bind_error = line
        if COMPLETE_LOG in line:
            self.complete = at if self.complete is None else min(self.complete, at)
            if line.startswith("[") and "]" in line:
                self.complete_logged = line[1:line.index("]")]


@dataclass(slots=True)
class _Stream:
    fd: int
    split: bytes
    buffer: bytes = b""
    log: list[str] = field(default_factory=list)


class TransmissionLeecher:
    """One ``transmission-cli`` process: a fresh config dir and download dir under ``work``."""

    def __init__(self, work: str, torrent: str, peer_port: int) -> None:
        self.work = work
        self.torrent = torrent
        self.peer_port = peer_port
        self.config_dir = os.path.join(work, "config")
        self.download_dir = os.path.join(work, "download")
        self.log_path = os.path.join(work, "transmission.log")
        self.timeline = Timeline()
        self.proc: subprocess.Popen[bytes] | None = None
        self._streams: dict[int, _Stream] = {}
        self._log: Any = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        os.makedirs(self.config_dir)
        os.makedirs(self.download_dir)
        with open(os.path.join(self.config_dir, "settings.json"), "w") as f:
            json.dump(settings(self.peer_port), f, indent=1)
        # No -v: Transmission checks a new torrent's files when it adds it,
        # and a second check asked for meanwhile can leave the torrent
        # stopped, which ends transmission-cli at once (seen once in CI).
        self.proc = subprocess.Popen(
            ["stdbuf", "-o0", EXECUTABLE, "-g", self.config_dir, "-w", self.download_dir,
             "-p", str(self.peer_port), self.torrent],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            preexec_fn=_die_with_parent)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.attach(self.proc.stdout.fileno(), self.proc.stderr.fileno())

    def attach(self, stdout: int, stderr: int) -> None:
        """Follow these descriptors as its stdout (status lines) and stderr (log)."""
        if self._log is None:
            self._log = open(self.log_path, "w")
        for fd, split in ((stdout, b"\r"), (stderr, b"\n")):
            os.set_blocking(fd, False)
            self._streams[fd] = _Stream(fd, split)

    def follow(self, until: str, timeout: float) -> bool:
        """Read its output until ``timeline.<until>`` is set (True) or
        ``timeout`` seconds pass or it exits (False).  A timeout of 0 reads
        what is there now, once, without waiting."""
        deadline = time.monotonic() + timeout
        with selectors.DefaultSelector() as selector:
            for fd in self._streams:
                selector.register(fd, selectors.EVENT_READ)
            while getattr(self.timeline, until) is None:
                if not selector.get_map():
                    return False
                left = deadline - time.monotonic()
                for key, _ in selector.select(max(0.0, min(left, 0.5))):
                    if not self._read(self._streams[key.fd], time.monotonic()):
                        selector.unregister(key.fd)
                if left <= 0 and getattr(self.timeline, until) is None:
                    return False
        return True

    def _read(self, stream: _Stream, at: float) -> bool:
        """Read what is there; False at end of file."""
        try:
            data = os.read(stream.fd, 65536)
        except BlockingIOError:
            return True
        status = stream.split == b"\r"
        stream.buffer += data.replace(b"\n", b"\r") if status else data
        *done, stream.buffer = stream.buffer.split(stream.split)
        if status and parse_status(stream.buffer.decode(errors="replace")) is not None:
            # Each status line is written whole after its \r: take it now,
            # not when the next one ends it 0.2 s later.
            done.append(stream.buffer)
            stream.buffer = b""
        for raw in done:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            if status:
                self.timeline.status(line, at)
            else:
                self.timeline.log(line, at)
                self._log.write(f"{line}\n")
        if status and done:
            self._log.write(f"{at:.3f} {done[-1].decode(errors='replace').strip()}\n")
        return bool(data)

    def stop(self) -> int | None:
        """End it (SIGTERM, then SIGKILL after 5 s); its exit status."""
        code = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(5)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(10)
            code = self.proc.returncode
            for pipe in (self.proc.stdout, self.proc.stderr):
                if pipe is not None:
                    pipe.close()
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def tail(self, limit: int = 1500) -> str:
        if self._log is not None:
            self._log.flush()
        from bench._common import tail

        return tail(self.log_path, limit)
