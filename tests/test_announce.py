"""Tests for txbittorrent.core.tracker.announce."""

from __future__ import annotations

import ipaddress
import math
from typing import Any
from urllib.parse import unquote_to_bytes

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.tracker.announce import (
    DEFAULT_MAX_PEERS,
    INTERVAL_CEILING,
    INTERVAL_FLOOR,
    MAX_RESPONSE_SIZE,
    AnnounceEvent,
    AnnounceRequest,
    AnnounceResponse,
    ScrapeStats,
    TrackerFailure,
    announce_url,
    decode_compact_peers,
    encode_announce_response,
    encode_compact_peers,
    encode_failure,
    parse_announce_response,
    parse_scrape_response,
    scrape_request_url,
    scrape_url,
)
from txbittorrent.core.bencoding import encode
from txbittorrent.errors import RemoteProtocolError

INFO_HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
INFO_HASH_ESCAPED = (
    "%C1%2F%E1%C0"  # c1 2f e1 c0: '/' is reserved, the rest are not ASCII
    "k"  # 6b: an unreserved letter stays as it is
    "%BA%25"  # ba 25: '%' itself is escaped
    "J"  # 4a
    "%9D%C9%F5%19%B3"  # 9d c9 f5 19 b3
    "5"  # 35: a digit
    "%AA%7C%13"  # aa 7c 13: '|' is not unreserved
    "g"  # 67
    "%A8%8A"  # a8 8a
)
PEER_ID = b"-TX0010-a~b.c_d-e f!"
PEER_ID_ESCAPED = "-TX0010-a~b.c_d-e%20f%21"  # '-', '~', '.', '_' stay; ' ' and '!' do not
OTHER_HASH = bytes(range(20))

_UNRESERVED = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")


def _escape_by_hand(data: bytes) -> str:
    """RFC 3986 escaping written out, to check the code without the module it uses."""
    return "".join(chr(b) if b in _UNRESERVED else f"%{b:02X}" for b in data)


def _request(**changes: Any) -> AnnounceRequest:
    fields: dict[str, Any] = dict(
        info_hash=INFO_HASH, peer_id=PEER_ID, port=6881, uploaded=10, downloaded=20, left=30
    )
    fields.update(changes)
    return AnnounceRequest(**fields)


class AnnounceURLTests(SynchronousTestCase):
    """announce_url builds the GET query of BEP 3."""

    def test_full(self) -> None:
        """Every parameter, in order, escaped and in decimal."""
        request = _request(
            event=AnnounceEvent.STARTED, numwant=50, key=0xDEADBEEF, tracker_id=b"t/1"
        )
        self.assertEqual(
            announce_url("http://tracker.example/announce", request),
            "http://tracker.example/announce"
            "?info_hash=" + INFO_HASH_ESCAPED
            + "&peer_id=" + PEER_ID_ESCAPED
            + "&port=6881&uploaded=10&downloaded=20&left=30"
            "&event=started&key=DEADBEEF&numwant=50&compact=1&trackerid=t%2F1",
        )

    def test_regular_reannounce(self) -> None:
        """No event, no key and no numwant: those parameters are left out."""
        url = announce_url("http://t.example/a", _request())
        self.assertEqual(
            url,
            f"http://t.example/a?info_hash={INFO_HASH_ESCAPED}&peer_id={PEER_ID_ESCAPED}"
            "&port=6881&uploaded=10&downloaded=20&left=30&compact=1",
        )
        self.assertNotIn("event", url)

    def test_events(self) -> None:
        """Each event is spelled as BEP 3 says."""
        for event, text in [
            (AnnounceEvent.STARTED, "&event=started&"),
            (AnnounceEvent.COMPLETED, "&event=completed&"),
            (AnnounceEvent.STOPPED, "&event=stopped&"),
        ]:
            self.assertIn(text, announce_url("http://t.example/a", _request(event=event)))

    def test_existing_query(self) -> None:
        """A base URL with a query gets '&' before our parameters."""
        url = announce_url("http://t.example/announce?passkey=abc", _request())
        self.assertTrue(url.startswith("http://t.example/announce?passkey=abc&info_hash="), url)

    def test_query_ends_with_separator(self) -> None:
        """A base URL ending in '?' or '&' gets no extra separator."""
        for base in ("http://t.example/a?", "http://t.example/a?x=1&"):
            self.assertTrue(announce_url(base, _request()).startswith(base + "info_hash="))

    def test_fragment_dropped(self) -> None:
        """A fragment, never sent to a server, is dropped rather than swallowing the query."""
        url = announce_url("http://t.example/a#frag", _request())
        self.assertTrue(url.startswith("http://t.example/a?info_hash="), url)
        self.assertNotIn("frag", url)

    def test_options(self) -> None:
        """compact=0, no_peer_id, ip and ipv6 are sent as asked."""
        url = announce_url(
            "http://t.example/a",
            _request(compact=False, no_peer_id=True, ip="203.0.113.5", ipv6="2001:db8::1"),
        )
        self.assertTrue(
            url.endswith("&compact=0&no_peer_id=1&ip=203.0.113.5&ipv6=2001%3Adb8%3A%3A1"), url
        )

    @settings(max_examples=300, deadline=None)
    @given(st.binary(min_size=20, max_size=20), st.binary(min_size=20, max_size=20))
    def test_escaping(self, info_hash: bytes, peer_id: bytes) -> None:
        """Any hash and peer id are escaped byte by byte and decode back exactly."""
        url = announce_url("http://t.example/a", _request(info_hash=info_hash, peer_id=peer_id))
        params = dict(p.split("=", 1) for p in url.split("?", 1)[1].split("&"))
        self.assertEqual(params["info_hash"], _escape_by_hand(info_hash))
        self.assertEqual(params["peer_id"], _escape_by_hand(peer_id))
        self.assertEqual(unquote_to_bytes(params["info_hash"]), info_hash)


