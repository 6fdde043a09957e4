"""Message Stream Encryption (MSE/PE): the obfuscated handshake, sans I/O.

Theory of operation
-------------------
Two state machines, ``MSEInitiator`` (side A, who dialled) and
``MSEResponder`` (side B, who accepted), run the handshake that comes before
the BitTorrent handshake on an encrypted connection::

    1 A->B  Ya, PadA
    2 B->A  Yb, PadB
    3 A->B  HASH('req1', S), HASH('req2', SKEY) xor HASH('req3', S),
            ENCRYPT(VC, crypto_provide, len(PadC), PadC, len(IA)), ENCRYPT(IA)
    4 B->A  ENCRYPT(VC, crypto_select, len(PadD), PadD), ENCRYPT2(payload)
    5 A->B  ENCRYPT2(payload)

Ya and Yb are 768-bit Diffie-Hellman public keys (``PRIME``, generator 2,
160-bit private keys), 96 bytes big-endian; S is the shared secret, the same
width; SKEY is the torrent's info hash; HASH is SHA-1; VC is 8 zero bytes.
ENCRYPT is RC4 keyed with HASH('keyA', S, SKEY) for what A sends and
HASH('keyB', S, SKEY) for what B sends, the first 1024 bytes of each
keystream discarded.  ENCRYPT2 is the method B selected from A's
crypto_provide: ``CRYPTO_RC4`` (the same streams go on) or
``CRYPTO_PLAINTEXT`` (the payload is sent as is; IA was still encrypted).

Each machine takes bytes with ``feed(data)`` and returns a list of events:
``Send(data)`` (write these, in order) and, once, ``Established`` (the chosen
method, the info hash, the plaintext payload bytes that followed the
handshake, and the two ciphers for the rest of the connection, or None for
plaintext).  The initiator's first bytes come from ``start()``.  Anything
that breaks the protocol raises ``MSEHandshakeError``; the caller then drops
the connection.  A machine that failed or finished takes no more bytes.

Bounds (what a hostile peer can make us hold or search): pads of at most
``MAX_PAD`` bytes each way; B finds HASH('req1', S) ending within
``REQ1_SYNC_LIMIT`` bytes of the start of the stream, A finds ENCRYPT(VC)
ending within ``VC_SYNC_LIMIT`` bytes, or fails; IA is at most 65535 bytes
(its length is 16 bits).  Timeouts are the caller's (no clock here).

What it must not know: sockets, clocks, global randomness and the cipher
library (see ``msebase``, which holds the key schedule, the constants and
the events).
"""

from __future__ import annotations

from collections.abc import Callable

from txbittorrent.core.wire.msebase import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    GENERATOR,
    HASH_BYTES,
    KEY_BYTES,
    MAX_INITIAL_PAYLOAD,
    MAX_PAD,
    PRIME,
    REQ1_SYNC_LIMIT,
    VC,
    VC_SYNC_LIMIT,
    DONE,
    Established,
    HandshakeBase,
    MSEEvent,
    RandBytes,
    RC4Factory,
    Send,
    StreamCipher,
    req2_hash,
    select_crypto,
    sha1_of,
    xor20,
)
from txbittorrent.errors import LocalProtocolError, MSEHandshakeError

__all__ = [
    "PRIME",
    "GENERATOR",
    "KEY_BYTES",
    "MAX_PAD",
    "CRYPTO_PLAINTEXT",
    "CRYPTO_RC4",
    "REQ1_SYNC_LIMIT",
    "VC_SYNC_LIMIT",
    "StreamCipher",
    "RandBytes",
    "RC4Factory",
    "Send",
    "Established",
    "MSEEvent",
    "MSEInitiator",
    "MSEResponder",
    "req2_hash",
    "select_crypto",
]


