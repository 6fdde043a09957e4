"""The tracker side of BEP 3/7/15/23/48: a swarm registry and request decoding.

Theory of operation
-------------------
``TrackerState`` is what a tracker knows: for each info hash, the peers that
announced it (address, ``peer_id``, ``left``, when last seen), how many of
them are seeders, and how many downloads completed.  ``announce`` records the
requester and returns a random selection of the others; ``scrape`` returns
the counts; ``expire`` forgets peers not seen for two announce intervals.
Every method takes ``now`` (seconds on the caller's clock); randomness comes
from the injected rng.  It knows nothing of HTTP, UDP or sockets.

The request decoders turn what arrives into a validated ``Announce``:
``announce_from_query`` for an HTTP query string (split by ``parse_query``)
and ``UDPTrackerResponder`` for BEP 15 datagrams, which also answers
connect and scrape requests and encodes every reply.  A request the tracker
will not serve raises ``RequestRefused``, whose ``reason`` the adapter sends
back as a ``failure reason`` (HTTP) or an error packet (UDP).

Invariants: within a swarm, one record per ``peer_id`` and one per
(ip, port) (a client that restarts with a new ``peer_id`` replaces its old
record); records are kept in order of last announce, so the oldest are at the
front and expiry stops at the first fresh one; ``seeders`` counts the
records with ``left == 0``.

Decisions
---------
* The peer's address is the one the adapter passes (the request's source
  address); whether to believe a client's ``ip`` parameter is the adapter's
  policy.  IPv4-mapped IPv6 addresses become IPv4.
* ``numwant`` defaults to ``DEFAULT_NUMWANT`` and is capped at
  ``MAX_NUMWANT``; a seeder is given only leechers.  ``stopped`` removes the
  record and returns no peers.
* A swarm at ``max_peers`` still answers a newcomer but does not record it;
  a new info hash beyond ``max_swarms`` is refused.  With an allow-list, an
  info hash not on it is refused.
* Query strings are split on ``&`` and ``=`` and percent-decoded to bytes;
  ``+`` stays ``+`` (form encoding's space would corrupt binary values, and
  BitTorrent clients escape every byte of ``info_hash`` and ``peer_id``).
* UDP connection ids are an HMAC of the client's address and a one-minute
  epoch under a secret; an id is accepted in its epoch and the next, so it
  lives between one and two minutes (BEP 15) and the tracker stores nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import struct
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import unquote_to_bytes

from txbittorrent.core.tracker.announce import (
    AnnounceEvent,
    AnnounceResponse,
    ScrapeStats,
    encode_compact_peers,
)
from txbittorrent.core.bencoding import encode
from txbittorrent.core.tracker.udp import (
    EVENT_CODES,
    MAX_SCRAPE_HASHES,
    PROTOCOL_ID,
    Action,
    encode_announce_response,
    encode_connect_response,
    encode_error,
    encode_scrape_response,
)
from txbittorrent.errors import TxBitTorrentError

__all__ = [
    "DEFAULT_INTERVAL", "DEFAULT_NUMWANT", "MAX_NUMWANT", "MAX_SWARMS", "MAX_PEERS",
    "CONNECTION_EPOCH", "RequestRefused", "PeerRecord", "Announce", "AnnounceResult",
    "TrackerState", "canonical_ip", "parse_query", "announce_from_query",
    "scrape_hashes_from_query", "encode_http_announce", "encode_http_scrape",
    "UDPTrackerResponder",
]

DEFAULT_INTERVAL = 1800
"""Seconds between a client's announces that the tracker asks for."""
DEFAULT_NUMWANT = 50
"""Peers returned when the client does not say how many it wants."""
MAX_NUMWANT = 200
"""Most peers returned by one announce."""
MAX_SWARMS = 100_000
"""Most info hashes tracked at once (without an allow-list)."""
MAX_PEERS = 50_000
"""Most peers recorded per swarm."""
CONNECTION_EPOCH = 60.0
"""UDP connection ids are valid in the epoch they were issued in and the next."""
_MAX_NUMBER = 2**63 - 1

T = TypeVar("T")


class Sampler(Protocol):
    """What the registry needs of a ``random.Random``."""

    def sample(self, population: Sequence[T], k: int) -> list[T]: ...


