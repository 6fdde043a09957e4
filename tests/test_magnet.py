"""Tests for txbittorrent.core.magnet."""

from __future__ import annotations

import hashlib
import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.bencoding import encode
from txbittorrent.core.magnet import (
    MAX_PARAMETERS,
    MAX_URI_LENGTH,
    Magnet,
    magnet_from_metainfo,
    parse_magnet,
)
from txbittorrent.core.metainfo import parse
from txbittorrent.errors import MagnetError, TxBitTorrentError

HASH = bytes.fromhex("c12fe1c06bba254a9dc9f519b335aa7c1367a88a")
HASH_HEX = "c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
HASH_BASE32 = "YEX6DQDLXISUVHOJ6UM3GNNKPQJWPKEK"
OTHER_HEX = "e45dd21f33be6d9e6303f0169c310fff13d9d38c"

XT = "xt=urn:btih:" + HASH_HEX


def _base32_by_hand(data: bytes) -> str:
    """RFC 4648 base32 of 20 bytes, bit by bit, to check the fixture without
    the module the code under test uses."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
    bits = "".join(f"{byte:08b}" for byte in data)
    return "".join(alphabet[int(bits[i : i + 5], 2)] for i in range(0, len(bits), 5))


class InfoHashTests(SynchronousTestCase):
    """The xt=urn:btih: parameter."""

    def test_hex_lower(self) -> None:
        """Forty lower-case hex digits give the 20-byte hash."""
        self.assertEqual(parse_magnet("magnet:?" + XT).info_hash, HASH)

    def test_hex_upper(self) -> None:
        """Hex digits are accepted in upper case."""
        m = parse_magnet("magnet:?xt=urn:btih:" + HASH_HEX.upper())
        self.assertEqual(m.info_hash, HASH)

    def test_hex_property(self) -> None:
        """info_hash_hex is the lower-case hex of the hash."""
        self.assertEqual(parse_magnet("magnet:?" + XT).info_hash_hex, HASH_HEX)

    def test_base32_fixture(self) -> None:
        """The base32 fixture really is the RFC 4648 base32 of the hex fixture."""
        self.assertEqual(_base32_by_hand(HASH), HASH_BASE32)

    def test_base32_upper(self) -> None:
        """Thirty-two base32 characters give the same hash as its hex spelling."""
        m = parse_magnet("magnet:?xt=urn:btih:" + HASH_BASE32)
        self.assertEqual(m.info_hash, HASH)

    def test_base32_lower(self) -> None:
        """Base32 is accepted in lower case."""
        m = parse_magnet("magnet:?xt=urn:btih:" + HASH_BASE32.lower())
        self.assertEqual(m.info_hash, HASH)

    def test_base32_written_as_hex(self) -> None:
        """A link given in base32 is written back in lower-case hex."""
        m = parse_magnet("magnet:?xt=urn:btih:" + HASH_BASE32)
        self.assertEqual(m.to_uri(), "magnet:?" + XT)

    def test_urn_prefix_case(self) -> None:
        """The urn:btih: prefix is matched case-insensitively."""
        m = parse_magnet("magnet:?xt=URN:BTIH:" + HASH_HEX)
        self.assertEqual(m.info_hash, HASH)

    def test_percent_encoded_xt(self) -> None:
        """An xt whose colons are percent-escaped is decoded first."""
        m = parse_magnet("magnet:?xt=urn%3Abtih%3A" + HASH_HEX)
        self.assertEqual(m.info_hash, HASH)

    def test_scheme_case(self) -> None:
        """The scheme is case-insensitive."""
        self.assertEqual(parse_magnet("MaGnEt:?" + XT).info_hash, HASH)

    def test_surrounding_whitespace(self) -> None:
        """Whitespace around a pasted link is ignored."""
        self.assertEqual(parse_magnet("  magnet:?" + XT + "\n").info_hash, HASH)

    def test_same_hash_twice(self) -> None:
        """The same hash given twice, in hex and base32, is accepted."""
        m = parse_magnet(f"magnet:?{XT}&xt=urn:btih:{HASH_BASE32}")
        self.assertEqual(m.info_hash, HASH)

    def test_indexed_xt(self) -> None:
        """xt.1 is read like xt."""
        self.assertEqual(parse_magnet("magnet:?xt.1=urn:btih:" + HASH_HEX).info_hash, HASH)

    def test_btih_among_other_urns(self) -> None:
        """Other xt kinds (urn:sha1, urn:ed2k) are passed over for the btih one."""
        m = parse_magnet(
            "magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C"
            "&xt=urn:ed2k:354B15E68FB8F36D7CD88FF94116CDC1&" + XT
        )
        self.assertEqual(m.info_hash, HASH)

    def test_hybrid(self) -> None:
        """A v2 urn:btmh: beside the v1 hash (a hybrid torrent) is ignored."""
        m = parse_magnet(f"magnet:?{XT}&xt=urn:btmh:1220{'ab' * 32}")
        self.assertEqual(m.info_hash, HASH)

    def test_fragment_dropped(self) -> None:
        """A fragment is not part of the query."""
        m = parse_magnet("magnet:?" + XT + "#dn=ignored")
        self.assertEqual(m, Magnet(HASH))

    def test_minimal(self) -> None:
        """A link with only xt has no hints."""
        self.assertEqual(
            parse_magnet("magnet:?" + XT),
            Magnet(HASH, None, (), (), (), None),
        )


class DisplayNameTests(SynchronousTestCase):
    """The dn parameter."""

    def test_plain(self) -> None:
        """dn is the display name."""
        self.assertEqual(parse_magnet(f"magnet:?{XT}&dn=ubuntu.iso").display_name, "ubuntu.iso")

    def test_percent_escapes(self) -> None:
        """Percent-escapes in dn are decoded."""
        m = parse_magnet(f"magnet:?{XT}&dn=a%20b%26c%3Dd%25e%23f")
        self.assertEqual(m.display_name, "a b&c=d%e#f")

    def test_plus_is_space(self) -> None:
        """In dn a '+' is a space (form encoding) and %2B a plus."""
        m = parse_magnet(f"magnet:?{XT}&dn=Big+Buck+Bunny%2B")
        self.assertEqual(m.display_name, "Big Buck Bunny+")

    def test_utf8_escapes(self) -> None:
        """Percent-escaped UTF-8 decodes to Unicode."""
        m = parse_magnet(f"magnet:?{XT}&dn=%E6%97%A5%E6%9C%AC%20%C3%A9t%C3%A9")
        self.assertEqual(m.display_name, "\u65e5\u672c \u00e9t\u00e9")

    def test_raw_unicode(self) -> None:
        """Unescaped non-ASCII text (an IRI copied from a browser) is kept."""
        m = parse_magnet(f"magnet:?{XT}&dn=\u00e9t\u00e9")
        self.assertEqual(m.display_name, "\u00e9t\u00e9")

    def test_invalid_utf8(self) -> None:
        """Escaped bytes that are not UTF-8 become U+FFFD."""
        m = parse_magnet(f"magnet:?{XT}&dn=a%FFb")
        self.assertEqual(m.display_name, "a\ufffdb")

    def test_empty(self) -> None:
        """An empty dn is no display name."""
        self.assertIsNone(parse_magnet(f"magnet:?{XT}&dn=").display_name)

    def test_first_wins(self) -> None:
        """Of two dn, the first is kept."""
        self.assertEqual(parse_magnet(f"magnet:?{XT}&dn=one&dn=two").display_name, "one")

    def test_name_case(self) -> None:
        """Parameter names are case-insensitive."""
        self.assertEqual(parse_magnet(f"magnet:?{XT}&DN=x").display_name, "x")

    def test_written_escaped(self) -> None:
        """to_uri escapes spaces as %20 and '+' as %2B."""
        uri = Magnet(HASH, display_name="a b+c").to_uri()
        self.assertEqual(uri, f"magnet:?{XT}&dn=a%20b%2Bc")


class TrackerTests(SynchronousTestCase):
    """The tr parameter."""

    def test_repeated_in_order(self) -> None:
        """tr may repeat; order is kept."""
        m = parse_magnet(f"magnet:?{XT}&tr=udp://b:1&tr=http://a/announce")
        self.assertEqual(m.trackers, ("udp://b:1", "http://a/announce"))

    def test_duplicates_dropped(self) -> None:
        """A tracker given twice is kept once, at its first place."""
        m = parse_magnet(f"magnet:?{XT}&tr=udp://a:1&tr=udp://b:1&tr=udp%3A%2F%2Fa%3A1")
        self.assertEqual(m.trackers, ("udp://a:1", "udp://b:1"))

    def test_indexed(self) -> None:
        """tr.1, tr.2 are read like tr, in the order they appear."""
        m = parse_magnet(f"magnet:?{XT}&tr.1=udp://a:1&tr.2=udp://b:1&tr=udp://c:1")
        self.assertEqual(m.trackers, ("udp://a:1", "udp://b:1", "udp://c:1"))

    def test_escaped(self) -> None:
        """A tracker URL's escapes are decoded once; '+' stays a plus."""
        m = parse_magnet(f"magnet:?{XT}&tr=http%3A%2F%2Ft%2Fa%3Fk%3Da%2Bb%26p%3D1+2")
        self.assertEqual(m.trackers, ("http://t/a?k=a+b&p=1+2",))

    def test_unusable_skipped(self) -> None:
        """Empty values, text with no scheme, and URLs with spaces are skipped."""
        m = parse_magnet(
            f"magnet:?{XT}&tr=&tr=tracker.example&tr=http://a%20b/&tr=udp://ok:1&tr"
        )
        self.assertEqual(m.trackers, ("udp://ok:1",))

    def test_written_in_order(self) -> None:
        """to_uri writes each tracker in order, escaping what must be."""
        m = Magnet(HASH, trackers=("udp://a:1", "http://t/a?k=1&x=+"))
        self.assertEqual(
            m.to_uri(), f"magnet:?{XT}&tr=udp://a:1&tr=http://t/a%3Fk%3D1%26x%3D%2B"
        )