class MSEInitiator(HandshakeBase):
    """Side A: we dialled.  ``crypto_provide`` is the methods we accept
    (``CRYPTO_PLAINTEXT | CRYPTO_RC4`` or one of them); ``initial_payload``
    (IA, at most 65535 bytes) goes encrypted in step 3: our BitTorrent
    handshake, so that it costs no extra round trip."""

    def __init__(
        self,
        info_hash: bytes,
        *,
        crypto_provide: int,
        randbytes: RandBytes,
        new_rc4: RC4Factory,
        initial_payload: bytes = b"",
    ) -> None:
        if len(info_hash) != 20:
            raise ValueError("an info hash is 20 bytes")
        if not crypto_provide or crypto_provide & ~(CRYPTO_PLAINTEXT | CRYPTO_RC4):
            raise ValueError(f"bad crypto_provide {crypto_provide:#x}")
        if len(initial_payload) > MAX_INITIAL_PAYLOAD:
            raise ValueError("the initial payload is at most 65535 bytes")
        super().__init__(randbytes, new_rc4)
        self.info_hash = info_hash
        self.crypto_provide = crypto_provide
        self._initial_payload = initial_payload
        self._state = "new"
        self._encryptor: StreamCipher | None = None
        self._decryptor: StreamCipher | None = None
        self._vc_pattern = b""

    def start(self) -> bytes:
        """Step 1: Ya and PadA, the first bytes to send."""
        if self._state != "new":
            raise LocalProtocolError("start() twice")
        self._state = "await Yb"
        return self.public_key + self._pad()

    def _step(self, events: list[MSEEvent]) -> bool:
        state = self._state
        if state == "new":
            raise LocalProtocolError("feed() before start()")
        if state == "await Yb":
            peer_public = self._take(KEY_BYTES)
            if peer_public is None:
                return False
            self._agree(peer_public)
            skey, secret = self.info_hash, self._secret
            encryptor = self._encryptor = self._keystream(b"keyA", skey)
            self._decryptor = self._keystream(b"keyB", skey)
            self._vc_pattern = self._decryptor.update(VC)
            ia = self._initial_payload
            self._initial_payload = b""
            body = (
                VC
                + self.crypto_provide.to_bytes(4, "big")
                + (0).to_bytes(2, "big")  # len(PadC): PadC is empty
                + len(ia).to_bytes(2, "big")
                + ia
            )
            events.append(
                Send(
                    sha1_of(b"req1", secret)
                    + xor20(req2_hash(skey), sha1_of(b"req3", secret))
                    + encryptor.update(body)
                )
            )
            self._state = "sync VC"
            return True
        decryptor = self._decryptor
        assert decryptor is not None
        if state == "sync VC":
            window = MAX_PAD + len(VC)  # after Yb, within VC_SYNC_LIMIT of the stream
            found = self._buffer.find(self._vc_pattern, 0, window)
            if found < 0:
                if len(self._buffer) >= window:
                    raise MSEHandshakeError(
                        f"no verification constant within {VC_SYNC_LIMIT} bytes"
                    )
                return False
            del self._buffer[: found + len(VC)]
            self._state = "await select"
            return True
        if state == "await select":
            head = self._take(6)
            if head is None:
                return False
            plain = decryptor.update(head)
            select = int.from_bytes(plain[:4], "big")
            if select not in (CRYPTO_PLAINTEXT, CRYPTO_RC4) or not select & self.crypto_provide:
                raise MSEHandshakeError(f"crypto_select {select:#x} is not one we provided")
            self._set_pad(select, plain[4:6], "PadD")
            self._state = "await PadD"
            return True
        if state == "await PadD":
            pad = self._take(self._pad_length)
            if pad is None:
                return False
            decryptor.update(pad)
            self._finish(events)
            return False
        return False

    def _finish(self, events: list[MSEEvent]) -> None:
        self._state = DONE
        rest = self._rest()
        if self._select == CRYPTO_RC4:
            events.append(
                Established(
                    CRYPTO_RC4, self.info_hash,
                    self._decryptor.update(rest) if rest and self._decryptor else b"",
                    self._encryptor, self._decryptor,
                )
            )
        else:
            events.append(Established(CRYPTO_PLAINTEXT, self.info_hash, rest, None, None))
        self._encryptor = self._decryptor = None


