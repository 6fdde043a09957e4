"""The HTTP tracker protocol (BEP 3, 7, 23, 24, 31, 48): requests out, replies in.

Theory of operation
-------------------
This module turns what the client wants to say into a URL (``announce_url``,
``scrape_request_url``) and what a tracker answered into frozen values
(``parse_announce_response``, ``parse_scrape_response``).  It knows nothing of
HTTP clients, sockets or time: the adapter fetches the URL, caps the body at
``MAX_RESPONSE_SIZE`` bytes, and hands the bytes here.  The UDP codec
(``udptracker``) reuses ``AnnounceRequest``, ``AnnounceResponse``,
``ScrapeStats`` and the compact peer codec, so the rest of the client sees one
shape of request and reply whatever the transport.

A reply is untrusted.  Every malformed reply raises ``RemoteProtocolError``
and nothing else; a tracker that says no (``failure reason``) raises its
subclass ``TrackerFailure``, carrying the tracker's text.

Decisions
---------
* Query strings: ``info_hash``, ``peer_id`` and ``trackerid`` are escaped byte
  by byte, every byte outside RFC 3986's unreserved set (``A-Z a-z 0-9 - . _
  ~``) as ``%XX`` in upper case.  Integers are decimal; ``key`` is 8 upper-case
  hexadecimal digits.  ``event`` is left out for a regular re-announce.  A base
  URL that has a query already gets ``&`` (or nothing, if it ends in ``?`` or
  ``&``); its fragment, which is never sent to a server, is dropped.
* Strict where the reply is useless otherwise: a body that is not one
  bencoded dictionary (trailing ASCII whitespace is tolerated, as some
  trackers end their body with a newline), a missing or non-integer
  ``interval``, ``peers`` that is neither a string nor a list, compact
  ``peers``/``peers6`` whose length is not a multiple of 6/18.  Lenient for
  advisory fields, as libtorrent is: a ``complete``, ``incomplete``,
  ``min interval``, ``tracker id``, ``warning message`` or ``external ip`` of
  the wrong type (or a negative count) is ignored; a peer entry with a bad
  address or a port outside 1..65535 (port 0 in compact form) is skipped.
* Intervals are clamped to ``INTERVAL_FLOOR``..``INTERVAL_CEILING`` (one
  minute to a day): below a minute a broken or hostile tracker would have us
  announce continuously; above a day we would miss a tracker that restarted.
  The regular ``interval`` is raised to ``min interval`` when it is shorter,
  so the client never announces earlier than the tracker allows.
* Peers are ``(host, port)`` with the host in ``ipaddress``'s canonical
  spelling (DNS names, allowed in the dictionary form, in lower case),
  duplicates dropped, at most ``max_peers`` from each of ``peers`` and
  ``peers6``.  ``peers`` holds what the ``peers`` key held, whatever the
  family; ``peers6`` what ``peers6`` held (BEP 7).
* ``failure reason`` wins over everything else in the reply.  BEP 31's
  ``retry in`` (minutes, or ``never``) becomes ``TrackerFailure.retry_in``
  in seconds (``math.inf`` for never).
* Scrape URLs (BEP 48) exist only for http and https; a UDP tracker scrapes
  over its own protocol.
"""

from __future__ import annotations

import enum
import ipaddress
import math
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, quote_from_bytes

from txbittorrent.core.bencoding import decode_prefix, encode
from txbittorrent.errors import BencodeError, RemoteProtocolError

__all__ = [
    "INTERVAL_FLOOR", "INTERVAL_CEILING", "DEFAULT_MAX_PEERS", "MAX_RESPONSE_SIZE", "Peer",
    "AnnounceEvent", "TrackerFailure", "AnnounceRequest", "AnnounceResponse", "ScrapeStats",
    "announce_url", "clamp_interval", "decode_compact_peers", "encode_compact_peers",
    "parse_announce_response", "encode_announce_response", "encode_failure", "scrape_url",
    "scrape_request_url", "parse_scrape_response",
]

