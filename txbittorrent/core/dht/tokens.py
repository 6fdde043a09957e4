"""announce_peer tokens (BEP 5): proof that an announcer asked us first.

Theory of operation
-------------------
A get_peers reply carries a token; an announce_peer must bring it back from
the same IP address, so a node cannot announce someone else's address
(without receiving at that address) nor announce without asking first.
BEP 5 suggests the token be the SHA-1 of the IP address and a secret that
changes every five minutes, tokens up to ten minutes old being accepted;
``Tokens`` does that:

* ``token = SHA-1(secret || packed IP || info_hash)[:TOKEN_LENGTH]``.  The
  info hash binds a token to the torrent it was asked for (as libtorrent
  does); the port is left out, since the announce names its own port and a
  NAT may give the query and the announce different source ports;
* the secret is replaced every ``interval`` seconds (5 minutes), on a fixed
  schedule from the first use; the previous one is still accepted, so a
  token lives between one and two intervals.  After two intervals or more of
  silence both are replaced;
* secrets are drawn from the injected rng when first needed (the constructor
  draws nothing), and compared in constant time.

Nothing here reads the clock: each call takes ``now``.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
from typing import Protocol

__all__ = ["Tokens", "TOKEN_INTERVAL", "TOKEN_LENGTH", "Bits"]

TOKEN_INTERVAL = 5 * 60.0
"""Seconds between secret rotations; a token is accepted for one or two of them."""
TOKEN_LENGTH = 8
"""Bytes of SHA-1 kept in a token."""
_SECRET_BITS = 128


class Bits(Protocol):
    """The part of ``random.Random`` used here."""

    def getrandbits(self, k: int, /) -> int: ...


class Tokens:
    """The tokens we give in get_peers replies and check in announce_peer."""

    def __init__(
        self, rng: Bits, *, interval: float = TOKEN_INTERVAL, length: int = TOKEN_LENGTH
    ) -> None:
        if interval <= 0 or not 4 <= length <= 20:
            raise ValueError("interval must be positive and length 4..20")
        self._rng = rng
        self.interval = interval
        self.length = length
        self._current = b""
        self._previous: bytes | None = None
        self._since: float | None = None

    def _rotate(self, now: float) -> None:
        if self._since is None:
            self._current, self._since = self._draw(), now
            return
        steps = int((now - self._since) // self.interval)
        if steps == 1:
            self._previous, self._current = self._current, self._draw()
        elif steps >= 2:
            self._previous, self._current = None, self._draw()
        if steps >= 1:
            self._since += steps * self.interval

    def _draw(self) -> bytes:
        return self._rng.getrandbits(_SECRET_BITS).to_bytes(_SECRET_BITS // 8, "big")

    def _make(self, secret: bytes, ip: str, info_hash: bytes) -> bytes:
        packed = ipaddress.ip_address(ip).packed
        return hashlib.sha1(secret + packed + info_hash).digest()[: self.length]

    def token(self, ip: str, info_hash: bytes, now: float) -> bytes:
        """The token for a get_peers about ``info_hash`` from ``ip`` at ``now``."""
        self._rotate(now)
        return self._make(self._current, ip, info_hash)

    def is_valid(self, token: bytes, ip: str, info_hash: bytes, now: float) -> bool:
        """Whether an announce_peer from ``ip`` for ``info_hash`` may use ``token``."""
        self._rotate(now)
        if len(token) != self.length:
            return False
        secrets = [self._current] + ([self._previous] if self._previous is not None else [])
        return any(hmac.compare_digest(token, self._make(s, ip, info_hash)) for s in secrets)
