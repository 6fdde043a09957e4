"""BEP 10 extensions as plug-ins of a swarm.

Theory of operation
-------------------
A ``PeerExtension`` is one extension protocol (ut_metadata, ut_pex ...): a
name, the fields it adds to our extension handshake, and what it does with a
peer's handshake and messages.  ``Extensions`` is the dispatcher a ``Swarm``
owns; it keeps the plug-ins and a ``core.wire.extensions.ExtensionRegistry``
(their names and our ids for them) and is the plug-ins' only way to the
network:

* ``register(extension)`` before any connection: the name gets our id;
* ``handshake()``: our handshake's ``m`` and every plug-in's fields as they
  are now, for ``PeerSession(extension_handshake=...)`` (the swarm adds
  ``v``, ``p``, ``reqq``);
* ``peer_event(peer, event)`` for ``ExtensionHandshake`` and
  ``ExtensionMessage`` events (or ``handshake_received`` and ``message``
  directly): a handshake goes to every plug-in (the peer may have added,
  moved or disabled any of them), a message to the plug-in it is named after
  (incoming messages carry our ids; the session has named them); a message
  under an id we never gave out is ignored;
* ``send(peer, name, payload)`` for the plug-ins: under the id the PEER gave
  ``name``; False, and nothing sent, if the peer does not support it or is
  gone;
* ``peer_lost(peer)`` and ``tick(now)`` fan out to every plug-in;
* ``stop()``: nothing is sent, dispatched or ticked any more.

A plug-in that raises while handling a peer's handshake or message must not
take the connection's ``dataReceived`` down with it: the dispatch raises
``ExtensionError`` instead (a ``RemoteProtocolError``), naming the peer and
the plug-in, and the swarm closes that peer.  ``RemoteProtocolError`` from a plug-in means the peer broke
the extension's protocol (``ExtensionError.peer_fault``); anything else is a
bug in the plug-in and is also logged with its traceback.  An error in
``peer_lost`` or ``tick`` is logged and the other plug-ins still run.

What it must not know: links, sockets, the clock (``tick`` gets ``now``).
A peer is whatever the swarm passes (its ``PeerState``); plug-ins may read it
(``peer.session.peer_extensions``, ``peer.address``) and use it as a key, and
send only through ``send``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from twisted.logger import Logger

from txbittorrent.core.wire.events import ExtensionHandshake, ExtensionMessage
from txbittorrent.core.wire.extensions import ExtensionRegistry, as_name
from txbittorrent.errors import RemoteProtocolError

if TYPE_CHECKING:
    from txbittorrent.core.wire.session import PeerSession
    from txbittorrent.interfaces import Address, PeerLink

__all__ = ["ExtensionPeer", "PeerExtension", "ExtensionError", "Extensions"]

_log = Logger()


class ExtensionPeer(Protocol):
    """What a plug-in may see of a peer (``swarm.peerstate.PeerState`` is one)."""

    @property
    def session(self) -> PeerSession: ...

    @property
    def link(self) -> PeerLink: ...

    @property
    def address(self) -> Address: ...

    @property
    def connected(self) -> bool:
        """False once the swarm is closing the connection."""


class PeerExtension(Protocol):
    """One BEP 10 extension, as a plug-in of ``Extensions``.  A plug-in is
    given the ``Extensions`` it is registered with when it is built (by the
    swarm), and sends with its ``send``."""

    name: bytes
    """The extension's name in ``m`` (``b"ut_metadata"``)."""

    def handshake_fields(self) -> Mapping[bytes | str, Any]:
        """Top-level fields for our extension handshake (``metadata_size``
        ...); read each time ``Extensions.handshake()`` is, so they may change
        (once the metadata is known, say).  Never ``m``."""

    def on_handshake(self, peer: ExtensionPeer, payload: Mapping[bytes, Any]) -> None:
        """The peer sent an extension handshake (``payload``, decoded); its
        ``m`` is already in ``peer.session.peer_extensions``.  Called for
        every plug-in, whether the peer supports it or not (it may just have
        disabled it).  Raise ``RemoteProtocolError`` for a field that breaks
        the extension's rules: the peer is disconnected."""

    def on_message(self, peer: ExtensionPeer, payload: bytes) -> None:
        """A message of this extension from the peer (raw payload).  Raise
        ``RemoteProtocolError`` if it breaks the extension's rules: the peer is
        disconnected."""

    def on_peer_lost(self, peer: ExtensionPeer) -> None:
        """The connection is gone: forget the peer."""

    def tick(self, now: float) -> None:
        """Periodic work (timeouts, PEX rounds), from the swarm's tick."""


class ExtensionError(RemoteProtocolError):
    """A plug-in failed on what a peer sent: the swarm must close that peer.

    ``peer_fault`` is true when the plug-in found the peer broke the
    extension's protocol (it raised ``RemoteProtocolError``), false when the
    plug-in itself failed (a bug, logged with its traceback).  Either way the
    connection cannot go on, so it is a ``RemoteProtocolError``: a swarm that
    closes peers on those needs nothing more."""

    def __init__(self, peer: ExtensionPeer, name: bytes, reason: str, peer_fault: bool) -> None:
        self.peer = peer
        self.name = name
        self.reason = reason
        self.peer_fault = peer_fault
        super().__init__(f"extension {name.decode('utf-8', 'replace')}: {reason}")


