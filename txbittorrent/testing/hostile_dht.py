"""Hostile DHT traffic, for tests that check a node survives it.

``KRPCFlood`` sends a mix of queries (each with a new node id; announce_peer
with forged tokens and with tokens the node handed out) and ``krpc_bogus``
datagrams at one node, from as many ``KRPCSource``s as the test binds (on
loopback addresses of its choice, so that a per-source rate limit sees many
hosts), on a ``LoopingCall``; a ``KRPCPinger`` is the honest node whose
pings must still be answered.  Nothing here binds a socket or reads the
global reactor: the test binds the sources and gives the clock.
"""

from __future__ import annotations

import hashlib
import random
from collections import Counter
from collections.abc import Mapping
from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import DatagramProtocol
from twisted.internet.task import LoopingCall

from txbittorrent.core.bencoding import encode as bencode
from txbittorrent.core.dht.krpc import (
    AnnouncePeerQuery,
    ErrorReply,
    FindNodeQuery,
    GetPeersQuery,
    KRPCError,
    PingQuery,
    Query,
    Response,
    decode_message,
    encode_message,
)

__all__ = ["KRPCFlood", "KRPCPinger", "KRPCSource", "flood_info_hash", "krpc_bogus"]

# -- the DHT: a query flood, bogus datagrams, an honest pinger -----------------------------


def krpc_bogus(rng: random.Random) -> list[bytes]:
    """Datagrams a DHT node must survive without a reply it does not owe,
    an exception or a lasting cost: malformed ones, and well-formed ones it
    never asked for or that overreach."""
    node_id, info_hash, tid = rng.randbytes(20), rng.randbytes(20), b"bg"

    def query(method: bytes, args: Mapping[bytes, Any], t: bytes = tid) -> bytes:
        return bencode({b"t": t, b"y": b"q", b"q": method, b"a": dict(args)})

    return [
        b"d",  # cut short
        b"de",  # an empty dictionary
        b"d1:y1:qe",  # a query without t, q or a
        bencode({b"t": tid, b"y": b"q", b"q": b"ping"}),  # no arguments: 203
        query(b"ping", {b"id": node_id[:19]}),  # a 19-byte node id: 203
        query(b"vote", {b"id": node_id}),  # an unknown method: 204
        query(b"announce_peer", {b"id": node_id, b"info_hash": info_hash,  # a port
                                 b"port": 70_000, b"token": b"x"}),  # out of range
        query(b"get_peers", {b"id": node_id, b"info_hash": info_hash,  # 4,000 wants
                             b"want": [b"n4", b"n6"] * 2000}),
        query(b"ping", {b"id": node_id}, b"x" * 1000),  # a 1,000-byte transaction id
        bencode({b"t": tid, b"y": b"r",  # an unsolicited reply naming 300 nodes
                 b"r": {b"id": node_id, b"nodes": rng.randbytes(26 * 300)}}),
        bencode({b"t": tid, b"y": b"e", b"e": [201, b"x" * 1000]}),  # an unsolicited error
        bencode({b"t": tid, b"y": b"z"}),  # an unknown message type
        b"d1:a" + b"l" * 5000 + b"e" * 5000 + b"e",  # nested 5,000 deep
        b"d1:al" + b"i1e" * 9000 + b"ee",  # 9,000 items
        b"d1:ti" + b"9" * 2000 + b"ee",  # a 2,000-digit integer
        b"d1:x60000:" + rng.randbytes(60_000) + b"e",  # 60 KB of nothing
        b"d" + rng.randbytes(1000),  # noise after a d
        b"\x00\x00\x00\x00" + rng.randbytes(12),  # a BEP 15 lookalike nobody claimed
        b"GET / HTTP/1.0\r\n\r\n",  # not KRPC at all
    ]


def flood_info_hash(index: int) -> bytes:
    """The ``index``-th info hash a ``KRPCFlood`` asks for and announces."""
    return hashlib.sha1(b"hostile %d" % index).digest()


class KRPCSource(DatagramProtocol):
    """One source address of a ``KRPCFlood`` (the test binds it where it
    likes: ``reactor.listenUDP(0, flood.source(), interface="127.0.1.7")``).
    It reads the target's replies: a token in reply to its get_peers is
    used for an announce_peer of that info hash."""

    def __init__(self, flood: KRPCFlood) -> None:
        self.flood = flood
        self.tokens: list[tuple[int, bytes]] = []
        """(info hash index, token) waiting to be announced with."""

    def send(self, datagram: bytes) -> None:
        transport: Any = self.transport
        if transport is None:
            return
        try:
            transport.write(datagram, self.flood.target)
        except OSError:
            self.flood.send_errors += 1
            return
        self.flood.sent += 1
        self.flood.bytes_sent += len(datagram)

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        flood = self.flood
        flood.received += 1
        try:
            message = decode_message(datagram)
        except KRPCError:
            flood.unreadable += 1
            return
        if isinstance(message, ErrorReply):
            flood.errors[message.code] = flood.errors.get(message.code, 0) + 1
            return
        if not isinstance(message, Response):
            return  # a query of the node's: a flood does not answer
        flood.replies += 1
        tid = message.transaction_id
        if tid[:1] == b"g" and message.token is not None and len(self.tokens) < 64:
            self.tokens.append((int.from_bytes(tid[1:], "big"), message.token))
        elif tid[:1] == b"A":
            flood.announced += 1


