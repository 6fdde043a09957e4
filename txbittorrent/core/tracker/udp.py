"""The UDP tracker protocol (BEP 15, with BEP 41 URL data): packets and one exchange.

Theory of operation
-------------------
The packet codecs are plain functions over ``struct``: ``encode_*_request``
for what a client sends, ``decode_*_response`` for what it receives (each
checks the length, the action and the transaction id, and raises
``RemoteProtocolError``, or its subclass ``UDPTrackerError`` when the tracker
sent an error packet), and ``encode_*_response`` for what a tracker sends
(tests, and the small tracker to come).  Announce replies come back as the
HTTP codec's ``AnnounceResponse`` and scrape replies as ``ScrapeStats``, so
the announcer sees one shape whatever the transport.

``UDPTrackerExchange`` is one announce (or one scrape) with one tracker, as a
state machine that does no I/O and reads no clock::

    IDLE --start--> CONNECTING --connect reply--> REQUESTING --reply--> FINISHED
                        ^  (no usable id cached)       |
                        +---- id expired at a timeout -+

(``start`` goes straight to REQUESTING when the ``ConnectionCache`` holds an
id for the tracker that is less than ``CONNECTION_ID_LIFETIME`` old.)  Each
method returns what to do next, as data: ``Send(datagram, deadline)`` (send
the datagram; call ``timeout`` at ``deadline`` unless a reply came first),
``Done(response)`` or ``Failed(reason, error)``.  The adapter owns the socket
and the timer, sends datagrams to the tracker's address and passes on only
datagrams that came from it.

Decisions
---------
* Retransmission (BEP 15): the n-th timeout of the exchange fires
  ``RETRY_BASE * 2**n`` seconds after the datagram was sent, n from 0, and
  the exchange gives up (``Failed`` with ``error=None``) when the timeout
  with n = ``max_n`` (8 by default) passes.  n counts every timeout of the
  exchange and is never reset, not even by a connect reply: a tracker that
  answers connects but never announces still cannot keep us for longer than
  15 * (2**(max_n + 1) - 1) seconds (about 2 h 8 min with max_n 8).
* A retransmission resends the same datagram with the same transaction id,
  so a late reply to an earlier copy is accepted.  Each new request (connect
  or announce) gets a fresh random 32-bit transaction id.  If the connection
  id is ``CONNECTION_ID_LIFETIME`` or more seconds old when a timeout fires,
  the exchange uses a fresher id from the cache if another exchange got one,
  and connects again otherwise.
* A datagram shorter than 8 bytes (it cannot carry an action and a
  transaction id) or with another transaction id is ignored (``None``): it is
  stale, a duplicate, or spoofed, and says nothing about this exchange.  A
  datagram with our transaction id that does not decode, or that is an error
  packet, ends the exchange with ``Failed``.  Datagrams after the end are
  ignored.
* The IP address field of an announce is always 0 (the tracker uses the
  source address).  Per BEP 15, a reply's peers have the address family of
  the socket that reached the tracker: the exchange's ``ipv6`` flag says
  which, and IPv6 peers land in ``AnnounceResponse.peers6``.
* BEP 41: the tracker URL's path and query go after the announce request as
  URLData options of at most 255 bytes each (``url_data``; see
  ``parse_udp_url``).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import urlsplit

from txbittorrent.core.tracker.announce import (
    DEFAULT_MAX_PEERS,
    AnnounceEvent,
    AnnounceRequest,
    AnnounceResponse,
    ScrapeStats,
    clamp_interval,
    decode_compact_peers,
    encode_compact_peers,
)
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError

__all__ = [
    "PROTOCOL_ID", "CONNECTION_ID_LIFETIME", "RETRY_BASE", "MAX_N", "MAX_SCRAPE_HASHES",
    "Action", "EVENT_CODES", "UDPTrackerError", "Tracker", "ScrapeRequest", "parse_udp_url",
    "encode_connect_request", "encode_announce_request", "encode_scrape_request",
    "transaction_id_of", "decode_connect_response", "decode_announce_response",
    "decode_scrape_response", "encode_connect_response", "encode_announce_response",
    "encode_scrape_response", "encode_error", "Rng", "Send", "Done", "Failed", "Step",
    "ConnectionCache", "UDPTrackerExchange",
]

PROTOCOL_ID = 0x41727101980
"""The magic constant that opens a connect request."""
CONNECTION_ID_LIFETIME = 60.0
"""Seconds a connection id may be used after it was received (BEP 15)."""
RETRY_BASE = 15.0
"""The n-th timeout is ``RETRY_BASE * 2**n`` seconds (BEP 15)."""
MAX_N = 8
"""The exchange gives up after the timeout with this n passes (BEP 15)."""
MAX_SCRAPE_HASHES = 74
"""Most info hashes in one scrape request (BEP 15: what fits in a datagram)."""


class Action(enum.IntEnum):
    """The action field of every BEP 15 packet."""

    CONNECT = 0
    ANNOUNCE = 1
    SCRAPE = 2
    ERROR = 3


EVENT_CODES: dict[AnnounceEvent | None, int] = {
    None: 0,
    AnnounceEvent.COMPLETED: 1,
    AnnounceEvent.STARTED: 2,
    AnnounceEvent.STOPPED: 3,
}
"""The event field of an announce request."""

Tracker = tuple[str, int]
"""A UDP tracker's host and port."""