class WebSeedTests(SynchronousTestCase):
    """The ws parameter."""

    def test_ws(self) -> None:
        """ws gives web seeds, in order, repeats dropped."""
        m = parse_magnet(
            f"magnet:?{XT}&ws=https%3A%2F%2Fa%2Ff&ws=http://b/&ws.1=https://a/f"
        )
        self.assertEqual(m.web_seeds, ("https://a/f", "http://b/"))

    def test_unusable_skipped(self) -> None:
        """A ws that is not a URL is skipped."""
        self.assertEqual(parse_magnet(f"magnet:?{XT}&ws=nothing").web_seeds, ())


class PeerTests(SynchronousTestCase):
    """The x.pe parameter."""

    def test_ipv4(self) -> None:
        """An IPv4 address and port."""
        m = parse_magnet(f"magnet:?{XT}&x.pe=10.0.0.1:6881")
        self.assertEqual(m.peers, (("10.0.0.1", 6881),))

    def test_ipv6(self) -> None:
        """A bracketed IPv6 address is stored canonical, without brackets."""
        m = parse_magnet(f"magnet:?{XT}&x.pe=[2001:DB8:0:0::1]:51413")
        self.assertEqual(m.peers, (("2001:db8::1", 51413),))

    def test_ipv6_escaped(self) -> None:
        """Brackets and colons may be percent-escaped."""
        m = parse_magnet(f"magnet:?{XT}&x.pe=%5B%3A%3A1%5D%3A1")
        self.assertEqual(m.peers, (("::1", 1),))

    def test_hostname(self) -> None:
        """A DNS name is accepted and lower-cased."""
        m = parse_magnet(f"magnet:?{XT}&x.pe=Peer.Example.ORG:80")
        self.assertEqual(m.peers, (("peer.example.org", 80),))

    def test_several_in_order(self) -> None:
        """Peers repeat, keep their order, and lose duplicates."""
        m = parse_magnet(
            f"magnet:?{XT}&x.pe=1.2.3.4:1&x.pe.1=[::1]:2&x.pe=1.2.3.4:1&x.pe=h:3"
        )
        self.assertEqual(m.peers, (("1.2.3.4", 1), ("::1", 2), ("h", 3)))

    def test_invalid_skipped(self) -> None:
        """Peers with a bad port, no port, a bad host or bad brackets are skipped."""
        bad = [
            "1.2.3.4:0",
            "1.2.3.4:65536",
            "1.2.3.4:99999999999",
            "1.2.3.4:-1",
            "1.2.3.4:",
            "1.2.3.4",
            "1.2.3.4:x",
            "1.2.3.4:\u0661",
            "::1:80",
            "[::1]80",
            "[::1:80",
            "[1.2.3.4]:80",
            "[::1]:",
            "[fe80::1%25eth0]:80",
            "1.2.3.256:80",
            "-bad-.example:80",
            "a b:80",
            ":80",
            "",
        ]
        query = "&".join("x.pe=" + b for b in bad)
        m = parse_magnet(f"magnet:?{XT}&{query}&x.pe=5.6.7.8:9")
        self.assertEqual(m.peers, (("5.6.7.8", 9),))

    def test_written(self) -> None:
        """to_uri writes IPv6 peers in escaped brackets."""
        m = Magnet(HASH, peers=(("1.2.3.4", 1), ("::1", 2)))
        self.assertEqual(
            m.to_uri(), f"magnet:?{XT}&x.pe=1.2.3.4:1&x.pe=%5B::1%5D:2"
        )


