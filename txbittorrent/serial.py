"""Steps that must not overlap, run one after another in call order.

``Serial.run(step)`` queues a step (a function returning a value or a
Deferred) behind every step queued before it and returns a Deferred of its
own that fires with None, or fails, when the step is done.  The next step
begins only after the callbacks on the previous step's Deferred have run,
so a caller reacting to ``stop()`` finishing sees the stopped state before
a queued ``start()`` changes it.  The ``Torrent`` runs its life-cycle
calls (``start``, ``pause``, ``stop``) through one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, maybeDeferred, succeed
from twisted.python.failure import Failure

__all__ = ["Serial"]


class Serial:
    """A queue of steps run one at a time (see the module docstring)."""

    def __init__(self) -> None:
        self._last: Deferred[None] = succeed(None)

    def run(self, step: Callable[[], Any]) -> Deferred[None]:
        out: Deferred[None] = Deferred()
        gate: Deferred[None] = Deferred()
        previous, self._last = self._last, gate

        def finish(result: object) -> None:
            if isinstance(result, Failure):
                out.errback(result)
            else:
                out.callback(None)
            gate.callback(None)

        def begin(_: object) -> None:
            maybeDeferred(step).addBoth(finish)

        previous.addCallback(begin)
        return out
