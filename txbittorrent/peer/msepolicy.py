"""What MSE/PE may do for a session: the encryption settings and the
torrent an encrypted handshake names.

``policy(mode)`` turns ``SessionConfig.encryption`` into the methods an
``MSEPeerProtocol`` offers, selects and accepts; ``Req2Map`` finds the
torrent an incoming encrypted handshake's ``HASH('req2', SKEY)`` names
among the session's.  ``ENCRYPTION_RETRY`` starts the ``connect_failed``
reason of a dial to retry with the other method (``peer.mse``'s
"Fallback").  Used by ``peer.mse`` and ``session``; no I/O.
"""

from __future__ import annotations

from typing import Any

from txbittorrent.core.wire.mse import CRYPTO_PLAINTEXT, CRYPTO_RC4, req2_hash

__all__ = ["ENCRYPTION_MODES", "ENCRYPTION_RETRY", "Req2Map", "policy"]

ENCRYPTION_MODES = ("disabled", "enabled", "forced")
"""The values of ``SessionConfig.encryption``."""

ENCRYPTION_RETRY = "retry with the other encryption method"
"""How a ``connect_failed`` reason starts when the address should be
dialled again soon, with the other method (see "Fallback" in ``peer.mse``)."""


def policy(mode: str) -> tuple[int, int, bool]:
    """For an encryption setting: (the methods we offer and accept, the one
    we select when offered several, whether plain incoming is accepted).
    ``enabled`` accepts both and selects plaintext (the payload costs no
    cipher work; the handshake is obfuscated either way), as libtorrent's
    defaults do; ``forced`` is RC4 only."""
    if mode == "enabled":
        return CRYPTO_PLAINTEXT | CRYPTO_RC4, CRYPTO_PLAINTEXT, True
    if mode == "forced":
        return CRYPTO_RC4, CRYPTO_RC4, False
    raise ValueError(f"no MSE policy for encryption mode {mode!r}")


class Req2Map:
    """HASH('req2', info hash) -> info hash over a live mapping keyed by info
    hash (the session's registry): a responder's ``skey_for_req2``.  Each
    info hash is hashed once, lazily: a miss hashes only the info hashes
    added since, and a hit is checked against the mapping (a removed
    torrent is not found)."""

    def __init__(self, registry: Any) -> None:
        """``registry``: a mapping whose keys are the info hashes."""
        self._registry = registry
        self._by_req2: dict[bytes, bytes] = {}
        self._hashed: set[bytes] = set()

    def __call__(self, req2: bytes) -> bytes | None:
        info_hash = self._by_req2.get(req2)
        if info_hash is None:
            new = self._registry.keys() - self._hashed
            if new:
                for added in new:
                    self._by_req2[req2_hash(added)] = added
                self._hashed |= new
                info_hash = self._by_req2.get(req2)
        if info_hash is None or info_hash not in self._registry:
            return None
        return info_hash
