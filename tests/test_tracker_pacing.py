"""AnnouncePacer and PacedTracker: HTTP announces a few at a time."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import CancelledError, Deferred, fail, succeed
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.tracker.announce import AnnounceEvent, AnnounceRequest
from txbittorrent.tracker.pacing import AnnouncePacer, PacedTracker


class AnnouncePacerTests(SynchronousTestCase):
    """The limit, the order, cancellation and announces that end at once."""

    def setUp(self) -> None:
        self.clock = Clock()
        self.pacer = AnnouncePacer(self.clock, limit=2)
        self.started: list[tuple[int, Deferred[Any]]] = []

    def start(self, n: int) -> Deferred[Any]:
        def go() -> Deferred[Any]:
            d: Deferred[Any] = Deferred()
            self.started.append((n, d))
            return d

        return self.pacer.run(go)

    def test_limit_and_order(self) -> None:
        """At most ``limit`` run; the rest start in order as earlier ones end,
        and each result reaches its own caller."""
        outs = [self.start(n) for n in range(4)]
        self.assertEqual([n for n, _ in self.started], [0, 1])
        self.assertEqual((self.pacer.running, self.pacer.waiting), (2, 2))
        self.started[1][1].callback("one")
        self.assertEqual([n for n, _ in self.started], [0, 1])  # (in the next turn)
        self.clock.advance(0)
        self.assertEqual([n for n, _ in self.started], [0, 1, 2])
        self.started[0][1].errback(ValueError("zero"))
        self.clock.advance(0)
        self.assertEqual([n for n, _ in self.started], [0, 1, 2, 3])
        self.assertEqual(self.successResultOf(outs[1]), "one")
        self.failureResultOf(outs[0], ValueError)
        for _, d in self.started[2:]:
            d.callback(None)
        self.assertEqual((self.pacer.running, self.pacer.waiting), (0, 0))

    def test_cancel_waiting(self) -> None:
        """A queued announce cancelled leaves the queue and never starts."""
        outs = [self.start(n) for n in range(3)]
        outs[2].cancel()
        self.failureResultOf(outs[2], CancelledError)
        self.started[0][1].callback(None)
        self.clock.advance(0)
        self.assertEqual([n for n, _ in self.started], [0, 1])
        self.assertEqual(self.pacer.running, 1)

    def test_cancel_running(self) -> None:
        """Cancelling a running announce cancels it in the client; the next starts."""
        outs = [self.start(n) for n in range(3)]
        outs[0].cancel()
        self.failureResultOf(outs[0], CancelledError)
        self.clock.advance(0)
        self.assertEqual([n for n, _ in self.started], [0, 1, 2])

    def test_cancelled_in_one_turn_never_start(self) -> None:
        """Announces cancelled in the turn an earlier one ended (a session
        stopping) are never started."""
        outs = [self.start(n) for n in range(4)]
        for d in outs:
            d.cancel()
            self.failureResultOf(d, CancelledError)
        self.clock.advance(0)
        self.assertEqual([n for n, _ in self.started], [0, 1])
        self.assertEqual((self.pacer.running, self.pacer.waiting), (0, 0))

    def test_many_that_end_at_once(self) -> None:
        """Thousands of announces that fail at once run without deep recursion."""
        outs = [self.pacer.run(lambda: fail(ValueError("refused"))) for _ in range(5000)]
        while self.clock.getDelayedCalls():
            self.clock.advance(0)
        for d in outs:
            self.failureResultOf(d, ValueError)
        self.assertEqual(self.pacer.running, 0)

    def test_limit_checked(self) -> None:
        """A limit below 1 is refused."""
        self.assertRaises(ValueError, AnnouncePacer, Clock(), 0)


class _Client:
    def __init__(self) -> None:
        self.calls: list[AnnounceEvent | None] = []

    def announce(self, url: str, request: AnnounceRequest) -> Deferred[Any]:
        self.calls.append(request.event)
        return Deferred() if request.event is not AnnounceEvent.STOPPED else succeed(None)


class PacedTrackerTests(SynchronousTestCase):
    """stopped announces skip the queue."""

    def request(self, event: AnnounceEvent | None) -> AnnounceRequest:
        return AnnounceRequest(info_hash=b"\x01" * 20, peer_id=b"\x02" * 20, port=1,
                               uploaded=0, downloaded=0, left=0, event=event)

    def test_stopped_skips_the_queue(self) -> None:
        """With the pacer full, a started announce waits and a stopped one goes."""
        client = _Client()
        tracker = PacedTracker(client, AnnouncePacer(Clock(), limit=1))
        tracker.announce("http://t/announce", self.request(AnnounceEvent.STARTED))
        tracker.announce("http://t/announce", self.request(AnnounceEvent.STARTED))
        d = tracker.announce("http://t/announce", self.request(AnnounceEvent.STOPPED))
        self.successResultOf(d)
        self.assertEqual(client.calls, [AnnounceEvent.STARTED, AnnounceEvent.STOPPED])
