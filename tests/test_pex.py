"""Tests for peer exchange (BEP 11): txbittorrent.core.wire.pex (the codec,
the per-peer diff, the flood guard) and txbittorrent.swarm.pex (the plug-in,
on a real ``Swarm`` with ``FakePeerLink`` connections and a ``Clock``)."""

from __future__ import annotations

import ipaddress
import random
from collections.abc import Mapping
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.config import TorrentConfig
from txbittorrent.core.bencoding import decode, encode
from txbittorrent.core.wire.codec import encode_extended
from txbittorrent.core.wire.events import ExtensionMessage
from txbittorrent.core.wire.pex import (
    MAX_ADDED,
    MAX_DROPPED,
    MAX_ENTRIES,
    MAX_FIRST_ADDED,
    MAX_MESSAGE_SIZE,
    FloodGuard,
    PexFlags,
    PexMessage,
    PexPeer,
    PexState,
    decode_pex,
    encode_pex,
    pex_address,
    plausible_peer,
)
from txbittorrent.errors import RemoteProtocolError
from txbittorrent.interfaces import Address
from txbittorrent.swarm.pex import (
    FLOOD_MESSAGES,
    MAX_LEARNED,
    PEX_INTERVAL,
    RECHECK_INTERVAL,
    PexExtension,
)
from txbittorrent.swarm.plugins import PluginContext, builtin_extensions
from txbittorrent.swarm.swarm import Swarm, SwarmConfig
from txbittorrent.testing import DEFAULT_LAYOUT, FakePeerLink

# -- the codec ---------------------------------------------------------------------------

FULL_PAYLOAD = (
    b"d"
    b"5:added" b"12:"
    b"\x0a\x00\x00\x01" b"\x1a\xe1"          # 10.0.0.1 : 6881
    b"\xc0\xa8\x01\x02" b"\xc8\xd5"          # 192.168.1.2 : 51413
    b"7:added.f" b"2:"
    b"\x12"                                  # seed | reachable
    b"\x00"                                  # nothing known
    b"6:added6" b"18:"
    b"\x20\x01\x0d\xb8" + bytes(11) + b"\x01"  # 2001:db8::1
    + b"\x1a\xe1"                            # : 6881
    b"8:added6.f" b"1:"
    b"\x01"                                  # prefers encryption
    b"7:dropped" b"6:"
    b"\x0a\x00\x00\x03" b"\x00\x50"          # 10.0.0.3 : 80
    b"8:dropped6" b"18:"
    b"\x20\x01\x0d\xb8" + bytes(11) + b"\x02"  # 2001:db8::2
    + b"\x01\xbb"                            # : 443
    b"e"
)
FULL_MESSAGE = PexMessage(
    added=(
        PexPeer(("10.0.0.1", 6881), PexFlags.SEED | PexFlags.REACHABLE),
        PexPeer(("192.168.1.2", 51413), 0),
        PexPeer(("2001:db8::1", 6881), PexFlags.ENCRYPTION),
    ),
    dropped=(("10.0.0.3", 80), ("2001:db8::2", 443)),
)

ADDED_ONLY_PAYLOAD = (
    b"d"
    b"5:added" b"6:"
    b"\x7f\x00\x00\x01" b"\x1f\x90"          # 127.0.0.1 : 8080
    b"7:added.f" b"1:"
    b"\x10"                                  # reachable
    b"e"
)


