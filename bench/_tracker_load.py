"""bench.tracker's requests and its load generator (a process of its own).

Theory of operation
-------------------
The pure half builds what is sent: ``info_hashes`` (deterministic, so both
trackers get the same whitelist), ``zipf_cum_weights`` and ``request_plan``
(a seeded list of announces: the info hash drawn with Zipf-like popularity,
a peer from a small fixed pool per torrent, an event from ``EVENT_MIX``),
``fill_plan`` (N distinct peers spread over the info hashes, for the memory
figure), and the validators ``valid_udp_reply`` / ``valid_http_body``: only
a reply that decodes as a successful announce counts (a failure reason, an
error packet or a malformed reply does not).  Requests are encoded with the
client's own codecs (``core.tracker.announce.announce_url``,
``core.tracker.udp.encode_announce_request``) once, before the clock runs.

The I/O half, ``generate(spec)``, is the ``load`` role: plain non-blocking
sockets over ``selectors`` (no Twisted, no asyncio: the fewest Python
instructions per request), one process pinned to its own core.

* UDP: ``clients`` sockets (each one client address), each connects once
  (BEP 15) then keeps ``depth`` announces in flight, each with its own
  transaction id; an unanswered announce is dropped after ``TIMEOUT`` s and
  another sent; an error packet makes the socket connect again.
* HTTP: ``clients`` connections, one request in flight on each, kept alive
  while the server keeps them open; a server that closes after each reply
  (opentracker does) is seen once and then every request gets a fresh
  connection (``connects`` counts the connections, UDP connect requests,
  opened in the window).
* fill: one UDP socket sending ``fill_plan`` once, ``depth`` in flight.

It says ``{"event": "ready"}`` once its requests are built, then after the
warm-up ``{"event": "start"}`` (the parent reads the tracker's CPU then),
and at the end ``{"event": "result", ...}`` with the counts of the window.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import resource
import selectors
import socket
import struct
import sys
import time
from collections.abc import Iterator, Sequence
from typing import Any

from txbittorrent.core.bencoding import decode
from txbittorrent.core.tracker.announce import AnnounceEvent, AnnounceRequest, announce_url
from txbittorrent.core.tracker.udp import (
    PROTOCOL_ID,
    encode_announce_request,
)

__all__ = [
    "EVENT_MIX", "LOAD_PORT_BASE", "FILL_PORT_BASE", "MAX_FILL_SLOTS", "info_hashes",
    "whitelist_text", "zipf_cum_weights", "request_plan", "fill_plan", "valid_udp_reply",
    "valid_http_body", "http_request", "udp_body", "generate",
]

EVENT_MIX: tuple[tuple[AnnounceEvent | None, float], ...] = (
    (AnnounceEvent.STARTED, 0.10),
    (None, 0.75),
    (AnnounceEvent.COMPLETED, 0.05),
    (AnnounceEvent.STOPPED, 0.10),
)
"""The events of the load's announces and their shares."""
LOAD_PORT_BASE = 1024
"""The load's peer of slot s announces port LOAD_PORT_BASE + s."""
FILL_PORT_BASE = 30000
"""The fill's peer of slot s announces port FILL_PORT_BASE + s (apart from the load's)."""
MAX_FILL_SLOTS = 35000
"""Distinct fill peers per info hash (ports FILL_PORT_BASE.. below 65536)."""
TIMEOUT = 1.0
"""Seconds after which an unanswered request is counted lost."""

_UDP_HEADER = struct.Struct(">QII")
_UDP_REPLY = struct.Struct(">IIIII")  # action, transaction id, interval, leechers, seeders
_CONNECT_REPLY = struct.Struct(">IIQ")


# -- what is sent ----------------------------------------------------------------------


def info_hashes(count: int, seed: int = 0) -> list[bytes]:
    """``count`` distinct info hashes, the same for the same ``seed``."""
    return [hashlib.sha1(b"txbittorrent bench.tracker %d %d" % (seed, i)).digest()
            for i in range(count)]


def whitelist_text(hashes: Sequence[bytes]) -> str:
    """One info hash in hex a line: the format of both trackers' whitelists."""
    return "".join(h.hex() + "\n" for h in hashes)


