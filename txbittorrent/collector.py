"""The cyclic garbage collector around a bulk load: ``BulkLoad``.

Theory of operation
-------------------
CPython's cycle collector makes a full pass over every tracked object each
time the objects that survived earlier passes have grown by a quarter.
Loading thousands of torrents (the daemon restoring a seedbox, say) makes
millions of container objects that live as long as the torrents, so the
load itself sets off full passes over an ever larger heap, and after it
each full pass walks all of them again, stopping included.  With 10,000
torrents here that was 7.25 s to start them all instead of 5.74 s, and
2.25 s to stop them instead of 1.37 s (bench.scale, bench/README).

A ``BulkLoad`` pauses automatic collection from ``start`` to ``finish``
and, at ``finish``, moves every object alive to the permanent generation
(``gc.freeze``), where later passes do not look; then collection resumes
as it was.  The price: a frozen object that later becomes garbage in a
cycle is not collected while it stays frozen.  So ``thaw`` (``gc.unfreeze``)
gives the frozen objects back to the collector, once: the daemon calls it
when a torrent is removed, after which the process collects as any other.
And when the daemon stops, ``for_exit`` pauses collection for good: the
process ends after the stop, and stopping 10,000 torrents took 1.2-1.5 s
with the collector's passes and 0.4 s without.

The collector belongs to the process, not to a library: ``Session`` and
``Torrent`` never touch it.  Programs decide: ``txbittorrent serve`` and
``twist txbittorrent`` run the daemon's start under a ``BulkLoad``
(``follow_restore``), and bench.scale's loader does the same to measure
what the daemon does.  The ``gc`` module is injected for tests.
"""

from __future__ import annotations

import gc as _gc
from typing import Any

__all__ = ["BulkLoad", "follow_restore"]


class BulkLoad:
    """Pause the collector for a bulk load, then freeze what it made (see
    the module docstring).  Nothing happens before ``start``."""

    def __init__(self, gc: Any = _gc) -> None:
        self._gc = gc
        self._was_enabled: bool | None = None  # set by start, until finish
        self.frozen = False
        """``finish`` froze the heap and ``thaw`` has not given it back yet."""

    @property
    def loading(self) -> bool:
        """Between ``start`` and ``finish``."""
        return self._was_enabled is not None

    def start(self) -> None:
        """Pause automatic collection (if it runs) until ``finish``."""
        if self.loading:
            raise RuntimeError("this bulk load has already started")
        gc = self._gc
        self._was_enabled = bool(gc.isenabled())
        gc.disable()

    def finish(self) -> None:
        """Freeze every object alive now, and let automatic collection
        run again if it ran before ``start``.  Idempotent."""
        was_enabled, self._was_enabled = self._was_enabled, None
        if was_enabled is None:
            return
        gc = self._gc
        gc.freeze()
        self.frozen = True
        if was_enabled:
            gc.enable()

    def for_exit(self) -> None:
        """The process is about to end: pause automatic collection for good
        (nothing is frozen, and a pending ``finish`` does nothing).  Its
        cycles do not need collecting, and the passes were most of the time
        the daemon took to stop 10,000 torrents (bench/README, bench.scale)."""
        self._was_enabled = None
        self._gc.disable()

    def thaw(self, *_: object) -> None:
        """Give the frozen objects back to the collector (once; later calls
        do nothing).  Takes and ignores arguments, to serve as an event
        subscriber."""
        if self.frozen:
            self.frozen = False
            self._gc.unfreeze()


def follow_restore(service: Any, bulk: BulkLoad) -> None:
    """The daemon's start, restore included, ran under ``bulk`` (started):
    once ``service.started`` fires, finish it (freeze what the restore made)
    and thaw at the first torrent removed (see ``txbittorrent.collector``:
    a seedbox's worth of torrents restored without the cycle collector's
    full passes: bench/README, bench.scale)."""

    def restored(result: Any) -> Any:
        bulk.finish()
        if service.session is not None:
            service.session.events.subscribe(bulk.thaw, kinds="torrent_removed")
        return result

    service.started.addBoth(restored)
