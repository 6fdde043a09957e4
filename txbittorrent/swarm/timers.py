"""Periodic work that sleeps while there is nothing to do: ``PhasedTimer``.

Theory of operation
-------------------
A swarm's periodic work (its tick, the request check, the rechoke, the
connection top-up) has nothing to do while the swarm has no peer and no
candidate address, which is how most torrents of a big session spend their
lives.  A ``LoopingCall`` per job would still wake the reactor for each of
them every few seconds: with ten thousand torrents that is most of a core,
and every started torrent makes the start of the next ones slower.

A ``PhasedTimer`` runs ``work`` every ``interval`` seconds on the slots of
one fixed phase (``origin + k * interval``, as a ``LoopingCall`` started at
``origin`` would), but only while ``needed()`` says so: after each run it
asks, and when nothing is needed it schedules nothing at all.  ``wake()``
(called by the owner when something arrives: a peer, an address) schedules
the next slot of the phase again, so a timer that slept is
indistinguishable from one that ran and found nothing to do.  At most one
``DelayedCall`` is pending per timer; ``stop()`` cancels it.

With ``idle_slots`` n, a timer that is not needed does not sleep for good:
it runs again n slots later (a heartbeat on the same phase, for work that
must still happen now and then, such as an idle torrent's ``Progress``), and
``wake()`` brings that run forward to the next slot.

An error raised by ``work`` is logged, and the timer goes on.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from twisted.logger import Logger

__all__ = ["PhasedTimer"]

_log = Logger()

_EPSILON = 1e-9
"""Slots are computed in floating point: a time this close to a slot is on it."""


class PhasedTimer:
    """``work`` every ``interval`` seconds from ``origin``, while ``needed()``."""

    __slots__ = ("_clock", "_interval", "_origin", "_work", "_needed", "_idle_slots", "_call",
                 "_slot", "_stopped")

    def __init__(
        self,
        clock: Any,
        interval: float,
        origin: float,
        work: Callable[[], object],
        needed: Callable[[], bool],
        idle_slots: int | None = None,
    ) -> None:
        if not interval > 0:
            raise ValueError(f"interval must be positive, not {interval!r}")
        if idle_slots is not None and idle_slots < 1:
            raise ValueError(f"idle_slots must be at least 1, not {idle_slots!r}")
        self._clock = clock
        self._interval = interval
        self._origin = origin
        self._work = work
        self._needed = needed
        self._idle_slots = idle_slots
        self._call: Any = None
        self._slot = 0
        """The slot pending, else the last one run (0: the origin itself)."""
        self._stopped = False

    @property
    def scheduled(self) -> bool:
        """Whether a run is pending."""
        return self._call is not None

    def run_now(self) -> None:
        """Run the work at once (as ``LoopingCall.start(now=True)``), then
        follow the phase if still needed."""
        self._run()

    def wake(self) -> None:
        """Schedule the next slot of the phase if it is not scheduled (and
        the timer is not stopped): call when the work may be needed again."""
        if self._stopped:
            return
        now = self._clock.seconds()
        slot = self._slot_at(now) + 1
        call = self._call
        if call is not None:
            if self._slot <= slot:
                return
            call.cancel()  # an idle heartbeat further on: the next slot instead
            self._call = None
        else:
            slot = max(self._slot + 1, slot)
        self._schedule(slot, now)

    def stop(self) -> None:
        """Cancel the pending run; no ``wake`` schedules anything after this."""
        self._stopped = True
        call, self._call = self._call, None
        if call is not None and call.active():
            call.cancel()

    def _slot_at(self, now: float) -> int:
        """The last slot of the phase at or before ``now``."""
        return math.floor((now - self._origin) / self._interval + _EPSILON)

    def _schedule(self, slot: int, now: float) -> None:
        self._slot = slot
        delay = max(0.0, self._origin + slot * self._interval - now)
        self._call = self._clock.callLater(delay, self._fire)

    def _fire(self) -> None:
        self._call = None
        self._run()

    def _run(self) -> None:
        if self._stopped:
            return
        try:
            self._work()
        except Exception:
            _log.failure("periodic work {name} failed",
                         name=getattr(self._work, "__name__", repr(self._work)))
        if self._stopped or self._call is not None:
            return
        try:
            needed = self._needed()
        except Exception:
            _log.failure("periodic work {name}: needed() failed",
                         name=getattr(self._work, "__name__", repr(self._work)))
            needed = True
        if needed:
            self.wake()
        elif self._idle_slots is not None:
            now = self._clock.seconds()
            self._schedule(max(self._slot, self._slot_at(now)) + self._idle_slots, now)