class AnnounceRequestTests(SynchronousTestCase):
    """AnnounceRequest refuses values no tracker could be sent."""

    def test_bad_values(self) -> None:
        """Wrong lengths, negative counters and out-of-range numbers are ValueError."""
        bad: list[dict[str, Any]] = [
            {"info_hash": b"short"},
            {"peer_id": b"x" * 21},
            {"port": 65536},
            {"left": -1},
            {"numwant": -1},
            {"key": 2**32},
            {"ipv6": "203.0.113.5"},
        ]
        for changes in bad:
            self.assertRaises(ValueError, _request, **changes)


# -- replies -------------------------------------------------------------------

COMPACT_REPLY = (
    b"d"  # the reply dictionary
    b"8:complete" b"i5e"  # 5 seeders
    b"10:incomplete" b"i3e"  # 3 leechers
    b"8:interval" b"i1800e"  # announce again in 30 minutes
    b"12:min interval" b"i900e"  # and not before 15 minutes
    b"5:peers" b"12:"  # two compact IPv4 peers, 6 bytes each
    b"\x0a\x00\x00\x01" b"\x1a\xe1"  # 10.0.0.1, port 6881
    b"\xc0\xa8\x01\x02" b"\x00\x50"  # 192.168.1.2, port 80
    b"10:tracker id" b"3:xyz"  # to send back as trackerid
    b"e"
)

DICT_REPLY = (
    b"d"
    b"8:interval" b"i1800e"
    b"5:peers" b"l"  # the original, dictionary form
    b"d" b"2:ip" b"8:10.0.0.2" b"7:peer id" b"20:-XX0001-abcdefghijkl" b"4:port" b"i6881e" b"e"
    b"d" b"2:ip" b"11:2001:DB8::1" b"4:port" b"i51413e" b"e"  # IPv6, made canonical
    b"d" b"2:ip" b"16:Peer.Example.COM" b"4:port" b"i6882e" b"e"  # a DNS name, lower-cased
    b"d" b"2:ip" b"8:10.0.0.3" b"4:port" b"i0e" b"e"  # port 0: skipped
    b"d" b"2:ip" b"8:10.0.0.4" b"4:port" b"i65536e" b"e"  # port too big: skipped
    b"d" b"2:ip" b"11:not a host!" b"4:port" b"i1e" b"e"  # not an address: skipped
    b"d" b"2:ip" b"5:1.2.3" b"4:port" b"i1e" b"e"  # neither an IPv4 address nor a name
    b"d" b"2:ip" b"8:10.0.0.5" b"e"  # no port: skipped
    b"d" b"2:ip" b"i1e" b"4:port" b"i1e" b"e"  # ip not a string: skipped
    b"i7e"  # not a dictionary: skipped
    b"d" b"2:ip" b"8:10.0.0.2" b"4:port" b"i6881e" b"e"  # a repeat: dropped
    b"e"
    b"e"
)

