"""One typed event stream: ``EventBus`` and the views of the older APIs over it.

Theory of operation
-------------------
Publishers (the torrent, its swarm, its announcer, the session, a progress
timer) call ``EventBus.publish(event)`` with an event from
``txbittorrent.eventtypes`` (re-exported here).  Subscribers register a
callable with ``subscribe(callback, info_hash=..., kinds=...)`` and receive
every published event that matches both filters.  Everything runs on the
reactor thread; the bus never schedules anything and owns no timer.

What the bus guarantees:

* Numbering: ``publish`` stamps a copy of the event with the bus's next
  ``event_id`` (1, 2, 3..., never reused, one counter per bus) and delivers
  that copy; it also returns it.  The caller's object is left as it was.
* Delivery is synchronous and in subscription order: when the outermost
  ``publish`` returns, every matching subscriber has seen the event.
* One order for everybody: a ``publish`` made by a subscriber while an event
  is being delivered is queued and delivered right after the current one,
  before the outer ``publish`` returns, so every subscriber sees events in
  ``event_id`` order.
* The subscribers an event can reach are those subscribed when it was
  published: one added during a delivery first sees the next event.  One
  cancelled during a delivery is never called again, even for the event
  under way (after ``cancel()`` returns, its callback is not called).
* A subscriber that raises is logged (``twisted.logger``) and the others and
  the publisher carry on.
* Bounded memory: by default the bus keeps no events.  ``EventBus(history=n)``
  keeps the last ``n`` in a ring, for ``recent()`` and ``since()`` (a late
  subscriber, or an SSE client reconnecting with ``Last-Event-ID``).

The older APIs become thin views: ``attach_observer`` feeds a legacy
``TorrentObserver`` from the bus, ``attach_piece_callbacks`` feeds
``on_hash_pass``/``on_hash_fail``, and, the other way, ``SwarmPublisher``
(a ``SwarmObserver``) and ``announcer_callbacks`` turn what the swarm and
the announcer report into events.
"""

from __future__ import annotations

import dataclasses
from collections import deque
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from twisted.logger import Logger

from txbittorrent.eventtypes import (
    EVENT_TYPES,
    PIECE_FAILURE_REASONS,
    Complete,
    DiskError,
    MetadataReceived,
    PeerBanned,
    PeerConnected,
    PeerLost,
    PieceFailed,
    PiecePassed,
    Progress,
    StateChanged,
    TorrentAdded,
    TorrentEvent,
    TorrentRemoved,
    TrackerError,
    TrackerReply,
)
from txbittorrent.swarm.config import SwarmObserver

if TYPE_CHECKING:
    from twisted.python.failure import Failure

    from txbittorrent.core.tracker.announce import AnnounceResponse
    from txbittorrent.interfaces import Address
    from txbittorrent.swarm.peerstate import PeerInfo

__all__ = [
    "EventBus", "Subscription", "Subscriber", "attach_observer", "attach_piece_callbacks",
    "SwarmPublisher", "announcer_callbacks",
    # re-exported from eventtypes
    "TorrentEvent", "TorrentAdded", "TorrentRemoved", "StateChanged", "Progress",
    "PiecePassed", "PieceFailed", "PeerConnected", "PeerLost", "PeerBanned",
    "TrackerReply", "TrackerError", "DiskError", "MetadataReceived", "Complete",
    "EVENT_TYPES", "PIECE_FAILURE_REASONS",
]

_log = Logger()

Subscriber = Callable[[TorrentEvent], object]
E = TypeVar("E", bound=TorrentEvent)


def _kind_names(kinds: str | type[TorrentEvent] | Iterable[str | type[TorrentEvent]] | None,
                ) -> frozenset[str] | None:
    if kinds is None:
        return None
    if isinstance(kinds, (str, type)):
        kinds = (kinds,)
    names = frozenset(k if isinstance(k, str) else k.kind for k in kinds)
    unknown = names - EVENT_TYPES.keys()
    if unknown:
        raise ValueError(f"unknown event kinds: {sorted(unknown)}")
    return names


