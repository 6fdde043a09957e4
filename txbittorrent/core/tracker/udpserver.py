"""The UDP tracker (BEP 15, BEP 41), server side: one datagram in, one reply out.

Theory of operation
-------------------
``UDPTrackerResponder.datagram_received(data, host, port, now)`` returns the
reply to send back to (host, port), or ``None`` to stay silent.  It is two
steps, for swarms that answer later (Redis): ``check`` validates and parses
the datagram into a ``Checked`` request (or the reply it already knows),
and ``announce_reply``/``scrape_reply`` encode the swarms' answer.  It keeps no
state per client: a connection id is an HMAC of the client's IP address
(not its port: opentracker does the same, and libtorrent shares one id
between the sessions of a process, each with its own port) and a one-minute
epoch under a secret, accepted in its epoch and the next (so it
lives between one and two minutes, as BEP 15 asks).  Announces go to the ``TrackerState``.

Decisions
---------
* No amplification: before a client proves it receives at its source
  address (a valid connection id), no reply is longer than its request.  A
  connect request is 16 bytes and so is its reply; an error for an invalid
  connection id is cut to the request's length (a bare 16-byte request gets
  the 8-byte header and as much text as fits).
* A datagram longer than ``MAX_DATAGRAM`` bytes or shorter than 16 is
  dropped unanswered; so is a connect without the protocol id and an unknown
  action.
* BEP 41: options after the 98-byte announce are read (EndOfOptions, NOP,
  URLData); a malformed option list ends the reading, it never refuses the
  announce.  The URL data is the tracker URL's path and query: in private
  mode its ``/<passkey>/announce`` names the user.  A scrape carries no
  options, so a private tracker refuses UDP scrapes (they would tell anyone
  the counts of its torrents).
* A scrape names 1..74 info hashes (``MAX_SCRAPE_HASHES``).
* ``limiter`` (a ``RateLimiter``) counts announces and scrapes per source
  address; an announce over the limit gets an error, not a swarm update.
"""

from __future__ import annotations

import hmac
import ipaddress
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from txbittorrent.core.tracker.announce import ScrapeStats
from txbittorrent.core.tracker.ratelimit import RateLimiter
from txbittorrent.core.tracker.requests import PASSKEY, canonical_ip
from txbittorrent.core.tracker.swarms import (
    Announce,
    AnnounceResult,
    RequestRefused,
    TrackerState,
    UserId,
    join_compact,
)
from txbittorrent.core.tracker.udp import (
    EVENT_CODES,
    MAX_SCRAPE_HASHES,
    PROTOCOL_ID,
    Action,
    encode_announce_reply,
    encode_connect_response,
    encode_error,
    encode_scrape_response,
)

__all__ = [
    "CONNECTION_EPOCH", "MAX_DATAGRAM", "Checked", "UDPTrackerResponder", "announce_reply",
    "scrape_reply", "url_data_of",
]

CONNECTION_EPOCH = 60.0
"""UDP connection ids are valid in the epoch they were issued in and the next."""
MAX_DATAGRAM = 2048
"""Longest request datagram answered (a 74-hash scrape is 1496 bytes)."""

_HEADER = struct.Struct(">QII")  # connection id, action, transaction id
# info hash, peer id, downloaded, left, uploaded, event, IP address, key, num want, port
_ANNOUNCE = struct.Struct(">20s20sQQQIIIiH")
_ANNOUNCE_END = _HEADER.size + _ANNOUNCE.size
_UDP_EVENTS = {code: event for event, code in EVENT_CODES.items()}
_MAX_NUMBER = 2**63 - 1
_END_OF_OPTIONS, _NOP, _URL_DATA = 0, 1, 2


def url_data_of(options: bytes) -> bytes:
    """The URL data in BEP 41 options, as far as they are well formed."""
    url = bytearray()
    i = 0
    while i < len(options):
        kind = options[i]
        if kind == _END_OF_OPTIONS:
            break
        if kind == _NOP:
            i += 1
            continue
        if kind != _URL_DATA or i + 1 >= len(options):
            break
        length = options[i + 1]
        chunk = options[i + 2 : i + 2 + length]
        if len(chunk) < length:
            break
        url += chunk
        i += 2 + length
    return bytes(url)