class CodecTests(SynchronousTestCase):
    """encode_pex and decode_pex on annotated fixtures."""

    def test_encode_full(self) -> None:
        """Every list, both families, one flags byte per added peer, keys sorted."""
        self.assertEqual(encode_pex(FULL_MESSAGE), FULL_PAYLOAD)

    def test_decode_full(self) -> None:
        """The fixture decodes to its message, IPv4 added before IPv6."""
        self.assertEqual(decode_pex(FULL_PAYLOAD), FULL_MESSAGE)

    def test_added_always_with_flags(self) -> None:
        """Only non-empty lists are written, and added.f always with added."""
        message = PexMessage(added=(PexPeer(("127.0.0.1", 8080), PexFlags.REACHABLE),))
        self.assertEqual(encode_pex(message), ADDED_ONLY_PAYLOAD)
        self.assertEqual(decode_pex(ADDED_ONLY_PAYLOAD), message)
        self.assertEqual(encode_pex(PexMessage(added=(PexPeer(("10.0.0.1", 1)),))),
                         b"d5:added6:\x0a\x00\x00\x01\x00\x017:added.f1:\x00e")
        self.assertEqual(encode_pex(PexMessage()), b"de")
        self.assertFalse(PexMessage())
        self.assertTrue(PexMessage(dropped=(("10.0.0.1", 1),)))

    def test_every_prefix_refused(self) -> None:
        """Each proper prefix of a message (its bytes one at a time) is refused;
        so is the message with a trailing byte."""
        for end in range(len(FULL_PAYLOAD)):
            self.assertRaises(RemoteProtocolError, decode_pex, FULL_PAYLOAD[:end])
        self.assertRaises(RemoteProtocolError, decode_pex, FULL_PAYLOAD + b"e")

    def test_decode_lenient_parts(self) -> None:
        """No added.f means flags 0; port 0 and repeats are dropped; unknown keys ignored."""
        payload = encode({
            b"added": b"\x0a\x00\x00\x01\x1a\xe1" b"\x0a\x00\x00\x02\x00\x00"
                      b"\x0a\x00\x00\x01\x1a\xe1",
            b"dropped": b"\x0a\x00\x00\x05\x00\x00",
            b"x-other": [1, {b"a": b"b"}],
        })
        self.assertEqual(decode_pex(payload),
                         PexMessage(added=(PexPeer(("10.0.0.1", 6881), 0),)))
        flags = encode({b"added": b"\x0a\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x1a\xe1",
                        b"added.f": b"\x02\x10"})
        self.assertEqual(decode_pex(flags).added,
                         (PexPeer(("10.0.0.1", 6881), 2), PexPeer(("10.0.0.2", 6881), 16)))

    def test_ipv4_mapped(self) -> None:
        """An IPv4-mapped IPv6 address is read and written as IPv4."""
        mapped = ipaddress.IPv6Address("::ffff:10.1.2.3").packed + b"\x00\x50"
        payload = encode({b"added6": mapped, b"added6.f": b"\x00"})
        self.assertEqual(decode_pex(payload).added, (PexPeer(("10.1.2.3", 80)),))
        self.assertEqual(encode_pex(PexMessage(dropped=(("::ffff:10.1.2.3", 80),))),
                         b"d7:dropped6:\x0a\x01\x02\x03\x00\x50e")

    def test_malformed(self) -> None:
        """Whatever is wrong with a payload, decode_pex raises RemoteProtocolError."""
        six = b"\x0a\x00\x00\x01\x1a\xe1"
        bad = [
            b"", b"d", b"le", b"i1e", b"5:added", b"d5:addedi1ee",   # not bencoded / not a dict
            encode({b"added": [six]}),                               # a list, not a string
            encode({b"added": six[:5]}),                             # not a whole entry
            encode({b"added6": six * 2}),                            # 12 bytes, not 18
            encode({b"dropped": six + b"\x00"}),
            encode({b"dropped6": 1}),
            encode({b"added": six, b"added.f": b""}),                # flags: 0 for 1 peer
            encode({b"added": six, b"added.f": b"\x00\x00"}),        # flags: 2 for 1 peer
            encode({b"added.f": b"\x00"}),                           # flags without peers
            encode({b"added": six, b"added.f": 2}),                  # flags not a string
            b"d1:a" + b"l" * 10 + b"e" * 10 + b"e",                   # nested too deep
            encode({b"x": list(range(100))}),                        # too many items
            encode({b"added": six * (MAX_ENTRIES + 1)}),            # too many peers
            b"d5:added" + b"9" * 30 + b":e",                          # a length past the end
        ]
        for payload in bad:
            self.assertRaises(RemoteProtocolError, decode_pex, payload)

    def test_size_limit(self) -> None:
        """A payload over MAX_MESSAGE_SIZE is refused before it is decoded."""
        payload = b"d1:x" + b"%d:" % MAX_MESSAGE_SIZE + bytes(MAX_MESSAGE_SIZE) + b"e"
        with self.assertRaises(RemoteProtocolError) as caught:
            decode_pex(payload)
        self.assertIn("bytes", str(caught.exception))

    def test_entries_bound_is_a_parameter(self) -> None:
        """max_entries counts added and dropped of both families together."""
        payload = encode({b"added": b"\x0a\x00\x00\x01\x1a\xe1", b"added.f": b"\x00",
                          b"dropped6": bytes(15) + b"\x01\x00\x01"})
        self.assertEqual(len(decode_pex(payload, max_entries=2).added), 1)
        self.assertRaises(RemoteProtocolError, decode_pex, payload, max_entries=1)

    def test_encode_refuses(self) -> None:
        """Encoding a DNS name, port 0 or a flags value over a byte is a ValueError."""
        for message in (
            PexMessage(added=(PexPeer(("tracker.example", 80)),)),
            PexMessage(added=(PexPeer(("10.0.0.1", 0)),)),
            PexMessage(added=(PexPeer(("10.0.0.1", 80), 256),)),
            PexMessage(dropped=(("fe80::1%eth0", 80),)),
        ):
            self.assertRaises(ValueError, encode_pex, message)


