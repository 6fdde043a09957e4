"""Tests for txbittorrent.events and txbittorrent.eventtypes: the typed event stream."""

from __future__ import annotations

import json
from typing import Any

from twisted.python.failure import Failure
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.core.tracker.announce import AnnounceResponse
from txbittorrent.eventtypes import DHTReady
from txbittorrent.events import (
    EVENT_TYPES,
    Complete,
    DiskError,
    EventBus,
    MetadataReceived,
    PeerBanned,
    PeerConnected,
    PeerLost,
    PieceFailed,
    PiecePassed,
    Progress,
    StateChanged,
    SwarmPublisher,
    TorrentAdded,
    TorrentEvent,
    TorrentRemoved,
    TrackerError,
    TrackerReply,
    announcer_callbacks,
    attach_observer,
    attach_piece_callbacks,
)
from txbittorrent.observers import TorrentObserver
from txbittorrent.swarm.peerstate import PeerInfo

IH1 = bytes(range(20))
IH2 = b"\xff" * 20
PEER_ID = b"-TX0001-abcdefghijkl"


def peer_info(address: tuple[str, int] = ("10.0.0.1", 6881)) -> PeerInfo:
    return PeerInfo(
        address=address, peer_id=PEER_ID, client="txbittorrent 0.0.1", flags="I",
        outgoing=False, progress=0.5, download_rate=1.0, upload_rate=2.0, downloaded=3,
        uploaded=4, am_choking=True, am_interested=False, peer_choking=True,
        peer_interested=False, snubbed=False, outstanding_requests=0,
        pending_peer_requests=0,
    )


def boom() -> Failure:
    try:
        raise OSError(28, "No space left on device")
    except OSError:
        return Failure()


def one_of_each(info_hash: bytes = IH1) -> list[TorrentEvent]:
    """An example of every event type, rich objects attached."""
    response = AnnounceResponse(interval=1800, complete=5, incomplete=7,
                                peers=(("10.0.0.2", 1),), peers6=(("::1", 2),))
    return [
        TorrentAdded(info_hash, "ubuntu.iso"),
        TorrentRemoved(info_hash),
        StateChanged(info_hash, "stopped", "active"),
        Progress(info_hash, 3, 10, 3 * 16384, 7 * 16384, 1500.5, 20.0, 4),
        PiecePassed(info_hash, 3),
        PieceFailed(info_hash, 4, "hash"),
        PeerConnected.from_info(info_hash, peer_info(("::1", 6881))),
        PeerLost.from_info(info_hash, peer_info(), "connection lost"),
        PeerBanned(info_hash, ("10.0.0.3", 51413), None, "3 failed pieces"),
        TrackerReply.from_response(info_hash, "http://t.example/announce", response),
        TrackerError(info_hash, "udp://t.example:80", "timed out"),
        DiskError.from_failure(info_hash, 9, boom()),
        MetadataReceived(info_hash, "ubuntu.iso", 10, 163840),
        Complete(info_hash),
        DHTReady(info_hash, 12),
    ]