class Subscription:
    """One subscriber's registration: ``cancel()`` it, or use it as a
    context manager (``with bus.subscribe(f): ...``)."""

    __slots__ = ("_bus", "callback", "info_hash", "kinds")

    def __init__(self, bus: EventBus, callback: Subscriber, info_hash: bytes | None,
                 kinds: frozenset[str] | None) -> None:
        self._bus: EventBus | None = bus
        self.callback = callback
        self.info_hash = info_hash
        self.kinds = kinds

    @property
    def active(self) -> bool:
        """Until ``cancel()``."""
        return self._bus is not None

    def matches(self, event: TorrentEvent) -> bool:
        return ((self.info_hash is None or event.info_hash == self.info_hash)
                and (self.kinds is None or event.kind in self.kinds))

    def cancel(self) -> None:
        """Stop delivery, at once (even within a delivery); twice is harmless."""
        bus, self._bus = self._bus, None
        if bus is not None:
            bus._subscriptions.remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()

    def __repr__(self) -> str:
        return f"<Subscription {self.callback!r} active={self.active}>"


class EventBus:
    """Publish typed events; deliver them to the subscribers that match."""

    def __init__(self, history: int = 0, first_id: int = 1) -> None:
        """Keep the last ``history`` events (for ``since``); number events
        from ``first_id`` (a long-lived process that restarts starts past
        its previous run's ids, e.g. from the clock, so a client's
        ``Last-Event-ID`` from that run is not taken for one of this run)."""
        if history < 0:
            raise ValueError("history must be >= 0")
        if first_id < 1:
            raise ValueError("first_id must be >= 1")
        self._subscriptions: list[Subscription] = []
        self._history: deque[TorrentEvent] | None = deque(maxlen=history) if history else None
        self._first_id = first_id
        self._last_id = first_id - 1
        self._queue: deque[tuple[TorrentEvent, tuple[Subscription, ...]]] = deque()
        self._delivering = False

    @property
    def last_event_id(self) -> int:
        """The id of the newest event published (``first_id - 1`` before the first)."""
        return self._last_id

    def subscribe(
        self,
        callback: Subscriber,
        *,
        info_hash: bytes | None = None,
        kinds: str | type[TorrentEvent] | Iterable[str | type[TorrentEvent]] | None = None,
    ) -> Subscription:
        """Call ``callback(event)`` for each event published from now on
        about torrent ``info_hash`` (None: any) whose kind is one of
        ``kinds`` (names or event classes; None: any)."""
        sub = Subscription(self, callback, info_hash, _kind_names(kinds))
        self._subscriptions.append(sub)
        return sub

    def publish(self, event: E) -> E:
        """Number ``event``, deliver it, and return the numbered copy."""
        self._last_id += 1
        event = dataclasses.replace(event, event_id=self._last_id)
        if self._history is not None:
            self._history.append(event)
        self._queue.append((event, tuple(self._subscriptions)))
        if not self._delivering:
            self._drain()
        return event

    def _drain(self) -> None:
        self._delivering = True
        try:
            while self._queue:
                event, subscriptions = self._queue.popleft()
                for sub in subscriptions:
                    if sub.active and sub.matches(event):
                        try:
                            sub.callback(event)
                        except Exception:
                            _log.failure("event subscriber {callback!r} raised on {kind}",
                                         callback=sub.callback, kind=event.kind)
        finally:
            self._delivering = False

    def recent(self, n: int | None = None) -> list[TorrentEvent]:
        """The last ``n`` (default: all) events kept, oldest first; empty
        unless the bus was made with ``history``."""
        if self._history is None or n == 0:
            return []
        events = list(self._history)
        return events if n is None else events[-n:]

    def since(self, event_id: int) -> list[TorrentEvent] | None:
        """The kept events after ``event_id``, oldest first, or None when
        some of those were published but are no longer kept, or when
        ``event_id`` is newer than any published here (it is from another
        run): the caller missed events and should resynchronise.  0 means
        "from the first event of this bus"."""
        if event_id == 0:
            event_id = self._first_id - 1
        if event_id > self._last_id:
            return None
        if event_id == self._last_id:
            return []
        if self._history is None or not self._history \
                or self._history[0].event_id > event_id + 1:
            return None
        return [e for e in self._history if e.event_id > event_id]


# -- the older APIs as views of the bus ------------------------------------------------


