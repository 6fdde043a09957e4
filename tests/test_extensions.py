"""Tests for BEP 10 extensions: txbittorrent.core.wire.extensions (the
registry), PeerSession naming extension messages, and
txbittorrent.swarm.extensions (the plug-in dispatcher).

The two sides of a connection number their extensions differently on purpose
(ours: ut_metadata 1, ut_pex 2; the remote's: ut_pex 3, ut_metadata 7), so a
message sent under the wrong side's id would reach the wrong extension.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import decode, encode as bencode
from txbittorrent.core.layout import Layout
from txbittorrent.core.wire.codec import Extended, encode, encode_extended
from txbittorrent.core.wire.events import ExtensionHandshake, ExtensionMessage, PeerEvent
from txbittorrent.core.wire.extensions import (
    MAX_EXTENSIONS,
    ExtensionRegistry,
    merge_peer_extensions,
    parse_extension_handshake,
)
from txbittorrent.core.wire.session import MAX_PEER_REQUESTS, PeerSession
from txbittorrent.errors import LocalProtocolError, RemoteProtocolError
from txbittorrent.swarm.extensions import ExtensionError, ExtensionPeer, Extensions

INFO_HASH = b"\x22" * 20
OUR_ID = b"-TX0001-ourselves000"
REMOTE_ID = b"-LT2010-remote000001"
LAYOUT = Layout([4 * 32 * 1024], 32 * 1024)
REMOTE_M = {b"ut_pex": 3, b"ut_metadata": 7}
"""The remote's numbering: deliberately unlike ours."""


def two_registries() -> ExtensionRegistry:
    """Ours: ut_metadata (contributing metadata_size) then ut_pex."""
    registry = ExtensionRegistry()
    registry.register(b"ut_metadata", {b"metadata_size": 31235})
    registry.register("ut_pex")
    return registry