def zipf_cum_weights(n: int, s: float) -> list[float]:
    """Cumulative weights of ranks 1..n with weight 1/rank**s (s = 0: uniform)."""
    if n < 1 or s < 0:
        raise ValueError("n must be positive and s not negative")
    return list(itertools.accumulate(1.0 / (rank ** s) for rank in range(1, n + 1)))


def _peer_id(prefix: bytes, a: int, b: int) -> bytes:
    return prefix + b"%06d%06d" % (a % 10**6, b % 10**6)


def request_plan(
    seed: int, hashes: Sequence[bytes], count: int, slots: int, zipf_s: float
) -> list[AnnounceRequest]:
    """``count`` announces drawn from ``random.Random(seed)``: the torrent by
    Zipf popularity, the peer one of ``slots`` per torrent (peer_id and port
    fixed per slot; every fourth slot a seeder), the event from ``EVENT_MIX``
    (completed announces with left 0)."""
    rng = random.Random(seed)
    torrents = rng.choices(range(len(hashes)), cum_weights=zipf_cum_weights(len(hashes), zipf_s),
                           k=count)
    events = rng.choices([e for e, _ in EVENT_MIX], weights=[w for _, w in EVENT_MIX], k=count)
    plan = []
    for torrent, event in zip(torrents, events):
        slot = rng.randrange(slots)
        seeder = event is AnnounceEvent.COMPLETED or slot % 4 == 0
        plan.append(AnnounceRequest(
            info_hash=hashes[torrent], peer_id=_peer_id(b"-TB0001-", torrent, slot),
            port=LOAD_PORT_BASE + slot, uploaded=0, downloaded=0 if seeder else 1 << 20,
            left=0 if seeder else 1 << 20, event=event, key=(torrent << 12 | slot) & 0xFFFFFFFF,
        ))
    return plan


