"""KRPC, the DHT's message format (BEP 5, with BEP 32, 42 and 43): a codec.

Theory of operation
-------------------
A KRPC message is one bencoded dictionary in one UDP datagram.  Its ``t`` is a
transaction id chosen by the querier and echoed in the reply, ``y`` says what
it is: ``q`` a query (method ``q``, arguments ``a``), ``r`` a response (values
``r``) or ``e`` an error (``[code, message]``).  This module turns datagrams
into frozen values and back; it keeps no state and knows nothing of sockets,
routing or time.

Decoding (``decode_message``)
  * bencoding is decoded strictly and within ``KRPC_LIMITS`` (a datagram
    holds at most ``MAX_DATAGRAM`` bytes; nesting, item count and integer width
    are capped), so a hostile datagram costs time linear in its size;
  * every malformed datagram raises ``KRPCError`` and nothing else.  When the
    datagram is a readable query (``y`` is ``q`` and ``t`` is a string),
    the error carries the BEP 5 code and the transaction id, and
    ``KRPCError.reply()`` is the ``ErrorReply`` we owe the sender: 203
    (protocol error) for a missing or mistyped argument, 204 for an unknown
    method.  A bad response or error, or a datagram whose ``t`` is unreadable,
    is dropped without a reply (answering those could start a loop);
  * unknown keys are ignored (BEP 5 asks it, for extensibility); ``v`` (the
    sender's version) is kept when it is a string, ``ro`` (BEP 43) is true
    only for the integer 1, a response's ``ip`` (BEP 42: our address as the
    responder saw it) is kept when it is 6 or 18 bytes long;
  * a response's ``nodes`` (26-byte entries) and ``nodes6`` (38-byte
    entries, BEP 32) must be whole multiples, but entries with port 0 are
    dropped; ``values`` entries of a length other than 6 or 18 bytes, or
    with port 0, are skipped.  A response is not tied to its query here: the
    caller matches ``transaction_id`` to what it asked (``transactions``).

Encoding (``encode_message``) produces the canonical form (sorted keys), so
``encode_message(decode_message(d)) == d`` for every canonical datagram whose
nodes and values all have nonzero ports.  It raises ``ValueError`` for a
message we must not send (an id that is not 20 bytes, a port out of range, a
transaction id longer than ``MAX_TRANSACTION_ID``).

Addresses are ``(host, port)`` tuples with the host in ``ipaddress``'s
canonical spelling, as Twisted's ``datagramReceived`` gives them.
"""

from __future__ import annotations

import enum
import ipaddress
from dataclasses import dataclass
from typing import Any, ClassVar, Union

from txbittorrent.core.bencoding import Limits, decode, encode
from txbittorrent.errors import BencodeError, RemoteProtocolError

__all__ = [
    "Address", "NodeInfo", "ErrorCode", "KRPCError", "PingQuery", "FindNodeQuery",
    "GetPeersQuery", "AnnouncePeerQuery", "Query", "Response", "ErrorReply", "Message",
    "decode_message", "encode_message", "decode_nodes", "encode_nodes", "decode_address",
    "encode_address", "KRPC_LIMITS", "MAX_DATAGRAM", "MAX_TRANSACTION_ID", "ID_LENGTH",
    "WANT_IPV4", "WANT_IPV6",
]

Address = tuple[str, int]
"""A UDP endpoint: a canonical IPv4 or IPv6 address and a port."""

ID_LENGTH = 20
"""Bytes in a node id, an info hash and a find_node target."""
MAX_DATAGRAM = 65_507
"""The largest UDP payload over IPv4; longer input is refused unread."""
MAX_TRANSACTION_ID = 32
"""The longest transaction id we accept or echo (ours are 2 to 4 bytes)."""
KRPC_LIMITS = Limits(max_depth=16, max_items=8192, max_int_digits=20)
"""Bencoding bounds for one datagram: generous for every message we know
(a full ``values`` list of 18-byte peers is about 3,600 items), tight enough
that nothing in a datagram costs more than a few times its size."""

WANT_IPV4 = b"n4"
"""BEP 32 ``want`` entry: reply with ``nodes`` (IPv4)."""
WANT_IPV6 = b"n6"
"""BEP 32 ``want`` entry: reply with ``nodes6`` (IPv6)."""

_NODE4 = ID_LENGTH + 6
_NODE6 = ID_LENGTH + 18


class ErrorCode(enum.IntEnum):
    """The error codes of BEP 5."""

    GENERIC = 201
    SERVER = 202
    PROTOCOL = 203
    METHOD_UNKNOWN = 204


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """A DHT node as ``nodes``/``nodes6`` carry it: its id and UDP address."""

    node_id: bytes
    address: Address