class ExtensionRegistryTests(SynchronousTestCase):
    """Names, our ids, the handshake and the direction of ids."""

    def test_ids_in_registration_order(self) -> None:
        """Names get ids 1..n in order; m maps each to its id."""
        registry = two_registries()
        self.assertEqual(registry.names, (b"ut_metadata", b"ut_pex"))
        self.assertEqual((registry.local_id(b"ut_metadata"), registry.local_id("ut_pex")), (1, 2))
        self.assertEqual(registry.m(), {b"ut_metadata": 1, b"ut_pex": 2})
        self.assertEqual(len(registry), 2)
        self.assertIn(b"ut_pex", registry)
        self.assertNotIn(b"lt_donthave", registry)

    def test_handshake_fields(self) -> None:
        """The handshake is m plus every extension's fields, which may change later."""
        registry = two_registries()
        self.assertEqual(
            registry.handshake(),
            {b"m": {b"ut_metadata": 1, b"ut_pex": 2}, b"metadata_size": 31235},
        )
        registry.set_fields(b"ut_metadata", {})
        registry.set_fields(b"ut_pex", {"pex_flags": 1})
        self.assertEqual(
            registry.handshake(), {b"m": {b"ut_metadata": 1, b"ut_pex": 2}, b"pex_flags": 1}
        )

    def test_field_clashes_refused(self) -> None:
        """A field another extension sets, or m itself, is refused and changes nothing."""
        registry = two_registries()
        self.assertRaises(ValueError, registry.set_fields, b"ut_pex", {b"metadata_size": 1})
        self.assertRaises(ValueError, registry.set_fields, b"ut_pex", {b"m": {}})
        self.assertRaises(ValueError, registry.register, b"lt_donthave", {"metadata_size": 2})
        self.assertNotIn(b"lt_donthave", registry)
        self.assertRaises(KeyError, registry.set_fields, b"lt_donthave", {})
        self.assertEqual(registry.handshake()[b"metadata_size"], 31235)

    def test_register_checks(self) -> None:
        """A name twice, an empty name, or more than 255 extensions are refused."""
        registry = two_registries()
        self.assertRaises(ValueError, registry.register, "ut_metadata")
        self.assertRaises(ValueError, registry.register, b"")
        self.assertRaises(TypeError, registry.register, 3)
        big = ExtensionRegistry()
        for n in range(MAX_EXTENSIONS):
            big.register(b"x%d" % n)
        self.assertEqual(big.local_id(b"x254"), 255)
        self.assertRaises(ValueError, big.register, b"one_too_many")

    def test_incoming_ids_are_ours(self) -> None:
        """An incoming message's id is looked up in OUR numbering."""
        registry = two_registries()
        self.assertEqual(registry.name_of(1), b"ut_metadata")
        self.assertEqual(registry.name_of(2), b"ut_pex")
        self.assertIsNone(registry.name_of(7))  # the remote's id for ut_metadata: not ours
        self.assertIsNone(registry.name_of(0))

    def test_outgoing_ids_are_the_peers(self) -> None:
        """An outgoing message carries the PEER's id for the extension."""
        registry = two_registries()
        data = registry.encode(b"ut_metadata", {"msg_type": 0, "piece": 0}, REMOTE_M)
        self.assertEqual(data, encode_extended(7, b"d8:msg_typei0e5:piecei0ee"))
        self.assertEqual(registry.encode("ut_pex", b"raw", REMOTE_M), encode_extended(3, b"raw"))

    def test_outgoing_unsupported(self) -> None:
        """None when the peer lacks the extension; ValueError when we never registered it."""
        registry = two_registries()
        self.assertIsNone(registry.encode(b"ut_pex", b"", {b"ut_metadata": 7}))
        self.assertIsNone(registry.encode(b"ut_pex", b"", {}))
        self.assertRaises(ValueError, registry.encode, b"lt_donthave", b"", REMOTE_M)

    def test_peer_disables_with_id_zero(self) -> None:
        """A later handshake's id 0 disables an extension; other names move or stay."""
        registry = two_registries()
        peer_extensions: dict[bytes, int] = {}
        merge_peer_extensions(peer_extensions, REMOTE_M)
        merge_peer_extensions(peer_extensions, {b"ut_pex": 0, b"ut_metadata": 9})
        self.assertEqual(peer_extensions, {b"ut_metadata": 9})
        self.assertIsNone(registry.encode(b"ut_pex", b"", peer_extensions))
        self.assertEqual(registry.encode(b"ut_metadata", b"x", peer_extensions),
                         encode_extended(9, b"x"))

    def test_parse_handshake(self) -> None:
        """A handshake decodes to its payload and checked m; bad ones are violations."""
        payload, m = parse_extension_handshake(b"d1:md6:ut_pexi3ee1:pi6881ee")
        self.assertEqual(payload, {b"m": {b"ut_pex": 3}, b"p": 6881})
        self.assertEqual(m, {b"ut_pex": 3})
        self.assertEqual(parse_extension_handshake(b"de"), ({}, {}))
        for bad in (b"d1:m", b"le", b"d1:mi1ee", b"d1:md1:xi256eee", b"d1:md1:x1:aee"):
            self.assertRaises(RemoteProtocolError, parse_extension_handshake, bad)


def session(peer_id: bytes, outgoing: bool, handshake: Mapping[Any, Any]) -> PeerSession:
    return PeerSession(
        INFO_HASH, peer_id, LAYOUT.piece_count, outgoing,
        piece_length_of=LAYOUT.piece_size, extension_handshake=handshake,
    )


class Connection:
    """Our session (its handshake from ``ours``) and a remote numbering
    REMOTE_M, with both handshakes and both extension handshakes exchanged;
    ``handshake_events`` is what ours saw of the remote's extension handshake."""

    def __init__(self, ours: Mapping[Any, Any]) -> None:
        self.ours = session(OUR_ID, True, ours)
        self.remote = session(REMOTE_ID, False, {b"m": dict(REMOTE_M), b"v": b"LT 2.0"})
        self.remote.receive_data(self.ours.send_handshake())
        self.ours.receive_data(self.remote.send_handshake())
        self.remote.receive_data(self.ours.send_extension_handshake())
        self.handshake_events = self.ours.receive_data(self.remote.send_extension_handshake())


