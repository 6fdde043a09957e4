"""net.urls.treq_url: what treq is given for a URL."""

from __future__ import annotations

from hyperlink import EncodedURL
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.net.urls import treq_url


class TreqURLTests(SynchronousTestCase):
    """IPv6-literal hosts get past treq's IDNA step; other URLs are untouched."""

    def test_ipv6_literal(self) -> None:
        """An IPv6-literal URL comes back as an EncodedURL that treq turns
        into the same URI text (plain hyperlink refuses "::1")."""
        url = "http://[::1]:6969/announce?info_hash=%12%AB&left=0"
        self.assertRaises(ValueError, lambda: EncodedURL.from_text(url).to_uri())
        given = treq_url(url)
        self.assertIsInstance(given, EncodedURL)
        self.assertEqual(given.to_uri().to_text(), url)

    def test_others_unchanged(self) -> None:
        """Names and IPv4 addresses are given to treq as they are."""
        for url in ("http://127.0.0.1:6969/announce", "https://tracker.example/a?x=1"):
            self.assertIs(treq_url(url), url)