class KRPCFlood:
    """A flood of KRPC datagrams at one DHT node (``target``) from many
    ``KRPCSource``s: every ``interval`` seconds, ``batch`` datagrams, each
    from the next source in turn, each the next kind in turn: ping,
    find_node, get_peers (a new info hash each time), announce_peer with a
    forged token, announce_peer with a token the node gave (when a source
    has one), and one of ``krpc_bogus``.  Every query carries a new random
    node id.  ``start(duration)`` returns a Deferred that fires when it
    stops (``stop()`` ends it early)."""

    KINDS = ("ping", "find_node", "get_peers", "forged", "announce", "bogus")

    def __init__(
        self, target: tuple[str, int], *, clock: Any, rng: random.Random,
        batch: int = 50, interval: float = 0.005,
    ) -> None:
        self.target = target
        self.clock = clock
        self.rng = rng
        self.batch = batch
        self.interval = interval
        self.sources: list[KRPCSource] = []
        self.bogus = krpc_bogus(rng)
        self.sent = self.bytes_sent = self.send_errors = 0
        self.received = self.replies = self.unreadable = self.announced = 0
        self.errors: dict[int, int] = {}
        """KRPC error replies by code."""
        self.sent_by_kind: Counter[str] = Counter()
        self._turn = 0
        self._next_hash = 0
        self._loop: LoopingCall | None = None
        self._deadline = 0.0
        self._done: Deferred[None] | None = None

    def source(self) -> KRPCSource:
        source = KRPCSource(self)
        self.sources.append(source)
        return source

    def start(self, duration: float) -> Deferred[None]:
        self._deadline = self.clock.seconds() + duration
        self._done = Deferred()
        loop = self._loop = LoopingCall(self._tick)
        loop.clock = self.clock
        loop.start(self.interval, now=True)
        return self._done

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()
        done, self._done = self._done, None
        if done is not None:
            done.callback(None)

    def _tick(self) -> None:
        if self.clock.seconds() >= self._deadline:
            self.stop()
            return
        for _ in range(self.batch):
            turn = self._turn
            self._turn += 1
            source = self.sources[turn % len(self.sources)]
            kind = self.KINDS[(turn // len(self.sources)) % len(self.KINDS)]
            datagram = self._datagram(kind, source, turn)
            if datagram:
                self.sent_by_kind[kind] += 1
                source.send(datagram)

    def _datagram(self, kind: str, source: KRPCSource, turn: int) -> bytes:
        rng = self.rng
        tid = turn.to_bytes(4, "big")
        node_id = rng.randbytes(20)
        message: Query
        if kind == "ping":
            message = PingQuery(transaction_id=b"p" + tid, node_id=node_id)
        elif kind == "find_node":
            message = FindNodeQuery(transaction_id=b"f" + tid, node_id=node_id,
                                    target=rng.randbytes(20))
        elif kind == "get_peers":
            index = self._next_hash
            self._next_hash += 1
            message = GetPeersQuery(transaction_id=b"g" + index.to_bytes(4, "big"),
                                    node_id=node_id, info_hash=flood_info_hash(index))
        elif kind == "forged":
            message = AnnouncePeerQuery(transaction_id=b"F" + tid, node_id=node_id,
                                        info_hash=rng.randbytes(20), port=6881,
                                        token=rng.randbytes(8))
        elif kind == "announce":
            if not source.tokens:
                return b""
            index, token = source.tokens.pop()
            message = AnnouncePeerQuery(transaction_id=b"A" + tid, node_id=node_id,
                                        info_hash=flood_info_hash(index),
                                        port=1 + turn % 65535, token=token)
        else:
            return self.bogus[turn % len(self.bogus)]
        return encode_message(message)


class KRPCPinger(DatagramProtocol):
    """An honest node that pings ``target`` every ``interval`` seconds
    (``start``/``stop``) and times the replies."""

    def __init__(self, target: tuple[str, int], *, clock: Any, interval: float = 0.25) -> None:
        self.target = target
        self.clock = clock
        self.interval = interval
        self.node_id = hashlib.sha1(b"honest").digest()
        self.sent: dict[bytes, float] = {}
        """Transaction id -> when sent, for each ping not answered yet."""
        self.pings = 0
        self.rtts: list[float] = []
        """Seconds each answered ping took, in order."""
        self._loop: LoopingCall | None = None
        self._waiting: list[Deferred[float]] = []

    def ping(self) -> Deferred[float]:
        """Send one ping; fires with its round trip when answered."""
        d: Deferred[float] = Deferred()
        self._waiting.append(d)
        self._ping()
        return d

    def _ping(self) -> None:
        transport: Any = self.transport
        tid = b"h" + self.pings.to_bytes(4, "big")
        self.pings += 1
        self.sent[tid] = self.clock.seconds()
        transport.write(encode_message(PingQuery(transaction_id=tid, node_id=self.node_id)),
                        self.target)

    def start(self) -> None:
        loop = self._loop = LoopingCall(self._ping)
        loop.clock = self.clock
        loop.start(self.interval, now=True)

    def stop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is not None and loop.running:
            loop.stop()

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        try:
            message = decode_message(datagram)
        except KRPCError:
            return
        sent = self.sent.pop(message.transaction_id, None)
        if sent is None or not isinstance(message, Response):
            return
        rtt = self.clock.seconds() - sent
        self.rtts.append(rtt)
        waiting, self._waiting = self._waiting, []
        for d in waiting:
            d.callback(rtt)
