"""The sending half of ``PeerSession``: one method per thing we may say.

Theory of operation
-------------------
``SendSide`` is a mixin of ``core.wire.session.PeerSession`` and holds no
state of its own: each method checks the session's state (``LocalProtocolError``
if the call would break the protocol now, ``ValueError`` for a bad argument,
and nothing changes then), updates it, and returns the bytes to write.  The
state, the receiving half and the rules they share are described in
``core.wire.session``.

Ordering rules it enforces:

* nothing before both handshakes, except our own handshake;
* with the fast extension (BEP 6), the bitfield (``send_bitfield``: BITFIELD,
  HAVE_ALL or HAVE_NONE) before any other BEP 3 or BEP 6 message; without it,
  the bitfield only as the first BEP 3 message, if at all.  BEP 10 messages,
  PORT and keep-alives may come before it.
* ``send_bitfield(None)`` says "no piece (yet)" when the piece count may be
  unknown (a magnet link before its metadata): HAVE_NONE to a fast peer,
  nothing to another.  One later ``send_bitfield(have)`` then announces
  ``have`` as HAVE messages, the only way BEP 3 and BEP 6 leave to add pieces
  once a bitfield has gone (or, to a peer that has had no BEP 3 message from
  us at all, as the first BITFIELD after all).  A replacing BITFIELD would be
  shorter, and libtorrent, aria2 and our own receiving side take one, but
  both BEPs say the bitfield comes first and once, so we do not send one.

Before the metadata, BEP 9 leaves what to send to us.  libtorrent sends no
bitfield at all until it has the metadata (its ``on_metadata`` sends it
then), and the metadata exchange needs no BEP 3 message: that is what we
suggest, and then ``send_bitfield(have)`` is an ordinary first bitfield.
Choking, unchoking or showing interest to a fast peer before the metadata
needs ``send_bitfield(None)`` first (HAVE_NONE: Transmission sends it
whenever it has no piece, metadata or not).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Protocol

from txbittorrent.core.bitfield import Bitfield
from txbittorrent.core.wire import codec as wire
from txbittorrent.core.wire.codec import encode, encode_have, encode_reject
from txbittorrent.core.wire.extensions import as_name, encode_payload
from txbittorrent.errors import LocalProtocolError

__all__ = [
    "SendSide",
    "PieceSet",
    "BlockKey",
    "CANCELLED_MEMORY",
    "MAX_PEER_REQUEST_LENGTH",
    "describe",
]

MAX_PEER_REQUEST_LENGTH = 128 * 1024
"""The longest block a peer may request; more is a violation."""

CANCELLED_MEMORY = 4096
"""How many of our cancelled requests are remembered, so that their late
blocks or REJECTs are accepted rather than taken as unrequested."""

BlockKey = tuple[int, int, int]
"""(piece_index, begin, length): how requests are identified on the wire."""

_CHOKE_BYTES = encode(wire.Choke())
_UNCHOKE_BYTES = encode(wire.Unchoke())
_INTERESTED_BYTES = encode(wire.Interested())
_NOT_INTERESTED_BYTES = encode(wire.NotInterested())
_HAVE_ALL_BYTES = encode(wire.HaveAll())
_HAVE_NONE_BYTES = encode(wire.HaveNone())
_KEEP_ALIVE_BYTES = encode(wire.KeepAlive())


class PieceSet(Protocol):
    """What ``send_bitfield`` reads of our pieces: a ``Bitfield``, or a
    read-only view of one (``core.transfer.completion.BitfieldView``)."""

    @property
    def piece_count(self) -> int: ...

    @property
    def count(self) -> int: ...

    @property
    def complete(self) -> bool: ...

    def to_bytes(self) -> bytes: ...

    def __iter__(self) -> Iterator[int]: ...


def describe(key: BlockKey) -> str:
    return f"block {key[1]}+{key[2]} of piece {key[0]}"


class SendSide:
    """The methods that produce bytes to send; see the module docstring."""

    # The state these methods assign is declared here; the rest is
    # PeerSession's (annotated below for the type checker).
    __slots__ = (
        "am_choking", "am_interested", "_handshake_sent", "_bitfield_sent", "_none_announced",
        "_sent_core", "_our_extension_names",
    )
    am_choking: bool
    am_interested: bool
    _handshake_sent: bool
    _bitfield_sent: bool
    _none_announced: bool
    _sent_core: bool
    _our_extension_names: dict[int, bytes]

    piece_count: int | None
    max_block_length: int
    extension_handshake: dict[bytes, Any]
    peer_choking: bool
    peer_have: Bitfield
    peer_id: bytes | None
    fast: bool
    extended: bool
    peer_extensions: dict[bytes, int]
    peer_allowed_fast: set[int]
    our_allowed_fast: set[int]
    _piece_length_of: Callable[[int], int]
    _ours: wire.Handshake
    _pending: dict[BlockKey, None]
    _outstanding: dict[BlockKey, None]
    _cancelled: dict[BlockKey, None]
    _dead: bool

    # -- checks ------------------------------------------------------------------------

    def _check_alive(self) -> None:
        if self._dead:
            raise LocalProtocolError("this session is dead: the peer broke the protocol")

    def _check_ready(self) -> None:
        self._check_alive()
        if not self._handshake_sent or self.peer_id is None:
            raise LocalProtocolError("messages need both handshakes exchanged first")

    def _check_after_bitfield(self) -> None:
        self._check_ready()
        if self.fast and not self._bitfield_sent:
            raise LocalProtocolError(
                "with the fast extension, send_bitfield must come before other messages"
            )

    def _core_send(self) -> None:
        """Checks before sending a BEP 3 message other than the bitfield."""
        self._check_after_bitfield()
        self._sent_core = True

    def _check_piece(self, piece_index: int) -> int:
        """Check a piece index of ours; return the piece count."""
        count = self.piece_count
        if count is None:
            raise LocalProtocolError("the piece count is not known yet (no metadata)")
        if not 0 <= piece_index < count:
            raise ValueError(f"piece index {piece_index} out of range 0..{count - 1}")
        return count

    def _piece_size(self, piece_index: int) -> int:
        self._check_piece(piece_index)
        return self._piece_length_of(piece_index)

    def _require_fast_locally(self, what: str) -> None:
        if not self.fast:
            raise LocalProtocolError(f"{what} needs the fast extension (BEP 6) on both sides")

    def _remember_cancelled(self, key: BlockKey) -> None:
        cancelled = self._cancelled
        cancelled[key] = None
        if len(cancelled) > CANCELLED_MEMORY:
            del cancelled[next(iter(cancelled))]

    # -- the handshake and what the peer may know of us ------------------------------

    def send_handshake(self) -> bytes:
        """Our handshake: first thing on an outgoing connection; on an incoming
        one, once the peer's handshake (or its info hash) has arrived."""
        self._check_alive()
        if self._handshake_sent:
            raise LocalProtocolError("our handshake was already sent")
        self._handshake_sent = True
        return encode(self._ours)

    def send_bitfield(self, have: PieceSet | None) -> bytes:
        """Our pieces, once, before any other BEP 3 message.  With the fast
        extension this is HAVE_ALL or HAVE_NONE where they apply (and must be
        sent); without it, nothing if we have no piece (BEP 3 allows that).

        ``None`` means "no piece yet" and works without a piece count: see the
        module docstring for the one ``send_bitfield(have)`` allowed after it."""
        self._check_ready()
        if have is not None:
            if self.piece_count is None:
                raise LocalProtocolError(
                    "the piece count is not known yet: send_bitfield(None) says we have none"
                )
            if have.piece_count != self.piece_count:
                raise ValueError(f"bitfield of {have.piece_count} pieces, not {self.piece_count}")
        if self._none_announced and have is not None:
            self._none_announced = False
            if self.fast or self._sent_core:
                # The peer was told we have nothing: HAVEs are the way to add.
                if have.count:
                    self._sent_core = True
                return b"".join([encode_have(index) for index in have])
            return self._encode_bitfield(have)  # nothing of BEP 3 went out yet
        if self._bitfield_sent or self._sent_core:
            raise LocalProtocolError("the bitfield may only be sent once, before other messages")
        self._bitfield_sent = True
        if have is None:
            self._none_announced = True
            return _HAVE_NONE_BYTES if self.fast else b""
        return self._encode_bitfield(have)

    def _encode_bitfield(self, have: PieceSet) -> bytes:
        if self.fast:
            if have.complete:
                return _HAVE_ALL_BYTES
            if not have.count:
                return _HAVE_NONE_BYTES
        elif not have.count:
            return b""
        return wire.encode_bitfield(have.to_bytes())

    def send_have(self, piece_index: int) -> bytes:
        self._check_piece(piece_index)
        self._core_send()
        return encode_have(piece_index)

    # -- choking and interest -------------------------------------------------------

    def choke(self) -> bytes:
        """Choke the peer (nothing if already choked).  Its pending requests
        are dropped; with the fast extension each one outside our allowed-fast
        set is answered with a REJECT, after the CHOKE (BEP 6)."""
        self._check_after_bitfield()
        if self.am_choking:
            return b""
        self._sent_core = True
        self.am_choking = True
        if not self.fast:
            self._pending.clear()
            return _CHOKE_BYTES
        rejected = [key for key in self._pending if key[0] not in self.our_allowed_fast]
        for key in rejected:
            del self._pending[key]
        return b"".join([_CHOKE_BYTES, *(encode_reject(*key) for key in rejected)])

    def unchoke(self) -> bytes:
        """Unchoke the peer (nothing if already unchoked)."""
        self._check_after_bitfield()
        if not self.am_choking:
            return b""
        self._sent_core = True
        self.am_choking = False
        return _UNCHOKE_BYTES

    def interested(self) -> bytes:
        """Tell the peer we want pieces it has (nothing if we already said so)."""
        self._check_after_bitfield()
        if self.am_interested:
            return b""
        self._sent_core = True
        self.am_interested = True
        return _INTERESTED_BYTES

    def not_interested(self) -> bytes:
        """Tell the peer we want nothing it has (nothing if we already said so)."""
        self._check_after_bitfield()
        if not self.am_interested:
            return b""
        self._sent_core = True
        self.am_interested = False
        return _NOT_INTERESTED_BYTES

    # -- our requests ---------------------------------------------------------------

    def request(self, piece_index: int, begin: int, length: int) -> bytes:
        """Ask for a block of a piece the peer has, while it does not choke us
        (or the piece is in its allowed-fast set)."""
        size = self._piece_size(piece_index)
        if not 1 <= length <= self.max_block_length or begin < 0:
            raise ValueError(f"block {begin}+{length}: length must be 1..{self.max_block_length}")
        if begin + length > size:
            raise ValueError(f"block {begin}+{length} is past the end of piece {piece_index}")
        self._check_after_bitfield()
        if piece_index not in self.peer_have:
            raise LocalProtocolError(f"the peer does not have piece {piece_index}")
        if self.peer_choking and piece_index not in self.peer_allowed_fast:
            raise LocalProtocolError("the peer is choking us and has not allowed this piece fast")
        key = (piece_index, begin, length)
        if key in self._outstanding:
            raise LocalProtocolError(f"{describe(key)} is already requested")
        self._sent_core = True
        self._outstanding[key] = None
        return wire.encode_request(piece_index, begin, length)

    def request_many(self, blocks: Iterable[BlockKey]) -> bytes:
        """``request`` for each block in turn, as one write: all or nothing
        (if one is refused, none is requested).  The same checks as
        ``request``, with those that depend only on the piece made once per
        run of blocks of the same piece."""
        self._check_after_bitfield()
        outstanding, max_length = self._outstanding, self.max_block_length
        added: list[BlockKey] = []
        last, size = -1, 0
        try:
            for key in blocks:
                piece_index, begin, length = key
                if piece_index != last:
                    size = self._piece_size(piece_index)
                    if piece_index not in self.peer_have:
                        raise LocalProtocolError(f"the peer does not have piece {piece_index}")
                    if self.peer_choking and piece_index not in self.peer_allowed_fast:
                        raise LocalProtocolError(
                            "the peer is choking us and has not allowed this piece fast"
                        )
                    last = piece_index
                if not 1 <= length <= max_length or begin < 0:
                    raise ValueError(f"block {begin}+{length}: length must be 1..{max_length}")
                if begin + length > size:
                    raise ValueError(
                        f"block {begin}+{length} is past the end of piece {piece_index}"
                    )
                if key in outstanding:
                    raise LocalProtocolError(f"{describe(key)} is already requested")
                outstanding[key] = None
                added.append(key)
        except BaseException:
            for key in added:
                del outstanding[key]
            raise
        if not added:
            return b""
        self._sent_core = True
        encode_request = wire.encode_request
        return b"".join([encode_request(*key) for key in added])

    def cancel(self, piece_index: int, begin: int, length: int) -> bytes:
        """Withdraw an outstanding request.  Its block may still arrive; it is
        then dropped silently (as is the REJECT a fast peer answers with)."""
        key = (piece_index, begin, length)
        self._check_after_bitfield()
        if key not in self._outstanding:
            raise LocalProtocolError(f"{describe(key)} is not outstanding")
        self._sent_core = True
        del self._outstanding[key]
        self._remember_cancelled(key)
        return wire.encode_cancel(piece_index, begin, length)

    # -- answering the peer's requests ------------------------------------------------

    def send_piece_header(self, piece_index: int, begin: int, length: int) -> bytes:
        """The PIECE header for a pending peer request, which it removes; the
        caller writes exactly ``length`` bytes of block right after it.  A block
        no longer pending (cancelled, or dropped by a choke) must not be sent:
        check ``pending_peer_requests`` when the disk read completes."""
        key = (piece_index, begin, length)
        self._check_after_bitfield()
        if key not in self._pending:
            raise LocalProtocolError(f"{describe(key)} is not pending")
        self._sent_core = True
        del self._pending[key]
        return wire.encode_piece_header(piece_index, begin, length)

    def reject(self, piece_index: int, begin: int, length: int) -> bytes:
        """Refuse a pending peer request (BEP 6 REJECT)."""
        key = (piece_index, begin, length)
        self._check_after_bitfield()
        self._require_fast_locally("REJECT")
        if key not in self._pending:
            raise LocalProtocolError(f"{describe(key)} is not pending")
        self._sent_core = True
        del self._pending[key]
        return encode_reject(piece_index, begin, length)

    def allowed_fast(self, piece_index: int) -> bytes:
        """Let the peer request blocks of this piece even while we choke it."""
        self._check_piece(piece_index)
        self._check_after_bitfield()
        self._require_fast_locally("ALLOWED_FAST")
        self.our_allowed_fast.add(piece_index)
        return encode(wire.AllowedFast(piece_index))

    def suggest(self, piece_index: int) -> bytes:
        """Suggest the peer download this piece (BEP 6)."""
        self._check_piece(piece_index)
        self._check_after_bitfield()
        self._require_fast_locally("SUGGEST")
        return encode(wire.Suggest(piece_index))

    # -- BEP 10, BEP 5, keep-alives -------------------------------------------------------

    def send_extension_handshake(self) -> bytes:
        """Our BEP 10 handshake, ``extension_handshake`` as it is now (may
        precede the bitfield, as libtorrent's does; may be sent again after
        ``extension_handshake`` changed: BEP 10 allows later handshakes).
        Incoming messages are named after the ``m`` sent last."""
        data = self.send_extended(0, self.extension_handshake)
        m = self.extension_handshake.get(b"m") or {}
        self._our_extension_names = {i: as_name(n) for n, i in m.items() if i}
        return data

    def send_extended(
        self, extension: int | bytes | str, payload: bytes | Mapping[Any, Any]
    ) -> bytes:
        """A BEP 10 message; a mapping payload is bencoded.  ``extension`` is
        the extension's name, sent under the id the PEER gave it
        (``LocalProtocolError`` if the peer does not support it), or an
        extended id to use as is (0 is the handshake)."""
        self._check_ready()
        if not self.extended:
            raise LocalProtocolError("the extension protocol (BEP 10) is not on for this peer")
        if isinstance(extension, int):
            if not 0 <= extension <= 255:
                raise ValueError("extended_id must fit in a byte")
            extended_id = extension
        else:
            name = as_name(extension)
            extended_id = self.peer_extensions.get(name, 0)
            if not extended_id:
                raise LocalProtocolError(f"the peer does not support the extension {name!r}")
        return wire.encode_extended(extended_id, encode_payload(payload))

    def send_port(self, port: int) -> bytes:
        """The UDP port of our DHT node (BEP 5)."""
        self._check_ready()
        if not 0 <= port <= 0xFFFF:
            raise ValueError("port out of range")
        return encode(wire.Port(port))

    def keep_alive(self) -> bytes:
        self._check_ready()
        return _KEEP_ALIVE_BYTES
