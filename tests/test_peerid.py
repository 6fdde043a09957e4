"""Tests for txbittorrent.core.peerid: making peer ids and naming clients."""

from __future__ import annotations

import random
import string

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.peerid import DEFAULT_PREFIX, client_name, make_peer_id


class MakePeerIdTests(SynchronousTestCase):
    """make_peer_id: BEP 20 Azureus-style ids from an injected generator."""

    def test_shape(self) -> None:
        """Twenty bytes: the prefix, then letters and digits."""
        peer_id = make_peer_id(random.Random(1))
        self.assertEqual(len(peer_id), 20)
        self.assertTrue(peer_id.startswith(DEFAULT_PREFIX))
        allowed = set((string.ascii_letters + string.digits).encode())
        self.assertTrue(set(peer_id[8:]) <= allowed)

    def test_seeded(self) -> None:
        """The same seed gives the same id; another seed another id."""
        self.assertEqual(make_peer_id(random.Random(7)), make_peer_id(random.Random(7)))
        self.assertNotEqual(make_peer_id(random.Random(7)), make_peer_id(random.Random(8)))

    def test_prefix(self) -> None:
        """A custom prefix is kept, and the rest filled to 20 bytes."""
        peer_id = make_peer_id(random.Random(1), b"-qB4520-")
        self.assertEqual(peer_id[:8], b"-qB4520-")
        self.assertEqual(len(peer_id), 20)

    def test_prefix_too_long(self) -> None:
        """A prefix longer than a peer id is refused."""
        self.assertRaises(ValueError, make_peer_id, random.Random(1), b"x" * 21)

    def test_names_itself(self) -> None:
        """Our own ids decode as txbittorrent 0.1.0."""
        self.assertEqual(client_name(make_peer_id(random.Random(3))), "txbittorrent 0.1.0")


class ClientNameTests(SynchronousTestCase):
    """client_name: the BEP 10 'v' first, else the id's convention."""

    def check(self, prefix: bytes, expected: str) -> None:
        self.assertEqual(client_name(prefix + b"x" * (20 - len(prefix))), expected)

    def test_extension_v_wins(self) -> None:
        """The extension handshake's v is preferred to the id."""
        self.assertEqual(client_name(b"-LT2010-" + b"x" * 12, "qBittorrent/4.5.2"),
                         "qBittorrent/4.5.2")

    def test_extension_v_sanitised(self) -> None:
        """Control characters are dropped and long names cut; an empty v is ignored."""
        self.assertEqual(client_name(b"x" * 20, "evil\x1b[2Jname\n"), "evil[2Jname")
        self.assertEqual(len(client_name(b"x" * 20, "n" * 500)), 64)
        self.assertEqual(client_name(b"-LT2010-" + b"x" * 12, " \x00"), "libtorrent 2.0.1")

    def test_azureus_style(self) -> None:
        """Common Azureus-style ids decode to name and version."""
        self.check(b"-LT2010-", "libtorrent 2.0.1")
        self.check(b"-LT1217-", "libtorrent 1.2.1.7")
        self.check(b"-qB4520-", "qBittorrent 4.5.2")
        self.check(b"-TX0100-", "txbittorrent 0.1.0")
        self.check(b"-DE13F0-", "Deluge 1.3.15")
        self.check(b"-UT355W-", "\u00b5Torrent 3.5.5")

    def test_transmission(self) -> None:
        """Transmission's two-digit minor before 4.0, and major.minor.patch after."""
        self.check(b"-TR2940-", "Transmission 2.94")
        self.check(b"-TR3000-", "Transmission 3.00")
        self.check(b"-TR4050-", "Transmission 4.0.5")

    def test_unknown_azureus_code(self) -> None:
        """A well-formed Azureus id of an unknown client shows its code."""
        self.check(b"-ZZ1234-", "ZZ 1.2.3.4")

    def test_aria2(self) -> None:
        """aria2's A2-major-minor-patch- form."""
        self.check(b"A2-1-36-0-", "aria2 1.36.0")

    def test_mainline(self) -> None:
        """The original client's M4-3-6-- form."""
        self.check(b"M4-3-6--", "BitTorrent 4.3.6")
        self.check(b"M7-10-3-", "BitTorrent 7.10.3")

    def test_shadow_style(self) -> None:
        """Shadow-style ids: a client letter, base-64 version digits, dashes."""
        self.check(b"T03I-----", "BitTornado 0.3.18")
        self.check(b"S587---", "Shadow 5.8.7")

    def test_unknown(self) -> None:
        """Anything else, or an id of the wrong length, is unknown."""
        self.assertEqual(client_name(bytes(range(20))), "unknown")
        self.assertEqual(client_name(b"\xff" * 20), "unknown")
        self.assertEqual(client_name(b"-LT2010-"), "unknown")
        self.check(b"Z03I-----", "unknown")