class Extensions:
    """The plug-ins of one swarm and their dispatch; see the module docstring."""

    def __init__(self) -> None:
        self._registry = ExtensionRegistry()
        self._plugins: dict[bytes, PeerExtension] = {}
        self._stopped = False
        self._setup: Callable[[], object] | None = None

    def defer(self, setup: Callable[[], object]) -> None:
        """Have ``setup`` (which registers the plug-ins) run when they are
        first needed: a peer's session is made, or someone asks after a
        plug-in.  A swarm that never sees a peer (most of a big session's)
        then never makes its plug-ins."""
        self._setup = setup

    def _ready(self) -> None:
        setup, self._setup = self._setup, None
        if setup is not None:
            setup()

    @property
    def registry(self) -> ExtensionRegistry:
        self._ready()
        return self._registry

    def register(self, extension: PeerExtension) -> int:
        """Add a plug-in (before any connection is made: sessions built
        earlier announce the handshake of their time); return our id for it."""
        name = as_name(extension.name)
        local_id = self._registry.register(name, extension.handshake_fields())
        self._plugins[name] = extension
        return local_id

    def __getitem__(self, name: bytes | str) -> PeerExtension:
        self._ready()
        return self._plugins[as_name(name)]

    def __contains__(self, name: object) -> bool:
        return name in self.registry

    def handshake(self) -> dict[bytes | str, Any]:
        """Our extension handshake: ``m`` and each plug-in's current fields
        (bytes keys; typed as ``PeerSession``'s ``extension_handshake`` takes
        them, so the swarm can add ``"v"`` and the like to it)."""
        registry = self.registry  # (the plug-ins are made now if they were not)
        for name, plugin in self._plugins.items():
            registry.set_fields(name, plugin.handshake_fields())
        payload: dict[bytes | str, Any] = {}
        payload.update((key, value) for key, value in registry.handshake().items())
        return payload

    # -- for the plug-ins ----------------------------------------------------------

    def supports(self, peer: ExtensionPeer, name: bytes | str) -> bool:
        """Whether the peer's handshake gave ``name`` an id (and did not disable it)."""
        return bool(peer.session.peer_extensions.get(as_name(name)))

    def send(
        self, peer: ExtensionPeer, name: bytes | str, payload: bytes | Mapping[Any, Any]
    ) -> bool:
        """Send a message of extension ``name`` to the peer, under the peer's
        id for it (a mapping payload is bencoded).  False, and nothing sent,
        if the peer does not support ``name`` or its connection is closing."""
        session = peer.session
        if self._stopped or not peer.connected or session.dead or not self.supports(peer, name):
            return False
        peer.link.send(session.send_extended(name, payload))
        return True

    # -- for the swarm -------------------------------------------------------------------

    def peer_event(self, peer: ExtensionPeer, event: object) -> None:
        """Hand an ``ExtensionHandshake`` or ``ExtensionMessage`` to the plug-ins
        (``handshake_received`` or ``message``; other events are ignored)."""
        if isinstance(event, ExtensionMessage):
            self.message(peer, event)
        elif isinstance(event, ExtensionHandshake):
            self.handshake_received(peer, event.payload)

    def handshake_received(self, peer: ExtensionPeer, payload: Mapping[bytes, Any]) -> None:
        """The peer's extension handshake, to every plug-in.  Raises
        ``ExtensionError`` if one fails: close the peer."""
        if self._stopped or not peer.connected:
            return
        self._ready()
        for name, plugin in list(self._plugins.items()):
            self._call(peer, name, plugin.on_handshake, payload)

    def message(self, peer: ExtensionPeer, event: ExtensionMessage) -> None:
        """A message, to the plug-in it is named after (none if the peer used
        an id we never gave out).  Raises ``ExtensionError`` if the plug-in
        fails: close the peer."""
        name = event.name
        if name is None or self._stopped or not peer.connected:
            return
        self._ready()
        plugin = self._plugins.get(name)
        if plugin is not None:
            self._call(peer, name, plugin.on_message, event.payload)

    def _call(
        self,
        peer: ExtensionPeer,
        name: bytes,
        method: Callable[[ExtensionPeer, Any], None],
        payload: Any,
    ) -> None:
        try:
            method(peer, payload)
        except RemoteProtocolError as e:
            raise ExtensionError(peer, name, str(e), peer_fault=True) from e
        except Exception as e:
            _log.failure(
                "extension {name!r} failed in {what} for {peer!r}",
                name=name, what=method.__name__, peer=peer,
            )
            reason = f"{method.__name__} failed: {e!r}"
            raise ExtensionError(peer, name, reason, peer_fault=False) from e

    def peer_lost(self, peer: ExtensionPeer) -> None:
        """Tell every plug-in the peer is gone (an error is logged, not raised)."""
        for name, plugin in list(self._plugins.items()):
            try:
                plugin.on_peer_lost(peer)
            except Exception:
                _log.failure("extension {name!r} failed in on_peer_lost", name=name)

    def tick(self, now: float) -> None:
        """Every plug-in's periodic work (an error is logged, not raised)."""
        if self._stopped:
            return
        for name, plugin in list(self._plugins.items()):
            try:
                plugin.tick(now)
            except Exception:
                _log.failure("extension {name!r} failed in tick", name=name)

    def stop(self) -> None:
        """The swarm stopped: from now on nothing is sent, dispatched or ticked
        (``peer_lost`` still reaches the plug-ins, so they can forget peers)."""
        self._stopped = True
