"""MSE/PE under a peer link: the Twisted adapter over ``core.wire.mse``.

Theory of operation
-------------------
An ``MSEPeerProtocol`` is a ``PeerProtocol`` whose bytes go through the
encrypted handshake first and, after it, through RC4 when that was chosen.
``PeerProtocol`` itself is unchanged: this subclass decrypts in
``dataReceived`` before handing the bytes on, and gives the link, as its
transport, a ``_CipherTransport`` that encrypts every write (one ``update``
of OpenSSL's RC4 per read or write, no per-byte Python) and forwards
everything else (producer methods, ``getPeer``, ``bufferSize``,
``getHandle``, ``setTcpNoDelay``...) to the real transport.  RC4 keeps
sizes, so the link's byte counts and the transport's backpressure stay
right.  A subclass rather than a protocol wrapping the link
(``ProtocolWrapper``): the link stays the connection's protocol, so the
session's registry, its tests and the swarm see one object, and the
plaintext data path has no extra layer (after a plaintext handshake the
link writes to the socket directly).

Like ``twisted.web._http2`` over h2, the handshake part only feeds the bytes
to the sans-I/O machine and writes what comes back.  The link is connected,
counted and timed from the TCP connect on, so its handshake timeout covers
the encrypted handshake too, and ``close``/``abort`` work throughout.  What
the link writes before the handshake is done is held back; an outgoing
link's first write (its BitTorrent handshake) travels as the handshake's
initial payload (IA), costing no round trip.

Outgoing (``make_outgoing``): we are side A, offering ``policy(mode)``'s
methods (``peer.msepolicy``, with ``Req2Map`` and the setting's values).
Incoming (``make_incoming``): the first bytes decide.  A plain handshake starts
with ``\\x13BitTorrent protocol``: while the bytes so far agree with that
(at most 20 bytes) we wait, then pass them on untouched, unless plaintext is
refused (encryption forced).  Anything else goes to the responder, which
finds the torrent with ``skey_for_req2``; the link's router then accepts
only a BitTorrent handshake naming that same torrent (``mse_info_hash``).

Every read during the handshake is acknowledged at once (``TCP_QUICKACK``
on Linux): libtorrent writes its step 4 and its BitTorrent handshake apart,
and with Nagle on its side and our delayed ACK the second waited ~40 ms.

A handshake that breaks the protocol (``MSEHandshakeError``) closes the link
with the reason, as any protocol violation does.  MSE handshake bytes are
counted in ``bytes_received`` (raw bytes from the socket, as for a plain
link) but not charged to the download limits.

Fallback (``SessionConfig.encryption`` "enabled"): an outgoing link made
with a ``fallback`` callback asks it, when the peer drops the connection
before a sign of life in the method we tried (a plain dial: not one byte
back; an encrypted one: not even its DH key, MSE step 2), whether to try
the other method next; the callback (the session's memory of such
addresses) returns the ``connect_failed`` reason, which then starts with
``msepolicy.ENCRYPTION_RETRY`` when the swarm should redial soon rather
than after its backoff.  An encrypted dial answered with a plain BitTorrent
handshake (a peer without MSE that writes first) is closed and reported
the same way.
``PlainPeerProtocol`` is the plain dial with that hook and nothing else (no
extra layer on its data path).
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterable
from typing import Any

from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure

from txbittorrent.core.wire.mse import (
    CRYPTO_PLAINTEXT,
    Established,
    MSEInitiator,
    MSEResponder,
    RandBytes,
    KEY_BYTES,
    RC4Factory,
    StreamCipher,
)
from txbittorrent.errors import MSEHandshakeError
from txbittorrent.interfaces import Address, PeerHost
from txbittorrent.peer import mse_crypto
from txbittorrent.peer.links import LinkGroup
from txbittorrent.peer.msepolicy import policy
from txbittorrent.peer.protocol import PeerProtocol

__all__ = ["Fallback", "MSEPeerProtocol", "PLAIN_PREFIX", "PlainPeerProtocol"]

PLAIN_PREFIX = b"\x13BitTorrent protocol"
"""How a plain BitTorrent handshake starts."""

Fallback = Callable[[PeerProtocol, bool], "str | None"]
"""``(link, encrypted) -> connect_failed reason or None``: called by an
outgoing link the peer dropped before a sign of life, ``encrypted`` saying
which method it tried; None keeps the link's own reason."""

_MAX_INITIAL_PAYLOAD = 0xFFFF

_TCP_QUICKACK: int | None = getattr(socket, "TCP_QUICKACK", None)
"""Linux's option to send the pending ACK now (see ``_ack_now``)."""


def _dropped_early(link: PeerProtocol, encrypted: bool, reason: Failure) -> None:
    """In an outgoing link's ``connectionLost``: if the peer dropped it before
    a sign of life (see the module docstring), ask the link's fallback for
    the reason its host will hear."""
    fallback: Fallback | None = getattr(link, "_fallback", None)
    if fallback is None or link.closing or link.accepted or not link.outgoing:
        return
    if link.bytes_received >= (KEY_BYTES if encrypted else 1):
        return
    why = fallback(link, encrypted)
    if why is not None:
        link._close_reason = f"{why} (connection lost: {reason.getErrorMessage()})"


