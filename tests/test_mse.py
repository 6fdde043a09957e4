"""Tests for txbittorrent.core.wire.mse: the MSE/PE handshake, sans I/O."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.wire import mse
from txbittorrent.core.wire.mse import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    KEY_BYTES,
    PRIME,
    REQ1_SYNC_LIMIT,
    VC_SYNC_LIMIT,
    Established,
    MSEEvent,
    MSEInitiator,
    MSEResponder,
    Send,
    req2_hash,
    select_crypto,
)
from txbittorrent.errors import LocalProtocolError, MSEHandshakeError
from txbittorrent.peer.mse_crypto import new_rc4

from tests.msefakes import HandA, rc4

INFO_HASH = bytes(range(20))
OTHER_HASH = b"\xee" * 20
BOTH = CRYPTO_PLAINTEXT | CRYPTO_RC4
HANDSHAKE = b"\x13BitTorrent protocol" + bytes(8) + INFO_HASH + b"-TX0001-" + bytes(12)


def randbytes(seed: int) -> Callable[[int], bytes]:
    """Fixed randomness: the same seed gives the same keys and pads."""
    return random.Random(seed).randbytes


def lookup(*known: bytes) -> Callable[[bytes], bytes | None]:
    table = {req2_hash(info_hash): info_hash for info_hash in known}
    return table.get


def initiator(provide: int = BOTH, ia: bytes = HANDSHAKE, seed: int = 1) -> MSEInitiator:
    return MSEInitiator(
        INFO_HASH, crypto_provide=provide, randbytes=randbytes(seed), new_rc4=new_rc4,
        initial_payload=ia,
    )


def responder(
    allowed: int = BOTH, prefer: int = CRYPTO_PLAINTEXT, seed: int = 2, known: tuple[bytes, ...] = (INFO_HASH,)
) -> MSEResponder:
    return MSEResponder(
        lookup(*known), allowed=allowed, prefer=prefer, randbytes=randbytes(seed), new_rc4=new_rc4
    )


def sent(events: list[MSEEvent]) -> bytes:
    return b"".join(e.data for e in events if isinstance(e, Send))


def established(events: list[MSEEvent]) -> Established | None:
    found = [e for e in events if isinstance(e, Established)]
    return found[0] if found else None


def run(
    a: MSEInitiator, b: MSEResponder, chunk: int | None = None
) -> tuple[Established, Established]:
    """Run both sides against each other, delivering ``chunk`` bytes at a time."""

    def deliver(side: MSEInitiator | MSEResponder, data: bytes) -> list[MSEEvent]:
        if chunk is None:
            return side.feed(data)
        events: list[MSEEvent] = []
        for i in range(0, len(data), chunk):
            events += side.feed(data[i : i + chunk])
        return events

    to_b = a.start()
    done_a = done_b = None
    while done_a is None or done_b is None:
        events_b = deliver(b, to_b) if to_b else []
        done_b = done_b or established(events_b)
        to_a = sent(events_b)
        events_a = deliver(a, to_a) if to_a else []
        done_a = done_a or established(events_a)
        to_b = sent(events_a)
        if not to_a and not to_b and (done_a is None or done_b is None):
            raise AssertionError("the handshake stalled")
    return done_a, done_b


class HandshakeTests(SynchronousTestCase):
    """Both sides against each other."""

    def test_plaintext_selected(self) -> None:
        """Offered both with plaintext preferred, B selects plaintext; B gets
        A's IA, and later bytes pass unchanged."""
        done_a, done_b = run(initiator(), responder())
        self.assertEqual(done_a.crypto, CRYPTO_PLAINTEXT)
        self.assertEqual(done_b.crypto, CRYPTO_PLAINTEXT)
        self.assertEqual(done_b.info_hash, INFO_HASH)
        self.assertEqual(done_b.payload, HANDSHAKE)
        self.assertEqual(done_a.payload, b"")
        self.assertIsNone(done_a.encryptor)
        self.assertIsNone(done_b.decryptor)

    def test_rc4_selected(self) -> None:
        """With RC4 preferred, both sides hold matching RC4 streams."""
        done_a, done_b = run(initiator(), responder(prefer=CRYPTO_RC4))
        self.assertEqual((done_a.crypto, done_b.crypto), (CRYPTO_RC4, CRYPTO_RC4))
        self.assertEqual(done_b.payload, HANDSHAKE)
        assert done_a.encryptor and done_a.decryptor and done_b.encryptor and done_b.decryptor
        message = b"piece data " * 1000
        wire = done_a.encryptor.update(message)
        self.assertNotEqual(wire, message)
        self.assertEqual(done_b.decryptor.update(wire), message)
        self.assertEqual(done_a.decryptor.update(done_b.encryptor.update(message)), message)

    def test_forced_rc4(self) -> None:
        """An initiator that provides RC4 only gets RC4 from a responder
        that prefers plaintext."""
        done_a, done_b = run(initiator(provide=CRYPTO_RC4), responder())
        self.assertEqual((done_a.crypto, done_b.crypto), (CRYPTO_RC4, CRYPTO_RC4))

    def test_one_byte_at_a_time(self) -> None:
        """Bytes fed one at a time give the same result."""
        done_a, done_b = run(initiator(), responder(prefer=CRYPTO_RC4), chunk=1)
        self.assertEqual(done_b.payload, HANDSHAKE)
        self.assertEqual(done_a.crypto, CRYPTO_RC4)

    def test_seeds(self) -> None:
        """Many key pairs and pad lengths (some shared secrets have leading
        zero bytes) all agree."""
        for seed in range(40):
            done_a, done_b = run(initiator(seed=seed), responder(seed=seed + 1000, prefer=CRYPTO_RC4))
            assert done_a.encryptor and done_b.decryptor
            self.assertEqual(done_b.decryptor.update(done_a.encryptor.update(b"x" * 64)), b"x" * 64)

    @settings(max_examples=40, deadline=None)
    @given(
        seed_a=st.integers(0, 2**32), seed_b=st.integers(0, 2**32), chunk=st.integers(1, 700),
        prefer=st.sampled_from([CRYPTO_PLAINTEXT, CRYPTO_RC4]),
        provide=st.sampled_from([CRYPTO_RC4, BOTH]),
    )
    def test_any_keys_pads_and_chunking(
        self, seed_a: int, seed_b: int, chunk: int, prefer: int, provide: int
    ) -> None:
        """Any key pair, pad lengths and delivery chunking: both sides agree
        on the method and B gets A's IA intact."""
        done_a, done_b = run(
            initiator(provide=provide, seed=seed_a), responder(prefer=prefer, seed=seed_b), chunk
        )
        self.assertEqual(done_a.crypto, done_b.crypto)
        self.assertEqual(done_b.payload, HANDSHAKE)
        if done_a.crypto == CRYPTO_RC4:
            assert done_a.encryptor and done_b.decryptor
            self.assertEqual(done_b.decryptor.update(done_a.encryptor.update(b"abc")), b"abc")

    def test_payload_after_handshake(self) -> None:
        """Payload that arrives with the handshake's last bytes is decrypted
        and handed over (the responder's reply behind step 4; A's bytes
        after IA)."""
        a, b = initiator(), responder(prefer=CRYPTO_RC4)
        step3 = sent(a.feed(sent(b.feed(a.start()))))
        encryptor = a._encryptor  # A's stream goes on after IA
        assert encryptor is not None
        done_b = established(b.feed(step3 + encryptor.update(b"more")))
        assert done_b is not None
        self.assertEqual(done_b.payload, HANDSHAKE + b"more")

    def test_initiator_payload_after_pad_d(self) -> None:
        """Bytes behind PadD reach the initiator decrypted, in the same feed."""
        a, b = initiator(), responder(prefer=CRYPTO_RC4)
        events_a = a.feed(sent(b.feed(a.start())))
        events_b = b.feed(sent(events_a))
        done_b = established(events_b)
        assert done_b is not None and done_b.encryptor is not None
        reply = sent(events_b) + done_b.encryptor.update(b"hello")
        done_a = established(a.feed(reply))
        assert done_a is not None
        self.assertEqual(done_a.payload, b"hello")

    def test_plaintext_payload_after_ia(self) -> None:
        """With plaintext selected, the bytes after IA are passed as they are."""
        a, b = initiator(), responder()
        events_a = a.feed(sent(b.feed(a.start())))
        done_b = established(b.feed(sent(events_a) + b"plain"))
        assert done_b is not None
        self.assertEqual(done_b.payload, HANDSHAKE + b"plain")

    def test_feed_after_done(self) -> None:
        """A finished handshake takes no more bytes."""
        a, b = initiator(), responder()
        run(a, b)
        self.assertRaises(LocalProtocolError, a.feed, b"x")
        self.assertRaises(LocalProtocolError, b.feed, b"x")

    def test_select_crypto(self) -> None:
        """The responder's choice: the preferred method if common, else RC4,
        else plaintext, else none."""
        self.assertEqual(select_crypto(BOTH, BOTH, CRYPTO_PLAINTEXT), CRYPTO_PLAINTEXT)
        self.assertEqual(select_crypto(BOTH, CRYPTO_RC4, CRYPTO_PLAINTEXT), CRYPTO_RC4)
        self.assertEqual(select_crypto(CRYPTO_PLAINTEXT, BOTH, CRYPTO_RC4), CRYPTO_PLAINTEXT)
        self.assertEqual(select_crypto(CRYPTO_PLAINTEXT, CRYPTO_RC4, CRYPTO_RC4), 0)
        self.assertEqual(select_crypto(0x10, BOTH, CRYPTO_RC4), 0)

    def test_limits(self) -> None:
        """The sync limits are the specification's."""
        self.assertEqual((REQ1_SYNC_LIMIT, VC_SYNC_LIMIT), (628, 616))

    def test_pads_bounded(self) -> None:
        """Our PadA is at most 512 bytes whatever the randomness says."""
        for seed in range(50):
            self.assertLessEqual(len(initiator(seed=seed).start()), KEY_BYTES + 512)


