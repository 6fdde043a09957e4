"""``bench.download``'s benchmark proper: the data, the torrents, the processes, the transfers.

Theory of operation
-------------------
``Bench.prepare`` writes the data (one file of random bytes, or with
``--files N`` a tree of files of mixed sizes), makes the torrent (and, for
aria2c, a copy naming our tracker), and starts the long-lived children: the
libtorrent seeder, with ``--seed-test`` the txbittorrent seeder, and for
aria2c the tracker.  ``Bench.transfer`` then times one download into a fresh
directory: it pauses (``--settle``), waits for a quiet machine
(``--wait-quiet``), runs the leecher (a child role, the baseline's child, or
aria2c), reads the seeder's and the machine's CPU around it, compares the
download with the source by SHA-1 and removes it, and returns the run's
figures (``_download_report.finish``).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import shutil
import sys
import time
from typing import Any

from bench._baseline import baseline_name
from bench._common import (
    ROOT,
    Checkout,
    Child,
    Children,
    MiB,
    Result,
    free_port,
    machine_busy,
    own_usage,
    proc_cpu,
    proc_status,
    sha1_file,
    tail,
    write_random_file,
)
from bench._download_children import LT_RC4, RC4_SUFFIX, START_TIMEOUT
from bench._download_cli import (
    CLI_PREFIX,
    PRESETS,
    cli_transfer,
    lt_cli_argv,
    tx_cli_argv,
    warm_bytecode,
)
from bench._download_report import finish

DATA_NAME = "bench.bin"
TREE_NAME = "bench"
"""With ``--files N`` (N > 1) the data is a directory of N files of mixed sizes."""
EXIT_TIMEOUT = 30.0
"""Seconds a leecher may take to exit after reporting."""
QUIET_WINDOW = 2.0
"""Seconds over which ``--wait-quiet`` measures the machine's CPU use."""


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


def _maxrss_mib(rusage: Any) -> float | None:
    # Linux gives ru_maxrss in KiB.
    return None if rusage is None else rusage.ru_maxrss / 1024


def _process_cpu(rusage: Any) -> float | None:
    return None if rusage is None else rusage.ru_utime + rusage.ru_stime


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
        self.pycache = os.path.join(root, "pycache")
        """The byte code of the whole-process runs (``--cli``), see ``prepare_cli``."""
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
        if "rc4" in getattr(self.args, "encryption", ()):
            # A second libtorrent seeder, MSE/PE forced with RC4 only, for the
            # +rc4 leechers (the first one's leechers dial plain).
            spec = {"torrent": self.torrent_path, "dir": self.source_dir, "tracker": False,
                    "settings": LT_RC4}
            child, hello = self.children.start_server("lt-seed", spec, START_TIMEOUT)
            name = "libtorrent" + RC4_SUFFIX
            self.seeders[name], self.ports[name] = child, hello["port"]
        if self.args.seed_test:
            spec = {"torrent": self.torrent_path, "dir": self.source_dir}
            child, hello = self.children.start_server("tx-seed", spec, START_TIMEOUT)
            self.seeders["txbittorrent"], self.ports["txbittorrent"] = child, hello["port"]

    def prepare_cli(self) -> None:
        """Compile what the whole-process clients import (``bench._download_cli``)."""
        warm_bytecode(self.pycache)

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
            elif leecher.startswith(CLI_PREFIX):
                raw = self._cli(leecher.removeprefix(CLI_PREFIX), directory, seeder)
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
        rc4 = leecher.endswith(RC4_SUFFIX)
        if leecher.removesuffix(RC4_SUFFIX) == "libtorrent":
            role = "lt-leech"
        elif leecher.removesuffix(RC4_SUFFIX) == "txbittorrent":
            role = "tx-leech"
        elif self.baseline is not None and leecher == baseline_name(self.baseline):
            role, code_root = "tx-leech", self.baseline.root  # its own child, its own code
        else:
            raise ValueError(f"no child process for the leecher {leecher!r}")
        spec: dict[str, Any] = {
            "torrent": self.torrent_path, "dir": directory, "peer": self.ports[seeder],
            "pieces": self.pieces, "timeout": self.args.timeout,
        }
        if rc4:  # keys the children read only when present (older children ignore them)
            if role == "lt-leech":
                spec["settings"] = LT_RC4
            else:
                spec["encryption"] = "forced"
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

    def _cli(self, client: str, directory: str, seeder: str) -> Result:
        """One whole-process download by ``client`` (``bench._download_cli``)."""
        port = self.ports[seeder]
        if client == "txbittorrent":
            argv = tx_cli_argv(self.pycache, self.torrent_path, directory, port)
        else:
            argv = lt_cli_argv(self.pycache, PRESETS[client], self.torrent_path, directory, port,
                               self.pieces, self.args.timeout)
        return cli_transfer(self.children, client, argv, self.args.timeout + START_TIMEOUT,
                            [self.seeders[seeder]])

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
