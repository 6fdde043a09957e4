"""The announcer: one torrent's conversation with its trackers.

Theory of operation
-------------------
``core.tiers.TrackerTiers`` decides whom to announce to (BEP 12) and keeps
each tracker's ``TrackerStatus``; the HTTP and UDP clients carry one announce
each.  The announcer joins them with timers on the injected clock:

* ``start()`` announces ``started`` to the current tracker (or, with
  ``announce_to_all``, to the current tracker of each tier).
* A success records the reply, hands its peers to the host and schedules
  the next announce (no event) at ``core.tiers.next_announce``.  A failure
  (garbage, a refusal, a time-out, an unreachable host, an unsupported URL)
  is recorded; the tiers name the tracker(s) to try at once, or, when the
  round is over, the next round waits for the failed tracker's backoff
  (``core.tiers.retry_delay``).  Nothing a tracker does raises into the
  torrent.
* Timers are kept per *lane*: one lane for the whole torrent, or one per tier
  with ``announce_to_all``.  A lane has at most one timer, and a lane's timer
  only fires an announce to that lane's current tracker.
* ``completed()`` sends ``completed`` once to each tracker that acknowledged
  ``started`` (at once, whether or not it is the current one); a tracker
  first reached after completion gets ``started`` with ``left`` 0 instead.
* ``stop()`` cancels every timer and announce in flight, sends ``stopped`` to
  the trackers that acknowledged ``started``, and fires when they answered or
  after ``TrackerConfig.stop_timeout`` seconds, whichever is first.

A tracker counts as started only once it answered the ``started`` announce:
an announce still in flight at ``stop()`` is cancelled and gets no
``stopped`` (the tracker forgets us after its interval anyway).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from twisted.internet.defer import Deferred, DeferredList, fail, succeed
from twisted.logger import Logger

from txbittorrent.core.tracker.announce import (
    AnnounceEvent,
    AnnounceRequest,
    AnnounceResponse,
    Peer,
    TrackerFailure,
)
from txbittorrent.core.tracker.tiers import TrackerStatus, TrackerTiers
from txbittorrent.tracker.config import TrackerConfig

__all__ = ["AnnounceHost", "TrackerClient", "Announcer"]

_log = Logger()


class TrackerClient(Protocol):
    """What the announcer needs of ``HTTPTrackerClient`` and ``UDPTrackerClient``."""

    def announce(self, url: str, request: AnnounceRequest) -> Deferred[AnnounceResponse]: ...


class Clock(Protocol):
    def seconds(self) -> float: ...

    def callLater(self, delay: float, callable: Callable[..., Any], *args: Any) -> Any: ...


class Rng(Protocol):
    def shuffle(self, x: Any, /) -> None: ...

    def getrandbits(self, k: int, /) -> int: ...


class AnnounceHost(Protocol):
    """The torrent's side of its announcer."""

    def listen_port(self) -> int:
        """The port we listen on, for announces (0 when not listening)."""

    def transfer_stats(self) -> tuple[int, int, int]:
        """(uploaded, downloaded, left) for the next announce."""

    def add_peers(self, peers: list[Peer], source: str) -> object:
        """Peers a tracker (``source``: its URL) gave."""

    def tracker_reply(self, url: str, response: AnnounceResponse) -> None:
        """A tracker answered."""

    def tracker_error(self, url: str, message: str) -> None:
        """An announce failed."""