class HostileResponderTests(SynchronousTestCase):
    """What a hostile initiator can do to the responder: a typed error, no more."""

    def test_garbage(self) -> None:
        """Random bytes: no req1 hash within 628 bytes."""
        b = responder()
        with self.assertRaises(MSEHandshakeError):
            b.feed(random.Random(5).randbytes(2000))

    def test_garbage_in_pieces(self) -> None:
        """Garbage a little at a time fails once 628 bytes are in, not later."""
        b = responder()
        junk = random.Random(6).randbytes(REQ1_SYNC_LIMIT)
        b.feed(junk[:-1])
        self.assertRaises(MSEHandshakeError, b.feed, junk[-1:])

    def test_truncated_key(self) -> None:
        """Part of a DH key: nothing happens (the caller's timeout ends it)."""
        b = responder()
        self.assertEqual(b.feed(HandA().public[:50]), [])
        self.assertFalse(b.done)

    def test_degenerate_key(self) -> None:
        """A public key of 0, 1 or P-1 is refused."""
        for y in (0, 1, PRIME - 1):
            self.assertRaises(MSEHandshakeError, responder().feed, y.to_bytes(KEY_BYTES, "big"))

    def test_wrong_req1(self) -> None:
        """A wrong req1 hash is never found."""
        hand, b = HandA(), responder()
        yb = sent(b.feed(hand.public))[:KEY_BYTES]
        step3 = hand.step3(yb, req1=b"\x01" * 20)
        with self.assertRaises(MSEHandshakeError):
            b.feed(step3 + bytes(REQ1_SYNC_LIMIT))

    def test_unknown_torrent(self) -> None:
        """A req2 hash of a torrent we do not have."""
        hand, b = HandA(), responder()
        yb = sent(b.feed(hand.public))[:KEY_BYTES]
        with self.assertRaises(MSEHandshakeError) as caught:
            b.feed(hand.step3(yb, info_hash=OTHER_HASH))
        self.assertIn("no torrent", str(caught.exception))

    def test_wrong_vc(self) -> None:
        """A verification constant that is not zero."""
        hand, b = HandA(), responder()
        yb = sent(b.feed(hand.public))[:KEY_BYTES]
        self.assertRaises(MSEHandshakeError, b.feed, hand.step3(yb, vc=b"\x01" * 8))

    def test_pad_a_over_limit(self) -> None:
        """PadA of 600 bytes puts req1 past the limit: refused as soon as the
        628th byte is in, before any step 3."""
        hand, b = HandA(), responder()
        self.assertRaises(MSEHandshakeError, b.feed, hand.public + bytes(600))

    def test_pad_a_at_limit(self) -> None:
        """PadA of exactly 512 bytes is fine."""
        hand, b = HandA(), responder()
        yb = sent(b.feed(hand.public + bytes(512)))[:KEY_BYTES]
        done = established(b.feed(hand.step3(yb, ia=b"ia")))
        assert done is not None
        self.assertEqual(done.payload, b"ia")

    def test_pad_c_over_limit(self) -> None:
        """len(PadC) of 513."""
        hand, b = HandA(), responder()
        yb = sent(b.feed(hand.public))[:KEY_BYTES]
        with self.assertRaises(MSEHandshakeError) as caught:
            b.feed(hand.step3(yb, pad_c=513))
        self.assertIn("PadC", str(caught.exception))

    def test_pad_c_accepted(self) -> None:
        """A PadC of 512 bytes is read and skipped."""
        hand, b = HandA(), responder()
        yb = sent(b.feed(hand.public))[:KEY_BYTES]
        done = established(b.feed(hand.step3(yb, pad_c=512, ia=b"x")))
        assert done is not None
        self.assertEqual(done.payload, b"x")

    def test_no_common_method(self) -> None:
        """Plaintext only offered to a forced responder."""
        hand, b = HandA(), responder(allowed=CRYPTO_RC4, prefer=CRYPTO_RC4)
        yb = sent(b.feed(hand.public))[:KEY_BYTES]
        self.assertRaises(MSEHandshakeError, b.feed, hand.step3(yb, provide=CRYPTO_PLAINTEXT))

    def test_failed_stays_failed(self) -> None:
        """After an error the machine takes no more bytes."""
        b = responder()
        self.assertRaises(MSEHandshakeError, b.feed, bytes(KEY_BYTES))
        self.assertRaises(LocalProtocolError, b.feed, b"x")


