"""Peer exchange (BEP 11, ``ut_pex``): the message codec and what each peer was told.

Theory of operation
-------------------
A ``ut_pex`` message is a bencoded dictionary of compact peer lists (BEP 23
form: 4 address bytes and a 2-byte port for IPv4, 16 and 2 for IPv6):

* ``added`` / ``added6``: peers the sender is connected to now and has not
  told the receiver about; ``added.f`` / ``added6.f`` carry exactly one
  flags byte per added peer (``PexFlags``);
* ``dropped`` / ``dropped6``: peers it told about before and is no longer
  connected to.

``PexMessage`` holds both families together (``added`` as ``PexPeer``s,
IPv4 before IPv6; ``dropped`` as addresses); ``encode_pex`` splits them by
family and always writes ``added.f`` with ``added`` (libtorrent ignores an
``added`` without it).  ``decode_pex`` reads an untrusted payload: at most
``MAX_MESSAGE_SIZE`` bytes, strict bounded bencoding, a dictionary whose
known keys are byte strings of whole entries, flags of exactly the right
length, at most ``max_entries`` entries in all.  Anything else raises
``RemoteProtocolError`` and nothing else.  Entries with port 0 are skipped,
repeats kept once, unknown keys ignored.

``PexState`` is what we told ONE peer: the addresses (and their flags) it
heard as added and not yet as dropped.  ``diff(connected)`` compares that
with the peers we are connected to now and returns the next message (or
None when there is nothing new), recording it as told: at most
``max_first_added`` added in the first message and ``max_added`` (50, the
convention the clients agreed on) in every later one, at most
``max_dropped`` dropped; what does not fit goes in a later message.  A peer
dropped and connected again between two messages appears in neither list.

``FloodGuard`` counts a peer's messages: the ``max_messages + 1``-th within
``window`` seconds is refused (libtorrent disconnects on the seventh PEX
message in 60 s; so do we).  ``plausible_peer`` refuses addresses a remote
peer has no business sending us (loopback or LAN addresses from a peer that
is not itself local; unspecified, multicast and reserved ones from anyone).

Pure: no I/O, no clock (``now`` is passed in).  The swarm's plug-in
(``swarm.pex``) decides when to send and to whom.
"""

from __future__ import annotations

import enum
import ipaddress
from collections import deque
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from txbittorrent.core.bencoding import Limits, decode, encode
from txbittorrent.core.tracker.announce import encode_compact_peers
from txbittorrent.errors import BencodeError, RemoteProtocolError

__all__ = [
    "PEX_NAME",
    "MAX_MESSAGE_SIZE",
    "MAX_ADDED",
    "MAX_FIRST_ADDED",
    "MAX_DROPPED",
    "MAX_ENTRIES",
    "PexFlags",
    "PexPeer",
    "PexMessage",
    "encode_pex",
    "decode_pex",
    "pex_address",
    "plausible_peer",
    "PexState",
    "FloodGuard",
]

Address = tuple[str, int]

PEX_NAME = b"ut_pex"
"""The extension's name in a BEP 10 handshake's ``m``."""

MAX_MESSAGE_SIZE = 500 * 1024
"""The largest payload read (libtorrent disconnects a peer sending more)."""

MAX_ADDED = 50
"""Added peers (both families together) in a message after the first."""

MAX_FIRST_ADDED = 200
"""Added peers in the first message to a peer (the whole list, bounded)."""

MAX_DROPPED = 50
"""Dropped peers (both families together) in one message."""

MAX_ENTRIES = 1000
"""Entries (added and dropped, both families) a received message may hold.
libtorrent sends at most 100 added and the few it dropped; more is a flood."""

_LIMITS = Limits(max_depth=4, max_items=64)
"""Six strings in a dictionary; room for a few unknown keys, nothing more."""

_V4, _V6 = 6, 18
"""Bytes per compact entry: address and 2-byte port."""


class PexFlags(enum.IntFlag):
    """The bits of an ``added.f`` byte (BEP 11)."""

    ENCRYPTION = 0x01
    """The peer prefers encryption (MSE)."""
    SEED = 0x02
    """The peer is a seed (or upload only)."""
    UTP = 0x04
    """The peer supports uTP."""
    HOLEPUNCH = 0x08
    """The peer supports ut_holepunch."""
    REACHABLE = 0x10
    """The sender made an outgoing connection to the peer: it is reachable."""


@dataclass(frozen=True, slots=True)
class PexPeer:
    """An added peer: its listening address and the flags byte sent with it."""

    address: Address
    flags: int = 0