INTERVAL_FLOOR = 60
"""Shortest announce interval (seconds) we honour; shorter ones are raised."""
INTERVAL_CEILING = 24 * 60 * 60
"""Longest announce interval (seconds) we honour; longer ones are lowered."""
DEFAULT_MAX_PEERS = 1000
"""Most peers kept from each of a reply's ``peers`` and ``peers6``."""
MAX_RESPONSE_SIZE = 2 * 1024 * 1024
"""Longest tracker reply body (bytes) we parse; adapters stop reading here."""

Peer = tuple[str, int]
"""A peer's address: a canonical IP address or DNS name, and a port."""

_DNS_NAME = re.compile(
    r"(?=.{1,253}\Z)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*"
)


class AnnounceEvent(enum.Enum):
    """The ``event`` of an announce (BEP 3); ``None`` is a regular re-announce."""

    STARTED = "started"
    COMPLETED = "completed"
    STOPPED = "stopped"


class TrackerFailure(RemoteProtocolError):
    """The tracker refused the request and said why (``failure reason``).

    ``retry_in`` is BEP 31's hint in seconds (``math.inf``: never retry), or
    ``None`` when the tracker gave none."""

    def __init__(self, reason: str, retry_in: float | None = None) -> None:
        self.reason = reason
        self.retry_in = retry_in
        super().__init__(f"tracker failure: {reason}")


@dataclass(frozen=True, slots=True)
class AnnounceRequest:
    """What the client tells a tracker (BEP 3); also used for UDP (BEP 15).

    ``key`` is a 32-bit number the caller picks at random once per session,
    so the tracker can recognise us when our address changes.  ``tracker_id``
    is the ``tracker id`` of this tracker's previous reply.  ``ip`` is an
    address or DNS name to announce instead of the one the tracker sees;
    ``ipv6`` an IPv6 address we also listen on (BEP 7)."""

    info_hash: bytes
    peer_id: bytes
    port: int
    uploaded: int
    downloaded: int
    left: int
    event: AnnounceEvent | None = None
    numwant: int | None = None
    key: int | None = None
    compact: bool = True
    no_peer_id: bool = False
    tracker_id: bytes | None = None
    ip: str | None = None
    ipv6: str | None = None

    def __post_init__(self) -> None:
        if len(self.info_hash) != 20:
            raise ValueError("info_hash must be 20 bytes")
        if len(self.peer_id) != 20:
            raise ValueError("peer_id must be 20 bytes")
        if not 0 <= self.port <= 0xFFFF:
            raise ValueError(f"port {self.port} out of range")
        if min(self.uploaded, self.downloaded, self.left) < 0:
            raise ValueError("uploaded, downloaded and left must not be negative")
        if self.numwant is not None and not 0 <= self.numwant < 2**31:
            raise ValueError(f"numwant {self.numwant} out of range")
        if self.key is not None and not 0 <= self.key < 2**32:
            raise ValueError("key must be a 32-bit unsigned number")
        if self.ipv6 is not None:
            ipaddress.IPv6Address(self.ipv6)  # raises ValueError


@dataclass(frozen=True, slots=True)
class AnnounceResponse:
    """A tracker's successful announce reply, checked and clamped.

    ``interval`` and ``min_interval`` are seconds, within
    ``INTERVAL_FLOOR``..``INTERVAL_CEILING``.  ``complete`` counts seeders,
    ``incomplete`` leechers.  ``external_ip`` is our address as the tracker
    sees it (BEP 24)."""

    interval: int
    min_interval: int | None = None
    tracker_id: bytes | None = None
    complete: int | None = None
    incomplete: int | None = None
    peers: tuple[Peer, ...] = ()
    peers6: tuple[Peer, ...] = ()
    warning_message: str | None = None
    external_ip: str | None = None