def attach_observer(bus: EventBus, observer: Any, torrent: Any,
                    info_hash: bytes | None = None) -> Subscription:
    """Feed a legacy ``TorrentObserver`` (or any object with some of its
    methods) the events of ``torrent`` (by ``info_hash``, default
    ``torrent.info_hash``), each method called with the arguments it always had.

    The rich objects the old methods take (PeerInfo, AnnounceResponse,
    Failure) come from the events' ``info``/``response``/``failure``; an
    event published without one passes None."""

    def deliver(event: TorrentEvent) -> None:
        match event:
            case PiecePassed():
                _call(observer, "piece_verified", torrent, event.piece_index, True)
            case PieceFailed():
                _call(observer, "piece_verified", torrent, event.piece_index, False)
            case PeerConnected():
                _call(observer, "peer_connected", torrent, event.info)
            case PeerLost():
                _call(observer, "peer_lost", torrent, event.info, event.reason)
            case TrackerReply():
                _call(observer, "tracker_reply", torrent, event.url, event.response)
            case TrackerError():
                _call(observer, "tracker_error", torrent, event.url, event.message)
            case StateChanged():
                _call(observer, "state_changed", torrent, event.old, event.new)
            case Complete():
                _call(observer, "completed", torrent)
            case DiskError():
                _call(observer, "disk_error", torrent, event.piece_index, event.failure)

    if info_hash is None:
        info_hash = torrent.info_hash
    return bus.subscribe(deliver, info_hash=info_hash, kinds=_OBSERVER_KINDS)


_OBSERVER_KINDS = (PiecePassed, PieceFailed, PeerConnected, PeerLost, TrackerReply,
                   TrackerError, StateChanged, Complete, DiskError)


def _call(observer: Any, method: str, *args: Any) -> None:
    callback = getattr(observer, method, None)
    if callback is not None:
        callback(*args)  # the bus logs what it raises


def attach_piece_callbacks(
    bus: EventBus,
    info_hash: bytes,
    on_hash_pass: Callable[[int], object] | None = None,
    on_hash_fail: Callable[[int], object] | None = None,
) -> Subscription:
    """Call ``Torrent``'s old ``on_hash_pass(index)`` / ``on_hash_fail(index)``
    (a missing piece counts as failed, as it always did)."""

    def deliver(event: TorrentEvent) -> None:
        if isinstance(event, PiecePassed):
            if on_hash_pass is not None:
                on_hash_pass(event.piece_index)
        elif isinstance(event, PieceFailed) and on_hash_fail is not None:
            on_hash_fail(event.piece_index)

    return bus.subscribe(deliver, info_hash=info_hash, kinds=(PiecePassed, PieceFailed))


# -- the engine's reports as events -----------------------------------------------------


class SwarmPublisher(SwarmObserver):
    """A ``SwarmObserver`` that publishes what one torrent's swarm reports
    (the successor of ``torrent._SwarmBridge``, bans included).

    ``piece_verified`` is left alone: the torrent hears of pieces through
    ``on_piece_passed``/``on_piece_failed`` and publishes them itself, so
    publishing here too would report each piece twice."""

    def __init__(self, bus: EventBus, info_hash: bytes) -> None:
        self.bus = bus
        self.info_hash = info_hash

    def peer_connected(self, info: PeerInfo) -> None:
        self.bus.publish(PeerConnected.from_info(self.info_hash, info))

    def peer_lost(self, info: PeerInfo, reason: str) -> None:
        self.bus.publish(PeerLost.from_info(self.info_hash, info, reason))

    def peer_banned(self, address: Address, peer_id: bytes | None, reason: str) -> None:
        self.bus.publish(PeerBanned(self.info_hash, address, peer_id, reason))

    def disk_error(self, index: int, failure: Failure) -> None:
        self.bus.publish(DiskError.from_failure(self.info_hash, index, failure))


def announcer_callbacks(
    bus: EventBus, info_hash: bytes
) -> tuple[Callable[[str, AnnounceResponse], None], Callable[[str, str], None]]:
    """``(on_reply, on_error)`` for ``Announcer`` that publish
    ``TrackerReply`` and ``TrackerError``."""

    def on_reply(url: str, response: AnnounceResponse) -> None:
        bus.publish(TrackerReply.from_response(info_hash, url, response))

    def on_error(url: str, message: str) -> None:
        bus.publish(TrackerError(info_hash, url, message))

    return on_reply, on_error