class ExactLengthTests(SynchronousTestCase):
    """The xl parameter."""

    def test_xl(self) -> None:
        """xl is the exact length in bytes."""
        self.assertEqual(parse_magnet(f"magnet:?{XT}&xl=1048576").exact_length, 1048576)

    def test_zero(self) -> None:
        """xl=0 is a length."""
        self.assertEqual(parse_magnet(f"magnet:?{XT}&xl=0").exact_length, 0)

    def test_invalid_skipped(self) -> None:
        """A negative, non-numeric or absurdly long xl is ignored."""
        for value in ["-1", "1e6", "", "x", "1" * 21, "\u0661"]:
            self.assertIsNone(parse_magnet(f"magnet:?{XT}&xl={value}").exact_length, value)

    def test_written(self) -> None:
        """to_uri writes xl after dn."""
        m = Magnet(HASH, display_name="n", exact_length=5)
        self.assertEqual(m.to_uri(), f"magnet:?{XT}&dn=n&xl=5")


class CanonicalFormTests(SynchronousTestCase):
    """Magnet.to_uri."""

    def test_full(self) -> None:
        """Every field, in the canonical order xt, dn, xl, tr, ws, x.pe."""
        m = Magnet(
            HASH,
            display_name="My File.iso",
            trackers=("udp://t:80/announce", "http://u/announce"),
            peers=(("::1", 6881), ("1.2.3.4", 80)),
            web_seeds=("https://w/f",),
            exact_length=10,
        )
        self.assertEqual(
            m.to_uri(),
            "magnet:?"
            "xt=urn:btih:c12fe1c06bba254a9dc9f519b335aa7c1367a88a"
            "&dn=My%20File.iso"
            "&xl=10"
            "&tr=udp://t:80/announce"
            "&tr=http://u/announce"
            "&ws=https://w/f"
            "&x.pe=%5B::1%5D:6881"
            "&x.pe=1.2.3.4:80",
        )
        self.assertEqual(parse_magnet(m.to_uri()), m)

    def test_reparse_idempotent(self) -> None:
        """A sloppy link parses to the same Magnet as its canonical form."""
        m = parse_magnet(
            f" MAGNET:?XT=urn:btih:{HASH_BASE32.lower()}&dn=a+b&tr.1=udp%3A%2F%2Fx%3A1"
            "&x.pe=[0:0::1]:5&x.pe=H:1&ws=http://w/&xl=007&bogus=1&&"
        )
        self.assertEqual(parse_magnet(m.to_uri()), m)
        self.assertEqual(m.exact_length, 7)