class RequestRefused(TxBitTorrentError, ValueError):
    """The tracker will not serve a request; ``reason`` is sent to the client."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True, slots=True)
class PeerRecord:
    """One peer of a swarm as last announced."""

    ip: str
    port: int
    peer_id: bytes
    left: int
    last_seen: float

    @property
    def ipv6(self) -> bool:
        return ":" in self.ip


@dataclass(frozen=True, slots=True)
class Announce:
    """A validated announce, whatever the transport; ``ip`` is canonical."""

    info_hash: bytes
    peer_id: bytes
    ip: str
    port: int
    left: int
    uploaded: int = 0
    downloaded: int = 0
    event: AnnounceEvent | None = None
    numwant: int | None = None
    compact: bool = True
    no_peer_id: bool = False


@dataclass(frozen=True, slots=True)
class AnnounceResult:
    """What to tell the announcing peer: counts and other peers."""

    interval: int
    min_interval: int | None
    complete: int
    incomplete: int
    peers: tuple[PeerRecord, ...]


class _Swarm:
    __slots__ = ("peers", "by_address", "seeders", "downloaded")

    def __init__(self) -> None:
        self.peers: dict[bytes, PeerRecord] = {}
        self.by_address: dict[tuple[str, int], bytes] = {}
        self.seeders = 0
        self.downloaded = 0

    def remove(self, peer_id: bytes) -> PeerRecord | None:
        record = self.peers.pop(peer_id, None)
        if record is not None:
            del self.by_address[(record.ip, record.port)]
            self.seeders -= record.left == 0
        return record

    def add(self, record: PeerRecord) -> None:
        self.peers[record.peer_id] = record
        self.by_address[(record.ip, record.port)] = record.peer_id
        self.seeders += record.left == 0

    def expire(self, before: float, *, full: bool) -> int:
        """Drop records last seen at or before ``before``; from the front only unless ``full``."""
        stale = []
        for peer_id, record in self.peers.items():
            if record.last_seen <= before:
                stale.append(peer_id)
            elif not full:
                break
        for peer_id in stale:
            self.remove(peer_id)
        return len(stale)


class TrackerState:
    """Swarms by info hash (see the module docstring)."""

    def __init__(
        self,
        rng: Sampler,
        *,
        interval: int = DEFAULT_INTERVAL,
        min_interval: int | None = None,
        default_numwant: int = DEFAULT_NUMWANT,
        max_numwant: int = MAX_NUMWANT,
        allowed: Collection[bytes] | None = None,
        max_swarms: int = MAX_SWARMS,
        max_peers: int = MAX_PEERS,
    ) -> None:
        if interval < 1:
            raise ValueError("interval must be at least one second")
        self.interval = interval
        self.min_interval = min_interval
        self.default_numwant = default_numwant
        self.max_numwant = max_numwant
        self.allowed = None if allowed is None else frozenset(allowed)
        self.max_swarms = max_swarms
        self.max_peers = max_peers
        self._rng = rng
        self._swarms: dict[bytes, _Swarm] = {}

    def __len__(self) -> int:
        """How many swarms have at least one peer or completed download."""
        return len(self._swarms)

    @property
    def peer_lifetime(self) -> float:
        """Seconds after its last announce that a peer is forgotten."""
        return 2.0 * self.interval

    def peers(self, info_hash: bytes) -> tuple[PeerRecord, ...]:
        """The swarm's records, oldest announce first."""
        swarm = self._swarms.get(info_hash)
        return () if swarm is None else tuple(swarm.peers.values())

    def announce(
        self, request: Announce, now: float, *, ipv6: bool | None = None
    ) -> AnnounceResult:
        """Record ``request`` at ``now`` and choose peers for it.

        ``ipv6`` limits the peers to one family (UDP replies carry only the
        family of the socket); ``None`` returns both."""
        swarm = self._swarm(request.info_hash, create=request.event is not AnnounceEvent.STOPPED)
        if swarm is None:
            return AnnounceResult(self.interval, self.min_interval, 0, 0, ())
        swarm.expire(now - self.peer_lifetime, full=False)
        old = swarm.remove(request.peer_id)
        if request.event is AnnounceEvent.STOPPED:
            return self._result(swarm, ())
        if request.event is AnnounceEvent.COMPLETED and (old is None or old.left > 0):
            swarm.downloaded += 1
        other = swarm.by_address.get((request.ip, request.port))
        if other is not None:
            swarm.remove(other)
        if len(swarm.peers) < self.max_peers:
            swarm.add(
                PeerRecord(request.ip, request.port, request.peer_id, request.left, now)
            )
        wanted = self.default_numwant if request.numwant is None else request.numwant
        wanted = min(wanted, self.max_numwant)
        candidates = [
            record
            for record in swarm.peers.values()
            if record.peer_id != request.peer_id
            and (ipv6 is None or record.ipv6 == ipv6)
            and (request.left > 0 or record.left > 0)
        ]
        chosen = self._rng.sample(candidates, min(wanted, len(candidates))) if wanted else []
        return self._result(swarm, tuple(chosen))

    def scrape(self, info_hashes: Iterable[bytes], now: float) -> dict[bytes, ScrapeStats]:
        """Counts for each info hash asked about that the tracker knows or allows."""
        stats = {}
        for info_hash in info_hashes:
            swarm = self._swarms.get(info_hash)
            if swarm is not None:
                swarm.expire(now - self.peer_lifetime, full=False)
                stats[info_hash] = ScrapeStats(
                    complete=swarm.seeders,
                    downloaded=swarm.downloaded,
                    incomplete=len(swarm.peers) - swarm.seeders,
                )
            elif self.allowed is not None and info_hash in self.allowed:
                stats[info_hash] = ScrapeStats(0, 0, 0)
        return stats

    def expire(self, now: float) -> int:
        """Forget every peer not seen for two intervals, and empty swarms; return the count."""
        removed = 0
        for info_hash, swarm in list(self._swarms.items()):
            removed += swarm.expire(now - self.peer_lifetime, full=True)
            if not swarm.peers and not swarm.downloaded:
                del self._swarms[info_hash]
        return removed

    def _swarm(self, info_hash: bytes, *, create: bool) -> _Swarm | None:
        if self.allowed is not None and info_hash not in self.allowed:
            raise RequestRefused("unregistered torrent")
        swarm = self._swarms.get(info_hash)
        if swarm is None and create:
            if len(self._swarms) >= self.max_swarms:
                raise RequestRefused("tracker is full")
            swarm = self._swarms[info_hash] = _Swarm()
        return swarm

    def _result(self, swarm: _Swarm, peers: tuple[PeerRecord, ...]) -> AnnounceResult:
        return AnnounceResult(
            interval=self.interval,
            min_interval=self.min_interval,
            complete=swarm.seeders,
            incomplete=len(swarm.peers) - swarm.seeders,
            peers=peers,
        )