@dataclass(frozen=True, slots=True)
class ScrapeStats:
    """One torrent's counts from a scrape (BEP 48): seeders, completed downloads, leechers."""

    complete: int
    downloaded: int
    incomplete: int


# -- requests ------------------------------------------------------------------


def _escape(value: bytes) -> str:
    """Every byte outside RFC 3986's unreserved set as %XX."""
    return quote_from_bytes(value, safe="")


def _append_query(base_url: str, pairs: Iterable[tuple[str, str]]) -> str:
    base = base_url.partition("#")[0]
    query = "&".join(f"{name}={value}" for name, value in pairs)
    if "?" not in base:
        separator = "?"
    elif base.endswith(("?", "&")):
        separator = ""
    else:
        separator = "&"
    return base + separator + query


def announce_url(base_url: str, request: AnnounceRequest) -> str:
    """The URL of an HTTP GET that announces ``request`` to the tracker at ``base_url``."""
    pairs = [
        ("info_hash", _escape(request.info_hash)),
        ("peer_id", _escape(request.peer_id)),
        ("port", str(request.port)),
        ("uploaded", str(request.uploaded)),
        ("downloaded", str(request.downloaded)),
        ("left", str(request.left)),
    ]
    if request.event is not None:
        pairs.append(("event", request.event.value))
    if request.key is not None:
        pairs.append(("key", f"{request.key:08X}"))
    if request.numwant is not None:
        pairs.append(("numwant", str(request.numwant)))
    pairs.append(("compact", "1" if request.compact else "0"))
    if request.no_peer_id:
        pairs.append(("no_peer_id", "1"))
    if request.tracker_id is not None:
        pairs.append(("trackerid", _escape(request.tracker_id)))
    if request.ip is not None:
        pairs.append(("ip", quote(request.ip, safe="")))
    if request.ipv6 is not None:
        pairs.append(("ipv6", quote(request.ipv6, safe="")))
    return _append_query(base_url, pairs)


def scrape_url(url: str) -> str | None:
    """The scrape URL of an HTTP(S) announce URL (BEP 48), or ``None``.

    The last path component must start with ``announce``; that word becomes
    ``scrape`` and the rest (``.php``, the query) is kept."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.lower() not in ("http", "https"):
        return None
    # The authority ends at the first '/', '?' or '#'; only a '/' starts a path.
    path_start = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    if rest[path_start : path_start + 1] != "/":
        return None
    path_end = min((i for i in map(rest.find, "?#") if i >= 0), default=len(rest))
    last = rest.rfind("/", path_start, path_end) + 1
    if not rest.startswith("announce", last, path_end):
        return None
    new_rest = rest[:last] + "scrape" + rest[last + len("announce") :]
    return f"{scheme}://{new_rest}"


def scrape_request_url(scrape_base: str, info_hashes: Iterable[bytes]) -> str:
    """The URL of an HTTP GET scraping ``info_hashes`` at ``scrape_base``."""
    pairs = []
    for info_hash in info_hashes:
        if len(info_hash) != 20:
            raise ValueError("info_hash must be 20 bytes")
        pairs.append(("info_hash", _escape(info_hash)))
    return _append_query(scrape_base, pairs)


# -- compact peers (BEP 23, BEP 7) ----------------------------------------------


def decode_compact_peers(
    data: bytes, *, ipv6: bool = False, max_peers: int = DEFAULT_MAX_PEERS
) -> tuple[Peer, ...]:
    """Peers from compact form: 4 (or 16) address bytes and a 2-byte port each.

    Entries with port 0 and repeats are dropped; at most ``max_peers`` are kept."""
    size = 18 if ipv6 else 6
    if len(data) % size:
        raise RemoteProtocolError(
            f"compact peers{'6' if ipv6 else ''} of {len(data)} bytes, not a multiple of {size}"
        )
    found: dict[Peer, None] = {}
    for offset in range(0, len(data), size):
        if len(found) >= max_peers:
            break
        port = int.from_bytes(data[offset + size - 2 : offset + size], "big")
        if port == 0:
            continue
        raw = data[offset : offset + size - 2]
        host = str(ipaddress.IPv6Address(raw)) if ipv6 else ".".join(map(str, raw))
        found[(host, port)] = None
    return tuple(found)


def encode_compact_peers(peers: Iterable[Peer], *, ipv6: bool = False) -> bytes:
    """Compact form of ``peers``, which must all be IPv4 (or, with ``ipv6``, IPv6)."""
    family = ipaddress.IPv6Address if ipv6 else ipaddress.IPv4Address
    out = bytearray()
    for host, port in peers:
        if not 0 <= port <= 0xFFFF:
            raise ValueError(f"port {port} out of range")
        out += family(host).packed + port.to_bytes(2, "big")
    return bytes(out)


def _peer_host(value: Any) -> str | None:
    """A dictionary-form peer's ``ip``, canonical, or ``None`` if unusable."""
    if not isinstance(value, bytes):
        return None
    try:
        text = value.decode("ascii")
    except UnicodeDecodeError:
        return None
    if "%" in text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.lower()
    if _DNS_NAME.fullmatch(name) and not name.replace(".", "").isdigit():
        return name
    return None