class SessionNamingTests(SynchronousTestCase):
    """PeerSession names incoming messages by our m and sends under the peer's ids."""

    def test_incoming_named(self) -> None:
        """A message sent under our id arrives named; the remote used our number."""
        conn = Connection(two_registries().handshake())
        data = conn.remote.send_extended(b"ut_pex", b"d5:added0:e")
        self.assertEqual(data, encode_extended(2, b"d5:added0:e"))
        self.assertEqual(
            conn.ours.receive_data(data), [ExtensionMessage(2, b"d5:added0:e", b"ut_pex")]
        )

    def test_outgoing_under_peer_id(self) -> None:
        """send_extended by name uses the remote's id, and the remote names it back."""
        conn = Connection(two_registries().handshake())
        data = conn.ours.send_extended("ut_metadata", {"msg_type": 0, "piece": 1})
        self.assertEqual(data[5], 7)
        (event,) = conn.remote.receive_data(data)
        assert isinstance(event, ExtensionMessage)
        self.assertEqual((event.extended_id, event.name), (7, b"ut_metadata"))
        self.assertEqual(decode(event.payload), {b"msg_type": 0, b"piece": 1})

    def test_unknown_id_unnamed(self) -> None:
        """A message under an id we never gave out arrives with name None."""
        conn = Connection(two_registries().handshake())
        self.assertEqual(
            conn.ours.receive_data(encode(Extended(7, b"?"))), [ExtensionMessage(7, b"?", None)]
        )

    def test_send_unsupported(self) -> None:
        """Sending an extension the peer lacks, or has disabled, is refused."""
        conn = Connection(two_registries().handshake())
        self.assertRaises(LocalProtocolError, conn.ours.send_extended, b"lt_donthave", b"")
        conn.ours.receive_data(conn.remote.send_extended(0, {"m": {"ut_pex": 0}}))
        self.assertRaises(LocalProtocolError, conn.ours.send_extended, b"ut_pex", b"")
        self.assertEqual(conn.ours.peer_extensions, {b"ut_metadata": 7})

    def test_names_follow_the_handshake_we_sent(self) -> None:
        """Changing extension_handshake and sending it again renames incoming ids."""
        conn = Connection({b"m": {b"ut_pex": 2}})
        conn.ours.extension_handshake[b"m"] = {b"ut_metadata": 2}
        conn.remote.receive_data(conn.ours.send_extension_handshake())
        (event,) = conn.ours.receive_data(encode(Extended(2, b"")))
        assert isinstance(event, ExtensionMessage)
        self.assertEqual(event.name, b"ut_metadata")


@dataclass
class FakeLink:
    """Records what is sent; the bytes go nowhere until a test delivers them."""

    sent: list[bytes] = field(default_factory=list)

    def send(self, data: bytes) -> None:
        self.sent.append(data)


@dataclass(eq=False)
class FakePeer:
    """A peer as the swarm passes it: a session, a link, an address, connected."""

    session: PeerSession
    link: FakeLink
    address: tuple[str, int] = ("127.0.0.2", 6881)
    connected: bool = True


class FakePlugin:
    """Records every call; ``fail`` (an exception) is raised by on_message,
    on_handshake, on_peer_lost and tick alike."""

    def __init__(self, name: bytes, fields: dict[bytes, Any] | None = None) -> None:
        self.name = name
        self.fields = fields or {}
        self.calls: list[tuple[str, Any]] = []
        self.fail: Exception | None = None

    def handshake_fields(self) -> Mapping[bytes | str, Any]:
        return dict(self.fields)

    def _record(self, what: str, value: Any) -> None:
        self.calls.append((what, value))
        if self.fail is not None:
            raise self.fail

    def on_handshake(self, peer: ExtensionPeer, payload: Mapping[bytes, Any]) -> None:
        self._record("handshake", payload)

    def on_message(self, peer: ExtensionPeer, payload: bytes) -> None:
        self._record("message", payload)

    def on_peer_lost(self, peer: ExtensionPeer) -> None:
        self._record("lost", peer)

    def tick(self, now: float) -> None:
        self._record("tick", now)


class Dispatch:
    """Extensions with two fake plug-ins, and a connection to a remote peer
    (numbering REMOTE_M) whose handshake events went through the dispatcher."""

    def __init__(self) -> None:
        self.extensions = Extensions()
        self.metadata = FakePlugin(b"ut_metadata", {b"metadata_size": 100})
        self.pex = FakePlugin(b"ut_pex")
        self.extensions.register(self.metadata)
        self.extensions.register(self.pex)
        self.conn = Connection(self.extensions.handshake())
        self.peer = FakePeer(self.conn.ours, FakeLink())
        self.deliver_events(self.conn.handshake_events)

    def deliver_events(self, events: list[PeerEvent]) -> None:
        for event in events:
            self.extensions.peer_event(self.peer, event)

    def from_remote(self, name: bytes, payload: bytes) -> None:
        """The remote sends a message of ``name``; it reaches the dispatcher."""
        data = self.conn.remote.send_extended(name, payload)
        self.deliver_events(self.conn.ours.receive_data(data))


