"""Tests for txbittorrent.tracker.announcer, with fake tracker clients and a Clock."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.tracker.announcer import Announcer
from txbittorrent.tracker.config import TrackerConfig
from txbittorrent.core.tracker.announce import (
    AnnounceEvent,
    AnnounceRequest,
    AnnounceResponse,
    TrackerFailure,
)
from txbittorrent.errors import RemoteProtocolError

INFO_HASH = bytes(range(20))
PEER_ID = b"-TX0010-abcdefghijkl"
A, B, C = "http://a.test/announce", "udp://b.test:6969", "https://c.test/announce"
OK = AnnounceResponse(interval=1800, complete=3, incomplete=4,
                      peers=(("10.0.0.1", 6881),), peers6=(("::1", 6882),))


class NoShuffle(random.Random):
    """A seeded Random whose shuffle keeps the order, so tiers stay as written."""

    def shuffle(self, x: Any, random: Any = None) -> None:
        pass


@dataclass
class Call:
    """One announce a fake client received."""

    url: str
    request: AnnounceRequest
    deferred: Deferred[AnnounceResponse]


class FakeClient:
    """Records announces; the test fires their Deferreds."""

    def __init__(self, log: list[Call]) -> None:
        self.log = log
        self.cancelled: list[str] = []

    def announce(self, url: str, request: AnnounceRequest) -> Deferred[AnnounceResponse]:
        d: Deferred[AnnounceResponse] = Deferred(lambda _: self.cancelled.append(url))
        self.log.append(Call(url, request, d))
        return d


class Host:
    """The torrent's side: port 6881, (10, 20, test.left), peers kept by the test."""

    def __init__(self, test: Any, on_reply: Any = None, on_error: Any = None) -> None:
        self.test = test
        self.on_reply = on_reply
        self.on_error = on_error

    def listen_port(self) -> int:
        return 6881

    def transfer_stats(self) -> tuple[int, int, int]:
        return 10, 20, self.test.left

    def add_peers(self, peers: Any, source: str) -> None:
        self.test.peers.append((peers, source))

    def tracker_reply(self, url: str, response: AnnounceResponse) -> None:
        if self.on_reply is not None:
            self.on_reply(url, response)

    def tracker_error(self, url: str, message: str) -> None:
        if self.on_error is not None:
            self.on_error(url, message)