def fill_plan(hashes: Sequence[bytes], peers: int) -> Iterator[AnnounceRequest]:
    """``peers`` distinct peers, round robin over ``hashes``, each announcing
    ``started`` once (every fourth a seeder)."""
    if peers > len(hashes) * MAX_FILL_SLOTS:
        raise ValueError(f"at most {MAX_FILL_SLOTS} fill peers per info hash")
    for i in range(peers):
        slot = i // len(hashes)
        yield AnnounceRequest(
            info_hash=hashes[i % len(hashes)], peer_id=_peer_id(b"-TBFILL-", i // 10**6, i),
            port=FILL_PORT_BASE + slot, uploaded=0, downloaded=0,
            left=0 if i % 4 == 0 else 1 << 20, event=AnnounceEvent.STARTED, key=i & 0xFFFFFFFF,
        )


def http_request(request: AnnounceRequest, host: str) -> bytes:
    """The bytes of an HTTP/1.1 GET announcing ``request`` (compact)."""
    return f"GET {announce_url('/announce', request)} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode()


def udp_body(request: AnnounceRequest) -> bytes:
    """An announce packet after its 16-byte header (connection id, action,
    transaction id), which the generator puts in front."""
    return encode_announce_request(0, 0, request)[16:]


# -- what counts -------------------------------------------------------------------------


def valid_udp_reply(data: bytes) -> int | None:
    """The transaction id of a successful announce reply (action 1, 20 bytes
    and whole 6-byte peers, a positive interval); None for anything else."""
    if len(data) < 20 or (len(data) - 20) % 6:
        return None
    action, transaction_id, interval, _, _ = _UDP_REPLY.unpack_from(data)
    if action != 1 or interval <= 0:
        return None
    return int(transaction_id)


def valid_http_body(body: bytes) -> bool:
    """A bencoded dictionary without ``failure reason``, with an integer
    ``interval`` and compact ``peers`` (whole 6-byte entries) or a list."""
    try:
        reply = decode(body)
    except Exception:
        return False
    if not isinstance(reply, dict) or b"failure reason" in reply:
        return False
    if not isinstance(reply.get(b"interval"), int):
        return False
    peers = reply.get(b"peers", b"")
    return isinstance(peers, list) or (isinstance(peers, bytes) and len(peers) % 6 == 0)


def _dechunk(buffer: bytes, pos: int) -> tuple[int, bytes] | None:
    """(the end, the body) of a chunked body starting at ``pos``; None while
    incomplete; ValueError if malformed."""
    body = bytearray()
    while True:
        line_end = buffer.find(b"\r\n", pos)
        if line_end < 0:
            return None
        size = int(buffer[pos:line_end].split(b";")[0], 16)
        pos = line_end + 2
        if size == 0:
            while True:  # trailer lines, up to an empty one
                line_end = buffer.find(b"\r\n", pos)
                if line_end < 0:
                    return None
                if line_end == pos:
                    return pos + 2, bytes(body)
                pos = line_end + 2
        if len(buffer) < pos + size + 2:
            return None
        body += buffer[pos : pos + size]
        pos += size + 2


def parse_http_response(buffer: bytes) -> tuple[int, bool, bool, bytes] | None:
    """(bytes used, ok, keep alive, body) of the first whole response in
    ``buffer`` (Content-Length or chunked); None while it is incomplete.  ok:
    status 200 and a valid body.  A malformed response uses the whole buffer,
    not ok and not kept alive."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    head = buffer[:end].decode("latin-1").lower().split("\r\n")
    length = None
    chunked = False
    keep = head[0].startswith("http/1.1")
    try:
        for line in head[1:]:
            name, _, value = line.partition(":")
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding":
                chunked = "chunked" in value
            elif name == "connection":
                keep = "close" not in value
        if chunked:
            found = _dechunk(buffer, end + 4)
            if found is None:
                return None
            used, body = found
        elif length is not None:
            if len(buffer) < end + 4 + length:
                return None
            used, body = end + 4 + length, buffer[end + 4 : end + 4 + length]
        else:
            return None  # both trackers send a length or chunks; else wait for the close
    except ValueError:
        return len(buffer), False, False, b""
    ok = head[0].split()[1:2] == ["200"] and valid_http_body(body)
    return used, ok, keep, body


# -- the generator ---------------------------------------------------------------------


class _Counts:
    def __init__(self) -> None:
        self.valid = 0
        self.invalid = 0
        self.lost = 0
        self.connects = 0
        self.counting = False
        self.slowest = 0.0

    def reply(self, ok: bool, latency: float = 0.0) -> None:
        if self.counting:
            if ok:
                self.valid += 1
                self.slowest = max(self.slowest, latency)
            else:
                self.invalid += 1


def _emit(**data: Any) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


class _UDPClient:
    """One client address: connect once, then ``depth`` announces in flight."""

    def __init__(self, address: tuple[str, int], bodies: Sequence[bytes], start: int,
                 depth: int, counts: _Counts, rng: random.Random) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.connect(address)
        self.bodies = bodies
        self.next = start
        self.depth = depth
        self.counts = counts
        self.rng = rng
        self.connection_id: int | None = None
        self.pending: dict[int, float] = {}  # transaction id: when sent
        self.connecting: tuple[int, float] | None = None

    def connect(self, now: float) -> None:
        transaction_id = self.rng.getrandbits(32)
        self.connecting = (transaction_id, now)
        self.connection_id = None
        self.pending.clear()
        if self.counts.counting:
            self.counts.connects += 1
        self.sock.send(_UDP_HEADER.pack(PROTOCOL_ID, 0, transaction_id))

    def send_one(self, now: float) -> bool:
        assert self.connection_id is not None
        transaction_id = self.rng.getrandbits(32)
        body = self.bodies[self.next]
        self.next = (self.next + 1) % len(self.bodies)
        try:
            self.sock.send(_UDP_HEADER.pack(self.connection_id, 1, transaction_id) + body)
        except BlockingIOError:
            return False
        self.pending[transaction_id] = now
        return True

    def fill(self, now: float) -> None:
        while len(self.pending) < self.depth and self.send_one(now):
            pass

    def readable(self, now: float) -> None:
        while True:
            try:
                data = self.sock.recv(4096)
            except (BlockingIOError, ConnectionRefusedError):
                break
            if self.connecting is not None:
                if len(data) >= 16:
                    action, transaction_id, connection_id = _CONNECT_REPLY.unpack_from(data)
                    if action == 0 and transaction_id == self.connecting[0]:
                        self.connecting = None
                        self.connection_id = connection_id
                continue
            transaction_id = valid_udp_reply(data)
            sent = None if transaction_id is None else self.pending.pop(transaction_id, None)
            if sent is not None:
                self.counts.reply(True, now - sent)
            else:
                self.counts.reply(False)
                if len(data) >= 8 and data[:4] == b"\x00\x00\x00\x03":  # an error packet
                    self.connect(now)
                    return
                tid = int.from_bytes(data[4:8], "big") if len(data) >= 8 else None
                self.pending.pop(tid, None)  # type: ignore[arg-type]
        if self.connection_id is not None:
            self.fill(now)

    def expire(self, now: float) -> None:
        if self.connecting is not None:
            if now - self.connecting[1] > TIMEOUT:
                self.connect(now)
            return
        late = [t for t, sent in self.pending.items() if now - sent > TIMEOUT]
        for t in late:
            del self.pending[t]
            if self.counts.counting:
                self.counts.lost += 1
        if self.connection_id is not None:
            self.fill(now)


class _HTTPClient:
    """One connection with one request in flight; reconnects as needed."""

    reuse = True
    """Class-wide: False once the server was seen closing after a reply."""

    def __init__(self, address: tuple[str, int], requests: Sequence[bytes], start: int,
                 counts: _Counts, selector: selectors.BaseSelector) -> None:
        self.address = address
        self.requests = requests
        self.next = start
        self.counts = counts
        self.selector = selector
        self.sock: socket.socket | None = None
        self.buffer = b""
        self.sent_at = 0.0
        self.answered_here = 0

    def open(self, now: float) -> None:
        self.close()
        sock = self.sock = socket.socket()
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.connect_ex(self.address)
        if self.counts.counting:
            self.counts.connects += 1
        self.answered_here = 0
        self.sent_at = now
        self.selector.register(sock, selectors.EVENT_WRITE, self)

    def close(self) -> None:
        if self.sock is not None:
            self.selector.unregister(self.sock)
            self.sock.close()
            self.sock = None
        self.buffer = b""

    def send(self, now: float) -> None:
        assert self.sock is not None
        request = self.requests[self.next]
        self.next = (self.next + 1) % len(self.requests)
        self.sent_at = now
        try:
            self.sock.send(request)
        except OSError:
            self.open(now)

    def event(self, mask: int, now: float) -> None:
        assert self.sock is not None
        if mask & selectors.EVENT_WRITE:
            if self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR):
                self.counts.reply(False)
                self.open(now)
                return
            self.selector.modify(self.sock, selectors.EVENT_READ, self)
            self.send(now)
            return
        try:
            data = self.sock.recv(65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            if self.answered_here and not self.buffer:
                _HTTPClient.reuse = False  # it closes after each reply
            else:
                self.counts.reply(False)
            self.open(now)
            return
        self.buffer += data
        parsed = parse_http_response(self.buffer)
        if parsed is None:
            return
        used, ok, keep, _ = parsed
        self.counts.reply(ok, now - self.sent_at)
        self.answered_here += 1
        self.buffer = self.buffer[used:]
        if keep and _HTTPClient.reuse:
            self.send(now)
        else:
            self.open(now)

    def expire(self, now: float) -> None:
        if now - self.sent_at > TIMEOUT:
            if self.counts.counting:
                self.counts.lost += 1
            self.open(now)


def _window(spec: dict[str, Any], counts: _Counts, step: Any) -> dict[str, Any]:
    """Run ``step(timeout)`` through the warm-up, then count for the duration."""
    now = time.monotonic()
    warm_end = now + float(spec["warmup"])
    while time.monotonic() < warm_end:
        step()
    counts.counting = True
    _emit(event="start")
    cpu0, t0 = _cpu(), time.monotonic()
    end = t0 + float(spec["duration"])
    while time.monotonic() < end:
        step()
    seconds = time.monotonic() - t0
    counts.counting = False
    return {"valid": counts.valid, "invalid": counts.invalid, "lost": counts.lost,
            "connects": counts.connects, "seconds": seconds,
            "slowest_ms": round(1e3 * counts.slowest, 1),
            "generator_cpu": _cpu() - cpu0}


def _plan(spec: dict[str, Any]) -> list[AnnounceRequest]:
    hashes = info_hashes(int(spec["torrents"]), int(spec["hash_seed"]))
    return request_plan(int(spec["seed"]), hashes, int(spec["plan_size"]),
                        int(spec["slots"]), float(spec["zipf_s"]))


def _udp(spec: dict[str, Any]) -> dict[str, Any]:
    bodies = [udp_body(r) for r in _plan(spec)]
    counts = _Counts()
    rng = random.Random(int(spec["seed"]) ^ 0x5EED)
    selector = selectors.DefaultSelector()
    address = (spec["host"], int(spec["port"]))
    clients = [_UDPClient(address, bodies, i * len(bodies) // int(spec["clients"]),
                          int(spec["depth"]), counts, rng) for i in range(int(spec["clients"]))]
    _emit(event="ready")
    now = time.monotonic()
    for client in clients:
        selector.register(client.sock, selectors.EVENT_READ, client)
        client.connect(now)
    last = [now]

    def step() -> None:
        for key, _ in selector.select(0.05):
            key.data.readable(time.monotonic())
        now = time.monotonic()
        if now - last[0] > 0.1:
            last[0] = now
            for client in clients:
                client.expire(now)

    return _window(spec, counts, step)


def _http(spec: dict[str, Any]) -> dict[str, Any]:
    host = f"{spec['host']}:{spec['port']}"
    requests = [http_request(r, host) for r in _plan(spec)]
    counts = _Counts()
    selector = selectors.DefaultSelector()
    address = (spec["host"], int(spec["port"]))
    n = int(spec["clients"]) * int(spec["depth"])
    clients = [_HTTPClient(address, requests, i * len(requests) // n, counts, selector)
               for i in range(n)]
    _emit(event="ready")
    now = time.monotonic()
    for client in clients:
        client.open(now)
    last = [now]

    def step() -> None:
        for key, mask in selector.select(0.05):
            key.data.event(mask, time.monotonic())
        now = time.monotonic()
        if now - last[0] > 0.1:
            last[0] = now
            for client in clients:
                client.expire(now)

    result = _window(spec, counts, step)
    result["server_keeps_alive"] = _HTTPClient.reuse
    for client in clients:
        client.close()
    return result


def _fill(spec: dict[str, Any]) -> dict[str, Any]:
    hashes = info_hashes(int(spec["torrents"]), int(spec["hash_seed"]))
    bodies = [udp_body(r) for r in fill_plan(hashes, int(spec["peers"]))]
    counts = _Counts()
    counts.counting = True
    client = _UDPClient((spec["host"], int(spec["port"])), bodies, 0, int(spec["depth"]),
                        counts, random.Random(7))
    client.fill = lambda now: _fill_some(client, now)  # type: ignore[method-assign]
    _emit(event="ready")
    t0 = time.monotonic()
    client.connect(t0)
    sent = [0]

    def _fill_some(c: _UDPClient, now: float) -> None:
        while len(c.pending) < c.depth and sent[0] < len(bodies):
            if not c.send_one(now):
                break
            sent[0] += 1

    deadline = t0 + float(spec["timeout"])
    with selectors.DefaultSelector() as selector:
        selector.register(client.sock, selectors.EVENT_READ, client)
        while time.monotonic() < deadline and (sent[0] < len(bodies) or client.pending
                                               or client.connecting is not None):
            for _ in selector.select(0.05):
                client.readable(time.monotonic())
            client.expire(time.monotonic())
    return {"valid": counts.valid, "invalid": counts.invalid, "lost": counts.lost,
            "sent": sent[0], "seconds": time.monotonic() - t0}


def generate(spec: dict[str, Any]) -> None:
    """The ``load`` role (see the module docstring)."""
    if spec.get("cpu") is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {int(spec["cpu"])})
    mode = spec["mode"]
    result = {"udp": _udp, "http": _http, "fill": _fill}[mode](spec)
    _emit(event="result", **result)