_ipv4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))
_ipv6 = st.builds(lambda n: str(ipaddress.IPv6Address(n)),
                  st.integers(0, 2**128 - 1).filter(lambda n: n >> 32 != 0xFFFF))
_port = st.integers(1, 65535)
_flags = st.integers(0, 255)


def _peers(hosts: Any) -> Any:
    return st.lists(st.tuples(hosts, _port), max_size=20, unique=True)


class CodecPropertyTests(SynchronousTestCase):
    """Round trips and arbitrary input."""

    @settings(max_examples=300, deadline=None)
    @given(_peers(_ipv4), _peers(_ipv6), st.data())
    def test_round_trip(self, added4: list[Address], added6: list[Address], data: Any) -> None:
        """A message decodes to itself (IPv4 added first), for any addresses and flags."""
        added = tuple(PexPeer(a, data.draw(_flags)) for a in added4 + added6)
        dropped = tuple(data.draw(_peers(_ipv4))) + tuple(data.draw(_peers(_ipv6)))
        message = PexMessage(added, dropped)
        payload = encode_pex(message)
        self.assertEqual(decode_pex(payload), message)
        fields = decode(payload)
        self.assertEqual(len(fields.get(b"added.f", b"")), len(added4))
        self.assertEqual(len(fields.get(b"added6.f", b"")), len(added6))

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=300))
    def test_arbitrary_bytes(self, payload: bytes) -> None:
        """Any bytes decode to a message or raise RemoteProtocolError, nothing else."""
        try:
            decode_pex(payload)
        except RemoteProtocolError:
            pass

    @settings(max_examples=500, deadline=None)
    @given(st.dictionaries(
        st.sampled_from([b"added", b"added.f", b"added6", b"added6.f", b"dropped",
                         b"dropped6", b"other"]),
        st.one_of(st.binary(max_size=40), st.integers(), st.lists(st.binary(max_size=4))),
    ))
    def test_arbitrary_fields(self, fields: Mapping[bytes, Any]) -> None:
        """Any dictionary of the known keys decodes or raises RemoteProtocolError;
        what decodes has no port 0 and no repeated address."""
        try:
            message = decode_pex(encode(dict(fields)))
        except RemoteProtocolError:
            return
        addresses = [p.address for p in message.added]
        self.assertEqual(len(addresses), len(set(addresses)))
        self.assertTrue(all(port for _, port in addresses + list(message.dropped)))


