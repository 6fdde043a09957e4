"""net.urls.treq_url: what treq is given for a URL."""

from __future__ import annotations

import os
import subprocess
import sys

from hyperlink import EncodedURL
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.net.urls import treq_url


class TreqURLTests(SynchronousTestCase):
    """URIs skip treq's IRI-to-URI step (IPv6 literals get through, no IDNA
    table is loaded); other URLs are left for treq to convert."""

    def test_ipv6_literal(self) -> None:
        """An IPv6-literal URL comes back as an EncodedURL that treq turns
        into the same URI text (plain hyperlink refuses "::1")."""
        url = "http://[::1]:6969/announce?info_hash=%12%AB&left=0"
        self.assertRaises(ValueError, lambda: EncodedURL.from_text(url).to_uri())
        given = treq_url(url)
        self.assertIsInstance(given, EncodedURL)
        self.assertEqual(given.to_uri().to_text(), url)

    def test_uris_sent_as_they_are(self) -> None:
        """Names and IPv4 addresses, with a percent-encoded query, reach treq
        as the same text."""
        for url in ("http://127.0.0.1:6969/announce?info_hash=%00%FF&port=1",
                    "https://tracker.example/a?x=1&passkey=Ab-9_~"):
            given = treq_url(url)
            self.assertIsInstance(given, EncodedURL)
            self.assertEqual(given.to_uri().to_text(), url)

    def test_others_unchanged(self) -> None:
        """A URL with characters a URI may not hold (non-ASCII, a space) is
        given to treq as it is, for its IRI-to-URI step to convert."""
        for url in ("http://tracker.exämple/announce", "http://t.example/a b"):
            self.assertIs(treq_url(url), url)

    def test_no_idna_table(self) -> None:
        """Preparing a tracker URL and treq's request line from it never
        loads the IDNA (UTS 46) table."""
        code = (
            "import sys\n"
            "from txbittorrent.net.urls import treq_url\n"
            "url = treq_url('http://tracker.example:6969/announce?info_hash=%12')\n"
            "assert url.to_uri().to_text().encode('ascii')\n"
            "print('idna.uts46data' in sys.modules)\n"
        )
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60,
                              cwd=root, env=dict(os.environ, PYTHONPATH=root))
        self.assertEqual(done.stdout.strip(), b"False", done.stderr)
