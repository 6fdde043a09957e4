"""``bench.stream``'s measurements: the data, the seeders, the daemon, the clients.

Theory of operation
-------------------
``StreamBench.prepare`` writes one file of random bytes, makes a
trackerless torrent for it and starts two libtorrent seeders of it, each in
its own process: one unlimited (the throughput part), one whose uploads to
local peers are limited to ``--seek-rate`` (the seek part, so that most of
the file is still missing while the seeks run).  Every measurement then
starts from an empty directory, removed afterwards:

* ``tx_seeks``: a fresh ``txbittorrent serve`` process (``Daemon``: its own
  state directory; its url and token from its api.json) is given the
  magnet with the limited seeder as ``x.pe`` (POST /api/torrents); once the
  metadata is known and the first payload bytes are in, this process does
  the run's seeks through confluence's ``/data?ih=<info hash>&path=<name>`` with a Range
  each, on a fresh connection (made before the clock starts), timing from
  sending the request to reading the first body byte, and compares each
  range with the source;
* ``lt_seeks``: libtorrent's leecher does the same seeks in a child
  (``bench._stream_children``);
* ``tx_stream``: a fresh daemon given the magnet with the unlimited seeder;
  once its metadata is known, one GET of the whole file, timed from sending
  it to the last byte, its SHA-1 compared with the source's;
* ``cli_download``: ``txbittorrent download`` with the same magnet, timed
  from its ``metadata_received`` line to its ``complete`` line (as this
  process reads them), the file's SHA-1 compared after it exits.

This process is the HTTP client (``http.client``): it is idle otherwise,
so its time to read a line or a byte is the same for both sides.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import shutil
import sys
import time
from typing import Any

from bench._common import (
    LOOPBACK,
    Child,
    Children,
    Result,
    sha1_file,
    tail,
    write_random_file,
)
from bench._download_children import START_TIMEOUT
from bench._magnet_children import magnet_uri

__all__ = ["DATA_NAME", "Daemon", "StreamBench"]

DATA_NAME = "bench.bin"
POLL = 0.005
"""Seconds between two looks at the daemon's API while waiting for a state."""
READ = 1024 * 1024
"""Bytes read from the socket at a time when streaming the whole file."""


class Daemon:
    """One ``txbittorrent serve`` process and its HTTP API."""

    def __init__(self, children: Children, directory: str, name: str) -> None:
        self.directory = directory
        self.state_dir = os.path.join(directory, "state")
        self.child: Child = children.start(name, [
            sys.executable, "-m", "txbittorrent", "serve",
            "--state-dir", self.state_dir,
            "--download-dir", os.path.join(directory, "downloads"),
            "--listen", f"tcp:0:interface={LOOPBACK}",
        ], messages=False)
        self.host = LOOPBACK
        self.port = 0
        self.token = ""

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Wait for api.json (written once the API listens): its url and token."""
        path = os.path.join(self.state_dir, "api.json")
        end_by = time.monotonic() + timeout
        while not os.path.exists(path):
            if self.child.exited() or time.monotonic() > end_by:
                raise RuntimeError(f"txbittorrent serve did not start: {tail(self.child.log_path)}")
            time.sleep(0.02)
        with open(path) as f:
            info = json.load(f)
        host_port = info["url"].removeprefix("http://")
        self.host, _, port = host_port.rpartition(":")
        self.port, self.token = int(port), info["token"]

    def headers(self, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}", **extra}

    def connection(self, timeout: float) -> http.client.HTTPConnection:
        conn = http.client.HTTPConnection(self.host, self.port, timeout=timeout)
        conn.connect()
        return conn

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        conn = self.connection(30.0)
        try:
            data = None if body is None else json.dumps(body).encode()
            extra = {"Content-Type": "application/json"} if data is not None else {}
            conn.request(method, path, body=data, headers=self.headers(**extra))
            response = conn.getresponse()
            return response.status, json.loads(response.read() or b"null")
        finally:
            conn.close()

    def add(self, magnet: str) -> str:
        """Add a torrent by magnet; its info hash (hex)."""
        status, view = self.call("POST", "/api/torrents", {"source": magnet})
        if status != 201:
            raise RuntimeError(f"adding the torrent: {status} {view}")
        return str(view["info_hash"])

    def view(self, info_hash: str) -> dict[str, Any]:
        status, view = self.call("GET", f"/api/torrents/{info_hash}")
        if status != 200:
            raise RuntimeError(f"torrent {info_hash}: {status} {view}")
        return dict(view)

    def wait_for(self, info_hash: str, predicate: Any, what: str, timeout: float) -> dict[str, Any]:
        """Poll the torrent's view every ``POLL`` s until ``predicate(view)``."""
        end_by = time.monotonic() + timeout
        while True:
            view = self.view(info_hash)
            if predicate(view):
                return view
            if time.monotonic() > end_by or self.child.exited():
                raise RuntimeError(f"the daemon never got {what}: {view}")
            time.sleep(POLL)

    def stop(self) -> None:
        self.child.stop()  # SIGTERM: serve exits 0; SIGKILL after a few seconds


