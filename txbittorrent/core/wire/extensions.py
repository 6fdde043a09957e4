"""BEP 10 extension names, the ids we give them, and reading a peer's handshake.

Theory of operation
-------------------
BEP 10 lets each side number the extensions it supports as it likes: the
``m`` dictionary of a side's extension handshake maps names
(``b"ut_metadata"``) to the ids *that side* wants to receive them under.  So
every extended message travels under the id its receiver chose:

* a message that arrives carries OUR id: ``ExtensionRegistry.name_of`` turns
  it back into a name;
* a message we send carries the PEER's id, from the ``m`` of its handshake
  (``PeerSession.peer_extensions``): ``ExtensionRegistry.encode`` looks it up.

Mixing the two up is the classic BEP 10 bug: it works between two clients that
happen to pick the same numbers and fails against every other.

``ExtensionRegistry`` owns our side.  Names get ids 1, 2, ... in the order
they are registered, and keep them for the registry's life (so ids never
change under a message in flight).  Each extension may add top-level fields
to our handshake (ut_metadata's ``metadata_size``, once the metadata is
known); ``handshake()`` gives the dictionary ``PeerSession`` takes as
``extension_handshake`` (``m`` plus those fields).

Reading the peer's side: ``parse_extension_handshake`` decodes and checks a
handshake (a violation raises ``RemoteProtocolError``), and
``merge_peer_extensions`` applies its ``m`` to what the peer said before: BEP
10 allows later handshakes, which add names, move them to other ids, or
disable them with id 0.

Pure: no I/O, no clock; ``PeerSession`` uses the two functions and the swarm's
``Extensions`` dispatcher owns a registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from txbittorrent.core.bencoding import Limits, decode, encode as bencode
from txbittorrent.core.wire.codec import encode_extended
from txbittorrent.errors import BencodeError, RemoteProtocolError

__all__ = [
    "HANDSHAKE_ID",
    "MAX_EXTENSIONS",
    "ExtensionRegistry",
    "as_name",
    "encode_payload",
    "parse_extension_handshake",
    "merge_peer_extensions",
]

HANDSHAKE_ID = 0
"""The extended id of the BEP 10 handshake itself (and, in ``m``, "disabled")."""

MAX_EXTENSIONS = 255
"""Ids are one byte and 0 is the handshake: at most 255 extensions."""

_HANDSHAKE_LIMITS = Limits(max_depth=16, max_items=10_000)
"""A peer's handshake is a small dictionary; refuse anything much bigger."""


def as_name(name: bytes | str) -> bytes:
    """An extension name as bytes (``"ut_pex"`` is taken as UTF-8)."""
    if isinstance(name, str):
        return name.encode("utf-8")
    if isinstance(name, bytes):
        return name
    raise TypeError(f"an extension name is bytes or str, not {type(name).__name__}")


def encode_payload(payload: bytes | Mapping[Any, Any]) -> bytes:
    """An extended message's payload: bytes as they are, a mapping bencoded."""
    if isinstance(payload, (bytes, bytearray, memoryview)):
        return bytes(payload)
    return bencode(dict(payload))