class AnnouncerTests(SynchronousTestCase):
    """The announcer's schedule, tier walk and events."""

    def make(self, tiers: list[list[str]], **options: Any) -> Announcer:
        """An announcer over fake clients; calls land in self.calls, peers in self.peers."""
        self.clock = Clock()
        self.calls: list[Call] = []
        self.http = FakeClient(self.calls)
        self.udp = FakeClient(self.calls)
        self.peers: list[tuple[list[Any], str]] = []
        self.left = 100
        key = options.pop("key", None)
        host = Host(self, options.pop("on_reply", None), options.pop("on_error", None))
        return Announcer(
            tiers, INFO_HASH, PEER_ID, host, self.clock, NoShuffle(7), self.http, self.udp,
            TrackerConfig(**options), key=key,
        )

    def pending(self) -> list[Call]:
        """Calls not answered yet."""
        return [c for c in self.calls if not c.deferred.called]

    def answer(self, url: str, result: Any = OK) -> Call:
        """Fire the one pending call to ``url`` with ``result`` (a response or exception)."""
        [call] = [c for c in self.pending() if c.url == url]
        if isinstance(result, Exception):
            call.deferred.errback(result)
        else:
            call.deferred.callback(result)
        return call

    def events(self) -> list[tuple[str, AnnounceEvent | None]]:
        """(url, event) of every call so far."""
        return [(c.url, c.request.event) for c in self.calls]

    def test_started_then_interval(self) -> None:
        """start() announces started; the next announce (no event) comes at the interval."""
        announcer = self.make([[A]])
        announcer.start()
        [call] = self.calls
        self.assertEqual(call.request, AnnounceRequest(
            INFO_HASH, PEER_ID, 6881, uploaded=10, downloaded=20, left=100,
            event=AnnounceEvent.STARTED, numwant=50, key=announcer.key,
        ))
        self.answer(A)
        self.assertEqual(self.peers, [([("10.0.0.1", 6881), ("::1", 6882)], A)])
        self.clock.advance(1799)
        self.assertEqual(len(self.calls), 1)
        self.clock.advance(1)
        self.assertEqual(self.events(), [(A, AnnounceEvent.STARTED), (A, None)])

    def test_key_from_rng(self) -> None:
        """Without a key, one 32-bit key is drawn from the rng and used throughout."""
        announcer = self.make([[A]])
        rng = NoShuffle(7)
        self.assertEqual(announcer.key, rng.getrandbits(32))
        self.assertEqual(self.make([[A]], key=5).key, 5)

    def test_failure_falls_through_tiers_and_backs_off(self) -> None:
        """A failure moves on to the next tier at once; when all failed, retry after backoff."""
        announcer = self.make([[A], [B]])
        announcer.start()
        self.answer(A, RemoteProtocolError("garbage"))
        self.assertEqual(self.events(), [(A, AnnounceEvent.STARTED), (B, AnnounceEvent.STARTED)])
        self.answer(B, TimeoutError("no answer"))
        self.clock.advance(59)
        self.assertEqual(len(self.calls), 2)
        self.clock.advance(1)
        self.assertEqual(self.events()[-1], (A, AnnounceEvent.STARTED))
        self.answer(A, RemoteProtocolError("garbage"))
        self.answer(B, RemoteProtocolError("garbage"))
        self.clock.advance(119)
        self.assertEqual(len(self.calls), 4)
        self.clock.advance(1)
        self.assertEqual(len(self.calls), 5)
        [[a], [b]] = announcer.trackers()
        self.assertEqual((a.failures, a.last_error, a.updating), (2, "garbage", True))
        self.assertEqual((b.failures, b.next_announce), (2, 60 + 120))

    def test_move_to_front(self) -> None:
        """BEP 12: a tracker that answers moves to the front of its tier and is used next."""
        announcer = self.make([[A, B, C]])
        announcer.start()
        self.answer(A, RemoteProtocolError("down"))
        self.answer(B)
        self.assertEqual([s.url for s in announcer.trackers()[0]], [B, A, C])
        self.clock.advance(1800)
        self.assertEqual(self.calls[-1].url, B)
        self.assertEqual(self.calls[-1].request.event, None)

    def test_announce_to_all(self) -> None:
        """With announce_to_all each tier is announced concurrently and walks on its own."""
        announcer = self.make([[A, C], [B]], announce_to_all=True)
        announcer.start()
        self.assertEqual(self.events(), [(A, AnnounceEvent.STARTED), (B, AnnounceEvent.STARTED)])
        self.answer(A, RemoteProtocolError("down"))
        self.assertEqual(self.events()[-1], (C, AnnounceEvent.STARTED))
        self.answer(C, AnnounceResponse(interval=600))
        self.answer(B, AnnounceResponse(interval=900))
        self.clock.advance(600)
        self.assertEqual(self.events()[-1], (C, None))
        self.clock.advance(300)
        self.assertEqual(self.events()[-1], (B, None))

    def test_completed_once(self) -> None:
        """completed() sends completed once to the started tracker; later announces have none."""
        announcer = self.make([[A]])
        announcer.start()
        self.answer(A)
        self.left = 0
        announcer.completed()
        announcer.completed()
        self.assertEqual(self.events()[-1], (A, AnnounceEvent.COMPLETED))
        self.assertEqual(self.calls[-1].request.left, 0)
        self.answer(A)
        announcer.completed()
        self.clock.advance(1800)
        self.assertEqual([e for _, e in self.events()],
                         [AnnounceEvent.STARTED, AnnounceEvent.COMPLETED, None])

    def test_completed_while_starting(self) -> None:
        """completed() while started is in flight sends completed after started is answered."""
        announcer = self.make([[A]])
        announcer.start()
        announcer.completed()
        self.assertEqual(len(self.calls), 1)
        self.answer(A)
        self.assertEqual(self.events()[-1], (A, AnnounceEvent.COMPLETED))

    def test_completed_not_to_unstarted(self) -> None:
        """A tracker first reached after completion gets started, never completed."""
        announcer = self.make([[A], [B]])
        announcer.completed()
        announcer.start()
        self.answer(A, RemoteProtocolError("down"))
        self.answer(B)
        self.clock.advance(1800)
        self.answer(A, RemoteProtocolError("down"))
        self.assertEqual(self.events(), [
            (A, AnnounceEvent.STARTED), (B, AnnounceEvent.STARTED),
            (A, AnnounceEvent.STARTED), (B, None),
        ])

    def test_stop_sends_stopped(self) -> None:
        """stop() sends stopped (numwant 0) to trackers that got started, then fires."""
        announcer = self.make([[A], [B]], announce_to_all=True)
        announcer.start()
        self.answer(A)
        self.answer(B, RemoteProtocolError("down"))
        d = announcer.stop()
        self.assertNoResult(d)
        self.assertEqual(self.events()[-1], (A, AnnounceEvent.STOPPED))
        self.assertEqual(self.calls[-1].request.numwant, 0)
        self.answer(A)
        self.successResultOf(d)
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.assertEqual(len(self.calls), 3)

    def test_stop_bounded(self) -> None:
        """stop() fires after 5 s when a tracker never acknowledges stopped."""
        announcer = self.make([[A]])
        announcer.start()
        self.answer(A)
        d = announcer.stop()
        self.clock.advance(4.9)
        self.assertNoResult(d)
        self.clock.advance(0.1)
        self.successResultOf(d)
        self.assertEqual(self.http.cancelled, [A])
        self.assertEqual(self.clock.getDelayedCalls(), [])
        self.successResultOf(announcer.stop())

    def test_stop_cancels_in_flight(self) -> None:
        """stop() cancels an announce under way and sends no stopped to an unstarted tracker."""
        announcer = self.make([[A]])
        announcer.start()
        d = announcer.stop()
        self.successResultOf(d)
        self.assertEqual(self.http.cancelled, [A])
        self.assertEqual(len(self.calls), 1)
        announcer.start()
        self.assertEqual(len(self.calls), 1)

    def test_trackers_statuses(self) -> None:
        """trackers() gives the tiers with counts, errors and times per URL."""
        announcer = self.make([[A, C], [B]])
        announcer.start()
        [[a, c], [b]] = announcer.trackers()
        self.assertEqual((a.url, a.tier, a.updating, c.updating), (A, 0, True, False))
        self.answer(A, TrackerFailure("unregistered torrent", retry_in=600.0))
        self.clock.advance(10)
        self.answer(C)
        [[c, a], [b]] = announcer.trackers()
        self.assertEqual((a.failures, a.last_error, a.next_announce),
                         (1, "tracker failure: unregistered torrent", 600.0))
        self.assertEqual((c.complete, c.incomplete, c.peers, c.peers6, c.next_announce),
                         (3, 4, 1, 1, 1810.0))
        self.assertEqual((b.url, b.tier, b.updating, b.next_announce), (B, 1, False, None))

    def test_no_trackers(self) -> None:
        """A torrent without trackers announces nothing and leaves no timer."""
        announcer = self.make([])
        announcer.start()
        announcer.force_announce()
        announcer.completed()
        self.assertEqual((self.calls, announcer.trackers()), ([], ()))
        self.successResultOf(announcer.stop())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_errors_never_raise(self) -> None:
        """A client that raises, an unknown scheme or a failing stats provider are failures."""

        class Raising:
            def announce(self, url: str, request: AnnounceRequest) -> Any:
                raise ValueError("boom")

        announcer = self.make([["wss://x.test/announce"], [A]])
        announcer._clients["http"] = Raising()  # type: ignore[assignment]
        announcer.start()
        [[wss], [a]] = announcer.trackers()
        self.assertEqual((wss.failures, a.failures, a.last_error), (1, 1, "boom"))
        self.assertIn("unsupported", wss.last_error or "")

    def test_add_peers_error_contained(self) -> None:
        """An exception from the host's add_peers is logged, and announcing goes on."""
        announcer = self.make([[A]])
        announcer._host.add_peers = lambda peers, source: 1 / 0  # type: ignore[method-assign]
        announcer.start()
        self.answer(A)
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)
        self.clock.advance(1800)
        self.assertEqual(len(self.calls), 2)

    def test_tracker_id_echoed(self) -> None:
        """A tracker id from a reply is sent back in the next announce to that tracker."""
        announcer = self.make([[A]])
        announcer.start()
        self.answer(A, AnnounceResponse(interval=60, tracker_id=b"T1"))
        self.clock.advance(60)
        self.assertEqual(self.calls[-1].request.tracker_id, b"T1")

    def test_force_announce_respects_min_interval(self) -> None:
        """force_announce() announces now, or when min interval allows."""
        announcer = self.make([[A]])
        announcer.start()
        self.answer(A, AnnounceResponse(interval=1800, min_interval=300))
        self.clock.advance(100)
        announcer.force_announce()
        self.clock.advance(199)
        self.assertEqual(len(self.calls), 1)
        self.clock.advance(1)
        self.assertEqual(len(self.calls), 2)
        self.answer(A, AnnounceResponse(interval=1800))
        announcer.force_announce()
        self.assertEqual(len(self.calls), 3)

    def test_retry_never(self) -> None:
        """A tracker that says never retry is skipped from then on."""
        announcer = self.make([[A, C]])
        announcer.start()
        self.answer(A, TrackerFailure("banned", retry_in=float("inf")))
        self.answer(C, RemoteProtocolError("down"))
        self.clock.advance(60)
        self.assertEqual([c.url for c in self.calls], [A, C, C])
        self.answer(C)
        self.clock.advance(1800)
        self.assertEqual([c.url for c in self.calls], [A, C, C, C])

    def test_client_cancellation_is_a_failure(self) -> None:
        """A CancelledError the announcer did not cause is a failure, retried later."""
        announcer = self.make([[A]])
        announcer.start()
        self.answer(A, CancelledError())
        [[a]] = announcer.trackers()
        self.assertEqual((a.failures, a.last_error), (1, "CancelledError"))
        self.clock.advance(60)
        self.assertEqual(len(self.calls), 2)


