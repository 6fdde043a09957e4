"""A hand-written MSE initiator for the tests of txbittorrent's MSE/PE
(``tests.test_mse``, ``tests.test_peer_mse``): it builds the hostile
step-3 messages the real initiator never sends."""

from __future__ import annotations

import hashlib

from txbittorrent.core.wire.mse import KEY_BYTES, PRIME, StreamCipher
from txbittorrent.peer.mse_crypto import new_rc4

INFO_HASH = bytes(range(20))
BOTH = 0x03


def rc4(key: bytes) -> StreamCipher:
    cipher = new_rc4(key)
    cipher.update(bytes(1024))
    return cipher


class HandA:
    """Side A written out by hand from the specification, to build hostile
    step-3 messages the real initiator would never send."""

    def __init__(self, private: int = 0x1234567890ABCDEF) -> None:
        self.private = private
        self.public = pow(2, private, PRIME).to_bytes(KEY_BYTES, "big")

    def step3(
        self, yb: bytes, *, info_hash: bytes = INFO_HASH, provide: int = BOTH,
        pad_c: int = 0, ia: bytes = b"", req1: bytes | None = None, vc: bytes = bytes(8),
    ) -> bytes:
        secret = pow(int.from_bytes(yb, "big"), self.private, PRIME).to_bytes(KEY_BYTES, "big")
        sha1 = lambda *parts: hashlib.sha1(b"".join(parts)).digest()  # noqa: E731
        xored = bytes(x ^ y for x, y in zip(sha1(b"req2", info_hash), sha1(b"req3", secret)))
        body = vc + provide.to_bytes(4, "big") + pad_c.to_bytes(2, "big") + bytes(pad_c)
        body += len(ia).to_bytes(2, "big") + ia
        key_a = sha1(b"keyA", secret, info_hash)
        return (req1 if req1 is not None else sha1(b"req1", secret)) + xored + rc4(key_a).update(body)