class ExtensionRegistry:
    """Our extensions: names, our ids for them, and our handshake fields."""

    __slots__ = ("_ids", "_names", "_fields")

    def __init__(self) -> None:
        self._ids: dict[bytes, int] = {}
        self._names: dict[int, bytes] = {}
        self._fields: dict[bytes, dict[bytes, Any]] = {}

    def register(self, name: bytes | str, fields: Mapping[bytes | str, Any] | None = None) -> int:
        """Add an extension; return the id peers must send it to us under.

        ``fields`` are top-level handshake entries it contributes (see
        ``set_fields``).  A name registered twice is a ``ValueError``."""
        key = as_name(name)
        if not key:
            raise ValueError("an extension name must not be empty")
        if key in self._ids:
            raise ValueError(f"extension {key!r} is already registered")
        if len(self._ids) >= MAX_EXTENSIONS:
            raise ValueError(f"no more than {MAX_EXTENSIONS} extensions fit in one-byte ids")
        local_id = len(self._ids) + 1
        self._fields[key] = self._checked(key, fields or {})
        self._ids[key] = local_id
        self._names[local_id] = key
        return local_id

    @property
    def names(self) -> tuple[bytes, ...]:
        """The registered names, in registration (and id) order."""
        return tuple(self._ids)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, (bytes, str)) and as_name(name) in self._ids

    def __len__(self) -> int:
        return len(self._ids)

    def local_id(self, name: bytes | str) -> int:
        """Our id for ``name`` (``KeyError`` if it is not registered)."""
        return self._ids[as_name(name)]

    def name_of(self, extended_id: int) -> bytes | None:
        """The extension an incoming message with ``extended_id`` belongs to:
        incoming messages carry OUR ids.  None if we never gave out that id."""
        return self._names.get(extended_id)

    def set_fields(self, name: bytes | str, fields: Mapping[bytes | str, Any]) -> None:
        """Replace the handshake fields ``name`` contributes (``metadata_size``
        once the metadata is known, say).  ``m`` is ours, and a field another
        extension already contributes is refused (``ValueError``)."""
        key = as_name(name)
        if key not in self._fields:
            raise KeyError(f"extension {key!r} is not registered")
        self._fields[key] = self._checked(key, fields)

    def _checked(self, key: bytes, fields: Mapping[bytes | str, Any]) -> dict[bytes, Any]:
        normalised = {as_name(k): v for k, v in fields.items()}
        if b"m" in normalised:
            raise ValueError("the handshake's 'm' is the registry's own")
        for other, taken in self._fields.items():
            clash = normalised.keys() & taken.keys() if other != key else set()
            if clash:
                raise ValueError(f"{key!r} and {other!r} both set {sorted(clash)!r}")
        return normalised

    def m(self) -> dict[bytes, int]:
        """The ``m`` dictionary of our handshake: each name and our id for it."""
        return dict(self._ids)

    def handshake(self) -> dict[bytes, Any]:
        """Our extension handshake so far: ``m`` and every extension's fields.
        The swarm adds its own (``v``, ``p``, ``reqq`` ...) and hands the lot
        to ``PeerSession`` as ``extension_handshake``."""
        payload: dict[bytes, Any] = {b"m": self.m()}
        for fields in self._fields.values():
            payload.update(fields)
        return payload

    def encode(
        self,
        name: bytes | str,
        payload: bytes | Mapping[Any, Any],
        peer_extensions: Mapping[bytes, int],
    ) -> bytes | None:
        """The EXTENDED message carrying ``payload`` for ``name`` to a peer whose
        handshake's ``m`` is ``peer_extensions``: under the PEER's id.  None if
        the peer does not support ``name`` (or disabled it).  ``ValueError``
        if we did not register ``name``."""
        key = as_name(name)
        if key not in self._ids:
            raise ValueError(f"extension {key!r} is not registered")
        peer_id = peer_extensions.get(key)
        if not peer_id:
            return None
        return encode_extended(peer_id, encode_payload(payload))


def parse_extension_handshake(data: bytes) -> tuple[dict[bytes, Any], dict[bytes, int]]:
    """A peer's extension handshake, decoded, and its checked ``m``.

    Raises ``RemoteProtocolError`` if it is not a bencoded dictionary, if ``m``
    is not a dictionary, or if an id in ``m`` is not an integer 0..255."""
    try:
        payload = decode(data, limits=_HANDSHAKE_LIMITS)
    except BencodeError as e:
        raise RemoteProtocolError(f"bad extension handshake: {e}") from None
    if not isinstance(payload, dict):
        raise RemoteProtocolError("extension handshake is not a dictionary")
    m = payload.get(b"m", {})
    if not isinstance(m, dict):
        raise RemoteProtocolError("extension handshake 'm' is not a dictionary")
    for name, extended_id in m.items():
        if type(extended_id) is not int or not 0 <= extended_id <= 255:
            raise RemoteProtocolError(f"extension handshake gives {name!r} id {extended_id!r}")
    return payload, m


def merge_peer_extensions(peer_extensions: dict[bytes, int], m: Mapping[bytes, int]) -> None:
    """Apply a (later) handshake's checked ``m`` to what the peer said before:
    names are added or moved to their new id; id 0 disables a name."""
    for name, extended_id in m.items():
        if extended_id:
            peer_extensions[name] = extended_id
        else:
            peer_extensions.pop(name, None)
