"""The stats API's credentials: HMAC-signed requests, a nonce cache, login bans.

Theory of operation
-------------------
A client that logged in (``POST /api/login``) holds an API key ``key`` and
its ``key_id``.  It may send the key itself (``Authorization: Bearer
<key>``) or sign each request without sending it::

    Authorization: TXBT-HMAC key_id=<id>, nonce=<nonce>, timestamp=<unix s>,
                   signature=<hex HMAC-SHA256(SHA-256(key), string_to_sign)>

where ``string_to_sign`` is ``string_to_sign(method, target, timestamp,
nonce, body)``: the method, the request target as sent (path and query),
the timestamp, the nonce and the hex SHA-256 of the body, joined by
newlines.  The HMAC key is the SHA-256 of the API key, which is what the
server stores.

``NonceCache`` refuses a request whose timestamp is more than ``window``
seconds from the server's clock, or whose (key_id, nonce) it has seen.  It
holds at most ``max_entries`` nonces and forgets those older than the
window; when it must forget a nonce still inside the window to stay within
bounds, it raises its ``floor`` to that nonce's timestamp and refuses any
timestamp at or below the floor, so an evicted nonce can never be replayed.
Nonces are recorded only after the signature is verified, so strangers
cannot fill the cache.

``LoginLimiter`` counts failed logins per client address and bans an
address for ``ban_duration`` after ``threshold`` failures within
``window`` seconds; it remembers at most ``max_tracked`` addresses.

Nothing here does I/O or reads a clock: callers pass ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import OrderedDict
from dataclasses import dataclass

__all__ = [
    "SCHEME", "LoginLimiter", "NonceCache", "SignedHeader", "parse_signed_header",
    "sign", "string_to_sign",
]

SCHEME = "TXBT-HMAC"
_NONCE = re.compile(r"\A[A-Za-z0-9_\-]{8,64}\Z")
_KEY_ID = re.compile(r"\A[0-9a-f]{1,64}\Z")
_HEX64 = re.compile(r"\A[0-9a-f]{64}\Z")


@dataclass(frozen=True, slots=True)
class SignedHeader:
    """The parameters of a ``TXBT-HMAC`` Authorization header."""

    key_id: str
    nonce: str
    timestamp: int
    signature: str


def parse_signed_header(value: str) -> SignedHeader | None:
    """The parameters after ``TXBT-HMAC``, or None if any is missing or malformed."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.upper() != SCHEME:
        return None
    params: dict[str, str] = {}
    for part in rest.split(","):
        name, sep, item = part.strip().partition("=")
        if not sep or name in params:
            return None
        params[name.strip().lower()] = item.strip().strip('"')
    try:
        key_id, nonce = params["key_id"], params["nonce"]
        timestamp, signature = params["timestamp"], params["signature"].lower()
    except KeyError:
        return None
    if not (_KEY_ID.match(key_id) and _NONCE.match(nonce) and _HEX64.match(signature)):
        return None
    if not timestamp.isdigit() or len(timestamp) > 12:
        return None
    return SignedHeader(key_id, nonce, int(timestamp), signature)


def string_to_sign(method: str, target: str, timestamp: int, nonce: str, body: bytes) -> bytes:
    """What a request's signature covers (see the module docstring)."""
    digest = hashlib.sha256(body).hexdigest()
    return f"{method.upper()}\n{target}\n{timestamp}\n{nonce}\n{digest}".encode("utf-8")


def sign(secret: bytes, method: str, target: str, timestamp: int, nonce: str,
         body: bytes) -> str:
    """The hex signature of a request under ``secret`` (SHA-256 of the API key)."""
    message = string_to_sign(method, target, timestamp, nonce, body)
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


class NonceCache:
    """Seen (key_id, nonce) pairs, bounded in size and time (see the module docstring)."""

    def __init__(self, window: float = 300.0, max_entries: int = 100_000) -> None:
        self.window = window
        self.max_entries = max_entries
        self.floor = float("-inf")
        self._seen: OrderedDict[tuple[str, str], int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def fresh(self, timestamp: int, now: float) -> bool:
        """Whether ``timestamp`` is inside the window around ``now`` and above the floor."""
        return abs(now - timestamp) <= self.window and timestamp > self.floor

    def use(self, key_id: str, nonce: str, timestamp: int, now: float) -> bool:
        """Record a nonce; False if it was seen (a replay) or is not ``fresh``."""
        while self._seen:
            oldest_key, oldest = next(iter(self._seen.items()))
            if oldest >= now - self.window:
                break
            del self._seen[oldest_key]
        if not self.fresh(timestamp, now) or (key_id, nonce) in self._seen:
            return False
        self._seen[(key_id, nonce)] = timestamp
        while len(self._seen) > self.max_entries:
            _, evicted = self._seen.popitem(last=False)
            self.floor = max(self.floor, evicted)
        return True


class LoginLimiter:
    """Failed logins per address, and bans (see the module docstring)."""

    def __init__(self, threshold: int = 5, window: float = 600.0,
                 ban_duration: float = 3600.0, max_tracked: int = 10_000) -> None:
        self.threshold = threshold
        self.window = window
        self.ban_duration = ban_duration
        self.max_tracked = max_tracked
        self._failures: OrderedDict[str, list[float]] = OrderedDict()
        self._banned: OrderedDict[str, float] = OrderedDict()

    def banned(self, address: str, now: float) -> bool:
        until = self._banned.get(address)
        if until is None:
            return False
        if until <= now:
            del self._banned[address]
            return False
        return True

    def failed(self, address: str, now: float) -> None:
        times = [t for t in self._failures.pop(address, []) if t > now - self.window]
        times.append(now)
        if len(times) >= self.threshold:
            self._banned.pop(address, None)
            self._banned[address] = now + self.ban_duration
            while len(self._banned) > self.max_tracked:
                self._banned.popitem(last=False)
            return
        self._failures[address] = times
        while len(self._failures) > self.max_tracked:
            self._failures.popitem(last=False)

    def succeeded(self, address: str) -> None:
        self._failures.pop(address, None)
