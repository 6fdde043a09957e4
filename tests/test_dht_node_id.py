"""Tests for txbittorrent.core.dht.node_id: BEP 42 node ids."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.dht.node_id import (
    ExternalAddressVotes,
    crc32c,
    is_exempt,
    is_valid_node_id,
    make_node_id,
    node_id_prefix,
)

VECTORS = [
    # IP, rand (the id's last byte), the example node id: BEP 42's table.
    ("124.31.75.21", 1, "5fbfbff10c5d6a4ec8a88e4c6ab4c28b95eee401"),
    ("21.75.31.124", 86, "5a3ce9c14e7a08645677bbd1cfe7d8f956d53256"),
    ("65.23.51.170", 22, "a5d43220bc8f112a3d426c84764f8c2a1150e616"),
    ("84.124.73.14", 65, "1b0321dd1bb1fe518101ceef99462b947a01ff41"),
    ("43.213.53.83", 90, "e56f6cbf5b7c4be0237986d5243b87aa6d51305a"),
]

PUBLIC_V4 = st.ip_addresses(v=4).filter(lambda a: not is_exempt(a)).map(str)
PUBLIC_V6 = st.ip_addresses(v=6).filter(lambda a: not is_exempt(a)).map(str)


class FixedBits:
    """A stand-in for random.Random whose getrandbits(160) is a chosen id."""

    def __init__(self, value: bytes) -> None:
        self.value = int.from_bytes(value, "big")

    def getrandbits(self, k: int, /) -> int:
        assert k == 160
        return self.value


class CRC32CTests(SynchronousTestCase):
    """The Castagnoli CRC."""

    def test_check_values(self) -> None:
        """The standard check value and RFC 3720's all-zero and all-one blocks."""
        self.assertEqual(crc32c(b"123456789"), 0xE3069283)
        self.assertEqual(crc32c(bytes(32)), 0x8A9136AA)
        self.assertEqual(crc32c(b"\xff" * 32), 0x62A8AB43)
        self.assertEqual(crc32c(b""), 0)

    def test_continues(self) -> None:
        """A CRC can be continued over a second block."""
        self.assertEqual(crc32c(b"56789", crc32c(b"1234")), crc32c(b"123456789"))


class VectorTests(SynchronousTestCase):
    """BEP 42's test vectors."""

    def test_vectors_valid(self) -> None:
        """Each example id is valid for its address, and its last byte is rand."""
        for ip, rand, hex_id in VECTORS:
            node_id = bytes.fromhex(hex_id)
            self.assertEqual(node_id[19], rand)
            self.assertTrue(is_valid_node_id(node_id, ip), ip)

    def test_vectors_made(self) -> None:
        """make_node_id, given the example's random bits, gives the example id."""
        for ip, _, hex_id in VECTORS:
            node_id = bytes.fromhex(hex_id)
            drawn = b"\x00\x00" + bytes([node_id[2] & 0x07]) + node_id[3:]
            self.assertEqual(make_node_id(ip, FixedBits(drawn)), node_id, ip)

    def test_prefix(self) -> None:
        """The prefix is the CRC of the masked address with r on top (BEP 42's example)."""
        # 124.31.75.21 & 0x030f3fff | 1 << 29 = 0x200f0b15.
        self.assertEqual(node_id_prefix("124.31.75.21", 1), crc32c(bytes.fromhex("200f0b15")))
        self.assertEqual(node_id_prefix("124.31.75.21", 1) >> 11, 0x5FBFBF >> 3)

    def test_tampered_vectors(self) -> None:
        """Flipping one of the 21 prefix bits invalidates an id; later bits do not."""
        for ip, _, hex_id in VECTORS:
            node_id = int(hex_id, 16)
            for bit in range(21):
                flipped = (node_id ^ (1 << (159 - bit))).to_bytes(20, "big")
                self.assertFalse(is_valid_node_id(flipped, ip), (ip, bit))
            for bit in range(21, 157):
                flipped = (node_id ^ (1 << (159 - bit))).to_bytes(20, "big")
                self.assertTrue(is_valid_node_id(flipped, ip), (ip, bit))

    def test_other_address(self) -> None:
        """An example id is not valid for another example's address."""
        for ip, _, _ in VECTORS:
            for _, _, hex_id in VECTORS:
                valid = is_valid_node_id(bytes.fromhex(hex_id), ip)
                self.assertEqual(valid, hex_id == dict((v[0], v[2]) for v in VECTORS)[ip])

    def test_wrong_length(self) -> None:
        """An id that is not 20 bytes is never valid."""
        self.assertFalse(is_valid_node_id(bytes.fromhex(VECTORS[0][2])[:19], VECTORS[0][0]))