PEERS6_REPLY = (
    b"d"
    b"8:interval" b"i1800e"
    b"5:peers" b"0:"  # no IPv4 peers
    b"6:peers6" b"36:"  # two compact IPv6 peers, 18 bytes each
    b"\x20\x01\x0d\xb8\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01"  # 2001:db8::1
    b"\x1a\xe1"  # port 6881
    b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\xff\xff\x0a\x00\x00\x01"  # ::ffff:10.0.0.1
    b"\x00\x50"  # port 80
    b"e"
)


FAILURE_REPLY = (
    b"d"
    b"14:failure reason" b"11:bad passkey"  # the tracker says no
    b"8:interval" b"i1800e"  # ignored: the failure wins
    b"e"
)


def _reply(**fields: Any) -> bytes:
    """A reply with an interval and ``fields`` (underscores become spaces)."""
    reply: dict[bytes, Any] = {b"interval": 1800}
    reply.update({k.replace("_", " ").encode(): v for k, v in fields.items()})
    return encode(reply)


class AnnounceResponseTests(SynchronousTestCase):
    """parse_announce_response reads a tracker's reply."""

    def test_compact(self) -> None:
        """Counts, intervals, the tracker id and compact peers."""
        self.assertEqual(
            parse_announce_response(COMPACT_REPLY),
            AnnounceResponse(
                interval=1800,
                min_interval=900,
                tracker_id=b"xyz",
                complete=5,
                incomplete=3,
                peers=(("10.0.0.1", 6881), ("192.168.1.2", 80)),
            ),
        )

    def test_dictionary_peers(self) -> None:
        """The dictionary form gives canonical hosts; bad entries are skipped."""
        self.assertEqual(
            parse_announce_response(DICT_REPLY).peers,
            (("10.0.0.2", 6881), ("2001:db8::1", 51413), ("peer.example.com", 6882)),
        )

    def test_peers6(self) -> None:
        """BEP 7's peers6 holds 18-byte entries."""
        response = parse_announce_response(PEERS6_REPLY)
        self.assertEqual(response.peers, ())
        self.assertEqual(response.peers6, (("2001:db8::1", 6881), ("::ffff:a00:1", 80)))

    def test_no_peers(self) -> None:
        """A reply without peers has none."""
        response = parse_announce_response(b"d8:intervali1800ee")
        self.assertEqual((response.peers, response.peers6), ((), ()))

    def test_compact_port_zero(self) -> None:
        """A compact entry with port 0 is skipped, and repeats are dropped."""
        peers = b"\x0a\x00\x00\x01\x00\x00" + b"\x0a\x00\x00\x02\x00\x01" * 2
        self.assertEqual(
            parse_announce_response(_reply(peers=peers)).peers, (("10.0.0.2", 1),)
        )

    def test_max_peers(self) -> None:
        """At most max_peers are kept from each list."""
        peers = b"".join(bytes([10, 0, 0, i, 0, 1]) for i in range(1, 11))
        peers6 = b"".join(bytes(15) + bytes([i, 0, 1]) for i in range(1, 11))
        response = parse_announce_response(_reply(peers=peers, peers6=peers6), max_peers=3)
        self.assertEqual(len(response.peers), 3)
        self.assertEqual(len(response.peers6), 3)
        self.assertEqual(DEFAULT_MAX_PEERS, 1000)

    def test_failure(self) -> None:
        """A failure reason raises TrackerFailure with the tracker's text."""
        e = self.assertRaises(TrackerFailure, parse_announce_response, FAILURE_REPLY)
        self.assertEqual(e.reason, "bad passkey")
        self.assertIsNone(e.retry_in)
        self.assertIsInstance(e, RemoteProtocolError)

    def test_failure_retry_in(self) -> None:
        """BEP 31's retry in is minutes, or never."""
        body = b"d14:failure reason4:busy8:retry ini5ee"  # retry in 5 minutes
        e = self.assertRaises(TrackerFailure, parse_announce_response, body)
        self.assertEqual(e.retry_in, 300)
        body = b"d14:failure reason4:gone8:retry in5:nevere"  # do not come back
        self.assertEqual(
            self.assertRaises(TrackerFailure, parse_announce_response, body).retry_in, math.inf
        )

    def test_failure_not_utf8(self) -> None:
        """A failure reason that is not UTF-8 is still reported."""
        body = b"d14:failure reason2:\xff!e"
        e = self.assertRaises(TrackerFailure, parse_announce_response, body)
        self.assertEqual(e.reason, "\ufffd!")

    def test_warning_and_external_ip(self) -> None:
        """A warning message and BEP 24's external ip are kept."""
        response = parse_announce_response(
            _reply(warning_message=b"slow down", external_ip=b"\xcb\x00\x71\x05")
        )
        self.assertEqual(response.warning_message, "slow down")
        self.assertEqual(response.external_ip, "203.0.113.5")

    def test_interval_clamped(self) -> None:
        """Intervals outside a minute to a day are brought inside."""
        for given_interval, expected in [(5, INTERVAL_FLOOR), (-1, 60), (10**12, INTERVAL_CEILING)]:
            body = encode({b"interval": given_interval})
            self.assertEqual(parse_announce_response(body).interval, expected)
        self.assertEqual((INTERVAL_FLOOR, INTERVAL_CEILING), (60, 86400))

    def test_min_interval_raises_interval(self) -> None:
        """An interval shorter than min interval is raised to it."""
        response = parse_announce_response(_reply(interval=100, min_interval=600))
        self.assertEqual((response.interval, response.min_interval), (600, 600))
        self.assertEqual(parse_announce_response(_reply(min_interval=1)).min_interval, 60)

    def test_advisory_fields_of_wrong_type(self) -> None:
        """Advisory fields of the wrong type (or negative counts) are ignored."""
        response = parse_announce_response(
            _reply(
                complete=b"5",
                incomplete=-3,
                min_interval=b"9",
                tracker_id=[],
                warning_message=7,
                external_ip=b"abc",
            )
        )
        self.assertEqual(response, AnnounceResponse(interval=1800))

    def test_trailing_whitespace(self) -> None:
        """A newline after the dictionary is tolerated."""
        self.assertEqual(parse_announce_response(b"d8:intervali1800ee\r\n").interval, 1800)


