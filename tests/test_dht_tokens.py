"""Tests for txbittorrent.core.dht.tokens: announce_peer tokens."""

from __future__ import annotations

import hashlib
import random

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.dht.tokens import TOKEN_INTERVAL, TOKEN_LENGTH, Tokens

HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
OTHER_HASH = bytes(20)
IP = "203.0.113.5"


class CountingBits:
    """random.Random stand-in that counts draws and returns 1, 2, 3, ..."""

    def __init__(self) -> None:
        self.draws = 0

    def getrandbits(self, k: int, /) -> int:
        self.draws += 1
        return self.draws


class TokenTests(SynchronousTestCase):
    """Tokens are bound to the address and info hash, and rotate."""

    def test_form(self) -> None:
        """A token is the first bytes of SHA-1(secret, packed IP, info hash)."""
        tokens = Tokens(CountingBits())
        secret = (1).to_bytes(16, "big")
        expected = hashlib.sha1(secret + bytes([203, 0, 113, 5]) + HASH).digest()[:TOKEN_LENGTH]
        self.assertEqual(tokens.token(IP, HASH, 0.0), expected)

    def test_constructor_draws_nothing(self) -> None:
        """Secrets are drawn when first needed, not at construction."""
        bits = CountingBits()
        tokens = Tokens(bits)
        self.assertEqual(bits.draws, 0)
        tokens.token(IP, HASH, 0.0)
        tokens.token(IP, HASH, 1.0)
        self.assertEqual(bits.draws, 1)

    def test_bound(self) -> None:
        """A token is valid for its IP and info hash only."""
        tokens = Tokens(random.Random(1))
        token = tokens.token(IP, HASH, 0.0)
        self.assertTrue(tokens.is_valid(token, IP, HASH, 1.0))
        self.assertFalse(tokens.is_valid(token, "203.0.113.6", HASH, 1.0))
        self.assertFalse(tokens.is_valid(token, IP, OTHER_HASH, 1.0))
        self.assertFalse(tokens.is_valid(token[:-1], IP, HASH, 1.0))
        self.assertFalse(tokens.is_valid(b"", IP, HASH, 1.0))
        self.assertFalse(tokens.is_valid(bytes(TOKEN_LENGTH), IP, HASH, 1.0))

    def test_ipv6(self) -> None:
        """IPv6 addresses work, in any spelling."""
        tokens = Tokens(random.Random(1))
        token = tokens.token("2001:db8::1", HASH, 0.0)
        self.assertTrue(tokens.is_valid(token, "2001:DB8:0::1", HASH, 0.0))

    def test_rotation(self) -> None:
        """A token lives through the next rotation and dies at the one after."""
        tokens = Tokens(random.Random(1))
        first = tokens.token(IP, HASH, 0.0)
        self.assertEqual(tokens.token(IP, HASH, TOKEN_INTERVAL - 1), first)
        second = tokens.token(IP, HASH, TOKEN_INTERVAL)
        self.assertNotEqual(second, first)
        self.assertTrue(tokens.is_valid(first, IP, HASH, 2 * TOKEN_INTERVAL - 1))
        self.assertFalse(tokens.is_valid(first, IP, HASH, 2 * TOKEN_INTERVAL))
        self.assertTrue(tokens.is_valid(second, IP, HASH, 2 * TOKEN_INTERVAL))

    def test_schedule_fixed(self) -> None:
        """Rotations keep to the schedule set by the first use, however late
        the calls come."""
        tokens = Tokens(random.Random(1))
        tokens.token(IP, HASH, 100.0)
        late = tokens.token(IP, HASH, 100.0 + TOKEN_INTERVAL + 250)
        self.assertTrue(tokens.is_valid(late, IP, HASH, 100.0 + 2 * TOKEN_INTERVAL - 1))
        self.assertTrue(tokens.is_valid(late, IP, HASH, 100.0 + 3 * TOKEN_INTERVAL - 1))
        self.assertFalse(tokens.is_valid(late, IP, HASH, 100.0 + 3 * TOKEN_INTERVAL))

    def test_long_silence(self) -> None:
        """After two intervals of silence no old token is accepted."""
        tokens = Tokens(random.Random(1))
        old = tokens.token(IP, HASH, 0.0)
        self.assertFalse(tokens.is_valid(old, IP, HASH, 2 * TOKEN_INTERVAL + 5))

    def test_deterministic(self) -> None:
        """The same seed gives the same tokens."""
        a, b = Tokens(random.Random(9)), Tokens(random.Random(9))
        self.assertEqual(a.token(IP, HASH, 0.0), b.token(IP, HASH, 0.0))
        self.assertNotEqual(a.token(IP, HASH, 0.0), Tokens(random.Random(10)).token(IP, HASH, 0.0))

    def test_options(self) -> None:
        """The length is configurable within 4..20 bytes; the interval must be positive."""
        self.assertEqual(len(Tokens(random.Random(1), length=4).token(IP, HASH, 0.0)), 4)
        for options in ({"length": 3}, {"length": 21}, {"interval": 0.0}):
            with self.assertRaises(ValueError):
                Tokens(random.Random(1), **options)
