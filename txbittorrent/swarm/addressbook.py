"""The peers a swarm knows of but is not necessarily connected to, and its bans.

Theory of operation
-------------------
``AddressBook`` holds candidate addresses (from trackers, incoming peers'
listen ports, later PEX and DHT) and, for each, whether a connection to it
is being made or is up, how many attempts in a row failed and when the next
attempt may start.  It decides nothing by itself and reads no clock: the
swarm passes ``now`` in and asks ``due(now)`` which addresses to dial.

Rules:

* The book is bounded (``max_size``).  When it is full a new address
  takes the place of an idle one from a weaker source (PEX, then the DHT,
  below trackers, magnets, the user and incoming peers), failed ones
  first, or of an idle one from the same source that failed; otherwise it
  is ignored.  So a flood of made-up addresses from PEX cannot
  keep out the peers a tracker or the user gives later.  An address is
  forgotten after ``len(backoff)`` failed attempts in a row.  Between failures it waits ``backoff[n - 1]`` seconds after the n-th;
  after a connection that worked and ended it waits ``backoff[0]``.
* An attempt that neither connected nor failed within ``connect_timeout``
  seconds is taken as failed (the dialer should have said; we do not rely
  on it).
* ``due`` hands out trusted sources before weak ones, and within a source
  never-failed addresses before failed ones, so retries of bad addresses
  cannot starve a good one.
* Bans are by host (IP address), as libtorrent's are, and by peer id; they
  last as long as the book.  Hash failures are counted per host, so that a
  peer cannot reset its count by reconnecting.  The one exception is a
  loopback address: every program on this machine shares it, so there the
  ban (and the failure count) is for the ``host:port`` seen, with the peer
  id ban catching a reconnection from another port (``ban_key``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from txbittorrent.interfaces import Address

__all__ = ["AddressBook", "ban_key"]


def ban_key(address: Address) -> str:
    """What a ban is keyed on: the IP address, or ``ip:port`` on loopback."""
    host, port = address
    if host == "::1" or host.startswith("127."):
        return f"{host}:{port}"
    return host

_IDLE, _CONNECTING, _CONNECTED = 0, 1, 2

_RANK = {"pex": 0, "dht": 1}
"""How much a source's word is worth when the book is full (higher keeps)."""
_TRUSTED = 2
"""The rank of every other source: trackers, a magnet, the user, incoming peers."""


class _Entry:
    __slots__ = ("source", "state", "failures", "next_try", "since")

    def __init__(self, source: str) -> None:
        self.source = source
        self.state = _IDLE
        self.failures = 0
        self.next_try = 0.0
        self.since = 0.0


