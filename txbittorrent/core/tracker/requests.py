"""The HTTP tracker's requests and replies (BEP 3, 7, 23, 48), server side.

Theory of operation
-------------------
An HTTP adapter hands this module the raw query string and the path below
the tracker's root; it gets back a validated ``Announce`` (or the info hashes
of a scrape) and, once the ``TrackerState`` has answered, the body to send.
A request the tracker will not serve raises ``RequestRefused``.  Nothing here
reads a clock or a socket.

Decisions
---------
* Query strings are split on ``&`` and ``=`` and percent-decoded to bytes;
  ``+`` stays ``+`` (form encoding's space would corrupt binary values, and
  BitTorrent clients escape every byte of ``info_hash`` and ``peer_id``).
  A query longer than ``MAX_QUERY`` bytes is refused before it is split.
* The peer's address is the source address the adapter passes; the ``ip``
  parameter replaces it only with ``trust_ip`` (the adapter's policy: the
  request came from a trusted proxy), and only when it is an IP address.
* ``key`` is up to 8 hexadecimal digits (what every client sends) or a
  decimal number below 2**32; anything else is ignored rather than refused,
  as it is only a hint.  ``trackerid`` (our ``tracker id`` echoed back) is
  accepted whatever it holds, up to 64 bytes.
* ``numwant`` may be any decimal number up to 19 digits; the registry caps it.
* Private mode: the path is ``<passkey>/announce``; ``split_tracker_path``
  checks the passkey's shape (``PASSKEY`` characters, 1..64 of them) and the
  adapter asks its passkey check who it belongs to.
* A scrape names 1..``MAX_HTTP_SCRAPE_HASHES`` info hashes, or none for a
  full scrape where the caller allows it (``allow_full``).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any
from urllib.parse import unquote_to_bytes

from txbittorrent.core.bencoding import encode
from txbittorrent.core.tracker.announce import AnnounceEvent, ScrapeStats
from txbittorrent.core.tracker.swarmpeers import cached_compact_address
from txbittorrent.core.tracker.swarms import (
    Announce,
    AnnounceResult,
    RequestRefused,
    compact_peers,
)

__all__ = [
    "MAX_QUERY", "MAX_HTTP_SCRAPE_HASHES", "PASSKEY", "canonical_ip", "parse_query",
    "announce_from_query", "scrape_hashes_from_query", "split_tracker_path",
    "encode_http_announce", "encode_http_scrape",
]

MAX_QUERY = 8192
"""Longest query string (bytes) an HTTP announce or scrape may have."""
MAX_HTTP_SCRAPE_HASHES = 100
"""Most info hashes one HTTP scrape may name."""
PASSKEY = re.compile(rb"[A-Za-z0-9_-]{1,64}")
"""What a passkey in a private tracker's path looks like."""
_MAX_NUMBER = 2**63 - 1
_KEY = re.compile(rb"[0-9A-Fa-f]{1,8}")


@lru_cache(maxsize=16384)
def canonical_ip(text: str) -> str:
    """``text`` as a canonical IP address (IPv4-mapped IPv6 as IPv4); ``ValueError`` if not one."""
    address = ipaddress.ip_address(text)
    if isinstance(address, ipaddress.IPv6Address):
        if address.scope_id is not None:
            raise ValueError(f"scoped address {text!r}")
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
    return str(address)


_EVENTS = {b"": None, b"paused": None, **{e.value.encode(): e for e in AnnounceEvent}}


def parse_query(query: bytes) -> dict[bytes, list[bytes]]:
    """An HTTP query string as raw byte values by name (``+`` is not a space)."""
    if len(query) > MAX_QUERY:
        raise RequestRefused("request too long")
    args: dict[bytes, list[bytes]] = {}
    for part in query.split(b"&"):
        if part:
            name, _, value = part.partition(b"=")
            if b"%" in name:
                name = unquote_to_bytes(name)
            if b"%" in value:
                value = unquote_to_bytes(value)
            args.setdefault(name, []).append(value)
    return args


def split_tracker_path(postpath: Sequence[bytes]) -> tuple[bytes | None, bytes]:
    """(passkey or ``None``, ``b"announce"`` or ``b"scrape"``) for a path below the root.

    Raises ``LookupError`` for any other path."""
    if len(postpath) == 1 and postpath[0] in (b"announce", b"scrape"):
        return None, postpath[0]
    if (
        len(postpath) == 2
        and postpath[1] in (b"announce", b"scrape")
        and PASSKEY.fullmatch(postpath[0])
    ):
        return postpath[0], postpath[1]
    raise LookupError("not a tracker path")


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


