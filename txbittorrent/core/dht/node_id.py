"""Node ids tied to IP addresses (BEP 42, the DHT security extension).

Theory of operation
-------------------
A node may not pick its id freely: the first 21 bits must be the top of
``crc32c(masked_ip | r << 29)`` (for IPv6, of the first 8 address bytes
masked, ``r`` in the top 3 bits of the first), where ``r`` is the low 3 bits
of the id's last byte.  So an attacker controlling one address can place only
8 ids per address prefix near a target, and cannot sit next to an info hash.

* ``make_node_id(ip, rng)`` draws a valid id for our external address (any
  random id if the address is ``None`` or exempt);
* ``is_valid_node_id(node_id, ip)`` checks another node's id against the
  address its datagrams come from; addresses BEP 42 exempts (the private,
  loopback and link-local ranges, and their IPv6 counterparts) always pass,
  so nodes on 127.0.0.1 in tests are never rejected;
* ``ExternalAddressVotes`` tallies the BEP 42 ``ip`` field of responses
  (what other nodes see as our address), one vote per responding address,
  bounded, so the adapter can learn its public address and re-draw its id
  when the current one does not match it.

Nothing here reads a clock or global randomness; ``crc32c`` (the Castagnoli
polynomial, which ``zlib.crc32`` is not) is computed with a table built once.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, OrderedDict
from typing import Protocol, Union

__all__ = [
    "crc32c", "node_id_prefix", "make_node_id", "is_valid_node_id", "is_exempt",
    "ExternalAddressVotes", "Bits",
]

IP = Union[str, ipaddress.IPv4Address, ipaddress.IPv6Address]

_CASTAGNOLI = 0x82F63B78
"""The CRC-32C polynomial, bit-reversed (the usual table-driven form)."""


def _table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte
        for _ in range(8):
            crc = (crc >> 1) ^ (_CASTAGNOLI if crc & 1 else 0)
        table.append(crc)
    return tuple(table)


_TABLE = _table()

_V4_MASK = bytes([0x03, 0x0F, 0x3F, 0xFF])
_V6_MASK = bytes([0x01, 0x03, 0x07, 0x0F, 0x1F, 0x3F, 0x7F, 0xFF])

_EXEMPT = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "169.254.0.0/16",
        "127.0.0.0/8",
        "::1/128",
        "fe80::/10",
        "fc00::/7",
    )
)
"""BEP 42's local ranges, plus IPv6 loopback, link-local and unique local."""


class Bits(Protocol):
    """The part of ``random.Random`` used here."""

    def getrandbits(self, k: int, /) -> int: ...


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C (Castagnoli) of ``data``, continuing from ``crc``."""
    crc ^= 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def _address(ip: IP) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ip if not isinstance(ip, str) else ipaddress.ip_address(ip)


def is_exempt(ip: IP) -> bool:
    """Whether BEP 42 leaves nodes at ``ip`` free to pick any id."""
    address = _address(ip)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _EXEMPT if network.version == address.version)


def node_id_prefix(ip: IP, r: int) -> int:
    """The CRC whose top 21 bits a node id at ``ip`` with random ``r`` starts with."""
    address = _address(ip)
    if isinstance(address, ipaddress.IPv4Address):
        masked = bytearray(a & m for a, m in zip(address.packed, _V4_MASK))
    else:
        masked = bytearray(a & m for a, m in zip(address.packed[:8], _V6_MASK))
    masked[0] |= (r & 0x07) << 5
    return crc32c(bytes(masked))


def make_node_id(ip: IP | None, rng: Bits) -> bytes:
    """A random node id, valid for ``ip`` under BEP 42 unless ``ip`` is ``None``
    or exempt (then any random id)."""
    node_id = bytearray(rng.getrandbits(160).to_bytes(20, "big"))
    if ip is None or is_exempt(ip):
        return bytes(node_id)
    crc = node_id_prefix(ip, node_id[19])
    node_id[0] = crc >> 24
    node_id[1] = (crc >> 16) & 0xFF
    node_id[2] = ((crc >> 8) & 0xF8) | (node_id[2] & 0x07)
    return bytes(node_id)


def is_valid_node_id(node_id: bytes, ip: IP) -> bool:
    """Whether ``node_id`` is one a node at ``ip`` may use (always, if exempt)."""
    if len(node_id) != 20:
        return False
    if is_exempt(ip):
        return True
    crc = node_id_prefix(ip, node_id[19])
    return int.from_bytes(node_id[:3], "big") >> 3 == crc >> 11


class ExternalAddressVotes:
    """What other nodes say our address is (BEP 42's ``ip``), by majority.

    Each voter (the address a response came from) has one vote, its latest;
    at most ``max_voters`` are remembered, the oldest forgotten first."""

    def __init__(self, max_voters: int = 50, min_votes: int = 3) -> None:
        if max_voters < 1 or min_votes < 1:
            raise ValueError("max_voters and min_votes must be positive")
        self.max_voters = max_voters
        self.min_votes = min_votes
        self._votes: OrderedDict[str, str] = OrderedDict()

    def vote(self, address: str, voter: str) -> None:
        """``voter`` (the host a response came from) says we are at ``address``."""
        self._votes.pop(voter, None)
        self._votes[voter] = address
        while len(self._votes) > self.max_voters:
            self._votes.popitem(last=False)

    @property
    def winner(self) -> str | None:
        """The address most voters agree on, if at least ``min_votes`` do."""
        if not self._votes:
            return None
        counts = Counter(self._votes.values())
        best = max(counts.values())
        leaders = [a for a, n in counts.items() if n == best]
        return leaders[0] if best >= self.min_votes and len(leaders) == 1 else None