class AnnounceGarbageTests(SynchronousTestCase):
    """Replies that are not usable raise RemoteProtocolError with a reason."""

    def check(self, body: bytes, words: str) -> None:
        e = self.assertRaises(RemoteProtocolError, parse_announce_response, body)
        self.assertNotIsInstance(e, TrackerFailure)
        self.assertIn(words, str(e))

    def test_empty(self) -> None:
        """An empty body."""
        self.check(b"", "not bencoded")

    def test_html(self) -> None:
        """An HTML error page."""
        self.check(b"<html>502 Bad Gateway</html>", "not bencoded")

    def test_not_dictionary(self) -> None:
        """A bencoded list."""
        self.check(b"li1ee", "not a dictionary")

    def test_trailing_garbage(self) -> None:
        """Bytes after the dictionary."""
        self.check(b"d8:intervali1800eeXYZ", "trailing")

    def test_too_long(self) -> None:
        """A body longer than MAX_RESPONSE_SIZE."""
        self.check(b" " * (MAX_RESPONSE_SIZE + 1), "too long")

    def test_missing_interval(self) -> None:
        """No interval and no failure reason."""
        self.check(b"d5:peers0:e", "no 'interval'")

    def test_interval_not_integer(self) -> None:
        """An interval that is a string."""
        self.check(b"d8:interval4:1800e", "'interval' is not an integer")

    def test_peers_wrong_type(self) -> None:
        """Peers that are an integer."""
        self.check(_reply(peers=5), "'peers' is neither")

    def test_compact_peers_bad_length(self) -> None:
        """Compact peers whose length is not a multiple of 6."""
        self.check(_reply(peers=b"\x0a\x00\x00\x01\x1a\xe1\x00"), "not a multiple of 6")

    def test_peers6_wrong_type(self) -> None:
        """peers6 in dictionary form."""
        self.check(_reply(peers6=[]), "'peers6' is not a string")

    def test_peers6_bad_length(self) -> None:
        """Compact peers6 whose length is not a multiple of 18."""
        self.check(_reply(peers6=bytes(17)), "not a multiple of 18")

    def test_failure_reason_not_string(self) -> None:
        """A failure reason that is not a string."""
        self.check(b"d14:failure reasoni1ee", "'failure reason' is not a string")


# -- round trips ---------------------------------------------------------------