class PlainPeerProtocol(PeerProtocol):
    """A plain outgoing link that tells ``fallback`` when the peer drops it
    before answering (a peer that refuses plaintext does that)."""

    def __init__(self, group: LinkGroup, *, fallback: Fallback | None = None,
                 **options: Any) -> None:
        super().__init__(group, **options)
        self._fallback = fallback

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        _dropped_early(self, False, reason)
        super().connectionLost(reason)


class _CipherTransport:
    """The transport an encrypted link writes to: holds writes back until
    the handshake is done, then encrypts them; forwards everything else."""

    def __init__(self, real: Any) -> None:
        self.real = real
        self.encryptor: StreamCipher | None = None
        self.pending: list[bytes] | None = []

    def write(self, data: bytes) -> None:
        pending = self.pending
        if pending is not None:
            pending.append(bytes(data))
            return
        encryptor = self.encryptor
        self.real.write(encryptor.update(data) if encryptor is not None else data)

    def writeSequence(self, data: Iterable[bytes]) -> None:
        pending = self.pending
        if pending is not None:
            pending.extend(bytes(chunk) for chunk in data)
            return
        encryptor = self.encryptor
        if encryptor is None:
            self.real.writeSequence(data)
        else:
            self.real.writeSequence([encryptor.update(chunk) for chunk in data])

    @property
    def bufferSize(self) -> int:
        return int(self.real.bufferSize)

    @bufferSize.setter
    def bufferSize(self, size: int) -> None:
        self.real.bufferSize = size

    def __getattr__(self, name: str) -> Any:
        # Reached only for names not defined here (getHandle is absent when
        # the real transport has none, as tune_socket expects).
        if name.startswith("__") or name == "real":
            raise AttributeError(name)
        return getattr(self.real, name)


