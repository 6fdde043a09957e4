"""What both sides of the MSE/PE handshake share: constants, key schedule, events.

Theory of operation
-------------------
``HandshakeBase`` owns a side's Diffie-Hellman key pair, its input buffer
and the key schedule (the shared secret S, HASH = SHA-1, the RC4 streams
keyed with HASH('keyA', S, SKEY) and HASH('keyB', S, SKEY), the first 1024
bytes of each discarded); ``mse.MSEInitiator`` and ``mse.MSEResponder`` are
its two state machines.  ``feed`` appends to the buffer and runs the
subclass's ``_step`` until it needs more bytes; a ``MSEHandshakeError``
leaves the machine failed, and a failed or finished machine takes no more
bytes.

What it must not know: sockets, clocks, global randomness and the cipher
library.  Randomness (private keys, pad lengths and bytes) comes from the
injected ``randbytes(n)``; RC4 from the injected ``new_rc4(key)`` (the
adapter ``peer.mse_crypto`` uses ``cryptography``'s ARC4).  The
Diffie-Hellman step is Python's built-in three-argument ``pow`` (native
big-integer code, about 0.2 ms per handshake here): ``cryptography``'s
finite-field DH accepts this group but is deprecated (it warns, and its
removal is announced), draws its own ~766-bit private keys rather than the
injected ones, and would still need ``pow`` to derive the public key from an
injected private key.  ``pow`` is not constant-time; MSE is obfuscation
against traffic shaping, not a defence against an active attacker (it has
no authentication), so that is acceptable here.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, Union

from txbittorrent.errors import LocalProtocolError, MSEHandshakeError

__all__ = [
    "PRIME", "GENERATOR", "KEY_BYTES", "PRIVATE_KEY_BYTES", "MAX_PAD", "VC", "RC4_DISCARD",
    "CRYPTO_PLAINTEXT", "CRYPTO_RC4", "HASH_BYTES", "REQ1_SYNC_LIMIT", "VC_SYNC_LIMIT",
    "MAX_INITIAL_PAYLOAD", "StreamCipher", "RandBytes", "RC4Factory", "sha1_of", "req2_hash",
    "xor20", "select_crypto", "Send", "Established", "MSEEvent", "DONE", "FAILED",
    "HandshakeBase",
]

PRIME = int(
    "FFFFFFFFFFFFFFFFC90FDAA22168C234C4C6628B80DC1CD129024E088A67CC74"
    "020BBEA63B139B22514A08798E3404DDEF9519B3CD3A431B302B0A6DF25F1437"
    "4FE1356D6D51C245E485B576625E7EC6F44C42E9A63A36210000000000090563",
    16,
)
"""The 768-bit prime of the MSE Diffie-Hellman group."""
GENERATOR = 2
KEY_BYTES = 96
"""A public key or the shared secret, big-endian, zero-padded."""
PRIVATE_KEY_BYTES = 20
"""160-bit private keys, as the specification advises."""
MAX_PAD = 512
"""The longest PadA, PadB, PadC or PadD."""
VC = bytes(8)
"""The verification constant."""
RC4_DISCARD = 1024
"""Keystream bytes thrown away before the first encrypted byte."""
CRYPTO_PLAINTEXT = 0x01
CRYPTO_RC4 = 0x02
HASH_BYTES = 20
REQ1_SYNC_LIMIT = KEY_BYTES + MAX_PAD + HASH_BYTES
"""628: HASH('req1', S) must end within this many bytes of B's stream."""
VC_SYNC_LIMIT = KEY_BYTES + MAX_PAD + len(VC)
"""616: B's encrypted VC must end within this many bytes of A's stream."""
MAX_INITIAL_PAYLOAD = 0xFFFF


class StreamCipher(Protocol):
    """One direction's RC4 stream: ``update`` encrypts or decrypts."""

    def update(self, data: bytes, /) -> bytes: ...


RandBytes = Callable[[int], bytes]
RC4Factory = Callable[[bytes], StreamCipher]


def sha1_of(*parts: bytes) -> bytes:
    return hashlib.sha1(b"".join(parts)).digest()


def req2_hash(info_hash: bytes) -> bytes:
    """HASH('req2', SKEY): what a responder's lookup is keyed by."""
    return sha1_of(b"req2", info_hash)