class RejectionTests(SynchronousTestCase):
    """Every way parse_magnet refuses a link."""

    def assertRejected(self, uri: str, reason: str) -> None:
        """parse_magnet raises MagnetError whose reason contains C{reason}."""
        e = self.assertRaises(MagnetError, parse_magnet, uri)
        self.assertIn(reason, e.reason)
        self.assertIsInstance(e, TxBitTorrentError)

    def test_not_magnet(self) -> None:
        """Another scheme is refused."""
        self.assertRejected("http://example.com/?" + XT, "does not start with 'magnet:'")

    def test_empty(self) -> None:
        """An empty string is refused."""
        self.assertRejected("", "does not start with 'magnet:'")

    def test_no_question_mark(self) -> None:
        """'magnet:' must be followed by '?'."""
        self.assertRejected("magnet:" + XT, "must be followed by '?'")
        self.assertRejected("magnet://?" + XT, "must be followed by '?'")

    def test_missing_xt(self) -> None:
        """A link without an xt is refused."""
        self.assertRejected("magnet:?dn=x&tr=udp://a:1", "no BitTorrent info hash")

    def test_empty_query(self) -> None:
        """A link with no parameters is refused."""
        self.assertRejected("magnet:?", "no BitTorrent info hash")

    def test_only_other_urns(self) -> None:
        """An xt that is not urn:btih: is not a BitTorrent hash."""
        self.assertRejected(
            "magnet:?xt=urn:sha1:YNCKHTQCWBTRNJIV4WNAE52SJUQCZO5C", "no BitTorrent info hash"
        )

    def test_v2_only(self) -> None:
        """A link with only a v2 hash is refused as unsupported."""
        self.assertRejected(
            f"magnet:?xt=urn:btmh:1220{'ab' * 32}&dn=x",
            "BitTorrent v2 magnet links are not supported yet",
        )

    def test_conflicting_hashes(self) -> None:
        """Two different v1 hashes are refused."""
        self.assertRejected(
            f"magnet:?{XT}&xt=urn:btih:{OTHER_HEX}", "two different info hashes"
        )

    def test_bad_hash_lengths(self) -> None:
        """Hashes of the wrong length are refused."""
        for value in [HASH_HEX[:-1], HASH_HEX + "0", HASH_BASE32[:-1], HASH_BASE32 + "A", ""]:
            self.assertRejected(
                "magnet:?xt=urn:btih:" + value, "neither 40 hexadecimal digits nor 32 base32"
            )

    def test_bad_hash_characters(self) -> None:
        """Non-hex and non-base32 characters are refused."""
        for value in [
            "g" + HASH_HEX[1:],
            HASH_HEX[:20] + " " + HASH_HEX[21:],
            "1" + HASH_BASE32[1:],
            HASH_BASE32[:-1] + "=",
            "\u0661" * 40,
        ]:
            self.assertRejected(
                "magnet:?xt=urn:btih:" + value, "neither 40 hexadecimal digits nor 32 base32"
            )

    def test_too_long(self) -> None:
        """A link longer than MAX_URI_LENGTH is refused before it is parsed."""
        base = f"magnet:?{XT}&dn="
        at_limit = base + "a" * (MAX_URI_LENGTH - len(base))
        self.assertEqual(parse_magnet(at_limit).display_name, "a" * (MAX_URI_LENGTH - len(base)))
        self.assertRejected(at_limit + "a", f"longer than {MAX_URI_LENGTH} characters")

    def test_too_many_parameters(self) -> None:
        """More than MAX_PARAMETERS parameters are refused."""
        at_limit = f"magnet:?{XT}" + "&x=1" * (MAX_PARAMETERS - 1)
        self.assertEqual(parse_magnet(at_limit).info_hash, HASH)
        self.assertRejected(at_limit + "&x=1", f"more than {MAX_PARAMETERS} parameters")

    def test_lone_surrogate(self) -> None:
        """Text that is not valid Unicode is refused with MagnetError."""
        self.assertRejected(f"magnet:?{XT}&dn=\udc80", "not valid Unicode")

    def test_not_text(self) -> None:
        """Bytes are API misuse: TypeError."""
        self.assertRaises(TypeError, parse_magnet, b"magnet:?" + XT.encode())