class ExtensionsTests(SynchronousTestCase):
    """The dispatcher: handshake, routing, sending, failures, fan-outs."""

    def test_handshake(self) -> None:
        """register gives ids 1..n; handshake() is m plus the plug-ins' current fields."""
        d = Dispatch()
        self.assertEqual(
            d.extensions.handshake(),
            {b"m": {b"ut_metadata": 1, b"ut_pex": 2}, b"metadata_size": 100},
        )
        d.metadata.fields = {b"metadata_size": 2000}
        self.assertEqual(d.extensions.handshake()[b"metadata_size"], 2000)
        self.assertIs(d.extensions[b"ut_pex"], d.pex)
        self.assertIn("ut_metadata", d.extensions)

    def test_handshake_to_every_plugin(self) -> None:
        """The peer's extension handshake reaches every plug-in with its payload."""
        d = Dispatch()
        payload = {b"m": REMOTE_M, b"v": b"LT 2.0", b"reqq": MAX_PEER_REQUESTS}
        self.assertEqual(d.conn.handshake_events, [ExtensionHandshake(payload)])
        self.assertEqual(d.metadata.calls, [("handshake", payload)])
        self.assertEqual(d.pex.calls, [("handshake", payload)])

    def test_routing(self) -> None:
        """A message goes to the plug-in it is named after, and to no other."""
        d = Dispatch()
        d.from_remote(b"ut_pex", b"pex!")
        d.from_remote(b"ut_metadata", b"meta!")
        self.assertEqual(d.pex.calls[1:], [("message", b"pex!")])
        self.assertEqual(d.metadata.calls[1:], [("message", b"meta!")])

    def test_unnamed_and_other_events_ignored(self) -> None:
        """A message under an unknown id, and non-extension events, reach no plug-in."""
        d = Dispatch()
        d.deliver_events(d.conn.ours.receive_data(encode(Extended(9, b"?"))))
        d.extensions.peer_event(d.peer, object())
        self.assertEqual(len(d.pex.calls) + len(d.metadata.calls), 2)

    def test_closing_peer_ignored(self) -> None:
        """Events of a peer the swarm is closing reach no plug-in."""
        d = Dispatch()
        d.peer.connected = False
        d.extensions.peer_event(d.peer, ExtensionMessage(2, b"x", b"ut_pex"))
        self.assertEqual(d.pex.calls[1:], [])

    def test_send_under_peer_id(self) -> None:
        """send writes to the peer's link under the peer's id; the remote names it right."""
        d = Dispatch()
        self.assertTrue(d.extensions.send(d.peer, b"ut_metadata", {"msg_type": 0, "piece": 0}))
        (data,) = d.peer.link.sent
        (event,) = d.conn.remote.receive_data(data)
        assert isinstance(event, ExtensionMessage)
        self.assertEqual((event.extended_id, event.name), (7, b"ut_metadata"))
        self.assertEqual(event.payload, bencode({b"msg_type": 0, b"piece": 0}))

    def test_send_refused(self) -> None:
        """send is False, writing nothing, for an unsupported extension or a closing peer."""
        d = Dispatch()
        disable = d.conn.remote.send_extended(0, {"m": {"ut_pex": 0}})
        d.deliver_events(d.conn.ours.receive_data(disable))
        self.assertFalse(d.extensions.supports(d.peer, b"ut_pex"))
        self.assertFalse(d.extensions.send(d.peer, b"ut_pex", b""))
        d.peer.connected = False
        self.assertFalse(d.extensions.send(d.peer, b"ut_metadata", b""))
        self.assertEqual(d.peer.link.sent, [])

    def test_peer_fault(self) -> None:
        """A plug-in's RemoteProtocolError becomes an ExtensionError blaming the peer."""
        d = Dispatch()
        d.pex.fail = RemoteProtocolError("added is not a string")
        with self.assertRaises(ExtensionError) as caught:
            d.from_remote(b"ut_pex", b"bad")
        error = caught.exception
        self.assertEqual((error.peer, error.name, error.peer_fault), (d.peer, b"ut_pex", True))
        self.assertIn("added is not a string", str(error))
        self.assertEqual(self.flushLoggedErrors(), [])

    def test_plugin_bug(self) -> None:
        """Any other exception is logged and becomes an ExtensionError, not the peer's fault."""
        d = Dispatch()
        d.metadata.fail = ZeroDivisionError()
        with self.assertRaises(ExtensionError) as caught:
            d.from_remote(b"ut_metadata", b"x")
        self.assertFalse(caught.exception.peer_fault)
        self.assertIn("on_message", caught.exception.reason)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_handshake_failure(self) -> None:
        """A plug-in failing on the peer's handshake is an ExtensionError too."""
        d = Dispatch()
        d.metadata.fail = RemoteProtocolError("metadata_size is negative")
        with self.assertRaises(ExtensionError) as caught:
            d.extensions.peer_event(d.peer, ExtensionHandshake({b"metadata_size": -1}))
        self.assertEqual(caught.exception.name, b"ut_metadata")

    def test_peer_lost(self) -> None:
        """peer_lost reaches every plug-in even if one fails (the failure is logged)."""
        d = Dispatch()
        d.metadata.fail = KeyError("gone")
        d.extensions.peer_lost(d.peer)
        self.assertEqual(d.metadata.calls[-1], ("lost", d.peer))
        self.assertEqual(d.pex.calls[-1], ("lost", d.peer))
        self.assertEqual(len(self.flushLoggedErrors(KeyError)), 1)

    def test_tick(self) -> None:
        """tick reaches every plug-in with now, even if one fails (logged)."""
        d = Dispatch()
        d.pex.fail = ValueError("boom")
        d.extensions.tick(12.5)
        self.assertEqual(d.metadata.calls[-1], ("tick", 12.5))
        self.assertEqual(d.pex.calls[-1], ("tick", 12.5))
        self.assertEqual(len(self.flushLoggedErrors(ValueError)), 1)

    def test_direct_calls(self) -> None:
        """handshake_received and message dispatch as peer_event does."""
        d = Dispatch()
        d.extensions.handshake_received(d.peer, {b"m": {}})
        d.extensions.message(d.peer, ExtensionMessage(1, b"m!", b"ut_metadata"))
        d.extensions.message(d.peer, ExtensionMessage(5, b"?", None))
        self.assertEqual(d.metadata.calls[1:], [("handshake", {b"m": {}}), ("message", b"m!")])
        self.assertEqual(d.pex.calls[1:], [("handshake", {b"m": {}})])

    def test_error_is_a_protocol_error(self) -> None:
        """ExtensionError is a RemoteProtocolError: a swarm closing peers on those needs no more."""
        d = Dispatch()
        d.pex.fail = RemoteProtocolError("bad")
        self.assertRaises(RemoteProtocolError, d.from_remote, b"ut_pex", b"x")

    def test_stop(self) -> None:
        """After stop nothing is sent, dispatched or ticked; peer_lost still fans out."""
        d = Dispatch()
        d.extensions.stop()
        self.assertFalse(d.extensions.send(d.peer, b"ut_metadata", b""))
        d.from_remote(b"ut_pex", b"late")
        d.extensions.tick(1.0)
        d.extensions.peer_lost(d.peer)
        self.assertEqual(d.peer.link.sent, [])
        self.assertEqual(d.pex.calls[1:], [("lost", d.peer)])

    def test_register_twice(self) -> None:
        """A second plug-in of the same name is refused."""
        d = Dispatch()
        self.assertRaises(ValueError, d.extensions.register, FakePlugin(b"ut_pex"))


class DeferredSetupTests(SynchronousTestCase):
    """Extensions.defer: the plug-ins are made when first needed."""

    def test_made_on_first_need(self) -> None:
        """The setup runs once, when the handshake (or a plug-in) is first
        asked for; ticks and lost peers before that need none."""
        extensions = Extensions()
        made: list[FakePlugin] = []

        def setup() -> None:
            plugin = FakePlugin(b"ut_fake", {b"x": 1})
            made.append(plugin)
            extensions.register(plugin)

        extensions.defer(setup)
        extensions.tick(1.0)
        self.assertEqual(made, [])
        self.assertEqual(extensions.handshake(), {b"m": {b"ut_fake": 1}, b"x": 1})
        self.assertIn(b"ut_fake", extensions)
        self.assertIs(extensions[b"ut_fake"], made[0])
        self.assertEqual(len(made), 1)