class AddressTests(SynchronousTestCase):
    """pex_address and plausible_peer."""

    def test_pex_address(self) -> None:
        """IP addresses come out canonical; what PEX cannot carry comes out None."""
        self.assertEqual(pex_address(("2001:DB8:0::1", 80)), ("2001:db8::1", 80))
        self.assertEqual(pex_address(("::ffff:127.0.0.1", 80)), ("127.0.0.1", 80))
        for address in (("example.org", 80), ("10.0.0.1", 0), ("10.0.0.1", 65536),
                        ("fe80::1%eth0", 80), ("10.0.0.1", True)):
            self.assertIsNone(pex_address(address), address)

    def test_plausible(self) -> None:
        """Loopback only from loopback, LAN only from local senders, never the unusable."""
        cases = [
            ("127.0.0.1", "127.0.0.1", True),
            ("127.0.0.1", "10.0.0.2", True),
            ("10.0.0.1", "192.168.1.5", True),
            ("10.0.0.1", "127.0.0.1", False),
            ("8.8.8.8", "127.0.0.1", False),
            ("8.8.8.8", "192.168.1.5", False),
            ("8.8.8.8", "fe80::1", False),
            ("8.8.8.8", "1.1.1.1", True),
            ("2001:4860::1", "2606:4700::1", True),
            ("8.8.8.8", "0.0.0.0", False),
            ("127.0.0.1", "224.0.0.1", False),
            ("127.0.0.1", "255.255.255.255", False),
            ("8.8.8.8", "not an address", False),
        ]
        for sender, host, expected in cases:
            self.assertEqual(plausible_peer(sender, host), expected, (sender, host))


# -- what one peer was told --------------------------------------------------------------


def addresses(n: int, start: int = 1) -> dict[Address, int]:
    return {(f"10.0.{i // 250}.{i % 250 + 1}", 6881): 0 for i in range(start, start + n)}


class PexStateTests(SynchronousTestCase):
    """The diff between the connected peers and what one peer heard."""

    def test_first_then_diffs(self) -> None:
        """The first message lists everyone; later ones the changes; nothing new is None."""
        state = PexState()
        first = state.diff({("10.0.0.1", 1): 0x10, ("10.0.0.2", 2): 0x02})
        self.assertEqual(first, PexMessage(added=(PexPeer(("10.0.0.1", 1), 0x10),
                                                  PexPeer(("10.0.0.2", 2), 0x02))))
        self.assertIsNone(state.diff({("10.0.0.1", 1): 0x10, ("10.0.0.2", 2): 0x02}))
        self.assertEqual(state.diff({("10.0.0.2", 2): 0, ("10.0.0.3", 3): 0}),
                         PexMessage(added=(PexPeer(("10.0.0.3", 3)),),
                                    dropped=(("10.0.0.1", 1),)))
        self.assertEqual(dict(state.told), {("10.0.0.2", 2): 0x02, ("10.0.0.3", 3): 0})
        self.assertEqual(state.messages_sent, 2)

    def test_gone_and_back_between_messages(self) -> None:
        """A peer that left and came back between two messages is in neither list."""
        state = PexState()
        state.diff({("10.0.0.1", 1): 0})
        self.assertIsNone(state.diff({("10.0.0.1", 1): 0x02}))

    def test_nothing_to_say_first(self) -> None:
        """With no peers the first round says nothing, and the next may still be large."""
        state = PexState()
        self.assertIsNone(state.diff({}))
        message = state.diff(addresses(120))
        assert message is not None
        self.assertEqual(len(message.added), 120)

    def test_caps(self) -> None:
        """The first message carries up to MAX_FIRST_ADDED, later ones MAX_ADDED
        added and MAX_DROPPED dropped; the rest follows in later messages."""
        state = PexState()
        everyone = addresses(MAX_FIRST_ADDED + 30)
        first = state.diff(everyone)
        assert first is not None
        self.assertEqual(len(first.added), MAX_FIRST_ADDED)
        second = state.diff(everyone)
        assert second is not None
        self.assertEqual(len(second.added), 30)
        newcomers = addresses(120, start=1000)
        sizes = []
        while (message := state.diff(newcomers)) is not None:
            sizes.append((len(message.added), len(message.dropped)))
        self.assertEqual(sizes, [(MAX_ADDED, MAX_DROPPED)] * 2 + [(20, 50), (0, 50), (0, 30)])
        self.assertEqual(set(state.told), set(newcomers))

    def test_added_and_dropped_caps_count_both_families(self) -> None:
        """IPv4 and IPv6 peers share the caps."""
        state = PexState(max_added=3, max_first_added=3)
        connected = {("10.0.0.1", 1): 0, ("::1", 1): 0, ("10.0.0.2", 1): 0, ("::2", 1): 0}
        first = state.diff(connected)
        assert first is not None
        self.assertEqual(len(first.added), 3)
        second = state.diff(connected)
        assert second is not None
        self.assertEqual([p.address for p in second.added], [("::2", 1)])

    def test_unsendable_left_out(self) -> None:
        """Addresses PEX cannot carry are left out; spellings are made canonical."""
        state = PexState()
        message = state.diff({("tracker.example", 80): 0, ("10.0.0.1", 0): 0,
                              ("::FFFF:10.0.0.9", 9): 0x10, ("10.0.0.9", 9): 0})
        self.assertEqual(message, PexMessage(added=(PexPeer(("10.0.0.9", 9), 0x10),)))

    def test_caps_positive(self) -> None:
        """Caps below one are refused."""
        self.assertRaises(ValueError, PexState, max_added=0)