# connection id (the protocol id in a connect request), action, transaction id
_REQUEST_HEADER = struct.Struct(">QII")
_CONNECT_RESPONSE = struct.Struct(">IIQ")  # action, transaction id, connection id
_HEADER = struct.Struct(">II")  # action, transaction id: every reply starts so
# connection id, action, transaction id, info hash, peer id, downloaded, left,
# uploaded, event, IP address, key, num want, port
_ANNOUNCE_REQUEST = struct.Struct(">QII20s20sQQQIIIiH")
# action, transaction id, interval, leechers, seeders
_ANNOUNCE_RESPONSE = struct.Struct(">IIIII")
_SCRAPE_ENTRY = struct.Struct(">III")  # seeders, completed, leechers
_URL_DATA = 2  # BEP 41 option type


class UDPTrackerError(RemoteProtocolError):
    """The tracker answered with an error packet (action 3); ``message`` is its text."""

    def __init__(self, message: str) -> None:
        self.message = message
        super().__init__(f"tracker error: {message}")


@dataclass(frozen=True, slots=True)
class ScrapeRequest:
    """The torrents one UDP scrape asks about (1..``MAX_SCRAPE_HASHES``)."""

    info_hashes: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not 1 <= len(self.info_hashes) <= MAX_SCRAPE_HASHES:
            raise ValueError(f"a scrape asks about 1 to {MAX_SCRAPE_HASHES} torrents")
        if any(len(h) != 20 for h in self.info_hashes):
            raise ValueError("info_hash must be 20 bytes")


def parse_udp_url(url: str) -> tuple[str, int, bytes]:
    """``udp://host:port/path?query`` as (host, port, BEP 41 URL data).

    Raises ``ValueError`` for a URL of another scheme or with no usable port."""
    parts = urlsplit(url)
    if parts.scheme.lower() != "udp" or not parts.hostname:
        raise ValueError(f"not a UDP tracker URL: {url!r}")
    port = parts.port
    if not port:
        raise ValueError(f"UDP tracker URL without a port: {url!r}")
    data = parts.path + (f"?{parts.query}" if parts.query else "")
    return parts.hostname, port, data.encode("utf-8")


# -- what a client sends -------------------------------------------------------


def encode_connect_request(transaction_id: int) -> bytes:
    return _REQUEST_HEADER.pack(PROTOCOL_ID, Action.CONNECT, transaction_id)


def encode_announce_request(
    connection_id: int, transaction_id: int, request: AnnounceRequest, *, url_data: bytes = b""
) -> bytes:
    """An announce packet; ``url_data`` follows as BEP 41 URLData options."""
    packet = _ANNOUNCE_REQUEST.pack(
        connection_id,
        Action.ANNOUNCE,
        transaction_id,
        request.info_hash,
        request.peer_id,
        request.downloaded,
        request.left,
        request.uploaded,
        EVENT_CODES[request.event],
        0,
        request.key or 0,
        -1 if request.numwant is None else request.numwant,
        request.port,
    )
    options = bytearray()
    for start in range(0, len(url_data), 255):
        chunk = url_data[start : start + 255]
        options += bytes((_URL_DATA, len(chunk))) + chunk
    return packet + bytes(options)


