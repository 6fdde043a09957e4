"""serial.Serial: steps one after another, each with a Deferred of its own."""

from __future__ import annotations

from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from txbittorrent.serial import Serial


class SerialTests(SynchronousTestCase):
    """Steps run in call order, never overlapping."""

    def test_waits_for_the_previous_step(self) -> None:
        """A step begins only once the one before it has finished."""
        serial, log = Serial(), []
        gate: Deferred[None] = Deferred()
        first = serial.run(lambda: (log.append("first"), gate)[1])
        second = serial.run(lambda: log.append("second"))
        self.assertEqual(log, ["first"])
        self.assertNoResult(second)
        gate.callback(None)
        self.assertEqual(log, ["first", "second"])
        self.assertIsNone(self.successResultOf(first))
        self.assertIsNone(self.successResultOf(second))

    def test_failure_is_the_steps_own(self) -> None:
        """A failing step fails its own Deferred; the next step still runs."""
        serial, log = Serial(), []
        first = serial.run(lambda: 1 / 0)
        second = serial.run(lambda: log.append("after"))
        self.failureResultOf(first, ZeroDivisionError)
        self.successResultOf(second)
        self.assertEqual(log, ["after"])

    def test_callbacks_before_the_next_step(self) -> None:
        """The callbacks on a step's Deferred run before the next step begins."""
        serial, log = Serial(), []
        serial.run(lambda: None).addCallback(lambda _: log.append("callback"))
        serial.run(lambda: log.append("next"))
        self.assertEqual(log, ["callback", "next"])