class AddressBook:
    """Candidate peers, their connection backoff, and bans (see the module docstring)."""

    def __init__(self, max_size: int, backoff: tuple[float, ...], connect_timeout: float) -> None:
        if max_size < 0 or not backoff:
            raise ValueError("max_size must not be negative; backoff needs at least one step")
        self.max_size = max_size
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self._entries: dict[Address, _Entry] = {}
        # (dicts as sets: an empty set is 216 bytes, an empty dict 64, and a
        # session holds a book per running torrent)
        self._banned_hosts: dict[str, None] = {}
        self._banned_ids: dict[bytes, None] = {}
        self._hash_failures: dict[str, int] = {}
        self._own: dict[Address, None] = {}
        self.attempts = 0
        """Addresses being connected to now."""

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, address: object) -> bool:
        return address in self._entries

    def add(self, addresses: Iterable[Address], source: str) -> int:
        """Remember new candidates; the number added."""
        added = 0
        entries = self._entries
        for address in addresses:
            host, port = address
            if address in entries or address in self._own or not 0 < port < 65536:
                continue
            if ban_key(address) in self._banned_hosts:
                continue
            if len(entries) >= self.max_size and not self._make_room(source):
                continue
            entries[(host, port)] = _Entry(source)
            added += 1
        return added

    def _make_room(self, source: str) -> bool:
        """Forget one idle entry for a newcomer from ``source`` (see the
        module docstring); False if none may go."""
        rank = _RANK.get(source, _TRUSTED)
        victim: Address | None = None
        best: tuple[bool, int, int] | None = None
        for address, entry in self._entries.items():
            if entry.state != _IDLE:
                continue
            entry_rank = _RANK.get(entry.source, _TRUSTED)
            if entry_rank > rank or (entry_rank == rank and not entry.failures):
                continue
            key = (not entry.failures, entry_rank, -entry.failures)
            if best is None or key < best:
                victim, best = address, key
        if victim is None:
            return False
        del self._entries[victim]
        return True

    def source(self, address: Address) -> str | None:
        entry = self._entries.get(address)
        return entry.source if entry is not None else None

    def due(self, now: float) -> Iterator[Address]:
        """Addresses to dial now: trusted sources before the DHT before PEX,
        then fewest failures first, then longest-known first; so addresses
        from PEX (a flood of made-up ones) cannot starve one a tracker, the
        user or a magnet gave, even one that failed before."""
        ready: list[tuple[int, int, int, Address]] = []
        for order, (address, entry) in enumerate(list(self._entries.items())):
            if entry.state == _CONNECTING and now - entry.since >= self.connect_timeout:
                self._fail(address, entry, now)
                continue
            if entry.state == _IDLE and entry.next_try <= now:
                rank = _RANK.get(entry.source, _TRUSTED)
                ready.append((-rank, entry.failures, order, address))
        ready.sort()
        for _, _, _, address in ready:
            yield address

    def _set_state(self, entry: _Entry, state: int) -> None:
        self.attempts += (state == _CONNECTING) - (entry.state == _CONNECTING)
        entry.state = state

    def connecting(self, address: Address, now: float) -> None:
        """An attempt to ``address`` starts."""
        entry = self._entries.get(address)
        if entry is not None:
            self._set_state(entry, _CONNECTING)
            entry.since = now

    def not_started(self, address: Address) -> None:
        """The attempt announced by ``connecting`` did not start after all."""
        entry = self._entries.get(address)
        if entry is not None and entry.state == _CONNECTING:
            self._set_state(entry, _IDLE)

    def connected(self, address: Address, source: str = "incoming") -> None:
        """A connection to (or from the listener at) ``address`` is up."""
        entry = self._entries.get(address)
        if entry is None:
            if len(self._entries) >= self.max_size and not self._make_room(source):
                return
            entry = self._entries[address] = _Entry(source)
        self._set_state(entry, _CONNECTED)
        entry.failures = 0

    def lost(self, address: Address, now: float) -> None:
        """A connection that was up ended; wait ``backoff[0]`` before redialling."""
        entry = self._entries.get(address)
        if entry is not None:
            self._set_state(entry, _IDLE)
            entry.next_try = now + self.backoff[0]

    def failed(self, address: Address, now: float) -> None:
        """An attempt failed (or the handshake was refused)."""
        entry = self._entries.get(address)
        if entry is not None:
            self._fail(address, entry, now)

    def _fail(self, address: Address, entry: _Entry, now: float) -> None:
        entry.failures += 1
        self._set_state(entry, _IDLE)
        if entry.failures > len(self.backoff):
            del self._entries[address]
            return
        entry.next_try = now + self.backoff[entry.failures - 1]

    def forget_own(self, address: Address) -> None:
        """``address`` is ourselves: never dial it again."""
        self._own[address] = None
        self._remove(address)

    def _remove(self, address: Address) -> None:
        entry = self._entries.pop(address, None)
        if entry is not None:
            self._set_state(entry, _IDLE)

    # -- bans --------------------------------------------------------------------

    def ban(self, host: str, peer_id: bytes | None) -> None:
        """Ban ``host`` (a ``ban_key``) and ``peer_id``."""
        self._banned_hosts[host] = None
        if peer_id:
            self._banned_ids[peer_id] = None
        for address in [a for a in self._entries if ban_key(a) == host]:
            if self._entries[address].state != _CONNECTED:
                self._remove(address)

    def is_banned(self, host: str, peer_id: bytes | None = None) -> bool:
        return host in self._banned_hosts or (peer_id is not None and peer_id in self._banned_ids)

    @property
    def banned_hosts(self) -> frozenset[str]:
        return frozenset(self._banned_hosts)

    def hash_failure(self, host: str) -> int:
        """Count a piece that failed with data from ``host`` (a ``ban_key``); the count so far."""
        count = self._hash_failures.get(host, 0) + 1
        self._hash_failures[host] = count
        return count
