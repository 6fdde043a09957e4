"""What TCP listening (``net.tcp``) and the UDP sockets (``net.udp``) share:
IPv6-only sockets made by hand, and reading Twisted's bind errors."""

from __future__ import annotations

import errno
import ipaddress
import socket
from typing import Any

from twisted.internet.error import CannotListenError

__all__ = [
    "UNAVAILABLE", "cannot_listen", "is_ipv6", "is_unspecified", "socket_errno", "v6only_socket",
]

UNAVAILABLE = frozenset(
    code
    for code in (
        getattr(errno, "EADDRNOTAVAIL", None),
        getattr(errno, "EAFNOSUPPORT", None),
        getattr(errno, "EPROTONOSUPPORT", None),
        getattr(errno, "ENETUNREACH", None),
    )
    if code is not None
)
"""Errors meaning this host has no such address or family: skip it."""


def v6only_socket(kind: int, interface: str, port: int, backlog: int | None = None) -> socket.socket:
    """A non-blocking IPv6 socket of ``kind`` (``SOCK_STREAM``: listening with
    ``backlog``; ``SOCK_DGRAM``) bound to ``interface`` and ``port`` with
    ``IPV6_V6ONLY`` set, so it does not take the IPv4 port number too."""
    sock = socket.socket(socket.AF_INET6, kind)
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((interface, port))
        if backlog is not None:
            sock.listen(backlog)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def socket_errno(error: CannotListenError) -> int | None:
    """The errno behind a ``CannotListenError`` (None if there is none)."""
    socket_error = getattr(error, "socketError", None)
    return getattr(socket_error, "errno", None)


def cannot_listen(interface: str, port: int, error: OSError) -> CannotListenError:
    make: Any = CannotListenError  # untyped in Twisted
    result: CannotListenError = make(interface, port, error)
    return result


def is_ipv6(interface: str) -> bool:
    return ":" in interface


def is_unspecified(interface: str) -> bool:
    """``0.0.0.0`` or ``::`` (a scope suffix allowed); False for a non-address."""
    try:
        return ipaddress.ip_address(interface.partition("%")[0]).is_unspecified
    except ValueError:
        return False
