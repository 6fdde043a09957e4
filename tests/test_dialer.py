"""peer.dialer: the Dialer's attempts and the DialMethods memory, alone."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionRefusedError
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.peer.dialer import Dial, Dialer, DialMethods
from txbittorrent.peer.msepolicy import ENCRYPTION_RETRY
from txbittorrent.testing import FakePeerHost

A = ("10.0.0.1", 6881)
B = ("10.0.0.2", 6881)


class FakeEndpoint:
    """An endpoint whose connect() Deferreds the test fires by hand."""

    def __init__(self) -> None:
        self.attempts: list[tuple[Any, Deferred[Any]]] = []
        self.cancelled = 0

    def connect(self, factory: Any) -> Deferred[Any]:
        def cancel(_: Deferred[Any]) -> None:
            self.cancelled += 1

        d: Deferred[Any] = Deferred(cancel)
        self.attempts.append((factory, d))
        return d


class DialerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.built: list[Dial] = []
        self.dialer = Dialer(self.make_link)
        self.host = FakePeerHost(Clock(), b"\x01" * 20, b"-XX0000-" + b"0" * 12)
        self.other = FakePeerHost(Clock(), b"\x02" * 20, b"-XX0000-" + b"1" * 12)
        self.failed: list[tuple[FakePeerHost, Any, str]] = []
        for host in (self.host, self.other):
            host.connect_failed = (  # type: ignore[method-assign]
                lambda address, reason, host=host: self.failed.append((host, address, reason))
            )

    def make_link(self, dial: Dial) -> Any:
        self.built.append(dial)
        return "link"

    def test_connected_then_ended(self) -> None:
        """A connected attempt is no longer half-open, builds its link once,
        and leaves the book when the endpoint's Deferred fires."""
        endpoint = FakeEndpoint()
        self.dialer.dial(self.host, A, endpoint)
        self.assertEqual(self.dialer.half_open, 1)
        self.assertIn((self.host.info_hash, A), self.dialer)
        factory, d = endpoint.attempts[0]
        self.assertEqual(factory.buildProtocol(None), "link")
        self.assertIsNone(factory.buildProtocol(None))
        self.assertEqual(self.dialer.half_open, 0)
        self.assertEqual(self.dialer.pending(self.host), 0)
        d.callback("protocol")
        self.assertNotIn((self.host.info_hash, A), self.dialer)
        self.assertEqual((len(self.built), self.failed), (1, []))

    def test_failure_reported_once(self) -> None:
        endpoint = FakeEndpoint()
        self.dialer.dial(self.host, A, endpoint)
        endpoint.attempts[0][1].errback(ConnectionRefusedError())
        self.assertEqual(self.dialer.half_open, 0)
        ((host, address, reason),) = self.failed
        self.assertEqual((host, address), (self.host, A))
        self.assertTrue(reason.startswith("connect failed: "), reason)

    def test_cancel_host(self) -> None:
        """Only the host's attempts not yet connected are cancelled, each
        reported once; the endpoint is told to stop."""
        endpoint = FakeEndpoint()
        self.dialer.dial(self.host, A, endpoint)
        self.dialer.dial(self.host, B, endpoint)
        self.dialer.dial(self.other, A, endpoint)
        endpoint.attempts[1][0].buildProtocol(None)  # B is connected
        self.dialer.cancel_host(self.host, "torrent removed")
        self.assertEqual(self.failed, [(self.host, A, "torrent removed")])
        self.assertEqual(endpoint.cancelled, 1)
        self.assertEqual(self.dialer.pending(self.other), 1)
        self.assertEqual(self.dialer.half_open, 1)
        self.dialer.cancel_all("session stopped")
        self.assertEqual(self.failed[1:], [(self.other, A, "session stopped")])
        self.assertEqual(self.dialer.half_open, 0)


class DialMethodsTests(SynchronousTestCase):
    def test_flip_and_first_reason(self) -> None:
        memory = DialMethods(size=2)
        self.assertFalse(memory.encrypted(A))
        self.assertTrue(memory.fell_back(A, False).startswith(ENCRYPTION_RETRY))
        self.assertTrue(memory.encrypted(A))
        self.assertFalse(memory.fell_back(A, True).startswith(ENCRYPTION_RETRY))
        self.assertFalse(memory.encrypted(A))

    def test_lru(self) -> None:
        """The least recently remembered address goes first."""
        memory = DialMethods(size=2, encrypted_first=True)
        self.assertTrue(memory.encrypted(A))
        memory.remember(A, False)
        memory.remember(B, False)
        memory.remember(A, False)  # A is now the most recent
        memory.remember(("10.0.0.3", 1), False)
        self.assertEqual(len(memory), 2)
        self.assertFalse(memory.encrypted(A))
        self.assertTrue(memory.encrypted(B))  # forgotten: the default again
