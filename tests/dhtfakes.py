"""An in-memory UDP network for DHT node tests, on a ``Clock``.

``FakeNetwork`` joins ``FakeMux`` objects (each stands for one node's
``DatagramMux``: ``send``, ``add_consumer``, ``local_address``) by address;
a datagram sent arrives ``latency`` seconds later on the clock at the mux
bound to its destination, or is counted as lost if none is (a dead node).
Every address is on 127.0.0.1, so the nodes are loopback-only and never
resolve or reach anything else.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from twisted.internet.task import Clock

from txbittorrent.core.dht.krpc import Address, Message, decode_message, encode_message
from txbittorrent.dht.config import DHTConfig
from txbittorrent.dht.node import DHTNode

LOOPBACK = "127.0.0.1"
LOOPBACK6 = "::1"


class FakeMux:
    """One node's UDP sockets on a ``FakeNetwork``: IPv4 at ``address``,
    and IPv6 at ``address6`` if given."""

    def __init__(self, network: FakeNetwork, address: Address,
                 address6: Address | None = None) -> None:
        self.network = network
        self.address = address
        self.address6 = address6
        self.consumers: list[tuple[Callable[[bytes], bool], Callable[[bytes, Address], None]]] = []
        self.sent: list[tuple[bytes, Address]] = []
        self.received: list[tuple[bytes, Address]] = []

    @property
    def families(self) -> frozenset[int]:
        return frozenset({4, 6} if self.address6 is not None else {4})

    def local_address(self, family: int) -> tuple[str, int] | None:
        return self.address if family == 4 else self.address6

    def send(self, data: bytes, address: Address) -> None:
        source = self.address6 if ":" in address[0] else self.address
        if source is None:
            raise OSError("no IPv6 socket")
        self.sent.append((data, address))
        self.network.carry(data, source, address)

    def add_consumer(self, predicate: Callable[[bytes], bool],
                     consumer: Callable[[bytes, Address], None]) -> None:
        self.consumers.append((predicate, consumer))

    def remove_consumer(self, consumer: Callable[[bytes, Address], None]) -> None:
        self.consumers = [(p, c) for p, c in self.consumers if c != consumer]

    def arrive(self, data: bytes, source: Address) -> None:
        self.received.append((data, source))
        for predicate, consumer in self.consumers:
            if predicate(data):
                consumer(data, source)
                return

    def messages_sent(self) -> list[tuple[Message, Address]]:
        return [(decode_message(data), address) for data, address in self.sent]

    def inject(self, message: Message | bytes, source: Address) -> None:
        """A datagram from ``source`` arrives now."""
        data = message if isinstance(message, bytes) else encode_message(message)
        self.arrive(data, source)


class FakeNetwork:
    """Muxes by address; datagrams carried with a latency on ``clock``."""

    def __init__(self, clock: Clock, latency: float = 0.01) -> None:
        self.clock = clock
        self.latency = latency
        self.muxes: dict[Address, FakeMux] = {}
        self.lost = 0
        self.carried = 0
        self._next_port = 7000

    def mux(self, port: int | None = None, ipv6: bool = False) -> FakeMux:
        if port is None:
            port, self._next_port = self._next_port, self._next_port + 1
        mux = FakeMux(self, (LOOPBACK, port), (LOOPBACK6, port) if ipv6 else None)
        self.muxes[mux.address] = mux
        if mux.address6 is not None:
            self.muxes[mux.address6] = mux
        return mux

    def carry(self, data: bytes, source: Address, destination: Address) -> None:
        self.carried += 1
        self.clock.callLater(self.latency, self._arrive, data, source, destination)

    def _arrive(self, data: bytes, source: Address, destination: Address) -> None:
        mux = self.muxes.get(destination)
        if mux is None:
            self.lost += 1
            return
        mux.arrive(data, source)


def loopback_config(**fields: Any) -> DHTConfig:
    """A node's settings for a loopback test: generous rate limits, no routers."""
    fields.setdefault("bootstrap_nodes", ())
    fields.setdefault("query_rate", 1000.0)
    fields.setdefault("query_burst", 1000.0)
    return DHTConfig(enabled=True, **fields)


def make_nodes(network: FakeNetwork, count: int, seed: int = 1, ipv6: bool = False,
               **fields: Any) -> list[DHTNode]:
    """``count`` started nodes; each joins through the first (which has no
    router), by IPv4 and, with ``ipv6``, by IPv6 too."""
    nodes = []
    for n in range(count):
        mux = network.mux(ipv6=ipv6)
        if n:
            first = nodes[0].transport
            fields["bootstrap_nodes"] = tuple(
                a for a in (first.local_address(4), first.local_address(6)) if a is not None)
        node = DHTNode(mux, loopback_config(**fields), reactor=network.clock,
                       rng=random.Random(seed * 1000 + n))
        node.start()
        nodes.append(node)
        network.clock.advance(1)
    return nodes


def settle(clock: Clock, seconds: float, step: float = 0.01) -> None:
    """Advance ``clock`` by ``seconds`` in steps of ``step``."""
    for _ in range(int(round(seconds / step))):
        clock.advance(step)