def canonical_ip(text: str) -> str:
    """``text`` as a canonical IP address (IPv4-mapped IPv6 as IPv4); ``ValueError`` if not one."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise ValueError(f"scoped address {text!r}")
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
    return str(address)


# -- HTTP ---------------------------------------------------------------------

_EVENTS = {b"": None, b"paused": None, **{e.value.encode(): e for e in AnnounceEvent}}


def parse_query(query: bytes) -> dict[bytes, list[bytes]]:
    """An HTTP query string as raw byte values by name (``+`` is not a space)."""
    args: dict[bytes, list[bytes]] = {}
    for part in query.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            args.setdefault(unquote_to_bytes(name), []).append(unquote_to_bytes(value))
    return args


def _one(args: Mapping[bytes, Sequence[bytes]], name: bytes) -> bytes | None:
    values = args.get(name)
    if not values:
        return None
    if len(values) > 1:
        raise RequestRefused(f"more than one {name.decode()}")
    return values[0]


def _number(
    args: Mapping[bytes, Sequence[bytes]], name: bytes, default: int | None = None
) -> int:
    value = _one(args, name)
    if value is None:
        if default is None:
            raise RequestRefused(f"missing {name.decode()}")
        return default
    if not value.isdigit() or len(value) > 19 or int(value) > _MAX_NUMBER:
        raise RequestRefused(f"invalid {name.decode()}")
    return int(value)


def _hash(args: Mapping[bytes, Sequence[bytes]], name: bytes) -> bytes:
    value = _one(args, name)
    if value is None:
        raise RequestRefused(f"missing {name.decode()}")
    if len(value) != 20:
        raise RequestRefused(f"invalid {name.decode()}")
    return value


def announce_from_query(
    args: Mapping[bytes, Sequence[bytes]], source_ip: str, *, trust_ip: bool = False
) -> Announce:
    """The announce in an HTTP query (see ``parse_query``) from ``source_ip``.

    The ``ip`` parameter replaces ``source_ip`` only when ``trust_ip`` is set
    and it is an IP address (not a DNS name)."""
    ip = canonical_ip(source_ip)
    claimed = _one(args, b"ip")
    if trust_ip and claimed:
        try:
            ip = canonical_ip(claimed.decode("ascii"))
        except (UnicodeDecodeError, ValueError):
            raise RequestRefused("invalid ip") from None
    port = _number(args, b"port")
    if not 1 <= port <= 0xFFFF:
        raise RequestRefused("invalid port")
    event = _one(args, b"event") or b""
    if event not in _EVENTS:
        raise RequestRefused("invalid event")
    numwant = _one(args, b"numwant")
    return Announce(
        info_hash=_hash(args, b"info_hash"),
        peer_id=_hash(args, b"peer_id"),
        ip=ip,
        port=port,
        left=_number(args, b"left"),
        uploaded=_number(args, b"uploaded", 0),
        downloaded=_number(args, b"downloaded", 0),
        event=_EVENTS[event],
        numwant=None if numwant is None else _number(args, b"numwant"),
        compact=_one(args, b"compact") != b"0",
        no_peer_id=_one(args, b"no_peer_id") == b"1",
    )


def scrape_hashes_from_query(args: Mapping[bytes, Sequence[bytes]]) -> list[bytes]:
    """The info hashes a scrape asks about (at least one: no full scrapes)."""
    hashes = list(dict.fromkeys(args.get(b"info_hash", ())))
    if not hashes:
        raise RequestRefused("full scrape is not supported")
    if any(len(h) != 20 for h in hashes):
        raise RequestRefused("invalid info_hash")
    if len(hashes) > MAX_NUMWANT:
        raise RequestRefused("too many info_hash values")
    return hashes


def encode_http_announce(request: Announce, result: AnnounceResult) -> bytes:
    """The reply body: compact ``peers`` and ``peers6`` (BEP 23, BEP 7), or dictionaries."""
    reply: dict[bytes, Any] = {
        b"interval": result.interval,
        b"complete": result.complete,
        b"incomplete": result.incomplete,
        b"external ip": ipaddress.ip_address(request.ip).packed,
    }
    if result.min_interval is not None:
        reply[b"min interval"] = result.min_interval
    if request.compact:
        reply[b"peers"] = encode_compact_peers((p.ip, p.port) for p in result.peers if not p.ipv6)
        reply[b"peers6"] = encode_compact_peers(
            ((p.ip, p.port) for p in result.peers if p.ipv6), ipv6=True
        )
    else:
        entries = []
        for peer in result.peers:
            entry: dict[bytes, Any] = {b"ip": peer.ip.encode("ascii"), b"port": peer.port}
            if not request.no_peer_id:
                entry[b"peer id"] = peer.peer_id
            entries.append(entry)
        reply[b"peers"] = entries
    return encode(reply)


def encode_http_scrape(stats: Mapping[bytes, ScrapeStats]) -> bytes:
    """The body of a scrape reply (BEP 48)."""
    files = {
        info_hash: {
            b"complete": s.complete,
            b"downloaded": s.downloaded,
            b"incomplete": s.incomplete,
        }
        for info_hash, s in stats.items()
    }
    return encode({b"files": files})


# -- UDP (BEP 15) -------------------------------------------------------------

_HEADER = struct.Struct(">QII")  # connection id, action, transaction id
# info hash, peer id, downloaded, left, uploaded, event, IP address, key, num want, port
_ANNOUNCE = struct.Struct(">20s20sQQQIIIiH")
_UDP_EVENTS = {code: event for event, code in EVENT_CODES.items()}


class UDPTrackerResponder:
    """Answers BEP 15 datagrams for a ``TrackerState``; keeps no per-client state.

    ``trust_ip`` lets an announce's IP address field (IPv4 only) replace the
    source address, as ``announce_from_query``'s ``trust_ip`` does."""

    def __init__(self, state: TrackerState, secret: bytes, *, trust_ip: bool = False) -> None:
        if len(secret) < 16:
            raise ValueError("the secret must be at least 16 bytes")
        self.state = state
        self._secret = secret
        self.trust_ip = trust_ip

    def connection_id(self, host: str, port: int, now: float) -> int:
        """The id issued to (host, port) at ``now``."""
        return self._id(host, port, int(now // CONNECTION_EPOCH))

    def valid(self, connection_id: int, host: str, port: int, now: float) -> bool:
        """Whether ``connection_id`` was issued to (host, port) less than two epochs ago."""
        epoch = int(now // CONNECTION_EPOCH)
        return any(
            hmac.compare_digest(
                self._id(host, port, e).to_bytes(8, "big"), connection_id.to_bytes(8, "big")
            )
            for e in (epoch, epoch - 1)
        )

    def datagram_received(self, data: bytes, host: str, port: int, now: float) -> bytes | None:
        """The reply to a datagram from (host, port), or ``None`` to stay silent."""
        if len(data) < _HEADER.size:
            return None
        connection_id, action, transaction_id = _HEADER.unpack_from(data)
        if action == Action.CONNECT:
            if connection_id != PROTOCOL_ID:
                return None
            return encode_connect_response(transaction_id, self.connection_id(host, port, now))
        if action not in (Action.ANNOUNCE, Action.SCRAPE):
            return None
        if not self.valid(connection_id, host, port, now):
            return encode_error(transaction_id, "invalid connection id")
        try:
            if action == Action.ANNOUNCE:
                return self._announce(data, transaction_id, host, now)
            return self._scrape(data, transaction_id, now)
        except RequestRefused as e:
            return encode_error(transaction_id, e.reason)

    def _id(self, host: str, port: int, epoch: int) -> int:
        message = f"{canonical_ip(host)}|{port}|{epoch}".encode("ascii")
        digest = hmac.new(self._secret, message, hashlib.sha256).digest()
        return int.from_bytes(digest[:8], "big")

    def _announce(self, data: bytes, transaction_id: int, host: str, now: float) -> bytes:
        if len(data) < _HEADER.size + _ANNOUNCE.size:
            raise RequestRefused("announce request too short")
        info_hash, peer_id, downloaded, left, uploaded, code, address, _key, numwant, port = (
            _ANNOUNCE.unpack_from(data, _HEADER.size)
        )
        if code not in _UDP_EVENTS:
            raise RequestRefused("invalid event")
        if port == 0:
            raise RequestRefused("invalid port")
        ip = canonical_ip(host)
        ipv6 = ":" in ip
        if self.trust_ip and address and not ipv6:
            ip = str(ipaddress.IPv4Address(address))
        request = Announce(
            info_hash=info_hash,
            peer_id=peer_id,
            ip=ip,
            port=port,
            left=min(left, _MAX_NUMBER),
            uploaded=min(uploaded, _MAX_NUMBER),
            downloaded=min(downloaded, _MAX_NUMBER),
            event=_UDP_EVENTS[code],
            numwant=None if numwant < 0 else numwant,
        )
        result = self.state.announce(request, now, ipv6=ipv6)
        peers = tuple((p.ip, p.port) for p in result.peers)
        response = AnnounceResponse(
            interval=result.interval,
            complete=result.complete,
            incomplete=result.incomplete,
            peers=() if ipv6 else peers,
            peers6=peers if ipv6 else (),
        )
        return encode_announce_response(transaction_id, response, ipv6=ipv6)

    def _scrape(self, data: bytes, transaction_id: int, now: float) -> bytes:
        body = data[_HEADER.size :]
        count = len(body) // 20
        if not body or len(body) % 20 or count > MAX_SCRAPE_HASHES:
            raise RequestRefused("invalid scrape request")
        hashes = [body[i * 20 : (i + 1) * 20] for i in range(count)]
        stats = self.state.scrape(hashes, now)
        return encode_scrape_response(
            transaction_id, (stats.get(h, ScrapeStats(0, 0, 0)) for h in hashes)
        )