class EventTypesTests(SynchronousTestCase):
    """The event types, their kinds and their JSON form."""

    def test_kinds_are_stable(self) -> None:
        """Each type has its documented short kind name, and the examples cover them all."""
        self.assertEqual(
            sorted(EVENT_TYPES),
            sorted([
                "torrent_added", "torrent_removed", "state_changed", "progress",
                "piece_passed", "piece_failed", "peer_connected", "peer_lost", "peer_banned",
                "tracker_reply", "tracker_error", "disk_error", "metadata_received", "complete",
                "dht_ready",
            ]),
        )
        self.assertEqual(sorted(e.kind for e in one_of_each()), sorted(EVENT_TYPES))
        for kind, cls in EVENT_TYPES.items():
            self.assertEqual(cls.kind, kind)

    def test_every_event_dumps_to_json(self) -> None:
        """to_json of every type is accepted by json.dumps and names its kind and torrent."""
        for event in one_of_each():
            out = event.to_json()
            json.loads(json.dumps(out))
            self.assertEqual(out["kind"], event.kind)
            self.assertEqual(out["info_hash"], IH1.hex())
            self.assertEqual(out["event_id"], 0)

    def test_json_mapping(self) -> None:
        """Bytes become hex, addresses [host, port], None null; rich objects stay out."""
        connected = PeerConnected.from_info(IH1, peer_info(("::1", 6881)))
        self.assertEqual(connected.to_json(), {
            "kind": "peer_connected", "info_hash": IH1.hex(), "event_id": 0,
            "address": ["::1", 6881], "peer_id": PEER_ID.hex(),
            "client": "txbittorrent 0.0.1", "source": "",
        })
        banned = PeerBanned(IH1, ("10.0.0.3", 51413), None, "flood")
        self.assertIsNone(banned.to_json()["peer_id"])
        self.assertNotIn("failure", DiskError.from_failure(IH1, 1, boom()).to_json())

    def test_tracker_reply_from_response(self) -> None:
        """A TrackerReply counts both peer lists and keeps the response for the old API."""
        response = AnnounceResponse(interval=900, complete=2, incomplete=None,
                                    peers=(("a", 1), ("b", 2)), peers6=(("::1", 3),),
                                    warning_message="slow down")
        reply = TrackerReply.from_response(IH1, "http://t/announce", response)
        self.assertEqual(reply, TrackerReply(IH1, "http://t/announce", 3, 2, None, 900,
                                             "slow down"))
        self.assertIs(reply.response, response)

    def test_disk_error_message(self) -> None:
        """A DiskError built from a Failure names the exception and its message."""
        error = DiskError.from_failure(IH1, None, boom())
        self.assertIsNone(error.piece_index)
        self.assertIn("OSError", error.message)
        self.assertIn("No space left on device", error.message)
        self.assertIsInstance(error.failure, Failure)

    def test_equality_ignores_number_and_rich_objects(self) -> None:
        """Two events saying the same thing are equal whatever their id and attached object."""
        self.assertEqual(PeerLost(IH1, ("a", 1), "eof", event_id=5, info=peer_info()),
                         PeerLost(IH1, ("a", 1), "eof"))
        self.assertNotEqual(PiecePassed(IH1, 1), PiecePassed(IH1, 2))

    def test_piece_failed_reason(self) -> None:
        """A PieceFailed reason is "hash" or "missing", nothing else."""
        PieceFailed(IH1, 0, "missing")
        self.assertRaises(ValueError, PieceFailed, IH1, 0, "bad")

    def test_frozen(self) -> None:
        """Events cannot be changed once made."""
        event = PiecePassed(IH1, 1)
        with self.assertRaises(AttributeError):
            event.piece_index = 2  # type: ignore[misc]