class ExemptionTests(SynchronousTestCase):
    """Local addresses may use any id."""

    def test_exempt(self) -> None:
        """BEP 42's ranges and the IPv6 local ones are exempt; public ones are not."""
        for ip in ("127.0.0.1", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
                   "169.254.0.9", "::1", "fe80::1", "fd00::5", "::ffff:127.0.0.1"):
            self.assertTrue(is_exempt(ip), ip)
        for ip in ("172.32.0.1", "8.8.8.8", "124.31.75.21", "2001:db8::1", "::ffff:8.8.8.8"):
            self.assertFalse(is_exempt(ip), ip)

    def test_any_id_on_loopback(self) -> None:
        """Our tests' nodes on 127.0.0.1 pass with any id."""
        self.assertTrue(is_valid_node_id(bytes(20), "127.0.0.1"))
        self.assertTrue(is_valid_node_id(b"\xff" * 20, "::1"))

    def test_random_id_when_exempt_or_unknown(self) -> None:
        """With no address or an exempt one, the id is the rng's bits unchanged."""
        drawn = bytes(range(20))
        self.assertEqual(make_node_id(None, FixedBits(drawn)), drawn)
        self.assertEqual(make_node_id("192.168.0.7", FixedBits(drawn)), drawn)


class PropertyTests(SynchronousTestCase):
    """Ids we make are valid for the address, and for few others."""

    @given(PUBLIC_V4 | PUBLIC_V6, st.integers(0, 2**32))
    @settings(max_examples=300, deadline=None)
    def test_made_ids_valid(self, ip: str, seed: int) -> None:
        """make_node_id's ids pass is_valid_node_id for the same address."""
        self.assertTrue(is_valid_node_id(make_node_id(ip, random.Random(seed)), ip))

    def test_fake_public_addresses(self) -> None:
        """Random ids are almost never valid for public addresses (2**-21 each)."""
        rng = random.Random(42)
        ips = [f"{rng.randrange(11, 100)}.{rng.randrange(256)}.7.9" for _ in range(200)]
        valid = sum(is_valid_node_id(rng.getrandbits(160).to_bytes(20, "big"), ip) for ip in ips)
        self.assertEqual(valid, 0)
        own = [make_node_id(ip, rng) for ip in ips]
        self.assertTrue(all(is_valid_node_id(i, ip) for i, ip in zip(own, ips)))


class VoteTests(SynchronousTestCase):
    """Learning our external address from responses."""

    def test_majority(self) -> None:
        """The address most voters report wins once it has min_votes."""
        votes = ExternalAddressVotes(min_votes=2)
        self.assertIsNone(votes.winner)
        votes.vote("1.2.3.4", "9.9.9.1")
        self.assertIsNone(votes.winner)
        votes.vote("1.2.3.4", "9.9.9.2")
        votes.vote("5.6.7.8", "9.9.9.3")
        self.assertEqual(votes.winner, "1.2.3.4")

    def test_one_vote_per_voter(self) -> None:
        """A voter repeating itself counts once; its latest vote stands."""
        votes = ExternalAddressVotes(min_votes=2)
        for _ in range(5):
            votes.vote("6.6.6.6", "9.9.9.1")
        self.assertIsNone(votes.winner)
        votes.vote("1.2.3.4", "9.9.9.1")
        votes.vote("1.2.3.4", "9.9.9.2")
        self.assertEqual(votes.winner, "1.2.3.4")

    def test_tie_and_bound(self) -> None:
        """A tie has no winner; only the latest max_voters count."""
        votes = ExternalAddressVotes(max_voters=2, min_votes=1)
        votes.vote("1.1.1.1", "9.9.9.1")
        votes.vote("2.2.2.2", "9.9.9.2")
        self.assertIsNone(votes.winner)
        votes.vote("2.2.2.2", "9.9.9.3")
        self.assertEqual(votes.winner, "2.2.2.2")
        with self.assertRaises(ValueError):
            ExternalAddressVotes(max_voters=0)
