"""A Session's outgoing connection attempts, and how it dials each address.

Theory of operation
-------------------
``Dialer`` keeps the attempts in progress, one ``Dial`` per (info hash,
address), and the count of those whose TCP connect has not completed
(``half_open``).  ``Session.connect`` decides whether an attempt may start
(its state, limits and own addresses); ``Dialer.dial`` starts it through an
endpoint, with the ``Dial`` as the endpoint's factory.

An attempt ends in exactly one way:

* the TCP connect succeeds: the ``Dial`` builds the link through the
  session's ``make_link`` (it is no longer half-open; the link's host hears
  the rest), and the endpoint's Deferred ends the attempt;
* it fails, or is cancelled (``cancel_host``, ``cancel_all``): the host hears
  ``connect_failed(address, reason)``, once.

``DialMethods`` is the memory behind the "enabled" encryption setting's
fallback (see ``session``): an address whose peer dropped our plain dial
before a sign of life is dialled encrypted next time, and the reverse.  It
is an LRU of ``FALLBACK_MEMORY`` addresses; the first flip for an address
gives a reason starting with ``ENCRYPTION_RETRY``, which tells the swarm to
redial at once rather than after its backoff.

No timers of its own (the endpoint's connect timeout bounds an attempt).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory

from txbittorrent.interfaces import Address, PeerHost
from txbittorrent.peer.msepolicy import ENCRYPTION_RETRY

if TYPE_CHECKING:
    from txbittorrent.peer.protocol import PeerProtocol

__all__ = ["DIAL_ENCRYPTED_FIRST", "FALLBACK_MEMORY", "Dial", "DialMethods", "Dialer"]

DIAL_ENCRYPTED_FIRST = False
"""Whether an "enabled" session dials an address it knows nothing of
encrypted (else plain; the other method is the fallback)."""

FALLBACK_MEMORY = 4096
"""Addresses whose dial method the session remembers (LRU)."""


class Dial(Factory):
    """One outgoing attempt: its host, address, endpoint Deferred and state.
    It is the factory given to the endpoint, and lives until the TCP
    connect succeeds (the link then takes over) or fails."""

    noisy = False

    def __init__(self, dialer: Dialer, host: PeerHost, address: Address) -> None:
        self.dialer = dialer
        self.host = host
        self.address = address
        self.deferred: Deferred[Any] | None = None
        self.connected = False
        self.done = False

    def buildProtocol(self, addr: Any) -> PeerProtocol | None:
        return self.dialer.connected(self)


class Dialer:
    """The attempts in progress (see the module docstring).  ``make_link``
    builds the link of a connected attempt (``Session`` chooses its kind)."""

    def __init__(self, make_link: Callable[[Dial], PeerProtocol | None]) -> None:
        self._make_link = make_link
        self._dials: dict[tuple[bytes, Address], Dial] = {}
        self.half_open = 0
        """Attempts whose TCP connect has not completed."""

    def __contains__(self, key: tuple[bytes, Address]) -> bool:
        """Whether (info hash, address) is being dialled."""
        return key in self._dials

    def __iter__(self) -> Iterator[Dial]:
        return iter(list(self._dials.values()))

    def pending(self, host: PeerHost) -> int:
        """The host's attempts whose TCP connect has not completed."""
        return sum(1 for dial in self._dials.values() if dial.host is host and not dial.connected)

    def dial(self, host: PeerHost, address: Address, endpoint: Any) -> None:
        """Start an attempt through ``endpoint`` (an ``IStreamClientEndpoint``)."""
        dial = Dial(self, host, address)
        self._dials[(host.info_hash, address)] = dial
        self.half_open += 1
        d = dial.deferred = endpoint.connect(dial)
        d.addCallbacks(
            lambda _: self._ended(dial),
            lambda f: self._failed(dial, f"connect failed: {f.getErrorMessage()}"),
        )

    def connected(self, dial: Dial) -> PeerProtocol | None:
        """The TCP connect of ``dial`` succeeded: its link, from ``make_link``."""
        if dial.done or dial.connected:
            return None
        dial.connected = True
        self.half_open -= 1
        return self._make_link(dial)

    def cancel_host(self, host: PeerHost, reason: str) -> None:
        """Cancel the host's attempts not yet connected."""
        for dial in self:
            if dial.host is host and not dial.connected:
                self._cancel(dial, reason)

    def cancel_all(self, reason: str) -> None:
        """Cancel every attempt not yet connected."""
        for dial in self:
            self._cancel(dial, reason)

    def _failed(self, dial: Dial, reason: str) -> None:
        if dial.done:
            return
        self._forget(dial)
        dial.host.connect_failed(dial.address, reason)

    def _ended(self, dial: Dial) -> None:
        if not dial.done:
            self._forget(dial)

    def _forget(self, dial: Dial) -> None:
        dial.done = True
        if not dial.connected:
            self.half_open -= 1
        key = (dial.host.info_hash, dial.address)
        if self._dials.get(key) is dial:
            del self._dials[key]

    def _cancel(self, dial: Dial, reason: str) -> None:
        if dial.connected:
            # Its link is in the group; closing the link ends the attempt.
            return
        self._forget(dial)
        if dial.deferred is not None:
            dial.deferred.cancel()  # the endpoint stops connecting
        dial.host.connect_failed(dial.address, reason)


class DialMethods:
    """Address -> dial encrypted, learnt from dropped dials (an LRU of
    ``size`` addresses; see the module docstring)."""

    def __init__(self, size: int = FALLBACK_MEMORY,
                 encrypted_first: bool = DIAL_ENCRYPTED_FIRST) -> None:
        self._size = size
        self._encrypted_first = encrypted_first
        self._memory: OrderedDict[Address, bool] = OrderedDict()

    def __len__(self) -> int:
        return len(self._memory)

    def encrypted(self, address: Address) -> bool:
        """Whether the next dial to ``address`` starts with the MSE handshake."""
        return self._memory.get(address, self._encrypted_first)

    def remember(self, address: Address, encrypted: bool) -> bool:
        """Dial ``address`` encrypted (or not) from now on; True if it was
        not remembered before."""
        memory = self._memory
        first = address not in memory
        memory[address] = encrypted
        memory.move_to_end(address)
        while len(memory) > self._size:
            memory.popitem(last=False)
        return first

    def fell_back(self, address: Address, encrypted: bool) -> str:
        """The peer at ``address`` dropped our dial, made ``encrypted`` or
        not, before a sign of life: dial the other way next time.  The
        reason its host hears."""
        tried = "encrypted" if encrypted else "plaintext"
        if self.remember(address, not encrypted):
            return f"{ENCRYPTION_RETRY}: the peer did not take our {tried} handshake"
        return f"the peer did not take our {tried} handshake"