@dataclass(frozen=True, slots=True)
class PexMessage:
    """One ``ut_pex`` message, both families together (IPv4 first when decoded)."""

    added: tuple[PexPeer, ...] = ()
    dropped: tuple[Address, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.added or self.dropped)


# -- addresses -------------------------------------------------------------------


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """``host`` as an address (an IPv4-mapped IPv6 one as IPv4), or None."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.scope_id:
            return None
        if ip.ipv4_mapped is not None:
            return ip.ipv4_mapped
    return ip


def pex_address(address: Address) -> Address | None:
    """``address`` as PEX carries it (the host an IP address in canonical
    spelling, IPv4-mapped IPv6 as IPv4, the port 1..65535), or None if it
    cannot travel in a PEX message (a DNS name, port 0 ...)."""
    host, port = address
    ip = _ip(host) if isinstance(host, str) else None
    if ip is None or type(port) is not int or not 0 < port < 65536:
        return None
    return (str(ip), port)


def _is_local(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    return ip.is_private or ip.is_link_local or ip.is_loopback


def plausible_peer(sender_host: str, host: str) -> bool:
    """Whether a peer at ``sender_host`` may tell us to connect to ``host``:
    never an unspecified, multicast or reserved address; a loopback address
    only from a loopback sender; a LAN (private, link-local) address only
    from a sender that is itself local."""
    ip, sender = _ip(host), _ip(sender_host)
    if ip is None or sender is None:
        return False
    if ip.is_unspecified or ip.is_multicast or ip.is_reserved:
        return False
    if ip.is_loopback:
        return sender.is_loopback
    if _is_local(ip):
        return _is_local(sender)
    return True


# -- the codec ---------------------------------------------------------------------


def encode_pex(message: PexMessage) -> bytes:
    """The bencoded payload of ``message``; only non-empty lists are written,
    and ``added.f`` (``added6.f``) always with ``added`` (``added6``).
    ``ValueError`` for an address that is not an IP address with a port
    in 1..65535, or flags that do not fit a byte."""
    added4: list[Address] = []
    added6: list[Address] = []
    flags4 = bytearray()
    flags6 = bytearray()
    for peer in message.added:
        if not 0 <= peer.flags <= 0xFF:
            raise ValueError(f"flags {peer.flags!r} of {peer.address!r} do not fit a byte")
        address = _checked(peer.address)
        if ":" in address[0]:
            added6.append(address)
            flags6.append(peer.flags)
        else:
            added4.append(address)
            flags4.append(peer.flags)
    dropped4: list[Address] = []
    dropped6: list[Address] = []
    for address in map(_checked, message.dropped):
        (dropped6 if ":" in address[0] else dropped4).append(address)
    payload: dict[bytes, bytes] = {}
    if added4:
        payload[b"added"] = encode_compact_peers(added4)
        payload[b"added.f"] = bytes(flags4)
    if added6:
        payload[b"added6"] = encode_compact_peers(added6, ipv6=True)
        payload[b"added6.f"] = bytes(flags6)
    if dropped4:
        payload[b"dropped"] = encode_compact_peers(dropped4)
    if dropped6:
        payload[b"dropped6"] = encode_compact_peers(dropped6, ipv6=True)
    return encode(payload)


def _checked(address: Address) -> Address:
    canonical = pex_address(address)
    if canonical is None:
        raise ValueError(f"{address!r} cannot be sent in a PEX message")
    return canonical


def _field(payload: Mapping[bytes, Any], key: bytes, size: int) -> bytes:
    """The compact list under ``key`` (empty if absent), checked."""
    value = payload.get(key, b"")
    if not isinstance(value, bytes):
        raise RemoteProtocolError(f"ut_pex: {key.decode()!r} is not a string")
    if size and len(value) % size:
        raise RemoteProtocolError(
            f"ut_pex: {key.decode()!r} of {len(value)} bytes is not a multiple of {size}"
        )
    return value


def _entries(data: bytes, size: int) -> Iterator[Address | None]:
    """Each compact entry of ``data`` as an address (None for port 0)."""
    for offset in range(0, len(data), size):
        port = int.from_bytes(data[offset + size - 2 : offset + size], "big")
        raw = data[offset : offset + size - 2]
        if port == 0:
            yield None
        elif size == _V4:
            yield (str(ipaddress.IPv4Address(raw)), port)
        else:
            ip = ipaddress.IPv6Address(raw)
            yield (str(ip.ipv4_mapped or ip), port)


def decode_pex(payload: bytes, *, max_entries: int = MAX_ENTRIES) -> PexMessage:
    """Read a ``ut_pex`` payload (see the module docstring); every malformed
    or oversized payload raises ``RemoteProtocolError``."""
    if len(payload) > MAX_MESSAGE_SIZE:
        raise RemoteProtocolError(
            f"ut_pex message of {len(payload)} bytes (at most {MAX_MESSAGE_SIZE})"
        )
    try:
        value = decode(payload, limits=_LIMITS)
    except BencodeError as e:
        raise RemoteProtocolError(f"ut_pex: {e}") from None
    if not isinstance(value, dict):
        raise RemoteProtocolError("ut_pex message is not a dictionary")
    added4 = _field(value, b"added", _V4)
    added6 = _field(value, b"added6", _V6)
    dropped4 = _field(value, b"dropped", _V4)
    dropped6 = _field(value, b"dropped6", _V6)
    count = (len(added4) + len(dropped4)) // _V4 + (len(added6) + len(dropped6)) // _V6
    if count > max_entries:
        raise RemoteProtocolError(f"ut_pex message of {count} peers (at most {max_entries})")
    added: dict[Address, PexPeer] = {}
    for data, flags_key, size in ((added4, b"added.f", _V4), (added6, b"added6.f", _V6)):
        flags = _field(value, flags_key, 0)
        if flags_key in value and len(flags) != len(data) // size:
            raise RemoteProtocolError(
                f"ut_pex: {len(flags)} bytes of {flags_key.decode()!r} "
                f"for {len(data) // size} peers"
            )
        for i, address in enumerate(_entries(data, size)):
            if address is not None and address not in added:
                added[address] = PexPeer(address, flags[i] if flags else 0)
    dropped: dict[Address, None] = {}
    for data, size in ((dropped4, _V4), (dropped6, _V6)):
        dropped.update((a, None) for a in _entries(data, size) if a is not None)
    return PexMessage(tuple(added.values()), tuple(dropped))


# -- what one peer was told -----------------------------------------------------------


class PexState:
    """The peers one remote peer heard about from us (see the module docstring)."""

    __slots__ = ("max_added", "max_first_added", "max_dropped", "_told", "_sent")

    def __init__(
        self,
        *,
        max_added: int = MAX_ADDED,
        max_first_added: int = MAX_FIRST_ADDED,
        max_dropped: int = MAX_DROPPED,
    ) -> None:
        if min(max_added, max_first_added, max_dropped) < 1:
            raise ValueError("the caps must be positive")
        self.max_added = max_added
        self.max_first_added = max_first_added
        self.max_dropped = max_dropped
        self._told: dict[Address, int] = {}
        self._sent = 0

    @property
    def told(self) -> Mapping[Address, int]:
        """The addresses the peer heard as added and not since as dropped, with their flags."""
        return self._told

    @property
    def messages_sent(self) -> int:
        """How many messages ``diff`` has produced."""
        return self._sent

    def diff(self, connected: Mapping[Address, int]) -> PexMessage | None:
        """The next message for the peer, given the peers we are connected
        to now (listening address -> flags; addresses PEX cannot carry are
        left out), recorded as told; None if there is nothing new."""
        current: dict[Address, int] = {}
        for address, flags in connected.items():
            canonical = pex_address(address)
            if canonical is not None and canonical not in current:
                current[canonical] = flags & 0xFF
        told = self._told
        dropped = [a for a in told if a not in current][: self.max_dropped]
        cap = self.max_first_added if self._sent == 0 else self.max_added
        added: list[PexPeer] = []
        for address, flags in current.items():
            if len(added) >= cap:
                break
            if address not in told:
                added.append(PexPeer(address, flags))
        if not added and not dropped:
            return None
        for address in dropped:
            del told[address]
        for peer in added:
            told[peer.address] = peer.flags
        self._sent += 1
        return PexMessage(tuple(added), tuple(dropped))


class FloodGuard:
    """A peer's recent PEX messages: ``allow(now)`` is False for the message
    that makes ``max_messages + 1`` within ``window`` seconds."""

    __slots__ = ("window", "_times")

    def __init__(self, max_messages: int = 6, window: float = 60.0) -> None:
        if max_messages < 1 or window <= 0:
            raise ValueError("max_messages and window must be positive")
        self.window = window
        self._times: deque[float] = deque(maxlen=max_messages)

    def allow(self, now: float) -> bool:
        """Count a message received at ``now``; whether it is within the limit."""
        times = self._times
        flood = len(times) == times.maxlen and now - times[0] < self.window
        times.append(now)
        return not flood
