"""bench.tracker's processes: the trackers, redis-server, and the readiness probe.

Theory of operation
-------------------
``tracker_argv`` is the command line of one tracker: ``python -m
txbittorrent tracker`` (what users run; ``--rate-limit`` raised out of the
way, since every request of the benchmark comes from 127.0.0.1, and the
whitelist given), Debian's ``opentracker`` (built with a whitelist:
``-w``, chrooted into the run's directory), each behind ``taskset -c CPU``
when pinning.  ``probe`` waits until a tracker answers a ``stopped``
announce validly over HTTP and UDP (opentracker loads its whitelist in a
thread after it listens).  ``redis_available`` says whether the Redis
figure can be had (``--redis`` in ``txbittorrent tracker --help`` and a
``redis-server``); ``redis_argv`` starts one on loopback without
persistence; ``redis_flush`` empties it between runs.
"""

from __future__ import annotations

import http.client
import os
import shutil
import socket
import subprocess
import sys
import time

from bench._common import LOOPBACK, ROOT, child_env
from bench._tracker_load import http_request, udp_body, valid_http_body, valid_udp_reply
from txbittorrent.core.tracker.announce import AnnounceEvent, AnnounceRequest
from txbittorrent.core.tracker.udp import PROTOCOL_ID

__all__ = ["free_udp_port", "pin_prefix", "tracker_argv", "probe", "redis_available",
           "redis_argv", "redis_flush"]

RATE_LIMIT = 10**9
"""Our ``--rate-limit`` in the benchmark (per minute): never reached."""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


def pin_prefix(cpu: int | None) -> list[str]:
    """``taskset -c CPU`` (nothing without a CPU or without taskset)."""
    if cpu is None or shutil.which("taskset") is None:
        return []
    return ["taskset", "-c", str(cpu)]


def tracker_argv(name: str, http_port: int, udp_port: int, whitelist: str, directory: str,
                 cpu: int | None, torrents: int, redis_url: str | None = None) -> list[str]:
    """The command line of tracker ``name`` (``txbittorrent``, ``opentracker``,
    ``txbittorrent+redis``)."""
    if name == "opentracker":
        argv = ["opentracker", "-i", LOOPBACK, "-p", str(http_port), "-P", str(udp_port),
                "-w", os.path.basename(whitelist), "-d", directory]
    else:
        argv = [sys.executable, "-m", "txbittorrent", "tracker",
                "--http", f"tcp:{http_port}:interface={LOOPBACK}", "--udp", str(udp_port),
                "--whitelist", whitelist, "--rate-limit", str(RATE_LIMIT),
                "--max-swarms", str(max(100_000, torrents))]
        if redis_url is not None:
            argv += ["--redis", redis_url]
    return pin_prefix(cpu) + argv


def _probe_request(info_hash: bytes) -> AnnounceRequest:
    return AnnounceRequest(info_hash=info_hash, peer_id=b"-TBPROBE-00000000000", port=1,
                           uploaded=0, downloaded=0, left=0, event=AnnounceEvent.STOPPED)


def _probe_udp(port: int, info_hash: bytes) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.connect((LOOPBACK, port))
        try:
            s.send(PROTOCOL_ID.to_bytes(8, "big") + bytes(4) + b"\x00\x00\x00\x07")
            reply = s.recv(64)
            if len(reply) < 16 or reply[:8] != b"\x00\x00\x00\x00\x00\x00\x00\x07":
                return False
            s.send(reply[8:16] + b"\x00\x00\x00\x01\x00\x00\x00\x09"
                   + udp_body(_probe_request(info_hash)))
            return valid_udp_reply(s.recv(4096)) == 9
        except OSError:
            return False


def _probe_http(port: int, info_hash: bytes) -> bool:
    try:
        with socket.create_connection((LOOPBACK, port), timeout=0.5) as s:
            s.sendall(http_request(_probe_request(info_hash), f"{LOOPBACK}:{port}"))
            response = http.client.HTTPResponse(s)
            response.begin()
            return response.status == 200 and valid_http_body(response.read())
    except (OSError, http.client.HTTPException):
        return False


def probe(http_port: int, udp_port: int, info_hash: bytes, timeout: float,
          alive: object = None) -> bool:
    """Whether the tracker answered a valid announce over both protocols
    within ``timeout`` seconds (``alive``: a callable, false once the process died)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if callable(alive) and not alive():
            return False
        if _probe_http(http_port, info_hash) and _probe_udp(udp_port, info_hash):
            return True
        time.sleep(0.1)
    return False


def redis_available() -> tuple[bool, str]:
    """(whether ours can run on Redis here, why not); asks this checkout's
    ``txbittorrent``, as the benchmark's children run it."""
    if shutil.which("redis-server") is None:
        return False, "redis-server is not installed"
    try:
        done = subprocess.run([sys.executable, "-m", "txbittorrent", "tracker", "--help"],
                              capture_output=True, text=True, timeout=60, cwd=ROOT,
                              env=child_env())
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, f"txbittorrent tracker --help failed: {e}"
    if "--redis" not in done.stdout:
        return False, "txbittorrent tracker has no --redis option yet"
    return True, ""


def redis_argv(port: int, directory: str, cpu: int | None) -> list[str]:
    """redis-server on 127.0.0.1:port, no persistence, its files in ``directory``."""
    return pin_prefix(cpu) + ["redis-server", "--bind", LOOPBACK, "--port", str(port),
                              "--save", "", "--appendonly", "no", "--dir", directory]


def redis_flush(port: int, timeout: float = 10.0) -> bool:
    """FLUSHALL (waits until redis answers); whether it said +OK."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((LOOPBACK, port), timeout=1.0) as s:
                s.sendall(b"FLUSHALL\r\n")
                return s.recv(64).startswith(b"+OK")
        except OSError:
            time.sleep(0.1)
    return False