def _key(args: Mapping[bytes, Sequence[bytes]]) -> int | None:
    value = _one(args, b"key")
    if value is None:
        return None
    if _KEY.fullmatch(value):
        return int(value, 16)
    if value.isdigit() and len(value) <= 10 and int(value) < 2**32:
        return int(value)
    return None


def announce_from_query(
    args: Mapping[bytes, Sequence[bytes]],
    source_ip: str,
    *,
    trust_ip: bool = False,
    user: str | int | None = None,
) -> Announce:
    """The announce in an HTTP query (see ``parse_query``) from ``source_ip``.

    The ``ip`` parameter replaces ``source_ip`` only when ``trust_ip`` is set
    and it is an IP address (not a DNS name).  ``user`` is who the request's
    passkey belongs to, if any."""
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
    tracker_id = _one(args, b"trackerid")
    if tracker_id is not None and len(tracker_id) > 64:
        raise RequestRefused("invalid trackerid")
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
        key=_key(args),
        user=user,
    )


def scrape_hashes_from_query(
    args: Mapping[bytes, Sequence[bytes]], *, allow_full: bool = False
) -> list[bytes]:
    """The info hashes a scrape asks about; an empty list is a full scrape (``allow_full``)."""
    hashes = list(dict.fromkeys(args.get(b"info_hash", ())))
    if not hashes and not allow_full:
        raise RequestRefused("full scrape is not supported")
    if any(len(h) != 20 for h in hashes):
        raise RequestRefused("invalid info_hash")
    if len(hashes) > MAX_HTTP_SCRAPE_HASHES:
        raise RequestRefused("too many info_hash values")
    return hashes


def encode_http_announce(
    request: Announce, result: AnnounceResult, warning: bytes | None = None
) -> bytes:
    """The reply body: compact ``peers`` and ``peers6`` (BEP 23, BEP 7), or
    dictionaries; with ``warning``, a ``warning message`` too."""
    if request.compact:
        return _encode_compact_announce(request, result, warning)
    reply: dict[bytes, Any] = {
        b"interval": result.interval,
        b"complete": result.complete,
        b"incomplete": result.incomplete,
        b"external ip": _external_ip(request),
    }
    if result.min_interval is not None:
        reply[b"min interval"] = result.min_interval
    if result.tracker_id is not None:
        reply[b"tracker id"] = result.tracker_id
    entries = []
    for peer in result.peers:
        entry: dict[bytes, Any] = {b"ip": peer.ip.encode("ascii"), b"port": peer.port}
        if not request.no_peer_id:
            entry[b"peer id"] = peer.peer_id
        entries.append(entry)
    reply[b"peers"] = entries
    if warning is not None:
        reply[b"warning message"] = warning
    return encode(reply)


def _encode_compact_announce(
    request: Announce, result: AnnounceResult, warning: bytes | None
) -> bytes:
    """``encode_http_announce``'s compact reply, written out directly: the
    same bytes the bencoder gives for that dictionary (its keys in sorted
    order), without building it (the tracker's most frequent reply)."""
    external = _external_ip(request)
    peers = compact_peers(result.peers)
    peers6 = compact_peers(result.peers, ipv6=True)
    parts = [
        b"d8:completei%de11:external ip%d:" % (result.complete, len(external)), external,
        b"10:incompletei%de8:intervali%de" % (result.incomplete, result.interval),
    ]
    if result.min_interval is not None:
        parts.append(b"12:min intervali%de" % result.min_interval)
    parts += [b"5:peers%d:" % len(peers), peers, b"6:peers6%d:" % len(peers6), peers6]
    if result.tracker_id is not None:
        parts += [b"10:tracker id%d:" % len(result.tracker_id), result.tracker_id]
    if warning is not None:
        parts += [b"15:warning message%d:" % len(warning), warning]
    parts.append(b"e")
    return b"".join(parts)


def _external_ip(request: Announce) -> bytes:
    """The requester's packed IP (BEP 24), from the compact address cache the
    swarms filled for this very announce."""
    return cached_compact_address(request.ip, request.port)[:-2]


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