class EventBusTests(SynchronousTestCase):
    """Delivery, filters, order and isolation of the bus."""

    def setUp(self) -> None:
        self.bus = EventBus()
        self.seen: list[tuple[str, TorrentEvent]] = []

    def recorder(self, name: str) -> Any:
        return lambda event: self.seen.append((name, event))

    def test_delivery_and_numbering(self) -> None:
        """publish delivers a copy numbered 1, 2, ... and returns it; the original is untouched."""
        self.bus.subscribe(self.recorder("a"))
        original = PiecePassed(IH1, 7)
        first = self.bus.publish(original)
        second = self.bus.publish(Complete(IH1))
        self.assertEqual((first.event_id, second.event_id), (1, 2))
        self.assertEqual(original.event_id, 0)
        self.assertEqual(first, original)
        self.assertEqual(self.seen, [("a", first), ("a", second)])
        self.assertIs(self.seen[0][1], first)
        self.assertEqual(self.bus.last_event_id, 2)

    def test_subscription_order(self) -> None:
        """Subscribers are called in the order they subscribed."""
        for name in "abc":
            self.bus.subscribe(self.recorder(name))
        self.bus.publish(Complete(IH1))
        self.assertEqual([name for name, _ in self.seen], ["a", "b", "c"])

    def test_filter_by_torrent(self) -> None:
        """A subscriber for one info_hash hears only that torrent."""
        self.bus.subscribe(self.recorder("one"), info_hash=IH1)
        self.bus.subscribe(self.recorder("all"))
        self.bus.publish(PiecePassed(IH2, 1))
        self.bus.publish(PiecePassed(IH1, 2))
        self.assertEqual([(n, e.info_hash) for n, e in self.seen],
                         [("all", IH2), ("one", IH1), ("all", IH1)])

    def test_filter_by_kind(self) -> None:
        """kinds takes names, classes or one name, and can join the torrent filter."""
        self.bus.subscribe(self.recorder("names"), kinds=["piece_passed", "complete"])
        self.bus.subscribe(self.recorder("class"), kinds=[PieceFailed])
        self.bus.subscribe(self.recorder("one"), kinds="complete", info_hash=IH2)
        for event in one_of_each(IH1) + one_of_each(IH2):
            self.bus.publish(event)
        got = [(n, e.kind, e.info_hash) for n, e in self.seen]
        self.assertEqual(got, [
            ("names", "piece_passed", IH1), ("class", "piece_failed", IH1),
            ("names", "complete", IH1),
            ("names", "piece_passed", IH2), ("class", "piece_failed", IH2),
            ("names", "complete", IH2), ("one", "complete", IH2),
        ])

    def test_unknown_kind(self) -> None:
        """Subscribing to a kind that does not exist is an error, not silence."""
        self.assertRaises(ValueError, self.bus.subscribe, print, kinds=["piece_pased"])

    def test_raising_subscriber(self) -> None:
        """A subscriber that raises is logged; the others and the publisher carry on."""
        self.bus.subscribe(self.recorder("a"))
        self.bus.subscribe(lambda event: 1 // 0)
        self.bus.subscribe(self.recorder("c"))
        self.bus.publish(Complete(IH1))
        self.assertEqual([name for name, _ in self.seen], ["a", "c"])
        self.assertEqual(len(self.flushLoggedErrors(ZeroDivisionError)), 1)

    def test_cancel_and_context_manager(self) -> None:
        """A cancelled subscription, or one whose with-block ended, hears nothing more."""
        sub = self.bus.subscribe(self.recorder("a"))
        with self.bus.subscribe(self.recorder("b")) as inner:
            self.bus.publish(PiecePassed(IH1, 1))
        self.assertFalse(inner.active)
        sub.cancel()
        sub.cancel()
        self.assertFalse(sub.active)
        self.bus.publish(PiecePassed(IH1, 2))
        self.assertEqual([name for name, _ in self.seen], ["a", "b"])

    def test_unsubscribe_during_delivery(self) -> None:
        """A subscriber may cancel itself or a later one while an event is delivered."""
        later: list[Any] = []

        def first(event: TorrentEvent) -> None:
            self.seen.append(("first", event))
            me.cancel()
            later[0].cancel()

        me = self.bus.subscribe(first)
        self.bus.subscribe(self.recorder("middle"))
        later.append(self.bus.subscribe(self.recorder("last")))
        self.bus.publish(PiecePassed(IH1, 1))
        self.bus.publish(PiecePassed(IH1, 2))
        self.assertEqual([(n, e.event_id) for n, e in self.seen],
                         [("first", 1), ("middle", 1), ("middle", 2)])

    def test_subscribe_during_delivery(self) -> None:
        """A subscriber added during a delivery first hears the next event."""

        def adder(event: TorrentEvent) -> None:
            if event.event_id == 1:
                self.bus.subscribe(self.recorder("new"))

        self.bus.subscribe(adder)
        self.bus.publish(PiecePassed(IH1, 1))
        self.assertEqual(self.seen, [])
        self.bus.publish(PiecePassed(IH1, 2))
        self.assertEqual([(n, e.event_id) for n, e in self.seen], [("new", 2)])

    def test_publish_during_delivery(self) -> None:
        """An event published by a subscriber reaches everyone after the current one."""

        def chain(event: TorrentEvent) -> None:
            self.seen.append(("chain", event))
            if isinstance(event, PiecePassed):
                self.bus.publish(Complete(IH1))

        self.bus.subscribe(chain)
        self.bus.subscribe(self.recorder("after"))
        self.bus.publish(PiecePassed(IH1, 1))
        self.assertEqual([(n, e.event_id) for n, e in self.seen],
                         [("chain", 1), ("after", 1), ("chain", 2), ("after", 2)])

    def test_no_history_by_default(self) -> None:
        """Without history the bus keeps no events."""
        self.bus.publish(Complete(IH1))
        self.assertEqual(self.bus.recent(), [])
        self.assertIsNone(self.bus.since(0))
        self.assertEqual(self.bus.since(1), [])
        self.assertIsNone(self.bus.since(2))


class HistoryTests(SynchronousTestCase):
    """The optional ring of recent events, for late subscribers."""

    def test_recent_is_bounded(self) -> None:
        """recent() returns at most the last ``history`` events, oldest first."""
        bus = EventBus(history=3)
        for index in range(10):
            bus.publish(PiecePassed(IH1, index))
        self.assertEqual([e.event_id for e in bus.recent()], [8, 9, 10])
        self.assertEqual([e.event_id for e in bus.recent(2)], [9, 10])
        self.assertEqual(bus.recent(0), [])

    def test_since(self) -> None:
        """since(id) resumes after a Last-Event-ID, or says None when events were missed."""
        bus = EventBus(history=3)
        self.assertEqual(bus.since(0), [])
        for index in range(5):
            bus.publish(PiecePassed(IH1, index))
        self.assertEqual([e.event_id for e in bus.since(3) or []], [4, 5])
        self.assertEqual([e.event_id for e in bus.since(2) or []], [3, 4, 5])
        self.assertIsNone(bus.since(1))
        self.assertEqual(bus.since(5), [])
        self.assertIsNone(bus.since(6))  # from another run

    def test_first_id(self) -> None:
        """A bus numbered from first_id: a Last-Event-ID of an earlier run
        (smaller) or a later one (larger) is a reset, not an empty resume."""
        bus = EventBus(history=3, first_id=1000)
        self.assertEqual(bus.last_event_id, 999)
        self.assertEqual(bus.since(999), [])
        self.assertIsNone(bus.since(5))
        event = bus.publish(Complete(IH1))
        self.assertEqual(event.event_id, 1000)
        self.assertEqual(bus.since(999), [event])
        self.assertEqual(bus.since(0), [event])  # 0: from this bus's first event
        self.assertIsNone(bus.since(5))
        self.assertIsNone(bus.since(2000))

    def test_negative_history(self) -> None:
        """A negative history size, or a first id below 1, is refused."""
        self.assertRaises(ValueError, EventBus, history=-1)
        self.assertRaises(ValueError, EventBus, first_id=0)


class RecordingObserver(TorrentObserver):
    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []

    def piece_verified(self, torrent: Any, index: int, passed: bool) -> None:
        self.calls.append(("piece_verified", torrent, index, passed))

    def peer_connected(self, torrent: Any, peer: Any) -> None:
        self.calls.append(("peer_connected", torrent, peer))

    def peer_lost(self, torrent: Any, peer: Any, reason: str) -> None:
        self.calls.append(("peer_lost", torrent, peer, reason))

    def tracker_reply(self, torrent: Any, url: str, response: Any) -> None:
        self.calls.append(("tracker_reply", torrent, url, response))

    def tracker_error(self, torrent: Any, url: str, error: str) -> None:
        self.calls.append(("tracker_error", torrent, url, error))

    def state_changed(self, torrent: Any, old: str, new: str) -> None:
        self.calls.append(("state_changed", torrent, old, new))

    def completed(self, torrent: Any) -> None:
        self.calls.append(("completed", torrent))

    def disk_error(self, torrent: Any, index: int, failure: Any) -> None:
        self.calls.append(("disk_error", torrent, index, failure))


class FakeTorrent:
    info_hash = IH1


class LegacyAdapterTests(SynchronousTestCase):
    """The old observer and callback APIs as views of the bus."""

    def test_observer_methods(self) -> None:
        """Each TorrentObserver method is called as the torrent called it before the event stream."""
        bus, torrent, observer = EventBus(), FakeTorrent(), RecordingObserver()
        attach_observer(bus, observer, torrent)
        events = one_of_each()
        for event in events:
            bus.publish(event)
        by_kind = {e.kind: e for e in events}
        connected = by_kind["peer_connected"]
        lost = by_kind["peer_lost"]
        reply = by_kind["tracker_reply"]
        disk = by_kind["disk_error"]
        assert isinstance(connected, PeerConnected) and isinstance(lost, PeerLost)
        assert isinstance(reply, TrackerReply) and isinstance(disk, DiskError)
        self.assertEqual(observer.calls, [
            ("state_changed", torrent, "stopped", "active"),
            ("piece_verified", torrent, 3, True),
            ("piece_verified", torrent, 4, False),
            ("peer_connected", torrent, connected.info),
            ("peer_lost", torrent, lost.info, "connection lost"),
            ("tracker_reply", torrent, "http://t.example/announce", reply.response),
            ("tracker_error", torrent, "udp://t.example:80", "timed out"),
            ("disk_error", torrent, 9, disk.failure),
            ("completed", torrent),
        ])
        self.assertIsInstance(observer.calls[3][2], PeerInfo)
        self.assertIsInstance(observer.calls[5][3], AnnounceResponse)

    def test_observer_hears_only_its_torrent(self) -> None:
        """The adapter filters on the torrent's info_hash (or the one given)."""
        bus = EventBus()
        mine, other = RecordingObserver(), RecordingObserver()
        attach_observer(bus, mine, FakeTorrent())
        attach_observer(bus, other, "t2", info_hash=IH2)
        bus.publish(Complete(IH2))
        self.assertEqual(mine.calls, [])
        self.assertEqual(other.calls, [("completed", "t2")])

    def test_partial_and_raising_observers(self) -> None:
        """Missing methods are skipped; a raising observer is logged and others still hear."""

        class Partial:
            def __init__(self) -> None:
                self.done = 0

            def completed(self, torrent: Any) -> None:
                self.done += 1

        class Broken(TorrentObserver):
            def completed(self, torrent: Any) -> None:
                raise RuntimeError("bug")

        bus, partial = EventBus(), Partial()
        attach_observer(bus, Broken(), FakeTorrent())
        sub = attach_observer(bus, partial, FakeTorrent())
        bus.publish(PiecePassed(IH1, 0))
        bus.publish(Complete(IH1))
        self.assertEqual(partial.done, 1)
        sub.cancel()
        bus.publish(Complete(IH1))
        self.assertEqual(partial.done, 1)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 2)

    def test_piece_callbacks(self) -> None:
        """on_hash_pass/on_hash_fail get the piece index; a missing piece counts as failed."""
        bus = EventBus()
        passed: list[int] = []
        failed: list[int] = []
        attach_piece_callbacks(bus, IH1, passed.append, failed.append)
        attach_piece_callbacks(bus, IH1, None, None)
        bus.publish(PiecePassed(IH1, 1))
        bus.publish(PieceFailed(IH1, 2, "hash"))
        bus.publish(PieceFailed(IH1, 3, "missing"))
        bus.publish(PiecePassed(IH2, 4))
        self.assertEqual((passed, failed), ([1], [2, 3]))