class UDPTrackerResponder:
    """Answers BEP 15 datagrams for a ``TrackerState``; keeps no per-client state.

    ``trust_ip`` lets an announce's IP address field (IPv4 only) replace the
    source address.  ``passkeys`` (private mode) maps a passkey from the BEP
    41 path to a user, or ``None`` for an unknown one; with it, an announce
    without a known passkey is refused."""

    def __init__(
        self,
        state: TrackerState,
        secret: bytes,
        *,
        trust_ip: bool = False,
        limiter: RateLimiter | None = None,
        passkeys: Callable[[str], UserId | None] | None = None,
    ) -> None:
        if len(secret) < 16:
            raise ValueError("the secret must be at least 16 bytes")
        self.state = state
        self._secret = secret
        self.trust_ip = trust_ip
        self.limiter = limiter
        self.passkeys = passkeys

    def connection_id(self, host: str, port: int, now: float) -> int:
        """The id issued to ``host`` at ``now`` (``port`` is not part of it)."""
        return self._issue(canonical_ip(host), now)

    def valid(self, connection_id: int, host: str, port: int, now: float) -> bool:
        """Whether ``connection_id`` was issued to ``host`` less than two epochs ago."""
        return self._valid(connection_id.to_bytes(8, "big"), canonical_ip(host), now)

    def _valid(self, given: bytes, ip: str, now: float) -> bool:
        epoch = int(now // CONNECTION_EPOCH)
        return hmac.compare_digest(self._id(ip, epoch), given) or hmac.compare_digest(
            self._id(ip, epoch - 1), given
        )

    def datagram_received(self, data: bytes, host: str, port: int, now: float) -> bytes | None:
        """The reply to a datagram from (host, port), or ``None`` to stay silent."""
        checked = self.check(data, host, port, now)
        if not isinstance(checked, Checked):
            return checked
        try:
            if checked.announce is not None:
                result = self.state.announce(checked.announce, now, ipv6=checked.ipv6)
                return announce_reply(checked.transaction_id, result, checked.ipv6)
            return scrape_reply(checked.transaction_id, checked.hashes,
                                self.state.scrape(checked.hashes, now))
        except RequestRefused as e:
            return encode_error(checked.transaction_id, e.reason)

    def check(self, data: bytes, host: str, port: int, now: float) -> bytes | None | Checked:
        """A datagram from (host, port) checked and parsed: a ``Checked`` request
        for the swarms (a valid announce or scrape), or the reply already known
        (a connect, an error), or ``None`` to stay silent.  The swarms' answer
        becomes the reply through ``announce_reply`` or ``scrape_reply``."""
        if not _HEADER.size <= len(data) <= MAX_DATAGRAM:
            return None
        connection_id, action, transaction_id = _HEADER.unpack_from(data)
        ip = canonical_ip(host)
        if action == Action.CONNECT:
            if connection_id != PROTOCOL_ID:
                return None
            return encode_connect_response(transaction_id, self._issue(ip, now))
        if action not in (Action.ANNOUNCE, Action.SCRAPE):
            return None
        if not self._valid(data[:8], ip, now):
            return encode_error(transaction_id, "invalid connection id")[: len(data)]
        try:
            if self.limiter is not None and not self.limiter.allow(ip, now):
                raise RequestRefused("rate limited")
            if action == Action.ANNOUNCE:
                announce = self._announce(data, ip)
                return Checked(transaction_id, announce, ":" in ip, [])
            return Checked(transaction_id, None, False, self._scrape(data))
        except RequestRefused as e:
            return encode_error(transaction_id, e.reason)

    def _issue(self, ip: str, now: float) -> int:
        """The id for canonical ``ip`` in the epoch of ``now``."""
        return int.from_bytes(self._id(ip, int(now // CONNECTION_EPOCH)), "big")

    def _id(self, ip: str, epoch: int) -> bytes:
        """The 8 bytes of the id for canonical ``ip`` in ``epoch``."""
        return hmac.digest(self._secret, f"{ip}|{epoch}".encode("ascii"), "sha256")[:8]

    def _user(self, data: bytes) -> UserId | None:
        if self.passkeys is None:
            return None
        path = url_data_of(data[_ANNOUNCE_END:]).partition(b"?")[0]
        parts = path.strip(b"/").split(b"/")
        if len(parts) != 2 or parts[1] != b"announce" or not PASSKEY.fullmatch(parts[0]):
            raise RequestRefused("passkey required")
        user = self.passkeys(parts[0].decode("ascii"))
        if user is None:
            raise RequestRefused("unknown passkey")
        return user

    def _announce(self, data: bytes, ip: str) -> Announce:
        if len(data) < _ANNOUNCE_END:
            raise RequestRefused("announce request too short")
        info_hash, peer_id, downloaded, left, uploaded, code, address, key, numwant, port = (
            _ANNOUNCE.unpack_from(data, _HEADER.size)
        )
        if code not in _UDP_EVENTS:
            raise RequestRefused("invalid event")
        if port == 0:
            raise RequestRefused("invalid port")
        user = self._user(data)
        ipv6 = ":" in ip
        if self.trust_ip and address and not ipv6:
            ip = str(ipaddress.IPv4Address(address))
        return Announce(
            info_hash=info_hash,
            peer_id=peer_id,
            ip=ip,
            port=port,
            left=min(left, _MAX_NUMBER),
            uploaded=min(uploaded, _MAX_NUMBER),
            downloaded=min(downloaded, _MAX_NUMBER),
            event=_UDP_EVENTS[code],
            numwant=None if numwant < 0 else numwant,
            key=key or None,
            user=user,
        )

    def _scrape(self, data: bytes) -> list[bytes]:
        if self.passkeys is not None:
            raise RequestRefused("private tracker: scrape over HTTP with a passkey")
        body = data[_HEADER.size :]
        count = len(body) // 20
        if not body or len(body) % 20 or count > MAX_SCRAPE_HASHES:
            raise RequestRefused("invalid scrape request")
        return [body[i * 20 : (i + 1) * 20] for i in range(count)]


@dataclass(frozen=True, slots=True)
class Checked:
    """A valid announce (``announce``) or scrape (``hashes``) waiting for the swarms."""

    transaction_id: int
    announce: Announce | None
    ipv6: bool
    """The family of the request's socket: a UDP reply carries peers of that family only."""
    hashes: list[bytes]


def announce_reply(transaction_id: int, result: AnnounceResult, ipv6: bool) -> bytes:
    """The BEP 15 reply for an announce's ``result`` (its peers of the socket's family)."""
    return encode_announce_reply(
        transaction_id, result.interval, result.incomplete or 0, result.complete or 0,
        join_compact(result.peers, ipv6=ipv6),
    )


def scrape_reply(
    transaction_id: int, hashes: list[bytes], stats: Mapping[bytes, ScrapeStats]
) -> bytes:
    """The BEP 15 reply for a scrape of ``hashes`` (unknown ones count zero)."""
    return encode_scrape_response(
        transaction_id, (stats.get(h, _NOTHING) for h in hashes)
    )


_NOTHING = ScrapeStats(0, 0, 0)
