"""Bootstrap nodes: from the settings' ``(host, port)`` to addresses we may send to.

Theory of operation
-------------------
The settings name the routers by host name (``router.bittorrent.com``) or IP
literal.  ``resolve_bootstrap`` turns them into ``(ip, port)`` addresses:

* IP literals are used as they are, names are resolved with the reactor's
  ``nameResolver`` (``IHostnameResolver``, both families, as UDP);
* an address is kept only if ``reachable`` says a socket of ours can send
  to it: of a family we have a socket for, and, when every socket we have
  is bound to a loopback address, a loopback one.  A node bound to
  127.0.0.1 (every test) therefore never resolves a name: it could not
  reach the public routers anyway, and a test must not touch the network;
* a name that fails to resolve is logged and skipped; the result keeps the
  order given, without repeats.

``Reachability`` is built from the sockets' local addresses.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from typing import Any

from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IResolutionReceiver
from twisted.logger import Logger
from twisted.python.failure import Failure

from txbittorrent.core.dht.krpc import Address
from txbittorrent.net.udp import canonical_host
from zope.interface import implementer  # type: ignore[import-untyped]

__all__ = ["Reachability", "resolve_bootstrap", "Resolve", "resolve_with_reactor"]

_log = Logger()

Resolve = Callable[[str, int], "Deferred[list[Address]]"]
"""Resolves a host name and port to IP addresses (both families)."""


class Reachability:
    """Which destinations our sockets can send to (see the module docstring)."""

    def __init__(self, local_hosts: dict[int, str]) -> None:
        """``local_hosts``: the host each family's socket is bound to."""
        self.families = frozenset(local_hosts)
        self.loopback_only = bool(local_hosts) and all(
            _is_loopback(host) for host in local_hosts.values()
        )

    def __call__(self, address: Address) -> bool:
        try:
            ip = ipaddress.ip_address(canonical_host(address[0]))
        except ValueError:
            return False
        if ip.version not in self.families or not 0 < address[1] <= 0xFFFF:
            return False
        return ip.is_loopback or not self.loopback_only


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.partition("%")[0]).is_loopback
    except ValueError:
        return False


def _literal(host: str) -> str | None:
    try:
        return canonical_host(host.strip("[]"))
    except ValueError:
        return None


def _unresolved(failure: Failure, host: str) -> None:
    _log.info("DHT bootstrap node {host} did not resolve: {error}", host=host,
              error=failure.getErrorMessage())


def resolve_bootstrap(
    nodes: Sequence[tuple[str, int]], reachable: Reachability, resolve: Resolve | None
) -> Deferred[list[Address]]:
    """The addresses of ``nodes`` we can reach, names resolved with ``resolve``."""
    slots: list[list[Address]] = []
    waits: list[Deferred[Any]] = []
    for host, port in nodes:
        literal = _literal(host)
        slot: list[Address] = []
        slots.append(slot)
        if literal is not None:
            slot.append((literal, port))
        elif resolve is not None and not reachable.loopback_only:
            d = resolve(host, port)
            d.addCallback(slot.extend)
            d.addErrback(_unresolved, host)
            waits.append(d)

    def gather(_: object) -> list[Address]:
        seen: dict[Address, None] = {}
        for slot in slots:
            for host, port in slot:
                address = (canonical_host(host), port)
                if reachable(address):
                    seen.setdefault(address, None)
        return list(seen)

    if not waits:
        return succeed(gather(None))
    return DeferredList(waits, consumeErrors=True).addCallback(gather)


def resolve_with_reactor(reactor: Any) -> Resolve:
    """A ``Resolve`` over ``reactor.nameResolver`` (``IHostnameResolver``)."""

    def resolve(host: str, port: int) -> Deferred[list[Address]]:
        found: list[Address] = []
        done: Deferred[list[Address]] = Deferred()
        receiver = _Receiver(found, lambda: done.callback(found))
        reactor.nameResolver.resolveHostName(receiver, host, port, transportSemantics="UDP")
        return done

    return resolve


@implementer(IResolutionReceiver)
class _Receiver:
    """An ``IResolutionReceiver`` collecting ``(host, port)`` pairs."""

    def __init__(self, found: list[Address], complete: Callable[[], None]) -> None:
        self._found = found
        self._complete = complete

    def resolutionBegan(self, resolution: Any) -> None:
        pass

    def addressResolved(self, address: Any) -> None:
        self._found.append((address.host, address.port))

    def resolutionComplete(self) -> None:
        self._complete()