_ports = st.integers(1, 65535)
_ipv4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))
_ipv6 = st.builds(lambda n: str(ipaddress.IPv6Address(n)), st.integers(0, 2**128 - 1))
_peers4 = st.lists(st.tuples(_ipv4, _ports), unique=True, max_size=30).map(tuple)
_peers6 = st.lists(st.tuples(_ipv6, _ports), unique=True, max_size=30).map(tuple)
_names = st.from_regex(r"[a-z][a-z0-9]{0,10}(\.[a-z][a-z0-9]{0,10}){0,3}", fullmatch=True)
_mixed_peers = st.lists(
    st.tuples(st.one_of(_ipv4, _ipv6, _names), _ports), unique=True, max_size=20
).map(tuple)
_counts = st.none() | st.integers(0, 2**40)
_intervals = st.integers(INTERVAL_FLOOR, INTERVAL_CEILING).flatmap(
    lambda i: st.tuples(st.just(i), st.none() | st.integers(INTERVAL_FLOOR, i))
)


class RoundTripTests(SynchronousTestCase):
    """What the encoders write, the parsers read back unchanged."""

    @settings(max_examples=200, deadline=None)
    @given(_peers4)
    def test_compact_peers(self, peers: tuple[tuple[str, int], ...]) -> None:
        """IPv4 peers survive compact form."""
        data = encode_compact_peers(peers)
        self.assertEqual(len(data), 6 * len(peers))
        self.assertEqual(decode_compact_peers(data), peers)

    @settings(max_examples=200, deadline=None)
    @given(_peers6)
    def test_compact_peers6(self, peers: tuple[tuple[str, int], ...]) -> None:
        """IPv6 peers survive compact form."""
        data = encode_compact_peers(peers, ipv6=True)
        self.assertEqual(decode_compact_peers(data, ipv6=True), peers)

    def test_encode_refuses(self) -> None:
        """Compact form holds only addresses of one family and real ports."""
        self.assertRaises(ValueError, encode_compact_peers, [("2001:db8::1", 1)])
        self.assertRaises(ValueError, encode_compact_peers, [("10.0.0.1", 1)], ipv6=True)
        self.assertRaises(ValueError, encode_compact_peers, [("peer.example", 1)])
        self.assertRaises(ValueError, encode_compact_peers, [("10.0.0.1", 65536)])

    @settings(max_examples=200, deadline=None)
    @given(
        _intervals,
        st.none() | st.binary(min_size=1, max_size=10),
        _counts,
        _counts,
        _peers4 | _mixed_peers,
        _peers6,
        st.none() | st.text(max_size=20),
        st.none() | _ipv4 | _ipv6,
    )
    def test_response(
        self,
        intervals: tuple[int, int | None],
        tracker_id: bytes | None,
        complete: int | None,
        incomplete: int | None,
        peers: tuple[tuple[str, int], ...],
        peers6: tuple[tuple[str, int], ...],
        warning: str | None,
        external_ip: str | None,
    ) -> None:
        """A whole reply survives encode_announce_response."""
        interval, min_interval = intervals
        response = AnnounceResponse(
            interval, min_interval, tracker_id, complete, incomplete, peers, peers6, warning,
            external_ip,
        )
        self.assertEqual(parse_announce_response(encode_announce_response(response)), response)

    def test_encode_failure(self) -> None:
        """encode_failure writes what parse_announce_response raises."""
        e = self.assertRaises(TrackerFailure, parse_announce_response, encode_failure("nope"))
        self.assertEqual(e.reason, "nope")


_bvalues = st.recursive(
    st.integers(-(2**40), 2**40) | st.binary(max_size=40),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.binary(max_size=6), children, max_size=4),
    max_leaves=12,
)
_keys = st.sampled_from(
    [b"interval", b"min interval", b"peers", b"peers6", b"complete", b"incomplete",
     b"tracker id", b"warning message", b"external ip", b"failure reason", b"retry in",
     b"files", b"ip", b"port"]
)
_peer_dicts = st.lists(st.dictionaries(st.sampled_from([b"ip", b"port"]), _bvalues, max_size=2))


class NeverCrashesTests(SynchronousTestCase):
    """Whatever a tracker sends, the parsers raise only RemoteProtocolError."""

    def check(self, body: bytes) -> None:
        try:
            parse_announce_response(body)
        except RemoteProtocolError:
            pass
        try:
            parse_scrape_response(body, [OTHER_HASH])
        except RemoteProtocolError:
            pass

    @settings(max_examples=500, deadline=None)
    @given(st.binary(max_size=200))
    def test_arbitrary_bytes(self, body: bytes) -> None:
        """Arbitrary bytes."""
        self.check(body)

    @settings(max_examples=500, deadline=None)
    @given(st.dictionaries(_keys, _bvalues | _peer_dicts, max_size=6))
    def test_arbitrary_dictionaries(self, reply: dict[bytes, Any]) -> None:
        """Bencoded dictionaries with the right keys and any values."""
        self.check(encode(reply))