def xor20(a: bytes, b: bytes) -> bytes:
    return (int.from_bytes(a, "big") ^ int.from_bytes(b, "big")).to_bytes(HASH_BYTES, "big")


def select_crypto(provided: int, allowed: int, prefer: int) -> int:
    """The method a responder selects from the initiator's ``provided`` bits:
    ``prefer`` when both sides allow it, else RC4, else plaintext; 0 if
    nothing is common."""
    common = provided & allowed
    if common & prefer:
        return prefer
    if common & CRYPTO_RC4:
        return CRYPTO_RC4
    if common & CRYPTO_PLAINTEXT:
        return CRYPTO_PLAINTEXT
    return 0


@dataclass(frozen=True, slots=True)
class Send:
    """Bytes to write to the peer, in order."""

    data: bytes


@dataclass(frozen=True, slots=True)
class Established:
    """The handshake is done.  ``payload``: the plaintext bytes that came
    after it (the responder's start with the initiator's IA); ``encryptor``
    and ``decryptor``: the RC4 streams for the rest of the connection, or
    None when ``crypto`` is ``CRYPTO_PLAINTEXT``."""

    crypto: int
    info_hash: bytes
    payload: bytes
    encryptor: StreamCipher | None
    decryptor: StreamCipher | None


MSEEvent = Union[Send, Established]

DONE = "done"
FAILED = "failed"


class HandshakeBase:
    """What both sides share: the key pair, the buffer and the key schedule."""

    def __init__(self, randbytes: RandBytes, new_rc4: RC4Factory) -> None:
        self._randbytes = randbytes
        self._new_rc4 = new_rc4
        self._private = max(2, int.from_bytes(randbytes(PRIVATE_KEY_BYTES), "big"))
        self.public_key = pow(GENERATOR, self._private, PRIME).to_bytes(KEY_BYTES, "big")
        """Our Ya or Yb."""
        self._buffer = bytearray()
        self._state = ""
        self._secret = b""
        self._select = 0
        """The crypto method chosen, once known."""
        self._pad_length = 0
        """The length of the pad being read (PadC or PadD)."""

    @property
    def done(self) -> bool:
        return self._state == DONE

    def feed(self, data: bytes) -> list[MSEEvent]:
        """Take bytes from the peer; the events they cause (see the module
        docstring).  Raises ``MSEHandshakeError`` on a protocol violation."""
        if self._state in (DONE, FAILED):
            raise LocalProtocolError(f"feed() on a handshake that is {self._state}")
        self._buffer += data
        events: list[MSEEvent] = []
        try:
            while self._step(events):
                pass
        except MSEHandshakeError:
            self._state = FAILED
            self._buffer = bytearray()
            raise
        return events

    def _step(self, events: list[MSEEvent]) -> bool:
        raise NotImplementedError

    def _take(self, n: int) -> bytes | None:
        """The next ``n`` buffered bytes, consumed, or None if not all here."""
        buffer = self._buffer
        if len(buffer) < n:
            return None
        taken = bytes(buffer[:n])
        del buffer[:n]
        return taken

    def _rest(self) -> bytes:
        rest = bytes(self._buffer)
        self._buffer = bytearray()
        return rest

    def _agree(self, peer_public: bytes) -> None:
        y = int.from_bytes(peer_public, "big")
        if not 1 < y < PRIME - 1:
            raise MSEHandshakeError("degenerate Diffie-Hellman public key")
        self._secret = pow(y, self._private, PRIME).to_bytes(KEY_BYTES, "big")

    def _keystream(self, name: bytes, info_hash: bytes) -> StreamCipher:
        cipher = self._new_rc4(sha1_of(name, self._secret, info_hash))
        cipher.update(bytes(RC4_DISCARD))
        return cipher

    def _set_pad(self, select: int, raw_length: bytes, name: str) -> None:
        """The chosen method and the length of the pad that follows (two
        bytes from the peer), at most ``MAX_PAD``."""
        length = int.from_bytes(raw_length, "big")
        if length > MAX_PAD:
            raise MSEHandshakeError(f"{name} of {length} bytes (the limit is {MAX_PAD})")
        self._select, self._pad_length = select, length

    def _pad(self) -> bytes:
        length = int.from_bytes(self._randbytes(2), "big") % (MAX_PAD + 1)
        return self._randbytes(length) if length else b""