def encode_scrape_request(
    connection_id: int, transaction_id: int, info_hashes: Sequence[bytes]
) -> bytes:
    request = ScrapeRequest(tuple(info_hashes))
    return _REQUEST_HEADER.pack(connection_id, Action.SCRAPE, transaction_id) + b"".join(
        request.info_hashes
    )


# -- what a client receives ----------------------------------------------------


def transaction_id_of(data: bytes) -> int | None:
    """The transaction id of a reply, or ``None`` if it is too short to hold one."""
    if len(data) < _HEADER.size:
        return None
    return int.from_bytes(data[4:8], "big")


def _check(data: bytes, transaction_id: int, action: Action, minimum: int) -> None:
    """Raise unless ``data`` is a reply to ``transaction_id`` of kind ``action``."""
    if len(data) < _HEADER.size:
        raise RemoteProtocolError(f"UDP tracker reply of {len(data)} bytes is too short")
    got_action, got_id = _HEADER.unpack_from(data)
    if got_id != transaction_id:
        raise RemoteProtocolError(
            f"UDP tracker reply to transaction {got_id}, not {transaction_id}"
        )
    if got_action == Action.ERROR:
        raise UDPTrackerError(data[_HEADER.size :].decode("utf-8", "replace"))
    if got_action != action:
        raise RemoteProtocolError(f"UDP tracker reply has action {got_action}, not {int(action)}")
    if len(data) < minimum:
        raise RemoteProtocolError(
            f"UDP tracker {action.name.lower()} reply of {len(data)} bytes is too short"
        )


def decode_connect_response(data: bytes, transaction_id: int) -> int:
    """The connection id from a connect reply (16 bytes; more are ignored)."""
    _check(data, transaction_id, Action.CONNECT, _CONNECT_RESPONSE.size)
    connection_id: int = _CONNECT_RESPONSE.unpack_from(data)[2]
    return connection_id


def decode_announce_response(
    data: bytes, transaction_id: int, *, ipv6: bool = False, max_peers: int = DEFAULT_MAX_PEERS
) -> AnnounceResponse:
    """An announce reply; its peers are IPv6 (into ``peers6``) when ``ipv6``."""
    _check(data, transaction_id, Action.ANNOUNCE, _ANNOUNCE_RESPONSE.size)
    _, _, interval, leechers, seeders = _ANNOUNCE_RESPONSE.unpack_from(data)
    peers = decode_compact_peers(data[_ANNOUNCE_RESPONSE.size :], ipv6=ipv6, max_peers=max_peers)
    return AnnounceResponse(
        interval=clamp_interval(interval),
        complete=seeders,
        incomplete=leechers,
        peers=() if ipv6 else peers,
        peers6=peers if ipv6 else (),
    )


def decode_scrape_response(
    data: bytes, transaction_id: int, info_hashes: Sequence[bytes]
) -> dict[bytes, ScrapeStats]:
    """A scrape reply: exactly one entry per info hash asked about, in order."""
    _check(data, transaction_id, Action.SCRAPE, _HEADER.size)
    body = len(data) - _HEADER.size
    if body != _SCRAPE_ENTRY.size * len(info_hashes):
        raise RemoteProtocolError(
            f"UDP scrape reply has {body} bytes of entries for {len(info_hashes)} torrents"
        )
    stats = {}
    for index, info_hash in enumerate(info_hashes):
        seeders, completed, leechers = _SCRAPE_ENTRY.unpack_from(
            data, _HEADER.size + index * _SCRAPE_ENTRY.size
        )
        stats[info_hash] = ScrapeStats(complete=seeders, downloaded=completed, incomplete=leechers)
    return stats


# -- what a tracker sends ------------------------------------------------------


def encode_connect_response(transaction_id: int, connection_id: int) -> bytes:
    return _CONNECT_RESPONSE.pack(Action.CONNECT, transaction_id, connection_id)