class FloodGuardTests(SynchronousTestCase):
    """Counting a peer's messages."""

    def test_seventh_within_a_minute(self) -> None:
        """Six messages in a minute pass; the seventh does not."""
        guard = FloodGuard(6, 60.0)
        self.assertEqual([guard.allow(t) for t in (0, 1, 2, 3, 4, 5, 59.9)],
                         [True] * 6 + [False])

    def test_slow_enough(self) -> None:
        """Messages a minute apart, or seven spread over more than a minute, pass."""
        guard = FloodGuard(6, 60.0)
        self.assertTrue(all(guard.allow(t * 60.0) for t in range(20)))
        guard = FloodGuard(6, 60.0)
        self.assertTrue(all(guard.allow(t * 10.5) for t in range(20)))
        self.assertRaises(ValueError, FloodGuard, 0)


# -- the plug-in ---------------------------------------------------------------------------------

OUR_ID = b"-TX0100-ourselves000"
INFO_HASH = b"\x44" * 20


class FakeDialer:
    def __init__(self) -> None:
        self.calls: list[Address] = []

    def connect(self, host: object, address: Address) -> bool:
        self.calls.append(address)
        return False

    def is_own_address(self, address: Address) -> bool:
        return False


class Harness:
    """A swarm that knows only its info hash, with the PEX plug-in registered
    (as ``builtin_extensions`` makes it; the other built-in plug-ins are left
    out) and peers joined by ``FakePeerLink``."""

    def __init__(
        self, test: SynchronousTestCase, private: bool = False, pex: bool = True,
        private_later: bool = False,
    ) -> None:
        self.clock = Clock()
        self.clock.advance(1000)
        self.learned: list[tuple[list[Address], str]] = []
        self.private = private
        self.swarm = Swarm(INFO_HASH, OUR_ID, FakeDialer(), self.clock,
                                         random.Random(1),
                                         config=SwarmConfig(max_connections=200))
        self.context = PluginContext(
            info_hash=INFO_HASH, config=TorrentConfig(pex=pex), clock=self.clock,
            rng=random.Random(2), extensions=self.swarm.extensions,
            live_peers=self.swarm.live_peers, add_peers=self._add_peers,
            info_bytes=lambda: None, metadata_received=lambda info: None,
            private=lambda: self.private,
        )
        self.plugins = [p for p in builtin_extensions(self.context)
                        if isinstance(p, PexExtension)]
        for plugin in self.plugins:
            self.swarm.extensions.register(plugin)
        self.swarm.start()
        test.addCleanup(self.swarm.stop)
        if private_later:
            self.private = True
        self._count = 0

    @property
    def pex(self) -> PexExtension:
        (plugin,) = self.plugins
        assert isinstance(plugin, PexExtension)
        return plugin

    def _add_peers(self, found: Any, source: str) -> int:
        found = list(found)
        self.learned.append((found, source))
        return len(found)

    def connect(
        self, host: str | None = None, outgoing: bool = True, pex: bool = True,
        port: int | None = 6881, extra: Mapping[str, Any] | None = None,
    ) -> FakePeerLink:
        """A peer at ``host:6881`` (a new 10.0.0.n by default), handshaken,
        whose extension handshake offers ut_pex (under id 9) and says ``p``."""
        self._count += 1
        handshake: dict[str, Any] = {"m": {"ut_pex": 9} if pex else {"x": 1}, "v": "Fake"}
        if port is not None:
            handshake["p"] = port
        handshake.update(extra or {})
        link = FakePeerLink(self.swarm, DEFAULT_LAYOUT, (host or f"10.0.0.{self._count}", 6881),
                            outgoing, b"-XX0000-remote%06d" % self._count,
                            extension_handshake=handshake)
        assert link.handshake(), "refused"
        link.deliver(link.remote.send_extension_handshake())
        return link

    def tick(self, seconds: float = 1.0) -> None:
        self.clock.advance(seconds)

    def send(self, link: FakePeerLink, message: PexMessage | bytes) -> None:
        """The remote sends a ut_pex message (under our id for ut_pex)."""
        payload = message if isinstance(message, bytes) else encode_pex(message)
        link.deliver(link.remote.send_extended(b"ut_pex", payload))