class TrackerChangeTests(SynchronousTestCase):
    """Announcer.add_tracker and remove_tracker, on a running or idle announcer."""

    make = AnnouncerTests.make
    pending = AnnouncerTests.pending
    answer = AnnouncerTests.answer
    events = AnnouncerTests.events

    def watch(self, tiers: list[list[str]], **options: Any) -> Announcer:
        """``make``, with the replies and errors reported kept in self.replies and self.errors."""
        self.replies: list[str] = []
        self.errors: list[tuple[str, str]] = []
        return self.make(tiers, on_reply=lambda url, response: self.replies.append(url),
                         on_error=lambda url, reason: self.errors.append((url, reason)),
                         **options)

    def urls(self, announcer: Announcer) -> list[list[str]]:
        """The tiers' URLs as trackers() lists them."""
        return [[s.url for s in tier] for tier in announcer.trackers()]

    def test_add_to_running_without_trackers(self) -> None:
        """A tracker added to a running announcer that had none hears started at once."""
        announcer = self.watch([])
        announcer.start()
        self.assertEqual(self.calls, [])
        announcer.add_tracker(A)
        self.assertEqual(self.events(), [(A, AnnounceEvent.STARTED)])
        self.answer(A)
        self.assertEqual(self.replies, [A])
        self.clock.advance(1800)
        self.assertEqual(self.events()[-1], (A, None))

    def test_add_while_idle(self) -> None:
        """A tracker added before start() is announced by start(), not before."""
        announcer = self.watch([])
        announcer.add_tracker(A)
        self.assertEqual(self.calls, [])
        announcer.start()
        self.assertEqual(self.events(), [(A, AnnounceEvent.STARTED)])

    def test_add_new_tier_waits_its_turn(self) -> None:
        """A new last tier is not announced to while the first tier works (no announce_to_all)."""
        announcer = self.watch([[A]])
        announcer.start()
        self.answer(A)
        announcer.add_tracker(B)
        self.assertEqual(len(self.calls), 1)
        self.assertEqual(self.urls(announcer), [[A], [B]])
        self.clock.advance(1800)
        self.answer(A, RemoteProtocolError("down"))
        self.assertEqual(self.events()[-1], (B, AnnounceEvent.STARTED))

    def test_add_to_existing_tier(self) -> None:
        """A URL added to a tier goes at its end and is tried when the walk reaches it."""
        announcer = self.watch([[A]])
        announcer.start()
        announcer.add_tracker(C, 0)
        self.assertEqual(len(self.calls), 1)
        self.answer(A, RemoteProtocolError("down"))
        self.assertEqual(self.events()[-1], (C, AnnounceEvent.STARTED))

    def test_add_new_tier_with_announce_to_all(self) -> None:
        """With announce_to_all a tracker in a new tier hears started at once."""
        announcer = self.watch([[A]], announce_to_all=True)
        announcer.start()
        announcer.add_tracker(B)
        self.assertEqual(self.events(), [(A, AnnounceEvent.STARTED), (B, AnnounceEvent.STARTED)])
        announcer.add_tracker(C, 0)
        self.assertEqual(len(self.calls), 2)

    def test_add_duplicate(self) -> None:
        """Adding a tracker already there changes nothing and sends nothing."""
        announcer = self.watch([[A], [B]], announce_to_all=True)
        announcer.start()
        announcer.add_tracker(B)
        announcer.add_tracker(A, 1)
        self.assertEqual(len(self.calls), 2)
        self.assertEqual(self.urls(announcer), [[A], [B]])

    def test_remove_unknown(self) -> None:
        """Removing a tracker that is not there does nothing."""
        announcer = self.watch([[A]])
        announcer.start()
        announcer.remove_tracker(B)
        self.assertEqual(len(self.calls), 1)
        self.assertEqual(self.urls(announcer), [[A]])

    def test_remove_started_sends_stopped(self) -> None:
        """Removing a tracker that heard started sends it stopped; its answer is ignored."""
        announcer = self.watch([[A, C]])
        announcer.start()
        self.answer(A)
        announcer.remove_tracker(A)
        self.assertEqual(self.events()[-1], (A, AnnounceEvent.STOPPED))
        self.assertEqual(self.calls[-1].request.numwant, 0)
        self.assertEqual(self.urls(announcer), [[C]])
        self.answer(A)
        self.assertEqual((self.replies, len(self.peers)), ([A], 1))
        self.clock.advance(1800)
        self.assertEqual(self.events()[-1], (C, AnnounceEvent.STARTED))
        self.successResultOf(announcer.stop())
        self.assertEqual(self.events()[-1], (C, AnnounceEvent.STARTED))

    def test_remove_started_unanswered_stopped(self) -> None:
        """A stopped that the removed tracker never answers is given up after stop_timeout."""
        announcer = self.watch([[A], [B]], announce_to_all=True)
        announcer.start()
        self.answer(A)
        announcer.remove_tracker(A)
        self.clock.advance(5)
        self.assertEqual(self.http.cancelled, [A])
        self.assertEqual(self.errors, [])

    def test_remove_unstarted_sends_nothing(self) -> None:
        """A tracker that never acknowledged started hears nothing when removed."""
        announcer = self.watch([[A], [B]])
        announcer.start()
        self.answer(A)
        announcer.remove_tracker(B)
        self.assertEqual(self.events(), [(A, AnnounceEvent.STARTED)])

    def test_remove_in_flight(self) -> None:
        """Removing the tracker announced to cancels it, reports no error, tries the next URL."""
        announcer = self.watch([[A, C, "http://d.test/announce"], [B]])
        announcer.start()
        announcer.remove_tracker(A)
        self.assertEqual(self.http.cancelled, [A])
        self.assertEqual(self.errors, [])
        self.assertEqual(self.events(), [(A, AnnounceEvent.STARTED), (C, AnnounceEvent.STARTED)])
        self.assertEqual(self.urls(announcer), [[C, "http://d.test/announce"], [B]])
        self.answer(C)
        self.assertEqual(self.replies, [C])

    def test_remove_in_flight_after_started(self) -> None:
        """A re-announce in flight to a started tracker is cancelled and stopped is sent."""
        announcer = self.watch([[A, C]])
        announcer.start()
        self.answer(A)
        self.clock.advance(1800)
        announcer.remove_tracker(A)
        self.assertEqual(self.http.cancelled, [A])
        self.assertEqual(self.events(), [
            (A, AnnounceEvent.STARTED), (A, None), (A, AnnounceEvent.STOPPED),
            (C, AnnounceEvent.STARTED),
        ])
        self.assertEqual(self.errors, [])

    def test_late_reply_ignored(self) -> None:
        """A reply that arrives for a removed tracker is ignored: no peers, no reply, no record."""

        class NoCanceller(FakeClient):
            """A client whose Deferreds cannot be cancelled: the reply still comes."""

            def announce(self, url: str, request: AnnounceRequest) -> Deferred[AnnounceResponse]:
                d: Deferred[AnnounceResponse] = Deferred()
                self.log.append(Call(url, request, d))
                return d

        announcer = self.watch([[A, C]])
        announcer._clients["http"] = NoCanceller(self.calls)  # type: ignore[assignment]
        announcer.start()
        [call] = self.calls
        announcer.remove_tracker(A)
        call.deferred.callback(OK)
        self.assertEqual((self.peers, self.replies, self.errors), ([], [], []))
        self.assertEqual(self.urls(announcer), [[C]])

    def test_reply_on_cancel_ignored(self) -> None:
        """A client that answers when cancelled (a reply it already had) is ignored once removed."""

        class ReplyOnCancel(FakeClient):
            """A client whose cancellation delivers a reply."""

            def announce(self, url: str, request: AnnounceRequest) -> Deferred[AnnounceResponse]:
                d: Deferred[AnnounceResponse] = Deferred(lambda d: d.callback(OK))
                self.log.append(Call(url, request, d))
                return d

        announcer = self.watch([[A, C]])
        announcer._clients["http"] = ReplyOnCancel(self.calls)  # type: ignore[assignment]
        announcer.start()
        announcer.remove_tracker(A)
        self.assertEqual((self.peers, self.replies, self.errors), ([], [], []))
        self.assertEqual(self.events(), [(A, AnnounceEvent.STARTED), (C, AnnounceEvent.STARTED)])

    def test_late_failure_ignored(self) -> None:
        """A failure that arrives for a removed tracker is ignored too."""
        announcer = self.watch([[A, C]])
        announcer.start()
        self.answer(A)
        announcer.remove_tracker(A)
        self.answer(A, RemoteProtocolError("gone"))
        self.assertEqual(self.errors, [])
        [[c]] = announcer.trackers()
        self.assertEqual((c.url, c.failures), (C, 0))

    def test_remove_in_flight_with_announce_to_all(self) -> None:
        """With announce_to_all the removed tracker's tier goes on alone with its next URL."""
        announcer = self.watch([[A, C], [B]], announce_to_all=True)
        announcer.start()
        announcer.remove_tracker(A)
        self.assertEqual(self.events(), [
            (A, AnnounceEvent.STARTED), (B, AnnounceEvent.STARTED), (C, AnnounceEvent.STARTED),
        ])
        self.assertEqual(self.errors, [])

    def test_remove_while_stopped(self) -> None:
        """After stop(), removing a tracker sends nothing more."""
        announcer = self.watch([[A]])
        announcer.start()
        self.answer(A)
        d = announcer.stop()
        self.answer(A)
        self.successResultOf(d)
        announcer.remove_tracker(A)
        self.assertEqual(len(self.calls), 2)
        self.assertEqual(announcer.trackers(), ())

    def test_remove_last_in_flight_goes_to_next_tier(self) -> None:
        """Removing the in-flight tracker, alone in its tier, goes on with the next tier."""
        announcer = self.watch([[A], [B]])
        announcer.start()
        announcer.remove_tracker(A)
        self.assertEqual(self.events(), [(A, AnnounceEvent.STARTED), (B, AnnounceEvent.STARTED)])


    def test_remove_end_of_tier_in_flight(self) -> None:
        """Removing the in-flight last URL of a tier goes on to the next tier, not a failed URL."""
        announcer = self.watch([[A, C], [B]])
        announcer.start()
        self.answer(A, RemoteProtocolError("down"))
        announcer.remove_tracker(C)
        self.assertEqual(self.events(), [
            (A, AnnounceEvent.STARTED), (C, AnnounceEvent.STARTED), (B, AnnounceEvent.STARTED),
        ])


    def test_remove_tier_keeps_lane_timers(self) -> None:
        """With announce_to_all, removing a one-URL tier leaves other tiers on their schedules."""
        announcer = self.watch([[A], [B], [C]], announce_to_all=True)
        announcer.start()
        self.answer(A, AnnounceResponse(interval=100))
        self.answer(B, AnnounceResponse(interval=200))
        self.answer(C, AnnounceResponse(interval=300))
        announcer.remove_tracker(A)
        self.clock.advance(100)
        self.assertEqual(self.events()[-1], (A, AnnounceEvent.STOPPED))
        self.clock.advance(100)
        self.assertEqual(self.events()[-1], (B, None))
        self.clock.advance(100)
        self.assertEqual(self.events()[-1], (C, None))