def encode_announce_response(
    transaction_id: int, response: AnnounceResponse, *, ipv6: bool = False
) -> bytes:
    """An announce reply carrying ``response.peers6`` if ``ipv6``, else ``response.peers``."""
    header = _ANNOUNCE_RESPONSE.pack(
        Action.ANNOUNCE,
        transaction_id,
        response.interval,
        response.incomplete or 0,
        response.complete or 0,
    )
    peers = response.peers6 if ipv6 else response.peers
    return header + encode_compact_peers(peers, ipv6=ipv6)


def encode_announce_reply(
    transaction_id: int, interval: int, incomplete: int, complete: int, compact: bytes
) -> bytes:
    """An announce reply whose peers are already in compact form (the
    server side: the tracker keeps each peer's compact bytes)."""
    header = _ANNOUNCE_RESPONSE.pack(
        Action.ANNOUNCE, transaction_id, interval, incomplete, complete
    )
    return header + compact


def encode_scrape_response(transaction_id: int, stats: Iterable[ScrapeStats]) -> bytes:
    return _HEADER.pack(Action.SCRAPE, transaction_id) + b"".join(
        _SCRAPE_ENTRY.pack(s.complete, s.downloaded, s.incomplete) for s in stats
    )


def encode_error(transaction_id: int, message: str) -> bytes:
    return _HEADER.pack(Action.ERROR, transaction_id) + message.encode("utf-8")


# -- one exchange --------------------------------------------------------------