class Announcer:
    """Announces one torrent to its trackers (see the module docstring)."""

    def __init__(
        self,
        tiers: Sequence[Sequence[str]],
        info_hash: bytes,
        peer_id: bytes,
        host: AnnounceHost,
        clock: Clock,
        rng: Rng,
        http_client: TrackerClient | None,
        udp_client: TrackerClient | None,
        config: TrackerConfig | None = None,
        *,
        key: int | None = None,
    ) -> None:
        """``host`` is the torrent's side (port, figures, where peers and
        replies go); ``config`` the announce settings; ``key`` BEP 7's
        (random by default)."""
        cfg = config if config is not None else TrackerConfig()
        self._tiers = TrackerTiers(tiers, rng, announce_to_all=cfg.announce_to_all)
        self._host = host
        self.info_hash = info_hash
        self.peer_id = peer_id
        self._clock = clock
        self._clients = {"http": http_client, "https": http_client, "udp": udp_client}
        self.numwant = cfg.numwant
        self.key = rng.getrandbits(32) if key is None else key
        self.stop_timeout = cfg.stop_timeout
        self._running = False
        self._stopping: Deferred[None] | None = None
        self._timers: dict[int, Any] = {}
        self._in_flight: dict[str, Deferred[AnnounceResponse]] = {}
        # (dicts as sets: an empty set is 216 bytes, an empty dict 64, and a
        # session holds an announcer per running torrent)
        self._started: dict[str, None] = {}
        self._completed = False
        self._completed_sent: dict[str, None] = {}
        self._tracker_ids: dict[str, bytes] = {}
        self._farewells: list[Deferred[AnnounceResponse]] | None = None
        """``stopped`` announces to removed trackers (None until there is one)."""

    # -- the torrent's view --

    def trackers(self) -> tuple[tuple[TrackerStatus, ...], ...]:
        """The BEP 12 tiers in their current order, a status per tracker."""
        statuses = self._tiers.statuses()
        tiers: dict[int, list[TrackerStatus]] = {}
        for status in statuses:
            tiers.setdefault(status.tier, []).append(status)
        return tuple(tuple(tiers[t]) for t in sorted(tiers))

    def start(self) -> None:
        """Announce ``started`` and keep announcing until ``stop()``."""
        if self._running or self._stopping is not None:
            return
        self._running = True
        for url in self._tiers.current():
            self._announce(url)

    def completed(self) -> None:
        """The download completed: tell every tracker that knows we started, once."""
        if self._completed:
            return
        self._completed = True
        if not self._running:
            return
        for url in self._tiers:
            if url in self._started and url not in self._in_flight:
                self._announce(url)

    def force_announce(self) -> None:
        """Announce to the current tracker(s) now, or as soon as ``min interval`` allows."""
        if not self._running:
            return
        now = self._clock.seconds()
        for url in self._tiers.current():
            if url not in self._in_flight:
                earliest = self._tiers.status(url).min_announce or now
                if earliest <= now:
                    self._schedule(self._lane(url), None)
                    self._announce(url)
                else:
                    self._schedule(self._lane(url), earliest)

    def add_tracker(self, url: str, tier: int | None = None) -> None:
        """A new tracker; while running, announce to it if the BEP 12 walk
        would (it is current: a new tier with ``announce_to_all``, or the
        only tracker)."""
        if not self._tiers.add(url, tier):
            return
        if self._running and url in self._tiers.current() and url not in self._in_flight:
            self._announce(url)

    def remove_tracker(self, url: str) -> None:
        """Forget a tracker: its announce in flight is abandoned (the walk goes
        on to the next URL, as after a failure), and one that heard
        ``started`` hears ``stopped`` (answer ignored; ``stop()`` waits for it)."""
        if url not in self._tiers:
            return
        lane = self._lane(url)
        tiers_before = len(self._tiers.tiers)
        self._tiers.remove(url)  # first: the cancelled announce finds it gone
        tier_gone = len(self._tiers.tiers) < tiers_before
        d = self._in_flight.pop(url, None)
        if d is not None:
            d.cancel()
        if url in self._started:
            self._started.pop(url, None)
            goodbye = self._send(url, AnnounceEvent.STOPPED)
            goodbye.addTimeout(self.stop_timeout, self._clock)  # type: ignore[arg-type]
            goodbye.addErrback(lambda _: None)
            farewells = self._farewells
            if farewells is None:
                farewells = self._farewells = []
            farewells.append(goodbye)
            goodbye.addBoth(lambda _: farewells.remove(goodbye))
        self._completed_sent.pop(url, None)
        self._tracker_ids.pop(url, None)
        if self._tiers.announce_to_all and tier_gone:
            self._drop_lane(lane)
            lane = -1  # its lane is gone with its tier
        if self._running and d is not None and lane >= 0:
            following = self._lane_url(lane)
            if following is not None and following not in self._in_flight:
                self._schedule(lane, None)
                self._announce(following)

    def _drop_lane(self, lane: int) -> None:
        """A tier went (``announce_to_all``: lanes are tiers): cancel its timer
        and move the later lanes' timers down one, due when they were."""
        now = self._clock.seconds()
        timers, self._timers = self._timers, {}
        for old, timer in sorted(timers.items()):
            if not timer.active():
                continue
            if old == lane:
                timer.cancel()
            elif old > lane:
                when = timer.getTime()
                timer.cancel()
                self._timers[old - 1] = self._clock.callLater(
                    max(0.0, when - now), self._due, old - 1
                )
            else:
                self._timers[old] = timer

    def stop(self) -> Deferred[None]:
        """Stop announcing; send ``stopped``; fire within ``stop_timeout`` seconds."""
        if self._stopping is not None:
            return _after(self._stopping)
        self._running = False
        for timer in self._timers.values():
            if timer.active():
                timer.cancel()
        self._timers.clear()
        for d in list(self._in_flight.values()):
            d.cancel()
        self._in_flight.clear()
        goodbyes: list[Deferred[Any]] = list(self._farewells or ())  # removed trackers
        for url in self._tiers:
            if url in self._started:
                d = self._send(url, AnnounceEvent.STOPPED)
                d.addTimeout(self.stop_timeout, self._clock)  # type: ignore[arg-type]
                goodbyes.append(d)
        self._started.clear()
        if not goodbyes:  # (the common case in a big session: no tracker heard us)
            self._stopping = succeed(None)
            return succeed(None)
        done = DeferredList(goodbyes, consumeErrors=True)
        self._stopping = done.addCallback(lambda _: None)
        return _after(self._stopping)

    # -- internals --

    def _lane(self, url: str) -> int:
        return self._tiers.status(url).tier if self._tiers.announce_to_all else 0

    def _lane_url(self, lane: int) -> str | None:
        current = self._tiers.current()
        if not current or lane >= len(current):
            return None
        return current[lane] if self._tiers.announce_to_all else current[0]

    def _schedule(self, lane: int, when: float | None) -> None:
        timer = self._timers.pop(lane, None)
        if timer is not None and timer.active():
            timer.cancel()
        if when is None or math.isinf(when) or not self._running:
            return
        delay = max(0.0, when - self._clock.seconds())
        self._timers[lane] = self._clock.callLater(delay, self._due, lane)

    def _due(self, lane: int) -> None:
        self._timers.pop(lane, None)
        url = self._lane_url(lane)
        if url is not None and url not in self._in_flight:
            self._announce(url)

    def _event(self, url: str) -> AnnounceEvent | None:
        if url not in self._started:
            return AnnounceEvent.STARTED
        if self._completed and url not in self._completed_sent:
            return AnnounceEvent.COMPLETED
        return None

    def _announce(self, url: str) -> None:
        event = self._event(url)
        status = self._tiers.status(url)
        self._tiers.announcing(url, self._clock.seconds())
        if status.next_announce is not None and math.isinf(status.next_announce):
            # BEP 31 "retry in: never": skip it as if it had failed again.
            d = fail(TrackerFailure(status.last_error or "do not retry", math.inf))
        else:
            d = self._send(url, event)
        self._in_flight[url] = d
        d.addCallbacks(
            self._succeeded,
            self._failed,
            callbackArgs=(url, event, self._completed),
            errbackArgs=(url,),
        )
        d.addErrback(lambda f: _log.failure("announcer: unexpected error", f))

    def _send(self, url: str, event: AnnounceEvent | None) -> Deferred[AnnounceResponse]:
        """Hand one announce to the right client; a failure comes back as a failed Deferred."""
        try:
            client = self._clients.get(urlsplit(url).scheme.lower())
            if client is None:
                raise ValueError(f"unsupported tracker URL {url!r}")
            uploaded, downloaded, left = self._host.transfer_stats()
            request = AnnounceRequest(
                info_hash=self.info_hash,
                peer_id=self.peer_id,
                port=self._host.listen_port(),
                uploaded=uploaded,
                downloaded=downloaded,
                left=left,
                event=event,
                numwant=0 if event is AnnounceEvent.STOPPED else self.numwant,
                key=self.key,
                tracker_id=self._tracker_ids.get(url),
            )
            return client.announce(url, request)
        except Exception as e:
            return fail(e)

    def _succeeded(
        self,
        response: AnnounceResponse,
        url: str,
        event: AnnounceEvent | None,
        completed: bool,
    ) -> None:
        self._in_flight.pop(url, None)
        if not self._running or url not in self._tiers:
            return
        self._tiers.succeeded(url, self._clock.seconds(), response)
        if response.tracker_id is not None:
            self._tracker_ids[url] = response.tracker_id
        if event is AnnounceEvent.STARTED:
            self._started[url] = None
            if completed:
                self._completed_sent[url] = None  # it heard left=0 with started
        elif event is AnnounceEvent.COMPLETED:
            self._completed_sent[url] = None
        self._schedule(self._lane(url), self._tiers.status(url).next_announce)
        self._tell(self._host.tracker_reply, url, response)
        peers = list(response.peers) + list(response.peers6)
        if peers:
            try:
                self._host.add_peers(peers, url)
            except Exception:
                _log.failure("announcer: add_peers raised")
        if self._running and self._event(url) is AnnounceEvent.COMPLETED:
            self._announce(url)  # completed() came while this announce was under way

    def _tell(self, callback: Callable[..., object], *args: Any) -> None:
        try:
            callback(*args)
        except Exception:
            _log.failure("announcer: an observer callback raised")

    def _failed(self, failure: Any, url: str) -> None:
        self._in_flight.pop(url, None)
        if not self._running or url not in self._tiers:
            return  # stop() or remove_tracker() cancelled it
        error = failure.value
        retry_in = error.retry_in if isinstance(error, TrackerFailure) else None
        reason = str(error) or type(error).__name__
        self._tell(self._host.tracker_error, url, reason)
        walking = url in self._tiers.current()
        following = self._tiers.failed(url, self._clock.seconds(), reason, retry_in)
        if not walking:
            return
        if not following:
            lane = self._lane(url)
            when = self._tiers.status(url).next_announce
            if when is not None and math.isinf(when):
                times = [
                    s.next_announce
                    for s in self._tiers.statuses()
                    if self._lane(s.url) == lane and s.next_announce is not None
                ]
                when = min((t for t in times if not math.isinf(t)), default=None)
            self._schedule(lane, when)
        for next_url in following:
            if next_url not in self._in_flight:
                self._announce(next_url)


def _after(d: Deferred[None]) -> Deferred[None]:
    """A new Deferred that fires (with None) when ``d`` has."""
    result: Deferred[None] = Deferred()

    def relay(value: object) -> object:
        result.callback(None)
        return value

    d.addBoth(relay)
    return result
