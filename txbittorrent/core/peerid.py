"""Peer ids: making ours, and naming the client behind someone else's.

A peer id is 20 bytes of the handshake (BEP 3).  Most clients follow one of
the conventions BEP 20 lists, and so do we:

* Azureus style, ``-XXabcd-`` then twelve random characters: ``XX`` names
  the client, ``abcd`` is its version.  ``make_peer_id`` makes such ids, with
  the random part drawn from an injected ``random.Random`` (so tests can seed
  it) over letters and digits (printable, and unchanged by URL escaping).
* Shadow style, one letter then up to five version characters padded with
  dashes (``T03I--...``, BitTornado 0.3.18).
* Mainline style, ``M4-3-6--`` (BitTorrent 4.3.6), and aria2's ``A2-1-36-0-``.

``client_name`` prefers what the peer says of itself in its BEP 10 extension
handshake (``v``), which is free text and more precise than any id, and falls
back to decoding the id; an id it cannot read is ``"unknown"``.  Both are
pure functions: nothing here keeps state.
"""

from __future__ import annotations

import re
from typing import Protocol

__all__ = ["make_peer_id", "client_name", "DEFAULT_PREFIX", "PEER_ID_LENGTH"]

PEER_ID_LENGTH = 20

DEFAULT_PREFIX = b"-TX0100-"
"""Ours: ``TX`` and version 0.1.0.0."""

_ALPHABET = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

_MAX_NAME = 64
"""The longest client name we pass on (``v`` is free text from the peer)."""


class RandomSource(Protocol):
    """The part of ``random.Random`` used here."""

    def randrange(self, start: int, /) -> int: ...


def make_peer_id(rng: RandomSource, prefix: bytes = DEFAULT_PREFIX) -> bytes:
    """A 20-byte peer id: ``prefix`` then random letters and digits."""
    if len(prefix) > PEER_ID_LENGTH:
        raise ValueError(f"a peer id prefix has at most {PEER_ID_LENGTH} bytes")
    size, count = len(_ALPHABET), PEER_ID_LENGTH - len(prefix)
    # One draw for the whole tail, read as ``count`` base-62 digits: as
    # uniform as a draw per letter, and a session of thousands of torrents
    # makes one id each.
    value = rng.randrange(size**count) if count else 0
    tail = bytearray(count)
    for i in range(count):
        value, digit = divmod(value, size)
        tail[i] = _ALPHABET[digit]
    return prefix + bytes(tail)


# Azureus-style client codes (BEP 20 and the clients' own documentation).
_AZUREUS: dict[bytes, str] = {
    b"AG": "Ares",
    b"AZ": "Vuze",
    b"BB": "BitBuddy",
    b"BC": "BitComet",
    b"BI": "BiglyBT",
    b"BT": "BitTorrent",
    b"BW": "BitWombat",
    b"DE": "Deluge",
    b"FD": "Free Download Manager",
    b"FW": "FrostWire",
    b"KT": "KTorrent",
    b"LT": "libtorrent",
    b"lt": "libTorrent (rakshasa)",
    b"LW": "LimeWire",
    b"PI": "PicoTorrent",
    b"qB": "qBittorrent",
    b"SD": "Thunder",
    b"TL": "Tribler",
    b"TR": "Transmission",
    b"TX": "txbittorrent",
    b"UM": "\u00b5Torrent Mac",
    b"UT": "\u00b5Torrent",
    b"UW": "\u00b5Torrent Web",
    b"WW": "WebTorrent",
    b"XL": "Xunlei",
}

# Shadow-style client letters.
_SHADOW: dict[int, str] = {
    ord("A"): "ABC",
    ord("O"): "Osprey Permaseed",
    ord("Q"): "BTQueue",
    ord("R"): "Tribler",
    ord("S"): "Shadow",
    ord("T"): "BitTornado",
    ord("U"): "UPnP NAT Bit Torrent",
}

_AZUREUS_RE = re.compile(rb"-([A-Za-z0-9]{2})([0-9A-Za-z]{4})-")
_SHADOW_RE = re.compile(rb"([A-Z])([0-9A-Za-z.]{1,5})---")
_MAINLINE_RE = re.compile(rb"M(\d{1,2})-(\d{1,2})-(\d{1,2})-")
_ARIA2_RE = re.compile(rb"A2-(\d{1,2})-(\d{1,2})-(\d{1,2})-")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_SHADOW_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz."


def _digit(c: int) -> int:
    """One Azureus version character: 0-9, then A=10, B=11 ... (as clients use it)."""
    ch = chr(c)
    if ch.isdigit():
        return int(ch)
    return ord(ch.upper()) - ord("A") + 10


def _azureus_version(code: bytes, raw: bytes) -> str:
    digits = [_digit(c) for c in raw]
    if code == b"TR" and digits[0] < 4:
        # Transmission before 4.0: major, two-digit minor, then a build tag.
        return f"{digits[0]}.{digits[1]}{digits[2]}"
    if code == b"UT" or code == b"UM" or code == b"UW":
        # µTorrent: major, minor, patch, then a build letter.
        return f"{digits[0]}.{digits[1]}.{digits[2]}"
    if digits[3] == 0:
        digits.pop()
    return ".".join(str(d) for d in digits)


def client_name(peer_id: bytes, extension_v: str | None = None) -> str:
    """A readable name (with version) for the client behind ``peer_id``; the
    BEP 10 ``v`` string wins when the peer sent one."""
    if extension_v:
        name = _CONTROL_RE.sub("", extension_v).strip()
        if name:
            return name[:_MAX_NAME]
    if len(peer_id) != PEER_ID_LENGTH:
        return "unknown"
    m = _AZUREUS_RE.match(peer_id)
    if m is not None:
        code, raw = m.group(1), m.group(2)
        version = _azureus_version(code, raw)
        known = _AZUREUS.get(code)
        return f"{known} {version}" if known else f"{code.decode('ascii')} {version}"
    m = _ARIA2_RE.match(peer_id)
    if m is not None:
        return "aria2 " + ".".join(str(int(g)) for g in m.groups())
    m = _MAINLINE_RE.match(peer_id)
    if m is not None:
        return "BitTorrent " + ".".join(str(int(g)) for g in m.groups())
    m = _SHADOW_RE.match(peer_id)
    if m is not None and peer_id[0] in _SHADOW:
        version = ".".join(str(_SHADOW_DIGITS.index(chr(c))) for c in m.group(2))
        return f"{_SHADOW[peer_id[0]]} {version}"
    return "unknown"
