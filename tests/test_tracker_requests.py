"""Tests for txbittorrent.core.tracker.requests and ratelimit: HTTP requests and the rate limit."""

from __future__ import annotations

import ipaddress

from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import decode, encode
from txbittorrent.core.tracker.ratelimit import RateLimiter
from txbittorrent.core.tracker.requests import (
    MAX_HTTP_SCRAPE_HASHES,
    MAX_QUERY,
    announce_from_query,
    encode_http_announce,
    parse_query,
    scrape_hashes_from_query,
    split_tracker_path,
)
from txbittorrent.core.tracker.swarms import AnnounceResult, PeerRecord, RequestRefused

BASE = (b"info_hash=%C1%2F%E1%C0k%BA%25J%9D%C9%F5%19%B35%AA%7C%13g%A8%8A"
        b"&peer_id=-TX0010-aaaaaaaaaaaa&port=6881&left=100")


class AnnounceQueryTests(SynchronousTestCase):
    """The announce parameters added for the server."""

    def test_key_forms(self) -> None:
        """key is 8 hex digits (what clients send) or a 32-bit decimal; junk is ignored."""
        for raw, expected in ((b"DEADBEEF", 0xDEADBEEF), (b"1a", 0x1A), (b"zz", None),
                              (b"123456789", 123456789), (b"99999999999", None)):
            args = parse_query(BASE + b"&key=" + raw)
            self.assertEqual(announce_from_query(args, "127.0.0.1").key, expected, raw)

    def test_trackerid_accepted(self) -> None:
        """An echoed trackerid is accepted whatever it holds, up to 64 bytes."""
        args = parse_query(BASE + b"&trackerid=%00abc")
        self.assertEqual(announce_from_query(args, "127.0.0.1").port, 6881)
        args = parse_query(BASE + b"&trackerid=" + b"x" * 65)
        self.assertRaises(RequestRefused, announce_from_query, args, "127.0.0.1")

    def test_numwant_huge_parses(self) -> None:
        """numwant 10**9 is a valid request (the registry caps it)."""
        args = parse_query(BASE + b"&numwant=1000000000")
        self.assertEqual(announce_from_query(args, "127.0.0.1").numwant, 10**9)

    def test_ip_spoof_untrusted(self) -> None:
        """ip= is ignored unless trusted: no reflection onto a victim."""
        args = parse_query(BASE + b"&ip=198.51.100.7")
        self.assertEqual(announce_from_query(args, "127.0.0.1").ip, "127.0.0.1")

    def test_user(self) -> None:
        """The user the adapter found for the passkey rides on the Announce."""
        self.assertEqual(announce_from_query(parse_query(BASE), "::1", user=7).user, 7)

    def test_query_cap(self) -> None:
        """A query longer than MAX_QUERY is refused before it is split."""
        self.assertRaises(RequestRefused, parse_query, b"a" * (MAX_QUERY + 1))

    def test_tracker_id_sent(self) -> None:
        """The reply carries ``tracker id`` and ``min interval`` when the result has them."""
        args = parse_query(BASE)
        request = announce_from_query(args, "127.0.0.1")
        body = decode(encode_http_announce(request, AnnounceResult(60, 30, 0, 1, (), b"tid")))
        self.assertEqual((body[b"tracker id"], body[b"min interval"]), (b"tid", 30))

    def test_compact_reply_is_canonical(self) -> None:
        """The compact reply written out directly is byte for byte the bencoder's
        (sorted keys), with and without the optional keys, for both families."""
        peers = (
            PeerRecord("10.0.0.1", 1, b"a" * 20, 5, 0.0, compact=bytes([10, 0, 0, 1, 0, 1])),
            PeerRecord("::1", 2, b"b" * 20, 0, 0.0),
        )
        for source in ("127.0.0.1", "::1"):
            request = announce_from_query(parse_query(BASE), source)
            for min_interval, tracker_id, warning in (
                (None, None, None), (30, b"tid", b"moving"), (None, b"", None)
            ):
                result = AnnounceResult(60, min_interval, 3, 4, peers, tracker_id)
                body = encode_http_announce(request, result, warning)
                expected: dict[bytes, object] = {
                    b"interval": 60, b"complete": 3, b"incomplete": 4,
                    b"external ip": ipaddress.ip_address(source).packed,
                    b"peers": bytes([10, 0, 0, 1, 0, 1]),
                    b"peers6": bytes(15) + b"\x01\x00\x02",
                }
                if min_interval is not None:
                    expected[b"min interval"] = min_interval
                if tracker_id is not None:
                    expected[b"tracker id"] = tracker_id
                if warning is not None:
                    expected[b"warning message"] = warning
                self.assertEqual(body, encode(expected))


class ScrapeQueryTests(SynchronousTestCase):
    """Scrape requests: several hashes, full scrape when allowed, a cap."""

    def test_several_and_full(self) -> None:
        """Several hashes in order; none is a full scrape only when allowed."""
        query = parse_query(b"info_hash=" + b"a" * 20 + b"&info_hash=" + b"b" * 20)
        self.assertEqual(scrape_hashes_from_query(query), [b"a" * 20, b"b" * 20])
        self.assertEqual(scrape_hashes_from_query({}, allow_full=True), [])
        self.assertRaises(RequestRefused, scrape_hashes_from_query, {})

    def test_cap(self) -> None:
        """More than MAX_HTTP_SCRAPE_HASHES hashes are refused."""
        hashes = [b"%020d" % n for n in range(MAX_HTTP_SCRAPE_HASHES + 1)]
        self.assertRaises(RequestRefused, scrape_hashes_from_query, {b"info_hash": hashes})


class PathTests(SynchronousTestCase):
    """split_tracker_path: public and passkey paths."""

    def test_paths(self) -> None:
        """announce, scrape, <passkey>/announce; anything else is a LookupError."""
        self.assertEqual(split_tracker_path([b"announce"]), (None, b"announce"))
        self.assertEqual(split_tracker_path([b"k3Y_-", b"scrape"]), (b"k3Y_-", b"scrape"))
        for bad in ([], [b"other"], [b"a/b", b"announce"], [b"x" * 65, b"announce"],
                    [b"k", b"announce", b""], [b"", b"announce"]):
            self.assertRaises(LookupError, split_tracker_path, bad)


class RateLimiterTests(SynchronousTestCase):
    """Token buckets by address, refilled by the caller's ``now``."""

    def test_burst_then_refill(self) -> None:
        """60 a minute: 60 at once, then one a second."""
        limiter = RateLimiter(60)
        self.assertEqual(sum(limiter.allow("10.0.0.1", 0) for _ in range(100)), 60)
        self.assertFalse(limiter.allow("10.0.0.1", 0.5))
        self.assertTrue(limiter.allow("10.0.0.1", 1.6))
        self.assertTrue(limiter.allow("10.0.0.2", 1.6))
        self.assertEqual(limiter.refused, 41)

    def test_bounded_table(self) -> None:
        """The table never holds more than max_entries addresses."""
        limiter = RateLimiter(10, max_entries=100)
        for n in range(1000):
            limiter.allow(f"10.0.{n // 256}.{n % 256}", 0)
        self.assertEqual(len(limiter), 100)