class MSEPeerProtocol(PeerProtocol):
    """A link that runs MSE/PE under its BitTorrent stream (see the module
    docstring).  Make one with ``make_outgoing`` or ``make_incoming``."""

    def __init__(
        self,
        group: LinkGroup,
        *,
        new_initiator: Callable[[bytes], MSEInitiator] | None = None,
        new_responder: Callable[[], MSEResponder] | None = None,
        accept_plain: bool = True,
        router: Callable[[bytes], PeerHost | None] | None = None,
        fallback: Fallback | None = None,
        **options: Any,
    ) -> None:
        if (new_initiator is None) == (new_responder is None):
            raise ValueError("give an initiator (outgoing) or a responder (incoming)")
        if router is not None:
            named_router = router

            def route(info_hash: bytes) -> PeerHost | None:
                named = self.mse_info_hash
                return named_router(info_hash) if named in (None, info_hash) else None

            options["router"] = route
        super().__init__(group, **options)
        self.crypto: int | None = None
        """``CRYPTO_PLAINTEXT`` or ``CRYPTO_RC4`` once the stream is set
        (a plain incoming connection counts as ``CRYPTO_PLAINTEXT``)."""
        self.encrypted_handshake = False
        """Whether the connection went through the MSE handshake."""
        self.mse_info_hash: bytes | None = None
        """The torrent an incoming peer named in its encrypted handshake."""
        self._new_initiator = new_initiator
        self._fallback = fallback
        self._reply_head: bytes | None = (
            b"" if fallback is not None and new_initiator is not None else None
        )
        self._new_responder = new_responder
        self._accept_plain = accept_plain
        self._handshake: MSEInitiator | MSEResponder | None = None
        self._mse_live = True
        self._sniffed = b""
        self._decryptor: StreamCipher | None = None
        self._cipher: _CipherTransport | None = None

    @classmethod
    def make_outgoing(
        cls,
        group: LinkGroup,
        host: PeerHost,
        address: Address,
        mode: str,
        *,
        randbytes: RandBytes = mse_crypto.randbytes,
        new_rc4: RC4Factory = mse_crypto.new_rc4,
        **options: Any,
    ) -> MSEPeerProtocol:
        """A link we dial to ``address`` for ``host``, encrypted per ``mode``
        (``fallback``, among ``options``: see the module docstring)."""
        provide, _, _ = policy(mode)
        info_hash = host.info_hash

        def new_initiator(initial_payload: bytes) -> MSEInitiator:
            return MSEInitiator(
                info_hash, crypto_provide=provide, randbytes=randbytes, new_rc4=new_rc4,
                initial_payload=initial_payload,
            )

        return cls(group, new_initiator=new_initiator, host=host, address=address, **options)

    @classmethod
    def make_incoming(
        cls,
        group: LinkGroup,
        router: Callable[[bytes], PeerHost | None],
        skey_for_req2: Callable[[bytes], bytes | None],
        mode: str,
        *,
        randbytes: RandBytes = mse_crypto.randbytes,
        new_rc4: RC4Factory = mse_crypto.new_rc4,
        **options: Any,
    ) -> MSEPeerProtocol:
        """A link for an accepted connection, plain or encrypted per ``mode``."""
        allowed, prefer, accept_plain = policy(mode)

        def new_responder() -> MSEResponder:
            return MSEResponder(
                skey_for_req2, allowed=allowed, prefer=prefer, randbytes=randbytes,
                new_rc4=new_rc4,
            )

        return cls(
            group, new_responder=new_responder, accept_plain=accept_plain, router=router,
            **options,
        )

    def __repr__(self) -> str:
        return "<MSE" + super().__repr__()[1:]

    # -- Twisted Protocol ----------------------------------------------------------

    def connectionMade(self) -> None:
        real: Any = self.transport
        cipher = self._cipher = _CipherTransport(real)
        self.transport = cipher  # type: ignore[assignment]
        try:
            super().connectionMade()
        finally:
            self.transport = real
        new_initiator = self._new_initiator
        if new_initiator is None or self._closing:
            return
        held = b"".join(cipher.pending or ())
        cipher.pending = [held[_MAX_INITIAL_PAYLOAD:]] if len(held) > _MAX_INITIAL_PAYLOAD else []
        initiator = self._handshake = new_initiator(held[:_MAX_INITIAL_PAYLOAD])
        self.encrypted_handshake = True
        real.write(initiator.start())

    def dataReceived(self, data: bytes) -> None:
        if not self._mse_live:
            decryptor = self._decryptor
            super().dataReceived(decryptor.update(data) if decryptor is not None else data)
            return
        if self._closing:
            return
        head = self._reply_head
        if head is not None:  # an outgoing link with a fallback: a plain reply?
            head = self._reply_head = (head + data)[: len(PLAIN_PREFIX)]
            if head != PLAIN_PREFIX[: len(head)]:
                self._reply_head = None
            elif len(head) == len(PLAIN_PREFIX):
                self._plain_reply()
                return
        self.bytes_received += len(data)
        handshake = self._handshake
        if handshake is None:
            handshake = self._sniff(data)
            if handshake is None:
                return
            data, self._sniffed = self._sniffed, b""
        try:
            events = handshake.feed(data)
        except MSEHandshakeError as e:
            self.close(f"encryption handshake failed: {e}")
            return
        cipher = self._cipher
        assert cipher is not None
        for event in events:
            if isinstance(event, Established):
                self._establish(event)
            else:
                cipher.real.write(event.data)
        self._ack_now()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        if self._mse_live:
            _dropped_early(self, True, reason)
        self._handshake = None
        self._decryptor = None
        super().connectionLost(reason)

    # -- internals ---------------------------------------------------------------------

    def _ack_now(self) -> None:
        """Acknowledge what was just read at once (``TCP_QUICKACK``, where
        there is one).  During the handshake we are often silent while the
        peer writes twice in a row (libtorrent writes step 4 and then its
        BitTorrent handshake): with Nagle on its side and our delayed ACK,
        the second write would wait about 40 ms for our ACK."""
        if _TCP_QUICKACK is None or self._cipher is None:
            return
        get_handle = getattr(self._cipher.real, "getHandle", None)
        handle = get_handle() if get_handle is not None else None
        if isinstance(handle, socket.socket):
            try:
                handle.setsockopt(socket.IPPROTO_TCP, _TCP_QUICKACK, 1)
            except OSError:
                pass

    def _plain_reply(self) -> None:
        """Our encrypted dial was answered with a plain BitTorrent handshake
        (a peer without MSE that writes first): tell the fallback, and close."""
        self._reply_head = None
        fallback = self._fallback
        why = fallback(self, True) if fallback is not None else None
        self.close(why or "a plain handshake in reply to our encrypted one")

    def _sniff(self, data: bytes) -> MSEResponder | None:
        """Plain or encrypted, from an incoming connection's first bytes:
        the responder, or None (plain, or not known yet)."""
        sniffed = self._sniffed = self._sniffed + data
        size = min(len(sniffed), len(PLAIN_PREFIX))
        if sniffed[:size] == PLAIN_PREFIX[:size]:
            if size < len(PLAIN_PREFIX):
                return None
            self._sniffed = b""
            if not self._accept_plain:
                self.close("plaintext connection refused (encryption is forced)")
                return None
            self._establish(Established(CRYPTO_PLAINTEXT, b"", sniffed, None, None))
            return None
        assert self._new_responder is not None
        self.encrypted_handshake = True
        responder = self._handshake = self._new_responder()
        return responder

    def _establish(self, event: Established) -> None:
        self._mse_live = False
        self.crypto = event.crypto
        if self._new_responder is not None and event.info_hash:
            self.mse_info_hash = event.info_hash
        self._handshake = None
        cipher = self._cipher
        assert cipher is not None
        pending, cipher.pending = cipher.pending or [], None
        if event.encryptor is None:
            self._transport = cipher.real  # plaintext: straight to the socket from now on
        else:
            cipher.encryptor = event.encryptor
            self._decryptor = event.decryptor
        if pending and not self._closing:
            self._transport.writeSequence(pending)
        if event.payload and not self._closing:
            self.bytes_received -= len(event.payload)  # counted as handshake bytes
            super().dataReceived(event.payload)