class PublisherTests(SynchronousTestCase):
    """The swarm's and the announcer's reports turned into events."""

    def test_swarm_publisher(self) -> None:
        """Connections, losses, bans and disk errors become events; pieces do not."""
        bus = EventBus(history=10)
        publisher = SwarmPublisher(bus, IH1)
        info, failure = peer_info(), boom()
        publisher.peer_connected(info)
        publisher.peer_lost(info, "eof")
        publisher.peer_banned(("10.0.0.9", 1), PEER_ID, "bad data")
        publisher.disk_error(5, failure)
        publisher.piece_verified(5, True)
        events = bus.recent()
        self.assertEqual(events, [
            PeerConnected(IH1, info.address, PEER_ID, info.client),
            PeerLost(IH1, info.address, "eof"),
            PeerBanned(IH1, ("10.0.0.9", 1), PEER_ID, "bad data"),
            DiskError.from_failure(IH1, 5, failure),
        ])
        self.assertIs(events[0].info, info)  # type: ignore[attr-defined]
        self.assertIs(events[3].failure, failure)  # type: ignore[attr-defined]

    def test_announcer_callbacks(self) -> None:
        """on_reply and on_error publish TrackerReply and TrackerError."""
        bus = EventBus(history=10)
        on_reply, on_error = announcer_callbacks(bus, IH1)
        response = AnnounceResponse(interval=60, peers=(("a", 1),))
        on_reply("http://t/a", response)
        on_error("http://t/a", "refused")
        self.assertEqual(bus.recent(), [
            TrackerReply(IH1, "http://t/a", 1, None, None, 60),
            TrackerError(IH1, "http://t/a", "refused"),
        ])