def _dict_peers(entries: list[Any], max_peers: int) -> tuple[Peer, ...]:
    found: dict[Peer, None] = {}
    for entry in entries:
        if len(found) >= max_peers:
            break
        if not isinstance(entry, dict):
            continue
        host = _peer_host(entry.get(b"ip"))
        port = entry.get(b"port")
        if host is None or not isinstance(port, int) or not 1 <= port <= 0xFFFF:
            continue
        found[(host, port)] = None
    return tuple(found)


# -- replies -------------------------------------------------------------------


def clamp_interval(seconds: int) -> int:
    """``seconds`` brought within ``INTERVAL_FLOOR``..``INTERVAL_CEILING``."""
    return min(max(seconds, INTERVAL_FLOOR), INTERVAL_CEILING)


def _retry_in(value: Any) -> float | None:
    """BEP 31's ``retry in`` (minutes, or ``never``) in seconds."""
    if value == b"never":
        return math.inf
    if isinstance(value, int) and value >= 0:
        return float(min(value * 60, INTERVAL_CEILING))
    return None


def _decode_reply(body: bytes, what: str) -> dict[bytes, Any]:
    """The reply's dictionary, or the tracker's refusal raised as ``TrackerFailure``."""
    if len(body) > MAX_RESPONSE_SIZE:
        raise RemoteProtocolError(f"{what} of {len(body)} bytes is too long")
    try:
        value, end = decode_prefix(body)
    except BencodeError as e:
        raise RemoteProtocolError(f"{what} is not bencoded: {e}") from None
    if body[end:].strip():
        raise RemoteProtocolError(f"{what} has {len(body) - end} trailing bytes")
    if not isinstance(value, dict):
        raise RemoteProtocolError(f"{what} is not a dictionary")
    failure = value.get(b"failure reason")
    if failure is not None:
        if not isinstance(failure, bytes):
            raise RemoteProtocolError(f"{what}: 'failure reason' is not a string")
        raise TrackerFailure(failure.decode("utf-8", "replace"), _retry_in(value.get(b"retry in")))
    return value


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


def _text(value: Any) -> str | None:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else None