class ConstructorTests(SynchronousTestCase):
    """Magnet refuses values parse_magnet would never produce."""

    def test_invalid_values(self) -> None:
        """Each invalid field raises ValueError."""
        cases: list[dict[str, object]] = [
            {"info_hash": b"x" * 19},
            {"info_hash": HASH_HEX},
            {"display_name": ""},
            {"display_name": "\udc80"},
            {"trackers": ("udp://a:1", "udp://a:1")},
            {"trackers": ("not a url",)},
            {"web_seeds": ("",)},
            {"peers": (("1.2.3.4", 0),)},
            {"peers": (("1.2.3.4", 1), ("1.2.3.4", 1))},
            {"peers": (("Upper.Example", 1),)},
            {"peers": (("0:0::1", 1),)},
            {"exact_length": -1},
        ]
        for case in cases:
            kwargs: dict[str, object] = {"info_hash": HASH}
            kwargs.update(case)
            self.assertRaises(ValueError, Magnet, **kwargs)

    def test_frozen(self) -> None:
        """A Magnet cannot be changed."""
        m = Magnet(HASH)
        self.assertRaises(AttributeError, setattr, m, "display_name", "x")


def _torrent(**top: object) -> bytes:
    """A small valid single-file torrent with extra top-level keys."""
    info = {b"name": "file.bin".encode(), b"piece length": 16, b"length": 20,
            b"pieces": hashlib.sha1(b"a").digest() * 2}
    meta: dict[bytes, object] = {b"info": info}
    meta.update({k.replace("_", "-").encode(): v for k, v in top.items()})
    return encode(meta)