class HostileInitiatorTests(SynchronousTestCase):
    """What a hostile responder can do to the initiator."""

    def hand_b(self, a: MSEInitiator, *, select: int, pad_d: int) -> bytes:
        """B's steps 2 and 4 by hand."""
        private = 0xABCDEF1234567
        yb = pow(2, private, PRIME).to_bytes(KEY_BYTES, "big")
        ya = a.start()[:KEY_BYTES]
        secret = pow(int.from_bytes(ya, "big"), private, PRIME).to_bytes(KEY_BYTES, "big")
        key_b = hashlib.sha1(b"keyB" + secret + INFO_HASH).digest()
        body = bytes(8) + select.to_bytes(4, "big") + pad_d.to_bytes(2, "big") + bytes(pad_d)
        return yb + rc4(key_b).update(body)

    def test_vc_not_found(self) -> None:
        """Yb then garbage: no VC within 616 bytes."""
        a = initiator()
        a.start()
        yb = pow(2, 99991, PRIME).to_bytes(KEY_BYTES, "big")
        with self.assertRaises(MSEHandshakeError) as caught:
            a.feed(yb + random.Random(3).randbytes(VC_SYNC_LIMIT))
        self.assertIn("616", str(caught.exception))

    def test_pad_d_over_limit(self) -> None:
        """len(PadD) of 513."""
        a = initiator()
        self.assertRaises(MSEHandshakeError, a.feed, self.hand_b(a, select=CRYPTO_RC4, pad_d=513))

    def test_pad_d_accepted(self) -> None:
        """A PadD of 512 bytes is skipped."""
        a = initiator()
        done = established(a.feed(self.hand_b(a, select=CRYPTO_RC4, pad_d=512)))
        assert done is not None
        self.assertEqual(done.crypto, CRYPTO_RC4)

    def test_select_not_provided(self) -> None:
        """B selects plaintext when A provided RC4 only."""
        a = initiator(provide=CRYPTO_RC4)
        self.assertRaises(
            MSEHandshakeError, a.feed, self.hand_b(a, select=CRYPTO_PLAINTEXT, pad_d=0)
        )

    def test_select_two_methods(self) -> None:
        """B selects both bits at once."""
        a = initiator()
        self.assertRaises(MSEHandshakeError, a.feed, self.hand_b(a, select=BOTH, pad_d=0))

    def test_bad_arguments(self) -> None:
        """Misuse is a ValueError or LocalProtocolError, not a silent handshake."""
        self.assertRaises(ValueError, initiator, provide=0)
        self.assertRaises(ValueError, initiator, ia=bytes(70000))
        a = initiator()
        self.assertRaises(LocalProtocolError, a.feed, b"x")
        a.start()
        self.assertRaises(LocalProtocolError, a.start)
        self.assertEqual(mse.MAX_PAD, 512)