class MSEResponder(HandshakeBase):
    """Side B: a peer dialled us with something other than a plain
    BitTorrent handshake.  ``skey_for_req2(hash)`` returns the info hash whose
    HASH('req2', info hash) is ``hash`` (see ``req2_hash``), or None for a
    torrent we do not have; ``allowed`` is the methods we accept and
    ``prefer`` the one we select when the initiator offers several."""

    def __init__(
        self,
        skey_for_req2: Callable[[bytes], bytes | None],
        *,
        allowed: int,
        prefer: int,
        randbytes: RandBytes,
        new_rc4: RC4Factory,
    ) -> None:
        if not allowed or allowed & ~(CRYPTO_PLAINTEXT | CRYPTO_RC4):
            raise ValueError(f"bad allowed methods {allowed:#x}")
        super().__init__(randbytes, new_rc4)
        self._lookup = skey_for_req2
        self.allowed = allowed
        self.prefer = prefer
        self.info_hash: bytes | None = None
        """The torrent the initiator named, once its req2 hash is in."""
        self._state = "await Ya"
        self._req1 = b""
        self._encryptor: StreamCipher | None = None
        self._decryptor: StreamCipher | None = None
        self._ia_length = 0

    def _step(self, events: list[MSEEvent]) -> bool:
        state = self._state
        if state == "await Ya":
            peer_public = self._take(KEY_BYTES)
            if peer_public is None:
                return False
            self._agree(peer_public)
            self._req1 = sha1_of(b"req1", self._secret)
            events.append(Send(self.public_key + self._pad()))
            self._state = "sync req1"
            return True
        if state == "sync req1":
            window = MAX_PAD + HASH_BYTES  # after Ya, within REQ1_SYNC_LIMIT of the stream
            found = self._buffer.find(self._req1, 0, window)
            if found < 0:
                if len(self._buffer) >= window:
                    raise MSEHandshakeError(f"no req1 hash within {REQ1_SYNC_LIMIT} bytes")
                return False
            del self._buffer[: found + HASH_BYTES]
            self._state = "await req2"
            return True
        if state == "await req2":
            xored = self._take(HASH_BYTES)
            if xored is None:
                return False
            skey = self._lookup(xor20(xored, sha1_of(b"req3", self._secret)))
            if skey is None:
                raise MSEHandshakeError("the req2 hash names no torrent of ours")
            self.info_hash = skey
            self._decryptor = self._keystream(b"keyA", skey)
            self._encryptor = self._keystream(b"keyB", skey)
            self._state = "await provide"
            return True
        decryptor = self._decryptor
        assert decryptor is not None
        if state == "await provide":
            head = self._take(len(VC) + 4 + 2)
            if head is None:
                return False
            plain = decryptor.update(head)
            if plain[:8] != VC:
                raise MSEHandshakeError("wrong verification constant")
            provided = int.from_bytes(plain[8:12], "big")
            select = select_crypto(provided, self.allowed, self.prefer)
            if not select:
                raise MSEHandshakeError(
                    f"crypto_provide {provided:#x} has no method we allow ({self.allowed:#x})"
                )
            self._set_pad(select, plain[12:14], "PadC")
            self._state = "await PadC"
            return True
        if state == "await PadC":
            pad = self._take(self._pad_length + 2)
            if pad is None:
                return False
            self._ia_length = int.from_bytes(decryptor.update(pad)[-2:], "big")
            self._state = "await IA"
            return True
        if state == "await IA":
            ia = self._take(self._ia_length)
            if ia is None:
                return False
            self._finish(decryptor.update(ia) if ia else b"", events)
            return False
        return False

    def _finish(self, ia: bytes, events: list[MSEEvent]) -> None:
        encryptor, decryptor = self._encryptor, self._decryptor
        assert encryptor is not None and decryptor is not None and self.info_hash is not None
        self._state = DONE
        select = self._select
        events.append(
            Send(encryptor.update(VC + select.to_bytes(4, "big") + (0).to_bytes(2, "big")))
        )
        rest = self._rest()
        if select == CRYPTO_RC4:
            payload = ia + decryptor.update(rest) if rest else ia
            events.append(Established(CRYPTO_RC4, self.info_hash, payload, encryptor, decryptor))
        else:
            events.append(Established(CRYPTO_PLAINTEXT, self.info_hash, ia + rest, None, None))
        self._encryptor = self._decryptor = None