class Rng(Protocol):
    """What the exchange needs of a ``random.Random``."""

    def getrandbits(self, k: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class Send:
    """Send ``datagram`` to the tracker; call ``timeout`` at ``deadline`` if nothing comes."""

    datagram: bytes
    deadline: float


@dataclass(frozen=True, slots=True)
class Done:
    """The exchange succeeded: an announce's reply, or a scrape's stats by info hash."""

    response: AnnounceResponse | dict[bytes, ScrapeStats]


@dataclass(frozen=True, slots=True)
class Failed:
    """The exchange is over without a reply; ``error`` is ``None`` after a time-out."""

    reason: str
    error: RemoteProtocolError | None = None


Step = Send | Done | Failed
"""What an exchange asks its adapter to do next."""


class ConnectionCache:
    """Connection ids by tracker, each usable for ``lifetime`` seconds after receipt.

    One cache is shared by every exchange with every tracker, so announces and
    scrapes made within a minute of each other skip the connect round trip."""

    def __init__(self, lifetime: float = CONNECTION_ID_LIFETIME) -> None:
        self.lifetime = lifetime
        self._entries: dict[Tracker, tuple[int, float]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, tracker: Tracker, now: float) -> tuple[int, float] | None:
        """The tracker's (connection id, time received) if still usable at ``now``."""
        entry = self._entries.get(tracker)
        if entry is not None and now >= entry[1] + self.lifetime:
            del self._entries[tracker]
            return None
        return entry

    def put(self, tracker: Tracker, connection_id: int, now: float) -> None:
        """Remember an id received at ``now``; forget every expired one."""
        self._entries = {t: e for t, e in self._entries.items() if now < e[1] + self.lifetime}
        self._entries[tracker] = (connection_id, now)

    def discard(self, tracker: Tracker) -> None:
        self._entries.pop(tracker, None)


class _State(enum.Enum):
    IDLE = "idle"
    CONNECTING = "connecting"
    REQUESTING = "requesting"
    FINISHED = "finished"


class UDPTrackerExchange:
    """One announce or scrape with one UDP tracker (see the module docstring)."""

    def __init__(
        self,
        tracker: Tracker,
        request: AnnounceRequest | ScrapeRequest,
        *,
        rng: Rng,
        cache: ConnectionCache,
        ipv6: bool = False,
        url_data: bytes = b"",
        max_n: int = MAX_N,
        max_peers: int = DEFAULT_MAX_PEERS,
    ) -> None:
        if max_n < 0:
            raise ValueError("max_n must not be negative")
        self.tracker = tracker
        self.request = request
        self._rng = rng
        self._cache = cache
        self._ipv6 = ipv6
        self._url_data = url_data
        self._max_n = max_n
        self._max_peers = max_peers
        self._state = _State.IDLE
        self._n = 0
        self._transaction_id = 0
        self._datagram = b""
        self._deadline = 0.0
        self._connection: tuple[int, float] | None = None

    @property
    def finished(self) -> bool:
        return self._state is _State.FINISHED

    @property
    def transaction_id(self) -> int:
        """The id a reply must carry now (for adapters that dispatch by it)."""
        return self._transaction_id

    @property
    def deadline(self) -> float | None:
        """When ``timeout`` is due, or ``None`` if not waiting for a reply."""
        waiting = self._state in (_State.CONNECTING, _State.REQUESTING)
        return self._deadline if waiting else None

    def start(self, now: float) -> Send:
        """Begin: connect, or announce (scrape) at once with a cached connection id."""
        if self._state is not _State.IDLE:
            raise LocalProtocolError("the exchange has already started")
        self._connection = self._cache.get(self.tracker, now)
        return self._send_connect(now) if self._connection is None else self._send_request(now)

    def datagram_received(self, data: bytes, now: float) -> Step | None:
        """Handle a datagram from the tracker; ``None`` means it was ignored."""
        if self._state not in (_State.CONNECTING, _State.REQUESTING):
            return None
        if transaction_id_of(data) != self._transaction_id:
            return None
        try:
            if self._state is _State.CONNECTING:
                connection_id = decode_connect_response(data, self._transaction_id)
                self._cache.put(self.tracker, connection_id, now)
                self._connection = (connection_id, now)
                return self._send_request(now)
            return self._finish(Done(self._decode(data)))
        except UDPTrackerError as e:
            return self._finish(Failed(e.message, e))
        except RemoteProtocolError as e:
            return self._finish(Failed(str(e), e))

    def timeout(self, now: float) -> Send | Failed | None:
        """The deadline passed: retransmit, reconnect, or give up.

        ``None`` if there is nothing to do (the deadline is still ahead, as
        for a stale timer, or the exchange is over)."""
        if self._state is _State.IDLE:
            raise LocalProtocolError("the exchange has not started")
        if self._state is _State.FINISHED or now < self._deadline:
            return None
        if self._n >= self._max_n:
            self._state = _State.FINISHED
            host, port = self.tracker
            return Failed(f"no reply from {host}:{port} after {self._n + 1} tries")
        self._n += 1
        if self._state is _State.REQUESTING:
            assert self._connection is not None
            if now >= self._connection[1] + self._cache.lifetime:
                self._connection = self._cache.get(self.tracker, now)
                if self._connection is None:
                    return self._send_connect(now)
                return self._send_request(now)
        return self._send(now)

    # -- internals --

    def _decode(self, data: bytes) -> AnnounceResponse | dict[bytes, ScrapeStats]:
        if isinstance(self.request, ScrapeRequest):
            return decode_scrape_response(data, self._transaction_id, self.request.info_hashes)
        return decode_announce_response(
            data, self._transaction_id, ipv6=self._ipv6, max_peers=self._max_peers
        )

    def _new_transaction(self) -> int:
        self._transaction_id = self._rng.getrandbits(32)
        return self._transaction_id

    def _send_connect(self, now: float) -> Send:
        self._state = _State.CONNECTING
        self._datagram = encode_connect_request(self._new_transaction())
        return self._send(now)

    def _send_request(self, now: float) -> Send:
        assert self._connection is not None
        self._state = _State.REQUESTING
        connection_id, transaction_id = self._connection[0], self._new_transaction()
        if isinstance(self.request, ScrapeRequest):
            self._datagram = encode_scrape_request(
                connection_id, transaction_id, self.request.info_hashes
            )
        else:
            self._datagram = encode_announce_request(
                connection_id, transaction_id, self.request, url_data=self._url_data
            )
        return self._send(now)

    def _send(self, now: float) -> Send:
        self._deadline = now + RETRY_BASE * 2**self._n
        return Send(self._datagram, self._deadline)

    def _finish(self, step: Done | Failed) -> Done | Failed:
        self._state = _State.FINISHED
        return step