class FromMetainfoTests(SynchronousTestCase):
    """magnet_from_metainfo."""

    def test_fields(self) -> None:
        """Hash, name, trackers flattened tier by tier, and web seeds."""
        meta = parse(
            _torrent(
                announce_list=[[b"udp://a:1", b"udp://b:1"], [b"http://c/"], [b"udp://a:1"]],
                url_list=[b"https://w/", b"bogus"],
            )
        )
        m = magnet_from_metainfo(meta)
        self.assertEqual(m.info_hash, meta.info_hash)
        self.assertEqual(m.display_name, "file.bin")
        self.assertEqual(m.trackers, ("udp://a:1", "udp://b:1", "http://c/"))
        self.assertEqual(m.web_seeds, ("https://w/",))
        self.assertEqual(m.peers, ())
        self.assertIsNone(m.exact_length)
        self.assertEqual(parse_magnet(m.to_uri()), m)

    def test_announce_only(self) -> None:
        """A torrent with only 'announce' gives that one tracker."""
        m = magnet_from_metainfo(parse(_torrent(announce=b"http://t/announce")))
        self.assertEqual(m.trackers, ("http://t/announce",))

    def test_bare(self) -> None:
        """A torrent with no trackers gives a link with only xt and dn."""
        meta = parse(_torrent())
        self.assertEqual(
            magnet_from_metainfo(meta).to_uri(),
            f"magnet:?xt=urn:btih:{meta.info_hash_hex}&dn=file.bin",
        )


# -- properties ----------------------------------------------------------------

_url_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")),
    min_size=1,
    max_size=30,
)
_urls = st.builds(
    lambda scheme, host, path: f"{scheme}://{host}{path}",
    st.sampled_from(["http", "https", "udp", "wss", "x-y+z.1"]),
    st.from_regex(r"[a-z0-9.-]{1,20}(:[0-9]{1,5})?", fullmatch=True),
    st.one_of(st.just(""), _url_text.map(lambda t: "/" + t)),
)
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True)
_hosts = st.one_of(
    st.ip_addresses(v=4).map(str),
    st.ip_addresses(v=6).map(lambda a: str(ipaddress.IPv6Address(a))),
    st.lists(_label, min_size=1, max_size=4)
    .map(".".join)
    .filter(lambda h: not h.replace(".", "").isdigit()),
)
_peers = st.tuples(_hosts, st.integers(1, 65535))
_magnets = st.builds(
    Magnet,
    info_hash=st.binary(min_size=20, max_size=20),
    display_name=st.one_of(st.none(), st.text(min_size=1)),
    trackers=st.lists(_urls, unique=True, max_size=5).map(tuple),
    peers=st.lists(_peers, unique=True, max_size=5).map(tuple),
    web_seeds=st.lists(_urls, unique=True, max_size=3).map(tuple),
    exact_length=st.one_of(st.none(), st.integers(0, 2**63)),
)


class PropertyTests(SynchronousTestCase):
    """Hypothesis properties of the codec."""

    @settings(max_examples=300, deadline=2000)
    @given(_magnets)
    def test_round_trip(self, m: Magnet) -> None:
        """Every Magnet survives to_uri and parse_magnet unchanged."""
        self.assertEqual(parse_magnet(m.to_uri()), m)

    @settings(max_examples=300, deadline=2000)
    @given(st.text(max_size=300))
    def test_arbitrary_query(self, query: str) -> None:
        """Any text after a valid xt parses or raises MagnetError, and what
        parses is stable under to_uri."""
        try:
            m = parse_magnet(f"magnet:?{XT}&{query}")
        except MagnetError:
            return
        self.assertEqual(parse_magnet(m.to_uri()), m)

    @settings(max_examples=300, deadline=2000)
    @given(st.text(max_size=200))
    def test_arbitrary_text(self, text: str) -> None:
        """Any text either parses or raises MagnetError, nothing else."""
        try:
            parse_magnet(text)
        except MagnetError:
            pass
