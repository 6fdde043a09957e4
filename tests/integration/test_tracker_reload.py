"""``txbittorrent tracker`` as a process: SIGHUP reloads ``--whitelist``, and
``--warning`` reaches HTTP clients."""

from __future__ import annotations

import http.client
import os
import signal
from urllib.parse import quote_from_bytes

from twisted.trial.unittest import SynchronousTestCase

from tests.integration import ltutil
from tests.integration.trackerproc import LOOPBACK, TrackerChild
from txbittorrent.core.bencoding import decode

FIRST = bytes.fromhex("11" * 20)
SECOND = bytes.fromhex("22" * 20)


class ReloadTests(SynchronousTestCase):
    """The whitelist file is read again on SIGHUP; a bad file keeps the old list."""

    def announce(self, port: int, info_hash: bytes) -> dict[bytes, object]:
        query = (f"info_hash={quote_from_bytes(info_hash)}&peer_id=-TX0010-aaaaaaaaaaaa"
                 "&port=7001&uploaded=0&downloaded=0&left=5&compact=1")
        connection = http.client.HTTPConnection(LOOPBACK, port, timeout=10)
        try:
            connection.request("GET", "/announce?" + query)
            body = connection.getresponse().read()
        finally:
            connection.close()
        reply = decode(body)
        assert isinstance(reply, dict)
        return reply

    def test_sighup_reload_and_warning(self) -> None:
        """Only FIRST is served; after the file lists SECOND and SIGHUP, SECOND
        is; a malformed file and SIGHUP change nothing; replies carry --warning."""
        root = os.path.abspath(self.mktemp())
        os.makedirs(root)
        whitelist = os.path.join(root, "whitelist")
        with open(whitelist, "w") as f:
            f.write(FIRST.hex() + "\n")
        tracker = TrackerChild(self, root, extra=("--whitelist", whitelist,
                                                  "--warning", "moving soon"))
        port = tracker.http_port
        self.assertEqual(self.announce(port, FIRST)[b"warning message"], b"moving soon")
        self.assertIn(b"failure reason", self.announce(port, SECOND))
        with open(whitelist, "w") as f:
            f.write(SECOND.hex() + "\n")
        tracker.process.send_signal(signal.SIGHUP)
        ltutil.wait_for(lambda: b"failure reason" not in self.announce(port, SECOND), 20,
                        "the reloaded whitelist", tracker.log_tail)
        self.assertIn(b"failure reason", self.announce(port, FIRST))
        with open(whitelist, "w") as f:
            f.write("not a hash\n")
        tracker.process.send_signal(signal.SIGHUP)
        ltutil.wait_for(lambda: "whitelist not reloaded" in tracker.log_tail(), 20,
                        "the refusal in the log", tracker.log_tail)
        self.assertNotIn(b"failure reason", self.announce(port, SECOND))