def received(link: FakePeerLink) -> list[PexMessage]:
    """The ut_pex messages the remote got from us, decoded."""
    return [decode_pex(e.payload) for e in link.of(ExtensionMessage) if e.name == b"ut_pex"]


def added(link: FakePeerLink) -> list[Address]:
    return [p.address for m in received(link) for p in m.added]


class PexSendingTests(SynchronousTestCase):
    """What the plug-in tells each peer, and when."""

    def test_registered_by_default(self) -> None:
        """builtin_extensions registers ut_pex, which our handshake offers."""
        h = Harness(self)
        self.assertIsInstance(h.pex, PexExtension)
        self.assertIn(b"ut_pex", h.swarm.extensions.handshake()[b"m"])
        self.assertEqual(h.pex.handshake_fields(), {})

    def test_first_message_at_the_next_tick(self) -> None:
        """Each peer hears of the others at the first tick after its handshake,
        with listening addresses and flags (reachable for those we dialled)."""
        h = Harness(self)
        a = h.connect()
        b = h.connect(outgoing=False, port=7000)
        self.assertEqual(received(a) + received(b), [])
        h.tick()
        self.assertEqual(received(a), [PexMessage(added=(PexPeer(("10.0.0.2", 7000), 0),))])
        self.assertEqual(received(b), [PexMessage(
            added=(PexPeer(("10.0.0.1", 6881), PexFlags.REACHABLE),))])
        self.assertEqual(h.pex.messages_sent, 2)

    def test_at_most_one_a_minute(self) -> None:
        """A newcomer is told to the others no sooner than a minute after their last message."""
        h = Harness(self)
        a = h.connect()
        h.connect()
        h.tick()
        self.assertEqual(len(received(a)), 1)
        h.connect()
        for _ in range(int(PEX_INTERVAL) - 2):
            h.tick()
        self.assertEqual(len(received(a)), 1)
        h.tick(2)
        self.assertEqual(len(received(a)), 2)
        self.assertEqual(received(a)[1], PexMessage(
            added=(PexPeer(("10.0.0.3", 6881), PexFlags.REACHABLE),)))

    def test_dropped(self) -> None:
        """A peer that left is sent as dropped in the next message."""
        h = Harness(self)
        a = h.connect()
        b = h.connect()
        h.tick()
        b.close("gone")
        h.tick(PEX_INTERVAL)
        self.assertEqual(received(a)[-1], PexMessage(dropped=(("10.0.0.2", 6881),)))
        self.assertEqual(len(received(a)), 2)

    def test_nothing_new_rechecked(self) -> None:
        """A lone peer hears nothing; one who connects later is sent within RECHECK_INTERVAL."""
        h = Harness(self)
        a = h.connect()
        h.tick()
        self.assertEqual(received(a), [])
        h.connect()
        h.tick(RECHECK_INTERVAL)
        self.assertEqual(added(a), [("10.0.0.2", 6881)])

    def test_incoming_without_port_skipped(self) -> None:
        """An incoming peer that never said its listening port is not passed on."""
        h = Harness(self)
        a = h.connect()
        h.connect(outgoing=False, port=None)
        h.tick()
        self.assertEqual(received(a), [])

    def test_not_to_peers_without_ut_pex(self) -> None:
        """A peer that does not offer ut_pex is told nothing (but is told about)."""
        h = Harness(self)
        a = h.connect(pex=False)
        b = h.connect()
        h.tick()
        self.assertEqual(a.of(ExtensionMessage), [])
        self.assertEqual(added(b), [("10.0.0.1", 6881)])

    def test_flags(self) -> None:
        """Seed (upload_only), encryption (e) and holepunch flags come from the handshake."""
        h = Harness(self)
        a = h.connect()
        h.connect(outgoing=False, port=7000,
                  extra={"e": 1, "upload_only": 1, "m": {"ut_pex": 9, "ut_holepunch": 4}})
        h.tick()
        (message,) = received(a)
        self.assertEqual(message.added, (PexPeer(
            ("10.0.0.2", 7000), PexFlags.SEED | PexFlags.ENCRYPTION | PexFlags.HOLEPUNCH),))

    def test_fifty_cap_on_the_wire(self) -> None:
        """After the first message, at most MAX_ADDED peers per message reach a peer."""
        h = Harness(self)
        a = h.connect()
        h.connect()
        h.tick()
        for _ in range(MAX_ADDED + 10):
            h.connect()
        h.tick(PEX_INTERVAL)
        h.tick(PEX_INTERVAL)
        self.assertEqual([len(m.added) for m in received(a)], [1, MAX_ADDED, 10])

    def test_never_for_private(self) -> None:
        """A torrent known private at start registers no ut_pex; no ut_pex without pex."""
        self.assertEqual(Harness(self, private=True).plugins, [])
        self.assertEqual(Harness(self, pex=False).plugins, [])
        h = Harness(self, pex=False)
        self.assertNotIn(b"ut_pex", h.swarm.extensions.handshake()[b"m"])

    def test_private_later_sends_and_learns_nothing(self) -> None:
        """A torrent found private once its metadata came sends and learns nothing."""
        h = Harness(self, private_later=True)
        a = h.connect()
        h.connect()
        h.tick()
        h.tick(PEX_INTERVAL)
        self.assertEqual(a.of(ExtensionMessage), [])
        h.send(a, PexMessage(added=(PexPeer(("10.0.0.77", 1)),)))
        self.assertEqual(h.learned, [])
        self.assertIsNone(a.closed)

    def test_forgets_lost_peers(self) -> None:
        """A lost peer's record is dropped."""
        h = Harness(self)
        a = h.connect()
        self.assertIsNotNone(h.pex.record(h.swarm.live_peers()[0]))
        peer = h.swarm.live_peers()[0]
        a.close("bye")
        self.assertIsNone(h.pex.record(peer))

    def test_stopped_swarm_sends_nothing(self) -> None:
        """Once the swarm stopped, no tick sends anything."""
        h = Harness(self)
        a = h.connect()
        h.connect()
        h.swarm.stop()
        h.pex.tick(h.clock.seconds() + 1)
        self.assertEqual(received(a), [])