# -- scrape --------------------------------------------------------------------


class ScrapeURLTests(SynchronousTestCase):
    """scrape_url follows BEP 48's rule for the last path component."""

    def test_examples(self) -> None:
        """BEP 48's examples, and a query that holds a slash."""
        for announce, expected in [
            ("http://example.com/announce", "http://example.com/scrape"),
            ("http://example.com/x/announce", "http://example.com/x/scrape"),
            ("http://example.com/announce.php", "http://example.com/scrape.php"),
            ("http://example.com/a", None),
            ("http://example.com/announce?x2%0644", "http://example.com/scrape?x2%0644"),
            ("http://example.com/announce?x=2/4", "http://example.com/scrape?x=2/4"),
            ("http://example.com/announce?x=/announce", "http://example.com/scrape?x=/announce"),
            ("http://example.com/x%064announce", None),
            ("http://example.com/announce/x", None),
            ("https://example.com:8443/p/announce_x", "https://example.com:8443/p/scrape_x"),
            ("http://example.com", None),
            ("http://example.com?announce", None),
            ("http://example.com?x=/announce", None),
            ("http://example.com/p#/announce", None),
            ("udp://example.com:80/announce", None),
            ("not a url", None),
        ]:
            self.assertEqual(scrape_url(announce), expected, announce)

    def test_request_url(self) -> None:
        """Each info hash is one escaped info_hash parameter."""
        self.assertEqual(
            scrape_request_url("http://example.com/scrape?k=1", [INFO_HASH, b"A" * 20]),
            "http://example.com/scrape?k=1&info_hash=" + INFO_HASH_ESCAPED
            + "&info_hash=" + "A" * 20,
        )
        self.assertRaises(ValueError, scrape_request_url, "http://e/scrape", [b"short"])


SCRAPE_REPLY = (
    b"d"
    b"5:files" b"d"  # stats by info hash
    b"20:" + INFO_HASH + b"d"  # the torrent we asked about
    b"8:complete" b"i5e"  # 5 seeders
    b"10:downloaded" b"i50e"  # 50 completed downloads
    b"10:incomplete" b"i10e"  # 10 leechers
    b"e"
    b"20:" + bytes(20) + b"d8:completei1ee"  # a torrent we did not ask about: ignored
    b"e"
    b"e"
)


class ScrapeResponseTests(SynchronousTestCase):
    """parse_scrape_response reads BEP 48's files dictionary."""

    def test_stats(self) -> None:
        """The torrents asked about, with their three counts."""
        self.assertEqual(
            parse_scrape_response(SCRAPE_REPLY, [INFO_HASH, OTHER_HASH]),
            {INFO_HASH: ScrapeStats(complete=5, downloaded=50, incomplete=10)},
        )

    def test_missing_counts(self) -> None:
        """A count that is missing, negative or not an integer is 0."""
        body = encode({b"files": {INFO_HASH: {b"complete": -1, b"downloaded": b"3"}}})
        self.assertEqual(
            parse_scrape_response(body, [INFO_HASH]), {INFO_HASH: ScrapeStats(0, 0, 0)}
        )

    def test_entry_not_dictionary(self) -> None:
        """An entry that is not a dictionary is left out."""
        body = encode({b"files": {INFO_HASH: 5}})
        self.assertEqual(parse_scrape_response(body, [INFO_HASH]), {})

    def test_failure(self) -> None:
        """A failure reason raises TrackerFailure."""
        self.assertRaises(TrackerFailure, parse_scrape_response, FAILURE_REPLY, [INFO_HASH])

    def test_garbage(self) -> None:
        """No files, files not a dictionary, or not bencoding: RemoteProtocolError."""
        for body, words in [
            (b"de", "no 'files'"),
            (b"d5:filesli1eee", "not a dictionary"),
            (b"<html>", "not bencoded"),
        ]:
            e = self.assertRaises(RemoteProtocolError, parse_scrape_response, body, [INFO_HASH])
            self.assertIn(words, str(e))