class StreamBench:
    """The data, the seeders and the four measurements (see the module docstring)."""

    def __init__(self, args: argparse.Namespace, root: str, children: Children) -> None:
        self.args = args
        self.root = root
        self.children = children
        self.size: int = args.size
        self.source_dir = os.path.join(root, "seed")
        self.source = os.path.join(self.source_dir, DATA_NAME)
        self.source_sha1 = ""
        self.torrent_path = os.path.join(root, "plain.torrent")
        self.info_hash = ""
        self.pieces = 0
        self.ports: dict[str, int] = {}
        self.seeders: dict[str, Child] = {}
        self._count = 0

    def prepare(self) -> None:
        from txbittorrent.core.metainfo import parse
        from txbittorrent.storage.create import create_torrent

        os.makedirs(self.source_dir)
        self.source_sha1 = write_random_file(self.source, self.size)
        raw = create_torrent(self.source, piece_length=self.args.piece_length)
        metainfo = parse(raw)
        self.pieces, self.info_hash = metainfo.piece_count, metainfo.info_hash.hex()
        with open(self.torrent_path, "wb") as f:
            f.write(raw)
        spec: dict[str, Any] = {"torrent": self.torrent_path, "dir": self.source_dir,
                                "tracker": False}
        for name, role, extra in (
            ("full", "lt-seed", {}),
            ("limited", "lt-seed-limited", {"upload_limit": int(self.args.seek_rate)}),
        ):
            child, hello = self.children.start_server(role, {**spec, **extra}, START_TIMEOUT)
            self.seeders[name], self.ports[name] = child, int(hello["port"])

    def magnet(self, seeder: str) -> str:
        return magnet_uri(self.info_hash) + f"&x.pe={LOOPBACK}:{self.ports[seeder]}"

    def _directory(self, what: str) -> str:
        self._count += 1
        path = os.path.join(self.root, f"{self._count:03d}-{what}")
        os.makedirs(path)
        return path

    def _daemon(self, directory: str, seeder: str) -> tuple[Daemon, str]:
        daemon = Daemon(self.children, directory, "serve")
        daemon.wait_ready()
        return daemon, daemon.add(self.magnet(seeder))

    def _source_bytes(self, offset: int, length: int) -> bytes:
        with open(self.source, "rb") as f:
            f.seek(offset)
            return f.read(length)

    # -- (a) seeks ---------------------------------------------------------------------

    def tx_seeks(self, plan: list[tuple[int, int]]) -> Result:
        """Our seeks through a fresh daemon's /data; raw figures."""
        directory = self._directory("tx-seeks")
        daemon = None
        try:
            daemon, info_hash = self._daemon(directory, "limited")
            timeout = self.args.timeout
            daemon.wait_for(info_hash, lambda v: v["has_metadata"], "the metadata", timeout)
            daemon.wait_for(info_hash, lambda v: v["downloaded"] > 0, "payload", timeout)
            path = f"/data?ih={info_hash}&path={DATA_NAME}"
            times: list[float] = []
            for offset, length in plan:
                conn = daemon.connection(timeout)
                try:
                    last = offset + length - 1
                    start = time.perf_counter()
                    conn.request("GET", path, headers=daemon.headers(Range=f"bytes={offset}-{last}"))
                    response = conn.getresponse()
                    first = response.read(1)
                    first_at = time.perf_counter()
                    body = first + response.read()
                finally:
                    conn.close()
                if response.status != 206 or body != self._source_bytes(offset, length):
                    return {"verified": False, "ttfb_seconds": times,
                            "note": f"range at {offset}: {response.status}, {len(body)} bytes "
                                    "(differs from the source)"}
                times.append(first_at - start)
            view = daemon.view(info_hash)
            return {"verified": True, "ttfb_seconds": times,
                    "held_bytes": view["size"] - view["left"]}
        except (RuntimeError, OSError, http.client.HTTPException) as e:
            log = "" if daemon is None else tail(daemon.child.log_path, 600)
            return {"verified": False, "note": f"{type(e).__name__}: {e}", "log_tail": log}
        finally:
            if daemon is not None:
                daemon.stop()
            shutil.rmtree(directory, ignore_errors=True)

    def lt_seeks(self, plan: list[tuple[int, int]]) -> Result:
        """libtorrent's seeks (set_piece_deadline to read_piece_alert); raw figures."""
        directory = self._directory("lt-seeks")
        spec = {"torrent": self.torrent_path, "dir": directory, "peer": self.ports["limited"],
                "source": self.source, "piece_length": self.args.piece_length,
                "seeks": plan, "timeout": self.args.timeout}
        child = self.children.start_role("lt-seek", spec)
        try:
            message = child.message(START_TIMEOUT + self.args.timeout * max(1, len(plan)))
            child.wait(30.0)
        finally:
            child.stop()
            shutil.rmtree(directory, ignore_errors=True)
        if message is None or message.get("event") != "result":
            return {"verified": False, "note": f"no result: {tail(child.log_path, 300)!r}"}
        raw: Result = {"verified": bool(message["ok"]), "ttfb_seconds": message["ttfb"],
                       "already_had": sum(message["had"]), "held_bytes": message["held"]}
        if message.get("note"):
            raw["note"] = message["note"]
        return raw

    # -- (b) throughput ----------------------------------------------------------------

    def tx_stream(self) -> Result:
        """One GET of the whole file from a fresh daemon; raw figures."""
        directory = self._directory("tx-stream")
        daemon = None
        time.sleep(self.args.settle)
        try:
            daemon, info_hash = self._daemon(directory, "full")
            timeout = self.args.timeout
            view = daemon.wait_for(info_hash, lambda v: v["has_metadata"], "the metadata", timeout)
            conn = daemon.connection(timeout)
            digest = hashlib.sha1()
            try:
                start = time.perf_counter()
                conn.request("GET", f"/data?ih={info_hash}&path={DATA_NAME}", headers=daemon.headers())
                response = conn.getresponse()
                first = response.read(1)
                first_at = time.perf_counter()
                digest.update(first)
                got = len(first)
                while chunk := response.read(READ):
                    digest.update(chunk)
                    got += len(chunk)
                end = time.perf_counter()
            finally:
                conn.close()
            if response.status != 200 or got != self.size or digest.hexdigest() != self.source_sha1:
                return {"verified": False,
                        "note": f"{response.status}, {got} bytes (differs from the source)"}
            return {"verified": True, "seconds": end - start, "first_byte_seconds": first_at - start,
                    "head_start_bytes": view["downloaded"]}
        except (RuntimeError, OSError, http.client.HTTPException) as e:
            log = "" if daemon is None else tail(daemon.child.log_path, 600)
            return {"verified": False, "note": f"{type(e).__name__}: {e}", "log_tail": log}
        finally:
            if daemon is not None:
                daemon.stop()
            shutil.rmtree(directory, ignore_errors=True)

    def cli_download(self) -> Result:
        """``txbittorrent download`` of the same magnet; raw figures."""
        directory = self._directory("cli-download")
        time.sleep(self.args.settle)
        child = self.children.start("download", [
            sys.executable, "-m", "txbittorrent", "download", self.magnet("full"),
            "--output", directory, "--json", "--quiet", "--no-dht", "--no-pex",
            "--interface", LOOPBACK,
        ])
        metadata = complete = None
        try:
            end_by = time.monotonic() + START_TIMEOUT + self.args.timeout
            while complete is None and time.monotonic() < end_by:
                message = child.message(end_by - time.monotonic())
                if message is None:
                    break
                now = time.perf_counter()
                if message.get("kind") == "metadata_received" and metadata is None:
                    metadata = now
                elif message.get("kind") == "complete":
                    complete = now
            exited = child.wait(30.0)
            path = os.path.join(directory, DATA_NAME)
            same = os.path.exists(path) and sha1_file(path) == self.source_sha1
        finally:
            child.stop()
            shutil.rmtree(directory, ignore_errors=True)
        if metadata is None or complete is None or not same:
            why = ("no metadata_received line" if metadata is None
                   else "no complete line" if complete is None
                   else "the file differs from the source")
            return {"verified": False, "note": f"{why}: {tail(child.log_path, 300)!r}"}
        raw: Result = {"verified": True, "seconds": complete - metadata}
        if not exited:
            raw["exit"] = "killed after complete"
        return raw