# -- messages ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class _Envelope:
    transaction_id: bytes
    """``t``: chosen by the querier, echoed by the responder."""
    version: bytes | None = None
    """``v``: the sender's client and version (4 bytes by convention), if given."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _QueryBase(_Envelope):
    node_id: bytes
    """``a.id``: the querier's node id."""
    read_only: bool = False
    """``ro`` (BEP 43): the querier answers no queries; keep it out of tables."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PingQuery(_QueryBase):
    """``ping``: are you there?"""

    method: ClassVar[bytes] = b"ping"


@dataclass(frozen=True, slots=True, kw_only=True)
class FindNodeQuery(_QueryBase):
    """``find_node``: the nodes you know closest to ``target``."""

    method: ClassVar[bytes] = b"find_node"
    target: bytes
    want: tuple[bytes, ...] = ()
    """BEP 32: which families of nodes to return (``WANT_IPV4``, ``WANT_IPV6``);
    empty means the family the query came over."""


@dataclass(frozen=True, slots=True, kw_only=True)
class GetPeersQuery(_QueryBase):
    """``get_peers``: peers for ``info_hash``, or closer nodes, and a token."""

    method: ClassVar[bytes] = b"get_peers"
    info_hash: bytes
    want: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class AnnouncePeerQuery(_QueryBase):
    """``announce_peer``: the querier is a peer for ``info_hash`` on ``port``
    (or, with ``implied_port``, on the UDP source port), with the ``token``
    our get_peers reply gave it."""

    method: ClassVar[bytes] = b"announce_peer"
    info_hash: bytes
    port: int
    token: bytes
    implied_port: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Response(_Envelope):
    """``y = r``: a reply to any query; which fields are set depends on the query.

    ``None`` means the key was absent (an empty ``nodes`` is not the same)."""

    node_id: bytes
    """``r.id``: the responder's node id."""
    nodes: tuple[NodeInfo, ...] | None = None
    """``r.nodes``: IPv4 nodes, compact (26 bytes each)."""
    nodes6: tuple[NodeInfo, ...] | None = None
    """``r.nodes6`` (BEP 32): IPv6 nodes, compact (38 bytes each)."""
    values: tuple[Address, ...] | None = None
    """``r.values``: peers for the info hash, compact (6 or 18 bytes each)."""
    token: bytes | None = None
    """``r.token``: to be returned in an announce_peer to this node."""
    ip: Address | None = None
    """``ip`` (BEP 42, top level): the querier's address as the responder saw it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ErrorReply(_Envelope):
    """``y = e``: the query failed; ``code`` is usually an ``ErrorCode``."""

    code: int
    message: str = ""


Query = Union[PingQuery, FindNodeQuery, GetPeersQuery, AnnouncePeerQuery]
Message = Union[PingQuery, FindNodeQuery, GetPeersQuery, AnnouncePeerQuery, Response, ErrorReply]


class KRPCError(RemoteProtocolError):
    """A datagram that is not a KRPC message we accept.

    ``code`` and ``transaction_id`` are set when the datagram was a query we
    could read enough of to answer; then ``reply()`` is the error to send."""

    def __init__(
        self, reason: str, code: int | None = None, transaction_id: bytes | None = None
    ) -> None:
        self.reason = reason
        self.code = code
        self.transaction_id = transaction_id
        super().__init__(f"KRPC: {reason}" + ("" if code is None else f" ({code})"))

    def reply(self) -> ErrorReply | None:
        """The error reply the sender is owed, or ``None`` if it is owed none."""
        if self.code is None or self.transaction_id is None:
            return None
        return ErrorReply(transaction_id=self.transaction_id, code=self.code, message=self.reason)


# -- compact addresses and nodes -----------------------------------------------


def decode_address(raw: bytes) -> Address:
    """A compact address: 4 (or 16) address bytes and a 2-byte big-endian port."""
    if len(raw) == 6:
        host = ".".join(map(str, raw[:4]))
    elif len(raw) == 18:
        host = str(ipaddress.IPv6Address(raw[:16]))
    else:
        raise ValueError(f"a compact address has 6 or 18 bytes, not {len(raw)}")
    return host, int.from_bytes(raw[-2:], "big")


def encode_address(address: Address) -> bytes:
    """The compact form of ``address`` (6 bytes for IPv4, 18 for IPv6)."""
    host, port = address
    if not 0 <= port <= 0xFFFF:
        raise ValueError(f"port {port} out of range")
    return ipaddress.ip_address(host).packed + port.to_bytes(2, "big")


def decode_nodes(data: bytes, *, ipv6: bool = False) -> tuple[NodeInfo, ...]:
    """Nodes from compact form (``nodes``, or ``nodes6`` with ``ipv6``).

    Raises ``ValueError`` if the length is not a multiple of the entry size;
    entries with port 0 are dropped."""
    size = _NODE6 if ipv6 else _NODE4
    if len(data) % size:
        raise ValueError(f"{len(data)} bytes of nodes, not a multiple of {size}")
    out = []
    for offset in range(0, len(data), size):
        host, port = decode_address(data[offset + ID_LENGTH : offset + size])
        if port:
            out.append(NodeInfo(data[offset : offset + ID_LENGTH], (host, port)))
    return tuple(out)


def encode_nodes(nodes: tuple[NodeInfo, ...] | list[NodeInfo], *, ipv6: bool = False) -> bytes:
    """Compact form of ``nodes``, which must all be of one family."""
    size = _NODE6 if ipv6 else _NODE4
    out = bytearray()
    for node in nodes:
        _check_id(node.node_id, "node id")
        entry = node.node_id + encode_address(node.address)
        if len(entry) != size:
            raise ValueError(f"{node.address[0]} is not an IPv{6 if ipv6 else 4} address")
        out += entry
    return bytes(out)


# -- decoding ------------------------------------------------------------------


def decode_message(data: bytes) -> Message:
    """The message in one datagram; ``KRPCError`` for anything else (see above)."""
    if len(data) > MAX_DATAGRAM:
        raise KRPCError(f"datagram of {len(data)} bytes")
    try:
        top = decode(data, limits=KRPC_LIMITS)
    except BencodeError as e:
        raise KRPCError(str(e)) from None
    if not isinstance(top, dict):
        raise KRPCError("not a dictionary")
    tid = top.get(b"t")
    if not isinstance(tid, bytes) or len(tid) > MAX_TRANSACTION_ID:
        raise KRPCError("no usable transaction id")
    kind = top.get(b"y")
    version = top.get(b"v")
    version = version if isinstance(version, bytes) else None
    if kind == b"q":
        try:
            return _query(top, tid, version)
        except KRPCError:
            raise
        except (ValueError, TypeError) as e:
            raise KRPCError(f"bad query: {e}", ErrorCode.PROTOCOL, tid) from None
    try:
        if kind == b"r":
            return _response(top, tid, version)
        if kind == b"e":
            return _error(top, tid, version)
    except (ValueError, TypeError) as e:
        raise KRPCError(f"bad {'response' if kind == b'r' else 'error'}: {e}") from None
    raise KRPCError(f"unknown message type {kind!r:.40}")


def _bytes(args: dict[bytes, Any], key: bytes, length: int | None = None) -> bytes:
    value = args.get(key)
    if not isinstance(value, bytes):
        raise ValueError(f"{key.decode()} missing or not a string")
    if length is not None and len(value) != length:
        raise ValueError(f"{key.decode()} of {len(value)} bytes, not {length}")
    return value


def _want(args: dict[bytes, Any]) -> tuple[bytes, ...]:
    want = args.get(b"want", [])
    if not isinstance(want, list) or not all(isinstance(w, bytes) for w in want):
        raise ValueError("want is not a list of strings")
    return tuple(want)


def _query(top: dict[bytes, Any], tid: bytes, version: bytes | None) -> Query:
    method = top.get(b"q")
    args = top.get(b"a")
    if not isinstance(method, bytes):
        raise ValueError("q missing or not a string")
    if not isinstance(args, dict):
        raise ValueError("a missing or not a dictionary")
    common: dict[str, Any] = {
        "transaction_id": tid,
        "version": version,
        "node_id": _bytes(args, b"id", ID_LENGTH),
        "read_only": top.get(b"ro") == 1,
    }
    if method == b"ping":
        return PingQuery(**common)
    if method == b"find_node":
        return FindNodeQuery(target=_bytes(args, b"target", ID_LENGTH), want=_want(args), **common)
    if method == b"get_peers":
        info_hash = _bytes(args, b"info_hash", ID_LENGTH)
        return GetPeersQuery(info_hash=info_hash, want=_want(args), **common)
    if method == b"announce_peer":
        implied = args.get(b"implied_port", 0)
        if not isinstance(implied, int):
            raise ValueError("implied_port is not an integer")
        port = args.get(b"port", 0 if implied else None)
        if not isinstance(port, int) or not 0 <= port <= 0xFFFF or (port == 0 and not implied):
            raise ValueError("port missing or out of range")
        return AnnouncePeerQuery(
            info_hash=_bytes(args, b"info_hash", ID_LENGTH),
            port=port,
            token=_bytes(args, b"token"),
            implied_port=implied != 0,
            **common,
        )
    raise KRPCError(f"unknown method {method!r:.40}", ErrorCode.METHOD_UNKNOWN, tid)


def _optional_nodes(r: dict[bytes, Any], key: bytes, ipv6: bool) -> tuple[NodeInfo, ...] | None:
    if key not in r:
        return None
    return decode_nodes(_bytes(r, key), ipv6=ipv6)


def _response(top: dict[bytes, Any], tid: bytes, version: bytes | None) -> Response:
    r = top.get(b"r")
    if not isinstance(r, dict):
        raise ValueError("r missing or not a dictionary")
    values: tuple[Address, ...] | None = None
    if b"values" in r:
        raw = r[b"values"]
        if not isinstance(raw, list):
            raise ValueError("values is not a list")
        found = []
        for entry in raw:
            if isinstance(entry, bytes) and len(entry) in (6, 18):
                address = decode_address(entry)
                if address[1]:
                    found.append(address)
        values = tuple(found)
    ip = top.get(b"ip")
    return Response(
        transaction_id=tid,
        version=version,
        node_id=_bytes(r, b"id", ID_LENGTH),
        nodes=_optional_nodes(r, b"nodes", False),
        nodes6=_optional_nodes(r, b"nodes6", True),
        values=values,
        token=_bytes(r, b"token") if b"token" in r else None,
        ip=decode_address(ip) if isinstance(ip, bytes) and len(ip) in (6, 18) else None,
    )


def _error(top: dict[bytes, Any], tid: bytes, version: bytes | None) -> ErrorReply:
    e = top.get(b"e")
    if not isinstance(e, list) or not e or not isinstance(e[0], int):
        raise ValueError("e is not a list starting with a code")
    message = e[1] if len(e) > 1 and isinstance(e[1], bytes) else b""
    return ErrorReply(
        transaction_id=tid,
        version=version,
        code=e[0],
        message=message.decode("utf-8", "replace"),
    )


# -- encoding ------------------------------------------------------------------


def _check_id(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != ID_LENGTH:
        raise ValueError(f"{what} must be {ID_LENGTH} bytes")


def encode_message(message: Message) -> bytes:
    """The canonical datagram for ``message``; ``ValueError`` if it is invalid."""
    if not isinstance(message.transaction_id, bytes):
        raise ValueError("transaction id must be bytes")
    if len(message.transaction_id) > MAX_TRANSACTION_ID:
        raise ValueError(f"transaction id longer than {MAX_TRANSACTION_ID} bytes")
    top: dict[bytes, Any] = {b"t": message.transaction_id}
    if message.version is not None:
        top[b"v"] = message.version
    if isinstance(message, Response):
        top[b"y"] = b"r"
        top[b"r"] = _response_dict(message)
        if message.ip is not None:
            top[b"ip"] = encode_address(message.ip)
    elif isinstance(message, ErrorReply):
        top[b"y"] = b"e"
        top[b"e"] = [message.code, message.message.encode("utf-8")]
    else:
        top[b"y"] = b"q"
        top[b"q"] = message.method
        top[b"a"] = _arguments(message)
        if message.read_only:
            top[b"ro"] = 1
    return encode(top)


def _arguments(query: Query) -> dict[bytes, Any]:
    _check_id(query.node_id, "node id")
    args: dict[bytes, Any] = {b"id": query.node_id}
    if isinstance(query, FindNodeQuery):
        _check_id(query.target, "target")
        args[b"target"] = query.target
    elif isinstance(query, (GetPeersQuery, AnnouncePeerQuery)):
        _check_id(query.info_hash, "info hash")
        args[b"info_hash"] = query.info_hash
    if isinstance(query, (FindNodeQuery, GetPeersQuery)) and query.want:
        args[b"want"] = list(query.want)
    if isinstance(query, AnnouncePeerQuery):
        if not 0 <= query.port <= 0xFFFF or (query.port == 0 and not query.implied_port):
            raise ValueError(f"port {query.port} out of range")
        args[b"port"] = query.port
        args[b"token"] = query.token
        if query.implied_port:
            args[b"implied_port"] = 1
    return args


def _response_dict(response: Response) -> dict[bytes, Any]:
    _check_id(response.node_id, "node id")
    r: dict[bytes, Any] = {b"id": response.node_id}
    if response.nodes is not None:
        r[b"nodes"] = encode_nodes(response.nodes)
    if response.nodes6 is not None:
        r[b"nodes6"] = encode_nodes(response.nodes6, ipv6=True)
    if response.values is not None:
        r[b"values"] = [encode_address(a) for a in response.values]
    if response.token is not None:
        r[b"token"] = response.token
    return r