class PexReceivingTests(SynchronousTestCase):
    """What the plug-in does with what peers send."""

    def test_learns_added(self) -> None:
        """Added peers of both families go to add_peers as "pex"; dropped ones do not."""
        h = Harness(self)
        a = h.connect(host="127.0.0.1")
        h.send(a, FULL_MESSAGE)
        self.assertEqual(h.learned, [(
            [("10.0.0.1", 6881), ("192.168.1.2", 51413), ("2001:db8::1", 6881)], "pex")])
        self.assertEqual(h.pex.peers_learned, 3)

    def test_byte_by_byte(self) -> None:
        """A message arriving a byte at a time is learned once, when complete."""
        h = Harness(self)
        a = h.connect(host="127.0.0.1")
        wire = a.remote.send_extended(b"ut_pex", ADDED_ONLY_PAYLOAD)
        for i in range(len(wire)):
            self.assertEqual(h.learned, [], i)
            a.deliver(wire[i : i + 1])
        self.assertEqual(h.learned, [([("127.0.0.1", 8080)], "pex")])

    def test_implausible_ignored(self) -> None:
        """A public peer's loopback and LAN addresses are not taken."""
        h = Harness(self)
        a = h.connect(host="93.184.216.34")
        h.send(a, PexMessage(added=(PexPeer(("127.0.0.1", 1)), PexPeer(("10.1.1.1", 1)),
                                    PexPeer(("1.1.1.1", 1)))))
        self.assertEqual(h.learned, [([("1.1.1.1", 1)], "pex")])

    def test_learned_per_message_bounded(self) -> None:
        """At most MAX_LEARNED peers are taken from one message."""
        h = Harness(self)
        a = h.connect(host="127.0.0.1")
        many = tuple(PexPeer(a) for a in addresses(MAX_LEARNED + 50))
        h.send(a, PexMessage(added=many))
        ((found, _),) = h.learned
        self.assertEqual(len(found), MAX_LEARNED)

    def test_seventh_message_in_a_minute_disconnects(self) -> None:
        """Six messages within a minute are read; the seventh closes the peer."""
        h = Harness(self)
        a = h.connect(host="127.0.0.1")
        for n in range(FLOOD_MESSAGES):
            h.send(a, PexMessage(added=(PexPeer(("10.0.0.9", 100 + n)),)))
            h.tick(5)
        self.assertIsNone(a.closed)
        self.assertEqual(len(h.learned), FLOOD_MESSAGES)
        h.send(a, PexMessage(added=(PexPeer(("10.0.0.9", 99)),)))
        self.assertIsNotNone(a.closed)
        self.assertIn("ut_pex", a.closed or "")
        self.assertEqual(len(h.learned), FLOOD_MESSAGES)

    def test_once_a_minute_is_fine(self) -> None:
        """A peer sending every 60 seconds for a long time stays connected."""
        h = Harness(self)
        a = h.connect(host="127.0.0.1")
        for n in range(20):
            h.send(a, PexMessage(added=(PexPeer(("10.0.0.9", 100 + n)),)))
            h.tick(60)
        self.assertIsNone(a.closed)

    def test_oversized_disconnects(self) -> None:
        """A message over 500 KiB closes the peer without being decoded."""
        h = Harness(self)
        a = h.connect(host="127.0.0.1")
        h.send(a, b"d1:x" + b"%d:" % MAX_MESSAGE_SIZE + bytes(MAX_MESSAGE_SIZE) + b"e")
        self.assertIn(str(MAX_MESSAGE_SIZE), a.closed or "")
        self.assertEqual(h.learned, [])

    def test_too_many_peers_disconnects(self) -> None:
        """A message of more than MAX_ENTRIES peers closes the peer."""
        h = Harness(self)
        a = h.connect(host="127.0.0.1")
        h.send(a, encode({b"added": b"\x0a\x00\x00\x01\x1a\xe1" * (MAX_ENTRIES + 1)}))
        self.assertIsNotNone(a.closed)
        self.assertEqual(h.learned, [])

    def test_malformed_disconnects(self) -> None:
        """A message that does not decode closes the peer; the others go on."""
        h = Harness(self)
        a = h.connect(host="127.0.0.1")
        b = h.connect(host="127.0.0.2")
        h.send(a, b"d5:addedi1ee")
        self.assertIsNotNone(a.closed)
        self.assertIsNone(b.closed)
        self.assertEqual([p.address for p in h.swarm.live_peers()], [("127.0.0.2", 6881)])

    def test_wire_id_is_ours(self) -> None:
        """The remote sends under our id for ut_pex; we send under its id (9)."""
        h = Harness(self)
        a = h.connect()
        h.connect()
        h.tick()
        (event,) = a.of(ExtensionMessage)
        self.assertEqual(event.extended_id, 9)
        our_id = h.swarm.extensions.registry.local_id(b"ut_pex")
        self.assertEqual(a.remote.send_extended(b"ut_pex", b"de")[:6],
                         encode_extended(our_id, b"de")[:6])