def parse_announce_response(body: bytes, max_peers: int = DEFAULT_MAX_PEERS) -> AnnounceResponse:
    """Check and decode the body of an HTTP tracker's announce reply."""
    reply = _decode_reply(body, "announce reply")
    interval = reply.get(b"interval")
    if interval is None:
        raise RemoteProtocolError("announce reply has no 'interval'")
    if not isinstance(interval, int):
        raise RemoteProtocolError("announce reply: 'interval' is not an integer")
    interval = clamp_interval(interval)
    min_interval = reply.get(b"min interval")
    if isinstance(min_interval, int):
        min_interval = clamp_interval(min_interval)
        interval = max(interval, min_interval)
    else:
        min_interval = None

    peers_value = reply.get(b"peers", b"")
    if isinstance(peers_value, bytes):
        peers = decode_compact_peers(peers_value, max_peers=max_peers)
    elif isinstance(peers_value, list):
        peers = _dict_peers(peers_value, max_peers)
    else:
        raise RemoteProtocolError("announce reply: 'peers' is neither a string nor a list")
    peers6_value = reply.get(b"peers6", b"")
    if not isinstance(peers6_value, bytes):
        raise RemoteProtocolError("announce reply: 'peers6' is not a string")
    peers6 = decode_compact_peers(peers6_value, ipv6=True, max_peers=max_peers)

    tracker_id = reply.get(b"tracker id")
    external = reply.get(b"external ip")
    external_ip = None
    if isinstance(external, bytes) and len(external) in (4, 16):
        external_ip = str(ipaddress.ip_address(external))
    return AnnounceResponse(
        interval=interval,
        min_interval=min_interval,
        tracker_id=tracker_id if isinstance(tracker_id, bytes) and tracker_id else None,
        complete=_count(reply.get(b"complete")),
        incomplete=_count(reply.get(b"incomplete")),
        peers=peers,
        peers6=peers6,
        warning_message=_text(reply.get(b"warning message")),
        external_ip=external_ip,
    )


def encode_announce_response(response: AnnounceResponse) -> bytes:
    """The body a tracker sends for ``response`` (for tests and a small tracker).

    ``peers`` goes in compact form when every host is an IPv4 address, in
    dictionary form otherwise."""
    reply: dict[bytes, Any] = {b"interval": response.interval}
    if response.min_interval is not None:
        reply[b"min interval"] = response.min_interval
    if response.tracker_id is not None:
        reply[b"tracker id"] = response.tracker_id
    if response.complete is not None:
        reply[b"complete"] = response.complete
    if response.incomplete is not None:
        reply[b"incomplete"] = response.incomplete
    try:
        reply[b"peers"] = encode_compact_peers(response.peers)
    except ValueError:
        reply[b"peers"] = [
            {b"ip": host.encode("ascii"), b"port": port} for host, port in response.peers
        ]
    if response.peers6:
        reply[b"peers6"] = encode_compact_peers(response.peers6, ipv6=True)
    if response.warning_message is not None:
        reply[b"warning message"] = response.warning_message.encode("utf-8")
    if response.external_ip is not None:
        reply[b"external ip"] = ipaddress.ip_address(response.external_ip).packed
    return encode(reply)


def encode_failure(reason: str) -> bytes:
    """The body of a tracker's refusal."""
    return encode({b"failure reason": reason.encode("utf-8")})


def parse_scrape_response(body: bytes, info_hashes: Collection[bytes]) -> dict[bytes, ScrapeStats]:
    """Check and decode a scrape reply (BEP 48), keeping the torrents asked about.

    A torrent the tracker does not know is absent from the result; so is one
    whose entry is not a dictionary.  A missing or negative count is 0."""
    reply = _decode_reply(body, "scrape reply")
    files = reply.get(b"files")
    if files is None:
        raise RemoteProtocolError("scrape reply has no 'files'")
    if not isinstance(files, dict):
        raise RemoteProtocolError("scrape reply: 'files' is not a dictionary")
    stats: dict[bytes, ScrapeStats] = {}
    for info_hash in info_hashes:
        entry = files.get(info_hash)
        if not isinstance(entry, dict):
            continue
        stats[info_hash] = ScrapeStats(
            complete=_count(entry.get(b"complete")) or 0,
            downloaded=_count(entry.get(b"downloaded")) or 0,
            incomplete=_count(entry.get(b"incomplete")) or 0,
        )
    return stats
